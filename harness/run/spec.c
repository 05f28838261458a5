/* spec.c: the experiment spec: cJSON parse, key-by-key validation with JSON-path messages,
 * inheritance of stage hyper-parameters from "defaults". Keys and ranges: docs/spec.md. */
#include "harness/run/spec.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/run/jsonv.h"
#include "tasks/templates.h"
#include "tasks/tokenizer.h"

static int get_i(jsonv *v, const cJSON *obj, const char *path, const char *key, int lo, int hi,
                 int *out) {
    long long x = *out;
    if (jsonv_get_int(v, obj, path, key, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

static int get_enum_key(jsonv *v, const cJSON *obj, const char *path, const char *key,
                        const char *what, const char *const *names, int n, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    char p[SPEC_PATH_CAP];
    jsonv_join(p, sizeof p, path, key);
    return jsonv_enum(v, j, p, what, names, n, out);
}

/* The names a spec accepts, from the modules that own them. */
static const char *domain_names[TASK_N_DOMAINS];
static const char *method_names[TRAIN_N_METHODS];
static const char *teacher_names[OPD_N_TEACHER_MODES];
static const char *divergence_names[OPD_N_DIVERGENCES];
static const char *const ood_names[] = {"ood_length", "ood_value", "ood_format"};

static void init_names(void) {
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        domain_names[d] = task_domain_name((task_domain)d);
    for (int m = 0; m < TRAIN_N_METHODS; m++)
        method_names[m] = train_method_name((train_method)m);
    for (int t = 0; t < OPD_N_TEACHER_MODES; t++)
        teacher_names[t] = opd_teacher_mode_name((opd_teacher_mode)t);
    for (int d = 0; d < OPD_N_DIVERGENCES; d++)
        divergence_names[d] = opd_divergence_name((opd_divergence)d);
}

/* Stage keys (also the keys of "defaults", which has no "domain"). */
static const char *const stage_keys[] = {
    "domain",       "method",          "steps",    "batch",       "lr",
    "warmup",       "min_lr_frac",     "k",        "temperature", "max_new",
    "teacher",      "divergence",      "jsd_beta", "skip_tokens", "ema_alpha",
    "clip_norm",    "weight_decay",    "beta1",    "beta2",       "replay_frac",
    "sync_teacher", "reset_optimizer", NULL};

/* Reads the hyper-parameters of obj over st (which holds the inherited values). */
static int read_stage_params(jsonv *v, const cJSON *obj, const char *path, spec_stage *st) {
    train_params *t = &st->train;
    int m = (int)t->method, te = (int)t->opd.teacher, dv = (int)t->opd.loss.divergence;
    get_enum_key(v, obj, path, "method", "method", method_names, TRAIN_N_METHODS, &m);
    get_i(v, obj, path, "steps", 0, 10000000, &t->total_steps);
    get_i(v, obj, path, "batch", 1, 4096, &t->batch_prompts);
    jsonv_get_num(v, obj, path, "lr", 0, 1, 1, &t->lr);
    get_i(v, obj, path, "warmup", 0, 10000000, &t->warmup_steps);
    jsonv_get_num(v, obj, path, "min_lr_frac", 0, 1, 0, &t->min_lr_frac);
    get_i(v, obj, path, "k", 1, OPD_MAX_K, &t->opd.k);
    jsonv_get_num(v, obj, path, "temperature", 0, 100, 1, &t->opd.temperature);
    get_i(v, obj, path, "max_new", 1, OPD_TEXT_CAP - 1, &t->opd.max_new);
    get_enum_key(v, obj, path, "teacher", "teacher mode", teacher_names, OPD_N_TEACHER_MODES, &te);
    get_enum_key(v, obj, path, "divergence", "divergence", divergence_names, OPD_N_DIVERGENCES,
                 &dv);
    double jb = t->opd.loss.jsd_beta;
    if (!jsonv_get_num(v, obj, path, "jsd_beta", 0, 1, 1, &jb) && jb >= 1) {
        char p[SPEC_PATH_CAP];
        jsonv_join(p, sizeof p, path, "jsd_beta");
        jsonv_fail(v, p, "%g is out of range (0, 1)", jb);
    }
    t->opd.loss.jsd_beta = jb;
    get_i(v, obj, path, "skip_tokens", 0, OPD_TEXT_CAP, &t->opd.loss.skip_tokens);
    jsonv_get_num(v, obj, path, "ema_alpha", 0, 1, 0, &t->ema_alpha);
    jsonv_get_num(v, obj, path, "clip_norm", 0, 1e9, 0, &t->clip_norm);
    jsonv_get_num(v, obj, path, "weight_decay", 0, 1, 0, &t->weight_decay);
    double b1 = t->beta1, b2 = t->beta2;
    jsonv_get_num(v, obj, path, "beta1", 0, 1, 0, &b1);
    jsonv_get_num(v, obj, path, "beta2", 0, 1, 0, &b2);
    char p[SPEC_PATH_CAP];
    if (b1 >= 1)
        jsonv_join(p, sizeof p, path, "beta1"), jsonv_fail(v, p, "%g is out of range [0, 1)", b1);
    if (b2 >= 1)
        jsonv_join(p, sizeof p, path, "beta2"), jsonv_fail(v, p, "%g is out of range [0, 1)", b2);
    t->beta1 = b1, t->beta2 = b2;
    jsonv_get_num(v, obj, path, "replay_frac", 0, 1, 0, &t->replay_frac);
    jsonv_get_bool(v, obj, path, "sync_teacher", &st->sync_teacher);
    jsonv_get_bool(v, obj, path, "reset_optimizer", &st->reset_optimizer);
    t->method = (train_method)m;
    t->opd.teacher = (opd_teacher_mode)te;
    t->opd.loss.divergence = (opd_divergence)dv;
    return v->failed ? -1 : 0;
}

static int read_model(jsonv *v, const cJSON *root, spec *s) {
    const cJSON *o;
    if (jsonv_get_object(v, root, "", "model", &o) || !o) return v->failed ? -1 : 0;
    static const char *const keys[] = {"n_embd", "n_layer", "n_head", "block_size", NULL};
    if (jsonv_check_keys(v, o, "model", "key", keys)) return -1;
    get_i(v, o, "model", "n_embd", 1, 4096, &s->model.n_embd);
    get_i(v, o, "model", "n_layer", 1, 64, &s->model.n_layer);
    get_i(v, o, "model", "n_head", 1, 64, &s->model.n_head);
    get_i(v, o, "model", "block_size", 16, 4096, &s->model.block_size);
    if (v->failed) return -1;
    if (s->model.n_embd % s->model.n_head != 0)
        return jsonv_fail(v, "model.n_embd", "%d is not a multiple of model.n_head (%d)",
                          s->model.n_embd, s->model.n_head);
    char e[256];
    if (gpt_config_check(s->model, e, sizeof e)) return jsonv_fail(v, "model", "%s", e);
    return 0;
}

static int read_domains_mask(jsonv *v, const cJSON *arr, const char *p, unsigned *mask) {
    if (!cJSON_IsArray(arr))
        return jsonv_fail(v, p, "expected an array of domain names, got %s", jsonv_type_name(arr));
    *mask = 0;
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        char pi[SPEC_PATH_CAP];
        snprintf(pi, sizeof pi, "%s[%d]", p, i);
        int d = 0;
        if (jsonv_enum(v, c, pi, "domain", domain_names, TASK_N_DOMAINS, &d)) return -1;
        *mask |= 1u << d;
    }
    if (!*mask)
        return jsonv_fail(v, p,
                          "empty; name at least one domain or leave the key out (all domains)");
    return 0;
}

static int read_base(jsonv *v, const cJSON *root, spec *s) {
    const cJSON *o;
    if (jsonv_get_object(v, root, "", "base", &o) || !o) return v->failed ? -1 : 0;
    static const char *const keys[] = {"checkpoint", "steps",       "batch",     "lr",
                                       "warmup",     "min_lr_frac", "p_teacher", "p_solution",
                                       "p_replaced", "p_no_note",   "domains",   "student_domains",
                                       "focus",      "focus_share", NULL};
    if (jsonv_check_keys(v, o, "base", "key", keys)) return -1;
    int has_ckpt = 0;
    jsonv_get_str(v, o, "base", "checkpoint", s->base_checkpoint, sizeof s->base_checkpoint,
                  &has_ckpt);
    train_params *t = &s->base_train;
    get_i(v, o, "base", "steps", 0, 10000000, &t->total_steps);
    get_i(v, o, "base", "batch", 1, 4096, &t->batch_prompts);
    jsonv_get_num(v, o, "base", "lr", 0, 1, 1, &t->lr);
    get_i(v, o, "base", "warmup", 0, 10000000, &t->warmup_steps);
    jsonv_get_num(v, o, "base", "min_lr_frac", 0, 1, 0, &t->min_lr_frac);
    jsonv_get_num(v, o, "base", "p_teacher", 0, 1, 0, &s->base_data.p_teacher);
    jsonv_get_num(v, o, "base", "p_solution", 0, 1, 0, &s->base_data.p_solution);
    jsonv_get_num(v, o, "base", "p_replaced", 0, 1, 0, &s->base_data.p_replaced);
    jsonv_get_num(v, o, "base", "p_no_note", 0, 1, 0, &s->base_data.p_no_note);
    jsonv_get_num(v, o, "base", "focus_share", 0, 1, 0, &s->base_data.focus_share);
    const cJSON *dom = cJSON_GetObjectItemCaseSensitive(o, "domains");
    if (!v->failed && dom) read_domains_mask(v, dom, "base.domains", &s->base_data.domains);
    dom = cJSON_GetObjectItemCaseSensitive(o, "student_domains");
    if (!v->failed && dom)
        read_domains_mask(v, dom, "base.student_domains", &s->base_data.student_domains);
    const cJSON *focus = cJSON_GetObjectItemCaseSensitive(o, "focus");
    if (!v->failed && focus)
        jsonv_enum(v, focus, "base.focus", "domain", domain_names, TASK_N_DOMAINS,
                   &s->base_data.focus);
    if (v->failed) return -1;
    if (s->base_data.focus < 0 && cJSON_GetObjectItemCaseSensitive(o, "focus_share"))
        return jsonv_fail(v, "base.focus_share",
                          "given without base.focus; name the focus domain too");
    if (s->base_data.focus >= 0 && !cJSON_GetObjectItemCaseSensitive(o, "focus_share"))
        return jsonv_fail(
            v, "base.focus",
            "given without base.focus_share (the share of student-format pairs from it, 0..1)");
    base_gen *probe = NULL;
    if (base_gen_new(&probe, s->base_data, 1) != BASE_OK)
        return jsonv_fail(v, "base", "%s", base_errmsg());
    base_gen_free(probe);
    if (has_ckpt) {
        if (!s->base_checkpoint[0])
            return jsonv_fail(v, "base.checkpoint",
                              "empty path; give a caopd-checkpoint file or leave the key out");
        if (cJSON_GetObjectItemCaseSensitive(o, "steps") && t->total_steps > 0)
            return jsonv_fail(v, "base.steps",
                              "%d base steps with base.checkpoint; a loaded base is not trained "
                              "(set 0 or leave one of the keys out)",
                              t->total_steps);
        t->total_steps = 0;
    }
    return 0;
}

static int read_eval(jsonv *v, const cJSON *root, spec *s) {
    s->n_splits = 1;
    s->splits[0] = (spec_split){TASK_SPLIT_TEST, 0};
    const cJSON *o;
    if (jsonv_get_object(v, root, "", "eval", &o) || !o) return v->failed ? -1 : 0;
    static const char *const keys[] = {"n",         "max_new",        "batch",
                                       "ood_kinds", "ood_severities", NULL};
    if (jsonv_check_keys(v, o, "eval", "key", keys)) return -1;
    get_i(v, o, "eval", "n", 1, 1000000, &s->eval_n);
    get_i(v, o, "eval", "max_new", 1, EVAL_TEXT_CAP - 1, &s->eval.max_new);
    s->eval_max_new_given = cJSON_GetObjectItemCaseSensitive(o, "max_new") != NULL;
    get_i(v, o, "eval", "batch", 1, 4096, &s->eval.batch);
    if (v->failed) return -1;
    int kinds[3], nk = 0, sevs[TASK_SEVERITY_MAX] = {1, 2, 3}, ns = TASK_SEVERITY_MAX;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "ood_kinds");
    if (k) {
        if (!cJSON_IsArray(k))
            return jsonv_fail(v, "eval.ood_kinds", "expected an array of OOD kind names, got %s",
                              jsonv_type_name(k));
        int i = 0;
        for (const cJSON *c = k->child; c; c = c->next, i++) {
            char p[64];
            snprintf(p, sizeof p, "eval.ood_kinds[%d]", i);
            int x = 0;
            if (jsonv_enum(v, c, p, "OOD kind", ood_names, 3, &x)) return -1;
            for (int j = 0; j < nk; j++)
                if (kinds[j] == x) return jsonv_fail(v, p, "'%s' is listed twice", ood_names[x]);
            kinds[nk++] = x;
        }
    }
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(o, "ood_severities");
    if (sv) {
        if (!cJSON_IsArray(sv))
            return jsonv_fail(v, "eval.ood_severities",
                              "expected an array of integers 1..%d, got %s", TASK_SEVERITY_MAX,
                              jsonv_type_name(sv));
        ns = 0;
        int i = 0;
        for (const cJSON *c = sv->child; c; c = c->next, i++) {
            char p[64];
            snprintf(p, sizeof p, "eval.ood_severities[%d]", i);
            if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble))
                return jsonv_fail(v, p, "expected an integer 1..%d, got %s", TASK_SEVERITY_MAX,
                                  cJSON_IsNumber(c) ? "a fractional number" : jsonv_type_name(c));
            if (c->valuedouble < 1 || c->valuedouble > TASK_SEVERITY_MAX)
                return jsonv_fail(v, p, "%g is out of range 1..%d", c->valuedouble,
                                  TASK_SEVERITY_MAX);
            int x = (int)c->valuedouble;
            for (int j = 0; j < ns; j++)
                if (sevs[j] == x) return jsonv_fail(v, p, "severity %d is listed twice", x);
            sevs[ns++] = x;
        }
        if (ns == 0 && nk > 0)
            return jsonv_fail(v, "eval.ood_severities",
                              "empty while eval.ood_kinds names kinds; list severities 1..%d",
                              TASK_SEVERITY_MAX);
    }
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < ns; j++)
            s->splits[s->n_splits++] =
                (spec_split){(task_split)(TASK_SPLIT_OOD_LENGTH + kinds[i]), sevs[j]};
    return 0;
}

