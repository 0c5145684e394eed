/*
 * The X-Ray daemon: address parsing and resolving, and the UDP emitter.
 *
 * Choices the protocol (xray-protocol.md, section 3) leaves open:
 *
 * - "tcp:" and "udp:" are lower case, each given once.  A lone
 *   "udp:host:port" is an error, as in the SDKs; "udp:2000" is the host
 *   "udp" on port 2000, also as in the SDKs.
 * - A host made of digits and dots must be a dotted-quad IPv4 address, so
 *   that "10.1.2" is not silently read as 10.1.0.2.  Other names are
 *   [A-Za-z0-9_-] labels joined by dots, checked for length only.  An IPv6
 *   literal must be in brackets and may carry a %zone.
 * - Error messages quote the part at fault ("udp:..." rather than the whole
 *   value), escaping bytes that are not printable ASCII.
 * - Queued datagrams are packed into one buffer rather than given 64 KiB
 *   each: a batch of 64 typical segments then needs 256 KiB, not 4 MiB.
 * - The socket is connect()ed: the kernel then reports an ICMP port
 *   unreachable from an absent daemon as ECONNREFUSED on a later send.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE                    /* sendmmsg(), struct mmsghdr */
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "xray_emit.h"


/* -DXRAY_EMIT_NO_SENDMMSG builds (and tests) the one-by-one fallback */
#if (defined __linux__ && !defined XRAY_EMIT_NO_SENDMMSG)
#define XRAY_EMIT_HAVE_SENDMMSG  1
#endif

#ifdef MSG_NOSIGNAL
#define XRAY_EMIT_SEND_FLAGS     (MSG_DONTWAIT | MSG_NOSIGNAL)
#else
#define XRAY_EMIT_SEND_FLAGS     MSG_DONTWAIT
#endif

/* a signal cannot stall a flush: EINTR is retried this often, then drops */
#define XRAY_EMIT_EINTR_RETRIES  2

#define XRAY_DAEMON_NAME_MAX     253   /* DNS name, without a final dot */
#define XRAY_DAEMON_LABEL_MAX    63
#define XRAY_DAEMON_QUOTE_MAX    96    /* input bytes quoted in a message */

#define XRAY_DAEMON_EXPECTED                                                 \
    "expected host:port or \"tcp:host:port udp:host:port\""

#define xray_align(n, a)  (((n) + ((a) - 1)) & ~((size_t) (a) - 1))


struct xray_emitter_s {
    int                  fd;
    unsigned             owned;        /* malloc()ed: free on destroy */

    size_t               batch;
    size_t               max_datagram;
    size_t               npending;

    unsigned char       *buf;          /* queued datagrams, packed */
    size_t               buf_size;
    size_t               buf_used;

    struct iovec        *iov;          /* one per queued datagram */
#if (XRAY_EMIT_HAVE_SENDMMSG)
    struct mmsghdr      *msgs;         /* msgs[i] sends iov[i] */
#endif

    xray_emit_stats_t    stats;
};


static int xray_daemon_tagged(const char *s, size_t len, const char *sp,
    xray_daemon_addr_t *addr, char *err, size_t errlen);
static int xray_daemon_tag(const char *p, size_t n);
static int xray_daemon_endpoint(const char *p, size_t n, const char *tok,
    size_t tok_len, xray_daemon_endpoint_t *ep, char *err, size_t errlen);
static int xray_daemon_port(const char *p, size_t n, unsigned *port);
static int xray_daemon_ipv6(const char *p, size_t n);
static int xray_daemon_numeric(const char *p, size_t n);
static int xray_daemon_ipv4(const char *p, size_t n);
static int xray_daemon_name(const char *p, size_t n);
static int xray_daemon_error(char *err, size_t errlen, const char *what,
    const char *p, size_t n);
static int xray_emitter_send(xray_emitter_t *e, size_t first, size_t n);
static void xray_emitter_sent(xray_emitter_t *e, size_t first, size_t n);
static void xray_emitter_drop(xray_emitter_t *e, int err, size_t n);
static int xray_emitter_socket(xray_emitter_t *e,
    const xray_emitter_conf_t *conf, char *err, size_t errlen);


