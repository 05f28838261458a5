/* evaluate.c: greedy decoding (prefix-shared KV cache, n_rep 1), parsing, verification, a
 * teacher-forced pass over the model's own output for the per-class entropies, and the expected
 * confidence readout (the digit tree under a branching KV cache; docs/trainer.md §6). */
#include "harness/trainer/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/trainer/opd.h"
#include "tasks/templates.h"
#include "tasks/tokenizer.h"

eval_params eval_params_default(void) {
    eval_params p = {.max_new = 24, .batch = 64, .expected = 1, .expected_mem_mb = 16};
    return p;
}

/* ---- the expected readout ---- */

long eval_conf_offset(const char *completion, size_t len) {
    static const char marker[] = TMPL_CONF_MARKER;
    const size_t ml = sizeof marker - 1;
    long last = -1;
    for (size_t i = 0; i + ml <= len; i++)
        if (memcmp(completion + i, marker, ml) == 0) last = (long)i;
    if (last < 0) return -1;
    size_t i = (size_t)last + ml;
    while (i < len && (completion[i] == ' ' || completion[i] == '\t'))
        i++;
    return (long)i;
}

/* value[k] of the string "a.bc", k = a*100 + b*10 + c, read by the completion parser itself. */
static void string_values(double value[EVAL_EXPECTED_STRINGS]) {
    for (int k = 0; k < EVAL_EXPECTED_STRINGS; k++) {
        char t[32];
        int n = snprintf(t, sizeof t, "%s %d.%d%d", TMPL_CONF_MARKER, k / 100, k / 10 % 10, k % 10);
        value[k] = tmpl_parse_completion(t, (size_t)n).confidence;
    }
}

void eval_expected_combine(const double lp_d1[10], const double lp_dot[10], const double lp_d2[100],
                           const double lp_d3[1000], const double lp_eos[1000], double *expected,
                           double *mass) {
    double value[EVAL_EXPECTED_STRINGS], lp[EVAL_EXPECTED_STRINGS], top = -INFINITY;
    string_values(value);
    for (int k = 0; k < EVAL_EXPECTED_STRINGS; k++) {
        const int a = k / 100, ab = k / 10;
        lp[k] = lp_d1[a] + lp_dot[a] + lp_d2[ab] + lp_d3[k] + lp_eos[k];
        if (lp[k] > top) top = lp[k];
    }
    /* Shifted by the largest log-probability, so that the ratio keeps its precision when the
     * mass itself is tiny. */
    double w_sum = 0.0, wv_sum = 0.0;
    if (isfinite(top))
        for (int k = 0; k < EVAL_EXPECTED_STRINGS; k++) {
            const double w = exp(lp[k] - top);
            w_sum += w;
            wv_sum += w * value[k];
        }
    const double total = isfinite(top) ? exp(top) * w_sum : 0.0;
    if (!(total > 0.0)) {
        *expected = 0.0, *mass = 0.0;
        return;
    }
    *mass = total > 1.0 ? 1.0 : total; /* a sum of probabilities, over 1 only by rounding */
    const double e = wv_sum / w_sum;
    *expected = e < 0.0 ? 0.0 : e > 1.0 ? 1.0 : e;
}

/* log p(tok) for each of ntok tokens, from each of rows logit rows of width V (float), in
 * double: lp[r * ntok + t] = logit[tok[t]] - logsumexp(row r). */
static void rows_logprob(const float *logits, int rows, int V, const int *tok, int ntok,
                         double *lp) {
    for (int r = 0; r < rows; r++) {
        const float *x = logits + (size_t)r * V;
        double top = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++)
            if (x[v] > top) top = x[v];
        for (int v = 0; v < V; v++)
            sum += exp((double)x[v] - top);
        const double lse = top + log(sum);
        for (int t = 0; t < ntok; t++)
            lp[(size_t)r * ntok + t] = (double)x[tok[t]] - lse;
    }
}

/* One level of the tree: feeds tokens tok[r] at positions pos[r] to the cache's rows and
 * writes the log-probabilities of the ntok tokens want[] after them to lp (rows x ntok). */
static tw_status tree_level(gpt *m, gpt_kv *kv, const int64_t *tok, const int64_t *pos, int rows,
                            const int *want, int ntok, float *buf, double *lp) {
    tw_ctx *ctx = gpt_ctx(m);
    const int V = gpt_get_config(m).vocab;
    tw_scope scope = tw_scope_begin(ctx);
    int64_t shape[2] = {rows, 1};
    tw_tensor logits = gpt_forward_cached(m, kv, tw_from_i64(ctx, tok, 2, shape),
                                          tw_from_i64(ctx, pos, 2, shape), TW_NULL);
    tw_status rc = tw_copy_to_f32(ctx, logits, buf, (size_t)rows * V);
    tw_scope_end(ctx, scope);
    if (rc == TW_OK) rows_logprob(buf, rows, V, want, ntok, lp);
    return rc;
}

