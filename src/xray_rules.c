/*
 * X-Ray local sampling rules: parse the rules JSON with cJSON into memory
 * from the caller's allocator, and match requests with X-Ray's wildcards.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "xray_id.h"
#include "xray_rules.h"


#define XRAY_RULES_FIELD_MAX   255     /* bytes in host, method, path */
#define XRAY_RULES_NAME_MAX    64      /* bytes in a name from "description" */
#define XRAY_RULES_QUOTE_MAX   48      /* description bytes quoted in errors */
#define XRAY_RULES_TARGET_MAX  1000000000.0


typedef struct {
    xray_alloc_pt   alloc;
    void           *alloc_data;
    char           *err;
    int             version;
    size_t          n;                 /* rule number, 1-based; 0: default */
    const char     *description;       /* of rule n, for messages; or NULL */
} xray_rules_ctx_t;


static int xray_rules_build(xray_rules_ctx_t *ctx, const cJSON *root,
    xray_rules_t *rules);
static int xray_rules_unique(xray_rules_ctx_t *ctx, const cJSON *item,
    const char *where);
static int xray_rules_key_cmp(const void *a, const void *b);
static int xray_rules_rule(xray_rules_ctx_t *ctx, const cJSON *item,
    xray_rule_t *rule, const xray_rule_t *prev, size_t nprev);
static int xray_rules_default_rule(xray_rules_ctx_t *ctx, const cJSON *item,
    xray_rule_t *rule);
static int xray_rules_pattern(xray_rules_ctx_t *ctx, const cJSON *item,
    const char *key, const char **value, size_t *len);
static int xray_rules_numbers(xray_rules_ctx_t *ctx, const cJSON *item,
    xray_rule_t *rule);
static int xray_rules_name(xray_rules_ctx_t *ctx, xray_rule_t *rule,
    const xray_rule_t *prev, size_t nprev);
static int xray_rules_valid_name(const char *s);
static int xray_rules_star(xray_rules_ctx_t *ctx, xray_rule_t *rule,
    const char *name);
static const char *xray_rules_strdup(xray_rules_ctx_t *ctx, const char *s,
    size_t len);
static int xray_rules_error(char *err, const char *fmt, ...);
static int xray_rules_field_error(xray_rules_ctx_t *ctx, const char *fmt,
    ...);
static void xray_rules_quote(char *dst, const char *src);
static unsigned char xray_rules_lower(unsigned char c);
static size_t xray_rules_utf8_len(const unsigned char *p, size_t n);


int
xray_rules_parse(xray_rules_t *rules, const char *json, size_t len,
    xray_alloc_pt alloc, void *alloc_data, char *err)
{
    int                rc;
    cJSON             *root;
    const char        *end, *last;
    xray_rules_ctx_t   ctx;

    if (json == NULL) {
        json = "";
        len = 0;
    }

    /*
     * cJSON_ParseWithLength() accepts trailing garbage, and the Opts
     * variant's require_null_terminated wants a NUL inside the length, so
     * the tail is checked here, skipping bytes up to ' ' as cJSON does.
     * The parse end is the error position too, like cJSON_GetErrorPtr(),
     * but without the global.
     */

    end = NULL;
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);

    if (root == NULL) {
        if (end == NULL || end < json || end > json + len) {
            end = json;
        }

        return xray_rules_error(err, "invalid JSON near offset %lu",
                                (unsigned long) (end - json));
    }

    last = json + len;

    while (end < last && (unsigned char) *end <= ' ') {
        end++;
    }

    if (end < last) {
        cJSON_Delete(root);
        return xray_rules_error(err, "invalid JSON near offset %lu",
                                (unsigned long) (end - json));
    }

    ctx.alloc = alloc;
    ctx.alloc_data = alloc_data;
    ctx.err = err;
    ctx.version = 0;
    ctx.n = 0;
    ctx.description = NULL;

    /* a document that is no object is refused by xray_rules_build() */
    rc = cJSON_IsObject(root) ? xray_rules_unique(&ctx, root, NULL) : 0;

    if (rc == 0) {
        rc = xray_rules_build(&ctx, root, rules);
    }

    cJSON_Delete(root);

    return rc;
}


