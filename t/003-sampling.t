# Server-side sampling: X-Ray sampling rules decide, never the client, unless
# the configuration trusts it.  Bursts of requests count what the upstream
# actually received in Sampled=.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();
no_root_location();

sub sampled { scalar grep { $_->{body} =~ /;Sampled=1[;\r]/ } @{ $_[0] } }
sub unsampled { scalar grep { $_->{body} =~ /;Sampled=0[;\r]/ } @{ $_[0] } }

run_tests();

__DATA__

=== TEST 1: a client's Sampled=1 cannot force tracing: 0 sampled of 300
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
--- response_body_like
;Sampled=0\r
--- burst: 300
--- burst_concurrency: 4
--- burst_check eval
sub {
    my ($res) = @_;
    is(scalar @$res, 300, '300 answers');
    is(scalar(grep { $_->{status} == 200 } @$res), 300, 'all 200');
    is(main::sampled($res), 0, 'none sampled');
    is(main::unsampled($res), 300, 'every upstream request says Sampled=0');
}



=== TEST 2: a fixed rate of 0.5 lands inside a statistical bound
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/half.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- user_files
>>> half.json
{"version": 2, "default": {"fixed_target": 0, "rate": 0.5}}
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- burst: 400
--- burst_concurrency: 4
--- burst_check eval
sub {
    my ($res) = @_;
    my $n = main::sampled($res);
    # binomial(400, 0.5): mean 200, sd 10; six sd either side
    ok($n >= 140 && $n <= 260, "400 at rate 0.5 gave $n sampled");
    is($n + main::unsampled($res), 400, 'every request got a decision');
}



=== TEST 3: rate 1 samples everything, whatever the client said
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
--- burst: 50
--- burst_check eval
sub {
    is(main::sampled($_[0]), 50, 'all 50 sampled');
}



=== TEST 4: the reservoir: fixed_target per second, then nothing at rate 0
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/three.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        add_header X-Msec $msec;
        add_header X-Request-Time $request_time;
    }
--- user_files
>>> three.json
{"version": 2, "default": {"fixed_target": 3, "rate": 0}}
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- burst: 100
--- burst_check eval
sub {
    my ($res) = @_;
    my (%seconds, %per_second);
    for my $r (@$res) {
        my $sec = XRayTest::request_second($r);    # of the decision
        $seconds{$sec} = 1;
        $per_second{$sec}++ if $r->{body} =~ /;Sampled=1\r/;
    }
    my $n = main::sampled($res);
    my $spanned = keys %seconds;
    # the block's own request, sent first, took one of the three
    ok($n >= 2, "the reservoir was used ($n sampled)");
    ok($n <= 3 * ($spanned + 1), "$n sampled over $spanned second(s)");
    ok(!grep({ $_ > 3 } values %per_second), 'never more than 3 a second')
        or diag explain \%per_second;
}



=== TEST 5: a trusted client's Sampled=1 is followed
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
    geo $xray_trusted {
        default    0;
        127.0.0.1  1;
    }
--- config
    location /t {
        xray on;
        xray_trust_client_sampling $xray_trusted;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1\r



=== TEST 6: a trusted client's Sampled=0 is followed
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trust_client_sampling $remote_addr;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0
--- response_body_like
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=0\r



=== TEST 7: trust that evaluates to "0" or "" is no trust
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
    geo $xray_trusted {
        default    1;
        127.0.0.1  0;
    }
--- config
    location /zero {
        xray on;
        xray_trust_client_sampling $xray_trusted;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location /t {
        xray on;
        xray_trust_client_sampling $http_x_no_such_header;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
["GET /zero", "GET /t"]
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like eval
[qr/;Sampled=0\r/, qr/;Sampled=0\r/]



=== TEST 8: a trusted client's Sampled=? is still decided by the rules
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_trust_client_sampling 1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?
--- response_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0
--- response_body_like
;Sampled=0\r



=== TEST 9: rules match the path with X-Ray wildcards, case-insensitively
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/api.json;
--- config
    location / {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- user_files
>>> api.json
{
  "version": 2,
  "rules": [
    {"description": "api", "host": "*", "http_method": "*",
     "url_path": "/api/v?/*", "fixed_target": 0, "rate": 1}
  ],
  "default": {"fixed_target": 0, "rate": 0}
}
--- request eval
["GET /api/v1/orders", "GET /API/V2/ORDERS", "GET /api/v10/orders", "GET /other"]
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793
--- response_body_like eval
[qr/;Sampled=1\r/, qr/;Sampled=1\r/, qr/;Sampled=0\r/, qr/;Sampled=0\r/]



=== TEST 10: rules match the method; the first matching rule wins
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/method.json;
--- config
    location / {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- user_files
>>> method.json
{
  "version": 2,
  "rules": [
    {"host": "*", "http_method": "POST", "url_path": "/skip",
     "fixed_target": 0, "rate": 0},
    {"host": "*", "http_method": "POST", "url_path": "*",
     "fixed_target": 0, "rate": 1}
  ],
  "default": {"fixed_target": 0, "rate": 0}
}
--- request eval
["POST /orders\nx", "GET /orders", "POST /skip\nx"]
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793
--- response_body_like eval
[qr/;Sampled=1\r/, qr/;Sampled=0\r/, qr/;Sampled=0\r/]



=== TEST 11: rules match the Host (version 2 "host")
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/host.json;
--- config
    location / {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- user_files
>>> host.json
{
  "version": 2,
  "rules": [
    {"host": "*.example.com", "http_method": "*", "url_path": "*",
     "fixed_target": 0, "rate": 1}
  ],
  "default": {"fixed_target": 0, "rate": 0}
}
--- request eval
["GET /a", "GET /b"]
--- more_headers eval
["Host: API.Example.com\r\nX-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793",
 "Host: example.org\r\nX-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793"]
--- response_body_like eval
[qr/;Sampled=1\r/, qr/;Sampled=0\r/]



=== TEST 12: version 1 files match "service_name" against the Host
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/v1.json;
--- config
    location / {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- user_files
>>> v1.json
{
  "version": 1,
  "rules": [
    {"service_name": "localhost", "http_method": "GET", "url_path": "/a",
     "fixed_target": 0, "rate": 1}
  ],
  "default": {"fixed_target": 0, "rate": 0}
}
--- request eval
["GET /a", "GET /b"]
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793
--- response_body_like eval
[qr/;Sampled=1\r/, qr/;Sampled=0\r/]



=== TEST 13: without a rules file, X-Ray's default: the first each second
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        add_header X-Msec $msec;
        add_header X-Request-Time $request_time;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793
--- burst: 60
--- burst_check eval
sub {
    my ($res) = @_;
    my (%seconds, %per_second);
    for my $r (@$res) {
        my $sec = XRayTest::request_second($r);    # of the decision
        $seconds{$sec} = 1;
        $per_second{$sec}++ if $r->{body} =~ /;Sampled=1\r/;
    }
    my $n = main::sampled($res);
    my $spanned = keys %seconds;
    # 1 a second from the reservoir, then 5% of the rest: ~3 of 60
    ok($n >= 1, "$n sampled");
    ok($n <= $spanned + 15, "$n sampled of 60 over $spanned second(s)");
}
