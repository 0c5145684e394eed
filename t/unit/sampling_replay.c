/*
 * The module's side of the oracle comparison (t/013-sampling-oracle.t):
 * src/xray_sampling_api.c driven with the plan that t/oracle-sampler drives
 * AWS's remote sampler with.
 *
 *     sampling_replay RULES_REPLY PLAN [TARGETS_REPLY]
 *
 * RULES_REPLY is a GetSamplingRules reply (one page), TARGETS_REPLY a
 * SamplingTargets reply, PLAN the oracle driver's plan.  The clock is
 * simulated from the real time at start: "borrow" traffic runs before any
 * target; the targets (when given) are then applied, and "quota" traffic
 * runs.  Prints one JSON object: {"picks": [RuleName or null],
 * "borrow": {"requests", "sampled"}, "quota": {...}, "counts": {RuleName:
 * requests}, "statistics": the SamplingTargets body that reports the picks
 * and the borrow traffic (ClientID 24 zeros)}.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <cjson/cJSON.h>

#include "xray_sampling_api.h"


static xray_sampling_shared_t   sh;
static xray_sampling_rules_t    rules;
static xray_sampling_targets_t  targets;


static char *
r_read(const char *path, size_t *len)
{
    long   n;
    char  *buf;
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fprintf(stderr, "sampling_replay: cannot read %s\n", path);
        exit(2);
    }

    buf = malloc((size_t) n + 1);
    if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n) {
        exit(2);
    }

    buf[n] = '\0';
    fclose(f);
    *len = (size_t) n;

    return buf;
}


static int
r_attr(void *data, const char *key, size_t key_len,
    const unsigned char **value, size_t *value_len)
{
    const cJSON  *h;

    cJSON_ArrayForEach(h, (const cJSON *) data) {
        if (strlen(h->string) == key_len
            && strncasecmp(h->string, key, key_len) == 0
            && cJSON_IsString(h))
        {
            *value = (const unsigned char *) h->valuestring;
            *value_len = strlen(h->valuestring);
            return 1;
        }
    }

    return 0;
}


static const char *
r_str(const cJSON *obj, const char *key)
{
    const cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(item) ? item->valuestring : "";
}


/* decides for one request; name gets the rule's name */
static int
r_decide(const cJSON *plan_req, const char *service, uint64_t now_ms,
    cJSON *counts, xray_sampling_decision_e *d, char *name)
{
    cJSON                    *n;
    const cJSON              *headers;
    xray_sampling_pick_t      pick;
    xray_sampling_request_t   req;

    memset(&req, 0, sizeof(req));

#define r_field(field, key)                                                  \
    req.field = (const unsigned char *) r_str(plan_req, key);                \
    req.field##_len = strlen((const char *) req.field)

    r_field(host, "host");
    r_field(method, "method");
    r_field(path, "path");

#undef r_field

    req.service_name = (const unsigned char *) service;
    req.service_name_len = strlen(service);

    headers = cJSON_GetObjectItemCaseSensitive(plan_req, "headers");

    if (cJSON_IsObject(headers)) {
        req.attr = r_attr;
        req.attr_data = (void *) headers;
    }

    if (xray_sampling_lookup(&sh, &req, &pick) != 0) {
        return -1;
    }

    memcpy(name, pick.name, pick.name_len);
    name[pick.name_len] = '\0';

    n = cJSON_GetObjectItemCaseSensitive(counts, name);

    if (n == NULL) {
        cJSON_AddNumberToObject(counts, name, 1);

    } else {
        cJSON_SetNumberValue(n, n->valuedouble + 1);
    }

    *d = xray_sampling_decide(&sh, &pick, now_ms, (uint32_t) random());

    return 0;
}


