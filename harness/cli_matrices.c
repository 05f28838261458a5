/* cli_matrices.c: the stages x domains matrices printed at the end of caopd run and caopd sweep. */
#include "cli_matrices.h"

#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"
#include "run.h"

/* Prints the stages x domains matrix of field f, readout q on the test split. Returns 0, 1 when
 * the run has no domain (a base-only run: a note is printed instead), -1 on a read error. */
static int print_matrix(const char *dir, const char *who, const char *title, metrics_field f, metrics_readout q) {
    double *R = NULL;
    int rows = 0, nd = 0, version = 0;
    task_domain dom[TASK_N_DOMAINS];
    char err[1024];
    if (run_read_matrix(dir, "test", f, q, 0, &version, &R, &rows, dom, &nd, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", who, err);
        return -1;
    }
    if (nd == 0) { /* a base-only run (no domain stages) evaluates nothing */
        printf("a base-only run (no domain stages, nothing evaluated): the trained base is %s/%s\n", dir,
               RUN_CHECKPOINT_FILE);
        free(R);
        return 1;
    }
    if (q == METRICS_READOUT_EXPECTED && version < 2) {
        printf("%s: none (the results file has format_version %d, written before the expected readout)\n", title,
               version);
        free(R);
        return 0;
    }
    printf("%s (rows: model after stage; columns: domain, test split)\n%-12s", title, "stage");
    for (int j = 0; j < nd; j++) printf(" %7s", task_domain_name(dom[j]));
    printf("\n");
    for (int i = 0; i < rows; i++) {
        char name[32];
        if (i == 0) snprintf(name, sizeof name, "0 base");
        else snprintf(name, sizeof name, "%d", i);
        printf("%-12s", name);
        for (int j = 0; j < nd; j++) printf(" %7.3f", R[i * nd + j]);
        printf("\n");
    }
    free(R);
    return 0;
}

int cli_print_run_matrices(const char *dir, const char *who) {
    const int shown = print_matrix(dir, who, "accuracy", METRICS_FIELD_ACCURACY, METRICS_READOUT_GREEDY);
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
    return 0;
}
