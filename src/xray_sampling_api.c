/*
 * X-Ray centralized sampling: request bodies and replies of the sampling
 * API, rule matching, and the per-rule quota, borrow and boost state kept in
 * lock-free words.  See xray_sampling_api.h.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "xray_rules.h"
#include "xray_sampling_api.h"


#define XRAY_SAMPLING_INT_MAX      2147483647.0    /* the model's integer */
#define XRAY_SAMPLING_PRIORITY_MAX 10000.0         /* Default's priority */
#define XRAY_SAMPLING_EPOCH_MAX    10000000000.0   /* seconds: year 2286 */
#define XRAY_SAMPLING_NANO         1000000000.0
#define XRAY_SAMPLING_TRIES        4               /* reads of a racing set */

#define xray_load(p)      __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define xray_store(p, v)  __atomic_store_n(p, v, __ATOMIC_RELEASE)
#define xray_add(p, v)    (void) __atomic_fetch_add(p, v, __ATOMIC_RELAXED)
#define xray_take(p)      __atomic_exchange_n(p, 0, __ATOMIC_ACQ_REL)


typedef struct {
    char        *buf;
    size_t       size;
    size_t       len;
    int          full;
} xray_sampling_out_t;


typedef struct {
    char        *err;
    size_t       n;                    /* record or document, 1-based */
    const char  *name;                 /* its RuleName when known */
    const char  *what;                 /* "rule" or "target" */
} xray_sampling_ctx_t;


static int xray_sampling_parse_json(const char *json, size_t len,
    cJSON **root, char *err);
static int xray_sampling_rule(xray_sampling_ctx_t *ctx, const cJSON *item,
    xray_sampling_rule_t *rule, int *skip);
static int xray_sampling_target(xray_sampling_ctx_t *ctx, const cJSON *item,
    xray_sampling_target_t *target, int *skip);
static int xray_sampling_string(xray_sampling_ctx_t *ctx, const cJSON *obj,
    const char *key, int required, size_t min, size_t max, char *dst,
    size_t *len);
static int xray_sampling_number(xray_sampling_ctx_t *ctx, const cJSON *obj,
    const char *key, int required, int integer, double min, double max,
    double *value);
static int xray_sampling_attributes(xray_sampling_ctx_t *ctx,
    const cJSON *obj, xray_sampling_rule_t *rule);
static int xray_sampling_boost_rule(xray_sampling_ctx_t *ctx,
    const cJSON *obj, xray_sampling_rule_t *rule);
static int xray_sampling_valid_text(const unsigned char *s, size_t len);
static int xray_sampling_error(char *err, const char *fmt, ...);
static int xray_sampling_field_error(xray_sampling_ctx_t *ctx,
    const char *fmt, ...);
static int xray_sampling_cmp(const xray_sampling_rule_t *a,
    const xray_sampling_rule_t *b);
static int xray_sampling_rule_matches(const xray_sampling_rule_t *rule,
    const xray_sampling_request_t *req);
static int xray_sampling_field_matches(const char *pattern, size_t plen,
    size_t pmax, const unsigned char *s, size_t len);
static int xray_sampling_window_take(uint64_t *window, uint64_t capacity,
    uint64_t sec);
static int xray_sampling_same_name(const char *a, size_t alen,
    const char *b, size_t blen);
static xray_sampling_slot_t *xray_sampling_find_slot(
    xray_sampling_shared_t *sh, const char *name, size_t len);
static const xray_sampling_rule_t *xray_sampling_live_rule(
    xray_sampling_shared_t *sh, const char *name, size_t len);
static void xray_sampling_slot_reset(xray_sampling_slot_t *slot,
    const xray_sampling_rule_t *rule);
static uint64_t xray_sampling_nanos(double rate);
static void xray_out(xray_sampling_out_t *out, const char *fmt, ...);
static void xray_out_string(xray_sampling_out_t *out, const char *s,
    size_t len);


/* --- request bodies --- */


int
xray_sampling_rules_request(char *buf, size_t size, const char *next_token,
    size_t next_token_len)
{
    xray_sampling_out_t  out;

    out.buf = buf;
    out.size = size;
    out.len = 0;
    out.full = 0;

    if (next_token == NULL || next_token_len == 0) {
        xray_out(&out, "{}");

    } else {
        xray_out(&out, "{\"NextToken\":");
        xray_out_string(&out, next_token, next_token_len);
        xray_out(&out, "}");
    }

    return out.full ? -1 : (int) out.len;
}


int
xray_sampling_targets_request(char *buf, size_t size, const char *client_id,
    uint64_t now_sec, const xray_sampling_stat_t *stats, size_t n,
    const char *service, size_t service_len)
{
    size_t                       i, nboost;
    const xray_sampling_stat_t  *st;
    xray_sampling_out_t          out;

    out.buf = buf;
    out.size = size;
    out.len = 0;
    out.full = 0;

    if (n > XRAY_SAMPLING_STATS_MAX) {
        return -1;
    }

    /* the model's counts are 32-bit integers: a count beyond is capped */

#define xray_count(v)                                                        \
    ((unsigned long long) ((v) > 2147483647 ? 2147483647 : (v)))

    xray_out(&out, "{\"SamplingStatisticsDocuments\":[");

    nboost = 0;

    for (i = 0; i < n; i++) {
        st = &stats[i];

        xray_out(&out, "%s{\"RuleName\":", i ? "," : "");
        xray_out_string(&out, st->name, st->name_len);
        xray_out(&out, ",\"ClientID\":");
        xray_out_string(&out, client_id, XRAY_SAMPLING_CLIENT_ID_LEN);
        xray_out(&out, ",\"Timestamp\":%llu,\"RequestCount\":%llu,"
                 "\"SampledCount\":%llu,\"BorrowCount\":%llu}",
                 (unsigned long long) now_sec, xray_count(st->requests),
                 xray_count(st->sampled), xray_count(st->borrowed));

        if (st->has_boost) {
            nboost++;
        }
    }

    xray_out(&out, "]");

    if (nboost) {
        xray_out(&out, ",\"SamplingBoostStatisticsDocuments\":[");

        nboost = 0;

        for (i = 0; i < n; i++) {
            st = &stats[i];

            if (!st->has_boost) {
                continue;
            }

            xray_out(&out, "%s{\"RuleName\":", nboost++ ? "," : "");
            xray_out_string(&out, st->name, st->name_len);
            xray_out(&out, ",\"ServiceName\":");
            xray_out_string(&out, service, service_len);
            xray_out(&out, ",\"Timestamp\":%llu,\"AnomalyCount\":%llu,"
                     "\"TotalCount\":%llu,\"SampledAnomalyCount\":%llu}",
                     (unsigned long long) now_sec,
                     xray_count(st->anomalies), xray_count(st->total),
                     xray_count(st->sampled_anomalies));
        }

        xray_out(&out, "]");
    }

#undef xray_count

    xray_out(&out, "}");

    return out.full ? -1 : (int) out.len;
}


