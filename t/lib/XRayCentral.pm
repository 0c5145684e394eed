package XRayCentral;

# Helpers for the centralized-sampling suites (t/071 onward).
#
#     BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2023 }
#     use Test::Nginx::Socket 'no_plan';
#     use XRayTest;
#     use XRayCentral;
#
# The suites configure nginx with XRayCentral::LOCATIONS-like locations:
# "/" originates a trace and decides on every request (xray_originate on),
# returns 204 (or what the path asks for, see the suites) with the decision
# and the times in headers; "/status" serves the status page.
#
#   --- sampling_api eval           what the stand-in serves from the start
#                                   of the block (its record is cleared)
#   rule($name, $priority, %over)   a SamplingRule, matching everything
#                                   unless %over says otherwise
#   status()                        the status page: { text, m => {name =>
#                                   [{labels => {..}, value}]}, date (its
#                                   Date header, epoch seconds: nginx's
#                                   clock when it was written) }
#   metric($status, $name, %labels) the value of one sample, or undef
#   wait_status(sub { my $s = shift; ... }, timeout => S)
#   get(path => .., host => .., method => .., headers => {..})
#                                   one request, its parsed response
#   traffic(seconds => S, concurrency => C, path => .., ...)
#                                   the same request over and over for S
#                                   seconds; the responses
#                                   (port => P: another server of the
#                                   configuration)
#   per_second(\@responses)         {second => [requests, sampled]}
#   api_calls($path)                what the stand-in received on $path
#   error_log()                     nginx's error log so far
#   master_pid(), worker_pids()      (the master alone without workers)
#   rss_kb($pid)
#   wait_segments(N)                at least N documents from the sink,
#                                   decoded

use strict;
use warnings;

use JSON::PP ();
use List::Util qw(sum0 max);
use Test::More ();
use Time::HiRes qw(sleep time);
use Time::Local ();

my $JSON = JSON::PP->new->utf8->canonical;

# A block's "--- sampling_api eval" (a hash: what the stand-in serves) is
# set, and the stand-in's record cleared, before the block's nginx starts.
Test::Nginx::Socket::add_block_preprocessor(sub {
    my ($block) = @_;
    my $c = eval { $block->sampling_api };
    if (defined $c) {
        XRayTest::sampling_api_config($c);
        XRayTest::sampling_api_clear();
    }
});

sub rule {
    my ($name, $priority, %over) = @_;
    return { RuleName => $name, RuleARN => "arn:aws:xray:::sampling-rule/$name",
             ResourceARN => '*', Priority => $priority, FixedRate => 1,
             ReservoirSize => 0, ServiceName => '*', ServiceType => '*',
             Host => '*', HTTPMethod => '*', URLPath => '*', Version => 1,
             %over };
}

