/*
 * JSON writing primitives: an output that stops at the first piece that does
 * not fit, escaping of any byte sequence into a JSON string, numbers, and
 * UTF-8 decoding.  See xray_json.h.
 */

#include <string.h>

#include "xray_json.h"

#if (defined __SSE2__ && !defined XRAY_JSON_NO_SIMD)
#define XRAY_JSON_SSE2  1
#include <emmintrin.h>
#else
#define XRAY_JSON_SSE2  0
#endif


static int xray_json_grammar(const unsigned char *p, size_t len);


/* where a NULL output buffer points: nothing ever fits, nothing is written */

static unsigned char  xray_nowhere[1];


/* the second character of the escape of each control byte; 'u': \u00XX */

static const char  xray_ctrl_escapes[] = "uuuuuuuubtnufruuuuuuuuuuuuuuuuuu";


static const char  xray_hex[] = "0123456789abcdef";


/* "00" to "99": two digits per division */

const char  xray_digits[] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";


static unsigned char *xray_fmt_decimals(unsigned char *p, uint32_t f,
    int digits);
static XRAY_NOINLINE unsigned char *xray_fmt_time_new(xray_out_t *o,
    unsigned char *p, uint64_t us);
static XRAY_NOINLINE unsigned char *xray_fmt_uint_big(unsigned char *p,
    uint64_t v);


/*
 * XRAY_CH_* of every byte.  JSON: 0x20..0x7f but '"' and '\'.  The segment
 * schema's: NAME: letters, digits, ' ' and _ . : / % & # = + - @.  AKEY:
 * letters, digits, '_'.
 */

const unsigned char  xray_char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 10 */
    3, 1, 0, 3, 1, 3, 3, 1, 1, 1, 1, 3, 1, 3, 3, 3,  /* 20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 3, 1, 1, 3, 1, 1,  /* 30 */
    3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  /* 40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 1, 0, 1, 1, 7,  /* 50 */
    1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  /* 60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 1, 1, 1, 1, 1,  /* 70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* a0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* b0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* c0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* d0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* e0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0   /* f0 */
};


size_t
xray_json_escape(unsigned char *dst, size_t size, const unsigned char *src,
    size_t len, size_t max_chars)
{
    xray_out_t  o;

    xray_out_init(&o, dst, size);
    xray_put_escaped(&o, src, len, max_chars, 0);

    return o.full ? XRAY_JSON_ERROR : (size_t) (o.pos - dst);
}


void
xray_out_init(xray_out_t *o, unsigned char *buf, size_t size)
{
    o->sec = (uint64_t) -1;
    o->sec_len = 0;
    memset(o->sec_text, '0', XRAY_UINT_LEN);
    o->times = 0;
    o->ids_safe = 0;

    if (buf == NULL) {
        /* no arithmetic on a NULL buffer: it is simply full */
        o->pos = xray_nowhere;
        o->end = xray_nowhere;
        o->full = 1;
        return;
    }

    o->pos = buf;
    o->end = buf + size;
    o->full = 0;
}


size_t
xray_out_finish(xray_out_t *o, unsigned char *buf, size_t size)
{
    if (o->full) {
        /* a cut document must not look like one */
        if (buf != NULL && size > 0) {
            buf[0] = '\0';
        }

        return 0;
    }

    return o->pos - buf;
}


/* no room is left from now on: nothing after the piece that did not fit */

void
xray_out_full(xray_out_t *o)
{
    o->full = 1;
    o->end = o->pos;
}


/* x (below 10^8) in exactly eight digits at p */

static inline void
xray_fmt_8(unsigned char *p, uint32_t x)
{
    uint32_t  hi, lo, a, b;

    hi = x / 10000;
    lo = x - hi * 10000;
    a = hi / 100;
    b = lo / 100;

    memcpy(p, &xray_digits[a * 2], 2);
    memcpy(p + 2, &xray_digits[(hi - a * 100) * 2], 2);
    memcpy(p + 4, &xray_digits[b * 2], 2);
    memcpy(p + 6, &xray_digits[(lo - b * 100) * 2], 2);
}


/* v in decimal at p, which has XRAY_UINT_LEN bytes; returns the end */

