/*
 * W3C Trace Context level 1: traceparent and tracestate, and the X-Ray id
 * mapping.
 *
 * Choices the specification leaves open:
 *
 * - traceparent is taken as sent: no whitespace is skipped (an HTTP parser
 *   has removed it around a header value), upper-case hex is invalid
 *   everywhere, including the version.  The checks go left to right, so
 *   the first bad field names the error.
 * - The fields after a higher version's flags are not read, and are never
 *   forwarded: a traceparent is always written as version 00.
 * - tracestate: the 32-member limit counts non-empty members only (empty
 *   ones come from joining header lines, and are not propagated).  Any bad
 *   member invalidates the whole list rather than being skipped: a list
 *   with garbage in it is not forwarded at all.  A valid list longer than
 *   512 bytes once joined is cut as the specification prescribes instead
 *   of dropped, see xray_tracestate_limit().
 */

#include <string.h>

#include "xray_w3c.h"


/* byte classes */
#define XRAY_W3C_C_LHEX        0x01    /* [0-9a-f] */
#define XRAY_W3C_C_KEY         0x02    /* a-z 0-9 _ - * and / */
#define XRAY_W3C_C_LCALPHA     0x04    /* [a-z] */
#define XRAY_W3C_C_DIGIT       0x08    /* [0-9] */
#define XRAY_W3C_C_VALUE       0x10    /* 0x20..0x7e but ',' and '=' */
#define XRAY_W3C_C_TEXT        0x20    /* 0x20..0x7e and HTAB */

#define xray_w3c_is(c, cls)    (xray_w3c_class[(unsigned char) (c)] & (cls))


static int xray_w3c_lhex(const unsigned char *p, size_t len);
static int xray_w3c_zero(const unsigned char *p, size_t len);
static int xray_w3c_key_valid(const unsigned char *p, size_t len);
static int xray_w3c_value_valid(const unsigned char *p, size_t len);
static size_t xray_w3c_key_len(const xray_span_t *member);
static void xray_w3c_remove(xray_tracestate_t *ts, size_t i);
static unsigned xray_w3c_hexval(unsigned char c);
static unsigned char xray_w3c_lower(unsigned char c);


static const unsigned char  xray_w3c_class[256] = {
    /* 00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0,
    /* 10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 20  sp  !     "     #     $     %     &     '   */
             0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
    /* 28  (   )     *     +     ,     -     .     /   */
             0x30, 0x30, 0x32, 0x30, 0x20, 0x32, 0x30, 0x32,
    /* 30  0..9 */
             0x3b, 0x3b, 0x3b, 0x3b, 0x3b, 0x3b, 0x3b, 0x3b,
             0x3b, 0x3b,
    /* 3a  :   ;     <     =     >     ?   */
             0x30, 0x30, 0x30, 0x20, 0x30, 0x30,
    /* 40  @   A..Z */
             0x30,
             0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
             0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
             0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
             0x30, 0x30,
    /* 5b  [   \     ]     ^     _     `   */
             0x30, 0x30, 0x30, 0x30, 0x32, 0x30,
    /* 61  a..f */
             0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
    /* 67  g..z */
             0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36,
             0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36,
             0x36, 0x36, 0x36, 0x36,
    /* 7b  {   |     }     ~     DEL */
             0x30, 0x30, 0x30, 0x30, 0,
    /* 80..ff: 0 */
};


/* indexed by xray_w3c_rc_e */

static const char  *const xray_w3c_errors[] = {
    "ok",
    "empty traceparent",
    "traceparent shorter than 55 bytes",
    "bad traceparent version",
    "traceparent version ff",
    "version 00 traceparent longer than 55 bytes",
    "bad trace-id",
    "all-zero trace-id",
    "bad parent-id",
    "all-zero parent-id",
    "bad trace-flags",
    "bad character in tracestate",
    "tracestate list-member without '='",
    "bad tracestate key",
    "bad tracestate value",
    "duplicate tracestate key",
    "more than 32 tracestate list-members"
};


