/* Helpers for the `caopd sweep` / `caopd merge` process tests: a sweep spec file around the
 * tiny experiment of run_testutil.h, and small file utilities. */
#ifndef CAOPD_TESTS_SWEEP_TESTUTIL_H
#define CAOPD_TESTS_SWEEP_TESTUTIL_H

#include <dirent.h>
#include <sys/stat.h>

#include "tests/harness/run/run_testutil.h"

/* Writes <g_tmp>/<file>: a caopd-sweep spec named name with the tiny experiment inline and the
 * given axes object (JSON text); keys: more top-level keys (" \"share_training\": false,"); the
 * path into path. */
static inline void write_sweep_keys(const char *file, const char *name, const char *keys,
                                    const char *axes, char *path, size_t len) {
    snprintf(path, len, "%s/%s", g_tmp, file);
    size_t cap = strlen(tiny_spec) + strlen(keys) + strlen(axes) + 256;
    char *text = malloc(cap);
    snprintf(text, cap,
             "{\"format\": \"caopd-sweep\", \"version\": 1, \"name\": \"%s\",%s\n \"experiment\": "
             "%s,\n \"axes\": %s}\n",
             name, keys, tiny_spec, axes);
    write_file(path, text, strlen(text));
    free(text);
}

static inline void write_sweep(const char *file, const char *name, const char *axes, char *path,
                               size_t len) {
    write_sweep_keys(file, name, "", axes, path, len);
}

/* <g_tmp>/out.txt and err.txt of the last run_caopd (caller frees). */
static inline char *last_out(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/out.txt", g_tmp);
    return slurp(p);
}

static inline char *last_err(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    return slurp(p);
}

static inline int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Size of a file, -1 when missing. */
static inline long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* Entries of a directory other than dot files, -1 when it cannot be read. */
static inline int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Occurrences of what in text. */
static inline int count_str(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++)
        n++;
    return n;
}

#endif
