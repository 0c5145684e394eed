package Test::Nginx::Socket;

# Project-local implementation of the Test::Nginx::Socket test scaffold
# (data-driven nginx tests on top of Test::Base), written from scratch for
# ngx_http_xray.  It accepts the same t/*.t files as openresty/test-nginx:
#
#     use Test::Nginx::Socket 'no_plan';
#     run_tests();
#     __DATA__
#     === TEST 1: ...
#     --- config
#     --- request
#     ...
#
# Selection is by include path: `prove -I t/runner ...` picks this one,
# `prove -I /path/to/test-nginx/lib ...` the real one.
#
# This file holds the client side: building the request(s) of a block,
# talking to nginx over a socket, parsing the response and running the
# response / error-log checks.  Settings, nginx.conf generation and process
# management live in Test::Nginx::Util.

use strict;
use warnings;
use v5.10.1;

# Subclass of Test::Base (like the real one), so that the __DATA__ syntax,
# the filters (eval, chomp, ...) and blocks() behave identically, and
# `use Test::Nginx::Socket 'no_plan'` / `tests => N` go through
# Test::Base::import.  Lower-case -base: no Spiffy source filter.
use Test::Base -base;

our $VERSION = '0.29';

use Digest::MD5 ();
use Digest::SHA ();
use Encode ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(max min);
use Test::LongString ();
use Time::HiRes qw(sleep time);

use Test::Nginx::Util;

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location use_hup
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_cleanup_handler
    add_response_body_check
);

{
    no warnings 'once';
    *run_test = \&Test::Nginx::Util::run_test;
}

$RunTestHelper         = \&run_test_helper;
$CheckErrorLog         = \&check_error_log;
$CheckShutdownErrorLog = \&check_shutdown_error_log;

our @ResponseBodyChecks;

# Callbacks get ($block, $body, $req_idx, $repeated_req_idx, $dry_run) after
# the built-in response body checks of every response.
sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}

sub set_http_config_filter ($) {
    $FilterHttpConfig = shift;
}

# ---------------------------------------------------------------------------
# Building requests
# ---------------------------------------------------------------------------

