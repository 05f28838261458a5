/* cli_train.c: `caopd train-demo`: a base stage, a check that the base model follows
 * privileged context (demo answers, note confidences), then one domain trained with a
 * method (caopd, sdft, sft) and evaluated greedily with the calibration metrics.
 * A development driver for the trainer until `caopd run` (specs, HDF5) exists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basedata.h"
#include "evaluate.h"
#include "metrics.h"
#include "opd.h"
#include "templates.h"
#include "train.h"
#include "cli_train.h"

typedef struct demo_opts {
    int base_steps, base_batch, steps, batch, k, eval_n, threads, log_every, max_new;
    double base_lr, lr;
    uint64_t seed;
    train_method method;
    opd_teacher_mode teacher;
    task_domain domain;
    unsigned base_domains;
} demo_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void) {
    fprintf(stderr,
            "usage: caopd train-demo [--base-steps N] [--base-batch B] [--base-lr X]\n"
            "         [--base-domains add,sub,...] [--method caopd|sdft|sft] [--teacher demo|correct_solution]\n"
            "         [--domain D] [--steps N] [--batch B] [--k K] [--lr X] [--max-new N]\n"
            "         [--eval N] [--seed S] [--threads T] [--log-every N]\n");
    return 2;
}

static int parse(int argc, char **argv, demo_opts *o) {
    *o = (demo_opts){.base_steps = 300, .base_batch = 32, .steps = 30, .batch = 16, .k = 8,
                     .eval_n = 200, .threads = 1, .log_every = 10, .max_new = 24,
                     .base_lr = 1e-3, .lr = 1e-4, .seed = 1, .method = TRAIN_METHOD_CAOPD,
                     .teacher = OPD_TEACHER_DEMO, .domain = TASK_DOMAIN_ADD, .base_domains = 0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        i++;
        if (!strcmp(a, "--base-steps")) o->base_steps = atoi(v);
        else if (!strcmp(a, "--base-batch")) o->base_batch = atoi(v);
        else if (!strcmp(a, "--base-lr")) o->base_lr = atof(v);
        else if (!strcmp(a, "--steps")) o->steps = atoi(v);
        else if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--k")) o->k = atoi(v);
        else if (!strcmp(a, "--lr")) o->lr = atof(v);
        else if (!strcmp(a, "--max-new")) o->max_new = atoi(v);
        else if (!strcmp(a, "--eval")) o->eval_n = atoi(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--log-every")) o->log_every = atoi(v);
        else if (!strcmp(a, "--method")) {
            if (train_method_from_name(v, &o->method)) return usage();
        } else if (!strcmp(a, "--teacher")) {
            if (opd_teacher_mode_from_name(v, &o->teacher)) return usage();
        } else if (!strcmp(a, "--domain")) {
            if (task_domain_from_name(v, &o->domain)) return usage();
        } else if (!strcmp(a, "--base-domains")) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                task_domain d;
                if (task_domain_from_name(tok, &d)) return usage();
                o->base_domains |= 1u << d;
            }
        } else return usage();
    }
    return 0;
}

/* Base model checks: demo-following accuracy and note exactness on held-out questions. */
static int check_following(gpt *m, task_domain d, int n, uint64_t seed, double *demo_acc,
                           double *note_exact) {
    task_example *ex = malloc(sizeof *ex * (size_t)n);
    char (*prompts)[OPD_CONTEXT_CAP] = malloc(sizeof *prompts * (size_t)n);
    const char **pp = malloc(sizeof(char *) * (size_t)n);
    int *note = malloc(sizeof(int) * (size_t)n);
    eval_sample *es = malloc(sizeof *es * (size_t)n);
    task_gen *g = NULL;
    int rc = (ex && prompts && pp && note && es) ? task_gen_new(&g, d, TASK_SPLIT_TEST, 0, seed) : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        task_gen_next(g, &ex[i]);
        note[i] = (int)((seed * 7919u + (uint64_t)i * 104729u) % 101u);
        char demo[OPD_TEXT_CAP];
        tmpl_completion(demo, sizeof demo, ex[i].answer, note[i] / 100.0);
        tmpl_teacher_demo(prompts[i], OPD_CONTEXT_CAP, ex[i].question, demo, note[i] / 100.0);
        pp[i] = prompts[i];
    }
    task_gen_free(g);
    if (rc == 0 && eval_generate(m, pp, n, eval_params_default(), es) != TW_OK) rc = -1;
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

static int evaluate(gpt *m, task_domain d, int n, uint64_t seed, metrics_run *r) {
    eval_sample *es = malloc(sizeof *es * (size_t)n);
    double *conf = malloc(sizeof(double) * (size_t)n);
    uint8_t *cor = malloc((size_t)n), *ff = malloc((size_t)n);
    int rc = (es && conf && cor && ff) ? 0 : -1;
    if (rc == 0 && eval_split(m, d, TASK_SPLIT_TEST, 0, seed, n, eval_params_default(), es, NULL) != TW_OK) rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        conf[i] = es[i].confidence;
        cor[i] = (uint8_t)es[i].correct;
        ff[i] = (uint8_t)es[i].format_failure;
    }
    if (rc == 0 && metrics_run_compute(conf, cor, ff, (size_t)n, r) != METRICS_OK) rc = -1;
    free(es), free(conf), free(cor), free(ff);
    return rc;
}