static int read_small(jsonv *v, const cJSON *root, spec *s) {
    const cJSON *o;
    static const char *const skeys[] = {"every_steps", "deflate_level", NULL};
    static const char *const lkeys[] = {"every_steps", NULL};
    if (jsonv_get_object(v, root, "", "snapshots", &o)) return -1;
    if (o && !jsonv_check_keys(v, o, "snapshots", "key", skeys)) {
        get_i(v, o, "snapshots", "every_steps", 0, 10000000, &s->snapshot_every);
        get_i(v, o, "snapshots", "deflate_level", 0, 9, &s->deflate_level);
    }
    if (v->failed || jsonv_get_object(v, root, "", "log", &o)) return -1;
    if (o && !jsonv_check_keys(v, o, "log", "key", lkeys))
        get_i(v, o, "log", "every_steps", 1, 10000000, &s->log_every);
    return v->failed ? -1 : 0;
}

static void defaults(spec *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "run");
    s->seed = 1;
    s->threads = 1;
    s->model = gpt_config_default();
    s->model.vocab = TOK_VOCAB_SIZE;
    s->model.n_embd = 64, s->model.n_layer = 2, s->model.n_head = 4;
    s->base_train = train_params_default();
    s->base_train.method = TRAIN_METHOD_SFT;
    s->base_train.total_steps = 600;
    s->base_train.batch_prompts = 32;
    s->base_train.lr = 2e-3;
    s->base_train.warmup_steps = 30;
    s->base_data = base_params_default();
    s->eval_n = 200;
    s->eval = eval_params_default();
    s->snapshot_every = 0;
    s->deflate_level = 1;
    s->log_every = 10;
}

