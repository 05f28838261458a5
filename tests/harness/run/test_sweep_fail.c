/* test_sweep_fail: a failing cell does not stop the others. A sweep of 4 tiny cells in which
 * two (a "base" of params that loads a checkpoint file that does not exist) fail at run time:
 * the other two finish, the exit status is 1, each failure is reported with the run's error
 * and its log path, the summary holds the finished cells and names the others, and `caopd
 * merge` does the same. Also: a cell whose lock another process holds is not run twice. */
#include <sys/file.h>

#include "harness/run/sweep.h"
#include "tests/harness/run/sweep_testutil.h"

int main(void) {
    make_tmpdir("test_sweep_fail");
    char spec[600], out[600];
    write_sweep("tf.json", "tf",
                "{\"seed\": [1, 2], \"params\": {\"base\": [{\"steps\": 6, \"batch\": 4, \"lr\": "
                "3e-3, \"warmup\": 1}, "
                "{\"checkpoint\": \"no-such-base.h5\"}]}}",
                spec, sizeof spec);
    snprintf(out, sizeof out, "%s/out", g_tmp);
    static const char *const names[4] = {"000_seed-1_base-steps-6-batch-4-lr-0.003-warmup-1",
                                         "001_seed-1_base-checkpoint-no-such-base.h5",
                                         "002_seed-2_base-steps-6-batch-4-lr-0.003-warmup-1",
                                         "003_seed-2_base-checkpoint-no-such-base.h5"};
    const char *list[] = {"sweep", spec, "--list", NULL};
    CHECK(exited(run_caopd(NULL, list), 0));
    char *o = last_out();
    for (int i = 0; i < 4; i++)
        CHECK_MSG(strstr(o, names[i]) != NULL, "cell name %s not in\n%s", names[i], o);
    free(o);

    const char *all[] = {"sweep", spec, "-j", "2", "--out", out, NULL};
    int st = run_caopd(NULL, all);
    o = last_out();
    char *e = last_err();
    CHECK_MSG(exited(st, 1), "a failed cell: exit status 1 (status %d)\n%s", st, e);
    CHECK_MSG(strstr(o, "sweep tf: 4 cells: 2 finished now, 0 finished before, 2 failed") != NULL,
              "%s", o);
    for (int i = 1; i < 4; i += 2) {
        char want[1400];
        snprintf(want, sizeof want, "FAILED %s: base.checkpoint: no-such-base.h5", names[i]);
        CHECK_MSG(strstr(o, want) != NULL, "expected '%s' in\n%s", want, o);
        snprintf(want, sizeof want, "log: %s/cells/%s/run.log", out, names[i]);
        CHECK_MSG(strstr(o, want) != NULL, "expected '%s' in\n%s", want, o);
        snprintf(want, sizeof want, "FAILED %s after", names[i]);
        CHECK_MSG(strstr(e, want) != NULL, "progress should report the failure: %s", e);
    }
    CHECK_MSG(strstr(o, "summary.h5 (2 of 4 cells)") != NULL, "%s", o);
    CHECK_MSG(strstr(e, "warning: 2 of 4 cells are not finished and are not in the summary") !=
                  NULL,
              "%s", e);
    CHECK_MSG(strstr(e, "/cells/001_seed-1_base-checkpoint-no-such-base.h5: unfinished") != NULL,
              "%s", e);
    free(o), free(e);
    for (int i = 0; i < 4; i++) {
        char d[900], err[1024];
        snprintf(d, sizeof d, "%s/cells/%s", out, names[i]);
        sweep_cell_status cs = SWEEP_CELL_ABSENT;
        CHECK_MSG(sweep_cell_state(d, &cs, NULL, NULL, err, sizeof err) == 0, "%s", err);
        CHECK_MSG(cs == (i % 2 ? SWEEP_CELL_PARTIAL : SWEEP_CELL_FINISHED), "cell %d state %d", i,
                  (int)cs);
    }
    char p[900];
    snprintf(p, sizeof p, "%s/summary.h5", out);
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    CHECK_MSG(ckpt_reader_open(&rd, p, CKPT_FORMAT_SWEEP_SUMMARY, 2, &ce) == CKPT_OK, "%s", ce.msg);
    if (rd) {
        int64_t n = -1;
        char *name = NULL;
        CHECK(ckpt_reader_attr_i64(rd, "", "n_cells", &n) == CKPT_OK && n == 2);
        CHECK(ckpt_reader_attr_str(rd, "cells/1", "name", &name) == CKPT_OK);
        CHECK_EQ_STR(name, names[2]);
        free(name);
        ckpt_reader_free(rd);
    }

    /* caopd merge: the same, with the warning */
    char sum2[700];
    snprintf(sum2, sizeof sum2, "%s/merged.h5", g_tmp);
    const char *merge[] = {"merge", out, "--out", sum2, NULL};
    st = run_caopd(NULL, merge);
    e = last_err();
    CHECK_MSG(exited(st, 0), "merge: %s", e);
    CHECK_MSG(strstr(e, "caopd merge: warning: 2 of 4 cells are not finished") &&
                  strstr(e, names[3]),
              "%s", e);
    CHECK_MSG(strstr(e, "caopd merge: 2 of 4 cells into ") != NULL, "%s", e);
    free(e);
    CHECK(file_size(sum2) > 0);
    /* merging something that is not a sweep directory */
    const char *bad[] = {"merge", g_tmp, "--out", sum2, NULL};
    st = run_caopd(NULL, bad);
    e = last_err();
    CHECK(exited(st, 1));
    CHECK_MSG(strstr(e, "is not a sweep directory of caopd sweep") != NULL, "%s", e);
    free(e);

    /* a cell another process is running (its lock is held): refused, not run twice */
    char lockp[900];
    snprintf(lockp, sizeof lockp, "%s/cells/%s/cell.lock", out, names[1]);
    int fd = open(lockp, O_RDWR | O_CREAT, 0666);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    const char *cell1[] = {"sweep", spec, "--cell", "1", "--out", out, NULL};
    st = run_caopd(NULL, cell1);
    o = last_out();
    CHECK(exited(st, 1));
    CHECK_MSG(strstr(o, "another process is running this cell") != NULL, "%s", o);
    free(o);
    close(fd);

    tmpdir_finish(g_tmp);
    return check_report("test_sweep_fail");
}
