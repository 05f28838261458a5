/* sweep.c: the sweep spec (cJSON parse, validation with JSON-path messages), its expansion
 * into cells by editing a copy of the base experiment's cJSON tree per cell, cell names, the
 * state of a cell directory, and the summary file gathered from the cells (sweep_merge).
 * Keys, rules and layouts: docs/sweep.md. */
#include "harness/run/sweep.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints/ckpt.h"
#include "harness/run/jsonv.h"
#include "harness/run/results.h"
#include "harness/run/run.h"
#include "harness/run/spec.h"
#include "analysis/metrics/strbuf.h"
#include "tasks/task.h"
#include "harness/torch/tw.h"
#include "common/strings.h"
#include "common/files.h"

#define NAME_VALUE_CAP 40 /* bytes of one axis value in a cell name */
#define NAME_CAP 200      /* bytes of a whole cell name (NAME_MAX is 255) */
#define PATH_STEPS 16     /* components of a params path */
#define KEY_CAP 64
#define DIR_CAP 4096 /* a sweep or cell directory path */

typedef enum axis_kind { AXIS_METHOD, AXIS_SEED, AXIS_ORDER, AXIS_SEVERITY, AXIS_PARAM } axis_kind;

/* One component of a params path: a key, or an array index (key[0] == '\0'). */
typedef struct pstep {
    char key[KEY_CAP];
    int index;
} pstep;

typedef struct axis {
    axis_kind kind;
    char name[SPEC_PATH_CAP];  /* "method", ..., or the params path as written */
    char label[SPEC_PATH_CAP]; /* in cell names: "method", "seed", "order", "sev", the path */
    char jpath[SPEC_PATH_CAP]; /* in messages: axes.method, axes.params["defaults.lr"] */
    const cJSON *values;       /* the value array, borrowed from the sweep's tree */
    int n;
    char **text;             /* n display texts */
    pstep steps[PATH_STEPS]; /* AXIS_PARAM: the parsed path */
    int n_steps;
} axis;

struct sweep {
    char *text;     /* the sweep file, verbatim */
    char *exp_text; /* the experiment file, verbatim (NULL when inline) */
    cJSON *root;    /* the sweep's tree: axis values point into it */
    cJSON *exp;     /* the base experiment's tree (inside root when inline) */
    cJSON *exp_own; /* the experiment tree when it was read from a file */
    char name[64];
    char output[SPEC_PATH_CAP];
    int n_axes;
    axis ax[SWEEP_MAX_AXES];
    int n_cells;
    char **names; /* n_cells */
    char **json;  /* n_cells: the cell's experiment text, threads as in the experiment */
    /* shared bases ("share_base": true) */
    int share_base;
    int n_bases;
    char **base_names; /* n_bases: "<index of its first cell>_<label>-<value>..." */
    char **base_json;  /* n_bases: the base-only experiment, threads as in the experiment */
    int *cell_base;    /* n_cells: the cell's base, -1 when it trains its own */
    /* shared training ("share_training", default true) */
    int share_training;
    int n_shared;
    char **shared_names; /* n_shared: named like the bases */
    char **shared_json;  /* n_shared: the shared run's experiment (the union of the evaluations) */
    int *shared_base;    /* n_shared: its cells' base, -1 when they train their own */
    int *cell_shared;    /* n_cells: the cell's shared run, -1 when it runs its own */
    unsigned *cell_sevs; /* n_cells: the OOD severities the cell evaluates (bit s = severity s) */
    char dir[DIR_CAP];   /* the sweep directory, absolute (sweep_set_dir); "" until set */
};

/* ---- values ------------------------------------------------------------------------------- */

/* A number as the shortest text that reads back as the same double. */
static void num_text(double x, char *buf, size_t len) {
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, len, "%lld", (long long)x);
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* The display text of an axis value (malloc'd). */
static char *value_text(const cJSON *v) {
    char buf[64];
    if (cJSON_IsString(v)) return str_dup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        num_text(v->valuedouble, buf, sizeof buf);
        return str_dup(buf);
    }
    if (cJSON_IsBool(v)) return str_dup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsArray(v)) { /* an order: domains joined by '+' */
        int all_str = 1;
        size_t len = 1;
        for (const cJSON *c = v->child; c; c = c->next) {
            all_str &= cJSON_IsString(c);
            if (cJSON_IsString(c)) len += strlen(c->valuestring) + 1;
        }
        if (all_str && v->child) {
            char *t = malloc(len);
            if (!t) return NULL;
            t[0] = '\0';
            for (const cJSON *c = v->child; c; c = c->next) {
                strcat(t, c->valuestring);
                if (c->next) strcat(t, "+");
            }
            return t;
        }
    }
    return cJSON_PrintUnformatted(v); /* malloc'd through cJSON's hooks: plain malloc */
}

/* A file-name-safe copy of s, at most cap - 1 bytes of it, appended to out (out_cap bytes in all):
 * letters, digits, '.', '_', '+', '-' are kept, '[' and ']' dropped, every run of other bytes
 * becomes one '-' (none at the start or the end). */
static void append_safe(char *out, size_t out_cap, const char *s, size_t cap) {
    size_t n = strlen(out);
    const size_t start = n;
    int pending = 0; /* a run of other bytes waits to become '-' */
    for (size_t i = 0; s[i] && n - start + 1 < cap && n + 2 < out_cap; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '+' || c == '-';
        if (c == '[' || c == ']') continue; /* stages[0].steps -> stages0.steps */
        if (!ok) {
            pending = n > start;
            continue;
        }
        if (pending) out[n++] = '-', pending = 0;
        out[n++] = c;
    }
    out[n] = '\0';
}

/* ---- params paths ------------------------------------------------------------------------- */

static int key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* "stages[0].steps" -> [stages][0][steps]. Returns 0 or -1 with why. */
static int parse_path(const char *path, pstep *steps, int *n, char *why, size_t whylen) {
    *n = 0;
    const char *p = path;
    if (!*p) return snprintf(why, whylen, "an empty path"), -1;
    for (;;) {
        size_t k = 0;
        char key[KEY_CAP];
        while (key_char(p[k]) && k + 1 < sizeof key)
            key[k] = p[k], k++;
        key[k] = '\0';
        if (k == 0)
            return snprintf(why, whylen, "expected a key at byte %d", (int)(p - path) + 1), -1;
        if (key_char(p[k]))
            return snprintf(why, whylen, "a key longer than %d bytes", KEY_CAP - 1), -1;
        if (*n == PATH_STEPS)
            return snprintf(why, whylen, "more than %d components", PATH_STEPS), -1;
        snprintf(steps[*n].key, sizeof steps[*n].key, "%s", key);
        steps[(*n)++].index = -1;
        p += k;
        while (*p == '[') {
            char *end = NULL;
            long i = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || i < 0 || i > 100000 || p[1] == '+' || p[1] == '-')
                return snprintf(why, whylen, "expected an index [0], [1], ... at byte %d",
                                (int)(p - path) + 1),
                       -1;
            if (*n == PATH_STEPS)
                return snprintf(why, whylen, "more than %d components", PATH_STEPS), -1;
            steps[*n].key[0] = '\0';
            steps[(*n)++].index = (int)i;
            p = end + 1;
        }
        if (*p == '\0') return 0;
        if (*p != '.')
            return snprintf(why, whylen,
                            "unexpected '%c' at byte %d (keys are letters, digits and '_')", *p,
                            (int)(p - path) + 1),
                   -1;
        p++;
    }
}

/* The path steps[0..k) as text ("stages[5]"). */
static void path_prefix(const pstep *steps, int k, char *buf, size_t len) {
    buf[0] = '\0';
    for (int i = 0; i < k; i++) {
        size_t n = strlen(buf);
        if (steps[i].key[0])
            snprintf(buf + n, len - n, "%s%s", i ? "." : "", steps[i].key);
        else
            snprintf(buf + n, len - n, "[%d]", steps[i].index);
    }
}

