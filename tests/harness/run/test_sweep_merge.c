/* test_sweep_merge: `caopd merge` and `caopd analyze` of a sweep directory whose cells hold
 * results files written by hand with known metrics (method x seed 1..3 x ood_severity 1..2,
 * two stages over add and rev): the summary file's layout and values (format, version, per
 * cell its axis values, seed, method and the (stages, domains) matrices of every metric),
 * an unfinished and a missing cell left out and named, and the OOD-severity analysis (mean,
 * min, max and sample sd over seeds of the domain means after the last stage, severity 0 =
 * the test split, cells of one seed averaged first) in severity.csv, severity.md and the
 * figures; also the analysis of the summary file itself and its errors. Both confidence
 * readouts throughout; a cell whose results file has format_version 1 (greedy only) merges with
 * NaN expected matrices, and a summary of format_version 1 is still analysed, both named as
 * having no expected readout. The analysis along the stages (analysis/report/retention.h, tested in
 * tests/analysis/report/test_retention.c) runs on the same sweep: its outputs and stdout lines. */
#include <math.h>

#include "analysis/metrics/metrics.h"
#include "harness/run/sweep.h"
#include "tests/harness/run/sweep_testutil.h"

static const char k_axes[] =
    "{\"method\": [\"caopd\", \"sdft\"], \"seed\": [1, 2, 3], \"ood_severity\": [1, 2]}";
static const double k_conf[4] = {0.9, 0.8, 0.2, 0.6};     /* the greedy readout */
static const double k_conf_exp[4] = {0.7, 0.6, 0.4, 0.3}; /* the expected readout */
/* The first severity.csv metrics, in its column order. */
#define N_METRICS 7
static const metrics_field k_fields[N_METRICS] = {
    METRICS_FIELD_ACCURACY, METRICS_FIELD_ECE,   METRICS_FIELD_ECE,  METRICS_FIELD_OCG,
    METRICS_FIELD_OCG,      METRICS_FIELD_BRIER, METRICS_FIELD_BRIER};
static const metrics_readout k_readouts[N_METRICS] = {
    METRICS_READOUT_GREEDY,  METRICS_READOUT_GREEDY,   METRICS_READOUT_EXPECTED,
    METRICS_READOUT_GREEDY,  METRICS_READOUT_EXPECTED, METRICS_READOUT_GREEDY,
    METRICS_READOUT_EXPECTED};

/* Correct answers (of 4) of a (cell, stage, domain, split): the test split does not depend on
 * the severity (the cells of one seed train the same model). */
static int k_of(int m, int seed, int sev, int stage, int d, int ood) {
    return ood ? (seed + 2 * sev + d + m + stage) % 5 : (seed + d + 2 * m + stage) % 5;
}

static metrics_run metrics_of_readout(int k, metrics_readout q) {
    uint8_t cor[4];
    for (int i = 0; i < 4; i++)
        cor[i] = (uint8_t)(i < k);
    metrics_run r;
    metrics_run_compute(q == METRICS_READOUT_EXPECTED ? k_conf_exp : k_conf, cor, NULL, 4, &r);
    return r;
}

static metrics_run metrics_of(int k) {
    return metrics_of_readout(k, METRICS_READOUT_GREEDY);
}

