/*
 * X-Ray centralized sampling: the two calls of the sampling API that the
 * X-Ray daemon proxies (GetSamplingRules, GetSamplingTargets), their request
 * bodies and replies, and the sampling decision made with what they give.
 *
 * Pure C: no nginx types.  Everything lives in fixed-size structures that
 * hold no pointers, so that they can sit in shared memory mapped at other
 * addresses in other processes.  Replies are parsed with cJSON into a caller's
 * structure; nothing here allocates except cJSON while it parses.
 *
 * Limits (a reply beyond them is refused whole, the rules held are kept):
 *   XRAY_SAMPLING_REPLY_MAX  bytes in one reply
 *   XRAY_SAMPLING_RULES_MAX  rules in a rule set, over all pages
 *   XRAY_SAMPLING_TOKEN_MAX  bytes of a NextToken
 * Field lengths are the API model's (RuleName 1..32, Host 64, ...).
 *
 * Shared state is made of 64-bit words read and written with the compiler's
 * __atomic builtins, so several processes can use it without a lock.  One
 * process at a time writes rule sets and targets (the poller); any number
 * decide.
 */

#ifndef XRAY_SAMPLING_API_H
#define XRAY_SAMPLING_API_H

#include <stddef.h>
#include <stdint.h>

#include "xray_id.h"


#define XRAY_SAMPLING_REPLY_MAX     (1024 * 1024)
#define XRAY_SAMPLING_RULES_MAX     100    /* X-Ray allows 25 + Default */
#define XRAY_SAMPLING_TOKEN_MAX     1024
#define XRAY_SAMPLING_STATS_MAX     25     /* documents in one call */
#define XRAY_SAMPLING_ERR_LEN       256
#define XRAY_SAMPLING_CLIENT_ID_LEN 24

#define XRAY_SAMPLING_NAME_LEN      32     /* RuleName */
#define XRAY_SAMPLING_SERVICE_LEN   64     /* ServiceName, ServiceType */
#define XRAY_SAMPLING_HOST_LEN      64
#define XRAY_SAMPLING_METHOD_LEN    10
#define XRAY_SAMPLING_PATH_LEN      128
#define XRAY_SAMPLING_ARN_LEN       500
#define XRAY_SAMPLING_ATTRS_MAX     5
#define XRAY_SAMPLING_ATTR_LEN      32

/* slots for per-rule state: room for the rules of two sets at once */
#define XRAY_SAMPLING_SLOTS         (2 * XRAY_SAMPLING_RULES_MAX)


typedef struct {
    uint8_t     key_len;
    uint8_t     value_len;
    char        key[XRAY_SAMPLING_ATTR_LEN];
    char        value[XRAY_SAMPLING_ATTR_LEN];
} xray_sampling_attr_t;


typedef struct {
    char                  name[XRAY_SAMPLING_NAME_LEN];
    char                  service_name[XRAY_SAMPLING_SERVICE_LEN];
    char                  service_type[XRAY_SAMPLING_SERVICE_LEN];
    char                  host[XRAY_SAMPLING_HOST_LEN];
    char                  method[XRAY_SAMPLING_METHOD_LEN];
    char                  path[XRAY_SAMPLING_PATH_LEN];
    char                  resource_arn[XRAY_SAMPLING_ARN_LEN];
    xray_sampling_attr_t  attrs[XRAY_SAMPLING_ATTRS_MAX];

    uint8_t               name_len;
    uint8_t               service_name_len;
    uint8_t               service_type_len;
    uint8_t               host_len;
    uint8_t               method_len;
    uint8_t               path_len;
    uint16_t              resource_arn_len;
    uint8_t               nattrs;
    uint8_t               is_default;   /* RuleName "Default": matches all */
    uint8_t               has_boost;    /* SamplingRateBoost present */

    uint16_t              slot;         /* its state, set when published */
    uint32_t              priority;     /* 1..10000 */
    uint32_t              reservoir_size;
    uint32_t              boost_cooldown;   /* minutes */
    double                fixed_rate;   /* 0..1 */
    double                boost_max_rate;   /* 0..1 */
} xray_sampling_rule_t;


typedef struct {
    uint32_t              nrules;
    uint32_t              skipped;      /* records with Version != 1 */
    uint32_t              pages;
    xray_sampling_rule_t  rules[XRAY_SAMPLING_RULES_MAX];
} xray_sampling_rules_t;


