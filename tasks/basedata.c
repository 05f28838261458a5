/* basedata.c: draws the base-stage (prompt, target) mixture from the domains' train
 * streams and the templates. See basedata.h for the exact composition. */
#include <stdlib.h>
#include <string.h>

#include "tasks/basedata.h"
#include "tasks/tasks_internal.h"
#include "tasks/templates.h"

#define ALL_DOMAINS ((1u << TASK_N_DOMAINS) - 1)

struct base_gen {
    base_params params;
    task_domain enabled[TASK_N_DOMAINS]; /* teacher-format domains (all pairs when !mixed) */
    int n_enabled;
    task_domain students[TASK_N_DOMAINS]; /* student-format domains, the focus left out */
    int n_students;
    int mixed; /* any of p_no_note, student_domains, focus set: kind is drawn first */
    rng_state rng;
};

base_params base_params_default(void) {
    base_params p = {0, 0.5, 0.5, 0.5, 0.0, 0, -1, 0.0};
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
    if (params.student_domains & ~ALL_DOMAINS) {
        tasks__set_error("base_params.student_domains 0x%x has bits outside the %d domains "
                         "(mask 0x%x)",
                         params.student_domains, TASK_N_DOMAINS, ALL_DOMAINS);
        return BASE_ERR_ARG;
    }
    if (!prob_ok(params.p_teacher) || !prob_ok(params.p_solution) || !prob_ok(params.p_replaced) ||
        !prob_ok(params.p_no_note) || !prob_ok(params.focus_share)) {
        tasks__set_error("base_params probabilities must lie in [0, 1] (p_teacher %g, "
                         "p_solution %g, p_replaced %g, p_no_note %g, focus_share %g)",
                         params.p_teacher, params.p_solution, params.p_replaced, params.p_no_note,
                         params.focus_share);
        return BASE_ERR_ARG;
    }
    if (params.focus < -1 || params.focus >= TASK_N_DOMAINS) {
        tasks__set_error("base_params.focus %d is not a domain (0..%d) or -1", params.focus,
                         TASK_N_DOMAINS - 1);
        return BASE_ERR_ARG;
    }
    unsigned smask = params.student_domains ? params.student_domains
                     : params.domains       ? params.domains
                                            : ALL_DOMAINS;
    if (params.focus >= 0) smask &= ~(1u << params.focus);
    if (!smask && !(params.focus >= 0 && params.focus_share == 1.0)) {
        tasks__set_error("no student-format domain is left besides the focus domain %s; add "
                         "student domains or set focus_share to 1",
                         task_domain_name((task_domain)params.focus));
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
    g->n_students = 0;
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        if (mask & (1u << d)) g->enabled[g->n_enabled++] = (task_domain)d;
        if (smask & (1u << d)) g->students[g->n_students++] = (task_domain)d;
    }
    g->mixed = params.p_no_note > 0 || params.student_domains || params.focus >= 0;
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

static int student_pair(const task_example *ex, base_pair *pair) {
    pair->kind = BASE_KIND_STUDENT;
    pair->target_hundredths = 100;
    pair->shown_hundredths = -1;
    size_t np = tmpl_student_prompt(pair->prompt, BASE_PROMPT_CAP, ex->question);
    size_t nt = tmpl_completion(pair->target, BASE_TARGET_CAP, ex->answer, 1.0);
    if (too_long(np, BASE_PROMPT_CAP, "prompt") || too_long(nt, BASE_TARGET_CAP, "target"))
        return BASE_ERR_GEN;
    return BASE_OK;
}

/* A teacher-format pair with a note (no_note 0) or the SDFT form (no_note 1). */
static int teacher_pair(rng_state *r, const base_params *bp, const task_example *ex, int no_note,
                        base_pair *pair) {
    int solution = 0, replaced = 0, k = 100;
    if (!no_note) {
        solution = rng_unit(r) < bp->p_solution;
        replaced = rng_unit(r) < bp->p_replaced;
        k = (int)rng_below(r, 101);
    }
    double note = k / 100.0; /* formats back to exactly k hundredths */
    double shown = replaced ? note : 1.0;
    char shown_text[BASE_TARGET_CAP];
    size_t ns = tmpl_completion(shown_text, sizeof shown_text, ex->answer, shown);
    size_t np = solution ? tmpl_teacher_solution(pair->prompt, BASE_PROMPT_CAP, ex->question,
                                                 shown_text, note)
                         : tmpl_teacher_demo(pair->prompt, BASE_PROMPT_CAP, ex->question,
                                             shown_text, no_note ? TMPL_NO_NOTE : note);
    size_t nt = tmpl_completion(pair->target, BASE_TARGET_CAP, ex->answer, note);
    if (too_long(ns, sizeof shown_text, "demonstration") ||
        too_long(np, BASE_PROMPT_CAP, "prompt") || too_long(nt, BASE_TARGET_CAP, "target"))
        return BASE_ERR_GEN;
    pair->kind = no_note ? BASE_KIND_DEMO_NO_NOTE : solution ? BASE_KIND_SOLUTION : BASE_KIND_DEMO;
    pair->target_hundredths = k;
    pair->shown_hundredths = replaced ? k : 100;
    return BASE_OK;
}

int base_gen_next(base_gen *g, base_pair *pair) {
    rng_state *r = &g->rng;
    const base_params *bp = &g->params;
    task_example ex;
    if (!g->mixed) { /* format 1 order: domain, question, kind */
        task_domain d = g->enabled[rng_below(r, (uint64_t)g->n_enabled)];
        if (task__sample(r, d, TASK_SPLIT_TRAIN, 0, &ex) != TASK_OK) return BASE_ERR_GEN;
        pair->domain = d;
        if (rng_unit(r) >= bp->p_teacher) return student_pair(&ex, pair);
        return teacher_pair(r, bp, &ex, 0, pair);
    }
    int teacher = rng_unit(r) < bp->p_teacher;
    task_domain d;
    if (teacher)
        d = g->enabled[rng_below(r, (uint64_t)g->n_enabled)];
    else if (bp->focus >= 0 && (g->n_students == 0 || rng_unit(r) < bp->focus_share))
        d = (task_domain)bp->focus;
    else
        d = g->students[rng_below(r, (uint64_t)g->n_students)];
    if (task__sample(r, d, TASK_SPLIT_TRAIN, 0, &ex) != TASK_OK) return BASE_ERR_GEN;
    pair->domain = d;
    if (!teacher) return student_pair(&ex, pair);
    return teacher_pair(r, bp, &ex, rng_unit(r) < bp->p_no_note, pair);
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