int
xray_rules_default(xray_rules_t *rules, xray_alloc_pt alloc,
    void *alloc_data)
{
    char               err[XRAY_RULES_ERR_LEN];
    xray_rule_t       *rule;
    xray_rules_ctx_t   ctx;

    ctx.alloc = alloc;
    ctx.alloc_data = alloc_data;
    ctx.err = err;
    ctx.version = 0;
    ctx.n = 0;
    ctx.description = NULL;

    rule = alloc(alloc_data, sizeof(xray_rule_t));
    if (rule == NULL) {
        return -1;
    }

    if (xray_rules_star(&ctx, rule, "default") != 0) {
        return -1;
    }

    /* X-Ray's own built-in: 1 per second, then 5% */
    rule->fixed_target = 1;
    rule->rate = 0.05;
    rule->rate_threshold = xray_rng_threshold(rule->rate);

    rules->rules = rule;
    rules->nrules = 1;
    rules->version = 0;

    return 0;
}


size_t
xray_rules_match(const xray_rules_t *rules,
    const unsigned char *host, size_t host_len,
    const unsigned char *method, size_t method_len,
    const unsigned char *path, size_t path_len)
{
    size_t              i, last;
    const xray_rule_t  *rule;

    /* a parsed or built-in set always ends with its default */

    if (rules->nrules == 0) {
        return 0;
    }

    if (host == NULL) {
        host_len = 0;
    }

    if (method == NULL) {
        method_len = 0;
    }

    if (path == NULL) {
        path_len = 0;
    }

    last = rules->nrules - 1;

    /* the last rule is the default, which matches anything */

    for (i = 0; i < last; i++) {
        rule = &rules->rules[i];

        if (xray_wildcard_match(rule->host, rule->host_len, host, host_len)
            && xray_wildcard_match(rule->method, rule->method_len,
                                   method, method_len)
            && xray_wildcard_match(rule->path, rule->path_len,
                                   path, path_len))
        {
            return i;
        }
    }

    return last;
}


/*
 * The classic iterative glob match: on a mismatch, go back to the last '*'
 * and let it swallow one more character.  Earlier stars never need to be
 * revisited, so the worst case is O(pattern_len * len), without recursion.
 * '?' and a star's step take a whole UTF-8 character, as the SDKs (which
 * match decoded strings) do; a byte that starts no valid sequence counts
 * as one character.
 */

int
xray_wildcard_match(const char *pattern, size_t pattern_len,
    const unsigned char *s, size_t len)
{
    size_t                pi, si, star, mark;
    unsigned char         c;
    const unsigned char  *p;

    p = (const unsigned char *) pattern;

    if (pattern_len == 1 && p[0] == '*') {
        return 1;
    }

    pi = 0;
    si = 0;
    star = pattern_len;                /* no star seen yet */
    mark = 0;

    while (si < len) {
        if (pi < pattern_len) {
            c = p[pi];

            if (c == '*') {
                star = pi++;
                mark = si;
                continue;
            }

            if (c == '?') {
                pi++;
                si += xray_rules_utf8_len(s + si, len - si);
                continue;
            }

            if (xray_rules_lower(c) == xray_rules_lower(s[si])) {
                pi++;
                si++;
                continue;
            }
        }

        if (star == pattern_len) {
            return 0;
        }

        pi = star + 1;
        mark += xray_rules_utf8_len(s + mark, len - mark);
        si = mark;
    }

    while (pi < pattern_len && p[pi] == '*') {
        pi++;
    }

    return pi == pattern_len;
}


static int
xray_rules_build(xray_rules_ctx_t *ctx, const cJSON *root,
    xray_rules_t *rules)
{
    size_t         n, i;
    const cJSON   *version, *list, *dflt, *item;
    xray_rule_t   *rule;

    if (!cJSON_IsObject(root)) {
        return xray_rules_error(ctx->err,
                                "the rules document must be a JSON object");
    }

    version = cJSON_GetObjectItemCaseSensitive(root, "version");

    if (!cJSON_IsNumber(version)
        || (version->valuedouble != 1.0 && version->valuedouble != 2.0))
    {
        return xray_rules_error(ctx->err, "\"version\" must be 1 or 2");
    }

    ctx->version = (int) version->valuedouble;

    list = cJSON_GetObjectItemCaseSensitive(root, "rules");
    n = 0;

    if (list != NULL) {
        if (!cJSON_IsArray(list)) {
            return xray_rules_error(ctx->err, "\"rules\" must be an array");
        }

        cJSON_ArrayForEach(item, list) {
            if (++n == XRAY_RULES_MAX) {
                return xray_rules_error(ctx->err,
                                        "too many rules: at most %d",
                                        XRAY_RULES_MAX - 1);
            }
        }
    }

    dflt = cJSON_GetObjectItemCaseSensitive(root, "default");

    if (dflt == NULL) {
        return xray_rules_error(ctx->err, "missing \"default\"");
    }

    if (!cJSON_IsObject(dflt)) {
        return xray_rules_error(ctx->err, "\"default\" must be an object");
    }

    rule = ctx->alloc(ctx->alloc_data, (n + 1) * sizeof(xray_rule_t));
    if (rule == NULL) {
        return xray_rules_error(ctx->err, "out of memory");
    }

    i = 0;

    if (list != NULL) {
        cJSON_ArrayForEach(item, list) {
            ctx->n = i + 1;

            if (xray_rules_rule(ctx, item, &rule[i], rule, i) != 0) {
                return -1;
            }

            i++;
        }
    }

    if (xray_rules_default_rule(ctx, dflt, &rule[n]) != 0) {
        return -1;
    }

    rules->rules = rule;
    rules->nrules = n + 1;
    rules->version = ctx->version;

    return 0;
}


