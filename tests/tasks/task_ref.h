/* task_ref.h: an independent reference for the task tests: parses a canonical question
 * back into its parts and solves it from the domain definitions in docs/tasks.md, without
 * using the generator's code. Also a small Levenshtein distance and a string set. */
#ifndef CAOPD_TESTS_TASK_REF_H
#define CAOPD_TESTS_TASK_REF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/task.h"

/* The parts of a canonical question. */
typedef struct {
    long long a, b;   /* arithmetic operands */
    int len_a, len_b; /* their digit counts */
    char op;          /* '+', '-', '*', '%' */
    char payload[64]; /* sort/rev: the string; count: the string searched */
    char letter;      /* count: the letter counted */
} ref_parts;

static inline int ref_digits(const char **p, long long *v) {
    int n = 0;
    *v = 0;
    while (**p >= '0' && **p <= '9') {
        *v = *v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    return n;
}

/* Parses canonical question q of domain d; returns 0 on success, -1 if q is malformed. */
static inline int ref_parse(task_domain d, const char *q, ref_parts *r) {
    memset(r, 0, sizeof *r);
    const char *p = q;
    switch (d) {
    case TASK_DOMAIN_ADD:
    case TASK_DOMAIN_SUB:
    case TASK_DOMAIN_MUL:
    case TASK_DOMAIN_MOD: {
        static const char ops[] = "+-*%";
        r->len_a = ref_digits(&p, &r->a);
        r->op = *p++;
        r->len_b = ref_digits(&p, &r->b);
        if (r->len_a == 0 || r->len_b == 0 || r->op != ops[d - TASK_DOMAIN_ADD] ||
            strcmp(p, "=") != 0)
            return -1;
        /* no leading zeros on multi-digit numbers */
        if ((r->len_a > 1 && q[0] == '0') || (r->len_b > 1 && q[r->len_a + 1] == '0')) return -1;
        return 0;
    }
    case TASK_DOMAIN_SORT:
    case TASK_DOMAIN_REV: {
        const char *head = d == TASK_DOMAIN_SORT ? "sort(" : "rev(";
        size_t hl = strlen(head), n = strlen(q);
        if (strncmp(q, head, hl) != 0 || n < hl + 2 || strcmp(q + n - 2, ")=") != 0) return -1;
        memcpy(r->payload, q + hl, n - hl - 2);
        r->payload[n - hl - 2] = '\0';
        return r->payload[0] ? 0 : -1;
    }
    case TASK_DOMAIN_COUNT_CHAR: {
        size_t n = strlen(q);
        if (strncmp(q, "count(", 6) != 0 || n < 10 || q[7] != ',' || strcmp(q + n - 2, ")=") != 0)
            return -1;
        r->letter = q[6];
        memcpy(r->payload, q + 8, n - 10);
        r->payload[n - 10] = '\0';
        return 0;
    }
    }
    return -1;
}

static inline int ref_cmp_char(const void *x, const void *y) {
    return *(const unsigned char *)x - *(const unsigned char *)y;
}

/* Solves parsed parts into out[64]. */
static inline void ref_solve(task_domain d, const ref_parts *r, char *out) {
    switch (d) {
    case TASK_DOMAIN_ADD:
        sprintf(out, "%lld", r->a + r->b);
        break;
    case TASK_DOMAIN_SUB:
        sprintf(out, "%lld", r->a - r->b);
        break;
    case TASK_DOMAIN_MUL:
        sprintf(out, "%lld", r->a * r->b);
        break;
    case TASK_DOMAIN_MOD:
        sprintf(out, "%lld", r->a % r->b);
        break;
    case TASK_DOMAIN_SORT:
        strcpy(out, r->payload);
        qsort(out, strlen(out), 1, ref_cmp_char);
        break;
    case TASK_DOMAIN_REV: {
        size_t n = strlen(r->payload);
        for (size_t i = 0; i < n; i++)
            out[i] = r->payload[n - 1 - i];
        out[n] = '\0';
        break;
    }
    case TASK_DOMAIN_COUNT_CHAR: {
        int c = 0;
        for (const char *s = r->payload; *s; s++)
            c += *s == r->letter;
        sprintf(out, "%d", c);
        break;
    }
    }
}

/* Number of column carries in a + b (schoolbook, right to left). */
static inline int ref_carries(long long a, long long b) {
    int carry = 0, n = 0;
    while (a || b) {
        carry = (int)(a % 10 + b % 10 + carry) >= 10;
        n += carry;
        a /= 10;
        b /= 10;
    }
    return n;
}

/* Levenshtein distance of two short strings (< 128 bytes). */
static inline int ref_levenshtein(const char *s, const char *t) {
    size_t n = strlen(s), m = strlen(t);
    int prev[128], cur[128];
    for (size_t j = 0; j <= m; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int sub = prev[j - 1] + (s[i - 1] != t[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (m + 1));
    }
    return prev[m];
}

/* ---- an open-addressing set of strings (tests only; aborts when full) ------------- */

typedef struct {
    char (*keys)[TASK_QUESTION_CAP];
    unsigned char *used;
    size_t cap, size;
} ref_set;

static inline uint64_t ref_fnv(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static inline void ref_set_init(ref_set *set, size_t cap) {
    set->keys = calloc(cap, sizeof *set->keys);
    set->used = calloc(cap, 1);
    set->cap = cap;
    set->size = 0;
    if (!set->keys || !set->used) abort();
}

static inline void ref_set_free(ref_set *set) {
    free(set->keys);
    free(set->used);
}

/* Inserts s; returns 1 when it was new. */
static inline int ref_set_add(ref_set *set, const char *s) {
    if (2 * (set->size + 1) > set->cap) abort();
    size_t i = ref_fnv(s) % set->cap;
    while (set->used[i]) {
        if (strcmp(set->keys[i], s) == 0) return 0;
        i = (i + 1) % set->cap;
    }
    set->used[i] = 1;
    strcpy(set->keys[i], s);
    set->size++;
    return 1;
}

static inline int ref_set_has(const ref_set *set, const char *s) {
    size_t i = ref_fnv(s) % set->cap;
    while (set->used[i]) {
        if (strcmp(set->keys[i], s) == 0) return 1;
        i = (i + 1) % set->cap;
    }
    return 0;
}

/* Iterates over every valid (split, severity) pair. */
#define REF_FOR_SPLITS(s, sev)                                                                     \
    for (int s = 0; s < TASK_N_SPLITS; s++)                                                        \
        for (int sev = task_split_is_ood(s) ? 1 : 0;                                               \
             sev <= (task_split_is_ood(s) ? TASK_SEVERITY_MAX : 0); sev++)

#endif