/* --- replies --- */


int
xray_sampling_rules_parse(xray_sampling_rules_t *rules, const char *json,
    size_t len, char *next_token, size_t *next_token_len, char *err)
{
    int                    skip, rc;
    size_t                 i, tlen;
    cJSON                 *root;
    const cJSON           *list, *item, *token;
    xray_sampling_ctx_t    ctx;
    xray_sampling_rule_t  *rule;

    *next_token_len = 0;

    if (xray_sampling_parse_json(json, len, &root, err) != 0) {
        return -1;
    }

    rc = -1;

    ctx.err = err;
    ctx.what = "rule";
    ctx.name = NULL;

    list = cJSON_GetObjectItemCaseSensitive(root, "SamplingRuleRecords");

    if (!cJSON_IsArray(list)) {
        xray_sampling_error(err, "\"SamplingRuleRecords\" must be an array");
        goto done;
    }

    token = cJSON_GetObjectItemCaseSensitive(root, "NextToken");
    tlen = 0;

    if (token != NULL && !cJSON_IsNull(token)) {
        if (!cJSON_IsString(token)) {
            xray_sampling_error(err, "\"NextToken\" must be a string");
            goto done;
        }

        tlen = strlen(token->valuestring);

        if (tlen > XRAY_SAMPLING_TOKEN_MAX) {
            xray_sampling_error(err, "\"NextToken\" is longer than %d bytes",
                                XRAY_SAMPLING_TOKEN_MAX);
            goto done;
        }
    }

    i = 0;

    cJSON_ArrayForEach(item, list) {
        ctx.n = rules->nrules + rules->skipped + 1;
        ctx.name = NULL;

        if (rules->nrules == XRAY_SAMPLING_RULES_MAX) {
            xray_sampling_error(err, "too many rules: more than %d",
                                XRAY_SAMPLING_RULES_MAX);
            goto done;
        }

        rule = &rules->rules[rules->nrules];

        if (xray_sampling_rule(&ctx, item, rule, &skip) != 0) {
            goto done;
        }

        if (skip) {
            rules->skipped++;
            continue;
        }

        for (i = 0; i < rules->nrules; i++) {
            if (xray_sampling_same_name(rules->rules[i].name,
                                        rules->rules[i].name_len,
                                        rule->name, rule->name_len))
            {
                xray_sampling_field_error(&ctx, "a second rule of this name");
                goto done;
            }
        }

        rules->nrules++;
    }

    if (tlen) {
        memcpy(next_token, token->valuestring, tlen);
    }

    *next_token_len = tlen;
    rules->pages++;
    rc = 0;

done:

    cJSON_Delete(root);

    return rc;
}


int
xray_sampling_targets_parse(xray_sampling_targets_t *targets,
    const char *json, size_t len, char *err)
{
    int                      skip, rc;
    double                   d;
    cJSON                   *root;
    const cJSON             *list, *item;
    xray_sampling_ctx_t      ctx;

    memset(targets, 0, sizeof(xray_sampling_targets_t));

    if (xray_sampling_parse_json(json, len, &root, err) != 0) {
        return -1;
    }

    rc = -1;

    ctx.err = err;
    ctx.what = "target";
    ctx.name = NULL;
    ctx.n = 0;

    list = cJSON_GetObjectItemCaseSensitive(root, "SamplingTargetDocuments");

    if (list != NULL && !cJSON_IsNull(list)) {
        if (!cJSON_IsArray(list)) {
            xray_sampling_error(err,
                         "\"SamplingTargetDocuments\" must be an array");
            goto done;
        }

        cJSON_ArrayForEach(item, list) {
            ctx.n++;
            ctx.name = NULL;

            if (targets->ntargets == XRAY_SAMPLING_RULES_MAX) {
                xray_sampling_error(err, "too many targets: more than %d",
                                    XRAY_SAMPLING_RULES_MAX);
                goto done;
            }

            if (xray_sampling_target(&ctx, item,
                                     &targets->targets[targets->ntargets],
                                     &skip)
                != 0)
            {
                goto done;
            }

            if (skip) {
                targets->ignored++;

            } else {
                targets->ntargets++;
            }
        }
    }

    ctx.n = 0;
    ctx.what = NULL;

    if (xray_sampling_number(&ctx, root, "LastRuleModification", 0, 0, 0,
                             XRAY_SAMPLING_EPOCH_MAX, &d)
        != 0)
    {
        goto done;
    }

    if (d >= 0) {
        targets->has_last_modification = 1;
        targets->last_modification_ms = (uint64_t) (d * 1000.0);
    }

    list = cJSON_GetObjectItemCaseSensitive(root, "UnprocessedStatistics");

    if (list != NULL && !cJSON_IsNull(list)) {
        if (!cJSON_IsArray(list)) {
            xray_sampling_error(err,
                                "\"UnprocessedStatistics\" must be an array");
            goto done;
        }

        targets->unprocessed = (uint32_t) cJSON_GetArraySize(list);
    }

    list = cJSON_GetObjectItemCaseSensitive(root,
                                            "UnprocessedBoostStatistics");

    if (list != NULL && !cJSON_IsNull(list)) {
        if (!cJSON_IsArray(list)) {
            xray_sampling_error(err,
                           "\"UnprocessedBoostStatistics\" must be an array");
            goto done;
        }

        targets->unprocessed_boost = (uint32_t) cJSON_GetArraySize(list);
    }

    rc = 0;

done:

    cJSON_Delete(root);

    return rc;
}


