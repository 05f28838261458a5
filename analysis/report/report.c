/* report.c: `caopd analyze` as a library: loading results files (ckpt_ reader), recomputing and
 * checking the metrics, CL / calibration-retention / OOD-gap summaries, and the outputs
 * (tables, CSVs, JSON, figures, report.md). Conventions: docs/analysis.md. */
#include "analysis/report/report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "checkpoints/ckpt.h"
#include "analysis/figures/plot.h"
#include "analysis/metrics/csv.h"
#include "analysis/report/report_util.h"
#include "analysis/metrics/strbuf.h"
#include "common/files.h"
#include "common/strings.h"

/* the caopd-results format_version this build reads (1: greedy only; 3: with the per-sample texts)
 */
#define REPORT_FORMAT_VERSION_MAX 3
#define MSG_CAP 4096

/* Splits "a,b,c" into a malloc'd array of malloc'd strings. Returns the count, -1 on OOM. */
static int split_list(const char *s, char ***out) {
    *out = NULL;
    int n = 0;
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    n++;
    char **v = calloc((size_t)n, sizeof *v);
    if (!v) return -1;
    const char *p = s;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        v[i] = malloc(len + 1);
        if (!v[i]) {
            for (int k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return -1;
        }
        memcpy(v[i], p, len);
        v[i][len] = '\0';
        p = e ? e + 1 : p + len;
    }
    *out = v;
    return n;
}

static void free_list(char **v, int n) {
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* "ood_length_2" -> kind "ood_length", severity 2; "test" -> "test", 0. */
static void parse_split(const char *name, char *kind, size_t klen, int *sev) {
    snprintf(kind, klen, "%s", name);
    *sev = 0;
    const char *u = strrchr(name, '_');
    if (!u || !u[1]) return;
    for (const char *p = u + 1; *p; p++)
        if (*p < '0' || *p > '9') return;
    *sev = atoi(u + 1);
    if ((size_t)(u - name) < klen) kind[u - name] = '\0';
}

/* ---- the set ------------------------------------------------------------------------------ */

typedef struct cell {
    int present;
    metrics_run m[METRICS_READOUT_COUNT]; /* recomputed from the per-sample arrays, per readout; the
                                             expected one of a version 1 file: NaN metrics */
    double mean_mass;   /* mean confidence_format_mass, NaN for a version 1 file */
    double ent_answer;  /* mean answer_entropy (nats), NaN when absent or n = 0 */
    double ent_conf;    /* mean conf_entropy */
    double mean_tokens; /* mean n_tokens */
} cell;

typedef struct rstage {
    int present;
    char *name, *method; /* attributes of stages/<i> */
    long long steps;
} rstage;

typedef struct run {
    char *path, *dir, *label, *method, *status, *spec_name, *out_default;
    long long seed;
    int has_seed;
    int T, nd, ns;       /* domain stages, evaluation domains, splits */
    int version;         /* the results file's format_version: 1 has no expected readout */
    char **dom, **split; /* nd, ns names */
    char *
        *stage_dom; /* T + 1 stage names from the spec ("base", domains), NULL entries if unknown */
    rstage *st;     /* T + 1 */
    cell *c;        /* (T + 1) * nd * ns: (i * nd + d) * ns + s */
    int n_present;  /* stages written */
    int cl_ok;      /* stages and domains line up: T == nd, stage j learns dom[j-1] */
    char cl_note[512];
} run;

struct report_set {
    run **runs;
    size_t n;
    char msg[MSG_CAP];
    strbuf notes;
};

const char *report_status_str(int status) {
    switch (status) {
    case REPORT_OK:
        return "REPORT_OK";
    case REPORT_ERR_ARG:
        return "REPORT_ERR_ARG";
    case REPORT_ERR_NOMEM:
        return "REPORT_ERR_NOMEM";
    case REPORT_ERR_IO:
        return "REPORT_ERR_IO";
    case REPORT_ERR_FILE:
        return "REPORT_ERR_FILE";
    case REPORT_ERR_MISMATCH:
        return "REPORT_ERR_MISMATCH";
    case REPORT_ERR_PLOT:
        return "REPORT_ERR_PLOT";
    default:
        return "?";
    }
}

static int set_err(report_set *s, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    return status;
}

int report_set_new(report_set **out) {
    if (!out) return REPORT_ERR_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? REPORT_OK : REPORT_ERR_NOMEM;
}

static void run_free(run *r) {
    if (!r) return;
    free(r->path), free(r->dir), free(r->label), free(r->method), free(r->status),
        free(r->spec_name);
    free(r->out_default);
    free_list(r->dom, r->nd);
    free_list(r->split, r->ns);
    if (r->stage_dom) free_list(r->stage_dom, r->T + 1);
    if (r->st)
        for (int i = 0; i <= r->T; i++)
            free(r->st[i].name), free(r->st[i].method);
    free(r->st);
    free(r->c);
    free(r);
}

void report_set_free(report_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++)
        run_free(s->runs[i]);
    free(s->runs);
    free(s->notes.p);
    free(s);
}

const char *report_errmsg(const report_set *s) {
    return s ? s->msg : "";
}

static cell *cell_at(const run *r, int i, int d, int sp) {
    return &r->c[((size_t)i * (size_t)r->nd + (size_t)d) * (size_t)r->ns + (size_t)sp];
}

static int find_name(char **v, int n, const char *name) {
    for (int i = 0; name && i < n; i++)
        if (!strcmp(v[i], name)) return i;
    return -1;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Reads a whole 1-D dataset of the expected dtype into a malloc'd buffer (*n elements).
 * Returns 0, or sets the set's message and returns REPORT_ERR_FILE / NOMEM. optional: a missing
 * dataset gives *buf = NULL and 0. */
static int read_array(report_set *s, ckpt_reader *rd, const char *file, const char *g,
                      const char *name, ckpt_dtype dt, int optional, void **buf, size_t *n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g, name);
    *buf = NULL, *n = 0;
    ckpt_info info;
    int rc = ckpt_reader_info(rd, p, &info);
    if (rc == CKPT_ERR_NOTFOUND && optional) return 0;
    if (rc)
        return set_err(s, REPORT_ERR_FILE,
                       "%s: %s; the results file lacks a dataset of the layout (docs/results.md): "
                       "it is damaged or "
                       "was not written by caopd run",
                       file, ckpt_reader_errmsg(rd));
    if (info.dtype != dt || info.rank != 1)
        return set_err(s, REPORT_ERR_FILE,
                       "%s: %s is a %s array of rank %d, expected a 1-D %s array (docs/results.md)",
                       file, p, ckpt_dtype_name(info.dtype), info.rank, ckpt_dtype_name(dt));
    *buf = malloc(info.nelems * ckpt_dtype_size(dt) + 1);
    if (!*buf) return set_err(s, REPORT_ERR_NOMEM, "out of memory reading %s", p);
    if (ckpt_reader_read(rd, p, dt, *buf, info.nelems)) {
        free(*buf), *buf = NULL;
        return set_err(s, REPORT_ERR_FILE, "%s: %s", file, ckpt_reader_errmsg(rd));
    }
    *n = info.nelems;
    return 0;
}

/* The shortest of %.15g / %.17g that reads back as v (for messages). */
static const char *fmt_rt(double v, char *buf, size_t len) {
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v && !isnan(v)) snprintf(buf, len, "%.17g", v);
    return buf;
}

static int same_value(double stored, double recomputed) {
    if (isnan(stored) || isnan(recomputed)) return isnan(stored) && isnan(recomputed);
    return fabs(stored - recomputed) <= REPORT_ATTR_TOL;
}

/* Loads one (stage, domain, split) group into *c and compares the stored attributes; mismatches
 * are appended to mm (count in *n_mm). */
/* The expected readout's metrics of a version 1 file: the readout-free fields of greedy, NaN
 * for the rest, empty bins. */
static metrics_run no_expected(const metrics_run *greedy) {
    metrics_run m = *greedy;
    m.mean_conf = m.brier = m.ocg = m.ece = m.mce = m.ece_equal_mass = m.spr = m.auroc = NAN;
    for (int b = 0; b < METRICS_NBINS; b++)
        m.bins[b].count = 0, m.bins[b].mean_conf = m.bins[b].accuracy = NAN;
    return m;
}

/* Loads one (stage, domain, split) group into *c and compares the stored attributes; mismatches
 * are appended to mm (count in *n_mm). Version 2 stores confidence_greedy, confidence_expected
 * and confidence_format_mass; version 1 only confidence (the greedy readout). */