static spec_stage stage_default(void) {
    spec_stage st;
    memset(&st, 0, sizeof st);
    st.train = train_params_default();
    st.train.total_steps = 30;
    st.train.warmup_steps = 3;
    st.train.lr = 1e-4;
    st.sync_teacher = 1;
    st.reset_optimizer = 1;
    return st;
}

/* Tokens of the longest completion ("{answer}\nConfidence: X.XX", one token per character) over
 * the first n examples of (d, split, severity) drawn with seed; *answer gets that answer. */
static int longest_completion(task_domain d, task_split split, int severity, uint64_t seed, int n,
                              char *answer, size_t cap) {
    task_gen *g = NULL;
    if (task_gen_new(&g, d, split, severity, seed) != TASK_OK) return -1;
    int best = 0;
    task_example ex;
    for (int i = 0; i < n && task_gen_next(g, &ex) == TASK_OK; i++) {
        char c[TASK_ANSWER_CAP + 32];
        int len = (int)tmpl_completion(c, sizeof c, ex.answer, 1.0);
        if (len > best) best = len, snprintf(answer, cap, "%s", ex.answer);
    }
    task_gen_free(g);
    return best;
}

/* A completion cut by max_new loses its confidence digits ("0.38" read as "0."), silently: each
 * stage's rollouts must have room for its domain's training answers (the longest of 4096
 * draws) and the evaluation for every question it will ask (the exact evaluation set). A stage
 * value inherited from "defaults" is named there, where the user set it. Without "eval.max_new"
 * the evaluation gets the longest completion it asks for plus SPEC_EVAL_MAX_NEW_SLACK, at least
 * the old default (docs/spec.md, "eval"). */
