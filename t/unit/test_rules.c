/*
 * Unit tests of src/xray_rules.c: wildcards, rules parsing and its error
 * messages, matching, allocation failures.  Run from the repository root:
 * the example rules under conf/sampling-rules/ are read from disk.
 */

#include <stdlib.h>

#include <cjson/cJSON.h>

#include "tap.h"
#include "xray_id.h"
#include "xray_rules.h"
#include "wildcard_ref.h"


/* strings compared with the reference; at most WILDCARD_REF_MAX */
#define T_REF_MAX  32


#define T_MAX_BLOCKS  4096


typedef struct {
    void    *blocks[T_MAX_BLOCKS];
    size_t   nblocks;
    long     fail_after;               /* allocations that succeed; -1: all */
} t_pool_t;


typedef struct {
    const char  *pattern;
    const char  *s;
    int          match;
} t_wildcard_t;


typedef struct {
    const char  *json;
    const char  *err;
} t_bad_t;


static long  t_cjson_live;             /* cJSON blocks not yet freed */


static void *
t_alloc(void *data, size_t size)
{
    void      *p;
    t_pool_t  *pool;

    pool = data;

    if (pool->fail_after >= 0 && (long) pool->nblocks >= pool->fail_after) {
        return NULL;
    }

    if (pool->nblocks == T_MAX_BLOCKS) {
        return NULL;
    }

    p = malloc(size);
    if (p == NULL) {
        return NULL;
    }

    pool->blocks[pool->nblocks++] = p;

    return p;
}


static void
t_pool_init(t_pool_t *pool, long fail_after)
{
    pool->nblocks = 0;
    pool->fail_after = fail_after;
}


static void
t_pool_free(t_pool_t *pool)
{
    size_t  i;

    for (i = 0; i < pool->nblocks; i++) {
        free(pool->blocks[i]);
    }

    pool->nblocks = 0;
}


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


static int
t_printable(const char *s)
{
    for ( /* void */ ; *s != '\0'; s++) {
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e) {
            return 0;
        }
    }

    return 1;
}


static int
t_parse(t_pool_t *pool, xray_rules_t *rules, const char *json, char *err)
{
    t_pool_init(pool, -1);
    err[0] = '\0';

    return xray_rules_parse(rules, json, strlen(json), t_alloc, pool, err);
}


static char *
t_read_file(const char *path, size_t *len)
{
    long   size;
    char  *buf;
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    buf = NULL;

    if (fseek(f, 0, SEEK_END) == 0) {
        size = ftell(f);

        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t) size + 1);

            if (buf != NULL
                && fread(buf, 1, (size_t) size, f) != (size_t) size)
            {
                free(buf);
                buf = NULL;
            }

            if (buf != NULL) {
                buf[size] = '\0';
                *len = (size_t) size;
            }
        }
    }

    fclose(f);

    return buf;
}


static int
t_wmatch(const char *pattern, const char *s)
{
    return xray_wildcard_match(pattern, strlen(pattern),
                               (const unsigned char *) s, strlen(s));
}


static size_t
t_match(const xray_rules_t *rules, const char *host, const char *method,
    const char *path)
{
    return xray_rules_match(rules,
                            (const unsigned char *) host,
                            host ? strlen(host) : 0,
                            (const unsigned char *) method,
                            method ? strlen(method) : 0,
                            (const unsigned char *) path,
                            path ? strlen(path) : 0);
}