static int load_cell(report_set *s, ckpt_reader *rd, const run *r, const char *g, cell *c,
                     strbuf *mm, int *n_mm) {
    void *conf = NULL, *cexp = NULL, *mass = NULL, *cor = NULL, *ff = NULL, *ea = NULL, *ec = NULL,
         *nt = NULL;
    size_t n_conf, n_exp = 0, n_mass = 0, n_cor, n_ff, n_ea, n_ec, n_nt;
    const int v2 = r->version >= 2;
    int rc = read_array(s, rd, r->path, g, v2 ? "confidence_greedy" : "confidence", CKPT_DTYPE_F64,
                        0, &conf, &n_conf);
    if (!rc && v2)
        rc = read_array(s, rd, r->path, g, "confidence_expected", CKPT_DTYPE_F64, 0, &cexp, &n_exp);
    if (!rc && v2)
        rc = read_array(s, rd, r->path, g, "confidence_format_mass", CKPT_DTYPE_F64, 0, &mass,
                        &n_mass);
    if (!rc) rc = read_array(s, rd, r->path, g, "correct", CKPT_DTYPE_U8, 0, &cor, &n_cor);
    if (!rc) rc = read_array(s, rd, r->path, g, "format_fail", CKPT_DTYPE_U8, 1, &ff, &n_ff);
    if (!rc) rc = read_array(s, rd, r->path, g, "answer_entropy", CKPT_DTYPE_F64, 1, &ea, &n_ea);
    if (!rc) rc = read_array(s, rd, r->path, g, "conf_entropy", CKPT_DTYPE_F64, 1, &ec, &n_ec);
    if (!rc) rc = read_array(s, rd, r->path, g, "n_tokens", CKPT_DTYPE_I64, 1, &nt, &n_nt);
    if (!rc && (n_cor != n_conf || (ff && n_ff != n_conf) || (ea && n_ea != n_conf) ||
                (ec && n_ec != n_conf) || (nt && n_nt != n_conf) ||
                (v2 && (n_exp != n_conf || n_mass != n_conf))))
        rc = set_err(s, REPORT_ERR_FILE,
                     "%s: the per-sample arrays of %s have different lengths (confidence %zu, "
                     "correct %zu); the file is "
                     "damaged",
                     r->path, g, n_conf, n_cor);
    for (int q = 0; !rc && q < (v2 ? METRICS_READOUT_COUNT : 1); q++) {
        metrics_status ms = metrics_run_compute(q ? cexp : conf, cor, ff, n_conf, &c->m[q]);
        if (ms != METRICS_OK)
            rc = set_err(s, ms == METRICS_ERR_NOMEM ? REPORT_ERR_NOMEM : REPORT_ERR_FILE,
                         "%s: %s/%s: %s", r->path, g,
                         v2 ? (q ? "confidence_expected" : "confidence_greedy") : "confidence",
                         metrics_status_str(ms));
    }
    if (!rc && !v2) c->m[METRICS_READOUT_EXPECTED] = no_expected(&c->m[METRICS_READOUT_GREEDY]);
    if (!rc) {
        double sa = 0, sc = 0, st = 0, sm = 0;
        for (size_t k = 0; k < n_conf; k++) {
            if (ea) sa += ((double *)ea)[k];
            if (ec) sc += ((double *)ec)[k];
            if (nt) st += (double)((int64_t *)nt)[k];
            if (mass) sm += ((double *)mass)[k];
        }
        c->ent_answer = ea && n_conf ? sa / (double)n_conf : NAN;
        c->ent_conf = ec && n_conf ? sc / (double)n_conf : NAN;
        c->mean_tokens = nt && n_conf ? st / (double)n_conf : NAN;
        c->mean_mass = mass && n_conf ? sm / (double)n_conf : NAN;
        c->present = 1;
        /* The stored attributes against the recomputed values: every field of every readout the
         * file has, under its name for the file's version, and (version 2) mean_format_mass. */
        for (int k = 0; !rc && k <= METRICS_READOUT_COUNT * METRICS_FIELD_COUNT; k++) {
            char key[40];
            const char *nm;
            double want;
            if (k == METRICS_READOUT_COUNT * METRICS_FIELD_COUNT) {
                if (!v2) break;
                nm = "mean_format_mass", want = c->mean_mass;
            } else {
                const metrics_field f = (metrics_field)(k % METRICS_FIELD_COUNT);
                const metrics_readout q = (metrics_readout)(k / METRICS_FIELD_COUNT);
                if (q != METRICS_READOUT_GREEDY && !metrics_field_per_readout(f))
                    continue; /* stored once */
                if (!v2 && q != METRICS_READOUT_GREEDY) continue;
                nm = v2 ? metrics_field_key(f, q, key, sizeof key) : metrics_field_name(f);
                want = metrics_run_get(&c->m[q], f);
            }
            double v;
            if (ckpt_reader_attr_f64(rd, g, nm, &v)) {
                rc = set_err(s, REPORT_ERR_FILE,
                             "%s: %s; every evaluation group carries its metrics as attributes "
                             "(docs/results.md): the "
                             "file is damaged or was not written by caopd run",
                             r->path, ckpt_reader_errmsg(rd));
                break;
            }
            if (!same_value(v, want)) {
                char b1[40], b2[40];
                if (*n_mm < 8)
                    strbuf_printf(mm, "\n  %s: %s stored %s, recomputed %s", g, nm,
                                  fmt_rt(v, b1, sizeof b1), fmt_rt(want, b2, sizeof b2));
                (*n_mm)++;
            }
        }
        static const char *const counts[] = {"n", "n_correct", "n_format_fail"};
        const metrics_run *m0 = &c->m[METRICS_READOUT_GREEDY];
        const size_t cv[] = {m0->n, m0->n_correct, m0->n_format_fail};
        for (int k = 0; !rc && k < 3; k++) {
            int64_t v;
            if (ckpt_reader_attr_i64(rd, g, counts[k], &v)) {
                rc = set_err(s, REPORT_ERR_FILE,
                             "%s: %s; the file is damaged or was not written by caopd run", r->path,
                             ckpt_reader_errmsg(rd));
                break;
            }
            if (v != (int64_t)cv[k]) {
                if (*n_mm < 8)
                    strbuf_printf(mm, "\n  %s: %s stored %lld, recomputed %zu", g, counts[k],
                                  (long long)v, cv[k]);
                (*n_mm)++;
            }
        }
    }
    free(conf), free(cexp), free(mass), free(cor), free(ff), free(ea), free(ec), free(nt);
    return rc;
}

/* Reads a required string attribute of the root. */
static int root_str(report_set *s, ckpt_reader *rd, const char *file, const char *name,
                    char **out) {
    if (ckpt_reader_attr_str(rd, "", name, out) == CKPT_OK) return 0;
    return set_err(s, REPORT_ERR_FILE,
                   "%s: is a caopd-results file but has no string attribute '%s' at the root (%s); "
                   "the file is "
                   "damaged or was not written by caopd run (layout: docs/results.md)",
                   file, name, ckpt_reader_errmsg(rd));
}

/* seed, name and stage domains from the spec text (best effort: a spec that does not parse
 * leaves them unknown). */
static void read_spec(run *r, const char *spec) {
    cJSON *j = spec ? cJSON_Parse(spec) : NULL;
    if (!j) return;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (cJSON_IsNumber(seed)) r->seed = (long long)seed->valuedouble, r->has_seed = 1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (cJSON_IsString(name)) r->spec_name = str_dup(name->valuestring);
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(j, "stages");
    if (cJSON_IsArray(stages) && cJSON_GetArraySize(stages) == r->T) {
        r->stage_dom = calloc((size_t)r->T + 1, sizeof *r->stage_dom);
        if (r->stage_dom) {
            r->stage_dom[0] = str_dup("base");
            for (int i = 0; i < r->T; i++) {
                const cJSON *d =
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(stages, i), "domain");
                r->stage_dom[i + 1] = str_dup(cJSON_IsString(d) ? d->valuestring : "?");
            }
        }
    }
    cJSON_Delete(j);
}

/* The name of stage i: the stage group's attribute, else the spec's, else NULL. */
static const char *stage_name(const run *r, int i) {
    if (i < 0 || i > r->T) return NULL;
    if (r->st[i].present && r->st[i].name) return r->st[i].name;
    if (r->stage_dom && r->stage_dom[i]) return r->stage_dom[i];
    return i == 0 ? "base" : NULL;
}

