/* test_rng.c: the PRNG matches independent reference values (splitmix64, xoshiro256**,
 * our seeding and hash, computed with a separate Python implementation), and its
 * bounded draws stay in range and are roughly uniform. */
#include <stdint.h>

#include "tests/check.h"
#include "tasks/rng.h"

int main(void) {
    /* splitmix64 from 0: the published first outputs. */
    uint64_t x = 0;
    CHECK(rng_splitmix64(&x) == 0xe220a8397b1dcdafULL);
    CHECK(rng_splitmix64(&x) == 0x6e789e6aa1b965f4ULL);
    CHECK(rng_splitmix64(&x) == 0x06c45d188009454fULL);

    /* xoshiro256** from state {1,2,3,4}. */
    rng_state r = {{1, 2, 3, 4}};
    const uint64_t want[] = {11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL,
                             1216172134540287360ULL};
    for (int i = 0; i < 5; i++)
        CHECK_MSG(rng_next(&r) == want[i], "xoshiro output %d", i);

    /* Seeding (seed 42, stream 7) and the hash, from the Python reference. */
    rng_seed(&r, 42, 7);
    CHECK(rng_next(&r) == 0x460ae4977938c6ecULL);
    CHECK(rng_next(&r) == 0x6eac4d305a650947ULL);
    CHECK(rng_next(&r) == 0x7a89362b5fd05f14ULL);
    CHECK(rng_hash("", 0) == 0xf52a15e9a9b5e89bULL);
    CHECK(rng_hash("a", 1) == 0x02c0bdbf481420f8ULL);
    CHECK(rng_hash("12+34=", 6) == 0x447d09a14790eed4ULL);

    /* Streams differ by seed and by stream id. */
    rng_state a, b, c;
    rng_seed(&a, 1, 0);
    rng_seed(&b, 2, 0);
    rng_seed(&c, 1, 1);
    uint64_t va = rng_next(&a), vb = rng_next(&b), vc = rng_next(&c);
    CHECK(va != vb && va != vc && vb != vc);

    /* Copying the state snapshots the stream. */
    rng_seed(&a, 5, 5);
    rng_next(&a);
    b = a;
    for (int i = 0; i < 10; i++)
        CHECK(rng_next(&a) == rng_next(&b));

    /* Bounded draws: in range, each value of [0,7) near 1/7. */
    rng_seed(&r, 3, 0);
    int counts[7] = {0};
    int in_range = 1;
    for (int i = 0; i < 70000; i++) {
        uint64_t v = rng_below(&r, 7);
        if (v >= 7)
            in_range = 0;
        else
            counts[v]++;
    }
    CHECK(in_range);
    for (int i = 0; i < 7; i++)
        CHECK_MSG(counts[i] > 9500 && counts[i] < 10500, "value %d drawn %d times", i, counts[i]);
    int lo_seen = 0, hi_seen = 0, range_ok = 1;
    for (int i = 0; i < 10000; i++) {
        int64_t v = rng_range(&r, -3, 3);
        range_ok &= v >= -3 && v <= 3;
        lo_seen |= v == -3;
        hi_seen |= v == 3;
    }
    CHECK(range_ok && lo_seen && hi_seen);
    CHECK(rng_below(&r, 1) == 0);
    CHECK(rng_below(&r, 0) == 0);
    double u_min = 1, u_max = 0;
    for (int i = 0; i < 10000; i++) {
        double u = rng_unit(&r);
        u_min = u < u_min ? u : u_min;
        u_max = u > u_max ? u : u_max;
    }
    CHECK(u_min >= 0.0 && u_min < 0.01 && u_max < 1.0 && u_max > 0.99);
    return check_report("test_rng");
}
