/* cli_sweep.c: `caopd sweep SPEC.json [-j N] [--out DIR] [--threads T] [--force] [--list]
 * [--cell I]` runs the cells of a sweep spec (sweep.h), each as `caopd run --resume CELLDIR`
 * in a child process of its own (fork + exec of /proc/self/exe), N at a time from a pool of
 * worker threads, then writes OUT/summary.h5; and `caopd merge DIR... [--out FILE]` gathers
 * the finished cells of sweep directories into a summary file. With "share_base", the shared
 * bases run first as jobs of the same pool (a cell waits for its base). Progress on stderr; the
 * cell list (--list) and the final table on stdout. Why child processes: docs/sweep.md. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/cli/cli_args.h"
#include "harness/cli/cli_matrices.h"
#include "harness/cli/cli_sweep.h"
#include "harness/run/run.h"
#include "harness/run/spec.h"
#include "harness/run/sweep.h"
#include "common/clock.h"
#include "common/files.h"

extern char **environ;

#define HEARTBEAT_S 60 /* a progress line at least this often while cells run */
#define OUT_CAP 1024   /* the sweep directory's path */
#define DIR_CAP 1400   /* OUT/cells/<name> (names are at most ~210 bytes) */
#define FILE_CAP 1500  /* a file in a cell directory */
#define ERR_CAP 2048

/* vsnprintf into buf: messages may be cut at len - 1 bytes. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
msg(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- small helpers --------------------------------------------------------------------------- */

/* Cores this process may run on (its affinity mask: what Slurm or taskset gave it). */
static int usable_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- the pool ------------------------------------------------------------------------------ */

typedef enum job_state { JOB_PENDING, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_SKIPPED } job_state;

/* A job is a cell, a shared base or a shared run: a `caopd run --resume DIR` of its own, except
 * a cell whose training is shared (alias), which only waits for its shared run. */
typedef enum job_kind { JOB_CELL = 0, JOB_BASE = 1, JOB_SHARED = 2, JOB_KINDS = 3 } job_kind;

/* Sweeps of at most this many cells print every finished cell's matrices at the end. */
#define SMALL_SWEEP_CELLS 4

typedef struct job {
    job_kind kind;
    int cell;          /* the cell, or the base's or shared run's index */
    const char *name;  /* borrowed from the sweep */
    char dir[DIR_CAP]; /* OUT/cells/<name>, OUT/bases/<name> or OUT/shared/<name> (also an
                          alias cell's: where its results are) */
    int alias;         /* a cell whose shared run (dep) evaluates it: no process of its own */
    char *json;        /* the run's spec text (threads set); written to spec.json when fresh */
    int fresh;         /* 1: start over (spec.json written, old run files removed); 0: resume */
    int dep;  /* the job this one waits for (a base, or an alias cell's shared run), or -1 */
    int lock; /* an fd already holding the directory's lock (--cell: the base), or -1 */
    job_state state;
    double t0, dt;
    char err[ERR_CAP];
} job;

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *jobs; /* the bases first, then the shared runs, then the cells */
    int n_jobs;
    int running, n_workers;
    int done_now[JOB_KINDS], failed[JOB_KINDS], skipped[JOB_KINDS]; /* per job_kind */
    double
        run_s[JOB_KINDS];   /* wall seconds of the jobs run in this call, per job_kind (no alias) */
    int ran_now[JOB_KINDS]; /* jobs that ran a process and finished in this call (no alias) */
    double t_start;
    char exe[4096];
} pool;

/* The last "caopd run: ..." line of the cell's log (the run's error), else its last line. */
static void last_error_line(const char *log, char *out, size_t len) {
    out[0] = '\0';
    FILE *f = fopen(log, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f), from = n > 65536 ? n - 65536 : 0;
    fseek(f, from, SEEK_SET);
    char *buf = malloc((size_t)(n - from) + 1);
    size_t got = buf ? fread(buf, 1, (size_t)(n - from), f) : 0;
    fclose(f);
    if (!buf) return;
    buf[got] = '\0';
    char *last = NULL, *lastrun = NULL, *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strspn(line, " \r\t") == strlen(line)) continue;
        last = line;
        if (!strncmp(line, "caopd run: ", 11) && strncmp(line, "caopd run: starting", 19) &&
            strncmp(line, "caopd run: resuming", 19))
            lastrun = line;
    }
    const char *pick = lastrun ? lastrun + 11 : last;
    if (pick) snprintf(out, len, "%s", pick);
    free(buf);
}

/* A signal's name (strsignal is not thread-safe everywhere). */
static const char *signal_name(int sig) {
    switch (sig) {
    case SIGKILL:
        return "SIGKILL: killed, e.g. by the out-of-memory killer or kill -9";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGSEGV:
        return "SIGSEGV: a crash";
    case SIGABRT:
        return "SIGABRT: an abort";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    default:
        return "a signal";
    }
}

static const char *const run_files[] = {RUN_SPEC_FILE, RUN_RESULTS_FILE, RUN_CHECKPOINT_FILE,
                                        RUN_LOG_FILE};

/* "cell", "base" or "shared run". */
static const char *kind_noun(const job *j) {
    return j->kind == JOB_BASE ? "base" : j->kind == JOB_SHARED ? "shared run" : "cell";
}

