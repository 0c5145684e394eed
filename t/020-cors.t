# xray_cors: browsers send X-Amzn-Trace-Id on fetch(), so preflights must
# allow it and page scripts may read it.  The module extends a CORS policy
# that the upstream or add_header set; it never creates or widens one.
# The echo upstream's /header/NAME/VALUE/ paths make it answer with headers.

use Test::Nginx::Socket 'no_plan';
use XRayTest;

log_level('info');
no_shuffle();
no_long_string();
no_root_location();

our $Origin = 'Access-Control-Allow-Origin/https%3A%2F%2Fapp.example.com';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location / {
        xray on;
        xray_cors on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
_EOC_
    }

    # a browser's preflight for a fetch() that sends the trace header
    if (!defined $block->more_headers && $block->request =~ /^OPTIONS/) {
        $block->set_value('more_headers', <<'_EOH_');
Origin: https://app.example.com
Access-Control-Request-Method: GET
Access-Control-Request-Headers: x-amzn-trace-id
_EOH_
    }
});

run_tests();

__DATA__

=== TEST 1: preflight: added to the upstream's list, on the same line
--- request eval
"OPTIONS /header/$::Origin/header/Access-Control-Allow-Headers/Content-Type%2C%20Authorization/x"
--- raw_response_headers_like chomp
\r\nAccess-Control-Allow-Headers: Content-Type, Authorization, X-Amzn-Trace-Id\r\n
--- raw_response_headers_unlike
Access-Control-Allow-Headers:.*\r\n(?s:.*)Access-Control-Allow-Headers:
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
!Access-Control-Expose-Headers



=== TEST 2: preflight with a policy but no list: the list is X-Amzn-Trace-Id
--- request eval
"OPTIONS /header/$::Origin/x"
--- response_headers
Access-Control-Allow-Headers: X-Amzn-Trace-Id
Access-Control-Allow-Origin: https://app.example.com



=== TEST 3: already listed in another case: not listed twice
--- request eval
"OPTIONS /header/$::Origin/header/Access-Control-Allow-Headers/x-amzn-trace-id%2Ccontent-type/x"
--- raw_response_headers_like chomp
\r\nAccess-Control-Allow-Headers: x-amzn-trace-id, content-type\r\n



=== TEST 4: several lines from the upstream become one, without repeats
--- request eval
"OPTIONS /header/$::Origin/header/Access-Control-Allow-Headers/Content-Type/header/Access-Control-Allow-Headers/content-type%2C%20X-Foo/x"
--- raw_response_headers_like chomp
\r\nAccess-Control-Allow-Headers: Content-Type, X-Foo, X-Amzn-Trace-Id\r\n
--- raw_response_headers_unlike
Access-Control-Allow-Headers:.*\r\n(?s:.*)Access-Control-Allow-Headers:



=== TEST 5: nginx answers the preflight itself with add_header
--- config
    location /t {
        xray on;
        xray_cors on;
        add_header Access-Control-Allow-Origin https://app.example.com;
        add_header Access-Control-Allow-Methods "GET, POST";
        add_header Access-Control-Allow-Headers Content-Type;
        add_header Access-Control-Allow-Credentials true;
        if ($request_method = OPTIONS) {
            return 204;
        }
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request
OPTIONS /t
--- error_code: 204
--- response_headers
Access-Control-Allow-Headers: Content-Type, X-Amzn-Trace-Id
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Methods: GET, POST
Access-Control-Allow-Credentials: true



=== TEST 6: add_header and the upstream both list headers: one merged line
--- config
    location / {
        xray on;
        xray_cors on;
        add_header Access-Control-Allow-Headers "Authorization, content-type" always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"OPTIONS /header/$::Origin/header/Access-Control-Allow-Headers/Content-Type/x"
--- raw_response_headers_like chomp
\r\nAccess-Control-Allow-Headers: Content-Type, Authorization, X-Amzn-Trace-Id\r\n
--- raw_response_headers_unlike
Access-Control-Allow-Headers:.*\r\n(?s:.*)Access-Control-Allow-Headers:



=== TEST 7: a response with no CORS policy is left exactly alone
--- request
OPTIONS /header/Access-Control-Allow-Headers/Content-Type/x
--- response_headers
Access-Control-Allow-Headers: Content-Type
!Access-Control-Allow-Origin
!Access-Control-Expose-Headers



=== TEST 8: a plain response with no CORS policy gets nothing
--- request
GET /x
--- more_headers
Origin: https://app.example.com
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?
--- raw_response_headers_unlike
Access-Control-



=== TEST 9: an actual CORS response exposes the header to page scripts
--- request eval
"GET /header/$::Origin/header/Access-Control-Expose-Headers/X-Request-Id/x"
--- more_headers
Origin: https://app.example.com
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?
--- response_headers
Access-Control-Expose-Headers: X-Request-Id, X-Amzn-Trace-Id
Access-Control-Allow-Origin: https://app.example.com
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1
!Access-Control-Allow-Headers



=== TEST 10: who may call is never touched: origin, credentials, methods
--- request eval
"OPTIONS /header/Access-Control-Allow-Origin/null/header/Access-Control-Allow-Credentials/false/header/Access-Control-Allow-Methods/PUT/x"
--- raw_response_headers_like chomp
\r\nAccess-Control-Allow-Origin: null\r\n(?s:.*)Access-Control-Allow-Credentials: false\r\n(?s:.*)Access-Control-Allow-Methods: PUT\r\n
--- response_headers
Access-Control-Allow-Headers: X-Amzn-Trace-Id



=== TEST 11: xray_cors off: the upstream's answer passes unchanged
--- config
    location / {
        xray on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"OPTIONS /header/$::Origin/header/Access-Control-Allow-Headers/Content-Type/x"
--- response_headers
Access-Control-Allow-Headers: Content-Type



=== TEST 12: xray_cors works where tracing is off too
--- config
    location / {
        xray_cors on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
    }
--- request eval
"OPTIONS /header/$::Origin/x"
--- response_headers
Access-Control-Allow-Headers: X-Amzn-Trace-Id



=== TEST 13: comma-separated without spaces: written with ", ", nothing cut
--- request eval
"GET /header/$::Origin/header/Access-Control-Expose-Headers/ETag%2CContent-Length/x"
--- more_headers
Origin: https://app.example.com
--- raw_response_headers_like chomp
\r\nAccess-Control-Expose-Headers: ETag, Content-Length, X-Amzn-Trace-Id\r\n



=== TEST 14: a list the client chooses, echoed by add_header, one-letter tokens
--- config
    location /t {
        xray_cors on;
        add_header Access-Control-Allow-Origin https://app.example.com;
        add_header Access-Control-Expose-Headers $arg_h;
        return 200 "ok\n";
    }
--- request
GET /t?h=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,,,,,,,,,,,,,,,a,b,c
--- raw_response_headers_like chomp
\r\nAccess-Control-Expose-Headers: a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x, y, z, X-Amzn-Trace-Id\r\n
