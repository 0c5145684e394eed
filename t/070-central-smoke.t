# xray_sampling centralized, end to end: real nginx (2 workers), the
# stand-in sampling API (t/lib/xray_sampling_api.py) as the daemon's TCP
# proxy on 127.0.0.1:2021.  The local rules sample nothing, so whatever is
# sampled was decided by the rules fetched from the stand-in.  Port 2022 has
# nothing listening: the daemon away.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

master_on();
workers(2);
log_level('info');
no_shuffle();
no_long_string();

$ENV{TEST_NGINX_SAMPLING_API_PORT} = 2021;

sub rule {
    my ($name, $priority, %over) = @_;
    return { RuleName => $name, RuleARN => "arn:aws:xray:::sampling-rule/$name",
             ResourceARN => '*', Priority => $priority, FixedRate => 0,
             ReservoirSize => 0, ServiceName => '*', ServiceType => '*',
             Host => '*', HTTPMethod => '*', URLPath => '*', Version => 1,
             %over };
}

our %Api = (
    rules => [
        rule('Default', 10000),
        rule('Api', 10, URLPath => '/t/api/*', FixedRate => 1),
        rule('Gold', 5, FixedRate => 1, Attributes => { 'x-tier' => 'gold' }),
        rule('Other', 20, ServiceName => 'other-service', FixedRate => 1),
    ],
);

XRayTest::start_sampling_api(\%Api);

sub api_fault {
    my ($fault) = @_;
    XRayTest::sampling_api_config({ %Api, fault => $fault });
}

