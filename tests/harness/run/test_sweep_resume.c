/* test_sweep_resume: `caopd sweep` as a process on 4 tiny cells (method x seed): --list; one
 * cell run alone (--cell) and killed with SIGKILL mid-stage (CAOPD_CRASH_AT), reported as
 * failed; the whole sweep with -j 2 then resumes that cell and runs the others, and the
 * resumed cell's results and checkpoint are identical to an uninterrupted run of its spec; a
 * second `caopd sweep` does no work; another sweep into the same directory is refused; a cell
 * out of range is refused; SLURM_ARRAY_TASK_ID runs exactly one cell with every core. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <sched.h>

#include "tests/harness/run/sweep_testutil.h"

static const char k_axes[] = "{\"method\": [\"caopd\", \"sdft\"], \"seed\": [1, 2]}";
static const char *const k_names[4] = {"000_method-caopd_seed-1", "001_method-caopd_seed-2",
                                       "002_method-sdft_seed-1", "003_method-sdft_seed-2"};

static int cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/* The "threads" of a cell's spec.json, -1 when unreadable. */
static int cell_threads(const char *cdir) {
    char p[900];
    snprintf(p, sizeof p, "%s/spec.json", cdir);
    char *t = slurp(p);
    const char *k = strstr(t, "\"threads\":");
    int n = k ? atoi(k + 10) : -1;
    free(t);
    return n;
}

