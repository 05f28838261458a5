/* retention.c: the stage-sequence analysis of a sweep summary (retention.h): per series and seed
 * the cells' test-split matrices averaged, curves and CL summaries over seeds, reliability bins
 * pooled from the cells' results files (report.h), the five summary lines, and the outputs
 * (retention.csv, cl.csv, reliability.csv, figures, report.md). Conventions: docs/sweep.md. */
#include "analysis/report/retention.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/metrics/csv.h"
#include "analysis/figures/plot.h"
#include "analysis/report/report.h"
#include "analysis/report/report_util.h"
#include "analysis/metrics/strbuf.h"
#include "common/files.h"
#include "common/strings.h"

#define NM SEVERITY_N_METRICS
#define NQ METRICS_READOUT_COUNT
#define GRID_MAX_DOMAINS 8 /* columns of retention.png (plot_retention_grid) */

/* The metrics of report.md's tables, one section each, in this order. */
static const char *const k_table_metrics[] =
    {"accuracy",       "ece_greedy",      "ece_expected", "brier_greedy",
     "brier_expected", "ocg_greedy",      "ocg_expected", "spr_greedy",
     "spr_expected",   "format_fail_rate"}; /* a missing confidence reads 0 */
#define N_TABLE_METRICS (int)(sizeof k_table_metrics / sizeof k_table_metrics[0])
/* The metrics drawn as retention curves (retention_<domain>_<metric>). */
static const char *const k_curve_metrics[] = {"accuracy", "ece_greedy", "ece_expected",
                                              "ocg_greedy", "ocg_expected"};
#define N_CURVE_METRICS (int)(sizeof k_curve_metrics / sizeof k_curve_metrics[0])
/* The rows of the compact grid retention.png. */
static const char *const k_grid_metrics[] = {"accuracy", "ece_expected", "ocg_expected"};
#define N_GRID_METRICS (int)(sizeof k_grid_metrics / sizeof k_grid_metrics[0])

/* One series: its stages and domains, per-seed matrices and what is derived from them. */
typedef struct rseries {
    int ok;                         /* has a usable cell */
    int T, D;                       /* domain stages, evaluation domains */
    const char *const *stage_names; /* T + 1, borrowed from the table (its first usable cell) */
    const char *const *domains;     /* D, borrowed */
    int *trained;                   /* D: the stage that first trains domain j (1..T), 0 = never */
    int n_seeds;
    long long *seeds;    /* n_seeds, first-appearance order */
    double *mat;         /* [n_seeds][NM][(T+1) * D]: each seed's cells averaged */
    double *mean;        /* [NM][(T+1) * D]: the mean over seeds */
    retention_point *pt; /* [NM][(T+1) * D]: over seeds */
    int cl_ok;           /* stage j trains domain j, T == D */
    retention_cl cl[NM];
    /* reliability after stage T, pooled: per readout and bin, the count, the sum of the
     * confidences and the number correct */
    double rel_n[NQ][METRICS_NBINS], rel_conf[NQ][METRICS_NBINS], rel_corr[NQ][METRICS_NBINS];
    int rel_seeds[NQ];
} rseries;

struct retention_analysis {
    const severity_table *t; /* borrowed */
    char *summary_path;
    int n_series;
    rseries *s;
    int read_results;
    strbuf notes;
};

/* ---- helpers ------------------------------------------------------------------------------- */

/* Index of the metric named name in severity_metric_names; -1 when none. */
static int metric_index(const char *name) {
    for (int m = 0; name && m < NM; m++)
        if (!strcmp(severity_metric_names[m], name)) return m;
    return -1;
}

/* The metrics_field of metric m ("ece_expected" -> METRICS_FIELD_ECE). */
static metrics_field field_of(int m) {
    const char *mn = severity_metric_names[m];
    for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
        const char *fn = metrics_field_name((metrics_field)f);
        const size_t L = strlen(fn);
        if (!strncmp(mn, fn, L) &&
            (!mn[L] || !strcmp(mn + L, "_greedy") || !strcmp(mn + L, "_expected")))
            return (metrics_field)f;
    }
    return METRICS_FIELD_ACCURACY;
}

/* "Accuracy", "ECE, expected readout", ... */
static const char *metric_title(int m, char *buf, size_t len) {
    static const char *const names[METRICS_FIELD_COUNT] = {
        "Accuracy", "Mean confidence", "Brier", "OCG",   "ECE",
        "MCE",      "Equal-mass ECE",  "SPR",   "AUROC", "Format-failure rate"};
    const char *mn = severity_metric_names[m];
    const char *q = strstr(mn, "_expected") ? ", expected readout"
                    : strstr(mn, "_greedy") ? ", greedy readout"
                                            : "";
    snprintf(buf, len, "%s%s", names[field_of(m)], q);
    return buf;
}

/* Short axis label: "accuracy", "ECE (expected)". */
static const char *metric_short(int m, char *buf, size_t len) {
    static const char *const names[METRICS_FIELD_COUNT] = {
        "accuracy", "mean conf",      "Brier", "OCG",   "ECE",
        "MCE",      "ECE (eq. mass)", "SPR",   "AUROC", "format fail"};
    const char *mn = severity_metric_names[m];
    const char *q = strstr(mn, "_expected") ? " (expected)"
                    : strstr(mn, "_greedy") ? " (greedy)"
                                            : "";
    snprintf(buf, len, "%s%s", names[field_of(m)], q);
    return buf;
}

/* A point as "mean [min, max]" (two or more seeds), "mean", or "n/a". */
static const char *fmt_point(const retention_point *p, char *buf, size_t len) {
    if (!p->n_seeds || isnan(p->mean))
        snprintf(buf, len, "n/a");
    else if (p->n_seeds >= 2)
        snprintf(buf, len, "%.3f [%.3f, %.3f]", p->mean, p->min, p->max);
    else
        snprintf(buf, len, "%.3f", p->mean);
    return buf;
}

static int is_file(const char *p) {
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The statistics over v[0..n) (NaN skipped); v is reordered. */
static retention_point stats(double *v, int n) {
    retention_point p = {0, NAN, NAN, NAN, NAN};
    int k = 0;
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) sum += v[i], v[k++] = v[i];
    if (!k) return p;
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    p.n_seeds = k, p.mean = sum / k, p.min = v[0], p.max = v[k - 1];
    if (k >= 2) {
        double sq = 0;
        for (int i = 0; i < k; i++)
            sq += (v[i] - p.mean) * (v[i] - p.mean);
        p.sd = sqrt(sq / (k - 1));
    }
    return p;
}

/* The mean of v[0..n) with NaN skipped; NaN when nothing is left. */
static double nanmean(const double *v, int n) {
    double sum = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) sum += v[i], k++;
    return k ? sum / k : NAN;
}

static size_t cells_of(const rseries *r) {
    return (size_t)(r->T + 1) * (size_t)r->D;
}

/* Seed q's matrix of metric m. */
static double *seed_mat(const rseries *r, int q, int m) {
    return r->mat + ((size_t)q * NM + (size_t)m) * cells_of(r);
}

static int domain_index(const rseries *r, const char *domain) {
    for (int j = 0; r->ok && domain && j < r->D; j++)
        if (!strcmp(r->domains[j], domain)) return j;
    return -1;
}

static int same_list(const char *const *a, const char *const *b, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(a[i], b[i])) return 0;
    return 1;
}

/* "a, b, c" of n names into sb. */
static void join(strbuf *sb, const char *const *v, int n) {
    for (int i = 0; i < n; i++)
        strbuf_printf(sb, "%s%s", i ? ", " : "", v[i]);
}

/* ---- building -------------------------------------------------------------------------------- */

static void rseries_free(rseries *r) {
    free(r->trained), free(r->seeds), free(r->mat), free(r->mean), free(r->pt);
}

