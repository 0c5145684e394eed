/*
 * libFuzzer target for src/xray_w3c.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     t/unit/fuzz_w3c.c src/xray_w3c.c src/xray_header.c -o /tmp/fuzz_w3c
 * /tmp/fuzz_w3c -max_total_time=60 t/unit/corpus/w3c
 *
 * The input is read as a traceparent, and as a tracestate whose header
 * lines are separated by '\n'.  Any result must leave memory alone; an
 * accepted traceparent must hold non-zero lower-case ids inside the input,
 * format to a version 00 value that parses back to the same ids, and map to
 * an X-Ray Root and back; an accepted tracestate must fit the limits and
 * format to a list that parses back to the same members.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xray_w3c.h"


#define check(cond)  do { if (!(cond)) { __builtin_trap(); } } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
is_lhex(const unsigned char *p, size_t len)
{
    size_t  i, nonzero;

    nonzero = 0;

    for (i = 0; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }

        nonzero |= p[i] != '0';
    }

    return nonzero != 0;
}


static int
inside(const unsigned char *p, size_t len, const uint8_t *data, size_t size)
{
    return p >= data && len <= size && (size_t) (p - data) <= size - len;
}


static void
fuzz_traceparent(const uint8_t *data, size_t size)
{
    size_t                len;
    unsigned char         out[XRAY_TRACEPARENT_LEN];
    unsigned char         root[XRAY_TRACE_ID_LEN];
    unsigned char         id[XRAY_W3C_TRACE_ID_LEN];
    const char           *s;
    xray_w3c_rc_e         rc;
    xray_traceparent_t    tp, tp2;

    rc = xray_traceparent_parse(data, size, &tp);

    s = xray_w3c_strerror(rc);
    check(s != NULL && s[0] != '\0');

    if (rc != XRAY_W3C_OK) {
        return;
    }

    check(size >= XRAY_TRACEPARENT_LEN);
    check(tp.version < 0xff);
    check(tp.version != 0 || size == XRAY_TRACEPARENT_LEN);
    check(size == XRAY_TRACEPARENT_LEN || data[XRAY_TRACEPARENT_LEN] == '-');
    check(tp.flags <= 0xff);
    check(inside(tp.trace_id, XRAY_W3C_TRACE_ID_LEN, data, size));
    check(inside(tp.parent_id, XRAY_W3C_SPAN_ID_LEN, data, size));
    check(is_lhex(tp.trace_id, XRAY_W3C_TRACE_ID_LEN));
    check(is_lhex(tp.parent_id, XRAY_W3C_SPAN_ID_LEN));

    len = xray_traceparent_format(out, tp.trace_id, tp.parent_id,
                                  tp.flags & XRAY_W3C_SAMPLED);
    check(len == XRAY_TRACEPARENT_LEN);
    check(xray_traceparent_parse(out, len, &tp2) == XRAY_W3C_OK);
    check(tp2.version == 0);
    check(tp2.flags == (tp.flags & XRAY_W3C_SAMPLED));
    check(memcmp(tp2.trace_id, tp.trace_id, XRAY_W3C_TRACE_ID_LEN) == 0);
    check(memcmp(tp2.parent_id, tp.parent_id, XRAY_W3C_SPAN_ID_LEN) == 0);

    xray_w3c_root_from_trace_id(root, tp.trace_id);
    check(xray_trace_id_valid(root, XRAY_TRACE_ID_LEN));
    check(xray_w3c_same_trace(root, tp.trace_id));
    check(xray_w3c_trace_id_from_root(id, root) == 1);
    check(memcmp(id, tp.trace_id, XRAY_W3C_TRACE_ID_LEN) == 0);
}


static void
fuzz_tracestate(const uint8_t *data, size_t size)
{
    size_t                i, k, len;
    unsigned char        *out;
    const uint8_t        *p, *end, *nl;
    const char           *s;
    xray_w3c_rc_e         rc;
    xray_tracestate_t     ts, ts2;

    xray_tracestate_init(&ts);

    rc = XRAY_W3C_OK;
    p = data;
    end = data + size;

    while (rc == XRAY_W3C_OK) {
        nl = (p < end) ? memchr(p, '\n', end - p) : NULL;

        rc = xray_tracestate_add(&ts, p, (nl ? nl : end) - p);

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }

    s = xray_w3c_strerror(rc);
    check(s != NULL && s[0] != '\0');

    if (rc != XRAY_W3C_OK) {
        return;
    }

    check(ts.n <= XRAY_TRACESTATE_MAX_MEMBERS);

    xray_tracestate_limit(&ts);

    check(ts.len <= XRAY_TRACESTATE_MAX_LEN);

    for (i = 0; i < ts.n; i++) {
        check(inside(ts.member[i].data, ts.member[i].len, data, size));
        check(ts.member[i].len >= 3);

        for (k = 0; k < ts.member[i].len; k++) {
            check(ts.member[i].data[k] >= 0x20
                  && ts.member[i].data[k] <= 0x7e
                  && ts.member[i].data[k] != ',');
        }

        check(ts.member[i].data[0] != ' '
              && ts.member[i].data[ts.member[i].len - 1] != ' ');
    }

    /* exactly sized: ASan catches a write past ts.len */

    out = malloc(ts.len ? ts.len : 1);
    if (out == NULL) {
        return;
    }

    len = xray_tracestate_format(out, &ts);
    check(len == ts.len);

    check(xray_tracestate_parse(out, len, &ts2) == XRAY_W3C_OK);
    check(ts2.n == ts.n && ts2.len == ts.len && ts2.removed == 0);

    for (i = 0; i < ts.n; i++) {
        check(ts2.member[i].len == ts.member[i].len);
        check(memcmp(ts2.member[i].data, ts.member[i].data,
                     ts.member[i].len) == 0);
    }

    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_traceparent(data, size);
    fuzz_tracestate(data, size);

    return 0;
}