/* What a job is to the jobs waiting for it: "shared base" or "shared run". */
static const char *dep_noun(const job *j) {
    return j->kind == JOB_BASE ? "shared base" : "shared run";
}

/* Runs one cell in a child process; 0 when it finished, else -1 with j->err. Called on a
 * worker thread: no HDF5 here. */
static int run_cell(pool *p, job *j) {
    char path[FILE_CAP], log[FILE_CAP];
    if (file_mkdir_p(j->dir)) {
        msg(j->err, sizeof j->err, "cannot create %s: %s", j->dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", j->dir, SWEEP_CELL_LOCK);
    /* a lock this process already holds (j->lock) is taken again at no cost below */
    int lock = j->lock >= 0 ? j->lock : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    j->lock = -1; /* closed here */
    if (lock < 0) {
        msg(j->err, sizeof j->err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
        msg(j->err, sizeof j->err,
            "another process is running this %s (%s is locked); wait for it to end "
            "or stop it, then run the sweep again",
            kind_noun(j), path);
        close(lock);
        return -1;
    }
    if (j->fresh) {
        for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", j->dir, run_files[i]);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/%s", j->dir, RUN_SPEC_FILE);
        if (file_write_atomic(path, j->json)) {
            msg(j->err, sizeof j->err, "cannot write %s: %s", path, strerror(errno));
            close(lock);
            return -1;
        }
    }
    snprintf(log, sizeof log, "%s/%s", j->dir, SWEEP_CELL_LOG);
    int lf = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (lf < 0 || nul < 0) {
        msg(j->err, sizeof j->err, "cannot open %s: %s", lf < 0 ? log : "/dev/null",
            strerror(errno));
        if (lf >= 0) close(lf);
        if (nul >= 0) close(nul);
        close(lock);
        return -1;
    }
    char head[512];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    int hn = snprintf(head, sizeof head,
                      "==== caopd sweep, %s: %s %d (%s): caopd run --resume %s ====\n", ts,
                      kind_noun(j), j->cell, j->fresh ? "starting" : "continuing", j->dir);
    if (hn > 0 && write(lf, head, (size_t)hn) < 0) { /* the header is a courtesy */
    }
    char *const argv[] = {"caopd", "run", "--resume", j->dir, NULL};
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* async-signal-safe calls only until exec: the parent has other threads */
        dup2(nul, 0), dup2(lf, 1), dup2(lf, 2);
        if (lock != 3)
            dup2(lock, 3); /* the lock goes with the run (fd 3, inherited by exec) */
        else
            fcntl(3, F_SETFD, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the cell ends when its worker (the sweep) dies */
        if (getppid() != parent) _exit(126);
        execve(p->exe, argv, environ);
        _exit(127);
    }
    int fork_errno = errno;
    close(lf), close(nul);
    if (pid < 0) {
        msg(j->err, sizeof j->err, "cannot start a process: %s", strerror(fork_errno));
        close(lock);
        return -1;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    close(lock);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    char why[1024];
    last_error_line(log, why, sizeof why);
    if (WIFSIGNALED(st))
        msg(j->err, sizeof j->err, "killed by signal %d (%s)%s%s", WTERMSIG(st),
            signal_name(WTERMSIG(st)), why[0] ? "; last line: " : "", why);
    else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        msg(j->err, sizeof j->err, "could not execute %s", p->exe);
    else
        msg(j->err, sizeof j->err, "%s (exit status %d)", why[0] ? why : "caopd run failed",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return -1;
}

/* One progress line (mutex held). Counts cover cells, shared bases and shared runs together;
 * the bases and the shared runs are also counted on their own when there are any. */
static void progress_line(pool *p, const char *what) {
    int n[JOB_KINDS] = {0}, pending[JOB_KINDS] = {0}, running[JOB_KINDS] = {0},
        busy[JOB_KINDS] = {0};
    for (int i = 0; i < p->n_jobs; i++) {
        const job *j = &p->jobs[i];
        n[j->kind]++;
        pending[j->kind] += j->state == JOB_PENDING;
        running[j->kind] += j->state == JOB_RUNNING;
        busy[j->kind] += j->state == JOB_PENDING && !j->alias; /* an alias costs nothing */
    }
    /* ETA: the mean time of each kind run in this call x (its jobs to go + half the running
     * ones) / workers; '?' while a kind still to run has no finished job to go by */
    double work = 0;
    int unknown = 0;
    for (int k = 0; k < JOB_KINDS; k++) {
        const double left = busy[k] + 0.5 * running[k];
        if (left <= 0) continue;
        if (p->ran_now[k] > 0)
            work += left * p->run_s[k] / p->ran_now[k];
        else
            unknown = 1;
    }
    char eta[32] = "?", el[32], extra[128] = "";
    if (!unknown) cli_duration(work / (p->n_workers > 0 ? p->n_workers : 1), eta, sizeof eta);
    cli_duration(clock_now_s() - p->t_start, el, sizeof el);
    if (n[JOB_BASE] && n[JOB_SHARED])
        snprintf(extra, sizeof extra, " (bases: %d/%d done, shared runs: %d/%d done)",
                 p->done_now[JOB_BASE] + p->skipped[JOB_BASE], n[JOB_BASE],
                 p->done_now[JOB_SHARED] + p->skipped[JOB_SHARED], n[JOB_SHARED]);
    else if (n[JOB_BASE])
        snprintf(extra, sizeof extra, " (bases: %d/%d done)",
                 p->done_now[JOB_BASE] + p->skipped[JOB_BASE], n[JOB_BASE]);
    else if (n[JOB_SHARED])
        snprintf(extra, sizeof extra, " (shared runs: %d/%d done)",
                 p->done_now[JOB_SHARED] + p->skipped[JOB_SHARED], n[JOB_SHARED]);
    int done = 0, all = 0, run = 0, failed = 0, to_go = 0;
    for (int k = 0; k < JOB_KINDS; k++)
        done += p->done_now[k] + p->skipped[k], all += n[k], run += running[k],
            failed += p->failed[k], to_go += pending[k];
    fprintf(stderr,
            "sweep: %d/%d done, %d running, %d failed, %d to go%s; elapsed %s, ETA %s%s%s\n", done,
            all, run, failed, to_go, extra, el, eta, what ? " | " : "", what ? what : "");
    fflush(stderr);
}

static const char *kind_word(const job *j) {
    return j->kind == JOB_BASE ? "base " : j->kind == JOB_SHARED ? "shared run " : "";
}

/* The jobs waiting for job b, which failed, fail too, and so on down (mutex held). */
static void fail_dependents(pool *p, int b) {
    const job *dep = &p->jobs[b];
    for (int i = 0; i < p->n_jobs; i++) {
        job *j = &p->jobs[i];
        if (j->dep != b || j->state != JOB_PENDING) continue;
        j->state = JOB_FAILED;
        p->failed[j->kind]++;
        msg(j->err, sizeof j->err, "its %s %s failed (log %s/%s): %s", dep_noun(dep), dep->dir,
            dep->dir, SWEEP_CELL_LOG, dep->err);
        char what[ERR_CAP + 256];
        msg(what, sizeof what, "FAILED %s%s: its %s %s failed", kind_word(j), j->name,
            dep_noun(dep), dep->name);
        if (!j->alias) progress_line(p, what);
        fail_dependents(p, i);
    }
}

static void *worker(void *arg) {
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        job *j = NULL;
        for (;;) { /* the first pending job whose dependency (if any) is there; an alias cell runs
                      nothing: it ends with its shared run (below) */
            int pending = 0;
            for (int i = 0; i < p->n_jobs && !j; i++) {
                job *c = &p->jobs[i];
                if (c->state != JOB_PENDING || c->alias) continue;
                pending++;
                const job_state bs = c->dep >= 0 ? p->jobs[c->dep].state : JOB_DONE;
                if (bs == JOB_DONE || bs == JOB_SKIPPED) j = c;
            }
            if (j || !pending) break;
            pthread_cond_wait(&p->cv, &p->mu); /* its dependency is running */
        }
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        j->state = JOB_RUNNING;
        j->t0 = clock_now_s();
        p->running++;
        char what[DIR_CAP + ERR_CAP + 128];
        msg(what, sizeof what, "%s %s%s", j->fresh ? "started" : "resuming", kind_word(j), j->name);
        progress_line(p, what);
        pthread_mutex_unlock(&p->mu);

        const int rc = run_cell(p, j);

        pthread_mutex_lock(&p->mu);
        j->dt = clock_now_s() - j->t0;
        p->running--;
        char dur[32];
        cli_duration(j->dt, dur, sizeof dur);
        if (rc == 0) {
            j->state = JOB_DONE;
            p->done_now[j->kind]++;
            p->ran_now[j->kind]++;
            p->run_s[j->kind] += j->dt;
            msg(what, sizeof what, "finished %s%s in %s", kind_word(j), j->name, dur);
        } else {
            j->state = JOB_FAILED;
            p->failed[j->kind]++;
            msg(what, sizeof what, "FAILED %s%s after %s: %s (log %s/%s)", kind_word(j), j->name,
                dur, j->err, j->dir, SWEEP_CELL_LOG);
        }
        if (rc == 0) /* the cells that read this shared run are done with it */
            for (int i = 0; i < p->n_jobs; i++) {
                job *c = &p->jobs[i];
                if (c->alias && c->dep == (int)(j - p->jobs) && c->state == JOB_PENDING)
                    c->state = JOB_DONE, p->done_now[c->kind]++;
            }
        progress_line(p, what);
        if (rc != 0) fail_dependents(p, (int)(j - p->jobs));
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Runs the pending jobs with n workers; returns when every job is done or failed. */
static int pool_run(pool *p, int n) {
    pthread_t *th = calloc((size_t)n, sizeof *th);
    if (!th) return -1;
    p->n_workers = n;
    int started = 0;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&th[i], NULL, worker, p) != 0) break;
        started++;
    }
    if (started == 0) {
        free(th);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int active = p->running;
        for (int i = 0; i < p->n_jobs; i++)
            active += p->jobs[i].state == JOB_PENDING && !p->jobs[i].alias;
        if (!active) break;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += HEARTBEAT_S;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT) progress_line(p, NULL);
    }
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    return 0;
}

/* ---- caopd sweep ------------------------------------------------------------------------------
 */

static int usage_sweep(void) {
    fprintf(
        stderr,
        "usage: caopd sweep SPEC.json [-j N] [--out DIR] [--threads T] [--force]\n"
        "       caopd sweep SPEC.json --list\n"
        "       caopd sweep SPEC.json --cell I [--out DIR] [--threads T] [--force]\n"
        "  -j N         cells run at once [the cores this process may use]\n"
        "  --out DIR    the sweep directory [the spec's \"output\", default runs/<name>]\n"
        "  --threads T  libtorch threads per cell [max(1, cores / N); with --cell: the cores]\n"
        "  --force      replace another sweep held in DIR and start every cell (of this call) "
        "over\n"
        "  --list       print the number of cells, then each cell's index, name and axis values\n"
        "  --cell I     run only cell I (0-based), e.g. as one task of a cluster job array;\n"
        "               SLURM_ARRAY_TASK_ID stands for --cell when set. No summary: caopd merge "
        "DIR\n"
        "With \"share_base\": true in the spec, cells with the same base stage load one base "
        "trained\n"
        "first in DIR/bases/<name> (with --cell: by the first task that needs it, under its "
        "lock).\n"
        "Re-running skips finished cells and bases and resumes interrupted ones. Spec keys: "
        "docs/sweep.md.\n");
    return 2;
}

static void list_cells(const sweep *s) {
    printf("%d cells (sweep %s; axes:", sweep_n_cells(s), sweep_name(s));
    for (int a = 0; a < sweep_n_axes(s); a++)
        printf("%s %s", a ? "," : "", sweep_axis_name(s, a));
    if (!sweep_n_axes(s)) printf(" none");
    printf(")\n");
    for (int i = 0; i < sweep_n_cells(s); i++) {
        printf("%d\t%s\t", i, sweep_cell_name(s, i));
        for (int a = 0; a < sweep_n_axes(s); a++)
            printf("%s%s=%s", a ? " " : "", sweep_axis_name(s, a), sweep_cell_value(s, i, a));
        printf("\n");
    }
}

/* Makes OUT hold this sweep: writes sweep.json (and experiment.json) when absent or forced;
 * refuses another sweep without --force. Returns 0, or the exit status. */
static int claim_out(const sweep *s, const char *out, int force) {
    char p[FILE_CAP], pe[FILE_CAP], cells[FILE_CAP];
    snprintf(p, sizeof p, "%s/%s", out, SWEEP_FILE);
    snprintf(pe, sizeof pe, "%s/%s", out, SWEEP_EXPERIMENT_FILE);
    snprintf(cells, sizeof cells, "%s/%s", out, SWEEP_CELLS_DIR);
    if (file_mkdir_p(cells)) {
        fprintf(stderr, "caopd sweep: cannot create %s: %s\n", cells, strerror(errno));
        return 1;
    }
    char *old = file_read_text(p);
    const char *exp = sweep_experiment_text(s);
    int same = 0;
    if (old) {
        same = strcmp(old, sweep_text(s)) == 0;
        char *old_exp = exp ? file_read_text(pe) : NULL;
        if (same && exp && (!old_exp || strcmp(old_exp, exp) != 0)) {
            if (!force) {
                fprintf(stderr,
                        "caopd sweep: %s holds this sweep spec, but its experiment (%s) differs "
                        "from the "
                        "experiment file the spec names now; choose another --out, or pass --force "
                        "to replace it "
                        "(every cell then starts over)\n",
                        out, pe);
                free(old), free(old_exp);
                return 2;
            }
            same = 0;
        }
        free(old_exp);
        if (!same && !force) {
            fprintf(stderr,
                    "caopd sweep: %s holds another sweep (its %s differs from this spec); choose "
                    "another "
                    "--out, or pass --force to replace it (every cell then starts over)\n",
                    out, SWEEP_FILE);
            free(old);
            return 2;
        }
    }
    free(old);
    if (!same || force) {
        if ((exp && file_write_atomic(pe, exp)) || file_write_atomic(p, sweep_text(s))) {
            fprintf(stderr, "caopd sweep: cannot write %s: %s\n", exp ? pe : p, strerror(errno));
            return 1;
        }
        if (!exp) unlink(pe);
    }
    return 0;
}

/* The spec text job j's directory should hold when it runs with threads (malloc'd). */
static int job_json(const sweep *s, const job *j, int threads, char **out) {
    if (j->kind == JOB_BASE) return sweep_base_json(s, j->cell, threads, out);
    if (j->kind == JOB_SHARED) return sweep_shared_json(s, j->cell, threads, out);
    return sweep_cell_json(s, j->cell, threads, out);
}

/* Works out what job j needs from its directory (HDF5 reads: main thread, before the pool):
 * start (fresh), resume, skip (finished) or fail (another run is there). */
static void plan_one(const sweep *s, job *j, int force) {
    const char *what = kind_noun(j);
    j->state = JOB_PENDING;
    if (force) {
        j->fresh = 1;
        return;
    }
    sweep_cell_status st;
    char e[ERR_CAP];
    if (sweep_cell_state(j->dir, &st, NULL, NULL, e, sizeof e)) {
        j->state = JOB_FAILED;
        msg(j->err, sizeof j->err,
            "%s; move the %s directory aside or pass --force to start it over", e, what);
        return;
    }
    if (st == SWEEP_CELL_ABSENT) {
        j->fresh = 1;
        return;
    }
    /* a run is there: it must be this job's (with the thread count it started with) */
    char p[FILE_CAP];
    snprintf(p, sizeof p, "%s/%s", j->dir, RUN_SPEC_FILE);
    char *have = file_read_text(p), *want = NULL;
    spec *sp = malloc(sizeof *sp);
    int ok = have && sp && spec_parse(have, sp, e, sizeof e) == 0 &&
             job_json(s, j, sp->threads, &want) == 0 && strcmp(have, want) == 0;
    free(have), free(want), free(sp);
    if (!ok) {
        j->state = JOB_FAILED;
        msg(j->err, sizeof j->err,
            "%s is not this %s's spec (the directory holds another run); move it "
            "aside or pass --force to start the %s over",
            p, what, what);
    } else if (st == SWEEP_CELL_FINISHED) {
        j->state = JOB_SKIPPED;
    }
}

/* Takes the lock of a base's or shared run's directory for an array task (--cell), waiting while
 * another task runs it. Returns the fd holding it, or -1 with j->err. */
static int wait_base_lock(job *j) {
    char path[FILE_CAP];
    snprintf(path, sizeof path, "%s/%s", j->dir, SWEEP_CELL_LOCK);
    int fd = file_mkdir_p(j->dir) ? -1 : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        msg(j->err, sizeof j->err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    fprintf(stderr,
            "caopd sweep: another process holds the %s %s (%s is locked); waiting for it to end\n",
            j->kind == JOB_BASE ? "shared base" : "shared run", j->dir, path);
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        msg(j->err, sizeof j->err, "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Plans job j (a base or a shared run) in its directory; with --cell (cell_mode) under its lock
 * (wait_base_lock), kept until the job has run, and --force does not start it over (other array
 * tasks may be using it). */
static void plan_dep(const sweep *s, job *j, int force, int cell_mode) {
    if (cell_mode) {
        j->lock = wait_base_lock(j);
        if (j->lock < 0) {
            j->state = JOB_FAILED;
            return;
        }
    }
    plan_one(s, j, force && !cell_mode);
    if (j->state != JOB_PENDING && j->lock >= 0) close(j->lock), j->lock = -1;
}

/* A job waiting for jobs[d]: fails when that one failed, is done when it was skipped (an alias
 * cell: its shared run has finished before), else waits for it. */
static void depend_on(job *jobs, job *j, int d) {
    const job *dj = &jobs[d];
    if (dj->state == JOB_FAILED) {
        j->state = JOB_FAILED;
        msg(j->err, sizeof j->err, "its %s %s failed (log %s/%s): %s", dep_noun(dj), dj->dir,
            dj->dir, SWEEP_CELL_LOG, dj->err);
    } else if (dj->state == JOB_SKIPPED && j->alias) {
        j->state = JOB_SKIPPED;
    } else if (dj->state == JOB_PENDING) {
        j->dep = d;
    }
}

/* Works out what each selected cell needs, then the shared runs and the shared bases their pending
 * cells need; fills *jobs_out (malloc'd: those bases first, then the shared runs, then the cells)
 * and *n_out. Returns 0, or -1 when out of memory. */
static int plan_jobs(const sweep *s, const char *out, int first, int n, int threads, int force,
                     int cell_mode, job **jobs_out, int *n_out) {
    const int nb = sweep_n_bases(s), nr = sweep_n_shared(s);
    job *jobs = calloc((size_t)(nb + nr + n), sizeof *jobs);
    int *slot = malloc(sizeof *slot *
                       (size_t)(nb + nr + 1)); /* base or run -> its job, -1 when not needed */
    int *rslot = slot + nb;
    job *runs = calloc((size_t)nr + 1, sizeof *runs);
    if (!jobs || !slot || !runs) {
        free(jobs), free(slot), free(runs);
        fprintf(stderr, "caopd sweep: out of memory\n");
        return -1;
    }
    job *cells = jobs + nb + nr; /* planned in place, moved down below */
    for (int b = 0; b < nb + nr; b++)
        slot[b] = -1;
    for (int k = 0; k < n; k++) {
        job *j = &cells[k];
        j->kind = JOB_CELL;
        j->cell = first + k;
        j->name = sweep_cell_name(s, j->cell);
        j->dep = -1, j->lock = -1;
        sweep_cell_run_dir(s, out, j->cell, j->dir, sizeof j->dir);
        const int r = sweep_cell_shared(s, j->cell);
        if (r >= 0) { /* its shared run decides */
            j->alias = 1;
            j->state = JOB_PENDING;
            rslot[r] = 0;
            continue;
        }
        if (sweep_cell_json(s, j->cell, threads, &j->json)) goto oom;
        plan_one(s, j, force);
        const int b = sweep_cell_base(s, j->cell);
        if (b >= 0 && j->state == JOB_PENDING) slot[b] = 0;
    }
    int m_r = 0;
    for (int r = 0; r < nr; r++) {
        if (rslot[r] < 0) continue;
        rslot[r] = m_r;
        job *j = &runs[m_r++];
        j->kind = JOB_SHARED;
        j->cell = r;
        j->name = sweep_shared_name(s, r);
        j->dep = -1, j->lock = -1;
        snprintf(j->dir, sizeof j->dir, "%s/%s/%s", out, SWEEP_SHARED_DIR, j->name);
        if (sweep_shared_json(s, r, threads, &j->json)) goto oom;
        plan_dep(s, j, force, cell_mode);
        const int b = sweep_shared_base(s, r);
        if (b >= 0 && j->state == JOB_PENDING) slot[b] = 0;
    }
    int m = 0;
    for (int b = 0; b < nb; b++) {
        if (slot[b] < 0) continue;
        slot[b] = m;
        job *j = &jobs[m++];
        j->kind = JOB_BASE;
        j->cell = b;
        j->name = sweep_base_name(s, b);
        j->dep = -1, j->lock = -1;
        snprintf(j->dir, sizeof j->dir, "%s/%s/%s", out, SWEEP_BASES_DIR, j->name);
        if (sweep_base_json(s, b, threads, &j->json)) goto oom;
        plan_dep(s, j, force, cell_mode);
    }
    /* the order the workers take them in: bases, shared runs, cells */
    memcpy(jobs + m, runs, sizeof *jobs * (size_t)m_r);
    memmove(jobs + m + m_r, cells, sizeof *jobs * (size_t)n);
    free(runs), runs = NULL;
    for (int k = m; k < m + m_r + n; k++) {
        job *j = &jobs[k];
        if (j->state != JOB_PENDING) continue;
        if (j->alias) {
            depend_on(jobs, j, m + rslot[sweep_cell_shared(s, j->cell)]);
            continue;
        }
        const int b =
            j->kind == JOB_SHARED ? sweep_shared_base(s, j->cell) : sweep_cell_base(s, j->cell);
        if (b >= 0) depend_on(jobs, j, slot[b]);
    }
    free(slot);
    *jobs_out = jobs, *n_out = m + m_r + n;
    return 0;
oom:
    fprintf(stderr, "caopd sweep: out of memory\n");
    for (int k = 0; k < nb + nr + n; k++)
        free(jobs[k].json);
    for (int k = 0; k <= nr; k++)
        free(runs[k].json);
    free(jobs), free(slot), free(runs);
    return -1;
}

static void merge_warnings(const char *cmd, const sweep_merge_info *mi) {
    if (!mi->skipped) return;
    fprintf(stderr,
            "caopd %s: warning: %d of %d cells are not finished and are not in the summary:\n", cmd,
            mi->n_cells - mi->n_merged, mi->n_cells);
    fputs(mi->skipped, stderr);
}

int cli_sweep(int argc, char **argv) {
    const char *spec_path = NULL, *out = NULL;
    int jobs_n = 0, threads = 0, force = 0, list = 0, cell = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force"))
            force = 1;
        else if (!strcmp(a, "--list"))
            list = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_sweep();
            return 0;
        } else if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "-j") && i + 1 < argc) {
            if (cli_int("sweep", "-j", argv[++i], 1, 256, &jobs_n)) return 2;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (cli_int("sweep", "--threads", argv[++i], 1, 256, &threads)) return 2;
        } else if (!strcmp(a, "--cell") && i + 1 < argc) {
            if (cli_int("sweep", "--cell", argv[++i], 0, SWEEP_MAX_CELLS - 1, &cell)) return 2;
        } else if (a[0] == '-' || spec_path) {
            fprintf(stderr, "caopd sweep: unexpected argument '%s'\n", a);
            return usage_sweep();
        } else
            spec_path = a;
    }
    if (!spec_path) return usage_sweep();
    sweep *s = NULL;
    char err[SWEEP_ERR_CAP];
    if (sweep_load(spec_path, &s, err, sizeof err)) {
        fprintf(stderr, "caopd sweep: %s\n", err);
        return 2;
    }
    if (list) {
        list_cells(s);
        sweep_free(s);
        return 0;
    }
    const int n_cells = sweep_n_cells(s);
    const char *slurm = getenv("SLURM_ARRAY_TASK_ID");
    if (cell < 0 && slurm && slurm[0]) {
        if (cli_int("sweep", "SLURM_ARRAY_TASK_ID", slurm, 0, SWEEP_MAX_CELLS - 1, &cell)) {
            sweep_free(s);
            return 2;
        }
        fprintf(stderr, "caopd sweep: SLURM_ARRAY_TASK_ID=%d: running cell %d only\n", cell, cell);
    }
    if (cell >= n_cells) {
        fprintf(stderr,
                "caopd sweep: cell %d does not exist; the sweep has %d cells, 0..%d (caopd sweep "
                "%s --list)\n",
                cell, n_cells, n_cells - 1, spec_path);
        sweep_free(s);
        return 2;
    }
    const int cores = usable_cores();
    if (jobs_n <= 0) jobs_n = cell >= 0 ? 1 : cores;
    if (cell >= 0) jobs_n = 1;
    if (threads <= 0) threads = cores / jobs_n > 1 ? cores / jobs_n : 1;
    char outdir[OUT_CAP];
    if (strlen(out ? out : sweep_output(s)) >= sizeof outdir - 1) {
        fprintf(stderr,
                "caopd sweep: the sweep directory's path is longer than %zu bytes; choose a "
                "shorter --out\n",
                sizeof outdir - 2);
        sweep_free(s);
        return 2;
    }
    snprintf(outdir, sizeof outdir, "%s", out ? out : sweep_output(s));
    int rc = claim_out(s, outdir, force);
    if (rc) {
        sweep_free(s);
        return rc;
    }
    pool p;
    memset(&p, 0, sizeof p);
    ssize_t el = readlink("/proc/self/exe", p.exe, sizeof p.exe - 1);
    if (el <= 0) {
        fprintf(stderr, "caopd sweep: cannot find its own executable (/proc/self/exe): %s\n",
                strerror(errno));
        sweep_free(s);
        return 1;
    }
    p.exe[el] = '\0';
    if (sweep_set_dir(s, outdir, err, sizeof err)) {
        fprintf(stderr, "caopd sweep: %s\n", err);
        sweep_free(s);
        return 2;
    }
    const int first = cell >= 0 ? cell : 0, n = cell >= 0 ? 1 : n_cells;
    if (plan_jobs(s, outdir, first, n, threads, force, cell >= 0, &p.jobs, &p.n_jobs)) {
        sweep_free(s);
        return 1;
    }
    int n_kind[JOB_KINDS] = {0}, to_run[JOB_KINDS] = {0}, to_resume[JOB_KINDS] = {0}, aliases = 0,
        processes = 0;
    for (int k = 0; k < p.n_jobs; k++) {
        const job *j = &p.jobs[k];
        n_kind[j->kind]++;
        aliases += j->alias;
        p.skipped[j->kind] += j->state == JOB_SKIPPED;
        p.failed[j->kind] += j->state == JOB_FAILED;
        if (j->state == JOB_PENDING)
            to_run[j->kind]++, to_resume[j->kind] += !j->fresh && !j->alias;
        processes += j->state == JOB_PENDING && !j->alias; /* what the workers will start */
    }
    const int nb = n_kind[JOB_BASE],
              nr = n_kind[JOB_SHARED]; /* the shared bases and runs this call needs */
    char bases[256] = "", runs[320] = "", base_out[FILE_CAP] = "", run_out[FILE_CAP] = "";
    if (nb) {
        snprintf(bases, sizeof bases,
                 "; %d shared base%s: %d already finished, %d to run (%d to resume)", nb,
                 nb == 1 ? "" : "s", p.skipped[JOB_BASE], to_run[JOB_BASE], to_resume[JOB_BASE]);
        snprintf(base_out, sizeof base_out, "; each base's output: %s/%s/<name>/%s", outdir,
                 SWEEP_BASES_DIR, SWEEP_CELL_LOG);
    }
    if (nr) {
        snprintf(runs, sizeof runs,
                 "; %d shared run%s (%d cells differ only in eval.ood_severities and read them): "
                 "%d already finished, %d to run (%d to resume)",
                 nr, nr == 1 ? "" : "s", aliases, p.skipped[JOB_SHARED], to_run[JOB_SHARED],
                 to_resume[JOB_SHARED]);
        snprintf(run_out, sizeof run_out, "; each shared run's output: %s/%s/<name>/%s", outdir,
                 SWEEP_SHARED_DIR, SWEEP_CELL_LOG);
    }
    char cell_out[FILE_CAP] = ""; /* only when some cell runs a process of its own */
    if (aliases < n)
        snprintf(cell_out, sizeof cell_out, "; each cell's output: %s/%s/<name>/%s", outdir,
                 SWEEP_CELLS_DIR, SWEEP_CELL_LOG);
    fprintf(stderr,
            "caopd sweep: %s: %d cell%s in %s; %d already finished, %d to run (%d to resume)%s%s, "
            "%d worker%s x %d "
            "thread%s on %d core%s%s%s%s\n",
            sweep_name(s), n, n == 1 ? "" : "s", outdir, p.skipped[JOB_CELL], to_run[JOB_CELL],
            to_resume[JOB_CELL], bases, runs, jobs_n, jobs_n == 1 ? "" : "s", threads,
            threads == 1 ? "" : "s", cores, cores == 1 ? "" : "s", cell_out, base_out, run_out);
    for (int k = 0; k < p.n_jobs; k++)
        if (p.jobs[k].state == JOB_FAILED)
            fprintf(stderr, "sweep: FAILED %s%s: %s\n", kind_word(&p.jobs[k]), p.jobs[k].name,
                    p.jobs[k].err);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    p.t_start = clock_now_s();
    if (processes && pool_run(&p, jobs_n < processes ? jobs_n : processes)) {
        fprintf(stderr, "caopd sweep: cannot start worker threads\n");
        rc = 1;
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);

    /* the outcome, on stdout */
    char dur[32];
    cli_duration(clock_now_s() - p.t_start, dur, sizeof dur);
    printf("sweep %s: %d cell%s: %d finished now, %d finished before, %d failed (%s)\n",
           sweep_name(s), n, n == 1 ? "" : "s", p.done_now[JOB_CELL], p.skipped[JOB_CELL],
           p.failed[JOB_CELL], dur);
    if (nb)
        printf("shared bases: %d: %d trained now, %d finished before, %d failed\n", nb,
               p.done_now[JOB_BASE], p.skipped[JOB_BASE], p.failed[JOB_BASE]);
    if (nr)
        printf("shared runs: %d: %d run now, %d finished before, %d failed\n", nr,
               p.done_now[JOB_SHARED], p.skipped[JOB_SHARED], p.failed[JOB_SHARED]);
    for (int k = 0; k < p.n_jobs; k++) {
        const job *j = &p.jobs[k];
        if (j->state == JOB_FAILED)
            printf("  FAILED %s%s: %s\n    log: %s/%s\n", kind_word(j), j->name, j->err, j->dir,
                   SWEEP_CELL_LOG);
    }
    if (p.failed[JOB_CELL] || p.failed[JOB_BASE] || p.failed[JOB_SHARED]) rc = 1;
    /* A small sweep (the quickstart: one cell per method) ends with each finished cell's
     * matrices, as caopd run does; a larger one points to caopd analyze. */
    if (cell < 0 && n <= SMALL_SWEEP_CELLS) {
        for (int k = 0; k < p.n_jobs; k++) {
            const job *j = &p.jobs[k];
            if (j->kind != JOB_CELL || (j->state != JOB_DONE && j->state != JOB_SKIPPED)) continue;
            printf("\n== cell %s (%s)\n", j->name, j->dir);
            if (cli_print_run_matrices(j->dir, "caopd sweep") < 0) rc = 1;
        }
        printf("\n");
    } else if (cell < 0) {
        printf("tables and figures: caopd analyze %s\n", outdir);
    }
    if (cell < 0) {
        char sum[FILE_CAP];
        snprintf(sum, sizeof sum, "%s/%s", outdir, SWEEP_SUMMARY_FILE);
        const char *dirs[1] = {outdir};
        sweep_merge_info mi;
        if (sweep_merge(dirs, 1, sum, &mi, err, sizeof err)) {
            fprintf(stderr, "caopd sweep: the summary could not be written: %s\n", err);
            rc = 1;
        } else {
            merge_warnings("sweep", &mi);
            printf("summary: %s (%d of %d cells)\n", sum, mi.n_merged, mi.n_cells);
            free(mi.skipped);
        }
    } else if (!p.failed[JOB_CELL]) {
        char cdir[FILE_CAP];
        sweep_cell_run_dir(s, outdir, cell, cdir, sizeof cdir);
        printf("cell %d: %s; gather the cells with caopd merge %s\n", cell, cdir, outdir);
    }
    for (int k = 0; k < p.n_jobs; k++) {
        free(p.jobs[k].json);
        if (p.jobs[k].lock >= 0) close(p.jobs[k].lock); /* a base that never ran */
    }
    free(p.jobs);
    sweep_free(s);
    return rc;
}

