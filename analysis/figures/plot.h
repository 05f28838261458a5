/* plot: the figures of `caopd analyze` (retention curves and grids, reliability diagrams,
 * stage x domain heatmaps, OOD-severity curves), drawn with cairo into PNG, SVG or PDF files.
 * Inputs are plain in-memory structs (nothing here reads HDF5). Conventions: docs/metrics.md. */
#ifndef CAOPD_PLOT_H
#define CAOPD_PLOT_H

#include <stddef.h>

#include "analysis/metrics/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Units: figure sizes are in points (1/72 inch); a PNG has width * png_scale by
 *   height * png_scale pixels. Data values are in the caller's units (metrics are fractions
 *   in [0,1], see metrics.h); nothing is converted to percent.
 * - Ownership: every pointer in the input structs (strings, arrays) is borrowed for the call
 *   only and never kept. Strings are UTF-8. NULL or "" means "no such text".
 * - Missing values: a NaN (or infinite) x or y marks a missing point: the line breaks there,
 *   and neither its marker nor its band is drawn; a NaN lo or hi drops only the band there;
 *   a NaN heatmap cell is grey, marked "n/a"; a NaN bin is an empty bin. Nothing is drawn at a
 *   made-up position, and missing values never change the axis ranges.
 * - Output: the whole file is encoded in memory, then written at once; the format follows
 *   the extension of the output path (.png, .svg, .pdf, case-insensitive). On failure no
 *   file is left behind (a partly written one is removed). SVG text is drawn as glyph
 *   outlines, so each SVG also carries the title in <title> and every drawn string in
 *   <desc> (searchable, and read by screen readers).
 * - Errors: functions return a plot_status; on failure plot_errmsg() holds a message that
 *   names the output path and what to do. Nothing prints or exits.
 * - Thread-safety: no global state of ours except the thread-local error message; cairo and
 *   fontconfig lock their own font caches, so different threads may draw different figures
 *   at once (not yet exercised under TSan). Fonts come from fontconfig (DejaVu Sans). */

/* ---- status ---------------------------------------------------------------------------- */

typedef enum plot_status {
    PLOT_OK = 0,
    PLOT_ERR_ARG,   /* NULL or inconsistent input, unknown extension, figure too small */
    PLOT_ERR_IO,    /* the output file could not be written (missing or read-only folder) */
    PLOT_ERR_NOMEM, /* the in-memory file buffer could not be grown */
    PLOT_ERR_CAIRO, /* cairo failed while drawing or encoding (its reason is in the message) */
} plot_status;

/* Static string naming the status. Unknown values are accepted. */
const char *plot_status_str(plot_status s);

/* Message of the last plot_* call on this thread that failed, e.g.
 * "plot 'out/fig.png': cannot write the file: No such file or directory (...)"; "" after a
 * successful call. Owned by the library, valid until the next plot_* call on this thread. */
const char *plot_errmsg(void);

/* ---- figure and series ----------------------------------------------------------------- */

typedef enum plot_format {
    PLOT_FORMAT_UNKNOWN = 0,
    PLOT_FORMAT_PNG,
    PLOT_FORMAT_SVG,
    PLOT_FORMAT_PDF,
} plot_format;

/* Format named by the extension of path (".png", ".svg", ".pdf", any case);
 * PLOT_FORMAT_UNKNOWN for anything else or NULL. */
plot_format plot_format_from_path(const char *path);

/* One figure: where it goes and its texts. Zero-initialised fields take the defaults. */
typedef struct plot_figure {
    const char *path;      /* output file; its extension picks the format. Required. */
    const char *title;     /* drawn centred on top (shrunk to fit the width) */
    const char *xlabel;    /* x axis label; reliability diagram: default "confidence" */
    const char *ylabel;    /* y axis label; reliability diagram: default "accuracy" */
    double ymin, ymax;     /* y range (heatmap: the colour-scale range); used when
                              ymin < ymax, both finite; otherwise (0/0, NaN) automatic */
    double width;          /* points; 0 = the function's default (see each function) */
    double height;         /* points; 0 = the function's default */
    double png_scale;      /* PNG pixels per point; 0 = 2 (ignored for SVG and PDF) */
    const char *band_note; /* legend note when a series has a band, saying what the band is;
                              NULL or "" = "bands: mean ± spread" */
} plot_figure;

