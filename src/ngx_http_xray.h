/*
 * ngx_http_xray: declarations shared by the nginx-bound parts.
 */

#ifndef NGX_HTTP_XRAY_H
#define NGX_HTTP_XRAY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "xray_daemon_addr.h"
#include "xray_emit.h"
#include "xray_header.h"
#include "xray_id.h"
#include "xray_rules.h"
#include "xray_sampling_api.h"
#include "xray_segment.h"
#include "xray_w3c.h"


#define NGX_HTTP_XRAY_VERSION  "0.1.0"


/* module-wide counters, kept in shared memory and summed over workers */
typedef enum {
    NGX_HTTP_XRAY_NO_CONTEXT = 0,      /* no trace header, none originated */
    NGX_HTTP_XRAY_INVALID,             /* client header dropped as invalid */
    NGX_HTTP_XRAY_ORIGINATED,          /* trace started by this proxy */
    NGX_HTTP_XRAY_SAMPLED,
    NGX_HTTP_XRAY_NOT_SAMPLED,
    NGX_HTTP_XRAY_OVERRIDDEN,          /* client's Sampled=0/1 not followed */
    NGX_HTTP_XRAY_TRUSTED,             /* client's Sampled=0/1 followed */
    NGX_HTTP_XRAY_REQUESTED,           /* Sampled=? decided and answered */
    NGX_HTTP_XRAY_CAPTURED,            /* unsampled error recorded anyway */
    NGX_HTTP_XRAY_SEGMENTS,            /* segments recorded */
    NGX_HTTP_XRAY_IN_PROGRESS,         /* in-progress documents written */
    NGX_HTTP_XRAY_SPLIT,               /* segments sent in several parts */
    NGX_HTTP_XRAY_DOCS_QUEUED,         /* documents handed to the emitter */
    NGX_HTTP_XRAY_DOCS_SENT,
    NGX_HTTP_XRAY_BYTES_SENT,
    NGX_HTTP_XRAY_DROPPED_FULL,        /* socket buffer full */
    NGX_HTTP_XRAY_DROPPED_REFUSED,     /* no daemon listening */
    NGX_HTTP_XRAY_DROPPED_TOO_LARGE,   /* over a datagram even when split */
    NGX_HTTP_XRAY_DROPPED_OTHER,       /* any other send error */
    NGX_HTTP_XRAY_FROM_XRAY,           /* context from X-Amzn-Trace-Id */
    NGX_HTTP_XRAY_FROM_W3C,            /* context from traceparent */
    NGX_HTTP_XRAY_CONFLICTS,           /* both, naming different traces */
    NGX_HTTP_XRAY_DROPPED_TRACEPARENT, /* invalid traceparent */
    NGX_HTTP_XRAY_DROPPED_TRACESTATE,  /* invalid tracestate */
    NGX_HTTP_XRAY_DROPPED_LIMIT,       /* over xray_emit_limit */
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
    ngx_atomic_t                emitted;       /* second << shift | count */
    ngx_http_xray_rule_stats_t  rules[XRAY_RULES_MAX];
} ngx_http_xray_shm_t;


/* xray_sampling: the sampling API's calls, and how they failed */
typedef enum {
    NGX_HTTP_XRAY_CALL_RULES = 0,      /* GetSamplingRules */
    NGX_HTTP_XRAY_CALL_TARGETS,        /* SamplingTargets */
    NGX_HTTP_XRAY_NCALLS
} ngx_http_xray_call_e;


typedef enum {
    NGX_HTTP_XRAY_POLL_CONNECT = 0,    /* refused, unreachable */
    NGX_HTTP_XRAY_POLL_TIMEOUT,        /* connect + reply over the bound */
    NGX_HTTP_XRAY_POLL_HTTP_STATUS,    /* not 200 */
    NGX_HTTP_XRAY_POLL_BAD_REPLY,      /* not HTTP, or not the API's JSON */
    NGX_HTTP_XRAY_POLL_TOO_LARGE,      /* over XRAY_SAMPLING_REPLY_MAX */
    NGX_HTTP_XRAY_POLL_CLOSED,         /* closed before the reply ended */
    NGX_HTTP_XRAY_NPOLL_ERRORS
} ngx_http_xray_poll_error_e;


