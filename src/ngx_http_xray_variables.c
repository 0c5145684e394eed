/*
 * $xray_trace_id, $xray_segment_id, $xray_upstream_id, $xray_sampled,
 * $xray_trace_header and $xray_traceparent: the request's trace context,
 * for logs and for forwarding it by other means than the request headers.
 * In a subrequest that is a call of its own (ngx_http_xray_subrequest()),
 * the last three are that call's.
 */

#include "ngx_http_xray.h"


enum {
    NGX_HTTP_XRAY_VAR_TRACE_ID = 0,
    NGX_HTTP_XRAY_VAR_SEGMENT_ID,
    NGX_HTTP_XRAY_VAR_UPSTREAM_ID,
    NGX_HTTP_XRAY_VAR_SAMPLED,
    NGX_HTTP_XRAY_VAR_TRACE_HEADER,
    NGX_HTTP_XRAY_VAR_TRACEPARENT
};


static ngx_int_t ngx_http_xray_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


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

    { ngx_string("xray_traceparent"), NULL, ngx_http_xray_variable,
      NGX_HTTP_XRAY_VAR_TRACEPARENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_xray_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_int_t             rc;
    ngx_http_xray_ctx_t  *ctx;
    ngx_http_xray_sub_t  *sub;

    ctx = ngx_http_xray_get_ctx(r);

    if (ctx == NULL || !ctx->traced) {
        v->not_found = 1;
        return NGX_OK;
    }

    sub = (r != r->main) ? ngx_http_xray_get_sub(r) : NULL;

    if (data == NGX_HTTP_XRAY_VAR_TRACEPARENT) {
        rc = sub ? (sub->has_traceparent ? NGX_OK : NGX_DECLINED)
                 : ngx_http_xray_traceparent(r, ctx);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            v->not_found = 1;
            return NGX_OK;
        }
    }

    switch (data) {

    case NGX_HTTP_XRAY_VAR_TRACE_ID:
        v->data = ngx_http_xray_trace_id(ctx);
        v->len = XRAY_TRACE_ID_LEN;
        break;

    case NGX_HTTP_XRAY_VAR_SEGMENT_ID:
        v->data = ngx_pnalloc(r->pool, XRAY_ID_LEN);
        if (v->data == NULL) {
            return NGX_ERROR;
        }

        ngx_http_xray_segment_id(ctx, v->data);
        v->len = XRAY_ID_LEN;
        break;

    case NGX_HTTP_XRAY_VAR_UPSTREAM_ID:
        v->data = sub ? sub->id : ngx_http_xray_upstream_id(ctx);
        v->len = XRAY_ID_LEN;
        break;

    case NGX_HTTP_XRAY_VAR_SAMPLED:
        v->data = (u_char *) (ctx->sampled ? "1" : "0");
        v->len = 1;
        break;

    case NGX_HTTP_XRAY_VAR_TRACEPARENT:
        v->data = sub ? sub->traceparent : ctx->traceparent;
        v->len = XRAY_TRACEPARENT_LEN;
        break;

    default: /* NGX_HTTP_XRAY_VAR_TRACE_HEADER */
        v->data = sub ? sub->header.data : ctx->header.data;
        v->len = sub ? sub->header.len : ctx->header.len;
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
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
