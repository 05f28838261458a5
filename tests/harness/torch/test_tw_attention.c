/* tw_causal_attention's decoding kernel (one query per row, no autograd) against the composite
 * path libtorch's ops take under grad, and tw_causal_mask + tw_attention against the composite
 * path (values and gradients). Decoding cases: strided keys (a slice of a longer cache), padded
 * keys, head sizes that are and are not multiples of 8, bool and int64 validity; within 1e-5. */
#include "tests/check.h"
#include "harness/torch/tw.h"

#include <math.h>
#include <stdlib.h>

#define ATT_TOL 1e-5

static void compare(tw_ctx *ctx, tw_rng *rng, int64_t B, int64_t H, int64_t Tk, int64_t D,
                    int masked, tw_dtype vdtype) {
    tw_scope sc = tw_scope_begin(ctx);
    int64_t qs[4] = {B, H, 1, D}, cs[4] = {B, H, Tk + 5, D};
    tw_tensor q = tw_randn(ctx, rng, 0, 1, 4, qs);
    /* keys and values: the first Tk positions of a longer cache, as decoding reads them */
    tw_tensor k = tw_slice(ctx, tw_randn(ctx, rng, 0, 1, 4, cs), 2, 0, Tk);
    tw_tensor v = tw_slice(ctx, tw_randn(ctx, rng, 0, 1, 4, cs), 2, 0, Tk);
    tw_tensor valid = TW_NULL;
    if (masked) {
        int64_t *m = malloc(sizeof(int64_t) * (size_t)(B * Tk));
        for (int64_t i = 0; i < B * Tk; i++)
            m[i] = (i * 7 + 3) % 5 != 0; /* some pads */
        for (int64_t j = 0; j < Tk - 1; j++)
            m[j] = 0; /* row 0: only the query's own key */
        int64_t vs[2] = {B, Tk};
        valid = tw_to_dtype(ctx, tw_from_i64(ctx, m, 2, vs), vdtype);
        free(m);
    }
    tw_no_grad_begin(ctx);
    tw_tensor fast = tw_causal_attention(ctx, q, k, v, valid);
    tw_no_grad_end(ctx);
    tw_tensor qg = tw_clone(ctx, q);
    tw_set_requires_grad(ctx, qg, 1);
    tw_tensor ref = tw_causal_attention(ctx, qg, k, v, valid);
    const size_t n = (size_t)(B * H * D);
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    tw_copy_to_f32(ctx, fast, a, n);
    tw_copy_to_f32(ctx, tw_detach(ctx, ref), b, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    CHECK_MSG(worst <= ATT_TOL, "B %lld H %lld Tk %lld D %lld masked %d: max difference %g",
              (long long)B, (long long)H, (long long)Tk, (long long)D, masked, worst);
    if (masked) { /* row 0 sees only its own key: the output is that key's value */
        float *vv = malloc(sizeof(float) * (size_t)(B * H * Tk * D));
        tw_copy_to_f32(ctx, tw_contiguous(ctx, v), vv, (size_t)(B * H * Tk * D));
        for (int64_t h = 0; h < H; h++)
            for (int64_t d = 0; d < D; d++)
                CHECK_NEAR(a[h * D + d], vv[(h * Tk + Tk - 1) * D + d], 1e-6);
        free(vv);
    }
    free(a), free(b);
    tw_scope_end(ctx, sc);
    CHECK_MSG(tw_status_get(ctx) == TW_OK, "%s", tw_errmsg(ctx));
}

/* tw_causal_mask + tw_attention against tw_causal_attention (several queries: the composite
 * path), with and without key validity, and under grad (the same gradient of q). */
static void compare_masked(tw_ctx *ctx, tw_rng *rng, int64_t B, int64_t H, int64_t Tq, int64_t Tk,
                           int64_t D, int masked) {
    tw_scope sc = tw_scope_begin(ctx);
    int64_t qs[4] = {B, H, Tq, D}, ks[4] = {B, H, Tk, D};
    tw_tensor q = tw_randn(ctx, rng, 0, 1, 4, qs), k = tw_randn(ctx, rng, 0, 1, 4, ks);
    tw_tensor v = tw_randn(ctx, rng, 0, 1, 4, ks), valid = TW_NULL;
    tw_set_requires_grad(ctx, q, 1);
    if (masked) {
        int64_t *m = malloc(sizeof(int64_t) * (size_t)(B * Tk)), vs[2] = {B, Tk};
        for (int64_t i = 0; i < B * Tk; i++)
            m[i] = (i * 5 + 1) % 3 != 0;
        valid = tw_from_i64(ctx, m, 2, vs);
        free(m);
    }
    tw_tensor a = tw_causal_attention(ctx, q, k, v, valid);
    tw_tensor b = tw_attention(ctx, q, k, v, tw_causal_mask(ctx, valid, Tq, Tk));
    const size_t n = (size_t)(B * H * Tq * D);
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    tw_copy_to_f32(ctx, tw_detach(ctx, a), x, n);
    tw_copy_to_f32(ctx, tw_detach(ctx, b), y, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)x[i] - y[i]));
    CHECK_MSG(worst <= 1e-6, "mask path: max difference %g (Tq %lld Tk %lld masked %d)", worst,
              (long long)Tq, (long long)Tk, masked);
    tw_backward(ctx, tw_sum(ctx, tw_mul(ctx, a, a)));
    tw_copy_to_f32(ctx, tw_grad(ctx, q), x, n);
    tw_zero_grad(ctx, &q, 1);
    tw_backward(ctx, tw_sum(ctx, tw_mul(ctx, b, b)));
    tw_copy_to_f32(ctx, tw_grad(ctx, q), y, n);
    worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)x[i] - y[i]));
    CHECK_MSG(worst <= 1e-5, "mask path: gradient differs by %g", worst);
    free(x), free(y);
    tw_scope_end(ctx, sc);
    CHECK_MSG(tw_status_get(ctx) == TW_OK, "%s", tw_errmsg(ctx));
}

