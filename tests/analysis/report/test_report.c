/* test_report: analysis/report/report.h on results files written by hand with known per-sample
 * arrays: the metrics (report_get, metrics.csv, eval_results.csv, the printed tables) equal the
 * closed-form values and the stored attributes; the CL and calibration-retention metrics equal
 * hand-computed ones; a tampered attribute is reported as a mismatch; a partial run (status
 * running, stages missing), a repeated domain, several runs side by side work; foreign, newer,
 * missing and incomplete files give messages naming the file; the outputs and figures exist.
 * Both confidence readouts everywhere; a format_version 1 file (greedy only) still loads and
 * says that it has no expected readout. */
#include <cairo.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#ifdef PLOT_TEST_FCFINI
#include <fontconfig/fontconfig.h>
#endif

#include "tests/analysis/report/report_testutil.h"
#include "analysis/report/report.h"

#define TOL 1e-12

/* The value of column `col` in the metrics.csv row (run, stage, domain, split); NaN if none. */
static double csv_metric(const char *csv, const char *run, int stage, const char *dom,
                         const char *split, const char *col) {
    char hdr[2048];
    const char *nl = strchr(csv, '\n');
    snprintf(hdr, sizeof hdr, "%.*s", (int)(nl - csv), csv);
    int ci = -1, k = 0;
    for (char *t = strtok(hdr, ","); t; t = strtok(NULL, ","), k++)
        if (!strcmp(t, col)) ci = k;
    if (ci < 0) return NAN;
    for (const char *line = nl + 1; *line;) {
        const char *e = strchr(line, '\n');
        char row[4096], *f[64];
        snprintf(row, sizeof row, "%.*s", (int)(e ? e - line : (long)strlen(line)), line);
        int nf = 0;
        for (char *p = row; nf < 64;) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = '\0', p = c + 1;
        }
        /* run,method,seed,status,results,stage,stage_name,stage_method,domain,split,... */
        if (nf > ci && !strcmp(f[0], run) && atoi(f[5]) == stage && !strcmp(f[8], dom) &&
            !strcmp(f[9], split))
            return strcmp(f[ci], "nan") ? atof(f[ci]) : NAN;
        line = e ? e + 1 : line + strlen(line);
    }
    return NAN;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_finished(void) {
    char dir[600], out[700];
    snprintf(dir, sizeof dir, "%s/caopd_a", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.seed = 7, .method = {0, "caopd", "sdft"}}) == 0);
    report_set *s = NULL;
    CHECK(report_set_new(&s) == REPORT_OK);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    CHECK_EQ_INT(report_n_runs(s), 1);
    CHECK_EQ_STR(report_run_label(s, 0), "caopd_a");
    CHECK_EQ_STR(report_run_method(s, 0), "caopd+sdft");
    CHECK_EQ_STR(report_run_status(s, 0), "finished");
    CHECK_EQ_INT(report_run_n_stages(s, 0), 2);
    CHECK_EQ_STR(report_notes(s), "");

    /* Recomputed metrics against the closed forms and against the stored attributes. */
    ckpt_reader *rd = NULL;
    ckpt_error e;
    CHECK(ckpt_reader_open(&rd, report_run_path(s, 0), CKPT_FORMAT_RESULTS, 3, &e) == CKPT_OK);
    CHECK_EQ_INT(report_run_has_expected(s, 0), 1);
    static const char *const doms[2] = {"add", "rev"}, *const splits[2] = {"test", "ood_length_1"};
    for (int i = 0; i <= 2; i++)
        for (int d = 0; d < 2; d++)
            for (int sp = 0; sp < 2; sp++) {
                metrics_run m[METRICS_READOUT_COUNT];
                CHECK(report_get(s, 0, i, doms[d], splits[sp], METRICS_READOUT_GREEDY, &m[0]) ==
                      REPORT_OK);
                CHECK(report_get(s, 0, i, doms[d], splits[sp], METRICS_READOUT_EXPECTED, &m[1]) ==
                      REPORT_OK);
                const int K = fake_k(i, d, sp);
                CHECK_NEAR(m[0].accuracy, K / 4.0, TOL);
                CHECK_NEAR(m[1].accuracy, K / 4.0, TOL);
                CHECK_NEAR(m[0].ece, k_ece_by_k[K], TOL);
                CHECK_NEAR(m[1].ece, k_ece_exp_by_k[K], TOL);
                CHECK_NEAR(m[1].mean_conf, 0.5, TOL);
                CHECK_EQ_INT(m[0].n, 4);
                char g[256];
                snprintf(g, sizeof g, "stages/%d/domains/%s/%s", i, doms[d], splits[sp]);
                for (int q = 0; q < METRICS_READOUT_COUNT; q++)
                    for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
                        char key[40];
                        metrics_field_key((metrics_field)f, (metrics_readout)q, key, sizeof key);
                        double v = NAN, want = metrics_run_get(&m[q], (metrics_field)f);
                        CHECK(ckpt_reader_attr_f64(rd, g, key, &v) == CKPT_OK);
                        CHECK_MSG((isnan(v) && isnan(want)) || v == want, "%s %s", g, key);
                    }
            }
    ckpt_reader_free(rd);
    metrics_run m;
    CHECK(report_get(s, 0, 0, "add", "test", METRICS_READOUT_GREEDY, &m) == REPORT_OK);
    CHECK_NEAR(m.brier, 0.2625, TOL);
    CHECK(report_get(s, 0, 0, "add", "test", METRICS_READOUT_EXPECTED, &m) == REPORT_OK);
    CHECK_NEAR(m.brier, 0.175, TOL);
    CHECK(report_get(s, 0, 3, "add", "test", METRICS_READOUT_GREEDY, &m) == REPORT_ERR_ARG);
    CHECK(report_get(s, 0, 0, "count", "test", METRICS_READOUT_GREEDY, &m) == REPORT_ERR_ARG);
    CHECK(report_get(s, 0, 0, "add", "test", METRICS_READOUT_COUNT, &m) == REPORT_ERR_ARG);

    /* CL on accuracy: R = [[.25, 0], [1, .25], [.5, .75]]. */
    metrics_cl cl;
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_ACCURACY, METRICS_READOUT_GREEDY, &cl) ==
          REPORT_OK);
    CHECK_NEAR(cl.acc, 0.625, TOL);
    CHECK_NEAR(cl.bwt, -0.5, TOL);
    CHECK_NEAR(cl.fwt, 0.25, TOL);
    CHECK_NEAR(cl.forgetting, 0.5, TOL);
    /* Calibration retention on ECE: R = [[.425, .625], [.375, .425], [.275, .425]];
     * forgetting on -R: -.375 - (-.275) = -.1 (ECE improved). */
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_ECE, METRICS_READOUT_GREEDY, &cl) == REPORT_OK);
    CHECK_NEAR(cl.acc, 0.35, TOL);
    CHECK_NEAR(cl.bwt, -0.1, TOL);
    CHECK_NEAR(cl.fwt, -0.2, TOL);
    CHECK_NEAR(cl.forgetting, -0.1, TOL);
    /* The same on the expected readout's ECE: R = [[.4, .5], [.5, .4], [.35, .4]]; forgetting on
     * -R: -.5 - (-.35) = -.15. */
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_ECE, METRICS_READOUT_EXPECTED, &cl) == REPORT_OK);
    CHECK_NEAR(cl.acc, 0.375, TOL);
    CHECK_NEAR(cl.bwt, -0.15, TOL);
    CHECK_NEAR(cl.fwt, -0.1, TOL);
    CHECK_NEAR(cl.forgetting, -0.15, TOL);
    /* OCG on |OCG| (the distance from calibration, read like ECE): greedy mean confidence 0.625,
     * OCG = 0.625 - K/4 = [[.375, .625], [-.375, .375], [.125, -.125]], |OCG| = [[.375, .625],
     * [.375, .375], [.125, .125]]: ACC .125, BWT .125 - .375 = -.25, FWT .375 - .625 = -.25,
     * forgetting on -|OCG|: -.375 - (-.125) = -.25. Verbatim, ACC would be 0 and BWT .5. */
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_OCG, METRICS_READOUT_GREEDY, &cl) == REPORT_OK);
    CHECK_NEAR(cl.acc, 0.125, TOL);
    CHECK_NEAR(cl.bwt, -0.25, TOL);
    CHECK_NEAR(cl.fwt, -0.25, TOL);
    CHECK_NEAR(cl.forgetting, -0.25, TOL);
    /* expected: mean confidence 0.5, |OCG| = [[.25, .5], [.5, .25], [0, .25]] */
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_OCG, METRICS_READOUT_EXPECTED, &cl) == REPORT_OK);
    CHECK_NEAR(cl.acc, 0.125, TOL);
    CHECK_NEAR(cl.bwt, -0.5, TOL);
    CHECK_NEAR(cl.fwt, -0.25, TOL);
    CHECK_NEAR(cl.forgetting, -0.5, TOL);

    /* The printed tables. */
    char *text = NULL;
    CHECK(report_tables(s, 0, &text) == REPORT_OK);
    CHECK(text && strstr(text, "continual learning") && strstr(text, "calibration retention"));
    CHECK_MSG(text && strstr(text, "accuracy  0.625  -0.500  0.250       0.500"), "%s", text);
    CHECK_MSG(text && strstr(text, "1 add   1.000  0.250"), "%s",
              text); /* accuracy row after stage 1 */
    CHECK_MSG(text && strstr(text, "ood_length_1  ood_length         1   0.500    0.250    0.250"),
              "%s", text);
    CHECK_MSG(text && strstr(text, "ECE, greedy readout, run caopd_a") &&
                  strstr(text, "ECE, expected readout, run caopd_a"),
              "%s", text);
    CHECK_MSG(text && strstr(text, "2 rev   0.350  0.400"), "%s",
              text); /* expected ECE after stage 2 */
    CHECK_MSG(text && strstr(text, "caopd_a  ece_expected    0.375  -0.150  -0.100      -0.150"),
              "%s", text);
    CHECK_MSG(text && strstr(text, "caopd_a  ocg_expected    0.125  -0.500  -0.250      -0.500"),
              "%s", text);
    CHECK_MSG(text && strstr(text, "OCG: all four on |OCG|"), "%s", text);
    free(text);

    /* The outputs. */
    snprintf(out, sizeof out, "%s/analysis", dir);
    CHECK_EQ_STR(report_run_default_out(s, 0), out);
    CHECK_MSG(report_write(s, out, NULL) == REPORT_OK, "%s", report_errmsg(s));
    char p[900];
    snprintf(p, sizeof p, "%s/metrics.csv", out);
    char *csv = read_text(p);
    CHECK(csv != NULL);
    if (csv) {
        CHECK_EQ_INT(count_lines(csv), 1 + 3 * 2 * 2);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 2, "add", "test", "accuracy"), 0.5, TOL);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 2, "add", "test", "ece_greedy"), 0.275, TOL);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 2, "add", "test", "brier_greedy"), 0.1125, TOL);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 2, "add", "test", "ece_expected"), 0.35, TOL);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 2, "add", "test", "brier_expected"), 0.125, TOL);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 2, "add", "test", "mean_format_mass"), 0.8, TOL);
        CHECK(isnan(csv_metric(csv, "caopd_a", 2, "add", "test", "ece"))); /* no ambiguous column */
        CHECK_NEAR(csv_metric(csv, "caopd_a", 1, "rev", "ood_length_1", "accuracy"), 0.0, TOL);
        CHECK_NEAR(csv_metric(csv, "caopd_a", 1, "rev", "test", "mean_tokens"), 6.5, TOL);
        CHECK(isnan(csv_metric(csv, "caopd_a", 1, "rev", "ood_length_1", "auroc"))); /* one class */
        static const char hdr[] =
            "run,method,seed,status,results,stage,stage_name,stage_method,domain,split,kind,"
            "severity,n,n_correct,"
            "n_format_fail,accuracy,mean_conf_greedy,brier_greedy,ocg_greedy,ece_greedy,mce_greedy,"
            "ece_equal_mass_greedy,spr_greedy,auroc_greedy,format_fail_rate,mean_conf_expected,"
            "brier_expected,"
            "ocg_expected,ece_expected,mce_expected,ece_equal_mass_expected,spr_expected,auroc_"
            "expected,"
            "mean_format_mass,answer_entropy,conf_entropy,mean_tokens,readouts\n";
        CHECK_MSG(strncmp(csv, hdr, strlen(hdr)) == 0, "%s", csv);
        CHECK(strstr(csv, ",greedy+expected\n") != NULL);
    }
    free(csv);
    snprintf(p, sizeof p, "%s/eval_results.csv", out);
    char *ev = read_text(p);
    static const char ev_hdr[] =
        "run,method,seed,training_exp,eval_exp,stream,domain,metric,value\n";
    CHECK(ev && strncmp(ev, ev_hdr, strlen(ev_hdr)) == 0);
    /* n, 10 greedy fields, 8 expected ones, mean_format_mass */
    CHECK_EQ_INT(count_lines(ev),
                 1 + 3 * 2 * 2 * (1 + METRICS_FIELD_COUNT + METRICS_FIELD_COUNT - 2 + 1));
    CHECK_MSG(
        ev && strstr(ev, "\ncaopd_a,caopd+sdft,7,2,1,test,add,ece_greedy,0.27500000000000002\n"),
        "eval_results.csv");
    static const char ex_row[] = "\ncaopd_a,caopd+sdft,7,2,1,test,add,ece_expected,";
    const char *ex = ev ? strstr(ev, ex_row) : NULL;
    CHECK_MSG(ex && fabs(atof(ex + strlen(ex_row)) - 0.35) <= TOL,
              "eval_results.csv: ece_expected");
    CHECK(ev && strstr(ev, "\ncaopd_a,caopd+sdft,7,1,2,ood_length_1,rev,accuracy,0\n"));
    free(ev);
    snprintf(p, sizeof p, "%s/summary.json", out);
    char *js = read_text(p);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECK(j != NULL);
    if (j) {
        cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "runs"), 0);
        cJSON *acc = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "cl"), "test"),
                                         "accuracy");
        CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(acc, "bwt")), -0.5, TOL);
        CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(r0, "seed")), 7, 0);
        cJSON *gap = cJSON_GetArrayItem(cJSON_GetObjectItem(r0, "ood_gaps"), 0);
        CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(gap, "accuracy")), 0.25,
                   TOL); /* add: .5 - .25 */
        CHECK(cJSON_IsNull(cJSON_GetArrayItem(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(
                    cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "matrices"), "ood_length_1"),
                    "auroc_greedy"),
                1),
            1)));
        cJSON *ece_x = cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "matrices"), "test"), "ece_expected");
        CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(ece_x, 2), 0)), 0.35,
                   TOL);
        CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "version")), 2, 0);
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(r0, "readouts")), 2);
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "cl"), "test"),
                                  "ocg_expected") != NULL);
    }
    cJSON_Delete(j);
    free(js);
    static const char *const figs[] = {"retention_add.png",
                                       "retention_rev.svg",
                                       "heatmap_caopd_a_accuracy.png",
                                       "heatmap_caopd_a_ece_greedy.svg",
                                       "heatmap_caopd_a_ece_expected.png",
                                       "reliability/caopd_a_stage2_rev_greedy.png",
                                       "reliability/caopd_a_stage0_add_expected.svg",
                                       "report.md"};
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out, figs[i]);
        CHECK_MSG(file_exists(p), "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/report.md", out);
    char *md = read_text(p);
    CHECK(md && strstr(md, "| caopd_a | accuracy | 0.625 | -0.500 | 0.250 | 0.500 |"));
    if (md) CHECK_MSG(check_links(out, md) >= 10, "report.md has too few links");
    free(md);
    report_set_free(s);
}

