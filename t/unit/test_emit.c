/*
 * Unit tests of src/xray_emit.c: the daemon address grammar and its error
 * messages, resolving numeric hosts, and the emitter against real sockets in
 * this process: delivery byte for byte, batching, size limits, an absent
 * daemon, a full socket buffer.  Nothing may block: the run is timed.
 *
 * cc -std=c99 -D_GNU_SOURCE -g -Wall -Wextra -Werror \
 *     -fsanitize=address,undefined -Isrc t/unit/test_emit.c src/xray_emit.c \
 *     -o /tmp/test_emit && /tmp/test_emit
 *
 * Add -DXRAY_EMIT_NO_SENDMMSG to test the send() fallback.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tap.h"
#include "xray_daemon_addr.h"
#include "xray_emit.h"


#define H  XRAY_DAEMON_HEADER

#define T_DGRAM_BUF  (XRAY_DAEMON_READ_MAX + 1)


typedef struct {
    const char  *in;
    const char  *udp_host;
    unsigned     udp_port;
    const char  *tcp_host;
    unsigned     tcp_port;
} t_good_t;


typedef struct {
    const char  *in;
    const char  *err;
} t_bad_t;


typedef struct {
    size_t  calls;
    size_t  size;
    void   *mem;
} t_alloc_t;


static const t_good_t  good[] = {

    { "127.0.0.1:2000", "127.0.0.1", 2000, "127.0.0.1", 2000 },
    { "localhost:2000", "localhost", 2000, "localhost", 2000 },
    { "[::1]:2000", "::1", 2000, "::1", 2000 },
    { "[fe80::1%eth0]:2000", "fe80::1%eth0", 2000, "fe80::1%eth0", 2000 },
    { "[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1, "::ffff:10.0.0.1", 1 },
    { "xray-daemon.internal:65535", "xray-daemon.internal", 65535,
      "xray-daemon.internal", 65535 },
    { "daemon.local.:2000", "daemon.local.", 2000, "daemon.local.", 2000 },
    { "my_daemon:02000", "my_daemon", 2000, "my_daemon", 2000 },

    /* the host "udp", as the SDKs read it */
    { "udp:2000", "udp", 2000, "udp", 2000 },

    { "tcp:127.0.0.1:2000 udp:127.0.0.2:2001",
      "127.0.0.2", 2001, "127.0.0.1", 2000 },
    { "udp:127.0.0.2:2001 tcp:127.0.0.1:2000",
      "127.0.0.2", 2001, "127.0.0.1", 2000 },
    { "tcp:[::1]:3000 udp:[2001:db8::7]:2000",
      "2001:db8::7", 2000, "::1", 3000 },
    { "udp:xray:2000 tcp:xray.svc.cluster.local:2000",
      "xray", 2000, "xray.svc.cluster.local", 2000 },
};