unsigned char *
xray_fmt_uint(unsigned char *p, uint64_t v)
{
    uint32_t  w, d;

    /* statuses, small lengths, whole milliseconds: straight to the digits */

    if (v < 1000) {
        w = (uint32_t) v;

        if (w < 10) {
            *p = (unsigned char) ('0' + w);
            return p + 1;
        }

        if (w < 100) {
            memcpy(p, &xray_digits[w * 2], 2);
            return p + 2;
        }

        d = w / 100;
        *p = (unsigned char) ('0' + d);
        memcpy(p + 1, &xray_digits[(w - d * 100) * 2], 2);

        return p + 3;
    }

    /* apart: the common case above saves no registers */
    return xray_fmt_uint_big(p, v);
}


/* xray_fmt_uint() from 1000 up */

static XRAY_NOINLINE unsigned char *
xray_fmt_uint_big(unsigned char *p, uint64_t v)
{
    size_t          n, d;
    uint32_t        w;
    uint64_t        hi;
    unsigned char  *end;

    /*
     * above 10^8 (the seconds of every time): the digits above the last
     * eight first, then those eight, with 32-bit divisions only
     */

    if (v >= 100000000) {
        hi = v / 100000000;
        p = xray_fmt_uint(p, hi);
        xray_fmt_8(p, (uint32_t) (v - hi * 100000000));

        return p + 8;
    }

    /* 1000 to 10^8 - 1: four to eight digits */

    w = (uint32_t) v;
    n = 4 + (w >= 10000) + (w >= 100000) + (w >= 1000000)
        + (w >= 10000000);

    end = p + n;
    p = end;

    while (w >= 100) {
        d = (size_t) (w % 100) * 2;
        w /= 100;
        p -= 2;
        p[0] = xray_digits[d];
        p[1] = xray_digits[d + 1];
    }

    if (w >= 10) {
        p[-2] = xray_digits[w * 2];
        p[-1] = xray_digits[w * 2 + 1];

    } else {
        p[-1] = (unsigned char) ('0' + w);
    }

    return end;
}


/*
 * v / unit as a decimal with digits decimals, at p, which has XRAY_FRAC_LEN
 * bytes; unit is 10^digits, digits at most 6.  Returns the end.
 */

unsigned char *
xray_fmt_frac(unsigned char *p, uint64_t v, uint64_t unit, int digits)
{
    p = xray_fmt_uint(p, v / unit);

    return xray_fmt_decimals(p, (uint32_t) (v % unit), digits);
}


unsigned char *
xray_fmt_time(xray_out_t *o, unsigned char *p, uint64_t us)
{
    /* all of a text, a fixed size: p has room for the longest */

    if (o->times > 0) {
        if (us == o->time_us[0]) {
            memcpy(p, o->time_text[0], XRAY_FRAC_LEN);
            return p + o->time_len[0];
        }

        if (o->times > 1 && us == o->time_us[1]) {
            memcpy(p, o->time_text[1], XRAY_FRAC_LEN);
            return p + o->time_len[1];
        }
    }

    /* apart: the common case above saves no registers */
    return xray_fmt_time_new(o, p, us);
}


static XRAY_NOINLINE unsigned char *
xray_fmt_time_new(xray_out_t *o, unsigned char *p, uint64_t us)
{
    size_t          slot;
    uint32_t        f, a, b;
    uint64_t        sec;
    unsigned char  *q;

    sec = us / 1000000;
    f = (uint32_t) (us - sec * 1000000);

    if (sec != o->sec) {
        o->sec_len = xray_fmt_uint(o->sec_text, sec) - o->sec_text;
        o->sec = sec;
    }

    memcpy(p, o->sec_text, XRAY_UINT_LEN);

    /* the six decimals, two at a time */

    q = p + o->sec_len;
    *q = '.';
    a = f / 10000;
    f -= a * 10000;
    b = f / 100;
    f -= b * 100;
    memcpy(q + 1, &xray_digits[a * 2], 2);
    memcpy(q + 3, &xray_digits[b * 2], 2);
    memcpy(q + 5, &xray_digits[f * 2], 2);
    q += 7;

    slot = (o->times > 0);
    o->times = slot + 1;
    o->time_us[slot] = us;
    o->time_len[slot] = q - p;
    memcpy(o->time_text[slot], p, XRAY_FRAC_LEN);

    return q;
}


