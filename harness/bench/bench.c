/* bench.c: measures matmul, GPT training, decoding and a whole CaOPD step in one process, so
 * the figures can be compared with each other (medians of repeated runs). */
#include "harness/bench/bench.h"

#include "harness/trainer/train.h"
#include "common/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bench_params bench_default(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    bench_params p = {
        .model = gpt_config_default(),
        .train_batch = 16,
        .train_seq = 256,
        .train_steps = 5,
        .decode_batch = 128,
        .decode_prompt = 32,
        .decode_new = 24,
        .decode_reps = 3,
        .matmul_n = 1024,
        .threads = cores > 0 ? (int)cores : 1,
        .blas_threads = 0,
        .seed = 1,
        .opd_prompts = 16,
        .opd_k = 8,
        .opd_new = 24,
        .opd_steps = 3,
        .opd_domain = TASK_DOMAIN_ADD,
        .opd_only = 0,
        .base_steps = 3,
        .base_batch = 32,
        .base = base_params_default(),
        .base_only = 0,
        .profile = 0,
    };
    /* experiments/bases/base-small.json's mixture */
    p.base.p_teacher = 0.75;
    p.base.p_no_note = 0.4;
    p.base.student_domains = 1u << TASK_DOMAIN_MOD | 1u << TASK_DOMAIN_COUNT_CHAR |
                             1u << TASK_DOMAIN_REV | 1u << TASK_DOMAIN_SORT;
    p.base.focus = TASK_DOMAIN_MOD;
    p.base.focus_share = 0.5;
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void say(void (*progress)(const char *, void *), void *arg, const char *line) {
    if (progress) progress(line, arg);
}

#define BENCH_MAX_REPS 64

static int fail(tw_ctx *ctx, char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "bench: %s: %s", what, tw_errmsg(ctx));
    return -1;
}

static int bench_matmul(tw_ctx *ctx, tw_rng *rng, int n, double *gflops) {
    tw_scope scope = tw_scope_begin(ctx);
    int64_t shape[2] = {n, n};
    tw_tensor a = tw_randn(ctx, rng, 0, 1, 2, shape), b = tw_randn(ctx, rng, 0, 1, 2, shape);
    double t[10];
    const int reps = 10;
    for (int r = -2; r < reps; r++) { /* two warm-up runs */
        tw_scope inner = tw_scope_begin(ctx);
        double t0 = clock_now_s();
        tw_tensor c = tw_matmul(ctx, a, b);
        double t1 = clock_now_s();
        (void)c;
        tw_scope_end(ctx, inner);
        if (r >= 0) t[r] = t1 - t0;
    }
    tw_scope_end(ctx, scope);
    if (tw_status_get(ctx)) return -1;
    *gflops = 2.0 * n * (double)n * n / median(t, reps) / 1e9;
    return 0;
}

static int bench_train(tw_ctx *ctx, tw_rng *rng, gpt *m, const bench_params *p, double *step_s) {
    const int64_t B = p->train_batch, T = p->train_seq, V = p->model.vocab;
    int64_t *tok = malloc(sizeof(int64_t) * (size_t)(B * (T + 1)));
    if (!tok) return -1;
    uint64_t s = p->seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < B * (T + 1); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        tok[i] = (int64_t)(s % (uint64_t)V);
    }
    int64_t *in = malloc(sizeof(int64_t) * (size_t)(B * T)),
            *tg = malloc(sizeof(int64_t) * (size_t)(B * T));
    if (!in || !tg) {
        free(tok), free(in), free(tg);
        return -1;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            in[b * T + t] = tok[b * (T + 1) + t];
            tg[b * T + t] = tok[b * (T + 1) + t + 1];
        }
    int64_t shape[2] = {B, T}, flat[1] = {B * T}, lshape[2] = {B * T, V};
    tw_tensor x = tw_from_i64(ctx, in, 2, shape), y = tw_from_i64(ctx, tg, 1, flat);
    free(tok), free(in), free(tg);
    tw_adamw_params hp = tw_adamw_default();
    hp.beta2 = 0.95;
    hp.weight_decay = 0.1;
    tw_adamw *opt = NULL;
    if (tw_adamw_new(ctx, gpt_params(m), gpt_param_decay(m), gpt_param_count(m), hp, &opt))
        return -1;
    (void)rng;
    double t[BENCH_MAX_REPS];
    int reps = p->train_steps < BENCH_MAX_REPS ? p->train_steps : BENCH_MAX_REPS;
    for (int r = -1; r < reps && tw_status_get(ctx) == TW_OK; r++) {
        double t0 = clock_now_s();
        tw_scope scope = tw_scope_begin(ctx);
        tw_zero_grad(ctx, gpt_params(m), gpt_param_count(m));
        tw_tensor logits = gpt_forward(m, x, TW_NULL, TW_NULL);
        tw_tensor loss = tw_cross_entropy(ctx, tw_reshape(ctx, logits, 2, lshape), y, -1);
        tw_backward(ctx, loss);
        tw_clip_grad_norm(ctx, gpt_params(m), gpt_param_count(m), 1.0, NULL);
        tw_adamw_step(opt, hp.lr);
        tw_scope_end(ctx, scope);
        if (r >= 0) t[r] = clock_now_s() - t0;
    }
    tw_adamw_free(opt);
    tw_free(ctx, x);
    tw_free(ctx, y);
    if (tw_status_get(ctx)) return -1;
    *step_s = median(t, reps);
    return 0;
}

