/* evaluate: greedy decoding of a model over prompts or a task split, with per-sample answer,
 * confidence, correctness, format failure and the model's mean entropy over its answer and
 * confidence tokens. Metrics over the samples are analysis/metrics.h's business. */
#ifndef CAOPD_EVALUATE_H
#define CAOPD_EVALUATE_H

#include <stdint.h>

#include "gpt.h"
#include "task.h"
#include "tw.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EVAL_TEXT_CAP 128 /* a completion, NUL included (max_new must stay below it) */

/* One evaluated sample. Plain value. */
typedef struct eval_sample {
    char completion[EVAL_TEXT_CAP]; /* greedy output up to EOS (specials dropped) */
    char answer[EVAL_TEXT_CAP];     /* the parsed answer (text before "Confidence:", trimmed) */
    double confidence;              /* parsed, in [0, 1]; 0 on a format failure */
    int correct;                    /* the answer matches the example's (eval_examples only) */
    int format_failure;
    double answer_entropy; /* mean entropy (nats) of the model's next-token distribution over
                              its answer tokens; 0 when there are none */
    double conf_entropy;   /* the same over its confidence-number tokens */
    int n_tokens;          /* completion tokens (EOS excluded) */
} eval_sample;

typedef struct eval_params {
    int max_new; /* tokens per completion (24) */
    int batch;   /* prompts decoded together (64) */
} eval_params;

eval_params eval_params_default(void);

/* Greedy completions of prompts[0..n) (texts; BOS is added) into out[0..n). correct is 0. */
tw_status eval_generate(gpt *m, const char *const *prompts, int n, eval_params p,
                        eval_sample *out);

/* The student prompts of ex[0..n), verified against their answers. */
tw_status eval_examples(gpt *m, const task_example *ex, int n, eval_params p, eval_sample *out);

/* n examples of (domain, split, severity) drawn with seed, evaluated; ex_out (may be NULL)
 * receives the examples. */
tw_status eval_split(gpt *m, task_domain d, task_split s, int severity, uint64_t seed, int n,
                     eval_params p, eval_sample *out, task_example *ex_out);

#ifdef __cplusplus
}
#endif

#endif
