/*
 * X-Amzn-Trace-Id: parse, validate and format.
 *
 * Choices the grammar (docs/protocol.md, section 1) leaves open:
 *
 * - Every byte is checked before any field is looked at, so BAD_CHAR wins
 *   over every other error.  Allowed: 0x21..0x7e except ',', plus SP and
 *   HTAB.  A ',' would turn the value into a list once a proxy folds it with
 *   another header line.
 * - Keys are [A-Za-z0-9_.-], at most XRAY_HEADER_MAX_KEY bytes; anything else
 *   is BAD_FIELD.  Every key AWS services and SDKs send fits, and nothing odd
 *   gets forwarded as a key.
 * - SP/HTAB inside a key or a value is BAD_CHAR.  Around '=' it is ignored
 *   for Root, Parent, Sampled and Self, which are checked and rewritten.  A
 *   kept field (Lineage, unknown keys) is forwarded as one span of the input,
 *   so whitespace around its '=' would be forwarded too: that is BAD_CHAR as
 *   well, rather than a silently dropped field.
 * - The first bad field, in header order, decides the error; a duplicate is
 *   reported before the second value is checked; NO_ROOT comes last, when
 *   every field is good.
 * - A header of only ';' and whitespace is NO_ROOT, not EMPTY: EMPTY means
 *   nothing but whitespace.
 */

#include <string.h>

#include "xray_header.h"


#define XRAY_SEEN_ROOT         0x01
#define XRAY_SEEN_PARENT       0x02
#define XRAY_SEEN_SAMPLED      0x04
#define XRAY_SEEN_SELF         0x08

/* byte classes, see xray_header_class[] */
#define XRAY_C_BAD             0x01    /* never allowed */
#define XRAY_C_SPACE           0x02    /* SP, HTAB */
#define XRAY_C_KEY             0x04    /* [A-Za-z0-9_.-] */
#define XRAY_C_HEX             0x08    /* [0-9a-fA-F] */
#define XRAY_C_SEMI            0x10    /* ';' */

/* what ends a value on the fast path */
#define XRAY_C_STOP            (XRAY_C_BAD|XRAY_C_SPACE|XRAY_C_SEMI)


/* 16 bytes as one vector (GCC and clang) */
typedef unsigned char  xray_v16_t __attribute__((vector_size(16)));


typedef struct {
    unsigned  seen;                    /* XRAY_SEEN_* */
    size_t    nfields;

    /* key length of each kept field, for the duplicate check */
    size_t    key_len[XRAY_HEADER_MAX_FIELDS];
} xray_header_state_t;


static xray_header_rc_e xray_header_fields(const unsigned char *value,
    size_t len, xray_trace_ctx_t *ctx);
static xray_header_rc_e xray_header_field(const unsigned char *start,
    const unsigned char *end, xray_trace_ctx_t *ctx,
    xray_header_state_t *st);
static xray_header_rc_e xray_header_keep(const unsigned char *key,
    size_t key_len, const unsigned char *end, xray_trace_ctx_t *ctx,
    xray_header_state_t *st);
static xray_header_rc_e xray_header_fail(const unsigned char *p,
    const unsigned char *end, xray_header_rc_e rc);
static unsigned xray_reserved_key(const unsigned char *key, size_t len);
static unsigned xray_reserved_prefix(const unsigned char *p, size_t n,
    const unsigned char **val);
static uint32_t xray_lower4(const unsigned char *p);
static int xray_header_canonical(const unsigned char *value, size_t len,
    xray_trace_ctx_t *ctx);
static int xray_hex_valid(const unsigned char *p, size_t len);
static xray_v16_t xray_hex_lanes(const unsigned char *a,
    const unsigned char *b);
static int xray_all_lanes(xray_v16_t v);
static int xray_key_eq(const unsigned char *a, const unsigned char *b,
    size_t len);