static int bench_decode(tw_ctx *ctx, tw_rng *rng, gpt *m, const bench_params *p, int use_cache,
                        double *tok_s) {
    const int64_t B = p->decode_batch, Tp = p->decode_prompt;
    int64_t *prompt = malloc(sizeof(int64_t) * (size_t)(B * Tp));
    if (!prompt) return -1;
    for (int64_t i = 0; i < B * Tp; i++)
        prompt[i] = (i * 7 + 3) % p->model.vocab;
    int64_t shape[2] = {B, Tp};
    tw_scope scope = tw_scope_begin(ctx);
    tw_tensor x = tw_from_i64(ctx, prompt, 2, shape);
    free(prompt);
    gpt_sample_params sp = gpt_sample_default();
    sp.max_new = p->decode_new;
    sp.use_cache = use_cache;
    double t[BENCH_MAX_REPS];
    int reps = p->decode_reps < BENCH_MAX_REPS ? p->decode_reps : BENCH_MAX_REPS;
    for (int r = -1; r < reps; r++) {
        tw_scope inner = tw_scope_begin(ctx);
        tw_tensor out;
        double t0 = clock_now_s();
        int rc = gpt_sample(m, x, TW_NULL, sp, rng, &out);
        double dt = clock_now_s() - t0;
        tw_scope_end(ctx, inner);
        if (rc) break;
        if (r >= 0) t[r] = dt;
    }
    tw_scope_end(ctx, scope);
    if (tw_status_get(ctx)) return -1;
    *tok_s = (double)(B * p->decode_new) / median(t, reps);
    return 0;
}

/* The plain training step and the two decoding modes on model m. */
static int bench_model_runs(tw_ctx *ctx, tw_rng *rng, gpt *m, const bench_params *p,
                            bench_result *out, void (*progress)(const char *, void *), void *arg,
                            char *err, size_t errlen) {
    say(progress, arg, "train");
    if (bench_train(ctx, rng, m, p, &out->train_step_s)) return fail(ctx, err, errlen, "train");
    const double tokens = (double)p->train_batch * p->train_seq;
    out->train_flops_per_step = 3.0 * tokens * gpt_config_flops_per_token(p->model, p->train_seq);
    out->train_tok_s = tokens / out->train_step_s;
    out->train_gflops = out->train_flops_per_step / out->train_step_s / 1e9;
    say(progress, arg, "decode (KV cache)");
    if (bench_decode(ctx, rng, m, p, 1, &out->decode_tok_s))
        return fail(ctx, err, errlen, "decode");
    say(progress, arg, "decode (recompute)");
    if (bench_decode(ctx, rng, m, p, 0, &out->recompute_tok_s))
        return fail(ctx, err, errlen, "recompute");
    out->train_measured = 1;
    return 0;
}

/* Turns the profile of `steps` steps (read from ctx) into per-step means; phase_sum holds the
 * summed wall seconds of each phase but the rest, step_sum of the steps. */
