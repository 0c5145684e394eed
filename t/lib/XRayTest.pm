package XRayTest;

# Test support for ngx_http_xray's Test::Nginx suites.
#
#     use Test::Nginx::Socket 'no_plan';
#     use XRayTest;
#
# Works with both test runners (this project's t/runner and the real
# openresty/test-nginx): it only uses add_block_preprocessor,
# add_response_body_check and plain Perl.
#
# Loading it:
#   * defaults $TEST_NGINX_UPSTREAM_PORT (1985), $TEST_NGINX_XRAY_DAEMON_PORT
#     (1986), $TEST_NGINX_REPO (the repository root), $TEST_NGINX_DATA
#     (<repo>/t/data) and $TEST_NGINX_HTML_DIR (<servroot>/html, where
#     --- user_files are written), and points AWS_XRAY_DAEMON_ADDRESS at the
#     sink;
#   * forks an echo HTTP upstream on 127.0.0.1:$TEST_NGINX_UPSTREAM_PORT
#     (see the "Echo upstream" section below for its paths);
#   * forks a UDP sink on 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT that records
#     every datagram (our stand-in for the X-Ray daemon);
#   * adds these block sections:
#       --- segments eval         sub { my ($docs, $raw) = @_; ... }
#       --- segment_count: N      exact number of datagrams (0 allowed)
#       --- segment_timeout: S    the most to wait for them (default 10)
#       --- burst: N              N more copies of the block's request
#       --- burst_concurrency: C  (default 1)
#       --- burst_timeout: S      bound for the whole burst (default 180)
#       --- burst_check eval      sub { my ($responses) = @_; ... }
#     The sink is cleared before every block, and a block without
#     --- user_files gets $TEST_NGINX_HTML_DIR/always.json (sample
#     everything) and never.json (sample nothing).
#
# After the block's last response (and only then, in each repeat_each round):
# first the burst, then the segment checks, so --- segment_count also counts
# what the burst's requests produced.
#   * segments: waits for the datagrams, then 2 tests (the count; every
#     datagram has the {"format":"json","version":1} header line and a
#     document valid against AWS's draft-4 schema in $TEST_NGINX_DATA), then
#     calls the sub with (\@documents, \@raw_datagrams): the decoded JSON
#     documents and the datagrams byte for byte.  Without --- segment_count at
#     least one datagram is expected; --- segment_count: 0 checks that nothing
#     arrived within the grace wait (0.3 s).
#   * burst: the sub gets (\@responses) in request order (the block's own
#     request is not among them), each { status, reason, headers => { lower
#     case name => value, repeats joined by ", " }, raw_headers, body,
#     elapsed, received (the epoch time it was complete), error (only when
#     it failed) }.  Without --- burst_check one test
#     checks that all N completed.
# Subs in "--- xxx eval" sections can call ok/is/like/... unqualified.
#
# Both servers are stopped when the test process exits, and stop by
# themselves if it dies.  Everything is quiet on success.

use strict;
use warnings;

use Cwd ();
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use File::Basename ();
use File::Path ();
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use IPC::Run ();
use JSON::PP ();
use List::Util qw(max min);
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_LINGER SO_RCVBUF);
use Test::More ();
use Time::HiRes qw(sleep time);

# Whichever Test::Nginx::Socket comes first in @INC (ours or the real one).
require Test::Nginx::Socket;

our $VERSION = '0.01';

our $LibDir   = File::Basename::dirname(Cwd::abs_path(__FILE__));
our $RepoRoot = Cwd::abs_path(File::Spec->catdir($LibDir, File::Spec->updir,
                                                 File::Spec->updir));

$ENV{TEST_NGINX_UPSTREAM_PORT}    //= 1985;
$ENV{TEST_NGINX_XRAY_DAEMON_PORT} //= 1986;
$ENV{TEST_NGINX_REPO} //= $RepoRoot;
# AWS's schema and the example documents: in the repository, nothing beside it
$ENV{TEST_NGINX_DATA} //= File::Spec->catdir($ENV{TEST_NGINX_REPO},
                                             't', 'data');
# Segments of a test without its own xray_daemon go to the sink, never to a
# real daemon on the default 127.0.0.1:2000 (a test file may set its own).
$ENV{AWS_XRAY_DAEMON_ADDRESS} = "127.0.0.1:$ENV{TEST_NGINX_XRAY_DAEMON_PORT}";
# Neither runner defines this one, but both export TEST_NGINX_SERVER_ROOT
# when they are loaded; --- user_files land in its html/ directory.
$ENV{TEST_NGINX_HTML_DIR} //= File::Spec->catdir(
    $ENV{TEST_NGINX_SERVER_ROOT} // File::Spec->rel2abs(File::Spec->catdir('t', 'servroot')),
    'html');

our $SchemaFile = File::Spec->catfile($ENV{TEST_NGINX_DATA},
                                      'xray-segmentdocument-schema-v1.0.0.json');
our $Validator  = File::Spec->catfile($LibDir, 'validate_segments.py');
our $Python     = $ENV{XRAYTEST_PYTHON} || 'python3';

# $TEST_NGINX_HTML_DIR/always.json samples everything, never.json nothing
our $RulesFiles = <<'_EOF_';
>>> always.json
{"version": 2, "default": {"fixed_target": 0, "rate": 1}}
>>> never.json
{"version": 2, "default": {"fixed_target": 0, "rate": 0}}
_EOF_