/*
 * Refuses an object that names a key twice, at any depth: JSON readers
 * disagree on which copy wins (cJSON takes the first, most others the last),
 * so the operator could not tell which value applies.  where is "rule N",
 * "\"default\"" or NULL at the top level, for the message.
 */

static int
xray_rules_unique(xray_rules_ctx_t *ctx, const cJSON *item, const char *where)
{
    char          label[sizeof("rule 18446744073709551615")];
    char          quoted[XRAY_RULES_QUOTE_MAX * 4 + sizeof("...")];
    size_t        n, i;
    const char  **keys;
    const cJSON  *child;

    if (cJSON_IsArray(item)) {
        i = 0;

        cJSON_ArrayForEach(child, item) {
            i++;

            if (where == NULL && cJSON_IsObject(child)) {
                /* only the top-level "rules" array reaches here unlabelled */
                snprintf(label, sizeof(label), "rule %lu", (unsigned long) i);

                if (xray_rules_unique(ctx, child, label) != 0) {
                    return -1;
                }

                continue;
            }

            if (xray_rules_unique(ctx, child, where) != 0) {
                return -1;
            }
        }

        return 0;
    }

    if (!cJSON_IsObject(item)) {
        return 0;
    }

    n = 0;

    cJSON_ArrayForEach(child, item) {
        n++;
    }

    if (n > 1) {
        keys = ctx->alloc(ctx->alloc_data, n * sizeof(const char *));
        if (keys == NULL) {
            return xray_rules_error(ctx->err, "out of memory");
        }

        i = 0;

        cJSON_ArrayForEach(child, item) {
            keys[i++] = child->string ? child->string : "";
        }

        qsort(keys, n, sizeof(const char *), xray_rules_key_cmp);

        for (i = 1; i < n; i++) {
            if (strcmp(keys[i - 1], keys[i]) != 0) {
                continue;
            }

            xray_rules_quote(quoted, keys[i]);

            return xray_rules_error(ctx->err, "duplicate key \"%s\"%s%s",
                                    quoted, where ? " in " : "",
                                    where ? where : "");
        }
    }

    cJSON_ArrayForEach(child, item) {

        if (where != NULL) {
            if (xray_rules_unique(ctx, child, where) != 0) {
                return -1;
            }

            continue;
        }

        /* the top level: label what is below it */

        if (child->string && strcmp(child->string, "rules") == 0
            && cJSON_IsArray(child))
        {
            if (xray_rules_unique(ctx, child, NULL) != 0) {
                return -1;
            }

        } else if (xray_rules_unique(ctx, child,
                                     child->string
                                     && strcmp(child->string, "default") == 0
                                     ? "\"default\"" : "the document")
                   != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
xray_rules_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}


static int
xray_rules_rule(xray_rules_ctx_t *ctx, const cJSON *item, xray_rule_t *rule,
    const xray_rule_t *prev, size_t nprev)
{
    const char   *host_key, *other_key;
    const cJSON  *description;

    ctx->description = NULL;

    if (!cJSON_IsObject(item)) {
        return xray_rules_error(ctx->err, "rule %lu must be an object",
                                (unsigned long) ctx->n);
    }

    description = cJSON_GetObjectItemCaseSensitive(item, "description");

    if (description != NULL) {
        if (!cJSON_IsString(description)) {
            return xray_rules_field_error(ctx,
                                          "\"description\" must be a string");
        }

        if (description->valuestring[0] != '\0') {
            ctx->description = description->valuestring;
        }
    }

    if (ctx->version == 2) {
        host_key = "host";
        other_key = "service_name";

    } else {
        host_key = "service_name";
        other_key = "host";
    }

    if (cJSON_GetObjectItemCaseSensitive(item, other_key) != NULL) {
        return xray_rules_field_error(ctx,
                   "\"%s\" is a version %d field; use \"%s\"",
                   other_key, 3 - ctx->version, host_key);
    }

    if (xray_rules_pattern(ctx, item, host_key, &rule->host, &rule->host_len)
        != 0)
    {
        return -1;
    }

    if (xray_rules_pattern(ctx, item, "http_method", &rule->method,
                           &rule->method_len)
        != 0)
    {
        return -1;
    }

    if (xray_rules_pattern(ctx, item, "url_path", &rule->path, &rule->path_len)
        != 0)
    {
        return -1;
    }

    if (xray_rules_numbers(ctx, item, rule) != 0) {
        return -1;
    }

    return xray_rules_name(ctx, rule, prev, nprev);
}


static int
xray_rules_default_rule(xray_rules_ctx_t *ctx, const cJSON *item,
    xray_rule_t *rule)
{
    size_t              i;
    static const char  *forbidden[] = {
        "host", "service_name", "http_method", "url_path"
    };

    ctx->n = 0;
    ctx->description = NULL;

    for (i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        if (cJSON_GetObjectItemCaseSensitive(item, forbidden[i]) != NULL) {
            return xray_rules_error(ctx->err,
                                    "\"default\" must not set \"%s\"",
                                    forbidden[i]);
        }
    }

    if (xray_rules_numbers(ctx, item, rule) != 0) {
        return -1;
    }

    return xray_rules_star(ctx, rule, "default");
}


static int
xray_rules_pattern(xray_rules_ctx_t *ctx, const cJSON *item, const char *key,
    const char **value, size_t *len)
{
    size_t        n;
    const cJSON  *v;

    v = cJSON_GetObjectItemCaseSensitive(item, key);

    if (v == NULL) {
        return xray_rules_field_error(ctx, "missing \"%s\"", key);
    }

    if (!cJSON_IsString(v)) {
        return xray_rules_field_error(ctx, "\"%s\" must be a string", key);
    }

    /* cJSON keeps no length: a "\u0000" escape ends the string here */

    n = strlen(v->valuestring);

    if (n > XRAY_RULES_FIELD_MAX) {
        return xray_rules_field_error(ctx, "\"%s\" is longer than %d bytes",
                                      key, XRAY_RULES_FIELD_MAX);
    }

    *value = xray_rules_strdup(ctx, v->valuestring, n);
    if (*value == NULL) {
        return -1;
    }

    *len = n;

    return 0;
}


static int
xray_rules_numbers(xray_rules_ctx_t *ctx, const cJSON *item,
    xray_rule_t *rule)
{
    double        d;
    const cJSON  *v;

    v = cJSON_GetObjectItemCaseSensitive(item, "fixed_target");

    if (v == NULL) {
        return xray_rules_field_error(ctx, "missing \"fixed_target\"");
    }

    /* the negated range test also rejects NaN; the cast test, fractions */

    d = v->valuedouble;

    if (!cJSON_IsNumber(v)
        || !(d >= 0.0 && d <= XRAY_RULES_TARGET_MAX)
        || (double) (uint32_t) d != d)
    {
        return xray_rules_field_error(ctx,
                   "\"fixed_target\" must be an integer from 0 to %lu",
                   (unsigned long) XRAY_RULES_TARGET_MAX);
    }

    rule->fixed_target = (uint32_t) d;

    v = cJSON_GetObjectItemCaseSensitive(item, "rate");

    if (v == NULL) {
        return xray_rules_field_error(ctx, "missing \"rate\"");
    }

    d = v->valuedouble;

    if (!cJSON_IsNumber(v) || !(d >= 0.0 && d <= 1.0)) {
        return xray_rules_field_error(ctx,
                                      "\"rate\" must be a number from 0 to 1");
    }

    /* + 0.0 turns -0 into 0 */
    rule->rate = d + 0.0;
    rule->rate_threshold = xray_rng_threshold(rule->rate);

    return 0;
}


/*
 * Names end up in logs and in Prometheus labels, so a description becomes
 * the name only when it is short, printable, needs no escaping and names no
 * other rule; "rule N" otherwise.
 */

static int
xray_rules_name(xray_rules_ctx_t *ctx, xray_rule_t *rule,
    const xray_rule_t *prev, size_t nprev)
{
    char    buf[sizeof("rule ") + 3 * sizeof(size_t)];
    size_t  i;

    if (ctx->description != NULL && xray_rules_valid_name(ctx->description)) {

        for (i = 0; i < nprev; i++) {
            if (strcmp(prev[i].name, ctx->description) == 0) {
                break;
            }
        }

        if (i == nprev) {
            rule->name = xray_rules_strdup(ctx, ctx->description,
                                           strlen(ctx->description));

            return (rule->name == NULL) ? -1 : 0;
        }
    }

    snprintf(buf, sizeof(buf), "rule %lu", (unsigned long) ctx->n);

    rule->name = xray_rules_strdup(ctx, buf, strlen(buf));

    return (rule->name == NULL) ? -1 : 0;
}


static int
xray_rules_valid_name(const char *s)
{
    size_t         i, len;
    unsigned char  c;

    len = strlen(s);

    if (len == 0 || len > XRAY_RULES_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            return 0;
        }
    }

    if (strcmp(s, "default") == 0) {
        return 0;
    }

    /* "rule K" is reserved for the generated names */

    if (strncmp(s, "rule ", 5) == 0) {
        for (i = 5; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return 1;
            }
        }

        return 0;
    }

    return 1;
}