/* A figure with every default (ymin = ymax = NaN: automatic range). */
plot_figure plot_figure_default(void);

/* Palette size: colours 1..PLOT_NCOLORS are the Okabe-Ito colour-blind-safe palette
 * (blue, vermillion, green, reddish purple, orange, sky blue, black, yellow). */
#define PLOT_NCOLORS 8

/* One line: n points (x[i], y[i]), optionally with a shaded band lo[i]..hi[i] (a spread over
 * seeds; plot_figure.band_note says which). Zero-initialise, then fill in. */
typedef struct plot_series {
    const char *name; /* legend entry; NULL or "" = not in the legend */
    const double *x;  /* n values; NULL = 0, 1, ..., n-1 (retention: the stage index) */
    const double *y;  /* n values (mean over seeds); NaN = missing point. Required if n > 0 */
    const double *lo; /* n lower band values, or NULL = no band (needs hi too) */
    const double *hi; /* n upper band values, or NULL = no band */
    size_t n;         /* number of points */
    int dashed;       /* nonzero: dashed line and hollow markers (OOD splits) */
    int color;        /* 1..PLOT_NCOLORS: palette colour (give a method's in-domain and OOD
                         series the same one); 0 = automatic, by position in the array */
} plot_series;

/* One stacked panel of a retention figure: a y axis and the series drawn on it. */
typedef struct plot_panel {
    const char *ylabel;        /* e.g. "accuracy", "ECE"; NULL = the figure's ylabel */
    double ymin, ymax;         /* the same rule as plot_figure.ymin/ymax */
    const plot_series *series; /* n_series series, borrowed */
    size_t n_series;
} plot_panel;

/* ---- figures --------------------------------------------------------------------------- */

/* Retention curves: the metric of one domain after each stage. x = stage index
 * 0..n_stages-1 (row 0 = base model), labelled with stage_names (n_stages strings; NULL =
 * "0", "1", ...; long names are slanted). n_panels (1..4) panels share the x axis, stacked
 * top to bottom (accuracy and ECE: two panels). One legend on the right lists every distinct
 * (name, colour, dashed) series; a band note is added when any series has a band.
 * Series with x == NULL must have n <= n_stages. fig->ylabel is the fallback panel label,
 * fig->ymin/ymax are not used (each panel has its own). Default size 720 x 520 points.
 * Errors: PLOT_ERR_ARG (NULL fig/path/panels, n_stages == 0, bad series), PLOT_ERR_IO,
 * PLOT_ERR_NOMEM, PLOT_ERR_CAIRO. */
plot_status plot_retention_curves(const plot_figure *fig, const char *const *stage_names,
                                  size_t n_stages, const plot_panel *panels, size_t n_panels);

/* One column of a retention grid: one domain's stages, and one panel per grid row. */
typedef struct plot_grid_column {
    const char *title;              /* drawn above the column (e.g. the domain); NULL = none */
    const char *const *stage_names; /* n_stages x tick labels; NULL = "0", "1", ... */
    size_t n_stages;                /* 1..32; series with x == NULL need n <= n_stages */
    const plot_panel *panels;       /* n_rows panels, top to bottom (borrowed) */
} plot_grid_column;

