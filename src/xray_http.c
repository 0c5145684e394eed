/*
 * The HTTP/1.1 the sampling poller speaks with the daemon's TCP proxy: its
 * request, and a reply parser that is strict about framing (one length,
 * bounded headers and body) and indifferent to anything else.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "xray_http.h"


#define XRAY_HTTP_LENGTH_DIGITS  18        /* below 10^18: no overflow */


static const char *xray_http_find_end(const char *buf, size_t len);
static int xray_http_header(const char *line, size_t len, const char *name,
    const char **value, size_t *value_len);
static int xray_http_is(const char *s, size_t len, const char *word);
static xray_http_rc_e xray_http_chunked(char *body, size_t len, int eof,
    size_t max, xray_http_reply_t *reply, char *err);
static xray_http_rc_e xray_http_error(char *err, const char *fmt, ...);


int
xray_http_request(char *buf, size_t size, const char *path, const char *host,
    const char *body, size_t body_len)
{
    int  n;

    n = snprintf(buf, size,
                 "POST %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %lu\r\n"
                 "Connection: close\r\n"
                 "\r\n",
                 path, host, (unsigned long) body_len);

    if (n < 0 || (size_t) n >= size || size - (size_t) n < body_len) {
        return -1;
    }

    memcpy(buf + n, body, body_len);

    return n + (int) body_len;
}


xray_http_rc_e
xray_http_reply_parse(char *buf, size_t len, int eof, size_t max,
    xray_http_reply_t *reply, char *err)
{
    int          chunked, has_length, status;
    size_t       i, n, vlen, hlen, avail;
    uint64_t     length, v;
    const char  *end, *line, *next, *value;

    reply->status = 0;
    reply->body = NULL;
    reply->body_len = 0;

    end = xray_http_find_end(buf, len);

    if (end == NULL) {
        if (len > XRAY_HTTP_HEADER_MAX) {
            return xray_http_error(err, "reply headers over %d bytes",
                                   XRAY_HTTP_HEADER_MAX);
        }

        if (eof) {
            return xray_http_error(err, len ? "connection closed inside the "
                                              "reply headers"
                                            : "connection closed without a "
                                              "reply");
        }

        return XRAY_HTTP_AGAIN;
    }

    hlen = (size_t) (end - buf);

    /* HTTP/1.x NNN */

    if (hlen < 12 || memcmp(buf, "HTTP/1.", 7) != 0
        || buf[7] < '0' || buf[7] > '9' || buf[8] != ' '
        || buf[9] < '1' || buf[9] > '5'
        || buf[10] < '0' || buf[10] > '9'
        || buf[11] < '0' || buf[11] > '9'
        || (hlen > 12 && buf[12] != ' ' && buf[12] != '\r'))
    {
        return xray_http_error(err, "not an HTTP/1.x reply");
    }

    status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');

    if (status < 200) {
        return xray_http_error(err, "unexpected status %d", status);
    }

    chunked = 0;
    has_length = 0;
    length = 0;

    line = memchr(buf, '\n', hlen);
    line = line ? line + 1 : end;

    for ( /* void */ ; line < end; line = next + 1) {
        next = memchr(line, '\n', (size_t) (end - line));
        if (next == NULL) {
            next = end;
        }

        n = (size_t) (next - line);

        if (n && line[n - 1] == '\r') {
            n--;
        }

        if (xray_http_header(line, n, "content-length", &value, &vlen)) {
            if (vlen == 0 || vlen > XRAY_HTTP_LENGTH_DIGITS) {
                return xray_http_error(err, "invalid Content-Length");
            }

            v = 0;

            for (i = 0; i < vlen; i++) {
                if (value[i] < '0' || value[i] > '9') {
                    return xray_http_error(err, "invalid Content-Length");
                }

                v = v * 10 + (uint64_t) (value[i] - '0');
            }

            if (has_length && v != length) {
                return xray_http_error(err, "two Content-Length values");
            }

            has_length = 1;
            length = v;
            continue;
        }

        if (xray_http_header(line, n, "transfer-encoding", &value, &vlen)) {
            if (!xray_http_is(value, vlen, "chunked")) {
                return xray_http_error(err, "unsupported Transfer-Encoding");
            }

            chunked = 1;
        }
    }

    if (chunked && has_length) {
        return xray_http_error(err, "both Content-Length and "
                                    "Transfer-Encoding");
    }

    reply->status = status;
    reply->body = buf + hlen;
    avail = len - hlen;

    if (status == 204 || status == 304) {
        return XRAY_HTTP_DONE;
    }

    if (chunked) {
        return xray_http_chunked(buf + hlen, avail, eof, max, reply, err);
    }

    if (has_length) {
        if (length > max) {
            return xray_http_error(err, "reply body of %llu bytes, over the "
                                        "%lu-byte limit",
                                   (unsigned long long) length,
                                   (unsigned long) max);
        }

        if (avail >= length) {
            reply->body_len = (size_t) length;
            return XRAY_HTTP_DONE;
        }

        if (eof) {
            return xray_http_error(err, "connection closed %lu bytes into a "
                                        "body of %llu",
                                   (unsigned long) avail,
                                   (unsigned long long) length);
        }

        return XRAY_HTTP_AGAIN;
    }

    /* delimited by the close */

    if (avail > max) {
        return xray_http_error(err, "reply body over the %lu-byte limit",
                               (unsigned long) max);
    }

    if (eof) {
        reply->body_len = avail;
        return XRAY_HTTP_DONE;
    }

    return XRAY_HTTP_AGAIN;
}


