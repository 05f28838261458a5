/* severity.c: reading a caopd-sweep-summary file (ckpt_ reader), grouping its cells' last-stage
 * metrics by series, OOD kind, severity and domain, the mean and spread over seeds, and the
 * outputs (table, severity.csv, severity.md, figures); each cell's whole test-split matrices are
 * kept for retention.c. Conventions: docs/sweep.md. */
#include "analysis/report/severity.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoints/ckpt.h"
#include "analysis/figures/plot.h"
#include "analysis/metrics/csv.h"
#include "analysis/report/report_util.h"
#include "analysis/metrics/strbuf.h"
#include "common/files.h"
#include "common/strings.h"

/* the caopd-sweep-summary format_version this build reads (1: greedy only) */
#define SUMMARY_VERSION_MAX 2
#define SEV_POINTS 16                            /* severities on one curve (0..3 today) */
#define SEV_FORMAT_FAIL (SEVERITY_N_METRICS - 1) /* format_fail_rate, the last metric */

const char *const severity_metric_names[SEVERITY_N_METRICS] = {
    "accuracy",     "ece_greedy",   "ece_expected",   "ocg_greedy",
    "ocg_expected", "brier_greedy", "brier_expected", "spr_greedy",
    "spr_expected", "auroc_greedy", "auroc_expected", "format_fail_rate"};
static const char *const metric_titles[SEVERITY_N_METRICS] = {
    "Accuracy",       "ECE (greedy)",   "ECE (expected)",   "OCG (greedy)",
    "OCG (expected)", "Brier (greedy)", "Brier (expected)", "SPR (greedy)",
    "SPR (expected)", "AUROC (greedy)", "AUROC (expected)", "Format-failure rate"};
#define N_FIGURE_METRICS 5 /* accuracy, ECE and OCG of both readouts */

/* Whether metric m depends on the readout, and is the expected one. */
static int is_expected(int m) {
    return strstr(severity_metric_names[m], "_expected") != NULL;
}

/* One value: a cell's last stage on one split and domain (dom 0 = the mean over domains).
 * kind -1: the test split, counted under every kind. */
typedef struct obs {
    int series, kind, sev, dom;
    long long seed;
    double v[SEVERITY_N_METRICS];
} obs;

typedef struct strs {
    char **v;
    int n;
} strs;

/* A cell as severity_get_cell shows it, with the storage its pointers point into. */
typedef struct cellrec {
    severity_cell pub;
    char *name, *results;
    strs stage_names, domains; /* stage_names.n = T + 1, or 0 when unknown */
    double *test[SEVERITY_N_METRICS];
} cellrec;

struct severity_table {
    strs series, series_method, kinds, doms; /* doms.v[0] = "mean" */
    obs *o;
    size_t n_obs, cap;
    severity_row *rows;
    size_t n_rows;
    int n_cells;
    int n_greedy_only; /* cells without the expected readout */
    cellrec *cells;    /* n_cells, summary order */
};

/* ---- helpers ------------------------------------------------------------------------------ */

/* Index of s in l, added when missing; -1 when out of memory. */
static int intern(strs *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return i;
    char **nv = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
    if (!nv) return -1;
    l->v = nv;
    if (!(l->v[l->n] = str_dup(s))) return -1;
    return l->n++;
}

static void strs_free(strs *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL, l->n = 0;
}

/* The comma-separated field i of list into buf; 0, or -1 when there is none. */
static int list_item(const char *list, int i, char *buf, size_t len) {
    const char *p = list;
    for (int k = 0; k < i; k++) {
        p = strchr(p, ',');
        if (!p) return -1;
        p++;
    }
    size_t n = strcspn(p, ",");
    if (n >= len) n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return 0;
}