static int check_completion_room(jsonv *v, spec *s) {
    char ans[TASK_ANSWER_CAP], path[96], split[32];
    for (int i = 0; i < s->n_stages; i++) {
        const spec_stage *st = &s->stages[i];
        if (st->train.method == TRAIN_METHOD_SFT) continue;
        int need =
            longest_completion(st->domain, TASK_SPLIT_TRAIN, 0, s->seed, 4096, ans, sizeof ans);
        if (st->max_new_source == SPEC_FROM_DEFAULTS)
            snprintf(path, sizeof path, "defaults.max_new");
        else
            snprintf(path, sizeof path, "stages[%d].max_new", i);
        if (need < 0)
            return jsonv_fail(v, path, "out of memory while drawing %s's examples",
                              task_domain_name(st->domain));
        if (need > st->train.opd.max_new) {
            const char *whose =
                st->max_new_source == SPEC_FROM_DEFAULTS  ? " (inherited by stages[%d])"
                : st->max_new_source == SPEC_FROM_DEFAULT ? " (the default, used by stages[%d])"
                                                          : "";
            char from[96];
            snprintf(from, sizeof from, whose, i);
            return jsonv_fail(
                v, path,
                "%d tokens%s cut %s's completions, whose confidence then reads wrong (answer "
                "'%s' needs %d: answer, newline, 'Confidence: X.XX'); set %s to at least %d",
                st->train.opd.max_new, from, task_domain_name(st->domain), ans, need,
                st->max_new_source == SPEC_FROM_STAGE ? path : "defaults.max_new", need);
        }
    }
    task_domain dom[TASK_N_DOMAINS];
    const int nd = spec_eval_domains(s, dom);
    const int n = s->eval_n < 20000 ? s->eval_n : 20000;
    int longest = 0;
    for (int k = 0; k < s->n_splits; k++)
        for (int j = 0; j < nd; j++) {
            int need = longest_completion(dom[j], s->splits[k].split, s->splits[k].severity,
                                          s->seed ^ SPEC_EVAL_SEED_XOR, n, ans, sizeof ans);
            if (need < 0)
                return jsonv_fail(v, "eval.max_new",
                                  "out of memory while drawing %s's evaluation questions",
                                  task_domain_name(dom[j]));
            if (need > longest) longest = need;
            if (s->eval_max_new_given && need > s->eval.max_new)
                return jsonv_fail(v, "eval.max_new",
                                  "%d tokens cut completions on %s %s, whose confidence then reads "
                                  "wrong (answer '%s' needs %d: answer, newline, 'Confidence: "
                                  "X.XX'); set eval.max_new "
                                  "to at least %d",
                                  s->eval.max_new, task_domain_name(dom[j]),
                                  spec_split_name(s->splits[k], split, sizeof split), ans, need,
                                  need);
        }
    if (!s->eval_max_new_given) {
        int m = longest + SPEC_EVAL_MAX_NEW_SLACK;
        if (m < s->eval.max_new) m = s->eval.max_new; /* the built-in default */
        s->eval.max_new = m < EVAL_TEXT_CAP - 1 ? m : EVAL_TEXT_CAP - 1;
    }
    return 0;
}