# --- more_headers text -> ("Key: value\r\n"..., $is_chunked)
sub parse_more_headers ($) {
    my ($in) = @_;
    my ($out, $is_chunked) = ('', 0);
    for my $header (split /\n+/, $in // '') {
        next if $header =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        next unless defined $key;
        $val //= '';
        $is_chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# Turn the "packets" of a --- request ("METH [URI [VERSION]]\n[body]", split
# anywhere) into the packets actually sent: normalised request line, the
# default Host/Connection headers, --- more_headers, Content-Length for a
# (trimmed) body.  Packet boundaries are kept at the same place relative to
# the original text, so a body split in two is still written in two writes.
sub build_request_from_packets ($$$$$) {
    my ($name, $more_headers, $is_chunked, $conn_header, $packets) = @_;
    my $orig = join '', map { $_ // '' } @$packets;

    my $nl = index $orig, "\n";
    my $first = $nl >= 0 ? substr($orig, 0, $nl + 1) : $orig;
    bail_out("$name - Request line should be non-empty") if $first eq '';
    $first =~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be 'meth [url "
                    . "[version]]' but got \"$first\".");
    my ($lead, $meth, $sp1, $url, $sp2, $ver, $sp3, $eol)
        = ($1, $2, $3, $4, $5 // '', $6, $7 // '', $8);
    my $content = substr $orig, length $first;

    my $len_header = '';
    my ($c_lead, $c_core, $c_trail) = ('', $content, '');
    if (!$is_chunked && $content ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/)
    {
        ($c_lead, $c_core, $c_trail) = $content =~ /\A(\s*)(.*?)(\s*)\z/s;
        $len_header = "Content-Length: " . length($c_core) . "\r\n";
    }

    $more_headers =~ s/(?<!\r)\n/\r\n/gs;
    my $headers = '';
    $headers .= "Host: $ServerName\r\n"
        if $more_headers !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: $conn_header\r\n"
        if $more_headers !~ /(?:^|\n)Connection/msi;
    $headers .= "$more_headers$len_header\r\n";

    # [original length, replacement text, kept verbatim?]
    my @pieces = (
        [length $lead, '', 0],
        [length $meth, $meth, 1],
        [length $sp1, ' ', 0],
        [defined $url ? length $url : 0, $url // '/', defined $url],
        [length $sp2, ' ', 0],
        [defined $ver ? length $ver : 0, $ver // 'HTTP/1.1', defined $ver],
        [length($sp3) + length($eol), "\r\n$headers", 0],
        [length $c_lead, '', 0],
        [length $c_core, $c_core, 1],
        [length $c_trail, '', 0],
    );
    my $new = join '', map { $_->[1] } @pieces;
    return [$new] if @$packets <= 1;

    # Map an offset in the original text to one in the new text.
    my $map = sub {
        my $pos = shift;
        my ($ostart, $nstart) = (0, 0);
        for my $p (@pieces) {
            my ($olen, $text, $keep) = @$p;
            if ($pos < $ostart + $olen) {
                return $nstart if $pos == $ostart;
                return $keep ? $nstart + ($pos - $ostart) : $nstart + length $text;
            }
            $ostart += $olen;
            $nstart += length $text;
        }
        return length $new;
    };

    my (@out, $off, $prev);
    ($off, $prev) = (0, 0);
    for my $i (0 .. $#$packets) {
        $off += length($packets->[$i] // '');
        my $cut = $i == $#$packets ? length $new : $map->($off);
        push @out, substr($new, $prev, $cut - $prev);
        $prev = $cut;
    }
    return \@out;
}

# Requests of a block: a list of requests, each a list of packets
# ({ value => bytes, delay_before => seconds }).
sub get_req_from_block ($) {
    my ($block) = @_;
    my $name = $block->name;
    my @req_list;

    if (defined(my $raw = $block->raw_request)) {
        if (ref $raw && ref $raw eq 'ARRAY') {
            push @req_list, [map { ref $_ ? {%$_} : { value => $_ } } @$raw];
        } else {
            push @req_list, [{ value => $raw }];
        }
        return \@req_list;
    }

    my $request;
    if (defined $block->request_eval) {
        Test::More::diag("$name - request_eval DEPRECATED. Use request eval instead.");
        $request = eval $block->request_eval;
        warn $@ if $@;
    } else {
        $request = $block->request;
        if (defined $request && !ref $request) {
            # leading comment lines and blank space are not part of it
            1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        }
    }

    my $more_headers = $block->more_headers // '';
    my $headers_for = sub {
        my ($i, $what) = @_;
        if (ref $more_headers eq 'ARRAY') {
            my $h = $more_headers->[$i];
            bail_out("--- more_headers lacks data for the $what") unless defined $h;
            return parse_more_headers($h);
        }
        return parse_more_headers($more_headers);
    };

    if (my $reqs = $block->pipelined_requests) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my ($hdr, $chunked) = $headers_for->($i, "${i}th pipelined request");
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $all .= build_request_from_packets($name, $hdr, $chunked, $conn,
                                               [$reqs->[$i]])->[0];
        }
        push @req_list, [{ value => $all }];
        return \@req_list;
    }

    bail_out("$name - no --- request specified") unless defined $request;

    my @requests;
    if (!ref $request) {
        @requests = ($request);
    } elsif (ref $request eq 'ARRAY') {
        @requests = @$request;
    } else {
        bail_out("$name - invalid ---request : MUST be string or array of requests");
    }

    for my $i (0 .. $#requests) {
        my $one = $requests[$i];
        my ($hdr, $chunked) = $headers_for->($i, "${i}th request");
        if (!ref $one) {
            my $built = build_request_from_packets($name, $hdr, $chunked,
                                                   'close', [$one]);
            push @req_list, [{ value => $built->[0] }];
        } elsif (ref $one eq 'ARRAY') {
            my @orig = map {
                !ref $_             ? { value => $_ }
              : ref $_ eq 'HASH'    ? {%$_}
              : bail_out("$name - Invalid syntax. $_ should be a string or "
                         . "hash with value.")
            } @$one;
            my $built = build_request_from_packets(
                $name, $hdr, $chunked, 'close', [map { $_->{value} } @orig]);
            $orig[$_]{value} = $built->[$_] for 0 .. $#orig;
            push @req_list, \@orig;
        } else {
            bail_out("$name - Invalid syntax. $one should be a string or an "
                     . "array of packets.");
        }
    }
    return \@req_list;
}

# ---------------------------------------------------------------------------
# Talking to nginx
# ---------------------------------------------------------------------------

sub _connect {
    my ($addr, $port, $timeout, $name) = @_;
    # nginx normally listens already; retry briefly on "connection refused".
    my $deadline = time + 5;
    my $wait = 0.01;
    my $err;
    while (1) {
        my $sock = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port,
                                         Proto => 'tcp', Timeout => $timeout);
        return $sock if $sock;
        $err = $! || $@;
        last if time + $wait > $deadline;
        sleep $wait;
        $wait = min($wait * 2, 0.2);
    }
    Test::More::fail("$name - Can't connect to $addr:$port: $err (aborted)\n");
    return undef;
}

# Send one request (a list of packets) on a new connection and read until
# the server closes it.  --- timeout bounds the wait between two I/O events
# (like Test::Nginx); the whole exchange is additionally capped.
sub send_request ($$$$) {
    my ($req, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;

    my @bits = map { {%$_} } @$req;
    my $head_req = (join '', map { $_->{value} // '' } @bits) =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $addr = $block->server_addr_for_client // $ServerAddr;
    my $sock = _connect($addr, $ServerPortForClient, $timeout, $name)
        or return ('', $head_req);
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my $resp = '';
    my $wbuf = (shift @bits)->{value} // '';
    my $woff = 0;
    my $writing = 1;
    my $last_io = time;
    my $hard_deadline = time + max(30, 10 * $timeout);

    while (1) {
        my $now = time;
        my $left = $timeout - ($now - $last_io);
        if ($left <= 0 || $now > $hard_deadline) {
            _timeout_event($block, $name);
            last;
        }
        my $rsel = IO::Select->new($sock);
        my $wsel = $writing ? IO::Select->new($sock) : undef;
        my ($r, $w) = IO::Select->select($rsel, $wsel, undef, $left);
        next unless $r || $w;    # timeout or EINTR: re-evaluated above

        if ($r && @$r) {
            my $n = sysread $sock, my $buf, 65536;
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $buf;
            $last_io = time;
        }

        if ($writing && $w && @$w) {
            my $n = syswrite $sock, $wbuf, length($wbuf) - $woff, $woff;
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                # e.g. nginx answered early and closed: still read the answer
                warn "WARNING: $name - write failed: $!\n";
                $writing = 0;
                next;
            }
            $woff += $n;
            $last_io = time;
            next if $woff < length $wbuf;
            if (my $next = shift @bits) {
                my $delay = $next->{delay_before} // $middle_delay;
                sleep $delay if $delay;
                ($wbuf, $woff, $last_io) = ($next->{value} // '', 0, time);
            } else {
                $writing = 0;
                if (defined(my $how = $block->shutdown)) {
                    $how = 1 if $how =~ /^\s*$/s;
                    shutdown $sock, $how;
                }
            }
        }
    }
    close $sock;
    return ($resp, $head_req);
}

sub _timeout_event {
    my ($block, $name) = @_;
    return if defined $block->abort;
    Test::More::fail("ERROR: client socket timed out - $name\n");
}

# ---------------------------------------------------------------------------
# Parsing responses
# ---------------------------------------------------------------------------

# Returns ($res, $raw_headers, $left_over_bytes) or () after reporting a
# malformed chunked body.
sub parse_response ($$$) {
    my ($name, $raw_resp, $head_req) = @_;
    my $left;
    my $raw_headers = $raw_resp =~ /(.*?\r\n)\r\n/s ? $1 : '';

    my $res = HTTP::Response->parse($raw_resp);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');

    if (defined $enc && $enc eq 'chunked') {
        my $raw = $res->content // '';
        my $decoded = '';
        pos($raw) = 0;
        while (1) {
            if ($raw =~ /\G0[ \t]*(?:;[^\r\n]*)?\r\n(?:[^\r\n]+\r\n)*\r\n/gc) {
                $left = substr $raw, pos($raw) if pos($raw) < length $raw;
                last;
            }
            if ($raw =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
                my $size = hex $1;
                my $start = pos $raw;
                if ($start + $size > length $raw) {
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(not enough octets for the data section)");
                    return;
                }
                $decoded .= substr $raw, $start, $size;
                pos($raw) = $start + $size;
                if ($raw !~ /\G\r\n/gc) {
                    Test::More::fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
            } elsif ($raw =~ /\G(.+)/gcs) {
                Test::More::fail("$name - invalid chunked body received: "
                                 . show_all_chars(substr $1, 0, 200));
                return;
            } else {
                Test::More::fail("$name - no last chunk found - "
                                 . show_all_chars(substr $raw, 0, 200));
                return;
            }
        }
        $res->content($decoded);
    } elsif (defined $len && $len =~ /^\s*(\d+)\s*$/) {
        $len = $1;
        my $raw = $res->content // '';
        if (length $raw < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                . "but got " . length($raw) . "\n" unless $head_req;
        } elsif (length $raw > $len) {
            $left = substr $raw, $len;
            $res->content(substr $raw, 0, $len);
        }
    }
    return ($res, $raw_headers, $left);
}

# ---------------------------------------------------------------------------
# Running one block's requests and checks
# ---------------------------------------------------------------------------

sub run_test_helper ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $reqs = get_req_from_block($block);
    bail_out("$name - request empty") unless @$reqs;

    my $timeout = parse_time($block->timeout);
    $timeout = timeout() unless defined $timeout;

    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $res;
    my $req_idx = 0;

    for my $k (0 .. $#$reqs) {
        my ($raw_resp, $head_req);
        if ($dry_run) {
            ($raw_resp, $head_req) = ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
        } else {
            ($raw_resp, $head_req) = send_request($reqs->[$k],
                                                  $block->raw_request_middle_delay,
                                                  $timeout, $block);
        }

        # a pipelined request gets several responses on one connection
        my $nresp = $pipelined ? scalar @$pipelined : 1;
        for my $j (1 .. $nresp) {
            $raw_resp //= '';
            my ($raw_headers, $left);
            if (!defined $block->ignore_response) {
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, 'OK', [], $raw_resp);
                    $raw_headers = '';
                } else {
                    ($res, $raw_headers, $left) = parse_response($name, $raw_resp, $head_req);
                }
            }
            if ($pipelined) {
                $raw_resp = $left;
            } elsif (defined $left && length $left) {
                (my $shown = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk "
                    . "in response: \"$shown\"\n";
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $dry_run, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $dry_run, $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $dry_run, $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array);
            }

            my $is_last = $k == $#$reqs && $j == $nresp;
            if (!$is_last) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
                check_access_log($block, $dry_run, $repeated_req_idx)
                    unless defined $block->ignore_response;
            }
            $req_idx++;
        }
    }

    sleep $block->wait if $block->wait;
    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
    check_access_log($block, $dry_run, $repeated_req_idx)
        unless defined $block->ignore_response;
}

# Expected value for response number $req_idx: with several requests the
# section must be an array.
sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$req_idx] if ref $value && ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }
    if (ref $value && ref $value eq 'ARRAY') {
        bail_out("$name - SHOULD NOT HAPPEN: idx != 0 and don't need array.")
            if $req_idx != 0;
        return $value->[0];
    }
    return $value;
}

