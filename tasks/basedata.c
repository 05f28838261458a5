/* basedata.c: draws the base-stage (prompt, target) mixture from the domains' train
 * streams and the templates. See basedata.h for the exact composition. */
#include <stdlib.h>
#include <string.h>

#include "basedata.h"
#include "tasks_internal.h"
#include "templates.h"

#define ALL_DOMAINS ((1u << TASK_N_DOMAINS) - 1)

struct base_gen {
    base_params params;
    task_domain enabled[TASK_N_DOMAINS];
    int n_enabled;
    rng_state rng;
};

base_params base_params_default(void) {
    base_params p = {0, 0.5, 0.5, 0.5};
    return p;
}

static int prob_ok(double p) {
    return p >= 0.0 && p <= 1.0; /* false for NaN */
}

int base_gen_new(base_gen **out, base_params params, uint64_t seed) {
    if (params.domains & ~ALL_DOMAINS) {
        tasks__set_error("base_params.domains 0x%x has bits outside the %d domains (mask 0x%x)",
                         params.domains, TASK_N_DOMAINS, ALL_DOMAINS);
        return BASE_ERR_ARG;
    }
    if (!prob_ok(params.p_teacher) || !prob_ok(params.p_solution) || !prob_ok(params.p_replaced)) {
        tasks__set_error("base_params probabilities must lie in [0, 1] (p_teacher %g, "
                         "p_solution %g, p_replaced %g)",
                         params.p_teacher, params.p_solution, params.p_replaced);
        return BASE_ERR_ARG;
    }
    base_gen *g = TASKS_MALLOC(sizeof *g);
    if (!g) {
        tasks__set_error("base_gen_new: out of memory");
        return BASE_ERR_NOMEM;
    }
    unsigned mask = params.domains ? params.domains : ALL_DOMAINS;
    g->params = params;
    g->n_enabled = 0;
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        if (mask & (1u << d)) g->enabled[g->n_enabled++] = (task_domain)d;
    rng_seed(&g->rng, seed, 0x62617365u);
    *out = g;
    return BASE_OK;
}

void base_gen_free(base_gen *g) {
    free(g);
}

static int too_long(size_t n, size_t cap, const char *what) {
    if (n < cap) return 0;
    tasks__set_error("base_gen_next: %s of %zu bytes exceeds its %zu-byte buffer", what, n, cap);
    return 1;
}

int base_gen_next(base_gen *g, base_pair *pair) {
    rng_state *r = &g->rng;
    task_domain d = g->enabled[rng_below(r, (uint64_t)g->n_enabled)];
    task_example ex;
    if (task__sample(r, d, TASK_SPLIT_TRAIN, 0, &ex) != TASK_OK) return BASE_ERR_GEN;
    pair->domain = d;

    if (rng_unit(r) >= g->params.p_teacher) {
        pair->kind = BASE_KIND_STUDENT;
        pair->target_hundredths = 100;
        pair->shown_hundredths = -1;
        size_t np = tmpl_student_prompt(pair->prompt, BASE_PROMPT_CAP, ex.question);
        size_t nt = tmpl_completion(pair->target, BASE_TARGET_CAP, ex.answer, 1.0);
        if (too_long(np, BASE_PROMPT_CAP, "prompt") || too_long(nt, BASE_TARGET_CAP, "target"))
            return BASE_ERR_GEN;
        return BASE_OK;
    }

    int solution = rng_unit(r) < g->params.p_solution;
    int replaced = rng_unit(r) < g->params.p_replaced;
    int k = (int)rng_below(r, 101);
    double note = k / 100.0; /* formats back to exactly k hundredths */
    double shown = replaced ? note : 1.0;
    char shown_text[BASE_TARGET_CAP];
    size_t ns = tmpl_completion(shown_text, sizeof shown_text, ex.answer, shown);
    size_t np =
        solution
            ? tmpl_teacher_solution(pair->prompt, BASE_PROMPT_CAP, ex.question, shown_text, note)
            : tmpl_teacher_demo(pair->prompt, BASE_PROMPT_CAP, ex.question, shown_text, note);
    size_t nt = tmpl_completion(pair->target, BASE_TARGET_CAP, ex.answer, note);
    if (too_long(ns, sizeof shown_text, "demonstration") ||
        too_long(np, BASE_PROMPT_CAP, "prompt") || too_long(nt, BASE_TARGET_CAP, "target"))
        return BASE_ERR_GEN;
    pair->kind = solution ? BASE_KIND_SOLUTION : BASE_KIND_DEMO;
    pair->target_hundredths = k;
    pair->shown_hundredths = replaced ? k : 100;
    return BASE_OK;
}

void base_gen_get_state(const base_gen *g, uint64_t state[BASE_GEN_STATE_WORDS]) {
    memcpy(state, g->rng.s, sizeof g->rng.s);
}

void base_gen_set_state(base_gen *g, const uint64_t state[BASE_GEN_STATE_WORDS]) {
    memcpy(g->rng.s, state, sizeof g->rng.s);
}

const char *base_status_str(int rc) {
    switch (rc) {
    case BASE_OK:
        return "ok";
    case BASE_ERR_ARG:
        return "invalid argument";
    case BASE_ERR_NOMEM:
        return "out of memory";
    case BASE_ERR_GEN:
        return "example generation failed";
    default:
        return "unknown base status";
    }
}

const char *base_errmsg(void) {
    return tasks__errmsg();
}
