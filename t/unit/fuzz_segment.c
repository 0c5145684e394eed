/*
 * libFuzzer target for src/xray_segment.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     t/unit/fuzz_segment.c src/xray_segment.c -o /tmp/fuzz_segment
 * /tmp/fuzz_segment -max_total_time=60 t/unit/corpus/segment
 *
 * Input: a 24-byte header of numbers and flags (zero-padded when shorter),
 * then the strings of one request, separated by 0xfe.  Every document must
 * be strict, compact JSON (checked by the small validator below, which
 * shares no code with the writer) or 0 when the buffer is too small, and
 * the same bytes in every buffer big enough, and the same with the parts
 * prepared once.  The escaper and the name sanitiser are also checked on
 * the whole input.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xray_json.h"
#include "xray_segment.h"


#define check(cond)  do { if (!(cond)) { __builtin_trap(); } } while (0)

#define HEADER_LEN  24
#define NSPANS      26
#define SEP         0xfe
#define MAX_DEPTH   16


typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    int                   depth;
} json_t;


typedef struct {
    const xray_segment_t     *seg;     /* NULL: sub as its own document */
    const xray_subsegment_t  *sub;
    const unsigned char      *trace_id;
    const unsigned char      *parent_id;
    int                       with_subsegments;
} doc_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int json_value(json_t *j);


static unsigned char  big[1 << 20];


/*
 * Length of the well-formed UTF-8 character at p, or 0: written from the
 * Unicode definition (code point ranges), not from Table 3-7 as the writer.
 */

static size_t
utf8_valid(const unsigned char *p, size_t len)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (p[0] < 0x80) {
        return 1;
    }

    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = p[0] & 0x1f;
        min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0f;
        min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = p[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


static int
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


static int
is_digit(const json_t *j)
{
    return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}


/* a string after its opening quote; counts characters as UTF-16 units */

static int
json_string_body(json_t *j, size_t *units)
{
    size_t  n, i;

    *units = 0;

    while (j->p < j->end) {
        if (*j->p == '"') {
            j->p++;
            return 1;
        }

        if (*j->p < 0x20) {
            return 0;
        }

        if (*j->p == '\\') {
            if (j->end - j->p < 2) {
                return 0;
            }

            switch (j->p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                j->p += 2;
                break;

            case 'u':
                if (j->end - j->p < 6) {
                    return 0;
                }

                for (i = 2; i < 6; i++) {
                    if (!is_hex(j->p[i])) {
                        return 0;
                    }
                }

                /* the writer never escapes surrogate halves */
                if ((j->p[2] | 0x20) == 'd' && strchr("89abAB", j->p[3])) {
                    return 0;
                }

                j->p += 6;
                break;

            default:
                return 0;
            }

            (*units)++;
            continue;
        }

        n = utf8_valid(j->p, j->end - j->p);
        if (n == 0) {
            return 0;
        }

        *units += (n == 4) ? 2 : 1;
        j->p += n;
    }

    return 0;
}


static int
json_number(json_t *j)
{
    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }

    if (!is_digit(j)) {
        return 0;
    }

    if (*j->p == '0') {
        j->p++;

    } else {
        while (is_digit(j)) {
            j->p++;
        }
    }

    if (j->p < j->end && *j->p == '.') {
        j->p++;

        if (!is_digit(j)) {
            return 0;
        }

        while (is_digit(j)) {
            j->p++;
        }
    }

    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;

        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }

        if (!is_digit(j)) {
            return 0;
        }

        while (is_digit(j)) {
            j->p++;
        }
    }

    return 1;
}


static int
json_literal(json_t *j, const char *lit)
{
    size_t  len;

    len = strlen(lit);

    if ((size_t) (j->end - j->p) < len || memcmp(j->p, lit, len) != 0) {
        return 0;
    }

    j->p += len;

    return 1;
}


/* compact: no whitespace anywhere outside strings */

