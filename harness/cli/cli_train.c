/* cli_train.c: `caopd train-demo`: a base stage, a check that the base model follows
 * privileged context (demo answers, note confidences), then one domain trained with one or
 * more methods (caopd, sdft, sft), each from the same base weights, evaluated greedily with
 * the calibration metrics. A development driver for the trainer until `caopd run` (specs,
 * HDF5) exists; the paper-effect recipe it runs is in docs/trainer.md §8. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tasks/basedata.h"
#include "harness/trainer/evaluate.h"
#include "analysis/metrics/metrics.h"
#include "harness/trainer/opd.h"
#include "tasks/rng.h"
#include "tasks/templates.h"
#include "harness/trainer/train.h"
#include "harness/cli/cli_train.h"
#include "harness/cli/cli_args.h"
#include "common/clock.h"

#define DEMO_MAX_METHODS 3

typedef struct demo_opts {
    int base_steps, base_batch, steps, batch, k, eval_n, check_n, threads, log_every, max_new;
    int width, layers, heads, skip, check_every;
    double base_lr, lr, base_p_teacher, base_target_frac, base_p_solution, base_p_replaced,
        base_p_no_note, temperature, ema;
    uint64_t seed;
    int n_methods;
    train_method methods[DEMO_MAX_METHODS];
    opd_teacher_mode teacher;
    task_domain domain;
    unsigned base_domains;         /* teacher-format pairs (0: all) */
    unsigned base_student_domains; /* student-format pairs (0: as base_domains) */
    const char *save_base, *load_base;
    const char *dump_eval; /* prefix of per-sample evaluation TSVs (NULL: none) */
} demo_opts;

static int usage(void) {
    fprintf(
        stderr,
        "usage: caopd train-demo [options]\n"
        "  model:  --width C [64] --layers L [2] --heads H [4]\n"
        "  base:   --base-steps N [600] --base-batch B [32] --base-lr X [2e-3]\n"
        "          --base-domains add,sub,... [all]     (teacher-format pairs)\n"
        "          --base-student-domains LIST [as --base-domains] (student-format pairs)\n"
        "          --base-p-teacher X [0.5]  share of teacher-format pairs\n"
        "          --base-target-frac X [-1] share of student-format pairs from --domain\n"
        "                                    (the rest from the student domains minus it;\n"
        "                                    negative: no special treatment)\n"
        "          --base-p-solution X [0.5] --base-p-replaced X [0.5] (basedata.h)\n"
        "          --base-p-no-note X [0] share of teacher-format pairs in the SDFT form: demo\n"
        "                     ending 1.00, no note, target answer + 1.00\n"
        "          --save-base FILE  --load-base FILE (raw weights; skips the base stage)\n"
        "  domain: --domain D [add] --methods caopd,sdft,sft [caopd] (--method is the same)\n"
        "          --teacher demo|correct_solution [demo] --steps N [30] --batch B [16]\n"
        "          --k K [8] --lr X [1e-4] --temperature T [1.0] --max-new N [24]\n"
        "          --ema A [0.01] (teacher EMA rate) --skip N [3] (targets left out of the loss)\n"
        "  other:  --eval N [400] --check N [200] --seed S [1] --threads T [1] --log-every N [10]\n"
        "          --check-every N [0]: during the base stage, check context following on 64\n"
        "                                   questions every N steps\n"
        "          --dump-eval PREFIX: per-sample evaluation to PREFIX.<model>.tsv\n");
    return 2;
}

static int parse_domains(const char *v, unsigned *mask) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v);
    *mask = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        task_domain d;
        if (task_domain_from_name(tok, &d)) return -1;
        *mask |= 1u << d;
    }
    return 0;
}

