# With underscores_in_headers on, a client can send X_Amzn_Trace_Id (any
# case, any mix of "-" and "_"), which CGI-style upstreams merge with the
# real header: every header whose name normalises to the trace header is
# dropped where xray is on, so the upstream sees the proxy's header alone.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';
our $Evil = '1-11111111-222222222222222222222222';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    underscores_in_headers on;
_EOC_
    }
});

# the names of the trace-like headers the upstream received, in order
sub trace_lines {
    my ($body) = @_;
    return [ $body =~ /^(x[-_]amzn[-_]trace[-_]id:[^\r\n]*)\r?$/mgi ];
}

run_tests();

__DATA__

=== TEST 1: underscore spellings next to a valid header never reach the upstream
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X_Amzn_Trace_Id: Root=$::Evil;Sampled=1
X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1
x_amzn_trace_id: Root=$::Evil;Sampled=1
X-AMZN_trace-ID: Root=$::Evil;Sampled=1
X_Amzn-Trace_Id: Root=$::Evil;Sampled=1"
--- response_body_like eval
qr{\A(?!.*\Q$::Evil\E).*^X-Amzn-Trace-Id: Root=\Q$::Root\E;Parent=[0-9a-f]{16};Sampled=1\r$}ms
--- segment_count: 1



=== TEST 2: exactly one trace-like line arrives
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X_Amzn_Trace_Id: Root=$::Evil;Sampled=1
X-Amzn-Trace-Id: Root=$::Root;Sampled=1
X_AMZN_TRACE_ID: Root=$::Evil;Sampled=1"
--- burst: 1
--- burst_check eval
sub {
    my $lines = main::trace_lines($_[0][0]{body});
    is(scalar @$lines, 1, 'one line') or diag explain $lines;
    like($lines->[0], qr/^X-Amzn-Trace-Id: Root=\Q$::Root\E;/, 'the proxy\'s');
}
--- segment_count: 2



=== TEST 3: alone, an underscore spelling is no trace context, and is dropped
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X_Amzn_Trace_Id: Root=$::Evil;Sampled=1"
--- response_body_unlike: (?i)amzn
--- segment_count: 0



=== TEST 4: with xray_originate on, the proxy's header alone
--- config
    location /t {
        xray on;
        xray_originate on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"x_amzn_trace_id: Root=$::Evil;Sampled=1"
--- burst: 1
--- burst_check eval
sub {
    my $lines = main::trace_lines($_[0][0]{body});
    is(scalar @$lines, 1, 'one line') or diag explain $lines;
    unlike($lines->[0] // '', qr/\Q$::Evil\E/, 'not the client\'s');
}
--- segment_count: 2



=== TEST 5: where xray is off, nginx's own behaviour: passed through
--- config
    location /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X_Amzn_Trace_Id: Root=$::Evil;Sampled=1"
--- response_body_like: X_Amzn_Trace_Id
--- segment_count: 0
