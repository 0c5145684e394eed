/*
 * libFuzzer target for src/xray_http.c: the daemon proxy's replies.
 *
 *     make fuzz    (or build/fuzz/fuzz_http t/unit/corpus/http)
 *
 * The input is parsed as a reply received whole, then closed, then in two
 * parts: the body found must lie inside the input and within the limit,
 * a prefix of a complete reply must never be an error unless the whole is,
 * and the same input must give the same answer each time.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xray_http.h"


#define F_MAX  4096


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
f_check(int cond)
{
    if (!cond) {
        abort();
    }
}


static xray_http_rc_e
f_parse(const uint8_t *data, size_t size, int eof, xray_http_reply_t *r)
{
    char            *buf, err[XRAY_HTTP_ERR_LEN];
    xray_http_rc_e   rc;

    buf = malloc(size ? size : 1);
    f_check(buf != NULL);
    memcpy(buf, data, size);
    memset(err, 0, sizeof(err));

    rc = xray_http_reply_parse(buf, size, eof, F_MAX, r, err);

    if (rc == XRAY_HTTP_DONE) {
        f_check(r->status >= 200 && r->status <= 599);
        f_check(r->body >= buf && r->body_len <= F_MAX);
        f_check((size_t) (r->body - buf) + r->body_len <= size);

    } else if (rc == XRAY_HTTP_ERROR) {
        f_check(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);

    } else {
        f_check(rc == XRAY_HTTP_AGAIN && !eof);
    }

    free(buf);

    return rc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xray_http_rc_e     whole, closed, part;
    xray_http_reply_t  r;

    whole = f_parse(data, size, 0, &r);
    closed = f_parse(data, size, 1, &r);

    f_check(whole != XRAY_HTTP_DONE || closed == XRAY_HTTP_DONE);

    if (size > 1) {
        part = f_parse(data, size / 2, 0, &r);

        /* an error in a prefix is an error of the whole */
        f_check(part != XRAY_HTTP_ERROR || whole == XRAY_HTTP_ERROR);
    }

    f_check(f_parse(data, size, 0, &r) == whole);

    return 0;
}
