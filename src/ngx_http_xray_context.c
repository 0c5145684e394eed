/*
 * The rewrite phase: finds and validates the client's trace context (the
 * X-Amzn-Trace-Id header or xray_trace_context, and W3C's traceparent and
 * tracestate, as xray_trace_formats says), decides sampling, and writes the
 * headers forwarded upstream (xray_propagate).  The request's context,
 * found again after an internal redirect, and the per-worker id generator
 * live here.
 */

#include "ngx_http_xray.h"


/* what the client sent, validated */
typedef struct {
    xray_trace_ctx_t     tc;           /* X-Amzn-Trace-Id */
    ngx_table_elt_t     *xray_h;       /* its header, when tc is valid */
    xray_traceparent_t   tp;
    xray_tracestate_t    ts;
    unsigned             xray:1;       /* tc is valid */
    unsigned             w3c:1;        /* tp is valid */
    unsigned             state:1;      /* ts is valid and not empty */
} ngx_http_xray_client_t;


static ngx_int_t ngx_http_xray_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_xray_subrequest(ngx_http_request_t *r);
static ngx_int_t ngx_http_xray_replace(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *was, ngx_str_t *value);
static void ngx_http_xray_cleanup(void *data);
static ngx_int_t ngx_http_xray_read_context(ngx_http_request_t *r,
    xray_trace_ctx_t *tc, ngx_table_elt_t **first, ngx_uint_t *invalid);
static ngx_int_t ngx_http_xray_read_alternative(ngx_http_request_t *r,
    xray_trace_ctx_t *tc, ngx_uint_t *invalid);
static void ngx_http_xray_read_w3c(ngx_http_request_t *r,
    ngx_http_xray_client_t *cl);
static ngx_int_t ngx_http_xray_remove(ngx_http_request_t *r,
    ngx_http_xray_key_t *key);
static void ngx_http_xray_conflict(ngx_http_request_t *r,
    ngx_http_xray_client_t *cl, ngx_uint_t w3c);
static void ngx_http_xray_decide(ngx_http_request_t *r,
    ngx_http_xray_main_conf_t *xmcf, ngx_http_xray_ctx_t *ctx,
    xray_sampled_e client);
static ngx_int_t ngx_http_xray_forward(ngx_http_request_t *r,
    ngx_http_xray_loc_conf_t *xlcf, ngx_http_xray_ctx_t *ctx,
    const u_char *root, xray_trace_ctx_t *tc, ngx_table_elt_t *h,
    xray_tracestate_t *ts);
static ngx_uint_t ngx_http_xray_rewritable(ngx_http_request_t *r,
    ngx_str_t *value);


ngx_str_t   ngx_http_xray_header_name = ngx_string("X-Amzn-Trace-Id");

static ngx_str_t  ngx_http_xray_traceparent_name = ngx_string("traceparent");
static ngx_str_t  ngx_http_xray_tracestate_name = ngx_string("tracestate");

/* the same, as request headers are found (hashes set at configuration) */
static ngx_http_xray_key_t  ngx_http_xray_header_key =
    { ngx_string("x-amzn-trace-id"), 0 };
static ngx_http_xray_key_t  ngx_http_xray_traceparent_key =
    { ngx_string("traceparent"), 0 };
static ngx_http_xray_key_t  ngx_http_xray_tracestate_key =
    { ngx_string("tracestate"), 0 };

xray_rng_t  ngx_http_xray_rng;

static const ngx_http_xray_ctx_t  ngx_http_xray_ctx_zero;


