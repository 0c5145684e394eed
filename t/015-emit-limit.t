# xray_emit_limit: a budget of documents a second for the whole instance,
# shared by the workers in shared memory.  Under it, 2 workers send at most
# N a second between them (not 2N); what is over it is dropped and counted,
# and every document is either sent or counted.

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use JSON::PP ();

master_on();
workers(2);
log_level('warn');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';

sub status {
    my ($r) = XRayTest::http_requests(
        request => "GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my %v;
    $v{$1} = $2 while ($r->{body} // '') =~ /^(\S+) (\d+)$/mg;
    return \%v;
}

# the status once the emitters flushed: queued (counted when a batch goes)
# plus held back make $total, or 10 s passed
sub settled {
    my ($total) = @_;
    my $s;
    for (1 .. 100) {
        $s = status();
        my $over = $s->{'nginx_xray_documents_dropped_total{cause="emit_limit"}'}
                   // 0;
        last if ($s->{nginx_xray_documents_queued_total} // 0) + $over
                >= $total;
        select undef, undef, undef, 0.1;
    }
    return $s;
}

sub traffic {
    my ($count) = @_;
    return XRayTest::http_requests(
        request => "GET /t HTTP/1.0\r\nHost: localhost\r\n"
                   . "X-Amzn-Trace-Id: Root=$::Root\r\n\r\n",
        count => $count, concurrency => 8, timeout => 60);
}

# The budget is taken by the second of the worker's clock, the time it
# last woke up, which for these requests (answered at once) is the second
# of their start_time; a worker whose clock lags the other's takes from
# the newer second's window.  A document that arrived within the second
# of its start_time was taken from that second's window, at most N: the
# newer one had not begun.  {second => [documents, those that arrived
# within it]}, from sink_datagrams(timed => 1).
sub per_second {
    my ($dgrams) = @_;
    my %n;
    for my $d (@$dgrams) {
        my ($bytes, $arrived) = @$d;
        my (undef, $body) = split /\n/, $bytes, 2;
        my $doc = JSON::PP::decode_json($body);
        my $sec = int $doc->{start_time};
        $n{$sec}[0]++;
        $n{$sec}[1] += $arrived < $sec + 1 ? 1 : 0;
    }
    return \%n;
}

run_tests();

__DATA__

=== TEST 1: 2 workers, xray_emit_limit 5: at most 5 a second in all
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_emit_limit 5;
--- config
    location /t {
        xray on;
        add_header X-Pid $pid;
        add_header X-Msec $msec;
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
    my @r = main::traffic(400);
    is(scalar(grep { ($_->{status} // 0) == 204 } @r), 400,
       'all 400 requests answered');
    my %pids = map { $_->{headers}{'x-pid'} => 1 } @r;
    is(scalar keys %pids, 2, 'both workers served them');
    my @msec = sort { $a <=> $b } map { $_->{headers}{'x-msec'} } @r;
    my $spanned = int($msec[-1]) - int($msec[0]) + 1;

    my $s = main::settled(400);
    my $queued = $s->{nginx_xray_documents_queued_total};
    my $over = $s->{'nginx_xray_documents_dropped_total{cause="emit_limit"}'};
    is($queued + $over, 400, "every segment queued ($queued) or over the "
                             . "limit ($over)");
    ok($queued >= 5 && $queued <= 5 * ($spanned + 1),
       "$queued queued over $spanned second(s)");

    my @d = XRayTest::sink_datagrams(min_count => $queued, timeout => 10,
                                     timed => 1);
    is(scalar @d, $queued, 'the daemon got exactly what was queued');
    my $n = main::per_second(\@d);
    ok(!grep({ $_->[1] > 5 } values %$n),
       'never 2 x 5 in a second: at most 5 of a second arrived within it')
        or diag explain $n;
}
--- no_error_log
[error]
[alert]



=== TEST 2: xray_emit_limit off: nothing held back
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_emit_limit off;
--- config
    location /t {
        xray on;
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
    my @r = main::traffic(60);
    is(scalar(grep { ($_->{status} // 0) == 204 } @r), 60, 'answered');
    my $s = main::settled(60);
    is($s->{nginx_xray_documents_queued_total}, 60, 'all 60 queued');
    is($s->{'nginx_xray_documents_dropped_total{cause="emit_limit"}'}, 0,
       'none over a limit');
}



=== TEST 3: xray_emit_limit 1, the lowest: one a second
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_emit_limit 1;
--- config
    location /t {
        xray on;
        add_header X-Msec $msec;
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
    my @r = main::traffic(30);
    my @msec = sort { $a <=> $b } map { $_->{headers}{'x-msec'} } @r;
    my $spanned = int($msec[-1]) - int($msec[0]) + 1;
    my $s = main::settled(30);
    my $queued = $s->{nginx_xray_documents_queued_total};
    ok($queued >= 1 && $queued <= $spanned + 1,
       "$queued queued over $spanned second(s)");
    is($queued + $s->{'nginx_xray_documents_dropped_total{cause="emit_limit"}'},
       30, 'the rest counted');
}



=== TEST 4: the highest limit is taken
--- http_config
    xray_emit_limit 1000000;
--- config
    location /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204



=== TEST 5: 0 is not a limit
--- http_config
    xray_emit_limit 0;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid xray_emit_limit "0": it must be "off" or a number of documents a second from 1 to 1000000\E}



=== TEST 6: over the highest
--- http_config
    xray_emit_limit 1000001;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid xray_emit_limit "1000001": it must be "off"\E}



=== TEST 7: not a number
--- http_config
    xray_emit_limit 5/s;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid xray_emit_limit "5/s"\E}



=== TEST 8: twice
--- http_config
    xray_emit_limit 5;
    xray_emit_limit 6;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*\Q"xray_emit_limit" directive is duplicate\E}



=== TEST 9: an http-level directive
--- config
    location /t {
        xray_emit_limit 5;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Q"xray_emit_limit" directive is not allowed here\E}