xray_w3c_rc_e
xray_traceparent_parse(const unsigned char *value, size_t len,
    xray_traceparent_t *tp)
{
    tp->trace_id = NULL;
    tp->parent_id = NULL;
    tp->version = 0;
    tp->flags = 0;

    if (len == 0) {
        return XRAY_W3C_EMPTY;
    }

    if (len < 3 || !xray_w3c_lhex(value, 2) || value[2] != '-') {
        return XRAY_W3C_BAD_VERSION;
    }

    tp->version = xray_w3c_hexval(value[0]) << 4 | xray_w3c_hexval(value[1]);

    if (tp->version == 0xff) {
        return XRAY_W3C_VERSION_FF;
    }

    if (len < XRAY_TRACEPARENT_LEN) {
        return XRAY_W3C_TOO_SHORT;
    }

    if (tp->version == 0 && len > XRAY_TRACEPARENT_LEN) {
        return XRAY_W3C_TOO_LONG;
    }

    if (!xray_w3c_lhex(value + 3, XRAY_W3C_TRACE_ID_LEN) || value[35] != '-')
    {
        return XRAY_W3C_BAD_TRACE_ID;
    }

    if (xray_w3c_zero(value + 3, XRAY_W3C_TRACE_ID_LEN)) {
        return XRAY_W3C_ZERO_TRACE_ID;
    }

    if (!xray_w3c_lhex(value + 36, XRAY_W3C_SPAN_ID_LEN) || value[52] != '-')
    {
        return XRAY_W3C_BAD_PARENT_ID;
    }

    if (xray_w3c_zero(value + 36, XRAY_W3C_SPAN_ID_LEN)) {
        return XRAY_W3C_ZERO_PARENT_ID;
    }

    if (!xray_w3c_lhex(value + 53, 2)
        || (len > XRAY_TRACEPARENT_LEN && value[XRAY_TRACEPARENT_LEN] != '-'))
    {
        return XRAY_W3C_BAD_FLAGS;
    }

    tp->trace_id = value + 3;
    tp->parent_id = value + 36;
    tp->flags = xray_w3c_hexval(value[53]) << 4 | xray_w3c_hexval(value[54]);

    return XRAY_W3C_OK;
}


size_t
xray_traceparent_format(unsigned char *buf, const unsigned char *trace_id,
    const unsigned char *parent_id, int sampled)
{
    size_t  i;

    buf[0] = '0';
    buf[1] = '0';
    buf[2] = '-';

    for (i = 0; i < XRAY_W3C_TRACE_ID_LEN; i++) {
        buf[3 + i] = xray_w3c_lower(trace_id[i]);
    }

    buf[35] = '-';

    for (i = 0; i < XRAY_W3C_SPAN_ID_LEN; i++) {
        buf[36 + i] = xray_w3c_lower(parent_id[i]);
    }

    buf[52] = '-';
    buf[53] = '0';
    buf[54] = sampled ? '1' : '0';

    return XRAY_TRACEPARENT_LEN;
}


void
xray_tracestate_init(xray_tracestate_t *ts)
{
    ts->n = 0;
    ts->len = 0;
    ts->removed = 0;
}


xray_w3c_rc_e
xray_tracestate_add(xray_tracestate_t *ts, const unsigned char *value,
    size_t len)
{
    size_t                i, klen;
    const unsigned char  *p, *end, *start, *stop, *eq;

    /* every byte first, so that a bad byte wins over any other error */

    for (i = 0; i < len; i++) {
        if (!xray_w3c_is(value[i], XRAY_W3C_C_TEXT)) {
            return XRAY_W3C_STATE_BAD_CHAR;
        }
    }

    p = value;
    end = value + len;

    while (p <= end) {
        stop = memchr(p, ',', end - p);
        if (stop == NULL) {
            stop = end;
        }

        start = p;
        p = stop + 1;

        while (start < stop && (*start == ' ' || *start == '\t')) {
            start++;
        }

        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t')) {
            stop--;
        }

        if (start == stop) {
            continue;
        }

        eq = memchr(start, '=', stop - start);
        if (eq == NULL) {
            return XRAY_W3C_STATE_BAD_MEMBER;
        }

        klen = eq - start;

        if (!xray_w3c_key_valid(start, klen)) {
            return XRAY_W3C_STATE_BAD_KEY;
        }

        if (!xray_w3c_value_valid(eq + 1, stop - eq - 1)) {
            return XRAY_W3C_STATE_BAD_VALUE;
        }

        for (i = 0; i < ts->n; i++) {
            if (xray_w3c_key_len(&ts->member[i]) == klen
                && memcmp(ts->member[i].data, start, klen) == 0)
            {
                return XRAY_W3C_STATE_DUPLICATE_KEY;
            }
        }

        if (ts->n == XRAY_TRACESTATE_MAX_MEMBERS) {
            return XRAY_W3C_STATE_TOO_MANY;
        }

        ts->member[ts->n].data = start;
        ts->member[ts->n].len = stop - start;
        ts->len += (ts->n ? 1 : 0) + (size_t) (stop - start);
        ts->n++;
    }

    return XRAY_W3C_OK;
}


size_t
xray_tracestate_limit(xray_tracestate_t *ts)
{
    size_t  i, removed;

    removed = 0;

    while (ts->len > XRAY_TRACESTATE_MAX_LEN) {

        /* the rightmost long member, else the rightmost one */

        for (i = ts->n; i > 0; i--) {
            if (ts->member[i - 1].len > XRAY_TRACESTATE_LONG_MEMBER) {
                break;
            }
        }

        xray_w3c_remove(ts, i > 0 ? i - 1 : ts->n - 1);
        removed++;
    }

    ts->removed += removed;

    return removed;
}