static size_t xray_header_format_kept(unsigned char *buf, unsigned char *p,
    const xray_trace_ctx_t *ctx);
static unsigned char *xray_copy(unsigned char *dst, const void *src,
    size_t len);
static unsigned char *xray_copy_over(unsigned char *dst, const void *src,
    size_t len);


#define xray_is_space(c)     (xray_header_class[c] & XRAY_C_SPACE)
#define xray_is_key_char(c)  (xray_header_class[c] & XRAY_C_KEY)


/*
 * XRAY_C_* of every byte: one load tells what a byte may be.  BAD: control
 * bytes but HTAB, 0x7f and above, ','.  No <ctype.h>: it depends on the
 * locale.
 */

static const unsigned char  xray_header_class[256] = {
     1,  1,  1,  1,  1,  1,  1,  1,  1,  2,  1,  1,  1,  1,  1,  1,  /* 00 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 10 */
     2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  1,  4,  4,  0,  /* 20 */
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12,  0, 16,  0,  0,  0,  0,  /* 30 */
     0, 12, 12, 12, 12, 12, 12,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 40 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  0,  0,  0,  0,  4,  /* 50 */
     0, 12, 12, 12, 12, 12, 12,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 60 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  0,  0,  0,  0,  1,  /* 70 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 80 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 90 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* a0 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* b0 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* c0 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* d0 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* e0 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1   /* f0 */
};


/* indexed by xray_header_rc_e */

static const char  *const xray_header_errors[] = {
    "ok",
    "empty header",
    "header too long",
    "bad character",
    "bad field",
    "too many fields",
    "duplicate key",
    "no Root",
    "bad Root",
    "bad Parent",
    "bad Sampled"
};


/*
 * One pass over the value, field by field.  The fast path takes a field
 * "key=value" without whitespace around '=' or the value, whose value is
 * good; everything else (whitespace, bad or duplicate fields, bad bytes)
 * goes to xray_header_field(), the exact rules, for that field alone.
 *
 * Every byte before the current field is known good, so a bad byte found
 * in it is BAD_CHAR at once; any other error needs the rest of the value
 * checked for bad bytes first (xray_header_fail()), because BAD_CHAR wins.
 */

xray_header_rc_e
xray_header_parse(const unsigned char *value, size_t len,
    xray_trace_ctx_t *ctx)
{
    ctx->root = NULL;
    ctx->parent = NULL;
    ctx->sampled = XRAY_SAMPLED_NONE;
    ctx->nkept = 0;
    ctx->kept_len = 0;

    if (len > XRAY_HEADER_MAX_LEN) {
        return XRAY_HEADER_TOO_LONG;
    }

    /* before any pointer arithmetic on value, which may be NULL */
    if (len == 0) {
        return XRAY_HEADER_EMPTY;
    }

    if (xray_header_canonical(value, len, ctx)) {
        return XRAY_HEADER_OK;
    }

    return xray_header_fields(value, len, ctx);
}


/*
 * The general loop, out of line: the canonical form above is parsed
 * without the stack frame it needs.
 */

