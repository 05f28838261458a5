/* domains.c: the procedural generators of the seven domains, their OOD shifts and the
 * held-out rejection sampler. Each instance is drawn as "parts" (operands or a string),
 * rendered in the canonical training format (for the held-out hash) and, on ood_format,
 * in the shifted surface format; the answer is computed from the parts. */
#include <stdio.h>
#include <string.h>

#include "tasks/tasks_internal.h"

#define PART_CAP 32 /* longest part: 20 letters (count, ood_length 3) or 7 digits */

typedef struct {
    char x[PART_CAP]; /* first operand (digits) or the string payload */
    char y[PART_CAP]; /* second operand (digits), or the letter to count */
} parts;

static const char DIGITS[] = "0123456789";
static const char LOWER[] = "abcdefghijklmnopqrstuvwxyz";

/* ---- drawing helpers ------------------------------------------------------------ */

static int draw_int(rng_state *r, int lo, int hi) {
    return (int)rng_range(r, lo, hi);
}

/* A number of exactly `len` digits written into out: digits drawn from [lo, hi], except
 * that a number of two or more digits never starts with 0. */
static void draw_number(rng_state *r, int len, int lo, int hi, char *out) {
    for (int i = 0; i < len; i++) {
        int first_lo = (i == 0 && len > 1 && lo == 0) ? 1 : lo;
        out[i] = (char)('0' + draw_int(r, first_lo, hi));
    }
    out[len] = '\0';
}

/* `len` symbols drawn uniformly (with repeats) from alphabet. */
static void draw_string(rng_state *r, int len, const char *alphabet, char *out) {
    size_t n = strlen(alphabet);
    for (int i = 0; i < len; i++)
        out[i] = alphabet[rng_below(r, n)];
    out[len] = '\0';
}

static long long to_ll(const char *s) {
    long long v = 0;
    for (; *s; s++)
        v = v * 10 + (*s - '0');
    return v;
}

/* ---- drawing the parts of one instance ------------------------------------------ */

/* Two operands for add/sub: ID lengths 1..3; ood_length: the longer has 3+sev digits,
 * the other 1..3+sev. */
static void draw_two_operands(rng_state *r, task_split s, int sev, parts *p) {
    int la = draw_int(r, 1, 3), lb = draw_int(r, 1, 3);
    if (s == TASK_SPLIT_OOD_LENGTH) {
        la = 3 + sev;
        lb = draw_int(r, 1, la);
        if (rng_below(r, 2)) {
            int t = la;
            la = lb;
            lb = t;
        }
    }
    draw_number(r, la, 0, 9, p->x);
    draw_number(r, lb, 0, 9, p->y);
}

/* add ood_value: training lengths, but carry-heavy. In each column where both operands
 * have a digit, with probability sev/3 the digit pair is drawn uniformly from the 45
 * pairs summing to 10 or more (the column carries), else uniformly from all 100 pairs
 * (re-drawn while a leading digit would be 0). A column thus produces a carry by itself
 * with probability about 0.45 in training and 0.63, 0.82, 1.0 at severities 1, 2, 3. */
static void draw_carry_heavy(rng_state *r, int sev, parts *p) {
    int la = draw_int(r, 1, 3), lb = draw_int(r, 1, 3);
    draw_number(r, la, 0, 9, p->x);
    draw_number(r, lb, 0, 9, p->y);
    int shared = la < lb ? la : lb;
    for (int k = 1; k <= shared; k++) { /* k-th column from the right */
        char *a = &p->x[la - k], *b = &p->y[lb - k];
        int a_lead = k == la && la > 1, b_lead = k == lb && lb > 1;
        int carry = (int)rng_below(r, 3) < sev;
        int da, db; /* uniform over the admissible pairs, by rejection */
        do {
            da = draw_int(r, 0, 9);
            db = draw_int(r, 0, 9);
        } while ((carry && da + db < 10) || (a_lead && da == 0) || (b_lead && db == 0));
        *a = (char)('0' + da);
        *b = (char)('0' + db);
    }
}

