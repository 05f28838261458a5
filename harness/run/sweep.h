/* sweep: the sweep spec of `caopd sweep` (JSON, format "caopd-sweep", version 1): a base
 * experiment plus axes expanded into cells (cartesian product, last axis fastest), each cell an
 * ordinary caopd-experiment JSON built by editing the experiment's cJSON tree and validated
 * with spec_parse; stable, file-safe cell names; the state of a cell's directory; and the
 * summary file of a sweep (caopd-sweep-summary) gathered from the cells' results files.
 * Keys, naming rules and the summary layout: docs/sweep.md. */
#ifndef CAOPD_SWEEP_H
#define CAOPD_SWEEP_H

#include <stddef.h>

#include "checkpoints/ckpt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Status: functions returning int return 0 or -1; the message (naming the file and the JSON
 *   path, and what to do) goes into the caller's err buffer (errlen bytes). Nothing prints or
 *   exits.
 * - Ownership: a sweep owns every string its accessors return (valid until sweep_free);
 *   functions that return malloc'd memory say so.
 * - Threads: a sweep is read-only after sweep_load*, so several threads may call its name and
 *   value accessors at once; sweep_cell_json parses with cJSON, whose parser records errors in
 *   a global, so call it from one thread at a time. sweep_cell_state and sweep_merge read
 *   HDF5 through ckpt_ and must run on the one thread that does the process's HDF5 work. */

#define SWEEP_FORMAT "caopd-sweep"
#define SWEEP_VERSION 1
#define SWEEP_MAX_CELLS 10000
#define SWEEP_MAX_AXES 16
#define SWEEP_ERR_CAP 2048

/* Files and folders of a sweep directory (OUT). */
#define SWEEP_FILE "sweep.json" /* the sweep spec, verbatim */
/* the base experiment file, verbatim (only when the spec names it by path) */
#define SWEEP_EXPERIMENT_FILE "experiment.json"
#define SWEEP_CELLS_DIR "cells"         /* OUT/cells/<cell name>/: one run directory each */
#define SWEEP_CELL_LOG "run.log"        /* stdout + stderr of the cell's `caopd run` */
#define SWEEP_CELL_LOCK "cell.lock"     /* flock(2)ed while a process runs the cell */
#define SWEEP_SUMMARY_FILE "summary.h5" /* caopd-sweep-summary (sweep_merge) */
/* OUT/bases/<base name>/: one run directory per shared base ("share_base"), with run.log and
 * cell.lock like a cell */
#define SWEEP_BASES_DIR "bases"
/* OUT/shared/<name>/: one run directory per shared training ("share_training"), read by every cell
 * of its group */
#define SWEEP_SHARED_DIR "shared"

/* The summary file's format name and version (root attributes format / format_version). */
#define SWEEP_SUMMARY_FORMAT CKPT_FORMAT_SWEEP_SUMMARY
#define SWEEP_SUMMARY_VERSION 2 /* 1: before the expected readout (still read) */

/* A parsed sweep with its cells expanded and validated. Opaque; sweep_free. */
typedef struct sweep sweep;

/* Parses sweep text json (NUL-terminated, borrowed). The base experiment is the object under
 * "experiment", or, when "experiment" is a path string, experiment_text when it is not NULL
 * (the copy kept in a sweep directory), else the file at that path, relative to base_dir
 * (NULL or "" = the current directory). Every axis value and every cell is validated (a cell
 * with spec_parse); the first error stops the parse with a message that names the JSON path
 * and the accepted values, e.g. "axes.method[1]: unknown method 'cao'; accepted: caopd, sdft,
 * sft" or "cell 3 (003_method-sft_seed-2): stages[0].lr: 2 is out of range (0, 1]".
 * On success *out is owned by the caller. */
int sweep_parse(const char *json, const char *base_dir, const char *experiment_text, sweep **out,
                char *err, size_t errlen);

