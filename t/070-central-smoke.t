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

XRayTest::start_sampling_api({
    rules => [
        rule('Default', 10000),
        rule('Api', 10, URLPath => '/t/api/*', FixedRate => 1),
        rule('Gold', 5, FixedRate => 1, Attributes => { 'x-tier' => 'gold' }),
        rule('Other', 20, ServiceName => 'other-service', FixedRate => 1),
    ],
});

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