/* Which cells of series s take part (use[i] = 1); its stages and domains from the first. */
static int pick_cells(retention_analysis *a, int s, int *use) {
    rseries *r = &a->s[s];
    const severity_cell *ref = NULL;
    for (int i = 0; i < severity_n_cells(a->t); i++) {
        const severity_cell *c = severity_get_cell(a->t, i);
        use[i] = 0;
        if (c->series != s) continue;
        if (c->n_stages < 0) {
            strbuf_printf(
                &a->notes,
                "cell %s: the summary has no test split of it; left out of the sequence analysis\n",
                c->name);
            continue;
        }
        if (!c->stage_names) {
            strbuf_printf(
                &a->notes,
                "cell %s: the summary does not name its stages (no stage_names attribute); left "
                "out of the sequence analysis (merge the sweep again with this build)\n",
                c->name);
            continue;
        }
        if (c->n_stages < 1) {
            strbuf_printf(&a->notes,
                          "cell %s: no domain stage; left out of the sequence analysis\n", c->name);
            continue;
        }
        if (!ref)
            ref = c;
        else if (c->n_stages != ref->n_stages || c->n_domains != ref->n_domains ||
                 !same_list(c->stage_names, ref->stage_names, c->n_stages + 1) ||
                 !same_list(c->domains, ref->domains, c->n_domains)) {
            strbuf_printf(&a->notes, "cell %s: its stages (", c->name);
            join(&a->notes, c->stage_names, c->n_stages + 1);
            strbuf_printf(&a->notes, ") or domains (");
            join(&a->notes, c->domains, c->n_domains);
            strbuf_printf(
                &a->notes,
                ") differ from those of cell %s of the same series; left out of the sequence "
                "analysis\n",
                ref->name);
            continue;
        }
        use[i] = 1;
    }
    if (!ref) return 0;
    r->ok = 1;
    r->T = ref->n_stages, r->D = ref->n_domains;
    r->stage_names = ref->stage_names, r->domains = ref->domains;
    return 1;
}

/* The per-seed matrices, their statistics over seeds and the CL summaries of series s. */
static int series_numbers(retention_analysis *a, int s, const int *use) {
    rseries *r = &a->s[s];
    const int nc = severity_n_cells(a->t);
    const size_t C = cells_of(r);
    r->trained = calloc((size_t)(r->D > 0 ? r->D : 1), sizeof *r->trained);
    r->seeds = malloc((size_t)nc * sizeof *r->seeds);
    if (!r->trained || !r->seeds) return -1;
    for (int j = 0; j < r->D; j++)
        for (int i = r->T; i >= 1; i--)
            if (!strcmp(r->stage_names[i], r->domains[j])) r->trained[j] = i;
    for (int i = 0; i < nc; i++) {
        if (!use[i]) continue;
        const long long seed = severity_get_cell(a->t, i)->seed;
        int q = 0;
        while (q < r->n_seeds && r->seeds[q] != seed)
            q++;
        if (q == r->n_seeds) r->seeds[r->n_seeds++] = seed;
    }
    r->mat = malloc((size_t)r->n_seeds * NM * C * sizeof *r->mat);
    r->mean = malloc(NM * C * sizeof *r->mean);
    r->pt = malloc(NM * C * sizeof *r->pt);
    double *v = malloc((size_t)(nc > r->n_seeds ? nc : r->n_seeds) * sizeof *v + sizeof *v);
    if (!r->mat || !r->mean || !r->pt || !v) {
        free(v);
        return -1;
    }
    /* each seed: the mean of its cells, NaN skipped */
    for (int q = 0; q < r->n_seeds; q++)
        for (int m = 0; m < NM; m++) {
            double *out = seed_mat(r, q, m);
            for (size_t e = 0; e < C; e++) {
                int k = 0;
                for (int i = 0; i < nc; i++) {
                    const severity_cell *c = severity_get_cell(a->t, i);
                    if (use[i] && c->seed == r->seeds[q]) v[k++] = c->test[m][e];
                }
                out[e] = nanmean(v, k);
            }
        }
    /* over seeds */
    for (int m = 0; m < NM; m++)
        for (size_t e = 0; e < C; e++) {
            for (int q = 0; q < r->n_seeds; q++)
                v[q] = seed_mat(r, q, m)[e];
            r->mean[(size_t)m * C + e] = nanmean(v, r->n_seeds);
            r->pt[(size_t)m * C + e] = stats(v, r->n_seeds);
        }
    /* CL: stage j must train domain j (docs/analysis.md "How the CL metrics are derived") */
    r->cl_ok = r->T == r->D;
    for (int j = 1; r->cl_ok && j <= r->T; j++)
        r->cl_ok = !strcmp(r->stage_names[j], r->domains[j - 1]);
    if (!r->cl_ok) {
        strbuf_printf(&a->notes, "series %s: its %d domain stages (", severity_series_name(a->t, s),
                      r->T);
        join(&a->notes, r->stage_names + 1, r->T);
        strbuf_printf(&a->notes, ") do not line up with its %d evaluation domains (", r->D);
        join(&a->notes, r->domains, r->D);
        strbuf_printf(&a->notes,
                      "): stage j must train domain j, so its ACC, BWT, FWT and forgetting are n/a "
                      "(docs/analysis.md, \"How the CL metrics are derived\")\n");
    }
    double *acc = malloc((size_t)(r->n_seeds + 1) * 4 * sizeof *acc);
    if (!acc) {
        free(v);
        return -1;
    }
    for (int m = 0; m < NM; m++) {
        const retention_point none = {0, NAN, NAN, NAN, NAN};
        r->cl[m] = (retention_cl){none, none, none, none};
        if (!r->cl_ok) continue;
        double *b = acc, *w = acc + r->n_seeds, *f = w + r->n_seeds, *g = f + r->n_seeds;
        for (int q = 0; q < r->n_seeds; q++) {
            /* with T == D the (T+1) x D matrix is metrics.h's (T+1) x T layout */
            metrics_cl c = metrics_cl_compute_field(seed_mat(r, q, m), (size_t)r->T, field_of(m));
            b[q] = c.acc, w[q] = c.bwt, f[q] = c.fwt, g[q] = c.forgetting;
        }
        r->cl[m].acc = stats(b, r->n_seeds), r->cl[m].bwt = stats(w, r->n_seeds);
        r->cl[m].fwt = stats(f, r->n_seeds), r->cl[m].forgetting = stats(g, r->n_seeds);
    }
    free(acc), free(v);
    return 0;
}

/* The results file of cell c into path: its recorded path, else <summary folder>/cells/<name>/
 * results.h5. 0 when found; -1 with the path(s) tried in path. */
static int results_path(const retention_analysis *a, const severity_cell *c, char *path,
                        size_t len) {
    if (is_file(c->results)) {
        snprintf(path, len, "%s", c->results);
        return 0;
    }
    char alt[2400];
    const char *slash = strrchr(a->summary_path, '/');
    if (slash)
        snprintf(alt, sizeof alt, "%.*s/cells/%s/results.h5", (int)(slash - a->summary_path),
                 a->summary_path, c->name);
    else
        snprintf(alt, sizeof alt, "cells/%s/results.h5", c->name);
    if (is_file(alt)) {
        snprintf(path, len, "%s", alt);
        return 0;
    }
    if (*c->results && strcmp(c->results, alt))
        snprintf(path, len, "%s (nor %s)", c->results, alt);
    else
        snprintf(path, len, "%s", alt);
    return -1;
}

