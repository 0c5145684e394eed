/*
 * Trace and segment ids: see xray_id.h.
 */

#include <string.h>

#include <openssl/rand.h>

#include "xray_id.h"


static const char  xray_hex[] = "0123456789abcdef";


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


static void
xray_hex64(uint64_t v, unsigned char *out, int digits)
{
    while (digits-- > 0) {
        out[digits] = xray_hex[v & 0xf];
        v >>= 4;
    }
}


void
xray_id_segment(xray_rng_t *rng, unsigned char *out)
{
    uint64_t  v;

    do {
        v = xray_rng_next(rng);
    } while (v == 0);

    xray_hex64(v, out, XRAY_ID_LEN);
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
