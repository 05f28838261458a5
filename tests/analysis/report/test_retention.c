/* test_retention: the stage-sequence analysis of a sweep (analysis/report/retention.h) on a summary
 * and results files written by hand: 2 series (caopd, sdft) x 2 seeds, 3 domain stages over 3
 * domains (mod, count, rev), one seed with two severity cells (averaged first, NaN skipped).
 * Checks the retention-curve points and bands, the CL summaries per series against hand-computed
 * values (accuracy, ECE expected, |OCG| expected), the reliability bins pooled from per-sample
 * data (one results file per seed; a missing file named and replaced by the seed's next cell),
 * the five summary lines of report.md parsed back, retention.csv / cl.csv / reliability.csv,
 * the figures (valid PNG and SVG, retention.png small), NaN handling, and a sweep of one stage. */
#include <cairo.h>
#ifdef PLOT_TEST_FCFINI
#include <fontconfig/fontconfig.h>
#endif

#include "tests/analysis/report/report_testutil.h"
#include "analysis/report/retention.h"
#include "analysis/report/severity.h"

#define TOL 1e-12
#define NST 4 /* stages 0..3 */
#define ND 3
#define NS 4 /* samples per (stage, domain) in the results files */

static const char *const k_doms[ND] = {"mod", "count", "rev"};
static const char *const k_stage[NST] = {"base", "mod", "count", "rev"};

typedef struct hcell {
    int series, seed, sev, has_results;
} hcell;
/* cells 0, 1: caopd seed 1 (severities 1, 2); 2: caopd seed 2; 3: sdft seed 1 (its results file
 * missing); 4: sdft seed 2 */
static const hcell k_cells[5] = {
    {0, 1, 1, 1}, {0, 1, 2, 1}, {0, 2, 1, 1}, {1, 1, 1, 0}, {1, 2, 1, 1}};
#define NCELLS 5
static const char *const k_method[2] = {"caopd", "sdft"};

/* Per (series, seed - 1): accuracy, ECE (expected) and OCG (expected) after stage i (rows) on
 * domain j (columns); the cells of caopd seed 1 differ at accuracy [3][mod] (0.55 and 0.65,
 * mean 0.60) and cell 1 has NaN at accuracy [3][count] (so the seed's value is cell 0's 0.70). */
static const double k_acc[2][2][NST][ND] = {
    {{{.10, .20, .30}, {.90, .25, .35}, {.70, .80, .40}, {.60, .70, .90}},
     {{.10, .20, .30}, {.80, .25, .35}, {.80, .90, .40}, {.50, .80, .70}}},
    {{{.10, .20, .30}, {.90, .25, .35}, {.30, .85, .40}, {.20, .30, .95}},
     {{.10, .20, .30}, {.85, .25, .35}, {.40, .80, .40}, {.10, .40, .85}}}};
static const double k_ece[2][2][NST][ND] = {
    {{{.30, .30, .30}, {.05, .30, .30}, {.08, .06, .30}, {.10, .07, .04}},
     {{.30, .30, .30}, {.07, .30, .30}, {.09, .05, .30}, {.12, .09, .06}}},
    {{{.30, .30, .30}, {.04, .30, .30}, {.30, .10, .30}, {.20, .15, .05}},
     {{.30, .30, .30}, {.06, .30, .30}, {.40, .12, .30}, {.22, .17, .03}}}};
static const double k_ocg[2][2][NST][ND] = {
    {{{.20, .20, .20}, {.05, .20, .20}, {-.10, .08, .20}, {.02, -.04, .06}},
     {{.20, .20, .20}, {.03, .20, .20}, {-.06, .04, .20}, {.04, -.02, .08}}},
    {{{.20, .20, .20}, {.30, .20, .20}, {.35, .25, .20}, {.40, .30, .10}},
     {{.20, .20, .20}, {.32, .20, .20}, {.33, .27, .20}, {.38, .28, .12}}}};

/* The other metrics: a formula; sdft seed 2 has NaN brier_expected at [3][rev], both sdft seeds
 * NaN spr_greedy at [0][mod]. */
static double k_other(int m, int series, int seed, int i, int j) {
    const char *nm = severity_metric_names[m];
    if (series == 1 && seed == 2 && i == 3 && j == 2 && !strcmp(nm, "brier_expected")) return NAN;
    if (series == 1 && i == 0 && j == 0 && !strcmp(nm, "spr_greedy")) return NAN;
    return 0.01 * m + 0.05 * i + 0.02 * j + 0.003 * seed + 0.1 * series;
}

static int midx(const char *name) {
    for (int m = 0; m < SEVERITY_N_METRICS; m++)
        if (!strcmp(severity_metric_names[m], name)) return m;
    return -1;
}

/* The seed's value (its cells averaged) of metric m. */
static double seed_value(int m, int series, int seed, int i, int j) {
    const char *nm = severity_metric_names[m];
    if (!strcmp(nm, "accuracy")) return k_acc[series][seed - 1][i][j];
    if (!strcmp(nm, "ece_expected")) return k_ece[series][seed - 1][i][j];
    if (!strcmp(nm, "ocg_expected")) return k_ocg[series][seed - 1][i][j];
    return k_other(m, series, seed, i, j);
}

/* A cell's own value. */
static double cell_value(int c, int m, int i, int j) {
    const hcell *h = &k_cells[c];
    if (!strcmp(severity_metric_names[m], "accuracy") && i == 3 && c <= 1) {
        if (j == 0) return c == 0 ? 0.55 : 0.65;
        if (j == 1 && c == 1) return NAN;
    }
    return seed_value(m, h->series, h->seed, i, j);
}

