# Centralized sampling against bad replies: numbers out of range (huge,
# negative), wrong types, names too long, 10,000 rules, a 10 MB reply, a
# reply that never ends, bad targets.  Each one is counted by kind, logged
# with a line that names the field (the core's message), and changes
# nothing: the rules and the quota held before still decide, nginx keeps
# answering, the worker's memory stays bounded.  Unknown members are not bad
# input: they are ignored and the rule is used.

BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2026 }

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use XRayCentral;
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
no_long_string();
no_root_location();

*rule = \&XRayCentral::rule;
*metric = \&XRayCentral::metric;
our @UsedOnce = (\&metric, \&rule);

our @Good = (rule('good', 10, URLPath => '/g*', FixedRate => 0),
             rule('Default', 10000, FixedRate => 0));
our %GoodTargets = (good => { FixedRate => 0, ReservoirQuota => 7,
                              ReservoirQuotaTTLIn => 600 });

XRayTest::start_sampling_api();

sub errors {
    my ($s, $call, $kind) = @_;
    return metric($s, 'nginx_xray_sampling_poll_errors_total',
                  call => $call, kind => $kind) // 0;
}

# what held before still holds: 2 rules, the quota of 7, /g matches
# "good" and is sampled from its quota
sub still_good {
    my ($what) = @_;
    my $s = XRayCentral::status();
    is(metric($s, 'nginx_xray_sampling_rules_held'), 2,
       "$what: the 2 rules held are kept");
    is(metric($s, 'nginx_xray_sampling_rule_quota', rule => 'good'), 7,
       "$what: the quota of 7 too");
    my $before = metric($s, 'nginx_xray_sampling_rule_requests_total',
                        rule => 'good') // 0;
    my $r = XRayCentral::get(path => '/g');
    is($r->{status}, 204, "$what: nginx answers");
    $s = XRayCentral::status();
    is(metric($s, 'nginx_xray_sampling_rule_requests_total', rule => 'good'),
       $before + 1, "$what: the request matched the rule held");
}

run_tests();

__DATA__

