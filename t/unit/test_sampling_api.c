/*
 * Unit tests of src/xray_sampling_api.c: the sampling API's request bodies
 * byte for byte, its replies parsed (and refused) at the edges of every
 * range, rule order and matching, and the decision: quota, borrowing before
 * a quota and after its TTL, fixed rate, boost, statistics; the per-second
 * words shared by processes that fork from here.
 */

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tap.h"
#include "xray_sampling_api.h"


#define T_SEC     1795315165ULL        /* an epoch second */
#define T_MS      (T_SEC * 1000)
#define T_RAND_0  0u                   /* the lowest random: rate > 0 takes */
#define T_RAND_1  0xffffffffu          /* the highest: only rate 1 takes */


static long  t_cjson_live;


static void *
t_cjson_malloc(size_t size)
{
    void  *p;

    p = malloc(size);
    if (p != NULL) {
        t_cjson_live++;
    }

    return p;
}


static void
t_cjson_free(void *p)
{
    if (p != NULL) {
        t_cjson_live--;
    }

    free(p);
}


/* a rule record; extra comes first in SamplingRule, and cJSON takes the
 * first of two members of one name: extra overrides the defaults */
static char *
t_rule(char *buf, size_t size, const char *name, int priority,
    const char *rate, int reservoir, const char *host, const char *extra)
{
    snprintf(buf, size,
             "{\"SamplingRule\":{%s%s\"RuleName\":\"%s\","
             "\"RuleARN\":\"arn:x\","
             "\"ResourceARN\":\"*\",\"Priority\":%d,\"FixedRate\":%s,"
             "\"ReservoirSize\":%d,\"ServiceName\":\"*\","
             "\"ServiceType\":\"*\",\"Host\":\"%s\",\"HTTPMethod\":\"*\","
             "\"URLPath\":\"*\",\"Version\":1},"
             "\"CreatedAt\":1.7E9,\"ModifiedAt\":1700000000}",
             extra, extra[0] ? "," : "", name, priority, rate, reservoir,
             host);

    return buf;
}


static int
t_page(xray_sampling_rules_t *rules, const char *json, char *token,
    size_t *token_len, char *err)
{
    err[0] = '\0';

    return xray_sampling_rules_parse(rules, json, strlen(json), token,
                                     token_len, err);
}


/* one record with extra fields; the error, or "" when it parsed */
static const char *
t_rule_error(const char *extra, const char *name, const char *rate,
    int reservoir, int priority)
{
    size_t                         tlen;
    static char                    err[XRAY_SAMPLING_ERR_LEN];
    char                           rec[2048], json[4096],
                                   token[XRAY_SAMPLING_TOKEN_MAX];
    static xray_sampling_rules_t   rules;

    memset(&rules, 0, sizeof(rules));
    t_rule(rec, sizeof(rec), name, priority, rate, reservoir, "*", extra);
    snprintf(json, sizeof(json), "{\"SamplingRuleRecords\":[%s]}", rec);

    if (t_page(&rules, json, token, &tlen, err) == 0) {
        return "";
    }

    return err;
}


static const char *
t_target_error(const char *doc, xray_sampling_targets_t *targets)
{
    char         json[4096];
    static char  err[XRAY_SAMPLING_ERR_LEN];

    snprintf(json, sizeof(json), "{\"SamplingTargetDocuments\":[%s]}", doc);
    err[0] = '\0';

    if (xray_sampling_targets_parse(targets, json, strlen(json), err) == 0) {
        return "";
    }

    return err;
}


typedef struct {
    const char  *name;
    const char  *value;
} t_header_t;


static int
t_attr(void *data, const char *key, size_t key_len,
    const unsigned char **value, size_t *value_len)
{
    t_header_t  *h;

    for (h = data; h->name != NULL; h++) {
        if (strlen(h->name) == key_len
            && strncasecmp(h->name, key, key_len) == 0)
        {
            *value = (const unsigned char *) h->value;
            *value_len = strlen(h->value);
            return 1;
        }
    }

    return 0;
}


static void
t_request(xray_sampling_request_t *req, const char *host, const char *method,
    const char *path, t_header_t *headers)
{
    memset(req, 0, sizeof(xray_sampling_request_t));

    req->service_name = (const unsigned char *) "edge";
    req->service_name_len = 4;
    req->host = (const unsigned char *) host;
    req->host_len = strlen(host);
    req->method = (const unsigned char *) method;
    req->method_len = strlen(method);
    req->path = (const unsigned char *) path;
    req->path_len = strlen(path);
    req->attr = headers ? t_attr : NULL;
    req->attr_data = headers;
}


static const char *
t_picked(const xray_sampling_rules_t *rules, const char *host,
    const char *method, const char *path, t_header_t *headers)
{
    int                       i;
    static char               name[XRAY_SAMPLING_NAME_LEN + 1];
    xray_sampling_request_t   req;

    t_request(&req, host, method, path, headers);
    i = xray_sampling_match(rules, &req);

    if (i < 0) {
        return "(none)";
    }

    memcpy(name, rules->rules[i].name, rules->rules[i].name_len);
    name[rules->rules[i].name_len] = '\0';

    return name;
}


static void
t_is_str(const char *got, const char *want, const char *msg)
{
    if (!ok(strcmp(got, want) == 0, "%s", msg)) {
        printf("#   got '%s'\n", got);
    }
}


static void
test_rules_request(void)
{
    int   n;
    char  buf[64];

    n = xray_sampling_rules_request(buf, sizeof(buf), NULL, 0);
    is_mem(buf, n, "{}", "first page: an empty object");

    n = xray_sampling_rules_request(buf, sizeof(buf), "a\"b\\c\n", 6);
    is_mem(buf, n, "{\"NextToken\":\"a\\\"b\\\\c\\u000a\"}",
           "NextToken escaped");

    n = xray_sampling_rules_request(buf, 3, NULL, 0);
    is_int(n, 2, "3 bytes hold {} and its NUL");

    n = xray_sampling_rules_request(buf, 2, NULL, 0);
    is_int(n, -1, "2 bytes do not");
}


