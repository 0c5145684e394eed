# The proxy's own segments, as the daemon receives them: one datagram per
# traced request, each a {"format":"json","version":1} line and a document
# that XRayTest validates against AWS's schema before the checks below.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';
our $Forwarded;    # the Parent the upstream received, from a burst

add_block_preprocessor(sub {
    my $block = shift;

    # every block reports to the sink and samples everything unless it says
    # otherwise
    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
_EOC_
    }

    if (!defined $block->request) {
        $block->set_value('request', 'GET /t');
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers',
            "X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1");
    }
});

run_tests();

__DATA__

=== TEST 1: a 200: every field of the segment and of the upstream call
--- config
    location /t {
        xray on;
        xray_segment_name edge-proxy;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t?secret=1
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1
User-Agent: test-agent/1.0"
--- burst: 1
--- burst_check eval
sub {
    ($::Forwarded) = $_[0][0]{body} =~ /;Parent=([0-9a-f]{16});/;
    ok($::Forwarded, 'the upstream received a Parent');
}
--- segment_count: 2
--- segments eval
sub {
    my ($docs) = @_;
    my ($s) = grep { $_->{subsegments}[0]{id} eq $::Forwarded } @$docs;
    ok($s, 'the remote subsegment id is the Parent the upstream received')
        or return;
    is($s->{name}, 'edge-proxy', 'name from xray_segment_name');
    like($s->{id}, qr/^[0-9a-f]{16}$/, 'segment id');
    isnt($s->{id}, $::Forwarded, 'segment id is not the upstream call id');
    is($s->{trace_id}, $::Root, "the client's trace id");
    is($s->{parent_id}, '53995c3f42cd8ad8', "the client's Parent");
    like($s->{start_time}, qr/^\d{10}\.\d+$/, 'start_time in seconds');
    ok($s->{end_time} >= $s->{start_time}, 'end_time after start_time');
    ok(abs($s->{end_time} - Time::HiRes::time()) < 10, 'end_time is now');
    is_deeply($s->{http}{request}, {
        method => 'GET', url => 'http://localhost/t',
        user_agent => 'test-agent/1.0', client_ip => '127.0.0.1',
    }, 'http.request, query string left out');
    is($s->{http}{response}{status}, 200, 'http.response.status');
    like($s->{http}{response}{content_length}, qr/^\d+$/, 'content_length');
    ok(!exists $s->{$_}, "no $_ flag") for qw(error throttle fault cause);
    is_deeply($s->{aws}{xray}, {
        sdk => 'ngx_http_xray_module', sdk_version => '0.1.0',
        sampling_rule_name => 'default',
    }, 'aws.xray');

    my $u = $s->{subsegments}[0];
    is($u->{namespace}, 'remote', 'upstream call is remote');
    is($u->{name}, '127.0.0.1', 'named after the upstream host');
    is_deeply($u->{http}{request},
              { method => 'GET',
                url => "http://127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}/t" },
              'upstream call http.request');
    is($u->{http}{response}{status}, 200, 'upstream status');
    ok($u->{start_time} >= $s->{start_time}
       && $u->{end_time} <= $s->{end_time}, 'inside the segment');
    is(scalar @{ $u->{subsegments} }, 1, 'one attempt');
    my $a = $u->{subsegments}[0];
    is($a->{name}, "127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}", 'attempt peer');
    is($a->{http}{response}{status}, 200, 'attempt status');
    ok(defined $a->{metadata}{nginx}{$_}, "attempt $_")
        for qw(connect_time header_time response_time);
}



=== TEST 2: 404 is an error
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/404;
    }
--- error_code: 404
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{http}{response}{status}, 404, 'status');
    ok($s->{error} && !$s->{throttle} && !$s->{fault}, 'error only');
    ok($s->{subsegments}[0]{error}, 'the upstream call too');
}



=== TEST 3: 429 is a throttle and an error
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/429;
    }
--- error_code: 429
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok($s->{throttle} && $s->{error} && !$s->{fault}, 'throttle + error');
}



=== TEST 4: a dead upstream: 502, fault, and a cause that says why
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:1;
    }
--- error_code: 502
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok($s->{fault}, 'fault');
    my $e = $s->{cause}{exceptions}[0];
    is($e->{type}, 'UpstreamConnectFailed', 'cause type');
    like($e->{message}, qr/refused or unreachable/, 'cause message');
    ok($e->{remote}, 'remote cause');
    like($e->{id}, qr/^[0-9a-f]{16}$/, 'exception id');
    my $u = $s->{subsegments}[0];
    ok($u->{fault} && !$u->{http}{response}, 'the call failed, no response');
    is($u->{subsegments}[0]{name}, '127.0.0.1:1', 'the attempt names the peer');
}
--- error_log
connect() failed (111: Connection refused)



