/*
 * Centralized sampling (xray_sampling centralized): the X-Ray service's
 * rules and quotas, fetched through the daemon's TCP proxy, decide which
 * requests are sampled.
 *
 * The state every worker decides with lives in a shared zone of its own
 * (src/xray_sampling_api.c keeps it in lock-free words).  One worker at a
 * time polls: it holds a lease in the zone (its pid and a heartbeat) that
 * any other worker takes over once it is free or stale, and that it gives
 * back when it exits or is told to quit.  The poller's calls are one POST
 * each on a non-blocking connection driven by the event loop, bounded by a
 * timer; what they cost when they fail is a counter and a log line.  A
 * request only reads the zone and counts in it.
 */

#include "ngx_http_xray.h"
#include "xray_http.h"
#include "xray_json.h"


#define NGX_HTTP_XRAY_TICK            1000     /* lease checks, ms */
#define NGX_HTTP_XRAY_LEASE_STALE     3000     /* a heartbeat older: free */
#define NGX_HTTP_XRAY_CALL_TIMEOUT    5000     /* connect + whole reply */
#define NGX_HTTP_XRAY_RULES_JITTER    5000
#define NGX_HTTP_XRAY_TARGETS_JITTER  100
#define NGX_HTTP_XRAY_PAGES_MAX       100      /* NextToken pages a fetch */
#define NGX_HTTP_XRAY_BODY_SIZE       65536    /* room for a request body */
#define NGX_HTTP_XRAY_HEAD_SIZE       1024     /* and its request line */

/* a reply's headers, its body, and a chunked body's framing */
#define NGX_HTTP_XRAY_REPLY_SIZE                                             \
    (XRAY_HTTP_HEADER_MAX + XRAY_SAMPLING_REPLY_MAX + 65536)

/* the same poll failure logged again at most after this many seconds */
#define NGX_HTTP_XRAY_POLL_LOG_EVERY  60


typedef struct {
    ngx_http_xray_main_conf_t     *xmcf;
    ngx_http_xray_sampling_shm_t  *shm;

    ngx_event_t                    tick;       /* the lease */
    ngx_event_t                    poll;       /* the next call is due */
    ngx_event_t                    deadline;   /* the call in flight */
    ngx_peer_connection_t          pc;
    ngx_log_t                      log;        /* the connection's: quiet */

    ngx_uint_t                     call;       /* ngx_http_xray_call_e */
    u_char                        *body;       /* NGX_HTTP_XRAY_BODY_SIZE */
    u_char                        *req;
    size_t                         req_len;
    size_t                         req_sent;
    u_char                        *reply;      /* NGX_HTTP_XRAY_REPLY_SIZE */
    size_t                         reply_len;

    xray_sampling_rules_t         *rules;      /* pages read so far */
    u_char                        *token;      /* XRAY_SAMPLING_TOKEN_MAX */
    size_t                         token_len;
    ngx_uint_t                     pages;

    xray_sampling_targets_t       *targets;
    xray_sampling_stat_t          *stats;      /* XRAY_SAMPLING_RULES_MAX */
    size_t                         nstats;
    size_t                         first;      /* of the call in flight */
    size_t                         batch;

    uint64_t                       rules_started;  /* epoch ms */

    ngx_msec_t                     next_rules;
    ngx_msec_t                     next_targets;
    ngx_msec_t                     interval;   /* targets: the service's */

    time_t                         logged;     /* the last failure's */
    uint32_t                       logged_crc; /* call, kind and message */

    unsigned                       owner:1;
    unsigned                       busy:1;
    unsigned                       connected:1;
    unsigned                       more:1;     /* a next page or batch */
    unsigned                       failing:1;  /* since the last success */
} ngx_http_xray_poller_t;


static ngx_int_t ngx_http_xray_sampling_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_xray_sampling_log_handler(ngx_http_request_t *r);
static int ngx_http_xray_sampling_attr(void *data, const char *key,
    size_t key_len, const unsigned char **value, size_t *value_len);
static void ngx_http_xray_tick_handler(ngx_event_t *ev);
static void ngx_http_xray_poll_handler(ngx_event_t *ev);
static void ngx_http_xray_deadline_handler(ngx_event_t *ev);
static void ngx_http_xray_poll_schedule(ngx_http_xray_poller_t *p);
static void ngx_http_xray_poll_start(ngx_http_xray_poller_t *p,
    ngx_uint_t call);
static void ngx_http_xray_poll_write(ngx_event_t *wev);
static void ngx_http_xray_poll_read(ngx_event_t *rev);
static void ngx_http_xray_poll_dummy(ngx_event_t *ev);
static void ngx_http_xray_poll_done(ngx_http_xray_poller_t *p,
    xray_http_reply_t *reply);
static void ngx_http_xray_rules_done(ngx_http_xray_poller_t *p,
    xray_http_reply_t *reply);
static void ngx_http_xray_targets_done(ngx_http_xray_poller_t *p,
    xray_http_reply_t *reply);
