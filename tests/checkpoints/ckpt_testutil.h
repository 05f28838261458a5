/* ckpt_testutil.h: helpers shared by the checkpoints/ tests: a private scratch directory under
 * $TMPDIR (main ends with tmpdir_finish(tu_dir_buf)), whole-file reads and writes, and a small
 * reference file. */
#ifndef CAOPD_TESTS_CKPT_TESTUTIL_H
#define CAOPD_TESTS_CKPT_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/check.h"
#include "checkpoints/ckpt.h"
#include "tests/tmpdir.h"

/* The scratch directory; "" until tu_dir first makes it. */
static char tu_dir_buf[512];

/* Creates the scratch directory (once) and returns it. Exits the test on failure. */
static inline const char *tu_dir(void) {
    if (!tu_dir_buf[0]) tmpdir_make(tu_dir_buf, sizeof tu_dir_buf, "caopd-ckpt-test");
    return tu_dir_buf;
}

/* buf[cap] = "<scratch dir>/name"; returns buf. */
static inline char *tu_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tu_dir(), name);
    return buf;
}

static inline int tu_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whole file into a malloc'd buffer (NULL if unreadable); *n = size. */
static inline unsigned char *tu_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *n = (size_t)sz;
    return b;
}

static inline int tu_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* 1 when the two files have identical bytes. */
static inline int tu_same_bytes(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *x = tu_slurp(a, &na), *y = tu_slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Writes a small complete checkpoint: "w" = float32 (3,4) filled with seed + i, "step" = int64
 * scalar seed, root attribute "note" = "seed <seed>". Returns the commit status. */
static inline int tu_write_small(const char *path, int seed) {
    ckpt_writer *w = NULL;
    ckpt_error err;
    int rc = ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, &err);
    if (rc) {
        fprintf(stderr, "tu_write_small: %s\n", err.msg);
        return rc;
    }
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)(seed + i);
    int64_t dims[2] = {3, 4};
    int64_t step = seed;
    char note[32];
    snprintf(note, sizeof note, "seed %d", seed);
    ckpt_writer_write(w, "w", CKPT_DTYPE_F32, 2, dims, v);
    ckpt_writer_write(w, "step", CKPT_DTYPE_I64, 0, NULL, &step);
    ckpt_writer_set_attr_str(w, "", "note", note);
    rc = ckpt_writer_commit(w);
    if (rc) fprintf(stderr, "tu_write_small: %s\n", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
    return rc;
}

/* Checks that path holds exactly what tu_write_small(path, seed) wrote. Returns 1 if so. */
static inline int tu_check_small(const char *path, int seed) {
    ckpt_reader *r = NULL;
    ckpt_error err;
    if (ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, &err)) {
        fprintf(stderr, "tu_check_small: %s\n", err.msg);
        return 0;
    }
    float v[12] = {0};
    int64_t step = -1;
    char *note = NULL;
    char want[32];
    snprintf(want, sizeof want, "seed %d", seed);
    int ok = ckpt_reader_read(r, "w", CKPT_DTYPE_F32, v, 12) == CKPT_OK &&
             ckpt_reader_read(r, "step", CKPT_DTYPE_I64, &step, 1) == CKPT_OK && step == seed &&
             ckpt_reader_attr_str(r, "", "note", &note) == CKPT_OK && !strcmp(note, want);
    for (int i = 0; ok && i < 12; i++)
        ok = v[i] == (float)(seed + i);
    free(note);
    ckpt_reader_free(r);
    return ok;
}

/* Case-sensitive substring check with a readable failure. */
#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *tu_h_ = (hay), *tu_n_ = (needle);                                              \
        CHECK_MSG(tu_h_ &&strstr(tu_h_, tu_n_), "\n  message: \"%s\"\n  lacks:   \"%s\"",          \
                  tu_h_ ? tu_h_ : "(null)", tu_n_);                                                \
    } while (0)

#endif
