/* Calibration metrics against hand-computed values: bin edges exactly as numpy's linspace
 * makes them, ECE/MCE/Brier/OCG/accuracy, equal-mass bins (remainders and ties), one-class
 * sets, a single sample, n == 0, NaN and NULL inputs. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"

#include <math.h>
#include <string.h>

#define TOL 1e-15 /* hand values: a few roundings of numbers in [0, 2] */

static void test_edges(void) {
    /* numpy linspace(0, 1, 11) computes i * 0.1: these are its exact values. */
    CHECK(metrics_bin_edge(0) == 0.0);
    CHECK(metrics_bin_edge(1) == 0.1);
    CHECK(metrics_bin_edge(3) == 0.30000000000000004);
    CHECK(metrics_bin_edge(3) != 0.3);
    CHECK(metrics_bin_edge(6) == 0.6000000000000001);
    CHECK(metrics_bin_edge(7) == 0.7000000000000001);
    CHECK(metrics_bin_edge(9) == 0.9);
    CHECK(metrics_bin_edge(10) == 1.0);
    CHECK(isnan(metrics_bin_edge(-1)));
    CHECK(isnan(metrics_bin_edge(11)));

    /* A value equal to an edge opens that edge's bin, except that 0.3, 0.6, 0.7 lie below
     * their (rounded-up) edges and so stay one bin lower. */
    CHECK_EQ_INT(metrics_bin_index(0.0), 0);
    CHECK_EQ_INT(metrics_bin_index(nextafter(0.1, 0.0)), 0);
    CHECK_EQ_INT(metrics_bin_index(0.1), 1);
    CHECK_EQ_INT(metrics_bin_index(0.2), 2);
    CHECK_EQ_INT(metrics_bin_index(0.3), 2); /* 0.3 < 0.30000000000000004 */
    CHECK_EQ_INT(metrics_bin_index(0.30000000000000004), 3);
    CHECK_EQ_INT(metrics_bin_index(0.4), 4);
    CHECK_EQ_INT(metrics_bin_index(0.5), 5);
    CHECK_EQ_INT(metrics_bin_index(0.6), 5); /* 0.6 < 0.6000000000000001 */
    CHECK_EQ_INT(metrics_bin_index(0.7), 6); /* 0.7 < 0.7000000000000001 */
    CHECK_EQ_INT(metrics_bin_index(0.7000000000000001), 7);
    CHECK_EQ_INT(metrics_bin_index(0.8), 8);
    CHECK_EQ_INT(metrics_bin_index(0.9), 9);
    CHECK_EQ_INT(metrics_bin_index(1.0), 9); /* the last bin is closed on the right */
    CHECK_EQ_INT(metrics_bin_index(1.5), 9); /* outer edges open */
    CHECK_EQ_INT(metrics_bin_index(INFINITY), 9);
    CHECK_EQ_INT(metrics_bin_index(-0.1), 0);
    CHECK_EQ_INT(metrics_bin_index(-0.0), 0);
    CHECK_EQ_INT(metrics_bin_index(-INFINITY), 0);
    CHECK_EQ_INT(metrics_bin_index(NAN), -1);
    /* Parsed two-decimal values are k / 100 and k / 20 in double: same bins. */
    CHECK_EQ_INT(metrics_bin_index(6.0 / 20.0), 2);
    CHECK_EQ_INT(metrics_bin_index(14.0 / 20.0), 6);
    CHECK_EQ_INT(metrics_bin_index(30.0 / 100.0), 2);
    CHECK_EQ_INT(metrics_bin_index(60.0 / 100.0), 5);
    CHECK_EQ_INT(metrics_bin_index(70.0 / 100.0), 6);
}