/* results.h5 of a cell: stages 0..n_written-1 of T = 2, attributes only (what merge reads). */
static void write_results(const char *dir, const char *spec, int m, int seed, int sev,
                          int n_written, const char *status, int version) {
    char path[1200];
    snprintf(path, sizeof path, "%.1180s/results.h5", dir);
    ckpt_writer *w = NULL;
    ckpt_error e;
    CHECK_MSG(ckpt_writer_open(&w, path, CKPT_FORMAT_RESULTS, version, NULL, &e) == CKPT_OK, "%s",
              e.msg);
    if (!w) return;
    ckpt_writer_set_attr_str(w, "", "spec", spec);
    ckpt_writer_set_attr_str(w, "", "status", status);
    ckpt_writer_set_attr_i64(w, "", "n_stages", 2);
    static const char *const dom[2] = {"add", "rev"};
    for (int i = 0; i < n_written; i++)
        for (int d = 0; d < 2; d++)
            for (int ood = 0; ood < 2; ood++) {
                char g[128];
                snprintf(g, sizeof g,
                         ood ? "stages/%d/domains/%s/ood_length_%d" : "stages/%d/domains/%s/test",
                         i, dom[d], sev);
                for (int q = 0; q < (version >= 2 ? METRICS_READOUT_COUNT : 1); q++) {
                    metrics_run r =
                        metrics_of_readout(k_of(m, seed, sev, i, d, ood), (metrics_readout)q);
                    for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
                        char key[40];
                        if (q && !metrics_field_per_readout((metrics_field)f)) continue;
                        /* version 1: the greedy readout under the plain names */
                        const char *nm =
                            version >= 2 ? metrics_field_key((metrics_field)f, (metrics_readout)q,
                                                             key, sizeof key)
                                         : metrics_field_name((metrics_field)f);
                        ckpt_writer_set_attr_f64(w, g, nm, metrics_run_get(&r, (metrics_field)f));
                    }
                }
            }
    CHECK_MSG(ckpt_writer_commit(w) == CKPT_OK, "%s", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
}

/* The expected domain mean of metric q after the last stage (2). */
static double dmean(int m, int seed, int sev, int ood, int q) {
    double s = 0;
    for (int d = 0; d < 2; d++) {
        metrics_run r = metrics_of_readout(k_of(m, seed, sev, 2, d, ood), k_readouts[q]);
        s += metrics_run_get(&r, k_fields[q]);
    }
    return s / 2;
}

/* The severity.csv row "series,method,kind,severity,domain,..." as numbers after the key. */
static int csv_row(const char *csv, const char *key, double *vals, int nvals) {
    const char *p = strstr(csv, key);
    if (!p || (p != csv && p[-1] != '\n')) return -1;
    p += strlen(key);
    for (int i = 0; i < nvals; i++) {
        char *end = NULL;
        vals[i] = strtod(p, &end);
        if (end == p) return -1;
        p = end + (*end == ',');
    }
    return 0;
}

static void expect_row(const char *csv, const char *method, int sev, int n_seeds,
                       const double (*v)[N_METRICS]) {
    char key[128];
    snprintf(key, sizeof key, "%s,%s,ood_length,%d,mean,", method, method, sev);
    double got[1 + 4 * N_METRICS];
    CHECK_MSG(csv_row(csv, key, got, 1 + 4 * N_METRICS) == 0, "no row %s in\n%s", key, csv);
    CHECK_EQ_INT(got[0], n_seeds);
    for (int q = 0; q < N_METRICS; q++) {
        double sum = 0, lo = INFINITY, hi = -INFINITY;
        for (int s = 0; s < n_seeds; s++)
            sum += v[s][q], lo = fmin(lo, v[s][q]), hi = fmax(hi, v[s][q]);
        const double mean = sum / n_seeds;
        double sq = 0;
        for (int s = 0; s < n_seeds; s++)
            sq += (v[s][q] - mean) * (v[s][q] - mean);
        CHECK_MSG(fabs(got[1 + 4 * q] - mean) < 1e-12, "%s metric %d mean %.17g, want %.17g", key,
                  q, got[1 + 4 * q], mean);
        if (n_seeds >= 2)
            CHECK_MSG(fabs(got[2 + 4 * q] - sqrt(sq / (n_seeds - 1))) < 1e-12, "%s metric %d sd",
                      key, q);
        CHECK_MSG(fabs(got[3 + 4 * q] - lo) < 1e-12 && fabs(got[4 + 4 * q] - hi) < 1e-12,
                  "%s metric %d min/max", key, q);
    }
}

