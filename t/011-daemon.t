# Where segments go: the xray_daemon directive, AWS_XRAY_DAEMON_ADDRESS in
# both of its forms (read when the configuration is), bad addresses refused
# by nginx -t, and a graceful quit that flushes what was queued.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

# nginx reads it at configuration time, as the X-Ray SDKs do at start-up
$ENV{AWS_XRAY_DAEMON_ADDRESS} =
    "tcp:127.0.0.1:2000 udp:127.0.0.1:$ENV{TEST_NGINX_XRAY_DAEMON_PORT}";

log_level('info');
no_shuffle();
no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->more_headers) {
        $block->set_value('more_headers',
            'X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;'
            . 'Sampled=1');
    }
});

run_tests();

__DATA__

=== TEST 1: AWS_XRAY_DAEMON_ADDRESS, "tcp:... udp:..." form
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- segment_count: 1
--- segments eval
sub { is($_[0][0]{http}{response}{status}, 204, 'the segment arrived') }



=== TEST 2: xray_daemon wins over the environment; names are resolved; a full batch leaves at once
--- http_config
    xray_daemon localhost:$TEST_NGINX_XRAY_DAEMON_PORT batch=2 flush=1h;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        return 204;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[204, 204]
--- segment_count: 2



=== TEST 3: a graceful quit flushes what was queued
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=1h;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- segment_count: 0
--- segments eval
sub {
    my $pidfile = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid";
    open my $fh, '<', $pidfile or return fail("no $pidfile: $!");
    CORE::chomp(my $pid = <$fh>);
    ok(kill('QUIT', $pid), 'nginx told to quit gracefully');
    my @d = XRayTest::sink_datagrams(min_count => 1, timeout => 10);
    is(scalar @d, 1, 'the queued segment was sent on the way out');
}



=== TEST 4: a port out of range
--- http_config
    xray_daemon 127.0.0.1:65536;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid xray_daemon: invalid port in "127\.0\.0\.1:65536"}



=== TEST 5: no port
--- http_config
    xray_daemon 127.0.0.1;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid xray_daemon: }



=== TEST 6: a bad batch size
--- http_config
    xray_daemon 127.0.0.1:2000 batch=0;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid batch "batch=0": it must be a number from 1 to 1024}



=== TEST 7: a bad flush time
--- http_config
    xray_daemon 127.0.0.1:2000 flush=soon;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid flush time "flush=soon"}



=== TEST 8: IPv6 without brackets
--- http_config
    xray_daemon ::1:2000;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid xray_daemon: }



=== TEST 9: annotation keys are X-Ray's [A-Za-z0-9_]
--- config
    location /t {
        xray_annotation user-id $remote_user;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid annotation key "user-id"}



=== TEST 10: an annotation key twice
--- config
    location /t {
        xray_annotation a $uri;
        xray_annotation a $args;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*duplicate key "a"}



=== TEST 11: a bad annotation type
--- config
    location /t {
        xray_annotation a $uri integer;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid annotation type "integer"}



=== TEST 12: a bad redaction regex
--- config
    location /t {
        xray_redact "token=([^&]+";
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*pcre2_compile\(\) failed: missing closing parenthesis in "token=\(\[\^&\]\+"}



=== TEST 13: xray_capture_errors takes off, 5xx or 4xx
--- config
    location /t {
        xray_capture_errors 3xx;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid value "3xx" in "xray_capture_errors" directive, it must be "off", "5xx" or "4xx"}



=== TEST 14: the module's own annotation keys are refused
--- config
    location /t {
        xray_annotation sse $uri;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*annotation key "sse" is the module's own}



=== TEST 15: at most 48 annotations a level
--- config eval
"location /t {\n"
. CORE::join('', map { "    xray_annotation a$_ \$uri;\n" } 1 .. 49)
. "}\n"
--- must_die
--- error_log eval
qr{\[emerg\] .*"xray_annotation" directive is used more than 48 times}