int
xray_daemon_addr_parse(const char *s, size_t len, xray_daemon_addr_t *addr,
    char *err, size_t errlen)
{
    int                  tag;
    const char          *sp;
    xray_daemon_addr_t   a;

    if (len == 0) {
        return xray_daemon_error(err, errlen, "empty daemon address", NULL, 0);
    }

    sp = memchr(s, ' ', len);

    if (sp != NULL) {
        return xray_daemon_tagged(s, len, sp, addr, err, errlen);
    }

    /* a lone "tcp:host:port" lacks its other half; "udp:2000" is a host */

    tag = xray_daemon_tag(s, len);

    if (tag != 0 && (len == 4 || memchr(s + 4, ':', len - 4) != NULL)) {
        return xray_daemon_error(err, errlen,
                                 tag == 't' ? "missing \"udp:host:port\""
                                            : "missing \"tcp:host:port\"",
                                 s, len);
    }

    if (xray_daemon_endpoint(s, len, s, len, &a.udp, err, errlen) != 0) {
        return -1;
    }

    a.tcp = a.udp;
    *addr = a;

    return 0;
}


static int
xray_daemon_tagged(const char *s, size_t len, const char *sp,
    xray_daemon_addr_t *addr, char *err, size_t errlen)
{
    int                      i, tag;
    size_t                   n[2];
    const char              *p[2];
    xray_daemon_addr_t       a;
    xray_daemon_endpoint_t  *ep, *seen;

    p[0] = s;
    n[0] = sp - s;
    p[1] = sp + 1;
    n[1] = len - n[0] - 1;

    /* exactly two parts around exactly one space */

    if (n[0] == 0 || n[1] == 0 || memchr(p[1], ' ', n[1]) != NULL) {
        return xray_daemon_error(err, errlen, XRAY_DAEMON_EXPECTED, s, len);
    }

    seen = NULL;

    for (i = 0; i < 2; i++) {
        tag = xray_daemon_tag(p[i], n[i]);

        if (tag == 0) {
            return xray_daemon_error(err, errlen, XRAY_DAEMON_EXPECTED,
                                     s, len);
        }

        ep = (tag == 't') ? &a.tcp : &a.udp;

        if (ep == seen) {
            return xray_daemon_error(err, errlen,
                                     tag == 't' ? "duplicate \"tcp:\""
                                                : "duplicate \"udp:\"",
                                     s, len);
        }

        seen = ep;

        if (n[i] == 4) {
            return xray_daemon_error(err, errlen, "missing host:port",
                                     p[i], n[i]);
        }

        if (xray_daemon_endpoint(p[i] + 4, n[i] - 4, p[i], n[i], ep,
                                 err, errlen)
            != 0)
        {
            return -1;
        }
    }

    *addr = a;

    return 0;
}


/* 't' for "tcp:", 'u' for "udp:", 0 for neither */

static int
xray_daemon_tag(const char *p, size_t n)
{
    if (n < 4 || p[3] != ':') {
        return 0;
    }

    if (memcmp(p, "tcp", 3) == 0) {
        return 't';
    }

    if (memcmp(p, "udp", 3) == 0) {
        return 'u';
    }

    return 0;
}


/* host:port in p; tok is what an error message quotes */

