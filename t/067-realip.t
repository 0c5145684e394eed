# client_ip and x_forwarded_for with nginx's realip module: the segment
# names the address realip took from a header and says so; the peer's own
# address is never flagged.  The module answers without the realip
# variable where realip kept no context for the request; these blocks pin
# both answers, on the request itself and after an internal redirect
# (where realip finds its address through a pool cleanup).

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

XRayTest::block_defaults(
    http_config => <<'_EOC_',
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
_EOC_
    request => 'GET /t',
    error_code => 200,
    segment_count => 1);

# a client's trace context on every request, so that each is traced
add_block_preprocessor(sub {
    my $block = shift;
    my $trace = 'X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;'
              . 'Parent=53995c3f42cd8ad8;Sampled=1';
    $block->set_value('more_headers',
        join "\n", grep { defined } $trace, $block->more_headers);
});

# the server's realip directives, then a location /t that proxies, or that
# sends the upstream's 404 to /fallback (an internal redirect)
sub proxied {
    my ($realip) = @_;
    return "$realip
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT;
    }";
}

sub redirected {
    my ($realip) = @_;
    return "$realip
    location /t {
        xray on;
        error_page 404 = /fallback;
        proxy_intercept_errors on;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT/status/404;
    }
    location /fallback {
        xray on;
        return 200 \"fallback\\n\";
    }";
}

our $Trusted = "set_real_ip_from 127.0.0.1;\n    real_ip_header X-Real-IP;";

# the segment's http.request bytes end with the address, flagged
sub flagged {
    my ($addr) = @_;
    return sub {
        my ($docs, $raw) = @_;
        my ($req) = $raw->[0] =~ /"request":(\{[^}]*\})/;
        like($req // '', qr/"client_ip":"\Q$addr\E","x_forwarded_for":true\}$/,
             "the bytes: client_ip $addr, then x_forwarded_for true");
    };
}

# the peer's own address, not flagged
sub unflagged {
    my ($docs, $raw) = @_;
    is($docs->[0]{http}{request}{client_ip}, '127.0.0.1', 'client_ip');
    unlike($raw->[0], qr/x_forwarded_for/, 'no x_forwarded_for');
}

run_tests();

__DATA__

=== TEST 1: realip took the address from X-Real-IP: that address, flagged
--- config eval: main::proxied($::Trusted)
--- more_headers
X-Real-IP: 192.0.2.7
--- segments eval: main::flagged('192.0.2.7')



=== TEST 2: the same server, no header: the peer, not flagged
--- config eval: main::proxied($::Trusted)
--- segments eval: \&main::unflagged



=== TEST 3: a header from a peer realip does not trust: ignored, not flagged
--- config eval
main::proxied("set_real_ip_from 192.0.2.0/24;\n    real_ip_header X-Real-IP;")
--- more_headers
X-Real-IP: 192.0.2.7
--- segments eval: \&main::unflagged



=== TEST 4: X-Forwarded-For, recursive: the first untrusted address, flagged
--- config eval
main::proxied("set_real_ip_from 127.0.0.1;
    set_real_ip_from 198.51.100.0/24;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;")
--- more_headers
X-Forwarded-For: 203.0.113.9, 198.51.100.3
--- segments eval: main::flagged('203.0.113.9')



=== TEST 5: after an internal redirect the address realip took is still flagged
--- config eval: main::redirected($::Trusted)
--- more_headers
X-Real-IP: 192.0.2.8
--- response_body
fallback
--- segments eval: main::flagged('192.0.2.8')



=== TEST 6: an internal redirect without a header: the peer, not flagged
--- config eval: main::redirected($::Trusted)
--- response_body
fallback
--- segments eval: \&main::unflagged



=== TEST 7: realip in the location only, on a static file: flagged
--- config
    location /t {
        xray on;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;
        alias $TEST_NGINX_HTML_DIR/always.json;
    }
--- more_headers
X-Real-IP: 2001:db8::5
--- segments eval: main::flagged('2001:db8::5')



=== TEST 8: no realip anywhere, a header all the same: the peer, not flagged
--- config eval: main::proxied('')
--- more_headers
X-Real-IP: 192.0.2.7
X-Forwarded-For: 192.0.2.7
--- segments eval: \&main::unflagged