typedef struct {
    char                  name[XRAY_SAMPLING_NAME_LEN];
    uint8_t               name_len;
    uint8_t               has_fixed_rate;
    uint8_t               has_quota;    /* ReservoirQuota and its TTL */
    uint8_t               has_interval;
    uint8_t               has_boost;
    uint32_t              quota;
    uint32_t              interval;     /* seconds */
    double                fixed_rate;
    double                boost_rate;
    uint64_t              quota_ttl_ms; /* epoch milliseconds */
    uint64_t              boost_ttl_ms;
} xray_sampling_target_t;


typedef struct {
    uint32_t                ntargets;
    uint32_t                ignored;      /* documents without a RuleName */
    uint32_t                unprocessed;  /* UnprocessedStatistics */
    uint32_t                unprocessed_boost;
    uint8_t                 has_last_modification;
    uint64_t                last_modification_ms;
    xray_sampling_target_t  targets[XRAY_SAMPLING_RULES_MAX];
} xray_sampling_targets_t;


/* what one SamplingStatisticsDocument / boost document reports */
typedef struct {
    char                  name[XRAY_SAMPLING_NAME_LEN];
    uint8_t               name_len;
    uint8_t               has_boost;    /* a boost document too */
    uint64_t              requests;
    uint64_t              sampled;
    uint64_t              borrowed;
    uint64_t              anomalies;
    uint64_t              total;        /* requests with an outcome */
    uint64_t              sampled_anomalies;
} xray_sampling_stat_t;


/*
 * Per-rule state in shared memory.  Every member is a word of its own, read
 * and written atomically; a reader may see a new quota with the previous
 * TTL for an instant, which is harmless since both are the service's.
 */
typedef struct {
    uint64_t    rate;           /* FixedRate in units of 1e-9 */
    uint64_t    quota;          /* ReservoirQuota a second */
    uint64_t    quota_ttl_ms;   /* 0: no quota (yet) */
    uint64_t    boost;          /* BoostRate in units of 1e-9 */
    uint64_t    boost_ttl_ms;   /* 0: no boost */
    uint64_t    quota_window;   /* second << 32 | taken in that second */
    uint64_t    borrow_window;  /* second << 32 | borrowed in it (max 1) */

    /* since the last report */
    uint64_t    requests;
    uint64_t    sampled;
    uint64_t    borrowed;
    uint64_t    anomalies;
    uint64_t    total;
    uint64_t    sampled_anomalies;

    /* since the rule appeared, for the status page */
    uint64_t    all_requests;
    uint64_t    all_sampled;
    uint64_t    all_borrowed;
    uint64_t    all_quota;
    uint64_t    all_boosted;

    /* the poller's own */
    char        name[XRAY_SAMPLING_NAME_LEN];
    uint8_t     name_len;
    uint8_t     in_use;
} xray_sampling_slot_t;


/*
 * Rule sets are double-buffered: the poller writes the set that is not
 * live, then makes it live.  Each set has a sequence word, odd while it is
 * written, so that a reader that raced with two publications in a row
 * notices and tries again (a bounded number of times).
 */
typedef struct {
    uint64_t               gen;         /* sets published so far */
    uint64_t               live;        /* 0: none; else a generation, */
                                        /* whose set is live & 1 */
    uint64_t               seq[2];
    uint64_t               published_ms;    /* when live was published */
    xray_sampling_rules_t  sets[2];
    xray_sampling_slot_t   slots[XRAY_SAMPLING_SLOTS];
} xray_sampling_shared_t;


typedef int (*xray_sampling_attr_pt)(void *data, const char *key,
    size_t key_len, const unsigned char **value, size_t *value_len);


/* what a request offers to match against; NULL strings match as "" */
typedef struct {
    const unsigned char   *service_name;
    size_t                 service_name_len;
    const unsigned char   *service_type;
    size_t                 service_type_len;
    const unsigned char   *host;
    size_t                 host_len;
    const unsigned char   *method;
    size_t                 method_len;
    const unsigned char   *path;
    size_t                 path_len;
    const unsigned char   *resource_arn;
    size_t                 resource_arn_len;
    xray_sampling_attr_pt  attr;        /* Attributes: a header's value */
    void                  *attr_data;
} xray_sampling_request_t;


/* the rule a request matched, copied out of shared memory */
typedef struct {
    uint32_t    slot;
    uint32_t    reservoir_size;
    uint8_t     has_boost;
    uint8_t     name_len;
    char        name[XRAY_SAMPLING_NAME_LEN];
} xray_sampling_pick_t;