static int list_count(const char *list) {
    if (!list || !*list) return 0;
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

/* Every comma-separated field of list appended to l (which may hold duplicates); -1 when out
 * of memory. */
static int split_into(strs *l, const char *list) {
    const int n = list_count(list);
    char **nv = realloc(l->v, (size_t)(l->n + n + 1) * sizeof *nv);
    if (!nv) return -1;
    l->v = nv;
    for (int i = 0; i < n; i++) {
        const char *p = list;
        for (int k = 0; k < i; k++)
            p = strchr(p, ',') + 1;
        const size_t len = strcspn(p, ",");
        char *x = malloc(len + 1);
        if (!x) return -1;
        memcpy(x, p, len), x[len] = '\0';
        l->v[l->n++] = x;
    }
    return 0;
}

static void cellrec_free(cellrec *c) {
    free(c->name), free(c->results);
    strs_free(&c->stage_names), strs_free(&c->domains);
    for (int m = 0; m < SEVERITY_N_METRICS; m++)
        free(c->test[m]);
}

static int add_obs(severity_table *t, obs o) {
    if (t->n_obs == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        obs *no = realloc(t->o, cap * sizeof *no);
        if (!no) return -1;
        t->o = no, t->cap = cap;
    }
    t->o[t->n_obs++] = o;
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------- */

/* The axes (other than seed, ood_severity and method) whose value differs between the cells of
 * the summary, or that some cells lack (merged sweeps): the ones that name a series. */
static int varying_axes(ckpt_reader *rd, const ckpt_list *cells, strs *vary, char *err,
                        size_t errlen, const char *path) {
    enum { MAXN = 64 };
    char *name[MAXN], *first[MAXN];
    int seen[MAXN], differs[MAXN], n = 0, rc = SEVERITY_OK;
    for (size_t i = 0; !rc && i < cells->n; i++) {
        char g[300], ga[320];
        snprintf(g, sizeof g, "cells/%s", cells->v[i].name);
        snprintf(ga, sizeof ga, "%s/axes", g);
        char *axes = NULL;
        if (ckpt_reader_attr_str(rd, g, "axes", &axes)) {
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE,
                               "%s: %s; the summary is damaged or was not written by caopd "
                               "merge",
                               path, ckpt_reader_errmsg(rd));
            break;
        }
        for (int a = 0; !rc && a < list_count(axes); a++) {
            char nm[512];
            list_item(axes, a, nm, sizeof nm);
            if (!strcmp(nm, "seed") || !strcmp(nm, "ood_severity") || !strcmp(nm, "method"))
                continue;
            char *val = NULL;
            if (ckpt_reader_attr_str(rd, ga, nm, &val)) {
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE, "%s: %s", path,
                                   ckpt_reader_errmsg(rd));
                break;
            }
            int k = 0;
            while (k < n && strcmp(name[k], nm))
                k++;
            if (k == n) {
                if (n == MAXN || !(name[n] = str_dup(nm))) {
                    free(val);
                    rc = rutil_set_err(err, errlen,
                                       n == MAXN ? SEVERITY_ERR_FILE : SEVERITY_ERR_NOMEM,
                                       "%s: more than %d axes in the cells", path, MAXN);
                    break;
                }
                first[n] = val, seen[n] = 1, differs[n] = 0, n++;
                continue;
            }
            seen[k]++;
            differs[k] |= strcmp(first[k], val) != 0;
            free(val);
        }
        free(axes);
    }
    for (int k = 0; k < n; k++) {
        if (!rc && (differs[k] || seen[k] < (int)cells->n) && intern(vary, name[k]) < 0)
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
        free(name[k]), free(first[k]);
    }
    return rc;
}

