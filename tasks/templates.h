/* templates.h: every text the models read or write, as pure functions: the student
 * prompt, the completion format, the teacher contexts (demo, correct_solution), the
 * CaOPD note and replacements, two-decimal confidence formatting and completion parsing. */
#ifndef CAOPD_TASKS_TEMPLATES_H
#define CAOPD_TASKS_TEMPLATES_H

#include <stddef.h>

/*
 * The exact texts ({...} are the arguments, \n is one newline byte, [..] is optional):
 *
 *   student prompt      "Q: {question}\nAnswer, then Confidence.\n"
 *   completion          "{answer}\nConfidence: {c:.2f}"
 *   note                "Note: The empirical confidence for this question is {P:.2f}.
 *                        Output this exact value in the 'Confidence:' field."   (one line)
 *   teacher, demo       "Q: {question}\nExample:\n{demo}\n[{note}\n]"
 *                       "Now answer with a response of your own.\n"
 *   teacher, solution   "Q: {question}\nSolution:\n{solution}\n[{note}\n]"
 *                       "Correctly solve the original question.\n"
 *
 * {demo} is a completion (normally tmpl_completion(answer, 1.0), ending
 * "Confidence: 1.00"); {solution} is a verified-correct rollout of the same prompt.
 * A model's completion directly follows the prompt; BOS/EOS are the caller's business.
 *
 * Writing functions follow snprintf: they write at most cap bytes into buf, always
 * NUL-terminated when cap > 0, and return the full length the text needs (without the
 * NUL); the text is complete iff the return value < cap. buf may be NULL when cap == 0
 * (to measure). Input strings are borrowed and must not overlap buf. No allocation,
 * no locale, thread-safe.
 */
#define TMPL_STUDENT_PREFIX "Q: "
#define TMPL_STUDENT_SUFFIX "\nAnswer, then Confidence.\n"
#define TMPL_CONF_MARKER "Confidence:"
#define TMPL_CONF_LINE "\nConfidence: "
#define TMPL_DEMO_HEADER "\nExample:\n"
#define TMPL_DEMO_INSTRUCTION "Now answer with a response of your own.\n"
#define TMPL_SOLUTION_HEADER "\nSolution:\n"
#define TMPL_SOLUTION_INSTRUCTION "Correctly solve the original question.\n"
#define TMPL_NOTE_PREFIX "Note: The empirical confidence for this question is "
#define TMPL_NOTE_SUFFIX ". Output this exact value in the 'Confidence:' field."

#define TMPL_CONF_LEN 4   /* "0.38": a formatted confidence is always 4 characters */
#define TMPL_NO_NOTE -1.0 /* note_p value meaning "no note" (any negative or NaN does) */

/* Confidence p in hundredths, 0..100: p is clipped to [0,1] (NaN counts as 0), then
 * p*100 is rounded to the nearest integer, ties to even, on the exact binary value of p.
 * This is what Python's f"{p:.2f}" and glibc's "%.2f" print: 0.125 -> 12 ("0.12"),
 * 0.375 -> 38, 0.625 -> 62, 0.875 -> 88, 0.005 -> 1 (the double is just above 0.005),
 * 0.015 -> 1 (just below). Pure integer arithmetic, independent of locale. */
int tmpl_conf_hundredths(double p);

/* Writes tmpl_conf_hundredths(p) as "d.dd" plus NUL into out (5 bytes). Returns out. */
char *tmpl_format_conf(double p, char out[TMPL_CONF_LEN + 1]);

/* "{answer}\nConfidence: {conf:.2f}" */
size_t tmpl_completion(char *buf, size_t cap, const char *answer, double conf);

/* "Q: {question}\nAnswer, then Confidence.\n" */
size_t tmpl_student_prompt(char *buf, size_t cap, const char *question);

/* "Note: The empirical confidence for this question is {p:.2f}. Output this exact
 * value in the 'Confidence:' field." (no trailing newline) */
size_t tmpl_note(char *buf, size_t cap, double p);

/* Teacher context, mode `demo` (SDFT). demo: the demonstration completion shown to the
 * teacher; note_p: the note's value, or TMPL_NO_NOTE (negative/NaN) for no note.
 * CaOPD replacement (2) is tmpl_revise_completion() applied to the demo first;
 * replacement (3) is passing note_p = P_acc. */
size_t tmpl_teacher_demo(char *buf, size_t cap, const char *question, const char *demo,
                         double note_p);

/* Teacher context, mode `correct_solution` (SDPO). solution: a verified-correct rollout
 * of the same prompt (the caller picks it; with none, use tmpl_teacher_demo instead). */
size_t tmpl_teacher_solution(char *buf, size_t cap, const char *question, const char *solution,
                             double note_p);

/* CaOPD replacements (1) and (2): strips the Confidence tail of completion[0..len) and
 * appends "\nConfidence: {p:.2f}". The tail starts at the first "Confidence:" (the whole
 * text is kept when there is none); whitespace before it is dropped too, so the result is
 * rstrip(text before the first "Confidence:") + "\nConfidence: " + p. Applied to a demo
 * ending "Confidence: 1.00" this turns it into "Confidence: {p:.2f}". */
size_t tmpl_revise_completion(char *buf, size_t cap, const char *completion, size_t len, double p);

/* tmpl_parsed.flags bits (information; only format_failure decides scoring). */
#define TMPL_PARSE_NO_MARKER 1u /* no "Confidence:" in the text at all */
#define TMPL_PARSE_NO_NUMBER 2u /* "Confidence:" present but never followed by a number */
#define TMPL_PARSE_CLIPPED 4u   /* the number was outside [0,1] and was clipped */
#define TMPL_PARSE_MULTIPLE 8u  /* more than one "Confidence:" in the text */

/* What a completion says. answer_off/answer_len locate the answer inside the parsed text
 * (borrowed: valid while that text is). */
typedef struct {
    size_t answer_off;  /* start of the answer in the text */
    size_t answer_len;  /* length of the answer (surrounding whitespace excluded) */
    double confidence;  /* parsed and clipped to [0,1]; 0.0 on a format failure */
    int format_failure; /* 1 when no "Confidence:" is followed by a number */
    unsigned flags;     /* TMPL_PARSE_* bits */
} tmpl_parsed;

/* Parses completion text[0..len) (any bytes, NUL included, are allowed).
 * Answer: the text before the first "Confidence:" (all of it when there is none), with
 * leading and trailing ASCII whitespace (space \t \n \v \f \r) removed.
 * Confidence: the last "Confidence:" that is followed, after optional spaces and tabs,
 * by a number [+-]?(digits[.digits*] | .digits) (no exponent; anything after the number
 * is ignored); the value is clipped to [0,1]. When there is no such number: confidence
 * 0.0 and format_failure = 1. Case-sensitive; never fails; no allocation. Values with
 * up to 15 significant digits are converted exactly as strtod would (correctly rounded). */
tmpl_parsed tmpl_parse_completion(const char *text, size_t len);

#endif
