/* test_run_resume: `caopd run` killed with SIGKILL at several points (mid base stage just
 * after a checkpoint is queued, before the first checkpoint and between checkpoints, during an
 * evaluation, right after a stage-end checkpoint, twice in one run, and at a moment chosen by the
 * clock from outside) and then continued with --resume finishes with a results file and a final
 * checkpoint identical, dataset for dataset and attribute for attribute, to an uninterrupted run.
 * Also: a finished run directory is not overwritten without --force, and --resume of a finished run
 * leaves it alone. */
#include "tests/harness/run/run_testutil.h"

#include <time.h>

static char g_spec_path[600], g_ref[600];

static void compare_with_ref(const char *dir, const char *what) {
    const int failures_before = check_failures;
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/results.h5", g_ref);
    snprintf(b, sizeof b, "%s/results.h5", dir);
    int n = cmp_files(a, b, CKPT_FORMAT_RESULTS);
    CHECK_MSG(n > 50, "%s: only %d datasets compared", what, n);
    snprintf(a, sizeof a, "%s/checkpoint.h5", g_ref);
    snprintf(b, sizeof b, "%s/checkpoint.h5", dir);
    n = cmp_files(a, b, CKPT_FORMAT_CHECKPOINT);
    CHECK_MSG(n > 20, "%s: only %d checkpoint datasets compared", what, n);
    fprintf(stderr, "%s: %s\n", what,
            check_failures == failures_before ? "identical to the uninterrupted run" : "DIFFERS");
}

/* Kills the run at each point of crashes[] in turn (each a CAOPD_CRASH_AT value), resuming
 * after each, then resumes to the end and compares. */
static void crash_and_resume(const char *name, const char *const *crashes, int n) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    const char *start[] = {"run", g_spec_path, "--out", dir, NULL};
    const char *resume[] = {"run", "--resume", dir, NULL};
    int st = run_caopd(crashes[0], start);
    CHECK_MSG(killed_by_sigkill(st), "%s: first run should be killed at %s (status %d)", name,
              crashes[0], st);
    for (int i = 1; i < n; i++) {
        st = run_caopd(crashes[i], resume);
        CHECK_MSG(killed_by_sigkill(st), "%s: resume %d should be killed at %s", name, i,
                  crashes[i]);
    }
    st = run_caopd(NULL, resume);
    char errp[700];
    snprintf(errp, sizeof errp, "%s/err.txt", g_tmp);
    char *err = slurp(errp);
    CHECK_MSG(exited(st, 0), "%s: final resume failed: %s", name, err);
    /* "0:2": killed before any checkpoint, so the run starts over. "0:ckpt2": killed while the
     * first checkpoint is being written; "0:5": killed one step after it was queued, and the
     * I/O thread may not have published it yet on a loaded machine: either outcome is right.
     * Else the run resumes. */
    const int fresh = strcmp(crashes[0], "0:2") == 0;
    const int either = strcmp(crashes[0], "0:ckpt2") == 0 || strcmp(crashes[0], "0:5") == 0;
    const int started = strstr(err, "starting at stage 0, step 0") != NULL;
    const int resumed = strstr(err, "resuming at stage") != NULL;
    CHECK_MSG(either ? started || resumed : fresh ? started : resumed, "%s: %s", name, err);
    free(err);
    compare_with_ref(dir, name);
}

/* Kills the run from outside once its log shows `marker` (a real kill -9 at an arbitrary
 * moment: the I/O thread may be in the middle of a write). */
static void external_kill(const char *name, const char *marker) {
    char dir[700], logp[760];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    snprintf(logp, sizeof logp, "%s/log.jsonl", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1), dup2(devnull, 2);
        unsetenv("CAOPD_CRASH_AT");
        execl(CAOPD_EXE, CAOPD_EXE, "run", g_spec_path, "--out", dir, (char *)NULL);
        _exit(127);
    }
    int st = 0, killed = 0;
    for (int i = 0; i < 20000 && !killed; i++) {
        char *log = slurp(logp);
        if (strstr(log, marker)) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        free(log);
        if (waitpid(pid, &st, WNOHANG) == pid) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (killed) waitpid(pid, &st, 0);
    CHECK_MSG(killed && killed_by_sigkill(st), "%s: the run ended before the kill", name);
    const char *resume[] = {"run", "--resume", dir, NULL};
    st = run_caopd(NULL, resume);
    CHECK_MSG(exited(st, 0), "%s: resume failed", name);
    compare_with_ref(dir, name);
}

