/* gpt.c: the GPT model on tw: parameters, training forward, KV-cached decoding, sampling.
 * The architecture matches tests/fixtures/make_gpt_fixture.py, which the tests compare to. */
#include "harness/model/gpt.h"
#include "tasks/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPT_NAME_MAX 48
#define GPT_LN_EPS 1e-5

/* Indices into a layer's block of parameters, in name order. */
enum {
    GPT_LN1_W,   /* (C) */
    GPT_LN1_B,   /* (C) */
    GPT_ATTN_W,  /* (3C, C) */
    GPT_ATTN_B,  /* (3C) */
    GPT_APROJ_W, /* (C, C) */
    GPT_APROJ_B, /* (C) */
    GPT_LN2_W,   /* (C) */
    GPT_LN2_B,   /* (C) */
    GPT_FC_W,    /* (4C, C) */
    GPT_FC_B,    /* (4C) */
    GPT_MPROJ_W, /* (C, 4C) */
    GPT_MPROJ_B, /* (C) */
    GPT_LAYER_PARAMS
};

static const char *const layer_param_names[GPT_LAYER_PARAMS] = {
    "ln_1.weight",        "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
    "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias",
};

struct gpt {
    tw_ctx *ctx;
    gpt_config cfg;
    int n_params;
    char (*names)[GPT_NAME_MAX];
    tw_tensor *params; /* wte (V,C), wpe (Tmax,C), L x layer block, ln_f.weight, ln_f.bias */
    int *decay;
};

struct gpt_prefix {
    gpt *m;
    int rows, len;
    tw_tensor *k, *v; /* per layer (P, H, Tp, C/H), autograd history when made under grad */
    tw_tensor valid;  /* (P, Tp) int64 */
    int64_t *count;   /* (P) real tokens per row */
};

struct gpt_kv {
    gpt *m;
    int batch, max_len, len;
    tw_tensor *k, *v; /* per layer (B, H, max_len, C/H) */
    tw_tensor valid;  /* (B, max_len) int64: 1 for real tokens */
    /* shared-prefix caches only (gpt_kv_new_shared), else NULL / 0 / TW_NULL: */
    const gpt_prefix *prefix; /* borrowed: P rows of (H, Tp, C/H) keys and values */
    int per;                  /* rows per prefix row: B = P * per */
    tw_tensor pbias;          /* (P, 1, 1, Tp) float32: 0 for a real prefix key, -inf for a pad */
};

gpt_config gpt_config_default(void) {
    gpt_config c = {
        .vocab = TOK_VOCAB_SIZE, .block_size = 256, .n_layer = 4, .n_head = 4, .n_embd = 128};
    return c;
}

int gpt_config_check(gpt_config c, char *err, size_t errlen) {
    const char *bad = NULL;
    if (c.vocab < 2)
        bad = "vocab must be at least 2";
    else if (c.block_size < 1)
        bad = "block_size must be at least 1";
    else if (c.n_layer < 1)
        bad = "n_layer must be at least 1";
    else if (c.n_head < 1)
        bad = "n_head must be at least 1";
    else if (c.n_embd < 1 || c.n_embd % c.n_head != 0)
        bad = "n_embd must be a positive multiple of n_head";
    if (bad && err && errlen) snprintf(err, errlen, "gpt config: %s", bad);
    return bad ? -1 : 0;
}

int64_t gpt_config_param_count(gpt_config c) {
    int64_t C = c.n_embd;
    int64_t layer =
        2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
    return (int64_t)c.vocab * C + (int64_t)c.block_size * C + c.n_layer * layer + 2 * C;
}

double gpt_config_flops_per_token(gpt_config c, int t) {
    double C = c.n_embd;
    double per_layer = 2.0 * (3 * C * C + C * C + 4 * C * C + 4 * C * C) /* linears */
                       + 2.0 * 2.0 * t * C;                              /* QK^T and att@V */
    return c.n_layer * per_layer + 2.0 * C * c.vocab;                    /* + tied LM head */
}

static tw_tensor layer_param(const gpt *m, int l, int which) {
    return m->params[2 + l * GPT_LAYER_PARAMS + which];
}

/* The out-of-memory failure every function here reports: the status, with the message the
 * header promises on the context. */
static tw_status out_of_memory(tw_ctx *ctx, const char *fn) {
    tw_set_error(ctx, TW_ERR_NOMEM, "%s: out of memory", fn);
    return TW_ERR_NOMEM;
}

tw_status gpt_new(tw_ctx *ctx, gpt_config cfg, tw_rng *rng, gpt **out) {
    *out = NULL;
    char err[128];
    if (gpt_config_check(cfg, err, sizeof err)) {
        tw_set_error(ctx, TW_ERR_ARG, "gpt_new: %s", err);
        return TW_ERR_ARG;
    }
    gpt *m = calloc(1, sizeof *m);
    if (!m) return out_of_memory(ctx, "gpt_new");
    m->ctx = ctx;
    m->cfg = cfg;
    m->n_params = 2 + cfg.n_layer * GPT_LAYER_PARAMS + 2;
    m->names = calloc((size_t)m->n_params, sizeof *m->names);
    m->params = calloc((size_t)m->n_params, sizeof *m->params);
    m->decay = calloc((size_t)m->n_params, sizeof *m->decay);
    if (!m->names || !m->params || !m->decay) {
        gpt_free(m);
        return out_of_memory(ctx, "gpt_new");
    }
    const int64_t V = cfg.vocab, T = cfg.block_size, C = cfg.n_embd;
    const double std = 0.02, proj_std = 0.02 / sqrt(2.0 * cfg.n_layer);
    tw_scope scope = tw_scope_begin(ctx);
    int i = 0;
#define GPT_MATRIX(name_, rows, cols, sd)                                                          \
    do {                                                                                           \
        int64_t shape_[2] = {(rows), (cols)};                                                      \
        snprintf(m->names[i], GPT_NAME_MAX, "%s", name_);                                          \
        m->params[i] = tw_keep(ctx, tw_randn(ctx, rng, 0.0, (sd), 2, shape_));                     \
        m->decay[i++] = 1;                                                                         \
    } while (0)
#define GPT_VECTOR(name_, n, value)                                                                \
    do {                                                                                           \
        int64_t shape_[1] = {(n)};                                                                 \
        snprintf(m->names[i], GPT_NAME_MAX, "%s", name_);                                          \
        m->params[i] = tw_keep(ctx, tw_full(ctx, TW_DTYPE_F32, (value), 1, shape_));               \
        m->decay[i++] = 0;                                                                         \
    } while (0)
    GPT_MATRIX("wte", V, C, std);
    GPT_MATRIX("wpe", T, C, std);
    for (int l = 0; l < cfg.n_layer; l++) {
        char name[GPT_NAME_MAX];
        const int64_t rows[GPT_LAYER_PARAMS] = {C, C, 3 * C, 3 * C, C, C, C, C, 4 * C, 4 * C, C, C};
        const int64_t cols[GPT_LAYER_PARAMS] = {0, 0, C, 0, C, 0, 0, 0, C, 0, 4 * C, 0};
        for (int p = 0; p < GPT_LAYER_PARAMS; p++) {
            snprintf(name, sizeof name, "h.%d.%s", l, layer_param_names[p]);
            if (cols[p]) {
                double sd = (p == GPT_APROJ_W || p == GPT_MPROJ_W) ? proj_std : std;
                GPT_MATRIX(name, rows[p], cols[p], sd);
            } else {
                GPT_VECTOR(name, rows[p], (p == GPT_LN1_W || p == GPT_LN2_W) ? 1.0 : 0.0);
            }
        }
    }
    GPT_VECTOR("ln_f.weight", C, 1.0);
    GPT_VECTOR("ln_f.bias", C, 0.0);
#undef GPT_MATRIX
#undef GPT_VECTOR
    for (int p = 0; p < m->n_params; p++)
        tw_set_requires_grad(ctx, m->params[p], 1);
    tw_scope_end(ctx, scope);
    if (tw_status_get(ctx) != TW_OK) {
        tw_status s = tw_status_get(ctx);
        gpt_free(m);
        return s;
    }
    *out = m;
    return TW_OK;
}