/* Reads the sweep file at path and parses it (the experiment path is relative to path's
 * folder). Messages start with path. */
int sweep_load(const char *path, sweep **out, char *err, size_t errlen);

/* Loads the sweep of a sweep directory: dir/sweep.json, with the experiment from
 * dir/experiment.json when the spec names it by path. Messages start with the file. */
int sweep_load_dir(const char *dir, sweep **out, char *err, size_t errlen);

/* Frees. NULL is a no-op. */
void sweep_free(sweep *s);

/* The sweep file's text and the base experiment file's text, verbatim (the latter NULL when
 * the experiment is inline). What `caopd sweep` copies into OUT and compares on re-runs. */
const char *sweep_text(const sweep *s);
const char *sweep_experiment_text(const sweep *s);

/* "name" (default "sweep") and "output" (default "runs/<name>"). */
const char *sweep_name(const sweep *s);
const char *sweep_output(const sweep *s);

/* Axes in expansion order (the order of the keys of "axes", the entries of "params" at the
 * place of "params"; the last axis varies fastest). Names: "method", "seed", "order",
 * "ood_severity", or a params path such as "defaults.lr". NULL for an out-of-range index. */
int sweep_n_axes(const sweep *s);
const char *sweep_axis_name(const sweep *s, int axis);

/* Cells 0..n-1. The name ("003_method-caopd_seed-2_sev-1": the zero-padded index, then
 * "<label>-<value>" per axis; only letters, digits, '.', '_', '+', '-'); the value of an axis
 * as text ("caopd", "2", "add+rev", "0.0001", compact JSON for objects). NULL when out of
 * range. */
int sweep_n_cells(const sweep *s);
const char *sweep_cell_name(const sweep *s, int cell);
const char *sweep_cell_value(const sweep *s, int cell, int axis);

/* The cell's experiment JSON (malloc'd into *out, caller frees): the base experiment with the
 * cell's axis values applied, its "output" key removed (a cell runs in OUT/cells/<name>), and,
 * when threads > 0, "threads" set to threads (threads <= 0 keeps the experiment's). A cell with
 * a shared base (sweep_cell_base >= 0) has "base" replaced by {"checkpoint":
 * "<sweep_dir>/bases/<base name>/checkpoint.h5"}, so it needs sweep_set_dir first. Always the
 * same text for the same arguments. Returns 0, or -1 when out of memory, cell is out of range,
 * or the cell's shared base needs a directory that is not set. */
int sweep_cell_json(const sweep *s, int cell, int threads, char **out);

/* Shared bases ("share_base": true, docs/sweep.md). Cells whose base stage is the same (the
 * same base-only experiment: seed, threads, model, base, snapshots, log) and can load it
 * instead of training it (base trained, no base.checkpoint, first stage with sync_teacher and
 * reset_optimizer true) share one base when two or more cells do; each base is trained once, as
 * the base-only run (spec "stages": []) of sweep_base_json in OUT/bases/<name>.
 * sweep_share_base: the spec's flag. Bases 0..n-1 in the order of their first cells; names like
 * "000_seed-1" (the index of the first cell, then label-value of every axis its cells share);
 * NULL when out of range. sweep_cell_base: the cell's base, -1 when it trains its own (always
 * without share_base). */
int sweep_share_base(const sweep *s);
int sweep_n_bases(const sweep *s);
const char *sweep_base_name(const sweep *s, int base);
int sweep_cell_base(const sweep *s, int cell);

/* The base's base-only experiment (malloc'd into *out, caller frees), "threads" set as in
 * sweep_cell_json. Returns 0, or -1 when out of memory or base is out of range. */
int sweep_base_json(const sweep *s, int base, int threads, char **out);