static ngx_int_t
ngx_http_xray_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    u_char                      trace_id[XRAY_TRACE_ID_LEN];
    ngx_str_t                   trust;
    ngx_uint_t                  invalid, w3c;
    ngx_time_t                 *tp;
    const u_char               *root;
    xray_trace_ctx_t           *kept;
    xray_sampled_e              client;
    xray_tracestate_t          *state;
    ngx_http_xray_ctx_t        *ctx;
    ngx_http_xray_client_t      cl;
    ngx_http_xray_loc_conf_t   *xlcf;
    ngx_http_xray_main_conf_t  *xmcf;
    ngx_http_core_srv_conf_t   *cscf;

    if (r != r->main) {
        return ngx_http_xray_subrequest(r);
    }

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (!xlcf->enable) {
        return NGX_DECLINED;
    }

    if (ngx_http_xray_get_ctx(r) != NULL) {
        /* decided once per request, internal redirects included */
        return NGX_DECLINED;
    }

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_xray_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    /* zeroed by a few word copies: ngx_pcalloc() calls memset() */
    *ctx = ngx_http_xray_ctx_zero;

    /*
     * found again through the pool after an internal redirect clears ctx:
     * a cleanup of the pool's, but part of ctx, which saves an allocation
     */
    ctx->cleanup.handler = ngx_http_xray_cleanup;
    ctx->cleanup.data = ctx;
    ctx->cleanup.next = r->pool->cleanup;
    r->pool->cleanup = &ctx->cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_xray_module);

    /* what is read of cl.tc before it is parsed (the spans are not) */
    cl.tc.root = NULL;
    cl.tc.nkept = 0;
    cl.tc.kept_len = 0;
    cl.xray_h = NULL;
    cl.xray = 0;
    cl.w3c = 0;
    cl.state = 0;

    if (xlcf->formats & NGX_HTTP_XRAY_FORMAT_W) {
        ngx_http_xray_read_w3c(r, &cl);
    }

    /*
     * Where W3C is read or written, the client's W3C headers never go on
     * as they came: what is valid is kept in cl, and written anew.  The
     * header list is rebuilt, so this comes before any element is held.
     */

    if (((xlcf->formats | xlcf->propagate) & NGX_HTTP_XRAY_FORMAT_W)
        && (ngx_http_xray_remove(r, &ngx_http_xray_traceparent_key)
            != NGX_OK
            || ngx_http_xray_remove(r, &ngx_http_xray_tracestate_key)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (xlcf->formats & NGX_HTTP_XRAY_FORMAT_X) {
        rc = ngx_http_xray_read_context(r, &cl.tc, &cl.xray_h, &invalid);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (invalid) {
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_INVALID);
        }

        cl.xray = (rc == NGX_OK);
    }

    /*
     * a client's X-Amzn-Trace-Id never goes on unvalidated: where X-Ray is
     * read, cl.xray_h is the first one, valid or not
     */

    if (!cl.xray
        && (cl.xray_h != NULL || !(xlcf->formats & NGX_HTTP_XRAY_FORMAT_X)))
    {
        cl.xray_h = NULL;

        if (ngx_http_xray_remove(r, &ngx_http_xray_header_key) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /*
     * X_Amzn_Trace_Id and the like (underscores_in_headers on) are never
     * context (the reader takes the exact name only) and never go on:
     * upstreams that map names CGI-style would take them for the header.
     * nginx keeps a name with an underscore only where the server allows
     * underscores or keeps invalid headers: elsewhere there is no walk.
     */

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    if ((cscf->underscores_in_headers || !cscf->ignore_invalid_headers)
        && ngx_http_xray_header_underscored(&r->headers_in.headers,
                                            &ngx_http_xray_header_name))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "xray: dropped client's header named like "
                      "X-Amzn-Trace-Id with underscores");

        if (ngx_http_xray_header_remove(r, &r->headers_in.headers,
                                        &ngx_http_xray_header_name,
                                        &cl.xray_h)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* which context carries the trace: the valid one, or the preferred */

    w3c = cl.w3c
          && (!cl.xray || xlcf->prefer == NGX_HTTP_XRAY_FORMAT_W);

    kept = NULL;
    state = NULL;

    if (cl.w3c && cl.xray) {
        if (xray_w3c_same_trace(cl.tc.root, cl.tp.trace_id)) {
            /* one trace: what each format carries besides goes on */
            kept = &cl.tc;
            state = cl.state ? &cl.ts : NULL;

        } else {
            ngx_http_xray_conflict(r, &cl, w3c);
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_CONFLICTS);
        }
    }

    if (w3c) {
        xray_w3c_root_from_trace_id(trace_id, cl.tp.trace_id);
        root = trace_id;
        ngx_memcpy(ctx->client_parent, cl.tp.parent_id, XRAY_ID_LEN);
        ctx->has_parent = 1;
        client = (cl.tp.flags & XRAY_W3C_SAMPLED) ? XRAY_SAMPLED_YES
                                                  : XRAY_SAMPLED_NO;
        state = cl.state ? &cl.ts : NULL;
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_FROM_W3C);

    } else if (cl.xray) {
        root = cl.tc.root;

        if (cl.tc.parent) {
            ngx_memcpy(ctx->client_parent, cl.tc.parent, XRAY_ID_LEN);
            ctx->has_parent = 1;
        }

        client = cl.tc.sampled;
        kept = &cl.tc;
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_FROM_XRAY);

    } else {
        if (!xlcf->originate) {
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_NO_CONTEXT);
            return NGX_DECLINED;
        }

        xray_id_trace(&ngx_http_xray_rng, ngx_time(), trace_id);
        root = trace_id;
        ctx->originated = 1;
        client = XRAY_SAMPLED_NONE;
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_ORIGINATED);
    }

    /* the event loop's time, as r->start_sec and r->start_msec are */
    tp = ngx_timeofday();
    ctx->decided = (uint64_t) tp->sec * 1000000 + tp->msec * 1000;

    if (client != XRAY_SAMPLED_NONE
        && client != XRAY_SAMPLED_REQUESTED
        && xlcf->trust_sampling != NULL)
    {
        if (ngx_http_complex_value(r, xlcf->trust_sampling, &trust)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (trust.len && !(trust.len == 1 && trust.data[0] == '0')) {
            ctx->sampled = (client == XRAY_SAMPLED_YES);
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_TRUSTED);
            goto decided;
        }
    }

    ngx_http_xray_decide(r, xmcf, ctx, client);

