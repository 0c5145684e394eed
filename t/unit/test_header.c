/*
 * Unit tests of src/xray_header.c: parse, strerror, trace id check, format;
 * and the parser against the simple reference of header_ref.h on every
 * input below and on generated ones.
 *
 * cc -std=c99 -Wall -Wextra -Werror -pedantic -Isrc t/unit/test_header.c \
 *     src/xray_header.c -o /tmp/test_header && /tmp/test_header
 */

#include <stdint.h>
#include <stdlib.h>

#include "tap.h"
#include "header_ref.h"
#include "xray_header.h"


#define R   "1-5759e988-bd862e3fe1be46a994272793"
#define R2  "1-67891233-abcdef012345678912345678"
#define P   "53995c3f42cd8ad8"
#define P2  "4afb4da28af96d0c"
#define LIN "10:1234abcd:3"

#define U(s)  ((const unsigned char *) (s))

/* generated headers compared with the reference */
#define GENERATED  200000


typedef struct {
    const char      *name;
    const char      *in;
    const char      *root;
    const char      *parent;           /* NULL: no Parent */
    xray_sampled_e   sampled;
    size_t           nkept;
    const char      *out;              /* format() of the parsed header */
} valid_case_t;


typedef struct {
    const char        *name;
    const char        *in;
    size_t             len;
    xray_header_rc_e   rc;
} bad_case_t;


#define BAD(name, lit, rc)  { name, lit, sizeof(lit) - 1, XRAY_HEADER_ ## rc }


static const valid_case_t  valid_cases[] = {

    { "developer guide example",
      "Root=" R ";Parent=" P ";Sampled=1",
      R, P, XRAY_SAMPLED_YES, 0,
      "Root=" R ";Parent=" P ";Sampled=1" },

    { "Root alone",
      "Root=" R,
      R, NULL, XRAY_SAMPLED_NONE, 0,
      "Root=" R },

    { "ALB: Self dropped, CalledFrom kept",
      "Self=1-67891234-12456789abcdef012345678;Root=" R2 ";CalledFrom=app",
      R2, NULL, XRAY_SAMPLED_NONE, 1,
      "Root=" R2 ";CalledFrom=app" },

    { "Lineage v2 kept",
      "Root=" R ";Parent=" P ";Sampled=0;Lineage=" LIN,
      R, P, XRAY_SAMPLED_NO, 1,
      "Root=" R ";Parent=" P ";Sampled=0;Lineage=" LIN },

    { "Lineage v1 kept",
      "Root=" R ";Lineage=a87bd80c:1|68fd508a:5|c512fbe3:2",
      R, NULL, XRAY_SAMPLED_NONE, 1,
      "Root=" R ";Lineage=a87bd80c:1|68fd508a:5|c512fbe3:2" },

    { "Java SDK whitespace test",
      "Sampled=?; Root=" R "; Parent=" P,
      R, P, XRAY_SAMPLED_REQUESTED, 0,
      "Root=" R ";Parent=" P ";Sampled=?" },

    { "spaces and tabs around fields and '=' of reserved keys",
      " \tRoot = " R "\t;\tParent\t=\t" P " ; Sampled= 1 ",
      R, P, XRAY_SAMPLED_YES, 0,
      "Root=" R ";Parent=" P ";Sampled=1" },

    { "empty fields skipped",
      ";;Root=" R ";; ;\t;Parent=" P ";",
      R, P, XRAY_SAMPLED_NONE, 0,
      "Root=" R ";Parent=" P },

    { "reserved keys case-insensitive",
      "rOOT=" R ";PARENT=" P ";sAmPlEd=0;SELF=x;LINEAGE=" LIN,
      R, P, XRAY_SAMPLED_NO, 1,
      "Root=" R ";Parent=" P ";Sampled=0;LINEAGE=" LIN },

    { "upper-case hex forwarded as sent",
      "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8",
      "1-5759E988-BD862E3FE1BE46A994272793", "53995C3F42CD8AD8",
      XRAY_SAMPLED_NONE, 0,
      "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8" },

    { "value holds '='",
      "Root=" R ";Foo=a=b==",
      R, NULL, XRAY_SAMPLED_NONE, 1,
      "Root=" R ";Foo=a=b==" },

    { "kept fields keep their order",
      "Foo=1;Root=" R ";Bar=2;Sampled=?;Lineage=" LIN,
      R, NULL, XRAY_SAMPLED_REQUESTED, 3,
      "Root=" R ";Sampled=?;Foo=1;Bar=2;Lineage=" LIN },

    { "every key character class",
      "Root=" R ";a.b_c-D9=x",
      R, NULL, XRAY_SAMPLED_NONE, 1,
      "Root=" R ";a.b_c-D9=x" },

    { "Python SDK downstream header",
      "Root=" R ";Parent=" P2 ";Sampled=1;Foo=bar",
      R, P2, XRAY_SAMPLED_YES, 1,
      "Root=" R ";Parent=" P2 ";Sampled=1;Foo=bar" },

    { "near-miss reserved keys are kept",
      "Root=" R ";Roots=x;Paren=y;Sampledx=z;Selfie=1;Roo=2;Rook=3;"
      "Sample1=4",
      R, NULL, XRAY_SAMPLED_NONE, 7,
      "Root=" R ";Roots=x;Paren=y;Sampledx=z;Selfie=1;Roo=2;Rook=3;"
      "Sample1=4" },

    { "Self: whitespace around '=', any value",
      "Self = whatever=1|x;Root=" R,
      R, NULL, XRAY_SAMPLED_NONE, 0,
      "Root=" R },

    { "printable punctuation in kept value",
      "Root=" R ";X=!\"#$%&'()*+-./:<=>?@[\\]^_`{|}~",
      R, NULL, XRAY_SAMPLED_NONE, 1,
      "Root=" R ";X=!\"#$%&'()*+-./:<=>?@[\\]^_`{|}~" },

    { "trailing whitespace after last field",
      "Root=" R ";Foo=bar \t ",
      R, NULL, XRAY_SAMPLED_NONE, 1,
      "Root=" R ";Foo=bar" }
};