static int
xray_daemon_endpoint(const char *p, size_t n, const char *tok,
    size_t tok_len, xray_daemon_endpoint_t *ep, char *err, size_t errlen)
{
    size_t       host_len;
    const char  *host, *close, *colon, *port;

    if (p[0] == '[') {
        close = memchr(p, ']', n);

        if (close == NULL || !xray_daemon_ipv6(p + 1, close - p - 1)) {
            return xray_daemon_error(err, errlen, "invalid IPv6 address",
                                     tok, tok_len);
        }

        host = p + 1;
        host_len = close - host;
        colon = close + 1;

        if (colon == p + n) {
            return xray_daemon_error(err, errlen, "missing port",
                                     tok, tok_len);
        }

        if (*colon != ':') {
            return xray_daemon_error(err, errlen,
                                     "expected \":\" after \"]\"",
                                     tok, tok_len);
        }

    } else {

        /* the last ':' so that "::1:2000" gets the IPv6 message below */

        for (colon = p + n; colon > p && colon[-1] != ':'; colon--) {
            /* void */
        }

        if (colon == p) {
            return xray_daemon_error(err, errlen, "missing port",
                                     tok, tok_len);
        }

        colon--;
        host = p;
        host_len = colon - p;

        if (host_len == 0) {
            return xray_daemon_error(err, errlen, "missing host",
                                     tok, tok_len);
        }

        if (memchr(host, ':', host_len) != NULL) {
            return xray_daemon_error(err, errlen,
                                     "IPv6 address must be in brackets",
                                     tok, tok_len);
        }

        if (xray_daemon_numeric(host, host_len)) {
            if (!xray_daemon_ipv4(host, host_len)) {
                return xray_daemon_error(err, errlen, "invalid IPv4 address",
                                         tok, tok_len);
            }

        } else if (!xray_daemon_name(host, host_len)) {
            return xray_daemon_error(err, errlen, "invalid host",
                                     tok, tok_len);
        }
    }

    port = colon + 1;

    if (port == p + n) {
        return xray_daemon_error(err, errlen, "missing port", tok, tok_len);
    }

    if (xray_daemon_port(port, p + n - port, &ep->port) != 0) {
        return xray_daemon_error(err, errlen, "invalid port", tok, tok_len);
    }

    ep->host = host;
    ep->host_len = host_len;

    return 0;
}


static int
xray_daemon_port(const char *p, size_t n, unsigned *port)
{
    size_t    i;
    unsigned  v;

    if (n > 5) {
        return -1;
    }

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v == 0 || v > 65535) {
        return -1;
    }

    *port = v;

    return 0;
}


/* an address inet_pton() takes, then an optional %zone */