static void swap_parts(parts *p) {
    char t[PART_CAP];
    memcpy(t, p->x, PART_CAP);
    memcpy(p->x, p->y, PART_CAP);
    memcpy(p->y, t, PART_CAP);
}

/* sub: training keeps A >= B. ood_value: with probability sev/3 the question has
 * A < B (a negative answer, never seen in training); otherwise A >= B as usual. */
static void draw_sub(rng_state *r, task_split s, int sev, parts *p) {
    if (s == TASK_SPLIT_OOD_VALUE && (int)rng_below(r, 3) < sev) {
        long long a, b;
        do {
            draw_two_operands(r, TASK_SPLIT_TRAIN, 0, p);
            a = to_ll(p->x);
            b = to_ll(p->y);
        } while (a == b);
        if (a > b) swap_parts(p);
        return;
    }
    draw_two_operands(r, s, sev, p);
    if (to_ll(p->x) < to_ll(p->y)) swap_parts(p);
}

/* mul/mod: A has 1..4 digits (ood_length: 4+sev); the small operand is 2..9
 * (ood_value: 11..19, 20..49, 50..99). */
static void draw_small_operand(rng_state *r, task_split s, int sev, parts *p) {
    static const int small_lo[] = {2, 11, 20, 50}, small_hi[] = {9, 19, 49, 99};
    int la = s == TASK_SPLIT_OOD_LENGTH ? 4 + sev : draw_int(r, 1, 4);
    draw_number(r, la, 0, 9, p->x);
    int v = s == TASK_SPLIT_OOD_VALUE ? sev : 0;
    snprintf(p->y, PART_CAP, "%d", draw_int(r, small_lo[v], small_hi[v]));
}

/* Longest ID payload of sort and rev (docs/tasks.md §3). */
#define SORT_LEN_MAX 6
#define REV_LEN_MAX 6

/* Payload length for sort/rev: 2..max (ood_length: max-1+2*sev .. max+2*sev). */
static int string_length(rng_state *r, task_split s, int sev, int max) {
    return s == TASK_SPLIT_OOD_LENGTH ? draw_int(r, max - 1 + 2 * sev, max + 2 * sev)
                                      : draw_int(r, 2, max);
}

static void draw_sort(rng_state *r, task_split s, int sev, parts *p) {
    static const char *const alphabet[] = {DIGITS, "0123456789abcdef", "0123456789abcdefghijklmnop",
                                           "0123456789abcdefghijklmnopqrstuvwxyz"};
    int n = string_length(r, s, sev, SORT_LEN_MAX);
    draw_string(r, n, alphabet[s == TASK_SPLIT_OOD_VALUE ? sev : 0], p->x);
    p->y[0] = '\0';
}

