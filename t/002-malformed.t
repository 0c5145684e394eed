# A corpus of malformed trace headers.  Each one must be dropped whole: the
# upstream receives no X-Amzn-Trace-Id at all (the echo upstream answers with
# the exact request head it got), the drop is logged at info with its reason,
# and nothing is logged at error.  Headers that nginx itself refuses (CR, NUL)
# never reach the upstream either.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();

our $root = 'Root=1-5759e988-bd862e3fe1be46a994272793';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
_EOC_
    }

    if (!defined $block->request) {
        $block->set_value('request', 'GET /t');
    }

    # "--- dropped: <reason>": what this corpus entry must be dropped for
    if (defined $block->dropped) {
        $block->set_value('response_body_like',
            qr{\AGET /t HTTP/1\.0\r\nHost: 127\.0\.0\.1:\d+\r\n}
            . qr{Connection: close\r\n\r\n\z});
        $block->set_value('error_log',
            "xray: dropped client's X-Amzn-Trace-Id: " . $block->dropped);
        $block->set_value('no_error_log', '[error]');
    }
});

run_tests();

__DATA__

=== TEST 1: Root one digit short
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a99427279
--- dropped: bad Root



=== TEST 2: Root one digit long
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a9942727933
--- dropped: bad Root



=== TEST 3: Root of version 2
--- more_headers
X-Amzn-Trace-Id: Root=2-5759e988-bd862e3fe1be46a994272793
--- dropped: bad Root



=== TEST 4: Root with a wrong first delimiter
--- more_headers
X-Amzn-Trace-Id: Root=1_5759e988-bd862e3fe1be46a994272793
--- dropped: bad Root



=== TEST 5: Root with a wrong second delimiter
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988_bd862e3fe1be46a994272793
--- dropped: bad Root



=== TEST 6: Root with a non-hex epoch
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e98g-bd862e3fe1be46a994272793
--- dropped: bad Root



=== TEST 7: Root with a non-hex random part
--- more_headers
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a99427279z
--- dropped: bad Root



=== TEST 8: Root that is not a trace id at all
--- more_headers
X-Amzn-Trace-Id: Root=garbage
--- dropped: bad Root



=== TEST 9: no Root
--- more_headers
X-Amzn-Trace-Id: Parent=53995c3f42cd8ad8;Sampled=1
--- dropped: no Root



=== TEST 10: Parent of 15 digits
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Parent=53995c3f42cd8ad"
--- dropped: bad Parent



=== TEST 11: Parent of 17 digits
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Parent=53995c3f42cd8ad8a"
--- dropped: bad Parent



=== TEST 12: Parent not hex
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Parent=53995c3f42cd8adg"
--- dropped: bad Parent



=== TEST 13: Sampled=2
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Sampled=2"
--- dropped: bad Sampled



=== TEST 14: Sampled=yes
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Sampled=yes"
--- dropped: bad Sampled



=== TEST 15: an empty value
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Sampled="
--- dropped: bad field



=== TEST 16: Root twice
--- more_headers eval
"X-Amzn-Trace-Id: $::root;$::root"
--- dropped: duplicate key



=== TEST 17: Root twice, in different case
--- more_headers eval
"X-Amzn-Trace-Id: root=1-5759e988-bd862e3fe1be46a994272794;$::root"
--- dropped: duplicate key



=== TEST 18: Sampled twice, conflicting
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Sampled=1;sampled=0"
--- dropped: duplicate key



=== TEST 19: a field without '='
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Lineage"
--- dropped: bad field



=== TEST 20: a field with an empty key
--- more_headers eval
"X-Amzn-Trace-Id: $::root;=x"
--- dropped: bad field



=== TEST 21: a space inside a value
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=bar baz"
--- dropped: bad character



=== TEST 22: two headers folded into one with a comma
--- more_headers eval
"X-Amzn-Trace-Id: $::root,$::root"
--- dropped: bad character



