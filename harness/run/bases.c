/* bases.c: opening a shipped base, measuring the base conditions, and packing a run's
 * checkpoint into a shipped base (docs/bases.md). */
#include "harness/run/bases.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/ckpt.h"
#include "harness/trainer/evaluate.h"
#include "harness/trainer/opd.h"
#include "harness/run/snapshot.h"
#include "harness/run/spec.h"
#include "tasks/templates.h"

static const char *const FIELD_NAMES[] = {"demo_acc",  "note_exact", "note_acc",   "acc",
                                          "mean_conf", "conf_one",   "format_fail"};
#define N_FIELDS 7

static double *field(bases_figures *f, int i) {
    double *v[N_FIELDS] = {&f->demo_acc,  &f->note_exact, &f->note_acc,   &f->acc,
                           &f->mean_conf, &f->conf_one,   &f->format_fail};
    return v[i];
}

static void read_figures(ckpt_reader *rd, bases_info *info) {
    info->has_figures = 1;
    for (int d = 0; d < TASK_N_DOMAINS && info->has_figures; d++) {
        char g[64];
        snprintf(g, sizeof g, "base_figures/%s", task_domain_name((task_domain)d));
        int64_t n = 0;
        if (ckpt_reader_attr_i64(rd, g, "n", &n) != CKPT_OK) info->has_figures = 0;
        info->figures[d].n = (int)n;
        for (int i = 0; i < N_FIELDS && info->has_figures; i++)
            if (ckpt_reader_attr_f64(rd, g, FIELD_NAMES[i], field(&info->figures[d], i)) != CKPT_OK)
                info->has_figures = 0;
    }
}

static void read_str(ckpt_reader *rd, const char *name, char *out, size_t cap) {
    char *s = NULL;
    out[0] = '\0';
    if (ckpt_reader_attr_str(rd, "", name, &s) == CKPT_OK) snprintf(out, cap, "%s", s);
    free(s);
}

int bases_open(tw_ctx *ctx, const char *path, uint64_t seed, gpt **model, bases_info *info,
               char *err, size_t errlen) {
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    memset(info, 0, sizeof *info);
    if (ckpt_reader_open(&rd, path, CKPT_FORMAT_CHECKPOINT, SNAP_CHECKPOINT_VERSION, &ce)) {
        snprintf(err, errlen, "%s", ce.msg);
        return -1;
    }
    char e[1024];
    int rc = snap_read_config(rd, "student", &info->cfg, e, sizeof e);
    if (rc) snprintf(err, errlen, "%s: %s", path, e);
    if (!rc &&
        (ckpt_reader_attr_i64(rd, "trainer", "step", &info->step) != CKPT_OK || info->step < 0)) {
        snprintf(err, errlen, "%s: %s; the file is not a checkpoint of caopd run", path,
                 ckpt_reader_errmsg(rd));
        rc = -1;
    }
    tw_rng *rng = NULL;
    gpt *m = NULL;
    if (!rc &&
        (tw_rng_new(ctx, seed, &rng) != TW_OK || gpt_new(ctx, info->cfg, rng, &m) != TW_OK)) {
        snprintf(err, errlen, "%s: building its model: %s", path, tw_errmsg(ctx));
        rc = -1;
    }
    if (!rc && snap_load_model(rd, "student", m, e, sizeof e)) {
        snprintf(err, errlen, "%s: %s", path, e);
        rc = -1;
    }
    if (!rc) {
        read_str(rd, "base_name", info->name, sizeof info->name);
        read_str(rd, "base_commit", info->commit, sizeof info->commit);
        read_figures(rd, info);
        char *json = NULL;
        spec *sp = calloc(1, sizeof *sp);
        if (!sp || ckpt_reader_attr_str(rd, "", "spec", &json) != CKPT_OK ||
            spec_parse(json, sp, e, sizeof e)) {
            snprintf(err, errlen,
                     "%s: its spec attribute cannot be read (%s); the file is not a checkpoint of "
                     "caopd run",
                     path, sp ? e : "out of memory");
            rc = -1;
        } else {
            info->threads = sp->threads;
            unsigned all = (1u << TASK_N_DOMAINS) - 1;
            info->skill_domains = sp->base_data.student_domains ? sp->base_data.student_domains
                                  : sp->base_data.domains       ? sp->base_data.domains
                                                                : all;
        }
        free(json), free(sp);
    }
    tw_rng_free(rng);
    ckpt_reader_free(rd);
    if (rc) {
        gpt_free(m);
        return -1;
    }
    *model = m;
    return 0;
}