static int
xray_daemon_ipv6(const char *p, size_t n)
{
    size_t           i, addr_len;
    const char      *pct;
    char             buf[INET6_ADDRSTRLEN];
    struct in6_addr  in6;

    pct = memchr(p, '%', n);
    addr_len = (pct != NULL) ? (size_t) (pct - p) : n;

    if (addr_len == 0 || addr_len >= sizeof(buf)) {
        return 0;
    }

    /* inet_pton() would stop at a NUL and accept what comes before it */

    for (i = 0; i < addr_len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9')
              || (p[i] >= 'a' && p[i] <= 'f')
              || (p[i] >= 'A' && p[i] <= 'F')
              || p[i] == ':' || p[i] == '.'))
        {
            return 0;
        }
    }

    memcpy(buf, p, addr_len);
    buf[addr_len] = '\0';

    if (inet_pton(AF_INET6, buf, &in6) != 1) {
        return 0;
    }

    if (pct == NULL) {
        return 1;
    }

    n -= addr_len + 1;

    if (n == 0 || n >= IF_NAMESIZE) {
        return 0;
    }

    for (i = 1; i <= n; i++) {
        if (!((pct[i] >= 'a' && pct[i] <= 'z')
              || (pct[i] >= 'A' && pct[i] <= 'Z')
              || (pct[i] >= '0' && pct[i] <= '9')
              || pct[i] == '.' || pct[i] == '_' || pct[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


/* digits and dots only: meant as an IPv4 address, never a name */

static int
xray_daemon_numeric(const char *p, size_t n)
{
    size_t  i, digits;

    digits = 0;

    for (i = 0; i < n; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            digits++;

        } else if (p[i] != '.') {
            return 0;
        }
    }

    return digits != 0;
}


static int
xray_daemon_ipv4(const char *p, size_t n)
{
    char            buf[INET_ADDRSTRLEN];
    struct in_addr  in;

    if (n >= sizeof(buf)) {
        return 0;
    }

    memcpy(buf, p, n);
    buf[n] = '\0';

    /* dotted quad only: inet_pton() refuses "10.1.2" and "010.1.2.3" */

    return inet_pton(AF_INET, buf, &in) == 1;
}


static int
xray_daemon_name(const char *p, size_t n)
{
    size_t  i, label;

    if (n > 1 && p[n - 1] == '.') {
        n--;
    }

    if (n > XRAY_DAEMON_NAME_MAX) {
        return 0;
    }

    label = 0;

    for (i = 0; i < n; i++) {
        if (p[i] == '.') {
            if (label == 0) {
                return 0;
            }

            label = 0;
            continue;
        }

        if (!((p[i] >= 'a' && p[i] <= 'z')
              || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '-' || p[i] == '_'))
        {
            return 0;
        }

        if (++label > XRAY_DAEMON_LABEL_MAX) {
            return 0;
        }
    }

    return label != 0;
}


/* writes what, then ' in "p"' when p is given; returns -1 */

static int
xray_daemon_error(char *err, size_t errlen, const char *what, const char *p,
    size_t n)
{
    size_t              i, q;
    unsigned char       c;
    char                quoted[XRAY_DAEMON_QUOTE_MAX * 4 + sizeof("...")];
    static const char   hex[] = "0123456789abcdef";

    if (errlen == 0) {
        return -1;
    }

    if (p == NULL) {
        snprintf(err, errlen, "%s", what);
        return -1;
    }

    q = 0;

    for (i = 0; i < n && i < XRAY_DAEMON_QUOTE_MAX; i++) {
        c = (unsigned char) p[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            quoted[q++] = c;
            continue;
        }

        quoted[q++] = '\\';
        quoted[q++] = 'x';
        quoted[q++] = hex[c >> 4];
        quoted[q++] = hex[c & 0x0f];
    }

    if (i < n) {
        memcpy(quoted + q, "...", 3);
        q += 3;
    }

    quoted[q] = '\0';

    snprintf(err, errlen, "%s in \"%s\"", what, quoted);

    return -1;
}


int
xray_daemon_resolve(const char *host, size_t host_len, unsigned port,
    struct sockaddr_storage *out, socklen_t *outlen, char *err,
    size_t errlen)
{
    int               rc;
    char              name[XRAY_DAEMON_NAME_MAX + 2], serv[sizeof("65535")];
    struct addrinfo   hints, *res, *ai, *pick;

    if (host_len == 0 || host_len >= sizeof(name) || port == 0
        || port > 65535)
    {
        return xray_daemon_error(err, errlen, "invalid daemon address",
                                 host, host_len);
    }

    memcpy(name, host, host_len);
    name[host_len] = '\0';
    snprintf(serv, sizeof(serv), "%u", port);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;

    rc = getaddrinfo(name, serv, &hints, &res);

    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(name, serv, &hints, &res);
    }

    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", name,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }

    pick = NULL;

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(*out)) {
            continue;
        }

        if (pick == NULL) {
            pick = ai;
        }

        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }

    if (pick == NULL) {
        freeaddrinfo(res);
        snprintf(err, errlen, "cannot resolve \"%s\": no usable address",
                 name);
        return -1;
    }

    memset(out, 0, sizeof(*out));
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    *outlen = pick->ai_addrlen;

    freeaddrinfo(res);

    return 0;
}


