/* metrics_run_compute: agrees with the single-metric functions, fills every field, follows
 * the n == 0 / NULL-flags / NaN conventions, and feeds CL matrices through metrics_run_get. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define TOL 1e-15

static uint64_t rng_state = 0x243f6a8885a308d3u;
static double rng_unit(void) { /* xorshift64*, [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1du) >> 11) / 9007199254740992.0;
}

static void test_agrees_with_parts(void) {
    enum { N = 257 };
    double c[N];
    uint8_t y[N], f[N];
    for (int i = 0; i < N; i++) {
        c[i] = floor(rng_unit() * 101.0) / 100.0; /* two-decimal confidences, ties */
        y[i] = rng_unit() < c[i] * c[i];
        f[i] = rng_unit() < 0.07;
    }
    metrics_run r;
    CHECK_EQ_INT(metrics_run_compute(c, y, f, N, &r), METRICS_OK);
    size_t nc = 0, nf = 0;
    for (int i = 0; i < N; i++) {
        nc += y[i];
        nf += f[i];
    }
    CHECK_EQ_INT(r.n, N);
    CHECK_EQ_INT(r.n_correct, nc);
    CHECK_EQ_INT(r.n_format_fail, nf);
    CHECK(r.accuracy == metrics_accuracy(y, N));
    CHECK(r.mean_conf == metrics_mean_conf(c, N));
    CHECK(r.brier == metrics_brier(c, y, N));
    CHECK(r.ocg == metrics_ocg(c, y, N));
    CHECK(r.ece == metrics_ece(c, y, N));
    CHECK(r.mce == metrics_mce(c, y, N));
    CHECK(r.format_fail_rate == metrics_format_fail_rate(f, N));
    double em, spr, auroc;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, N, &em), METRICS_OK);
    CHECK_EQ_INT(metrics_ranking(c, y, N, &spr, &auroc), METRICS_OK);
    CHECK(r.ece_equal_mass == em);
    CHECK(r.spr == spr);
    CHECK(r.auroc == auroc);
    metrics_bin b[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_width(c, y, N, b), METRICS_OK);
    CHECK(memcmp(b, r.bins, sizeof b) == 0); /* same code path: bit-identical */
    size_t total = 0;
    for (int k = 0; k < METRICS_NBINS; k++) {
        CHECK_EQ_INT(r.bins[k].count, b[k].count);
        total += r.bins[k].count;
    }
    CHECK_EQ_INT(total, N);
    /* sanity of the values themselves */
    CHECK(r.ece >= 0 && r.ece <= 1 && r.mce >= r.ece);
    CHECK(r.auroc >= r.spr);
    CHECK_NEAR(r.ocg, r.mean_conf - r.accuracy, TOL);

    /* fields by enum and name */
    for (int k = 0; k < METRICS_FIELD_COUNT; k++) {
        const char *name = metrics_field_name((metrics_field)k);
        CHECK(name != NULL && name[0] != '\0');
        for (int m = 0; m < k; m++)
            CHECK(strcmp(name, metrics_field_name((metrics_field)m)) != 0);
    }
    CHECK(metrics_field_name(METRICS_FIELD_COUNT) == NULL);
    CHECK_EQ_STR(metrics_field_name(METRICS_FIELD_ECE_EQUAL_MASS), "ece_equal_mass");
    CHECK(metrics_run_get(&r, METRICS_FIELD_ACCURACY) == r.accuracy);
    CHECK(metrics_run_get(&r, METRICS_FIELD_MEAN_CONF) == r.mean_conf);
    CHECK(metrics_run_get(&r, METRICS_FIELD_BRIER) == r.brier);
    CHECK(metrics_run_get(&r, METRICS_FIELD_OCG) == r.ocg);
    CHECK(metrics_run_get(&r, METRICS_FIELD_ECE) == r.ece);
    CHECK(metrics_run_get(&r, METRICS_FIELD_MCE) == r.mce);
    CHECK(metrics_run_get(&r, METRICS_FIELD_ECE_EQUAL_MASS) == r.ece_equal_mass);
    CHECK(metrics_run_get(&r, METRICS_FIELD_SPR) == r.spr);
    CHECK(metrics_run_get(&r, METRICS_FIELD_AUROC) == r.auroc);
    CHECK(metrics_run_get(&r, METRICS_FIELD_FORMAT_FAIL_RATE) == r.format_fail_rate);
    CHECK(isnan(metrics_run_get(&r, METRICS_FIELD_COUNT)));
    CHECK(isnan(metrics_run_get(NULL, METRICS_FIELD_ECE)));
}

