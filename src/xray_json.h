/*
 * JSON writing primitives for the segment writer (xray_segment.c): an
 * output into a caller's buffer that stops at the first piece that does not
 * fit and marks itself full, so that a cut document is never returned;
 * escaping of any byte sequence into a JSON string; decimal numbers.
 *
 * Pure C: no nginx types, no allocation.  The small writers are inline: the
 * segment writer calls them for every field.
 */

#ifndef XRAY_JSON_H
#define XRAY_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xray_types.h"


/* xray_json_escape(): the output does not fit */
#define XRAY_JSON_ERROR         ((size_t) -1)

/* xray_utf8_next(): not a well-formed character */
#define XRAY_UTF8_BAD           0xffffffff

/* the longest decimal uint64_t, and one with a fraction ("." 6 digits) */
#define XRAY_UINT_LEN           20
#define XRAY_FRAC_LEN           (XRAY_UINT_LEN + 7)

/* a rare path kept out of a hot function, which then saves no registers */
#if (defined __GNUC__)
#define XRAY_NOINLINE           __attribute__((noinline))
#else
#define XRAY_NOINLINE
#endif

/* xray_char_class[] bits; xray_segment.c adds its own */
#define XRAY_CH_JSON            0x01   /* copied into a JSON string as is */


typedef struct {
    unsigned char  *pos;
    unsigned char  *end;
    unsigned        full;               /* something did not fit */

    /*
     * The seconds of the last time written (xray_fmt_time()), in decimal:
     * the start and end times of a segment and its subsegments nearly
     * always share them.
     */
    uint64_t        sec;                /* (uint64_t) -1: none yet */
    size_t          sec_len;
    unsigned char   sec_text[XRAY_UINT_LEN];

    /*
     * Whole times written (xray_fmt_time()): a subsegment begins when its
     * segment does, and its one attempt has its times.  Slot 0 keeps the
     * document's first time, slot 1 the last other one.
     */
    uint64_t        time_us[2];
    size_t          time_len[2];
    size_t          times;              /* slots used */
    unsigned char   time_text[2][XRAY_FRAC_LEN];

    /*
     * The caller vouches that the ids it gives are what it made or checked
     * (hex, a trace id): they are copied without looking for bytes to escape
     */
    unsigned        ids_safe;
} xray_out_t;


extern const unsigned char  xray_char_class[256];
/* "00" to "99": two digits at a time */
extern const char           xray_digits[];


#define xray_put_lit(o, s)  xray_put(o, s, sizeof(s) - 1)

/* key is a literal: the text before the value, its opening '"' included */
#define xray_put_str(o, key, s, len, max)                                     \
    xray_put_string(o, key, sizeof(key) - 1, s, len, max)

/* copies a literal to p, which has room for it; p moves past it */
#define xray_cpy_lit(p, s)                                                    \
    (memcpy(p, s, sizeof(s) - 1), (p) += sizeof(s) - 1)


/* a NULL buf is an output where nothing fits */
void xray_out_init(xray_out_t *o, unsigned char *buf, size_t size);
/* the length written, or 0 (buf then starts with a NUL) when full */
size_t xray_out_finish(xray_out_t *o, unsigned char *buf, size_t size);
void xray_out_full(xray_out_t *o);

unsigned char *xray_fmt_uint(unsigned char *p, uint64_t v);
unsigned char *xray_fmt_frac(unsigned char *p, uint64_t v, uint64_t unit,
    int digits);
/*
 * Microseconds since the epoch as seconds with six decimals, as
 * xray_fmt_frac(p, us, 1000000, 6) writes them, at p, which has
 * XRAY_FRAC_LEN bytes; the seconds are formatted once for the times of o
 * that share them.
 */
unsigned char *xray_fmt_time(xray_out_t *o, unsigned char *p, uint64_t us);

/*
 * The length of the prefix of s that needs no escaping: bytes 0x20 to 0x7f
 * but '"' and '\\'.  xray_json_safe() is the fast one (SSE2 where there is
 * SSE2), xray_json_safe_portable() the plain C one it stands for elsewhere;
 * both always give the same answer.
 */
size_t xray_json_safe(const unsigned char *s, size_t len);
size_t xray_json_safe_portable(const unsigned char *s, size_t len);
void xray_put_escaped(xray_out_t *o, const unsigned char *s, size_t len,
    size_t max, size_t units);
