/* Autograd of tw's ops against central finite differences in float64, and the causal
 * attention mask against a plain-C reference: for f = sum(op(inputs) * R) with a fixed random
 * R, tw_backward's gradient must match (f(x + h) - f(x - h)) / 2h on every input element. */
#include "tests/check.h"
#include "harness/torch/tw.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FD_STEP 1e-6      /* h of the central differences */
#define FD_TOL 1e-6       /* max abs diff <= FD_TOL * max(1, max |analytic grad|) */
#define ATT_REF_TOL 1e-12 /* float64 attention against the plain-C softmax reference */
#define MAX_INPUTS 4

/* Deterministic uniform numbers in [lo, hi) (64-bit LCG, top 53 bits). */
static uint64_t lcg_state = 0x9E3779B97F4A7C15ull;
static double uniform(double lo, double hi) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(lcg_state >> 11) * (1.0 / 9007199254740992.0);
}

/* The op under test, over differentiable float64 inputs; constants come through arg. */
typedef tw_tensor (*op_fn)(tw_ctx *ctx, const tw_tensor *in, const void *arg);

typedef struct grad_case {
    const char *name;
    int n_in;
    int ndim[MAX_INPUTS];
    int64_t shape[MAX_INPUTS][4];
    op_fn fn;
    const void *arg;
} grad_case;

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* f = sum(op(x) * R) evaluated without autograd; NAN on error. */
static double eval_f(tw_ctx *ctx, const grad_case *gc, double *const *x, const double *R,
                     int64_t n_out) {
    tw_scope s = tw_scope_begin(ctx);
    tw_no_grad_begin(ctx);
    tw_tensor in[MAX_INPUTS];
    for (int i = 0; i < gc->n_in; i++)
        in[i] = tw_from_f64(ctx, x[i], gc->ndim[i], gc->shape[i]);
    tw_tensor out = gc->fn(ctx, in, gc->arg);
    double *buf = malloc(sizeof(double) * (size_t)n_out);
    double f = NAN;
    if (buf && tw_copy_to_f64(ctx, out, buf, (size_t)n_out) == TW_OK) {
        f = 0;
        for (int64_t j = 0; j < n_out; j++)
            f += buf[j] * R[j];
    }
    free(buf);
    tw_no_grad_end(ctx);
    tw_scope_end(ctx, s);
    return f;
}

