/* test_ckpt_atomic: the commit protocol. Commit replaces the file; abort, free without commit,
 * a failed write and a process killed before commit all leave the previous file byte for byte;
 * a stale "<path>.tmp" from a crash is cleaned up; and a writer killed at random moments while
 * committing again and again always leaves a complete, consistent file. */
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/checkpoints/ckpt_testutil.h"

static void tmp_of(char *buf, size_t cap, const char *path) {
    snprintf(buf, cap, "%s.tmp", path);
}

static void test_commit_and_abort(void) {
    char path[600], tmp[700], copy[600];
    tu_path(path, sizeof path, "ckpt.h5");
    tu_path(copy, sizeof copy, "ckpt_copy.h5");
    tmp_of(tmp, sizeof tmp, path);
    CHECK_EQ_INT(tu_write_small(path, 1), CKPT_OK);
    CHECK(tu_check_small(path, 1));
    CHECK_EQ_INT(tu_write_small(path, 2), CKPT_OK); /* replaces */
    CHECK(tu_check_small(path, 2));
    CHECK(!tu_exists(tmp));
    size_t n = 0;
    unsigned char *b = tu_slurp(path, &n);
    CHECK(b && tu_write_bytes(copy, b, n) == 0);
    free(b);

    /* Abort: untouched, no tmp; the writer is finished. */
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    float v[12] = {0};
    int64_t d[2] = {3, 4};
    CHECK_EQ_INT(ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 2, d, v), CKPT_OK);
    CHECK(tu_same_bytes(path, copy)); /* nothing reaches <path> before commit */
    CHECK_EQ_INT(ckpt_writer_abort(w), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_abort(w), CKPT_OK); /* twice is fine */
    CHECK_EQ_INT(ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 2, d, v), CKPT_ERR_STATE);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "already aborted");
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_ERR_STATE);
    ckpt_writer_free(w);
    CHECK(tu_same_bytes(path, copy));
    CHECK(!tu_exists(tmp));

    /* Free without commit = abort. */
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 2, d, v), CKPT_OK);
    ckpt_writer_free(w);
    CHECK(tu_same_bytes(path, copy));
    CHECK(!tu_exists(tmp));

    /* A failed (sticky) write: commit fails, old file untouched. */
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 2, d, v), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "bad//path", CKPT_DTYPE_F32, 2, d, v), CKPT_ERR_ARG);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_ERR_ARG);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "bad//path");
    ckpt_writer_free(w);
    CHECK(tu_same_bytes(path, copy));
    CHECK(!tu_exists(tmp));

    /* Commit, then abort/commit again: the committed file stays. */
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_ERR_STATE);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "already committed");
    CHECK_EQ_INT(ckpt_writer_abort(w), CKPT_OK);
    ckpt_writer_free(w);
    CHECK(tu_exists(path));
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    ckpt_list l = {0};
    CHECK_EQ_INT(ckpt_reader_list(r, "", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, 0); /* the empty file committed last */
    ckpt_list_free(&l);
    ckpt_reader_free(r);
}

/* A child that writes and is killed before committing (SIGKILL: no atexit, no cleanup). */
static void test_killed_before_commit(void) {
    char path[600], tmp[700], copy[600];
    tu_path(path, sizeof path, "killed.h5");
    tu_path(copy, sizeof copy, "killed_copy.h5");
    tmp_of(tmp, sizeof tmp, path);
    CHECK_EQ_INT(tu_write_small(path, 7), CKPT_OK);
    size_t n = 0;
    unsigned char *b = tu_slurp(path, &n);
    CHECK(b && tu_write_bytes(copy, b, n) == 0);
    free(b);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        ckpt_writer *w = NULL;
        if (ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL)) _exit(3);
        static float big[1 << 18];
        int64_t d[1] = {1 << 18};
        ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 1, d, big);
        /* A crash in the middle of writing the temporary file, simulated by leaving a partial
         * one behind. */
        tu_write_bytes(tmp, "\x89HDF\r\n\x1a\n partial", 17);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(tu_same_bytes(path, copy));
    CHECK(tu_check_small(path, 7));
    CHECK(tu_exists(tmp)); /* the crash's leftover */
    /* The next writer removes it and commits normally. */
    CHECK_EQ_INT(tu_write_small(path, 8), CKPT_OK);
    CHECK(tu_check_small(path, 8));
    CHECK(!tu_exists(tmp));
}