static void ngx_http_xray_poll_failed(ngx_http_xray_poller_t *p,
    ngx_uint_t kind, const char *fmt, ...);
static void ngx_http_xray_poll_close(ngx_http_xray_poller_t *p);
static void ngx_http_xray_poll_abort(ngx_http_xray_poller_t *p);
static void ngx_http_xray_fallback(ngx_http_xray_poller_t *p);
static void ngx_http_xray_lease_release(ngx_http_xray_poller_t *p);
static ngx_int_t ngx_http_xray_poller_buffers(ngx_http_xray_poller_t *p);
static ngx_msec_t ngx_http_xray_jitter(ngx_msec_t max);
static uint64_t ngx_http_xray_epoch_ms(void);


static ngx_http_xray_poller_t  *ngx_http_xray_poller;

static const char  *ngx_http_xray_call_names[] = {
    "GetSamplingRules", "SamplingTargets"
};


/*
 * The zone, added by init_main_conf when xray_sampling is centralized.  Its
 * name and size never change, so a reload keeps it: the ClientID, the rules
 * and quotas held, and the figures of the status page.
 */

ngx_int_t
ngx_http_xray_sampling_conf(ngx_conf_t *cf, ngx_http_xray_main_conf_t *xmcf)
{
    size_t     size;
    ngx_str_t  name = ngx_string("ngx_http_xray_sampling");

    size = ngx_align(sizeof(ngx_http_xray_sampling_shm_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    xmcf->sampling_zone = ngx_shared_memory_add(cf, &name, size,
                                                &ngx_http_xray_module);
    if (xmcf->sampling_zone == NULL) {
        return NGX_ERROR;
    }

    xmcf->sampling_zone->init = ngx_http_xray_sampling_init_zone;
    xmcf->sampling_zone->data = xmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_xray_sampling_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    xray_rng_t                     rng;
    ngx_slab_pool_t               *shpool;
    ngx_http_xray_main_conf_t     *xmcf;
    ngx_http_xray_sampling_shm_t  *shm;

    xmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* a reload: the previous cycle's state goes on */
        shm = data;

    } else if (shm_zone->shm.exists) {
        shm = shpool->data;

    } else {
        shm = ngx_slab_calloc(shpool, sizeof(ngx_http_xray_sampling_shm_t));
        if (shm == NULL) {
            return NGX_ERROR;
        }

        xray_sampling_shared_init(&shm->shared);

        /* one ClientID for the instance: the service grants quotas by it */

        if (xray_rng_seed(&rng) != 0) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "xray: RAND_bytes() failed to seed the "
                          "sampling ClientID");
            return NGX_ERROR;
        }

        xray_sampling_client_id(&rng, (char *) shm->client_id);

        shpool->data = shm;
    }

    xmcf->sampling_shm = shm;
    shm_zone->data = shm;

    return NGX_OK;
}


/*
 * After the locations are merged: the TCP proxy's address (the tcp part of
 * xray_daemon or AWS_XRAY_DAEMON_ADDRESS), resolved now as the UDP one is,
 * the ServiceName of boost statistics, and the log-phase handler that
 * reports anomalies.
 */