static XRAY_NOINLINE xray_header_rc_e
xray_header_fields(const unsigned char *value, size_t len,
    xray_trace_ctx_t *ctx)
{
    unsigned              bit, semi;
    const unsigned char  *p, *q, *end, *val;
    xray_header_rc_e      rc;
    xray_header_state_t   st;

    st.seen = 0;
    st.nfields = 0;
    semi = 0;

    p = value;
    end = value + len;

    for ( ;; ) {

        while (p < end && xray_is_space(*p)) {
            p++;
        }

        if (p == end) {
            break;
        }

        if (*p == ';') {
            /* an empty field */
            semi = 1;
            p++;
            continue;
        }

        if (st.nfields == XRAY_HEADER_MAX_FIELDS) {
            goto slow;
        }

        /* the key, up to a '=' right after it */

        bit = xray_reserved_prefix(p, end - p, &val);

        if (bit == 0) {
            q = p;

            while (q < end && xray_is_key_char(*q)) {
                q++;
            }

            if (q == end || *q != '=' || q == p
                || q - p > XRAY_HEADER_MAX_KEY)
            {
                goto slow;
            }

            bit = xray_reserved_key(p, q - p);
            val = q + 1;
        }

        if (st.seen & bit) {
            goto slow;
        }

        switch (bit) {

        case XRAY_SEEN_ROOT:
            if (end - val < XRAY_TRACE_ID_LEN
                || !xray_trace_id_valid(val, XRAY_TRACE_ID_LEN))
            {
                goto slow;
            }

            q = val + XRAY_TRACE_ID_LEN;
            break;

        case XRAY_SEEN_PARENT:
            if (end - val < XRAY_ID_LEN || !xray_hex_valid(val, XRAY_ID_LEN)) {
                goto slow;
            }

            q = val + XRAY_ID_LEN;
            break;

        case XRAY_SEEN_SAMPLED:
            if (val == end || (*val != '0' && *val != '1' && *val != '?')) {
                goto slow;
            }

            q = val + 1;
            break;

        default: /* Self, Lineage, unknown: any value */
            q = val;

            while (q < end && !(xray_header_class[*q] & XRAY_C_STOP)) {
                q++;
            }

            if (q == val) {
                goto slow;
            }

            break;
        }

        /* the value must end the field: no whitespace after it */
        if (q < end && *q != ';') {
            goto slow;
        }

        st.nfields++;

        switch (bit) {

        case XRAY_SEEN_ROOT:
            ctx->root = val;
            break;

        case XRAY_SEEN_PARENT:
            ctx->parent = val;
            break;

        case XRAY_SEEN_SAMPLED:
            ctx->sampled = (*val == '0') ? XRAY_SAMPLED_NO
                           : (*val == '1') ? XRAY_SAMPLED_YES
                           : XRAY_SAMPLED_REQUESTED;
            break;

        case 0:
            rc = xray_header_keep(p, val - 1 - p, q, ctx, &st);
            if (rc != XRAY_HEADER_OK) {
                return xray_header_fail(q, end, rc);
            }

            break;

        default: /* XRAY_SEEN_SELF: ALB's own id, never forwarded */
            break;
        }

        st.seen |= bit;

        goto next;

    slow:

        for (q = p; q < end && *q != ';'; q++) {
            if (xray_header_class[*q] & XRAY_C_BAD) {
                return XRAY_HEADER_BAD_CHAR;
            }
        }

        rc = xray_header_field(p, q, ctx, &st);
        if (rc != XRAY_HEADER_OK) {
            return xray_header_fail(q, end, rc);
        }

    next:

        if (q == end) {
            break;
        }

        semi = 1;
        p = q + 1;
    }

    if (ctx->root == NULL) {
        /* EMPTY: nothing but whitespace, not even a ';' */
        return (st.nfields == 0 && !semi) ? XRAY_HEADER_EMPTY
                                          : XRAY_HEADER_NO_ROOT;
    }

    return XRAY_HEADER_OK;
}


/*
 * The header as X-Ray services and SDKs write it, with nothing around the
 * fields: "Root=1-<8 hex>-<24 hex>", then optionally ";Parent=<16 hex>",
 * then optionally ";Sampled=<0|1|?>", and nothing else: 40, 50, 64 or 74
 * bytes.  Recognised with a few compares, the hex digits checked 16 at a
 * time, and described exactly as the general loop would (the same spans
 * into value).  Returns 0, with ctx untouched, for anything else: the
 * general loop then decides.
 */