void gpt_free(gpt *m) {
    if (!m) return;
    if (m->params)
        for (int i = 0; i < m->n_params; i++)
            tw_free(m->ctx, m->params[i]);
    free(m->names);
    free(m->params);
    free(m->decay);
    free(m);
}

gpt_config gpt_get_config(const gpt *m) {
    return m->cfg;
}

tw_ctx *gpt_ctx(const gpt *m) {
    return m->ctx;
}

int gpt_param_count(const gpt *m) {
    return m->n_params;
}

const char *gpt_param_name(const gpt *m, int i) {
    return (i >= 0 && i < m->n_params) ? m->names[i] : NULL;
}

tw_tensor gpt_param(const gpt *m, int i) {
    return (i >= 0 && i < m->n_params) ? m->params[i] : TW_NULL;
}

const tw_tensor *gpt_params(const gpt *m) {
    return m->params;
}

const int *gpt_param_decay(const gpt *m) {
    return m->decay;
}

int gpt_param_find(const gpt *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->names[i], name) == 0) return i;
    return -1;
}

/* (B, T, C) -> (B, H, T, C/H) for columns [part*C, (part+1)*C) of qkv (B, T, 3C). */
static tw_tensor split_heads(gpt *m, tw_tensor qkv, int part, int64_t B, int64_t T) {
    tw_ctx *ctx = m->ctx;
    const int64_t C = m->cfg.n_embd, H = m->cfg.n_head;
    tw_tensor x = tw_slice(ctx, qkv, 2, part * C, (part + 1) * C);
    int64_t shape[4] = {B, T, H, C / H};
    return tw_transpose(ctx, tw_reshape(ctx, x, 4, shape), 1, 2);
}

/* The residual stream after the embeddings (B, T, C). */
static tw_tensor embed(gpt *m, tw_tensor tokens, tw_tensor pos) {
    tw_ctx *ctx = m->ctx;
    tw_tensor x = tw_embedding(ctx, m->params[0], tokens);
    return tw_add(ctx, x, tw_embedding(ctx, m->params[1], pos));
}

/* One transformer block. attend(q, k, v) supplies attention so the same code serves the
 * full and the cached forward. */
typedef tw_tensor (*gpt_attend_fn)(gpt *m, int layer, tw_tensor q, tw_tensor k, tw_tensor v,
                                   void *arg);

static tw_tensor block(gpt *m, int l, tw_tensor x, gpt_attend_fn attend, void *arg) {
    tw_ctx *ctx = m->ctx;
    const int64_t B = tw_size(ctx, x, 0), T = tw_size(ctx, x, 1), C = m->cfg.n_embd;
    tw_tensor a = tw_layer_norm(ctx, x, layer_param(m, l, GPT_LN1_W), layer_param(m, l, GPT_LN1_B),
                                GPT_LN_EPS);
    tw_tensor qkv = tw_linear(ctx, a, layer_param(m, l, GPT_ATTN_W), layer_param(m, l, GPT_ATTN_B));
    tw_tensor q = split_heads(m, qkv, 0, B, T);
    tw_tensor k = split_heads(m, qkv, 1, B, T);
    tw_tensor v = split_heads(m, qkv, 2, B, T);
    const int label = tw_prof_label(ctx, TW_KIND_ATTENTION);
    tw_tensor y = attend(m, l, q, k, v, arg); /* (B, H, T, C/H) */
    tw_prof_label(ctx, label);
    int64_t shape[3] = {B, T, C};
    y = tw_reshape(ctx, tw_transpose(ctx, y, 1, 2), 3, shape);
    x = tw_add(ctx, x,
               tw_linear(ctx, y, layer_param(m, l, GPT_APROJ_W), layer_param(m, l, GPT_APROJ_B)));
    tw_tensor h = tw_layer_norm(ctx, x, layer_param(m, l, GPT_LN2_W), layer_param(m, l, GPT_LN2_B),
                                GPT_LN_EPS);
    h = tw_gelu(ctx, tw_linear(ctx, h, layer_param(m, l, GPT_FC_W), layer_param(m, l, GPT_FC_B)));
    h = tw_linear(ctx, h, layer_param(m, l, GPT_MPROJ_W), layer_param(m, l, GPT_MPROJ_B));
    return tw_add(ctx, x, h);
}

static tw_tensor head(gpt *m, tw_tensor x) {
    tw_ctx *ctx = m->ctx;
    const int n = m->n_params;
    x = tw_layer_norm(ctx, x, m->params[n - 2], m->params[n - 1], GPT_LN_EPS);
    return tw_linear(ctx, x, m->params[0], TW_NULL); /* tied: logits = x @ wte^T */
}

/* arg: the forward pass's causal mask (tw_causal_mask), built once for every layer. */
static tw_tensor attend_full(gpt *m, int layer, tw_tensor q, tw_tensor k, tw_tensor v, void *arg) {
    (void)layer;
    return tw_attention(m->ctx, q, k, v, *(tw_tensor *)arg);
}

tw_tensor gpt_forward(gpt *m, tw_tensor tokens, tw_tensor pos, tw_tensor key_valid) {
    tw_ctx *ctx = m->ctx;
    tw_scope scope = tw_scope_begin(ctx);
    const int nd = tw_ndim(ctx, tokens);
    if (nd != 2) {
        if (nd >= 0)
            tw_set_error(ctx, TW_ERR_SHAPE, "gpt_forward: tokens must be (B, T), got %d dims", nd);
        return tw_scope_return(ctx, scope, TW_NULL);
    }
    const int64_t T = tw_size(ctx, tokens, 1);
    if (T > m->cfg.block_size) {
        tw_set_error(ctx, TW_ERR_SHAPE, "gpt_forward: sequence length %lld exceeds block_size %d",
                     (long long)T, m->cfg.block_size);
        return tw_scope_return(ctx, scope, TW_NULL);
    }
    if (tw_is_null(pos)) {
        int64_t shape[2] = {1, T};
        pos = tw_reshape(ctx, tw_arange(ctx, T), 2, shape);
    }
    tw_tensor x = embed(m, tokens, pos);
    const int label = tw_prof_label(ctx, TW_KIND_ATTENTION);
    tw_tensor mask = tw_causal_mask(ctx, key_valid, T, T);
    tw_prof_label(ctx, label);
    for (int l = 0; l < m->cfg.n_layer; l++)
        x = block(m, l, x, attend_full, &mask);
    return tw_scope_return(ctx, scope, head(m, x));
}

/* ---- KV cache ---- */

