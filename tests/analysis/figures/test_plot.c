/* Figures (analysis/figures/plot.h): each plot function (retention curves and grid, reliability,
 * heatmap, severity) writes PNG, SVG and PDF into a temporary
 * folder; checks PNG signature and pixel size, SVG texts (title, axes, legend, cell values),
 * error messages that name the path, and that NaN points leave a gap instead of garbage. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"
#include "analysis/figures/plot.h"
#include "tests/tmpdir.h"

#include <cairo.h>
#ifdef PLOT_TEST_FCFINI
#include <fontconfig/fontconfig.h>
#endif
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256]; /* temporary output folder */

static const char *out(const char *name) {
    static char path[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whole file as a NUL-terminated string (NULL if unreadable); *len = bytes. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* Checks the PNG signature and IHDR, and that the image is w x h pixels. */
static void check_png(const char *path, unsigned w, unsigned h) {
    size_t n = 0;
    unsigned char *b = (unsigned char *)slurp(path, &n);
    CHECK_MSG(b != NULL, "%s not written", path);
    if (!b) return;
    CHECK_MSG(n > 33 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: no PNG signature", path);
    CHECK_MSG(n > 33 && memcmp(b + 12, "IHDR", 4) == 0, "%s: no IHDR chunk", path);
    if (n > 33) {
        unsigned pw = (unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19];
        unsigned ph = (unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23];
        CHECK_MSG(pw == w && ph == h, "%s is %u x %u, expected %u x %u", path, pw, ph, w, h);
    }
    free(b);
}

/* The SVG is complete and contains every string of want (NULL-terminated list). */
static void check_svg(const char *path, const char *const *want) {
    size_t n = 0;
    char *s = slurp(path, &n);
    CHECK_MSG(s != NULL, "%s not written", path);
    if (!s) return;
    CHECK_MSG(strncmp(s, "<?xml", 5) == 0, "%s does not start with <?xml", path);
    CHECK_MSG(strstr(s, "<svg") != NULL && strstr(s, "</svg>") != NULL, "%s: no <svg>", path);
    CHECK_MSG(strstr(s, "<path") != NULL || strstr(s, "<use") != NULL, "%s: nothing drawn", path);
    for (const char *const *w = want; *w; w++)
        CHECK_MSG(strstr(s, *w) != NULL, "%s lacks \"%s\"", path, *w);
    free(s);
}

/* The <desc> of an SVG (every drawn string), or NULL. Caller frees. */
static char *svg_desc(const char *path) {
    char *s = slurp(path, NULL);
    if (!s) return NULL;
    char *a = strstr(s, "<desc>"), *b = a ? strstr(a, "</desc>") : NULL;
    char *d = NULL;
    if (a && b) {
        a += 6;
        d = malloc((size_t)(b - a) + 1);
        if (d) {
            memcpy(d, a, (size_t)(b - a));
            d[b - a] = '\0';
        }
    }
    free(s);
    return d;
}

static void check_pdf(const char *path) {
    size_t n = 0;
    char *s = slurp(path, &n);
    CHECK_MSG(s != NULL, "%s not written", path);
    if (!s) return;
    CHECK_MSG(n > 100 && strncmp(s, "%PDF-", 5) == 0, "%s: no %%PDF- header", path);
    free(s);
}

/* ---- data ------------------------------------------------------------------------------ */

#define NST 4
static const char *stages[NST] = {"base", "after arith", "after medqa", "after law"};
static const double acc_y[NST] = {0.30, 0.80, 0.70, 0.65}, acc_lo[NST] = {0.28, 0.77, 0.66, 0.6},
                    acc_hi[NST] = {0.32, 0.83, 0.74, 0.70};
static const double ood_y[NST] = {0.25, 0.70, NAN, 0.55}; /* missing stage 2 */
static const double ece_y[NST] = {0.15, 0.05, 0.08, 0.11}, ece_lo[NST] = {0.14, 0.04, 0.07, 0.1},
                    ece_hi[NST] = {0.16, 0.06, 0.09, 0.12};

/* ---- tests ----------------------------------------------------------------------------- */

static void test_format(void) {
    CHECK_EQ_INT(plot_format_from_path("a/b.png"), PLOT_FORMAT_PNG);
    CHECK_EQ_INT(plot_format_from_path("B.PNG"), PLOT_FORMAT_PNG);
    CHECK_EQ_INT(plot_format_from_path("x.svg"), PLOT_FORMAT_SVG);
    CHECK_EQ_INT(plot_format_from_path("x.Pdf"), PLOT_FORMAT_PDF);
    CHECK_EQ_INT(plot_format_from_path("x.jpg"), PLOT_FORMAT_UNKNOWN);
    CHECK_EQ_INT(plot_format_from_path("png"), PLOT_FORMAT_UNKNOWN);
    CHECK_EQ_INT(plot_format_from_path(NULL), PLOT_FORMAT_UNKNOWN);
    plot_figure f = plot_figure_default();
    CHECK(f.path == NULL && isnan(f.ymin) && isnan(f.ymax) && f.width == 0);
    CHECK(strcmp(plot_status_str(PLOT_ERR_IO), plot_status_str(PLOT_OK)) != 0);
    CHECK(plot_status_str((plot_status)99) != NULL);
}

static void test_retention(void) {
    plot_series acc[2] = {
        {.name = "CaOPD (in-domain)", .y = acc_y, .lo = acc_lo, .hi = acc_hi, .n = NST, .color = 1},
        {.name = "CaOPD (OOD)", .y = ood_y, .n = NST, .dashed = 1, .color = 1}};
    plot_series ece[1] = {{.name = "CaOPD (in-domain)",
                           .y = ece_y,
                           .lo = ece_lo,
                           .hi = ece_hi,
                           .n = NST,
                           .color = 1}};
    plot_panel panels[2] = {{"accuracy", 0, 1, acc, 2}, {"ECE", NAN, NAN, ece, 1}};
    plot_figure fig = plot_figure_default();
    fig.title = "Retention of arith";
    fig.xlabel = "after stage";
    const char *ext[3] = {"retention.png", "retention.svg", "retention.pdf"};
    for (int e = 0; e < 3; e++) {
        fig.path = out(ext[e]);
        plot_status st = plot_retention_curves(&fig, stages, NST, panels, 2);
        CHECK_MSG(st == PLOT_OK, "%s: %s", fig.path, plot_errmsg());
        CHECK_EQ_STR(plot_errmsg(), "");
    }
    check_png(out("retention.png"), 1440, 1040); /* 720 x 520 points at 2 px/pt */
    const char *want[] = {"<title>Retention of arith</title>",
                          "accuracy",
                          "ECE",
                          "after stage",
                          "base",
                          "after arith",
                          "after medqa",
                          "after law",
                          "CaOPD (in-domain)",
                          "CaOPD (OOD)",
                          "bands: mean \xC2\xB1 spread",
                          "0.0",
                          "1.0",
                          NULL};
    check_svg(out("retention.svg"), want);
    check_pdf(out("retention.pdf"));

    /* a legend entry per distinct (name, colour, dashed): the ECE panel repeats one */
    char *d = svg_desc(out("retention.svg"));
    CHECK(d != NULL);
    if (d) {
        const char *p = d;
        int count = 0;
        while ((p = strstr(p, "CaOPD (in-domain)")) != NULL)
            count++, p++;
        CHECK_EQ_INT(count, 1);
        CHECK(strstr(d, "nan") == NULL && strstr(d, "inf") == NULL);
        free(d);
    }

    /* size and scale */
    fig.path = out("retention_small.png");
    fig.width = 600, fig.height = 400, fig.png_scale = 1.5;
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, panels, 2), PLOT_OK);
    check_png(fig.path, 900, 600);

    /* stage names NULL: numbers; one panel */
    fig.path = out("retention_nonames.svg");
    CHECK_EQ_INT(plot_retention_curves(&fig, NULL, NST, panels, 1), PLOT_OK);
    const char *want2[] = {"\n0\n", "\n1\n", "\n2\n", "\n3\n", NULL};
    check_svg(fig.path, want2);

    /* bad inputs */
    fig.path = out("bad.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, 0, panels, 2), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), fig.path) != NULL);
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, NULL, 2), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, panels, 0), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, panels, 5), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST - 1, panels, 2), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "CaOPD") != NULL); /* names the series with too many points */
    plot_series half = {.name = "half band", .y = acc_y, .lo = acc_lo, .n = NST};
    plot_panel hp = {"accuracy", 0, 1, &half, 1};
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, &hp, 1), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "lo/hi") != NULL);
    plot_series noy = {.name = "no y", .n = NST};
    hp.series = &noy;
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, &hp, 1), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_curves(NULL, stages, NST, panels, 2), PLOT_ERR_ARG);
    fig.width = 120, fig.height = 110; /* no room for the axes and the legend */
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, panels, 2), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "too small") != NULL);
    CHECK(!exists(fig.path));
    fig.width = 50;
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, panels, 2), PLOT_ERR_ARG);
    fig.width = 400, fig.height = 300, fig.png_scale = 100; /* 40000 pixels wide */
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, panels, 2), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "png_scale") != NULL);
    CHECK(!exists(fig.path));
}