static void test_mixed_set(void) {
    /* conf:     0.3  0.25 0.7  0.65 1.0  0.95 0.05 -0.2
     * correct:  0    1    1    0    1    0    0    1
     * bins:     2    2    6    6    9    9    0    0
     * bin 0: {0.05:0, -0.2:1}  mean -0.075, acc 0.5, gap 0.575
     * bin 2: {0.3:0, 0.25:1}   mean 0.275,  acc 0.5, gap 0.225
     * bin 6: {0.7:1, 0.65:0}   mean 0.675,  acc 0.5, gap 0.175
     * bin 9: {1.0:1, 0.95:0}   mean 0.975,  acc 0.5, gap 0.475
     * ECE = 2/8 * (0.575 + 0.225 + 0.175 + 0.475) = 2.9 / 8 = 0.3625; MCE = 0.575
     * (binning 0.3, 0.7 and 1.0 one bin up, as a naive rule would, gives 0.5125)
     * Brier = (0.09 + 0.5625 + 0.09 + 0.4225 + 0 + 0.9025 + 0.0025 + 1.44) / 8 = 3.51 / 8
     *       = 0.43875
     * mean conf = 3.7 / 8 = 0.4625, accuracy = 0.5, OCG = -0.0375
     * Equal-mass, n = 8: q = 0, r = 8, so chunks 0..7 hold one sample each in sorted order
     * (-0.2, 0.05, 0.25, 0.3, 0.65, 0.7, 0.95, 1.0) and chunks 8, 9 are empty:
     * ECE_em = mean |c - y| = (0.3 + 0.75 + 0.3 + 0.65 + 0 + 0.95 + 0.05 + 1.2) / 8 = 0.525 */
    const double c[] = {0.3, 0.25, 0.7, 0.65, 1.0, 0.95, 0.05, -0.2};
    const uint8_t y[] = {0, 1, 1, 0, 1, 0, 0, 1};
    size_t n = 8;
    CHECK_NEAR(metrics_ece(c, y, n), 0.3625, TOL);
    CHECK_NEAR(metrics_mce(c, y, n), 0.575, TOL);
    CHECK_NEAR(metrics_brier(c, y, n), 0.43875, TOL);
    CHECK_NEAR(metrics_mean_conf(c, n), 0.4625, TOL);
    CHECK_NEAR(metrics_accuracy(y, n), 0.5, TOL);
    CHECK_NEAR(metrics_ocg(c, y, n), -0.0375, TOL);
    double em = -1.0;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, n, &em), METRICS_OK);
    CHECK_NEAR(em, 0.525, TOL);

    metrics_bin b[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_width(c, y, n, b), METRICS_OK);
    const size_t counts[METRICS_NBINS] = {2, 0, 2, 0, 0, 0, 2, 0, 0, 2};
    for (int k = 0; k < METRICS_NBINS; k++) {
        CHECK_EQ_INT(b[k].count, counts[k]);
        CHECK(b[k].lo == metrics_bin_edge(k) && b[k].hi == metrics_bin_edge(k + 1));
        if (counts[k] == 0) CHECK(isnan(b[k].mean_conf) && isnan(b[k].accuracy));
    }
    CHECK_NEAR(b[0].mean_conf, -0.075, TOL);
    CHECK_NEAR(b[2].mean_conf, 0.275, TOL);
    CHECK_NEAR(b[6].mean_conf, 0.675, TOL);
    CHECK_NEAR(b[9].mean_conf, 0.975, TOL);
    CHECK_NEAR(b[0].accuracy, 0.5, 0);
    CHECK_NEAR(b[9].accuracy, 0.5, 0);

    CHECK_EQ_INT(metrics_bins_equal_mass(c, y, n, b), METRICS_OK);
    for (int k = 0; k < 8; k++)
        CHECK_EQ_INT(b[k].count, 1);
    CHECK(b[0].lo == -0.2 && b[0].hi == -0.2 && b[0].accuracy == 1.0);
    CHECK(b[3].lo == 0.3 && b[3].mean_conf == 0.3 && b[3].accuracy == 0.0);
    CHECK(b[7].lo == 1.0 && b[7].accuracy == 1.0);
    CHECK(b[8].count == 0 && b[9].count == 0);
    CHECK(isnan(b[8].lo) && isnan(b[9].hi) && isnan(b[9].mean_conf) && isnan(b[9].accuracy));
}

