/* Out-of-memory paths of analysis/figures/plot.c, built here with -DPLOT_REALLOC=test_realloc: the
 * k-th buffer allocation fails, for every k until a call needs no more; each failing call
 * returns PLOT_ERR_NOMEM, names the path, and leaves no file behind. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"
#include "analysis/figures/plot.h"
#include "tests/tmpdir.h"

#include <cairo.h>
#ifdef PLOT_TEST_FCFINI
#include <fontconfig/fontconfig.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long fail_at = -1; /* the call number that fails; -1 = never */
static long calls = 0;

void *test_realloc(void *p, size_t size);
void *test_realloc(void *p, size_t size) {
    if (++calls == fail_at) return NULL;
    return realloc(p, size);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static char dir[256];

typedef plot_status (*draw_fn)(const char *path);

static const double acc_y[3] = {0.3, 0.8, 0.7}, acc_lo[3] = {0.25, 0.75, 0.6},
                    acc_hi[3] = {0.35, 0.85, 0.8};
static const char *stages[3] = {"base", "d1", "d2"};

static plot_status draw_retention(const char *path) {
    plot_series s = {.name = "m", .y = acc_y, .lo = acc_lo, .hi = acc_hi, .n = 3};
    plot_panel p = {"accuracy", 0, 1, &s, 1};
    plot_figure fig = plot_figure_default();
    fig.path = path;
    fig.title = "t";
    return plot_retention_curves(&fig, stages, 3, &p, 1);
}

static plot_status draw_reliability(const char *path) {
    metrics_bin bins[METRICS_NBINS];
    const double conf[4] = {0.2, 0.5, 0.9, 0.95};
    const uint8_t correct[4] = {0, 1, 1, 0};
    if (metrics_bins_equal_width(conf, correct, 4, bins) != METRICS_OK) return PLOT_ERR_ARG;
    plot_figure fig = plot_figure_default();
    fig.path = path;
    return plot_reliability_diagram(&fig, bins, NAN);
}

static plot_status draw_heatmap(const char *path) {
    const double R[6] = {0.1, 0.2, 0.3, 0.4, NAN, 0.6};
    plot_matrix m = {R, 3, 2, NULL, NULL, "accuracy", 0, 0};
    plot_figure fig = plot_figure_default();
    fig.path = path;
    return plot_heatmap(&fig, &m);
}

static plot_status draw_severity(const char *path) {
    const double x[3] = {0, 1, 2};
    plot_series s = {.name = "m", .x = x, .y = acc_y, .n = 3};
    plot_figure fig = plot_figure_default();
    fig.path = path;
    return plot_severity_curves(&fig, &s, 1);
}

static plot_status draw_grid(const char *path) {
    plot_series s[2] = {{.name = "m", .y = acc_y, .lo = acc_lo, .hi = acc_hi, .n = 3},
                        {.name = "n", .y = acc_y, .n = 2, .color = 2}};
    plot_panel p[2] = {{"accuracy", 0, 1, &s[0], 1}, {"ECE", NAN, NAN, &s[1], 1}};
    plot_grid_column c[2] = {{"d1", stages, 3, p}, {"d2", stages + 1, 2, p + 1}};
    plot_panel q[2] = {p[1], p[0]};
    c[1].panels = q;
    q[1].series = &s[1];
    plot_figure fig = plot_figure_default();
    fig.path = path;
    fig.title = "t";
    return plot_retention_grid(&fig, c, 2, 2);
}

static void walk(const char *name, draw_fn fn, const char *ext) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    int failures_seen = 0;
    for (long k = 1; k < 10000; k++) {
        fail_at = k;
        calls = 0;
        plot_status st = fn(path);
        if (calls < k) { /* the k-th allocation never happened: the call completed */
            CHECK_MSG(st == PLOT_OK, "%s: %s", path, plot_errmsg());
            CHECK(exists(path));
            break;
        }
        failures_seen++;
        CHECK_MSG(st == PLOT_ERR_NOMEM, "%s, allocation %ld failed: status %d (%s)", path, k, st,
                  plot_errmsg());
        CHECK(strstr(plot_errmsg(), path) != NULL);
        CHECK_MSG(!exists(path), "%s left behind after allocation %ld failed", path, k);
    }
    CHECK_MSG(failures_seen >= 2, "%s: only %d allocations walked", path, failures_seen);
    fail_at = -1;
    remove(path);
}

int main(void) {
    tmpdir_make(dir, sizeof dir, "caopd_test_plot_nomem");
    static const char *exts[3] = {"png", "svg", "pdf"};
    for (int e = 0; e < 3; e++) {
        walk("retention", draw_retention, exts[e]);
        walk("reliability", draw_reliability, exts[e]);
        walk("heatmap", draw_heatmap, exts[e]);
        walk("severity", draw_severity, exts[e]);
        walk("grid", draw_grid, exts[e]);
    }
    tmpdir_finish(dir);
    /* cairo and fontconfig keep fonts in process-wide caches; free them so that
     * LeakSanitizer sees no leak */
    cairo_debug_reset_static_data();
#ifdef PLOT_TEST_FCFINI
    FcFini();
#endif
    return check_report("test_plot_nomem");
}
