/*
 * X-Ray segment documents: the segment schema, written with the JSON
 * primitives of xray_json.h into a caller's buffer.
 *
 * Every write goes through xray_put(), which stops writing at the first
 * piece that does not fit and marks the output full; the public writers then
 * return 0, so the caller never sees a cut document.
 *
 * Choices the format (docs/protocol.md, section 2) leaves open:
 *
 * - Names keep exactly the characters the schema's name pattern lists:
 *   letters, numbers and space separators of the Basic Multilingual Plane
 *   (the table below) and _ . : / % & # = + - @.  The developer guide also
 *   lists '\', but the schema and the SDKs' Java pattern do not (it is the
 *   escape of '-' there), so '\' is dropped.  Subsegments (the upstream host,
 *   each peer address) are sanitised the same way: X-Ray makes service map
 *   nodes out of remote subsegments.
 * - Limits count UTF-16 code units, see xray_segment.h.
 * - Ids and the trace id are escaped like any other string, so a caller's
 *   bad id can make a document X-Ray rejects but never invalid JSON.
 * - Field order follows the examples, "name" then "id" first: the daemon
 *   logs rejected documents by matching the first "id":"...".
 */

#include <string.h>

#include "xray_json.h"
#include "xray_segment.h"


/* xray_char_class[] bits of the segment schema (xray_json.h) */
#define XRAY_CH_NAME   0x02    /* an ASCII character a name keeps */
#define XRAY_CH_AKEY   0x04    /* [A-Za-z0-9_], an annotation key's */


typedef struct {
    uint16_t        lo;
    uint16_t        hi;
} xray_range_t;


static size_t xray_put_sanitized(xray_out_t *o, const unsigned char *s,
    size_t len);
static void xray_put_name(xray_out_t *o, const xray_span_t *name,
    const xray_span_t *fallback, const char *dflt, size_t dflt_len);
static void xray_put_times(xray_out_t *o, uint64_t start, uint64_t end,
    unsigned in_progress);
static void xray_put_http(xray_out_t *o, const xray_http_t *http);
static void xray_put_flags(xray_out_t *o, unsigned flags);
static void xray_put_cause(xray_out_t *o, const xray_cause_t *cause);
static void xray_put_annotations(xray_out_t *o, const xray_annotation_t *a,
    size_t n);
static void xray_put_metadata(xray_out_t *o, const xray_metadata_t *m,
    size_t n);
static void xray_put_aws(xray_out_t *o, const xray_span_t *sdk_version,
    const xray_span_t *sampling_rule_name);
static void xray_put_attempt(xray_out_t *o, const xray_attempt_t *a);
static void xray_put_id_escaped(xray_out_t *o, const char *key,
    size_t key_len, const unsigned char *id, size_t len);
static void xray_put_sub_body(xray_out_t *o, const xray_subsegment_t *sub);
static void xray_put_subsegment(xray_out_t *o,
    const xray_subsegment_t *sub);
static int xray_name_char(uint32_t cp);
static int xray_boolean(const xray_span_t *v);
static int xray_span_eq(const xray_span_t *v, const char *s, size_t len);


/*
 * key (a literal: the text before the value, its opening '"' included), an
 * id of len bytes and its closing '"': copied when the caller vouched for
 * its ids, else escaped
 */

/* the length of the prefix of s of ASCII name characters: 4 at a time */

static inline size_t
xray_name_run(const unsigned char *s, size_t len)
{
    size_t  n;

    for (n = 0;
         len - n >= 4
         && (xray_char_class[s[n]] & xray_char_class[s[n + 1]]
             & xray_char_class[s[n + 2]] & xray_char_class[s[n + 3]]
             & XRAY_CH_NAME);
         n += 4)
    {
        /* void */
    }

    while (n < len && (xray_char_class[s[n]] & XRAY_CH_NAME)) {
        n++;
    }

    return n;
}


/* a string field (key a literal), omitted when empty */

#define xray_put_field(o, key, s, max)                                        \
    do {                                                                      \
        if ((s)->len > 0) {                                                   \
            xray_put_str(o, key, (s)->data, (s)->len, max);                   \
        }                                                                     \
    } while (0)

#define xray_put_id(o, key, id, len)                                          \
    xray_put_id_(o, key, sizeof(key) - 1, id, len)

static inline void
xray_put_id_(xray_out_t *o, const char *key, size_t key_len,
    const unsigned char *id, size_t len)
{
    unsigned char  *p;

    if (o->ids_safe && key_len + len + 1 <= (size_t) (o->end - o->pos)) {
        p = o->pos;
        memcpy(p, key, key_len);
        memcpy(p + key_len, id, len);
        p[key_len + len] = '"';
        o->pos = p + key_len + len + 1;
        return;
    }

    xray_put_id_escaped(o, key, key_len, id, len);
}


/*
 * Letters, numbers and space separators above U+007F, as the schema's name
 * pattern lists them, merged and sorted.  Made from the schema with:
 * parse the [...] of properties.name.pattern into ranges, sort, merge
 * adjacent ranges, keep those above 0x7f.
 */

