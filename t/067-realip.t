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

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
_EOC_
    }

    if (!defined $block->request) {
        $block->set_value('request', 'GET /t');
    }

    # a client's trace context, so that every request is traced
    my $trace = 'X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;'
              . 'Parent=53995c3f42cd8ad8;Sampled=1';
    $block->set_value('more_headers',
        join "\n", grep { defined } $trace, $block->more_headers);

    if (!defined $block->segment_count) {
        $block->set_value('segment_count', 1);
    }
});

# the http.request object's bytes as they left the proxy
sub request_bytes {
    my ($raw) = @_;
    my ($req) = $raw =~ /"request":(\{[^}]*\})/;
    return $req // '';
}

run_tests();

__DATA__

=== TEST 1: realip took the address from X-Real-IP: that address, flagged
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers
X-Real-IP: 192.0.2.7
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    is($docs->[0]{http}{request}{client_ip}, '192.0.2.7', 'client_ip');
    like(main::request_bytes($raw->[0]),
         qr/"client_ip":"192\.0\.2\.7","x_forwarded_for":true\}$/,
         'the bytes: the address, then x_forwarded_for true');
}



=== TEST 2: the same server, no header: the peer, not flagged
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    is($docs->[0]{http}{request}{client_ip}, '127.0.0.1', 'client_ip');
    unlike($raw->[0], qr/x_forwarded_for/, 'no x_forwarded_for');
}



=== TEST 3: a header from a peer realip does not trust: ignored, not flagged
--- config
    set_real_ip_from 192.0.2.0/24;
    real_ip_header X-Real-IP;
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers
X-Real-IP: 192.0.2.7
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    is($docs->[0]{http}{request}{client_ip}, '127.0.0.1', 'client_ip');
    unlike($raw->[0], qr/x_forwarded_for/, 'no x_forwarded_for');
}



=== TEST 4: X-Forwarded-For, recursive: the first untrusted address, flagged
--- config
    set_real_ip_from 127.0.0.1;
    set_real_ip_from 198.51.100.0/24;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers
X-Forwarded-For: 203.0.113.9, 198.51.100.3
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    like(main::request_bytes($raw->[0]),
         qr/"client_ip":"203\.0\.113\.9","x_forwarded_for":true\}$/,
         'the bytes: the client before the trusted hop, flagged');
}



=== TEST 5: after an internal redirect the address realip took is still flagged
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location /t {
        xray on;
        error_page 404 = /fallback;
        proxy_intercept_errors on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/404;
    }
    location /fallback {
        xray on;
        return 200 "fallback\n";
    }
--- more_headers
X-Real-IP: 192.0.2.8
--- error_code: 200
--- response_body
fallback
--- segments eval
sub {
    my ($docs, $raw) = @_;
    like(main::request_bytes($raw->[0]),
         qr/"client_ip":"192\.0\.2\.8","x_forwarded_for":true\}$/,
         'the bytes: the address realip set, flagged');
}



=== TEST 6: an internal redirect without a header: the peer, not flagged
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location /t {
        xray on;
        error_page 404 = /fallback;
        proxy_intercept_errors on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/404;
    }
    location /fallback {
        xray on;
        return 200 "fallback\n";
    }
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    is($docs->[0]{http}{request}{client_ip}, '127.0.0.1', 'client_ip');
    unlike($raw->[0], qr/x_forwarded_for/, 'no x_forwarded_for');
}



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
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    like(main::request_bytes($raw->[0]),
         qr/"client_ip":"2001:db8::5","x_forwarded_for":true\}$/,
         'the bytes: the IPv6 address, flagged');
}



=== TEST 8: no realip anywhere, a header all the same: the peer, not flagged
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers
X-Real-IP: 192.0.2.7
X-Forwarded-For: 192.0.2.7
--- error_code: 200
--- segments eval
sub {
    my ($docs, $raw) = @_;
    is($docs->[0]{http}{request}{client_ip}, '127.0.0.1', 'client_ip');
    unlike($raw->[0], qr/x_forwarded_for/, 'no x_forwarded_for');
}