static void test_conventions(void) {
    metrics_run r;
    /* n == 0: counts 0, SPR 0, everything else NaN. */
    CHECK_EQ_INT(metrics_run_compute(NULL, NULL, NULL, 0, &r), METRICS_OK);
    CHECK(r.n == 0 && r.n_correct == 0 && r.n_format_fail == 0);
    CHECK(r.spr == 0.0);
    CHECK(isnan(r.accuracy) && isnan(r.mean_conf) && isnan(r.brier) && isnan(r.ocg));
    CHECK(isnan(r.ece) && isnan(r.mce) && isnan(r.ece_equal_mass) && isnan(r.auroc));
    CHECK(isnan(r.format_fail_rate));
    for (int k = 0; k < METRICS_NBINS; k++)
        CHECK(r.bins[k].count == 0 && isnan(r.bins[k].accuracy));

    /* No format flags: rate NaN (unknown), count 0. Single sample at 0.3, correct:
     * bin 2; Brier 0.49; ECE 0.7; SPR 0 and AUROC NaN (one class). */
    const double c[] = {0.3};
    const uint8_t y[] = {1};
    CHECK_EQ_INT(metrics_run_compute(c, y, NULL, 1, &r), METRICS_OK);
    CHECK(isnan(r.format_fail_rate) && r.n_format_fail == 0);
    CHECK_EQ_INT(r.bins[2].count, 1);
    CHECK_NEAR(r.brier, 0.49, TOL);
    CHECK_NEAR(r.ece, 0.7, TOL);
    CHECK_NEAR(r.ece_equal_mass, 0.7, TOL);
    CHECK(r.spr == 0.0 && isnan(r.auroc));

    /* Failures leave *out untouched. */
    const double cn[] = {0.3, NAN};
    const uint8_t yn[] = {1, 0};
    metrics_run keep;
    memset(&r, 0x5a, sizeof r);
    memcpy(&keep, &r, sizeof r);
    CHECK_EQ_INT(metrics_run_compute(cn, yn, NULL, 2, &r), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_run_compute(NULL, yn, NULL, 2, &r), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_run_compute(cn, NULL, NULL, 1, &r), METRICS_ERR_ARG);
    CHECK(memcmp(&r, &keep, sizeof r) == 0);
    CHECK_EQ_INT(metrics_run_compute(cn, yn, NULL, 1, NULL), METRICS_ERR_ARG);
}

static void test_retention_matrix(void) {
    /* T = 2 runs, one (stage, domain) cell each, every cell a single sample so that
     * ECE = |c - y|:       d1 (y=1)      d2 (y=1)
     *   stage 0        c 0.50 -> 0.50   c 0.40 -> 0.60
     *   stage 1        c 0.90 -> 0.10   c 0.70 -> 0.30
     *   stage 2        c 0.60 -> 0.40   c 0.80 -> 0.20
     * ECE matrix: ACC = (0.4 + 0.2) / 2 = 0.3; BWT = 0.4 - 0.1 = 0.3 (d1's ECE grew);
     * FWT = 0.3 - 0.6 = -0.3; forgetting = 0.1 - 0.4 = -0.3 */
    const double conf[3][2] = {{0.5, 0.4}, {0.9, 0.7}, {0.6, 0.8}};
    const uint8_t one[] = {1};
    metrics_run runs[3][2];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            CHECK_EQ_INT(metrics_run_compute(&conf[i][j], one, NULL, 1, &runs[i][j]), METRICS_OK);
    double R[6];
    for (size_t i = 0; i <= 2; i++)
        for (size_t j = 1; j <= 2; j++)
            R[metrics_cl_index(2, i, j)] = metrics_run_get(&runs[i][j - 1], METRICS_FIELD_ECE);
    metrics_cl s = metrics_cl_compute(R, 2);
    CHECK_NEAR(s.acc, 0.3, TOL);
    CHECK_NEAR(s.bwt, 0.3, TOL);
    CHECK_NEAR(s.fwt, -0.3, TOL);
    CHECK_NEAR(s.forgetting, -0.3, TOL);
}