typedef enum {
    XRAY_SAMPLING_NO = 0,
    XRAY_SAMPLING_QUOTA,               /* ReservoirQuota */
    XRAY_SAMPLING_BORROW,              /* 1 a second, no valid quota */
    XRAY_SAMPLING_RATE,                /* FixedRate */
    XRAY_SAMPLING_BOOST                /* BoostRate in place of FixedRate */
} xray_sampling_decision_e;


/*
 * Request bodies.  Each writes at most size bytes (no NUL) and returns the
 * length, or -1 when size is too small.
 */
int xray_sampling_rules_request(char *buf, size_t size,
    const char *next_token, size_t next_token_len);

/*
 * One SamplingTargets body: the statistics of stats[0..n) (n at most
 * XRAY_SAMPLING_STATS_MAX), and a boost document for each that has_boost
 * (service is its ServiceName).
 */
int xray_sampling_targets_request(char *buf, size_t size,
    const char *client_id, uint64_t now_sec,
    const xray_sampling_stat_t *stats, size_t n,
    const char *service, size_t service_len);

/*
 * One page of GetSamplingRules, appended to rules (start with nrules = 0).
 * Writes the page's NextToken (not NUL-terminated) into next_token
 * (XRAY_SAMPLING_TOKEN_MAX bytes) and its length, 0 on the last page.
 * Returns 0, or -1 with a message in err (XRAY_SAMPLING_ERR_LEN bytes).
 */
int xray_sampling_rules_parse(xray_sampling_rules_t *rules,
    const char *json, size_t len, char *next_token, size_t *next_token_len,
    char *err);

/* After the last page: orders the rules by Priority, RuleName, Default last. */
void xray_sampling_rules_sort(xray_sampling_rules_t *rules);

/* A SamplingTargets reply.  Returns 0, or -1 with a message in err. */
int xray_sampling_targets_parse(xray_sampling_targets_t *targets,
    const char *json, size_t len, char *err);

/* The index of the first rule that matches, or -1. */
int xray_sampling_match(const xray_sampling_rules_t *rules,
    const xray_sampling_request_t *req);

/* XRAY_SAMPLING_CLIENT_ID_LEN lowercase hex digits */
void xray_sampling_client_id(xray_rng_t *rng, char *out);


/* --- shared state: the poller's side --- */

void xray_sampling_shared_init(xray_sampling_shared_t *sh);

/* Makes rules (sorted) the live set; keeps the state of rules by name. */
void xray_sampling_publish(xray_sampling_shared_t *sh,
    const xray_sampling_rules_t *rules, uint64_t now_ms);

/* 1 when a rule set is live */
int xray_sampling_has_rules(xray_sampling_shared_t *sh);

/* Drops the live set: requests go back to the local rules. */
void xray_sampling_withdraw(xray_sampling_shared_t *sh);

/* Applies targets to the live rules of the same names. */
void xray_sampling_apply_targets(xray_sampling_shared_t *sh,
    const xray_sampling_targets_t *targets);

/*
 * Takes (and resets) the statistics of the live rules that saw requests,
 * at most max of them.  Returns how many.
 */
size_t xray_sampling_collect(xray_sampling_shared_t *sh,
    xray_sampling_stat_t *stats, size_t max);

/* Gives back statistics that could not be reported, to report them later. */
void xray_sampling_restore(xray_sampling_shared_t *sh,
    const xray_sampling_stat_t *stats, size_t n);


/* --- shared state: the request's side (reads, and counters) --- */

/* The rule for req; 0, or -1 when no rule set is live or none matches. */
int xray_sampling_lookup(xray_sampling_shared_t *sh,
    const xray_sampling_request_t *req, xray_sampling_pick_t *pick);

/*
 * The decision for a request that matched pick: random is uniform over
 * 32 bits; now_ms is epoch milliseconds.
 */
xray_sampling_decision_e xray_sampling_decide(xray_sampling_shared_t *sh,
    const xray_sampling_pick_t *pick, uint64_t now_ms, uint32_t random);

/* At the end of a request of a rule with a boost: its anomaly figures. */
void xray_sampling_outcome(xray_sampling_shared_t *sh,
    const xray_sampling_pick_t *pick, int anomaly, int sampled);

/* One slot's words in one consistent-enough read, for a status page. */
void xray_sampling_slot_read(xray_sampling_shared_t *sh, uint32_t slot,
    xray_sampling_slot_t *out);

#endif /* XRAY_SAMPLING_API_H */
