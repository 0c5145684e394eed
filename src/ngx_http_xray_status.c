/*
 * xray_status: the module's counters in Prometheus text format.  They live
 * in shared memory, so the page is the sum over all worker processes, and
 * they survive a reload.
 */

#include "ngx_http_xray.h"


typedef struct {
    const char                 *name;
    const char                 *help;
    const char                 *label;       /* NULL: no label */
    const char                 *value;
    ngx_http_xray_counter_e     counter;
} ngx_http_xray_metric_t;


/* metrics with one label are listed together, first one carries HELP */
static ngx_http_xray_metric_t  ngx_http_xray_metrics[] = {

    { "nginx_xray_requests_total",
      "Requests where tracing is on, by outcome.",
      "outcome", "sampled", NGX_HTTP_XRAY_SAMPLED },
    { "nginx_xray_requests_total", NULL,
      "outcome", "not_sampled", NGX_HTTP_XRAY_NOT_SAMPLED },
    { "nginx_xray_requests_total", NULL,
      "outcome", "no_context", NGX_HTTP_XRAY_NO_CONTEXT },

    { "nginx_xray_context_dropped_total",
      "Client trace contexts dropped as invalid.",
      NULL, NULL, NGX_HTTP_XRAY_INVALID },

    { "nginx_xray_context_format_total",
      "Requests whose trace context came from the client, by its format.",
      "format", "xray", NGX_HTTP_XRAY_FROM_XRAY },
    { "nginx_xray_context_format_total", NULL,
      "format", "w3c", NGX_HTTP_XRAY_FROM_W3C },

    { "nginx_xray_context_conflicts_total",
      "Requests with valid X-Amzn-Trace-Id and traceparent naming "
      "different traces.",
      NULL, NULL, NGX_HTTP_XRAY_CONFLICTS },

    { "nginx_xray_w3c_dropped_total",
      "W3C trace context headers dropped as invalid, by header.",
      "header", "traceparent", NGX_HTTP_XRAY_DROPPED_TRACEPARENT },
    { "nginx_xray_w3c_dropped_total", NULL,
      "header", "tracestate", NGX_HTTP_XRAY_DROPPED_TRACESTATE },

    { "nginx_xray_originated_total",
      "Traces started by this proxy (xray_originate).",
      NULL, NULL, NGX_HTTP_XRAY_ORIGINATED },

    { "nginx_xray_client_decisions_total",
      "Client Sampled=0/1 flags, by what became of them.",
      "decision", "overridden", NGX_HTTP_XRAY_OVERRIDDEN },
    { "nginx_xray_client_decisions_total", NULL,
      "decision", "trusted", NGX_HTTP_XRAY_TRUSTED },

    { "nginx_xray_decisions_requested_total",
      "Sampled=? decided by this proxy and answered.",
      NULL, NULL, NGX_HTTP_XRAY_REQUESTED },

    { "nginx_xray_errors_captured_total",
      "Unsampled requests recorded because they failed "
      "(xray_capture_errors).",
      NULL, NULL, NGX_HTTP_XRAY_CAPTURED },

    { "nginx_xray_segments_total",
      "Segment documents written, by kind.",
      "kind", "complete", NGX_HTTP_XRAY_SEGMENTS },
    { "nginx_xray_segments_total", NULL,
      "kind", "in_progress", NGX_HTTP_XRAY_IN_PROGRESS },

    { "nginx_xray_segments_split_total",
      "Segments too large for one datagram, sent in two documents.",
      NULL, NULL, NGX_HTTP_XRAY_SPLIT },

    { "nginx_xray_documents_queued_total",
      "Documents handed to the emitters.",
      NULL, NULL, NGX_HTTP_XRAY_DOCS_QUEUED },

    { "nginx_xray_documents_sent_total",
      "Documents the kernel accepted for the daemon "
      "(UDP: not proof that the daemon received them).",
      NULL, NULL, NGX_HTTP_XRAY_DOCS_SENT },

    { "nginx_xray_sent_bytes_total",
      "Bytes of the datagrams sent, header lines included.",
      NULL, NULL, NGX_HTTP_XRAY_BYTES_SENT },

    { "nginx_xray_documents_dropped_total",
      "Documents not sent, by cause.",
      "cause", "socket_buffer_full", NGX_HTTP_XRAY_DROPPED_FULL },
    { "nginx_xray_documents_dropped_total", NULL,
      "cause", "daemon_unreachable", NGX_HTTP_XRAY_DROPPED_REFUSED },
    { "nginx_xray_documents_dropped_total", NULL,
      "cause", "too_large", NGX_HTTP_XRAY_DROPPED_TOO_LARGE },
    { "nginx_xray_documents_dropped_total", NULL,
      "cause", "send_error", NGX_HTTP_XRAY_DROPPED_OTHER },
    { "nginx_xray_documents_dropped_total", NULL,
      "cause", "emit_limit", NGX_HTTP_XRAY_DROPPED_LIMIT },

    { NULL, NULL, NULL, NULL, 0 }
};


