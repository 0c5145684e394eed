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

    return done_testing();
}