/* Runs one finite-difference check. Inputs are drawn uniformly from [lo, hi). */
static void check_grad(tw_ctx *ctx, const grad_case *gc, double lo, double hi) {
    double *x[MAX_INPUTS] = {0}, *grad[MAX_INPUTS] = {0}, *R = NULL;
    int64_t n[MAX_INPUTS];
    for (int i = 0; i < gc->n_in; i++) {
        n[i] = numel_of(gc->ndim[i], gc->shape[i]);
        x[i] = malloc(sizeof(double) * (size_t)n[i]);
        grad[i] = malloc(sizeof(double) * (size_t)n[i]);
        if (!x[i] || !grad[i]) goto done;
        for (int64_t j = 0; j < n[i]; j++)
            x[i][j] = uniform(lo, hi);
    }

    /* Analytic gradients. */
    tw_scope s = tw_scope_begin(ctx);
    tw_tensor in[MAX_INPUTS];
    for (int i = 0; i < gc->n_in; i++) {
        in[i] = tw_from_f64(ctx, x[i], gc->ndim[i], gc->shape[i]);
        tw_set_requires_grad(ctx, in[i], 1);
    }
    tw_tensor out = gc->fn(ctx, in, gc->arg);
    int64_t oshape[TW_MAX_DIMS];
    int ond = tw_shape(ctx, out, oshape);
    CHECK_MSG(ond >= 0 && tw_dtype_of(ctx, out) == TW_DTYPE_F64, "%s: forward failed: %s", gc->name,
              tw_errmsg(ctx));
    if (ond < 0) {
        tw_scope_end(ctx, s);
        tw_clear_error(ctx);
        goto done;
    }
    const int64_t n_out = numel_of(ond, oshape);
    R = malloc(sizeof(double) * (size_t)n_out);
    if (!R) {
        tw_scope_end(ctx, s);
        goto done;
    }
    for (int64_t j = 0; j < n_out; j++)
        R[j] = uniform(-1.0, 1.0);
    tw_tensor loss = tw_sum(ctx, tw_mul(ctx, out, tw_from_f64(ctx, R, ond, oshape)));
    CHECK_MSG(tw_backward(ctx, loss) == TW_OK, "%s: backward: %s", gc->name, tw_errmsg(ctx));
    for (int i = 0; i < gc->n_in; i++) {
        tw_tensor g = tw_grad(ctx, in[i]);
        CHECK_MSG(!tw_is_null(g) && tw_copy_to_f64(ctx, g, grad[i], (size_t)n[i]) == TW_OK,
                  "%s: no gradient for input %d: %s", gc->name, i, tw_errmsg(ctx));
        if (tw_is_null(g)) memset(grad[i], 0, sizeof(double) * (size_t)n[i]);
    }
    tw_scope_end(ctx, s);
    tw_clear_error(ctx);

    /* Central differences on every element of every input. */
    for (int i = 0; i < gc->n_in; i++) {
        double worst = 0, gmax = 0;
        int64_t worst_j = 0;
        for (int64_t j = 0; j < n[i]; j++) {
            const double x0 = x[i][j];
            x[i][j] = x0 + FD_STEP;
            double fp = eval_f(ctx, gc, x, R, n_out);
            x[i][j] = x0 - FD_STEP;
            double fm = eval_f(ctx, gc, x, R, n_out);
            x[i][j] = x0;
            double fd = (fp - fm) / (2 * FD_STEP);
            double d = fabs(fd - grad[i][j]);
            if (isnan(d)) d = INFINITY; /* NaN counts as worst */
            if (d > worst) worst = d, worst_j = j;
            gmax = fmax(gmax, fabs(grad[i][j]));
        }
        const double tol = FD_TOL * fmax(1.0, gmax);
        CHECK_MSG(worst <= tol, "%s: input %d: |analytic - numeric| = %g at element %lld (tol %g)",
                  gc->name, i, worst, (long long)worst_j, tol);
        /* The check means nothing if the gradient vanishes. */
        CHECK_MSG(gmax > 1e-3, "%s: input %d: gradient is (nearly) zero everywhere", gc->name, i);
    }
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
done:
    for (int i = 0; i < gc->n_in; i++)
        free(x[i]), free(grad[i]);
    free(R);
}

/* ---- the ops under test ---- */

typedef struct attn_arg {
    int64_t B, Tk;
    const int64_t *key_valid; /* (B, Tk) or NULL */
    int as_bool;              /* pass key_valid as a bool tensor */
} attn_arg;

static tw_tensor key_valid_tensor(tw_ctx *ctx, const attn_arg *a) {
    if (!a->key_valid) return TW_NULL;
    int64_t shape[2] = {a->B, a->Tk};
    tw_tensor kv = tw_from_i64(ctx, a->key_valid, 2, shape);
    return a->as_bool ? tw_eq_scalar(ctx, kv, 1.0) : kv;
}

static tw_tensor op_attention(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    return tw_causal_attention(ctx, in[0], in[1], in[2], key_valid_tensor(ctx, arg));
}

static tw_tensor op_layer_norm(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    (void)arg;
    return tw_layer_norm(ctx, in[0], in[1], in[2], 1e-5);
}

static tw_tensor op_gelu(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    (void)arg;
    return tw_gelu(ctx, in[0]);
}

static tw_tensor op_log_softmax(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    return tw_log_softmax(ctx, in[0], *(const int *)arg);
}

/* KL between the distributions of two rows of raw scores. */
static tw_tensor op_kl(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    (void)arg;
    return tw_kl_rows(ctx, tw_log_softmax(ctx, in[0], -1), tw_log_softmax(ctx, in[1], -1));
}

typedef struct ce_arg {
    const int64_t *targets;
    int64_t n;
    int64_t ignore_index;
} ce_arg;

static tw_tensor op_cross_entropy(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    const ce_arg *a = arg;
    int64_t shape[1] = {a->n};
    return tw_cross_entropy(ctx, in[0], tw_from_i64(ctx, a->targets, 1, shape), a->ignore_index);
}

static tw_tensor op_linear(tw_ctx *ctx, const tw_tensor *in, const void *arg) {
    const int with_bias = *(const int *)arg;
    return tw_linear(ctx, in[0], in[1], with_bias ? in[2] : TW_NULL);
}

/* ---- attention mask against plain C ---- */

/* out (B, H, Tq, d) from q (B, H, Tq, d), k, v (B, H, Tk, d): query i at position
 * p = Tk - Tq + i sees key j when j <= p and (valid[b, j] or j == p). */