static const t_bad_t  bad[] = {

    { "", "empty daemon address" },

    /* host:port */
    { "127.0.0.1", "missing port in \"127.0.0.1\"" },
    { "localhost", "missing port in \"localhost\"" },
    { "127.0.0.1:", "missing port in \"127.0.0.1:\"" },
    { ":2000", "missing host in \":2000\"" },
    { "127.0.0.1:0", "invalid port in \"127.0.0.1:0\"" },
    { "127.0.0.1:65536", "invalid port in \"127.0.0.1:65536\"" },
    { "127.0.0.1:99999", "invalid port in \"127.0.0.1:99999\"" },
    { "127.0.0.1:020000", "invalid port in \"127.0.0.1:020000\"" },
    { "127.0.0.1:abc", "invalid port in \"127.0.0.1:abc\"" },
    { "127.0.0.1:+200", "invalid port in \"127.0.0.1:+200\"" },
    { "127.0.0.1:-1", "invalid port in \"127.0.0.1:-1\"" },
    { "127.0.0.1:2000\n", "invalid port in \"127.0.0.1:2000\\x0a\"" },
    { "10.1.2:2000", "invalid IPv4 address in \"10.1.2:2000\"" },
    { "256.0.0.1:2000", "invalid IPv4 address in \"256.0.0.1:2000\"" },
    { "bad!host:2000", "invalid host in \"bad!host:2000\"" },
    { "a..b:2000", "invalid host in \"a..b:2000\"" },
    { ".:2000", "invalid host in \".:2000\"" },
    { "tab\t:2000", "invalid host in \"tab\\x09:2000\"" },
    { "\"q\":2000", "invalid host in \"\\x22q\\x22:2000\"" },
    { "x234567890123456789012345678901234567890123456789012345678901234"
      ".com:1",
      "invalid host in \"x2345678901234567890123456789012345678901234567890"
      "12345678901234.com:1\"" },

    /* IPv6 */
    { "::1:2000", "IPv6 address must be in brackets in \"::1:2000\"" },
    { "[::1]", "missing port in \"[::1]\"" },
    { "[::1]:", "missing port in \"[::1]:\"" },
    { "[::1]2000", "expected \":\" after \"]\" in \"[::1]2000\"" },
    { "[::1:2000", "invalid IPv6 address in \"[::1:2000\"" },
    { "[]:2000", "invalid IPv6 address in \"[]:2000\"" },
    { "[1.2.3.4]:2000", "invalid IPv6 address in \"[1.2.3.4]:2000\"" },
    { "[::1%]:2000", "invalid IPv6 address in \"[::1%]:2000\"" },
    { "[::1]:0", "invalid port in \"[::1]:0\"" },

    /* the tagged form */
    { "tcp:127.0.0.1:2000", "missing \"udp:host:port\" in "
      "\"tcp:127.0.0.1:2000\"" },
    { "udp:127.0.0.1:2000", "missing \"tcp:host:port\" in "
      "\"udp:127.0.0.1:2000\"" },
    { "udp:", "missing \"tcp:host:port\" in \"udp:\"" },
    { "tcp:127.0.0.1:2000 udp:", "missing host:port in \"udp:\"" },
    { "tcp: udp:127.0.0.1:2000", "missing host:port in \"tcp:\"" },
    { "tcp:127.0.0.1:2000 udp:127.0.0.1",
      "missing port in \"udp:127.0.0.1\"" },
    { "udp:127.0.0.1:0 tcp:127.0.0.1:2000",
      "invalid port in \"udp:127.0.0.1:0\"" },
    { "tcp:127.0.0.1:2000 udp:[::1]2000",
      "expected \":\" after \"]\" in \"udp:[::1]2000\"" },
    { "tcp:a:1 tcp:b:2", "duplicate \"tcp:\" in \"tcp:a:1 tcp:b:2\"" },
    { "udp:a:1 udp:b:2", "duplicate \"udp:\" in \"udp:a:1 udp:b:2\"" },
    { "TCP:a:1 UDP:b:2", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"TCP:a:1 UDP:b:2\"" },
    { "tcp:a:1 http:b:2", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"tcp:a:1 http:b:2\"" },
    { "a:1 b:2", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"a:1 b:2\"" },
    { "tcp:a:1  udp:b:2", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"tcp:a:1  udp:b:2\"" },
    { "tcp:a:1 udp:b:2 tcp:c:3", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"tcp:a:1 udp:b:2 tcp:c:3\"" },
    { " 127.0.0.1:2000", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \" 127.0.0.1:2000\"" },
    { "127.0.0.1:2000 ", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"127.0.0.1:2000 \"" },
    { " ", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \" \"" },
    { "my host:2000", "expected host:port or \"tcp:host:port "
      "udp:host:port\" in \"my host:2000\"" },
};


static double
t_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
t_span_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}


/* the value as a test name: control bytes would break the TAP line */

static const char *
t_show(const char *s)
{
    size_t       i;
    static char  buf[512];

    for (i = 0; s[i] != '\0' && i < sizeof(buf) - 1; i++) {
        buf[i] = (s[i] < 0x20) ? '?' : s[i];
    }

    buf[i] = '\0';

    return buf;
}


