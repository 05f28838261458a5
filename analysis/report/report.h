/* report: the analysis behind `caopd analyze`: loads the results files of one or more runs
 * (HDF5 only, never live training state), recomputes every metric from the stored per-sample
 * arrays and checks it against the stored attributes, derives the CL and calibration-retention
 * metrics and OOD gaps, and writes tables, CSVs, a JSON summary, figures and report.md.
 * Outputs and conventions: docs/analysis.md. Layout read: docs/results.md. */
#ifndef CAOPD_REPORT_H
#define CAOPD_REPORT_H

#include <stddef.h>

#include "analysis/metrics/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Status: functions returning int return REPORT_OK (0) or a negative report_status; the
 *   message (naming the file and what to do) is kept on the set: report_errmsg(). A failed call
 *   leaves the set as it was. Nothing prints or exits.
 * - Threads: a set is used from one thread at a time; HDF5 reads go through ckpt_ (one
 *   process-wide lock), so do not load while a ckpt_io queue has jobs in flight.
 * - Indices: stage i = 0 (base) .. T (the run's n_stages); domains and splits are named as in
 *   the results file ("add", "test", "ood_length_1"). */

typedef enum report_status {
    REPORT_OK = 0,
    REPORT_ERR_ARG = -1,      /* NULL, unknown run/stage/domain/split, or not loaded */
    REPORT_ERR_NOMEM = -2,    /* an allocation failed */
    REPORT_ERR_IO = -3,       /* an output file or folder could not be written */
    REPORT_ERR_FILE = -4,     /* a results file is missing, foreign, newer, damaged or lacks
                                 a group or attribute of the layout */
    REPORT_ERR_MISMATCH = -5, /* a stored metric attribute differs from the value recomputed
                                 from the per-sample arrays */
    REPORT_ERR_PLOT = -6,     /* a figure could not be drawn */
} report_status;

/* Static name of a status ("REPORT_ERR_FILE"); "?" for unknown values. */
const char *report_status_str(int status);

/* Largest |stored - recomputed| accepted for a metric attribute (the run computes them with
 * the same metrics_run_compute, so they normally agree bit for bit); NaN matches NaN only.
 * Counts (n, n_correct, n_format_fail) must be equal. */
#define REPORT_ATTR_TOL 1e-12

/* The runs being analysed, side by side. Owned by the caller: report_set_free. */
typedef struct report_set report_set;

/* *out = an empty set. REPORT_ERR_NOMEM (then *out is NULL). */
int report_set_new(report_set **out);

/* Frees the set and everything loaded. NULL is a no-op. */
void report_set_free(report_set *s);

/* The last failed call's message ("" if none). Valid until the next call on s. */
const char *report_errmsg(const report_set *s);

/* Loads one run: path is a run directory (its results.h5 is read) or a results file. The file
 * is opened with ckpt_reader_open (format "caopd-results", versions 1..2: a foreign or newer
 * file is refused with ckpt's message, which names the path), the stages written so far are
 * read (a run still going, status "running", has fewer than T + 1), every (stage, domain,
 * split) group's per-sample arrays are reduced with metrics_run_compute, once per confidence
 * readout the file has (version 1: the greedy one only), and compared with its stored attributes
 * (REPORT_ERR_MISMATCH, the message names every differing attribute). The run's label is its
 * directory's name (made unique within the set with "-2", "-3", ...), its method the distinct
 * methods of its domain stages joined by "+", its seed the spec's. Errors: REPORT_ERR_ARG,
 * REPORT_ERR_NOMEM, REPORT_ERR_FILE, REPORT_ERR_MISMATCH. */
int report_add_run(report_set *s, const char *path);

/* Number of runs loaded. */
size_t report_n_runs(const report_set *s);

/* The run's label, method label, results-file path, status ("running" | "finished") and
 * n_stages T. Strings are owned by s; NULL / -1 for an out-of-range run. */
const char *report_run_label(const report_set *s, size_t run);
const char *report_run_method(const report_set *s, size_t run);
const char *report_run_path(const report_set *s, size_t run);
const char *report_run_status(const report_set *s, size_t run);
int report_run_n_stages(const report_set *s, size_t run);

/* The run's default output folder: "<run directory>/analysis". Owned by s; NULL if no run. */
const char *report_run_default_out(const report_set *s, size_t run);

/* *out = the recomputed metrics of (stage, domain, split) of a run under a confidence readout
 * (docs/metrics.md "Readouts"). REPORT_ERR_ARG when the run, domain, split or readout is unknown
 * or the stage is not written (yet). A results file of format_version 1 has no expected
 * readout: its metrics there are NaN except the readout-free accuracy and format_fail_rate. */
int report_get(const report_set *s, size_t run, int stage, const char *domain, const char *split,
               metrics_readout readout, metrics_run *out);

/* 1 when the run's results file has the expected readout (format_version >= 2), 0 when not
 * (version 1: greedy only), -1 for an out-of-range run. */
int report_run_has_expected(const report_set *s, size_t run);

/* The CL summaries of metric f under a readout over the (T+1) x T matrix of one split, read by
 * the metric's direction (metrics_cl_compute_field): lower-is-better metrics (ECE, MCE, Brier)
 * have their forgetting computed on -R (> 0 = calibration lost), OCG all four on |OCG| (the
 * distance from calibration, read like ECE); the others follow metrics.h verbatim. Stages not
 * written yet are NaN rows, so the summaries that read them are NaN. When the stages do not line up
 * with the domains (a domain repeated, T != number of domains) *out is all NaN and returns
 * REPORT_ERR_ARG with the reason in report_errmsg. */
int report_cl(const report_set *s, size_t run, const char *split, metrics_field f,
              metrics_readout readout, metrics_cl *out);

/* Every note of the analysis (partial runs, CL skipped and why), one per line, "" if none.
 * Owned by s, valid until the next report_add_run. */
const char *report_notes(const report_set *s);

/* The tables as text: accuracy and ECE matrices of both readouts (test split), CL metrics,
 * calibration retention of both readouts, OOD gaps, and the notes (a run without the expected
 * readout is named there). markdown: 0 = aligned plain text for a terminal, 1 =
 * Markdown tables. *out is malloc'd (caller frees). Errors: REPORT_ERR_ARG, REPORT_ERR_NOMEM. */
int report_tables(report_set *s, int markdown, char **out);

/* What report_write produces. Plain value; start from report_write_opts_default(). */
typedef struct report_write_opts {
    int figures; /* 1 (default): PNG + SVG figures; 0: tables, CSVs, JSON and report.md only */
} report_write_opts;

report_write_opts report_write_opts_default(void);

/* Writes into dir (created, with parents, when missing): metrics.csv, eval_results.csv,
 * summary.json, report.md and the figures (retention_<domain>,
 * heatmap_<run>_{accuracy,ece_greedy,ece_expected}, reliability/<run>_stage<i>_<domain>_<readout>,
 * each .png and .svg; no expected ones for a version 1 file). opts NULL = the defaults.
 * Errors: REPORT_ERR_ARG (no run loaded), REPORT_ERR_IO, REPORT_ERR_NOMEM, REPORT_ERR_PLOT;
 * files written before a failure stay. */
int report_write(report_set *s, const char *dir, const report_write_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
