# Faults: a daemon that never drains its socket, an upstream that resets,
# a reload while traffic flows, and a soak with worker memory watched.
# Every request must still be answered, and every document accounted for.

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use IO::Socket::INET ();
use Socket qw(SOL_SOCKET SO_RCVBUF);

master_on();
workers(2);
log_level('warn');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';
our $Stuck = $ENV{TEST_NGINX_STUCK_PORT} //= 1995;

# a "daemon" that binds its port and never reads: its buffer fills up
our $stuck = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                   LocalPort => $Stuck, Proto => 'udp')
    or die "cannot bind udp 127.0.0.1:$Stuck: $!";
setsockopt($stuck, SOL_SOCKET, SO_RCVBUF, pack('i', 4096));

sub status {
    my ($r) = XRayTest::http_requests(
        request => "GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my %v;
    $v{$1} = $2 while ($r->{body} // '') =~ /^(\S+) (\d+)$/mg;
    return \%v;
}

sub traffic {
    my (%o) = @_;
    return XRayTest::http_requests(
        request => "GET /t HTTP/1.0\r\nHost: localhost\r\n"
                   . "X-Amzn-Trace-Id: Root=$::Root\r\n\r\n",
        count => $o{count}, concurrency => $o{concurrency} // 8,
        timeout => 300);
}

sub master_pid {
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    CORE::chomp(my $pid = <$fh>);
    return $pid;
}

sub worker_rss {
    my $master = master_pid();
    my $kb = 0;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my ($pid, $ppid) = (scalar <$fh>) =~ /^(\d+) \(.*\) \S (\d+)/s
            or next;
        next unless $ppid == $master;
        open my $st, '<', "/proc/$pid/status" or next;
        while (<$st>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

sub sanitized {
    my $bin = $ENV{NGINX_REAL_BINARY} || $ENV{TEST_NGINX_BINARY} || 'nginx';
    return `$bin -V 2>&1` =~ /-fsanitize=/;
}

run_tests();

__DATA__

=== TEST 1: a daemon that never drains: requests unaffected, counts add up
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_STUCK_PORT flush=10ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_annotation pad $http_x_pad;
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
    my @r = XRayTest::http_requests(
        request => "GET /t HTTP/1.0\r\nHost: localhost\r\nX-Amzn-Trace-Id: "
                   . "Root=$::Root\r\nX-Pad: " . ("p" x 900) . "\r\n\r\n",
        count => 3000, concurrency => 8, timeout => 300);
    is(scalar(grep { ($_->{status} // 0) == 204 } @r), 3000,
       'all 3000 requests answered');
    # until the flush timers have dealt with every queued document
    my ($s, $dropped);
    XRayTest::wait_until(sub {
        $s = main::status();
        $dropped = 0;
        $dropped += $s->{$_} for grep { /^nginx_xray_documents_dropped_total/ }
                                 keys %$s;
        ($s->{nginx_xray_documents_sent_total} // 0) + $dropped >= 3000;
    });
    is($s->{nginx_xray_documents_queued_total}, 3000, '3000 queued');
    is($s->{nginx_xray_documents_sent_total} + $dropped, 3000,
       'each one sent or counted as dropped');
}
--- no_error_log
[error]
[alert]



=== TEST 2: an upstream that resets: a fault with its cause, no crash
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=10ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/reset/;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: Root=$::Root;Sampled=1"
--- error_code: 502
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    ok($s->{fault}, 'fault');
    is($s->{cause}{exceptions}[0]{type}, 'UpstreamError', 'reset upstream');
}
--- error_log eval
qr/upstream prematurely closed|recv\(\) failed \(104: Connection reset by peer\)/



=== TEST 3: nginx -s reload while traffic flows: no request fails, no document is lost
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=10ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/5/;
    }
    location = /status {
        xray_status;
    }
--- request
GET /status
--- burst: 1
--- burst_check eval
sub {
    my $master = main::master_pid();
    my $kid = fork() // die;
    if ($kid == 0) {
        for (1 .. 3) {
            select undef, undef, undef, 0.4;
            kill 'HUP', $master;
        }
        POSIX::_exit(0);
    }
    my @r = main::traffic(count => 1500);
    waitpid $kid, 0;
    my @bad = grep { ($_->{status} // 0) != 200 } @r;
    is(scalar @bad, 0, '1500 requests across 3 reloads, none failed')
        or diag(explain [@bad[0 .. 2]]);

    # old workers flush what they queued as they exit
    my @d = XRayTest::sink_datagrams(min_count => 1500, timeout => 30);
    is(scalar @d, 1500, 'the daemon received a segment for each');
    my $s;
    XRayTest::wait_until(sub {
        $s = main::status();
        ($s->{nginx_xray_documents_sent_total} // 0) >= 1500;
    });
    is($s->{nginx_xray_documents_queued_total}, 1500, 'all queued');
    is($s->{nginx_xray_documents_sent_total}, 1500, 'all sent');
}



=== TEST 4: a 20 second soak: worker memory does not grow
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=10ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_annotation path $uri;
        xray_metadata agent $http_user_agent;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- burst: 1
--- burst_check eval
sub {
    # warm up, then compare the workers' memory over four more rounds
    main::traffic(count => 2000);
    my $before = main::worker_rss();
    my $n = 0;
    my $deadline = time + 20;
    for my $round (1 .. 40) {
        # two rounds whatever the time they take, then until the deadline
        last if $round > 2 && time > $deadline;
        $n += grep { ($_->{status} // 0) == 200 } main::traffic(count => 1000);
    }
    my $after = main::worker_rss();
    ok($n >= 2000, "$n more requests answered");
  SKIP: {
        # AddressSanitizer holds freed memory back on purpose (quarantine)
        Test::More::skip('nginx is built with a sanitizer: its memory says nothing', 1)
            if main::sanitized();
        ok($after - $before < 1024,
           "workers' memory grew by " . ($after - $before) . " KB (< 1 MB)")
            or diag("before $before KB, after $after KB");
    }
}