static const xray_range_t  xray_name_ranges[] = {
    { 0x00a0, 0x00a0 }, { 0x00aa, 0x00aa }, { 0x00b2, 0x00b3 },
    { 0x00b5, 0x00b5 }, { 0x00b9, 0x00ba }, { 0x00bc, 0x00be },
    { 0x00c0, 0x00d6 }, { 0x00d8, 0x00f6 }, { 0x00f8, 0x02c1 },
    { 0x02c6, 0x02d1 }, { 0x02e0, 0x02e4 }, { 0x02ec, 0x02ec },
    { 0x02ee, 0x02ee }, { 0x0370, 0x0374 }, { 0x0376, 0x0377 },
    { 0x037a, 0x037d }, { 0x037f, 0x037f }, { 0x0386, 0x0386 },
    { 0x0388, 0x038a }, { 0x038c, 0x038c }, { 0x038e, 0x03a1 },
    { 0x03a3, 0x03f5 }, { 0x03f7, 0x0481 }, { 0x048a, 0x052f },
    { 0x0531, 0x0556 }, { 0x0559, 0x0559 }, { 0x0561, 0x0587 },
    { 0x05d0, 0x05ea }, { 0x05f0, 0x05f2 }, { 0x0620, 0x064a },
    { 0x0660, 0x0669 }, { 0x066e, 0x066f }, { 0x0671, 0x06d3 },
    { 0x06d5, 0x06d5 }, { 0x06e5, 0x06e6 }, { 0x06ee, 0x06fc },
    { 0x06ff, 0x06ff }, { 0x0710, 0x0710 }, { 0x0712, 0x072f },
    { 0x074d, 0x07a5 }, { 0x07b1, 0x07b1 }, { 0x07c0, 0x07ea },
    { 0x07f4, 0x07f5 }, { 0x07fa, 0x07fa }, { 0x0800, 0x0815 },
    { 0x081a, 0x081a }, { 0x0824, 0x0824 }, { 0x0828, 0x0828 },
    { 0x0840, 0x0858 }, { 0x08a0, 0x08b4 }, { 0x0904, 0x0939 },
    { 0x093d, 0x093d }, { 0x0950, 0x0950 }, { 0x0958, 0x0961 },
    { 0x0966, 0x096f }, { 0x0971, 0x0980 }, { 0x0985, 0x098c },
    { 0x098f, 0x0990 }, { 0x0993, 0x09a8 }, { 0x09aa, 0x09b0 },
    { 0x09b2, 0x09b2 }, { 0x09b6, 0x09b9 }, { 0x09bd, 0x09bd },
    { 0x09ce, 0x09ce }, { 0x09dc, 0x09dd }, { 0x09df, 0x09e1 },
    { 0x09e6, 0x09f1 }, { 0x09f4, 0x09f9 }, { 0x0a05, 0x0a0a },
    { 0x0a0f, 0x0a10 }, { 0x0a13, 0x0a28 }, { 0x0a2a, 0x0a30 },
    { 0x0a32, 0x0a33 }, { 0x0a35, 0x0a36 }, { 0x0a38, 0x0a39 },
    { 0x0a59, 0x0a5c }, { 0x0a5e, 0x0a5e }, { 0x0a66, 0x0a6f },
    { 0x0a72, 0x0a74 }, { 0x0a85, 0x0a8d }, { 0x0a8f, 0x0a91 },
    { 0x0a93, 0x0aa8 }, { 0x0aaa, 0x0ab0 }, { 0x0ab2, 0x0ab3 },
    { 0x0ab5, 0x0ab9 }, { 0x0abd, 0x0abd }, { 0x0ad0, 0x0ad0 },
    { 0x0ae0, 0x0ae1 }, { 0x0ae6, 0x0aef }, { 0x0af9, 0x0af9 },
    { 0x0b05, 0x0b0c }, { 0x0b0f, 0x0b10 }, { 0x0b13, 0x0b28 },
    { 0x0b2a, 0x0b30 }, { 0x0b32, 0x0b33 }, { 0x0b35, 0x0b39 },
    { 0x0b3d, 0x0b3d }, { 0x0b5c, 0x0b5d }, { 0x0b5f, 0x0b61 },
    { 0x0b66, 0x0b6f }, { 0x0b71, 0x0b77 }, { 0x0b83, 0x0b83 },
    { 0x0b85, 0x0b8a }, { 0x0b8e, 0x0b90 }, { 0x0b92, 0x0b95 },
    { 0x0b99, 0x0b9a }, { 0x0b9c, 0x0b9c }, { 0x0b9e, 0x0b9f },
    { 0x0ba3, 0x0ba4 }, { 0x0ba8, 0x0baa }, { 0x0bae, 0x0bb9 },
    { 0x0bd0, 0x0bd0 }, { 0x0be6, 0x0bf2 }, { 0x0c05, 0x0c0c },
    { 0x0c0e, 0x0c10 }, { 0x0c12, 0x0c28 }, { 0x0c2a, 0x0c39 },
    { 0x0c3d, 0x0c3d }, { 0x0c58, 0x0c5a }, { 0x0c60, 0x0c61 },
    { 0x0c66, 0x0c6f }, { 0x0c78, 0x0c7e }, { 0x0c85, 0x0c8c },
    { 0x0c8e, 0x0c90 }, { 0x0c92, 0x0ca8 }, { 0x0caa, 0x0cb3 },
    { 0x0cb5, 0x0cb9 }, { 0x0cbd, 0x0cbd }, { 0x0cde, 0x0cde },
    { 0x0ce0, 0x0ce1 }, { 0x0ce6, 0x0cef }, { 0x0cf1, 0x0cf2 },
    { 0x0d05, 0x0d0c }, { 0x0d0e, 0x0d10 }, { 0x0d12, 0x0d3a },
    { 0x0d3d, 0x0d3d }, { 0x0d4e, 0x0d4e }, { 0x0d5f, 0x0d61 },
    { 0x0d66, 0x0d75 }, { 0x0d7a, 0x0d7f }, { 0x0d85, 0x0d96 },
    { 0x0d9a, 0x0db1 }, { 0x0db3, 0x0dbb }, { 0x0dbd, 0x0dbd },
    { 0x0dc0, 0x0dc6 }, { 0x0de6, 0x0def }, { 0x0e01, 0x0e30 },
    { 0x0e32, 0x0e33 }, { 0x0e40, 0x0e46 }, { 0x0e50, 0x0e59 },
    { 0x0e81, 0x0e82 }, { 0x0e84, 0x0e84 }, { 0x0e87, 0x0e88 },
    { 0x0e8a, 0x0e8a }, { 0x0e8d, 0x0e8d }, { 0x0e94, 0x0e97 },
    { 0x0e99, 0x0e9f }, { 0x0ea1, 0x0ea3 }, { 0x0ea5, 0x0ea5 },
    { 0x0ea7, 0x0ea7 }, { 0x0eaa, 0x0eab }, { 0x0ead, 0x0eb0 },
    { 0x0eb2, 0x0eb3 }, { 0x0ebd, 0x0ebd }, { 0x0ec0, 0x0ec4 },
    { 0x0ec6, 0x0ec6 }, { 0x0ed0, 0x0ed9 }, { 0x0edc, 0x0edf },
    { 0x0f00, 0x0f00 }, { 0x0f20, 0x0f33 }, { 0x0f40, 0x0f47 },
    { 0x0f49, 0x0f6c }, { 0x0f88, 0x0f8c }, { 0x1000, 0x102a },
    { 0x103f, 0x1049 }, { 0x1050, 0x1055 }, { 0x105a, 0x105d },
    { 0x1061, 0x1061 }, { 0x1065, 0x1066 }, { 0x106e, 0x1070 },
    { 0x1075, 0x1081 }, { 0x108e, 0x108e }, { 0x1090, 0x1099 },
    { 0x10a0, 0x10c5 }, { 0x10c7, 0x10c7 }, { 0x10cd, 0x10cd },
    { 0x10d0, 0x10fa }, { 0x10fc, 0x1248 }, { 0x124a, 0x124d },
    { 0x1250, 0x1256 }, { 0x1258, 0x1258 }, { 0x125a, 0x125d },
    { 0x1260, 0x1288 }, { 0x128a, 0x128d }, { 0x1290, 0x12b0 },
    { 0x12b2, 0x12b5 }, { 0x12b8, 0x12be }, { 0x12c0, 0x12c0 },
    { 0x12c2, 0x12c5 }, { 0x12c8, 0x12d6 }, { 0x12d8, 0x1310 },
    { 0x1312, 0x1315 }, { 0x1318, 0x135a }, { 0x1369, 0x137c },
    { 0x1380, 0x138f }, { 0x13a0, 0x13f5 }, { 0x13f8, 0x13fd },
    { 0x1401, 0x166c }, { 0x166f, 0x169a }, { 0x16a0, 0x16ea },
    { 0x16ee, 0x16f8 }, { 0x1700, 0x170c }, { 0x170e, 0x1711 },
    { 0x1720, 0x1731 }, { 0x1740, 0x1751 }, { 0x1760, 0x176c },
    { 0x176e, 0x1770 }, { 0x1780, 0x17b3 }, { 0x17d7, 0x17d7 },
    { 0x17dc, 0x17dc }, { 0x17e0, 0x17e9 }, { 0x17f0, 0x17f9 },
    { 0x1810, 0x1819 }, { 0x1820, 0x1877 }, { 0x1880, 0x18a8 },
    { 0x18aa, 0x18aa }, { 0x18b0, 0x18f5 }, { 0x1900, 0x191e },
    { 0x1946, 0x196d }, { 0x1970, 0x1974 }, { 0x1980, 0x19ab },
    { 0x19b0, 0x19c9 }, { 0x19d0, 0x19da }, { 0x1a00, 0x1a16 },
    { 0x1a20, 0x1a54 }, { 0x1a80, 0x1a89 }, { 0x1a90, 0x1a99 },
    { 0x1aa7, 0x1aa7 }, { 0x1b05, 0x1b33 }, { 0x1b45, 0x1b4b },
    { 0x1b50, 0x1b59 }, { 0x1b83, 0x1ba0 }, { 0x1bae, 0x1be5 },
    { 0x1c00, 0x1c23 }, { 0x1c40, 0x1c49 }, { 0x1c4d, 0x1c7d },
    { 0x1ce9, 0x1cec }, { 0x1cee, 0x1cf1 }, { 0x1cf5, 0x1cf6 },
    { 0x1d00, 0x1dbf }, { 0x1e00, 0x1f15 }, { 0x1f18, 0x1f1d },
    { 0x1f20, 0x1f45 }, { 0x1f48, 0x1f4d }, { 0x1f50, 0x1f57 },
    { 0x1f59, 0x1f59 }, { 0x1f5b, 0x1f5b }, { 0x1f5d, 0x1f5d },
    { 0x1f5f, 0x1f7d }, { 0x1f80, 0x1fb4 }, { 0x1fb6, 0x1fbc },
    { 0x1fbe, 0x1fbe }, { 0x1fc2, 0x1fc4 }, { 0x1fc6, 0x1fcc },
    { 0x1fd0, 0x1fd3 }, { 0x1fd6, 0x1fdb }, { 0x1fe0, 0x1fec },
    { 0x1ff2, 0x1ff4 }, { 0x1ff6, 0x1ffc }, { 0x2000, 0x200a },
    { 0x2028, 0x2029 }, { 0x202f, 0x202f }, { 0x205f, 0x205f },
    { 0x2070, 0x2071 }, { 0x2074, 0x2079 }, { 0x207f, 0x2089 },
    { 0x2090, 0x209c }, { 0x2102, 0x2102 }, { 0x2107, 0x2107 },
    { 0x210a, 0x2113 }, { 0x2115, 0x2115 }, { 0x2119, 0x211d },
    { 0x2124, 0x2124 }, { 0x2126, 0x2126 }, { 0x2128, 0x2128 },
    { 0x212a, 0x212d }, { 0x212f, 0x2139 }, { 0x213c, 0x213f },
    { 0x2145, 0x2149 }, { 0x214e, 0x214e }, { 0x2150, 0x2189 },
    { 0x2460, 0x249b }, { 0x24ea, 0x24ff }, { 0x2776, 0x2793 },
    { 0x2c00, 0x2c2e }, { 0x2c30, 0x2c5e }, { 0x2c60, 0x2ce4 },
    { 0x2ceb, 0x2cee }, { 0x2cf2, 0x2cf3 }, { 0x2cfd, 0x2cfd },
    { 0x2d00, 0x2d25 }, { 0x2d27, 0x2d27 }, { 0x2d2d, 0x2d2d },
    { 0x2d30, 0x2d67 }, { 0x2d6f, 0x2d6f }, { 0x2d80, 0x2d96 },
    { 0x2da0, 0x2da6 }, { 0x2da8, 0x2dae }, { 0x2db0, 0x2db6 },
    { 0x2db8, 0x2dbe }, { 0x2dc0, 0x2dc6 }, { 0x2dc8, 0x2dce },
    { 0x2dd0, 0x2dd6 }, { 0x2dd8, 0x2dde }, { 0x2e2f, 0x2e2f },
    { 0x3000, 0x3000 }, { 0x3005, 0x3007 }, { 0x3021, 0x3029 },
    { 0x3031, 0x3035 }, { 0x3038, 0x303c }, { 0x3041, 0x3096 },
    { 0x309d, 0x309f }, { 0x30a1, 0x30fa }, { 0x30fc, 0x30ff },
    { 0x3105, 0x312d }, { 0x3131, 0x318e }, { 0x3192, 0x3195 },
    { 0x31a0, 0x31ba }, { 0x31f0, 0x31ff }, { 0x3220, 0x3229 },
    { 0x3248, 0x324f }, { 0x3251, 0x325f }, { 0x3280, 0x3289 },
    { 0x32b1, 0x32bf }, { 0x3400, 0x4db5 }, { 0x4e00, 0x9fd5 },
    { 0xa000, 0xa48c }, { 0xa4d0, 0xa4fd }, { 0xa500, 0xa60c },
    { 0xa610, 0xa62b }, { 0xa640, 0xa66e }, { 0xa67f, 0xa69d },
    { 0xa6a0, 0xa6ef }, { 0xa717, 0xa71f }, { 0xa722, 0xa788 },
    { 0xa78b, 0xa7ad }, { 0xa7b0, 0xa7b7 }, { 0xa7f7, 0xa801 },
    { 0xa803, 0xa805 }, { 0xa807, 0xa80a }, { 0xa80c, 0xa822 },
    { 0xa830, 0xa835 }, { 0xa840, 0xa873 }, { 0xa882, 0xa8b3 },
    { 0xa8d0, 0xa8d9 }, { 0xa8f2, 0xa8f7 }, { 0xa8fb, 0xa8fb },
    { 0xa8fd, 0xa8fd }, { 0xa900, 0xa925 }, { 0xa930, 0xa946 },
    { 0xa960, 0xa97c }, { 0xa984, 0xa9b2 }, { 0xa9cf, 0xa9d9 },
    { 0xa9e0, 0xa9e4 }, { 0xa9e6, 0xa9fe }, { 0xaa00, 0xaa28 },
    { 0xaa40, 0xaa42 }, { 0xaa44, 0xaa4b }, { 0xaa50, 0xaa59 },
    { 0xaa60, 0xaa76 }, { 0xaa7a, 0xaa7a }, { 0xaa7e, 0xaaaf },
    { 0xaab1, 0xaab1 }, { 0xaab5, 0xaab6 }, { 0xaab9, 0xaabd },
    { 0xaac0, 0xaac0 }, { 0xaac2, 0xaac2 }, { 0xaadb, 0xaadd },
    { 0xaae0, 0xaaea }, { 0xaaf2, 0xaaf4 }, { 0xab01, 0xab06 },
    { 0xab09, 0xab0e }, { 0xab11, 0xab16 }, { 0xab20, 0xab26 },
    { 0xab28, 0xab2e }, { 0xab30, 0xab5a }, { 0xab5c, 0xab65 },
    { 0xab70, 0xabe2 }, { 0xabf0, 0xabf9 }, { 0xac00, 0xd7a3 },
    { 0xd7b0, 0xd7c6 }, { 0xd7cb, 0xd7fb }, { 0xf900, 0xfa6d },
    { 0xfa70, 0xfad9 }, { 0xfb00, 0xfb06 }, { 0xfb13, 0xfb17 },
    { 0xfb1d, 0xfb1d }, { 0xfb1f, 0xfb28 }, { 0xfb2a, 0xfb36 },
    { 0xfb38, 0xfb3c }, { 0xfb3e, 0xfb3e }, { 0xfb40, 0xfb41 },
    { 0xfb43, 0xfb44 }, { 0xfb46, 0xfbb1 }, { 0xfbd3, 0xfd3d },
    { 0xfd50, 0xfd8f }, { 0xfd92, 0xfdc7 }, { 0xfdf0, 0xfdfb },
    { 0xfe70, 0xfe74 }, { 0xfe76, 0xfefc }, { 0xff10, 0xff19 },
    { 0xff21, 0xff3a }, { 0xff41, 0xff5a }, { 0xff66, 0xffbe },
    { 0xffc2, 0xffc7 }, { 0xffca, 0xffcf }, { 0xffd2, 0xffd7 },
    { 0xffda, 0xffdc },
};


