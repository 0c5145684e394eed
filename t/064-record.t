# The record is true: the upstream call's URL is what was sent upstream
# (after rewrite, a URI part in proxy_pass, error_page), redacted like the
# others, and a client that goes away (499) while the upstream works is not
# the upstream's fault.  With them, two guards of what the record says
# elsewhere: a "number" annotation is never a number JSON readers turn into
# infinity, and the README says what documents_sent does and does not know
# (the status page's wording is t/030's).

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use IO::Socket::INET ();
use Time::HiRes ();

log_level('info');
no_shuffle();
no_long_string();

our $Root = '1-5759e988-bd862e3fe1be46a994272793';
our $Up = "127.0.0.1:$ENV{TEST_NGINX_UPSTREAM_PORT}";

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/always.json;
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers',
            "X-Amzn-Trace-Id: Root=$::Root;Parent=53995c3f42cd8ad8;Sampled=1");
    }
});

# the request line the echo upstream received, from the response body
sub sent_path {
    my ($body) = @_;
    my ($path) = ($body // '') =~ m{^\S+ (\S+) HTTP/1\.[01]\r?\n};
    return $path;
}

# sends a request and closes the connection that many seconds later
sub abort_after {
    my ($req, $secs) = @_;
    my $port = XRayTest::_runner_setting('ServerPortForClient') // 1984;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp')
        or die "connect: $!";
    print $sock $req;
    Time::HiRes::sleep($secs);
    close $sock;
}

run_tests();

__DATA__

=== TEST 1: after rewrite ... break, the rewritten URI
--- config
    location /t {
        xray on;
        rewrite ^/t/(.*)$ /u/$1 break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t/x?secret=1
--- response_body_like: ^GET /u/x\?secret=1 HTTP/1\.0\r
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{http}{request}{url}, 'http://localhost/t/x',
       'the segment keeps what the client asked for');
    is($s->{subsegments}[0]{http}{request}{url}, "http://$::Up/u/x",
       'the call, what was sent (no query: xray_record_query off)');
}



=== TEST 2: proxy_pass with a URI part
--- config
    location /api/ {
        xray on;
        xray_record_query on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/200/v1/;
    }
--- request
GET /api/items?page=2
--- response_body_like: ^GET /status/200/v1/items\?page=2 HTTP/1\.0\r
--- segment_count: 1
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{http}{request}{url}, 'http://localhost/api/items?page=2',
       'the client\'s URL');
    is($s->{subsegments}[0]{http}{request}{url},
       "http://$::Up/status/200/v1/items?page=2", 'the URL sent upstream');
}



=== TEST 3: error_page to another upstream: the call that answered
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/503;
        proxy_intercept_errors on;
        error_page 503 = /fallback;
    }
    location /fallback {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/served/fallback;
    }
--- request
GET /t
--- response_body_like: ^GET /served/fallback HTTP/1\.0\r
--- segment_count: 1
--- segments eval
sub {
    my $u = $_[0][0]{subsegments}[0];
    is($u->{http}{request}{url}, "http://$::Up/served/fallback",
       'the URL of the call that answered');
    is($u->{http}{response}{status}, 200, 'and its status');
    is(scalar @{ $u->{subsegments} }, 2, 'both attempts are kept');
}



=== TEST 4: the URL sent is redacted like the others
--- config
    location /t {
        xray on;
        xray_record_query on;
        xray_redact "token=([^&]+)";
        rewrite ^/t(.*)$ /v$1 break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
GET /t/a?token=s3cr3t&b=1
--- segment_count: 1
--- segments eval
sub {
    is($_[0][0]{subsegments}[0]{http}{request}{url},
       "http://$::Up/v/a?token=***&b=1", 'redacted');
    unlike($_[1][0], qr/s3cr3t/, 'the secret is in no byte sent');
}



=== TEST 5: a client that aborts while the upstream works is no upstream fault
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/3000;
    }
    location = /alive {
        return 204;
    }
--- init
main::abort_after("GET /t HTTP/1.1\r\nHost: localhost\r\n"
    . "X-Amzn-Trace-Id: Root=$::Root;Sampled=1\r\n\r\n", 0.5);
--- request
GET /alive
--- error_code: 204
--- segment_count: 1
--- segment_timeout: 20
--- segments eval
sub {
    my $s = $_[0][0];
    is($s->{http}{response}{status}, 499, 'the client closed the request');
    ok(!$s->{fault}, 'the segment is no fault');
    ok(!exists $s->{cause}, 'and has no cause');
    my $u = $s->{subsegments}[0];
    ok($u, 'the call is recorded') or return;
    ok(!$u->{fault}, 'the call is no fault');
    my @types = map { $_->{type} // '' }
                @{ $u->{cause}{exceptions} // [] },
                map { @{ $_->{cause}{exceptions} // [] } }
                    @{ $u->{subsegments} // [] };
    ok(!grep({ /^Upstream/ } @types), 'no upstream cause')
        or diag explain \@types;
}
--- error_log
client prematurely closed connection



=== TEST 6: proxy_request_buffering off: the URI at the time of the call
--- config
    location /t {
        xray on;
        proxy_request_buffering off;
        rewrite ^/t/(.*)$ /w/$1 break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"POST /t/x\nGET /fake HTTP/1.1\r\n" . ("y" x 3000)
--- response_body_like: ^POST /w/x HTTP/1\.0\r
--- segment_count: 1
--- segments eval
sub {
    is($_[0][0]{subsegments}[0]{http}{request}{url}, "http://$::Up/w/x",
       'the rewritten URI, never a line of the body');
}



=== TEST 7: number annotations never overflow to infinity
--- config
    location /t {
        xray on;
        xray_annotation big $arg_big number;
        xray_annotation neg $arg_neg number;
        xray_annotation digits $arg_digits number;
        xray_annotation max $arg_max number;
        xray_annotation over $arg_over number;
        xray_annotation tiny $arg_tiny number;
        return 204;
    }
--- request eval
"GET /t?big=1e309&neg=-1E400&digits=" . ("9" x 320)
. "&max=1.7976931348623157e308&over=1.7976931348623159e308&tiny=1e-400"
--- error_code: 204
--- segment_count: 1
--- segments eval
sub {
    my ($docs, $raw) = @_;
    my ($doc) = $raw->[0] =~ /\n(.*)\z/s;
    my %n;
    $n{$1} = $2 while $doc =~ /"(big|neg|digits|max|over|tiny)":("?)/g;
    is($n{big}, '"', '1e309 is written as a string');
    is($n{neg}, '"', '-1E400 too');
    is($n{digits}, '"', '320 nines too');
    is($n{over}, '"', 'just over the largest double too');
    is($n{max}, '', 'the largest double stays a number');
    is($n{tiny}, '', 'an underflow is no infinity: a number');
    is($docs->[0]{annotations}{big}, '1e309', 'kept as the client wrote it');
}



=== TEST 8: README: what documents_sent knows, and what to watch instead
--- config
    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- init
open my $fh, '<', "$ENV{TEST_NGINX_REPO}/README.md" or die "README.md: $!";
my $readme = do { local $/; <$fh> };
my ($trouble) = $readme =~ /^## Troubleshooting\n(.*?)^## /ms;
Test::More::like($trouble // '', qr/documents_sent.*kernel accepted/s,
                 'troubleshooting says what documents_sent counts');
Test::More::like($trouble // '', qr/RcvbufErrors/,
                 'and names the host\'s receive-buffer drop counter');
Test::More::like($trouble // '', qr/daemon's own/,
                 'and the daemon\'s own metrics');
