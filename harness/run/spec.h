/* spec: the experiment spec of `caopd run` (JSON, format "caopd-experiment", version 1):
 * parsing with cJSON, validation that names the JSON path of every error and the accepted
 * values, and defaults (stage hyper-parameters inherit from "defaults"). Every key, type,
 * default and range: docs/spec.md. */
#ifndef CAOPD_SPEC_H
#define CAOPD_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "tasks/basedata.h"
#include "harness/trainer/evaluate.h"
#include "harness/model/gpt.h"
#include "tasks/task.h"
#include "harness/trainer/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPEC_FORMAT "caopd-experiment"
#define SPEC_VERSION 1
#define SPEC_MAX_STAGES 32
#define SPEC_MAX_SPLITS (1 + 3 * TASK_SEVERITY_MAX) /* test + every OOD kind x severity */
#define SPEC_PATH_CAP 1024
#define SPEC_ERR_CAP 1024
/* The evaluation questions of a run are drawn with seed ^ SPEC_EVAL_SEED_XOR ("evaluate"), the
 * same at every stage. */
#define SPEC_EVAL_SEED_XOR 0x6576616c75617465ull

/* Without "eval.max_new": the longest completion the evaluation asks for plus this many tokens
 * (a wrong answer a little longer than the right one keeps its confidence), at least the built-in
 * default. */
#define SPEC_EVAL_MAX_NEW_SLACK 4

/* One domain stage: its domain and the trainer parameters after inheritance. */
typedef struct spec_stage {
    task_domain domain;
    train_params train;  /* train.total_steps = the stage's steps */
    int sync_teacher;    /* teacher <- student when the stage starts (1) */
    int reset_optimizer; /* AdamW moments and step count zeroed when the stage starts (1) */
    int max_new_source;  /* where train.opd.max_new came from, for messages: SPEC_FROM_* */
} spec_stage;

/* Where a stage setting came from: the built-in default, "defaults", or the stage itself. */
enum { SPEC_FROM_DEFAULT = 0, SPEC_FROM_DEFAULTS = 1, SPEC_FROM_STAGE = 2 };

/* One evaluation split: test (severity 0) or an OOD kind with a severity 1..3. */
typedef struct spec_split {
    task_split split;
    int severity;
} spec_split;

/* A parsed, validated spec. Plain value (no pointers): copy freely. */
typedef struct spec {
    char name[64];              /* "name" (default "run") */
    uint64_t seed;              /* "seed" (1) */
    int threads;                /* "threads" (1): libtorch intra-op threads */
    char output[SPEC_PATH_CAP]; /* "output" (default "runs/<name>") */
    gpt_config model;           /* "model" (vocab is the tokenizer's) */
    /* base stage (stage 0) */
    char base_checkpoint[SPEC_PATH_CAP]; /* "base.checkpoint": load the student from this
                                            caopd-checkpoint file instead of training ("" none) */
    train_params base_train;             /* base.steps -> total_steps, batch, lr, warmup, ... */
    base_params base_data;               /* base.p_teacher, p_solution, p_replaced, domains */
    /* domain stages 1..n_stages */
    int n_stages;
    spec_stage stages[SPEC_MAX_STAGES];
    /* evaluation after every stage */
    int eval_n;             /* samples per (domain, split) */
    eval_params eval;       /* max_new, batch; max_new when not given: derived from the
                               evaluation questions (docs/spec.md, "eval") */
    int eval_max_new_given; /* 1 when "eval.max_new" is in the spec */
    int n_splits;           /* splits[0] is test */
    spec_split splits[SPEC_MAX_SPLITS];
    int snapshot_every; /* "snapshots.every_steps": checkpoint every N steps (0: stage
                           ends only) */
    int deflate_level;  /* "snapshots.deflate_level" (1) */
    int log_every;      /* "log.every_steps": progress lines when not a terminal (10) */
} spec;

/* Parses and validates json (NUL-terminated, borrowed) into *out. Returns 0, or -1 with a
 * message in err (errlen bytes) that names the JSON path and, where there is a choice, the
 * accepted values, e.g. "stages[2].method: unknown method 'cao'; accepted: caopd, sdft, sft".
 * *out is only meaningful on success. Thread-safe (no globals). */
int spec_parse(const char *json, spec *out, char *err, size_t errlen);

/* Reads the file at path into a malloc'd NUL-terminated string (*text, caller frees) and
 * parses it. On failure *text is NULL and err names the file. */
int spec_load(const char *path, spec *out, char **text, char *err, size_t errlen);

/* Name of split i ("test", "ood_length_2", ...) into buf; returns buf. */
const char *spec_split_name(spec_split s, char *buf, size_t len);

/* The distinct domains of the stages, in first-appearance order, into out[TASK_N_DOMAINS];
 * returns how many. These are the domains every evaluation covers. */
int spec_eval_domains(const spec *s, task_domain *out);

#ifdef __cplusplus
}
#endif

#endif
