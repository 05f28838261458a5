/* test_ckpt_diskfull: a full disk, simulated with setrlimit(RLIMIT_FSIZE) (SIGXFSZ ignored, so
 * writes beyond the limit fail with EFBIG), during a synchronous checkpoint, a queued snapshot
 * and a results append. Each must fail with a clear message naming the file, leave the previous
 * file byte for byte and loadable, and leave no "<path>.tmp"; once space is back, the same
 * process writes the next checkpoint normally. */
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>

#include "tests/checkpoints/ckpt_testutil.h"

#define BIG_N (1 << 18) /* 1 MiB of incompressible float32 */
#define LIMIT_BYTES (64 * 1024)

static float g_big[BIG_N];

static void fill_random(void) {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BIG_N; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        g_big[i] = (float)x / 4294967296.0f;
    }
}

/* ckpt_snapshot_write, then free (the snapshot is not consumed by a synchronous write). */
static int write_and_free(ckpt_snapshot *s, ckpt_error *err) {
    int rc = ckpt_snapshot_write(s, err);
    ckpt_snapshot_free(s);
    return rc;
}

static struct rlimit g_saved;

static int lower_limit(void) {
    if (getrlimit(RLIMIT_FSIZE, &g_saved) != 0) return -1;
    struct rlimit lo = g_saved;
    lo.rlim_cur = LIMIT_BYTES;
    return setrlimit(RLIMIT_FSIZE, &lo);
}

static int restore_limit(void) {
    return setrlimit(RLIMIT_FSIZE, &g_saved);
}

static void check_full_disk_message(const char *msg, const char *path) {
    CHECK_CONTAINS(msg, path);
    CHECK_CONTAINS(msg, "File too large (errno 27)");
    CHECK_CONTAINS(msg, "free disk space");
    CHECK_CONTAINS(msg, "itself is unchanged");
}

static ckpt_snapshot *big_snapshot(const char *path, ckpt_mode mode) {
    ckpt_snapshot *s = NULL;
    if (ckpt_snapshot_new(&s, path,
                          mode == CKPT_MODE_APPEND ? CKPT_FORMAT_RESULTS : CKPT_FORMAT_CHECKPOINT,
                          1, mode, NULL, NULL))
        return NULL;
    int64_t d[1] = {BIG_N};
    ckpt_snapshot_add(s, mode == CKPT_MODE_APPEND ? "stages/2/samples" : "w", CKPT_DTYPE_F32, 1, d,
                      g_big);
    return s;
}

int main(void) {
    signal(SIGXFSZ, SIG_IGN);
    fill_random();
    char path[600], tmp[700], copy[600], res[600], rtmp[700], rcopy[600];
    tu_path(path, sizeof path, "ckpt.h5");
    tu_path(copy, sizeof copy, "ckpt_before.h5");
    tu_path(res, sizeof res, "results.h5");
    tu_path(rcopy, sizeof rcopy, "results_before.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(rtmp, sizeof rtmp, "%s.tmp", res);

    /* The previous checkpoint and a one-stage results file, written with space to spare. */
    CHECK_EQ_INT(tu_write_small(path, 3), CKPT_OK);
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, res, CKPT_FORMAT_RESULTS, 1, NULL, NULL), CKPT_OK);
    double conf[4] = {0.1, 0.2, 0.3, 0.4};
    int64_t d4[1] = {4};
    CHECK_EQ_INT(ckpt_writer_write(w, "stages/1/confidence", CKPT_DTYPE_F64, 1, d4, conf), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);
    size_t n = 0;
    unsigned char *b = tu_slurp(path, &n);
    CHECK(b && n < LIMIT_BYTES && tu_write_bytes(copy, b, n) == 0);
    free(b);
    b = tu_slurp(res, &n);
    CHECK(b && n < LIMIT_BYTES && tu_write_bytes(rcopy, b, n) == 0);
    free(b);

    CHECK(lower_limit() == 0);

    /* 1. Synchronous checkpoint. */
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (w) {
        int64_t d[1] = {BIG_N};
        CHECK_EQ_INT(ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 1, d, g_big), CKPT_OK);
        CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_ERR_IO);
        check_full_disk_message(ckpt_writer_errmsg(w), path);
        ckpt_writer_free(w);
    }
    CHECK(tu_same_bytes(path, copy));
    CHECK(tu_check_small(path, 3));
    CHECK(!tu_exists(tmp));

    /* 2. The same through the I/O thread. */
    ckpt_io *io = NULL;
    CHECK_EQ_INT(ckpt_io_new(&io, 0, NULL), CKPT_OK);
    if (io) {
        CHECK_EQ_INT(ckpt_io_submit_snapshot(io, big_snapshot(path, CKPT_MODE_CREATE)), CKPT_OK);
        CHECK_EQ_INT(ckpt_io_drain(io), CKPT_ERR_IO);
        check_full_disk_message(ckpt_io_errmsg(io), path);
    }
    CHECK(tu_same_bytes(path, copy));
    CHECK(tu_check_small(path, 3));
    CHECK(!tu_exists(tmp));

    /* 3. A results append. */
    ckpt_error err;
    CHECK_EQ_INT(write_and_free(big_snapshot(res, CKPT_MODE_APPEND), &err), CKPT_ERR_IO);
    check_full_disk_message(err.msg, res);
    CHECK(tu_same_bytes(res, rcopy));
    CHECK(!tu_exists(rtmp));
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, res, CKPT_FORMAT_RESULTS, 1, &err), CKPT_OK);
    double got[4] = {0};
    if (r)
        CHECK_EQ_INT(ckpt_reader_read(r, "stages/1/confidence", CKPT_DTYPE_F64, got, 4), CKPT_OK);
    CHECK(got[3] == 0.4);
    ckpt_reader_free(r);

    /* Space is back: the same process writes the next checkpoint (no HDF5 state left over). */
    CHECK(restore_limit() == 0);
    if (io) {
        CHECK_EQ_INT(ckpt_io_submit_snapshot(io, big_snapshot(path, CKPT_MODE_CREATE)), CKPT_OK);
        CHECK_EQ_INT(ckpt_io_drain(io), CKPT_OK);
        ckpt_io_free(io);
    }
    r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, &err), CKPT_OK);
    if (r) {
        static float back[BIG_N];
        CHECK_EQ_INT(ckpt_reader_read(r, "w", CKPT_DTYPE_F32, back, BIG_N), CKPT_OK);
        CHECK(memcmp(back, g_big, sizeof back) == 0);
        ckpt_reader_free(r);
    }
    CHECK_EQ_INT(write_and_free(big_snapshot(res, CKPT_MODE_APPEND), &err), CKPT_OK);
    CHECK(!tu_exists(tmp) && !tu_exists(rtmp));
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_diskfull");
}
