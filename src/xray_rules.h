/*
 * X-Ray local sampling rules: load the rules JSON, match a request.
 *
 * Pure C: no nginx types.  Parsing happens once, at configuration time, with
 * cJSON; memory for the result comes from the caller's allocator so that it
 * can live in a configuration pool.  Matching allocates nothing.
 */

#ifndef XRAY_RULES_H
#define XRAY_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "xray_types.h"


#define XRAY_RULES_MAX         256     /* rules in one file, default included */
#define XRAY_RULES_ERR_LEN     256     /* room for an error message */


typedef struct {
    const char  *name;                 /* "description", or "rule N" */
    const char  *host;                 /* v2 "host", v1 "service_name" */
    size_t       host_len;
    const char  *method;
    size_t       method_len;
    const char  *path;
    size_t       path_len;
    uint32_t     fixed_target;         /* reservoir: sampled per second */
    double       rate;                 /* then this fraction, 0..1 */
    uint64_t     rate_threshold;       /* xray_rng_threshold(rate) */
} xray_rule_t;


typedef struct {
    xray_rule_t  *rules;               /* nrules entries; the last one is */
    size_t        nrules;              /* the default and matches anything */
    int           version;             /* 1 or 2; 0 for the built-in */
} xray_rules_t;


/*
 * Parses a rules document (version 1 or 2).  Returns 0 on success.  On error
 * returns -1 and writes into err (XRAY_RULES_ERR_LEN bytes) a message that
 * names the rule and the field, e.g.
 *     rule 2 ("Player moves."): "rate" must be a number from 0 to 1
 */
int xray_rules_parse(xray_rules_t *rules, const char *json, size_t len,
    xray_alloc_pt alloc, void *alloc_data, char *err);

/*
 * Fills rules with X-Ray's built-in default: 1 per second, then 5%.  Returns
 * 0, or -1 when alloc fails.
 */
int xray_rules_default(xray_rules_t *rules, xray_alloc_pt alloc,
    void *alloc_data);

/*
 * The index of the first rule that matches, in file order; the default (the
 * last index) when none does.  A NULL attribute is matched as "".
 */
size_t xray_rules_match(const xray_rules_t *rules,
    const unsigned char *host, size_t host_len,
    const unsigned char *method, size_t method_len,
    const unsigned char *path, size_t path_len);

/*
 * X-Ray's wildcard match: '*' is any run of characters (even none), '?' is
 * exactly one; ASCII letters compare case-insensitively.  Returns 1 on match.
 */
int xray_wildcard_match(const char *pattern, size_t pattern_len,
    const unsigned char *s, size_t len);

#endif /* XRAY_RULES_H */
