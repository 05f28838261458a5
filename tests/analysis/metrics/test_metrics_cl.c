/* Continual-learning metrics (ACC, BWT, FWT, forgetting) on a hand-computed T = 3 matrix, read
 * verbatim and by the metric's direction (forgetting on -R, OCG on |OCG|),
 * the T = 1 and T = 0 conventions, NaN propagation, and the OOD gap. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"

#include <math.h>

#define TOL 1e-15

static void test_t3(void) {
    /* R[i][j], stage i = 0..3 (rows), domain j = 1..3 (columns):
     *            d1    d2    d3
     * stage 0  0.99  0.20  0.30    (base model)
     * stage 1  0.80  0.25  0.35
     * stage 2  0.85  0.90  0.40
     * stage 3  0.50  0.95  0.60
     * ACC = (0.50 + 0.95 + 0.60) / 3 = 2.05 / 3
     * BWT = ((R31 - R11) + (R32 - R22)) / 2 = ((0.5 - 0.8) + (0.95 - 0.9)) / 2 = -0.125
     * FWT = ((R12 - R02) + (R23 - R03)) / 2 = ((0.25 - 0.2) + (0.4 - 0.3)) / 2 = 0.075
     * Forgetting = ((max(R11, R21) - R31) + (max(R12, R22) - R32)) / 2
     *            = ((0.85 - 0.5) + (0.9 - 0.95)) / 2 = 0.15
     * Traps: R01 = 0.99 is not in the max (l >= 1), R32 = 0.95 is not either (l < T; with
     * it the second term would be 0), and the max for d1 is at stage 2, not at R11. */
    const double R[] = {
        0.99, 0.20, 0.30, /* stage 0 */
        0.80, 0.25, 0.35, /* stage 1 */
        0.85, 0.90, 0.40, /* stage 2 */
        0.50, 0.95, 0.60, /* stage 3 */
    };
    CHECK_EQ_INT(metrics_cl_index(3, 2, 3), 8);
    CHECK(R[metrics_cl_index(3, 0, 1)] == 0.99);
    CHECK(R[metrics_cl_index(3, 3, 2)] == 0.95);
    CHECK_NEAR(metrics_cl_acc(R, 3), 2.05 / 3.0, TOL);
    CHECK_NEAR(metrics_cl_bwt(R, 3), -0.125, TOL);
    CHECK_NEAR(metrics_cl_fwt(R, 3), 0.075, TOL);
    CHECK_NEAR(metrics_cl_forgetting(R, 3), 0.15, TOL);
    metrics_cl s = metrics_cl_compute(R, 3);
    CHECK(s.acc == metrics_cl_acc(R, 3));
    CHECK(s.bwt == metrics_cl_bwt(R, 3));
    CHECK(s.fwt == metrics_cl_fwt(R, 3));
    CHECK(s.forgetting == metrics_cl_forgetting(R, 3));

    /* Calibration retention is the same formulas on an ECE matrix (lower is better):
     * BWT > 0 there means ECE grew. Forgetting in the "lost calibration" sense is the
     * formula on -R: mean_j (R[T][j] - min_l R[l][j]). For -R of the matrix above:
     * ((0.5 - 0.8) + (0.95 - 0.25)) / 2 = 0.2 */
    double negR[12];
    for (int i = 0; i < 12; i++)
        negR[i] = -R[i];
    CHECK_NEAR(metrics_cl_forgetting(negR, 3), 0.2, TOL);
    CHECK_NEAR(metrics_cl_bwt(negR, 3), 0.125, TOL);

    /* A NaN in a cell a formula reads makes that formula NaN, and only that one. */
    double Rn[12];
    for (int i = 0; i < 12; i++)
        Rn[i] = R[i];
    Rn[metrics_cl_index(3, 2, 1)] = NAN; /* R21: only the forgetting max reads it */
    CHECK(isnan(metrics_cl_forgetting(Rn, 3)));
    CHECK_NEAR(metrics_cl_bwt(Rn, 3), -0.125, TOL);
    CHECK_NEAR(metrics_cl_fwt(Rn, 3), 0.075, TOL);
    CHECK_NEAR(metrics_cl_acc(Rn, 3), 2.05 / 3.0, TOL);
    Rn[metrics_cl_index(3, 2, 1)] = R[metrics_cl_index(3, 2, 1)];
    Rn[metrics_cl_index(3, 1, 1)] = NAN; /* R11: the first element of the max, and BWT */
    CHECK(isnan(metrics_cl_forgetting(Rn, 3)));
    CHECK(isnan(metrics_cl_bwt(Rn, 3)));
    CHECK_NEAR(metrics_cl_fwt(Rn, 3), 0.075, TOL);
}

static void test_t2(void) {
    /* T = 2:   d1   d2
     * stage 0  0.1  0.2
     * stage 1  0.7  0.4
     * stage 2  0.6  0.9
     * ACC = 0.75; BWT = 0.6 - 0.7 = -0.1; FWT = 0.4 - 0.2 = 0.2;
     * forgetting = max(R11) - R21 = 0.7 - 0.6 = 0.1 */
    const double R[] = {0.1, 0.2, 0.7, 0.4, 0.6, 0.9};
    metrics_cl s = metrics_cl_compute(R, 2);
    CHECK_NEAR(s.acc, 0.75, TOL);
    CHECK_NEAR(s.bwt, -0.1, TOL);
    CHECK_NEAR(s.fwt, 0.2, TOL);
    CHECK_NEAR(s.forgetting, 0.1, TOL);
}

