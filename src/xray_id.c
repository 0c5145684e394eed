/*
 * Trace and segment ids: see xray_id.h.
 */

#include <string.h>

#include <openssl/rand.h>

#include "xray_id.h"


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
    return xray_rng_step(rng);
}


double
xray_rng_uniform(xray_rng_t *rng)
{
    /* the top 53 bits fill a double's mantissa exactly */
    return (double) (xray_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}


/*
 * u * 2^-53 < rate, u an integer below 2^53, is u < rate * 2^53 (scaling by
 * a power of two is exact), that is u < the ceiling of rate * 2^53
 */

uint64_t
xray_rng_threshold(double rate)
{
    double    x;
    uint64_t  t;

    if (!(rate > 0.0)) {
        return 0;
    }

    if (rate >= 1.0) {
        return (uint64_t) 1 << 53;
    }

    x = rate * 9007199254740992.0;
    t = (uint64_t) x;

    return ((double) t < x) ? t + 1 : t;
}


/*
 * The 8 digits of a, then the 8 of b, in lowercase hex, the most
 * significant first, each number in a 64-bit lane of one vector (GCC and
 * clang vector extension: SSE2, NEON, or word operations elsewhere): each
 * nibble spread to a byte of its own (the most significant in the lowest),
 * '0' added to each, and 'a' - '0' - 10 (39) more to those of 10 and
 * above, whose + 6 carries into bit 4.  The lowest byte of a lane is its
 * first digit: stored as it is on a little-endian machine.
 */

typedef uint64_t  xray_v2u64_t __attribute__((vector_size(16)));

static inline void
xray_hex_2x32(uint32_t a, uint32_t b, unsigned char *out)
{
    xray_v2u64_t  x, ten;
#if (defined __BYTE_ORDER__ && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    uint64_t      w[2];
#endif

    x = (xray_v2u64_t) { a, b };

    x = ((x & 0x000000000000ffffULL) << 32) | (x >> 16);
    x = ((x & 0x000000ff000000ffULL) << 16)
        | ((x >> 8) & 0x000000ff000000ffULL);
    x = ((x & 0x000f000f000f000fULL) << 8)
        | ((x >> 4) & 0x000f000f000f000fULL);

    ten = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
    x += 0x3030303030303030ULL + (ten << 5) + (ten << 3) - ten;

#if (defined __BYTE_ORDER__ && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    w[0] = __builtin_bswap64(x[0]);
    w[1] = __builtin_bswap64(x[1]);
    memcpy(out, w, sizeof(w));
#else
    memcpy(out, &x, sizeof(xray_v2u64_t));
#endif
}


static inline void
xray_hex64(uint64_t v, unsigned char *out)
{
    xray_hex_2x32((uint32_t) (v >> 32), (uint32_t) v, out);
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
    unsigned char  hex[16];

    /* the epoch seconds and 32 random bits, then 64 more */
    xray_hex_2x32((uint32_t) now, (uint32_t) xray_rng_step(rng), hex);

    out[0] = '1';
    out[1] = '-';
    memcpy(out + 2, hex, 8);
    out[10] = '-';
    memcpy(out + 11, hex + 8, 8);
    xray_hex64(xray_rng_step(rng), out + 19);
}