static int load_run(report_set *s, run *r, const char *path) {
    struct stat stt;
    char file[2100], dir[2048];
    if (stat(path, &stt) != 0)
        return set_err(s, REPORT_ERR_FILE,
                       "%s: no such file or directory; pass a run directory (holding results.h5) "
                       "or a results.h5 "
                       "file",
                       path);
    if (S_ISDIR(stt.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        size_t L = strlen(dir);
        while (L > 1 && dir[L - 1] == '/')
            dir[--L] = '\0';
        snprintf(file, sizeof file, "%s/results.h5", dir);
    } else {
        snprintf(file, sizeof file, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - path ? slash - path : 1), path);
        else
            snprintf(dir, sizeof dir, ".");
    }
    r->path = str_dup(file), r->dir = str_dup(dir);
    char od[2100];
    snprintf(od, sizeof od, "%s/analysis", dir);
    r->out_default = str_dup(od);
    if (!r->path || !r->dir || !r->out_default)
        return set_err(s, REPORT_ERR_NOMEM, "out of memory");

    ckpt_reader *rd = NULL;
    ckpt_error e;
    if (ckpt_reader_open(&rd, file, CKPT_FORMAT_RESULTS, REPORT_FORMAT_VERSION_MAX, &e))
        return set_err(s, REPORT_ERR_FILE, "%s", e.msg);
    r->version = ckpt_reader_format_version(rd);
    char *doms = NULL, *splits = NULL, *spec = NULL;
    int64_t T = -1;
    int rc = root_str(s, rd, file, "status", &r->status);
    if (!rc) rc = root_str(s, rd, file, "domains", &doms);
    if (!rc) rc = root_str(s, rd, file, "splits", &splits);
    if (!rc && ckpt_reader_attr_i64(rd, "", "n_stages", &T))
        rc = set_err(s, REPORT_ERR_FILE,
                     "%s: is a caopd-results file but has no integer attribute 'n_stages' at the "
                     "root; the file is "
                     "damaged or was not written by caopd run (docs/results.md)",
                     file);
    if (!rc && (T < 0 || T > 100000))
        rc = set_err(s, REPORT_ERR_FILE, "%s: n_stages = %lld is out of range; the file is damaged",
                     file, (long long)T);
    if (!rc) {
        r->T = (int)T;
        r->nd = split_list(doms, &r->dom);
        r->ns = split_list(splits, &r->split);
        if (r->nd < 0 || r->ns < 0) {
            r->nd = r->nd < 0 ? 0 : r->nd, r->ns = r->ns < 0 ? 0 : r->ns;
            rc = set_err(s, REPORT_ERR_NOMEM, "out of memory");
        } else if (r->nd == 0 && r->T == 0)
            rc = set_err(s, REPORT_ERR_FILE,
                         "%s: a base-only run (no domain stages): it evaluates nothing, so there "
                         "is nothing to analyse; its trained base is the run's checkpoint.h5",
                         file);
        else if (r->nd == 0 || r->ns == 0)
            rc = set_err(s, REPORT_ERR_FILE,
                         "%s: the root attribute '%s' is empty; the file is damaged", file,
                         r->nd == 0 ? "domains" : "splits");
    }
    if (!rc) {
        if (ckpt_reader_attr_str(rd, "", "spec", &spec) == CKPT_OK) read_spec(r, spec);
        r->st = calloc((size_t)r->T + 1, sizeof *r->st);
        r->c = calloc(((size_t)r->T + 1) * (size_t)r->nd * (size_t)r->ns, sizeof *r->c);
        if (!r->st || !r->c) rc = set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    ckpt_list stages = {0};
    if (!rc) {
        ckpt_kind k;
        int krc = ckpt_reader_kind(rd, "stages", &k);
        if (krc == CKPT_OK && k == CKPT_KIND_GROUP) {
            if (ckpt_reader_list(rd, "stages", &stages))
                rc = set_err(s, REPORT_ERR_FILE, "%s: %s", file, ckpt_reader_errmsg(rd));
        } else if (krc == CKPT_OK || strcmp(r->status, "running") != 0) {
            rc = set_err(s, REPORT_ERR_FILE,
                         "%s: has no group 'stages' although its status is '%s'; the file is "
                         "damaged or was not "
                         "written by caopd run (docs/results.md)",
                         file, r->status);
        }
    }
    strbuf mm = {0};
    int n_mm = 0;
    for (size_t k = 0; !rc && k < stages.n; k++) {
        const char *nm = stages.v[k].name;
        char *end;
        long i = strtol(nm, &end, 10);
        if (*end || end == nm || i < 0 || i > r->T || stages.v[k].type != CKPT_KIND_GROUP) {
            rc = set_err(s, REPORT_ERR_FILE,
                         "%s: stages/%s is not a stage of this run (stages are groups 0..%d); the "
                         "file is damaged or of "
                         "another layout",
                         file, nm, r->T);
            break;
        }
        char g[512];
        snprintf(g, sizeof g, "stages/%ld", i);
        rstage *st = &r->st[i];
        int64_t steps = -1;
        if (ckpt_reader_attr_str(rd, g, "name", &st->name) ||
            ckpt_reader_attr_str(rd, g, "method", &st->method)) {
            rc = set_err(s, REPORT_ERR_FILE,
                         "%s: %s; a stage group carries 'name' and 'method' (docs/results.md)",
                         file, ckpt_reader_errmsg(rd));
            break;
        }
        ckpt_reader_attr_i64(rd, g, "steps", &steps);
        st->steps = steps;
        st->present = 1;
        r->n_present++;
        for (int d = 0; !rc && d < r->nd; d++)
            for (int sp = 0; !rc && sp < r->ns; sp++) {
                snprintf(g, sizeof g, "stages/%ld/domains/%s/%s", i, r->dom[d], r->split[sp]);
                rc = load_cell(s, rd, r, g, cell_at(r, (int)i, d, sp), &mm, &n_mm);
            }
    }
    ckpt_list_free(&stages);
    if (!rc && mm.oom) rc = set_err(s, REPORT_ERR_NOMEM, "out of memory");
    if (!rc && n_mm)
        rc = set_err(s, REPORT_ERR_MISMATCH,
                     "%s: %d stored metric attribute(s) differ from the values recomputed from the "
                     "per-sample arrays "
                     "(metrics_run_compute, tolerance %g):%s%s\nThe attributes and the arrays "
                     "disagree: the file was "
                     "edited or damaged, or written by a build with other metric conventions; "
                     "rerun the evaluation "
                     "(caopd run) to rewrite it",
                     file, n_mm, REPORT_ATTR_TOL, strbuf_str(&mm), n_mm > 8 ? "\n  ..." : "");
    free(mm.p);
    if (!rc && !strcmp(r->status, "finished") && r->n_present != r->T + 1)
        rc = set_err(s, REPORT_ERR_FILE,
                     "%s: has status 'finished' but only %d of its %d stages (0..%d); stage groups "
                     "are missing, the file "
                     "is damaged",
                     file, r->n_present, r->T + 1, r->T);
    free(doms), free(splits), free(spec);
    ckpt_reader_free(rd);
    if (rc) return rc;

    /* The method label: the distinct methods of the domain stages, in order. */
    strbuf m = {0};
    for (int i = 1; i <= r->T; i++) {
        if (!r->st[i].present) continue;
        int seen = 0;
        for (int k = 1; k < i; k++)
            if (r->st[k].present && !strcmp(r->st[k].method, r->st[i].method)) seen = 1;
        if (!seen) strbuf_printf(&m, "%s%s", m.n ? "+" : "", r->st[i].method);
    }
    r->method = str_dup(m.n ? strbuf_str(&m) : (r->st[0].present ? r->st[0].method : "?"));
    free(m.p);

    /* Do the stages line up with the domains? Stage j (1..T) must learn domain j - 1. */
    r->cl_ok = r->T == r->nd && r->T >= 1;
    for (int j = 1; r->cl_ok && j <= r->T; j++) {
        const char *nm = stage_name(r, j);
        if (nm && strcmp(nm, r->dom[j - 1])) r->cl_ok = 0;
    }
    if (!r->cl_ok) {
        strbuf order = {0};
        for (int j = 1; j <= r->T; j++) {
            const char *nm = stage_name(r, j);
            strbuf_printf(&order, "%s%s", j > 1 ? ", " : "", nm ? nm : "?");
        }
        if (r->T == 0)
            snprintf(r->cl_note, sizeof r->cl_note,
                     "run %%s has no domain stage: CL metrics need T >= 1; skipped");
        else
            snprintf(r->cl_note, sizeof r->cl_note,
                     "run %%s: its %d domain stages (%s) do not line up with its %d evaluation "
                     "domains (a domain is "
                     "repeated or out of order): the (T+1) x T matrix needs stage j to learn "
                     "domain j, so "
                     "ACC/BWT/FWT/forgetting are skipped; the stage x domain matrices still show "
                     "every stage",
                     r->T, strbuf_str(&order), r->nd);
        free(order.p);
    }
    return REPORT_OK;
}

/* Whether a run with status "running" is still being written: caopd run holds dir/run.lock
 * (flock) for as long as it lives (harness/run/run.h RUN_LOCK_FILE; docs/results.md), so a lock
 * nobody holds means the process is gone. The lock is local to this machine's kernel (and NFS
 * servers that forward flock). */
typedef enum liveness { LIVE_RUNNING, LIVE_STOPPED, LIVE_UNKNOWN } liveness;

static liveness run_liveness(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/run.lock", dir && dir[0] ? dir : ".");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LIVE_UNKNOWN; /* written by a caopd without the lock, or moved here */
    liveness l = LIVE_RUNNING;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) l = LIVE_STOPPED;
    close(fd);
    return l;
}

static void rebuild_notes(report_set *s) {
    s->notes.n = 0;
    if (s->notes.p) s->notes.p[0] = '\0';
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        if (r->n_present < r->T + 1) {
            int last = -1;
            for (int i = 0; i <= r->T; i++)
                if (r->st[i].present) last = i;
            char state[1200];
            const liveness l = strcmp(r->status, "running") ? LIVE_UNKNOWN : run_liveness(r->dir);
            if (strcmp(r->status, "running"))
                snprintf(state, sizeof state, "%s", r->status);
            else if (l == LIVE_RUNNING)
                snprintf(state, sizeof state, "still going (a process holds its run.lock)");
            else if (l == LIVE_STOPPED)
                snprintf(
                    state, sizeof state,
                    "stopped before finishing (status running, but no process holds its "
                    "run.lock: it was killed or crashed; continue it with caopd run --resume %s)",
                    r->dir);
            else
                snprintf(state, sizeof state,
                         "not finished (status running; it has no run.lock, so whether a "
                         "process still writes it is unknown; if none does, continue it with caopd "
                         "run --resume %s)",
                         r->dir);
            strbuf_printf(&s->notes,
                          "run %s is %s: %d of %d stages written (0..%d so far); the missing rows "
                          "are n/a, and the CL "
                          "metrics that read them are n/a until the run finishes\n",
                          r->label, state, r->n_present, r->T + 1, last);
        }
        if (!r->cl_ok) {
            char buf[600];
            snprintf(buf, sizeof buf, r->cl_note, r->label);
            strbuf_printf(&s->notes, "%s\n", buf);
        }
        if (r->version < 2)
            strbuf_printf(&s->notes,
                          "run %s has no expected readout: its results file has format_version %d, "
                          "written before "
                          "the expected confidence readout existed; only the greedy readout is "
                          "shown (its expected "
                          "values are n/a)\n",
                          r->label, r->version);
    }
}