static inline int
xray_header_canonical(const unsigned char *value, size_t len,
    xray_trace_ctx_t *ctx)
{
    size_t                rest;
    xray_v16_t            hex;
    const unsigned char  *p, *parent;
    xray_sampled_e        sampled;

    if (len < sizeof("Root=") - 1 + XRAY_TRACE_ID_LEN
        || memcmp(value, "Root=1-", sizeof("Root=1-") - 1) != 0
        || value[15] != '-')
    {
        return 0;
    }

    p = value + sizeof("Root=") - 1 + XRAY_TRACE_ID_LEN;
    rest = len - (sizeof("Root=") - 1 + XRAY_TRACE_ID_LEN);

    /* the root's digits: 7..14 with 32..39, then 16..31 */
    hex = xray_hex_lanes(value + 7, value + 32)
          & xray_hex_lanes(value + 16, value + 24);

    parent = NULL;

    if (rest >= sizeof(";Parent=") - 1 + XRAY_ID_LEN
        && memcmp(p, ";Parent=", sizeof(";Parent=") - 1) == 0)
    {
        parent = p + sizeof(";Parent=") - 1;
        hex &= xray_hex_lanes(parent, parent + 8);

        p += sizeof(";Parent=") - 1 + XRAY_ID_LEN;
        rest -= sizeof(";Parent=") - 1 + XRAY_ID_LEN;
    }

    if (!xray_all_lanes(hex)) {
        return 0;
    }

    sampled = XRAY_SAMPLED_NONE;

    if (rest == sizeof(";Sampled=0") - 1
        && memcmp(p, ";Sampled=", sizeof(";Sampled=") - 1) == 0)
    {
        switch (p[sizeof(";Sampled=") - 1]) {
        case '0':
            sampled = XRAY_SAMPLED_NO;
            break;
        case '1':
            sampled = XRAY_SAMPLED_YES;
            break;
        case '?':
            sampled = XRAY_SAMPLED_REQUESTED;
            break;
        default:
            return 0;
        }

        rest = 0;
    }

    if (rest != 0) {
        return 0;
    }

    ctx->root = value + sizeof("Root=") - 1;
    ctx->parent = parent;
    ctx->sampled = sampled;

    return 1;
}


/* rc, unless a bad byte in [p, end) makes it BAD_CHAR */

static xray_header_rc_e
xray_header_fail(const unsigned char *p, const unsigned char *end,
    xray_header_rc_e rc)
{
    while (p < end) {
        if (xray_header_class[*p++] & XRAY_C_BAD) {
            return XRAY_HEADER_BAD_CHAR;
        }
    }

    return rc;
}


/* one field, [start, end), without its ';'; its bytes are known good */

