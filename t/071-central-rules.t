# Centralized sampling (xray_sampling centralized): the rules of the
# stand-in sampling API (t/lib/xray_sampling_api.py, on the daemon's TCP
# port) are applied to requests, fetched over every NextToken page,
# refreshed when a targets reply carries a newer LastRuleModification, and
# the statistics reported to SamplingTargets are the traffic sent, exactly,
# at most 25 documents a call.  The status page names of the feature are
# checked here too.  Every rule of the first block samples with FixedRate 1,
# so each request's segment names the rule it matched
# (aws.xray.sampling_rule_name).  A LastRuleModification counts to the
# millisecond: one within the second of the fetch, after it, is newer.

BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2023 }

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use XRayCentral;
use List::Util qw(max sum0);
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
no_long_string();
no_root_location();

*rule = \&XRayCentral::rule;
*metric = \&XRayCentral::metric;
our @UsedOnce = (\&metric, \&rule);

# 30 rules by path, rules for each field, one of Version 2 (skipped), two of
# the same priority (by name), Default: 41 records, 40 held, 7 a page
our @Rules = (
    (map { rule(sprintf('r%02d', $_), 100 + $_,
                URLPath => sprintf('/r%02d', $_)) } 1 .. 30),
    rule('host', 10, Host => 'api.example.com'),
    rule('post', 11, HTTPMethod => 'POST'),
    rule('svc-edge', 12, ServiceName => 'EDGE', URLPath => '/svc'),
    rule('svc-other', 1, ServiceName => 'other'),
    rule('attr', 13, Attributes => { 'x-tier' => 'gold*' }),
    rule('typed', 2, ServiceType => 'AWS::EC2::Instance'),
    rule('arn', 3, ResourceARN => 'arn:aws:lambda:*'),
    rule('v2', 1, Version => 2),
    rule('b-tie', 14, URLPath => '/tie'),
    rule('a-tie', 14, URLPath => '/tie'),
    rule('Default', 10000),
);

XRayTest::start_sampling_api();

run_tests();

__DATA__

=== TEST 1: rules over 6 pages applied; statistics exact, 25 a call; status page
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=2s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
    xray_segment_name edge;
