# Centralized sampling against AWS's own client: the remote sampler of
# OpenTelemetry JS (@opentelemetry/sampler-aws-xray, t/oracle-sampler) and
# the module's sampling core (src/xray_sampling_api.c, through
# build/unit/sampling_replay) are given the same rules by the stand-in
# sampling API and the same requests.  They must pick the same rule for every
# request, borrow and take quota at the same rates, and report statistics of
# the same shape, which the stand-in checks against AWS's API model.
#
# Where the two differ by design, the test says so: the oracle meters its
# reservoir with a token bucket that starts empty, the module (like the X-Ray
# SDKs for Python and Java) with calendar seconds, so over S seconds the
# oracle takes S x rate or one second's worth less, the module S x rate or
# one second's worth more.  The oracle reads no NextToken (one page here)
# and polls targets first 10 s after it starts: this test takes ~15 s.

use strict;
use warnings;

use Test::Nginx::Socket;    # only for XRayTest's runner-agnostic parts
use XRayTest;
use File::Temp ();
use IPC::Run ();
use JSON::PP ();
use Test::More;

my $JSON = JSON::PP->new->canonical;
my $node = $ENV{XRAYTEST_NODE} || 'node';
my $replay = $ENV{XRAYTEST_REPLAY}
    || "$ENV{TEST_NGINX_REPO}/build/unit/sampling_replay";
my $driver = "$ENV{TEST_NGINX_REPO}/t/oracle-sampler/driver.mjs";

for my $need ($replay, "$ENV{TEST_NGINX_REPO}/t/oracle-sampler/node_modules") {
    BAIL_OUT("$need is missing: run `make sampling-oracle`") unless -e $need;
}

sub rule {
    my ($name, $priority, %over) = @_;
    return { RuleName => $name, RuleARN => "arn:aws:xray:::sampling-rule/$name",
             ResourceARN => '*', Priority => $priority, FixedRate => 0,
             ReservoirSize => 1, ServiceName => '*', ServiceType => '*',
             Host => '*', HTTPMethod => '*', URLPath => '*', Version => 1,
             %over };
}

my $Quota = 4;
my %config = (
    rules => [
        rule('Default', 10000),
        rule('api', 10, Host => 'api.example.com'),
        rule('Api', 10, Host => 'api.*'),           # same priority: by name
        rule('zeta', 10, Host => '*.example.com'),
        rule('post', 5, HTTPMethod => 'POST'),
        rule('static', 7, URLPath => '/static/?/*'),
        rule('gold', 1, Attributes => { 'x-tier' => 'gold*' }),
        rule('other', 2, ServiceName => 'other'),
        rule('edge', 3, ServiceName => 'EDGE', HTTPMethod => 'DELETE'),
    ],
    targets => {
        api => { FixedRate => 0, ReservoirQuota => $Quota,
                 ReservoirQuotaTTLIn => 120, Interval => 10 },
    },
);

my %req = (host => 'api.example.com', method => 'GET', path => '/v1/x');
my %plan = (
    service => 'edge',
    picks => [
        { %req },                                               # Api
        { %req, host => 'api.example.org' },                    # Api
        { %req, host => 'www.example.com' },                    # zeta
        { %req, host => 'WWW.EXAMPLE.COM' },                    # zeta
        { %req, host => 'www.example.org' },                    # Default
        { %req, host => 'www.example.org', method => 'post' },  # post
        { %req, method => 'POST' },                             # post
        { %req, host => 'x', path => '/static/a/b.css' },       # static
        { %req, host => 'x', path => '/static/ab/b.css' },      # Default
        { %req, host => 'x', method => 'DELETE' },              # edge
        { %req, headers => { 'x-tier' => 'GOLD-plus' } },       # gold
        { %req, headers => { 'x-tier' => 'silver' } },          # Api
    ],
    borrow => { request => { %req, host => 'www.example.com' },
                seconds => 3, every_ms => 50 },
    quota => { request => { %req, host => 'api.example.com',
                            method => 'PUT' },
               seconds => 2, every_ms => 20 },
);

# "api" and "Api" tie at priority 10: "Api" sorts first (byte order, as the
# oracle compares strings) and matches api.example.com too.  The quota is
# granted to the rule the quota traffic matches, so name it so.
$config{targets}{Api} = delete $config{targets}{api};

XRayTest::start_sampling_api(\%config);

my $dir = File::Temp::tempdir('xraytest-oracle-XXXXXX', TMPDIR => 1,
                              CLEANUP => 1);
sub write_file {
    my ($name, $text) = @_;
    open my $out, '>', "$dir/$name" or die "$dir/$name: $!";
    print {$out} $text;
    close $out;
    return "$dir/$name";
}
my $plan_file = write_file('plan.json', $JSON->encode(\%plan));

# --- the oracle -----------------------------------------------------------

my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
    [$node, $driver, "http://127.0.0.1:$ENV{TEST_NGINX_SAMPLING_API_PORT}",
     $plan_file], '<', \undef, '>', \$out, '2>', \$err,
    IPC::Run::timeout(90));
