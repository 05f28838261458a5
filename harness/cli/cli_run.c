/* cli_run.c: `caopd run SPEC.json [--out DIR] [--force]` and `caopd run --resume DIR`:
 * runs an experiment spec through the scheduler (run.h), shows progress on stderr (one
 * updating line on a terminal, plain lines otherwise), and ends by printing the accuracy and
 * ECE and OCG matrices of both confidence readouts (stages x domains, in-distribution test
 * split) on stdout.
 * Data parallel (docs/distributed.md): with WORLD_SIZE > 1 every process joins the group named
 * by RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; rank 0 reports and writes, the others are
 * silent unless they fail.
 * For crash tests only, in the test build (build/caopd-test, CAOPD_TEST_HOOKS): CAOPD_CRASH_AT=S:K
 * kills the process (SIGKILL) after step K of stage S, S:eval at stage S's first evaluation,
 * S:ckptK right after checkpoint (S, K) is queued. build/caopd ignores the variable. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness/cli/cli_run.h"
#include "checkpoints/ckpt.h"
#include "harness/run/snapshot.h"
#include "harness/cli/cli_args.h"
#include "harness/cli/cli_matrices.h"
#include "harness/run/run.h"

typedef struct progress {
    int quiet; /* a rank other than 0 of a data-parallel run */
    int tty;
    int log_every;
    int crash_stage, crash_step; /* CAOPD_CRASH_AT (tests): raise SIGKILL there */
    int crash_eval;              /* ... at the first evaluation of crash_stage */
    int crash_ckpt; /* ... right after handing checkpoint (crash_stage, crash_step) over */
    int line_open;
    int legend_shown; /* the P_acc legend, once per run */
    const char *dir;  /* the run directory */
    int lock;         /* fd holding dir/run.lock (RUN_LOCK_FILE), -1 until the run starts */
} progress;

/* Takes dir/run.lock for the life of the process, so that caopd analyze can tell a run that is
 * still going from one that was killed (docs/results.md). The lock is advisory: a run whose lock
 * another process holds goes on, with a warning. */
static void lock_run_dir(progress *p) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", p->dir, RUN_LOCK_FILE);
    p->lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (p->lock < 0) {
        fprintf(stderr,
                "caopd run: warning: cannot open %s (%s); caopd analyze will not tell whether this "
                "run is "
                "still going\n",
                path, strerror(errno));
    } else if (flock(p->lock, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr,
                "caopd run: warning: another process holds %s: is another caopd run writing %s?\n",
                path, p->dir);
    }
}

static int usage(void) {
    fprintf(stderr,
            "usage: caopd run SPEC.json [--out DIR] [--force] [--check]\n"
            "       caopd run --resume DIR\n"
            "  --out DIR     run directory [the spec's \"output\"]\n"
            "  --force       delete a run already in DIR and start over\n"
            "  --check       validate the spec (and the base checkpoint it names), run nothing\n"
            "  --resume DIR  continue the run in DIR from its last checkpoint\n"
            "Data parallel: start WORLD_SIZE processes with RANK, MASTER_ADDR, MASTER_PORT set\n"
            "(torchrun's variables; CAOPD_DIST_TIMEOUT_S) - see docs/distributed.md.\n"
            "Spec keys: docs/spec.md; files of a run directory: docs/results.md.\n");
    return 2;
}

static void end_line(progress *p) {
    if (p->line_open) fputc('\n', stderr);
    p->line_open = 0;
}

