/* The trainer on a small random model: one CaOPD step (log fields, EMA update exact),
 * determinism (same seed -> bit-identical weights), the NaN rule (error naming stage and
 * step, last good state kept), prefix-shared vs unshared loss on a real batch, shared
 * sampling vs gpt_sample, the learning-rate schedule, and supervised steps that learn. */
#include "tests/check.h"
#include "harness/trainer/evaluate.h"
#include "harness/trainer/opd.h"
#include "harness/trainer/train.h"

#include <stdlib.h>
#include <string.h>

static gpt_config small_config(void) {
    gpt_config c = gpt_config_default();
    c.n_layer = 1;
    c.n_head = 2;
    c.n_embd = 32;
    return c;
}

static gpt *new_model(tw_ctx *ctx, uint64_t seed) {
    tw_rng *rng = NULL;
    gpt *m = NULL;
    tw_rng_new(ctx, seed, &rng);
    CHECK_MSG(gpt_new(ctx, small_config(), rng, &m) == TW_OK, "%s", tw_errmsg(ctx));
    tw_rng_free(rng);
    return m;
}

/* All parameters concatenated (caller frees). */
static float *weights(tw_ctx *ctx, gpt *m, int64_t *n_out) {
    int64_t n = 0;
    for (int i = 0; i < gpt_param_count(m); i++)
        n += tw_numel(ctx, gpt_param(m, i));
    float *w = malloc(sizeof(float) * (size_t)n);
    int64_t off = 0;
    for (int i = 0; w && i < gpt_param_count(m); i++) {
        int64_t k = tw_numel(ctx, gpt_param(m, i));
        tw_copy_to_f32(ctx, gpt_param(m, i), w + off, (size_t)k);
        off += k;
    }
    *n_out = n;
    return w;
}

static void examples(task_example *ex, int n, uint64_t seed) {
    task_gen *g = NULL;
    CHECK(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_TRAIN, 0, seed) == TASK_OK);
    for (int i = 0; g && i < n; i++)
        task_gen_next(g, &ex[i]);
    task_gen_free(g);
}

static train_params small_params(void) {
    train_params p = train_params_default();
    p.batch_prompts = 3;
    p.opd.k = 4;
    p.opd.max_new = 16;
    p.lr = 1e-3;
    p.warmup_steps = 2;
    p.total_steps = 10;
    p.ema_alpha = 0.25;
    return p;
}

static void test_step_ema_determinism(tw_ctx *ctx) {
    task_example ex[3];
    examples(ex, 3, 11);
    float *wa = NULL, *wb = NULL;
    int64_t na = 0, nb = 0;
    for (int run = 0; run < 2; run++) {
        gpt *m = new_model(ctx, 5);
        trainer *t = NULL;
        CHECK_MSG(train_new(m, small_params(), 77, &t) == TW_OK, "%s", tw_errmsg(ctx));
        if (!t) return;
        train_set_stage(t, "add");
        int64_t n = 0;
        float *phi0 = weights(ctx, train_teacher(t), &n);
        float *theta0 = weights(ctx, m, &n);
        CHECK(memcmp(phi0, theta0, sizeof(float) * (size_t)n) == 0); /* teacher starts as a copy */
        train_log log;
        memset(&log, 0, sizeof log);
        CHECK_MSG(train_step_opd(t, ex, 3, &log) == TW_OK, "%s", tw_errmsg(ctx));
        CHECK_EQ_INT(train_step_count(t), 1);
        CHECK(isfinite(log.s.loss) && log.s.loss >= 0);
        CHECK(isfinite(log.s.kl) && log.s.kl >= 0);
        CHECK(log.s.mean_p_acc >= 0 && log.s.mean_p_acc <= 1);
        CHECK(log.s.format_adherence >= 0 && log.s.format_adherence <= 1);
        CHECK_EQ_INT(log.s.new_tokens, 3 * 4 * 16);
        CHECK(log.s.train_tokens >=
              3 * 4 * (1 + 17)); /* revised: at least "\nConfidence: x.xx" + EOS */
        CHECK(log.s.teacher_prompt_tokens > log.s.prompt_tokens);
        CHECK(log.s.student_ent_conf > 0 && log.s.teacher_ent_conf > 0);
        CHECK(log.tok_s > 0 && log.grad_norm > 0);
        CHECK_NEAR(log.lr, 1e-3 / 2, 1e-15); /* warm-up step 1 of 2 */
        /* EMA: phi1 = phi0 + alpha (theta1 - phi0), elementwise, exactly as torch's lerp. */
        float *theta1 = weights(ctx, m, &n), *phi1 = weights(ctx, train_teacher(t), &n);
        const float a = 0.25f;
        int64_t bad = 0, moved = 0;
        for (int64_t i = 0; i < n; i++) {
            float want = phi0[i] + a * (theta1[i] - phi0[i]);
            if (fabsf(phi1[i] - want) > 1e-7f * (1.0f + fabsf(want))) bad++;
            moved += theta1[i] != theta0[i];
        }
        CHECK_MSG(bad == 0, "EMA: %lld of %lld teacher weights off", (long long)bad, (long long)n);
        CHECK(moved > n / 2);
        CHECK_MSG(train_step_opd(t, ex, 3, &log) == TW_OK, "%s", tw_errmsg(ctx));
        float *w = weights(ctx, m, &n);
        if (run == 0)
            wa = w, na = n;
        else
            wb = w, nb = n;
        free(phi0), free(theta0), free(theta1), free(phi1);
        train_free(t);
        gpt_free(m);
    }
    /* Same init, seed and thread count: bit-identical weights after two steps. */
    CHECK(na == nb && wa && wb && memcmp(wa, wb, sizeof(float) * (size_t)na) == 0);
    free(wa), free(wb);
}