/* rule names are at most this long (xray_rules.c keeps them so) */
#define NGX_HTTP_XRAY_NAME_MAX  64

/* room for one line of a rule's metrics, its name escaped at worst */
#define NGX_HTTP_XRAY_RULE_LINE                                              \
    (sizeof("nginx_xray_rule_sampled_total{rule=\"\",by=\"reservoir\"} ")     \
     - 1 + 2 * NGX_HTTP_XRAY_NAME_MAX + NGX_ATOMIC_T_LEN + 1)


static u_char *ngx_http_xray_status_rules(u_char *p,
    ngx_http_xray_main_conf_t *xmcf);
static u_char *ngx_http_xray_label_value(u_char *p, const char *s);


ngx_int_t
ngx_http_xray_status_handler(ngx_http_request_t *r)
{
    size_t                      size;
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_chain_t                 out;
    ngx_http_xray_metric_t     *m;
    ngx_http_xray_main_conf_t  *xmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    xmcf = ngx_http_get_module_main_conf(r, ngx_http_xray_module);

    if (xmcf->shm == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    size = 0;

    for (m = ngx_http_xray_metrics; m->name; m++) {
        size += sizeof("# HELP  \n# TYPE  counter\n") - 1
                + 2 * ngx_strlen(m->name)
                + (m->help ? ngx_strlen(m->help) : 0)
                + ngx_strlen(m->name)
                + sizeof("{=\"\"} \n") - 1
                + (m->label ? ngx_strlen(m->label) + ngx_strlen(m->value)
                            : 0)
                + NGX_ATOMIC_T_LEN;
    }

    size += 512 + xmcf->rules.nrules * 3 * NGX_HTTP_XRAY_RULE_LINE;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    for (m = ngx_http_xray_metrics; m->name; m++) {

        if (m->help) {
            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n",
                            m->name, m->help, m->name);
        }

        if (m->label) {
            p = ngx_sprintf(p, "%s{%s=\"%s\"} %uA\n", m->name, m->label,
                            m->value, xmcf->shm->counters[m->counter]);

        } else {
            p = ngx_sprintf(p, "%s %uA\n", m->name,
                            xmcf->shm->counters[m->counter]);
        }
    }

    p = ngx_http_xray_status_rules(p, xmcf);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_xray_status_rules(u_char *p, ngx_http_xray_main_conf_t *xmcf)
{
    ngx_uint_t                   i;
    ngx_http_xray_rule_stats_t  *st;

    st = xmcf->shm->rules;

    p = ngx_cpymem(p, "# HELP nginx_xray_rule_matches_total "
                      "Requests matched by each sampling rule.\n"
                      "# TYPE nginx_xray_rule_matches_total counter\n",
                   sizeof("# HELP nginx_xray_rule_matches_total "
                          "Requests matched by each sampling rule.\n"
                          "# TYPE nginx_xray_rule_matches_total counter\n")
                   - 1);

    for (i = 0; i < xmcf->rules.nrules; i++) {
        p = ngx_cpymem(p, "nginx_xray_rule_matches_total{rule=\"",
                       sizeof("nginx_xray_rule_matches_total{rule=\"") - 1);
        p = ngx_http_xray_label_value(p, xmcf->rules.rules[i].name);
        p = ngx_sprintf(p, "\"} %uA\n", st[i].matched);
    }

    p = ngx_cpymem(p, "# HELP nginx_xray_rule_sampled_total "
                      "Requests each rule sampled, from its reservoir "
                      "or by its rate.\n"
                      "# TYPE nginx_xray_rule_sampled_total counter\n",
                   sizeof("# HELP nginx_xray_rule_sampled_total "
                          "Requests each rule sampled, from its reservoir "
                          "or by its rate.\n"
                          "# TYPE nginx_xray_rule_sampled_total counter\n")
                   - 1);

    for (i = 0; i < xmcf->rules.nrules; i++) {
        p = ngx_cpymem(p, "nginx_xray_rule_sampled_total{rule=\"",
                       sizeof("nginx_xray_rule_sampled_total{rule=\"") - 1);
        p = ngx_http_xray_label_value(p, xmcf->rules.rules[i].name);
        p = ngx_sprintf(p, "\",by=\"reservoir\"} %uA\n",
                        st[i].by_reservoir);

        p = ngx_cpymem(p, "nginx_xray_rule_sampled_total{rule=\"",
                       sizeof("nginx_xray_rule_sampled_total{rule=\"") - 1);
        p = ngx_http_xray_label_value(p, xmcf->rules.rules[i].name);
        p = ngx_sprintf(p, "\",by=\"rate\"} %uA\n", st[i].by_rate);
    }

    return p;
}


/* Prometheus label values escape backslash, double quote and newline */

static u_char *
ngx_http_xray_label_value(u_char *p, const char *s)
{
    ngx_uint_t  n;

    for (n = 0; *s && n < NGX_HTTP_XRAY_NAME_MAX; s++, n++) {

        switch (*s) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = *s;
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = *s;
        }
    }

    return p;
}
