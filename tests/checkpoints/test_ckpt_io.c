/* test_ckpt_io: the I/O thread. Many snapshot jobs and plain jobs from two submitting threads
 * run once each, in FIFO order per submitter, all HDF5 work on the one I/O thread; the bounded
 * queue blocks submitters; the first failure is reported by drain with its message and a count,
 * later jobs still run; a snapshot whose building failed is refused; free runs what is queued. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "tests/checkpoints/ckpt_testutil.h"

/* ---- plain jobs ----------------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int order[4096]; /* job ids in the order they ran */
    int n;
    pthread_t thread; /* the thread that ran the jobs */
    int threads_seen; /* 1 while every job ran on the same thread */
    int freed;        /* free_arg calls */
} log_t;

static log_t g_log = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0, 1, 0};

typedef struct {
    int id;
    int fail; /* return this status (0: succeed) */
    int sleep_ms;
} job_arg;

static int log_job(void *p, ckpt_error *err) {
    job_arg *a = p;
    if (a->sleep_ms) {
        struct timespec ts = {0, a->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&g_log.mu);
    if (g_log.n == 0)
        g_log.thread = pthread_self();
    else if (!pthread_equal(g_log.thread, pthread_self()))
        g_log.threads_seen = 0;
    if (g_log.n < 4096) g_log.order[g_log.n++] = a->id;
    pthread_mutex_unlock(&g_log.mu);
    if (a->fail) snprintf(err->msg, sizeof err->msg, "job %d failed on purpose", a->id);
    return a->fail;
}

static void free_job(void *p) {
    pthread_mutex_lock(&g_log.mu);
    g_log.freed++;
    pthread_mutex_unlock(&g_log.mu);
    free(p);
}

static job_arg *new_arg(int id, int fail, int sleep_ms) {
    job_arg *a = malloc(sizeof *a);
    a->id = id;
    a->fail = fail;
    a->sleep_ms = sleep_ms;
    return a;
}

static void reset_log(void) {
    pthread_mutex_lock(&g_log.mu);
    g_log.n = 0;
    g_log.threads_seen = 1;
    g_log.freed = 0;
    pthread_mutex_unlock(&g_log.mu);
}

/* ---- snapshot jobs from two threads --------------------------------------------------------- */

#define PER_THREAD 60
#define SNAP_N 2000

typedef struct {
    ckpt_io *io;
    int base;     /* job ids base .. base + PER_THREAD - 1 */
    int failures; /* submit failures */
} submitter;

static void *submit_many(void *p) {
    submitter *sb = p;
    char path[600], name[64];
    for (int k = 0; k < PER_THREAD; k++) {
        int id = sb->base + k;
        if (k % 3 == 0) {
            if (ckpt_io_submit(sb->io, log_job, new_arg(id, 0, 0), free_job)) sb->failures++;
            continue;
        }
        /* One file per job; "w" = id + i, owned by the snapshot. */
        snprintf(name, sizeof name, "snap_%d.h5", id);
        tu_path(path, sizeof path, name);
        ckpt_snapshot *s = NULL;
        if (ckpt_snapshot_new(&s, path, CKPT_FORMAT_CHECKPOINT, 1, CKPT_MODE_CREATE, NULL, NULL)) {
            sb->failures++;
            continue;
        }
        float *w = malloc(SNAP_N * sizeof *w);
        for (int i = 0; i < SNAP_N; i++)
            w[i] = (float)(id + i);
        int64_t d[1] = {SNAP_N}, step = id;
        int rc = ckpt_snapshot_add_owned(s, "model/w", CKPT_DTYPE_F32, 1, d, w, NULL);
        rc = rc ? rc : ckpt_snapshot_add(s, "step", CKPT_DTYPE_I64, 0, NULL, &step);
        rc = rc ? rc : ckpt_snapshot_attr_i64(s, "model", "id", id);
        rc = rc ? rc : ckpt_snapshot_attr_str(s, "", "note", "from a submitter thread");
        if (rc || ckpt_io_submit_snapshot(sb->io, s)) sb->failures++;
    }
    return NULL;
}

static void test_many_jobs_two_threads(void) {
    ckpt_io *io = NULL;
    ckpt_error err;
    CHECK_EQ_INT(ckpt_io_new(&io, 3, &err), CKPT_OK);
    if (!io) return;
    reset_log();
    submitter a = {io, 0, 0}, b = {io, 1000, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, submit_many, &a);
    pthread_create(&tb, NULL, submit_many, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ_INT(a.failures + b.failures, 0);
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_OK);
    CHECK_EQ_STR(ckpt_io_errmsg(io), "");

    /* Plain jobs: each ran once, on one thread (not a submitter), FIFO per submitter. */
    pthread_mutex_lock(&g_log.mu);
    CHECK_EQ_INT(g_log.n, 2 * PER_THREAD / 3);
    CHECK_EQ_INT(g_log.freed, 2 * PER_THREAD / 3);
    CHECK(g_log.threads_seen);
    CHECK(!pthread_equal(g_log.thread, pthread_self()));
    int last_a = -1, last_b = -1;
    for (int i = 0; i < g_log.n; i++) {
        int id = g_log.order[i];
        int *last = id < 1000 ? &last_a : &last_b;
        CHECK_MSG(id > *last, "job %d ran after job %d", id, *last);
        *last = id;
    }
    pthread_mutex_unlock(&g_log.mu);

    /* Snapshots: every file complete with its own contents, no temporary left. */
    char path[600], name[64];
    static float got[SNAP_N];
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < PER_THREAD; k++) {
            if (k % 3 == 0) continue;
            int id = t * 1000 + k;
            snprintf(name, sizeof name, "snap_%d.h5", id);
            tu_path(path, sizeof path, name);
            ckpt_reader *r = NULL;
            CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, &err), CKPT_OK);
            if (!r) continue;
            int64_t step = -1, attr = -1;
            CHECK_EQ_INT(ckpt_reader_read(r, "model/w", CKPT_DTYPE_F32, got, SNAP_N), CKPT_OK);
            CHECK_EQ_INT(ckpt_reader_read(r, "step", CKPT_DTYPE_I64, &step, 1), CKPT_OK);
            CHECK_EQ_INT(ckpt_reader_attr_i64(r, "model", "id", &attr), CKPT_OK);
            CHECK_EQ_INT(step, id);
            CHECK_EQ_INT(attr, id);
            CHECK(got[0] == (float)id && got[SNAP_N - 1] == (float)(id + SNAP_N - 1));
            ckpt_reader_free(r);
            snprintf(name, sizeof name, "snap_%d.h5.tmp", id);
            tu_path(path, sizeof path, name);
            CHECK(!tu_exists(path));
        }
    }
    ckpt_io_free(io);
}