int report_add_run(report_set *s, const char *path) {
    if (!s) return REPORT_ERR_ARG;
    s->msg[0] = '\0';
    if (!path || !*path) return set_err(s, REPORT_ERR_ARG, "report_add_run: no path given");
    run *r = calloc(1, sizeof *r);
    run **v = r ? realloc(s->runs, (s->n + 1) * sizeof *v) : NULL;
    if (!v) {
        free(r);
        return set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    s->runs = v;
    int rc = load_run(s, r, path);
    if (!rc) {
        /* The label: the directory's name, unique within the set. */
        const char *base = strrchr(r->dir, '/');
        base = base ? base + 1 : r->dir;
        if (!*base || !strcmp(base, "."))
            base = r->spec_name && *r->spec_name ? r->spec_name : "run";
        char lab[512];
        snprintf(lab, sizeof lab, "%s", base);
        for (int k = 2;; k++) {
            int clash = 0;
            for (size_t q = 0; q < s->n; q++)
                clash |= !strcmp(s->runs[q]->label, lab);
            if (!clash) break;
            snprintf(lab, sizeof lab, "%s-%d", base, k);
        }
        r->label = str_dup(lab);
        if (!r->label || !r->method) rc = set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        run_free(r);
        return rc;
    }
    s->runs[s->n++] = r;
    rebuild_notes(s);
    return REPORT_OK;
}

/* ---- accessors ---------------------------------------------------------------------------- */

size_t report_n_runs(const report_set *s) {
    return s ? s->n : 0;
}

#define RUN_OR(s, k, v)                                                                            \
    if (!(s) || (k) >= (s)->n) return v;
const char *report_run_label(const report_set *s, size_t k) {
    RUN_OR(s, k, NULL) return s->runs[k]->label;
}
const char *report_run_method(const report_set *s, size_t k) {
    RUN_OR(s, k, NULL) return s->runs[k]->method;
}
const char *report_run_path(const report_set *s, size_t k) {
    RUN_OR(s, k, NULL) return s->runs[k]->path;
}
const char *report_run_status(const report_set *s, size_t k) {
    RUN_OR(s, k, NULL) return s->runs[k]->status;
}
int report_run_n_stages(const report_set *s, size_t k) {
    RUN_OR(s, k, -1) return s->runs[k]->T;
}
const char *report_run_default_out(const report_set *s, size_t k) {
    RUN_OR(s, k, NULL) return s->runs[k]->out_default;
}

const char *report_notes(const report_set *s) {
    return s ? strbuf_str(&s->notes) : "";
}

int report_get(const report_set *s, size_t k, int stage, const char *domain, const char *split,
               metrics_readout readout, metrics_run *out) {
    if (!s || !out || k >= s->n || (int)readout < 0 || readout >= METRICS_READOUT_COUNT)
        return REPORT_ERR_ARG;
    const run *r = s->runs[k];
    int d = find_name(r->dom, r->nd, domain), sp = find_name(r->split, r->ns, split);
    if (d < 0 || sp < 0 || stage < 0 || stage > r->T || !cell_at(r, stage, d, sp)->present)
        return REPORT_ERR_ARG;
    *out = cell_at(r, stage, d, sp)->m[readout];
    return REPORT_OK;
}

int report_run_has_expected(const report_set *s, size_t k) {
    RUN_OR(s, k, -1) return s->runs[k]->version >= 2;
}

/* A metric and the readout it is read under (readout-free fields ignore the readout). */
typedef struct rmetric {
    metrics_field f;
    metrics_readout q;
} rmetric;

static double cell_value(const run *r, int i, int d, int sp, rmetric m) {
    const cell *c = cell_at(r, i, d, sp);
    return c->present ? metrics_run_get(&c->m[m.q], m.f) : NAN;
}

/* "ece_greedy", "accuracy", ... */
static const char *rm_key(rmetric m, char *buf, size_t cap) {
    return metrics_field_key(m.f, m.q, buf, cap);
}

#define RM_ACC ((rmetric){METRICS_FIELD_ACCURACY, METRICS_READOUT_GREEDY})
#define RM_ECE_G ((rmetric){METRICS_FIELD_ECE, METRICS_READOUT_GREEDY})
#define RM_ECE_E ((rmetric){METRICS_FIELD_ECE, METRICS_READOUT_EXPECTED})
#define RM_FMT ((rmetric){METRICS_FIELD_FORMAT_FAIL_RATE, METRICS_READOUT_GREEDY})

/* CL summaries of run r on split sp (cl_ok required), read by the metric's direction
 * (metrics_cl_compute_field: lower-is-better forgetting on -R, OCG on |OCG|). */
static metrics_cl run_cl(const run *r, int sp, rmetric m) {
    const size_t T = (size_t)r->T;
    double *R = malloc((T + 1) * T * sizeof *R);
    metrics_cl out = {NAN, NAN, NAN, NAN};
    if (R) {
        for (size_t i = 0; i <= T; i++)
            for (size_t j = 1; j <= T; j++)
                R[metrics_cl_index(T, i, j)] = cell_value(r, (int)i, (int)j - 1, sp, m);
        out = metrics_cl_compute_field(R, T, m.f);
    }
    free(R);
    return out;
}

int report_cl(const report_set *s, size_t k, const char *split, metrics_field f,
              metrics_readout readout, metrics_cl *out) {
    if (!s || !out || k >= s->n || (int)f < 0 || f >= METRICS_FIELD_COUNT || (int)readout < 0 ||
        readout >= METRICS_READOUT_COUNT)
        return REPORT_ERR_ARG;
    const run *r = s->runs[k];
    *out = (metrics_cl){NAN, NAN, NAN, NAN};
    int sp = find_name(r->split, r->ns, split);
    if (sp < 0)
        return set_err((report_set *)s, REPORT_ERR_ARG, "run %s has no split '%s'", r->label,
                       split);
    if (!r->cl_ok) {
        snprintf(((report_set *)s)->msg, MSG_CAP, r->cl_note, r->label);
        return REPORT_ERR_ARG;
    }
    *out = run_cl(r, sp, (rmetric){f, readout});
    return REPORT_OK;
}

/* ---- tables ------------------------------------------------------------------------------- */

/* A table of string cells, row 0 the header. */
typedef struct tab {
    int ncol, n;
    char **cells;
    int oom;
} tab;

static void tab_add(tab *t, const char *fmt, ...) {
    if (t->oom) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **v = realloc(t->cells, (size_t)(t->n + 1) * sizeof *v);
    char *c = str_dup(buf);
    if (!v || !c) {
        if (v) t->cells = v;
        free(c);
        t->oom = 1;
        return;
    }
    t->cells = v;
    t->cells[t->n++] = c;
}

static void tab_free(tab *t) {
    for (int k = 0; k < t->n; k++)
        free(t->cells[k]);
    free(t->cells);
    *t = (tab){0};
}

/* Emits t: markdown pipes, or aligned columns (first left, others right). Frees t's cells. */
static void tab_emit(strbuf *b, tab *t, int markdown) {
    if (t->oom) b->oom = 1;
    int rows = t->ncol ? t->n / t->ncol : 0;
    int w[64] = {0}, num[64] = {0};
    /* A column is numeric (right-aligned) when its first data cell is a number or "n/a". */
    for (int c = 1; c < t->ncol && c < 64 && rows > 1; c++) { /* column 0 (names) left */
        const char *x = t->cells[t->ncol + c];
        num[c] = (x[0] >= '0' && x[0] <= '9') || (x[0] == '-' && x[1] >= '0' && x[1] <= '9') ||
                 !strcmp(x, "n/a");
    }
    for (int k = 0; k < t->n && t->ncol <= 64; k++) {
        int len = (int)strlen(t->cells[k]);
        if (len > w[k % t->ncol]) w[k % t->ncol] = len;
    }
    for (int i = 0; i < rows && t->ncol <= 64; i++) {
        for (int c = 0; c < t->ncol; c++) {
            const char *x = t->cells[i * t->ncol + c];
            if (markdown)
                strbuf_printf(b, "| %s ", x);
            else if (!num[c])
                strbuf_printf(b, c ? "  %-*s" : "%-*s", c + 1 < t->ncol ? w[c] : 0, x);
            else
                strbuf_printf(b, c ? "  %*s" : "%*s", w[c], x);
        }
        strbuf_printf(b, markdown ? "|\n" : "\n");
        if (markdown && i == 0) {
            for (int c = 0; c < t->ncol; c++)
                strbuf_printf(b, num[c] ? "|---:" : "|:---");
            strbuf_printf(b, "|\n");
        }
    }
    for (int k = 0; k < t->n; k++)
        free(t->cells[k]);
    free(t->cells);
    *t = (tab){0};
}

static int test_split(const run *r) {
    int sp = find_name(r->split, r->ns, "test");
    return sp < 0 ? 0 : sp;
}

static void stage_label(const run *r, int i, char *buf, size_t len) {
    const char *nm = stage_name(r, i);
    snprintf(buf, len, "%d %s", i, nm ? nm : "");
}

static void matrix_table(strbuf *b, const run *r, rmetric f, const char *title, int md) {
    const int sp = test_split(r);
    if (f.q == METRICS_READOUT_EXPECTED && metrics_field_per_readout(f.f) && r->version < 2) {
        strbuf_printf(b,
                      md ? "\n**%s** — run `%s`: none (results file format_version %d, before the "
                           "expected readout)\n"
                         : "\n%s, run %s: none (results file format_version %d, before the "
                           "expected readout)\n",
                      title, r->label, r->version);
        return;
    }
    if (md)
        strbuf_printf(
            b, "\n**%s** — run `%s`, %s split (rows: model after stage i; columns: domain)\n\n",
            title, r->label, r->split[sp]);
    else
        strbuf_printf(b, "\n%s, run %s (rows: model after stage; columns: domain; %s split)\n",
                      title, r->label, r->split[sp]);
    tab t = {.ncol = r->nd + 1};
    tab_add(&t, "stage");
    for (int d = 0; d < r->nd; d++)
        tab_add(&t, "%s", r->dom[d]);
    for (int i = 0; i <= r->T; i++) {
        char lab[128], v[32];
        stage_label(r, i, lab, sizeof lab);
        tab_add(&t, "%s%s", lab, r->st[i].present ? "" : " (not yet)");
        for (int d = 0; d < r->nd; d++)
            tab_add(&t, "%s", rutil_fmt3(cell_value(r, i, d, sp, f), v, sizeof v));
    }
    tab_emit(b, &t, md);
}

/* The format failures of run r on the test split: the largest share over (stage, domain) and
 * where it is; one line, with the matrix and a warning when it exceeds METRICS_FORMAT_FAIL_FLAG. */
static void format_fail_line(strbuf *b, const run *r, int md) {
    const int sp = test_split(r);
    double worst = -1;
    int wi = 0, wd = 0;
    for (int i = 0; i <= r->T; i++)
        for (int d = 0; d < r->nd; d++) {
            const double v = cell_value(r, i, d, sp, RM_FMT);
            if (isfinite(v) && v > worst) worst = v, wi = i, wd = d;
        }
    if (worst < 0) return;
    char lab[128];
    stage_label(r, wi, lab, sizeof lab);
    if (worst <= METRICS_FORMAT_FAIL_FLAG) {
        strbuf_printf(b,
                      md ? "\nFormat failures, run `%s`: at most %.3f (after stage %s, %s).\n"
                         : "\nformat failures, run %s: at most %.3f (after stage %s, %s)\n",
                      r->label, worst, lab, r->dom[wd]);
        return;
    }
    strbuf_printf(
        b,
        md ? "\n**Warning**, run `%s`: format failures reach %.3f (after stage %s, %s), above "
             "%.2f: a "
             "completion without a confidence reads 0, so calibration looks better there than it "
             "is.\n"
           : "\nWARNING, run %s: format failures reach %.3f (after stage %s, %s), above %.2f: a "
             "completion "
             "without a confidence reads 0, so calibration looks better there than it is\n",
        r->label, worst, lab, r->dom[wd], METRICS_FORMAT_FAIL_FLAG);
    matrix_table(b, r, RM_FMT, "format-failure rate", md);
}

/* Calibration retention: ECE, Brier, SPR, OCG under each readout. */
static const rmetric k_retention[] = {
    {METRICS_FIELD_ECE, METRICS_READOUT_GREEDY},   {METRICS_FIELD_ECE, METRICS_READOUT_EXPECTED},
    {METRICS_FIELD_BRIER, METRICS_READOUT_GREEDY}, {METRICS_FIELD_BRIER, METRICS_READOUT_EXPECTED},
    {METRICS_FIELD_SPR, METRICS_READOUT_GREEDY},   {METRICS_FIELD_SPR, METRICS_READOUT_EXPECTED},
    {METRICS_FIELD_OCG, METRICS_READOUT_GREEDY},   {METRICS_FIELD_OCG, METRICS_READOUT_EXPECTED}};
#define N_RETENTION (int)(sizeof k_retention / sizeof k_retention[0])

static void cl_table(strbuf *b, const report_set *s, const rmetric *fs, int nf, const char *title,
                     int md) {
    if (md)
        strbuf_printf(b, "\n### %s\n\n", title);
    else
        strbuf_printf(b, "\n%s\n", title);
    tab t = {.ncol = 6};
    tab_add(&t, "run"), tab_add(&t, "metric"), tab_add(&t, "ACC"), tab_add(&t, "BWT"),
        tab_add(&t, "FWT");
    tab_add(&t, "forgetting");
    int any = 0;
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        if (!r->cl_ok) continue;
        for (int q = 0; q < nf; q++) {
            if (fs[q].q == METRICS_READOUT_EXPECTED && r->version < 2)
                continue; /* no expected readout */
            metrics_cl c = run_cl(r, test_split(r), fs[q]);
            char v[4][32], key[40];
            tab_add(&t, "%s", r->label), tab_add(&t, "%s", rm_key(fs[q], key, sizeof key));
            tab_add(&t, "%s", rutil_fmt3(c.acc, v[0], 32)),
                tab_add(&t, "%s", rutil_fmt3(c.bwt, v[1], 32));
            tab_add(&t, "%s", rutil_fmt3(c.fwt, v[2], 32)),
                tab_add(&t, "%s", rutil_fmt3(c.forgetting, v[3], 32));
            any = 1;
        }
    }
    if (any)
        tab_emit(b, &t, md);
    else {
        tab_free(&t);
        strbuf_printf(b,
                      "(none: no run has stages that line up with its domains; see the notes)\n");
    }
}