static const bad_case_t  bad_cases[] = {

    BAD("empty", "", EMPTY),
    BAD("one space", " ", EMPTY),
    BAD("spaces and tabs", " \t \t", EMPTY),

    BAD("CR", "Root=" R "\r", BAD_CHAR),
    BAD("LF", "Root=" R "\n", BAD_CHAR),
    BAD("header injection", "Root=" R "\r\nX-Evil: 1", BAD_CHAR),
    BAD("NUL", "Root=" R "\0;Parent=" P, BAD_CHAR),
    BAD("DEL", "Root=" R ";Foo=a\x7f", BAD_CHAR),
    BAD("0x80", "Root=" R ";Foo=\x80", BAD_CHAR),
    BAD("UTF-8", "Root=" R ";Foo=caf\xc3\xa9", BAD_CHAR),
    BAD("0xff", "Root=" R ";Foo=\xff", BAD_CHAR),
    BAD("0x01", "Root=" R ";Foo=\x01", BAD_CHAR),
    BAD("ESC", "\x1b[31mRoot=" R, BAD_CHAR),
    BAD("VT", "Root=" R ";Foo=\v", BAD_CHAR),
    BAD("FF", "Root=" R ";Foo=a\fb", BAD_CHAR),
    BAD("control byte beats EMPTY", " \r ", BAD_CHAR),
    BAD("control byte beats BAD_ROOT", "Root=x\x02", BAD_CHAR),
    BAD("comma between fields", "Root=" R ",Parent=" P, BAD_CHAR),
    BAD("comma in value", "Root=" R ";Foo=a,b", BAD_CHAR),
    BAD("two headers folded", "Root=" R ", Root=" R2, BAD_CHAR),
    BAD("space inside Root value",
        "Root=1-5759e988 -bd862e3fe1be46a994272793", BAD_CHAR),
    BAD("tab inside kept value", "Root=" R ";Foo=a\tb", BAD_CHAR),
    BAD("space inside key", "Ro ot=" R, BAD_CHAR),
    BAD("space before '=' of kept field", "Root=" R ";Foo =bar", BAD_CHAR),
    BAD("space after '=' of kept field", "Root=" R ";Foo= bar", BAD_CHAR),
    BAD("tab around '=' of Lineage", "Root=" R ";Lineage\t=" LIN, BAD_CHAR),

    BAD("no '='", "Root=" R ";Foo", BAD_FIELD),
    BAD("only a word", "garbage", BAD_FIELD),
    BAD("empty key", "Root=" R ";=bar", BAD_FIELD),
    BAD("empty key, spaces", "Root=" R "; = bar", BAD_FIELD),
    BAD("only '='", "Root=" R ";=", BAD_FIELD),
    BAD("empty value", "Root=" R ";Foo=", BAD_FIELD),
    BAD("empty value after trim", "Root=" R ";Foo= ;Bar=1", BAD_FIELD),
    BAD("empty Root", "Root=", BAD_FIELD),
    BAD("empty Parent", "Parent=;Root=" R, BAD_FIELD),
    BAD("empty Sampled", "Root=" R ";Sampled=", BAD_FIELD),
    BAD("'/' in key", "Root=" R ";Fo/o=1", BAD_FIELD),
    BAD("'\"' in key", "Root=" R ";\"Foo\"=1", BAD_FIELD),
    BAD("':' in key", "Root=" R ";Foo:bar=1", BAD_FIELD),
    BAD("brackets in key", "Root=" R ";[Foo]=1", BAD_FIELD),
    BAD("'!' in reserved-looking key", "Root!=" R, BAD_FIELD),

    BAD("Root twice", "Root=" R ";Root=" R, DUPLICATE_KEY),
    BAD("root and Root", "root=" R ";Root=" R, DUPLICATE_KEY),
    BAD("second Root invalid: duplicate reported",
        "Root=" R ";ROOT=bad", DUPLICATE_KEY),
    BAD("Parent twice", "Root=" R ";Parent=" P ";parent=" P2, DUPLICATE_KEY),
    BAD("Sampled twice", "Root=" R ";Sampled=1;SAMPLED=0", DUPLICATE_KEY),
    BAD("Self twice", "Self=a;Root=" R ";self=b", DUPLICATE_KEY),
    BAD("Lineage twice", "Root=" R ";Lineage=" LIN ";lineage=" LIN,
        DUPLICATE_KEY),
    BAD("unknown key twice", "Root=" R ";Foo=1;foo=2", DUPLICATE_KEY),
    BAD("unknown key with a digit twice", "Root=" R ";K1=1;k1=2",
        DUPLICATE_KEY),
    BAD("unknown key twice, apart", "Foo=1;Root=" R ";Bar=2;FOO=3",
        DUPLICATE_KEY),

    BAD("no Root", "Parent=" P ";Sampled=1", NO_ROOT),
    BAD("only ';'", ";", NO_ROOT),
    BAD("only empty fields", " ; ;\t;", NO_ROOT),
    BAD("ALB Self without Root", "Self=" R ";CalledFrom=app", NO_ROOT),
    BAD("Roots is not Root", "Roots=" R, NO_ROOT),
    BAD("only unknown keys", "Foo=bar", NO_ROOT),

    BAD("Root 34 bytes", "Root=1-5759e988-bd862e3fe1be46a99427279",
        BAD_ROOT),
    BAD("Root 36 bytes", "Root=1-5759e988-bd862e3fe1be46a9942727930",
        BAD_ROOT),
    BAD("Root version 2", "Root=2-5759e988-bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root version 0", "Root=0-5759e988-bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root first delimiter", "Root=1_5759e988-bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root second delimiter", "Root=1-5759e988_bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root delimiter shifted", "Root=1-5759e98-8bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root no second delimiter", "Root=1-5759e988bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root non-hex time", "Root=1-5759e98g-bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("Root non-hex last", "Root=1-5759e988-bd862e3fe1be46a99427279z",
        BAD_ROOT),
    BAD("Root '-' in random part", "Root=1-5759e988-bd862e3fe1be46a9942727-3",
        BAD_ROOT),
    BAD("Root garbage", "Root=garbage", BAD_ROOT),
    BAD("Root with '=' appended", "Root=" R "=", BAD_ROOT),
    BAD("Root 0x prefix", "Root=0x5759e988-bd862e3fe1be46a994272793",
        BAD_ROOT),
    BAD("bad Root before good Root", "Root=bad;Root=" R, BAD_ROOT),

    BAD("Parent 15", "Root=" R ";Parent=53995c3f42cd8ad", BAD_PARENT),
    BAD("Parent 17", "Root=" R ";Parent=53995c3f42cd8ad80", BAD_PARENT),
    BAD("Parent non-hex", "Root=" R ";Parent=53995c3f42cd8adg", BAD_PARENT),
    BAD("Parent '-'", "Root=" R ";Parent=53995c3f-2cd8ad8", BAD_PARENT),
    BAD("Parent is a trace id", "Root=" R ";Parent=" R, BAD_PARENT),
    BAD("Parent 'foo' (Java test)", "Sampled=?; Root=" R "; Parent=foo",
        BAD_PARENT),

    BAD("Sampled=2", "Root=" R ";Sampled=2", BAD_SAMPLED),
    BAD("Sampled=yes", "Root=" R ";Sampled=yes", BAD_SAMPLED),
    BAD("Sampled=10", "Root=" R ";Sampled=10", BAD_SAMPLED),
    BAD("Sampled=-1", "Root=" R ";Sampled=-1", BAD_SAMPLED),
    BAD("Sampled=??", "Root=" R ";Sampled=??", BAD_SAMPLED),
    BAD("Sampled=true", "Root=" R ";Sampled=true", BAD_SAMPLED),

    BAD("first error wins: field before Root", "Foo;Root=bad", BAD_FIELD),
    BAD("first error wins: Root before field", "Root=bad;Foo", BAD_ROOT),
    BAD("first error wins: Parent before Sampled",
        "Root=" R ";Parent=x;Sampled=x", BAD_PARENT),
    BAD("bytes checked first", "Parent=x;Root=" R ";\x7f", BAD_CHAR)
};


