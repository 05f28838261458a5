/* test_task_answers.c: on every domain, split and severity, each generated answer passes
 * its own verifier, agrees with an independent reference solver applied to the canonical
 * question, and every text is well-formed (vocabulary, sizes, canonical form). Also the
 * verifier's exactness: whitespace-tolerant, nothing else. */
#include <stdint.h>

#include "tests/check.h"
#include "tasks/task.h"
#include "tests/tasks/task_ref.h"
#include "tasks/templates.h"
#include "tasks/tokenizer.h"

#define N 3000

int main(void) {
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        REF_FOR_SPLITS(s, sev) {
            task_gen *g = NULL;
            CHECK_EQ_INT(task_gen_new(&g, d, s, sev, 11), TASK_OK);
            int bad_verify = 0, bad_ref = 0, bad_text = 0, bad_canon = 0, bad_reject = 0;
            for (int i = 0; i < N; i++) {
                task_example ex;
                CHECK_EQ_INT(task_gen_next(g, &ex), TASK_OK);
                /* The reference completion at a random two-decimal confidence verifies. */
                char completion[128];
                double c = (i % 101) / 100.0;
                tmpl_completion(completion, sizeof completion, ex.answer, c);
                task_verdict v = task_verify(&ex, completion, strlen(completion));
                bad_verify += !(v.correct && !v.format_failure && v.confidence == c);
                /* A wrong answer is rejected. */
                char wrong[64];
                snprintf(wrong, sizeof wrong, "%s0\nConfidence: 0.50", ex.answer);
                bad_reject += task_verify(&ex, wrong, strlen(wrong)).correct;
                /* Independent solver on the canonical question. */
                ref_parts p;
                char ref[64] = "";
                if (ref_parse(d, ex.canonical, &p) == 0) ref_solve(d, &p, ref);
                if (strcmp(ref, ex.answer) != 0) {
                    if (bad_ref++ == 0)
                        fprintf(stderr, "  %s -> generator %s, reference %s\n", ex.canonical,
                                ex.answer, ref);
                }
                /* Texts: vocabulary only, within caps, no newline, non-empty. */
                size_t ql = strlen(ex.question), al = strlen(ex.answer);
                bad_text += tok_check(ex.question, ql) != TOK_OK ||
                            tok_check(ex.answer, al) != TOK_OK || ql == 0 || al == 0 ||
                            ql >= TASK_QUESTION_CAP || al >= TASK_ANSWER_CAP ||
                            strchr(ex.question, '\n') || strchr(ex.answer, '\n');
                /* question == canonical except under the format shift. */
                bad_canon += (s == TASK_SPLIT_OOD_FORMAT) == !strcmp(ex.question, ex.canonical);
            }
            task_gen_free(g);
            CHECK_MSG(bad_verify == 0, "%s/%s/%d: %d answers fail their verifier",
                      task_domain_name(d), task_split_name(s), sev, bad_verify);
            CHECK_MSG(bad_reject == 0, "%s/%s/%d: %d wrong answers accepted", task_domain_name(d),
                      task_split_name(s), sev, bad_reject);
            CHECK_MSG(bad_ref == 0, "%s/%s/%d: %d answers disagree with the reference",
                      task_domain_name(d), task_split_name(s), sev, bad_ref);
            CHECK_MSG(bad_text == 0, "%s/%s/%d: %d malformed texts", task_domain_name(d),
                      task_split_name(s), sev, bad_text);
            CHECK_MSG(bad_canon == 0, "%s/%s/%d: %d canonical mismatches", task_domain_name(d),
                      task_split_name(s), sev, bad_canon);
        }
    }

    /* Exact match, tolerant of surrounding whitespace only. */
    CHECK(task_answer_matches("46", "46", 2));
    CHECK(task_answer_matches("46", " \t46\r\n ", 7));
    CHECK(!task_answer_matches("46", "4 6", 3));
    CHECK(!task_answer_matches("46", "046", 3));
    CHECK(!task_answer_matches("46", "46.0", 4));
    CHECK(!task_answer_matches("46", "4", 1));
    CHECK(!task_answer_matches("46", "", 0));
    CHECK(!task_answer_matches("abc", "ABC", 3));
    CHECK(task_answer_matches("", "  ", 2));

    task_example ex;
    memset(&ex, 0, sizeof ex);
    strcpy(ex.answer, "-370");
    const char *c1 = "  -370 \nConfidence: 0.42";
    task_verdict v = task_verify(&ex, c1, strlen(c1));
    CHECK(v.correct && !v.format_failure && v.confidence == 0.42);
    const char *c2 = "-370";
    v = task_verify(&ex, c2, strlen(c2));
    CHECK(v.correct && v.format_failure && v.confidence == 0.0);
    const char *c3 = "-370\n-370\nConfidence: 1";
    v = task_verify(&ex, c3, strlen(c3));
    CHECK(!v.correct && !v.format_failure && v.confidence == 1.0);
    const char *c4 = "370\nConfidence: 0.9";
    v = task_verify(&ex, c4, strlen(c4));
    CHECK(!v.correct && v.confidence == 0.9);
    return check_report("test_task_answers");
}
