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

    my $total = 0;
    $total += $_ for values %per_second;
    my $spanned = keys %per_second;
    # the block's own request, sent first, took one of the five
    ok($total >= 4, "the reservoir was used ($total sampled)");
    ok($total <= 5 * $spanned, "$total sampled over $spanned second(s)")
        or diag explain \%per_second;
    # A worker's clock is the time it last woke up: one that lags behind
    # the other across a second's boundary takes from the newer second's
    # window while its request says the older second.  Such a request was
    # decided after the newer second began, so its response came after
    # that too: the samples of a second whose responses came within it
    # were all taken from that second's window, 5 at most.
    my %early;
    for my $r (@$res) {
        my $sec = XRayTest::request_second($r);
        $early{$sec}++ if $r->{body} =~ /;Sampled=1\r/
                          && $r->{received} < $sec + 1;
    }
    ok(!grep({ $_ > 5 } values %early),
       'never 2 x 5 in a second: at most 5 of the samples answered within '
       . 'their second') or diag explain { all => \%per_second,
                                          answered_within => \%early };
}