/* Sets key of obj to item (replacing). Takes item. 0, or -1 when out of memory. */
static int obj_set(cJSON *obj, const char *key, cJSON *item) {
    if (!item) return -1;
    if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
        if (cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)) return 0;
        cJSON_Delete(item);
        return -1;
    }
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return -1;
    }
    return 0;
}

/* Writes a copy of value at the path in root. -1 with why when the path does not fit the
 * tree (a missing array, an index out of range, a value that is not an object). */
static int apply_path(cJSON *root, const pstep *steps, int n, const cJSON *value, char *why,
                      size_t whylen) {
    cJSON *cur = root;
    char pre[SPEC_PATH_CAP];
    for (int i = 0; i < n; i++) {
        const int last = i == n - 1;
        path_prefix(steps, i, pre, sizeof pre);
        if (steps[i].key[0]) {
            if (!cJSON_IsObject(cur))
                return snprintf(why, whylen, "%s is %s in the experiment, not an object", pre,
                                jsonv_type_name(cur)),
                       -1;
            cJSON *next = cJSON_GetObjectItemCaseSensitive(cur, steps[i].key);
            if (last) {
                if (obj_set(cur, steps[i].key, cJSON_Duplicate(value, 1)))
                    return snprintf(why, whylen, "out of memory"), -1;
                return 0;
            }
            if (!next) {
                path_prefix(steps, i + 1, pre, sizeof pre);
                if (steps[i + 1].key[0] == '\0')
                    return snprintf(why, whylen,
                                    "%s is not in the experiment, so it has no element [%d]", pre,
                                    steps[i + 1].index),
                           -1;
                next = cJSON_CreateObject();
                if (obj_set(cur, steps[i].key, next))
                    return snprintf(why, whylen, "out of memory"), -1;
            }
            cur = next;
        } else {
            if (!cJSON_IsArray(cur))
                return snprintf(why, whylen, "%s is %s in the experiment, not an array", pre,
                                jsonv_type_name(cur)),
                       -1;
            int size = cJSON_GetArraySize(cur);
            if (steps[i].index >= size)
                return snprintf(why, whylen,
                                "%s has %d element%s in this cell, so [%d] does not exist", pre,
                                size, size == 1 ? "" : "s", steps[i].index),
                       -1;
            if (last) {
                cJSON *dup = cJSON_Duplicate(value, 1);
                if (!dup || !cJSON_ReplaceItemInArray(cur, steps[i].index, dup)) {
                    cJSON_Delete(dup);
                    return snprintf(why, whylen, "out of memory"), -1;
                }
                return 0;
            }
            cur = cJSON_GetArrayItem(cur, steps[i].index);
        }
    }
    return 0;
}

/* ---- axes --------------------------------------------------------------------------------- */

static int check_int(jsonv *v, const cJSON *c, const char *p, long long lo, long long hi) {
    if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) ||
        fabs(c->valuedouble) > 9.0e15)
        return jsonv_fail(v, p, "expected an integer %lld..%lld, got %s", lo, hi,
                          cJSON_IsNumber(c) ? "a fractional number" : jsonv_type_name(c));
    if (c->valuedouble < (double)lo || c->valuedouble > (double)hi)
        return jsonv_fail(v, p, "%lld is out of range %lld..%lld", (long long)c->valuedouble, lo,
                          hi);
    return 0;
}

static int check_domain(jsonv *v, const cJSON *c, const char *p) {
    const char *names[TASK_N_DOMAINS];
    for (int i = 0; i < TASK_N_DOMAINS; i++)
        names[i] = task_domain_name((task_domain)i);
    int d;
    return jsonv_enum(v, c, p, "domain", names, TASK_N_DOMAINS, &d);
}

/* Checks one value of axis a (path p). */
static int check_value(jsonv *v, const axis *a, const cJSON *c, const char *p) {
    switch (a->kind) {
    case AXIS_METHOD: {
        const char *names[TRAIN_N_METHODS];
        for (int i = 0; i < TRAIN_N_METHODS; i++)
            names[i] = train_method_name((train_method)i);
        int m;
        return jsonv_enum(v, c, p, "method", names, TRAIN_N_METHODS, &m);
    }
    case AXIS_SEED:
        return check_int(v, c, p, 0, 9007199254740991LL);
    case AXIS_SEVERITY:
        return check_int(v, c, p, 1, TASK_SEVERITY_MAX);
    case AXIS_ORDER: {
        if (!cJSON_IsArray(c))
            return jsonv_fail(v, p, "expected a list of domain names (the stages in order), got %s",
                              jsonv_type_name(c));
        int n = cJSON_GetArraySize(c);
        if (n < 1 || n > SPEC_MAX_STAGES)
            return jsonv_fail(v, p, "%d domains; give 1..%d", n, SPEC_MAX_STAGES);
        int i = 0;
        for (const cJSON *d = c->child; d; d = d->next, i++) {
            char pi[SPEC_PATH_CAP + 64];
            snprintf(pi, sizeof pi, "%s[%d]", p, i);
            if (check_domain(v, d, pi)) return -1;
        }
        return 0;
    }
    case AXIS_PARAM:
        return 0; /* checked by spec_parse in every cell */
    }
    return 0;
}

/* Reads the value list of axis a from arr. */
static int read_axis(jsonv *v, axis *a, const cJSON *arr) {
    if (!cJSON_IsArray(arr))
        return jsonv_fail(v, a->jpath, "expected an array of values, got %s; e.g. [1, 2, 3]",
                          jsonv_type_name(arr));
    a->values = arr;
    a->n = cJSON_GetArraySize(arr);
    if (a->n == 0) return jsonv_fail(v, a->jpath, "empty; list at least one value");
    a->text = calloc((size_t)a->n, sizeof *a->text);
    if (!a->text) return jsonv_fail(v, a->jpath, "out of memory");
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        char p[SPEC_PATH_CAP + 16];
        snprintf(p, sizeof p, "%s[%d]", a->jpath, i);
        if (check_value(v, a, c, p)) return -1;
        int j = 0;
        for (const cJSON *d = arr->child; d != c; d = d->next, j++)
            if (cJSON_Compare(c, d, 1))
                return jsonv_fail(v, p, "the same value as %s[%d]; list each value once", a->jpath,
                                  j);
        a->text[i] = value_text(c);
        if (!a->text[i]) return jsonv_fail(v, p, "out of memory");
    }
    return 0;
}

static int add_axis(jsonv *v, sweep *s, axis_kind kind, const char *name, const char *label,
                    const char *jpath, const cJSON *arr) {
    if (s->n_axes == SWEEP_MAX_AXES)
        return jsonv_fail(v, jpath, "more than %d axes; sweep fewer", SWEEP_MAX_AXES);
    axis *a = &s->ax[s->n_axes++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->label, sizeof a->label, "%s", label);
    snprintf(a->jpath, sizeof a->jpath, "%s", jpath);
    return read_axis(v, a, arr);
}

static int read_params(jsonv *v, sweep *s, const cJSON *params) {
    if (!cJSON_IsObject(params))
        return jsonv_fail(v, "axes.params",
                          "expected an object of JSON paths and value lists, e.g. "
                          "{\"defaults.lr\": [1e-4, 3e-4]}, got %s",
                          jsonv_type_name(params));
    for (const cJSON *c = params->child; c; c = c->next) {
        char jp[SPEC_PATH_CAP];
        snprintf(jp, sizeof jp, "axes.params[\"%.900s\"]", c->string);
        for (const cJSON *d = params->child; d != c; d = d->next)
            if (!strcmp(d->string, c->string))
                return jsonv_fail(v, jp, "path given twice; give it once");
        pstep steps[PATH_STEPS];
        int n = 0;
        char why[256];
        if (parse_path(c->string, steps, &n, why, sizeof why))
            return jsonv_fail(
                v, jp,
                "not a JSON path of the experiment: %s; write keys separated by '.' and array "
                "elements as [i], e.g. \"defaults.lr\", \"stages[0].steps\"",
                why);
        static const char *const reserved[][2] = {
            {"format", "the experiment's format cannot be swept"},
            {"version", "the experiment's version cannot be swept"},
            {"threads", "caopd sweep sets each cell's threads (-j, --threads; docs/sweep.md)"},
            {"output", "each cell runs in OUT/cells/<name>; set the sweep's \"output\" instead"},
        };
        for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
            if (!strcmp(steps[0].key, reserved[r][0]))
                return jsonv_fail(v, jp, "%s", reserved[r][1]);
        char label[SPEC_PATH_CAP] = "";
        append_safe(label, sizeof label, c->string, sizeof label);
        if (add_axis(v, s, AXIS_PARAM, c->string, label, jp, c)) return -1;
        axis *a = &s->ax[s->n_axes - 1];
        memcpy(a->steps, steps, sizeof steps);
        a->n_steps = n;
    }
    return 0;
}

