/* basedata.h: the supervised base-stage mixture (docs/tasks.md §7, docs/trainer.md §4: a base model
 * that can follow privileged context): student-format pairs whose targets end "Confidence: 1.00"
 * and teacher-format pairs whose targets copy the answer and the note's random confidence. */
#ifndef CAOPD_TASKS_BASEDATA_H
#define CAOPD_TASKS_BASEDATA_H

#include <stdint.h>

#include "tasks/task.h"

typedef enum {
    BASE_OK = 0,
    BASE_ERR_ARG = -1,   /* invalid parameter (probability outside [0,1], bad domain mask) */
    BASE_ERR_NOMEM = -2, /* allocation failed */
    BASE_ERR_GEN = -3,   /* the underlying task generator failed (see base_errmsg) */
} base_status;

/* Mixture parameters, passed by value; start from base_params_default(). */
typedef struct {
    unsigned domains;  /* bit (1u << d) for each task_domain to draw from; 0 means all.
                          Questions come from each domain's train split (uniform domain). */
    double p_teacher;  /* probability of a teacher-format pair (default 0.5) */
    double p_solution; /* teacher-format: probability of the correct_solution context
                          instead of demo (default 0.5) */
    double p_replaced; /* teacher-format: probability that the shown demo/solution ends with
                          the note's value (CaOPD replacement 2) instead of 1.00 (default 0.5) */
    double p_no_note;  /* teacher-format: probability of the SDFT form instead (the context the
                          sdft teacher sees: a demo ending 1.00 and no note; target
                          "{answer}\nConfidence: 1.00") (default 0) */
    unsigned student_domains; /* domains of student-format pairs; 0 means as `domains` */
    int focus;                /* a task_domain, or -1 (default): student-format pairs come from this
                                 domain with probability focus_share, else uniformly from
                                 student_domains without it */
    double focus_share;
} base_params;

base_params base_params_default(void);

typedef enum {
    BASE_KIND_STUDENT,      /* prompt = student prompt; target = "{answer}\nConfidence: 1.00" */
    BASE_KIND_DEMO,         /* prompt = teacher demo context with a note */
    BASE_KIND_SOLUTION,     /* prompt = teacher correct_solution context with a note */
    BASE_KIND_DEMO_NO_NOTE, /* prompt = teacher demo context ending 1.00, no note (SDFT form) */
} base_kind;

#define BASE_PROMPT_CAP 320 /* bytes, NUL included; every prompt fits */
#define BASE_TARGET_CAP 64  /* bytes, NUL included; every target fits */

/* One (prompt, target) pair: the model reads prompt and is trained to write target
 * (BOS/EOS are the caller's). A plain value that owns its text. */
typedef struct {
    base_kind kind;
    task_domain domain;
    int target_hundredths; /* the target's confidence: 100 (student) or the note's value */
    int shown_hundredths;  /* teacher-format: confidence in the shown demo/solution
                              (100 or the note's value); -1 for student-format */
    char prompt[BASE_PROMPT_CAP];
    char target[BASE_TARGET_CAP];
} base_pair;

/* Teacher-format pair, exactly (P = k/100 with k uniform in 0..100):
 *   prompt = tmpl_teacher_demo(question, tmpl_completion(answer, shown), P)   (or _solution)
 *   target = tmpl_completion(answer, P)
 * with shown = P or 1.0 (see p_replaced). */

/* SDFT-form pair: prompt = tmpl_teacher_demo(question, tmpl_completion(answer, 1.0), no note),
 * target = tmpl_completion(answer, 1.0).
 *
 * An endless deterministic stream of pairs. The PRNG is seeded by rng_seed(seed,
 * 0x62617365 "base"); the domain, the kind, P and the question all come from it. With
 * p_no_note 0, student_domains 0 and focus -1 the draws are (domain, question, kind, ...), the
 * order of format 1 of this stream; otherwise (kind, domain, question, ...), so that teacher and
 * student pairs can come from different domains.
 * Not thread-safe per object. */
typedef struct base_gen base_gen;

/* Creates a generator into *out (caller owns it; release with base_gen_free).
 * Errors: BASE_ERR_ARG, BASE_ERR_NOMEM; *out untouched on error. */
int base_gen_new(base_gen **out, base_params params, uint64_t seed);

/* Frees g; NULL is a no-op. */
void base_gen_free(base_gen *g);

/* Writes the next pair into *pair (borrowed). BASE_OK or BASE_ERR_GEN. */
int base_gen_next(base_gen *g, base_pair *pair);

/* Stream position for checkpoints (4 words, like task_gen). */
#define BASE_GEN_STATE_WORDS 4
void base_gen_get_state(const base_gen *g, uint64_t state[BASE_GEN_STATE_WORDS]);
void base_gen_set_state(base_gen *g, const uint64_t state[BASE_GEN_STATE_WORDS]);

/* Static text of a base_status; the message of this thread's last failed call (never NULL). */
const char *base_status_str(int rc);
const char *base_errmsg(void);

#endif
