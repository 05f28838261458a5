/* severity: the OOD-severity analysis of a sweep (`caopd analyze SWEEP_DIR|SUMMARY.h5`). Reads
 * a caopd-sweep-summary file (HDF5 only), takes every cell's model after its last stage and,
 * per series (a method with the values of every other axis but seed and ood_severity), OOD
 * kind and severity (0 = the in-distribution test split), the mean and spread over seeds of
 * accuracy and of ECE, OCG, Brier, SPR and AUROC under both confidence readouts (greedy and
 * expected, docs/metrics.md); writes them as a table, severity.csv, severity.md and
 * plot_severity_curves figures. Keeps every cell's test-split matrices for the analysis along
 * the stages (retention.h). Conventions: docs/sweep.md ("Analysis"). */
#ifndef CAOPD_SEVERITY_H
#define CAOPD_SEVERITY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Status: functions returning int return SEVERITY_OK (0) or a negative severity_status; the
 *   message (naming the file and what to do) goes into the caller's err buffer. Nothing prints
 *   or exits.
 * - Ownership: a table owns every string its rows point to; severity_free releases it all.
 * - Threads: loading reads HDF5 through ckpt_ (one process-wide lock): do not load while a
 *   ckpt_io queue has jobs in flight. A loaded table is read-only. */

typedef enum severity_status {
    SEVERITY_OK = 0,
    SEVERITY_ERR_ARG = -1,   /* NULL argument, no output folder */
    SEVERITY_ERR_NOMEM = -2, /* an allocation failed */
    SEVERITY_ERR_IO = -3,    /* an output file or folder could not be written */
    SEVERITY_ERR_FILE = -4,  /* the summary is missing, foreign, newer, damaged, or has no cell */
    SEVERITY_ERR_PLOT = -5,  /* a figure could not be drawn */
} severity_status;

/* The metrics of the analysis, in this order (metrics_field_key names): accuracy, then ece, ocg,
 * brier, spr, auroc each as <name>_greedy and <name>_expected, then format_fail_rate. */
#define SEVERITY_N_METRICS 12
extern const char *const severity_metric_names[SEVERITY_N_METRICS];

/* One row: a (series, kind, severity, domain) over the seeds. Strings are owned by the table. */
typedef struct severity_row {
    const char *series; /* "caopd", or "caopd defaults.lr=0.001" when other axes vary */
    const char *method; /* the cell's stage methods joined by '+' */
    const char *kind;   /* OOD kind ("ood_length"); severity 0 rows repeat the test split
                           under every kind; "test" when the sweep evaluates no OOD split */
    int severity;       /* 0 (test split) .. 3 */
    const char *domain; /* "mean" (over the evaluation domains) or a domain name */
    int n_seeds;        /* distinct seeds with a value (cells of one seed are averaged first) */
    double mean[SEVERITY_N_METRICS]; /* over the seeds */
    double sd[SEVERITY_N_METRICS];   /* sample standard deviation (n - 1); NaN for one seed */
    double min[SEVERITY_N_METRICS], max[SEVERITY_N_METRICS];
} severity_row;

/* The rows of one summary file. Opaque; severity_free. */
typedef struct severity_table severity_table;

/* Loads the summary file at path (format "caopd-sweep-summary", versions 1..2) into *out. A
 * version 1 summary, or a cell merged from a results file of format_version 1, has no expected
 * readout: its expected metrics are NaN (n/a) and the tables say so. Errors:
 * SEVERITY_ERR_FILE (missing, foreign, newer, damaged: ckpt's message with the path, or a
 * summary without any cell: "merge finished cells first"), SEVERITY_ERR_NOMEM. */
int severity_load(const char *path, severity_table **out, char *err, size_t errlen);

/* Frees. NULL is a no-op. */
void severity_free(severity_table *t);

/* Cells read and the number of distinct series. */
int severity_n_cells(const severity_table *t);
int severity_n_series(const severity_table *t);

/* The name of series s (0 .. severity_n_series - 1), e.g. "caopd defaults.lr=0.001", and its
 * method ("caopd"); NULL when out of range. Owned by the table. */
const char *severity_series_name(const severity_table *t, int s);

/* The OOD kinds of the table's curves ("ood_length", ...; "test" when the sweep evaluates no OOD
 * split), k = 0 .. severity_n_kinds - 1: the <kind> of the severity_<kind>_<metric> figures. */
int severity_n_kinds(const severity_table *t);
const char *severity_kind(const severity_table *t, int k);

/* One cell of the summary with its whole test-split matrices, for the analysis of the stage
 * sequence (retention.h). Everything is owned by the table. */
typedef struct severity_cell {
    const char *name;    /* the cell's name ("003_method-caopd_seed-2_sev-1"), or its group */
    const char *results; /* the results file caopd merge read ("" when the summary lacks it) */
    int series;          /* its series, 0 .. severity_n_series - 1 */
    long long seed;
    int n_stages; /* T: the matrices have T + 1 rows; -1 when the cell has no test split */
    const char *const *stage_names; /* T + 1 names ("base", then each stage's domain); NULL when
                                       the summary does not give them */
    int n_domains;
    const char *const *domains;             /* n_domains: the matrices' columns */
    const double *test[SEVERITY_N_METRICS]; /* (T + 1) x n_domains row-major: row i = the model
                                               after stage i (0 = base), of the metric
                                               severity_metric_names[m] on the test split; NaN
                                               where undefined (a cell without the expected
                                               readout: every expected matrix); NULL when
                                               n_stages is -1 */
} severity_cell;

/* Cell i (0 .. severity_n_cells - 1, summary order); NULL when out of range. */
const severity_cell *severity_get_cell(const severity_table *t, int i);

/* The domain-mean rows as a table: "mean [min, max]" of each metric, then a note when some
 * cells have no expected readout. markdown: 0 plain text, 1 Markdown. *out is malloc'd (caller
 * frees). Errors: SEVERITY_ERR_ARG, SEVERITY_ERR_NOMEM. */
int severity_tables(const severity_table *t, int markdown, char **out);

/* Writes into dir (created with its parents): severity.csv (every row), severity.md (the
 * tables and the figures' links) and, when figures is nonzero, severity_<kind>_<metric>.png
 * and .svg for accuracy, ece_greedy, ece_expected, ocg_greedy and ocg_expected. Errors:
 * SEVERITY_ERR_ARG, SEVERITY_ERR_IO, SEVERITY_ERR_NOMEM, SEVERITY_ERR_PLOT (plot's message); files
 * written before stay. */
int severity_write(const severity_table *t, const char *dir, int figures, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
