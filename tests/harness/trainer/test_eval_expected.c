/* The expected-confidence readout (harness/trainer/evaluate.h, docs/trainer.md §6) on a random
 * small model: the KV-cached digit tree against scoring each of the 1000 strings "D.DD" EOS with a
 * full forward pass; chunking (the memory bound) does not change the values; the edge cases:
 * no marker (a format failure), clipping ("1.37" counts 1.0), several markers (the last one),
 * a marker without a number, a number that would not fit block_size; the cache's row select;
 * and eval_generate filling both readouts. */
#include "tests/check.h"
#include "harness/trainer/evaluate.h"
#include "harness/model/gpt.h"
#include "tasks/tokenizer.h"
#include "harness/torch/tw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL_EXPECTED 1e-5 /* abs: tree vs brute force, both float32 logits */
#define TOL_MASS_REL 1e-5 /* relative */
/* abs, expected: one sample at a time vs all at once (padding round-off) */
#define TOL_CHUNK 1e-6

enum { TMAX = 96 };

static const char *const prompt = "Q: 12%5=\nAnswer, then Confidence.\n";

/* Unit-order weights (GPT-2 init gives nearly uniform logits), and a raised logit for the
 * digits, '.' and EOS (the final LayerNorm writes a constant into channel 0, which only
 * their tied embedding rows read), so that the well-formed strings carry real mass.
 * zero_boost adds to the '0' row: very negative makes a first digit '0' impossible. */
static void shape_model(tw_ctx *ctx, gpt *m, tw_rng *rng, float zero_boost) {
    tw_no_grad_begin(ctx);
    for (int i = 0; i < gpt_param_count(m); i++) {
        tw_scope s = tw_scope_begin(ctx);
        tw_tensor p = gpt_param(m, i);
        int64_t shape[TW_MAX_DIMS];
        int nd = tw_shape(ctx, p, shape);
        tw_tensor np = nd == 2 ? tw_scale(ctx, p, (i < 2 ? 0.5 : 1.0 / 4.0) / 0.02)
                               : tw_add(ctx, p, tw_randn(ctx, rng, 0.0, 0.1, nd, shape));
        tw_assign(ctx, p, np);
        tw_scope_end(ctx, s);
    }
    tw_no_grad_end(ctx);
    const gpt_config cfg = gpt_get_config(m);
    const int C = cfg.n_embd, V = cfg.vocab;
    float *wte = malloc(sizeof(float) * (size_t)V * C), g[64], b[64];
    tw_tensor pw = gpt_param(m, gpt_param_find(m, "wte"));
    tw_tensor pg = gpt_param(m, gpt_param_find(m, "ln_f.weight")),
              pb = gpt_param(m, gpt_param_find(m, "ln_f.bias"));
    CHECK(wte && tw_copy_to_f32(ctx, pw, wte, (size_t)V * C) == TW_OK);
    CHECK(tw_copy_to_f32(ctx, pg, g, (size_t)C) == TW_OK &&
          tw_copy_to_f32(ctx, pb, b, (size_t)C) == TW_OK);
    g[0] = 0.0f, b[0] = 3.0f;
    for (int v = 0; wte && v < V; v++)
        wte[(size_t)v * C] = 0.0f;
    for (int d = 0; wte && d < 10; d++)
        wte[(size_t)tok_char_to_id((unsigned char)('0' + d)) * C] = 1.5f;
    if (wte) {
        wte[(size_t)tok_char_to_id('0') * C] += zero_boost;
        wte[(size_t)tok_char_to_id('.') * C] = 2.5f;
        wte[(size_t)TOK_EOS * C] = 2.5f;
        CHECK(tw_copy_from_f32(ctx, pw, wte, (size_t)V * C) == TW_OK);
    }
    CHECK(tw_copy_from_f32(ctx, pg, g, (size_t)C) == TW_OK &&
          tw_copy_from_f32(ctx, pb, b, (size_t)C) == TW_OK);
    free(wte);
}