decided:

    ngx_http_xray_count(xmcf, ctx->sampled ? NGX_HTTP_XRAY_SAMPLED
                                           : NGX_HTTP_XRAY_NOT_SAMPLED);

    if (client == XRAY_SAMPLED_REQUESTED) {
        ctx->requested = 1;
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_REQUESTED);
    }

    if (ngx_http_xray_forward(r, xlcf, ctx, root, kept, cl.xray_h, state)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the ids are read from the header from now on */
    ctx->traced = 1;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "xray: rule %ui, sampled %ui, forwarding \"%V\"",
                   (ngx_uint_t) ctx->rule, (ngx_uint_t) ctx->sampled,
                   &ctx->header);

    return NGX_DECLINED;
}


/*
 * ngx_http_xray_get_ctx() (ngx_http_xray.h) when the main request r has
 * no context in its slot after an internal redirect or a filter's
 * finalization: an internal redirect resets module contexts, but the pool
 * cleanup registered with ours still points at it.
 */

ngx_http_xray_ctx_t *
ngx_http_xray_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_xray_ctx_t  *ctx;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_xray_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_xray_module);
            return ctx;
        }
    }

    return NULL;
}


/*
 * A request nginx refused after reading its headers but before the rewrite
 * phase of its location (a 413 for its Content-Length, a 400 for a missing
 * Host, a return in the server block) was never decided: it is decided
 * here, when its response header goes out, or at the latest in the log
 * phase, by the same handler and so with the same counters, capture and
 * Sampled=? answer as any other.  A request refused while its request line
 * or headers were read (a 414, a 400 for a bad request line, a 408) stays
 * untraced: what it carries was never read whole.  HTTP/0.9 has no
 * headers: its request line is all.
 */

ngx_http_xray_ctx_t *
ngx_http_xray_decide_late(ngx_http_request_t *r)
{
    ngx_http_xray_ctx_t       *ctx;
    ngx_http_xray_loc_conf_t  *xlcf;

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx != NULL || r != r->main) {
        return ctx;
    }

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (!xlcf->enable) {
        return NULL;
    }

    if (r->http_state < NGX_HTTP_PROCESS_REQUEST_STATE
        && !(r->http_version == NGX_HTTP_VERSION_9 && r->uri.len))
    {
        return NULL;
    }

    if (ngx_http_xray_handler(r) == NGX_ERROR) {
        return NULL;
    }

    return ngx_http_xray_get_ctx(r);
}


/* where the Parent is in the header ngx_http_xray_forward() writes */
#define NGX_HTTP_XRAY_PARENT_AT  (sizeof("Root=") - 1 + XRAY_TRACE_ID_LEN   \
                                  + sizeof(";Parent=") - 1)


