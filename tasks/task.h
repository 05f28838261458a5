/* task.h: task domains, their splits (train, ID test, OOD kinds x severities), the seeded
 * example generators and the answer verifier. Pure C; the data side of every experiment.
 * The exact definition of every domain and split is in docs/tasks.md. */
#ifndef CAOPD_TASKS_TASK_H
#define CAOPD_TASKS_TASK_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TASK_OK = 0,
    TASK_ERR_NAME = -1,      /* unknown domain or split name */
    TASK_ERR_ARG = -2,       /* invalid argument (domain, split or severity out of range) */
    TASK_ERR_NOMEM = -3,     /* allocation failed */
    TASK_ERR_EXHAUSTED = -4, /* the rejection sampler found no admissible example */
} task_status;

/* The domains. Names (task_domain_name): "add", "sub", "mul", "mod", "sort", "rev",
 * "count". TASK_N_DOMAINS is how many there are (TASK_DOMAIN_COUNT_CHAR is a domain). */
typedef enum {
    TASK_DOMAIN_ADD,        /* "A+B="        multi-digit addition */
    TASK_DOMAIN_SUB,        /* "A-B="        subtraction, A >= B in training */
    TASK_DOMAIN_MUL,        /* "A*d="        multiplication by a one-digit number */
    TASK_DOMAIN_MOD,        /* "A%m="        remainder by a one-digit modulus */
    TASK_DOMAIN_SORT,       /* "sort(S)="    sort digits ascending */
    TASK_DOMAIN_REV,        /* "rev(S)="     reverse a lowercase string */
    TASK_DOMAIN_COUNT_CHAR, /* "count(c,S)=" occurrences of a letter */
} task_domain;
#define TASK_N_DOMAINS 7

/* The splits. Names: "train", "test", "ood_length", "ood_value", "ood_format". */
typedef enum {
    TASK_SPLIT_TRAIN,      /* endless training stream; never emits a held-out instance */
    TASK_SPLIT_TEST,       /* in-distribution, held-out instances only */
    TASK_SPLIT_OOD_LENGTH, /* longer inputs than training ever shows */
    TASK_SPLIT_OOD_VALUE,  /* values shifted out of the training range */
    TASK_SPLIT_OOD_FORMAT, /* the same instances written in another surface format */
} task_split;
#define TASK_N_SPLITS 5
#define TASK_SEVERITY_MAX 3 /* OOD splits take severity 1..3; train and test take 0 */

/* Held-out rule: an instance is held out iff the hash of its canonical question is
 * 0 mod TASK_HELDOUT_MOD (1 in 8). Every evaluation split (test and all OOD splits)
 * emits only held-out instances and train never does, so no evaluated instance, in
 * any surface format, can ever have been trained on. */
#define TASK_HELDOUT_MOD 8

#define TASK_QUESTION_CAP 64 /* bytes, NUL included; every question fits */
#define TASK_ANSWER_CAP 32   /* bytes, NUL included; every answer fits */

/* One generated example. A plain value: owns its text, copy freely. */
typedef struct {
    task_domain domain;
    task_split split;
    int severity;                      /* 0 for train/test, 1..3 for OOD splits */
    char question[TASK_QUESTION_CAP];  /* what the model is asked, e.g. "12+34=" */
    char answer[TASK_ANSWER_CAP];      /* the exact ground truth, e.g. "46" */
    char canonical[TASK_QUESTION_CAP]; /* the same instance in the training surface format
                                          (equals question except on ood_format) */
} task_example;

/* Static names and one-line descriptions (never NULL; "?" for an out-of-range value). */
const char *task_domain_name(task_domain d);
const char *task_domain_summary(task_domain d);
const char *task_split_name(task_split s);
const char *task_split_summary(task_split s);
/* What split s at severity sev means for domain d, e.g. "operands of 5 digits". */
const char *task_split_detail(task_domain d, task_split s, int sev);

/* 1 for the OOD splits (which take severities 1..TASK_SEVERITY_MAX), else 0. */
int task_split_is_ood(task_split s);

/* Name lookups. Unknown name: TASK_ERR_NAME with a message listing the accepted names;
 * *out is untouched on error. */
int task_domain_from_name(const char *name, task_domain *out);
int task_split_from_name(const char *name, task_split *out);

/* Checks a (domain, split, severity) triple: TASK_OK or TASK_ERR_ARG with a message. */
int task_check_args(task_domain d, task_split s, int severity);

/* 1 when the instance whose canonical question is `canonical` (NUL-terminated, borrowed)
 * is held out of training: rng_hash(canonical, strlen(canonical)) % TASK_HELDOUT_MOD == 0. */
int task_is_heldout(const char *canonical);

/* ---- generators ----------------------------------------------------------------- */

/* An endless, deterministic stream of examples of one (domain, split, severity). Its
 * PRNG is xoshiro256** seeded by rng_seed(seed, stream) with stream =
 * domain << 16 | split << 8 | severity, so the same arguments give the same examples
 * on every machine, and the streams of different triples are unrelated.
 * Not thread-safe per object; distinct objects may be used from distinct threads. */
typedef struct task_gen task_gen;

/* Creates a generator into *out (owned by the caller, release with task_gen_free).
 * Errors: TASK_ERR_ARG, TASK_ERR_NOMEM; *out is untouched on error. */
int task_gen_new(task_gen **out, task_domain d, task_split s, int severity, uint64_t seed);

/* Frees g; NULL is a no-op. */
void task_gen_free(task_gen *g);

/* Writes the next example into *ex (borrowed). An evaluation stream (every split but train)
 * draws without replacement: it never emits the same canonical question twice, so no
 * question is more than 1/n of n samples (docs/tasks.md §4). Errors: TASK_ERR_EXHAUSTED
 * (an evaluation stream with no unseen held-out question left, or a bad new domain),
 * TASK_ERR_NOMEM (the set of drawn questions could not grow); *ex is then unspecified. */
int task_gen_next(task_gen *g, task_example *ex);

/* The stream position, for checkpoints of training streams: get, store, set back to resume
 * exactly. On an evaluation stream only the PRNG is restored, not the set of questions
 * already drawn (evaluation streams are re-drawn from their seed, never resumed). */
#define TASK_GEN_STATE_WORDS 4
void task_gen_get_state(const task_gen *g, uint64_t state[TASK_GEN_STATE_WORDS]);
void task_gen_set_state(task_gen *g, const uint64_t state[TASK_GEN_STATE_WORDS]);

/* ---- verification --------------------------------------------------------------- */

/* 1 when answer[0..len) equals expected exactly once leading and trailing ASCII
 * whitespace (space \t \n \v \f \r) is removed from the answer; otherwise 0. */
int task_answer_matches(const char *expected, const char *answer, size_t len);

/* The verdict on one completion. */
typedef struct {
    int correct;        /* the extracted answer matches ex->answer */
    double confidence;  /* parsed confidence in [0,1]; 0.0 on a format failure */
    int format_failure; /* no "Confidence:" followed by a number (see tmpl_parse_completion) */
} task_verdict;

/* Parses completion[0..len) (borrowed) with tmpl_parse_completion and checks its answer
 * against ex->answer. Never fails. */
task_verdict task_verify(const task_example *ex, const char *completion, size_t len);

/* Static text of a task_status, and the message of this thread's last failed call into
 * the tasks library (never NULL). */
const char *task_status_str(int rc);
const char *task_errmsg(void);

#endif