tw_status gpt_kv_new(gpt *m, int batch, int max_len, gpt_kv **out) {
    tw_ctx *ctx = m->ctx;
    *out = NULL;
    if (batch < 1 || max_len < 1 || max_len > m->cfg.block_size) {
        tw_set_error(ctx, TW_ERR_ARG,
                     "gpt_kv_new: batch %d and max_len %d must be >= 1, max_len <= block_size %d",
                     batch, max_len, m->cfg.block_size);
        return tw_status_get(ctx);
    }
    gpt_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return out_of_memory(ctx, "gpt_kv_new");
    kv->m = m;
    kv->batch = batch;
    kv->max_len = max_len;
    kv->k = calloc((size_t)m->cfg.n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)m->cfg.n_layer, sizeof *kv->v);
    if (!kv->k || !kv->v) {
        gpt_kv_free(kv);
        return out_of_memory(ctx, "gpt_kv_new");
    }
    const int64_t H = m->cfg.n_head, D = m->cfg.n_embd / m->cfg.n_head;
    int64_t shape[4] = {batch, H, max_len, D};
    tw_scope scope = tw_scope_begin(ctx);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        kv->k[l] = tw_keep(ctx, tw_zeros(ctx, TW_DTYPE_F32, 4, shape));
        kv->v[l] = tw_keep(ctx, tw_zeros(ctx, TW_DTYPE_F32, 4, shape));
    }
    int64_t vshape[2] = {batch, max_len};
    kv->valid = tw_keep(ctx, tw_zeros(ctx, TW_DTYPE_I64, 2, vshape));
    tw_scope_end(ctx, scope);
    if (tw_status_get(ctx) != TW_OK) {
        tw_status s = tw_status_get(ctx);
        gpt_kv_free(kv);
        return s;
    }
    *out = kv;
    return TW_OK;
}

void gpt_kv_free(gpt_kv *kv) {
    if (!kv) return;
    tw_ctx *ctx = kv->m->ctx;
    for (int l = 0; l < kv->m->cfg.n_layer; l++) {
        if (kv->k) tw_free(ctx, kv->k[l]);
        if (kv->v) tw_free(ctx, kv->v[l]);
    }
    tw_free(ctx, kv->valid);
    tw_free(ctx, kv->pbias);
    free(kv->k);
    free(kv->v);
    free(kv);
}

void gpt_kv_reset(gpt_kv *kv) {
    kv->len = 0;
}

int gpt_kv_len(const gpt_kv *kv) {
    return kv->len;
}

int gpt_kv_rows(const gpt_kv *kv) {
    return kv->batch;
}

tw_status gpt_kv_select(gpt_kv *kv, const int64_t *rows, int n) {
    tw_ctx *ctx = kv->m->ctx;
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (!rows || n < 1) {
        tw_set_error(ctx, TW_ERR_ARG, "gpt_kv_select: need n >= 1 rows (got %d%s)", n,
                     rows ? "" : ", rows NULL");
        return tw_status_get(ctx);
    }
    for (int i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= kv->batch) {
            tw_set_error(ctx, TW_ERR_ARG,
                         "gpt_kv_select: rows[%d] = %lld is not a row of the cache (0..%d)", i,
                         (long long)rows[i], kv->batch - 1);
            return tw_status_get(ctx);
        }
    int per = 0;
    if (kv->prefix) {
        const int P = kv->prefix->rows;
        per = n / P;
        for (int i = 0; i < n && n % P == 0; i++)
            if (i / per != rows[i] / kv->per) {
                tw_set_error(
                    ctx, TW_ERR_ARG,
                    "gpt_kv_select: rows[%d] = %lld continues prefix row %lld, but new row %d "
                    "belongs to prefix row %d (rows stay grouped by prefix)",
                    i, (long long)rows[i], (long long)(rows[i] / kv->per), i, i / per);
                return tw_status_get(ctx);
            }
        if (n % P) {
            tw_set_error(ctx, TW_ERR_ARG,
                         "gpt_kv_select: %d rows are not a multiple of the %d prefix rows", n, P);
            return tw_status_get(ctx);
        }
    }
    const int L = kv->m->cfg.n_layer;
    tw_tensor *nk = calloc((size_t)L, sizeof *nk), *nv = calloc((size_t)L, sizeof *nv);
    if (!nk || !nv) {
        free(nk), free(nv);
        tw_set_error(ctx, TW_ERR_NOMEM, "gpt_kv_select: out of memory");
        return TW_ERR_NOMEM;
    }
    tw_no_grad_begin(ctx);
    tw_scope scope = tw_scope_begin(ctx);
    int64_t ishape[1] = {n};
    tw_tensor idx = tw_from_i64(ctx, rows, 1, ishape);
    for (int l = 0; l < L; l++) {
        nk[l] = tw_keep(ctx, tw_index_select(ctx, kv->k[l], 0, idx));
        nv[l] = tw_keep(ctx, tw_index_select(ctx, kv->v[l], 0, idx));
    }
    tw_tensor nvalid = tw_keep(ctx, tw_index_select(ctx, kv->valid, 0, idx));
    tw_scope_end(ctx, scope);
    tw_no_grad_end(ctx);
    tw_status rc = tw_status_get(ctx);
    for (int l = 0; l < L; l++) {
        tw_tensor *pk = rc == TW_OK ? &kv->k[l] : &nk[l], *pv = rc == TW_OK ? &kv->v[l] : &nv[l];
        tw_free(ctx, *pk), tw_free(ctx, *pv);
        if (rc == TW_OK) *pk = nk[l], *pv = nv[l];
    }
    tw_free(ctx, rc == TW_OK ? kv->valid : nvalid);
    if (rc == TW_OK) {
        kv->valid = nvalid;
        kv->batch = n;
        kv->per = per;
    }
    free(nk), free(nv);
    return rc;
}

/* Defined with the shared prefixes below. */
static tw_tensor attend_shared(gpt *m, gpt_kv *kv, int l, tw_tensor q, tw_tensor k, tw_tensor v);

static tw_tensor attend_cached(gpt *m, int l, tw_tensor q, tw_tensor k, tw_tensor v, void *arg) {
    tw_ctx *ctx = m->ctx;
    gpt_kv *kv = arg;
    if (kv->prefix) return attend_shared(m, kv, l, q, k, v);
    const int64_t tn = tw_size(ctx, q, 2), end = kv->len + tn;
    tw_slice_assign(ctx, kv->k[l], 2, kv->len, k);
    tw_slice_assign(ctx, kv->v[l], 2, kv->len, v);
    tw_tensor kk = tw_slice(ctx, kv->k[l], 2, 0, end);
    tw_tensor vv = tw_slice(ctx, kv->v[l], 2, 0, end);
    tw_tensor valid = tw_slice(ctx, kv->valid, 1, 0, end);
    return tw_causal_attention(ctx, q, kk, vv, valid);
}

tw_tensor gpt_forward_cached(gpt *m, gpt_kv *kv, tw_tensor tokens, tw_tensor pos,
                             tw_tensor key_valid) {
    tw_ctx *ctx = m->ctx;
    if (tw_status_get(ctx) != TW_OK) return TW_NULL;
    tw_scope scope = tw_scope_begin(ctx);
    int64_t tn = tw_size(ctx, tokens, 1);
    if (tn < 0) return tw_scope_return(ctx, scope, TW_NULL);
    if (tw_size(ctx, tokens, 0) != kv->batch || kv->len + tn > kv->max_len) {
        tw_set_error(ctx, TW_ERR_SHAPE,
                     "gpt_forward_cached: %lld rows x %lld tokens do not fit the cache (%d rows, "
                     "%d of %d positions used)",
                     (long long)tw_size(ctx, tokens, 0), (long long)tn, kv->batch, kv->len,
                     kv->max_len);
        return tw_scope_return(ctx, scope, TW_NULL);
    }
    if (kv->prefix && (tn != 1 || !tw_is_null(key_valid))) {
        tw_set_error(
            ctx, TW_ERR_ARG,
            "gpt_forward_cached: a shared-prefix cache takes one real token per row per call "
            "(got %lld tokens%s)",
            (long long)tn, tw_is_null(key_valid) ? "" : " and a key_valid");
        return tw_scope_return(ctx, scope, TW_NULL);
    }
    if (tw_is_null(key_valid)) {
        int64_t shape[2] = {kv->batch, tn};
        key_valid = tw_full(ctx, TW_DTYPE_I64, 1.0, 2, shape);
    }
    tw_slice_assign(ctx, kv->valid, 1, kv->len, tw_to_dtype(ctx, key_valid, TW_DTYPE_I64));
    tw_tensor x = embed(m, tokens, pos);
    for (int l = 0; l < m->cfg.n_layer; l++)
        x = block(m, l, x, attend_cached, kv);
    tw_tensor logits = head(m, x);
    if (tw_status_get(ctx) == TW_OK) kv->len += (int)tn;
    return tw_scope_return(ctx, scope, logits);
}