static void
test_valid(void)
{
    size_t             i, k, n, len;
    unsigned char      out[XRAY_HEADER_OUT_MAX];
    xray_trace_ctx_t   ctx, ctx2;
    xray_header_rc_e   rc;
    const char        *in;

    for (i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        in = valid_cases[i].in;

        rc = xray_header_parse(U(in), strlen(in), &ctx);
        if (!is_int(rc, XRAY_HEADER_OK, "valid: %s: parses",
                    valid_cases[i].name))
        {
            printf("#   %s\n", xray_header_strerror(rc));
            continue;
        }

        is_mem(ctx.root, XRAY_TRACE_ID_LEN, valid_cases[i].root,
               "valid: %s: root", valid_cases[i].name);
        ok(ctx.root >= U(in) && ctx.root + XRAY_TRACE_ID_LEN <= U(in)
           + strlen(in), "valid: %s: root points into the input",
           valid_cases[i].name);

        if (valid_cases[i].parent == NULL) {
            ok(ctx.parent == NULL, "valid: %s: no parent",
               valid_cases[i].name);

        } else {
            ok(ctx.parent != NULL
               && memcmp(ctx.parent, valid_cases[i].parent, XRAY_ID_LEN)
                  == 0,
               "valid: %s: parent", valid_cases[i].name);
        }

        is_int(ctx.sampled, valid_cases[i].sampled, "valid: %s: sampled",
               valid_cases[i].name);
        is_int(ctx.nkept, valid_cases[i].nkept, "valid: %s: nkept",
               valid_cases[i].name);

        n = 0;
        for (k = 0; k < ctx.nkept; k++) {
            n += ctx.kept[k].len;
        }

        is_int(ctx.kept_len, n, "valid: %s: kept_len is the sum",
               valid_cases[i].name);

        len = xray_header_format(out, ctx.root, ctx.parent, ctx.sampled,
                                 &ctx);
        is_mem(out, len, valid_cases[i].out, "valid: %s: format",
               valid_cases[i].name);

        /* the formatted header parses back to the same thing */

        rc = xray_header_parse(out, len, &ctx2);
        ok(rc == XRAY_HEADER_OK
           && memcmp(ctx2.root, ctx.root, XRAY_TRACE_ID_LEN) == 0
           && (ctx.parent == NULL
               ? ctx2.parent == NULL
               : ctx2.parent != NULL
                 && memcmp(ctx2.parent, ctx.parent, XRAY_ID_LEN) == 0)
           && ctx2.sampled == ctx.sampled
           && ctx2.nkept == ctx.nkept
           && ctx2.kept_len == ctx.kept_len,
           "valid: %s: round trip", valid_cases[i].name);
    }
}


static void
test_kept_spans(void)
{
    const char        *in;
    xray_trace_ctx_t   ctx;

    in = "Self=1-67891234-12456789abcdef012345678;Root=" R2
         ";CalledFrom=app";

    if (is_int(xray_header_parse(U(in), strlen(in), &ctx), XRAY_HEADER_OK,
               "kept: ALB parses"))
    {
        ok(ctx.root == U(in) + 45, "kept: ALB root is the second field");
        ok(ctx.kept[0].data == U(in) + 45 + 36, "kept: span points in input");
        is_mem(ctx.kept[0].data, ctx.kept[0].len, "CalledFrom=app",
               "kept: span is key=value");
        is_int(ctx.kept_len, 14, "kept: kept_len");
    }

    in = " Foo=1 ;Root=" R "; Lineage=" LIN "\t;;X=a=b ";

    if (is_int(xray_header_parse(U(in), strlen(in), &ctx), XRAY_HEADER_OK,
               "kept: three fields parse"))
    {
        is_int(ctx.nkept, 3, "kept: three kept");
        is_mem(ctx.kept[0].data, ctx.kept[0].len, "Foo=1",
               "kept: first trimmed");
        is_mem(ctx.kept[1].data, ctx.kept[1].len, "Lineage=" LIN,
               "kept: second trimmed");
        is_mem(ctx.kept[2].data, ctx.kept[2].len, "X=a=b",
               "kept: third trimmed");
        is_int(ctx.kept_len, 5 + 21 + 5, "kept: kept_len of three");
    }
}