static xray_header_rc_e
xray_header_field(const unsigned char *start, const unsigned char *end,
    xray_trace_ctx_t *ctx, xray_header_state_t *st)
{
    size_t                i, key_len, val_len;
    unsigned              bit;
    const unsigned char  *eq, *key_end, *val;

    while (start < end && xray_is_space(*start)) {
        start++;
    }

    while (end > start && xray_is_space(end[-1])) {
        end--;
    }

    if (start == end) {
        return XRAY_HEADER_OK;
    }

    if (++st->nfields > XRAY_HEADER_MAX_FIELDS) {
        return XRAY_HEADER_TOO_MANY_FIELDS;
    }

    eq = memchr(start, '=', end - start);
    if (eq == NULL) {
        return XRAY_HEADER_BAD_FIELD;
    }

    key_end = eq;
    while (key_end > start && xray_is_space(key_end[-1])) {
        key_end--;
    }

    val = eq + 1;
    while (val < end && xray_is_space(*val)) {
        val++;
    }

    key_len = key_end - start;
    val_len = end - val;

    if (key_len == 0 || val_len == 0) {
        return XRAY_HEADER_BAD_FIELD;
    }

    for (i = 0; i < key_len; i++) {
        if (xray_is_space(start[i])) {
            return XRAY_HEADER_BAD_CHAR;
        }
    }

    for (i = 0; i < val_len; i++) {
        if (xray_is_space(val[i])) {
            return XRAY_HEADER_BAD_CHAR;
        }
    }

    if (key_len > XRAY_HEADER_MAX_KEY) {
        return XRAY_HEADER_BAD_FIELD;
    }

    for (i = 0; i < key_len; i++) {
        if (!xray_is_key_char(start[i])) {
            return XRAY_HEADER_BAD_FIELD;
        }
    }

    bit = xray_reserved_key(start, key_len);

    if (bit == 0) {
        if (key_end != eq || val != eq + 1) {
            return XRAY_HEADER_BAD_CHAR;
        }

        return xray_header_keep(start, key_len, end, ctx, st);
    }

    if (st->seen & bit) {
        return XRAY_HEADER_DUPLICATE_KEY;
    }

    st->seen |= bit;

    switch (bit) {

    case XRAY_SEEN_ROOT:
        if (!xray_trace_id_valid(val, val_len)) {
            return XRAY_HEADER_BAD_ROOT;
        }

        ctx->root = val;
        break;

    case XRAY_SEEN_PARENT:
        if (val_len != XRAY_ID_LEN || !xray_hex_valid(val, val_len)) {
            return XRAY_HEADER_BAD_PARENT;
        }

        ctx->parent = val;
        break;

    case XRAY_SEEN_SAMPLED:
        if (val_len != 1) {
            return XRAY_HEADER_BAD_SAMPLED;
        }

        switch (val[0]) {
        case '0':
            ctx->sampled = XRAY_SAMPLED_NO;
            break;
        case '1':
            ctx->sampled = XRAY_SAMPLED_YES;
            break;
        case '?':
            ctx->sampled = XRAY_SAMPLED_REQUESTED;
            break;
        default:
            return XRAY_HEADER_BAD_SAMPLED;
        }

        break;

    default: /* XRAY_SEEN_SELF: ALB's own id, never forwarded */
        break;
    }

    return XRAY_HEADER_OK;
}


/* a Lineage or unknown field, "key=value" from key to end */

static xray_header_rc_e
xray_header_keep(const unsigned char *key, size_t key_len,
    const unsigned char *end, xray_trace_ctx_t *ctx, xray_header_state_t *st)
{
    size_t        i;
    xray_span_t  *span;

    for (i = 0; i < ctx->nkept; i++) {
        if (st->key_len[i] == key_len
            && xray_key_eq(ctx->kept[i].data, key, key_len))
        {
            return XRAY_HEADER_DUPLICATE_KEY;
        }
    }

    /* nkept < nfields <= XRAY_HEADER_MAX_FIELDS: always room */

    st->key_len[ctx->nkept] = key_len;

    span = &ctx->kept[ctx->nkept++];
    span->data = key;
    span->len = end - key;

    ctx->kept_len += span->len;

    return XRAY_HEADER_OK;
}


const char *
xray_header_strerror(xray_header_rc_e rc)
{
    if ((size_t) rc >= sizeof(xray_header_errors) / sizeof(char *)) {
        return "unknown error";
    }

    return xray_header_errors[rc];
}


int
xray_trace_id_valid(const unsigned char *s, size_t len)
{
    return len == XRAY_TRACE_ID_LEN
           && s[0] == '1' && s[1] == '-' && s[10] == '-'
           && xray_hex_valid(s + 2, 8)
           && xray_hex_valid(s + 11, 24);
}


size_t
xray_header_format(unsigned char *buf, const unsigned char *root,
    const unsigned char *parent, xray_sampled_e sampled,
    const xray_trace_ctx_t *ctx)
{
    unsigned char  *p;

    p = xray_copy(buf, "Root=", sizeof("Root=") - 1);
    p = xray_copy_over(p, root, XRAY_TRACE_ID_LEN);

    if (parent != NULL) {
        p = xray_copy(p, ";Parent=", sizeof(";Parent=") - 1);
        p = xray_copy_over(p, parent, XRAY_ID_LEN);
    }

    switch (sampled) {
    case XRAY_SAMPLED_NO:
        p = xray_copy(p, ";Sampled=0", sizeof(";Sampled=0") - 1);
        break;
    case XRAY_SAMPLED_YES:
        p = xray_copy(p, ";Sampled=1", sizeof(";Sampled=1") - 1);
        break;
    case XRAY_SAMPLED_REQUESTED:
        p = xray_copy(p, ";Sampled=?", sizeof(";Sampled=?") - 1);
        break;
    default:
        break;
    }

    if (ctx == NULL || ctx->nkept == 0) {
        return p - buf;
    }

    return xray_header_format_kept(buf, p, ctx);
}


