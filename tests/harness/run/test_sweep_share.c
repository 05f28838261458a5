/* test_sweep_share: "share_base" with processes of build/caopd on tiny cells: one base trained
 * for two methods, and each cell's results equal to the same cell trained inline (every
 * evaluation and every domain-stage curve); re-running skips, an interrupted base resumes,
 * --force starts the base over; --cell waits for a base another process holds, trains it, and a
 * second --cell reuses it; a base that fails fails its cells while the others go on. */
#include <dirent.h>
#include <sys/file.h>
#include <time.h>

#include "harness/run/sweep.h"
#include "tests/harness/run/sweep_testutil.h"

/* Three stages so that the last one replays two streams, and an odd number of base steps: the
 * replay rotation follows the trainer's step count, so a loaded base that did not bring it would
 * change the last stage. Checkpoints every 2 steps. */
static const char share_exp[] =
    "{\"format\": \"caopd-experiment\", \"version\": 1, \"name\": \"sh\", \"seed\": 5, "
    "\"threads\": 1,\n"
    " \"model\": {\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2},\n"
    " \"base\": {\"steps\": 5, \"batch\": 4, \"lr\": 3e-3, \"warmup\": 1},\n"
    " \"defaults\": {\"method\": \"caopd\", \"steps\": 2, \"batch\": 2, \"k\": 2, \"max_new\": 24, "
    "\"lr\": 1e-3,\n"
    "              \"warmup\": 1, \"ema_alpha\": 0.1},\n"
    " \"stages\": [{\"domain\": \"add\"}, {\"domain\": \"rev\"}, {\"domain\": \"count\", "
    "\"replay_frac\": 0.5}],\n"
    " \"eval\": {\"n\": 8, \"max_new\": 30, \"ood_kinds\": [\"ood_length\"], \"ood_severities\": "
    "[1]},\n"
    " \"snapshots\": {\"every_steps\": 2}, \"log\": {\"every_steps\": 100}}";

/* Writes <g_tmp>/<file>: a sweep named name over share_exp with share_base = share. */
static void write_share_sweep(const char *file, const char *name, const char *share,
                              const char *axes, char *path, size_t len) {
    snprintf(path, len, "%s/%s", g_tmp, file);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"format\": \"caopd-sweep\", \"version\": 1, \"name\": \"%s\", \"share_base\": %s,\n"
             " \"experiment\": %s,\n \"axes\": %s}\n",
             name, share, share_exp, axes);
    write_file(path, text, strlen(text));
}

/* The cell's results in two sweep directories are the same run: every evaluation (after the
 * base and after each of the 3 domain stages, and the matrices) and every domain stage (curves
 * and attributes), byte for byte. Only the base stage's own curves may differ (absent when the
 * base is loaded), and the spec text. */
static void same_cell(const char *dir_a, const char *dir_b, const char *cell) {
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/cells/%s/results.h5", dir_a, cell);
    snprintf(pb, sizeof pb, "%s/cells/%s/results.h5", dir_b, cell);
    ckpt_reader *a = NULL, *b = NULL;
    ckpt_error ea, eb;
    CHECK_MSG(ckpt_reader_open(&a, pa, "caopd-results", 3, &ea) == CKPT_OK, "%s", ea.msg);
    CHECK_MSG(ckpt_reader_open(&b, pb, "caopd-results", 3, &eb) == CKPT_OK, "%s", eb.msg);
    if (!a || !b) {
        ckpt_reader_free(a), ckpt_reader_free(b);
        return;
    }
    g_cmp_objects = 0;
    static const char *const groups[] = {"stages/0/domains", "stages/1", "stages/2", "stages/3",
                                         "matrices"};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        cmp_group(a, b, groups[i], pb);
    /* 4 stages x 3 domains x 2 splits x 11 arrays (8 numeric, 3 texts), 3 x 14 curves, 2 splits x
     * 14 matrices (accuracy, format_fail_rate, and 6 metrics of each readout) */
    CHECK_MSG(g_cmp_objects == 4 * 3 * 2 * 11 + 3 * 14 + 2 * 14, "%s: %d datasets compared", cell,
              g_cmp_objects);
    ckpt_reader_free(a), ckpt_reader_free(b);
}

static char g_inline[600], g_shared[600], g_spec_shared[600], g_spec_inline[600];

static const char *const g_cells[2] = {"000_method-caopd", "001_method-sdft"};

