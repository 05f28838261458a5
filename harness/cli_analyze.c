/* cli_analyze.c: `caopd analyze RUN [RUN...] [--out DIR] [--no-figures]`: loads each run's
 * results file (report.h), prints the tables on stdout, writes the outputs into DIR (default
 * RUN/analysis for one run) and says where they are on stderr. Exit status: 0 done, 1 a run
 * could not be analysed or an output not written (the message names the file), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_analyze.h"
#include "report.h"

static int usage(void) {
    fprintf(stderr, "usage: caopd analyze RUN [RUN...] [--out DIR] [--no-figures]\n"
                    "  RUN           a run directory (its results.h5 is read) or a results.h5 file; a run still\n"
                    "                going shows the stages written so far; several runs go side by side\n"
                    "  --out DIR     where the CSVs, summary.json, figures and report.md go\n"
                    "                [RUN/analysis; required with several runs]\n"
                    "  --no-figures  skip the PNG/SVG figures\n"
                    "Outputs and columns: docs/analysis.md.\n");
    return 2;
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
        if (!strcmp(a, "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--no-figures")) o.figures = 0;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(runs);
            usage();
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "caopd analyze: unexpected argument '%s'\n", a);
            free(runs);
            return usage();
        } else runs[n++] = a;
    }
    if (n == 0) {
        free(runs);
        return usage();
    }
    if (n > 1 && !out) {
        fprintf(stderr, "caopd analyze: %d runs side by side need --out DIR (where the joint analysis goes)\n", n);
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
            fprintf(stderr, "caopd analyze: wrote %s/report.md, metrics.csv, eval_results.csv, summary.json%s\n", dir,
                    o.figures ? " and the figures" : "");
        }
    }
    free(text);
    report_set_free(s);
    free(runs);
    return rc;
}
