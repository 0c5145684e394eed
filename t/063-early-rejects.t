# Requests nginx rejects after reading their headers are traced like any
# other: a 413 for a Content-Length over client_max_body_size (found before
# the rewrite phase runs), a 400 for a missing Host, a return in the server
# block, over HTTP/0.9, 1.1 and 2.  When nothing decided earlier, the
# decision is taken when the response header goes out (so the access log has
# the $xray_* values), or in the log phase when no header goes out (444).
# Requests refused before their headers were read carry no trace context and
# stay unrecorded.

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use IPC::Run ();
use IO::Select ();
use IO::Socket::INET ();

# a second server, for HTTP/2 and for a server that answers nothing
$ENV{TEST_NGINX_H2_PORT} //= 2015;

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

    if (!defined $block->more_headers && !defined $block->raw_request) {
        $block->set_value('more_headers',
            "X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1");
    }
});

sub one_segment {
    my ($docs, $status) = @_;
    my $s = $docs->[0];
    Test::More::is($s->{trace_id}, $::Root, "the client's trace");
    Test::More::is($s->{http}{response}{status}, $status, "status $status");
    Test::More::ok($s->{error} && !$s->{fault}, 'an error');
    Test::More::ok(!exists $s->{subsegments}, 'no upstream call');
    return $s;
}

# sends the bytes to the second server, returns what came back before the
# peer closed
sub closed_without_answer {
    my ($req) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $ENV{TEST_NGINX_H2_PORT},
                                     Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    print $sock $req;
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while ($sel->can_read(10)) {
        my $n = sysread $sock, $buf, 65536, length $buf;
        last unless $n;
    }
    close $sock;
    return $buf;
}

run_tests();

__DATA__