static void
test_good(void)
{
    size_t              i;
    char                err[XRAY_DAEMON_ERR_LEN];
    xray_daemon_addr_t  a;
    const t_good_t     *t;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        t = &good[i];
        err[0] = '\0';

        if (!is_int(xray_daemon_addr_parse(t->in, strlen(t->in), &a, err,
                                           sizeof(err)),
                    0, "parse \"%s\"", t->in))
        {
            printf("#   err: %s\n", err);
            continue;
        }

        ok(t_span_is(a.udp.host, a.udp.host_len, t->udp_host)
           && a.udp.port == t->udp_port
           && t_span_is(a.tcp.host, a.tcp.host_len, t->tcp_host)
           && a.tcp.port == t->tcp_port,
           "\"%s\": udp %s port %u, tcp %s port %u", t->in, t->udp_host,
           t->udp_port, t->tcp_host, t->tcp_port);
    }
}


static void
test_bad(void)
{
    size_t               i;
    char                 err[XRAY_DAEMON_ERR_LEN];
    xray_daemon_addr_t   a, before;
    const t_bad_t       *t;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = &bad[i];
        memset(&a, 0x5a, sizeof(a));
        before = a;
        strcpy(err, "unset");

        is_int(xray_daemon_addr_parse(t->in, strlen(t->in), &a, err,
                                      sizeof(err)),
               -1, "refused: \"%s\"", t_show(t->in));
        is_mem(err, strlen(err), t->err, "message for \"%s\"",
               t_show(t->in));

        if (memcmp(&a, &before, sizeof(a)) != 0) {
            ok(0, "\"%s\": addr left alone", t_show(t->in));
        }
    }
}


static void
test_bad_edges(void)
{
    int                 rc;
    char                err[XRAY_DAEMON_ERR_LEN], small[16], in[300];
    xray_daemon_addr_t  a;

    /* the length rules, not a NUL: "127.0.0.1:2000" plus a NUL and more */

    rc = xray_daemon_addr_parse("127.0.0.1:2000\0" "1", 16, &a, err,
                                sizeof(err));
    is_int(rc, -1, "a NUL inside the value is refused");
    is_mem(err, strlen(err), "invalid port in \"127.0.0.1:2000\\x001\"",
           "the NUL is shown escaped");

    rc = xray_daemon_addr_parse("[fe80::\0" "1]:2000", 15, &a, err,
                                sizeof(err));
    is_int(rc, -1, "a NUL inside an IPv6 address is refused");
    is_mem(err, strlen(err), "invalid IPv6 address in \"[fe80::\\x001]:2000\"",
           "message for the NUL in brackets");

    rc = xray_daemon_addr_parse("127.0.0.1:2000xyz", 14, &a, err,
                                sizeof(err));
    ok(rc == 0 && a.udp.port == 2000, "only len bytes are read");

    /* a long value is quoted in part */

    memset(in, 'a', sizeof(in));
    rc = xray_daemon_addr_parse(in, sizeof(in), &a, err, sizeof(err));
    is_int(rc, -1, "300 bytes without a port are refused");
    ok(strlen(err) < 140 && strstr(err, "aaa...\"") != NULL,
       "the message quotes the first bytes and \"...\": %s", err);

    /* a small error buffer truncates, NUL-terminated */

    rc = xray_daemon_addr_parse("127.0.0.1:0", 11, &a, small, sizeof(small));
    is_int(rc, -1, "refused with a 16-byte error buffer");
    is_mem(small, strlen(small), "invalid port in", "message truncated");

    rc = xray_daemon_addr_parse("127.0.0.1:0", 11, &a, NULL, 0);
    is_int(rc, -1, "refused with no error buffer");
}