static void
test_wildcard(void)
{
    size_t               i, n, m, k, bad;
    unsigned char        p[T_REF_MAX], s[T_REF_MAX], *big;
    unsigned long        seed;
    static const unsigned char  alphabet[] = {
        'a', 'A', 'b', '*', '?', '/', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xff
    };
    static const t_wildcard_t  cases[] = {
        { "*", "", 1 },
        { "*", "anything at all", 1 },
        { "", "", 1 },
        { "", "a", 0 },
        { "a", "", 0 },
        { "?", "", 0 },
        { "?", "a", 1 },
        { "?", "ab", 0 },
        { "??", "ab", 1 },
        { "a?", "a", 0 },
        { "a*", "a", 1 },
        { "a*", "abc", 1 },
        { "a*", "ba", 0 },
        { "*a", "ba", 1 },
        { "*a", "ab", 0 },
        { "a*c", "abbbc", 1 },
        { "a*c", "abbbd", 0 },
        { "a*b*c", "aXbYc", 1 },
        { "a*b*c", "acb", 0 },
        { "**", "", 1 },
        { "***a***", "a", 1 },
        { "a**b", "ab", 1 },
        { "*?", "", 0 },
        { "*?", "x", 1 },
        { "?*?", "x", 0 },
        { "?*?", "xy", 1 },
        { "abc", "ab", 0 },
        { "abcd*", "abc", 0 },
        { "ab", "abc", 0 },
        { "*ab", "aab", 1 },
        { "*aab", "aaab", 1 },
        { "*abc*", "xxabxabcxx", 1 },
        { "a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
        { "/api/move/*", "/api/move/up", 1 },
        { "/api/move/*", "/api/move", 0 },
        { "/API/Move/*", "/api/move/UP", 1 },
        { "GET", "get", 1 },
        { "get", "GeT", 1 },
        { "*.example.com", "www.Example.COM", 1 },
        { "*.example.com", "example.com", 0 },
        { "[a]", "[a]", 1 },
        { "\\*", "\\anything", 1 },
        { "?", "\xc3\xa9", 1 },                     /* one UTF-8 character */
        { "??", "\xc3\xa9", 0 },
        { "*??", "\xe2\x82\xac", 0 },
        { "/caf?", "/caf\xc3\xa9", 1 },
        { "?", "\xff", 1 },                         /* invalid: one byte */
        { "??", "\xc3", 0 },
        { "\xc3\x89", "\xc3\xa9", 0 },              /* ASCII folding only */
        { "*\xc3\xa9", "caf\xc3\xa9", 1 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_int(t_wmatch(cases[i].pattern, cases[i].s), cases[i].match,
               "wildcard '%s' ~ '%s' is %d", cases[i].pattern, cases[i].s,
               cases[i].match);
    }

    is_int(xray_wildcard_match("*", 1, NULL, 0), 1, "'*' matches NULL");
    is_int(xray_wildcard_match("", 0, NULL, 0), 1, "'' matches NULL");
    is_int(xray_wildcard_match("?", 1, NULL, 0), 0, "'?' does not match NULL");
    is_int(xray_wildcard_match("a?c", 3, (const unsigned char *) "a\0c", 3),
           1, "'?' matches a NUL byte");
    is_int(xray_wildcard_match("abc", 2, (const unsigned char *) "ab", 2), 1,
           "pattern length is honoured");

    /* hostile input stays O(n * m): 22 x 200000 steps at most */

    n = 200000;
    big = malloc(n);

    if (big != NULL) {
        memset(big, 'a', n);
        is_int(xray_wildcard_match("*a*a*a*a*a*a*a*a*a*a*b", 22, big, n), 0,
               "many stars against a long string");
        big[n - 1] = 'b';
        is_int(xray_wildcard_match("*a*a*a*a*a*a*a*a*a*a*b", 22, big, n), 1,
               "many stars against a long string, matching");
        free(big);
    }

    /* differential test against the dynamic program */

    seed = 12345;
    bad = 0;

    for (k = 0; k < 300000; k++) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        m = (seed >> 33) % 9;
        n = (seed >> 40) % 12;

        for (i = 0; i < m; i++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            p[i] = alphabet[(seed >> 33) % sizeof(alphabet)];
        }

        for (i = 0; i < n; i++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            s[i] = alphabet[(seed >> 33) % sizeof(alphabet)];
        }

        if (xray_wildcard_match((const char *) p, m, s, n)
            != wildcard_ref_match(p, m, s, n))
        {
            if (bad++ < 5) {
                printf("# differs: '%.*s' ~ '%.*s'\n", (int) m, p, (int) n, s);
            }
        }
    }

    is_int(bad, 0, "300000 random cases agree with the dynamic program");
}


static void
test_example(void)
{
    char           err[XRAY_RULES_ERR_LEN];
    t_pool_t       pool;
    xray_rules_t   rules;
    static const char  json[] =
        "{\"version\": 2,\n"
        " \"rules\": [{\"description\":\"Player moves.\",\"host\":\"*\","
        "\"http_method\":\"*\",\"url_path\":\"/api/move/*\","
        "\"fixed_target\":0,\"rate\":0.05}],\n"
        " \"default\": {\"fixed_target\":1,\"rate\":0.1}}\n";

    if (!is_int(t_parse(&pool, &rules, json, err), 0,
                "protocol example parses"))
    {
        printf("#   err: %s\n", err);
        t_pool_free(&pool);
        return;
    }

    is_int(rules.version, 2, "version 2");
    is_int(rules.nrules, 2, "one rule and the default");
    is_mem(rules.rules[0].name, strlen(rules.rules[0].name), "Player moves.",
           "description is the name");
    is_mem(rules.rules[0].host, rules.rules[0].host_len, "*", "host");
    is_mem(rules.rules[0].method, rules.rules[0].method_len, "*", "method");
    is_mem(rules.rules[0].path, rules.rules[0].path_len, "/api/move/*",
           "path");
    is_int(rules.rules[0].path[rules.rules[0].path_len], '\0',
           "path is NUL-terminated");
    is_int(rules.rules[0].fixed_target, 0, "fixed_target");
    ok(rules.rules[0].rate == 0.05, "rate 0.05");
    is_mem(rules.rules[1].name, strlen(rules.rules[1].name), "default",
           "default's name");
    is_mem(rules.rules[1].host, rules.rules[1].host_len, "*", "default host");
    is_mem(rules.rules[1].method, rules.rules[1].method_len, "*",
           "default method");
    is_mem(rules.rules[1].path, rules.rules[1].path_len, "*", "default path");
    is_int(rules.rules[1].fixed_target, 1, "default fixed_target");
    ok(rules.rules[1].rate == 0.1, "default rate 0.1");
    ok(rules.rules[0].rate_threshold == xray_rng_threshold(0.05)
       && rules.rules[1].rate_threshold == xray_rng_threshold(0.1),
       "each rule's rate threshold is its rate's");

    is_int(t_match(&rules, "example.com", "POST", "/api/move/up"), 0,
           "/api/move/up matches the rule");
    is_int(t_match(&rules, "example.com", "GET", "/api/movies"), 1,
           "/api/movies falls to the default");
    is_int(t_match(&rules, NULL, NULL, "/API/MOVE/x"), 0,
           "NULL host and method match '*'");

    t_pool_free(&pool);
}


static void
test_versions(void)
{
    char           err[XRAY_RULES_ERR_LEN];
    t_pool_t       pool;
    xray_rules_t   rules;

    is_int(t_parse(&pool, &rules,
                   "{\"version\":1,\"rules\":[{\"service_name\":\"api.*\","
                   "\"http_method\":\"POST\",\"url_path\":\"/orders/*\","
                   "\"fixed_target\":2,\"rate\":1,\"priority\":5,"
                   "\"unknown\":{\"a\":[1,2]}}],"
                   "\"default\":{\"fixed_target\":0,\"rate\":0,"
                   "\"extra\":true}}",
                   err),
           0, "version 1 file with service_name parses");

    if (rules.nrules == 2) {
        is_int(rules.version, 1, "version 1");
        is_mem(rules.rules[0].host, rules.rules[0].host_len, "api.*",
               "service_name is the host pattern");
        is_mem(rules.rules[0].name, strlen(rules.rules[0].name), "rule 1",
               "no description: rule 1");
        is_int(rules.rules[0].fixed_target, 2, "fixed_target 2");
        ok(rules.rules[0].rate == 1.0, "rate 1");
        ok(rules.rules[1].rate == 0.0, "default rate 0");
        is_int(t_match(&rules, "API.example.com", "post", "/orders/7"), 0,
               "v1 rule matches the Host");
        is_int(t_match(&rules, "www.example.com", "POST", "/orders/7"), 1,
               "other host falls to the default");
    }

    t_pool_free(&pool);

    is_int(t_parse(&pool, &rules,
                   "\xef\xbb\xbf {\"version\":2.0,"
                   "\"default\":{\"fixed_target\":1e9,\"rate\":0.0}} \n\t",
                   err),
           0, "default-only file (BOM, 2.0, 1e9, trailing space) parses");
    is_int(rules.nrules, 1, "default only: one rule");
    is_int(rules.version, 2, "version 2.0 is 2");
    is_int(rules.rules[0].fixed_target, 1000000000, "fixed_target 1e9");
    is_int(t_match(&rules, NULL, NULL, NULL), 0, "anything matches default");
    t_pool_free(&pool);

    is_int(t_parse(&pool, &rules,
                   "{\"version\":2,\"rules\":[],"
                   "\"default\":{\"fixed_target\":3,\"rate\":-0}}",
                   err),
           0, "empty rules array parses");
    is_int(rules.nrules, 1, "empty rules array: default only");
    t_pool_free(&pool);

    is_int(t_parse(&pool, &rules,
                   "{\"version\":2,\"rules\":[{\"host\":\"\","
                   "\"http_method\":\"\",\"url_path\":\"\","
                   "\"fixed_target\":0,\"rate\":0}],"
                   "\"default\":{\"fixed_target\":3,\"rate\":1}}",
                   err),
           0, "empty patterns are allowed");

    if (rules.nrules == 2) {
        is_int(t_match(&rules, NULL, "", NULL), 0,
               "empty patterns match empty attributes");
        is_int(t_match(&rules, "h", "", ""), 1,
               "empty patterns match only empty attributes");
    }

    t_pool_free(&pool);
}


static void
test_errors(void)
{
    int            rc;
    char           err[XRAY_RULES_ERR_LEN], *json, *p;
    size_t         i, k;
    t_pool_t       pool;
    xray_rules_t   rules;

#define T_DEF   "\"default\":{\"fixed_target\":1,\"rate\":0.1}"
#define T_RULE  "\"host\":\"*\",\"http_method\":\"*\",\"url_path\":\"*\","  \
                "\"fixed_target\":1,\"rate\":0.1"

    static const t_bad_t  bad[] = {
        { "", "invalid JSON near offset 0" },
        { "   ", "invalid JSON near offset 2" },
        { "{\"version\": 2, \"rules\": [}", "invalid JSON near offset 25" },
        { "{\"version\":2," T_DEF "} x", "invalid JSON near offset 54" },
        { "{\"version\":2," T_DEF "}}", "invalid JSON near offset 53" },
        { "[]", "the rules document must be a JSON object" },
        { "{\"version\":2,\"version\":1," T_DEF "}",
          "duplicate key \"version\"" },
        { "{\"version\":2,\"rules\":[{" T_RULE "},{" T_RULE ",\"rate\":1}],"
          T_DEF "}",
          "duplicate key \"rate\" in rule 2" },
        { "{\"version\":2,\"default\":{\"fixed_target\":1,\"rate\":0.1,"
          "\"rate\":1}}",
          "duplicate key \"rate\" in \"default\"" },
        { "{\"version\":2,\"x\":[{\"a\":1,\"b\":{\"c\\u0001\":1,"
          "\"c\\u0001\":2}}]," T_DEF "}",
          "duplicate key \"c\\x01\" in the document" },
        { "{\"version\":2,\"rules\":[{\"description\":\"d\"," T_RULE ","
          "\"x\":{\"k\":1,\"k\":1}}]," T_DEF "}",
          "duplicate key \"k\" in rule 1" },
        { "\"x\"", "the rules document must be a JSON object" },
        { "{" T_DEF "}", "\"version\" must be 1 or 2" },
        { "{\"version\":3," T_DEF "}", "\"version\" must be 1 or 2" },
        { "{\"version\":\"2\"," T_DEF "}", "\"version\" must be 1 or 2" },
        { "{\"version\":1.5," T_DEF "}", "\"version\" must be 1 or 2" },
        { "{\"version\":2,\"rules\":{}," T_DEF "}",
          "\"rules\" must be an array" },
        { "{\"version\":2,\"rules\":null," T_DEF "}",
          "\"rules\" must be an array" },
        { "{\"version\":2}", "missing \"default\"" },
        { "{\"version\":2,\"rules\":[]}", "missing \"default\"" },
        { "{\"version\":2,\"default\":[]}", "\"default\" must be an object" },
        { "{\"version\":2,\"rules\":[1]," T_DEF "}",
          "rule 1 must be an object" },
        { "{\"version\":2,\"rules\":[{" T_RULE "},\"x\"]," T_DEF "}",
          "rule 2 must be an object" },
        { "{\"version\":2,\"rules\":[{\"service_name\":\"*\"," T_RULE "}],"
          T_DEF "}",
          "rule 1: \"service_name\" is a version 1 field; use \"host\"" },
        { "{\"version\":1,\"rules\":[{" T_RULE "}]," T_DEF "}",
          "rule 1: \"host\" is a version 2 field; use \"service_name\"" },
        { "{\"version\":1,\"rules\":[{\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":1,\"rate\":1}]," T_DEF "}",
          "rule 1: missing \"service_name\"" },
        { "{\"version\":2,\"rules\":[{" T_RULE "},{" T_RULE "},"
          "{\"host\":\"*\",\"http_method\":\"*\",\"fixed_target\":1,"
          "\"rate\":1}]," T_DEF "}",
          "rule 3: missing \"url_path\"" },
        { "{\"version\":2,\"rules\":[{\"url_path\":\"*\",\"host\":\"*\","
          "\"fixed_target\":1,\"rate\":1}]," T_DEF "}",
          "rule 1: missing \"http_method\"" },
        { "{\"version\":2,\"rules\":[{" T_RULE "},"
          "{\"description\":\"Player moves.\",\"host\":\"*\","
          "\"http_method\":\"*\",\"url_path\":\"*\",\"fixed_target\":0,"
          "\"rate\":1.5}]," T_DEF "}",
          "rule 2 (\"Player moves.\"): \"rate\" must be a number from 0 to 1" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":0,\"rate\":\"0.5\"}],"
          T_DEF "}",
          "rule 1: \"rate\" must be a number from 0 to 1" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":0,\"rate\":-0.01}],"
          T_DEF "}",
          "rule 1: \"rate\" must be a number from 0 to 1" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":0}]," T_DEF "}",
          "rule 1: missing \"rate\"" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"rate\":0}]," T_DEF "}",
          "rule 1: missing \"fixed_target\"" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":1.5,\"rate\":0}]," T_DEF "}",
          "rule 1: \"fixed_target\" must be an integer from 0 to 1000000000" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":-1,\"rate\":0}]," T_DEF "}",
          "rule 1: \"fixed_target\" must be an integer from 0 to 1000000000" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":1e10,\"rate\":0}]," T_DEF "}",
          "rule 1: \"fixed_target\" must be an integer from 0 to 1000000000" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":1e999,\"rate\":0}]," T_DEF "}",
          "rule 1: \"fixed_target\" must be an integer from 0 to 1000000000" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":true,\"rate\":0}]," T_DEF "}",
          "rule 1: \"fixed_target\" must be an integer from 0 to 1000000000" },
        { "{\"version\":2,\"rules\":[{\"host\":7,\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":1,\"rate\":0}]," T_DEF "}",
          "rule 1: \"host\" must be a string" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":null,"
          "\"url_path\":\"*\",\"fixed_target\":1,\"rate\":0}]," T_DEF "}",
          "rule 1: \"http_method\" must be a string" },
        { "{\"version\":2,\"rules\":[{\"description\":[],\"host\":\"*\","
          "\"http_method\":\"*\",\"url_path\":\"*\",\"fixed_target\":1,"
          "\"rate\":0}]," T_DEF "}",
          "rule 1: \"description\" must be a string" },
        { "{\"version\":2,\"rules\":[{\"description\":\"a\\\"b\\\\c\\u0001\","
          "\"http_method\":\"*\",\"url_path\":\"*\",\"fixed_target\":1,"
          "\"rate\":0}]," T_DEF "}",
          "rule 1 (\"a\\\"b\\\\c\\x01\"): missing \"host\"" },
        { "{\"version\":2,\"rules\":[{\"description\":\"caf\xc3\xa9\","
          "\"http_method\":\"*\",\"url_path\":\"*\",\"fixed_target\":1,"
          "\"rate\":0}]," T_DEF "}",
          "rule 1 (\"caf\\xc3\\xa9\"): missing \"host\"" },
        { "{\"version\":2,\"rules\":[{\"description\":\"\","
          "\"http_method\":\"*\",\"url_path\":\"*\",\"fixed_target\":1,"
          "\"rate\":0}]," T_DEF "}",
          "rule 1: missing \"host\"" },
        { "{\"version\":2,\"rules\":[{\"description\":"
          "\"0123456789012345678901234567890123456789012345678\","
          "\"http_method\":\"*\",\"url_path\":\"*\",\"fixed_target\":1,"
          "\"rate\":0}]," T_DEF "}",
          "rule 1 (\"012345678901234567890123456789012345678901234567...\"):"
          " missing \"host\"" },
        { "{\"version\":2,\"default\":{\"url_path\":\"*\","
          "\"fixed_target\":1,\"rate\":0.1}}",
          "\"default\" must not set \"url_path\"" },
        { "{\"version\":2,\"default\":{\"host\":\"*\","
          "\"fixed_target\":1,\"rate\":0.1}}",
          "\"default\" must not set \"host\"" },
        { "{\"version\":2,\"default\":{\"service_name\":\"*\","
          "\"fixed_target\":1,\"rate\":0.1}}",
          "\"default\" must not set \"service_name\"" },
        { "{\"version\":1,\"default\":{\"http_method\":\"*\","
          "\"fixed_target\":1,\"rate\":0.1}}",
          "\"default\" must not set \"http_method\"" },
        { "{\"version\":2,\"default\":{\"rate\":0.1}}",
          "\"default\": missing \"fixed_target\"" },
        { "{\"version\":2,\"default\":{\"fixed_target\":1}}",
          "\"default\": missing \"rate\"" },
        { "{\"version\":2,\"default\":{\"fixed_target\":1,\"rate\":2}}",
          "\"default\": \"rate\" must be a number from 0 to 1" },
        { "{\"version\":2,\"default\":{\"fixed_target\":0.5,\"rate\":1}}",
          "\"default\": \"fixed_target\" must be an integer from 0 to "
          "1000000000" },
        { "{\"version\":2,\"rules\":[{\"host\":\"*\",\"http_method\":\"*\","
          "\"url_path\":\"*\",\"fixed_target\":1,\"rate\":9}],"
          "\"default\":{\"fixed_target\":1,\"rate\":2}}",
          "rule 1: \"rate\" must be a number from 0 to 1" },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&rules, 0xa5, sizeof(rules));
        rc = t_parse(&pool, &rules, bad[i].json, err);

        if (is_int(rc, -1, "bad file %lu is rejected", (unsigned long) i)) {
            is_mem(err, strlen(err), bad[i].err, "error: %s", bad[i].err);
            ok(rules.nrules == (size_t) 0xa5a5a5a5a5a5a5a5ULL,
               "rules untouched on error");
        }

        t_pool_free(&pool);
    }

    /* patterns up to 255 bytes; the message names the field */

    json = malloc(1024);

    if (json != NULL) {
        p = json + sprintf(json, "{\"version\":2,\"rules\":[{\"host\":\"*\","
                           "\"http_method\":\"");
        memset(p, 'G', 255);
        p += 255;
        sprintf(p, "\",\"url_path\":\"*\",\"fixed_target\":1,\"rate\":0}],"
                T_DEF "}");
        is_int(t_parse(&pool, &rules, json, err), 0, "255-byte method is ok");
        is_int(rules.rules[0].method_len, 255, "255-byte method kept");
        t_pool_free(&pool);

        memmove(p + 1, p, strlen(p) + 1);
        *p = 'G';
        is_int(t_parse(&pool, &rules, json, err), -1,
               "256-byte method is rejected");
        is_mem(err, strlen(err),
               "rule 1: \"http_method\" is longer than 255 bytes",
               "256-byte method error");
        t_pool_free(&pool);

        free(json);
    }

    /* 255 rules, then 256 */

    json = malloc(256 * 128 + 256);

    if (json != NULL) {
        p = json + sprintf(json, "{\"version\":2,\"rules\":[");

        for (k = 0; k < 255; k++) {
            p += sprintf(p, "%s{" T_RULE "}", k ? "," : "");
        }

        sprintf(p, "]," T_DEF "}");
        is_int(t_parse(&pool, &rules, json, err), 0, "255 rules are ok");
        is_int(rules.nrules, 256, "255 rules and the default");
        is_mem(rules.rules[254].name, strlen(rules.rules[254].name),
               "rule 255", "rule 255's name");
        t_pool_free(&pool);

        sprintf(p, ",{" T_RULE "}]," T_DEF "}");
        is_int(t_parse(&pool, &rules, json, err), -1, "256 rules are not");
        is_mem(err, strlen(err), "too many rules: at most 255",
               "too many rules error");
        t_pool_free(&pool);

        free(json);
    }

    /* a hostile description: the message stays printable and fits */

    json = malloc(4096);

    if (json != NULL) {
        p = json + sprintf(json, "{\"version\":2,\"rules\":[{"
                           "\"description\":\"");

        for (k = 0; k < 300; k++) {
            p += sprintf(p, "\\u0001\xe2\x82\xac\\\"");
        }

        sprintf(p, "\",\"host\":1}]," T_DEF "}");
        is_int(t_parse(&pool, &rules, json, err), -1,
               "hostile description: rejected");
        ok(strlen(err) < XRAY_RULES_ERR_LEN && t_printable(err),
           "hostile description: message printable, %lu bytes",
           (unsigned long) strlen(err));
        ok(strstr(err, "...\"): \"host\" must be a string") != NULL,
           "hostile description: message ends with the field");
        t_pool_free(&pool);

        free(json);
    }

#undef T_DEF
#undef T_RULE
}