static int read_axes(jsonv *v, sweep *s, const cJSON *axes) {
    if (!axes) return 0; /* one cell: the experiment itself */
    if (!cJSON_IsObject(axes))
        return jsonv_fail(v, "axes",
                          "expected an object of axes, e.g. {\"method\": [\"caopd\", \"sdft\"], "
                          "\"seed\": [1, 2]}, "
                          "got %s",
                          jsonv_type_name(axes));
    static const char *const keys[] = {"method", "seed", "order", "ood_severity", "params", NULL};
    if (jsonv_check_keys(v, axes, "axes", "axis", keys)) return -1;
    for (const cJSON *c = axes->child; c; c = c->next) {
        char jp[64];
        snprintf(jp, sizeof jp, "axes.%s", c->string);
        if (!strcmp(c->string, "method"))
            add_axis(v, s, AXIS_METHOD, "method", "method", jp, c);
        else if (!strcmp(c->string, "seed"))
            add_axis(v, s, AXIS_SEED, "seed", "seed", jp, c);
        else if (!strcmp(c->string, "order"))
            add_axis(v, s, AXIS_ORDER, "order", "order", jp, c);
        else if (!strcmp(c->string, "ood_severity"))
            add_axis(v, s, AXIS_SEVERITY, "ood_severity", "sev", jp, c);
        else
            read_params(v, s, c);
        if (v->failed) return -1;
    }
    return 0;
}

/* ---- cells --------------------------------------------------------------------------------- */

/* The value index of each axis for cell i (last axis fastest). */
static void cell_index(const sweep *s, int cell, int *idx) {
    for (int a = s->n_axes - 1; a >= 0; a--) {
        idx[a] = cell % s->ax[a].n;
        cell /= s->ax[a].n;
    }
}

static const char *domain_of(const cJSON *stage) {
    const cJSON *d =
        cJSON_IsObject(stage) ? cJSON_GetObjectItemCaseSensitive(stage, "domain") : NULL;
    return cJSON_IsString(d) ? d->valuestring : NULL;
}

/* The stages of an order: the k-th occurrence of a domain takes the base's k-th stage of that
 * domain (else its first), so per-stage settings follow their domain; a domain the base does
 * not train gets {"domain": d} (the defaults only). */
static cJSON *order_stages(const cJSON *base_stages, const cJSON *order) {
    cJSON *out = cJSON_CreateArray();
    if (!out) return NULL;
    int pos = 0;
    for (const cJSON *d = order->child; d; d = d->next, pos++) {
        int occ = 0;
        for (const cJSON *e = order->child; e != d; e = e->next)
            occ += !strcmp(e->valuestring, d->valuestring);
        const cJSON *first = NULL, *kth = NULL;
        int seen = 0;
        for (const cJSON *b = cJSON_IsArray(base_stages) ? base_stages->child : NULL; b;
             b = b->next) {
            const char *bd = domain_of(b);
            if (!bd || strcmp(bd, d->valuestring)) continue;
            if (!first) first = b;
            if (seen++ == occ) kth = b;
        }
        const cJSON *src = kth ? kth : first;
        cJSON *st = src ? cJSON_Duplicate(src, 1) : cJSON_CreateObject();
        if (!st || (!src && !cJSON_AddStringToObject(st, "domain", d->valuestring)) ||
            !cJSON_AddItemToArray(out, st)) {
            cJSON_Delete(st);
            cJSON_Delete(out);
            return NULL;
        }
    }
    return out;
}

/* The cell's experiment tree (caller deletes), or NULL with why (and *bad_axis = the axis
 * whose params path does not fit, -1 when out of memory). Order of application: order,
 * method, seed, ood_severity, then the params in their order. */
static cJSON *build_cell(const sweep *s, int cell, int *bad_axis, char *why, size_t whylen) {
    int idx[SWEEP_MAX_AXES];
    cell_index(s, cell, idx);
    cJSON *t = cJSON_Duplicate(s->exp, 1);
    if (!t) return snprintf(why, whylen, "out of memory"), NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(t, "output");
    int rc = 0;
    static const axis_kind order[] = {AXIS_ORDER, AXIS_METHOD, AXIS_SEED, AXIS_SEVERITY,
                                      AXIS_PARAM};
    for (size_t o = 0; !rc && o < sizeof order / sizeof order[0]; o++)
        for (int a = 0; !rc && a < s->n_axes; a++) {
            const axis *ax = &s->ax[a];
            if (ax->kind != order[o]) continue;
            const cJSON *val = cJSON_GetArrayItem(ax->values, idx[a]);
            switch (ax->kind) {
            case AXIS_ORDER:
                rc = obj_set(t, "stages",
                             order_stages(cJSON_GetObjectItemCaseSensitive(t, "stages"), val));
                break;
            case AXIS_METHOD: {
                cJSON *stages = cJSON_GetObjectItemCaseSensitive(t, "stages");
                for (cJSON *st = cJSON_IsArray(stages) ? stages->child : NULL; !rc && st;
                     st = st->next)
                    if (cJSON_IsObject(st))
                        rc = obj_set(st, "method", cJSON_CreateString(val->valuestring));
                cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "defaults");
                if (!rc && cJSON_IsObject(d) && cJSON_GetObjectItemCaseSensitive(d, "method"))
                    rc = obj_set(d, "method", cJSON_CreateString(val->valuestring));
                break;
            }
            case AXIS_SEED:
                rc = obj_set(t, "seed", cJSON_CreateNumber(val->valuedouble));
                break;
            case AXIS_SEVERITY: {
                cJSON *e = cJSON_GetObjectItemCaseSensitive(t, "eval");
                if (!e) {
                    e = cJSON_CreateObject();
                    rc = obj_set(t, "eval", e);
                }
                if (!rc && cJSON_IsObject(e)) {
                    cJSON *arr = cJSON_CreateArray(), *num = cJSON_CreateNumber(val->valuedouble);
                    if (!arr || !num || !cJSON_AddItemToArray(arr, num))
                        cJSON_Delete(num), cJSON_Delete(arr), arr = NULL;
                    rc = obj_set(e, "ood_severities", arr);
                }
                break;
            }
            case AXIS_PARAM:
                if (apply_path(t, ax->steps, ax->n_steps, val, why, whylen)) {
                    *bad_axis = a;
                    cJSON_Delete(t);
                    return NULL;
                }
                break;
            }
        }
    if (rc) {
        cJSON_Delete(t);
        return snprintf(why, whylen, "out of memory"), NULL;
    }
    return t;
}

static int make_name(const sweep *s, int cell, char *buf, size_t len) {
    int width = 3;
    for (int m = s->n_cells - 1; m >= 1000; m /= 10)
        width++;
    snprintf(buf, len, "%0*d", width > 9 ? 9 : width, cell);
    int idx[SWEEP_MAX_AXES];
    cell_index(s, cell, idx);
    for (int a = 0; a < s->n_axes; a++) {
        char part[SPEC_PATH_CAP + 64] = "_";
        append_safe(part, sizeof part, s->ax[a].label, 48);
        strcat(part, "-");
        append_safe(part, sizeof part, s->ax[a].text[idx[a]], NAME_VALUE_CAP);
        if (strlen(buf) + strlen(part) >= NAME_CAP) break; /* the index keeps names unique */
        strncat(buf, part, len - strlen(buf) - 1);
    }
    return 0;
}