=== TEST 5: a slow upstream: 504, fault, a timeout cause
--- config
    location /t {
        xray on;
        proxy_read_timeout 300ms;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/3000;
    }
--- error_code: 504
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok($s->{fault}, 'fault');
    is($s->{cause}{exceptions}[0]{type}, 'UpstreamTimeout', 'cause type');
    ok($s->{end_time} - $s->{start_time} >= 0.29, 'lasted the timeout');
    my $a = $s->{subsegments}[0]{subsegments}[0];
    # the read timeout ran after the connection was made: however long a
    # loaded machine took to connect, the wait for the header came after it
    my $t = $a->{metadata}{nginx};
    ok(defined $t->{connect_time}, 'connected');
    is($t->{response_time} - $t->{connect_time} >= 0.299, 1,
       'then waited the read timeout') or diag explain $t;
}
--- error_log
upstream timed out



=== TEST 6: two servers, the first dead: one call, two attempts
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    upstream lambda {
        server 127.0.0.1:1;
        server 127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- config
    location /t {
        xray on;
        proxy_pass http://lambda;
    }
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok(!$s->{fault} && !$s->{cause}, 'the request succeeded');
    my $u = $s->{subsegments}[0];
    is($u->{name}, 'lambda', 'named after the upstream block');
    is($u->{http}{response}{status}, 200, 'the call succeeded');
    my @a = @{ $u->{subsegments} };
    is(scalar @a, 2, 'two attempts');
    is($a[0]{name}, '127.0.0.1:1', 'first peer');
    ok($a[0]{fault}, 'first attempt failed');
    is($a[0]{cause}{exceptions}[0]{type}, 'UpstreamConnectFailed', 'why');
    is($a[1]{name}, "127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}", 'second peer');
    is($a[1]{http}{response}{status}, 200, 'second attempt answered');
    ok($a[1]{start_time} >= $a[0]{end_time}, 'attempts in order');
    isnt($a[0]{id}, $a[1]{id}, 'attempts have their own ids');
}
--- error_log
connect() failed (111: Connection refused)



=== TEST 7: a stream's segment lasts as long as the stream, in progress first
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/3/200;
    }
--- response_body_like
data: event 3
--- segment_count: 2
--- segments eval
sub {
    my ($docs) = @_;
    my ($open, $done) = @$docs;
    ok($open->{in_progress}, 'an in-progress document when the stream began');
    ok(!exists $open->{end_time}, 'without end_time');
    is($done->{id}, $open->{id}, 'the complete document replaces it');
    ok(!$done->{in_progress}, 'complete');
    ok($done->{end_time} - $done->{start_time} >= 0.55,
       'the segment covers the whole stream')
        or diag($done->{end_time} - $done->{start_time});
    ok($done->{subsegments}[0]{end_time} - $done->{subsegments}[0]{start_time}
       >= 0.55, 'and so does the upstream call');
}



=== TEST 8: xray_in_progress off: only the complete document
--- config
    location /t {
        xray on;
        xray_in_progress off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/1/10;
    }
--- segment_count: 1
--- segments eval
sub { ok(!$_[0][0]{in_progress}, 'complete') }



=== TEST 9: unsampled: nothing is recorded
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/1/10;
    }
--- segment_count: 0



=== TEST 10: an unsampled 5xx is captured by default
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/503;
    }
--- error_code: 503
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok($s->{fault}, 'the fault is recorded');
    is($s->{trace_id}, $::Root, 'in the client\'s trace');
}



=== TEST 11: xray_capture_errors 4xx also captures client errors; off none
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_capture_errors 4xx;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/404;
    }
    location /off {
        xray on;
        xray_capture_errors off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/503;
    }
--- request eval
["GET /t", "GET /off"]
--- error_code eval
[404, 503]
--- segment_count: 1
--- segments eval
sub { is($_[0][0]{http}{response}{status}, 404, 'only the 404') }



=== TEST 12: annotations and metadata escape whatever a client sends
--- config
    location /t {
        xray on;
        xray_annotation note $http_x_note;
        xray_annotation empty $http_x_absent;
        xray_annotation tries 2 number;
        xray_annotation cached off boolean;
        xray_metadata note $http_x_note;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1
X-Note: q\"b\\\\s\x01\x1f\xff\xc3(end"
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{annotations}{note}, "q\"b\\\\s\x{1}\x{1f}\x{fffd}\x{fffd}(end",
       'quotes, backslashes, control bytes kept; invalid UTF-8 replaced');
    ok(!exists $s->{annotations}{empty}, 'an empty value is omitted');
    is($s->{annotations}{tries}, 2, 'a number');
    ok(JSON::PP::is_bool($s->{annotations}{cached})
       && !$s->{annotations}{cached}, 'a boolean');
    is($s->{metadata}{nginx}{note}, $s->{annotations}{note}, 'metadata too');
}