ngx_int_t
ngx_http_xray_sampling_init(ngx_conf_t *cf)
{
    u_char                     *p;
    char                        err[XRAY_DAEMON_ERR_LEN];
    size_t                      len;
    socklen_t                   socklen;
    ngx_str_t                   name;
    xray_daemon_addr_t          da;
    ngx_http_handler_pt        *h;
    struct sockaddr_storage     ss;
    ngx_http_xray_loc_conf_t   *xlcf;
    ngx_http_xray_main_conf_t  *xmcf;
    ngx_http_core_main_conf_t  *cmcf;

    xmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_xray_module);

    if (xmcf->sampling != NGX_HTTP_XRAY_SAMPLING_CENTRALIZED
        || !xmcf->enabled || xmcf->daemon.len == 0)
    {
        /* nothing traced, nothing to poll for */
        return NGX_OK;
    }

    if (xray_daemon_addr_parse((char *) xmcf->daemon.data, xmcf->daemon.len,
                               &da, err, sizeof(err))
        != 0
        || xray_daemon_resolve(da.tcp.host, da.tcp.host_len, da.tcp.port,
                               &ss, &socklen, err, sizeof(err))
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"xray_sampling centralized\": invalid TCP "
                           "address of the daemon in \"%V\": %s",
                           &xmcf->daemon, err);
        return NGX_ERROR;
    }

    xmcf->proxy_addr.sockaddr = ngx_pcalloc(cf->pool, socklen);
    if (xmcf->proxy_addr.sockaddr == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(xmcf->proxy_addr.sockaddr, &ss, socklen);
    xmcf->proxy_addr.socklen = socklen;

    /* the Host header, as written: "[::1]:2000" keeps its brackets */

    len = da.tcp.host_len + sizeof("[]:65535");

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    xmcf->proxy_host.data = p;

    if (ngx_strlchr((u_char *) da.tcp.host,
                    (u_char *) da.tcp.host + da.tcp.host_len, ':'))
    {
        p = ngx_sprintf(p, "[%*s]:%ui", da.tcp.host_len, da.tcp.host,
                        (ngx_uint_t) da.tcp.port);

    } else {
        p = ngx_sprintf(p, "%*s:%ui", da.tcp.host_len, da.tcp.host,
                        (ngx_uint_t) da.tcp.port);
    }

    xmcf->proxy_host.len = p - xmcf->proxy_host.data;
    *p = '\0';

    xmcf->proxy_addr.name = xmcf->proxy_host;

    /*
     * boost statistics name one service a call: the http level's segment
     * name when it is a constant, else the module's default name
     */

    xlcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_xray_module);
    ngx_str_set(&xmcf->service, XRAY_DEFAULT_NAME);

    if (xlcf->segment_name && xlcf->segment_name->lengths == NULL) {
        name = xlcf->segment_name->value;

        p = ngx_pnalloc(cf->pool, XRAY_SAMPLING_SERVICE_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = xray_name_sanitize(p, XRAY_SAMPLING_SERVICE_LEN, name.data,
                                 name.len);

        if (len != 0 && len != XRAY_JSON_ERROR) {
            xmcf->service.data = p;
            xmcf->service.len = len;
        }
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_xray_sampling_log_handler;

    return NGX_OK;
}


/* --- the request's side: shared memory reads and atomic counters --- */


/*
 * Decides with the centralized rules when some are live and one matches:
 * NGX_OK with ctx->sampled and ctx->pick set, else NGX_DECLINED (the local
 * rules decide).
 */

ngx_int_t
ngx_http_xray_sampling_decide(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx)
{
    size_t                         len;
    u_char                         name[XRAY_NAME_MAX * 4];
    uint64_t                       now;
    ngx_str_t                      value;
    ngx_time_t                    *tp;
    xray_sampling_pick_t           pick, *pk;
    xray_sampling_request_t        req;
    xray_sampling_decision_e       d;
    ngx_http_xray_loc_conf_t      *xlcf;
    ngx_http_xray_main_conf_t     *xmcf;
    ngx_http_xray_sampling_shm_t  *shm;

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);
    shm = xmcf->sampling_shm;

    if (shm == NULL || !xray_sampling_has_rules(&shm->shared)) {
        return NGX_DECLINED;
    }

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    ngx_memzero(&req, sizeof(xray_sampling_request_t));

    /* ServiceName: the name the segment will have */

    len = 0;

    if (xlcf->segment_name) {
        if (ngx_http_complex_value(r, xlcf->segment_name, &value) != NGX_OK) {
            return NGX_DECLINED;
        }

        len = xray_name_sanitize(name, sizeof(name), value.data, value.len);

        if (len == XRAY_JSON_ERROR) {
            len = 0;
        }
    }

    if (len) {
        req.service_name = name;
        req.service_name_len = len;

    } else {
        req.service_name = (u_char *) XRAY_DEFAULT_NAME;
        req.service_name_len = sizeof(XRAY_DEFAULT_NAME) - 1;
    }

    req.host = r->headers_in.server.data;
    req.host_len = r->headers_in.server.len;
    req.method = r->method_name.data;
    req.method_len = r->method_name.len;
    req.path = r->uri.data;
    req.path_len = r->uri.len;
    req.attr = ngx_http_xray_sampling_attr;
    req.attr_data = r;

    if (xray_sampling_lookup(&shm->shared, &req, &pick) != 0) {
        return NGX_DECLINED;
    }

    pk = ngx_palloc(r->pool, sizeof(xray_sampling_pick_t));
    if (pk == NULL) {
        return NGX_DECLINED;
    }

    *pk = pick;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    d = xray_sampling_decide(&shm->shared, pk, now,
                             (uint32_t) xray_rng_next(&ngx_http_xray_rng));

    ctx->pick = pk;
    ctx->sampled = (d != XRAY_SAMPLING_NO);

    return NGX_OK;
}


/* Attributes: the request header of that name, the first of them */

static int
ngx_http_xray_sampling_attr(void *data, const char *key, size_t key_len,
    const unsigned char **value, size_t *value_len)
{
    ngx_http_request_t  *r = data;

    ngx_str_t         name;
    ngx_table_elt_t  *h;

    name.data = (u_char *) key;
    name.len = key_len;

    h = ngx_http_xray_header_find(&r->headers_in.headers, &name, NULL);

    if (h == NULL) {
        return 0;
    }

    *value = h->value.data;
    *value_len = h->value.len;

    return 1;
}


/* at the end of a request of a rule with a boost: was it an anomaly */

