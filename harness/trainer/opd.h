/* opd: the on-policy self-distillation step of CaOPD and SDFT (docs/trainer.md): token batches with
 * shared prompt prefixes, student/teacher logits over completions, the per-token divergence
 * loss, rollouts with verification, P_acc and the three CaOPD replacements.
 * The optimizer, the EMA teacher and the schedule live in train.h. Exact definitions:
 * docs/trainer.md. */
#ifndef CAOPD_OPD_H
#define CAOPD_OPD_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model/gpt.h"
#include "tasks/task.h"
#include "harness/torch/tw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token batches ------------------------------------------------------------------ */

/* N rows over P prefixes. Row i is BOS + prompt(row_of[i]) + completion_i + EOS; its targets
 * are completion_i then EOS (n_target[i] = completion length + 1), target j predicted by the
 * logits at the token before it. Prefixes are left-padded with PAD; targets right-padded.
 * A plain struct; every array is owned (opd_seqs_free). Fill with opd_seqs_add_*. */
typedef struct opd_seqs {
    int n_prefix;          /* P */
    int prefix_len;        /* Tp: longest BOS + prompt */
    int64_t *prefix;       /* (P, Tp) left-padded tokens */
    int64_t *prefix_valid; /* (P, Tp) 1 for real tokens */
    int n_rows;            /* N */
    int width;             /* W: longest completion + 1 */
    int64_t *row_of;       /* (N) prefix index of each row */
    int64_t *target;       /* (N, W): completion, EOS, then PAD */
    int *n_target;         /* (N) */
    /* internal: unpadded storage */
    int64_t *praw, *traw; /* concatenated prefixes / targets */
    int64_t *poff, *toff; /* (P + 1), (N + 1) offsets into them */
} opd_seqs;

void opd_seqs_init(opd_seqs *s); /* empty batch */
void opd_seqs_free(opd_seqs *s); /* releases the arrays; the struct is empty again */
/* Adds a prefix BOS + ids[0..n) (n >= 1) and returns its index, or -1 when out of memory. */
int opd_seqs_add_prefix(opd_seqs *s, const int32_t *ids, int n);
/* Adds a row continuing prefix `prefix` with completion ids[0..n) (n >= 0; EOS appended).
 * Returns the row index, or -1 (bad prefix index, out of memory). */
int opd_seqs_add_row(opd_seqs *s, int prefix, const int32_t *ids, int n);
/* The same with text, encoded by the tokenizer: the index, or OPD_SEQS_NOMEM (-1: out of memory,
 * or a bad prefix index) or OPD_SEQS_BAD_TEXT (-2: a byte outside the vocabulary; tok_errmsg). */
#define OPD_SEQS_NOMEM (-1)
#define OPD_SEQS_BAD_TEXT (-2)
int opd_seqs_add_prefix_text(opd_seqs *s, const char *text);
int opd_seqs_add_row_text(opd_seqs *s, int prefix, const char *text);

/* Logits (N, W, V), [i, j] predicting target[i, j]. share = 1: each prefix (all but its last
 * token) is computed once (gpt_prefix) and its rows continue it (gpt_forward_suffix), prefixes
 * of similar length together (up to 4 chunks, each padded to its own longest);
 * share = 0: every row's whole sequence goes through gpt_forward (the reference). Same
 * values either way up to float rounding. Records autograd under grad mode. TW_NULL on
 * error (message on the model's context). */
tw_tensor opd_logits(gpt *m, const opd_seqs *s, int share);

/* ---- loss -------------------------------------------------------------------------- */

typedef enum opd_divergence {
    OPD_DIV_FORWARD_KL = 0, /* KL(teacher || student), the default (SDFT/CaOPD) */
    OPD_DIV_REVERSE_KL = 1, /* KL(student || teacher) */
    OPD_DIV_JSD = 2,        /* generalized JSD: m = (1-b) s + b t; b KL(t||m) + (1-b) KL(s||m) */
} opd_divergence;
#define OPD_N_DIVERGENCES 3
const char *opd_divergence_name(opd_divergence d); /* "forward_kl", "reverse_kl", "jsd" */
int opd_divergence_from_name(const char *name, opd_divergence *out); /* 0 or -1 */

typedef struct opd_loss_params {
    opd_divergence divergence;
    double jsd_beta; /* b in (0, 1), for OPD_DIV_JSD */
    int skip_tokens; /* the first targets of every row not counted (reference 3) */
} opd_loss_params;

