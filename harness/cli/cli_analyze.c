/* cli_analyze.c: `caopd analyze RUN [RUN...] [--out DIR] [--no-figures]`: loads each run's
 * results file (report.h), prints the tables on stdout, writes the outputs into DIR (default
 * RUN/analysis for one run) and says where they are on stderr. Given a sweep directory or a
 * sweep summary file instead, it analyses metrics against OOD severity (severity.h) and the
 * stage sequence per series (retention.h: curves, CL tables, pooled reliability, report.md),
 * merging a sweep directory's finished cells into DIR/summary.h5 first (sweep.h). Exit status:
 * 0 done, 1 a run could not be analysed or an output not written (the message names the
 * file), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoints/ckpt.h"
#include "harness/cli/cli_analyze.h"
#include "analysis/report/report.h"
#include "analysis/report/retention.h"
#include "analysis/report/severity.h"
#include "harness/run/sweep.h"

static int usage(void) {
    fprintf(stderr,
            "usage: caopd analyze RUN [RUN...] [--out DIR] [--no-figures]\n"
            "       caopd analyze SWEEP_DIR|SUMMARY.h5 [--out DIR] [--no-figures]\n"
            "  RUN           a run directory (its results.h5 is read) or a results.h5 file; a run "
            "still\n"
            "                going shows the stages written so far; several runs go side by side\n"
            "  SWEEP_DIR     a sweep directory of caopd sweep: its finished cells are merged into\n"
            "                SWEEP_DIR/summary.h5, then analysed against OOD severity and along\n"
            "                the stage sequence (retention, CL tables, reliability) per series\n"
            "  SUMMARY.h5    a summary file of caopd merge, analysed the same way\n"
            "  --out DIR     where the CSVs, summary.json, figures and report.md (for a sweep:\n"
            "                report.md, severity.*, retention.csv, cl.csv, reliability.csv, "
            "figures) go\n"
            "                [RUN/analysis or SWEEP_DIR/analysis; required with several runs]\n"
            "  --no-figures  skip the PNG/SVG figures\n"
            "Outputs and columns: docs/analysis.md, docs/sweep.md.\n");
    return 2;
}

static int is_sweep_dir(const char *path) {
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", path, SWEEP_FILE);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && stat(p, &st) == 0;
}

static int is_summary(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    ckpt_reader *r = NULL;
    if (ckpt_reader_open(&r, path, NULL, 1 << 30, NULL)) return 0;
    const int yes = !strcmp(ckpt_reader_format(r), CKPT_FORMAT_SWEEP_SUMMARY);
    ckpt_reader_free(r);
    return yes;
}

/* Prints each line of notes on stderr as a warning. */
static void warn_lines(const char *notes) {
    while (notes && *notes) {
        const char *e = strchr(notes, '\n');
        const int len = e ? (int)(e - notes) : (int)strlen(notes);
        fprintf(stderr, "caopd analyze: warning: %.*s\n", len, notes);
        notes += len + (e ? 1 : 0);
    }
}

