/*
 * Trace and segment ids.
 *
 * Each worker process owns one generator, seeded from OpenSSL's RAND_bytes
 * after fork, so workers never share a sequence.  xoshiro256** is fast
 * enough to spend nothing on the request path; the seed, not the generator,
 * is what keeps ids unpredictable across processes and restarts.
 */

#ifndef XRAY_ID_H
#define XRAY_ID_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "xray_types.h"


typedef struct {
    uint64_t  s[4];
} xray_rng_t;


/* returns 0, or -1 when the system has no entropy to give */
int xray_rng_seed(xray_rng_t *rng);

/* seeds from a fixed value, for tests */
void xray_rng_seed_fixed(xray_rng_t *rng, uint64_t seed);

uint64_t xray_rng_next(xray_rng_t *rng);

/* uniform in [0, 1) */
double xray_rng_uniform(xray_rng_t *rng);

/*
 * A draw of probability rate with no call and no floating point:
 * xray_rng_below(rng, xray_rng_threshold(rate)) is 1 exactly when
 * xray_rng_uniform(rng) < rate would be, and takes the same step of the
 * generator.  rate from 0 to 1.
 */
uint64_t xray_rng_threshold(double rate);

static inline uint64_t
xray_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


/* xoshiro256**: one step */

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


static inline int
xray_rng_below(xray_rng_t *rng, uint64_t threshold)
{
    /* the 53 bits xray_rng_uniform() makes its double of */
    return (xray_rng_step(rng) >> 11) < threshold;
}

/* XRAY_ID_LEN lowercase hex digits, never all zero */
void xray_id_segment(xray_rng_t *rng, unsigned char *out);

/* the same id as a number (never 0), and the number as those digits */
uint64_t xray_id_segment_value(xray_rng_t *rng);
void xray_id_hex(uint64_t id, unsigned char *out);

/* XRAY_TRACE_ID_LEN bytes: 1-<8 hex epoch seconds>-<24 random hex> */
void xray_id_trace(xray_rng_t *rng, time_t now, unsigned char *out);

#endif /* XRAY_ID_H */
