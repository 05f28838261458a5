/* The C metrics against the independent numpy reference: reads metrics_fixture.txt (written
 * by make_metrics_fixture.py), recomputes every case and compares within FIXTURE_TOL.
 * Bin edges and bin boundaries (lo/hi) must match bit for bit. Optional argv[1]: fixture. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef METRICS_FIXTURE_PATH
#define METRICS_FIXTURE_PATH "analysis/metrics_fixture.txt"
#endif

/* numpy sums pairwise, the C code left to right: they may differ in the last bits. */
#define FIXTURE_TOL 1e-12

enum { NSCALAR = 10 };
_Static_assert((int)NSCALAR == (int)METRICS_FIELD_COUNT,
               "the fixture lists every metrics_run field");
static const char *const scalar_keys[NSCALAR] = {
    "accuracy", "mean_conf",      "brier", "ocg",   "ece",
    "mce",      "ece_equal_mass", "spr",   "auroc", "format_fail_rate",
};

typedef struct fixture_case {
    char name[64];
    size_t n;
    double *conf;
    uint8_t *correct, *fail;
    double scalar[NSCALAR];
    metrics_bin bins[METRICS_NBINS], em_bins[METRICS_NBINS];
} fixture_case;

/* Both NaN, or both numbers within tol. */
static int same(double a, double b, double tol) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= tol;
}

#define CHECK_SAME(name, what, got, want, tol)                                                     \
    CHECK_MSG(same((got), (want), (tol)), "case %s: %s = %.17g, numpy %.17g", (name), (what),      \
              (double)(got), (double)(want))

static int read_double(FILE *f, double *v) {
    char tok[64];
    if (fscanf(f, "%63s", tok) != 1) return 0;
    char *end;
    *v = strtod(tok, &end); /* accepts "nan" */
    return *end == '\0';
}

static int read_flags(FILE *f, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int v;
        if (fscanf(f, "%d", &v) != 1 || (v != 0 && v != 1)) return 0;
        out[i] = (uint8_t)v;
    }
    return 1;
}

static int read_bin(FILE *f, metrics_bin *b, int expect_k) {
    int k;
    unsigned long count;
    if (fscanf(f, "%d %lu", &k, &count) != 2 || k != expect_k) return 0;
    b->count = count;
    return read_double(f, &b->lo) && read_double(f, &b->hi) && read_double(f, &b->mean_conf) &&
           read_double(f, &b->accuracy);
}

/* Reads the body of one case after "case"; 0 on a malformed file. */
static int read_case(FILE *f, fixture_case *fc) {
    unsigned long n;
    char key[64];
    if (fscanf(f, "%63s %lu", fc->name, &n) != 2 || n == 0) return 0;
    fc->n = n;
    fc->conf = malloc(n * sizeof(double));
    fc->correct = malloc(n);
    fc->fail = malloc(n);
    if (!fc->conf || !fc->correct || !fc->fail) return 0;
    if (fscanf(f, "%63s", key) != 1 || strcmp(key, "conf") != 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!read_double(f, &fc->conf[i])) return 0;
    if (fscanf(f, "%63s", key) != 1 || strcmp(key, "correct") != 0) return 0;
    if (!read_flags(f, fc->correct, n)) return 0;
    if (fscanf(f, "%63s", key) != 1 || strcmp(key, "fail") != 0) return 0;
    if (!read_flags(f, fc->fail, n)) return 0;
    for (int s = 0; s < NSCALAR; s++)
        if (fscanf(f, "%63s", key) != 1 || strcmp(key, scalar_keys[s]) != 0 ||
            !read_double(f, &fc->scalar[s]))
            return 0;
    for (int k = 0; k < METRICS_NBINS; k++)
        if (fscanf(f, "%63s", key) != 1 || strcmp(key, "bin") != 0 || !read_bin(f, &fc->bins[k], k))
            return 0;
    for (int k = 0; k < METRICS_NBINS; k++)
        if (fscanf(f, "%63s", key) != 1 || strcmp(key, "em_bin") != 0 ||
            !read_bin(f, &fc->em_bins[k], k))
            return 0;
    return fscanf(f, "%63s", key) == 1 && strcmp(key, "end") == 0;
}