static void attention_ref(const double *q, const double *k, const double *v, const int64_t *valid,
                          int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t d, double *out) {
    double w[64];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const int64_t p = Tk - Tq + i;
                const double *qi = q + ((b * H + h) * Tq + i) * d;
                double mx = -INFINITY, z = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    int ok = j <= p && (!valid || valid[b * Tk + j] || j == p);
                    w[j] = -INFINITY;
                    if (!ok) continue;
                    double sdot = 0;
                    for (int64_t c = 0; c < d; c++)
                        sdot += qi[c] * k[((b * H + h) * Tk + j) * d + c];
                    w[j] = sdot / sqrt((double)d);
                    mx = fmax(mx, w[j]);
                }
                for (int64_t j = 0; j < Tk; j++) {
                    w[j] = isinf(w[j]) ? 0.0 : exp(w[j] - mx);
                    z += w[j];
                }
                double *o = out + ((b * H + h) * Tq + i) * d;
                for (int64_t c = 0; c < d; c++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Tk; j++)
                        acc += w[j] * v[((b * H + h) * Tk + j) * d + c];
                    o[c] = acc / z;
                }
            }
}

static void check_attention_mask(tw_ctx *ctx, const char *name, int64_t Tq, const attn_arg *a) {
    const int64_t B = a->B, H = 2, Tk = a->Tk, d = 3;
    const int64_t nq = B * H * Tq * d, nk = B * H * Tk * d;
    double *q = malloc(sizeof(double) * (size_t)nq), *k = malloc(sizeof(double) * (size_t)nk);
    double *v = malloc(sizeof(double) * (size_t)nk), *got = malloc(sizeof(double) * (size_t)nq);
    double *ref = malloc(sizeof(double) * (size_t)nq);
    if (q && k && v && got && ref) {
        for (int64_t i = 0; i < nq; i++)
            q[i] = uniform(-2, 2);
        for (int64_t i = 0; i < nk; i++)
            k[i] = uniform(-2, 2), v[i] = uniform(-2, 2);
        int64_t qs[4] = {B, H, Tq, d}, ks[4] = {B, H, Tk, d};
        tw_scope s = tw_scope_begin(ctx);
        tw_tensor out =
            tw_causal_attention(ctx, tw_from_f64(ctx, q, 4, qs), tw_from_f64(ctx, k, 4, ks),
                                tw_from_f64(ctx, v, 4, ks), key_valid_tensor(ctx, a));
        CHECK_MSG(tw_copy_to_f64(ctx, out, got, (size_t)nq) == TW_OK, "%s: %s", name,
                  tw_errmsg(ctx));
        tw_scope_end(ctx, s);
        tw_clear_error(ctx);
        attention_ref(q, k, v, a->key_valid, B, H, Tq, Tk, d, ref);
        double worst = 0;
        for (int64_t i = 0; i < nq; i++) {
            double e = fabs(got[i] - ref[i]);
            if (isnan(e)) e = INFINITY;
            if (e > worst) worst = e;
        }
        CHECK_MSG(worst <= ATT_REF_TOL, "%s: attention differs from the reference by %g", name,
                  worst);
    }
    free(q), free(k), free(v), free(got), free(ref);
}

/* Mean cross-entropy in plain C, to pin the loss value (not just its gradient). */
static void check_cross_entropy_value(tw_ctx *ctx, const ce_arg *a, int64_t V) {
    double logits[4 * 6];
    for (int i = 0; i < 4 * 6; i++)
        logits[i] = uniform(-3, 3);
    double ref = 0;
    int counted = 0;
    for (int64_t r = 0; r < a->n; r++) {
        if (a->targets[r] == a->ignore_index) continue;
        double mx = -INFINITY, z = 0;
        for (int64_t c = 0; c < V; c++)
            mx = fmax(mx, logits[r * V + c]);
        for (int64_t c = 0; c < V; c++)
            z += exp(logits[r * V + c] - mx);
        ref += -(logits[r * V + a->targets[r]] - mx - log(z));
        counted++;
    }
    ref /= counted;
    int64_t shape[2] = {a->n, V};
    tw_scope s = tw_scope_begin(ctx);
    tw_tensor in[1] = {tw_from_f64(ctx, logits, 2, shape)};
    double got = NAN;
    CHECK_EQ_INT(tw_item(ctx, op_cross_entropy(ctx, in, a), &got), TW_OK);
    CHECK_NEAR(got, ref, 1e-12);
    tw_scope_end(ctx, s);
}