xray_emitter_t *
xray_emitter_create(const xray_emitter_conf_t *conf, char *err,
    size_t errlen)
{
    size_t           i, batch, max, size, off_iov, off_msgs, off_buf, total;
    unsigned char   *mem;
    xray_emitter_t  *e;

    batch = conf->batch ? conf->batch : XRAY_EMIT_BATCH_DEFAULT;
    max = conf->max_datagram ? conf->max_datagram
                             : XRAY_EMIT_DATAGRAM_DEFAULT;

    if (batch > XRAY_EMIT_BATCH_MAX) {
        snprintf(err, errlen, "batch %zu is not in 1..%d", batch,
                 XRAY_EMIT_BATCH_MAX);
        return NULL;
    }

    if (max <= XRAY_EMIT_HEADER_LEN || max > XRAY_EMIT_DATAGRAM_MAX) {
        snprintf(err, errlen, "datagram size %zu is not in %zu..%d", max,
                 XRAY_EMIT_HEADER_LEN + 1, XRAY_EMIT_DATAGRAM_MAX);
        return NULL;
    }

    size = conf->buffer_size;

    if (size == 0) {
        size = batch * XRAY_EMIT_SLOT_BYTES;

        if (size < max) {
            size = max;
        }
    }

    if (size < max) {
        snprintf(err, errlen, "buffer size %zu is less than the datagram "
                 "size %zu", size, max);
        return NULL;
    }

    /* more than a full batch of the largest datagrams is never used */

    if (size > batch * max) {
        size = batch * max;
    }

    if (conf->sockaddr == NULL || conf->socklen == 0
        || conf->socklen > sizeof(struct sockaddr_storage))
    {
        snprintf(err, errlen, "no daemon address");
        return NULL;
    }

    /* the emitter, its vectors and its buffer in one block */

    off_iov = xray_align(sizeof(xray_emitter_t), 16);
    off_msgs = xray_align(off_iov + batch * sizeof(struct iovec), 16);
#if (XRAY_EMIT_HAVE_SENDMMSG)
    off_buf = xray_align(off_msgs + batch * sizeof(struct mmsghdr), 16);
#else
    off_buf = off_msgs;
#endif
    total = off_buf + size;

    mem = conf->alloc ? conf->alloc(conf->alloc_data, total) : malloc(total);

    if (mem == NULL) {
        snprintf(err, errlen, "cannot allocate %zu bytes for the emitter",
                 total);
        return NULL;
    }

    e = (xray_emitter_t *) mem;
    memset(e, 0, sizeof(xray_emitter_t));

    e->owned = (conf->alloc == NULL);
    e->batch = batch;
    e->max_datagram = max;
    e->buf = mem + off_buf;
    e->buf_size = size;
    e->iov = (struct iovec *) (mem + off_iov);

#if (XRAY_EMIT_HAVE_SENDMMSG)
    e->msgs = (struct mmsghdr *) (mem + off_msgs);
#endif

    for (i = 0; i < batch; i++) {
        e->iov[i].iov_base = NULL;
        e->iov[i].iov_len = 0;

#if (XRAY_EMIT_HAVE_SENDMMSG)
        /* connected: no msg_name; each message carries its own iovec */

        memset(&e->msgs[i], 0, sizeof(struct mmsghdr));
        e->msgs[i].msg_hdr.msg_iov = &e->iov[i];
        e->msgs[i].msg_hdr.msg_iovlen = 1;
#endif
    }

    if (xray_emitter_socket(e, conf, err, errlen) != 0) {
        if (e->owned) {
            free(e);
        }

        return NULL;
    }

    return e;
}


static int
xray_emitter_socket(xray_emitter_t *e, const xray_emitter_conf_t *conf,
    char *err, size_t errlen)
{
    int          fd, type;
    const char  *call;

    type = SOCK_DGRAM;
#if (defined SOCK_NONBLOCK && defined SOCK_CLOEXEC)
    type |= SOCK_NONBLOCK | SOCK_CLOEXEC;
#endif

    fd = socket(conf->sockaddr->sa_family, type, 0);

    if (fd == -1) {
        snprintf(err, errlen, "socket() failed: %s", strerror(errno));
        return -1;
    }

#if !(defined SOCK_NONBLOCK && defined SOCK_CLOEXEC)
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1
        || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
    {
        call = "fcntl()";
        goto failed;
    }
#endif

    if (conf->sndbuf > 0
        && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &conf->sndbuf,
                      sizeof(conf->sndbuf))
           == -1)
    {
        call = "setsockopt(SO_SNDBUF)";
        goto failed;
    }

    if (connect(fd, conf->sockaddr, conf->socklen) == -1) {
        call = "connect()";
        goto failed;
    }

    e->fd = fd;

    return 0;

