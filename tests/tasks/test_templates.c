/* test_templates.c: every template string exactly, the three CaOPD replacements, the
 * snprintf-style buffer contract, and the token budget of the longest teacher context. */
#include <stdint.h>

#include "tests/check.h"
#include "tasks/task.h"
#include "tests/tasks/task_ref.h"
#include "tasks/templates.h"
#include "tasks/tokenizer.h"

#define NOTE_050                                                                                   \
    "Note: The empirical confidence for this question is 0.50. Output this exact value in "        \
    "the 'Confidence:' field."

int main(void) {
    char buf[512], demo[64], rev[64];

    /* Student prompt and completion. */
    CHECK_EQ_INT(tmpl_student_prompt(buf, sizeof buf, "12+34="), 35);
    CHECK_EQ_STR(buf, "Q: 12+34=\nAnswer, then Confidence.\n");
    tmpl_completion(buf, sizeof buf, "46", 1.0);
    CHECK_EQ_STR(buf, "46\nConfidence: 1.00");
    tmpl_completion(buf, sizeof buf, "46", 0.375);
    CHECK_EQ_STR(buf, "46\nConfidence: 0.38");
    tmpl_completion(buf, sizeof buf, "-370", 0.0);
    CHECK_EQ_STR(buf, "-370\nConfidence: 0.00");
    tmpl_completion(buf, sizeof buf, "x", 7.0);
    CHECK_EQ_STR(buf, "x\nConfidence: 1.00");

    /* The note, exactly as docs/tasks.md §5 words it. */
    CHECK_EQ_INT(tmpl_note(buf, sizeof buf, 0.5), strlen(NOTE_050));
    CHECK_EQ_STR(buf, NOTE_050);
    tmpl_note(buf, sizeof buf, 0.125);
    CHECK_EQ_STR(buf, "Note: The empirical confidence for this question is 0.12. Output this "
                      "exact value in the 'Confidence:' field.");

    /* Teacher contexts. */
    tmpl_completion(demo, sizeof demo, "46", 1.0);
    tmpl_teacher_demo(buf, sizeof buf, "12+34=", demo, TMPL_NO_NOTE);
    CHECK_EQ_STR(buf, "Q: 12+34=\nExample:\n46\nConfidence: 1.00\n"
                      "Now answer with a response of your own.\n");
    tmpl_teacher_demo(buf, sizeof buf, "12+34=", demo, NAN);
    CHECK_EQ_STR(buf, "Q: 12+34=\nExample:\n46\nConfidence: 1.00\n"
                      "Now answer with a response of your own.\n");
    tmpl_teacher_solution(buf, sizeof buf, "12+34=", "46\nConfidence: 0.70", TMPL_NO_NOTE);
    CHECK_EQ_STR(buf, "Q: 12+34=\nSolution:\n46\nConfidence: 0.70\n"
                      "Correctly solve the original question.\n");
    tmpl_teacher_solution(buf, sizeof buf, "12+34=", "46\nConfidence: 0.70", 0.5);
    CHECK_EQ_STR(buf, "Q: 12+34=\nSolution:\n46\nConfidence: 0.70\n" NOTE_050 "\n"
                      "Correctly solve the original question.\n");

    /* CaOPD with P_acc = 5/8: (2) the demo's 1.00 becomes 0.62, (3) the note is inserted. */
    double p_acc = 5.0 / 8.0;
    tmpl_revise_completion(rev, sizeof rev, demo, strlen(demo), p_acc);
    CHECK_EQ_STR(rev, "46\nConfidence: 0.62");
    tmpl_teacher_demo(buf, sizeof buf, "12+34=", rev, p_acc);
    CHECK_EQ_STR(buf, "Q: 12+34=\nExample:\n46\nConfidence: 0.62\n"
                      "Note: The empirical confidence for this question is 0.62. Output this "
                      "exact value in the 'Confidence:' field.\n"
                      "Now answer with a response of your own.\n");
    tmpl_teacher_demo(buf, sizeof buf, "12+34=", demo, 0.0);
    CHECK(strstr(buf, "question is 0.00.") != NULL);

    /* (1) the student completion: strip its Confidence tail, append P_acc. */
    struct {
        const char *in, *out;
    } cases[] = {
        {"46\nConfidence: 0.90", "46\nConfidence: 0.62"},
        {"46 Confidence: 0.9 because", "46\nConfidence: 0.62"},
        {"46", "46\nConfidence: 0.62"},
        {"", "\nConfidence: 0.62"},
        {"  46 \n\n", "  46\nConfidence: 0.62"},
        {"46\nConfidence: 0.2\nConfidence: 0.3", "46\nConfidence: 0.62"},
        {"46\nConfidence:", "46\nConfidence: 0.62"},
        {"Confidence: 1.00", "\nConfidence: 0.62"},
        {"4\n6\nConfidence: x", "4\n6\nConfidence: 0.62"},
        {"46\nconfidence: 0.9", "46\nconfidence: 0.9\nConfidence: 0.62"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = tmpl_revise_completion(buf, sizeof buf, cases[i].in, strlen(cases[i].in), p_acc);
        CHECK_EQ_STR(buf, cases[i].out);
        CHECK_EQ_INT(n, strlen(cases[i].out));
        /* The revision parses back to P_acc, and keeps the answer. */
        tmpl_parsed a = tmpl_parse_completion(cases[i].in, strlen(cases[i].in));
        tmpl_parsed b = tmpl_parse_completion(buf, n);
        CHECK(!b.format_failure && b.confidence == 0.62);
        CHECK(a.answer_len == b.answer_len &&
              memcmp(cases[i].in + a.answer_off, buf + b.answer_off, a.answer_len) == 0);
    }

    /* snprintf contract: measure with (NULL, 0), truncate with NUL, report full length. */
    size_t need = tmpl_student_prompt(NULL, 0, "12+34=");
    CHECK_EQ_INT(need, 35);
    char small[6] = "zzzzz";
    CHECK_EQ_INT(tmpl_student_prompt(small, sizeof small, "12+34="), 35);
    CHECK_EQ_STR(small, "Q: 12");
    CHECK_EQ_INT(tmpl_note(small, 1, 0.5), strlen(NOTE_050));
    CHECK_EQ_STR(small, "");
    char exact[36];
    CHECK_EQ_INT(tmpl_student_prompt(exact, 35, "12+34="), 35);
    CHECK_EQ_INT(strlen(exact), 34); /* one short: truncated */
    CHECK_EQ_INT(tmpl_student_prompt(exact, 36, "12+34="), 35);
    CHECK_EQ_STR(exact, "Q: 12+34=\nAnswer, then Confidence.\n");
    CHECK_EQ_INT(tmpl_revise_completion(small, sizeof small, "46\nConfidence: 1", 16, 0.5), 19);
    CHECK_EQ_STR(small, "46\nCo");

    /* Every fixed text is in the vocabulary. */
    const char *fixed[] = {TMPL_STUDENT_PREFIX,       TMPL_STUDENT_SUFFIX,   TMPL_CONF_LINE,
                           TMPL_DEMO_HEADER,          TMPL_DEMO_INSTRUCTION, TMPL_SOLUTION_HEADER,
                           TMPL_SOLUTION_INSTRUCTION, TMPL_NOTE_PREFIX,      TMPL_NOTE_SUFFIX};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        CHECK(tok_check(fixed[i], strlen(fixed[i])) == TOK_OK);

    /* Token budget: BOS + longest teacher context (with demo and note) + completion + EOS
     * stays within 256 tokens on the ID splits. OOD maxima are reported. */
    for (int s = 0; s < TASK_N_SPLITS; s++) {
        int worst = 0;
        const char *worst_domain = "";
        for (int d = 0; d < TASK_N_DOMAINS; d++) {
            for (int sev = task_split_is_ood(s) ? 1 : 0;
                 sev <= (task_split_is_ood(s) ? TASK_SEVERITY_MAX : 0); sev++) {
                task_gen *g = NULL;
                task_gen_new(&g, d, s, sev, 3);
                for (int i = 0; i < 2000 && g; i++) {
                    task_example ex;
                    task_gen_next(g, &ex);
                    tmpl_completion(demo, sizeof demo, ex.answer, 1.0);
                    size_t nd = tmpl_teacher_demo(NULL, 0, ex.question, demo, 0.5);
                    size_t ns = tmpl_teacher_solution(NULL, 0, ex.question, demo, 0.5);
                    int total = 1 + (int)(nd > ns ? nd : ns) + (int)strlen(demo) + 1;
                    if (total > worst) {
                        worst = total;
                        worst_domain = task_domain_name(d);
                    }
                }
                task_gen_free(g);
            }
        }
        fprintf(stderr, "longest teacher sequence on %-10s: %d tokens (%s)\n", task_split_name(s),
                worst, worst_domain);
        if (!task_split_is_ood(s))
            CHECK_MSG(worst <= 256, "%s: %d tokens", task_split_name(s), worst);
    }
    return check_report("test_templates");
}
