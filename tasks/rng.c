/* rng.c: splitmix64 seeding, xoshiro256** stream, unbiased ranges and a stable
 * string hash. See rng.h for the exact definitions. */
#include "tasks/rng.h"

uint64_t rng_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rng_splitmix64(uint64_t *x) {
    *x += 0x9e3779b97f4a7c15ULL;
    return rng_mix64(*x);
}

void rng_seed(rng_state *r, uint64_t seed, uint64_t stream) {
    uint64_t x = rng_mix64(seed) ^ rng_mix64(stream ^ 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
    /* An all-zero state would be a fixed point; splitmix64 cannot produce four
     * zeros in a row, but keep the guarantee explicit. */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(rng_state *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(rng_state *r, uint64_t n) {
    if (n == 0) return 0;
    /* Values below `threshold` would make some residues more likely: reject them. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold) return x % n;
    }
}

int64_t rng_range(rng_state *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1; /* 0 means the full 64-bit range */
    uint64_t x = span ? rng_below(r, span) : rng_next(r);
    return (int64_t)((uint64_t)lo + x);
}

double rng_unit(rng_state *r) {
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_hash(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return rng_mix64(h);
}
