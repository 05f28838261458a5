/* plot_demo: writes every kind of `caopd analyze` figure from synthetic data into a folder,
 * so the pictures can be looked at (not a test).  Usage: plot_demo [OUT_DIR]  (default
 * "plot_demo_out", which must exist). Each figure is written as .png, .svg and .pdf. */
#include "analysis/metrics/metrics.h"
#include "analysis/figures/plot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define T 4 /* domains */
#define NSTAGE (T + 1)
#define NMETHOD 3
#define NSEED 3

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double urand(void) { /* xorshift64*, in [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

static int failures = 0;

static void report(const char *what, plot_status st) {
    if (st != PLOT_OK) {
        fprintf(stderr, "plot_demo: %s: %s: %s\n", what, plot_status_str(st), plot_errmsg());
        failures++;
    }
}

/* Writes one figure in all three formats via fn(fig). */
#define ALL_FORMATS(dir, stem, fig, call)                                                          \
    do {                                                                                           \
        static const char *ext_[3] = {"png", "svg", "pdf"};                                        \
        char path_[512];                                                                           \
        for (int e_ = 0; e_ < 3; e_++) {                                                           \
            snprintf(path_, sizeof path_, "%s/%s.%s", dir, stem, ext_[e_]);                        \
            (fig).path = path_;                                                                    \
            report(path_, call);                                                                   \
        }                                                                                          \
    } while (0)

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(ss / (n - 1));
}

static void retention(const char *dir) {
    static const char *stages[NSTAGE] = {"base", "arith", "medqa", "law", "code"};
    static const char *long_stages[NSTAGE] = {"base model", "after arithmetic", "after medqa",
                                              "after law-bar-exam", "after code-contests"};
    static const char *names[NMETHOD][2] = {{"SFT (in-domain)", "SFT (OOD)"},
                                            {"OPD (in-domain)", "OPD (OOD)"},
                                            {"CaOPD (in-domain)", "CaOPD (OOD)"}};
    /* domain "arith" (learned at stage 1), forgotten later; ECE grows for SFT */
    double acc[NMETHOD][2][3][NSTAGE],
        ece[NMETHOD][2][3][NSTAGE]; /* [method][ood][mean,lo,hi][stage] */
    for (int m = 0; m < NMETHOD; m++)
        for (int o = 0; o < 2; o++)
            for (int s = 0; s < NSTAGE; s++) {
                double a[NSEED], c[NSEED];
                for (int r = 0; r < NSEED; r++) {
                    double base = s == 0 ? 0.35 : 0.78 - 0.06 * (s - 1) * (2 - m) * 0.6;
                    a[r] = base - 0.1 * o + 0.03 * (urand() - 0.5);
                    double eb = s == 0 ? 0.12 : 0.05 + 0.04 * (s - 1) * (2 - m) * 0.5;
                    c[r] = eb + 0.04 * o + 0.02 * (urand() - 0.5);
                }
                double mu, sd;
                mean_sd(a, NSEED, &mu, &sd);
                acc[m][o][0][s] = mu, acc[m][o][1][s] = mu - sd, acc[m][o][2][s] = mu + sd;
                mean_sd(c, NSEED, &mu, &sd);
                ece[m][o][0][s] = mu, ece[m][o][1][s] = mu - sd, ece[m][o][2][s] = mu + sd;
            }
    /* CaOPD has no evaluation after stage 3 (a missing stage: NaN) */
    for (int o = 0; o < 2; o++)
        for (int k = 0; k < 3; k++)
            acc[2][o][k][3] = ece[2][o][k][3] = NAN;

    plot_series sa[NMETHOD * 2] = {0}, se[NMETHOD * 2] = {0};
    for (int m = 0; m < NMETHOD; m++)
        for (int o = 0; o < 2; o++) {
            plot_series *a = &sa[m * 2 + o], *e = &se[m * 2 + o];
            *a = (plot_series){.name = names[m][o],
                               .y = acc[m][o][0],
                               .lo = acc[m][o][1],
                               .hi = acc[m][o][2],
                               .n = NSTAGE,
                               .dashed = o,
                               .color = m + 1};
            *e = *a;
            e->y = ece[m][o][0], e->lo = ece[m][o][1], e->hi = ece[m][o][2];
        }
    plot_panel panels[2] = {{"accuracy", 0, 1, sa, NMETHOD * 2},
                            {"ECE", NAN, NAN, se, NMETHOD * 2}};
    plot_figure fig = plot_figure_default();
    fig.title = "Retention of domain 'arith' across stages (mean \xC2\xB1 sd over 3 seeds)";
    fig.xlabel = "after stage";
    ALL_FORMATS(dir, "retention", fig, plot_retention_curves(&fig, stages, NSTAGE, panels, 2));
    fig.title = "Retention with long stage names (slanted labels)";
    ALL_FORMATS(dir, "retention_long", fig,
                plot_retention_curves(&fig, long_stages, NSTAGE, panels, 2));
}