# Waits end when what they wait for has happened; the bounds only matter
# when it never does, so they are generous: a loaded machine is slow.
our $SegmentTimeout = 10;    # default bound for the expected datagrams
our $GraceWait      = 0.3;   # extra wait that catches unexpected datagrams
our $BurstTimeout   = 180;   # default bound for a whole --- burst

my $OwnerPid = $$;
my ($UpstreamPid, $SinkPid, $SinkDir, $SinkFile, $HeadsFile);
my $JSON = JSON::PP->new->utf8->allow_nonref;

# ---------------------------------------------------------------------------
# Helpers shared by the forked servers
# ---------------------------------------------------------------------------

# Bind with a few retries: the previous test file's servers may still be
# going away.
sub _bind_retry {
    my ($what, $make) = @_;
    my $err;
    for (1 .. 50) {
        my $sock = $make->();
        return $sock if $sock;
        $err = $! || $@;
        sleep 0.1;
    }
    die "XRayTest: cannot listen for the $what: $err "
        . "(is an old test process still running? try `pgrep -af XRayTest`)\n";
}

# The forked servers never return into the test program: no END blocks, no
# Test::Builder output, whatever happens.
sub _run_child {
    my ($code) = @_;
    eval { $code->(); 1 } or warn "XRayTest child $$: $@";
    POSIX::_exit(0);
}

sub _stop_server {
    my ($pid) = @_;
    return unless $pid;
    kill 'TERM', -$pid;    # its process group: connection handlers too
    kill 'TERM', $pid;
    my $deadline = time + 3;
    while (time < $deadline) {
        return if waitpid($pid, POSIX::WNOHANG()) != 0;
        sleep 0.01;
    }
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# ---------------------------------------------------------------------------
# Echo upstream
#
# HTTP/1.x server on 127.0.0.1:$TEST_NGINX_UPSTREAM_PORT, one forked handler
# per connection.  By default it answers 200, Content-Type: text/plain, with
# a body that is the exact request head it received (request line through the
# blank line), then closes.  Path prefixes, composable left to right (the rest
# of the path is ignored):
#   /status/NNN/...        answer with status NNN
#   /delay/MS/...          sleep MS milliseconds first
#   /sse/N/MS/...          text/event-stream, close-delimited: "event: hello"
#                          with data = the Last-Event-ID received, then N
#                          events "id: k" / "data: event k", MS ms apart
#   /reset/...             close with a TCP RST instead of answering
#   /hang/...              never answer (until the peer closes, max 60 s)
#   /header/Name/Value/... add that response header (URL-decoded)
#   /log/...               append the request head to a file first, for
#                          calls whose answer the client never sees
#                          (auth_request, mirror): upstream_heads() reads
#                          them back, in arrival order; cleared before every
#                          block
# ---------------------------------------------------------------------------

my %Reason = (
    100 => 'Continue', 200 => 'OK', 201 => 'Created', 202 => 'Accepted',
    204 => 'No Content', 206 => 'Partial Content',
    301 => 'Moved Permanently', 302 => 'Found', 303 => 'See Other',
    304 => 'Not Modified', 307 => 'Temporary Redirect', 308 => 'Permanent Redirect',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 405 => 'Method Not Allowed', 408 => 'Request Timeout',
    409 => 'Conflict', 413 => 'Payload Too Large', 429 => 'Too Many Requests',
    500 => 'Internal Server Error', 501 => 'Not Implemented', 502 => 'Bad Gateway',
    503 => 'Service Unavailable', 504 => 'Gateway Timeout',
);

sub _urldecode {
    my $s = shift;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

sub _start_upstream {
    my $port = $ENV{TEST_NGINX_UPSTREAM_PORT};
    my $lsock = _bind_retry("echo upstream on 127.0.0.1:$port", sub {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                              Proto => 'tcp', Listen => 128, ReuseAddr => 1);
    });
    my $pid = fork();
    die "XRayTest: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        _run_child(sub { _upstream_main($lsock, $port) });
    }
    close $lsock;
    $UpstreamPid = $pid;
}

sub _upstream_main {
    my ($lsock, $port) = @_;
    $0 = "XRayTest echo upstream 127.0.0.1:$port";
    setpgrp(0, 0);
    $SIG{CHLD} = 'IGNORE';    # the kernel reaps the connection handlers
    $SIG{PIPE} = 'IGNORE';
    my $owner = getppid();
    my $sel = IO::Select->new($lsock);
    while (1) {
        return if getppid() != $owner;    # the test process is gone
        next unless $sel->can_read(0.5);
        my $conn = $lsock->accept or next;
        my $kid = fork();
        if (!defined $kid) {              # out of processes: serve inline
            _serve_connection($conn);
            close $conn;
            next;
        }
        if ($kid == 0) {
            _run_child(sub {
                close $lsock;
                _serve_connection($conn);
                close $conn;
            });
        }
        close $conn;
    }
}