static int
xray_sampling_parse_json(const char *json, size_t len, cJSON **root,
    char *err)
{
    const char  *end, *last;

    if (json == NULL || len == 0) {
        return xray_sampling_error(err, "empty reply");
    }

    if (len > XRAY_SAMPLING_REPLY_MAX) {
        return xray_sampling_error(err, "reply of more than %d bytes",
                                   XRAY_SAMPLING_REPLY_MAX);
    }

    /* as in xray_rules.c: cJSON accepts trailing garbage, so check it */

    end = NULL;
    *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);

    if (*root == NULL) {
        if (end == NULL || end < json || end > json + len) {
            end = json;
        }

        return xray_sampling_error(err, "invalid JSON near offset %lu",
                                   (unsigned long) (end - json));
    }

    last = json + len;

    while (end < last && (unsigned char) *end <= ' ') {
        end++;
    }

    if (end < last) {
        cJSON_Delete(*root);
        return xray_sampling_error(err, "invalid JSON near offset %lu",
                                   (unsigned long) (end - json));
    }

    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        return xray_sampling_error(err, "the reply must be a JSON object");
    }

    return 0;
}


static int
xray_sampling_rule(xray_sampling_ctx_t *ctx, const cJSON *item,
    xray_sampling_rule_t *rule, int *skip)
{
    size_t        len;
    double        d;
    const cJSON  *sr;

    *skip = 0;
    memset(rule, 0, sizeof(xray_sampling_rule_t));

    if (!cJSON_IsObject(item)) {
        return xray_sampling_field_error(ctx, "must be an object");
    }

    sr = cJSON_GetObjectItemCaseSensitive(item, "SamplingRule");

    if (!cJSON_IsObject(sr)) {
        return xray_sampling_field_error(ctx,
                                   "\"SamplingRule\" must be an object");
    }

    if (xray_sampling_string(ctx, sr, "RuleName", 1, 1,
                             XRAY_SAMPLING_NAME_LEN, rule->name, &len)
        != 0)
    {
        return -1;
    }

    rule->name_len = (uint8_t) len;

    /* the name for messages: a valid RuleName is short and printable */
    ctx->name = cJSON_GetObjectItemCaseSensitive(sr, "RuleName")->valuestring;

    if (xray_sampling_number(ctx, sr, "Version", 1, 1, 1,
                             XRAY_SAMPLING_INT_MAX, &d)
        != 0)
    {
        return -1;
    }

    if (d != 1.0) {
        /* as the SDKs: only version 1 rules are understood */
        *skip = 1;
        return 0;
    }

#define xray_rule_string(key, field, max)                                    \
    if (xray_sampling_string(ctx, sr, key, 1, 0, max, rule->field, &len)     \
        != 0)                                                                \
    {                                                                        \
        return -1;                                                           \
    }                                                                        \
    rule->field##_len = (uint8_t) len

    xray_rule_string("ServiceName", service_name, XRAY_SAMPLING_SERVICE_LEN);
    xray_rule_string("ServiceType", service_type, XRAY_SAMPLING_SERVICE_LEN);
    xray_rule_string("Host", host, XRAY_SAMPLING_HOST_LEN);
    xray_rule_string("HTTPMethod", method, XRAY_SAMPLING_METHOD_LEN);
    xray_rule_string("URLPath", path, XRAY_SAMPLING_PATH_LEN);

#undef xray_rule_string

    if (xray_sampling_string(ctx, sr, "ResourceARN", 1, 0,
                             XRAY_SAMPLING_ARN_LEN, rule->resource_arn, &len)
        != 0)
    {
        return -1;
    }

    rule->resource_arn_len = (uint16_t) len;

    if (xray_sampling_number(ctx, sr, "Priority", 1, 1, 1,
                             XRAY_SAMPLING_PRIORITY_MAX, &d)
        != 0)
    {
        return -1;
    }

    rule->priority = (uint32_t) d;

    if (xray_sampling_number(ctx, sr, "FixedRate", 1, 0, 0, 1, &d) != 0) {
        return -1;
    }

    rule->fixed_rate = d;

    if (xray_sampling_number(ctx, sr, "ReservoirSize", 1, 1, 0,
                             XRAY_SAMPLING_INT_MAX, &d)
        != 0)
    {
        return -1;
    }

    rule->reservoir_size = (uint32_t) d;

    if (xray_sampling_attributes(ctx, sr, rule) != 0) {
        return -1;
    }

    if (xray_sampling_boost_rule(ctx, sr, rule) != 0) {
        return -1;
    }

    rule->is_default = (rule->name_len == 7
                        && memcmp(rule->name, "Default", 7) == 0);

    return 0;
}


