/* cli_matrices.c: the stages x domains matrices printed at the end of caopd run and caopd sweep. */
#include "harness/cli/cli_matrices.h"

#include <stdio.h>
#include <stdlib.h>

#include "checkpoints/ckpt.h"
#include "analysis/metrics/metrics.h"
#include "harness/run/results.h"
#include "harness/run/run.h"

/* Row labels "0 base", "1 mod", ...: each stage's name from the results file (its number alone
 * when the name cannot be read). */
static void row_labels(const char *dir, int rows, char (*label)[40]) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, RUN_RESULTS_FILE);
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    if (ckpt_reader_open(&rd, path, NULL, RESULTS_FORMAT_VERSION, &ce)) rd = NULL;
    for (int i = 0; i < rows; i++) {
        char g[32], *name = NULL;
        snprintf(g, sizeof g, "stages/%d", i);
        if (rd && ckpt_reader_attr_str(rd, g, "name", &name) == CKPT_OK)
            snprintf(label[i], sizeof label[i], "%d %.24s", i, name);
        else
            snprintf(label[i], sizeof label[i], "%d", i);
        free(name);
    }
    ckpt_reader_free(rd);
}

/* Prints the stages x domains matrix of field f, readout q on the test split. Returns 0, 1 when
 * the run has no domain (a base-only run: a note is printed instead), -1 on a read error. */
static int print_matrix(const char *dir, const char *who, const char *title, metrics_field f,
                        metrics_readout q) {
    double *R = NULL;
    int rows = 0, nd = 0, version = 0;
    task_domain dom[TASK_N_DOMAINS];
    char err[1024];
    if (run_read_matrix(dir, "test", f, q, 0, &version, &R, &rows, dom, &nd, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", who, err);
        return -1;
    }
    if (nd == 0) { /* a base-only run (no domain stages) evaluates nothing */
        printf("a base-only run (no domain stages, nothing evaluated): the trained base is %s/%s\n",
               dir, RUN_CHECKPOINT_FILE);
        free(R);
        return 1;
    }
    if (q == METRICS_READOUT_EXPECTED && version < 2) {
        printf("%s: none (the results file has format_version %d, written before the expected "
               "readout)\n",
               title, version);
        free(R);
        return 0;
    }
    printf("%s (rows: model after stage; columns: domain, test split)\n%-12s", title, "stage");
    for (int j = 0; j < nd; j++)
        printf(" %7s", task_domain_name(dom[j]));
    printf("\n");
    char(*label)[40] = malloc(sizeof *label * (size_t)(rows > 0 ? rows : 1));
    if (!label) {
        fprintf(stderr, "%s: out of memory\n", who);
        free(R);
        return -1;
    }
    row_labels(dir, rows, label);
    for (int i = 0; i < rows; i++) {
        printf("%-12s", label[i]);
        for (int j = 0; j < nd; j++)
            printf(" %7.3f", R[i * nd + j]);
        printf("\n");
    }
    free(label);
    free(R);
    return 0;
}

int cli_print_run_matrices(const char *dir, const char *who) {
    const int shown =
        print_matrix(dir, who, "accuracy", METRICS_FIELD_ACCURACY, METRICS_READOUT_GREEDY);
    if (shown != 0) return shown;
    /* Calibration under both readouts (docs/metrics.md "Readouts"). */
    static const struct {
        const char *title;
        metrics_field f;
        metrics_readout q;
    } cal[] = {{"ECE, greedy readout", METRICS_FIELD_ECE, METRICS_READOUT_GREEDY},
               {"ECE, expected readout", METRICS_FIELD_ECE, METRICS_READOUT_EXPECTED},
               {"OCG, greedy readout", METRICS_FIELD_OCG, METRICS_READOUT_GREEDY},
               {"OCG, expected readout", METRICS_FIELD_OCG, METRICS_READOUT_EXPECTED}};
    for (size_t k = 0; k < sizeof cal / sizeof cal[0]; k++)
        if (print_matrix(dir, who, cal[k].title, cal[k].f, cal[k].q) < 0) return -1;
    /* A model that stops writing a confidence reads 0 and can look calibrated: the share of
     * format failures goes beside calibration, and cells above 10 % are flagged. */
    double *F = NULL;
    int rows = 0, nd = 0, version = 0, flagged = 0;
    task_domain dom[TASK_N_DOMAINS];
    char err[1024];
    if (run_read_matrix(dir, "test", METRICS_FIELD_FORMAT_FAIL_RATE, METRICS_READOUT_GREEDY, 0,
                        &version, &F, &rows, dom, &nd, err, sizeof err) == 0) {
        for (int i = 0; i < rows * nd; i++)
            flagged += F[i] > METRICS_FORMAT_FAIL_FLAG;
        if (flagged) {
            printf("WARNING: %d cell%s with more than %.0f%% format failures (no number after "
                   "'Confidence:', read as "
                   "confidence 0): calibration there is not meaningful\n",
                   flagged, flagged == 1 ? "" : "s", 100 * METRICS_FORMAT_FAIL_FLAG);
            if (print_matrix(dir, who, "format failures", METRICS_FIELD_FORMAT_FAIL_RATE,
                             METRICS_READOUT_GREEDY) < 0) {
                free(F);
                return -1;
            }
        } else {
            double worst = 0;
            for (int i = 0; i < rows * nd; i++)
                worst = F[i] > worst ? F[i] : worst;
            printf("format failures: at most %.1f%% in any cell\n", 100 * worst);
        }
    }
    free(F);
    return 0;
}
