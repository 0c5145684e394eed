/*
 * ngx_http_xray_module: AWS X-Ray trace context at the edge.
 *
 * The nginx face of the module: the directives, configuration and the
 * module's start and end.  Each request phase has its own file in src/
 * (context: the rewrite phase; filter: the response header filter;
 * segment: the log phase; emitter: sending to the daemon), and the parsing,
 * id, rule and JSON logic in src/xray_* knows nothing of nginx.
 */

#include "ngx_http_xray.h"


static void *ngx_http_xray_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_xray_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_xray_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_xray_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_xray_sampling_rules(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_daemon(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_daemon_init(ngx_conf_t *cf,
    ngx_http_xray_main_conf_t *xmcf, ngx_str_t *value, ngx_uint_t needed);
static char *ngx_http_xray_emit_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_sampling(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_sampling_time(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, size_t skip, ngx_msec_t *ms);
static char *ngx_http_xray_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_redact(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_trace_formats(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_xray_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
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


static ngx_conf_enum_t  ngx_http_xray_propagate_values[] = {
    { ngx_string("xray"), NGX_HTTP_XRAY_FORMAT_X },
    { ngx_string("w3c"), NGX_HTTP_XRAY_FORMAT_W },
    { ngx_string("both"), NGX_HTTP_XRAY_FORMAT_X|NGX_HTTP_XRAY_FORMAT_W },
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

    { ngx_string("xray_emit_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_xray_emit_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("xray_sampling"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_xray_sampling,
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

    { ngx_string("xray_trace_formats"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_xray_trace_formats,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("xray_propagate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_xray_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_xray_loc_conf_t, propagate),
      &ngx_http_xray_propagate_values },

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


/* X-Ray indexes 50 annotations a trace; streams add sse and sse_reconnect */
#define NGX_HTTP_XRAY_ANNOTATIONS_MAX   48

#define NGX_HTTP_XRAY_DEFAULT_DAEMON    "127.0.0.1:2000"

/* xray_emit_limit: a reservoir word counts up to 2^31 a second on 32 bits */
#define NGX_HTTP_XRAY_EMIT_LIMIT_MAX    1000000


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
     *     xmcf->aws = NULL;
     */

    xmcf->batch = XRAY_EMIT_BATCH_DEFAULT;
    xmcf->flush = 100;
    xmcf->emit_limit = NGX_CONF_UNSET_UINT;
    xmcf->sampling = NGX_CONF_UNSET_UINT;
    xmcf->rules_interval = NGX_CONF_UNSET_MSEC;
    xmcf->targets_interval = NGX_CONF_UNSET_MSEC;
    xmcf->fallback = NGX_CONF_UNSET_MSEC;
    xmcf->anomaly_latency = NGX_CONF_UNSET_MSEC;

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

    if (ngx_http_xray_segment_aws(cf, xmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (xmcf->emit_limit == NGX_CONF_UNSET_UINT) {
        xmcf->emit_limit = 0;
    }

    if (ngx_http_xray_shm_add(cf, xmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(xmcf->sampling, NGX_HTTP_XRAY_SAMPLING_LOCAL);
    ngx_conf_init_msec_value(xmcf->rules_interval, 300000);
    ngx_conf_init_msec_value(xmcf->targets_interval, 10000);
    ngx_conf_init_msec_value(xmcf->fallback, 3600000);
    ngx_conf_init_msec_value(xmcf->anomaly_latency, 0);

    if (xmcf->sampling == NGX_HTTP_XRAY_SAMPLING_CENTRALIZED
        && ngx_http_xray_sampling_conf(cf, xmcf) != NGX_OK)
    {
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
     *     xlcf->head = { 0, NULL };
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
    xlcf->formats = NGX_CONF_UNSET_UINT;
    xlcf->prefer = NGX_CONF_UNSET_UINT;
    xlcf->propagate = NGX_CONF_UNSET_UINT;

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

    if (ngx_http_xray_segment_head(cf, conf, prev) != NGX_OK) {
        return NGX_CONF_ERROR;
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

    /* by default X-Ray only, in and out, as before W3C was read */
    ngx_conf_merge_uint_value(conf->formats, prev->formats,
                              NGX_HTTP_XRAY_FORMAT_X);
    ngx_conf_merge_uint_value(conf->prefer, prev->prefer,
                              NGX_HTTP_XRAY_FORMAT_X);
    ngx_conf_merge_uint_value(conf->propagate, prev->propagate,
                              NGX_HTTP_XRAY_FORMAT_X);

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

    /* a directory opens, and its read fails far from the directive */
    if (!ngx_is_file(&file.info)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%s\" is not a regular file",
                           &cmd->name, name.data);
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

    return ngx_http_xray_daemon_init(cf, xmcf, &value[1], 1);
}


/* xray_emit_limit off | number: documents a second for the instance */

static char *
ngx_http_xray_emit_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_xray_main_conf_t  *xmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (xmcf->emit_limit != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        xmcf->emit_limit = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 1 || n > NGX_HTTP_XRAY_EMIT_LIMIT_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid xray_emit_limit \"%V\": it must be "
                           "\"off\" or a number of documents a second "
                           "from 1 to %d",
                           &value[1], NGX_HTTP_XRAY_EMIT_LIMIT_MAX);
        return NGX_CONF_ERROR;
    }

    xmcf->emit_limit = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/*
 * xray_sampling local | centralized [rules_interval=time]
 *     [targets_interval=time] [fallback=time] [anomaly_latency=time|off]
 */

static char *
ngx_http_xray_sampling(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_xray_main_conf_t  *xmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (xmcf->sampling != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "local") == 0) {
        xmcf->sampling = NGX_HTTP_XRAY_SAMPLING_LOCAL;

    } else if (ngx_strcmp(value[1].data, "centralized") == 0) {
        xmcf->sampling = NGX_HTTP_XRAY_SAMPLING_CENTRALIZED;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"local\" or \"centralized\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (xmcf->sampling != NGX_HTTP_XRAY_SAMPLING_CENTRALIZED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" directive: \"%V\" is a parameter of "
                               "\"centralized\" only",
                               &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        if (ngx_strncmp(value[i].data, "rules_interval=", 15) == 0) {
            if (ngx_http_xray_sampling_time(cf, cmd, &value[i], 15,
                                            &xmcf->rules_interval)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "targets_interval=", 17) == 0) {
            if (ngx_http_xray_sampling_time(cf, cmd, &value[i], 17,
                                            &xmcf->targets_interval)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "fallback=", 9) == 0) {
            if (ngx_http_xray_sampling_time(cf, cmd, &value[i], 9,
                                            &xmcf->fallback)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "anomaly_latency=", 16) == 0) {
            if (xmcf->anomaly_latency != NGX_CONF_UNSET_MSEC) {
                goto twice;
            }

            if (ngx_strcmp(value[i].data + 16, "off") == 0) {
                xmcf->anomaly_latency = 0;
                continue;
            }

            if (ngx_http_xray_sampling_time(cf, cmd, &value[i], 16,
                                            &xmcf->anomaly_latency)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

twice:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" directive: \"%V\" given twice",
                       &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


/* one time parameter of xray_sampling: at least 1 ms, given once */

static char *
ngx_http_xray_sampling_time(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, size_t skip, ngx_msec_t *ms)
{
    ngx_str_t   s;
    ngx_msec_t  t;

    if (*ms != NGX_CONF_UNSET_MSEC) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: \"%V\" given twice",
                           &cmd->name, value);
        return NGX_CONF_ERROR;
    }

    s.data = value->data + skip;
    s.len = value->len - skip;

    t = ngx_parse_time(&s, 0);

    if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\" in \"%V\" directive, it "
                           "must be a time such as 10s, 5m or 1h",
                           value, &cmd->name);
        return NGX_CONF_ERROR;
    }

    *ms = t;

    return NGX_CONF_OK;
}


/*
 * needed: whether a bad address stops nginx.  The environment's address is
 * read by every nginx that loads the module; where no "xray on" needs it, a
 * bad one is only a warning, and no emitter is ever made.
 */

static char *
ngx_http_xray_daemon_init(ngx_conf_t *cf, ngx_http_xray_main_conf_t *xmcf,
    ngx_str_t *value, ngx_uint_t needed)
{
    char                     err[XRAY_DAEMON_ERR_LEN];
    char                    *env;
    socklen_t                len;
    ngx_str_t                addr;
    const char              *what;
    xray_daemon_addr_t       da;
    struct sockaddr_storage  ss;

    if (value) {
        addr = *value;
        what = "xray_daemon";

    } else {
        env = getenv("AWS_XRAY_DAEMON_ADDRESS");

        if (env && *env) {
            addr.data = (u_char *) env;
            addr.len = ngx_strlen(env);
            what = "AWS_XRAY_DAEMON_ADDRESS";

        } else {
            ngx_str_set(&addr, NGX_HTTP_XRAY_DEFAULT_DAEMON);
            what = "default daemon address";
        }
    }

    if (xray_daemon_addr_parse((char *) addr.data, addr.len, &da, err,
                               sizeof(err))
        != 0
        || xray_daemon_resolve(da.udp.host, da.udp.host_len, da.udp.port,
                               &ss, &len, err, sizeof(err))
           != 0)
    {
        if (!needed) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "invalid %s: %s (no \"xray on\" needs it)",
                               what, err);
            return NGX_CONF_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s: %s", what, err);
        return NGX_CONF_ERROR;
    }

    xmcf->daemon_addr.sockaddr = ngx_pcalloc(cf->pool, len);
    if (xmcf->daemon_addr.sockaddr == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(xmcf->daemon_addr.sockaddr, &ss, len);
    xmcf->daemon_addr.socklen = len;

    xmcf->daemon.data = ngx_pstrdup(cf->pool, &addr);
    if (xmcf->daemon.data == NULL) {
        return NGX_CONF_ERROR;
    }

    xmcf->daemon.len = addr.len;

    return NGX_CONF_OK;
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


/*
 * xray_trace_formats xray | w3c [xray | w3c]: the formats read, the first
 * one winning when a request carries both
 */

static char *
ngx_http_xray_trace_formats(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_xray_loc_conf_t  *xlcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, format;

    if (xlcf->formats != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    xlcf->formats = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == sizeof("xray") - 1
            && ngx_strncasecmp(value[i].data, (u_char *) "xray",
                               sizeof("xray") - 1) == 0)
        {
            format = NGX_HTTP_XRAY_FORMAT_X;

        } else if (value[i].len == sizeof("w3c") - 1
                   && ngx_strncasecmp(value[i].data, (u_char *) "w3c",
                                      sizeof("w3c") - 1) == 0)
        {
            format = NGX_HTTP_XRAY_FORMAT_W;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive, "
                               "it must be \"xray\" or \"w3c\"",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (xlcf->formats & format) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" named twice in \"%V\" directive",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (i == 1) {
            xlcf->prefer = format;
        }

        xlcf->formats |= format;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_xray_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_xray_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_xray_init(ngx_conf_t *cf)
{
    ngx_http_xray_main_conf_t  *xmcf;

    /*
     * without xray_daemon: the environment's address, or the default; read
     * after the locations were merged, so that a bad address stops only an
     * nginx where some "xray on" needs it
     */

    xmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_xray_module);

    if (xmcf->daemon.len == 0
        && ngx_http_xray_daemon_init(cf, xmcf, NULL, xmcf->enabled)
           != NGX_CONF_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_xray_context_init(cf) != NGX_OK
        || ngx_http_xray_segment_init(cf) != NGX_OK
        || ngx_http_xray_filter_init(cf) != NGX_OK
        || ngx_http_xray_sampling_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_xray_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_xray_rng_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_xray_emitter_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_xray_sampling_init_process(cycle);
}


static void
ngx_http_xray_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_xray_sampling_exit_process(cycle);
    ngx_http_xray_emitter_exit(cycle);
}
