/* Continual-learning summaries of a (T+1) x T stage-by-domain matrix: ACC, BWT, FWT
 * (GEM, Lopez-Paz & Ranzato 2017), forgetting (Chaudhry et al. 2018), and the OOD gap.
 * Definitions: metrics.h and docs/metrics.md. */
#include "metrics.h"

#include <math.h>

/* R[i][j] with stage i in 0..T and domain j in 1..T. */
static double at(const double *R, size_t T, size_t i, size_t j) {
    return R[metrics_cl_index(T, i, j)];
}

double metrics_cl_acc(const double *R, size_t T) {
    if (!R || T == 0) return NAN;
    double sum = 0.0;
    for (size_t j = 1; j <= T; j++)
        sum += at(R, T, T, j);
    return sum / (double)T;
}

double metrics_cl_bwt(const double *R, size_t T) {
    if (!R || T < 2) return NAN;
    double sum = 0.0;
    for (size_t j = 1; j < T; j++)
        sum += at(R, T, T, j) - at(R, T, j, j);
    return sum / (double)(T - 1);
}

double metrics_cl_fwt(const double *R, size_t T) {
    if (!R || T < 2) return NAN;
    double sum = 0.0;
    for (size_t j = 2; j <= T; j++)
        sum += at(R, T, j - 1, j) - at(R, T, 0, j);
    return sum / (double)(T - 1);
}

double metrics_cl_forgetting(const double *R, size_t T) {
    if (!R || T < 2) return NAN;
    double sum = 0.0;
    for (size_t j = 1; j < T; j++) {
        double best = at(R, T, 1, j);
        for (size_t l = 2; l < T; l++) {
            double v = at(R, T, l, j);
            if (isnan(v) || isnan(best))
                best = NAN; /* a NaN cell makes the max, hence the result, NaN */
            else if (v > best)
                best = v;
        }
        sum += best - at(R, T, T, j);
    }
    return sum / (double)(T - 1);
}

metrics_cl metrics_cl_compute(const double *R, size_t T) {
    metrics_cl c;
    c.acc = metrics_cl_acc(R, T);
    c.bwt = metrics_cl_bwt(R, T);
    c.fwt = metrics_cl_fwt(R, T);
    c.forgetting = metrics_cl_forgetting(R, T);
    return c;
}

double metrics_ood_gap(double in_dist, double ood) {
    return in_dist - ood;
}