sub _write_all {
    my ($sock, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite $sock, $data, length($data) - $off, $off;
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

# Sleep in slices so that an orphaned handler notices its parent is gone.
sub _nap_ms {
    my ($ms, $parent) = @_;
    my $until = time + $ms / 1000;
    while ((my $left = $until - time) > 0) {
        return 0 if getppid() != $parent;
        sleep min($left, 0.2);
    }
    return 1;
}

sub _serve_connection {
    my ($conn) = @_;
    my $parent = getppid();
    setsockopt($conn, IPPROTO_TCP, TCP_NODELAY, 1);
    my $sel = IO::Select->new($conn);

    # the request head, byte for byte
    my $buf = '';
    my $deadline = time + 10;
    my $end;
    while (1) {
        if ($buf =~ /\r?\n\r?\n/) {
            $end = $+[0];
            last;
        }
        return if time > $deadline || length $buf > 1 << 20;
        next unless $sel->can_read(0.2);
        my $n = sysread $conn, $buf, 65536, length $buf;
        return unless $n;
    }
    my $head = substr $buf, 0, $end;
    my $rest = substr $buf, $end;
    my ($method, $target) = $head =~ /^(\S+)[ \t]+(\S+)/;
    return unless defined $target;

    _drain_request_body($conn, $sel, $head, $rest);

    my $path = $target;
    $path =~ s{^[A-Za-z][A-Za-z0-9+.-]*://[^/]*}{};    # absolute-form
    $path =~ s/[?#].*//s;
    my ($status, $mode, $sse_n, $sse_ms, @extra) = (200, 'echo');
    while (length $path) {
        if ($path =~ s{^/status/(\d{3})(?=/|$)}{}) {
            $status = $1;
        } elsif ($path =~ s{^/delay/(\d+)(?=/|$)}{}) {
            _nap_ms($1, $parent) or return;
        } elsif ($path =~ s{^/sse/(\d+)/(\d+)(?=/|$)}{}) {
            ($mode, $sse_n, $sse_ms) = ('sse', $1, $2);
        } elsif ($path =~ s{^/reset(?=/|$)}{}) {
            $mode = 'reset';
            last;
        } elsif ($path =~ s{^/hang(?=/|$)}{}) {
            $mode = 'hang';
            last;
        } elsif ($path =~ s{^/log(?=/|$)}{}) {
            # one write per record, as the sink does
            if (sysopen my $out, $HeadsFile, O_WRONLY | O_APPEND | O_CREAT) {
                syswrite $out, pack('N', length $head) . $head;
                close $out;
            }
        } elsif ($path =~ s{^/header/([^/]+)/([^/]*)(?=/|$)}{}) {
            push @extra, [_urldecode($1), _urldecode($2)];
        } else {
            last;
        }
    }

    if ($mode eq 'reset') {
        setsockopt($conn, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        close $conn;
        return;
    }
    if ($mode eq 'hang') {
        my $until = time + 60;
        while (time < $until && getppid() == $parent) {
            next unless $sel->can_read(0.2);
            my $n = sysread $conn, my $junk, 65536;
            last unless $n;    # the peer closed
        }
        return;
    }

    my $extra = join '', map { "$_->[0]: $_->[1]\r\n" } @extra;
    my $has_ct = grep { lc $_->[0] eq 'content-type' } @extra;
    my $status_line = "HTTP/1.1 $status " . ($Reason{$status} // 'Status') . "\r\n";

    if ($mode eq 'sse') {
        my ($last_id) = $head =~ /^Last-Event-ID:[ \t]*([^\r\n]*?)[ \t]*\r?$/mi;
        $last_id //= '';
        _write_all($conn, $status_line
                   . ($has_ct ? '' : "Content-Type: text/event-stream\r\n")
                   . $extra . "Connection: close\r\n\r\n")
            or return;
        _write_all($conn, "event: hello\ndata: $last_id\n\n") or return;
        for my $k (1 .. $sse_n) {
            _nap_ms($sse_ms, $parent) or return;
            _write_all($conn, "id: $k\ndata: event $k\n\n") or return;
        }
    } else {
        my $no_body = $status =~ /^(?:1\d\d|204|304)$/;
        my $resp = $status_line
            . ($has_ct ? '' : "Content-Type: text/plain\r\n")
            . ($no_body ? '' : 'Content-Length: ' . length($head) . "\r\n")
            . $extra . "Connection: close\r\n\r\n";
        $resp .= $head unless $no_body || $method eq 'HEAD';
        _write_all($conn, $resp) or return;
    }

    # Close politely: FIN first, then wait (briefly) for the peer's FIN so
    # that unread bytes never turn our close into an RST.
    shutdown $conn, 1;
    my $until = time + 1;
    while (time < $until) {
        next unless $sel->can_read(0.1);
        my $n = sysread $conn, my $junk, 65536;
        last unless $n;
    }
}

sub _drain_request_body {
    my ($conn, $sel, $head, $rest) = @_;
    my $deadline = time + 10;
    if ($head =~ /^Transfer-Encoding:[ \t]*chunked/mi) {
        while ($rest !~ /(?:^|\r\n)0[ \t]*(?:;[^\r\n]*)?\r\n(?:[^\r\n]+\r\n)*\r\n\z/) {
            return if time > $deadline;
            next unless $sel->can_read(0.2);
            my $n = sysread $conn, $rest, 65536, length $rest;
            return unless $n;
        }
    } elsif ($head =~ /^Content-Length:[ \t]*(\d+)/mi) {
        my $need = $1 - length $rest;
        while ($need > 0) {
            return if time > $deadline;
            next unless $sel->can_read(0.2);
            my $n = sysread $conn, my $chunk, min($need, 65536);
            return unless $n;
            $need -= $n;
        }
    }
}

# ---------------------------------------------------------------------------
# UDP sink (stand-in for the X-Ray daemon)
#
# Every datagram is appended to a file as a 4-byte big-endian length, the
# time it arrived (a native double, epoch seconds), then the datagram bytes.
# ---------------------------------------------------------------------------

sub _start_sink {
    my $port = $ENV{TEST_NGINX_XRAY_DAEMON_PORT};
    $SinkFile = File::Spec->catfile($SinkDir, 'datagrams.bin');
    open my $touch, '>', $SinkFile or die "XRayTest: cannot create $SinkFile: $!\n";
    close $touch;

    # No SO_REUSEADDR: two UDP sockets could then share the port and split
    # the datagrams between them.
    my $sock = _bind_retry("UDP sink on 127.0.0.1:$port", sub {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                              Proto => 'udp');
    });
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4 << 20);

    my $pid = fork();
    die "XRayTest: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        _run_child(sub { _sink_main($sock, $port) });
    }
    close $sock;
    $SinkPid = $pid;
}

sub _sink_main {
    my ($sock, $port) = @_;
    $0 = "XRayTest UDP sink 127.0.0.1:$port";
    setpgrp(0, 0);
    my $owner = getppid();
    sysopen my $out, $SinkFile, O_WRONLY | O_APPEND | O_CREAT
        or die "cannot open $SinkFile: $!";
    my $sel = IO::Select->new($sock);
    while (1) {
        if (getppid() != $owner) {
            # the test process died without its END block: clean up for it
            File::Path::remove_tree($SinkDir) unless $ENV{XRAYTEST_KEEP_SINK};
            return;
        }
        next unless $sel->can_read(0.5);
        my $from = recv $sock, my $dgram, 70000, 0;
        next unless defined $from;
        # one write per record, so a concurrent sink_clear() never sees half
        syswrite $out, pack('Nd', length $dgram, time) . $dgram;
    }
}

sub sink_file { return $SinkFile }

# upstream_heads(min_count => N, timeout => S): the request heads the echo
# upstream logged (/log/ paths) since the block began, waiting (at most S
# seconds, default 3) until at least N (default 0) are there.
sub upstream_heads {
    my %opt = @_;
    my $min = $opt{min_count} // 0;
    my $deadline = time + ($opt{timeout} // $SegmentTimeout);
    while (1) {
        my @heads;
        if (defined $HeadsFile && open my $in, '<:raw', $HeadsFile) {
            my $data = do { local $/; <$in> } // '';
            close $in;
            my $off = 0;
            while ($off + 4 <= length $data) {
                my $len = unpack 'N', substr($data, $off, 4);
                last if $off + 4 + $len > length $data;
                push @heads, substr($data, $off + 4, $len);
                $off += 4 + $len;
            }
        }
        return @heads if @heads >= $min || time >= $deadline;
        sleep 0.02;
    }
}

# Forget everything received so far.
sub sink_clear {
    truncate $SinkFile, 0 if defined $SinkFile;
}

sub _read_sink {
    my ($timed) = @_;
    return () unless defined $SinkFile;
    open my $in, '<:raw', $SinkFile or return ();
    my $data = do { local $/; <$in> } // '';
    close $in;
    my ($off, @dgrams) = (0);
    while ($off + 12 <= length $data) {
        my ($len, $arrived) = unpack 'Nd', substr($data, $off, 12);
        last if $off + 12 + $len > length $data;
        my $dgram = substr($data, $off + 12, $len);
        push @dgrams, $timed ? [$dgram, $arrived] : $dgram;
        $off += 12 + $len;
    }
    return @dgrams;
}

# sink_datagrams(min_count => N, timeout => S): the raw datagrams received
# since the last sink_clear(), waiting (at most S seconds, default 10) until
# at least N (default 0) are there.  With timed => 1, each is
# [bytes, the epoch time it arrived].
sub sink_datagrams {
    my %opt = @_;
    my $min = $opt{min_count} // 0;
    my $deadline = time + ($opt{timeout} // $SegmentTimeout);
    while (1) {
        my @d = _read_sink($opt{timed});
        return @d if @d >= $min || time >= $deadline;
        sleep 0.02;
    }
}

# wait_until(sub { ... }, timeout => S): calls the sub every 50 ms until it
# returns true (then returns that value) or S seconds (default 10) have
# passed (then returns its last, false, value).  For waiting on an event,
# such as a counter on the status page, instead of sleeping a fixed time.
# block_defaults(section => text, ...): every block of the suite gets these
# sections unless it has its own (a block preprocessor; the suite's own
# preprocessors still run)
sub block_defaults {
    my (%d) = @_;

    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        for my $k (sort keys %d) {
            my $v = $block->can($k) ? $block->$k : undef;
            $block->set_value($k, $d{$k}) if !defined $v;
        }
    });
}

sub wait_until {
    my ($cond, %opt) = @_;
    my $deadline = time + ($opt{timeout} // $SegmentTimeout);
    while (1) {
        my $v = $cond->();
        return $v if $v || time >= $deadline;
        sleep 0.05;
    }
}

# The second (epoch, an integer) in which nginx started a request, from a
# response that carries "add_header X-Msec $msec;" and "add_header
# X-Request-Time $request_time;": the sampling decision is taken in that
# second, whereas $msec alone is when the response header left, which on a
# loaded machine can be a second or more later.  Both variables read the
# same cached clock, so the difference is exact to the millisecond.
sub request_second {
    my ($r) = @_;
    my $msec = $r->{headers}{'x-msec'};
    my $rt = $r->{headers}{'x-request-time'};
    return undef unless defined $msec && defined $rt;
    my $start_ms = sprintf('%.0f', $msec * 1000) - sprintf('%.0f', $rt * 1000);
    return POSIX::floor($start_ms / 1000);
}

# Split a datagram on its first "\n" into the header line and the document.
# Returns { raw, header_line, header, header_error, body_text, body,
# body_error }; *_error are undef when that part is fine.
sub split_datagram {
    my ($raw) = @_;
    my %d = (raw => $raw);
    my $nl = index $raw, "\n";
    if ($nl < 0) {
        $d{header_line}  = $raw;
        $d{header_error} = 'no "\n" between the header line and the document';
        $d{body_error}   = 'no document';
        return \%d;
    }
    $d{header_line} = substr $raw, 0, $nl;
    $d{body_text}   = substr $raw, $nl + 1;

    my $h = eval { $JSON->decode($d{header_line}) };
    if (!defined $h || ref $h ne 'HASH') {
        $d{header_error} = "header line is not a JSON object: "
            . _shorten($d{header_line}, 200);
    } else {
        $d{header} = $h;
        # what the X-Ray daemon accepts: format "json" (any case), version 1
        if (!defined $h->{format} || ref $h->{format} || lc $h->{format} ne 'json'
            || !defined $h->{version} || ref $h->{version}
            || $d{header_line} !~ /"version"\s*:\s*1\s*[,}]/)
        {
            $d{header_error} = 'header must be {"format":"json","version":1}, got '
                . _shorten($d{header_line}, 200);
        }
    }

    if ($d{body_text} eq '') {
        $d{body_error} = 'empty document';
    } else {
        $d{body} = eval { $JSON->decode($d{body_text}) };
        if ($@) {
            ($d{body_error} = "document is not valid JSON: $@") =~ s/\s+\z//;
        } elsif (ref $d{body} ne 'HASH') {
            $d{body_error} = 'document is not a JSON object';
        }
    }
    return \%d;
}

# Same arguments as sink_datagrams(); each datagram split by split_datagram().
sub sink_documents {
    return map { split_datagram($_) } sink_datagrams(@_);
}

# Send one datagram to the sink (or to another local UDP port).
sub send_datagram {
    my ($bytes, $port) = @_;
    $port //= $ENV{TEST_NGINX_XRAY_DAEMON_PORT};
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Proto => 'udp')
        or die "XRayTest::send_datagram: $!\n";
    defined send($sock, $bytes, 0) or die "XRayTest::send_datagram: send: $!\n";
    close $sock;
}

# Raw text of one of the example documents in $TEST_NGINX_DATA/examples.
sub example_document {
    my ($file) = @_;
    my $path = File::Spec->catfile($ENV{TEST_NGINX_DATA}, 'examples', $file);
    open my $in, '<:raw', $path or die "XRayTest: cannot read $path: $!\n";
    my $text = do { local $/; <$in> };
    close $in;
    return $text;
}

# That example as a daemon datagram (header line + "\n" + document).
sub example_datagram {
    return qq({"format":"json","version":1}\n) . example_document(@_);
}

# ---------------------------------------------------------------------------
# Schema validation (t/lib/validate_segments.py, JSON Schema draft 4)
# ---------------------------------------------------------------------------

# validate_documents(@docs): each doc is JSON text (bytes) or a Perl data
# structure.  Returns the list of problems ("document K: /path: message"),
# empty when every document is valid.
sub validate_documents {
    my @texts = map {
        ref $_ ? JSON::PP->new->utf8->canonical->encode($_) : ($_ // '')
    } @_;
    return () unless @texts;
    my $in = join '', map { length($_) . "\n" . $_ } @texts;
    my ($out, $err) = ('', '');
    my $ran = eval {
        IPC::Run::run([$Python, $Validator, $SchemaFile], \$in, \$out, \$err,
                      IPC::Run::timeout(60));
        1;
    };
    return ("validator: cannot run $Python $Validator: $@") unless $ran;
    my $code = $? >> 8;
    my @problems = grep { /\S/ } split /\n/, $out;
    return () if $code == 0 && !@problems;
    push @problems, grep { /\S/ } split /\n/, $err;
    push @problems, "validator: exited with code $code" unless @problems;
    return @problems;
}

# ---------------------------------------------------------------------------
# Plain HTTP client for --- burst (and for direct use)
# ---------------------------------------------------------------------------

# A setting of the running Test::Nginx (both runners keep these package
# variables in Test::Nginx::Util: ServerAddr, ServerPortForClient, ...).
sub _runner_setting {
    my ($var) = @_;
    no strict 'refs';
    return ${"Test::Nginx::Util::$var"};
}

# Parse a raw HTTP/1.x response.  Returns { status, reason, headers (lower
# case name => value, repeated ones joined by ", "), raw_headers, body,
# complete }.
sub parse_http_response {
    my ($buf, $is_head) = @_;
    my %r = (status => undef, headers => {}, raw_headers => '', body => '',
             complete => 0);
    return \%r unless $buf =~ /\A(.*?\r?\n)\r?\n/s;
    my $head_end = $+[0];
    $r{raw_headers} = $1;
    my ($status_line, @lines) = split /\r?\n/, $r{raw_headers};
    if ($status_line =~ m{^HTTP/\d+\.\d+\s+(\d{3})(?:\s+(.*))?$}) {
        @r{qw(status reason)} = ($1 + 0, $2 // '');
    }
    for my $line (@lines) {
        my ($k, $v) = $line =~ /^([^:]+?)\s*:\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $r{headers}{$k} = exists $r{headers}{$k} ? "$r{headers}{$k}, $v" : $v;
    }
    my $raw_body = substr $buf, $head_end;
    my $status = $r{status} // 0;
    if ($is_head || $status =~ /^(?:1\d\d|204|304)$/) {
        $r{complete} = 1;
    } elsif (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my ($body, $pos) = ('', 0);
        while ($raw_body =~ /\G([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
            my $size = hex $1;
            $pos = pos $raw_body;
            if ($size == 0) {
                $r{complete} = 1 if $raw_body =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc;
                last;
            }
            last if $pos + $size + 2 > length $raw_body;
            $body .= substr $raw_body, $pos, $size;
            pos($raw_body) = $pos + $size + 2;
        }
        $r{body} = $body;
    } elsif (defined(my $len = $r{headers}{'content-length'})) {
        $r{body} = substr $raw_body, 0, $len;
        $r{complete} = 1 if length $raw_body >= $len;
    } else {
        $r{body} = $raw_body;    # close-delimited: complete at EOF
    }
    return \%r;
}

# http_requests(request => $bytes, count => N, concurrency => C,
#               timeout => S[, addr => A, port => P])
# Sends N copies of the request, each on a new connection, at most C at a
# time, to the nginx under test; the whole thing is bounded by S seconds.
# Returns N responses (see parse_http_response) in request order; a failed
# one has an "error" field.
sub http_requests {
    my %o = @_;
    my $req   = $o{request};
    my $n     = $o{count} // 1;
    my $conc  = max(1, min($o{concurrency} // 1, $n));
    my $addr  = $o{addr} // _runner_setting('ServerAddr') // '127.0.0.1';
    my $port  = $o{port} // _runner_setting('ServerPortForClient') // 1984;
    my $is_head = $req =~ /^\s*HEAD\s/ ? 1 : 0;
    my $deadline = time + ($o{timeout} // $BurstTimeout);

    local $SIG{PIPE} = 'IGNORE';
    my @res;
    my @queue = (0 .. $n - 1);
    my %active;    # fileno => { i, sock, buf, start }

    my $finish = sub {
        my ($c, $err) = @_;
        delete $active{ fileno $c->{sock} };
        close $c->{sock};
        my $r = parse_http_response($c->{buf}, $is_head);
        $r->{received} = time;
        $r->{elapsed} = $r->{received} - $c->{start};
        if (!$r->{complete} && !defined $err) {
            $err = !defined $r->{status} ? 'connection closed without a (complete) response'
                 : ($r->{headers}{'transfer-encoding'} // '') =~ /chunked/i
                                         ? 'connection closed inside the chunked body'
                 : defined $r->{headers}{'content-length'}
                                         ? 'connection closed before the whole body'
                 :                         undef;    # close-delimited body
            $r->{complete} = 1 unless defined $err;
        }
        $r->{error} = $err if defined $err;
        $res[$c->{i}] = $r;
    };

    while ((@queue || %active) && time < $deadline) {
        while (@queue && keys %active < $conc) {
            my $i = shift @queue;
            my $start = time;
            my $sock = IO::Socket::INET->new(
                PeerAddr => $addr, PeerPort => $port, Proto => 'tcp',
                Timeout => max(0.1, min(5, $deadline - time)));
            if (!$sock) {
                $res[$i] = { status => undef, headers => {}, raw_headers => '',
                             body => '', error => 'connect failed: ' . ($! || $@) };
                next;
            }
            if (!_write_all($sock, $req)) {
                $res[$i] = { status => undef, headers => {}, raw_headers => '',
                             body => '', error => "write failed: $!" };
                close $sock;
                next;
            }
            $sock->blocking(0);
            $active{ fileno $sock } = { i => $i, sock => $sock, buf => '', start => $start };
        }
        last unless %active;
        my $sel = IO::Select->new(map { $_->{sock} } values %active);
        for my $sock ($sel->can_read(max(0, min(0.5, $deadline - time)))) {
            my $c = $active{ fileno $sock } or next;
            my $got = sysread $sock, my $chunk, 65536;
            if (!defined $got) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                $finish->($c, "read failed: $!");
            } elsif ($got == 0) {
                $finish->($c, undef);
            } else {
                $c->{buf} .= $chunk;
                $finish->($c, undef)
                    if parse_http_response($c->{buf}, $is_head)->{complete};
            }
        }
    }
    my $limit = $o{timeout} // $BurstTimeout;
    $finish->($_, "not complete within ${limit}s") for values %active;
    for my $i (@queue) {
        $res[$i] = { status => undef, headers => {}, raw_headers => '', body => '',
                     error => "not sent: the burst did not finish within ${limit}s" };
    }
    return @res;
}

# The bytes of a block's (first) request, built like the runners do it:
# HTTP/1.1 by default, Host, Connection: close, --- more_headers,
# Content-Length for a trimmed body.
sub block_request_bytes {
    my ($block) = @_;
    if (defined(my $raw = $block->raw_request)) {
        return ref $raw eq 'ARRAY'
            ? join('', map { ref $_ ? $_->{value} : $_ } @$raw) : $raw;
    }
    my $req = $block->pipelined_requests ? $block->pipelined_requests->[0]
                                         : $block->request;
    $req = $req->[0] if ref $req eq 'ARRAY';
    $req = join '', map { ref $_ ? $_->{value} : $_ } @$req if ref $req eq 'ARRAY';
    return undef unless defined $req;
    1 while $req =~ s/^\s*\#[^\n]+\s+|^\s+//gs;

    my ($first, $content) = split /\n/, $req, 2;
    $content //= '';
    my ($meth, $uri, $ver) = split ' ', $first;
    $uri //= '/';
    $ver //= 'HTTP/1.1';

    my $more = $block->more_headers // '';
    $more = $more->[0] // '' if ref $more eq 'ARRAY';
    my ($hdrs, $chunked) = ('', 0);
    for my $line (split /\n+/, $more) {
        next if $line =~ /^\s*#/;
        my ($k, $v) = split /:\s*/, $line, 2;
        next unless defined $k && length $k;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $hdrs .= "$k: $v\r\n";
    }
    my $len = '';
    if (!$chunked && $content ne '' && $hdrs !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $len = 'Content-Length: ' . length($content) . "\r\n";
    }
    my $server_name = $block->server_name // _runner_setting('ServerName') // 'localhost';
    my $pre = '';
    $pre .= "Host: $server_name\r\n" unless $hdrs =~ /(?:^|\n)Host:/i;
    $pre .= "Connection: close\r\n" unless $hdrs =~ /(?:^|\n)Connection/i;
    return "$meth $uri $ver\r\n$pre$hdrs$len\r\n$content";
}

# ---------------------------------------------------------------------------
# Block sections
# ---------------------------------------------------------------------------

sub _shorten {
    my ($s, $max) = @_;
    $s //= '';
    $s =~ s/([\0-\011\013-\037\177])/sprintf '\\x%02x', ord $1/ge;
    return length $s > $max ? substr($s, 0, $max) . '...' : $s;
}

sub _describe_datagrams {
    my @raw = @_;
    return "no datagram received" unless @raw;
    my $i = 0;
    return join "\n", map { ++$i; "datagram $i (" . length($_) . " bytes): "
                                  . _shorten($_, 300) } @raw;
}

sub _num_requests {
    my ($block) = @_;
    return 1 if defined $block->raw_request;
    if (my $p = $block->pipelined_requests) {
        return ref $p eq 'ARRAY' ? scalar @$p : 1;
    }
    my $r = $block->request;
    return ref $r eq 'ARRAY' ? scalar @$r : 1;
}

sub _call_user_sub {
    my ($block, $section, @args) = @_;
    my $name = $block->name;
    my $sub = $block->$section;
    if (ref $sub ne 'CODE') {
        Test::More::fail("$name - --- $section must be Perl code returning a sub "
                         . "(write '--- $section eval')");
        return;
    }
    eval { $sub->(@args); 1 }
        or Test::More::fail("$name - --- $section died: $@");
}

sub run_burst {
    my ($block) = @_;
    my $name = $block->name;
    (my $n = $block->burst) =~ s/\s+//g;
    if ($n !~ /^\d+$/ || $n < 1) {
        Test::More::fail("$name - --- burst must be a positive number, got '$n'");
        return;
    }
    my $conc = $block->burst_concurrency // 1;
    $conc =~ s/\s+//g;
    my $timeout = $block->burst_timeout // $BurstTimeout;
    my $req = block_request_bytes($block);
    if (!defined $req) {
        Test::More::fail("$name - --- burst needs a --- request to repeat");
        return;
    }
    my @responses = http_requests(request => $req, count => $n,
                                  concurrency => $conc, timeout => $timeout);
    my @bad = grep { defined $responses[$_]{error} } 0 .. $#responses;
    if (@bad) {
        Test::More::fail("$name - burst: " . scalar(@bad) . " of $n requests failed");
        Test::More::diag(join "\n", map { "request " . ($_ + 1) . ": $responses[$_]{error}" }
                                    @bad[0 .. min(9, $#bad)]);
    }
    if (defined $block->burst_check) {
        _call_user_sub($block, 'burst_check', \@responses);
    } elsif (!@bad) {
        Test::More::pass("$name - burst: $n responses received");
    }
}

sub check_segments {
    my ($block) = @_;
    my $name = $block->name;

    my $want = $block->segment_count;
    if (defined $want) {
        $want =~ s/^\s+|\s+$//g;
        if ($want !~ /^\d+$/) {
            Test::More::fail("$name - --- segment_count must be a number, got '$want'");
            return;
        }
    }
    my $timeout = $block->segment_timeout // $SegmentTimeout;
    my $min = defined $want ? $want : 1;
    sink_datagrams(min_count => $min, timeout => $timeout) if $min > 0;
    sleep $GraceWait;
    my @raw = sink_datagrams();

    my $count_ok = defined $want ? @raw == $want : @raw >= 1;
    Test::More::ok($count_ok, "$name - segments: "
                   . (defined $want ? "exactly $want" : 'at least 1')
                   . " datagram(s) expected")
        or Test::More::diag("got " . scalar(@raw) . " datagram(s) in "
                            . ($timeout + $GraceWait) . "s:\n" . _describe_datagrams(@raw));

    my @split = map { split_datagram($_) } @raw;
    my @problems;
    for my $i (0 .. $#split) {
        push @problems, "datagram " . ($i + 1) . ": $split[$i]{header_error}"
            if defined $split[$i]{header_error};
    }
    if (@split) {
        # "document K" in the validator's messages is datagram K
        push @problems, map { s/^document (\d+):/datagram $1:/r }
            validate_documents(map { $_->{body_text} // '' } @split);
    }
    Test::More::ok(!@problems, "$name - segments: every datagram is a valid "
                   . "X-Ray daemon datagram and segment document")
        or Test::More::diag(join("\n", @problems[0 .. min(29, $#problems)])
                            . (@problems > 30 ? "\n..." : '') . "\n"
                            . _describe_datagrams(@raw));

    if (defined $block->segments) {
        _call_user_sub($block, 'segments', [map { $_->{body} } @split], \@raw);
    }
    sink_clear();    # a repeat_each() round starts empty again
}

# Runs after the built-in response checks of each response; acts on the
# last request of the block only.
sub _response_body_check {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $want_burst = defined $block->burst;
    my $want_segments = defined $block->segments || defined $block->segment_count;
    return unless $want_burst || $want_segments;
    return unless $req_idx == _num_requests($block) - 1;
    my $name = $block->name;
    if ($dry_run) {
        SKIP: {
            Test::More::skip("$name - XRayTest checks skipped due to $dry_run", 1);
        }
        return;
    }
    run_burst($block) if $want_burst;
    check_segments($block) if $want_segments;
}

# ---------------------------------------------------------------------------
# Stand-in X-Ray sampling API (t/lib/xray_sampling_api.py)
#
# Not started by default: a suite that needs it calls
#   XRayTest::start_sampling_api(\%config)
# which starts it on 127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT (1996), serving
# %config (see the script for its keys), and waits until it listens.
#   sampling_api_config(\%config)   what it serves from now on
#   sampling_api_requests()          the requests it received, decoded:
#                                    [{path, body, errors, ...}, ...]
#   sampling_api_clear()             forget them
#   sampling_api_post($path, $body)  a request of our own: (status, body)
#   stop_sampling_api()              stop it (a daemon that is away);
#                                    start_sampling_api() again starts it
#                                    with the same record
# It checks every request body against AWS's X-Ray API model
# (python3-botocore); stopped when the test process exits.
# ---------------------------------------------------------------------------

my ($ApiPid, $ApiDir);

$ENV{TEST_NGINX_SAMPLING_API_PORT} //= 1996;

sub sampling_api_config {
    my ($config) = @_;
    my $file = File::Spec->catfile($ApiDir, 'config.json');
    open my $out, '>', "$file.tmp" or die "XRayTest: $file.tmp: $!\n";
    print {$out} $JSON->encode($config);
    close $out;
    rename "$file.tmp", $file or die "XRayTest: $file: $!\n";
}

sub start_sampling_api {
    my ($config) = @_;
    my $port = $ENV{TEST_NGINX_SAMPLING_API_PORT};
    $ApiDir //= File::Temp::tempdir('xraytest-api-XXXXXX', TMPDIR => 1,
                                    CLEANUP => 1);
    sampling_api_config($config // {})
        if $config || !-e "$ApiDir/config.json";
    my $log = File::Spec->catfile($ApiDir, 'log');
    unlink $log;
    my $pid = fork();
    die "XRayTest: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        { exec $Python, File::Spec->catfile($LibDir, 'xray_sampling_api.py'),
               '--port', $port,
               '--config', File::Spec->catfile($ApiDir, 'config.json'),
               '--record', File::Spec->catfile($ApiDir, 'record.jsonl') }
        POSIX::_exit(127);
    }
    $ApiPid = $pid;
    my $deadline = time + 30;
    while (time < $deadline) {
        my $text = '';
        if (open my $in, '<', $log) {
            local $/;
            $text = <$in> // '';
        }
        return 1 if $text =~ /^listening/m;
        die "XRayTest: the stand-in sampling API did not start:\n$text"
            if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.05;
    }
    die "XRayTest: the stand-in sampling API did not listen within 30 s\n";
}

sub stop_sampling_api {
    return unless $ApiPid;
    kill 'TERM', $ApiPid;
    waitpid $ApiPid, 0;
    undef $ApiPid;
}

sub sampling_api_requests {
    my $file = File::Spec->catfile($ApiDir, 'record.jsonl');
    open my $in, '<', $file or return [];
    my @reqs;
    while (my $line = <$in>) {
        last unless $line =~ /\n\z/;    # a line being written
        push @reqs, $JSON->decode($line);
    }
    return \@reqs;
}

sub sampling_api_clear {
    truncate File::Spec->catfile($ApiDir, 'record.jsonl'), 0;
}

sub sampling_api_post {
    my ($path, $body) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_SAMPLING_API_PORT}",
        Timeout => 10) or die "XRayTest: cannot reach the sampling API: $!\n";
    print {$sock} "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\nConnection: close\r\n\r\n$body";
    my $reply = do { local $/; <$sock> } // '';
    my ($status) = $reply =~ m{^HTTP/1\.\d (\d+)};
    my ($content) = $reply =~ /\r\n\r\n(.*)\z/s;
    return ($status, $content);
}

# ---------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------

# Subs written in "--- xxx eval" sections are compiled by Test::Base in the
# package Test::Base::Filter: give them Test::More's assertions there.
{
    no strict 'refs';
    for my $f (qw(ok is isnt like unlike is_deeply cmp_ok pass fail diag note explain)) {
        *{"Test::Base::Filter::$f"} = \&{"Test::More::$f"}
            unless defined &{"Test::Base::Filter::$f"};
    }
}

unless ($ENV{XRAYTEST_NO_SERVERS}) {
    $SinkDir   = File::Temp::tempdir('xraytest-sink-XXXXXX', TMPDIR => 1,
                                     CLEANUP => 0);
    $HeadsFile = File::Spec->catfile($SinkDir, 'upstream-heads.bin');
    _start_upstream();
    _start_sink();
}

Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

    sink_clear();
    truncate $HeadsFile, 0 if defined $HeadsFile && -e $HeadsFile;

    # sampling rules any block may name, unless it brings its own files
    if (!defined $block->user_files) {
        $block->set_value('user_files', $RulesFiles);
    }
});

Test::Nginx::Socket::add_response_body_check(sub {
    _response_body_check(@_);
});

END {
    # Only the test process itself; forked helpers (ours, or the runner's
    # tcp_listen/udp_listen servers, which run END blocks) must not.
    if ($$ == $OwnerPid) {
        local $?;
        _stop_server($UpstreamPid);
        _stop_server($SinkPid);
        if ($ApiPid) {
            kill 'TERM', $ApiPid;
            waitpid $ApiPid, 0;
        }
        File::Path::remove_tree($SinkDir)
            if defined $SinkDir && !$ENV{XRAYTEST_KEEP_SINK};
    }
}

1;