size_t
xray_segment_write(unsigned char *buf, size_t size,
    const xray_segment_t *seg, int with_subsegments)
{
    size_t      i;
    xray_out_t  o;

    xray_out_init(&o, buf, size);
    o.ids_safe = seg->ids_safe;

    if (seg->head.len) {
        xray_put(&o, seg->head.data, seg->head.len);

    } else {
        xray_put_lit(&o, "{\"name\":\"");
        xray_put_name(&o, &seg->name, &seg->fallback_name, XRAY_DEFAULT_NAME,
                      sizeof(XRAY_DEFAULT_NAME) - 1);
    }

    xray_put_id(&o, "\",\"id\":\"", seg->id, XRAY_ID_LEN);
    xray_put_id(&o, ",\"trace_id\":\"", seg->trace_id, XRAY_TRACE_ID_LEN);

    if (seg->parent_id != NULL) {
        xray_put_id(&o, ",\"parent_id\":\"", seg->parent_id, XRAY_ID_LEN);
    }

    xray_put_times(&o, seg->start, seg->end, seg->in_progress);
    xray_put_field(&o, ",\"origin\":\"", &seg->origin, XRAY_STRING_MAX);
    xray_put_http(&o, &seg->http);
    xray_put_flags(&o, seg->flags);
    xray_put_cause(&o, seg->cause);
    xray_put_annotations(&o, seg->annotations, seg->nannotations);
    xray_put_metadata(&o, seg->metadata, seg->nmetadata);
    if (seg->aws.len) {
        xray_put(&o, seg->aws.data, seg->aws.len);

    } else {
        xray_put_aws(&o, &seg->sdk_version, &seg->sampling_rule_name);
    }

    if (with_subsegments && seg->nsubsegments) {
        xray_put_lit(&o, ",\"subsegments\":[");

        for (i = 0; i < seg->nsubsegments; i++) {
            if (i) {
                xray_put_byte(&o, ',');
            }

            xray_put_subsegment(&o, &seg->subsegments[i]);
        }

        xray_put_lit(&o, "]");
    }

    xray_put_byte(&o, '}');

    return xray_out_finish(&o, buf, size);
}


