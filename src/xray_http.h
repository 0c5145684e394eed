/*
 * The HTTP/1.1 of the X-Ray daemon's TCP proxy, as much as the sampling
 * poller needs: one POST with a JSON body, and its reply read into one
 * buffer, with a Content-Length, chunked, or delimited by the close.
 *
 * Pure C: no nginx types, no allocation.  The reply is parsed from the
 * start of what was received so far, each time more arrives (a reply is at
 * most XRAY_HTTP_HEADER_MAX + XRAY_SAMPLING_REPLY_MAX bytes, and the poller
 * reads it in large pieces); a chunked body is decoded in place.
 */

#ifndef XRAY_HTTP_H
#define XRAY_HTTP_H

#include <stddef.h>


#define XRAY_HTTP_HEADER_MAX  16384        /* status line and headers */
#define XRAY_HTTP_ERR_LEN     128


typedef enum {
    XRAY_HTTP_AGAIN = 0,                   /* the reply is not complete */
    XRAY_HTTP_DONE,                        /* it is: status and body set */
    XRAY_HTTP_ERROR                        /* it never will be: err set */
} xray_http_rc_e;


typedef struct {
    int          status;                   /* 100..599 */
    const char  *body;                     /* inside the buffer given */
    size_t       body_len;
} xray_http_reply_t;


/*
 * "POST path HTTP/1.1" with Host, Content-Type: application/json,
 * Content-Length and Connection: close, then body.  Returns the length
 * written into buf, or -1 when size is too small.
 */
int xray_http_request(char *buf, size_t size, const char *path,
    const char *host, const char *body, size_t body_len);

/*
 * Parses the reply received so far, buf[0..len); eof says the peer closed.
 * max is the largest body taken.  A chunked body is decoded in place, so
 * buf is changed once the reply is DONE.
 */
xray_http_rc_e xray_http_reply_parse(char *buf, size_t len, int eof,
    size_t max, xray_http_reply_t *reply, char *err);

#endif /* XRAY_HTTP_H */