static void
test_resolve(void)
{
    int                   rc;
    char                  err[XRAY_DAEMON_ERR_LEN];
    socklen_t             len;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    struct sockaddr_storage  ss;

    rc = xray_daemon_resolve("127.0.0.1", 9, 2000, &ss, &len, err,
                             sizeof(err));
    sin = (struct sockaddr_in *) &ss;
    ok(rc == 0 && ss.ss_family == AF_INET && len == sizeof(*sin)
       && sin->sin_port == htons(2000)
       && sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK),
       "resolve 127.0.0.1 port 2000");

    rc = xray_daemon_resolve("::1", 3, 65535, &ss, &len, err, sizeof(err));
    sin6 = (struct sockaddr_in6 *) &ss;
    ok(rc == 0 && ss.ss_family == AF_INET6 && len == sizeof(*sin6)
       && sin6->sin6_port == htons(65535)
       && IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr),
       "resolve ::1 port 65535");

    rc = xray_daemon_resolve("127.0.0.1:2000", 9, 1, &ss, &len, err,
                             sizeof(err));
    ok(rc == 0 && ss.ss_family == AF_INET, "the host is a span");

    rc = xray_daemon_resolve("localhost", 9, 2000, &ss, &len, err,
                             sizeof(err));
    sin = (struct sockaddr_in *) &ss;
    ok(rc == 0 && ss.ss_family == AF_INET
       && sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK),
       "localhost resolves to 127.0.0.1");

    rc = xray_daemon_resolve("127.0.0.1", 9, 0, &ss, &len, err, sizeof(err));
    is_int(rc, -1, "port 0 refused");
    is_mem(err, strlen(err), "invalid daemon address in \"127.0.0.1\"",
           "message for port 0");

    rc = xray_daemon_resolve("", 0, 2000, &ss, &len, err, sizeof(err));
    is_int(rc, -1, "empty host refused");
}


/* a UDP socket on 127.0.0.1, port chosen by the kernel */

static int
t_udp_bind(struct sockaddr_in *sin, int rcvbuf)
{
    int        fd;
    socklen_t  len;

    fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (fd == -1) {
        perror("socket");
        exit(2);
    }

    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }

    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*sin);

    if (bind(fd, (struct sockaddr *) sin, len) == -1
        || getsockname(fd, (struct sockaddr *) sin, &len) == -1)
    {
        perror("bind");
        exit(2);
    }

    return fd;
}


static xray_emitter_t *
t_emitter(const struct sockaddr *sa, socklen_t len, size_t batch,
    size_t max_datagram, size_t buffer_size, int sndbuf)
{
    char                  err[XRAY_EMIT_ERR_LEN];
    xray_emitter_t       *e;
    xray_emitter_conf_t   conf;

    memset(&conf, 0, sizeof(conf));
    conf.sockaddr = sa;
    conf.socklen = len;
    conf.batch = batch;
    conf.max_datagram = max_datagram;
    conf.buffer_size = buffer_size;
    conf.sndbuf = sndbuf;

    e = xray_emitter_create(&conf, err, sizeof(err));

    if (e == NULL) {
        printf("Bail out! emitter: %s\n", err);
        exit(2);
    }

    return e;
}


/* the next datagram, waiting at most a second; -1 when none came */

static ssize_t
t_recv(int fd, unsigned char *buf)
{
    struct pollfd  pfd;

    pfd.fd = fd;
    pfd.events = POLLIN;

    if (poll(&pfd, 1, 1000) != 1) {
        return -1;
    }

    return recv(fd, buf, T_DGRAM_BUF, MSG_DONTWAIT);
}


/* the datagram must be the header and doc, byte for byte */

static int
t_recv_doc(int fd, unsigned char *buf, const char *doc, size_t doc_len)
{
    ssize_t  n;

    n = t_recv(fd, buf);

    return n >= 0
           && (size_t) n == XRAY_DAEMON_HEADER_LEN + doc_len
           && memcmp(buf, H, XRAY_DAEMON_HEADER_LEN) == 0
           && memcmp(buf + XRAY_DAEMON_HEADER_LEN, doc, doc_len) == 0;
}


static int
t_nothing_more(int fd, unsigned char *buf)
{
    return recv(fd, buf, T_DGRAM_BUF, MSG_DONTWAIT) == -1
           && (errno == EAGAIN || errno == EWOULDBLOCK);
}


static uint64_t
t_accounted(const xray_emit_stats_t *s)
{
    return s->sent + s->dropped_full + s->dropped_refused
           + s->dropped_too_large + s->dropped_other;
}