size_t
xray_segment_head(unsigned char *buf, size_t size, const xray_span_t *name,
    const xray_span_t *fallback_name)
{
    xray_out_t  o;

    xray_out_init(&o, buf, size);

    xray_put_lit(&o, "{\"name\":\"");
    xray_put_name(&o, name, fallback_name, XRAY_DEFAULT_NAME,
                  sizeof(XRAY_DEFAULT_NAME) - 1);

    return xray_out_finish(&o, buf, size);
}


size_t
xray_segment_aws(unsigned char *buf, size_t size,
    const xray_span_t *sdk_version, const xray_span_t *sampling_rule_name)
{
    xray_out_t  o;

    xray_out_init(&o, buf, size);
    xray_put_aws(&o, sdk_version, sampling_rule_name);

    return xray_out_finish(&o, buf, size);
}


size_t
xray_subsegment_write(unsigned char *buf, size_t size,
    const xray_subsegment_t *sub, const unsigned char *trace_id,
    const unsigned char *parent_id)
{
    xray_out_t  o;

    xray_out_init(&o, buf, size);

    xray_put_lit(&o, "{\"name\":\"");
    xray_put_name(&o, &sub->name, NULL, XRAY_DEFAULT_SUB_NAME,
                  sizeof(XRAY_DEFAULT_SUB_NAME) - 1);
    xray_put_str(&o, "\",\"id\":\"", sub->id, XRAY_ID_LEN, XRAY_ID_LEN);
    xray_put_str(&o, ",\"trace_id\":\"", trace_id, XRAY_TRACE_ID_LEN,
                 XRAY_TRACE_ID_LEN);
    xray_put_str(&o, ",\"parent_id\":\"", parent_id, XRAY_ID_LEN,
                 XRAY_ID_LEN);
    xray_put_lit(&o, ",\"type\":\"subsegment\"");
    xray_put_sub_body(&o, sub);
    xray_put_byte(&o, '}');

    return xray_out_finish(&o, buf, size);
}