static void
test_targets_request(void)
{
    int                   n;
    char                  buf[8192];
    cJSON                *root;
    xray_sampling_stat_t  st[XRAY_SAMPLING_STATS_MAX + 1];

    memset(st, 0, sizeof(st));

    memcpy(st[0].name, "api", 3);
    st[0].name_len = 3;
    st[0].requests = 10;
    st[0].sampled = 3;
    st[0].borrowed = 1;

    memcpy(st[1].name, "Default", 7);
    st[1].name_len = 7;
    st[1].has_boost = 1;
    st[1].requests = 5000000000ULL;     /* over the model's integer */
    st[1].sampled = 2;
    st[1].anomalies = 4;
    st[1].total = 9;
    st[1].sampled_anomalies = 1;

    n = xray_sampling_targets_request(buf, sizeof(buf),
                                      "0123456789abcdef01234567", T_SEC,
                                      st, 2, "edge \"1\"", 8);
    is_mem(buf, n,
           "{\"SamplingStatisticsDocuments\":["
           "{\"RuleName\":\"api\",\"ClientID\":\"0123456789abcdef01234567\","
           "\"Timestamp\":1795315165,\"RequestCount\":10,"
           "\"SampledCount\":3,\"BorrowCount\":1},"
           "{\"RuleName\":\"Default\","
           "\"ClientID\":\"0123456789abcdef01234567\","
           "\"Timestamp\":1795315165,\"RequestCount\":2147483647,"
           "\"SampledCount\":2,\"BorrowCount\":0}],"
           "\"SamplingBoostStatisticsDocuments\":["
           "{\"RuleName\":\"Default\",\"ServiceName\":\"edge \\\"1\\\"\","
           "\"Timestamp\":1795315165,\"AnomalyCount\":4,\"TotalCount\":9,"
           "\"SampledAnomalyCount\":1}]}",
           "statistics and boost statistics, counts capped at 2^31-1");

    n = xray_sampling_targets_request(buf, sizeof(buf),
                                      "0123456789abcdef01234567", T_SEC,
                                      st, 1, "edge", 4);
    ok(n > 0 && memmem(buf, n, "Boost", 5) == NULL,
       "no boost documents without boosted rules");

    n = xray_sampling_targets_request(buf, sizeof(buf),
                                      "0123456789abcdef01234567", T_SEC,
                                      st, 0, "edge", 4);
    is_mem(buf, n, "{\"SamplingStatisticsDocuments\":[]}", "no statistics");

    n = xray_sampling_targets_request(buf, sizeof(buf),
                                      "0123456789abcdef01234567", T_SEC,
                                      st, XRAY_SAMPLING_STATS_MAX, "e", 1);
    root = (n > 0) ? cJSON_ParseWithLength(buf, n) : NULL;
    ok(root != NULL
       && cJSON_GetArraySize(cJSON_GetObjectItem(root,
                             "SamplingStatisticsDocuments")) == 25,
       "25 documents: valid JSON");
    cJSON_Delete(root);

    n = xray_sampling_targets_request(buf, sizeof(buf),
                                      "0123456789abcdef01234567", T_SEC,
                                      st, XRAY_SAMPLING_STATS_MAX + 1, "e",
                                      1);
    is_int(n, -1, "26 documents: refused, the API takes 25 a call");

    n = xray_sampling_targets_request(buf, 40, "0123456789abcdef01234567",
                                      T_SEC, st, 2, "e", 1);
    is_int(n, -1, "a buffer too small: -1");
}