static void cell_name(int c, char *buf, size_t len) {
    snprintf(buf, len, "%03d_method-%s_seed-%d_sev-%d", c, k_method[k_cells[c].series],
             k_cells[c].seed, k_cells[c].sev);
}

/* ---- per-sample data of the results files -----------------------------------------------------
 */

/* Sample s of cell c, stage i, domain j: greedy confidence 0.65/0.75/0.85 (bins 6..8), expected
 * 0.05 + 0.1 k (bin k), correct alternating. */
static double g_conf(int c, int j, int s) {
    return 0.65 + 0.1 * ((j + s + c) % 3);
}
static double e_conf(int c, int j, int s) {
    return 0.05 + 0.1 * ((4 * j + s + 3 * c) % 10);
}
static uint8_t correct_of(int c, int i, int j, int s) {
    return (uint8_t)((s + j + c + i) % 2 == 0);
}

/* <dir>/results.h5 of cell c: stages 0..3, domains mod, count, rev, the test split. */
static int write_results(const char *dir, int c) {
    char path[1000];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    ckpt_writer *w = NULL;
    ckpt_error e;
    if (ckpt_writer_open(&w, path, CKPT_FORMAT_RESULTS, 2, NULL, &e)) {
        fprintf(stderr, "write_results: %s\n", e.msg);
        return -1;
    }
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"format\": \"caopd-experiment\", \"version\": 1, \"seed\": %d, \"stages\": "
             "[{\"domain\": \"mod\"}, {\"domain\": \"count\"}, {\"domain\": \"rev\"}]}",
             k_cells[c].seed);
    ckpt_writer_set_attr_str(w, "", "spec", spec);
    ckpt_writer_set_attr_str(w, "", "versions", "test");
    ckpt_writer_set_attr_str(w, "", "status", "finished");
    ckpt_writer_set_attr_i64(w, "", "n_stages", 3);
    ckpt_writer_set_attr_str(w, "", "domains", "mod,count,rev");
    ckpt_writer_set_attr_str(w, "", "splits", "test");
    for (int i = 0; i < NST; i++) {
        char g[256];
        snprintf(g, sizeof g, "stages/%d", i);
        ckpt_writer_set_attr_str(w, g, "name", k_stage[i]);
        ckpt_writer_set_attr_str(w, g, "method", i ? k_method[k_cells[c].series] : "sft");
        ckpt_writer_set_attr_i64(w, g, "steps", 4);
        for (int j = 0; j < ND; j++) {
            snprintf(g, sizeof g, "stages/%d/domains/%s/test", i, k_doms[j]);
            double gc[NS], ec[NS], mass[NS] = {1, 1, 1, 1};
            uint8_t cor[NS], ff[NS] = {0, 0, 0, 0};
            for (int s = 0; s < NS; s++)
                gc[s] = g_conf(c, j, s), ec[s] = e_conf(c, j, s), cor[s] = correct_of(c, i, j, s);
            int64_t dims[1] = {NS};
            char p[320];
            snprintf(p, sizeof p, "%s/confidence_greedy", g),
                ckpt_writer_write(w, p, CKPT_DTYPE_F64, 1, dims, gc);
            snprintf(p, sizeof p, "%s/confidence_expected", g),
                ckpt_writer_write(w, p, CKPT_DTYPE_F64, 1, dims, ec);
            snprintf(p, sizeof p, "%s/confidence_format_mass", g),
                ckpt_writer_write(w, p, CKPT_DTYPE_F64, 1, dims, mass);
            snprintf(p, sizeof p, "%s/correct", g),
                ckpt_writer_write(w, p, CKPT_DTYPE_U8, 1, dims, cor);
            snprintf(p, sizeof p, "%s/format_fail", g),
                ckpt_writer_write(w, p, CKPT_DTYPE_U8, 1, dims, ff);
            metrics_run m[2];
            metrics_run_compute(gc, cor, ff, NS, &m[0]);
            metrics_run_compute(ec, cor, ff, NS, &m[1]);
            for (int q = 0; q < 2; q++)
                for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
                    char key[40];
                    if (q && !metrics_field_per_readout((metrics_field)f)) continue;
                    ckpt_writer_set_attr_f64(
                        w, g,
                        metrics_field_key((metrics_field)f, (metrics_readout)q, key, sizeof key),
                        metrics_run_get(&m[q], (metrics_field)f));
                }
            ckpt_writer_set_attr_f64(w, g, "mean_format_mass", 1.0);
            ckpt_writer_set_attr_i64(w, g, "n", (int64_t)m[0].n);
            ckpt_writer_set_attr_i64(w, g, "n_correct", (int64_t)m[0].n_correct);
            ckpt_writer_set_attr_i64(w, g, "n_format_fail", 0);
            ckpt_writer_set_attr_str(w, g, "split", "test");
            ckpt_writer_set_attr_i64(w, g, "severity", 0);
        }
    }
    int rc = ckpt_writer_commit(w);
    if (rc) fprintf(stderr, "write_results: %s\n", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
    return rc ? -1 : 0;
}

/* ---- the summary ----------------------------------------------------------------------------- */

/* <g_rtmp>/<file>: a caopd-sweep-summary of the cells 0..n-1 with T stages (T = 3: the cells
 * above; T = 1: stage "mod" only, two seeds of caopd). results_of(c) names each results file. */
