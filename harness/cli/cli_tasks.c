/* cli_tasks.c: `caopd tasks` — lists the task domains with one example per split and
 * severity, prints samples (`tasks sample`), and measures generation speed (`tasks bench`). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tasks/basedata.h"
#include "harness/cli/cli_tasks.h"
#include "tasks/task.h"
#include "tasks/templates.h"
#include "common/clock.h"

#define EXIT_USAGE 2

static const char USAGE[] =
    "usage: caopd tasks                      list domains, splits, severities (one example each)\n"
    "       caopd tasks sample DOMAIN --split SPLIT [--severity N] [-n N] [--seed S]\n"
    "                          [--view qa|student|teacher] [--note P]\n"
    "       caopd tasks bench [-n N] [--seed S]\n"
    "\n"
    "sample prints N examples (default 10, seed 1). --severity is 1..3 for OOD splits\n"
    "(default 1) and 0 for train/test. --view qa prints \"question<TAB>answer\" lines;\n"
    "student prints the student prompt and its reference completion; teacher prints the\n"
    "demo teacher context and completion: SDFT (demo ends \"Confidence: 1.00\", no note),\n"
    "or with --note P the CaOPD context (demo, note and completion all carry P).\n"
    "bench prints examples generated per second on one thread (default N = 100000).\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "caopd tasks: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run `caopd tasks --help` for usage)\n");
    return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int parse_prob(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= 0.0 && v <= 1.0)) return -1;
    *out = v;
    return 0;
}

/* ---- tasks (list) --------------------------------------------------------------- */

static int first_example(task_domain d, task_split s, int sev, task_example *ex) {
    task_gen *g;
    if (task_gen_new(&g, d, s, sev, 1) != TASK_OK) return -1;
    int rc = task_gen_next(g, ex);
    task_gen_free(g);
    return rc;
}

static int list_all(void) {
    printf("Domains (%d):\n", TASK_N_DOMAINS);
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        printf("  %-6s %s\n", task_domain_name(d), task_domain_summary(d));
    printf("\nSplits (%d); OOD splits take severity 1..%d:\n", TASK_N_SPLITS, TASK_SEVERITY_MAX);
    for (int s = 0; s < TASK_N_SPLITS; s++)
        printf("  %-10s %s\n", task_split_name(s), task_split_summary(s));
    printf("\nOne example per domain, split and severity (seed 1):\n");
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        for (int s = 0; s < TASK_N_SPLITS; s++) {
            int lo = task_split_is_ood(s) ? 1 : 0,
                hi = task_split_is_ood(s) ? TASK_SEVERITY_MAX : 0;
            for (int sev = lo; sev <= hi; sev++) {
                task_example ex;
                if (first_example(d, s, sev, &ex) != TASK_OK) {
                    fprintf(stderr, "caopd tasks: %s\n", task_errmsg());
                    return 1;
                }
                char where[32];
                if (sev)
                    snprintf(where, sizeof where, "%s s%d", task_split_name(s), sev);
                else
                    snprintf(where, sizeof where, "%s", task_split_name(s));
                printf("  %-6s %-14s %-30s -> %-14s (%s)\n", task_domain_name(d), where,
                       ex.question, ex.answer, task_split_detail(d, s, sev));
            }
        }
    }
    return 0;
}

/* ---- tasks sample --------------------------------------------------------------- */

typedef enum { VIEW_QA, VIEW_STUDENT, VIEW_TEACHER } view;

static void print_example(const task_example *ex, view v, double note) {
    char prompt[512], completion[128];
    tmpl_completion(completion, sizeof completion, ex->answer, 1.0);
    switch (v) {
    case VIEW_QA:
        printf("%s\t%s\n", ex->question, ex->answer);
        return;
    case VIEW_STUDENT:
        tmpl_student_prompt(prompt, sizeof prompt, ex->question);
        break;
    case VIEW_TEACHER:
        if (note >= 0.0) { /* CaOPD: the demo and the target carry the note's value */
            tmpl_completion(completion, sizeof completion, ex->answer, note);
            tmpl_teacher_demo(prompt, sizeof prompt, ex->question, completion, note);
        } else { /* SDFT: demo ending "Confidence: 1.00", no note */
            tmpl_teacher_demo(prompt, sizeof prompt, ex->question, completion, TMPL_NO_NOTE);
        }
        break;
    }
    printf("%s%s\n----\n", prompt, completion);
}

