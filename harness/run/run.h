/* run: the task-sequence scheduler of `caopd run`: the base stage then each domain stage of a
 * spec, evaluation of every domain on every split after each stage, the results file, the
 * JSON-lines log, checkpoints on one I/O thread, and exact resume from the last checkpoint.
 * Run directory and file layouts: docs/results.md. */
#ifndef CAOPD_RUN_H
#define CAOPD_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/metrics/metrics.h"
#include "harness/run/spec.h"
#include "harness/trainer/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Files of a run directory. */
#define RUN_SPEC_FILE "spec.json"           /* the spec text, verbatim */
#define RUN_RESULTS_FILE "results.h5"       /* caopd-results */
#define RUN_CHECKPOINT_FILE "checkpoint.h5" /* caopd-checkpoint: the last one */
#define RUN_LOG_FILE "log.jsonl"            /* one JSON object per line */
/* flock(2)ed by the caopd run writing the directory, for as long as it lives (docs/results.md) */
#define RUN_LOCK_FILE "run.lock"

typedef enum run_event_kind {
    RUN_EVENT_START = 0,  /* the run begins (resumed says whether from a checkpoint) */
    RUN_EVENT_STAGE,      /* a stage begins (or continues, after a resume) */
    RUN_EVENT_STEP,       /* one optimizer step is done */
    RUN_EVENT_EVAL,       /* one (domain, split) is evaluated */
    RUN_EVENT_CHECKPOINT, /* a checkpoint was handed to the I/O thread */
    RUN_EVENT_DONE,       /* every stage is done and the results file is finished */
} run_event_kind;

/* What the scheduler reports. Pointers are borrowed for the callback only. */
typedef struct run_event {
    run_event_kind kind;
    int stage; /* 0 = base, 1..n_stages = domain stages */
    int n_stages;
    const char *stage_name;     /* "base" or the domain */
    const char *method;         /* "sft" for the base stage */
    int step, steps;            /* steps done in the stage (after this step), the stage's length */
    const train_log *log;       /* STEP */
    double eta_s;               /* STEP: estimated training seconds left, all stages */
    const char *domain, *split; /* EVAL */
    const metrics_run *metrics; /* EVAL: METRICS_READOUT_COUNT runs, indexed by metrics_readout */
    int resumed;                /* START */
} run_event;

typedef void (*run_event_fn)(void *arg, const run_event *ev);

typedef struct run_opts {
    int force;             /* run_start: replace a run already in the directory */
    run_event_fn on_event; /* may be NULL; called on the calling thread */
    void *arg;
    tw_dist *dist; /* data parallel (docs/distributed.md): the group of processes that run
                      this call together (borrowed); NULL: one process */
} run_opts;

/* Wall-clock accounting of one process's part of a run (seconds). */
typedef struct run_summary {
    int already_finished; /* run_resume found a finished run and did nothing */
    int resumed;          /* continued from a checkpoint */
    double wall_s;        /* the whole call */
    double train_s;       /* training steps */
    double eval_s;        /* evaluation */
    double snapshot_s;    /* time the training thread spent on snapshots (copying tensors,
                             building, waiting for a free queue slot), not the I/O thread's */
    int n_checkpoints;    /* checkpoints handed to the I/O thread */
} run_summary;

/* Data parallel: 0 when every batch of spec divides among `world` processes, else -1 with a
 * message naming the spec key. run_start/run_resume check it too; call it before joining a
 * group to fail without waiting for the other processes. */
int run_check_world(const spec *sp, int world, char *err, size_t errlen);

/* With a data-parallel group (o.dist), every rank calls run_start (each with the same spec) or
 * run_resume (the other ranks' dir is not read: rank 0 sends the spec and, when resuming, the
 * state it loaded, so no shared file system is needed). Rank 0 alone writes the run directory
 * and evaluates; the others wait for it (the group's timeout must cover an evaluation). A
 * failure on one rank stops them all, each returning -1 with a message.
 *
 * Starts the run of spec text spec_json in dir (created when missing). A directory that
 * already holds a run (spec.json, results.h5 or checkpoint.h5) is refused unless o.force,
 * which deletes those files first. Returns 0, or -1 with a message in err; after a failure
 * the last complete checkpoint stays in dir, so `run_resume` can continue. */
int run_start(const char *spec_json, const char *dir, run_opts o, run_summary *sum, char *err,
              size_t errlen);

/* Continues the run in dir from its last checkpoint (or from the start when none was
 * written); the result is identical, array for array, to an uninterrupted run. A finished
 * run is left untouched (sum->already_finished = 1, returns 0). */
int run_resume(const char *dir, run_opts o, run_summary *sum, char *err, size_t errlen);

/* The stage x domain matrix of one metric (field f of readout r) on one split of the run in
 * dir, from its results file: *R (malloc'd, caller frees) holds rows x n_dom values, row i =
 * stage i (0 = base); dom[0..n_dom) are the evaluation domains (dom has TASK_N_DOMAINS room).
 * Stages not yet written give NaN rows when partial is 1, an error otherwise. A results file
 * of format_version 1 has no expected readout: its matrices of that readout are all NaN, and
 * *version (may be NULL) tells the caller. */
int run_read_matrix(const char *dir, const char *split, metrics_field field,
                    metrics_readout readout, int partial, int *version, double **R, int *rows,
                    task_domain *dom, int *n_dom, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