static int
xray_sampling_attributes(xray_sampling_ctx_t *ctx, const cJSON *obj,
    xray_sampling_rule_t *rule)
{
    size_t                 klen, vlen;
    const cJSON           *attrs, *a;
    xray_sampling_attr_t  *attr;

    attrs = cJSON_GetObjectItemCaseSensitive(obj, "Attributes");

    if (attrs == NULL || cJSON_IsNull(attrs)) {
        return 0;
    }

    if (!cJSON_IsObject(attrs)) {
        return xray_sampling_field_error(ctx,
                                       "\"Attributes\" must be an object");
    }

    cJSON_ArrayForEach(a, attrs) {
        if (rule->nattrs == XRAY_SAMPLING_ATTRS_MAX) {
            return xray_sampling_field_error(ctx,
                                    "more than %d \"Attributes\"",
                                    XRAY_SAMPLING_ATTRS_MAX);
        }

        attr = &rule->attrs[rule->nattrs];

        klen = a->string ? strlen(a->string) : 0;

        if (klen < 1 || klen > XRAY_SAMPLING_ATTR_LEN
            || !xray_sampling_valid_text((const unsigned char *) a->string,
                                         klen))
        {
            return xray_sampling_field_error(ctx,
                        "an \"Attributes\" key must be 1 to %d characters",
                        XRAY_SAMPLING_ATTR_LEN);
        }

        if (!cJSON_IsString(a)) {
            return xray_sampling_field_error(ctx,
                             "\"Attributes\" values must be strings");
        }

        vlen = strlen(a->valuestring);

        if (vlen < 1 || vlen > XRAY_SAMPLING_ATTR_LEN
            || !xray_sampling_valid_text((const unsigned char *)
                                         a->valuestring, vlen))
        {
            return xray_sampling_field_error(ctx,
                        "an \"Attributes\" value must be 1 to %d characters",
                        XRAY_SAMPLING_ATTR_LEN);
        }

        memcpy(attr->key, a->string, klen);
        attr->key_len = (uint8_t) klen;
        memcpy(attr->value, a->valuestring, vlen);
        attr->value_len = (uint8_t) vlen;
        rule->nattrs++;
    }

    return 0;
}


static int
xray_sampling_boost_rule(xray_sampling_ctx_t *ctx, const cJSON *obj,
    xray_sampling_rule_t *rule)
{
    double        d;
    const cJSON  *boost;

    boost = cJSON_GetObjectItemCaseSensitive(obj, "SamplingRateBoost");

    if (boost == NULL || cJSON_IsNull(boost)) {
        return 0;
    }

    if (!cJSON_IsObject(boost)) {
        return xray_sampling_field_error(ctx,
                                "\"SamplingRateBoost\" must be an object");
    }

    if (xray_sampling_number(ctx, boost, "MaxRate", 1, 0, 0, 1, &d) != 0) {
        return -1;
    }

    rule->boost_max_rate = d;

    if (xray_sampling_number(ctx, boost, "CooldownWindowMinutes", 0, 1, 1,
                             XRAY_SAMPLING_INT_MAX, &d)
        != 0)
    {
        return -1;
    }

    rule->boost_cooldown = d < 0 ? 0 : (uint32_t) d;
    rule->has_boost = 1;

    return 0;
}


static int
xray_sampling_target(xray_sampling_ctx_t *ctx, const cJSON *item,
    xray_sampling_target_t *target, int *skip)
{
    size_t        len;
    double        d, ttl;
    const cJSON  *name, *boost;

    *skip = 0;
    memset(target, 0, sizeof(xray_sampling_target_t));

    if (!cJSON_IsObject(item)) {
        return xray_sampling_field_error(ctx, "must be an object");
    }

    name = cJSON_GetObjectItemCaseSensitive(item, "RuleName");

    if (name == NULL || cJSON_IsNull(name)) {
        /* the model makes it optional; such a target applies to nothing */
        *skip = 1;
        return 0;
    }

    if (xray_sampling_string(ctx, item, "RuleName", 1, 1,
                             XRAY_SAMPLING_NAME_LEN, target->name, &len)
        != 0)
    {
        return -1;
    }

    target->name_len = (uint8_t) len;
    ctx->name = name->valuestring;

    if (xray_sampling_number(ctx, item, "FixedRate", 0, 0, 0, 1, &d) != 0) {
        return -1;
    }

    if (d >= 0) {
        target->has_fixed_rate = 1;
        target->fixed_rate = d;
    }

    if (xray_sampling_number(ctx, item, "ReservoirQuota", 0, 1, 0,
                             XRAY_SAMPLING_INT_MAX, &d)
        != 0)
    {
        return -1;
    }

    if (xray_sampling_number(ctx, item, "ReservoirQuotaTTL", 0, 0, 0,
                             XRAY_SAMPLING_EPOCH_MAX, &ttl)
        != 0)
    {
        return -1;
    }

    /* a quota without its TTL could never expire: not applied */

    if (d >= 0 && ttl >= 0) {
        target->has_quota = 1;
        target->quota = (uint32_t) d;
        target->quota_ttl_ms = (uint64_t) (ttl * 1000.0);
    }

    if (xray_sampling_number(ctx, item, "Interval", 0, 1, 0,
                             XRAY_SAMPLING_INT_MAX, &d)
        != 0)
    {
        return -1;
    }

    if (d >= 0) {
        target->has_interval = 1;
        target->interval = (uint32_t) d;
    }

    boost = cJSON_GetObjectItemCaseSensitive(item, "SamplingBoost");

    if (boost != NULL && !cJSON_IsNull(boost)) {
        if (!cJSON_IsObject(boost)) {
            return xray_sampling_field_error(ctx,
                                    "\"SamplingBoost\" must be an object");
        }

        if (xray_sampling_number(ctx, boost, "BoostRate", 1, 0, 0, 1, &d)
            != 0
            || xray_sampling_number(ctx, boost, "BoostRateTTL", 1, 0, 0,
                                    XRAY_SAMPLING_EPOCH_MAX, &ttl)
               != 0)
        {
            return -1;
        }

        target->has_boost = 1;
        target->boost_rate = d;
        target->boost_ttl_ms = (uint64_t) (ttl * 1000.0);
    }

    return 0;
}


static int
xray_sampling_string(xray_sampling_ctx_t *ctx, const cJSON *obj,
    const char *key, int required, size_t min, size_t max, char *dst,
    size_t *len)
{
    size_t        n;
    const cJSON  *item;

    *len = 0;

    item = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (item == NULL || cJSON_IsNull(item)) {
        if (required) {
            return xray_sampling_field_error(ctx, "missing \"%s\"", key);
        }

        return 0;
    }

    if (!cJSON_IsString(item)) {
        return xray_sampling_field_error(ctx, "\"%s\" must be a string", key);
    }

    n = strlen(item->valuestring);

    if (n < min || n > max) {
        return xray_sampling_field_error(ctx,
                                   "\"%s\" must be %lu to %lu bytes long",
                                   key, (unsigned long) min,
                                   (unsigned long) max);
    }

    if (!xray_sampling_valid_text((const unsigned char *) item->valuestring,
                                  n))
    {
        return xray_sampling_field_error(ctx,
                  "\"%s\" must be UTF-8 text without control characters",
                  key);
    }

    memcpy(dst, item->valuestring, n);
    *len = n;

    return 0;
}


