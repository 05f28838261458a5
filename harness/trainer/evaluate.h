/* evaluate: greedy decoding of a model over prompts or a task split, with per-sample answer,
 * confidence (two readouts: the greedy one parsed from the completion and the expected one
 * over the model's distribution of well-formed confidence strings, docs/trainer.md §6),
 * correctness, format failure and the model's mean entropy over its answer and confidence
 * tokens. Metrics over the samples are analysis/metrics/metrics.h's business. */
#ifndef CAOPD_EVALUATE_H
#define CAOPD_EVALUATE_H

#include <stdint.h>

#include "harness/model/gpt.h"
#include "tasks/task.h"
#include "harness/torch/tw.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EVAL_TEXT_CAP 128 /* a completion, NUL included (max_new must stay below it) */

/* One evaluated sample. Plain value. */
typedef struct eval_sample {
    char completion[EVAL_TEXT_CAP]; /* greedy output up to EOS (specials dropped) */
    char answer[EVAL_TEXT_CAP];     /* the parsed answer (text before "Confidence:", trimmed) */
    double confidence;              /* greedy readout: parsed, in [0, 1]; 0 on a format failure */
    double confidence_expected;     /* expected readout in [0, 1] (docs/trainer.md §6); 0 when
                                       the completion has no "Confidence:" */
    double confidence_format_mass;  /* probability in [0, 1] of the well-formed strings "D.DD"
                                       EOS after the last "Confidence: "; 0 without a marker */
    int correct;                    /* the answer matches the example's (eval_examples only) */
    int format_failure;
    double answer_entropy; /* mean entropy (nats) of the model's next-token distribution over
                              its answer tokens; 0 when there are none */
    double conf_entropy;   /* the same over its confidence-number tokens */
    int n_tokens;          /* completion tokens (EOS excluded) */
} eval_sample;

typedef struct eval_params {
    int max_new;         /* tokens per completion (24) */
    int batch;           /* prompts decoded together (64) */
    int expected;        /* 1: compute the expected readout (default); 0: leave it 0 */
    int expected_mem_mb; /* bound on the expected readout's working memory in MiB (16): it takes
                            as many samples at a time as fit, at least one */
} eval_params;

eval_params eval_params_default(void);

/* ---- the expected readout (docs/trainer.md §6) ---- */

#define EVAL_EXPECTED_STRINGS 1000 /* "D.DD": 10 x 10 x 10 digit strings */

/* Offset in completion[0..len) where the stated number starts: after the LAST "Confidence:"
 * and the spaces and tabs that follow it (the parser's rule). -1 when there is no marker. */
long eval_conf_offset(const char *completion, size_t len);

/* The readout from the digit tree's natural log-probabilities (temperature 1):
 * lp_d1[a] = log p(a), lp_dot[a] = log p('.' | a), lp_d2[a*10+b] = log p(b | a.),
 * lp_d3[(a*10+b)*10+c] = log p(c | a.b), lp_eos[(a*10+b)*10+c] = log p(EOS | a.bc).
 * *mass = sum over the 1000 strings of their probability; *expected = the mass-weighted mean
 * of each string's value as the parser reads it (clipped to [0, 1]: "1.37" is 1.0). A mass
 * that underflows to 0 gives 0 and 0. Pure arithmetic in double precision. */
void eval_expected_combine(const double lp_d1[10], const double lp_dot[10], const double lp_d2[100],
                           const double lp_d3[1000], const double lp_eos[1000], double *expected,
                           double *mass);

/* The expected readout of n (prompt, completion) pairs (texts; BOS is added to the prompt):
 * the model continues BOS + prompt + completion[0..eval_conf_offset) and the digit tree
 * D . D D EOS is enumerated exactly with a KV cache (branching with gpt_kv_select), as many
 * samples at a time as p.expected_mem_mb allows. expected[i] and mass[i] (arrays of n,
 * borrowed) receive the readout and the format mass; a completion without a marker, or whose
 * number would not fit block_size, gets 0 and 0. Errors: a status, message on the context. */
tw_status eval_expected(gpt *m, const char *const *prompts, const char *const *completions, int n,
                        eval_params p, double *expected, double *mass);

/* Greedy completions of prompts[0..n) (texts; BOS is added) into out[0..n), with both
 * confidence readouts (the expected one when p.expected is 1). correct is 0. */
tw_status eval_generate(gpt *m, const char *const *prompts, int n, eval_params p, eval_sample *out);

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