static void ood_table(strbuf *b, const report_set *s, int md) {
    if (md)
        strbuf_printf(
            b, "\n### OOD gaps (in-distribution test minus OOD, at the last stage written)\n\n");
    else
        strbuf_printf(b, "\nOOD gaps (ID = test split minus OOD split, at the last stage written; "
                         "acc gap > 0 = accuracy "
                         "drops OOD, ECE gap < 0 = calibration worse OOD; ECE g: greedy readout, "
                         "ECE e: expected)\n");
    tab t = {.ncol = 15};
    const char *hdr[] = {"run",       "stage",     "domain",   "split",     "kind",
                         "severity",  "acc ID",    "acc OOD",  "acc gap",   "ECE g ID",
                         "ECE g OOD", "ECE g gap", "ECE e ID", "ECE e OOD", "ECE e gap"};
    for (int c = 0; c < 15; c++)
        tab_add(&t, "%s", hdr[c]);
    int any = 0;
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        int last = -1;
        for (int i = 0; i <= r->T; i++)
            if (r->st[i].present) last = i;
        const int ts = test_split(r);
        if (last < 0) continue;
        for (int d = 0; d < r->nd; d++)
            for (int sp = 0; sp < r->ns; sp++) {
                if (sp == ts) continue;
                char kind[64], v[3][32];
                int sev;
                parse_split(r->split[sp], kind, sizeof kind, &sev);
                tab_add(&t, "%s", r->label), tab_add(&t, "%d", last), tab_add(&t, "%s", r->dom[d]);
                tab_add(&t, "%s", r->split[sp]), tab_add(&t, "%s", kind), tab_add(&t, "%d", sev);
                const rmetric ms[3] = {RM_ACC, RM_ECE_G, RM_ECE_E};
                for (int q = 0; q < 3; q++) {
                    const double in = cell_value(r, last, d, ts, ms[q]),
                                 out = cell_value(r, last, d, sp, ms[q]);
                    tab_add(&t, "%s", rutil_fmt3(in, v[0], 32)),
                        tab_add(&t, "%s", rutil_fmt3(out, v[1], 32));
                    tab_add(&t, "%s", rutil_fmt3(metrics_ood_gap(in, out), v[2], 32));
                }
                any = 1;
            }
    }
    if (any)
        tab_emit(b, &t, md);
    else {
        tab_free(&t);
        strbuf_printf(b, "(none: no OOD split, or no stage written yet)\n");
    }
}

static void runs_table(strbuf *b, const report_set *s, int md) {
    tab t = {.ncol = 7};
    const char *hdr[] = {"run", "method", "seed", "status", "stages", "domains", "results"};
    for (int c = 0; c < 7; c++)
        tab_add(&t, "%s", hdr[c]);
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        strbuf doms = {0};
        for (int d = 0; d < r->nd; d++)
            strbuf_printf(&doms, "%s%s", d ? "," : "", r->dom[d]);
        tab_add(&t, "%s", r->label), tab_add(&t, "%s", r->method);
        if (r->has_seed)
            tab_add(&t, "%lld", r->seed);
        else
            tab_add(&t, "?");
        tab_add(&t, "%s", r->status), tab_add(&t, "%d/%d", r->n_present, r->T + 1);
        tab_add(&t, "%s", strbuf_str(&doms)), tab_add(&t, "%s", r->path);
        free(doms.p);
    }
    tab_emit(b, &t, md);
}

static void write_tables(strbuf *b, const report_set *s, int md) {
    if (md) strbuf_printf(b, "\n## Runs\n\n");
    runs_table(b, s, md);
    if (md)
        strbuf_printf(b, "\n## Accuracy and ECE matrices\n\nECE under both confidence readouts "
                         "(docs/metrics.md): "
                         "*greedy*, the number the greedy completion states (the reference's way), "
                         "and *expected*, its "
                         "expectation under the model's distribution of well-formed confidence "
                         "strings (calibration "
                         "targets are stated on it).\n");
    for (size_t k = 0; k < s->n; k++) {
        matrix_table(b, s->runs[k], RM_ACC, "accuracy", md);
        matrix_table(b, s->runs[k], RM_ECE_G, "ECE, greedy readout", md);
        matrix_table(b, s->runs[k], RM_ECE_E, "ECE, expected readout", md);
        format_fail_line(b, s->runs[k], md);
    }
    if (md) strbuf_printf(b, "\n## Continual learning (test split)\n");
    const rmetric acc = RM_ACC;
    cl_table(b, s, &acc, 1,
             "continual learning: ACC / BWT / FWT / forgetting of accuracy (test split)", md);
    cl_table(b, s, k_retention, N_RETENTION,
             "calibration retention: the same on ECE, Brier, SPR, OCG of each readout (test split; "
             "ECE/Brier: BWT > 0 = "
             "calibration lost, forgetting on -R, > 0 = lost; OCG: all four on |OCG|, the distance "
             "from calibration, "
             "read like ECE)",
             md);
    if (md) strbuf_printf(b, "\n## Out of distribution\n");
    ood_table(b, s, md);
    if (s->notes.n) {
        if (md) {
            strbuf_printf(b, "\n## Notes\n\n");
            const char *p = strbuf_str(&s->notes);
            while (*p) {
                const char *e = strchr(p, '\n');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                strbuf_printf(b, "- %.*s\n", (int)len, p);
                p += len + (e ? 1 : 0);
            }
        } else
            strbuf_printf(b, "\nnotes:\n%s", strbuf_str(&s->notes));
    }
}

