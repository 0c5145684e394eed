/*
 * The X-Ray daemon's address: AWS_XRAY_DAEMON_ADDRESS (or the xray_daemon
 * directive) parsed, and one endpoint resolved, at configuration time.
 *
 * Pure C: no nginx types.
 */

#ifndef XRAY_DAEMON_ADDR_H
#define XRAY_DAEMON_ADDR_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "xray_types.h"


#define XRAY_DAEMON_ERR_LEN      256     /* room for an error message */


/* host:port of one side of the daemon, as written */
typedef struct {
    const char  *host;                 /* into the parsed string, without */
    size_t       host_len;             /* the brackets of an IPv6 literal */
    unsigned     port;                 /* 1..65535 */
} xray_daemon_endpoint_t;


typedef struct {
    xray_daemon_endpoint_t  udp;       /* where segments go */
    xray_daemon_endpoint_t  tcp;       /* the daemon's HTTP proxy */
} xray_daemon_addr_t;


/*
 * Parses an AWS_XRAY_DAEMON_ADDRESS value: "host:port", the same address for
 * UDP and TCP, or "tcp:host:port udp:host:port" in either order, separated by
 * exactly one space.  A host is a DNS name, an IPv4 literal, or an IPv6
 * literal in brackets ("[::1]:2000"); a port is 1..65535.  Nothing is
 * resolved.  Returns 0, or -1 with a message in err, e.g.
 *     invalid port in "udp:127.0.0.1:0"
 */
int xray_daemon_addr_parse(const char *s, size_t len, xray_daemon_addr_t *addr,
    char *err, size_t errlen);

/*
 * Resolves one endpoint for UDP, at configuration time only: it may block on
 * DNS.  A numeric host never reaches DNS.  Of a name's addresses the first
 * IPv4 one is taken (the daemon listens on IPv4 by default, and "localhost"
 * often lists ::1 first), else the first.  Returns 0, or -1 with a message.
 */
int xray_daemon_resolve(const char *host, size_t host_len, unsigned port,
    struct sockaddr_storage *out, socklen_t *outlen, char *err,
    size_t errlen);

#endif /* XRAY_DAEMON_ADDR_H */
