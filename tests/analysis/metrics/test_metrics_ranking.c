/* SPR and AUROC: hand-computed cases with ties, one-class sets, and the O(n log n)
 * implementation against an O(n^2) pair-counting reference on random data. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define TOL 1e-15     /* hand values */
#define REF_TOL 1e-12 /* against the O(n^2) reference (both divide exact integer counts) */

/* O(n^2) reference: count every (correct, incorrect) pair. */
static void ranking_ref(const double *c, const uint8_t *y, size_t n, double *spr, double *auroc) {
    double strict = 0, ties = 0, pairs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!y[i]) continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j]) continue;
            pairs += 1;
            strict += c[i] > c[j];
            ties += c[i] == c[j];
        }
    }
    *spr = pairs > 0 ? strict / pairs : 0.0;
    *auroc = pairs > 0 ? (strict + 0.5 * ties) / pairs : NAN;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}
static double rng_unit(void) {
    return (double)(rng_next() >> 11) / 9007199254740992.0; /* [0, 1) */
}

static void test_hand(void) {
    double spr, auroc;
    /* conf 0.5 0.5 0.8 0.2, correct 1 0 1 0: positives {0.5, 0.8}, negatives {0.5, 0.2}.
     * pairs: (0.5,0.5) tie, (0.5,0.2) >, (0.8,0.5) >, (0.8,0.2) >
     * SPR = 3/4 = 0.75; AUROC = (3 + 0.5) / 4 = 0.875 */
    const double c1[] = {0.5, 0.5, 0.8, 0.2};
    const uint8_t y1[] = {1, 0, 1, 0};
    CHECK_EQ_INT(metrics_ranking(c1, y1, 4, &spr, &auroc), METRICS_OK);
    CHECK_NEAR(spr, 0.75, TOL);
    CHECK_NEAR(auroc, 0.875, TOL);

    /* Everything tied: no strict pair, every pair a tie: SPR 0, AUROC 0.5. */
    const double c2[] = {0.7, 0.7, 0.7};
    const uint8_t y2[] = {1, 0, 1};
    CHECK_EQ_INT(metrics_ranking(c2, y2, 3, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0);
    CHECK_NEAR(auroc, 0.5, TOL);

    /* -0.0 and 0.0 are equal confidences: a tie. */
    const double c3[] = {0.0, -0.0};
    const uint8_t y3[] = {1, 0};
    CHECK_EQ_INT(metrics_ranking(c3, y3, 2, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0);
    CHECK_NEAR(auroc, 0.5, TOL);

    /* Perfect and inverted ranking. */
    const double c4[] = {0.9, 0.1, 0.8, 0.2, 0.3};
    const uint8_t y4[] = {1, 0, 1, 0, 0};
    const uint8_t y5[] = {0, 1, 0, 1, 1};
    CHECK_EQ_INT(metrics_ranking(c4, y4, 5, &spr, &auroc), METRICS_OK);
    CHECK(spr == 1.0 && auroc == 1.0);
    CHECK_EQ_INT(metrics_ranking(c4, y5, 5, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0 && auroc == 0.0);

    /* conf 0.1 0.4 0.35 0.8 0.4 0.4, correct 0 0 1 1 1 0
     * positives {0.35, 0.8, 0.4}, negatives {0.1, 0.4, 0.4}, 9 pairs:
     * 0.35 > 0.1 (1 strict); 0.8 > all three (3); 0.4 > 0.1 (1) and ties 0.4, 0.4 (2 ties)
     * SPR = 5/9, AUROC = (5 + 1) / 9 = 2/3 */
    const double c6[] = {0.1, 0.4, 0.35, 0.8, 0.4, 0.4};
    const uint8_t y6[] = {0, 0, 1, 1, 1, 0};
    CHECK_EQ_INT(metrics_ranking(c6, y6, 6, &spr, &auroc), METRICS_OK);
    CHECK_NEAR(spr, 5.0 / 9.0, TOL);
    CHECK_NEAR(auroc, 2.0 / 3.0, TOL);
    /* either output may be NULL */
    spr = -1;
    CHECK_EQ_INT(metrics_ranking(c6, y6, 6, &spr, NULL), METRICS_OK);
    CHECK_NEAR(spr, 5.0 / 9.0, TOL);
    auroc = -1;
    CHECK_EQ_INT(metrics_ranking(c6, y6, 6, NULL, &auroc), METRICS_OK);
    CHECK_NEAR(auroc, 2.0 / 3.0, TOL);

    /* One class or no samples: SPR 0 (reference convention), AUROC NaN (undefined). */
    const uint8_t all1[] = {1, 1, 1, 1, 1, 1};
    CHECK_EQ_INT(metrics_ranking(c6, all1, 6, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0 && isnan(auroc));
    CHECK_EQ_INT(metrics_ranking(c6, all1, 1, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0 && isnan(auroc));
    spr = auroc = -1;
    CHECK_EQ_INT(metrics_ranking(NULL, NULL, 0, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0 && isnan(auroc));
}

/* Random sets against the reference: coarse grids (many ties), continuous values, and
 * values outside [0, 1]. */
static void test_random_vs_reference(void) {
    enum { MAXN = 3000 };
    static double c[MAXN];
    static uint8_t y[MAXN];
    int mismatches = 0;
    for (int trial = 0; trial < 400; trial++) {
        size_t n = trial < 300 ? 1 + rng_next() % 200 : 1 + rng_next() % MAXN;
        int kind = trial % 4;
        double p_correct = rng_unit();
        for (size_t i = 0; i < n; i++) {
            double u = rng_unit();
            if (kind == 0)
                c[i] = (double)(rng_next() % 21) / 20.0; /* k/20: heavy ties */
            else if (kind == 1)
                c[i] = (double)(rng_next() % 101) / 100.0; /* k/100 */
            else if (kind == 2)
                c[i] = u; /* continuous */
            else
                c[i] = 3.0 * u - 1.0;                        /* outside [0, 1] too */
            y[i] = rng_unit() < (kind == 2 ? u : p_correct); /* kind 2: informative */
        }
        double spr, auroc, rspr, rauroc;
        CHECK_EQ_INT(metrics_ranking(c, y, n, &spr, &auroc), METRICS_OK);
        ranking_ref(c, y, n, &rspr, &rauroc);
        int ok = fabs(spr - rspr) <= REF_TOL &&
                 (isnan(rauroc) ? isnan(auroc) : fabs(auroc - rauroc) <= REF_TOL);
        if (!ok && mismatches++ < 5)
            fprintf(stderr, "trial %d n %zu: spr %.17g ref %.17g, auroc %.17g ref %.17g\n", trial,
                    n, spr, rspr, auroc, rauroc);
        CHECK(ok);
    }
    CHECK_EQ_INT(mismatches, 0);
}

int main(void) {
    test_hand();
    test_random_vs_reference();
    return check_report("test_metrics_ranking");
}
