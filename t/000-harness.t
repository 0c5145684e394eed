# Self-test of the test harness (t/runner + t/lib/XRayTest.pm) with stock
# nginx features only: no xray directive appears here.
#
#   TEST_NGINX_BINARY=/usr/sbin/nginx prove -I t/runner -I t/lib t/000-harness.t

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: echo upstream returns the exact request head it received
--- config
    location /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- response_body eval
"GET /t HTTP/1.0\r
Host: 127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}\r
Connection: close\r
\r
"
--- response_headers
Content-Type: text/plain
--- no_error_log
[error]



=== TEST 2: more_headers reach the upstream
--- config
    location /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like chomp
^GET /t HTTP/1.0\r\nHost: .*X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\r\n\r\n\z
--- no_error_log
[error]



=== TEST 3: /status/NNN sets the upstream status, the rest of the path is ignored
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
    }
--- request
GET /up/status/404/whatever?a=1
--- error_code: 404
--- response_body_like: ^GET /status/404/whatever\?a=1 HTTP/1\.0\r\n
--- no_error_log
[error]



=== TEST 4: /delay/MS delays the answer
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        add_header X-Upstream-Time $upstream_header_time;
    }
--- request
GET /up/delay/300/x
--- response_headers_like
X-Upstream-Time: (?:0\.[3-9]\d*|[1-9]\d*\.\d+)
--- response_body_like: ^GET /delay/300/x HTTP/1\.0\r\n



=== TEST 5: paths compose left to right: status, delay, header
proxy_pass without a URI part passes the request URI unchanged (%2F stays
encoded); with one, nginx would pass the decoded path.
--- config
    location /status/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /status/503/delay/20/header/X-Test/a%20b%2Fc/tail
--- error_code: 503
--- response_headers
X-Test: a b/c
Content-Type: text/plain
--- response_body_like: ^GET /status/503/delay/20/header/X-Test/a%20b%2Fc/tail HTTP/1\.0\r\n



=== TEST 6: /header fakes upstream CORS headers; "!Name" and "Name:" in response_headers
--- config
    location /header/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /header/Access-Control-Allow-Origin/https%3A%2F%2Fexample.com/header/Vary/Origin/
--- response_headers
Access-Control-Allow-Origin: https://example.com
Vary: Origin
!Access-Control-Allow-Credentials
X-Never-Sent:
--- raw_response_headers_like: Access-Control-Allow-Origin: https://example\.com\r\n
--- raw_response_headers_unlike: Transfer-Encoding



=== TEST 7: /sse streams events (chunked to the client), with the Last-Event-ID it got
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        proxy_buffering off;
    }
--- request
GET /up/sse/3/50/
--- more_headers
Last-Event-ID: 41
--- response_headers
Content-Type: text/event-stream
--- raw_response_headers_like: Transfer-Encoding: chunked\r\n
--- response_body eval
"event: hello\ndata: 41\n\n"
. "id: 1\ndata: event 1\n\n"
. "id: 2\ndata: event 2\n\n"
. "id: 3\ndata: event 3\n\n"
--- no_error_log
[error]



=== TEST 8: /reset makes nginx see a connection reset
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
    }
--- request
GET /up/reset/
--- error_code: 502
--- error_log
Connection reset by peer



=== TEST 9: /hang never answers: nginx times out
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        proxy_read_timeout 300ms;
    }
--- request
GET /up/hang/
--- error_code: 504
--- error_log eval
qr/\[error\] .*upstream timed out/



=== TEST 10: client timeout with --- abort is not a failure
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
    }
--- request
GET /up/delay/1000/
--- timeout: 200ms
--- abort
--- error_code:



=== TEST 11: a POST body is counted, sent and drained by the upstream
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
    }
--- request
POST /up/echo
hello world
--- response_body_like: ^POST /echo HTTP/1\.0\r\n.*Content-Length: 11\r\n
--- no_error_log
[error]



=== TEST 12: a request split in packets, with a delay
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
    }
--- request eval
[["POST /up/packets\nhel", { value => "lo", delay_before => 0.05 }]]
--- response_body_like: ^POST /packets HTTP/1\.0\r\n.*Content-Length: 5\r\n



=== TEST 13: several requests, user_files, arrays of expectations
error_log / no_error_log are checked after *each* request (on the lines
logged since the previous check), like in Test::Nginx.
--- config
    location /static/ {
        alias $TEST_NGINX_SERVER_ROOT/html/;
    }
--- user_files
>>> hello.txt
Hello, harness
--- request eval
["GET /static/hello.txt", "GET /static/missing.txt"]
--- error_code eval
[200, 404]
--- response_body_like eval
["^Hello, harness\n\\z", "404 Not Found"]
--- no_error_log
[crit]



=== TEST 14: pipelined requests on one connection
--- config
    location = /a { return 200 "a\n"; }
    location = /b { return 200 "b\n"; }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- response_body eval
["a\n", "b\n"]



=== TEST 15: raw_request is sent as is
--- config
    location = /raw { return 200 "raw ok\n"; }
--- raw_request eval
"GET /raw HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_body
raw ok
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n