int report_tables(report_set *s, int markdown, char **out) {
    if (!s || !out) return REPORT_ERR_ARG;
    strbuf b = {0};
    write_tables(&b, s, markdown);
    if (b.oom) {
        free(b.p);
        return set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    *out = b.p ? b.p : str_dup("");
    return *out ? REPORT_OK : REPORT_ERR_NOMEM;
}

/* ---- outputs ------------------------------------------------------------------------------ */

report_write_opts report_write_opts_default(void) {
    return (report_write_opts){.figures = 1};
}

static FILE *open_out(report_set *s, const char *dir, const char *name, char *path, size_t len) {
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        set_err(s, REPORT_ERR_IO, "%s: cannot write: %s; check the --out folder", path,
                strerror(errno));
    return f;
}

static int close_out(report_set *s, FILE *f, const char *path) {
    int bad = ferror(f);
    if (fclose(f) || bad)
        return set_err(s, REPORT_ERR_IO, "%s: writing failed: %s", path, strerror(errno));
    return 0;
}

/* The metric columns of the CSVs, in attribute order: every field under the greedy readout
 * (accuracy and format_fail_rate once), then the readout-dependent fields under the expected one.
 */
#define N_CSV_METRICS (METRICS_FIELD_COUNT + METRICS_FIELD_COUNT - 2)
static rmetric csv_metric(int k) {
    if (k < METRICS_FIELD_COUNT) return (rmetric){(metrics_field)k, METRICS_READOUT_GREEDY};
    k -= METRICS_FIELD_COUNT;
    for (int f = 0; f < METRICS_FIELD_COUNT; f++)
        if (metrics_field_per_readout((metrics_field)f) && k-- == 0)
            return (rmetric){(metrics_field)f, METRICS_READOUT_EXPECTED};
    return RM_ACC;
}

static int write_metrics_csv(report_set *s, const char *dir) {
    char path[2300];
    FILE *f = open_out(s, dir, "metrics.csv", path, sizeof path);
    if (!f) return REPORT_ERR_IO;
    fputs("run,method,seed,status,results,stage,stage_name,stage_method,domain,split,kind,severity,"
          "n,n_correct,"
          "n_format_fail",
          f);
    for (int k = 0; k < N_CSV_METRICS; k++) {
        char key[40];
        fprintf(f, ",%s", rm_key(csv_metric(k), key, sizeof key));
    }
    fputs(",mean_format_mass,answer_entropy,conf_entropy,mean_tokens,readouts\n", f);
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        for (int i = 0; i <= r->T; i++) {
            if (!r->st[i].present) continue;
            for (int d = 0; d < r->nd; d++)
                for (int sp = 0; sp < r->ns; sp++) {
                    const cell *c = cell_at(r, i, d, sp);
                    char kind[64];
                    int sev;
                    parse_split(r->split[sp], kind, sizeof kind, &sev);
                    csv_str(f, r->label), fputc(',', f), csv_str(f, r->method), fputc(',', f);
                    if (r->has_seed) fprintf(f, "%lld", r->seed);
                    fputc(',', f), csv_str(f, r->status), fputc(',', f), csv_str(f, r->path);
                    fprintf(f, ",%d,", i), csv_str(f, r->st[i].name), fputc(',', f),
                        csv_str(f, r->st[i].method);
                    const metrics_run *m0 = &c->m[METRICS_READOUT_GREEDY];
                    fprintf(f, ",%s,%s,%s,%d,%zu,%zu,%zu", r->dom[d], r->split[sp], kind, sev,
                            m0->n, m0->n_correct, m0->n_format_fail);
                    for (int k = 0; k < N_CSV_METRICS; k++) {
                        fputc(',', f);
                        csv_num(f, cell_value(r, i, d, sp, csv_metric(k)));
                    }
                    fputc(',', f), csv_num(f, c->mean_mass);
                    fputc(',', f), csv_num(f, c->ent_answer);
                    fputc(',', f), csv_num(f, c->ent_conf);
                    fputc(',', f), csv_num(f, c->mean_tokens);
                    fprintf(f, ",%s\n", r->version >= 2 ? "greedy+expected" : "greedy");
                }
        }
    }
    return close_out(s, f, path);
}

/* The stage that first learns domain d (1..T), 0 if none. */
static int domain_exp(const run *r, int d) {
    for (int i = 1; i <= r->T; i++) {
        const char *nm = stage_name(r, i);
        if (nm && !strcmp(nm, r->dom[d])) return i;
    }
    return 0;
}

static int write_eval_csv(report_set *s, const char *dir) {
    char path[2300];
    FILE *f = open_out(s, dir, "eval_results.csv", path, sizeof path);
    if (!f) return REPORT_ERR_IO;
    fputs("run,method,seed,training_exp,eval_exp,stream,domain,metric,value\n", f);
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        for (int i = 0; i <= r->T; i++) {
            if (!r->st[i].present) continue;
            for (int sp = 0; sp < r->ns; sp++)
                for (int d = 0; d < r->nd; d++) {
                    const cell *c = cell_at(r, i, d, sp);
                    /* n, the metrics (a version 1 file has no expected rows), mean_format_mass */
                    for (int q = -1; q <= N_CSV_METRICS; q++) {
                        char key[40];
                        const char *name = q < 0 ? "n"
                                           : q == N_CSV_METRICS
                                               ? "mean_format_mass"
                                               : rm_key(csv_metric(q), key, sizeof key);
                        if (r->version < 2 && q >= METRICS_FIELD_COUNT) continue;
                        csv_str(f, r->label), fputc(',', f), csv_str(f, r->method), fputc(',', f);
                        if (r->has_seed) fprintf(f, "%lld", r->seed);
                        fprintf(f, ",%d,%d,%s,%s,%s,", i, domain_exp(r, d), r->split[sp], r->dom[d],
                                name);
                        if (q < 0)
                            fprintf(f, "%zu", c->m[METRICS_READOUT_GREEDY].n);
                        else if (q == N_CSV_METRICS)
                            csv_num(f, c->mean_mass);
                        else
                            csv_num(f, cell_value(r, i, d, sp, csv_metric(q)));
                        fputc('\n', f);
                    }
                }
        }
    }
    return close_out(s, f, path);
}

static cJSON *jnum(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static const metrics_field k_json_fields[] = {
    METRICS_FIELD_ACCURACY,  METRICS_FIELD_ECE,
    METRICS_FIELD_BRIER,     METRICS_FIELD_SPR,
    METRICS_FIELD_OCG,       METRICS_FIELD_AUROC,
    METRICS_FIELD_MEAN_CONF, METRICS_FIELD_FORMAT_FAIL_RATE};
#define N_JSON_FIELDS (int)(sizeof k_json_fields / sizeof k_json_fields[0])

static cJSON *run_json(const run *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run", r->label);
    cJSON_AddStringToObject(o, "results", r->path);
    cJSON_AddStringToObject(o, "method", r->method);
    if (r->has_seed)
        cJSON_AddNumberToObject(o, "seed", (double)r->seed);
    else
        cJSON_AddNullToObject(o, "seed");
    cJSON_AddStringToObject(o, "status", r->status);
    cJSON_AddNumberToObject(o, "n_stages", r->T);
    cJSON *sw = cJSON_AddArrayToObject(o, "stages_written");
    cJSON *sn = cJSON_AddArrayToObject(o, "stage_names");
    for (int i = 0; i <= r->T; i++) {
        if (r->st[i].present) cJSON_AddItemToArray(sw, cJSON_CreateNumber(i));
        const char *nm = stage_name(r, i);
        cJSON_AddItemToArray(sn, nm ? cJSON_CreateString(nm) : cJSON_CreateNull());
    }
    cJSON_AddItemToObject(o, "domains",
                          cJSON_CreateStringArray((const char *const *)r->dom, r->nd));
    cJSON_AddItemToObject(o, "splits",
                          cJSON_CreateStringArray((const char *const *)r->split, r->ns));
    cJSON_AddNumberToObject(o, "results_format_version", r->version);
    cJSON *ro = cJSON_AddArrayToObject(o, "readouts");
    for (int q = 0; q < (r->version >= 2 ? METRICS_READOUT_COUNT : 1); q++)
        cJSON_AddItemToArray(ro, cJSON_CreateString(metrics_readout_name((metrics_readout)q)));
    cJSON *mats = cJSON_AddObjectToObject(o, "matrices");
    for (int sp = 0; sp < r->ns; sp++) {
        cJSON *ms = cJSON_AddObjectToObject(mats, r->split[sp]);
        for (int k = 0; k < METRICS_READOUT_COUNT * N_JSON_FIELDS; k++) {
            const rmetric m = {k_json_fields[k % N_JSON_FIELDS],
                               (metrics_readout)(k / N_JSON_FIELDS)};
            if (m.q != METRICS_READOUT_GREEDY &&
                (!metrics_field_per_readout(m.f) || r->version < 2))
                continue;
            char key[40];
            cJSON *rows = cJSON_AddArrayToObject(ms, rm_key(m, key, sizeof key));
            for (int i = 0; i <= r->T; i++) {
                cJSON *row = cJSON_CreateArray();
                for (int d = 0; d < r->nd; d++)
                    cJSON_AddItemToArray(row, jnum(cell_value(r, i, d, sp, m)));
                cJSON_AddItemToArray(rows, row);
            }
        }
    }
    if (r->cl_ok) {
        cJSON *cl = cJSON_AddObjectToObject(o, "cl");
        for (int sp = 0; sp < r->ns; sp++) {
            cJSON *cs = cJSON_AddObjectToObject(cl, r->split[sp]);
            for (int q = 0; q <= N_RETENTION; q++) {
                const rmetric f = q == 0 ? RM_ACC : k_retention[q - 1];
                if (f.q == METRICS_READOUT_EXPECTED && r->version < 2) continue;
                metrics_cl c = run_cl(r, sp, f);
                char key[40];
                cJSON *m = cJSON_AddObjectToObject(cs, rm_key(f, key, sizeof key));
                cJSON_AddItemToObject(m, "acc", jnum(c.acc));
                cJSON_AddItemToObject(m, "bwt", jnum(c.bwt));
                cJSON_AddItemToObject(m, "fwt", jnum(c.fwt));
                cJSON_AddItemToObject(m, "forgetting", jnum(c.forgetting));
            }
        }
        cJSON_AddNullToObject(o, "cl_note");
    } else {
        char buf[600];
        snprintf(buf, sizeof buf, r->cl_note, r->label);
        cJSON_AddNullToObject(o, "cl");
        cJSON_AddStringToObject(o, "cl_note", buf);
    }
    int last = -1;
    for (int i = 0; i <= r->T; i++)
        if (r->st[i].present) last = i;
    cJSON *gaps = cJSON_AddArrayToObject(o, "ood_gaps");
    const int ts = test_split(r);
    for (int d = 0; last >= 0 && d < r->nd; d++)
        for (int sp = 0; sp < r->ns; sp++) {
            if (sp == ts) continue;
            char kind[64];
            int sev;
            parse_split(r->split[sp], kind, sizeof kind, &sev);
            cJSON *g = cJSON_CreateObject();
            cJSON_AddNumberToObject(g, "stage", last);
            cJSON_AddStringToObject(g, "domain", r->dom[d]);
            cJSON_AddStringToObject(g, "split", r->split[sp]);
            cJSON_AddStringToObject(g, "kind", kind);
            cJSON_AddNumberToObject(g, "severity", sev);
            for (int q = 0; q <= N_RETENTION; q++) {
                const rmetric f = q == 0 ? RM_ACC : k_retention[q - 1];
                if (f.q == METRICS_READOUT_EXPECTED && r->version < 2) continue;
                char key[40];
                cJSON_AddItemToObject(g, rm_key(f, key, sizeof key),
                                      jnum(metrics_ood_gap(cell_value(r, last, d, ts, f),
                                                           cell_value(r, last, d, sp, f))));
            }
            cJSON_AddItemToArray(gaps, g);
        }
    return o;
}

static int write_json(report_set *s, const char *dir) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return set_err(s, REPORT_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "format", "caopd-analysis");
    cJSON_AddNumberToObject(root, "version", 2);
    cJSON_AddNumberToObject(root, "attr_tolerance", REPORT_ATTR_TOL);
    cJSON *runs = cJSON_AddArrayToObject(root, "runs");
    for (size_t k = 0; k < s->n; k++)
        cJSON_AddItemToArray(runs, run_json(s->runs[k]));
    cJSON *notes = cJSON_AddArrayToObject(root, "notes");
    const char *p = strbuf_str(&s->notes);
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)len, p);
        cJSON_AddItemToArray(notes, cJSON_CreateString(buf));
        p += len + (e ? 1 : 0);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return set_err(s, REPORT_ERR_NOMEM, "out of memory building summary.json");
    char path[2300];
    FILE *f = open_out(s, dir, "summary.json", path, sizeof path);
    if (!f) {
        free(text);
        return REPORT_ERR_IO;
    }
    fputs(text, f);
    fputc('\n', f);
    free(text);
    return close_out(s, f, path);
}