/* Names, texts and validation of every cell. */
/* The OOD severities a cell's experiment evaluates, as a bit mask. */
static unsigned severity_mask(const spec *sp) {
    unsigned m = 0;
    for (int i = 0; i < sp->n_splits; i++)
        if (sp->splits[i].severity > 0) m |= 1u << sp->splits[i].severity;
    return m;
}

static int expand(jsonv *v, sweep *s) {
    double n = 1;
    for (int a = 0; a < s->n_axes; a++)
        n *= s->ax[a].n;
    if (n > SWEEP_MAX_CELLS)
        return jsonv_fail(v, "axes",
                          "%.0f cells; at most %d per sweep (split it into several sweeps)", n,
                          SWEEP_MAX_CELLS);
    s->n_cells = (int)n;
    s->names = calloc((size_t)s->n_cells, sizeof *s->names);
    s->json = calloc((size_t)s->n_cells, sizeof *s->json);
    s->cell_sevs = calloc((size_t)s->n_cells, sizeof *s->cell_sevs);
    spec *sp = malloc(sizeof *sp);
    if (!s->names || !s->json || !s->cell_sevs || !sp) {
        free(sp);
        return jsonv_fail(v, "", "out of memory");
    }
    int rc = 0;
    for (int i = 0; !rc && i < s->n_cells; i++) {
        char name[NAME_CAP + 64], why[SPEC_ERR_CAP];
        make_name(s, i, name, sizeof name);
        s->names[i] = str_dup(name);
        int bad = -1;
        cJSON *t = build_cell(s, i, &bad, why, sizeof why);
        if (!t) {
            rc = jsonv_fail(v, bad >= 0 ? s->ax[bad].jpath : "", "%s (cell %d, %s)", why, i, name);
            break;
        }
        s->json[i] = cJSON_Print(t);
        cJSON_Delete(t);
        if (!s->names[i] || !s->json[i]) {
            rc = jsonv_fail(v, "", "out of memory");
            break;
        }
        if (spec_parse(s->json[i], sp, why, sizeof why)) {
            rc = jsonv_fail(v, "", "cell %d (%s): %s", i, name, why);
            break;
        }
        s->cell_sevs[i] = severity_mask(sp);
        for (int a = 0; a < s->n_axes; a++)
            if (s->ax[a].kind == AXIS_SEVERITY && sp->n_splits < 2) {
                rc = jsonv_fail(
                    v, s->ax[a].jpath,
                    "the experiment evaluates no OOD split (eval.ood_kinds is empty or "
                    "missing), so a severity means nothing; name the kinds, e.g. \"eval\": "
                    "{\"ood_kinds\": [\"ood_length\"]}");
                break;
            }
    }
    free(sp);
    return rc;
}

/* ---- shared bases ---------------------------------------------------------------------------- */

/* The base-only experiment of cell i (a caopd-experiment with "stages": [], docs/spec.md), or
 * NULL when the cell trains its own base: its base is not trained (steps 0, base.checkpoint),
 * it has no stages, or its first stage keeps the teacher or the optimizer (sync_teacher or
 * reset_optimizer false), where loading a base would not be the same as training it inline.
 * The keys are those that stage 0 reads (run.c: the model's and the trainer's RNGs from
 * seed, threads, model, base) plus the checkpoint cadence and the log; *failed is set when out
 * of memory. */
static cJSON *base_tree(const sweep *s, int cell, const spec *sp, int *failed) {
    *failed = 0;
    if (sp->n_stages == 0 || sp->base_train.total_steps == 0 || sp->base_checkpoint[0] ||
        !sp->stages[0].sync_teacher || !sp->stages[0].reset_optimizer)
        return NULL;
    cJSON *t = cJSON_Parse(s->json[cell]), *b = cJSON_CreateObject();
    static const char *const keys[] = {"format", "version",   "seed", "threads", "model",
                                       "base",   "snapshots", "log",  NULL};
    int rc = !t || !b;
    for (int k = 0; !rc && keys[k]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, keys[k]);
        if (v) rc = obj_set(b, keys[k], cJSON_Duplicate(v, 1));
    }
    if (!rc) rc = obj_set(b, "stages", cJSON_CreateArray());
    cJSON_Delete(t);
    if (rc) {
        cJSON_Delete(b);
        *failed = 1;
        return NULL;
    }
    return b;
}

/* The name of the group of cells j with first[j] == i: i's index zero-padded as in cell names,
 * then "_<label>-<value>" of every axis whose value all the group's cells share ("000_seed-1").
 * It depends on the sweep spec only, so re-runs and array tasks agree on it. */
static void group_name(const sweep *s, const int *first, int i, char *name, size_t len) {
    int width = 3;
    for (int m = s->n_cells - 1; m >= 1000; m /= 10)
        width++;
    snprintf(name, len, "%0*d", width > 9 ? 9 : width, i);
    int idx_i[SWEEP_MAX_AXES], idx_j[SWEEP_MAX_AXES];
    cell_index(s, i, idx_i);
    for (int a = 0; a < s->n_axes; a++) {
        int same = 1;
        for (int j = i + 1; same && j < s->n_cells; j++) {
            if (first[j] != i) continue;
            cell_index(s, j, idx_j);
            same = idx_j[a] == idx_i[a];
        }
        if (!same) continue;
        char part[SPEC_PATH_CAP + 64] = "_";
        append_safe(part, sizeof part, s->ax[a].label, 48);
        strcat(part, "-");
        append_safe(part, sizeof part, s->ax[a].text[idx_i[a]], NAME_VALUE_CAP);
        if (strlen(name) + strlen(part) >= NAME_CAP) break; /* the index keeps names unique */
        strncat(name, part, len - strlen(name) - 1);
    }
}

/* With "share_base": cells whose base-only experiments are the same text share one base, named
 * after its first cell: its index, then label-value of every axis whose value all its cells
 * share ("000_seed-1"). A base that only one cell would use is not shared. */
static int group_bases(jsonv *v, sweep *s) {
    s->cell_base = malloc(sizeof *s->cell_base * (size_t)s->n_cells);
    char **key = calloc((size_t)s->n_cells, sizeof *key);
    spec *sp = malloc(sizeof *sp);
    int *first =
        malloc(sizeof *first * (size_t)s->n_cells); /* per cell: the first cell of its key */
    int rc = !s->cell_base || !key || !sp || !first;
    for (int i = 0; !rc && i < s->n_cells; i++) {
        s->cell_base[i] = -1;
        first[i] = -1;
        char why[SPEC_ERR_CAP];
        if (!s->share_base) continue;
        if (spec_parse(s->json[i], sp, why, sizeof why))
            continue; /* cannot happen: expand checked it */
        int oom = 0;
        cJSON *b = base_tree(s, i, sp, &oom);
        if (b) key[i] = cJSON_PrintUnformatted(b);
        cJSON_Delete(b);
        if (oom || (b && !key[i])) rc = -1;
        for (int j = 0; !rc && key[i] && j < i && first[i] < 0; j++)
            if (first[j] == j && !strcmp(key[i], key[j])) first[i] = j;
        if (key[i] && first[i] < 0) first[i] = i;
    }
    /* bases in the order of their first cells; a key of one cell is not shared */
    for (int i = 0; !rc && i < s->n_cells; i++) {
        if (first[i] != i) continue;
        int users = 0;
        for (int j = i; j < s->n_cells; j++)
            users += first[j] == i;
        if (users < 2) continue;
        char **nn = realloc(s->base_names, sizeof *nn * (size_t)(s->n_bases + 1));
        if (nn) s->base_names = nn;
        char **nj = nn ? realloc(s->base_json, sizeof *nj * (size_t)(s->n_bases + 1)) : NULL;
        if (nj) s->base_json = nj;
        if (!nn || !nj) {
            rc = -1;
            break;
        }
        const int b = s->n_bases++;
        s->base_names[b] = s->base_json[b] = NULL;
        char name[NAME_CAP + 64];
        group_name(s, first, i, name, sizeof name);
        s->base_names[b] = str_dup(name);
        cJSON *t = cJSON_Parse(key[i]);
        if (t && obj_set(t, "name", cJSON_CreateString("base"))) cJSON_Delete(t), t = NULL;
        s->base_json[b] = t ? cJSON_Print(t) : NULL;
        cJSON_Delete(t);
        if (!s->base_names[b] || !s->base_json[b]) rc = -1;
        for (int j = i; !rc && j < s->n_cells; j++)
            if (first[j] == i) s->cell_base[j] = b;
    }
    for (int i = 0; key && i < s->n_cells; i++)
        free(key[i]);
    free(key), free(sp), free(first);
    return rc ? jsonv_fail(v, "", "out of memory") : 0;
}

