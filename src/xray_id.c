/*
 * Trace and segment ids: see xray_id.h.
 */

#include <string.h>

#include <openssl/rand.h>

#include "xray_id.h"


/* "00" to "ff": two digits a byte */

static const char  xray_hex_pairs[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";


static uint64_t
xray_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


static uint64_t
xray_splitmix(uint64_t *x)
{
    uint64_t  z;

    z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;

    return z ^ (z >> 31);
}


int
xray_rng_seed(xray_rng_t *rng)
{
    if (RAND_bytes((unsigned char *) rng->s, sizeof(rng->s)) != 1) {
        return -1;
    }

    /* an all-zero state would make the generator emit zeros forever */
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0) {
        xray_rng_seed_fixed(rng, 1);
    }

    return 0;
}


void
xray_rng_seed_fixed(xray_rng_t *rng, uint64_t seed)
{
    int  i;

    for (i = 0; i < 4; i++) {
        rng->s[i] = xray_splitmix(&seed);
    }
}


uint64_t
xray_rng_next(xray_rng_t *rng)
{
    uint64_t  result, t;

    result = xray_rotl(rng->s[1] * 5, 7) * 9;
    t = rng->s[1] << 17;

    rng->s[2] ^= rng->s[0];
    rng->s[3] ^= rng->s[1];
    rng->s[1] ^= rng->s[2];
    rng->s[0] ^= rng->s[3];

    rng->s[2] ^= t;
    rng->s[3] = xray_rotl(rng->s[3], 45);

    return result;
}


double
xray_rng_uniform(xray_rng_t *rng)
{
    /* the top 53 bits fill a double's mantissa exactly */
    return (double) (xray_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}


/* the low 4 * digits bits of v, digits even, in lowercase hex */

static void
xray_hex64(uint64_t v, unsigned char *out, int digits)
{
    while (digits > 0) {
        digits -= 2;
        memcpy(out + digits, &xray_hex_pairs[(v & 0xff) * 2], 2);
        v >>= 8;
    }
}


void
xray_id_segment(xray_rng_t *rng, unsigned char *out)
{
    xray_hex64(xray_id_segment_value(rng), out, XRAY_ID_LEN);
}


uint64_t
xray_id_segment_value(xray_rng_t *rng)
{
    uint64_t  v;

    do {
        v = xray_rng_next(rng);
    } while (v == 0);

    return v;
}


void
xray_id_hex(uint64_t id, unsigned char *out)
{
    xray_hex64(id, out, XRAY_ID_LEN);
}


void
xray_id_trace(xray_rng_t *rng, time_t now, unsigned char *out)
{
    out[0] = '1';
    out[1] = '-';
    xray_hex64((uint64_t) now & 0xffffffff, out + 2, 8);
    out[10] = '-';
    xray_hex64(xray_rng_next(rng) & 0xffffffff, out + 11, 8);
    xray_hex64(xray_rng_next(rng), out + 19, 16);
}
