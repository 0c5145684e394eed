# xray_status: the module's counters in Prometheus text format, checked after
# known traffic.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';

run_tests();

__DATA__

=== TEST 1: every counter after known traffic
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT batch=1;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/rules.json;
--- config
    location /api {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location /fail {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/503;
    }
    location = /status {
        xray_status;
    }
--- user_files
>>> rules.json
{"version": 2,
 "rules": [{"description": "api", "host": "*", "http_method": "*",
            "url_path": "/api*", "fixed_target": 0, "rate": 1}],
 "default": {"fixed_target": 0, "rate": 0}}
--- request eval
["GET /api", "GET /api", "GET /fail", "GET /fail", "GET /api", "GET /api",
 "GET /status"]
--- more_headers eval
["X-Amzn-Trace-Id: Root=$::Root;Sampled=0",
 "X-Amzn-Trace-Id: Root=$::Root;Sampled=?",
 "X-Amzn-Trace-Id: Root=$::Root;Sampled=1",
 "X-Amzn-Trace-Id: Root=$::Root",
 "X-Amzn-Trace-Id: Root=garbage",
 "X-Foo: none",
 ""]
--- error_code eval
[200, 200, 503, 503, 200, 200, 200]
--- response_headers eval
[("") x 6, "Content-Type: text/plain; version=0.0.4; charset=utf-8"]
--- response_body_like eval
[(qr/./) x 6, qr{\A# HELP nginx_xray_requests_total Requests where tracing is on, by outcome\.
# TYPE nginx_xray_requests_total counter
nginx_xray_requests_total\{outcome="sampled"\} 2
nginx_xray_requests_total\{outcome="not_sampled"\} 2
nginx_xray_requests_total\{outcome="no_context"\} 2
# HELP nginx_xray_context_dropped_total Client trace contexts dropped as invalid\.
# TYPE nginx_xray_context_dropped_total counter
nginx_xray_context_dropped_total 1
# HELP nginx_xray_context_format_total [^\n]+
# TYPE nginx_xray_context_format_total counter
nginx_xray_context_format_total\{format="xray"\} 4
nginx_xray_context_format_total\{format="w3c"\} 0
# HELP nginx_xray_context_conflicts_total [^\n]+
# TYPE nginx_xray_context_conflicts_total counter
nginx_xray_context_conflicts_total 0
# HELP nginx_xray_w3c_dropped_total [^\n]+
# TYPE nginx_xray_w3c_dropped_total counter
nginx_xray_w3c_dropped_total\{header="traceparent"\} 0
nginx_xray_w3c_dropped_total\{header="tracestate"\} 0
# HELP nginx_xray_originated_total [^\n]+
# TYPE nginx_xray_originated_total counter
nginx_xray_originated_total 0
# HELP nginx_xray_client_decisions_total [^\n]+
# TYPE nginx_xray_client_decisions_total counter
nginx_xray_client_decisions_total\{decision="overridden"\} 2
nginx_xray_client_decisions_total\{decision="trusted"\} 0
# HELP nginx_xray_decisions_requested_total [^\n]+
# TYPE nginx_xray_decisions_requested_total counter
nginx_xray_decisions_requested_total 1
# HELP nginx_xray_errors_captured_total [^\n]+
# TYPE nginx_xray_errors_captured_total counter
nginx_xray_errors_captured_total 2
# HELP nginx_xray_segments_total [^\n]+
# TYPE nginx_xray_segments_total counter
nginx_xray_segments_total\{kind="complete"\} 4
nginx_xray_segments_total\{kind="in_progress"\} 0
# HELP nginx_xray_segments_split_total [^\n]+
# TYPE nginx_xray_segments_split_total counter
nginx_xray_segments_split_total 0
# HELP nginx_xray_documents_queued_total [^\n]+
# TYPE nginx_xray_documents_queued_total counter
nginx_xray_documents_queued_total 4
# HELP nginx_xray_documents_sent_total [^\n]+
# TYPE nginx_xray_documents_sent_total counter
nginx_xray_documents_sent_total 4
# HELP nginx_xray_sent_bytes_total [^\n]+
# TYPE nginx_xray_sent_bytes_total counter
nginx_xray_sent_bytes_total [1-9]\d+
# HELP nginx_xray_documents_dropped_total Documents not sent, by cause\.
# TYPE nginx_xray_documents_dropped_total counter
nginx_xray_documents_dropped_total\{cause="socket_buffer_full"\} 0
nginx_xray_documents_dropped_total\{cause="daemon_unreachable"\} 0
nginx_xray_documents_dropped_total\{cause="too_large"\} 0
nginx_xray_documents_dropped_total\{cause="send_error"\} 0
nginx_xray_documents_dropped_total\{cause="emit_limit"\} 0
# HELP nginx_xray_rule_matches_total Requests matched by each sampling rule\.
# TYPE nginx_xray_rule_matches_total counter
nginx_xray_rule_matches_total\{rule="api"\} 2
nginx_xray_rule_matches_total\{rule="default"\} 2
# HELP nginx_xray_rule_sampled_total [^\n]+
# TYPE nginx_xray_rule_sampled_total counter
nginx_xray_rule_sampled_total\{rule="api",by="reservoir"\} 0
nginx_xray_rule_sampled_total\{rule="api",by="rate"\} 2
nginx_xray_rule_sampled_total\{rule="default",by="reservoir"\} 0
nginx_xray_rule_sampled_total\{rule="default",by="rate"\} 0
# HELP nginx_xray_sampling_source [^\n]+
# TYPE nginx_xray_sampling_source gauge
nginx_xray_sampling_source\{source="local"\} 1
\z}]
--- segment_count: 4



=== TEST 2: a dead daemon shows in the counters
--- http_config
    xray_daemon 127.0.0.1:1 batch=1;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /status"]
--- more_headers eval
[("X-Amzn-Trace-Id: Root=$::Root") x 3, ""]
--- error_code eval
[204, 204, 204, 200]
--- response_body_like eval
# UDP learns of the closed port from an ICMP error that fails a later send:
# sends and refusals alternate, and together they are every document
[("") x 3, qr{
nginx_xray_documents_queued_total 3
.*
nginx_xray_documents_sent_total ([12])
.*
nginx_xray_documents_dropped_total\{cause="daemon_unreachable"\} (??{ 3 - $1 })
}s]
--- response_body_unlike eval
["!", "!", "!", qr/^nginx_xray_documents_dropped_total\{cause="(?:socket_buffer_full|too_large|send_error)"\} [1-9]/m]
--- no_error_log
[error]



=== TEST 3: only GET and HEAD
--- config
    location = /status {
        xray_status;
    }
--- request
POST /status
hello
--- error_code: 405



=== TEST 4: xray_status takes no arguments and lives in a location
--- config
    location = /status {
        xray_status on;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid number of arguments in "xray_status" directive}



=== TEST 5: the help of documents_sent does not claim delivery
--- config
    location = /status {
        xray_status;
    }
--- request
GET /status
--- response_body_like: (?m)^# HELP nginx_xray_documents_sent_total Documents the kernel accepted for the daemon \(UDP: not proof that the daemon received them\)\.$
