/* rng.h: deterministic pseudo-random numbers for the task generators.
 * xoshiro256** seeded through splitmix64, integer-only, so the same (seed, stream)
 * gives the same numbers on every machine and compiler. Never uses rand(). */
#ifndef CAOPD_TASKS_RNG_H
#define CAOPD_TASKS_RNG_H

#include <stddef.h>
#include <stdint.h>

/* The whole generator state. A plain value: copying it snapshots the stream,
 * assigning it back resumes the stream exactly. Not shared between threads. */
typedef struct {
    uint64_t s[4];
} rng_state;

/* splitmix64 (Steele, Lea, Flood 2014): advances *x by the golden gamma and returns
 * the mixed value. With *x = 0 the first three outputs are 0xe220a8397b1dcdaf,
 * 0x6e789e6aa1b965f4, 0x06c45d188009454f. */
uint64_t rng_splitmix64(uint64_t *x);

/* The splitmix64 output function alone (a bijective 64-bit mixer). */
uint64_t rng_mix64(uint64_t x);

/* Seeds the state for one independent stream: x = mix64(seed) ^ mix64(stream ^
 * 0xd1b54a32d192ed03), then s[0..3] are four successive splitmix64(&x) outputs.
 * Different (seed, stream) pairs give unrelated streams. */
void rng_seed(rng_state *r, uint64_t seed, uint64_t stream);

/* xoshiro256** (Blackman, Vigna 2018): the next 64 uniform bits. */
uint64_t rng_next(rng_state *r);

/* Uniform integer in [0, n), without modulo bias (rejection). n must be > 0;
 * n == 0 returns 0. */
uint64_t rng_below(rng_state *r, uint64_t n);

/* Uniform integer in [lo, hi], both included. Requires lo <= hi. */
int64_t rng_range(rng_state *r, int64_t lo, int64_t hi);

/* Uniform double in [0, 1) with 53 random bits. */
double rng_unit(rng_state *r);

/* 64-bit hash of a byte string: FNV-1a 64 (offset 0xcbf29ce484222325, prime
 * 0x100000001b3) followed by rng_mix64. Stable across machines; used for splits. */
uint64_t rng_hash(const void *data, size_t len);

#endif