/* Equal-width bins of 30 samples: bins 5..9, bin 3 with count but no accuracy (NaN). */
static void make_bins(metrics_bin bins[METRICS_NBINS]) {
    double conf[30];
    uint8_t correct[30];
    for (int i = 0; i < 30; i++) {
        conf[i] = 0.55 + 0.1 * (i % 5);
        correct[i] = (uint8_t)(i % 3 != 0);
    }
    CHECK_EQ_INT(metrics_bins_equal_width(conf, correct, 30, bins), METRICS_OK);
}

static void test_reliability(void) {
    metrics_bin bins[METRICS_NBINS];
    make_bins(bins);
    plot_figure fig = plot_figure_default();
    fig.title = "Reliability stage 2 medqa";
    const char *ext[3] = {"rel.png", "rel.svg", "rel.pdf"};
    for (int e = 0; e < 3; e++) {
        fig.path = out(ext[e]);
        plot_status st = plot_reliability_diagram(&fig, bins, 0.1234);
        CHECK_MSG(st == PLOT_OK, "%s: %s", fig.path, plot_errmsg());
    }
    check_png(out("rel.png"), 1040, 1200); /* 520 x 600 points */
    const char *want[] = {"<title>Reliability stage 2 medqa</title>",
                          "ECE = 0.1234",
                          "n = 30",
                          "confidence",
                          "accuracy",
                          "count",
                          "perfect calibration",
                          "gap to mean confidence",
                          "0.5",
                          NULL};
    check_svg(out("rel.svg"), want);
    check_pdf(out("rel.pdf"));

    /* ECE NaN: computed from the bins, equal to metrics_ece */
    double conf[30];
    uint8_t correct[30];
    for (int i = 0; i < 30; i++) {
        conf[i] = 0.55 + 0.1 * (i % 5);
        correct[i] = (uint8_t)(i % 3 != 0);
    }
    char expect[64];
    snprintf(expect, sizeof expect, "ECE = %.4f", metrics_ece(conf, correct, 30));
    fig.path = out("rel_nan.svg");
    fig.xlabel = "verbalized confidence";
    CHECK_EQ_INT(plot_reliability_diagram(&fig, bins, NAN), PLOT_OK);
    const char *want2[] = {expect, "verbalized confidence", NULL};
    check_svg(fig.path, want2);

    /* NaN statistics in a bin with samples, and an empty diagram, are not errors */
    bins[3].count = 4;
    bins[3].accuracy = NAN;
    bins[3].mean_conf = NAN;
    bins[9].mean_conf = NAN;
    fig.path = out("rel_nanbin.png");
    CHECK_EQ_INT(plot_reliability_diagram(&fig, bins, NAN), PLOT_OK);
    check_png(fig.path, 1040, 1200);
    metrics_bin empty[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_width(NULL, NULL, 0, empty), METRICS_OK);
    fig.path = out("rel_empty.svg");
    CHECK_EQ_INT(plot_reliability_diagram(&fig, empty, NAN), PLOT_OK);
    const char *want3[] = {"ECE = n/a", "n = 0", NULL};
    check_svg(fig.path, want3);
    char *d = svg_desc(fig.path);
    CHECK(d && strstr(d, "nan") == NULL);
    CHECK(d && strstr(d, "0.25") == NULL); /* the count axis of nothing has whole ticks */
    free(d);

    fig.path = out("bad.svg");
    CHECK_EQ_INT(plot_reliability_diagram(&fig, NULL, 0.1), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), fig.path) != NULL);
}

