/* test_run_diskfull: a full disk during a snapshot, simulated in-process with
 * setrlimit(RLIMIT_FSIZE) (SIGXFSZ ignored, so writes past the limit fail with EFBIG) from the
 * scheduler's step callback: the run stops with a message naming the file and the way out,
 * the previous checkpoint stays complete and loadable (no .tmp left), and once space is back
 * --resume finishes with results identical to an uninterrupted run. */
#include <sys/resource.h>

#include "harness/run/run.h"
#include "tests/harness/run/run_testutil.h"

#define LIMIT_BYTES (150 * 1024) /* a checkpoint of the tiny model is ~190 KB; results < 150 KB */

static struct rlimit g_saved;
static int g_lowered;

static void on_event(void *arg, const run_event *ev) {
    (void)arg;
    if (ev->kind == RUN_EVENT_STEP && ev->stage == 1 && ev->step == 1 && !g_lowered) {
        struct rlimit lo = g_saved;
        lo.rlim_cur = LIMIT_BYTES;
        CHECK(setrlimit(RLIMIT_FSIZE, &lo) == 0);
        g_lowered = 1;
    }
}

int main(void) {
    signal(SIGXFSZ, SIG_IGN);
    CHECK(getrlimit(RLIMIT_FSIZE, &g_saved) == 0);
    make_tmpdir("test_run_diskfull");
    char ref[700], dir[700], err[2048];
    snprintf(ref, sizeof ref, "%s/ref", g_tmp);
    snprintf(dir, sizeof dir, "%s/full", g_tmp);
    run_summary sum;
    run_opts plain = {0};
    CHECK_MSG(run_start(tiny_spec, ref, plain, &sum, err, sizeof err) == 0, "%s", err);

    run_opts o = {.on_event = on_event};
    int rc = run_start(tiny_spec, dir, o, &sum, err, sizeof err);
    CHECK(g_lowered);
    CHECK(rc == -1);
    CHECK_MSG(strstr(err, "writing a snapshot failed: ") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "/full/checkpoint.h5: writing ") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "File too large") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "the last complete checkpoint in") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "continue with `caopd run --resume ") != NULL, "%s", err);
    fprintf(stderr, "the run stopped with: %s\n", err);
    CHECK(setrlimit(RLIMIT_FSIZE, &g_saved) == 0);

    /* the previous checkpoint is complete and loadable, nothing half-written is left */
    char p[800];
    snprintf(p, sizeof p, "%s/checkpoint.h5.tmp", dir);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    ckpt_reader *r = NULL;
    ckpt_error e;
    CHECK_MSG(ckpt_reader_open(&r, p, CKPT_FORMAT_CHECKPOINT, 1, &e) == CKPT_OK, "%s", e.msg);
    int64_t stage = -1, step = -1;
    CHECK(r && ckpt_reader_attr_i64(r, "", "stage", &stage) == CKPT_OK);
    CHECK(r && ckpt_reader_attr_i64(r, "", "step", &step) == CKPT_OK);
    CHECK_MSG((stage == 1 && step == 0) || (stage == 0 && step == 4), "checkpoint at (%lld, %lld)",
              (long long)stage, (long long)step);
    ckpt_info info;
    CHECK(r && ckpt_reader_info(r, "student/wte", &info) == CKPT_OK && info.nelems == 99 * 16);
    ckpt_reader_free(r);

    /* space is back: resume finishes and equals the uninterrupted run */
    CHECK_MSG(run_resume(dir, plain, &sum, err, sizeof err) == 0, "%s", err);
    CHECK(sum.resumed == 1);
    char a[800], b[800];
    snprintf(a, sizeof a, "%s/results.h5", ref);
    snprintf(b, sizeof b, "%s/results.h5", dir);
    CHECK(cmp_files(a, b, CKPT_FORMAT_RESULTS) > 50);
    snprintf(a, sizeof a, "%s/checkpoint.h5", ref);
    snprintf(b, sizeof b, "%s/checkpoint.h5", dir);
    CHECK(cmp_files(a, b, CKPT_FORMAT_CHECKPOINT) > 20);
    tmpdir_finish(g_tmp);
    return check_report("test_run_diskfull");
}
