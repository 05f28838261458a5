/* Minimal assertion helpers for the test executables (one CTest test each).
 * A failed CHECK prints file:line and the expression, and the test exits 1 at the end. */
#ifndef CAOPD_TESTS_CHECK_H
#define CAOPD_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        CHECK_MSG(check_a_ == check_b_, "%s = %lld, %s = %lld", #a, check_a_, #b, check_b_);       \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        CHECK_MSG(check_a_ &&check_b_ &&strcmp(check_a_, check_b_) == 0,                           \
                  "\n  got:      \"%s\"\n  expected: \"%s\"", check_a_ ? check_a_ : "(null)",      \
                  check_b_ ? check_b_ : "(null)");                                                 \
    } while (0)

/* |a - b| <= tol, and neither is NaN. */
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        CHECK_MSG(fabs(check_a_ - check_b_) <= (tol) && !isnan(check_a_) && !isnan(check_b_),      \
                  "%s = %.10g, %s = %.10g, tol %g", #a, check_a_, #b, check_b_, (double)(tol));    \
    } while (0)

/* Call at the end of main: prints a summary line and returns the exit status: 1 when a check
 * failed or when none ran. */
static inline int check_report(const char *name) {
    fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count, check_failures);
    if (check_count == 0) { /* a test that checked nothing has not passed */
        fprintf(stderr, "%s: no check ran\n", name);
        return 1;
    }
    return check_failures ? 1 : 0;
}

#endif