xray_w3c_rc_e
xray_tracestate_parse(const unsigned char *value, size_t len,
    xray_tracestate_t *ts)
{
    xray_w3c_rc_e  rc;

    xray_tracestate_init(ts);

    rc = xray_tracestate_add(ts, value, len);
    if (rc != XRAY_W3C_OK) {
        return rc;
    }

    xray_tracestate_limit(ts);

    return XRAY_W3C_OK;
}


size_t
xray_tracestate_format(unsigned char *buf, const xray_tracestate_t *ts)
{
    size_t          i;
    unsigned char  *p;

    p = buf;

    for (i = 0; i < ts->n; i++) {
        if (i) {
            *p++ = ',';
        }

        memcpy(p, ts->member[i].data, ts->member[i].len);
        p += ts->member[i].len;
    }

    return p - buf;
}


const char *
xray_w3c_strerror(xray_w3c_rc_e rc)
{
    if ((size_t) rc >= sizeof(xray_w3c_errors) / sizeof(char *)) {
        return "unknown error";
    }

    return xray_w3c_errors[rc];
}


void
xray_w3c_root_from_trace_id(unsigned char *root, const unsigned char *trace_id)
{
    root[0] = '1';
    root[1] = '-';
    memcpy(root + 2, trace_id, 8);
    root[10] = '-';
    memcpy(root + 11, trace_id + 8, 24);
}


int
xray_w3c_trace_id_from_root(unsigned char *trace_id, const unsigned char *root)
{
    size_t    i;
    unsigned  any;

    any = 0;

    for (i = 0; i < 8; i++) {
        trace_id[i] = xray_w3c_lower(root[2 + i]);
        any |= trace_id[i] != '0';
    }

    for (i = 0; i < 24; i++) {
        trace_id[8 + i] = xray_w3c_lower(root[11 + i]);
        any |= trace_id[8 + i] != '0';
    }

    return any != 0;
}


int
xray_w3c_same_trace(const unsigned char *root, const unsigned char *trace_id)
{
    size_t  i;

    for (i = 0; i < 8; i++) {
        if (xray_w3c_lower(root[2 + i]) != xray_w3c_lower(trace_id[i])) {
            return 0;
        }
    }

    for (i = 0; i < 24; i++) {
        if (xray_w3c_lower(root[11 + i]) != xray_w3c_lower(trace_id[8 + i])) {
            return 0;
        }
    }

    return 1;
}


/*
 * key = simple-key / multi-tenant-key
 * simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * multi-tenant-key = tenant-id "@" system-id
 * tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" /
 *             "/" )
 * system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 */

static int
xray_w3c_key_valid(const unsigned char *p, size_t len)
{
    size_t                i;
    const unsigned char  *at;

    at = memchr(p, '@', len);

    if (at == NULL) {
        if (len == 0 || len > 256 || !xray_w3c_is(p[0], XRAY_W3C_C_LCALPHA)) {
            return 0;
        }

    } else {
        /* tenant-id: 1..241; system-id: 1..14 and starts with lcalpha */

        if (at == p || at - p > 241
            || !xray_w3c_is(p[0], XRAY_W3C_C_LCALPHA | XRAY_W3C_C_DIGIT))
        {
            return 0;
        }

        i = len - (at - p) - 1;

        if (i == 0 || i > 14 || !xray_w3c_is(at[1], XRAY_W3C_C_LCALPHA)) {
            return 0;
        }
    }

    for (i = 0; i < len; i++) {
        if (p + i != at && !xray_w3c_is(p[i], XRAY_W3C_C_KEY)) {
            return 0;
        }
    }

    return 1;
}


/*
 * value = 0*255(chr) nblk-chr
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
 * chr = %x20 / nblk-chr
 */

static int
xray_w3c_value_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 256 || p[len - 1] == ' ') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!xray_w3c_is(p[i], XRAY_W3C_C_VALUE)) {
            return 0;
        }
    }

    return 1;
}


static size_t
xray_w3c_key_len(const xray_span_t *member)
{
    const unsigned char  *eq;

    eq = memchr(member->data, '=', member->len);

    return eq - member->data;
}


static void
xray_w3c_remove(xray_tracestate_t *ts, size_t i)
{
    memmove(&ts->member[i], &ts->member[i + 1],
            (ts->n - i - 1) * sizeof(xray_span_t));
    ts->n--;

    ts->len = 0;

    for (i = 0; i < ts->n; i++) {
        ts->len += (i ? 1 : 0) + ts->member[i].len;
    }
}


static int
xray_w3c_lhex(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!xray_w3c_is(p[i], XRAY_W3C_C_LHEX)) {
            return 0;
        }
    }

    return 1;
}


static int
xray_w3c_zero(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] != '0') {
            return 0;
        }
    }

    return 1;
}


/* c is a lower-case hex digit */

static unsigned
xray_w3c_hexval(unsigned char c)
{
    return (c <= '9') ? (unsigned) (c - '0') : (unsigned) (c - 'a' + 10);
}


static unsigned char
xray_w3c_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}