int spec_parse(const char *json, spec *out, char *err, size_t errlen) {
    jsonv v = {err, errlen, 0};
    if (err && errlen) err[0] = '\0';
    init_names();
    if (!json) return jsonv_fail(&v, "", "no spec text");
    cJSON *root = NULL;
    if (jsonv_parse(&v, json, "", &root)) return -1;
    spec *s = out;
    defaults(s);
    if (!cJSON_IsObject(root)) {
        jsonv_fail(&v, "", "expected a JSON object, got %s", jsonv_type_name(root));
        goto done;
    }
    static const char *const top[] = {"format", "version",   "name", "seed",     "threads",
                                      "output", "model",     "base", "defaults", "stages",
                                      "eval",   "snapshots", "log",  NULL};
    /* "caopd-sweep" is SWEEP_FORMAT (sweep.h), a layer above this one */
    if (jsonv_check_format(&v, root, SPEC_FORMAT, SPEC_VERSION, "spec", "caopd experiment spec",
                           "caopd-sweep", " (run a sweep with caopd sweep)"))
        goto done;
    if (jsonv_check_keys(&v, root, "", "key", top)) goto done;
    jsonv_get_str(&v, root, "", "name", s->name, sizeof s->name, NULL);
    long long seed = 1;
    if (!jsonv_get_int(&v, root, "", "seed", 0, 9007199254740991LL, &seed))
        s->seed = (uint64_t)seed;
    get_i(&v, root, "", "threads", 1, 256, &s->threads);
    int has_out = 0;
    jsonv_get_str(&v, root, "", "output", s->output, sizeof s->output, &has_out);
    if (!v.failed && !has_out) snprintf(s->output, sizeof s->output, "runs/%s", s->name);
    if (v.failed || read_model(&v, root, s) || read_base(&v, root, s)) goto done;
    spec_stage dflt = stage_default();
    const cJSON *d;
    if (jsonv_get_object(&v, root, "", "defaults", &d)) goto done;
    if (d) {
        const char *const *keys = stage_keys + 1; /* no "domain" */
        if (jsonv_check_keys(&v, d, "defaults", "key", keys) ||
            read_stage_params(&v, d, "defaults", &dflt))
            goto done;
        if (cJSON_GetObjectItemCaseSensitive(d, "max_new"))
            dflt.max_new_source = SPEC_FROM_DEFAULTS;
    }
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(root, "stages");
    if (!stages) {
        jsonv_fail(&v, "stages",
                   "missing; list the domain stages, e.g. \"stages\": [{\"domain\": \"add\"}]");
        goto done;
    }
    if (!cJSON_IsArray(stages)) {
        jsonv_fail(&v, "stages", "expected an array of stage objects, got %s",
                   jsonv_type_name(stages));
        goto done;
    }
    int n = cJSON_GetArraySize(stages);
    if (n > SPEC_MAX_STAGES) {
        jsonv_fail(&v, "stages", "%d stages; give 0..%d", n, SPEC_MAX_STAGES);
        goto done;
    }
    if (n == 0 && s->base_train.total_steps == 0) { /* a base-only run must train its base */
        jsonv_fail(
            &v, "stages",
            "empty, and the base is not trained (%s), so the run would do nothing; list the domain "
            "stages, e.g. \"stages\": [{\"domain\": \"add\"}], or train a base (base.steps > 0)",
            s->base_checkpoint[0] ? "it is loaded from base.checkpoint" : "base.steps is 0");
        goto done;
    }
    int i = 0;
    for (const cJSON *c = stages->child; c; c = c->next, i++) {
        char p[64];
        snprintf(p, sizeof p, "stages[%d]", i);
        if (!cJSON_IsObject(c)) {
            jsonv_fail(&v, p, "expected an object with at least \"domain\", got %s",
                       jsonv_type_name(c));
            goto done;
        }
        if (jsonv_check_keys(&v, c, p, "key", stage_keys)) goto done;
        const cJSON *dom = cJSON_GetObjectItemCaseSensitive(c, "domain");
        char pd[80];
        snprintf(pd, sizeof pd, "%s.domain", p);
        if (!dom) {
            jsonv_fail(&v, pd,
                       "missing; each stage names its domain (accepted: add, sub, mul, mod, sort, "
                       "rev, count)");
            goto done;
        }
        int dv = 0;
        if (jsonv_enum(&v, dom, pd, "domain", domain_names, TASK_N_DOMAINS, &dv)) goto done;
        s->stages[i] = dflt;
        s->stages[i].domain = (task_domain)dv;
        if (read_stage_params(&v, c, p, &s->stages[i])) goto done;
        if (cJSON_GetObjectItemCaseSensitive(c, "max_new"))
            s->stages[i].max_new_source = SPEC_FROM_STAGE;
        const train_params *t = &s->stages[i].train;
        if (t->opd.max_new >= EVAL_TEXT_CAP && t->method != TRAIN_METHOD_SFT) {
            char pm[80];
            snprintf(pm, sizeof pm, "%s.max_new", p);
            jsonv_fail(&v, pm, "%d is out of range 1..%d", t->opd.max_new, EVAL_TEXT_CAP - 1);
            goto done;
        }
    }
    s->n_stages = n;
    if (read_eval(&v, root, s) || read_small(&v, root, s)) goto done;
    check_completion_room(&v, s);
done:
    cJSON_Delete(root);
    return v.failed ? -1 : 0;
}