static gpt *make_model(tw_ctx *ctx, uint64_t seed, float zero_boost) {
    gpt_config cfg = {
        .vocab = TOK_VOCAB_SIZE, .block_size = TMAX, .n_layer = 2, .n_head = 2, .n_embd = 16};
    tw_rng *rng = NULL;
    gpt *m = NULL;
    CHECK_EQ_INT(tw_rng_new(ctx, seed, &rng), TW_OK);
    CHECK_MSG(gpt_new(ctx, cfg, rng, &m) == TW_OK, "gpt_new: %s", tw_errmsg(ctx));
    if (m) shape_model(ctx, m, rng, zero_boost);
    tw_rng_free(rng);
    return m;
}

/* Brute force: each of the 1000 strings scored by one full forward pass over
 * BOS + prompt + completion[0..off) + "a.bc", its probability the product of the five
 * softmax probabilities (the EOS after it included). */
static int brute_force(tw_ctx *ctx, gpt *m, const char *comp, double *expected, double *mass) {
    const long off = eval_conf_offset(comp, strlen(comp));
    if (off < 0) return 0;
    const int pl = (int)strlen(prompt), T = 1 + pl + (int)off, W = T + 4, V = TOK_VOCAB_SIZE;
    int64_t *tok = malloc(sizeof(int64_t) * 1000 * W);
    float *lg = malloc(sizeof(float) * 1000 * (size_t)W * V);
    if (!tok || !lg) {
        free(tok), free(lg);
        return 0;
    }
    for (int k = 0; k < 1000; k++) {
        int64_t *r = tok + (size_t)k * W;
        r[0] = TOK_BOS;
        for (int i = 0; i < pl; i++)
            r[1 + i] = tok_char_to_id((unsigned char)prompt[i]);
        for (int i = 0; i < off; i++)
            r[1 + pl + i] = tok_char_to_id((unsigned char)comp[i]);
        r[T] = tok_char_to_id((unsigned char)('0' + k / 100));
        r[T + 1] = tok_char_to_id('.');
        r[T + 2] = tok_char_to_id((unsigned char)('0' + k / 10 % 10));
        r[T + 3] = tok_char_to_id((unsigned char)('0' + k % 10));
    }
    tw_no_grad_begin(ctx);
    tw_scope s = tw_scope_begin(ctx);
    int64_t shape[2] = {1000, W};
    tw_status rc =
        tw_copy_to_f32(ctx, gpt_forward(m, tw_from_i64(ctx, tok, 2, shape), TW_NULL, TW_NULL), lg,
                       (size_t)1000 * W * V);
    tw_scope_end(ctx, s);
    tw_no_grad_end(ctx);
    double sum = 0.0, wsum = 0.0;
    for (int k = 0; rc == TW_OK && k < 1000; k++) {
        double lp = 0.0;
        for (int j = 0; j < 5; j++) {
            const float *x = lg + ((size_t)k * W + T - 1 + j) * V;
            const int64_t want = j < 4 ? tok[(size_t)k * W + T + j] : TOK_EOS;
            double top = -INFINITY, z = 0.0;
            for (int v = 0; v < V; v++)
                top = x[v] > top ? x[v] : top;
            for (int v = 0; v < V; v++)
                z += exp(x[v] - top);
            lp += x[want] - top - log(z);
        }
        const double value = fmin(1.0, k / 100 + (k / 10 % 10) / 10.0 + (k % 10) / 100.0);
        sum += exp(lp);
        wsum += exp(lp) * value;
    }
    free(tok), free(lg);
    CHECK_MSG(rc == TW_OK, "brute force forward: %s", tw_errmsg(ctx));
    *mass = sum;
    *expected = wsum / sum;
    return rc == TW_OK;
}

