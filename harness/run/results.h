/* results: the layout of a run's results file ("caopd-results", format_version 2) on top of
 * ckpt_: the spec and versions at the root, per stage the training curves and, per (domain,
 * split), the per-sample arrays (both confidence readouts) with the scalar metrics of each
 * readout as attributes; the stage x domain matrices at the end. Builds ckpt_snapshots (no
 * HDF5 call) and reads finished files, version 1 (greedy readout only) included.
 * Exact layout: docs/results.md. */
#ifndef CAOPD_RESULTS_H
#define CAOPD_RESULTS_H

#include <stddef.h>

#include "checkpoints/ckpt.h"
#include "harness/trainer/evaluate.h"
#include "analysis/metrics/metrics.h"
#include "harness/run/spec.h"
#include "harness/trainer/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: before the per-sample texts; 1: before the expected readout (both still read) */
#define RESULTS_FORMAT_VERSION 3

/* A new results file at path (CKPT_MODE_CREATE): root attributes spec (the JSON text,
 * verbatim), versions, status "running", n_stages, domains (comma-separated evaluation
 * domains), splits (comma-separated split names). Returns 0 or -1 (message in err). */
int results_new_file(ckpt_snapshot **out, const char *path, const spec *sp, const char *spec_json,
                     const ckpt_write_opts *opts, char *err, size_t errlen);

/* An append snapshot of path (CKPT_MODE_APPEND) to which a stage is added. */
int results_append(ckpt_snapshot **out, const char *path, const ckpt_write_opts *opts, char *err,
                   size_t errlen);

/* Adds the curves of rows[0..n) under <group>/curves (deterministic values, one element per
 * step) and <group>/timing (wall-clock seconds, which differ from run to run). CKPT_OK, or a
 * negative ckpt_status: CKPT_ERR_NOMEM (no message), else the message in ckpt_snapshot_errmsg. */
int results_add_curves(ckpt_snapshot *s, const char *group, const train_log *rows, int n);

/* Reads what results_add_curves wrote (n rows expected) into rows. */
int results_read_curves(ckpt_reader *r, const char *group, train_log *rows, int n, char *err,
                        size_t errlen);

/* Adds stages/<stage>/domains/<domain>/<split>: the arrays confidence_greedy,
 * confidence_expected, confidence_format_mass (f64), correct (u8), format_fail (u8),
 * answer_entropy (f64), conf_entropy (f64), n_tokens (i64) of es[0..n), and the strings
 * completion (es), question and reference (ex[0..n), the examples asked; left out when ex is
 * NULL); every metric of
 * metrics_run_compute for each readout as an attribute named metrics_field_key (ece_greedy,
 * ece_expected, accuracy, ...), mean_format_mass, n, n_correct, n_format_fail, split,
 * severity. mr (may be NULL) receives the metrics, one metrics_run per readout. */
int results_add_eval(ckpt_snapshot *s, int stage, task_domain d, spec_split split,
                     const eval_sample *es, const task_example *ex, int n,
                     metrics_run mr[METRICS_READOUT_COUNT]);

/* The attribute of a (stage, domain, split) group that holds field f of readout r in a
 * results file of format_version `version`: metrics_field_key for version >= 2; for version 1
 * the field's plain name under the greedy readout ("ece") and NULL under the expected one
 * (version 1 files have no expected readout). buf: cap bytes (32 suffice). */
const char *results_metric_attr(int version, metrics_field f, metrics_readout r, char *buf,
                                size_t cap);

/* R[i * n_dom + j] = field f of readout r in stages/<i>/domains/<dom[j]>/<split> for i in
 * 0..n_rows; all NaN for the expected readout of a version 1 file. Returns 0 or -1 (err names
 * the missing object). */
int results_read_matrix(ckpt_reader *r, int n_rows, const task_domain *dom, int n_dom,
                        const char *split, metrics_field field, metrics_readout readout, double *R,
                        char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
