# The counters are summed over worker processes and survive a reload.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

master_on();
workers(2);
log_level('info');
no_shuffle();
no_long_string();

sub status {
    my ($r) = XRayTest::http_requests(
        request => "GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my %v;
    $v{$1} = $2 while $r->{body} =~ /^(\S+) (\d+)$/mg;
    return \%v;
}

sub traffic {
    my ($n) = @_;
    my @r = XRayTest::http_requests(
        request => "GET /t HTTP/1.0\r\nHost: localhost\r\nX-Amzn-Trace-Id: "
                   . "Root=1-5759e988-bd862e3fe1be46a994272793\r\n\r\n",
        count => $n, concurrency => 4);
    return scalar grep { ($_->{status} // 0) == 204 } @r;
}

run_tests();

__DATA__

=== TEST 1: 2 workers, a reload in the middle, every document accounted for
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=10ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        add_header X-Pid $pid;
        return 204;
    }
    location = /status {
        xray_status;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793
--- error_code: 204
--- burst: 199
--- burst_concurrency: 4
--- burst_check eval
sub {
    my ($res) = @_;
    my %pids = map { $_->{headers}{'x-pid'} => 1 } @$res;
    is(scalar keys %pids, 2, 'both workers served');

    my $sampled = 'nginx_xray_requests_total{outcome="sampled"}';
    my $queued = 'nginx_xray_documents_queued_total';
    my $sent = 'nginx_xray_documents_sent_total';

    # until the 10ms flush timers have run
    my $s;
    XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{$sent} // 0) >= 200;
    });
    is($s->{$sampled}, 200, '200 sampled, over both workers');
    is($s->{$queued}, 200, '200 documents queued');
    is($s->{$sent}, 200, 'and all sent');

    # a reload: new workers, same shared memory
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    CORE::chomp(my $master = <$fh>);
    ok(kill('HUP', $master), 'reload');
    my $after;
    XRayTest::wait_until(sub {
        my ($r) = XRayTest::http_requests(
            request => "GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n");
        $after = $r->{headers}{'x-pid'};
        $after && !$pids{$after};
    }, timeout => 30);
    ok($after && !$pids{$after}, 'new workers answer');

    is(main::traffic(50), 50, '50 more requests');
    XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{$sent} // 0) >= 250;
    });
    is($s->{$sampled}, 250, 'the counters went on from 200');
    is($s->{$queued}, $s->{$sent}, 'every queued document was sent');
    is($s->{$sent}, 250, '250 documents in all');

    my @d = XRayTest::sink_datagrams(min_count => 250);
    is(scalar @d, 250, 'and the daemon received all 250');
}
