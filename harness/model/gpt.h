/* gpt: a small GPT-2-style (pre-LayerNorm, tied embeddings) language model on tw tensors.
 * Training forward (logits at every position), batched KV-cached decoding, and iteration
 * over named parameters with stable names and shapes (snapshots and the EMA teacher). */
#ifndef CAOPD_GPT_H
#define CAOPD_GPT_H

#include "harness/torch/tw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt_config {
    int vocab;      /* V: token ids are 0..V-1 */
    int block_size; /* Tmax: positions are 0..Tmax-1 */
    int n_layer;    /* L */
    int n_head;     /* H: must divide n_embd */
    int n_embd;     /* C */
} gpt_config;

/* V 99 (the tasks tokenizer), Tmax 256, L 4, H 4, C 128. */
gpt_config gpt_config_default(void);

/* Checks the config; on failure writes a message naming the field to err. Returns 0 if ok. */
int gpt_config_check(gpt_config cfg, char *err, size_t errlen);

/* Parameters (element count) of a model with this config. */
int64_t gpt_config_param_count(gpt_config cfg);

/* Forward FLOPs per token of a sequence of length t (matmuls only; attention counted over
 * the full t x t score matrix; embeddings and elementwise ops not counted). */
double gpt_config_flops_per_token(gpt_config cfg, int t);

typedef struct gpt gpt;

/* Makes a model in ctx with GPT-2 initialization drawn from rng (normal std 0.02, residual
 * projections 0.02/sqrt(2L), zero biases, unit LayerNorm gains). Parameters require grad and
 * are owned by the model. Errors: a status, with the message on ctx (or err for config). */
tw_status gpt_new(tw_ctx *ctx, gpt_config cfg, tw_rng *rng, gpt **out);
void gpt_free(gpt *m); /* frees the parameters; NULL is a no-op */
gpt_config gpt_get_config(const gpt *m);
tw_ctx *gpt_ctx(const gpt *m);

/* Named parameters, in a fixed order: "wte" (V,C), "wpe" (Tmax,C), then per layer l
 * "h.l.ln_1.weight" (C), "h.l.ln_1.bias" (C), "h.l.attn.c_attn.weight" (3C,C),
 * "h.l.attn.c_attn.bias" (3C), "h.l.attn.c_proj.weight" (C,C), "h.l.attn.c_proj.bias" (C),
 * "h.l.ln_2.weight" (C), "h.l.ln_2.bias" (C), "h.l.mlp.c_fc.weight" (4C,C),
 * "h.l.mlp.c_fc.bias" (4C), "h.l.mlp.c_proj.weight" (C,4C), "h.l.mlp.c_proj.bias" (C),
 * then "ln_f.weight" (C), "ln_f.bias" (C). Names and handles are borrowed from the model. */
int gpt_param_count(const gpt *m);
const char *gpt_param_name(const gpt *m, int i);
tw_tensor gpt_param(const gpt *m, int i);
const tw_tensor *gpt_params(const gpt *m); /* array of gpt_param_count handles */
/* 1 for parameters that get weight decay (matrices and embeddings), 0 for biases and gains. */
const int *gpt_param_decay(const gpt *m);
/* Index of the parameter with this name, or -1. */
int gpt_param_find(const gpt *m, const char *name);

/* Logits (B, T, V) for int64 tokens (B, T). pos (B, T) int64 gives each token's position
 * (TW_NULL: 0..T-1 on every row); key_valid (B, T) marks real (non-pad) tokens (TW_NULL: all
 * real). The result is a new tensor in the current scope; TW_NULL on error (message on ctx). */
tw_tensor gpt_forward(gpt *m, tw_tensor tokens, tw_tensor pos, tw_tensor key_valid);

/* ---- KV-cached incremental decoding ---- */

/* Keys and values of every layer for `batch` rows and up to `max_len` positions, owned by
 * the cache (L x 2 tensors of (B, H, max_len, C/H)). */
typedef struct gpt_kv gpt_kv;
tw_status gpt_kv_new(gpt *m, int batch, int max_len, gpt_kv **out);
void gpt_kv_free(gpt_kv *kv); /* NULL is a no-op */
void gpt_kv_reset(gpt_kv *kv);
int gpt_kv_len(const gpt_kv *kv); /* positions filled so far */

/* Appends Tn tokens (B, Tn) at cache positions [len, len + Tn) and returns their logits
 * (B, Tn, V). pos (B, Tn) are the model positions; key_valid (B, Tn) marks real tokens (TW_NULL:
 * all real). Records no autograd; call under tw_no_grad_begin. */
tw_tensor gpt_forward_cached(gpt *m, gpt_kv *kv, tw_tensor tokens, tw_tensor pos,
                             tw_tensor key_valid);

typedef struct gpt_sample_params {
    int max_new;        /* tokens to generate per row */
    double temperature; /* 0: greedy (argmax); otherwise softmax(logits / temperature) */
    int64_t stop_token; /* a row that emits it keeps emitting it; -1: none */
    int use_cache;      /* 1: KV cache; 0: recompute the whole sequence each step (reference) */
    /* Data-parallel sampling: the B rows sampled here are rows [row_offset, row_offset + B) of
     * a batch of total_rows rows split across processes. Every decoding step then draws for
     * all total_rows rows (tw_multinomial_rows), so a row's tokens do not depend on the split.
     * total_rows 0: the rows are the whole batch (tw_multinomial). */
    int64_t row_offset, total_rows;
} gpt_sample_params;

/* 24 new, temperature 1, no stop, cache on, whole batch */
gpt_sample_params gpt_sample_default(void);