static void test_overwrite_protection(void) {
    const char *again[] = {"run", g_spec_path, "--out", g_ref, NULL};
    int st = run_caopd(NULL, again);
    CHECK(exited(st, 1));
    char p[700];
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    char *err = slurp(p);
    char want[1600];
    snprintf(want, sizeof want,
             "caopd run: %s already holds a run; continue it with `caopd run --resume %s`, or pass "
             "--force to delete it and start over\n",
             g_ref, g_ref);
    CHECK_EQ_STR(err, want);
    free(err);
    /* the finished results are untouched: still identical to themselves and finished */
    snprintf(p, sizeof p, "%s/results.h5", g_ref);
    ckpt_reader *r = NULL;
    char *status = NULL;
    CHECK(ckpt_reader_open(&r, p, CKPT_FORMAT_RESULTS, 3, NULL) == CKPT_OK);
    CHECK(r && ckpt_reader_attr_str(r, "", "status", &status) == CKPT_OK);
    CHECK_EQ_STR(status, "finished");
    free(status);
    { /* the per-sample texts: 8 questions "A+B=", their references A+B, the completions */
        char *q = NULL, *ref = NULL, *comp = NULL;
        size_t nq = 0, nr = 0, nc = 0;
        const char *g = "stages/1/domains/add/test";
        char dp[128];
        snprintf(dp, sizeof dp, "%s/question", g);
        CHECK(ckpt_reader_read_str(r, dp, &q, &nq) == CKPT_OK);
        snprintf(dp, sizeof dp, "%s/reference", g);
        CHECK(ckpt_reader_read_str(r, dp, &ref, &nr) == CKPT_OK);
        snprintf(dp, sizeof dp, "%s/completion", g);
        CHECK(ckpt_reader_read_str(r, dp, &comp, &nc) == CKPT_OK);
        CHECK(nq == 8 && nr == 8 && nc == 8);
        uint8_t cor[8] = {0};
        snprintf(dp, sizeof dp, "%s/correct", g);
        CHECK(ckpt_reader_read(r, dp, CKPT_DTYPE_U8, cor, 8) == CKPT_OK);
        const char *pq = q, *pr = ref, *pc = comp;
        for (size_t i = 0; q && ref && comp && i < 8 && i < nq; i++) {
            long a = -1, b = -1;
            CHECK_MSG(sscanf(pq, "%ld+%ld=", &a, &b) == 2 && pq[strlen(pq) - 1] == '=',
                      "question '%s'", pq);
            CHECK_MSG(atol(pr) == a + b, "reference '%s' of '%s'", pr, pq);
            if (cor[i])
                CHECK_MSG(strncmp(pc, pr, strlen(pr)) == 0, "a correct completion '%s' for '%s'",
                          pc, pr);
            pq += strlen(pq) + 1, pr += strlen(pr) + 1, pc += strlen(pc) + 1;
        }
        free(q), free(ref), free(comp);
    }
    ckpt_reader_free(r);
    const char *resume[] = {"run", "--resume", g_ref, NULL};
    st = run_caopd(NULL, resume);
    CHECK(exited(st, 0));
    snprintf(p, sizeof p, "%s/out.txt", g_tmp);
    char *out = slurp(p);
    CHECK(strstr(out, "the run is already finished") != NULL);
    CHECK(strstr(out, "accuracy (rows: model after stage") != NULL);
    free(out);
}

int main(void) {
    make_tmpdir("test_run_resume");
    snprintf(g_spec_path, sizeof g_spec_path, "%s/spec.json", g_tmp);
    write_file(g_spec_path, tiny_spec, strlen(tiny_spec));
    snprintf(g_ref, sizeof g_ref, "%s/ref", g_tmp);
    const char *args[] = {"run", g_spec_path, "--out", g_ref, NULL};
    int st = run_caopd(NULL, args);
    CHECK_MSG(exited(st, 0), "uninterrupted run failed (status %d)", st);
    char p[700];
    snprintf(p, sizeof p, "%s/out.txt", g_tmp);
    char *out = slurp(p);
    CHECK(strstr(out, "accuracy (rows: model after stage; columns: domain, test split)") != NULL);
    /* rows carry their stage's name */
    CHECK_MSG(strstr(out, "\n0 base ") && strstr(out, "\n1 add ") && strstr(out, "\n2 rev "), "%s",
              out);
    /* the tiny model writes no confidence: every cell (3 stages x 2 domains) is flagged */
    CHECK_MSG(strstr(out, "WARNING: 6 cells with more than 10% format failures") &&
                  strstr(out, "format failures (rows: model after stage"),
              "%s", out);
    static const char *const titles[] = {"ECE, greedy readout", "ECE, expected readout",
                                         "OCG, greedy readout", "OCG, expected readout"};
    for (int k = 0; k < 4; k++) {
        char want[128];
        snprintf(want, sizeof want, "%s (rows: model after stage; columns: domain, test split)",
                 titles[k]);
        CHECK_MSG(strstr(out, want) != NULL, "no '%s' in\n%s", want, out);
    }
    free(out);
    /* the same spec twice gives the same file: the comparison itself is meaningful */
    crash_and_resume("no_checkpoint_yet", (const char *[]){"0:2"}, 1);   /* starts over */
    crash_and_resume("base_after_ckpt", (const char *[]){"0:ckpt2"}, 1); /* (0, 2) queued */
    crash_and_resume("base_between", (const char *[]){"0:5"},
                     1); /* (0, 4) queued: resume or restart */
    crash_and_resume("during_eval", (const char *[]){"1:eval"},
                     1);                                         /* stage 1 trained, not written */
    crash_and_resume("stage_start", (const char *[]){"2:1"}, 1); /* resume from (2, 0) */
    crash_and_resume("twice", (const char *[]){"1:3", "2:eval"}, 2); /* two crashes, one run */
    external_kill("external_stage1",
                  "\"stage\":1,\"name\":\"add\",\"method\":\"caopd\",\"step\":1,");
    external_kill("external_eval", "\"event\":\"eval\",\"t\"");
    test_overwrite_protection();
    tmpdir_finish(g_tmp);
    return check_report("test_run_resume");
}
