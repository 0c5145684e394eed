/*
 * X-Amzn-Trace-Id: parse, validate and format.
 *
 * Choices the grammar (xray-protocol.md, section 1) leaves open:
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


typedef struct {
    unsigned  seen;                    /* XRAY_SEEN_* */
    size_t    nfields;

    /* key length of each kept field, for the duplicate check */
    size_t    key_len[XRAY_HEADER_MAX_FIELDS];
} xray_header_state_t;


static xray_header_rc_e xray_header_check_bytes(const unsigned char *p,
    size_t len);
static xray_header_rc_e xray_header_field(const unsigned char *start,
    const unsigned char *end, xray_trace_ctx_t *ctx,
    xray_header_state_t *st);
static xray_header_rc_e xray_header_keep(const unsigned char *key,
    size_t key_len, const unsigned char *end, xray_trace_ctx_t *ctx,
    xray_header_state_t *st);
static unsigned xray_reserved_key(const unsigned char *key, size_t len);
static int xray_is_space(unsigned char c);
static int xray_is_hex(unsigned char c);
static int xray_is_key_char(unsigned char c);
static int xray_hex_valid(const unsigned char *p, size_t len);
static int xray_key_eq(const unsigned char *a, const unsigned char *b,
    size_t len);
static unsigned char *xray_copy(unsigned char *dst, const void *src,
    size_t len);


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


xray_header_rc_e
xray_header_parse(const unsigned char *value, size_t len,
    xray_trace_ctx_t *ctx)
{
    const unsigned char  *p, *end, *semi;
    xray_header_rc_e      rc;
    xray_header_state_t   st;

    ctx->root = NULL;
    ctx->parent = NULL;
    ctx->sampled = XRAY_SAMPLED_NONE;
    ctx->nkept = 0;
    ctx->kept_len = 0;

    if (len > XRAY_HEADER_MAX_LEN) {
        return XRAY_HEADER_TOO_LONG;
    }

    /* also catches len == 0, before any pointer arithmetic on value */
    rc = xray_header_check_bytes(value, len);
    if (rc != XRAY_HEADER_OK) {
        return rc;
    }

    st.seen = 0;
    st.nfields = 0;

    p = value;
    end = value + len;

    for ( ;; ) {
        semi = memchr(p, ';', end - p);

        rc = xray_header_field(p, semi ? semi : end, ctx, &st);
        if (rc != XRAY_HEADER_OK) {
            return rc;
        }

        if (semi == NULL) {
            break;
        }

        p = semi + 1;
    }

    if (ctx->root == NULL) {
        return XRAY_HEADER_NO_ROOT;
    }

    return XRAY_HEADER_OK;
}


static xray_header_rc_e
xray_header_check_bytes(const unsigned char *p, size_t len)
{
    size_t         i;
    int            blank;
    unsigned char  c;

    blank = 1;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (xray_is_space(c)) {
            continue;
        }

        if (c < 0x21 || c > 0x7e || c == ',') {
            return XRAY_HEADER_BAD_CHAR;
        }

        blank = 0;
    }

    return blank ? XRAY_HEADER_EMPTY : XRAY_HEADER_OK;
}


/* one field, [start, end), without its ';' */

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
    size_t              i;
    unsigned char      *p;
    const xray_span_t  *span;

    p = xray_copy(buf, "Root=", sizeof("Root=") - 1);
    p = xray_copy(p, root, XRAY_TRACE_ID_LEN);

    if (parent != NULL) {
        p = xray_copy(p, ";Parent=", sizeof(";Parent=") - 1);
        p = xray_copy(p, parent, XRAY_ID_LEN);
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

    if (ctx == NULL) {
        return p - buf;
    }

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


/* the XRAY_SEEN_* bit of a reserved key; 0 for Lineage, kept like others */

static unsigned
xray_reserved_key(const unsigned char *key, size_t len)
{
    switch (len) {

    case 4:
        if (xray_key_eq(key, (const unsigned char *) "root", 4)) {
            return XRAY_SEEN_ROOT;
        }

        if (xray_key_eq(key, (const unsigned char *) "self", 4)) {
            return XRAY_SEEN_SELF;
        }

        break;

    case 6:
        if (xray_key_eq(key, (const unsigned char *) "parent", 6)) {
            return XRAY_SEEN_PARENT;
        }

        break;

    case 7:
        if (xray_key_eq(key, (const unsigned char *) "sampled", 7)) {
            return XRAY_SEEN_SAMPLED;
        }

        break;
    }

    return 0;
}


static int
xray_is_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}


/* no isxdigit(): it depends on the locale */

static int
xray_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9')
           || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


static int
xray_is_key_char(unsigned char c)
{
    return (c >= '0' && c <= '9')
           || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z')
           || c == '_' || c == '.' || c == '-';
}


static int
xray_hex_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!xray_is_hex(p[i])) {
            return 0;
        }
    }

    return 1;
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
