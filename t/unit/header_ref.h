/*
 * The reference semantics of X-Amzn-Trace-Id parsing (docs/protocol.md,
 * section 1, "What this module does"), written to be read rather than to be
 * fast: look at every byte, cut the value at each ';', then judge each field
 * by itself, one rule after the other.  The unit test and the fuzz target
 * run xray_header_parse() and header_ref_parse() on the same input and
 * header_ref_diff() says where they disagree: the result, and on success
 * every field the parser keeps (the pointers into the input, not only the
 * bytes).
 */

#ifndef HEADER_REF_H
#define HEADER_REF_H

#include <stddef.h>
#include <string.h>

#include "xray_header.h"


#define HEADER_REF_ROOT     0x01
#define HEADER_REF_PARENT   0x02
#define HEADER_REF_SAMPLED  0x04
#define HEADER_REF_SELF     0x08


static int
header_ref_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}


/* what may appear in a value at all, whitespace aside */

static int
header_ref_allowed(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != ',';
}


static int
header_ref_key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}


static int
header_ref_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


static int
header_ref_all_hex(const unsigned char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!header_ref_hex(p[i])) {
            return 0;
        }
    }

    return 1;
}


static unsigned char
header_ref_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
}


/* ASCII case-insensitive equality of two keys */

static int
header_ref_same_key(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen)
{
    size_t  i;

    if (alen != blen) {
        return 0;
    }

    for (i = 0; i < alen; i++) {
        if (header_ref_lower(a[i]) != header_ref_lower(b[i])) {
            return 0;
        }
    }

    return 1;
}


/* HEADER_REF_* of a reserved key; 0 for Lineage and any other key */

static unsigned
header_ref_reserved(const unsigned char *key, size_t len)
{
    if (header_ref_same_key(key, len, (const unsigned char *) "Root", 4)) {
        return HEADER_REF_ROOT;
    }

    if (header_ref_same_key(key, len, (const unsigned char *) "Parent", 6)) {
        return HEADER_REF_PARENT;
    }

    if (header_ref_same_key(key, len, (const unsigned char *) "Sampled", 7))
    {
        return HEADER_REF_SAMPLED;
    }

    if (header_ref_same_key(key, len, (const unsigned char *) "Self", 4)) {
        return HEADER_REF_SELF;
    }

    return 0;
}


/* "1-" 8 hex "-" 24 hex */

static int
header_ref_root_ok(const unsigned char *v, size_t n)
{
    return n == 35 && v[0] == '1' && v[1] == '-' && v[10] == '-'
           && header_ref_all_hex(v + 2, 8) && header_ref_all_hex(v + 11, 24);
}


/*
 * One field, [s, e) without its ';'.  *nfields counts the non-empty fields
 * seen so far, *seen the reserved keys, key_len[] the kept fields' keys.
 */

static xray_header_rc_e
header_ref_field(const unsigned char *s, const unsigned char *e,
    xray_trace_ctx_t *ctx, size_t *nfields, unsigned *seen,
    size_t *key_len)
{
    size_t                i, klen, vlen;
    unsigned              bit;
    const unsigned char  *eq, *kend, *v;

    /* spaces and tabs around a field do not count; an empty field is none */

    while (s < e && header_ref_space(s[0])) {
        s++;
    }

    while (e > s && header_ref_space(e[-1])) {
        e--;
    }

    if (s == e) {
        return XRAY_HEADER_OK;
    }

    /* the field is counted before anything else about it is judged */

    (*nfields)++;

    if (*nfields > XRAY_HEADER_MAX_FIELDS) {
        return XRAY_HEADER_TOO_MANY_FIELDS;
    }

    eq = memchr(s, '=', e - s);
    if (eq == NULL) {
        return XRAY_HEADER_BAD_FIELD;
    }

    /* the key ends at the first '=', the value is everything after it */

    kend = eq;
    while (kend > s && header_ref_space(kend[-1])) {
        kend--;
    }

    v = eq + 1;
    while (v < e && header_ref_space(v[0])) {
        v++;
    }

    klen = kend - s;
    vlen = e - v;

    if (klen == 0 || vlen == 0) {
        return XRAY_HEADER_BAD_FIELD;
    }

    for (i = 0; i < klen; i++) {
        if (header_ref_space(s[i])) {
            return XRAY_HEADER_BAD_CHAR;
        }
    }

    for (i = 0; i < vlen; i++) {
        if (header_ref_space(v[i])) {
            return XRAY_HEADER_BAD_CHAR;
        }
    }

    if (klen > XRAY_HEADER_MAX_KEY) {
        return XRAY_HEADER_BAD_FIELD;
    }

    for (i = 0; i < klen; i++) {
        if (!header_ref_key_char(s[i])) {
            return XRAY_HEADER_BAD_FIELD;
        }
    }

    bit = header_ref_reserved(s, klen);

    if (bit == 0) {

        /* kept verbatim, so no whitespace around its '=' either */

        if (kend != eq || v != eq + 1) {
            return XRAY_HEADER_BAD_CHAR;
        }

        for (i = 0; i < ctx->nkept; i++) {
            if (header_ref_same_key(ctx->kept[i].data, key_len[i], s, klen)) {
                return XRAY_HEADER_DUPLICATE_KEY;
            }
        }

        key_len[ctx->nkept] = klen;
        ctx->kept[ctx->nkept].data = s;
        ctx->kept[ctx->nkept].len = e - s;
        ctx->nkept++;
        ctx->kept_len += e - s;

        return XRAY_HEADER_OK;
    }

    /* a reserved key given twice is reported before its value is judged */

    if (*seen & bit) {
        return XRAY_HEADER_DUPLICATE_KEY;
    }

    *seen |= bit;

    switch (bit) {

    case HEADER_REF_ROOT:
        if (!header_ref_root_ok(v, vlen)) {
            return XRAY_HEADER_BAD_ROOT;
        }

        ctx->root = v;
        return XRAY_HEADER_OK;

    case HEADER_REF_PARENT:
        if (vlen != 16 || !header_ref_all_hex(v, 16)) {
            return XRAY_HEADER_BAD_PARENT;
        }

        ctx->parent = v;
        return XRAY_HEADER_OK;

    case HEADER_REF_SAMPLED:
        if (vlen == 1 && v[0] == '0') {
            ctx->sampled = XRAY_SAMPLED_NO;

        } else if (vlen == 1 && v[0] == '1') {
            ctx->sampled = XRAY_SAMPLED_YES;

        } else if (vlen == 1 && v[0] == '?') {
            ctx->sampled = XRAY_SAMPLED_REQUESTED;

        } else {
            return XRAY_HEADER_BAD_SAMPLED;
        }

        return XRAY_HEADER_OK;

    default: /* Self: checked for its shape only, never kept */
        return XRAY_HEADER_OK;
    }
}