static void test_error_propagation(void) {
    ckpt_io *io = NULL;
    CHECK_EQ_INT(ckpt_io_new(&io, 0, NULL), CKPT_OK);
    if (!io) return;
    reset_log();
    CHECK_EQ_INT(ckpt_io_status(io), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(1, 0, 0), free_job), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(2, CKPT_ERR_IO, 0), free_job), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(3, 0, 0), free_job), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(4, CKPT_ERR_HDF5, 0), free_job), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(5, CKPT_ERR_FORMAT, 0), free_job), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(6, 0, 0), free_job), CKPT_OK);
    /* A snapshot into a missing directory fails on the I/O thread with the writer's message. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/ckpt.h5", tu_dir());
    ckpt_snapshot *s = NULL;
    CHECK_EQ_INT(
        ckpt_snapshot_new(&s, bad, CKPT_FORMAT_CHECKPOINT, 1, CKPT_MODE_CREATE, NULL, NULL),
        CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit_snapshot(io, s), CKPT_OK);
    /* The first failure, with a count of the others; later jobs still ran. */
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_ERR_IO);
    CHECK_EQ_STR(ckpt_io_errmsg(io), "job 2 failed on purpose (and 3 later jobs failed too)");
    pthread_mutex_lock(&g_log.mu);
    CHECK_EQ_INT(g_log.n, 6);
    CHECK_EQ_INT(g_log.freed, 6);
    pthread_mutex_unlock(&g_log.mu);
    /* Drain forgot it. */
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_OK);
    CHECK_EQ_STR(ckpt_io_errmsg(io), "");

    /* Only the snapshot fails now: its message names the file. */
    CHECK_EQ_INT(
        ckpt_snapshot_new(&s, bad, CKPT_FORMAT_CHECKPOINT, 1, CKPT_MODE_CREATE, NULL, NULL),
        CKPT_OK);
    CHECK_EQ_INT(ckpt_io_submit_snapshot(io, s), CKPT_OK);
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_ERR_IO);
    CHECK_CONTAINS(ckpt_io_errmsg(io), "ckpt.h5: cannot write in the directory");

    /* status peeks without forgetting. */
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(7, CKPT_ERR_STATE, 0), free_job), CKPT_OK);
    while (ckpt_io_status(io) == CKPT_OK) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ_INT(ckpt_io_status(io), CKPT_ERR_STATE);
    CHECK_EQ_STR(ckpt_io_errmsg(io), "job 7 failed on purpose");
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_ERR_STATE);
    CHECK_EQ_INT(ckpt_io_status(io), CKPT_OK);

    /* A snapshot whose building failed is refused at submit and reported by drain. */
    char ok[600];
    tu_path(ok, sizeof ok, "refused.h5");
    CHECK_EQ_INT(ckpt_snapshot_new(&s, ok, CKPT_FORMAT_CHECKPOINT, 1, CKPT_MODE_CREATE, NULL, NULL),
                 CKPT_OK);
    int64_t d[1] = {-1};
    double x = 0;
    CHECK_EQ_INT(ckpt_snapshot_add(s, "x", CKPT_DTYPE_F64, 1, d, &x), CKPT_ERR_ARG);
    CHECK_CONTAINS(ckpt_snapshot_errmsg(s), "dims[0] = -1 is negative");
    CHECK_EQ_INT(ckpt_snapshot_add(s, "y", CKPT_DTYPE_F64, 0, NULL, &x), CKPT_ERR_ARG); /* sticky */
    double *owned = malloc(sizeof *owned);
    CHECK_EQ_INT(ckpt_snapshot_add_owned(s, "z", CKPT_DTYPE_F64, 0, NULL, owned, NULL),
                 CKPT_ERR_ARG); /* freed, not leaked (ASan checks) */
    ckpt_error err;
    CHECK_EQ_INT(ckpt_snapshot_write(s, &err), CKPT_ERR_ARG);
    CHECK_CONTAINS(err.msg, "(the snapshot was not written)");
    CHECK_EQ_INT(ckpt_io_submit_snapshot(io, s), CKPT_ERR_ARG);
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_ERR_ARG);
    CHECK_CONTAINS(ckpt_io_errmsg(io), "refused.h5: dataset 'x': dims[0] = -1 is negative (the "
                                       "snapshot was not written)");
    CHECK(!tu_exists(ok));
    CHECK_EQ_INT(ckpt_io_submit(io, NULL, new_arg(8, 0, 0), free_job), CKPT_ERR_ARG);
    CHECK_EQ_INT(ckpt_io_drain(io), CKPT_ERR_ARG);
    ckpt_io_free(io);
}