static void test_offsets(void) {
    const char *t = "x\nConfidence: 0.5 Confidence:\t 0.7";
    CHECK_EQ_INT(eval_conf_offset(t, strlen(t)), (long)(strstr(t, "0.7") - t));
    CHECK_EQ_INT(eval_conf_offset("no marker", 9), -1);
    CHECK_EQ_INT(eval_conf_offset("", 0), -1);
    CHECK_EQ_INT(eval_conf_offset("Confidence:", 11), 11);
    CHECK_EQ_INT(eval_conf_offset("Confidence:  ", 13), 13);
    CHECK_EQ_INT(eval_conf_offset("a Confidence: abc", 17), 14);
    /* "Confidence." (the student prompt's word) is not a marker; a newline ends the skip. */
    CHECK_EQ_INT(eval_conf_offset("Confidence.", 11), -1);
    CHECK_EQ_INT(eval_conf_offset("Confidence:\n0.5", 15), 11);
    /* Only len bytes count. */
    CHECK_EQ_INT(eval_conf_offset("1 Confidence: 0.5", 5), -1);
}

/* log p arrays with all mass where want says; the rest -inf. */
static void test_combine(void) {
    static double d1[10], dot[10], d2[100], d3[1000], eos[1000];
    for (int i = 0; i < 1000; i++) {
        if (i < 10) d1[i] = dot[i] = -INFINITY;
        if (i < 100) d2[i] = -INFINITY;
        d3[i] = eos[i] = -INFINITY;
    }
    double e = -1, ms = -1;
    eval_expected_combine(d1, dot, d2, d3, eos, &e, &ms); /* no mass anywhere */
    CHECK(e == 0.0 && ms == 0.0);
    /* "0.50" and "1.37" with probability 1/2 each, then EOS: 0.5 * 0.5 + 0.5 * 1.0. */
    d1[0] = d1[1] = log(0.5);
    dot[0] = dot[1] = 0.0;
    d2[0 * 10 + 5] = 0.0, d2[1 * 10 + 3] = 0.0;
    d3[50] = 0.0, d3[137] = 0.0;
    eos[50] = eos[137] = 0.0;
    eval_expected_combine(d1, dot, d2, d3, eos, &e, &ms);
    CHECK_NEAR(e, 0.75, 1e-15);
    CHECK_NEAR(ms, 1.0, 1e-15);
    /* EOS with probability 0.4 after "0.50" only: mass 0.5*0.4 + 0.5, expected weighted. */
    eos[50] = log(0.4);
    eval_expected_combine(d1, dot, d2, d3, eos, &e, &ms);
    CHECK_NEAR(ms, 0.7, 1e-15);
    CHECK_NEAR(e, (0.2 * 0.5 + 0.5 * 1.0) / 0.7, 1e-15);
    /* Clipping: every first digit >= 1, so every string is worth 1.0. */
    d1[0] = -INFINITY, d1[1] = log(0.3), d1[9] = log(0.7);
    dot[9] = 0.0, d2[90] = 0.0, d3[900] = 0.0, eos[900] = 0.0;
    eval_expected_combine(d1, dot, d2, d3, eos, &e, &ms);
    CHECK(e == 1.0);
    CHECK_NEAR(ms, 1.0, 1e-15);
    /* A tiny mass keeps its expectation (the ratio is taken after a shift). */
    for (int i = 0; i < 10; i++)
        d1[i] = -INFINITY;
    d1[0] = -300.0;
    eval_expected_combine(d1, dot, d2, d3, eos, &e, &ms);
    CHECK_NEAR(e, 0.5, 1e-15);
    CHECK_NEAR(ms / exp(-300.0), 0.4, 1e-12);
    d1[0] = -800.0; /* a mass that underflows: no readout */
    eval_expected_combine(d1, dot, d2, d3, eos, &e, &ms);
    CHECK(e == 0.0 && ms == 0.0);
}