=== TEST 16: error_log / no_error_log with eval arrays, grep_error_log
--- config
    location = /t {
        root $TEST_NGINX_SERVER_ROOT/html;
        try_files /nope.html =404;
    }
    location = /missing.html {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /missing.html
--- error_code: 404
--- error_log eval
[qr/open\(\) ".*\/missing\.html" failed/, "No such file or directory"]
--- no_error_log eval
[qr/\[crit\]/, "[alert]", "[emerg]"]
--- grep_error_log eval
qr/No such file or directory/
--- grep_error_log_out
No such file or directory



=== TEST 17: tcp_listen / tcp_query / tcp_reply
--- config
    location /t {
        proxy_pass http://127.0.0.1:1987;
    }
--- tcp_listen: 1987
--- tcp_query eval
"GET /t HTTP/1.0\r\nHost: 127.0.0.1:1987\r\nConnection: close\r\n\r\n"
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
--- request
GET /t
--- response_body
hello



=== TEST 18: udp_listen / udp_query: nginx's syslog access log is a UDP client
--- config
    location /t {
        access_log syslog:server=127.0.0.1:1988,tag=harness,nohostname;
        return 200 "ok\n";
    }
--- udp_listen: 1988
--- udp_reply: ignored
--- udp_query eval
qr/harness: 127\.0\.0\.1 - - \[.*\] "GET \/t HTTP\/1\.1" 200 3 /
--- request
GET /t
--- response_body
ok
--- no_error_log
[error]



=== TEST 19: must_die on a bad directive; the [emerg] line is checked
--- config
    location /t {
        harness_no_such_directive on;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
unknown directive "harness_no_such_directive"
--- no_error_log
[crit]



=== TEST 20: shutdown_error_log is checked after nginx stops
--- config
    location = /t { return 200 "bye\n"; }
--- request
GET /t
--- response_body
bye
--- shutdown_error_log
gracefully shutting down



=== TEST 21: skip_eval skips the given number of tests
--- config
    location = /t { return 200; }
--- request
GET /t
--- skip_eval: 2: 1
--- response_body



=== TEST 22: burst: N more copies of the request, checked together
--- config
    location /up/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
    }
--- request
GET /up/burst
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like: ^GET /burst HTTP/1\.0\r\n
--- burst: 30
--- burst_concurrency: 5
--- burst_check eval
sub {
    my ($responses) = @_;
    is(scalar @$responses, 30, 'burst: 30 responses');
    is(scalar(grep { ($_->{status} // 0) == 200 } @$responses), 30,
       'burst: all 200');
    is(scalar(grep { $_->{headers}{'content-type'} eq 'text/plain' } @$responses),
       30, 'burst: header hash uses lower-case names');
    is(scalar(grep { $_->{body} =~ m{^GET /burst HTTP/1\.0\r\n.*\r\nX-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\r\n}s }
              @$responses), 30, 'burst: each upstream saw the trace header');
    like($responses->[0]{raw_headers}, qr{^HTTP/1\.1 200 OK\r\n}, 'burst: raw headers');
}
--- no_error_log
[error]



=== TEST 23: segments: the sink records every datagram; schema validation runs
--- config
    location = /t { return 200 "ok\n"; }
--- init
XRayTest::send_datagram(XRayTest::example_datagram('1_proxy_segment_with_remote_subsegment.json'));
XRayTest::send_datagram(XRayTest::example_datagram('4_downstream_segment_linked.json'));
XRayTest::send_datagram(XRayTest::example_datagram('5_segment_with_cause.json'));
--- request
GET /t
--- response_body
ok
--- segment_count: 3
--- segments eval
sub {
    my ($docs, $raw) = @_;
    my %by_id = map { $_->{id} => $_ } @$docs;
    is($by_id{'70de5b6f19ff9a0a'}{name}, 'edge-proxy', 'segments: example 1 decoded');
    is($by_id{'70de5b6f19ff9a0a'}{subsegments}[0]{namespace}, 'remote',
       'segments: nested fields decoded');
    is(scalar(grep { /^\{"format":"json","version":1\}\n\{/ } @$raw), 3,
       'segments: raw datagrams keep the header line');
    my @split = map { XRayTest::split_datagram($_) } @$raw;
    is(scalar(grep { !defined $_->{header_error} && !defined $_->{body_error} } @split),
       3, 'segments: split_datagram finds header and body');
}



=== TEST 24: segment_count: 0 passes when nothing is sent
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- segment_count: 0
--- segments eval
sub {
    my ($docs, $raw) = @_;
    is(scalar @$docs, 0, 'segments: no document');
}



=== TEST 25: the validator itself: valid examples pass, invalid documents are reported
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- segment_count: 0
--- segments eval
sub {
    my @valid = map { XRayTest::example_document($_) }
        qw(1_proxy_segment_with_remote_subsegment.json 2_in_progress_segment.json
           3_independent_subsegment.json 4_downstream_segment_linked.json
           5_segment_with_cause.json);
    is_deeply([XRayTest::validate_documents(@valid)], [],
              'validator: the examples in t/data are valid');

    my @errors = XRayTest::validate_documents(
        '{"name":"edge-proxy","start_time":1465379208.1}',
        { name => 'ok', id => '70de5b6f19ff9a0a', trace_id => 'not-a-trace-id',
          start_time => 1 },
        '{"broken json"',
    );
    # (no bare join/sort/split here: Test::Base compiles eval sections in
    # Test::Base::Filter, whose filters of those names make them ambiguous)
    ok(scalar(grep { $_ eq "document 1: /: 'id' is a required property" } @errors),
       'validator: missing id reported') or diag(explain(\@errors));
    ok(scalar(grep { m{^document 2: /trace_id: } } @errors),
       'validator: bad trace_id reported') or diag(explain(\@errors));
    ok(scalar(grep { /^document 3: not valid JSON/ } @errors),
       'validator: bad JSON reported') or diag(explain(\@errors));
    ok(!scalar(grep { /^document [45]/ } @errors), 'validator: only 3 documents');

    my $d = XRayTest::split_datagram(qq({"format":"json","version":2}\n{}));
    like($d->{header_error}, qr/version/, 'split_datagram: bad header reported');
    $d = XRayTest::split_datagram('{"format":"json","version":1}');
    ok(defined $d->{header_error}, 'split_datagram: missing newline reported');
}