/* an absent (or null) optional number gives -1 */

static int
xray_sampling_number(xray_sampling_ctx_t *ctx, const cJSON *obj,
    const char *key, int required, int integer, double min, double max,
    double *value)
{
    double        d;
    const cJSON  *item;

    *value = -1;

    item = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (item == NULL || cJSON_IsNull(item)) {
        if (required) {
            return xray_sampling_field_error(ctx, "missing \"%s\"", key);
        }

        return 0;
    }

    d = item->valuedouble;

    /* NaN and infinities (cJSON gives them for 1e999) fail the range */

    if (!cJSON_IsNumber(item) || !(d >= min && d <= max)
        || (integer && d != (double) (long long) d))
    {
        if (integer) {
            return xray_sampling_field_error(ctx,
                                   "\"%s\" must be an integer from %.0f "
                                   "to %.0f", key, min, max);
        }

        return xray_sampling_field_error(ctx,
                                   "\"%s\" must be a number from %g to %.0f",
                                   key, min, max);
    }

    *value = d;

    return 0;
}


/* UTF-8 without C0 controls or DEL: what is safe to log and echo back */

static int
xray_sampling_valid_text(const unsigned char *s, size_t len)
{
    size_t         i, n, k;
    unsigned char  c;
    uint32_t       cp;

    for (i = 0; i < len; i += n) {
        c = s[i];

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return 0;
            }

            n = 1;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;

        } else {
            return 0;
        }

        if (n > len - i) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (s[i + k] & 0x3f);
        }

        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        {
            return 0;
        }
    }

    return 1;
}


static int
xray_sampling_error(char *err, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(err, XRAY_SAMPLING_ERR_LEN, fmt, args);
    va_end(args);

    return -1;
}


static int
xray_sampling_field_error(xray_sampling_ctx_t *ctx, const char *fmt, ...)
{
    char     msg[160];
    va_list  args;

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    /* a RuleName is at most 32 bytes once valid: longer ones are cut */

    if (ctx->what == NULL) {
        snprintf(ctx->err, XRAY_SAMPLING_ERR_LEN, "%s", msg);

    } else if (ctx->name) {
        snprintf(ctx->err, XRAY_SAMPLING_ERR_LEN, "%s %lu (\"%.32s\"): %s",
                 ctx->what, (unsigned long) ctx->n, ctx->name, msg);

    } else {
        snprintf(ctx->err, XRAY_SAMPLING_ERR_LEN, "%s %lu: %s",
                 ctx->what, (unsigned long) ctx->n, msg);
    }

    return -1;
}


/* --- order and matching --- */


void
xray_sampling_rules_sort(xray_sampling_rules_t *rules)
{
    size_t                i, j;
    xray_sampling_rule_t  tmp;

    /* insertion sort: at most XRAY_SAMPLING_RULES_MAX, once per poll */

    for (i = 1; i < rules->nrules; i++) {
        tmp = rules->rules[i];

        for (j = i; j > 0 && xray_sampling_cmp(&tmp, &rules->rules[j - 1]) < 0;
             j--)
        {
            rules->rules[j] = rules->rules[j - 1];
        }

        rules->rules[j] = tmp;
    }
}


static int
xray_sampling_cmp(const xray_sampling_rule_t *a,
    const xray_sampling_rule_t *b)
{
    int     rc;
    size_t  n;

    if (a->is_default != b->is_default) {
        return a->is_default ? 1 : -1;
    }

    if (a->priority != b->priority) {
        return a->priority < b->priority ? -1 : 1;
    }

    /* byte order of UTF-8 is code point order, as the SDKs compare */

    n = a->name_len < b->name_len ? a->name_len : b->name_len;
    rc = memcmp(a->name, b->name, n);

    if (rc != 0) {
        return rc;
    }

    return (int) a->name_len - (int) b->name_len;
}


int
xray_sampling_match(const xray_sampling_rules_t *rules,
    const xray_sampling_request_t *req)
{
    uint32_t  i, n;

    n = rules->nrules;

    if (n > XRAY_SAMPLING_RULES_MAX) {
        n = XRAY_SAMPLING_RULES_MAX;
    }

    for (i = 0; i < n; i++) {
        if (xray_sampling_rule_matches(&rules->rules[i], req)) {
            return (int) i;
        }
    }

    return -1;
}