static void test_heatmap(void) {
    /* R[i][j] of T = 3 domains: 4 stages x 3 domains, one missing cell */
    const double R[12] = {0.30, 0.20, 0.25, 0.812, 0.21, 0.26, 0.70, 0.79, 0.27, 0.65, NAN, 0.80};
    const char *rows[4] = {"base", "after d1", "after d2", "after d3"};
    const char *cols[3] = {"arith", "medqa", "law"};
    plot_matrix m = {R, 4, 3, rows, cols, "accuracy", 0, 0};
    plot_figure fig = plot_figure_default();
    fig.title = "Accuracy matrix";
    fig.xlabel = "domain";
    fig.ylabel = "model";
    const char *ext[3] = {"heat.png", "heat.svg", "heat.pdf"};
    for (int e = 0; e < 3; e++) {
        fig.path = out(ext[e]);
        plot_status st = plot_heatmap(&fig, &m);
        CHECK_MSG(st == PLOT_OK, "%s: %s", fig.path, plot_errmsg());
    }
    check_png(out("heat.png"), 1440, 900);
    const char *want[] = {"<title>Accuracy matrix</title>",
                          "0.812",
                          "0.300",
                          "0.650",
                          "0.800",
                          "base",
                          "after d3",
                          "arith",
                          "medqa",
                          "law",
                          "domain",
                          "model",
                          "accuracy",
                          "\nn/a\n" /* the NaN cell */,
                          NULL};
    check_svg(out("heat.svg"), want);
    check_pdf(out("heat.pdf"));
    char *d = svg_desc(out("heat.svg"));
    CHECK(d && strstr(d, "nan") == NULL);
    free(d);

    /* 2 decimals, reversed scale, fixed colour range, default labels */
    m.decimals = 2;
    m.lower_is_better = 1;
    m.row_labels = NULL;
    m.col_labels = NULL;
    m.value_label = "ECE";
    fig.ymin = 0, fig.ymax = 1;
    fig.path = out("heat2.svg");
    CHECK_EQ_INT(plot_heatmap(&fig, &m), PLOT_OK);
    const char *want2[] = {"\n0.81\n", "\n0.2\n", "\n1.0\n", "\n0\n", "\n3\n", "ECE", NULL};
    check_svg(fig.path, want2);

    /* an all-NaN matrix draws grey cells */
    const double allnan[4] = {NAN, NAN, NAN, NAN};
    plot_matrix mn = {allnan, 2, 2, NULL, NULL, NULL, 0, 0};
    fig.ymin = fig.ymax = NAN;
    fig.path = out("heat_nan.png");
    CHECK_EQ_INT(plot_heatmap(&fig, &mn), PLOT_OK);
    check_png(fig.path, 1440, 900);

    fig.path = out("bad.png");
    CHECK_EQ_INT(plot_heatmap(&fig, NULL), PLOT_ERR_ARG);
    mn.rows = 0;
    CHECK_EQ_INT(plot_heatmap(&fig, &mn), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), fig.path) != NULL);
}

