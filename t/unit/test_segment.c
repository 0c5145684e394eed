/*
 * Unit tests of src/xray_segment.c: documents, escaping, truncation, names,
 * annotations, buffer limits.
 *
 * cc -std=c99 -g -Wall -Wextra -Werror -fsanitize=address,undefined -Isrc \
 *     t/unit/test_segment.c src/xray_segment.c -o /tmp/test_segment \
 *     && /tmp/test_segment
 *
 * With XRAY_SEGMENT_DUMP_DIR set, every whole document the tests write is
 * also saved there as <name>.json, to be checked against the schema.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tap.h"
#include "xray_json.h"
#include "xray_segment.h"


#define R    "1-5759e988-bd862e3fe1be46a994272793"
#define ID   "70de5b6f19ff9a0a"
#define P    "53995c3f42cd8ad8"
#define SUB  "4afb4da28af96d0c"
#define A1   "1111111111111111"
#define A2   "2222222222222222"
#define EX   "0f1e2d3c4b5a6978"

#define T0   1465379208100000ULL      /* 1465379208.100000 */

#define U(s)  ((const unsigned char *) (s))

#define has(buf, n, lit)  contains(buf, n, U(lit), sizeof(lit) - 1)

#define HEAD                                                                 \
    "{\"name\":\"edge-proxy\",\"id\":\"" ID "\",\"trace_id\":\"" R "\""
#define TIMES                                                                \
    ",\"start_time\":1465379208.100000,\"end_time\":1465379208.245000"
#define AWS                                                                  \
    ",\"aws\":{\"xray\":{\"sdk\":\"ngx_http_xray_module\"}}"

/* the full segment, up to its subsegments */
#define FULL                                                                 \
    HEAD ",\"parent_id\":\"" P "\"" TIMES                                    \
    ",\"origin\":\"AWS::EC2::Instance\""                                     \
    ",\"http\":{\"request\":{\"method\":\"GET\","                            \
    "\"url\":\"https://www.example.com/api/users?q=\\\"x\\\"\","             \
    "\"user_agent\":\"curl/8.5.0\","                                         \
    "\"client_ip\":\"203.0.113.7, 10.0.0.1\",\"x_forwarded_for\":true},"     \
    "\"response\":{\"status\":429,\"content_length\":157}}"                  \
    ",\"error\":true,\"throttle\":true,\"fault\":true"                       \
    ",\"cause\":{\"exceptions\":[{\"id\":\"" EX "\","                        \
    "\"type\":\"UpstreamTimeout\","                                          \
    "\"message\":\"upstream timed out (110: Connection timed out)\","        \
    "\"remote\":true}]}"                                                     \
    ",\"annotations\":{\"upstream_name\":\"users_backend\",\"retries\":2,"   \
    "\"cache_hit\":false}"                                                   \
    ",\"metadata\":{\"nginx\":{\"request_id\":\"d2a5c7f0e1b34c6f\","         \
    "\"upstream_addr\":\"10.0.1.12:8080\"}}"                                 \
    ",\"aws\":{\"xray\":{\"sdk\":\"ngx_http_xray_module\","                  \
    "\"sdk_version\":\"0.1.0\",\"sampling_rule_name\":\"api\"}}"

/* the full segment's subsegment, after its ids */
#define FULL_SUB_BODY                                                        \
    ",\"start_time\":1465379208.102000,\"end_time\":1465379208.240000"       \
    ",\"namespace\":\"remote\""                                              \
    ",\"http\":{\"request\":{\"method\":\"GET\","                            \
    "\"url\":\"http://users.internal:8080/api/users\",\"traced\":true},"     \
    "\"response\":{\"status\":503,\"content_length\":0}},\"fault\":true"     \
    ",\"subsegments\":[{\"name\":\"10.0.1.12:8080\",\"id\":\"" A1 "\","      \
    "\"start_time\":1465379208.102000,\"end_time\":1465379208.240000,"       \
    "\"namespace\":\"remote\",\"http\":{\"response\":{\"status\":503}},"     \
    "\"fault\":true,\"metadata\":{\"nginx\":{\"connect_time\":0.001,"        \
    "\"header_time\":0.130,\"response_time\":0.138}}}]"

/* the subsegment with two attempts, after its ids */
#define TWO_BODY                                                             \
    ",\"start_time\":1465379208.102000,\"end_time\":1465379208.240000"       \
    ",\"namespace\":\"remote\""                                              \
    ",\"http\":{\"request\":{\"method\":\"GET\","                            \
    "\"url\":\"http://users.internal:8080/api/users\"},"                     \
    "\"response\":{\"status\":200,\"content_length\":861}}"                  \
    ",\"subsegments\":["                                                     \
    "{\"name\":\"10.0.1.11:8080\",\"id\":\"" A1 "\","                        \
    "\"start_time\":1465379208.102000,\"end_time\":1465379208.105000,"       \
    "\"namespace\":\"remote\",\"fault\":true,"                               \
    "\"cause\":{\"exceptions\":[{\"id\":\"" EX "\","                         \
    "\"type\":\"ConnectionRefused\","                                        \
    "\"message\":\"connect() failed (111: Connection refused)\","            \
    "\"remote\":true}]}},"                                                   \
    "{\"name\":\"10.0.1.12:8080\",\"id\":\"" A2 "\","                        \
    "\"start_time\":1465379208.105000,\"end_time\":1465379208.240000,"       \
    "\"namespace\":\"remote\",\"http\":{\"response\":{\"status\":200}},"     \
    "\"metadata\":{\"nginx\":{\"connect_time\":0.001,"                       \
    "\"header_time\":0.005,\"response_time\":0.134}}}]"


typedef struct {
    const char  *name;
    const char  *in;
    size_t       len;
    const char  *out;
} escape_case_t;


typedef struct {
    const char  *name;
    const char  *in;
    const char  *out;
} name_case_t;


#define E(name, in, out)  { name, in, sizeof(in) - 1, out }


static const escape_case_t  escape_cases[] = {

    E("quote",
      "say \"hi\"",
      "say \\\"hi\\\""),

    E("backslash",
      "C:\\dir\\",
      "C:\\\\dir\\\\"),

    E("DEL as is",
      "a\x7f" "b",
      "a\x7f" "b"),

    E("slash not escaped",
      "/a/b",
      "/a/b"),

    E("NUL inside",
      "a\x00" "b",
      "a\\u0000b"),

    E("2-byte",
      "caf\xc3\xa9",
      "caf\xc3\xa9"),

    E("2-byte U+0080",
      "\xc2\x80",
      "\xc2\x80"),

    E("3-byte",
      "\xe2\x82\xac 5",
      "\xe2\x82\xac 5"),

    E("3-byte U+0800",
      "\xe0\xa0\x80",
      "\xe0\xa0\x80"),

    E("3-byte U+D7FF, before the surrogates",
      "\xed\x9f\xbf",
      "\xed\x9f\xbf"),

    E("3-byte U+E000, after the surrogates",
      "\xee\x80\x80",
      "\xee\x80\x80"),

    E("3-byte U+FFFF",
      "\xef\xbf\xbf",
      "\xef\xbf\xbf"),

    E("U+2028 as is",
      "\xe2\x80\xa8",
      "\xe2\x80\xa8"),

    E("4-byte",
      "\xf0\x9f\x98\x80",
      "\xf0\x9f\x98\x80"),

    E("4-byte U+10000",
      "\xf0\x90\x80\x80",
      "\xf0\x90\x80\x80"),

    E("4-byte U+10FFFF",
      "\xf4\x8f\xbf\xbf",
      "\xf4\x8f\xbf\xbf"),

    E("lone continuation 80",
      "a\x80" "b",
      "a\\ufffdb"),

    E("lone continuation bf",
      "\xbf",
      "\\ufffd"),

    E("two continuations",
      "\x80\x80",
      "\\ufffd\\ufffd"),

    E("overlong lead c0",
      "\xc0\xaf",
      "\\ufffd\\ufffd"),

    E("overlong lead c1",
      "\xc1\xbf",
      "\\ufffd\\ufffd"),

    E("overlong 3-byte e0 80",
      "\xe0\x80\xaf",
      "\\ufffd\\ufffd\\ufffd"),

    E("overlong 3-byte e0 9f",
      "\xe0\x9f\xbf",
      "\\ufffd\\ufffd\\ufffd"),

    E("overlong 4-byte f0 80",
      "\xf0\x80\x80\xaf",
      "\\ufffd\\ufffd\\ufffd\\ufffd"),

    E("overlong 4-byte f0 8f",
      "\xf0\x8f\xbf\xbf",
      "\\ufffd\\ufffd\\ufffd\\ufffd"),

    E("surrogate U+D800",
      "\xed\xa0\x80",
      "\\ufffd\\ufffd\\ufffd"),

    E("surrogate U+DFFF",
      "\xed\xbf\xbf",
      "\\ufffd\\ufffd\\ufffd"),

    E("surrogate pair",
      "\xed\xa0\xbd\xed\xb8\x80",
      "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"),

    E("above U+10FFFF: f4 90",
      "\xf4\x90\x80\x80",
      "\\ufffd\\ufffd\\ufffd\\ufffd"),

    E("lead f5",
      "\xf5\x80\x80\x80",
      "\\ufffd\\ufffd\\ufffd\\ufffd"),

    E("lead f8, old 5-byte form",
      "\xf8\x88\x80\x80\x80",
      "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"),

    E("lead fe",
      "\xfe",
      "\\ufffd"),

    E("lead ff",
      "\xff",
      "\\ufffd"),

    E("truncated 2-byte at end",
      "a\xc3",
      "a\\ufffd"),

    E("truncated 2-byte before ASCII",
      "\xc3" "A",
      "\\ufffdA"),

    E("truncated 3-byte at end",
      "\xe2\x82",
      "\\ufffd"),

    E("truncated 3-byte before ASCII",
      "\xe2\x82" "A",
      "\\ufffdA"),

    E("truncated 4-byte at end",
      "\xf0\x9f\x98",
      "\\ufffd"),

    E("truncated 4-byte before a lead",
      "\xf0\x9f\xc3\xa9",
      "\\ufffd\xc3\xa9"),

    E("lead before a full sequence",
      "\xe2\xe2\x82\xac",
      "\\ufffd\xe2\x82\xac"),

};


