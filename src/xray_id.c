/*
 * Trace and segment ids: see xray_id.h.
 */

#include <string.h>

#include <openssl/rand.h>

#include "xray_id.h"


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


/* xoshiro256**; a static inline step: the ids take it with no call */

static inline uint64_t
xray_rng_step(xray_rng_t *rng)
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


uint64_t
xray_rng_next(xray_rng_t *rng)
{
    return xray_rng_step(rng);
}


double
xray_rng_uniform(xray_rng_t *rng)
{
    /* the top 53 bits fill a double's mantissa exactly */
    return (double) (xray_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}


/*
 * The 8 digits of v in lowercase hex, the most significant first, a word
 * at a time: each nibble spread to a byte of its own (the most significant
 * in the lowest), '0' added to each, and 'a' - '0' - 10 more to those of
 * 10 and above, whose + 6 carries into bit 4.  The lowest byte is the
 * first digit: stored as it is on a little-endian machine.
 */

static inline void
xray_hex32(uint32_t v, unsigned char *out)
{
    uint64_t  x, ten;

    x = ((uint64_t) (v & 0xffff) << 32) | (v >> 16);
    x = ((x & 0x000000ff000000ffULL) << 16)
        | ((x >> 8) & 0x000000ff000000ffULL);
    x = ((x & 0x000f000f000f000fULL) << 8)
        | ((x >> 4) & 0x000f000f000f000fULL);

    ten = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
    x += 0x3030303030303030ULL + ten * ('a' - '0' - 10);

#if (defined __BYTE_ORDER__ && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    x = __builtin_bswap64(x);
#endif

    memcpy(out, &x, sizeof(uint64_t));
}


static inline void
xray_hex64(uint64_t v, unsigned char *out)
{
    xray_hex32((uint32_t) (v >> 32), out);
    xray_hex32((uint32_t) v, out + 8);
}


static inline uint64_t
xray_id_value(xray_rng_t *rng)
{
    uint64_t  v;

    do {
        v = xray_rng_step(rng);
    } while (v == 0);

    return v;
}


void
xray_id_segment(xray_rng_t *rng, unsigned char *out)
{
    xray_hex64(xray_id_value(rng), out);
}


uint64_t
xray_id_segment_value(xray_rng_t *rng)
{
    return xray_id_value(rng);
}


void
xray_id_hex(uint64_t id, unsigned char *out)
{
    xray_hex64(id, out);
}


void
xray_id_trace(xray_rng_t *rng, time_t now, unsigned char *out)
{
    out[0] = '1';
    out[1] = '-';
    xray_hex32((uint32_t) now, out + 2);
    out[10] = '-';
    xray_hex32((uint32_t) xray_rng_step(rng), out + 11);
    xray_hex64(xray_rng_step(rng), out + 19);
}