/* The readout of S samples whose prefixes (BOS first, unpadded) are pre[i][0..len[i]). All but
 * the last prefix token go through gpt_prefix once per sample; the tree's rows continue it in a
 * shared-prefix KV cache (gpt_kv_new_shared), which holds only their own five positions. */
static tw_status expected_chunk(gpt *m, int32_t *const *pre, const int *len, int S,
                                double *expected, double *mass) {
    tw_ctx *ctx = gpt_ctx(m);
    const int V = gpt_get_config(m).vocab;
    int W = 1; /* prefix columns: the longest len - 1, at least one (a pad when every len is 1) */
    for (int i = 0; i < S; i++)
        if (len[i] - 1 > W) W = len[i] - 1;
    const size_t R = (size_t)S * EVAL_EXPECTED_STRINGS; /* rows of the last level */
    const size_t cells = R > (size_t)S * W ? R : (size_t)S * W;
    int64_t *tok = malloc(sizeof(int64_t) * cells * 3);
    float *buf = malloc(sizeof(float) * R * (size_t)V);
    double *lp1 = malloc(sizeof(double) * S * 10), *lpdot = malloc(sizeof(double) * S * 10);
    double *lp2 = malloc(sizeof(double) * S * 100), *lp3 = malloc(sizeof(double) * S * 1000);
    double *lpe = malloc(sizeof(double) * S * 1000);
    gpt_prefix *prefix = NULL;
    gpt_kv *kv = NULL;
    tw_status rc = tok && buf && lp1 && lpdot && lp2 && lp3 && lpe ? TW_OK : TW_ERR_NOMEM;
    if (rc)
        tw_set_error(ctx, TW_ERR_NOMEM,
                     "eval: out of memory for the expected readout of %d samples", S);
    int digit[10], dot = tok_char_to_id('.'), eos = TOK_EOS;
    for (int d = 0; d < 10; d++)
        digit[d] = tok_char_to_id((unsigned char)('0' + d));
    tw_no_grad_begin(ctx);
    /* The prefixes without their last token, left-padded. */
    if (rc == TW_OK) {
        int64_t *valid = tok + (size_t)S * W;
        for (int i = 0; i < S; i++)
            for (int t = 0, pad = W - (len[i] - 1); t < W; t++) {
                tok[(size_t)i * W + t] = t >= pad ? pre[i][t - pad] : TOK_PAD;
                valid[(size_t)i * W + t] = t >= pad;
            }
        tw_scope scope = tw_scope_begin(ctx);
        int64_t shape[2] = {S, W};
        rc = gpt_prefix_new(m, tw_from_i64(ctx, tok, 2, shape), tw_from_i64(ctx, valid, 2, shape),
                            &prefix);
        tw_scope_end(ctx, scope);
    }
    if (rc == TW_OK) rc = gpt_kv_new_shared(m, prefix, 1, 5, &kv);
    /* Level 0 feeds each prefix's last token; level 1 branches each sample into its 10 first
     * digits and feeds them; level 2 feeds '.' to the same rows; levels 3 and 4 branch and feed
     * the second and third digits. Row order at level 4: sample * 1000 + "abc". */
    int64_t *pos = tok + R, *rows = tok + 2 * R;
    int n = S;
    for (int level = 0; rc == TW_OK && level <= 4; level++) {
        if (level == 1 || level >= 3) {
            for (int r = 0; r < n * 10; r++)
                rows[r] = r / 10;
            rc = gpt_kv_select(kv, rows, n * 10);
            n *= 10;
        }
        const int per = n / S; /* rows per sample */
        for (int r = 0; r < n; r++) {
            tok[r] = level == 0 ? pre[r][len[r] - 1] : level == 2 ? dot : digit[r % 10];
            pos[r] = len[r / per] - 1 + level;
        }
        if (rc == TW_OK) {
            switch (level) {
            case 0:
                rc = tree_level(m, kv, tok, pos, n, digit, 10, buf, lp1);
                break;
            case 1:
                rc = tree_level(m, kv, tok, pos, n, &dot, 1, buf, lpdot);
                break;
            case 2:
                rc = tree_level(m, kv, tok, pos, n, digit, 10, buf, lp2);
                break;
            case 3:
                rc = tree_level(m, kv, tok, pos, n, digit, 10, buf, lp3);
                break;
            default:
                rc = tree_level(m, kv, tok, pos, n, &eos, 1, buf, lpe);
                break;
            }
        }
    }
    tw_no_grad_end(ctx);
    gpt_kv_free(kv);
    gpt_prefix_free(prefix);
    for (int i = 0; rc == TW_OK && i < S; i++)
        eval_expected_combine(lp1 + i * 10, lpdot + i * 10, lp2 + i * 100, lp3 + (size_t)i * 1000,
                              lpe + (size_t)i * 1000, &expected[i], &mass[i]);
    free(tok), free(buf), free(lp1), free(lpdot), free(lp2), free(lp3), free(lpe);
    return rc ? rc : tw_status_get(ctx);
}