/* Shared training ("share_training", default true; docs/sweep.md). Cells whose experiments
 * differ only in eval.ood_severities train the same model: two or more such cells share one run,
 * the cell's experiment with eval.ood_severities set to the union of the group's severities, in
 * OUT/shared/<name>; no process runs for the cells themselves, each reads its own splits from that
 * run. Runs 0..n-1 in the order of their first cells, named like the bases ("000_method-caopd_
 * seed-1"); NULL when out of range. sweep_cell_shared: the cell's run, -1 when it runs its own
 * (always with "share_training": false). sweep_shared_base: the shared base its cells load, -1
 * when they train their own. */
int sweep_share_training(const sweep *s);
int sweep_n_shared(const sweep *s);
const char *sweep_shared_name(const sweep *s, int r);
int sweep_shared_base(const sweep *s, int r);
int sweep_cell_shared(const sweep *s, int cell);

/* The shared run's experiment (malloc'd into *out, caller frees), "threads" and a shared base's
 * "base" set as in sweep_cell_json. Returns 0, or -1 when out of memory, r is out of range, or the
 * base needs a directory that is not set. */
int sweep_shared_json(const sweep *s, int r, int threads, char **out);

/* The run directory whose results hold the cell's evaluations, for the sweep directory out:
 * "out/cells/<name>", or "out/shared/<name>" for a cell with a shared run. 0, or -1 when the cell
 * is out of range or the path does not fit len bytes. */
int sweep_cell_run_dir(const sweep *s, const char *out, int cell, char *buf, size_t len);

/* Sets the sweep directory that the cells' base.checkpoint paths name: dir made absolute against
 * the current directory when relative (symbolic links are not resolved), trailing '/' dropped.
 * Not thread-safe: call before handing s to other threads. Returns 0, or -1 when the path is too
 * long for a spec's base.checkpoint (message in err). */
int sweep_set_dir(sweep *s, const char *dir, char *err, size_t errlen);

/* The directory set by sweep_set_dir, or NULL. */
const char *sweep_dir(const sweep *s);

/* What a cell directory holds. */
typedef enum sweep_cell_status {
    SWEEP_CELL_ABSENT = 0,   /* no run yet (no spec.json) */
    SWEEP_CELL_PARTIAL = 1,  /* a run that has not finished (resumable) */
    SWEEP_CELL_FINISHED = 2, /* results.h5 with status "finished" */
} sweep_cell_status;

/* Reads the state of the run directory dir (HDF5 thread only). *stages_done (may be NULL) =
 * stage groups written so far, *stages_total (may be NULL) = n_stages + 1 when known (0
 * otherwise). A results file that cannot be read is an error (-1, message names it). */
int sweep_cell_state(const char *dir, sweep_cell_status *status, int *stages_done,
                     int *stages_total, char *err, size_t errlen);

/* What sweep_merge did. */
typedef struct sweep_merge_info {
    int n_cells;   /* cells of the sweeps */
    int n_merged;  /* finished cells written into the summary */
    char *skipped; /* malloc'd (caller frees; NULL when none): one line per cell left out,
                      "<dir>/cells/<name>: <why>" (not started, unfinished: k of T stages) */
} sweep_merge_info;

/* Gathers the finished cells of the sweep directories dirs[0..n_dirs) (each holding
 * sweep.json; a cell with a shared run is read from it: sweep_cell_run_dir) into the summary file
 * path (caopd-sweep-summary, written atomically; layout in docs/sweep.md): per cell its sweep,
 * index, name, axis values, spec, method and seed, and per (split, metric) the (n_stages + 1) x
 * domains matrix of every scalar metric, of both confidence readouts (metrics_field_key names; NaN
 * for the expected one of a format_version 1 cell), read from its results.h5 (run_read_matrix).
 * Cells not finished are left out and listed in info->skipped. Runs on the HDF5 thread (no ckpt_io
 * queue may be busy). Returns 0 (also when no cell is finished: the summary then has no cells), or
 * -1 with a message naming the file. */
int sweep_merge(const char *const *dirs, int n_dirs, const char *path, sweep_merge_info *info,
                char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