/* Reads one cell group g of the summary; its series is the method and the varying axes. */
static int load_cell(severity_table *t, ckpt_reader *rd, const char *path, const char *g,
                     const strs *vary, int version, cellrec *cr, char *err, size_t errlen) {
    char *method = NULL, *axes = NULL, *splits = NULL, *domains = NULL, *stage_names = NULL;
    int64_t seed = 0, results_version = 1;
    int rc = SEVERITY_OK;
    /* What the sequence analysis (retention.h) reads besides: the cell's name, results file and
     * stage names (absent from hand-made or old summaries: "", "" and unknown). */
    if (ckpt_reader_attr_str(rd, g, "name", &cr->name)) cr->name = str_dup(g);
    if (ckpt_reader_attr_str(rd, g, "results", &cr->results)) cr->results = str_dup("");
    if (ckpt_reader_attr_str(rd, g, "stage_names", &stage_names)) stage_names = NULL;
    if (!cr->name || !cr->results)
        rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    /* A version 2 summary names the format_version of each cell's results (1: no expected
     * readout, its expected matrices are NaN); a version 1 summary has no expected matrices. */
    if (version >= 2) ckpt_reader_attr_i64(rd, g, "results_format_version", &results_version);
    if (version < 2 || results_version < 2) t->n_greedy_only++;
    if (ckpt_reader_attr_str(rd, g, "method", &method) ||
        ckpt_reader_attr_str(rd, g, "axes", &axes) ||
        ckpt_reader_attr_str(rd, g, "splits", &splits) ||
        ckpt_reader_attr_str(rd, g, "domains", &domains) ||
        ckpt_reader_attr_i64(rd, g, "seed", &seed))
        rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE,
                           "%s: %s; the summary is damaged or was not written by caopd merge", path,
                           ckpt_reader_errmsg(rd));
    /* the series: the method, then every other axis but seed and ood_severity */
    strbuf label = {0};
    if (!rc) strbuf_printf(&label, "%s", method);
    const int nax = list_count(axes);
    for (int a = 0; !rc && a < nax; a++) {
        char name[512], ga[600];
        list_item(axes, a, name, sizeof name);
        int varies = 0;
        for (int q = 0; q < vary->n; q++)
            varies |= !strcmp(vary->v[q], name);
        if (!varies) continue;
        char *val = NULL;
        snprintf(ga, sizeof ga, "%s/axes", g);
        if (ckpt_reader_attr_str(rd, ga, name, &val))
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE, "%s: %s", path,
                               ckpt_reader_errmsg(rd));
        else
            strbuf_printf(&label, " %s=%s", name, val);
        free(val);
    }
    if (!rc && label.oom) rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    int series = -1;
    if (!rc) {
        series = intern(&t->series, label.p);
        if (series == t->series_method.n && series >= 0) { /* a new series: its method */
            char **nv = realloc(t->series_method.v, (size_t)(series + 1) * sizeof *nv);
            if (nv) t->series_method.v = nv, nv[series] = str_dup(method), t->series_method.n++;
            if (!nv || !nv[series]) series = -1;
        }
        if (series < 0) rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    }
    free(label.p);
    const int nd = list_count(domains), ns = list_count(splits);
    int *dom = calloc((size_t)(nd > 0 ? nd : 1), sizeof *dom);
    if (!rc && !dom) rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    if (!rc && (split_into(&cr->domains, domains) ||
                (stage_names && split_into(&cr->stage_names, stage_names))))
        rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    cr->pub.series = series;
    cr->pub.seed = seed;
    cr->pub.n_stages = -1;
    for (int j = 0; !rc && j < nd; j++) {
        char name[64];
        list_item(domains, j, name, sizeof name);
        if ((dom[j] = intern(&t->doms, name)) < 0)
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    }
    double *buf = NULL;
    for (int sp = 0; !rc && sp < ns; sp++) {
        char split[64], gs[512];
        list_item(splits, sp, split, sizeof split);
        snprintf(gs, sizeof gs, "%s/metrics/%s", g, split);
        char *kind = NULL;
        int64_t sev = 0;
        if (ckpt_reader_attr_str(rd, gs, "kind", &kind) ||
            ckpt_reader_attr_i64(rd, gs, "severity", &sev)) {
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE, "%s: %s", path,
                               ckpt_reader_errmsg(rd));
            break;
        }
        int k = -1;
        if (sev > 0 && (k = intern(&t->kinds, kind)) < 0)
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
        const int is_test = sev == 0 && !strcmp(kind, "test");
        free(kind);
        double last[SEVERITY_N_METRICS][64];
        for (int m = 0; !rc && m < SEVERITY_N_METRICS; m++) {
            char dp[600], name[64];
            snprintf(name, sizeof name, "%s", severity_metric_names[m]);
            if (version <
                2) { /* version 1 names: the greedy readout under the plain name, no expected */
                if (is_expected(m)) {
                    for (int j = 0; j < nd && j < 64; j++)
                        last[m][j] = NAN;
                    continue;
                }
                char *u = strstr(name, "_greedy");
                if (u) *u = '\0';
            }
            snprintf(dp, sizeof dp, "%s/%s", gs, name);
            ckpt_info in;
            ckpt_kind kd;
            if (m == SEV_FORMAT_FAIL && ckpt_reader_kind(rd, dp, &kd) == CKPT_ERR_NOTFOUND) {
                /* format_fail_rate: n/a in a summary that does not carry it */
                for (int j = 0; j < nd && j < 64; j++)
                    last[m][j] = NAN;
                continue;
            }
            if (ckpt_reader_info(rd, dp, &in)) {
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE, "%s: %s", path,
                                   ckpt_reader_errmsg(rd));
                break;
            }
            if (in.rank != 2 || in.dims[0] < 1 || in.dims[1] != nd || nd > 64) {
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE,
                                   "%s: %s is not a (stages, %d domains) matrix; the summary "
                                   "is damaged",
                                   path, dp, nd);
                break;
            }
            free(buf);
            buf = malloc(in.nelems * sizeof *buf);
            if (!buf)
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
            else if (ckpt_reader_read(rd, dp, CKPT_DTYPE_F64, buf, in.nelems))
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE, "%s: %s", path,
                                   ckpt_reader_errmsg(rd));
            for (int j = 0; !rc && j < nd; j++)
                last[m][j] = buf[(size_t)(in.dims[0] - 1) * (size_t)nd + (size_t)j];
            if (!rc && is_test) { /* the whole test-split matrix, for the sequence analysis */
                if (cr->pub.n_stages >= 0 && cr->pub.n_stages != (int)in.dims[0] - 1) {
                    rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE,
                                       "%s: %s has %d rows, other metrics of the split %d; "
                                       "the summary is damaged",
                                       path, dp, (int)in.dims[0], cr->pub.n_stages + 1);
                    break;
                }
                cr->pub.n_stages = (int)in.dims[0] - 1;
                free(cr->test[m]);
                cr->test[m] = buf, buf = NULL;
            }
        }
        /* version 1: the expected matrices of the test split are NaN */
        for (int m = 0; !rc && is_test && m < SEVERITY_N_METRICS; m++) {
            if (cr->test[m] || cr->pub.n_stages < 0) continue;
            const size_t cnt = (size_t)(cr->pub.n_stages + 1) * (size_t)nd;
            if (!(cr->test[m] = malloc((cnt ? cnt : 1) * sizeof(double)))) {
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
                break;
            }
            for (size_t q = 0; q < cnt; q++)
                cr->test[m][q] = NAN;
        }
        for (int j = -1; !rc && j < nd; j++) {
            obs o = {.series = series,
                     .kind = sev > 0 ? k : -1,
                     .sev = (int)sev,
                     .dom = j < 0 ? 0 : dom[j],
                     .seed = seed};
            for (int m = 0; m < SEVERITY_N_METRICS; m++) {
                if (j >= 0) {
                    o.v[m] = last[m][j];
                    continue;
                }
                double sum = 0;
                for (int q = 0; q < nd; q++)
                    sum += last[m][q];
                o.v[m] = nd ? sum / nd : NAN;
            }
            if (add_obs(t, o)) rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
        }
    }
    free(buf), free(dom);
    free(method), free(axes), free(splits), free(domains), free(stage_names);
    if (!rc) {
        if (cr->pub.n_stages < 0) cr->pub.n_stages = -1; /* no test split */
        if (cr->stage_names.n != cr->pub.n_stages + 1) strs_free(&cr->stage_names); /* unknown */
        cr->pub.name = cr->name;
        cr->pub.results = cr->results;
        cr->pub.stage_names = cr->stage_names.n ? (const char *const *)cr->stage_names.v : NULL;
        cr->pub.n_domains = cr->domains.n;
        cr->pub.domains = (const char *const *)cr->domains.v;
        for (int m = 0; m < SEVERITY_N_METRICS; m++)
            cr->pub.test[m] = cr->pub.n_stages >= 0 ? cr->test[m] : NULL;
    }
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The rows: every (series, kind, severity, domain) with its statistics over seeds. */
static int build_rows(severity_table *t) {
    /* test-split values belong to every kind (severity 0 of each curve) */
    if (t->kinds.n == 0 && intern(&t->kinds, "test") < 0) return -1;
    int max_sev = 0;
    for (size_t i = 0; i < t->n_obs; i++)
        max_sev = t->o[i].sev > max_sev ? t->o[i].sev : max_sev;
    const size_t n_keys =
        (size_t)t->series.n * (size_t)t->kinds.n * (size_t)(max_sev + 1) * (size_t)t->doms.n;
    t->rows = calloc(n_keys ? n_keys : 1, sizeof *t->rows);
    long long *seeds = malloc((t->n_obs + 1) * sizeof *seeds);
    double *per_seed = malloc((t->n_obs + 1) * SEVERITY_N_METRICS * sizeof *per_seed);
    double *v = malloc((t->n_obs + 1) * sizeof *v);
    if (!t->rows || !seeds || !per_seed || !v) {
        free(seeds), free(per_seed), free(v);
        return -1;
    }
    for (int s = 0; s < t->series.n; s++)
        for (int k = 0; k < t->kinds.n; k++)
            for (int sev = 0; sev <= max_sev; sev++)
                for (int d = 0; d < t->doms.n; d++) {
                    int ns = 0;
                    for (size_t i = 0; i < t->n_obs; i++) {
                        const obs *o = &t->o[i];
                        if (o->series != s || o->sev != sev || o->dom != d ||
                            (o->kind != k && o->kind != -1))
                            continue;
                        int q = 0;
                        while (q < ns && seeds[q] != o->seed)
                            q++;
                        if (q == ns) seeds[ns++] = o->seed;
                    }
                    if (!ns) continue;
                    /* per seed: the mean of its cells (equal seeds train the same model when only
                       the evaluation differs) */
                    for (int q = 0; q < ns; q++)
                        for (int m = 0; m < SEVERITY_N_METRICS; m++) {
                            double sum = 0;
                            int cnt = 0;
                            for (size_t i = 0; i < t->n_obs; i++) {
                                const obs *o = &t->o[i];
                                if (o->series != s || o->sev != sev || o->dom != d ||
                                    o->seed != seeds[q] || (o->kind != k && o->kind != -1) ||
                                    isnan(o->v[m]))
                                    continue;
                                sum += o->v[m], cnt++;
                            }
                            per_seed[q * SEVERITY_N_METRICS + m] = cnt ? sum / cnt : NAN;
                        }
                    severity_row *r = &t->rows[t->n_rows++];
                    r->series = t->series.v[s];
                    r->method = t->series_method.v[s];
                    r->kind = t->kinds.v[k];
                    r->severity = sev;
                    r->domain = t->doms.v[d];
                    r->n_seeds = ns;
                    for (int m = 0; m < SEVERITY_N_METRICS; m++) {
                        double sum = 0;
                        int n = 0;
                        for (int q = 0; q < ns; q++) {
                            double x = per_seed[q * SEVERITY_N_METRICS + m];
                            if (!isnan(x)) v[n++] = x, sum += x;
                        }
                        r->mean[m] = r->sd[m] = r->min[m] = r->max[m] = NAN;
                        if (!n) continue;
                        qsort(v, (size_t)n, sizeof v[0], cmp_double);
                        r->mean[m] = sum / n, r->min[m] = v[0], r->max[m] = v[n - 1];
                        if (n >= 2) {
                            double sq = 0;
                            for (int q = 0; q < n; q++)
                                sq += (v[q] - r->mean[m]) * (v[q] - r->mean[m]);
                            r->sd[m] = sqrt(sq / (n - 1));
                        }
                    }
                }
    free(seeds), free(per_seed), free(v);
    return 0;
}