static void on_event(void *arg, const run_event *ev) {
    progress *p = arg;
    if (p->quiet) { /* only the crash hooks */
        if (ev->kind == RUN_EVENT_STEP && p->crash_stage == ev->stage &&
            p->crash_step == ev->step && !p->crash_ckpt)
            raise(SIGKILL);
        return;
    }
    switch (ev->kind) {
    case RUN_EVENT_START:
        if (p->lock < 0 && p->dir) lock_run_dir(p);
        fprintf(stderr, "caopd run: %s at stage %d, step %d\n",
                ev->resumed ? "resuming" : "starting", ev->stage, ev->step);
        break;
    case RUN_EVENT_STAGE:
        end_line(p);
        fprintf(stderr, "stage %d/%d %s (%s): %d steps%s\n", ev->stage, ev->n_stages,
                ev->stage_name, ev->method, ev->steps, ev->step ? " (continuing)" : "");
        if (!p->legend_shown && (!strcmp(ev->method, "caopd") || !strcmp(ev->method, "sdft"))) {
            fprintf(stderr,
                    "  (P_acc: the share of each prompt's K rollouts that are correct, averaged "
                    "over the "
                    "batch: the success rate caopd states as its confidence; docs/trainer.md)\n");
            p->legend_shown = 1;
        }
        break;
    case RUN_EVENT_STEP: {
        if (p->crash_stage == ev->stage && p->crash_step == ev->step && !p->crash_ckpt)
            raise(SIGKILL);
        char eta[32];
        cli_duration(ev->eta_s, eta, sizeof eta);
        const int on_policy = strcmp(ev->method, "caopd") == 0 || strcmp(ev->method, "sdft") == 0;
        char pacc[32] = "";
        if (on_policy) snprintf(pacc, sizeof pacc, " P_acc %.3f", ev->log->s.mean_p_acc);
        if (p->tty) {
            fprintf(stderr, "\r\033[Kstage %d/%d %s step %d/%d ETA %s loss %.4f%s", ev->stage,
                    ev->n_stages, ev->stage_name, ev->step, ev->steps, eta, ev->log->s.loss, pacc);
            p->line_open = 1;
        } else if (ev->step % p->log_every == 0 || ev->step == ev->steps) {
            fprintf(stderr, "stage %d/%d %s step %d/%d ETA %s loss %.4f%s\n", ev->stage,
                    ev->n_stages, ev->stage_name, ev->step, ev->steps, eta, ev->log->s.loss, pacc);
        }
        break;
    }
    case RUN_EVENT_EVAL:
        if (p->crash_stage == ev->stage && p->crash_eval) raise(SIGKILL);
        end_line(p);
        fprintf(stderr,
                "  eval after stage %d: %-5s %-12s acc %.3f ece greedy %.3f expected %.3f conf "
                "greedy %.3f "
                "expected %.3f fmt_fail %.3f\n",
                ev->stage, ev->domain, ev->split, ev->metrics[METRICS_READOUT_GREEDY].accuracy,
                ev->metrics[METRICS_READOUT_GREEDY].ece, ev->metrics[METRICS_READOUT_EXPECTED].ece,
                ev->metrics[METRICS_READOUT_GREEDY].mean_conf,
                ev->metrics[METRICS_READOUT_EXPECTED].mean_conf,
                ev->metrics[METRICS_READOUT_GREEDY].format_fail_rate);
        break;
    case RUN_EVENT_CHECKPOINT:
        if (p->crash_ckpt && p->crash_stage == ev->stage && p->crash_step == ev->step)
            raise(SIGKILL);
        break;
    case RUN_EVENT_DONE:
        break;
    }
    fflush(stderr);
}

int cli_run(int argc, char **argv) {
    const char *spec_path = NULL, *out = NULL, *resume = NULL;
    int force = 0, check = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force"))
            force = 1;
        else if (!strcmp(a, "--check"))
            check = 1;
        else if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "--resume") && i + 1 < argc)
            resume = argv[++i];
        else if (a[0] == '-' || spec_path) {
            fprintf(stderr, "caopd run: unexpected argument '%s'\n", a);
            return usage();
        } else
            spec_path = a;
    }
    if (!!resume == !!spec_path || (resume && (out || force || check))) return usage();
    progress p = {
        .tty = isatty(2), .log_every = 10, .crash_stage = -1, .crash_step = -1, .lock = -1};
#ifdef CAOPD_TEST_HOOKS
    const char *crash = getenv("CAOPD_CRASH_AT");
    if (crash) {
        char what[16] = "";
        if (sscanf(crash, "%d:%15s", &p.crash_stage, what) == 2) {
            if (!strcmp(what, "eval"))
                p.crash_eval = 1;
            else if (!strncmp(what, "ckpt", 4))
                p.crash_ckpt = 1, p.crash_step = atoi(what + 4);
            else
                p.crash_step = atoi(what);
        }
    }
