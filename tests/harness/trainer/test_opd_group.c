/* Verification, P_acc and the three CaOPD replacements on hand-made rollouts (opd_group_build),
 * the SDFT baseline without replacement, the correct_solution teacher mode and its fallback,
 * the answer/confidence token classes, and a whole batch built from given rollouts. */
#include "tests/check.h"
#include "harness/trainer/opd.h"
#include "tasks/templates.h"
#include "tasks/tokenizer.h"

#include <string.h>

#define NOTE(p)                                                                                    \
    "Note: The empirical confidence for this question is " p                                       \
    ". Output this exact value in the 'Confidence:' field.\n"

static task_example example(const char *q, const char *a) {
    task_example ex;
    memset(&ex, 0, sizeof ex);
    ex.domain = TASK_DOMAIN_ADD;
    snprintf(ex.question, sizeof ex.question, "%s", q);
    snprintf(ex.answer, sizeof ex.answer, "%s", a);
    snprintf(ex.canonical, sizeof ex.canonical, "%s", q);
    return ex;
}

static const char *const R[8] = {
    "46\nConfidence: 0.90",  /* correct */
    "47\nConfidence: 1.00",  /* wrong */
    " 46 \nConfidence: 0.7", /* correct (surrounding spaces) */
    "46",                    /* correct, format failure */
    "4 6\nConfidence: 0.5",  /* wrong */
    "Confidence: 0.3",       /* wrong: empty answer */
    "046\nConfidence: 1.0",  /* wrong */
    "x",                     /* wrong, format failure */
};

static void test_caopd_demo(void) {
    task_example ex = example("12+34=", "46");
    opd_group g;
    CHECK_EQ_INT(opd_group_build(&g, &ex, R, 8, 1, OPD_TEACHER_DEMO), 0);
    CHECK_EQ_INT(g.n_correct, 3);
    CHECK(g.p_acc == 3.0 / 8);
    const int correct[8] = {1, 0, 1, 1, 0, 0, 0, 0}, failure[8] = {0, 0, 0, 1, 0, 0, 0, 1};
    for (int r = 0; r < 8; r++) {
        CHECK_EQ_INT(g.verdict[r].correct, correct[r]);
        CHECK_EQ_INT(g.verdict[r].format_failure, failure[r]);
    }
    /* (1) every completion ends with P_acc, 3/8 -> "0.38" */
    CHECK_EQ_STR(g.completion[0], "46\nConfidence: 0.38");
    CHECK_EQ_STR(g.completion[1], "47\nConfidence: 0.38");
    CHECK_EQ_STR(g.completion[2], " 46\nConfidence: 0.38");
    CHECK_EQ_STR(g.completion[3], "46\nConfidence: 0.38");
    CHECK_EQ_STR(g.completion[5], "\nConfidence: 0.38");
    CHECK_EQ_STR(g.completion[7], "x\nConfidence: 0.38");
    /* (2) the demo's 1.00 becomes P_acc, (3) the note carries P_acc; one context for all rows */
    CHECK_EQ_INT(g.n_contexts, 1);
    for (int r = 0; r < 8; r++)
        CHECK_EQ_INT(g.context_of[r], 0);
    CHECK_EQ_STR(g.context[0], "Q: 12+34=\nExample:\n46\nConfidence: 0.38\n" NOTE(
                                   "0.38") "Now answer with a response of your own.\n");
}

static void test_sdft(void) {
    task_example ex = example("12+34=", "46");
    opd_group g;
    CHECK_EQ_INT(opd_group_build(&g, &ex, R, 8, 0, OPD_TEACHER_DEMO), 0);
    CHECK(g.p_acc == 3.0 / 8);
    for (int r = 0; r < 8; r++)
        CHECK_EQ_STR(g.completion[r], R[r]); /* as sampled */
    CHECK_EQ_STR(g.context[0], "Q: 12+34=\nExample:\n46\nConfidence: 1.00\n"
                               "Now answer with a response of your own.\n");
}