int main(void) {
    tw_set_num_threads(1);
    char err[256];
    tw_ctx *ctx = NULL;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) != TW_OK) {
        CHECK_MSG(0, "tw_ctx_new: %s", err);
        return check_report("test_tw_grad");
    }

    /* Attention: no mask; a (2, 5) key mask with a left-padded row and a gappy row; and
     * 2 queries over 5 keys (cached decoding) with the same mask, as a bool tensor. */
    static const int64_t valid[2 * 5] = {0, 0, 1, 1, 1, /**/ 1, 0, 1, 1, 0};
    const attn_arg a_none = {.B = 2, .Tk = 5, .key_valid = NULL};
    const attn_arg a_mask = {.B = 2, .Tk = 5, .key_valid = valid};
    const attn_arg a_mask_bool = {.B = 2, .Tk = 5, .key_valid = valid, .as_bool = 1};
    grad_case att = {.name = "attention",
                     .n_in = 3,
                     .ndim = {4, 4, 4},
                     .shape = {{2, 2, 5, 3}, {2, 2, 5, 3}, {2, 2, 5, 3}},
                     .fn = op_attention,
                     .arg = &a_none};
    check_grad(ctx, &att, -2, 2);
    att.name = "attention, key_valid";
    att.arg = &a_mask;
    check_grad(ctx, &att, -2, 2);
    att.name = "attention, Tq 2 < Tk 5, key_valid";
    att.shape[0][2] = 2;
    att.arg = &a_mask_bool;
    check_grad(ctx, &att, -2, 2);

    check_attention_mask(ctx, "mask: none", 5, &a_none);
    check_attention_mask(ctx, "mask: key_valid", 5, &a_mask);
    check_attention_mask(ctx, "mask: key_valid bool", 5, &a_mask_bool);
    check_attention_mask(ctx, "mask: Tq 2 < Tk 5", 2, &a_mask);
    check_attention_mask(ctx, "mask: Tq 1 < Tk 5", 1, &a_mask_bool);
    check_attention_mask(ctx, "mask: Tq 3 < Tk 5, no mask", 3, &a_none);

    grad_case ln = {.name = "layer_norm",
                    .n_in = 3,
                    .ndim = {3, 1, 1},
                    .shape = {{2, 3, 6}, {6}, {6}},
                    .fn = op_layer_norm};
    check_grad(ctx, &ln, -2, 2);

    grad_case gelu = {.name = "gelu", .n_in = 1, .ndim = {2}, .shape = {{3, 4}}, .fn = op_gelu};
    check_grad(ctx, &gelu, -3, 3);

    static const int dim_last = -1, dim_first = 0;
    grad_case lsm = {.name = "log_softmax dim -1",
                     .n_in = 1,
                     .ndim = {2},
                     .shape = {{3, 5}},
                     .fn = op_log_softmax,
                     .arg = &dim_last};
    check_grad(ctx, &lsm, -3, 3);
    lsm.name = "log_softmax dim 0";
    lsm.arg = &dim_first;
    check_grad(ctx, &lsm, -3, 3);

    grad_case kl = {
        .name = "kl_rows", .n_in = 2, .ndim = {2, 2}, .shape = {{3, 5}, {3, 5}}, .fn = op_kl};
    check_grad(ctx, &kl, -2, 2);

    static const int64_t targets[4] = {1, 5, -1, 0};
    const ce_arg ce = {.targets = targets, .n = 4, .ignore_index = -1};
    grad_case cent = {.name = "cross_entropy",
                      .n_in = 1,
                      .ndim = {2},
                      .shape = {{4, 6}},
                      .fn = op_cross_entropy,
                      .arg = &ce};
    check_grad(ctx, &cent, -3, 3);
    check_cross_entropy_value(ctx, &ce, 6);

    static const int with_bias = 1, without_bias = 0;
    grad_case lin = {.name = "linear",
                     .n_in = 3,
                     .ndim = {3, 2, 1},
                     .shape = {{2, 3, 4}, {5, 4}, {5}},
                     .fn = op_linear,
                     .arg = &with_bias};
    check_grad(ctx, &lin, -1, 1);
    lin.name = "linear, no bias";
    lin.n_in = 2;
    lin.arg = &without_bias;
    check_grad(ctx, &lin, -1, 1);

    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
    return check_report("test_tw_grad");
}
