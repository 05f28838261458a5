/* jsonv.c: JSON validation helpers with JSON-path messages (jsonv.h), shared by the experiment
 * spec and the sweep spec. */
#include "harness/run/jsonv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int jsonv_fail(jsonv *v, const char *path, const char *fmt, ...) {
    if (v->failed) return -1;
    v->failed = 1;
    if (!v->err || !v->errlen) return -1;
    int n = snprintf(v->err, v->errlen, "%s: ", path && path[0] ? path : "(top level)");
    if (n < 0) n = 0;
    if ((size_t)n < v->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *jsonv_type_name(const cJSON *j) {
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "an invalid value";
}

void jsonv_join(char *buf, size_t len, const char *path, const char *key) {
    snprintf(buf, len, "%s%s%s", path, path[0] ? "." : "", key);
}

/* "a, b, c" of names[0..n) (n < 0: up to the NULL), cut to fit acc. */
static void name_list(char *acc, size_t cap, const char *const *names, int n) {
    acc[0] = '\0';
    for (int i = 0; n < 0 ? names[i] != NULL : i < n; i++) {
        if (i) strncat(acc, ", ", cap - strlen(acc) - 1);
        strncat(acc, names[i], cap - strlen(acc) - 1);
    }
}

int jsonv_check_keys(jsonv *v, const cJSON *obj, const char *path, const char *what,
                     const char *const *keys) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        char p[JSONV_PATH_CAP];
        jsonv_join(p, sizeof p, path, c->string);
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= strcmp(keys[i], c->string) == 0;
        if (!known) {
            char acc[1024];
            name_list(acc, sizeof acc, keys, -1);
            return jsonv_fail(v, p, "unknown %s; accepted: %s", what, acc);
        }
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return jsonv_fail(v, p, "key given twice; give it once");
    }
    return 0;
}

/* Line and column of p in text, 1-based. */
static void line_col(const char *text, const char *p, int *line, int *col) {
    *line = 1, *col = 1;
    for (const char *c = text; *c && c < p; c++) {
        if (*c == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

int jsonv_parse(jsonv *v, const char *text, const char *where, cJSON **out) {
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, 1);
    if (*out) return 0;
    int line, col;
    line_col(text, end ? end : text, &line, &col);
    return jsonv_fail(
        v, where,
        "not valid JSON (error near line %d, column %d); check commas, quotes and brackets "
        "there",
        line, col);
}

int jsonv_check_format(jsonv *v, const cJSON *root, const char *format, int version,
                       const char *noun, const char *kind, const char *other_format,
                       const char *other_hint) {
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!fmt)
        return jsonv_fail(v, "format",
                          "missing; a %s starts with \"format\": \"%s\", \"version\": %d", noun,
                          format, version);
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, format) != 0) {
        const int is_str = cJSON_IsString(fmt);
        const int other =
            is_str && other_format && other_hint && strcmp(fmt->valuestring, other_format) == 0;
        return jsonv_fail(v, "format", "expected \"%s\", got %s%s%s; this file is not a %s%s",
                          format, is_str ? "\"" : jsonv_type_name(fmt),
                          is_str ? fmt->valuestring : "", is_str ? "\"" : "", kind,
                          other ? other_hint : "");
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!ver) return jsonv_fail(v, "version", "missing; this build reads \"version\": %d", version);
    if (!cJSON_IsNumber(ver) || ver->valuedouble != floor(ver->valuedouble))
        return jsonv_fail(v, "version", "expected an integer, got %s",
                          cJSON_IsNumber(ver) ? "a fractional number" : jsonv_type_name(ver));
    if (ver->valuedouble != version)
        return jsonv_fail(v, "version", "%g is not supported; this build reads version %d%s",
                          ver->valuedouble, version,
                          ver->valuedouble > version ? " (use a newer caopd)" : "");
    return 0;
}

int jsonv_get_int(jsonv *v, const cJSON *obj, const char *path, const char *key, long long lo,
                  long long hi, long long *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    char p[JSONV_PATH_CAP];
    jsonv_join(p, sizeof p, path, key);
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) ||
        fabs(j->valuedouble) > 9.0e15)
        return jsonv_fail(v, p, "expected an integer, got %s",
                          cJSON_IsNumber(j) ? "a fractional number" : jsonv_type_name(j));
    long long x = (long long)j->valuedouble;
    if (x < lo || x > hi) return jsonv_fail(v, p, "%lld is out of range %lld..%lld", x, lo, hi);
    *out = x;
    return 0;
}

int jsonv_get_num(jsonv *v, const cJSON *obj, const char *path, const char *key, double lo,
                  double hi, int lo_open, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    char p[JSONV_PATH_CAP];
    jsonv_join(p, sizeof p, path, key);
    if (!cJSON_IsNumber(j))
        return jsonv_fail(v, p, "expected a number, got %s", jsonv_type_name(j));
    double x = j->valuedouble;
    if (!isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
        return jsonv_fail(v, p, "%g is out of range %s%g, %g]", x, lo_open ? "(" : "[", lo, hi);
    *out = x;
    return 0;
}

int jsonv_get_bool(jsonv *v, const cJSON *obj, const char *path, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    char p[JSONV_PATH_CAP];
    jsonv_join(p, sizeof p, path, key);
    if (!cJSON_IsBool(j))
        return jsonv_fail(v, p, "expected true or false, got %s", jsonv_type_name(j));
    *out = cJSON_IsTrue(j);
    return 0;
}

int jsonv_get_str(jsonv *v, const cJSON *obj, const char *path, const char *key, char *out,
                  size_t cap, int *found) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (found) *found = j != NULL;
    if (!j) return 0;
    char p[JSONV_PATH_CAP];
    jsonv_join(p, sizeof p, path, key);
    if (!cJSON_IsString(j))
        return jsonv_fail(v, p, "expected a string, got %s", jsonv_type_name(j));
    if (strlen(j->valuestring) >= cap) return jsonv_fail(v, p, "longer than %zu bytes", cap - 1);
    snprintf(out, cap, "%s", j->valuestring);
    return 0;
}

int jsonv_get_object(jsonv *v, const cJSON *obj, const char *path, const char *key,
                     const cJSON **out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!j) return 0;
    char p[JSONV_PATH_CAP];
    jsonv_join(p, sizeof p, path, key);
    if (!cJSON_IsObject(j))
        return jsonv_fail(v, p, "expected an object, got %s", jsonv_type_name(j));
    *out = j;
    return 0;
}

int jsonv_enum(jsonv *v, const cJSON *j, const char *p, const char *what, const char *const *names,
               int n, int *out) {
    if (!cJSON_IsString(j))
        return jsonv_fail(v, p, "expected a %s name (a string), got %s", what, jsonv_type_name(j));
    for (int i = 0; i < n; i++)
        if (strcmp(j->valuestring, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char acc[512];
    name_list(acc, sizeof acc, names, n);
    return jsonv_fail(v, p, "unknown %s '%s'; accepted: %s", what, j->valuestring, acc);
}