static void
test_deliver(unsigned char *buf)
{
    int                  fd;
    size_t               i;
    uint64_t             bytes;
    xray_emitter_t      *e;
    xray_emit_stats_t    st;
    struct sockaddr_in   sin;
    static const char   *docs[] = {
        "{\"name\":\"a\",\"id\":\"70de5b6f19ff9a0a\"}",
        "{\"name\":\"b\",\"in_progress\":true}",
        "{\"name\":\"c\",\"subsegments\":[{\"name\":\"lambda\"}]}",
    };

    fd = t_udp_bind(&sin, 0);
    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 0, 0, 0, 0);

    is_int(xray_emitter_pending(e), 0, "a new emitter has nothing pending");

    bytes = 0;

    for (i = 0; i < 3; i++) {
        ok(xray_emitter_queue(e, (const unsigned char *) docs[i],
                              strlen(docs[i])),
           "doc %zu queued", i + 1);
        bytes += XRAY_DAEMON_HEADER_LEN + strlen(docs[i]);
    }

    is_int(xray_emitter_pending(e), 3, "3 pending");
    ok(t_nothing_more(fd, buf), "nothing sent before the flush");

    xray_emitter_flush(e);
    is_int(xray_emitter_pending(e), 0, "nothing pending after the flush");

    for (i = 0; i < 3; i++) {
        ok(t_recv_doc(fd, buf, docs[i], strlen(docs[i])),
           "datagram %zu is the header and doc %zu", i + 1, i + 1);
    }

    ok(t_nothing_more(fd, buf), "exactly 3 datagrams");

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 3 && st.sent == 3 && st.sent_bytes == bytes
       && t_accounted(&st) == 3 && st.send_errors == 0
       && st.last_errno == 0,
       "stats: 3 queued, 3 sent, %llu bytes", (unsigned long long) bytes);

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 0 && st.sent == 0 && st.sent_bytes == 0,
       "taking the stats zeroes them");

    xray_emitter_flush(e);
    xray_emitter_take_stats(e, &st);
    ok(st.sent == 0 && t_nothing_more(fd, buf),
       "flushing an empty queue sends nothing");

    xray_emitter_destroy(e);
    close(fd);
}


/*
 * Documents written in place (xray_emitter_place()): the same datagrams,
 * the next place after the last document, none when the batch is full or
 * the buffer too short
 */

static void
test_place(unsigned char *buf)
{
    int                  fd;
    size_t               n1, n2;
    unsigned char       *p, *q;
    xray_emitter_t      *e;
    xray_emit_stats_t    st;
    struct sockaddr_in   sin;
    static const char    d1[] = "{\"name\":\"in place\"}",
                         d2[] = "{\"name\":\"in place too\"}",
                         d3[] = "{\"name\":\"copied\"}";

    fd = t_udp_bind(&sin, 0);
    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 2, 0, 0, 0);

    n1 = sizeof(d1) - 1;
    n2 = sizeof(d2) - 1;

    p = xray_emitter_place(e, XRAY_DOC_MAX);
    ok(p != NULL, "place: room for the largest document in a new emitter");

    ok(xray_emitter_place(e, 1000000) == NULL,
       "place: none for more than the buffer");

    memcpy(p, d1, n1);
    ok(xray_emitter_queue(e, p, n1), "place: queued in place");

    q = xray_emitter_place(e, 100);
    ok(q == p + n1 + XRAY_DAEMON_HEADER_LEN,
       "place: the next one after the document and a header line");

    memcpy(q, d2, n2);
    ok(xray_emitter_queue(e, q, n2), "place: the second queued in place");

    ok(xray_emitter_place(e, 100) == NULL, "place: none in a full batch");

    /* a full batch: queueing a copied document flushes the two first */
    ok(xray_emitter_queue(e, (const unsigned char *) d3, sizeof(d3) - 1),
       "place: a copied document after them");
    xray_emitter_flush(e);

    ok(t_recv_doc(fd, buf, d1, n1) && t_recv_doc(fd, buf, d2, n2)
       && t_recv_doc(fd, buf, d3, sizeof(d3) - 1) && t_nothing_more(fd, buf),
       "place: the header line and each document, byte for byte");

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 3 && st.sent == 3 && t_accounted(&st) == 3,
       "place: stats as for copied documents");

    xray_emitter_destroy(e);
    close(fd);
}