static void test_nan_rule(tw_ctx *ctx) {
    task_example ex[3];
    examples(ex, 3, 12);
    gpt *m = new_model(ctx, 6);
    trainer *t = NULL;
    CHECK(train_new(m, small_params(), 1, &t) == TW_OK);
    if (!t) return;
    train_set_stage(t, "mul");
    CHECK(train_step_opd(t, ex, 3, NULL) == TW_OK);
    /* Poison one teacher weight: rollouts still work, the loss becomes NaN. */
    int64_t n = 0;
    int lnf = gpt_param_find(m, "ln_f.weight");
    int64_t k = tw_numel(ctx, gpt_param(m, lnf));
    float *g = malloc(sizeof(float) * (size_t)k);
    tw_copy_to_f32(ctx, gpt_param(train_teacher(t), lnf), g, (size_t)k);
    g[3] = NAN;
    tw_copy_from_f32(ctx, gpt_param(train_teacher(t), lnf), g, (size_t)k);
    float *before = weights(ctx, m, &n), *tbefore = weights(ctx, train_teacher(t), &n);
    tw_status rc = train_step_opd(t, ex, 3, NULL);
    CHECK_EQ_INT(rc, TW_ERR_STATE);
    CHECK_MSG(strstr(train_errmsg(t), "stage mul, step 1") && strstr(train_errmsg(t), "loss"),
              "message: %s", train_errmsg(t));
    tw_clear_error(ctx);
    float *after = weights(ctx, m, &n), *tafter = weights(ctx, train_teacher(t), &n);
    CHECK(memcmp(before, after, sizeof(float) * (size_t)n) == 0);
    CHECK(memcmp(tbefore, tafter, sizeof(float) * (size_t)n) == 0);
    CHECK_EQ_INT(train_step_count(t), 1);
    /* Poison the student: a supervised step stops the same way. */
    tw_copy_to_f32(ctx, gpt_param(m, lnf), g, (size_t)k);
    g[3] = NAN;
    tw_copy_from_f32(ctx, gpt_param(m, lnf), g, (size_t)k);
    free(before), free(after);
    after = NULL;
    before = weights(ctx, m, &n);
    /* Supervised steps follow the same rule. */
    const char *pr[1] = {"Q: 1+1=\nAnswer, then Confidence.\n"}, *tg[1] = {"2\nConfidence: 1.00"};
    CHECK_EQ_INT(train_step_sup(t, pr, tg, 1, NULL), TW_ERR_STATE);
    CHECK(strstr(train_errmsg(t), "stage mul, step 1") != NULL);
    tw_clear_error(ctx);
    after = weights(ctx, m, &n);
    CHECK(memcmp(before, after, sizeof(float) * (size_t)n) == 0);
    CHECK_EQ_INT(train_step_count(t), 1);
    free(g), free(before), free(after), free(tbefore), free(tafter);
    train_free(t);
    gpt_free(m);
}

/* A real batch (long teacher contexts, several prompts): the shared and unshared loss and
 * gradients agree, with K 2 rows per prompt (grouped rows; in correct_solution mode the
 * teacher's rows are not grouped), with K 1, and with completions short enough that the student's
 * rows take the grouped attention too. */