/* ---- figures ------------------------------------------------------------------------------ */

static int plot_fail(report_set *s) {
    return set_err(s, REPORT_ERR_PLOT, "%s", plot_errmsg());
}

/* Method groups: runs with the same method label, in first-appearance order. */
static int method_groups(const report_set *s, int *group_of) {
    int ng = 0;
    for (size_t k = 0; k < s->n; k++) {
        group_of[k] = -1;
        for (size_t q = 0; q < k; q++)
            if (!strcmp(s->runs[q]->method, s->runs[k]->method)) group_of[k] = group_of[q];
        if (group_of[k] < 0) group_of[k] = ng++;
    }
    return ng;
}

/* Retention figure of one domain: accuracy, ECE (greedy readout) and ECE (expected readout)
 * panels, one colour per method group, the
 * test split solid and every OOD split dashed; mean over the group's runs, band +- 1 sample
 * standard deviation where 2 or more runs have the point. */
static int retention_figure(report_set *s, const char *dir, const char *domain, const int *group_of,
                            int ng, char **splits, int nsplits, int nx, const char *const *xnames) {
    const int nser = ng * nsplits;
    enum { NP = 3 };
    plot_series *ser[NP];
    double *buf = calloc((size_t)NP * (size_t)nser * (size_t)nx * 3, sizeof *buf);
    for (int p = 0; p < NP; p++)
        ser[p] = calloc((size_t)nser, sizeof(plot_series));
    char(*names)[160] = calloc((size_t)nser, sizeof *names);
    if (!buf || !ser[0] || !ser[1] || !ser[2] || !names) {
        free(buf), free(ser[0]), free(ser[1]), free(ser[2]), free(names);
        return set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    const rmetric pf[NP] = {RM_ACC, RM_ECE_G, RM_ECE_E};
    for (int p = 0; p < NP; p++)
        for (int g = 0; g < ng; g++)
            for (int sp = 0; sp < nsplits; sp++) {
                const int si = g * nsplits + sp;
                double *y = buf + (((size_t)p * (size_t)nser + (size_t)si) * 3) * (size_t)nx,
                       *lo = y + nx, *hi = lo + nx;
                int banded = 0;
                const char *mname = "";
                for (int x = 0; x < nx; x++) {
                    double sum = 0, sq = 0;
                    int cnt = 0;
                    for (size_t k = 0; k < s->n; k++) {
                        const run *r = s->runs[k];
                        if (group_of[k] != g) continue;
                        mname = r->method;
                        int d = find_name(r->dom, r->nd, domain),
                            rs = find_name(r->split, r->ns, splits[sp]);
                        if (d < 0 || rs < 0 || x > r->T) continue;
                        double v = cell_value(r, x, d, rs, pf[p]);
                        if (isnan(v)) continue;
                        sum += v, sq += v * v, cnt++;
                    }
                    y[x] = cnt ? sum / cnt : NAN;
                    lo[x] = hi[x] = NAN;
                    if (cnt >= 2) {
                        double var = (sq - sum * sum / cnt) / (cnt - 1);
                        double sd = sqrt(var > 0 ? var : 0);
                        lo[x] = y[x] - sd, hi[x] = y[x] + sd, banded = 1;
                    }
                }
                if (!strcmp(splits[sp], "test"))
                    snprintf(names[si], sizeof names[si], "%s", mname);
                else
                    snprintf(names[si], sizeof names[si], "%s %s", mname, splits[sp]);
                ser[p][si] = (plot_series){.name = names[si],
                                           .y = y,
                                           .lo = banded ? lo : NULL,
                                           .hi = banded ? hi : NULL,
                                           .n = (size_t)nx,
                                           .dashed = strcmp(splits[sp], "test") != 0,
                                           .color = g % PLOT_NCOLORS + 1};
            }
    /* ECE lies in [0, 1]: from 0 up to the largest value drawn in either ECE panel (at least
     * 0.1), the same for both readouts so that they compare at a glance. */
    double ece_top = 0.1;
    for (int p = 1; p < NP; p++)
        for (int k = 0; k < nser; k++)
            for (size_t x = 0; x < ser[p][k].n; x++) {
                const double v =
                    ser[p][k].hi && isfinite(ser[p][k].hi[x]) ? ser[p][k].hi[x] : ser[p][k].y[x];
                if (isfinite(v) && v > ece_top) ece_top = v;
            }
    ece_top = fmin(1.0, ceil(ece_top * 10.0) / 10.0);
    plot_panel panels[NP] = {
        {.ylabel = "accuracy", .ymin = 0, .ymax = 1, .series = ser[0], .n_series = (size_t)nser},
        {.ylabel = "ECE (greedy)",
         .ymin = 0,
         .ymax = ece_top,
         .series = ser[1],
         .n_series = (size_t)nser},
        {.ylabel = "ECE (expected)",
         .ymin = 0,
         .ymax = ece_top,
         .series = ser[2],
         .n_series = (size_t)nser},
    };
    char title[256], stem[300], safe[128];
    snprintf(title, sizeof title, "Retention of domain %s (dashed: OOD splits)", domain);
    snprintf(stem, sizeof stem, "retention_%s", rutil_safe_name(domain, safe, sizeof safe));
    plot_figure fig = plot_figure_default();
    fig.title = title;
    fig.xlabel = "after stage";
    int rc = 0;
    static const char *const ext[] = {"png", "svg"};
    for (int e = 0; !rc && e < 2; e++) {
        char p[2400];
        snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[e]);
        fig.path = p;
        if (plot_retention_curves(&fig, xnames, (size_t)nx, panels, NP) != PLOT_OK)
            rc = plot_fail(s);
    }
    free(buf), free(ser[0]), free(ser[1]), free(ser[2]), free(names);
    return rc;
}

static int heatmaps(report_set *s, const char *dir, const run *r) {
    const int rows = r->T + 1;
    double *v = malloc((size_t)rows * (size_t)r->nd * sizeof *v);
    char(*labs)[128] = calloc((size_t)rows, sizeof *labs);
    const char **rl = calloc((size_t)rows, sizeof *rl);
    if (!v || !labs || !rl) {
        free(v), free(labs), free(rl);
        return set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++)
        stage_label(r, i, labs[i], sizeof labs[i]), rl[i] = labs[i];
    const int sp = test_split(r);
    int rc = 0;
    /* accuracy, ECE of the greedy readout, ECE of the expected one (none for a version 1 file) */
    static const char *const label[3] = {"accuracy", "ECE (greedy readout)",
                                         "ECE (expected readout)"};
    const rmetric ms[3] = {RM_ACC, RM_ECE_G, RM_ECE_E};
    for (int q = 0; !rc && q < (r->version >= 2 ? 3 : 2); q++) {
        for (int i = 0; i < rows; i++)
            for (int d = 0; d < r->nd; d++)
                v[i * r->nd + d] = cell_value(r, i, d, sp, ms[q]);
        plot_matrix m = {.values = v,
                         .rows = (size_t)rows,
                         .cols = (size_t)r->nd,
                         .row_labels = rl,
                         .col_labels = (const char *const *)r->dom,
                         .value_label = q ? "ECE" : "accuracy",
                         .lower_is_better = q != 0,
                         .decimals = 3};
        char title[300], stem[300], safe[200], key[40];
        snprintf(title, sizeof title, "%s: %s after each stage (%s split)", r->label, label[q],
                 r->split[sp]);
        snprintf(stem, sizeof stem, "heatmap_%s_%s", rutil_safe_name(r->label, safe, sizeof safe),
                 rm_key(ms[q], key, sizeof key));
        plot_figure fig = plot_figure_default();
        fig.title = title, fig.xlabel = "domain", fig.ylabel = "after stage";
        if (!q) fig.ymin = 0, fig.ymax = 1;
        static const char *const ext[] = {"png", "svg"};
        for (int e = 0; !rc && e < 2; e++) {
            char p[2400];
            snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[e]);
            fig.path = p;
            if (plot_heatmap(&fig, &m) != PLOT_OK) rc = plot_fail(s);
        }
    }
    free(v), free(labs), free(rl);
    return rc;
}

/* Reliability diagrams of every stage written and domain, test split, one per readout the run
 * has: reliability/<run>_stage<i>_<domain>_<readout>.png/.svg. */