static void
test_batch_full(unsigned char *buf)
{
    int                  fd, good;
    char                 doc[32];
    size_t               i, len, pending[10];
    xray_emitter_t      *e;
    xray_emit_stats_t    st;
    struct sockaddr_in   sin;

    fd = t_udp_bind(&sin, 0);
    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 4, 0, 0, 0);

    for (i = 0; i < 10; i++) {
        len = snprintf(doc, sizeof(doc), "{\"n\":%zu}", i);
        xray_emitter_queue(e, (unsigned char *) doc, len);
        pending[i] = xray_emitter_pending(e);
    }

    ok(pending[3] == 4 && pending[4] == 1 && pending[8] == 1
       && pending[9] == 2,
       "batch of 4: the 5th and the 9th doc flush the full batch first");

    xray_emitter_flush(e);

    good = 1;

    for (i = 0; i < 10; i++) {
        len = snprintf(doc, sizeof(doc), "{\"n\":%zu}", i);
        good = good && t_recv_doc(fd, buf, doc, len);
    }

    ok(good && t_nothing_more(fd, buf), "all 10 arrive, in order");

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 10 && st.sent == 10, "stats: 10 queued, 10 sent");

    xray_emitter_destroy(e);

    /* the buffer fills before the batch: 3 datagrams of 330 in 1000 bytes */

    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 64, 1000, 1000, 0);
    memset(doc, 0, sizeof(doc));

    good = 1;

    for (i = 0; i < 7; i++) {
        char  big[300];

        memset(big, 'a' + i, sizeof(big));
        xray_emitter_queue(e, (unsigned char *) big, sizeof(big));
        pending[i] = xray_emitter_pending(e);
    }

    ok(pending[2] == 3 && pending[3] == 1 && pending[6] == 1,
       "a full buffer flushes before the batch is full");

    xray_emitter_flush(e);

    for (i = 0; i < 7; i++) {
        char  big[300];

        memset(big, 'a' + i, sizeof(big));
        good = good && t_recv_doc(fd, buf, big, sizeof(big));
    }

    ok(good && t_nothing_more(fd, buf), "all 7 arrive, in order");

    xray_emitter_destroy(e);
    close(fd);
}


static void
test_too_large(unsigned char *buf)
{
    int                  fd;
    size_t               fit;
    unsigned char       *doc;
    xray_emitter_t      *e;
    xray_emit_stats_t    st;
    struct sockaddr_in   sin;

    fd = t_udp_bind(&sin, 256 * 1024);
    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 0, 0, 0, 0);

    fit = XRAY_DATAGRAM_MAX - XRAY_DAEMON_HEADER_LEN;

    doc = malloc(XRAY_DAEMON_READ_MAX);
    memset(doc, 'x', XRAY_DAEMON_READ_MAX);
    doc[0] = '{';

    is_int(xray_emitter_queue(e, doc, fit + 1), 0,
           "a doc one byte too large is refused");
    is_int(xray_emitter_pending(e), 0, "and not queued");

    is_int(xray_emitter_queue(e, doc, fit), 1,
           "a doc that fills a 65507-byte datagram is queued");

    xray_emitter_flush(e);

    ok(t_recv_doc(fd, buf, (char *) doc, fit), "and arrives whole");

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 2 && st.sent == 1 && st.dropped_too_large == 1
       && st.send_errors == 0,
       "stats: 2 queued, 1 sent, 1 too large, no send error");

    xray_emitter_destroy(e);

    /*
     * Allowed up to 65536 bytes, a datagram over 65507 reaches the kernel,
     * which refuses it alone: the datagrams around it still go.
     */

    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 0,
                  XRAY_DAEMON_READ_MAX, 0, 0);

    xray_emitter_queue(e, (unsigned char *) "{\"n\":1}", 7);
    is_int(xray_emitter_queue(e, doc,
                              XRAY_DAEMON_READ_MAX - XRAY_DAEMON_HEADER_LEN),
           1, "a 65536-byte datagram is queued when allowed");
    xray_emitter_queue(e, (unsigned char *) "{\"n\":3}", 7);

    xray_emitter_flush(e);

    ok(t_recv_doc(fd, buf, "{\"n\":1}", 7)
       && t_recv_doc(fd, buf, "{\"n\":3}", 7)
       && t_nothing_more(fd, buf),
       "the datagrams before and after the oversize one arrive");

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 3 && st.sent == 2 && st.dropped_too_large == 1
       && st.send_errors == 1 && st.last_errno == EMSGSIZE,
       "stats: 2 sent, 1 dropped as too large (EMSGSIZE)");

    free(doc);
    xray_emitter_destroy(e);
    close(fd);
}


