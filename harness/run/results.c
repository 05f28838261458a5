/* results.c: the results-file layout (format_version 2; version 1 read): root attributes,
 * stage curves, per-sample evaluation arrays with the metrics of both confidence readouts,
 * matrices read back for reports. */
#include "harness/run/results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/torch/tw.h"

static int snap_msg(ckpt_snapshot *s, char *err, size_t errlen) {
    snprintf(err, errlen, "results: %s", ckpt_snapshot_errmsg(s));
    return -1;
}

int results_new_file(ckpt_snapshot **out, const char *path, const spec *sp, const char *spec_json,
                     const ckpt_write_opts *opts, char *err, size_t errlen) {
    ckpt_error e;
    *out = NULL;
    ckpt_snapshot *s = NULL;
    if (ckpt_snapshot_new(&s, path, CKPT_FORMAT_RESULTS, RESULTS_FORMAT_VERSION, CKPT_MODE_CREATE,
                          opts, &e)) {
        snprintf(err, errlen, "%s", e.msg);
        return -1;
    }
    char versions[512], doms[256] = "", splits[512] = "";
    snprintf(versions, sizeof versions,
             "caopd-harness 0.1.0; hdf5 %s; libtorch %s; spec format %s version %d",
             ckpt_hdf5_version(), tw_version(), SPEC_FORMAT, SPEC_VERSION);
    task_domain d[TASK_N_DOMAINS];
    int nd = spec_eval_domains(sp, d);
    for (int i = 0; i < nd; i++)
        snprintf(doms + strlen(doms), sizeof doms - strlen(doms), "%s%s", i ? "," : "",
                 task_domain_name(d[i]));
    for (int i = 0; i < sp->n_splits; i++) {
        char nm[32];
        snprintf(splits + strlen(splits), sizeof splits - strlen(splits), "%s%s", i ? "," : "",
                 spec_split_name(sp->splits[i], nm, sizeof nm));
    }
    if (ckpt_snapshot_attr_str(s, "", "spec", spec_json) ||
        ckpt_snapshot_attr_str(s, "", "versions", versions) ||
        ckpt_snapshot_attr_str(s, "", "status", "running") ||
        ckpt_snapshot_attr_i64(s, "", "n_stages", sp->n_stages) ||
        ckpt_snapshot_attr_str(s, "", "domains", doms) ||
        ckpt_snapshot_attr_str(s, "", "splits", splits)) {
        snap_msg(s, err, errlen);
        ckpt_snapshot_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int results_append(ckpt_snapshot **out, const char *path, const ckpt_write_opts *opts, char *err,
                   size_t errlen) {
    ckpt_error e;
    if (ckpt_snapshot_new(out, path, CKPT_FORMAT_RESULTS, RESULTS_FORMAT_VERSION, CKPT_MODE_APPEND,
                          opts, &e)) {
        snprintf(err, errlen, "%s", e.msg);
        return -1;
    }
    return 0;
}

/* The curve columns: name, offset of a double in train_log, timing (1) or not. */
typedef struct col {
    const char *name;
    size_t off;
    int timing;
} col;

#define COL(n, f, t)                                                                               \
    { n, offsetof(train_log, f), t }
static const col cols[] = {
    COL("lr", lr, 0),
    COL("grad_norm", grad_norm, 0),
    COL("loss", s.loss, 0),
    COL("kl", s.kl, 0),
    COL("student_ent_answer", s.student_ent_answer, 0),
    COL("student_ent_conf", s.student_ent_conf, 0),
    COL("teacher_ent_answer", s.teacher_ent_answer, 0),
    COL("teacher_ent_conf", s.teacher_ent_conf, 0),
    COL("mean_p_acc", s.mean_p_acc, 0),
    COL("format_adherence", s.format_adherence, 0),
    COL("mean_confidence", s.mean_confidence, 0),
    COL("step_s", step_s, 1),
    COL("tok_s", tok_s, 1),
    COL("rollout_s", s.rollout_s, 1),
    COL("teacher_s", s.teacher_s, 1),
    COL("train_s", s.train_s, 1),
};
#define N_COLS (sizeof cols / sizeof cols[0])

typedef struct icol {
    const char *name;
    size_t off;
} icol;
static const icol icols[] = {
    {"step", offsetof(train_log, step)},
    {"new_tokens", offsetof(train_log, s.new_tokens)},
    {"train_tokens", offsetof(train_log, s.train_tokens)},
};
#define N_ICOLS (sizeof icols / sizeof icols[0])

int results_add_curves(ckpt_snapshot *s, const char *group, const train_log *rows, int n) {
    int64_t dims[1] = {n};
    for (size_t c = 0; c < N_COLS; c++) {
        double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        if (!v) return CKPT_ERR_NOMEM;
        for (int i = 0; i < n; i++)
            memcpy(&v[i], (const char *)&rows[i] + cols[c].off, sizeof(double));
        char path[256];
        snprintf(path, sizeof path, "%s/%s/%s", group, cols[c].timing ? "timing" : "curves",
                 cols[c].name);
        int rc = ckpt_snapshot_add_owned(s, path, CKPT_DTYPE_F64, 1, dims, v, NULL);
        if (rc) return rc;
    }
    for (size_t c = 0; c < N_ICOLS; c++) {
        int64_t *v = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
        if (!v) return CKPT_ERR_NOMEM;
        for (int i = 0; i < n; i++)
            memcpy(&v[i], (const char *)&rows[i] + icols[c].off, sizeof(int64_t));
        char path[256];
        snprintf(path, sizeof path, "%s/curves/%s", group, icols[c].name);
        int rc = ckpt_snapshot_add_owned(s, path, CKPT_DTYPE_I64, 1, dims, v, NULL);
        if (rc) return rc;
    }
    return 0;
}

int results_read_curves(ckpt_reader *r, const char *group, train_log *rows, int n, char *err,
                        size_t errlen) {
    memset(rows, 0, sizeof *rows * (size_t)(n > 0 ? n : 0));
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    int rc = v && iv ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory");
    for (size_t c = 0; rc == 0 && c < N_COLS; c++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s/%s", group, cols[c].timing ? "timing" : "curves",
                 cols[c].name);
        if (ckpt_reader_read(r, path, CKPT_DTYPE_F64, v, (size_t)n) != CKPT_OK) {
            snprintf(err, errlen, "%s; the file is incomplete or of another layout",
                     ckpt_reader_errmsg(r));
            rc = -1;
        }
        for (int i = 0; rc == 0 && i < n; i++)
            memcpy((char *)&rows[i] + cols[c].off, &v[i], sizeof(double));
    }
    for (size_t c = 0; rc == 0 && c < N_ICOLS; c++) {
        char path[256];
        snprintf(path, sizeof path, "%s/curves/%s", group, icols[c].name);
        if (ckpt_reader_read(r, path, CKPT_DTYPE_I64, iv, (size_t)n) != CKPT_OK) {
            snprintf(err, errlen, "%s; the file is incomplete or of another layout",
                     ckpt_reader_errmsg(r));
            rc = -1;
        }
        for (int i = 0; rc == 0 && i < n; i++)
            memcpy((char *)&rows[i] + icols[c].off, &iv[i], sizeof(int64_t));
    }
    free(v), free(iv);
    return rc;
}

/* The NUL-terminated texts at byte offset off of n records of size stride, packed one after the
 * other (malloc'd), or NULL when out of memory. */
static char *pack_texts(const void *recs, size_t stride, size_t off, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += strlen((const char *)recs + (size_t)i * stride + off) + 1;
    char *out = malloc(total ? total : 1), *p = out;
    for (int i = 0; out && i < n; i++) {
        const char *t = (const char *)recs + (size_t)i * stride + off;
        const size_t len = strlen(t) + 1;
        memcpy(p, t, len);
        p += len;
    }
    return out;
}

int results_add_eval(ckpt_snapshot *s, int stage, task_domain d, spec_split split,
                     const eval_sample *es, const task_example *ex, int n,
                     metrics_run mr[METRICS_READOUT_COUNT]) {
    char g[256], nm[32];
    snprintf(g, sizeof g, "stages/%d/domains/%s/%s", stage, task_domain_name(d),
             spec_split_name(split, nm, sizeof nm));
    const size_t un = (size_t)(n > 0 ? n : 1);
    double *conf = malloc(sizeof(double) * un), *cexp = malloc(sizeof(double) * un),
           *mass = malloc(sizeof(double) * un);
    double *ae = malloc(sizeof(double) * un), *ce = malloc(sizeof(double) * un);
    uint8_t *cor = malloc(un), *ff = malloc(un);
    int64_t *nt = malloc(sizeof(int64_t) * un);
    if (!conf || !cexp || !mass || !ae || !ce || !cor || !ff || !nt) {
        free(conf), free(cexp), free(mass), free(ae), free(ce), free(cor), free(ff), free(nt);
        return CKPT_ERR_NOMEM;
    }
    double mass_sum = 0.0;
    for (int i = 0; i < n; i++) {
        conf[i] = es[i].confidence;
        cexp[i] = es[i].confidence_expected;
        mass[i] = es[i].confidence_format_mass;
        mass_sum += mass[i];
        cor[i] = (uint8_t)(es[i].correct != 0);
        ff[i] = (uint8_t)(es[i].format_failure != 0);
        ae[i] = es[i].answer_entropy;
        ce[i] = es[i].conf_entropy;
        nt[i] = es[i].n_tokens;
    }
    metrics_run m[METRICS_READOUT_COUNT];
    if (metrics_run_compute(conf, cor, ff, (size_t)n, &m[METRICS_READOUT_GREEDY]) != METRICS_OK ||
        metrics_run_compute(cexp, cor, ff, (size_t)n, &m[METRICS_READOUT_EXPECTED]) != METRICS_OK) {
        free(conf), free(cexp), free(mass), free(ae), free(ce), free(cor), free(ff), free(nt);
        return CKPT_ERR_ARG;
    }
    if (mr) memcpy(mr, m, sizeof m);
    int64_t dims[1] = {n};
    char p[320];
    int rc = 0;
#define ADD(name, dt, buf)                                                                         \
    if (!rc) {                                                                                     \
        snprintf(p, sizeof p, "%s/%s", g, name);                                                   \
        rc = ckpt_snapshot_add_owned(s, p, dt, 1, dims, buf, NULL);                                \
    } else                                                                                         \
        free(buf);
    ADD("confidence_greedy", CKPT_DTYPE_F64, conf)
    ADD("confidence_expected", CKPT_DTYPE_F64, cexp)
    ADD("confidence_format_mass", CKPT_DTYPE_F64, mass)
    ADD("correct", CKPT_DTYPE_U8, cor)
    ADD("format_fail", CKPT_DTYPE_U8, ff)
    ADD("answer_entropy", CKPT_DTYPE_F64, ae)
    ADD("conf_entropy", CKPT_DTYPE_F64, ce)
    ADD("n_tokens", CKPT_DTYPE_I64, nt)
    /* the texts, packed (ckpt.h, CKPT_DTYPE_STR) */
    char *txt = rc ? NULL : pack_texts(es, sizeof *es, offsetof(eval_sample, completion), n);
    if (!rc && !txt) rc = CKPT_ERR_NOMEM;
    ADD("completion", CKPT_DTYPE_STR, txt)
    if (ex) {
        txt = rc ? NULL : pack_texts(ex, sizeof *ex, offsetof(task_example, question), n);
        if (!rc && !txt) rc = CKPT_ERR_NOMEM;
        ADD("question", CKPT_DTYPE_STR, txt)
        txt = rc ? NULL : pack_texts(ex, sizeof *ex, offsetof(task_example, answer), n);
        if (!rc && !txt) rc = CKPT_ERR_NOMEM;
        ADD("reference", CKPT_DTYPE_STR, txt)
    }
#undef ADD
    for (int r = 0; !rc && r < METRICS_READOUT_COUNT; r++)
        for (int f = 0; !rc && f < METRICS_FIELD_COUNT; f++) {
            char key[32];
            if (r != METRICS_READOUT_GREEDY && !metrics_field_per_readout((metrics_field)f))
                continue; /* once */
            rc = ckpt_snapshot_attr_f64(
                s, g, metrics_field_key((metrics_field)f, (metrics_readout)r, key, sizeof key),
                metrics_run_get(&m[r], (metrics_field)f));
        }
    if (!rc) rc = ckpt_snapshot_attr_f64(s, g, "mean_format_mass", n > 0 ? mass_sum / n : NAN);
    if (!rc) rc = ckpt_snapshot_attr_i64(s, g, "n", (int64_t)m[0].n);
    if (!rc) rc = ckpt_snapshot_attr_i64(s, g, "n_correct", (int64_t)m[0].n_correct);
    if (!rc) rc = ckpt_snapshot_attr_i64(s, g, "n_format_fail", (int64_t)m[0].n_format_fail);
    if (!rc) rc = ckpt_snapshot_attr_str(s, g, "split", task_split_name(split.split));
    if (!rc) rc = ckpt_snapshot_attr_i64(s, g, "severity", split.severity);
    return rc;
}

const char *results_metric_attr(int version, metrics_field f, metrics_readout r, char *buf,
                                size_t cap) {
    if (version >= 2) return metrics_field_key(f, r, buf, cap);
    if (r != METRICS_READOUT_GREEDY || !metrics_field_name(f)) return NULL;
    int k = snprintf(buf, cap, "%s", metrics_field_name(f));
    return k >= 0 && (size_t)k < cap ? buf : NULL;
}

int results_read_matrix(ckpt_reader *r, int n_rows, const task_domain *dom, int n_dom,
                        const char *split, metrics_field field, metrics_readout readout, double *R,
                        char *err, size_t errlen) {
    char key[32];
    const char *attr =
        results_metric_attr(ckpt_reader_format_version(r), field, readout, key, sizeof key);
    for (int i = 0; i < n_rows; i++)
        for (int j = 0; j < n_dom; j++) {
            char g[256];
            snprintf(g, sizeof g, "stages/%d/domains/%s/%s", i, task_domain_name(dom[j]), split);
            if (!attr) {
                R[i * n_dom + j] = NAN;
            } else if (ckpt_reader_attr_f64(r, g, attr, &R[i * n_dom + j]) != CKPT_OK) {
                snprintf(err, errlen, "%s", ckpt_reader_errmsg(r));
                return -1;
            }
        }
    return 0;
}