static ngx_int_t
ngx_http_xray_sampling_log_handler(ngx_http_request_t *r)
{
    ngx_int_t                   anomaly;
    ngx_uint_t                  status;
    ngx_msec_int_t              ms;
    ngx_time_t                 *tp;
    ngx_http_xray_ctx_t        *ctx;
    ngx_http_xray_main_conf_t  *xmcf;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx == NULL || ctx->pick == NULL || !ctx->pick->has_boost) {
        return NGX_OK;
    }

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);

    status = r->err_status ? r->err_status : r->headers_out.status;
    anomaly = (status >= 500);

    if (!anomaly && xmcf->anomaly_latency) {
        tp = ngx_timeofday();
        ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                               + (tp->msec - r->start_msec));

        anomaly = (ms >= (ngx_msec_int_t) xmcf->anomaly_latency);
    }

    xray_sampling_outcome(&xmcf->sampling_shm->shared, ctx->pick,
                          (int) anomaly, (int) ctx->sampled);

    return NGX_OK;
}


/* --- the poller --- */


ngx_int_t
ngx_http_xray_sampling_init_process(ngx_cycle_t *cycle)
{
    ngx_http_xray_poller_t     *p;
    ngx_http_xray_main_conf_t  *xmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    xmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_xray_module);

    if (xmcf == NULL || xmcf->sampling_shm == NULL
        || xmcf->proxy_addr.sockaddr == NULL)
    {
        return NGX_OK;
    }

    p = ngx_pcalloc(cycle->pool, sizeof(ngx_http_xray_poller_t));
    if (p == NULL) {
        return NGX_ERROR;
    }

    p->xmcf = xmcf;
    p->shm = xmcf->sampling_shm;
    p->interval = xmcf->targets_interval;

    /* connect() failures are the poller's to log, once in a while */
    p->log = *cycle->log;

    if (p->log.log_level > NGX_LOG_CRIT) {
        p->log.log_level = NGX_LOG_CRIT;
    }

    p->tick.handler = ngx_http_xray_tick_handler;
    p->tick.data = p;
    p->tick.log = cycle->log;
    p->tick.cancelable = 1;

    p->poll.handler = ngx_http_xray_poll_handler;
    p->poll.data = p;
    p->poll.log = cycle->log;
    p->poll.cancelable = 1;

    p->deadline.handler = ngx_http_xray_deadline_handler;
    p->deadline.data = p;
    p->deadline.log = cycle->log;
    p->deadline.cancelable = 1;

    ngx_http_xray_poller = p;

    /* the first worker to look takes the lease */
    ngx_add_timer(&p->tick, 1);

    return NGX_OK;
}


void
ngx_http_xray_sampling_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_xray_poller_t  *p;

    p = ngx_http_xray_poller;

    if (p == NULL) {
        return;
    }

    ngx_http_xray_poll_abort(p);
    ngx_http_xray_lease_release(p);

    ngx_http_xray_poller = NULL;
}


/*
 * Every second: the lease.  Its holder beats; anyone takes it when it is
 * free or its holder's heartbeat is stale.  A worker told to quit gives it
 * back at once, so that a reload's new workers take over.
 */

static void
ngx_http_xray_tick_handler(ngx_event_t *ev)
{
    ngx_http_xray_poller_t  *p = ev->data;

    ngx_msec_t                     now;
    ngx_atomic_uint_t              lease, beat;
    ngx_http_xray_sampling_shm_t  *shm;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_http_xray_poll_abort(p);
        ngx_http_xray_lease_release(p);
        return;
    }

    shm = p->shm;
    now = ngx_current_msec;

    beat = shm->heartbeat;
    lease = shm->lease;

    if (lease == (ngx_atomic_uint_t) ngx_pid) {
        shm->heartbeat = now;

    } else if ((lease == 0
                || (ngx_msec_int_t) (now - beat) > NGX_HTTP_XRAY_LEASE_STALE)
               && ngx_http_xray_poller_buffers(p) == NGX_OK
               && ngx_atomic_cmp_set(&shm->lease, lease, ngx_pid))
    {
        shm->heartbeat = now;

        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                       "xray: sampling poller taken over from %uA", lease);

    } else if (p->owner) {
        /* this worker was taken for dead: the other one polls now */
        ngx_http_xray_poll_abort(p);
        p->owner = 0;

        if (p->poll.timer_set) {
            ngx_del_timer(&p->poll);
        }
    }

    if (shm->lease == (ngx_atomic_uint_t) ngx_pid && !p->owner) {
        p->owner = 1;
        p->next_rules = now;
        p->next_targets = now + p->interval;
        ngx_http_xray_poll_schedule(p);
    }

    if (p->owner) {
        ngx_http_xray_fallback(p);
    }

    ngx_add_timer(ev, NGX_HTTP_XRAY_TICK);
}


/*
 * The calls' buffers (about 1.4 MB, most of it room for the largest reply),
 * made once, by the first worker that polls, and kept for its lifetime
 */