int main(void) {
    tw_ctx *ctx = NULL;
    char err[256];
    CHECK(tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) == TW_OK);
    tw_rng *rng = NULL;
    tw_rng_new(ctx, 11, &rng);
    for (int threads = 1; threads <= 2; threads++) {
        tw_set_num_threads(threads);
        compare(ctx, rng, 5, 4, 37, 16, 0, TW_DTYPE_BOOL);
        compare(ctx, rng, 5, 4, 37, 16, 1, TW_DTYPE_BOOL);
        compare(ctx, rng, 3, 2, 9, 20, 1, TW_DTYPE_I64);
        compare(ctx, rng, 2, 3, 1, 5, 1, TW_DTYPE_I64);
        compare(ctx, rng, 120, 4, 50, 32, 1, TW_DTYPE_BOOL);
    }
    compare_masked(ctx, rng, 3, 2, 7, 7, 8, 0);
    compare_masked(ctx, rng, 3, 2, 7, 7, 8, 1);
    compare_masked(ctx, rng, 2, 4, 5, 12, 16, 1);
    /* a NaN in the query stays a NaN (the NaN rule relies on it) */
    tw_set_num_threads(1);
    int64_t qs[4] = {1, 1, 1, 8};
    float qn[8] = {NAN, 0, 0, 0, 0, 0, 0, 0}, out[8];
    tw_scope sc = tw_scope_begin(ctx);
    tw_tensor q = tw_from_f32(ctx, qn, 4, qs);
    int64_t ks[4] = {1, 1, 3, 8};
    tw_tensor k = tw_randn(ctx, rng, 0, 1, 4, ks), v = tw_randn(ctx, rng, 0, 1, 4, ks);
    tw_no_grad_begin(ctx);
    tw_copy_to_f32(ctx, tw_causal_attention(ctx, q, k, v, TW_NULL), out, 8);
    tw_no_grad_end(ctx);
    CHECK_MSG(isnan(out[0]), "a NaN query gave %g", out[0]);
    tw_scope_end(ctx, sc);
    tw_rng_free(rng);
    tw_ctx_free(ctx);
    return check_report("test_tw_attention");
}