sub status {
    my ($r) = XRayTest::http_requests(
        request => "GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my %v;
    $v{$1} = $2 while ($r->{body} // '') =~ /^(\S+) (\S+)$/mg;
    return \%v;
}

sub get {
    my ($path, @headers) = @_;
    my ($r) = XRayTest::http_requests(
        request => "GET $path HTTP/1.0\r\nHost: localhost\r\nX-Amzn-Trace-Id: "
                   . "Root=1-5759e988-bd862e3fe1be46a994272793\r\n"
                   . join('', map { "$_\r\n" } @headers) . "\r\n");
    return $r;
}

run_tests();

__DATA__

=== TEST 1: rules fetched from the stand-in decide; statistics match the traffic
--- http_config
    xray_daemon "tcp:127.0.0.1:2021 udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT";
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t/ {
        xray on;
        add_header X-Sampled $xray_sampled;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- response_body_like: nginx_xray_sampling_source
--- burst: 1
--- burst_check eval
sub {
    my $s;
    ok(XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_rules_held'} // 0) == 4;
    }, timeout => 30), 'the 4 rules are held') or diag explain $s;
    is($s->{'nginx_xray_sampling_source{source="centralized"}'}, 1,
       'centralized rules decide');
    is($s->{'nginx_xray_sampling_switches_total{to="centralized"}'}, 1,
       'one switch to them');
    is(scalar(grep { /^nginx_xray_sampling_client_id\{client_id="[0-9a-f]{24}"\}$/ }
              keys %$s), 1, 'a ClientID of 24 hex digits');

    XRayTest::sampling_api_clear();
    XRayTest::sink_clear();

    my %want = ('/t/api/a' => 1, '/t/api/b' => 1, '/t/x' => 0,
                '/t/api' => 0);
    for my $path (sort keys %want) {
        my $r = main::get($path);
        is($r->{headers}{'x-sampled'}, $want{$path}, "$path sampled?");
    }
    is(main::get('/t/x', 'X-Tier: GOLD')->{headers}{'x-sampled'}, 1,
       'Attributes match a request header, case-insensitively');
    is(main::get('/t/x', 'X-Tier: silver')->{headers}{'x-sampled'}, 0,
       'and only its value');

    # the segments name the rule that sampled them
    my @docs;
    XRayTest::wait_until(sub {
        @docs = XRayTest::sink_documents();
        @docs >= 3;
    });
    is_deeply([sort map { $_->{body}{aws}{xray}{sampling_rule_name} // '' }
               @docs], [qw(Api Api Gold)], 'sampling_rule_name')
        or diag explain \@docs;

    # statistics: exactly the traffic, in model-valid bodies
    my %got;
    my @calls;
    XRayTest::wait_until(sub {
        @calls = grep { $_->{path} eq '/SamplingTargets' }
                 @{ XRayTest::sampling_api_requests() };
        %got = ();
        for my $c (@calls) {
            for my $d (@{ $c->{body}{SamplingStatisticsDocuments} // [] }) {
                $got{$d->{RuleName}}{$_} += $d->{$_}
                    for qw(RequestCount SampledCount BorrowCount);
            }
        }
        ($got{Default}{RequestCount} // 0) == 3;
    }, timeout => 15);
    is_deeply(\%got, {
        Api => { RequestCount => 2, SampledCount => 2, BorrowCount => 0 },
        Gold => { RequestCount => 1, SampledCount => 1, BorrowCount => 0 },
        Default => { RequestCount => 3, SampledCount => 0, BorrowCount => 0 },
    }, 'statistics equal to the traffic') or diag explain \@calls;
    is_deeply([map { @{ $_->{errors} } } @calls], [],
              'every SamplingTargets body valid against the API model');
}
--- no_error_log
[error]
[alert]



=== TEST 2: the daemon away: local rules decide, the failures are counted
--- http_config
    xray_daemon "tcp:127.0.0.1:2022 udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT";
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t/ {
        xray on;
        add_header X-Sampled $xray_sampled;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- response_body_like: nginx_xray_sampling_source\{source="local"\} 1
--- burst: 1
--- burst_check eval
sub {
    my $s;
    ok(XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_poll_errors_total{call="rules",kind="connect"}'}
         // 0) >= 2;
    }, timeout => 30), 'refused connections counted, and tried again')
        or diag explain $s;
    is($s->{'nginx_xray_sampling_rules_held'}, 0, 'no rules held');
    is($s->{'nginx_xray_sampling_last_success_seconds{call="rules"}'}, 0,
       'never a success');
    is(main::get('/t/api/a')->{headers}{'x-sampled'}, 0, 'the local rules decide');
}
--- error_log eval
qr/\[warn\] .*xray: sampling: GetSamplingRules call to the daemon at 127\.0\.0\.1:2022 failed: connect\(\) failed/
--- no_error_log
[error]
[alert]



=== TEST 3: fallback: the proxy failing that long gives the local rules back, and its answer takes them again
--- http_config
    xray_daemon "tcp:127.0.0.1:2021 udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT";
    xray_sampling centralized targets_interval=1s fallback=3s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t/ {
        xray on;
        add_header X-Sampled $xray_sampled;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- burst: 1
--- burst_check eval
sub {
    my $s;
    my $held = sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_rules_held'} // 0) == 4;
    };
    ok(XRayTest::wait_until($held, timeout => 30), 'rules held')
        or diag explain $s;
    is(main::get('/t/api/a')->{headers}{'x-sampled'}, 1, 'they decide');

    main::api_fault('http500');
    ok(XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_switches_total{to="local"}'} // 0) == 1;
    }, timeout => 30), 'withdrawn after fallback=3s of HTTP 500')
        or diag explain $s;
    is($s->{'nginx_xray_sampling_rules_held'}, 0, 'no rules held');
    ok($s->{'nginx_xray_sampling_poll_errors_total{call="targets",kind="http_status"}'}
       >= 1, 'the 500s counted');
    is(main::get('/t/api/a')->{headers}{'x-sampled'}, 0,
       'the local rules decide');

    main::api_fault(undef);
    ok(XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_switches_total{to="centralized"}'} // 0)
            == 2;
    }, timeout => 30), 'the rules come back once the proxy answers')
        or diag explain $s;
    is(main::get('/t/api/a')->{headers}{'x-sampled'}, 1, 'and decide again');
}
--- error_log eval
[qr/\[notice\] .*xray: sampling: no answer from the daemon at 127\.0\.0\.1:2021 for \d+ s: the local rules decide again/,
 qr/\[warn\] .*xray: sampling: SamplingTargets call to the daemon at 127\.0\.0\.1:2021 failed: HTTP status 500/,
 qr/\[notice\] .*xray: sampling: 4 centralized rule\(s\) from 127\.0\.0\.1:2021 decide now/]
--- no_error_log
[error]
[alert]



=== TEST 4: a reload keeps the ClientID and the rules; one worker polls at a time
--- http_config
    xray_daemon "tcp:127.0.0.1:2021 udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT";
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t/ {
        xray on;
        add_header X-Sampled $xray_sampled;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- burst: 1
--- burst_check eval
sub {
    my $s;
    ok(XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_rules_held'} // 0) == 4;
    }, timeout => 30), 'rules held') or diag explain $s;
    my ($id) = grep { /^nginx_xray_sampling_client_id/ } keys %$s;

    # two workers, targets every second, the rules held: one poller makes
    # one call a second, two would make the 5 calls in about 2 s
    XRayTest::sampling_api_clear();
    my @calls;
    XRayTest::wait_until(sub {
        @calls = @{ XRayTest::sampling_api_requests() };
        @calls >= 5;
    }, timeout => 30);
    my $spread = @calls >= 5 ? $calls[4]{time} - $calls[0]{time} : 0;
    ok($spread >= 3.5, sprintf('one poller: 5 calls over %.1f s', $spread))
        or diag explain [map { "$_->{time} $_->{path}" } @calls];

    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    CORE::chomp(my $master = <$fh>);
    ok(kill('HUP', $master), 'reload');

    # the new workers take the lease over and fetch the rules at once
    ok(XRayTest::wait_until(sub {
        grep { $_->{path} eq '/GetSamplingRules' }
            @{ XRayTest::sampling_api_requests() };
    }, timeout => 30), 'a new poller fetched the rules');
    $s = main::status();
    ok(exists $s->{$id}, 'the same ClientID') or diag explain $s;
    is($s->{'nginx_xray_sampling_switches_total{to="centralized"}'}, 1,
       'the rules held all along: no switch');
    is(main::get('/t/api/a')->{headers}{'x-sampled'}, 1, 'they decide');
}
--- no_error_log
[error]
[alert]



