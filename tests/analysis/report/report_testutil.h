/* Helpers for the `caopd analyze` tests: writes caopd-results files by hand through the ckpt
 * writer, with known per-sample arrays (so every metric is known in closed form), optionally
 * partial, tampered, repeated-domain, foreign or newer; and small file utilities. */
#ifndef CAOPD_TESTS_REPORT_TESTUTIL_H
#define CAOPD_TESTS_REPORT_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/check.h"
#include "checkpoints/ckpt.h"
#include "analysis/metrics/metrics.h"
#include "tests/tmpdir.h"

/* Every (stage, domain, split) holds 4 samples with confidences {0.9, 0.8, 0.2, 0.6}; the
 * first K are correct. Closed forms by K (10 equal-width bins; 0.6 lands in bin 5):
 *   accuracy K/4; ECE: K=0 0.625, 1 0.425, 2 0.275, 3 0.425, 4 0.375;
 *   Brier: K=1 0.2625, K=2 0.1125. */
static const double k_conf[4] = {0.9, 0.8, 0.2, 0.6};
static const double k_ece_by_k[5] = {0.625, 0.425, 0.275, 0.425, 0.375};

/* The expected readout (format_version 2 files): confidences {0.7, 0.6, 0.4, 0.3}, one per bin
 * (bins 6, 5, 4, 2), so ECE = mean |c - y|: K=0 0.5, 1 0.4, 2 0.35, 3 0.4, 4 0.5;
 * Brier: K=1 0.175, K=2 0.125. Format masses {1, 0.9, 0.8, 0.5}: mean 0.8. */
static const double k_conf_exp[4] = {0.7, 0.6, 0.4, 0.3};
static const double k_ece_exp_by_k[5] = {0.5, 0.4, 0.35, 0.4, 0.5};
static const double k_mass[4] = {1.0, 0.9, 0.8, 0.5};

/* Correct counts of the test split, K[stage][domain], stages 0 (base), 1 (add), 2 (rev):
 * accuracy R = [[0.25, 0], [1, 0.25], [0.5, 0.75]]. The OOD split has max(K - 1, 0). */
static const int k_test[3][2] = {{1, 0}, {4, 1}, {2, 3}};

typedef struct fake_run {
    const char *format;         /* default "caopd-results" */
    int version;                /* default 2 (the current layout); 1: the layout before the
                                   expected readout (confidence, ece, ...) */
    const char *status;         /* default "finished" */
    int T;                      /* domain stages (default 2) */
    const char *domains;        /* default "add,rev" */
    const char *stage_names[8]; /* stage 1..T names (default add, rev); [0] unused */
    const char *method[8];      /* per stage 1..T, default "caopd"; [0] unused */
    int n_written;          /* stages written 0..n_written-1 (default T + 1; -1: none, no group) */
    int seed;               /* spec seed */
    const char *skip_group; /* an eval group path not written (missing group) */
    const char *tamper;     /* eval group whose attribute `tamper_attr` gets tamper_value */
    const char *tamper_attr;
    double tamper_value;
    int no_domains_attr; /* leave out the root attribute "domains" */
    int fail_stage;      /* 1..T: one format failure in 4 (0.25) on the first domain's test
                            split after that stage; 0: none */
} fake_run;

static inline int fake_k(int stage, int dom, int ood) {
    int k = k_test[stage % 3][dom % 2];
    if (ood) k = k > 0 ? k - 1 : 0;
    return k;
}

