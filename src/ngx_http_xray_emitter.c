/*
 * The per-worker emitter's nginx side: the UDP socket to the X-Ray daemon
 * (src/xray_emit.c batches datagrams on it), the document buffer segments
 * are written into, the flush timer, the flush at worker exit, and the
 * counters of what was sent and dropped.  Nothing here blocks: what the
 * kernel will not take at once is dropped and counted.
 */

#include "ngx_http_xray.h"


/* error logs about the daemon, at most one a worker in this many seconds */
#define NGX_HTTP_XRAY_LOG_EVERY       60


static void ngx_http_xray_flush_handler(ngx_event_t *ev);
static void ngx_http_xray_flush(ngx_http_xray_main_conf_t *xmcf);


static xray_emitter_t  *ngx_http_xray_emitter;
static u_char          *ngx_http_xray_doc;      /* XRAY_DOC_MAX bytes */
static ngx_event_t      ngx_http_xray_flush_event;
static time_t           ngx_http_xray_logged;


/*
 * Where to write a document of up to XRAY_DOC_MAX bytes: in the emitter's
 * queue when it has the room (queueing it then copies nothing), else the
 * document buffer; NULL: no emitter.  Good until the next queue.
 */

u_char *
ngx_http_xray_emitter_doc(void)
{
    u_char  *p;

    if (ngx_http_xray_emitter == NULL) {
        return NULL;
    }

    p = xray_emitter_place(ngx_http_xray_emitter, XRAY_DOC_MAX);

    return p ? p : ngx_http_xray_doc;
}


void
ngx_http_xray_emitter_queue(ngx_http_xray_main_conf_t *xmcf, u_char *doc,
    size_t len)
{
    size_t  pending;

    /* the instance's budget: a per-second window shared by the workers */

    if (xmcf->emit_limit
        && !ngx_http_xray_reservoir_take(&xmcf->shm->emitted,
                                         (uint32_t) xmcf->emit_limit,
                                         ngx_time()))
    {
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_DROPPED_LIMIT);
        return;
    }

    (void) xray_emitter_queue(ngx_http_xray_emitter, doc, len);

    pending = xray_emitter_pending(ngx_http_xray_emitter);

    /* a full batch goes at once; so does one the emitter had to flush */
    if (pending == 0 || pending >= xmcf->batch) {
        ngx_http_xray_flush(xmcf);
        return;
    }

    if (!ngx_http_xray_flush_event.timer_set) {
        ngx_add_timer(&ngx_http_xray_flush_event, xmcf->flush);
    }
}


static void
ngx_http_xray_flush_handler(ngx_event_t *ev)
{
    ngx_http_xray_flush(ev->data);
}


static void
ngx_http_xray_flush(ngx_http_xray_main_conf_t *xmcf)
{
    ngx_uint_t         dropped;
    xray_emit_stats_t  st;

    if (ngx_http_xray_emitter == NULL) {
        return;
    }

    xray_emitter_flush(ngx_http_xray_emitter);
    xray_emitter_take_stats(ngx_http_xray_emitter, &st);

    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_DOCS_QUEUED, st.queued);
    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_DOCS_SENT, st.sent);
    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_BYTES_SENT, st.sent_bytes);
    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_DROPPED_FULL, st.dropped_full);
    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_DROPPED_REFUSED,
                          st.dropped_refused);
    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_DROPPED_TOO_LARGE,
                          st.dropped_too_large);
    ngx_http_xray_count_n(xmcf, NGX_HTTP_XRAY_DROPPED_OTHER,
                          st.dropped_other);

    dropped = st.dropped_full + st.dropped_refused + st.dropped_too_large
              + st.dropped_other;

    if (dropped && ngx_time() - ngx_http_xray_logged
                   >= NGX_HTTP_XRAY_LOG_EVERY)
    {
        ngx_http_xray_logged = ngx_time();

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, st.last_errno,
                      "xray: %ui segment document(s) not sent to the daemon "
                      "at %V (counted; this message is repeated at most "
                      "every %d seconds)",
                      dropped, &xmcf->daemon, NGX_HTTP_XRAY_LOG_EVERY);
    }
}


ngx_int_t
ngx_http_xray_emitter_init(ngx_cycle_t *cycle)
{
    char                        err[XRAY_EMIT_ERR_LEN];
    xray_emitter_conf_t         conf;
    ngx_http_xray_main_conf_t  *xmcf;

    /* the cache manager and loader never trace */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    xmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_xray_module);

    if (xmcf == NULL || !xmcf->enabled) {
        return NGX_OK;
    }

    ngx_http_xray_doc = ngx_alloc(XRAY_DOC_MAX, cycle->log);
    if (ngx_http_xray_doc == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&conf, sizeof(xray_emitter_conf_t));

    conf.sockaddr = xmcf->daemon_addr.sockaddr;
    conf.socklen = xmcf->daemon_addr.socklen;
    conf.batch = xmcf->batch;
    conf.alloc = ngx_http_xray_pool_alloc;
    conf.alloc_data = cycle->pool;

    ngx_http_xray_emitter = xray_emitter_create(&conf, err, sizeof(err));

    if (ngx_http_xray_emitter == NULL) {
        /* tracing is lost, requests are not: say it loudly, once */
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "xray: no segments will be sent: %s", err);
        return NGX_OK;
    }

    ngx_http_xray_flush_event.handler = ngx_http_xray_flush_handler;
    ngx_http_xray_flush_event.data = xmcf;
    ngx_http_xray_flush_event.log = cycle->log;
    ngx_http_xray_flush_event.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_xray_emitter_exit(ngx_cycle_t *cycle)
{
    ngx_http_xray_main_conf_t  *xmcf;

    if (ngx_http_xray_emitter == NULL) {
        return;
    }

    xmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_xray_module);

    /* a graceful quit or reload loses nothing already queued */
    ngx_http_xray_flush(xmcf);

    xray_emitter_destroy(ngx_http_xray_emitter);
    ngx_http_xray_emitter = NULL;
}
