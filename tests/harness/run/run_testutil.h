/* Helpers for the `caopd run` tests: a tiny spec, running build/caopd in a child process
 * (optionally with CAOPD_CRASH_AT), and comparing two HDF5 files object by object through
 * ckpt_reader (every dataset byte for byte and every attribute, except "timing" groups and the
 * wall-clock attribute eval_s, which differ from run to run by nature). */
#ifndef CAOPD_TESTS_RUN_TESTUTIL_H
#define CAOPD_TESTS_RUN_TESTUTIL_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/check.h"
#include "checkpoints/ckpt.h"
#include "tests/tmpdir.h"

/* Base 6 steps, stages add (caopd) and rev (sdft) of 4 steps, checkpoints every 2 steps,
 * 8 evaluation samples on test and ood_length_1; 1 thread. */
static const char tiny_spec[] =
    "{\n"
    "  \"format\": \"caopd-experiment\", \"version\": 1, \"name\": \"tiny\", \"seed\": 3, "
    "\"threads\": 1,\n"
    "  \"model\": {\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2},\n"
    "  \"base\": {\"steps\": 6, \"batch\": 4, \"lr\": 3e-3, \"warmup\": 1},\n"
    "  \"defaults\": {\"method\": \"caopd\", \"steps\": 4, \"batch\": 2, \"k\": 2, \"max_new\": "
    "24,\n"
    "               \"lr\": 1e-3, \"warmup\": 1, \"ema_alpha\": 0.1},\n"
    "  \"stages\": [{\"domain\": \"add\"}, {\"domain\": \"rev\", \"method\": \"sdft\", "
    "\"replay_frac\": 0.5}],\n"
    "  \"eval\": {\"n\": 8, \"max_new\": 30, \"ood_kinds\": [\"ood_length\"], \"ood_severities\": "
    "[1]},\n"
    "  \"snapshots\": {\"every_steps\": 2},\n"
    "  \"log\": {\"every_steps\": 100}\n"
    "}\n";

/* The test's scratch directory; main ends with tmpdir_finish(g_tmp). */
static char g_tmp[512];

static inline void make_tmpdir(const char *name) {
    tmpdir_make(g_tmp, sizeof g_tmp, name);
}

static inline void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fwrite(text, 1, n, f);
    fclose(f);
}

static inline char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

/* Starts the executable exe with args (NULL-terminated) in a child process, stdout to out and
 * stderr to err (the same file when err equals out); crash_at (may be NULL) goes to
 * CAOPD_CRASH_AT. Returns the child's pid. */
