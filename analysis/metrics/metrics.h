/* metrics: calibration and continual-learning metrics (docs/metrics.md), pure C11, no torch/HDF5.
 * Calibration metrics read per-sample confidence and correctness arrays; CL metrics read a
 * (T+1) x T stage-by-domain matrix. Exact definitions and conventions: docs/metrics.md. */
#ifndef CAOPD_METRICS_H
#define CAOPD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Units: confidences are probabilities (normally in [0,1], values outside are accepted and
 *   fall into the outer bins); every rate, accuracy, ECE, SPR, AUROC ... is a fraction in
 *   [0,1], never a percentage. OCG and the CL differences are signed.
 * - Inputs: `conf` is n doubles; `correct` and `format_fail` are n bytes, nonzero meaning
 *   correct / format failure. Arrays are borrowed, read only, never kept after the call.
 * - NaN means "undefined": no samples (n == 0), an empty class, T too small for a CL metric,
 *   or a NaN in the input. Functions that return a double return NaN for a NULL array, too.
 * - Functions that return metrics_status leave their outputs untouched on any failure.
 * - Every function is reentrant and thread-safe (no global state). Nothing prints or exits. */

/* ---- status ---------------------------------------------------------------------------- */

typedef enum metrics_status {
    METRICS_OK = 0,
    METRICS_ERR_ARG,   /* NULL array with n > 0, NULL output, or a NaN confidence */
    METRICS_ERR_NOMEM, /* the sort buffer (24 bytes per sample) could not be allocated */
} metrics_status;

/* Static string naming the status and what to do about it. Unknown values are accepted. */
const char *metrics_status_str(metrics_status s);

/* ---- equal-width bins ------------------------------------------------------------------ */

#define METRICS_NBINS 10

/* Edge i (0..10) of the equal-width bins: (double)i * 0.1, exactly as numpy's
 * linspace(0, 1, 11) computes it (edge 3 is 0.30000000000000004, edge 7 is
 * 0.7000000000000001). Out-of-range i returns NaN. */
double metrics_bin_edge(int i);

/* Equal-width bin (0..9) of a confidence: bin b holds edge_b <= c < edge_{b+1}, with the outer
 * edges open, so c < 0.1 (negatives included) is bin 0 and c >= 0.9 (1.0 and above) is bin 9.
 * Returns -1 for NaN. */
int metrics_bin_index(double conf);

/* Statistics of one reliability-diagram bin. */
typedef struct metrics_bin {
    size_t count;     /* samples in the bin */
    double lo, hi;    /* equal-width: nominal edges edge_b, edge_{b+1} (bin 0 also takes c < 0,
                         bin 9 also takes c >= 1); equal-mass: smallest and largest confidence
                         in the bin (NaN when empty) */
    double mean_conf; /* mean confidence of the bin, NaN when empty */
    double accuracy;  /* fraction correct in the bin, NaN when empty */
} metrics_bin;

/* Per-bin statistics over the 10 equal-width bins. n == 0 gives every bin count 0 and NaN
 * means. Errors: METRICS_ERR_ARG (NULL input with n > 0, NULL bins, NaN confidence). */
metrics_status metrics_bins_equal_width(const double *conf, const uint8_t *correct, size_t n,
                                        metrics_bin bins[METRICS_NBINS]);

/* Per-bin statistics over 10 equal-mass bins: samples sorted by confidence ascending, ties
 * kept in sample order (a stable sort, like numpy argsort(kind="stable")), the sorted order
 * cut into 10 consecutive chunks like numpy array_split: with q = n / 10 and r = n % 10, the
 * first r chunks hold q + 1 samples and the rest q. Equal confidences may straddle a cut.
 * When n < 10 the last 10 - n chunks are empty. Allocates 24 bytes per sample
 * (64-bit) temporarily.
 * Errors: METRICS_ERR_ARG, METRICS_ERR_NOMEM. */
metrics_status metrics_bins_equal_mass(const double *conf, const uint8_t *correct, size_t n,
                                       metrics_bin bins[METRICS_NBINS]);

/* ---- scalar calibration metrics -------------------------------------------------------- */

/* Fraction of samples with correct != 0. NaN when n == 0. */
double metrics_accuracy(const uint8_t *correct, size_t n);

/* Mean confidence. NaN when n == 0. */
double metrics_mean_conf(const double *conf, size_t n);

/* Brier score: mean over samples of (c - y)^2, y in {0,1}. NaN when n == 0. */
double metrics_brier(const double *conf, const uint8_t *correct, size_t n);

/* Overconfidence gap: mean(c) - mean(y). Positive = overconfident. NaN when n == 0. */
double metrics_ocg(const double *conf, const uint8_t *correct, size_t n);

/* Expected calibration error over the 10 equal-width bins:
 * sum over non-empty bins of (n_b / n) * |mean conf_b - accuracy_b|. NaN when n == 0. */
