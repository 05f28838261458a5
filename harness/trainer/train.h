/* train: the trainer of one run: the student, its EMA teacher, AdamW with warm-up and cosine
 * decay, gradient clipping, and the steps of every method (caopd, sdft, sft) and of the
 * supervised base stage, with the per-step log. Exact definitions: docs/trainer.md. */
#ifndef CAOPD_TRAIN_H
#define CAOPD_TRAIN_H

#include <stdint.h>

#include "tasks/basedata.h"
#include "harness/model/gpt.h"
#include "harness/trainer/opd.h"
#include "tasks/task.h"
#include "harness/torch/tw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum train_method {
    TRAIN_METHOD_CAOPD = 0, /* on-policy self-distillation with the three replacements */
    TRAIN_METHOD_SDFT = 1,  /* the same loop without replacement */
    TRAIN_METHOD_SFT = 2,   /* supervised on demonstrations "{answer}\nConfidence: 1.00" */
} train_method;
#define TRAIN_N_METHODS 3
const char *train_method_name(train_method m);                   /* "caopd", "sdft", "sft" */
int train_method_from_name(const char *name, train_method *out); /* 0 or -1 */

typedef struct train_params {
    train_method method;
    opd_params opd;     /* K, temperature, max_new, teacher mode, loss; replace follows method */
    int batch_prompts;  /* prompts per step (16) */
    int total_steps;    /* length of the schedule (cosine reaches min_lr here) */
    int warmup_steps;   /* linear warm-up from lr/warmup to lr (10) */
    double lr;          /* peak learning rate (1e-4... set per experiment; default 3e-4) */
    double min_lr_frac; /* final lr = min_lr_frac * lr (0.1) */
    double beta1, beta2, eps, weight_decay; /* AdamW (0.9, 0.95, 1e-8, 0.01) */
    double clip_norm;                       /* global gradient-norm clip (1.0); <= 0: none */
    double ema_alpha;   /* teacher <- alpha * student + (1 - alpha) * teacher (0.01) */
    double replay_frac; /* fraction of each batch drawn from earlier domains (0) */
} train_params;

train_params train_params_default(void);

/* Learning rate at step s (0-based): lr * (s + 1) / warmup for s < warmup, then cosine from
 * lr down to min_lr_frac * lr at total_steps (held there after). */
double train_lr_at(const train_params *p, int64_t step);

/* One log row per optimizer step. */
typedef struct train_log {
    int64_t step; /* 0-based optimizer step of the trainer */
    double lr;
    double grad_norm; /* before clipping */
    opd_stats s;      /* loss, KL, entropies, P_acc, accuracy, format adherence, tokens */
    double step_s;    /* wall seconds of the whole step */
    double tok_s;     /* (new tokens + trained target tokens) / step_s */
} train_log;

typedef struct trainer trainer;

/* A trainer for student (borrowed; must outlive it). Makes the EMA teacher (a copy of the
 * student in the same context, owned), the optimizer and a generator seeded with seed. */
tw_status train_new(gpt *student, train_params p, uint64_t seed, trainer **out);
void train_free(trainer *t); /* NULL is a no-op */
gpt *train_student(const trainer *t);
gpt *train_teacher(const trainer *t);
int64_t train_step_count(const trainer *t);
/* Replaces the parameters (the schedule restarts at step 0 for the new stage; optimizer
 * moments are kept). */
void train_set_params(trainer *t, train_params p);
/* Names the stage in error messages ("base", "add", ...); copied. */
void train_set_stage(trainer *t, const char *stage);
/* teacher <- student. */
tw_status train_sync_teacher(trainer *t);
/* The message of the last failure (on the student's context). */
const char *train_errmsg(const trainer *t);

/* Data-parallel training (docs/distributed.md): d (borrowed, must outlive t; NULL or a group of
 * one: a single process) is the group of processes that each run this trainer on the same
 * model. Every step then takes the global batch it is given (the same on every process), trains
 * this process's equal share of it (a batch that does not divide by the world size is a
 * TW_ERR_ARG), and all-reduces the gradients to the gradient of the global batch's loss (the
 * mean over all of its loss rows), so clipping, AdamW and the EMA make the same update on every
 * process as one process on the whole batch would, up to float rounding. Rollouts of a prompt
 * are drawn as one process would draw them (opd_batch_sample_part); the step's statistics in the
 * log are those of the global batch (timings: means over the processes). The processes must
 * start from the same parameters and generator state (the scheduler broadcasts them). */
void train_set_dist(trainer *t, tw_dist *d);

/* One step of the configured on-policy method (caopd or sdft) on prompts ex[0..n) (the global
 * batch, under data parallelism):
 * sample, verify, replace, score, loss, backward, clip, AdamW, EMA. A non-finite loss or
 * gradient norm stops with TW_ERR_STATE naming the stage and step, and changes nothing
 * (the last good state is kept). log may be NULL. */
tw_status train_step_opd(trainer *t, const task_example *ex, int n, train_log *log);

/* One supervised step: the student learns target[i] after prompt[i] (texts, borrowed), by
 * the per-row mean cross-entropy over target tokens + EOS, averaged over rows. Same
 * optimizer, clipping, EMA and NaN rule. */
tw_status train_step_sup(trainer *t, const char *const *prompts, const char *const *targets, int n,
                         train_log *log);

/* One step of the configured method on the next batch of domain d's train stream (gen,
 * borrowed) with replay: round(replay_frac * batch) prompts come from replay generators
 * (round-robin; none when n_replay == 0). */
tw_status train_step_domain(trainer *t, task_gen *gen, task_gen *const *replay, int n_replay,
                            train_log *log);

/* One base-stage step: batch_prompts pairs from g. */
tw_status train_step_base(trainer *t, base_gen *g, train_log *log);

/* ---- state for checkpoints (exact resume) ---------------------------------------------- */

/* The optimizer (AdamW moments and step count) and the rollout generator, owned by t; for
 * saving and restoring a checkpoint (tw_adamw_moments, tw_rng_get_state/set_state). */
tw_adamw *train_optimizer(trainer *t);
tw_rng *train_rng(trainer *t);
/* Steps into the current schedule (train_set_params restarts it at 0). */
int64_t train_sched_count(const trainer *t);
/* Restores both counters (after train_set_params, which zeroes the schedule's). */
void train_set_counters(trainer *t, int64_t step, int64_t sched);

#ifdef __cplusplus
}
#endif

#endif