size_t
xray_name_sanitize(unsigned char *dst, size_t size, const unsigned char *src,
    size_t len)
{
    xray_out_t  o;

    xray_out_init(&o, dst, size);
    (void) xray_put_sanitized(&o, src, len);

    return o.full ? XRAY_JSON_ERROR : (size_t) (o.pos - dst);
}


int
xray_annotation_key_valid(const unsigned char *key, size_t len)
{
    size_t         i;
    unsigned char  all;

    if (len == 0 || len > XRAY_ANNOTATION_KEY_MAX) {
        return 0;
    }

    all = XRAY_CH_AKEY;

    for (i = 0; i < len; i++) {
        all &= xray_char_class[key[i]];
    }

    return all != 0;
}


unsigned
xray_status_flags(unsigned status)
{
    if (status >= 500) {
        return XRAY_FLAG_FAULT;
    }

    if (status == 429) {
        return XRAY_FLAG_ERROR | XRAY_FLAG_THROTTLE;
    }

    if (status >= 400) {
        return XRAY_FLAG_ERROR;
    }

    return 0;
}


/* returns the number of characters kept */

static size_t
xray_put_sanitized(xray_out_t *o, const unsigned char *s, size_t len)
{
    size_t    n, kept, run;
    uint32_t  cp;

    kept = 0;

    while (len > 0 && kept < XRAY_NAME_MAX) {

        /* the common case: a run of ASCII characters that are kept */
        run = len < XRAY_NAME_MAX - kept ? len : XRAY_NAME_MAX - kept;
        n = xray_name_run(s, run);

        if (n > 0) {
            xray_put(o, s, n);
            kept += n;
            s += n;
            len -= n;
            continue;
        }

        n = xray_utf8_next(s, len, &cp);

        if (xray_name_char(cp)) {
            xray_put(o, s, n);
            kept++;
        }

        s += n;
        len -= n;
    }

    return kept;
}


