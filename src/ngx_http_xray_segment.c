/*
 * The proxy's own segments: built at the end of a request (the log phase, so
 * a stream's segment covers the whole stream), with a remote subsegment for
 * the upstream call, written as JSON into the emitter's per-worker buffer
 * and queued on it (ngx_http_xray_emitter.c).  Nothing here can fail or
 * delay a request: what cannot be sent is counted.
 */

#include "ngx_http_xray.h"


#define NGX_HTTP_XRAY_REDACTED        "***"


typedef struct {
    xray_attempt_t              attempt;
    xray_cause_t                cause;
    u_char                      id[XRAY_ID_LEN];
} ngx_http_xray_attempt_t;


static ngx_int_t ngx_http_xray_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_xray_record(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx, ngx_uint_t in_progress);
static ngx_int_t ngx_http_xray_calls(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx, xray_segment_t *seg, uint64_t now,
    ngx_uint_t status);
static ngx_int_t ngx_http_xray_fill_upstream(ngx_http_request_t *r,
    ngx_http_request_t *call, const u_char *id, uint64_t started,
    xray_subsegment_t *sub, uint64_t now, ngx_uint_t aborted);
static ngx_int_t ngx_http_xray_sent_path(ngx_http_request_t *r,
    ngx_http_request_t *call, ngx_str_t *path);
static void ngx_http_xray_failure(ngx_http_upstream_t *u,
    ngx_http_upstream_state_t *state, xray_cause_t *cause);
static ngx_uint_t ngx_http_xray_capture(ngx_http_xray_loc_conf_t *xlcf,
    ngx_uint_t status);
static ngx_int_t ngx_http_xray_annotations(ngx_http_request_t *r,
    ngx_http_xray_loc_conf_t *xlcf, xray_segment_t *seg,
    ngx_http_xray_ctx_t *ctx);
static ngx_table_elt_t *ngx_http_xray_last_event_id(ngx_http_request_t *r);
static ngx_int_t ngx_http_xray_field_value(ngx_http_request_t *r,
    ngx_http_xray_field_t *f, ngx_array_t *redact, xray_span_t *value);
static ngx_int_t ngx_http_xray_url(ngx_http_request_t *r,
    ngx_http_xray_loc_conf_t *xlcf, ngx_str_t *host, ngx_str_t *url,
    ngx_str_t *path);
static ngx_int_t ngx_http_xray_redact(ngx_http_request_t *r,
    ngx_array_t *redact, ngx_str_t *s);
#if (NGX_PCRE)
static ngx_int_t ngx_http_xray_match(ngx_regex_t *re, ngx_str_t *s,
    size_t offset, size_t *ov);
#endif
static ngx_uint_t ngx_http_xray_x_forwarded_for(ngx_http_request_t *r);
static uint64_t ngx_http_xray_now(void);
static ngx_inline ngx_uint_t ngx_http_xray_status(ngx_http_request_t *r);
static ngx_inline void *ngx_http_xray_scratch(ngx_http_request_t *r,
    size_t size);


/* most locations redact nothing: no call then */
#define ngx_http_xray_mask(r, redact, s)                                      \
    ((redact) ? ngx_http_xray_redact(r, redact, s) : NGX_OK)


/*
 * What one segment takes while it is written (the attempts, the URLs, the
 * annotation and metadata lists) lives only as long as ngx_http_xray_record():
 * it is taken from this per-worker buffer, emptied at each start, rather
 * than from the request's pool, where it would cost a request a new block.
 */

static uint64_t         ngx_http_xray_scratch_buf[256];   /* aligned */
static size_t           ngx_http_xray_scratch_used;       /* bytes */


#if (NGX_HTTP_REALIP)
static ngx_str_t        ngx_http_xray_realip_var =
                            ngx_string("realip_remote_addr");
static ngx_int_t        ngx_http_xray_realip_index = NGX_ERROR;
/* the realip module's ctx_index, found by name: no link to its symbol */
static ngx_int_t        ngx_http_xray_realip_ctx = NGX_ERROR;
#endif


static ngx_int_t
ngx_http_xray_log_handler(ngx_http_request_t *r)
{
    ngx_http_xray_ctx_t       *ctx;
    ngx_http_xray_loc_conf_t  *xlcf;

    /* log_subrequest on: a subrequest's log phase is not the request's end */
    if (r != r->main) {
        return NGX_OK;
    }

    /*
     * a request refused before the rewrite phase that sent no header (a
     * 444, a 499) is decided here, after the access log has been written
     */

    ctx = r->header_sent ? ngx_http_xray_get_ctx(r)
                         : ngx_http_xray_decide_late(r);

    if (ctx == NULL || !ctx->traced || ctx->recorded) {
        return NGX_OK;
    }

    ctx->recorded = 1;

    /* most requests are not sampled and end well: nothing to write */

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (!ctx->sampled
        && !ngx_http_xray_capture(xlcf, ngx_http_xray_status(r)))
    {
        return NGX_OK;
    }

    (void) ngx_http_xray_record(r, ctx, 0);

    return NGX_OK;
}


