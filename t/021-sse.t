# Server-Sent Events through the proxy: events reach the client as the
# upstream writes them even with proxy_buffering on, Last-Event-ID reaches the
# upstream, and the stream's segment covers it whole and says what it was.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
_EOC_
    }
});

run_tests();

__DATA__

=== TEST 1: xray_sse on: an event arrives while the stream still runs
--- config
    location /t {
        xray on;
        xray_sse on;
        proxy_buffering on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/2/30000/;
    }
--- request
GET /t HTTP/1.0
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1"
--- timeout: 10
--- abort
--- response_body eval
"event: hello\ndata: \n\n"
--- no_error_log
[error]



=== TEST 2: the whole stream, byte for byte, and Last-Event-ID upstream
--- config
    location /t {
        xray on;
        xray_sse on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/3/100/;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1
Last-Event-ID: 41"
--- response_headers
Content-Type: text/event-stream
--- response_body eval
"event: hello\ndata: 41\n\n"
. "id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\nid: 3\ndata: event 3\n\n"
--- segment_count: 2
--- segments eval
sub {
    my ($open, $done) = @{ $_[0] };
    ok($open->{in_progress}, 'in progress while it streamed');
    ok($done->{end_time} - $done->{start_time} >= 0.28, 'the whole stream');
    ok(JSON::PP::is_bool($done->{annotations}{sse})
       && $done->{annotations}{sse}, 'annotated as a stream');
    ok($done->{annotations}{sse_reconnect}, 'a reconnection');
    is($done->{metadata}{nginx}{last_event_id}, '41', 'from event 41');
}



=== TEST 3: a first connection is a stream but no reconnection
--- config
    location /t {
        xray on;
        xray_sse on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/1/10/;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1"
--- segment_count: 2
--- segments eval
sub {
    my $done = $_[0][1];
    ok($done->{annotations}{sse}, 'a stream');
    ok(JSON::PP::is_bool($done->{annotations}{sse_reconnect})
       && !$done->{annotations}{sse_reconnect}, 'not a reconnection');
    ok(!exists $done->{metadata}, 'no Last-Event-ID to record');
}



=== TEST 4: reconnections are correlated by what the client sends
--- config
    location /t {
        xray on;
        xray_sse on;
        xray_annotation session_id $http_x_session_id;
        xray_annotation previous_trace_id $http_x_previous_trace_id;
        xray_annotation connection_sequence $http_x_connection_sequence number;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/1/10/;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272799;Sampled=1
Last-Event-ID: 7
X-Session-Id: 3f2a9c1e-session
X-Previous-Trace-Id: $::Root
X-Connection-Sequence: 2"
--- segment_count: 2
--- segments eval
sub {
    my $a = $_[0][1]{annotations};
    is($a->{session_id}, '3f2a9c1e-session', 'session_id');
    is($a->{previous_trace_id}, $::Root, 'previous_trace_id');
    is($a->{connection_sequence}, 2, 'connection_sequence, a number');
    ok($a->{sse_reconnect}, 'a reconnection');
}



=== TEST 5: EventSource clients: trace context from a query argument
--- config
    location /t {
        xray on;
        xray_sse on;
        xray_trace_context $arg_xray;
        xray_annotation session_id $arg_session;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t?session=s1&xray=Root%3D1-5759e988-bd862e3fe1be46a994272793%3BParent%3D53995c3f42cd8ad8%3BSampled%3D1
--- response_body_like chomp
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=(?!53995c3f42cd8ad8)[0-9a-f]{16};Sampled=1\r\n\r\n\z
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{trace_id}, $::Root, 'joined the trace');
    is($s->{parent_id}, '53995c3f42cd8ad8', 'under the client');
    is($s->{annotations}{session_id}, 's1', 'session from the query');
    is($s->{http}{request}{url}, 'http://localhost/t', 'query not recorded');
}



=== TEST 6: a bad query-argument context is dropped exactly like a header
--- config
    location /t {
        xray on;
        xray_trace_context $arg_xray;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t?xray=Root%3D1-5759e988-bd862e3fe1be46a99427279%0D%0AX-Evil:%201
--- response_body_unlike
(?i)X-Amzn-Trace-Id|X-Evil
--- error_log
xray: dropped trace context from xray_trace_context: bad character
--- segment_count: 0



=== TEST 7: the header wins over the alternative source
--- config
    location /t {
        xray on;
        xray_trace_context $arg_xray;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t?xray=Root%3D1-5759e988-bd862e3fe1be46a994272794
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1"
--- response_body_like chomp
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;



=== TEST 8: not originated by default, even with an alternative source
--- config
    location /t {
        xray on;
        xray_trace_context $arg_xray;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- response_body_unlike
X-Amzn-Trace-Id
--- segment_count: 0
