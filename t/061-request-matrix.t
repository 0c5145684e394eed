# Every kind of request nginx accepts, through every directive that reads or
# writes request state, against the same locations without the module's
# directives: the worker must live, and the client must get what nginx alone
# gives it (the trace header and the CORS token the module adds aside).
#
# Two servers include the same locations (kinds.conf): "traced" with every
# directive of the module on at server level, "plain" with none.  Both listen
# for HTTP/1.x and, on two more ports, for HTTP/2 with prior knowledge (curl).
# Each request is sent to both; the worker's pid must be the same before and
# after (a crash replaces it), and the normalised responses must be equal.
# Then a bounded loop of generated raw requests (request line + headers +
# body) does the same; XRAY_FUZZ_SEED and XRAY_FUZZ_COUNT change it.
#
# Ports: TEST_NGINX_TRACED_PORT (2011), TEST_NGINX_PLAIN_PORT (2012),
# TEST_NGINX_TRACED_H2_PORT (2013), TEST_NGINX_PLAIN_H2_PORT (2014).

use Test::Nginx::Socket 'no_plan';
use XRayTest;
use IO::Select ();
use IO::Socket::INET ();
use IPC::Run ();
use Time::HiRes qw(time sleep);

master_on();
workers(1);
log_level('info');
no_shuffle();
no_long_string();

$ENV{TEST_NGINX_TRACED_PORT}    //= 2011;
$ENV{TEST_NGINX_PLAIN_PORT}     //= 2012;
$ENV{TEST_NGINX_TRACED_H2_PORT} //= 2013;
$ENV{TEST_NGINX_PLAIN_H2_PORT}  //= 2014;

our $Root = '1-5759e988-bd862e3fe1be46a994272793';
our $Header = "X-Amzn-Trace-Id: Root=$Root;Parent=53995c3f42cd8ad8;Sampled=1";
our $Arg = 'xray=Root%3D1-5759e988-bd862e3fe1be46a994272793%3BSampled%3D1';

# ---------------------------------------------------------------------------
# the worker and raw exchanges
# ---------------------------------------------------------------------------

sub master_pid {
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid"
        or return;
    CORE::chomp(my $pid = <$fh> // '');
    return $pid;
}

# the live (not zombie) worker processes of the master
sub workers_now {
    my $master = master_pid() or return ();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my ($pid, $state, $ppid) = (scalar <$fh> // '')
            =~ /^(\d+) \(.*\) (\S) (\d+)/s or next;
        push @w, $pid if $ppid == $master && $state ne 'Z';
    }
    return sort { $a <=> $b } @w;
}

# sends the bytes (a string, or a list of [delay, bytes] packets), reads
# until the peer closes or `timeout` seconds pass without data; `abort`
# closes after that many seconds instead
sub exchange {
    my (%o) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $o{port}, Proto => 'tcp',
                                     Timeout => 5)
        or return "connect failed: $!";
    local $SIG{PIPE} = 'IGNORE';
    my @packets = ref $o{request} ? @{ $o{request} } : ([0, $o{request}]);
    for my $p (@packets) {
        sleep $p->[0] if $p->[0];
        my $off = 0;
        while ($off < length $p->[1]) {
            my $n = syswrite $sock, $p->[1], length($p->[1]) - $off, $off;
            last unless $n;
            $off += $n;
        }
    }
    my $sel = IO::Select->new($sock);
    my $buf = '';
    my $until = $o{abort} ? time + $o{abort} : undef;
    while (1) {
        my $wait = $o{timeout} // 5;
        if (defined $until) {
            $wait = $until - time;
            last if $wait <= 0;
        }
        last unless $sel->can_read($wait);
        my $n = sysread $sock, $buf, 65536, length $buf;
        last unless $n;
    }
    close $sock;
    return $buf;
}

