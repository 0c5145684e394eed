# Centralized sampling when the daemon's proxy is away: until the first
# rules arrive the local rules decide; an API that is down (connection
# refused), slow (no answer within the call's timeout), answers garbage,
# HTTP 500 or closes the connection costs a counter of its kind, the
# centralized rules are kept for `fallback`, then the local rules decide
# again, and the centralized ones come back with the API.  Each switch is
# logged once at notice.  The ClientID outlives a reload (and a change of
# the configuration), not a restart.
#
# The centralized rule is "central", the local rules are always.json,
# whose default rule the segments name "default": each request's segment
# says which rules decided.

BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2025 }

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use XRayCentral;
use List::Util qw(max);
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

our @Rules = (rule('central', 1), rule('Default', 10000, FixedRate => 0));
our $FirstClientId;

XRayTest::start_sampling_api();

# the rule that decided for a new request (from its segment)
sub decided_by {
    XRayTest::sink_clear();
    my $r = XRayCentral::get(path => '/');
    return "answered $r->{status}" unless ($r->{status} // 0) == 204;
    my $trace = $r->{headers}{'x-trace'} // '';
    my $name = '(no segment)';
    XRayTest::wait_until(sub {
        for my $d (XRayTest::sink_datagrams()) {
            my $doc = XRayTest::split_datagram($d)->{body} or next;
            next unless ($doc->{trace_id} // '') eq $trace;
            $name = XRayCentral::rule_name_of($doc) // '(none)';
            return 1;
        }
        0;
    });
    return $name;
}

sub source {
    my ($s) = @_;
    return (metric($s, 'nginx_xray_sampling_source', source => 'centralized')
            // 0) == 1 ? 'centralized'
         : (metric($s, 'nginx_xray_sampling_source', source => 'local')
            // 0) == 1 ? 'local' : 'none';
}

sub errors {
    my ($s, $kind) = @_;
    my $n = 0;
    for my $call (qw(rules targets)) {
        $n += metric($s, 'nginx_xray_sampling_poll_errors_total',
                     call => $call, kind => $kind) // 0;
    }
    return $n;
}

# the last successful call, epoch seconds
sub last_success {
    my ($s) = @_;
    return max(map { metric($s, 'nginx_xray_sampling_last_success_seconds',
                            call => $_) // 0 } qw(rules targets));
}

sub switches {
    my ($s, $to) = @_;
    return metric($s, 'nginx_xray_sampling_switches_total', to => $to) // 0;
}

run_tests();

__DATA__

=== TEST 1: local rules first; down, slow, garbage, HTTP 500, closed: counted, kept for 3 s, local, and back
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized rules_interval=1s targets_interval=1s fallback=3s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_segment_name edge;
--- config
    location / {
        xray on;
        xray_originate on;
        add_header X-Trace $xray_trace_id always;
        return 204;
    }
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
{ rules => \@main::Rules, fault => 'http500' }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    # --- before the first rules ---
    my ($ok, $s) = XRayCentral::wait_status(sub {
        main::errors($_[0], 'http_status') >= 1 });
    ok($ok, 'an HTTP 500 from GetSamplingRules is counted as http_status')
        or diag $s->{text};
    is(main::source($s), 'local', 'no rules yet: local');
    is(main::decided_by(), 'default', 'the local rules decide');
    is(main::switches($s, 'centralized'), 0, 'no switch yet');

    XRayTest::sampling_api_config({ rules => \@main::Rules });
    ($ok, $s) = XRayCentral::wait_status(sub {
        main::source($_[0]) eq 'centralized' });
    ok($ok, 'the API answers: centralized') or diag $s->{text};
    is(main::decided_by(), 'central', 'the centralized rules decide');
    is(main::switches($s, 'centralized'), 1, 'one switch to centralized');

    my @faults = (
        [ 'HTTP 500', 'http_status', sub {
              XRayTest::sampling_api_config({ rules => \@main::Rules,
                                              fault => 'http500' }) } ],
        [ 'garbage', 'bad_reply', sub {
              XRayTest::sampling_api_config({ rules => \@main::Rules,
                                              fault => 'garbage' }) } ],
        [ 'a closed connection', 'closed', sub {
              XRayTest::sampling_api_config({ rules => \@main::Rules,
                                              fault => 'close' }) } ],
        [ 'nobody listening', 'connect', sub {
              XRayTest::stop_sampling_api() } ],
        [ 'no answer within the timeout', 'timeout', sub {
              XRayTest::sampling_api_config({ rules => \@main::Rules,
                                              fault => 'slow:30' }) } ],
    );
    my $n = 1;
    for my $f (@faults) {
        my ($what, $kind, $break) = @$f;
        $s = XRayCentral::status();
        my $errs = main::errors($s, $kind);
        my $to_local = main::switches($s, 'local');
        $break->();
        # requests keep the targets calls going
        ($ok, $s) = XRayCentral::wait_status(sub {
            XRayCentral::get(path => '/');
            main::errors($_[0], $kind) > $errs }, timeout => 20);
        ok($ok, "$what: counted as $kind") or diag $s->{text};
        if ($kind ne 'timeout') {
            # a timeout comes after its 5 s: past the fallback already.
            # The rules go when nginx's clock, in whole seconds, is 3 past
            # the last success: from just over 2 s after it, and the
            # first failure comes up to about 1 s after it.  The page that
            # first shows the failure shows them kept, unless it was
            # written once the fallback was due (a client that fell behind
            # on a loaded machine): its Date 3 s past the last success.
            my $due = ($s->{date} // 0) - main::last_success($s) >= 3;
            ok(main::source($s) eq 'centralized' || $due,
               "$what: rules kept" . ($due ? ' (the page came after the '
                                             . 'fallback was due)' : ''))
                or diag $s->{text};
        }
        ($ok, $s) = XRayCentral::wait_status(sub {
            XRayCentral::get(path => '/');
            main::source($_[0]) eq 'local' }, timeout => 20);
        my $since = time - main::last_success($s);
        ok($ok && $since >= 2,
           "$what: local rules after the 3 s fallback ($since s after the "
           . "last success)") or diag $s->{text};
        is(main::switches($s, 'local'), $to_local + 1, 'one switch to local');
        is(main::decided_by(), 'default', "$what: the local rules decide");

        if ($kind eq 'connect') {
            XRayTest::start_sampling_api({ rules => \@main::Rules });
        } else {
            XRayTest::sampling_api_config({ rules => \@main::Rules });
        }
        ($ok, $s) = XRayCentral::wait_status(sub {
            main::source($_[0]) eq 'centralized' }, timeout => 20);
        ok($ok, "$what: the API is back, centralized") or diag $s->{text};
        $n++;
        is(main::switches($s, 'centralized'), $n, "switch $n to centralized");
        is(main::decided_by(), 'central', 'the centralized rules decide');
    }

    # each switch logged once, at notice
    my @lines = grep { /\[notice\]/ && /sampling/ && /centralized|local/ }
                split /\n/, XRayCentral::error_log();
    is(scalar @lines, $n + @faults, scalar(@lines) . ' switches logged, '
                                    . ($n + @faults) . ' made')
        or diag CORE::join "\n", @lines;

    ($main::FirstClientId) = map { $_->{labels}{client_id} }
        @{ $s->{m}{nginx_xray_sampling_client_id} // [] };
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: the ClientID outlives a reload that changes the configuration
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
    xray_segment_name edge;
--- config
    location / {
        xray on;
        xray_originate on;
        add_header X-Pid $pid always;
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
        main::source($_[0]) eq 'centralized' });
    ok($ok, 'centralized') or diag $s->{text};
    my ($id) = map { $_->{labels}{client_id} }
               @{ $s->{m}{nginx_xray_sampling_client_id} // [] };
    like($id // '', qr/^[0-9a-f]{24}\z/, "ClientID $id");
    isnt($id, $main::FirstClientId, 'not the previous nginx\'s');

    my $reported = sub {
        my %ids;
        XRayTest::wait_until(sub {
            XRayCentral::get(path => '/');
            %ids = map { $_->{ClientID} => 1 }
                   map { @{ $_->{body}{SamplingStatisticsDocuments} // [] } }
                   @{ XRayCentral::api_calls('/SamplingTargets') };
            keys %ids;
        });
        return CORE::join ' ', sort keys %ids;
    };
    is($reported->(), $id, 'the statistics carry it');

    my %old = map { $_ => 1 } XRayCentral::worker_pids();
    is(scalar keys %old, 2, 'two workers');
    my $conf = "$ENV{TEST_NGINX_SERVER_ROOT}/conf/nginx.conf";
    my $text = do { local (@ARGV, $/) = $conf; <> };
    ok($text =~ s/targets_interval=1s/targets_interval=2s/,
       'the configuration changes');
    open my $out, '>', $conf or die "$conf: $!";
    print {$out} $text;
    close $out;
    ok(kill('HUP', XRayCentral::master_pid()), 'reload');
    ok(XRayTest::wait_until(sub {
           !grep { kill 0, $_ } keys %old }, timeout => 30),
       'the old workers are gone');
    my @new = XRayCentral::worker_pids();
    ok(@new == 2 && !grep({ $old{$_} } @new), 'two new workers');

    XRayTest::sampling_api_clear();
    is($reported->(), $id, 'the new workers report with the same ClientID');
    $s = XRayCentral::status();
    like($s->{text}, qr/^nginx_xray_sampling_client_id\{client_id="$id"\} 1$/m,
         'the status page shows the same');
    is(main::source($s), 'centralized', 'and the rules held');
}
--- no_error_log
[alert]
[crit]
[emerg]