/* The reliability bins after stage T of series s, one results file per seed. */
static int series_reliability(retention_analysis *a, int s, const int *use) {
    rseries *r = &a->s[s];
    for (int q = 0; q < r->n_seeds; q++) {
        int done = 0;
        for (int i = 0; !done && i < severity_n_cells(a->t); i++) {
            const severity_cell *c = severity_get_cell(a->t, i);
            if (!use[i] || c->seed != r->seeds[q]) continue;
            char path[5000];
            if (results_path(a, c, path, sizeof path)) {
                strbuf_printf(
                    &a->notes,
                    "cell %s: its results file %s is missing; left out of the pooled reliability "
                    "diagram\n",
                    c->name, path);
                continue;
            }
            report_set *rs = NULL;
            if (report_set_new(&rs)) return -1;
            const int lrc = report_add_run(rs, path);
            if (lrc) {
                if (lrc == REPORT_ERR_NOMEM) {
                    report_set_free(rs);
                    return -1;
                }
                strbuf_printf(
                    &a->notes,
                    "cell %s: its results file cannot be read (%s); left out of the pooled "
                    "reliability diagram\n",
                    c->name, report_errmsg(rs));
                report_set_free(rs);
                continue;
            }
            const int nq = report_run_has_expected(rs, 0) == 1 ? NQ : 1;
            double n[NQ][METRICS_NBINS] = {{0}}, conf[NQ][METRICS_NBINS] = {{0}},
                   corr[NQ][METRICS_NBINS] = {{0}};
            int ok = report_run_n_stages(rs, 0) == r->T;
            if (!ok)
                strbuf_printf(
                    &a->notes,
                    "cell %s: its results file %s has %d domain stages, the summary %d; left out "
                    "of the pooled reliability diagram\n",
                    c->name, path, report_run_n_stages(rs, 0), r->T);
            for (int j = 0; ok && j < r->D; j++) {
                if (!r->trained[j]) continue;
                for (int k = 0; ok && k < nq; k++) {
                    metrics_run m;
                    if (report_get(rs, 0, r->T, r->domains[j], "test", (metrics_readout)k, &m)) {
                        strbuf_printf(
                            &a->notes,
                            "cell %s: its results file %s has no test evaluation of %s after "
                            "stage %d; left out of the pooled reliability diagram\n",
                            c->name, path, r->domains[j], r->T);
                        ok = 0;
                        break;
                    }
                    for (int b = 0; b < METRICS_NBINS; b++) {
                        if (!m.bins[b].count) continue;
                        const double cnt = (double)m.bins[b].count;
                        n[k][b] += cnt;
                        conf[k][b] += cnt * m.bins[b].mean_conf;
                        corr[k][b] += cnt * m.bins[b].accuracy;
                    }
                }
            }
            report_set_free(rs);
            if (!ok) continue;
            for (int k = 0; k < nq; k++) {
                for (int b = 0; b < METRICS_NBINS; b++)
                    r->rel_n[k][b] += n[k][b], r->rel_conf[k][b] += conf[k][b],
                        r->rel_corr[k][b] += round(corr[k][b]);
                r->rel_seeds[k]++;
            }
            done = 1;
        }
    }
    return 0;
}

int retention_build(const severity_table *t, const char *summary_path, int read_results,
                    retention_analysis **out, char *err, size_t errlen) {
    if (!t || !out)
        return rutil_set_err(err, errlen, RETENTION_ERR_ARG, "retention_build: no table");
    *out = NULL;
    retention_analysis *a = calloc(1, sizeof *a);
    const int nc = severity_n_cells(t);
    int *use = calloc((size_t)(nc > 0 ? nc : 1), sizeof *use);
    if (a) {
        a->t = t;
        a->n_series = severity_n_series(t);
        a->read_results = read_results;
        a->summary_path = str_dup(summary_path ? summary_path : "");
        a->s = calloc((size_t)(a->n_series > 0 ? a->n_series : 1), sizeof *a->s);
    }
    int rc = a && use && a->summary_path && a->s ? 0 : -1;
    for (int s = 0; !rc && s < a->n_series; s++) {
        if (!pick_cells(a, s, use)) {
            strbuf_printf(&a->notes,
                          "series %s: no cell of it takes part in the sequence analysis\n",
                          severity_series_name(t, s));
            continue;
        }
        rc = series_numbers(a, s, use);
        if (!rc && read_results) rc = series_reliability(a, s, use);
    }
    free(use);
    if (!rc && a->notes.oom) rc = -1;
    if (rc) {
        retention_free(a);
        return rutil_set_err(err, errlen, RETENTION_ERR_NOMEM, "out of memory");
    }
    *out = a;
    return RETENTION_OK;
}

void retention_free(retention_analysis *a) {
    if (!a) return;
    for (int s = 0; a->s && s < a->n_series; s++)
        rseries_free(&a->s[s]);
    free(a->s), free(a->summary_path), free(a->notes.p);
    free(a);
}

const char *retention_notes(const retention_analysis *a) {
    return a ? strbuf_str(&a->notes) : "";
}

/* ---- queries --------------------------------------------------------------------------------- */

static const rseries *series_at(const retention_analysis *a, int s) {
    return a && s >= 0 && s < a->n_series && a->s[s].ok ? &a->s[s] : NULL;
}

int retention_trained_stage(const retention_analysis *a, int s, const char *domain) {
    const rseries *r = series_at(a, s);
    const int j = r ? domain_index(r, domain) : -1;
    return j >= 0 && r->trained[j] ? r->trained[j] : -1;
}

int retention_n_stages(const retention_analysis *a, int s) {
    const rseries *r = series_at(a, s);
    return r ? r->T : -1;
}

int retention_curve(const retention_analysis *a, int s, const char *domain, int m, int stage,
                    retention_point *out) {
    const rseries *r = series_at(a, s);
    const int j = r ? domain_index(r, domain) : -1;
    if (!out || j < 0 || m < 0 || m >= NM || !r->trained[j] || stage < r->trained[j] ||
        stage > r->T)
        return RETENTION_ERR_ARG;
    *out = r->pt[(size_t)m * cells_of(r) + (size_t)stage * (size_t)r->D + (size_t)j];
    return RETENTION_OK;
}

int retention_matrix(const retention_analysis *a, int s, const char *domain, int m, int stage,
                     double *out) {
    const rseries *r = series_at(a, s);
    const int j = r ? domain_index(r, domain) : -1;
    if (!out || j < 0 || m < 0 || m >= NM || stage < 0 || stage > r->T) return RETENTION_ERR_ARG;
    *out = r->mean[(size_t)m * cells_of(r) + (size_t)stage * (size_t)r->D + (size_t)j];
    return RETENTION_OK;
}

int retention_cl_get(const retention_analysis *a, int s, int m, retention_cl *out) {
    const rseries *r = series_at(a, s);
    if (!out || m < 0 || m >= NM) return RETENTION_ERR_ARG;
    const retention_point none = {0, NAN, NAN, NAN, NAN};
    *out = (retention_cl){none, none, none, none};
    if (!r || !r->cl_ok) return RETENTION_ERR_ARG;
    *out = r->cl[m];
    return RETENTION_OK;
}

/* The pooled bins and ECE of series r under readout q. */
static double pooled_bins(const rseries *r, int q, metrics_bin bins[METRICS_NBINS]) {
    double n = 0, gap = 0;
    for (int b = 0; b < METRICS_NBINS; b++)
        n += r->rel_n[q][b];
    for (int b = 0; b < METRICS_NBINS; b++) {
        const double c = r->rel_n[q][b];
        bins[b].count = (size_t)c;
        bins[b].lo = b * (1.0 / METRICS_NBINS), bins[b].hi = (b + 1) * (1.0 / METRICS_NBINS);
        bins[b].mean_conf = c > 0 ? r->rel_conf[q][b] / c : NAN;
        bins[b].accuracy = c > 0 ? r->rel_corr[q][b] / c : NAN;
        if (c > 0) gap += c / n * fabs(bins[b].mean_conf - bins[b].accuracy);
    }
    return n > 0 ? gap : NAN;
}

int retention_reliability(const retention_analysis *a, int s, metrics_readout q,
                          metrics_bin bins[METRICS_NBINS], double *ece, int *n_seeds) {
    const rseries *r = series_at(a, s);
    if (!r || (int)q < 0 || q >= NQ) return RETENTION_ERR_ARG;
    metrics_bin tmp[METRICS_NBINS];
    const double e = pooled_bins(r, q, bins ? bins : tmp);
    if (ece) *ece = e;
    if (n_seeds) *n_seeds = r->rel_seeds[q];
    return RETENTION_OK;
}

/* ---- the five summary lines -------------------------------------------------------------------
 */

/* Seed q's mean of metric m after stage i over the domains trained by then (NaN skipped). */
static double seed_trained_mean(const rseries *r, int q, int m, int i) {
    const double *R = seed_mat(r, q, m);
    double sum = 0;
    int k = 0;
    for (int j = 0; j < r->D; j++)
        if (r->trained[j] && r->trained[j] <= i && !isnan(R[(size_t)i * (size_t)r->D + (size_t)j]))
            sum += R[(size_t)i * (size_t)r->D + (size_t)j], k++;
    return k ? sum / k : NAN;
}

