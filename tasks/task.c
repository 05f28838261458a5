/* task.c: domain and split registry (names, descriptions, lookups), the generator
 * objects around task__sample, and the answer verifier. */
#include <stdlib.h>
#include <string.h>

#include "tasks/tasks_internal.h"
#include "tasks/templates.h"

static const char *const DOMAIN_NAMES[TASK_N_DOMAINS] = {"add",  "sub", "mul",  "mod",
                                                         "sort", "rev", "count"};
static const char *const DOMAIN_SUMMARIES[TASK_N_DOMAINS] = {
    "multi-digit addition, \"A+B=\"",
    "subtraction with a non-negative result, \"A-B=\"",
    "multiplication by a one-digit number, \"A*d=\"",
    "remainder by a one-digit modulus, \"A%m=\"",
    "sort digits ascending, \"sort(S)=\"",
    "reverse a lowercase string, \"rev(S)=\"",
    "count a letter in a string, \"count(c,S)=\"",
};

static const char *const SPLIT_NAMES[TASK_N_SPLITS] = {"train", "test", "ood_length", "ood_value",
                                                       "ood_format"};
static const char *const SPLIT_SUMMARIES[TASK_N_SPLITS] = {
    "endless training stream (held-out instances rejected)",
    "in-distribution test set: held-out instances, training distribution",
    "longer inputs than training shows",
    "values shifted out of the training range",
    "the same instances written in another surface format",
};

/* DETAIL[domain][split][severity]: severity 0 for train/test, 1..3 for OOD. */
static const char
    *const DETAIL[TASK_N_DOMAINS][TASK_N_SPLITS][TASK_SEVERITY_MAX + 1] =
        {
            [TASK_DOMAIN_ADD] =
                {
                    [TASK_SPLIT_TRAIN] = {"operands of 1-3 digits"},
                    [TASK_SPLIT_TEST] = {"operands of 1-3 digits"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "one operand of 4 digits, the other 1-4",
                                               "one operand of 5 digits, the other 1-5",
                                               "one operand of 6 digits, the other 1-6"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "carry-heavy: a column carries with p 0.63",
                                              "carry-heavy: a column carries with p 0.82",
                                              "carry-heavy: every shared column carries"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "A + B =", "A plus B =", "What is A plus B?"},
                },
            [TASK_DOMAIN_SUB] =
                {
                    [TASK_SPLIT_TRAIN] = {"operands of 1-3 digits, A >= B"},
                    [TASK_SPLIT_TEST] = {"operands of 1-3 digits, A >= B"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "one operand of 4 digits, the other 1-4",
                                               "one operand of 5 digits, the other 1-5",
                                               "one operand of 6 digits, the other 1-6"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "1/3 of questions have A < B (negative answer)",
                                              "2/3 of questions have A < B (negative answer)",
                                              "all questions have A < B (negative answer)"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "A - B =", "A minus B =", "What is A minus B?"},
                },
            [TASK_DOMAIN_MUL] =
                {
                    [TASK_SPLIT_TRAIN] = {"A of 1-4 digits, d in 2-9"},
                    [TASK_SPLIT_TEST] = {"A of 1-4 digits, d in 2-9"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "A of 5 digits", "A of 6 digits",
                                               "A of 7 digits"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "d in 11-19", "d in 20-49", "d in 50-99"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "A * d =", "A times d =", "What is A times d?"},
                },
            [TASK_DOMAIN_MOD] =
                {
                    [TASK_SPLIT_TRAIN] = {"A of 1-4 digits, m in 2-9"},
                    [TASK_SPLIT_TEST] = {"A of 1-4 digits, m in 2-9"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "A of 5 digits", "A of 6 digits",
                                               "A of 7 digits"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "m in 11-19", "m in 20-49", "m in 50-99"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "A % m =", "A mod m =", "What is A mod m?"},
                },
            [TASK_DOMAIN_SORT] =
                {
                    [TASK_SPLIT_TRAIN] = {"2-6 digits 0-9"},
                    [TASK_SPLIT_TEST] = {"2-6 digits 0-9"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "7-8 digits", "9-10 digits", "11-12 digits"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "2-6 symbols from 0-9a-f",
                                              "2-6 symbols from 0-9a-p", "2-6 symbols from 0-9a-z"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "sort( S ) =", "sort 3,1,4 =",
                                               "Sort the digits 3,1,4."},
                },
            [TASK_DOMAIN_REV] =
                {
                    [TASK_SPLIT_TRAIN] = {"2-6 letters a-z"},
                    [TASK_SPLIT_TEST] = {"2-6 letters a-z"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "7-8 letters", "9-10 letters", "11-12 letters"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "2-6 symbols from a-z0-9",
                                              "2-6 symbols from a-z0-9A-Z",
                                              "2-6 symbols from 0-9A-Z"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "rev( S ) =", "reverse \"S\" =",
                                               "Write \"S\" backwards."},
                },
            [TASK_DOMAIN_COUNT_CHAR] =
                {
                    [TASK_SPLIT_TRAIN] = {"2-8 letters from a-e, c in a-e (share 1/5)"},
                    [TASK_SPLIT_TEST] = {"2-8 letters from a-e, c in a-e (share 1/5)"},
                    [TASK_SPLIT_OOD_LENGTH] = {"?", "9-12 letters", "13-16 letters",
                                               "17-20 letters"},
                    [TASK_SPLIT_OOD_VALUE] = {"?", "c makes up 0.40 of the string on average",
                                              "c makes up 0.55 of the string on average",
                                              "c makes up 0.70 of the string on average"},
                    [TASK_SPLIT_OOD_FORMAT] = {"?", "count( c , S ) =", "count c in \"S\" =",
                                               "How many c are in \"S\"?"},
                },
};