static void test_shared_loss(tw_ctx *ctx) {
    task_example ex[3];
    examples(ex, 3, 13);
    gpt *st = new_model(ctx, 7), *te = new_model(ctx, 8);
    const char *roll[6];
    char buf[6][64];
    for (int i = 0; i < 6; i++) {
        snprintf(buf[i], sizeof buf[i], i % 2 ? "%s\nConfidence: 0.4" : "1%s", ex[i / 2].answer);
        roll[i] = buf[i];
    }
    const char *roll1[3] = {roll[0], roll[3], roll[4]}; /* K = 1: one row per prefix */
    /* K 2 with one-character completions: the student's prompt is long next to them, so its rows
     * take the grouped attention under grad (gpt_forward_suffix) */
    const char *roll_short[6] = {"1", "2", "3", "4", "5", "6"};
    for (int run = 0; run < 4; run++) {
        const int mode = run == 1; /* demo, correct_solution (K 2); demo with K 1; short rows */
        opd_params p = opd_params_default();
        p.k = run == 2 ? 1 : 2;
        p.teacher = (opd_teacher_mode)mode;
        p.replace = run != 3;                 /* sdft: the completions stay one character, */
        if (run == 3) p.loss.skip_tokens = 0; /* and every target counts */
        opd_batch b;
        CHECK(opd_batch_from_rollouts(ctx, ex, 3,
                                      run < 2    ? roll
                                      : run == 2 ? roll1
                                                 : roll_short,
                                      p, &b, NULL) == TW_OK);
        double loss[2];
        float *g[2];
        int64_t n = 0;
        for (int share = 0; share < 2; share++) {
            p.share_prefix = share;
            CHECK_MSG(opd_batch_loss(st, te, &b, p, &loss[share], NULL) == TW_OK, "%s",
                      tw_errmsg(ctx));
            g[share] = malloc(sizeof(float) * 200000);
            n = 0;
            for (int i = 0; i < gpt_param_count(st); i++) {
                int64_t k = tw_numel(ctx, gpt_param(st, i));
                tw_scope s = tw_scope_begin(ctx);
                tw_copy_to_f32(ctx, tw_grad(ctx, gpt_param(st, i)), g[share] + n, (size_t)k);
                tw_scope_end(ctx, s);
                n += k;
            }
            tw_zero_grad(ctx, gpt_params(st), gpt_param_count(st));
        }
        CHECK(loss[0] > 0);
        CHECK_MSG(fabs(loss[0] - loss[1]) <= 1e-6 * (1 + loss[0]), "mode %d: loss %.9g vs %.9g",
                  mode, loss[0], loss[1]);
        double worst = 0, big = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)g[0][i] - g[1][i]);
            if (!(d <= worst)) worst = d;
            if (fabs(g[0][i]) > big) big = fabs(g[0][i]);
        }
        CHECK_MSG(worst <= 1e-5 * big, "mode %d: gradients differ by %g (max %g)", mode, worst,
                  big);
        free(g[0]), free(g[1]);
        opd_batch_free(&b);
    }
    gpt_free(st), gpt_free(te);
}

/* gpt_sample_shared with n_rep = 1 and greedy decoding equals gpt_sample; with n_rep = 3 each
 * greedy copy is the same continuation; sampling reproduces with a seed. */
static void test_shared_sampling(tw_ctx *ctx) {
    gpt *m = new_model(ctx, 9);
    const size_t live0 = tw_live_count(ctx);
    int64_t prompts[2][6] = {{0, 0, 1, 40, 41, 42}, {1, 50, 51, 52, 53, 54}};
    int64_t valid[2][6] = {{0, 0, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}};
    int64_t shape[2] = {2, 6};
    tw_scope s = tw_scope_begin(ctx);
    tw_tensor pt = tw_from_i64(ctx, &prompts[0][0], 2, shape),
              pv = tw_from_i64(ctx, &valid[0][0], 2, shape);
    gpt_sample_params sp = gpt_sample_default();
    sp.max_new = 10;
    sp.temperature = 0;
    tw_tensor a = TW_NULL, b = TW_NULL;
    CHECK(gpt_sample(m, pt, pv, sp, NULL, &a) == TW_OK);
    CHECK(gpt_sample_shared(m, pt, pv, 3, sp, NULL, &b) == TW_OK);
    int64_t ha[20], hb[60];
    CHECK(tw_copy_to_i64(ctx, a, ha, 20) == TW_OK);
    CHECK(tw_copy_to_i64(ctx, b, hb, 60) == TW_OK);
    for (int r = 0; r < 6; r++)
        CHECK(memcmp(hb + r * 10, ha + (r / 3) * 10, sizeof(int64_t) * 10) == 0);
    sp.temperature = 1.0;
    int64_t hc[60], hd[60];
    for (int rep = 0; rep < 2; rep++) {
        tw_rng *rng = NULL;
        tw_rng_new(ctx, 3, &rng);
        tw_tensor c = TW_NULL;
        CHECK(gpt_sample_shared(m, pt, pv, 3, sp, rng, &c) == TW_OK);
        CHECK(tw_copy_to_i64(ctx, c, rep ? hd : hc, 60) == TW_OK);
        tw_rng_free(rng);
    }
    CHECK(memcmp(hc, hd, sizeof hc) == 0);
    CHECK(memcmp(hc, hc + 10, sizeof(int64_t) * 10) != 0); /* copies sample independently */
    tw_scope_end(ctx, s);
    CHECK_EQ_INT(tw_live_count(ctx), live0);
    gpt_free(m);
}