int severity_load(const char *path, severity_table **out, char *err, size_t errlen) {
    if (!path || !out)
        return rutil_set_err(err, errlen, SEVERITY_ERR_ARG, "severity_load: no path");
    *out = NULL;
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    if (ckpt_reader_open(&rd, path, CKPT_FORMAT_SWEEP_SUMMARY, SUMMARY_VERSION_MAX, &ce))
        return rutil_set_err(err, errlen, SEVERITY_ERR_FILE, "%s", ce.msg);
    severity_table *t = calloc(1, sizeof *t);
    int rc = t && intern(&t->doms, "mean") == 0
                 ? SEVERITY_OK
                 : rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    ckpt_list cells = {0};
    if (!rc && ckpt_reader_list(rd, "cells", &cells))
        rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE,
                           "%s: %s; the summary is damaged or was not written by caopd merge", path,
                           ckpt_reader_errmsg(rd));
    strs vary = {0};
    if (!rc) rc = varying_axes(rd, &cells, &vary, err, errlen, path);
    if (!rc && cells.n && !(t->cells = calloc(cells.n, sizeof *t->cells)))
        rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < cells.n; i++) {
        char g[300];
        snprintf(g, sizeof g, "cells/%s", cells.v[i].name);
        rc = load_cell(t, rd, path, g, &vary, ckpt_reader_format_version(rd), &t->cells[i], err,
                       errlen);
        t->n_cells++; /* its storage is freed with the table either way */
    }
    strs_free(&vary);
    ckpt_list_free(&cells);
    ckpt_reader_free(rd);
    if (!rc && t->n_cells == 0)
        rc = rutil_set_err(err, errlen, SEVERITY_ERR_FILE,
                           "%s: holds no finished cell; let cells finish (caopd sweep), then "
                           "merge them again (caopd merge)",
                           path);
    if (!rc && build_rows(t)) rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    if (rc) {
        severity_free(t);
        return rc;
    }
    *out = t;
    return SEVERITY_OK;
}