opd_loss_params opd_loss_default(void); /* forward KL, b = 0.5, skip_tokens 3 */

/* Host weights (N * W floats) of the loss: target j of row i counts when skip <= j <
 * n_target[i]; a counted target weighs 1 / (counted in its row) / (rows with any counted
 * target). So sum(weights * per_token) = mean over rows of the row's mean. Returns the
 * number of rows with a counted target. */
int opd_loss_weights(const opd_seqs *s, int skip_tokens, float *weights);

/* Per-target divergence (N, W) between teacher logits (no gradient is taken through them)
 * and student logits, both (N, W, V). */
tw_tensor opd_divergence_tokens(tw_ctx *ctx, tw_tensor student_logits, tw_tensor teacher_logits,
                                opd_loss_params lp);
/* Per-target cross-entropy -log p(target) (N, W) of logits (N, W, V); targets (N, W) int64
 * (PAD positions give a value that the weights zero out). */
tw_tensor opd_ce_tokens(tw_ctx *ctx, tw_tensor logits, tw_tensor targets);

/* ---- rollouts, verification, replacement -------------------------------------------- */

typedef enum opd_teacher_mode {
    OPD_TEACHER_DEMO = 0,             /* SDFT: a ground-truth demonstration */
    OPD_TEACHER_CORRECT_SOLUTION = 1, /* SDPO: another verified-correct rollout, else demo */
} opd_teacher_mode;
#define OPD_N_TEACHER_MODES 2
const char *opd_teacher_mode_name(opd_teacher_mode m); /* "demo", "correct_solution" */
int opd_teacher_mode_from_name(const char *name, opd_teacher_mode *out);

#define OPD_MAX_K 64
#define OPD_TEXT_CAP 160    /* a rollout or revised completion, NUL included */
#define OPD_CONTEXT_CAP 640 /* a teacher context, NUL included */

/* What one prompt's K rollouts train on. Plain value. */
typedef struct opd_group {
    int k;
    int n_correct;
    double p_acc; /* n_correct / k */
    task_verdict verdict[OPD_MAX_K];
    char completion[OPD_MAX_K][OPD_TEXT_CAP]; /* the trained completion (revised for CaOPD) */
    int context_of[OPD_MAX_K];                /* which context[] row r's teacher sees */
    int n_contexts;                           /* 1 or 2 */
    char context[2][OPD_CONTEXT_CAP];         /* teacher contexts (prompt text, no BOS) */
} opd_group;

/* Verifies rollouts[0..k) (texts, borrowed) of example ex and builds the group:
 * P_acc = correct / k. replace = 1 (CaOPD): completion r = tmpl_revise_completion(rollout r,
 * P_acc); the demo (or solution) shown to the teacher is revised to P_acc; the teacher
 * context carries the note with P_acc. replace = 0 (SDFT): completions as sampled, demo
 * "Confidence: 1.00", no note. Mode correct_solution: row r's teacher sees the first correct
 * rollout other than r (as sampled, or revised under replace), and the demo when there is
 * none. Returns 0, or -1 when k is out of 1..OPD_MAX_K or a text does not fit its buffer. */
int opd_group_build(opd_group *g, const task_example *ex, const char *const *rollouts, int k,
                    int replace, opd_teacher_mode mode);

/* Token classes for the entropy split. */
#define OPD_TOK_OTHER 0
#define OPD_TOK_ANSWER 1 /* the answer: the text before the first "Confidence:", trimmed */
#define OPD_TOK_CONF 2   /* the number after the last "Confidence:" (up to 4 characters) */
/* Classes of completion text[0..n) (one per byte/token) into cls[0..n). */
void opd_token_classes(const char *text, int n, uint8_t *cls);

/* ---- one step's batch and loss ----------------------------------------------------- */

typedef struct opd_params {
    int replace;              /* 1: CaOPD; 0: SDFT */
    opd_teacher_mode teacher; /* demo (default) or correct_solution */
    int k;                    /* rollouts per prompt (8) */
    double temperature;       /* sampling temperature (1.0) */
    int max_new;              /* tokens per rollout (24) */
    int share_prefix;         /* compute each prompt's prefix once (1) */
    opd_loss_params loss;
} opd_params;

/* CaOPD, demo, K 8, T 1.0, 24 new, shared, forward KL, skip 3 */
opd_params opd_params_default(void);

