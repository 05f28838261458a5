/* retention: the analysis of a sweep's stage sequence (`caopd analyze SWEEP_DIR|SUMMARY.h5`,
 * beside severity.h, whose loaded summary it reads). Per series, from every cell's test-split
 * matrices: retention curves of each trained domain (accuracy, ECE, OCG, ... after each stage
 * from its training on), the stage x domain matrices and CL summaries (ACC, BWT, FWT,
 * forgetting) of accuracy and of ECE, Brier, OCG and SPR of both readouts, and from the cells'
 * results files a reliability diagram after the last stage pooled over the trained domains and
 * seeds; all as mean and min-max over seeds. Writes retention.csv, cl.csv, reliability.csv, the
 * figures and the sweep's report.md. Conventions: docs/sweep.md ("Analysis"). */
#ifndef CAOPD_RETENTION_H
#define CAOPD_RETENTION_H

#include <stddef.h>

#include "analysis/metrics/metrics.h"
#include "analysis/report/severity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Status: functions returning int return RETENTION_OK (0) or a negative retention_status; the
 *   message (naming the file and what to do) goes into the caller's err buffer. Nothing prints
 *   or exits. What the analysis left out (a missing results file, a cell whose stages differ
 *   from its series') is not an error: it is named in retention_notes.
 * - Ownership: an analysis borrows the severity_table it was built from, which must outlive
 *   it; everything else it owns. retention_free releases it.
 * - Indices: series s as in severity.h (0 .. severity_n_series - 1); metric m an index into
 *   severity_metric_names; stage i = 0 (base) .. T of the series.
 * - Over seeds: the cells of one (series, seed), which differ only in ood_severity and so
 *   train the same model, are averaged first (NaN skipped); then mean, min, max and sample
 *   sd over the seeds that have a value.
 * - Threads: building reads results files through report.h (ckpt_, one process-wide lock):
 *   do not build while a ckpt_io queue has jobs in flight. A built analysis is read-only. */

typedef enum retention_status {
    RETENTION_OK = 0,
    RETENTION_ERR_ARG = -1,   /* NULL argument; no such series, domain, metric or stage */
    RETENTION_ERR_NOMEM = -2, /* an allocation failed */
    RETENTION_ERR_IO = -3,    /* an output file or folder could not be written */
    RETENTION_ERR_PLOT = -5,  /* a figure could not be drawn */
} retention_status;

/* A value over the seeds. */
typedef struct retention_point {
    int n_seeds; /* seeds with a value (NaN skipped) */
    double mean, min, max;
    double sd; /* sample standard deviation (n - 1); NaN for one seed; all NaN for none */
} retention_point;

/* The CL summaries of one metric over the seeds: each seed's metrics_cl_compute_field of its
 * (T+1) x T matrix (lower-is-better: forgetting on -R; OCG: all four on |OCG|). */
typedef struct retention_cl {
    retention_point acc, bwt, fwt, forgetting;
} retention_cl;

typedef struct retention_analysis retention_analysis;

/* Builds the analysis of t (loaded with severity_load from summary_path). A cell takes part
 * when its summary group names its stages and has a test split; a series' stages and domains
 * are those of its first such cell, and cells that differ are left out (a note). When
 * read_results is nonzero, the results file of one cell per (series, seed) is read with
 * report.h (its `results` attribute; when that file is missing, summary_path's folder
 * /cells/<name>/results.h5; when neither is there, or it cannot be read, the next cell of the
 * same seed, and a note naming the file) for the pooled reliability diagrams.
 * Errors: RETENTION_ERR_ARG, RETENTION_ERR_NOMEM. */
int retention_build(const severity_table *t, const char *summary_path, int read_results,
                    retention_analysis **out, char *err, size_t errlen);

/* Frees. NULL is a no-op. */
void retention_free(retention_analysis *a);

/* What was left out and why, one line each ("" when nothing). Owned by a. */
const char *retention_notes(const retention_analysis *a);

/* The stage at which series s first trains domain (1..T); -1 when it does not train it (or the
 * series has no usable cell). */
int retention_trained_stage(const retention_analysis *a, int s, const char *domain);

/* The number of stages T of series s; -1 when it has no usable cell. */
int retention_n_stages(const retention_analysis *a, int s);

/* *out = metric m of domain after stage i of series s, over the seeds; defined for i from the
 * domain's training stage to T (a retention curve's points). RETENTION_ERR_ARG otherwise. */
int retention_curve(const retention_analysis *a, int s, const char *domain, int m, int stage,
                    retention_point *out);

/* *out = the mean over seeds of metric m on domain after stage i of series s (any stage 0..T:
 * the tables' matrices); NaN when no seed has it. RETENTION_ERR_ARG for no such entry. */
int retention_matrix(const retention_analysis *a, int s, const char *domain, int m, int stage,
                     double *out);

/* *out = the CL summaries of metric m of series s. RETENTION_ERR_ARG (and *out all NaN) when
 * the series' stages do not line up with its domains (stage j must train domain j, docs/
 * analysis.md "How the CL metrics are derived"; a note says so). */
int retention_cl_get(const retention_analysis *a, int s, int m, retention_cl *out);

/* The reliability bins of series s after its last stage on the test split under readout q,
 * pooled over its trained domains and seeds (one results file per seed): per equal-width bin
 * the summed count and the count-weighted mean confidence and accuracy (NaN when empty), as
 * metrics_bin (lo, hi the nominal edges); *ece = the ECE of the pooled bins (NaN when empty);
 * *n_seeds = seeds read. Any output pointer may be NULL. RETENTION_ERR_ARG for no series. */
int retention_reliability(const retention_analysis *a, int s, metrics_readout q,
                          metrics_bin bins[METRICS_NBINS], double *ece, int *n_seeds);

/* The five summary lines of report.md (docs/sweep.md "Analysis"), numbered, each ending in a
 * newline; markdown: 0 plain text, 1 with Markdown emphasis. *out is malloc'd (caller frees).
 * Errors: RETENTION_ERR_ARG, RETENTION_ERR_NOMEM. */
int retention_summary(const retention_analysis *a, int markdown, char **out);

/* Writes into dir (created with its parents): retention.csv, cl.csv, reliability.csv and
 * report.md; when figures is nonzero also retention_<domain>_<metric>.png/.svg (accuracy,
 * ece_greedy, ece_expected, ocg_greedy, ocg_expected), retention.png (the compact grid) and
 * reliability_<series>_<readout>.png/.svg. report.md links severity.md and the
 * severity_<kind>_* figures, which severity_write writes. Errors: RETENTION_ERR_ARG,
 * RETENTION_ERR_IO, RETENTION_ERR_NOMEM, RETENTION_ERR_PLOT (plot's message); files written
 * before stay. */
int retention_write(const retention_analysis *a, const char *dir, int figures, char *err,
                    size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