static ngx_int_t
ngx_http_xray_poller_buffers(ngx_http_xray_poller_t *p)
{
    ngx_pool_t  *pool;

    if (p->reply != NULL) {
        return NGX_OK;
    }

    pool = ngx_cycle->pool;

    /* after a failure, only what is missing is asked for again */

#define ngx_http_xray_buffer(field, size)                                    \
    if (p->field == NULL) {                                                 \
        p->field = ngx_palloc(pool, size);                                  \
        if (p->field == NULL) {                                             \
            return NGX_ERROR;                                               \
        }                                                                   \
    }

    ngx_http_xray_buffer(body, NGX_HTTP_XRAY_BODY_SIZE);
    ngx_http_xray_buffer(req,
                         NGX_HTTP_XRAY_HEAD_SIZE + NGX_HTTP_XRAY_BODY_SIZE);
    ngx_http_xray_buffer(token, XRAY_SAMPLING_TOKEN_MAX);
    ngx_http_xray_buffer(rules, sizeof(xray_sampling_rules_t));
    ngx_http_xray_buffer(targets, sizeof(xray_sampling_targets_t));
    ngx_http_xray_buffer(stats, XRAY_SAMPLING_RULES_MAX
                                * sizeof(xray_sampling_stat_t));

#undef ngx_http_xray_buffer

    /* set last: it says the others are there */
    p->reply = ngx_palloc(pool, NGX_HTTP_XRAY_REPLY_SIZE);

    if (p->reply == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_xray_lease_release(ngx_http_xray_poller_t *p)
{
    if (p->owner || p->shm->lease == (ngx_atomic_uint_t) ngx_pid) {
        (void) ngx_atomic_cmp_set(&p->shm->lease, ngx_pid, 0);
    }

    p->owner = 0;

    if (p->poll.timer_set) {
        ngx_del_timer(&p->poll);
    }
}


/* arms the poll timer for the next call due */

static void
ngx_http_xray_poll_schedule(ngx_http_xray_poller_t *p)
{
    ngx_msec_t      due;
    ngx_msec_int_t  delay;

    if (!p->owner || p->busy) {
        return;
    }

    due = p->more ? ngx_current_msec : p->next_rules;

    if (!p->more
        && xray_sampling_has_rules(&p->shm->shared)
        && (ngx_msec_int_t) (p->next_targets - due) < 0)
    {
        due = p->next_targets;
    }

    delay = (ngx_msec_int_t) (due - ngx_current_msec);

    if (delay < 1) {
        delay = 1;
    }

    if (p->poll.timer_set) {
        ngx_del_timer(&p->poll);
    }

    ngx_add_timer(&p->poll, (ngx_msec_t) delay);
}


static void
ngx_http_xray_poll_handler(ngx_event_t *ev)
{
    ngx_http_xray_poller_t  *p = ev->data;

    ngx_msec_t  now;

    if (!p->owner || p->busy || ngx_exiting) {
        return;
    }

    if (p->more) {
        /* a call's next page or batch: never from inside the last one */
        p->more = 0;
        ngx_http_xray_poll_start(p, p->call);
        return;
    }

    now = ngx_current_msec;

    if ((ngx_msec_int_t) (now - p->next_rules) >= 0) {
        p->rules->nrules = 0;
        p->rules->skipped = 0;
        p->rules->pages = 0;
        p->token_len = 0;
        p->pages = 0;
        p->rules_started = ngx_http_xray_epoch_ms();

        ngx_http_xray_poll_start(p, NGX_HTTP_XRAY_CALL_RULES);
        return;
    }

    if (xray_sampling_has_rules(&p->shm->shared)
        && (ngx_msec_int_t) (now - p->next_targets) >= 0)
    {
        /* every rule that saw requests: in calls of 25 at most */
        p->nstats = xray_sampling_collect(&p->shm->shared, p->stats,
                                          XRAY_SAMPLING_RULES_MAX);
        p->first = 0;

        ngx_http_xray_poll_start(p, NGX_HTTP_XRAY_CALL_TARGETS);
        return;
    }

    ngx_http_xray_poll_schedule(p);
}


/* writes one call's request and connects; the rest is the event loop's */

static void
ngx_http_xray_poll_start(ngx_http_xray_poller_t *p, ngx_uint_t call)
{
    int                         n, len;
    ngx_int_t                   rc;
    const char                 *path;
    ngx_connection_t           *c;
    ngx_http_xray_main_conf_t  *xmcf;

    xmcf = p->xmcf;
    p->call = call;

    if (call == NGX_HTTP_XRAY_CALL_RULES) {
        path = "/GetSamplingRules";
        len = xray_sampling_rules_request((char *) p->body,
                                          NGX_HTTP_XRAY_BODY_SIZE,
                                          (char *) p->token, p->token_len);

    } else {
        path = "/SamplingTargets";
        p->batch = p->nstats - p->first;

        if (p->batch > XRAY_SAMPLING_STATS_MAX) {
            p->batch = XRAY_SAMPLING_STATS_MAX;
        }

        len = xray_sampling_targets_request((char *) p->body,
                                            NGX_HTTP_XRAY_BODY_SIZE,
                                            (char *) p->shm->client_id,
                                            (uint64_t) ngx_time(),
                                            p->stats + p->first, p->batch,
                                            (char *) xmcf->service.data,
                                            xmcf->service.len);
    }

    n = -1;

    if (len >= 0) {
        n = xray_http_request((char *) p->req,
                              NGX_HTTP_XRAY_HEAD_SIZE
                              + NGX_HTTP_XRAY_BODY_SIZE,
                              path, (char *) xmcf->proxy_host.data,
                              (char *) p->body, (size_t) len);
    }

    p->busy = 1;
    p->connected = 0;
    p->reply_len = 0;
    p->req_sent = 0;

    if (n < 0) {
        /* cannot happen with the buffers' sizes: counted all the same */
        ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_BAD_REPLY,
                                  "request larger than its buffer");
        return;
    }

    p->req_len = (size_t) n;

    ngx_memzero(&p->pc, sizeof(ngx_peer_connection_t));

    p->pc.sockaddr = xmcf->proxy_addr.sockaddr;
    p->pc.socklen = xmcf->proxy_addr.socklen;
    p->pc.name = &xmcf->proxy_host;
    p->pc.get = ngx_event_get_peer;
    p->pc.log = &p->log;
    p->pc.log_error = NGX_ERROR_INFO;

    ngx_add_timer(&p->deadline, NGX_HTTP_XRAY_CALL_TIMEOUT);

    rc = ngx_event_connect_peer(&p->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        p->pc.connection = NULL;
        ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CONNECT,
                                  "connect() failed");
        return;
    }

    c = p->pc.connection;
    c->data = p;
    c->log = &p->log;
    c->read->log = &p->log;
    c->write->log = &p->log;
    c->read->handler = ngx_http_xray_poll_read;
    c->write->handler = ngx_http_xray_poll_write;

    if (rc == NGX_OK) {
        p->connected = 1;
        ngx_http_xray_poll_write(c->write);
    }

    /* NGX_AGAIN: the write event says when the connection is made */
}