static void
test_match_order(void)
{
    char           err[XRAY_RULES_ERR_LEN];
    t_pool_t       pool;
    xray_rules_t   rules;

    if (!is_int(t_parse(&pool, &rules,
                        "{\"version\":2,\"rules\":["
                        "{\"host\":\"*\",\"http_method\":\"GET\","
                        "\"url_path\":\"/a/*\",\"fixed_target\":1,\"rate\":0},"
                        "{\"host\":\"*\",\"http_method\":\"*\","
                        "\"url_path\":\"/a/b\",\"fixed_target\":2,\"rate\":0},"
                        "{\"host\":\"*.example.com\",\"http_method\":\"*\","
                        "\"url_path\":\"*\",\"fixed_target\":3,\"rate\":0},"
                        "{\"host\":\"\",\"http_method\":\"?*\","
                        "\"url_path\":\"*\",\"fixed_target\":4,\"rate\":0}],"
                        "\"default\":{\"fixed_target\":5,\"rate\":0}}",
                        err),
                0, "rules for matching order parse"))
    {
        printf("#   err: %s\n", err);
        t_pool_free(&pool);
        return;
    }

    is_int(t_match(&rules, "x", "GET", "/a/b"), 0, "first match wins");
    is_int(t_match(&rules, "x.example.com", "POST", "/a/b"), 1,
           "second rule when the first does not match");
    is_int(t_match(&rules, "x.example.com", "POST", "/c"), 2,
           "host wildcard");
    is_int(t_match(&rules, NULL, "POST", "/c"), 3, "NULL host matches ''");
    is_int(t_match(&rules, NULL, NULL, "/c"), 4,
           "NULL method does not match '?*': default");
    is_int(t_match(&rules, "example.com", "POST", "/c"), 4,
           "nothing matches: the default");

    t_pool_free(&pool);
}