static void expect_load_error(const char *path, int status, const char *const *want, int n) {
    report_set *s = NULL;
    CHECK(report_set_new(&s) == REPORT_OK);
    int rc = report_add_run(s, path);
    CHECK_MSG(rc == status, "%s: %s, expected %s: %s", path, report_status_str(rc),
              report_status_str(status), report_errmsg(s));
    for (int i = 0; i < n; i++)
        CHECK_MSG(strstr(report_errmsg(s), want[i]) != NULL, "'%s' not in: %s", want[i],
                  report_errmsg(s));
    CHECK_EQ_INT(report_n_runs(s), 0);
    report_set_free(s);
}

static void test_mismatch(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/tampered", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.tamper = "stages/1/domains/rev/test",
                                         .tamper_attr = "ece_greedy",
                                         .tamper_value = 0.5}) == 0);
    const char *want[] = {"tampered/results.h5",
                          "stages/1/domains/rev/test: ece_greedy stored 0.5, recomputed 0.425",
                          "1 stored metric attribute(s) differ"};
    expect_load_error(dir, REPORT_ERR_MISMATCH, want, 3);
    snprintf(dir, sizeof dir, "%s/tampered_count", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.tamper = "stages/0/domains/add/ood_length_1",
                                         .tamper_attr = "n_correct",
                                         .tamper_value = 3}) == 0);
    const char *want2[] = {"stages/0/domains/add/ood_length_1: n_correct stored 3, recomputed 0"};
    expect_load_error(dir, REPORT_ERR_MISMATCH, want2, 1);
    /* A difference within REPORT_ATTR_TOL is accepted. */
    snprintf(dir, sizeof dir, "%s/tiny_diff", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.tamper = "stages/1/domains/rev/test",
                                         .tamper_attr = "ece_greedy",
                                         .tamper_value = 0.425 + 1e-15}) == 0);
    report_set *s = NULL;
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    report_set_free(s);
    /* The expected readout's attributes are checked too. */
    snprintf(dir, sizeof dir, "%s/tampered_expected", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.tamper = "stages/2/domains/add/test",
                                         .tamper_attr = "ocg_expected",
                                         .tamper_value = 0.1}) == 0);
    const char *want3[] = {"stages/2/domains/add/test: ocg_expected stored 0.1, recomputed "};
    expect_load_error(dir, REPORT_ERR_MISMATCH, want3, 1);
    snprintf(dir, sizeof dir, "%s/tampered_mass", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.tamper = "stages/0/domains/rev/test",
                                         .tamper_attr = "mean_format_mass",
                                         .tamper_value = 0.7}) == 0);
    const char *want4[] = {
        "stages/0/domains/rev/test: mean_format_mass stored 0.7, recomputed 0.8"};
    expect_load_error(dir, REPORT_ERR_MISMATCH, want4, 1);
}