/* The readouts and the stored names of each field under them (docs/metrics.md "Readouts"). */
static void test_readout_keys(void) {
    CHECK_EQ_STR(metrics_readout_name(METRICS_READOUT_GREEDY), "greedy");
    CHECK_EQ_STR(metrics_readout_name(METRICS_READOUT_EXPECTED), "expected");
    CHECK(metrics_readout_name(METRICS_READOUT_COUNT) == NULL);
    char buf[40];
    CHECK_EQ_STR(metrics_field_key(METRICS_FIELD_ECE, METRICS_READOUT_GREEDY, buf, sizeof buf),
                 "ece_greedy");
    CHECK_EQ_STR(
        metrics_field_key(METRICS_FIELD_ECE_EQUAL_MASS, METRICS_READOUT_EXPECTED, buf, sizeof buf),
        "ece_equal_mass_expected");
    CHECK_EQ_STR(
        metrics_field_key(METRICS_FIELD_ACCURACY, METRICS_READOUT_EXPECTED, buf, sizeof buf),
        "accuracy");
    CHECK_EQ_STR(
        metrics_field_key(METRICS_FIELD_FORMAT_FAIL_RATE, METRICS_READOUT_GREEDY, buf, sizeof buf),
        "format_fail_rate");
    CHECK(metrics_field_key(METRICS_FIELD_COUNT, METRICS_READOUT_GREEDY, buf, sizeof buf) == NULL);
    CHECK(metrics_field_key(METRICS_FIELD_ECE, METRICS_READOUT_COUNT, buf, sizeof buf) == NULL);
    CHECK(metrics_field_key(METRICS_FIELD_MEAN_CONF, METRICS_READOUT_EXPECTED, buf, 8) ==
          NULL); /* too small */
    /* 2 readout-free fields, 8 per readout; all keys distinct */
    int per = 0;
    char keys[2 * METRICS_FIELD_COUNT][40];
    int nk = 0;
    for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
        per += metrics_field_per_readout((metrics_field)f);
        for (int q = 0; q < METRICS_READOUT_COUNT; q++)
            if (q == 0 || metrics_field_per_readout((metrics_field)f))
                metrics_field_key((metrics_field)f, (metrics_readout)q, keys[nk++], sizeof keys[0]);
    }
    CHECK_EQ_INT(per, METRICS_FIELD_COUNT - 2);
    CHECK_EQ_INT(nk, 2 + 2 * (METRICS_FIELD_COUNT - 2));
    for (int a = 0; a < nk; a++)
        for (int b = 0; b < a; b++)
            CHECK_MSG(strcmp(keys[a], keys[b]) != 0, "%s twice", keys[a]);
    CHECK(!metrics_field_per_readout(METRICS_FIELD_ACCURACY) &&
          !metrics_field_per_readout(METRICS_FIELD_FORMAT_FAIL_RATE));
    CHECK(metrics_field_per_readout(METRICS_FIELD_AUROC) &&
          !metrics_field_per_readout(METRICS_FIELD_COUNT));
}

int main(void) {
    test_readout_keys();
    test_agrees_with_parts();
    test_conventions();
    test_retention_matrix();
    return check_report("test_metrics_run");
}