static void
test_names(void)
{
    char           err[XRAY_RULES_ERR_LEN];
    size_t         i;
    t_pool_t       pool;
    xray_rules_t   rules;
    static const char  *names[] = {
        "Player moves.",
        "rule 2",                   /* "" */
        "rule 3",                   /* quotes */
        "rule 4",                   /* backslash */
        "rule 5",                   /* tab */
        "rule 6",                   /* non-ASCII */
        "rule 7",                   /* 65 bytes */
        "0123456789012345678901234567890123456789012345678901234567890123",
        "rule 9",                   /* duplicate */
        "rule 10",                  /* "default" */
        "rule 11",                  /* "rule 12" */
        "rule 12x",
        "Default",
        "rule 14",                  /* no description */
        "default"
    };

#define T_R(d)  "{" d "\"host\":\"*\",\"http_method\":\"*\","              \
                "\"url_path\":\"*\",\"fixed_target\":1,\"rate\":0}"

    if (!is_int(t_parse(&pool, &rules,
                        "{\"version\":2,\"rules\":["
                        T_R("\"description\":\"Player moves.\",") ","
                        T_R("\"description\":\"\",") ","
                        T_R("\"description\":\"say \\\"hi\\\"\",") ","
                        T_R("\"description\":\"a\\\\b\",") ","
                        T_R("\"description\":\"a\\tb\",") ","
                        T_R("\"description\":\"caf\xc3\xa9\",") ","
                        T_R("\"description\":\"0123456789012345678901234567"
                            "8901234567890123456789012345678901234\",") ","
                        T_R("\"description\":\"0123456789012345678901234567"
                            "890123456789012345678901234567890123\",") ","
                        T_R("\"description\":\"Player moves.\",") ","
                        T_R("\"description\":\"default\",") ","
                        T_R("\"description\":\"rule 12\",") ","
                        T_R("\"description\":\"rule 12x\",") ","
                        T_R("\"description\":\"Default\",") ","
                        T_R("") "],"
                        "\"default\":{\"fixed_target\":1,\"rate\":0}}",
                        err),
                0, "rules for names parse"))
    {
        printf("#   err: %s\n", err);
        t_pool_free(&pool);
        return;
    }

#undef T_R

    is_int(rules.nrules, sizeof(names) / sizeof(names[0]), "15 rules");

    for (i = 0; i < rules.nrules; i++) {
        is_mem(rules.rules[i].name, strlen(rules.rules[i].name), names[i],
               "rule %lu is named '%s'", (unsigned long) i + 1, names[i]);
    }

    t_pool_free(&pool);
}