/* A compact grid of retention panels: n_rows rows (e.g. metrics) by n_cols columns (e.g.
 * domains), each column with its own categorical x axis (its stages), each row one y axis:
 * the range of column 0's panel when its ymin < ymax, else the data of the whole row, and its
 * label (column 0's ylabel, else fig->ylabel) on the left. Tick labels are drawn on the left
 * column and the bottom row only; one legend on the right lists every distinct (name, colour,
 * dashed) series of all panels, with the band note when any has a band. fig->xlabel goes
 * under the whole grid. Default size (150 + 170 * n_cols + 150) x (80 + 140 * n_rows) points.
 * Errors: PLOT_ERR_ARG (NULL fig/path/cols/panels, n_cols not in 1..8, n_rows not in 1..4, a
 * column with n_stages not in 1..32, bad series, too small), PLOT_ERR_IO, PLOT_ERR_NOMEM,
 * PLOT_ERR_CAIRO. */
plot_status plot_retention_grid(const plot_figure *fig, const plot_grid_column *cols, size_t n_cols,
                                size_t n_rows);

/* Reliability diagram of one (stage, domain): for each of the METRICS_NBINS equal-width bins
 * a bar of its accuracy over [edge_b, edge_b+1), the gap to its mean confidence shaded, the
 * diagonal of perfect calibration, and below a histogram of the bin counts. Empty bins (count
 * 0 or NaN accuracy) have no bar. The subtitle gives ECE (the argument; NaN = computed from
 * the bins) and n (the sum of the counts). bins are as filled by metrics_bins_equal_width or
 * metrics_run.bins (lo/hi are not read: bin b spans [b/10, (b+1)/10]).
 * Default size 520 x 600 points.
 * Errors: PLOT_ERR_ARG (NULL fig/path/bins), PLOT_ERR_IO, PLOT_ERR_NOMEM, PLOT_ERR_CAIRO. */
plot_status plot_reliability_diagram(const plot_figure *fig, const metrics_bin bins[METRICS_NBINS],
                                     double ece);

/* A stages x domains matrix for plot_heatmap, e.g. a CL matrix R of metrics.h. */
typedef struct plot_matrix {
    const double *values;          /* rows x cols, row-major: values[r * cols + c]; NaN =
                                      missing (a grey cell marked "n/a") */
    size_t rows, cols;             /* e.g. T + 1 stages x T domains */
    const char *const *row_labels; /* rows strings (stages), NULL = "0", "1", ... */
    const char *const *col_labels; /* cols strings (domains), NULL = "1", "2", ... */
    const char *value_label;       /* colour-bar label, e.g. "accuracy", "ECE" */
    int lower_is_better;           /* nonzero (ECE, Brier): the colour scale is reversed so
                                      that better cells are brighter in both kinds */
    int decimals;                  /* digits after the point in the cells; 0 = 3 */
} plot_matrix;

/* Heatmap: one coloured cell per value (viridis), the value printed in the cell (smaller
 * digits, or none, when cells are too small), row labels on the left, column labels below,
 * a colour bar on the right. fig->xlabel / ylabel label the columns / rows (e.g. "domain",
 * "after stage"); fig->ymin/ymax fix the colour range (default: the finite min..max).
 * Default size 720 x 450 points.
 * Errors: PLOT_ERR_ARG (NULL fig/path/m/values, rows or cols 0), PLOT_ERR_IO,
 * PLOT_ERR_NOMEM, PLOT_ERR_CAIRO. */
plot_status plot_heatmap(const plot_figure *fig, const plot_matrix *m);

/* Line plot of a metric against OOD severity (or any numeric x): one series per method with
 * its mean ± spread band; numeric x ticks; legend on the right. Every series with n > 0 needs
 * x. Default size 720 x 450 points.
 * Errors: PLOT_ERR_ARG (NULL fig/path, n_series > 0 with NULL series, a series without x or
 * y), PLOT_ERR_IO, PLOT_ERR_NOMEM, PLOT_ERR_CAIRO. */
plot_status plot_severity_curves(const plot_figure *fig, const plot_series *series,
                                 size_t n_series);

#ifdef __cplusplus
}
#endif

#endif
