/*
 * libFuzzer target for src/xray_sampling_api.c: the replies of the X-Ray
 * sampling API.
 *
 *     make fuzz    (or build/fuzz/fuzz_sampling_api t/unit/corpus/sampling_api)
 *
 * The whole input is parsed as a GetSamplingRules page and as a
 * SamplingTargets reply.  A rule set that parses is checked (lengths within
 * the model's, numbers within their ranges, names unique), sorted, published
 * into a shared zone, matched against requests made of the input, decided
 * on; targets that parse are applied, and the statistics then written must
 * be JSON that cJSON reads back with every rule name intact.  Refused input
 * must leave a printable message.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "xray_sampling_api.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
f_check(int cond)
{
    if (!cond) {
        abort();
    }
}


static void
f_check_err(const char *err)
{
    const char  *s;

    f_check(memchr(err, '\0', XRAY_SAMPLING_ERR_LEN) != NULL);
    f_check(err[0] != '\0');

    /* messages quote at most a RuleName, which is valid UTF-8 text */

    for (s = err; *s != '\0'; s++) {
        f_check((unsigned char) *s >= 0x20 && *s != 0x7f);
    }
}


static void
f_check_rules(const xray_sampling_rules_t *rules)
{
    uint32_t                     i, j;
    const xray_sampling_rule_t  *r;

    f_check(rules->nrules <= XRAY_SAMPLING_RULES_MAX);

    for (i = 0; i < rules->nrules; i++) {
        r = &rules->rules[i];

        f_check(r->name_len >= 1 && r->name_len <= XRAY_SAMPLING_NAME_LEN);
        f_check(r->host_len <= XRAY_SAMPLING_HOST_LEN);
        f_check(r->method_len <= XRAY_SAMPLING_METHOD_LEN);
        f_check(r->path_len <= XRAY_SAMPLING_PATH_LEN);
        f_check(r->service_name_len <= XRAY_SAMPLING_SERVICE_LEN);
        f_check(r->service_type_len <= XRAY_SAMPLING_SERVICE_LEN);
        f_check(r->resource_arn_len <= XRAY_SAMPLING_ARN_LEN);
        f_check(r->nattrs <= XRAY_SAMPLING_ATTRS_MAX);
        f_check(r->priority >= 1 && r->priority <= 10000);
        f_check(r->fixed_rate >= 0 && r->fixed_rate <= 1);
        f_check(r->reservoir_size <= 2147483647u);
        f_check(!r->has_boost
                || (r->boost_max_rate >= 0 && r->boost_max_rate <= 1));

        for (j = 0; j < i; j++) {
            f_check(rules->rules[j].name_len != r->name_len
                    || memcmp(rules->rules[j].name, r->name, r->name_len)
                       != 0);
        }
    }
}


static void
f_check_sorted(const xray_sampling_rules_t *rules)
{
    uint32_t                     i;
    const xray_sampling_rule_t  *a, *b;

    for (i = 1; i < rules->nrules; i++) {
        a = &rules->rules[i - 1];
        b = &rules->rules[i];

        f_check(!a->is_default || b->is_default);
        f_check(a->is_default != b->is_default
                || a->priority <= b->priority);
    }
}


static int
f_attr(void *data, const char *key, size_t key_len,
    const unsigned char **value, size_t *value_len)
{
    (void) key;
    (void) key_len;

    *value = data;
    *value_len = 8;

    return 1;
}


