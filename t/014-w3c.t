# W3C Trace Context: traceparent and tracestate in and out, bridged to
# X-Amzn-Trace-Id (xray_trace_formats, xray_propagate, $xray_traceparent).
# The echo upstream answers with the exact request head it received.
#
# The last block sends every case of t/oracle/corpus.json through the module
# and compares what the upstream received with what OpenTelemetry's own
# propagators (t/oracle/propagate.mjs, run here) extract from the client's
# headers and inject for the proxy's upstream call, case by case.

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use JSON::PP ();
use File::Temp ();

log_level('info');
no_shuffle();
no_long_string();

our $T    = '4bf92f3577b34da6a3ce929d0e0e4736';
our $S    = '00f067aa0ba902b7';
our $RT   = '1-4bf92f35-77b34da6a3ce929d0e0e4736';    # Root of $T
our $R    = '1-5759e988-bd862e3fe1be46a994272793';
our $RW   = '5759e988bd862e3fe1be46a994272793';       # trace id of $R
our $P    = '53995c3f42cd8ad8';
our $TP   = "00-$T-$S-01";
our $XR   = "Root=$R;Parent=$P;Sampled=1";

my $json = JSON::PP->new->utf8->canonical;
my $repo = $ENV{TEST_NGINX_REPO};

# the oracle: OpenTelemetry's propagators over a JSON array of cases
sub oracle {
    my ($cases) = @_;
    my $tmp = File::Temp->new(SUFFIX => '.json');
    print $tmp $json->encode($cases);
    close $tmp;
    my @out = `node $repo/t/oracle/propagate.mjs $tmp`;
    die "t/oracle/propagate.mjs failed (make deps-oracle?): $?\n" if $? != 0;
    my %by = map { my $o = $json->decode($_); ($o->{name} => $o) } @out;
    return \%by;
}

# the header lines of a request head, by lower-case name
sub lines_of {
    my ($head, $name) = @_;
    return map { /^[^:]+:[ \t]*(.*?)[ \t]*$/ ? $1 : () }
           grep { /^\Q$name\E:/i } split /\r\n/, $head;
}

# ---------------------------------------------------------------------------
# the corpus and what the module must do with each case, from the oracle's
# view of the client's headers and the documented differences ("module")

sub read_corpus {
    open my $f, '<', "$repo/t/oracle/corpus.json" or die "corpus: $!";
    local $/;
    return @{ $json->decode(<$f>) };
}

our @Cases = read_corpus();
our $Client = oracle(\@Cases);
our @Expect;
our (@Received, $Conflicts, $TpDropped, $TsDropped, $Sampled);

$Conflicts = $TpDropped = $TsDropped = $Sampled = 0;

# the fields of an X-Amzn-Trace-Id the module keeps, and its Root, Parent,
# Sampled (keys case-insensitive, whitespace around fields ignored)
sub xray_fields {
    my ($v) = @_;
    my (%f, @kept);
    for my $field (split /;/, $v) {
        $field =~ s/^[ \t]+|[ \t]+$//g;
        next unless length $field;
        my ($k, $val) = $field =~ /^([^=]*?)[ \t]*=[ \t]*(.*)$/ or next;
        if ($k =~ /^(root|parent|sampled|self)$/i) {
            $f{lc $k} = $val;
        } else {
            push @kept, $field;
        }
    }
    $f{kept} = join ';', @kept;
    return \%f;
}