static int domain_ok(task_domain d) {
    return (int)d >= 0 && (int)d < TASK_N_DOMAINS;
}

static int split_ok(task_split s) {
    return (int)s >= 0 && (int)s < TASK_N_SPLITS;
}

const char *task_domain_name(task_domain d) {
    return domain_ok(d) ? DOMAIN_NAMES[d] : "?";
}

const char *task_domain_summary(task_domain d) {
    return domain_ok(d) ? DOMAIN_SUMMARIES[d] : "?";
}

const char *task_split_name(task_split s) {
    return split_ok(s) ? SPLIT_NAMES[s] : "?";
}

const char *task_split_summary(task_split s) {
    return split_ok(s) ? SPLIT_SUMMARIES[s] : "?";
}

const char *task_split_detail(task_domain d, task_split s, int sev) {
    if (task_check_args(d, s, sev) != TASK_OK) return "?";
    return DETAIL[d][s][sev];
}

int task_split_is_ood(task_split s) {
    return s == TASK_SPLIT_OOD_LENGTH || s == TASK_SPLIT_OOD_VALUE || s == TASK_SPLIT_OOD_FORMAT;
}

/* Builds "a, b, c" from a name table into out. */
static void join_names(const char *const *names, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (k + len + 3 >= cap) break;
        if (i) {
            memcpy(out + k, ", ", 2);
            k += 2;
        }
        memcpy(out + k, names[i], len + 1);
        k += len;
    }
}

int task_domain_from_name(const char *name, task_domain *out) {
    for (int i = 0; i < TASK_N_DOMAINS; i++)
        if (name && strcmp(name, DOMAIN_NAMES[i]) == 0) {
            *out = (task_domain)i;
            return TASK_OK;
        }
    char list[128];
    join_names(DOMAIN_NAMES, TASK_N_DOMAINS, list, sizeof list);
    tasks__set_error("unknown domain '%s' (accepted: %s)", name ? name : "(null)", list);
    return TASK_ERR_NAME;
}

int task_split_from_name(const char *name, task_split *out) {
    for (int i = 0; i < TASK_N_SPLITS; i++)
        if (name && strcmp(name, SPLIT_NAMES[i]) == 0) {
            *out = (task_split)i;
            return TASK_OK;
        }
    char list[128];
    join_names(SPLIT_NAMES, TASK_N_SPLITS, list, sizeof list);
    tasks__set_error("unknown split '%s' (accepted: %s)", name ? name : "(null)", list);
    return TASK_ERR_NAME;
}

int task_check_args(task_domain d, task_split s, int severity) {
    if (!domain_ok(d)) {
        tasks__set_error("domain %d is out of range [0, %d)", (int)d, TASK_N_DOMAINS);
        return TASK_ERR_ARG;
    }
    if (!split_ok(s)) {
        tasks__set_error("split %d is out of range [0, %d)", (int)s, TASK_N_SPLITS);
        return TASK_ERR_ARG;
    }
    if (task_split_is_ood(s) ? (severity < 1 || severity > TASK_SEVERITY_MAX) : severity != 0) {
        tasks__set_error("split %s takes severity %s, not %d", SPLIT_NAMES[s],
                         task_split_is_ood(s) ? "1, 2 or 3" : "0", severity);
        return TASK_ERR_ARG;
    }
    return TASK_OK;
}

/* ---- generator objects ---------------------------------------------------------- */

struct task_gen {
    task_domain domain;
    task_split split;
    int severity;
    rng_state rng;
    /* Evaluation streams only: the hashes of the canonical questions emitted so far, an
     * open-addressing set (0 = empty slot; a hash of 0 is stored as 1), so that no instance
     * is emitted twice (docs/tasks.md §4, "Without replacement"). */
    uint64_t *seen;
    size_t seen_n, seen_cap; /* seen_cap is 0 or a power of two */
};