static void
test_alloc_failure(void)
{
    int            rc;
    long           k, total;
    char           err[XRAY_RULES_ERR_LEN];
    t_pool_t       pool;
    xray_rules_t   rules;
    static const char  json[] =
        "{\"version\":2,\"rules\":["
        "{\"description\":\"one\",\"host\":\"*\",\"http_method\":\"GET\","
        "\"url_path\":\"/a\",\"fixed_target\":1,\"rate\":0},"
        "{\"host\":\"h\",\"http_method\":\"*\",\"url_path\":\"/b\","
        "\"fixed_target\":1,\"rate\":0.5}],"
        "\"default\":{\"fixed_target\":1,\"rate\":0.1}}";

    t_pool_init(&pool, -1);
    rc = xray_rules_parse(&rules, json, sizeof(json) - 1, t_alloc, &pool, err);
    total = (long) pool.nblocks;
    t_pool_free(&pool);

    is_int(rc, 0, "allocation counting run parses");
    is_int(total, 17, "17 allocations: array and 4 strings per rule, "
           "and the key list of each object with several keys");

    for (k = 0; k < total; k++) {
        t_pool_init(&pool, k);
        memset(&rules, 0, sizeof(rules));
        strcpy(err, "unset");

        rc = xray_rules_parse(&rules, json, sizeof(json) - 1, t_alloc, &pool,
                              err);

        ok(rc == -1 && strcmp(err, "out of memory") == 0
           && rules.rules == NULL && t_cjson_live == 0,
           "allocation %ld fails: -1, \"out of memory\", cJSON freed", k + 1);

        t_pool_free(&pool);
    }

    for (k = 0; k < 5; k++) {
        t_pool_init(&pool, k);
        memset(&rules, 0, sizeof(rules));
        rc = xray_rules_default(&rules, t_alloc, &pool);
        ok(rc == -1 && rules.rules == NULL,
           "built-in default: allocation %ld fails", k + 1);
        t_pool_free(&pool);
    }
}