/* '.' and f in exactly digits digits (at most 6) at p; returns the end */

static unsigned char *
xray_fmt_decimals(unsigned char *p, uint32_t f, int digits)
{
    int             i;
    size_t          d;
    uint32_t        a, b;
    unsigned char  *end;

    *p++ = '.';

    /* the two that are used, microseconds and milliseconds, unrolled */

    if (digits == 6 && f < 1000000) {
        a = f / 10000;
        f -= a * 10000;
        b = f / 100;
        f -= b * 100;
        memcpy(p, &xray_digits[a * 2], 2);
        memcpy(p + 2, &xray_digits[b * 2], 2);
        memcpy(p + 4, &xray_digits[f * 2], 2);

        return p + 6;
    }

    if (digits == 3 && f < 1000) {
        a = f / 100;
        *p = (unsigned char) ('0' + a);
        memcpy(p + 1, &xray_digits[(f - a * 100) * 2], 2);

        return p + 3;
    }

    end = p + digits;
    p = end;

    for (i = digits; i >= 2; i -= 2) {
        d = (size_t) (f % 100) * 2;
        f /= 100;
        p -= 2;
        p[0] = xray_digits[d];
        p[1] = xray_digits[d + 1];
    }

    if (i == 1) {
        p[-1] = (unsigned char) ('0' + f);
    }

    return end;
}


/*
 * The length of the prefix of s that goes into a JSON string as is: 0x20
 * to 0x7f but '"' and '\'.  Eight bytes at a time while they are all such
 * bytes: x has a byte below 0x20 iff (x - 0x20..) & ~x has a top bit set
 * (the first such byte borrows; none does before it), and a byte equal to
 * c iff x ^ c.. has a zero byte, found the same way; any top bit of x is a
 * byte above 0x7f.
 */

#define XRAY_ONES  0x0101010101010101ULL
#define XRAY_HIGH  0x8080808080808080ULL

/* 1 if each of the eight bytes of x goes into a JSON string as is */

static inline int
xray_json_word(uint64_t x)
{
    uint64_t  q, b;

    q = x ^ ('"' * XRAY_ONES);
    b = x ^ ('\\' * XRAY_ONES);

    return ((x | ((x - 0x20 * XRAY_ONES) & ~x) | ((q - XRAY_ONES) & ~q)
             | ((b - XRAY_ONES) & ~b))
            & XRAY_HIGH) == 0;
}


size_t
xray_json_safe_portable(const unsigned char *s, size_t len)
{
    size_t    i;
    uint64_t  x;

    for (i = 0; len - i >= 8; i += 8) {
        memcpy(&x, s + i, sizeof(uint64_t));

        if (!xray_json_word(x)) {
            goto bytes;
        }
    }

    /* fewer than eight left: the eight that end s, if s has eight */

    if (i < len && len >= 8) {
        memcpy(&x, s + len - 8, sizeof(uint64_t));

        if (xray_json_word(x)) {
            return len;
        }
    }

bytes:

    while (i < len && (xray_char_class[s[i]] & XRAY_CH_JSON)) {
        i++;
    }

    return i;
}


#if (XRAY_JSON_SSE2)

/*
 * With SSE2 (every x86-64), sixteen bytes at a time, and the first byte to
 * escape found from the mask without going back over bytes: a byte below
 * 0x20 or above 0x7f is one below 0x20 as a signed byte.  Strings shorter
 * than sixteen bytes are read as two overlapping halves (8 to 15 bytes) or
 * quarters (4 to 7), which together are the whole string; never a byte
 * outside s.
 */

static inline unsigned
xray_json_mask(__m128i x)
{
    __m128i  m;

    m = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                     _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));

    return (unsigned) _mm_movemask_epi8(m);
}