int main(void) {
    make_tmpdir("test_sweep_resume");
    char spec[600], out[600], cdir[4][800];
    write_sweep("sweep.json", "ts", k_axes, spec, sizeof spec);
    snprintf(out, sizeof out, "%s/out", g_tmp);
    for (int i = 0; i < 4; i++)
        snprintf(cdir[i], sizeof cdir[i], "%s/cells/%s", out, k_names[i]);

    /* --list */
    const char *list[] = {"sweep", spec, "--list", NULL};
    int st = run_caopd(NULL, list);
    char *o = last_out();
    CHECK(exited(st, 0));
    const char *head = "4 cells (sweep ts; axes: method, seed)\n";
    CHECK_MSG(!strncmp(o, head, strlen(head)), "%s", o);
    CHECK_MSG(strstr(o, "\n1\t001_method-caopd_seed-2\tmethod=caopd seed=2\n") != NULL, "%s", o);
    CHECK_MSG(strstr(o, "\n3\t003_method-sdft_seed-2\tmethod=sdft seed=2\n") != NULL, "%s", o);
    free(o);
    CHECK(!path_exists(out)); /* --list writes nothing */

    /* cell 1 alone, killed after step 2 of stage 1 */
    const char *one[] = {"sweep", spec, "--cell", "1", "--out", out, NULL};
    st = run_caopd("1:2", one);
    o = last_out();
    CHECK_MSG(exited(st, 1), "a killed cell: exit status 1 (status %d)", st);
    CHECK_MSG(strstr(o, "FAILED 001_method-caopd_seed-2: killed by signal 9") != NULL, "%s", o);
    CHECK_MSG(strstr(o, "log: ") && strstr(o, "/cells/001_method-caopd_seed-2/run.log"), "%s", o);
    free(o);
    char p[4000]; /* cdir[i] with a variable i counts as the whole array for -Wformat-truncation */
    snprintf(p, sizeof p, "%s/checkpoint.h5", cdir[1]);
    CHECK_MSG(path_exists(p), "the killed cell keeps its last checkpoint");
    CHECK(!path_exists(cdir[0]) && !path_exists(cdir[2]));
    snprintf(p, sizeof p, "%s/summary.h5", out);
    CHECK_MSG(!path_exists(p), "--cell writes no summary");
    CHECK_EQ_INT(cell_threads(cdir[1]), cores()); /* --cell: every core */

    /* out of range */
    const char *bad[] = {"sweep", spec, "--cell", "7", "--out", out, NULL};
    st = run_caopd(NULL, bad);
    char *e = last_err();
    CHECK(exited(st, 2));
    CHECK_MSG(strstr(e, "cell 7 does not exist; the sweep has 4 cells, 0..3") != NULL, "%s", e);
    free(e);

    /* the whole sweep: cell 1 resumes, the others start */
    const char *all[] = {"sweep", spec, "-j", "2", "--out", out, NULL};
    st = run_caopd(NULL, all);
    o = last_out(), e = last_err();
    CHECK_MSG(exited(st, 0), "sweep: status %d\n%s\n%s", st, o, e);
    CHECK_MSG(strstr(e, "4 cells in ") &&
                  strstr(e, "0 already finished, 4 to run (1 to resume), 2 workers"),
              "%s", e);
    CHECK_MSG(strstr(e, "resuming 001_method-caopd_seed-2") != NULL, "%s", e);
    CHECK_MSG(strstr(e, "4/4 done, 0 running, 0 failed, 0 to go") != NULL, "%s", e);
    CHECK_MSG(strstr(o, "sweep ts: 4 cells: 4 finished now, 0 finished before, 0 failed") != NULL,
              "%s", o);
    CHECK_MSG(strstr(o, "summary.h5 (4 of 4 cells)") != NULL, "%s", o);
    free(o), free(e);
    snprintf(p, sizeof p, "%s/run.log", cdir[1]);
    char *log = slurp(p);
    /* from the stage-end checkpoint (1, 0), or from (0, 4) when the kill came before the I/O
       thread had published (1, 0) on a loaded machine: either way not from the start */
    CHECK_MSG(strstr(log, "caopd run: resuming at stage") != NULL,
              "cell 1 should resume from a checkpoint:\n%s", log);
    free(log);
    const int want_threads = cores() / 2 > 1 ? cores() / 2 : 1;
    for (int i = 0; i < 4; i++)
        if (i != 1) CHECK_EQ_INT(cell_threads(cdir[i]), want_threads);

    /* the resumed cell ends identical to an uninterrupted run of its spec */
    char ref[700], cspec[900];
    snprintf(ref, sizeof ref, "%s/ref", g_tmp);
    snprintf(cspec, sizeof cspec, "%s/spec.json", cdir[1]);
    const char *refrun[] = {"run", cspec, "--out", ref, NULL};
    CHECK(exited(run_caopd(NULL, refrun), 0));
    char a[900], b[900];
    snprintf(a, sizeof a, "%s/results.h5", ref);
    snprintf(b, sizeof b, "%s/results.h5", cdir[1]);
    CHECK_MSG(cmp_files(a, b, CKPT_FORMAT_RESULTS) > 20, "too few datasets compared");
    snprintf(a, sizeof a, "%s/checkpoint.h5", ref);
    snprintf(b, sizeof b, "%s/checkpoint.h5", cdir[1]);
    CHECK_MSG(cmp_files(a, b, CKPT_FORMAT_CHECKPOINT) > 10, "too few checkpoint datasets compared");

    /* again: nothing to do */
    long sizes[4][2];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/log.jsonl", cdir[i]);
        sizes[i][0] = file_size(p);
        snprintf(p, sizeof p, "%s/run.log", cdir[i]);
        sizes[i][1] = file_size(p);
        CHECK(sizes[i][0] > 0 && sizes[i][1] > 0);
    }
    st = run_caopd(NULL, all);
    o = last_out(), e = last_err();
    CHECK_MSG(exited(st, 0), "second sweep: status %d\n%s", st, e);
    CHECK_MSG(strstr(e, "4 already finished, 0 to run (0 to resume)") != NULL, "%s", e);
    CHECK_MSG(strstr(o, "0 finished now, 4 finished before, 0 failed") != NULL, "%s", o);
    free(o), free(e);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/log.jsonl", cdir[i]);
        CHECK_MSG(file_size(p) == sizes[i][0], "cell %d: log.jsonl changed: no run may start", i);
        snprintf(p, sizeof p, "%s/run.log", cdir[i]);
        CHECK_MSG(file_size(p) == sizes[i][1], "cell %d: run.log changed: no process may start", i);
    }

    /* another sweep into the same directory */
    char other[600];
    write_sweep("other.json", "ts", "{\"method\": [\"caopd\", \"sdft\"], \"seed\": [1, 3]}", other,
                sizeof other);
    snprintf(p, sizeof p, "%s/sweep.json", out);
    char *before = slurp(p);
    const char *diff[] = {"sweep", other, "--out", out, NULL};
    st = run_caopd(NULL, diff);
    e = last_err();
    CHECK(exited(st, 2));
    CHECK_MSG(strstr(e, "holds another sweep (its sweep.json differs from this spec)") &&
                  strstr(e, "--force"),
              "%s", e);
    free(e);
    char *after = slurp(p);
    CHECK_EQ_STR(after, before);
    free(before), free(after);

    /* a cluster array task: SLURM_ARRAY_TASK_ID picks the cell, every core, no summary */
    char out2[700];
    snprintf(out2, sizeof out2, "%s/out2", g_tmp);
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    const char *task[] = {"sweep", spec, "--out", out2, NULL};
    st = run_caopd(NULL, task);
    unsetenv("SLURM_ARRAY_TASK_ID");
    o = last_out(), e = last_err();
    CHECK_MSG(exited(st, 0), "array task: status %d\n%s", st, e);
    CHECK_MSG(strstr(e, "SLURM_ARRAY_TASK_ID=2: running cell 2 only") != NULL, "%s", e);
    CHECK_MSG(strstr(o, "cell 2: ") &&
                  strstr(o, "/cells/002_method-sdft_seed-1; gather the cells with caopd merge"),
              "%s", o);
    free(o), free(e);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/cells/%s/results.h5", out2, k_names[i]);
        CHECK_MSG(path_exists(p) == (i == 2), "cell %d of the array task", i);
    }
    snprintf(p, sizeof p, "%s/cells/%s", out2, k_names[2]);
    CHECK_EQ_INT(cell_threads(p), cores());
    /* its results equal the same cell of the pool (threads aside, the run is the same) */
    if (cores() == cell_threads(cdir[2])) {
        snprintf(a, sizeof a, "%s/results.h5", cdir[2]);
        snprintf(b, sizeof b, "%s/cells/%s/results.h5", out2, k_names[2]);
        CHECK(cmp_files(a, b, CKPT_FORMAT_RESULTS) > 20);
    }

    tmpdir_finish(g_tmp);
    return check_report("test_sweep_resume");
}