static void
test_rules_parse(void)
{
    int                             i;
    size_t                          tlen, len;
    char                            err[XRAY_SAMPLING_ERR_LEN],
                                    token[XRAY_SAMPLING_TOKEN_MAX],
                                    rec[2048], *json, *p;
    static xray_sampling_rules_t    rules;
    const xray_sampling_rule_t     *r;

    memset(&rules, 0, sizeof(rules));

    json = malloc(4 * 1024 * 1024);
    if (json == NULL) {
        abort();
    }

    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "Default", 10000,
                                  "0.05", 1, "*", ""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "api", 5, "0.5", 3,
                                  "api.example.com",
                                  "\"Attributes\":{\"x-tier\":\"gold*\"},"
                                  "\"SamplingRateBoost\":{\"MaxRate\":0.25,"
                                  "\"CooldownWindowMinutes\":1},"
                                  "\"SomethingNew\":[1,{\"a\":null}]"));
    p += sprintf(p, "%s", t_rule(rec, sizeof(rec), "v2", 1, "1", 0, "*",
                                 "\"Version\":2"));
    sprintf(p, "],\"NextToken\":\"page-2\",\"Unknown\":true}");

    ok(t_page(&rules, json, token, &tlen, err) == 0, "a page: %s", err);
    is_int(rules.nrules, 2, "2 rules");
    is_int(rules.skipped, 1, "a Version 2 rule is not used");
    is_mem(token, tlen, "page-2", "its NextToken");

    r = &rules.rules[1];
    ok(r->name_len == 3 && memcmp(r->name, "api", 3) == 0
       && r->priority == 5 && r->fixed_rate == 0.5
       && r->reservoir_size == 3 && r->host_len == 15
       && r->nattrs == 1 && r->attrs[0].key_len == 6
       && memcmp(r->attrs[0].value, "gold*", 5) == 0
       && r->has_boost && r->boost_max_rate == 0.25
       && r->boost_cooldown == 1 && !r->is_default,
       "every field of a rule, unknown fields ignored");
    ok(rules.rules[0].is_default, "Default is known by its name");

    /* a second page appends; a rule of another version is skipped */

    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    sprintf(p, "{\"SamplingRule\":{\"RuleName\":\"v2\",\"Version\":2}}]}");
    ok(t_page(&rules, json, token, &tlen, err) == 0 && tlen == 0,
       "last page: no NextToken (%s)", err);
    is_int(rules.nrules, 2, "still 2 rules");
    is_int(rules.skipped, 2, "skipped ones counted");
    is_int(rules.pages, 2, "2 pages");

    sprintf(json, "{\"SamplingRuleRecords\":[],\"NextToken\":null}");
    ok(t_page(&rules, json, token, &tlen, err) == 0 && tlen == 0,
       "NextToken null: the last page");

    /* a duplicate name, across pages */
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    sprintf(p, "%s]}", t_rule(rec, sizeof(rec), "api", 1, "0", 0, "*", ""));
    ok(t_page(&rules, json, token, &tlen, err) == -1
       && strcmp(err, "rule 5 (\"api\"): a second rule of this name") == 0,
       "a second rule of one name: %s", err);

    /* the cap: 100 rules fit, 101 do not, 10,000 do not */

    for (i = 0; i < 3; i++) {
        int  n = (i == 0) ? XRAY_SAMPLING_RULES_MAX
                 : (i == 1) ? XRAY_SAMPLING_RULES_MAX + 1 : 10000;
        int  k;

        memset(&rules, 0, sizeof(rules));
        p = json + sprintf(json, "{\"SamplingRuleRecords\":[");

        for (k = 0; k < n; k++) {
            char  name[16];

            sprintf(name, "r%d", k);
            p += sprintf(p, "%s%s", k ? "," : "",
                         t_rule(rec, sizeof(rec), name, 1 + k % 9999, "0",
                                0, "*", ""));
        }

        sprintf(p, "]}");
        len = strlen(json);

        if (i == 0) {
            ok(t_page(&rules, json, token, &tlen, err) == 0
               && rules.nrules == XRAY_SAMPLING_RULES_MAX,
               "%d rules: taken (%s)", n, err);

        } else if (i == 1) {
            ok(t_page(&rules, json, token, &tlen, err) == -1
               && strcmp(err, "too many rules: more than 100") == 0,
               "%d rules: %s", n, err);

        } else {
            ok(len > XRAY_SAMPLING_REPLY_MAX
               && t_page(&rules, json, token, &tlen, err) == -1
               && strcmp(err, "reply of more than 1048576 bytes") == 0,
               "10,000 rules (%lu bytes): %s", (unsigned long) len, err);
        }
    }

    /* 101 rules over two pages */
    memset(&rules, 0, sizeof(rules));
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    for (i = 0; i < 60; i++) {
        char  name[16];

        sprintf(name, "a%d", i);
        p += sprintf(p, "%s%s", i ? "," : "",
                     t_rule(rec, sizeof(rec), name, 1, "0", 0, "*", ""));
    }
    sprintf(p, "],\"NextToken\":\"2\"}");
    ok(t_page(&rules, json, token, &tlen, err) == 0, "page 1 of 60 rules");
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    for (i = 0; i < 41; i++) {
        char  name[16];

        sprintf(name, "b%d", i);
        p += sprintf(p, "%s%s", i ? "," : "",
                     t_rule(rec, sizeof(rec), name, 1, "0", 0, "*", ""));
    }
    sprintf(p, "]}");
    ok(t_page(&rules, json, token, &tlen, err) == -1
       && strstr(err, "too many rules") != NULL,
       "101 rules over 2 pages: %s", err);

    /* the size cap: exactly the limit is parsed, one byte more is not */
    memset(json, ' ', XRAY_SAMPLING_REPLY_MAX + 1);
    memcpy(json, "{\"SamplingRuleRecords\":[]}", 26);
    memset(&rules, 0, sizeof(rules));
    ok(xray_sampling_rules_parse(&rules, json, XRAY_SAMPLING_REPLY_MAX,
                                 token, &tlen, err) == 0,
       "a reply of exactly 1 MiB: parsed");
    ok(xray_sampling_rules_parse(&rules, json, XRAY_SAMPLING_REPLY_MAX + 1,
                                 token, &tlen, err) == -1,
       "1 MiB + 1: %s", err);

    /* a NextToken of 1024 bytes is taken, 1025 is not */
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[],\"NextToken\":\"");
    memset(p, 't', 1024);
    sprintf(p + 1024, "\"}");
    ok(t_page(&rules, json, token, &tlen, err) == 0 && tlen == 1024,
       "NextToken of 1024 bytes");
    memset(p, 't', 1025);
    sprintf(p + 1025, "\"}");
    ok(t_page(&rules, json, token, &tlen, err) == -1
       && strcmp(err, "\"NextToken\" is longer than 1024 bytes") == 0,
       "1025: %s", err);

    free(json);
}


static void
test_rules_errors(void)
{
    size_t                         i, tlen;
    char                           err[XRAY_SAMPLING_ERR_LEN],
                                   token[XRAY_SAMPLING_TOKEN_MAX];
    static xray_sampling_rules_t   rules;

    static const struct {
        const char  *json;
        const char  *err;
    } bad[] = {
        { "", "empty reply" },
        { "{\"SamplingRuleRecords\":[", "invalid JSON near offset 23" },
        { "{\"SamplingRuleRecords\":[]} x", "invalid JSON near offset 27" },
        { "<html>500</html>", "invalid JSON near offset 0" },
        { "[]", "the reply must be a JSON object" },
        { "{}", "\"SamplingRuleRecords\" must be an array" },
        { "{\"SamplingRuleRecords\":{}}",
          "\"SamplingRuleRecords\" must be an array" },
        { "{\"SamplingRuleRecords\":[],\"NextToken\":5}",
          "\"NextToken\" must be a string" },
        { "{\"SamplingRuleRecords\":[1]}", "rule 1: must be an object" },
        { "{\"SamplingRuleRecords\":[{}]}",
          "rule 1: \"SamplingRule\" must be an object" },
        { "{\"SamplingRuleRecords\":[{\"SamplingRule\":{}}]}",
          "rule 1: missing \"RuleName\"" },
        { "{\"SamplingRuleRecords\":[{\"SamplingRule\":{\"RuleName\":\"a\"}}]}",
          "rule 1 (\"a\"): missing \"Version\"" },
        { "{\"SamplingRuleRecords\":[{\"SamplingRule\":"
          "{\"RuleName\":\"a\",\"Version\":0}}]}",
          "rule 1 (\"a\"): \"Version\" must be an integer from 1 to "
          "2147483647" },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&rules, 0, sizeof(rules));
        err[0] = '\0';
        t_page(&rules, bad[i].json, token, &tlen, err);
        t_is_str(err, bad[i].err, bad[i].err);
    }

    /* each number at both edges */

    is_mem(t_rule_error("", "a", "0", 0, 1), 0, "", "FixedRate 0, "
           "ReservoirSize 0, Priority 1: taken");
    is_mem(t_rule_error("", "a", "1", 2147483647, 10000), 0, "",
           "FixedRate 1, ReservoirSize 2^31-1, Priority 10000: taken");

