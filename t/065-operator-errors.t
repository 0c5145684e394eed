# Operator mistakes get nginx-quality errors: a rules path that is a
# directory, duplicate keys in the rules.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();

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