/* the kept fields of ctx, from p on; out of line, with its stack frame */

static XRAY_NOINLINE size_t
xray_header_format_kept(unsigned char *buf, unsigned char *p,
    const xray_trace_ctx_t *ctx)
{
    size_t              i;
    const xray_span_t  *span;

    for (i = 0; i < ctx->nkept; i++) {
        span = &ctx->kept[i];

        /*
         * A parsed ctx always fits; this only guards the buffer against
         * a ctx built by hand.
         */
        if ((size_t) (p - buf) + 1 + span->len > XRAY_HEADER_OUT_MAX) {
            break;
        }

        *p++ = ';';
        p = xray_copy(p, span->data, span->len);
    }

    return p - buf;
}


/*
 * The XRAY_SEEN_* bit of a reserved key; 0 for Lineage, kept like others.
 * key holds key characters only: ORing 0x20 lowercases its letters and
 * turns no other key character into a letter, so one 32-bit compare
 * matches four characters case-insensitively.
 */

static unsigned
xray_reserved_key(const unsigned char *key, size_t len)
{
    uint32_t  w;

    switch (len) {

    case 4:
        w = xray_lower4(key);

        if (w == xray_lower4((const unsigned char *) "root")) {
            return XRAY_SEEN_ROOT;
        }

        if (w == xray_lower4((const unsigned char *) "self")) {
            return XRAY_SEEN_SELF;
        }

        break;

    case 6:
        if (xray_lower4(key) == xray_lower4((const unsigned char *) "pare")
            && xray_lower4(key + 2)
               == xray_lower4((const unsigned char *) "rent"))
        {
            return XRAY_SEEN_PARENT;
        }

        break;

    case 7:
        if (xray_lower4(key) == xray_lower4((const unsigned char *) "samp")
            && xray_lower4(key + 3)
               == xray_lower4((const unsigned char *) "pled"))
        {
            return XRAY_SEEN_SAMPLED;
        }

        break;
    }

    return 0;
}


/*
 * The XRAY_SEEN_* bit of the reserved key that starts p, right before a '='
 * (*val is set after it); 0 for anything else.  The names are all letters,
 * and a byte ORed with 0x20 is a given lowercase letter only if it is that
 * letter in either case: no key-character check needed first.
 */

static unsigned
xray_reserved_prefix(const unsigned char *p, size_t n,
    const unsigned char **val)
{
    uint32_t  w;

    if (n < sizeof("root=") - 1) {
        return 0;
    }

    w = xray_lower4(p);

    if (p[4] == '=') {
        *val = p + 5;

        if (w == xray_lower4((const unsigned char *) "root")) {
            return XRAY_SEEN_ROOT;
        }

        if (w == xray_lower4((const unsigned char *) "self")) {
            return XRAY_SEEN_SELF;
        }

        return 0;
    }

    if (n > 6 && p[6] == '='
        && w == xray_lower4((const unsigned char *) "pare")
        && xray_lower4(p + 2) == xray_lower4((const unsigned char *) "rent"))
    {
        *val = p + 7;
        return XRAY_SEEN_PARENT;
    }

    if (n > 7 && p[7] == '='
        && w == xray_lower4((const unsigned char *) "samp")
        && xray_lower4(p + 3) == xray_lower4((const unsigned char *) "pled"))
    {
        *val = p + 8;
        return XRAY_SEEN_SAMPLED;
    }

    return 0;
}