#define t_err(got, want, msg)  t_is_str(got, want, msg)

    t_err(t_rule_error("", "a", "-0.000001", 0, 1),
          "rule 1 (\"a\"): \"FixedRate\" must be a number from 0 to 1",
          "FixedRate below 0");
    t_err(t_rule_error("", "a", "1.000001", 0, 1),
          "rule 1 (\"a\"): \"FixedRate\" must be a number from 0 to 1",
          "FixedRate above 1");
    t_err(t_rule_error("", "a", "\"0.5\"", 0, 1),
          "rule 1 (\"a\"): \"FixedRate\" must be a number from 0 to 1",
          "FixedRate a string");
    t_err(t_rule_error("", "a", "1e999", 0, 1),
          "rule 1 (\"a\"): \"FixedRate\" must be a number from 0 to 1",
          "FixedRate infinite");
    t_err(t_rule_error("", "a", "0", -1, 1),
          "rule 1 (\"a\"): \"ReservoirSize\" must be an integer from 0 to "
          "2147483647", "ReservoirSize -1");
    t_err(t_rule_error("\"ReservoirSize\":2147483648", "a", "0", 0, 1),
          "rule 1 (\"a\"): \"ReservoirSize\" must be an integer from 0 to "
          "2147483647", "ReservoirSize 2^31");
    t_err(t_rule_error("", "a", "0", 0, 0),
          "rule 1 (\"a\"): \"Priority\" must be an integer from 1 to 10000",
          "Priority 0");
    t_err(t_rule_error("", "a", "0", 0, 10001),
          "rule 1 (\"a\"): \"Priority\" must be an integer from 1 to 10000",
          "Priority 10001");
    t_err(t_rule_error("", "abcdefghijklmnopqrstuvwxyz012345", "0", 0, 1),
          "", "a RuleName of 32 bytes");
    t_err(t_rule_error("", "abcdefghijklmnopqrstuvwxyz0123456", "0", 0, 1),
          "rule 1: \"RuleName\" must be 1 to 32 bytes long",
          "a RuleName of 33 bytes");
    t_err(t_rule_error("", "a\\u0001", "0", 0, 1),
          "rule 1: \"RuleName\" must be UTF-8 text without control "
          "characters", "a control character in a RuleName");
    t_err(t_rule_error("", "\\u00e9t\\u00e9", "0", 0, 1),
          "", "a non-ASCII RuleName");
    t_err(t_rule_error("\"Attributes\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\","
                       "\"d\":\"4\",\"e\":\"5\"}", "a", "0", 0, 1),
          "", "5 Attributes");
    t_err(t_rule_error("\"Attributes\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\","
                       "\"d\":\"4\",\"e\":\"5\",\"f\":\"6\"}",
                       "a", "0", 0, 1),
          "rule 1 (\"a\"): more than 5 \"Attributes\"", "6 Attributes");
    t_err(t_rule_error("\"Attributes\":{\"a\":1}", "a", "0", 0, 1),
          "rule 1 (\"a\"): \"Attributes\" values must be strings",
          "an attribute value of another type");
    t_err(t_rule_error("\"Attributes\":{\"a\":\"\"}", "a", "0", 0, 1),
          "rule 1 (\"a\"): an \"Attributes\" value must be 1 to 32 "
          "characters", "an empty attribute value");
    t_err(t_rule_error("\"Attributes\":[]", "a", "0", 0, 1),
          "rule 1 (\"a\"): \"Attributes\" must be an object",
          "Attributes an array");
    t_err(t_rule_error("\"Attributes\":null,\"SamplingRateBoost\":null",
                       "a", "0", 0, 1),
          "", "null Attributes and SamplingRateBoost: absent");
    t_err(t_rule_error("\"SamplingRateBoost\":{\"MaxRate\":1.5}",
                       "a", "0", 0, 1),
          "rule 1 (\"a\"): \"MaxRate\" must be a number from 0 to 1",
          "MaxRate 1.5");
    t_err(t_rule_error("\"SamplingRateBoost\":{\"MaxRate\":0.5,"
                       "\"CooldownWindowMinutes\":0}", "a", "0", 0, 1),
          "rule 1 (\"a\"): \"CooldownWindowMinutes\" must be an integer "
          "from 1 to 2147483647", "CooldownWindowMinutes 0");
    t_err(t_rule_error("\"SamplingRateBoost\":true", "a", "0", 0, 1),
          "rule 1 (\"a\"): \"SamplingRateBoost\" must be an object",
          "SamplingRateBoost true");
}


static void
test_rules_host_lengths(void)
{
    int                            rc;
    size_t                         tlen;
    char                           err[XRAY_SAMPLING_ERR_LEN], host[80],
                                   rec[2048], json[4096],
                                   token[XRAY_SAMPLING_TOKEN_MAX];
    static xray_sampling_rules_t   rules;

    memset(host, 'h', 64);
    host[64] = '\0';
    memset(&rules, 0, sizeof(rules));
    t_rule(rec, sizeof(rec), "a", 1, "0", 0, host, "");
    snprintf(json, sizeof(json), "{\"SamplingRuleRecords\":[%s]}", rec);
    rc = t_page(&rules, json, token, &tlen, err);
    ok(rc == 0 && rules.rules[0].host_len == 64, "a Host of 64 bytes");

    memset(host, 'h', 65);
    host[65] = '\0';
    memset(&rules, 0, sizeof(rules));
    t_rule(rec, sizeof(rec), "a", 1, "0", 0, host, "");
    snprintf(json, sizeof(json), "{\"SamplingRuleRecords\":[%s]}", rec);
    rc = t_page(&rules, json, token, &tlen, err);
    ok(rc == -1
       && strcmp(err, "rule 1 (\"a\"): \"Host\" must be 0 to 64 bytes long")
          == 0, "65: %s", err);
}


