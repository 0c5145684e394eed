# Configuration errors: nginx refuses to start, and the message names the
# directive, the file, the rule and the field.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();

run_tests();

__DATA__

=== TEST 1: xray takes on or off
--- config
    location /t {
        xray maybe;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid value "maybe" in "xray" directive, it must be "on" or "off"\E}



=== TEST 2: xray_sampling_rules is an http-level directive
--- config
    location /t {
        xray_sampling_rules /dev/null;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Q"xray_sampling_rules" directive is not allowed here\E}



=== TEST 3: a rules file that does not exist
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/missing.json;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*open\(\) ".*/missing\.json" failed \(2: No such file or directory\)}



=== TEST 4: rules that are not JSON
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 2, "default": {"fixed_target": 1, "rate": 0.05},
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": invalid JSON near offset \d+}



=== TEST 5: an unknown version
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 3, "default": {"fixed_target": 1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": "version" must be 1 or 2}



=== TEST 6: no default rule
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 2, "rules": []}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": missing "default"}



=== TEST 7: a rate out of range names the rule and the field
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 2,
 "rules": [
   {"description": "ok", "host": "*", "http_method": "*", "url_path": "/a",
    "fixed_target": 0, "rate": 0.1},
   {"description": "Player moves.", "host": "*", "http_method": "*",
    "url_path": "/api/move/*", "fixed_target": 0, "rate": 5}
 ],
 "default": {"fixed_target": 1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": rule 2 \("Player moves\."\): "rate" must be a number from 0 to 1}



=== TEST 8: a rule without url_path
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 2,
 "rules": [{"host": "*", "http_method": "*", "fixed_target": 0, "rate": 0}],
 "default": {"fixed_target": 1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": rule 1: missing "url_path"}



=== TEST 9: the default must not narrow what it matches
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 2, "default": {"fixed_target": 1, "rate": 0.05, "url_path": "/a"}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": "default" must not set "url_path"}



=== TEST 10: a negative fixed_target
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/bad.json;
--- config
--- user_files
>>> bad.json
{"version": 2, "default": {"fixed_target": -1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid sampling rules file ".*/bad\.json": "default": "fixed_target" must be}



=== TEST 11: xray_sampling_rules twice
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/ok.json;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/ok.json;
--- config
--- user_files
>>> ok.json
{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}
--- must_die
--- error_log eval
qr{\[emerg\] .*\Q"xray_sampling_rules" directive is duplicate\E}



=== TEST 12: xray_trust_client_sampling takes one value
--- config
    location /t {
        xray_trust_client_sampling;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid number of arguments in "xray_trust_client_sampling" directive\E}



=== TEST 13: a good configuration starts, with the example rules
--- http_config
    xray_sampling_rules $TEST_NGINX_REPO/conf/sampling-rules/production.json;
--- config
    location /t {
        xray on;
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- no_error_log
[error]
[emerg]
