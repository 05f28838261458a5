/* The CaOPD/SDFT distillation loss of one step on a fixed batch against the PyTorch reference
 * (tests/fixtures/make_caopd_fixture.py): counted targets, per-token forward KL, reverse KL
 * and JSD, the loss, parameter gradients and entropies; and the prefix-shared computation
 * against the unshared one (same loss, same gradient of every parameter). */
#include "tests/check.h"
#include "tests/fixtures/fixture.h"
#include "tests/harness/model/gpt_testutil.h"
#include "harness/trainer/opd.h"

#include <stdlib.h>
#include <string.h>

#define TOL_TOKEN 2e-5      /* per-token divergence and entropy, abs (float32 vs float64) */
#define TOL_LOSS 1e-5       /* abs */
#define TOL_GRAD_REL 1e-4   /* max abs diff / max abs reference */
#define TOL_SHARED_REL 2e-5 /* shared vs unshared gradients, both float32 */

static const char *const grad_params[] = {
    "wte",         "wpe",          "h.0.attn.c_attn.weight", "h.1.mlp.c_proj.weight",
    "ln_f.weight", "h.0.ln_1.bias"};

static int load_teacher(tw_ctx *ctx, const fx_file *fx, gpt **out) {
    *out = gpt_from_fixture(ctx, fx);
    if (!*out) return -1;
    for (int i = 0; i < gpt_param_count(*out); i++) {
        char name[96];
        snprintf(name, sizeof name, "teacher.%s", gpt_param_name(*out, i));
        int64_t n = 0;
        const float *w = fx_f32(fx, name, &n);
        if (!w || tw_copy_from_f32(ctx, gpt_param(*out, i), w, (size_t)n)) return -1;
    }
    return 0;
}

/* Prefixes (left-padded, BOS first) and rows of the fixture into s. */
static int build_seqs(const fx_file *fx, const char *prompt, const char *row_of, opd_seqs *s) {
    const fx_entry *pe = fx_get(fx, prompt);
    char vname[64];
    snprintf(vname, sizeof vname, "%s_valid", prompt);
    const int64_t *tok = pe->data, *val = fx_i64(fx, vname, NULL);
    const int64_t P = pe->dims[0], T = pe->dims[1];
    int32_t ids[64];
    opd_seqs_init(s);
    for (int64_t p = 0; p < P; p++) {
        int n = 0, bos_seen = 0;
        for (int64_t t = 0; t < T; t++) {
            if (!val[p * T + t]) continue;
            if (!bos_seen) { /* opd_seqs adds the BOS itself */
                bos_seen = 1;
                continue;
            }
            ids[n++] = (int32_t)tok[p * T + t];
        }
        if (opd_seqs_add_prefix(s, ids, n) != p) return -1;
    }
    const fx_entry *ce = fx_get(fx, "completion");
    const int64_t *comp = ce->data, *clen = fx_i64(fx, "completion_len", NULL);
    const int64_t *ro = fx_i64(fx, row_of, NULL);
    for (int64_t i = 0; i < ce->dims[0]; i++) {
        for (int64_t j = 0; j < clen[i]; j++)
            ids[j] = (int32_t)comp[i * ce->dims[1] + j];
        if (opd_seqs_add_row(s, (int)ro[i], ids, (int)clen[i]) != i) return -1;
    }
    return 0;
}

/* Copies the (N, W) tensor to host. */
static float *host(tw_ctx *ctx, tw_tensor t, int64_t n) {
    float *b = malloc(sizeof(float) * (size_t)n);
    if (b && tw_copy_to_f32(ctx, t, b, (size_t)n)) {
        free(b);
        return NULL;
    }
    return b;
}

/* Max |got - ref| over real targets (j < n_target). */
static double diff_real(const opd_seqs *s, const float *got, const float *ref) {
    double worst = 0;
    for (int i = 0; i < s->n_rows; i++)
        for (int j = 0; j < s->n_target[i]; j++) {
            double d = fabs((double)got[i * s->width + j] - ref[i * s->width + j]);
            if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
        }
    return worst;
}

/* One divergence, shared or not: compares with the fixture; stores all gradients in grads
 * (param-major, concatenated) for the shared/unshared comparison. Returns the loss. */