bases_verdict bases_judge(const bases_figures f[TASK_N_DOMAINS], unsigned skill_domains) {
    bases_verdict v = {0};
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        const unsigned bit = 1u << d;
        if (f[d].demo_acc < 0.95) v.a_demo_fail |= bit;
        if (f[d].note_exact < 0.95) v.a_note_fail |= bit;
        if (!(skill_domains & bit)) continue;
        if (f[d].acc >= 0.25 && f[d].acc <= 0.60)
            v.b_in_band++;
        else
            v.b_out |= bit;
        if (f[d].conf_one < 0.95) v.c_fail |= bit;
    }
    v.a = !v.a_demo_fail && !v.a_note_fail;
    v.b = v.b_in_band >= 4;
    v.c = !v.c_fail;
    return v;
}

uint64_t bases_measure_seed(task_domain d) {
    return 9000 + (uint64_t)d;
}

/* The note value of question i: a pseudo-random hundredth 0..100, fixed by (seed, i). */
static int note_of(uint64_t seed, int i) {
    return (int)((seed * 7919u + (uint64_t)i * 104729u) % 101u);
}

tw_status bases_measure(gpt *m, task_domain d, int n, uint64_t seed, bases_figures *out,
                        bases_sample *samples) {
    tw_ctx *ctx = gpt_ctx(m);
    memset(out, 0, sizeof *out);
    out->n = n;
    task_example *ex = malloc(sizeof *ex * (size_t)(n > 0 ? n : 1));
    char(*demo_ctx)[OPD_CONTEXT_CAP] = malloc(sizeof *demo_ctx * (size_t)(n > 0 ? n : 1));
    char(*note_ctx)[OPD_CONTEXT_CAP] = malloc(sizeof *note_ctx * (size_t)(n > 0 ? n : 1));
    const char **pd = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    const char **pn = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    eval_sample *es = malloc(sizeof *es * (size_t)(n > 0 ? n : 1));
    task_gen *g = NULL;
    tw_status rc = TW_OK;
    if (n < 1) {
        tw_set_error(ctx, TW_ERR_ARG, "bases_measure: n must be >= 1 (got %d)", n);
        rc = TW_ERR_ARG;
    } else if (!ex || !demo_ctx || !note_ctx || !pd || !pn || !es) {
        tw_set_error(ctx, TW_ERR_NOMEM, "bases_measure: out of memory");
        rc = TW_ERR_NOMEM;
    } else if (task_gen_new(&g, d, TASK_SPLIT_TEST, 0, seed) != TASK_OK) {
        tw_set_error(ctx, TW_ERR_ARG, "bases_measure: %s", task_errmsg());
        rc = TW_ERR_ARG;
    }
    for (int i = 0; rc == TW_OK && i < n; i++) {
        if (task_gen_next(g, &ex[i]) != TASK_OK) {
            tw_set_error(ctx, TW_ERR_ARG, "bases_measure: %s", task_errmsg());
            rc = TW_ERR_ARG;
            break;
        }
        char demo[OPD_TEXT_CAP];
        double p = note_of(seed, i) / 100.0;
        tmpl_completion(demo, sizeof demo, ex[i].answer, 1.0);
        tmpl_teacher_demo(demo_ctx[i], OPD_CONTEXT_CAP, ex[i].question, demo, TMPL_NO_NOTE);
        tmpl_completion(demo, sizeof demo, ex[i].answer, p);
        tmpl_teacher_demo(note_ctx[i], OPD_CONTEXT_CAP, ex[i].question, demo, p);
        pd[i] = demo_ctx[i];
        pn[i] = note_ctx[i];
    }
    task_gen_free(g);
    eval_params ep = eval_params_default();
    ep.expected = 0; /* the conditions read the greedy readout only */
    /* Room for the longest completion asked for, as a run's evaluation derives it (docs/spec.md,
     * "eval"), as far as the longest context leaves room: a cut completion loses its confidence
     * and reads as a format failure. */
    int longest_prompt = 0;
    for (int i = 0; rc == TW_OK && i < n; i++) {
        char c[TASK_ANSWER_CAP + 32];
        int need = (int)tmpl_completion(c, sizeof c, ex[i].answer, 1.0) + SPEC_EVAL_MAX_NEW_SLACK;
        int prompt = 1 + (int)strlen(note_ctx[i]); /* BOS + one token per byte */
        if (need > ep.max_new) ep.max_new = need;
        if (prompt > longest_prompt) longest_prompt = prompt;
    }
    const int room = gpt_get_config(m).block_size - longest_prompt;
    if (ep.max_new > room && room > 0) ep.max_new = room;
    int ok = 0;
    if (samples) memset(samples, 0, sizeof *samples * (size_t)(n > 0 ? n : 0));
    if (rc == TW_OK) rc = eval_generate(m, pd, n, ep, es);
    for (int i = 0; rc == TW_OK && i < n; i++) {
        const int right = task_verify(&ex[i], es[i].completion, strlen(es[i].completion)).correct;
        ok += right;
        if (samples) {
            bases_sample *s = &samples[i];
            snprintf(s->question, sizeof s->question, "%s", ex[i].question);
            snprintf(s->answer, sizeof s->answer, "%s", ex[i].answer);
            snprintf(s->demo_completion, sizeof s->demo_completion, "%s", es[i].completion);
            s->demo_correct = right;
            s->note = note_of(seed, i);
        }
    }
    out->demo_acc = (double)ok / n;
    if (rc == TW_OK) rc = eval_generate(m, pn, n, ep, es);
    int exact = 0;
    ok = 0;
    for (int i = 0; rc == TW_OK && i < n; i++) {
        const int right = task_verify(&ex[i], es[i].completion, strlen(es[i].completion)).correct;
        const int is_exact =
            !es[i].format_failure && tmpl_conf_hundredths(es[i].confidence) == note_of(seed, i);
        ok += right;
        exact += is_exact;
        if (samples) {
            snprintf(samples[i].note_completion, sizeof samples[i].note_completion, "%s",
                     es[i].completion);
            samples[i].note_exact = is_exact;
            samples[i].note_correct = right;
        }
    }
    out->note_acc = (double)ok / n;
    out->note_exact = (double)exact / n;
    if (rc == TW_OK) rc = eval_examples(m, ex, n, ep, es);
    int correct = 0, one = 0, ff = 0;
    double conf = 0;
    for (int i = 0; rc == TW_OK && i < n; i++) {
        correct += es[i].correct;
        conf += es[i].confidence;
        one += !es[i].format_failure && tmpl_conf_hundredths(es[i].confidence) == 100;
        ff += es[i].format_failure;
        if (samples) {
            snprintf(samples[i].completion, sizeof samples[i].completion, "%s", es[i].completion);
            samples[i].correct = es[i].correct;
            samples[i].format_failure = es[i].format_failure;
            samples[i].confidence = es[i].confidence;
        }
    }
    out->acc = (double)correct / n;
    out->mean_conf = conf / n;
    out->conf_one = (double)one / n;
    out->format_fail = (double)ff / n;
    free(ex), free(demo_ctx), free(note_ctx), free(pd), free(pn), free(es);
    return rc;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    if (!in || !out) {
        snprintf(err, errlen, "cannot %s %s: %s", in ? "write" : "read", in ? to : from,
                 strerror(errno));
        if (in) fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t k;
    int bad = 0;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k) bad = 1;
    bad |= ferror(in);
    fclose(in);
    if (fclose(out) || bad) {
        snprintf(err, errlen, "copying %s to %s failed: %s", from, to, strerror(errno));
        remove(to);
        return -1;
    }
    return 0;
}