/* Format failures: a line with their largest share; above 10 % a warning and their matrix. */
static void test_format_failures(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/fmt", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.fail_stage = 2}) == 0);
    report_set *s = NULL;
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    char *text = NULL;
    CHECK(report_tables(s, 0, &text) == REPORT_OK);
    CHECK_MSG(text &&
                  strstr(text, "WARNING, run fmt: format failures reach 0.250 (after stage 2 rev, "
                               "add), above 0.10: "
                               "a completion without a confidence reads 0") &&
                  strstr(text, "format-failure rate, run fmt"),
              "%s", text ? text : "");
    free(text);
    report_set_free(s);
    snprintf(dir, sizeof dir, "%s/nofmt", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.seed = 1}) == 0);
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    CHECK(report_tables(s, 1, &text) == REPORT_OK);
    CHECK_MSG(text && strstr(text, "Format failures, run `nofmt`: at most 0.000") &&
                  !strstr(text, "**Warning**"),
              "%s", text ? text : "");
    free(text);
    report_set_free(s);
}

static void test_partial(void) {
    char dir[600], out[700];
    snprintf(dir, sizeof dir, "%s/live", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.status = "running", .n_written = 2}) == 0);
    report_set *s = NULL;
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    CHECK_MSG(
        strstr(report_notes(s), "run live is not finished (status running; it has no run.lock"),
        "%s", report_notes(s));
    { /* with run.lock: held by a process (here, this one through another open file) or by nobody */
        char lp[700];
        snprintf(lp, sizeof lp, "%s/run.lock", dir);
        int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
        report_set *h = NULL;
        report_set_new(&h);
        CHECK_MSG(report_add_run(h, dir) == REPORT_OK, "%s", report_errmsg(h));
        CHECK_MSG(strstr(report_notes(h),
                         "run live is still going (a process holds its run.lock): 2 of 3 stages"),
                  "%s", report_notes(h));
        report_set_free(h);
        close(fd); /* the process is gone */
        report_set_new(&h);
        CHECK_MSG(report_add_run(h, dir) == REPORT_OK, "%s", report_errmsg(h));
        char want[900];
        snprintf(
            want, sizeof want,
            "run live is stopped before finishing (status running, but no process holds its "
            "run.lock: it was killed or crashed; continue it with caopd run --resume %s): 2 of 3",
            dir);
        CHECK_MSG(strstr(report_notes(h), want), "%s", report_notes(h));
        report_set_free(h);
        unlink(lp);
    }
    metrics_run m;
    CHECK(report_get(s, 0, 1, "add", "test", METRICS_READOUT_GREEDY, &m) == REPORT_OK &&
          m.accuracy == 1.0);
    CHECK(report_get(s, 0, 2, "add", "test", METRICS_READOUT_GREEDY, &m) == REPORT_ERR_ARG);
    metrics_cl cl;
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_ACCURACY, METRICS_READOUT_GREEDY, &cl) ==
          REPORT_OK);
    CHECK(isnan(cl.acc) && isnan(cl.bwt) && isnan(cl.forgetting));
    CHECK_NEAR(cl.fwt, 0.25, TOL); /* reads rows 0 and 1 only */
    char *text = NULL;
    CHECK(report_tables(s, 0, &text) == REPORT_OK);
    CHECK_MSG(text && strstr(text, "2 rev (not yet)    n/a    n/a"), "%s", text);
    free(text);
    snprintf(out, sizeof out, "%s/out", g_rtmp);
    CHECK_MSG(report_write(s, out, NULL) == REPORT_OK, "%s", report_errmsg(s));
    char p[900];
    snprintf(p, sizeof p, "%s/retention_add.png", out);
    CHECK(file_exists(p));
    snprintf(p, sizeof p, "%s/reliability/live_stage2_add_greedy.png", out);
    CHECK(!file_exists(p));
    report_set_free(s);

    /* Just started: no stage yet (no "stages" group). */
    snprintf(dir, sizeof dir, "%s/fresh", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.status = "running", .n_written = -1}) == 0);
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    CHECK(strstr(report_notes(s), "0 of 3 stages written") != NULL);
    snprintf(out, sizeof out, "%s/fresh_out", g_rtmp);
    const report_write_opts nofig = {.figures = 0};
    CHECK_MSG(report_write(s, out, &nofig) == REPORT_OK, "%s", report_errmsg(s));
    report_set_free(s);
}

