/*
 * Unit tests of src/xray_id.c: ids are well formed, trace ids carry the
 * time, the generator's output is spread as expected.
 */

#include <stdio.h>
#include <stdlib.h>

#include "tap.h"
#include "xray_header.h"
#include "xray_id.h"


static int
all_hex(const unsigned char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


/* the double next to a positive d, up (dir 1) or down (-1) */

static double
next_double(double d, int dir)
{
    uint64_t  bits;

    memcpy(&bits, &d, sizeof(bits));
    bits += dir;
    memcpy(&d, &bits, sizeof(d));

    return d;
}


/*
 * xray_rng_below(xray_rng_threshold(rate)) decides as uniform() < rate:
 * on the same sequence, for rates on and next to the 2^-53 grid
 */

static void
test_below(void)
{
    int         i, j, same, steps;
    double      rate;
    xray_rng_t  a, b;

    static const double  rates[] = {
        0.0, 0x1p-53, 0x3p-53, 1e-300, 0.01, 0.05, 0.1, 1.0 / 3, 0.5,
        0.999999, 1.0 - 0x1p-53, 1.0
    };

    is_int((int) xray_rng_threshold(0.0), 0, "threshold of 0 is 0");
    is_int((int) xray_rng_threshold(0x3p-53), 3,
           "threshold of 3 * 2^-53 is 3");
    is_int((int) xray_rng_threshold(next_double(0x3p-53, 1)), 4,
           "threshold just above 3 * 2^-53 is 4");
    is_int((int) xray_rng_threshold(next_double(0x3p-53, -1)), 3,
           "threshold just below 3 * 2^-53 is 3");
    ok(xray_rng_threshold(0.5) == (uint64_t) 1 << 52,
       "threshold of 0.5 is 2^52");
    ok(xray_rng_threshold(1.0) == (uint64_t) 1 << 53,
       "threshold of 1 is 2^53: every draw is below");
    ok(xray_rng_threshold(1.0 - 0x1p-53) == ((uint64_t) 1 << 53) - 1,
       "threshold of 1 - 2^-53 is 2^53 - 1");

    for (i = 0; i < (int) (sizeof(rates) / sizeof(rates[0])); i++) {
        rate = rates[i];
        xray_rng_seed_fixed(&a, 7 + i);
        xray_rng_seed_fixed(&b, 7 + i);
        same = 1;

        for (j = 0; j < 100000; j++) {
            same &= ((xray_rng_uniform(&a) < rate)
                     == xray_rng_below(&b, xray_rng_threshold(rate)));
        }

        /* and the two generators took the same steps */
        same &= (xray_rng_next(&a) == xray_rng_next(&b));

        ok(same, "below() decides as uniform() < %.17g", rate);
    }

    /* a draw on the grid's edge: u = t - 1 is below, u = t is not */
    steps = 0;
    xray_rng_seed_fixed(&a, 99);

    for (j = 0; j < 4; j++) {
        b = a;
        rate = (double) (xray_rng_next(&b) >> 11) * 0x1p-53;
        b = a;
        same = !xray_rng_below(&b, xray_rng_threshold(rate));
        b = a;
        same &= xray_rng_below(&b, xray_rng_threshold(next_double(rate, 1)));
        b = a;
        same &= ((xray_rng_uniform(&b) < rate) == 0);
        steps += same;
        (void) xray_rng_next(&a);
    }

    is_int(steps, 4, "a draw equal to the rate is not below it");
}


int
main(void)
{
    int            i, k, distinct, in_range, below_half, bits[64], ok_bits;
    double         u;
    char           hex[XRAY_TRACE_ID_LEN + 1];
    uint64_t       v, w, prev;
    xray_rng_t     rng, a, b;
    unsigned char  id[XRAY_ID_LEN], id2[XRAY_ID_LEN];
    unsigned char  trace[XRAY_TRACE_ID_LEN];

    ok(xray_rng_seed(&rng) == 0, "RAND_bytes seeds the generator");

    xray_id_segment(&rng, id);
    ok(all_hex(id, XRAY_ID_LEN), "segment id is 16 lowercase hex digits");
    xray_id_segment(&rng, id2);
    ok(memcmp(id, id2, XRAY_ID_LEN) != 0, "two segment ids differ");

    xray_id_trace(&rng, (time_t) 0x5759e988, trace);
    ok(xray_trace_id_valid(trace, XRAY_TRACE_ID_LEN),
       "trace id is valid by the header parser's rules");
    is_mem(trace, 11, "1-5759e988-", "trace id carries the epoch seconds");
    ok(all_hex(trace + 11, 24), "24 random hex digits");

    xray_id_trace(&rng, (time_t) 0x1ffffffffLL, trace);
    is_mem(trace, 11, "1-ffffffff-", "epoch beyond 32 bits keeps 8 digits");

    xray_rng_seed_fixed(&a, 42);
    xray_rng_seed_fixed(&b, 42);
    ok(xray_rng_next(&a) == xray_rng_next(&b), "a fixed seed repeats");

    /* ids are the generator's numbers in hex, most significant digit first */
    ok_bits = 1;

    for (i = 0; i < 1000; i++) {
        v = xray_rng_next(&b);
        xray_id_segment(&a, id);
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long) v);
        ok_bits &= (v == 0 || memcmp(id, hex, XRAY_ID_LEN) == 0);

        v = xray_rng_next(&b);
        w = xray_rng_next(&b);
        xray_id_trace(&a, (time_t) 0x5759e988, trace);
        snprintf(hex, sizeof(hex), "1-5759e988-%08llx%016llx",
                 (unsigned long long) (v & 0xffffffff),
                 (unsigned long long) w);
        ok_bits &= (memcmp(trace, hex, XRAY_TRACE_ID_LEN) == 0);
    }

    ok(ok_bits, "ids are the generator's numbers in lowercase hex");

    /* xray_id_hex(): the digits 9 and a (the edge of the letters), 0, f */
    xray_id_hex(0, id);
    is_mem(id, XRAY_ID_LEN, "0000000000000000", "0 in hex");
    xray_id_hex(~(uint64_t) 0, id);
    is_mem(id, XRAY_ID_LEN, "ffffffffffffffff", "all ones in hex");
    xray_id_hex(0x0123456789abcdefULL, id);
    is_mem(id, XRAY_ID_LEN, "0123456789abcdef", "every digit, ascending");
    xray_id_hex(0xfedcba9876543210ULL, id);
    is_mem(id, XRAY_ID_LEN, "fedcba9876543210", "every digit, descending");
    xray_id_hex(0x9a9a9a9aa9a9a9a9ULL, id);
    is_mem(id, XRAY_ID_LEN, "9a9a9a9aa9a9a9a9", "9 and a side by side");
    xray_id_hex(0x8000000000000001ULL, id);
    is_mem(id, XRAY_ID_LEN, "8000000000000001", "the top and the low bit");

    /* every digit value at every position, against snprintf() */
    ok_bits = 1;

    for (i = 0; i < 16; i++) {
        for (k = 0; k < 16; k++) {
            v = (uint64_t) k << (4 * i);
            v |= 0x5555555555555555ULL & ~((uint64_t) 0xf << (4 * i));
            xray_id_hex(v, id);
            snprintf(hex, sizeof(hex), "%016llx", (unsigned long long) v);
            ok_bits &= (memcmp(id, hex, XRAY_ID_LEN) == 0);
        }
    }

    ok(ok_bits, "each digit value at each position");

    xray_rng_seed_fixed(&a, 0);
    ok(xray_rng_next(&a) != 0 || xray_rng_next(&a) != 0,
       "seed 0 does not give the all-zero state");

    /* uniform(): in [0, 1), about half below 0.5 */
    in_range = 1;
    below_half = 0;
    distinct = 0;
    prev = 0;

    for (i = 0; i < 64; i++) {
        bits[i] = 0;
    }

    for (i = 0; i < 100000; i++) {
        u = xray_rng_uniform(&rng);
        in_range &= (u >= 0.0 && u < 1.0);
        below_half += (u < 0.5);

        v = xray_rng_next(&rng);
        distinct += (v != prev);
        prev = v;

        for (k = 0; k < 64; k++) {
            bits[k] += (int) ((v >> k) & 1);
        }
    }

    ok(in_range, "uniform() stays in [0, 1)");
    ok(below_half > 48500 && below_half < 51500,
       "uniform() below 0.5 about half the time (%d of 100000)", below_half);
    is_int(distinct, 100000, "no output repeats its predecessor");

    ok_bits = 1;
    for (i = 0; i < 64; i++) {
        ok_bits &= (bits[i] > 48500 && bits[i] < 51500);
    }
    ok(ok_bits, "every output bit is set about half the time");

    test_below();

    return done_testing();
}
