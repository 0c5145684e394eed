# Operator mistakes get nginx-quality errors: a rules path that is a
# directory, duplicate keys in the rules, and a malformed
# AWS_XRAY_DAEMON_ADDRESS, which stops only an nginx that needs the address
# (one with xray on somewhere and no xray_daemon).

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();

# --- daemon_env: the AWS_XRAY_DAEMON_ADDRESS nginx starts with
our $Default = $ENV{AWS_XRAY_DAEMON_ADDRESS};

add_block_preprocessor(sub {
    my $block = shift;
    $ENV{AWS_XRAY_DAEMON_ADDRESS} = defined $block->daemon_env
        ? $block->daemon_env =~ s/^\s+|\s+$//gr : $Default;
});

run_tests();

__DATA__

=== TEST 1: a rules path that is a directory
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/rules.d;
--- config
--- user_files
>>> rules.d/a.json
{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*"xray_sampling_rules" ".*/rules\.d" is not a regular file in \S+/nginx\.conf:\d+}



=== TEST 2: duplicate keys in a rule
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/dup.json;
--- config
--- user_files
>>> dup.json
{"version": 2,
 "rules": [{"host": "*", "http_method": "*", "url_path": "/a",
            "fixed_target": 0, "rate": 0, "rate": 1}],
 "default": {"fixed_target": 1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/dup\.json": duplicate key "rate" in rule 1 in \S+/nginx\.conf:\d+}



=== TEST 3: duplicate keys at the top
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/dup.json;
--- config
--- user_files
>>> dup.json
{"version": 2, "default": {"fixed_target": 1, "rate": 0.05},
 "default": {"fixed_target": 0, "rate": 1}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/dup\.json": duplicate key "default"}



=== TEST 4: a malformed AWS_XRAY_DAEMON_ADDRESS where no xray is on: a warning
--- daemon_env: 127.0.0.1:notaport
--- config
    location /t {
        xray_cors on;
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- error_log eval
qr{\[warn\] .*invalid AWS_XRAY_DAEMON_ADDRESS: .*127\.0\.0\.1:notaport}



=== TEST 5: the same where xray is on: nginx -t fails
--- daemon_env: 127.0.0.1:notaport
--- config
    location /t {
        xray on;
        return 204;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid AWS_XRAY_DAEMON_ADDRESS: .*127\.0\.0\.1:notaport}



=== TEST 6: the same with xray_daemon: the environment is not needed
--- daemon_env: 127.0.0.1:notaport
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT;
--- config
    location /t {
        xray on;
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- no_error_log
AWS_XRAY_DAEMON_ADDRESS
[emerg]



=== TEST 7: a status page alone does not need the daemon either
--- daemon_env: nowhere:
--- config
    location = /status {
        xray_status;
    }
--- request
GET /status
--- response_body_like: nginx_xray_documents_sent_total 0
--- error_log eval
qr{\[warn\] .*invalid AWS_XRAY_DAEMON_ADDRESS}
