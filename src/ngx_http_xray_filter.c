/*
 * The response header filter: the CORS merge (xray_cors), the switch to
 * unbuffered pass-through for server-sent events (xray_sse), the answer to a
 * client that sent Sampled=?, and the in-progress document of a stream.
 */

#include "ngx_http_xray.h"


/* lines of one Access-Control-* header the CORS merge handles */
#define NGX_HTTP_XRAY_CORS_LINES        16


static ngx_int_t ngx_http_xray_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_xray_answer(ngx_http_request_t *r,
    ngx_http_xray_ctx_t *ctx);
static ngx_int_t ngx_http_xray_cors(ngx_http_request_t *r);
static ngx_uint_t ngx_http_xray_list_has(u_char *p, u_char *last,
    ngx_str_t *token);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/*
 * The headers xray_cors lists: the whole list first, for a response that
 * has none, then each one; a null string ends them.
 */

static ngx_str_t  ngx_http_xray_cors_xray[] = {
    ngx_string("X-Amzn-Trace-Id"),
    ngx_string("X-Amzn-Trace-Id"),
    ngx_null_string
};

static ngx_str_t  ngx_http_xray_cors_w3c[] = {
    ngx_string("X-Amzn-Trace-Id, traceparent, tracestate"),
    ngx_string("X-Amzn-Trace-Id"),
    ngx_string("traceparent"),
    ngx_string("tracestate"),
    ngx_null_string
};


static ngx_int_t
ngx_http_xray_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                 stream;
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

    if (ctx == NULL) {
        /* nothing decided yet: a request refused before the rewrite phase */
        ctx = ngx_http_xray_decide_late(r);
    }

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

    return ngx_http_xray_answer(r, ctx);
}


/*
 * A client that sent Sampled=? asked this proxy to decide: the decision goes
 * back in the response header, as X-Ray services answer it.  Out of line,
 * as the CORS merge is: most requests pass the filter with neither, and
 * with no stack frame to speak of.
 */

static XRAY_NOINLINE ngx_int_t
ngx_http_xray_answer(ngx_http_request_t *r, ngx_http_xray_ctx_t *ctx)
{
    u_char           *p;
    ngx_str_t         value;
    ngx_table_elt_t  *found;

    p = ngx_pnalloc(r->pool, XRAY_HEADER_FORMAT_LEN((xray_trace_ctx_t *) 0));
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = xray_header_format(p, ngx_http_xray_trace_id(ctx), NULL,
                                   ctx->sampled ? XRAY_SAMPLED_YES
                                                : XRAY_SAMPLED_NO,
                                   NULL);

    /* the upstream's answer is superseded by this proxy's decision */

    found = ngx_http_xray_header_find(&r->headers_out.headers,
                                      &ngx_http_xray_header_name, NULL);

    if (found == NULL) {
        if (ngx_http_xray_header_add(r, &r->headers_out.headers,
                                     &ngx_http_xray_header_name, &value)
            == NULL)
        {
            return NGX_ERROR;
        }

    } else {
        if (ngx_http_xray_header_remove(r, &r->headers_out.headers,
                                        &ngx_http_xray_header_name, &found)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        found->value = value;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * xray_cors: extends a CORS policy that is already there (from the upstream
 * or add_header) so that browsers may send the trace header, and page
 * scripts may read it.  A response without Access-Control-Allow-Origin has
 * no policy and is left alone; Allow-Origin, -Credentials and -Methods are
 * never touched: who may call stays exactly as configured.
 */

static XRAY_NOINLINE ngx_int_t
ngx_http_xray_cors(ngx_http_request_t *r)
{
    u_char                    *p, *q, *last, *end;
    size_t                     len;
    ngx_str_t                  name, t, *tokens, *token;
    ngx_uint_t                 i, n;
    ngx_table_elt_t           *h, *lines[NGX_HTTP_XRAY_CORS_LINES];
    ngx_http_xray_cursor_t     cur;
    ngx_http_xray_loc_conf_t  *xlcf;

    static ngx_str_t  origin = ngx_string("Access-Control-Allow-Origin");
    static ngx_str_t  request = ngx_string("Access-Control-Request-Method");
    static ngx_str_t  allow = ngx_string("Access-Control-Allow-Headers");
    static ngx_str_t  expose = ngx_string("Access-Control-Expose-Headers");

    if (ngx_http_xray_header_find(&r->headers_out.headers, &origin, NULL)
        == NULL)
    {
        return NGX_OK;
    }

    /* a preflight asks what may be sent; an actual response, what is read */

    if (r->method == NGX_HTTP_OPTIONS
        && ngx_http_xray_header_find(&r->headers_in.headers, &request, NULL))
    {
        name = allow;

    } else {
        name = expose;
    }

    /* the trace headers of the formats read here */

    xlcf = ngx_http_get_module_loc_conf(r, ngx_http_xray_module);

    tokens = (xlcf->formats & NGX_HTTP_XRAY_FORMAT_W)
             ? ngx_http_xray_cors_w3c : ngx_http_xray_cors_xray;

    /* every line of that header is merged into the first, without repeats */

    /*
     * worst case: every input byte a one-byte token, each written with ", "
     * before it, then ", " and each of the trace headers
     */

    n = 0;
    len = 0;

    for (token = tokens + 1; token->len; token++) {
        len += sizeof(", ") - 1 + token->len;
    }

    ngx_memzero(&cur, sizeof(ngx_http_xray_cursor_t));

    while ((h = ngx_http_xray_header_find(&r->headers_out.headers, &name,
                                          &cur))
           != NULL)
    {
        if (n == NGX_HTTP_XRAY_CORS_LINES) {
            /* nobody sends that many: leave such a response as it is */
            return NGX_OK;
        }

        lines[n++] = h;
        len += 2 * h->value.len + sizeof(", ") - 1;
    }

    if (n == 0) {
        /* the first entry: the trace headers as one list */
        h = ngx_http_xray_header_add(r, &r->headers_out.headers, &name,
                                     &tokens[0]);
        return (h == NULL) ? NGX_ERROR : NGX_OK;
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
    }

    if (ngx_http_xray_header_remove(r, &r->headers_out.headers, &name,
                                    &lines[0])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (token = tokens + 1; token->len; token++) {
        if (ngx_http_xray_list_has(p, end, token)) {
            continue;
        }

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


ngx_int_t
ngx_http_xray_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_xray_header_filter;

    return NGX_OK;
}