/* ---- sampling ---- */

gpt_sample_params gpt_sample_default(void) {
    gpt_sample_params p = {.max_new = 24, .temperature = 1.0, .stop_token = -1, .use_cache = 1};
    return p;
}

int gpt_sample_steps(const int64_t *tokens, int64_t rows, int max_new, int64_t stop_token) {
    if (stop_token < 0) return max_new;
    int steps = 0;
    for (int64_t i = 0; i < rows; i++) {
        int j = 0;
        while (j < max_new && tokens[i * max_new + j] != stop_token)
            j++;
        if (j == max_new) return max_new; /* this row never stopped */
        if (j + 1 > steps) steps = j + 1;
    }
    return steps;
}

/* Next token per row from the last-position logits (B, 1, V). */
static tw_tensor pick(tw_ctx *ctx, tw_tensor logits, const gpt_sample_params *sp, tw_rng *rng) {
    const int label = tw_prof_label(ctx, TW_KIND_SAMPLING);
    int64_t shape[2] = {tw_size(ctx, logits, 0), tw_size(ctx, logits, 2)};
    tw_tensor last =
        tw_reshape(ctx, tw_slice(ctx, logits, 1, -1, tw_size(ctx, logits, 1)), 2, shape);
    tw_tensor tok;
    if (sp->temperature <= 0.0) {
        tok = tw_argmax(ctx, last, 1);
    } else {
        tw_tensor probs = tw_softmax(ctx, tw_scale(ctx, last, 1.0 / sp->temperature), 1);
        tok = sp->total_rows > 0
                  ? tw_multinomial_rows(ctx, rng, probs, sp->row_offset, sp->total_rows)
                  : tw_multinomial(ctx, rng, probs);
    }
    tw_prof_label(ctx, label);
    return tok;
}

/* The checks gpt_sample and gpt_sample_shared share (fn names the caller in the message):
 * a clean context, prompts of two dimensions, a generator when sampling. */
static tw_status check_sample_args(tw_ctx *ctx, const char *fn, tw_tensor prompts,
                                   const gpt_sample_params *sp, const tw_rng *rng) {
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    const int nd = tw_ndim(ctx, prompts);
    if (nd != 2) {
        if (nd >= 0)
            tw_set_error(ctx, TW_ERR_SHAPE, "%s: prompts must be (B, T), got %d dims", fn, nd);
        return tw_status_get(ctx);
    }
    if (sp->temperature > 0.0 && !rng)
        tw_set_error(ctx, TW_ERR_ARG, "%s: temperature %g needs a generator (rng is NULL)", fn,
                     sp->temperature);
    return tw_status_get(ctx);
}

/* The stop rule of both samplers on the n tokens just picked: a row that has stopped keeps
 * writing stop_token; a row that picks stop_token stops. Returns 1 when every row has stopped
 * (never without a stop token). */
static int apply_stop(int64_t *next, int *done, int64_t n, int64_t stop_token) {
    int all_done = 1;
    for (int64_t i = 0; i < n; i++) {
        if (done[i])
            next[i] = stop_token;
        else if (stop_token >= 0 && next[i] == stop_token)
            done[i] = 1;
        all_done &= done[i];
    }
    return all_done && stop_token >= 0;
}

tw_status gpt_sample(gpt *m, tw_tensor prompts, tw_tensor key_valid, gpt_sample_params sp,
                     tw_rng *rng, tw_tensor *out) {
    tw_ctx *ctx = m->ctx;
    *out = TW_NULL;
    if (check_sample_args(ctx, "gpt_sample", prompts, &sp, rng) != TW_OK) return tw_status_get(ctx);
    const int64_t B = tw_size(ctx, prompts, 0), Tp = tw_size(ctx, prompts, 1);
    const int64_t total = Tp + sp.max_new;
    if (sp.max_new < 1 || total > m->cfg.block_size) {
        tw_set_error(
            ctx, TW_ERR_ARG,
            "gpt_sample: prompt length %lld + max_new %d must fit block_size %d (max_new >= 1)",
            (long long)Tp, sp.max_new, m->cfg.block_size);
        return tw_status_get(ctx);
    }

    /* Host copies: the whole sequence, validity and next positions. */
    int64_t *seq = malloc(sizeof(int64_t) * (size_t)(B * total));
    int64_t *valid = malloc(sizeof(int64_t) * (size_t)(B * total));
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(B * total));
    int64_t *next = malloc(sizeof(int64_t) * (size_t)B);
    int *done = calloc((size_t)B, sizeof *done);
    gpt_kv *kv = NULL;
    tw_status rc = (seq && valid && pos && next && done) ? TW_OK : TW_ERR_NOMEM;
    tw_no_grad_begin(ctx);
    tw_scope outer = tw_scope_begin(ctx);
    if (rc == TW_OK) {
        int64_t *tmp = malloc(sizeof(int64_t) * (size_t)(B * Tp));
        rc = tmp ? TW_OK : TW_ERR_NOMEM;
        if (rc == TW_OK) rc = tw_copy_to_i64(ctx, prompts, tmp, (size_t)(B * Tp));
        for (int64_t b = 0; rc == TW_OK && b < B; b++)
            for (int64_t t = 0; t < Tp; t++)
                seq[b * total + t] = tmp[b * Tp + t];
        if (rc == TW_OK && !tw_is_null(key_valid)) {
            tw_tensor kv64 = tw_to_dtype(ctx, key_valid, TW_DTYPE_I64);
            rc = tw_copy_to_i64(ctx, kv64, tmp, (size_t)(B * Tp));
        } else if (rc == TW_OK) {
            for (int64_t i = 0; i < B * Tp; i++)
                tmp[i] = 1;
        }
        for (int64_t b = 0; rc == TW_OK && b < B; b++) {
            int64_t p = 0;
            for (int64_t t = 0; t < total; t++) {
                int64_t ok = t < Tp ? (tmp[b * Tp + t] != 0) : 1;
                valid[b * total + t] = ok;
                pos[b * total + t] = ok ? p++ : 0;
            }
        }
        free(tmp);
    }
    if (rc == TW_OK && sp.use_cache) rc = gpt_kv_new(m, (int)B, (int)total, &kv);

    int64_t cur = Tp; /* tokens known so far */
    int64_t made = 0;
    while (rc == TW_OK && made < sp.max_new) {
        tw_scope step = tw_scope_begin(ctx);
        tw_tensor logits;
        if (sp.use_cache) {
            int64_t from = kv ? gpt_kv_len(kv) : 0, n = cur - from;
            int64_t *bt = malloc(sizeof(int64_t) * (size_t)(3 * B * n));
            if (!bt) {
                tw_scope_end(ctx, step);
                rc = TW_ERR_NOMEM;
                break;
            }
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < n; t++) {
                    bt[b * n + t] = seq[b * total + from + t];
                    bt[B * n + b * n + t] = pos[b * total + from + t];
                    bt[2 * B * n + b * n + t] = valid[b * total + from + t];
                }
            int64_t shape[2] = {B, n};
            logits = gpt_forward_cached(m, kv, tw_from_i64(ctx, bt, 2, shape),
                                        tw_from_i64(ctx, bt + B * n, 2, shape),
                                        tw_from_i64(ctx, bt + 2 * B * n, 2, shape));
            free(bt);
        } else {
            int64_t *bt = malloc(sizeof(int64_t) * (size_t)(3 * B * cur));
            if (!bt) {
                tw_scope_end(ctx, step);
                rc = TW_ERR_NOMEM;
                break;
            }
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < cur; t++) {
                    bt[b * cur + t] = seq[b * total + t];
                    bt[B * cur + b * cur + t] = pos[b * total + t];
                    bt[2 * B * cur + b * cur + t] = valid[b * total + t];
                }
            int64_t shape[2] = {B, cur};
            logits = gpt_forward(m, tw_from_i64(ctx, bt, 2, shape),
                                 tw_from_i64(ctx, bt + B * cur, 2, shape),
                                 tw_from_i64(ctx, bt + 2 * B * cur, 2, shape));
            free(bt);
        }
        tw_tensor tok = pick(ctx, logits, &sp, rng);
        rc = tw_copy_to_i64(ctx, tok, next, (size_t)B);
        tw_scope_end(ctx, step);
        if (rc != TW_OK) break;
        const int all_done = apply_stop(next, done, B, sp.stop_token);
        for (int64_t b = 0; b < B; b++) {
            seq[b * total + cur] = next[b];
            /* Position of the new token: one past the previous real token. */
            pos[b * total + cur] = pos[b * total + cur - 1] + 1;
        }
        cur++;
        made++;
        if (all_done) {
            for (; made < sp.max_new; made++, cur++)
                for (int64_t b = 0; b < B; b++)
                    seq[b * total + cur] = sp.stop_token;
        }
    }
    tw_scope_end(ctx, outer);
    tw_no_grad_end(ctx);
    gpt_kv_free(kv);
    if (rc == TW_OK) {
        int64_t *res = malloc(sizeof(int64_t) * (size_t)(B * sp.max_new));
        if (!res) rc = TW_ERR_NOMEM;
        for (int64_t b = 0; res && b < B; b++)
            for (int64_t t = 0; t < sp.max_new; t++)
                res[b * sp.max_new + t] = seq[b * total + Tp + t];
        if (res) {
            int64_t shape[2] = {B, sp.max_new};
            *out = tw_from_i64(ctx, res, 2, shape);
            rc = tw_status_get(ctx);
        }
        free(res);
    }
    free(seq);
    free(valid);
    free(pos);
    free(next);
    free(done);
    if (rc == TW_ERR_NOMEM && tw_status_get(ctx) == TW_OK) out_of_memory(ctx, "gpt_sample");
    return rc ? rc : tw_status_get(ctx);
}