static cJSON *
r_traffic(const cJSON *phase, const char *service, uint64_t *now_ms,
    cJSON *counts)
{
    char                      name[XRAY_SAMPLING_NAME_LEN + 1];
    double                    seconds, every;
    uint64_t                  t, end;
    unsigned                  requests, sampled;
    cJSON                    *out;
    const cJSON              *req;
    xray_sampling_decision_e  d;

    seconds = cJSON_GetNumberValue(cJSON_GetObjectItem(phase, "seconds"));
    every = cJSON_GetNumberValue(cJSON_GetObjectItem(phase, "every_ms"));
    req = cJSON_GetObjectItem(phase, "request");

    requests = 0;
    sampled = 0;
    end = *now_ms + (uint64_t) (seconds * 1000);

    for (t = *now_ms; t < end; t += (uint64_t) every) {
        requests++;

        if (r_decide(req, service, t, counts, &d, name) == 0
            && d != XRAY_SAMPLING_NO)
        {
            sampled++;
        }
    }

    *now_ms = end;

    out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "requests", requests);
    cJSON_AddNumberToObject(out, "sampled", sampled);

    return out;
}


int
main(int argc, char **argv)
{
    int                       n;
    char                     *json, err[XRAY_SAMPLING_ERR_LEN],
                              token[XRAY_SAMPLING_TOKEN_MAX], *body, *s,
                              name[XRAY_SAMPLING_NAME_LEN + 1];
    size_t                    len, tlen, ns;
    uint64_t                  now_ms;
    cJSON                    *plan, *out, *picks, *counts;
    const char               *service;
    const cJSON              *req;
    struct timeval            tv;
    xray_sampling_stat_t      st[XRAY_SAMPLING_STATS_MAX];
    xray_sampling_decision_e  d;

    if (argc < 3) {
        fprintf(stderr, "usage: sampling_replay RULES PLAN [TARGETS]\n");
        return 2;
    }

    json = r_read(argv[1], &len);

    if (xray_sampling_rules_parse(&rules, json, len, token, &tlen, err)
        != 0)
    {
        fprintf(stderr, "sampling_replay: rules: %s\n", err);
        free(json);
        return 1;
    }

    free(json);
    xray_sampling_rules_sort(&rules);

    gettimeofday(&tv, NULL);
    now_ms = (uint64_t) tv.tv_sec * 1000 + (uint64_t) tv.tv_usec / 1000;
    srandom((unsigned) now_ms);

    xray_sampling_shared_init(&sh);
    xray_sampling_publish(&sh, &rules, now_ms);

    json = r_read(argv[2], &len);
    plan = cJSON_ParseWithLength(json, len);
    free(json);

    if (plan == NULL) {
        fprintf(stderr, "sampling_replay: the plan is not JSON\n");
        return 1;
    }

    service = r_str(plan, "service");
    out = cJSON_CreateObject();
    picks = cJSON_AddArrayToObject(out, "picks");
    counts = cJSON_AddObjectToObject(out, "counts");

    cJSON_ArrayForEach(req, cJSON_GetObjectItem(plan, "picks")) {
        if (r_decide(req, service, now_ms, counts, &d, name) != 0) {
            cJSON_AddItemToArray(picks, cJSON_CreateNull());

        } else {
            cJSON_AddItemToArray(picks, cJSON_CreateString(name));
        }
    }

    if (cJSON_GetObjectItem(plan, "borrow")) {
        cJSON_AddItemToObject(out, "borrow",
                              r_traffic(cJSON_GetObjectItem(plan, "borrow"),
                                        service, &now_ms, counts));
    }

    ns = xray_sampling_collect(&sh, st, XRAY_SAMPLING_STATS_MAX);
    body = malloc(65536);
    n = xray_sampling_targets_request(body, 65536,
                                      "000000000000000000000000",
                                      now_ms / 1000, st, ns, service,
                                      strlen(service));

    if (n < 0) {
        return 1;
    }

    body[n] = '\0';
    cJSON_AddStringToObject(out, "statistics", body);
    free(body);

    if (argc > 3 && cJSON_GetObjectItem(plan, "quota")) {
        json = r_read(argv[3], &len);

        if (xray_sampling_targets_parse(&targets, json, len, err) != 0) {
            fprintf(stderr, "sampling_replay: targets: %s\n", err);
            free(json);
            return 1;
        }

        free(json);
        xray_sampling_apply_targets(&sh, &targets);

        cJSON_AddItemToObject(out, "quota",
                              r_traffic(cJSON_GetObjectItem(plan, "quota"),
                                        service, &now_ms, counts));
    }

    s = cJSON_PrintUnformatted(out);
    printf("%s\n", s);

    free(s);
    cJSON_Delete(out);
    cJSON_Delete(plan);

    return 0;
}
