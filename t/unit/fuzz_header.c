/*
 * libFuzzer target for src/xray_header.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     t/unit/fuzz_header.c src/xray_header.c -o /tmp/fuzz_header
 * /tmp/fuzz_header -max_total_time=60 t/unit/corpus/header
 *
 * Any parse result must leave memory alone, be the result of the simple
 * reference in header_ref.h, with the same kept fields, and be the same
 * with a space before the value (the general loop, never the canonical
 * fast path); an accepted header must hold a valid Root, a hex Parent,
 * kept spans inside the input, and must format to a clean value that
 * parses back to the same trace.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "header_ref.h"
#include "xray_header.h"


#define check(cond)  do { if (!(cond)) { __builtin_trap(); } } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9')
           || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


static int
inside(const unsigned char *p, size_t len, const uint8_t *data, size_t size)
{
    return p >= data && len <= size && (size_t) (p - data) <= size - len;
}


static void
check_kept(const xray_trace_ctx_t *ctx, const uint8_t *data, size_t size)
{
    size_t                i, k, sum;
    const unsigned char  *p, *eq;

    check(ctx->nkept < XRAY_HEADER_MAX_FIELDS);

    sum = 0;

    for (i = 0; i < ctx->nkept; i++) {
        p = ctx->kept[i].data;

        check(ctx->kept[i].len >= 3);
        check(inside(p, ctx->kept[i].len, data, size));

        /* non-empty key before the first '=', non-empty value after it */
        eq = memchr(p, '=', ctx->kept[i].len);
        check(eq != NULL && eq > p && eq < p + ctx->kept[i].len - 1);

        for (k = 0; k < ctx->kept[i].len; k++) {
            check(p[k] > 0x20 && p[k] < 0x7f && p[k] != ';' && p[k] != ',');
        }

        sum += ctx->kept[i].len;
    }

    check(sum == ctx->kept_len);
}


static void
check_same(const xray_trace_ctx_t *a, const xray_trace_ctx_t *b)
{
    size_t  i;

    check(memcmp(a->root, b->root, XRAY_TRACE_ID_LEN) == 0);

    if (a->parent == NULL) {
        check(b->parent == NULL);

    } else {
        check(b->parent != NULL
              && memcmp(a->parent, b->parent, XRAY_ID_LEN) == 0);
    }

    check(a->sampled == b->sampled);
    check(a->nkept == b->nkept);
    check(a->kept_len == b->kept_len);

    for (i = 0; i < a->nkept; i++) {
        check(a->kept[i].len == b->kept[i].len);
        check(memcmp(a->kept[i].data, b->kept[i].data, a->kept[i].len) == 0);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t             i, len;
    unsigned char     *out;
    const char        *s;
    xray_trace_ctx_t   ctx, ctx2;
    xray_header_rc_e   rc;

    /* the fast parser and the reference agree, field by field */
    check(header_ref_diff(data, size) == NULL);

    rc = xray_header_parse(data, size, &ctx);

    s = xray_header_strerror(rc);
    check(s != NULL && s[0] != '\0');

    /*
     * a leading space sends any header through the general loop: the
     * canonical form's fast path must agree with it
     */

    if (size < XRAY_HEADER_MAX_LEN) {
        out = malloc(size + 1);
        if (out == NULL) {
            return 0;
        }

        out[0] = ' ';
        if (size > 0) {
            memcpy(out + 1, data, size);
        }

        check(xray_header_parse(out, size + 1, &ctx2) == rc);

        if (rc == XRAY_HEADER_OK) {
            check(ctx2.root - out == ctx.root - data + 1);
            check((ctx.parent == NULL) == (ctx2.parent == NULL));
            check(ctx.parent == NULL
                  || ctx2.parent - out == ctx.parent - data + 1);
            check_same(&ctx, &ctx2);
        }

        free(out);
    }

    if (rc != XRAY_HEADER_OK) {
        return 0;
    }

    check(size <= XRAY_HEADER_MAX_LEN);

    check(ctx.root != NULL);
    check(inside(ctx.root, XRAY_TRACE_ID_LEN, data, size));
    check(xray_trace_id_valid(ctx.root, XRAY_TRACE_ID_LEN));

    if (ctx.parent != NULL) {
        check(inside(ctx.parent, XRAY_ID_LEN, data, size));

        for (i = 0; i < XRAY_ID_LEN; i++) {
            check(is_hex(ctx.parent[i]));
        }
    }

    check(ctx.sampled >= XRAY_SAMPLED_NONE
          && ctx.sampled <= XRAY_SAMPLED_REQUESTED);

    check_kept(&ctx, data, size);

    /* exactly sized: ASan catches a write past XRAY_HEADER_OUT_MAX */

    out = malloc(XRAY_HEADER_OUT_MAX);
    if (out == NULL) {
        return 0;
    }

    len = xray_header_format(out, ctx.root, ctx.parent, ctx.sampled, &ctx);
    check(len <= XRAY_HEADER_OUT_MAX);

    for (i = 0; i < len; i++) {
        check(out[i] > 0x20 && out[i] < 0x7f && out[i] != ',');
    }

    check(xray_header_parse(out, len, &ctx2) == XRAY_HEADER_OK);
    check_same(&ctx, &ctx2);

    /* what a proxy that originated the trace would write */

    len = xray_header_format(out, ctx.root, NULL, XRAY_SAMPLED_NONE, NULL);
    check(len == sizeof("Root=") - 1 + XRAY_TRACE_ID_LEN);
    check(xray_header_parse(out, len, &ctx2) == XRAY_HEADER_OK);
    check(ctx2.parent == NULL && ctx2.nkept == 0);

    free(out);

    return 0;
}
