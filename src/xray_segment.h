/*
 * X-Ray segment documents: the schema's writer into a caller's buffer.
 *
 * Pure C: no nginx types, no allocation.  The caller fills the structures
 * below (spans point into memory it owns) and calls a writer; the writer
 * checks and escapes every string, so any byte sequence in any span gives a
 * valid JSON document.
 */

#ifndef XRAY_SEGMENT_H
#define XRAY_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "xray_types.h"

#define XRAY_SDK_NAME           "ngx_http_xray_module"
/* the metadata namespace of every metadata value the writer emits */
#define XRAY_METADATA_NAMESPACE "nginx"
/* the names used when a given name (and fallback) sanitise to nothing */
#define XRAY_DEFAULT_NAME       "nginx"
#define XRAY_DEFAULT_SUB_NAME   "upstream"

/*
 * Limits in characters, counted as UTF-16 code units (a character outside
 * the Basic Multilingual Plane counts twice, as in Java and JavaScript), so
 * that a string within a limit is within it however the service counts.
 */
#define XRAY_NAME_MAX           200
#define XRAY_STRING_MAX         250    /* http.*, origin, cause, sdk... */
#define XRAY_ANNOTATION_KEY_MAX 500
#define XRAY_ANNOTATION_MAX     1000   /* annotation values */
#define XRAY_METADATA_MAX       1000   /* metadata values (keys: 250) */

/* flags of a segment or subsegment (xray_status_flags() computes them) */
#define XRAY_FLAG_ERROR         0x01   /* 4xx */
#define XRAY_FLAG_THROTTLE      0x02   /* 429 */
#define XRAY_FLAG_FAULT         0x04   /* 5xx */


typedef enum {
    XRAY_ANNOTATION_STRING = 0,
    /* written as a JSON number if the value is one, else as a string */
    XRAY_ANNOTATION_NUMBER,
    /*
     * "1", "true", "on", "yes" are true; "0", "false", "off", "no" are false
     * (case-insensitive); anything else is written as a string
     */
    XRAY_ANNOTATION_BOOLEAN
} xray_annotation_kind_e;


typedef struct {
    xray_span_t              key;      /* [A-Za-z0-9_]{1,500}, else skipped */
    xray_span_t              value;    /* empty: skipped */
    xray_annotation_kind_e   kind;
} xray_annotation_t;


/* a string under metadata.nginx; skipped when the key is empty */
typedef struct {
    xray_span_t              key;
    xray_span_t              value;
} xray_metadata_t;


/* written as cause.exceptions[0]; omitted when id is NULL */
typedef struct {
    const unsigned char     *id;       /* XRAY_ID_LEN hex */
    xray_span_t              type;     /* empty: omitted */
    xray_span_t              message;  /* empty: omitted */
    unsigned                 remote:1;
} xray_cause_t;


/*
 * http.request and http.response.  Every non-empty string is written;
 * x_forwarded_for (segments) and traced (subsegments) only when set.
 */
typedef struct {
    xray_span_t              method;
    xray_span_t              url;
    xray_span_t              user_agent;
    xray_span_t              client_ip;
    unsigned                 x_forwarded_for:1;
    unsigned                 traced:1;

    unsigned                 status;          /* 0: no http.response */
    int64_t                  content_length;  /* < 0: none */
} xray_http_t;


/*
 * One upstream attempt, written as a nested "remote" subsegment named after
 * the peer (sanitised like a name).  Its error/throttle/fault flags come from
 * status; an attempt without a status (no response: refused, timed out...)
 * is a fault, and its cause ("ConnectionRefused", "upstream timed out") is
 * for the caller to give: the writer writes any cause it is given.
 */
typedef struct {
    const unsigned char     *id;       /* XRAY_ID_LEN hex */
    xray_span_t              peer;     /* "10.0.1.12:8080" */
    uint64_t                 start;    /* microseconds since the epoch */
    uint64_t                 end;
    unsigned                 status;   /* 0: no response, no http object */
    const xray_cause_t      *cause;    /* NULL: none */

    /* metadata.nginx.*_time, in milliseconds as nginx keeps them; < 0: none */
    int64_t                  connect_time;
    int64_t                  header_time;
    int64_t                  response_time;
} xray_attempt_t;


/* the upstream call: a "remote" subsegment holding one entry per attempt */
typedef struct {
    const unsigned char     *id;       /* XRAY_ID_LEN hex */
    xray_span_t              name;     /* upstream host; sanitised */
    uint64_t                 start;    /* microseconds since the epoch */
    uint64_t                 end;      /* ignored when in_progress */
    unsigned                 in_progress:1;
    xray_http_t              http;
    unsigned                 flags;    /* XRAY_FLAG_* */
    const xray_cause_t      *cause;    /* NULL: none */
    const xray_attempt_t    *attempts;
    size_t                   nattempts;
} xray_subsegment_t;