static void
test_bad(void)
{
    size_t             i;
    xray_trace_ctx_t   ctx;
    xray_header_rc_e   rc;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        rc = xray_header_parse(U(bad_cases[i].in), bad_cases[i].len, &ctx);
        if (!is_int(rc, bad_cases[i].rc, "bad: %s: %s", bad_cases[i].name,
                    xray_header_strerror(bad_cases[i].rc)))
        {
            printf("#   got: %s\n", xray_header_strerror(rc));
        }
    }

    ok(i >= 40, "bad: at least 40 malformed headers (%d)", (int) i);
}


/* every byte value, inside a kept value and inside a key */

static void
test_every_byte(void)
{
    int                c, bad;
    unsigned char      buf[64];
    xray_header_rc_e   rc, want;
    xray_trace_ctx_t   ctx;

    bad = -1;

    for (c = 0; c < 256; c++) {
        memcpy(buf, "Root=" R ";Foo=a", 46);
        buf[46] = (unsigned char) c;
        buf[47] = 'b';

        if (c == ';') {
            want = XRAY_HEADER_BAD_FIELD;      /* "b" has no '=' */

        } else if (c >= 0x21 && c <= 0x7e && c != ',') {
            want = XRAY_HEADER_OK;

        } else {
            want = XRAY_HEADER_BAD_CHAR;
        }

        rc = xray_header_parse(buf, 48, &ctx);
        if (rc != want
            || (rc == XRAY_HEADER_OK
                && (ctx.nkept != 1 || ctx.kept[0].len != 7)))
        {
            bad = c;
            break;
        }
    }

    is_int(bad, -1, "every byte in a value gives the expected result");

    bad = -1;

    for (c = 0; c < 256; c++) {
        memcpy(buf, "Root=" R ";K", 42);
        buf[42] = (unsigned char) c;
        memcpy(buf + 43, "y=1", 3);

        if (c == ';') {
            want = XRAY_HEADER_BAD_FIELD;      /* "K" has no '=' */

        } else if (c == '=' || c == '_' || c == '.' || c == '-'
                   || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
                   || (c >= 'A' && c <= 'Z'))
        {
            want = XRAY_HEADER_OK;

        } else if (c >= 0x21 && c <= 0x7e && c != ',') {
            want = XRAY_HEADER_BAD_FIELD;

        } else {
            want = XRAY_HEADER_BAD_CHAR;
        }

        rc = xray_header_parse(buf, 46, &ctx);
        if (rc != want) {
            bad = c;
            break;
        }
    }

    is_int(bad, -1, "every byte in a key gives the expected result");
}


static void
test_lengths(void)
{
    size_t             len;
    unsigned char     *buf;
    unsigned char      one;
    xray_trace_ctx_t   ctx;

    /* exactly sized heap buffers: ASan catches any read past the end */

    buf = malloc(XRAY_HEADER_MAX_LEN + 1);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    memcpy(buf, "Root=" R ";K=", 43);
    memset(buf + 43, 'v', XRAY_HEADER_MAX_LEN + 1 - 43);

    is_int(xray_header_parse(buf, XRAY_HEADER_MAX_LEN, &ctx), XRAY_HEADER_OK,
           "length: 512 bytes parse");
    is_int(ctx.kept_len, XRAY_HEADER_MAX_LEN - 41, "length: 512: kept field");
    is_int(xray_header_parse(buf, XRAY_HEADER_MAX_LEN + 1, &ctx),
           XRAY_HEADER_TOO_LONG, "length: 513 bytes too long");

    memset(buf, ' ', XRAY_HEADER_MAX_LEN + 1);
    is_int(xray_header_parse(buf, XRAY_HEADER_MAX_LEN, &ctx),
           XRAY_HEADER_EMPTY, "length: 512 spaces empty");
    is_int(xray_header_parse(buf, XRAY_HEADER_MAX_LEN + 1, &ctx),
           XRAY_HEADER_TOO_LONG, "length: 513 spaces too long");

    free(buf);

    /* the length check comes before any read */

    one = '\r';
    is_int(xray_header_parse(&one, SIZE_MAX, &ctx), XRAY_HEADER_TOO_LONG,
           "length: SIZE_MAX too long, nothing read");
    is_int(xray_header_parse(NULL, 0, &ctx), XRAY_HEADER_EMPTY,
           "length: NULL, 0 is empty");

    /* key length */

    buf = malloc(128);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    memcpy(buf, "Root=" R ";", 41);
    memset(buf + 41, 'K', XRAY_HEADER_MAX_KEY + 1);

    len = 41 + XRAY_HEADER_MAX_KEY;
    memcpy(buf + len, "=v", 2);
    is_int(xray_header_parse(buf, len + 2, &ctx), XRAY_HEADER_OK,
           "length: 64-byte key");

    buf[len] = 'K';
    memcpy(buf + len + 1, "=v", 2);
    is_int(xray_header_parse(buf, len + 3, &ctx), XRAY_HEADER_BAD_FIELD,
           "length: 65-byte key");

    /* a 65-byte Root-prefixed key is not Root */
    memcpy(buf + 41, "Root", 4);
    is_int(xray_header_parse(buf, len + 3, &ctx), XRAY_HEADER_BAD_FIELD,
           "length: 65-byte key starting with Root");

    free(buf);
}


/* "Root=R" then n - 1 fields "Kx=1", or the fields given */

static size_t
build_fields(unsigned char *buf, size_t n, const char *sep)
{
    size_t  i, len, slen;

    slen = strlen(sep);

    memcpy(buf, "Root=" R, 40);
    len = 40;

    for (i = 1; i < n; i++) {
        memcpy(buf + len, sep, slen);
        len += slen;

        buf[len++] = 'K';
        buf[len++] = (unsigned char) ('a' + i);
        buf[len++] = '=';
        buf[len++] = '1';
    }

    return len;
}


