# Subrequests are calls of their own: an auth_request, a mirror or an SSI
# include that reaches an upstream gets its own id, forwarded as its Parent
# with the request's Root and decision, and its own remote subsegment in the
# request's segment, with its status and timing, whether it allowed or
# denied.  The echo upstream logs what each call received (/log/ paths).

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';
our $Up = "127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}";

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers',
            "X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1");
    }
});

# the trace header each logged call received, by the path it asked for
sub received {
    my ($n) = @_;
    my @heads = XRayTest::upstream_heads(min_count => $n);
    Test::More::is(scalar @heads, $n, "$n upstream calls logged");
    my %by;
    for my $h (@heads) {
        my ($path) = $h =~ m{^\S+ (\S+) HTTP/} or next;
        my @lines = $h =~ /^X-Amzn-Trace-Id: ([^\r\n]*)\r?$/mgi;
        Test::More::is(scalar @lines, 1, "$path: one trace header");
        my %f = map { split /=/, $_, 2 } split /;/, $lines[0] // '';
        $by{$path} = \%f;
    }
    return \%by;
}

# the request heads the echo upstream logged, by the path asked for
sub heads {
    my ($n) = @_;
    my %by;
    for my $h (XRayTest::upstream_heads(min_count => $n)) {
        my ($path) = $h =~ m{^\S+ (\S+) HTTP/} or next;
        $by{$path} = $h;
    }
    return \%by;
}

sub header_values {
    my ($head, $name) = @_;
    return $head =~ /^\Q$name\E: ([^\r\n]*)\r?$/mgi;
}

