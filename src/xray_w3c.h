/*
 * W3C Trace Context (level 1): traceparent and tracestate, and the mapping
 * between W3C ids and X-Ray's that OpenTelemetry's AWS X-Ray propagators
 * use.
 *
 * Pure C: no nginx types, no allocation.  Parsed results point into the
 * caller's input, so the input must outlive them.
 */

#ifndef XRAY_W3C_H
#define XRAY_W3C_H

#include <stddef.h>
#include <stdint.h>

#include "xray_header.h"


#define XRAY_W3C_TRACE_ID_LEN      32      /* lower-case hex */
#define XRAY_W3C_SPAN_ID_LEN       16      /* lower-case hex, = XRAY_ID_LEN */

/* "00-<trace-id>-<parent-id>-<flags>": version 00 exactly, the least of
 * any version */
#define XRAY_TRACEPARENT_LEN       55

#define XRAY_TRACESTATE_MAX_MEMBERS  32
/* what is propagated: list-members joined by ',', no whitespace */
#define XRAY_TRACESTATE_MAX_LEN    512
/* a list-member that is removed first when the list must be cut */
#define XRAY_TRACESTATE_LONG_MEMBER  128

#define XRAY_W3C_SAMPLED           0x01    /* trace-flags bit */


typedef enum {
    XRAY_W3C_OK = 0,

    /* traceparent */
    XRAY_W3C_EMPTY,
    XRAY_W3C_TOO_SHORT,                /* under 55 bytes */
    XRAY_W3C_BAD_VERSION,              /* not 2 lower-case hex and '-' */
    XRAY_W3C_VERSION_FF,
    XRAY_W3C_TOO_LONG,                 /* version 00 over 55 bytes */
    XRAY_W3C_BAD_TRACE_ID,             /* not 32 lower-case hex and '-' */
    XRAY_W3C_ZERO_TRACE_ID,
    XRAY_W3C_BAD_PARENT_ID,            /* not 16 lower-case hex and '-' */
    XRAY_W3C_ZERO_PARENT_ID,
    XRAY_W3C_BAD_FLAGS,                /* not 2 lower-case hex, then end
                                          or (higher versions) '-' */

    /* tracestate */
    XRAY_W3C_STATE_BAD_CHAR,           /* outside 0x20..0x7e and HTAB */
    XRAY_W3C_STATE_BAD_MEMBER,         /* no '=' */
    XRAY_W3C_STATE_BAD_KEY,
    XRAY_W3C_STATE_BAD_VALUE,
    XRAY_W3C_STATE_DUPLICATE_KEY,
    XRAY_W3C_STATE_TOO_MANY            /* over 32 list-members */
} xray_w3c_rc_e;


typedef struct {
    const unsigned char  *trace_id;    /* XRAY_W3C_TRACE_ID_LEN bytes */
    const unsigned char  *parent_id;   /* XRAY_W3C_SPAN_ID_LEN bytes */
    unsigned              version;     /* 0x00..0xfe */
    unsigned              flags;       /* trace-flags; sampled: bit 0 */
} xray_traceparent_t;


typedef struct {
    /* "key=value" as sent, without the whitespace around it, in order */
    xray_span_t           member[XRAY_TRACESTATE_MAX_MEMBERS];
    size_t                n;
    size_t                len;         /* of the members joined by ',' */
    size_t                removed;     /* members cut to fit the limit */
} xray_tracestate_t;


/*
 * Parses one traceparent value, exactly as sent (no surrounding whitespace
 * is skipped: HTTP parsers have removed it).  Version 00 must be exactly 55
 * bytes.  A higher version (01..fe) is read as the specification says: its
 * first 55 bytes hold version 00's fields, and the byte after them, if any,
 * must be '-'; what follows is not looked at.  On XRAY_W3C_OK tp points
 * into value; on anything else the caller must ignore the header.
 */
xray_w3c_rc_e xray_traceparent_parse(const unsigned char *value, size_t len,
    xray_traceparent_t *tp);

/*
 * Writes "00-<trace_id>-<parent_id>-<00|01>" (XRAY_TRACEPARENT_LEN bytes)
 * into buf: trace_id is 32 hex digits, parent_id 16, of either case (they
 * are written lower-case).  Returns XRAY_TRACEPARENT_LEN.
 */
size_t xray_traceparent_format(unsigned char *buf,
    const unsigned char *trace_id, const unsigned char *parent_id,
    int sampled);


/*
 * tracestate, which may arrive as several header lines: init, then add()
 * each line in order (as if joined by ','), then limit().  Rules:
 *
 * - list-members are separated by ','; spaces and tabs around them are
 *   ignored, and so are empty members (they are not counted);
 * - a member is key=value with level 1's grammar: a key is a simple-key
 *   (lcalpha, then up to 255 of lcalpha, DIGIT, '_', '-', '*', '/') or a
 *   multi-tenant key (tenant-id of 1 + up to 240, '@', system-id of lcalpha
 *   + up to 13); a value is 1 to 256 bytes of 0x20..0x7e but ',' and '=',
 *   not ending in a space;
 * - any invalid member, a repeated key or more than 32 members makes the
 *   whole list invalid: the caller drops all of it.
 *
 * On an error the state is undefined.
 */
void xray_tracestate_init(xray_tracestate_t *ts);
xray_w3c_rc_e xray_tracestate_add(xray_tracestate_t *ts,
    const unsigned char *value, size_t len);

/*
 * Cuts a valid list that is longer than XRAY_TRACESTATE_MAX_LEN when
 * joined, as the specification says to truncate: whole members, those
 * over XRAY_TRACESTATE_LONG_MEMBER bytes first, from the right, then the
 * rightmost.  Returns how many were removed (also in ts->removed).
 */
size_t xray_tracestate_limit(xray_tracestate_t *ts);

/* init + add + limit for a single value */
xray_w3c_rc_e xray_tracestate_parse(const unsigned char *value, size_t len,
    xray_tracestate_t *ts);

/*
 * Writes the members joined by ',' (ts->len bytes, at most
 * XRAY_TRACESTATE_MAX_LEN after limit()) into buf.  Returns the length.
 */
size_t xray_tracestate_format(unsigned char *buf,
    const xray_tracestate_t *ts);

const char *xray_w3c_strerror(xray_w3c_rc_e rc);


/*
 * The mapping of OpenTelemetry's AWS X-Ray propagators: W3C trace id T (32
 * hex) <-> Root 1-T[0:8]-T[8:32]; span id <-> Parent; sampled <-> Sampled.
 */

/* writes the XRAY_TRACE_ID_LEN bytes of the Root of trace_id (as given) */
void xray_w3c_root_from_trace_id(unsigned char *root,
    const unsigned char *trace_id);

/*
 * Writes the XRAY_W3C_TRACE_ID_LEN lower-case hex digits of a valid Root
 * (xray_trace_id_valid()).  Returns 0 when they are all zero, which W3C
 * forbids, 1 otherwise.
 */
int xray_w3c_trace_id_from_root(unsigned char *trace_id,
    const unsigned char *root);

/*
 * 1 if the Root of an X-Ray context and a W3C trace id name the same trace
 * (hex compared case-insensitively: X-Ray ids may be upper-case).
 */
int xray_w3c_same_trace(const unsigned char *root,
    const unsigned char *trace_id);

#endif /* XRAY_W3C_H */