int main(void) {
    make_tmpdir("test_sweep_merge");
    char spec[600], out[600];
    /* cells of their own (no shared training), so that each holds its hand-written results */
    write_sweep_keys("spec.json", "tm", " \"share_training\": false,", k_axes, spec, sizeof spec);
    snprintf(out, sizeof out, "%s/out", g_tmp);
    sweep *s = NULL;
    char err[SWEEP_ERR_CAP];
    CHECK_MSG(sweep_load(spec, &s, err, sizeof err) == 0, "%s", err);
    if (!s) {
        tmpdir_finish(g_tmp);
        return check_report("test_sweep_merge");
    }
    CHECK_EQ_INT(sweep_n_cells(s), 12);
    /* the sweep directory, as caopd sweep leaves it; sdft seed 3: severity 1 unfinished,
       severity 2 never started */
    char p[1200], cmd[2400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/cells' && cp '%s' '%s/sweep.json'", out, spec, out);
    CHECK(system(cmd) == 0);
    for (int c = 0; c < 12; c++) {
        const int m = c / 6, seed = 1 + (c / 2) % 3, sev = 1 + c % 2;
        if (c == 11) continue;
        char dir[1000];
        snprintf(dir, sizeof dir, "%s/cells/%s", out, sweep_cell_name(s, c));
        mkdir(dir, 0777);
        char *json = NULL;
        CHECK(sweep_cell_json(s, c, 1, &json) == 0);
        snprintf(p, sizeof p, "%s/spec.json", dir);
        if (json) write_file(p, json, strlen(json));
        write_results(dir, json ? json : "", m, seed, sev, c == 10 ? 1 : 3,
                      c == 10 ? "running" : "finished", 2);
        free(json);
    }

    /* caopd merge */
    char sum[700];
    snprintf(sum, sizeof sum, "%s/merged.h5", g_tmp);
    const char *merge[] = {"merge", out, "--out", sum, NULL};
    int st = run_caopd(NULL, merge);
    char *e = last_err(), *o = last_out();
    CHECK_MSG(exited(st, 0), "merge: %s", e);
    CHECK_MSG(strstr(e, "warning: 2 of 12 cells are not finished") != NULL, "%s", e);
    CHECK_MSG(
        strstr(e, "/cells/010_method-sdft_seed-3_sev-1: unfinished (1 of 3 stages written)") !=
            NULL,
        "%s", e);
    CHECK_MSG(strstr(e, "/cells/011_method-sdft_seed-3_sev-2: not started") != NULL, "%s", e);
    CHECK_MSG(strstr(e, "caopd merge: 10 of 12 cells into ") != NULL, "%s", e);
    CHECK_MSG(strstr(o, sum) != NULL, "%s", o);
    free(e), free(o);

    /* its layout */
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    CHECK_MSG(ckpt_reader_open(&rd, sum, CKPT_FORMAT_SWEEP_SUMMARY, 2, &ce) == CKPT_OK, "%s",
              ce.msg);
    if (rd) {
        CHECK_EQ_INT(ckpt_reader_format_version(rd), SWEEP_SUMMARY_VERSION);
        int64_t n = 0, seed = 0, idx = -1, T = 0;
        CHECK(ckpt_reader_attr_i64(rd, "", "n_cells", &n) == CKPT_OK);
        CHECK_EQ_INT(n, 10);
        ckpt_list cells = {0};
        CHECK(ckpt_reader_list(rd, "cells", &cells) == CKPT_OK);
        CHECK_EQ_INT(cells.n, 10);
        ckpt_list_free(&cells);
        /* cells/7 is cell 7: sdft, seed 1, severity 2 */
        char *name = NULL, *method = NULL, *axes = NULL, *sev = NULL, *splits = NULL,
             *domains = NULL, *stn = NULL;
        CHECK(ckpt_reader_attr_str(rd, "cells/7", "name", &name) == CKPT_OK);
        CHECK_EQ_STR(name, "007_method-sdft_seed-1_sev-2");
        CHECK(ckpt_reader_attr_i64(rd, "cells/7", "index", &idx) == CKPT_OK && idx == 7);
        CHECK(ckpt_reader_attr_i64(rd, "cells/7", "seed", &seed) == CKPT_OK && seed == 1);
        CHECK(ckpt_reader_attr_i64(rd, "cells/7", "n_stages", &T) == CKPT_OK && T == 2);
        CHECK(ckpt_reader_attr_str(rd, "cells/7", "method", &method) == CKPT_OK);
        CHECK_EQ_STR(method, "sdft");
        CHECK(ckpt_reader_attr_str(rd, "cells/7", "axes", &axes) == CKPT_OK);
        CHECK_EQ_STR(axes, "method,seed,ood_severity");
        CHECK(ckpt_reader_attr_str(rd, "cells/7/axes", "ood_severity", &sev) == CKPT_OK);
        CHECK_EQ_STR(sev, "2");
        CHECK(ckpt_reader_attr_str(rd, "cells/7", "splits", &splits) == CKPT_OK);
        CHECK_EQ_STR(splits, "test,ood_length_2");
        CHECK(ckpt_reader_attr_str(rd, "cells/7", "domains", &domains) == CKPT_OK);
        CHECK_EQ_STR(domains, "add,rev");
        CHECK(ckpt_reader_attr_str(rd, "cells/7", "stage_names", &stn) == CKPT_OK);
        CHECK_EQ_STR(stn, "base,add,rev");
        free(name), free(method), free(axes), free(sev), free(splits), free(domains), free(stn);
        ckpt_info in;
        CHECK(ckpt_reader_info(rd, "cells/7/metrics/ood_length_2/ece_greedy", &in) == CKPT_OK);
        CHECK(in.rank == 2 && in.dims[0] == 3 && in.dims[1] == 2 && in.dtype == CKPT_DTYPE_F64);
        double R[6];
        CHECK(ckpt_reader_read(rd, "cells/7/metrics/ood_length_2/ece_greedy", CKPT_DTYPE_F64, R,
                               6) == CKPT_OK);
        for (int i = 0; i < 3; i++)
            for (int d = 0; d < 2; d++)
                CHECK_NEAR(R[i * 2 + d], metrics_of(k_of(1, 1, 2, i, d, 1)).ece, 1e-15);
        CHECK(ckpt_reader_read(rd, "cells/7/metrics/ood_length_2/ece_expected", CKPT_DTYPE_F64, R,
                               6) == CKPT_OK);
        for (int i = 0; i < 3; i++)
            for (int d = 0; d < 2; d++)
                CHECK_NEAR(R[i * 2 + d],
                           metrics_of_readout(k_of(1, 1, 2, i, d, 1), METRICS_READOUT_EXPECTED).ece,
                           1e-15);
        int64_t rv = 0;
        CHECK(ckpt_reader_attr_i64(rd, "cells/7", "results_format_version", &rv) == CKPT_OK &&
              rv == 2);
        for (int q = 0; q < METRICS_READOUT_COUNT; q++)
            for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
                char dp[160], key[40];
                snprintf(dp, sizeof dp, "cells/0/metrics/test/%s",
                         metrics_field_key((metrics_field)f, (metrics_readout)q, key, sizeof key));
                CHECK_MSG(ckpt_reader_kind(rd, dp, &(ckpt_kind){0}) == CKPT_OK, "no %s", dp);
            }
        CHECK(ckpt_reader_kind(rd, "cells/0/metrics/test/ece", &(ckpt_kind){0}) !=
              CKPT_OK); /* no ambiguous name */
        int64_t sv = -1;
        char *kind = NULL;
        CHECK(ckpt_reader_attr_i64(rd, "cells/7/metrics/ood_length_2", "severity", &sv) ==
                  CKPT_OK &&
              sv == 2);
        CHECK(ckpt_reader_attr_str(rd, "cells/7/metrics/ood_length_2", "kind", &kind) == CKPT_OK);
        CHECK_EQ_STR(kind, "ood_length");
        free(kind);
        ckpt_reader_free(rd);
    }

    /* caopd analyze of the summary file */
    char an[700];
    snprintf(an, sizeof an, "%s/an", g_tmp);
    const char *analyze[] = {"analyze", sum, "--out", an, NULL};
    st = run_caopd(NULL, analyze);
    e = last_err(), o = last_out();
    CHECK_MSG(exited(st, 0), "analyze: %s", e);
    CHECK_MSG(strstr(o, "OOD severity: 10 cells, 2 series") != NULL, "%s", o);
    /* no format failures in these cells: a column of zeros and no warning */
    CHECK_MSG(strstr(o, "format failures") && !strstr(o, "warning: caopd"), "%s", o);
    /* the analysis along the stages (retention.h): its summary lines on stdout; these results
     * files hold attributes only, so the pooled reliability diagrams are left out, named */
    CHECK_MSG(strstr(o, "Along the stages") && strstr(o, "\n1. ECE after the last stage") &&
                  strstr(o, "\n5. "),
              "%s", o);
    CHECK_MSG(strstr(e, "caopd analyze: warning: cell 000_method-caopd_seed-1_sev-1: its results "
                        "file cannot be read"),
              "%s", e);
    CHECK_MSG(strstr(e, "wrote ") &&
                  strstr(e, "/report.md, severity.md, severity.csv, retention.csv"),
              "%s", e);
    free(e), free(o);
    {
        /* accuracy of add after stage 2 (rev), caopd: test-split K = (seed + 2) % 5 of 4 for seeds
         * 1..3, i.e. 0.75, 1, 0 */
        snprintf(p, sizeof p, "%s/retention.csv", an);
        char *rc = slurp(p);
        double got[5];
        CHECK_MSG(rc && csv_row(rc, "caopd,add,2,rev,accuracy,", got, 5) == 0, "%s", rc ? rc : "");
        CHECK_NEAR(got[1], 1.75 / 3, 1e-12);
        CHECK(got[0] == 3 && got[2] == 0 && got[3] == 1);
        free(rc);
        snprintf(p, sizeof p, "%s/report.md", an);
        char *rep = slurp(p);
        CHECK_MSG(rep && strstr(rep, "# Sweep report") && strstr(rep, "](retention.png)") &&
                      strstr(rep, "(severity_ood_length_ocg_expected.png)"),
                  "%s", rep ? rep : "");
        free(rep);
        snprintf(p, sizeof p, "%s/retention.png", an);
        CHECK(file_size(p) > 1000 && file_size(p) < 150 * 1024);
    }
    snprintf(p, sizeof p, "%s/severity.csv", an);
    char *csv = slurp(p);
    const char *head =
        "series,method,kind,severity,domain,n_seeds,accuracy_mean,accuracy_sd,accuracy_min,"
        "accuracy_max,"
        "ece_greedy_mean,ece_greedy_sd,ece_greedy_min,ece_greedy_max,ece_expected_mean,";
    CHECK_MSG(!strncmp(csv, head, strlen(head)), "%.200s", csv);
    double v[3][N_METRICS];
    for (int m = 0; m < 2; m++) {
        const char *mn = m ? "sdft" : "caopd";
        for (int sev = 1; sev <= 2; sev++) {
            const int ns = m == 1 ? 2 : 3; /* sdft seed 3 has no finished cell of severity 1 or 2 */
            for (int sd = 0; sd < ns; sd++)
                for (int q = 0; q < N_METRICS; q++)
                    v[sd][q] = dmean(m, sd + 1, sev, 1, q);
            expect_row(csv, mn, sev, ns, (const double(*)[N_METRICS])v);
        }
        /* severity 0: the test split, per seed the mean of its cells */
        const int ns0 = m == 1 ? 2 : 3;
        for (int sd = 0; sd < ns0; sd++)
            for (int q = 0; q < N_METRICS; q++)
                v[sd][q] = dmean(m, sd + 1, 1, 0, q);
        expect_row(csv, mn, 0, ns0, (const double(*)[N_METRICS])v);
    }
    /* a per-domain row */
    {
        double got[1 + 4 * N_METRICS];
        CHECK(csv_row(csv, "caopd,caopd,ood_length,2,rev,", got, 1 + 4 * N_METRICS) == 0);
        double want = 0;
        for (int sd = 1; sd <= 3; sd++)
            want += metrics_of(k_of(0, sd, 2, 2, 1, 1)).accuracy / 3;
        CHECK_NEAR(got[1], want, 1e-12);
    }
    free(csv);
    snprintf(p, sizeof p, "%s/severity.md", an);
    char *md = slurp(p);
    CHECK_MSG(strstr(md, "| series | OOD kind | severity | seeds | accuracy | ECE greedy | ECE "
                         "expected | OCG greedy | "
                         "OCG expected | Brier greedy |") != NULL,
              "%s", md);
    CHECK_MSG(strstr(md, "](severity_ood_length_ece_greedy.png)") != NULL, "%s", md);
    CHECK_MSG(strstr(md, "](severity_ood_length_ece_expected.png)") != NULL, "%s", md);
    CHECK(strstr(md, "no expected readout") == NULL);
    free(md);
    static const char *const figs[] = {"accuracy", "ece_greedy", "ece_expected", "ocg_greedy",
                                       "ocg_expected"};
    for (int f = 0; f < 5; f++) {
        snprintf(p, sizeof p, "%s/severity_ood_length_%s.png", an, figs[f]);
        CHECK_MSG(file_size(p) > 1000, "%s", p);
        snprintf(p, sizeof p, "%s/severity_ood_length_%s.svg", an, figs[f]);
        char *svg = slurp(p);
        CHECK_MSG(strstr(svg, "<title>") && strstr(svg, "caopd") && strstr(svg, "sdft"),
                  "%s: no title or legend", p);
        CHECK_MSG(strstr(svg, "bands: min-max over seeds") != NULL,
                  "%s: the legend does not say the bands are min-max", p);
        free(svg);
    }

    /* caopd analyze of the sweep directory: merged into OUT/summary.h5, outputs in OUT/analysis */
    const char *andir[] = {"analyze", out, "--no-figures", NULL};
    st = run_caopd(NULL, andir);
    e = last_err();
    CHECK_MSG(exited(st, 0), "analyze DIR: %s", e);
    CHECK_MSG(strstr(e, "merged 10 of 12 cells into") != NULL, "%s", e);
    free(e);
    snprintf(p, sizeof p, "%s/summary.h5", out);
    CHECK(file_size(p) > 0);
    snprintf(p, sizeof p, "%s/analysis/severity.csv", out);
    char *csv2 = slurp(p);
    snprintf(p, sizeof p, "%s/severity.csv", an);
    char *csv1 = slurp(p);
    CHECK_MSG(csv2[0] && strcmp(csv1, csv2) == 0, "the same sweep gives the same severity.csv");
    free(csv1), free(csv2);

    /* errors: a results file is not a summary; a sweep and a run together */
    snprintf(p, sizeof p, "%s/cells/%s", out, sweep_cell_name(s, 0));
    const char *two[] = {"analyze", out, p, "--out", an, NULL};
    st = run_caopd(NULL, two);
    e = last_err();
    CHECK(exited(st, 2));
    CHECK_MSG(strstr(e, "give one sweep directory or summary file at a time") != NULL, "%s", e);
    free(e);
    snprintf(p, sizeof p, "%s/empty.h5", g_tmp);
    {
        ckpt_writer *w = NULL;
        CHECK(ckpt_writer_open(&w, p, CKPT_FORMAT_SWEEP_SUMMARY, 1, NULL, NULL) == CKPT_OK);
        ckpt_writer_set_attr_str(w, "cells", "note", "no finished cell");
        CHECK(ckpt_writer_commit(w) == CKPT_OK);
        ckpt_writer_free(w);
    }
    const char *empty[] = {"analyze", p, "--out", an, NULL};
    st = run_caopd(NULL, empty);
    e = last_err();
    CHECK(exited(st, 1));
    CHECK_MSG(strstr(e, "empty.h5: holds no finished cell") != NULL, "%s", e);
    free(e);

    /* A cell of results format_version 1 (greedy only): merged with NaN expected matrices,
     * and named by the analysis. */
    snprintf(p, sizeof p, "%s/cells/%s", out, sweep_cell_name(s, 0));
    {
        char *json = NULL;
        CHECK(sweep_cell_json(s, 0, 1, &json) == 0);
        write_results(p, json ? json : "", 0, 1, 1, 3, "finished", 1);
        free(json);
    }
    const char *old_an[] = {"analyze", out, "--no-figures", NULL};
    st = run_caopd(NULL, old_an);
    e = last_err(), o = last_out();
    CHECK_MSG(exited(st, 0), "analyze with a version 1 cell: %s", e);
    CHECK_MSG(strstr(o, "note: 1 of 10 cells have no expected readout") != NULL, "%s", o);
    free(e), free(o);
    snprintf(p, sizeof p, "%s/summary.h5", out);
    CHECK_MSG(ckpt_reader_open(&rd, p, CKPT_FORMAT_SWEEP_SUMMARY, 2, &ce) == CKPT_OK, "%s", ce.msg);
    if (rd) {
        int64_t rv = 0;
        double R[6];
        CHECK(ckpt_reader_attr_i64(rd, "cells/0", "results_format_version", &rv) == CKPT_OK &&
              rv == 1);
        CHECK(ckpt_reader_read(rd, "cells/0/metrics/test/ece_expected", CKPT_DTYPE_F64, R, 6) ==
              CKPT_OK);
        CHECK(isnan(R[0]) && isnan(R[5]));
        CHECK(ckpt_reader_read(rd, "cells/0/metrics/test/ece_greedy", CKPT_DTYPE_F64, R, 6) ==
              CKPT_OK);
        CHECK_NEAR(R[5], metrics_of(k_of(0, 1, 1, 2, 1, 0)).ece, 1e-15);
        ckpt_reader_free(rd);
    }
    /* A summary of format_version 1 (before the expected readout): the old names, no expected. */
    snprintf(p, sizeof p, "%s/v1.h5", g_tmp);
    {
        ckpt_writer *w = NULL;
        CHECK(ckpt_writer_open(&w, p, CKPT_FORMAT_SWEEP_SUMMARY, 1, NULL, NULL) == CKPT_OK);
        const char *g = "cells/0";
        ckpt_writer_set_attr_str(w, g, "method", "caopd");
        ckpt_writer_set_attr_str(w, g, "axes", "seed");
        ckpt_writer_set_attr_str(w, "cells/0/axes", "seed", "1");
        ckpt_writer_set_attr_str(w, g, "splits", "test");
        ckpt_writer_set_attr_str(w, g, "domains", "add");
        ckpt_writer_set_attr_i64(w, g, "seed", 1);
        ckpt_writer_set_attr_str(w, "cells/0/metrics/test", "kind", "test");
        ckpt_writer_set_attr_i64(w, "cells/0/metrics/test", "severity", 0);
        static const char *const old[] = {"accuracy", "ece", "ocg", "brier", "spr", "auroc"};
        for (int k = 0; k < 6; k++) {
            char dp[120];
            double v[2] = {0.5, 0.25 + 0.1 * k};
            snprintf(dp, sizeof dp, "cells/0/metrics/test/%s", old[k]);
            ckpt_writer_write(w, dp, CKPT_DTYPE_F64, 2, (int64_t[]){2, 1}, v);
        }
        CHECK(ckpt_writer_commit(w) == CKPT_OK);
        ckpt_writer_free(w);
    }
    snprintf(an, sizeof an, "%s/an_v1", g_tmp);
    const char *v1[] = {"analyze", p, "--out", an, "--no-figures", NULL};
    st = run_caopd(NULL, v1);
    e = last_err(), o = last_out();
    CHECK_MSG(exited(st, 0), "analyze a version 1 summary: %s", e);
    CHECK_MSG(strstr(o, "note: 1 of 1 cells have no expected readout") != NULL, "%s", o);
    free(e), free(o);
    snprintf(p, sizeof p, "%s/severity.csv", an);
    csv = slurp(p);
    {
        double got[1 + 4 * N_METRICS];
        CHECK_MSG(csv_row(csv, "caopd,caopd,test,0,mean,", got, 1 + 4 * 3) == 0, "%s", csv);
        CHECK_NEAR(got[1], 0.25, 1e-15); /* accuracy after the last stage */
        CHECK_NEAR(got[5], 0.35, 1e-15); /* ece_greedy = the old ece */
        CHECK(csv && strstr(csv, ",0.34999999999999998,nan,0.34999999999999998,0.34999999999999998,"
                                 "nan,nan,nan,nan,"));
    }
    free(csv);

    sweep_free(s);
    tmpdir_finish(g_tmp);
    return check_report("test_sweep_merge");
}