/* (a) one base for two methods; each cell equals its inline twin. */
static void test_shared_equals_inline(void) {
    write_share_sweep("share.json", "sh", "true", "{\"method\": [\"caopd\", \"sdft\"]}",
                      g_spec_shared, sizeof g_spec_shared);
    write_share_sweep("inline.json", "sh", "false", "{\"method\": [\"caopd\", \"sdft\"]}",
                      g_spec_inline, sizeof g_spec_inline);
    snprintf(g_shared, sizeof g_shared, "%s/shared", g_tmp);
    snprintf(g_inline, sizeof g_inline, "%s/inline", g_tmp);
    int st = run_caopd(
        NULL, (const char *[]){"sweep", g_spec_shared, "-j", "2", "--out", g_shared, NULL});
    char *o = last_out(), *e = last_err();
    CHECK_MSG(exited(st, 0), "status %d\n%s\n%s", st, o, e);
    CHECK_MSG(strstr(e, "2 cells in ") &&
                  strstr(e, "; 1 shared base: 0 already finished, 1 to run (0 to resume), "),
              "%s", e);
    CHECK_MSG(strstr(e, "started base 000") && strstr(e, "finished base 000 in ") &&
                  strstr(e, "(bases: 1/1 done)"),
              "%s", e);
    CHECK_MSG(strstr(o, "sweep sh: 2 cells: 2 finished now, 0 finished before, 0 failed"), "%s", o);
    CHECK_MSG(strstr(o, "shared bases: 1: 1 trained now, 0 finished before, 0 failed"), "%s", o);
    free(o), free(e);
    /* exactly one base, a finished base-only run */
    char p[1024];
    snprintf(p, sizeof p, "%s/bases", g_shared);
    CHECK_EQ_INT(count_entries(p), 1);
    snprintf(p, sizeof p, "%s/bases/000/spec.json", g_shared);
    char *bs = slurp(p);
    CHECK_MSG(strstr(bs, "\"stages\":\t[]") && strstr(bs, "\"seed\":\t5"), "%s", bs);
    free(bs);
    snprintf(p, sizeof p, "%s/bases/000", g_shared);
    sweep_cell_status cs = SWEEP_CELL_ABSENT;
    char err[1024];
    CHECK_MSG(sweep_cell_state(p, &cs, NULL, NULL, err, sizeof err) == 0 &&
                  cs == SWEEP_CELL_FINISHED,
              "%s", err);
    /* each cell loads it by absolute path */
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/cells/%s/spec.json", g_shared, g_cells[c]);
        char *cj = slurp(p), want[1200];
        snprintf(want, sizeof want, "\"checkpoint\":\t\"%s/bases/000/checkpoint.h5\"", g_shared);
        CHECK_MSG(g_shared[0] == '/' && strstr(cj, want), "%s", cj);
        free(cj);
    }
    st = run_caopd(NULL,
                   (const char *[]){"sweep", g_spec_inline, "-j", "2", "--out", g_inline, NULL});
    o = last_out();
    CHECK_MSG(exited(st, 0), "status %d\n%s", st, o);
    free(o);
    snprintf(p, sizeof p, "%s/bases", g_inline);
    CHECK_MSG(!path_exists(p), "a sweep without share_base made %s", p);
    for (int c = 0; c < 2; c++)
        same_cell(g_inline, g_shared, g_cells[c]);
}

/* (b) re-running skips; an interrupted base resumes and its cells equal the others; --force
 * trains the base again. */