static int write_summary(const char *path, int n, int T, const char *const *results) {
    ckpt_writer *w = NULL;
    ckpt_error e;
    if (ckpt_writer_open(&w, path, CKPT_FORMAT_SWEEP_SUMMARY, 2, NULL, &e)) {
        fprintf(stderr, "write_summary: %s\n", e.msg);
        return -1;
    }
    ckpt_writer_set_attr_i64(w, "", "n_cells", n);
    const int nd = T == 3 ? ND : 1;
    for (int c = 0; c < n; c++) {
        const hcell *h = &k_cells[c];
        char g[64], ga[96], nm[128], buf[32];
        snprintf(g, sizeof g, "cells/%d", c);
        cell_name(c, nm, sizeof nm);
        ckpt_writer_set_attr_str(w, g, "name", nm);
        ckpt_writer_set_attr_i64(w, g, "index", c);
        ckpt_writer_set_attr_str(w, g, "results", results[c]);
        ckpt_writer_set_attr_str(w, g, "method", k_method[h->series]);
        ckpt_writer_set_attr_i64(w, g, "seed", h->seed);
        ckpt_writer_set_attr_i64(w, g, "n_stages", T);
        ckpt_writer_set_attr_str(w, g, "stage_names", T == 3 ? "base,mod,count,rev" : "base,mod");
        ckpt_writer_set_attr_str(w, g, "domains", T == 3 ? "mod,count,rev" : "mod");
        snprintf(buf, sizeof buf, "test,ood_length_%d", h->sev);
        ckpt_writer_set_attr_str(w, g, "splits", buf);
        ckpt_writer_set_attr_str(w, g, "axes", "method,seed,ood_severity");
        ckpt_writer_set_attr_i64(w, g, "results_format_version", 2);
        snprintf(ga, sizeof ga, "%s/axes", g);
        ckpt_writer_set_attr_str(w, ga, "method", k_method[h->series]);
        snprintf(buf, sizeof buf, "%d", h->seed), ckpt_writer_set_attr_str(w, ga, "seed", buf);
        snprintf(buf, sizeof buf, "%d", h->sev),
            ckpt_writer_set_attr_str(w, ga, "ood_severity", buf);
        for (int sp = 0; sp < 2; sp++) {
            char gs[160];
            if (sp)
                snprintf(gs, sizeof gs, "%s/metrics/ood_length_%d", g, h->sev);
            else
                snprintf(gs, sizeof gs, "%s/metrics/test", g);
            ckpt_writer_set_attr_str(w, gs, "kind", sp ? "ood_length" : "test");
            ckpt_writer_set_attr_i64(w, gs, "severity", sp ? h->sev : 0);
            for (int m = 0; m < SEVERITY_N_METRICS; m++) {
                double R[NST * ND];
                for (int i = 0; i <= T; i++)
                    for (int j = 0; j < nd; j++)
                        R[i * nd + j] = cell_value(c, m, i, j) - (sp ? 0.01 : 0);
                char dp[220];
                snprintf(dp, sizeof dp, "%s/%s", gs, severity_metric_names[m]);
                ckpt_writer_write(w, dp, CKPT_DTYPE_F64, 2, (int64_t[]){T + 1, nd}, R);
            }
        }
    }
    int rc = ckpt_writer_commit(w);
    if (rc) fprintf(stderr, "write_summary: %s\n", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
    return rc ? -1 : 0;
}

/* ---- expectations --------------------------------------------------------------------------- */

/* The statistics of two seeds' values (NaN skipped). */
static retention_point two(double a, double b) {
    retention_point p = {0, NAN, NAN, NAN, NAN};
    double v[2];
    int n = 0;
    if (!isnan(a)) v[n++] = a;
    if (!isnan(b)) v[n++] = b;
    if (!n) return p;
    p.n_seeds = n;
    p.mean = n == 2 ? (v[0] + v[1]) / 2 : v[0];
    p.min = n == 2 ? fmin(v[0], v[1]) : v[0];
    p.max = n == 2 ? fmax(v[0], v[1]) : v[0];
    if (n == 2) p.sd = fabs(v[0] - v[1]) / sqrt(2.0);
    return p;
}

static void check_point(const char *what, retention_point got, retention_point want) {
    CHECK_MSG(got.n_seeds == want.n_seeds, "%s: n_seeds %d, want %d", what, got.n_seeds,
              want.n_seeds);
    CHECK_MSG(fabs(got.mean - want.mean) < TOL, "%s: mean %.17g, want %.17g", what, got.mean,
              want.mean);
    CHECK_MSG(fabs(got.min - want.min) < TOL && fabs(got.max - want.max) < TOL,
              "%s: [%.17g, %.17g], want [%.17g, %.17g]", what, got.min, got.max, want.min,
              want.max);
    if (want.n_seeds >= 2)
        CHECK_MSG(fabs(got.sd - want.sd) < TOL, "%s: sd %.17g, want %.17g", what, got.sd, want.sd);
    else
        CHECK_MSG(isnan(got.sd), "%s: sd %g for one seed", what, got.sd);
}

/* The pooled bins of one series: cells cs[0..nc) at stage 3 over the three domains, computed
 * here sample by sample; *ref_ece = metrics_run_compute's ECE of the concatenated samples. */
static void pooled(const int *cs, int nc, int q, double cnt[METRICS_NBINS],
                   double conf[METRICS_NBINS], double acc[METRICS_NBINS], double *ref_ece) {
    double all_c[64];
    uint8_t all_y[64];
    int n = 0;
    for (int b = 0; b < METRICS_NBINS; b++)
        cnt[b] = conf[b] = acc[b] = 0;
    for (int k = 0; k < nc; k++)
        for (int j = 0; j < ND; j++)
            for (int s = 0; s < NS; s++) {
                const double c = q ? e_conf(cs[k], j, s) : g_conf(cs[k], j, s);
                const int b = (int)floor(c * 10); /* every confidence is a bin's midpoint */
                cnt[b] += 1, conf[b] += c, acc[b] += correct_of(cs[k], 3, j, s);
                all_c[n] = c, all_y[n] = correct_of(cs[k], 3, j, s), n++;
            }
    for (int b = 0; b < METRICS_NBINS; b++)
        if (cnt[b] > 0) conf[b] /= cnt[b], acc[b] /= cnt[b];
    metrics_run r;
    metrics_run_compute(all_c, all_y, NULL, (size_t)n, &r);
    *ref_ece = r.ece;
}

static void check_reliability(const retention_analysis *a, int series, const int *cs, int nc) {
    for (int q = 0; q < 2; q++) {
        double cnt[METRICS_NBINS], conf[METRICS_NBINS], acc[METRICS_NBINS], ref = NAN, ece = NAN;
        pooled(cs, nc, q, cnt, conf, acc, &ref);
        metrics_bin bins[METRICS_NBINS];
        int ns = -1;
        CHECK(retention_reliability(a, series, (metrics_readout)q, bins, &ece, &ns) ==
              RETENTION_OK);
        CHECK_EQ_INT(ns, nc);
        for (int b = 0; b < METRICS_NBINS; b++) {
            CHECK_MSG((double)bins[b].count == cnt[b],
                      "series %d readout %d bin %d: count %zu, want %g", series, q, b,
                      bins[b].count, cnt[b]);
            if (cnt[b] > 0)
                CHECK_MSG(fabs(bins[b].mean_conf - conf[b]) < TOL &&
                              fabs(bins[b].accuracy - acc[b]) < TOL,
                          "series %d readout %d bin %d: conf %g acc %g, want %g %g", series, q, b,
                          bins[b].mean_conf, bins[b].accuracy, conf[b], acc[b]);
            else
                CHECK(isnan(bins[b].mean_conf) && isnan(bins[b].accuracy));
        }
        CHECK_MSG(fabs(ece - ref) < TOL,
                  "series %d readout %d: pooled ECE %.17g, metrics_run_compute %.17g", series, q,
                  ece, ref);
    }
}

/* The numbers after `key` in text, read as "%lf" at each of the offsets fmt gives. */
static const char *line_of(const char *md, const char *prefix) {
    for (const char *p = md; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, prefix, strlen(prefix))) return p;
    return NULL;
}

