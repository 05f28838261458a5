/* test_basedata.c: the base-stage mixture: student-format pairs end "Confidence: 1.00",
 * teacher-format pairs carry a demo/solution and a note whose value the target copies,
 * the mixture proportions follow the parameters, and the stream is deterministic. */
#include <stdint.h>

#include "tasks/basedata.h"
#include "tests/check.h"
#include "tests/tasks/task_ref.h"
#include "tasks/templates.h"
#include "tasks/tokenizer.h"

#define N 20000

/* Re-derives the answer of a pair from its prompt's question with the reference solver. */
static int reference_answer(task_domain d, const char *prompt, char *out) {
    const char *q = prompt + strlen(TMPL_STUDENT_PREFIX);
    const char *nl = strchr(q, '\n');
    char question[TASK_QUESTION_CAP];
    if (!nl || (size_t)(nl - q) >= sizeof question) return -1;
    memcpy(question, q, (size_t)(nl - q));
    question[nl - q] = '\0';
    ref_parts p;
    if (ref_parse(d, question, &p) != 0) return -1;
    ref_solve(d, &p, out);
    return 0;
}

int main(void) {
    base_gen *g = NULL;
    CHECK_EQ_INT(base_gen_new(&g, base_params_default(), 1), BASE_OK);
    int kinds[3] = {0}, domains[TASK_N_DOMAINS] = {0}, bad = 0, replaced = 0, teacher = 0;
    int note_hist[101] = {0};
    for (int i = 0; i < N && g; i++) {
        base_pair bp;
        CHECK_EQ_INT(base_gen_next(g, &bp), BASE_OK);
        kinds[bp.kind]++;
        domains[bp.domain]++;
        char answer[64], want_prompt[BASE_PROMPT_CAP], want_target[BASE_TARGET_CAP];
        char shown[BASE_TARGET_CAP];
        if (reference_answer(bp.domain, bp.prompt, answer) != 0) {
            bad++;
            continue;
        }
        const char *q0 = bp.prompt + 3;
        char question[TASK_QUESTION_CAP];
        size_t ql = (size_t)(strchr(q0, '\n') - q0);
        memcpy(question, q0, ql);
        question[ql] = '\0';
        if (bp.kind == BASE_KIND_STUDENT) {
            tmpl_student_prompt(want_prompt, sizeof want_prompt, question);
            tmpl_completion(want_target, sizeof want_target, answer, 1.0);
            bad += bp.target_hundredths != 100 || bp.shown_hundredths != -1;
        } else {
            teacher++;
            double note = bp.target_hundredths / 100.0;
            note_hist[bp.target_hundredths]++;
            replaced += bp.shown_hundredths == bp.target_hundredths;
            bad += !(bp.shown_hundredths == 100 || bp.shown_hundredths == bp.target_hundredths);
            tmpl_completion(shown, sizeof shown, answer, bp.shown_hundredths / 100.0);
            if (bp.kind == BASE_KIND_DEMO)
                tmpl_teacher_demo(want_prompt, sizeof want_prompt, question, shown, note);
            else
                tmpl_teacher_solution(want_prompt, sizeof want_prompt, question, shown, note);
            tmpl_completion(want_target, sizeof want_target, answer, note);
            /* The target copies the note's value. */
            char note_text[16];
            snprintf(note_text, sizeof note_text, "is %s.", tmpl_format_conf(note, shown));
            bad += strstr(bp.prompt, note_text) == NULL;
        }
        if (strcmp(bp.prompt, want_prompt) || strcmp(bp.target, want_target)) {
            if (bad++ < 3) fprintf(stderr, "  unexpected pair:\n%s|%s\n", bp.prompt, bp.target);
        }
        bad += tok_check(bp.prompt, strlen(bp.prompt)) || tok_check(bp.target, strlen(bp.target));
    }
    base_gen_free(g);
    CHECK_EQ_INT(bad, 0);
    /* Proportions (defaults 0.5 / 0.5 / 0.5), all domains used, notes span 0.00..1.00. */
    CHECK_MSG(kinds[BASE_KIND_STUDENT] > 0.47 * N && kinds[BASE_KIND_STUDENT] < 0.53 * N,
              "student share %d", kinds[BASE_KIND_STUDENT]);
    CHECK(kinds[BASE_KIND_DEMO] > 0.22 * N && kinds[BASE_KIND_SOLUTION] > 0.22 * N);
    CHECK(replaced > 0.45 * teacher && replaced < 0.55 * teacher);
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        CHECK(domains[d] > N / TASK_N_DOMAINS / 2);
    CHECK(note_hist[0] > 0 && note_hist[100] > 0 && note_hist[50] > 0);

    /* Parameters: a domain subset, only teacher-format, only demo, always replaced. */
    base_params p = base_params_default();
    p.domains = 1u << TASK_DOMAIN_REV | 1u << TASK_DOMAIN_MOD;
    p.p_teacher = 1.0;
    p.p_solution = 0.0;
    p.p_replaced = 1.0;
    CHECK_EQ_INT(base_gen_new(&g, p, 2), BASE_OK);
    int off = 0;
    for (int i = 0; i < 2000 && g; i++) {
        base_pair bp;
        base_gen_next(g, &bp);
        off += !(bp.domain == TASK_DOMAIN_REV || bp.domain == TASK_DOMAIN_MOD) ||
               bp.kind != BASE_KIND_DEMO || bp.shown_hundredths != bp.target_hundredths;
    }
    base_gen_free(g);
    CHECK_EQ_INT(off, 0);

    /* The mixed order: SDFT-form share, student domains apart from teacher domains, and a
     * focus domain taking a fixed share of the student-format pairs. */
    p = base_params_default();
    p.p_teacher = 0.6;
    p.p_no_note = 0.25;
    p.student_domains = 1u << TASK_DOMAIN_ADD | 1u << TASK_DOMAIN_SUB;
    p.focus = TASK_DOMAIN_COUNT_CHAR;
    p.focus_share = 0.5;
    CHECK_EQ_INT(base_gen_new(&g, p, 3), BASE_OK);
    const int M = 8000;
    int n_student = 0, n_focus = 0, n_other_student = 0, n_no_note = 0, n_teacher = 0;
    bad = 0;
    for (int i = 0; i < M && g; i++) {
        base_pair bp;
        CHECK_EQ_INT(base_gen_next(g, &bp), BASE_OK);
        if (bp.kind == BASE_KIND_STUDENT) {
            n_student++;
            if (bp.domain == TASK_DOMAIN_COUNT_CHAR)
                n_focus++;
            else if (bp.domain == TASK_DOMAIN_ADD || bp.domain == TASK_DOMAIN_SUB)
                n_other_student++;
            else
                bad++;
            continue;
        }
        n_teacher++;
        if (bp.kind != BASE_KIND_DEMO_NO_NOTE) continue;
        n_no_note++;
        /* what the sdft teacher reads and says: the demo is the target, ending 1.00 */
        bad += bp.target_hundredths != 100 || bp.shown_hundredths != 100 ||
               strstr(bp.prompt, "Note:") != NULL || strstr(bp.prompt, bp.target) == NULL ||
               strcmp(bp.target + strlen(bp.target) - 16, "Confidence: 1.00") != 0;
    }
    base_gen_free(g);
    CHECK_EQ_INT(bad, 0);
    CHECK(n_teacher > 0.55 * M && n_teacher < 0.65 * M);
    CHECK(n_no_note > 0.2 * n_teacher && n_no_note < 0.3 * n_teacher);
    CHECK(n_focus > 0.45 * n_student && n_focus < 0.55 * n_student);
    CHECK_EQ_INT(n_focus + n_other_student, n_student);
    /* the focus with no other student domain and share < 1 is refused */
    p.student_domains = 1u << TASK_DOMAIN_COUNT_CHAR;
    g = NULL;
    CHECK_EQ_INT(base_gen_new(&g, p, 3), BASE_ERR_ARG);
    CHECK(strstr(base_errmsg(), "focus") != NULL);
    p.focus_share = 1.0;
    CHECK_EQ_INT(base_gen_new(&g, p, 3), BASE_OK);
    base_gen_free(g);
    p.focus = TASK_N_DOMAINS;
    CHECK_EQ_INT(base_gen_new(&g, p, 3), BASE_ERR_ARG);

    /* Determinism and state save/restore. */
    base_gen *a = NULL, *b = NULL;
    CHECK_EQ_INT(base_gen_new(&a, base_params_default(), 9), BASE_OK);
    CHECK_EQ_INT(base_gen_new(&b, base_params_default(), 9), BASE_OK);
    base_pair pa, pb;
    int differ = 0;
    for (int i = 0; i < 500; i++) {
        base_gen_next(a, &pa);
        base_gen_next(b, &pb);
        differ += strcmp(pa.prompt, pb.prompt) || strcmp(pa.target, pb.target);
    }
    CHECK_EQ_INT(differ, 0);
    uint64_t st[BASE_GEN_STATE_WORDS];
    base_gen_get_state(a, st);
    base_gen_next(a, &pa);
    base_gen_free(b);
    CHECK_EQ_INT(base_gen_new(&b, base_params_default(), 10), BASE_OK);
    base_gen_set_state(b, st);
    base_gen_next(b, &pb);
    CHECK_EQ_STR(pb.prompt, pa.prompt);
    base_gen_free(b);
    CHECK_EQ_INT(base_gen_new(&b, base_params_default(), 10), BASE_OK);
    differ = 0;
    for (int i = 0; i < 50; i++) {
        base_gen_next(a, &pa);
        base_gen_next(b, &pb);
        differ += strcmp(pa.prompt, pb.prompt) != 0;
    }
    CHECK(differ > 25);
    base_gen_free(a);
    base_gen_free(b);
    base_gen_free(NULL);

    /* Bad parameters: status and message, *out untouched. */
    g = NULL;
    p = base_params_default();
    p.p_teacher = 1.5;
    CHECK_EQ_INT(base_gen_new(&g, p, 1), BASE_ERR_ARG);
    CHECK(strstr(base_errmsg(), "p_teacher") != NULL);
    p = base_params_default();
    p.p_replaced = NAN;
    CHECK_EQ_INT(base_gen_new(&g, p, 1), BASE_ERR_ARG);
    p = base_params_default();
    p.domains = 1u << TASK_N_DOMAINS;
    CHECK_EQ_INT(base_gen_new(&g, p, 1), BASE_ERR_ARG);
    CHECK(strstr(base_errmsg(), "domains") != NULL);
    CHECK(g == NULL);
    return check_report("test_basedata");
}