static const name_case_t  name_cases[] = {
    { "plain", "edge-proxy", "edge-proxy" },
    { "parentheses and '!' dropped", "edge proxy (prod)!", "edge proxy prod" },
    { "every allowed ASCII symbol", "a_.:/%&#=+-@ Z9", "a_.:/%&#=+-@ Z9" },
    { "backslash dropped (schema)", "back\\slash", "backslash" },
    { "the Python SDK's list", "?;*()!$~^<>", "" },
    { "quotes, comma, brackets", "q\"u'o`te,[x]{y}|", "quotexy" },
    { "control bytes and DEL", "tab\tnl\ncr\rdel\x7f", "tabnlcrdel" },
    { "Latin letter", "caf\xc3\xa9", "caf\xc3\xa9" },
    { "CJK letters", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
    { "Greek letter", "\xce\xa9mega", "\xce\xa9mega" },
    { "Arabic-Indic digit", "\xd9\xa3 arabic-indic 3",
      "\xd9\xa3 arabic-indic 3" },
    { "space separators", "nb\xc2\xa0sp ideo\xe3\x80\x80sp ls\xe2\x80\xa8",
      "nb\xc2\xa0sp ideo\xe3\x80\x80sp ls\xe2\x80\xa8" },
    { "emoji: not a letter", "a\xf0\x9f\x98\x80" "b", "ab" },
    { "currency and other symbols", "5\xe2\x82\xac \xc2\xa9", "5 " },
    { "combining mark", "e\xcc\x81", "e" },
    { "invalid UTF-8", "a\xff" "b\xc3", "ab" },
    { "surrogate, overlong", "\xed\xa0\x80" "x\xc0\xaf", "x" },
    { "first and last range", "\xc2\xaa\xef\xbf\x9c", "\xc2\xaa\xef\xbf\x9c" },
    { "just outside them", "\xc2\xa9\xef\xbf\x9d", "" },
    { "IPv6 peer", "[::1]:8080", "::1:8080" }
};


static const char  *dump_dir;


static xray_span_t
sp(const char *s)
{
    xray_span_t  span;

    span.data = U(s);
    span.len = strlen(s);

    return span;
}


/* writes n copies of unit at dst; returns the length */

static size_t
repeat(unsigned char *dst, const char *unit, size_t n)
{
    size_t  i, len;

    len = strlen(unit);

    for (i = 0; i < n; i++) {
        memcpy(dst + i * len, unit, len);
    }

    return n * len;
}


static int
contains(const unsigned char *hay, size_t n, const unsigned char *needle,
    size_t len)
{
    size_t  i;

    for (i = 0; i + len <= n; i++) {
        if (memcmp(hay + i, needle, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* non-overlapping occurrences */

static size_t
count(const unsigned char *hay, size_t n, const unsigned char *needle,
    size_t len)
{
    size_t  i, found;

    found = 0;

    for (i = 0; i + len <= n; i++) {
        if (memcmp(hay + i, needle, len) == 0) {
            found++;
            i += len - 1;
        }
    }

    return found;
}


static void
dump(const char *name, const unsigned char *doc, size_t n)
{
    int          len;
    char         path[1024], *p;
    FILE        *f;
    static int   seq;

    if (dump_dir == NULL || n == 0) {
        return;
    }

    len = snprintf(path, sizeof(path), "%s/%03d-", dump_dir, ++seq);
    if (len < 0 || (size_t) len + strlen(name) + 6 > sizeof(path)) {
        printf("# dump path too long\n");
        return;
    }

    /* the test name as a file name */
    for (p = path + len; *name; name++) {
        *p++ = ((*name >= 'a' && *name <= 'z')
                || (*name >= 'A' && *name <= 'Z')
                || (*name >= '0' && *name <= '9')) ? *name : '_';
    }

    strcpy(p, ".json");

    f = fopen(path, "w");
    if (f == NULL || fwrite(doc, 1, n, f) != n) {
        printf("# cannot write %s\n", path);
    }

    if (f != NULL) {
        fclose(f);
    }
}


static void
minimal(xray_segment_t *seg)
{
    memset(seg, 0, sizeof(*seg));

    seg->name = sp("edge-proxy");
    seg->id = U(ID);
    seg->trace_id = U(R);
    seg->start = T0;
    seg->end = T0 + 145000;
}


static void
two_attempts(xray_subsegment_t *sub, xray_attempt_t *at, xray_cause_t *c)
{
    memset(sub, 0, sizeof(*sub));
    memset(at, 0, 2 * sizeof(*at));
    memset(c, 0, sizeof(*c));

    c->id = U(EX);
    c->type = sp("ConnectionRefused");
    c->message = sp("connect() failed (111: Connection refused)");
    c->remote = 1;

    at[0].id = U(A1);
    at[0].peer = sp("10.0.1.11:8080");
    at[0].start = T0 + 2000;
    at[0].end = T0 + 5000;
    at[0].status = 0;
    at[0].cause = c;
    at[0].connect_time = -1;
    at[0].header_time = -1;
    at[0].response_time = -1;

    at[1].id = U(A2);
    at[1].peer = sp("10.0.1.12:8080");
    at[1].start = T0 + 5000;
    at[1].end = T0 + 140000;
    at[1].status = 200;
    at[1].connect_time = 1;
    at[1].header_time = 5;
    at[1].response_time = 134;

    sub->id = U(SUB);
    sub->name = sp("users.internal");
    sub->start = T0 + 2000;
    sub->end = T0 + 140000;
    sub->http.method = sp("GET");
    sub->http.url = sp("http://users.internal:8080/api/users");
    sub->http.status = 200;
    sub->http.content_length = 861;
    sub->flags = xray_status_flags(200);
    sub->attempts = at;
    sub->nattempts = 2;
}


/* every field set; the caller's arrays must outlive the segment */

static void
full(xray_segment_t *seg, xray_subsegment_t *sub, xray_attempt_t *at,
    xray_annotation_t *ann, xray_metadata_t *md, xray_cause_t *c)
{
    minimal(seg);

    c->id = U(EX);
    c->type = sp("UpstreamTimeout");
    c->message = sp("upstream timed out (110: Connection timed out)");
    c->remote = 1;

    ann[0].key = sp("upstream_name");
    ann[0].value = sp("users_backend");
    ann[0].kind = XRAY_ANNOTATION_STRING;
    ann[1].key = sp("retries");
    ann[1].value = sp("2");
    ann[1].kind = XRAY_ANNOTATION_NUMBER;
    ann[2].key = sp("cache_hit");
    ann[2].value = sp("off");
    ann[2].kind = XRAY_ANNOTATION_BOOLEAN;
    ann[3].key = sp("bad-key");
    ann[3].value = sp("skipped");
    ann[3].kind = XRAY_ANNOTATION_STRING;
    ann[4].key = sp("empty");
    ann[4].value = sp("");
    ann[4].kind = XRAY_ANNOTATION_STRING;

    md[0].key = sp("request_id");
    md[0].value = sp("d2a5c7f0e1b34c6f");
    md[1].key = sp("upstream_addr");
    md[1].value = sp("10.0.1.12:8080");

    memset(at, 0, sizeof(*at));
    at->id = U(A1);
    at->peer = sp("10.0.1.12:8080");
    at->start = T0 + 2000;
    at->end = T0 + 140000;
    at->status = 503;
    at->connect_time = 1;
    at->header_time = 130;
    at->response_time = 138;

    memset(sub, 0, sizeof(*sub));
    sub->id = U(SUB);
    sub->name = sp("users.internal");
    sub->start = T0 + 2000;
    sub->end = T0 + 140000;
    sub->http.method = sp("GET");
    sub->http.url = sp("http://users.internal:8080/api/users");
    sub->http.traced = 1;
    sub->http.status = 503;
    sub->http.content_length = 0;
    sub->flags = xray_status_flags(503);
    sub->attempts = at;
    sub->nattempts = 1;

    seg->fallback_name = sp("fallback");
    seg->parent_id = U(P);
    seg->origin = sp("AWS::EC2::Instance");
    seg->http.method = sp("GET");
    seg->http.url = sp("https://www.example.com/api/users?q=\"x\"");
    seg->http.user_agent = sp("curl/8.5.0");
    seg->http.client_ip = sp("203.0.113.7, 10.0.0.1");
    seg->http.x_forwarded_for = 1;
    seg->http.status = 429;
    seg->http.content_length = 157;
    seg->flags = XRAY_FLAG_ERROR | XRAY_FLAG_THROTTLE | XRAY_FLAG_FAULT;
    seg->cause = c;
    seg->annotations = ann;
    seg->nannotations = 5;
    seg->metadata = md;
    seg->nmetadata = 2;
    seg->sdk_version = sp("0.1.0");
    seg->sampling_rule_name = sp("api");
    seg->subsegments = sub;
    seg->nsubsegments = sub ? 1 : 0;
}


/* writes with a generous buffer, compares, and dumps the document */

static void
is_segment(const xray_segment_t *seg, int with_subsegments, const char *want,
    const char *name)
{
    static unsigned char  buf[256 * 1024];
    size_t                n;

    n = xray_segment_write(buf, sizeof(buf), seg, with_subsegments);
    is_mem(buf, n, want, "%s", name);
    dump(name, buf, n);
}


static void
test_documents(void)
{
    static unsigned char  buf[8192], safe[8192];
    size_t                n;
    xray_segment_t        seg;
    xray_subsegment_t     sub, subs[2];
    xray_attempt_t        at[2];
    xray_annotation_t     ann[5];
    xray_metadata_t       md[2];
    xray_cause_t          c;

    minimal(&seg);
    is_segment(&seg, 1, HEAD TIMES AWS "}", "minimal");

    full(&seg, &sub, at, ann, md, &c);
    is_segment(&seg, 1,
               FULL ",\"subsegments\":[{\"name\":\"users.internal\","
               "\"id\":\"" SUB "\"" FULL_SUB_BODY "}]}",
               "full");

    is_segment(&seg, 0, FULL "}", "full_without_subsegments");

    /* hex ids the caller vouches for: the very bytes of the escaped ones */
    full(&seg, &sub, at, ann, md, &c);
    seg.parent_id = U(P);
    n = xray_segment_write(buf, sizeof(buf), &seg, 1);
    seg.ids_safe = 1;
    ok(n > 0 && xray_segment_write(safe, sizeof(safe), &seg, 1) == n
       && memcmp(buf, safe, n) == 0, "ids_safe: the same document");
    dump("ids_safe", safe, n);

    minimal(&seg);
    seg.parent_id = U(P);
    seg.in_progress = 1;
    seg.sdk_version = sp("0.1.0");
    is_segment(&seg, 1,
               HEAD ",\"parent_id\":\"" P "\""
               ",\"start_time\":1465379208.100000,\"in_progress\":true"
               ",\"aws\":{\"xray\":{\"sdk\":\"ngx_http_xray_module\","
               "\"sdk_version\":\"0.1.0\"}}}",
               "in_progress");

    minimal(&seg);
    c.id = U(EX);
    c.type = sp("ConnectionRefused");
    c.message = sp("connect() failed (111: Connection refused) while "
                   "connecting to upstream");
    c.remote = 1;
    seg.http.method = sp("POST");
    seg.http.url = sp("https://www.example.com/upload");
    seg.http.client_ip = sp("198.51.100.2");
    seg.http.status = 502;
    seg.http.content_length = 157;
    seg.flags = xray_status_flags(502);
    seg.cause = &c;
    is_segment(&seg, 1,
               HEAD TIMES
               ",\"http\":{\"request\":{\"method\":\"POST\","
               "\"url\":\"https://www.example.com/upload\","
               "\"client_ip\":\"198.51.100.2\"},"
               "\"response\":{\"status\":502,\"content_length\":157}}"
               ",\"fault\":true"
               ",\"cause\":{\"exceptions\":[{\"id\":\"" EX "\","
               "\"type\":\"ConnectionRefused\","
               "\"message\":\"connect() failed (111: Connection refused) "
               "while connecting to upstream\",\"remote\":true}]}"
               AWS "}",
               "502_with_cause");

    c.id = NULL;
    is_segment(&seg, 1,
               HEAD TIMES
               ",\"http\":{\"request\":{\"method\":\"POST\","
               "\"url\":\"https://www.example.com/upload\","
               "\"client_ip\":\"198.51.100.2\"},"
               "\"response\":{\"status\":502,\"content_length\":157}}"
               ",\"fault\":true" AWS "}",
               "cause without id omitted");

    minimal(&seg);
    two_attempts(&sub, at, &c);
    seg.subsegments = &sub;
    seg.nsubsegments = 1;
    is_segment(&seg, 1,
               HEAD TIMES AWS ",\"subsegments\":[{\"name\":\"users.internal\","
               "\"id\":\"" SUB "\"" TWO_BODY "}]}",
               "two_attempts");

    is_segment(&seg, 0, HEAD TIMES AWS "}", "two_attempts_split");

    subs[0] = sub;
    subs[1] = sub;
    subs[1].name = sp("auth.internal");
    seg.subsegments = subs;
    seg.nsubsegments = 2;
    is_segment(&seg, 1,
               HEAD TIMES AWS ",\"subsegments\":[{\"name\":"
               "\"users.internal\",\"id\":\"" SUB "\"" TWO_BODY "},"
               "{\"name\":\"auth.internal\",\"id\":\"" SUB "\""
               TWO_BODY "}]}",
               "two calls: both subsegments, in order");
    is_segment(&seg, 0, HEAD TIMES AWS "}", "two calls, split");
    seg.subsegments = &sub;
    seg.nsubsegments = 1;

    n = xray_subsegment_write(buf, sizeof(buf), &sub, U(R), U(ID));
    is_mem(buf, n,
           "{\"name\":\"users.internal\",\"id\":\"" SUB "\","
           "\"trace_id\":\"" R "\",\"parent_id\":\"" ID "\","
           "\"type\":\"subsegment\"" TWO_BODY "}",
           "independent subsegment");
    dump("independent_subsegment", buf, n);

    sub.in_progress = 1;
    sub.nattempts = 0;
    sub.http.status = 0;
    sub.http.traced = 1;
    n = xray_subsegment_write(buf, sizeof(buf), &sub, U(R), U(ID));
    is_mem(buf, n,
           "{\"name\":\"users.internal\",\"id\":\"" SUB "\","
           "\"trace_id\":\"" R "\",\"parent_id\":\"" ID "\","
           "\"type\":\"subsegment\",\"start_time\":1465379208.102000,"
           "\"in_progress\":true,\"namespace\":\"remote\","
           "\"http\":{\"request\":{\"method\":\"GET\","
           "\"url\":\"http://users.internal:8080/api/users\","
           "\"traced\":true}}}",
           "independent subsegment in progress, no response yet");
    dump("independent_subsegment_in_progress", buf, n);
}


static void
test_fields(void)
{
    xray_segment_t  seg;
    xray_cause_t    c;

    /* a zeroed http: no http object; content_length needs a status */
    minimal(&seg);
    seg.http.content_length = 10;
    is_segment(&seg, 1, HEAD TIMES AWS "}", "no status: no response");

    seg.http.status = 200;
    seg.http.content_length = -1;
    is_segment(&seg, 1,
               HEAD TIMES ",\"http\":{\"response\":{\"status\":200}}" AWS "}",
               "status without length");

    minimal(&seg);
    seg.http.x_forwarded_for = 1;
    is_segment(&seg, 1,
               HEAD TIMES ",\"http\":{\"request\":{\"x_forwarded_for\":true}}"
               AWS "}",
               "request holding only a flag");

    minimal(&seg);
    seg.flags = xray_status_flags(404);
    is_segment(&seg, 1, HEAD TIMES ",\"error\":true" AWS "}", "error flag");

    memset(&c, 0, sizeof(c));
    c.id = U(EX);
    seg.cause = &c;
    seg.flags = 0;
    is_segment(&seg, 1,
               HEAD TIMES ",\"cause\":{\"exceptions\":[{\"id\":\"" EX "\"}]}"
               AWS "}",
               "cause with an id only");

    /* times: exactly six decimals, integers written without printf */
    minimal(&seg);
    seg.start = 0;
    seg.end = 1;
    is_segment(&seg, 1,
               HEAD ",\"start_time\":0.000000,\"end_time\":0.000001" AWS "}",
               "times near zero");

    seg.start = 999999;
    seg.end = UINT64_MAX;
    is_segment(&seg, 1,
               HEAD ",\"start_time\":0.999999,"
               "\"end_time\":18446744073709.551615" AWS "}",
               "times: largest value");

    minimal(&seg);
    seg.http.status = 999;
    seg.http.content_length = INT64_MAX;
    is_segment(&seg, 1,
               HEAD TIMES ",\"http\":{\"response\":{\"status\":999,"
               "\"content_length\":9223372036854775807}}" AWS "}",
               "largest status and length");

    /* the ids come from the caller, but are still escaped */
    minimal(&seg);
    seg.id = U("\"\\\x01" "3456789abcdef");
    is_segment(&seg, 1,
               "{\"name\":\"edge-proxy\","
               "\"id\":\"\\\"\\\\\\u00013456789abcdef\","
               "\"trace_id\":\"" R "\"" TIMES AWS "}",
               "bad id escaped");
}


/*
 * Numbers: xray_fmt_uint() against printf at the edges of each of its
 * paths, and attempt times in milliseconds around one second
 */

static void
test_numbers(void)
{
    char                   want[64];
    size_t                 i, bad, n, len;
    uint64_t               v;
    unsigned char          out[XRAY_FRAC_LEN + 1], doc[1024];
    unsigned char         *end;
    xray_cause_t           c;
    xray_attempt_t         at[2];
    xray_subsegment_t      sub;

    static const uint64_t  edges[] = {
        0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000,
        999999, 1000000, 9999999, 10000000, 99999999, 100000000,
        100000001, 999999999, 1000000000, 1796064243, 4294967295ULL,
        4294967296ULL, 9999999999ULL, 10000000000ULL, 9999999999999999ULL,
        10000000000000000ULL, 10000000000000001ULL, 99999999999999999ULL,
        9223372036854775807ULL, 18446744073709551615ULL
    };

    bad = 0;

    for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        for (v = edges[i] ? edges[i] - 1 : 0; v <= edges[i] + 1; v++) {
            len = (size_t) snprintf(want, sizeof(want), "%llu",
                                    (unsigned long long) v);
            end = xray_fmt_uint(out, v);

            if ((size_t) (end - out) != len || memcmp(out, want, len) != 0) {
                bad++;
            }

            len = (size_t) snprintf(want, sizeof(want), "%llu.%03llu",
                                    (unsigned long long) (v / 1000),
                                    (unsigned long long) (v % 1000));
            end = xray_fmt_ms(out, v);

            if ((size_t) (end - out) != len || memcmp(out, want, len) != 0) {
                bad++;
            }

            if (v == UINT64_MAX) {
                break;
            }
        }
    }

    is_int(bad, 0, "numbers: integers and milliseconds at every edge");

    two_attempts(&sub, at, &c);
    at[1].connect_time = 999;
    at[1].header_time = 1000;
    at[1].response_time = INT64_MAX;
    n = xray_subsegment_write(doc, sizeof(doc), &sub, U(R), U(ID));
    ok(has(doc, n, "\"connect_time\":0.999,\"header_time\":1.000,"
                   "\"response_time\":9223372036854775.807}"),
       "numbers: milliseconds around a second, and the largest");
}


/*
 * xray_json_safe() (SSE2 on x86-64) and xray_json_safe_portable() against
 * a byte at a time: every byte value at every position of strings of 0 to
 * 40 bytes (around the 4, 8 and 16 byte reads), each in a heap block of
 * exactly its size, so that ASan sees any read past it.
 */

static size_t
json_safe_ref(const unsigned char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7f || s[i] == '"' || s[i] == '\\') {
            break;
        }
    }

    return i;
}


static void
test_json_safe(void)
{
    size_t          len, at, bad, want, fast, portable, i;
    unsigned        c;
    unsigned char  *s;

    bad = 0;

    for (len = 0; len <= 40; len++) {
        s = malloc(len ? len : 1);
        if (s == NULL) {
            abort();
        }

        memset(s, 'a', len);
        want = json_safe_ref(s, len);
        bad += xray_json_safe(s, len) != want
               || xray_json_safe_portable(s, len) != want;

        for (at = 0; at < len; at++) {
            for (c = 0; c < 256; c++) {
                s[at] = (unsigned char) c;
                want = json_safe_ref(s, len);
                fast = xray_json_safe(s, len);
                portable = xray_json_safe_portable(s, len);

                if (fast != want || portable != want) {
                    if (bad++ < 5) {
                        fprintf(stderr, "# json_safe: len %zu, 0x%02x at "
                                "%zu: %zu %zu, want %zu\n", len, c, at,
                                fast, portable, want);
                    }
                }

                /* a second byte to escape after it: the first still wins */
                for (i = at + 1; i < len; i += 7) {
                    s[i] = '"';
                    bad += xray_json_safe(s, len) != json_safe_ref(s, len)
                           || xray_json_safe_portable(s, len)
                              != json_safe_ref(s, len);
                    s[i] = 'a';
                }
            }

            s[at] = 'a';
        }

        free(s);
    }

    is_int(bad, 0, "json_safe: every byte at every position, lengths 0-40");

    /* the bytes that need escaping, and their neighbours that do not */
    is_int(xray_json_safe(U("abcdefghijklmnop\x1f"), 17), 16,
           "json_safe: 0x1f after sixteen");
    is_int(xray_json_safe(U("abcdefghijklmnop "), 17), 17,
           "json_safe: 0x20 after sixteen");
    is_int(xray_json_safe(U("abcdefghijklmnop\x7f"), 17), 17,
           "json_safe: 0x7f after sixteen");
    is_int(xray_json_safe(U("abcdefghijklmnop\x80"), 17), 16,
           "json_safe: 0x80 after sixteen");
    is_int(xray_json_safe(U("abcdefg\\"), 8), 7, "json_safe: '\\' eighth");
    is_int(xray_json_safe(U("abc\""), 4), 3, "json_safe: '\"' fourth");
    is_int(xray_json_safe(U("\xff"), 1), 0, "json_safe: 0xff alone");
}


static void
test_escape(void)
{
    size_t                i, n, want;
    unsigned char         out[64];
    const escape_case_t  *e;

    for (i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
        e = &escape_cases[i];
        n = xray_json_escape(out, sizeof(out), U(e->in), e->len, 250);
        is_mem(out, n, e->out, "escape: %s", e->name);
    }

    /* every control byte */
    for (i = 0; i < 0x20; i++) {
        out[0] = (unsigned char) i;
        n = xray_json_escape(out + 1, sizeof(out) - 1, out, 1, 250);

        switch (i) {
        case '\b':
            want = 'b';
            break;
        case '\t':
            want = 't';
            break;
        case '\n':
            want = 'n';
            break;
        case '\f':
            want = 'f';
            break;
        case '\r':
            want = 'r';
            break;
        default:
            want = 0;
        }

        if (want) {
            ok(n == 2 && out[1] == '\\' && out[2] == want,
               "escape: control 0x%02x as \\%c", (unsigned) i, (int) want);

        } else {
            ok(n == 6 && memcmp(out + 1, "\\u00", 4) == 0
               && out[5] == "0123456789abcdef"[i >> 4]
               && out[6] == "0123456789abcdef"[i & 0x0f],
               "escape: control 0x%02x as \\u00%02x", (unsigned) i,
               (unsigned) i);
        }
    }

    /* every other ASCII byte is copied, except '"' and '\' */
    n = 0;

    for (i = 0x20; i < 0x80; i++) {
        out[0] = (unsigned char) i;
        want = (i == '"' || i == '\\') ? 2 : 1;
        n += xray_json_escape(out + 1, sizeof(out) - 1, out, 1, 250)
             == want && out[want] == i;
    }

    is_int(n, 0x60, "escape: 0x20..0x7f copied or escaped with '\\'");

    is_int(xray_json_escape(out, sizeof(out), U(""), 0, 250), 0,
           "escape: empty");
    is_int(xray_json_escape(out, sizeof(out), U("abc"), 3, 0), 0,
           "escape: max 0 keeps nothing");
    is_int(xray_json_escape(out, 5, U("\x01"), 1, 250), XRAY_JSON_ERROR,
           "escape: an escape that does not fit");
    is_int(xray_json_escape(out, 6, U("\x01"), 1, 250), 6,
           "escape: an escape that just fits");
    is_int(xray_json_escape(NULL, 0, U("a"), 1, 250), XRAY_JSON_ERROR,
           "escape: NULL buffer");
}


/* in is n_prefix 'a' then tail; the result must be n_keep 'a' then kept */

/* writes before, then '"', n copies of unit, '"', then after */

static size_t
quoted(unsigned char *dst, const char *before, const char *unit, size_t n,
    const char *after)
{
    size_t  len;

    len = strlen(before);
    memcpy(dst, before, len);
    dst[len++] = '"';
    len += repeat(dst + len, unit, n);
    dst[len++] = '"';
    memcpy(dst + len, after, strlen(after));

    return len + strlen(after);
}


static void
is_truncated(size_t n_prefix, const char *tail, size_t max, size_t n_keep,
    const char *kept, const char *name)
{
    static unsigned char  in[2048], out[8192], want[8192];
    size_t                len, n, wlen;

    len = repeat(in, "a", n_prefix);
    memcpy(in + len, tail, strlen(tail));
    len += strlen(tail);

    wlen = repeat(want, "a", n_keep);
    memcpy(want + wlen, kept, strlen(kept));
    wlen += strlen(kept);

    n = xray_json_escape(out, sizeof(out), in, len, max);
    ok(n == wlen && memcmp(out, want, n) == 0, "truncate: %s", name);
}


static void
is_repeat_truncated(const char *unit, size_t times, size_t max,
    const char *want_unit, size_t want_times, const char *name)
{
    static unsigned char  in[8192], out[8192], want[8192];
    size_t                len, n, wlen;

    len = repeat(in, unit, times);
    wlen = repeat(want, want_unit, want_times);

    n = xray_json_escape(out, sizeof(out), in, len, max);
    ok(n == wlen && memcmp(out, want, n) == 0, "truncate: %s", name);
}


static void
test_truncation(void)
{
    static unsigned char  buf[256 * 1024], big[2048], want[2048];
    size_t                n, len, wlen;
    xray_segment_t        seg;
    xray_annotation_t     ann;
    xray_metadata_t       md;
    xray_cause_t          c;

    is_truncated(250, "", 250, 250, "", "250 ASCII kept");
    is_truncated(251, "", 250, 250, "", "251 ASCII cut to 250");
    is_truncated(249, "\xc3\xa9", 250, 249, "\xc3\xa9",
                 "2-byte character as the 250th kept");
    is_truncated(250, "\xc3\xa9", 250, 250, "",
                 "2-byte character as the 251st dropped whole");
    is_truncated(249, "\xe2\x82\xac", 250, 249, "\xe2\x82\xac",
                 "3-byte character as the 250th kept");
    is_truncated(250, "\xe2\x82\xac", 250, 250, "",
                 "3-byte character as the 251st dropped whole");
    is_truncated(248, "\xf0\x9f\x98\x80", 250, 248, "\xf0\x9f\x98\x80",
                 "4-byte character as the 249th and 250th units kept");
    is_truncated(249, "\xf0\x9f\x98\x80", 250, 249, "",
                 "4-byte character across the limit dropped whole");
    is_truncated(249, "\"", 250, 249, "\\\"", "'\"' as the 250th kept");
    is_truncated(250, "\"", 250, 250, "", "'\"' as the 251st dropped");
    is_truncated(249, "\x01", 250, 249, "\\u0001",
                 "control byte as the 250th kept");
    is_truncated(250, "\x01", 250, 250, "", "control byte as 251st dropped");
    is_truncated(249, "\n", 250, 249, "\\n", "newline as the 250th kept");
    is_truncated(249, "\xff", 250, 249, "\\ufffd",
                 "invalid byte as the 250th kept as \\ufffd");
    is_truncated(250, "\xff", 250, 250, "", "invalid byte as 251st dropped");
    is_truncated(249, "\xe2\x82", 250, 249, "\\ufffd",
                 "truncated sequence as the 250th: one \\ufffd");

    is_repeat_truncated("\xc3\xa9", 251, 250, "\xc3\xa9", 250,
                        "251 2-byte characters cut to 250");
    is_repeat_truncated("\xe2\x82\xac", 251, 250, "\xe2\x82\xac", 250,
                        "251 3-byte characters cut to 250");
    is_repeat_truncated("\xf0\x9f\x98\x80", 126, 250, "\xf0\x9f\x98\x80",
                        125, "126 4-byte characters cut to 125 (250 units)");
    is_repeat_truncated("\"", 251, 250, "\\\"", 250,
                        "251 quotes cut to 250 escapes");
    is_repeat_truncated("\x80", 251, 250, "\\ufffd", 250,
                        "251 invalid bytes cut to 250 \\ufffd");

    /* each field's limit in a document */
    minimal(&seg);
    len = repeat(big, "u", 300);
    seg.http.url.data = big;
    seg.http.url.len = len;
    seg.http.user_agent = seg.http.url;
    seg.http.client_ip = seg.http.url;
    seg.http.method = seg.http.url;
    seg.origin = seg.http.url;
    memset(&c, 0, sizeof(c));
    c.id = U(EX);
    c.type = seg.http.url;
    c.message = seg.http.url;
    seg.cause = &c;
    seg.sdk_version = seg.http.url;
    seg.sampling_rule_name = seg.http.url;

    n = xray_segment_write(buf, sizeof(buf), &seg, 1);
    dump("long_strings", buf, n);

    wlen = quoted(want, "", "u", 250, "");
    is_int(count(buf, n, want, wlen), 9,
           "truncate: 9 strings at their limit of 250");
    wlen = repeat(want, "u", 251);
    ok(!contains(buf, n, want, wlen), "truncate: no string above 250");

    /* the name at 200, annotation values at 1000, metadata keys at 250 */
    minimal(&seg);
    len = repeat(big, "n", 201);
    seg.name.data = big;
    seg.name.len = len;
    n = xray_segment_write(buf, sizeof(buf), &seg, 1);
    wlen = quoted(want, "{\"name\":", "n", 200, ",");
    ok(n > wlen && memcmp(buf, want, wlen) == 0, "truncate: name at 200");
    dump("long_name", buf, n);

    len = repeat(big, "\xe6\x97\xa5", 201);
    seg.name.len = len;
    n = xray_segment_write(buf, sizeof(buf), &seg, 1);
    wlen = quoted(want, "{\"name\":", "\xe6\x97\xa5", 200, ",");
    ok(n > wlen && memcmp(buf, want, wlen) == 0,
       "truncate: name of 3-byte letters at 200");
    dump("long_name_cjk", buf, n);

    minimal(&seg);
    len = repeat(big, "v", 1001);
    ann.key = sp("k");
    ann.value.data = big;
    ann.value.len = len;
    ann.kind = XRAY_ANNOTATION_STRING;
    seg.annotations = &ann;
    seg.nannotations = 1;
    md.key.data = big;
    md.key.len = 251;
    md.value.data = big;
    md.value.len = len;
    seg.metadata = &md;
    seg.nmetadata = 1;
    n = xray_segment_write(buf, sizeof(buf), &seg, 1);
    dump("long_annotation", buf, n);

    wlen = quoted(want, ",\"annotations\":{\"k\":", "v", 1000, "}");
    ok(contains(buf, n, want, wlen), "truncate: annotation value at 1000");
    wlen = quoted(want, ",\"metadata\":{\"nginx\":{", "v", 250, ":");
    ok(contains(buf, n, want, wlen), "truncate: metadata key at 250");
    wlen = quoted(want, ":", "v", 1000, "}}");
    ok(contains(buf, n, want, wlen), "truncate: metadata value at 1000");
}


/*
 * Names read four bytes at a time: every byte value at every position of
 * ASCII names of 0 to 12 bytes, each in a heap block of exactly its size
 */

/* strings of every length to 40 (copied in 4 to 16 byte moves) and names */

static void
test_string_lengths(void)
{
    char             src[64], want[512];
    size_t           len, n, wlen, bad;
    unsigned char    out[512];
    xray_segment_t   seg;

    bad = 0;

    for (len = 0; len <= 40; len++) {
        for (n = 0; n < len; n++) {
            src[n] = (char) ('A' + (n * 7 + len) % 26);
        }

        minimal(&seg);

        if (len > 0) {
            seg.name.data = U(src);
            seg.name.len = len;
        }

        seg.http.user_agent.data = U(src);
        seg.http.user_agent.len = len;

        wlen = (size_t) snprintf(want, sizeof(want),
                   "{\"name\":\"%.*s\",\"id\":\"" ID "\","
                   "\"trace_id\":\"" R "\"" TIMES "%s%.*s%s" AWS "}",
                   len ? (int) len : 10, len ? src : "edge-proxy",
                   len ? ",\"http\":{\"request\":{\"user_agent\":\"" : "",
                   (int) len, src, len ? "\"}}" : "");

        n = xray_segment_write(out, sizeof(out), &seg, 1);

        if (n != wlen || memcmp(out, want, n) != 0) {
            bad++;
        }
    }

    is_int(bad, 0, "strings and names of 0 to 40 bytes copied whole");
}


static void
test_name_bytes(void)
{
    size_t          len, at, n, want, bad;
    unsigned        c;
    unsigned char   out[64];
    unsigned char  *s;
    const char     *kept;

    kept = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
           " _.:/%&#=+-@";
    bad = 0;

    for (len = 1; len <= 12; len++) {
        s = malloc(len);
        if (s == NULL) {
            abort();
        }

        for (at = 0; at < len; at++) {
            for (c = 1; c < 256; c++) {
                memset(s, 'a', len);
                s[at] = (unsigned char) c;

                /* a byte above 0x7f alone is not UTF-8: dropped too */
                want = (c < 0x80 && strchr(kept, (int) c)) ? len : len - 1;
                n = xray_name_sanitize(out, sizeof(out), s, len);

                if (n != want
                    || (want == len && memcmp(out, s, len) != 0)
                    || (want < len && (memchr(out, (int) c, n) != NULL
                                       || c == 'a')))
                {
                    bad++;
                }
            }
        }

        free(s);
    }

    is_int(bad, 0, "names: every byte at every position, lengths 1-12");
}


static void
test_names(void)
{
    size_t              i, n;
    unsigned char       out[512];
    xray_segment_t      seg;
    xray_subsegment_t   sub;
    xray_attempt_t      at;
    const name_case_t  *nc;

    for (i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        nc = &name_cases[i];
        n = xray_name_sanitize(out, sizeof(out), U(nc->in), strlen(nc->in));
        is_mem(out, n, nc->out, "name: %s", nc->name);
    }

    is_int(xray_name_sanitize(out, 3, U("abcd"), 4), XRAY_JSON_ERROR,
           "name: does not fit");
    is_int(xray_name_sanitize(out, 3, U("ab()c"), 5), 3,
           "name: fits once sanitised");

    minimal(&seg);
    seg.name = sp("???");
    seg.fallback_name = sp("my-service");
    is_segment(&seg, 1,
               "{\"name\":\"my-service\",\"id\":\"" ID "\","
               "\"trace_id\":\"" R "\"" TIMES AWS "}",
               "name: nothing left, fallback used");

    seg.fallback_name = sp("fb(1)");
    is_segment(&seg, 1,
               "{\"name\":\"fb1\",\"id\":\"" ID "\","
               "\"trace_id\":\"" R "\"" TIMES AWS "}",
               "name: fallback sanitised too");

    seg.name = sp("");
    seg.fallback_name = sp("<>");
    is_segment(&seg, 1,
               "{\"name\":\"nginx\",\"id\":\"" ID "\","
               "\"trace_id\":\"" R "\"" TIMES AWS "}",
               "name: nothing left of either, default");

    seg.name = sp("web (\xc3\xa9t\xc3\xa9)");
    is_segment(&seg, 1,
               "{\"name\":\"web \xc3\xa9t\xc3\xa9\",\"id\":\"" ID "\","
               "\"trace_id\":\"" R "\"" TIMES AWS "}",
               "name: letters kept as UTF-8");

    /* subsegment and attempt names follow the same rules */
    memset(&sub, 0, sizeof(sub));
    memset(&at, 0, sizeof(at));
    sub.id = U(SUB);
    sub.name = sp("*");
    sub.start = T0;
    sub.end = T0 + 1000;
    sub.attempts = &at;
    sub.nattempts = 1;
    at.id = U(A1);
    at.peer = sp("[2001:db8::1]:443");
    at.start = T0;
    at.end = T0 + 1000;
    at.status = 429;
    at.connect_time = -1;
    at.header_time = 0;
    at.response_time = -1;

    n = xray_subsegment_write(out, sizeof(out), &sub, U(R), U(ID));
    is_mem(out, n,
           "{\"name\":\"upstream\",\"id\":\"" SUB "\","
           "\"trace_id\":\"" R "\",\"parent_id\":\"" ID "\","
           "\"type\":\"subsegment\",\"start_time\":1465379208.100000,"
           "\"end_time\":1465379208.101000,\"namespace\":\"remote\","
           "\"subsegments\":[{\"name\":\"2001:db8::1:443\","
           "\"id\":\"" A1 "\",\"start_time\":1465379208.100000,"
           "\"end_time\":1465379208.101000,\"namespace\":\"remote\","
           "\"http\":{\"response\":{\"status\":429}},"
           "\"error\":true,\"throttle\":true,"
           "\"metadata\":{\"nginx\":{\"header_time\":0.000}}}]}",
           "name: subsegment default, attempt sanitised, 429 attempt");
    dump("subsegment_names", out, n);

    /* times whose seconds change, and change back, in one document */
    sub.start = 9999999;
    sub.end = 10000000;
    at.start = 9000001;
    at.end = 1465379208100000ULL;
    n = xray_subsegment_write(out, sizeof(out), &sub, U(R), U(ID));
    is_mem(out, n,
           "{\"name\":\"upstream\",\"id\":\"" SUB "\","
           "\"trace_id\":\"" R "\",\"parent_id\":\"" ID "\","
           "\"type\":\"subsegment\",\"start_time\":9.999999,"
           "\"end_time\":10.000000,\"namespace\":\"remote\","
           "\"subsegments\":[{\"name\":\"2001:db8::1:443\","
           "\"id\":\"" A1 "\",\"start_time\":9.000001,"
           "\"end_time\":1465379208.100000,\"namespace\":\"remote\","
           "\"http\":{\"response\":{\"status\":429}},"
           "\"error\":true,\"throttle\":true,"
           "\"metadata\":{\"nginx\":{\"header_time\":0.000}}}]}",
           "times: seconds of other lengths, changing back and forth");

    at.peer = sp("()");
    at.status = 0;
    at.header_time = -1;
    n = xray_subsegment_write(out, sizeof(out), &sub, U(R), U(ID));
    ok(has(out, n, "[{\"name\":\"upstream\",\"id\":\"" A1 "\""),
       "name: attempt default");
    ok(has(out, n, "\"namespace\":\"remote\",\"fault\":true}]}"),
       "attempt without a status: a fault, no http, no metadata");
}


static void
test_annotations(void)
{
    static unsigned char  key[600];
    static char           want[4096];
    size_t                i, len;
    xray_segment_t        seg;
    xray_annotation_t     ann[32];

    static const struct {
        const char              *value;
        xray_annotation_kind_e   kind;
        const char              *out;
    } kinds[] = {
        { "42", XRAY_ANNOTATION_NUMBER, "42" },
        { "0", XRAY_ANNOTATION_NUMBER, "0" },
        { "-0.5e+10", XRAY_ANNOTATION_NUMBER, "-0.5e+10" },
        { "1.5E3", XRAY_ANNOTATION_NUMBER, "1.5E3" },
        { "1.", XRAY_ANNOTATION_NUMBER, "\"1.\"" },
        { "01", XRAY_ANNOTATION_NUMBER, "\"01\"" },
        { "+1", XRAY_ANNOTATION_NUMBER, "\"+1\"" },
        { ".5", XRAY_ANNOTATION_NUMBER, "\".5\"" },
        { "-", XRAY_ANNOTATION_NUMBER, "\"-\"" },
        { "1e", XRAY_ANNOTATION_NUMBER, "\"1e\"" },
        { "0x10", XRAY_ANNOTATION_NUMBER, "\"0x10\"" },
        { "NaN", XRAY_ANNOTATION_NUMBER, "\"NaN\"" },
        { " 1", XRAY_ANNOTATION_NUMBER, "\" 1\"" },
        { "1\"", XRAY_ANNOTATION_NUMBER, "\"1\\\"\"" },
        /* finite as a double, else a string: never infinity */
        { "1e308", XRAY_ANNOTATION_NUMBER, "1e308" },
        { "1e309", XRAY_ANNOTATION_NUMBER, "\"1e309\"" },
        { "-1E400", XRAY_ANNOTATION_NUMBER, "\"-1E400\"" },
        { "1e-400", XRAY_ANNOTATION_NUMBER, "1e-400" },
        { "0e99999999999", XRAY_ANNOTATION_NUMBER, "0e99999999999" },
        { "1.7976931348623157e308", XRAY_ANNOTATION_NUMBER,
          "1.7976931348623157e308" },
        { "1.7976931348623159e308", XRAY_ANNOTATION_NUMBER,
          "\"1.7976931348623159e308\"" },
        { "0.0001e312", XRAY_ANNOTATION_NUMBER, "0.0001e312" },
        { "0.00018e313", XRAY_ANNOTATION_NUMBER, "\"0.00018e313\"" },
        { "-0.00017976931348623158e312", XRAY_ANNOTATION_NUMBER,
          "-0.00017976931348623158e312" },
        /* the 309 digits halfway between DBL_MAX and 2^1024, and one less */
        { "179769313486231580793728971405303415079934132710037826936173"
          "778980444968292764750946649017977587207096330286416692887910"
          "946555547851940402630657488671505820681908902000708383676273"
          "854845817711531764475730270069855571366959622842914819860834"
          "936475292719074168444365510704342711559699508093042880177904"
          "174497792", XRAY_ANNOTATION_NUMBER,
          "\"" "179769313486231580793728971405303415079934132710037826936173"
          "778980444968292764750946649017977587207096330286416692887910"
          "946555547851940402630657488671505820681908902000708383676273"
          "854845817711531764475730270069855571366959622842914819860834"
          "936475292719074168444365510704342711559699508093042880177904"
          "174497792" "\"" },
        { "179769313486231580793728971405303415079934132710037826936173"
          "778980444968292764750946649017977587207096330286416692887910"
          "946555547851940402630657488671505820681908902000708383676273"
          "854845817711531764475730270069855571366959622842914819860834"
          "936475292719074168444365510704342711559699508093042880177904"
          "174497791", XRAY_ANNOTATION_NUMBER,
          "179769313486231580793728971405303415079934132710037826936173"
          "778980444968292764750946649017977587207096330286416692887910"
          "946555547851940402630657488671505820681908902000708383676273"
          "854845817711531764475730270069855571366959622842914819860834"
          "936475292719074168444365510704342711559699508093042880177904"
          "174497791" },
        { "179769313486231580793728971405303415079934132710037826936173"
          "778980444968292764750946649017977587207096330286416692887910"
          "946555547851940402630657488671505820681908902000708383676273"
          "854845817711531764475730270069855571366959622842914819860834"
          "936475292719074168444365510704342711559699508093042880177904"
          "174497791" ".5", XRAY_ANNOTATION_NUMBER,
          "179769313486231580793728971405303415079934132710037826936173"
          "778980444968292764750946649017977587207096330286416692887910"
          "946555547851940402630657488671505820681908902000708383676273"
          "854845817711531764475730270069855571366959622842914819860834"
          "936475292719074168444365510704342711559699508093042880177904"
          "174497791" ".5" },
        { "1", XRAY_ANNOTATION_BOOLEAN, "true" },
        { "TRUE", XRAY_ANNOTATION_BOOLEAN, "true" },
        { "On", XRAY_ANNOTATION_BOOLEAN, "true" },
        { "yes", XRAY_ANNOTATION_BOOLEAN, "true" },
        { "0", XRAY_ANNOTATION_BOOLEAN, "false" },
        { "False", XRAY_ANNOTATION_BOOLEAN, "false" },
        { "OFF", XRAY_ANNOTATION_BOOLEAN, "false" },
        { "no", XRAY_ANNOTATION_BOOLEAN, "false" },
        { "maybe", XRAY_ANNOTATION_BOOLEAN, "\"maybe\"" },
        { "truex", XRAY_ANNOTATION_BOOLEAN, "\"truex\"" },
        { "42", XRAY_ANNOTATION_STRING, "\"42\"" },
        { "true", XRAY_ANNOTATION_STRING, "\"true\"" }
    };

    ok(xray_annotation_key_valid(U("a_Z_09"), 6), "key: [A-Za-z0-9_]");
    ok(xray_annotation_key_valid(U("_"), 1), "key: one character");
    ok(!xray_annotation_key_valid(U(""), 0), "key: empty");
    ok(!xray_annotation_key_valid(U("a-b"), 3), "key: '-'");
    ok(!xray_annotation_key_valid(U("a.b"), 3), "key: '.'");
    ok(!xray_annotation_key_valid(U("a b"), 3), "key: space");
    ok(!xray_annotation_key_valid(U("\xc3\xa9"), 2), "key: non-ASCII");
    ok(!xray_annotation_key_valid(U("a\0"), 2), "key: NUL");
    memset(key, 'k', sizeof(key));
    ok(xray_annotation_key_valid(key, 500), "key: 500 characters");
    ok(!xray_annotation_key_valid(key, 501), "key: 501 characters");

    minimal(&seg);
    seg.annotations = ann;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        ann[0].key = sp("k");
        ann[0].value = sp(kinds[i].value);
        ann[0].kind = kinds[i].kind;
        seg.nannotations = 1;

        snprintf(want, sizeof(want),
                 HEAD TIMES ",\"annotations\":{\"k\":%s}" AWS "}",
                 kinds[i].out);
        is_segment(&seg, 1, want, kinds[i].kind == XRAY_ANNOTATION_NUMBER
                                  ? "annotation: number kind"
                                  : kinds[i].kind == XRAY_ANNOTATION_BOOLEAN
                                  ? "annotation: boolean kind"
                                  : "annotation: string kind");
    }

    /* skipped: bad keys, empty values; kept: a 500-character key */
    ann[0].key = sp("a-b");
    ann[0].value = sp("x");
    ann[0].kind = XRAY_ANNOTATION_STRING;
    ann[1].key = sp("");
    ann[1].value = sp("x");
    ann[1].kind = XRAY_ANNOTATION_STRING;
    ann[2].key = sp("empty");
    ann[2].value = sp("");
    ann[2].kind = XRAY_ANNOTATION_NUMBER;
    ann[3].key.data = key;
    ann[3].key.len = 501;
    ann[3].value = sp("x");
    ann[3].kind = XRAY_ANNOTATION_STRING;
    seg.nannotations = 4;
    is_segment(&seg, 1, HEAD TIMES AWS "}",
               "annotations: all skipped, no object");

    ann[3].key.len = 500;
    ann[4].key = sp("n");
    ann[4].value = sp("7");
    ann[4].kind = XRAY_ANNOTATION_NUMBER;
    seg.nannotations = 5;

    len = strlen(HEAD TIMES ",\"annotations\":{\"");
    memcpy(want, HEAD TIMES ",\"annotations\":{\"", len);
    memset(want + len, 'k', 500);
    strcpy(want + len + 500, "\":\"x\",\"n\":7}" AWS "}");
    is_segment(&seg, 1, want, "annotations: the good ones kept, in order");
}


static void
test_metadata(void)
{
    xray_segment_t   seg;
    xray_metadata_t  md[3];

    minimal(&seg);
    md[0].key = sp("");
    md[0].value = sp("skipped");
    md[1].key = sp("k\"ey");
    md[1].value = sp("");
    md[2].key = sp("path");
    md[2].value = sp("/a\\b\n");
    seg.metadata = md;
    seg.nmetadata = 3;
    is_segment(&seg, 1,
               HEAD TIMES ",\"metadata\":{\"nginx\":{\"k\\\"ey\":\"\","
               "\"path\":\"/a\\\\b\\n\"}}" AWS "}",
               "metadata: empty key skipped, empty value kept, escaped");

    seg.nmetadata = 1;
    is_segment(&seg, 1, HEAD TIMES AWS "}", "metadata: nothing left");
}


static void
test_status_flags(void)
{
    is_int(xray_status_flags(0), 0, "flags: no status");
    is_int(xray_status_flags(200), 0, "flags: 200");
    is_int(xray_status_flags(304), 0, "flags: 304");
    is_int(xray_status_flags(399), 0, "flags: 399");
    is_int(xray_status_flags(400), XRAY_FLAG_ERROR, "flags: 400");
    is_int(xray_status_flags(404), XRAY_FLAG_ERROR, "flags: 404");
    is_int(xray_status_flags(429), XRAY_FLAG_ERROR | XRAY_FLAG_THROTTLE,
           "flags: 429");
    is_int(xray_status_flags(499), XRAY_FLAG_ERROR, "flags: 499");
    is_int(xray_status_flags(500), XRAY_FLAG_FAULT, "flags: 500");
    is_int(xray_status_flags(502), XRAY_FLAG_FAULT, "flags: 502");
    is_int(xray_status_flags(504), XRAY_FLAG_FAULT, "flags: 504");
}


/*
 * Every buffer size below the document's length must give 0, write nothing
 * outside the buffer (each size gets an exact heap block, for ASan) and
 * leave no document start; the exact length must give the document.
 */

static void
is_all_sizes(const xray_segment_t *seg, const xray_subsegment_t *sub,
    const char *name)
{
    static unsigned char   ref[16384];
    size_t                 n, size, bad;
    unsigned char         *buf;

    n = seg ? xray_segment_write(ref, sizeof(ref), seg, 1)
            : xray_subsegment_write(ref, sizeof(ref), sub, U(R), U(ID));
    bad = 0;

    for (size = 0; size <= n; size++) {
        buf = malloc(size);
        if (buf == NULL && size > 0) {
            bad++;
            break;
        }

        if (size > 0) {
            memset(buf, 'x', size);
        }

        if ((seg ? xray_segment_write(buf, size, seg, 1)
                 : xray_subsegment_write(buf, size, sub, U(R), U(ID)))
            != (size < n ? 0 : n))
        {
            bad++;

        } else if (size < n && size > 0 && buf[0] != '\0') {
            bad++;

        } else if (size == n && memcmp(buf, ref, n) != 0) {
            bad++;
        }

        free(buf);
    }

    ok(n > 0 && bad == 0, "sizes 0..%zu: %s", n, name);
}


static void
test_sizes(void)
{
    static unsigned char   big[1000];
    size_t                 i, n, len;
    unsigned char          out[16];
    unsigned char         *buf;
    xray_segment_t         seg;
    xray_subsegment_t      sub;
    xray_attempt_t         at[2];
    xray_annotation_t      ann[5];
    xray_metadata_t        md[70];
    xray_cause_t           c;

    minimal(&seg);
    is_all_sizes(&seg, NULL, "minimal segment");

    full(&seg, &sub, at, ann, md, &c);
    is_all_sizes(&seg, NULL, "full segment");

    /* ids copied as they are: the same document, the same edges */
    full(&seg, &sub, at, ann, md, &c);
    seg.parent_id = U(P);
    seg.ids_safe = 1;
    is_all_sizes(&seg, NULL, "full segment, ids_safe");
    minimal(&seg);
    seg.ids_safe = 1;
    is_all_sizes(&seg, NULL, "minimal segment, ids_safe");

    two_attempts(&sub, at, &c);
    is_all_sizes(NULL, &sub, "independent subsegment");

    minimal(&seg);
    is_int(xray_segment_write(NULL, 0, &seg, 1), 0, "NULL buffer");

    /* escaping never splits an escape at the end of the buffer */
    for (i = 0; i < 6; i++) {
        n = xray_json_escape(out, i, U("\xff"), 1, 250);
        if (n != XRAY_JSON_ERROR) {
            break;
        }
    }

    is_int(i, 6, "escape: \\ufffd needs all 6 bytes");

    for (i = 0; i < 4; i++) {
        n = xray_json_escape(out, i, U("\xf0\x9f\x98\x80"), 4, 250);
        if (n != XRAY_JSON_ERROR) {
            break;
        }
    }

    is_int(i, 4, "escape: a 4-byte character needs all 4 bytes");

    /* the datagram framing and the document limit */
    is_mem(XRAY_DAEMON_HEADER, XRAY_DAEMON_HEADER_LEN,
           "{\"format\":\"json\",\"version\":1}\n", "daemon header");
    is_int(XRAY_DOC_MAX + XRAY_DAEMON_HEADER_LEN, 65507,
           "document and header fit the largest UDP payload");

    /* a segment above the limit does not fit a XRAY_DOC_MAX buffer */
    memset(big, 'x', sizeof(big));
    len = sizeof(md) / sizeof(md[0]);

    for (i = 0; i < len; i++) {
        md[i].key = sp("key");
        md[i].value.data = big;
        md[i].value.len = sizeof(big);
    }

    minimal(&seg);
    seg.metadata = md;
    seg.nmetadata = len;

    buf = malloc(XRAY_DOC_MAX);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    is_int(xray_segment_write(buf, XRAY_DOC_MAX, &seg, 1), 0,
           "70 values of 1000 bytes: above XRAY_DOC_MAX");

    seg.nmetadata = 60;
    n = xray_segment_write(buf, XRAY_DOC_MAX, &seg, 1);
    ok(n > 60000 && n <= XRAY_DOC_MAX,
       "60 values of 1000 bytes: fits XRAY_DOC_MAX (%zu)", n);
    dump("large", buf, n);

    free(buf);
}


/*
 * The parts prepared once: the bytes the writer writes from the fields
 * they stand for, which are then not read; the longest fit their maximum
 */

static void
is_prepared(xray_segment_t *seg, const char *name)
{
    size_t          n, m;
    unsigned char   head[XRAY_SEGMENT_HEAD_MAX], aws[XRAY_SEGMENT_AWS_MAX];
    static unsigned char  want[256 * 1024], got[256 * 1024];

    n = xray_segment_write(want, sizeof(want), seg, 1);

    seg->head.len = xray_segment_head(head, sizeof(head), &seg->name,
                                      &seg->fallback_name);
    seg->head.data = head;
    seg->aws.len = xray_segment_aws(aws, sizeof(aws), &seg->sdk_version,
                                    &seg->sampling_rule_name);
    seg->aws.data = aws;

    /* one byte short does not fit */
    ok(xray_segment_head(got, seg->head.len - 1, &seg->name,
                         &seg->fallback_name) == 0
       && xray_segment_aws(got, seg->aws.len - 1, &seg->sdk_version,
                           &seg->sampling_rule_name) == 0,
       "prepared: %s, one byte short", name);

    /* what they stand for would now write something else */
    seg->name = sp("other");
    seg->fallback_name = sp("");
    seg->sdk_version = sp("9.9.9");
    seg->sampling_rule_name = sp("other");

    m = xray_segment_write(got, sizeof(got), seg, 1);
    ok(n > 0 && m == n && memcmp(got, want, n) == 0,
       "prepared: %s, the same document", name);

    memset(&seg->head, 0, sizeof(xray_span_t));
    memset(&seg->aws, 0, sizeof(xray_span_t));
}


static void
test_prepared(void)
{
    size_t              n;
    unsigned char       out[XRAY_SEGMENT_AWS_MAX + 1];
    unsigned char       longest[6 * XRAY_STRING_MAX + 1];
    xray_span_t         name, none, big;
    xray_cause_t        c;
    xray_segment_t      seg;
    xray_metadata_t     md[2];
    xray_attempt_t      at;
    xray_annotation_t   ann[5];
    xray_subsegment_t   sub;

    minimal(&seg);
    is_prepared(&seg, "minimal");

    full(&seg, &sub, &at, ann, md, &c);
    is_prepared(&seg, "full");

    minimal(&seg);
    seg.name = sp("???");
    seg.fallback_name = sp("my-service");
    is_prepared(&seg, "fallback name");

    minimal(&seg);
    seg.name = sp("");
    seg.sdk_version = sp("1.0\n\"x\"");
    seg.sampling_rule_name = sp("r\xff\x01");
    is_prepared(&seg, "default name, escaped aws strings");

    memset(&none, 0, sizeof(none));
    n = xray_segment_head(out, sizeof(out), &none, &none);
    is_mem(out, n, "{\"name\":\"nginx", "prepared: no name, nginx");
    n = xray_segment_aws(out, sizeof(out), &none, &none);
    is_mem(out, n, AWS, "prepared: aws of no version, no rule");

    /* the longest of each: 200 three-byte characters, 250 \u00XX */
    n = repeat(longest, "\xe4\xb8\x80", XRAY_NAME_MAX + 5);
    name.data = longest;
    name.len = n;
    n = xray_segment_head(out, XRAY_SEGMENT_HEAD_MAX, &name, &none);
    is_int(n, XRAY_SEGMENT_HEAD_MAX, "prepared: the longest head fits");

    n = repeat(longest, "\x01", XRAY_STRING_MAX + 5);
    big.data = longest;
    big.len = n;
    n = xray_segment_aws(out, XRAY_SEGMENT_AWS_MAX, &big, &big);
    ok(n > 0 && n <= XRAY_SEGMENT_AWS_MAX,
       "prepared: the longest aws fits (%d of %d)", (int) n,
       (int) XRAY_SEGMENT_AWS_MAX);
}


int
main(void)
{
    dump_dir = getenv("XRAY_SEGMENT_DUMP_DIR");

    test_documents();
    test_fields();
    test_json_safe();
    test_numbers();
    test_escape();
    test_truncation();
    test_names();
    test_name_bytes();
    test_string_lengths();
    test_annotations();
    test_metadata();
    test_status_flags();
    test_sizes();
    test_prepared();

    return done_testing();
}
