# Centralized sampling, what a review of the poller found: cases the other
# central suites do not reach.  The stand-in sampling API listens on
# 127.0.0.1:2030 (this suite's ports: 2030-2034).
#
# TEST 1: a SamplingTargets reply with HTTP 200 whose body is not the API's
# JSON.  The service answered: it took the statistics the call carried.
# Those are not reported again, or the service would count the same
# requests once more on every call that the bad replies make fail (the
# statistics it receives must equal the traffic sent).
#
# TEST 2: the same with a 200 reply over 1 MB, and one whose body never
# ends (the call times out after its status came).

BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2030 }

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use XRayCentral;
use JSON::PP ();
use Time::HiRes qw(time);

master_on();
workers(2);
log_level('info');
no_shuffle();
no_long_string();
no_root_location();

*rule = \&XRayCentral::rule;
*metric = \&XRayCentral::metric;
our @UsedOnce = (\&metric, \&rule);

our @Rules = (rule('central', 1), rule('Default', 10000, FixedRate => 0));

XRayTest::start_sampling_api();

sub bad_replies {
    return metric($_[0], 'nginx_xray_sampling_poll_errors_total',
                  call => 'targets', kind => 'bad_reply') // 0;
}

run_tests();

__DATA__

=== TEST 1: statistics a 200 reply took are not reported again when its body is bad
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=1s;
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
{ rules => \@main::Rules, fault => 'garbage',
  fault_paths => ['/SamplingTargets'] }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my ($ok, $s) = XRayCentral::wait_status(sub {
        main::metric($_[0], 'nginx_xray_sampling_source',
                     source => 'centralized') });
    ok($ok, 'the rules arrive: centralized') or diag $s->{text};

    my $sent = 10;
    my $answered = 0;
    for (1 .. $sent) {
        $answered++ if (XRayCentral::get(path => '/')->{status} // 0) == 204;
    }
    is($answered, $sent, "$sent requests answered");

    # three bad replies at least after the requests: each call of them
    # carried statistics
    my $before = main::bad_replies($s);
    ($ok, $s) = XRayCentral::wait_status(sub {
        main::bad_replies($_[0]) >= $before + 3 }, timeout => 30);
    ok($ok, 'targets answered 200 with garbage: counted as bad_reply')
        or diag $s->{text};
    like(XRayCentral::error_log(),
         qr/\[warn\].*SamplingTargets call .* failed/,
         'and logged at warn');

    # the stand-in answers again: one good call after the bad ones
    my $since = time;
    XRayTest::sampling_api_config({ rules => \@main::Rules });
    ($ok, $s) = XRayCentral::wait_status(sub {
        (main::metric($_[0], 'nginx_xray_sampling_last_success_seconds',
                      call => 'targets') // 0) > $since + 1 }, timeout => 30);
    ok($ok, 'a targets call succeeds again') or diag $s->{text};

    my $calls = XRayCentral::api_calls('/SamplingTargets');
    my $r = XRayCentral::reported($calls)->{central} // {};
    is($r->{RequestCount} // 0, $sent,
       "the service received RequestCount $sent in all, over "
       . scalar(@$calls) . ' targets calls')
        or diag CORE::join "\n", map { JSON::PP->new->canonical->encode($_->{body})
                                } @$calls;
    is(scalar(grep { @{ $_->{errors} // [] } } @$calls), 0,
       'every targets body valid for the API model');
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: nor when a 200 reply is too large, or never ends
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=1s;
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
{ rules => \@main::Rules }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my ($ok, $s) = XRayCentral::wait_status(sub {
        main::metric($_[0], 'nginx_xray_sampling_source',
                     source => 'centralized') });
    ok($ok, 'the rules arrive: centralized') or diag $s->{text};

    my $errors = sub {
        return main::metric($_[0], 'nginx_xray_sampling_poll_errors_total',
                            call => 'targets', kind => $_[1]) // 0;
    };
    my $sent = 0;
    # each fault after requests, so that its calls carry statistics
    for my $f ([ 'huge', 'too_large', 3 ], [ 'endless', 'timeout', 1 ]) {
        my ($fault, $kind, $calls) = @$f;
        my $before = $errors->($s, $kind);
        XRayTest::sampling_api_config({ rules => \@main::Rules,
                                        fault => $fault,
                                        fault_paths => ['/SamplingTargets'] });
        for (1 .. 5) {
            $sent++ if (XRayCentral::get(path => '/')->{status} // 0) == 204;
        }
        ($ok, $s) = XRayCentral::wait_status(sub {
            $errors->($_[0], $kind) >= $before + $calls }, timeout => 40);
        ok($ok, "targets answered 200, $fault: counted as $kind")
            or diag $s->{text};
    }
    is($sent, 10, '10 requests answered');

    my $since = time;
    XRayTest::sampling_api_config({ rules => \@main::Rules });
    ($ok, $s) = XRayCentral::wait_status(sub {
        (main::metric($_[0], 'nginx_xray_sampling_last_success_seconds',
                      call => 'targets') // 0) > $since + 1 }, timeout => 30);
    ok($ok, 'a targets call succeeds again') or diag $s->{text};

    my $calls = XRayCentral::api_calls('/SamplingTargets');
    my $r = XRayCentral::reported($calls)->{central} // {};
    is($r->{RequestCount} // 0, $sent,
       "the service received RequestCount $sent in all, over "
       . scalar(@$calls) . ' targets calls')
        or diag CORE::join "\n", map {
            JSON::PP->new->canonical->encode($_->{body}) } @$calls;
}
--- no_error_log
[alert]
[crit]
[emerg]