/* ---- shared prefixes ---- */

typedef struct prefix_arg {
    gpt_prefix *p;
    tw_tensor mask; /* (P, 1, Tp, Tp) the causal mask of the prefix rows (tw_causal_mask) */
} prefix_arg;

static tw_tensor attend_capture(gpt *m, int l, tw_tensor q, tw_tensor k, tw_tensor v, void *arg) {
    prefix_arg *a = arg;
    a->p->k[l] = tw_keep(m->ctx, k);
    a->p->v[l] = tw_keep(m->ctx, v);
    return tw_attention(m->ctx, q, k, v, a->mask);
}

void gpt_prefix_free(gpt_prefix *p) {
    if (!p) return;
    tw_ctx *ctx = p->m->ctx;
    for (int l = 0; l < p->m->cfg.n_layer; l++) {
        if (p->k) tw_free(ctx, p->k[l]);
        if (p->v) tw_free(ctx, p->v[l]);
    }
    tw_free(ctx, p->valid);
    free(p->k);
    free(p->v);
    free(p->count);
    free(p);
}

tw_status gpt_prefix_new(gpt *m, tw_tensor tokens, tw_tensor key_valid, gpt_prefix **out) {
    tw_ctx *ctx = m->ctx;
    *out = NULL;
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    const int nd = tw_ndim(ctx, tokens);
    if (nd != 2) {
        if (nd >= 0)
            tw_set_error(ctx, TW_ERR_SHAPE, "gpt_prefix_new: tokens must be (P, Tp), got %d dims",
                         nd);
        return tw_status_get(ctx);
    }
    const int64_t P = tw_size(ctx, tokens, 0), T = tw_size(ctx, tokens, 1);
    if (P < 1 || T < 1 || T > m->cfg.block_size) {
        tw_set_error(ctx, TW_ERR_SHAPE,
                     "gpt_prefix_new: %lld rows x %lld tokens: need >= 1 of each and at most "
                     "block_size %d tokens",
                     (long long)P, (long long)T, m->cfg.block_size);
        return tw_status_get(ctx);
    }
    gpt_prefix *p = calloc(1, sizeof *p);
    int64_t *host = malloc(sizeof(int64_t) * (size_t)(2 * P * T));
    if (!p || !host) {
        free(p), free(host);
        return out_of_memory(ctx, "gpt_prefix_new");
    }
    p->m = m;
    p->rows = (int)P;
    p->len = (int)T;
    p->k = calloc((size_t)m->cfg.n_layer, sizeof *p->k);
    p->v = calloc((size_t)m->cfg.n_layer, sizeof *p->v);
    p->count = calloc((size_t)P, sizeof *p->count);
    if (!p->k || !p->v || !p->count) {
        free(host);
        gpt_prefix_free(p);
        return out_of_memory(ctx, "gpt_prefix_new");
    }
    tw_scope scope = tw_scope_begin(ctx);
    int64_t shape[2] = {P, T};
    int64_t *valid = host, *pos = host + P * T;
    if (tw_is_null(key_valid)) {
        for (int64_t i = 0; i < P * T; i++)
            valid[i] = 1;
    } else {
        tw_copy_to_i64(ctx, tw_to_dtype(ctx, key_valid, TW_DTYPE_I64), valid, (size_t)(P * T));
    }
    for (int64_t b = 0; b < P; b++) {
        int64_t c = 0;
        for (int64_t t = 0; t < T; t++) {
            valid[b * T + t] = valid[b * T + t] != 0;
            pos[b * T + t] = valid[b * T + t] ? c++ : 0;
        }
        p->count[b] = c;
    }
    p->valid = tw_keep(ctx, tw_from_i64(ctx, valid, 2, shape));
    const int label = tw_prof_label(ctx, TW_KIND_ATTENTION);
    prefix_arg arg = {p, tw_causal_mask(ctx, p->valid, T, T)};
    tw_prof_label(ctx, label);
    tw_tensor x = embed(m, tokens, tw_from_i64(ctx, pos, 2, shape));
    for (int l = 0; l < m->cfg.n_layer; l++)
        x = block(m, l, x, attend_capture, &arg);
    tw_scope_end(ctx, scope);
    free(host);
    if (tw_status_get(ctx) != TW_OK) {
        tw_status s = tw_status_get(ctx);
        gpt_prefix_free(p);
        return s;
    }
    *out = p;
    return TW_OK;
}