static void test_equal_mass_remainder(void) {
    /* n = 12: q = 1, r = 2, so chunks 0 and 1 hold two samples, chunks 2..9 one.
     * Sorted (conf:correct): 0.00:0 0.05:1 | 0.10:0 0.20:0 | 0.3:1 | 0.4:0 | 0.5:1 | 0.6:1 |
     *                        0.7:0 | 0.8:1 | 0.9:1 | 1.0:1
     * gaps: |0.025-0.5| = 0.475 (x2), |0.15-0| = 0.15 (x2), 0.7, 0.4, 0.5, 0.4, 0.7, 0.2, 0.1, 0
     * ECE_em = (0.95 + 0.3 + 3.0) / 12 = 4.25 / 12
     * (putting the longer chunks last, instead of first, would give 3.85 / 12)
     * The input is given in reverse order to exercise the sort. */
    const double c[] = {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.20, 0.10, 0.05, 0.00};
    const uint8_t y[] = {1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0};
    double em = -1.0;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, 12, &em), METRICS_OK);
    CHECK_NEAR(em, 4.25 / 12.0, TOL);
    metrics_bin b[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_mass(c, y, 12, b), METRICS_OK);
    CHECK_EQ_INT(b[0].count, 2);
    CHECK_EQ_INT(b[1].count, 2);
    for (int k = 2; k < METRICS_NBINS; k++)
        CHECK_EQ_INT(b[k].count, 1);
    CHECK(b[0].lo == 0.0 && b[0].hi == 0.05);
    CHECK_NEAR(b[0].mean_conf, 0.025, TOL);
    CHECK(b[0].accuracy == 0.5);
    CHECK(b[1].lo == 0.10 && b[1].hi == 0.20 && b[1].accuracy == 0.0);
    CHECK(b[9].lo == 1.0 && b[9].hi == 1.0);
}

static void test_equal_mass_ties(void) {
    /* Eleven samples all at 0.5: q = 1, r = 1, chunk 0 holds sorted positions 0 and 1, and a
     * stable sort keeps the sample order among ties.
     * Only sample 0 correct: chunk 0 = {0:1, 1:0} gap 0; chunks 1..9 gap 0.5 each:
     *   ECE_em = 9 * 0.5 / 11 = 4.5 / 11.
     * Only sample 10 correct: chunk 0 = {0:0, 1:0} gap 0.5 (x2 samples); chunks 1..8 gap 0.5;
     *   chunk 9 = {10:1} gap 0.5: ECE_em = (1 + 4 + 0.5) / 11 = 0.5.
     * Equal-width ECE is the same for both: one bin, |0.5 - 1/11|. */
    double c[11];
    uint8_t y[11] = {0};
    for (int i = 0; i < 11; i++)
        c[i] = 0.5;
    double em = -1.0;
    y[0] = 1;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, 11, &em), METRICS_OK);
    CHECK_NEAR(em, 4.5 / 11.0, TOL);
    CHECK_NEAR(metrics_ece(c, y, 11), 0.5 - 1.0 / 11.0, TOL);
    y[0] = 0;
    y[10] = 1;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, 11, &em), METRICS_OK);
    CHECK_NEAR(em, 0.5, TOL);
    CHECK_NEAR(metrics_ece(c, y, 11), 0.5 - 1.0 / 11.0, TOL);
}

