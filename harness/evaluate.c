/* evaluate.c: greedy decoding (prefix-shared KV cache, n_rep 1), parsing, verification, and
 * a teacher-forced pass over the model's own output for the per-class entropies. */
#include "evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opd.h"
#include "templates.h"
#include "tokenizer.h"

eval_params eval_params_default(void) {
    eval_params p = {.max_new = 24, .batch = 64};
    return p;
}

/* One batch of prompts [0, n). */
static tw_status eval_batch(gpt *m, const char *const *prompts, int n, eval_params p, eval_sample *out) {
    tw_ctx *ctx = gpt_ctx(m);
    opd_seqs pre;
    opd_seqs_init(&pre);
    for (int i = 0; i < n; i++)
        if (opd_seqs_add_prefix_text(&pre, prompts[i]) < 0) {
            opd_seqs_free(&pre);
            tw_set_error(ctx, TW_ERR_ARG, "eval: prompt %d cannot be encoded", i);
            return tw_status_get(ctx);
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
    gpt_sample_params sp = {.max_new = p.max_new, .temperature = 0.0, .stop_token = TOK_EOS, .use_cache = 1};
    tw_tensor gen = TW_NULL;
    tw_status rc = Tp >= 2 ? gpt_sample_shared(m, tw_from_i64(ctx, pre.prefix, 2, shape),
                                               tw_from_i64(ctx, pre.prefix_valid, 2, shape), 1, sp, NULL, &gen)
                           : gpt_sample(m, tw_from_i64(ctx, pre.prefix, 2, shape),
                                        tw_from_i64(ctx, pre.prefix_valid, 2, shape), sp, NULL, &gen);
    if (rc == TW_OK) rc = tw_copy_to_i64(ctx, gen, toks, (size_t)n * p.max_new);
    tw_scope_end(ctx, scope);
    for (int i = 0; rc == TW_OK && i < n; i++) {
        eval_sample *s = &out[i];
        memset(s, 0, sizeof *s);
        int len = 0;
        for (int j = 0; j < p.max_new && toks[(size_t)i * p.max_new + j] != TOK_EOS && len < EVAL_TEXT_CAP - 1; j++) {
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
        rc = ent && cls ? tw_copy_to_f32(ctx, tw_entropy_rows(ctx, logits), ent, (size_t)(n * W)) : TW_ERR_NOMEM;
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
            s->answer_entropy = cnt[OPD_TOK_ANSWER] ? sum[OPD_TOK_ANSWER] / cnt[OPD_TOK_ANSWER] : 0.0;
            s->conf_entropy = cnt[OPD_TOK_CONF] ? sum[OPD_TOK_CONF] / cnt[OPD_TOK_CONF] : 0.0;
        }
        free(ent), free(cls);
        if (rc == TW_ERR_NOMEM && tw_status_get(ctx) == TW_OK) tw_set_error(ctx, rc, "eval: out of memory");
    }
    opd_seqs_free(&pre);
    return rc;
}

tw_status eval_generate(gpt *m, const char *const *prompts, int n, eval_params p, eval_sample *out) {
    tw_ctx *ctx = gpt_ctx(m);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (n < 0 || p.batch < 1 || p.max_new < 1 || p.max_new >= EVAL_TEXT_CAP) {
        tw_set_error(ctx, TW_ERR_ARG, "eval: n >= 0, batch >= 1 and max_new in 1..%d required", EVAL_TEXT_CAP - 1);
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
    char (*texts)[TASK_QUESTION_CAP + 64] = malloc(sizeof *texts * (size_t)(n > 0 ? n : 1));
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
    for (int i = 0; trc == TASK_OK && i < n; i++) trc = task_gen_next(g, &ex[i]);
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