static void
test_sort_and_match(void)
{
    size_t                         tlen;
    char                           err[XRAY_SAMPLING_ERR_LEN], rec[2048],
                                   json[16384], *p,
                                   token[XRAY_SAMPLING_TOKEN_MAX];
    static xray_sampling_rules_t   rules;
    t_header_t                     gold[] = {
        { "X-Tier", "Gold-Plus" }, { NULL, NULL }
    };
    t_header_t                     silver[] = {
        { "x-tier", "silver" }, { NULL, NULL }
    };

    memset(&rules, 0, sizeof(rules));
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "Default", 10000,
                                  "0.05", 1, "*", ""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "zeta", 10, "0", 0,
                                  "*.example.com", ""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "alpha", 10, "0", 0,
                                  "api.example.com", ""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "Alpha", 10, "0", 0,
                                  "nothing", ""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "tier", 1, "0", 0, "*",
                                  "\"Attributes\":{\"x-tier\":\"gold*\"}"));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "post", 2, "0", 0, "*",
                                  "\"HTTPMethod\":\"POST\""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "path", 3, "0", 0, "*",
                                  "\"URLPath\":\"/api/?/*\""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "svc", 4, "0", 0, "*",
                                  "\"ServiceName\":\"other\""));
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "type", 4, "0", 0, "*",
                                  "\"ServiceType\":\"AWS::EC2::Instance\""));
    p += sprintf(p, "%s", t_rule(rec, sizeof(rec), "arn", 4, "0", 0, "*",
                                 "\"ResourceARN\":\"arn:aws:x\""));
    sprintf(p, "]}");

    ok(t_page(&rules, json, token, &tlen, err) == 0, "rules: %s", err);
    xray_sampling_rules_sort(&rules);

    ok(memcmp(rules.rules[0].name, "tier", 4) == 0
       && memcmp(rules.rules[1].name, "post", 4) == 0
       && memcmp(rules.rules[2].name, "path", 4) == 0
       && memcmp(rules.rules[3].name, "arn", 3) == 0
       && memcmp(rules.rules[4].name, "svc", 3) == 0
       && memcmp(rules.rules[5].name, "type", 4) == 0
       && memcmp(rules.rules[6].name, "Alpha", 5) == 0
       && memcmp(rules.rules[7].name, "alpha", 5) == 0
       && memcmp(rules.rules[8].name, "zeta", 4) == 0
       && memcmp(rules.rules[9].name, "Default", 7) == 0,
       "by Priority, then RuleName byte order, Default last");

    is_mem(t_picked(&rules, "api.example.com", "GET", "/x", NULL), 5,
           "alpha", "same priority: the first name that matches");
    is_mem(t_picked(&rules, "WWW.Example.COM", "GET", "/x", NULL), 4,
           "zeta", "Host wildcard, any case");
    is_mem(t_picked(&rules, "other.org", "GET", "/x", NULL), 7,
           "Default", "no rule: Default");
    is_mem(t_picked(&rules, "other.org", "post", "/x", NULL), 4,
           "post", "HTTPMethod, any case");
    is_mem(t_picked(&rules, "other.org", "GET", "/api/v/1", NULL), 4,
           "path", "URLPath with ? and *");
    is_mem(t_picked(&rules, "other.org", "GET", "/api/vv/1", NULL), 7,
           "Default", "? is exactly one character");
    is_mem(t_picked(&rules, "api.example.com", "GET", "/x", gold), 4,
           "tier", "Attributes: a header, name in any case, wildcard value");
    is_mem(t_picked(&rules, "api.example.com", "GET", "/x", silver), 5,
           "alpha", "an attribute that does not match");
    is_mem(t_picked(&rules, "other.org", "GET", "/x", NULL), 7,
           "Default", "ServiceName other, ServiceType and ResourceARN "
           "set: the request has none");

    /* without Default: nothing matches */
    rules.nrules--;
    is_mem(t_picked(&rules, "other.org", "GET", "/x", NULL), 6,
           "(none)", "no Default: no rule (the local rules decide)");
}


static void
test_targets_parse(void)
{
    char                              err[XRAY_SAMPLING_ERR_LEN];
    const char                       *json;
    static xray_sampling_targets_t    t;

    json = "{\"SamplingTargetDocuments\":["
           "{\"RuleName\":\"api\",\"FixedRate\":0.1,\"ReservoirQuota\":7,"
           "\"ReservoirQuotaTTL\":1795315175.5,\"Interval\":5,"
           "\"SamplingBoost\":{\"BoostRate\":0.9,"
           "\"BoostRateTTL\":1795315200},\"New\":1},"
           "{\"RuleName\":\"q\",\"ReservoirQuota\":7},"
           "{\"RuleName\":\"n\",\"ReservoirQuota\":null,"
           "\"ReservoirQuotaTTL\":null,\"FixedRate\":null},"
           "{\"FixedRate\":1}],"
           "\"LastRuleModification\":1795315000,"
           "\"UnprocessedStatistics\":[{\"RuleName\":\"x\","
           "\"ErrorCode\":\"400\",\"Message\":\"m\"}],"
           "\"UnprocessedBoostStatistics\":[]}";

    ok(xray_sampling_targets_parse(&t, json, strlen(json), err) == 0,
       "targets: %s", err);
    is_int(t.ntargets, 3, "3 targets");
    is_int(t.ignored, 1, "one without a RuleName ignored");
    ok(t.targets[0].has_fixed_rate && t.targets[0].fixed_rate == 0.1
       && t.targets[0].has_quota && t.targets[0].quota == 7
       && t.targets[0].quota_ttl_ms == 1795315175500ULL
       && t.targets[0].has_interval && t.targets[0].interval == 5
       && t.targets[0].has_boost && t.targets[0].boost_rate == 0.9
       && t.targets[0].boost_ttl_ms == 1795315200000ULL,
       "every field of a target");
    ok(!t.targets[1].has_quota, "a quota without its TTL is not applied");
    ok(!t.targets[2].has_quota && !t.targets[2].has_fixed_rate,
       "nulls are absent fields");
    ok(t.has_last_modification
       && t.last_modification_ms == 1795315000000ULL,
       "LastRuleModification");
    is_int(t.unprocessed, 1, "UnprocessedStatistics counted");

    json = "{}";
    ok(xray_sampling_targets_parse(&t, json, 2, err) == 0
       && t.ntargets == 0 && !t.has_last_modification, "an empty reply");

#define t_terr(doc, want, msg)  t_is_str(t_target_error(doc, &t), want, msg)

    t_terr("{\"RuleName\":\"a\",\"ReservoirQuota\":-1}",
           "target 1 (\"a\"): \"ReservoirQuota\" must be an integer from 0 "
           "to 2147483647", "a negative quota");
    t_terr("{\"RuleName\":\"a\",\"ReservoirQuota\":2147483647,"
           "\"ReservoirQuotaTTL\":0}", "", "a quota of 2^31-1");
    t_terr("{\"RuleName\":\"a\",\"ReservoirQuota\":2147483648}",
           "target 1 (\"a\"): \"ReservoirQuota\" must be an integer from 0 "
           "to 2147483647", "a quota of 2^31");
    t_terr("{\"RuleName\":\"a\",\"ReservoirQuota\":1.5}",
           "target 1 (\"a\"): \"ReservoirQuota\" must be an integer from 0 "
           "to 2147483647", "a fractional quota");
    t_terr("{\"RuleName\":\"a\",\"ReservoirQuotaTTL\":-5}",
           "target 1 (\"a\"): \"ReservoirQuotaTTL\" must be a number from 0 "
           "to 10000000000", "a negative TTL");
    t_terr("{\"RuleName\":\"a\",\"ReservoirQuotaTTL\":\"soon\"}",
           "target 1 (\"a\"): \"ReservoirQuotaTTL\" must be a number from 0 "
           "to 10000000000", "a TTL of another type");
    t_terr("{\"RuleName\":\"a\",\"Interval\":1e30}",
           "target 1 (\"a\"): \"Interval\" must be an integer from 0 to "
           "2147483647", "a huge Interval");
    t_terr("{\"RuleName\":\"a\",\"FixedRate\":2}",
           "target 1 (\"a\"): \"FixedRate\" must be a number from 0 to 1",
           "FixedRate 2");
    t_terr("{\"RuleName\":7}",
           "target 1: \"RuleName\" must be a string", "RuleName a number");
    t_terr("\"x\"", "target 1: must be an object", "a string for a target");
    t_terr("{\"RuleName\":\"a\",\"SamplingBoost\":{\"BoostRate\":0.5}}",
           "target 1 (\"a\"): missing \"BoostRateTTL\"",
           "a boost without its TTL");

    json = "{\"LastRuleModification\":-1}";
    ok(xray_sampling_targets_parse(&t, json, strlen(json), err) == -1
       && strcmp(err, "\"LastRuleModification\" must be a number from 0 to "
                 "10000000000") == 0, "LastRuleModification -1: %s", err);

    json = "{\"SamplingTargetDocuments\":{}}";
    ok(xray_sampling_targets_parse(&t, json, strlen(json), err) == -1
       && strcmp(err, "\"SamplingTargetDocuments\" must be an array") == 0,
       "targets an object: %s", err);

    json = "{\"UnprocessedStatistics\":1}";
    ok(xray_sampling_targets_parse(&t, json, strlen(json), err) == -1,
       "UnprocessedStatistics a number: %s", err);
}