static int
json_container(json_t *j, unsigned char close)
{
    size_t  units;

    if (++j->depth > MAX_DEPTH) {
        return 0;
    }

    j->p++;

    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }

    for ( ;; ) {
        if (close == '}') {
            if (j->p == j->end || *j->p++ != '"'
                || !json_string_body(j, &units)
                || j->p == j->end || *j->p++ != ':')
            {
                return 0;
            }
        }

        if (!json_value(j) || j->p == j->end) {
            return 0;
        }

        if (*j->p == close) {
            j->p++;
            j->depth--;
            return 1;
        }

        if (*j->p++ != ',') {
            return 0;
        }
    }
}


static int
json_value(json_t *j)
{
    size_t  units;

    if (j->p == j->end) {
        return 0;
    }

    switch (*j->p) {
    case '{':
        return json_container(j, '}');
    case '[':
        return json_container(j, ']');
    case '"':
        j->p++;
        return json_string_body(j, &units);
    case 't':
        return json_literal(j, "true");
    case 'f':
        return json_literal(j, "false");
    case 'n':
        return json_literal(j, "null");
    default:
        return json_number(j);
    }
}


static void
check_document(const unsigned char *doc, size_t n)
{
    json_t  j;

    j.p = doc;
    j.end = doc + n;
    j.depth = 0;

    check(n > 0 && doc[0] == '{');
    check(json_value(&j));
    check(j.p == j.end);
}


static size_t
write_doc(const doc_t *d, unsigned char *buf, size_t size)
{
    if (d->seg != NULL) {
        return xray_segment_write(buf, size, d->seg, d->with_subsegments);
    }

    return xray_subsegment_write(buf, size, d->sub, d->trace_id, d->parent_id);
}


/*
 * One document: valid in the big buffer; in an exact heap block of the
 * input-derived size, the same bytes if it fits and 0 if not, never more.
 */

static void
check_doc(const doc_t *d, size_t size)
{
    size_t          n, got;
    unsigned char  *buf;

    n = write_doc(d, big, sizeof(big));
    check_document(big, n);

    buf = malloc(size ? size : 1);
    check(buf != NULL);

    got = write_doc(d, buf, size);

    if (size >= n) {
        check(got == n && memcmp(buf, big, n) == 0);

    } else {
        check(got == 0);
        check(size == 0 || buf[0] == '\0');
    }

    free(buf);
}


/* the escaper and the sanitiser on the whole input */