for my $c (@Cases) {
    my $o = $Client->{$c->{name}} or die "no oracle answer for $c->{name}";
    my $m = $c->{module} // {};
    my $h = $c->{headers};
    my %e = (name => $c->{name});

    my $w3c_ok = $o->{w3c}{valid};
    my $xray_ok = exists $m->{xray} ? $m->{xray} : $o->{xray}{valid};
    my $x = defined $h->{'x-amzn-trace-id'} ? xray_fields($h->{'x-amzn-trace-id'})
                                            : undef;
    my $xt;
    if ($xray_ok) {
        ($xt = lc $x->{root}) =~ s/^1-([0-9a-f]{8})-([0-9a-f]{24})$/$1$2/
            or die "$c->{name}: no Root in an X-Ray case the module accepts";
    }

    $TpDropped++ if defined $h->{traceparent} && !$w3c_ok;

    if ($w3c_ok) {
        %e = (%e, context => 'w3c', trace_id => $o->{w3c}{trace_id},
              sampled => $o->{w3c}{sampled} ? 1 : 0,
              client_parent => $o->{w3c}{span_id});
        my $ts = exists $m->{tracestate} ? $m->{tracestate}
                                         : $o->{w3c}{tracestate};
        $e{tracestate} = (defined $ts && length $ts) ? $ts : undef;
        $TsDropped++ if exists $m->{tracestate} && !defined $m->{tracestate};
        if ($xray_ok) {
            if ($xt ne $e{trace_id}) {
                $e{conflict} = 1;
                $Conflicts++;
            } else {
                $e{kept} = $x->{kept};    # the same trace: Lineage goes on
            }
        }
    } elsif ($xray_ok) {
        %e = (%e, context => 'xray', trace_id => $xt, root => lc $x->{root},
              sampled => ($x->{sampled} // '') eq '1' ? 1 : 0,
              client_parent => $x->{parent}, kept => $x->{kept});
    } else {
        $e{context} = 'none';
    }

    $e{kept} //= '';
    $e{root} //= defined $e{trace_id}
        ? '1-' . substr($e{trace_id}, 0, 8) . '-' . substr($e{trace_id}, 8)
        : undef;
    $e{zero} = defined $e{trace_id} && $e{trace_id} =~ /^0+$/;
    $Sampled++ if $e{context} ne 'none' && $e{sampled};
    push @Expect, \%e;
}

# the request of each case: its headers, tracestate lines one by one
sub more_headers {
    my ($h) = @_;
    my @l;
    for my $k (sort keys %$h) {
        push @l, map { "$k: $_" } ref $h->{$k} ? @{ $h->{$k} } : ($h->{$k});
    }
    return join "\n", @l;
}

our @CorpusRequests = ((map { "GET /corpus/$_" } 0 .. $#Cases), 'GET /status');
our @CorpusHeaders  = ((map { more_headers($_->{headers}) } @Cases), '');

add_response_body_check(sub {
    my ($block, $body, $req_idx) = @_;
    $Received[$req_idx] = $body if $block->name =~ /corpus/;
});

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('segment_count', $Sampled) if $block->name =~ /corpus/;
});

# the comparison, once every case went through
sub check_corpus {
    my ($docs) = @_;
    my (@extract, @inject, %got);

    for my $i (0 .. $#Cases) {
        my $e = $Expect[$i];
        my $head = $Received[$i] // '';
        my $what = "corpus $i ($e->{name})";
        my @tp = lines_of($head, 'traceparent');
        my @ts = lines_of($head, 'tracestate');
        my @xr = lines_of($head, 'x-amzn-trace-id');

        if ($e->{context} eq 'none') {
            is(scalar(@tp) + scalar(@ts) + scalar(@xr), 0,
               "$what: no trace context: no trace header upstream")
                or diag($head);
            next;
        }

        is(scalar @xr, 1, "$what: one X-Amzn-Trace-Id") or next;
        my ($root, $u, $s, $kept) = $xr[0] =~
            /^Root=(1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24});Parent=([0-9a-f]{16});Sampled=([01])(?:;(.*))?$/
            or do { fail("$what: X-Amzn-Trace-Id well formed: $xr[0]"); next };
        is(lc $root, $e->{root}, "$what: X-Ray Root is the client's trace");
        is($s, $e->{sampled}, "$what: Sampled is the client's flag (trusted)");
        is($kept // '', $e->{kept}, "$what: X-Ray fields kept");

        if ($e->{zero}) {
            is(scalar @tp, 0, "$what: an all-zero trace has no W3C form");
        } else {
            is_deeply(\@tp, ["00-$e->{trace_id}-$u-0$s"],
                      "$what: one traceparent, the same trace and parent");
        }
        is_deeply(\@ts, [defined $e->{tracestate} ? $e->{tracestate} : ()],
                  "$what: tracestate");

        $got{$i} = { u => $u, root => $root };
        push @extract, { name => "$i", headers => {
            'x-amzn-trace-id' => $xr[0], (@tp ? (traceparent => $tp[0]) : ()),
            (@ts ? (tracestate => $ts[0]) : ()) } };
        push @inject, { name => "$i", inject => {
            trace_id => $e->{trace_id}, span_id => $u, sampled => $s + 0,
            (defined $e->{tracestate} ? (tracestate => $e->{tracestate}) : ()) } };
    }

    # what OpenTelemetry reads in what the upstream received, and what it
    # would itself inject for the same trace, parent and flag
    my $up = oracle(\@extract);
    my $in = oracle(\@inject);

    for my $i (sort { $a <=> $b } keys %got) {
        my $e = $Expect[$i];
        my $what = "corpus $i ($e->{name})";
        my $x = $up->{$i}{xray};
        my $w = $up->{$i}{w3c};
        my $want = $in->{$i}{inject};
        my $u = $got{$i}{u};

        if ($e->{zero}) {
            ok(!$x->{valid} && !$w->{valid},
               "$what: OpenTelemetry reads no context from an all-zero trace");
            next;
        }

        ok($w->{valid} && $x->{valid}, "$what: OpenTelemetry reads both formats upstream")
            or next;
        is($w->{trace_id}, $e->{trace_id}, "$what: W3C propagator: the client's trace");
        is(lc $x->{trace_id}, $e->{trace_id}, "$what: X-Ray propagator: the same trace");
        is($w->{span_id}, $u, "$what: W3C parent: the proxy's upstream call");
        is($x->{span_id}, $u, "$what: X-Ray parent: the same upstream call");
        is($w->{sampled} ? 1 : 0, $e->{sampled}, "$what: W3C sampled");
        is($x->{sampled} ? 1 : 0, $e->{sampled}, "$what: X-Ray sampled");
        is($w->{tracestate} // '', $e->{tracestate} // '',
           "$what: W3C propagator: tracestate");

        my $head = $Received[$i];
        is((lines_of($head, 'traceparent'))[0], $want->{traceparent},
           "$what: traceparent is what OpenTelemetry injects");
        my ($xr) = lines_of($head, 'x-amzn-trace-id');
        $xr =~ s/;(?!Parent=|Sampled=).*$//;
        is(lc $xr, lc $want->{'x-amzn-trace-id'},
           "$what: X-Amzn-Trace-Id is what the AWS X-Ray propagator injects");
    }

    # the segments: one per sampled case, the client's trace and parent,
    # the forwarded parent as the upstream call
    my %by_call = map { ($_->{subsegments}[0]{id} // '') => $_ } @$docs;
    for my $i (sort { $a <=> $b } keys %got) {
        my $e = $Expect[$i];
        next unless $e->{sampled};
        my $doc = $by_call{$got{$i}{u}};
        my $what = "corpus $i ($e->{name})";
        ok($doc, "$what: a segment whose upstream call is the forwarded parent")
            or next;
        is(lc $doc->{trace_id}, $e->{root}, "$what: segment trace_id");
        is($doc->{parent_id}, $e->{client_parent},
           "$what: segment parent_id is the client's");
    }
}

run_tests();

__DATA__

=== TEST 1: default (X-Ray only): traceparent and tracestate pass untouched, as before
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: 00-$::T-$::S-01
tracestate: rojo=1, congo=2
X-Amzn-Trace-Id: $::XR"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
traceparent: 00-$::T-$::S-01\r
tracestate: rojo=1, congo=2\r
X-Amzn-Trace-Id: Root=$::R;Parent=(?!$::P)[0-9a-f]{16};Sampled=0\r
\r
\z}
--- no_error_log
[error]
dropped



=== TEST 2: W3C in, X-Ray out: the client's trace as Root, the proxy's Parent; segment ids
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
tracestate: rojo=1"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=$::RT;Parent=(?!$::S)[0-9a-f]{16};Sampled=1\r
\r
\z}
--- segment_count: 1
--- segments eval
sub {
    my ($docs) = @_;
    is($docs->[0]{trace_id}, $::RT, 'segment: the W3C trace id as Root');
    is($docs->[0]{parent_id}, $::S, "segment: the client's span as parent");
    like($docs->[0]{subsegments}[0]{id}, qr/^[0-9a-f]{16}$/, 'an upstream call');
}
--- no_error_log
[error]
dropped



=== TEST 3: X-Ray in, both out: the same Parent in both; Lineage kept; the client's W3C headers not forwarded
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: $::XR;Lineage=10:1234abcd:3
traceparent: 00-$::T-$::S-01
tracestate: rojo=1"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=$::R;Parent=([0-9a-f]{16});Sampled=1;Lineage=10:1234abcd:3\r
traceparent: 00-$::RW-\1-01\r
\r
\z}
--- segment_count: 1
--- segments eval
sub {
    my ($docs) = @_;
    is($docs->[0]{trace_id}, $::R, 'segment: the X-Ray trace');
    is($docs->[0]{parent_id}, $::P, "segment: the client's Parent");
}
--- no_error_log
[error]