/*
 * The centralized sampling zone: the rules and quotas every worker decides
 * with, the instance's ClientID, the poller's lease and its status.  Kept
 * across reloads (same zone name and size).
 */
typedef struct {
    xray_sampling_shared_t      shared;
    u_char                      client_id[XRAY_SAMPLING_CLIENT_ID_LEN];
    ngx_atomic_t                lease;         /* the poller's pid; 0: none */
    ngx_atomic_t                heartbeat;     /* its ngx_current_msec */
    ngx_atomic_t                last_success[NGX_HTTP_XRAY_NCALLS];
                                               /* epoch seconds; 0: never */
    ngx_atomic_t                errors[NGX_HTTP_XRAY_NCALLS]
                                      [NGX_HTTP_XRAY_NPOLL_ERRORS];
    ngx_atomic_t                to_central;    /* switches */
    ngx_atomic_t                to_local;
    uint64_t                    rules_fetched; /* epoch ms the fetch of */
                                               /* the rules held began */
} ngx_http_xray_sampling_shm_t;


typedef struct {
    xray_rules_t                rules;
    uint32_t                    rules_crc;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_xray_shm_t        *shm;

    ngx_str_t                   daemon;        /* as configured, for logs */
    ngx_addr_t                  daemon_addr;
    ngx_uint_t                  batch;
    ngx_msec_t                  flush;
    ngx_uint_t                  emit_limit;    /* documents a second; 0 */
    ngx_uint_t                  enabled;       /* xray on somewhere */

    /* xray_sampling */
    ngx_uint_t                  sampling;      /* NGX_HTTP_XRAY_SAMPLING_* */
    ngx_msec_t                  rules_interval;
    ngx_msec_t                  targets_interval;
    ngx_msec_t                  fallback;
    ngx_msec_t                  anomaly_latency;   /* 0: off */
    ngx_addr_t                  proxy_addr;    /* the daemon's TCP proxy */
    ngx_str_t                   proxy_host;    /* its Host header */
    ngx_str_t                   service;       /* boost documents' default */
    ngx_shm_zone_t             *sampling_zone;
    ngx_http_xray_sampling_shm_t  *sampling_shm;

    /* the segments' aws object of each local rule, then of none */
    ngx_str_t                  *aws;
} ngx_http_xray_main_conf_t;


#define NGX_HTTP_XRAY_SAMPLING_LOCAL        0
#define NGX_HTTP_XRAY_SAMPLING_CENTRALIZED  1


typedef enum {
    NGX_HTTP_XRAY_CAPTURE_OFF = 0,
    NGX_HTTP_XRAY_CAPTURE_5XX,
    NGX_HTTP_XRAY_CAPTURE_4XX
} ngx_http_xray_capture_e;


typedef enum {
    NGX_HTTP_XRAY_IN_PROGRESS_OFF = 0,
    NGX_HTTP_XRAY_IN_PROGRESS_STREAM,
    NGX_HTTP_XRAY_IN_PROGRESS_ALWAYS
} ngx_http_xray_in_progress_e;


typedef struct {
    ngx_str_t                   key;
    ngx_http_complex_value_t    value;
    xray_annotation_kind_e      kind;
} ngx_http_xray_field_t;


/* trace-context formats: xray_trace_formats, xray_propagate */
#define NGX_HTTP_XRAY_FORMAT_X        0x01     /* X-Amzn-Trace-Id */
#define NGX_HTTP_XRAY_FORMAT_W        0x02     /* traceparent, tracestate */


typedef struct {
    ngx_flag_t                  enable;
    ngx_flag_t                  originate;
    ngx_http_complex_value_t   *trust_sampling;
    ngx_http_complex_value_t   *segment_name;
    ngx_str_t                   head;          /* of the segments, if the */
                                               /* name has no variables */
    ngx_array_t                *annotations;   /* ngx_http_xray_field_t */
    ngx_array_t                *metadata;      /* ngx_http_xray_field_t */
    ngx_array_t                *redact;        /* ngx_regex_t * */
    ngx_flag_t                  record_query;
    ngx_uint_t                  capture_errors;
    ngx_uint_t                  in_progress;
    ngx_flag_t                  cors;
    ngx_flag_t                  sse;
    ngx_http_complex_value_t   *trace_context; /* when no header came */
    ngx_uint_t                  formats;       /* NGX_HTTP_XRAY_FORMAT_* read */
    ngx_uint_t                  prefer;        /* the one that wins */
    ngx_uint_t                  propagate;     /* NGX_HTTP_XRAY_FORMAT_* out */
} ngx_http_xray_loc_conf_t;


