/* bench: throughput of the pieces of a training step on this machine, measured side by side
 * in one run (matrix multiply, GPT training step, KV-cached vs recomputed decoding, and a
 * whole CaOPD step of the trainer with its rollout, teacher and student parts). */
#ifndef CAOPD_BENCH_H
#define CAOPD_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "tasks/basedata.h"
#include "harness/model/gpt.h"
#include "tasks/task.h"
#include "harness/torch/tw.h"

typedef struct bench_params {
    gpt_config model;
    int train_batch;   /* sequences per training step */
    int train_seq;     /* tokens per sequence (batch x seq = tokens per step) */
    int train_steps;   /* measured steps (after one warm-up); the median is reported */
    int decode_batch;  /* rows decoded together */
    int decode_prompt; /* prompt tokens per row */
    int decode_new;    /* new tokens per row */
    int decode_reps;   /* measured repetitions of each decoding mode; the median is reported */
    int matmul_n;      /* square matrix size for the reference matmul rate */
    int threads;       /* cores to use (tw_set_num_threads: intra-op threads, BLAS 1) */
    int blas_threads;  /* 0: the tw_set_num_threads policy; >= 1: override BLAS threads */
    uint64_t seed;
    /* The CaOPD step: train_step_opd of a trainer (train_params_default: method caopd,
     * teacher mode demo, temperature 1, forward KL, skip 3, clip 1, AdamW, EMA 0.01) on a
     * fresh model of `model`, seeded with seed. Every step trains on the same batch: the
     * first opd_prompts examples of opd_domain's train stream (seed `seed`). */
    int opd_prompts;        /* prompts per step (16) */
    int opd_k;              /* rollouts per prompt, K (8), 1..OPD_MAX_K */
    int opd_new;            /* tokens sampled per rollout (24) */
    int opd_steps;          /* measured steps after one warm-up (3); 0: not measured */
    task_domain opd_domain; /* where the prompts come from (add) */
    int opd_only;           /* 1: measure only the matmul rates and the CaOPD step */
    /* The base-stage step: train_step_base of a trainer (train_params_default, lr 3e-3) on a
     * fresh model of `model`, base_batch pairs per step from base_gen(base, seed). */
    int base_steps;   /* measured steps after one warm-up (0: not measured) */
    int base_batch;   /* pairs per step (32) */
    base_params base; /* the mixture (experiments/bases/base-small.json's) */
    int base_only;    /* 1: measure only the matmul rates and the base-stage step */
    /* 1: after the timed steps, run as many again with the tw profile on (tw_prof_enable) and
     * report where their time went (bench_profile); the timed steps are never profiled. */
    int profile;
} bench_params;

/* Width 128, 4 layers, 4 heads, 16 x 256 = 4096 tokens per step, 5 steps; decoding 128 rows
 * x (32 prompt + 24 new) tokens; matmul 1024; CaOPD step 16 prompts x K 8 x 24 new tokens
 * from `add`, 3 steps; base step 32 pairs of base-small's mixture, 3 steps (measured only under
 * base_only); no profile; all cores; seed 1. */
bench_params bench_default(void);

/* Where the profiled steps' time went, per step (means over the profiled steps). Phases are
 * opd.h's OPD_PHASE_* (a base step has only the train and rest phases). */
typedef struct bench_profile {
    int measured;                   /* 0 when profile is off */
    int steps;                      /* profiled steps */
    double step_s;                  /* mean wall seconds of a profiled step (the profile's own
                                       cost included: compare with the unprofiled median) */
    double phase_s[TW_PROF_PHASES]; /* wall seconds of each phase (the rest: step - others) */
    tw_prof per_step;               /* calls and seconds per phase and kind, FLOPs per phase */
    double flops;                   /* matmul FLOPs of a step (all phases) */
    double flop_limit_s;            /* flops / the matmul rate under the run's threads: the step
                                       if it ran at the rate of one large matmul */
    double op_calls;                /* tw calls + autograd nodes per step */
} bench_profile;