=== TEST 4: both, different traces, X-Ray first: X-Ray wins, the pair is counted and logged
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats xray w3c;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
tracestate: rojo=1
X-Amzn-Trace-Id: $::XR"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=$::R;Parent=([0-9a-f]{16});Sampled=1\r
traceparent: 00-$::RW-\1-01\r
\r
\z}
--- error_log eval
qr/\[info\] .*xray: conflicting trace contexts: X-Amzn-Trace-Id names $::R, traceparent names $::RT; using X-Amzn-Trace-Id/
--- no_error_log
[error]



=== TEST 5: both, different traces, W3C first: W3C wins, its tracestate goes on
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c xray;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
tracestate: rojo=1
X-Amzn-Trace-Id: $::XR;Lineage=10:1234abcd:3"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=$::RT;Parent=([0-9a-f]{16});Sampled=1\r
traceparent: 00-$::T-\1-01\r
tracestate: rojo=1\r
\r
\z}
--- error_log eval
qr/\[info\] .*xray: conflicting trace contexts: X-Amzn-Trace-Id names $::R, traceparent names $::RT; using traceparent/
--- no_error_log
[error]



=== TEST 6: both naming the same trace: no conflict; Lineage and tracestate both go on
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c xray;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: 00-$::RW-$::S-01
tracestate: rojo=1
X-Amzn-Trace-Id: Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=$::P;Sampled=0;Lineage=10:1234abcd:3"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=$::R;Parent=([0-9a-f]{16});Sampled=1;Lineage=10:1234abcd:3\r
traceparent: 00-$::RW-\1-01\r
tracestate: rojo=1\r
\r
\z}
--- no_error_log
[error]
conflicting