sub _is_text {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::is($got, $expected, $desc);
    Test::Nginx::Util::diag_diff($got, $expected) unless $ok;
    return $ok;
}

sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    SKIP: {
        Test::More::skip("$name - tests skipped due to $dry_run", 1) if $dry_run;
        my $got = ($res && $res->code) || '';
        if (defined $block->error_code_like) {
            my $val = get_indexed_value($name, $block->error_code_like, $req_idx, $need_array);
            Test::More::like($got, qr/$val/sm, "$name - status code ok");
        } elsif (defined $block->error_code) {
            Test::More::is($got, get_indexed_value($name, $block->error_code,
                                                   $req_idx, $need_array),
                           "$name - status code ok");
        } else {
            Test::More::is($got, 200, "$name - status code ok");
        }
    }
}

sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';
    for my $kind (qw(like unlike)) {
        my $val = $kind eq 'like' ? $block->raw_response_headers_like
                                  : $block->raw_response_headers_unlike;
        next unless defined $val;
        SKIP: {
            Test::More::skip("$name - raw_response_headers_$kind - tests skipped "
                             . "due to $dry_run", 1) if $dry_run;
            my $expected = get_indexed_value($name, $val, $req_idx, $need_array);
            if ($kind eq 'like') {
                Test::More::like($raw_headers, qr/$expected/s, "$name - raw resp headers like");
            } else {
                Test::More::unlike($raw_headers, qr/$expected/s, "$name - raw resp headers unlike");
            }
        }
    }
}

