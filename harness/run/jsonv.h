/* jsonv: validating a JSON document read with cJSON, with messages that start with the JSON path
 * of the offending value ("stages[1].lr: 2 is out of range (0, 1]"); the first error wins. Shared
 * by the experiment spec (spec.c) and the sweep spec (sweep.c), so both read and word alike. */
#ifndef CAOPD_JSONV_H
#define CAOPD_JSONV_H

#include <cjson/cJSON.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JSONV_PATH_CAP 1024 /* a JSON path built for a message, e.g. "stages[3].max_new" */

/* A validation in progress: the message goes to err (errlen bytes, borrowed); failed is set by
 * the first error, after which later errors are ignored. Make it as {err, errlen, 0}. */
typedef struct jsonv {
    char *err;
    size_t errlen;
    int failed;
} jsonv;

/* Records "<path>: <message>" ("(top level)" for an empty or NULL path) unless an error was
 * recorded already. Always returns -1, so callers can `return jsonv_fail(...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int jsonv_fail(jsonv *v, const char *path, const char *fmt, ...);

/* "a number", "a string", "a boolean", "null", "an array", "an object". */
const char *jsonv_type_name(const cJSON *j);

/* buf = path + "." + key (just key when path is empty); cut at len - 1 bytes. */
void jsonv_join(char *buf, size_t len, const char *path, const char *key);

/* Every member of obj must be one of keys (NULL-terminated) and appear once: "<path>.<k>: unknown
 * <what>; accepted: a, b, ..." or "...: key given twice; give it once". what is "key" or, for the
 * sweep's axes, "axis". */
int jsonv_check_keys(jsonv *v, const cJSON *obj, const char *path, const char *what,
                     const char *const *keys);

/* Parses text (NUL-terminated, nothing may follow the value) into *out (caller frees with
 * cJSON_Delete). On a syntax error: "<where>: not valid JSON (error near line L, column C); ...".
 */
int jsonv_parse(jsonv *v, const char *text, const char *where, cJSON **out);

/* The root's "format" must be the string `format` and its "version" the integer `version`.
 * noun names the document in the missing-key message ("a <noun> starts with ..."), kind in the
 * wrong-format one ("this file is not a <kind>"); when "format" is other_format (may be NULL),
 * other_hint is appended, e.g. " (run an experiment with caopd run)". */
int jsonv_check_format(jsonv *v, const cJSON *root, const char *format, int version,
                       const char *noun, const char *kind, const char *other_format,
                       const char *other_hint);

/* Optional members of obj (absent: 0, *out untouched). Each checks the type and range and names
 * path.key in its message. Integers: whole numbers in [lo, hi] (|x| <= 9e15). Numbers: finite,
 * in [lo, hi], or (lo, hi] when lo_open. Strings: at most cap - 1 bytes; *found (may be NULL) = 1
 * when present. Objects: *out = the member (borrowed), NULL when absent. */
int jsonv_get_int(jsonv *v, const cJSON *obj, const char *path, const char *key, long long lo,
                  long long hi, long long *out);
int jsonv_get_num(jsonv *v, const cJSON *obj, const char *path, const char *key, double lo,
                  double hi, int lo_open, double *out);
int jsonv_get_bool(jsonv *v, const cJSON *obj, const char *path, const char *key, int *out);
int jsonv_get_str(jsonv *v, const cJSON *obj, const char *path, const char *key, char *out,
                  size_t cap, int *found);
int jsonv_get_object(jsonv *v, const cJSON *obj, const char *path, const char *key,
                     const cJSON **out);

/* j (at path p) must be one of names[0..n), a string; *out = its index. Otherwise "<p>: unknown
 * <what> 'x'; accepted: a, b, ..." or "<p>: expected a <what> name (a string), got ...". */
int jsonv_enum(jsonv *v, const cJSON *j, const char *p, const char *what, const char *const *names,
               int n, int *out);

#ifdef __cplusplus
}
#endif

#endif