/* The tree against brute force, chunked and not; several prefix lengths in one call. */
static void test_tree(tw_ctx *ctx, gpt *m) {
    static const char *const comps[] = {
        "2\nConfidence: 0.40",
        "Confidence:",
        "no marker at all",
        "17\nConfidence:   ",
        "x Confidence: 0.5 Confidence: 0.9",
        "x Confidence: abc",
    };
    enum { N = sizeof comps / sizeof comps[0] };
    const char *pr[N];
    for (int i = 0; i < N; i++)
        pr[i] = prompt;
    double e_all[N], m_all[N], e_one[N], m_one[N];
    eval_params p = eval_params_default();
    p.expected_mem_mb = 1024; /* every sample in one chunk */
    CHECK_MSG(eval_expected(m, pr, comps, N, p, e_all, m_all) == TW_OK, "%s", tw_errmsg(ctx));
    p.expected_mem_mb = 0; /* one sample at a time */
    CHECK_MSG(eval_expected(m, pr, comps, N, p, e_one, m_one) == TW_OK, "%s", tw_errmsg(ctx));
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(e_all[i], e_one[i], TOL_CHUNK);
        CHECK_NEAR(m_all[i], m_one[i], TOL_MASS_REL * m_all[i] + 1e-300);
        CHECK(e_all[i] >= 0.0 && e_all[i] <= 1.0 && m_all[i] >= 0.0 && m_all[i] <= 1.0);
        double be = 0, bm = 0;
        if (eval_conf_offset(comps[i], strlen(comps[i])) < 0) {
            /* A format failure by the parser's first rule: no readout. */
            CHECK(e_all[i] == 0.0 && m_all[i] == 0.0);
            continue;
        }
        if (!brute_force(ctx, m, comps[i], &be, &bm)) continue;
        CHECK_MSG(fabs(e_all[i] - be) <= TOL_EXPECTED, "'%s': tree %.9g, brute force %.9g",
                  comps[i], e_all[i], be);
        CHECK_MSG(fabs(m_all[i] - bm) <= TOL_MASS_REL * bm,
                  "'%s': mass tree %.9g, brute force %.9g", comps[i], m_all[i], bm);
        CHECK_MSG(bm > 1e-6, "'%s': the shaped model should put mass on the format (%g)", comps[i],
                  bm);
    }
    /* The last marker counts: the text after it changes nothing, the first marker's prefix
     * gives another value. */
    const char *a[3] = {"x Confidence: 0.5 Confidence: 0.9",
                        "x Confidence: 0.5 Confidence: ", "x Confidence: "};
    const char *pp[3] = {prompt, prompt, prompt};
    double e3[3], m3[3];
    CHECK(eval_expected(m, pp, a, 3, p, e3, m3) == TW_OK);
    CHECK(e3[0] == e3[1] && m3[0] == m3[1]);
    CHECK(e3[0] != e3[2]);
    /* A number that would not fit block_size: BOS + prompt (34) + completion up to the number,
     * then the 4 tokens "D.DD" whose last one predicts EOS, must fit TMAX positions. */
    char longc[TMAX];
    const int fill = TMAX - 4 - 1 - (int)strlen(prompt) - 12;
    memset(longc, 'z', (size_t)fill);
    memcpy(longc + fill, "Confidence: ", 13); /* exactly TMAX positions */
    const char *lc[1] = {longc};
    double le, lm;
    CHECK(eval_expected(m, pp, lc, 1, p, &le, &lm) == TW_OK && lm > 0.0);
    memmove(longc + 1, longc, (size_t)fill + 13); /* one token more: no readout */
    CHECK(eval_expected(m, pp, lc, 1, p, &le, &lm) == TW_OK && le == 0.0 && lm == 0.0);
    CHECK_EQ_INT(tw_status_get(ctx), TW_OK);
}