static void
test_builtin_default(void)
{
    t_pool_t       pool;
    xray_rules_t   rules;

    t_pool_init(&pool, -1);

    if (!is_int(xray_rules_default(&rules, t_alloc, &pool), 0,
                "built-in default"))
    {
        t_pool_free(&pool);
        return;
    }

    is_int(rules.nrules, 1, "built-in: one rule");
    is_int(rules.version, 0, "built-in: version 0");
    is_mem(rules.rules[0].name, strlen(rules.rules[0].name), "default",
           "built-in: name");
    is_mem(rules.rules[0].host, rules.rules[0].host_len, "*", "built-in: host");
    is_mem(rules.rules[0].method, rules.rules[0].method_len, "*",
           "built-in: method");
    is_mem(rules.rules[0].path, rules.rules[0].path_len, "*",
           "built-in: path");
    is_int(rules.rules[0].fixed_target, 1, "built-in: 1 per second");
    ok(rules.rules[0].rate == 0.05, "built-in: then 5%%");
    ok(rules.rules[0].rate_threshold == xray_rng_threshold(0.05),
       "built-in: the threshold of 5%%");
    is_int(t_match(&rules, "h", "GET", "/"), 0, "built-in: matches");
    is_int(pool.nblocks, 5, "built-in: 5 allocations");

    t_pool_free(&pool);
}