/*
 * A subrequest of a traced request (auth_request, mirror, SSI) is a call of
 * its own, whatever its location says: it gets an id of its own, forwarded
 * as its Parent, with the request's Root and decision, in place of the
 * context its parent forwards (which it inherited with its parent's
 * headers), and the request's segment records it if it reached an upstream
 * (ngx_http_xray_segment.c).  Its header list is its parent's, shared: the
 * list is copied before anything in it changes.  An internal redirect of
 * the subrequest keeps what it had.
 */

static ngx_int_t
ngx_http_xray_subrequest(ngx_http_request_t *r)
{
    u_char                id[XRAY_W3C_TRACE_ID_LEN];
    ngx_int_t             rc;
    ngx_str_t             name, was, value;
    ngx_time_t           *tp;
    ngx_http_xray_ctx_t  *ctx;
    ngx_http_xray_sub_t  *sub, *parent;

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx == NULL || !ctx->traced
        || ctx->header.len < NGX_HTTP_XRAY_PARENT_AT + XRAY_ID_LEN
        || ngx_http_xray_get_sub(r) != NULL)
    {
        return NGX_DECLINED;
    }

    sub = ngx_pcalloc(r->pool, sizeof(ngx_http_xray_sub_t));
    if (sub == NULL) {
        return NGX_ERROR;
    }

    sub->request = r;
    xray_id_segment(&ngx_http_xray_rng, sub->id);

    /* the event loop's time, as for the request's own call */
    tp = ngx_timeofday();
    sub->started = (uint64_t) tp->sec * 1000000 + tp->msec * 1000;

    sub->header.len = ctx->header.len;
    sub->header.data = ngx_pnalloc(r->pool, ctx->header.len);
    if (sub->header.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sub->header.data, ctx->header.data, ctx->header.len);
    ngx_memcpy(sub->header.data + NGX_HTTP_XRAY_PARENT_AT, sub->id,
               XRAY_ID_LEN);

    if (xray_w3c_trace_id_from_root(id, ngx_http_xray_trace_id(ctx))) {
        xray_traceparent_format(sub->traceparent, id, sub->id,
                                ctx->sampled);
        sub->has_traceparent = 1;
    }

    /* a subrequest of a subrequest inherited that one's context */

    parent = (r->parent != r->main) ? ngx_http_xray_get_sub(r->parent)
                                    : NULL;

    was = parent ? parent->header : ctx->header;

    if (ngx_http_xray_replace(r, &ngx_http_xray_header_name, &was,
                              &sub->header)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (sub->has_traceparent) {
        rc = parent ? (parent->has_traceparent ? NGX_OK : NGX_DECLINED)
                    : ngx_http_xray_traceparent(r->main, ctx);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (rc == NGX_OK) {
        was.data = parent ? parent->traceparent : ctx->traceparent;
        was.len = XRAY_TRACEPARENT_LEN;
        value.data = sub->traceparent;
        value.len = XRAY_TRACEPARENT_LEN;
        name = ngx_http_xray_traceparent_name;

        if (ngx_http_xray_replace(r, &name, &was, &value) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx->last_sub) {
        ctx->last_sub->next = sub;

    } else {
        ctx->subs = sub;
    }

    ctx->last_sub = sub;

    /* a subrequest's own slot: the request's context is its main's */
    ngx_http_set_ctx(r, sub, ngx_http_xray_module);

    return NGX_DECLINED;
}


/*
 * In a subrequest's header list: if a header name has the value was (the
 * context its parent forwards), the list becomes a copy of its own in which
 * that header has value instead.
 */

static ngx_int_t
ngx_http_xray_replace(ngx_http_request_t *r, ngx_str_t *name, ngx_str_t *was,
    ngx_str_t *value)
{
    ngx_table_elt_t         *h;
    ngx_http_xray_cursor_t   cur;

    ngx_memzero(&cur, sizeof(ngx_http_xray_cursor_t));

    for ( ;; ) {
        h = ngx_http_xray_header_find(&r->headers_in.headers, name, &cur);

        if (h == NULL) {
            return NGX_OK;
        }

        if (h->value.len == was->len
            && ngx_memcmp(h->value.data, was->data, was->len) == 0)
        {
            break;
        }
    }

    /* the list is rebuilt, its elements copied: the parent's stay intact */

    if (ngx_http_xray_header_remove(r, &r->headers_in.headers, name, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_xray_header_add(r, &r->headers_in.headers, name, value)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The call of a subrequest of a traced request, if it is one: in the
 * subrequest's module context, or, after an internal redirect of the
 * subrequest cleared that, in the request's list.
 */

ngx_http_xray_sub_t *
ngx_http_xray_get_sub(ngx_http_request_t *r)
{
    ngx_http_xray_ctx_t  *ctx;
    ngx_http_xray_sub_t  *sub;

    if (r == r->main) {
        return NULL;
    }

    sub = ngx_http_get_module_ctx(r, ngx_http_xray_module);

    if (sub != NULL) {
        return sub;
    }

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx == NULL) {
        return NULL;
    }

    for (sub = ctx->subs; sub; sub = sub->next) {
        if (sub->request == r) {
            ngx_http_set_ctx(r, sub, ngx_http_xray_module);
            return sub;
        }
    }

    return NULL;
}


static void
ngx_http_xray_cleanup(void *data)
{
    /* only a marker: see ngx_http_xray_get_ctx() */
}


/*
 * Finds and validates the client's X-Ray trace context: the X-Amzn-Trace-Id
 * header, or else xray_trace_context.  Returns NGX_OK with tc filled in (and
 * *first pointing at the header element, if the context came in one),
 * NGX_DECLINED when there is no usable context (*invalid says whether one
 * was dropped), or NGX_ERROR.
 */

static ngx_int_t
ngx_http_xray_read_context(ngx_http_request_t *r, xray_trace_ctx_t *tc,
    ngx_table_elt_t **first, ngx_uint_t *invalid)
{
    ngx_int_t          ret;
    ngx_uint_t         n, differ;
    const char        *reason;
    xray_header_rc_e   rc;

    *invalid = 0;

    /* repeated: harmless only when every copy says the same */
    *first = ngx_http_xray_header_first(&r->headers_in.headers,
                                        &ngx_http_xray_header_key,
                                        &n, &differ);

    reason = differ ? "several different headers" : NULL;

    if (n == 0) {
        ret = ngx_http_xray_read_alternative(r, tc, invalid);

        if (ret != NGX_OK) {
            return ret;
        }

    } else {

        if (reason == NULL) {
            rc = xray_header_parse((*first)->value.data, (*first)->value.len,
                                   tc);

            if (rc != XRAY_HEADER_OK) {
                reason = xray_header_strerror(rc);
            }
        }

        if (reason != NULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "xray: dropped client's X-Amzn-Trace-Id: %s",
                          reason);
            *invalid = 1;
            return NGX_DECLINED;
        }

        if (n > 1
            && ngx_http_xray_header_remove(r, &r->headers_in.headers,
                                           &ngx_http_xray_header_name, first)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * xray_trace_context: trace context from elsewhere than the header, for
 * clients that cannot set one (EventSource), typically a query argument.
 * It is URL-decoded, then held to exactly the header's rules.
 */

static ngx_int_t
ngx_http_xray_read_alternative(ngx_http_request_t *r, xray_trace_ctx_t *tc,
    ngx_uint_t *invalid)
{
    u_char                    *dst, *src;
    ngx_str_t                  value;
    xray_header_rc_e           rc;
    ngx_http_xray_loc_conf_t  *xlcf;

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (xlcf->trace_context == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_complex_value(r, xlcf->trace_context, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 0) {
        return NGX_DECLINED;
    }

    if (value.len > 3 * XRAY_HEADER_MAX_LEN) {
        rc = XRAY_HEADER_TOO_LONG;
        goto dropped;
    }

    dst = ngx_pnalloc(r->pool, value.len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    src = value.data;
    value.data = dst;

    ngx_unescape_uri(&dst, &src, value.len, 0);

    value.len = dst - value.data;

    rc = xray_header_parse(value.data, value.len, tc);

    if (rc == XRAY_HEADER_OK) {
        return NGX_OK;
    }

dropped:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "xray: dropped trace context from xray_trace_context: %s",
                  xray_header_strerror(rc));
    *invalid = 1;

    return NGX_DECLINED;
}


/*
 * W3C Trace Context: a valid traceparent sets cl->w3c, and then a valid
 * tracestate (the header lines joined) cl->state.  Invalid ones are
 * logged and counted; tracestate is not looked at without a valid
 * traceparent, as the specification says.
 */

static void
ngx_http_xray_read_w3c(ngx_http_request_t *r, ngx_http_xray_client_t *cl)
{
    ngx_uint_t                  n, differ;
    const char                 *reason;
    xray_w3c_rc_e               rc;
    ngx_table_elt_t            *h, *first;
    ngx_http_xray_cursor_t      cur;
    ngx_http_xray_main_conf_t  *xmcf;

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);

    /* repeated: harmless only when every copy says the same */
    first = ngx_http_xray_header_first(&r->headers_in.headers,
                                       &ngx_http_xray_traceparent_key,
                                       &n, &differ);

    if (n == 0) {
        return;
    }

    reason = differ ? "several different headers" : NULL;

    if (reason == NULL) {
        rc = xray_traceparent_parse(first->value.data, first->value.len,
                                    &cl->tp);
        if (rc != XRAY_W3C_OK) {
            reason = xray_w3c_strerror(rc);
        }
    }

    if (reason != NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "xray: dropped client's traceparent: %s", reason);
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_INVALID);
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_DROPPED_TRACEPARENT);
        return;
    }

    cl->w3c = 1;

    xray_tracestate_init(&cl->ts);
    ngx_memzero(&cur, sizeof(ngx_http_xray_cursor_t));

    while ((h = ngx_http_xray_header_find_in(&r->headers_in.headers,
                                             &ngx_http_xray_tracestate_key,
                                             &cur))
           != NULL)
    {
        rc = xray_tracestate_add(&cl->ts, h->value.data, h->value.len);

        if (rc != XRAY_W3C_OK) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "xray: dropped client's tracestate: %s",
                          xray_w3c_strerror(rc));
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_DROPPED_TRACESTATE);
            return;
        }
    }

    if (xray_tracestate_limit(&cl->ts)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "xray: cut %uz members of client's tracestate to "
                      "%d bytes", cl->ts.removed, XRAY_TRACESTATE_MAX_LEN);
    }

    cl->state = (cl->ts.n > 0);
}