/* a shared zone with rules Default (1 + 5%) and api (reservoir 4, 0%) */
static xray_sampling_shared_t *
t_shared(int boost)
{
    size_t                         tlen;
    char                           err[XRAY_SAMPLING_ERR_LEN], rec[2048],
                                   json[8192], *p,
                                   token[XRAY_SAMPLING_TOKEN_MAX];
    xray_sampling_shared_t        *sh;
    static xray_sampling_rules_t   rules;

    sh = mmap(NULL, sizeof(xray_sampling_shared_t), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        abort();
    }

    xray_sampling_shared_init(sh);

    memset(&rules, 0, sizeof(rules));
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "Default", 10000,
                                  "0.05", 1, "*", ""));
    p += sprintf(p, "%s", t_rule(rec, sizeof(rec), "api", 1, "0", 4,
                                 "api", boost
                                 ? "\"SamplingRateBoost\":{\"MaxRate\":1}"
                                 : ""));
    sprintf(p, "]}");

    if (t_page(&rules, json, token, &tlen, err) != 0) {
        printf("# %s\n", err);
        abort();
    }

    xray_sampling_rules_sort(&rules);
    xray_sampling_publish(sh, &rules, T_MS);

    return sh;
}


static int
t_pick(xray_sampling_shared_t *sh, const char *host,
    xray_sampling_pick_t *pick)
{
    xray_sampling_request_t  req;

    t_request(&req, host, "GET", "/", NULL);

    return xray_sampling_lookup(sh, &req, pick);
}


static void
t_target(xray_sampling_shared_t *sh, const char *doc)
{
    char                             err[XRAY_SAMPLING_ERR_LEN], json[1024];
    static xray_sampling_targets_t   t;

    snprintf(json, sizeof(json), "{\"SamplingTargetDocuments\":[%s]}", doc);

    if (xray_sampling_targets_parse(&t, json, strlen(json), err) != 0) {
        printf("# %s\n", err);
        abort();
    }

    xray_sampling_apply_targets(sh, &t);
}