=== TEST 13: long annotation values are cut at X-Ray's 1000 characters
--- config
    location /t {
        xray on;
        xray_annotation long $http_x_long;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1\nX-Long: " . ("a" x 1500)
--- segment_count: 1
--- segments eval
sub { is(length $_[0][0]{annotations}{long}, 1000, '1000 characters') }



=== TEST 14: the query is recorded only when asked, and redacted
--- config
    location /t {
        xray on;
        xray_record_query on;
        xray_redact "token=([^&]+)";
        xray_redact "/users/[0-9]+";
        xray_annotation q $args;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t/users/42?token=s3cr3t&page=2&token=again
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{http}{request}{url},
       'http://localhost/t***?token=***&page=2&token=***',
       'matches masked, a capture group only');
    is($s->{annotations}{q}, 'token=***&page=2&token=***',
       'annotations are redacted too');
    unlike($_[1][0], qr{s3cr3t|again|users/42},
           'the secrets are in no byte sent');
}



=== TEST 15: a document over 64 KB is split: the upstream call goes alone
--- http_config eval
"    xray_daemon 127.0.0.1:\$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules \$TEST_NGINX_HTML_DIR/always.json;
    upstream many {\n"
. CORE::join('', map { "        server 127.0.0.1:1 max_fails=0;\n" } 1 .. 80)
. "        server 127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT max_fails=0;
    }\n"
--- config eval
"location /t {
    xray on;
    proxy_pass http://many;
" . CORE::join('', map { "    xray_annotation a$_ \$http_x_big;\n" } 1 .. 40)
. "}"
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1\nX-Big: " . ("b" x 1000)
--- segment_count: 2
--- segments eval
sub {
    my ($docs, $raw) = @_;
    my ($sub, $seg) = @$docs;
    is($sub->{type}, 'subsegment', 'the upstream call first, on its own');
    is($sub->{trace_id}, $::Root, 'with the trace id');
    is($sub->{parent_id}, $seg->{id}, 'and the segment as its parent');
    is(scalar @{ $sub->{subsegments} }, 81, 'all 81 attempts');
    ok(!exists $seg->{subsegments}, 'then the segment without it');
    is(scalar keys %{ $seg->{annotations} }, 40, 'with all its annotations');
    ok(length($_) <= 65507, 'datagram within UDP limits') for @$raw;
    ok(length($raw->[0]) + length($raw->[1]) > 65507,
       'together they would not have fitted');
}
--- error_log
connect() failed (111: Connection refused)



=== TEST 16: a dead daemon costs a counter, not a request
--- http_config
    xray_daemon 127.0.0.1:1 flush=10ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- burst: 200
--- burst_concurrency: 4
--- burst_check eval
sub {
    my ($res) = @_;
    is(scalar(grep { $_->{status} == 200 && $_->{body} =~ /Sampled=1/ }
              @$res), 200, 'every request answered and forwarded');
}
--- no_error_log
[error]
[alert]
[crit]



=== TEST 17: requests without trace context produce nothing
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/500;
    }
--- more_headers
X-Foo: bar
--- error_code: 500
--- segment_count: 0



=== TEST 18: locally answered requests are recorded too, without a call
--- config
    location /t {
        xray on;
        xray_originate on;
        return 418;
    }
--- more_headers
X-Foo: bar
--- error_code: 418
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok(!exists $s->{parent_id}, 'an originated trace has no parent');
    ok(!exists $s->{subsegments}, 'no upstream call');
    ok($s->{error}, '4xx is an error');
}



=== TEST 19: redaction: anchors, lookbehinds, and groups outside the match
--- config
    location /t {
        xray on;
        xray_record_query on;
        xray_redact "^/t/a";
        xray_redact "(?<=key=)[^&]+";
        xray_redact "x(?=(=1))";
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t/a/t/a?key=abc&x=1
--- segment_count: 1
--- segments eval
sub {
    is($_[0][0]{http}{request}{url},
       'http://localhost***/t/a?key=***&x***',
       '^ only at the start, the lookbehind sees what precedes, a group '
       . 'in a lookahead is masked where it is');
}



=== TEST 20: no live upstreams says so
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    upstream dead {
        server 127.0.0.1:1 max_fails=1 fail_timeout=60s;
        server 127.0.0.1:2 max_fails=1 fail_timeout=60s;
    }
--- config
    location /t {
        xray on;
        proxy_pass http://dead;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[502, 502]
--- segment_count: 2
--- segments eval
sub {
    my ($first, $second) = @{ $_[0] };
    is($first->{cause}{exceptions}[0]{type}, 'UpstreamConnectFailed',
       'the first attempt was refused');
    is($second->{cause}{exceptions}[0]{type}, 'NoLiveUpstreams',
       'then no peer was left to try');
    is($second->{subsegments}[0]{subsegments}[0]{name}, 'dead',
       'nginx names the upstream itself then');
}
