# `make run`'s demo starts and answers: nginx with the module, the demo
# upstream printing the trace header it received, the daemon sink printing
# the segment it received, and the status page.  Its sampling is
# centralized: the stand-in daemon serves demo/sampling-rules.json (here a
# copy) on its TCP port, and a rule changed in that file decides within one
# targets interval, without a reload.  (Plain Test::More: the demo is a
# script of its own, not a Test::Nginx configuration.)

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use File::Temp ();
use IO::Socket::INET ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

my $top = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
# TEST_NGINX_LOAD_MODULES set but empty: the module is compiled into nginx
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
             // "$top/build/ngx_http_xray_module.so";
my $port = $ENV{TEST_DEMO_PORT} || 1992;
my $dir = File::Temp::tempdir(CLEANUP => 1);
my $out = "$dir/demo.out";
my $rules = "$dir/sampling-rules.json";

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; <$fh> }
sub spit { open my $fh, '>', $_[0] or die "$_[0]: $!"; print {$fh} $_[1] }
spit($rules, slurp("$top/demo/sampling-rules.json"));

my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    POSIX::setpgid(0, 0);
    open STDOUT, '>', $out or die;
    open STDERR, '>&', \*STDOUT or die;
    $ENV{DEMO_RUN} = "$dir/run";
    $ENV{DEMO_PORT} = $port;
    $ENV{DEMO_UPSTREAM_PORT} = $port + 1;
    $ENV{DEMO_SINK_PORT} = $port + 2;
    $ENV{DEMO_SAMPLING_RULES} = $rules;
    $ENV{NGINX_BIN} = $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
    exec "$top/scripts/demo.sh", $module or POSIX::_exit(127);
}

END {
    if ($pid) {
        local $?;
        kill 'TERM', -$pid;
        waitpid $pid, 0;
    }
}

sub output { open my $fh, '<', $out or return ''; local $/; <$fh> }

# what it waits for ends the wait; 30 s only bounds a demo that never
# gets there (a loaded machine starts nginx and python slowly)
sub wait_for {
    my ($re) = @_;
    my $deadline = time + 30;
    while (time < $deadline) {
        return 1 if output() =~ $re;
        sleep 0.1;
    }
    return 0;
}

sub get {
    my ($path, @headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5)
        or return '';
    print $s "GET $path HTTP/1.0\r\nHost: localhost\r\n",
             map({ "$_\r\n" } @headers), "\r\n";
    local $/;
    return scalar <$s>;
}

ok(wait_for(qr/Ctrl-C stops the demo/), 'the demo started')
    or diag(output());

my $root = sprintf 'Root=1-%08x-abcdef0123456789abcdef01', time;
my $res = get('/api', "X-Amzn-Trace-Id: $root;Parent=53995c3f42cd8ad8;Sampled=1");
like($res, qr{^HTTP/1\.1 200 }, 'nginx answers');
like($res, qr{X-Amzn-Trace-Id received: $root;Parent=[0-9a-f]{16};Sampled=1},
     'the upstream got the rewritten header');

ok(wait_for(qr{^upstream  GET /api  X-Amzn-Trace-Id: $root;Parent=}m),
   'the demo prints what the upstream received');
ok(wait_for(qr{^sink      segment demo-edge trace=\Q${\ substr $root, 5}\E .* status=200}m),
   'the daemon sink prints the segment it received')
    or diag(output());

$res = get('/xray/status');
like($res, qr/^nginx_xray_requests_total\{outcome="sampled"\} 1\r?$/m,
     'the status page counts it');

# --- centralized sampling: the stand-in's rules, then a change of them ---

sub status_line {
    my ($re) = @_;
    my $deadline = time + 30;
    while (time < $deadline) {
        my $page = get('/xray/status');
        return $1 if $page =~ $re;
        sleep 0.1;
    }
    return undef;
}

is(status_line(qr/^(nginx_xray_sampling_source\{source="centralized"\} 1)\r?$/m),
   'nginx_xray_sampling_source{source="centralized"} 1',
   'the status page: the stand-in\'s rules decide');
like(get('/xray/status'), qr/^nginx_xray_sampling_rules_held 3\r?$/m,
     'all three of them');
ok(wait_for(qr/^sampling  GetSamplingRules: 3 rule\(s\) healthz, api, Default$/m),
   'the demo prints the rules the stand-in served');

my $healthz = sub {
    get('/healthz', "X-Amzn-Trace-Id: $root;Sampled=1") =~ /Sampled=(\d)/;
    return $1 // '';
};
is($healthz->(), '0', '/healthz: not sampled (FixedRate 0)');

my $text = slurp($rules);
ok($text =~ s/("RuleName": "healthz",\s*"Priority": 1,\s*"FixedRate": )0,/${1}1,/,
   'the healthz rule changes in the service: FixedRate 1');
spit($rules, $text);
my $changed = time;
is(status_line(qr/^(nginx_xray_sampling_rule_fixed_rate\{rule="healthz"\} 1)\r?$/m),
   'nginx_xray_sampling_rule_fixed_rate{rule="healthz"} 1',
   'the status page shows the new rate')
    or diag(join "\n", grep { /sampling/ && !/^#/ } split /\r?\n/,
                     get('/xray/status'));
my $took = time - $changed;
ok($took < 5 + 3, sprintf('within one targets interval (5 s): %.1f s', $took));
is($healthz->(), '1', '/healthz: sampled now');
ok(wait_for(qr{^sink      segment demo-edge .* GET http://localhost/healthz status=200}m),
   'and its segment reaches the daemon')
    or diag(output());
ok(wait_for(qr/^sampling  SamplingTargets: .*healthz \d+ requests, \d+ sampled/m),
   'the demo prints the statistics reported');

done_testing();
