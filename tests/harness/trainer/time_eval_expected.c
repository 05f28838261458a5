/* Not a test: `time_eval_expected [WIDTH LAYERS [MEM_MB]]` times the expected-confidence readout
 * (eval_expected, docs/trainer.md §6) against greedy evaluation without it, for 128 and 400
 * `mod` test questions whose completions stop at "Confidence: ", on a fresh model (width 64,
 * 2 layers, 4 heads by default; 1 intra-op thread; MEM_MB: eval_params.expected_mem_mb).
 * Prints one line per size. */
#include "harness/trainer/evaluate.h"
#include "tasks/task.h"
#include "tasks/templates.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int width = argc > 1 ? atoi(argv[1]) : 64, layers = argc > 2 ? atoi(argv[2]) : 2;
    eval_params ep = eval_params_default();
    if (argc > 3) ep.expected_mem_mb = atoi(argv[3]);
    tw_set_num_threads(1);
    char err[256];
    tw_ctx *ctx = NULL;
    tw_rng *rng = NULL;
    gpt *m = NULL;
    gpt_config cfg = gpt_config_default();
    cfg.n_embd = width, cfg.n_layer = layers;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) || tw_rng_new(ctx, 1, &rng) ||
        gpt_new(ctx, cfg, rng, &m)) {
        fprintf(stderr, "time_eval_expected: cannot make the model\n");
        return 1;
    }
    enum { NMAX = 400 };
    static char prompts[NMAX][TASK_QUESTION_CAP + 64], comps[NMAX][TASK_ANSWER_CAP + 16];
    const char *pp[NMAX], *cp[NMAX];
    task_gen *g = NULL;
    task_example ex;
    if (task_gen_new(&g, TASK_DOMAIN_MOD, TASK_SPLIT_TEST, 0, 201) != TASK_OK) return 1;
    for (int i = 0; i < NMAX; i++) {
        task_gen_next(g, &ex);
        tmpl_student_prompt(prompts[i], sizeof prompts[i], ex.question);
        snprintf(comps[i], sizeof comps[i], "%s\nConfidence: ", ex.answer);
        pp[i] = prompts[i], cp[i] = comps[i];
    }
    task_gen_free(g);
    static double e[NMAX], ms[NMAX];
    static eval_sample s[NMAX];
    const int sizes[2] = {128, 400};
    for (int k = 0; k < 2; k++) {
        const int n = sizes[k];
        eval_params p = eval_params_default();
        p.expected = 0;
        double t0 = now_s();
        tw_status rc = eval_generate(m, pp, n, p, s);
        double t1 = now_s();
        rc = rc ? rc : eval_expected(m, pp, cp, n, ep, e, ms);
        double t2 = now_s();
        if (rc) {
            fprintf(stderr, "time_eval_expected: %s\n", tw_errmsg(ctx));
            return 1;
        }
        printf("width %d, %d layers, %d MiB, %d samples: greedy evaluation %.2f s, expected "
               "readout %.2f s (%.1f ms/sample)\n",
               width, layers, ep.expected_mem_mb, n, t1 - t0, t2 - t1, 1e3 * (t2 - t1) / n);
    }
    gpt_free(m);
    tw_rng_free(rng);
    tw_ctx_free(ctx);
    return 0;
}