# Prometheus text: name{k="v",...} value
sub status {
    my ($r) = XRayTest::http_requests(
        request => "GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n",
        timeout => 10);
    my %m;
    my $text = $r->{body} // '';
    for my $line (split /\n/, $text) {
        next if $line =~ /^#/;
        my ($name, $labels, $value) =
            $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/ or next;
        my %l;
        $l{$1} = $2 while ($labels // '') =~ /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g;
        push @{ $m{$name} }, { labels => \%l, value => $value };
    }
    return { text => $text, m => \%m, status => $r->{status},
             date => http_date($r->{headers}{date}) };
}

# "Mon, 30 Nov 2026 21:31:00 GMT": epoch seconds, or undef
sub http_date {
    my ($d) = @_;
    my %mon = (Jan => 0, Feb => 1, Mar => 2, Apr => 3, May => 4, Jun => 5,
               Jul => 6, Aug => 7, Sep => 8, Oct => 9, Nov => 10, Dec => 11);
    my ($day, $mon, $year, $h, $m, $s) = ($d // '')
        =~ /^\w{3}, (\d\d) (\w{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/
        or return undef;
    return undef unless exists $mon{$mon};
    return Time::Local::timegm($s, $m, $h, $day, $mon{$mon}, $year);
}

sub metric {
    my ($s, $name, %want) = @_;
    SAMPLE: for my $sample (@{ $s->{m}{$name} // [] }) {
        for my $k (keys %want) {
            next SAMPLE unless ($sample->{labels}{$k} // "\0") eq $want{$k};
        }
        # no other labels than the ones asked for
        next if keys %{ $sample->{labels} } != keys %want;
        return $sample->{value};
    }
    return undef;
}

sub wait_status {
    my ($cond, %o) = @_;
    my $last;
    my $ok = XRayTest::wait_until(sub { $last = status(); $cond->($last) },
                                  timeout => $o{timeout} // 20);
    return wantarray ? ($ok, $last) : $ok;
}

sub request_bytes {
    my (%o) = @_;
    my $method = $o{method} // 'GET';
    my $req = "$method " . ($o{path} // '/') . " HTTP/1.0\r\n"
            . 'Host: ' . ($o{host} // 'localhost') . "\r\n";
    for my $k (sort keys %{ $o{headers} // {} }) {
        $req .= "$k: $o{headers}{$k}\r\n";
    }
    $req .= "Content-Length: 0\r\n" if $method eq 'POST';
    return "$req\r\n";
}

sub get {
    my (%o) = @_;
    my ($r) = XRayTest::http_requests(request => request_bytes(%o),
                                      timeout => $o{timeout} // 30,
                                      $o{port} ? (port => $o{port}) : ());
    return $r;
}

# requests in batches until `seconds` have passed; every response
sub traffic {
    my (%o) = @_;
    my $req = request_bytes(%o);
    my $conc = $o{concurrency} // 4;
    my $until = time + $o{seconds};
    my @all;
    while (time < $until) {
        push @all, XRayTest::http_requests(request => $req, count => $conc * 4,
                                           concurrency => $conc, timeout => 30,
                                           $o{port} ? (port => $o{port}) : ());
        sleep $o{pause} if $o{pause};
    }
    return @all;
}

# second => [requests, sampled], by the second each request started in
sub per_second {
    my ($res) = @_;
    my %s;
    for my $r (@$res) {
        my $sec = XRayTest::request_second($r) // next;
        $s{$sec}[0]++;
        $s{$sec}[1] += ($r->{headers}{'x-sampled'} // '') eq '1' ? 1 : 0;
    }
    return \%s;
}

sub api_calls {
    my ($path) = @_;
    return [grep { !defined $path || $_->{path} eq $path }
            @{ XRayTest::sampling_api_requests() }];
}

# SamplingStatisticsDocuments of the targets calls, summed by rule:
# {rule => {RequestCount, SampledCount, BorrowCount}}
sub reported {
    my ($calls) = @_;
    my %r;
    for my $c (@$calls) {
        for my $d (@{ $c->{body}{SamplingStatisticsDocuments} // [] }) {
            $r{ $d->{RuleName} }{$_} += $d->{$_}
                for qw(RequestCount SampledCount BorrowCount);
        }
    }
    return \%r;
}

sub error_log {
    open my $in, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/error.log"
        or return '';
    local $/;
    return <$in> // '';
}

sub master_pid {
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub worker_pids {
    my $master = master_pid() or return ();
    my @pids;
    for my $dir (glob '/proc/[0-9]*') {
        open my $st, '<', "$dir/stat" or next;
        my $line = <$st> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @pids, $pid if $ppid == $master;
    }
    # master_process off: the one process is the worker
    return @pids ? @pids : ($master);
}

# the resident size of a process, kB
sub rss_kb {
    my ($pid) = @_;
    open my $st, '<', "/proc/$pid/status" or return 0;
    while (<$st>) {
        return $1 if /^VmRSS:\s+(\d+)/;
    }
    return 0;
}

sub wait_segments {
    my ($n, %o) = @_;
    my @d = XRayTest::sink_datagrams(min_count => $n,
                                     timeout => $o{timeout} // 20);
    return map { XRayTest::split_datagram($_)->{body} } @d;
}

sub rule_name_of {
    my ($doc) = @_;
    return $doc->{aws}{xray}{sampling_rule_name};
}

1;