/* The mean over seeds of seed_trained_mean. */
static double trained_mean(const rseries *r, int m, int i) {
    double sum = 0;
    int k = 0;
    for (int q = 0; q < r->n_seeds; q++) {
        const double v = seed_trained_mean(r, q, m, i);
        if (!isnan(v)) sum += v, k++;
    }
    return k ? sum / k : NAN;
}

/* What the summary lines say of one series. */
typedef struct ssum {
    double ece_last, ece_worst, ece_forg, ece_bwt, acc_last, acc_forg, ocg_last, ocg_min;
    int ece_worst_i, ocg_min_i, ocg_min_j;
} ssum;

static ssum series_summary(const rseries *r) {
    const int ACC = metric_index("accuracy"), ECE = metric_index("ece_expected"),
              OCG = metric_index("ocg_expected");
    ssum u = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, -1, -1, -1};
    if (!r->ok) return u;
    u.ece_last = trained_mean(r, ECE, r->T);
    u.acc_last = trained_mean(r, ACC, r->T);
    u.ocg_last = trained_mean(r, OCG, r->T);
    for (int i = 1; i <= r->T; i++) {
        const double v = trained_mean(r, ECE, i);
        if (!isnan(v) && (u.ece_worst_i < 0 || v > u.ece_worst)) u.ece_worst = v, u.ece_worst_i = i;
    }
    const double *O = r->mean + (size_t)OCG * cells_of(r);
    for (int j = 0; j < r->D; j++)
        for (int i = r->trained[j] ? r->trained[j] : r->T + 1; i <= r->T; i++) {
            const double v = O[(size_t)i * (size_t)r->D + (size_t)j];
            if (!isnan(v) && (u.ocg_min_i < 0 || v < u.ocg_min))
                u.ocg_min = v, u.ocg_min_i = i, u.ocg_min_j = j;
        }
    if (r->cl_ok) {
        u.ece_forg = r->cl[ECE].forgetting.mean, u.ece_bwt = r->cl[ECE].bwt.mean;
        u.acc_forg = r->cl[ACC].forgetting.mean;
    }
    return u;
}

int retention_summary(const retention_analysis *a, int md, char **out) {
    if (!a || !out) return RETENTION_ERR_ARG;
    *out = NULL;
    ssum *u = calloc((size_t)(a->n_series > 0 ? a->n_series : 1), sizeof *u);
    if (!u) return RETENTION_ERR_NOMEM;
    for (int s = 0; s < a->n_series; s++)
        u[s] = series_summary(&a->s[s]);
    const char *B = md ? "**" : "", *Q = md ? "`" : "";
    strbuf b = {0};
    char v1[32], v2[32];
#define SERIES_LOOP for (int s = 0, first = 1; s < a->n_series; s++, first = 0)
#define NAME(s)                                                                                    \
    strbuf_printf(&b, "%s%s%s%s ", first ? " " : "; ", Q, severity_series_name(a->t, s), Q)
    strbuf_printf(&b,
                  "1. %sECE after the last stage%s (expected readout; mean over the trained "
                  "domains, then over "
                  "seeds; worst = the stage after which the mean over the domains trained so far "
                  "is highest):",
                  B, B);
    SERIES_LOOP {
        NAME(s);
        strbuf_printf(&b, "%s", rutil_fmt3(u[s].ece_last, v1, sizeof v1));
        if (u[s].ece_worst_i >= 0)
            strbuf_printf(&b, " (worst %s after stage %d %s)",
                          rutil_fmt3(u[s].ece_worst, v2, sizeof v2), u[s].ece_worst_i,
                          a->s[s].stage_names[u[s].ece_worst_i]);
    }
    strbuf_printf(&b,
                  ".\n2. %sCalibration forgetting%s (ECE, expected readout; forgetting on -ECE and "
                  "BWT, > 0 = "
                  "calibration lost; mean over seeds):",
                  B, B);
    SERIES_LOOP {
        NAME(s);
        strbuf_printf(&b, "forgetting %s, BWT %s", rutil_fmt3(u[s].ece_forg, v1, sizeof v1),
                      rutil_fmt3(u[s].ece_bwt, v2, sizeof v2));
    }
    strbuf_printf(&b,
                  ".\n3. %sAccuracy%s (readout-free; final ACC = mean over the trained domains "
                  "after the last "
                  "stage; forgetting > 0 = accuracy lost; mean over seeds):",
                  B, B);
    SERIES_LOOP {
        NAME(s);
        strbuf_printf(&b, "final ACC %s, forgetting %s", rutil_fmt3(u[s].acc_last, v1, sizeof v1),
                      rutil_fmt3(u[s].acc_forg, v2, sizeof v2));
    }
    strbuf_printf(
        &b,
        ".\n4. %sOCG%s (expected readout; > 0 = overconfident; after the last stage: mean over the "
        "trained domains and seeds; minimum over the trained domains and the stages from their "
        "training "
        "on, of the mean over seeds):",
        B, B);
    SERIES_LOOP {
        NAME(s);
        strbuf_printf(&b, "%s after the last stage", rutil_fmt3(u[s].ocg_last, v1, sizeof v1));
        if (u[s].ocg_min_i >= 0)
            strbuf_printf(&b, ", minimum %s (%s after stage %d %s)",
                          rutil_fmt3(u[s].ocg_min, v2, sizeof v2), a->s[s].domains[u[s].ocg_min_j],
                          u[s].ocg_min_i, a->s[s].stage_names[u[s].ocg_min_i]);
    }
#undef NAME
#undef SERIES_LOOP
    int best = -1, worst = -1;
    for (int s = 0; s < a->n_series; s++) {
        if (!isnan(u[s].ece_forg) && (best < 0 || u[s].ece_forg < u[best].ece_forg)) best = s;
        if (!isnan(u[s].acc_forg) && (worst < 0 || u[s].acc_forg > u[worst].acc_forg)) worst = s;
    }
    strbuf_printf(&b, ".\n5. ");
    if (a->n_series < 2) {
        strbuf_printf(&b, "%sComparison%s: one series only (%s%s%s), nothing to compare.\n", B, B,
                      Q, severity_series_name(a->t, 0), Q);
    } else {
        strbuf_printf(
            &b, "%sCalibration kept best%s (lowest ECE forgetting, expected readout): ", B, B);
        if (best >= 0)
            strbuf_printf(&b, "%s%s%s (%s)", Q, severity_series_name(a->t, best), Q,
                          rutil_fmt3(u[best].ece_forg, v1, sizeof v1));
        else
            strbuf_printf(&b, "n/a (no series has an ECE forgetting: it needs two or more domain "
                              "stages that line "
                              "up with the domains)");
        strbuf_printf(&b, "; %smost accuracy lost%s (highest accuracy forgetting): ", B, B);
        if (worst >= 0)
            strbuf_printf(&b, "%s%s%s (%s).\n", Q, severity_series_name(a->t, worst), Q,
                          rutil_fmt3(u[worst].acc_forg, v1, sizeof v1));
        else
            strbuf_printf(&b, "n/a (no series has an accuracy forgetting).\n");
    }
    free(u);
    if (b.oom) {
        free(b.p);
        return RETENTION_ERR_NOMEM;
    }
    *out = b.p;
    return RETENTION_OK;
}

/* ---- CSV files ------------------------------------------------------------------------------- */

static FILE *open_csv(const char *dir, const char *name, char *path, size_t len, char *err,
                      size_t errlen) {
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        rutil_set_err(err, errlen, RETENTION_ERR_IO, "%s: cannot write: %s; check the --out folder",
                      path, strerror(errno));
    return f;
}

static int close_file(FILE *f, const char *path, char *err, size_t errlen) {
    int bad = ferror(f);
    if (fclose(f) || bad)
        return rutil_set_err(err, errlen, RETENTION_ERR_IO, "%s: writing failed: %s", path,
                             strerror(errno));
    return RETENTION_OK;
}

