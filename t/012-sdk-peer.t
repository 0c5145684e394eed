# A real peer: an upstream instrumented with the official AWS X-Ray SDK for
# Python.  Its segment, sent to the same sink as the proxy's, must carry the
# proxy's trace id and nest under the proxy's upstream call; with Sampled=0
# forwarded it must record nothing.  When the client spoke W3C Trace Context
# (traceparent), the SDK's segment must nest the same way.

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use POSIX ();
use Time::HiRes ();

our $SdkPort = $ENV{TEST_NGINX_SDK_PORT} //= 1989;
our $Root = '1-5759e988-bd862e3fe1be46a994272793';
my $python = $ENV{XRAYTEST_SDK_PYTHON} || 'python3';

# start the SDK-instrumented upstream, and wait until it listens
my $sdk_pid = fork();
die "fork: $!" unless defined $sdk_pid;
if ($sdk_pid == 0) {
    open STDOUT, '>', '/dev/null';
    { exec $python, "$ENV{TEST_NGINX_REPO}/t/lib/xray_sdk_upstream.py",
           $SdkPort, "127.0.0.1:$ENV{TEST_NGINX_XRAY_DAEMON_PORT}" }
    POSIX::_exit(127);
}
# (python imports the SDK slowly on a loaded machine: 30 s at most)
my $sdk_deadline = Time::HiRes::time() + 30;
while (Time::HiRes::time() < $sdk_deadline) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$SdkPort");
    select undef, undef, undef, 0.1;
}
my $owner = $$;
END {
    if ($$ == $owner) {
        local $?;
        kill 'TERM', $sdk_pid;
        waitpid $sdk_pid, 0;
    }
}

log_level('info');
no_shuffle();
no_long_string();

run_tests();

__DATA__

=== TEST 1: the SDK's segment nests under the proxy's upstream call
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_segment_name edge-proxy;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SDK_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0
--- response_body_like
^trace_id=1-5759e988-bd862e3fe1be46a994272793 id=[0-9a-f]{16} parent_id=[0-9a-f]{16} sampled=1$
--- segment_count: 2
--- segments eval
sub {
    my ($docs) = @_;
    my ($proxy) = grep { $_->{name} eq 'edge-proxy' } @$docs;
    my ($sdk) = grep { $_->{name} eq 'sdk-upstream' } @$docs;
    ok($proxy && $sdk, 'both segments arrived') or return;
    is($sdk->{trace_id}, $::Root, 'one trace: the SDK kept the Root');
    is($sdk->{parent_id}, $proxy->{subsegments}[0]{id},
       "the SDK's parent is the proxy's upstream call");
    is($proxy->{parent_id}, '53995c3f42cd8ad8',
       "the proxy's parent is the client's");
    isnt($sdk->{id}, $proxy->{id}, 'two nodes');
}



=== TEST 2: Sampled=0 forwarded: the SDK records nothing either
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SDK_PORT;
    }
--- request
GET /t
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
--- response_body_like
 sampled=0$
--- segment_count: 0



=== TEST 3: the client spoke W3C: the SDK's segment still nests under the proxy's upstream call
--- http_config
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
--- config
    location /t {
        xray on;
        xray_trace_formats w3c;
        xray_propagate both;
        xray_segment_name edge-proxy;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SDK_PORT;
    }
--- request
GET /t
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00
--- response_body_like
^trace_id=1-4bf92f35-77b34da6a3ce929d0e0e4736 id=[0-9a-f]{16} parent_id=[0-9a-f]{16} sampled=1$
--- segment_count: 2
--- segments eval
sub {
    my ($docs) = @_;
    my ($proxy) = grep { $_->{name} eq 'edge-proxy' } @$docs;
    my ($sdk) = grep { $_->{name} eq 'sdk-upstream' } @$docs;
    ok($proxy && $sdk, 'both segments arrived') or return;
    is($proxy->{trace_id}, '1-4bf92f35-77b34da6a3ce929d0e0e4736',
       "the proxy's trace is the browser's W3C trace id");
    is($sdk->{trace_id}, $proxy->{trace_id}, 'one trace: the SDK kept it');
    is($sdk->{parent_id}, $proxy->{subsegments}[0]{id},
       "the SDK's parent is the proxy's upstream call");
    is($proxy->{parent_id}, '00f067aa0ba902b7',
       "the proxy's parent is the browser's span");
}