=== TEST 23: a control byte
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=\x01"
--- dropped: bad character



=== TEST 24: DEL
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=a\x7fb"
--- dropped: bad character



=== TEST 25: UTF-8
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=caf\xc3\xa9"
--- dropped: bad character



=== TEST 26: a terminal escape sequence
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=\x1b[31mred"
--- dropped: bad character



=== TEST 27: a tab inside a value
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=a\tb"
--- dropped: bad character



=== TEST 28: 513 bytes
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=" . ("a" x (513 - length("$::root;Foo=")))
--- dropped: header too long



=== TEST 29: 17 fields
--- more_headers eval
"X-Amzn-Trace-Id: $::root" . CORE::join("", map { ";K$_=v" } 1 .. 16)
--- dropped: too many fields



=== TEST 30: an empty header
--- more_headers eval
"X-Amzn-Trace-Id: "
--- dropped: empty header



=== TEST 31: separators only
--- more_headers eval
"X-Amzn-Trace-Id: ; ;"
--- dropped: no Root



=== TEST 32: Self without a value
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Self="
--- dropped: bad field



=== TEST 33: a space inside a key
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Fo o=bar"
--- dropped: bad character



=== TEST 34: a key with characters outside [A-Za-z0-9_.-]
--- more_headers eval
"X-Amzn-Trace-Id: $::root;F{o}=bar"
--- dropped: bad field



=== TEST 35: a 65-byte key
--- more_headers eval
"X-Amzn-Trace-Id: $::root;" . ("k" x 65) . "=v"
--- dropped: bad field



=== TEST 36: NUL inside the value: nginx refuses the request, upstream untouched
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=a\x00b"
--- error_code: 400
--- no_error_log
xray:



=== TEST 37: CR inside the value: nginx refuses the request, upstream untouched
--- more_headers eval
"X-Amzn-Trace-Id: $::root\rX-Injected: 1"
--- error_code: 400
--- no_error_log
xray:



=== TEST 38: exactly 512 bytes is accepted and forwarded whole
--- http_config
    xray_sampling_rules $TEST_NGINX_HTML_DIR/never.json;
--- config
    location /t {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- more_headers eval
"X-Amzn-Trace-Id: $::root;Foo=" . ("a" x (512 - length("$::root;Foo=")))
--- response_body_like eval
my $foo = "Foo=" . ("a" x (512 - length("$::root;Foo=")));
qr{\AGET /t HTTP/1\.0\r\nHost: 127\.0\.0\.1:\d+\r\nConnection: close\r\n}
. qr{X-Amzn-Trace-Id: $::root;Parent=[0-9a-f]{16};Sampled=0;$foo\r\n\r\n\z}
--- no_error_log
[error]
dropped



=== TEST 39: dropping the header leaves every other header where nginx knows it
--- config
    location /t {
        xray on;
        return 200 "host=$http_host ua=$http_user_agent xff=$http_x_forwarded_for cookie=$http_cookie\n";
    }
--- more_headers
X-Amzn-Trace-Id: garbage
Host: good.example
User-Agent: ua/1.0
X-Forwarded-For: 1.2.3.4
Cookie: a=1
--- response_body
host=good.example ua=ua/1.0 xff=1.2.3.4 cookie=a=1
--- error_log
xray: dropped client's X-Amzn-Trace-Id: bad field



=== TEST 40: so does folding identical copies into one
--- config
    location /t {
        xray on;
        return 200 "host=$http_host ua=$http_user_agent xff=$http_x_forwarded_for\n";
    }
--- more_headers eval
"X-Amzn-Trace-Id: $::root
X-Amzn-Trace-Id: $::root
Host: good.example
User-Agent: ua/1.0
X-Forwarded-For: 1.2.3.4"
--- response_body
host=good.example ua=ua/1.0 xff=1.2.3.4
--- no_error_log
[error]