static void profile_finish(tw_ctx *ctx, int steps, double step_sum, const double *phase_sum,
                           double gflops, bench_profile *pr) {
    tw_prof_read(ctx, &pr->per_step);
    pr->steps = steps;
    pr->step_s = step_sum / steps;
    double rest = pr->step_s;
    for (int ph = 0; ph < TW_PROF_PHASES; ph++) {
        if (ph < OPD_PHASE_REST) {
            pr->phase_s[ph] = phase_sum[ph] / steps;
            rest -= pr->phase_s[ph];
        }
        pr->per_step.flops[ph] /= steps;
        pr->flops += pr->per_step.flops[ph];
        for (int k = 0; k < TW_KIND_COUNT; k++) {
            tw_prof_cell *c = &pr->per_step.cell[ph][k];
            c->seconds /= steps;
            pr->op_calls += (double)c->calls / steps;
            c->calls = (c->calls + steps / 2) / steps;
        }
    }
    pr->phase_s[OPD_PHASE_REST] = rest;
    pr->flop_limit_s = gflops > 0 ? pr->flops / (gflops * 1e9) : 0.0;
    pr->measured = 1;
}

/* train_step_opd on a fresh model, one warm-up step then opd_steps measured ones, all on the
 * same prompts (so every step does the same work up to the sampled completions). */