static void
check_strings(const uint8_t *data, size_t size, size_t max)
{
    size_t          n, units, i, len;
    json_t          j;
    unsigned char  *p;

    big[0] = '"';
    n = xray_json_escape(big + 1, sizeof(big) - 2, data, size, max);
    check(n != XRAY_JSON_ERROR && n <= 6 * size);
    big[n + 1] = '"';

    j.p = big + 1;
    j.end = big + n + 2;
    j.depth = 0;
    check(json_string_body(&j, &units) && j.p == j.end);
    check(units <= max);

    /* one byte short fails, never writes more */
    if (n > 0) {
        p = malloc(n - 1 ? n - 1 : 1);
        check(p != NULL);
        check(xray_json_escape(p, n - 1, data, size, max) == XRAY_JSON_ERROR);
        free(p);
    }

    n = xray_name_sanitize(big, sizeof(big), data, size);
    check(n != XRAY_JSON_ERROR && n <= size);

    /* kept characters need no escaping and are well-formed */
    for (i = 0, units = 0; i < n; i += len, units++) {
        check(big[i] >= 0x20 && big[i] != '"' && big[i] != '\\'
              && big[i] != 0x7f);
        len = utf8_valid(big + i, n - i);
        check(len > 0 && len < 4);
    }

    check(units <= XRAY_NAME_MAX);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t               i, n, nspans, bufsize;
    uint64_t             start;
    const uint8_t       *p, *end, *sep;
    unsigned char        h[HEADER_LEN], id[XRAY_ID_LEN], *safe;
    unsigned char        head[XRAY_SEGMENT_HEAD_MAX];
    unsigned char        aws[XRAY_SEGMENT_AWS_MAX];
    xray_span_t          s[NSPANS];
    xray_segment_t       seg;
    xray_subsegment_t    sub, subs[2];
    xray_attempt_t       at[3];
    xray_annotation_t    ann[3];
    xray_metadata_t      md[2];
    xray_cause_t         cause;
    doc_t                d;

    /* limits from 1 to 281 characters */
    check_strings(data, size, size ? 1 + data[0] % 8 * 40 : 250);

    memset(h, 0, sizeof(h));
    memcpy(h, data, size < HEADER_LEN ? size : HEADER_LEN);

    /* the strings: empty when the input runs out */
    memset(s, 0, sizeof(s));
    p = data + (size < HEADER_LEN ? size : HEADER_LEN);
    end = data + size;

    for (nspans = 0; nspans < NSPANS && p < end; nspans++) {
        sep = memchr(p, SEP, end - p);
        s[nspans].data = p;
        s[nspans].len = (sep ? sep : end) - p;
        p = sep ? sep + 1 : end;
    }

    /* an id from the input, to check that a bad one stays valid JSON */
    memset(id, '0', sizeof(id));
    memcpy(id, s[24].data ? s[24].data : (const unsigned char *) "",
           s[24].len < XRAY_ID_LEN ? s[24].len : XRAY_ID_LEN);

    memcpy(&start, h + 12, sizeof(start));
    bufsize = (size_t) h[2] | (size_t) h[3] << 8;

    memset(&cause, 0, sizeof(cause));
    cause.id = (h[0] & 0x80) ? id : (const unsigned char *) "0f1e2d3c4b5a6978";
    cause.type = s[15];
    cause.message = s[16];
    cause.remote = h[1] & 1;

    for (i = 0; i < 3; i++) {
        ann[i].key = s[7 + 2 * i];
        ann[i].value = s[8 + 2 * i];
        ann[i].kind = (xray_annotation_kind_e) ((h[10] >> (2 * i)) % 3);
    }

    /* s[9]..s[12] serve as annotation and metadata strings both */
    md[0].key = s[11];
    md[0].value = s[12];
    md[1].key = s[13];
    md[1].value = s[14];

    memset(at, 0, sizeof(at));

    for (i = 0; i < 3; i++) {
        at[i].id = (const unsigned char *) "1111111111111111";
        at[i].peer = s[19 + i];
        at[i].start = start + i;
        at[i].end = start + 1000 * i + h[9];
        at[i].status = (h[8] + 97 * i) % 600;
        at[i].cause = (h[9] & (1 << i)) ? &cause : NULL;
        at[i].connect_time = (h[9] & 0x08) ? -1 : (int64_t) h[20 + i];
        at[i].header_time = (h[9] & 0x10) ? -1 : (int64_t) (start >> 20);
        at[i].response_time = (h[9] & 0x20) ? -1 : (int64_t) h[23] << 40;
    }

    memset(&sub, 0, sizeof(sub));
    sub.id = (h[1] & 0x40) ? id : (const unsigned char *) "4afb4da28af96d0c";
    sub.name = s[17];
    sub.start = start;
    sub.end = start + h[21];
    sub.in_progress = (h[0] >> 2) & 1;
    sub.http.method = s[2];
    sub.http.url = s[18];
    sub.http.traced = (h[0] >> 4) & 1;
    sub.http.status = (h[6] | h[7] << 8) % 1000;
    sub.http.content_length = (int8_t) h[22];
    sub.flags = h[1] >> 1;
    sub.cause = (h[1] & 0x10) ? &cause : NULL;
    sub.attempts = at;
    sub.nattempts = h[11] % 4;

    memset(&seg, 0, sizeof(seg));
    seg.name = s[0];
    seg.fallback_name = s[1];
    seg.id = (h[1] & 0x20) ? id : (const unsigned char *) "70de5b6f19ff9a0a";
    seg.trace_id = (const unsigned char *)
                   "1-5759e988-bd862e3fe1be46a994272793";
    seg.parent_id = (h[0] & 0x08) ? (const unsigned char *) "53995c3f42cd8ad8"
                                  : NULL;
    seg.start = start;
    seg.end = start + (h[20] | h[21] << 8);
    seg.in_progress = h[0] & 1;
    seg.origin = s[6];
    seg.http.method = s[2];
    seg.http.url = s[3];
    seg.http.user_agent = s[4];
    seg.http.client_ip = s[5];
    seg.http.x_forwarded_for = (h[0] >> 5) & 1;
    seg.http.status = (h[4] | h[5] << 8) % 1000;
    seg.http.content_length = (int16_t) (h[22] | h[23] << 8);
    seg.flags = xray_status_flags(seg.http.status) | (h[0] >> 6);
    seg.cause = (h[1] & 0x08) ? &cause : NULL;
    seg.annotations = ann;
    seg.nannotations = 3;
    seg.metadata = md;
    seg.nmetadata = (h[11] >> 2) % 3;
    seg.sdk_version = s[22];
    seg.sampling_rule_name = s[23];
    subs[0] = sub;
    subs[1] = sub;
    seg.subsegments = subs;
    seg.nsubsegments = (h[11] & 0x10) ? 1 + ((h[11] >> 5) & 1) : 0;

    d.seg = &seg;
    d.sub = NULL;
    d.trace_id = NULL;
    d.parent_id = NULL;
    d.with_subsegments = (h[0] >> 1) & 1;
    check_doc(&d, bufsize);

    /*
     * with ids that need no escaping (as the module's own are), ids_safe
     * copies them: the same document, with the same edges
     */
    if (xray_json_safe(id, XRAY_ID_LEN) == XRAY_ID_LEN) {
        n = write_doc(&d, big, sizeof(big));
        safe = malloc(n ? n : 1);
        check(safe != NULL);
        memcpy(safe, big, n);

        seg.ids_safe = 1;
        check(write_doc(&d, big, sizeof(big)) == n
              && memcmp(big, safe, n) == 0);
        check_doc(&d, bufsize);
        seg.ids_safe = 0;

        free(safe);
    }

    /*
     * the parts prepared once (xray_segment_head(), xray_segment_aws()),
     * always within their maximum sizes: the same document, with the same
     * edges, and what they stand for is not read
     */
    n = write_doc(&d, big, sizeof(big));
    safe = malloc(n ? n : 1);
    check(safe != NULL);
    memcpy(safe, big, n);

    seg.head.len = xray_segment_head(head, sizeof(head), &seg.name,
                                     &seg.fallback_name);
    seg.head.data = head;
    seg.aws.len = xray_segment_aws(aws, sizeof(aws), &seg.sdk_version,
                                   &seg.sampling_rule_name);
    seg.aws.data = aws;
    check(seg.head.len > 0 && seg.aws.len > 0);

    seg.name.data = (const unsigned char *) "\x01";
    seg.name.len = 1;
    seg.fallback_name = seg.name;
    seg.sdk_version = seg.name;
    seg.sampling_rule_name = seg.name;

    check(write_doc(&d, big, sizeof(big)) == n && memcmp(big, safe, n) == 0);
    check_doc(&d, bufsize);

    /* one byte short of either fails, never writes more */
    check(xray_segment_head(big, seg.head.len - 1, &s[0], &s[1]) == 0);
    check(xray_segment_aws(big, seg.aws.len - 1, &s[22], &s[23]) == 0);

    memset(&seg.head, 0, sizeof(seg.head));
    memset(&seg.aws, 0, sizeof(seg.aws));
    seg.name = s[0];
    seg.fallback_name = s[1];
    seg.sdk_version = s[22];
    seg.sampling_rule_name = s[23];
    free(safe);

    d.seg = NULL;
    d.sub = &sub;
    d.trace_id = seg.trace_id;
    d.parent_id = seg.id;
    check_doc(&d, bufsize);

    return 0;
}