tw_status eval_expected(gpt *m, const char *const *prompts, const char *const *completions, int n,
                        eval_params p, double *expected, double *mass) {
    tw_ctx *ctx = gpt_ctx(m);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    const gpt_config cfg = gpt_get_config(m);
    if (n < 0 || (n > 0 && (!prompts || !completions || !expected || !mass))) {
        tw_set_error(ctx, TW_ERR_ARG, "eval_expected: n >= 0 and non-NULL arrays required");
        return tw_status_get(ctx);
    }
    int32_t **pre = calloc((size_t)(n > 0 ? n : 1), sizeof *pre);
    int *len = calloc((size_t)(n > 0 ? n : 1), sizeof *len);
    tw_status rc = pre && len ? TW_OK : TW_ERR_NOMEM;
    if (rc) tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
    int longest = 1;
    /* Prefixes BOS + prompt + completion up to the number; len 0 marks "no readout". */
    for (int i = 0; rc == TW_OK && i < n; i++) {
        expected[i] = 0.0, mass[i] = 0.0;
        const size_t cl = strlen(completions[i]), pl = strlen(prompts[i]);
        const long off = eval_conf_offset(completions[i], cl);
        if (off < 0) continue;
        const size_t total = 1 + pl + (size_t)off;
        /* The string's last token (EOS) is predicted at position total + 3. */
        if (total + 4 > (size_t)cfg.block_size) continue;
        pre[i] = malloc(sizeof(int32_t) * total);
        if (!pre[i]) {
            tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
            rc = TW_ERR_NOMEM;
            break;
        }
        pre[i][0] = TOK_BOS;
        if (tok_encode(prompts[i], pl, pre[i] + 1, pl, NULL) != TOK_OK ||
            tok_encode(completions[i], (size_t)off, pre[i] + 1 + pl, (size_t)off, NULL) != TOK_OK) {
            tw_set_error(ctx, TW_ERR_ARG, "eval_expected: sample %d cannot be encoded: %s", i,
                         tok_errmsg());
            rc = TW_ERR_ARG;
            break;
        }
        len[i] = (int)total;
        if (len[i] > longest) longest = len[i];
    }
    /* Samples per chunk, bounded by the last level's memory per sample: 1000 rows, each with its
     * own cache (L x 2 x 5 positions x C floats, validity), the activations of one token (about
     * 12 C floats: the MLP's 4 C and the residual stream), its logits (V floats, twice with the
     * host copy) and the attention scores over the prefix (2 x H x (longest + 5) floats). */
    const double row_bytes = 4.0 * (cfg.n_layer * 2.0 * 5 * cfg.n_embd + 12.0 * cfg.n_embd +
                                    2.0 * cfg.vocab + 2.0 * cfg.n_head * (longest + 5)) +
                             5 * 8.0;
    const double per_sample = 1.1 * EVAL_EXPECTED_STRINGS * row_bytes;
    const double fit =
        (double)(p.expected_mem_mb > 0 ? p.expected_mem_mb : 0) * 1048576.0 / per_sample;
    const int chunk = fit >= n ? (n > 0 ? n : 1) : fit < 1.0 ? 1 : (int)fit;
    int *idx = malloc(sizeof(int) * (size_t)(chunk));
    int32_t **cp = malloc(sizeof *cp * (size_t)chunk);
    int *cl = malloc(sizeof(int) * (size_t)chunk);
    double *ce = malloc(sizeof(double) * (size_t)chunk),
           *cm = malloc(sizeof(double) * (size_t)chunk);
    if (rc == TW_OK && (!idx || !cp || !cl || !ce || !cm)) {
        tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
        rc = TW_ERR_NOMEM;
    }
    for (int i = 0; rc == TW_OK && i < n;) {
        int k = 0;
        for (; i < n && k < chunk; i++)
            if (len[i] > 0) {
                idx[k] = i, cp[k] = pre[i], cl[k] = len[i];
                k++;
            }
        if (k == 0) break;
        rc = expected_chunk(m, cp, cl, k, ce, cm);
        for (int j = 0; rc == TW_OK && j < k; j++)
            expected[idx[j]] = ce[j], mass[idx[j]] = cm[j];
    }
    for (int i = 0; pre && i < n; i++)
        free(pre[i]);
    free(pre), free(len), free(idx), free(cp), free(cl), free(ce), free(cm);
    return rc;
}