static void test_bad_files(void) {
    char dir[600], p[700];
    snprintf(dir, sizeof dir, "%s/ckptfile", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.format = CKPT_FORMAT_CHECKPOINT}) == 0);
    const char *w1[] = {"ckptfile/results.h5", "is a 'caopd-checkpoint' file, not 'caopd-results'"};
    expect_load_error(dir, REPORT_ERR_FILE, w1, 2);
    snprintf(dir, sizeof dir, "%s/newer", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.version = 4}) == 0);
    const char *w2[] = {"newer/results.h5", "format_version 4 is newer than this build reads (3)"};
    expect_load_error(dir, REPORT_ERR_FILE, w2, 2);
    snprintf(p, sizeof p, "%s/nothing_here", g_rtmp);
    const char *w3[] = {"nothing_here: no such file or directory"};
    expect_load_error(p, REPORT_ERR_FILE, w3, 1);
    snprintf(p, sizeof p, "%s/emptydir", g_rtmp); /* a run folder without results.h5 yet */
    mkdir(p, 0777);
    const char *w3b[] = {"emptydir/results.h5: no such file"};
    expect_load_error(p, REPORT_ERR_FILE, w3b, 1);
    snprintf(p, sizeof p, "%s/notes.txt", g_rtmp);
    FILE *f = fopen(p, "w");
    fputs("not hdf5 at all\n", f);
    fclose(f);
    const char *w4[] = {"notes.txt", "not an HDF5 file"};
    expect_load_error(p, REPORT_ERR_FILE, w4, 2);
    snprintf(dir, sizeof dir, "%s/holes", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.skip_group = "stages/1/domains/rev/ood_length_1"}) == 0);
    const char *w5[] = {"holes/results.h5", "stages/1/domains/rev/ood_length_1", "damaged"};
    expect_load_error(dir, REPORT_ERR_FILE, w5, 3);
    snprintf(dir, sizeof dir, "%s/noattr", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.no_domains_attr = 1}) == 0);
    const char *w6[] = {"noattr/results.h5", "no string attribute 'domains'"};
    expect_load_error(dir, REPORT_ERR_FILE, w6, 2);
    snprintf(dir, sizeof dir, "%s/cut", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.n_written = 2}) ==
          0); /* "finished" with a stage missing */
    const char *w7[] = {"cut/results.h5", "status 'finished' but only 2 of its 3 stages"};
    expect_load_error(dir, REPORT_ERR_FILE, w7, 2);
    /* A failed load leaves the set usable. */
    report_set *s = NULL;
    report_set_new(&s);
    CHECK(report_add_run(s, dir) == REPORT_ERR_FILE);
    CHECK(report_write(s, p, NULL) == REPORT_ERR_ARG);
    report_set_free(s);
}

