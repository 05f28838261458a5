/* test_task_determinism.c: the same (domain, split, severity, seed) gives the same
 * examples, on every machine (golden values below); different seeds, splits and
 * severities give different streams; saved generator state resumes exactly. */
#include <stdint.h>
#include <stdlib.h>

#include "tests/check.h"
#include "tasks/task.h"
#include "tests/tasks/task_ref.h"

#define N 50

static void draw(task_domain d, task_split s, int sev, uint64_t seed, task_example *out, int n) {
    task_gen *g = NULL;
    int rc = task_gen_new(&g, d, s, sev, seed);
    CHECK_EQ_INT(rc, TASK_OK);
    for (int i = 0; i < n && g; i++)
        CHECK_EQ_INT(task_gen_next(g, &out[i]), TASK_OK);
    task_gen_free(g);
}

static int same_stream(const task_example *a, const task_example *b, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].question, b[i].question) || strcmp(a[i].answer, b[i].answer) ||
            strcmp(a[i].canonical, b[i].canonical))
            return 0;
    return 1;
}

/* How many positions hold the same instance (canonical question) in both streams. */
static int count_equal(const task_example *a, const task_example *b, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += strcmp(a[i].canonical, b[i].canonical) == 0;
    return k;
}

int main(void) {
    static task_example a[N], b[N];
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        REF_FOR_SPLITS(s, sev) {
            draw(d, s, sev, 7, a, N);
            draw(d, s, sev, 7, b, N);
            CHECK_MSG(same_stream(a, b, N), "%s/%s/%d not reproducible", task_domain_name(d),
                      task_split_name(s), sev);
            CHECK(a[0].domain == (task_domain)d && a[0].split == (task_split)s &&
                  a[0].severity == sev);
            draw(d, s, sev, 8, b, N);
            /* Small domains repeat some questions by chance, never most of them. */
            CHECK_MSG(count_equal(a, b, N) < N / 2, "%s/%s/%d: seeds 7 and 8 agree on %d of %d",
                      task_domain_name(d), task_split_name(s), sev, count_equal(a, b, N), N);
        }
        /* Different severities of one split are different streams. */
        draw(d, TASK_SPLIT_OOD_FORMAT, 1, 7, a, N);
        draw(d, TASK_SPLIT_OOD_FORMAT, 2, 7, b, N);
        CHECK(count_equal(a, b, N) < N / 2);
    }

    /* Golden values: generator output must not change across machines or refactors
     * (a deliberate change of the data updates these and docs/tasks.md). */
    struct {
        task_domain d;
        task_split s;
        int sev;
        const char *question, *answer;
    } golden[] = {
        {TASK_DOMAIN_ADD, TASK_SPLIT_TRAIN, 0, "28+8=", "36"},
        {TASK_DOMAIN_SUB, TASK_SPLIT_OOD_VALUE, 3, "7-377=", "-370"},
        {TASK_DOMAIN_MUL, TASK_SPLIT_OOD_LENGTH, 3, "8428604*8=", "67428832"},
        {TASK_DOMAIN_MOD, TASK_SPLIT_TEST, 0, "7887%6=", "3"},
        {TASK_DOMAIN_SORT, TASK_SPLIT_OOD_FORMAT, 3, "Sort the digits 5,7,2,0.", "0257"},
        {TASK_DOMAIN_REV, TASK_SPLIT_OOD_VALUE, 2, "rev(DNS2h)=", "h2SND"},
        {TASK_DOMAIN_COUNT_CHAR, TASK_SPLIT_OOD_FORMAT, 2, "count b in \"babeeedd\" =", "2"},
    };
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        draw(golden[i].d, golden[i].s, golden[i].sev, 1, a, 1);
        CHECK_EQ_STR(a[0].question, golden[i].question);
        CHECK_EQ_STR(a[0].answer, golden[i].answer);
    }

    /* Saving and restoring the state resumes the stream exactly. */
    task_gen *g = NULL, *h = NULL;
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_COUNT_CHAR, TASK_SPLIT_TRAIN, 0, 99), TASK_OK);
    CHECK_EQ_INT(task_gen_new(&h, TASK_DOMAIN_COUNT_CHAR, TASK_SPLIT_TRAIN, 0, 12345), TASK_OK);
    for (int i = 0; i < 17; i++)
        task_gen_next(g, &a[0]);
    uint64_t state[TASK_GEN_STATE_WORDS];
    task_gen_get_state(g, state);
    for (int i = 0; i < N; i++)
        task_gen_next(g, &a[i]);
    task_gen_set_state(h, state);
    for (int i = 0; i < N; i++)
        task_gen_next(h, &b[i]);
    CHECK(same_stream(a, b, N));
    task_gen_free(g);
    task_gen_free(h);
    task_gen_free(NULL);

    /* Argument errors: status and a readable message, *out untouched. */
    g = (task_gen *)&a[0]; /* sentinel */
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_TRAIN, 1, 1), TASK_ERR_ARG);
    CHECK(strstr(task_errmsg(), "severity") != NULL);
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_OOD_LENGTH, 0, 1), TASK_ERR_ARG);
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_OOD_LENGTH, 4, 1), TASK_ERR_ARG);
    CHECK_EQ_INT(task_gen_new(&g, (task_domain)TASK_N_DOMAINS, TASK_SPLIT_TRAIN, 0, 1),
                 TASK_ERR_ARG);
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, (task_split)-1, 0, 1), TASK_ERR_ARG);
    CHECK(g == (task_gen *)&a[0]);

    /* Names. */
    task_domain dom = TASK_DOMAIN_ADD;
    task_split spl = TASK_SPLIT_TRAIN;
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        CHECK_EQ_INT(task_domain_from_name(task_domain_name(d), &dom), TASK_OK);
        CHECK_EQ_INT(dom, d);
    }
    for (int s = 0; s < TASK_N_SPLITS; s++) {
        CHECK_EQ_INT(task_split_from_name(task_split_name(s), &spl), TASK_OK);
        CHECK_EQ_INT(spl, s);
    }
    CHECK_EQ_INT(task_domain_from_name("addition", &dom), TASK_ERR_NAME);
    CHECK_EQ_STR(task_errmsg(),
                 "unknown domain 'addition' (accepted: add, sub, mul, mod, sort, rev, count)");
    CHECK_EQ_INT(task_split_from_name("ood-length", &spl), TASK_ERR_NAME);
    CHECK_EQ_STR(task_errmsg(), "unknown split 'ood-length' (accepted: train, test, ood_length, "
                                "ood_value, ood_format)");
    CHECK_EQ_INT(task_domain_from_name(NULL, &dom), TASK_ERR_NAME);
    CHECK_EQ_STR(task_domain_name((task_domain)42), "?");
    CHECK_EQ_STR(task_split_detail(TASK_DOMAIN_MUL, TASK_SPLIT_OOD_VALUE, 2), "d in 20-49");
    CHECK_EQ_STR(task_split_detail(TASK_DOMAIN_MUL, TASK_SPLIT_TRAIN, 2), "?");
    return check_report("test_task_determinism");
}
