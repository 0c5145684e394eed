/*
 * libFuzzer target for src/xray_rules.c.
 *
 *     clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *         t/unit/fuzz_rules.c src/xray_rules.c -lcjson -o /tmp/fuzz_rules
 *     /tmp/fuzz_rules -max_total_time=60 t/unit/corpus/rules
 *
 * The whole input is parsed as a rules file; on success the result's
 * invariants are checked and requests derived from the input are matched.
 * The input is also split into a pattern and a string for
 * xray_wildcard_match(), checked against a plain dynamic program.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xray_rules.h"
#include "wildcard_ref.h"


#define F_REF_MAX      WILDCARD_REF_MAX  /* sizes checked against the DP */
#define F_PATTERN_MAX  512


typedef struct {
    void    **blocks;
    size_t    n;
    size_t    cap;
} f_pool_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void *
f_alloc(void *data, size_t size)
{
    void      *p, **blocks;
    f_pool_t  *pool;

    pool = data;

    if (pool->n == pool->cap) {
        pool->cap = pool->cap ? pool->cap * 2 : 64;
        blocks = realloc(pool->blocks, pool->cap * sizeof(void *));
        if (blocks == NULL) {
            abort();
        }

        pool->blocks = blocks;
    }

    p = malloc(size);
    if (p == NULL) {
        abort();
    }

    pool->blocks[pool->n++] = p;

    return p;
}


static void
f_pool_free(f_pool_t *pool)
{
    size_t  i;

    for (i = 0; i < pool->n; i++) {
        free(pool->blocks[i]);
    }

    free(pool->blocks);
}


static void
f_check(int cond)
{
    if (!cond) {
        abort();
    }
}


static int
f_printable(const char *s, int strict)
{
    for ( /* void */ ; *s != '\0'; s++) {
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e) {
            return 0;
        }

        if (strict && (*s == '"' || *s == '\\')) {
            return 0;
        }
    }

    return 1;
}


static void
f_check_pattern(const char *p, size_t len)
{
    f_check(p != NULL && len <= 255 && p[len] == '\0' && strlen(p) == len);
}


static void
f_check_rules(const xray_rules_t *rules)
{
    size_t              i, j;
    const xray_rule_t  *r;

    f_check(rules->nrules >= 1 && rules->nrules <= XRAY_RULES_MAX);
    f_check(rules->version == 1 || rules->version == 2);

    for (i = 0; i < rules->nrules; i++) {
        r = &rules->rules[i];

        f_check(r->name != NULL && r->name[0] != '\0');
        f_check(strlen(r->name) <= 64 && f_printable(r->name, 1));
        f_check_pattern(r->host, r->host_len);
        f_check_pattern(r->method, r->method_len);
        f_check_pattern(r->path, r->path_len);
        f_check(r->rate >= 0.0 && r->rate <= 1.0);
        f_check(r->fixed_target <= 1000000000);

        for (j = 0; j < i; j++) {
            f_check(strcmp(rules->rules[j].name, r->name) != 0);
        }
    }

    r = &rules->rules[rules->nrules - 1];

    f_check(strcmp(r->name, "default") == 0);
    f_check(strcmp(r->host, "*") == 0 && strcmp(r->method, "*") == 0
            && strcmp(r->path, "*") == 0);
}


static void
f_match(const xray_rules_t *rules, const uint8_t *host, size_t host_len,
    const uint8_t *method, size_t method_len, const uint8_t *path,
    size_t path_len)
{
    size_t              i, m;
    const xray_rule_t  *r;

    m = xray_rules_match(rules, host, host_len, method, method_len,
                         path, path_len);

    f_check(m < rules->nrules);

    if (host == NULL) {
        host_len = 0;
    }

    if (method == NULL) {
        method_len = 0;
    }

    if (path == NULL) {
        path_len = 0;
    }

    /* the first match, or the default */

    for (i = 0; i <= m && i < rules->nrules - 1; i++) {
        r = &rules->rules[i];

        f_check((i == m)
                == (xray_wildcard_match(r->host, r->host_len, host, host_len)
                    && xray_wildcard_match(r->method, r->method_len,
                                           method, method_len)
                    && xray_wildcard_match(r->path, r->path_len,
                                           path, path_len)));
    }
}


static void
f_wildcard(const uint8_t *data, size_t size)
{
    int             r;
    size_t          plen;
    const uint8_t  *nl;

    /* "pattern\nstring", or the first half against the second */

    nl = memchr(data, '\n', size);
    plen = (nl != NULL) ? (size_t) (nl - data) : size / 2;

    if (plen > F_PATTERN_MAX) {
        return;
    }

    r = xray_wildcard_match((const char *) data, plen,
                            data + plen + (nl != NULL),
                            size - plen - (nl != NULL));

    f_check(r == 0 || r == 1);

    if (plen <= F_REF_MAX && size - plen - (nl != NULL) <= F_REF_MAX) {
        f_check(r == wildcard_ref_match(data, plen,
                                        data + plen + (nl != NULL),
                                        size - plen - (nl != NULL)));
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            rc;
    char           err[XRAY_RULES_ERR_LEN];
    size_t         third;
    f_pool_t       pool;
    xray_rules_t   rules;

    f_wildcard(data, size);

    memset(&pool, 0, sizeof(pool));
    memset(err, 0xff, sizeof(err));

    rc = xray_rules_parse(&rules, (const char *) data, size, f_alloc, &pool,
                          err);

    if (rc != 0) {
        f_check(rc == -1);
        f_check(memchr(err, '\0', sizeof(err)) != NULL);
        f_check(err[0] != '\0' && f_printable(err, 0));

    } else {
        f_check_rules(&rules);

        third = size / 3;

        f_match(&rules, data, third, data + third, third,
                data + 2 * third, size - 2 * third);
        f_match(&rules, NULL, 0, NULL, 0, NULL, 0);
        f_match(&rules, (const uint8_t *) "example.com", 11,
                (const uint8_t *) "GET", 3, data, size);
        f_match(&rules, data, size, (const uint8_t *) "POST", 4,
                (const uint8_t *) "/healthz", 8);
    }

    f_pool_free(&pool);

    return 0;
}