/* the end of the headers: just past the blank line; NULL if not there */

static const char *
xray_http_find_end(const char *buf, size_t len)
{
    size_t       i;
    const char  *p;

    if (len > XRAY_HTTP_HEADER_MAX) {
        len = XRAY_HTTP_HEADER_MAX;
    }

    for (i = 0; i + 1 < len; i++) {
        p = buf + i;

        if (p[0] == '\n' && p[1] == '\n') {
            return p + 2;
        }

        if (i + 3 < len && p[0] == '\r' && p[1] == '\n' && p[2] == '\r'
            && p[3] == '\n')
        {
            return p + 4;
        }
    }

    return NULL;
}


/* a header line of that (lowercase) name: its value without blanks */

static int
xray_http_header(const char *line, size_t len, const char *name,
    const char **value, size_t *value_len)
{
    size_t  i, n;

    n = strlen(name);

    if (len <= n || line[n] != ':') {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if ((line[i] | 0x20) != name[i]) {
            return 0;
        }
    }

    line += n + 1;
    len -= n + 1;

    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }

    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
        len--;
    }

    *value = line;
    *value_len = len;

    return 1;
}


static int
xray_http_is(const char *s, size_t len, const char *word)
{
    size_t  i;

    if (len != strlen(word)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((s[i] | 0x20) != word[i]) {
            return 0;
        }
    }

    return 1;
}


/*
 * A chunked body: checked whole first (sizes, CRLFs, the size limit), and
 * only then decoded in place, so that a body still arriving is parsed again
 * from its start, unchanged, next time.
 */

static xray_http_rc_e
xray_http_chunked(char *body, size_t len, int eof, size_t max,
    xray_http_reply_t *reply, char *err)
{
    int          pass, digits;
    char         c;
    size_t       pos, total, size, out, d;

    for (pass = 0; pass < 2; pass++) {
        pos = 0;
        total = 0;
        out = 0;

        for ( ;; ) {

            /* chunk-size [; extensions] CRLF */

            size = 0;
            digits = 0;

            while (pos < len) {
                c = body[pos];

                if (c >= '0' && c <= '9') {
                    d = (size_t) (c - '0');

                } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                    d = (size_t) ((c | 0x20) - 'a' + 10);

                } else {
                    break;
                }

                if (++digits > 8) {
                    return xray_http_error(err, "chunk size too large");
                }

                size = size * 16 + d;
                pos++;
            }

            if (pos == len) {
                goto again;
            }

            if (digits == 0) {
                return xray_http_error(err, "invalid chunk size");
            }

            while (pos < len && body[pos] != '\n') {
                pos++;
            }

            if (pos == len) {
                goto again;
            }

            pos++;

            if (size == 0) {
                break;
            }

            if (size > max - total) {
                return xray_http_error(err, "reply body over the %lu-byte "
                                            "limit", (unsigned long) max);
            }

            if (len - pos < size + 2) {
                goto again;
            }

            if (body[pos + size] == '\r') {
                if (body[pos + size + 1] != '\n') {
                    return xray_http_error(err, "chunk not followed by CRLF");
                }

            } else if (body[pos + size] != '\n') {
                return xray_http_error(err, "chunk not followed by CRLF");
            }

            if (pass == 1) {
                memmove(body + out, body + pos, size);
                out += size;
            }

            total += size;
            pos += size + (body[pos + size] == '\r' ? 2 : 1);
        }

        /* trailer lines, up to an empty one */

        for ( ;; ) {
            if (pos == len) {
                goto again;
            }

            if (body[pos] == '\n') {
                break;
            }

            if (body[pos] == '\r' && pos + 1 < len && body[pos + 1] == '\n') {
                break;
            }

            while (pos < len && body[pos] != '\n') {
                pos++;
            }

            if (pos == len) {
                goto again;
            }

            pos++;
        }
    }

    reply->body_len = out;

    return XRAY_HTTP_DONE;

again:

    if (eof) {
        return xray_http_error(err, "connection closed inside a chunked "
                                    "body");
    }

    return XRAY_HTTP_AGAIN;
}


static xray_http_rc_e
xray_http_error(char *err, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(err, XRAY_HTTP_ERR_LEN, fmt, args);
    va_end(args);

    return XRAY_HTTP_ERROR;
}