static void check_bins(const char *name, const char *kind, const metrics_bin *got,
                       const metrics_bin *want) {
    for (int k = 0; k < METRICS_NBINS; k++) {
        CHECK_MSG(got[k].count == want[k].count, "case %s: %s %d count %zu, numpy %zu", name, kind,
                  k, got[k].count, want[k].count);
        CHECK_SAME(name, kind, got[k].lo, want[k].lo, 0.0); /* exact: edges or samples */
        CHECK_SAME(name, kind, got[k].hi, want[k].hi, 0.0);
        CHECK_SAME(name, kind, got[k].mean_conf, want[k].mean_conf, FIXTURE_TOL);
        CHECK_SAME(name, kind, got[k].accuracy, want[k].accuracy, FIXTURE_TOL);
    }
}

static void check_case(const fixture_case *fc) {
    const char *name = fc->name;
    metrics_run r;
    CHECK_EQ_INT(metrics_run_compute(fc->conf, fc->correct, fc->fail, fc->n, &r), METRICS_OK);
    for (int s = 0; s < NSCALAR; s++) {
        metrics_field fld = (metrics_field)s;
        CHECK_EQ_STR(metrics_field_name(fld), scalar_keys[s]); /* fixture order = enum order */
        CHECK_SAME(name, scalar_keys[s], metrics_run_get(&r, fld), fc->scalar[s], FIXTURE_TOL);
    }
    /* the single-metric functions too */
    CHECK_SAME(name, "ece()", metrics_ece(fc->conf, fc->correct, fc->n), fc->scalar[4],
               FIXTURE_TOL);
    CHECK_SAME(name, "brier()", metrics_brier(fc->conf, fc->correct, fc->n), fc->scalar[2],
               FIXTURE_TOL);
    double spr, auroc;
    CHECK_EQ_INT(metrics_ranking(fc->conf, fc->correct, fc->n, &spr, &auroc), METRICS_OK);
    CHECK_SAME(name, "ranking() spr", spr, fc->scalar[7], FIXTURE_TOL);
    CHECK_SAME(name, "ranking() auroc", auroc, fc->scalar[8], FIXTURE_TOL);

    check_bins(name, "bin", r.bins, fc->bins);
    metrics_bin em[METRICS_NBINS];
    CHECK_EQ_INT(metrics_bins_equal_mass(fc->conf, fc->correct, fc->n, em), METRICS_OK);
    check_bins(name, "em_bin", em, fc->em_bins);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : METRICS_FIXTURE_PATH;
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL,
              "cannot open %s (regenerate: /usr/bin/python3 "
              "tests/analysis/metrics/make_metrics_fixture.py)",
              path);
    if (!f) return check_report("test_metrics_fixture");

    int ncases = 0, edges_checked = 0;
    char key[256];
    while (fscanf(f, "%255s", key) == 1) {
        if (key[0] == '#') { /* comment: skip the line */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n') {
            }
            continue;
        }
        CHECK_MSG(strcmp(key, "case") == 0, "unexpected token '%s' in %s", key, path);
        if (strcmp(key, "case") != 0) break;
        fixture_case fc;
        memset(&fc, 0, sizeof fc);
        int ok = read_case(f, &fc);
        CHECK_MSG(ok, "malformed case %d (%s) in %s", ncases + 1, fc.name, path);
        if (ok) {
            check_case(&fc);
            if (!edges_checked) { /* numpy's edges, as printed, equal ours bit for bit */
                for (int k = 0; k < METRICS_NBINS; k++) {
                    CHECK(fc.bins[k].lo == metrics_bin_edge(k));
                    CHECK(fc.bins[k].hi == metrics_bin_edge(k + 1));
                }
                edges_checked = 1;
            }
            ncases++;
        }
        free(fc.conf);
        free(fc.correct);
        free(fc.fail);
        if (!ok) break;
    }
    fclose(f);
    CHECK_MSG(ncases >= 10, "only %d cases read from %s", ncases, path);
    fprintf(stderr, "test_metrics_fixture: %d cases from %s\n", ncases, path);
    return check_report("test_metrics_fixture");
}