static int
xray_sampling_rule_matches(const xray_sampling_rule_t *rule,
    const xray_sampling_request_t *req)
{
    size_t                      i, vlen, n;
    const unsigned char        *v;
    const xray_sampling_attr_t  *attr;

    if (rule->is_default) {
        return 1;
    }

#define xray_field(field, max)                                               \
    xray_sampling_field_matches(rule->field, rule->field##_len, max,         \
                                req->field, req->field##_len)

    if (!(xray_field(host, XRAY_SAMPLING_HOST_LEN)
          && xray_field(method, XRAY_SAMPLING_METHOD_LEN)
          && xray_field(path, XRAY_SAMPLING_PATH_LEN)
          && xray_field(service_name, XRAY_SAMPLING_SERVICE_LEN)
          && xray_field(service_type, XRAY_SAMPLING_SERVICE_LEN)
          && xray_field(resource_arn, XRAY_SAMPLING_ARN_LEN)))
    {
        return 0;
    }

#undef xray_field

    n = rule->nattrs < XRAY_SAMPLING_ATTRS_MAX ? rule->nattrs
                                               : XRAY_SAMPLING_ATTRS_MAX;

    for (i = 0; i < n; i++) {
        attr = &rule->attrs[i];
        v = NULL;
        vlen = 0;

        /* a rule with Attributes needs every one of them present */

        if (req->attr == NULL
            || !req->attr(req->attr_data, attr->key,
                          attr->key_len < XRAY_SAMPLING_ATTR_LEN
                          ? attr->key_len : XRAY_SAMPLING_ATTR_LEN,
                          &v, &vlen)
            || !xray_sampling_field_matches(attr->value, attr->value_len,
                                            XRAY_SAMPLING_ATTR_LEN, v, vlen))
        {
            return 0;
        }
    }

    return 1;
}


static int
xray_sampling_field_matches(const char *pattern, size_t plen, size_t pmax,
    const unsigned char *s, size_t len)
{
    /* lengths are clamped: a set being rewritten must not be overrun */

    if (plen > pmax) {
        plen = pmax;
    }

    if (s == NULL) {
        len = 0;
    }

    return xray_wildcard_match(pattern, plen, s, len);
}


void
xray_sampling_client_id(xray_rng_t *rng, char *out)
{
    size_t         i;
    uint64_t       r;
    static const char  hex[] = "0123456789abcdef";

    r = 0;

    for (i = 0; i < XRAY_SAMPLING_CLIENT_ID_LEN; i++) {
        if (i % 16 == 0) {
            r = xray_rng_next(rng);
        }

        out[i] = hex[r & 0xf];
        r >>= 4;
    }
}


/* --- shared state --- */


void
xray_sampling_shared_init(xray_sampling_shared_t *sh)
{
    memset(sh, 0, sizeof(xray_sampling_shared_t));
}


void
xray_sampling_publish(xray_sampling_shared_t *sh,
    const xray_sampling_rules_t *rules, uint64_t now_ms)
{
    int                          used;
    uint32_t                     i, j, b, n;
    uint64_t                     gen, live;
    xray_sampling_rule_t        *rule;
    xray_sampling_slot_t        *slot;
    xray_sampling_rules_t       *set;
    const xray_sampling_rule_t  *old;

    live = xray_load(&sh->live);

    /* slots of neither the live set nor the new one are free again */

    for (j = 0; j < XRAY_SAMPLING_SLOTS; j++) {
        slot = &sh->slots[j];

        if (!slot->in_use) {
            continue;
        }

        used = 0;

        if (live) {
            set = &sh->sets[live & 1];

            for (i = 0; i < set->nrules && !used; i++) {
                used = (set->rules[i].slot == j);
            }
        }

        slot->in_use = (uint8_t) used;
    }

    gen = sh->gen + 1;
    b = (uint32_t) (gen & 1);
    set = &sh->sets[b];

    xray_add(&sh->seq[b], 1);                  /* odd: being written */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    n = rules->nrules < XRAY_SAMPLING_RULES_MAX ? rules->nrules
                                                : XRAY_SAMPLING_RULES_MAX;

    memcpy(set->rules, rules->rules, n * sizeof(xray_sampling_rule_t));
    set->nrules = n;
    set->skipped = rules->skipped;
    set->pages = rules->pages;

    for (i = 0; i < n; i++) {
        rule = &set->rules[i];

        old = xray_sampling_live_rule(sh, rule->name, rule->name_len);
        slot = xray_sampling_find_slot(sh, rule->name, rule->name_len);

        if (slot == NULL) {
            /* a free slot: there is room for two full sets */

            for (j = 0; j < XRAY_SAMPLING_SLOTS; j++) {
                if (!sh->slots[j].in_use) {
                    break;
                }
            }

            slot = &sh->slots[j];
            memcpy(slot->name, rule->name, rule->name_len);
            slot->name_len = rule->name_len;
            slot->in_use = 1;

            xray_sampling_slot_reset(slot, rule);

            xray_store(&slot->quota_window, 0);
            xray_store(&slot->borrow_window, 0);
            xray_store(&slot->requests, 0);
            xray_store(&slot->sampled, 0);
            xray_store(&slot->borrowed, 0);
            xray_store(&slot->anomalies, 0);
            xray_store(&slot->total, 0);
            xray_store(&slot->sampled_anomalies, 0);
            xray_store(&slot->all_requests, 0);
            xray_store(&slot->all_sampled, 0);
            xray_store(&slot->all_borrowed, 0);
            xray_store(&slot->all_quota, 0);
            xray_store(&slot->all_boosted, 0);

        } else if (old == NULL
                   || old->fixed_rate != rule->fixed_rate
                   || old->reservoir_size != rule->reservoir_size)
        {
            /* a changed rule starts over, as an SDK's new rule would */
            xray_sampling_slot_reset(slot, rule);
        }

        slot->in_use = 1;
        rule->slot = (uint16_t) (slot - sh->slots);
    }

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    xray_add(&sh->seq[b], 1);                  /* even: done */

    sh->gen = gen;
    xray_store(&sh->published_ms, now_ms);
    xray_store(&sh->live, gen);
}


static void
xray_sampling_slot_reset(xray_sampling_slot_t *slot,
    const xray_sampling_rule_t *rule)
{
    xray_store(&slot->quota_ttl_ms, 0);
    xray_store(&slot->quota, 0);
    xray_store(&slot->boost_ttl_ms, 0);
    xray_store(&slot->boost, 0);
    xray_store(&slot->rate, xray_sampling_nanos(rule->fixed_rate));
}


int
xray_sampling_has_rules(xray_sampling_shared_t *sh)
{
    return xray_load(&sh->live) != 0;
}


void
xray_sampling_withdraw(xray_sampling_shared_t *sh)
{
    xray_store(&sh->live, 0);
}


void
xray_sampling_apply_targets(xray_sampling_shared_t *sh,
    const xray_sampling_targets_t *targets)
{
    uint32_t                       i;
    xray_sampling_slot_t          *slot;
    const xray_sampling_target_t  *t;

    for (i = 0; i < targets->ntargets && i < XRAY_SAMPLING_RULES_MAX; i++) {
        t = &targets->targets[i];

        if (xray_sampling_live_rule(sh, t->name, t->name_len) == NULL) {
            continue;
        }

        slot = xray_sampling_find_slot(sh, t->name, t->name_len);
        if (slot == NULL) {
            continue;
        }

        if (t->has_fixed_rate) {
            xray_store(&slot->rate, xray_sampling_nanos(t->fixed_rate));
        }

        if (t->has_quota) {
            xray_store(&slot->quota, t->quota);
            xray_store(&slot->quota_ttl_ms,
                       t->quota_ttl_ms ? t->quota_ttl_ms : 1);
        }

        if (t->has_boost) {
            xray_store(&slot->boost, xray_sampling_nanos(t->boost_rate));
            xray_store(&slot->boost_ttl_ms, t->boost_ttl_ms);
        }
    }
}


size_t
xray_sampling_collect(xray_sampling_shared_t *sh, xray_sampling_stat_t *stats,
    size_t max)
{
    size_t                       n;
    uint32_t                     i;
    uint64_t                     live;
    xray_sampling_slot_t        *slot;
    xray_sampling_stat_t        *st;
    xray_sampling_rules_t       *set;
    const xray_sampling_rule_t  *rule;

    live = xray_load(&sh->live);

    if (live == 0) {
        return 0;
    }

    set = &sh->sets[live & 1];
    n = 0;

    for (i = 0; i < set->nrules && n < max; i++) {
        rule = &set->rules[i];
        slot = &sh->slots[rule->slot];

        if (xray_load(&slot->requests) == 0 && xray_load(&slot->total) == 0) {
            continue;
        }

        st = &stats[n++];
        memset(st, 0, sizeof(xray_sampling_stat_t));

        memcpy(st->name, rule->name, rule->name_len);
        st->name_len = rule->name_len;
        st->has_boost = rule->has_boost;

        /* sampled before requests: a sample never outnumbers its request */
        st->sampled = xray_take(&slot->sampled);
        st->borrowed = xray_take(&slot->borrowed);
        st->requests = xray_take(&slot->requests);
        st->sampled_anomalies = xray_take(&slot->sampled_anomalies);
        st->anomalies = xray_take(&slot->anomalies);
        st->total = xray_take(&slot->total);
    }

    return n;
}


void
xray_sampling_restore(xray_sampling_shared_t *sh,
    const xray_sampling_stat_t *stats, size_t n)
{
    size_t                       i;
    xray_sampling_slot_t        *slot;
    const xray_sampling_stat_t  *st;

    for (i = 0; i < n; i++) {
        st = &stats[i];

        slot = xray_sampling_find_slot(sh, st->name, st->name_len);
        if (slot == NULL) {
            continue;
        }

        xray_add(&slot->requests, st->requests);
        xray_add(&slot->sampled, st->sampled);
        xray_add(&slot->borrowed, st->borrowed);
        xray_add(&slot->anomalies, st->anomalies);
        xray_add(&slot->total, st->total);
        xray_add(&slot->sampled_anomalies, st->sampled_anomalies);
    }
}


int
xray_sampling_lookup(xray_sampling_shared_t *sh,
    const xray_sampling_request_t *req, xray_sampling_pick_t *pick)
{
    int                          i, try;
    uint32_t                     b;
    uint64_t                     live, s1, s2;
    const xray_sampling_rule_t  *rule;
    const xray_sampling_rules_t *set;

    for (try = 0; try < XRAY_SAMPLING_TRIES; try++) {
        live = xray_load(&sh->live);

        if (live == 0) {
            return -1;
        }

        b = (uint32_t) (live & 1);
        s1 = xray_load(&sh->seq[b]);

        if (s1 & 1) {
            continue;
        }

        set = &sh->sets[b];
        i = xray_sampling_match(set, req);

        if (i >= 0) {
            rule = &set->rules[i];

            pick->slot = rule->slot < XRAY_SAMPLING_SLOTS ? rule->slot : 0;
            pick->reservoir_size = rule->reservoir_size;
            pick->has_boost = rule->has_boost;
            pick->name_len = rule->name_len < XRAY_SAMPLING_NAME_LEN
                             ? rule->name_len : XRAY_SAMPLING_NAME_LEN;
            memcpy(pick->name, rule->name, pick->name_len);
        }

        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = xray_load(&sh->seq[b]);

        if (s1 == s2) {
            return i >= 0 ? 0 : -1;
        }
    }

    return -1;
}


xray_sampling_decision_e
xray_sampling_decide(xray_sampling_shared_t *sh,
    const xray_sampling_pick_t *pick, uint64_t now_ms, uint32_t random)
{
    int                    boosted;
    uint64_t               sec, ttl, rate, boost_ttl;
    xray_sampling_slot_t  *slot;

    slot = &sh->slots[pick->slot];
    sec = now_ms / 1000;

    xray_add(&slot->requests, 1);
    xray_add(&slot->all_requests, 1);

    ttl = xray_load(&slot->quota_ttl_ms);

    if (ttl != 0 && now_ms < ttl) {
        if (xray_sampling_window_take(&slot->quota_window,
                                      xray_load(&slot->quota), sec))
        {
            xray_add(&slot->sampled, 1);
            xray_add(&slot->all_sampled, 1);
            xray_add(&slot->all_quota, 1);
            return XRAY_SAMPLING_QUOTA;
        }

    } else if (pick->reservoir_size > 0) {
        /* no quota yet, or it expired: borrow one a second */

        if (xray_sampling_window_take(&slot->borrow_window, 1, sec)) {
            xray_add(&slot->sampled, 1);
            xray_add(&slot->borrowed, 1);
            xray_add(&slot->all_sampled, 1);
            xray_add(&slot->all_borrowed, 1);
            return XRAY_SAMPLING_BORROW;
        }
    }

    boost_ttl = xray_load(&slot->boost_ttl_ms);
    boosted = (boost_ttl != 0 && now_ms < boost_ttl);
    rate = boosted ? xray_load(&slot->boost) : xray_load(&slot->rate);

    /* random / 2^32 < rate / 1e9, in integers: no rounding at 0 or 1 */

    if ((uint64_t) random * (uint64_t) XRAY_SAMPLING_NANO < (rate << 32)) {
        xray_add(&slot->sampled, 1);
        xray_add(&slot->all_sampled, 1);

        if (boosted) {
            xray_add(&slot->all_boosted, 1);
            return XRAY_SAMPLING_BOOST;
        }

        return XRAY_SAMPLING_RATE;
    }

    return XRAY_SAMPLING_NO;
}


void
xray_sampling_outcome(xray_sampling_shared_t *sh,
    const xray_sampling_pick_t *pick, int anomaly, int sampled)
{
    xray_sampling_slot_t  *slot;

    if (!pick->has_boost) {
        return;
    }

    slot = &sh->slots[pick->slot];

    xray_add(&slot->total, 1);

    if (anomaly) {
        xray_add(&slot->anomalies, 1);

        if (sampled) {
            xray_add(&slot->sampled_anomalies, 1);
        }
    }
}


void
xray_sampling_slot_read(xray_sampling_shared_t *sh, uint32_t slot,
    xray_sampling_slot_t *out)
{
    xray_sampling_slot_t  *s;

    memset(out, 0, sizeof(xray_sampling_slot_t));

    if (slot >= XRAY_SAMPLING_SLOTS) {
        return;
    }

    s = &sh->slots[slot];

    out->rate = xray_load(&s->rate);
    out->quota = xray_load(&s->quota);
    out->quota_ttl_ms = xray_load(&s->quota_ttl_ms);
    out->boost = xray_load(&s->boost);
    out->boost_ttl_ms = xray_load(&s->boost_ttl_ms);
    out->quota_window = xray_load(&s->quota_window);
    out->borrow_window = xray_load(&s->borrow_window);
    out->requests = xray_load(&s->requests);
    out->sampled = xray_load(&s->sampled);
    out->borrowed = xray_load(&s->borrowed);
    out->anomalies = xray_load(&s->anomalies);
    out->total = xray_load(&s->total);
    out->sampled_anomalies = xray_load(&s->sampled_anomalies);
    out->all_requests = xray_load(&s->all_requests);
    out->all_sampled = xray_load(&s->all_sampled);
    out->all_borrowed = xray_load(&s->all_borrowed);
    out->all_quota = xray_load(&s->all_quota);
    out->all_boosted = xray_load(&s->all_boosted);
    memcpy(out->name, s->name, sizeof(out->name));
    out->name_len = s->name_len;
    out->in_use = s->in_use;
}


/*
 * A per-second window in one word: the second in the high half, how many
 * were taken in it in the low half; one compare-and-swap takes one.  A
 * process whose clock lags a fraction of a second counts against the newer
 * second rather than opening the old one again.  A zero word has never been
 * used.
 */

static int
xray_sampling_window_take(uint64_t *window, uint64_t capacity, uint64_t sec)
{
    int32_t   age;
    uint64_t  old, new, wsec, taken;

    if (capacity == 0) {
        return 0;
    }

    sec &= 0xffffffff;
    old = xray_load(window);

    for ( ;; ) {
        wsec = old >> 32;
        taken = old & 0xffffffff;
        age = (int32_t) (uint32_t) (sec - wsec);

        if (old == 0 || age > 0) {
            new = (sec << 32) | 1;

        } else if (taken >= capacity || taken == 0xffffffff) {
            return 0;

        } else {
            new = old + 1;
        }

        if (__atomic_compare_exchange_n(window, &old, new, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        {
            return 1;
        }
    }
}


static int
xray_sampling_same_name(const char *a, size_t alen, const char *b,
    size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}


static xray_sampling_slot_t *
xray_sampling_find_slot(xray_sampling_shared_t *sh, const char *name,
    size_t len)
{
    uint32_t               j;
    xray_sampling_slot_t  *slot;

    for (j = 0; j < XRAY_SAMPLING_SLOTS; j++) {
        slot = &sh->slots[j];

        if (slot->in_use
            && xray_sampling_same_name(slot->name, slot->name_len, name, len))
        {
            return slot;
        }
    }

    return NULL;
}


static const xray_sampling_rule_t *
xray_sampling_live_rule(xray_sampling_shared_t *sh, const char *name,
    size_t len)
{
    uint32_t                i;
    uint64_t                live;
    xray_sampling_rules_t  *set;

    live = xray_load(&sh->live);

    if (live == 0) {
        return NULL;
    }

    set = &sh->sets[live & 1];

    for (i = 0; i < set->nrules; i++) {
        if (xray_sampling_same_name(set->rules[i].name,
                                    set->rules[i].name_len, name, len))
        {
            return &set->rules[i];
        }
    }

    return NULL;
}


static uint64_t
xray_sampling_nanos(double rate)
{
    if (!(rate > 0)) {
        return 0;
    }

    if (rate >= 1) {
        return (uint64_t) XRAY_SAMPLING_NANO;
    }

    return (uint64_t) (rate * XRAY_SAMPLING_NANO + 0.5);
}


static void
xray_out(xray_sampling_out_t *out, const char *fmt, ...)
{
    int      n;
    va_list  args;

    if (out->full) {
        return;
    }

    va_start(args, fmt);
    n = vsnprintf(out->buf + out->len, out->size - out->len, fmt, args);
    va_end(args);

    if (n < 0 || (size_t) n >= out->size - out->len) {
        out->full = 1;
        return;
    }

    out->len += (size_t) n;
}


static void
xray_out_string(xray_sampling_out_t *out, const char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    xray_out(out, "\"");

    for (i = 0; i < len && !out->full; i++) {
        c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            xray_out(out, "\\%c", c);

        } else if (c < 0x20 || c == 0x7f) {
            xray_out(out, "\\u%04x", c);

        } else {
            xray_out(out, "%c", c);
        }
    }

    xray_out(out, "\"");
}