=== TEST 5: a rule changed in the same second as the fetch, after it, is fetched again
--- http_config
    xray_daemon "tcp:127.0.0.1:2021 udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT";
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t/ {
        xray on;
        add_header X-Sampled $xray_sampled;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- burst: 1
--- burst_check eval
sub {
    my $s;
    my @fetches;
    XRayTest::sampling_api_config({ %main::Api });
    ok(XRayTest::wait_until(sub {
        @fetches = grep { $_->{path} eq '/GetSamplingRules' }
                   @{ XRayTest::sampling_api_requests() };
        $s = main::status();
        @fetches && ($s->{'nginx_xray_sampling_rules_held'} // 0) == 4;
    }, timeout => 30), 'rules held') or diag explain $s;
    is(main::get('/t/api/a')->{headers}{'x-sampled'}, 1, 'Api samples all');

    # Api now samples nothing, changed after the fetch but within its second
    my $t = $fetches[-1]{time};
    my $changed = $t + (1 - ($t - int($t))) / 2;
    my %api = %main::Api;
    $api{rules} = [map { $_->{RuleName} eq 'Api' ? { %$_, FixedRate => 0 }
                                                 : $_ } @{ $api{rules} }];
    $api{last_rule_modification} = $changed;
    XRayTest::sampling_api_clear();
    XRayTest::sampling_api_config(\%api);

    ok(XRayTest::wait_until(sub {
        grep { $_->{path} eq '/GetSamplingRules' }
            @{ XRayTest::sampling_api_requests() };
    }, timeout => 15), 'the rules fetched again after a targets reply');
    ok(XRayTest::wait_until(sub {
        main::get('/t/api/a')->{headers}{'x-sampled'} eq '0';
    }, timeout => 15), 'the changed rule decides');
}
--- no_error_log
[error]
[alert]



=== TEST 6: statistics in a report cut short by a reload are reported by the next poller
--- http_config
    xray_daemon "tcp:127.0.0.1:2021 udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT";
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t/ {
        xray on;
        add_header X-Sampled $xray_sampled;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- burst: 1
--- burst_check eval
sub {
    my $s;
    XRayTest::sampling_api_config({ %main::Api });
    ok(XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{'nginx_xray_sampling_rules_held'} // 0) == 4;
    }, timeout => 30), 'rules held') or diag explain $s;

    # the report of these 3 requests hangs: the stand-in answers in 30 s
    XRayTest::sampling_api_config({ %main::Api, fault => 'slow:30',
                                    fault_paths => ['/SamplingTargets'] });
    XRayTest::sampling_api_clear();
    main::get('/t/api/a') for 1 .. 3;
    my $api = sub {
        my ($c) = @_;
        my $n = 0;
        $n += $_->{RequestCount} for grep { $_->{RuleName} eq 'Api' }
            @{ $c->{body}{SamplingStatisticsDocuments} // [] };
        return $n;
    };
    my @calls;
    ok(XRayTest::wait_until(sub {
        @calls = grep { $_->{path} eq '/SamplingTargets' }
                 @{ XRayTest::sampling_api_requests() };
        grep { $api->($_) == 3 } @calls;
    }, timeout => 15), 'the report is on its way');

    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    CORE::chomp(my $master = <$fh>);
    ok(kill('HUP', $master), 'reload while it hangs');
    XRayTest::sampling_api_config({ %main::Api });

    my $after = 0;
    XRayTest::wait_until(sub {
        @calls = grep { $_->{path} eq '/SamplingTargets' }
                 @{ XRayTest::sampling_api_requests() };
        my ($i) = grep { $api->($calls[$_]) == 3 } 0 .. $#calls;
        $after = 0;
        $after += $api->($_) for @calls[$i + 1 .. $#calls];
        $after >= 3;
    }, timeout => 20);
    is($after, 3, 'the new poller reported the 3 requests');
}
--- no_error_log
[error]
[alert]