static void reliability(const char *dir) {
    enum { N = 2000 };
    static double conf[N];
    static uint8_t correct[N];
    for (int i = 0; i < N; i++) { /* overconfident: verbalized confidence clusters high */
        double u = urand();
        double c = 0.45 + 0.55 * sqrt(u);
        c = round(c * 20) / 20; /* verbalized confidences come in steps of 0.05 */
        if (c > 1) c = 1;
        conf[i] = c;
        correct[i] = urand() < c - 0.15;
    }
    metrics_run run;
    if (metrics_run_compute(conf, correct, NULL, N, &run) != METRICS_OK) {
        fprintf(stderr, "plot_demo: metrics_run_compute failed\n");
        failures++;
        return;
    }
    plot_figure fig = plot_figure_default();
    fig.title = "Reliability: CaOPD, stage 2, domain medqa";
    ALL_FORMATS(dir, "reliability", fig, plot_reliability_diagram(&fig, run.bins, run.ece));
}

static void heatmaps(const char *dir) {
    static const char *rows[NSTAGE] = {"base", "after arith", "after medqa", "after law",
                                       "after code"};
    static const char *cols[T] = {"arith", "medqa", "law", "code"};
    double acc[NSTAGE * T], ece[NSTAGE * T];
    for (int i = 0; i < NSTAGE; i++)
        for (int j = 1; j <= T; j++) {
            double learned = i >= j ? 0.8 - 0.07 * (i - j) : 0.3 + 0.02 * i;
            acc[metrics_cl_index(T, (size_t)i, (size_t)j)] = learned + 0.02 * urand();
            ece[metrics_cl_index(T, (size_t)i, (size_t)j)] =
                i >= j ? 0.04 + 0.03 * (i - j) : 0.15 + 0.05 * urand();
        }
    acc[metrics_cl_index(T, 3, 2)] = NAN; /* a missing evaluation */
    ece[metrics_cl_index(T, 3, 2)] = NAN;
    plot_matrix m = {acc, NSTAGE, T, rows, cols, "accuracy", 0, 0};
    plot_figure fig = plot_figure_default();
    fig.title = "Accuracy R[i][j]: domain j after stage i (CaOPD)";
    fig.xlabel = "evaluated on domain";
    fig.ylabel = "model";
    fig.ymin = 0, fig.ymax = 1;
    ALL_FORMATS(dir, "heatmap_acc", fig, plot_heatmap(&fig, &m));
    m.values = ece, m.value_label = "ECE", m.lower_is_better = 1;
    fig.title = "ECE R[i][j] (lower is better, brighter = better)";
    fig.ymin = fig.ymax = NAN;
    ALL_FORMATS(dir, "heatmap_ece", fig, plot_heatmap(&fig, &m));
}

static void severity(const char *dir) {
    enum { NSEV = 6 };
    static const char *names[NMETHOD] = {"SFT", "OPD", "CaOPD"};
    double x[NSEV], y[NMETHOD][NSEV], lo[NMETHOD][NSEV], hi[NMETHOD][NSEV];
    plot_series s[NMETHOD] = {0};
    for (int k = 0; k < NSEV; k++)
        x[k] = k;
    for (int m = 0; m < NMETHOD; m++) {
        for (int k = 0; k < NSEV; k++) {
            double v[NSEED];
            for (int r = 0; r < NSEED; r++)
                v[r] = 0.05 + (0.035 - 0.01 * m) * k + 0.02 * (urand() - 0.5);
            double mu, sd;
            mean_sd(v, NSEED, &mu, &sd);
            y[m][k] = mu, lo[m][k] = mu - sd, hi[m][k] = mu + sd;
        }
        s[m] =
            (plot_series){.name = names[m], .x = x, .y = y[m], .lo = lo[m], .hi = hi[m], .n = NSEV};
    }
    y[1][4] = NAN; /* one missing severity level */
    plot_figure fig = plot_figure_default();
    fig.title = "ECE against OOD severity (domain medqa, final stage)";
    fig.xlabel = "OOD severity level";
    fig.ylabel = "ECE";
    ALL_FORMATS(dir, "severity", fig, plot_severity_curves(&fig, s, NMETHOD));
}

