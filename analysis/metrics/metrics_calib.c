/* Calibration metrics over per-sample (confidence, correct) arrays: Brier, OCG, ECE/MCE,
 * equal-mass ECE, reliability bins, SPR/AUROC (by sorting), the per-run summary, and the
 * names of the fields under each confidence readout.
 * Definitions: metrics.h and docs/metrics.md. */
#include "analysis/metrics/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Tests build this file with -DMETRICS_MALLOC=<failing allocator> to walk the NOMEM paths. */
#ifdef METRICS_MALLOC
void *METRICS_MALLOC(size_t size);
#else
#define METRICS_MALLOC malloc
#endif

const char *metrics_status_str(metrics_status s) {
    switch (s) {
    case METRICS_OK:
        return "ok";
    case METRICS_ERR_ARG:
        return "bad argument: an input array or output is NULL, or a confidence is NaN "
               "(confidences must be parsed and clipped before computing metrics)";
    case METRICS_ERR_NOMEM:
        return "out of memory: the sort buffer for the samples could not be allocated; "
               "free memory or compute on fewer samples";
    }
    return "unknown metrics status";
}

/* ---- bins ------------------------------------------------------------------------------ */

double metrics_bin_edge(int i) {
    if (i < 0 || i > METRICS_NBINS) return NAN;
    /* numpy linspace(0, 1, 11): arange(11) * step + start with step = 1.0 / 10, then the last
     * element set to stop. 10 * 0.1 is exactly 1.0 in double, so i * 0.1 covers all. */
    double step = 1.0 / (double)METRICS_NBINS;
    return (double)i * step;
}

int metrics_bin_index(double conf) {
    if (isnan(conf)) return -1;
    /* bin = number of inner edges (1..9) that are <= conf; equivalent to
     * numpy searchsorted(edges[1:-1], conf, side="right"). */
    int b = 0;
    for (int i = 1; i < METRICS_NBINS; i++)
        if (metrics_bin_edge(i) <= conf) b = i;
    return b;
}

static int any_nan(const double *conf, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (isnan(conf[i])) return 1;
    return 0;
}

/* Sums for one bin; turned into metrics_bin by bin_finish. */
typedef struct bin_acc {
    size_t count;
    size_t n_correct;
    double sum_conf;
} bin_acc;

static metrics_bin bin_finish(const bin_acc *a, double lo, double hi) {
    metrics_bin b;
    b.count = a->count;
    b.lo = lo;
    b.hi = hi;
    if (a->count == 0) {
        b.mean_conf = NAN;
        b.accuracy = NAN;
    } else {
        b.mean_conf = a->sum_conf / (double)a->count;
        b.accuracy = (double)a->n_correct / (double)a->count;
    }
    return b;
}

/* Equal-width bins without argument checks (callers have checked). */
static void bins_equal_width(const double *conf, const uint8_t *correct, size_t n,
                             metrics_bin bins[METRICS_NBINS]) {
    bin_acc acc[METRICS_NBINS] = {{0}};
    for (size_t i = 0; i < n; i++) {
        int b = metrics_bin_index(conf[i]);
        acc[b].count++;
        acc[b].n_correct += correct[i] != 0;
        acc[b].sum_conf += conf[i];
    }
    for (int b = 0; b < METRICS_NBINS; b++)
        bins[b] = bin_finish(&acc[b], metrics_bin_edge(b), metrics_bin_edge(b + 1));
}

/* sum_b (count_b / n) * |mean_conf_b - accuracy_b| over non-empty bins; NaN when n == 0. */
static double ece_from_bins(const metrics_bin bins[METRICS_NBINS], size_t n) {
    if (n == 0) return NAN;
    double ece = 0.0;
    for (int b = 0; b < METRICS_NBINS; b++) {
        if (bins[b].count == 0) continue;
        ece += (double)bins[b].count / (double)n * fabs(bins[b].mean_conf - bins[b].accuracy);
    }
    return ece;
}

