/* Continual-learning summaries of a (T+1) x T stage-by-domain matrix: ACC, BWT, FWT
 * (GEM, Lopez-Paz & Ranzato 2017), forgetting (Chaudhry et al. 2018), and the OOD gap.
 * Definitions: metrics.h and docs/metrics.md. */
#include "analysis/metrics/metrics.h"

#include <math.h>

/* How a formula reads R: verbatim, negated, as |R|, or as -|R|. */
typedef enum cl_read { CL_VERBATIM, CL_NEG, CL_ABS, CL_NEG_ABS } cl_read;

/* R[i][j] with stage i in 0..T and domain j in 1..T, read as `how` says. */
static double at(const double *R, size_t T, size_t i, size_t j, cl_read how) {
    const double v = R[metrics_cl_index(T, i, j)];
    switch (how) {
    case CL_NEG:
        return -v;
    case CL_ABS:
        return fabs(v);
    case CL_NEG_ABS:
        return -fabs(v);
    default:
        return v;
    }
}

static double cl_acc(const double *R, size_t T, cl_read how) {
    if (!R || T == 0) return NAN;
    double sum = 0.0;
    for (size_t j = 1; j <= T; j++)
        sum += at(R, T, T, j, how);
    return sum / (double)T;
}

static double cl_bwt(const double *R, size_t T, cl_read how) {
    if (!R || T < 2) return NAN;
    double sum = 0.0;
    for (size_t j = 1; j < T; j++)
        sum += at(R, T, T, j, how) - at(R, T, j, j, how);
    return sum / (double)(T - 1);
}

static double cl_fwt(const double *R, size_t T, cl_read how) {
    if (!R || T < 2) return NAN;
    double sum = 0.0;
    for (size_t j = 2; j <= T; j++)
        sum += at(R, T, j - 1, j, how) - at(R, T, 0, j, how);
    return sum / (double)(T - 1);
}

static double cl_forgetting(const double *R, size_t T, cl_read how) {
    if (!R || T < 2) return NAN;
    double sum = 0.0;
    for (size_t j = 1; j < T; j++) {
        double best = at(R, T, 1, j, how);
        for (size_t l = 2; l < T; l++) {
            double v = at(R, T, l, j, how);
            if (isnan(v) || isnan(best))
                best = NAN; /* a NaN cell makes the max, hence the result, NaN */
            else if (v > best)
                best = v;
        }
        sum += best - at(R, T, T, j, how);
    }
    return sum / (double)(T - 1);
}

double metrics_cl_acc(const double *R, size_t T) {
    return cl_acc(R, T, CL_VERBATIM);
}

double metrics_cl_bwt(const double *R, size_t T) {
    return cl_bwt(R, T, CL_VERBATIM);
}

double metrics_cl_fwt(const double *R, size_t T) {
    return cl_fwt(R, T, CL_VERBATIM);
}

double metrics_cl_forgetting(const double *R, size_t T) {
    return cl_forgetting(R, T, CL_VERBATIM);
}

metrics_cl metrics_cl_compute(const double *R, size_t T) {
    metrics_cl c;
    c.acc = metrics_cl_acc(R, T);
    c.bwt = metrics_cl_bwt(R, T);
    c.fwt = metrics_cl_fwt(R, T);
    c.forgetting = metrics_cl_forgetting(R, T);
    return c;
}

metrics_direction metrics_field_direction(metrics_field f) {
    switch (f) {
    case METRICS_FIELD_BRIER:
    case METRICS_FIELD_ECE:
    case METRICS_FIELD_MCE:
    case METRICS_FIELD_ECE_EQUAL_MASS:
    case METRICS_FIELD_FORMAT_FAIL_RATE:
        return METRICS_DIRECTION_LOWER;
    case METRICS_FIELD_OCG:
        return METRICS_DIRECTION_SIGNED;
    default:
        return METRICS_DIRECTION_HIGHER;
    }
}

metrics_cl metrics_cl_compute_field(const double *R, size_t T, metrics_field f) {
    const metrics_direction d = metrics_field_direction(f);
    const cl_read how = d == METRICS_DIRECTION_SIGNED ? CL_ABS : CL_VERBATIM;
    const cl_read lost = d == METRICS_DIRECTION_SIGNED  ? CL_NEG_ABS
                         : d == METRICS_DIRECTION_LOWER ? CL_NEG
                                                        : CL_VERBATIM;
    metrics_cl c;
    c.acc = cl_acc(R, T, how);
    c.bwt = cl_bwt(R, T, how);
    c.fwt = cl_fwt(R, T, how);
    c.forgetting = cl_forgetting(R, T, lost);
    return c;
}

double metrics_ood_gap(double in_dist, double ood) {
    return in_dist - ood;
}
