/* tw's failure paths and bookkeeping: bad calls return a status with a readable message on
 * the context and never abort; errors are sticky until cleared; scopes free what they own;
 * generator state round-trips exactly. */
#include "tests/check.h"
#include "harness/model/gpt.h"
#include "harness/torch/tw.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Checks that ctx holds status `want` (or `alt`, when it is not TW_OK) and that the message
 * contains each of the NULL-terminated substrings, then clears the error. `line` and `what`
 * name the call site in failure output. Use through EXPECT_ERROR. */
static void expect_error(tw_ctx *ctx, int line, const char *what, tw_status want, tw_status alt,
                         ...) {
    tw_status s = tw_status_get(ctx);
    const char *msg = tw_errmsg(ctx);
    CHECK_MSG(s == want || (alt != TW_OK && s == alt),
              "line %d (%s): status %d (%s), expected %d; message \"%s\"", line, what, (int)s,
              tw_status_str(s), (int)want, msg);
    va_list ap;
    va_start(ap, alt);
    for (const char *sub; (sub = va_arg(ap, const char *)) != NULL;)
        CHECK_MSG(strstr(msg, sub) != NULL, "line %d (%s): message \"%s\" lacks \"%s\"", line, what,
                  msg, sub);
    va_end(ap);
    tw_clear_error(ctx);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    CHECK_EQ_STR(tw_errmsg(ctx), "");
}
#define EXPECT_ERROR(ctx, what, want, alt, ...)                                                    \
    expect_error((ctx), __LINE__, (what), (want), (alt), __VA_ARGS__, (const char *)NULL)

static tw_tensor full2(tw_ctx *ctx, double value, int64_t r, int64_t c) {
    int64_t shape[2] = {r, c};
    return tw_full(ctx, TW_DTYPE_F32, value, 2, shape);
}

static tw_ctx *new_ctx(void) {
    char err[256] = "";
    tw_ctx *ctx = NULL;
    tw_status s = tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err);
    CHECK_MSG(s == TW_OK && ctx, "tw_ctx_new: %s", err);
    return ctx;
}

/* Shape mismatches in the main ops: status, TW_NULL result, no new tensor, message naming
 * the op and the shapes. */