static void csv_point(FILE *f, const retention_point *p) {
    fprintf(f, ",%d,", p->n_seeds);
    csv_num(f, p->mean), fputc(',', f), csv_num(f, p->min), fputc(',', f), csv_num(f, p->max),
        fputc(',', f);
    csv_num(f, p->sd);
    fputc('\n', f);
}

static int write_csvs(const retention_analysis *a, const char *dir, char *err, size_t errlen) {
    char path[2400];
    FILE *f = open_csv(dir, "retention.csv", path, sizeof path, err, errlen);
    if (!f) return RETENTION_ERR_IO;
    fputs("series,domain,stage,stage_name,metric,n_seeds,mean,min,max,sd\n", f);
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        for (int j = 0; r->ok && j < r->D; j++)
            for (int m = 0; r->trained[j] && m < NM; m++)
                for (int i = r->trained[j]; i <= r->T; i++) {
                    csv_str(f, severity_series_name(a->t, s)), fputc(',', f),
                        csv_str(f, r->domains[j]);
                    fprintf(f, ",%d,", i);
                    csv_str(f, r->stage_names[i]);
                    fprintf(f, ",%s", severity_metric_names[m]);
                    csv_point(
                        f, &r->pt[(size_t)m * cells_of(r) + (size_t)i * (size_t)r->D + (size_t)j]);
                }
    }
    int rc = close_file(f, path, err, errlen);
    if (rc || !(f = open_csv(dir, "cl.csv", path, sizeof path, err, errlen)))
        return rc ? rc : RETENTION_ERR_IO;
    fputs("series,metric,summary,n_seeds,mean,min,max,sd\n", f);
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        for (int m = 0; r->ok && r->cl_ok && m < NM; m++) {
            static const char *const what[4] = {"acc", "bwt", "fwt", "forgetting"};
            const retention_point *p[4] = {&r->cl[m].acc, &r->cl[m].bwt, &r->cl[m].fwt,
                                           &r->cl[m].forgetting};
            for (int k = 0; k < 4; k++) {
                csv_str(f, severity_series_name(a->t, s));
                fprintf(f, ",%s%s,%s", field_of(m) == METRICS_FIELD_OCG ? "abs_" : "",
                        severity_metric_names[m], what[k]);
                csv_point(f, p[k]);
            }
        }
    }
    rc = close_file(f, path, err, errlen);
    if (rc || !(f = open_csv(dir, "reliability.csv", path, sizeof path, err, errlen)))
        return rc ? rc : RETENTION_ERR_IO;
    fputs("series,readout,bin,lo,hi,count,mean_conf,accuracy,n_seeds\n", f);
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        for (int q = 0; r->ok && q < NQ; q++) {
            if (!r->rel_seeds[q]) continue;
            metrics_bin bins[METRICS_NBINS];
            pooled_bins(r, q, bins);
            for (int b = 0; b < METRICS_NBINS; b++) {
                csv_str(f, severity_series_name(a->t, s));
                fprintf(f, ",%s,%d,", metrics_readout_name((metrics_readout)q), b);
                csv_num(f, bins[b].lo), fputc(',', f), csv_num(f, bins[b].hi);
                fprintf(f, ",%zu,", bins[b].count);
                csv_num(f, bins[b].mean_conf), fputc(',', f), csv_num(f, bins[b].accuracy);
                fprintf(f, ",%d\n", r->rel_seeds[q]);
            }
        }
    }
    return close_file(f, path, err, errlen);
}

/* ---- figures --------------------------------------------------------------------------------- */

/* The trained domains over every series, in first-appearance order (series order, then the
 * order of their training stages). *out malloc'd; the count, or -1 when out of memory. */
static int trained_domains(const retention_analysis *a, const char ***out) {
    int cap = 0, n = 0;
    for (int s = 0; s < a->n_series; s++)
        cap += a->s[s].ok ? a->s[s].D : 0;
    const char **v = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *v);
    if (!v) return -1;
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        for (int i = 1; r->ok && i <= r->T; i++)
            for (int j = 0; j < r->D; j++) {
                if (r->trained[j] != i) continue;
                int k = 0;
                while (k < n && strcmp(v[k], r->domains[j]))
                    k++;
                if (k == n) v[n++] = r->domains[j];
            }
    }
    *out = v;
    return n;
}

/* The label of stage i for the tables and figures: "i name" where every series with stage i agrees.
 */
static void stage_label(const retention_analysis *a, int i, char *buf, size_t len) {
    const char *nm = NULL;
    int agree = 1;
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        if (!r->ok || i > r->T) continue;
        if (nm && strcmp(nm, r->stage_names[i])) agree = 0;
        nm = r->stage_names[i];
    }
    if (agree && nm)
        snprintf(buf, len, "%d %s", i, nm);
    else
        snprintf(buf, len, "%d", i);
}

/* The x range of a domain's curves: from its earliest training stage over the series to the
 * largest T among them; x labels "i name" where every series that has stage i agrees on its
 * name, else "i". labels: nx entries of 64 bytes. */
typedef struct xrange {
    int x0, nx;
    char (*lab)[64];
    const char **names;
} xrange;

static int domain_xrange(const retention_analysis *a, const char *domain, xrange *x) {
    int lo = -1, hi = -1;
    for (int s = 0; s < a->n_series; s++) {
        const int t = retention_trained_stage(a, s, domain);
        if (t < 0) continue;
        if (lo < 0 || t < lo) lo = t;
        if (a->s[s].T > hi) hi = a->s[s].T;
    }
    x->x0 = lo, x->nx = lo < 0 ? 0 : hi - lo + 1;
    x->lab = calloc((size_t)(x->nx > 0 ? x->nx : 1), sizeof *x->lab);
    x->names = calloc((size_t)(x->nx > 0 ? x->nx : 1), sizeof *x->names);
    if (!x->lab || !x->names) return -1;
    for (int k = 0; k < x->nx; k++) {
        stage_label(a, lo + k, x->lab[k], sizeof x->lab[k]);
        x->names[k] = x->lab[k];
    }
    return 0;
}

static void xrange_free(xrange *x) {
    free(x->lab), free(x->names);
}

/* The curves of metric m on domain over x: one plot_series per series that trains it (buf:
 * 4 * nx doubles per series). Returns the number of series filled; *top = the largest value or
 * band end drawn. */
static int curves(const retention_analysis *a, const char *domain, int m, const xrange *x,
                  plot_series *ser, double *buf, double *top) {
    int n = 0;
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        const int t = retention_trained_stage(a, s, domain);
        if (t < 0) continue;
        double *xs = buf + (size_t)n * 4 * (size_t)x->nx, *y = xs + x->nx, *lo = y + x->nx,
               *hi = lo + x->nx;
        int k = 0, banded = 0;
        for (int i = t; i <= r->T; i++, k++) {
            retention_point p = {0, NAN, NAN, NAN, NAN};
            retention_curve(a, s, domain, m, i, &p);
            xs[k] = i - x->x0, y[k] = p.mean;
            lo[k] = p.n_seeds >= 2 ? p.min : NAN, hi[k] = p.n_seeds >= 2 ? p.max : NAN;
            banded |= p.n_seeds >= 2;
            if (isfinite(y[k]) && y[k] > *top) *top = y[k];
            if (isfinite(hi[k]) && hi[k] > *top) *top = hi[k];
        }
        ser[n++] = (plot_series){.name = severity_series_name(a->t, s),
                                 .x = xs,
                                 .y = y,
                                 .lo = banded ? lo : NULL,
                                 .hi = banded ? hi : NULL,
                                 .n = (size_t)k,
                                 .color = s % PLOT_NCOLORS + 1};
    }
    return n;
}

/* A y range: accuracy 0..1, ECE 0..(the largest value, rounded up to 0.1, at least 0.1), others
 * automatic. */
static void y_range(int m, double top, double *ymin, double *ymax) {
    const metrics_field f = field_of(m);
    *ymin = *ymax = NAN;
    if (f == METRICS_FIELD_ACCURACY) *ymin = 0, *ymax = 1;
    if (f == METRICS_FIELD_ECE) *ymin = 0, *ymax = fmin(1.0, fmax(0.1, ceil(top * 10 - 1e-9) / 10));
}

