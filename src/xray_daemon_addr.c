/*
 * The X-Ray daemon's address: AWS_XRAY_DAEMON_ADDRESS parsed, and resolved
 * at configuration time.
 *
 * Choices the protocol (docs/protocol.md, section 3) leaves open:
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
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "xray_daemon_addr.h"


#define XRAY_DAEMON_NAME_MAX     253   /* DNS name, without a final dot */
#define XRAY_DAEMON_LABEL_MAX    63
#define XRAY_DAEMON_QUOTE_MAX    96    /* input bytes quoted in a message */

#define XRAY_DAEMON_EXPECTED                                                 \
    "expected host:port or \"tcp:host:port udp:host:port\""


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