void
ngx_http_xray_in_progress(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx)
{
    ngx_http_xray_loc_conf_t  *xlcf;

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (xlcf->in_progress == NGX_HTTP_XRAY_IN_PROGRESS_ALWAYS
        || (xlcf->in_progress == NGX_HTTP_XRAY_IN_PROGRESS_STREAM
            && ctx->stream))
    {
        (void) ngx_http_xray_record(r, ctx, 1);
    }
}


static ngx_int_t
ngx_http_xray_record(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx,
    ngx_uint_t in_progress)
{
    u_char                      segment_id[XRAY_ID_LEN];
    size_t                      len;
    uint64_t                    now;
    ngx_str_t                   name, url, path, host, *aws;
    u_char                     *doc;
    ngx_uint_t                  status, i;
    xray_segment_t              seg;
    ngx_http_xray_loc_conf_t   *xlcf;
    ngx_http_xray_main_conf_t  *xmcf;
    ngx_http_core_srv_conf_t   *cscf;

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);
    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    status = ngx_http_xray_status(r);

    if (!ctx->sampled) {

        /* errors are recorded whatever the sampling said, if asked to */

        if (in_progress || !ngx_http_xray_capture(xlcf, status)) {
            return NGX_DECLINED;
        }

        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_CAPTURED);
    }

    doc = ngx_http_xray_emitter_doc();

    if (doc == NULL) {
        /* no socket could be had at start-up (logged then): still counted */
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_DROPPED_OTHER);
        return NGX_DECLINED;
    }

    now = ngx_http_xray_now();
    ngx_http_xray_scratch_used = 0;

    ngx_memzero(&seg, sizeof(xray_segment_t));

    if (xlcf->head.len) {
        /* the name has no variables: its part of the document is ready */
        seg.head.data = xlcf->head.data;
        seg.head.len = xlcf->head.len;

    } else if (xlcf->segment_name) {
        if (ngx_http_complex_value(r, xlcf->segment_name, &name) != NGX_OK) {
            return NGX_ERROR;
        }

        seg.name.data = name.data;
        seg.name.len = name.len;
    }

    /*
     * every id is one this module made or checked as hex (the trace id and
     * the client's parent when the trace header was parsed): no escaping
     */
    seg.ids_safe = 1;
    seg.id = ngx_http_xray_segment_id(ctx, segment_id);
    seg.trace_id = ngx_http_xray_trace_id(ctx);
    seg.parent_id = ctx->has_parent ? ctx->client_parent : NULL;
    seg.start = (uint64_t) r->start_sec * 1000000
                + (uint64_t) r->start_msec * 1000;
    seg.end = now;
    seg.in_progress = in_progress;

    if (r->headers_in.server.len) {
        host = r->headers_in.server;

    } else {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
        host = cscf->server_name;
    }

    if (ngx_http_xray_url(r, xlcf, &host, &url, &path) != NGX_OK) {
        return NGX_ERROR;
    }

    seg.http.method.data = r->main->method_name.data;
    seg.http.method.len = r->main->method_name.len;
    seg.http.url.data = url.data;
    seg.http.url.len = url.len;

    if (r->headers_in.user_agent) {
        seg.http.user_agent.data = r->headers_in.user_agent->value.data;
        seg.http.user_agent.len = r->headers_in.user_agent->value.len;
    }

    seg.http.client_ip.data = r->connection->addr_text.data;
    seg.http.client_ip.len = r->connection->addr_text.len;
    seg.http.x_forwarded_for = ngx_http_xray_x_forwarded_for(r);
    seg.http.content_length = -1;

    if (!in_progress) {
        seg.http.status = status;
        seg.flags = xray_status_flags(status);

        if (r->headers_out.content_length_n >= 0) {
            seg.http.content_length = r->headers_out.content_length_n;
        }
    }

    /* most locations annotate nothing, and most requests are no streams */

    if ((xlcf->annotations || xlcf->metadata || ctx->stream)
        && ngx_http_xray_annotations(r, xlcf, &seg, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    seg.sdk_version.data = (u_char *) NGX_HTTP_XRAY_VERSION;
    seg.sdk_version.len = sizeof(NGX_HTTP_XRAY_VERSION) - 1;

    if (ctx->pick) {
        seg.sampling_rule_name.data = (u_char *) ctx->pick->name;
        seg.sampling_rule_name.len = ctx->pick->name_len;

    } else {
        /* a local rule's, or none: written at configuration time */
        aws = &xmcf->aws[ctx->by_rule ? ctx->rule : xmcf->rules.nrules];
        seg.aws.data = aws->data;
        seg.aws.len = aws->len;
    }

    if (!in_progress
        && ngx_http_xray_calls(r, ctx, &seg, now, status) != NGX_OK)
    {
        return NGX_ERROR;
    }

    len = xray_segment_write(doc, XRAY_DOC_MAX, &seg, 1);

    if (len == 0 && seg.nsubsegments) {

        /* too large for one datagram: each call goes on its own */

        for (i = 0; i < seg.nsubsegments; i++) {

            /* a queued document may have been written where doc points */
            doc = ngx_http_xray_emitter_doc();

            len = xray_subsegment_write(doc, XRAY_DOC_MAX,
                                        &seg.subsegments[i],
                                        ngx_http_xray_trace_id(ctx),
                                        segment_id);
            if (len) {
                ngx_http_xray_emitter_queue(xmcf, doc, len);

            } else {
                ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_DROPPED_TOO_LARGE);
            }
        }

        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_SPLIT);

        doc = ngx_http_xray_emitter_doc();
        len = xray_segment_write(doc, XRAY_DOC_MAX, &seg, 0);
    }

    if (len == 0) {
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_DROPPED_TOO_LARGE);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "xray: segment larger than a datagram, dropped");
        return NGX_DECLINED;
    }

    ngx_http_xray_count(xmcf, in_progress ? NGX_HTTP_XRAY_IN_PROGRESS
                                          : NGX_HTTP_XRAY_SEGMENTS);

    ngx_http_xray_emitter_queue(xmcf, doc, len);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_xray_capture(ngx_http_xray_loc_conf_t *xlcf, ngx_uint_t status)
{
    switch (xlcf->capture_errors) {

    case NGX_HTTP_XRAY_CAPTURE_4XX:
        return status >= 400;

    case NGX_HTTP_XRAY_CAPTURE_5XX:
        return status >= 500;

    default: /* NGX_HTTP_XRAY_CAPTURE_OFF */
        return 0;
    }
}