/* max_b |mean_conf_b - accuracy_b| over non-empty bins; NaN when all are empty. */
static double mce_from_bins(const metrics_bin bins[METRICS_NBINS]) {
    double mce = NAN;
    for (int b = 0; b < METRICS_NBINS; b++) {
        if (bins[b].count == 0) continue;
        double gap = fabs(bins[b].mean_conf - bins[b].accuracy);
        if (isnan(mce) || gap > mce) mce = gap;
    }
    return mce;
}

metrics_status metrics_bins_equal_width(const double *conf, const uint8_t *correct, size_t n,
                                        metrics_bin bins[METRICS_NBINS]) {
    if (!bins || (n > 0 && (!conf || !correct))) return METRICS_ERR_ARG;
    if (any_nan(conf, n)) return METRICS_ERR_ARG;
    bins_equal_width(conf, correct, n, bins);
    return METRICS_OK;
}

/* ---- sorted samples -------------------------------------------------------------------- */

typedef struct sample {
    double conf;
    size_t idx; /* original position: makes the order total, hence a stable sort */
    uint8_t correct;
} sample;

static int sample_cmp(const void *pa, const void *pb) {
    const sample *a = pa, *b = pb;
    if (a->conf < b->conf) return -1;
    if (a->conf > b->conf) return 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Allocates and returns the samples sorted by (conf, idx); NULL when out of memory.
 * n > 0 and no NaN confidence (checked by the caller). */
static sample *sorted_samples(const double *conf, const uint8_t *correct, size_t n) {
    if (n > SIZE_MAX / sizeof(sample)) return NULL;
    sample *s = METRICS_MALLOC(n * sizeof(sample));
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        s[i].conf = conf[i];
        s[i].idx = i;
        s[i].correct = correct[i] != 0;
    }
    qsort(s, n, sizeof(sample), sample_cmp);
    return s;
}

/* Equal-mass bins from sorted samples (n may be 0). numpy array_split: chunk b holds
 * q + (b < r) samples, q = n / 10, r = n % 10. */
static void bins_equal_mass(const sample *s, size_t n, metrics_bin bins[METRICS_NBINS]) {
    size_t q = n / METRICS_NBINS, r = n % METRICS_NBINS, start = 0;
    for (size_t b = 0; b < METRICS_NBINS; b++) {
        size_t len = q + (b < r ? 1 : 0);
        bin_acc a = {0};
        for (size_t k = start; k < start + len; k++) {
            a.count++;
            a.n_correct += s[k].correct;
            a.sum_conf += s[k].conf;
        }
        double lo = len ? s[start].conf : NAN, hi = len ? s[start + len - 1].conf : NAN;
        bins[b] = bin_finish(&a, lo, hi);
        start += len;
    }
}

/* SPR and AUROC from sorted samples: walk groups of equal confidence, ascending; every
 * correct sample in a group beats the incorrect samples of all lower groups and ties with
 * the incorrect samples of its own group. */
static void ranking_sorted(const sample *s, size_t n, double *spr, double *auroc) {
    uint64_t n_pos = 0, n_neg = 0, strict = 0, ties = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        uint64_t pos = 0, neg = 0;
        while (j < n && s[j].conf == s[i].conf) {
            if (s[j].correct)
                pos++;
            else
                neg++;
            j++;
        }
        strict += pos * n_neg; /* n_neg counts incorrect samples strictly below this group */
        ties += pos * neg;
        n_pos += pos;
        n_neg += neg;
        i = j;
    }
    if (n_pos == 0 || n_neg == 0) {
        *spr = 0.0;
        *auroc = NAN;
        return;
    }
    double pairs = (double)n_pos * (double)n_neg;
    *spr = (double)strict / pairs;
    *auroc = ((double)strict + 0.5 * (double)ties) / pairs;
}

