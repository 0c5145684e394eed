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

/* XRAY_ID_LEN lowercase hex digits, never all zero */
void xray_id_segment(xray_rng_t *rng, unsigned char *out);

/* the same id as a number (never 0), and the number as those digits */
uint64_t xray_id_segment_value(xray_rng_t *rng);
void xray_id_hex(uint64_t id, unsigned char *out);

/* XRAY_TRACE_ID_LEN bytes: 1-<8 hex epoch seconds>-<24 random hex> */
void xray_id_trace(xray_rng_t *rng, time_t now, unsigned char *out);

#endif /* XRAY_ID_H */