int gpt_prefix_count(const gpt_prefix *p, int row) {
    return (row >= 0 && row < p->rows) ? (int)p->count[row] : -1;
}

/* ---- KV caches over a shared prefix ---- */

tw_status gpt_kv_new_shared(gpt *m, const gpt_prefix *p, int rows_per_prefix, int max_len,
                            gpt_kv **out) {
    tw_ctx *ctx = m->ctx;
    *out = NULL;
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (!p || p->m != m || rows_per_prefix < 1 || (int64_t)p->rows * rows_per_prefix > INT32_MAX) {
        tw_set_error(ctx, TW_ERR_ARG,
                     "gpt_kv_new_shared: a prefix of this model and rows_per_prefix >= 1 required");
        return tw_status_get(ctx);
    }
    gpt_kv *kv = NULL;
    tw_status rc = gpt_kv_new(m, p->rows * rows_per_prefix, max_len, &kv);
    if (rc != TW_OK) return rc;
    kv->prefix = p;
    kv->per = rows_per_prefix;
    const int64_t P = p->rows, Tp = p->len;
    int64_t *valid = malloc(sizeof(int64_t) * (size_t)(P * Tp));
    float *bias = malloc(sizeof(float) * (size_t)(P * Tp));
    rc = valid && bias ? tw_copy_to_i64(ctx, p->valid, valid, (size_t)(P * Tp)) : TW_ERR_NOMEM;
    if (rc == TW_OK) {
        for (int64_t i = 0; i < P * Tp; i++)
            bias[i] = valid[i] ? 0.0f : -INFINITY;
        int64_t shape[4] = {P, 1, 1, Tp};
        tw_scope scope = tw_scope_begin(ctx);
        kv->pbias = tw_keep(ctx, tw_from_f32(ctx, bias, 4, shape));
        tw_scope_end(ctx, scope);
        rc = tw_status_get(ctx);
    } else if (rc == TW_ERR_NOMEM) {
        tw_set_error(ctx, rc, "gpt_kv_new_shared: out of memory");
    }
    free(valid), free(bias);
    if (rc != TW_OK) {
        gpt_kv_free(kv);
        return rc;
    }
    *out = kv;
    return TW_OK;
}

/* Attention of one new token per row (q, k, v: (N, H, 1, D)) over the row's prefix keys, held
 * once per prefix row and broadcast over its R = N / P rows, and over the row's own cached
 * positions [0, len] (all real): one softmax over both. */
static tw_tensor attend_shared(gpt *m, gpt_kv *kv, int l, tw_tensor q, tw_tensor k, tw_tensor v) {
    tw_ctx *ctx = m->ctx;
    const gpt_prefix *p = kv->prefix;
    const int64_t N = kv->batch, P = p->rows, R = kv->per, H = m->cfg.n_head, D = m->cfg.n_embd / H;
    const int64_t Tp = p->len, end = kv->len + 1;
    tw_slice_assign(ctx, kv->k[l], 2, kv->len, k);
    tw_slice_assign(ctx, kv->v[l], 2, kv->len, v);
    tw_tensor kk = tw_slice(ctx, kv->k[l], 2, 0, end), vv = tw_slice(ctx, kv->v[l], 2, 0, end);
    tw_tensor qs = tw_scale(ctx, q, 1.0 / sqrt((double)D));            /* (N, H, 1, D) */
    tw_tensor s_own = tw_matmul(ctx, qs, tw_transpose(ctx, kk, 2, 3)); /* (N, H, 1, end) */
    int64_t by_prefix[4] = {P, R, H, D}, by_row_tp[4] = {N, H, 1, Tp},
            by_prefix_tp[4] = {P, R, H, Tp};
    int64_t by_row[4] = {N, H, 1, D};
    tw_tensor qp = tw_transpose(ctx, tw_reshape(ctx, qs, 4, by_prefix), 1, 2); /* (P, H, R, D) */
    tw_tensor s_pre = tw_add(ctx, tw_matmul(ctx, qp, tw_transpose(ctx, p->k[l], 2, 3)),
                             kv->pbias);                                   /* (P, H, R, Tp) */
    s_pre = tw_reshape(ctx, tw_transpose(ctx, s_pre, 1, 2), 4, by_row_tp); /* (N, H, 1, Tp) */
    tw_tensor both[2] = {s_pre, s_own};
    tw_tensor a = tw_softmax(ctx, tw_cat(ctx, both, 2, 3), 3); /* (N, H, 1, Tp + end) */
    tw_tensor a_pre =
        tw_reshape(ctx, tw_slice(ctx, a, 3, 0, Tp), 4, by_prefix_tp);          /* (P, R, H, Tp) */
    tw_tensor y_pre = tw_matmul(ctx, tw_transpose(ctx, a_pre, 1, 2), p->v[l]); /* (P, H, R, D) */
    y_pre = tw_reshape(ctx, tw_transpose(ctx, y_pre, 1, 2), 4, by_row);        /* (N, H, 1, D) */
    return tw_add(ctx, y_pre, tw_matmul(ctx, tw_slice(ctx, a, 3, Tp, Tp + end), vv));
}

typedef struct suffix_arg {
    const gpt_prefix *p;
    tw_tensor idx;   /* (N) int64 prefix row of each row, or TW_NULL for the identity */
    tw_tensor valid; /* (N, Tp + Tn) */
    /* Grouped rows (row i continues prefix row i / R, R = N / P), else 0 / TW_NULL: */
    int64_t per;     /* R */
    tw_tensor pbias; /* (P, H, Tp, 1) float32: 0 for a real prefix key, -1e30 for a pad */
    tw_tensor sbias; /* (N, 1, Tn, Tn) float32: 0 where suffix key j is visible to query i
                        (j <= i, and real or j == i), else -inf */
} suffix_arg;

/* Attention of grouped suffix rows: the queries of a prefix row's R rows meet its keys in one
 * product with the prefix's (P, H, Tp, D) keys, without a copy of them per row, and their own
 * keys in a second; one softmax over both. The scores stay in the grouped layout (P, H, R, Tn,
 * Tp + Tn), so the large matrix is written by the product, concatenated, normalized and read by
 * the next product, and never transposed. Prefix pads are masked through the product: the
 * queries get a column of ones and the keys a column with 0 (real) or -1e30 (pad). Equals
 * attend_suffix's attention over the concatenation [prefix keys, suffix keys] up to float
 * rounding. q, k, v: (N, H, Tn, D). */