static void
test_fields(void)
{
    size_t             len;
    unsigned char      buf[XRAY_HEADER_MAX_LEN];
    const char        *in;
    xray_trace_ctx_t   ctx;

    len = build_fields(buf, XRAY_HEADER_MAX_FIELDS, ";");
    is_int(xray_header_parse(buf, len, &ctx), XRAY_HEADER_OK,
           "fields: 16 fields");
    is_int(ctx.nkept, XRAY_HEADER_MAX_FIELDS - 1, "fields: 15 kept");

    len = build_fields(buf, XRAY_HEADER_MAX_FIELDS + 1, ";");
    is_int(xray_header_parse(buf, len, &ctx), XRAY_HEADER_TOO_MANY_FIELDS,
           "fields: 17 fields");

    len = build_fields(buf, XRAY_HEADER_MAX_FIELDS, " ;; ; ");
    is_int(xray_header_parse(buf, len, &ctx), XRAY_HEADER_OK,
           "fields: 16 fields, empty fields not counted");

    /* the 17th field is counted before it is looked at */
    len = build_fields(buf, XRAY_HEADER_MAX_FIELDS, ";");
    memcpy(buf + len, ";junk", 5);
    is_int(xray_header_parse(buf, len + 5, &ctx),
           XRAY_HEADER_TOO_MANY_FIELDS, "fields: 17th field malformed");

    in = "Self=x;Root=" R ";Parent=" P ";Sampled=1;A=1;B=1;C=1;D=1;E=1;"
         "F=1;G=1;H=1;I=1;J=1;K=1;L=1";
    is_int(xray_header_parse(U(in), strlen(in), &ctx), XRAY_HEADER_OK,
           "fields: 16 with Self, Parent and Sampled");
    is_int(ctx.nkept, 12, "fields: 12 kept");

    in = "Self=x;Root=" R ";Parent=" P ";Sampled=1;A=1;B=1;C=1;D=1;E=1;"
         "F=1;G=1;H=1;I=1;J=1;K=1;L=1;M=1";
    is_int(xray_header_parse(U(in), strlen(in), &ctx),
           XRAY_HEADER_TOO_MANY_FIELDS, "fields: Self counts");
}


static void
test_trace_id(void)
{
    size_t          i;
    int             bad;
    unsigned char   id[XRAY_TRACE_ID_LEN];

    ok(xray_trace_id_valid(U(R), 35), "trace id: lower case");
    ok(xray_trace_id_valid(U("1-5759E988-BD862E3FE1BE46A994272793"), 35),
       "trace id: upper case");
    ok(xray_trace_id_valid(U("1-00000000-000000000000000000000000"), 35),
       "trace id: zeros");
    ok(!xray_trace_id_valid(U(R), 34), "trace id: 34");
    ok(!xray_trace_id_valid(U(R "0"), 36), "trace id: 36");
    ok(!xray_trace_id_valid(NULL, 0), "trace id: empty");
    ok(!xray_trace_id_valid(U("2-5759e988-bd862e3fe1be46a994272793"), 35),
       "trace id: version 2");

    /* each position: a non-hex byte breaks it, an upper-case digit not */

    bad = -1;

    for (i = 0; i < XRAY_TRACE_ID_LEN; i++) {
        memcpy(id, R, XRAY_TRACE_ID_LEN);
        id[i] = 'g';

        if (xray_trace_id_valid(id, XRAY_TRACE_ID_LEN)) {
            bad = (int) i;
            break;
        }

        id[i] = 'F';

        if (xray_trace_id_valid(id, XRAY_TRACE_ID_LEN)
            != (i != 0 && i != 1 && i != 10))
        {
            bad = (int) i;
            break;
        }
    }

    is_int(bad, -1, "trace id: every position checked");
}


static void
test_strerror(void)
{
    int          rc, k, distinct;
    const char  *s;

    is_mem(xray_header_strerror(XRAY_HEADER_TOO_LONG),
           strlen(xray_header_strerror(XRAY_HEADER_TOO_LONG)),
           "header too long", "strerror: too long");
    is_mem(xray_header_strerror(XRAY_HEADER_BAD_ROOT),
           strlen(xray_header_strerror(XRAY_HEADER_BAD_ROOT)),
           "bad Root", "strerror: bad Root");

    distinct = 1;

    for (rc = XRAY_HEADER_OK; rc <= XRAY_HEADER_BAD_SAMPLED; rc++) {
        s = xray_header_strerror((xray_header_rc_e) rc);

        if (s == NULL || s[0] == '\0'
            || strcmp(s, xray_header_strerror((xray_header_rc_e) 99)) == 0)
        {
            distinct = 0;
        }

        for (k = XRAY_HEADER_OK; k < rc; k++) {
            if (strcmp(s, xray_header_strerror((xray_header_rc_e) k)) == 0) {
                distinct = 0;
            }
        }
    }

    ok(distinct, "strerror: every result has its own text");
    is_mem(xray_header_strerror((xray_header_rc_e) 99),
           strlen(xray_header_strerror((xray_header_rc_e) 99)),
           "unknown error", "strerror: out of range");
}