/* Hard cases for the layout: many series, long names, many cells, empty and tiny data. */
static void edge_cases(const char *dir) {
    /* 16 series with long names, a very long title, a small figure */
    enum { NS = 16, NST = 7 };
    static const char *stages[NST] = {"base", "s1", "s2", "s3", "s4", "s5", "s6"};
    static double y[NS][NST];
    static char names[NS][96];
    plot_series s[NS] = {0};
    for (int k = 0; k < NS; k++) {
        for (int i = 0; i < NST; i++)
            y[k][i] = 0.3 + 0.05 * k + 0.02 * i * (k % 3) - 0.01 * i;
        snprintf(names[k], sizeof names[k],
                 k == 3 ? "method %d with a very long descriptive "
                          "name that cannot fit in the legend"
                        : "method %d",
                 k / 2);
        s[k] = (plot_series){
            .name = names[k], .y = y[k], .n = NST, .dashed = k % 2, .color = k / 2 + 1};
    }
    y[5][0] = y[5][1] = y[5][2] = y[5][3] = y[5][4] = y[5][5] = y[5][6] = NAN; /* all missing */
    plot_panel p[2] = {{"accuracy", NAN, NAN, s, NS}, {"ECE", NAN, NAN, s, NS}};
    plot_figure fig = plot_figure_default();
    fig.title = "A very long title that would not fit in a figure this narrow if it were not "
                "shrunk or shortened to fit";
    fig.xlabel = "after stage";
    fig.width = 640; /* small: the legend wraps into two columns */
    fig.height = 330;
    char path[512];
    snprintf(path, sizeof path, "%s/edge_retention_many.png", dir);
    fig.path = path;
    report(path, plot_retention_curves(&fig, stages, NST, p, 2));

    /* reliability diagram of an empty split (n = 0) */
    metrics_bin bins[METRICS_NBINS];
    if (metrics_bins_equal_width(NULL, NULL, 0, bins) == METRICS_OK) {
        plot_figure f2 = plot_figure_default();
        f2.title = "Reliability of an empty split";
        snprintf(path, sizeof path, "%s/edge_reliability_empty.png", dir);
        f2.path = path;
        report(path, plot_reliability_diagram(&f2, bins, NAN));
    }

    /* 11 x 10 heatmap with long column names, values beyond the fixed colour range */
    enum { HR = 11, HC = 10 };
    static double v[HR * HC];
    static const char *cols[HC] = {"arithmetic", "medqa-usmle", "law-bar", "code-contests",
                                   "chemistry",  "physics",     "biology", "history",
                                   "geography",  "philosophy"};
    for (int i = 0; i < HR * HC; i++)
        v[i] = 0.02 * (i % 17) - 0.05;
    v[7] = NAN;
    plot_matrix m = {v, HR, HC, NULL, cols, "forgetting", 0, 2};
    plot_figure f3 = plot_figure_default();
    f3.title = "11 x 10 heatmap";
    f3.xlabel = "domain";
    f3.ylabel = "stage";
    f3.ymin = 0, f3.ymax = 0.3;
    snprintf(path, sizeof path, "%s/edge_heatmap_big.png", dir);
    f3.path = path;
    report(path, plot_heatmap(&f3, &m));

    /* severity: one unnamed series (no legend), one lone point, a single x value */
    static const double sx[4] = {0.1, 0.2, 0.3, 0.4}, sy[4] = {0.5, NAN, 0.7, NAN};
    static const double lx[1] = {0.25}, ly[1] = {0.6}, llo[1] = {0.55}, lhi[1] = {0.65};
    plot_series ss[2] = {{.x = sx, .y = sy, .n = 4},
                         {.x = lx, .y = ly, .lo = llo, .hi = lhi, .n = 1}};
    plot_figure f4 = plot_figure_default();
    f4.title = "Severity without legend";
    f4.xlabel = "severity";
    f4.ylabel = "accuracy";
    snprintf(path, sizeof path, "%s/edge_severity_nolegend.png", dir);
    f4.path = path;
    report(path, plot_severity_curves(&f4, ss, 2));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "plot_demo_out";
    retention(dir);
    reliability(dir);
    heatmaps(dir);
    severity(dir);
    edge_cases(dir);
    if (failures) return 1;
    printf("plot_demo: figures written to %s/\n", dir);
    return 0;
}
