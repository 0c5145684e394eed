/*
 * libFuzzer target for xray_daemon_addr_parse() in src/xray_daemon_addr.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     t/unit/fuzz_daemon_addr.c src/xray_daemon_addr.c -o /tmp/fuzz_daemon_addr
 * /tmp/fuzz_daemon_addr -max_total_time=60 t/unit/corpus/daemon_addr
 *
 * A refusal must leave addr alone and write a printable, NUL-terminated
 * message within errlen.  An accepted address must hold hosts inside the
 * input, ports in 1..65535, and must write back to a value that parses to
 * the same hosts and ports.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xray_daemon_addr.h"


#define check(cond)  do { if (!(cond)) { __builtin_trap(); } } while (0)

#define ADDR_MAX  600


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
inside(const char *p, size_t len, const uint8_t *data, size_t size)
{
    return (const uint8_t *) p >= data && len <= size
           && (size_t) ((const uint8_t *) p - data) <= size - len;
}


static void
check_endpoint(const xray_daemon_endpoint_t *ep, const uint8_t *data,
    size_t size)
{
    size_t  i;
    int     colon;

    check(ep->host != NULL && ep->host_len > 0);
    check(inside(ep->host, ep->host_len, data, size));
    check(ep->port >= 1 && ep->port <= 65535);

    colon = 0;

    for (i = 0; i < ep->host_len; i++) {
        check(ep->host[i] > 0x20 && ep->host[i] < 0x7f);
        check(ep->host[i] != '[' && ep->host[i] != ']');
        colon |= (ep->host[i] == ':');
    }

    /* an IPv6 host comes from inside brackets */

    if (colon) {
        check(ep->host > (const char *) data && ep->host[-1] == '[');
        check(inside(ep->host, ep->host_len + 1, data, size)
              && ep->host[ep->host_len] == ']');
    }
}


static size_t
write_endpoint(char *p, const char *tag, const xray_daemon_endpoint_t *ep)
{
    int  br;

    br = (memchr(ep->host, ':', ep->host_len) != NULL);

    return sprintf(p, "%s%s%.*s%s:%u", tag, br ? "[" : "",
                   (int) ep->host_len, ep->host, br ? "]" : "", ep->port);
}


static void
check_same(const xray_daemon_endpoint_t *a, const xray_daemon_endpoint_t *b)
{
    check(a->port == b->port);
    check(a->host_len == b->host_len);
    check(memcmp(a->host, b->host, a->host_len) == 0);
}


static void
check_err(const char *err, size_t errlen)
{
    size_t  i;

    for (i = 0; i < errlen && err[i] != '\0'; i++) {
        check(err[i] >= 0x20 && err[i] < 0x7f);
    }

    check(i < errlen);
    check(errlen == 1 || i > 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc, rc2;
    char               *err, *small, out[ADDR_MAX];
    size_t              n, smalllen;
    xray_daemon_addr_t  a, b, before;

    err = malloc(XRAY_DAEMON_ERR_LEN);
    smalllen = 1 + size % 24;
    small = malloc(smalllen);

    if (err == NULL || small == NULL) {
        free(err);
        free(small);
        return 0;
    }

    memset(&a, 0xa5, sizeof(a));
    before = a;
    err[0] = '\0';

    rc = xray_daemon_addr_parse((const char *) data, size, &a, err,
                                XRAY_DAEMON_ERR_LEN);
    check(rc == 0 || rc == -1);

    /* the same verdict with a short error buffer, which must not overflow */

    rc2 = xray_daemon_addr_parse((const char *) data, size, &b, small,
                                 smalllen);
    check(rc2 == rc);

    if (rc == -1) {
        check(memcmp(&a, &before, sizeof(a)) == 0);
        check_err(err, XRAY_DAEMON_ERR_LEN);
        check_err(small, smalllen);
        check(strncmp(err, small, smalllen - 1) == 0);
        goto done;
    }

    check(size > 0);
    check_endpoint(&a.udp, data, size);
    check_endpoint(&a.tcp, data, size);

    /* written back in the tagged form, it parses to the same */

    n = write_endpoint(out, "tcp:", &a.tcp);
    out[n++] = ' ';
    n += write_endpoint(out + n, "udp:", &a.udp);

    check(xray_daemon_addr_parse(out, n, &b, err, XRAY_DAEMON_ERR_LEN) == 0);
    check_same(&a.udp, &b.udp);
    check_same(&a.tcp, &b.tcp);

    /* and one side alone as host:port ("udp:2000" is the host "udp") */

    n = write_endpoint(out, "", &a.udp);

    check(xray_daemon_addr_parse(out, n, &b, err, XRAY_DAEMON_ERR_LEN) == 0);
    check_same(&a.udp, &b.udp);
    check_same(&a.udp, &b.tcp);

done:

    free(err);
    free(small);

    return 0;
}