metrics_status metrics_bins_equal_mass(const double *conf, const uint8_t *correct, size_t n,
                                       metrics_bin bins[METRICS_NBINS]) {
    if (!bins || (n > 0 && (!conf || !correct))) return METRICS_ERR_ARG;
    if (any_nan(conf, n)) return METRICS_ERR_ARG;
    if (n == 0) {
        bins_equal_mass(NULL, 0, bins);
        return METRICS_OK;
    }
    sample *s = sorted_samples(conf, correct, n);
    if (!s) return METRICS_ERR_NOMEM;
    bins_equal_mass(s, n, bins);
    free(s);
    return METRICS_OK;
}

metrics_status metrics_ece_equal_mass(const double *conf, const uint8_t *correct, size_t n,
                                      double *out) {
    if (!out) return METRICS_ERR_ARG;
    metrics_bin bins[METRICS_NBINS];
    metrics_status rc = metrics_bins_equal_mass(conf, correct, n, bins);
    if (rc) return rc;
    *out = ece_from_bins(bins, n);
    return METRICS_OK;
}

metrics_status metrics_ranking(const double *conf, const uint8_t *correct, size_t n, double *spr,
                               double *auroc) {
    if (n > 0 && (!conf || !correct)) return METRICS_ERR_ARG;
    if (any_nan(conf, n)) return METRICS_ERR_ARG;
    double s_spr = 0.0, s_auroc = NAN;
    if (n > 0) {
        sample *s = sorted_samples(conf, correct, n);
        if (!s) return METRICS_ERR_NOMEM;
        ranking_sorted(s, n, &s_spr, &s_auroc);
        free(s);
    }
    if (spr) *spr = s_spr;
    if (auroc) *auroc = s_auroc;
    return METRICS_OK;
}

/* ---- scalar metrics -------------------------------------------------------------------- */

static size_t count_nonzero(const uint8_t *flags, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += flags[i] != 0;
    return k;
}

double metrics_accuracy(const uint8_t *correct, size_t n) {
    if (n == 0 || !correct) return NAN;
    return (double)count_nonzero(correct, n) / (double)n;
}

double metrics_format_fail_rate(const uint8_t *format_fail, size_t n) {
    return metrics_accuracy(format_fail, n); /* same formula: fraction of nonzero flags */
}

double metrics_mean_conf(const double *conf, size_t n) {
    if (n == 0 || !conf) return NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += conf[i];
    return sum / (double)n;
}

double metrics_brier(const double *conf, const uint8_t *correct, size_t n) {
    if (n == 0 || !conf || !correct) return NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = conf[i] - (correct[i] ? 1.0 : 0.0);
        sum += d * d;
    }
    return sum / (double)n;
}

double metrics_ocg(const double *conf, const uint8_t *correct, size_t n) {
    if (n == 0 || !conf || !correct) return NAN;
    return metrics_mean_conf(conf, n) - metrics_accuracy(correct, n);
}

double metrics_ece(const double *conf, const uint8_t *correct, size_t n) {
    if (n == 0 || !conf || !correct || any_nan(conf, n)) return NAN;
    metrics_bin bins[METRICS_NBINS];
    bins_equal_width(conf, correct, n, bins);
    return ece_from_bins(bins, n);
}

double metrics_mce(const double *conf, const uint8_t *correct, size_t n) {
    if (n == 0 || !conf || !correct || any_nan(conf, n)) return NAN;
    metrics_bin bins[METRICS_NBINS];
    bins_equal_width(conf, correct, n, bins);
    return mce_from_bins(bins);
}

/* ---- per-run summary ------------------------------------------------------------------- */