/* a subrequest of a traced request: a call of its own, with its own id */
typedef struct ngx_http_xray_sub_s  ngx_http_xray_sub_t;

struct ngx_http_xray_sub_s {
    ngx_http_request_t         *request;
    ngx_http_xray_sub_t        *next;
    uint64_t                    started;       /* microseconds */
    ngx_str_t                   header;        /* its X-Amzn-Trace-Id */
    u_char                      id[XRAY_ID_LEN];
    u_char                      traceparent[XRAY_TRACEPARENT_LEN];
    unsigned                    has_traceparent:1;
};


/*
 * A request's trace context, kept small: with the forwarded header written
 * over the client's where it fits, a request takes no more of its pool than
 * the blocks plain nginx has already allocated for it have left.
 */

typedef struct {
    ngx_pool_cleanup_t          cleanup;       /* finds it after a redirect */

    /*
     * "Root=<trace id>;Parent=<upstream call's id>;...", forwarded upstream:
     * ngx_http_xray_trace_id() and ngx_http_xray_upstream_id() point into it
     */
    ngx_str_t                   header;

    u_char                      client_parent[XRAY_ID_LEN];
    uint64_t                    segment_id;    /* on first use; 0: not yet */
    u_char                     *traceparent;   /* on first use, or NULL */
    uint64_t                    decided;       /* microseconds: when the */
                                               /* upstream call may begin */
    xray_sampling_pick_t       *pick;          /* centralized rule, or NULL */
    uint32_t                    rule;

    unsigned                    traced:1;      /* has a trace context */
    unsigned                    has_parent:1;
    unsigned                    sampled:1;
    unsigned                    by_rule:1;     /* decided by rule, not client */
    unsigned                    requested:1;   /* client sent Sampled=? */
    unsigned                    originated:1;
    unsigned                    stream:1;      /* text/event-stream */
    unsigned                    recorded:1;    /* segment written */
    unsigned                    traceparent_tried:1;

    ngx_http_xray_sub_t        *subs;          /* in the order they began */
    ngx_http_xray_sub_t        *last_sub;
} ngx_http_xray_ctx_t;


/*
 * Who calls whom (no file calls back into one that calls it):
 *
 *   ngx_http_xray_module.c     -> context, filter, variables, segment,
 *                                 emitter, shm, status, sampling
 *   ngx_http_xray_variables.c  -> context
 *   ngx_http_xray_filter.c     -> context, segment, headers
 *   ngx_http_xray_segment.c    -> context, emitter, headers
 *   ngx_http_xray_context.c    -> shm, headers, sampling
 *   ngx_http_xray_sampling.c   -> headers
 *   ngx_http_xray_status.c, _emitter.c, _shm.c, _headers.c: the glue's leaves
 */


/* ngx_http_xray_context.c: the rewrite phase, the context, the RNG */
ngx_int_t ngx_http_xray_context_init(ngx_conf_t *cf);
ngx_int_t ngx_http_xray_rng_init(ngx_cycle_t *cycle);
ngx_http_xray_ctx_t *ngx_http_xray_find_ctx(ngx_http_request_t *r);
ngx_http_xray_ctx_t *ngx_http_xray_decide_late(ngx_http_request_t *r);
ngx_http_xray_sub_t *ngx_http_xray_get_sub(ngx_http_request_t *r);
u_char *ngx_http_xray_segment_id(ngx_http_xray_ctx_t *ctx, u_char *buf);
ngx_int_t ngx_http_xray_traceparent(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx);

/* XRAY_TRACE_ID_LEN and XRAY_ID_LEN bytes of a traced request's header */
#define ngx_http_xray_trace_id(ctx)                                          \
    ((ctx)->header.data + XRAY_HEADER_ROOT_AT)