static void test_severity(void) {
    const double x[5] = {0, 1, 2, 3, 4};
    const double y1[5] = {0.05, 0.08, 0.12, 0.15, 0.2}, lo1[5] = {0.04, 0.07, 0.1, 0.13, 0.18},
                 hi1[5] = {0.06, 0.09, 0.14, 0.17, 0.22};
    const double y2[5] = {0.05, 0.06, NAN, 0.08, 0.1};
    plot_series s[2] = {{.name = "SFT", .x = x, .y = y1, .lo = lo1, .hi = hi1, .n = 5},
                        {.name = "CaOPD", .x = x, .y = y2, .n = 5}};
    plot_figure fig = plot_figure_default();
    fig.title = "ECE vs OOD severity";
    fig.xlabel = "severity";
    fig.ylabel = "ECE";
    const char *ext[3] = {"sev.png", "sev.svg", "sev.pdf"};
    for (int e = 0; e < 3; e++) {
        fig.path = out(ext[e]);
        plot_status st = plot_severity_curves(&fig, s, 2);
        CHECK_MSG(st == PLOT_OK, "%s: %s", fig.path, plot_errmsg());
    }
    check_png(out("sev.png"), 1440, 900);
    const char *want[] = {"<title>ECE vs OOD severity</title>",
                          "severity",
                          "ECE",
                          "SFT",
                          "CaOPD",
                          "\n0\n",
                          "\n4\n",
                          "bands: mean \xC2\xB1 spread", /* the default note */
                          NULL};
    check_svg(out("sev.svg"), want);
    /* the caller says what its bands are */
    fig.band_note = "bands: min-max over seeds";
    fig.path = out("sev_note.svg");
    CHECK_MSG(plot_severity_curves(&fig, s, 2) == PLOT_OK, "%s: %s", fig.path, plot_errmsg());
    const char *want_note[] = {"bands: min-max over seeds", NULL};
    check_svg(out("sev_note.svg"), want_note);
    fig.band_note = NULL;
    check_pdf(out("sev.pdf"));

    /* no series at all: empty axes, no legend */
    fig.path = out("sev_empty.png");
    CHECK_EQ_INT(plot_severity_curves(&fig, NULL, 0), PLOT_OK);
    check_png(fig.path, 1440, 900);

    fig.path = out("bad.png");
    plot_series nox = {.name = "no x", .y = y1, .n = 5};
    CHECK_EQ_INT(plot_severity_curves(&fig, &nox, 1), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "no x") != NULL);
    CHECK_EQ_INT(plot_severity_curves(&fig, NULL, 2), PLOT_ERR_ARG);
}