static void
ngx_http_xray_poll_write(ngx_event_t *wev)
{
    int                      err;
    u_char                  *last;
    u_char                   errstr[NGX_MAX_ERROR_STR];
    ssize_t                  n;
    socklen_t                len;
    ngx_connection_t        *c;
    ngx_http_xray_poller_t  *p;

    c = wev->data;
    p = c->data;

    if (!p->connected) {
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            last = ngx_strerror(err, errstr, sizeof(errstr));
            ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CONNECT,
                                      "connect() failed (%d: %*s)", err,
                                      (size_t) (last - errstr), errstr);
            return;
        }

        p->connected = 1;
    }

    while (p->req_sent < p->req_len) {
        n = c->send(c, p->req + p->req_sent, p->req_len - p->req_sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CLOSED,
                                          "write event failed");
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CLOSED,
                                      "send() failed");
            return;
        }

        p->req_sent += n;
    }

    /* all sent: now the reply */

    wev->handler = ngx_http_xray_poll_dummy;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CLOSED,
                                  "read event failed");
        return;
    }

    if (c->read->ready) {
        ngx_http_xray_poll_read(c->read);
    }
}


static void
ngx_http_xray_poll_read(ngx_event_t *rev)
{
    char                     err[XRAY_HTTP_ERR_LEN];
    ssize_t                  n;
    ngx_uint_t               kind;
    xray_http_rc_e           rc;
    ngx_connection_t        *c;
    xray_http_reply_t        reply;
    ngx_http_xray_poller_t  *p;

    c = rev->data;
    p = c->data;

    if (p->req_sent < p->req_len) {
        /* the peer spoke first, or closed: the write side will tell */
        if (!p->connected) {
            ngx_http_xray_poll_write(c->write);
        }

        return;
    }

    for ( ;; ) {

        if (p->reply_len == NGX_HTTP_XRAY_REPLY_SIZE) {
            ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_TOO_LARGE,
                                      "reply over %uz bytes",
                                      (size_t) NGX_HTTP_XRAY_REPLY_SIZE);
            return;
        }

        n = c->recv(c, p->reply + p->reply_len,
                    NGX_HTTP_XRAY_REPLY_SIZE - p->reply_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CLOSED,
                                          "read event failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CLOSED,
                                      "recv() failed");
            return;
        }

        p->reply_len += n;

        rc = xray_http_reply_parse((char *) p->reply, p->reply_len, n == 0,
                                   XRAY_SAMPLING_REPLY_MAX, &reply, err);

        if (reply.status == 200 && p->call == NGX_HTTP_XRAY_CALL_TARGETS) {
            /*
             * the service answered: it took this batch's statistics, even
             * if the body turns out bad, too large or never ends; given
             * back, they would be counted twice
             */
            p->first += p->batch;
            p->batch = 0;
        }

        if (rc == XRAY_HTTP_DONE) {
            ngx_http_xray_poll_done(p, &reply);
            return;
        }

        if (rc == XRAY_HTTP_ERROR) {

            if (ngx_strstr(err, "connection closed")) {
                kind = NGX_HTTP_XRAY_POLL_CLOSED;

            } else if (ngx_strstr(err, " over ")) {
                kind = NGX_HTTP_XRAY_POLL_TOO_LARGE;

            } else {
                kind = NGX_HTTP_XRAY_POLL_BAD_REPLY;
            }

            ngx_http_xray_poll_failed(p, kind, "%s", err);
            return;
        }

        if (n == 0) {
            ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_CLOSED,
                                      "connection closed");
            return;
        }
    }
}