int bases_pack(const char *ckpt_path, const char *out_path, const char *name, const char *commit,
               int n, int threads, char *err, size_t errlen) {
    char e[2048];
    tw_set_num_threads(threads);
    tw_set_blas_threads(threads);
    tw_ctx *ctx = NULL;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, e, sizeof e) != TW_OK) {
        snprintf(err, errlen, "libtorch: %s", e);
        return -1;
    }
    gpt *m = NULL;
    bases_info info;
    if (bases_open(ctx, ckpt_path, 1, &m, &info, err, errlen)) {
        tw_ctx_free(ctx);
        return -1;
    }
    int rc = 0, made_threads = info.threads;
    bases_figures fig[TASK_N_DOMAINS];
    for (int d = 0; !rc && d < TASK_N_DOMAINS; d++)
        if (bases_measure(m, (task_domain)d, n, bases_measure_seed((task_domain)d), &fig[d],
                          NULL) != TW_OK) {
            snprintf(err, errlen, "%s: measuring %s: %s", ckpt_path,
                     task_domain_name((task_domain)d), tw_errmsg(ctx));
            rc = -1;
        }
    gpt_free(m);
    tw_ctx_free(ctx);
    if (rc) return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.pack", out_path);
    if (copy_file(ckpt_path, tmp, err, errlen)) return -1;
    ckpt_writer *w = NULL;
    ckpt_error ce;
    if (ckpt_writer_open_append(&w, tmp, CKPT_FORMAT_CHECKPOINT, SNAP_CHECKPOINT_VERSION, NULL,
                                &ce)) {
        snprintf(err, errlen, "%s", ce.msg);
        remove(tmp);
        return -1;
    }
    ckpt_writer_set_attr_str(w, "", "base_name", name);
    ckpt_writer_set_attr_str(w, "", "base_commit", commit);
    ckpt_writer_set_attr_i64(w, "", "base_threads", made_threads);
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        char g[64];
        snprintf(g, sizeof g, "base_figures/%s", task_domain_name((task_domain)d));
        ckpt_writer_set_attr_i64(w, g, "n", fig[d].n);
        for (int i = 0; i < N_FIELDS; i++)
            ckpt_writer_set_attr_f64(w, g, FIELD_NAMES[i], *field(&fig[d], i));
    }
    if (ckpt_writer_commit(w)) {
        snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
        ckpt_writer_free(w);
        remove(tmp);
        return -1;
    }
    ckpt_writer_free(w);
    if (rename(tmp, out_path)) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, out_path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
