# The reservoir is shared by every worker process through shared memory:
# two workers must not sample twice the fixed_target between them.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

master_on();
workers(2);
log_level('info');
no_shuffle();
no_long_string();

run_tests();

__DATA__

=== TEST 1: 2 workers, fixed_target 5, rate 0: at most 5 a second in all
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/five.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/2/;
        add_header X-Pid $pid;
        add_header X-Msec $msec;
        add_header X-Request-Time $request_time;
    }
--- user_files
>>> five.json
{"version": 2, "default": {"fixed_target": 5, "rate": 0}}
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- burst: 400
--- burst_concurrency: 8
--- burst_check eval
sub {
    my ($res) = @_;
    my (%pids, %per_second, %pids_per_second);
    for my $r (@$res) {
        # the second of the decision, not of the response header
        my $sec = XRayTest::request_second($r);
        my $pid = $r->{headers}{'x-pid'};
        $pids{$pid}++;
        $pids_per_second{$sec}{$pid} = 1;
        $per_second{$sec} //= 0;
        $per_second{$sec}++ if $r->{body} =~ /;Sampled=1\r/;
    }
    my $both = grep { keys %{ $pids_per_second{$_} } == 2 } keys %per_second;
    is(scalar keys %pids, 2, 'both workers served requests')
        or diag explain \%pids;
    ok($both >= 1, "both workers were busy in the same second ($both)");

    # a worker whose clock lags a fraction of a second counts against the
    # newer second, so group by second with one to spare at a boundary
    my $total = 0;
    $total += $_ for values %per_second;
    my $spanned = keys %per_second;
    # the block's own request, sent first, took one of the five
    ok($total >= 4, "the reservoir was used ($total sampled)");
    ok($total <= 5 * $spanned, "$total sampled over $spanned second(s)")
        or diag explain \%per_second;
    ok(!grep({ $_ > 6 } values %per_second), 'never 2 x 5 in a second')
        or diag explain \%per_second;
}
