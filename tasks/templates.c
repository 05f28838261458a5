/* templates.c: prompt and completion texts, exact two-decimal confidence formatting and
 * the completion parser (answer + confidence). See templates.h for the exact strings. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tasks/templates.h"

/* ---- snprintf-style writer ------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t cap;
    size_t len; /* full length written so far, even past cap */
} writer;

static void put(writer *w, const char *s, size_t n) {
    if (w->cap > 0 && w->len < w->cap - 1) {
        size_t room = w->cap - 1 - w->len;
        memcpy(w->buf + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void puts_(writer *w, const char *s) {
    put(w, s, strlen(s));
}

static size_t finish(writer *w) {
    if (w->cap > 0) w->buf[w->len < w->cap ? w->len : w->cap - 1] = '\0';
    return w->len;
}

/* ---- two-decimal confidence ------------------------------------------------------- */

int tmpl_conf_hundredths(double p) {
    if (!(p > 0.0)) /* negative, zero and NaN */
        return 0;
    if (p >= 1.0) return 100;
    /* p = m * 2^-s exactly, with m < 2^53 and s >= 53 (p < 1). */
    int e;
    double f = frexp(p, &e); /* p = f * 2^e, f in [0.5, 1), e <= 0 */
    uint64_t m = (uint64_t)ldexp(f, 53);
    int s = 53 - e;
    if (s >= 64) /* p < 2^-10: p*100 < 0.1 */
        return 0;
    uint64_t scaled = 100 * m; /* p*100 = scaled * 2^-s, scaled < 2^60 */
    uint64_t q = scaled >> s;
    uint64_t r = scaled & ((UINT64_C(1) << s) - 1);
    uint64_t half = UINT64_C(1) << (s - 1);
    if (r > half || (r == half && (q & 1))) q++;
    return (int)q;
}

char *tmpl_format_conf(double p, char out[TMPL_CONF_LEN + 1]) {
    int h = tmpl_conf_hundredths(p);
    out[0] = (char)('0' + h / 100);
    out[1] = '.';
    out[2] = (char)('0' + (h / 10) % 10);
    out[3] = (char)('0' + h % 10);
    out[4] = '\0';
    return out;
}

static void put_conf(writer *w, double p) {
    char c[TMPL_CONF_LEN + 1];
    put(w, tmpl_format_conf(p, c), TMPL_CONF_LEN);
}

/* ---- templates ------------------------------------------------------------------ */

size_t tmpl_completion(char *buf, size_t cap, const char *answer, double conf) {
    writer w = {buf, cap, 0};
    puts_(&w, answer);
    puts_(&w, TMPL_CONF_LINE);
    put_conf(&w, conf);
    return finish(&w);
}

size_t tmpl_student_prompt(char *buf, size_t cap, const char *question) {
    writer w = {buf, cap, 0};
    puts_(&w, TMPL_STUDENT_PREFIX);
    puts_(&w, question);
    puts_(&w, TMPL_STUDENT_SUFFIX);
    return finish(&w);
}

static void put_note(writer *w, double p) {
    puts_(w, TMPL_NOTE_PREFIX);
    put_conf(w, p);
    puts_(w, TMPL_NOTE_SUFFIX);
}

size_t tmpl_note(char *buf, size_t cap, double p) {
    writer w = {buf, cap, 0};
    put_note(&w, p);
    return finish(&w);
}

static size_t teacher(char *buf, size_t cap, const char *question, const char *header,
                      const char *shown, double note_p, const char *instruction) {
    writer w = {buf, cap, 0};
    puts_(&w, TMPL_STUDENT_PREFIX);
    puts_(&w, question);
    puts_(&w, header);
    puts_(&w, shown);
    puts_(&w, "\n");
    if (note_p >= 0.0) { /* false for NaN too */
        put_note(&w, note_p);
        puts_(&w, "\n");
    }
    puts_(&w, instruction);
    return finish(&w);
}

size_t tmpl_teacher_demo(char *buf, size_t cap, const char *question, const char *demo,
                         double note_p) {
    return teacher(buf, cap, question, TMPL_DEMO_HEADER, demo, note_p, TMPL_DEMO_INSTRUCTION);
}

size_t tmpl_teacher_solution(char *buf, size_t cap, const char *question, const char *solution,
                             double note_p) {
    return teacher(buf, cap, question, TMPL_SOLUTION_HEADER, solution, note_p,
                   TMPL_SOLUTION_INSTRUCTION);
}

/* ---- parsing -------------------------------------------------------------------- */

static const size_t MARKER_LEN = sizeof(TMPL_CONF_MARKER) - 1;

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* Offset of the first marker at or after `from`, or len when there is none.
 * "Confidence:" has no proper prefix that is also a suffix, so matches never overlap. */
static size_t find_marker(const char *t, size_t len, size_t from) {
    for (size_t i = from; i + MARKER_LEN <= len; i++)
        if (t[i] == 'C' && memcmp(t + i, TMPL_CONF_MARKER, MARKER_LEN) == 0) return i;
    return len;
}

/* Parses [+-]?(digits[.digits*] | .digits) at t[i..len) into a value clipped to [0,1].
 * Returns 1 when a number is there (*clipped says whether clipping changed it). */
static int parse_number(const char *t, size_t len, size_t i, double *value, int *clipped) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int negative = 0;
    if (i < len && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
    /* Integer part: only whether it is 0, 1 or more matters after clipping. */
    int int_digits = 0, int_value = 0; /* int_value saturates at 2 */
    for (; i < len && is_digit((unsigned char)t[i]); i++, int_digits++) {
        int d = t[i] - '0';
        if (int_value == 1 || int_value == 2)
            int_value = 2;
        else
            int_value = d > 1 ? 2 : d;
    }
    /* Fraction: leading zeros counted, then up to 19 significant digits kept. */
    int frac_digits = 0, frac_zeros = 0, kept = 0, frac_nonzero = 0;
    uint64_t mant = 0;
    if (i < len && t[i] == '.') {
        for (i++; i < len && is_digit((unsigned char)t[i]); i++, frac_digits++) {
            int d = t[i] - '0';
            if (d) frac_nonzero = 1;
            if (!frac_nonzero) {
                frac_zeros++;
            } else if (kept < 19) {
                mant = mant * 10 + (uint64_t)d;
                kept++;
            }
        }
    }
    if (int_digits == 0 && frac_digits == 0) return 0;

    double v;
    if (int_value >= 2 || (int_value == 1 && frac_nonzero))
        v = 2.0; /* anything above 1 */
    else if (int_value == 1)
        v = 1.0;
    else if (mant == 0)
        v = 0.0;
    else if (frac_zeros + kept <= 22)
        v = (double)mant / pow10[frac_zeros + kept]; /* exact operands: correctly rounded */
    else
        v = (double)mant / pow10[kept] / pow(10.0, frac_zeros);
    if (negative) v = -v;
    *clipped = v < 0.0 || v > 1.0;
    *value = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
    if (*value == 0.0) *value = 0.0; /* no -0.0 */
    return 1;
}

tmpl_parsed tmpl_parse_completion(const char *text, size_t len) {
    tmpl_parsed r = {0, 0, 0.0, 1, 0};
    size_t first = find_marker(text, len, 0);
    int n_markers = 0, found = 0;
    for (size_t m = first; m < len; m = find_marker(text, len, m + MARKER_LEN)) {
        n_markers++;
        size_t i = m + MARKER_LEN;
        while (i < len && (text[i] == ' ' || text[i] == '\t'))
            i++;
        double v;
        int clipped;
        if (parse_number(text, len, i, &v, &clipped)) {
            found = 1;
            r.confidence = v;
            r.flags = (r.flags & ~TMPL_PARSE_CLIPPED) | (clipped ? TMPL_PARSE_CLIPPED : 0);
        }
    }
    if (n_markers == 0)
        r.flags |= TMPL_PARSE_NO_MARKER;
    else if (!found)
        r.flags |= TMPL_PARSE_NO_NUMBER;
    if (n_markers > 1) r.flags |= TMPL_PARSE_MULTIPLE;
    r.format_failure = !found;

    size_t a = 0, b = first; /* answer = trim(text[0..first)) */
    while (a < b && is_space((unsigned char)text[a]))
        a++;
    while (b > a && is_space((unsigned char)text[b - 1]))
        b--;
    r.answer_off = a;
    r.answer_len = b - a;
    return r;
}

size_t tmpl_revise_completion(char *buf, size_t cap, const char *completion, size_t len, double p) {
    size_t keep = find_marker(completion, len, 0);
    while (keep > 0 && is_space((unsigned char)completion[keep - 1]))
        keep--;
    writer w = {buf, cap, 0};
    put(&w, completion, keep);
    puts_(&w, TMPL_CONF_LINE);
    put_conf(&w, p);
    return finish(&w);
}