/* xray_put_string() of a string to escape, or one that does not fit */
void xray_put_string_slow(xray_out_t *o, const char *key, size_t key_len,
    const unsigned char *s, size_t len, size_t max, size_t n);

size_t xray_utf8_next(const unsigned char *p, size_t len, uint32_t *cp);
/*
 * 1 if p is a JSON number (RFC 8259) that a double holds: not one JSON
 * readers turn into infinity (1e309, 310 digits); underflows are allowed
 */
int xray_json_number(const unsigned char *p, size_t len);

/*
 * Escapes src as the inside of a JSON string (no quotes) into dst: '"' and
 * '\' escaped, control bytes as \b \f \n \r \t or \u00XX, valid UTF-8 copied,
 * each maximal ill-formed UTF-8 subsequence (Unicode 3.9, as Python's
 * "replace") as \ufffd.  At most max_chars characters (UTF-16 code units) are
 * kept; a character is never split.  Returns the length written, or
 * XRAY_JSON_ERROR if it does not fit in size bytes.
 */
size_t xray_json_escape(unsigned char *dst, size_t size,
    const unsigned char *src, size_t len, size_t max_chars);


static inline void
xray_put(xray_out_t *o, const void *s, size_t n)
{
    if (n > (size_t) (o->end - o->pos)) {
        xray_out_full(o);
        return;
    }

    /* s may be NULL when n is 0 */
    if (n > 0) {
        memcpy(o->pos, s, n);
        o->pos += n;
    }
}


static inline void
xray_put_byte(xray_out_t *o, unsigned char c)
{
    if (o->pos == o->end) {
        xray_out_full(o);
        return;
    }

    *o->pos++ = c;
}


/*
 * Where to write a piece of at most n bytes: straight into the output when
 * it has room for the longest piece, which saves a check per part and a
 * copy, else into tmp (n bytes), which xray_commit() then puts as one piece.
 */

static inline unsigned char *
xray_reserve(xray_out_t *o, unsigned char *tmp, size_t n)
{
    return ((size_t) (o->end - o->pos) >= n) ? o->pos : tmp;
}


/* the piece written from start to p */

static inline void
xray_commit(xray_out_t *o, unsigned char *tmp, unsigned char *start,
    unsigned char *p)
{
    if (start == tmp) {
        xray_put(o, tmp, p - tmp);
        return;
    }

    o->pos = p;
}


/* milliseconds as seconds with three decimals, at p (XRAY_FRAC_LEN bytes) */

static inline unsigned char *
xray_fmt_ms(unsigned char *p, uint64_t ms)
{
    uint32_t  a, w;

    if (ms >= 1000) {
        return xray_fmt_frac(p, ms, 1000, 3);
    }

    /* "0." and three digits: most calls take less than a second */

    w = (uint32_t) ms;
    a = w / 100;
    p[0] = '0';
    p[1] = '.';
    p[2] = (unsigned char) ('0' + a);
    memcpy(p + 3, &xray_digits[(w - a * 100) * 2], 2);

    return p + 5;
}


/*
 * key, the escaped string and its closing '"'.  Most strings are printable
 * ASCII within their limit: one check of the room and three copies.
 */

static inline void
xray_put_string(xray_out_t *o, const char *key, size_t key_len,
    const unsigned char *s, size_t len, size_t max)
{
    size_t          n, run;
    uint32_t        c, d;
    uint64_t        a, b;
    unsigned char  *p;

    run = len < max ? len : max;
    n = xray_json_safe(s, run);

    if (n == run && key_len + n + 1 <= (size_t) (o->end - o->pos)) {
        p = o->pos;
        memcpy(p, key, key_len);
        p += key_len;

        /* short strings in two overlapping moves; s may be NULL (n 0) */
        if (n >= 8 && n <= 16) {
            memcpy(&a, s, 8);
            memcpy(&b, s + n - 8, 8);
            memcpy(p, &a, 8);
            memcpy(p + n - 8, &b, 8);
            p += n;

        } else if (n >= 4 && n < 8) {
            memcpy(&c, s, 4);
            memcpy(&d, s + n - 4, 4);
            memcpy(p, &c, 4);
            memcpy(p + n - 4, &d, 4);
            p += n;

        } else if (n > 0) {
            memcpy(p, s, n);
            p += n;
        }

        *p++ = '"';
        o->pos = p;
        return;
    }

    xray_put_string_slow(o, key, key_len, s, len, max, n);
}


#endif /* XRAY_JSON_H */
