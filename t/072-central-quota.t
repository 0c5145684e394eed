# Centralized sampling with two workers: one request a second borrowed
# before a rule has a quota, the service's ReservoirQuota a second for the
# whole instance once it has one (N/s over both workers, not 2N), borrowing
# again after the quota's TTL; a SamplingRateBoost rule reports its
# anomalies (5xx, anomaly_latency) and samples at the BoostRate until its
# TTL.  Traffic goes to a reuseport server so that the kernel spreads it
# over both workers; every request's second is the one its decision was
# taken in (XRayTest::request_second).

BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2028 }

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use XRayCentral;
use List::Util qw(min max sum0);
use POSIX ();
use Time::HiRes qw(time sleep);

master_on();
workers(2);
log_level('info');
no_shuffle();
no_long_string();
no_root_location();

*rule = \&XRayCentral::rule;
*metric = \&XRayCentral::metric;
our @UsedOnce = (\&metric, \&rule);

our $Port = 2029;    # the reuseport server
our $Quota = 5;

XRayTest::start_sampling_api();

# traffic to $path for S seconds, starting at the start of a second
sub traffic {
    my ($path, $seconds) = @_;
    my $sec = int time;
    XRayTest::wait_until(sub { int(time) > $sec }, timeout => 2);
    return XRayCentral::traffic(path => $path, seconds => $seconds,
                                concurrency => 6, port => $Port);
}

