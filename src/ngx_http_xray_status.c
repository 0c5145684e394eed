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


/* per centralized rule: families, and room for the HELP and TYPE of one */
#define NGX_HTTP_XRAY_SAMPLING_RULE_LINES  10
#define NGX_HTTP_XRAY_SAMPLING_HELP        256


typedef enum {
    NGX_HTTP_XRAY_RULE_REQUESTS = 0,
    NGX_HTTP_XRAY_RULE_SAMPLED,
    NGX_HTTP_XRAY_RULE_QUOTA,
    NGX_HTTP_XRAY_RULE_QUOTA_TTL,
    NGX_HTTP_XRAY_RULE_FIXED_RATE,
    NGX_HTTP_XRAY_RULE_BOOST_RATE,
    NGX_HTTP_XRAY_RULE_BOOST_TTL
} ngx_http_xray_rule_metric_e;


typedef struct {
    const char                   *name;
    const char                   *help;
    const char                   *type;
    ngx_http_xray_rule_metric_e   metric;
} ngx_http_xray_rule_family_t;


static ngx_http_xray_rule_family_t  ngx_http_xray_rule_families[] = {

    { "nginx_xray_sampling_rule_requests_total",
      "Requests each centralized rule matched.",
      "counter", NGX_HTTP_XRAY_RULE_REQUESTS },

    { "nginx_xray_sampling_rule_sampled_total",
      "Requests each centralized rule sampled: from the quota the service "
      "granted, borrowed (1 a second without a quota), by its fixed rate, "
      "or by a boosted rate.",
      "counter", NGX_HTTP_XRAY_RULE_SAMPLED },

    { "nginx_xray_sampling_rule_quota",
      "ReservoirQuota the service granted this instance, a second.",
      "gauge", NGX_HTTP_XRAY_RULE_QUOTA },

    { "nginx_xray_sampling_rule_quota_ttl_seconds",
      "When the quota expires (epoch seconds; 0: no quota).",
      "gauge", NGX_HTTP_XRAY_RULE_QUOTA_TTL },

    { "nginx_xray_sampling_rule_fixed_rate",
      "The rule's FixedRate, as the service last set it.",
      "gauge", NGX_HTTP_XRAY_RULE_FIXED_RATE },

    { "nginx_xray_sampling_rule_boost_rate",
      "BoostRate the service last granted (applies until its TTL).",
      "gauge", NGX_HTTP_XRAY_RULE_BOOST_RATE },

    { "nginx_xray_sampling_rule_boost_ttl_seconds",
      "When the boost ends (epoch seconds; 0: no boost).",
      "gauge", NGX_HTTP_XRAY_RULE_BOOST_TTL },

    { NULL, NULL, NULL, 0 }
};


static const char  *ngx_http_xray_poll_calls[] = { "rules", "targets" };

static const char  *ngx_http_xray_poll_errors[] = {
    "connect", "timeout", "http_status", "bad_reply", "too_large", "closed"
};


/* rule names are at most this long (xray_rules.c keeps them so) */
#define NGX_HTTP_XRAY_NAME_MAX  64

/* room for one line of a rule's metrics, its name escaped at worst */
#define NGX_HTTP_XRAY_RULE_LINE                                              \
    (sizeof("nginx_xray_rule_sampled_total{rule=\"\",by=\"reservoir\"} ")     \
     - 1 + 2 * NGX_HTTP_XRAY_NAME_MAX + NGX_ATOMIC_T_LEN + 1)


static u_char *ngx_http_xray_status_rules(u_char *p,
    ngx_http_xray_main_conf_t *xmcf);
static u_char *ngx_http_xray_status_sampling(u_char *p,
    ngx_http_xray_main_conf_t *xmcf);
static u_char *ngx_http_xray_status_central_rules(u_char *p,
    xray_sampling_shared_t *sh, xray_sampling_rules_t *set);