ok($ok, 'the oracle ran') or diag $err;
my $oracle = eval { $JSON->decode($out) } // {};

my $reqs = XRayTest::sampling_api_requests();
my @targets_calls = grep { $_->{path} eq '/SamplingTargets' } @$reqs;
ok(scalar(grep { $_->{path} eq '/GetSamplingRules' } @$reqs),
   'the oracle fetched the rules');
ok(scalar @targets_calls, 'and reported statistics');
is_deeply([map { @{ $_->{errors} } } @$reqs], [],
          "AWS's client passes the stand-in's model checks");

# the first report covers the picks and the borrow traffic
my %oracle_docs = map { $_->{RuleName} => $_ }
    @{ $targets_calls[0]{body}{SamplingStatisticsDocuments} // [] };
is_deeply({ map { $_ => $oracle_docs{$_}{RequestCount} }
            grep { $oracle_docs{$_}{RequestCount} } keys %oracle_docs },
          $oracle->{counts_before_quota},
          "the oracle's statistics are the traffic it saw");

# --- the module's core, with the same rules and requests ------------------

my ($status, $rules_reply) = XRayTest::sampling_api_post('/GetSamplingRules',
                                                         '{}');
is($status, 200, 'the rules, as the module would fetch them');
my $rules_file = write_file('rules.json', $rules_reply);

sub replay {
    my @args = @_;
    my ($o, $e) = ('', '');
    IPC::Run::run([$replay, $rules_file, $plan_file, @args], '<', \undef,
                  '>', \$o, '2>', \$e, IPC::Run::timeout(60))
        or diag "sampling_replay: $e";
    return eval { $JSON->decode($o) } // {};
}

my $module = replay();

is_deeply($module->{picks}, $oracle->{picks},
          'the same rule for every request')
    or diag explain { module => $module->{picks},
                      oracle => $oracle->{picks} };
is_deeply($oracle->{picks},
          [qw(Api Api zeta zeta Default post post static Default edge gold
              Api)], 'and the rules this plan expects');

# statistics: the stand-in checks the module's body against the model
XRayTest::sampling_api_clear();
my $targets_reply;
($status, $targets_reply) = XRayTest::sampling_api_post(
    '/SamplingTargets', $module->{statistics});
is($status, 200, "the module's statistics are a valid SamplingTargets call")
    or diag $targets_reply;
is_deeply([map { @{ $_->{errors} } } @{ XRayTest::sampling_api_requests() }],
          [], 'no model errors');

my $mod_body = $JSON->decode($module->{statistics});
my %mod_docs = map { $_->{RuleName} => $_ }
    @{ $mod_body->{SamplingStatisticsDocuments} };
is_deeply([sort keys %{ (values %mod_docs)[0] }],
          [sort keys %{ (values %oracle_docs)[0] }],
          'statistics documents of the same shape');
is_deeply({ map { $_ => $mod_docs{$_}{RequestCount} } keys %mod_docs },
          $module->{counts}, "the module's statistics are its traffic");
# The replay's clock is its own: its borrow phase is exactly seconds /
# every_ms requests.  The oracle's driver paces on the wall clock, and on a
# loaded machine its phase holds one request more or fewer: the same
# traffic is the oracle's counts with zeta's (the borrow rule's) moved by
# the difference in requests sent.
my %oracle_same = %{ $oracle->{counts_before_quota} // {} };
$oracle_same{zeta} += ($module->{borrow}{requests} // 0)
                    - ($oracle->{borrow}{requests} // 0)
    if exists $oracle_same{zeta};
is_deeply({ map { $_ => $mod_docs{$_}{RequestCount} } keys %mod_docs },
          \%oracle_same,
          "... and the same as the oracle's (borrow phases of "
          . ($module->{borrow}{requests} // '?') . ' and '
          . ($oracle->{borrow}{requests} // '?') . ' requests)');
for my $docs (\%mod_docs, \%oracle_docs) {
    # FixedRate 0 everywhere: every sample before a quota was borrowed
    is_deeply([map { $docs->{$_}{BorrowCount} } sort keys %$docs],
              [map { $docs->{$_}{SampledCount} } sort keys %$docs],
              'before a quota, what is sampled is borrowed');
}

# borrowing: 1 a second before a quota, over the picks (which include two
# requests of zeta) and the borrow traffic, which all go to zeta
my $s = $plan{borrow}{seconds};
my ($ob, $mb) = ($oracle_docs{zeta}{BorrowCount}, $mod_docs{zeta}{BorrowCount});
# The oracle's token bucket as the driver drove it allows min to max in
# the traffic (t/oracle-sampler/driver.mjs, traffic(): S x rate or one
# second's worth less when the driver kept its pace, whatever the pace
# on a loaded machine); the report adds what the picks borrowed.
sub oracle_ok {
    my ($p, $report) = @_;
    return defined $p->{min} && defined $p->{max}
        && $p->{sampled} >= $p->{min} && $p->{sampled} <= $p->{max}
        && $report == $p->{sampled};
}
sub oracle_range {
    my ($p) = @_;
    return sprintf ' (its bucket as driven: %s to %s, longest gap %s ms)',
        map { $_ // '?' } @$p{qw(min max longest_gap_ms)};
}
my $ob_picks = $oracle->{picks_sampled}{zeta} // 0;
ok(oracle_ok($oracle->{borrow} // {}, ($ob // -1) - $ob_picks),
   "oracle: borrowed $ob in $s s (1/s), $ob_picks of them by the picks"
   . oracle_range($oracle->{borrow} // {}));
ok($mb >= $s && $mb <= $s + 1, "module: borrowed $mb in $s s (1/s)");

# the quota: $Quota a second once the targets came
my $module_q = replay(write_file('targets.json', $targets_reply));
$s = $plan{quota}{seconds};
my ($oq, $mq) = ($oracle->{quota}{sampled}, $module_q->{quota}{sampled});
ok(oracle_ok($oracle->{quota} // {}, $oq // -1),
   "oracle: $oq under a quota of $Quota/s in $s s"
   . oracle_range($oracle->{quota} // {}));
ok($mq >= $Quota * $s && $mq <= $Quota * ($s + 1),
   "module: $mq under a quota of $Quota/s in $s s");

# --- the stand-in itself: it must refuse what the model does not allow ----

my $doc = '{"RuleName":"Api","ClientID":"0123456789abcdef01234567",'
        . '"Timestamp":1795315165,"RequestCount":1,"SampledCount":0}';
my $boost = '{"RuleName":"Api","ServiceName":"edge","Timestamp":1795315165,'
          . '"AnomalyCount":1,"TotalCount":2,"SampledAnomalyCount":0}';
my @bad = (
    [ 'ClientID of 23 characters', "ClientID[^;]*shorter than 24",
      '{"SamplingStatisticsDocuments":[' . ($doc =~ s/01234567"/0123456"/r)
      . ']}' ],
    [ '26 documents', 'more than 25 entries',
      '{"SamplingStatisticsDocuments":[' . join(',', ($doc) x 26) . ']}' ],
    [ 'a negative count', 'RequestCount: below 0',
      '{"SamplingStatisticsDocuments":[' . ($doc =~ s/"RequestCount":1/"RequestCount":-1/r)
      . ']}' ],
    [ 'a count beyond 32 bits', 'RequestCount: out of the 32-bit range',
      '{"SamplingStatisticsDocuments":[' . ($doc =~ s/"RequestCount":1/"RequestCount":2147483648/r)
      . ']}' ],
    [ 'a missing SampledCount', 'missing required member SampledCount',
      '{"SamplingStatisticsDocuments":[' . ($doc =~ s/,"SampledCount":0//r)
      . ']}' ],
    [ 'an unknown member', 'unknown member Extra',
      '{"SamplingStatisticsDocuments":[],"Extra":1}' ],
    [ 'a count as a string', 'SampledCount: must be an integer',
      '{"SamplingStatisticsDocuments":[' . ($doc =~ s/"SampledCount":0/"SampledCount":"0"/r)
      . ']}' ],
    [ 'a boost document without AnomalyCount',
      'missing required member AnomalyCount',
      '{"SamplingStatisticsDocuments":[],"SamplingBoostStatisticsDocuments":['
      . ($boost =~ s/"AnomalyCount":1,//r) . ']}' ],
    [ 'not JSON', 'not JSON', '{"SamplingStatisticsDocuments":' ],
);
for my $t (@bad) {
    my ($what, $want, $body) = @$t;
    XRayTest::sampling_api_clear();
    my ($st) = XRayTest::sampling_api_post('/SamplingTargets', $body);
    my $got = XRayTest::sampling_api_requests()->[0]{errors} // [];
    ok($st == 400 && grep({ /$want/ } @$got), "stand-in refuses $what")
        or diag explain $got;
}
XRayTest::sampling_api_clear();
my ($st) = XRayTest::sampling_api_post('/SamplingTargets',
    '{"SamplingStatisticsDocuments":[' . $doc . '],'
    . '"SamplingBoostStatisticsDocuments":[' . $boost . ']}');
is($st, 200, 'stand-in takes a valid call with boost documents');

# paging: 9 rules, 4 a page
XRayTest::sampling_api_config({ %config, page_size => 4 });
my ($token, @names, $pages) = (undef);
do {
    my ($code, $reply) = XRayTest::sampling_api_post('/GetSamplingRules',
        defined $token ? $JSON->encode({ NextToken => $token }) : '{}');
    my $r = $JSON->decode($reply);
    push @names, map { $_->{SamplingRule}{RuleName} }
                 @{ $r->{SamplingRuleRecords} };
    $token = $r->{NextToken};
    $pages++;
} while (defined $token && $pages < 10);
is($pages, 3, 'stand-in: 9 rules in pages of 4: 3 pages');
is(scalar @names, 9, 'every rule once');

done_testing();
