/*
 * ngx_http_xray_module: AWS X-Ray trace context at the edge.
 *
 * The nginx face of the module: directives, configuration, the phase handler
 * that validates the client's X-Amzn-Trace-Id, decides sampling and rewrites
 * the header forwarded upstream, the response header filter, and variables.
 * The parsing, id and rule logic lives in src/ and knows nothing of nginx.
 */

#include "ngx_http_xray.h"


static ngx_int_t ngx_http_xray_handler(ngx_http_request_t *r);
static void ngx_http_xray_cleanup(void *data);
static ngx_int_t ngx_http_xray_read_context(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx, xray_trace_ctx_t *tc, ngx_table_elt_t **first,
    ngx_uint_t *invalid);
static ngx_int_t ngx_http_xray_read_alternative(ngx_http_request_t *r,
    xray_trace_ctx_t *tc, ngx_uint_t *invalid);
static void ngx_http_xray_decide(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx, xray_sampled_e client);
static ngx_int_t ngx_http_xray_forward(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx, xray_trace_ctx_t *tc, ngx_table_elt_t *h);
static ngx_uint_t ngx_http_xray_is_trace_header(ngx_table_elt_t *h);
static ngx_int_t ngx_http_xray_remove_headers(ngx_http_request_t *r,
    ngx_table_elt_t **keep);