=== TEST 1: bad rules, bad targets, huge and endless replies
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized rules_interval=1s targets_interval=1s;
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
{ rules => \@main::Good, targets => \%main::GoodTargets }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my $m = \&main::metric;
    my ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(path => '/g');
        ($m->($_[0], 'nginx_xray_sampling_rule_quota', rule => 'good') // 0)
            == 7 });
    ok($ok, 'the good rules and their quota are held') or diag $s->{text};
    main::still_good('start');

    # --- unknown members: ignored, the rule is used ---
    XRayTest::sampling_api_config({
        rules => [@main::Good,
                  main::rule('extra', 20, URLPath => '/e', Extra => [1],
                             Priority2 => 'x')],
        targets => \%main::GoodTargets });
    ($ok, $s) = XRayCentral::wait_status(sub {
        ($m->($_[0], 'nginx_xray_sampling_rules_held') // 0) == 3 });
    ok($ok, 'a rule with unknown members is used') or diag $s->{text};
    XRayTest::sampling_api_config({ rules => \@main::Good,
                                    targets => \%main::GoodTargets });
    ($ok, $s) = XRayCentral::wait_status(sub {
        ($m->($_[0], 'nginx_xray_sampling_rules_held') // 0) == 2 });
    ok($ok, 'and goes when the service drops it');

    my $bad = sub { [@main::Good, main::rule('bad', 5, @_)] };
    my $long = 'n' x 33;
    my @cases = (
        [ 'a FixedRate of 2', 'rules', 'bad_reply',
          qr/"FixedRate" must be a number from 0 to 1/,
          { rules => $bad->(FixedRate => 2) } ],
        [ 'a FixedRate just below 0', 'rules', 'bad_reply',
          qr/"FixedRate" must be a number from 0 to 1/,
          { rules => $bad->(FixedRate => -0.000001) } ],
        [ 'a negative Priority', 'rules', 'bad_reply',
          qr/"Priority" must be an integer from 1 to/,
          { rules => $bad->(Priority => -1) } ],
        [ 'a huge ReservoirSize', 'rules', 'bad_reply',
          qr/"ReservoirSize" must be an integer from 0 to/,
          { rules => $bad->(ReservoirSize => 1e300) } ],
        [ 'a FixedRate that is a string', 'rules', 'bad_reply',
          qr/"FixedRate" must be a number/,
          { rules => $bad->(FixedRate => '0.5') } ],
        [ 'a Host that is a number', 'rules', 'bad_reply',
          qr/"Host" must be a string/, { rules => $bad->(Host => 5) } ],
        [ 'a RuleName of 33 characters', 'rules', 'bad_reply',
          qr/"RuleName" must be 1 to 32 bytes long/,
          { rules => [@main::Good, main::rule($long, 5)] } ],
        [ 'a record that is not an object', 'rules', 'bad_reply',
          qr/must be an object/, { rules => [@main::Good, 'x'] } ],
        [ '10,000 rules', 'rules', 'bad_reply',
          qr/too many rules: more than 100/,
          { rules => [map { main::rule("r$_", $_ % 9999 + 1,
                                       URLPath => "/r$_") } 1 .. 10000] } ],
        [ 'a quota below 0', 'targets', 'bad_reply',
          qr/"ReservoirQuota" must be an integer from 0 to/,
          { targets => { good => { ReservoirQuota => -1,
                                   ReservoirQuotaTTLIn => 600 } } } ],
        [ 'a FixedRate of 7 in a target', 'targets', 'bad_reply',
          qr/"FixedRate" must be a number from 0 to 1/,
          { targets => { good => { FixedRate => 7 } } } ],
        [ 'a ReservoirQuotaTTL that is a string', 'targets', 'bad_reply',
          qr/"ReservoirQuotaTTL" must be a number/,
          { targets => { good => { ReservoirQuota => 1,
                                   ReservoirQuotaTTL => 'soon' } } } ],
        [ 'a 10 MB reply', 'rules', 'too_large',
          qr/reply body of \d+ bytes, over the 1048576-byte limit/,
          { fault => 'huge', fault_paths => ['/GetSamplingRules'] } ],
        [ 'a reply that never ends', 'rules', 'timeout',
          qr/no complete reply within 5000 ms/,
          { fault => 'endless', fault_paths => ['/GetSamplingRules'] } ],
    );

    my ($worker) = XRayCentral::worker_pids();
    my $rss0 = XRayCentral::rss_kb($worker);
    for my $c (@cases) {
        my ($what, $call, $kind, $re, $config) = @$c;
        $s = XRayCentral::status();
        my $before = main::errors($s, $call, $kind);
        my $log_from = length XRayCentral::error_log();
        XRayTest::sampling_api_config({ rules => \@main::Good,
                                        targets => \%main::GoodTargets,
                                        %$config });
        my $name = $call eq 'rules' ? 'GetSamplingRules' : 'SamplingTargets';
        my $warned = sub {
            my $log = substr XRayCentral::error_log(), $log_from;
            scalar grep {
                /\[warn\].* $name call to the daemon at [^ ]+ failed: .*$re/
            } split /\n/, $log;
        };
        # the counter may grow first from the previous case's failure,
        # repeated before the stand-in serves the new config (a repeat is
        # not logged again): wait for this case's own line as well
        ($ok, $s) = XRayCentral::wait_status(sub {
            XRayCentral::get(path => '/g');    # keeps targets calls going
            main::errors($_[0], $call, $kind) > $before && $warned->() },
            timeout => 20);
        ok(main::errors($s, $call, $kind) > $before,
           "$what: counted ($call, $kind)") or diag $s->{text};
        ok($warned->(), "$what: a warn line says what was wrong")
            or diag substr XRayCentral::error_log(), $log_from;
        main::still_good($what);
    }
    XRayTest::sampling_api_config({ rules => \@main::Good,
                                    targets => \%main::GoodTargets });
    my $rss = XRayCentral::rss_kb($worker);
    SKIP: {
        # ASan's quarantine keeps what is freed: the size means nothing
        Test::More::skip("the worker's memory: ${rss0} kB, then ${rss} kB "
                         . 'under ASan', 1) if $ENV{ASAN_OPTIONS};
        ok($rss - $rss0 < 8192, "the worker's memory: ${rss0} kB, then "
                                . "${rss} kB after all of it");
    }
    ok(kill(0, $worker), 'the same worker throughout');
    ($ok, $s) = XRayCentral::wait_status(sub {
        my $t = $m->($_[0], 'nginx_xray_sampling_last_success_seconds',
                     call => 'rules') // 0;
        $t >= int(time) - 1 });
    ok($ok, 'good replies are taken again') or diag $s->{text};
}
--- no_error_log
[alert]
[crit]
[emerg]