void severity_free(severity_table *t) {
    if (!t) return;
    strs_free(&t->series), strs_free(&t->series_method), strs_free(&t->kinds), strs_free(&t->doms);
    for (int i = 0; i < t->n_cells; i++)
        cellrec_free(&t->cells[i]);
    free(t->cells);
    free(t->o), free(t->rows);
    free(t);
}

int severity_n_cells(const severity_table *t) {
    return t ? t->n_cells : 0;
}

int severity_n_series(const severity_table *t) {
    return t ? t->series.n : 0;
}

const char *severity_series_name(const severity_table *t, int s) {
    return t && s >= 0 && s < t->series.n ? t->series.v[s] : NULL;
}

const severity_cell *severity_get_cell(const severity_table *t, int i) {
    return t && i >= 0 && i < t->n_cells ? &t->cells[i].pub : NULL;
}

int severity_n_kinds(const severity_table *t) {
    return t ? t->kinds.n : 0;
}

const char *severity_kind(const severity_table *t, int k) {
    return t && k >= 0 && k < t->kinds.n ? t->kinds.v[k] : NULL;
}

/* ---- tables --------------------------------------------------------------------------------- */

static void cell_text(const severity_row *r, int m, char *buf, size_t len) {
    if (isnan(r->mean[m]))
        snprintf(buf, len, "n/a");
    else if (r->n_seeds >= 2)
        snprintf(buf, len, "%.3f [%.3f, %.3f]", r->mean[m], r->min[m], r->max[m]);
    else
        snprintf(buf, len, "%.3f", r->mean[m]);
}