/* max_pending 1: while a slow job runs and one waits, the next submit blocks. */
typedef struct {
    ckpt_io *io;
    atomic_int done;
} blocker;

static void *third_submit(void *p) {
    blocker *b = p;
    ckpt_io_submit(b->io, log_job, new_arg(3, 0, 0), free_job);
    atomic_store(&b->done, 1);
    return NULL;
}

static void test_backpressure_and_free(void) {
    ckpt_io *io = NULL;
    CHECK_EQ_INT(ckpt_io_new(&io, 1, NULL), CKPT_OK);
    if (!io) return;
    reset_log();
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(1, 0, 150), free_job), CKPT_OK);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL); /* job 1 is running */
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(2, 0, 0), free_job), CKPT_OK);
    blocker b;
    b.io = io;
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, third_submit, &b);
    nanosleep(&ts, NULL);
    CHECK_MSG(!atomic_load(&b.done), "the third submit should block while the queue is full");
    pthread_join(t, NULL);
    CHECK(atomic_load(&b.done));
    /* free runs what is queued, then stops. */
    CHECK_EQ_INT(ckpt_io_submit(io, log_job, new_arg(4, 0, 30), free_job), CKPT_OK);
    ckpt_io_free(io);
    pthread_mutex_lock(&g_log.mu);
    CHECK_EQ_INT(g_log.n, 4);
    CHECK_EQ_INT(g_log.freed, 4);
    for (int i = 0; i < g_log.n; i++)
        CHECK_EQ_INT(g_log.order[i], i + 1);
    pthread_mutex_unlock(&g_log.mu);
    ckpt_io_free(NULL);
}

int main(void) {
    tu_dir(); /* before any thread uses it */
    test_many_jobs_two_threads();
    test_error_propagation();
    test_backpressure_and_free();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_io");
}