static void
test_decide(void)
{
    int                      i, n;
    size_t                   ns;
    uint64_t                 ms;
    xray_sampling_pick_t     api, dflt;
    xray_sampling_stat_t     st[4];
    xray_sampling_shared_t  *sh;

    sh = t_shared(0);

    ok(t_pick(sh, "api", &api) == 0 && api.name_len == 3
       && memcmp(api.name, "api", 3) == 0 && api.reservoir_size == 4,
       "lookup: api");
    ok(t_pick(sh, "www", &dflt) == 0 && dflt.name_len == 7,
       "lookup: Default");

    /* before any quota: 1 a second is borrowed, then FixedRate (0) */

    is_int(xray_sampling_decide(sh, &api, T_MS, T_RAND_0),
           XRAY_SAMPLING_BORROW, "no quota yet: the first of the second "
           "is borrowed");
    is_int(xray_sampling_decide(sh, &api, T_MS + 999, T_RAND_0),
           XRAY_SAMPLING_NO, "the second of that second: FixedRate 0");
    is_int(xray_sampling_decide(sh, &api, T_MS + 1000, T_RAND_0),
           XRAY_SAMPLING_BORROW, "the next second: borrowed again");

    /* the Default rule: 1 borrowed, then 5% */
    is_int(xray_sampling_decide(sh, &dflt, T_MS, T_RAND_1),
           XRAY_SAMPLING_BORROW, "Default borrows too");
    is_int(xray_sampling_decide(sh, &dflt, T_MS, 214748364),
           XRAY_SAMPLING_RATE, "then 5%%: a draw just under 0.05 takes");
    is_int(xray_sampling_decide(sh, &dflt, T_MS, 214748365),
           XRAY_SAMPLING_NO, "a draw just over 0.05 does not");

    /* a quota of 3 until T+10.5 s */

    t_target(sh, "{\"RuleName\":\"api\",\"ReservoirQuota\":3,"
                 "\"ReservoirQuotaTTL\":1795315175.5}");

    ms = T_MS + 2000;
    n = 0;

    for (i = 0; i < 10; i++) {
        n += (xray_sampling_decide(sh, &api, ms, T_RAND_0)
              == XRAY_SAMPLING_QUOTA);
    }

    is_int(n, 3, "with a quota of 3: 3 in a second, no borrowing");

    n = 0;

    for (i = 0; i < 10; i++) {
        n += (xray_sampling_decide(sh, &api, T_MS + 10499, T_RAND_0)
              == XRAY_SAMPLING_QUOTA);
    }

    is_int(n, 3, "1 ms before the TTL: the quota still holds");

    is_int(xray_sampling_decide(sh, &api, T_MS + 10500, T_RAND_0),
           XRAY_SAMPLING_BORROW, "at the TTL: borrowing again");
    is_int(xray_sampling_decide(sh, &api, T_MS + 10600, T_RAND_0),
           XRAY_SAMPLING_NO, "once a second");

    /* a quota of 0: nothing from the reservoir, not even borrowed */
    t_target(sh, "{\"RuleName\":\"api\",\"ReservoirQuota\":0,"
                 "\"ReservoirQuotaTTL\":1795315300,\"FixedRate\":1}");
    is_int(xray_sampling_decide(sh, &api, T_MS + 20000, T_RAND_1),
           XRAY_SAMPLING_RATE, "quota 0: the target's FixedRate 1 decides");

    t_target(sh, "{\"RuleName\":\"api\",\"FixedRate\":0.5}");
    is_int(xray_sampling_decide(sh, &api, T_MS + 21000, 0x7fffffff),
           XRAY_SAMPLING_RATE, "FixedRate 0.5: a draw under 1/2 takes");
    is_int(xray_sampling_decide(sh, &api, T_MS + 21000, 0x80000000),
           XRAY_SAMPLING_NO, "a draw of 1/2 does not");

    t_target(sh, "{\"RuleName\":\"nosuch\",\"FixedRate\":1}");
    ok(1, "a target for an unknown rule changes nothing");

    /* statistics: exactly what was decided, then reset */

    ns = xray_sampling_collect(sh, st, 4);
    is_int(ns, 2, "2 rules saw requests");
    ok(memcmp(st[0].name, "api", 3) == 0 && st[0].requests == 28
       && st[0].sampled == 2 + 3 + 3 + 1 + 1 + 1 && st[0].borrowed == 3,
       "api: 28 requests, 11 sampled, 3 borrowed (%llu %llu %llu)",
       (unsigned long long) st[0].requests,
       (unsigned long long) st[0].sampled,
       (unsigned long long) st[0].borrowed);
    ok(memcmp(st[1].name, "Default", 7) == 0 && st[1].requests == 3
       && st[1].sampled == 2 && st[1].borrowed == 1, "Default: 3, 2, 1");
    is_int(xray_sampling_collect(sh, st, 4), 0, "reset once taken");

    xray_sampling_restore(sh, st, 2);
    is_int(xray_sampling_collect(sh, st, 4), 2,
           "statistics given back are reported next time");
    ok(st[0].requests == 28 && st[1].requests == 3, "unchanged");

    xray_sampling_decide(sh, &api, T_MS, T_RAND_1);
    is_int(xray_sampling_collect(sh, st, 1), 1, "at most max collected");

    /* no rules: lookup fails, the local rules decide */
    xray_sampling_withdraw(sh);
    is_int(t_pick(sh, "api", &api), -1, "withdrawn: no rule");
    ok(!xray_sampling_has_rules(sh), "and none held");

    munmap(sh, sizeof(xray_sampling_shared_t));
}


static void
test_boost(void)
{
    xray_sampling_pick_t     api;
    xray_sampling_stat_t     st[2];
    xray_sampling_slot_t     slot;
    xray_sampling_shared_t  *sh;

    sh = t_shared(1);
    t_pick(sh, "api", &api);
    ok(api.has_boost, "a rule with SamplingRateBoost");

    t_target(sh, "{\"RuleName\":\"api\",\"ReservoirQuota\":0,"
                 "\"ReservoirQuotaTTL\":1795316000,\"FixedRate\":0,"
                 "\"SamplingBoost\":{\"BoostRate\":0.5,"
                 "\"BoostRateTTL\":1795315175}}");

    is_int(xray_sampling_decide(sh, &api, T_MS, 0x7fffffff),
           XRAY_SAMPLING_BOOST, "boosted: BoostRate 0.5 in place of 0");
    is_int(xray_sampling_decide(sh, &api, T_MS, 0x80000000),
           XRAY_SAMPLING_NO, "at BoostRate, not above");
    is_int(xray_sampling_decide(sh, &api, T_MS + 9999, 0),
           XRAY_SAMPLING_BOOST, "1 ms before BoostRateTTL: boosted");
    is_int(xray_sampling_decide(sh, &api, T_MS + 10000, 0),
           XRAY_SAMPLING_NO, "at BoostRateTTL: FixedRate again");

    xray_sampling_outcome(sh, &api, 1, 1);
    xray_sampling_outcome(sh, &api, 1, 0);
    xray_sampling_outcome(sh, &api, 0, 1);

    is_int(xray_sampling_collect(sh, st, 2), 1, "one rule to report");
    ok(st[0].has_boost && st[0].total == 3 && st[0].anomalies == 2
       && st[0].sampled_anomalies == 1 && st[0].requests == 4
       && st[0].sampled == 2, "boost statistics: 3 total, 2 anomalies, "
       "1 sampled");

    xray_sampling_slot_read(sh, api.slot, &slot);
    ok(slot.all_boosted == 2 && slot.all_requests == 4
       && slot.boost == 500000000 && slot.quota == 0,
       "the status page's figures");

    munmap(sh, sizeof(xray_sampling_shared_t));
}