/* Writes <dir>/results.h5 (dir created). Returns 0 or -1. */
static inline int write_fake_run(const char *dir, fake_run fr) {
    if (!fr.format) fr.format = CKPT_FORMAT_RESULTS;
    if (!fr.version) fr.version = 2;
    if (!fr.status) fr.status = "finished";
    if (!fr.T) fr.T = 2;
    if (!fr.domains) fr.domains = "add,rev";
    if (!fr.n_written) fr.n_written = fr.T + 1;
    static const char *const defn[] = {"base", "add", "rev"};
    mkdir(dir, 0777);
    char path[600];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    ckpt_writer *w = NULL;
    ckpt_error e;
    if (ckpt_writer_open(&w, path, fr.format, fr.version, NULL, &e)) {
        fprintf(stderr, "write_fake_run: %s\n", e.msg);
        return -1;
    }
    char spec[1024], stages[512] = "";
    for (int i = 1; i <= fr.T; i++)
        snprintf(stages + strlen(stages), sizeof stages - strlen(stages), "%s{\"domain\": \"%s\"}",
                 i > 1 ? ", " : "", fr.stage_names[i] ? fr.stage_names[i] : defn[i % 3]);
    snprintf(spec, sizeof spec,
             "{\"format\": \"caopd-experiment\", \"version\": 1, \"name\": \"fake\", \"seed\": %d, "
             "\"stages\": [%s]}",
             fr.seed, stages);
    ckpt_writer_set_attr_str(w, "", "spec", spec);
    ckpt_writer_set_attr_str(w, "", "versions", "test");
    ckpt_writer_set_attr_str(w, "", "status", fr.status);
    ckpt_writer_set_attr_i64(w, "", "n_stages", fr.T);
    if (!fr.no_domains_attr) ckpt_writer_set_attr_str(w, "", "domains", fr.domains);
    ckpt_writer_set_attr_str(w, "", "splits", "test,ood_length_1");
    char doms[4][32];
    int nd = 0;
    {
        const char *p = fr.domains;
        while (*p && nd < 4) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            snprintf(doms[nd++], sizeof doms[0], "%.*s", (int)len, p);
            p += len + (c ? 1 : 0);
        }
    }
    for (int i = 0; fr.n_written > 0 && i < fr.n_written; i++) {
        char g[256];
        snprintf(g, sizeof g, "stages/%d", i);
        ckpt_writer_set_attr_str(w, g, "name",
                                 i == 0              ? "base"
                                 : fr.stage_names[i] ? fr.stage_names[i]
                                                     : defn[i % 3]);
        ckpt_writer_set_attr_str(w, g, "method",
                                 i == 0         ? "sft"
                                 : fr.method[i] ? fr.method[i]
                                                : "caopd");
        ckpt_writer_set_attr_i64(w, g, "steps", 4);
        for (int d = 0; d < nd; d++)
            for (int sp = 0; sp < 2; sp++) {
                snprintf(g, sizeof g, "stages/%d/domains/%s/%s", i, doms[d],
                         sp ? "ood_length_1" : "test");
                if (fr.skip_group && !strcmp(fr.skip_group, g)) continue;
                const int K = fake_k(i, d, sp);
                uint8_t cor[4], ff[4] = {0, 0, 0, 0};
                double ent[4] = {1, 2, 3, 4};
                int64_t nt[4] = {5, 6, 7, 8};
                for (int q = 0; q < 4; q++)
                    cor[q] = (uint8_t)(q < K);
                if (fr.fail_stage && i == fr.fail_stage && d == 0 && !sp) ff[3] = 1;
                int64_t dims[1] = {4};
                char p[320];
#define W(nm, dt, buf)                                                                             \
    snprintf(p, sizeof p, "%s/%s", g, nm), ckpt_writer_write(w, p, dt, 1, dims, buf)
                if (fr.version == 1) {
                    W("confidence", CKPT_DTYPE_F64, k_conf);
                } else {
                    W("confidence_greedy", CKPT_DTYPE_F64, k_conf);
                    W("confidence_expected", CKPT_DTYPE_F64, k_conf_exp);
                    W("confidence_format_mass", CKPT_DTYPE_F64, k_mass);
                }
                W("correct", CKPT_DTYPE_U8, cor);
                W("format_fail", CKPT_DTYPE_U8, ff);
                W("answer_entropy", CKPT_DTYPE_F64, ent);
                W("conf_entropy", CKPT_DTYPE_F64, ent);
                W("n_tokens", CKPT_DTYPE_I64, nt);
#undef W
                /* The attributes as caopd run stores them (results_add_eval): version 1 the greedy
                 * readout's under plain names, version 2 both readouts under metrics_field_key. */
                metrics_run m, mx;
                metrics_run_compute(k_conf, cor, ff, 4, &m);
                metrics_run_compute(k_conf_exp, cor, ff, 4, &mx);
                for (int f = 0; f < METRICS_FIELD_COUNT; f++) {
                    char key[40];
                    if (fr.version == 1) {
                        ckpt_writer_set_attr_f64(w, g, metrics_field_name((metrics_field)f),
                                                 metrics_run_get(&m, (metrics_field)f));
                        continue;
                    }
                    ckpt_writer_set_attr_f64(w, g,
                                             metrics_field_key((metrics_field)f,
                                                               METRICS_READOUT_GREEDY, key,
                                                               sizeof key),
                                             metrics_run_get(&m, (metrics_field)f));
                    if (metrics_field_per_readout((metrics_field)f))
                        ckpt_writer_set_attr_f64(w, g,
                                                 metrics_field_key((metrics_field)f,
                                                                   METRICS_READOUT_EXPECTED, key,
                                                                   sizeof key),
                                                 metrics_run_get(&mx, (metrics_field)f));
                }
                if (fr.version != 1) ckpt_writer_set_attr_f64(w, g, "mean_format_mass", 0.8);
                ckpt_writer_set_attr_i64(w, g, "n", (int64_t)m.n);
                ckpt_writer_set_attr_i64(w, g, "n_correct", (int64_t)m.n_correct);
                ckpt_writer_set_attr_i64(w, g, "n_format_fail", (int64_t)m.n_format_fail);
                ckpt_writer_set_attr_str(w, g, "split", sp ? "ood_length" : "test");
                ckpt_writer_set_attr_i64(w, g, "severity", sp);
                if (fr.tamper && !strcmp(fr.tamper, g)) {
                    if (!strcmp(fr.tamper_attr, "n_correct"))
                        ckpt_writer_set_attr_i64(w, g, fr.tamper_attr, (int64_t)fr.tamper_value);
                    else
                        ckpt_writer_set_attr_f64(w, g, fr.tamper_attr, fr.tamper_value);
                }
            }
    }
    int rc = ckpt_writer_commit(w);
    if (rc) fprintf(stderr, "write_fake_run: %s\n", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
    return rc ? -1 : 0;
}

/* The test's scratch directory; main ends with tmpdir_finish(g_rtmp). */
static char g_rtmp[512];

static inline void report_tmpdir(const char *name) {
    tmpdir_make(g_rtmp, sizeof g_rtmp, name);
}

static inline char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

static inline int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Every relative link "](x)" of the Markdown text md names an existing file under dir (a failed
 * check per missing one); returns the number of links. */
static inline int check_links(const char *dir, const char *md) {
    int n = 0;
    for (const char *p = strstr(md, "]("); p; p = strstr(p + 1, "](")) {
        const char *e = strchr(p, ')');
        char rel[512], full[1200];
        snprintf(rel, sizeof rel, "%.*s", (int)(e - p - 2), p + 2);
        snprintf(full, sizeof full, "%.600s/%.500s", dir, rel);
        CHECK_MSG(file_exists(full), "report.md links to %s, which is missing", rel);
        n++;
    }
    return n;
}

#endif