sub h2_exchange {
    my (%o) = @_;
    my @cmd = ('curl', '-s', '-i', '--http2-prior-knowledge',
               '--max-time', '10', '-X', $o{method} // 'GET');
    push @cmd, '-H', $_ for @{ $o{headers} // [] };
    push @cmd, '--data-binary', $o{body} if defined $o{body};
    push @cmd, "http://127.0.0.1:$o{port}$o{path}";
    my ($out, $err) = ('', '');
    IPC::Run::run(\@cmd, \undef, \$out, \$err, IPC::Run::timeout(20));
    return $out;
}

sub dechunk {
    my ($b) = @_;
    my $out = '';
    while ($b =~ /\G([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr $b, pos($b), $n;
        pos($b) = pos($b) + $n + 2;
    }
    return $out;
}

# what the client got, without what the module adds on purpose: its trace
# header (in responses, and in the echo upstream's copy of the request) and
# its token in Access-Control-*-Headers; and without what differs between
# the two servers anyway (Date, lengths, chunk sizes, the port).  Works line
# by line, so that several responses on one connection compare too.
sub normalise {
    my ($raw) = @_;
    $raw =~ s{:(?:$ENV{TEST_NGINX_TRACED_PORT}|$ENV{TEST_NGINX_PLAIN_PORT}
               |$ENV{TEST_NGINX_TRACED_H2_PORT}|$ENV{TEST_NGINX_PLAIN_H2_PORT})
              \b}{:PORT}gx;
    my @out;
    for my $l (split /\r?\n/, $raw, -1) {
        next if $l =~ /^(?:date|content-length|connection|keep-alive
                          |transfer-encoding):/xi;
        next if $l =~ /^x[-_]amzn[-_]trace[-_]id:/i;
        # chunk sizes and framing: xray_sse sends an event a chunk
        next if $l =~ /^(?:[0-9a-f]+)?$/i;
        if ($l =~ /^(access-control-(?:allow|expose)-headers):\s*(.*)$/i) {
            my ($k, $v) = ($1, $2);
            $v = CORE::join ', ', grep { lc $_ ne 'x-amzn-trace-id' }
                 split /\s*,\s*/, $v;
            next if $v eq '';
            $l = "$k: $v";
        }
        push @out, $l;
    }
    return CORE::join "\n", @out;
}

our ($Checked, @Failures) = (0);

sub same_and_alive {
    my ($name, $traced, $plain, $alive_only) = @_;
    my @before = workers_now();
    my $t = $traced->();
    my @after = workers_now();
    my $p = $plain->();
    my @end = workers_now();
    $Checked++;
    if ("@before" ne "@after" || "@after" ne "@end" || !@before) {
        push @Failures, "$name: the worker changed (@before -> @after -> "
                        . "@end): it crashed";
        return;
    }
    return if $alive_only;
    my ($nt, $np) = (normalise($t), normalise($p));
    if ($nt ne $np) {
        push @Failures, "$name: responses differ\n--- traced\n$nt\n"
                        . "--- plain\n$np\n";
    }
}

sub raw_case {
    my ($name, $req, %o) = @_;
    same_and_alive($name,
        sub { exchange(%o, port => $ENV{TEST_NGINX_TRACED_PORT},
                       request => $req) },
        sub { exchange(%o, port => $ENV{TEST_NGINX_PLAIN_PORT},
                       request => $req) });
}

sub h2_case {
    my ($name, %o) = @_;
    same_and_alive("HTTP/2 $name",
        sub { h2_exchange(%o, port => $ENV{TEST_NGINX_TRACED_H2_PORT}) },
        sub { h2_exchange(%o, port => $ENV{TEST_NGINX_PLAIN_H2_PORT}) },
        $o{alive_only});
}

our @Paths = qw(/up/a /up/a?n=5&token=s /sse /ret /r444 /rw/b /ep /ep404
                /tf /auth /authno /mirror /ssi /big);

sub kinds {
    for my $path (@Paths) {
        my $p = $path;
        my $q = $p =~ /\?/ ? '&' : '?';

        raw_case("HTTP/0.9 $p", "GET $p\r\n");
        raw_case("HTTP/0.9 $p with xray_trace_context", "GET $p$q$Arg\r\n");
        raw_case("HTTP/1.0 without Host $p", "GET $p HTTP/1.0\r\n\r\n");
        raw_case("HTTP/1.0 without Host $p with a header",
                 "GET $p HTTP/1.0\r\n$Header\r\n\r\n");
        raw_case("HTTP/1.1 $p", "GET $p HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\n\r\n");
        raw_case("HTTP/1.1 $p, Sampled=?, CORS preflight",
                 "OPTIONS $p HTTP/1.1\r\nHost: localhost\r\n"
                 . "X-Amzn-Trace-Id: Root=$Root;Sampled=?\r\n"
                 . "Origin: http://a.test\r\n"
                 . "Access-Control-Request-Method: GET\r\n"
                 . "Connection: close\r\n\r\n");
        raw_case("HTTP/1.1 $p, an invalid header, Last-Event-ID",
                 "GET $p$q$Arg HTTP/1.1\r\nHost: localhost\r\n"
                 . "X-Amzn-Trace-Id: Root=bad\r\nLast-Event-ID: 7\r\n"
                 . "X-A: annotated\r\nConnection: close\r\n\r\n");
        raw_case("HTTP/1.1 POST $p with a body",
                 "POST $p HTTP/1.1\r\nHost: localhost\r\n$Header\r\n"
                 . "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
        raw_case("HTTP/1.1 POST $p chunked",
                 "POST $p HTTP/1.1\r\nHost: localhost\r\n$Header\r\n"
                 . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 . "5\r\nhello\r\n0\r\n\r\n");
        raw_case("HEAD $p", "HEAD $p HTTP/1.1\r\nHost: localhost\r\n"
                 . "$Header\r\nConnection: close\r\n\r\n");

        h2_case("GET $p", path => $p);
        h2_case("GET $p with a header", path => $p,
                headers => [$Header, 'X-A: h2']);
        h2_case("GET $p with xray_trace_context", path => "$p$q$Arg");
        h2_case("OPTIONS $p Sampled=? preflight", method => 'OPTIONS',
                path => $p,
                headers => ["X-Amzn-Trace-Id: Root=$Root;Sampled=?",
                            'Origin: http://a.test',
                            'Access-Control-Request-Method: GET']);
        # nginx may answer before it reads the body: then curl sees the
        # stream reset or not, by timing
        h2_case("POST $p", method => 'POST', body => 'hello', path => $p,
                headers => [$Header], alive_only => $p !~ m{^/up});
    }
}

sub early {
    my $H = "Host: localhost\r\n$Header\r\n";

    raw_case('400 bad request line', "GET /up/a HTTP/1.1 x\r\n$H\r\n");
    raw_case('400 bad request line, HTTP/0.9', "GET /up/a\x01\r\n");
    raw_case('400 bad header', "GET /up/a HTTP/1.1\r\n$H" . "X\x01: y\r\n\r\n");
    raw_case('400 HTTP/1.1 without Host',
             "GET /up/a HTTP/1.1\r\n$Header\r\n\r\n");
    raw_case('400 two Hosts', "GET /up/a HTTP/1.1\r\n$H"
             . "Host: other\r\n\r\n");
    raw_case('400 bad Host', "GET /up/a HTTP/1.1\r\nHost: a/b\r\n"
             . "$Header\r\n\r\n");
    raw_case('400 bad Content-Length', "POST /up/a HTTP/1.1\r\n$H"
             . "Content-Length: x\r\n\r\n");
    raw_case('400 Content-Length and chunked', "POST /up/a HTTP/1.1\r\n$H"
             . "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             . "0\r\n\r\n");
    raw_case('400 HTTP/1.0 chunked', "POST /up/a HTTP/1.0\r\n$H"
             . "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    raw_case('400 bad chunk', "POST /up/a HTTP/1.1\r\n$H"
             . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             . "zz\r\n");
    raw_case('501 unknown Transfer-Encoding', "POST /up/a HTTP/1.1\r\n$H"
             . "Transfer-Encoding: gzip\r\n\r\n");
    raw_case('405 TRACE', "TRACE /up/a HTTP/1.1\r\n$H\r\n");
    raw_case('505 HTTP/2.0 over HTTP/1', "GET /up/a HTTP/2.0\r\n$H\r\n");
    raw_case('413 Content-Length', "POST /big HTTP/1.1\r\n$H"
             . "Content-Length: 100\r\nConnection: close\r\n\r\n"
             . ('x' x 100));
    raw_case('413 Content-Length, HTTP/1.0 without Host',
             "POST /big HTTP/1.0\r\n$Header\r\nContent-Length: 100\r\n\r\n"
             . ('x' x 100));
    raw_case('413 chunked', "POST /big HTTP/1.1\r\n$H"
             . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             . "64\r\n" . ('x' x 100) . "\r\n0\r\n\r\n");
    raw_case('414', "GET /up/" . ('u' x 3000) . " HTTP/1.1\r\n$H\r\n");
    raw_case('494 header too large', "GET /up/a HTTP/1.1\r\n$H"
             . 'X-Big: ' . ('b' x 3000) . "\r\n\r\n");
    raw_case('494 trace header too large', "GET /up/a HTTP/1.1\r\n"
             . "Host: localhost\r\nX-Amzn-Trace-Id: Root=$Root;k="
             . ('v' x 3000) . "\r\n\r\n");
    raw_case('408 in the headers',
             "GET /up/a HTTP/1.1\r\n$H", timeout => 10);
    raw_case('408 in the body', "POST /up/a HTTP/1.1\r\n$H"
             . "Content-Length: 10\r\n\r\nabc", timeout => 10);
    raw_case('408 in the body, 0.9-like junk after',
             [[0, "POST /up/a HTTP/1.1\r\n$H" . "Content-Length: 4\r\n\r\n"],
              [0.2, "ab"]], timeout => 10);
    raw_case('499 while the upstream works', "GET /slow HTTP/1.1\r\n$H"
             . "Connection: close\r\n\r\n", abort => 0.5);
    raw_case('499 while the authorizer works', "GET /slowauth HTTP/1.1\r\n$H"
             . "Connection: close\r\n\r\n", abort => 0.5);
    raw_case('499 while a mirror works', "GET /slowmirror HTTP/1.1\r\n$H"
             . "Connection: close\r\n\r\n", abort => 0.5);
    raw_case('client gone before the headers', "GET /up/a HTTP/1.1\r\n",
             abort => 0.1);
    raw_case('return in the server block',
             "GET /up/a HTTP/1.1\r\nHost: ret.test\r\n$Header\r\n"
             . "Connection: close\r\n\r\n");
    raw_case('return in the server block, Sampled=?',
             "GET /up/a HTTP/1.1\r\nHost: ret.test\r\n"
             . "X-Amzn-Trace-Id: Root=$Root;Sampled=?\r\n"
             . "Connection: close\r\n\r\n");
    raw_case('return in the server block, HTTP/1.0 without Host',
             "GET /up/a HTTP/1.0\r\n\r\n");
    raw_case('keepalive: traced, then without context, then 0.9-like',
             "GET /up/k1 HTTP/1.1\r\n$H\r\n"
             . "GET /up/k2?n=1e309 HTTP/1.1\r\nHost: localhost\r\n\r\n"
             . "GET /ret HTTP/1.1\r\nHost: localhost\r\n"
             . "X-Amzn-Trace-Id: Root=$Root;Sampled=?\r\n\r\n"
             . "GET /auth HTTP/1.1\r\nHost: localhost\r\n"
             . "Connection: close\r\n\r\n");
    raw_case('keepalive: a 400 after a traced request',
             "GET /up/k1 HTTP/1.1\r\n$H\r\n"
             . "GET /up/k2 HTTP/1.1 x\r\n\r\n");
    raw_case('pipelined with bodies',
             "POST /up/p1 HTTP/1.1\r\n$H" . "Content-Length: 2\r\n\r\nab"
             . "POST /big HTTP/1.1\r\n$H" . "Content-Length: 20\r\n\r\n"
             . ('x' x 20)
             . "GET /ep HTTP/1.1\r\n$H" . "Connection: close\r\n\r\n");

    h2_case('GET in the server block return', path => '/up/a',
            headers => ['Host: ret.test', $Header]);
    h2_case('413 Content-Length', method => 'POST', path => '/big',
            body => 'x' x 100, headers => [$Header], alive_only => 1);
    h2_case('400 bad Host', path => '/up/a', headers => ['Host: a/b']);
}

# ---------------------------------------------------------------------------
# generated raw requests
# ---------------------------------------------------------------------------

our $Seed  = $ENV{XRAY_FUZZ_SEED}  // 20261130;
our $Count = $ENV{XRAY_FUZZ_COUNT} // 150;

sub pick { return $_[int rand @_] }

sub gen_request {
    my @paths = (@Paths, '/', '/nowhere', '/up/%00', '/up/../up/a',
                 '/up/a?xray=' . pick('bad', $Arg =~ s/^xray=//r, '%', ''));
    my $method = pick(qw(GET GET GET POST HEAD OPTIONS PUT DELETE PATCH FOO
                         get));
    my $path = pick(@paths);
    my $version = pick('', ' HTTP/1.0', ' HTTP/1.1', ' HTTP/1.1',
                       ' HTTP/1.1', ' HTTP/1.2', ' HTTP/9.9', ' HTTP/1.1 ');
    my $req = "$method $path$version\r\n";
    return $req if $version eq '';

    my @h;
    push @h, pick('Host: localhost', 'Host: localhost:1', 'Host: ret.test',
                  'Host: ', 'Host: [::1]', 'Host: a..b', 'Host: x.y.z')
        if rand() < 0.8;
    push @h, pick("$Header",
                  "X-Amzn-Trace-Id: Root=$Root;Sampled=?",
                  "X-Amzn-Trace-Id: Root=$Root;Self=1-2-3;Lineage=a:1;k=v",
                  'X-Amzn-Trace-Id: Root=1-bad',
                  'X-Amzn-Trace-Id: ',
                  "X-Amzn-Trace-Id: Root=$Root;" . ('k=v;' x 20),
                  "X-Amzn-Trace-Id: Root=$Root;Sampled=1\r\n"
                      . "X-Amzn-Trace-Id: Root=$Root;Sampled=0",
                  "x-amzn-trace-id: Root=$Root\r\nX-AMZN-TRACE-ID: Root=$Root",
                  "X_Amzn_Trace_Id: Root=$Root;Sampled=1")
        if rand() < 0.7;
    push @h, 'Origin: http://a.test' if rand() < 0.3;
    push @h, 'Access-Control-Request-Method: GET' if rand() < 0.2;
    push @h, 'Last-Event-ID: ' . pick('1', '', "\xc3\xa9") if rand() < 0.2;
    push @h, 'User-Agent: ' . pick('ua', "\xff\xfe", 'x' x 500)
        if rand() < 0.3;
    push @h, 'X-A: ' . pick('a', 'x' x 2000) if rand() < 0.3;
    push @h, 'Expect: 100-continue' if rand() < 0.1;
    push @h, pick('X_Under: 1', "Bad\x7fName: 1", 'X-Empty:', 'Cookie: c=1')
        if rand() < 0.2;
    my $body = '';
    my $b = rand();
    if ($b < 0.15) {
        $body = 'x' x int rand 40;
        push @h, 'Content-Length: ' . length $body;
    } elsif ($b < 0.25) {
        my $n = int rand 40;
        $body = sprintf("%x\r\n%s\r\n0\r\n\r\n", $n, 'y' x $n);
        $body = "0\r\n\r\n" if $n == 0;
        push @h, 'Transfer-Encoding: chunked';
    }
    push @h, 'Connection: close';
    @h = reverse @h if rand() < 0.3;
    return $req . CORE::join('', map { "$_\r\n" } @h) . "\r\n" . $body;
}

sub fuzz {
    srand $Seed;
    for my $i (1 .. $Count) {
        my $req = gen_request();
        (my $shown = $req) =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
        raw_case("generated #$i (seed $Seed): " . substr($shown, 0, 300),
                 $req);
    }
}

sub report {
    my ($what) = @_;
    Test::More::ok($Checked > 0, "$what: $Checked requests sent");
    Test::More::is(scalar(@Failures), 0,
                   "$what: every worker lived, every response as plain "
                   . "nginx's") or Test::More::diag(CORE::join "\n", @Failures);
    ($Checked, @Failures) = (0);
}

# the same locations for both servers
our $Kinds = <<'_EOC_';
location /up {
    client_max_body_size 1k;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location /sse {
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/sse/2/10;
}
location /ret {
    return 200 "ret\n";
}
location /r444 {
    return 444;
}
location /rw {
    rewrite ^/rw/(.*)$ /up/$1 last;
}
location /ep {
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/500;
    proxy_intercept_errors on;
    error_page 500 = /up/fallback;
}
location /ep404 {
    error_page 404 = @named;
    return 404;
}
location @named {
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location /tf {
    try_files /nonexistent @named;
}
location /auth {
    auth_request /_auth;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location /authno {
    auth_request /_authno;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location /slowauth {
    auth_request /_slowauth;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location = /_auth {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/204;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
}
location = /_authno {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/status/401;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
}
location = /_slowauth {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/2000;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
}
location /mirror {
    mirror /_mirror;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location = /_mirror {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/10;
}
location /slowmirror {
    mirror /_slowmirror;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
location = /_slowmirror {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/2000;
}
location /slow {
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/delay/2000;
}
location = /ssi {
    ssi on;
    ssi_types *;
    alias $TEST_NGINX_HTML_DIR/page.html;
}
location /big {
    client_max_body_size 10;
    proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
}
_EOC_

our $UserFiles = ">>> kinds.conf\n$Kinds" . <<'_EOF_';
>>> page.html
<!--# include virtual="/up/inc" -->|<!--# include virtual="/ret" -->
>>> rules.json
{"version": 2, "default": {"fixed_target": 0, "rate": 1}}
_EOF_

our $Xray = <<'_EOC_';
        xray on;
        xray_originate on;
        xray_trace_context $arg_xray;
        xray_cors on;
        xray_sse on;
        xray_annotation a $http_x_a;
        xray_annotation n $arg_n number;
        xray_metadata ua $http_user_agent;
        xray_capture_errors 4xx;
        xray_in_progress always;
        xray_record_query on;
        xray_redact "token=([^&]+)";
        xray_segment_name $host;
_EOC_

our $HttpConfig = <<'_EOC_' =~ s/\@XRAY\@\n/$Xray/gr;
    xray_daemon 127.0.0.1:$TEST_NGINX_XRAY_DAEMON_PORT flush=20ms;
    xray_sampling_rules $TEST_NGINX_HTML_DIR/rules.json;
    client_header_timeout 1s;
    client_body_timeout 1s;
    large_client_header_buffers 2 1k;
    underscores_in_headers on;

    server {
        listen 127.0.0.1:$TEST_NGINX_TRACED_PORT;
        listen 127.0.0.1:$TEST_NGINX_TRACED_H2_PORT http2;
        server_name localhost;
        add_header Access-Control-Allow-Origin "http://a.test" always;
@XRAY@
        include $TEST_NGINX_HTML_DIR/kinds.conf;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_PLAIN_PORT;
        listen 127.0.0.1:$TEST_NGINX_PLAIN_H2_PORT http2;
        server_name localhost;
        add_header Access-Control-Allow-Origin "http://a.test" always;
        include $TEST_NGINX_HTML_DIR/kinds.conf;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_TRACED_PORT;
        listen 127.0.0.1:$TEST_NGINX_TRACED_H2_PORT http2;
        server_name ret.test;
        add_header Access-Control-Allow-Origin "http://a.test" always;
@XRAY@
        return 302 /elsewhere;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_PLAIN_PORT;
        listen 127.0.0.1:$TEST_NGINX_PLAIN_H2_PORT http2;
        server_name ret.test;
        add_header Access-Control-Allow-Origin "http://a.test" always;
        return 302 /elsewhere;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: every kind of request, through every directive
--- http_config eval: $::HttpConfig
--- config
    location = /alive {
        return 200 "alive\n";
    }
--- user_files eval: $::UserFiles
--- init
main::kinds();
main::report('request kinds');
--- request
GET /alive
--- response_body
alive
--- no_error_log
exited on signal
[alert]
[crit]



=== TEST 2: early ends: 400s, 408, 413, 414, 494, 499, return in server
--- http_config eval: $::HttpConfig
--- config
    location = /alive {
        return 200 "alive\n";
    }
--- user_files eval: $::UserFiles
--- init
main::early();
main::report('early ends');
--- request
GET /alive
--- response_body
alive
--- no_error_log
exited on signal
[alert]
[crit]



=== TEST 3: generated raw requests
--- http_config eval: $::HttpConfig
--- config
    location = /alive {
        return 200 "alive\n";
    }
--- user_files eval: $::UserFiles
--- init
main::fuzz();
main::report('generated requests');
--- request
GET /alive
--- response_body
alive
--- no_error_log
exited on signal
[alert]
[crit]