/* ---- shared training ------------------------------------------------------------------------- */

/* t's eval.ood_severities set to the severities in mask (bit s = severity s), ascending; the key
 * is removed when mask is 0. 0, or -1 when out of memory. */
static int set_severities(cJSON *t, unsigned mask) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(t, "eval");
    if (!cJSON_IsObject(e)) return 0;
    cJSON_DeleteItemFromObjectCaseSensitive(e, "ood_severities");
    if (!mask) return 0;
    cJSON *arr = cJSON_CreateArray();
    for (int x = 1; arr && x <= TASK_SEVERITY_MAX; x++) {
        if (!(mask >> x & 1u)) continue;
        cJSON *num = cJSON_CreateNumber(x);
        if (!num || !cJSON_AddItemToArray(arr, num))
            cJSON_Delete(num), cJSON_Delete(arr), arr = NULL;
    }
    return arr ? obj_set(e, "ood_severities", arr) : -1;
}

/* With "share_training" (the default): cells whose experiments differ only in
 * eval.ood_severities (the ood_severity axis, or a params path on it) train the same model, so
 * they share one run that evaluates the union of their severities; each cell reads its own
 * splits from it. Named like the bases; a group of one cell runs its own (docs/sweep.md). */
static int group_shared(jsonv *v, sweep *s) {
    const size_t n = (size_t)s->n_cells;
    s->cell_shared = malloc(sizeof *s->cell_shared * n);
    char **key = calloc(n, sizeof *key);
    int *first = malloc(sizeof *first * n);
    const unsigned *mask = s->cell_sevs;
    int rc = !s->cell_shared || !key || !first;
    for (int i = 0; !rc && i < s->n_cells; i++) {
        s->cell_shared[i] = -1;
        first[i] = -1;
        if (!s->share_training) continue;
        cJSON *t = cJSON_Parse(s->json[i]);
        if (!t || set_severities(t, 0) || !(key[i] = cJSON_PrintUnformatted(t))) rc = -1;
        cJSON_Delete(t);
        for (int j = 0; !rc && j < i && first[i] < 0; j++)
            if (first[j] == j && !strcmp(key[i], key[j])) first[i] = j;
        if (first[i] < 0) first[i] = i;
    }
    for (int i = 0; !rc && i < s->n_cells; i++) {
        if (first[i] != i) continue;
        int users = 0;
        unsigned all = 0;
        for (int j = i; j < s->n_cells; j++)
            if (first[j] == i) users++, all |= mask[j];
        if (users < 2) continue;
        const size_t m = (size_t)s->n_shared + 1;
        char **nn = realloc(s->shared_names, sizeof *nn * m);
        if (nn) s->shared_names = nn;
        char **nj = nn ? realloc(s->shared_json, sizeof *nj * m) : NULL;
        if (nj) s->shared_json = nj;
        int *nb = nj ? realloc(s->shared_base, sizeof *nb * m) : NULL;
        if (nb) s->shared_base = nb;
        if (!nb) {
            rc = -1;
            break;
        }
        const int r = s->n_shared++;
        char name[NAME_CAP + 64];
        group_name(s, first, i, name, sizeof name);
        s->shared_names[r] = str_dup(name);
        s->shared_base[r] =
            s->cell_base[i]; /* the same for the group: its base-only part is equal */
        cJSON *t = cJSON_Parse(s->json[i]);
        s->shared_json[r] = t && !set_severities(t, all) ? cJSON_Print(t) : NULL;
        cJSON_Delete(t);
        if (!s->shared_names[r] || !s->shared_json[r]) rc = -1;
        for (int j = i; !rc && j < s->n_cells; j++)
            if (first[j] == i) s->cell_shared[j] = r;
    }
    for (int i = 0; key && i < s->n_cells; i++)
        free(key[i]);
    free(key), free(first);
    return rc ? jsonv_fail(v, "", "out of memory") : 0;
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* experiment_text (may be NULL): the experiment file's text when the sweep names it by path
 * (the sweep directory's copy). */
static int parse_sweep(const char *json, const char *base_dir, const char *experiment_text,
                       sweep **out, char *err, size_t errlen) {
    jsonv v = {err, errlen, 0};
    if (err && errlen) err[0] = '\0';
    *out = NULL;
    if (!json) return jsonv_fail(&v, "", "no sweep text");
    sweep *s = calloc(1, sizeof *s);
    if (!s) return jsonv_fail(&v, "", "out of memory");
    s->text = str_dup(json);
    if (!s->text) {
        sweep_free(s);
        return jsonv_fail(&v, "", "out of memory");
    }
    if (jsonv_parse(&v, json, "", &s->root)) goto bad;
    const cJSON *root = s->root;
    if (!cJSON_IsObject(root)) {
        jsonv_fail(&v, "", "expected a JSON object, got %s", jsonv_type_name(root));
        goto bad;
    }
    if (jsonv_check_format(&v, root, SWEEP_FORMAT, SWEEP_VERSION, "sweep", "caopd sweep spec",
                           SPEC_FORMAT, " (run an experiment with caopd run)"))
        goto bad;
    static const char *const top[] = {"format",         "version",    "name", "description",
                                      "output",         "experiment", "axes", "share_base",
                                      "share_training", NULL};
    if (jsonv_check_keys(&v, root, "", "key", top)) goto bad;
    snprintf(s->name, sizeof s->name, "sweep");
    jsonv_get_str(&v, root, "", "name", s->name, sizeof s->name, NULL);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (j && !cJSON_IsString(j))
        jsonv_fail(&v, "description", "expected a string, got %s", jsonv_type_name(j));
    jsonv_get_bool(&v, root, "", "share_base", &s->share_base);
    s->share_training = 1;
    jsonv_get_bool(&v, root, "", "share_training", &s->share_training);
    j = cJSON_GetObjectItemCaseSensitive(root, "output");
    if (!v.failed && j) {
        if (!cJSON_IsString(j) || !j->valuestring[0])
            jsonv_fail(&v, "output", "expected a non-empty path string, got %s",
                       jsonv_type_name(j));
        else if (strlen(j->valuestring) >= sizeof s->output - 300)
            jsonv_fail(&v, "output", "longer than %zu bytes", sizeof s->output - 301);
        else
            snprintf(s->output, sizeof s->output, "%s", j->valuestring);
    } else if (!v.failed) {
        snprintf(s->output, sizeof s->output, "runs/%s", s->name);
    }
    if (v.failed) goto bad;

    /* the base experiment */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "experiment");
    char where[SPEC_PATH_CAP + 64] = "experiment";
    if (!e) {
        jsonv_fail(
            &v, "experiment",
            "missing; give the base experiment inline ({\"format\": \"%s\", ...}) or as a path "
            "relative to this file (\"quickstart.json\")",
            SPEC_FORMAT);
        goto bad;
    }
    if (cJSON_IsString(e)) {
        if (!e->valuestring[0]) {
            jsonv_fail(&v, "experiment",
                       "empty path; give the base experiment's file, relative to this file");
            goto bad;
        }
        if (experiment_text) {
            s->exp_text = str_dup(experiment_text);
            snprintf(where, sizeof where, "experiment (%s/%s)",
                     base_dir && base_dir[0] ? base_dir : ".", SWEEP_EXPERIMENT_FILE);
        } else {
            char path[SPEC_PATH_CAP * 2 + 2];
            if (e->valuestring[0] == '/' || !base_dir || !base_dir[0])
                snprintf(path, sizeof path, "%s", e->valuestring);
            else
                snprintf(path, sizeof path, "%s/%s", base_dir, e->valuestring);
            s->exp_text = file_read_text(path);
            if (!s->exp_text) {
                jsonv_fail(
                    &v, "experiment",
                    "cannot read '%s' (%s): %s; the path is relative to the sweep file's folder",
                    e->valuestring, path, strerror(errno));
                goto bad;
            }
            snprintf(where, sizeof where, "experiment (%.900s)", path);
        }
        if (!s->exp_text) {
            jsonv_fail(&v, "", "out of memory");
            goto bad;
        }
        if (jsonv_parse(&v, s->exp_text, where, &s->exp_own)) goto bad;
        s->exp = s->exp_own;
    } else if (cJSON_IsObject(e)) {
        s->exp = (cJSON *)e; /* a stray experiment.json next to an inline one is not read */
    } else {
        jsonv_fail(&v, "experiment", "expected an experiment object or a path string, got %s",
                   jsonv_type_name(e));
        goto bad;
    }
    {
        spec *sp = malloc(sizeof *sp);
        char why[SPEC_ERR_CAP];
        char *text = cJSON_Print(s->exp);
        int bad_base = !sp || !text || spec_parse(text, sp, why, sizeof why);
        if (bad_base) jsonv_fail(&v, where, "%s", sp && text ? why : "out of memory");
        free(sp), free(text);
        if (bad_base) goto bad;
    }
    if (read_axes(&v, s, cJSON_GetObjectItemCaseSensitive(root, "axes")) || expand(&v, s) ||
        group_bases(&v, s) || group_shared(&v, s))
        goto bad;
    *out = s;
    return 0;
bad:
    sweep_free(s);
    return -1;
}

int sweep_parse(const char *json, const char *base_dir, const char *experiment_text, sweep **out,
                char *err, size_t errlen) {
    return parse_sweep(json, base_dir, experiment_text, out, err, errlen);
}

/* Prefixes err with "path: ". */
static void prefix_err(char *err, size_t errlen, const char *path) {
    if (!err || !errlen) return;
    char *tmp = str_dup(err);
    if (!tmp) return;
    snprintf(err, errlen, "%s: %s", path, tmp);
    free(tmp);
}

int sweep_load(const char *path, sweep **out, char *err, size_t errlen) {
    *out = NULL;
    char *text = file_read_text(path);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read the sweep file: %s; check the path", path,
                 strerror(errno));
        return -1;
    }
    char dir[SPEC_PATH_CAP];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (slash == dir) snprintf(dir, sizeof dir, "/");
    int rc = parse_sweep(text, dir, NULL, out, err, errlen);
    if (rc) prefix_err(err, errlen, path);
    free(text);
    return rc;
}