size_t
xray_json_safe(const unsigned char *s, size_t len)
{
    size_t    i;
    uint32_t  a, b;
    unsigned  m;
    __m128i   x;

    if (len >= 16) {
        for (i = 0; len - i >= 16; i += 16) {
            m = xray_json_mask(_mm_loadu_si128((const __m128i *) (s + i)));

            if (m) {
                return i + (size_t) __builtin_ctz(m);
            }
        }

        if (i == len) {
            return len;
        }

        /* the sixteen that end s: those before i are known good */

        m = xray_json_mask(_mm_loadu_si128((const __m128i *) (s + len - 16)));

        return m ? len - 16 + (size_t) __builtin_ctz(m) : len;
    }

    if (len >= 8) {
        x = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *) s),
                               _mm_loadl_epi64((const __m128i *)
                                               (s + len - 8)));
        m = xray_json_mask(x);

        if (m == 0) {
            return len;
        }

        return (m & 0xff) ? (size_t) __builtin_ctz(m)
                          : len - 8 + (size_t) __builtin_ctz(m >> 8);
    }

    if (len >= 4) {
        memcpy(&a, s, sizeof(uint32_t));
        memcpy(&b, s + len - 4, sizeof(uint32_t));
        x = _mm_unpacklo_epi32(_mm_cvtsi32_si128((int) a),
                               _mm_cvtsi32_si128((int) b));
        m = xray_json_mask(x) & 0xff;

        if (m == 0) {
            return len;
        }

        return (m & 0x0f) ? (size_t) __builtin_ctz(m)
                          : len - 4 + (size_t) __builtin_ctz(m >> 4);
    }

    /* one to three bytes: the first, the middle and the last are all */

    if (len > 0
        && (xray_char_class[s[0]] & xray_char_class[s[len / 2]]
            & xray_char_class[s[len - 1]] & XRAY_CH_JSON))
    {
        return len;
    }

    for (i = 0; i < len && (xray_char_class[s[i]] & XRAY_CH_JSON); i++) {
        /* void */
    }

    return i;
}

#else

size_t
xray_json_safe(const unsigned char *s, size_t len)
{
    return xray_json_safe_portable(s, len);
}

#endif


/* n: the length of the prefix of s that needs no escaping */

void
xray_put_string_slow(xray_out_t *o, const char *key, size_t key_len,
    const unsigned char *s, size_t len, size_t max, size_t n)
{
    /* the first n bytes are n characters that need no escaping */

    xray_put(o, key, key_len);

    /* no arithmetic on s when it is NULL (len 0) */
    if (n > 0) {
        xray_put(o, s, n);
        s += n;
        len -= n;
    }

    xray_put_escaped(o, s, len, max, n);
    xray_put_byte(o, '"');
}


/* units: characters of this string already written */

void
xray_put_escaped(xray_out_t *o, const unsigned char *s, size_t len,
    size_t max, size_t units)
{
    size_t         n, run, w;
    uint32_t       cp;
    unsigned char  esc[6];

    while (len > 0 && units < max) {

        /* the common case: a run of ASCII that needs no escaping */
        run = len < max - units ? len : max - units;
        n = xray_json_safe(s, run);

        if (n > 0) {
            xray_put(o, s, n);
            units += n;
            len -= n;
            s += n;
            continue;
        }

        n = xray_utf8_next(s, len, &cp);
        w = (cp >= 0x10000 && cp != XRAY_UTF8_BAD) ? 2 : 1;

        if (units + w > max) {
            break;
        }

        units += w;

        if (cp == XRAY_UTF8_BAD) {
            xray_put_lit(o, "\\ufffd");

        } else if (cp >= 0x80) {
            xray_put(o, s, n);

        } else {
            /* '"', '\\' or a control byte */
            esc[0] = '\\';
            esc[1] = (cp < 0x20) ? (unsigned char) xray_ctrl_escapes[cp]
                                 : (unsigned char) cp;

            if (esc[1] == 'u') {
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = xray_hex[cp >> 4];
                esc[5] = xray_hex[cp & 0x0f];
                xray_put(o, esc, 6);

            } else {
                xray_put(o, esc, 2);
            }
        }

        s += n;
        len -= n;
    }
}


/*
 * Decodes one character.  A well-formed sequence (Unicode Table 3-7) gives
 * its code point; otherwise cp is XRAY_UTF8_BAD and the return value is the
 * length of the maximal ill-formed prefix, at least 1: overlongs (C0, C1,
 * E0 80..9F, F0 80..8F), surrogates (ED A0..BF), above U+10FFFF (F4 90..,
 * F5..FF), stray continuation bytes and truncated sequences.
 */