/* The longest series name, in characters: legends need about 5.6 points per character. */
static double legend_width(const retention_analysis *a) {
    size_t L = 0;
    for (int s = 0; s < a->n_series; s++) {
        const size_t l = strlen(severity_series_name(a->t, s));
        if (l > L) L = l;
    }
    return 5.6 * (double)L + 52;
}

/* Draws fig as PNG and SVG (stem.png, stem.svg) with draw(); a figure too small for its labels
 * is drawn again at the default size. */
typedef plot_status (*draw_fn)(const plot_figure *fig, const void *arg);

static int draw_both(const char *dir, const char *stem, plot_figure fig, draw_fn draw,
                     const void *arg, int svg, char *err, size_t errlen) {
    for (int e = 0; e < (svg ? 2 : 1); e++) {
        char p[2400];
        snprintf(p, sizeof p, "%s/%s.%s", dir, stem, e ? "svg" : "png");
        fig.path = p;
        plot_status st = draw(&fig, arg);
        if (st == PLOT_ERR_ARG && (fig.width > 0 || fig.height > 0)) {
            plot_figure big = fig;
            big.width = big.height = 0;
            st = draw(&big, arg);
        }
        if (st != PLOT_OK)
            return rutil_set_err(err, errlen, RETENTION_ERR_PLOT, "%s", plot_errmsg());
    }
    return RETENTION_OK;
}

typedef struct curve_arg {
    const xrange *x;
    const plot_panel *panel;
} curve_arg;

static plot_status draw_curve(const plot_figure *fig, const void *arg) {
    const curve_arg *c = arg;
    return plot_retention_curves(fig, c->x->names, (size_t)c->x->nx, c->panel, 1);
}

typedef struct grid_arg {
    const plot_grid_column *cols;
    size_t n_cols, n_rows;
} grid_arg;

static plot_status draw_grid(const plot_figure *fig, const void *arg) {
    const grid_arg *g = arg;
    return plot_retention_grid(fig, g->cols, g->n_cols, g->n_rows);
}

typedef struct rel_arg {
    const metrics_bin *bins;
    double ece;
} rel_arg;

static plot_status draw_rel(const plot_figure *fig, const void *arg) {
    const rel_arg *r = arg;
    return plot_reliability_diagram(fig, r->bins, r->ece);
}

/* retention_<domain>_<metric>.png/.svg of every trained domain and curve metric. */
static int curve_figures(const retention_analysis *a, const char *dir, const char **doms, int nd,
                         char *err, size_t errlen) {
    int rc = RETENTION_OK;
    for (int d = 0; !rc && d < nd; d++) {
        xrange x = {0};
        plot_series *ser = calloc((size_t)a->n_series + 1, sizeof *ser);
        double *buf = NULL;
        if (domain_xrange(a, doms[d], &x) || !ser ||
            !(buf = malloc(((size_t)a->n_series + 1) * 4 * (size_t)(x.nx + 1) * sizeof *buf))) {
            xrange_free(&x), free(ser), free(buf);
            return rutil_set_err(err, errlen, RETENTION_ERR_NOMEM, "out of memory");
        }
        for (int k = 0; !rc && k < N_CURVE_METRICS; k++) {
            const int m = metric_index(k_curve_metrics[k]);
            double top = 0;
            const int ns = curves(a, doms[d], m, &x, ser, buf, &top);
            char title[300], ylabel[160], t1[80], stem[300], safe[128];
            plot_panel p = {.ylabel = ylabel, .series = ser, .n_series = (size_t)ns};
            y_range(m, top, &p.ymin, &p.ymax);
            snprintf(ylabel, sizeof ylabel, "%s", metric_short(m, t1, sizeof t1));
            snprintf(title, sizeof title, "Domain %s: %s after each stage (test split)", doms[d],
                     ylabel);
            snprintf(stem, sizeof stem, "retention_%s_%s",
                     rutil_safe_name(doms[d], safe, sizeof safe), severity_metric_names[m]);
            plot_figure fig = plot_figure_default();
            fig.title = title, fig.xlabel = "after stage",
            fig.band_note = "bands: min-max over seeds";
            fig.width = fmin(720, fmax(380, legend_width(a) / 0.3)), fig.height = 270;
            const curve_arg arg = {&x, &p};
            rc = draw_both(dir, stem, fig, draw_curve, &arg, 1, err, errlen);
        }
        xrange_free(&x), free(ser), free(buf);
    }
    return rc;
}

/* retention.png/.svg: rows accuracy, ECE and OCG of the expected readout, one column per trained
 * domain (the first GRID_MAX_DOMAINS). */
static int grid_figure(const retention_analysis *a, const char *dir, const char **doms, int nd,
                       char *err, size_t errlen) {
    const int nc = nd < GRID_MAX_DOMAINS ? nd : GRID_MAX_DOMAINS;
    const size_t per = (size_t)a->n_series + 1;
    xrange *x = calloc((size_t)nc, sizeof *x);
    plot_grid_column *cols = calloc((size_t)nc, sizeof *cols);
    plot_panel *panels = calloc((size_t)nc * N_GRID_METRICS, sizeof *panels);
    plot_series *ser = calloc((size_t)nc * N_GRID_METRICS * per, sizeof *ser);
    double **bufs = calloc((size_t)nc, sizeof *bufs);
    int rc = x && cols && panels && ser && bufs ? RETENTION_OK : RETENTION_ERR_NOMEM;
    for (int c = 0; !rc && c < nc; c++)
        if (domain_xrange(a, doms[c], &x[c]) ||
            !(bufs[c] = malloc(N_GRID_METRICS * per * 4 * (size_t)(x[c].nx + 1) * sizeof **bufs)))
            rc = RETENTION_ERR_NOMEM;
    double top[N_GRID_METRICS] = {0};
    for (int c = 0; !rc && c < nc; c++) {
        for (int k = 0; k < N_GRID_METRICS; k++) {
            const int m = metric_index(k_grid_metrics[k]);
            plot_series *sk = ser + ((size_t)c * N_GRID_METRICS + (size_t)k) * per;
            const int ns = curves(a, doms[c], m, &x[c], sk,
                                  bufs[c] + (size_t)k * per * 4 * (size_t)(x[c].nx + 1), &top[k]);
            panels[(size_t)c * N_GRID_METRICS + (size_t)k] =
                (plot_panel){.series = sk, .n_series = (size_t)ns};
        }
        cols[c] = (plot_grid_column){.title = doms[c],
                                     .stage_names = x[c].names,
                                     .n_stages = (size_t)x[c].nx,
                                     .panels = panels + (size_t)c * N_GRID_METRICS};
    }
    static const char *const ylab[N_GRID_METRICS] = {"accuracy", "ECE (expected)",
                                                     "OCG (expected)"};
    for (int k = 0; !rc && nc > 0 && k < N_GRID_METRICS; k++) {
        plot_panel *p = &panels[k];
        p->ylabel = ylab[k];
        y_range(metric_index(k_grid_metrics[k]), top[k], &p->ymin, &p->ymax);
    }
    if (rc == RETENTION_ERR_NOMEM) rc = rutil_set_err(err, errlen, rc, "out of memory");
    if (!rc && nc > 0) {
        plot_figure fig = plot_figure_default();
        fig.title = "Retention on the test split after each stage (mean over seeds)";
        fig.xlabel = "after stage";
        fig.band_note = "bands: min-max over seeds";
        fig.width = fmax(190 + 170 * nc, legend_width(a) / 0.25);
        fig.height = 440;
        fig.png_scale = 1.25; /* a small PNG for README.md */
        const grid_arg g = {cols, (size_t)nc, N_GRID_METRICS};
        rc = draw_both(dir, "retention", fig, draw_grid, &g, 1, err, errlen);
    }
    for (int c = 0; x && c < nc; c++)
        xrange_free(&x[c]);
    for (int c = 0; bufs && c < nc; c++)
        free(bufs[c]);
    free(x), free(cols), free(panels), free(ser), free(bufs);
    return rc;
}

