/*
 * X-Amzn-Trace-Id: parse, validate and format.
 *
 * Pure C: no nginx types, no allocation.  The parser keeps pointers into the
 * caller's input, so the input must outlive the parsed context.
 */

#ifndef XRAY_HEADER_H
#define XRAY_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "xray_types.h"

/* an incoming header value longer than this is dropped as oversize */
#define XRAY_HEADER_MAX_LEN    512
/* fields in one header, all kinds counted */
#define XRAY_HEADER_MAX_FIELDS 16
/* one key (Lineage, or an unknown key) */
#define XRAY_HEADER_MAX_KEY    64

/*
 * The longest value xray_header_format() can write: Root, Parent and Sampled
 * plus every kept field.
 */
#define XRAY_HEADER_OUT_MAX                                                  \
    (sizeof("Root=;Parent=;Sampled=?") - 1 + XRAY_TRACE_ID_LEN + XRAY_ID_LEN \
     + XRAY_HEADER_MAX_LEN + 1)


typedef enum {
    XRAY_SAMPLED_NONE = 0,             /* no Sampled field */
    XRAY_SAMPLED_NO,                   /* Sampled=0 */
    XRAY_SAMPLED_YES,                  /* Sampled=1 */
    XRAY_SAMPLED_REQUESTED             /* Sampled=? */
} xray_sampled_e;


typedef enum {
    XRAY_HEADER_OK = 0,
    XRAY_HEADER_EMPTY,                 /* nothing but whitespace */
    XRAY_HEADER_TOO_LONG,
    XRAY_HEADER_BAD_CHAR,              /* control byte, non-ASCII, comma */
    XRAY_HEADER_BAD_FIELD,             /* no '=', empty key or value */
    XRAY_HEADER_TOO_MANY_FIELDS,
    XRAY_HEADER_DUPLICATE_KEY,
    XRAY_HEADER_NO_ROOT,
    XRAY_HEADER_BAD_ROOT,
    XRAY_HEADER_BAD_PARENT,
    XRAY_HEADER_BAD_SAMPLED
} xray_header_rc_e;


typedef struct {
    const unsigned char  *root;        /* XRAY_TRACE_ID_LEN bytes */
    const unsigned char  *parent;      /* XRAY_ID_LEN bytes, or NULL */
    xray_sampled_e        sampled;

    /* Lineage and unknown fields, "key=value" as sent, trimmed, in order */
    xray_span_t           kept[XRAY_HEADER_MAX_FIELDS];
    size_t                nkept;
    size_t                kept_len;    /* sum of kept[i].len */
} xray_trace_ctx_t;


/*
 * Parses one header value.  On XRAY_HEADER_OK, ctx describes it; on any other
 * result ctx is undefined and the caller must drop the header.
 *
 * Reserved keys (Root, Parent, Sampled, Self, Lineage) are matched
 * case-insensitively; duplicate keys (case-insensitive) are an error.  Self
 * is dropped.  Spaces and tabs around fields, and around the '=' of Root,
 * Parent, Sampled and Self, are ignored; around the '=' of any other field
 * they are XRAY_HEADER_BAD_CHAR, because that field is forwarded as sent.
 * Empty fields (";;", trailing ';') are skipped.
 */
xray_header_rc_e xray_header_parse(const unsigned char *value, size_t len,
    xray_trace_ctx_t *ctx);

/* a short, static, human-readable reason for a parse result */
const char *xray_header_strerror(xray_header_rc_e rc);

/* 1 if s is exactly a valid trace id (1-<8 hex>-<24 hex>) */
int xray_trace_id_valid(const unsigned char *s, size_t len);

/* what xray_header_format() writes at most with a parent and ctx (or NULL) */
#define XRAY_HEADER_FORMAT_LEN(ctx)                                          \
    (sizeof("Root=;Parent=;Sampled=?") - 1 + XRAY_TRACE_ID_LEN + XRAY_ID_LEN \
     + ((ctx) ? (ctx)->kept_len + (ctx)->nkept : 0))

/* where xray_header_format() writes the root, and the parent if given */
#define XRAY_HEADER_ROOT_AT     (sizeof("Root=") - 1)
#define XRAY_HEADER_PARENT_AT                                                \
    (XRAY_HEADER_ROOT_AT + XRAY_TRACE_ID_LEN + sizeof(";Parent=") - 1)

/*
 * Writes "Root=<root>;Parent=<parent>;Sampled=<0|1|?>[;kept...]" into buf,
 * which must hold XRAY_HEADER_FORMAT_LEN(ctx) bytes (at most
 * XRAY_HEADER_OUT_MAX).  parent may be NULL (no Parent
 * field); sampled NONE writes no Sampled field.  kept fields come from ctx
 * (ctx may be NULL for a trace this proxy originated).  Returns the length.
 * root and parent may already be where they go (buf + XRAY_HEADER_ROOT_AT,
 * buf + XRAY_HEADER_PARENT_AT), and are then left as they are; nothing
 * read may otherwise lie in what is written.
 */
size_t xray_header_format(unsigned char *buf, const unsigned char *root,
    const unsigned char *parent, xray_sampled_e sampled,
    const xray_trace_ctx_t *ctx);

#endif /* XRAY_HEADER_H */