#endif
    /* Data parallel: the environment, then the spec's batches against WORLD_SIZE, before
     * joining (so a bad spec fails at once rather than after waiting for the others). */
    char who[64] = "caopd run", err[2048];
    tw_dist_params dp;
    if (tw_dist_params_from_env(&dp, err, sizeof err) != TW_OK) {
        fprintf(stderr, "%s: %s\n", who, err);
        return 2;
    }
    if (dp.world_size > 1)
        snprintf(who, sizeof who, "caopd run (rank %d of %d)", dp.rank, dp.world_size);
    p.quiet = dp.rank != 0;
    const char *dir = resume;
    char *text = NULL;
    spec *sp = malloc(sizeof *sp);
    if (!sp) {
        fprintf(stderr, "%s: out of memory\n", who);
        return 1;
    }
    if (spec_path) {
        char e[SPEC_ERR_CAP];
        if (spec_load(spec_path, sp, &text, e, sizeof e)) {
            fprintf(stderr, "%s: %s\n", who, e);
            free(sp), free(text);
            return 2;
        }
        p.log_every = sp->log_every;
        static char outdir[SPEC_PATH_CAP];
        snprintf(outdir, sizeof outdir, "%s", out ? out : sp->output);
        dir = outdir;
    } else if (dp.world_size > 1 && dp.rank == 0) {
        char path[SPEC_PATH_CAP + 32], e[SPEC_ERR_CAP];
        snprintf(path, sizeof path, "%s/spec.json", resume);
        char *t = NULL;
        if (spec_load(path, sp, &t, e, sizeof e) == 0 &&
            run_check_world(sp, dp.world_size, err, sizeof err)) {
            fprintf(stderr, "%s: %s: %s\n", who, path, err);
            free(sp), free(t);
            return 2;
        }
        free(t); /* a missing or bad spec.json is reported by run_resume */
    }
    if (spec_path && run_check_world(sp, dp.world_size, err, sizeof err)) {
        fprintf(stderr, "%s: %s: %s\n", who, spec_path, err);
        free(sp), free(text);
        return 2;
    }
    if (check) { /* validate only: the spec, and the base checkpoint it names */
        int bad = 0;
        if (sp->base_checkpoint[0]) {
            ckpt_reader *rd = NULL;
            ckpt_error ce;
            gpt_config cfg;
            char e[1024];
            if (ckpt_reader_open(&rd, sp->base_checkpoint, CKPT_FORMAT_CHECKPOINT,
                                 SNAP_CHECKPOINT_VERSION, &ce)) {
                fprintf(stderr, "%s: %s: base.checkpoint: %s\n", who, spec_path, ce.msg);
                bad = 1;
            } else if (snap_read_config(rd, "student", &cfg, e, sizeof e)) {
                fprintf(stderr, "%s: %s: base.checkpoint: %s: %s\n", who, spec_path,
                        sp->base_checkpoint, e);
                bad = 1;
            } else if (cfg.n_embd != sp->model.n_embd || cfg.n_layer != sp->model.n_layer ||
                       cfg.n_head != sp->model.n_head || cfg.block_size != sp->model.block_size) {
                fprintf(stderr,
                        "%s: %s: base.checkpoint: %s holds a model of n_embd %d, n_layer %d, "
                        "n_head %d, "
                        "block_size %d; make the spec's model section match\n",
                        who, spec_path, sp->base_checkpoint, cfg.n_embd, cfg.n_layer, cfg.n_head,
                        cfg.block_size);
                bad = 1;
            }
            ckpt_reader_free(rd);
        }
        if (!bad) {
            printf("%s: valid: %d domain stage%s, base %s, output %s; nothing was run\n", spec_path,
                   sp->n_stages, sp->n_stages == 1 ? "" : "s",
                   sp->base_checkpoint[0] ? sp->base_checkpoint : "trained in the run", dir);
        }
        free(sp), free(text);
        return bad ? 2 : 0;
    }
    free(sp);
    tw_dist *dist = NULL;
    /* A write to a peer that has died must fail with EPIPE, which the collective reports with
     * the stage and step, not kill this process with SIGPIPE before it can say anything. */
    if (dp.world_size > 1) signal(SIGPIPE, SIG_IGN);
    if (dp.world_size > 1 && tw_dist_init(&dp, &dist, err, sizeof err) != TW_OK) {
        fprintf(stderr, "%s: %s\n", who, err);
        free(text);
        return 1;
    }
    p.dir = dir;
    run_opts o = {.force = force, .on_event = on_event, .arg = &p, .dist = dist};
    run_summary sum;
    int rc = resume ? run_resume(resume, o, &sum, err, sizeof err)
                    : run_start(text, dir, o, &sum, err, sizeof err);
    tw_dist_free(dist);
    end_line(&p);
    free(text);
    if (rc) {
        fprintf(stderr, "%s: %s\n", who, err);
        return 1;
    }
    if (p.quiet) return 0; /* rank 0 reports */
    if (sum.already_finished) printf("%s: the run is already finished; its results:\n", dir);
    if (cli_print_run_matrices(dir, "caopd run") < 0) return 1;
    if (!sum.already_finished) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("wall %.1f s (training %.1f s, evaluation %.1f s, snapshots on the training thread "
               "%.2f s = %.2f%% of "
               "training + evaluation, %d checkpoints); peak memory %.0f MiB\n",
               sum.wall_s, sum.train_s, sum.eval_s, sum.snapshot_s,
               100.0 * sum.snapshot_s /
                   (sum.train_s + sum.eval_s > 0 ? sum.train_s + sum.eval_s : 1),
               sum.n_checkpoints, ru.ru_maxrss / 1024.0);
        printf("results: %s/%s\n", dir, RUN_RESULTS_FILE);
    }
    return 0;
}
