/* test_task_splits.c: the ID test split is disjoint from train (no canonical question of
 * any evaluation split ever appears in a long training stream), the held-out rule holds
 * on every stream, evaluation streams draw without replacement (no question twice, so
 * none is more than 1/n of a split), and test follows the training distribution. */
#include <stdint.h>
#include <stdlib.h>

#include "tests/check.h"
#include "tasks/task.h"
#include "tests/tasks/task_ref.h"

#define N_TRAIN 200000
#define N_EVAL 3000
#define N_EVAL_TYPICAL 400 /* eval.n of the shipped experiments */

int main(void) {
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        ref_set train;
        ref_set_init(&train, 2 * 2 * N_TRAIN);
        task_gen *g = NULL;
        task_example ex;
        int heldout_in_train = 0;
        double train_len = 0;
        CHECK_EQ_INT(task_gen_new(&g, d, TASK_SPLIT_TRAIN, 0, 1), TASK_OK);
        for (int i = 0; i < N_TRAIN; i++) {
            task_gen_next(g, &ex);
            heldout_in_train += task_is_heldout(ex.canonical);
            train_len += (double)strlen(ex.question);
            ref_set_add(&train, ex.canonical);
        }
        task_gen_free(g);
        CHECK_MSG(heldout_in_train == 0, "%s: %d held-out instances in train", task_domain_name(d),
                  heldout_in_train);

        REF_FOR_SPLITS(s, sev) {
            if (s == TASK_SPLIT_TRAIN) continue;
            int leaked = 0, not_heldout = 0;
            double len = 0, len_first = 0;
            ref_set distinct;
            ref_set_init(&distinct, 4 * N_EVAL);
            CHECK_EQ_INT(task_gen_new(&g, d, s, sev, 2), TASK_OK);
            for (int i = 0; i < N_EVAL; i++) {
                task_gen_next(g, &ex);
                leaked += ref_set_has(&train, ex.canonical);
                not_heldout += !task_is_heldout(ex.canonical);
                len += (double)strlen(ex.question);
                if (i < N_EVAL_TYPICAL) len_first += (double)strlen(ex.question);
                ref_set_add(&distinct, ex.canonical);
            }
            task_gen_free(g);
            CHECK_MSG(leaked == 0, "%s/%s/%d: %d questions also in train", task_domain_name(d),
                      task_split_name(s), sev, leaked);
            CHECK_EQ_INT(not_heldout, 0);
            /* Without replacement: every one of the N_EVAL questions is distinct. */
            CHECK_MSG(distinct.size == N_EVAL, "%s/%s/%d: only %zu distinct of %d",
                      task_domain_name(d), task_split_name(s), sev, distinct.size, N_EVAL);
            if (getenv("VERBOSE"))
                fprintf(stderr, "%s/%s/%d: %zu distinct of %d\n", task_domain_name(d),
                        task_split_name(s), sev, distinct.size, N_EVAL);
            if (s == TASK_SPLIT_TEST) {
                /* Near the training distribution at a typical evaluation size: drawing
                 * without replacement thins only the smallest cells (the 10 held-out
                 * one-digit A of mul/mod), so questions are at most 0.75 characters
                 * longer on average (docs/tasks.md §4 has the measured table). */
                double mt = train_len / N_TRAIN, me = len_first / N_EVAL_TYPICAL;
                CHECK_MSG(me > mt - 0.1 && me < mt + 0.75, "%s: test length %.2f, train %.2f",
                          task_domain_name(d), me, mt);
            }
            ref_set_free(&distinct);
        }
        ref_set_free(&train);
    }
    /* The rule itself: about 1 in 8 of all canonical questions is held out. */
    int held = 0;
    char q[32];
    for (int i = 0; i < 80000; i++) {
        snprintf(q, sizeof q, "%d+%d=", i / 300, i % 300);
        held += task_is_heldout(q);
    }
    CHECK_MSG(held > 9000 && held < 11000, "held out %d of 80000", held);
    return check_report("test_task_splits");
}