static inline pid_t spawn_exe(const char *exe, const char *out, const char *err,
                              const char *crash_at, const char *const *args) {
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int fe = strcmp(err, out) ? open(err, O_WRONLY | O_CREAT | O_TRUNC, 0666) : fo;
        dup2(fo, 1), dup2(fe, 2);
        if (crash_at)
            setenv("CAOPD_CRASH_AT", crash_at, 1);
        else
            unsetenv("CAOPD_CRASH_AT");
        const char *argv[48] = {exe};
        int n = 1;
        for (int i = 0; args[i] && n < 47; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* spawn_exe of CAOPD_EXE. */
static inline pid_t spawn_caopd(const char *out, const char *err, const char *crash_at,
                                const char *const *args) {
    return spawn_exe(CAOPD_EXE, out, err, crash_at, args);
}

/* Runs caopd with args (NULL-terminated), stdout/stderr to <g_tmp>/out.txt, err.txt; crash_at
 * (may be NULL) goes to CAOPD_CRASH_AT. Returns the raw wait status. */
static inline int run_caopd(const char *crash_at, const char *const *args) {
    char out[600], err[600];
    snprintf(out, sizeof out, "%s/out.txt", g_tmp);
    snprintf(err, sizeof err, "%s/err.txt", g_tmp);
    pid_t pid = spawn_caopd(out, err, crash_at, args);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static inline int killed_by_sigkill(int st) {
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static inline int exited(int st, int code) {
    return WIFEXITED(st) && WEXITSTATUS(st) == code;
}

/* ---- comparing two files ---- */

static int g_cmp_objects;

static inline int skip_attr(const char *name) {
    return strcmp(name, "eval_s") == 0;
}

static inline void cmp_attrs(ckpt_reader *a, ckpt_reader *b, const char *path, const char *what) {
    ckpt_list la = {0}, lb = {0};
    CHECK(ckpt_reader_list_attrs(a, path, &la) == CKPT_OK);
    CHECK(ckpt_reader_list_attrs(b, path, &lb) == CKPT_OK);
    CHECK_MSG(la.n == lb.n, "%s %s: %zu vs %zu attributes", what, path, la.n, lb.n);
    for (size_t i = 0; i < la.n && i < lb.n; i++) {
        const char *nm = la.v[i].name;
        CHECK_EQ_STR(nm, lb.v[i].name);
        if (skip_attr(nm)) continue;
        if (la.v[i].type == CKPT_ATTR_STR) {
            char *x = NULL, *y = NULL;
            ckpt_reader_attr_str(a, path, nm, &x);
            ckpt_reader_attr_str(b, path, nm, &y);
            CHECK_MSG(x && y && strcmp(x, y) == 0, "%s %s@%s differs", what, path, nm);
            free(x), free(y);
        } else if (la.v[i].type == CKPT_ATTR_INT) {
            int64_t x = 0, y = 1;
            ckpt_reader_attr_i64(a, path, nm, &x);
            ckpt_reader_attr_i64(b, path, nm, &y);
            CHECK_MSG(x == y, "%s %s@%s: %lld vs %lld", what, path, nm, (long long)x, (long long)y);
        } else {
            double x = 0, y = 1;
            ckpt_reader_attr_f64(a, path, nm, &x);
            ckpt_reader_attr_f64(b, path, nm, &y);
            CHECK_MSG(memcmp(&x, &y, sizeof x) == 0, "%s %s@%s: %.17g vs %.17g", what, path, nm, x,
                      y);
        }
    }
    ckpt_list_free(&la), ckpt_list_free(&lb);
}

static inline void cmp_group(ckpt_reader *a, ckpt_reader *b, const char *path, const char *what) {
    cmp_attrs(a, b, path, what);
    ckpt_list la = {0}, lb = {0};
    CHECK(ckpt_reader_list(a, path, &la) == CKPT_OK);
    CHECK(ckpt_reader_list(b, path, &lb) == CKPT_OK);
    CHECK_MSG(la.n == lb.n, "%s %s: %zu vs %zu members", what, path, la.n, lb.n);
    for (size_t i = 0; i < la.n && i < lb.n; i++) {
        CHECK_EQ_STR(la.v[i].name, lb.v[i].name);
        CHECK_EQ_INT(la.v[i].type, lb.v[i].type);
        if (strcmp(la.v[i].name, "timing") == 0) continue; /* wall-clock seconds */
        char p[512];
        snprintf(p, sizeof p, "%s%s%s", path, path[0] ? "/" : "", la.v[i].name);
        if (la.v[i].type == CKPT_KIND_GROUP) {
            cmp_group(a, b, p, what);
        } else if (la.v[i].type == CKPT_KIND_DATASET) {
            ckpt_info ia, ib;
            CHECK(ckpt_reader_info(a, p, &ia) == CKPT_OK && ckpt_reader_info(b, p, &ib) == CKPT_OK);
            CHECK_MSG(ia.dtype == ib.dtype && ia.nelems == ib.nelems && ia.rank == ib.rank,
                      "%s %s: shape/type", what, p);
            if (ia.dtype == CKPT_DTYPE_STR) { /* texts: packed, compared whole */
                char *x = NULL, *y = NULL;
                size_t nx = 0, ny = 0;
                CHECK(ckpt_reader_read_str(a, p, &x, &nx) == CKPT_OK &&
                      ckpt_reader_read_str(b, p, &y, &ny) == CKPT_OK);
                size_t bx = 0, by = 0;
                for (size_t k = 0; x && k < nx; k++)
                    bx += strlen(x + bx) + 1;
                for (size_t k = 0; y && k < ny; k++)
                    by += strlen(y + by) + 1;
                CHECK_MSG(x && y && nx == ny && bx == by && memcmp(x, y, bx) == 0,
                          "%s %s: texts differ", what, p);
                free(x), free(y);
            } else {
                size_t bytes = ia.nelems * ckpt_dtype_size(ia.dtype);
                char *x = malloc(bytes + 1), *y = malloc(bytes + 1);
                CHECK(ckpt_reader_read(a, p, ia.dtype, x, ia.nelems) == CKPT_OK);
                CHECK(ckpt_reader_read(b, p, ib.dtype, y, ib.nelems) == CKPT_OK);
                CHECK_MSG(memcmp(x, y, bytes) == 0, "%s %s: data differs", what, p);
                free(x), free(y);
            }
            cmp_attrs(a, b, p, what);
            g_cmp_objects++;
        }
    }
    ckpt_list_free(&la), ckpt_list_free(&lb);
}

/* Compares file pa with file pb (same format); returns the datasets compared. */
static inline int cmp_files(const char *pa, const char *pb, const char *format) {
    ckpt_reader *a = NULL, *b = NULL;
    ckpt_error ea, eb;
    CHECK_MSG(ckpt_reader_open(&a, pa, format, 3, &ea) == CKPT_OK, "%s",
              ea.msg); /* results: 3, checkpoint: 1 */
    CHECK_MSG(ckpt_reader_open(&b, pb, format, 3, &eb) == CKPT_OK, "%s", eb.msg);
    g_cmp_objects = 0;
    if (a && b) cmp_group(a, b, "", pb);
    ckpt_reader_free(a), ckpt_reader_free(b);
    return g_cmp_objects;
}

#endif