static void
test_format(void)
{
    size_t             i, len, aside_len, worst;
    unsigned char     *buf, *big;
    unsigned char      aside[XRAY_HEADER_OUT_MAX];
    const char        *in;
    xray_trace_ctx_t   ctx;

    static const char  *no_parent[] = {
        "Root=" R,
        "Root=" R ";Sampled=0",
        "Root=" R ";Sampled=1",
        "Root=" R ";Sampled=?"
    };

    static const char  *with_parent[] = {
        "Root=" R ";Parent=" P,
        "Root=" R ";Parent=" P ";Sampled=0",
        "Root=" R ";Parent=" P ";Sampled=1",
        "Root=" R ";Parent=" P ";Sampled=?"
    };

    buf = malloc(XRAY_HEADER_OUT_MAX);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    for (i = 0; i < 4; i++) {
        len = xray_header_format(buf, U(R), NULL, (xray_sampled_e) i, NULL);
        is_mem(buf, len, no_parent[i], "format: ctx NULL, no parent, "
               "sampled %d", (int) i);

        len = xray_header_format(buf, U(R), U(P), (xray_sampled_e) i, NULL);
        is_mem(buf, len, with_parent[i], "format: ctx NULL, parent, "
               "sampled %d", (int) i);
    }

    /*
     * in place, as the proxy rewrites a client's header: a root and a
     * parent already where they go stay, the rest is written (any case of
     * the keys read): the same bytes as written aside
     */

    for (i = 0; i < 4; i++) {
        in = "root=" R ";PARENT=" P ";sampled=1";

        if (!is_int(xray_header_parse(U(in), strlen(in), &ctx),
                    XRAY_HEADER_OK, "format in place: input %d parses",
                    (int) i))
        {
            continue;
        }

        memcpy(buf, in, strlen(in));
        memcpy(buf + XRAY_HEADER_PARENT_AT, P2, XRAY_ID_LEN);

        len = xray_header_format(buf, buf + XRAY_HEADER_ROOT_AT,
                                 buf + XRAY_HEADER_PARENT_AT,
                                 (xray_sampled_e) i, &ctx);
        aside_len = xray_header_format(aside, U(R), U(P2),
                                       (xray_sampled_e) i, NULL);
        ok(len == aside_len && memcmp(buf, aside, len) == 0,
           "format in place: as written aside, sampled %d", (int) i);
        ok(len >= XRAY_HEADER_PARENT_AT + XRAY_ID_LEN
           && memcmp(buf, "Root=" R ";Parent=" P2,
                     XRAY_HEADER_PARENT_AT + XRAY_ID_LEN) == 0,
           "format in place: the root and the new parent, sampled %d",
           (int) i);
    }

    memcpy(buf, "ROOT=" R, 5 + XRAY_TRACE_ID_LEN);
    len = xray_header_format(buf, buf + XRAY_HEADER_ROOT_AT, NULL,
                             XRAY_SAMPLED_YES, NULL);
    is_mem(buf, len, "Root=" R ";Sampled=1",
           "format in place: the root alone");

    /* the proxy's rewrite: new Parent and decision, kept fields follow */

    in = "Sampled=?;Root=" R ";Parent=" P ";Self=x;Lineage=" LIN ";Foo=bar";
    if (is_int(xray_header_parse(U(in), strlen(in), &ctx), XRAY_HEADER_OK,
               "format: rewrite input parses"))
    {
        len = xray_header_format(buf, ctx.root, U(P2), XRAY_SAMPLED_YES,
                                 &ctx);
        is_mem(buf, len, "Root=" R ";Parent=" P2 ";Sampled=1;Lineage=" LIN
               ";Foo=bar", "format: rewrite");

        len = xray_header_format(buf, ctx.root, NULL, XRAY_SAMPLED_NONE,
                                 &ctx);
        is_mem(buf, len, "Root=" R ";Lineage=" LIN ";Foo=bar",
               "format: kept fields without parent or sampled");
    }

    /*
     * Worst case of a parsed header: Root (40 bytes) and the rest of
     * 512 bytes in kept fields, each costing its ';' in input and output.
     */

    worst = sizeof("Root=;Parent=;Sampled=?") - 1 + XRAY_TRACE_ID_LEN
            + XRAY_ID_LEN + (XRAY_HEADER_MAX_LEN - 40);
    ok(worst <= XRAY_HEADER_OUT_MAX, "format: worst case %d fits in %d",
       (int) worst, (int) XRAY_HEADER_OUT_MAX);

    big = malloc(XRAY_HEADER_MAX_LEN);
    if (big == NULL) {
        ok(0, "malloc");
        free(buf);
        return;
    }

    memcpy(big, "Root=" R ";K=", 43);
    memset(big + 43, 'v', XRAY_HEADER_MAX_LEN - 43);

    if (is_int(xray_header_parse(big, XRAY_HEADER_MAX_LEN, &ctx),
               XRAY_HEADER_OK, "format: one big kept field parses"))
    {
        len = xray_header_format(buf, ctx.root, U(P), XRAY_SAMPLED_REQUESTED,
                                 &ctx);
        is_int(len, worst, "format: one big kept field, worst length");
    }

    len = build_fields(big, XRAY_HEADER_MAX_FIELDS, ";");
    memset(big + len, 'v', XRAY_HEADER_MAX_LEN - len);

    if (is_int(xray_header_parse(big, XRAY_HEADER_MAX_LEN, &ctx),
               XRAY_HEADER_OK, "format: 15 kept fields, 512 bytes, parse"))
    {
        len = xray_header_format(buf, ctx.root, U(P), XRAY_SAMPLED_REQUESTED,
                                 &ctx);
        is_int(len, worst, "format: 15 kept fields, worst length");
    }

    /* a hand-made ctx too big for the buffer is cut at a field boundary */

    memset(big, 'x', XRAY_HEADER_MAX_LEN);
    big[0] = 'K';
    big[1] = '=';

    ctx.nkept = XRAY_HEADER_MAX_FIELDS;
    ctx.kept_len = 0;

    for (i = 0; i < XRAY_HEADER_MAX_FIELDS; i++) {
        ctx.kept[i].data = big;
        ctx.kept[i].len = XRAY_HEADER_MAX_LEN / 4;
        ctx.kept_len += ctx.kept[i].len;
    }

    len = xray_header_format(buf, U(R), U(P), XRAY_SAMPLED_YES, &ctx);
    is_int(len, 5 + 35 + 8 + 16 + 10 + 3 * (1 + XRAY_HEADER_MAX_LEN / 4),
           "format: oversize hand-made ctx cut to what fits");

    free(big);
    free(buf);
}


/*
 * The input in an exactly sized heap copy (ASan catches a read past its
 * end), then both parsers on it; counts and shows a few disagreements.
 */

static void
diff_one(const unsigned char *in, size_t len, size_t *bad)
{
    unsigned char  *copy;
    const char     *what;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        (*bad)++;
        return;
    }

    if (len) {
        memcpy(copy, in, len);
    }

    what = header_ref_diff(copy, len);

    if (what != NULL && (*bad)++ < 5) {
        printf("# differs from the reference in %s: '%.*s'\n", what,
               (int) len, (const char *) in);
    }

    free(copy);
}