static int cmd_sample(int argc, char **argv) {
    const char *domain_name = NULL, *split_name = NULL;
    uint64_t n = 10, seed = 1, severity = UINT64_MAX;
    view v = VIEW_QA;
    double note = TMPL_NO_NOTE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--split") == 0 && val) {
            split_name = val;
            i++;
        } else if (strcmp(a, "--severity") == 0 && val) {
            if (parse_u64(val, &severity) || severity > TASK_SEVERITY_MAX)
                return usage_error("--severity takes 0..3, not '%s'", val);
            i++;
        } else if (strcmp(a, "-n") == 0 && val) {
            if (parse_u64(val, &n)) return usage_error("-n takes a count, not '%s'", val);
            i++;
        } else if (strcmp(a, "--seed") == 0 && val) {
            if (parse_u64(val, &seed))
                return usage_error("--seed takes an unsigned integer, not '%s'", val);
            i++;
        } else if (strcmp(a, "--view") == 0 && val) {
            if (strcmp(val, "qa") == 0)
                v = VIEW_QA;
            else if (strcmp(val, "student") == 0)
                v = VIEW_STUDENT;
            else if (strcmp(val, "teacher") == 0)
                v = VIEW_TEACHER;
            else
                return usage_error("unknown view '%s' (accepted: qa, student, teacher)", val);
            i++;
        } else if (strcmp(a, "--note") == 0 && val) {
            if (parse_prob(val, &note))
                return usage_error("--note takes a confidence in [0, 1], not '%s'", val);
            i++;
        } else if (a[0] == '-') {
            return usage_error("unknown option or missing value: '%s'", a);
        } else if (!domain_name) {
            domain_name = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (!domain_name) return usage_error("%s", "tasks sample needs a DOMAIN");
    if (!split_name) return usage_error("%s", "tasks sample needs --split SPLIT");
    task_domain d;
    task_split s;
    if (task_domain_from_name(domain_name, &d) != TASK_OK) return usage_error("%s", task_errmsg());
    if (task_split_from_name(split_name, &s) != TASK_OK) return usage_error("%s", task_errmsg());
    int sev = severity != UINT64_MAX ? (int)severity : task_split_is_ood(s) ? 1 : 0;
    task_gen *g;
    if (task_gen_new(&g, d, s, sev, seed) != TASK_OK) return usage_error("%s", task_errmsg());
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        task_example ex;
        if (task_gen_next(g, &ex) != TASK_OK) {
            fprintf(stderr, "caopd tasks: %s\n", task_errmsg());
            rc = 1;
        } else {
            print_example(&ex, v, note);
        }
    }
    task_gen_free(g);
    return rc;
}

/* ---- tasks bench ---------------------------------------------------------------- */

/* Generates n examples of (d, s, sev); returns the seconds taken, or -1 on failure.
 * *sink folds the answers in so the work cannot be optimized away. */
static double time_split(task_domain d, task_split s, int sev, uint64_t n, uint64_t seed,
                         unsigned *sink) {
    task_gen *g;
    if (task_gen_new(&g, d, s, sev, seed) != TASK_OK) return -1.0;
    task_example ex;
    double t0 = clock_now_s();
    for (uint64_t i = 0; i < n; i++) {
        if (task_gen_next(g, &ex) != TASK_OK) {
            task_gen_free(g);
            return -1.0;
        }
        *sink += (unsigned char)ex.answer[0];
    }
    double dt = clock_now_s() - t0;
    task_gen_free(g);
    return dt;
}

static int cmd_bench(int argc, char **argv) {
    uint64_t n = 100000, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "-n") == 0 && val && !parse_u64(val, &n) && n > 0)
            i++;
        else if (strcmp(argv[i], "--seed") == 0 && val && !parse_u64(val, &seed))
            i++;
        else
            return usage_error("bench: bad option or value near '%s'", argv[i]);
    }
    unsigned sink = 0;
    printf("tasks bench: %llu examples per row, seed %llu, one thread\n", (unsigned long long)n,
           (unsigned long long)seed);
    printf("  %-6s %14s %14s %14s\n", "domain", "train ex/s", "test ex/s", "ood_length s3");
    double train_total = 0.0;
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        double t_train = time_split(d, TASK_SPLIT_TRAIN, 0, n, seed, &sink);
        double t_test = time_split(d, TASK_SPLIT_TEST, 0, n, seed, &sink);
        double t_ood = time_split(d, TASK_SPLIT_OOD_LENGTH, 3, n, seed, &sink);
        if (t_train < 0 || t_test < 0 || t_ood < 0) {
            fprintf(stderr, "caopd tasks bench: %s\n", task_errmsg());
            return 1;
        }
        train_total += t_train;
        printf("  %-6s %14.0f %14.0f %14.0f\n", task_domain_name(d), n / t_train, n / t_test,
               n / t_ood);
    }
    double all = (double)n * TASK_N_DOMAINS;
    printf("train, all domains: %.0f examples in %.3f s = %.0f examples/s\n", all, train_total,
           all / train_total);

    base_gen *bg;
    if (base_gen_new(&bg, base_params_default(), seed) != BASE_OK) {
        fprintf(stderr, "caopd tasks bench: %s\n", base_errmsg());
        return 1;
    }
    base_pair pair;
    double t0 = clock_now_s();
    for (uint64_t i = 0; i < n; i++) {
        if (base_gen_next(bg, &pair) != BASE_OK) {
            fprintf(stderr, "caopd tasks bench: %s\n", base_errmsg());
            base_gen_free(bg);
            return 1;
        }
        sink += (unsigned char)pair.target[0];
    }
    double dt = clock_now_s() - t0;
    base_gen_free(bg);
    printf("base-stage pairs: %llu in %.3f s = %.0f pairs/s (checksum %u)\n", (unsigned long long)n,
           dt, n / dt, sink & 0xffu);
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------- */

int cli_tasks(int argc, char **argv) {
    if (argc <= 1 || strcmp(argv[1], "list") == 0) return list_all();
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(cmd, "sample") == 0) return cmd_sample(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 1, argv + 1);
    return usage_error("unknown tasks command '%s' (accepted: list, sample, bench, help)", cmd);
}