typedef struct {
    /*
     * Sanitised to X-Ray's name rules; if nothing is left, the sanitised
     * fallback is used, and if nothing is left of that, XRAY_DEFAULT_NAME.
     */
    xray_span_t              name;
    xray_span_t              fallback_name;

    const unsigned char     *id;        /* XRAY_ID_LEN hex */
    const unsigned char     *trace_id;  /* XRAY_TRACE_ID_LEN */
    const unsigned char     *parent_id; /* XRAY_ID_LEN hex, or NULL */
    uint64_t                 start;     /* microseconds since the epoch */
    uint64_t                 end;       /* ignored when in_progress */
    unsigned                 in_progress:1;
    xray_span_t              origin;    /* empty: omitted */

    xray_http_t              http;
    unsigned                 flags;     /* XRAY_FLAG_* */
    const xray_cause_t      *cause;     /* NULL: none */

    /* keys are not checked for duplicates: the caller keeps them unique */
    const xray_annotation_t *annotations;
    size_t                   nannotations;
    const xray_metadata_t   *metadata;
    size_t                   nmetadata;

    /* aws.xray: sdk is always XRAY_SDK_NAME; empty spans are omitted */
    xray_span_t              sdk_version;
    xray_span_t              sampling_rule_name;

    /*
     * Prepared parts, or empty: head (xray_segment_head()) stands for name
     * and fallback_name, aws (xray_segment_aws()) for sdk_version and
     * sampling_rule_name; what a prepared part stands for is not read.
     */
    xray_span_t              head;
    xray_span_t              aws;

    /* the calls it made: its upstream call, its subrequests', in order */
    const xray_subsegment_t *subsegments;
    size_t                   nsubsegments;

    /*
     * Set only by a caller that made or checked every id it gives (of the
     * segment, its subsegments, attempts and causes: lowercase or uppercase
     * hex, the trace id 1-<hex>-<hex>): they are then copied as they are;
     * by default they are escaped like any string.
     */
    unsigned                 ids_safe:1;
} xray_segment_t;


/*
 * Writes the segment as one compact JSON document, with its subsegments
 * unless with_subsegments is 0 (each is then sent on its own with
 * xray_subsegment_write()).  Returns the length written, or 0 if the
 * document does not fit in size bytes; nothing is written past size, and on
 * 0 the buffer does not start with a document.
 *
 * The id, trace_id (and every id of the subsegments and their attempts) must
 * point to that many bytes; they are escaped (unless ids_safe), not checked.
 * A buffer of XRAY_DOC_MAX bytes after XRAY_DAEMON_HEADER makes one
 * datagram.
 */
size_t xray_segment_write(unsigned char *buf, size_t size,
    const xray_segment_t *seg, int with_subsegments);

/*
 * The parts of a segment that are the same in every document of a location
 * or of a sampling rule, written once, at configuration time, and copied
 * into each document (xray_segment_t's head and aws): the same bytes as the
 * writer writes from the fields they stand for.  Each returns the length
 * written, or 0 if it does not fit in size bytes (XRAY_SEGMENT_HEAD_MAX,
 * XRAY_SEGMENT_AWS_MAX always do).
 *
 * xray_segment_head(): the document's opening, {"name":"<name>, the name
 * sanitised as xray_segment_t's name and fallback_name are.
 * xray_segment_aws(): the aws object, with the sdk and the given
 * sdk_version and sampling_rule_name (empty: omitted), "," first.
 */
#define XRAY_SEGMENT_HEAD_MAX                                                 \
    (sizeof("{\"name\":\"") - 1 + 3 * XRAY_NAME_MAX)
#define XRAY_SEGMENT_AWS_MAX                                                  \
    (sizeof(",\"aws\":{\"xray\":{\"sdk\":\"" XRAY_SDK_NAME "\"") - 1           \
     + 2 * (sizeof(",\"sampling_rule_name\":\"\"") - 1                        \
            + 6 * XRAY_STRING_MAX)                                            \
     + sizeof("}}") - 1)

size_t xray_segment_head(unsigned char *buf, size_t size,
    const xray_span_t *name, const xray_span_t *fallback_name);
size_t xray_segment_aws(unsigned char *buf, size_t size,
    const xray_span_t *sdk_version, const xray_span_t *sampling_rule_name);

/*
 * Writes sub as an independent document ("type":"subsegment") of the trace
 * trace_id (XRAY_TRACE_ID_LEN), child of the entity parent_id (XRAY_ID_LEN,
 * the segment's id).  Returns as xray_segment_write().
 */
size_t xray_subsegment_write(unsigned char *buf, size_t size,
    const xray_subsegment_t *sub, const unsigned char *trace_id,
    const unsigned char *parent_id);

/*
 * Writes into dst the UTF-8 name X-Ray accepts from src: only Unicode
 * letters, numbers and space separators (as the schema's name pattern lists
 * them) and _ . : / % & # = + - @ are kept, at most XRAY_NAME_MAX of them;
 * everything else, invalid UTF-8 included, is dropped.  The result needs no
 * JSON escaping.  Returns the length written (0: nothing left), or
 * XRAY_JSON_ERROR (xray_json.h) if it does not fit in size bytes.
 */
size_t xray_name_sanitize(unsigned char *dst, size_t size,
    const unsigned char *src, size_t len);

/* 1 if key is a valid annotation key: [A-Za-z0-9_]{1,500} */
int xray_annotation_key_valid(const unsigned char *key, size_t len);

/* XRAY_FLAG_* for an HTTP status: 4xx error, 429 also throttle, 5xx fault */
unsigned xray_status_flags(unsigned status);

#endif /* XRAY_SEGMENT_H */
