/* test_sweep_shared_run: shared training ("share_training", the default) with processes of
 * build/caopd on tiny cells. Cells that differ only in eval.ood_severities (method x
 * ood_severity 1..2) train once per method in OUT/shared/<name>, which evaluates both
 * severities; each cell's summary entry equals, dataset for dataset, the same cell run on its
 * own ("share_training": false) and names its own splits only; a re-run starts nothing; an
 * array task (--cell) runs its shared run and a second one reuses it; a shared run that fails
 * fails its cells. */
#include <dirent.h>

#include "harness/run/sweep.h"
#include "tests/harness/run/sweep_testutil.h"

static const char k_exp[] =
    "{\"format\": \"caopd-experiment\", \"version\": 1, \"name\": \"sr\", \"seed\": 3, "
    "\"threads\": 1,\n"
    " \"model\": {\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2},\n"
    " \"base\": {\"steps\": 3, \"batch\": 4, \"lr\": 3e-3, \"warmup\": 1},\n"
    " \"defaults\": {\"steps\": 2, \"batch\": 2, \"k\": 2, \"max_new\": 24, \"lr\": 1e-3, "
    "\"warmup\": 1},\n"
    " \"stages\": [{\"domain\": \"add\"}, {\"domain\": \"rev\"}],\n"
    " \"eval\": {\"n\": 6, \"max_new\": 30, \"ood_kinds\": [\"ood_length\"], \"ood_severities\": "
    "[1]},\n"
    " \"snapshots\": {\"every_steps\": 2}, \"log\": {\"every_steps\": 100}}";

static const char k_axes[] = "{\"method\": [\"caopd\", \"sdft\"], \"ood_severity\": [1, 2]}";

static void write_spec(const char *file, const char *keys, char *path, size_t len) {
    snprintf(path, len, "%s/%s", g_tmp, file);
    char text[4096];
    snprintf(
        text, sizeof text,
        "{\"format\": \"caopd-sweep\", \"version\": 1, \"name\": \"sr\",%s\n \"experiment\": %s,\n"
        " \"axes\": %s}\n",
        keys, k_exp, k_axes);
    write_file(path, text, strlen(text));
}

static char g_spec[600], g_spec_own[600], g_shared[600], g_own[600];

/* The library's view: 2 shared runs of 2 cells each, named after their first cells, evaluating
 * the union of the severities; a cell's run directory; no sharing with the key false, nor
 * between cells that differ in more than the severities. */