static void test_degenerate(void) {
    /* T = 1: R is 2 x 1 (base, after domain 1). ACC = R[1][1]; no earlier or later domain,
     * so BWT, FWT and forgetting are undefined: NaN. */
    const double R1[] = {0.3, 0.7};
    metrics_cl s = metrics_cl_compute(R1, 1);
    CHECK(s.acc == 0.7);
    CHECK(isnan(s.bwt) && isnan(s.fwt) && isnan(s.forgetting));
    /* T = 0 or no matrix: all NaN. */
    s = metrics_cl_compute(R1, 0);
    CHECK(isnan(s.acc) && isnan(s.bwt) && isnan(s.fwt) && isnan(s.forgetting));
    s = metrics_cl_compute(NULL, 3);
    CHECK(isnan(s.acc) && isnan(s.bwt) && isnan(s.fwt) && isnan(s.forgetting));
}

static void test_ood_gap(void) {
    CHECK_NEAR(metrics_ood_gap(0.8, 0.55), 0.25, TOL);  /* accuracy drops OOD */
    CHECK_NEAR(metrics_ood_gap(0.05, 0.2), -0.15, TOL); /* ECE grows OOD: negative gap */
    CHECK(isnan(metrics_ood_gap(0.8, NAN)));
}

/* metrics_cl_compute_field reads a matrix by its metric's direction: higher-is-better
 * verbatim, lower-is-better with forgetting on -R, OCG on |OCG| with forgetting on -|OCG|. */
static void test_by_direction(void) {
    CHECK_EQ_INT(metrics_field_direction(METRICS_FIELD_ACCURACY), METRICS_DIRECTION_HIGHER);
    CHECK_EQ_INT(metrics_field_direction(METRICS_FIELD_SPR), METRICS_DIRECTION_HIGHER);
    CHECK_EQ_INT(metrics_field_direction(METRICS_FIELD_ECE), METRICS_DIRECTION_LOWER);
    CHECK_EQ_INT(metrics_field_direction(METRICS_FIELD_BRIER), METRICS_DIRECTION_LOWER);
    CHECK_EQ_INT(metrics_field_direction(METRICS_FIELD_OCG), METRICS_DIRECTION_SIGNED);
    const double R[] = {
        0.99, 0.20, 0.30, /* the matrix of test_t3 */
        0.80, 0.25, 0.35, /* */
        0.85, 0.90, 0.40, /* */
        0.50, 0.95, 0.60, /* */
    };
    metrics_cl a = metrics_cl_compute_field(R, 3, METRICS_FIELD_ACCURACY),
               v = metrics_cl_compute(R, 3);
    CHECK(a.acc == v.acc && a.bwt == v.bwt && a.fwt == v.fwt && a.forgetting == v.forgetting);
    metrics_cl e = metrics_cl_compute_field(R, 3, METRICS_FIELD_ECE);
    CHECK(e.acc == v.acc && e.bwt == v.bwt && e.fwt == v.fwt);
    CHECK_NEAR(e.forgetting, 0.2, TOL); /* on -R, as in test_t3 */
    /* A signed OCG matrix and its |OCG|:
     *            d1     d2     d3             |d1|  |d2|  |d3|
     * stage 0  0.30  -0.20   0.10            0.30  0.20  0.10
     * stage 1 -0.40   0.25  -0.05            0.40  0.25  0.05
     * stage 2  0.10  -0.30   0.20            0.10  0.30  0.20
     * stage 3 -0.05   0.45  -0.15            0.05  0.45  0.15
     * ACC = (0.05 + 0.45 + 0.15) / 3 = 0.65 / 3
     * BWT = ((0.05 - 0.40) + (0.45 - 0.30)) / 2 = -0.10 (closer to calibration)
     * FWT = ((0.25 - 0.20) + (0.20 - 0.10)) / 2 = 0.075
     * forgetting on -|OCG| = mean_j (|R3j| - min_l |Rlj|) = ((0.05 - 0.10) + (0.45 - 0.25)) / 2 =
     * 0.075 Verbatim they would be 0.25 / 3, 0.55, 0.075 and -0.025: the signs would cancel. */
    const double O[] = {0.30, -0.20, 0.10, -0.40, 0.25, -0.05,
                        0.10, -0.30, 0.20, -0.05, 0.45, -0.15};
    metrics_cl o = metrics_cl_compute_field(O, 3, METRICS_FIELD_OCG);
    CHECK_NEAR(o.acc, 0.65 / 3, TOL);
    CHECK_NEAR(o.bwt, -0.10, 1e-15);
    CHECK_NEAR(o.fwt, 0.075, 1e-15);
    CHECK_NEAR(o.forgetting, 0.075, 1e-15);
    metrics_cl ov = metrics_cl_compute(O, 3);
    CHECK_NEAR(ov.bwt, 0.55, 1e-15);
    CHECK_NEAR(ov.forgetting, -0.025, 1e-15);
    /* NaN and T < 2 as for the verbatim formulas */
    double On[12];
    for (int i = 0; i < 12; i++)
        On[i] = O[i];
    On[metrics_cl_index(3, 2, 1)] = NAN;
    o = metrics_cl_compute_field(On, 3, METRICS_FIELD_OCG);
    CHECK(isnan(o.forgetting));
    CHECK_NEAR(o.bwt, -0.10, 1e-15);
    o = metrics_cl_compute_field(O, 1, METRICS_FIELD_OCG); /* R[1][1] = -0.20 read as T = 1 */
    CHECK_NEAR(o.acc, 0.20, TOL);
    CHECK(isnan(o.bwt) && isnan(o.fwt) && isnan(o.forgetting));
    o = metrics_cl_compute_field(NULL, 3, METRICS_FIELD_OCG);
    CHECK(isnan(o.acc) && isnan(o.forgetting));
}

int main(void) {
    test_by_direction();
    test_t3();
    test_t2();
    test_degenerate();
    test_ood_gap();
    return check_report("test_metrics_cl");
}