int task_gen_new(task_gen **out, task_domain d, task_split s, int severity, uint64_t seed) {
    int rc = task_check_args(d, s, severity);
    if (rc) return rc;
    task_gen *g = TASKS_MALLOC(sizeof *g);
    if (!g) {
        tasks__set_error("task_gen_new: out of memory");
        return TASK_ERR_NOMEM;
    }
    g->domain = d;
    g->split = s;
    g->severity = severity;
    g->seen = NULL;
    g->seen_n = g->seen_cap = 0;
    uint64_t stream = (uint64_t)d << 16 | (uint64_t)s << 8 | (uint64_t)severity;
    rng_seed(&g->rng, seed, stream);
    *out = g;
    return TASK_OK;
}

void task_gen_free(task_gen *g) {
    if (!g) return;
    free(g->seen);
    free(g);
}

/* The slot of h in g->seen: where it is, or the empty slot where it would go. */
static size_t seen_slot(const task_gen *g, uint64_t h) {
    size_t mask = g->seen_cap - 1, i = (size_t)h & mask;
    while (g->seen[i] && g->seen[i] != h)
        i = (i + 1) & mask;
    return i;
}

/* Makes room for one more hash (load factor <= 1/2). TASK_OK or TASK_ERR_NOMEM. */
static int seen_reserve(task_gen *g) {
    if (2 * (g->seen_n + 1) <= g->seen_cap) return TASK_OK;
    size_t cap = g->seen_cap ? 2 * g->seen_cap : 1024;
    uint64_t *old = g->seen, *fresh = TASKS_MALLOC(cap * sizeof *fresh);
    if (!fresh) {
        tasks__set_error("task_gen_next: out of memory (%zu distinct questions drawn)", g->seen_n);
        return TASK_ERR_NOMEM;
    }
    memset(fresh, 0, cap * sizeof *fresh);
    size_t old_cap = g->seen_cap;
    g->seen = fresh;
    g->seen_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) g->seen[seen_slot(g, old[i])] = old[i];
    free(old);
    return TASK_OK;
}

/* An evaluation stream gives up when this many draws in a row repeat earlier questions:
 * the split has (almost) no unseen held-out instance left. */
#define MAX_REPEATS 20000

int task_gen_next(task_gen *g, task_example *ex) {
    if (g->split == TASK_SPLIT_TRAIN)
        return task__sample(&g->rng, g->domain, g->split, g->severity, ex);
    int rc = seen_reserve(g);
    if (rc) return rc;
    for (int repeat = 0; repeat < MAX_REPEATS; repeat++) {
        rc = task__sample(&g->rng, g->domain, g->split, g->severity, ex);
        if (rc) return rc;
        uint64_t h = rng_hash(ex->canonical, strlen(ex->canonical));
        if (!h) h = 1;
        size_t i = seen_slot(g, h);
        if (g->seen[i]) continue;
        g->seen[i] = h;
        g->seen_n++;
        return TASK_OK;
    }
    tasks__set_error("%s/%s severity %d: no question not yet drawn after %d draws (%zu distinct "
                     "held-out questions drawn); this split has no more to give: evaluate fewer "
                     "samples",
                     task_domain_name(g->domain), task_split_name(g->split), g->severity,
                     MAX_REPEATS, g->seen_n);
    return TASK_ERR_EXHAUSTED;
}

void task_gen_get_state(const task_gen *g, uint64_t state[TASK_GEN_STATE_WORDS]) {
    memcpy(state, g->rng.s, sizeof g->rng.s);
}

void task_gen_set_state(task_gen *g, const uint64_t state[TASK_GEN_STATE_WORDS]) {
    memcpy(g->rng.s, state, sizeof g->rng.s);
}

/* ---- verification --------------------------------------------------------------- */

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int task_answer_matches(const char *expected, const char *answer, size_t len) {
    size_t a = 0, b = len;
    while (a < b && is_space((unsigned char)answer[a]))
        a++;
    while (b > a && is_space((unsigned char)answer[b - 1]))
        b--;
    size_t n = strlen(expected);
    return b - a == n && memcmp(answer + a, expected, n) == 0;
}

task_verdict task_verify(const task_example *ex, const char *completion, size_t len) {
    tmpl_parsed p = tmpl_parse_completion(completion, len);
    task_verdict v;
    v.correct = task_answer_matches(ex->answer, completion + p.answer_off, p.answer_len);
    v.confidence = p.confidence;
    v.format_failure = p.format_failure;
    return v;
}

const char *task_status_str(int rc) {
    switch (rc) {
    case TASK_OK:
        return "ok";
    case TASK_ERR_NAME:
        return "unknown name";
    case TASK_ERR_ARG:
        return "invalid argument";
    case TASK_ERR_NOMEM:
        return "out of memory";
    case TASK_ERR_EXHAUSTED:
        return "no admissible example found";
    default:
        return "unknown task status";
    }
}

const char *task_errmsg(void) {
    return tasks__errmsg();
}