int sweep_load_dir(const char *dir, sweep **out, char *err, size_t errlen) {
    *out = NULL;
    char p[SPEC_PATH_CAP + 64], pe[SPEC_PATH_CAP + 64];
    snprintf(p, sizeof p, "%s/%s", dir, SWEEP_FILE);
    char *text = file_read_text(p);
    if (!text) {
        snprintf(err, errlen,
                 "%s: %s; %s is not a sweep directory of caopd sweep (it writes %s first)", p,
                 strerror(errno), dir, SWEEP_FILE);
        return -1;
    }
    snprintf(pe, sizeof pe, "%s/%s", dir, SWEEP_EXPERIMENT_FILE);
    char *exp = file_exists(pe) ? file_read_text(pe) : NULL;
    int by_path = 0;
    cJSON *peek = cJSON_Parse(text);
    if (peek) by_path = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(peek, "experiment"));
    cJSON_Delete(peek);
    if (by_path && !exp) {
        snprintf(err, errlen,
                 "%s: missing or unreadable; the sweep names its experiment by path and caopd "
                 "sweep keeps a "
                 "copy of it here: restore it, or run caopd sweep SPEC --out %s again",
                 pe, dir);
        free(text);
        return -1;
    }
    int rc = parse_sweep(text, dir, by_path ? exp : NULL, out, err, errlen);
    if (rc) prefix_err(err, errlen, p);
    free(text), free(exp);
    return rc;
}

void sweep_free(sweep *s) {
    if (!s) return;
    for (int a = 0; a < s->n_axes; a++) {
        for (int i = 0; s->ax[a].text && i < s->ax[a].n; i++)
            free(s->ax[a].text[i]);
        free(s->ax[a].text);
    }
    for (int i = 0; i < s->n_cells; i++) {
        if (s->names) free(s->names[i]);
        if (s->json) free(s->json[i]);
    }
    free(s->names), free(s->json);
    for (int b = 0; b < s->n_bases; b++) {
        if (s->base_names) free(s->base_names[b]);
        if (s->base_json) free(s->base_json[b]);
    }
    free(s->base_names), free(s->base_json), free(s->cell_base);
    for (int r = 0; r < s->n_shared; r++) {
        if (s->shared_names) free(s->shared_names[r]);
        if (s->shared_json) free(s->shared_json[r]);
    }
    free(s->shared_names), free(s->shared_json), free(s->shared_base), free(s->cell_shared),
        free(s->cell_sevs);
    cJSON_Delete(s->exp_own);
    cJSON_Delete(s->root);
    free(s->text), free(s->exp_text);
    free(s);
}

/* ---- accessors ------------------------------------------------------------------------------ */

const char *sweep_text(const sweep *s) {
    return s ? s->text : NULL;
}
const char *sweep_experiment_text(const sweep *s) {
    return s ? s->exp_text : NULL;
}
const char *sweep_name(const sweep *s) {
    return s ? s->name : NULL;
}
const char *sweep_output(const sweep *s) {
    return s ? s->output : NULL;
}
int sweep_n_axes(const sweep *s) {
    return s ? s->n_axes : 0;
}
const char *sweep_axis_name(const sweep *s, int a) {
    return s && a >= 0 && a < s->n_axes ? s->ax[a].name : NULL;
}
int sweep_n_cells(const sweep *s) {
    return s ? s->n_cells : 0;
}
const char *sweep_cell_name(const sweep *s, int cell) {
    return s && cell >= 0 && cell < s->n_cells ? s->names[cell] : NULL;
}
const char *sweep_cell_value(const sweep *s, int cell, int a) {
    if (!s || cell < 0 || cell >= s->n_cells || a < 0 || a >= s->n_axes) return NULL;
    int idx[SWEEP_MAX_AXES];
    cell_index(s, cell, idx);
    return s->ax[a].text[idx[a]];
}

/* text with "threads" set (threads > 0) and, when ckpt is not NULL, "base" replaced by
 * {"checkpoint": ckpt}, into *out (malloc'd). */
static int edited_json(const char *text, int threads, const char *ckpt, char **out) {
    if (threads <= 0 && !ckpt) {
        *out = str_dup(text);
        return *out ? 0 : -1;
    }
    cJSON *t = cJSON_Parse(text), *b = ckpt ? cJSON_CreateObject() : NULL;
    int rc = !t || (ckpt && (!b || !cJSON_AddStringToObject(b, "checkpoint", ckpt)));
    if (!rc && ckpt) rc = obj_set(t, "base", b), b = NULL;
    if (!rc && threads > 0) rc = obj_set(t, "threads", cJSON_CreateNumber(threads));
    if (!rc) *out = cJSON_Print(t);
    cJSON_Delete(t), cJSON_Delete(b);
    return *out ? 0 : -1;
}