# "second: requests/sampled (requests by worker)" for diag
sub show {
    my ($res) = @_;
    my (%req, %smp);
    for my $r (@$res) {
        my $s = XRayTest::request_second($r) // next;
        $req{$s}{ $r->{headers}{'x-pid'} // '?' }++;
        $smp{$s}{ $r->{headers}{'x-pid'} // '?' }++
            if ($r->{headers}{'x-sampled'} // '') eq '1';
    }
    return join "\n", map {
        my $s = $_;
        "$s: " . join(', ', map { "pid $_: $req{$s}{$_} requests, "
                                  . ($smp{$s}{$_} // 0) . ' sampled' }
                            sort keys %{ $req{$s} })
    } sort keys %req;
}

# Every second: min($n, requests) sampled, over both workers.  A worker's
# clock is the time it last woke up: one that lags behind the other across
# a second's boundary takes from the newer second's window while its
# request says the older second.  It was decided after the newer second
# began, so its response came after that.  Hence, counting by the second
# each request says, up to each second s, exactly:
#   at least the sum of min($n, requests answered within their second),
#     which every window took from, and
#   at most the sum of min($n, the second's requests and the older ones
#     answered after it began), all a window can hold, plus the samples
#     answered after s ended, which may come from a later window.
# Without a lagging worker (or a slow answer) both are the sum of
# min($n, requests).
sub exactly_per_second {
    my ($res, $n, $what) = @_;
    my (%req, %smp, %early, @all);
    for my $r (@$res) {
        my $sec = XRayTest::request_second($r) // next;
        my $sampled = ($r->{headers}{'x-sampled'} // '') eq '1' ? 1 : 0;
        $req{$sec}++;
        $smp{$sec} += $sampled;
        $early{$sec}++ if $r->{received} < $sec + 1;
        push @all, [$sec, $r->{received}, $sampled];
    }
    my ($got, $lo, $hold, $bad) = (0, 0, 0);
    for my $sec (sort { $a <=> $b } keys %req) {
        my $older = grep { $_->[0] < $sec && $_->[1] >= $sec } @all;
        my $later = grep { $_->[2] && $_->[0] <= $sec && $_->[1] >= $sec + 1 }
                    @all;
        $got += $smp{$sec} // 0;
        $lo += min($n, $early{$sec} // 0);
        $hold += min($n, $req{$sec} + $older);
        $bad //= "second $sec: $got sampled up to it, not within "
                 . "[$lo, " . ($hold + $later) . ']'
            if $got < $lo || $got > $hold + $later;
    }
    my %pids = map { ($_->{headers}{'x-pid'} // '') => 1 } @$res;
    my $sampled = grep { ($_->{headers}{'x-sampled'} // '') eq '1' } @$res;
    is(scalar keys %pids, 2, "$what: both workers served");
    ok(!defined $bad && keys %req >= 2 && $got == $sampled,
       "$what: $n sampled in each of " . (keys %req) . " seconds, over "
       . "both workers: $got in all")
        or diag(($bad // '') . "\n" . show($res));
    Test::More::note(show($res));
    return $got;
}

run_tests();

__DATA__

=== TEST 1: borrow 1/s before a quota, a quota of 5/s for both workers, borrow again after its TTL
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_segment_name edge;
    server {
        listen 127.0.0.1:2029 reuseport;
        location / {
            xray on;
            xray_originate on;
            add_header X-Sampled $xray_sampled always;
            add_header X-Pid $pid always;
            add_header X-Msec $msec always;
            add_header X-Request-Time $request_time always;
            return 204;
        }
    }
--- config
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
{ rules => [main::rule('q', 10, URLPath => '/q*', FixedRate => 0,
                       ReservoirSize => 50),
            main::rule('Default', 10000, FixedRate => 0)] }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my $m = \&main::metric;
    my ($ok, $s) = XRayCentral::wait_status(sub {
        ($m->($_[0], 'nginx_xray_sampling_source', source => 'centralized')
         // 0) == 1 });
    ok($ok, 'the centralized rules are in force') or diag $s->{text};

    # --- before a quota: 1 a second, borrowed ---
    my @res = main::traffic('/q', 3);
    my $borrowed = main::exactly_per_second(\@res, 1, 'no quota yet');
    $s = XRayCentral::status();
    is($m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'q',
            by => 'borrow'), $borrowed, "$borrowed sampled by borrowing");
    is($m->($s, 'nginx_xray_sampling_rule_requests_total', rule => 'q'),
       scalar @res, scalar(@res) . ' requests');
    my $got;
    XRayTest::wait_until(sub {
        $got = XRayCentral::reported(XRayCentral::api_calls('/SamplingTargets'));
        ($got->{q}{RequestCount} // 0) >= @res;
    });
    is_deeply($got->{q}, { RequestCount => scalar @res,
                           SampledCount => $borrowed,
                           BorrowCount => $borrowed },
              'reported: the requests, and every sample borrowed');

    # --- a quota of 5 a second: the whole instance, not each worker ---
    XRayTest::sampling_api_config({
        rules => [main::rule('q', 10, URLPath => '/q*', FixedRate => 0,
                             ReservoirSize => 50),
                  main::rule('Default', 10000, FixedRate => 0)],
        targets => { q => { FixedRate => 0, ReservoirQuota => $main::Quota,
                            ReservoirQuotaTTLIn => 60, Interval => 1 } } });
    ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(path => '/q', port => $main::Port);
        ($m->($_[0], 'nginx_xray_sampling_rule_quota', rule => 'q') // 0)
            == $main::Quota });
    ok($ok, 'the quota arrived') or diag $s->{text};
    $s = XRayCentral::status();
    my $ttl = $m->($s, 'nginx_xray_sampling_rule_quota_ttl_seconds',
                   rule => 'q') // 0;
    ok($ttl > time + 50 && $ttl < time + 61, "its TTL, epoch seconds: $ttl");
    my $before = $m->($s, 'nginx_xray_sampling_rule_sampled_total',
                      rule => 'q', by => 'quota') // 0;
    my $borrowed_before = $m->($s, 'nginx_xray_sampling_rule_sampled_total',
                               rule => 'q', by => 'borrow');
    @res = main::traffic('/q', 4);
    my $taken = main::exactly_per_second(\@res, $main::Quota,
                                         "a quota of $main::Quota/s");
    $s = XRayCentral::status();
    is($m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'q',
            by => 'quota') - $before, $taken, "$taken sampled from the quota");
    is($m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'q',
            by => 'borrow'), $borrowed_before, 'none borrowed meanwhile');

    # --- the quota's TTL passes: borrowing again ---
    XRayTest::sampling_api_config({
        rules => [main::rule('q', 10, URLPath => '/q*', FixedRate => 0,
                             ReservoirSize => 50),
                  main::rule('Default', 10000, FixedRate => 0)],
        targets => { q => { FixedRate => 0, ReservoirQuota => $main::Quota,
                            ReservoirQuotaTTLIn => 2 } } });
    ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(path => '/q', port => $main::Port);
        ($m->($_[0], 'nginx_xray_sampling_rule_quota_ttl_seconds',
              rule => 'q') // 0) < time + 10 });
    ok($ok, 'a quota with a TTL of 2 s arrived') or diag $s->{text};
    # no more targets for q: the last one runs out
    XRayTest::sampling_api_config({
        rules => [main::rule('q', 10, URLPath => '/q*', FixedRate => 0,
                             ReservoirSize => 50),
                  main::rule('Default', 10000, FixedRate => 0)] });
    my $n = @{ XRayCentral::api_calls('/SamplingTargets') };
    XRayTest::wait_until(sub {
        XRayCentral::get(path => '/q', port => $main::Port);
        @{ XRayCentral::api_calls('/SamplingTargets') } >= $n + 2 });
    $s = XRayCentral::status();
    $ttl = $m->($s, 'nginx_xray_sampling_rule_quota_ttl_seconds', rule => 'q');
    ok(XRayTest::wait_until(sub { time > $ttl + 1 }, timeout => 10),
       "the TTL ($ttl) passed");
    $before = $m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'q',
                   by => 'borrow') // 0;
    my $quota_before = $m->($s, 'nginx_xray_sampling_rule_sampled_total',
                            rule => 'q', by => 'quota') // 0;
    @res = main::traffic('/q', 3);
    $borrowed = main::exactly_per_second(\@res, 1, 'after the TTL');
    $s = XRayCentral::status();
    is($m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'q',
            by => 'borrow') - $before, $borrowed, "$borrowed borrowed");
    is($m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'q',
            by => 'quota'), $quota_before, 'none from the expired quota');
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: a boost: anomalies reported, BoostRate until BoostRateTTL
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=1s anomaly_latency=500ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_segment_name edge;
    server {
        listen 127.0.0.1:2029 reuseport;
        xray on;
        xray_originate on;
        add_header X-Sampled $xray_sampled always;
        add_header X-Pid $pid always;
        add_header X-Msec $msec always;
        add_header X-Request-Time $request_time always;
        location / {
            return 204;
        }
        location = /b/500 {
            return 500;
        }
        location = /b/slow {
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/1000;
        }
        location = /b/fast {
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/0;
        }
    }
--- config
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
{ rules => [main::rule('b', 10, URLPath => '/b*', FixedRate => 0,
                       SamplingRateBoost => { MaxRate => 1,
                                              CooldownWindowMinutes => 1 }),
            main::rule('Default', 10000, FixedRate => 0)] }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my $m = \&main::metric;
    my $P = $main::Port;
    my ($ok, $s) = XRayCentral::wait_status(sub {
        ($m->($_[0], 'nginx_xray_sampling_source', source => 'centralized')
         // 0) == 1 });
    ok($ok, 'the centralized rules are in force') or diag $s->{text};

    # --- anomalies: 5xx, slower than anomaly_latency ---
    my @res;
    push @res, XRayCentral::get(path => '/b', port => $P) for 1 .. 6;
    push @res, XRayCentral::get(path => '/b/500', port => $P) for 1 .. 3;
    push @res, XRayCentral::get(path => '/b/slow', port => $P) for 1 .. 2;
    push @res, XRayCentral::get(path => '/b/fast', port => $P) for 1 .. 2;
    is(CORE::join(' ', map { $_->{status} } @res),
       '204 204 204 204 204 204 500 500 500 200 200 200 200', 'the answers');
    is(scalar(grep { $_->{headers}{'x-sampled'} eq '0' } @res), 13,
       'FixedRate 0, no reservoir: none sampled');
    # nginx measures a request's latency at its end on its own clock, as
    # $request_time is for these answers (the whole of each comes in one
    # read): a /b/fast that a loaded machine made slower than 500ms is an
    # anomaly too
    my $anomalies = grep { $_->{status} >= 500
                           || ($_->{headers}{'x-request-time'} // 0) >= 0.5 }
                    @res;
    my $late = $anomalies - 5;
    my %boost;
    XRayTest::wait_until(sub {
        %boost = ();
        for my $c (@{ XRayCentral::api_calls('/SamplingTargets') }) {
            for my $d (@{ $c->{body}{SamplingBoostStatisticsDocuments} // [] }) {
                $boost{rules}{ $d->{RuleName} } = 1;
                $boost{services}{ $d->{ServiceName} } = 1;
                $boost{$_} += $d->{$_}
                    for qw(TotalCount AnomalyCount SampledAnomalyCount);
            }
        }
        ($boost{TotalCount} // 0) >= 13;
    }, timeout => 20);
    is_deeply(\%boost, { rules => { b => 1 }, services => { edge => 1 },
                         TotalCount => 13, AnomalyCount => $anomalies,
                         SampledAnomalyCount => 0 },
              'boost statistics: 13 requests, 3 answered 5xx and 2 slower '
              . 'than 500ms are anomalies'
              . ($late ? " (and $late more this slow machine made slow)" : '')
              . ', none sampled')
        or diag explain \%boost;
    is_deeply([map { @{ $_->{errors} } } @{ XRayCentral::api_calls() }], [],
              "every call passes the API model's checks");

    # --- the service boosts b: BoostRate 1 for 8 s ---
    # (the boost must outlast the poll for it and one more targets call
    # before the traffic starts: a few seconds on a loaded machine)
    my %rules = (rules => [
        main::rule('b', 10, URLPath => '/b*', FixedRate => 0,
                   SamplingRateBoost => { MaxRate => 1,
                                          CooldownWindowMinutes => 1 }),
        main::rule('Default', 10000, FixedRate => 0)]);
    XRayTest::sampling_api_config({ %rules, targets => { b => {
        FixedRate => 0,
        SamplingBoost => { BoostRate => 1, BoostRateTTLIn => 8 } } } });
    ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(path => '/b', port => $P);
        ($m->($_[0], 'nginx_xray_sampling_rule_boost_rate', rule => 'b') // 0)
            == 1 });
    ok($ok, 'the boost arrived') or diag $s->{text};
    # and is not renewed
    XRayTest::sampling_api_config({ %rules, targets => { b => {
        FixedRate => 0 } } });
    my $n = @{ XRayCentral::api_calls('/SamplingTargets') };
    XRayTest::wait_until(sub {
        XRayCentral::get(path => '/b', port => $P);
        @{ XRayCentral::api_calls('/SamplingTargets') } >= $n + 1 });
    $s = XRayCentral::status();
    my $ttl = $m->($s, 'nginx_xray_sampling_rule_boost_ttl_seconds',
                   rule => 'b') // 0;
    ok($ttl > time - 1 && $ttl < time + 10, "BoostRateTTL: $ttl");
    my $boosted = $m->($s, 'nginx_xray_sampling_rule_sampled_total',
                       rule => 'b', by => 'boost') // 0;

    @res = ();
    XRayTest::wait_until(sub {
        push @res, XRayCentral::get(path => '/b', port => $P);
        time > $ttl + 2;
    }, timeout => 15);
    my (@during, @after);
    for my $r (@res) {
        my $sec = XRayTest::request_second($r);
        push @during, $r if $sec + 1 <= $ttl;
        push @after, $r if $sec >= $ttl + 1;
    }
    my $show = sub {
        CORE::join ' ', map { XRayTest::request_second($_) . ':'
                              . $_->{headers}{'x-sampled'} } @_ };
    ok(@during && !grep({ $_->{headers}{'x-sampled'} ne '1' } @during),
       scalar(@during) . ' requests before the TTL: all sampled')
        or diag $show->(@during);
    ok(@after && !grep({ $_->{headers}{'x-sampled'} ne '0' } @after),
       scalar(@after) . ' requests after it: none')
        or diag $show->(@after);
    $s = XRayCentral::status();
    is($m->($s, 'nginx_xray_sampling_rule_sampled_total', rule => 'b',
            by => 'boost') - $boosted,
       scalar(grep { $_->{headers}{'x-sampled'} eq '1' } @res),
       'what was sampled was sampled by the boost');
}
--- no_error_log
[alert]
[crit]
[emerg]
