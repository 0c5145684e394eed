# Forwarding the client's trace context: the upstream receives exactly one
# X-Amzn-Trace-Id with the client's Root, the proxy's own Parent and the
# proxy's sampling decision.  The echo upstream answers with the request head
# it received, so every body below is the exact bytes that left the proxy.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();
run_tests();

__DATA__

=== TEST 1: valid header: same Root, the proxy's Parent, its own decision
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=(?!53995c3f42cd8ad8)[0-9a-f]{16};Sampled=0\r
\r
\z
--- no_error_log
[error]
dropped



=== TEST 2: sampled: the decision is forwarded as Sampled=1
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1\r
\r
\z



=== TEST 3: ALB's Self is dropped, CalledFrom and Lineage are kept verbatim
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;CalledFrom=app;Lineage=10:1234abcd:3
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1;CalledFrom=app;Lineage=10:1234abcd:3\r
\r
\z



=== TEST 4: whitespace around fields is tolerated and not forwarded
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Sampled=? ;  Root=1-5759e988-bd862e3fe1be46a994272793 ;	Parent=53995c3f42cd8ad8;
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1\r
\r
\z



=== TEST 5: the header name's case does not matter; the forwarded one is canonical
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
x-amzn-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=0\r
\r
\z



=== TEST 6: the same header twice is forwarded once
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
X-Foo: bar
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=0\r
X-Foo: bar\r
\r
\z



=== TEST 7: two different headers: both dropped, nothing forwarded
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793
X-Foo: bar
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272794
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Foo: bar\r
\r
\z
--- error_log
xray: dropped client's X-Amzn-Trace-Id: several different headers
--- no_error_log
[error]



=== TEST 8: no header: nothing is originated by default
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        add_header X-Trace "[$xray_trace_id]";
    }
--- request
GET /t
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
\r
\z
--- response_headers
X-Trace: []
--- no_error_log
[error]
xray



=== TEST 9: xray_originate on: a new Root from this second
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_originate on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- response_body_like eval
# this second, give or take: this runs when the file's blocks are read, so
# the request comes later, by more than a few seconds on a loaded machine;
# any second up to 15 minutes on (by its first 6 hex digits, which a
# boundary between two of them must not break)
my $t = time;
my %p = map { (substr sprintf('%08x', $_), 0, 6) => 1 } $t - 5 .. $t + 900;
my $p = CORE::join '|', sort keys %p;
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-(?:$p)[0-9a-f]{2}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1\r
\r
\z}



=== TEST 10: an invalid header is replaced by an originated one
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_originate on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a99427279;Lineage=secret
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0\r
\r
\z
--- error_log
xray: dropped client's X-Amzn-Trace-Id: bad Root



=== TEST 11: xray off: the module leaves the request alone
--- config
    location /t {
        xray off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r
\r
\z
--- no_error_log
[error]



=== TEST 12: xray on at server level covers its locations
--- config
    xray on;
    location /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Parent=53995c3f42cd8ad8
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=(?!53995c3f42cd8ad8)[0-9a-f]{16};Sampled=[01]\r
\r
\z



=== TEST 13: variables: what was forwarded, and the proxy's ids
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        add_header X-Trace-Id $xray_trace_id;
        add_header X-Sampled $xray_sampled;
        add_header X-Header $xray_trace_header;
        add_header X-Ids "$xray_segment_id $xray_upstream_id";
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=10:1234abcd:3
--- response_headers
X-Trace-Id: 1-5759e988-bd862e3fe1be46a994272793
X-Sampled: 1
--- response_headers_like
X-Header: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1;Lineage=10:1234abcd:3
X-Ids: [0-9a-f]{16} [0-9a-f]{16}
--- burst: 1
--- burst_check eval
sub {
    my ($res) = @_;
    my $r = $res->[0];
    my ($parent) = $r->{body} =~ /Parent=([0-9a-f]{16})/;
    my ($seg, $up) = split / /, $r->{headers}{'x-ids'};
    is($parent, $up, 'the forwarded Parent is $xray_upstream_id');
    isnt($seg, $up, 'the segment id is not the upstream call id');
    like($r->{headers}{'x-header'}, qr/Parent=$parent;/,
         '$xray_trace_header is what the upstream received');
}



=== TEST 14: Sampled=? is decided and answered in the response header
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?
--- response_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like chomp
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1\r



=== TEST 15: Sampled=? answered once, replacing what the upstream said
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/header/X-Amzn-Trace-Id/Root%3D1-5759e988-bd862e3fe1be46a994272793%3BSampled%3D1/;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?
--- raw_response_headers_like chomp
\r\nX-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0\r\n
--- raw_response_headers_unlike
Sampled=1



=== TEST 16: no Sampled=? from the client: no trace header in the response
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- raw_response_headers_unlike
X-Amzn-Trace-Id



=== TEST 17: after an internal redirect the decision stands and is forwarded once
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        rewrite ^ /u last;
    }
    location /u {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8
--- response_body_like chomp
\AGET /u HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=(?!53995c3f42cd8ad8)[0-9a-f]{16};Sampled=1\r
\r
\z