static void
f_requests(xray_sampling_shared_t *sh, const uint8_t *data, size_t size)
{
    int                       i, k;
    size_t                    third;
    xray_sampling_pick_t      pick;
    xray_sampling_request_t   req;
    static const uint8_t      nothing[8];

    third = size / 3;

    for (k = 0; k < 2; k++) {
        memset(&req, 0, sizeof(req));

        if (k == 0) {
            req.host = data;
            req.host_len = third;
            req.method = data + third;
            req.method_len = third;
            req.path = data + 2 * third;
            req.path_len = size - 2 * third;
            req.attr = f_attr;
            req.attr_data = (void *) (size >= 8 ? data : nothing);
        }

        i = xray_sampling_lookup(sh, &req, &pick);

        if (i == 0) {
            f_check(pick.slot < XRAY_SAMPLING_SLOTS);
            f_check(pick.name_len >= 1
                    && pick.name_len <= XRAY_SAMPLING_NAME_LEN);

            f_check(xray_sampling_decide(sh, &pick, 1795315165000ULL,
                                         size >= 4 ? data[0] : 0)
                    <= XRAY_SAMPLING_BOOST);
            xray_sampling_outcome(sh, &pick, 1, 1);

        } else {
            f_check(i == -1);
        }
    }
}


static void
f_report(xray_sampling_shared_t *sh)
{
    int                    n, i;
    size_t                 ns;
    char                  *buf;
    cJSON                 *root, *docs, *doc, *name;
    xray_sampling_stat_t   st[XRAY_SAMPLING_STATS_MAX];

    ns = xray_sampling_collect(sh, st, XRAY_SAMPLING_STATS_MAX);
    f_check(ns <= XRAY_SAMPLING_STATS_MAX);

    buf = malloc(65536);
    f_check(buf != NULL);

    n = xray_sampling_targets_request(buf, 65536,
                                      "0123456789abcdef01234567",
                                      1795315165, st, ns, "edge", 4);
    f_check(n > 0);

    root = cJSON_ParseWithLength(buf, (size_t) n);
    f_check(root != NULL);

    docs = cJSON_GetObjectItemCaseSensitive(root,
                                            "SamplingStatisticsDocuments");
    f_check(cJSON_GetArraySize(docs) == (int) ns);

    i = 0;

    cJSON_ArrayForEach(doc, docs) {
        name = cJSON_GetObjectItemCaseSensitive(doc, "RuleName");
        f_check(cJSON_IsString(name));
        f_check(strlen(name->valuestring) == st[i].name_len
                && memcmp(name->valuestring, st[i].name, st[i].name_len)
                   == 0);
        i++;
    }

    cJSON_Delete(root);
    free(buf);

    xray_sampling_restore(sh, st, ns);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                               rc;
    size_t                            tlen;
    char                              err[XRAY_SAMPLING_ERR_LEN],
                                      token[XRAY_SAMPLING_TOKEN_MAX];
    static xray_sampling_rules_t      rules;
    static xray_sampling_targets_t    targets;
    static xray_sampling_shared_t     sh;

    memset(&rules, 0, sizeof(rules));
    memset(err, 0xff, sizeof(err));

    rc = xray_sampling_rules_parse(&rules, (const char *) data, size, token,
                                   &tlen, err);

    if (rc != 0) {
        f_check(rc == -1);
        f_check_err(err);

    } else {
        f_check(tlen <= XRAY_SAMPLING_TOKEN_MAX);
        f_check_rules(&rules);
        xray_sampling_rules_sort(&rules);
        f_check_sorted(&rules);

        xray_sampling_shared_init(&sh);
        xray_sampling_publish(&sh, &rules, 1795315165000ULL);
        f_requests(&sh, data, size);

        /* twice: the second publication reuses the slots by name */
        xray_sampling_publish(&sh, &rules, 1795315166000ULL);
        f_requests(&sh, data, size);
        f_report(&sh);
    }

    memset(err, 0xff, sizeof(err));

    rc = xray_sampling_targets_parse(&targets, (const char *) data, size,
                                     err);

    if (rc != 0) {
        f_check(rc == -1);
        f_check_err(err);

    } else {
        f_check(targets.ntargets <= XRAY_SAMPLING_RULES_MAX);
        xray_sampling_apply_targets(&sh, &targets);
        f_requests(&sh, data, size);
    }

    return 0;
}