/* A grid of retention panels: rows share a y axis (column 0's fixed range, or the data of the
 * whole row), columns have their own stages and titles; one legend; bad shapes are refused. */
static void test_grid(void) {
    static const char *st_a[3] = {"1 add", "2 rev", "3 count"}, *st_b[2] = {"2 rev", "3 count"};
    const double a_acc[3] = {0.9, 0.7, 0.6}, a_lo[3] = {0.85, 0.6, 0.5}, a_hi[3] = {0.95, 0.8, 0.7};
    const double b_acc[2] = {0.8, 0.75}, ocg_a[3] = {0.1, -0.2, 0.5}, ocg_b[2] = {3.0, 0.2};
    const double ece_a[3] = {0.1, 0.2, 0.3}, ece_b[2] = {0.05, 0.1};
    plot_series sa[3] = {{.name = "caopd", .y = a_acc, .lo = a_lo, .hi = a_hi, .n = 3, .color = 1},
                         {.name = "caopd", .y = ece_a, .n = 3, .color = 1},
                         {.name = "caopd", .y = ocg_a, .n = 3, .color = 1}};
    plot_series sb[6] = {{.name = "caopd", .y = b_acc, .n = 2, .color = 1},
                         {.name = "sdft", .y = b_acc, .n = 2, .color = 2},
                         {.name = "caopd", .y = ece_b, .n = 2, .color = 1},
                         {.name = "sdft", .y = ece_b, .n = 2, .color = 2},
                         {.name = "caopd", .y = ocg_b, .n = 2, .color = 1},
                         {.name = "sdft", .y = ocg_b, .n = 2, .color = 2}};
    plot_panel pa[3] = {{"accuracy", 0, 1, &sa[0], 1},
                        {"ECE (expected)", 0, 0.5, &sa[1], 1},
                        {"OCG (expected)", NAN, NAN, &sa[2], 1}};
    plot_panel pb[3] = {
        {NULL, NAN, NAN, &sb[0], 2}, {NULL, NAN, NAN, &sb[2], 2}, {NULL, NAN, NAN, &sb[4], 2}};
    plot_grid_column cols[2] = {{"add", st_a, 3, pa}, {"rev", st_b, 2, pb}};
    plot_figure fig = plot_figure_default();
    fig.title = "Retention grid";
    fig.xlabel = "after stage";
    fig.band_note = "bands: min-max over seeds";
    fig.width = 640, fig.height = 420, fig.png_scale = 1.25;
    fig.path = out("grid.png");
    CHECK_MSG(plot_retention_grid(&fig, cols, 2, 3) == PLOT_OK, "%s", plot_errmsg());
    check_png(fig.path, 800, 525);
    fig.path = out("grid.svg");
    CHECK_MSG(plot_retention_grid(&fig, cols, 2, 3) == PLOT_OK, "%s", plot_errmsg());
    const char *want[] = {"<title>Retention grid</title>",
                          "accuracy",
                          "ECE (expected)",
                          "OCG (expected)",
                          "after stage",
                          "1 add",
                          "3 count",
                          "bands: min-max over seeds",
                          NULL};
    check_svg(fig.path, want);
    char *d = svg_desc(fig.path);
    CHECK(d != NULL);
    if (d) {
        /* column titles, each legend entry once, y labels on the left column only */
        CHECK(strstr(d, "\nadd\n") && strstr(d, "\nrev\n"));
        int n = 0;
        for (const char *p = d; (p = strstr(p, "\nsdft\n")) != NULL; p++)
            n++;
        CHECK_EQ_INT(n, 1);
        n = 0;
        for (const char *p = d; (p = strstr(p, "OCG (expected)")) != NULL; p++)
            n++;
        CHECK_EQ_INT(n, 1);
        /* the ECE row keeps column 0's fixed range 0..0.5; the OCG row spans both columns' data
         * (3.0 in column 1 only) */
        CHECK(strstr(d, "\n0.5\n") != NULL);
        CHECK_MSG(strstr(d, "\n3\n") != NULL || strstr(d, "\n3.0\n") != NULL, "%s", d);
        CHECK(strstr(d, "nan") == NULL);
        free(d);
    }
    fig.path = out("grid.pdf");
    CHECK_EQ_INT(plot_retention_grid(&fig, cols, 2, 3), PLOT_OK);
    check_pdf(fig.path);
    /* one column of one stage */
    plot_grid_column one = {"count", st_a + 2, 1, pa};
    const double y1[1] = {0.4};
    plot_series s1 = {.name = "caopd", .y = y1, .n = 1};
    plot_panel p1 = {"accuracy", 0, 1, &s1, 1};
    one.panels = &p1;
    fig.path = out("grid_one.png");
    CHECK_MSG(plot_retention_grid(&fig, &one, 1, 1) == PLOT_OK, "%s", plot_errmsg());
    /* bad shapes */
    fig.path = out("grid_bad.png");
    CHECK_EQ_INT(plot_retention_grid(&fig, cols, 0, 3), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_grid(&fig, cols, 9, 3), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_grid(&fig, cols, 2, 0), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_grid(&fig, cols, 2, 5), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_grid(&fig, NULL, 2, 3), PLOT_ERR_ARG);
    CHECK_EQ_INT(plot_retention_grid(NULL, cols, 2, 3), PLOT_ERR_ARG);
    plot_grid_column bad = cols[1];
    bad.n_stages = 1; /* its series have 2 points */
    CHECK_EQ_INT(plot_retention_grid(&fig, &bad, 1, 3), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "only 1 stages") != NULL);
    bad.n_stages = 0;
    CHECK_EQ_INT(plot_retention_grid(&fig, &bad, 1, 3), PLOT_ERR_ARG);
    bad = cols[1];
    bad.panels = NULL;
    CHECK_EQ_INT(plot_retention_grid(&fig, &bad, 1, 3), PLOT_ERR_ARG);
    fig.width = 200, fig.height = 150; /* too small for 2 x 3 panels */
    CHECK_EQ_INT(plot_retention_grid(&fig, cols, 2, 3), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "too small") != NULL);
    CHECK(!exists(fig.path));
}