/* removes the client's request headers named key, if there are any */

static ngx_int_t
ngx_http_xray_remove(ngx_http_request_t *r, ngx_http_xray_key_t *key)
{
    if (ngx_http_xray_header_find_in(&r->headers_in.headers, key, NULL)
        == NULL)
    {
        return NGX_OK;
    }

    return ngx_http_xray_header_remove(r, &r->headers_in.headers,
                                       &key->lowcase, NULL);
}


/* two valid contexts naming different traces: say which one is used */

static void
ngx_http_xray_conflict(ngx_http_request_t *r, ngx_http_xray_client_t *cl,
    ngx_uint_t w3c)
{
    u_char  root[XRAY_TRACE_ID_LEN];

    xray_w3c_root_from_trace_id(root, cl->tp.trace_id);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "xray: conflicting trace contexts: X-Amzn-Trace-Id names "
                  "%*s, traceparent names %*s; using %s",
                  (size_t) XRAY_TRACE_ID_LEN, cl->tc.root,
                  (size_t) XRAY_TRACE_ID_LEN, root,
                  w3c ? "traceparent" : "X-Amzn-Trace-Id");
}


static void
ngx_http_xray_decide(ngx_http_request_t *r, ngx_http_xray_main_conf_t *xmcf,
    ngx_http_xray_ctx_t *ctx, xray_sampled_e client)
{
    ngx_uint_t                   sampled;
    const xray_rule_t           *rule;
    ngx_http_xray_rule_stats_t  *stats;

    /* xray_sampling centralized: the service's rules, once they are live */

    if (xmcf->sampling_shm != NULL
        && ngx_http_xray_sampling_decide(r, ctx) == NGX_OK)
    {
        sampled = ctx->sampled;
        goto decided;
    }

    /* a set of the default alone (none given) matches with no call */

    if (xmcf->rules.nrules > 1) {
        ctx->rule = xray_rules_match(&xmcf->rules,
                                     r->headers_in.server.data,
                                     r->headers_in.server.len,
                                     r->method_name.data, r->method_name.len,
                                     r->uri.data, r->uri.len);
    }

    rule = &xmcf->rules.rules[ctx->rule];
    stats = &xmcf->shm->rules[ctx->rule];
    ctx->by_rule = 1;

    (void) ngx_atomic_fetch_add(&stats->matched, 1);

    /*
     * once the second's quota is taken, as for nearly every request of a
     * busy location, the reservoir is only read; the rate's draw is an
     * integer comparison, with no call
     */

    if (rule->fixed_target != 0
        && !ngx_http_xray_reservoir_spent(&stats->reservoir,
                                          rule->fixed_target, ngx_time())
        && ngx_http_xray_reservoir_take(&stats->reservoir,
                                        rule->fixed_target, ngx_time()))
    {
        (void) ngx_atomic_fetch_add(&stats->by_reservoir, 1);
        sampled = 1;

    } else if (rule->rate > 0
               && xray_rng_below(&ngx_http_xray_rng, rule->rate_threshold))
    {
        (void) ngx_atomic_fetch_add(&stats->by_rate, 1);
        sampled = 1;

    } else {
        sampled = 0;
    }

decided:

    if ((client == XRAY_SAMPLED_YES && !sampled)
        || (client == XRAY_SAMPLED_NO && sampled))
    {
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_OVERRIDDEN);
    }

    ctx->sampled = sampled;
}