static void print_run(const char *what, const metrics_run *r) {
    printf("%s: acc %.3f conf %.3f ocg %+.3f ece %.3f spr %.3f auroc %.3f brier %.3f fmt_fail %.3f\n",
           what, r->accuracy, r->mean_conf, r->ocg, r->ece, r->spr, r->auroc, r->brier, r->format_fail_rate);
}

int cli_train(int argc, char **argv) {
    demo_opts o;
    if (parse(argc, argv, &o)) return 2;
    tw_set_num_threads(o.threads);
    tw_ctx *ctx = NULL;
    char err[256];
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) != TW_OK) {
        fprintf(stderr, "caopd train-demo: %s\n", err);
        return 1;
    }
    tw_rng *init = NULL;
    gpt *m = NULL;
    trainer *t = NULL;
    base_gen *bg = NULL;
    task_gen *tg = NULL;
    int status = 1;
    train_params p = train_params_default();
    p.batch_prompts = o.base_batch;
    p.total_steps = o.base_steps;
    p.warmup_steps = o.base_steps / 20;
    p.lr = o.base_lr;
    base_params bp = base_params_default();
    bp.domains = o.base_domains;
    if (tw_rng_new(ctx, o.seed, &init) || gpt_new(ctx, gpt_config_default(), init, &m) ||
        train_new(m, p, o.seed, &t) || base_gen_new(&bg, bp, o.seed) != BASE_OK ||
        task_gen_new(&tg, o.domain, TASK_SPLIT_TRAIN, 0, o.seed) != TASK_OK) {
        fprintf(stderr, "caopd train-demo: set-up failed: %s %s\n", tw_errmsg(ctx), task_errmsg());
        goto done;
    }
    train_set_stage(t, "base");
    double t0 = now_s();
    for (int s = 0; s < o.base_steps; s++) {
        train_log log;
        if (train_step_base(t, bg, &log) != TW_OK) {
            fprintf(stderr, "caopd train-demo: %s\n", tw_errmsg(ctx));
            goto done;
        }
        if (o.log_every > 0 && (s % o.log_every == 0 || s == o.base_steps - 1))
            printf("base step %d lr %.2e loss %.4f gnorm %.3f %.0f tok/s (%.1f s)\n", s, log.lr, log.s.loss,
                   log.grad_norm, log.tok_s, now_s() - t0);
    }
    double demo_acc = 0, note_exact = 0;
    metrics_run r;
    if (check_following(m, o.domain, o.eval_n, o.seed + 100, &demo_acc, &note_exact) ||
        evaluate(m, o.domain, o.eval_n, o.seed + 200, &r)) {
        fprintf(stderr, "caopd train-demo: evaluation failed: %s\n", tw_errmsg(ctx));
        goto done;
    }
    printf("base model on %s: demo-following accuracy %.3f, note confidence exact %.3f\n",
           task_domain_name(o.domain), demo_acc, note_exact);
    print_run("base model, no demo", &r);

    p = train_params_default();
    p.method = o.method;
    p.opd.teacher = o.teacher;
    p.opd.k = o.k;
    p.opd.max_new = o.max_new;
    p.batch_prompts = o.batch;
    p.total_steps = o.steps;
    p.warmup_steps = o.steps / 10;
    p.lr = o.lr;
    train_set_params(t, p);
    train_set_stage(t, task_domain_name(o.domain));
    train_sync_teacher(t);
    t0 = now_s();
    for (int s = 0; s < o.steps; s++) {
        train_log log;
        if (train_step_domain(t, tg, NULL, 0, &log) != TW_OK) {
            fprintf(stderr, "caopd train-demo: %s\n", tw_errmsg(ctx));
            goto done;
        }
        if (o.log_every > 0 && (s % o.log_every == 0 || s == o.steps - 1))
            printf("%s step %d loss %.4f kl %.4f p_acc %.3f conf %.3f fmt %.3f ent_s %.3f/%.3f ent_t %.3f/%.3f "
                   "%.0f tok/s step %.2fs (roll %.2f teach %.2f train %.2f)\n",
                   train_method_name(o.method), s, log.s.loss, log.s.kl, log.s.mean_p_acc, log.s.mean_confidence,
                   log.s.format_adherence, log.s.student_ent_answer, log.s.student_ent_conf,
                   log.s.teacher_ent_answer, log.s.teacher_ent_conf, log.tok_s, log.step_s, log.s.rollout_s,
                   log.s.teacher_s, log.s.train_s);
    }
    if (evaluate(m, o.domain, o.eval_n, o.seed + 200, &r)) {
        fprintf(stderr, "caopd train-demo: evaluation failed: %s\n", tw_errmsg(ctx));
        goto done;
    }
    print_run("after training", &r);
    status = 0;
done:
    task_gen_free(tg);
    base_gen_free(bg);
    train_free(t);
    gpt_free(m);
    tw_rng_free(init);
    tw_ctx_free(ctx);
    return status;
}