/* Unwritable and unknown paths fail with the path in the message and leave no file. */
static void test_errors(void) {
    const char *file = out("a_file.txt");
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    char under_file[600], missing[600];
    snprintf(under_file, sizeof under_file, "%s/fig.png", file); /* ENOTDIR, even as root */
    snprintf(missing, sizeof missing, "%s/no/such/folder/fig.svg", dir);
    const char *paths[2] = {under_file, missing};

    plot_series s = {.name = "a", .y = acc_y, .n = NST};
    plot_panel p = {"accuracy", 0, 1, &s, 1};
    metrics_bin bins[METRICS_NBINS];
    make_bins(bins);
    const double R[4] = {0.1, 0.2, 0.3, 0.4};
    plot_matrix m = {R, 2, 2, NULL, NULL, NULL, 0, 0};
    const double x[NST] = {0, 1, 2, 3};
    plot_series sx = {.name = "a", .x = x, .y = acc_y, .n = NST};
    for (int k = 0; k < 2; k++)
        for (int fn = 0; fn < 4; fn++) {
            plot_figure fig = plot_figure_default();
            fig.path = paths[k];
            plot_status st = fn == 0   ? plot_retention_curves(&fig, stages, NST, &p, 1)
                             : fn == 1 ? plot_reliability_diagram(&fig, bins, NAN)
                             : fn == 2 ? plot_heatmap(&fig, &m)
                                       : plot_severity_curves(&fig, &sx, 1);
            CHECK_MSG(st == PLOT_ERR_IO, "function %d, %s: status %d", fn, paths[k], st);
            CHECK_MSG(strstr(plot_errmsg(), paths[k]) != NULL, "message \"%s\" lacks the path",
                      plot_errmsg());
            CHECK(strstr(plot_errmsg(), "cannot write") != NULL);
        }
    CHECK(!exists(missing));

    plot_figure fig = plot_figure_default();
    fig.path = out("fig.jpg");
    CHECK_EQ_INT(plot_heatmap(&fig, &m), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "fig.jpg") != NULL && strstr(plot_errmsg(), ".png") != NULL);
    CHECK(!exists(fig.path));
    fig.path = NULL;
    CHECK_EQ_INT(plot_heatmap(&fig, &m), PLOT_ERR_ARG);
    CHECK(strstr(plot_errmsg(), "path") != NULL);
    CHECK_EQ_INT(plot_heatmap(NULL, &m), PLOT_ERR_ARG);

    /* success clears the message */
    fig.path = out("ok.svg");
    CHECK_EQ_INT(plot_heatmap(&fig, &m), PLOT_OK);
    CHECK_EQ_STR(plot_errmsg(), "");
}