double metrics_ece(const double *conf, const uint8_t *correct, size_t n);

/* Maximum calibration error: max over non-empty equal-width bins of
 * |mean conf_b - accuracy_b|. NaN when n == 0. */
double metrics_mce(const double *conf, const uint8_t *correct, size_t n);

/* Equal-mass ECE: the ECE formula over the equal-mass bins of metrics_bins_equal_mass.
 * *out = NaN when n == 0. Errors: METRICS_ERR_ARG, METRICS_ERR_NOMEM. */
metrics_status metrics_ece_equal_mass(const double *conf, const uint8_t *correct, size_t n,
                                      double *out);

/* Ranking quality of confidence as a predictor of correctness, in O(n log n). With P correct
 * and N incorrect samples, over the P * N (correct, incorrect) pairs:
 *   SPR   = (pairs where the correct sample has strictly higher confidence) / (P * N),
 *           0 when P == 0 or N == 0 (the reference convention);
 *   AUROC = (strictly higher pairs + 1/2 * tied pairs) / (P * N) (Mann-Whitney; equals
 *           sklearn roc_auc_score(correct, conf)), NaN when P == 0 or N == 0 (undefined; we
 *           do not substitute 0.5, so an all-right or all-wrong split is visible).
 * Either output may be NULL (not computed). Allocates 24 bytes per sample
 * (64-bit) temporarily.
 * Errors: METRICS_ERR_ARG, METRICS_ERR_NOMEM. */
metrics_status metrics_ranking(const double *conf, const uint8_t *correct, size_t n, double *spr,
                               double *auroc);

/* Fraction of samples whose format_fail flag is nonzero. NaN when n == 0. */
double metrics_format_fail_rate(const uint8_t *format_fail, size_t n);

/* ---- per-run summary ------------------------------------------------------------------- */

/* Every metric of one (stage, domain, split). Plain data: copy and compare freely. */
typedef struct metrics_run {
    size_t n;                /* samples */
    size_t n_correct;        /* samples with correct != 0 */
    size_t n_format_fail;    /* samples with format_fail != 0 (0 when no flags were given) */
    double accuracy;         /* n_correct / n */
    double mean_conf;        /* mean confidence */
    double brier;            /* mean (c - y)^2 */
    double ocg;              /* mean_conf - accuracy */
    double ece;              /* 10 equal-width bins */
    double mce;              /* 10 equal-width bins */
    double ece_equal_mass;   /* 10 equal-mass bins */
    double spr;              /* 0 when a class is empty */
    double auroc;            /* NaN when a class is empty */
    double format_fail_rate; /* n_format_fail / n; NaN when no flags were given */
    metrics_bin bins[METRICS_NBINS]; /* equal-width reliability-diagram bins */
} metrics_run;

/* Fills *out from the per-sample arrays in one pass plus one sort. format_fail may be NULL
 * (no flags recorded). n == 0 is valid: counts 0, spr 0, every other metric NaN.
 * Errors: METRICS_ERR_ARG (NULL conf/correct with n > 0, NULL out, NaN confidence),
 * METRICS_ERR_NOMEM; *out is untouched on failure. */
metrics_status metrics_run_compute(const double *conf, const uint8_t *correct,
                                   const uint8_t *format_fail, size_t n, metrics_run *out);

/* The scalar fields of metrics_run by name, e.g. to build a CL matrix of one metric over
 * (stage, domain) runs or to write them as attributes. */
typedef enum metrics_field {
    METRICS_FIELD_ACCURACY = 0,
    METRICS_FIELD_MEAN_CONF,
    METRICS_FIELD_BRIER,
    METRICS_FIELD_OCG,
    METRICS_FIELD_ECE,
    METRICS_FIELD_MCE,
    METRICS_FIELD_ECE_EQUAL_MASS,
    METRICS_FIELD_SPR,
    METRICS_FIELD_AUROC,
    METRICS_FIELD_FORMAT_FAIL_RATE,
    METRICS_FIELD_COUNT /* number of fields, not a field */
} metrics_field;

/* A completion without a confidence reads 0, which can look calibrated: every table flags a
 * format-failure rate above this share (docs/analysis.md). */
#define METRICS_FORMAT_FAIL_FLAG 0.10

/* Stable snake_case name of a field ("accuracy", "ece_equal_mass", ...); NULL if unknown. */
const char *metrics_field_name(metrics_field f);

/* Value of field f in *r; NaN for an unknown field or NULL r. */
double metrics_run_get(const metrics_run *r, metrics_field f);

/* ---- readouts ---------------------------------------------------------------------------- */

/* Where a sample's confidence comes from (docs/metrics.md "Readouts"): the number parsed from
 * the greedy completion (the reference's way), or its expectation under the model's
 * distribution of well-formed confidence strings. Each readout gives its own metrics_run. */