static int reliability(report_set *s, const char *dir, const run *r) {
    const int sp = test_split(r);
    for (int i = 0; i <= r->T; i++) {
        if (!r->st[i].present) continue;
        for (int d = 0; d < r->nd; d++)
            for (int q = 0; q < (r->version >= 2 ? METRICS_READOUT_COUNT : 1); q++) {
                const cell *c = cell_at(r, i, d, sp);
                const char *rn = metrics_readout_name((metrics_readout)q);
                char title[300], stem[400], sl[200], sd[100];
                snprintf(title, sizeof title,
                         "%s: after stage %d (%s), domain %s, %s split, %s readout", r->label, i,
                         r->st[i].name, r->dom[d], r->split[sp], rn);
                snprintf(stem, sizeof stem, "reliability/%s_stage%d_%s_%s",
                         rutil_safe_name(r->label, sl, sizeof sl), i,
                         rutil_safe_name(r->dom[d], sd, sizeof sd), rn);
                plot_figure fig = plot_figure_default();
                fig.title = title;
                fig.xlabel = q ? "confidence (expected readout)" : "confidence (greedy readout)";
                static const char *const ext[] = {"png", "svg"};
                for (int e = 0; e < 2; e++) {
                    char p[2400];
                    snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[e]);
                    fig.path = p;
                    if (plot_reliability_diagram(&fig, c->m[q].bins, c->m[q].ece) != PLOT_OK)
                        return plot_fail(s);
                }
            }
    }
    return 0;
}

/* Union of the runs' domains and splits (first-appearance order), max stage count. */
static int unions(const report_set *s, char ***doms, int *nd, char ***splits, int *ns, int *nx) {
    *doms = calloc(64, sizeof **doms), *splits = calloc(64, sizeof **splits);
    *nd = *ns = *nx = 0;
    if (!*doms || !*splits) return -1;
    for (size_t k = 0; k < s->n; k++) {
        const run *r = s->runs[k];
        if (r->T + 1 > *nx) *nx = r->T + 1;
        for (int d = 0; d < r->nd && *nd < 64; d++)
            if (find_name(*doms, *nd, r->dom[d]) < 0) (*doms)[(*nd)++] = r->dom[d];
        for (int q = 0; q < r->ns && *ns < 64; q++)
            if (find_name(*splits, *ns, r->split[q]) < 0) (*splits)[(*ns)++] = r->split[q];
    }
    /* The test split first (solid), then the OOD ones. */
    int t = find_name(*splits, *ns, "test");
    if (t > 0) {
        char *x = (*splits)[t];
        memmove(*splits + 1, *splits, (size_t)t * sizeof **splits);
        (*splits)[0] = x;
    }
    return 0;
}

static int write_figures(report_set *s, const char *dir, strbuf *md) {
    char sub[2300];
    snprintf(sub, sizeof sub, "%s/reliability", dir);
    if (file_mkdir_p(sub))
        return set_err(s, REPORT_ERR_IO, "%s: cannot create the folder: %s", sub, strerror(errno));
    char **doms = NULL, **splits = NULL;
    int nd, ns, nx;
    int *group_of = calloc(s->n, sizeof *group_of);
    if (!group_of || unions(s, &doms, &nd, &splits, &ns, &nx)) {
        free(group_of), free(doms), free(splits);
        return set_err(s, REPORT_ERR_NOMEM, "out of memory");
    }
    const int ng = method_groups(s, group_of);
    /* x labels: the stage names where every run agrees, else the index. */
    char(*xl)[64] = calloc((size_t)nx, sizeof *xl);
    const char **xn = calloc((size_t)nx, sizeof *xn);
    int rc = xl && xn ? 0 : set_err(s, REPORT_ERR_NOMEM, "out of memory");
    for (int x = 0; !rc && x < nx; x++) {
        const char *nm = NULL;
        int agree = 1;
        for (size_t k = 0; k < s->n; k++) {
            const char *m = stage_name(s->runs[k], x);
            if (!m) continue;
            if (nm && strcmp(nm, m)) agree = 0;
            nm = m;
        }
        if (agree && nm)
            snprintf(xl[x], sizeof xl[x], "%d %s", x, nm);
        else
            snprintf(xl[x], sizeof xl[x], "%d", x);
        xn[x] = xl[x];
    }
    strbuf_printf(md,
                  "\n## Figures\n\nEach figure is written as PNG and SVG (same name, `.svg`).\n");
    strbuf_printf(md, "\n### Retention curves\n\nAccuracy (top), ECE of the greedy readout "
                      "(middle) and ECE of the "
                      "expected readout (bottom) of each domain after every stage; solid: test "
                      "split, dashed: OOD splits; "
                      "one colour per method, mean over its runs with a band of ± 1 standard "
                      "deviation where two or more "
                      "runs have the point.\n\n");
    for (int d = 0; !rc && d < nd; d++) {
        rc = retention_figure(s, dir, doms[d], group_of, ng, splits, ns, nx, xn);
        char safe[128];
        if (!rc)
            strbuf_printf(md, "![retention of %s](retention_%s.png)\n\n", doms[d],
                          rutil_safe_name(doms[d], safe, sizeof safe));
    }
    if (!rc) strbuf_printf(md, "\n### Heatmaps (test split)\n\n");
    for (size_t k = 0; !rc && k < s->n; k++) {
        rc = heatmaps(s, dir, s->runs[k]);
        char safe[200];
        rutil_safe_name(s->runs[k]->label, safe, sizeof safe);
        if (!rc)
            strbuf_printf(md,
                          "![accuracy of %s](heatmap_%s_accuracy.png)\n![ECE (greedy) of "
                          "%s](heatmap_%s_ece_greedy.png)\n",
                          s->runs[k]->label, safe, s->runs[k]->label, safe);
        if (!rc && s->runs[k]->version >= 2)
            strbuf_printf(md, "![ECE (expected) of %s](heatmap_%s_ece_expected.png)\n",
                          s->runs[k]->label, safe);
        if (!rc) strbuf_printf(md, "\n");
    }
    if (!rc) strbuf_printf(md, "\n### Reliability diagrams (test split)\n\n");
    for (size_t k = 0; !rc && k < s->n; k++) {
        const run *r = s->runs[k];
        rc = reliability(s, dir, r);
        if (rc) break;
        char sl[200], sd[100];
        rutil_safe_name(r->label, sl, sizeof sl);
        const int nq = r->version >= 2 ? METRICS_READOUT_COUNT : 1;
        tab t = {.ncol = r->nd + 1};
        tab_add(&t, "%s: stage", r->label);
        for (int d = 0; d < r->nd; d++)
            tab_add(&t, "%s", r->dom[d]);
        for (int i = 0; i <= r->T; i++) {
            if (!r->st[i].present) continue;
            char lab[128];
            stage_label(r, i, lab, sizeof lab);
            tab_add(&t, "%s", lab);
            for (int d = 0; d < r->nd; d++) {
                const cell *c = cell_at(r, i, d, test_split(r));
                rutil_safe_name(r->dom[d], sd, sizeof sd);
                if (nq == 2)
                    tab_add(&t,
                            "[greedy ECE %.3f](reliability/%s_stage%d_%s_greedy.png), "
                            "[expected ECE %.3f](reliability/%s_stage%d_%s_expected.png)",
                            c->m[0].ece, sl, i, sd, c->m[1].ece, sl, i, sd);
                else
                    tab_add(&t, "[greedy ECE %.3f](reliability/%s_stage%d_%s_greedy.png)",
                            c->m[0].ece, sl, i, sd);
            }
        }
        tab_emit(md, &t, 1);
        int last = -1;
        for (int i = 0; i <= r->T; i++)
            if (r->st[i].present) last = i;
        if (last >= 0)
            for (int d = 0; d < r->nd; d++)
                for (int q = 0; q < nq; q++) {
                    const char *rn = metrics_readout_name((metrics_readout)q);
                    strbuf_printf(md,
                                  "\n![%s after stage %d, %s, %s "
                                  "readout](reliability/%s_stage%d_%s_%s.png)\n",
                                  r->label, last, r->dom[d], rn, sl, last,
                                  rutil_safe_name(r->dom[d], sd, sizeof sd), rn);
                }
        strbuf_printf(md, "\n");
    }
    free(group_of), free(doms), free(splits), free(xl), free(xn);
    return rc;
}

int report_write(report_set *s, const char *dir, const report_write_opts *opts) {
    if (!s) return REPORT_ERR_ARG;
    s->msg[0] = '\0';
    if (!dir || !*dir) return set_err(s, REPORT_ERR_ARG, "report_write: no output folder given");
    if (!s->n) return set_err(s, REPORT_ERR_ARG, "report_write: no run loaded");
    report_write_opts o = opts ? *opts : report_write_opts_default();
    if (file_mkdir_p(dir))
        return set_err(s, REPORT_ERR_IO, "%s: cannot create the output folder: %s", dir,
                       strerror(errno));
    int rc = write_metrics_csv(s, dir);
    if (!rc) rc = write_eval_csv(s, dir);
    if (!rc) rc = write_json(s, dir);
    if (rc) return rc;
    strbuf md = {0};
    strbuf_printf(
        &md,
        "# caopd analyze report\n\nWritten by `caopd analyze` from the results files below (HDF5 "
        "only). "
        "Every metric was recomputed from the stored per-sample arrays and matched the stored "
        "attributes "
        "(tolerance %g). Definitions: docs/analysis.md, docs/metrics.md.\n\n"
        "Files: [metrics.csv](metrics.csv) (one row per run x stage x domain x split), "
        "[eval_results.csv](eval_results.csv) (long format), [summary.json](summary.json).\n",
        REPORT_ATTR_TOL);
    write_tables(&md, s, 1);
    if (o.figures) rc = write_figures(s, dir, &md);
    if (!rc && md.oom) rc = set_err(s, REPORT_ERR_NOMEM, "out of memory");
    if (!rc) {
        char path[2300];
        FILE *f = open_out(s, dir, "report.md", path, sizeof path);
        if (!f)
            rc = REPORT_ERR_IO;
        else {
            fputs(strbuf_str(&md), f);
            rc = close_out(s, f, path);
        }
    }
    free(md.p);
    return rc;
}