static void
ngx_http_xray_poll_dummy(ngx_event_t *ev)
{
}


static void
ngx_http_xray_deadline_handler(ngx_event_t *ev)
{
    ngx_http_xray_poller_t  *p = ev->data;

    if (!p->busy) {
        return;
    }

    ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_TIMEOUT,
                              "no complete reply within %d ms (%s)",
                              NGX_HTTP_XRAY_CALL_TIMEOUT,
                              !p->connected ? "not connected"
                              : p->reply_len ? "part of a reply received"
                                             : "nothing received");
}


static void
ngx_http_xray_poll_done(ngx_http_xray_poller_t *p, xray_http_reply_t *reply)
{
    ngx_http_xray_poll_close(p);

    if (reply->status != 200) {
        ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_HTTP_STATUS,
                                  "HTTP status %d", reply->status);
        return;
    }

    if (p->call == NGX_HTTP_XRAY_CALL_RULES) {
        ngx_http_xray_rules_done(p, reply);

    } else {
        /* its batch was counted as reported when its status came */
        ngx_http_xray_targets_done(p, reply);
    }
}


static void
ngx_http_xray_rules_done(ngx_http_xray_poller_t *p, xray_http_reply_t *reply)
{
    int                            live;
    char                           err[XRAY_SAMPLING_ERR_LEN];
    ngx_time_t                    *tp;
    ngx_http_xray_sampling_shm_t  *shm;

    shm = p->shm;

    if (xray_sampling_rules_parse(p->rules, reply->body, reply->body_len,
                                  (char *) p->token, &p->token_len, err)
        != 0)
    {
        ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_BAD_REPLY, "%s", err);
        return;
    }

    if (p->token_len) {
        if (++p->pages == NGX_HTTP_XRAY_PAGES_MAX) {
            ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_BAD_REPLY,
                                      "more than %d pages of rules",
                                      NGX_HTTP_XRAY_PAGES_MAX);
            return;
        }

        /* the next page, on a new connection */
        p->more = 1;
        ngx_http_xray_poll_schedule(p);
        return;
    }

    xray_sampling_rules_sort(p->rules);

    tp = ngx_timeofday();
    live = xray_sampling_has_rules(&shm->shared);

    xray_sampling_publish(&shm->shared, p->rules,
                          (uint64_t) tp->sec * 1000 + tp->msec);

    shm->rules_fetched = p->rules_started;
    shm->last_success[NGX_HTTP_XRAY_CALL_RULES] = tp->sec;
    p->failing = 0;

    if (!live) {
        (void) ngx_atomic_fetch_add(&shm->to_central, 1);

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "xray: sampling: %uD centralized rule(s) from %V "
                      "decide now", p->rules->nrules, &p->xmcf->proxy_host);
    }

    p->next_rules = ngx_current_msec + p->xmcf->rules_interval
                    + ngx_http_xray_jitter(NGX_HTTP_XRAY_RULES_JITTER);

    if (!live) {
        p->next_targets = ngx_current_msec + p->interval
                          + ngx_http_xray_jitter(NGX_HTTP_XRAY_TARGETS_JITTER);
    }

    ngx_http_xray_poll_schedule(p);
}


static void
ngx_http_xray_targets_done(ngx_http_xray_poller_t *p,
    xray_http_reply_t *reply)
{
    char                           err[XRAY_SAMPLING_ERR_LEN];
    uint32_t                       i, interval;
    ngx_http_xray_sampling_shm_t  *shm;

    shm = p->shm;

    if (xray_sampling_targets_parse(p->targets, reply->body, reply->body_len,
                                    err)
        != 0)
    {
        ngx_http_xray_poll_failed(p, NGX_HTTP_XRAY_POLL_BAD_REPLY, "%s", err);
        return;
    }

    xray_sampling_apply_targets(&shm->shared, p->targets);

    shm->last_success[NGX_HTTP_XRAY_CALL_TARGETS] = ngx_time();
    p->failing = 0;

    /* the service's Interval, the shortest it gave, wins */

    interval = 0;

    for (i = 0; i < p->targets->ntargets; i++) {
        if (p->targets->targets[i].has_interval
            && p->targets->targets[i].interval > 0
            && (interval == 0 || p->targets->targets[i].interval < interval))
        {
            interval = p->targets->targets[i].interval;
        }
    }

    if (interval) {
        p->interval = (ngx_msec_t) interval * 1000;
    }

    /*
     * rules changed since their fetch began: fetch them again now (to the
     * millisecond: a change in the same second as the fetch counts)
     */

    if (p->targets->has_last_modification
        && p->targets->last_modification_ms > shm->rules_fetched)
    {
        p->next_rules = ngx_current_msec;
    }

    if (p->first < p->nstats) {
        p->more = 1;
        ngx_http_xray_poll_schedule(p);
        return;
    }

    p->next_targets = ngx_current_msec + p->interval
                      + ngx_http_xray_jitter(NGX_HTTP_XRAY_TARGETS_JITTER);

    ngx_http_xray_poll_schedule(p);
}