/* A model that cannot start with '0': every well-formed string reads >= 1.00, clipped to 1. */
static void test_clipped_model(tw_ctx *ctx) {
    gpt *m = make_model(ctx, 7, -40.0f);
    if (!m) return;
    const char *pr[1] = {prompt}, *c[1] = {"3\nConfidence: "};
    double e = 0, ms = 0, be = 0, bm = 0;
    CHECK_MSG(eval_expected(m, pr, c, 1, eval_params_default(), &e, &ms) == TW_OK, "%s",
              tw_errmsg(ctx));
    CHECK_MSG(e <= 1.0 && e >= 1.0 - 1e-12, "expected %.17g", e);
    CHECK(ms > 1e-6);
    if (brute_force(ctx, m, c[0], &be, &bm)) CHECK_NEAR(e, be, TOL_EXPECTED);
    gpt_free(m);
}

static void test_kv_select(tw_ctx *ctx, gpt *m) {
    gpt_kv *kv = NULL;
    CHECK_EQ_INT(gpt_kv_new(m, 2, 8, &kv), TW_OK);
    if (!kv) return;
    int64_t bad[2] = {0, 2};
    CHECK_EQ_INT(gpt_kv_select(kv, bad, 2), TW_ERR_ARG);
    CHECK(strstr(tw_errmsg(ctx), "rows[1] = 2") != NULL);
    tw_clear_error(ctx);
    CHECK_EQ_INT(gpt_kv_rows(kv), 2);
    int64_t rows[5] = {1, 1, 0, 1, 0};
    CHECK_EQ_INT(gpt_kv_select(kv, rows, 5), TW_OK);
    CHECK_EQ_INT(gpt_kv_rows(kv), 5);
    CHECK_EQ_INT(gpt_kv_select(kv, rows, 0), TW_ERR_ARG);
    tw_clear_error(ctx);
    gpt_kv_free(kv);
}

/* eval_generate: both readouts on every sample, the expected one equal to eval_expected of
 * the greedy completions; p.expected 0 leaves it at 0. */
static void test_generate(tw_ctx *ctx, gpt *m) {
    const char *pr[3] = {prompt, "Q: 7%3=\nAnswer, then Confidence.\n",
                         "Q: 1%2=\nAnswer, then Confidence.\n"};
    eval_sample s[3];
    eval_params p = eval_params_default();
    p.max_new = 20;
    CHECK_MSG(eval_generate(m, pr, 3, p, s) == TW_OK, "%s", tw_errmsg(ctx));
    const char *c[3] = {s[0].completion, s[1].completion, s[2].completion};
    double e[3], ms[3];
    CHECK(eval_expected(m, pr, c, 3, p, e, ms) == TW_OK);
    for (int i = 0; i < 3; i++)
        CHECK(s[i].confidence_expected == e[i] && s[i].confidence_format_mass == ms[i]);
    p.expected = 0;
    eval_sample s0[3];
    CHECK(eval_generate(m, pr, 3, p, s0) == TW_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(s0[i].confidence_expected == 0.0 && s0[i].confidence_format_mass == 0.0);
        CHECK_EQ_STR(s0[i].completion, s[i].completion);
        CHECK(s0[i].confidence == s[i].confidence);
    }
}

int main(void) {
    tw_set_num_threads(1);
    char err[256];
    tw_ctx *ctx = NULL;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) != TW_OK) {
        CHECK_MSG(0, "tw_ctx_new: %s", err);
        return check_report("test_eval_expected");
    }
    test_offsets();
    test_combine();
    gpt *m = make_model(ctx, 2024, 0.0f);
    if (m) {
        const size_t live0 = tw_live_count(ctx);
        test_tree(ctx, m);
        test_kv_select(ctx, m);
        test_generate(ctx, m);
        CHECK_EQ_INT(tw_live_count(ctx), live0);
    }
    gpt_free(m);
    test_clipped_model(ctx);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
    return check_report("test_eval_expected");
}