/* One batch of prompts [0, n). */
static tw_status eval_batch(gpt *m, const char *const *prompts, int n, eval_params p,
                            eval_sample *out) {
    tw_ctx *ctx = gpt_ctx(m);
    opd_seqs pre;
    opd_seqs_init(&pre);
    for (int i = 0; i < n; i++) {
        const int r = opd_seqs_add_prefix_text(&pre, prompts[i]);
        if (r < 0) {
            opd_seqs_free(&pre);
            if (r == OPD_SEQS_BAD_TEXT)
                tw_set_error(ctx, TW_ERR_ARG, "eval: prompt %d: %s", i, tok_errmsg());
            else
                tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
            return tw_status_get(ctx);
        }
    }
    const int64_t Tp = pre.prefix_len;
    int64_t *toks = malloc(sizeof(int64_t) * (size_t)n * p.max_new);
    if (!toks) {
        opd_seqs_free(&pre);
        tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
        return TW_ERR_NOMEM;
    }
    tw_scope scope = tw_scope_begin(ctx);
    int64_t shape[2] = {n, Tp};
    gpt_sample_params sp = {
        .max_new = p.max_new, .temperature = 0.0, .stop_token = TOK_EOS, .use_cache = 1};
    tw_tensor gen = TW_NULL;
    tw_status rc =
        Tp >= 2 ? gpt_sample_shared(m, tw_from_i64(ctx, pre.prefix, 2, shape),
                                    tw_from_i64(ctx, pre.prefix_valid, 2, shape), 1, sp, NULL, &gen)
                : gpt_sample(m, tw_from_i64(ctx, pre.prefix, 2, shape),
                             tw_from_i64(ctx, pre.prefix_valid, 2, shape), sp, NULL, &gen);
    if (rc == TW_OK) rc = tw_copy_to_i64(ctx, gen, toks, (size_t)n * p.max_new);
    tw_scope_end(ctx, scope);
    for (int i = 0; rc == TW_OK && i < n; i++) {
        eval_sample *s = &out[i];
        memset(s, 0, sizeof *s);
        int len = 0;
        for (int j = 0;
             j < p.max_new && toks[(size_t)i * p.max_new + j] != TOK_EOS && len < EVAL_TEXT_CAP - 1;
             j++) {
            int c = tok_id_to_char((int32_t)toks[(size_t)i * p.max_new + j]);
            if (c >= 0) s->completion[len++] = (char)c;
        }
        s->completion[len] = '\0';
        s->n_tokens = len;
        tmpl_parsed pr = tmpl_parse_completion(s->completion, (size_t)len);
        memcpy(s->answer, s->completion + pr.answer_off, pr.answer_len);
        s->answer[pr.answer_len] = '\0';
        s->confidence = pr.confidence;
        s->format_failure = pr.format_failure;
        if (opd_seqs_add_row_text(&pre, i, s->completion) != i) {
            tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
            rc = TW_ERR_NOMEM;
        }
    }
    free(toks);
    /* Entropies: the model's distributions over its own output, teacher-forced. */
    if (rc == TW_OK) {
        const int64_t W = pre.width;
        float *ent = malloc(sizeof(float) * (size_t)(n * W));
        uint8_t *cls = malloc((size_t)W);
        tw_no_grad_begin(ctx);
        scope = tw_scope_begin(ctx);
        tw_tensor logits = opd_logits(m, &pre, 1);
        rc = ent && cls ? tw_copy_to_f32(ctx, tw_entropy_rows(ctx, logits), ent, (size_t)(n * W))
                        : TW_ERR_NOMEM;
        tw_scope_end(ctx, scope);
        tw_no_grad_end(ctx);
        for (int i = 0; rc == TW_OK && i < n; i++) {
            eval_sample *s = &out[i];
            opd_token_classes(s->completion, s->n_tokens, cls);
            double sum[3] = {0}, cnt[3] = {0};
            for (int j = 0; j < s->n_tokens; j++) {
                sum[cls[j]] += ent[(size_t)i * W + j];
                cnt[cls[j]] += 1;
            }
            s->answer_entropy =
                cnt[OPD_TOK_ANSWER] ? sum[OPD_TOK_ANSWER] / cnt[OPD_TOK_ANSWER] : 0.0;
            s->conf_entropy = cnt[OPD_TOK_CONF] ? sum[OPD_TOK_CONF] / cnt[OPD_TOK_CONF] : 0.0;
        }
        free(ent), free(cls);
        if (rc == TW_ERR_NOMEM && tw_status_get(ctx) == TW_OK)
            tw_set_error(ctx, rc, "eval: out of memory");
    }
    opd_seqs_free(&pre);
    /* The expected readout at the greedy completion's last "Confidence: ". */
    if (rc == TW_OK && p.expected) {
        const char **comp = malloc(sizeof *comp * (size_t)n);
        double *e = malloc(sizeof(double) * (size_t)n), *ms = malloc(sizeof(double) * (size_t)n);
        if (!comp || !e || !ms) {
            tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
            rc = TW_ERR_NOMEM;
        }
        for (int i = 0; rc == TW_OK && i < n; i++)
            comp[i] = out[i].completion;
        if (rc == TW_OK) rc = eval_expected(m, prompts, comp, n, p, e, ms);
        for (int i = 0; rc == TW_OK && i < n; i++) {
            out[i].confidence_expected = e[i];
            out[i].confidence_format_mass = ms[i];
        }
        free(comp), free(e), free(ms);
    }
    return rc;
}

