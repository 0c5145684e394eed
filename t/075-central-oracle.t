# nginx with `xray_sampling centralized` against AWS's own remote sampler
# (@opentelemetry/sampler-aws-xray, driven by t/oracle-sampler/driver.mjs):
# both fetch the same rules from the stand-in sampling API and see the same
# requests; each request's segment must name the rule the oracle picks
# (aws.xray.sampling_rule_name): the whole path, nginx's Host (without its
# port), method, normalised path without the query, request headers for
# Attributes, xray_segment_name for ServiceName.  Then, with t/013's rules
# and quota, both borrow 1 a second before a quota and take it after, at the
# same rates within each one's metering (the oracle's token bucket starts
# empty: S x rate or one second's worth less; nginx's calendar seconds: S x
# rate or one second's worth more), and report statistics of the same
# shape, valid for AWS's API model.  The oracle polls targets first 10 s
# after it starts, as it is built to: this suite takes ~20 s.

BEGIN { $ENV{TEST_NGINX_SAMPLING_API_PORT} = 2027 }

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use XRayCentral;
use File::Temp ();
use IPC::Run ();
use JSON::PP ();
use Time::HiRes ();

log_level('info');
no_shuffle();
no_long_string();
no_root_location();

our $JSON = JSON::PP->new->canonical;
my $node = $ENV{XRAYTEST_NODE} || 'node';
our $Driver = "$ENV{TEST_NGINX_REPO}/t/oracle-sampler/driver.mjs";
BAIL_OUT("t/oracle-sampler/node_modules is missing: run "
         . "`make sampling-oracle`")
    unless -e "$ENV{TEST_NGINX_REPO}/t/oracle-sampler/node_modules";

*rule = \&XRayCentral::rule;

# t/013's rules, every one sampling with FixedRate 1 so that each request
# leaves a segment
our @Rules = (
    rule('Default', 10000),
    rule('api', 10, Host => 'api.example.com'),
    rule('Api', 10, Host => 'api.*'),
    rule('zeta', 10, Host => '*.example.com'),
    rule('post', 5, HTTPMethod => 'POST'),
    rule('static', 7, URLPath => '/static/?/*'),
    rule('gold', 1, Attributes => { 'x-tier' => 'gold*' }),
    rule('other', 2, ServiceName => 'other'),
    rule('edge', 3, ServiceName => 'EDGE', HTTPMethod => 'DELETE'),
    rule('deep', 4, URLPath => '/a/*/c', HTTPMethod => 'PUT'),
);

my %req = (host => 'api.example.com', method => 'GET', path => '/v1/x');
# "query" and "port" are nginx's only: the oracle is given the path and the
# host, as OpenTelemetry's url.path and server.address have neither
our @Picks = (
    { %req },
    { %req, host => 'api.example.org' },
    { %req, host => 'www.example.com' },
    { %req, host => 'WWW.EXAMPLE.COM' },
    { %req, host => 'www.example.com', port => 8443 },
    { %req, host => 'www.example.org' },
    { %req, host => 'www.example.org', method => 'POST' },
    { %req, method => 'POST' },
    { %req, host => 'x', path => '/static/a/b.css' },
    { %req, host => 'x', path => '/static/ab/b.css' },
    { %req, host => 'x', path => '/static/a/b.css', query => 'v=/x' },
    { %req, host => 'x', method => 'DELETE' },
    { %req, headers => { 'x-tier' => 'GOLD-plus' } },
    { %req, headers => { 'X-Tier' => 'gold' } },
    { %req, headers => { 'x-tier' => 'silver' } },
    { %req, host => 'x', method => 'PUT', path => '/a/b/c' },
    { %req, host => 'x', method => 'PUT', path => '/a/c' },
    { %req, host => 'x', method => 'GET', path => '/a/b/c' },
);

# the same rules as t/013 for borrowing and quotas: nothing sampled by rate,
# 1 a second borrowed, and a quota of 4 for "Api"
our $Quota = 4;
our %Metered = (
    rules => [map { +{ %$_, FixedRate => 0, ReservoirSize => 1 } } @Rules],
    targets => { Api => { FixedRate => 0, ReservoirQuota => $Quota,
                          ReservoirQuotaTTLIn => 120, Interval => 10 } });
our %Borrow = (request => { %req, host => 'www.example.com' },    # zeta
               seconds => 3, every_ms => 50);
our %Take = (request => { %req, method => 'PUT' },                # Api
             seconds => 2, every_ms => 20);