/* `caopd analyze SWEEP_DIR|SUMMARY.h5`: metrics against OOD severity, then along the stages. */
static int analyze_sweep(const char *path, int sweep_dir, const char *out, int figures) {
    char summary[4200], dir[4200];
    char err[SWEEP_ERR_CAP];
    if (sweep_dir) {
        snprintf(summary, sizeof summary, "%s/%s", path, SWEEP_SUMMARY_FILE);
        sweep_merge_info mi;
        if (sweep_merge(&path, 1, summary, &mi, err, sizeof err)) {
            fprintf(stderr, "caopd analyze: %s\n", err);
            return 1;
        }
        if (mi.skipped)
            fprintf(stderr,
                    "caopd analyze: warning: %d of %d cells are not finished and are left out:\n%s",
                    mi.n_cells - mi.n_merged, mi.n_cells, mi.skipped);
        fprintf(stderr, "caopd analyze: merged %d of %d cells into %s\n", mi.n_merged, mi.n_cells,
                summary);
        free(mi.skipped);
        snprintf(dir, sizeof dir, "%s/analysis", path);
    } else {
        snprintf(summary, sizeof summary, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(dir, sizeof dir, "%.*s/analysis", (int)(slash - path), path);
        else
            snprintf(dir, sizeof dir, "analysis");
    }
    if (out) snprintf(dir, sizeof dir, "%s", out);
    severity_table *t = NULL;
    if (severity_load(summary, &t, err, sizeof err)) {
        fprintf(stderr, "caopd analyze: %s\n", err);
        return 1;
    }
    char *text = NULL;
    int rc = 0;
    if (severity_tables(t, 0, &text)) {
        fprintf(stderr, "caopd analyze: out of memory\n");
        rc = 1;
    } else {
        printf("OOD severity: %d cells, %d series; mean over seeds [min, max]; severity 0 = "
               "in-distribution test\n%s",
               severity_n_cells(t), severity_n_series(t), text);
        fflush(stdout);
        if (severity_write(t, dir, figures, err, sizeof err)) {
            fprintf(stderr, "caopd analyze: %s\n", err);
            rc = 1;
        }
    }
    free(text);
    text = NULL;
    retention_analysis *ra = NULL;
    if (!rc && retention_build(t, summary, 1, &ra, err, sizeof err)) {
        fprintf(stderr, "caopd analyze: %s\n", err);
        rc = 1;
    }
    if (!rc) {
        warn_lines(retention_notes(ra));
        if (retention_summary(ra, 0, &text)) {
            fprintf(stderr, "caopd analyze: out of memory\n");
            rc = 1;
        } else {
            printf("\nAlong the stages (test split; mean over seeds; tables, curves and "
                   "reliability in report.md):\n%s",
                   text);
            fflush(stdout);
        }
    }
    if (!rc && retention_write(ra, dir, figures, err, sizeof err)) {
        fprintf(stderr, "caopd analyze: %s\n", err);
        rc = 1;
    }
    if (!rc)
        fprintf(
            stderr,
            "caopd analyze: wrote %s/report.md, severity.md, severity.csv, retention.csv, cl.csv, "
            "reliability.csv%s\n",
            dir, figures ? " and the figures" : "");
    free(text);
    retention_free(ra);
    severity_free(t);
    return rc;
}

int cli_analyze(int argc, char **argv) {
    const char *out = NULL;
    report_write_opts o = report_write_opts_default();
    const char **runs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *runs);
    int n = 0;
    if (!runs) {
        fprintf(stderr, "caopd analyze: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "--no-figures"))
            o.figures = 0;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(runs);
            usage();
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "caopd analyze: unexpected argument '%s'\n", a);
            free(runs);
            return usage();
        } else
            runs[n++] = a;
    }
    if (n == 0) {
        free(runs);
        return usage();
    }
    int sweeps = 0;
    for (int i = 0; i < n; i++)
        sweeps += is_sweep_dir(runs[i]) || is_summary(runs[i]);
    if (sweeps) {
        if (n > 1) {
            fprintf(stderr, "caopd analyze: give one sweep directory or summary file at a time (to "
                            "analyse several "
                            "sweeps together, caopd merge them into one summary first)\n");
            free(runs);
            return 2;
        }
        int rc = analyze_sweep(runs[0], is_sweep_dir(runs[0]), out, o.figures);
        free(runs);
        return rc;
    }
    if (n > 1 && !out) {
        fprintf(
            stderr,
            "caopd analyze: %d runs side by side need --out DIR (where the joint analysis goes)\n",
            n);
        free(runs);
        return 2;
    }
    report_set *s = NULL;
    if (report_set_new(&s)) {
        fprintf(stderr, "caopd analyze: out of memory\n");
        free(runs);
        return 1;
    }
    int rc = 0;
    for (int i = 0; !rc && i < n; i++)
        if (report_add_run(s, runs[i])) {
            fprintf(stderr, "caopd analyze: %s\n", report_errmsg(s));
            rc = 1;
        }
    char *text = NULL;
    if (!rc && report_tables(s, 0, &text)) {
        fprintf(stderr, "caopd analyze: %s\n", report_errmsg(s));
        rc = 1;
    }
    if (!rc) {
        fputs(text, stdout);
        fflush(stdout);
        const char *dir = out ? out : report_run_default_out(s, 0);
        if (report_write(s, dir, &o)) {
            fprintf(stderr, "caopd analyze: %s\n", report_errmsg(s));
            rc = 1;
        } else {
            fprintf(stderr,
                    "caopd analyze: wrote %s/report.md, metrics.csv, eval_results.csv, "
                    "summary.json%s\n",
                    dir, o.figures ? " and the figures" : "");
        }
    }
    free(text);
    report_set_free(s);
    free(runs);
    return rc;
}
