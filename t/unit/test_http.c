/*
 * Unit tests of src/xray_http.c: the poller's request byte for byte, and
 * replies framed every way the daemon's proxy may frame them, cut at every
 * byte, over the limits, and malformed.
 */

#include <stdlib.h>

#include "tap.h"
#include "xray_http.h"


#define T_MAX  64


/* the reply parsed once whole; and AGAIN for every shorter prefix */
static xray_http_rc_e
t_parse(const char *text, int eof, xray_http_reply_t *reply, char *err,
    int *prefixes_again)
{
    size_t          len, i;
    char           *buf;
    xray_http_rc_e  rc;
    static char     keep[4096];

    len = strlen(text);
    buf = malloc(len + 1);
    if (buf == NULL) {
        abort();
    }

    *prefixes_again = 1;

    for (i = 0; i < len; i++) {
        memcpy(buf, text, i);

        if (xray_http_reply_parse(buf, i, 0, T_MAX, reply, err)
            != XRAY_HTTP_AGAIN)
        {
            *prefixes_again = 0;
        }
    }

    memcpy(buf, text, len);
    err[0] = '\0';
    rc = xray_http_reply_parse(buf, len, eof, T_MAX, reply, err);

    /* keep the body readable after return: it points into buf */
    memcpy(keep, buf, len);

    if (reply->body) {
        reply->body = keep + (reply->body - buf);
    }

    free(buf);

    return rc;
}


static void
t_ok(const char *what, const char *text, int eof, int status,
    const char *body)
{
    int                again;
    char               err[XRAY_HTTP_ERR_LEN];
    xray_http_reply_t  r;

    is_int(t_parse(text, eof, &r, err, &again), XRAY_HTTP_DONE, "%s", what);
    ok(again, "%s: every shorter prefix is AGAIN", what);
    is_int(r.status, status, "%s: status", what);
    is_mem(r.body, r.body_len, body, "%s: body", what);
}


static void
t_err(const char *what, const char *text, int eof, const char *want)
{
    int                again;
    char               err[XRAY_HTTP_ERR_LEN];
    xray_http_reply_t  r;

    is_int(t_parse(text, eof, &r, err, &again), XRAY_HTTP_ERROR, "%s", what);

    if (!ok(strcmp(err, want) == 0, "%s: %s", what, want)) {
        printf("#   got '%s'\n", err);
    }
}


int
main(void)
{
    int                n;
    char               buf[256], err[XRAY_HTTP_ERR_LEN], big[20000];
    xray_http_reply_t  r;

    n = xray_http_request(buf, sizeof(buf), "/SamplingTargets",
                          "127.0.0.1:2000", "{}", 2);
    is_mem(buf, n,
           "POST /SamplingTargets HTTP/1.1\r\nHost: 127.0.0.1:2000\r\n"
           "Content-Type: application/json\r\nContent-Length: 2\r\n"
           "Connection: close\r\n\r\n{}", "the request");
    is_int(xray_http_request(buf, (size_t) n - 1, "/SamplingTargets",
                             "127.0.0.1:2000", "{}", 2), -1,
           "one byte short: -1");
    is_int(xray_http_request(buf, (size_t) n, "/SamplingTargets",
                             "127.0.0.1:2000", "{}", 2), n,
           "exactly its size: no NUL needed");

    t_ok("Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n"
         "Content-Type: application/json\r\n\r\n{\"a\":1}", 0, 200,
         "{\"a\":1}");
    t_ok("content-length in any case, blanks around",
         "HTTP/1.0 500 Internal\r\ncOnTeNt-LeNgTh:  2 \r\n\r\nxy", 0, 500,
         "xy");
    t_ok("chunked, with an extension and a trailer",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n", 0, 200,
         "abc0123456789");
    t_ok("chunked, bare LFs", "HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n"
         "\n2\nab\n0\n\n", 0, 200, "ab");
    t_ok("204: no body", "HTTP/1.1 204 No Content\r\n\r\n", 0, 204, "");
    t_ok("delimited by the close", "HTTP/1.1 200 OK\r\n\r\nabc", 1, 200,
         "abc");

    /* limits: a body of exactly T_MAX is taken, one byte more is not */

    memset(big, 'b', sizeof(big));
    n = sprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", T_MAX);
    memcpy(big, buf, n);
    ok(xray_http_reply_parse(big, n + T_MAX, 0, T_MAX, &r, err)
       == XRAY_HTTP_DONE && r.body_len == T_MAX, "a body of the limit");
    n = sprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                T_MAX + 1);
    memcpy(big, buf, n);
    ok(xray_http_reply_parse(big, n, 0, T_MAX, &r, err) == XRAY_HTTP_ERROR
       && strcmp(err, "reply body of 65 bytes, over the 64-byte limit") == 0,
       "one over, refused before it arrives: %s", err);

    n = sprintf(buf, "HTTP/1.1 200 OK\r\n\r\n");
    memcpy(big, buf, n);
    ok(xray_http_reply_parse(big, n + T_MAX + 1, 0, T_MAX, &r, err)
       == XRAY_HTTP_ERROR, "a close-delimited body over the limit: %s",
       err);

    n = sprintf(buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "40\r\n");
    memcpy(big, buf, n);
    memcpy(big + n + 64, "\r\n1\r\nx\r\n0\r\n\r\n", 13);
    ok(xray_http_reply_parse(big, n + 64 + 13, 0, T_MAX, &r, err)
       == XRAY_HTTP_ERROR, "chunks over the limit: %s", err);

    memset(big, 'h', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    ok(xray_http_reply_parse(big, XRAY_HTTP_HEADER_MAX, 0, T_MAX, &r, err)
       == XRAY_HTTP_AGAIN, "headers of 16384 bytes so far: AGAIN");
    ok(xray_http_reply_parse(big, XRAY_HTTP_HEADER_MAX + 1, 0, T_MAX, &r,
                             err) == XRAY_HTTP_ERROR
       && strcmp(err, "reply headers over 16384 bytes") == 0,
       "one more: %s", err);

    t_err("nothing", "", 1, "connection closed without a reply");
    t_err("cut in the headers", "HTTP/1.1 200 OK\r\nContent-", 1,
          "connection closed inside the reply headers");
    t_err("cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
          "abc", 1, "connection closed 3 bytes into a body of 9");
    t_err("cut in a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
          "\r\n\r\n5\r\nab", 1, "connection closed inside a chunked body");
    t_err("garbage", "<html>hello</html>\r\n\r\n", 0,
          "not an HTTP/1.x reply");
    t_err("HTTP/2", "HTTP/2 200\r\n\r\n", 0, "not an HTTP/1.x reply");
    t_err("100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", 0,
          "unexpected status 100");
    t_err("a negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n"
          "\r\n", 0, "invalid Content-Length");
    t_err("a huge length", "HTTP/1.1 200 OK\r\nContent-Length: "
          "99999999999999999999\r\n\r\n", 0, "invalid Content-Length");
    t_err("two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
          "Content-Length: 2\r\n\r\nab", 0, "two Content-Length values");
    t_err("length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", 0,
          "both Content-Length and Transfer-Encoding");
    t_err("gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
          "unsupported Transfer-Encoding");
    t_err("a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\nzz\r\n", 0, "invalid chunk size");
    t_err("a chunk size of 9 digits", "HTTP/1.1 200 OK\r\nTransfer-Encoding:"
          " chunked\r\n\r\n100000000\r\n", 0, "chunk size too large");
    t_err("a chunk without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding:"
          " chunked\r\n\r\n1\r\nabc\r\n", 0, "chunk not followed by CRLF");

    return done_testing();
}
