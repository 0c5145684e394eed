/*
 * ngx_http_xray: declarations shared by the nginx-bound parts.
 */

#ifndef NGX_HTTP_XRAY_H
#define NGX_HTTP_XRAY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "xray_header.h"
#include "xray_id.h"
#include "xray_rules.h"


#define NGX_HTTP_XRAY_VERSION  "0.1.0"


/* module-wide counters, kept in shared memory and summed over workers */
typedef enum {
    NGX_HTTP_XRAY_REQUESTS = 0,        /* requests where tracing is on */
    NGX_HTTP_XRAY_NO_CONTEXT,          /* no trace header, none originated */
    NGX_HTTP_XRAY_INVALID,             /* client header dropped as invalid */
    NGX_HTTP_XRAY_ORIGINATED,          /* trace started by this proxy */
    NGX_HTTP_XRAY_SAMPLED,
    NGX_HTTP_XRAY_NOT_SAMPLED,
    NGX_HTTP_XRAY_OVERRIDDEN,          /* client's Sampled=0/1 not followed */
    NGX_HTTP_XRAY_TRUSTED,             /* client's Sampled=0/1 followed */
    NGX_HTTP_XRAY_REQUESTED,           /* Sampled=? decided and answered */
    NGX_HTTP_XRAY_NCOUNTERS
} ngx_http_xray_counter_e;


typedef struct {
    ngx_atomic_t                reservoir;     /* second << shift | taken */
    ngx_atomic_t                matched;
    ngx_atomic_t                by_reservoir;
    ngx_atomic_t                by_rate;
} ngx_http_xray_rule_stats_t;


typedef struct {
    uint32_t                    rules_crc;
    ngx_uint_t                  nrules;
    ngx_atomic_t                counters[NGX_HTTP_XRAY_NCOUNTERS];
    ngx_http_xray_rule_stats_t  rules[XRAY_RULES_MAX];
} ngx_http_xray_shm_t;


typedef struct {
    xray_rules_t                rules;
    uint32_t                    rules_crc;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_xray_shm_t        *shm;
} ngx_http_xray_main_conf_t;


ngx_int_t ngx_http_xray_shm_add(ngx_conf_t *cf,
    ngx_http_xray_main_conf_t *xmcf);
ngx_uint_t ngx_http_xray_reservoir_take(ngx_http_xray_rule_stats_t *stats,
    uint32_t capacity, time_t now);


#define ngx_http_xray_count(xmcf, c)                                         \
    (void) ngx_atomic_fetch_add(&(xmcf)->shm->counters[c], 1)


extern ngx_module_t  ngx_http_xray_module;

#endif /* NGX_HTTP_XRAY_H */