=== TEST 7: an invalid traceparent is dropped, logged, and never originates; its tracestate goes too
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: 00-$::T-0000000000000000-01
tracestate: rojo=1"
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
\r
\z
--- error_log
xray: dropped client's traceparent: all-zero parent-id
--- no_error_log
[error]



=== TEST 8: an invalid traceparent beside a valid X-Amzn-Trace-Id: X-Ray carries the trace
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c xray;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: 00-$::T-$::S-1
X-Amzn-Trace-Id: $::XR"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=$::R;Parent=([0-9a-f]{16});Sampled=1\r
traceparent: 00-$::RW-\1-01\r
\r
\z}
--- error_log
xray: dropped client's traceparent: traceparent shorter than 55 bytes
--- no_error_log
[error]



=== TEST 9: an invalid tracestate is dropped whole, the traceparent stays
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate w3c;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
tracestate: rojo=1,Congo=2"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
traceparent: 00-$::T-(?!$::S)[0-9a-f]{16}-01\r
\r
\z}
--- error_log
xray: dropped client's tracestate: bad tracestate key
--- no_error_log
[error]



=== TEST 10: several traceparent headers that differ are dropped
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate w3c;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
traceparent: 00-$::T-$::S-00"
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
\r
\z
--- error_log
xray: dropped client's traceparent: several different headers
--- no_error_log
[error]