static void
xray_put_name(xray_out_t *o, const xray_span_t *name,
    const xray_span_t *fallback, const char *dflt, size_t dflt_len)
{
    /* most names are ASCII, within the limit, and kept whole */

    if (name->len > 0 && name->len <= XRAY_NAME_MAX
        && xray_name_run(name->data, name->len) == name->len)
    {
        xray_put(o, name->data, name->len);
        return;
    }

    if (name->len > 0
        && xray_put_sanitized(o, name->data, name->len) > 0)
    {
        return;
    }

    if (fallback != NULL && fallback->len > 0
        && xray_put_sanitized(o, fallback->data, fallback->len) > 0)
    {
        return;
    }

    xray_put(o, dflt, dflt_len);
}


static void
xray_put_times(xray_out_t *o, uint64_t start, uint64_t end,
    unsigned in_progress)
{
    unsigned char   tmp[sizeof(",\"start_time\":") - 1 + XRAY_FRAC_LEN
                        + sizeof(",\"end_time\":") - 1 + XRAY_FRAC_LEN];
    unsigned char  *s, *p;

    s = xray_reserve(o, tmp, sizeof(tmp));
    p = s;

    xray_cpy_lit(p, ",\"start_time\":");
    p = xray_fmt_time(o, p, start);

    if (in_progress) {
        xray_cpy_lit(p, ",\"in_progress\":true");

    } else {
        xray_cpy_lit(p, ",\"end_time\":");
        p = xray_fmt_time(o, p, end);
    }

    xray_commit(o, tmp, s, p);
}


static void
xray_put_http(xray_out_t *o, const xray_http_t *http)
{
    int             req, resp;
    unsigned char   tmp[sizeof(",\"response\":{\"status\":") - 1
                        + XRAY_UINT_LEN
                        + sizeof(",\"content_length\":}}") - 1
                        + XRAY_UINT_LEN];
    unsigned char  *s, *p, *c;

    req = http->method.len || http->url.len || http->user_agent.len
          || http->client_ip.len || http->x_forwarded_for || http->traced;
    /* a length without a status means nothing: a zeroed struct is empty */
    resp = http->status > 0;

    if (!req && !resp) {
        return;
    }

    if (req) {
        xray_put_lit(o, ",\"http\":{\"request\":");

        /* each field after a ','; the first one's opens the object instead */
        c = o->pos;

        xray_put_field(o, ",\"method\":\"", &http->method,
                       XRAY_STRING_MAX);
        xray_put_field(o, ",\"url\":\"", &http->url,
                       XRAY_STRING_MAX);
        xray_put_field(o, ",\"user_agent\":\"", &http->user_agent,
                       XRAY_STRING_MAX);
        xray_put_field(o, ",\"client_ip\":\"", &http->client_ip,
                       XRAY_STRING_MAX);

        if (http->x_forwarded_for) {
            xray_put_lit(o, ",\"x_forwarded_for\":true");
        }

        if (http->traced) {
            xray_put_lit(o, ",\"traced\":true");
        }

        /* req: a field was written at c, unless nothing fitted */
        if (!o->full) {
            *c = '{';
        }

        xray_put_byte(o, '}');

    } else {
        xray_put_lit(o, ",\"http\":{");
    }

    if (resp) {
        s = xray_reserve(o, tmp, sizeof(tmp));
        p = s;

        if (req) {
            *p++ = ',';
        }

        xray_cpy_lit(p, "\"response\":{\"status\":");
        p = xray_fmt_uint(p, http->status);

        if (http->content_length >= 0) {
            xray_cpy_lit(p, ",\"content_length\":");
            p = xray_fmt_uint(p, (uint64_t) http->content_length);
        }

        *p++ = '}';
        xray_commit(o, tmp, s, p);
    }

    xray_put_byte(o, '}');
}