/* ---- caopd merge --------------------------------------------------------------------------------
 */

static int usage_merge(void) {
    fprintf(stderr, "usage: caopd merge DIR [DIR...] [--out FILE]\n"
                    "  DIR         a sweep directory (holding sweep.json and cells/)\n"
                    "  --out FILE  the summary file [DIR/summary.h5; required with several DIRs]\n"
                    "Unfinished cells are left out with a warning. Layout: docs/sweep.md.\n");
    return 2;
}

int cli_merge(int argc, char **argv) {
    const char *out = NULL;
    const char **dirs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *dirs);
    int n = 0;
    if (!dirs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(dirs);
            usage_merge();
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "caopd merge: unexpected argument '%s'\n", a);
            free(dirs);
            return usage_merge();
        } else
            dirs[n++] = a;
    }
    if (n == 0 || (n > 1 && !out)) {
        if (n > 1)
            fprintf(stderr,
                    "caopd merge: %d sweep directories need --out FILE (where the summary goes)\n",
                    n);
        free(dirs);
        return n ? 2 : usage_merge();
    }
    char path[4200];
    snprintf(path, sizeof path, "%s", out ? out : "");
    if (!out) snprintf(path, sizeof path, "%s/%s", dirs[0], SWEEP_SUMMARY_FILE);
    char err[SWEEP_ERR_CAP];
    sweep_merge_info mi;
    int rc = 0;
    if (sweep_merge(dirs, n, path, &mi, err, sizeof err)) {
        fprintf(stderr, "caopd merge: %s\n", err);
        rc = 1;
    } else {
        merge_warnings("merge", &mi);
        if (mi.n_merged == 0) {
            fprintf(stderr, "caopd merge: no finished cell in %d cells; %s holds none\n",
                    mi.n_cells, path);
            rc = 1;
        } else {
            fprintf(stderr, "caopd merge: %d of %d cells into %s\n", mi.n_merged, mi.n_cells, path);
            printf("%s\n", path);
        }
        free(mi.skipped);
    }
    free(dirs);
    return rc;
}