static void draw_rev(rng_state *r, task_split s, int sev, parts *p) {
    static const char *const alphabet[] = {
        LOWER, "abcdefghijklmnopqrstuvwxyz0123456789",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"};
    int n = string_length(r, s, sev, REV_LEN_MAX);
    draw_string(r, n, alphabet[s == TASK_SPLIT_OOD_VALUE ? sev : 0], p->x);
    p->y[0] = '\0';
}

/* count: a letter c from a..e and a string of 2..8 letters from a..e (ood_length: 9..12,
 * 13..16, 17..20). Training draws every letter uniformly (c has share 1/5); ood_value
 * makes each position c with probability 0.40, 0.55 or 0.70, else another letter. */
static void draw_count(rng_state *r, task_split s, int sev, parts *p) {
    static const char letters[] = "abcde";
    int n = s == TASK_SPLIT_OOD_LENGTH ? draw_int(r, 5 + 4 * sev, 8 + 4 * sev) : draw_int(r, 2, 8);
    int c = (int)rng_below(r, 5);
    p->y[0] = letters[c];
    p->y[1] = '\0';
    if (s != TASK_SPLIT_OOD_VALUE) {
        draw_string(r, n, letters, p->x);
        return;
    }
    int twentieths = 5 + 3 * sev; /* 8, 11, 14: shares 0.40, 0.55, 0.70 */
    for (int i = 0; i < n; i++) {
        if ((int)rng_below(r, 20) < twentieths) {
            p->x[i] = letters[c];
        } else {
            int o = (int)rng_below(r, 4);
            p->x[i] = letters[o >= c ? o + 1 : o];
        }
    }
    p->x[n] = '\0';
}

static void draw_parts(rng_state *r, task_domain d, task_split s, int sev, parts *p) {
    switch (d) {
    case TASK_DOMAIN_ADD:
        if (s == TASK_SPLIT_OOD_VALUE)
            draw_carry_heavy(r, sev, p);
        else
            draw_two_operands(r, s, sev, p);
        break;
    case TASK_DOMAIN_SUB:
        draw_sub(r, s, sev, p);
        break;
    case TASK_DOMAIN_MUL:
    case TASK_DOMAIN_MOD:
        draw_small_operand(r, s, sev, p);
        break;
    case TASK_DOMAIN_SORT:
        draw_sort(r, s, sev, p);
        break;
    case TASK_DOMAIN_REV:
        draw_rev(r, s, sev, p);
        break;
    case TASK_DOMAIN_COUNT_CHAR:
        draw_count(r, s, sev, p);
        break;
    }
}

/* ---- rendering ------------------------------------------------------------------ */

/* A bounded text builder: appends never write past cap - 1 and keep a NUL at the end. */
typedef struct {
    char *buf;
    size_t len, cap;
} builder;

static void cat(builder *b, const char *s) {
    for (; *s && b->len + 1 < b->cap; s++)
        b->buf[b->len++] = *s;
    b->buf[b->len] = '\0';
}

static void cat_all(builder *b, const char *const *s) {
    for (; *s; s++)
        cat(b, *s);
}

/* CAT(&b, "sort(", x, ")=") appends the strings in order. */
#define CAT(b, ...) cat_all((b), (const char *const[]){__VA_ARGS__, NULL})

/* "3142" -> "3,1,4,2" */
static void comma_join(const char *s, char *out) {
    size_t k = 0;
    for (size_t i = 0; s[i]; i++) {
        if (i) out[k++] = ',';
        out[k++] = s[i];
    }
    out[k] = '\0';
}

/* Writes the question of parts p in surface format `fmt` (0 = canonical, 1..3 = the
 * ood_format severities) into out[TASK_QUESTION_CAP]. Every format of every domain is
 * listed here and in docs/tasks.md. */
static void render(task_domain d, const parts *p, int fmt, char *out) {
    static const char *const op_sym[] = {"+", "-", "*", "%"};
    static const char *const op_word[] = {"plus", "minus", "times", "mod"};
    builder b = {out, 0, TASK_QUESTION_CAP};
    char list[2 * PART_CAP];
    out[0] = '\0';
    switch (d) {
    case TASK_DOMAIN_ADD:
    case TASK_DOMAIN_SUB:
    case TASK_DOMAIN_MUL:
    case TASK_DOMAIN_MOD: {
        const char *sym = op_sym[d - TASK_DOMAIN_ADD], *word = op_word[d - TASK_DOMAIN_ADD];
        switch (fmt) {
        case 0:
            CAT(&b, p->x, sym, p->y, "=");
            break;
        case 1:
            CAT(&b, p->x, " ", sym, " ", p->y, " =");
            break;
        case 2:
            CAT(&b, p->x, " ", word, " ", p->y, " =");
            break;
        default:
            CAT(&b, "What is ", p->x, " ", word, " ", p->y, "?");
            break;
        }
        break;
    }
    case TASK_DOMAIN_SORT:
        comma_join(p->x, list);
        switch (fmt) {
        case 0:
            CAT(&b, "sort(", p->x, ")=");
            break;
        case 1:
            CAT(&b, "sort( ", p->x, " ) =");
            break;
        case 2:
            CAT(&b, "sort ", list, " =");
            break;
        default:
            CAT(&b, "Sort the digits ", list, ".");
            break;
        }
        break;
    case TASK_DOMAIN_REV:
        switch (fmt) {
        case 0:
            CAT(&b, "rev(", p->x, ")=");
            break;
        case 1:
            CAT(&b, "rev( ", p->x, " ) =");
            break;
        case 2:
            CAT(&b, "reverse \"", p->x, "\" =");
            break;
        default:
            CAT(&b, "Write \"", p->x, "\" backwards.");
            break;
        }
        break;
    case TASK_DOMAIN_COUNT_CHAR:
        switch (fmt) {
        case 0:
            CAT(&b, "count(", p->y, ",", p->x, ")=");
            break;
        case 1:
            CAT(&b, "count( ", p->y, " , ", p->x, " ) =");
            break;
        case 2:
            CAT(&b, "count ", p->y, " in \"", p->x, "\" =");
            break;
        default:
            CAT(&b, "How many ", p->y, " are in \"", p->x, "\"?");
            break;
        }
        break;
    }
}

/* ---- answers -------------------------------------------------------------------- */

static void solve(task_domain d, const parts *p, char *out) {
    const size_t cap = TASK_ANSWER_CAP;
    switch (d) {
    case TASK_DOMAIN_ADD:
        snprintf(out, cap, "%lld", to_ll(p->x) + to_ll(p->y));
        break;
    case TASK_DOMAIN_SUB:
        snprintf(out, cap, "%lld", to_ll(p->x) - to_ll(p->y));
        break;
    case TASK_DOMAIN_MUL:
        snprintf(out, cap, "%lld", to_ll(p->x) * to_ll(p->y));
        break;
    case TASK_DOMAIN_MOD:
        snprintf(out, cap, "%lld", to_ll(p->x) % to_ll(p->y));
        break;
    case TASK_DOMAIN_SORT: { /* counting sort by byte value */
        int count[128] = {0};
        for (const char *c = p->x; *c; c++)
            count[(unsigned char)*c & 127]++;
        size_t k = 0;
        for (int c = 0; c < 128; c++)
            for (int i = 0; i < count[c]; i++)
                out[k++] = (char)c;
        out[k] = '\0';
        break;
    }
    case TASK_DOMAIN_REV: {
        size_t n = strlen(p->x);
        for (size_t i = 0; i < n; i++)
            out[i] = p->x[n - 1 - i];
        out[n] = '\0';
        break;
    }
    case TASK_DOMAIN_COUNT_CHAR: {
        int n = 0;
        for (const char *c = p->x; *c; c++)
            n += *c == p->y[0];
        snprintf(out, cap, "%d", n);
        break;
    }
    }
}

/* ---- the sampler ---------------------------------------------------------------- */

int task_is_heldout(const char *canonical) {
    return rng_hash(canonical, strlen(canonical)) % TASK_HELDOUT_MOD == 0;
}

/* Held-out instances are 1 in 8, so an evaluation example takes 8 draws on average;
 * this bound is never reached by the shipped domains (the chance is below 1e-500). */
#define MAX_DRAWS 100000

int task__sample(rng_state *r, task_domain d, task_split s, int severity, task_example *ex) {
    int want_heldout = s != TASK_SPLIT_TRAIN;
    parts p;
    for (int draw = 0; draw < MAX_DRAWS; draw++) {
        draw_parts(r, d, s, severity, &p);
        render(d, &p, 0, ex->canonical);
        if (task_is_heldout(ex->canonical) != want_heldout) continue;
        ex->domain = d;
        ex->split = s;
        ex->severity = severity;
        if (s == TASK_SPLIT_OOD_FORMAT)
            render(d, &p, severity, ex->question);
        else
            strcpy(ex->question, ex->canonical);
        solve(d, &p, ex->answer);
        return TASK_OK;
    }
    tasks__set_error("no admissible example of %s/%s severity %d after %d draws",
                     task_domain_name(d), task_split_name(s), severity, MAX_DRAWS);
    return TASK_ERR_EXHAUSTED;
}
