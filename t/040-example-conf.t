# conf/nginx.conf, the production example, with a local upstream in place of
# the Lambda Function URL: nginx accepts it, and it works as documented.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $ExamplePort = $ENV{TEST_NGINX_EXAMPLE_PORT} //= 1990;
our $MetricsPort = $ENV{TEST_NGINX_METRICS_PORT} //= 1991;

# the http {} block of the example, pointed at the test's upstream and sink
sub example_http {
    open my $fh, '<', "$ENV{TEST_NGINX_REPO}/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$fh> };
    $conf =~ /^http \{\n(.*)^\}/ms or die "no http block in conf/nginx.conf";
    my $http = $1;
    my %replace = (
        # the test scaffold has its own
        'include mime.types;' => '',
        'default_type application/octet-stream;' => '',
        '/var/log/nginx/access.json' => 'logs/access.json',
        'xray_daemon 127.0.0.1:2000;'
            => "xray_daemon 127.0.0.1:$ENV{TEST_NGINX_XRAY_DAEMON_PORT};",
        '/etc/nginx/xray/production.json'
            => "$ENV{TEST_NGINX_REPO}/conf/sampling-rules/production.json",
        'resolver 169.254.169.253' => 'resolver 127.0.0.1',
        'abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws'
            => "127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}",
        'https://' => 'http://',
        'listen 8080;' => "listen 127.0.0.1:$ExamplePort;",
        'listen 127.0.0.1:9145;' => "listen 127.0.0.1:$MetricsPort;",
    );
    for my $from (keys %replace) {
        my $n = $http =~ s/\Q$from\E/$replace{$from}/g;
        die "conf/nginx.conf no longer has '$from'" unless $n;
    }
    return $http;
}

sub get {
    my ($port, $path, @headers) = @_;
    my ($r) = XRayTest::http_requests(port => $port,
        request => "GET $path HTTP/1.0\r\nHost: edge.example.com\r\n"
                   . CORE::join('', map { "$_\r\n" } @headers) . "\r\n");
    return $r;
}

run_tests();

__DATA__

=== TEST 1: the example configuration starts and proxies as documented
--- http_config eval
main::example_http()
--- config
    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- burst: 1
--- burst_check eval
sub {
    my $root = 'Root=1-5759e988-bd862e3fe1be46a994272793';
    my $r = main::get($::ExamplePort, '/api/orders?token=abc',
                      "X-Amzn-Trace-Id: $root;Parent=53995c3f42cd8ad8;Sampled=1");
    is($r->{status}, 200, 'proxied');
    like($r->{body}, qr{^GET /api/orders\?token=abc HTTP/1\.1\r\n}, 'path');
    like($r->{body}, qr{\r\nHost: 127\.0\.0\.1:\d+\r\n},
         "Host is the Function URL's");
    like($r->{body},
         qr{\r\nX-Amzn-Trace-Id: $root;Parent=[0-9a-f]{16};Sampled=[01]\r\n},
         'trace header rewritten');

    $r = main::get($::ExamplePort, '/events?xray=' . ($root =~ s/=/%3D/r)
                   . '%3BSampled%3D1', 'Last-Event-ID: 5');
    like($r->{body}, qr{\r\nLast-Event-ID: 5\r\n}, 'Last-Event-ID upstream');
    like($r->{body}, qr{\r\nX-Amzn-Trace-Id: $root;Parent=}, 'EventSource');

    $r = main::get($::ExamplePort, '/healthz');
    is($r->{body}, "ok\n", 'health check');

    $r = main::get($::MetricsPort, '/metrics');
    like($r->{body}, qr/^nginx_xray_requests_total\{outcome="sampled"\} \d+$/m,
         'metrics on the loopback listener');
    like($r->{body}, qr/^nginx_xray_rule_matches_total\{rule="Health checks"\} 0$/m,
         'the production rules are loaded');

    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/access.json" or die;
    my @lines = <$fh>;
    my ($api) = grep { /"uri":"\/api\/orders"/ } @lines;
    my $log = JSON::PP::decode_json($api);
    is($log->{trace_id}, '1-5759e988-bd862e3fe1be46a994272793',
       'the JSON access log carries the trace id');
}