static void test_grouping(void) {
    write_spec("shared.json", "", g_spec, sizeof g_spec);
    write_spec("own.json", " \"share_training\": false,", g_spec_own, sizeof g_spec_own);
    sweep *s = NULL, *o = NULL;
    char err[SWEEP_ERR_CAP];
    CHECK_MSG(sweep_load(g_spec, &s, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(sweep_load(g_spec_own, &o, err, sizeof err) == 0, "%s", err);
    if (!s || !o) return;
    CHECK(sweep_share_training(s) == 1 && sweep_share_training(o) == 0);
    CHECK_EQ_INT(sweep_n_shared(s), 2);
    CHECK_EQ_INT(sweep_n_shared(o), 0);
    CHECK_EQ_STR(sweep_shared_name(s, 0), "000_method-caopd");
    CHECK_EQ_STR(sweep_shared_name(s, 1), "002_method-sdft");
    CHECK(sweep_shared_name(s, 2) == NULL);
    static const int want[4] = {0, 0, 1, 1};
    for (int c = 0; c < 4; c++) {
        CHECK_EQ_INT(sweep_cell_shared(s, c), want[c]);
        CHECK_EQ_INT(sweep_cell_shared(o, c), -1);
    }
    char *j = NULL;
    CHECK(sweep_shared_json(s, 1, 1, &j) == 0);
    CHECK_MSG(j && strstr(j, "\"ood_severities\":\t[1, 2]") && strstr(j, "\"method\":\t\"sdft\""),
              "%s", j ? j : "");
    free(j);
    char dir[700];
    CHECK(sweep_cell_run_dir(s, "OUT", 3, dir, sizeof dir) == 0);
    CHECK_EQ_STR(dir, "OUT/shared/002_method-sdft");
    CHECK(sweep_cell_run_dir(o, "OUT", 3, dir, sizeof dir) == 0);
    CHECK_EQ_STR(dir, "OUT/cells/003_method-sdft_sev-2");
    sweep_free(s), sweep_free(o);

    /* a params axis on eval.ood_severities groups too; one on eval.n does not */
    char text[4096], path[600];
    snprintf(path, sizeof path, "%s/params.json", g_tmp);
    snprintf(
        text, sizeof text,
        "{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": %s, \"axes\": {\"params\": "
        "{\"eval.n\": [4, 6], \"eval.ood_severities\": [[1], [2, 3]]}}}",
        k_exp);
    write_file(path, text, strlen(text));
    CHECK_MSG(sweep_load(path, &s, err, sizeof err) == 0, "%s", err);
    if (!s) return;
    CHECK_EQ_INT(sweep_n_shared(s), 2);
    CHECK_EQ_STR(sweep_shared_name(s, 0), "000_eval.n-4");
    CHECK(sweep_shared_json(s, 0, 0, &j) == 0);
    CHECK_MSG(j && strstr(j, "\"ood_severities\":\t[1, 2, 3]"), "%s", j ? j : "");
    free(j);
    sweep_free(s);
}

/* Every summary dataset of cell k in two summaries (metrics of every split, both readouts). */
static void same_summary_cell(const char *sum_a, const char *sum_b, int k) {
    ckpt_reader *a = NULL, *b = NULL;
    ckpt_error ea, eb;
    CHECK_MSG(ckpt_reader_open(&a, sum_a, "caopd-sweep-summary", 2, &ea) == CKPT_OK, "%s", ea.msg);
    CHECK_MSG(ckpt_reader_open(&b, sum_b, "caopd-sweep-summary", 2, &eb) == CKPT_OK, "%s", eb.msg);
    if (a && b) {
        char g[64];
        snprintf(g, sizeof g, "cells/%d/metrics", k);
        g_cmp_objects = 0;
        cmp_group(a, b, g, sum_b);
        /* 2 splits x 18 matrices (accuracy, format_fail_rate, 8 metrics of each readout) */
        CHECK_MSG(g_cmp_objects == 2 * 18, "cell %d: %d datasets compared", k, g_cmp_objects);
        char *sa = NULL, *sb = NULL;
        snprintf(g, sizeof g, "cells/%d", k);
        CHECK(ckpt_reader_attr_str(a, g, "splits", &sa) == CKPT_OK &&
              ckpt_reader_attr_str(b, g, "splits", &sb) == CKPT_OK);
        CHECK_EQ_STR(sa, k % 2 ? "test,ood_length_2" : "test,ood_length_1");
        CHECK_EQ_STR(sa, sb);
        free(sa), free(sb);
    }
    ckpt_reader_free(a), ckpt_reader_free(b);
}

/* Two shared runs for four cells; each cell equals the cell run on its own. */
static void test_shared_equals_own(void) {
    snprintf(g_shared, sizeof g_shared, "%s/shared", g_tmp);
    snprintf(g_own, sizeof g_own, "%s/own", g_tmp);
    int st = run_caopd(NULL, (const char *[]){"sweep", g_spec, "-j", "2", "--threads", "1", "--out",
                                              g_shared, NULL});
    char *o = last_out(), *e = last_err();
    CHECK_MSG(exited(st, 0), "status %d\n%s\n%s", st, o, e);
    CHECK_MSG(strstr(e, "4 cells in ") &&
                  strstr(e, "; 2 shared runs (4 cells differ only in eval.ood_severities and "
                            "read them): 0 already finished, 2 to run (0 to resume)"),
              "%s", e);
    CHECK_MSG(strstr(e, "started shared run 000_method-caopd") &&
                  strstr(e, "(shared runs: 2/2 done)"),
              "%s", e);
    /* a shared run's cells are counted done with it: after the first run 3 of 6 jobs, never 1 */
    CHECK_MSG(strstr(e, "sweep: 3/6 done") && !strstr(e, "sweep: 1/6 done"), "%s", e);
    CHECK_MSG(strstr(o, "sweep sr: 4 cells: 4 finished now, 0 finished before, 0 failed"), "%s", o);
    CHECK_MSG(strstr(o, "shared runs: 2: 2 run now, 0 finished before, 0 failed"), "%s", o);
    CHECK_MSG(strstr(o, "summary.h5 (4 of 4 cells)"), "%s", o);
    free(o), free(e);
    char p[1024];
    snprintf(p, sizeof p, "%s/shared", g_shared);
    CHECK_EQ_INT(count_entries(p), 2);
    snprintf(p, sizeof p, "%s/cells", g_shared);
    CHECK_MSG(count_entries(p) <= 0, "no cell should run a process of its own (%s)", p);
    snprintf(p, sizeof p, "%s/shared/002_method-sdft/spec.json", g_shared);
    char *sj = slurp(p);
    CHECK_MSG(strstr(sj, "\"ood_severities\":\t[1, 2]"), "%s", sj);
    free(sj);

    st = run_caopd(NULL, (const char *[]){"sweep", g_spec_own, "-j", "2", "--threads", "1", "--out",
                                          g_own, NULL});
    o = last_out();
    CHECK_MSG(exited(st, 0) && strstr(o, "4 finished now") && !strstr(o, "shared runs"),
              "status %d\n%s", st, o);
    free(o);
    char sa[800], sb[800];
    snprintf(sa, sizeof sa, "%s/summary.h5", g_shared);
    snprintf(sb, sizeof sb, "%s/summary.h5", g_own);
    for (int k = 0; k < 4; k++)
        same_summary_cell(sa, sb, k);

    /* a re-run starts nothing */
    snprintf(p, sizeof p, "%s/shared/000_method-caopd/run.log", g_shared);
    const long before = file_size(p);
    st = run_caopd(NULL, (const char *[]){"sweep", g_spec, "-j", "2", "--threads", "1", "--out",
                                          g_shared, NULL});
    o = last_out(), e = last_err();
    CHECK_MSG(exited(st, 0), "status %d\n%s", st, e);
    CHECK_MSG(
        strstr(e,
               "4 already finished, 0 to run (0 to resume); 2 shared runs (4 cells differ only in "
               "eval.ood_severities and read them): 2 already finished, 0 to run (0 to resume), "),
        "%s", e);
    CHECK_MSG(strstr(o, "0 finished now, 4 finished before, 0 failed"), "%s", o);
    CHECK(file_size(p) == before && before > 0);
    free(o), free(e);
}

/* --cell 1 runs the shared run of cells 0 and 1; --cell 0 then reuses it. */
static void test_cell_mode(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/array", g_tmp);
    int st = run_caopd(NULL, (const char *[]){"sweep", g_spec, "--cell", "1", "--threads", "1",
                                              "--out", dir, NULL});
    char *o = last_out();
    char want[1200];
    snprintf(want, sizeof want,
             "cell 1: %s/shared/000_method-caopd; gather the cells with caopd merge", dir);
    CHECK_MSG(exited(st, 0) &&
                  strstr(o, "shared runs: 1: 1 run now, 0 finished before, 0 failed") &&
                  strstr(o, want),
              "status %d\n%s", st, o);
    free(o);
    st = run_caopd(NULL, (const char *[]){"sweep", g_spec, "--cell", "0", "--threads", "1", "--out",
                                          dir, NULL});
    o = last_out();
    CHECK_MSG(exited(st, 0) && strstr(o, "1 cell: 0 finished now, 1 finished before, 0 failed"),
              "status %d\n%s", st, o);
    free(o);
    char log[800];
    snprintf(log, sizeof log, "%s/shared/000_method-caopd/run.log", dir);
    char *l = slurp(log);
    CHECK_MSG(count_str(l, "==== caopd sweep") == 1, "the shared run should run once:\n%s", l);
    free(l);
}

/* A shared run that fails (its directory holds its spec and a damaged checkpoint, no results)
 * fails its two cells; the other run's cells finish. */
static void test_failed_run(void) {
    char dir[600], p[1024];
    snprintf(dir, sizeof dir, "%s/failing", g_tmp);
    sweep *s = NULL;
    char err[SWEEP_ERR_CAP], *json = NULL;
    CHECK_MSG(sweep_load(g_spec, &s, err, sizeof err) == 0, "%s", err);
    if (!s) return;
    CHECK(sweep_shared_json(s, 0, 1, &json) == 0);
    sweep_free(s);
    snprintf(p, sizeof p, "%s/shared/000_method-caopd", dir);
    char mk[800];
    snprintf(mk, sizeof mk, "%s/shared", dir);
    CHECK(mkdir(dir, 0777) == 0 && mkdir(mk, 0777) == 0 && mkdir(p, 0777) == 0);
    snprintf(p, sizeof p, "%s/shared/000_method-caopd/spec.json", dir);
    write_file(p, json, strlen(json));
    snprintf(p, sizeof p, "%s/shared/000_method-caopd/checkpoint.h5", dir);
    write_file(p, "not a checkpoint\n", 17);
    free(json);
    int st = run_caopd(
        NULL, (const char *[]){"sweep", g_spec, "-j", "2", "--threads", "1", "--out", dir, NULL});
    char *o = last_out();
    CHECK_MSG(exited(st, 1), "status %d\n%s", st, o);
    CHECK_MSG(strstr(o, "sweep sr: 4 cells: 2 finished now, 0 finished before, 2 failed"), "%s", o);
    CHECK_MSG(strstr(o, "shared runs: 2: 1 run now, 0 finished before, 1 failed"), "%s", o);
    CHECK_MSG(strstr(o, "FAILED shared run 000_method-caopd: ") &&
                  strstr(o, "results.h5 is missing but a checkpoint exists"),
              "%s", o);
    static const char *const failed[2] = {"000_method-caopd_sev-1", "001_method-caopd_sev-2"};
    for (int c = 0; c < 2; c++) {
        char want[1600];
        snprintf(want, sizeof want, "FAILED %s: its shared run %s/shared/000_method-caopd failed",
                 failed[c], dir);
        CHECK_MSG(strstr(o, want), "expected '%s' in\n%s", want, o);
    }
    CHECK_MSG(strstr(o, "summary.h5 (2 of 4 cells)"), "%s", o);
    free(o);
}

int main(void) {
    alarm(600);
    make_tmpdir("caopd_sweep_shared_run");
    test_grouping();
    test_shared_equals_own();
    test_cell_mode();
    test_failed_run();
    tmpdir_finish(g_tmp);
    return check_report("test_sweep_shared_run");
}
