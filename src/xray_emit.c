/*
 * The per-worker UDP emitter to the X-Ray daemon (its address: see
 * xray_daemon_addr.c).
 *
 * Choices the protocol (docs/protocol.md, section 3) leaves open:
 *
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


static int xray_emitter_send(xray_emitter_t *e, size_t first, size_t n);
static void xray_emitter_sent(xray_emitter_t *e, size_t first, size_t n);
static void xray_emitter_drop(xray_emitter_t *e, int err, size_t n);
static int xray_emitter_socket(xray_emitter_t *e,
    const xray_emitter_conf_t *conf, char *err, size_t errlen);


xray_emitter_t *
xray_emitter_create(const xray_emitter_conf_t *conf, char *err,
    size_t errlen)
{
    size_t           i, batch, max, size, off_iov, off_msgs, off_buf, total;
    unsigned char   *mem;
    xray_emitter_t  *e;

    batch = conf->batch ? conf->batch : XRAY_EMIT_BATCH_DEFAULT;
    max = conf->max_datagram ? conf->max_datagram
                             : XRAY_DATAGRAM_MAX;

    if (batch > XRAY_EMIT_BATCH_MAX) {
        snprintf(err, errlen, "batch %zu is not in 1..%d", batch,
                 XRAY_EMIT_BATCH_MAX);
        return NULL;
    }

    if (max <= XRAY_DAEMON_HEADER_LEN || max > XRAY_DAEMON_READ_MAX) {
        snprintf(err, errlen, "datagram size %zu is not in %zu..%d", max,
                 XRAY_DAEMON_HEADER_LEN + 1, XRAY_DAEMON_READ_MAX);
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

    if (len > e->max_datagram - XRAY_DAEMON_HEADER_LEN) {
        e->stats.dropped_too_large++;
        return 0;
    }

    size = XRAY_DAEMON_HEADER_LEN + len;

    if (e->npending == e->batch || e->buf_size - e->buf_used < size) {
        xray_emitter_flush(e);
    }

    p = e->buf + e->buf_used;

    memcpy(p, XRAY_DAEMON_HEADER, XRAY_DAEMON_HEADER_LEN);

    /* a document written in place (xray_emitter_place()) is there already */
    if (doc != p + XRAY_DAEMON_HEADER_LEN) {
        memmove(p + XRAY_DAEMON_HEADER_LEN, doc, len);
    }

    e->iov[e->npending].iov_base = p;
    e->iov[e->npending].iov_len = size;

    e->npending++;
    e->buf_used += size;

    return 1;
}


unsigned char *
xray_emitter_place(xray_emitter_t *e, size_t size)
{
    /* the room xray_emitter_queue() checks: it will not flush first */

    if (e->npending == e->batch
        || e->buf_size - e->buf_used < XRAY_DAEMON_HEADER_LEN + size)
    {
        return NULL;
    }

    return e->buf + e->buf_used + XRAY_DAEMON_HEADER_LEN;
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