# --- response_headers: "Name: value" must match exactly (a missing header
# counts as ""), "!Name" must be absent from the raw headers.
# --- response_headers_like: "Name: regex" (anchored).
sub check_response_headers ($$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';
    if (defined $block->response_headers) {
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers,
                                                      $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key};
            SKIP: {
                Test::More::skip("$name - response_headers - tests skipped due to "
                                 . "$dry_run", 1) if $dry_run;
                if (!defined $val) {
                    Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                                       "$name - header $key not present in the raw headers");
                    next;
                }
                $val =~ s/\$ServerPort\b/$ServerPort/g;
                $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
                my $actual = $res ? $res->header($key) : undef;
                $actual //= '';
                Test::More::is($actual, $val, "$name - header $key ok");
            }
        }
    } elsif (defined $block->response_headers_like) {
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers_like,
                                                      $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key} // '';
            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';
            SKIP: {
                Test::More::skip("$name - response_headers_like - tests skipped due "
                                 . "to $dry_run", 1) if $dry_run;
                Test::More::like($actual, qr/^$val$/, "$name - header $key like ok");
            }
        }
    }
}

my %BodyFilters = (
    md5_hex  => sub { Digest::MD5::md5_hex($_[0]) },
    sha1_hex => sub { Digest::SHA::sha1_hex($_[0]) },
    uc       => sub { uc $_[0] },
    lc       => sub { lc $_[0] },
    ucfirst  => sub { ucfirst $_[0] },
    lcfirst  => sub { lcfirst $_[0] },
    length   => sub { length $_[0] },
);