/* One CaOPD step, measured. Token counts are per step; they are counts of the step's work,
 * not of what an implementation computes (a context shared by K rows counts once), so a
 * reference implementation that recomputes shared prefixes uses the same numerators and its
 * rates compare directly (tests/reference/bench_caopd_step.py). Times are medians over the
 * measured steps; every rate is a count divided by the median time of its part. */
typedef struct bench_opd {
    int measured; /* 0 when opd_steps is 0 (the rest is then 0) */
    int prompts, k, max_new, steps;
    int64_t prompt_tokens;         /* student prompt tokens, BOS included, once per prompt */
    int64_t teacher_prompt_tokens; /* teacher context tokens, BOS included, once per context
                                      (mode demo: one context per prompt) */
    int64_t teacher_contexts;      /* distinct teacher contexts per step */
    int64_t new_tokens;            /* tokens sampled: prompts x K x max_new (nominal: a row
                                      that has emitted EOS still counts, as in the train log) */
    int64_t train_tokens;          /* target tokens of the trained rows (revised completion +
                                      EOS per row); mean over the measured steps, rounded */
    int64_t teacher_tokens;        /* teacher_prompt_tokens + train_tokens */
    int64_t student_tokens;        /* prompt_tokens + train_tokens */
    double step_s;                 /* median wall seconds of train_step_opd (sample .. EMA) */
    double rollout_s;              /* median seconds of sampling (prefill + decoding, no grad) */
    double teacher_s;              /* median seconds of the teacher's forward pass (no grad) */
    double train_s;                /* median seconds of the student's forward, loss and backward */
    double other_s;                /* median of step - rollout - teacher - train: verification,
                                      replacement, batch building, logged entropies, clip, AdamW, EMA */
    double rollout_tok_s;          /* new_tokens / rollout_s */
    double teacher_tok_s;          /* teacher_tokens / teacher_s */
    double train_tok_s;            /* student_tokens / train_s */
    double step_tok_s;  /* (new_tokens + train_tokens) / step_s (the train_log's tok_s) */
    bench_profile prof; /* under bench_params.profile */
} bench_opd;

/* One base-stage step, measured (train_step_base). */
typedef struct bench_base {
    int measured; /* 0 when not measured */
    int batch, steps;
    int64_t
        prompt_tokens;    /* prompt tokens (BOS included) of a step, mean over the measured steps */
    int64_t train_tokens; /* target tokens (+ EOS) of a step, mean */
    double step_s;        /* median wall seconds of train_step_base */
    double tok_s;         /* (prompt_tokens + train_tokens) / step_s */
    bench_profile prof;   /* under bench_params.profile */
} bench_base;

typedef struct bench_result {
    double matmul_gflops;     /* float32 n x n x n matmul through libtorch on `threads` BLAS
                                 threads (the machine's rate), median */
    double matmul_gflops_run; /* the same under the thread setting of the runs below */
    int train_measured;       /* 0 under opd_only: the train_* and decode fields are 0 */
    double train_step_s;      /* median wall time of forward + backward + clip + AdamW */
    double train_tok_s;       /* tokens per step / train_step_s */
    double train_gflops;      /* 3 x forward matmul FLOPs per step / train_step_s */
    double train_flops_per_step;
    double decode_tok_s;    /* new tokens / s with the KV cache */
    double recompute_tok_s; /* new tokens / s recomputing the whole sequence each step */
    int64_t params;
    bench_opd opd;   /* the CaOPD step */
    bench_base base; /* the base-stage step */
} bench_result;

/* Progress lines go to `progress` when not NULL (stage names, one per line). Errors: a status
 * with the message in err. */
int bench_run(bench_params p, bench_result *out, void (*progress)(const char *line, void *arg),
              void *arg, char *err, size_t errlen);

#endif