static void test_correct_solution(void) {
    task_example ex = example("12+34=", "46");
    opd_group g;
    /* CaOPD: rows other than 0 see rollout 0 (revised); row 0 sees rollout 2, never itself. */
    CHECK_EQ_INT(opd_group_build(&g, &ex, R, 8, 1, OPD_TEACHER_CORRECT_SOLUTION), 0);
    CHECK_EQ_INT(g.n_contexts, 2);
    CHECK_EQ_INT(g.context_of[0], 1);
    for (int r = 1; r < 8; r++)
        CHECK_EQ_INT(g.context_of[r], 0);
    CHECK_EQ_STR(g.context[0], "Q: 12+34=\nSolution:\n46\nConfidence: 0.38\n" NOTE(
                                   "0.38") "Correctly solve the original question.\n");
    CHECK_EQ_STR(g.context[1], "Q: 12+34=\nSolution:\n 46\nConfidence: 0.38\n" NOTE(
                                   "0.38") "Correctly solve the original question.\n");
    /* Without replacement the solution is shown as sampled, without a note. */
    CHECK_EQ_INT(opd_group_build(&g, &ex, R, 8, 0, OPD_TEACHER_CORRECT_SOLUTION), 0);
    CHECK_EQ_STR(g.context[0], "Q: 12+34=\nSolution:\n46\nConfidence: 0.90\n"
                               "Correctly solve the original question.\n");
    /* Only one correct rollout: it sees the demo, the others see it. */
    const char *one[3] = {"1\nConfidence: 0.2", "46\nConfidence: 0.9", "2\nConfidence: 1.00"};
    CHECK_EQ_INT(opd_group_build(&g, &ex, one, 3, 1, OPD_TEACHER_CORRECT_SOLUTION), 0);
    CHECK_EQ_INT(g.n_contexts, 2);
    CHECK_EQ_INT(g.context_of[1], 1);
    CHECK_EQ_INT(g.context_of[0], 0);
    CHECK_EQ_STR(g.context[1], "Q: 12+34=\nExample:\n46\nConfidence: 0.33\n" NOTE(
                                   "0.33") "Now answer with a response of your own.\n");
    /* No correct rollout: every row falls back to the demo, P_acc 0. */
    const char *none[2] = {"1\nConfidence: 0.2", "2"};
    CHECK_EQ_INT(opd_group_build(&g, &ex, none, 2, 1, OPD_TEACHER_CORRECT_SOLUTION), 0);
    CHECK_EQ_INT(g.n_contexts, 1);
    CHECK(g.p_acc == 0.0);
    CHECK_EQ_STR(g.completion[1], "2\nConfidence: 0.00");
    CHECK_EQ_STR(g.context[0], "Q: 12+34=\nExample:\n46\nConfidence: 0.00\n" NOTE(
                                   "0.00") "Now answer with a response of your own.\n");
    /* K = 1, correct: no other rollout, so the demo. */
    CHECK_EQ_INT(opd_group_build(&g, &ex, one + 1, 1, 1, OPD_TEACHER_CORRECT_SOLUTION), 0);
    CHECK_EQ_INT(g.n_contexts, 1);
    CHECK(strstr(g.context[0], "Example:\n46\nConfidence: 1.00\n") != NULL);
    /* Bad K. */
    CHECK_EQ_INT(opd_group_build(&g, &ex, R, 0, 1, OPD_TEACHER_DEMO), -1);
    CHECK_EQ_INT(opd_group_build(&g, &ex, R, OPD_MAX_K + 1, 1, OPD_TEACHER_DEMO), -1);
}

static void test_token_classes(void) {
    const char *t = " 46\nConfidence: 0.38";
    uint8_t cls[64];
    opd_token_classes(t, (int)strlen(t), cls);
    char got[64];
    for (size_t i = 0; i < strlen(t); i++)
        got[i] = (char)('0' + cls[i]);
    got[strlen(t)] = '\0';
    CHECK_EQ_STR(got, "011"
                      "0000000000000"
                      "2222");
    const char *u = "7\nConfidence: 0.2\nConfidence: 1.00xyz";
    opd_token_classes(u, (int)strlen(u), cls);
    for (size_t i = 0; i < strlen(u); i++)
        got[i] = (char)('0' + cls[i]);
    got[strlen(u)] = '\0';
    CHECK_EQ_STR(got, "1"
                      "00000000000000000000000000000"
                      "2222"
                      "000");
    const char *v = "abc";
    opd_token_classes(v, 3, cls);
    CHECK(cls[0] == OPD_TOK_ANSWER && cls[1] == OPD_TOK_ANSWER && cls[2] == OPD_TOK_ANSWER);
}