static void test_rerun_resume_force(void) {
    char log[1024];
    snprintf(log, sizeof log, "%s/bases/000/run.log", g_shared);
    const long before = file_size(log);
    int st = run_caopd(
        NULL, (const char *[]){"sweep", g_spec_shared, "-j", "2", "--out", g_shared, NULL});
    char *o = last_out(), *e = last_err();
    CHECK_MSG(exited(st, 0), "status %d\n%s", st, e);
    CHECK_MSG(strstr(e, "2 already finished, 0 to run (0 to resume), "), "%s", e);
    CHECK_MSG(strstr(o, "0 finished now, 2 finished before, 0 failed") &&
                  !strstr(o, "shared bases"),
              "%s", o);
    CHECK(file_size(log) == before && before > 0);
    free(o), free(e);

    /* killed in the base stage: only the base trains it, so only the base dies; its cells fail */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/resumed", g_tmp);
    st = run_caopd("0:4", (const char *[]){"sweep", g_spec_shared, "-j", "2", "--out", dir, NULL});
    o = last_out();
    CHECK_MSG(exited(st, 1), "status %d\n%s", st, o);
    CHECK_MSG(strstr(o, "FAILED base 000: killed by signal 9"), "%s", o);
    char want[1500];
    snprintf(
        want, sizeof want,
        "FAILED 000_method-caopd: its shared base %s/bases/000 failed (log %s/bases/000/run.log): "
        "killed by signal 9",
        dir, dir);
    CHECK_MSG(strstr(o, want), "expected '%s' in\n%s", want, o);
    CHECK_MSG(strstr(o, "0 finished now, 0 finished before, 2 failed"), "%s", o);
    free(o);
    snprintf(want, sizeof want, "%s/cells/%s/spec.json", dir, g_cells[1]);
    CHECK_MSG(!path_exists(want), "%s: a cell started without its base", want);
    st = run_caopd(NULL, (const char *[]){"sweep", g_spec_shared, "-j", "2", "--out", dir, NULL});
    o = last_out(), e = last_err();
    CHECK_MSG(exited(st, 0), "status %d\n%s\n%s", st, o, e);
    CHECK_MSG(strstr(e, "1 shared base: 0 already finished, 1 to run (1 to resume)") &&
                  strstr(e, "resuming base 000"),
              "%s", e);
    free(o), free(e);
    for (int c = 0; c < 2; c++)
        same_cell(g_inline, dir, g_cells[c]);

    st = run_caopd(
        NULL, (const char *[]){"sweep", g_spec_shared, "-j", "2", "--out", dir, "--force", NULL});
    o = last_out(), e = last_err();
    CHECK_MSG(exited(st, 0), "status %d\n%s", st, e);
    CHECK_MSG(strstr(e, "0 already finished, 2 to run (0 to resume); 1 shared base: 0 already "
                        "finished, 1 to run (0 to "
                        "resume)"),
              "%s", e);
    CHECK_MSG(strstr(o, "shared bases: 1: 1 trained now"), "%s", o);
    free(o), free(e);
    snprintf(log, sizeof log, "%s/bases/000/run.log", dir);
    char *l = slurp(log);
    CHECK_MSG(count_str(l, "==== caopd sweep") == 3, "%s", l);
    free(l);
}

/* (c) array tasks: --cell 0 waits while another process holds the base, then trains it; --cell 1
 * uses it. */
static void test_cell_mode(void) {
    char dir[600], bdir[700], lockp[800], bg[700];
    snprintf(dir, sizeof dir, "%s/array", g_tmp);
    snprintf(bdir, sizeof bdir, "%s/bases/000", dir);
    snprintf(lockp, sizeof lockp, "%s/cell.lock", bdir);
    snprintf(bg, sizeof bg, "%s/bg.txt", g_tmp);
    char mk[800];
    snprintf(mk, sizeof mk, "%s/bases", dir);
    CHECK(mkdir(dir, 0777) == 0 && mkdir(mk, 0777) == 0 && mkdir(bdir, 0777) == 0);
    int lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0666); /* not inherited by caopd */
    CHECK(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0);
    pid_t pid = spawn_caopd(bg, bg, NULL,
                            (const char *[]){"sweep", g_spec_shared, "--cell", "0", "--threads",
                                             "1", "--out", dir, NULL});
    int waiting = 0, st = 0;
    for (int i = 0; i < 300 && !waiting; i++) { /* up to 30 s */
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        char *t = slurp(bg);
        waiting = strstr(t, "another process holds the shared base") != NULL;
        free(t);
    }
    CHECK_MSG(waiting, "--cell 0 should wait for the base's lock");
    CHECK_MSG(waitpid(pid, &st, WNOHANG) == 0, "--cell 0 should still be waiting");
    char spec_p[800];
    snprintf(spec_p, sizeof spec_p, "%s/spec.json", bdir);
    CHECK_MSG(!path_exists(spec_p), "the base was touched under another process's lock");
    close(lock); /* the other process is done: --cell 0 goes on */
    CHECK(waitpid(pid, &st, 0) == pid);
    char *t = slurp(bg);
    CHECK_MSG(exited(st, 0), "status %d\n%s", st, t);
    CHECK_MSG(strstr(t, "shared bases: 1: 1 trained now, 0 finished before, 0 failed"), "%s", t);
    free(t);
    st = run_caopd(NULL, (const char *[]){"sweep", g_spec_shared, "--cell", "1", "--threads", "1",
                                          "--out", dir, NULL});
    char *o = last_out();
    CHECK_MSG(exited(st, 0), "status %d\n%s", st, o);
    CHECK_MSG(strstr(o, "shared bases: 1: 0 trained now, 1 finished before, 0 failed"), "%s", o);
    free(o);
    char log[800];
    snprintf(log, sizeof log, "%s/run.log", bdir);
    char *l = slurp(log);
    CHECK_MSG(count_str(l, "==== caopd sweep") == 1, "the base should be trained once:\n%s", l);
    free(l);
    for (int c = 0; c < 2; c++)
        same_cell(g_inline, dir, g_cells[c]);
}