static int parse(int argc, char **argv, demo_opts *o) {
    *o = (demo_opts){.base_steps = 600,
                     .base_batch = 32,
                     .steps = 30,
                     .batch = 16,
                     .k = 8,
                     .eval_n = 400,
                     .check_n = 200,
                     .threads = 1,
                     .log_every = 10,
                     .max_new = 24,
                     .width = 64,
                     .layers = 2,
                     .heads = 4,
                     .base_lr = 2e-3,
                     .lr = 1e-4,
                     .base_p_teacher = 0.5,
                     .base_target_frac = -1.0,
                     .base_p_solution = 0.5,
                     .base_p_replaced = 0.5,
                     .base_p_no_note = 0.0,
                     .temperature = 1.0,
                     .ema = 0.01,
                     .skip = 3,
                     .seed = 1,
                     .n_methods = 1,
                     .methods = {TRAIN_METHOD_CAOPD},
                     .teacher = OPD_TEACHER_DEMO,
                     .domain = TASK_DOMAIN_ADD};
    for (int i = 1; i < argc; i++) { /* argv[0] is "train-demo" */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        i++;
        int rc = 0; /* -1: a bad value, already reported */
        if (!strcmp(a, "--base-steps"))
            rc = cli_int("train-demo", a, v, 0, 1 << 30, &o->base_steps);
        else if (!strcmp(a, "--base-batch"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->base_batch);
        else if (!strcmp(a, "--base-lr"))
            rc = cli_num("train-demo", a, v, 0, 1e9, &o->base_lr);
        else if (!strcmp(a, "--base-p-teacher"))
            rc = cli_num("train-demo", a, v, 0, 1, &o->base_p_teacher);
        else if (!strcmp(a, "--base-target-frac"))
            rc = cli_num("train-demo", a, v, -1, 1, &o->base_target_frac);
        else if (!strcmp(a, "--base-p-solution"))
            rc = cli_num("train-demo", a, v, 0, 1, &o->base_p_solution);
        else if (!strcmp(a, "--base-p-no-note"))
            rc = cli_num("train-demo", a, v, 0, 1, &o->base_p_no_note);
        else if (!strcmp(a, "--base-p-replaced"))
            rc = cli_num("train-demo", a, v, 0, 1, &o->base_p_replaced);
        else if (!strcmp(a, "--steps"))
            rc = cli_int("train-demo", a, v, 0, 1 << 30, &o->steps);
        else if (!strcmp(a, "--batch"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->batch);
        else if (!strcmp(a, "--k"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->k);
        else if (!strcmp(a, "--lr"))
            rc = cli_num("train-demo", a, v, 0, 1e9, &o->lr);
        else if (!strcmp(a, "--temperature"))
            rc = cli_num("train-demo", a, v, 0, 1e9, &o->temperature);
        else if (!strcmp(a, "--ema"))
            rc = cli_num("train-demo", a, v, 0, 1, &o->ema);
        else if (!strcmp(a, "--skip"))
            rc = cli_int("train-demo", a, v, 0, 1 << 30, &o->skip);
        else if (!strcmp(a, "--check-every"))
            rc = cli_int("train-demo", a, v, 0, 1 << 30, &o->check_every);
        else if (!strcmp(a, "--max-new"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->max_new);
        else if (!strcmp(a, "--eval"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->eval_n);
        else if (!strcmp(a, "--check"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->check_n);
        else if (!strcmp(a, "--seed"))
            rc = cli_u64("train-demo", a, v, &o->seed);
        else if (!strcmp(a, "--threads"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->threads);
        else if (!strcmp(a, "--log-every"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->log_every);
        else if (!strcmp(a, "--width"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->width);
        else if (!strcmp(a, "--layers"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->layers);
        else if (!strcmp(a, "--heads"))
            rc = cli_int("train-demo", a, v, 1, 1 << 30, &o->heads);
        else if (!strcmp(a, "--save-base"))
            o->save_base = v;
        else if (!strcmp(a, "--load-base"))
            o->load_base = v;
        else if (!strcmp(a, "--dump-eval"))
            o->dump_eval = v;
        else if (!strcmp(a, "--method") || !strcmp(a, "--methods")) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            o->n_methods = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (o->n_methods == DEMO_MAX_METHODS ||
                    train_method_from_name(tok, &o->methods[o->n_methods]))
                    return usage();
                o->n_methods++;
            }
            if (o->n_methods == 0) return usage();
        } else if (!strcmp(a, "--teacher")) {
            if (opd_teacher_mode_from_name(v, &o->teacher)) return usage();
        } else if (!strcmp(a, "--domain")) {
            if (task_domain_from_name(v, &o->domain)) return usage();
        } else if (!strcmp(a, "--base-domains")) {
            if (parse_domains(v, &o->base_domains)) return usage();
        } else if (!strcmp(a, "--base-student-domains")) {
            if (parse_domains(v, &o->base_student_domains)) return usage();
        } else
            return usage();
        if (rc) return 2;
    }
    if (o->eval_n < 1 || o->check_n < 1 || o->threads < 1 || o->base_batch < 1 || o->batch < 1 ||
        o->base_p_teacher < 0 || o->base_p_teacher > 1 || o->base_target_frac > 1 ||
        o->max_new < 1 || o->max_new >= EVAL_TEXT_CAP || o->skip < 0 || o->ema < 0 || o->ema > 1)
        return usage();
    return 0;
}

/* ---- raw weight files (development only; checkpoints/ owns the real format) ----------
 * "CAOPD-RAW-WEIGHTS 1\n", then int32 vocab, block_size, n_layer, n_head, n_embd, n_params,
 * then per parameter (gpt_param order) int64 numel and numel float32, native byte order. */

static const char raw_magic[] = "CAOPD-RAW-WEIGHTS 1\n";

static int save_raw(gpt *m, const char *path) {
    tw_ctx *ctx = gpt_ctx(m);
    gpt_config c = gpt_get_config(m);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    int32_t hdr[6] = {c.vocab, c.block_size, c.n_layer, c.n_head, c.n_embd, gpt_param_count(m)};
    int ok = fwrite(raw_magic, 1, sizeof raw_magic - 1, f) == sizeof raw_magic - 1 &&
             fwrite(hdr, sizeof hdr, 1, f) == 1;
    for (int i = 0; ok && i < gpt_param_count(m); i++) {
        int64_t n = tw_numel(ctx, gpt_param(m, i));
        float *buf = malloc(sizeof(float) * (size_t)n);
        ok = buf && tw_copy_to_f32(ctx, gpt_param(m, i), buf, (size_t)n) == TW_OK &&
             fwrite(&n, sizeof n, 1, f) == 1 &&
             fwrite(buf, sizeof(float), (size_t)n, f) == (size_t)n;
        free(buf);
    }
    if (fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) remove(tmp);
    return ok ? 0 : -1;
}

static int load_raw(gpt *m, const char *path, char *err, size_t errlen) {
    tw_ctx *ctx = gpt_ctx(m);
    gpt_config c = gpt_get_config(m);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return -1;
    }
    char magic[sizeof raw_magic] = {0};
    int32_t hdr[6];
    int ok = fread(magic, 1, sizeof raw_magic - 1, f) == sizeof raw_magic - 1 &&
             !memcmp(magic, raw_magic, sizeof raw_magic - 1) && fread(hdr, sizeof hdr, 1, f) == 1;
    if (!ok)
        snprintf(err, errlen,
                 "%s is not a raw weight file (version 1) of caopd train-demo --save-base", path);
    if (ok && (hdr[0] != c.vocab || hdr[1] != c.block_size || hdr[2] != c.n_layer ||
               hdr[3] != c.n_head || hdr[4] != c.n_embd || hdr[5] != gpt_param_count(m))) {
        snprintf(err, errlen,
                 "%s holds a model with vocab %d, block %d, %d layers, %d heads, width %d; "
                 "pass the same --layers/--heads/--width",
                 path, hdr[0], hdr[1], hdr[2], hdr[3], hdr[4]);
        ok = 0;
    }
    for (int i = 0; ok && i < gpt_param_count(m); i++) {
        int64_t n = 0, want = tw_numel(ctx, gpt_param(m, i));
        float *buf = malloc(sizeof(float) * (size_t)want);
        ok = buf && fread(&n, sizeof n, 1, f) == 1 && n == want &&
             fread(buf, sizeof(float), (size_t)n, f) == (size_t)n &&
             tw_copy_from_f32(ctx, gpt_param(m, i), buf, (size_t)n) == TW_OK;
        if (!ok)
            snprintf(err, errlen, "%s: parameter %s is truncated or has the wrong size", path,
                     gpt_param_name(m, i));
        free(buf);
    }
    fclose(f);
    return ok ? 0 : -1;
}

/* ---- the base mixture: basedata's stream with the options' parameters ------------------ */

static int mixture_new(base_gen **g, const demo_opts *o) {
    base_params bp = base_params_default();
    bp.domains = o->base_domains;
    bp.student_domains = o->base_student_domains;
    bp.p_teacher = o->base_p_teacher;
    bp.p_solution = o->base_p_solution;
    bp.p_replaced = o->base_p_replaced;
    bp.p_no_note = o->base_p_no_note;
    if (o->base_target_frac >= 0) bp.focus = (int)o->domain, bp.focus_share = o->base_target_frac;
    if (base_gen_new(g, bp, o->seed) == BASE_OK) return 0;
    fprintf(stderr, "caopd train-demo: base mixture: %s\n", base_errmsg());
    return -1;
}

static tw_status base_step(trainer *t, base_gen *x, int n, train_log *log) {
    tw_ctx *ctx = gpt_ctx(train_student(t));
    base_pair *pairs = malloc(sizeof *pairs * (size_t)n);
    const char **pp = malloc(sizeof(char *) * (size_t)n), **tp = malloc(sizeof(char *) * (size_t)n);
    tw_status s = TW_OK;
    if (!pairs || !pp || !tp) {
        tw_set_error(ctx, TW_ERR_NOMEM, "base step: out of memory");
        s = TW_ERR_NOMEM;
    }
    for (int i = 0; s == TW_OK && i < n; i++) {
        if (base_gen_next(x, &pairs[i]) != BASE_OK) {
            tw_set_error(ctx, TW_ERR_ARG, "base step: %s", base_errmsg());
            s = TW_ERR_ARG;
        }
        pp[i] = pairs[i].prompt;
        tp[i] = pairs[i].target;
    }
    if (s == TW_OK) s = train_step_sup(t, pp, tp, n, log);
    free(pairs), free(pp), free(tp);
    return s;
}

/* ---- checks and evaluation -------------------------------------------------------------- */

/* Base model checks on n held-out questions of d, each with a demo and a note carrying a
 * pseudo-random value P (the demo shows P too): demo-following accuracy (the answer is
 * right) and note exactness (the stated confidence is exactly P). */
static int check_following(gpt *m, task_domain d, int n, uint64_t seed, double *demo_acc,
                           double *note_exact) {
    task_example *ex = malloc(sizeof *ex * (size_t)n);
    char(*prompts)[OPD_CONTEXT_CAP] = malloc(sizeof *prompts * (size_t)n);
    const char **pp = malloc(sizeof(char *) * (size_t)n);
    int *note = malloc(sizeof(int) * (size_t)n);
    eval_sample *es = malloc(sizeof *es * (size_t)n);
    task_gen *g = NULL;
    int rc =
        (ex && prompts && pp && note && es) ? task_gen_new(&g, d, TASK_SPLIT_TEST, 0, seed) : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        task_gen_next(g, &ex[i]);
        note[i] = (int)((seed * 7919u + (uint64_t)i * 104729u) % 101u);
        char demo[OPD_TEXT_CAP];
        tmpl_completion(demo, sizeof demo, ex[i].answer, note[i] / 100.0);
        tmpl_teacher_demo(prompts[i], OPD_CONTEXT_CAP, ex[i].question, demo, note[i] / 100.0);
        pp[i] = prompts[i];
    }
    task_gen_free(g);
    eval_params ep = eval_params_default();
    ep.expected = 0; /* the check reads the greedy confidence only */
    if (rc == 0 && eval_generate(m, pp, n, ep, es) != TW_OK) rc = -1;
    int ok = 0, exact = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        ok += task_verify(&ex[i], es[i].completion, strlen(es[i].completion)).correct;
        exact += !es[i].format_failure && tmpl_conf_hundredths(es[i].confidence) == note[i];
    }
    *demo_acc = n ? (double)ok / n : 0;
    *note_exact = n ? (double)exact / n : 0;
    free(ex), free(prompts), free(pp), free(note), free(es);
    return rc;
}

/* Writes one line per evaluated sample: index, correct, confidence, format failure, answer (tab,
 * newline and backslash escaped as \t, \n, \\). 0, or -1 with errno set. */
static int dump_samples(const char *path, const eval_sample *es, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "i\tcorrect\tconfidence\tformat_fail\tanswer\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d\t%d\t%.4f\t%d\t", i, es[i].correct, es[i].confidence, es[i].format_failure);
        for (const char *c = es[i].answer; *c; c++) {
            if (*c == '\t')
                fputs("\\t", f);
            else if (*c == '\n')
                fputs("\\n", f);
            else if (*c == '\\')
                fputs("\\\\", f);
            else
                fputc(*c, f);
        }
        fputc('\n', f);
    }
    int bad = ferror(f);
    return fclose(f) || bad ? -1 : 0;
}

static int evaluate(gpt *m, task_domain d, int n, uint64_t seed, const char *dump,
                    const char *model, metrics_run *r) {
    eval_sample *es = malloc(sizeof *es * (size_t)n);
    double *conf = malloc(sizeof(double) * (size_t)n);
    uint8_t *cor = malloc((size_t)n), *ff = malloc((size_t)n);
    int rc = (es && conf && cor && ff) ? 0 : -1;
    eval_params ep = eval_params_default();
    ep.expected =
        0; /* train-demo reports the greedy readout; caopd run has both (docs/trainer.md §6) */
    if (rc == 0 && eval_split(m, d, TASK_SPLIT_TEST, 0, seed, n, ep, es, NULL) != TW_OK) rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        conf[i] = es[i].confidence;
        cor[i] = (uint8_t)es[i].correct;
        ff[i] = (uint8_t)es[i].format_failure;
    }
    if (rc == 0 && metrics_run_compute(conf, cor, ff, (size_t)n, r) != METRICS_OK) rc = -1;
    if (rc == 0 && dump) {
        char path[512];
        snprintf(path, sizeof path, "%s.%s.tsv", dump, model);
        if (dump_samples(path, es, n)) {
            tw_set_error(gpt_ctx(m), TW_ERR_ARG, "cannot write %s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    free(es), free(conf), free(cor), free(ff);
    return rc;
}

static void print_run(const char *what, const metrics_run *r) {
    printf(
        "%s: acc %.3f conf %.3f ocg %+.3f ece %.3f spr %.3f auroc %.3f brier %.3f fmt_fail %.3f\n",
        what, r->accuracy, r->mean_conf, r->ocg, r->ece, r->spr, r->auroc, r->brier,
        r->format_fail_rate);
}

/* One machine-readable line per evaluated model, for tables. */
static void print_result(const demo_opts *o, const char *what, const metrics_run *r,
                         double wall_s) {
    printf("RESULT seed %llu domain %s model %s acc %.4f conf %.4f ece %.4f ocg %+.4f spr %.4f "
           "auroc %.4f "
           "brier %.4f fmt_fail %.4f n %d wall_s %.1f\n",
           (unsigned long long)o->seed, task_domain_name(o->domain), what, r->accuracy,
           r->mean_conf, r->ece, r->ocg, r->spr, r->auroc, r->brier, r->format_fail_rate, o->eval_n,
           wall_s);
}

/* Trains a copy of base with method mi on the domain and evaluates it. */
static int run_method(const demo_opts *o, int mi, gpt *base, tw_rng *init) {
    tw_ctx *ctx = gpt_ctx(base);
    const train_method method = o->methods[mi];
    gpt *m = NULL;
    trainer *t = NULL;
    task_gen *tg = NULL;
    int status = 1;
    train_params p = train_params_default();
    p.method = method;
    p.opd.teacher = o->teacher;
    p.opd.k = o->k;
    p.opd.max_new = o->max_new;
    p.opd.temperature = o->temperature;
    p.opd.loss.skip_tokens = o->skip;
    p.ema_alpha = o->ema;
    p.batch_prompts = o->batch;
    p.total_steps = o->steps;
    p.warmup_steps = o->steps / 10;
    p.lr = o->lr;
    if (gpt_new(ctx, gpt_get_config(base), init, &m) || gpt_copy_weights(m, base) ||
        train_new(m, p, o->seed, &t) ||
        task_gen_new(&tg, o->domain, TASK_SPLIT_TRAIN, 0, o->seed) != TASK_OK) {
        fprintf(stderr, "caopd train-demo: set-up of %s failed: %s %s\n", train_method_name(method),
                tw_errmsg(ctx), task_errmsg());
        goto done;
    }
    train_set_stage(t, task_domain_name(o->domain));
    const double t0 = clock_now_s();
    for (int s = 0; s < o->steps; s++) {
        train_log log;
        if (train_step_domain(t, tg, NULL, 0, &log) != TW_OK) {
            fprintf(stderr, "caopd train-demo: %s\n", tw_errmsg(ctx));
            goto done;
        }
        if (o->log_every > 0 && (s % o->log_every == 0 || s == o->steps - 1))
            printf("%s step %d loss %.4f kl %.4f p_acc %.3f conf %.3f fmt %.3f ent_s %.3f/%.3f "
                   "ent_t %.3f/%.3f "
                   "%.0f tok/s step %.2fs (roll %.2f teach %.2f train %.2f) [%.0f s]\n",
                   train_method_name(method), s, log.s.loss, log.s.kl, log.s.mean_p_acc,
                   log.s.mean_confidence, log.s.format_adherence, log.s.student_ent_answer,
                   log.s.student_ent_conf, log.s.teacher_ent_answer, log.s.teacher_ent_conf,
                   log.tok_s, log.step_s, log.s.rollout_s, log.s.teacher_s, log.s.train_s,
                   clock_now_s() - t0);
        fflush(stdout);
    }
    const double train_s = clock_now_s() - t0;
    metrics_run r;
    if (evaluate(m, o->domain, o->eval_n, o->seed + 200, o->dump_eval, train_method_name(method),
                 &r)) {
        fprintf(stderr, "caopd train-demo: evaluation failed: %s\n", tw_errmsg(ctx));
        goto done;
    }
    char what[64];
    snprintf(what, sizeof what, "after %s", train_method_name(method));
    print_run(what, &r);
    print_result(o, train_method_name(method), &r, clock_now_s() - t0);
    printf("%s: training %.1f s, evaluation %.1f s\n", train_method_name(method), train_s,
           clock_now_s() - t0 - train_s);
    status = 0;
done:
    task_gen_free(tg);
    train_free(t);
    gpt_free(m);
    return status;
}

int cli_train(int argc, char **argv) {
    demo_opts o;
    if (parse(argc, argv, &o)) return 2;
    const double start = clock_now_s();
    tw_set_num_threads(o.threads);
    tw_ctx *ctx = NULL;
    char err[512];
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) != TW_OK) {
        fprintf(stderr, "caopd train-demo: %s\n", err);
        return 1;
    }
    tw_rng *init = NULL;
    gpt *m = NULL;
    trainer *t = NULL;
    base_gen *mix = NULL;
    int status = 1;
    gpt_config cfg = gpt_config_default();
    cfg.n_embd = o.width, cfg.n_layer = o.layers, cfg.n_head = o.heads;
    if (gpt_config_check(cfg, err, sizeof err)) {
        fprintf(stderr, "caopd train-demo: %s\n", err);
        tw_ctx_free(ctx);
        return 2;
    }
    train_params p = train_params_default();
    p.batch_prompts = o.base_batch;
    p.total_steps = o.base_steps;
    p.warmup_steps = o.base_steps / 20;
    p.lr = o.base_lr;
    if (tw_rng_new(ctx, o.seed, &init) || gpt_new(ctx, cfg, init, &m) ||
        train_new(m, p, o.seed, &t) || mixture_new(&mix, &o)) {
        fprintf(stderr, "caopd train-demo: set-up failed: %s %s\n", tw_errmsg(ctx), base_errmsg());
        goto done;
    }
    printf("model: width %d, %d layers, %d heads, %lld parameters; %d thread(s)\n", cfg.n_embd,
           cfg.n_layer, cfg.n_head, (long long)gpt_config_param_count(cfg), o.threads);
    double t0 = clock_now_s();
    if (o.load_base) {
        if (load_raw(m, o.load_base, err, sizeof err)) {
            fprintf(stderr, "caopd train-demo: %s\n", err);
            goto done;
        }
        printf("base weights loaded from %s\n", o.load_base);
    } else {
        train_set_stage(t, "base");
        for (int s = 0; s < o.base_steps; s++) {
            train_log log;
            if (base_step(t, mix, o.base_batch, &log) != TW_OK) {
                fprintf(stderr, "caopd train-demo: %s\n", tw_errmsg(ctx));
                goto done;
            }
            if (o.log_every > 0 && (s % (o.log_every * 5) == 0 || s == o.base_steps - 1)) {
                printf("base step %d lr %.2e loss %.4f gnorm %.3f %.0f tok/s (%.1f s)\n", s, log.lr,
                       log.s.loss, log.grad_norm, log.tok_s, clock_now_s() - t0);
                fflush(stdout);
            }
            if (o.check_every > 0 && (s + 1) % o.check_every == 0) {
                double da = 0, ne = 0;
                if (check_following(m, o.domain, 64, o.seed + 300, &da, &ne)) {
                    fprintf(stderr, "caopd train-demo: check failed: %s\n", tw_errmsg(ctx));
                    goto done;
                }
                printf("base step %d check: demo-following %.3f, note exact %.3f (%.1f s)\n", s, da,
                       ne, clock_now_s() - t0);
                fflush(stdout);
            }
        }
        printf("base stage: %d steps in %.1f s\n", o.base_steps, clock_now_s() - t0);
    }
    if (o.save_base) {
        if (save_raw(m, o.save_base)) {
            fprintf(stderr, "caopd train-demo: cannot write %s\n", o.save_base);
            goto done;
        }
        printf("base weights saved to %s\n", o.save_base);
    }
    t0 = clock_now_s();
    double demo_acc = 0, note_exact = 0;
    metrics_run r;
    if (check_following(m, o.domain, o.check_n, o.seed + 100, &demo_acc, &note_exact) ||
        evaluate(m, o.domain, o.eval_n, o.seed + 200, o.dump_eval, "base", &r)) {
        fprintf(stderr, "caopd train-demo: evaluation failed: %s\n", tw_errmsg(ctx));
        goto done;
    }
    printf("base model on %s: demo-following accuracy %.3f, note confidence exact %.3f\n",
           task_domain_name(o.domain), demo_acc, note_exact);
    print_run("base model, no demo", &r);
    print_result(&o, "base", &r, clock_now_s() - t0);
    fflush(stdout);
    status = 0;
    for (int i = 0; status == 0 && i < o.n_methods; i++)
        status = run_method(&o, i, m, init);
    printf("total wall time %.1f s\n", clock_now_s() - start);
done:
    base_gen_free(mix);
    train_free(t);
    gpt_free(m);
    tw_rng_free(init);
    tw_ctx_free(ctx);
    return status;
}