sub sub_by_id {
    my ($seg, $id) = @_;
    my ($s) = grep { $_->{id} eq ($id // '') } @{ $seg->{subsegments} // [] };
    return $s;
}

run_tests();

__DATA__

=== TEST 1: auth_request that allows: its own Parent, its own subsegment
--- config
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/delay/30/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(2);
    my ($auth, $main) = @$got{'/log/delay/30/auth', '/log/main'};
    ok($auth && $main, 'both calls were made') or return;
    is($auth->{Root}, $::Root, 'the authorizer gets the Root');
    is($auth->{Sampled}, '1', 'and the decision');
    like($auth->{Parent}, qr/^[0-9a-f]{16}$/, 'and a Parent');
    isnt($auth->{Parent}, $main->{Parent}, 'not the main call\'s Parent');
    isnt($auth->{Parent}, $s->{id}, 'nor the segment\'s id');
    isnt($auth->{Parent}, '53995c3f42cd8ad8', 'nor the client\'s');
    is(scalar @{ $s->{subsegments} // [] }, 2, 'two remote subsegments');
    my $a = main::sub_by_id($s, $auth->{Parent});
    ok($a, 'the authorizer\'s Parent is a subsegment of the segment')
        or return;
    is($a->{namespace}, 'remote', 'remote');
    is($a->{http}{request}{url}, "http://$::Up/log/delay/30/auth",
       'what was asked of the authorizer');
    is($a->{http}{response}{status}, 200, 'its status');
    ok($a->{end_time} - $a->{start_time} >= 0.025, 'its timing')
        or diag explain $a;
    ok($a->{start_time} >= $s->{start_time}
       && $a->{end_time} <= $s->{end_time}, 'inside the segment');
    my $m = main::sub_by_id($s, $main->{Parent});
    ok($m, 'the main call keeps its own subsegment') or return;
    is($m->{http}{request}{url}, "http://$::Up/log/main", 'main call url');
}



=== TEST 2: auth_request that denies: 401, recorded with its Parent
--- config
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/delay/50/status/401;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- error_code: 401
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(1);
    my $auth = $got->{'/log/delay/50/status/401'};
    ok($auth, 'the authorizer was called') or return;
    is($auth->{Root}, $::Root, 'with the Root');
    is($s->{http}{response}{status}, 401, 'the segment says 401');
    ok($s->{error}, 'an error');
    is(scalar @{ $s->{subsegments} // [] }, 1, 'one call: the authorizer');
    my $a = main::sub_by_id($s, $auth->{Parent});
    ok($a, 'the Parent sent to the authorizer is in the segment') or return;
    is($a->{http}{response}{status}, 401, 'the authorizer\'s answer');
    ok($a->{error} && !$a->{fault}, 'an error, not a fault');
    ok($a->{end_time} - $a->{start_time} >= 0.045, 'its timing')
        or diag explain $a;
}



=== TEST 3: mirror: the copy is a call of its own
--- config
    location /t {
        xray on;
        mirror /_mirror;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_mirror {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/mirror;
    }
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(2);
    my ($mi, $main) = @$got{'/log/mirror', '/log/main'};
    ok($mi && $main, 'both calls were made') or return;
    is($mi->{Root}, $::Root, 'the mirror gets the Root');
    is($mi->{Sampled}, '1', 'and the decision');
    isnt($mi->{Parent}, $main->{Parent}, 'and a Parent of its own');
    my $m = main::sub_by_id($s, $mi->{Parent});
    ok($m, 'the mirror call is in the segment') or return;
    is($m->{http}{request}{url}, "http://$::Up/log/mirror", 'its url');
    is($m->{http}{response}{status}, 200, 'its status');
    ok(main::sub_by_id($s, $main->{Parent}), 'and so is the main call');
}



=== TEST 4: an unsampled request: the subrequest gets Sampled=0 and its own id
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- response_body_like: Sampled=0
--- segment_count: 0
--- segments eval
sub {
    my $got = main::received(2);
    my ($auth, $main) = @$got{'/log/auth', '/log/main'};
    ok($auth && $main, 'both calls were made') or return;
    is($auth->{Sampled}, '0', 'the authorizer gets the decision');
    is($auth->{Root}, $::Root, 'and the Root');
    like($auth->{Parent} // '', qr/^[0-9a-f]{16}$/, 'and a Parent');
    isnt($auth->{Parent}, $main->{Parent}, 'of its own');
}



=== TEST 5: SSI includes that reach an upstream are calls of their own
--- config
    location = /t {
        xray on;
        ssi on;
        ssi_types *;
        alias $TEST_NGINX_HTML_DIR/page.html;
    }
    location /inc/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/;
    }
--- user_files
>>> page.html
<!--# include virtual="/inc/one" -->|<!--# include virtual="/inc/two" -->
>>> always.json
{"version": 2, "default": {"fixed_target": 0, "rate": 1}}
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(2);
    my ($one, $two) = @$got{'/log/one', '/log/two'};
    ok($one && $two, 'both includes were fetched') or return;
    isnt($one->{Parent}, $two->{Parent}, 'each with its own Parent');
    is($one->{Root}, $::Root, 'the Root');
    is(scalar @{ $s->{subsegments} // [] }, 2, 'two calls');
    for ([one => $one], [two => $two]) {
        my $x = main::sub_by_id($s, $_->[1]{Parent});
        ok($x, "include $_->[0] is in the segment") or next;
        is($x->{http}{request}{url}, "http://$::Up/log/$_->[0]", 'its url');
    }
}



=== TEST 6: a subrequest's $xray_upstream_id is its own call's (log_subrequest)
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    log_format calls '$uri $xray_upstream_id $xray_trace_header';
--- config
    log_subrequest on;
    access_log $TEST_NGINX_HTML_DIR/calls.log calls;
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $got = main::received(2);
    open my $fh, '<', "$ENV{TEST_NGINX_HTML_DIR}/calls.log" or die $!;
    my %log = map { /^(\S+) (\S+) (\S+)$/ ? ($1 => [$2, $3]) : () } <$fh>;
    is($log{'/_auth'}[0], $got->{'/log/auth'}{Parent},
       'the subrequest logs the Parent its call was sent');
    like($log{'/_auth'}[1], qr/;Parent=\Q$got->{'\/log\/auth'}{Parent}\E;/,
         'and the header it was sent');
    is($log{'/t'}[0], $got->{'/log/main'}{Parent},
       'the request logs its own call\'s');
}



=== TEST 7: xray_propagate both: the subrequest's traceparent is its own too
--- config
    location /t {
        xray on;
        xray_trace_formats xray w3c;
        xray_propagate both;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- more_headers
traceparent: 00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01
tracestate: vendor=x
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::heads(2);
    my ($auth, $main) = @$got{'/log/auth', '/log/main'};
    ok($auth && $main, 'both calls were made') or return;
    my @x = main::header_values($auth, 'X-Amzn-Trace-Id');
    my @w = main::header_values($auth, 'traceparent');
    my @mw = main::header_values($main, 'traceparent');
    is(scalar @x, 1, 'one X-Amzn-Trace-Id');
    is(scalar @w, 1, 'one traceparent');
    my ($parent) = ($x[0] // '') =~ /;Parent=([0-9a-f]{16});/;
    ok($parent, 'a Parent') or return;
    is($w[0], "00-5759e988bd862e3fe1be46a994272793-$parent-01",
       'the traceparent names the same call');
    isnt($w[0], $mw[0], 'not the main call\'s traceparent');
    is_deeply([main::header_values($auth, 'tracestate')], ['vendor=x'],
              'the tracestate goes on as the request forwards it');
    ok(main::sub_by_id($s, $parent), 'the call is in the segment');
}



=== TEST 8: xray_propagate w3c: only traceparent, the subrequest's own
--- config
    location /t {
        xray on;
        xray_propagate w3c;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::heads(2);
    my ($auth, $main) = @$got{'/log/auth', '/log/main'};
    ok($auth && $main, 'both calls were made') or return;
    is(scalar(() = main::header_values($auth, 'X-Amzn-Trace-Id')), 0,
       'no X-Amzn-Trace-Id');
    my @w = main::header_values($auth, 'traceparent');
    my @mw = main::header_values($main, 'traceparent');
    is(scalar @w, 1, 'one traceparent');
    my ($parent) = ($w[0] // '')
        =~ /^00-5759e988bd862e3fe1be46a994272793-([0-9a-f]{16})-01$/;
    ok($parent, 'with the trace and the decision') or return;
    isnt($w[0], $mw[0], 'not the main call\'s');
    ok(main::sub_by_id($s, $parent), 'the call is in the segment');
}



=== TEST 9: an authorizer that forbids (403) is recorded too
--- config
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/status/403;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- error_code: 403
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(1);
    my $auth = $got->{'/log/status/403'};
    ok($auth, 'the authorizer was called') or return;
    is($s->{http}{response}{status}, 403, 'the segment says 403');
    my $a = main::sub_by_id($s, $auth->{Parent});
    ok($a, 'the authorizer\'s call is in the segment') or return;
    is($a->{http}{response}{status}, 403, 'with its 403');
    ok($a->{error} && !$a->{fault}, 'an error, not a fault');
}



=== TEST 10: a subrequest of a subrequest: its own Parent, not its parent's
--- config
    location = /t {
        xray on;
        ssi on;
        ssi_types *;
        alias $TEST_NGINX_HTML_DIR/page.html;
    }
    location = /inner {
        ssi on;
        ssi_types *;
        alias $TEST_NGINX_HTML_DIR/inner.html;
    }
    location /inc/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/;
    }
--- user_files
>>> page.html
<!--# include virtual="/inner" -->|<!--# include virtual="/inc/outer" -->
>>> inner.html
<!--# include virtual="/inc/nested" -->
>>> always.json
{"version": 2, "default": {"fixed_target": 0, "rate": 1}}
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(2);
    my ($nested, $outer) = @$got{'/log/nested', '/log/outer'};
    ok($nested && $outer, 'both includes were fetched') or return;
    isnt($nested->{Parent}, $outer->{Parent}, 'each with its own Parent');
    is($nested->{Root}, $::Root, 'the Root');
    is(scalar @{ $s->{subsegments} // [] }, 2,
       'two calls (the static include made none)');
    ok(main::sub_by_id($s, $nested->{Parent}),
       'the nested include\'s Parent is in the segment');
    ok(main::sub_by_id($s, $outer->{Parent}), 'and the other\'s');
}



=== TEST 11: $xray_traceparent of a subrequest is its own call's
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    log_format calls '$uri $xray_upstream_id $xray_traceparent';
--- config
    log_subrequest on;
    access_log $TEST_NGINX_HTML_DIR/calls.log calls;
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $got = main::received(2);
    open my $fh, '<', "$ENV{TEST_NGINX_HTML_DIR}/calls.log" or die $!;
    my %log = map { /^(\S+) (\S+) (\S+)$/ ? ($1 => [$2, $3]) : () } <$fh>;
    my $p = $got->{'/log/auth'}{Parent} // 'none';
    is($log{'/_auth'}[1],
       "00-5759e988bd862e3fe1be46a994272793-$p-01",
       'the subrequest logs its own call\'s traceparent');
    my $m = $got->{'/log/main'}{Parent} // 'none';
    is($log{'/t'}[1], "00-5759e988bd862e3fe1be46a994272793-$m-01",
       'the request its own');
}



=== TEST 12: subrequests of an untraced request stay untraced
--- config
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- more_headers
X-Other: 1
--- request
GET /t
--- segment_count: 0
--- segments eval
sub {
    my $got = main::heads(2);
    ok($got->{'/log/auth'} && $got->{'/log/main'}, 'both calls were made');
    unlike($got->{'/log/auth'} // '', qr/X-Amzn-Trace-Id|traceparent/i,
           'the authorizer gets no context');
}



=== TEST 13: an internal redirect inside the subrequest keeps its one call
--- config
    location /t {
        xray on;
        auth_request /_auth;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/main;
    }
    location = /_auth {
        internal;
        rewrite ^ /_auth2 last;
    }
    location = /_auth2 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/log/auth2;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- request
GET /t
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    my $got = main::received(2);
    my ($auth, $main) = @$got{'/log/auth2', '/log/main'};
    ok($auth && $main, 'both calls were made') or return;
    isnt($auth->{Parent}, $main->{Parent}, 'the authorizer has its own Parent');
    is(scalar @{ $s->{subsegments} // [] }, 2, 'two calls, not three');
    my $a = main::sub_by_id($s, $auth->{Parent});
    ok($a, 'the redirected subrequest\'s call is in the segment') or return;
    is($a->{http}{request}{url}, "http://$::Up/log/auth2", 'its url');
}