static void test_shape_errors(void) {
    tw_ctx *ctx = new_ctx();
    tw_scope sc = tw_scope_begin(ctx);
    tw_tensor a = full2(ctx, 1.0, 2, 3), b = full2(ctx, 1.0, 4, 5);
    size_t live = tw_live_count(ctx);

    tw_tensor r = tw_matmul(ctx, a, b);
    CHECK(tw_is_null(r));
    CHECK_EQ_INT(tw_live_count(ctx), live);
    EXPECT_ERROR(ctx, "matmul", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_matmul", "[2, 3]", "[4, 5]");

    /* x (2, 3) against a weight (4, 5) whose in-features are 5. */
    r = tw_linear(ctx, a, b, TW_NULL);
    CHECK(tw_is_null(r));
    EXPECT_ERROR(ctx, "linear", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_linear", "[2, 3]", "[4, 5]");

    tw_tensor c = full2(ctx, 1.0, 2, 4);
    tw_tensor xs[2] = {a, c};
    r = tw_cat(ctx, xs, 2, 0);
    CHECK(tw_is_null(r));
    EXPECT_ERROR(ctx, "cat", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_cat", "[2, 3]", "[2, 4]");
    /* The same pair along dim 1 is fine. */
    r = tw_cat(ctx, xs, 2, 1);
    CHECK_EQ_INT(tw_size(ctx, r, 1), 7);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);

    int64_t qs[4] = {2, 2, 5, 3}, ks[4] = {2, 2, 5, 4};
    tw_tensor q = tw_zeros(ctx, TW_DTYPE_F32, 4, qs), k = tw_zeros(ctx, TW_DTYPE_F32, 4, ks);
    r = tw_causal_attention(ctx, q, k, k, TW_NULL);
    CHECK(tw_is_null(r));
    EXPECT_ERROR(ctx, "attention", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_causal_attention",
                 "[2, 2, 5, 3]", "[2, 2, 5, 4]");
    /* More queries than keys. */
    int64_t ks2[4] = {2, 2, 4, 3};
    tw_tensor k2 = tw_zeros(ctx, TW_DTYPE_F32, 4, ks2);
    r = tw_causal_attention(ctx, q, k2, k2, TW_NULL);
    CHECK(tw_is_null(r));
    EXPECT_ERROR(ctx, "attention Tq > Tk", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_causal_attention",
                 "[2, 2, 4, 3]");
    /* key_valid of the wrong length. */
    int64_t vs[2] = {2, 4};
    tw_tensor kvalid = tw_full(ctx, TW_DTYPE_I64, 1.0, 2, vs);
    r = tw_causal_attention(ctx, q, q, q, kvalid);
    CHECK(tw_is_null(r));
    EXPECT_ERROR(ctx, "attention key_valid", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_causal_attention",
                 "key_valid", "[2, 4]");

    int64_t ls[2] = {4, 7}, ts[1] = {3};
    tw_tensor logits = tw_zeros(ctx, TW_DTYPE_F32, 2, ls);
    tw_tensor targets = tw_zeros(ctx, TW_DTYPE_I64, 1, ts);
    r = tw_cross_entropy(ctx, logits, targets, -1);
    CHECK(tw_is_null(r));
    EXPECT_ERROR(ctx, "cross_entropy", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_cross_entropy", "[4, 7]",
                 "[3]");

    /* Reshape to an impossible size and an out-of-range slice. */
    int64_t bad[2] = {4, 2};
    CHECK(tw_is_null(tw_reshape(ctx, a, 2, bad)));
    EXPECT_ERROR(ctx, "reshape", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_reshape", "[2, 3]");
    CHECK(tw_is_null(tw_slice(ctx, a, 1, 0, 9)));
    EXPECT_ERROR(ctx, "slice", TW_ERR_SHAPE, TW_ERR_TORCH, "tw_slice", "[2, 3]");
    CHECK(tw_is_null(tw_zeros(ctx, TW_DTYPE_F32, TW_MAX_DIMS + 1, ls)));
    EXPECT_ERROR(ctx, "ndim", TW_ERR_ARG, TW_OK, "tw_full", "ndim");

    tw_scope_end(ctx, sc);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
}

/* Freed, null, foreign and never-issued handles. */
static void test_handle_errors(void) {
    tw_ctx *ctx = new_ctx(), *other = new_ctx();
    tw_tensor a = full2(ctx, 2.0, 2, 2);
    tw_tensor dead = full2(ctx, 1.0, 2, 2);
    tw_free(ctx, dead);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    CHECK_EQ_INT(tw_live_count(ctx), 1);

    CHECK(tw_is_null(tw_add(ctx, a, dead)));
    EXPECT_ERROR(ctx, "freed arg 2", TW_ERR_HANDLE, TW_OK, "tw_add", "argument 2", "freed");
    CHECK(tw_is_null(tw_exp(ctx, dead)));
    EXPECT_ERROR(ctx, "freed arg 1", TW_ERR_HANDLE, TW_OK, "tw_exp", "freed");
    tw_free(ctx, dead); /* double free */
    EXPECT_ERROR(ctx, "double free", TW_ERR_HANDLE, TW_OK, "tw_free", "freed");
    /* A new tensor may reuse the slot; the stale handle must still be refused. */
    tw_tensor reuse = full2(ctx, 3.0, 2, 2);
    CHECK(reuse.id != dead.id);
    CHECK(tw_is_null(tw_clone(ctx, dead)));
    EXPECT_ERROR(ctx, "stale after reuse", TW_ERR_HANDLE, TW_OK, "freed");
    float buf[4];
    CHECK_EQ_INT(tw_copy_to_f32(ctx, dead, buf, 4), TW_ERR_HANDLE);
    EXPECT_ERROR(ctx, "copy freed", TW_ERR_HANDLE, TW_OK, "tw_copy_to_f32", "freed");

    CHECK(tw_is_null(tw_mul(ctx, TW_NULL, a)));
    EXPECT_ERROR(ctx, "null", TW_ERR_HANDLE, TW_OK, "tw_mul", "null");
    CHECK_EQ_INT(tw_ndim(ctx, TW_NULL), -1);
    EXPECT_ERROR(ctx, "ndim null", TW_ERR_HANDLE, TW_OK, "tw_ndim", "null");
    tw_free(ctx, TW_NULL); /* documented no-op */
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);

    tw_tensor foreign = full2(other, 1.0, 2, 2);
    CHECK(tw_is_null(tw_add(ctx, a, foreign)));
    EXPECT_ERROR(ctx, "foreign", TW_ERR_HANDLE, TW_OK, "tw_add", "another context");
    tw_free(ctx, foreign);
    EXPECT_ERROR(ctx, "free foreign", TW_ERR_HANDLE, TW_OK, "another context");
    CHECK_EQ_INT(tw_live_count(other), 1); /* not freed by the wrong context */
    CHECK_EQ_INT(tw_status_get(other), TW_OK);

    tw_tensor forged = {a.id + 1000}; /* right tag and generation, slot never issued */
    CHECK(tw_is_null(tw_exp(ctx, forged)));
    EXPECT_ERROR(ctx, "forged", TW_ERR_HANDLE, TW_OK, "tw_exp");

    /* a is still fine after all of this. */
    float got[4] = {0};
    CHECK_EQ_INT(tw_copy_to_f32(ctx, a, got, 4), TW_OK);
    CHECK(got[0] == 2.0f && got[3] == 2.0f);
    tw_free(ctx, a);
    tw_free(ctx, reuse);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(other);
    tw_ctx_free(ctx);
}

static void test_device_errors(void) {
    char err[256];
    tw_ctx *ctx = (tw_ctx *)&err; /* must be overwritten with NULL */
    strcpy(err, "");
    CHECK_EQ_INT(tw_ctx_new(&ctx, (tw_device)7, err, sizeof err), TW_ERR_DEVICE);
    CHECK(ctx == NULL);
    CHECK_MSG(strstr(err, "device") != NULL, "message: \"%s\"", err);
    /* errlen 0 and err NULL must not be written to. */
    CHECK_EQ_INT(tw_ctx_new(&ctx, (tw_device)7, NULL, 0), TW_ERR_DEVICE);
    char tiny[8] = "xxxxxxx";
    CHECK_EQ_INT(tw_ctx_new(&ctx, (tw_device)7, tiny, sizeof tiny), TW_ERR_DEVICE);
    CHECK(tiny[7] == '\0'); /* truncated, terminated */

    if (!tw_cuda_available()) {
        strcpy(err, "");
        ctx = (tw_ctx *)&err;
        CHECK_EQ_INT(tw_ctx_new(&ctx, TW_DEVICE_CUDA, err, sizeof err), TW_ERR_DEVICE);
        CHECK(ctx == NULL);
        CHECK_MSG(strstr(err, "CUDA") != NULL, "message: \"%s\"", err);
    } else {
        ctx = NULL;
        CHECK_EQ_INT(tw_ctx_new(&ctx, TW_DEVICE_CUDA, err, sizeof err), TW_OK);
        CHECK(ctx && tw_ctx_device(ctx) == TW_DEVICE_CUDA);
        tw_ctx_free(ctx);
    }
    tw_ctx_free(NULL); /* no-op */
}

/* The first error stays, later ops do nothing, clearing recovers. */
static void test_sticky(void) {
    tw_ctx *ctx = new_ctx();
    tw_tensor a = full2(ctx, 1.5, 2, 3), b = full2(ctx, 1.0, 4, 5);
    size_t live = tw_live_count(ctx);
    CHECK(tw_is_null(tw_matmul(ctx, a, b)));
    tw_status first = tw_status_get(ctx);
    CHECK(first != TW_OK);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", tw_errmsg(ctx));
    CHECK(strstr(saved, "tw_matmul") != NULL);

    /* Valid ops now return TW_NULL and create nothing. */
    CHECK(tw_is_null(tw_add(ctx, a, a)));
    CHECK(tw_is_null(full2(ctx, 0.0, 1, 1)));
    /* A second, different failure does not replace the first message. */
    CHECK(tw_is_null(tw_exp(ctx, TW_NULL)));
    tw_set_error(ctx, TW_ERR_STATE, "a later error");
    /* Calls that run while an error is set (queries, frees, mode switches) and fail there
     * must not replace it either. */
    CHECK_EQ_INT(tw_ndim(ctx, TW_NULL), -1);
    CHECK_EQ_INT(tw_size(ctx, a, 5), -1);
    tw_tensor gone = {a.id + 1000};
    tw_free(ctx, gone);
    CHECK(tw_is_null(tw_keep(ctx, gone)));
    CHECK(tw_is_null(tw_to_dtype(ctx, a, (tw_dtype)9)));
    tw_no_grad_end(ctx); /* unbalanced */
    float buf[6];
    CHECK_EQ_INT(tw_copy_to_f32(ctx, a, buf, 6), first);
    double item = 0;
    CHECK_EQ_INT(tw_item(ctx, a, &item), first);
    CHECK_EQ_INT(tw_status_get(ctx), first);
    CHECK_EQ_STR(tw_errmsg(ctx), saved);
    CHECK_EQ_INT(tw_live_count(ctx), live);

    tw_clear_error(ctx);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    CHECK_EQ_STR(tw_errmsg(ctx), "");
    tw_tensor s = tw_sum(ctx, tw_add(ctx, a, a));
    CHECK_EQ_INT(tw_item(ctx, s, &item), TW_OK);
    CHECK_NEAR(item, 18.0, 1e-6);

    /* tw_set_error keeps the first error too. */
    tw_set_error(ctx, TW_ERR_ARG, "first %s %d", "problem", 1);
    tw_set_error(ctx, TW_ERR_STATE, "second problem");
    CHECK_EQ_INT(tw_status_get(ctx), TW_ERR_ARG);
    CHECK_EQ_STR(tw_errmsg(ctx), "first problem 1");
    CHECK(tw_is_null(tw_add(ctx, a, a))); /* and is sticky like any other */
    tw_clear_error(ctx);
    tw_ctx_free(ctx); /* frees the tensors still owned by the caller */
}

static void test_misc_errors(void) {
    tw_ctx *ctx = new_ctx();
    tw_scope sc = tw_scope_begin(ctx);
    tw_tensor a = full2(ctx, 1.0, 2, 3);

    float buf[6];
    CHECK_EQ_INT(tw_copy_to_f32(ctx, a, buf, 5), TW_ERR_SHAPE);
    EXPECT_ERROR(ctx, "copy size", TW_ERR_SHAPE, TW_OK, "tw_copy_to_f32", "5", "[2, 3]");
    CHECK_EQ_INT(tw_copy_to_f32(ctx, a, buf, 7), TW_ERR_SHAPE);
    EXPECT_ERROR(ctx, "copy size", TW_ERR_SHAPE, TW_OK, "tw_copy_to_f32", "7");
    CHECK_EQ_INT(tw_copy_to_f32(ctx, a, NULL, 6), TW_ERR_SHAPE);
    EXPECT_ERROR(ctx, "copy NULL", TW_ERR_SHAPE, TW_ERR_ARG, "tw_copy_to_f32");
    int64_t ibuf[6];
    CHECK(tw_copy_to_i64(ctx, a, ibuf, 6) != TW_OK);
    EXPECT_ERROR(ctx, "copy dtype", TW_ERR_SHAPE, TW_ERR_ARG, "tw_copy_to_i64", "Float");
    CHECK(tw_copy_from_f32(ctx, a, buf, 4) != TW_OK);
    EXPECT_ERROR(ctx, "copy_from size", TW_ERR_SHAPE, TW_OK, "tw_copy_from_f32", "[2, 3]");

    double v = 42.0;
    CHECK_EQ_INT(tw_item(ctx, a, &v), TW_ERR_SHAPE);
    CHECK(v == 42.0);
    EXPECT_ERROR(ctx, "item", TW_ERR_SHAPE, TW_OK, "tw_item", "[2, 3]");

    /* A one-element loss that does not require grad. */
    tw_tensor s = tw_sum(ctx, a);
    CHECK_EQ_INT(tw_backward(ctx, s), TW_ERR_STATE);
    EXPECT_ERROR(ctx, "backward no grad", TW_ERR_STATE, TW_OK, "tw_backward", "grad");
    /* Requires grad, but computed under no-grad. */
    tw_tensor p = full2(ctx, 1.0, 2, 3);
    CHECK_EQ_INT(tw_set_requires_grad(ctx, p, 1), TW_OK);
    tw_no_grad_begin(ctx);
    tw_tensor s2 = tw_sum(ctx, tw_mul(ctx, p, p));
    tw_no_grad_end(ctx);
    CHECK_EQ_INT(tw_backward(ctx, s2), TW_ERR_STATE);
    EXPECT_ERROR(ctx, "backward under no-grad", TW_ERR_STATE, TW_OK, "tw_backward");
    /* Not one element. */
    CHECK(tw_backward(ctx, tw_mul(ctx, p, p)) != TW_OK);
    EXPECT_ERROR(ctx, "backward non-scalar", TW_ERR_SHAPE, TW_ERR_STATE, "tw_backward", "[2, 3]");
    /* A grad before any backward is TW_NULL without an error. */
    CHECK(tw_is_null(tw_grad(ctx, p)));
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    /* Unbalanced no-grad end. */
    tw_no_grad_end(ctx);
    EXPECT_ERROR(ctx, "no_grad_end", TW_ERR_STATE, TW_OK, "tw_no_grad_end");
    /* Unknown dtype. */
    CHECK(tw_is_null(tw_to_dtype(ctx, a, (tw_dtype)9)));
    EXPECT_ERROR(ctx, "dtype", TW_ERR_ARG, TW_OK, "tw_to_dtype");

    tw_scope_end(ctx, sc);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
}

static void test_scopes(void) {
    tw_ctx *ctx = new_ctx();
    tw_tensor owned = full2(ctx, 1.0, 1, 1); /* outside any scope: the caller's */
    const size_t base = tw_live_count(ctx);
    CHECK_EQ_INT(base, 1);

    tw_scope s = tw_scope_begin(ctx);
    tw_tensor t1 = full2(ctx, 1.0, 2, 2);
    tw_tensor t2 = tw_add(ctx, t1, t1);
    tw_tensor kept = tw_keep(ctx, tw_scale(ctx, t2, 2.0));
    CHECK_EQ_INT(tw_live_count(ctx), base + 3);
    tw_scope_end(ctx, s);
    CHECK_EQ_INT(tw_live_count(ctx), base + 1);
    CHECK(tw_is_null(tw_clone(ctx, t1)));
    EXPECT_ERROR(ctx, "scope freed t1", TW_ERR_HANDLE, TW_OK, "freed");
    float got[4] = {0};
    CHECK_EQ_INT(tw_copy_to_f32(ctx, kept, got, 4), TW_OK);
    CHECK(got[0] == 4.0f && got[3] == 4.0f);
    tw_free(ctx, kept);
    CHECK_EQ_INT(tw_live_count(ctx), base);

    /* Nested: scope_return hands a tensor to the enclosing scope, which frees it later;
     * keep inside the inner scope survives both. */
    tw_scope outer = tw_scope_begin(ctx);
    tw_tensor o1 = full2(ctx, 1.0, 3, 1);
    tw_scope inner = tw_scope_begin(ctx);
    tw_tensor i1 = full2(ctx, 2.0, 3, 1);
    tw_tensor i2 = tw_add(ctx, o1, i1);
    tw_tensor ikept = tw_keep(ctx, tw_add(ctx, i2, i2));
    tw_tensor back = tw_scope_return(ctx, inner, tw_mul(ctx, i2, i2));
    CHECK_EQ_INT(tw_live_count(ctx), base + 3); /* o1, ikept, back */
    CHECK(tw_is_null(tw_clone(ctx, i2)));
    EXPECT_ERROR(ctx, "inner freed", TW_ERR_HANDLE, TW_OK, "freed");
    CHECK_EQ_INT(tw_copy_to_f32(ctx, back, got, 3), TW_OK);
    CHECK(got[0] == 9.0f && got[2] == 9.0f);
    tw_tensor more = tw_add(ctx, back, o1); /* owned by outer */
    CHECK(!tw_is_null(more));
    CHECK_EQ_INT(tw_live_count(ctx), base + 4);
    /* A failed op inside a scope leaves nothing behind. */
    tw_scope failing = tw_scope_begin(ctx);
    CHECK(tw_is_null(tw_matmul(ctx, o1, o1)));
    tw_clear_error(ctx);
    CHECK(tw_is_null(tw_scope_return(ctx, failing, TW_NULL)));
    CHECK_EQ_INT(tw_live_count(ctx), base + 4);
    tw_scope_end(ctx, outer);
    CHECK_EQ_INT(tw_live_count(ctx), base + 1); /* only ikept */
    CHECK(tw_is_null(tw_clone(ctx, back)));
    EXPECT_ERROR(ctx, "returned tensor freed by outer", TW_ERR_HANDLE, TW_OK, "freed");
    CHECK_EQ_INT(tw_copy_to_f32(ctx, ikept, got, 3), TW_OK);
    CHECK(got[1] == 6.0f);
    tw_free(ctx, ikept);

    /* scope_return with no enclosing scope gives the tensor to the caller. */
    tw_scope lone = tw_scope_begin(ctx);
    tw_tensor mine = tw_scope_return(ctx, lone, tw_add(ctx, full2(ctx, 1.0, 2, 1), owned));
    CHECK_EQ_INT(tw_live_count(ctx), base + 1);
    tw_scope later = tw_scope_begin(ctx);
    tw_scope_end(ctx, later);
    CHECK_EQ_INT(tw_live_count(ctx), base + 1);
    CHECK_EQ_INT(tw_size(ctx, mine, 0), 2);
    tw_free(ctx, mine);
    tw_free(ctx, owned);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);

    /* A model made inside a scope keeps its parameters past the scope; gpt_free releases
     * every one of them. */
    tw_rng *rng = NULL;
    CHECK_EQ_INT(tw_rng_new(ctx, 1, &rng), TW_OK);
    gpt_config cfg = {.vocab = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8};
    tw_scope ms = tw_scope_begin(ctx);
    gpt *m = NULL;
    CHECK_EQ_INT(gpt_new(ctx, cfg, rng, &m), TW_OK);
    tw_scope_end(ctx, ms);
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ_INT(tw_live_count(ctx), gpt_param_count(m));
        CHECK_EQ_INT(tw_numel(ctx, gpt_param(m, 0)), 11 * 8);
        CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    }
    gpt_free(m);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    /* A bad config fails without leaking or crashing. */
    cfg.n_head = 3;
    m = (gpt *)&cfg;
    CHECK(gpt_new(ctx, cfg, rng, &m) != TW_OK);
    CHECK(m == NULL);
    EXPECT_ERROR(ctx, "gpt config", TW_ERR_ARG, TW_OK, "n_embd");
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    gpt_free(NULL);
    tw_rng_free(rng);
    tw_ctx_free(ctx);
}