/*
 * The canonical form ("Root=...;Parent=...;Sampled=x") has a fast path;
 * a leading space sends the same header through the general loop, which
 * must say exactly the same, for the form and for every one-byte change,
 * cut and extension of it.
 */

static int
same_parse(const unsigned char *in, size_t len)
{
    unsigned char     *spaced;
    xray_header_rc_e   rc1, rc2;
    xray_trace_ctx_t   c1, c2;
    int                same;

    spaced = malloc(len + 1);
    spaced[0] = ' ';
    memcpy(spaced + 1, in, len);

    rc1 = xray_header_parse(in, len, &c1);
    rc2 = xray_header_parse(spaced, len + 1, &c2);

    same = (rc1 == rc2);

    if (same && rc1 == XRAY_HEADER_OK) {
        same = c1.root - in == c2.root - (spaced + 1)
               && (c1.parent == NULL) == (c2.parent == NULL)
               && (c1.parent == NULL
                   || c1.parent - in == c2.parent - (spaced + 1))
               && c1.sampled == c2.sampled
               && c1.nkept == c2.nkept
               && c1.kept_len == c2.kept_len;
    }

    free(spaced);

    return same;
}


static void
test_reference_cases(void)
{
    size_t         i, bad, len;
    unsigned char  buf[XRAY_HEADER_MAX_LEN + 1];

    bad = 0;

    for (i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        diff_one(U(valid_cases[i].in), strlen(valid_cases[i].in), &bad);
        diff_one(U(valid_cases[i].out), strlen(valid_cases[i].out), &bad);
    }

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        diff_one(U(bad_cases[i].in), bad_cases[i].len, &bad);
    }

    /* the edges of the length and the field count */

    for (i = XRAY_HEADER_MAX_FIELDS - 1; i <= XRAY_HEADER_MAX_FIELDS + 1; i++)
    {
        len = build_fields(buf, i, ";");
        diff_one(buf, len, &bad);
        len = build_fields(buf, i, " ;; ; ");
        diff_one(buf, len, &bad);
    }

    memcpy(buf, "Root=" R ";K=", 43);
    memset(buf + 43, 'v', XRAY_HEADER_MAX_LEN + 1 - 43);
    diff_one(buf, XRAY_HEADER_MAX_LEN, &bad);
    diff_one(buf, XRAY_HEADER_MAX_LEN + 1, &bad);
    diff_one(NULL, 0, &bad);

    is_int(bad, 0, "reference: the parser agrees on every fixed input");
}


/*
 * Generated headers: fields built from pieces that matter to the grammar
 * (reserved keys in any case, good and bad values, whitespace, separators,
 * bytes that are never allowed), then sometimes one byte changed, inserted
 * or deleted.  Deterministic: the same inputs on every run.
 */

static uint64_t  gen_seed = 0x9e3779b97f4a7c15ULL;


static uint32_t
gen_next(uint32_t n)
{
    gen_seed = gen_seed * 6364136223846793005ULL + 1442695040888963407ULL;

    return (uint32_t) ((gen_seed >> 33) % n);
}


static size_t
gen_put(unsigned char *buf, size_t len, size_t max, const char *s)
{
    size_t  n;

    n = strlen(s);

    if (len + n > max) {
        return len;
    }

    memcpy(buf + len, s, n);

    return len + n;
}


/* one of n strings; "often" of them (the first ones) 19 times in 20 */

static const char *
gen_pick(const char *const *s, uint32_t n, uint32_t often)
{
    if (often && gen_next(20) != 0) {
        return s[gen_next(often)];
    }

    return s[gen_next(n)];
}


#define PICK(a, often)  gen_pick(a, sizeof(a) / sizeof(a[0]), often)