/*
 * A call failed: counted, logged, its statistics kept for the next report,
 * tried again at the targets cadence.  The log line is a clear one for each
 * new failure; the same failure again, call after call, is logged once a
 * minute at most.
 */

static void
ngx_http_xray_poll_failed(ngx_http_xray_poller_t *p, ngx_uint_t kind,
    const char *fmt, ...)
{
    u_char                        *last, *text;
    u_char                         msg[NGX_MAX_ERROR_STR];
    va_list                        args;
    uint32_t                       crc;
    ngx_msec_t                     retry;
    ngx_http_xray_sampling_shm_t  *shm;

    shm = p->shm;

    ngx_http_xray_poll_close(p);
    p->more = 0;

    (void) ngx_atomic_fetch_add(&shm->errors[p->call][kind], 1);

    if (p->call == NGX_HTTP_XRAY_CALL_TARGETS && p->first < p->nstats) {
        xray_sampling_restore(&shm->shared, p->stats + p->first,
                              p->nstats - p->first);
        p->nstats = 0;
    }

    /* what identifies the failure: the call, the kind, the message */
    text = ngx_sprintf(msg, "%ui %ui ", p->call, kind);

    va_start(args, fmt);
    last = ngx_vslprintf(text, msg + sizeof(msg), fmt, args);
    va_end(args);

    crc = ngx_crc32_short(msg, last - msg);

    if (!p->failing
        || crc != p->logged_crc
        || ngx_time() - p->logged >= NGX_HTTP_XRAY_POLL_LOG_EVERY)
    {
        p->failing = 1;
        p->logged = ngx_time();
        p->logged_crc = crc;

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "xray: sampling: %s call to the daemon at %V failed: "
                      "%*s (counted; the same failure is logged again at "
                      "most every %d seconds)",
                      ngx_http_xray_call_names[p->call],
                      &p->xmcf->proxy_host, (size_t) (last - text), text,
                      NGX_HTTP_XRAY_POLL_LOG_EVERY);
    }

    retry = ngx_current_msec + p->interval
            + ngx_http_xray_jitter(NGX_HTTP_XRAY_TARGETS_JITTER);

    if (p->call == NGX_HTTP_XRAY_CALL_RULES) {
        p->next_rules = retry;

        /* a failed refresh does not hold up the reports */
        if ((ngx_msec_int_t) (p->next_targets - retry) >= 0) {
            p->next_targets = ngx_current_msec + 1;
        }

    } else {
        p->next_targets = retry;
    }

    ngx_http_xray_fallback(p);
    ngx_http_xray_poll_schedule(p);
}


static void
ngx_http_xray_poll_close(ngx_http_xray_poller_t *p)
{
    if (p->deadline.timer_set) {
        ngx_del_timer(&p->deadline);
    }

    if (p->pc.connection) {
        ngx_close_connection(p->pc.connection);
        p->pc.connection = NULL;
    }

    p->busy = 0;
}


/*
 * The poller stops (its worker exits, or lost the lease): statistics taken
 * for a report not made yet go back to the zone, for the next poller.
 */

static void
ngx_http_xray_poll_abort(ngx_http_xray_poller_t *p)
{
    ngx_http_xray_poll_close(p);

    if (p->call == NGX_HTTP_XRAY_CALL_TARGETS && p->first < p->nstats) {
        xray_sampling_restore(&p->shm->shared, p->stats + p->first,
                              p->nstats - p->first);
    }

    p->nstats = 0;
    p->first = 0;
    p->more = 0;
}


/*
 * The centralized rules are withdrawn once the proxy has not answered for
 * the fallback time: the local rules decide until it answers again.
 */

static void
ngx_http_xray_fallback(ngx_http_xray_poller_t *p)
{
    time_t                         last;
    ngx_http_xray_sampling_shm_t  *shm;

    shm = p->shm;

    if (!xray_sampling_has_rules(&shm->shared)) {
        return;
    }

    last = ngx_max((time_t) shm->last_success[NGX_HTTP_XRAY_CALL_RULES],
                   (time_t) shm->last_success[NGX_HTTP_XRAY_CALL_TARGETS]);

    if ((ngx_msec_t) (ngx_time() - last) * 1000 < p->xmcf->fallback) {
        return;
    }

    xray_sampling_withdraw(&shm->shared);
    (void) ngx_atomic_fetch_add(&shm->to_local, 1);

    /* no targets without rules: the rules are asked for until they come */
    p->next_rules = ngx_current_msec;
    ngx_http_xray_poll_schedule(p);

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "xray: sampling: no answer from the daemon at %V for "
                  "%T s: the local rules decide again",
                  &p->xmcf->proxy_host, ngx_time() - last);
}


static ngx_msec_t
ngx_http_xray_jitter(ngx_msec_t max)
{
    return (ngx_msec_t) (xray_rng_next(&ngx_http_xray_rng) % (max + 1));
}


static uint64_t
ngx_http_xray_epoch_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