/* The decoding steps (generator draws, when sampling) that gpt_sample or gpt_sample_shared took
 * to produce tokens (rows, max_new): max_new, or fewer when every row emitted stop_token
 * (decoding stops after the step in which the last row emitted it). */
int gpt_sample_steps(const int64_t *tokens, int64_t rows, int max_new, int64_t stop_token);

/* Generates continuations of left-padded prompts (B, Tp) with key_valid (B, Tp) (TW_NULL: no
 * padding). Positions count real tokens only. rng may be NULL for greedy decoding. Writes the
 * new tokens (B, max_new) int64 to *out (in the current scope). Stops early when every row
 * has emitted stop_token (the rest is filled with stop_token). */
tw_status gpt_sample(gpt *m, tw_tensor prompts, tw_tensor key_valid, gpt_sample_params sp,
                     tw_rng *rng, tw_tensor *out);

/* ---- shared prefixes (CaOPD: each prompt's prefix computed once for its K rollouts) ---- */

/* Keys and values of every layer for P left-padded prefixes (P, Tp), computed once and then
 * attended to by any number of continuation rows. Made under grad mode, the keys and values
 * carry autograd history, so a loss over continuations backpropagates through the prefix
 * (each prefix's gradient is the sum over the rows that continue it). Owns its tensors
 * (L x 2 of (P, H, Tp, C/H), valid (P, Tp)); free after the backward pass. */
typedef struct gpt_prefix gpt_prefix;

/* Runs the prefix tokens (P, Tp) with key_valid (P, Tp) (TW_NULL: no padding) through the
 * model. Positions count real tokens, as in gpt_sample. Errors: a status, message on ctx. */
tw_status gpt_prefix_new(gpt *m, tw_tensor tokens, tw_tensor key_valid, gpt_prefix **out);
void gpt_prefix_free(gpt_prefix *p);                /* NULL is a no-op */
int gpt_prefix_count(const gpt_prefix *p, int row); /* real tokens of a row */

/* Logits (N, Tn, V) of continuation tokens (N, Tn): row i continues prefix row_of[i] (host
 * array of N indices, borrowed), its real tokens at positions gpt_prefix_count(row_of[i]),
 * +1, ... (pads at position 0). key_valid (N, Tn) marks real tokens (TW_NULL: all real).
 * Equals gpt_forward over the concatenation of the prefix row and the continuation row.
 * A row's real tokens (prefix and continuation) must fit block_size. Records autograd when
 * grad mode is on. */
tw_tensor gpt_forward_suffix(gpt *m, const gpt_prefix *p, const int64_t *row_of, int n,
                             tw_tensor tokens, tw_tensor key_valid);

/* A KV cache whose rows continue the rows of a shared prefix without copying it (many
 * continuations of few contexts: the digit tree of the expected confidence readout, see
 * harness/trainer/evaluate.h). Rows are grouped by prefix row, rows_per_prefix each: row i
 * continues prefix row i / rows_per_prefix and attends to that prefix's keys and values (broadcast,
 * held once) and to its own cached positions; the cache holds only the rows' own positions, max_len
 * of them. p is borrowed and must outlive the cache; make it under tw_no_grad_begin.
 * gpt_forward_cached on such a cache takes one token per row per call (Tn = 1), every one real
 * (key_valid TW_NULL), at the positions the caller passes (a row's first token continues
 * gpt_prefix_count of its prefix row). Equals gpt_forward over prefix row + the row's tokens up
 * to float rounding. Errors: a status, message on the context. */
tw_status gpt_kv_new_shared(gpt *m, const gpt_prefix *p, int rows_per_prefix, int max_len,
                            gpt_kv **out);

/* Replaces the cache's rows by rows[0..n) of its current rows (host array, borrowed; a row may
 * be taken several times or not at all), as a tree or beam search does when it branches: row i
 * of the new cache holds the keys, values and validity of old row rows[i] at every position,
 * the filled length is kept, and the cache then has n rows. On a shared-prefix cache the rows
 * must stay grouped: n a multiple of the prefix rows P, and new row i (of n / P per prefix)
 * taken from a row of the same prefix. The new tensors are made before the old ones are freed
 * (peak memory: both). Records no autograd. On failure (a row out of range or of another
 * prefix, n < 1, out of memory) the cache is unchanged and the message is on the context. */
tw_status gpt_kv_select(gpt_kv *kv, const int64_t *rows, int n);
int gpt_kv_rows(const gpt_kv *kv); /* the batch: rows of the cache */

/* gpt_sample with n_rep continuations of each prompt: prompts (P, Tp), Tp >= 2, left-padded
 * with key_valid (TW_NULL: no padding). The first Tp - 1 columns are computed once per prompt
 * and shared by its n_rep rows in the KV cache; decoding then runs P * n_rep rows. Writes
 * (P * n_rep, max_new) int64 to *out (current scope): row p * n_rep + r is continuation r of
 * prompt p. sp.use_cache is ignored (always cached). Same errors as gpt_sample. */
tw_status gpt_sample_shared(gpt *m, tw_tensor prompts, tw_tensor key_valid, int n_rep,
                            gpt_sample_params sp, tw_rng *rng, tw_tensor *out);

/* dst <- src for every parameter (same config; no autograd). */
tw_status gpt_copy_weights(gpt *dst, const gpt *src);
/* dst <- dst + w * (src - dst) for every parameter (the EMA teacher: w = alpha). */
tw_status gpt_lerp_weights(gpt *dst, const gpt *src, double w);

#ifdef __cplusplus
}
#endif

#endif