enum { N_DRAW = 64 };

static void draw_randn(tw_ctx *ctx, tw_rng *rng, float *out) {
    int64_t shape[1] = {N_DRAW};
    tw_scope s = tw_scope_begin(ctx);
    CHECK_EQ_INT(tw_copy_to_f32(ctx, tw_randn(ctx, rng, 0.0, 1.0, 1, shape), out, N_DRAW), TW_OK);
    tw_scope_end(ctx, s);
}

/* N_DRAW multinomial draws, one per row, from fixed uneven probabilities over 5 classes. */
static void draw_multinomial(tw_ctx *ctx, tw_rng *rng, int64_t *out) {
    float probs[N_DRAW * 5];
    for (int i = 0; i < N_DRAW * 5; i++)
        probs[i] = (float)(1 + (i * 7) % 5);
    int64_t shape[2] = {N_DRAW, 5};
    tw_scope s = tw_scope_begin(ctx);
    tw_tensor p = tw_from_f32(ctx, probs, 2, shape);
    CHECK_EQ_INT(tw_copy_to_i64(ctx, tw_multinomial(ctx, rng, p), out, N_DRAW), TW_OK);
    tw_scope_end(ctx, s);
}

static void test_rng(void) {
    tw_ctx *ctx = new_ctx();
    tw_rng *r1 = NULL, *r2 = NULL, *r3 = NULL;
    CHECK_EQ_INT(tw_rng_new(ctx, 1234, &r1), TW_OK);
    CHECK_EQ_INT(tw_rng_new(ctx, 1234, &r2), TW_OK);
    CHECK_EQ_INT(tw_rng_new(ctx, 1235, &r3), TW_OK);
    if (!r1 || !r2 || !r3) goto done;

    float a[N_DRAW], b[N_DRAW], c[N_DRAW];
    draw_randn(ctx, r1, a);
    draw_randn(ctx, r2, b);
    draw_randn(ctx, r3, c);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);

    size_t len = 0;
    CHECK_EQ_INT(tw_rng_get_state(r1, NULL, &len), TW_OK);
    CHECK(len > 0);
    uint8_t *state = malloc(len), *garbage = malloc(len);
    if (!state || !garbage) goto done_state;
    size_t short_len = len - 1;
    CHECK_EQ_INT(tw_rng_get_state(r1, state, &short_len), TW_ERR_ARG); /* buffer too small */
    size_t got_len = len;
    CHECK_EQ_INT(tw_rng_get_state(r1, state, &got_len), TW_OK);
    CHECK_EQ_INT(got_len, len);

    draw_randn(ctx, r1, a);
    draw_randn(ctx, r1, c); /* the generator moves on ... */
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK_EQ_INT(tw_rng_set_state(r1, state, len), TW_OK);
    draw_randn(ctx, r1, b); /* ... and restoring brings back the same numbers, bit for bit */
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* The state can move between generators. */
    CHECK_EQ_INT(tw_rng_set_state(r3, state, len), TW_OK);
    draw_randn(ctx, r3, c);
    CHECK(memcmp(a, c, sizeof a) == 0);

    int64_t ma[N_DRAW], mb[N_DRAW], mc[N_DRAW];
    CHECK_EQ_INT(tw_rng_get_state(r1, state, &got_len), TW_OK);
    draw_multinomial(ctx, r1, ma);
    draw_multinomial(ctx, r1, mc);
    CHECK(memcmp(ma, mc, sizeof ma) != 0);
    CHECK_EQ_INT(tw_rng_set_state(r1, state, len), TW_OK);
    draw_multinomial(ctx, r1, mb);
    CHECK(memcmp(ma, mb, sizeof ma) == 0);
    int in_range = 1;
    for (int i = 0; i < N_DRAW; i++)
        in_range &= ma[i] >= 0 && ma[i] < 5;
    CHECK(in_range);
    tw_rng *s1 = NULL, *s2 = NULL;
    CHECK_EQ_INT(tw_rng_new(ctx, 99, &s1), TW_OK);
    CHECK_EQ_INT(tw_rng_new(ctx, 99, &s2), TW_OK);
    draw_multinomial(ctx, s1, ma);
    draw_multinomial(ctx, s2, mb);
    CHECK(memcmp(ma, mb, sizeof ma) == 0);
    tw_rng_free(s1);
    tw_rng_free(s2);

    /* Garbage states: wrong length, right length with nonsense, all zeros. Each is refused
     * with a message, and the generator is left as it was. */
    CHECK_EQ_INT(tw_rng_get_state(r1, state, &got_len), TW_OK);
    const uint8_t junk[7] = {1, 2, 3, 4, 5, 6, 7};
    for (int kind = 0; kind < 3; kind++) {
        tw_status st;
        if (kind == 0) {
            st = tw_rng_set_state(r1, junk, sizeof junk);
        } else {
            memset(garbage, kind == 1 ? 0xA5 : 0x00, len);
            st = tw_rng_set_state(r1, garbage, len);
        }
        CHECK_MSG(st != TW_OK, "garbage state %d accepted", kind);
        if (tw_status_get(ctx) != TW_OK)
            EXPECT_ERROR(ctx, "rng garbage", TW_ERR_ARG, TW_ERR_TORCH, "tw_rng_set_state");
    }
    draw_randn(ctx, r1, b);
    CHECK_EQ_INT(tw_rng_set_state(r1, state, len), TW_OK);
    draw_randn(ctx, r1, a);
    CHECK(memcmp(a, b, sizeof a) == 0);

    /* A generator from another context is refused. */
    tw_ctx *other = new_ctx();
    int64_t shape[1] = {3};
    CHECK(tw_is_null(tw_randn(other, r1, 0, 1, 1, shape)));
    CHECK_EQ_INT(tw_status_get(other), TW_ERR_ARG);
    CHECK(strstr(tw_errmsg(other), "tw_randn") != NULL);
    CHECK_EQ_INT(tw_live_count(other), 0);
    tw_ctx_free(other);

    /* Impossible distributions are errors, not crashes: a negative or NaN entry, a zero row;
     * and sampling needs a generator. */
    const float bad_probs[3][4] = {
        {0.5f, -0.1f, 0.3f, 0.3f}, {0.2f, NAN, 0.3f, 0.5f}, {0, 0, 0, 0}};
    int64_t pshape[2] = {2, 4};
    for (int i = 0; i < 3; i++) {
        float rows[8] = {0.25f, 0.25f, 0.25f, 0.25f};
        memcpy(rows + 4, bad_probs[i], sizeof bad_probs[i]);
        tw_scope sc = tw_scope_begin(ctx);
        CHECK(tw_is_null(tw_multinomial(ctx, r1, tw_from_f32(ctx, rows, 2, pshape))));
        EXPECT_ERROR(ctx, "multinomial", TW_ERR_TORCH, TW_ERR_ARG, "tw_multinomial", "[2, 4]");
        tw_scope_end(ctx, sc);
    }
    tw_scope sc = tw_scope_begin(ctx);
    float fine[4] = {1, 2, 3, 4};
    CHECK(tw_is_null(tw_multinomial(ctx, NULL, tw_from_f32(ctx, fine, 1, pshape + 1))));
    EXPECT_ERROR(ctx, "multinomial rng", TW_ERR_ARG, TW_OK, "tw_multinomial", "generator");
    tw_scope_end(ctx, sc);

done_state:
    free(state);
    free(garbage);
done:
    tw_rng_free(r1);
    tw_rng_free(r2);
    tw_rng_free(r3);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
}

int main(void) {
    tw_set_num_threads(1);
    test_shape_errors();
    test_handle_errors();
    test_device_errors();
    test_sticky();
    test_misc_errors();
    test_scopes();
    test_rng();
    return check_report("test_tw_errors");
}