static u_char *ngx_http_xray_status_rate(u_char *p, uint64_t nanos);
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

    /*
     * xray_sampling: a few kilobytes, and ten lines a centralized rule; the
     * rules may change while the page is written, hence the most there are
     */
    size += 512;

    if (xmcf->sampling_shm) {
        size += 4096 + NGX_HTTP_XRAY_SAMPLING_RULE_LINES
                       * (NGX_HTTP_XRAY_SAMPLING_HELP
                          + XRAY_SAMPLING_RULES_MAX * NGX_HTTP_XRAY_RULE_LINE);
    }

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
    p = ngx_http_xray_status_sampling(p, xmcf);

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


/*
 * xray_sampling: who decides, and with centralized sampling, the poller's
 * figures and each rule held
 */

static u_char *
ngx_http_xray_status_sampling(u_char *p, ngx_http_xray_main_conf_t *xmcf)
{
    uint64_t                       live;
    ngx_uint_t                     i, k;
    xray_sampling_shared_t        *sh;
    xray_sampling_rules_t         *set;
    ngx_http_xray_sampling_shm_t  *shm;

    shm = xmcf->sampling_shm;
    sh = shm ? &shm->shared : NULL;
    live = sh ? sh->live : 0;
    set = live ? &sh->sets[live & 1] : NULL;

    p = ngx_sprintf(p, "# HELP nginx_xray_sampling_source Who decides "
                       "sampling: the X-Ray service's centralized rules, "
                       "or the local rules.\n"
                       "# TYPE nginx_xray_sampling_source gauge\n"
                       "nginx_xray_sampling_source{source=\"%s\"} 1\n",
                    set ? "centralized" : "local");

    if (shm == NULL) {
        return p;
    }

    p = ngx_sprintf(p, "# HELP nginx_xray_sampling_rules_held Centralized "
                       "rules held (0: the local rules decide).\n"
                       "# TYPE nginx_xray_sampling_rules_held gauge\n"
                       "nginx_xray_sampling_rules_held %uD\n",
                    set ? ngx_min(set->nrules, XRAY_SAMPLING_RULES_MAX) : 0);

    p = ngx_sprintf(p, "# HELP nginx_xray_sampling_last_success_seconds "
                       "When a call to the sampling API last succeeded "
                       "(epoch seconds; 0: never).\n"
                       "# TYPE nginx_xray_sampling_last_success_seconds "
                       "gauge\n");

    for (i = 0; i < NGX_HTTP_XRAY_NCALLS; i++) {
        p = ngx_sprintf(p, "nginx_xray_sampling_last_success_seconds"
                           "{call=\"%s\"} %uA\n",
                        ngx_http_xray_poll_calls[i], shm->last_success[i]);
    }

    p = ngx_sprintf(p, "# HELP nginx_xray_sampling_poll_errors_total "
                       "Failed calls to the sampling API, by call and "
                       "kind.\n"
                       "# TYPE nginx_xray_sampling_poll_errors_total "
                       "counter\n");

    for (i = 0; i < NGX_HTTP_XRAY_NCALLS; i++) {
        for (k = 0; k < NGX_HTTP_XRAY_NPOLL_ERRORS; k++) {
            p = ngx_sprintf(p, "nginx_xray_sampling_poll_errors_total"
                               "{call=\"%s\",kind=\"%s\"} %uA\n",
                            ngx_http_xray_poll_calls[i],
                            ngx_http_xray_poll_errors[k],
                            shm->errors[i][k]);
        }
    }

    p = ngx_sprintf(p, "# HELP nginx_xray_sampling_switches_total Switches "
                       "between centralized and local rules.\n"
                       "# TYPE nginx_xray_sampling_switches_total counter\n"
                       "nginx_xray_sampling_switches_total"
                       "{to=\"centralized\"} %uA\n"
                       "nginx_xray_sampling_switches_total"
                       "{to=\"local\"} %uA\n",
                    shm->to_central, shm->to_local);

    p = ngx_sprintf(p, "# HELP nginx_xray_sampling_client_id The ClientID "
                       "this instance reports its statistics with.\n"
                       "# TYPE nginx_xray_sampling_client_id gauge\n"
                       "nginx_xray_sampling_client_id{client_id=\"%*s\"} "
                       "1\n",
                    (size_t) XRAY_SAMPLING_CLIENT_ID_LEN, shm->client_id);

    if (set == NULL) {
        return p;
    }

    return ngx_http_xray_status_central_rules(p, sh, set);
}