static void test_batch(void) {
    tw_ctx *ctx = NULL;
    char err[128];
    CHECK(tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) == TW_OK);
    task_example ex[2] = {example("12+34=", "46"), example("5+5=", "10")};
    const char *roll[16];
    for (int r = 0; r < 8; r++)
        roll[r] = R[r];
    for (int r = 0; r < 8; r++)
        roll[8 + r] = r < 6 ? "10\nConfidence: 1.00" : "9\nConfidence: 1.00";
    opd_params p = opd_params_default();
    opd_batch b;
    opd_stats st;
    memset(&st, 0, sizeof st);
    CHECK_EQ_INT(opd_batch_from_rollouts(ctx, ex, 2, roll, p, &b, &st), TW_OK);
    CHECK_EQ_INT(b.student.n_prefix, 2);
    CHECK_EQ_INT(b.student.n_rows, 16);
    CHECK_EQ_INT(b.teacher.n_prefix, 2);
    CHECK_EQ_INT(b.teacher.n_rows, 16);
    CHECK_NEAR(st.mean_p_acc, (3.0 / 8 + 6.0 / 8) / 2, 1e-12);
    CHECK_NEAR(st.format_adherence, 14.0 / 16, 1e-12);
    /* Row 9: prompt 1, completion "10\nConfidence: 0.75" + EOS; student and teacher rows share
     * the completion; its prefix is BOS + the student prompt. */
    const char *want = "10\nConfidence: 0.75";
    CHECK_EQ_INT(b.student.n_target[9], (int)strlen(want) + 1);
    int same = 1;
    for (size_t j = 0; j < strlen(want); j++) {
        same &= b.student.target[9 * b.student.width + j] == tok_char_to_id((unsigned char)want[j]);
        same &=
            b.teacher.target[9 * b.teacher.width + j] == b.student.target[9 * b.student.width + j];
    }
    CHECK(same);
    CHECK_EQ_INT(b.student.target[9 * b.student.width + strlen(want)], 2); /* EOS */
    CHECK_EQ_INT(b.student.row_of[9], 1);
    CHECK_EQ_INT(b.teacher.row_of[9], 1);
    CHECK_EQ_INT(st.prompt_tokens,
                 (1 + 35) + (1 + 33)); /* BOS + "Q: {q}\nAnswer, then Confidence.\n" */
    CHECK(b.cls[9 * b.student.width + 0] == OPD_TOK_ANSWER &&
          b.cls[9 * b.student.width + 15] == OPD_TOK_CONF);
    opd_batch_free(&b);
    /* SDFT with correct_solution: prompt 0 has two contexts, prompt 1 too (6 correct). */
    p.replace = 0;
    p.teacher = OPD_TEACHER_CORRECT_SOLUTION;
    CHECK_EQ_INT(opd_batch_from_rollouts(ctx, ex, 2, roll, p, &b, &st), TW_OK);
    CHECK_EQ_INT(b.teacher.n_prefix, 4);
    CHECK_EQ_INT(b.teacher.row_of[0], 1);
    CHECK_EQ_INT(b.teacher.row_of[1], 0);
    CHECK_EQ_INT(b.teacher.row_of[8], 3);
    CHECK_EQ_INT(b.teacher.row_of[9], 2);
    opd_batch_free(&b);
    CHECK_EQ_INT(tw_live_count(ctx), 0);
    tw_ctx_free(ctx);
}

/* A text outside the vocabulary and an allocation failure are told apart (OPD_SEQS_BAD_TEXT,
 * OPD_SEQS_NOMEM), so callers can say which. */
static void test_seqs_text_errors(void) {
    opd_seqs s;
    opd_seqs_init(&s);
    CHECK_EQ_INT(opd_seqs_add_prefix_text(&s, "Q: 1+1=\n"), 0);
    CHECK_EQ_INT(opd_seqs_add_prefix_text(&s, "tab\there"), OPD_SEQS_BAD_TEXT);
    CHECK_MSG(strstr(tok_errmsg(), "offset 3") != NULL, "%s", tok_errmsg());
    CHECK_EQ_INT(opd_seqs_add_row_text(&s, 0, "2\nConfidence: 1.00"), 0);
    CHECK_EQ_INT(opd_seqs_add_row_text(&s, 0, "caf\xc3\xa9"), OPD_SEQS_BAD_TEXT);
    CHECK_EQ_INT(opd_seqs_add_row_text(&s, 5, "2"), OPD_SEQS_NOMEM); /* no prefix 5 */
    CHECK_EQ_INT(s.n_prefix, 1);
    CHECK_EQ_INT(s.n_rows, 1);
    opd_seqs_free(&s);
}

int main(void) {
    test_caopd_demo();
    test_sdft();
    test_correct_solution();
    test_token_classes();
    test_batch();
    test_seqs_text_errors();
    return check_report("test_opd_group");
}