static void
test_dead_daemon(void)
{
    int                  fd, round;
    double               start;
    xray_emitter_t      *e;
    xray_emit_stats_t    st, total;
    struct sockaddr_in   sin;

    /* a port that was just free: nothing listens there now */

    fd = t_udp_bind(&sin, 0);
    close(fd);

    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 0, 0, 0, 0);

    start = t_now();
    memset(&total, 0, sizeof(total));

    /* the ICMP answer to one send shows as ECONNREFUSED on a later one */

    for (round = 0; round < 20 && total.dropped_refused == 0; round++) {
        xray_emitter_queue(e, (unsigned char *) "{}", 2);
        xray_emitter_queue(e, (unsigned char *) "{}", 2);
        xray_emitter_flush(e);

        xray_emitter_take_stats(e, &st);
        total.queued += st.queued;
        total.sent += st.sent;
        total.dropped_refused += st.dropped_refused;
        total.dropped_other += st.dropped_other;
        total.dropped_full += st.dropped_full;
        total.dropped_too_large += st.dropped_too_large;

        if (st.dropped_refused) {
            total.last_errno = st.last_errno;
        }
    }

    ok(total.dropped_refused > 0 && total.last_errno == ECONNREFUSED,
       "ECONNREFUSED counted after %d rounds: %llu refused, %llu sent",
       round, (unsigned long long) total.dropped_refused,
       (unsigned long long) total.sent);
    ok(t_accounted(&total) == total.queued,
       "every doc is sent or dropped (%llu)",
       (unsigned long long) total.queued);
    ok(total.dropped_other == 0 && total.dropped_full == 0,
       "no other cause counted");
    ok(t_now() - start < 0.2, "no wait: %.3f s", t_now() - start);

    xray_emitter_destroy(e);
}


static void
test_udp_receiver_full(void)
{
    int                  fd;
    char                 doc[200];
    size_t               i;
    double               start;
    xray_emitter_t      *e;
    xray_emit_stats_t    st;
    struct sockaddr_in   sin;

    /* a daemon that never reads: the kernel drops at its end, not ours */

    fd = t_udp_bind(&sin, 1);
    e = t_emitter((struct sockaddr *) &sin, sizeof(sin), 0, 0, 0, 4096);

    memset(doc, 'u', sizeof(doc));
    start = t_now();

    for (i = 0; i < 5000; i++) {
        xray_emitter_queue(e, (unsigned char *) doc, sizeof(doc));
    }

    xray_emitter_flush(e);

    xray_emitter_take_stats(e, &st);
    ok(st.queued == 5000 && t_accounted(&st) == 5000,
       "UDP to a reader that never reads: 5000 accounted "
       "(%llu sent, %llu dropped full)", (unsigned long long) st.sent,
       (unsigned long long) st.dropped_full);
    ok(t_now() - start < 0.5, "no wait: %.3f s", t_now() - start);

    xray_emitter_destroy(e);
    close(fd);
}


static void
test_socket_full(void)
{
    int                  fd;
    char                 doc[200];
    size_t               i;
    double               start;
    socklen_t            len;
    xray_emitter_t      *e;
    xray_emit_stats_t    st;
    struct sockaddr_un   sun;

    /*
     * Over loopback the kernel hands each UDP datagram to the receiver at
     * once, so a full send buffer cannot be provoked there.  A datagram
     * socket that never reads can: its queue fills and sends get EAGAIN.
     */

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/xray-emit-%ld.sock",
             (long) getpid());
    len = sizeof(sun);
    unlink(sun.sun_path);

    fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    if (fd == -1 || bind(fd, (struct sockaddr *) &sun, len) == -1) {
        perror("unix socket");
        exit(2);
    }

    e = t_emitter((struct sockaddr *) &sun, len, 0, 0, 0, 4096);

    memset(doc, 's', sizeof(doc));
    start = t_now();

    for (i = 0; i < 5000; i++) {
        xray_emitter_queue(e, (unsigned char *) doc, sizeof(doc));
    }

    xray_emitter_flush(e);

    xray_emitter_take_stats(e, &st);
    ok(st.sent > 0 && st.dropped_full > 0,
       "a full socket: %llu sent, %llu dropped full",
       (unsigned long long) st.sent, (unsigned long long) st.dropped_full);
    ok(st.queued == 5000 && t_accounted(&st) == 5000,
       "sent + dropped == queued == 5000");
    ok(st.last_errno == EAGAIN || st.last_errno == EWOULDBLOCK
       || st.last_errno == ENOBUFS,
       "the last error is EAGAIN or ENOBUFS (%d)", st.last_errno);
    ok(st.dropped_refused == 0 && st.dropped_other == 0
       && st.dropped_too_large == 0,
       "no other cause counted");
    ok(t_now() - start < 0.5, "no wait: %.3f s", t_now() - start);

    xray_emitter_destroy(e);
    close(fd);
    unlink(sun.sun_path);
}


