# Every kind of request nginx accepts reaches the module's handlers and
# filters safely.  HTTP/0.9 requests come without a request header list:
# nginx never sets one up for them, so anything that adds a header must make
# the list first.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

run_tests();

__DATA__

=== TEST 1: HTTP/0.9 with xray_originate on: the trace header is added
--- config
    location /t {
        xray on;
        xray_originate on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- raw_request eval
"GET /t\r\n"
--- http09
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r\nHost: 127\.0\.0\.1:\d+\r\nConnection: close\r\n}
. qr{X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};}
. qr{Sampled=[01]\r\n\r\n\z}
--- no_error_log
exited on signal
[alert]



=== TEST 2: HTTP/0.9 with a valid xray_trace_context query argument
--- config
    location /events {
        xray on;
        xray_trace_context $arg_xray;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- raw_request eval
"GET /events?xray=Root%3D1-5759e988-bd862e3fe1be46a994272793\r\n"
--- http09
--- response_body_like eval
qr{\AGET /events\?xray=Root%3D1-5759e988-bd862e3fe1be46a994272793 HTTP/1\.0\r\n}
. qr{Host: 127\.0\.0\.1:\d+\r\nConnection: close\r\n}
. qr{X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;}
. qr{Parent=[0-9a-f]{16};Sampled=[01]\r\n\r\n\z}
--- no_error_log
exited on signal
[alert]