static void test_all_correct_all_wrong(void) {
    /* All correct: conf 0.9 0.8 1.0 0.5 (bins 9 8 9 5).
     * Brier = (0.01 + 0.04 + 0 + 0.25) / 4 = 0.075; OCG = 0.8 - 1 = -0.2
     * bin 9 mean 0.95 gap 0.05 (x2), bin 8 gap 0.2, bin 5 gap 0.5:
     * ECE = (0.1 + 0.2 + 0.5) / 4 = 0.2 (= |OCG|, all gaps on one side); MCE = 0.5 */
    const double c1[] = {0.9, 0.8, 1.0, 0.5};
    const uint8_t y1[] = {1, 1, 1, 1};
    CHECK_NEAR(metrics_accuracy(y1, 4), 1.0, 0);
    CHECK_NEAR(metrics_brier(c1, y1, 4), 0.075, TOL);
    CHECK_NEAR(metrics_ocg(c1, y1, 4), -0.2, TOL);
    CHECK_NEAR(metrics_ece(c1, y1, 4), 0.2, TOL);
    CHECK_NEAR(metrics_mce(c1, y1, 4), 0.5, TOL);
    double spr = -1, auroc = -1;
    CHECK_EQ_INT(metrics_ranking(c1, y1, 4, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0);
    CHECK(isnan(auroc));

    /* All wrong: conf 0.2 0.0 0.6 (bins 2 0 5).
     * Brier = (0.04 + 0 + 0.36) / 3 = 0.4 / 3; OCG = 0.8 / 3
     * gaps 0.2, 0, 0.6: ECE = 0.8 / 3, MCE = 0.6 */
    const double c0[] = {0.2, 0.0, 0.6};
    const uint8_t y0[] = {0, 0, 0};
    CHECK_NEAR(metrics_accuracy(y0, 3), 0.0, 0);
    CHECK_NEAR(metrics_brier(c0, y0, 3), 0.4 / 3.0, TOL);
    CHECK_NEAR(metrics_ocg(c0, y0, 3), 0.8 / 3.0, TOL);
    CHECK_NEAR(metrics_ece(c0, y0, 3), 0.8 / 3.0, TOL);
    CHECK_NEAR(metrics_mce(c0, y0, 3), 0.6, TOL);
    spr = -1;
    auroc = -1;
    CHECK_EQ_INT(metrics_ranking(c0, y0, 3, &spr, &auroc), METRICS_OK);
    CHECK(spr == 0.0);
    CHECK(isnan(auroc));
}

static void test_single_sample(void) {
    /* conf 0.3, correct: bin 2 (not 3), Brier 0.49, OCG -0.7, ECE = MCE = ECE_em = 0.7 */
    const double c[] = {0.3};
    const uint8_t y[] = {1};
    CHECK_NEAR(metrics_brier(c, y, 1), 0.49, TOL);
    CHECK_NEAR(metrics_ocg(c, y, 1), -0.7, TOL);
    CHECK_NEAR(metrics_ece(c, y, 1), 0.7, TOL);
    CHECK_NEAR(metrics_mce(c, y, 1), 0.7, TOL);
    double em = -1;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, 1, &em), METRICS_OK);
    CHECK_NEAR(em, 0.7, TOL);
    metrics_bin b[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_width(c, y, 1, b), METRICS_OK);
    CHECK_EQ_INT(b[2].count, 1);
    CHECK_EQ_INT(b[3].count, 0);
    CHECK_EQ_INT(metrics_bins_equal_mass(c, y, 1, b), METRICS_OK);
    CHECK_EQ_INT(b[0].count, 1);
    CHECK_EQ_INT(b[1].count, 0);
}