failed:

    snprintf(err, errlen, "%s failed: %s", call, strerror(errno));
    close(fd);

    return -1;
}


int
xray_emitter_queue(xray_emitter_t *e, const unsigned char *doc, size_t len)
{
    size_t          size;
    unsigned char  *p;

    e->stats.queued++;

    if (len > e->max_datagram - XRAY_EMIT_HEADER_LEN) {
        e->stats.dropped_too_large++;
        return 0;
    }

    size = XRAY_EMIT_HEADER_LEN + len;

    if (e->npending == e->batch || e->buf_size - e->buf_used < size) {
        xray_emitter_flush(e);
    }

    p = e->buf + e->buf_used;

    memcpy(p, XRAY_EMIT_HEADER, XRAY_EMIT_HEADER_LEN);
    memcpy(p + XRAY_EMIT_HEADER_LEN, doc, len);

    e->iov[e->npending].iov_base = p;
    e->iov[e->npending].iov_len = size;

    e->npending++;
    e->buf_used += size;

    return 1;
}


void
xray_emitter_flush(xray_emitter_t *e)
{
    int     rc, err, retries;
    size_t  i;

    i = 0;
    retries = 0;

    /* each pass sends or drops at least one, or gives up on the rest */

    while (i < e->npending) {
        rc = xray_emitter_send(e, i, e->npending - i);

        if (rc > 0) {
            xray_emitter_sent(e, i, rc);
            i += rc;
            continue;
        }

        err = errno;

        if (err == EINTR && retries++ < XRAY_EMIT_EINTR_RETRIES) {
            continue;
        }

        e->stats.send_errors++;
        e->stats.last_errno = err;

        /* only this datagram is at fault; the next ones may fit */

        if (err == EMSGSIZE) {
            xray_emitter_drop(e, err, 1);
            i++;
            continue;
        }

        xray_emitter_drop(e, err, e->npending - i);
        break;
    }

    e->npending = 0;
    e->buf_used = 0;
}


/*
 * Sends up to n datagrams from the first: returns how many the kernel took,
 * or -1 with errno when it took none.  sendmmsg() stops at the first error
 * and reports it only if nothing was sent; the caller's next call, starting
 * at the datagram that failed, gets it again.
 */

static int
xray_emitter_send(xray_emitter_t *e, size_t first, size_t n)
{
#if (XRAY_EMIT_HAVE_SENDMMSG)

    return sendmmsg(e->fd, &e->msgs[first], n, XRAY_EMIT_SEND_FLAGS);

#else

    (void) n;

    if (send(e->fd, e->iov[first].iov_base, e->iov[first].iov_len,
             XRAY_EMIT_SEND_FLAGS)
        == -1)
    {
        return -1;
    }

    return 1;

#endif
}


static void
xray_emitter_sent(xray_emitter_t *e, size_t first, size_t n)
{
    size_t  i;

    e->stats.sent += n;

    for (i = first; i < first + n; i++) {
        e->stats.sent_bytes += e->iov[i].iov_len;
    }
}


static void
xray_emitter_drop(xray_emitter_t *e, int err, size_t n)
{
    switch (err) {

    case EAGAIN:
#if (EWOULDBLOCK != EAGAIN)
    case EWOULDBLOCK:
#endif
    case ENOBUFS:
        e->stats.dropped_full += n;
        break;

    case ECONNREFUSED:
        e->stats.dropped_refused += n;
        break;

    case EMSGSIZE:
        e->stats.dropped_too_large += n;
        break;

    default:
        e->stats.dropped_other += n;
    }
}


size_t
xray_emitter_pending(const xray_emitter_t *e)
{
    return e->npending;
}


void
xray_emitter_take_stats(xray_emitter_t *e, xray_emit_stats_t *out)
{
    *out = e->stats;
    memset(&e->stats, 0, sizeof(xray_emit_stats_t));
}


void
xray_emitter_destroy(xray_emitter_t *e)
{
    close(e->fd);

    if (e->owned) {
        free(e);
    }
}
