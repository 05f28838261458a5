/* test_cli_analyze: `caopd analyze` as a process: a real tiny run made with `caopd run` (its
 * stored attributes must match the recomputed metrics), hand-written files with known values,
 * and bad inputs (foreign, newer, tampered, missing, several runs without --out), each ending
 * with the right exit status and a message naming the file. */
#include "tests/analysis/report/report_testutil.h"
#include "tests/harness/run/run_testutil.h"

static char *out_txt(void) {
    char p[700];
    snprintf(p, sizeof p, "%s/out.txt", g_tmp);
    return slurp(p);
}

static char *err_txt(void) {
    char p[700];
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    return slurp(p);
}

static void expect_fail(const char *const *args, int code, const char *want1, const char *want2) {
    int st = run_caopd(NULL, args);
    char *err = err_txt();
    CHECK_MSG(exited(st, code), "%s: exit %d (signaled %d), expected %d: %s", args[1],
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st), code, err);
    if (want1) CHECK_MSG(strstr(err, want1) != NULL, "'%s' not in: %s", want1, err);
    if (want2) CHECK_MSG(strstr(err, want2) != NULL, "'%s' not in: %s", want2, err);
    free(err);
}

int main(void) {
    make_tmpdir("caopd_cli_analyze");
    char spec[700], run[700], p[900];

    /* A real run (a few seconds): analyze accepts its attributes and writes every output. */
    snprintf(spec, sizeof spec, "%s/tiny.json", g_tmp);
    write_file(spec, tiny_spec, strlen(tiny_spec));
    snprintf(run, sizeof run, "%s/tiny", g_tmp);
    const char *ra[] = {"run", spec, "--out", run, NULL};
    CHECK(exited(run_caopd(NULL, ra), 0));
    const char *aa[] = {"analyze", run, NULL};
    int st = run_caopd(NULL, aa);
    char *out = out_txt(), *err = err_txt();
    CHECK_MSG(exited(st, 0), "analyze of a real run: %s", err);
    CHECK_MSG(strstr(out, "accuracy, run tiny") && strstr(out, "continual learning") &&
                  strstr(out, "OOD gaps"),
              "%s", out);
    CHECK_MSG(strstr(out, "ECE, greedy readout, run tiny") &&
                  strstr(out, "ECE, expected readout, run tiny") && strstr(out, "ece_expected") &&
                  !strstr(out, "no expected readout"),
              "%s", out);
    CHECK(strstr(err, "analysis/report.md") != NULL);
    free(out), free(err);
    static const char *const files[] = {"report.md",
                                        "metrics.csv",
                                        "eval_results.csv",
                                        "summary.json",
                                        "retention_add.png",
                                        "retention_rev.svg",
                                        "heatmap_tiny_accuracy.png",
                                        "heatmap_tiny_ece_greedy.png",
                                        "heatmap_tiny_ece_expected.png",
                                        "reliability/tiny_stage2_rev_greedy.png",
                                        "reliability/tiny_stage2_rev_expected.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/analysis/%s", run, files[i]);
        CHECK_MSG(file_exists(p), "%s missing", p);
    }

    /* Hand-written runs with known values, side by side. */
    char a[700], b[700], joint[700];
    snprintf(a, sizeof a, "%s/known", g_tmp);
    snprintf(b, sizeof b, "%s/live", g_tmp);
    snprintf(joint, sizeof joint, "%s/joint", g_tmp);
    CHECK(write_fake_run(a, (fake_run){.seed = 5}) == 0);
    CHECK(write_fake_run(b, (fake_run){.status = "running", .n_written = 2}) == 0);
    const char *ja[] = {"analyze", a, b, "--out", joint, "--no-figures", NULL};
    st = run_caopd(NULL, ja);
    out = out_txt(), err = err_txt();
    CHECK_MSG(exited(st, 0), "%s", err);
    CHECK_MSG(strstr(out, "known  accuracy  0.625  -0.500  0.250       0.500"), "%s", out);
    CHECK_MSG(strstr(out, "live   accuracy    n/a     n/a  0.250         n/a"), "%s", out);
    CHECK_MSG(strstr(out,
                     "run live is not finished (status running; it has no run.lock, so whether a "
                     "process still "
                     "writes it is unknown; if none does, continue it with caopd run --resume ") &&
                  strstr(out, "/live): 2 of 3 stages written"),
              "%s", out);
    free(out), free(err);
    snprintf(p, sizeof p, "%s/eval_results.csv", joint);
    char *ev = slurp(p);
    CHECK(strstr(ev, "\nknown,caopd,5,1,1,test,add,accuracy,1\n") != NULL);
    const char *ex = strstr(ev, "\nknown,caopd,5,1,1,test,add,ece_expected,"); /* K = 4: 0.5 */
    CHECK(ex &&
          fabs(atof(ex + strlen("\nknown,caopd,5,1,1,test,add,ece_expected,")) - 0.5) < 1e-12);
    free(ev);

    /* A results file of format_version 1 (before the expected readout): analysed, and said so. */
    char old[700];
    snprintf(old, sizeof old, "%s/old", g_tmp);
    CHECK(write_fake_run(old, (fake_run){.version = 1, .seed = 2}) == 0);
    const char *oa[] = {"analyze", old, "--no-figures", NULL};
    st = run_caopd(NULL, oa);
    out = out_txt(), err = err_txt();
    CHECK_MSG(exited(st, 0), "%s", err);
    CHECK_MSG(strstr(out, "ECE, expected readout, run old: none (results file format_version 1"),
              "%s", out);
    CHECK_MSG(strstr(out, "run old has no expected readout"), "%s", out);
    free(out), free(err);

    /* Bad inputs. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/foreign", g_tmp);
    CHECK(write_fake_run(bad, (fake_run){.format = "someone-elses-format"}) == 0);
    const char *fa[] = {"analyze", bad, NULL};
    expect_fail(fa, 1, "foreign/results.h5",
                "is a 'someone-elses-format' file, not 'caopd-results'");
    snprintf(bad, sizeof bad, "%s/newer", g_tmp);
    CHECK(write_fake_run(bad, (fake_run){.version = 4}) == 0);
    expect_fail(fa, 1, "newer/results.h5",
                "format_version 4 is newer than this build reads (3); use a newer caopd");
    snprintf(bad, sizeof bad, "%s/tampered", g_tmp);
    CHECK(write_fake_run(bad, (fake_run){.tamper = "stages/2/domains/add/test",
                                         .tamper_attr = "brier_greedy",
                                         .tamper_value = 0.2}) == 0);
    expect_fail(fa, 1, "stages/2/domains/add/test: brier_greedy stored 0.2, recomputed 0.112499",
                "rerun the evaluation");
    snprintf(p, sizeof p, "%s/tampered/analysis/report.md", g_tmp);
    CHECK(!file_exists(p)); /* nothing written after a mismatch */
    const char *two[] = {"analyze", a, b, NULL};
    expect_fail(two, 2, "need --out DIR", NULL);
    tmpdir_finish(g_tmp);
    return check_report("test_cli_analyze");
}
