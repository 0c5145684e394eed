/*
 * The core's vocabulary: what the pure parts (src/xray_*) share.  Ids,
 * spans of the caller's bytes, the caller's allocator, and the constants of
 * the daemon's wire format (docs/protocol.md, section 3).
 *
 * Pure C: no nginx types.
 */

#ifndef XRAY_TYPES_H
#define XRAY_TYPES_H

#include <stddef.h>
#include <stdint.h>


#define XRAY_TRACE_ID_LEN       35     /* 1-<8 hex>-<24 hex> */
#define XRAY_ID_LEN             16     /* segment / subsegment id */


/* keeps a rarely taken path, and its stack frame, out of its caller */
#if (defined __GNUC__)
#define XRAY_NOINLINE  __attribute__((noinline))
#else
#define XRAY_NOINLINE
#endif


/* bytes the caller owns; data may be NULL when len is 0 */
typedef struct {
    const unsigned char  *data;
    size_t                len;
} xray_span_t;


/* memory from the caller (an nginx pool, say); NULL when there is none */
typedef void *(*xray_alloc_pt)(void *data, size_t size);


/* the line the daemon expects before every document in a datagram */
#define XRAY_DAEMON_HEADER      "{\"format\":\"json\",\"version\":1}\n"
#define XRAY_DAEMON_HEADER_LEN  (sizeof(XRAY_DAEMON_HEADER) - 1)

/*
 * The daemon reads 64 KiB per datagram.  Over IPv4 a UDP payload stops at
 * 65507 bytes (65535 - 8 - 20; the kernel refuses more with EMSGSIZE), so
 * that is the largest datagram sent by default, header line included.
 */
#define XRAY_DAEMON_READ_MAX    65536
#define XRAY_DATAGRAM_MAX       65507

/* the largest document: one datagram after the header line */
#define XRAY_DOC_MAX            (XRAY_DATAGRAM_MAX - XRAY_DAEMON_HEADER_LEN)

#endif /* XRAY_TYPES_H */