static tw_tensor attend_grouped(gpt *m, int l, tw_tensor q, tw_tensor k, tw_tensor v,
                                const suffix_arg *a) {
    tw_ctx *ctx = m->ctx;
    const int64_t N = tw_size(ctx, q, 0), H = tw_size(ctx, q, 1), Tn = tw_size(ctx, q, 2);
    const int64_t D = tw_size(ctx, q, 3), P = a->p->rows, R = a->per, Tp = a->p->len;
    int64_t grp5[5] = {P, H, R, Tn, D}, grp1[4] = {P, H, R * Tn, D + 1};
    int64_t own5[5] = {P, R, H, Tn, Tn}, own[4] = {N, H, Tn, Tn}, pre5[5] = {P, H, R, Tn, Tp};
    int64_t by_row[4] = {N, H, Tn, D}, ones_shape[4] = {N, H, Tn, 1};
    tw_tensor qs = tw_scale(ctx, q, 1.0 / sqrt((double)D));
    /* (N, H, Tn, D + 1) with the ones column, grouped: (P, H, R * Tn, D + 1) */
    tw_tensor q1[2] = {qs, tw_full(ctx, TW_DTYPE_F32, 1.0, 4, ones_shape)};
    int64_t rows5_1[5] = {P, R, H, Tn, D + 1};
    tw_tensor qg = tw_reshape(
        ctx, tw_transpose(ctx, tw_reshape(ctx, tw_cat(ctx, q1, 2, 3), 5, rows5_1), 1, 2), 4, grp1);
    tw_tensor k1[2] = {a->p->k[l], a->pbias}; /* (P, H, Tp, D + 1) */
    tw_tensor s_pre = tw_reshape(
        ctx, tw_matmul(ctx, qg, tw_transpose(ctx, tw_cat(ctx, k1, 2, 3), 2, 3)), 5, pre5);
    tw_tensor s_own =
        tw_add(ctx, tw_matmul(ctx, qs, tw_transpose(ctx, k, 2, 3)), a->sbias); /* (N, H, Tn, Tn) */
    s_own = tw_transpose(ctx, tw_reshape(ctx, s_own, 5, own5), 1, 2); /* (P, H, R, Tn, Tn) */
    tw_tensor both[2] = {s_pre, s_own};
    tw_tensor att = tw_softmax(ctx, tw_cat(ctx, both, 2, 4), 4); /* (P, H, R, Tn, Tp + Tn) */
    int64_t grp_tp[4] = {P, H, R * Tn, Tp};
    tw_tensor y_pre =
        tw_matmul(ctx, tw_reshape(ctx, tw_slice(ctx, att, 4, 0, Tp), 4, grp_tp), a->p->v[l]);
    y_pre = tw_reshape(ctx, tw_transpose(ctx, tw_reshape(ctx, y_pre, 5, grp5), 1, 2), 4,
                       by_row); /* (N, H, Tn, D) */
    tw_tensor a_own =
        tw_reshape(ctx, tw_transpose(ctx, tw_slice(ctx, att, 4, Tp, Tp + Tn), 1, 2), 4, own);
    return tw_add(ctx, y_pre, tw_matmul(ctx, a_own, v));
}

static tw_tensor attend_suffix(gpt *m, int l, tw_tensor q, tw_tensor k, tw_tensor v, void *arg) {
    tw_ctx *ctx = m->ctx;
    suffix_arg *a = arg;
    if (a->per > 0) return attend_grouped(m, l, q, k, v, a);
    tw_tensor pk = a->p->k[l], pv = a->p->v[l];
    if (!tw_is_null(a->idx)) {
        pk = tw_index_select(ctx, pk, 0, a->idx);
        pv = tw_index_select(ctx, pv, 0, a->idx);
    }
    tw_tensor ks[2] = {pk, k}, vs[2] = {pv, v};
    return tw_causal_attention(ctx, q, tw_cat(ctx, ks, 2, 2), tw_cat(ctx, vs, 2, 2), a->valid);
}

tw_tensor gpt_forward_suffix(gpt *m, const gpt_prefix *p, const int64_t *row_of, int n,
                             tw_tensor tokens, tw_tensor key_valid) {
    tw_ctx *ctx = m->ctx;
    if (tw_status_get(ctx) != TW_OK) return TW_NULL;
    if (!p || !row_of || p->m != m) {
        tw_set_error(
            ctx, TW_ERR_ARG,
            "gpt_forward_suffix: prefix or row_of is NULL, or the prefix belongs to another model");
        return TW_NULL;
    }
    const int nd = tw_ndim(ctx, tokens);
    if (nd != 2) {
        if (nd >= 0)
            tw_set_error(ctx, TW_ERR_SHAPE,
                         "gpt_forward_suffix: tokens must be (N, Tn), got %d dims", nd);
        return TW_NULL;
    }
    const int64_t N = tw_size(ctx, tokens, 0), Tn = tw_size(ctx, tokens, 1);
    if (N != n || Tn < 1) {
        tw_set_error(ctx, TW_ERR_SHAPE,
                     "gpt_forward_suffix: tokens (%lld, %lld) do not match %d rows", (long long)N,
                     (long long)Tn, n);
        return TW_NULL;
    }
    /* Grouped attention (attend_grouped) when every prefix row has R >= 2 rows and the prefix is
     * long next to the suffix; otherwise copying the prefix keys to each row costs less than the
     * grouped path's extra ops (measured: docs/performance.md). */
    int identity = n == p->rows, grouped = n % p->rows == 0 && n > p->rows && p->len >= 2 * Tn;
    for (int i = 0; i < n; i++) {
        if (row_of[i] < 0 || row_of[i] >= p->rows) {
            tw_set_error(ctx, TW_ERR_ARG,
                         "gpt_forward_suffix: row_of[%d] = %lld is not a prefix row (0..%d)", i,
                         (long long)row_of[i], p->rows - 1);
            return TW_NULL;
        }
        identity &= row_of[i] == i;
        grouped &= row_of[i] == i / (n / p->rows);
    }
    const int64_t Tp = p->len;
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(2 * N * Tn + p->rows * Tp));
    float *bias = grouped
                      ? malloc(sizeof(float) * (size_t)(p->rows * m->cfg.n_head * Tp + N * Tn * Tn))
                      : NULL;
    if (!pos || (grouped && !bias)) {
        free(pos), free(bias);
        tw_set_error(ctx, TW_ERR_NOMEM, "gpt_forward_suffix: out of memory");
        return TW_NULL;
    }
    int64_t *valid = pos + N * Tn, *pvalid_host = valid + N * Tn;
    tw_scope scope = tw_scope_begin(ctx);
    int64_t shape[2] = {N, Tn}, ishape[1] = {N};
    if (tw_is_null(key_valid)) {
        for (int64_t i = 0; i < N * Tn; i++)
            valid[i] = 1;
    } else if (tw_copy_to_i64(ctx, tw_to_dtype(ctx, key_valid, TW_DTYPE_I64), valid,
                              (size_t)(N * Tn))) {
        free(pos), free(bias);
        return tw_scope_return(ctx, scope, TW_NULL);
    }
    /* Real tokens continue their prefix's positions; pads sit at position 0. */
    for (int64_t i = 0; i < N; i++) {
        int64_t c = p->count[row_of[i]];
        for (int64_t t = 0; t < Tn; t++) {
            valid[i * Tn + t] = valid[i * Tn + t] != 0;
            pos[i * Tn + t] = valid[i * Tn + t] ? c++ : 0;
        }
        if (c > m->cfg.block_size) {
            tw_set_error(
                ctx, TW_ERR_SHAPE,
                "gpt_forward_suffix: row %lld has %lld real tokens, more than block_size %d",
                (long long)i, (long long)c, m->cfg.block_size);
            free(pos), free(bias);
            return tw_scope_return(ctx, scope, TW_NULL);
        }
    }
    suffix_arg arg = {p, TW_NULL, TW_NULL, 0, TW_NULL, TW_NULL};
    if (grouped) {
        /* the masks, once for every layer: prefix pads, then the suffix's causal mask */
        const int64_t P = p->rows;
        float *pb = bias, *sb = bias + P * m->cfg.n_head * Tp;
        if (tw_copy_to_i64(ctx, p->valid, pvalid_host, (size_t)(P * Tp)) == TW_OK) {
            const int64_t H = m->cfg.n_head;
            for (int64_t r = 0; r < P; r++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t t = 0; t < Tp; t++)
                        pb[(r * H + h) * Tp + t] = pvalid_host[r * Tp + t] ? 0.0f : -1e30f;
            for (int64_t r = 0; r < N; r++)
                for (int64_t i = 0; i < Tn; i++)
                    for (int64_t j = 0; j < Tn; j++)
                        sb[(r * Tn + i) * Tn + j] =
                            j <= i && (valid[r * Tn + j] || j == i) ? 0.0f : -INFINITY;
            int64_t pshape[4] = {P, H, Tp, 1}, sshape[4] = {N, 1, Tn, Tn};
            arg.per = N / P;
            arg.pbias = tw_from_f32(ctx, pb, 4, pshape);
            arg.sbias = tw_from_f32(ctx, sb, 4, sshape);
        }
    } else {
        arg.idx = identity ? TW_NULL : tw_from_i64(ctx, row_of, 1, ishape);
        tw_tensor pvalid = identity ? p->valid : tw_index_select(ctx, p->valid, 0, arg.idx);
        tw_tensor vs[2] = {pvalid, tw_from_i64(ctx, valid, 2, shape)};
        arg.valid = tw_cat(ctx, vs, 2, 1);
    }
    tw_tensor x = embed(m, tokens, tw_from_i64(ctx, pos, 2, shape));
    free(pos), free(bias);
    for (int l = 0; l < m->cfg.n_layer; l++)
        x = block(m, l, x, attend_suffix, &arg);
    return tw_scope_return(ctx, scope, head(m, x));
}