static void test_empty_and_invalid(void) {
    /* n == 0: every mean is undefined -> NaN; nothing is read, so NULL arrays are fine. */
    CHECK(isnan(metrics_accuracy(NULL, 0)));
    CHECK(isnan(metrics_mean_conf(NULL, 0)));
    CHECK(isnan(metrics_brier(NULL, NULL, 0)));
    CHECK(isnan(metrics_ocg(NULL, NULL, 0)));
    CHECK(isnan(metrics_ece(NULL, NULL, 0)));
    CHECK(isnan(metrics_mce(NULL, NULL, 0)));
    CHECK(isnan(metrics_format_fail_rate(NULL, 0)));
    double em = 0;
    CHECK_EQ_INT(metrics_ece_equal_mass(NULL, NULL, 0, &em), METRICS_OK);
    CHECK(isnan(em));
    metrics_bin b[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_width(NULL, NULL, 0, b), METRICS_OK);
    for (int k = 0; k < METRICS_NBINS; k++)
        CHECK(b[k].count == 0 && isnan(b[k].mean_conf) && isnan(b[k].accuracy));
    CHECK_EQ_INT(metrics_bins_equal_mass(NULL, NULL, 0, b), METRICS_OK);
    for (int k = 0; k < METRICS_NBINS; k++)
        CHECK(b[k].count == 0 && isnan(b[k].lo) && isnan(b[k].mean_conf));

    /* NULL arrays with n > 0: NaN from double functions, METRICS_ERR_ARG from the others,
     * with the outputs untouched. */
    const double c[] = {0.2, NAN, 0.9};
    const uint8_t y[] = {1, 0, 1};
    CHECK(isnan(metrics_brier(NULL, y, 3)));
    CHECK(isnan(metrics_brier(c, NULL, 3)));
    CHECK(isnan(metrics_accuracy(NULL, 3)));
    CHECK(isnan(metrics_ece(c + 2, NULL, 1)));
    CHECK_EQ_INT(metrics_bins_equal_width(NULL, y, 3, b), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_bins_equal_width(c + 2, y, 1, NULL), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_ece_equal_mass(c + 2, y, 1, NULL), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_ranking(NULL, y, 3, &em, NULL), METRICS_ERR_ARG);

    /* A NaN confidence: the confidence metrics are NaN, the status functions refuse. */
    CHECK(isnan(metrics_brier(c, y, 3)));
    CHECK(isnan(metrics_ocg(c, y, 3)));
    CHECK(isnan(metrics_ece(c, y, 3)));
    CHECK(isnan(metrics_mce(c, y, 3)));
    CHECK_NEAR(metrics_accuracy(y, 3), 2.0 / 3.0, TOL);
    metrics_bin keep[METRICS_NBINS];
    memset(b, 0x5a, sizeof b);
    memcpy(keep, b, sizeof b);
    CHECK_EQ_INT(metrics_bins_equal_width(c, y, 3, b), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_bins_equal_mass(c, y, 3, b), METRICS_ERR_ARG);
    CHECK(memcmp(b, keep, sizeof b) == 0);
    em = 42.0;
    double auroc = 42.0;
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, 3, &em), METRICS_ERR_ARG);
    CHECK_EQ_INT(metrics_ranking(c, y, 3, &em, &auroc), METRICS_ERR_ARG);
    CHECK(em == 42.0 && auroc == 42.0);
}

static void test_format_fail_and_status(void) {
    /* 2 of 5 flags set (any nonzero byte counts): rate 0.4. */
    const uint8_t f[] = {0, 1, 0, 7, 0};
    CHECK_NEAR(metrics_format_fail_rate(f, 5), 0.4, TOL);
    /* nonzero correct bytes count as correct, also in Brier (y = 1) */
    const uint8_t y[] = {2, 0};
    const double c[] = {0.5, 0.5};
    CHECK_NEAR(metrics_accuracy(y, 2), 0.5, 0);
    CHECK_NEAR(metrics_brier(c, y, 2), 0.25, TOL);

    CHECK(strcmp(metrics_status_str(METRICS_OK), "ok") == 0);
    CHECK(strlen(metrics_status_str(METRICS_ERR_ARG)) > 10);
    CHECK(strlen(metrics_status_str(METRICS_ERR_NOMEM)) > 10);
    CHECK(metrics_status_str((metrics_status)99) != NULL);
}

int main(void) {
    test_edges();
    test_mixed_set();
    test_equal_mass_remainder();
    test_equal_mass_ties();
    test_all_correct_all_wrong();
    test_single_sample();
    test_empty_and_invalid();
    test_format_fail_and_status();
    return check_report("test_metrics_calib");
}
