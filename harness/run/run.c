/* run.c: the stage loop of `caopd run`: base stage, domain stages, evaluation after each,
 * results appends and checkpoints on one ckpt_io thread, the JSON-lines log, and resume.
 * Order of writes per stage end: results (stage s) then checkpoint (s + 1, 0), so the last
 * checkpoint never runs ahead of the results file. */
#include "harness/run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tasks/basedata.h"
#include "checkpoints/ckpt.h"
#include "harness/trainer/evaluate.h"
#include "harness/run/results.h"
#include "harness/run/snapshot.h"
#include "common/clock.h"
#include "common/files.h"

#define TRAIN_SEED_STRIDE 1000003ull /* stage i's train stream: seed + i * stride */

typedef struct run {
    spec sp;
    const char *json;
    char dir[SPEC_PATH_CAP];
    char results_path[SPEC_PATH_CAP + 32], ckpt_path[SPEC_PATH_CAP + 32];
    tw_ctx *ctx;
    tw_rng *init;
    gpt *student;
    trainer *t;
    base_gen *bg;
    task_gen *tg[SPEC_MAX_STAGES];
    ckpt_io *io;
    ckpt_write_opts wo;
    FILE *log;
    train_log *rows; /* the current stage's curve rows */
    int rows_cap;
    int stage, step; /* position: the next step to take */
    run_opts o;
    run_summary *sum;
    double t_start;
    int64_t steps_total, steps_done_here; /* for the ETA */
    char *err;
    size_t errlen;
    tw_dist *dist;   /* borrowed from run_opts; NULL: one process */
    int rank, world; /* this process's rank and the number of processes (0, 1 without a group) */
} run;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
run_fail(run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int stage_steps(const spec *sp, int s) {
    return s == 0 ? sp->base_train.total_steps : sp->stages[s - 1].train.total_steps;
}

static train_params stage_params(const spec *sp, int s) {
    return s == 0 ? sp->base_train : sp->stages[s - 1].train;
}

static const char *stage_name(const spec *sp, int s) {
    return s == 0 ? "base" : task_domain_name(sp->stages[s - 1].domain);
}

static const char *stage_method(const spec *sp, int s) {
    return s == 0 ? "sft" : train_method_name(sp->stages[s - 1].train.method);
}

/* ---- JSON-lines log ------------------------------------------------------------------ */

static void jnum(FILE *f, const char *key, double v) {
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.17g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

static void log_begin(run *r, const char *event) {
    if (r->log) fprintf(r->log, "{\"event\":\"%s\",\"t\":%.3f", event, clock_now_s() - r->t_start);
}

static void log_end(run *r) {
    if (!r->log) return;
    fputs("}\n", r->log);
    fflush(r->log);
}

static void emit(run *r, run_event *ev) {
    ev->n_stages = r->sp.n_stages;
    if (r->o.on_event) r->o.on_event(r->o.arg, ev);
}

/* ---- set-up and tear-down ------------------------------------------------------------ */

static void run_free(run *r) {
    if (r->io) ckpt_io_free(r->io); /* runs what is queued */
    r->io = NULL;
    for (int i = 0; i < SPEC_MAX_STAGES; i++)
        task_gen_free(r->tg[i]);
    base_gen_free(r->bg);
    train_free(r->t);
    gpt_free(r->student);
    tw_rng_free(r->init);
    tw_ctx_free(r->ctx);
    if (r->log) fclose(r->log);
    free(r->rows);
}

/* Model, trainer, generators, I/O thread, log. */
static int run_setup(run *r) {
    const spec *sp = &r->sp;
    snprintf(r->results_path, sizeof r->results_path, "%s/%s", r->dir, RUN_RESULTS_FILE);
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/%s", r->dir, RUN_CHECKPOINT_FILE);
    tw_set_num_threads(sp->threads);
    tw_set_blas_threads(sp->threads); /* TW_ERR_STATE when the BLAS has no control: nothing to do */
    char e[512];
    if (tw_ctx_new(&r->ctx, TW_DEVICE_CPU, e, sizeof e) != TW_OK)
        return run_fail(r, "libtorch: %s", e);
    if (tw_rng_new(r->ctx, sp->seed, &r->init) ||
        gpt_new(r->ctx, sp->model, r->init, &r->student) ||
        train_new(r->student, sp->base_train, sp->seed, &r->t))
        return run_fail(r, "model set-up: %s", tw_errmsg(r->ctx));
    train_set_dist(r->t, r->dist);
    if (run_check_world(sp, r->world, r->err, r->errlen)) return -1;
    if (base_gen_new(&r->bg, sp->base_data, sp->seed) != BASE_OK)
        return run_fail(r, "base data: %s", base_errmsg());
    for (int i = 0; i < sp->n_stages; i++)
        if (task_gen_new(&r->tg[i], sp->stages[i].domain, TASK_SPLIT_TRAIN, 0,
                         sp->seed + (uint64_t)(i + 1) * TRAIN_SEED_STRIDE) != TASK_OK)
            return run_fail(r, "stage %d: %s", i + 1, task_errmsg());
    r->wo = ckpt_write_opts_default();
    r->wo.deflate_level = sp->deflate_level;
    ckpt_error ce;
    if (r->rank == 0) { /* the other ranks of a data-parallel run write nothing */
        if (ckpt_io_new(&r->io, 2, &ce)) return run_fail(r, "I/O thread: %s", ce.msg);
        char lp[SPEC_PATH_CAP + 32];
        snprintf(lp, sizeof lp, "%s/%s", r->dir, RUN_LOG_FILE);
        r->log = fopen(lp, "a");
        if (!r->log) return run_fail(r, "%s: cannot open for appending: %s", lp, strerror(errno));
    }
    r->steps_total = 0;
    for (int s = 0; s <= sp->n_stages; s++)
        r->steps_total += stage_steps(sp, s);
    int maxs = 1;
    for (int s = 0; s <= sp->n_stages; s++)
        maxs = stage_steps(sp, s) > maxs ? stage_steps(sp, s) : maxs;
    r->rows = calloc((size_t)maxs, sizeof *r->rows);
    r->rows_cap = maxs;
    if (!r->rows) return run_fail(r, "out of memory");
    return 0;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

/* Builds the checkpoint of position (stage, step) with the current stage's rows[0..step). */
static int build_checkpoint(run *r, int stage, int step, int n_rows, ckpt_snapshot **out) {
    ckpt_error ce;
    ckpt_snapshot *s = NULL;
    *out = NULL;
    if (ckpt_snapshot_new(&s, r->ckpt_path, CKPT_FORMAT_CHECKPOINT, SNAP_CHECKPOINT_VERSION,
                          CKPT_MODE_CREATE, &r->wo, &ce))
        return run_fail(r, "%s", ce.msg);
    char e[1024];
    if (snap_add_trainer(s, r->t, e, sizeof e)) { /* 0 or -1, the message in e */
        ckpt_snapshot_free(s);
        return run_fail(r, "%s", e);
    }
    const int ns = r->sp.n_stages;
    int64_t *tgs = calloc((size_t)ns * 4 + 1, sizeof(int64_t)); /* + 1: a base-only run has none */
    if (!tgs) {
        ckpt_snapshot_free(s);
        return run_fail(r, "checkpoint: out of memory");
    }
    uint64_t st[4];
    for (int i = 0; i < ns; i++) {
        task_gen_get_state(r->tg[i], st);
        memcpy(&tgs[i * 4], st, sizeof st);
    }
    base_gen_get_state(r->bg, st);
    int64_t dims1[1] = {4}, dims2[2] = {ns, 4};
    ckpt_status rc = ckpt_snapshot_add(s, "gens/base", CKPT_DTYPE_I64, 1, dims1, st);
    if (!rc)
        rc = ckpt_snapshot_add_owned(s, "gens/train", CKPT_DTYPE_I64, 2, dims2, tgs, NULL);
    else
        free(tgs);
    if (!rc) rc = results_add_curves(s, "progress", r->rows, n_rows);
    if (!rc) rc = ckpt_snapshot_attr_str(s, "", "spec", r->json);
    if (!rc) rc = ckpt_snapshot_attr_i64(s, "", "stage", stage);
    if (!rc) rc = ckpt_snapshot_attr_i64(s, "", "step", step);
    if (!rc) rc = ckpt_snapshot_attr_str(s, "", "versions", tw_version());
    if (rc) {
        run_fail(r, "checkpoint: %s",
                 rc == CKPT_ERR_NOMEM ? "out of memory" : ckpt_snapshot_errmsg(s));
        ckpt_snapshot_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int io_check(run *r) {
    if (!r->io || ckpt_io_status(r->io) == CKPT_OK)
        return 0; /* no I/O thread: a rank other than 0 */
    return run_fail(
        r,
        "writing a snapshot failed: %s. The run stopped; the last complete checkpoint in %s is "
        "kept: fix the cause (e.g. free disk space) and continue with `caopd run --resume %s`",
        ckpt_io_errmsg(r->io), r->dir, r->dir);
}

static int submit_checkpoint(run *r, int stage, int step, int n_rows) {
    if (r->rank != 0) return 0; /* rank 0 alone writes */
    double t0 = clock_now_s();
    ckpt_snapshot *s = NULL;
    if (build_checkpoint(r, stage, step, n_rows, &s)) return -1;
    ckpt_io_submit_snapshot(r->io, s); /* failures are recorded on the queue */
    r->sum->snapshot_s += clock_now_s() - t0;
    r->sum->n_checkpoints++;
    log_begin(r, "checkpoint");
    if (r->log) fprintf(r->log, ",\"stage\":%d,\"step\":%d", stage, step);
    log_end(r);
    run_event ev = {.kind = RUN_EVENT_CHECKPOINT, .stage = stage, .step = step};
    emit(r, &ev);
    return io_check(r);
}

/* Position, trainer and generators from dir's checkpoint. */
static int load_checkpoint(run *r) {
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    if (ckpt_reader_open(&rd, r->ckpt_path, CKPT_FORMAT_CHECKPOINT, SNAP_CHECKPOINT_VERSION, &ce))
        return run_fail(r, "%s", ce.msg);
    char *spec_text = NULL;
    int64_t stage = -1, step = -1;
    int rc = 0;
    if (ckpt_reader_attr_str(rd, "", "spec", &spec_text) ||
        ckpt_reader_attr_i64(rd, "", "stage", &stage) ||
        ckpt_reader_attr_i64(rd, "", "step", &step))
        rc = run_fail(r,
                      "%s; the checkpoint is not one of `caopd run`: resume from an intact copy or "
                      "start over with --force",
                      ckpt_reader_errmsg(rd));
    if (!rc && strcmp(spec_text, r->json) != 0)
        rc = run_fail(
            r, "%s was written for another spec than %s/%s; restore the spec the run started with",
            r->ckpt_path, r->dir, RUN_SPEC_FILE);
    if (!rc && (stage < 0 || stage > r->sp.n_stages + 1 ||
                (stage <= r->sp.n_stages && (step < 0 || step > stage_steps(&r->sp, (int)stage)))))
        rc = run_fail(
            r,
            "%s: position stage %lld, step %lld does not fit the spec; the checkpoint is damaged",
            r->ckpt_path, (long long)stage, (long long)step);
    char e[1024];
    if (!rc) {
        if (stage <= r->sp.n_stages) train_set_params(r->t, stage_params(&r->sp, (int)stage));
        if (snap_load_trainer(rd, r->t, e, sizeof e)) rc = run_fail(r, "%s: %s", r->ckpt_path, e);
    }
    uint64_t st[4];
    if (!rc) {
        if (ckpt_reader_read(rd, "gens/base", CKPT_DTYPE_I64, st, 4) != CKPT_OK)
            rc = run_fail(r, "%s", ckpt_reader_errmsg(rd));
        else
            base_gen_set_state(r->bg, st);
    }
    const int ns = r->sp.n_stages;
    uint64_t *tgs =
        malloc(sizeof(uint64_t) * (4 * (size_t)ns + 1)); /* + 1: a base-only run has none */
    if (!rc && (!tgs ||
                ckpt_reader_read(rd, "gens/train", CKPT_DTYPE_I64, tgs, (size_t)ns * 4) != CKPT_OK))
        rc = run_fail(r, "%s", tgs ? ckpt_reader_errmsg(rd) : "out of memory");
    for (int i = 0; !rc && i < ns; i++)
        task_gen_set_state(r->tg[i], &tgs[i * 4]);
    free(tgs);
    if (!rc && stage <= r->sp.n_stages && step > 0 &&
        results_read_curves(rd, "progress", r->rows, (int)step, e, sizeof e))
        rc = run_fail(r, "%s: %s", r->ckpt_path, e);
    free(spec_text);
    ckpt_reader_free(rd);
    if (!rc) r->stage = (int)stage, r->step = (int)step;
    return rc;
}

/* ---- data parallel (docs/distributed.md) ------------------------------------------------ */

static int dist_lost(run *r) {
    return run_fail(r, "%s", tw_dist_errmsg(r->dist));
}

/* Collective: each process passes its own outcome (0, or -1 with its message in r->err); all
 * return -1 when any failed, the others with the message of the lowest failing rank. */
static int dist_agree(run *r, int rc) {
    if (r->world == 1) return rc;
    double lowest = rc ? r->rank : r->world;
    if (tw_dist_allreduce_f64(r->dist, &lowest, 1, TW_DIST_MIN)) return dist_lost(r);
    const int f = (int)lowest;
    if (f == r->world) return 0;
    char msg[1024] = "";
    if (r->rank == f) snprintf(msg, sizeof msg, "%s", r->err);
    if (tw_dist_broadcast_bytes(r->dist, msg, sizeof msg, f)) return dist_lost(r);
    if (r->rank != f)
        run_fail(r, "rank %d of %d stopped, so every rank stops: %s", f, r->world, msg);
    return -1;
}

/* Every rank takes rank 0's state: student, teacher, AdamW moments and counters, the rollout
 * generator, the data generators and the position (stage, step), and whether it resumed. */
static int sync_state(run *r, int *resumed) {
    if (r->world == 1) return 0;
    tw_ctx *ctx = r->ctx;
    trainer *t = r->t;
    gpt *st = train_student(t), *te = train_teacher(t);
    const int np = gpt_param_count(st), ns = r->sp.n_stages;
    tw_tensor *ts = malloc(sizeof *ts * (size_t)(4 * np));
    size_t rng_len = 0;
    tw_rng_get_state(train_rng(t), NULL, &rng_len);
    enum { H_STAGE, H_STEP, H_OPT, H_TSTEP, H_SCHED, H_RESUMED, H_RNG, H_BASE, H_N = H_BASE + 4 };
    const size_t n64 = H_N + 4 * (size_t)ns;
    int64_t *h = calloc(n64, sizeof *h);
    uint8_t *rs = malloc(rng_len ? rng_len : 1);
    if (!ts || !h || !rs) {
        free(ts), free(h), free(rs);
        return run_fail(r, "out of memory");
    }
    for (int i = 0; i < np; i++) {
        ts[i] = gpt_param(st, i), ts[np + i] = gpt_param(te, i);
        tw_adamw_moments(train_optimizer(t), i, &ts[2 * np + i], &ts[3 * np + i]);
    }
    h[H_STAGE] = r->stage, h[H_STEP] = r->step, h[H_OPT] = tw_adamw_step_count(train_optimizer(t));
    h[H_TSTEP] = train_step_count(t), h[H_SCHED] = train_sched_count(t), h[H_RESUMED] = *resumed;
    h[H_RNG] = (int64_t)rng_len;
    base_gen_get_state(r->bg, (uint64_t *)&h[H_BASE]);
    for (int i = 0; i < ns; i++)
        task_gen_get_state(r->tg[i], (uint64_t *)&h[H_N + 4 * i]);
    int rc = 0;
    if (tw_dist_broadcast(r->dist, ctx, ts, 4 * np, 0) != TW_OK ||
        tw_dist_broadcast_bytes(r->dist, h, n64 * sizeof *h, 0) != TW_OK ||
        tw_rng_get_state(train_rng(t), rs, &rng_len) != TW_OK ||
        tw_dist_broadcast_bytes(r->dist, rs, rng_len, 0) != TW_OK)
        rc = dist_lost(r);
    if (!rc && tw_rng_set_state(train_rng(t), rs, rng_len) != TW_OK)
        rc = run_fail(r, "%s", tw_errmsg(ctx));
    if (!rc) {
        r->stage = (int)h[H_STAGE], r->step = (int)h[H_STEP], *resumed = (int)h[H_RESUMED];
        if (r->stage <= ns) train_set_params(t, stage_params(&r->sp, r->stage));
        tw_adamw_set_step_count(train_optimizer(t), h[H_OPT]);
        train_set_counters(t, h[H_TSTEP], h[H_SCHED]);
        base_gen_set_state(r->bg, (const uint64_t *)&h[H_BASE]);
        for (int i = 0; i < ns; i++)
            task_gen_set_state(r->tg[i], (const uint64_t *)&h[H_N + 4 * i]);
    }
    free(ts), free(h), free(rs);
    return rc;
}

/* Before anything else: rank 0 tells every rank whether it can start (else its message),
 * whether the run is already finished, and its spec text (mine on rank 0); a rank whose own
 * spec (mine, when compare) differs, or that failed itself (rc), stops them all. On success
 * *json0 is rank 0's spec text (malloc'd). */
static int dist_handshake(run *r, int rc, const char *mine, int compare, int *finished,
                          char **json0) {
    *json0 = NULL;
    int64_t hdr[3] = {0};
    const char *text = rc ? r->err : mine;
    if (r->rank == 0) hdr[0] = rc == 0, hdr[1] = *finished, hdr[2] = (int64_t)strlen(text);
    if (tw_dist_broadcast_bytes(r->dist, hdr, sizeof hdr, 0)) return dist_lost(r);
    char *buf = malloc((size_t)hdr[2] + 1);
    if (!buf) return run_fail(r, "out of memory");
    if (r->rank == 0) memcpy(buf, text, (size_t)hdr[2]);
    buf[hdr[2]] = '\0';
    if (tw_dist_broadcast_bytes(r->dist, buf, (size_t)hdr[2], 0)) {
        free(buf);
        return dist_lost(r);
    }
    if (!hdr[0]) {
        if (r->rank != 0) run_fail(r, "rank 0 could not start: %s", buf);
        free(buf);
        return -1;
    }
    *finished = (int)hdr[1];
    if (!rc && compare && strcmp(mine, buf) != 0)
        rc = run_fail(r,
                      "the spec given to rank %d differs from rank 0's; start every rank with the "
                      "same spec file",
                      r->rank);
    if (dist_agree(r, rc)) {
        free(buf);
        return -1;
    }
    *json0 = buf;
    return 0;
}

int run_check_world(const spec *sp, int world, char *err, size_t errlen) {
    if (world <= 1) return 0;
    if (sp->base_train.total_steps > 0 && sp->base_train.batch_prompts % world != 0) {
        snprintf(err, errlen,
                 "spec: base.batch %d does not divide among WORLD_SIZE = %d processes; make it a "
                 "multiple "
                 "of the number of processes (each trains an equal share of every batch)",
                 sp->base_train.batch_prompts, world);
        return -1;
    }
    for (int i = 0; i < sp->n_stages; i++)
        if (sp->stages[i].train.total_steps > 0 && sp->stages[i].train.batch_prompts % world != 0) {
            snprintf(
                err, errlen,
                "spec: stages[%d].batch %d does not divide among WORLD_SIZE = %d processes; make "
                "it a "
                "multiple of the number of processes (each trains an equal share of every batch)",
                i, sp->stages[i].train.batch_prompts, world);
            return -1;
        }
    return 0;
}

/* ---- stages ------------------------------------------------------------------------------ */

/* What happens when stage s starts fresh (step 0). A loaded base brings the student and the
 * trainer's step count (the optimizer steps that trained it: the curves' step column and the
 * replay rotation follow it), so that the run goes on exactly as if it had trained that base. */
static int stage_begin(run *r, int s) {
    char e[1024];
    if (s == 0 && r->sp.base_checkpoint[0]) {
        int rc = 0;
        int64_t step = 0;
        if (r->rank == 0) { /* rank 0 reads the file; the others take the weights from it */
            ckpt_reader *rd = NULL;
            ckpt_error ce;
            if (ckpt_reader_open(&rd, r->sp.base_checkpoint, CKPT_FORMAT_CHECKPOINT,
                                 SNAP_CHECKPOINT_VERSION, &ce)) {
                rc = run_fail(r, "base.checkpoint: %s", ce.msg);
            } else {
                rc = snap_load_model(rd, "student", r->student, e, sizeof e);
                if (rc)
                    run_fail(r, "base.checkpoint: %s: %s", r->sp.base_checkpoint, e);
                else if (ckpt_reader_attr_i64(rd, "trainer", "step", &step) != CKPT_OK || step < 0)
                    rc = run_fail(
                        r, "base.checkpoint: %s: %s; the file is not a checkpoint of caopd run",
                        r->sp.base_checkpoint,
                        step < 0 ? "negative trainer step" : ckpt_reader_errmsg(rd));
                ckpt_reader_free(rd);
            }
        }
        if (dist_agree(r, rc)) return -1;
        if (tw_dist_broadcast(r->dist, r->ctx, gpt_params(r->student), gpt_param_count(r->student),
                              0) ||
            tw_dist_broadcast_bytes(r->dist, &step, sizeof step, 0))
            return dist_lost(r);
        train_set_counters(r->t, step, train_sched_count(r->t));
        if (train_sync_teacher(r->t)) return run_fail(r, "%s", tw_errmsg(r->ctx));
    }
    if (s > 0) {
        const spec_stage *st = &r->sp.stages[s - 1];
        if (st->sync_teacher && train_sync_teacher(r->t))
            return run_fail(r, "%s", tw_errmsg(r->ctx));
        if (st->reset_optimizer && snap_reset_optimizer(r->t, e, sizeof e))
            return run_fail(r, "%s", e);
    }
    train_set_params(r->t, stage_params(&r->sp, s));
    return 0;
}

static int train_stage(run *r, int s) {
    const int steps = stage_steps(&r->sp, s);
    train_set_stage(r->t, stage_name(&r->sp, s));
    run_event ev = {.kind = RUN_EVENT_STAGE,
                    .stage = s,
                    .stage_name = stage_name(&r->sp, s),
                    .method = stage_method(&r->sp, s),
                    .step = r->step,
                    .steps = steps};
    emit(r, &ev);
    task_gen *replay[SPEC_MAX_STAGES];
    int n_replay = 0;
    for (int i = 0; s > 0 && i < s - 1; i++)
        replay[n_replay++] = r->tg[i];
    double train_t = 0;
    for (int k = r->step; k < steps; k++) {
        double t0 = clock_now_s();
        train_log lg;
        memset(&lg, 0, sizeof lg);
        tw_status ts = s == 0 ? train_step_base(r->t, r->bg, &lg)
                              : train_step_domain(r->t, r->tg[s - 1], replay, n_replay, &lg);
        if (ts != TW_OK)
            return run_fail(r, "stage %d (%s), step %d: %s", s, stage_name(&r->sp, s), k,
                            tw_errmsg(r->ctx));
        r->rows[k] = lg;
        double dt = clock_now_s() - t0;
        train_t += dt;
        r->sum->train_s += dt;
        r->steps_done_here++;
        int64_t left = 0;
        for (int j = s; j <= r->sp.n_stages; j++)
            left += stage_steps(&r->sp, j);
        left -= k + 1;
        log_begin(r, "step");
        if (r->log) {
            fprintf(r->log,
                    ",\"stage\":%d,\"name\":\"%s\",\"method\":\"%s\",\"step\":%d,\"steps\":%d", s,
                    stage_name(&r->sp, s), stage_method(&r->sp, s), k + 1, steps);
            jnum(r->log, "lr", lg.lr);
            jnum(r->log, "loss", lg.s.loss);
            jnum(r->log, "kl", lg.s.kl);
            jnum(r->log, "grad_norm", lg.grad_norm);
            jnum(r->log, "mean_p_acc", lg.s.mean_p_acc);
            jnum(r->log, "mean_confidence", lg.s.mean_confidence);
            jnum(r->log, "format_adherence", lg.s.format_adherence);
            jnum(r->log, "step_s", lg.step_s);
        }
        log_end(r);
        run_event se = {.kind = RUN_EVENT_STEP,
                        .stage = s,
                        .stage_name = stage_name(&r->sp, s),
                        .method = stage_method(&r->sp, s),
                        .step = k + 1,
                        .steps = steps,
                        .log = &lg,
                        .eta_s = (double)left * r->sum->train_s / (double)r->steps_done_here};
        emit(r, &se);
        r->step = k + 1;
        if (r->sp.snapshot_every > 0 && (k + 1) % r->sp.snapshot_every == 0 && k + 1 < steps) {
            if (submit_checkpoint(r, s, k + 1, k + 1)) return -1;
        } else if (io_check(r)) {
            return -1;
        }
    }
    (void)train_t;
    return 0;
}

/* Evaluates every domain on every split into a results append for stage s, then hands it and
 * the stage-end checkpoint to the I/O thread. */
static int finish_stage(run *r, int s) {
    if (r->rank != 0) { /* evaluation and writing are rank 0's */
        r->step = 0;
        return 0;
    }
    const spec *sp = &r->sp;
    char e[1024];
    ckpt_snapshot *rs = NULL;
    if (results_append(&rs, r->results_path, &r->wo, e, sizeof e)) return run_fail(r, "%s", e);
    char g[64];
    snprintf(g, sizeof g, "stages/%d", s);
    const int steps = stage_steps(sp, s);
    int rc = results_add_curves(rs, g, r->rows, steps);
    if (!rc) rc = ckpt_snapshot_attr_str(rs, g, "name", stage_name(sp, s));
    if (!rc) rc = ckpt_snapshot_attr_str(rs, g, "method", stage_method(sp, s));
    if (!rc) rc = ckpt_snapshot_attr_i64(rs, g, "steps", steps);
    if (!rc) rc = ckpt_snapshot_attr_i64(rs, g, "trainer_step", train_step_count(r->t));
    task_domain dom[TASK_N_DOMAINS];
    const int nd = spec_eval_domains(sp, dom);
    eval_sample *es = malloc(sizeof *es * (size_t)sp->eval_n);
    task_example *ex = malloc(sizeof *ex * (size_t)sp->eval_n);
    if (!es || !ex) rc = CKPT_ERR_NOMEM;
    double t0 = clock_now_s();
    for (int i = 0; !rc && i < sp->n_splits; i++)
        for (int j = 0; !rc && j < nd; j++) {
            if (eval_split(r->student, dom[j], sp->splits[i].split, sp->splits[i].severity,
                           sp->seed ^ SPEC_EVAL_SEED_XOR, sp->eval_n, sp->eval, es, ex) != TW_OK) {
                free(es), free(ex);
                ckpt_snapshot_free(rs);
                return run_fail(r, "evaluation after stage %d: %s", s, tw_errmsg(r->ctx));
            }
            metrics_run m[METRICS_READOUT_COUNT];
            rc = results_add_eval(rs, s, dom[j], sp->splits[i], es, ex, sp->eval_n, m);
            char nm[32];
            spec_split_name(sp->splits[i], nm, sizeof nm);
            log_begin(r, "eval");
            if (r->log) {
                fprintf(r->log, ",\"stage\":%d,\"domain\":\"%s\",\"split\":\"%s\",\"n\":%d", s,
                        task_domain_name(dom[j]), nm, sp->eval_n);
                for (int q = 0; q < METRICS_READOUT_COUNT; q++)
                    for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
                        char key[32];
                        if (q != METRICS_READOUT_GREEDY &&
                            !metrics_field_per_readout((metrics_field)f))
                            continue;
                        jnum(r->log,
                             metrics_field_key((metrics_field)f, (metrics_readout)q, key,
                                               sizeof key),
                             metrics_run_get(&m[q], (metrics_field)f));
                    }
            }
            log_end(r);
            run_event ev = {.kind = RUN_EVENT_EVAL,
                            .stage = s,
                            .stage_name = stage_name(sp, s),
                            .method = stage_method(sp, s),
                            .domain = task_domain_name(dom[j]),
                            .split = nm,
                            .metrics = m};
            emit(r, &ev);
        }
    free(es), free(ex);
    r->sum->eval_s += clock_now_s() - t0;
    if (!rc)
        rc = ckpt_snapshot_attr_f64(rs, g, "eval_s", clock_now_s() - t0); /* timing: not compared */
    if (rc) {
        run_fail(r, "results of stage %d: %s", s,
                 rc == CKPT_ERR_NOMEM ? "out of memory" : ckpt_snapshot_errmsg(rs));
        ckpt_snapshot_free(rs);
        return -1;
    }
    double ts = clock_now_s();
    ckpt_io_submit_snapshot(r->io, rs);
    r->sum->snapshot_s += clock_now_s() - ts;
    r->step = 0;
    return submit_checkpoint(r, s + 1, 0, 0);
}

/* Drains the queue and marks the results file finished, with the matrices. */
static int finish_run(run *r) {
    if (r->rank != 0) return 0;
    double t0 = clock_now_s();
    if (ckpt_io_drain(r->io) != CKPT_OK) {
        io_check(r); /* the failure was forgotten by drain; describe it */
        return run_fail(
            r,
            "writing a snapshot failed: %s. The last complete checkpoint in %s is kept: continue "
            "with `caopd run --resume %s`",
            ckpt_io_errmsg(r->io), r->dir, r->dir);
    }
    const spec *sp = &r->sp;
    task_domain dom[TASK_N_DOMAINS];
    const int nd = spec_eval_domains(sp, dom), rows = sp->n_stages + 1;
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    if (ckpt_reader_open(&rd, r->results_path, CKPT_FORMAT_RESULTS, RESULTS_FORMAT_VERSION, &ce))
        return run_fail(r, "%s", ce.msg);
    ckpt_snapshot *s = NULL;
    char e[1024];
    if (results_append(&s, r->results_path, &r->wo, e, sizeof e)) {
        ckpt_reader_free(rd);
        return run_fail(r, "%s", e);
    }
    static const metrics_field fields[] = {METRICS_FIELD_ACCURACY,  METRICS_FIELD_ECE,
                                           METRICS_FIELD_BRIER,     METRICS_FIELD_OCG,
                                           METRICS_FIELD_SPR,       METRICS_FIELD_AUROC,
                                           METRICS_FIELD_MEAN_CONF, METRICS_FIELD_FORMAT_FAIL_RATE};
    int rc = 0;
    for (int i = 0; !rc && nd > 0 && i < sp->n_splits; i++) /* a base-only run evaluates nothing */
        for (size_t k = 0; !rc && k < METRICS_READOUT_COUNT * (sizeof fields / sizeof fields[0]);
             k++) {
            const metrics_field f = fields[k % (sizeof fields / sizeof fields[0])];
            const metrics_readout q = (metrics_readout)(k / (sizeof fields / sizeof fields[0]));
            if (q != METRICS_READOUT_GREEDY && !metrics_field_per_readout(f))
                continue; /* readout-free: once */
            double *R = malloc(sizeof(double) * (size_t)(rows * nd));
            char nm[32], path[128], key[32];
            spec_split_name(sp->splits[i], nm, sizeof nm);
            if (!R || results_read_matrix(rd, rows, dom, nd, nm, f, q, R, e, sizeof e)) {
                free(R);
                rc = run_fail(r, "%s: %s", r->results_path, R ? e : "out of memory");
                break;
            }
            snprintf(path, sizeof path, "matrices/%s/%s", nm,
                     metrics_field_key(f, q, key, sizeof key));
            int64_t dims[2] = {rows, nd};
            if (ckpt_snapshot_add_owned(s, path, CKPT_DTYPE_F64, 2, dims, R, NULL))
                rc = run_fail(r, "results: %s", ckpt_snapshot_errmsg(s));
        }
    ckpt_reader_free(rd);
    if (!rc && ckpt_snapshot_attr_str(s, "", "status", "finished"))
        rc = run_fail(r, "results: %s", ckpt_snapshot_errmsg(s));
    if (!rc && ckpt_snapshot_write(s, &ce)) rc = run_fail(r, "%s", ce.msg);
    ckpt_snapshot_free(s);
    r->sum->snapshot_s += clock_now_s() - t0;
    return rc;
}

static int run_main(run *r) {
    const int T = r->sp.n_stages;
    for (int s = r->stage; s <= T; s++) {
        if (r->step == 0 && stage_begin(r, s)) return -1;
        if (train_stage(r, s)) return -1;
        /* data parallel: the other ranks wait here while rank 0 evaluates and writes */
        if (dist_agree(r, finish_stage(r, s))) return -1;
        r->stage = s + 1;
    }
    if (dist_agree(r, finish_run(r))) return -1;
    log_begin(r, "done");
    if (r->log) {
        jnum(r->log, "wall_s", clock_now_s() - r->t_start);
        jnum(r->log, "train_s", r->sum->train_s);
        jnum(r->log, "eval_s", r->sum->eval_s);
        jnum(r->log, "snapshot_s", r->sum->snapshot_s);
    }
    log_end(r);
    run_event ev = {.kind = RUN_EVENT_DONE, .stage = T};
    emit(r, &ev);
    return 0;
}

static int run_go(run *r, int resume) {
    int rc = run_setup(r);
    int resumed = 0;
    if (!rc && r->rank == 0 && resume && file_exists(r->ckpt_path)) {
        rc = load_checkpoint(r);
        resumed = rc == 0;
    }
    if (!rc && r->rank == 0 && !resumed) {
        /* a fresh start: a new results file */
        ckpt_snapshot *s = NULL;
        char e[1024];
        ckpt_error ce;
        if (results_new_file(&s, r->results_path, &r->sp, r->json, &r->wo, e, sizeof e))
            rc = run_fail(r, "%s", e);
        else if (ckpt_snapshot_write(s, &ce))
            rc = run_fail(r, "%s", ce.msg);
        ckpt_snapshot_free(s);
        r->stage = 0, r->step = 0;
    }
    /* data parallel: all ranks continue from rank 0's state, or all stop */
    rc = dist_agree(r, rc);
    if (!rc) rc = sync_state(r, &resumed);
    if (!rc) {
        r->sum->resumed = resumed;
        log_begin(r, resumed ? "resume" : "start");
        if (r->log)
            fprintf(r->log, ",\"stage\":%d,\"step\":%d,\"seed\":%llu,\"threads\":%d", r->stage,
                    r->step, (unsigned long long)r->sp.seed, r->sp.threads);
        if (r->log && r->world > 1) fprintf(r->log, ",\"world_size\":%d", r->world);
        log_end(r);
        run_event ev = {
            .kind = RUN_EVENT_START, .stage = r->stage, .step = r->step, .resumed = resumed};
        emit(r, &ev);
        rc = run_main(r);
    }
    if (rc && r->log) {
        log_begin(r, "error");
        fputs(",\"message\":\"", r->log);
        for (const char *c = r->err; *c; c++) {
            if (*c == '"' || *c == '\\')
                fputc('\\', r->log), fputc(*c, r->log);
            else if ((unsigned char)*c < 0x20)
                fputc(' ', r->log);
            else
                fputc(*c, r->log);
        }
        fputc('"', r->log);
        log_end(r);
    }
    if (r->io) {
        ckpt_io_free(r->io); /* lets queued writes finish: the last good checkpoint is on disk */
        r->io = NULL;
    }
    r->sum->wall_s = clock_now_s() - r->t_start;
    run_free(r);
    return rc;
}

static run *run_alloc(run_opts o, run_summary *sum, char *err, size_t errlen) {
    run *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(sum, 0, sizeof *sum);
    r->o = o, r->sum = sum, r->err = err, r->errlen = errlen;
    r->dist = o.dist, r->rank = tw_dist_rank(o.dist), r->world = tw_dist_size(o.dist);
    r->t_start = clock_now_s();
    err[0] = '\0';
    return r;
}

int run_start(const char *spec_json, const char *dir, run_opts o, run_summary *sum, char *err,
              size_t errlen) {
    run_summary dummy;
    if (!sum) sum = &dummy;
    run *r = run_alloc(o, sum, err, errlen);
    if (!r) return -1;
    char e[SPEC_ERR_CAP];
    int rc = 0;
    if (spec_parse(spec_json, &r->sp, e, sizeof e)) rc = run_fail(r, "spec: %s", e);
    if (!dir) dir = r->sp.output;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    static const char *const files[] = {RUN_SPEC_FILE, RUN_RESULTS_FILE, RUN_CHECKPOINT_FILE,
                                        RUN_LOG_FILE};
    char p[SPEC_PATH_CAP + 40];
    if (!rc && r->rank == 0) { /* the run directory is rank 0's alone */
        int held = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            held |= file_exists(p);
        }
        if (held && !o.force)
            rc = run_fail(r,
                          "%s already holds a run; continue it with `caopd run --resume %s`, or "
                          "pass --force to "
                          "delete it and start over",
                          dir, dir);
        for (int i = 0; !rc && held && i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/%s", dir, RUN_SPEC_FILE);
        if (!rc && (file_mkdir_p(dir) || file_write_atomic(p, spec_json)))
            rc = run_fail(r, "%s: cannot create the run directory or write %s: %s", dir,
                          RUN_SPEC_FILE, strerror(errno));
    }
    char *json0 = NULL;
    int finished = 0;
    if (r->world > 1) rc = dist_handshake(r, rc, spec_json, 1, &finished, &json0);
    if (!rc) {
        r->json = spec_json; /* the same text as rank 0's */
        rc = run_go(r, 0);
    }
    free(json0);
    free(r);
    return rc;
}

/* Rank 0's part of run_resume before the run: the spec from dir, and whether it is finished. */
static int resume_prepare(run *r, const char *dir, char **json, int *finished) {
    char *err = r->err;
    size_t errlen = r->errlen;
    char p[SPEC_PATH_CAP + 40];
    snprintf(p, sizeof p, "%s/%s", dir, RUN_SPEC_FILE);
    *json = file_read_text(p);
    if (!*json) {
        snprintf(err, errlen,
                 "%s: no %s; this is not a run directory of `caopd run` (start one with `caopd run "
                 "SPEC --out %s`)",
                 dir, RUN_SPEC_FILE, dir);
        return -1;
    }
    char e[SPEC_ERR_CAP];
    if (spec_parse(*json, &r->sp, e, sizeof e)) {
        snprintf(err, errlen, "%s: %s", p, e);
        return -1;
    }
    snprintf(p, sizeof p, "%s/%s", dir, RUN_RESULTS_FILE);
    if (file_exists(p)) {
        ckpt_reader *rd = NULL;
        ckpt_error ce;
        char *status = NULL;
        if (ckpt_reader_open(&rd, p, CKPT_FORMAT_RESULTS, RESULTS_FORMAT_VERSION, &ce)) {
            snprintf(err, errlen, "%s", ce.msg);
            return -1;
        }
        *finished = ckpt_reader_attr_str(rd, "", "status", &status) == CKPT_OK &&
                    strcmp(status, "finished") == 0;
        const int version = ckpt_reader_format_version(rd);
        free(status);
        ckpt_reader_free(rd);
        /* An unfinished run of an older layout cannot be continued: the stages still to come
         * would be written in another layout (docs/results.md, "Version history"). */
        if (!*finished && version != RESULTS_FORMAT_VERSION) {
            snprintf(
                err, errlen,
                "%s: has format_version %d, written by an older caopd (docs/results.md, \"Version "
                "history\"); this build writes %d and cannot continue it: finish it with the build "
                "that started "
                "it, or start over with `caopd run %s/%s --out %s --force`",
                p, version, RESULTS_FORMAT_VERSION, dir, RUN_SPEC_FILE, dir);
            return -1;
        }
    } else {
        snprintf(p, sizeof p, "%s/%s", dir, RUN_CHECKPOINT_FILE);
        if (file_exists(p)) {
            snprintf(
                err, errlen,
                "%s: %s is missing but a checkpoint exists; the results of the finished stages are "
                "lost: start over with `caopd run %s/%s --out %s --force`",
                dir, RUN_RESULTS_FILE, dir, RUN_SPEC_FILE, dir);
            return -1;
        }
    }
    return 0;
}

int run_resume(const char *dir, run_opts o, run_summary *sum, char *err, size_t errlen) {
    run_summary dummy;
    if (!sum) sum = &dummy;
    run *r = run_alloc(o, sum, err, errlen);
    if (!r) return -1;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char *json = NULL;
    int finished = 0;
    /* rank 0 reads the directory; the other ranks get the spec from it (no shared file system
     * is needed) */
    int rc = r->rank == 0 ? resume_prepare(r, dir, &json, &finished) : 0;
    if (r->world > 1) {
        char *json0 = NULL;
        rc = dist_handshake(r, rc, json, 0, &finished, &json0);
        if (!rc && r->rank != 0) {
            char e[SPEC_ERR_CAP];
            json = json0, json0 = NULL;
            if (spec_parse(json, &r->sp, e, sizeof e)) rc = run_fail(r, "rank 0's spec: %s", e);
        }
        free(json0);
    }
    if (!rc && finished) sum->already_finished = 1;
    if (!rc && !finished) {
        r->json = json;
        rc = run_go(r, 1);
    }
    free(json);
    free(r);
    return rc;
}

int run_read_matrix(const char *dir, const char *split, metrics_field field,
                    metrics_readout readout, int partial, int *version, double **R, int *rows,
                    task_domain *dom, int *n_dom, char *err, size_t errlen) {
    char p[SPEC_PATH_CAP + 40];
    snprintf(p, sizeof p, "%s/%s", dir, RUN_RESULTS_FILE);
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    *R = NULL;
    if (ckpt_reader_open(&rd, p, CKPT_FORMAT_RESULTS, RESULTS_FORMAT_VERSION, &ce)) {
        snprintf(err, errlen, "%s", ce.msg);
        return -1;
    }
    char *json = NULL;
    spec *sp = malloc(sizeof *sp);
    char e[SPEC_ERR_CAP];
    int rc = 0;
    if (!sp) rc = -1, snprintf(err, errlen, "out of memory");
    if (!rc && ckpt_reader_attr_str(rd, "", "spec", &json))
        rc = -1, snprintf(err, errlen, "%s", ckpt_reader_errmsg(rd));
    if (!rc && spec_parse(json, sp, e, sizeof e))
        rc = -1, snprintf(err, errlen, "%s: spec attribute: %s", p, e);
    char key[32];
    const char *attr =
        results_metric_attr(ckpt_reader_format_version(rd), field, readout, key, sizeof key);
    if (version) *version = ckpt_reader_format_version(rd);
    if (!rc) {
        *n_dom = spec_eval_domains(sp, dom);
        *rows = sp->n_stages + 1;
        *R = malloc(sizeof(double) * (size_t)(*rows * *n_dom));
        if (!*R) rc = -1, snprintf(err, errlen, "out of memory");
        for (int i = 0; !rc && i < *rows; i++)
            for (int j = 0; !rc && j < *n_dom; j++) {
                char g[128];
                snprintf(g, sizeof g, "stages/%d/domains/%s/%s", i, task_domain_name(dom[j]),
                         split);
                double *x = *R + i * *n_dom + j;
                if (!attr) {
                    *x = NAN; /* a version 1 file: no expected readout */
                } else if (ckpt_reader_attr_f64(rd, g, attr, x) != CKPT_OK) {
                    if (!partial) rc = -1, snprintf(err, errlen, "%s", ckpt_reader_errmsg(rd));
                    *x = NAN;
                }
            }
    }
    free(json), free(sp);
    ckpt_reader_free(rd);
    if (rc) {
        free(*R);
        *R = NULL;
    }
    return rc;
}