static void
test_example_files(void)
{
    char          *json, err[XRAY_RULES_ERR_LEN];
    size_t         len;
    t_pool_t       pool;
    xray_rules_t   rules;

    json = t_read_file("conf/sampling-rules/development.json", &len);

    if (ok(json != NULL, "read conf/sampling-rules/development.json")) {
        t_pool_init(&pool, -1);
        is_int(xray_rules_parse(&rules, json, len, t_alloc, &pool, err), 0,
               "development.json parses");
        is_int(rules.version, 2, "development.json: version 2");
        is_int(rules.nrules, 1, "development.json: default only");
        ok(rules.rules[rules.nrules - 1].rate == 1.0,
           "development.json: default rate 1");
        t_pool_free(&pool);
        free(json);
    }

    json = t_read_file("conf/sampling-rules/production.json", &len);

    if (ok(json != NULL, "read conf/sampling-rules/production.json")) {
        t_pool_init(&pool, -1);

        if (is_int(xray_rules_parse(&rules, json, len, t_alloc, &pool, err),
                   0, "production.json parses"))
        {
            is_int(rules.version, 2, "production.json: version 2");
            is_int(rules.nrules, 2, "production.json: one rule and default");
            is_int(t_match(&rules, "example.com", "GET", "/healthz"), 0,
                   "production.json: /healthz matches the rule");
            is_int(rules.rules[0].fixed_target, 0,
                   "production.json: health checks reservoir 0");
            ok(rules.rules[0].rate == 0.0,
               "production.json: health checks rate 0");
            is_int(t_match(&rules, "example.com", "GET", "/"), 1,
                   "production.json: / falls to the default");
            is_int(rules.rules[1].fixed_target, 1,
                   "production.json: default 1 per second");
            ok(rules.rules[1].rate == 0.05, "production.json: then 5%%");

        } else {
            printf("#   err: %s\n", err);
        }

        t_pool_free(&pool);
        free(json);
    }
}


int
main(void)
{
    cJSON_Hooks  hooks;

    hooks.malloc_fn = t_cjson_malloc;
    hooks.free_fn = t_cjson_free;
    cJSON_InitHooks(&hooks);

    test_wildcard();
    test_example();
    test_versions();
    test_errors();
    test_match_order();
    test_names();
    test_alloc_failure();
    test_builtin_default();
    test_example_files();

    is_int(t_cjson_live, 0, "every cJSON block was freed");

    return done_testing();
}