/*
 * Writes the trace context forwarded upstream in the formats of
 * xray_propagate, as request headers, so that proxy_pass, grpc_pass and
 * fastcgi_pass forward them with no extra configuration.  X-Amzn-Trace-Id:
 * the client's header element h is rewritten in place, or one is added;
 * the trace is root, the fields kept from the client's header come from tc
 * (NULL: none), the parent is a new id, the upstream call's.  traceparent
 * and the client's tracestate ts (NULL: none) are added; the client's own
 * were removed before.  Both carry the same trace and the same parent.  The
 * X-Ray form is kept in ctx for the ids and the variables, whatever is
 * forwarded; the W3C form is written only where it is used
 * (ngx_http_xray_traceparent()).
 */

static ngx_int_t
ngx_http_xray_forward(ngx_http_request_t *r, ngx_http_xray_loc_conf_t *xlcf,
    ngx_http_xray_ctx_t *ctx, const u_char *root, xray_trace_ctx_t *tc,
    ngx_table_elt_t *h, xray_tracestate_t *ts)
{
    u_char          *p, *end;
    u_char           buf[XRAY_HEADER_OUT_MAX];
    size_t           len;
    ngx_str_t        value;
    xray_sampled_e   sampled;

    len = XRAY_HEADER_FORMAT_LEN(tc);
    sampled = ctx->sampled ? XRAY_SAMPLED_YES : XRAY_SAMPLED_NO;

    if (h != NULL && len <= h->value.len
        && ngx_http_xray_rewritable(r, &h->value))
    {
        p = h->value.data;
        end = p + h->value.len;

        /*
         * root and tc may point into the client's header: it is written
         * over directly only where nothing is kept from it and the root,
         * if it is there, is already where it goes ("Root=" first);
         * otherwise it is written aside first
         */

        if ((tc != NULL && tc->nkept != 0)
            || (root != p + XRAY_HEADER_ROOT_AT
                && root + XRAY_TRACE_ID_LEN > p && root < end))
        {
            xray_id_segment(&ngx_http_xray_rng, buf + XRAY_HEADER_PARENT_AT);
            len = xray_header_format(buf, root, buf + XRAY_HEADER_PARENT_AT,
                                     sampled, tc);
            ngx_memcpy(p, buf, len);

            goto written;
        }

    } else {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }
    }

    /* the upstream call's id, where the header's Parent goes */

    xray_id_segment(&ngx_http_xray_rng, p + XRAY_HEADER_PARENT_AT);
    len = xray_header_format(p, root, p + XRAY_HEADER_PARENT_AT, sampled, tc);