static void test_schedule(void) {
    train_params p = train_params_default();
    p.lr = 1.0;
    p.warmup_steps = 4;
    p.total_steps = 14;
    p.min_lr_frac = 0.1;
    CHECK_NEAR(train_lr_at(&p, 0), 0.25, 1e-15);
    CHECK_NEAR(train_lr_at(&p, 3), 1.0, 1e-15);
    CHECK_NEAR(train_lr_at(&p, 4), 1.0, 1e-15);
    CHECK_NEAR(train_lr_at(&p, 9), 0.55, 1e-12);
    CHECK_NEAR(train_lr_at(&p, 14), 0.1, 1e-12);
    CHECK_NEAR(train_lr_at(&p, 100), 0.1, 1e-12);
}

/* Supervised: 60 steps on one fixed pair drive its loss far down; SFT and base steps run. */
static void test_supervised(tw_ctx *ctx) {
    gpt *m = new_model(ctx, 10);
    train_params p = small_params();
    p.lr = 1e-2;
    p.total_steps = 60;
    trainer *t = NULL;
    CHECK(train_new(m, p, 2, &t) == TW_OK);
    if (!t) return;
    const char *pr[2] = {"Q: 12+34=\nAnswer, then Confidence.\n",
                         "Q: 5+5=\nAnswer, then Confidence.\n"};
    const char *tg[2] = {"46\nConfidence: 1.00", "10\nConfidence: 0.25"};
    train_log first, last;
    CHECK(train_step_sup(t, pr, tg, 2, &first) == TW_OK);
    for (int i = 0; i < 59; i++)
        CHECK(train_step_sup(t, pr, tg, 2, &last) == TW_OK);
    CHECK_MSG(last.s.loss < 0.2 * first.s.loss, "loss %g -> %g", first.s.loss, last.s.loss);
    /* Greedy evaluation now writes the learnt completions. */
    eval_sample es[2];
    eval_params ep = eval_params_default();
    CHECK_MSG(eval_generate(m, pr, 2, ep, es) == TW_OK, "%s", tw_errmsg(ctx));
    CHECK_EQ_STR(es[0].completion, tg[0]);
    CHECK_EQ_STR(es[1].answer, "10");
    CHECK_NEAR(es[1].confidence, 0.25, 1e-12);
    CHECK(es[0].answer_entropy >= 0 && es[0].answer_entropy < 0.5);
    task_example ex[2];
    examples(ex, 2, 14);
    p.method = TRAIN_METHOD_SFT;
    train_set_params(t, p);
    train_log log;
    CHECK_MSG(train_step_opd(t, ex, 2, &log) == TW_OK, "%s", tw_errmsg(ctx));
    CHECK_EQ_INT(log.s.new_tokens, 0);
    base_gen *bg = NULL;
    CHECK(base_gen_new(&bg, base_params_default(), 3) == BASE_OK);
    CHECK_MSG(train_step_base(t, bg, &log) == TW_OK, "%s", tw_errmsg(ctx));
    CHECK(log.s.train_tokens > 0 && isfinite(log.s.loss));
    base_gen_free(bg);
    train_free(t);
    gpt_free(m);
}

int main(void) {
    tw_set_num_threads(1);
    char err[256];
    tw_ctx *ctx = NULL;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) != TW_OK) {
        CHECK_MSG(0, "%s", err);
        return check_report("test_train_step");
    }
    test_schedule();
    test_step_ema_determinism(ctx);
    test_nan_rule(ctx);
    test_shared_loss(ctx);
    test_shared_sampling(ctx);
    test_supervised(ctx);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
    tw_ctx_free(ctx);
    return check_report("test_train_step");
}