/* reliability_<series>_<readout>.png/.svg of every series and readout with a results file read. */
static int reliability_figures(const retention_analysis *a, const char *dir, char *err,
                               size_t errlen) {
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        for (int q = 0; r->ok && q < NQ; q++) {
            if (!r->rel_seeds[q]) continue;
            metrics_bin bins[METRICS_NBINS];
            const rel_arg arg = {bins, pooled_bins(r, q, bins)};
            int ntr = 0;
            for (int j = 0; j < r->D; j++)
                ntr += r->trained[j] != 0;
            const char *rn = metrics_readout_name((metrics_readout)q);
            char title[400], xl[64], stem[300], safe[200];
            snprintf(title, sizeof title,
                     "%s: after stage %d %s, %d domain%s and %d seed%s pooled (test, %s)",
                     severity_series_name(a->t, s), r->T, r->stage_names[r->T], ntr,
                     ntr == 1 ? "" : "s", r->rel_seeds[q], r->rel_seeds[q] == 1 ? "" : "s", rn);
            snprintf(xl, sizeof xl, "confidence (%s readout)", rn);
            snprintf(stem, sizeof stem, "reliability_%s_%s",
                     rutil_safe_name(severity_series_name(a->t, s), safe, sizeof safe), rn);
            plot_figure fig = plot_figure_default();
            fig.title = title, fig.xlabel = xl;
            fig.width = 400, fig.height = 460;
            int rc = draw_both(dir, stem, fig, draw_rel, &arg, 1, err, errlen);
            if (rc) return rc;
        }
    }
    return RETENTION_OK;
}

/* ---- report.md --------------------------------------------------------------------------------
 */

/* The matrix (mean over seeds) of metric m, series side by side, then its CL summaries. */
static void metric_section(strbuf *b, const retention_analysis *a, int m) {
    char t1[80], v[64];
    const int ocg = field_of(m) == METRICS_FIELD_OCG,
              lower = metrics_field_direction(field_of(m)) == METRICS_DIRECTION_LOWER;
    strbuf_printf(b, "\n### %s\n\n", metric_title(m, t1, sizeof t1));
    strbuf_printf(
        b,
        "Stage x domain matrix, mean over seeds (rows: the model after stage i, 0 = base; columns: "
        "`series`: domain):\n\n| after stage |");
    int maxT = 0;
    for (int s = 0; s < a->n_series; s++) {
        const rseries *r = &a->s[s];
        if (r->ok && r->T > maxT) maxT = r->T;
        for (int j = 0; r->ok && j < r->D; j++)
            strbuf_printf(b, " `%s`: %s |", severity_series_name(a->t, s), r->domains[j]);
    }
    strbuf_printf(b, "\n|:---|");
    for (int s = 0; s < a->n_series; s++)
        for (int j = 0; a->s[s].ok && j < a->s[s].D; j++)
            strbuf_printf(b, "---:|");
    strbuf_printf(b, "\n");
    for (int i = 0; i <= maxT; i++) {
        stage_label(a, i, t1, sizeof t1);
        strbuf_printf(b, "| %s |", t1);
        for (int s = 0; s < a->n_series; s++) {
            const rseries *r = &a->s[s];
            for (int j = 0; r->ok && j < r->D; j++) {
                double x = NAN;
                if (i <= r->T)
                    x = r->mean[(size_t)m * cells_of(r) + (size_t)i * (size_t)r->D + (size_t)j];
                strbuf_printf(b, " %s |", i <= r->T ? rutil_fmt3(x, v, sizeof v) : "");
            }
        }
        strbuf_printf(b, "\n");
    }
    if (field_of(m) ==
        METRICS_FIELD_FORMAT_FAIL_RATE) { /* flag what can make calibration look good */
        int flagged = 0;
        for (int s = 0; s < a->n_series; s++) {
            const rseries *r = &a->s[s];
            for (int i = 0; r->ok && i <= r->T; i++)
                for (int j = 0; j < r->D; j++) {
                    const double x =
                        r->mean[(size_t)m * cells_of(r) + (size_t)i * (size_t)r->D + (size_t)j];
                    if (!(x > METRICS_FORMAT_FAIL_FLAG)) continue;
                    stage_label(a, i, t1, sizeof t1);
                    if (!flagged++)
                        strbuf_printf(b,
                                      "\n**Above %.2f** (a completion without a confidence reads "
                                      "0, so calibration "
                                      "there looks better than it is): ",
                                      METRICS_FORMAT_FAIL_FLAG);
                    else
                        strbuf_printf(b, "; ");
                    strbuf_printf(b, "`%s` %s after stage %s: %.3f", severity_series_name(a->t, s),
                                  r->domains[j], t1, x);
                }
        }
        if (flagged)
            strbuf_printf(b, ".\n");
        else
            strbuf_printf(b, "\nNo cell above %.2f.\n", METRICS_FORMAT_FAIL_FLAG);
    }
    strbuf_printf(
        b, "\nCL summaries%s, mean [min, max] over seeds%s:\n\n| summary |",
        ocg ? " on \\|OCG\\| (the distance from calibration, read like ECE: forgetting on "
              "-\\|OCG\\|)"
            : "",
        lower ? " (BWT > 0 = the metric grew, calibration lost; forgetting on -R, > 0 = lost)"
        : ocg ? " (BWT > 0 = further from calibration; forgetting > 0 = lost)"
              : " (BWT < 0 and forgetting > 0 = lost)");
    for (int s = 0; s < a->n_series; s++)
        strbuf_printf(b, " `%s` |", severity_series_name(a->t, s));
    strbuf_printf(b, "\n|:---|");
    for (int s = 0; s < a->n_series; s++)
        strbuf_printf(b, "---:|");
    strbuf_printf(b, "\n");
    static const char *const what[4] = {"ACC", "BWT", "FWT", "forgetting"};
    for (int k = 0; k < 4; k++) {
        strbuf_printf(b, "| %s%s |", ocg ? "\\|OCG\\| " : "", what[k]);
        for (int s = 0; s < a->n_series; s++) {
            const rseries *r = &a->s[s];
            const retention_point none = {0, NAN, NAN, NAN, NAN};
            const retention_point *p = !r->ok || !r->cl_ok ? &none
                                       : k == 0            ? &r->cl[m].acc
                                       : k == 1            ? &r->cl[m].bwt
                                       : k == 2            ? &r->cl[m].fwt
                                                           : &r->cl[m].forgetting;
            strbuf_printf(b, " %s |", fmt_point(p, v, sizeof v));
        }
        strbuf_printf(b, "\n");
    }
}