static int
xray_rules_star(xray_rules_ctx_t *ctx, xray_rule_t *rule, const char *name)
{
    rule->name = xray_rules_strdup(ctx, name, strlen(name));
    rule->host = xray_rules_strdup(ctx, "*", 1);
    rule->method = xray_rules_strdup(ctx, "*", 1);
    rule->path = xray_rules_strdup(ctx, "*", 1);

    if (rule->name == NULL || rule->host == NULL || rule->method == NULL
        || rule->path == NULL)
    {
        return -1;
    }

    rule->host_len = 1;
    rule->method_len = 1;
    rule->path_len = 1;

    return 0;
}


static const char *
xray_rules_strdup(xray_rules_ctx_t *ctx, const char *s, size_t len)
{
    char  *p;

    p = ctx->alloc(ctx->alloc_data, len + 1);
    if (p == NULL) {
        xray_rules_error(ctx->err, "out of memory");
        return NULL;
    }

    memcpy(p, s, len);
    p[len] = '\0';

    return p;
}


static int
xray_rules_error(char *err, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(err, XRAY_RULES_ERR_LEN, fmt, ap);
    va_end(ap);

    return -1;
}


/* prefixes the message with the rule: 'rule 2 ("Player moves."): ' */

static int
xray_rules_field_error(xray_rules_ctx_t *ctx, const char *fmt, ...)
{
    int      n;
    char     quoted[XRAY_RULES_QUOTE_MAX * 4 + sizeof("...")];
    va_list  ap;

    if (ctx->n == 0) {
        n = snprintf(ctx->err, XRAY_RULES_ERR_LEN, "\"default\": ");

    } else if (ctx->description != NULL) {
        xray_rules_quote(quoted, ctx->description);
        n = snprintf(ctx->err, XRAY_RULES_ERR_LEN, "rule %lu (\"%s\"): ",
                     (unsigned long) ctx->n, quoted);

    } else {
        n = snprintf(ctx->err, XRAY_RULES_ERR_LEN, "rule %lu: ",
                     (unsigned long) ctx->n);
    }

    if (n < 0 || n >= XRAY_RULES_ERR_LEN) {
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf(ctx->err + n, XRAY_RULES_ERR_LEN - n, fmt, ap);
    va_end(ap);

    return -1;
}


/*
 * Escapes a description for an error message: the message must hold only
 * printable ASCII.  dst has room for XRAY_RULES_QUOTE_MAX escaped bytes.
 */

static void
xray_rules_quote(char *dst, const char *src)
{
    size_t               i;
    unsigned char        c;
    static const char    hex[] = "0123456789abcdef";

    for (i = 0; src[i] != '\0' && i < XRAY_RULES_QUOTE_MAX; i++) {
        c = (unsigned char) src[i];

        if (c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = (char) c;

        } else if (c < 0x20 || c > 0x7e) {
            *dst++ = '\\';
            *dst++ = 'x';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];

        } else {
            *dst++ = (char) c;
        }
    }

    if (src[i] != '\0') {
        memcpy(dst, "...", 3);
        dst += 3;
    }

    *dst = '\0';
}


/* ASCII only: the C library's tolower() depends on the locale */

static unsigned char
xray_rules_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}


/* the length of the UTF-8 sequence at p; 1 for a byte that starts none */

static size_t
xray_rules_utf8_len(const unsigned char *p, size_t n)
{
    size_t  len, i;

    if (p[0] < 0xc2 || p[0] > 0xf4) {
        return 1;
    }

    len = (p[0] < 0xe0) ? 2 : (p[0] < 0xf0) ? 3 : 4;

    if (len > n) {
        return 1;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 1;
        }
    }

    return len;
}