tw_status eval_generate(gpt *m, const char *const *prompts, int n, eval_params p,
                        eval_sample *out) {
    tw_ctx *ctx = gpt_ctx(m);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (n < 0 || p.batch < 1 || p.max_new < 1 || p.max_new >= EVAL_TEXT_CAP) {
        tw_set_error(ctx, TW_ERR_ARG, "eval: n >= 0, batch >= 1 and max_new in 1..%d required",
                     EVAL_TEXT_CAP - 1);
        return tw_status_get(ctx);
    }
    for (int i = 0; i < n; i += p.batch) {
        int b = n - i < p.batch ? n - i : p.batch;
        tw_status rc = eval_batch(m, prompts + i, b, p, out + i);
        if (rc != TW_OK) return rc;
    }
    return TW_OK;
}

tw_status eval_examples(gpt *m, const task_example *ex, int n, eval_params p, eval_sample *out) {
    tw_ctx *ctx = gpt_ctx(m);
    char(*texts)[TASK_QUESTION_CAP + 64] = malloc(sizeof *texts * (size_t)(n > 0 ? n : 1));
    const char **pp = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    tw_status rc = TW_OK;
    if (!texts || !pp) {
        tw_set_error(ctx, TW_ERR_NOMEM, "eval: out of memory");
        rc = TW_ERR_NOMEM;
    }
    for (int i = 0; rc == TW_OK && i < n; i++) {
        tmpl_student_prompt(texts[i], sizeof texts[i], ex[i].question);
        pp[i] = texts[i];
    }
    if (rc == TW_OK) rc = eval_generate(m, pp, n, p, out);
    for (int i = 0; rc == TW_OK && i < n; i++)
        out[i].correct = task_verify(&ex[i], out[i].completion, strlen(out[i].completion)).correct;
    free(texts), free(pp);
    return rc;
}

tw_status eval_split(gpt *m, task_domain d, task_split s, int severity, uint64_t seed, int n,
                     eval_params p, eval_sample *out, task_example *ex_out) {
    tw_ctx *ctx = gpt_ctx(m);
    task_gen *g = NULL;
    task_example *ex = ex_out ? ex_out : malloc(sizeof *ex * (size_t)(n > 0 ? n : 1));
    int trc = ex ? task_gen_new(&g, d, s, severity, seed) : TASK_ERR_NOMEM;
    for (int i = 0; trc == TASK_OK && i < n; i++)
        trc = task_gen_next(g, &ex[i]);
    task_gen_free(g);
    tw_status rc;
    if (trc != TASK_OK) {
        tw_set_error(ctx, TW_ERR_ARG, "eval_split: %s", task_errmsg());
        rc = tw_status_get(ctx);
    } else {
        rc = eval_examples(m, ex, n, p, out);
    }
    if (!ex_out) free(ex);
    return rc;
}