/* Profile phases of a step (tw_prof_phase; `caopd bench --profile`): sampling with the
 * verification and batch building, the teacher's forward pass, the student's forward pass, loss
 * and backward, and the rest (logged entropies, clipping, AdamW, EMA). */
enum { OPD_PHASE_ROLLOUT = 0, OPD_PHASE_TEACHER = 1, OPD_PHASE_TRAIN = 2, OPD_PHASE_REST = 3 };

/* What one step measured. Entropies are per-token means (nats) over the trained completion
 * tokens of each class; rates are over all B*K rollouts. */
typedef struct opd_stats {
    double loss; /* the configured divergence */
    double kl;   /* forward KL(teacher || student) with the loss's weights */
    double student_ent_answer, student_ent_conf;
    double teacher_ent_answer, teacher_ent_conf;
    double mean_p_acc;             /* mean over prompts */
    double rollout_acc;            /* fraction of rollouts correct (= mean_p_acc) */
    double format_adherence;       /* fraction of rollouts without a format failure */
    double mean_confidence;        /* mean stated confidence of the rollouts */
    int64_t prompt_tokens;         /* student prompt tokens (BOS included), once per prompt */
    int64_t teacher_prompt_tokens; /* teacher context tokens, once per distinct context */
    int64_t new_tokens;            /* sampled tokens, B * K * max_new */
    int64_t train_tokens;          /* target tokens of the trained rows */
    double rollout_s, teacher_s, train_s; /* wall seconds of sampling, teacher scoring, student
                                             forward + backward */
    /* Denominators, for combining the statistics of several processes (data-parallel): */
    int decode_steps; /* decoding steps the sampling took (max_new, or fewer when every
                         rollout ended early) */
    int loss_rows;    /* rows with a counted target: the loss and kl average over them */
    int64_t answer_targets, conf_targets; /* targets of each class: the entropies' counts */
} opd_stats;

/* The batch of one step, after sampling and replacement (host side). */
typedef struct opd_batch {
    int n_prompts, k;
    opd_group *groups; /* (n_prompts) */
    opd_seqs student;  /* prefixes: the student prompts; rows: prompt-major, K per prompt */
    opd_seqs teacher;  /* prefixes: distinct teacher contexts; the same rows */
    uint8_t *cls;      /* (N, W) token class of each target */
} opd_batch;

void opd_batch_free(opd_batch *b); /* NULL-safe; leaves an empty batch */

/* Samples K rollouts of each of ex[0..n) from the student (prefix-shared, KV-cached, no grad),
 * verifies them and applies the method's replacements into *b (which it initializes). Fills
 * the rollout fields of st (rates, tokens, rollout_s). Errors: a status with the message on
 * the student's context. */
tw_status opd_batch_sample(gpt *student, tw_rng *rng, const task_example *ex, int n, opd_params p,
                           opd_batch *b, opd_stats *st);

/* opd_batch_sample for one process's part of a data-parallel batch: ex[0..n) are prompts
 * [first, first + n) of a global batch of `total` prompts. The generator draws, at every
 * decoding step, for all total * K rollouts (gpt_sample_params.row_offset/total_rows), so each
 * prompt's rollouts are those a single process sampling the whole batch would draw, provided
 * the generators agree and every process then advances its generator to the global number of
 * decoding steps (the largest st->decode_steps of the processes; tw_multinomial_skip over
 * total * K rows of the vocabulary for the missing steps). total = 0: the whole batch. */
tw_status opd_batch_sample_part(gpt *student, tw_rng *rng, const task_example *ex, int n, int first,
                                int total, opd_params p, opd_batch *b, opd_stats *st);

/* Builds the batch from given rollout texts instead of sampling (rollouts[i * k + r]). */
tw_status opd_batch_from_rollouts(tw_ctx *ctx, const task_example *ex, int n,
                                  const char *const *rollouts, opd_params p, opd_batch *b,
                                  opd_stats *st);

/* Teacher logits (no grad), student logits, the loss, and the backward pass (gradients
 * accumulate into the student's parameters). Fills the loss, KL, entropy and time fields of
 * st. *loss_out (may be NULL) receives the loss; a non-finite loss is still returned (the
 * caller decides) and backward is then skipped. */
tw_status opd_batch_loss(gpt *student, gpt *teacher, const opd_batch *b, opd_params p,
                         double *loss_out, opd_stats *st);

#ifdef __cplusplus
}
#endif

#endif