typedef enum metrics_readout {
    METRICS_READOUT_GREEDY = 0,
    METRICS_READOUT_EXPECTED,
    METRICS_READOUT_COUNT /* number of readouts, not a readout */
} metrics_readout;

/* "greedy", "expected"; NULL if unknown. */
const char *metrics_readout_name(metrics_readout r);

/* 1 when field f is computed from the confidences and so exists once per readout; 0 for
 * accuracy and format_fail_rate (and unknown fields). */
int metrics_field_per_readout(metrics_field f);

/* The name under which field f of readout r is stored and shown: the field's name with
 * "_" and the readout's name appended ("ece_greedy", "mean_conf_expected"), or the field's
 * name alone for a readout-free field ("accuracy"). Writes buf (cap bytes; 32 suffice) and
 * returns it; NULL for an unknown field or readout or a too small buffer. */
const char *metrics_field_key(metrics_field f, metrics_readout r, char *buf, size_t cap);

/* ---- continual learning ---------------------------------------------------------------- */

/* R is a (T+1) x T row-major matrix: R[i][j] = metric on domain j after stage i, stages and
 * domains numbered 1..T, row 0 the base model before any domain. Domain j is column j-1:
 * element (stage i, domain j) is R[metrics_cl_index(T, i, j)] = R[i * T + (j - 1)].
 * Formulas are applied verbatim whatever the metric's direction: for lower-is-better
 * metrics (ECE, Brier, MCE) a positive BWT means the metric grew, i.e. calibration got worse,
 * and "forgetting" of such a metric is got by passing -R (see docs/metrics.md).
 * A NaN anywhere in the cells a formula reads makes its result NaN. */
static inline size_t metrics_cl_index(size_t T, size_t stage, size_t domain) {
    return stage * T + (domain - 1);
}

/* ACC = mean_{j=1..T} R[T][j]. NaN when T == 0 or R is NULL. */
double metrics_cl_acc(const double *R, size_t T);

/* BWT = mean_{j=1..T-1} (R[T][j] - R[j][j]) (GEM, Lopez-Paz & Ranzato 2017).
 * NaN when T < 2 (no earlier domain) or R is NULL. */
double metrics_cl_bwt(const double *R, size_t T);

/* FWT = mean_{j=2..T} (R[j-1][j] - R[0][j]) (GEM). NaN when T < 2 or R is NULL. */
double metrics_cl_fwt(const double *R, size_t T);

/* Forgetting (Chaudhry et al. 2018) = mean_{j=1..T-1} (max_{l=1..T-1} R[l][j] - R[T][j]).
 * The max runs over every intermediate stage, including those before domain j was learned.
 * NaN when T < 2 or R is NULL. */
double metrics_cl_forgetting(const double *R, size_t T);

/* The four CL summaries of one matrix. */
typedef struct metrics_cl {
    double acc;        /* metrics_cl_acc */
    double bwt;        /* metrics_cl_bwt */
    double fwt;        /* metrics_cl_fwt */
    double forgetting; /* metrics_cl_forgetting */
} metrics_cl;

/* All four at once; NaN fields as documented above. */
metrics_cl metrics_cl_compute(const double *R, size_t T);

/* Which way a metric is better, for its CL summaries (docs/metrics.md "Calibration
 * retention"). */
typedef enum metrics_direction {
    METRICS_DIRECTION_HIGHER = 0, /* accuracy, SPR, AUROC (mean_conf: read verbatim too) */
    METRICS_DIRECTION_LOWER,      /* ECE, MCE, Brier, equal-mass ECE, format-failure rate */
    METRICS_DIRECTION_SIGNED,     /* OCG: best at 0, its sign says over- or underconfident */
} metrics_direction;

/* The direction of field f; METRICS_DIRECTION_HIGHER for unknown fields. */
metrics_direction metrics_field_direction(metrics_field f);

/* The CL summaries of field f's matrix R read by its direction, so that forgetting > 0 always
 * means quality lost:
 * - higher is better: metrics_cl_compute(R, T);
 * - lower is better: ACC, BWT, FWT of R verbatim (BWT > 0 = the metric grew, calibration
 *   lost), forgetting of -R = mean_j (R[T][j] - min_{l=1..T-1} R[l][j]);
 * - signed (OCG): all four on |R|, the distance from calibration, as lower is better:
 *   ACC = mean_j |R[T][j]|, BWT and FWT of |R|, forgetting of -|R|. A shrinking
 *   overconfidence (|OCG| falls) is not counted as lost.
 * No allocation; NaN cells as for metrics_cl_compute. */
metrics_cl metrics_cl_compute_field(const double *R, size_t T, metrics_field f);

/* OOD gap = in-distribution value - OOD value (positive = the metric drops out of
 * distribution; for lower-is-better metrics a negative gap means worse OOD). */
double metrics_ood_gap(double in_dist, double ood);

#ifdef __cplusplus
}
#endif

#endif