tw_status gpt_sample_shared(gpt *m, tw_tensor prompts, tw_tensor key_valid, int n_rep,
                            gpt_sample_params sp, tw_rng *rng, tw_tensor *out) {
    tw_ctx *ctx = m->ctx;
    *out = TW_NULL;
    if (check_sample_args(ctx, "gpt_sample_shared", prompts, &sp, rng) != TW_OK)
        return tw_status_get(ctx);
    const int64_t P = tw_size(ctx, prompts, 0), Tp = tw_size(ctx, prompts, 1);
    const int64_t N = P * (int64_t)n_rep, total = Tp + sp.max_new;
    if (n_rep < 1 || Tp < 2 || sp.max_new < 1 || total > m->cfg.block_size) {
        tw_set_error(ctx, TW_ERR_ARG,
                     "gpt_sample_shared: n_rep %d >= 1, prompt length %lld >= 2, max_new %d >= 1, "
                     "and prompt length + max_new must fit block_size %d",
                     n_rep, (long long)Tp, sp.max_new, m->cfg.block_size);
        return tw_status_get(ctx);
    }
    int64_t *row_of = malloc(sizeof(int64_t) * (size_t)N);
    int64_t *cur = malloc(sizeof(int64_t) * (size_t)N), *pos = malloc(sizeof(int64_t) * (size_t)N);
    int64_t *next = malloc(sizeof(int64_t) * (size_t)N),
            *last = malloc(sizeof(int64_t) * (size_t)P);
    int64_t *res = malloc(sizeof(int64_t) * (size_t)(N * sp.max_new));
    int *done = calloc((size_t)N, sizeof *done);
    gpt_prefix *prefix = NULL;
    gpt_kv *kv = NULL;
    tw_status rc = (row_of && cur && pos && next && last && res && done) ? TW_OK : TW_ERR_NOMEM;
    tw_no_grad_begin(ctx);
    tw_scope outer = tw_scope_begin(ctx);
    if (rc == TW_OK) {
        tw_tensor pv = tw_is_null(key_valid) ? TW_NULL : tw_slice(ctx, key_valid, 1, 0, Tp - 1);
        rc = gpt_prefix_new(m, tw_slice(ctx, prompts, 1, 0, Tp - 1), pv, &prefix);
    }
    if (rc == TW_OK)
        rc = tw_copy_to_i64(ctx, tw_contiguous(ctx, tw_slice(ctx, prompts, 1, Tp - 1, Tp)), last,
                            (size_t)P);
    if (rc == TW_OK) rc = gpt_kv_new(m, (int)N, (int)(Tp - 1 + sp.max_new), &kv);
    if (rc == TW_OK) {
        for (int64_t i = 0; i < N; i++) {
            row_of[i] = i / n_rep;
            cur[i] = last[row_of[i]];
            pos[i] = prefix->count[row_of[i]];
        }
        int64_t ishape[1] = {N};
        tw_tensor idx = tw_from_i64(ctx, row_of, 1, ishape);
        for (int l = 0; l < m->cfg.n_layer; l++) {
            tw_slice_assign(ctx, kv->k[l], 2, 0, tw_index_select(ctx, prefix->k[l], 0, idx));
            tw_slice_assign(ctx, kv->v[l], 2, 0, tw_index_select(ctx, prefix->v[l], 0, idx));
        }
        tw_slice_assign(ctx, kv->valid, 1, 0, tw_index_select(ctx, prefix->valid, 0, idx));
        rc = tw_status_get(ctx);
        kv->len = (int)(Tp - 1);
    }
    gpt_prefix_free(prefix);
    int made = 0;
    while (rc == TW_OK && made < sp.max_new) {
        tw_scope step = tw_scope_begin(ctx);
        int64_t shape[2] = {N, 1};
        tw_tensor logits = gpt_forward_cached(m, kv, tw_from_i64(ctx, cur, 2, shape),
                                              tw_from_i64(ctx, pos, 2, shape), TW_NULL);
        tw_tensor tok = pick(ctx, logits, &sp, rng);
        rc = tw_copy_to_i64(ctx, tok, next, (size_t)N);
        tw_scope_end(ctx, step);
        if (rc != TW_OK) break;
        const int all_done = apply_stop(next, done, N, sp.stop_token);
        for (int64_t i = 0; i < N; i++) {
            res[i * sp.max_new + made] = next[i];
            cur[i] = next[i];
            pos[i]++;
        }
        made++;
        if (all_done) {
            for (; made < sp.max_new; made++)
                for (int64_t i = 0; i < N; i++)
                    res[i * sp.max_new + made] = sp.stop_token;
        }
    }
    tw_scope_end(ctx, outer);
    tw_no_grad_end(ctx);
    gpt_kv_free(kv);
    if (rc == TW_OK) {
        int64_t shape[2] = {N, sp.max_new};
        *out = tw_from_i64(ctx, res, 2, shape);
        rc = tw_status_get(ctx);
    }
    free(row_of), free(cur), free(pos), free(next), free(last), free(res), free(done);
    if (rc == TW_ERR_NOMEM && tw_status_get(ctx) == TW_OK) out_of_memory(ctx, "gpt_sample_shared");
    return rc ? rc : tw_status_get(ctx);
}

static tw_status each_weight(gpt *dst, const gpt *src, double w, int lerp) {
    tw_ctx *ctx = dst->ctx;
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (src->ctx != ctx || memcmp(&src->cfg, &dst->cfg, sizeof src->cfg) != 0) {
        tw_set_error(ctx, TW_ERR_ARG, "gpt weights: the two models differ in context or config");
        return tw_status_get(ctx);
    }
    for (int i = 0; i < dst->n_params; i++) {
        tw_status s = lerp ? tw_lerp_(ctx, dst->params[i], src->params[i], w)
                           : tw_assign(ctx, dst->params[i], src->params[i]);
        if (s != TW_OK) return s;
    }
    return TW_OK;
}

tw_status gpt_copy_weights(gpt *dst, const gpt *src) {
    return each_weight(dst, src, 0.0, 0);
}

tw_status gpt_lerp_weights(gpt *dst, const gpt *src, double w) {
    return each_weight(dst, src, w, 1);
}