written:

    ctx->header.data = p;
    ctx->header.len = len;

    if (!(xlcf->propagate & NGX_HTTP_XRAY_FORMAT_X)) {
        if (h != NULL
            && ngx_http_xray_header_remove(r, &r->headers_in.headers,
                                           &ngx_http_xray_header_name, NULL)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (h == NULL) {
        if (ngx_http_xray_header_add(r, &r->headers_in.headers,
                                     &ngx_http_xray_header_name,
                                     &ctx->header)
            == NULL)
        {
            return NGX_ERROR;
        }

    } else {
        h->key = ngx_http_xray_header_name;
        h->value = ctx->header;
    }

    if (!(xlcf->propagate & NGX_HTTP_XRAY_FORMAT_W)) {
        return NGX_OK;
    }

    switch (ngx_http_xray_traceparent(r, ctx)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return NGX_OK;

    default: /* NGX_ERROR */
        return NGX_ERROR;
    }

    value.data = ctx->traceparent;
    value.len = XRAY_TRACEPARENT_LEN;

    if (ngx_http_xray_header_add(r, &r->headers_in.headers,
                                 &ngx_http_xray_traceparent_name, &value)
        == NULL)
    {
        return NGX_ERROR;
    }

    if (ts == NULL) {
        return NGX_OK;
    }

    value.data = ngx_pnalloc(r->pool, ts->len);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    value.len = xray_tracestate_format(value.data, ts);

    if (ngx_http_xray_header_add(r, &r->headers_in.headers,
                                 &ngx_http_xray_tracestate_name, &value)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Whether a client's header value may be written over: only where nginx
 * read it, in the buffer of the request's header, which nothing else
 * holds (values set by modules may be configuration strings, shared by
 * every request; HTTP/2's are copies in the pool, and are not looked for).
 */

static ngx_uint_t
ngx_http_xray_rewritable(ngx_http_request_t *r, ngx_str_t *value)
{
    ngx_buf_t  *b;

    b = r->header_in;

    return b != NULL
           && value->data >= b->start
           && value->data + value->len <= b->end;
}


/*
 * The segment's id in hex, into buf (XRAY_ID_LEN bytes), which it returns.
 * It is made on first use: an unsampled request that records nothing and
 * logs no $xray_segment_id never needs one.
 */

u_char *
ngx_http_xray_segment_id(ngx_http_xray_ctx_t *ctx, u_char *buf)
{
    if (ctx->segment_id == 0) {
        ctx->segment_id = xray_id_segment_value(&ngx_http_xray_rng);
    }

    xray_id_hex(ctx->segment_id, buf);

    return buf;
}


/*
 * The W3C form of the forwarded context, written on first use: most
 * locations neither forward nor log it, and it must cost them nothing.
 * NGX_OK with ctx->traceparent set; NGX_DECLINED where there is none (an
 * all-zero Root, which X-Ray takes, has no W3C form); NGX_ERROR.
 */

ngx_int_t
ngx_http_xray_traceparent(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx)
{
    u_char  id[XRAY_W3C_TRACE_ID_LEN];

    if (!ctx->traceparent_tried) {

        if (xray_w3c_trace_id_from_root(id, ngx_http_xray_trace_id(ctx))) {
            ctx->traceparent = ngx_pnalloc(r->pool, XRAY_TRACEPARENT_LEN);
            if (ctx->traceparent == NULL) {
                return NGX_ERROR;
            }

            xray_traceparent_format(ctx->traceparent, id,
                                    ngx_http_xray_upstream_id(ctx),
                                    ctx->sampled);
        }

        ctx->traceparent_tried = 1;
    }

    return ctx->traceparent ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_xray_context_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_xray_key_init(&ngx_http_xray_header_key);
    ngx_http_xray_key_init(&ngx_http_xray_traceparent_key);
    ngx_http_xray_key_init(&ngx_http_xray_tracestate_key);

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_xray_handler;

    return NGX_OK;
}


/* after fork: workers never share a sequence */

ngx_int_t
ngx_http_xray_rng_init(ngx_cycle_t *cycle)
{
    if (xray_rng_seed(&ngx_http_xray_rng) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "xray: RAND_bytes() failed to seed the id generator");
        return NGX_ERROR;
    }

    return NGX_OK;
}