int sweep_cell_json(const sweep *s, int cell, int threads, char **out) {
    *out = NULL;
    if (!s || cell < 0 || cell >= s->n_cells) return -1;
    const int b = s->cell_base[cell];
    if (b < 0) return edited_json(s->json[cell], threads, NULL, out);
    if (!s->dir[0]) return -1; /* sweep_set_dir first */
    char ckpt[DIR_CAP + NAME_CAP + 64];
    snprintf(ckpt, sizeof ckpt, "%s/%s/%s/%s", s->dir, SWEEP_BASES_DIR, s->base_names[b],
             RUN_CHECKPOINT_FILE);
    return edited_json(s->json[cell], threads, ckpt, out);
}

int sweep_share_base(const sweep *s) {
    return s ? s->share_base : 0;
}
int sweep_n_bases(const sweep *s) {
    return s ? s->n_bases : 0;
}
const char *sweep_base_name(const sweep *s, int base) {
    return s && base >= 0 && base < s->n_bases ? s->base_names[base] : NULL;
}
int sweep_cell_base(const sweep *s, int cell) {
    return s && cell >= 0 && cell < s->n_cells ? s->cell_base[cell] : -1;
}

int sweep_base_json(const sweep *s, int base, int threads, char **out) {
    *out = NULL;
    if (!s || base < 0 || base >= s->n_bases) return -1;
    return edited_json(s->base_json[base], threads, NULL, out);
}

int sweep_share_training(const sweep *s) {
    return s ? s->share_training : 0;
}
int sweep_n_shared(const sweep *s) {
    return s ? s->n_shared : 0;
}
const char *sweep_shared_name(const sweep *s, int r) {
    return s && r >= 0 && r < s->n_shared ? s->shared_names[r] : NULL;
}
int sweep_shared_base(const sweep *s, int r) {
    return s && r >= 0 && r < s->n_shared ? s->shared_base[r] : -1;
}
int sweep_cell_shared(const sweep *s, int cell) {
    return s && cell >= 0 && cell < s->n_cells && s->cell_shared ? s->cell_shared[cell] : -1;
}

int sweep_shared_json(const sweep *s, int r, int threads, char **out) {
    *out = NULL;
    if (!s || r < 0 || r >= s->n_shared) return -1;
    const int b = s->shared_base[r];
    if (b < 0) return edited_json(s->shared_json[r], threads, NULL, out);
    if (!s->dir[0]) return -1; /* sweep_set_dir first */
    char ckpt[DIR_CAP + NAME_CAP + 64];
    snprintf(ckpt, sizeof ckpt, "%s/%s/%s/%s", s->dir, SWEEP_BASES_DIR, s->base_names[b],
             RUN_CHECKPOINT_FILE);
    return edited_json(s->shared_json[r], threads, ckpt, out);
}

int sweep_cell_run_dir(const sweep *s, const char *out, int cell, char *buf, size_t len) {
    if (!s || cell < 0 || cell >= s->n_cells) return -1;
    const int r = sweep_cell_shared(s, cell);
    int n = r >= 0 ? snprintf(buf, len, "%s/%s/%s", out, SWEEP_SHARED_DIR, s->shared_names[r])
                   : snprintf(buf, len, "%s/%s/%s", out, SWEEP_CELLS_DIR, s->names[cell]);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int sweep_set_dir(sweep *s, const char *dir, char *err, size_t errlen) {
    char abs[DIR_CAP * 2];
    if (dir[0] == '/') {
        snprintf(abs, sizeof abs, "%s", dir);
    } else {
        char cwd[DIR_CAP];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(err, errlen, "%s: cannot make the path absolute: the current directory: %s",
                     dir, strerror(errno));
            return -1;
        }
        snprintf(abs, sizeof abs, "%s/%s", cwd, strcmp(dir, ".") ? dir : "");
    }
    for (size_t n = strlen(abs); n > 1 && abs[n - 1] == '/'; n--)
        abs[n - 1] = '\0';
    /* the longest base checkpoint path must fit a spec's base.checkpoint */
    size_t longest = 0;
    for (int b = 0; b < s->n_bases; b++)
        if (strlen(s->base_names[b]) > longest) longest = strlen(s->base_names[b]);
    const size_t need =
        strlen(abs) + strlen(SWEEP_BASES_DIR) + longest + strlen(RUN_CHECKPOINT_FILE) + 3;
    if (strlen(abs) >= sizeof s->dir || need >= SPEC_PATH_CAP) {
        snprintf(
            err, errlen,
            "%s: the sweep directory's absolute path is too long (%zu bytes; the cells name their "
            "shared bases by absolute path, at most %d bytes); choose a shorter --out",
            abs, strlen(abs), SPEC_PATH_CAP - 1);
        return -1;
    }
    memcpy(s->dir, abs, strlen(abs) + 1); /* fits: checked above */
    return 0;
}

const char *sweep_dir(const sweep *s) {
    return s && s->dir[0] ? s->dir : NULL;
}

/* ---- cell directories ----------------------------------------------------------------------- */

int sweep_cell_state(const char *dir, sweep_cell_status *status, int *stages_done,
                     int *stages_total, char *err, size_t errlen) {
    char p[DIR_CAP + 64];
    *status = SWEEP_CELL_ABSENT;
    if (stages_done) *stages_done = 0;
    if (stages_total) *stages_total = 0;
    snprintf(p, sizeof p, "%s/%s", dir, RUN_SPEC_FILE);
    if (!file_exists(p)) return 0;
    *status = SWEEP_CELL_PARTIAL;
    snprintf(p, sizeof p, "%s/%s", dir, RUN_RESULTS_FILE);
    if (!file_exists(p)) return 0;
    ckpt_reader *rd = NULL;
    ckpt_error ce;
    if (ckpt_reader_open(&rd, p, CKPT_FORMAT_RESULTS, RESULTS_FORMAT_VERSION, &ce)) {
        snprintf(err, errlen, "%s", ce.msg);
        return -1;
    }
    char *st = NULL;
    int64_t T = -1;
    if (ckpt_reader_attr_str(rd, "", "status", &st) == CKPT_OK && !strcmp(st, "finished"))
        *status = SWEEP_CELL_FINISHED;
    if (stages_total && ckpt_reader_attr_i64(rd, "", "n_stages", &T) == CKPT_OK)
        *stages_total = (int)T + 1;
    ckpt_list l = {0};
    if (stages_done && ckpt_reader_list(rd, "stages", &l) == CKPT_OK) *stages_done = (int)l.n;
    ckpt_list_free(&l);
    free(st);
    ckpt_reader_free(rd);
    return 0;
}

/* ---- the summary file ------------------------------------------------------------------------ */