#define ngx_http_xray_upstream_id(ctx)                                       \
    ((ctx)->header.data + XRAY_HEADER_PARENT_AT)

extern ngx_str_t     ngx_http_xray_header_name;
extern xray_rng_t    ngx_http_xray_rng;

/* ngx_http_xray_filter.c: the response header filter */
ngx_int_t ngx_http_xray_filter_init(ngx_conf_t *cf);

/* ngx_http_xray_variables.c: $xray_* */
ngx_int_t ngx_http_xray_add_variables(ngx_conf_t *cf);

/* ngx_http_xray_segment.c: the log phase */
ngx_int_t ngx_http_xray_segment_init(ngx_conf_t *cf);
ngx_int_t ngx_http_xray_segment_head(ngx_conf_t *cf,
    ngx_http_xray_loc_conf_t *conf, ngx_http_xray_loc_conf_t *prev);
ngx_int_t ngx_http_xray_segment_aws(ngx_conf_t *cf,
    ngx_http_xray_main_conf_t *xmcf);
void ngx_http_xray_in_progress(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx);

/* ngx_http_xray_emitter.c: the per-worker emitter */
ngx_int_t ngx_http_xray_emitter_init(ngx_cycle_t *cycle);
void ngx_http_xray_emitter_exit(ngx_cycle_t *cycle);
u_char *ngx_http_xray_emitter_doc(void);
void ngx_http_xray_emitter_queue(ngx_http_xray_main_conf_t *xmcf,
    u_char *doc, size_t len);

/* ngx_http_xray_headers.c: request and response header lists */
typedef struct {
    ngx_list_part_t            *part;          /* NULL: from the start */
    ngx_uint_t                  i;
} ngx_http_xray_cursor_t;

/* a request header's name as nginx keys it: lowercase, and its hash */
typedef struct {
    ngx_str_t                   lowcase;
    ngx_uint_t                  hash;
} ngx_http_xray_key_t;

ngx_table_elt_t *ngx_http_xray_header_find(ngx_list_t *list,
    ngx_str_t *name, ngx_http_xray_cursor_t *cur);
ngx_table_elt_t *ngx_http_xray_header_find_in(ngx_list_t *list,
    ngx_http_xray_key_t *key, ngx_http_xray_cursor_t *cur);
ngx_table_elt_t *ngx_http_xray_header_count(ngx_list_t *list,
    ngx_http_xray_key_t *key, ngx_uint_t *n, ngx_uint_t *differ);
void ngx_http_xray_key_init(ngx_http_xray_key_t *key);
ngx_table_elt_t *ngx_http_xray_header_add(ngx_http_request_t *r,
    ngx_list_t *list, ngx_str_t *name, ngx_str_t *value);
ngx_int_t ngx_http_xray_header_remove(ngx_http_request_t *r,
    ngx_list_t *list, ngx_str_t *name, ngx_table_elt_t **keep);
ngx_uint_t ngx_http_xray_header_underscored(ngx_list_t *list,
    ngx_str_t *name);

/*
 * The first request header named as key says, found as
 * ngx_http_xray_header_find_in() finds it, or NULL, in one walk of the
 * whole list: *n is how many there are, *differ whether any of the others
 * has another value than the first's.  The usual case, a name 8 to 16
 * bytes long found once or not at all, is walked inline here, comparing
 * the hash, the length and two words of the name; a repeated one, or
 * another name, by ngx_http_xray_header_count().
 */