static void test_repeated_domain(void) {
    char dir[600], out[700];
    snprintf(dir, sizeof dir, "%s/repeat", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.T = 3, .stage_names = {0, "add", "rev", "add"}}) == 0);
    report_set *s = NULL;
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    metrics_cl cl;
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_ACCURACY, METRICS_READOUT_GREEDY, &cl) ==
          REPORT_ERR_ARG);
    CHECK(isnan(cl.acc) && isnan(cl.bwt));
    CHECK_MSG(
        strstr(report_errmsg(s),
               "3 domain stages (add, rev, add) do not line up with its 2 evaluation domains"),
        "%s", report_errmsg(s));
    CHECK(strstr(report_notes(s), "ACC/BWT/FWT/forgetting are skipped") != NULL);
    char *text = NULL;
    CHECK(report_tables(s, 0, &text) == REPORT_OK);
    CHECK(text && strstr(text, "3 add") && strstr(text, "(none: no run has stages that line up"));
    free(text);
    snprintf(out, sizeof out, "%s/repeat_out", g_rtmp);
    const report_write_opts nofig = {.figures = 0};
    CHECK_MSG(report_write(s, out, &nofig) == REPORT_OK, "%s", report_errmsg(s));
    report_set_free(s);
}

static void test_several(void) {
    char a[600], b[600], c[600], out[700];
    snprintf(a, sizeof a, "%s/s1", g_rtmp);
    snprintf(b, sizeof b, "%s/s2/", g_rtmp);
    snprintf(c, sizeof c, "%s/other", g_rtmp);
    CHECK(write_fake_run(a, (fake_run){.seed = 1}) == 0);
    CHECK(write_fake_run(b, (fake_run){.seed = 2}) == 0);
    CHECK(write_fake_run(c, (fake_run){.seed = 1, .method = {0, "sft", "sft"}}) == 0);
    report_set *s = NULL;
    report_set_new(&s);
    CHECK(report_add_run(s, a) == REPORT_OK);
    char file[700];
    snprintf(file, sizeof file, "%sresults.h5", b); /* a results file, not a directory */
    CHECK_MSG(report_add_run(s, file) == REPORT_OK, "%s", report_errmsg(s));
    CHECK(report_add_run(s, c) == REPORT_OK);
    CHECK_EQ_INT(report_n_runs(s), 3);
    CHECK_EQ_STR(report_run_label(s, 1), "s2");
    CHECK_EQ_STR(report_run_method(s, 2), "sft");
    snprintf(out, sizeof out, "%s/joint", g_rtmp);
    CHECK_MSG(report_write(s, out, NULL) == REPORT_OK, "%s", report_errmsg(s));
    char p[900];
    snprintf(p, sizeof p, "%s/metrics.csv", out);
    char *csv = read_text(p);
    CHECK_EQ_INT(count_lines(csv), 1 + 3 * 12);
    free(csv);
    snprintf(p, sizeof p, "%s/heatmap_other_ece_greedy.png", out);
    CHECK(file_exists(p));
    report_set_free(s);
    /* The same directory twice: a unique label. */
    report_set_new(&s);
    CHECK(report_add_run(s, a) == REPORT_OK && report_add_run(s, a) == REPORT_OK);
    CHECK_EQ_STR(report_run_label(s, 1), "s1-2");
    report_set_free(s);
    /* A run label with a comma is one quoted CSV field, not two. */
    char comma[700];
    snprintf(comma, sizeof comma, "%s/lr 1e-3,seed 1", g_rtmp);
    CHECK(write_fake_run(comma, (fake_run){.seed = 1}) == 0);
    report_set_new(&s);
    CHECK(report_add_run(s, comma) == REPORT_OK);
    snprintf(out, sizeof out, "%s/comma", g_rtmp);
    CHECK_MSG(report_write(s, out, NULL) == REPORT_OK, "%s", report_errmsg(s));
    static const char *const files[] = {"metrics.csv", "eval_results.csv"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", out, files[k]);
        csv = read_text(p);
        const char *row = csv ? strchr(csv, '\n') : NULL;
        CHECK_MSG(row && !strncmp(row + 1, "\"lr 1e-3,seed 1\",", 17), "%s: %s", files[k],
                  csv ? csv : "(none)");
        free(csv);
    }
    report_set_free(s);
}

