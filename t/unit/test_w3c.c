/*
 * Unit tests of src/xray_w3c.c: traceparent, tracestate, the X-Ray id
 * mapping.  Every limit is tested at the limit and one past it.
 *
 * cc -std=c99 -Wall -Wextra -Werror -Isrc t/unit/test_w3c.c \
 *     src/xray_w3c.c -o /tmp/test_w3c && /tmp/test_w3c
 */

#include <stdint.h>
#include <stdlib.h>

#include "tap.h"
#include "xray_w3c.h"


#define T    "4bf92f3577b34da6a3ce929d0e0e4736"
#define S    "00f067aa0ba902b7"
#define TP   "00-" T "-" S "-01"

#define U(s)  ((const unsigned char *) (s))


typedef struct {
    const char     *name;
    const char     *in;
    size_t          len;
    xray_w3c_rc_e   rc;
    unsigned        version;           /* when OK */
    unsigned        flags;
} tp_case_t;


#define TPC(name, lit, rc, v, f)                                             \
    { name, lit, sizeof(lit) - 1, XRAY_W3C_ ## rc, v, f }


static const tp_case_t  tp_cases[] = {

    TPC("spec example, sampled", TP, OK, 0, 1),
    TPC("spec example, not sampled", "00-" T "-" S "-00", OK, 0, 0),
    TPC("other flags set, sampled bit read", "00-" T "-" S "-ff", OK, 0,
        0xff),
    TPC("other flag alone is not sampled", "00-" T "-" S "-02", OK, 0, 2),
    TPC("trace-id one above zero", "00-00000000000000000000000000000001-"
        S "-01", OK, 0, 1),
    TPC("parent-id one above zero", "00-" T "-0000000000000001-01", OK, 0,
        1),

    /* versions */
    TPC("version 01, exactly 55", "01-" T "-" S "-01", OK, 1, 1),
    TPC("version fe, exactly 55", "fe-" T "-" S "-00", OK, 0xfe, 0),
    TPC("version 01, more fields", "01-" T "-" S "-01-what-ever", OK, 1, 1),
    TPC("version 02, a '-' and nothing", "02-" T "-" S "-01-", OK, 2, 1),
    TPC("version cc, unknown bytes after '-'", "cc-" T "-" S "-09-\x01\xff",
        OK, 0xcc, 9),
    TPC("version ff", "ff-" T "-" S "-01", VERSION_FF, 0, 0),
    TPC("version ff, 56 bytes", "ff-" T "-" S "-01-", VERSION_FF, 0, 0),
    TPC("version FF upper-case", "FF-" T "-" S "-01", BAD_VERSION, 0, 0),
    TPC("version 0A upper-case", "0A-" T "-" S "-01", BAD_VERSION, 0, 0),
    TPC("version 0g", "0g-" T "-" S "-01", BAD_VERSION, 0, 0),
    TPC("version without '-'", "00_" T "-" S "-01", BAD_VERSION, 0, 0),
    TPC("version of 3 digits", "000-" T "-" S "-01", BAD_VERSION, 0, 0),
    TPC("version of 1 digit", "0-" T "-" S "-01", BAD_VERSION, 0, 0),
    TPC("version 01, no '-' after flags", "01-" T "-" S "-01x", BAD_FLAGS,
        0, 0),
    TPC("version 01, 3-digit flags", "01-" T "-" S "-010", BAD_FLAGS, 0, 0),

    /* lengths */
    TPC("empty", "", EMPTY, 0, 0),
    TPC("one byte", "0", BAD_VERSION, 0, 0),
    TPC("two bytes", "00", BAD_VERSION, 0, 0),
    TPC("just the version", "00-", TOO_SHORT, 0, 0),
    TPC("54 bytes", "00-" T "-" S "-0", TOO_SHORT, 0, 0),
    TPC("version 01, 54 bytes", "01-" T "-" S "-0", TOO_SHORT, 0, 0),
    TPC("version 00, 56 bytes", TP "0", TOO_LONG, 0, 0),
    TPC("version 00, more fields", TP "-what-ever", TOO_LONG, 0, 0),
    TPC("version 00, trailing space", TP " ", TOO_LONG, 0, 0),
    TPC("leading space", " " TP, BAD_VERSION, 0, 0),
    TPC("version 00, trailing CR LF", TP "\r\n", TOO_LONG, 0, 0),

    /* trace-id */
    TPC("trace-id upper-case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" S
        "-01", BAD_TRACE_ID, 0, 0),
    TPC("trace-id one upper-case digit", "00-4bf92f3577b34da6a3ce929d0e0e473"
        "F-" S "-01", BAD_TRACE_ID, 0, 0),
    TPC("trace-id non-hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-" S "-01",
        BAD_TRACE_ID, 0, 0),
    TPC("trace-id all zero", "00-00000000000000000000000000000000-" S "-01",
        ZERO_TRACE_ID, 0, 0),
    TPC("trace-id 31 digits", "00-4bf92f3577b34da6a3ce929d0e0e473-" S
        "-010", BAD_TRACE_ID, 0, 0),
    TPC("trace-id 33 digits", "00-4bf92f3577b34da6a3ce929d0e0e47360-" S
        "-1", BAD_TRACE_ID, 0, 0),
    TPC("no '-' after trace-id", "00-" T "_" S "-01", BAD_TRACE_ID, 0, 0),
    TPC("trace-id with NUL", "00-4bf92f3577b34da6\0" "3ce929d0e0e4736-" S
        "-01", BAD_TRACE_ID, 0, 0),

    /* parent-id */
    TPC("parent-id upper-case", "00-" T "-00F067AA0BA902B7-01",
        BAD_PARENT_ID, 0, 0),
    TPC("parent-id non-hex", "00-" T "-00f067aa0ba902bz-01", BAD_PARENT_ID,
        0, 0),
    TPC("parent-id all zero", "00-" T "-0000000000000000-01",
        ZERO_PARENT_ID, 0, 0),
    TPC("no '-' after parent-id", "00-" T "-" S "_01", BAD_PARENT_ID, 0, 0),
    TPC("parent-id 15 digits", "00-" T "-00f067aa0ba902b-010",
        BAD_PARENT_ID, 0, 0),

    /* flags */
    TPC("flags upper-case", "00-" T "-" S "-0A", BAD_FLAGS, 0, 0),
    TPC("flags non-hex", "00-" T "-" S "-0x", BAD_FLAGS, 0, 0),
    TPC("flags with CR", "00-" T "-" S "-0\r", BAD_FLAGS, 0, 0),

    /* the first bad field names the error */
    TPC("bad trace-id and parent-id", "00-" T "x" S "x01", BAD_TRACE_ID, 0,
        0),
    TPC("zero trace-id and bad flags",
        "00-00000000000000000000000000000000-" S "-xx", ZERO_TRACE_ID, 0, 0),
    TPC("X-Ray header is not a traceparent",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", BAD_VERSION,
        0, 0)
};


static void
test_traceparent(void)
{
    size_t               i;
    xray_w3c_rc_e        rc;
    xray_traceparent_t   tp;
    const tp_case_t     *c;

    for (i = 0; i < sizeof(tp_cases) / sizeof(tp_cases[0]); i++) {
        c = &tp_cases[i];

        rc = xray_traceparent_parse(U(c->in), c->len, &tp);

        if (!is_int(rc, c->rc, "traceparent: %s: %s", c->name,
                    xray_w3c_strerror(c->rc)))
        {
            printf("#   got: %s\n", xray_w3c_strerror(rc));
            continue;
        }

        if (rc != XRAY_W3C_OK) {
            continue;
        }

        ok(tp.trace_id == U(c->in) + 3 && tp.parent_id == U(c->in) + 36,
           "traceparent: %s: ids point into the input", c->name);
        is_int(tp.version, c->version, "traceparent: %s: version", c->name);
        is_int(tp.flags, c->flags, "traceparent: %s: flags", c->name);
    }

    ok(i >= 50, "traceparent: at least 50 cases (%d)", (int) i);

    /* exactly sized: ASan catches a read past 55 bytes of version 00 */
    {
        unsigned char  *buf;

        buf = malloc(XRAY_TRACEPARENT_LEN);
        if (buf != NULL) {
            memcpy(buf, TP, XRAY_TRACEPARENT_LEN);
            is_int(xray_traceparent_parse(buf, XRAY_TRACEPARENT_LEN, &tp),
                   XRAY_W3C_OK, "traceparent: heap buffer of 55 bytes");
            memcpy(buf, "01", 2);
            is_int(xray_traceparent_parse(buf, XRAY_TRACEPARENT_LEN, &tp),
                   XRAY_W3C_OK, "traceparent: version 01 in 55 bytes");
            free(buf);
        }
    }

    is_int(xray_traceparent_parse(NULL, 0, &tp), XRAY_W3C_EMPTY,
           "traceparent: NULL, 0 is empty");
}


/* every byte value at every position of a version 00 traceparent */

static void
test_traceparent_every_byte(void)
{
    int                  c, bad_c, lhex;
    size_t               i;
    unsigned char        buf[XRAY_TRACEPARENT_LEN];
    xray_w3c_rc_e        rc, want;
    xray_traceparent_t   tp;

    bad_c = -1;

    for (i = 0; i < XRAY_TRACEPARENT_LEN && bad_c < 0; i++) {
        for (c = 0; c < 256; c++) {
            memcpy(buf, TP, XRAY_TRACEPARENT_LEN);

            if (buf[i] == c) {
                continue;
            }

            buf[i] = (unsigned char) c;

            lhex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');

            if (i < 2) {
                /* a higher version (never ff: one byte changes) reads
                 * the same 55 bytes */
                want = lhex ? XRAY_W3C_OK : XRAY_W3C_BAD_VERSION;

            } else if (i == 2) {
                want = XRAY_W3C_BAD_VERSION;

            } else if (i < 35) {
                want = lhex ? XRAY_W3C_OK : XRAY_W3C_BAD_TRACE_ID;

            } else if (i == 35) {
                want = XRAY_W3C_BAD_TRACE_ID;

            } else if (i < 52) {
                want = lhex ? XRAY_W3C_OK : XRAY_W3C_BAD_PARENT_ID;

            } else if (i == 52) {
                want = XRAY_W3C_BAD_PARENT_ID;

            } else {
                want = lhex ? XRAY_W3C_OK : XRAY_W3C_BAD_FLAGS;
            }

            rc = xray_traceparent_parse(buf, XRAY_TRACEPARENT_LEN, &tp);

            if (rc != want) {
                bad_c = c;
                printf("#   position %d byte 0x%02x: %s\n", (int) i, c,
                       xray_w3c_strerror(rc));
                break;
            }
        }
    }

    is_int(bad_c, -1, "traceparent: every byte at every position");
}


static void
test_traceparent_format(void)
{
    size_t               len;
    unsigned char        buf[XRAY_TRACEPARENT_LEN + 1];
    xray_traceparent_t   tp;

    buf[XRAY_TRACEPARENT_LEN] = '#';

    len = xray_traceparent_format(buf, U(T), U(S), 1);
    is_mem(buf, len, TP, "format: sampled");
    is_int(buf[XRAY_TRACEPARENT_LEN], '#', "format: writes 55 bytes only");

    len = xray_traceparent_format(buf, U(T), U(S), 0);
    is_mem(buf, len, "00-" T "-" S "-00", "format: not sampled");

    len = xray_traceparent_format(buf, U("4BF92F3577B34DA6A3CE929D0E0E4736"),
                                  U("00F067AA0BA902B7"), 1);
    is_mem(buf, len, TP, "format: upper-case ids written lower-case");

    is_int(xray_traceparent_parse(buf, len, &tp), XRAY_W3C_OK,
           "format: parses back");
    ok(memcmp(tp.trace_id, T, 32) == 0 && memcmp(tp.parent_id, S, 16) == 0
       && tp.flags == 1, "format: round trip");
}


/* tracestate */

typedef struct {
    const char     *name;
    const char     *in;
    size_t          len;
    xray_w3c_rc_e   rc;
    const char     *out;               /* when OK */
} ts_case_t;


#define TSC(name, lit, rc, out)                                              \
    { name, lit, sizeof(lit) - 1, XRAY_W3C_ ## rc, out }


static const ts_case_t  ts_cases[] = {

    TSC("spec example", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", OK,
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    TSC("one member", "congo=t61rcWkgMzE", OK, "congo=t61rcWkgMzE"),
    TSC("empty", "", OK, ""),
    TSC("whitespace only", " \t ", OK, ""),
    TSC("commas only", ",, ,\t,", OK, ""),
    TSC("whitespace around members removed",
        " \ta=1 ,\t b=2\t ,c=3 ", OK, "a=1,b=2,c=3"),
    TSC("empty members skipped", ",a=1,,b=2,", OK, "a=1,b=2"),
    TSC("leading spaces of a value kept", "a=  x y", OK, "a=  x y"),
    TSC("every value character", "k=!\"#$%&'()*+-./0123456789:;<>?@ABCDEF"
        "GHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", OK,
        "k=!\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
        "abcdefghijklmnopqrstuvwxyz{|}~"),
    TSC("every key character", "a0_-*/z=1", OK, "a0_-*/z=1"),
    TSC("multi-tenant key", "fw529a3039@dt=FW4;0;0;0;0;0;0;0", OK,
        "fw529a3039@dt=FW4;0;0;0;0;0;0;0"),
    TSC("multi-tenant key, tenant starts with a digit", "1a@b=1", OK,
        "1a@b=1"),
    TSC("same key, other tenants", "a@x=1,a@y=2,a=3", OK,
        "a@x=1,a@y=2,a=3"),

    TSC("CR", "a=1\r", STATE_BAD_CHAR, NULL),
    TSC("LF", "a=1\nb=2", STATE_BAD_CHAR, NULL),
    TSC("NUL", "a=\0", STATE_BAD_CHAR, NULL),
    TSC("DEL", "a=\x7f", STATE_BAD_CHAR, NULL),
    TSC("UTF-8", "a=caf\xc3\xa9", STATE_BAD_CHAR, NULL),
    TSC("bad byte wins over an earlier bad member", "junk,a=\x01",
        STATE_BAD_CHAR, NULL),

    TSC("no '='", "a=1,junk", STATE_BAD_MEMBER, NULL),
    TSC("value holds ',' (splits into a bad member)", "a=1,2",
        STATE_BAD_MEMBER, NULL),

    TSC("empty key", "=1", STATE_BAD_KEY, NULL),
    TSC("upper-case key", "Rojo=1", STATE_BAD_KEY, NULL),
    TSC("key starts with a digit", "1a=1", STATE_BAD_KEY, NULL),
    TSC("key starts with '_'", "_a=1", STATE_BAD_KEY, NULL),
    TSC("space before '='", "a =1", STATE_BAD_KEY, NULL),
    TSC("'.' in key", "a.b=1", STATE_BAD_KEY, NULL),
    TSC("empty tenant-id", "@b=1", STATE_BAD_KEY, NULL),
    TSC("empty system-id", "a@=1", STATE_BAD_KEY, NULL),
    TSC("system-id starts with a digit", "a@1=1", STATE_BAD_KEY, NULL),
    TSC("two '@'", "a@b@c=1", STATE_BAD_KEY, NULL),
    TSC("tenant-id starts with '_'", "_a@b=1", STATE_BAD_KEY, NULL),

    TSC("empty value", "a=", STATE_BAD_VALUE, NULL),
    TSC("value of spaces only", "a=   ,b=1", STATE_BAD_VALUE, NULL),
    TSC("'=' in value", "a=b=c", STATE_BAD_VALUE, NULL),
    TSC("tab in value", "a=b\tc", STATE_BAD_VALUE, NULL),

    TSC("duplicate key", "a=1,b=2,a=3", STATE_DUPLICATE_KEY, NULL),
    TSC("duplicate multi-tenant key", "t@s=1,t@s=1",
        STATE_DUPLICATE_KEY, NULL),
    TSC("a prefix is not a duplicate", "ab=1,a=2,abc=3", OK,
        "ab=1,a=2,abc=3"),

    TSC("first bad member names the error", "A=1,a=", STATE_BAD_KEY, NULL)
};


static void
test_tracestate(void)
{
    size_t              i, len;
    unsigned char       out[XRAY_TRACESTATE_MAX_LEN];
    xray_w3c_rc_e       rc;
    xray_tracestate_t   ts;
    const ts_case_t    *c;

    for (i = 0; i < sizeof(ts_cases) / sizeof(ts_cases[0]); i++) {
        c = &ts_cases[i];

        rc = xray_tracestate_parse(U(c->in), c->len, &ts);

        if (!is_int(rc, c->rc, "tracestate: %s: %s", c->name,
                    xray_w3c_strerror(c->rc)))
        {
            printf("#   got: %s\n", xray_w3c_strerror(rc));
            continue;
        }

        if (rc != XRAY_W3C_OK) {
            continue;
        }

        len = xray_tracestate_format(out, &ts);
        is_mem(out, len, c->out, "tracestate: %s: format", c->name);
        is_int(ts.len, len, "tracestate: %s: len", c->name);
    }
}


/* n members "kNN=v", then the string given */

static size_t
build_members(char *buf, size_t n, const char *sep)
{
    size_t  i, len;

    len = 0;

    for (i = 0; i < n; i++) {
        if (i) {
            len += sprintf(buf + len, "%s", sep);
        }

        len += sprintf(buf + len, "k%02u=v", (unsigned) i);
    }

    return len;
}


static void
test_tracestate_members(void)
{
    char                buf[2048];
    size_t              len;
    xray_tracestate_t   ts;

    len = build_members(buf, 32, ",");
    is_int(xray_tracestate_parse(U(buf), len, &ts), XRAY_W3C_OK,
           "members: 32");
    is_int(ts.n, 32, "members: 32 kept");

    len = build_members(buf, 33, ",");
    is_int(xray_tracestate_parse(U(buf), len, &ts), XRAY_W3C_STATE_TOO_MANY,
           "members: 33");

    len = build_members(buf, 32, " , ,\t,");
    is_int(xray_tracestate_parse(U(buf), len, &ts), XRAY_W3C_OK,
           "members: 32 and empty ones");
    is_int(ts.n, 32, "members: empty ones not counted");

    /* over several lines, as several header lines arrive */

    xray_tracestate_init(&ts);
    len = build_members(buf, 16, ",");
    is_int(xray_tracestate_add(&ts, U(buf), len), XRAY_W3C_OK,
           "lines: first 16");
    len = build_members(buf, 32, ",");
    is_int(xray_tracestate_add(&ts, U(buf), len),
           XRAY_W3C_STATE_DUPLICATE_KEY, "lines: duplicate across lines");

    xray_tracestate_init(&ts);
    is_int(xray_tracestate_add(&ts, U("a=1,b=2"), 7), XRAY_W3C_OK,
           "lines: one");
    is_int(xray_tracestate_add(&ts, U(""), 0), XRAY_W3C_OK,
           "lines: an empty line");
    is_int(xray_tracestate_add(&ts, U(" c=3"), 4), XRAY_W3C_OK,
           "lines: three");
    len = xray_tracestate_format((unsigned char *) buf, &ts);
    is_mem(buf, len, "a=1,b=2,c=3", "lines: joined in order");

    xray_tracestate_init(&ts);
    len = build_members(buf, 31, ",");
    xray_tracestate_add(&ts, U(buf), len);
    is_int(xray_tracestate_add(&ts, U("x=1"), 3), XRAY_W3C_OK,
           "lines: 32nd member on its own line");
    is_int(xray_tracestate_add(&ts, U("y=1"), 3), XRAY_W3C_STATE_TOO_MANY,
           "lines: 33rd member on its own line");
}


/* a key or a value of n bytes, in a heap buffer of exactly its size */

static void
check_key_len(size_t n, xray_w3c_rc_e want, const char *what)
{
    char               *buf;
    xray_tracestate_t   ts;

    buf = malloc(n + 2);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    memset(buf, 'k', n);
    memcpy(buf + n, "=v", 2);

    is_int(xray_tracestate_parse(U(buf), n + 2, &ts), want, "%s", what);

    free(buf);
}


static void
check_tenant_len(size_t tenant, size_t system, xray_w3c_rc_e want,
    const char *what)
{
    char               *buf;
    size_t              len;
    xray_tracestate_t   ts;

    len = tenant + 1 + system + 2;

    buf = malloc(len);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    memset(buf, '7', tenant);
    buf[tenant] = '@';
    memset(buf + tenant + 1, 's', system);
    memcpy(buf + tenant + 1 + system, "=v", 2);

    is_int(xray_tracestate_parse(U(buf), len, &ts), want, "%s", what);

    free(buf);
}


static void
check_value_len(size_t n, xray_w3c_rc_e want, const char *what)
{
    char               *buf;
    xray_tracestate_t   ts;

    buf = malloc(n + 2);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    memcpy(buf, "k=", 2);
    memset(buf + 2, 'V', n);

    is_int(xray_tracestate_parse(U(buf), n + 2, &ts), want, "%s", what);

    free(buf);
}


static void
test_tracestate_lengths(void)
{
    check_key_len(256, XRAY_W3C_OK, "key: 256 bytes");
    check_key_len(257, XRAY_W3C_STATE_BAD_KEY, "key: 257 bytes");
    check_key_len(1, XRAY_W3C_OK, "key: 1 byte");

    check_tenant_len(241, 14, XRAY_W3C_OK, "key: tenant 241, system 14");
    check_tenant_len(242, 14, XRAY_W3C_STATE_BAD_KEY, "key: tenant 242");
    check_tenant_len(241, 15, XRAY_W3C_STATE_BAD_KEY, "key: system 15");
    check_tenant_len(1, 1, XRAY_W3C_OK, "key: tenant 1, system 1");

    check_value_len(256, XRAY_W3C_OK, "value: 256 bytes");
    check_value_len(257, XRAY_W3C_STATE_BAD_VALUE, "value: 257 bytes");
    check_value_len(1, XRAY_W3C_OK, "value: 1 byte");
}


/* members of the given lengths ("m<i>=<x...>"), parsed; the lengths left */

static void
check_limit(const size_t *lens, size_t n, const size_t *left, size_t nleft,
    const char *what)
{
    char                buf[32 * 300];
    size_t              i, len, k, removed;
    xray_tracestate_t   ts;

    len = 0;

    for (i = 0; i < n; i++) {
        if (i) {
            buf[len++] = ',';
        }

        k = sprintf(buf + len, "m%c=", (int) ('a' + i));
        memset(buf + len + k, 'x', lens[i] - k);
        len += lens[i];
    }

    if (!is_int(xray_tracestate_parse(U(buf), len, &ts), XRAY_W3C_OK,
                "limit: %s: parses", what))
    {
        return;
    }

    removed = n - nleft;

    is_int(ts.n, nleft, "limit: %s: %d members left", what, (int) nleft);
    is_int(ts.removed, removed, "limit: %s: %d removed", what,
           (int) removed);

    for (i = 0; i < nleft && i < ts.n; i++) {
        is_int(ts.member[i].len, left[i], "limit: %s: member %d", what,
               (int) i);
    }

    ok(ts.len <= XRAY_TRACESTATE_MAX_LEN, "limit: %s: fits", what);
}


static void
test_tracestate_limit(void)
{
    static const size_t  fit[] = { 128, 128, 128, 125 };          /* 512 */
    static const size_t  over[] = { 128, 128, 128, 126 };         /* 513 */
    static const size_t  over_left[] = { 128, 128, 128 };
    static const size_t  long1[] = { 200, 100, 100, 120 };        /* 523 */
    static const size_t  long1_left[] = { 100, 100, 120 };
    static const size_t  longs[] = { 150, 50, 150, 170 };         /* 523 */
    static const size_t  longs_left[] = { 150, 50, 150 };
    static const size_t  at129[] = { 129, 128, 128, 128 };        /* 516 */
    static const size_t  at129_left[] = { 128, 128, 128 };
    static const size_t  big[] = { 258, 258 };                    /* 517 */
    static const size_t  big_left[] = { 258 };

    check_limit(fit, 4, fit, 4, "512 bytes joined");
    check_limit(over, 4, over_left, 3, "513 bytes: the last member goes");
    check_limit(long1, 4, long1_left, 3, "a long member goes first");
    check_limit(longs, 4, longs_left, 3, "the rightmost long member first");
    check_limit(at129, 4, at129_left, 3, "129 bytes is long, 128 not");
    check_limit(big, 2, big_left, 1, "two long members, one goes");

    /* the longest member: a 256-byte key and a 256-byte value */
    {
        char                buf[513];
        xray_tracestate_t   ts;

        memset(buf, 'k', 256);
        buf[256] = '=';
        memset(buf + 257, 'v', 256);

        is_int(xray_tracestate_parse(U(buf), 513, &ts), XRAY_W3C_OK,
               "limit: one member of 513 bytes is valid");
        is_int(ts.n, 0, "limit: one member of 513 bytes: cut");
        is_int(ts.removed, 1, "limit: one member of 513 bytes: removed");

        is_int(xray_tracestate_parse(U(buf + 1), 512, &ts), XRAY_W3C_OK,
               "limit: one member of 512 bytes is valid");
        is_int(ts.n, 1, "limit: one member of 512 bytes: kept");
    }
}


/* every byte value in a value and in a key */

static void
test_tracestate_every_byte(void)
{
    int                 c, bad;
    unsigned char       buf[8];
    xray_w3c_rc_e       rc, want;
    xray_tracestate_t   ts;

    bad = -1;

    for (c = 0; c < 256; c++) {
        memcpy(buf, "k=a", 3);
        buf[3] = (unsigned char) c;
        buf[4] = 'b';

        if (c == '\t') {
            want = XRAY_W3C_STATE_BAD_VALUE;

        } else if (c == ',') {
            want = XRAY_W3C_STATE_BAD_MEMBER;  /* "b" */

        } else if (c == '=') {
            want = XRAY_W3C_STATE_BAD_VALUE;

        } else if (c >= 0x20 && c <= 0x7e) {
            want = XRAY_W3C_OK;

        } else {
            want = XRAY_W3C_STATE_BAD_CHAR;
        }

        rc = xray_tracestate_parse(buf, 5, &ts);
        if (rc != want) {
            bad = c;
            printf("#   value byte 0x%02x: %s\n", c, xray_w3c_strerror(rc));
            break;
        }
    }

    is_int(bad, -1, "tracestate: every byte in a value");

    bad = -1;

    for (c = 0; c < 256; c++) {
        memcpy(buf, "kk=1", 4);
        buf[1] = (unsigned char) c;

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
            || c == '-' || c == '*' || c == '/')
        {
            want = XRAY_W3C_OK;

        } else if (c == '=') {
            want = XRAY_W3C_STATE_BAD_VALUE;   /* "k" = "=1" */

        } else if (c == ',') {
            want = XRAY_W3C_STATE_BAD_MEMBER;  /* "k" */

        } else if (c >= 0x20 && c <= 0x7e) {
            want = XRAY_W3C_STATE_BAD_KEY;     /* '@': empty system-id */

        } else if (c == '\t') {
            want = XRAY_W3C_STATE_BAD_KEY;

        } else {
            want = XRAY_W3C_STATE_BAD_CHAR;
        }

        rc = xray_tracestate_parse(buf, 4, &ts);
        if (rc != want) {
            bad = c;
            printf("#   key byte 0x%02x: %s\n", c, xray_w3c_strerror(rc));
            break;
        }
    }

    is_int(bad, -1, "tracestate: every byte in a key");
}


static void
test_mapping(void)
{
    unsigned char  root[XRAY_TRACE_ID_LEN], id[XRAY_W3C_TRACE_ID_LEN];

    xray_w3c_root_from_trace_id(root, U(T));
    is_mem(root, XRAY_TRACE_ID_LEN, "1-4bf92f35-77b34da6a3ce929d0e0e4736",
           "mapping: trace id to Root");
    ok(xray_trace_id_valid(root, XRAY_TRACE_ID_LEN),
       "mapping: the Root is a valid X-Ray trace id");

    ok(xray_w3c_trace_id_from_root(id,
           U("1-5759e988-bd862e3fe1be46a994272793")),
       "mapping: Root to trace id");
    is_mem(id, 32, "5759e988bd862e3fe1be46a994272793",
           "mapping: Root to trace id: digits");

    ok(xray_w3c_trace_id_from_root(id,
           U("1-5759E988-BD862E3FE1BE46A994272793")),
       "mapping: upper-case Root");
    is_mem(id, 32, "5759e988bd862e3fe1be46a994272793",
           "mapping: upper-case Root written lower-case");

    ok(!xray_w3c_trace_id_from_root(id,
           U("1-00000000-000000000000000000000000")),
       "mapping: all-zero Root has no W3C form");
    ok(xray_w3c_trace_id_from_root(id,
           U("1-00000000-000000000000000000000001")),
       "mapping: Root one above zero");
    ok(xray_w3c_trace_id_from_root(id,
           U("1-10000000-000000000000000000000000")),
       "mapping: Root with a non-zero epoch only");

    xray_w3c_trace_id_from_root(id, root);
    is_mem(id, 32, T, "mapping: round trip");

    ok(xray_w3c_same_trace(U("1-4bf92f35-77b34da6a3ce929d0e0e4736"), U(T)),
       "same trace: equal");
    ok(xray_w3c_same_trace(U("1-4BF92F35-77B34DA6A3CE929D0E0E4736"), U(T)),
       "same trace: case-insensitive");
    ok(!xray_w3c_same_trace(U("1-4bf92f35-77b34da6a3ce929d0e0e4737"), U(T)),
       "same trace: last digit differs");
    ok(!xray_w3c_same_trace(U("1-5bf92f35-77b34da6a3ce929d0e0e4736"), U(T)),
       "same trace: first digit differs");
    ok(!xray_w3c_same_trace(U("1-4bf92f3577b34da6-a3ce929d0e0e4736"),
                            U(T)),
       "same trace: shifted delimiter");
}


static void
test_strerror(void)
{
    int          rc, k, distinct;
    const char  *s;

    distinct = 1;

    for (rc = XRAY_W3C_OK; rc <= XRAY_W3C_STATE_TOO_MANY; rc++) {
        s = xray_w3c_strerror((xray_w3c_rc_e) rc);

        if (s == NULL || s[0] == '\0'
            || strcmp(s, xray_w3c_strerror((xray_w3c_rc_e) 99)) == 0)
        {
            distinct = 0;
        }

        for (k = XRAY_W3C_OK; k < rc; k++) {
            if (strcmp(s, xray_w3c_strerror((xray_w3c_rc_e) k)) == 0) {
                distinct = 0;
            }
        }
    }

    ok(distinct, "strerror: every result has its own text");
    is_mem(xray_w3c_strerror((xray_w3c_rc_e) 99),
           strlen(xray_w3c_strerror((xray_w3c_rc_e) 99)), "unknown error",
           "strerror: out of range");
}


int
main(void)
{
    test_traceparent();
    test_traceparent_every_byte();
    test_traceparent_format();
    test_tracestate();
    test_tracestate_members();
    test_tracestate_lengths();
    test_tracestate_limit();
    test_tracestate_every_byte();
    test_mapping();
    test_strerror();

    return done_testing();
}