--- config
    location / {
        xray on;
        xray_originate on;
        add_header X-Sampled $xray_sampled always;
        add_header X-Trace $xray_trace_id always;
        return 204;
    }
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
{ rules => \@main::Rules, page_size => 7 }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my $t0 = time;
    my ($ok, $s) = XRayCentral::wait_status(sub {
        (main::metric($_[0], 'nginx_xray_sampling_source',
                      source => 'centralized') // 0) == 1 });
    ok($ok, 'the centralized rules are in force') or diag $s->{text};

    # --- NextToken paging: 41 records, 7 a page ---
    my $calls = XRayCentral::api_calls('/GetSamplingRules');
    is_deeply([map { $_->{body}{NextToken} } @$calls],
              [undef, map { "page-$_" } 7, 14, 21, 28, 35],
              'six GetSamplingRules calls, each with the NextToken before');
    is(main::metric($s, 'nginx_xray_sampling_rules_held'), 40,
       '40 rules held (the Version 2 rule is not used)');

    # --- the rule each request matches ---
    my @cases = (
        (map { [{ path => sprintf('/r%02d', $_) }, sprintf('r%02d', $_)] }
             1 .. 30),
        [{ path => '/r01/../r03' }, 'r03'],
        [{ path => '/r04?x=/r05' }, 'r04'],
        [{ path => '/x', host => 'api.example.com' }, 'host'],
        [{ path => '/x', host => 'API.Example.COM:8080' }, 'host'],
        [{ path => '/x', method => 'POST' }, 'post'],
        [{ path => '/svc' }, 'svc-edge'],
        [{ path => '/x', headers => { 'X-Tier' => 'GOLD-member' } }, 'attr'],
        [{ path => '/x', headers => { 'X-Tier' => 'silver' } }, 'Default'],
        [{ path => '/tie' }, 'a-tie'],
        [{ path => '/x' }, 'Default'],
        [{ path => '/x?/r01' }, 'Default'],
    );
    my (%want, %by_trace, @got_sampled, %sent);
    for my $c (@cases) {
        my $r = XRayCentral::get(%{ $c->[0] });
        push @got_sampled, $r->{headers}{'x-sampled'};
        $by_trace{ $r->{headers}{'x-trace'} // '' } = $c->[1];
        $want{ $c->[1] }++;
        $sent{ $c->[1] }++;
    }
    is_deeply(\@got_sampled, [('1') x @cases], 'every request sampled');
    my @docs = XRayCentral::wait_segments(scalar @cases);
    is(scalar @docs, scalar @cases, 'one segment each');
    is_deeply({ map { $_->{trace_id} => XRayCentral::rule_name_of($_) }
                @docs }, \%by_trace,
              'each segment names the rule its request matched');

    # --- statistics: exactly the traffic, at most 25 documents a call ---
    my %want_stats = map { $_ => { RequestCount => $want{$_},
                                   SampledCount => $want{$_},
                                   BorrowCount => 0 } } keys %want;
    my $got;
    XRayTest::wait_until(sub {
        $got = XRayCentral::reported(XRayCentral::api_calls('/SamplingTargets'));
        my $n = 0;
        $n += $_->{RequestCount} for values %$got;
        $n >= @cases;
    }, timeout => 20);
    is_deeply($got, \%want_stats,
              'RequestCount, SampledCount and BorrowCount: the traffic sent')
        or diag explain $got;
    my $targets = XRayCentral::api_calls('/SamplingTargets');
    my @sizes = map { scalar @{ $_->{body}{SamplingStatisticsDocuments} // [] } }
                @$targets;
    ok(List::Util::max(@sizes) <= 25 && @sizes >= 2,
       "36 rules reported in calls of at most 25 documents (@sizes)");
    is_deeply([map { @{ $_->{errors} } } @{ XRayCentral::api_calls() }], [],
              "every call passes the API model's checks");

    $s = XRayCentral::status();
    my ($id) = map { $_->{labels}{client_id} }
               @{ $s->{m}{nginx_xray_sampling_client_id} // [] };
    like($id // '', qr/^[0-9a-f]{24}\z/, 'a ClientID of 24 hex digits');
    is_deeply([sort keys %{ { map { $_->{ClientID} => 1 }
                              map { @{ $_->{body}{SamplingStatisticsDocuments} } }
                              @$targets } }], [$id // ''],
              'every document carries it');
    my @ts = map { $_->{Timestamp} }
             map { @{ $_->{body}{SamplingStatisticsDocuments} } } @$targets;
    ok(!grep({ $_ < int($t0) - 1 || $_ > time + 1 } @ts),
       'Timestamps: epoch seconds of the report');

    # --- 25 documents in one call, 26 in two: both edges ---
    for my $n (25, 26) {
        my ($one_round, @sizes);
        for my $try (1 .. 3) {
            # start as a report round comes: the next is targets_interval
            # (2 s) after its reply, room for the requests even on a loaded
            # machine, where they may take more than a second
            XRayTest::sampling_api_clear();
            XRayTest::wait_until(sub {
                scalar @{ XRayCentral::api_calls('/SamplingTargets') };
            }, timeout => 20);
            XRayTest::sampling_api_clear();
            my $start = time;
            for my $i (1 .. $n) {
                XRayCentral::get(path => sprintf('/r%02d', $i));
                $sent{ sprintf('r%02d', $i) }++;
            }
            XRayTest::wait_until(sub {
                my $r = XRayCentral::reported(
                    XRayCentral::api_calls('/SamplingTargets'));
                List::Util::sum0(map { $_->{RequestCount} } values %$r) >= $n;
            }, timeout => 20);
            my $c = XRayCentral::api_calls('/SamplingTargets');
            @sizes = map { scalar @{ $_->{body}{SamplingStatisticsDocuments} } }
                     @$c;
            # one round: the calls follow each other within a second
            $one_round = @$c && $c->[-1]{time} - $c->[0]{time} < 1;
            last if $one_round && List::Util::sum0(@sizes) == $n;
            diag("$n rules: a report round fell inside the traffic "
                 . "(@sizes), again");
        }
        is_deeply(\@sizes, $n == 25 ? [25] : [25, 1],
                  "$n rules that saw requests: calls of @sizes documents");
    }

    # --- the status page ---
    $s = XRayCentral::status();
    my $text = $s->{text};
    like($text, qr/^nginx_xray_sampling_source\{source="centralized"\} 1$/m,
         'source centralized');
    is(main::metric($s, 'nginx_xray_sampling_source', source => 'local') // 0,
       0, 'not local');
    like($text, qr/^nginx_xray_sampling_rules_held 40$/m, 'rules held');
    for my $call (qw(rules targets)) {
        my $v = main::metric($s, 'nginx_xray_sampling_last_success_seconds',
                             call => $call) // -1;
        ok($v >= int($t0) - 5 && $v <= time + 1,
           "last $call success: $v, epoch seconds of this run");
    }
    my @errs = grep { $_->{value} != 0 }
               @{ $s->{m}{nginx_xray_sampling_poll_errors_total} // [] };
    is(scalar @errs, 0, 'no poll errors');
    is(main::metric($s, 'nginx_xray_sampling_switches_total',
                    to => 'centralized'), 1, 'one switch to centralized');
    is(main::metric($s, 'nginx_xray_sampling_switches_total',
                    to => 'local') // 0, 0, 'none to local');
    like($text, qr/^nginx_xray_sampling_client_id\{client_id="[0-9a-f]{24}"\} 1$/m,
         'the ClientID line');
    my %held = map { $_->{labels}{rule} => 1 }
               @{ $s->{m}{nginx_xray_sampling_rule_requests_total} // [] };
    is_deeply([sort keys %held],
              [sort grep { $_ ne 'v2' } map { $_->{RuleName} } @main::Rules],
              'a requests_total line for every rule held');
    is(main::metric($s, 'nginx_xray_sampling_rule_requests_total',
                    rule => 'r03'), $sent{r03}, "r03: $sent{r03} requests");
    is(main::metric($s, 'nginx_xray_sampling_rule_sampled_total',
                    rule => 'r03', by => 'rate'), $sent{r03},
       "r03: $sent{r03} sampled by rate");
    is(main::metric($s, 'nginx_xray_sampling_rule_sampled_total',
                    rule => 'r30', by => 'rate'), 1, 'r30: 1 sampled by rate');
    is(main::metric($s, 'nginx_xray_sampling_rule_requests_total',
                    rule => 'svc-other'), 0, 'svc-other: none');
    for my $m (qw(quota quota_ttl_seconds boost_rate boost_ttl_seconds)) {
        is(main::metric($s, "nginx_xray_sampling_rule_$m", rule => 'r03'), 0,
           "r03: $m 0 (no target yet)");
    }
    is(main::metric($s, 'nginx_xray_sampling_rule_fixed_rate', rule => 'r03'),
       1, 'r03: fixed_rate 1');
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: LastRuleModification: older than the rules held, nothing; newer, a refresh
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized rules_interval=5m targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
    xray_segment_name edge;
--- config
    location / {
        xray on;
        xray_originate on;
        add_header X-Sampled $xray_sampled always;
        return 204;
    }
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
{ rules => [main::rule('old', 10, URLPath => '/lrm'),
            main::rule('Default', 10000, FixedRate => 0)] }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my ($ok, $s) = XRayCentral::wait_status(sub {
        (main::metric($_[0], 'nginx_xray_sampling_rules_held') // 0) == 2 });
    ok($ok, 'two rules held') or diag $s->{text};
    my $rules_calls = sub {
        scalar @{ XRayCentral::api_calls('/GetSamplingRules') } };
    is($rules_calls->(), 1, 'one GetSamplingRules call');

    # traffic until N more targets calls have been answered
    my $targets_calls = sub {
        my ($n) = @_;
        my $from = @{ XRayCentral::api_calls('/SamplingTargets') };
        XRayTest::wait_until(sub {
            XRayCentral::get(path => '/lrm');
            @{ XRayCentral::api_calls('/SamplingTargets') } >= $from + $n;
        }, timeout => 20);
    };

    my $old = XRayCentral::api_calls('/GetSamplingRules')->[0]{time};
    XRayTest::sampling_api_config({
        rules => [main::rule('old', 10, URLPath => '/lrm'),
                  main::rule('Default', 10000, FixedRate => 0)],
        last_rule_modification => int($old) - 3600 });
    ok($targets_calls->(3), 'three targets calls answered, modified an hour '
                            . 'before the rules were fetched');
    is($rules_calls->(), 1, '... no new GetSamplingRules call');

    my $changed = time;
    XRayTest::sampling_api_config({
        rules => [main::rule('old', 10, URLPath => '/lrm'),
                  main::rule('new', 5, URLPath => '/lrm'),
                  main::rule('Default', 10000, FixedRate => 0)],
        last_rule_modification => $changed });
    ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(path => '/lrm');
        (main::metric($_[0], 'nginx_xray_sampling_rule_requests_total',
                      rule => 'new') // 0) >= 1 });
    ok($ok, 'a rule added in the service applies after the next targets '
            . 'reply') or diag $s->{text};
    is(main::metric($s, 'nginx_xray_sampling_rules_held'), 3, 'three rules');
    is($rules_calls->(), 2, 'fetched once more');
    my $refetch = XRayCentral::api_calls('/GetSamplingRules')->[1]{time};
    my @before = grep { $_->{time} < $refetch && $_->{time} > $changed }
                 @{ XRayCentral::api_calls('/SamplingTargets') };
    ok(scalar @before, 'after a targets reply that carried the modification');

    ok($targets_calls->(3), 'three more targets calls answered');
    is($rules_calls->(), 2, '... with rules newer than the modification: '
                            . 'no other GetSamplingRules call');
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: LastRuleModification 0.3 s after the fetch, within its second: fetched again
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized rules_interval=5m targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
    xray_segment_name edge;
--- config
    location / {
        xray on;
        xray_originate on;
        return 204;
    }
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
{ rules => [main::rule('one', 10, URLPath => '/ms'),
            main::rule('Default', 10000, FixedRate => 0)] }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my ($ok, $s) = XRayCentral::wait_status(sub {
        (main::metric($_[0], 'nginx_xray_sampling_rules_held') // 0) == 2 });
    ok($ok, 'two rules held') or diag $s->{text};
    my $fetched = XRayCentral::api_calls('/GetSamplingRules')->[0]{time};
    # a change the service made 0.3 s after it answered: newer than the
    # rules held, though most often within the same second
    XRayTest::sampling_api_config({
        rules => [main::rule('one', 10, URLPath => '/ms'),
                  main::rule('two', 5, URLPath => '/ms'),
                  main::rule('Default', 10000, FixedRate => 0)],
        last_rule_modification => $fetched + 0.3 });
    ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(path => '/ms');
        (main::metric($_[0], 'nginx_xray_sampling_rules_held') // 0) == 3 },
        timeout => 10);
    ok($ok, sprintf('modified at %.3f, 0.3 s after the fetch at %.3f: '
                    . 'fetched again', $fetched + 0.3, $fetched))
        or diag $s->{text};
    my $n = @{ XRayCentral::api_calls('/SamplingTargets') };
    XRayTest::wait_until(sub {
        XRayCentral::get(path => '/ms');
        @{ XRayCentral::api_calls('/SamplingTargets') } >= $n + 3 });
    is(scalar @{ XRayCentral::api_calls('/GetSamplingRules') }, 2,
       'then not again: the rules held are newer');
}
--- no_error_log
[alert]
[crit]
[emerg]