static void
xray_put_flags(xray_out_t *o, unsigned flags)
{
    if (flags & XRAY_FLAG_ERROR) {
        xray_put_lit(o, ",\"error\":true");
    }

    if (flags & XRAY_FLAG_THROTTLE) {
        xray_put_lit(o, ",\"throttle\":true");
    }

    if (flags & XRAY_FLAG_FAULT) {
        xray_put_lit(o, ",\"fault\":true");
    }
}


static void
xray_put_cause(xray_out_t *o, const xray_cause_t *cause)
{
    if (cause == NULL || cause->id == NULL) {
        return;
    }

    xray_put_id(o, ",\"cause\":{\"exceptions\":[{\"id\":\"", cause->id,
                XRAY_ID_LEN);
    xray_put_field(o, ",\"type\":\"", &cause->type, XRAY_STRING_MAX);
    xray_put_field(o, ",\"message\":\"", &cause->message,
                   XRAY_STRING_MAX);

    if (cause->remote) {
        xray_put_lit(o, ",\"remote\":true");
    }

    xray_put_lit(o, "}]}");
}


static void
xray_put_annotations(xray_out_t *o, const xray_annotation_t *a, size_t n)
{
    size_t    i;
    unsigned  written;
    int       b;

    written = 0;

    for (i = 0; i < n; i++) {
        if (a[i].value.len == 0
            || !xray_annotation_key_valid(a[i].key.data, a[i].key.len))
        {
            continue;
        }

        if (written++ == 0) {
            xray_put_lit(o, ",\"annotations\":{\"");

        } else {
            xray_put_lit(o, ",\"");
        }

        /* a valid key needs no escaping */
        xray_put(o, a[i].key.data, a[i].key.len);

        switch (a[i].kind) {

        case XRAY_ANNOTATION_NUMBER:
            if (a[i].value.len <= XRAY_ANNOTATION_MAX
                && xray_json_number(a[i].value.data, a[i].value.len))
            {
                xray_put_lit(o, "\":");
                xray_put(o, a[i].value.data, a[i].value.len);
                continue;
            }

            break;

        case XRAY_ANNOTATION_BOOLEAN:
            b = xray_boolean(&a[i].value);

            if (b == 1) {
                xray_put_lit(o, "\":true");
                continue;
            }

            if (b == 0) {
                xray_put_lit(o, "\":false");
                continue;
            }

            break;

        default:
            break;
        }

        xray_put_str(o, "\":\"", a[i].value.data, a[i].value.len,
                     XRAY_ANNOTATION_MAX);
    }

    if (written) {
        xray_put_byte(o, '}');
    }
}


static void
xray_put_metadata(xray_out_t *o, const xray_metadata_t *m, size_t n)
{
    size_t    i;
    unsigned  written;

    written = 0;

    for (i = 0; i < n; i++) {
        if (m[i].key.len == 0) {
            continue;
        }

        if (written++ == 0) {
            xray_put_str(o, ",\"metadata\":{\"" XRAY_METADATA_NAMESPACE
                         "\":{\"", m[i].key.data, m[i].key.len,
                         XRAY_STRING_MAX);

        } else {
            xray_put_str(o, ",\"", m[i].key.data, m[i].key.len,
                         XRAY_STRING_MAX);
        }

        xray_put_str(o, ":\"", m[i].value.data, m[i].value.len,
                     XRAY_METADATA_MAX);
    }

    if (written) {
        xray_put_lit(o, "}}");
    }
}


static void
xray_put_aws(xray_out_t *o, const xray_span_t *sdk_version,
    const xray_span_t *sampling_rule_name)
{
    xray_put_lit(o, ",\"aws\":{\"xray\":{\"sdk\":\"" XRAY_SDK_NAME "\"");
    xray_put_field(o, ",\"sdk_version\":\"", sdk_version, XRAY_STRING_MAX);
    xray_put_field(o, ",\"sampling_rule_name\":\"", sampling_rule_name,
                   XRAY_STRING_MAX);
    xray_put_lit(o, "}}");
}