int severity_tables(const severity_table *t, int markdown, char **out) {
    if (!t || !out) return SEVERITY_ERR_ARG;
    *out = NULL;
    enum { NCOL = 4 + SEVERITY_N_METRICS };
    static const char *const head[NCOL] = {
        "series",       "OOD kind",     "severity",       "seeds",
        "accuracy",     "ECE greedy",   "ECE expected",   "OCG greedy",
        "OCG expected", "Brier greedy", "Brier expected", "SPR greedy",
        "SPR expected", "AUROC greedy", "AUROC expected", "format failures"};
    size_t w[NCOL];
    for (int c = 0; c < NCOL; c++)
        w[c] = strlen(head[c]);
    char cellbuf[NCOL][128];
    /* two passes: widths, then text */
    strbuf b = {0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (markdown) {
                strbuf_printf(&b, "|");
                for (int c = 0; c < NCOL; c++)
                    strbuf_printf(&b, " %s |", head[c]);
                strbuf_printf(&b, "\n|");
                for (int c = 0; c < NCOL; c++)
                    strbuf_printf(&b, "%s|", c >= 2 ? "---:" : "---");
                strbuf_printf(&b, "\n");
            } else {
                for (int c = 0; c + 1 < NCOL; c++)
                    strbuf_printf(&b, "%-*s  ", (int)w[c], head[c]);
                strbuf_printf(&b, "%s\n", head[NCOL - 1]);
            }
        }
        for (size_t i = 0; i < t->n_rows; i++) {
            const severity_row *r = &t->rows[i];
            if (strcmp(r->domain, "mean")) continue;
            snprintf(cellbuf[0], sizeof cellbuf[0], "%s", r->series);
            snprintf(cellbuf[1], sizeof cellbuf[1], "%s", r->severity ? r->kind : "(test)");
            snprintf(cellbuf[2], sizeof cellbuf[2], "%d", r->severity);
            snprintf(cellbuf[3], sizeof cellbuf[3], "%d", r->n_seeds);
            for (int m = 0; m < SEVERITY_N_METRICS; m++)
                cell_text(r, m, cellbuf[4 + m], sizeof cellbuf[4 + m]);
            /* severity 0 repeats under every kind: show it once */
            int dup = 0;
            for (size_t q = 0; q < i && r->severity == 0; q++)
                dup |= t->rows[q].severity == 0 && !strcmp(t->rows[q].domain, "mean") &&
                       t->rows[q].series == r->series;
            if (dup) continue;
            for (int c = 0; c < NCOL; c++) {
                if (pass == 0) {
                    if (strlen(cellbuf[c]) > w[c]) w[c] = strlen(cellbuf[c]);
                } else if (markdown) {
                    strbuf_printf(&b, "%s %s %s", c ? "" : "|", cellbuf[c],
                                  c + 1 < NCOL ? "|" : "|\n");
                } else if (c + 1 < NCOL) {
                    strbuf_printf(&b, "%-*s  ", (int)w[c], cellbuf[c]);
                } else {
                    strbuf_printf(&b, "%s\n", cellbuf[c]);
                }
            }
        }
    }
    /* A completion without a confidence reads 0, which can look calibrated: flag the rows where
     * more than METRICS_FORMAT_FAIL_FLAG of the answers have none. */
    for (size_t i = 0; i < t->n_rows; i++) {
        const severity_row *r = &t->rows[i];
        if (strcmp(r->domain, "mean") || !(r->mean[SEV_FORMAT_FAIL] > METRICS_FORMAT_FAIL_FLAG))
            continue;
        int dup = 0; /* severity 0 repeats under every kind */
        for (size_t q = 0; q < i && r->severity == 0; q++)
            dup |= t->rows[q].severity == 0 && !strcmp(t->rows[q].domain, "mean") &&
                   t->rows[q].series == r->series;
        if (dup) continue;
        strbuf_printf(&b,
                      "%swarning: %s, %s severity %d: format failures %.3f (above %.2f): a "
                      "completion without a "
                      "confidence reads 0, so calibration there looks better than it is\n",
                      markdown ? "\n" : "", r->series, r->severity ? r->kind : "test", r->severity,
                      r->mean[SEV_FORMAT_FAIL], METRICS_FORMAT_FAIL_FLAG);
    }
    if (t->n_greedy_only)
        strbuf_printf(&b,
                      "%snote: %d of %d cells have no expected readout (merged from results files "
                      "of format_version 1, "
                      "or a summary of format_version 1): their expected values are n/a and the "
                      "expected columns "
                      "average the other cells only\n",
                      markdown ? "\n" : "", t->n_greedy_only, t->n_cells);
    if (b.oom) {
        free(b.p);
        return SEVERITY_ERR_NOMEM;
    }
    *out = b.p ? b.p : str_dup("");
    return *out ? SEVERITY_OK : SEVERITY_ERR_NOMEM;
}