/* The text of line `prefix` from series `name` (its backquoted name) on. */
static const char *after_series(const char *md, const char *prefix, const char *name) {
    const char *l = line_of(md, prefix);
    if (!l) return NULL;
    const char *e = strchr(l, '\n');
    char key[64];
    snprintf(key, sizeof key, "`%s` ", name);
    const char *p = strstr(l, key);
    return p && (!e || p < e) ? p + strlen(key) : NULL;
}

#define NEAR3(a, b) (fabs((a) - (b)) <= 6e-4) /* a number printed with %.3f */

static void check_summary_lines(const char *md) {
    double x, y;
    int i;
    char where[64];
    const char *p;
    /* 1. ECE (expected) after the last stage and its worst stage. caopd: seed 1 (.10+.07+.04)/3,
     * seed 2 (.12+.09+.06)/3: 0.08; per stage 0.06, 0.07, 0.08: worst stage 3. sdft: (.40/3 +
     * .42/3)/2 = 0.136667; stage 2: ((.30+.10)/2 + (.40+.12)/2)/2 = 0.23, the worst. */
    p = after_series(md, "1. ", "caopd");
    CHECK_MSG(p && sscanf(p, "%lf (worst %lf after stage %d %63[^)])", &x, &y, &i, where) == 4,
              "%s", md);
    if (p) CHECK(NEAR3(x, 0.08) && NEAR3(y, 0.08) && i == 3 && !strcmp(where, "rev"));
    p = after_series(md, "1. ", "sdft");
    CHECK_MSG(p && sscanf(p, "%lf (worst %lf after stage %d %63[^)])", &x, &y, &i, where) == 4,
              "%s", md);
    if (p)
        CHECK_MSG(NEAR3(x, 0.82 / 6) && NEAR3(y, 0.23) && i == 2 && !strcmp(where, "count"),
                  "%g %g %d %s", x, y, i, where);
    /* 2. ECE forgetting (on -R) and BWT: caopd seeds .03 and .045 (both), sdft .105 and .105 */
    p = after_series(md, "2. ", "caopd");
    CHECK_MSG(p && sscanf(p, "forgetting %lf, BWT %lf", &x, &y) == 2, "%s", md);
    if (p) CHECK_MSG(NEAR3(x, 0.0375) && NEAR3(y, 0.0375), "%g %g", x, y);
    p = after_series(md, "2. ", "sdft");
    CHECK(p && sscanf(p, "forgetting %lf, BWT %lf", &x, &y) == 2);
    if (p) CHECK(NEAR3(x, 0.105) && NEAR3(y, 0.105));
    /* 3. accuracy: caopd final ACC (2.2/3 + 2.0/3)/2 = 0.7, forgetting 0.2; sdft (1.45/3 +
     * 1.35/3)/2 = 0.466667, forgetting (0.625 + 0.575)/2 = 0.6 */
    p = after_series(md, "3. ", "caopd");
    CHECK_MSG(p && sscanf(p, "final ACC %lf, forgetting %lf", &x, &y) == 2, "%s", md);
    if (p) CHECK_MSG(NEAR3(x, 0.7) && NEAR3(y, 0.2), "%g %g", x, y);
    p = after_series(md, "3. ", "sdft");
    CHECK(p && sscanf(p, "final ACC %lf, forgetting %lf", &x, &y) == 2);
    if (p) CHECK_MSG(NEAR3(x, 2.8 / 6) && NEAR3(y, 0.6), "%g %g", x, y);
    /* 4. OCG (expected) after the last stage and its minimum: caopd (.04/3 + .10/3)/2 = 0.023333,
     * minimum -0.08 (mod after stage 2); sdft (.80/3 + .78/3)/2 = 0.263333, minimum 0.11 (rev
     * after stage 3) */
    p = after_series(md, "4. ", "caopd");
    CHECK_MSG(p && sscanf(p, "%lf after the last stage, minimum %lf (%63s after stage %d", &x, &y,
                          where, &i) == 4,
              "%s", md);
    if (p)
        CHECK_MSG(NEAR3(x, 0.14 / 6) && NEAR3(y, -0.08) && !strcmp(where, "mod") && i == 2,
                  "%g %g %s %d", x, y, where, i);
    p = after_series(md, "4. ", "sdft");
    CHECK(p && sscanf(p, "%lf after the last stage, minimum %lf (%63s after stage %d", &x, &y,
                      where, &i) == 4);
    if (p)
        CHECK_MSG(NEAR3(x, 1.58 / 6) && NEAR3(y, 0.11) && !strcmp(where, "rev") && i == 3,
                  "%g %g %s %d", x, y, where, i);
    /* 5. calibration kept best: caopd (0.0375 < 0.105); most accuracy lost: sdft (0.6 > 0.2) */
    const char *l5 = line_of(md, "5. ");
    CHECK_MSG(l5 && strstr(l5, "(lowest ECE forgetting, expected readout): `caopd` (0.03") &&
                  strstr(l5, "(highest accuracy forgetting): `sdft` (0.600)"),
              "%s", l5 ? l5 : md);
}