size_t
xray_utf8_next(const unsigned char *p, size_t len, uint32_t *cp)
{
    size_t         i, n;
    uint32_t       v;
    unsigned char  c, lo, hi;

    c = p[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    if (c < 0xc2 || c > 0xf4) {
        *cp = XRAY_UTF8_BAD;
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (c < 0xe0) {
        n = 2;
        v = c & 0x1f;

    } else if (c < 0xf0) {
        n = 3;
        v = c & 0x0f;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else {
        n = 4;
        v = c & 0x07;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    }

    for (i = 1; i < n; i++) {
        if (i == len || p[i] < lo || p[i] > hi) {
            *cp = XRAY_UTF8_BAD;
            return i;
        }

        v = (v << 6) | (p[i] & 0x3f);
        lo = 0x80;
        hi = 0xbf;
    }

    *cp = v;

    return n;
}


/*
 * RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and finite as a
 * double: JSON readers turn 1e309, or 310 digits, into infinity (JSON has
 * none, and X-Ray would index something else than what was sent).  An
 * underflow reads as 0 or a subnormal: finite, allowed.
 */

int
xray_json_number(const unsigned char *p, size_t len)
{
    int                   neg;
    long                  e, x;
    size_t                i, n;
    const unsigned char  *q, *end;

    /*
     * the smallest magnitude that rounds to infinity: halfway between
     * DBL_MAX and 2^1024 (DBL_MAX's mantissa is odd: halfway rounds up),
     * as the 309 digits of 2^1024 - 2^970; its decimal exponent is 309
     */
    static const char     inf[] =
        "179769313486231580793728971405303415079934132710037826936173778980"
        "444968292764750946649017977587207096330286416692887910946555547851"
        "940402630657488671505820681908902000708383676273854845817711531764"
        "475730270069855571366959622842914819860834936475292719074168444365"
        "510704342711559699508093042880177904174497792";

    if (!xray_json_grammar(p, len)) {
        return 0;
    }

    /*
     * value = 0.D x 10^e, D the significant digits without leading zeros:
     * e counts the integer digits from the first significant one (minus the
     * zeros after the point before it), plus the exponent
     */

    end = p + len;
    q = p;

    if (*q == '-') {
        q++;
    }

    e = 0;
    n = 0;      /* significant digits seen */

    for ( /* void */ ; q < end && *q >= '0' && *q <= '9'; q++) {
        if (n || *q != '0') {
            n++;
            e++;
        }
    }

    if (q < end && *q == '.') {
        for (q++; q < end && *q >= '0' && *q <= '9'; q++) {
            if (n || *q != '0') {
                n++;

            } else {
                e--;
            }
        }
    }

    if (n == 0) {
        return 1;                        /* zero */
    }

    if (q < end) {                       /* [eE][+-]?digits */
        q++;
        neg = (*q == '-');

        if (*q == '+' || *q == '-') {
            q++;
        }

        for (x = 0; q < end; q++) {
            if (x < 100000) {
                x = x * 10 + (*q - '0');
            }
        }

        e += neg ? -x : x;
    }

    if (e < 309) {
        return 1;
    }

    if (e > 309) {
        return 0;
    }

    /* e == 309: compare the significant digits with the halfway value */

    i = 0;
    q = p;

    for ( /* void */ ; q < end && i < sizeof(inf) - 1; q++) {
        if (*q < '0' || *q > '9') {
            if (*q == 'e' || *q == 'E') {
                break;
            }

            continue;
        }

        if (i == 0 && *q == '0') {
            continue;
        }

        if (*q != inf[i]) {
            return *q < inf[i];
        }

        i++;
    }

    if (i < sizeof(inf) - 1) {
        /* the rest of D is zeros: smaller unless inf's rest is zeros too */
        for ( /* void */ ; i < sizeof(inf) - 1; i++) {
            if (inf[i] != '0') {
                return 1;
            }
        }

        return 0;
    }

    /* equal so far: any nonzero digit left of D makes it larger */
    return 0;
}


/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static int
xray_json_grammar(const unsigned char *p, size_t len)
{
    const unsigned char  *end;

    end = p + len;

    if (p < end && *p == '-') {
        p++;
    }

    if (p == end) {
        return 0;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return 0;
    }

    if (p < end && *p == '.') {
        p++;

        if (p == end || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return p == end;
}