static int write_csv(const severity_table *t, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f)
        return rutil_set_err(err, errlen, SEVERITY_ERR_IO,
                             "%s: cannot write: %s; check the --out folder", path, strerror(errno));
    fputs("series,method,kind,severity,domain,n_seeds", f);
    for (int m = 0; m < SEVERITY_N_METRICS; m++) {
        const char *n = severity_metric_names[m];
        fprintf(f, ",%s_mean,%s_sd,%s_min,%s_max", n, n, n, n);
    }
    fputc('\n', f);
    for (size_t i = 0; i < t->n_rows; i++) {
        const severity_row *r = &t->rows[i];
        csv_str(f, r->series), fputc(',', f), csv_str(f, r->method);
        fprintf(f, ",%s,%d,%s,%d", r->kind, r->severity, r->domain, r->n_seeds);
        for (int m = 0; m < SEVERITY_N_METRICS; m++) {
            fputc(',', f), csv_num(f, r->mean[m]);
            fputc(',', f), csv_num(f, r->sd[m]);
            fputc(',', f), csv_num(f, r->min[m]);
            fputc(',', f), csv_num(f, r->max[m]);
        }
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad)
        return rutil_set_err(err, errlen, SEVERITY_ERR_IO, "%s: writing failed: %s", path,
                             strerror(errno));
    return SEVERITY_OK;
}

