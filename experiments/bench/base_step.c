/* base_step: times train_step_base at the base stage's recipe size
 * (experiments/bases/base-small.json: width 64, 2 layers, 4 heads, 32 pairs of its mixture per
 * step) with APIs that every commit since the trainer has, so compare.sh can build it against two
 * commits. Prints one JSON line:
 * {"base_step_s": median, "steps": n}. Usage: base_step [STEPS [THREADS]] (defaults 5, 1). */
#include "basedata.h"
#include "gpt.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* as harness/cli/main.c */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    const int steps = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 1;
    if (steps < 1 || steps > 64 || threads < 1) {
        fprintf(stderr, "usage: base_step [STEPS 1..64 [THREADS]]\n");
        return 2;
    }
    tw_set_num_threads(threads);
    base_params bp = base_params_default();
    bp.p_teacher = 0.75;
    bp.p_no_note = 0.4;
    bp.student_domains = 1u << TASK_DOMAIN_MOD | 1u << TASK_DOMAIN_COUNT_CHAR |
                         1u << TASK_DOMAIN_REV | 1u << TASK_DOMAIN_SORT;
    bp.focus = TASK_DOMAIN_MOD;
    bp.focus_share = 0.5;
    gpt_config cfg = gpt_config_default();
    cfg.n_embd = 64, cfg.n_layer = 2, cfg.n_head = 4;
    char err[256];
    tw_ctx *ctx = NULL;
    base_gen *g = NULL;
    tw_rng *init = NULL;
    gpt *m = NULL;
    trainer *t = NULL;
    train_params tp = train_params_default();
    tp.batch_prompts = 32;
    tp.lr = 3e-3;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) || base_gen_new(&g, bp, 1) != BASE_OK ||
        tw_rng_new(ctx, 7, &init) || gpt_new(ctx, cfg, init, &m) || train_new(m, tp, 1, &t)) {
        fprintf(stderr, "base_step: setup failed: %s\n", ctx ? tw_errmsg(ctx) : err);
        return 1;
    }
    double dt[64];
    for (int r = -1; r < steps; r++) {
        const double t0 = now_s();
        if (train_step_base(t, g, NULL)) {
            fprintf(stderr, "base_step: %s\n", train_errmsg(t));
            return 1;
        }
        if (r >= 0) dt[r] = now_s() - t0;
    }
    qsort(dt, (size_t)steps, sizeof *dt, cmp_double);
    const double med = steps % 2 ? dt[steps / 2] : 0.5 * (dt[steps / 2 - 1] + dt[steps / 2]);
    printf("{\"base_step_s\": %.6f, \"steps\": %d}\n", med, steps);
    train_free(t);
    gpt_free(m);
    tw_rng_free(init);
    base_gen_free(g);
    tw_ctx_free(ctx);
    return 0;
}