/*
 * The calls the request made, each a remote subsegment: its own upstream
 * call, then each of its subrequests' (auth_request, mirror, SSI) that
 * reached an upstream, in the order they began.  A subrequest's request
 * lives in the request's pool, so it is still there in the log phase.
 */

static ngx_int_t
ngx_http_xray_calls(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx,
    xray_segment_t *seg, uint64_t now, ngx_uint_t status)
{
    ngx_uint_t            n, aborted;
    xray_subsegment_t    *subs;
    ngx_http_xray_sub_t  *call;

    n = (r->upstream_states && r->upstream_states->nelts) ? 1 : 0;

    for (call = ctx->subs; call; call = call->next) {
        if (call->request->upstream_states
            && call->request->upstream_states->nelts)
        {
            n++;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    subs = ngx_http_xray_scratch(r, n * sizeof(xray_subsegment_t));
    if (subs == NULL) {
        return NGX_ERROR;
    }

    /* one call, the usual case: a size known here, zeroed inline */
    if (n == 1) {
        ngx_memzero(subs, sizeof(xray_subsegment_t));

    } else {
        ngx_memzero(subs, n * sizeof(xray_subsegment_t));
    }

    seg->subsegments = subs;
    aborted = (status == NGX_HTTP_CLIENT_CLOSED_REQUEST);

    if (r->upstream_states && r->upstream_states->nelts) {

        if (ngx_http_xray_fill_upstream(r, r, ngx_http_xray_upstream_id(ctx),
                                        ctx->decided,
                                        &subs[0], now, aborted)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (subs[0].id) {
            /* the proxy's answer came from a failed upstream call */
            if (subs[0].cause && status >= 500) {
                seg->cause = subs[0].cause;
            }

            seg->nsubsegments = 1;
        }
    }

    for (call = ctx->subs; call; call = call->next) {

        if (call->request->upstream_states == NULL
            || call->request->upstream_states->nelts == 0)
        {
            continue;
        }

        if (ngx_http_xray_fill_upstream(r, call->request, call->id,
                                        call->started,
                                        &subs[seg->nsubsegments], now,
                                        aborted)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (subs[seg->nsubsegments].id) {
            seg->nsubsegments++;
        }
    }

    return NGX_OK;
}


/*
 * The remote subsegment of an upstream call, the request's own or a
 * subrequest's (call): its id is the Parent that was forwarded (id), so the
 * upstream's own segment nests under it.  nginx keeps one
 * state per attempt (proxy_next_upstream) with durations but no start time:
 * attempts are laid end to end from the moment the decision was taken.
 */

static ngx_int_t
ngx_http_xray_fill_upstream(ngx_http_request_t *r, ngx_http_request_t *call,
    const u_char *id, uint64_t started, xray_subsegment_t *sub, uint64_t now,
    ngx_uint_t aborted)
{
    u_char                     *p, *ids;
    size_t                      len;
    uint64_t                    t;
    ngx_str_t                  *host, url, path;
    ngx_uint_t                  i, n;
    xray_cause_t               *causes;
    xray_attempt_t             *att, *last;
    ngx_http_upstream_t        *u;
    ngx_http_upstream_state_t  *state;

    state = call->upstream_states->elts;
    n = call->upstream_states->nelts;

    /* per attempt: the attempt, a cause, and ids for both */
    len = n * (sizeof(xray_attempt_t) + sizeof(xray_cause_t)
               + 2 * XRAY_ID_LEN);

    att = ngx_http_xray_scratch(r, len);
    if (att == NULL) {
        return NGX_ERROR;
    }

    /* one attempt, the usual case: a size known here, zeroed inline */
    if (n == 1) {
        ngx_memzero(att, sizeof(xray_attempt_t) + sizeof(xray_cause_t)
                         + 2 * XRAY_ID_LEN);

    } else {
        ngx_memzero(att, len);
    }

    causes = (xray_cause_t *) (att + n);
    ids = (u_char *) (causes + n);

    t = started;
    last = NULL;

    for (i = 0; i < n; i++) {

        /* a separator between the upstream calls of internal redirects */
        if (state[i].peer == NULL && state[i].status == 0) {
            continue;
        }

        last = &att[sub->nattempts++];

        xray_id_segment(&ngx_http_xray_rng, ids);
        last->id = ids;
        ids += XRAY_ID_LEN;

        if (state[i].peer) {
            last->peer.data = state[i].peer->data;
            last->peer.len = state[i].peer->len;
        }

        last->start = ngx_min(t, now);

        if (state[i].response_time != (ngx_msec_t) -1) {
            t += (uint64_t) state[i].response_time * 1000;

        } else {
            t = now;
        }

        last->end = ngx_max(ngx_min(t, now), last->start);

        last->connect_time = state[i].connect_time == (ngx_msec_t) -1
                             ? -1 : (int64_t) state[i].connect_time;
        last->header_time = state[i].header_time == (ngx_msec_t) -1
                            ? -1 : (int64_t) state[i].header_time;
        last->response_time = state[i].response_time == (ngx_msec_t) -1
                              ? -1 : (int64_t) state[i].response_time;

        if (state[i].header_time != (ngx_msec_t) -1 && state[i].status) {
            last->status = state[i].status;
            continue;
        }

        /*
         * no response: a client that went away (499) while the last attempt
         * waited is the client's doing, not the upstream's
         */

        if (aborted && i == n - 1) {
            continue;
        }

        /* else say why, as far as nginx recorded it */

        xray_id_segment(&ngx_http_xray_rng, ids);
        causes[i].id = ids;
        ids += XRAY_ID_LEN;
        causes[i].remote = 1;
        ngx_http_xray_failure(call->upstream, &state[i], &causes[i]);
        last->cause = &causes[i];
    }

    if (last == NULL) {
        return NGX_OK;
    }

    sub->id = id;
    sub->attempts = att;
    sub->start = started;
    sub->end = ngx_max(last->end, sub->start);

    sub->http.method.data = call->method_name.data;
    sub->http.method.len = call->method_name.len;
    sub->http.content_length = -1;

    u = call->upstream;
    host = NULL;

    if (u && u->upstream) {
        host = &u->upstream->host;

    } else if (u && u->resolved && u->resolved->host.len) {
        host = &u->resolved->host;
    }

    if (host) {
        if (ngx_http_xray_sent_path(r, call, &path) != NGX_OK) {
            return NGX_ERROR;
        }

        sub->name.data = host->data;
        sub->name.len = host->len;

        url.len = u->schema.len + host->len + path.len;

        if (u->upstream && u->upstream->port) {
            url.len += sizeof(":65535") - 1;
        }

        url.data = ngx_http_xray_scratch(r, url.len);
        if (url.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_copy(url.data, u->schema.data, u->schema.len);
        p = ngx_copy(p, host->data, host->len);

        if (u->upstream && u->upstream->port) {
            p = ngx_sprintf(p, ":%ui", (ngx_uint_t) u->upstream->port);
        }

        p = ngx_copy(p, path.data, path.len);

        sub->http.url.data = url.data;
        sub->http.url.len = p - url.data;
    }

    if (last->status) {
        sub->http.status = last->status;
        sub->flags = xray_status_flags(last->status);

    } else if (last->cause) {
        sub->flags = XRAY_FLAG_FAULT;
        sub->cause = last->cause;
    }

    return NGX_OK;
}


/*
 * The request target the upstream was sent, not the client's: proxy_pass
 * writes it after rewrite, error_page and its own URI part, into the first
 * buffer of the request, where it is read back ("METHOD SP target SP
 * HTTP/1.x").  Other protocols (grpc_pass, fastcgi_pass...) write no
 * request line: for them it is the URI the call had.  So is it with
 * proxy_request_buffering off, where nginx frees the links of the request
 * chain once sent and may have used them again since.  The query string
 * and redactions are as for the segment's URL.
 */

static ngx_int_t
ngx_http_xray_sent_path(ngx_http_request_t *r, ngx_http_request_t *call,
    ngx_str_t *path)
{
    u_char                    *p, *q, *last;
    ngx_buf_t                 *b;
    ngx_http_upstream_t       *u;
    ngx_http_xray_loc_conf_t  *xlcf;

    static u_char              version[] = " HTTP/1.";

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    u = call->upstream;
    path->len = 0;

    b = NULL;

    /* "http://" or "https://": the proxy module's (any case) */
    if (u && u->request_bufs && !call->request_body_no_buffering
        && u->schema.len >= sizeof("http://") - 1
        && (u->schema.data[0] | 0x20) == 'h'
        && (u->schema.data[1] | 0x20) == 't'
        && (u->schema.data[2] | 0x20) == 't'
        && (u->schema.data[3] | 0x20) == 'p'
        && u->schema.data[u->schema.len - 1] == '/')
    {
        b = u->request_bufs->buf;
    }

    if (b && ngx_buf_in_memory(b) && b->start && b->last > b->start) {
        p = b->start;
        last = b->last;

        while (p < last && *p != ' ') {
            p++;
        }

        q = ++p;

        while (p < last && *p != ' ' && *p != CR && *p != LF) {
            p++;
        }

        if (q < p && *q == '/'
            && (size_t) (last - p) >= sizeof(version) - 1
            && ngx_memcmp(p, version, sizeof(version) - 1) == 0)
        {
            path->data = q;
            path->len = p - q;
        }
    }

    if (path->len == 0) {
        path->len = call->uri.len;

        if (call->args.len) {
            path->len += 1 + call->args.len;
        }

        path->data = ngx_pnalloc(r->pool, path->len);
        if (path->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_copy(path->data, call->uri.data, call->uri.len);

        if (call->args.len) {
            *p++ = '?';
            ngx_memcpy(p, call->args.data, call->args.len);
        }
    }

    if (!xlcf->record_query) {
        q = ngx_strlchr(path->data, path->data + path->len, '?');

        if (q) {
            path->len = q - path->data;
        }
    }

    return ngx_http_xray_mask(r, xlcf->redact, path);
}


static void
ngx_http_xray_failure(ngx_http_upstream_t *u,
    ngx_http_upstream_state_t *state, xray_cause_t *cause)
{
    ngx_uint_t   timeout, connected;
    const char  *type, *message;

    timeout = (state->status == NGX_HTTP_GATEWAY_TIME_OUT);
    connected = (state->connect_time != (ngx_msec_t) -1);

    /*
     * with no live peer the balancer names the upstream itself
     * (ngx_http_upstream_get_round_robin_peer)
     */

    if (state->peer == NULL
        || (u && u->upstream && state->peer == &u->upstream->host))
    {
        type = "NoLiveUpstreams";
        message = "no live upstreams";

    } else if (!connected && timeout) {
        type = "UpstreamConnectTimeout";
        message = "upstream timed out while connecting";

    } else if (!connected) {
        type = "UpstreamConnectFailed";
        message = "connecting to the upstream failed (refused or unreachable)";

    } else if (timeout) {
        type = "UpstreamTimeout";
        message = "upstream timed out waiting for the response header";

    } else {
        type = "UpstreamError";
        message = "upstream closed or reset the connection, or sent an "
                  "invalid response";
    }

    cause->type.data = (const u_char *) type;
    cause->type.len = ngx_strlen(type);
    cause->message.data = (const u_char *) message;
    cause->message.len = ngx_strlen(message);
}


static ngx_int_t
ngx_http_xray_annotations(ngx_http_request_t *r,
    ngx_http_xray_loc_conf_t *xlcf, xray_segment_t *seg,
    ngx_http_xray_ctx_t *ctx)
{
    ngx_str_t               value;
    ngx_uint_t              i, n;
    ngx_table_elt_t        *last_event_id;
    xray_metadata_t        *md;
    xray_annotation_t      *an;
    ngx_http_xray_field_t  *f;

    static u_char           yes[] = "true", no[] = "false";

    n = xlcf->annotations ? xlcf->annotations->nelts : 0;

    /* a stream says so, and whether it resumes an earlier one */
    an = ngx_http_xray_scratch(r, (n + 2) * sizeof(xray_annotation_t));
    if (an == NULL) {
        return NGX_ERROR;
    }

    seg->annotations = an;

    f = n ? xlcf->annotations->elts : NULL;

    for (i = 0; i < n; i++) {
        if (ngx_http_xray_field_value(r, &f[i], xlcf->redact, &an->value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* an empty value is omitted, never sent as "" or null */
        if (an->value.len == 0) {
            continue;
        }

        an->key.data = f[i].key.data;
        an->key.len = f[i].key.len;
        an->kind = f[i].kind;
        an++;
    }

    last_event_id = NULL;

    if (ctx->stream) {
        last_event_id = ngx_http_xray_last_event_id(r);

        an->key.data = (u_char *) "sse";
        an->key.len = sizeof("sse") - 1;
        an->value.data = yes;
        an->value.len = sizeof(yes) - 1;
        an->kind = XRAY_ANNOTATION_BOOLEAN;
        an++;

        an->key.data = (u_char *) "sse_reconnect";
        an->key.len = sizeof("sse_reconnect") - 1;
        an->value.data = last_event_id ? yes : no;
        an->value.len = last_event_id ? sizeof(yes) - 1 : sizeof(no) - 1;
        an->kind = XRAY_ANNOTATION_BOOLEAN;
        an++;
    }

    seg->nannotations = an - seg->annotations;

    n = xlcf->metadata ? xlcf->metadata->nelts : 0;

    md = ngx_http_xray_scratch(r, (n + 1) * sizeof(xray_metadata_t));
    if (md == NULL) {
        return NGX_ERROR;
    }

    seg->metadata = md;

    f = n ? xlcf->metadata->elts : NULL;

    for (i = 0; i < n; i++) {
        if (ngx_http_xray_field_value(r, &f[i], xlcf->redact, &md->value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (md->value.len == 0) {
            continue;
        }

        md->key.data = f[i].key.data;
        md->key.len = f[i].key.len;
        md++;
    }

    if (last_event_id && last_event_id->value.len) {
        value = last_event_id->value;

        if (ngx_http_xray_mask(r, xlcf->redact, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        md->key.data = (u_char *) "last_event_id";
        md->key.len = sizeof("last_event_id") - 1;
        md->value.data = value.data;
        md->value.len = value.len;
        md++;
    }

    seg->nmetadata = md - seg->metadata;

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_xray_last_event_id(ngx_http_request_t *r)
{
    static ngx_str_t  name = ngx_string("Last-Event-ID");

    return ngx_http_xray_header_find(&r->headers_in.headers, &name, NULL);
}


static ngx_int_t
ngx_http_xray_field_value(ngx_http_request_t *r, ngx_http_xray_field_t *f,
    ngx_array_t *redact, xray_span_t *value)
{
    ngx_str_t  v;

    if (ngx_http_complex_value(r, &f->value, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_xray_mask(r, redact, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    value->data = v.data;
    value->len = v.len;

    return NGX_OK;
}


/*
 * The URL as the client asked for it: scheme, Host, path as sent, and the
 * query string only with xray_record_query on; redactions applied.  path is
 * the part after the host, for the upstream call's URL.
 */

static ngx_int_t
ngx_http_xray_url(ngx_http_request_t *r, ngx_http_xray_loc_conf_t *xlcf,
    ngx_str_t *host, ngx_str_t *url, ngx_str_t *path)
{
    u_char      *p, *q;
    ngx_str_t    scheme;
    ngx_uint_t   ssl;

    ssl = 0;

#if (NGX_HTTP_SSL)
    ssl = (r->connection->ssl != NULL);
#endif

    ngx_str_set(&scheme, "http://");

    if (ssl) {
        ngx_str_set(&scheme, "https://");
    }

    path->data = r->main->unparsed_uri.data;
    path->len = r->main->unparsed_uri.len;

    if (!xlcf->record_query) {
        q = ngx_strlchr(path->data, path->data + path->len, '?');

        if (q) {
            path->len = q - path->data;
        }
    }

    if (ngx_http_xray_mask(r, xlcf->redact, path) != NGX_OK) {
        return NGX_ERROR;
    }

    url->len = scheme.len + host->len + path->len;
    url->data = ngx_http_xray_scratch(r, url->len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_copy(url->data, scheme.data, scheme.len);
    p = ngx_copy(p, host->data, host->len);
    ngx_memcpy(p, path->data, path->len);

    return NGX_OK;
}


/*
 * Masks every match of every xray_redact regex in s: the first capture
 * group if the regex has one (so "token=([^&]+)" keeps "token="), else the
 * whole match.  Matches are searched in the whole string from an offset, so
 * anchors and lookbehinds mean what they say.  s is replaced by a copy only
 * when something matched.
 */

static ngx_int_t
ngx_http_xray_redact(ngx_http_request_t *r, ngx_array_t *redact,
    ngx_str_t *s)
{
#if (NGX_PCRE)
    u_char        *p, *buf, *cursor;
    size_t         start, ov[4], mstart, mend;
    ngx_int_t      rc;
    ngx_uint_t     i;
    ngx_regex_t  **re;

    if (redact == NULL || s->len == 0) {
        return NGX_OK;
    }

    re = redact->elts;

    for (i = 0; i < redact->nelts; i++) {

        buf = NULL;
        p = NULL;
        cursor = s->data;
        start = 0;

        while (start <= s->len) {

            rc = ngx_http_xray_match(re[i], s, start, ov);

            if (rc == 0) {
                break;
            }

            if (rc < 0) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "xray: matching an xray_redact regex failed: "
                              "%i", rc);
                return NGX_ERROR;
            }

            if (ov[2] != (size_t) -1) {
                mstart = ov[2];
                mend = ov[3];

            } else {
                mstart = ov[0];
                mend = ov[1];
            }

            /*
             * a group inside a lookaround may lie outside the match, even
             * before what was already copied: such a group is left alone
             */

            if (s->data + mstart >= cursor && mend > mstart) {

                if (buf == NULL) {
                    /* at worst every byte becomes a mask */
                    buf = ngx_pnalloc(r->pool,
                                      s->len
                                      * (sizeof(NGX_HTTP_XRAY_REDACTED) - 1));
                    if (buf == NULL) {
                        return NGX_ERROR;
                    }

                    p = buf;
                }

                p = ngx_cpymem(p, cursor, s->data + mstart - cursor);
                p = ngx_cpymem(p, NGX_HTTP_XRAY_REDACTED,
                               sizeof(NGX_HTTP_XRAY_REDACTED) - 1);
                cursor = s->data + mend;
            }

            /* an empty match must still move on */
            start = (ov[1] > ov[0]) ? ov[1] : ov[1] + 1;
        }

        if (buf) {
            p = ngx_cpymem(p, cursor, s->data + s->len - cursor);
            s->data = buf;
            s->len = p - buf;
        }
    }

#endif

    return NGX_OK;
}


#if (NGX_PCRE)

/*
 * One match of re in s from offset on: returns 1 with ov[0..1] the match
 * and ov[2..3] the first group ((size_t) -1 when it did not take part), 0
 * for no match, a negative PCRE error otherwise.
 */

static ngx_int_t
ngx_http_xray_match(ngx_regex_t *re, ngx_str_t *s, size_t offset,
    size_t *ov)
{
    ngx_int_t  rc;

#if (NGX_PCRE2)
    PCRE2_SIZE                *v;

    /* one per worker, for the life of the process */
    static pcre2_match_data   *md;

    if (md == NULL) {
        md = pcre2_match_data_create(2, NULL);
        if (md == NULL) {
            return PCRE2_ERROR_NOMEMORY;
        }
    }

    rc = pcre2_match(re, s->data, s->len, offset, 0, md, NULL);

    if (rc == PCRE2_ERROR_NOMATCH) {
        return 0;
    }

    if (rc < 0) {
        return rc;
    }

    v = pcre2_get_ovector_pointer(md);

    ov[0] = v[0];
    ov[1] = v[1];

    if (rc > 1 && v[2] != PCRE2_UNSET) {
        ov[2] = v[2];
        ov[3] = v[3];

    } else {
        ov[2] = (size_t) -1;
        ov[3] = (size_t) -1;
    }

#else
    int  v[6];

    rc = pcre_exec(re->code, re->extra, (const char *) s->data, s->len,
                   offset, 0, v, 6);

    if (rc == PCRE_ERROR_NOMATCH) {
        return 0;
    }

    if (rc < 0) {
        return rc;
    }

    ov[0] = v[0];
    ov[1] = v[1];

    if (rc > 1 && v[2] >= 0) {
        ov[2] = v[2];
        ov[3] = v[3];

    } else {
        ov[2] = (size_t) -1;
        ov[3] = (size_t) -1;
    }

#endif

    return 1;
}

#endif


static ngx_uint_t
ngx_http_xray_x_forwarded_for(ngx_http_request_t *r)
{
#if (NGX_HTTP_REALIP)
    ngx_http_variable_value_t  *v;

    /* the realip module replaced the peer's address with a forwarded one */

    if (ngx_http_xray_realip_index == NGX_ERROR) {
        return 0;
    }

    /*
     * with no context of its own, and none that a redirect left behind
     * (as ngx_http_realip_get_module_ctx() looks for it), the realip
     * module changed nothing: the variable would be the peer's address
     */

    if (ngx_http_xray_realip_ctx != NGX_ERROR
        && r->ctx[ngx_http_xray_realip_ctx] == NULL
        && !r->internal && !r->filter_finalize)
    {
        return 0;
    }

    v = ngx_http_get_indexed_variable(r, ngx_http_xray_realip_index);

    if (v == NULL || v->not_found) {
        return 0;
    }

    return v->len != r->connection->addr_text.len
           || ngx_strncmp(v->data, r->connection->addr_text.data, v->len)
              != 0;
#else
    return 0;
#endif
}


/*
 * The opening of a location's segments, {"name":"<name>, written once when
 * the name has no variables (xray_segment_name nginx by default), as the
 * segment writer would write it
 */

ngx_int_t
ngx_http_xray_segment_head(ngx_conf_t *cf, ngx_http_xray_loc_conf_t *conf,
    ngx_http_xray_loc_conf_t *prev)
{
    u_char       buf[XRAY_SEGMENT_HEAD_MAX];
    size_t       len;
    xray_span_t  name, none;

    if (conf->segment_name == prev->segment_name && prev->head.len) {
        conf->head = prev->head;
        return NGX_OK;
    }

    ngx_memzero(&name, sizeof(xray_span_t));
    ngx_memzero(&none, sizeof(xray_span_t));

    if (conf->segment_name) {
        if (conf->segment_name->lengths != NULL) {
            /* evaluated for each segment */
            return NGX_OK;
        }

        name.data = conf->segment_name->value.data;
        name.len = conf->segment_name->value.len;
    }

    len = xray_segment_head(buf, sizeof(buf), &name, &none);
    if (len == 0) {
        return NGX_ERROR;
    }

    conf->head.data = ngx_pnalloc(cf->pool, len);
    if (conf->head.data == NULL) {
        return NGX_ERROR;
    }

    conf->head.len = len;
    ngx_memcpy(conf->head.data, buf, len);

    return NGX_OK;
}


/*
 * The aws object of the segments each local sampling rule decides, and of
 * those no rule decided, written once; the service's rules (xray_sampling
 * centralized) name theirs as each segment is written
 */

ngx_int_t
ngx_http_xray_segment_aws(ngx_conf_t *cf, ngx_http_xray_main_conf_t *xmcf)
{
    u_char       buf[XRAY_SEGMENT_AWS_MAX];
    size_t       len;
    ngx_uint_t   i;
    xray_span_t  version, rule;

    xmcf->aws = ngx_palloc(cf->pool,
                           (xmcf->rules.nrules + 1) * sizeof(ngx_str_t));
    if (xmcf->aws == NULL) {
        return NGX_ERROR;
    }

    version.data = (u_char *) NGX_HTTP_XRAY_VERSION;
    version.len = sizeof(NGX_HTTP_XRAY_VERSION) - 1;

    for (i = 0; i <= xmcf->rules.nrules; i++) {

        if (i < xmcf->rules.nrules) {
            rule.data = (u_char *) xmcf->rules.rules[i].name;
            rule.len = ngx_strlen(xmcf->rules.rules[i].name);

        } else {
            rule.data = NULL;
            rule.len = 0;
        }

        len = xray_segment_aws(buf, sizeof(buf), &version, &rule);
        if (len == 0) {
            return NGX_ERROR;
        }

        xmcf->aws[i].data = ngx_pnalloc(cf->pool, len);
        if (xmcf->aws[i].data == NULL) {
            return NGX_ERROR;
        }

        xmcf->aws[i].len = len;
        ngx_memcpy(xmcf->aws[i].data, buf, len);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_xray_segment_init(ngx_conf_t *cf)
{
#if (NGX_HTTP_REALIP)
    ngx_uint_t                  i;
#endif
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_xray_log_handler;

#if (NGX_HTTP_REALIP)
    ngx_http_xray_realip_index =
                ngx_http_get_variable_index(cf, &ngx_http_xray_realip_var);

    ngx_http_xray_realip_ctx = NGX_ERROR;

    for (i = 0; cf->cycle->modules[i]; i++) {
        if (cf->cycle->modules[i]->type == NGX_HTTP_MODULE
            && ngx_strcmp(cf->cycle->modules[i]->name,
                          "ngx_http_realip_module") == 0)
        {
            ngx_http_xray_realip_ctx = cf->cycle->modules[i]->ctx_index;
            break;
        }
    }
#endif

    return NGX_OK;
}


/* the status the request ends with */

static ngx_inline ngx_uint_t
ngx_http_xray_status(ngx_http_request_t *r)
{
    return r->err_status ? r->err_status : r->headers_out.status;
}


/* size bytes for the segment being written, aligned; from the pool if big */

static ngx_inline void *
ngx_http_xray_scratch(ngx_http_request_t *r, size_t size)
{
    u_char  *p;

    size = ngx_align(size, sizeof(uint64_t));

    if (size > sizeof(ngx_http_xray_scratch_buf) - ngx_http_xray_scratch_used)
    {
        return ngx_palloc(r->pool, size);
    }

    p = (u_char *) ngx_http_xray_scratch_buf + ngx_http_xray_scratch_used;
    ngx_http_xray_scratch_used += size;

    return p;
}


static uint64_t
ngx_http_xray_now(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}