/* Texts with XML specials are escaped in <title> and <desc>. */
static void test_svg_escaping(void) {
    const double R[1] = {0.5};
    plot_matrix m = {R, 1, 1, NULL, NULL, "a<b & c>d", 0, 0};
    plot_figure fig = plot_figure_default();
    fig.title = "R<i> & R>j";
    fig.path = out("esc.svg");
    CHECK_EQ_INT(plot_heatmap(&fig, &m), PLOT_OK);
    const char *want[] = {"<title>R&lt;i&gt; &amp; R&gt;j</title>", "a&lt;b &amp; c&gt;d", NULL};
    check_svg(fig.path, want);
    char *s = slurp(fig.path, NULL);
    CHECK(s && strstr(s, "R<i>") == NULL);
    free(s);
}

/* Whether s is valid UTF-8 (no character cut in the middle). */
static int utf8_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (k < 0) return 0;
        p++;
        for (int i = 0; i < k; i++, p++)
            if ((*p & 0xC0) != 0x80) return 0;
    }
    return 1;
}

/* Names too long for the legend are cut at a character boundary and end in "…". */
static void test_long_text(void) {
    char name[400];
    size_t k = 0;
    while (k + 2 < sizeof name - 1) { /* "é" is two bytes */
        name[k++] = '\xC3';
        name[k++] = '\xA9';
    }
    name[k] = '\0';
    plot_series s = {.name = name, .y = acc_y, .n = NST};
    plot_panel p = {"accuracy", 0, 1, &s, 1};
    plot_figure fig = plot_figure_default();
    fig.path = out("long.svg");
    CHECK_EQ_INT(plot_retention_curves(&fig, stages, NST, &p, 1), PLOT_OK);
    char *d = svg_desc(fig.path);
    CHECK(d && strstr(d, "\xC3\xA9\xE2\x80\xA6") != NULL); /* "é…" */
    CHECK(d && strstr(d, name) == NULL);
    CHECK(d && utf8_ok(d));
    free(d);
}

/* Pixels of a PNG as ARGB32 words; NULL if it cannot be read. Caller frees. */
static uint32_t *png_pixels(const char *path, int *w, int *h) {
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return NULL;
    }
    cairo_surface_flush(img);
    *w = cairo_image_surface_get_width(img);
    *h = cairo_image_surface_get_height(img);
    int stride = cairo_image_surface_get_stride(img);
    uint32_t *px = malloc((size_t)*w * (size_t)*h * 4);
    const unsigned char *data = cairo_image_surface_get_data(img);
    for (int y = 0; px && y < *h; y++)
        memcpy(px + (size_t)y * (size_t)*w, data + (size_t)y * (size_t)stride, (size_t)*w * 4);
    cairo_surface_destroy(img);
    return px;
}

/* Number of differing pixels between two PNGs of the same size; -1 if unreadable or sizes
 * differ. */
static long png_diff(const char *a, const char *b) {
    int wa = 0, ha = 0, wb = 0, hb = 0;
    uint32_t *pa = png_pixels(a, &wa, &ha), *pb = png_pixels(b, &wb, &hb);
    long diff = -1;
    if (pa && pb && wa == wb && ha == hb) {
        diff = 0;
        for (size_t i = 0; i < (size_t)wa * (size_t)ha; i++)
            diff += pa[i] != pb[i];
    }
    free(pa);
    free(pb);
    return diff;
}

/* A NaN stage is a gap: the picture equals the one drawn from the two pieces around it, and
 * differs from the one where the stage is present. */
