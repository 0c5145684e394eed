/*
 * A per-worker UDP emitter that batches segment documents into datagrams
 * to the X-Ray daemon (whose address xray_daemon_addr.h parses).
 *
 * Pure C: no nginx types.  The emitter allocates once, when it is created;
 * after that queueing copies into its own buffer (or documents are written
 * there in place) and flushing never blocks: what the kernel will not take
 * right away is dropped and counted.  The caller owns the timers: it
 * flushes when xray_emitter_pending() is non-zero, on a short timer and at
 * worker exit.
 */

#ifndef XRAY_EMIT_H
#define XRAY_EMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "xray_types.h"


#define XRAY_EMIT_ERR_LEN          256     /* room for an error message */

#define XRAY_EMIT_BATCH_DEFAULT    64
#define XRAY_EMIT_BATCH_MAX        1024    /* sendmmsg() takes up to 1024 */

/* default buffer: this much per batch slot, at least one full datagram */
#define XRAY_EMIT_SLOT_BYTES       4096


typedef struct {
    const struct sockaddr  *sockaddr;  /* the daemon's UDP address */
    socklen_t               socklen;

    size_t                  batch;     /* datagrams per sendmmsg(), */
                                       /* 1..1024; 0: 64 */
    size_t                  max_datagram;
                                       /* header included, up to 65536; */
                                       /* 0: 65507 */
    size_t                  buffer_size;
                                       /* bytes for queued datagrams, at */
                                       /* least max_datagram; 0: batch x */
                                       /* 4 KiB, at least max_datagram */
    int                     sndbuf;    /* SO_SNDBUF; 0: the system's */

    /* NULL: malloc(), freed by xray_emitter_destroy() */
    xray_alloc_pt           alloc;
    void                   *alloc_data;
} xray_emitter_conf_t;


/*
 * Counts since the last xray_emitter_take_stats().  Every document offered
 * to xray_emitter_queue() ends up in exactly one of sent and dropped_*, once
 * flushed: over the emitter's life
 *     queued == sent + dropped_full + dropped_refused + dropped_too_large
 *               + dropped_other + xray_emitter_pending()
 */
typedef struct {
    uint64_t  queued;                  /* offered to xray_emitter_queue() */
    uint64_t  sent;                    /* taken by the kernel */
    uint64_t  sent_bytes;              /* their size, headers included */
    uint64_t  dropped_full;            /* EAGAIN, ENOBUFS: buffer full */
    uint64_t  dropped_refused;         /* ECONNREFUSED: no daemon */
    uint64_t  dropped_too_large;       /* refused by queue(), or EMSGSIZE */
    uint64_t  dropped_other;           /* any other send error */
    uint64_t  send_errors;             /* failed send calls */
    int       last_errno;              /* of the last failed call, or 0 */
} xray_emit_stats_t;


typedef struct xray_emitter_s  xray_emitter_t;


/*
 * Creates an emitter: one allocation and a non-blocking, close-on-exec UDP
 * socket connected to the daemon.  Returns NULL with a message in err.
 */
xray_emitter_t *xray_emitter_create(const xray_emitter_conf_t *conf,
    char *err, size_t errlen);

/*
 * Copies the datagram header and doc (unless written in place) into the
 * queue, flushing first when the batch or the buffer is full.  Returns 1
 * when queued, 0 when the datagram would exceed max_datagram (counted in
 * dropped_too_large): the caller splits large segments beforehand.
 */
int xray_emitter_queue(xray_emitter_t *e, const unsigned char *doc,
    size_t len);

/*
 * Where a document of up to size bytes can be written in place, in the
 * queue after the room for its header line, so that xray_emitter_queue()
 * of it copies only the header; NULL when the batch or the buffer has no
 * room for it now (the caller then writes it elsewhere).  The place holds
 * until the next call that queues or flushes.
 */
unsigned char *xray_emitter_place(xray_emitter_t *e, size_t size);

/*
 * Sends everything queued, without blocking; afterwards nothing is pending.
 * A datagram the kernel refuses as too large is dropped alone; any other
 * error drops the rest of the batch.
 */
void xray_emitter_flush(xray_emitter_t *e);

size_t xray_emitter_pending(const xray_emitter_t *e);

/* copies the counts into out and zeroes them */
void xray_emitter_take_stats(xray_emitter_t *e, xray_emit_stats_t *out);

/* closes the socket without flushing; frees the memory if it was malloc()ed */
void xray_emitter_destroy(xray_emitter_t *e);


#endif /* XRAY_EMIT_H */