static ngx_int_t ngx_http_xray_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_xray_cors(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_xray_find(ngx_list_t *list, ngx_str_t *name);
static ngx_uint_t ngx_http_xray_list_has(u_char *p, u_char *last,
    ngx_str_t *token);

static ngx_int_t ngx_http_xray_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_xray_add_variables(ngx_conf_t *cf);
static void *ngx_http_xray_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_xray_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_xray_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_xray_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_xray_sampling_rules(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_daemon(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_redact(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_xray_pool_alloc(void *data, size_t size);
static ngx_int_t ngx_http_xray_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_xray_init_process(ngx_cycle_t *cycle);
static void ngx_http_xray_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_xray_capture_errors[] = {
    { ngx_string("off"), NGX_HTTP_XRAY_CAPTURE_OFF },
    { ngx_string("5xx"), NGX_HTTP_XRAY_CAPTURE_5XX },
    { ngx_string("4xx"), NGX_HTTP_XRAY_CAPTURE_4XX },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_xray_in_progress_values[] = {
    { ngx_string("off"), NGX_HTTP_XRAY_IN_PROGRESS_OFF },
    { ngx_string("stream"), NGX_HTTP_XRAY_IN_PROGRESS_STREAM },
    { ngx_string("always"), NGX_HTTP_XRAY_IN_PROGRESS_ALWAYS },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_xray_commands[] = {

    { ngx_string("xray"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, enable),
      NULL },

    { ngx_string("xray_originate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, originate),
      NULL },

    { ngx_string("xray_trust_client_sampling"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, trust_sampling),
      NULL },

    { ngx_string("xray_sampling_rules"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_xray_sampling_rules,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("xray_daemon"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_xray_daemon,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("xray_segment_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, segment_name),
      NULL },

    { ngx_string("xray_annotation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_xray_field,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, annotations),
      NULL },

    { ngx_string("xray_metadata"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_xray_field,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, metadata),
      NULL },

    { ngx_string("xray_record_query"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, record_query),
      NULL },

    { ngx_string("xray_redact"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_xray_redact,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("xray_capture_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_xray_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, capture_errors),
      &ngx_http_xray_capture_errors },

    { ngx_string("xray_in_progress"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_xray_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, in_progress),
      &ngx_http_xray_in_progress_values },

    { ngx_string("xray_cors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, cors),
      NULL },

    { ngx_string("xray_sse"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, sse),
      NULL },

    { ngx_string("xray_trace_context"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, trace_context),
      NULL },

    { ngx_string("xray_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_xray_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_xray_module_ctx = {
    ngx_http_xray_add_variables,           /* preconfiguration */
    ngx_http_xray_init,                    /* postconfiguration */

    ngx_http_xray_create_main_conf,        /* create main configuration */
    ngx_http_xray_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_xray_create_loc_conf,         /* create location configuration */
    ngx_http_xray_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_xray_module = {
    NGX_MODULE_V1,
    &ngx_http_xray_module_ctx,             /* module context */
    ngx_http_xray_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_xray_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_xray_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    NGX_HTTP_XRAY_VAR_TRACE_ID = 0,
    NGX_HTTP_XRAY_VAR_SEGMENT_ID,
    NGX_HTTP_XRAY_VAR_UPSTREAM_ID,
    NGX_HTTP_XRAY_VAR_SAMPLED,
    NGX_HTTP_XRAY_VAR_TRACE_HEADER
};


static ngx_http_variable_t  ngx_http_xray_vars[] = {

    { ngx_string("xray_trace_id"), NULL, ngx_http_xray_variable,
      NGX_HTTP_XRAY_VAR_TRACE_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("xray_segment_id"), NULL, ngx_http_xray_variable,
      NGX_HTTP_XRAY_VAR_SEGMENT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("xray_upstream_id"), NULL, ngx_http_xray_variable,
      NGX_HTTP_XRAY_VAR_UPSTREAM_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("xray_sampled"), NULL, ngx_http_xray_variable,
      NGX_HTTP_XRAY_VAR_SAMPLED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("xray_trace_header"), NULL, ngx_http_xray_variable,
      NGX_HTTP_XRAY_VAR_TRACE_HEADER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* lines of one Access-Control-* header the CORS merge handles */
#define NGX_HTTP_XRAY_CORS_LINES        16

/* X-Ray indexes 50 annotations a trace; streams add sse and sse_reconnect */
#define NGX_HTTP_XRAY_ANNOTATIONS_MAX   48


static ngx_str_t   ngx_http_xray_header_name = ngx_string("X-Amzn-Trace-Id");
static u_char      ngx_http_xray_header_lc[] = "x-amzn-trace-id";
static ngx_uint_t  ngx_http_xray_header_hash;

xray_rng_t  ngx_http_xray_rng;

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_xray_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   trust;
    ngx_uint_t                  invalid;
    ngx_time_t                 *tp;
    ngx_table_elt_t            *h;
    xray_trace_ctx_t            tc;
    ngx_pool_cleanup_t         *cln;
    ngx_http_xray_ctx_t        *ctx;
    ngx_http_xray_loc_conf_t   *xlcf;
    ngx_http_xray_main_conf_t  *xmcf;

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (!xlcf->enable || r != r->main) {
        return NGX_DECLINED;
    }

    if (ngx_http_xray_get_ctx(r) != NULL) {
        /* decided once per request, internal redirects included */
        return NGX_DECLINED;
    }

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_xray_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    /* found again through the pool after an internal redirect clears ctx */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_xray_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_xray_module);

    ngx_memzero(&tc, sizeof(xray_trace_ctx_t));

    rc = ngx_http_xray_read_context(r, ctx, &tc, &h, &invalid);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        if (invalid) {
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_INVALID);
        }

        if (h != NULL) {
            if (ngx_http_xray_remove_headers(r, NULL) != NGX_OK) {
                return NGX_ERROR;
            }

            h = NULL;
        }

        if (!xlcf->originate) {
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_NO_CONTEXT);
            return NGX_DECLINED;
        }

        xray_id_trace(&ngx_http_xray_rng, ngx_time(), ctx->trace_id);
        ctx->originated = 1;
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_ORIGINATED);
    }

    ctx->traced = 1;
    xray_id_segment(&ngx_http_xray_rng, ctx->segment_id);
    xray_id_segment(&ngx_http_xray_rng, ctx->upstream_id);

    /* the event loop's time, as r->start_sec and r->start_msec are */
    tp = ngx_timeofday();
    ctx->decided = (uint64_t) tp->sec * 1000000 + tp->msec * 1000;

    if (tc.sampled != XRAY_SAMPLED_NONE
        && tc.sampled != XRAY_SAMPLED_REQUESTED
        && xlcf->trust_sampling != NULL)
    {
        if (ngx_http_complex_value(r, xlcf->trust_sampling, &trust)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (trust.len && !(trust.len == 1 && trust.data[0] == '0')) {
            ctx->sampled = (tc.sampled == XRAY_SAMPLED_YES);
            ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_TRUSTED);
            goto decided;
        }
    }

    ngx_http_xray_decide(r, ctx, tc.sampled);

decided:

    ngx_http_xray_count(xmcf, ctx->sampled ? NGX_HTTP_XRAY_SAMPLED
                                           : NGX_HTTP_XRAY_NOT_SAMPLED);

    if (tc.sampled == XRAY_SAMPLED_REQUESTED) {
        ctx->requested = 1;
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_REQUESTED);
    }

    if (ngx_http_xray_forward(r, ctx, ctx->originated ? NULL : &tc, h)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "xray: rule %ui, sampled %ui, forwarding \"%V\"",
                   ctx->rule, (ngx_uint_t) ctx->sampled, &ctx->header);

    return NGX_DECLINED;
}


ngx_http_xray_ctx_t *
ngx_http_xray_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_xray_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_xray_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {

        /*
         * an internal redirect resets module contexts: the pool cleanup
         * registered with ours still points at it
         */

        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_xray_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_xray_module);
                break;
            }
        }
    }

    return ctx;
}


static void
ngx_http_xray_cleanup(void *data)
{
    /* only a marker: see ngx_http_xray_get_ctx() */
}


/*
 * Finds and validates the client's trace context: the X-Amzn-Trace-Id
 * header, or else xray_trace_context.  Returns NGX_OK with ctx and tc filled
 * in, NGX_DECLINED when there is no usable context (*invalid says whether
 * one was dropped; *first points at the header element if one came), or
 * NGX_ERROR.
 */

static ngx_int_t
ngx_http_xray_read_context(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx,
    xray_trace_ctx_t *tc, ngx_table_elt_t **first, ngx_uint_t *invalid)
{
    ngx_int_t          ret;
    ngx_uint_t         i, n;
    const char        *reason;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h;
    xray_header_rc_e   rc;

    *first = NULL;
    *invalid = 0;
    reason = NULL;
    n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /* nginx hashed the lowercased name already: compare that first */
        if (h[i].hash != ngx_http_xray_header_hash
            || h[i].key.len != sizeof(ngx_http_xray_header_lc) - 1
            || ngx_strncmp(h[i].lowcase_key, ngx_http_xray_header_lc,
                           sizeof(ngx_http_xray_header_lc) - 1) != 0)
        {
            continue;
        }

        if (n++ == 0) {
            *first = &h[i];
            continue;
        }

        /* repeated: harmless only when every copy says the same */
        if (h[i].value.len != (*first)->value.len
            || ngx_memcmp(h[i].value.data, (*first)->value.data,
                          h[i].value.len) != 0)
        {
            reason = "several different headers";
        }
    }

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

        if (n > 1 && ngx_http_xray_remove_headers(r, first) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ngx_memcpy(ctx->trace_id, tc->root, XRAY_TRACE_ID_LEN);

    if (tc->parent) {
        ngx_memcpy(ctx->client_parent, tc->parent, XRAY_ID_LEN);
        ctx->has_parent = 1;
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


static void
ngx_http_xray_decide(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx,
    xray_sampled_e client)
{
    ngx_uint_t                   sampled;
    const xray_rule_t           *rule;
    ngx_http_xray_rule_stats_t  *stats;
    ngx_http_xray_main_conf_t   *xmcf;

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);

    ctx->rule = xray_rules_match(&xmcf->rules,
                                 r->headers_in.server.data,
                                 r->headers_in.server.len,
                                 r->method_name.data, r->method_name.len,
                                 r->uri.data, r->uri.len);

    rule = &xmcf->rules.rules[ctx->rule];
    stats = &xmcf->shm->rules[ctx->rule];
    ctx->by_rule = 1;

    (void) ngx_atomic_fetch_add(&stats->matched, 1);

    if (ngx_http_xray_reservoir_take(stats, rule->fixed_target,
                                     ngx_time()))
    {
        (void) ngx_atomic_fetch_add(&stats->by_reservoir, 1);
        sampled = 1;

    } else if (rule->rate > 0
               && xray_rng_uniform(&ngx_http_xray_rng) < rule->rate)
    {
        (void) ngx_atomic_fetch_add(&stats->by_rate, 1);
        sampled = 1;

    } else {
        sampled = 0;
    }

    if ((client == XRAY_SAMPLED_YES && !sampled)
        || (client == XRAY_SAMPLED_NO && sampled))
    {
        ngx_http_xray_count(xmcf, NGX_HTTP_XRAY_OVERRIDDEN);
    }

    ctx->sampled = sampled;
}


/*
 * Puts exactly one X-Amzn-Trace-Id in the request headers, so that
 * proxy_pass, grpc_pass and fastcgi_pass forward it with no extra
 * configuration: the client's header element is rewritten in place, or a new
 * one is added for a trace this proxy originated.
 */

static ngx_int_t
ngx_http_xray_forward(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx,
    xray_trace_ctx_t *tc, ngx_table_elt_t *h)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, XRAY_HEADER_FORMAT_LEN(tc));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->header.data = p;
    ctx->header.len = xray_header_format(p, ctx->trace_id, ctx->upstream_id,
                                         ctx->sampled ? XRAY_SAMPLED_YES
                                                      : XRAY_SAMPLED_NO,
                                         tc);

    if (h == NULL) {

        /* nginx leaves the header list of an HTTP/0.9 request unset */
        if (r->headers_in.headers.nalloc == 0
            && ngx_list_init(&r->headers_in.headers, r->pool, 1,
                             sizeof(ngx_table_elt_t))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = ngx_http_xray_header_hash;
        h->lowcase_key = ngx_http_xray_header_lc;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    h->key = ngx_http_xray_header_name;
    h->value = ctx->header;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_xray_is_trace_header(ngx_table_elt_t *h)
{
    return h->key.len == ngx_http_xray_header_name.len
           && ngx_strncasecmp(h->key.data, ngx_http_xray_header_name.data,
                              h->key.len) == 0;
}


/*
 * Removes every trace header from the request headers but *keep (which may
 * point at NULL; it is updated to where that header now is).  The list is
 * rebuilt rather than compacted in place: nginx keeps pointers to some
 * elements (headers_in.host, user_agent...), and moving elements would leave
 * them pointing at other headers.
 */

static ngx_int_t
ngx_http_xray_remove_headers(ngx_http_request_t *r, ngx_table_elt_t **keep)
{
    ngx_uint_t        i, n;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

    /* a copy of the list head: its parts (and elements) stay where they are */
    old = r->headers_in.headers;
    n = 0;

    for (part = &old.part; part; part = part->next) {
        n += part->nelts;
    }

    if (ngx_list_init(&r->headers_in.headers, r->pool, n,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (part = &old.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {

            if (ngx_http_xray_is_trace_header(&h[i])
                && (keep == NULL || &h[i] != *keep))
            {
                continue;
            }

            copy = ngx_list_push(&r->headers_in.headers);
            if (copy == NULL) {
                return NGX_ERROR;
            }

            *copy = h[i];

            if (keep && &h[i] == *keep) {
                *keep = copy;
            }
        }
    }

    return NGX_OK;
}


/*
 * A client that sent Sampled=? asked this proxy to decide: the decision goes
 * back in the response header, as X-Ray services answer it.
 */

static ngx_int_t
ngx_http_xray_header_filter(ngx_http_request_t *r)
{
    u_char                    *p;
    ngx_uint_t                 i, stream;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h, *found;
    ngx_http_xray_ctx_t       *ctx;
    ngx_http_xray_loc_conf_t  *xlcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    if (xlcf->cors && ngx_http_xray_cors(r) != NGX_OK) {
        return NGX_ERROR;
    }

    stream = (r->headers_out.content_type.len
                  >= sizeof("text/event-stream") - 1
              && ngx_strncasecmp(r->headers_out.content_type.data,
                                 (u_char *) "text/event-stream",
                                 sizeof("text/event-stream") - 1)
                 == 0);

    /*
     * the upstream module reads u->buffering only after the header is sent,
     * as it does after X-Accel-Buffering: events then go out as they come
     */

    if (stream && xlcf->sse && r->upstream) {
        r->upstream->buffering = 0;
    }

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx == NULL || !ctx->traced) {
        return ngx_http_next_header_filter(r);
    }

    ctx->stream = stream;

    if (ctx->sampled) {
        ngx_http_xray_in_progress(r, ctx);
    }

    if (!ctx->requested) {
        return ngx_http_next_header_filter(r);
    }

    found = NULL;
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0 || !ngx_http_xray_is_trace_header(&h[i])) {
            continue;
        }

        /* the upstream's answer is superseded by this proxy's decision */
        if (found == NULL) {
            found = &h[i];

        } else {
            h[i].hash = 0;
        }
    }

    if (found == NULL) {
        found = ngx_list_push(&r->headers_out.headers);
        if (found == NULL) {
            return NGX_ERROR;
        }

        found->hash = 1;
        found->key = ngx_http_xray_header_name;
        found->lowcase_key = ngx_http_xray_header_lc;
#if (nginx_version >= 1023000)
        found->next = NULL;
#endif
    }

    p = ngx_pnalloc(r->pool, XRAY_HEADER_FORMAT_LEN((xray_trace_ctx_t *) 0));
    if (p == NULL) {
        return NGX_ERROR;
    }

    found->value.data = p;
    found->value.len = xray_header_format(p, ctx->trace_id, NULL,
                                          ctx->sampled ? XRAY_SAMPLED_YES
                                                       : XRAY_SAMPLED_NO,
                                          NULL);

    return ngx_http_next_header_filter(r);
}


/*
 * xray_cors: extends a CORS policy that is already there (from the upstream
 * or add_header) so that browsers may send the trace header, and page
 * scripts may read it.  A response without Access-Control-Allow-Origin has
 * no policy and is left alone; Allow-Origin, -Credentials and -Methods are
 * never touched: who may call stays exactly as configured.
 */

static ngx_int_t
ngx_http_xray_cors(ngx_http_request_t *r)
{
    u_char            *p, *q, *last, *end;
    size_t             len;
    ngx_str_t          name, t, *token;
    ngx_uint_t         i, n;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h, *lines[NGX_HTTP_XRAY_CORS_LINES];

    static ngx_str_t  origin = ngx_string("Access-Control-Allow-Origin");
    static ngx_str_t  request = ngx_string("Access-Control-Request-Method");
    static ngx_str_t  allow = ngx_string("Access-Control-Allow-Headers");
    static ngx_str_t  expose = ngx_string("Access-Control-Expose-Headers");

    if (ngx_http_xray_find(&r->headers_out.headers, &origin) == NULL) {
        return NGX_OK;
    }

    /* a preflight asks what may be sent; an actual response, what is read */

    if (r->method == NGX_HTTP_OPTIONS
        && ngx_http_xray_find(&r->headers_in.headers, &request))
    {
        name = allow;

    } else {
        name = expose;
    }

    token = &ngx_http_xray_header_name;

    /* every line of that header is merged into the first, without repeats */

    /*
     * worst case: every input byte a one-byte token, each written with ", "
     * before it, then ", X-Amzn-Trace-Id"
     */

    n = 0;
    len = sizeof(", ") - 1 + token->len;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len != name.len
            || ngx_strncasecmp(h[i].key.data, name.data, name.len) != 0)
        {
            continue;
        }

        if (n == NGX_HTTP_XRAY_CORS_LINES) {
            /* nobody sends that many: leave such a response as it is */
            return NGX_OK;
        }

        lines[n++] = &h[i];
        len += 2 * h[i].value.len + sizeof(", ") - 1;
    }

    if (n == 0) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = name;
        h->lowcase_key = NULL;
        h->value = *token;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    end = p;

    for (i = 0; i < n; i++) {

        /* split on commas, trim optional whitespace, keep first spellings */

        q = lines[i]->value.data;
        last = q + lines[i]->value.len;

        while (q < last) {
            t.data = q;

            while (q < last && *q != ',') {
                q++;
            }

            t.len = q - t.data;
            q++;

            while (t.len && (t.data[0] == ' ' || t.data[0] == '\t')) {
                t.data++;
                t.len--;
            }

            while (t.len && (t.data[t.len - 1] == ' '
                             || t.data[t.len - 1] == '\t'))
            {
                t.len--;
            }

            if (t.len == 0 || ngx_http_xray_list_has(p, end, &t)) {
                continue;
            }

            if (end != p) {
                *end++ = ',';
                *end++ = ' ';
            }

            end = ngx_cpymem(end, t.data, t.len);
        }

        if (i > 0) {
            lines[i]->hash = 0;
        }
    }

    if (!ngx_http_xray_list_has(p, end, token)) {
        if (end != p) {
            *end++ = ',';
            *end++ = ' ';
        }

        end = ngx_cpymem(end, token->data, token->len);
    }

    lines[0]->value.data = p;
    lines[0]->value.len = end - p;

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_xray_find(ngx_list_t *list, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &list->part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0
            && h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


/* whether a ", "-separated list holds token, compared case-insensitively */

static ngx_uint_t
ngx_http_xray_list_has(u_char *p, u_char *last, ngx_str_t *token)
{
    u_char  *q;

    while (p < last) {
        q = p;

        while (q < last && *q != ',') {
            q++;
        }

        if ((size_t) (q - p) == token->len
            && ngx_strncasecmp(p, token->data, token->len) == 0)
        {
            return 1;
        }

        p = q + 2;
    }

    return 0;
}


static ngx_int_t
ngx_http_xray_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_http_xray_ctx_t  *ctx;

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx == NULL || !ctx->traced) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_XRAY_VAR_TRACE_ID:
        v->data = ctx->trace_id;
        v->len = XRAY_TRACE_ID_LEN;
        break;

    case NGX_HTTP_XRAY_VAR_SEGMENT_ID:
        v->data = ctx->segment_id;
        v->len = XRAY_ID_LEN;
        break;

    case NGX_HTTP_XRAY_VAR_UPSTREAM_ID:
        v->data = ctx->upstream_id;
        v->len = XRAY_ID_LEN;
        break;

    case NGX_HTTP_XRAY_VAR_SAMPLED:
        v->data = (u_char *) (ctx->sampled ? "1" : "0");
        v->len = 1;
        break;

    default: /* NGX_HTTP_XRAY_VAR_TRACE_HEADER */
        v->data = ctx->header.data;
        v->len = ctx->header.len;
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_xray_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_xray_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_xray_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_xray_main_conf_t  *xmcf;

    xmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_xray_main_conf_t));
    if (xmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     xmcf->rules = { NULL, 0, 0 };
     *     xmcf->rules_crc = 0;
     *     xmcf->shm_zone = NULL;
     *     xmcf->shm = NULL;
     *     xmcf->daemon = { 0, NULL };
     *     xmcf->enabled = 0;
     */

    xmcf->batch = XRAY_EMIT_BATCH_DEFAULT;
    xmcf->flush = 100;

    return xmcf;
}


static char *
ngx_http_xray_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_xray_main_conf_t  *xmcf = conf;

    if (xmcf->rules.rules == NULL
        && xray_rules_default(&xmcf->rules, ngx_http_xray_pool_alloc,
                              cf->pool) != 0)
    {
        return NGX_CONF_ERROR;
    }

    if (xmcf->daemon.len == 0) {
        if (ngx_http_xray_daemon_init(cf, xmcf, NULL) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_xray_shm_add(cf, xmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_xray_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_xray_loc_conf_t  *xlcf;

    xlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_xray_loc_conf_t));
    if (xlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     xlcf->trust_sampling = NULL;
     *     xlcf->segment_name = NULL;
     *     xlcf->trace_context = NULL;
     */

    xlcf->enable = NGX_CONF_UNSET;
    xlcf->originate = NGX_CONF_UNSET;
    xlcf->annotations = NGX_CONF_UNSET_PTR;
    xlcf->metadata = NGX_CONF_UNSET_PTR;
    xlcf->redact = NGX_CONF_UNSET_PTR;
    xlcf->record_query = NGX_CONF_UNSET;
    xlcf->capture_errors = NGX_CONF_UNSET_UINT;
    xlcf->in_progress = NGX_CONF_UNSET_UINT;
    xlcf->cors = NGX_CONF_UNSET;
    xlcf->sse = NGX_CONF_UNSET;

    return xlcf;
}


static char *
ngx_http_xray_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_xray_loc_conf_t  *prev = parent;
    ngx_http_xray_loc_conf_t  *conf = child;

    ngx_http_xray_main_conf_t  *xmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->originate, prev->originate, 0);

    if (conf->trust_sampling == NULL) {
        conf->trust_sampling = prev->trust_sampling;
    }

    if (conf->segment_name == NULL) {
        conf->segment_name = prev->segment_name;
    }

    if (conf->trace_context == NULL) {
        conf->trace_context = prev->trace_context;
    }

    ngx_conf_merge_value(conf->cors, prev->cors, 0);
    ngx_conf_merge_value(conf->sse, prev->sse, 0);

    /*
     * lists are inherited whole, as add_header's are: a level that sets
     * any entry replaces the inherited ones
     */
    ngx_conf_merge_ptr_value(conf->annotations, prev->annotations, NULL);
    ngx_conf_merge_ptr_value(conf->metadata, prev->metadata, NULL);
    ngx_conf_merge_ptr_value(conf->redact, prev->redact, NULL);

    ngx_conf_merge_value(conf->record_query, prev->record_query, 0);
    ngx_conf_merge_uint_value(conf->capture_errors, prev->capture_errors,
                              NGX_HTTP_XRAY_CAPTURE_5XX);
    ngx_conf_merge_uint_value(conf->in_progress, prev->in_progress,
                              NGX_HTTP_XRAY_IN_PROGRESS_STREAM);

    if (conf->enable) {
        xmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_xray_module);
        xmcf->enabled = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_xray_sampling_rules(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_xray_main_conf_t  *xmcf = conf;

    char        err[XRAY_RULES_ERR_LEN];
    u_char     *buf;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t  *value, name;
    ngx_file_t  file;

    if (xmcf->rules.rules != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = name;
    file.log = cf->log;

    if (ngx_fd_info(fd, &file.info) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", name.data);
        goto failed;
    }

    /* a rules document is a few kilobytes; refuse anything absurd */
    if (ngx_file_size(&file.info) > 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sampling rules file \"%s\" is larger than 1m",
                           name.data);
        goto failed;
    }

    buf = ngx_pnalloc(cf->temp_pool, (size_t) ngx_file_size(&file.info) + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, (size_t) ngx_file_size(&file.info), 0);
    if (n == NGX_ERROR) {
        goto failed;
    }

    if (xray_rules_parse(&xmcf->rules, (char *) buf, (size_t) n,
                         ngx_http_xray_pool_alloc, cf->pool, err)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid sampling rules file \"%s\": %s",
                           name.data, err);
        xmcf->rules.rules = NULL;
        goto failed;
    }

    xmcf->rules_crc = ngx_crc32_long(buf, n);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    return NGX_CONF_OK;

failed:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    return NGX_CONF_ERROR;
}


static char *
ngx_http_xray_daemon(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_xray_main_conf_t  *xmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value, s;
    ngx_uint_t  i;

    if (xmcf->daemon.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "batch=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n < 1 || n > XRAY_EMIT_BATCH_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid batch \"%V\": it must be "
                                   "a number from 1 to %d",
                                   &value[i], XRAY_EMIT_BATCH_MAX);
                return NGX_CONF_ERROR;
            }

            xmcf->batch = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "flush=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            xmcf->flush = ngx_parse_time(&s, 0);

            if (xmcf->flush == (ngx_msec_t) NGX_ERROR || xmcf->flush == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid flush time \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return ngx_http_xray_daemon_init(cf, xmcf, &value[1]);
}


static char *
ngx_http_xray_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_array_t                      **fields;
    ngx_http_xray_field_t             *f;
    ngx_http_compile_complex_value_t   ccv;

    fields = (ngx_array_t **) (p + cmd->offset);

    if (*fields == NGX_CONF_UNSET_PTR) {
        *fields = ngx_array_create(cf->pool, 4,
                                   sizeof(ngx_http_xray_field_t));
        if (*fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    if (cmd->offset == offsetof(ngx_http_xray_loc_conf_t, annotations)) {

        if (!xray_annotation_key_valid(value[1].data, value[1].len)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid annotation key \"%V\": X-Ray "
                               "allows 1 to %d of A-Z, a-z, 0-9 and _",
                               &value[1], XRAY_ANNOTATION_KEY_MAX);
            return NGX_CONF_ERROR;
        }

        /* X-Ray indexes 50 annotations a trace; a stream adds two */
        if ((*fields)->nelts == NGX_HTTP_XRAY_ANNOTATIONS_MAX) {
            return "is used more than 48 times";
        }

        if ((value[1].len == sizeof("sse") - 1
             && ngx_strncmp(value[1].data, "sse", value[1].len) == 0)
            || (value[1].len == sizeof("sse_reconnect") - 1
                && ngx_strncmp(value[1].data, "sse_reconnect",
                               value[1].len) == 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "annotation key \"%V\" is the module's own",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

    } else if (value[1].len == sizeof("last_event_id") - 1
               && ngx_strncmp(value[1].data, "last_event_id",
                              value[1].len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "metadata key \"%V\" is the module's own",
                           &value[1]);
        return NGX_CONF_ERROR;

    } else if (value[1].len == 0 || value[1].len > XRAY_STRING_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid metadata key \"%V\": it must be 1 to "
                           "%d bytes", &value[1], XRAY_STRING_MAX);
        return NGX_CONF_ERROR;
    }

    f = (*fields)->elts;

    for (i = 0; i < (*fields)->nelts; i++) {
        if (f[i].key.len == value[1].len
            && ngx_strncmp(f[i].key.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate key \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    f = ngx_array_push(*fields);
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    f->key = value[1];
    f->kind = XRAY_ANNOTATION_STRING;

    if (cf->args->nelts == 4) {
        if (ngx_strcmp(value[3].data, "number") == 0) {
            f->kind = XRAY_ANNOTATION_NUMBER;

        } else if (ngx_strcmp(value[3].data, "boolean") == 0) {
            f->kind = XRAY_ANNOTATION_BOOLEAN;

        } else if (ngx_strcmp(value[3].data, "string") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid annotation type \"%V\": it must be "
                               "\"string\", \"number\" or \"boolean\"",
                               &value[3]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &f->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_xray_redact(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
#if (NGX_PCRE)
    ngx_http_xray_loc_conf_t  *xlcf = conf;

    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_str_t           *value;
    ngx_regex_t        **re;
    ngx_regex_compile_t  rc;

    if (xlcf->redact == NGX_CONF_UNSET_PTR) {
        xlcf->redact = ngx_array_create(cf->pool, 2, sizeof(ngx_regex_t *));
        if (xlcf->redact == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = value[1];
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
        return NGX_CONF_ERROR;
    }

    re = ngx_array_push(xlcf->redact);
    if (re == NULL) {
        return NGX_CONF_ERROR;
    }

    *re = rc.regex;

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"xray_redact\" requires PCRE library");
    return NGX_CONF_ERROR;

#endif
}


/*
 * ngx_conf_set_enum_slot(), with an error that names the directive and the
 * values it takes, as ngx_conf_set_flag_slot()'s does
 */

static char *
ngx_http_xray_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *last, *pos;
    u_char            values[128];
    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len != 0; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    pos = values;
    last = values + sizeof(values);

    for (i = 0; e[i].name.len != 0; i++) {
        pos = ngx_slprintf(pos, last, "%s\"%V\"",
                           i == 0 ? "" : e[i + 1].name.len ? ", " : " or ",
                           &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, "
                       "it must be %*s",
                       &value[1], &cmd->name, pos - values, values);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_xray_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_xray_status_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_xray_pool_alloc(void *data, size_t size)
{
    return ngx_palloc((ngx_pool_t *) data, size);
}


static ngx_int_t
ngx_http_xray_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_xray_header_hash = ngx_hash_key(ngx_http_xray_header_lc,
                                             sizeof(ngx_http_xray_header_lc)
                                             - 1);

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_xray_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_xray_log_handler;

    if (ngx_http_xray_segment_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_xray_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_xray_init_process(ngx_cycle_t *cycle)
{
    if (xray_rng_seed(&ngx_http_xray_rng) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "xray: RAND_bytes() failed to seed the id generator");
        return NGX_ERROR;
    }

    return ngx_http_xray_emitter_init(cycle);
}


static void
ngx_http_xray_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_xray_emitter_exit(cycle);
}