sub _apply_body_filter {
    my ($block, $filter, $content) = @_;
    my $name = $block->name;
    return $filter->($content) if ref $filter eq 'CODE';
    if (!ref $filter) {
        my $f = $BodyFilters{$filter}
            or bail_out("$name - unknown filter, \"$filter\", specified in the "
                        . "--- response_body_filters section");
        return $f->($content);
    }
    bail_out("$name - the --- response_body_filters section only supports "
             . "subroutine reference values and string values");
}

# --- response_body_filters: names, code refs, or one list per request.
sub transform_response_body ($$$) {
    my ($block, $res, $req_idx) = @_;
    return unless defined $res;
    my $content = $res->content;
    return unless defined $content;
    my $filters = $block->response_body_filters;
    return unless defined $filters;
    my $name = $block->name;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    if (@$filters && ref $filters->[0] eq 'ARRAY') {
        for (@$filters) {
            bail_out("$name - the --- response_body_filters two-dimensional array "
                     . "only be like [[uc], [lc]] not [[uc], lc]") if ref $_ ne 'ARRAY';
        }
        $filters = $filters->[$req_idx];
        bail_out("$name - the ---response_body_filters two-dimensional array "
                 . "unmatch the specified request($req_idx)") unless defined $filters;
    }
    $content = _apply_body_filter($block, $_, $content) for @$filters;
    $res->content($content);
}

sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;
    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $expected;
        if ($block->response_body_eval) {
            Test::More::diag("$name - response_body_eval is DEPRECATED. Use "
                             . "response_body eval instead.");
            $expected = eval get_indexed_value($name, $block->response_body_eval,
                                               $req_idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, $block->response_body,
                                          $req_idx, $need_array);
        }
        Encode::from_to($expected, 'UTF-8', $block->charset) if $block->charset;
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        SKIP: {
            Test::More::skip("$name - response_body - tests skipped due to $dry_run", 1)
                if $dry_run;
            my $desc = "(repeated req $repeated_req_idx, req $req_idx)";
            if (ref $expected) {
                Test::More::like($content, $expected, "$name - response_body - like $desc");
            } elsif ($NoLongString) {
                _is_text($content, $expected, "$name - response_body - response is expected $desc");
            } else {
                my $ok = Test::LongString::is_string($content, $expected,
                    "$name - response_body - response is expected $desc");
                Test::Nginx::Util::diag_diff($content, $expected) unless $ok;
            }
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my ($patterns, $type) = defined $block->response_body_like
            ? ($block->response_body_like, 'like')
            : ($block->response_body_unlike, 'unlike');
        my $pat = get_indexed_value($name, $patterns, $req_idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $summary = trim($content) // '';
        SKIP: {
            Test::More::skip("$name - response_body_$type - tests skipped due to $dry_run", 1)
                if $dry_run;
            my $desc = "$name - response_body_$type - response is expected ($summary)";
            if ($type eq 'like') {
                Test::More::like($content, qr/$pat/s, $desc);
            } else {
                Test::More::unlike($content, qr/$pat/s, $desc);
            }
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $req_idx, $repeated_req_idx, $dry_run);
    }
}

# ---------------------------------------------------------------------------
# Log checks
# ---------------------------------------------------------------------------

sub fmt_str ($) {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;
    return $str;
}

sub value_contains {
    my ($val, $pat) = @_;
    return 0 unless defined $val;
    return index("$val", $pat) >= 0 if !ref $val || ref $val eq 'Regexp';
    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if value_contains($v, $pat);
        }
    }
    return 0;
}