metrics_status metrics_run_compute(const double *conf, const uint8_t *correct,
                                   const uint8_t *format_fail, size_t n, metrics_run *out) {
    if (!out || (n > 0 && (!conf || !correct))) return METRICS_ERR_ARG;
    if (any_nan(conf, n)) return METRICS_ERR_ARG;

    metrics_run r;
    r.n = n;
    r.n_correct = n ? count_nonzero(correct, n) : 0;
    r.n_format_fail = format_fail ? count_nonzero(format_fail, n) : 0;
    r.accuracy = metrics_accuracy(correct, n);
    r.mean_conf = metrics_mean_conf(conf, n);
    r.brier = metrics_brier(conf, correct, n);
    r.ocg = metrics_ocg(conf, correct, n);
    r.format_fail_rate = format_fail ? metrics_format_fail_rate(format_fail, n) : NAN;

    bins_equal_width(conf, correct, n, r.bins);
    r.ece = ece_from_bins(r.bins, n);
    r.mce = mce_from_bins(r.bins);

    metrics_bin em[METRICS_NBINS];
    r.spr = 0.0;
    r.auroc = NAN;
    if (n > 0) {
        sample *s = sorted_samples(conf, correct, n);
        if (!s) return METRICS_ERR_NOMEM;
        bins_equal_mass(s, n, em);
        ranking_sorted(s, n, &r.spr, &r.auroc);
        free(s);
    } else {
        bins_equal_mass(NULL, 0, em);
    }
    r.ece_equal_mass = ece_from_bins(em, n);

    *out = r;
    return METRICS_OK;
}

const char *metrics_field_name(metrics_field f) {
    switch (f) {
    case METRICS_FIELD_ACCURACY:
        return "accuracy";
    case METRICS_FIELD_MEAN_CONF:
        return "mean_conf";
    case METRICS_FIELD_BRIER:
        return "brier";
    case METRICS_FIELD_OCG:
        return "ocg";
    case METRICS_FIELD_ECE:
        return "ece";
    case METRICS_FIELD_MCE:
        return "mce";
    case METRICS_FIELD_ECE_EQUAL_MASS:
        return "ece_equal_mass";
    case METRICS_FIELD_SPR:
        return "spr";
    case METRICS_FIELD_AUROC:
        return "auroc";
    case METRICS_FIELD_FORMAT_FAIL_RATE:
        return "format_fail_rate";
    case METRICS_FIELD_COUNT:
        break;
    }
    return NULL;
}

const char *metrics_readout_name(metrics_readout r) {
    switch (r) {
    case METRICS_READOUT_GREEDY:
        return "greedy";
    case METRICS_READOUT_EXPECTED:
        return "expected";
    case METRICS_READOUT_COUNT:
        break;
    }
    return NULL;
}

int metrics_field_per_readout(metrics_field f) {
    return f >= 0 && f < METRICS_FIELD_COUNT && f != METRICS_FIELD_ACCURACY &&
           f != METRICS_FIELD_FORMAT_FAIL_RATE;
}

const char *metrics_field_key(metrics_field f, metrics_readout r, char *buf, size_t cap) {
    const char *fn = metrics_field_name(f), *rn = metrics_readout_name(r);
    if (!fn || !rn || !buf) return NULL;
    int n = metrics_field_per_readout(f) ? snprintf(buf, cap, "%s_%s", fn, rn)
                                         : snprintf(buf, cap, "%s", fn);
    return n >= 0 && (size_t)n < cap ? buf : NULL;
}

double metrics_run_get(const metrics_run *r, metrics_field f) {
    if (!r) return NAN;
    switch (f) {
    case METRICS_FIELD_ACCURACY:
        return r->accuracy;
    case METRICS_FIELD_MEAN_CONF:
        return r->mean_conf;
    case METRICS_FIELD_BRIER:
        return r->brier;
    case METRICS_FIELD_OCG:
        return r->ocg;
    case METRICS_FIELD_ECE:
        return r->ece;
    case METRICS_FIELD_MCE:
        return r->mce;
    case METRICS_FIELD_ECE_EQUAL_MASS:
        return r->ece_equal_mass;
    case METRICS_FIELD_SPR:
        return r->spr;
    case METRICS_FIELD_AUROC:
        return r->auroc;
    case METRICS_FIELD_FORMAT_FAIL_RATE:
        return r->format_fail_rate;
    case METRICS_FIELD_COUNT:
        break;
    }
    return NAN;
}