static long size_of(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void check_png_svg(const char *dir, const char *stem) {
    char p[900];
    snprintf(p, sizeof p, "%s/%s.png", dir, stem);
    char *b = read_text(p);
    CHECK_MSG(b && size_of(p) > 1000 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", p);
    free(b);
    snprintf(p, sizeof p, "%s/%s.svg", dir, stem);
    b = read_text(p);
    CHECK_MSG(b && !strncmp(b, "<?xml", 5) && strstr(b, "<svg") && strstr(b, "</svg>"),
              "%s is not an SVG", p);
    free(b);
}

/* The numbers of the CSV row that starts with key. */
static int csv_row(const char *csv, const char *key, double *v, int n) {
    const char *p = csv;
    while ((p = strstr(p, key)) && p != csv && p[-1] != '\n')
        p++;
    if (!p) return -1;
    p += strlen(key);
    for (int i = 0; i < n; i++) {
        char *end;
        v[i] = strtod(p, &end);
        if (end == p) return -1;
        p = end + (*end == ',');
    }
    return 0;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- the tests ------------------------------------------------------------------------------- */

static void test_sweep(void) {
    char sum[700], res[NCELLS][1000], dir[900];
    const char *results[NCELLS];
    snprintf(sum, sizeof sum, "%s/summary.h5", g_rtmp);
    for (int c = 0; c < NCELLS; c++) {
        char nm[128];
        cell_name(c, nm, sizeof nm);
        snprintf(dir, sizeof dir, "%s/cells", g_rtmp);
        mkdir(dir, 0777);
        snprintf(dir, sizeof dir, "%s/cells/%s", g_rtmp, nm);
        mkdir(dir, 0777);
        if (k_cells[c].has_results) CHECK(write_results(dir, c) == 0);
        /* cell 2 names a path that moved: found again under the summary's folder */
        if (c == 2)
            snprintf(res[c], sizeof res[c], "moved/cells/%s/results.h5", nm);
        else
            snprintf(res[c], sizeof res[c], "%s/results.h5", dir);
        results[c] = res[c];
    }
    CHECK(write_summary(sum, NCELLS, 3, results) == 0);

    severity_table *t = NULL;
    char err[1024];
    CHECK_MSG(severity_load(sum, &t, err, sizeof err) == SEVERITY_OK, "%s", err);
    if (!t) return;
    CHECK_EQ_INT(severity_n_series(t), 2);
    CHECK_EQ_STR(severity_series_name(t, 0), "caopd");
    { /* format failures here are all above 0.10 (k_other): the severity table flags them */
        char *tx = NULL;
        CHECK(severity_tables(t, 0, &tx) == SEVERITY_OK);
        CHECK_MSG(tx && strstr(tx, "format failures") &&
                      strstr(tx, "warning: caopd, test severity 0: format failures ") &&
                      strstr(tx, "(above 0.10): a completion without a confidence reads 0"),
                  "%s", tx ? tx : "");
        free(tx);
    }
    const severity_cell *c1 = severity_get_cell(t, 1);
    CHECK(c1 && c1->n_stages == 3 && c1->n_domains == 3 && !strcmp(c1->stage_names[3], "rev") &&
          c1->seed == 1);
    CHECK(c1 && c1->test[0] && fabs(c1->test[0][3 * 3 + 0] - 0.65) < TOL &&
          isnan(c1->test[0][3 * 3 + 1]));
    retention_analysis *a = NULL;
    CHECK_MSG(retention_build(t, sum, 1, &a, err, sizeof err) == RETENTION_OK, "%s", err);
    if (!a) {
        severity_free(t);
        return;
    }

    /* stages */
    CHECK_EQ_INT(retention_n_stages(a, 0), 3);
    CHECK_EQ_INT(retention_trained_stage(a, 0, "mod"), 1);
    CHECK_EQ_INT(retention_trained_stage(a, 1, "count"), 2);
    CHECK_EQ_INT(retention_trained_stage(a, 1, "rev"), 3);
    CHECK_EQ_INT(retention_trained_stage(a, 1, "add"), -1);

    /* curve points: every metric, series, domain and stage from its training on, against the
     * seeds' values (caopd seed 1: its two cells averaged, NaN skipped) */
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < ND; j++)
            for (int m = 0; m < SEVERITY_N_METRICS; m++)
                for (int i = 0; i < NST; i++) {
                    retention_point got;
                    const int rc = retention_curve(a, s, k_doms[j], m, i, &got);
                    if (i < j + 1) {
                        CHECK_MSG(rc == RETENTION_ERR_ARG,
                                  "series %d %s stage %d is before its training", s, k_doms[j], i);
                        continue;
                    }
                    char what[160];
                    snprintf(what, sizeof what, "series %d %s %s after stage %d", s, k_doms[j],
                             severity_metric_names[m], i);
                    CHECK_MSG(rc == RETENTION_OK, "%s", what);
                    check_point(what, got,
                                two(seed_value(m, s, 1, i, j), seed_value(m, s, 2, i, j)));
                }
    /* and by hand: caopd accuracy of mod after stage 3: seed 1 (0.55 + 0.65) / 2 = 0.6, seed 2 0.5
     */
    retention_point pt;
    CHECK(retention_curve(a, 0, "mod", midx("accuracy"), 3, &pt) == RETENTION_OK);
    CHECK(pt.n_seeds == 2 && fabs(pt.mean - 0.55) < TOL && fabs(pt.min - 0.5) < TOL &&
          fabs(pt.max - 0.6) < TOL);
    CHECK_NEAR(pt.sd, sqrt(0.005), TOL);
    CHECK(retention_curve(a, 0, "count", midx("accuracy"), 3, &pt) ==
          RETENTION_OK); /* cell 1's NaN skipped */
    CHECK(pt.n_seeds == 2 && fabs(pt.mean - 0.75) < TOL);
    CHECK(retention_curve(a, 1, "rev", midx("brier_expected"), 3, &pt) ==
          RETENTION_OK); /* NaN for seed 2 */
    CHECK(pt.n_seeds == 1 && fabs(pt.mean - k_other(midx("brier_expected"), 1, 1, 3, 2)) < TOL &&
          isnan(pt.sd));
    double mv = 0;
    CHECK(retention_matrix(a, 1, "mod", midx("spr_greedy"), 0, &mv) == RETENTION_OK && isnan(mv));
    CHECK(retention_matrix(a, 0, "rev", midx("accuracy"), 0, &mv) == RETENTION_OK &&
          fabs(mv - 0.3) < TOL);

    /* CL per series, per seed then over seeds (hand-computed, see the matrices above) */
    retention_cl cl;
    CHECK(retention_cl_get(a, 0, midx("accuracy"), &cl) == RETENTION_OK);
    /* caopd seed 1: ACC 2.2/3, BWT ((.6-.9) + (.7-.8))/2 = -.2, FWT ((.25-.2) + (.4-.3))/2 = .075,
     * forgetting ((.9-.6) + (.8-.7))/2 = .2; seed 2: 2.0/3, -.2, .075, ((.8-.5) + (.9-.8))/2 = .2
     */
    check_point("caopd ACC", cl.acc, two(2.2 / 3, 2.0 / 3));
    check_point("caopd BWT", cl.bwt, two(-0.2, -0.2));
    check_point("caopd FWT", cl.fwt, two(0.075, 0.075));
    check_point("caopd forgetting", cl.forgetting, two(0.2, 0.2));
    CHECK(retention_cl_get(a, 1, midx("accuracy"), &cl) == RETENTION_OK);
    /* sdft seed 1: 1.45/3, ((.2-.9) + (.3-.85))/2 = -.625, .075, ((.9-.2) + (.85-.3))/2 = .625;
     * seed 2: 1.35/3, ((.1-.85) + (.4-.8))/2 = -.575, .075, ((.85-.1) + (.8-.4))/2 = .575 */
    check_point("sdft ACC", cl.acc, two(1.45 / 3, 1.35 / 3));
    check_point("sdft BWT", cl.bwt, two(-0.625, -0.575));
    check_point("sdft forgetting", cl.forgetting, two(0.625, 0.575));
    /* ECE (expected), lower is better: forgetting on -R = mean_j (R3j - min_{l=1,2} Rlj):
     * caopd seed 1 ((.10-.05) + (.07-.06))/2 = .03, seed 2 ((.12-.07) + (.09-.05))/2 = .045 */
    CHECK(retention_cl_get(a, 0, midx("ece_expected"), &cl) == RETENTION_OK);
    check_point("caopd ECE ACC", cl.acc, two(0.21 / 3, 0.27 / 3));
    check_point("caopd ECE BWT", cl.bwt, two(0.03, 0.045));
    check_point("caopd ECE forgetting", cl.forgetting, two(0.03, 0.045));
    CHECK(retention_cl_get(a, 1, midx("ece_expected"), &cl) == RETENTION_OK);
    check_point("sdft ECE forgetting", cl.forgetting, two(0.105, 0.105));
    /* OCG (expected) on |OCG|: caopd seed 1 |R| rows .05 .2 .2 / .10 .08 .2 / .02 .04 .06:
     * ACC .04, BWT ((.02-.05) + (.04-.08))/2 = -.035, FWT 0, forgetting ((.02-.05) + (.04-.08))/2
     * = -.035; seed 2 rows .03 .2 .2 / .06 .04 .2 / .04 .02 .08: ACC .14/3, BWT ((.04-.03) +
     * (.02-.04))/2 = -.005, forgetting ((.04-.03) + (.02-.04))/2 = -.005. Signed, seed 1's
     * forgetting would be ((.05-.02) + (.20+.04))/2 = .135. */
    CHECK(retention_cl_get(a, 0, midx("ocg_expected"), &cl) == RETENTION_OK);
    check_point("caopd |OCG| ACC", cl.acc, two(0.04, 0.14 / 3));
    check_point("caopd |OCG| BWT", cl.bwt, two(-0.035, -0.005));
    check_point("caopd |OCG| FWT", cl.fwt, two(0, 0));
    check_point("caopd |OCG| forgetting", cl.forgetting, two(-0.035, -0.005));
    CHECK(retention_cl_get(a, 0, -1, &cl) == RETENTION_ERR_ARG);
    CHECK(retention_cl_get(a, 2, 0, &cl) == RETENTION_ERR_ARG);

    /* reliability: one results file per seed (caopd: cells 0 and 2, cell 1 not read: the same
     * seed as cell 0; cell 2 found under the summary's folder), sdft: cell 4 only (cell 3's file
     * is missing, and no other cell of its seed) */
    check_reliability(a, 0, (const int[]){0, 2}, 2);
    check_reliability(a, 1, (const int[]){4}, 1);
    const char *notes = retention_notes(a);
    CHECK_MSG(strstr(notes, "cell 003_method-sdft_seed-1_sev-1: its results file ") &&
                  strstr(notes, "/cells/003_method-sdft_seed-1_sev-1/results.h5 is missing"),
              "%s", notes);
    CHECK_MSG(strstr(notes, "002_") == NULL && strstr(notes, "001_") == NULL, "%s", notes);

    /* the outputs */
    char out[800];
    snprintf(out, sizeof out, "%s/analysis", g_rtmp);
    CHECK_MSG(severity_write(t, out, 1, err, sizeof err) == SEVERITY_OK, "%s", err);
    CHECK_MSG(retention_write(a, out, 1, err, sizeof err) == RETENTION_OK, "%s", err);
    char p[1000];
    snprintf(p, sizeof p, "%s/report.md", out);
    char *md = read_text(p);
    CHECK(md != NULL);
    if (md) {
        check_summary_lines(md);
        CHECK_MSG(check_links(out, md) >= 50, "too few links in report.md");
        /* format failures (k_other: 0.01 * 11 + ... > 0.10 everywhere): a section, and flagged */
        CHECK_MSG(strstr(md, "### Format-failure rate") &&
                      strstr(md, "**Above 0.10** (a completion without a confidence reads 0, so "
                                 "calibration there looks "
                                 "better than it is): `caopd` mod after stage 0 base: 0.1"),
                  "%s", md);
        /* the tables: the matrices' mean over seeds, the CL summaries as mean [min, max] */
        CHECK_MSG(strstr(md, "| 3 rev | 0.550 | 0.750 | 0.800 | 0.150 | 0.350 | 0.900 |"), "%s",
                  md);
        CHECK_MSG(strstr(md, "| ACC | 0.700 [0.667, 0.733] | 0.467 [0.450, 0.483] |"), "%s", md);
        CHECK_MSG(strstr(md, "| \\|OCG\\| forgetting | -0.020 [-0.035, -0.005] |"), "%s", md);
        const char *spr = strstr(md, "### SPR, greedy readout");
        const char *row = spr ? strstr(spr, "| 0 base |") : NULL;
        CHECK_MSG(row && strstr(row, "n/a") && strstr(row, "n/a") < strchr(row, '\n'), "%s",
                  spr ? spr : md);
        CHECK(strstr(md, "](severity_ood_length_ocg_expected.png)") && strstr(md, "(severity.md)"));
        CHECK(strstr(md, "](retention.png)") && strstr(md, "(reliability_caopd_expected.png)"));
        CHECK(strstr(md, "| `sdft` | expected | 1 | 12 |"));
        CHECK(strstr(md, "## Notes") && strstr(md, "003_method-sdft_seed-1_sev-1"));
        free(md);
    }
    snprintf(p, sizeof p, "%s/retention.csv", out);
    char *csv = read_text(p);
    CHECK(csv &&
          !strncmp(csv, "series,domain,stage,stage_name,metric,n_seeds,mean,min,max,sd\n", 62));
    CHECK_EQ_INT(count_lines(csv),
                 1 + 2 * 6 * SEVERITY_N_METRICS); /* mod 3 stages, count 2, rev 1 */
    double v[5];
    CHECK(csv && csv_row(csv, "caopd,mod,3,rev,accuracy,", v, 5) == 0);
    CHECK(v[0] == 2 && fabs(v[1] - 0.55) < TOL && fabs(v[2] - 0.5) < TOL &&
          fabs(v[3] - 0.6) < TOL && fabs(v[4] - sqrt(0.005)) < TOL);
    CHECK(csv && csv_row(csv, "sdft,rev,3,rev,brier_expected,", v, 3) == 0 && v[0] == 1 &&
          fabs(v[1] - k_other(midx("brier_expected"), 1, 1, 3, 2)) < TOL);
    CHECK(csv && strstr(csv, "caopd,count,1,") == NULL);
    free(csv);
    snprintf(p, sizeof p, "%s/cl.csv", out);
    csv = read_text(p);
    CHECK(csv && !strncmp(csv, "series,metric,summary,n_seeds,mean,min,max,sd\n", 46));
    CHECK(csv && csv_row(csv, "sdft,accuracy,forgetting,", v, 4) == 0 && v[0] == 2 &&
          fabs(v[1] - 0.6) < TOL && fabs(v[2] - 0.575) < TOL && fabs(v[3] - 0.625) < TOL);
    CHECK(csv && csv_row(csv, "caopd,abs_ocg_expected,forgetting,", v, 4) == 0 &&
          fabs(v[1] + 0.02) < TOL);
    free(csv);
    snprintf(p, sizeof p, "%s/reliability.csv", out);
    csv = read_text(p);
    CHECK(csv && !strncmp(csv, "series,readout,bin,lo,hi,count,mean_conf,accuracy,n_seeds\n", 58));
    CHECK_EQ_INT(count_lines(csv), 1 + 2 * 2 * METRICS_NBINS);
    free(csv);

    /* figures: per domain from its training stage on, the grid, reliability */
    for (int j = 0; j < ND; j++) {
        static const char *const fm[] = {"accuracy", "ece_greedy", "ece_expected", "ocg_greedy",
                                         "ocg_expected"};
        for (int k = 0; k < 5; k++) {
            char stem[128];
            snprintf(stem, sizeof stem, "retention_%s_%s", k_doms[j], fm[k]);
            check_png_svg(out, stem);
        }
    }
    snprintf(p, sizeof p, "%s/retention_count_accuracy.svg", out);
    char *svg = read_text(p);
    CHECK_MSG(svg && strstr(svg, "2 count") && strstr(svg, "3 rev") && !strstr(svg, "1 mod") &&
                  strstr(svg, "bands: min-max over seeds") && strstr(svg, "caopd") &&
                  strstr(svg, "sdft"),
              "retention_count_accuracy.svg: stages 2..3, both series, min-max bands");
    free(svg);
    check_png_svg(out, "retention");
    snprintf(p, sizeof p, "%s/retention.png", out);
    CHECK_MSG(size_of(p) > 0 && size_of(p) < 150 * 1024, "retention.png is %ld bytes", size_of(p));
    check_png_svg(out, "reliability_caopd_expected");
    check_png_svg(out, "reliability_sdft_greedy");

    /* cell 0's results file gone: caopd seed 1 reads cell 1 instead, and the note names cell 0 */
    retention_free(a), a = NULL;
    remove(res[0]);
    CHECK_MSG(retention_build(t, sum, 1, &a, err, sizeof err) == RETENTION_OK, "%s", err);
    if (a) {
        check_reliability(a, 0, (const int[]){1, 2}, 2);
        CHECK_MSG(
            strstr(retention_notes(a), "cell 000_method-caopd_seed-1_sev-1: its results file"),
            "%s", retention_notes(a));
        /* no figures: CSVs and report.md only */
        snprintf(out, sizeof out, "%s/nofig", g_rtmp);
        CHECK(retention_write(a, out, 0, err, sizeof err) == RETENTION_OK);
        snprintf(p, sizeof p, "%s/retention.png", out);
        CHECK(!file_exists(p));
        snprintf(p, sizeof p, "%s/report.md", out);
        md = read_text(p);
        CHECK(md && strstr(md, "--no-figures") && !strstr(md, ".png"));
        free(md);
    }
    retention_free(a);
    CHECK(retention_build(NULL, sum, 1, &a, err, sizeof err) == RETENTION_ERR_ARG);
    severity_free(t);
}

/* A sweep of one domain stage: retention curves of one point, BWT and forgetting n/a. */
static void test_one_stage(void) {
    char sum[700];
    snprintf(sum, sizeof sum, "%s/one.h5", g_rtmp);
    const char *results[3] = {"", "", ""};
    CHECK(write_summary(sum, 3, 1, results) == 0); /* cells 0..2: caopd, seeds 1 and 2 */
    severity_table *t = NULL;
    retention_analysis *a = NULL;
    char err[1024];
    CHECK_MSG(severity_load(sum, &t, err, sizeof err) == SEVERITY_OK, "%s", err);
    CHECK_MSG(t && retention_build(t, sum, 1, &a, err, sizeof err) == RETENTION_OK, "%s", err);
    if (!a) {
        severity_free(t);
        return;
    }
    retention_point pt;
    CHECK(retention_curve(a, 0, "mod", midx("accuracy"), 1, &pt) == RETENTION_OK);
    check_point("one stage: accuracy of mod", pt, two(0.9, 0.8));
    CHECK(retention_curve(a, 0, "mod", midx("accuracy"), 0, &pt) == RETENTION_ERR_ARG);
    retention_cl cl;
    CHECK(retention_cl_get(a, 0, midx("accuracy"), &cl) == RETENTION_OK);
    check_point("one stage: ACC", cl.acc, two(0.9, 0.8));
    CHECK(cl.bwt.n_seeds == 0 && isnan(cl.bwt.mean) && isnan(cl.forgetting.mean) &&
          isnan(cl.fwt.mean));
    int ns = -1;
    CHECK(retention_reliability(a, 0, METRICS_READOUT_EXPECTED, NULL, NULL, &ns) == RETENTION_OK &&
          ns == 0);
    CHECK(strstr(retention_notes(a), "000_method-caopd_seed-1_sev-1: its results file") != NULL);
    char out[800], p[1000];
    snprintf(out, sizeof out, "%s/one", g_rtmp);
    CHECK_MSG(severity_write(t, out, 1, err, sizeof err) == SEVERITY_OK, "%s", err);
    CHECK_MSG(retention_write(a, out, 1, err, sizeof err) == RETENTION_OK, "%s", err);
    snprintf(p, sizeof p, "%s/report.md", out);
    char *md = read_text(p);
    CHECK_MSG(md && strstr(md, "`caopd` forgetting n/a, BWT n/a") &&
                  strstr(md, "one series only") && strstr(md, "| BWT | n/a |"),
              "%s", md ? md : "");
    if (md) check_links(out, md);
    free(md);
    check_png_svg(out, "retention_mod_accuracy");
    check_png_svg(out, "retention");
    snprintf(p, sizeof p, "%s/cl.csv", out);
    char *csv = read_text(p);
    CHECK(csv && strstr(csv, "caopd,accuracy,bwt,0,nan,nan,nan,nan\n"));
    free(csv);
    retention_free(a);
    severity_free(t);
}

int main(void) {
    report_tmpdir("caopd_test_retention");
    test_sweep();
    test_one_stage();
    tmpdir_finish(g_rtmp);
    cairo_debug_reset_static_data();
#ifdef PLOT_TEST_FCFINI
    FcFini();
#endif
    return check_report("test_retention");
}