static void
test_publish(void)
{
    size_t                         tlen;
    char                           err[XRAY_SAMPLING_ERR_LEN], rec[2048],
                                   json[8192], *p,
                                   token[XRAY_SAMPLING_TOKEN_MAX];
    xray_sampling_pick_t           api, api2;
    xray_sampling_shared_t        *sh;
    static xray_sampling_rules_t   rules;

    sh = t_shared(0);
    t_pick(sh, "api", &api);
    t_target(sh, "{\"RuleName\":\"api\",\"ReservoirQuota\":2,"
                 "\"ReservoirQuotaTTL\":1795316000}");
    xray_sampling_decide(sh, &api, T_MS, T_RAND_1);

    /* the same rules again: the quota and the statistics stay */

    memset(&rules, 0, sizeof(rules));
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "Default", 10000,
                                  "0.05", 1, "*", ""));
    p += sprintf(p, "%s", t_rule(rec, sizeof(rec), "api", 1, "0", 4, "api",
                                 ""));
    sprintf(p, "]}");
    t_page(&rules, json, token, &tlen, err);
    xray_sampling_rules_sort(&rules);
    xray_sampling_publish(sh, &rules, T_MS);

    t_pick(sh, "api", &api2);
    is_int(api2.slot, api.slot, "a rule kept: its state too");
    is_int(xray_sampling_decide(sh, &api2, T_MS, T_RAND_1),
           XRAY_SAMPLING_QUOTA, "its quota still applies");
    is_int(xray_sampling_decide(sh, &api2, T_MS, T_RAND_1),
           XRAY_SAMPLING_NO, "and its window: 2 in the second in all");

    /* a changed rule (another ReservoirSize) starts without a quota */

    memset(&rules, 0, sizeof(rules));
    p = json + sprintf(json, "{\"SamplingRuleRecords\":[");
    p += sprintf(p, "%s,", t_rule(rec, sizeof(rec), "Default", 10000,
                                  "0.05", 1, "*", ""));
    p += sprintf(p, "%s", t_rule(rec, sizeof(rec), "api", 1, "0", 5, "api",
                                 ""));
    sprintf(p, "]}");
    t_page(&rules, json, token, &tlen, err);
    xray_sampling_rules_sort(&rules);
    xray_sampling_publish(sh, &rules, T_MS);

    t_pick(sh, "api", &api2);
    is_int(xray_sampling_decide(sh, &api2, T_MS + 1000, T_RAND_1),
           XRAY_SAMPLING_BORROW, "a changed rule borrows until its quota");

    /* a reader racing with a publication tries a few times, then gives up */
    __atomic_fetch_add(&sh->seq[sh->live & 1], 1, __ATOMIC_SEQ_CST);
    is_int(t_pick(sh, "api", &api2), -1,
           "a set being written is never used");
    __atomic_fetch_add(&sh->seq[sh->live & 1], 1, __ATOMIC_SEQ_CST);
    is_int(t_pick(sh, "api", &api2), 0, "once written, it is");

    /* a window word never used, with a clock past 2^31 seconds (2038) */
    t_pick(sh, "www", &api2);
    is_int(xray_sampling_decide(sh, &api2, 2147483648500ULL, T_RAND_1),
           XRAY_SAMPLING_BORROW, "after 2038, a fresh window opens");
    is_int(xray_sampling_decide(sh, &api2, 2147483648999ULL, T_RAND_1),
           XRAY_SAMPLING_NO, "once in its second");
    is_int(xray_sampling_decide(sh, &api2, 2147483649000ULL, T_RAND_1),
           XRAY_SAMPLING_BORROW, "and again in the next");

    munmap(sh, sizeof(xray_sampling_shared_t));
}


/* 4 processes take from one quota of 25 in the same second: 25 in all */
static void
test_processes(void)
{
    int                      i, k, status, n;
    pid_t                    pid[4];
    uint64_t                *taken;
    xray_sampling_pick_t     api;
    xray_sampling_stat_t     st[2];
    xray_sampling_shared_t  *sh;

    sh = t_shared(0);
    t_pick(sh, "api", &api);
    t_target(sh, "{\"RuleName\":\"api\",\"ReservoirQuota\":25,"
                 "\"ReservoirQuotaTTL\":1795316000}");

    taken = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (taken == MAP_FAILED) {
        abort();
    }

    taken[0] = 0;

    for (i = 0; i < 4; i++) {
        pid[i] = fork();

        if (pid[i] == 0) {
            n = 0;

            for (k = 0; k < 20000; k++) {
                n += (xray_sampling_decide(sh, &api, T_MS + 500, T_RAND_1)
                      == XRAY_SAMPLING_QUOTA);
            }

            __atomic_fetch_add(&taken[0], (uint64_t) n, __ATOMIC_SEQ_CST);
            _exit(0);
        }
    }

    for (i = 0; i < 4; i++) {
        waitpid(pid[i], &status, 0);
    }

    is_int(taken[0], 25, "4 processes, 80,000 requests, quota 25: 25");

    xray_sampling_collect(sh, st, 2);
    ok(st[0].requests == 80000 && st[0].sampled == 25,
       "statistics summed over processes: %llu requests, %llu sampled",
       (unsigned long long) st[0].requests,
       (unsigned long long) st[0].sampled);

    munmap(taken, 4096);
    munmap(sh, sizeof(xray_sampling_shared_t));
}


static void
test_client_id(void)
{
    int         i, hex;
    char        a[XRAY_SAMPLING_CLIENT_ID_LEN], b[XRAY_SAMPLING_CLIENT_ID_LEN];
    xray_rng_t  rng;

    xray_rng_seed_fixed(&rng, 1);
    xray_sampling_client_id(&rng, a);
    xray_sampling_client_id(&rng, b);

    hex = 1;

    for (i = 0; i < XRAY_SAMPLING_CLIENT_ID_LEN; i++) {
        hex &= ((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    }

    ok(hex, "ClientID: 24 lowercase hex digits");
    ok(memcmp(a, b, sizeof(a)) != 0, "two ClientIDs differ");
}


int
main(void)
{
    cJSON_Hooks  hooks;

    hooks.malloc_fn = t_cjson_malloc;
    hooks.free_fn = t_cjson_free;
    cJSON_InitHooks(&hooks);

    test_rules_request();
    test_targets_request();
    test_rules_parse();
    test_rules_errors();
    test_rules_host_lengths();
    test_sort_and_match();
    test_targets_parse();
    test_decide();
    test_boost();
    test_publish();
    test_processes();
    test_client_id();

    is_int(t_cjson_live, 0, "every cJSON block was freed");

    return done_testing();
}
