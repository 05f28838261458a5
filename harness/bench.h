/* bench: throughput of the pieces of a training step on this machine, measured side by side
 * in one run (matrix multiply, GPT training step, KV-cached vs recomputed decoding). */
#ifndef CAOPD_BENCH_H
#define CAOPD_BENCH_H

#include "gpt.h"

typedef struct bench_params {
    gpt_config model;
    int train_batch;  /* sequences per training step */
    int train_seq;    /* tokens per sequence (batch x seq = tokens per step) */
    int train_steps;  /* measured steps (after one warm-up); the median is reported */
    int decode_batch; /* rows decoded together */
    int decode_prompt; /* prompt tokens per row */
    int decode_new;   /* new tokens per row */
    int decode_reps;  /* measured repetitions of each decoding mode; the median is reported */
    int matmul_n;     /* square matrix size for the reference matmul rate */
    int threads;      /* cores to use (tw_set_num_threads: intra-op threads, BLAS 1) */
    int blas_threads; /* 0: the tw_set_num_threads policy; >= 1: override BLAS threads */
    uint64_t seed;
} bench_params;

/* Width 128, 4 layers, 4 heads, 16 x 256 = 4096 tokens per step, 5 steps; decoding 128 rows
 * x (32 prompt + 24 new) tokens; matmul 1024; all cores; seed 1. */
bench_params bench_default(void);

typedef struct bench_result {
    double matmul_gflops;    /* float32 n x n x n matmul through libtorch on `threads` BLAS
                                threads (the machine's rate), median */
    double matmul_gflops_run; /* the same under the thread setting of the runs below */
    double train_step_s;     /* median wall time of forward + backward + clip + AdamW */
    double train_tok_s;      /* tokens per step / train_step_s */
    double train_gflops;     /* 3 x forward matmul FLOPs per step / train_step_s */
    double train_flops_per_step;
    double decode_tok_s;     /* new tokens / s with the KV cache */
    double recompute_tok_s;  /* new tokens / s recomputing the whole sequence each step */
    int64_t params;
} bench_result;

/* Progress lines go to `progress` when not NULL (stage names, one per line). Errors: a status
 * with the message in err. */
int bench_run(bench_params p, bench_result *out, void (*progress)(const char *line, void *arg),
              void *arg, char *err, size_t errlen);

#endif