static u_char *
ngx_http_xray_status_central_rules(u_char *p, xray_sampling_shared_t *sh,
    xray_sampling_rules_t *set)
{
    char                          name[XRAY_SAMPLING_NAME_LEN + 1];
    uint64_t                      rate;
    ngx_uint_t                    i, n, k;
    xray_sampling_slot_t          st;
    ngx_http_xray_rule_family_t  *f;

    static const char  *by[] = { "quota", "borrow", "rate", "boost" };

    n = ngx_min(set->nrules, XRAY_SAMPLING_RULES_MAX);

    for (f = ngx_http_xray_rule_families; f->name; f++) {

        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                        f->name, f->help, f->name, f->type);

        for (i = 0; i < n; i++) {
            xray_sampling_slot_read(sh, set->rules[i].slot, &st);

            ngx_memcpy(name, st.name,
                       ngx_min(st.name_len, XRAY_SAMPLING_NAME_LEN));
            name[ngx_min(st.name_len, XRAY_SAMPLING_NAME_LEN)] = '\0';

            if (f->metric == NGX_HTTP_XRAY_RULE_SAMPLED) {

                /* by rate: what neither quota, borrowing nor boost took */
                rate = st.all_sampled - st.all_quota - st.all_borrowed
                       - st.all_boosted;

                if (rate > st.all_sampled) {
                    rate = 0;
                }

                for (k = 0; k < 4; k++) {
                    p = ngx_sprintf(p, "%s{rule=\"", f->name);
                    p = ngx_http_xray_label_value(p, name);
                    p = ngx_sprintf(p, "\",by=\"%s\"} %uL\n", by[k],
                                    k == 0 ? st.all_quota
                                    : k == 1 ? st.all_borrowed
                                    : k == 2 ? rate : st.all_boosted);
                }

                continue;
            }

            p = ngx_sprintf(p, "%s{rule=\"", f->name);
            p = ngx_http_xray_label_value(p, name);
            p = ngx_cpymem(p, "\"} ", 3);

            switch (f->metric) {

            case NGX_HTTP_XRAY_RULE_REQUESTS:
                p = ngx_sprintf(p, "%uL", st.all_requests);
                break;

            case NGX_HTTP_XRAY_RULE_QUOTA:
                p = ngx_sprintf(p, "%uL", st.quota);
                break;

            case NGX_HTTP_XRAY_RULE_QUOTA_TTL:
                p = ngx_sprintf(p, "%uL", st.quota_ttl_ms / 1000);
                break;

            case NGX_HTTP_XRAY_RULE_FIXED_RATE:
                p = ngx_http_xray_status_rate(p, st.rate);
                break;

            case NGX_HTTP_XRAY_RULE_BOOST_RATE:
                p = ngx_http_xray_status_rate(p, st.boost);
                break;

            default: /* NGX_HTTP_XRAY_RULE_BOOST_TTL */
                p = ngx_sprintf(p, "%uL", st.boost_ttl_ms / 1000);
                break;
            }

            *p++ = '\n';
        }
    }

    return p;
}


/* a rate kept in units of 1e-9, as a decimal without trailing zeros */

static u_char *
ngx_http_xray_status_rate(u_char *p, uint64_t nanos)
{
    u_char  *last;

    p = ngx_sprintf(p, "%uL", nanos / 1000000000);

    nanos %= 1000000000;

    if (nanos == 0) {
        return p;
    }

    last = ngx_sprintf(p, ".%09uL", nanos);

    while (last[-1] == '0') {
        last--;
    }

    return last;
}