static size_t
gen_header(unsigned char *buf, size_t max)
{
    size_t         len, i, n, reps;
    uint32_t       kind;
    unsigned char  b;

    /* by kind of field: good values first, then bad ones */

    static const char  *const roots[] = {
        R, R2, "1-5759E988-BD862E3FE1BE46A994272793",
        "1-5759e988-bd862e3fe1be46a99427279", R "0",
        "2-5759e988-bd862e3fe1be46a994272793",
        "1-5759e988-bd862e3fe1be46a99427279g",
        "1_5759e988-bd862e3fe1be46a994272793", ""
    };
    static const char  *const parents[] = {
        P, P2, "53995C3F42CD8AD8", "53995c3f42cd8ad", P "0",
        "53995c3f42cd8adx", "", "?"
    };
    static const char  *const sampleds[] = {
        "0", "1", "?", "2", "01", "", "yes"
    };
    static const char  *const others[] = {
        LIN, "app", "a=b", "1", "x", "v v", "\x7f", "\x80", ",", "\r",
        "\n", "\0", "\xff", ""
    };
    static const char  *const root_keys[] = {
        "Root", "root", "ROOT", "rOoT", "Roo", "Roots", "Ro ot"
    };
    static const char  *const parent_keys[] = {
        "Parent", "parent", "PARENT", "Parents", "Paren"
    };
    static const char  *const sampled_keys[] = {
        "Sampled", "sampled", "SAMPLED", "Sample"
    };
    static const char  *const other_keys[] = {
        "Self", "self", "Lineage", "lineage", "CalledFrom", "Foo", "foo",
        "X", "a.b-c_d", "K1", "K2", "Selfie",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
        "", " ", "Key@", "K\tey"
    };
    static const char  *const eqs[] = {
        "=", " =", "= ", "\t=\t", "==", ""
    };
    static const char  *const seps[] = {
        ";", "; ", " ;", ";;", "\t;", " ", "", ";\x01", ";,"
    };

    len = 0;
    /* up to 18 fields, past the limit of 16, but mostly a few */
    reps = 1 + (gen_next(8) ? gen_next(6) : gen_next(18));

    if (gen_next(100) == 0) {
        reps = 0;                      /* blank, or one byte */
    }

    if (gen_next(4) == 0) {
        len = gen_put(buf, len, max, gen_next(2) ? " " : "\t");
    }

    for (i = 0; i < reps; i++) {
        /* many fields: mostly distinct kept ones, to reach the limit */
        if (i == 0) {
            kind = 0;

        } else if (reps > 8 && gen_next(10) != 0) {
            kind = 3;

        } else {
            kind = gen_next(6) ? gen_next(4) : 0;
        }

        switch (kind) {

        case 0:
            len = gen_put(buf, len, max, PICK(root_keys, 4));
            len = gen_put(buf, len, max, PICK(eqs, 1));
            len = gen_put(buf, len, max, PICK(roots, 3));
            break;

        case 1:
            len = gen_put(buf, len, max, PICK(parent_keys, 3));
            len = gen_put(buf, len, max, PICK(eqs, 1));
            len = gen_put(buf, len, max, PICK(parents, 3));
            break;

        case 2:
            len = gen_put(buf, len, max, PICK(sampled_keys, 3));
            len = gen_put(buf, len, max, PICK(eqs, 1));
            len = gen_put(buf, len, max, PICK(sampleds, 3));
            break;

        default:
            if ((reps > 8 || gen_next(2)) && len + 2 <= max) {
                /* a key of its own, so that many fields can be distinct */
                buf[len++] = 'K';
                buf[len++] = (unsigned char) ('a' + i);

            } else {
                len = gen_put(buf, len, max, PICK(other_keys, 12));
            }

            len = gen_put(buf, len, max, PICK(eqs, 1));

            if (gen_next(8) == 0) {
                /* a long value, to reach the length limit */
                n = gen_next(XRAY_HEADER_MAX_LEN);

                while (n-- && len < max) {
                    buf[len++] = 'v';
                }

            } else {
                len = gen_put(buf, len, max, PICK(others, 5));
            }

            break;
        }

        if (i + 1 < reps || gen_next(3) == 0) {
            len = gen_put(buf, len, max, PICK(seps, 1));
        }
    }

    /* sometimes one byte changed, inserted or deleted */

    switch (len ? gen_next(9) : 3) {

    case 0:
        buf[gen_next((uint32_t) len)] = (unsigned char) gen_next(256);
        break;

    case 1:
        if (len < max) {
            i = gen_next((uint32_t) len + 1);
            b = (unsigned char) gen_next(256);
            memmove(buf + i + 1, buf + i, len - i);
            buf[i] = b;
            len++;
        }
        break;

    case 2:
        i = gen_next((uint32_t) len);
        memmove(buf + i, buf + i + 1, len - i - 1);
        len--;
        break;

    default:
        break;
    }

    return len;
}


static void
test_reference_generated(void)
{
    int               rc, missed;
    size_t            k, len, bad;
    size_t            seen[XRAY_HEADER_BAD_SAMPLED + 1];
    unsigned char     buf[2 * XRAY_HEADER_MAX_LEN];
    xray_trace_ctx_t  ctx;

    bad = 0;
    memset(seen, 0, sizeof(seen));

    for (k = 0; k < GENERATED; k++) {
        len = gen_header(buf, sizeof(buf));
        diff_one(buf, len, &bad);
        seen[xray_header_parse(buf, len, &ctx)]++;
    }

    is_int(bad, 0, "reference: the parser agrees on %d generated headers",
           GENERATED);

    /* the generator reaches every result, and valid headers often */

    missed = -1;

    for (rc = XRAY_HEADER_OK; rc <= XRAY_HEADER_BAD_SAMPLED; rc++) {
        if (seen[rc] == 0) {
            missed = rc;
        }
    }

    is_int(missed, -1, "reference: generated headers reach every result");
    ok(seen[XRAY_HEADER_OK] > GENERATED / 10,
       "reference: %d of them are valid", (int) seen[XRAY_HEADER_OK]);
}


static void
test_canonical(void)
{
    size_t          i, j, k, n, len, bad;
    unsigned char   buf[128];

    static const char  *forms[] = {
        "Root=" R ";Parent=" P ";Sampled=1",
        "Root=" R ";Parent=" P ";Sampled=0",
        "Root=" R ";Parent=" P ";Sampled=?",
        "Root=" R ";Parent=" P,
        "Root=" R ";Sampled=1",
        "Root=" R,
        "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8"
        ";Sampled=1"
    };

    static const unsigned char  subst[] = {
        '0', '9', 'a', 'f', 'g', 'A', 'F', 'G', '/', ':', '@', '`',
        '-', ';', '=', ' ', '\t', ',', 'R', 'r', 'x', 0x00, 0x7f, 0x80,
        0xff
    };

    bad = 0;
    n = 0;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        len = strlen(forms[i]);

        memcpy(buf, forms[i], len);
        bad += !same_parse(buf, len);
        n++;

        /* cut short, and extended by one byte */

        for (j = 0; j < len; j++) {
            bad += !same_parse(buf, j);
            n++;
        }

        for (k = 0; k < sizeof(subst); k++) {
            buf[len] = subst[k];
            bad += !same_parse(buf, len + 1);
            n++;
        }

        /* every byte changed */

        for (j = 0; j < len; j++) {
            for (k = 0; k < sizeof(subst); k++) {
                memcpy(buf, forms[i], len);
                buf[j] = subst[k];
                bad += !same_parse(buf, len);
                n++;
            }
        }

        /* every byte changed to every value (the hex checks' edges) */

        for (j = 0; j < len; j++) {
            for (k = 0; k < 256; k++) {
                memcpy(buf, forms[i], len);
                buf[j] = (unsigned char) k;
                bad += !same_parse(buf, len);
                n++;
            }
        }
    }

    is_int(bad, 0, "canonical fast path: the general parse agrees on %zu "
           "variants", n);
}


int
main(void)
{
    test_valid();
    test_canonical();
    test_kept_spans();
    test_bad();
    test_every_byte();
    test_lengths();
    test_fields();
    test_trace_id();
    test_strerror();
    test_format();
    test_reference_cases();
    test_reference_generated();

    return done_testing();
}