static void *
t_alloc(void *data, size_t size)
{
    t_alloc_t  *a;

    a = data;
    a->calls++;
    a->size = size;
    a->mem = malloc(size);

    return a->mem;
}


static void *
t_alloc_fail(void *data, size_t size)
{
    (void) data;
    (void) size;

    return NULL;
}


static void
test_create(void)
{
    char                  err[XRAY_EMIT_ERR_LEN];
    t_alloc_t             a;
    xray_emitter_t       *e;
    struct sockaddr_in    sin;
    xray_emitter_conf_t   conf;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(2000);

    memset(&conf, 0, sizeof(conf));
    conf.sockaddr = (struct sockaddr *) &sin;
    conf.socklen = sizeof(sin);

    conf.batch = 1025;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL, "batch 1025 refused");
    is_mem(err, strlen(err), "batch 1025 is not in 1..1024",
           "message for batch 1025");

    conf.batch = 1;
    conf.max_datagram = XRAY_DAEMON_HEADER_LEN;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL, "no room for a doc refused");
    is_mem(err, strlen(err), "datagram size 30 is not in 31..65536",
           "message for datagram size 30");

    conf.max_datagram = 65537;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL, "datagram size 65537 refused");

    conf.max_datagram = 2000;
    conf.buffer_size = 1999;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL, "a buffer smaller than a datagram refused");
    is_mem(err, strlen(err),
           "buffer size 1999 is less than the datagram size 2000",
           "message for the buffer");

    conf.buffer_size = 0;
    conf.socklen = 0;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL, "no address refused");

    conf.socklen = sizeof(sin);
    conf.alloc = t_alloc_fail;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL && strstr(err, "cannot allocate") != NULL,
       "allocation failure reported: %s", err);

    memset(&a, 0, sizeof(a));
    conf.alloc = t_alloc;
    conf.alloc_data = &a;
    conf.batch = 64;
    conf.max_datagram = 0;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e != NULL && a.calls == 1 && a.size > 256 * 1024
       && a.size < 256 * 1024 + 8192,
       "one allocation from the caller: %zu bytes for 64 x 4 KiB", a.size);

    if (e != NULL) {
        xray_emitter_queue(e, (unsigned char *) "{}", 2);
        xray_emitter_flush(e);
        ok(a.calls == 1, "queue and flush allocate nothing");
        xray_emitter_destroy(e);
    }

    /* the caller's memory is the caller's to free */
    free(a.mem);

    conf.alloc = NULL;
    sin.sin_family = AF_UNIX;
    e = xray_emitter_create(&conf, err, sizeof(err));
    ok(e == NULL && strstr(err, "connect() failed") != NULL,
       "a bad address fails at connect(): %s", err);
}


int
main(void)
{
    double          start;
    unsigned char  *buf;

    start = t_now();

    buf = malloc(T_DGRAM_BUF);

    if (buf == NULL) {
        return 2;
    }

    test_good();
    test_bad();
    test_bad_edges();
    test_resolve();
    test_create();
    test_deliver(buf);
    test_batch_full(buf);
    test_place(buf);
    test_too_large(buf);
    test_dead_daemon();
    test_udp_receiver_full();
    test_socket_full();

    free(buf);

    ok(t_now() - start < 1.0, "the whole run takes under a second: %.3f s",
       t_now() - start);

    return done_testing();
}