/* One figure: metric m against severity on kind k, one series per sweep series. */
static int figure(const severity_table *t, const char *dir, int k, int m, strbuf *md, char *err,
                  size_t errlen) {
    const int nser = t->series.n, nx = SEV_POINTS;
    plot_series *ser = calloc((size_t)nser, sizeof *ser);
    double *buf = calloc((size_t)nser * (size_t)nx * 4, sizeof *buf);
    if (!ser || !buf) {
        free(ser), free(buf);
        return rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    }
    double top = 0.1;
    for (int s = 0; s < nser; s++) {
        double *x = buf + (size_t)s * nx * 4, *y = x + nx, *lo = y + nx, *hi = lo + nx;
        size_t n = 0;
        int banded = 0;
        for (size_t i = 0; i < t->n_rows; i++) {
            const severity_row *r = &t->rows[i];
            if (r->series != t->series.v[s] || r->kind != t->kinds.v[k] ||
                strcmp(r->domain, "mean") || n == (size_t)nx)
                continue;
            x[n] = r->severity, y[n] = r->mean[m];
            lo[n] = r->n_seeds >= 2 ? r->min[m] : NAN;
            hi[n] = r->n_seeds >= 2 ? r->max[m] : NAN;
            banded |= r->n_seeds >= 2;
            if (isfinite(hi[n]) && hi[n] > top) top = hi[n];
            if (isfinite(y[n]) && y[n] > top) top = y[n];
            n++;
        }
        ser[s] = (plot_series){.name = t->series.v[s],
                               .x = x,
                               .y = y,
                               .lo = banded ? lo : NULL,
                               .hi = banded ? hi : NULL,
                               .n = n,
                               .color = s % PLOT_NCOLORS + 1};
    }
    char title[400], stem[300], ylabel[128];
    snprintf(title, sizeof title, "%s against OOD severity (%s; 0 = in-distribution test)",
             metric_titles[m], t->kinds.v[k]);
    snprintf(ylabel, sizeof ylabel, "%s (mean over seeds, band min-max)", metric_titles[m]);
    snprintf(stem, sizeof stem, "severity_%s_%s", t->kinds.v[k], severity_metric_names[m]);
    plot_figure fig = plot_figure_default();
    fig.title = title;
    fig.xlabel = "OOD severity";
    fig.ylabel = ylabel;
    fig.band_note = "bands: min-max over seeds";
    if (m == 0) fig.ymin = 0, fig.ymax = 1;                                        /* accuracy */
    if (m == 1 || m == 2) fig.ymin = 0, fig.ymax = fmin(1.0, ceil(top * 10) / 10); /* ECE */
    int rc = SEVERITY_OK;
    static const char *const ext[] = {"png", "svg"};
    for (int e = 0; !rc && e < 2; e++) {
        char p[2400];
        snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[e]);
        fig.path = p;
        if (plot_severity_curves(&fig, ser, (size_t)nser) != PLOT_OK)
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_PLOT, "%s", plot_errmsg());
    }
    if (!rc)
        strbuf_printf(md, "![%s against severity, %s](%s.png)\n", metric_titles[m], t->kinds.v[k],
                      stem);
    free(ser), free(buf);
    return rc;
}

int severity_write(const severity_table *t, const char *dir, int figures, char *err,
                   size_t errlen) {
    if (!t || !dir || !*dir)
        return rutil_set_err(err, errlen, SEVERITY_ERR_ARG,
                             "severity_write: no table or output folder");
    if (file_mkdir_p(dir))
        return rutil_set_err(err, errlen, SEVERITY_ERR_IO,
                             "%s: cannot create the output folder: %s", dir, strerror(errno));
    char path[2400];
    snprintf(path, sizeof path, "%s/severity.csv", dir);
    int rc = write_csv(t, path, err, errlen);
    if (rc) return rc;
    strbuf md = {0};
    strbuf_printf(
        &md,
        "# OOD severity\n\nWritten by `caopd analyze` from a sweep summary (%d cells, %d series). "
        "Each "
        "value is a cell's model after its last stage, averaged over the evaluation domains; cells "
        "of "
        "one seed are averaged first, then the mean over seeds is shown with [min, max] over "
        "seeds. "
        "Severity 0 is the in-distribution test split. Every (series, kind, severity, domain) with "
        "the sample standard deviation as well: [severity.csv](severity.csv). Definitions: "
        "docs/sweep.md.\n\n",
        t->n_cells, t->series.n);
    char *tab = NULL;
    rc = severity_tables(t, 1, &tab);
    if (rc) {
        free(md.p);
        return rutil_set_err(err, errlen, rc, "out of memory");
    }
    strbuf_printf(&md, "%s", tab);
    free(tab);
    if (figures) {
        strbuf_printf(&md, "\n## Figures\n\nEach figure is written as PNG and SVG (same name, "
                           "`.svg`); one line per "
                           "series, the band spans the seeds' minimum to maximum.\n\n");
        for (int k = 0; !rc && k < t->kinds.n; k++)
            for (int m = 0; !rc && m < N_FIGURE_METRICS; m++)
                rc = figure(t, dir, k, m, &md, err, errlen);
    }
    if (!rc && md.oom) rc = rutil_set_err(err, errlen, SEVERITY_ERR_NOMEM, "out of memory");
    if (!rc) {
        snprintf(path, sizeof path, "%s/severity.md", dir);
        FILE *f = fopen(path, "w");
        if (!f)
            rc = rutil_set_err(err, errlen, SEVERITY_ERR_IO, "%s: cannot write: %s", path,
                               strerror(errno));
        else {
            fputs(md.p, f);
            int bad = ferror(f);
            if (fclose(f) || bad)
                rc = rutil_set_err(err, errlen, SEVERITY_ERR_IO, "%s: writing failed: %s", path,
                                   strerror(errno));
        }
    }
    free(md.p);
    return rc;
}