static double run_one(tw_ctx *ctx, const fx_file *fx, gpt *st, gpt *te, const opd_seqs *ss,
                      const opd_seqs *ts, const char *kind, opd_loss_params lp, int share,
                      float **grads, int64_t *n_grads) {
    const int64_t N = ss->n_rows, W = ss->width;
    float *w = malloc(sizeof(float) * (size_t)(N * W));
    opd_loss_weights(ss, lp.skip_tokens, w);
    tw_zero_grad(ctx, gpt_params(st), gpt_param_count(st));
    tw_scope scope = tw_scope_begin(ctx);
    tw_no_grad_begin(ctx);
    tw_tensor tl = opd_logits(te, ts, share);
    tw_no_grad_end(ctx);
    tw_tensor sl = opd_logits(st, ss, share);
    int64_t shape[2] = {N, W};
    tw_tensor per_tok = opd_divergence_tokens(ctx, sl, tl, lp);
    tw_tensor loss = tw_sum(ctx, tw_mul(ctx, per_tok, tw_from_f32(ctx, w, 2, shape)));
    CHECK_MSG(tw_backward(ctx, loss) == TW_OK, "%s share %d: %s", kind, share, tw_errmsg(ctx));
    double l = NAN;
    tw_item(ctx, loss, &l);
    char name[96];
    snprintf(name, sizeof name, "%s.loss", kind);
    CHECK_MSG(fabs(l - fx_f32(fx, name, NULL)[0]) <= TOL_LOSS,
              "%s share %d: loss %.8f, reference %.8f", kind, share, l, fx_f32(fx, name, NULL)[0]);
    snprintf(name, sizeof name, "%s.token", kind);
    float *pt = host(ctx, per_tok, N * W);
    double d = pt ? diff_real(ss, pt, fx_f32(fx, name, NULL)) : INFINITY;
    CHECK_MSG(d <= TOL_TOKEN, "%s share %d: per-token divergence differs by %g", kind, share, d);
    free(pt);
    if (strcmp(kind, "fkl") == 0) {
        tw_no_grad_begin(ctx);
        float *es = host(ctx, tw_entropy_rows(ctx, sl), N * W),
              *et = host(ctx, tw_entropy_rows(ctx, tl), N * W);
        tw_no_grad_end(ctx);
        d = es ? diff_real(ss, es, fx_f32(fx, "student_entropy", NULL)) : INFINITY;
        CHECK_MSG(d <= TOL_TOKEN, "share %d: student entropy differs by %g", share, d);
        d = et ? diff_real(ss, et, fx_f32(fx, "teacher_entropy", NULL)) : INFINITY;
        CHECK_MSG(d <= TOL_TOKEN, "share %d: teacher entropy differs by %g", share, d);
        free(es), free(et);
    }
    for (size_t k = 0; k < sizeof grad_params / sizeof *grad_params; k++) {
        snprintf(name, sizeof name, "%s.grad.%s", kind, grad_params[k]);
        int64_t n = 0;
        const float *ref = fx_f32(fx, name, &n);
        tw_tensor g = tw_grad(ctx, gpt_param(st, gpt_param_find(st, grad_params[k])));
        float *got = (ref && !tw_is_null(g)) ? host(ctx, g, n) : NULL;
        double rel = got ? fx_rel_err(got, ref, n) : INFINITY;
        CHECK_MSG(rel <= TOL_GRAD_REL, "%s share %d: gradient of %s relative error %g", kind, share,
                  grad_params[k], rel);
        free(got);
    }
    /* Every gradient, for the shared/unshared comparison. */
    int64_t total = 0;
    for (int i = 0; i < gpt_param_count(st); i++)
        total += tw_numel(ctx, gpt_param(st, i));
    *grads = malloc(sizeof(float) * (size_t)total);
    *n_grads = total;
    int64_t off = 0;
    for (int i = 0; *grads && i < gpt_param_count(st); i++) {
        int64_t n = tw_numel(ctx, gpt_param(st, i));
        tw_tensor g = tw_grad(ctx, gpt_param(st, i));
        if (tw_is_null(g))
            memset(*grads + off, 0, sizeof(float) * (size_t)n);
        else
            tw_copy_to_f32(ctx, g, *grads + off, (size_t)n);
        off += n;
    }
    tw_scope_end(ctx, scope);
    free(w);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    return l;
}

int main(void) {
    tw_set_num_threads(1);
    char err[512];
    fx_file *fx = NULL;
    if (fx_load(FX_FIXTURE_DIR "/caopd_step.bin", &fx, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return check_report("test_opd_fixture");
    }
    tw_ctx *ctx = NULL;
    CHECK(tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) == TW_OK);
    gpt *st = gpt_from_fixture(ctx, fx), *te = NULL;
    CHECK(st != NULL);
    CHECK(load_teacher(ctx, fx, &te) == 0);
    opd_seqs ss, ts;
    CHECK(build_seqs(fx, "s_prompt", "s_row_of", &ss) == 0);
    CHECK(build_seqs(fx, "t_prompt", "t_row_of", &ts) == 0);
    const int skip = (int)fx_i64(fx, "skip_tokens", NULL)[0];
    const size_t live0 = tw_live_count(ctx);

    /* Counted targets: the weights are non-zero exactly on the reference mask, and a row whose
     * targets are all skipped does not enter the mean. */
    float *w = malloc(sizeof(float) * (size_t)ss.n_rows * ss.width);
    const float *mask = fx_f32(fx, "mask", NULL);
    int rows = opd_loss_weights(&ss, skip, w), agree = 1;
    for (int i = 0; i < ss.n_rows * ss.width; i++)
        agree &= (w[i] > 0) == (mask[i] > 0);
    CHECK(agree);
    CHECK_EQ_INT(rows, ss.n_rows - 1);
    free(w);

    const char *kinds[3] = {"fkl", "rkl", "jsd"};
    for (int k = 0; st && te && k < 3; k++) {
        opd_loss_params lp = opd_loss_default();
        lp.divergence = (opd_divergence)k;
        lp.jsd_beta = fx_f32(fx, "jsd_beta", NULL)[0];
        lp.skip_tokens = skip;
        float *g_shared = NULL, *g_full = NULL;
        int64_t n1 = 0, n2 = 0;
        double l1 = run_one(ctx, fx, st, te, &ss, &ts, kinds[k], lp, 1, &g_shared, &n1);
        double l0 = run_one(ctx, fx, st, te, &ss, &ts, kinds[k], lp, 0, &g_full, &n2);
        CHECK_MSG(fabs(l1 - l0) <= 1e-6, "%s: shared loss %.9f, unshared %.9f", kinds[k], l1, l0);
        double rel = (g_shared && g_full && n1 == n2) ? fx_rel_err(g_shared, g_full, n1) : INFINITY;
        CHECK_MSG(rel <= TOL_SHARED_REL, "%s: shared vs unshared gradients, relative error %g",
                  kinds[k], rel);
        free(g_shared), free(g_full);
    }
    tw_zero_grad(ctx, gpt_params(st), gpt_param_count(st));
    CHECK_EQ_INT(tw_live_count(ctx), live0);
    opd_seqs_free(&ss), opd_seqs_free(&ts);
    gpt_free(st), gpt_free(te);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
    fx_free(fx);
    return check_report("test_opd_fixture");
}