static ngx_inline ngx_table_elt_t *
ngx_http_xray_header_first(ngx_list_t *list, ngx_http_xray_key_t *key,
    ngx_uint_t *n, ngx_uint_t *differ)
{
    size_t            len;
    uint64_t          k0, k1, w0, w1;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *first;

    len = key->lowcase.len;

    if (len < sizeof(uint64_t) || len > 2 * sizeof(uint64_t)) {
        return ngx_http_xray_header_count(list, key, n, differ);
    }

    ngx_memcpy(&k0, key->lowcase.data, sizeof(uint64_t));
    ngx_memcpy(&k1, key->lowcase.data + len - sizeof(uint64_t),
               sizeof(uint64_t));

    first = NULL;

    for (part = &list->part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {

            if (h[i].hash != key->hash || h[i].key.len != len) {
                continue;
            }

            ngx_memcpy(&w0, h[i].lowcase_key, sizeof(uint64_t));
            ngx_memcpy(&w1, h[i].lowcase_key + len - sizeof(uint64_t),
                       sizeof(uint64_t));

            if (((w0 ^ k0) | (w1 ^ k1)) != 0) {
                continue;
            }

            if (first != NULL) {
                return ngx_http_xray_header_count(list, key, n, differ);
            }

            first = &h[i];
        }
    }

    *n = (first != NULL);
    *differ = 0;

    return first;
}


/* ngx_http_xray_status.c */
ngx_int_t ngx_http_xray_status_handler(ngx_http_request_t *r);

/* ngx_http_xray_sampling.c: centralized sampling, its zone and poller */
ngx_int_t ngx_http_xray_sampling_conf(ngx_conf_t *cf,
    ngx_http_xray_main_conf_t *xmcf);
ngx_int_t ngx_http_xray_sampling_init(ngx_conf_t *cf);
ngx_int_t ngx_http_xray_sampling_init_process(ngx_cycle_t *cycle);
void ngx_http_xray_sampling_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_xray_sampling_decide(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx);

/* ngx_http_xray_shm.c */
ngx_int_t ngx_http_xray_shm_add(ngx_conf_t *cf,
    ngx_http_xray_main_conf_t *xmcf);
ngx_uint_t ngx_http_xray_reservoir_take(ngx_atomic_t *reservoir,
    uint32_t capacity, time_t now);


/*
 * A reservoir is one atomic word: the wall-clock second in the high half,
 * the number taken during that second in the low half.  One compare-and-swap
 * takes a slot; no lock is ever held.  The emission budget (xray_emit_limit)
 * is one more such word.
 */
#define NGX_HTTP_XRAY_RES_SHIFT  (sizeof(ngx_atomic_uint_t) * 4)
#define NGX_HTTP_XRAY_RES_MASK                                               \
    (((ngx_atomic_uint_t) 1 << NGX_HTTP_XRAY_RES_SHIFT) - 1)


/*
 * 1 when the reservoir already gave capacity slots in the current second:
 * ngx_http_xray_reservoir_take() would return 0, and a read says so with no
 * call.  0 does not mean a slot is free: take() decides.
 */

static ngx_inline ngx_uint_t
ngx_http_xray_reservoir_spent(ngx_atomic_t *reservoir, uint32_t capacity,
    time_t now)
{
    ngx_atomic_uint_t  word;

    word = *reservoir;

    return (word >> NGX_HTTP_XRAY_RES_SHIFT)
               == ((ngx_atomic_uint_t) now & NGX_HTTP_XRAY_RES_MASK)
           && (word & NGX_HTTP_XRAY_RES_MASK) >= capacity;
}


/* the core's allocator (xray_alloc_pt) from an nginx pool */

static ngx_inline void *
ngx_http_xray_pool_alloc(void *data, size_t size)
{
    return ngx_palloc((ngx_pool_t *) data, size);
}


#define ngx_http_xray_count(xmcf, c)                                         \
    (void) ngx_atomic_fetch_add(&(xmcf)->shm->counters[c], 1)

#define ngx_http_xray_count_n(xmcf, c, n)                                    \
    (void) ngx_atomic_fetch_add(&(xmcf)->shm->counters[c],                   \
                                (ngx_atomic_int_t) (n))


extern ngx_module_t  ngx_http_xray_module;


/*
 * The request's context (its main request's), or NULL: in the module's
 * slot, or, after an internal redirect cleared that, found again by
 * ngx_http_xray_find_ctx().  Inline: every phase asks for it.
 */

static ngx_inline ngx_http_xray_ctx_t *
ngx_http_xray_get_ctx(ngx_http_request_t *r)
{
    ngx_http_xray_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_xray_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {
        return ngx_http_xray_find_ctx(r);
    }

    return ctx;
}

#endif /* NGX_HTTP_XRAY_H */