/* Writes one finished cell as group cells/<k>. 0, or -1 with err. */
static int merge_cell(ckpt_writer *w, int k, const sweep *sw, const char *sdir, int cell,
                      const char *cdir, char *err, size_t errlen) {
    char p[DIR_CAP + 64], g[64];
    snprintf(p, sizeof p, "%s/%s", cdir, RUN_SPEC_FILE);
    char *text = file_read_text(p);
    spec *sp = malloc(sizeof *sp);
    char why[SPEC_ERR_CAP];
    if (text && sweep_cell_shared(sw, cell) >=
                    0) { /* the shared run's spec with the cell's own evaluation */
        cJSON *t = cJSON_Parse(text);
        char *cell_text = t && !set_severities(t, sw->cell_sevs[cell]) ? cJSON_Print(t) : NULL;
        cJSON_Delete(t), free(text);
        text = cell_text;
    }
    if (!text || !sp || spec_parse(text, sp, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", p, !text ? strerror(errno) : !sp ? "out of memory" : why);
        free(text), free(sp);
        return -1;
    }
    snprintf(g, sizeof g, "cells/%d", k);
    strbuf stn = {0}, stm = {0}, dl = {0}, sl = {0}, axn = {0}, meth = {0};
    strbuf_printf(&stn, "base"), strbuf_printf(&stm, "sft");
    for (int i = 0; i < sp->n_stages; i++) {
        const char *m = train_method_name(sp->stages[i].train.method);
        strbuf_printf(&stn, ",%s", task_domain_name(sp->stages[i].domain));
        strbuf_printf(&stm, ",%s", m);
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= sp->stages[j].train.method == sp->stages[i].train.method;
        if (!dup) strbuf_printf(&meth, "%s%s", meth.n ? "+" : "", m);
    }
    task_domain dom[TASK_N_DOMAINS];
    const int nd = spec_eval_domains(sp, dom);
    for (int j = 0; j < nd; j++)
        strbuf_printf(&dl, "%s%s", j ? "," : "", task_domain_name(dom[j]));
    for (int i = 0; i < sp->n_splits; i++) {
        char nm[32];
        strbuf_printf(&sl, "%s%s", i ? "," : "", spec_split_name(sp->splits[i], nm, sizeof nm));
    }
    for (int a = 0; a < sweep_n_axes(sw); a++)
        strbuf_printf(&axn, "%s%s", a ? "," : "", sweep_axis_name(sw, a));
    int rc = stn.oom || stm.oom || dl.oom || sl.oom || axn.oom || meth.oom ? CKPT_ERR_NOMEM : 0;
    snprintf(p, sizeof p, "%s/%s", cdir, RUN_RESULTS_FILE);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "name", sweep_cell_name(sw, cell));
    if (!rc) rc = ckpt_writer_set_attr_i64(w, g, "index", cell);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "sweep", sweep_name(sw));
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "sweep_dir", sdir);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "results", p);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "spec", text);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "method", meth.p ? meth.p : "");
    if (!rc) rc = ckpt_writer_set_attr_i64(w, g, "seed", (int64_t)sp->seed);
    if (!rc) rc = ckpt_writer_set_attr_i64(w, g, "n_stages", sp->n_stages);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "stage_names", stn.p);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "stage_methods", stm.p);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "domains", dl.p);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "splits", sl.p);
    if (!rc) rc = ckpt_writer_set_attr_str(w, g, "axes", axn.p ? axn.p : "");
    char ga[96];
    snprintf(ga, sizeof ga, "%s/axes", g);
    for (int a = 0; !rc && a < sweep_n_axes(sw); a++)
        rc = ckpt_writer_set_attr_str(w, ga, sweep_axis_name(sw, a), sweep_cell_value(sw, cell, a));
    if (!rc && sweep_n_axes(sw) == 0) rc = ckpt_writer_set_attr_str(w, ga, "(none)", "");
    free(stn.p), free(stm.p), free(dl.p), free(sl.p), free(axn.p), free(meth.p);
    if (rc) {
        snprintf(err, errlen, "%s", rc == CKPT_ERR_NOMEM ? "out of memory" : ckpt_writer_errmsg(w));
        free(text), free(sp);
        return -1;
    }
    for (int i = 0; !rc && i < sp->n_splits; i++) {
        char nm[32], gs[160];
        spec_split_name(sp->splits[i], nm, sizeof nm);
        snprintf(gs, sizeof gs, "%s/metrics/%s", g, nm);
        for (int k = 0; !rc && k < METRICS_READOUT_COUNT * METRICS_FIELD_COUNT; k++) {
            const metrics_field f = (metrics_field)(k % METRICS_FIELD_COUNT);
            const metrics_readout q = (metrics_readout)(k / METRICS_FIELD_COUNT);
            if (q != METRICS_READOUT_GREEDY && !metrics_field_per_readout(f))
                continue; /* readout-free: once */
            double *R = NULL;
            int rows = 0, n_dom = 0, version = 0;
            task_domain d2[TASK_N_DOMAINS];
            char e[1024], key[32];
            if (run_read_matrix(cdir, nm, f, q, 0, &version, &R, &rows, d2, &n_dom, e, sizeof e)) {
                snprintf(err, errlen, "%s", e);
                rc = -1;
                break;
            }
            if (k == 0 && i == 0 &&
                ckpt_writer_set_attr_i64(w, g, "results_format_version", version)) {
                snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
                rc = -1;
            }
            char dp[200];
            snprintf(dp, sizeof dp, "%s/%s", gs, metrics_field_key(f, q, key, sizeof key));
            int64_t dims[2] = {rows, n_dom};
            if (ckpt_writer_write(w, dp, CKPT_DTYPE_F64, 2, dims, R)) {
                snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
                rc = -1;
            }
            free(R);
        }
        if (!rc && (ckpt_writer_set_attr_str(w, gs, "kind", task_split_name(sp->splits[i].split)) ||
                    ckpt_writer_set_attr_i64(w, gs, "severity", sp->splits[i].severity))) {
            snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
            rc = -1;
        }
    }
    free(text), free(sp);
    return rc ? -1 : 0;
}

int sweep_merge(const char *const *dirs, int n_dirs, const char *path, sweep_merge_info *info,
                char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    ckpt_writer *w = NULL;
    ckpt_error ce;
    if (ckpt_writer_open(&w, path, SWEEP_SUMMARY_FORMAT, SWEEP_SUMMARY_VERSION, NULL, &ce)) {
        snprintf(err, errlen, "%s", ce.msg);
        return -1;
    }
    strbuf skipped = {0}, srcs = {0};
    int rc = 0, k = 0;
    for (int d = 0; !rc && d < n_dirs; d++) {
        sweep *sw = NULL;
        if (sweep_load_dir(dirs[d], &sw, err, errlen)) {
            rc = -1;
            break;
        }
        strbuf_printf(&srcs, "%s%s", d ? "\n" : "", dirs[d]);
        for (int c = 0; !rc && c < sweep_n_cells(sw); c++) {
            char cdir[DIR_CAP];
            char label[2 * DIR_CAP + 32];
            sweep_cell_run_dir(sw, dirs[d], c, cdir, sizeof cdir);
            if (sweep_cell_shared(sw, c) >= 0)
                snprintf(label, sizeof label, "%s/%s/%s (its shared run %s)", dirs[d],
                         SWEEP_CELLS_DIR, sweep_cell_name(sw, c), cdir);
            else
                snprintf(label, sizeof label, "%s", cdir);
            info->n_cells++;
            sweep_cell_status st;
            int done = 0, total = 0;
            char e[1024];
            if (sweep_cell_state(cdir, &st, &done, &total, e, sizeof e)) {
                strbuf_printf(&skipped, "%s: its results file cannot be read: %s\n", label, e);
                continue;
            }
            if (st == SWEEP_CELL_ABSENT) {
                strbuf_printf(&skipped, "%s: not started\n", label);
                continue;
            }
            if (st == SWEEP_CELL_PARTIAL) {
                if (total)
                    strbuf_printf(&skipped, "%s: unfinished (%d of %d stages written)\n", label,
                                  done, total);
                else
                    strbuf_printf(&skipped, "%s: unfinished (no stage written)\n", label);
                continue;
            }
            if (merge_cell(w, k, sw, dirs[d], c, cdir, err, errlen))
                rc = -1;
            else
                k++, info->n_merged++;
        }
        sweep_free(sw);
    }
    if (!rc && (srcs.oom || skipped.oom)) rc = -1, snprintf(err, errlen, "out of memory");
    if (!rc) {
        char versions[256];
        snprintf(versions, sizeof versions, "caopd-harness 0.1.0, HDF5 %s, libtorch %s",
                 ckpt_hdf5_version(), tw_version());
        if (ckpt_writer_set_attr_i64(w, "", "n_cells", k) ||
            ckpt_writer_set_attr_str(w, "", "sweep_dirs", srcs.p ? srcs.p : "") ||
            ckpt_writer_set_attr_str(w, "", "versions", versions) ||
            ckpt_writer_set_attr_str(w, "", "skipped", skipped.p ? skipped.p : ""))
            rc = -1, snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
    }
    if (!rc && k == 0 &&
        ckpt_writer_set_attr_str(w, "cells", "note", "no finished cell") != CKPT_OK)
        rc = -1, snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
    if (!rc && ckpt_writer_commit(w)) rc = -1, snprintf(err, errlen, "%s", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
    free(srcs.p);
    if (rc)
        free(skipped.p);
    else
        info->skipped = skipped.p;
    return rc;
}