# the oracle, before nginx starts: its picks, then with %Metered what it
# borrows, takes from the quota and reports
our ($Oracle, $OracleMetered, @OracleDocs);
sub oracle {
    my ($plan) = @_;
    my $dir = File::Temp::tempdir('xraytest-oracle-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    open my $out, '>', "$dir/plan.json" or die;
    print {$out} $JSON->encode({ service => 'edge', %$plan });
    close $out;
    my ($o, $e) = ('', '');
    IPC::Run::run([$node, $Driver,
                   "http://127.0.0.1:$ENV{TEST_NGINX_SAMPLING_API_PORT}",
                   "$dir/plan.json"], '<', \undef, '>', \$o, '2>', \$e,
                  IPC::Run::timeout(90))
        or diag "the oracle: $e";
    return eval { $JSON->decode($o) } // {};
}
XRayTest::start_sampling_api({ rules => \@Rules });
$Oracle = oracle({ picks => [map { my %p = %$_; delete @p{qw(query port)};
                                   \%p } @Picks] });
XRayTest::sampling_api_config(\%Metered);
XRayTest::sampling_api_clear();
$OracleMetered = oracle({ picks => [], borrow => \%Borrow, quota => \%Take });
@OracleDocs = map { @{ $_->{body}{SamplingStatisticsDocuments} // [] } }
              @{ XRayCentral::api_calls('/SamplingTargets') };
our @OracleErrors = map { @{ $_->{errors} } } @{ XRayCentral::api_calls() };

# nginx: the request every every_ms for seconds; how many were sampled,
# and {second => [requests, sampled]} by the second of each decision
# The module counts a quota per wall-clock second, and the requests that
# poll for the quota above take from the second they land in: start 0.1 s
# into the next second, so the phase spans whole seconds of its own (the
# bounds below count the seconds it touches).
sub paced {
    my ($phase) = @_;
    my $r = $phase->{request};
    my $t0 = Time::HiRes::time();
    Time::HiRes::sleep(int($t0) + 1.1 - $t0);
    my ($start, $n, $sampled, @res) = (Time::HiRes::time(), 0, 0);
    while (Time::HiRes::time() - $start < $phase->{seconds}) {
        my $res = XRayCentral::get(method => $r->{method}, host => $r->{host},
                                   path => $r->{path});
        push @res, $res;
        $sampled++ if ($res->{headers}{'x-sampled'} // '') eq '1';
        $n++;
        my $next = $start + $n * $phase->{every_ms} / 1000;
        my $wait = $next - Time::HiRes::time();
        Time::HiRes::sleep($wait) if $wait > 0;
    }
    return { requests => $n, sampled => $sampled,
             per_second => XRayCentral::per_second(\@res) };
}

# One worker takes min($cap, that second's requests) in each second the
# phase touched, whatever pace the client kept: true of every second, and
# the quota held something back in at least one.  The sum over S seconds is
# then $cap x S or one second's worth more when the client kept its pace
# (the phase starts 0.1 s into a second: S seconds touch S + 1); a client
# paused on a loaded machine sends fewer in some second, and the exact
# per-second count is what still holds.
sub per_second_ok {
    my ($p, $cap) = @_;
    my $ps = $p->{per_second};
    my ($exact, $limited, $counted) = (1, 0, 0);
    for my $sec (keys %$ps) {
        my ($n, $s) = @{ $ps->{$sec} };
        $exact = 0 if $s != ($n < $cap ? $n : $cap);
        $limited++ if $n > $cap;
        $counted += $n;
    }
    return $exact && $limited && $counted == $p->{requests};
}

# The oracle's token bucket as the driver drove it allows min to max
# (t/oracle-sampler/driver.mjs, traffic()); when the driver kept its pace
# that is S x rate or one second's worth less.
sub oracle_ok {
    my ($p) = @_;
    return defined $p->{min} && defined $p->{max}
        && $p->{sampled} >= $p->{min} && $p->{sampled} <= $p->{max};
}

sub oracle_range {
    my ($p) = @_;
    return sprintf ' (its bucket as driven: %s to %s, longest gap %s ms)',
        map { $_ // '?' } @$p{qw(min max longest_gap_ms)};
}

sub show_seconds {
    my ($p) = @_;
    my $ps = $p->{per_second};
    return join ', ', map { "$_: $ps->{$_}[1] of $ps->{$_}[0]" }
                      sort keys %$ps;
}

run_tests();

__DATA__

=== TEST 1: every request's segment names the rule AWS's sampler picks
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
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
{ rules => \@main::Rules }
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    is(scalar @{ $main::Oracle->{picks} }, scalar @main::Picks,
       'the oracle picked a rule for each request');
    my ($ok, $s) = XRayCentral::wait_status(sub {
        (XRayCentral::metric($_[0], 'nginx_xray_sampling_rules_held') // 0)
            == @main::Rules });
    ok($ok, 'nginx holds the rules') or diag $s->{text};

    my %rule_of_trace;
    my @traces;
    for my $p (@main::Picks) {
        my $r = XRayCentral::get(
            method => $p->{method},
            host => $p->{host} . (defined $p->{port} ? ":$p->{port}" : ''),
            path => $p->{path} . (defined $p->{query} ? "?$p->{query}" : ''),
            headers => $p->{headers});
        push @traces, $r->{headers}{'x-trace'} // '';
    }
    my @docs = XRayCentral::wait_segments(scalar @main::Picks);
    $rule_of_trace{ $_->{trace_id} } = XRayCentral::rule_name_of($_)
        for @docs;
    my @nginx = map { $rule_of_trace{$_} } @traces;
    is_deeply(\@nginx, $main::Oracle->{picks},
              'nginx and the oracle pick the same rule for every request')
        or diag explain { nginx => \@nginx, oracle => $main::Oracle->{picks} };
    is_deeply($main::Oracle->{picks},
              [qw(Api Api zeta zeta zeta Default post post static Default static
                  edge gold gold Api deep Default Default)],
              'and the rules this plan expects');
    is_deeply([map { @{ $_->{errors} } } @{ XRayCentral::api_calls() }], [],
              "every call passes the API model's checks");
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: borrowing and quota at the oracle's rates; statistics of the same shape
--- http_config
    xray_daemon "tcp:127.0.0.1:$TEST_NGINX_SAMPLING_API_PORT udp:127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT" flush=10ms;
    xray_sampling centralized targets_interval=1s;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
    xray_segment_name edge;
--- config
    location / {
        xray on;
        xray_originate on;
        add_header X-Sampled $xray_sampled always;
        add_header X-Msec $msec always;
        add_header X-Request-Time $request_time always;
        return 204;
    }
    location = /status {
        xray off;
        xray_status;
    }
--- sampling_api eval
\%main::Metered
--- request
GET /status
--- error_code: 200
--- burst: 1
--- burst_check eval
sub {
    my $Q = $main::Quota;
    is_deeply(\@main::OracleErrors, [],
              "the oracle's calls pass the API model's checks");
    my ($ok, $s) = XRayCentral::wait_status(sub {
        (XRayCentral::metric($_[0], 'nginx_xray_sampling_rules_held') // 0)
            == @main::Rules });
    ok($ok, 'nginx holds the rules') or diag $s->{text};

    # borrowing: zeta has no quota
    my $s_b = $main::Borrow{seconds};
    my $pb = main::paced(\%main::Borrow);
    my $mb = $pb->{sampled};
    my $ob = $main::OracleMetered->{borrow}{sampled} // -1;
    ok(main::oracle_ok($main::OracleMetered->{borrow}),
       "oracle: borrowed $ob in $s_b s"
       . main::oracle_range($main::OracleMetered->{borrow}));
    ok(main::per_second_ok($pb, 1),
       "nginx: borrowed $mb in $s_b s, 1 in each second it touched")
        or diag main::show_seconds($pb);

    # the quota of Api
    # the service grants a quota to a rule that reports requests
    my $r = $main::Take{request};
    ($ok, $s) = XRayCentral::wait_status(sub {
        XRayCentral::get(method => $r->{method}, host => $r->{host},
                         path => $r->{path});
        (XRayCentral::metric($_[0], 'nginx_xray_sampling_rule_quota',
                             rule => 'Api') // 0) == $Q });
    ok($ok, "nginx has Api's quota of $Q") or diag $s->{text};
    my $s_q = $main::Take{seconds};
    my $pq = main::paced(\%main::Take);
    my $mq = $pq->{sampled};
    my $oq = $main::OracleMetered->{quota}{sampled} // -1;
    ok(main::oracle_ok($main::OracleMetered->{quota}),
       "oracle: $oq under a quota of $Q/s in $s_q s"
       . main::oracle_range($main::OracleMetered->{quota}));
    ok(main::per_second_ok($pq, $Q),
       "nginx: $mq under a quota of $Q/s in $s_q s, $Q in each second it "
       . "touched") or diag main::show_seconds($pq);

    # statistics: the same members, and nginx's valid for the model too
    my @docs;
    XRayTest::wait_until(sub {
        @docs = map { @{ $_->{body}{SamplingStatisticsDocuments} // [] } }
                @{ XRayCentral::api_calls('/SamplingTargets') };
        grep { $_->{RuleName} eq 'Api' } @docs;
    });
    ok(scalar @main::OracleDocs, 'the oracle reported statistics');
    is_deeply([sort keys %{ $docs[0] // {} }],
              [sort keys %{ $main::OracleDocs[0] // {} }],
              'nginx reports documents of the same members');
    is_deeply([map { @{ $_->{errors} } } @{ XRayCentral::api_calls() }], [],
              "nginx's calls pass the API model's checks");
}
--- no_error_log
[alert]
[crit]
[emerg]