int spec_load(const char *path, spec *out, char **text, char *err, size_t errlen) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open the spec file; check the path", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) break;
        if (cap > (16u << 20)) {
            free(buf);
            buf = NULL;
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    int rd_err = ferror(f);
    fclose(f);
    if (!buf || rd_err) {
        free(buf);
        snprintf(err, errlen, "%s: cannot read the spec file (larger than 16 MiB, or a read error)",
                 path);
        return -1;
    }
    buf[n] = '\0';
    char e[SPEC_ERR_CAP];
    if (spec_parse(buf, out, e, sizeof e)) {
        snprintf(err, errlen, "%s: %s", path, e);
        free(buf);
        return -1;
    }
    *text = buf;
    return 0;
}

const char *spec_split_name(spec_split s, char *buf, size_t len) {
    if (s.split == TASK_SPLIT_TEST || s.severity == 0)
        snprintf(buf, len, "%s", task_split_name(s.split));
    else
        snprintf(buf, len, "%s_%d", task_split_name(s.split), s.severity);
    return buf;
}

int spec_eval_domains(const spec *s, task_domain *out) {
    int n = 0;
    for (int i = 0; i < s->n_stages; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= out[j] == s->stages[i].domain;
        if (!seen) out[n++] = s->stages[i].domain;
    }
    return n;
}