=== TEST 11: the same traceparent twice counts once; tracestate lines are joined
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate w3c;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
tracestate: rojo=1
traceparent: $::TP
tracestate: ,congo=2 ,"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
traceparent: 00-$::T-[0-9a-f]{16}-01\r
tracestate: rojo=1,congo=2\r
\r
\z}
--- no_error_log
[error]
dropped



=== TEST 12: the client's flag is followed only when trusted
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate w3c;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location /trusted {
        xray on;
        xray_trace_formats w3c;
        xray_propagate w3c;
        xray_trust_client_sampling 1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
["GET /t", "GET /trusted"]
--- more_headers eval
["traceparent: $::TP", "traceparent: $::TP"]
--- response_body_like eval
[qr{traceparent: 00-$::T-[0-9a-f]{16}-00\r\n},
 qr{traceparent: 00-$::T-[0-9a-f]{16}-01\r\n}]
--- no_error_log
[error]



=== TEST 13: no context: nothing originated, nothing forwarded; with xray_originate both formats name the new trace
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location /originate {
        xray on;
        xray_originate on;
        xray_trace_formats w3c;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
["GET /t", "GET /originate"]
--- response_body_like eval
[qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
\r
\z},
qr{\AGET /originate HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=1\r
traceparent: 00-\1\2-\3-01\r
\r
\z}]
--- no_error_log
[error]



=== TEST 14: xray_propagate w3c: the client's X-Amzn-Trace-Id does not go on
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_propagate w3c;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: $::XR
traceparent: $::TP
tracestate: rojo=1"
--- response_body_like eval
qr{\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
traceparent: 00-$::RW-(?!$::P)[0-9a-f]{16}-01\r
\r
\z}
--- no_error_log
[error]



=== TEST 15: W3C propagated but not read, no X-Ray context: the client's W3C headers do not go on
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_propagate both;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"traceparent: $::TP
tracestate: rojo=1"
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
\r
\z
--- no_error_log
[error]



=== TEST 16: an all-zero X-Ray Root has no W3C form: X-Ray only
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_propagate both;
        add_header X-Traceparent "[$xray_traceparent]";
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=1
--- response_body_like chomp
\AGET /t HTTP/1\.0\r
Host: 127\.0\.0\.1:\d+\r
Connection: close\r
X-Amzn-Trace-Id: Root=1-00000000-000000000000000000000000;Parent=[0-9a-f]{16};Sampled=1\r
\r
\z
--- response_headers
X-Traceparent: []
--- no_error_log
[error]



=== TEST 17: $xray_traceparent is what goes upstream; empty without a trace
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate w3c;
        add_header X-Traceparent "[$xray_traceparent]";
        add_header X-Upstream-Id "[$xray_upstream_id]";
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["traceparent: $::TP", ""]
--- response_body_like eval
[qr{traceparent: 00-$::T-[0-9a-f]{16}-00\r\n}, qr{\A(?!.*traceparent)}s]
--- response_headers_like eval
["X-Traceparent: \\[00-$::T-[0-9a-f]{16}-00\\]", "X-Traceparent: \\[\\]"]
--- no_error_log
[error]



=== TEST 18: $xray_traceparent equals the forwarded traceparent, parent = $xray_upstream_id
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_propagate both;
        add_header X-Traceparent $xray_traceparent;
        add_header X-Upstream-Id $xray_upstream_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t
--- more_headers eval
"X-Amzn-Trace-Id: $::XR"
--- response_body_like eval
qr{traceparent: 00-$::RW-[0-9a-f]{16}-01\r\n}
--- raw_response_headers_like eval
qr{X-Traceparent: 00-$::RW-([0-9a-f]{16})-01\r\nX-Upstream-Id: \1\r\n}
--- no_error_log
[error]



=== TEST 19: xray_cors lists traceparent and tracestate where W3C is read, and only there
--- config
    location /w3c {
        xray on;
        xray_cors on;
        xray_trace_formats xray w3c;
        add_header Access-Control-Allow-Origin https://app.example.com;
        add_header Access-Control-Allow-Headers Content-Type;
        return 204;
    }
    location /xray {
        xray on;
        xray_cors on;
        add_header Access-Control-Allow-Origin https://app.example.com;
        add_header Access-Control-Allow-Headers Content-Type;
        return 204;
    }
--- request eval
["OPTIONS /w3c", "OPTIONS /xray", "GET /w3c"]
--- more_headers eval
[("Origin: https://app.example.com
Access-Control-Request-Method: GET
Access-Control-Request-Headers: traceparent, tracestate") x 2,
"Origin: https://app.example.com"]
--- error_code eval
[204, 204, 204]
--- raw_response_headers_like eval
[qr{\r\nAccess-Control-Allow-Headers: Content-Type, X-Amzn-Trace-Id, traceparent, tracestate\r\n},
 qr{\r\nAccess-Control-Allow-Headers: Content-Type, X-Amzn-Trace-Id\r\n},
 qr{\r\nAccess-Control-Expose-Headers: X-Amzn-Trace-Id, traceparent, tracestate\r\n}]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com",
 "Access-Control-Allow-Origin: https://app.example.com",
 "Access-Control-Allow-Origin: https://app.example.com"]
--- no_error_log
[error]



=== TEST 20: xray_trace_formats: only xray and w3c, each once
--- config
    location /t {
        xray_trace_formats xray b3;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid value "b3" in "xray_trace_formats" directive, it must be "xray" or "w3c"\E}



=== TEST 21: xray_trace_formats: a format named twice
--- config
    location /t {
        xray_trace_formats w3c w3c;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Q"w3c" named twice in "xray_trace_formats" directive\E}



=== TEST 22: xray_propagate: xray, w3c or both
--- config
    location /t {
        xray_propagate all;
    }
--- must_die
--- error_log eval
qr{\[emerg\] .*\Qinvalid value "all" in "xray_propagate" directive, it must be "xray", "w3c" or "both"\E}



=== TEST 23: counters: conflicts, W3C drops, the format of each context
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c xray;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location = /status {
        xray_status;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /t", "GET /status"]
--- more_headers eval
["traceparent: $::TP\nX-Amzn-Trace-Id: $::XR",
 "traceparent: 00-$::T-$::S-0x",
 "traceparent: $::TP\ntracestate: x",
 "X-Amzn-Trace-Id: $::XR",
 "X-Amzn-Trace-Id: Root=junk",
 ""]
--- response_body_like eval
[(qr/./) x 5,
 qr{nginx_xray_context_dropped_total 2
# HELP nginx_xray_context_format_total [^\n]+
# TYPE nginx_xray_context_format_total counter
nginx_xray_context_format_total\{format="xray"\} 1
nginx_xray_context_format_total\{format="w3c"\} 2
# HELP nginx_xray_context_conflicts_total [^\n]+
# TYPE nginx_xray_context_conflicts_total counter
nginx_xray_context_conflicts_total 1
# HELP nginx_xray_w3c_dropped_total [^\n]+
# TYPE nginx_xray_w3c_dropped_total counter
nginx_xray_w3c_dropped_total\{header="traceparent"\} 1
nginx_xray_w3c_dropped_total\{header="tracestate"\} 1
}]
--- no_error_log
[error]



=== TEST 24: corpus: the module against OpenTelemetry's propagators, case by case
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /corpus/ {
        xray on;
        xray_trace_formats w3c xray;
        xray_propagate both;
        xray_trust_client_sampling 1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
    location = /status {
        xray_status;
    }
--- request eval
\@::CorpusRequests
--- more_headers eval
\@::CorpusHeaders
--- response_body_like eval
[(qr/./) x @::Cases,
 qr{nginx_xray_context_conflicts_total $::Conflicts\n(?s:.*)nginx_xray_w3c_dropped_total\{header="traceparent"\} $::TpDropped\nnginx_xray_w3c_dropped_total\{header="tracestate"\} $::TsDropped\n}]
--- segment_timeout: 10
--- segments eval
sub { ::check_corpus(@_) }
--- no_error_log
[error]