/* four bytes ORed with 0x20 each; memcpy(): p may be unaligned */

static uint32_t
xray_lower4(const unsigned char *p)
{
    uint32_t  w;

    memcpy(&w, p, sizeof(uint32_t));

    return w | 0x20202020;
}


/*
 * Eight bytes at a time: with no byte above 0x7f, adding 0x80 - lo to a
 * byte sets its top bit iff it is >= lo, and adding 0x7f - hi iff it is
 * > hi, with no carry into the next byte.  A byte is hex if it is in
 * '0'..'9' or, ORed with 0x20, in 'a'..'f'.
 */

#define XRAY_ONES  0x0101010101010101ULL
#define XRAY_HIGH  0x8080808080808080ULL

#define xray_in_range(x, lo, hi)                                             \
    (((x) + (0x80 - (lo)) * XRAY_ONES) & ~((x) + (0x7f - (hi)) * XRAY_ONES))

/*
 * 16 bytes, the 8 at a and the 8 at b, as one vector: each lane all ones
 * if its byte is a hex digit, either case, else zero.  A digit is less
 * than 10 once '0' is taken away, a letter ORed with 0x20 less than 6 once
 * 'a' is; every other byte wraps around to more.  Compilers make this a
 * few SIMD instructions where the machine has them (SSE2, NEON), and word
 * operations elsewhere.
 */

static inline xray_v16_t
xray_hex_lanes(const unsigned char *a, const unsigned char *b)
{
    xray_v16_t     v, d, l;
    unsigned char  buf[16];

    memcpy(buf, a, 8);
    memcpy(buf + 8, b, 8);
    memcpy(&v, buf, sizeof(xray_v16_t));

    d = v - (unsigned char) '0';
    l = (v | 0x20) - (unsigned char) 'a';

    return (xray_v16_t) ((d < 10) | (l < 6));
}


/* 1 if every lane of v is all ones */

static inline int
xray_all_lanes(xray_v16_t v)
{
    uint64_t  w[2];

    memcpy(w, &v, sizeof(xray_v16_t));

    return (w[0] & w[1]) == ~(uint64_t) 0;
}


static int
xray_hex_valid(const unsigned char *p, size_t len)
{
    size_t         i;
    uint64_t       x, y;
    unsigned char  all;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&x, p + i, sizeof(uint64_t));

        if (x & XRAY_HIGH) {
            return 0;
        }

        y = x | 0x20 * XRAY_ONES;

        if (((xray_in_range(x, '0', '9') | xray_in_range(y, 'a', 'f'))
             & XRAY_HIGH) != XRAY_HIGH)
        {
            return 0;
        }
    }

    all = XRAY_C_HEX;

    for ( /* void */ ; i < len; i++) {
        all &= xray_header_class[p[i]];
    }

    return all != 0;
}


/* ASCII case-insensitive; keys hold no bytes >= 0x80 by then */

static int
xray_key_eq(const unsigned char *a, const unsigned char *b, size_t len)
{
    size_t         i;
    unsigned char  ca, cb;

    for (i = 0; i < len; i++) {
        ca = a[i];
        cb = b[i];

        if (ca >= 'A' && ca <= 'Z') {
            ca |= 0x20;
        }

        if (cb >= 'A' && cb <= 'Z') {
            cb |= 0x20;
        }

        if (ca != cb) {
            return 0;
        }
    }

    return 1;
}


static unsigned char *
xray_copy(unsigned char *dst, const void *src, size_t len)
{
    memcpy(dst, src, len);

    return dst + len;
}


/* the same, where src may already be dst (and then stays) */

static unsigned char *
xray_copy_over(unsigned char *dst, const void *src, size_t len)
{
    if (dst != src) {
        memcpy(dst, src, len);
    }

    return dst + len;
}