=== TEST 1: 413 for a Content-Length over client_max_body_size is traced
--- config
    location /t {
        xray on;
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"POST /t\n" . ("x" x 100)
--- error_code: 413
--- segment_count: 1
--- segments eval
sub {
    my $s = main::one_segment($_[0], 413);
    is($s->{parent_id}, '53995c3f42cd8ad8', "the client's Parent");
    is($s->{http}{request}{url}, 'http://localhost/t', 'the url');
    is($s->{http}{request}{method}, 'POST', 'the method');
}



=== TEST 2: the same 413 with a chunked body (traced already)
--- config
    location /t {
        xray on;
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- raw_request eval
"POST /t HTTP/1.1\r\nHost: localhost\r\n"
. "X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1\r\n"
. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
. "64\r\n" . ("x" x 100) . "\r\n0\r\n\r\n"
--- error_code: 413
--- segment_count: 1
--- segments eval
sub { main::one_segment($_[0], 413) }



=== TEST 3: an unsampled 413 is captured under xray_capture_errors 4xx
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_capture_errors 4xx;
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location = /status {
        xray_status;
    }
--- request eval
["POST /t\n" . ("x" x 100), "GET /status"]
--- error_code eval
[413, 200]
--- response_body_like eval
["", qr/^nginx_xray_errors_captured_total 1$/m]
--- segment_count: 1
--- segments eval
sub { main::one_segment($_[0], 413) }



=== TEST 4: a 413 answers Sampled=? like any response
--- config
    location /t {
        xray on;
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"POST /t\n" . ("x" x 100)
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=?"
--- error_code: 413
--- response_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1"
--- segment_count: 1



=== TEST 5: the decision is counted once, rule matched, for a 413
--- config
    location /t {
        xray on;
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location = /status {
        xray_status;
    }
--- request eval
["POST /t\n" . ("x" x 100), "GET /status"]
--- error_code eval
[413, 200]
--- response_body_like eval
["", qr/^nginx_xray_requests_total\{outcome="sampled"\} 1$/m]
--- segment_count: 1



=== TEST 6: 400 for an HTTP/1.1 request without Host, xray on in the server
--- config
    xray on;
    location /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- raw_request eval
"GET /t HTTP/1.1\r\n"
. "X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1\r\n\r\n"
--- error_code: 400
--- segment_count: 1
--- segments eval
sub { main::one_segment($_[0], 400) }



=== TEST 7: a return in the server block, xray on in the server
--- config
    xray on;
    return 418;
--- request
GET /t
--- error_code: 418
--- segment_count: 1
--- segments eval
sub { main::one_segment($_[0], 418) }



=== TEST 8: refused before the headers were read: nothing to trace
--- config
    xray on;
    xray_originate on;
    location /t {
        return 204;
    }
--- raw_request eval
"GET /t HTTP/1.1 junk\r\nHost: localhost\r\n\r\n"
--- error_code: 400
--- segment_count: 0



=== TEST 9: a 414 is refused before the headers: nothing to trace
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    large_client_header_buffers 2 1k;
--- config
    xray on;
    xray_originate on;
    location /t {
        return 204;
    }
--- raw_request eval
"GET /t/" . ("u" x 2000) . " HTTP/1.1\r\nHost: localhost\r\n\r\n"
--- error_code: 414
--- segment_count: 0



=== TEST 10: a 413 in a location without xray stays untraced
--- config
    location /t {
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"POST /t\n" . ("x" x 100)
--- error_code: 413
--- segment_count: 0



=== TEST 11: decided in the header filter: the access log has the context
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    log_format ids '$status $xray_trace_id $xray_sampled';
--- config
    access_log $TEST_NGINX_HTML_DIR/ids.log ids;
    location /t {
        xray on;
        client_max_body_size 10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"POST /t\n" . ("x" x 100)
--- error_code: 413
--- segment_count: 1
--- segments eval
sub {
    open my $fh, '<', "$ENV{TEST_NGINX_HTML_DIR}/ids.log" or die $!;
    my $line = <$fh> // '';
    $line =~ s/\n\z//;
    is($line, "413 $::Root 1", 'the 413 is logged with its trace and decision');
}



=== TEST 12: no header sent (444 at server level): decided in the log phase
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    log_format ids '$status $xray_trace_id';
    server {
        listen 127.0.0.1:$TEST_NGINX_H2_PORT;
        access_log $TEST_NGINX_HTML_DIR/ids.log ids;
        xray on;
        return 444;
    }
--- config
    location = /alive {
        return 204;
    }
--- init
my $got = main::closed_without_answer("GET /t HTTP/1.1\r\nHost: localhost\r\n"
    . "X-Amzn-Trace-Id: Root=$::Root;Sampled=1\r\n\r\n");
Test::More::is($got, '', '444: closed without an answer');
--- request
GET /alive
--- error_code: 204
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{trace_id}, $::Root, "the client's trace");
    is($s->{http}{response}{status}, 444, 'status 444');
    open my $fh, '<', "$ENV{TEST_NGINX_HTML_DIR}/ids.log" or die $!;
    my $line = <$fh> // '';
    $line =~ s/\n\z//;
    is($line, '444 -', 'the access log, written before, has no context');
}



=== TEST 13: HTTP/0.9 refused at server level, context from the query
--- config
    xray on;
    xray_trace_context $arg_xray;
    return 418;
--- raw_request eval
"GET /t?xray=Root%3D$::Root%3BSampled%3D1\r\n"
--- http09
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{trace_id}, $::Root, 'the trace from the query argument');
    is($s->{http}{response}{status}, 418, 'status 418');
}
--- no_error_log
exited on signal



=== TEST 14: HTTP/2 with a Content-Length over client_max_body_size
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    server {
        listen 127.0.0.1:$TEST_NGINX_H2_PORT http2;
        location /t {
            xray on;
            client_max_body_size 10;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
    }
--- config
    location = /alive {
        return 204;
    }
--- init
my ($out, $err) = ('', '');
# node's client, not curl: see t/lib/h2_request.mjs
IPC::Run::run([$ENV{XRAYTEST_NODE} || 'node',
               "$ENV{TEST_NGINX_REPO}/t/lib/h2_request.mjs",
               "http://127.0.0.1:$ENV{TEST_NGINX_H2_PORT}/t", 'POST',
               'x' x 100, 'content-length: 100',
               "x-amzn-trace-id: Root=$::Root;Sampled=1"],
              \undef, \$out, \$err, IPC::Run::timeout(20));
Test::More::is($out, "413\n", 'HTTP/2: 413');
--- request
GET /alive
--- error_code: 204
--- segment_count: 1
--- segments eval
sub { main::one_segment($_[0], 413) }