/* A child commits snapshot after snapshot (each "w" = step + i, "step" = step); the parent
 * kills it at random moments. Whatever the moment, <path> must be a complete file whose
 * contents agree with its own step. */
#define STRESS_N (1 << 18) /* 1 MiB of float32 per snapshot */

static int consistent(const char *path, int64_t *step_out) {
    ckpt_reader *r = NULL;
    ckpt_error err;
    if (ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, &err)) {
        fprintf(stderr, "consistent: %s\n", err.msg);
        return 0;
    }
    static float v[STRESS_N];
    int64_t step = -1;
    int ok = ckpt_reader_read(r, "step", CKPT_DTYPE_I64, &step, 1) == CKPT_OK &&
             ckpt_reader_read(r, "w", CKPT_DTYPE_F32, v, STRESS_N) == CKPT_OK;
    for (size_t i = 0; ok && i < STRESS_N; i++)
        ok = v[i] == (float)(step + (int64_t)(i % 1000));
    ckpt_reader_free(r);
    *step_out = step;
    return ok;
}

static int write_step(const char *path, int64_t step, float *v) {
    for (size_t i = 0; i < STRESS_N; i++)
        v[i] = (float)(step + (int64_t)(i % 1000));
    /* Contiguous, uncompressed: the commit's file write dominates each cycle, so the kills
     * land in it often. */
    ckpt_write_opts o = ckpt_write_opts_default();
    o.compress_min_bytes = SIZE_MAX;
    ckpt_writer *w = NULL;
    int rc = ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, &o, NULL);
    if (rc) return rc;
    int64_t d[1] = {STRESS_N};
    ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 1, d, v);
    ckpt_writer_write(w, "step", CKPT_DTYPE_I64, 0, NULL, &step);
    rc = ckpt_writer_commit(w);
    ckpt_writer_free(w);
    return rc;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_killed_at_random_moments(void) {
    char path[600], tmp[700];
    tu_path(path, sizeof path, "stress.h5");
    tmp_of(tmp, sizeof tmp, path);
    static float v[STRESS_N];
    CHECK_EQ_INT(write_step(path, 0, v), CKPT_OK);
    int64_t last = 0;
    int mid_commit = 0; /* rounds whose kill left a temporary file: killed inside a commit */
    unsigned seed = 12345;
    for (int round = 0; round < 24; round++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            for (int64_t s = last + 1;; s++) {
                if (write_step(path, s, v)) _exit(3);
                if (write(fds[1], "c", 1) != 1) _exit(4); /* one byte per commit */
            }
        }
        close(fds[1]);
        /* Time one whole cycle (so the test adapts to slow machines and sanitizers), then kill
         * at a random moment within the next one and a half. */
        char c;
        double t0 = 0, cycle = 0;
        if (read(fds[0], &c, 1) == 1) t0 = now_s();
        if (read(fds[0], &c, 1) == 1) cycle = now_s() - t0;
        seed = seed * 1103515245u + 12345u;
        double delay = cycle * 1.5 * (double)((seed >> 8) % 1000) / 1000.0;
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        close(fds[0]);
        CHECK_MSG(WIFSIGNALED(status), "round %d: the writer failed instead of being killed",
                  round);
        if (tu_exists(tmp)) mid_commit++;
        int64_t step = -1;
        CHECK_MSG(consistent(path, &step), "round %d: %s is not a complete snapshot", round, path);
        CHECK_MSG(step >= last + 2,
                  "round %d: step %lld, but two commits were reported after "
                  "%lld",
                  round, (long long)step, (long long)last);
        last = step;
    }
    fprintf(stderr, "test_ckpt_atomic: %d of 24 kills landed inside a commit\n", mid_commit);
    CHECK_EQ_INT(write_step(path, last + 1, v), CKPT_OK);
    int64_t step = -1;
    CHECK(consistent(path, &step) && step == last + 1);
    CHECK(!tu_exists(tmp));
}

int main(void) {
    test_commit_and_abort();
    test_killed_before_commit();
    test_killed_at_random_moments();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_atomic");
}