/* (d) a base that fails (its directory holds the base's spec and a damaged checkpoint, without
 * results) fails its cells; the other base and its cells finish. */
static void test_failed_base(void) {
    char spec_p[600], dir[600];
    write_share_sweep("fail.json", "sf", "true",
                      "{\"method\": [\"caopd\", \"sdft\"], \"seed\": [1, 2]}", spec_p,
                      sizeof spec_p);
    snprintf(dir, sizeof dir, "%s/failing", g_tmp);
    sweep *s = NULL;
    char err[SWEEP_ERR_CAP], *json = NULL;
    CHECK_MSG(sweep_load(spec_p, &s, err, sizeof err) == 0, "%s", err);
    if (!s) return;
    CHECK_EQ_INT(sweep_n_bases(s), 2);
    CHECK_EQ_STR(sweep_base_name(s, 0), "000_seed-1");
    CHECK(sweep_base_json(s, 0, 1, &json) == 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/bases/000_seed-1", dir);
    CHECK(mkdir(dir, 0777) == 0);
    snprintf(err, sizeof err, "%s/bases", dir);
    CHECK(mkdir(err, 0777) == 0 && mkdir(p, 0777) == 0);
    snprintf(p, sizeof p, "%s/bases/000_seed-1/spec.json", dir);
    write_file(p, json, strlen(json));
    snprintf(p, sizeof p, "%s/bases/000_seed-1/checkpoint.h5", dir);
    write_file(p, "not a checkpoint\n", 17);
    free(json);
    sweep_free(s);
    int st = run_caopd(
        NULL, (const char *[]){"sweep", spec_p, "-j", "2", "--threads", "1", "--out", dir, NULL});
    char *o = last_out(), *e = last_err();
    CHECK_MSG(exited(st, 1), "status %d\n%s", st, o);
    CHECK_MSG(strstr(o, "sweep sf: 4 cells: 2 finished now, 0 finished before, 2 failed"), "%s", o);
    CHECK_MSG(strstr(o, "shared bases: 2: 1 trained now, 0 finished before, 1 failed"), "%s", o);
    CHECK_MSG(strstr(o, "FAILED base 000_seed-1: ") &&
                  strstr(o, "results.h5 is missing but a checkpoint exists"),
              "%s", o);
    static const char *const failed[2] = {"000_method-caopd_seed-1", "002_method-sdft_seed-1"};
    for (int c = 0; c < 2; c++) {
        char want[1600];
        snprintf(want, sizeof want,
                 "FAILED %s: its shared base %s/bases/000_seed-1 failed (log "
                 "%s/bases/000_seed-1/run.log)",
                 failed[c], dir, dir);
        CHECK_MSG(strstr(o, want), "expected '%s' in\n%s", want, o);
        snprintf(want, sizeof want, "FAILED %s: its shared base 000_seed-1 failed", failed[c]);
        CHECK_MSG(strstr(e, want), "progress should report '%s':\n%s", want, e);
    }
    CHECK_MSG(strstr(o, "summary.h5 (2 of 4 cells)"), "%s", o);
    free(o), free(e);
}

int main(void) {
    alarm(900); /* a process that never ends (a lock never released) fails the test instead of
                   hanging it */
    make_tmpdir("caopd_sweep_share");
    test_shared_equals_inline();
    test_rerun_resume_force();
    test_cell_mode();
    test_failed_base();
    tmpdir_finish(g_tmp);
    return check_report("test_sweep_share");
}