/* A results file of format_version 1 (before the expected readout): it loads, its greedy
 * readout is read under the old names, and every output says it has no expected readout. */
static void test_old_version(void) {
    char dir[600], out[700], p[900];
    snprintf(dir, sizeof dir, "%s/old", g_rtmp);
    CHECK(write_fake_run(dir, (fake_run){.version = 1, .seed = 3}) == 0);
    report_set *s = NULL;
    report_set_new(&s);
    CHECK_MSG(report_add_run(s, dir) == REPORT_OK, "%s", report_errmsg(s));
    CHECK_EQ_INT(report_run_has_expected(s, 0), 0);
    CHECK_MSG(strstr(report_notes(s),
                     "run old has no expected readout: its results file has format_version 1"),
              "%s", report_notes(s));
    metrics_run m;
    CHECK(report_get(s, 0, 2, "add", "test", METRICS_READOUT_GREEDY, &m) == REPORT_OK);
    CHECK_NEAR(m.ece, 0.275, TOL);
    CHECK(report_get(s, 0, 2, "add", "test", METRICS_READOUT_EXPECTED, &m) == REPORT_OK);
    CHECK(isnan(m.ece) && isnan(m.ocg) && isnan(m.spr) && isnan(m.mean_conf));
    CHECK_NEAR(m.accuracy, 0.5, TOL); /* readout-free */
    metrics_cl cl;
    CHECK(report_cl(s, 0, "test", METRICS_FIELD_ECE, METRICS_READOUT_EXPECTED, &cl) == REPORT_OK);
    CHECK(isnan(cl.acc));
    char *text = NULL;
    CHECK(report_tables(s, 0, &text) == REPORT_OK);
    CHECK_MSG(
        text && strstr(text, "ECE, expected readout, run old: none (results file format_version 1"),
        "%s", text);
    CHECK_MSG(text && strstr(text, "ece_greedy") && !strstr(text, "ece_expected"), "%s", text);
    CHECK(text && strstr(text, "has no expected readout"));
    free(text);
    snprintf(out, sizeof out, "%s/old_out", g_rtmp);
    CHECK_MSG(report_write(s, out, NULL) == REPORT_OK, "%s", report_errmsg(s));
    snprintf(p, sizeof p, "%s/metrics.csv", out);
    char *csv = read_text(p);
    CHECK(csv && strstr(csv, ",greedy\n") && !strstr(csv, "greedy+expected"));
    if (csv) {
        CHECK_NEAR(csv_metric(csv, "old", 2, "add", "test", "ece_greedy"), 0.275, TOL);
        CHECK(isnan(csv_metric(csv, "old", 2, "add", "test", "ece_expected")));
    }
    free(csv);
    snprintf(p, sizeof p, "%s/eval_results.csv", out);
    char *ev = read_text(p);
    CHECK(ev && strstr(ev, ",ece_greedy,") && !strstr(ev, "_expected,") &&
          !strstr(ev, "mean_format_mass"));
    free(ev);
    snprintf(p, sizeof p, "%s/heatmap_old_ece_greedy.png", out);
    CHECK(file_exists(p));
    snprintf(p, sizeof p, "%s/heatmap_old_ece_expected.png", out);
    CHECK(!file_exists(p));
    snprintf(p, sizeof p, "%s/reliability/old_stage1_rev_expected.png", out);
    CHECK(!file_exists(p));
    snprintf(p, sizeof p, "%s/report.md", out);
    char *md = read_text(p);
    CHECK(md && strstr(md, "has no expected readout"));
    if (md) CHECK_MSG(check_links(out, md) >= 10, "report.md has too few links");
    free(md);
    snprintf(p, sizeof p, "%s/summary.json", out);
    char *js = read_text(p);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "runs"), 0);
    CHECK(r0 && cJSON_GetArraySize(cJSON_GetObjectItem(r0, "readouts")) == 1);
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(r0, "results_format_version")), 1, 0);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "matrices"), "test"),
                              "ece_expected") == NULL);
    cJSON_Delete(j);
    free(js);
    report_set_free(s);
    /* Side by side with a version 2 run. */
    char now[600];
    snprintf(now, sizeof now, "%s/now", g_rtmp);
    CHECK(write_fake_run(now, (fake_run){.seed = 4}) == 0);
    report_set_new(&s);
    CHECK(report_add_run(s, dir) == REPORT_OK && report_add_run(s, now) == REPORT_OK);
    CHECK(report_run_has_expected(s, 1) == 1);
    snprintf(out, sizeof out, "%s/mixed_out", g_rtmp);
    CHECK_MSG(report_write(s, out, NULL) == REPORT_OK, "%s", report_errmsg(s));
    report_set_free(s);
}

int main(void) {
    report_tmpdir("caopd_report");
    test_finished();
    test_mismatch();
    test_partial();
    test_format_failures();
    test_bad_files();
    test_repeated_domain();
    test_several();
    test_old_version();
    /* cairo's and fontconfig's caches, freed so that LeakSanitizer sees only our leaks */
    cairo_debug_reset_static_data();
#ifdef PLOT_TEST_FCFINI
    FcFini();
#endif
    tmpdir_finish(g_rtmp);
    return check_report("test_report");
}