static int bench_opd_step(tw_ctx *ctx, const bench_params *p, double gflops, bench_opd *o,
                          char *err, size_t errlen) {
    const int n = p->opd_prompts;
    const int reps = p->opd_steps < BENCH_MAX_REPS ? p->opd_steps : BENCH_MAX_REPS;
    task_example *ex = calloc((size_t)n, sizeof *ex);
    task_gen *g = NULL;
    tw_rng *init = NULL;
    gpt *m = NULL;
    trainer *t = NULL;
    int rc = -1;
    if (!ex) {
        snprintf(err, errlen, "bench: CaOPD step: out of memory");
        return -1;
    }
    if (task_gen_new(&g, p->opd_domain, TASK_SPLIT_TRAIN, 0, p->seed) != TASK_OK) {
        snprintf(err, errlen, "bench: CaOPD step: prompts: %s", task_errmsg());
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (task_gen_next(g, &ex[i]) != TASK_OK) {
            snprintf(err, errlen, "bench: CaOPD step: prompts: %s", task_errmsg());
            goto done;
        }
    train_params tp = train_params_default();
    tp.method = TRAIN_METHOD_CAOPD;
    tp.batch_prompts = n;
    tp.opd.k = p->opd_k;
    tp.opd.max_new = p->opd_new;
    if (tw_rng_new(ctx, p->seed ^ 0x6f70645f62656e63ull, &init) ||
        gpt_new(ctx, p->model, init, &m) || train_new(m, tp, p->seed, &t)) {
        fail(ctx, err, errlen, "CaOPD step: model");
        goto done;
    }
    double step[BENCH_MAX_REPS], roll[BENCH_MAX_REPS], teach[BENCH_MAX_REPS], stud[BENCH_MAX_REPS],
        other[BENCH_MAX_REPS];
    double train_tokens = 0;
    train_log log;
    for (int r = -1; r < reps; r++) {
        const double t0 = clock_now_s();
        if (train_step_opd(t, ex, n, &log)) {
            fail(ctx, err, errlen, "CaOPD step");
            goto done;
        }
        const double dt = clock_now_s() - t0;
        if (r < 0) continue;
        step[r] = dt;
        roll[r] = log.s.rollout_s;
        teach[r] = log.s.teacher_s;
        stud[r] = log.s.train_s;
        other[r] = dt - log.s.rollout_s - log.s.teacher_s - log.s.train_s;
        train_tokens += (double)log.s.train_tokens;
    }
    /* The prompts are the same every step, so these counts are too (mode demo: one teacher
     * context per prompt, its length independent of P_acc's value). */
    o->prompts = n;
    o->k = p->opd_k;
    o->max_new = p->opd_new;
    o->steps = reps;
    o->prompt_tokens = log.s.prompt_tokens;
    o->teacher_prompt_tokens = log.s.teacher_prompt_tokens;
    o->teacher_contexts = n;
    o->new_tokens = log.s.new_tokens;
    o->train_tokens = (int64_t)(train_tokens / reps + 0.5);
    o->teacher_tokens = o->teacher_prompt_tokens + o->train_tokens;
    o->student_tokens = o->prompt_tokens + o->train_tokens;
    o->step_s = median(step, reps);
    o->rollout_s = median(roll, reps);
    o->teacher_s = median(teach, reps);
    o->train_s = median(stud, reps);
    o->other_s = median(other, reps);
    o->rollout_tok_s = (double)o->new_tokens / o->rollout_s;
    o->teacher_tok_s = (double)o->teacher_tokens / o->teacher_s;
    o->train_tok_s = (double)o->student_tokens / o->train_s;
    o->step_tok_s = (double)(o->new_tokens + o->train_tokens) / o->step_s;
    if (p->profile) {
        double step_sum = 0, phase_sum[TW_PROF_PHASES] = {0};
        tw_prof_enable(ctx, 1);
        for (int r = 0; r < reps; r++) {
            const double t0 = clock_now_s();
            if (train_step_opd(t, ex, n, &log)) {
                tw_prof_enable(ctx, 0);
                fail(ctx, err, errlen, "CaOPD step (profiled)");
                goto done;
            }
            step_sum += clock_now_s() - t0;
            phase_sum[OPD_PHASE_ROLLOUT] += log.s.rollout_s;
            phase_sum[OPD_PHASE_TEACHER] += log.s.teacher_s;
            phase_sum[OPD_PHASE_TRAIN] += log.s.train_s;
        }
        profile_finish(ctx, reps, step_sum, phase_sum, gflops, &o->prof);
        tw_prof_enable(ctx, 0);
    }
    o->measured = 1;
    rc = 0;
done:
    train_free(t);
    gpt_free(m);
    tw_rng_free(init);
    task_gen_free(g);
    free(ex);
    return rc;
}

/* train_step_base on a fresh model, one warm-up step then base_steps measured ones, each on the
 * next pairs of the stream (as the base stage runs). */
static int bench_base_step(tw_ctx *ctx, const bench_params *p, double gflops, bench_base *o,
                           char *err, size_t errlen) {
    const int reps = p->base_steps < BENCH_MAX_REPS ? p->base_steps : BENCH_MAX_REPS;
    base_gen *g = NULL;
    tw_rng *init = NULL;
    gpt *m = NULL;
    trainer *t = NULL;
    int rc = -1;
    if (base_gen_new(&g, p->base, p->seed) != BASE_OK) {
        snprintf(err, errlen, "bench: base step: pairs: %s", base_errmsg());
        return -1;
    }
    train_params tp = train_params_default();
    tp.method = TRAIN_METHOD_SFT;
    tp.batch_prompts = p->base_batch;
    tp.lr = 3e-3;
    if (tw_rng_new(ctx, p->seed ^ 0x626173655f62656eull, &init) ||
        gpt_new(ctx, p->model, init, &m) || train_new(m, tp, p->seed, &t)) {
        fail(ctx, err, errlen, "base step: model");
        goto done;
    }
    double step[BENCH_MAX_REPS], prompt_tokens = 0, train_tokens = 0;
    train_log log;
    for (int r = -1; r < reps; r++) {
        const double t0 = clock_now_s();
        if (train_step_base(t, g, &log)) {
            fail(ctx, err, errlen, "base step");
            goto done;
        }
        const double dt = clock_now_s() - t0;
        if (r < 0) continue;
        step[r] = dt;
        prompt_tokens += (double)log.s.prompt_tokens;
        train_tokens += (double)log.s.train_tokens;
    }
    o->batch = p->base_batch;
    o->steps = reps;
    o->prompt_tokens = (int64_t)(prompt_tokens / reps + 0.5);
    o->train_tokens = (int64_t)(train_tokens / reps + 0.5);
    o->step_s = median(step, reps);
    o->tok_s = (double)(o->prompt_tokens + o->train_tokens) / o->step_s;
    if (p->profile) {
        double step_sum = 0, phase_sum[TW_PROF_PHASES] = {0};
        tw_prof_enable(ctx, 1);
        for (int r = 0; r < reps; r++) {
            const double t0 = clock_now_s();
            if (train_step_base(t, g, &log)) {
                tw_prof_enable(ctx, 0);
                fail(ctx, err, errlen, "base step (profiled)");
                goto done;
            }
            step_sum += clock_now_s() - t0;
            phase_sum[OPD_PHASE_TRAIN] += log.s.train_s;
        }
        profile_finish(ctx, reps, step_sum, phase_sum, gflops, &o->prof);
        tw_prof_enable(ctx, 0);
    }
    o->measured = 1;
    rc = 0;
done:
    train_free(t);
    gpt_free(m);
    tw_rng_free(init);
    base_gen_free(g);
    return rc;
}

int bench_run(bench_params p, bench_result *out, void (*progress)(const char *, void *), void *arg,
              char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (p.train_steps < 1 || p.decode_reps < 1 || p.matmul_n < 1 || p.threads < 1 ||
        p.train_batch < 1 || p.train_seq < 1 || p.train_seq > p.model.block_size ||
        p.decode_prompt + p.decode_new > p.model.block_size || p.opd_prompts < 1 || p.opd_new < 1 ||
        p.opd_steps < 0) {
        snprintf(err, errlen,
                 "bench: counts must be >= 1 (opd_steps >= 0) and sequences must fit block_size %d",
                 p.model.block_size);
        return -1;
    }
    if (p.opd_k < 1 || p.opd_k > OPD_MAX_K) {
        snprintf(err, errlen, "bench: K (rollouts per prompt) must be in 1..%d", OPD_MAX_K);
        return -1;
    }
    if (p.opd_only && p.opd_steps < 1) {
        snprintf(err, errlen, "bench: opd_only needs opd_steps >= 1");
        return -1;
    }
    if (p.opd_only && p.base_only) {
        snprintf(err, errlen, "bench: opd_only and base_only exclude each other");
        return -1;
    }
    if (p.base_only && (p.base_steps < 1 || p.base_batch < 1)) {
        snprintf(err, errlen, "bench: base_only needs base_steps >= 1 and base_batch >= 1");
        return -1;
    }
    if (p.blas_threads < 0) {
        snprintf(err, errlen, "bench: blas_threads must be >= 0");
        return -1;
    }
    tw_ctx *ctx = NULL;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, errlen)) return -1;
    tw_rng *rng = NULL;
    gpt *m = NULL;
    int rc = -1;
    if (tw_rng_new(ctx, p.seed, &rng)) {
        fail(ctx, err, errlen, "generator");
        goto done;
    }
    if (gpt_new(ctx, p.model, rng, &m)) {
        fail(ctx, err, errlen, "model");
        goto done;
    }
    out->params = gpt_config_param_count(p.model);
    say(progress, arg, "matmul");
    /* The machine's rate: one matmul on every core through BLAS. */
    tw_set_num_threads(1);
    tw_set_blas_threads(p.threads); /* TW_ERR_STATE: not OpenBLAS, its own default applies */
    if (bench_matmul(ctx, rng, p.matmul_n, &out->matmul_gflops)) {
        fail(ctx, err, errlen, "matmul");
        goto done;
    }
    /* Everything else under the thread setting being measured. */
    tw_set_num_threads(p.threads);
    if (p.blas_threads > 0) tw_set_blas_threads(p.blas_threads);
    if (bench_matmul(ctx, rng, p.matmul_n, &out->matmul_gflops_run)) {
        fail(ctx, err, errlen, "matmul");
        goto done;
    }
    if (!p.opd_only && !p.base_only &&
        bench_model_runs(ctx, rng, m, &p, out, progress, arg, err, errlen))
        goto done;
    if (p.opd_steps > 0 && !p.base_only) {
        char line[128];
        snprintf(line, sizeof line, "CaOPD step (%d prompts x K %d x %d new tokens)%s",
                 p.opd_prompts, p.opd_k, p.opd_new, p.profile ? ", then profiled" : "");
        say(progress, arg, line);
        if (bench_opd_step(ctx, &p, out->matmul_gflops_run, &out->opd, err, errlen)) goto done;
    }
    if (p.base_only) {
        char line[128];
        snprintf(line, sizeof line, "base step (%d pairs)%s", p.base_batch,
                 p.profile ? ", then profiled" : "");
        say(progress, arg, line);
        if (bench_base_step(ctx, &p, out->matmul_gflops_run, &out->base, err, errlen)) goto done;
    }
    rc = 0;
done:
    gpt_free(m);
    tw_rng_free(rng);
    tw_ctx_free(ctx);
    return rc;
}