static int write_report(const retention_analysis *a, const char *dir, int figures,
                        const char **doms, int nd, char *err, size_t errlen) {
    strbuf b = {0};
    int seeds = 0;
    for (int s = 0; s < a->n_series; s++)
        seeds = a->s[s].n_seeds > seeds ? a->s[s].n_seeds : seeds;
    strbuf_printf(
        &b,
        "# Sweep report\n\nWritten by `caopd analyze` from `%s` (%d cells, %d series, up to %d "
        "seeds "
        "per series). Test split throughout; every value is a mean over seeds (the cells of one "
        "seed, "
        "which differ only in ood_severity, are averaged first), with [min, max] over seeds where "
        "two or "
        "more seeds have it. Readouts: *greedy* (the stated number) and *expected* (its "
        "expectation under "
        "the model; calibration targets are stated on it); accuracy is readout-free. Definitions: "
        "docs/sweep.md (\"Analysis\"), docs/analysis.md, docs/metrics.md.\n\n",
        a->summary_path, severity_n_cells(a->t), a->n_series, seeds);
    char *sum = NULL;
    if (retention_summary(a, 1, &sum)) {
        free(b.p);
        return rutil_set_err(err, errlen, RETENTION_ERR_NOMEM, "out of memory");
    }
    strbuf_printf(&b, "## Summary\n\n%s", sum);
    free(sum);
    strbuf_printf(
        &b,
        "\nData: [retention.csv](retention.csv) (the curves), [cl.csv](cl.csv) (the CL summaries), "
        "[reliability.csv](reliability.csv) (the pooled bins), [severity.csv](severity.csv) and "
        "[severity.md](severity.md) (against OOD severity).\n");

    strbuf_printf(&b, "\n## Retention curves\n\nEach trained domain's metric on the test split "
                      "after every stage from "
                      "its training stage on; one line per series, mean over seeds, band min-max "
                      "over seeds.\n\n");
    if (figures && nd > 0) {
        strbuf_printf(&b, "![Retention: accuracy, ECE and OCG (expected readout) of each "
                          "domain](retention.png)\n\n");
        if (nd > GRID_MAX_DOMAINS)
            strbuf_printf(&b,
                          "(retention.png shows the first %d of the %d trained domains; the "
                          "per-domain figures "
                          "below show all.)\n\n",
                          GRID_MAX_DOMAINS, nd);
        strbuf_printf(&b, "| domain |");
        char t1[80], safe[128];
        for (int k = 0; k < N_CURVE_METRICS; k++)
            strbuf_printf(&b, " %s |",
                          metric_short(metric_index(k_curve_metrics[k]), t1, sizeof t1));
        strbuf_printf(&b, "\n|:---|");
        for (int k = 0; k < N_CURVE_METRICS; k++)
            strbuf_printf(&b, ":---|");
        strbuf_printf(&b, "\n");
        for (int d = 0; d < nd; d++) {
            strbuf_printf(&b, "| %s |", doms[d]);
            for (int k = 0; k < N_CURVE_METRICS; k++)
                strbuf_printf(&b, " [png](retention_%s_%s.png), [svg](retention_%s_%s.svg) |",
                              rutil_safe_name(doms[d], safe, sizeof safe), k_curve_metrics[k], safe,
                              k_curve_metrics[k]);
            strbuf_printf(&b, "\n");
        }
    } else if (nd == 0)
        strbuf_printf(&b, "(none: no series trains a domain)\n");
    else
        strbuf_printf(&b, "(figures not written: --no-figures; the data is in retention.csv)\n");

    strbuf_printf(
        &b,
        "\n## Continual learning per series\n\nOne section per metric: the stage x domain matrix "
        "of "
        "each series side by side, then ACC = mean over domains after the last stage, BWT, FWT and "
        "forgetting (docs/analysis.md, \"How the CL metrics are derived\"), each computed per seed "
        "and "
        "then summarised over seeds.\n");
    for (int k = 0; k < N_TABLE_METRICS; k++)
        metric_section(&b, a, metric_index(k_table_metrics[k]));

    strbuf_printf(
        &b,
        "\n## OCG and ECE against OOD severity (after the last stage)\n\nPer series, mean over the "
        "evaluation domains and seeds, severity 0 = the test split: table in "
        "[severity.md](severity.md)");
    if (figures) {
        strbuf_printf(&b, "; figures:\n\n");
        for (int k = 0; k < severity_n_kinds(a->t); k++) {
            const char *kind = severity_kind(a->t, k);
            strbuf_printf(&b,
                          "- %s: [OCG expected](severity_%s_ocg_expected.png), [ECE "
                          "expected](severity_%s_ece_"
                          "expected.png), [OCG greedy](severity_%s_ocg_greedy.png), [ECE "
                          "greedy](severity_%s_ece_"
                          "greedy.png), [accuracy](severity_%s_accuracy.png)\n",
                          kind, kind, kind, kind, kind, kind);
        }
        for (int k = 0; k < severity_n_kinds(a->t); k++)
            strbuf_printf(&b,
                          "\n![OCG (expected) against severity, %s](severity_%s_ocg_expected.png)\n"
                          "![ECE (expected) against severity, %s](severity_%s_ece_expected.png)\n",
                          severity_kind(a->t, k), severity_kind(a->t, k), severity_kind(a->t, k),
                          severity_kind(a->t, k));
    } else
        strbuf_printf(&b, ".\n");

    strbuf_printf(&b, "\n## Reliability after the last stage\n\nPer series: the test-split samples "
                      "of every trained "
                      "domain after the last stage, pooled over the seeds (one results file per "
                      "seed: its cells train "
                      "the same model and evaluate the same test samples); 10 equal-width bins; "
                      "ECE of the pooled "
                      "bins.\n\n");
    if (!a->read_results)
        strbuf_printf(&b, "(not computed: the results files were not read)\n");
    else {
        strbuf_printf(
            &b, "| series | readout | seeds | n | ECE (pooled) |%s\n|:---|:---|---:|---:|---:|%s\n",
            figures ? " figure |" : "", figures ? ":---|" : "");
        for (int s = 0; s < a->n_series; s++)
            for (int q = 0; a->s[s].ok && q < NQ; q++) {
                metrics_bin bins[METRICS_NBINS];
                double ece = NAN;
                int ns = 0;
                retention_reliability(a, s, (metrics_readout)q, bins, &ece, &ns);
                size_t n = 0;
                for (int k = 0; k < METRICS_NBINS; k++)
                    n += bins[k].count;
                char v[32], safe[200];
                const char *rn = metrics_readout_name((metrics_readout)q);
                strbuf_printf(&b, "| `%s` | %s | %d | %zu | %s |", severity_series_name(a->t, s),
                              rn, ns, n, rutil_fmt3(ece, v, sizeof v));
                if (figures && ns)
                    strbuf_printf(&b,
                                  " [png](reliability_%s_%s.png), [svg](reliability_%s_%s.svg) |",
                                  rutil_safe_name(severity_series_name(a->t, s), safe, sizeof safe),
                                  rn, safe, rn);
                else if (figures)
                    strbuf_printf(&b, " |");
                strbuf_printf(&b, "\n");
            }
        if (figures) {
            strbuf_printf(&b, "\n");
            for (int s = 0; s < a->n_series; s++) {
                if (!a->s[s].ok || !a->s[s].rel_seeds[METRICS_READOUT_EXPECTED]) continue;
                char safe[200];
                rutil_safe_name(severity_series_name(a->t, s), safe, sizeof safe);
                strbuf_printf(
                    &b, "![reliability of %s, expected readout](reliability_%s_expected.png)\n",
                    severity_series_name(a->t, s), safe);
            }
        }
    }
    if (a->notes.n) {
        strbuf_printf(&b, "\n## Notes\n\n");
        const char *p = strbuf_str(&a->notes);
        while (*p) {
            const char *e = strchr(p, '\n');
            const size_t len = e ? (size_t)(e - p) : strlen(p);
            strbuf_printf(&b, "- %.*s\n", (int)len, p);
            p += len + (e ? 1 : 0);
        }
    }
    if (b.oom) {
        free(b.p);
        return rutil_set_err(err, errlen, RETENTION_ERR_NOMEM, "out of memory");
    }
    char path[2400];
    snprintf(path, sizeof path, "%s/report.md", dir);
    FILE *f = fopen(path, "w");
    int rc = RETENTION_OK;
    if (!f)
        rc = rutil_set_err(err, errlen, RETENTION_ERR_IO, "%s: cannot write: %s", path,
                           strerror(errno));
    else {
        fputs(b.p, f);
        rc = close_file(f, path, err, errlen);
    }
    free(b.p);
    return rc;
}

int retention_write(const retention_analysis *a, const char *dir, int figures, char *err,
                    size_t errlen) {
    if (!a || !dir || !*dir)
        return rutil_set_err(err, errlen, RETENTION_ERR_ARG,
                             "retention_write: no analysis or output folder");
    if (file_mkdir_p(dir))
        return rutil_set_err(err, errlen, RETENTION_ERR_IO,
                             "%s: cannot create the output folder: %s", dir, strerror(errno));
    int rc = write_csvs(a, dir, err, errlen);
    if (rc) return rc;
    const char **doms = NULL;
    const int nd = trained_domains(a, &doms);
    if (nd < 0) return rutil_set_err(err, errlen, RETENTION_ERR_NOMEM, "out of memory");
    if (figures) rc = curve_figures(a, dir, doms, nd, err, errlen);
    if (!rc && figures) rc = grid_figure(a, dir, doms, nd, err, errlen);
    if (!rc && figures) rc = reliability_figures(a, dir, err, errlen);
    if (!rc) rc = write_report(a, dir, figures, doms, nd, err, errlen);
    free(doms);
    return rc;
}