static void
xray_put_attempt(xray_out_t *o, const xray_attempt_t *a)
{
    unsigned char   tmp[sizeof(",\"metadata\":{\""
                               XRAY_METADATA_NAMESPACE "\":") - 1
                        + sizeof(",\"connect_time\":") - 1
                        + sizeof(",\"header_time\":") - 1
                        + sizeof(",\"response_time\":") - 1
                        + 3 * XRAY_FRAC_LEN + sizeof("}}}") - 1];
    unsigned char  *s, *p, *c;

    xray_put_lit(o, "{\"name\":\"");
    xray_put_name(o, &a->peer, NULL, XRAY_DEFAULT_SUB_NAME,
                  sizeof(XRAY_DEFAULT_SUB_NAME) - 1);
    xray_put_id(o, "\",\"id\":\"", a->id, XRAY_ID_LEN);
    xray_put_times(o, a->start, a->end, 0);
    xray_put_lit(o, ",\"namespace\":\"remote\"");

    if (a->status > 0) {
        s = xray_reserve(o, tmp, sizeof(tmp));
        p = s;
        xray_cpy_lit(p, ",\"http\":{\"response\":{\"status\":");
        p = xray_fmt_uint(p, a->status);
        xray_cpy_lit(p, "}}");
        xray_commit(o, tmp, s, p);
    }

    /* no status: no response at all, the peer failed */
    xray_put_flags(o, a->status > 0 ? xray_status_flags(a->status)
                                    : XRAY_FLAG_FAULT);
    xray_put_cause(o, a->cause);

    s = xray_reserve(o, tmp, sizeof(tmp));
    p = s;

    if (a->connect_time >= 0 || a->header_time >= 0
        || a->response_time >= 0)
    {
        xray_cpy_lit(p, ",\"metadata\":{\"" XRAY_METADATA_NAMESPACE "\":");
        c = p;

        if (a->connect_time >= 0) {
            xray_cpy_lit(p, ",\"connect_time\":");
            p = xray_fmt_ms(p, (uint64_t) a->connect_time);
        }

        if (a->header_time >= 0) {
            xray_cpy_lit(p, ",\"header_time\":");
            p = xray_fmt_ms(p, (uint64_t) a->header_time);
        }

        if (a->response_time >= 0) {
            xray_cpy_lit(p, ",\"response_time\":");
            p = xray_fmt_ms(p, (uint64_t) a->response_time);
        }

        /* the ',' before the first time opens the object instead */
        *c = '{';
        xray_cpy_lit(p, "}}");
    }

    *p++ = '}';
    xray_commit(o, tmp, s, p);
}


/* the fields after the ids, shared by the nested and independent forms */

static void
xray_put_sub_body(xray_out_t *o, const xray_subsegment_t *sub)
{
    size_t  i;

    xray_put_times(o, sub->start, sub->end, sub->in_progress);
    xray_put_lit(o, ",\"namespace\":\"remote\"");
    xray_put_http(o, &sub->http);
    xray_put_flags(o, sub->flags);
    xray_put_cause(o, sub->cause);

    if (sub->nattempts == 0) {
        return;
    }

    xray_put_lit(o, ",\"subsegments\":[");

    for (i = 0; i < sub->nattempts; i++) {
        if (i > 0) {
            xray_put_byte(o, ',');
        }

        xray_put_attempt(o, &sub->attempts[i]);
    }

    xray_put_byte(o, ']');
}


static void
xray_put_subsegment(xray_out_t *o, const xray_subsegment_t *sub)
{
    xray_put_lit(o, "{\"name\":\"");
    xray_put_name(o, &sub->name, NULL, XRAY_DEFAULT_SUB_NAME,
                  sizeof(XRAY_DEFAULT_SUB_NAME) - 1);
    xray_put_id(o, "\",\"id\":\"", sub->id, XRAY_ID_LEN);
    xray_put_sub_body(o, sub);
    xray_put_byte(o, '}');
}


static void
xray_put_id_escaped(xray_out_t *o, const char *key, size_t key_len,
    const unsigned char *id, size_t len)
{
    xray_put_string(o, key, key_len, id, len, len);
}


static int
xray_name_char(uint32_t cp)
{
    size_t  lo, hi, mid;

    if (cp < 0x80) {
        return xray_char_class[cp] & XRAY_CH_NAME;
    }

    if (cp > 0xffff) {
        return 0;
    }

    lo = 0;
    hi = sizeof(xray_name_ranges) / sizeof(xray_name_ranges[0]);

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (cp > xray_name_ranges[mid].hi) {
            lo = mid + 1;

        } else if (cp < xray_name_ranges[mid].lo) {
            hi = mid;

        } else {
            return 1;
        }
    }

    return 0;
}


/* 1 true, 0 false, -1 neither */

static int
xray_boolean(const xray_span_t *v)
{
    switch (v->len) {

    case 1:
        return (v->data[0] == '1') ? 1 : (v->data[0] == '0') ? 0 : -1;

    case 2:
        return xray_span_eq(v, "on", 2) ? 1 : xray_span_eq(v, "no", 2) ? 0
                                                                      : -1;

    case 3:
        return xray_span_eq(v, "yes", 3) ? 1 : xray_span_eq(v, "off", 3) ? 0
                                                                        : -1;

    case 4:
        return xray_span_eq(v, "true", 4) ? 1 : -1;

    case 5:
        return xray_span_eq(v, "false", 5) ? 0 : -1;
    }

    return -1;
}


/* ASCII case-insensitive; s is lowercase letters, len bytes, as v */

static int
xray_span_eq(const xray_span_t *v, const char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = v->data[i];

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c != (unsigned char) s[i]) {
            return 0;
        }
    }

    return 1;
}