static xray_header_rc_e
header_ref_parse(const unsigned char *in, size_t len, xray_trace_ctx_t *ctx)
{
    size_t                i, nfields;
    size_t                key_len[XRAY_HEADER_MAX_FIELDS];
    unsigned              seen;
    int                   blank;
    const unsigned char  *s, *semi, *end;
    xray_header_rc_e      rc;

    ctx->root = NULL;
    ctx->parent = NULL;
    ctx->sampled = XRAY_SAMPLED_NONE;
    ctx->nkept = 0;
    ctx->kept_len = 0;

    if (len > XRAY_HEADER_MAX_LEN) {
        return XRAY_HEADER_TOO_LONG;
    }

    /* 1. every byte, before any field: a bad byte wins over all else */

    blank = 1;

    for (i = 0; i < len; i++) {
        if (header_ref_space(in[i])) {
            continue;
        }

        if (!header_ref_allowed(in[i])) {
            return XRAY_HEADER_BAD_CHAR;
        }

        blank = 0;
    }

    if (blank) {
        return XRAY_HEADER_EMPTY;
    }

    /* 2. field by field, in order: the first bad one decides */

    nfields = 0;
    seen = 0;
    s = in;
    end = in + len;

    for ( ;; ) {
        semi = memchr(s, ';', end - s);

        rc = header_ref_field(s, semi ? semi : end, ctx, &nfields, &seen,
                              key_len);
        if (rc != XRAY_HEADER_OK) {
            return rc;
        }

        if (semi == NULL) {
            break;
        }

        s = semi + 1;
    }

    /* 3. only when every field is good: was there a Root? */

    if (ctx->root == NULL) {
        return XRAY_HEADER_NO_ROOT;
    }

    return XRAY_HEADER_OK;
}


/*
 * Runs both parsers on in[0..len): NULL when they agree, else what differs.
 * On success they must agree on every kept field, pointers included; on
 * failure only the result counts (the context is undefined then).
 */

static const char *
header_ref_diff(const unsigned char *in, size_t len)
{
    size_t             i;
    xray_header_rc_e   rc, ref_rc;
    xray_trace_ctx_t   got, want;

    rc = xray_header_parse(in, len, &got);
    ref_rc = header_ref_parse(in, len, &want);

    if (rc != ref_rc) {
        return "result";
    }

    if (rc != XRAY_HEADER_OK) {
        return NULL;
    }

    if (got.root != want.root) {
        return "Root";
    }

    if (got.parent != want.parent) {
        return "Parent";
    }

    if (got.sampled != want.sampled) {
        return "Sampled";
    }

    if (got.nkept != want.nkept) {
        return "number of kept fields";
    }

    for (i = 0; i < got.nkept; i++) {
        if (got.kept[i].data != want.kept[i].data
            || got.kept[i].len != want.kept[i].len)
        {
            return "a kept field";
        }
    }

    if (got.kept_len != want.kept_len) {
        return "kept_len";
    }

    return NULL;
}

#endif /* HEADER_REF_H */