# Section value -> list of patterns (one per line, or an eval'd array / qr).
sub _patterns {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub _line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

sub _diag_lines {
    my ($what, $lines) = @_;
    my @tail = @$lines > 30 ? @$lines[-30 .. -1] : @$lines;
    my $n = @$lines;
    Test::More::diag("$what ($n line" . ($n == 1 ? '' : 's')
                     . (@tail < $n ? ', last 30 shown' : '') . "):\n"
                     . (@tail ? join('', map { "    $_" } @tail) : "    (empty)\n"));
}

# Patterns that must each match at least one line.
sub _check_present {
    my ($name, $pats, $lines, $dry_run, $section, $file, $suffix) = @_;
    my @pending = @{ _patterns($pats) };
    my $missing = 0;
    for my $line (@$lines) {
        for my $pat (@pending) {
            next unless defined $pat;
            if (_line_matches($line, $pat)) {
                SKIP: {
                    Test::More::skip("$name - $section - tests skipped due to $dry_run", 1)
                        if $dry_run;
                    Test::More::pass("$name - pattern \"$pat\" matches a line in $file$suffix");
                }
                undef $pat;
            }
        }
    }
    for my $pat (grep { defined } @pending) {
        SKIP: {
            Test::More::skip("$name - $section - tests skipped due to $dry_run", 1)
                if $dry_run;
            Test::More::fail("$name - pattern \"$pat\" should match a line in $file$suffix");
            $missing++;
        }
    }
    _diag_lines("$file lines checked", $lines) if $missing;
}

# Patterns that must match no line.
sub _check_absent {
    my ($name, $pats, $lines, $dry_run, $section, $file, $suffix) = @_;
    my @pats = @{ _patterns($pats) };
    my %found;
    for my $i (0 .. $#$lines) {
        my $line = $lines->[$i];
        for my $pat (@pats) {
            next unless _line_matches($line, $pat);
            $found{$pat} = 1;
            SKIP: {
                Test::More::skip("$name - $section - tests skipped due to $dry_run ($line)", 1)
                    if $dry_run;
                my $more = join '', @$lines[$i + 1 .. min($i + 9, $#$lines)];
                Test::More::fail("$name - pattern \"" . fmt_str($pat) . "\" should not "
                                 . "match any line in $file but matches line \""
                                 . fmt_str($line) . "\"$suffix\n$more");
            }
        }
    }
    for my $pat (@pats) {
        next if $found{$pat};
        SKIP: {
            Test::More::skip("$name - $section - tests skipped due to $dry_run", 1)
                if $dry_run;
            Test::More::pass("$name - pattern \"" . fmt_str($pat) . "\" does not match "
                             . "a line in $file$suffix");
        }
    }
}

sub check_error_log ($$$$$) {
    my ($block, $res, $dry_run, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $lines;
    my $suffix = " (req $repeated_req_idx)";

    my %warn_about = map { $_ => 1 } qw(alert crit emerg);

    my $grep_pats = $block->grep_error_log;
    my $grep_pat;
    if (defined $grep_pats) {
        $grep_pat = ref $grep_pats && ref $grep_pats eq 'ARRAY'
            ? $grep_pats->[$repeated_req_idx] : $grep_pats;
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }
    if (defined $grep_pat) {
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = $expected->[$repeated_req_idx]
            if ref $expected && ref $expected eq 'ARRAY';
        SKIP: {
            Test::More::skip("$name - error_log - tests skipped due to $dry_run", 1) if $dry_run;
            $lines ||= error_log_data();
            my $matched = '';
            for my $line (@$lines) {
                my $m;
                if (ref $grep_pat) {
                    $m = $& if $line =~ /$grep_pat/;
                } elsif (index($line, $grep_pat) >= 0) {
                    $m = $grep_pat;
                }
                $matched .= "$m\n" if defined $m && $m !~ /\n/;
            }
            if (ref $expected eq 'Regexp') {
                Test::More::like($matched, $expected, "$name - grep_error_log_out$suffix");
            } elsif ($NoLongString) {
                _is_text($matched, $expected, "$name - grep_error_log_out$suffix");
            } else {
                my $ok = Test::LongString::is_string($matched, $expected,
                                                     "$name - grep_error_log_out$suffix");
                Test::Nginx::Util::diag_diff($matched, $expected) unless $ok;
            }
        }
    }

    for my $section (qw(error_log no_error_log)) {
        my $pats = $block->$section;
        next unless defined $pats;
        for my $level (keys %warn_about) {
            delete $warn_about{$level} if value_contains($pats, "[$level");
        }
        $lines ||= error_log_data();
        if ($section eq 'error_log') {
            _check_present($name, $pats, $lines, $dry_run, $section, 'error.log', $suffix);
        } else {
            _check_absent($name, $pats, $lines, $dry_run, $section, 'error.log', $suffix);
        }
    }

    return if $dry_run;
    $lines ||= error_log_data();
    for my $level (sort keys %warn_about) {
        for my $line (@$lines) {
            warn "WARNING: $name - " . fmt_str($line) . "\n" if $line =~ /\[\Q$level\E\]/;
        }
    }
    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            Test::More::fail("$name - $l\n");
        }
    }
}

sub check_access_log ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $lines;
    my $suffix = " (req $repeated_req_idx)";
    if (defined $block->access_log) {
        $lines ||= access_log_data();
        _check_present($name, $block->access_log, $lines, $dry_run, 'access_log',
                       'access.log', $suffix);
    }
    if (defined $block->no_access_log) {
        $lines ||= access_log_data();
        _check_absent($name, $block->no_access_log, $lines, $dry_run, 'no_access_log',
                      'access.log', $suffix);
    }
}

# --- shutdown_error_log / --- no_shutdown_error_log: run once nginx has
# been stopped (before the next block starts its own nginx, or at the end).
sub check_shutdown_error_log ($$) {
    my ($block, $dry_run) = @_;
    my $name = $block->name;
    my $lines = error_log_data();
    if (defined $block->no_shutdown_error_log) {
        _check_absent($name, $block->no_shutdown_error_log, $lines, $dry_run,
                      'no_shutdown_error_log', 'error.log', '');
    }
    if (defined $block->shutdown_error_log) {
        _check_present($name, $block->shutdown_error_log, $lines, $dry_run,
                       'shutdown_error_log', 'error.log', '');
    }
    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*? failed\.$/) {
            chomp(my $l = $line);
            Test::More::fail("$name - $l");
        }
    }
}

1;
__END__

=head1 NAME

Test::Nginx::Socket - ngx_http_xray's own implementation of the
Test::Nginx::Socket test scaffold

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';
    no_shuffle();
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location = /t { return 200 "hello\n"; }
    --- request
    GET /t
    --- response_body
    hello

=head1 DESCRIPTION

See t/runner/README.md for the supported sections and functions and for the
differences with openresty/test-nginx.

=cut