static void test_nan_gap(void) {
    const double with_nan[5] = {0.5, 0.6, NAN, 0.7, 0.8};
    const double full[5] = {0.5, 0.6, 0.65, 0.7, 0.8};
    const double xa[2] = {0, 1}, ya[2] = {0.5, 0.6}, xb[2] = {3, 4}, yb[2] = {0.7, 0.8};
    const char *st5[5] = {"base", "s1", "s2", "s3", "s4"};
    plot_figure fig = plot_figure_default();
    fig.title = "gap";

    plot_series s_nan = {.y = with_nan, .n = 5, .color = 2};
    plot_panel p = {"accuracy", 0, 1, &s_nan, 1};
    fig.path = out("gap_nan.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &p, 1), PLOT_OK);

    plot_series pieces[2] = {{.x = xa, .y = ya, .n = 2, .color = 2},
                             {.x = xb, .y = yb, .n = 2, .color = 2}};
    p.series = pieces;
    p.n_series = 2;
    fig.path = out("gap_pieces.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &p, 1), PLOT_OK);

    plot_series s_full = {.y = full, .n = 5, .color = 2};
    p.series = &s_full;
    p.n_series = 1;
    fig.path = out("gap_full.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &p, 1), PLOT_OK);

    long same = png_diff(out("gap_nan.png"), out("gap_pieces.png"));
    long differ = png_diff(out("gap_nan.png"), out("gap_full.png"));
    CHECK_MSG(same == 0, "NaN series vs two pieces: %ld pixels differ", same);
    CHECK_MSG(differ > 100, "NaN series vs full series: only %ld pixels differ", differ);

    /* a trailing NaN equals the shorter series; NaN bands are skipped likewise */
    const double tail_nan[5] = {0.5, 0.6, 0.65, 0.7, NAN};
    const double lo[5] = {0.45, NAN, 0.6, 0.65, 0.7}, hi[5] = {0.55, 0.65, 0.7, 0.75, 0.85};
    plot_series t1 = {.y = tail_nan, .lo = lo, .hi = hi, .n = 5, .color = 3};
    plot_series t2 = {.y = tail_nan, .lo = lo, .hi = hi, .n = 4, .color = 3};
    p.series = &t1;
    fig.path = out("tail_nan.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &p, 1), PLOT_OK);
    p.series = &t2;
    fig.path = out("tail_short.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &p, 1), PLOT_OK);
    same = png_diff(out("tail_nan.png"), out("tail_short.png"));
    CHECK_MSG(same == 0, "trailing NaN vs shorter series: %ld pixels differ", same);

    /* all-NaN and infinite values: no crash, and the auto range ignores them */
    const double wild[5] = {NAN, INFINITY, -INFINITY, NAN, NAN};
    const double wx[5] = {NAN, 1, 2, 3, 4};
    const double allnan[5] = {NAN, NAN, NAN, NAN, NAN};
    plot_series w[3] = {{.name = "wild", .y = wild, .n = 5},
                        {.name = "all missing", .y = allnan, .lo = wild, .hi = wild, .n = 5},
                        {.name = "wx", .x = wx, .y = full, .n = 5}};
    plot_panel pw = {"accuracy", NAN, NAN, w, 3};
    fig.path = out("wild.svg");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &pw, 1), PLOT_OK);
    char *d = svg_desc(fig.path);
    CHECK(d && strstr(d, "nan") == NULL && strstr(d, "inf") == NULL);
    CHECK(d && strstr(d, "\n0.60\n") != NULL && strstr(d, "\n0.80\n") != NULL); /* from "wx" */
    free(d);

    /* huge finite values: clamped lines under a fixed range, %g ticks under an auto range */
    const double huge[5] = {0.5, 1e300, -1e300, DBL_MAX, -DBL_MAX};
    plot_series hs = {.name = "huge", .y = huge, .n = 5};
    plot_panel ph = {"accuracy", 0, 1, &hs, 1};
    fig.path = out("huge.png");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &ph, 1), PLOT_OK);
    ph.ymin = ph.ymax = NAN;
    fig.path = out("huge.svg");
    CHECK_EQ_INT(plot_retention_curves(&fig, st5, 5, &ph, 1), PLOT_OK);
    d = svg_desc(fig.path);
    CHECK(d && strstr(d, "e+") != NULL && strstr(d, "nan") == NULL && strstr(d, "inf") == NULL);
    CHECK(d && strlen(d) < 2000);
    free(d);
    const double sx[3] = {NAN, 1, 2}, sy[3] = {0.1, NAN, 0.3};
    plot_series sev = {.name = "s", .x = sx, .y = sy, .lo = sy, .hi = sy, .n = 3};
    fig.path = out("wild_sev.png");
    CHECK_EQ_INT(plot_severity_curves(&fig, &sev, 1), PLOT_OK);
}

int main(void) {
    tmpdir_make(dir, sizeof dir, "caopd_test_plot");
    test_format();
    test_retention();
    test_reliability();
    test_heatmap();
    test_severity();
    test_grid();
    test_errors();
    test_svg_escaping();
    test_long_text();
    test_nan_gap();
    const char *keep = getenv("CAOPD_PLOT_KEEP");
    if (keep && keep[0])
        fprintf(stderr, "test_plot: figures kept in %s\n", dir);
    else
        tmpdir_finish(dir);
    /* cairo and fontconfig keep fonts in process-wide caches; free them so that
     * LeakSanitizer sees no leak */
    cairo_debug_reset_static_data();
#ifdef PLOT_TEST_FCFINI
    FcFini();
#endif
    return check_report("test_plot");
}
