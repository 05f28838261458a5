/* test_ckpt_roundtrip: every dtype at ranks 0..8, empty arrays, special values, the chunking and
 * compression rule, replacing a dataset, byte-identical output for identical input, and the
 * argument / dtype / shape errors of writing and reading. */
#include <math.h>
#include <stdint.h>

#include "tests/checkpoints/ckpt_testutil.h"

static const ckpt_dtype k_dtypes[4] = {CKPT_DTYPE_F32, CKPT_DTYPE_F64, CKPT_DTYPE_I64,
                                       CKPT_DTYPE_U8};

/* Fills n elements of dtype with values that differ per element and per seed, including the
 * awkward ones (NaN, inf, -0, denormals, INT64 extremes, 0 and 255). */
static void fill(ckpt_dtype dt, void *buf, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) {
        double x = (double)seed * 1000.0 + (double)i * 0.37 - 7.0;
        switch (dt) {
        case CKPT_DTYPE_F32: {
            float v = (float)x;
            if (i % 11 == 3) v = NAN;
            if (i % 11 == 4) v = -INFINITY;
            if (i % 11 == 5) v = -0.0f;
            if (i % 11 == 6) v = 1e-40f; /* denormal */
            ((float *)buf)[i] = v;
            break;
        }
        case CKPT_DTYPE_F64: {
            double v = x;
            if (i % 11 == 3) v = NAN;
            if (i % 11 == 4) v = INFINITY;
            if (i % 11 == 6) v = 4.9e-324;
            ((double *)buf)[i] = v;
            break;
        }
        case CKPT_DTYPE_I64: {
            int64_t v = (int64_t)(x * 1e6);
            if (i % 7 == 1) v = INT64_MIN;
            if (i % 7 == 2) v = INT64_MAX;
            ((int64_t *)buf)[i] = v;
            break;
        }
        default:
            ((uint8_t *)buf)[i] = (uint8_t)((i * 37 + (size_t)seed) & 0xff);
            break;
        }
    }
}

typedef struct {
    int rank;
    int64_t dims[CKPT_MAX_RANK];
} shape;

static const shape k_shapes[] = {
    {0, {0}}, /* scalar */
    {1, {1}},       {1, {17}},         {2, {3, 5}},
    {3, {2, 3, 4}}, {4, {2, 1, 3, 2}}, {8, {2, 1, 2, 1, 2, 1, 2, 3}}, /* CKPT_MAX_RANK */
    {1, {0}},                                                         /* empty arrays */
    {2, {3, 0}},    {3, {0, 0, 5}},
};
#define N_SHAPES (sizeof k_shapes / sizeof k_shapes[0])

static size_t count(const shape *s) {
    size_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= (size_t)s->dims[i];
    return n;
}

static void test_every_dtype_and_rank(void) {
    char path[600], name[64];
    tu_path(path, sizeof path, "all.h5");
    ckpt_writer *w = NULL;
    ckpt_error err;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, &err), CKPT_OK);
    CHECK_EQ_STR(err.msg, "");
    for (int d = 0; d < 4; d++) {
        for (size_t s = 0; s < N_SHAPES; s++) {
            size_t n = count(&k_shapes[s]);
            void *buf = malloc(n * 8 + 1);
            fill(k_dtypes[d], buf, n, (int)(d * 100 + s));
            snprintf(name, sizeof name, "arrays/%s/shape%zu", ckpt_dtype_name(k_dtypes[d]), s);
            int rc = ckpt_writer_write(w, name, k_dtypes[d], k_shapes[s].rank, k_shapes[s].dims,
                                       n ? buf : NULL);
            CHECK_MSG(rc == CKPT_OK, "%s: %s", name, ckpt_writer_errmsg(w));
            free(buf);
        }
    }
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);

    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, &err), CKPT_OK);
    if (!r) return;
    for (int d = 0; d < 4; d++) {
        size_t es = ckpt_dtype_size(k_dtypes[d]);
        for (size_t s = 0; s < N_SHAPES; s++) {
            const shape *sh = &k_shapes[s];
            size_t n = count(sh);
            snprintf(name, sizeof name, "arrays/%s/shape%zu", ckpt_dtype_name(k_dtypes[d]), s);
            ckpt_info info;
            CHECK_EQ_INT(ckpt_reader_info(r, name, &info), CKPT_OK);
            CHECK_EQ_INT(info.dtype, k_dtypes[d]);
            CHECK_EQ_INT(info.rank, sh->rank);
            CHECK_EQ_INT(info.nelems, n);
            CHECK_EQ_INT(info.chunked, 0); /* all below the 64 KiB threshold */
            CHECK_EQ_INT(info.compressed, 0);
            for (int i = 0; i < CKPT_MAX_RANK; i++)
                CHECK_EQ_INT(info.dims[i], i < sh->rank ? sh->dims[i] : 0);
            void *want = malloc(n * es + 1), *got = malloc(n * es + 1);
            fill(k_dtypes[d], want, n, (int)(d * 100 + s));
            memset(got, 0xAB, n * es + 1);
            int rc = ckpt_reader_read(r, name, k_dtypes[d], n ? got : NULL, n);
            CHECK_MSG(rc == CKPT_OK, "%s: %s", name, ckpt_reader_errmsg(r));
            /* Bit-exact, NaN payloads and -0 included. */
            CHECK_MSG(memcmp(want, got, n * es) == 0, "%s differs after the round trip", name);
            free(want);
            free(got);
        }
    }
    ckpt_reader_free(r);
}

static void test_chunking_rule(void) {
    char path[600];
    tu_path(path, sizeof path, "chunks.h5");
    size_t n = 300 * 1000; /* float32: 1.2 MB, above the 64 KiB default threshold */
    float *big = malloc(n * sizeof *big);
    for (size_t i = 0; i < n; i++)
        big[i] = (float)(i % 1000) * 0.5f;
    double small[8192]; /* exactly 65536 bytes: not above the threshold */
    for (int i = 0; i < 8192; i++)
        small[i] = i;
    double over[8193];
    for (int i = 0; i < 8193; i++)
        over[i] = i;
    int64_t dbig[2] = {300, 1000}, dsmall[1] = {8192}, dover[1] = {8193};

    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "big", CKPT_DTYPE_F32, 2, dbig, big), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "small", CKPT_DTYPE_F64, 1, dsmall, small), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "over", CKPT_DTYPE_F64, 1, dover, over), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);

    /* Options: everything chunked, and chunked without compression. */
    char path2[600];
    tu_path(path2, sizeof path2, "chunks2.h5");
    ckpt_write_opts o = ckpt_write_opts_default();
    CHECK_EQ_INT(o.compress_min_bytes, 65536);
    CHECK_EQ_INT(o.deflate_level, 4);
    o.compress_min_bytes = 0;
    o.deflate_level = 0;
    CHECK_EQ_INT(ckpt_writer_open(&w, path2, CKPT_FORMAT_CHECKPOINT, 1, &o, NULL), CKPT_OK);
    int64_t d3[1] = {3};
    CHECK_EQ_INT(ckpt_writer_write(w, "tiny", CKPT_DTYPE_F64, 1, d3, small), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "scalar", CKPT_DTYPE_F64, 0, NULL, small), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);

    ckpt_reader *r = NULL;
    ckpt_info info;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    if (!r) return;
    CHECK_EQ_INT(ckpt_reader_info(r, "big", &info), CKPT_OK);
    CHECK_EQ_INT(info.chunked, 1);
    CHECK_EQ_INT(info.compressed, 1);
    CHECK_EQ_INT(ckpt_reader_info(r, "small", &info), CKPT_OK);
    CHECK_EQ_INT(info.chunked, 0);
    CHECK_EQ_INT(info.compressed, 0);
    CHECK_EQ_INT(ckpt_reader_info(r, "over", &info), CKPT_OK);
    CHECK_EQ_INT(info.chunked, 1);
    CHECK_EQ_INT(info.compressed, 1);
    float *got = malloc(n * sizeof *got);
    CHECK_EQ_INT(ckpt_reader_read(r, "big", CKPT_DTYPE_F32, got, n), CKPT_OK);
    CHECK(memcmp(got, big, n * sizeof *got) == 0);
    double got_over[8193];
    CHECK_EQ_INT(ckpt_reader_read(r, "over", CKPT_DTYPE_F64, got_over, 8193), CKPT_OK);
    CHECK(memcmp(got_over, over, sizeof over) == 0);
    ckpt_reader_free(r);
    free(got);
    free(big);

    /* The compressible 1.2 MB array must actually shrink the file. */
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size < 600000);

    CHECK_EQ_INT(ckpt_reader_open(&r, path2, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    if (!r) return;
    CHECK_EQ_INT(ckpt_reader_info(r, "tiny", &info), CKPT_OK);
    CHECK_EQ_INT(info.chunked, 1);
    CHECK_EQ_INT(info.compressed, 0);
    CHECK_EQ_INT(ckpt_reader_info(r, "scalar", &info), CKPT_OK);
    CHECK_EQ_INT(info.chunked, 0); /* a scalar is never chunked */
    CHECK_EQ_INT(info.rank, 0);
    CHECK_EQ_INT(info.nelems, 1);
    ckpt_reader_free(r);
}

static void test_replace_and_determinism(void) {
    char a[600], b[600];
    tu_path(a, sizeof a, "det_a.h5");
    tu_path(b, sizeof b, "det_b.h5");
    for (int k = 0; k < 2; k++) {
        ckpt_writer *w = NULL;
        CHECK_EQ_INT(ckpt_writer_open(&w, k ? b : a, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL),
                     CKPT_OK);
        int64_t d1[1] = {4}, d2[2] = {2, 3};
        double x[6] = {1, 2, 3, 4, 5, 6};
        int64_t y[4] = {9, 8, 7, 6};
        CHECK_EQ_INT(ckpt_writer_write(w, "g/x", CKPT_DTYPE_F64, 1, d1, x), CKPT_OK);
        /* Replaced by a dataset of another dtype and shape. */
        CHECK_EQ_INT(
            ckpt_writer_write(w, "g/x", CKPT_DTYPE_I64, 2, d2, (int64_t[]){1, 2, 3, 4, 5, 6}),
            CKPT_OK);
        CHECK_EQ_INT(ckpt_writer_write(w, "/g/y", CKPT_DTYPE_I64, 1, d1, y), CKPT_OK);
        CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
        ckpt_writer_free(w);
    }
    CHECK_MSG(tu_same_bytes(a, b), "identical contents must give identical files");
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, a, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    if (!r) return;
    ckpt_info info;
    CHECK_EQ_INT(ckpt_reader_info(r, "g/x", &info), CKPT_OK);
    CHECK_EQ_INT(info.dtype, CKPT_DTYPE_I64);
    CHECK_EQ_INT(info.rank, 2);
    int64_t got[6] = {0};
    CHECK_EQ_INT(ckpt_reader_read(r, "/g/x", CKPT_DTYPE_I64, got, 6), CKPT_OK);
    CHECK_EQ_INT(got[5], 6);
    ckpt_reader_free(r);
}

static void test_read_errors(void) {
    char path[600];
    tu_path(path, sizeof path, "rerr.h5");
    CHECK_EQ_INT(tu_write_small(path, 5), CKPT_OK);
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    if (!r) return;
    double d[12];
    float f[12];
    CHECK_EQ_INT(ckpt_reader_read(r, "w", CKPT_DTYPE_F64, d, 12), CKPT_ERR_DTYPE);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "rerr.h5: dataset 'w' is float32, but float64");
    CHECK_EQ_INT(ckpt_reader_read(r, "w", CKPT_DTYPE_F32, f, 11), CKPT_ERR_SHAPE);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "has 12 elements, the buffer 11");
    CHECK_EQ_INT(ckpt_reader_read(r, "w", CKPT_DTYPE_F32, NULL, 12), CKPT_ERR_ARG);
    CHECK_EQ_INT(ckpt_reader_read(r, "nope/w", CKPT_DTYPE_F32, f, 12), CKPT_ERR_NOTFOUND);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "no object 'nope/w' ('nope' does not exist)");
    ckpt_info info;
    CHECK_EQ_INT(ckpt_reader_info(r, "", &info), CKPT_ERR_ARG);
    CHECK_EQ_INT(ckpt_reader_info(r, "a//b", &info), CKPT_ERR_ARG);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "empty");
    /* The reader is still usable after errors. */
    CHECK_EQ_INT(ckpt_reader_read(r, "w", CKPT_DTYPE_F32, f, 12), CKPT_OK);
    CHECK_EQ_STR(ckpt_reader_errmsg(r), "");
    ckpt_reader_free(r);
    CHECK(tu_check_small(path, 5));
}

static void test_write_errors(void) {
    char path[600];
    tu_path(path, sizeof path, "werr.h5");
    int64_t dims[CKPT_MAX_RANK + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    double x[4] = {0};
    struct {
        const char *path;
        ckpt_dtype dt;
        int rank;
        int64_t d0;
        const void *data;
        const char *msg;
    } bad[] = {
        {"x", CKPT_DTYPE_F64, CKPT_MAX_RANK + 1, 1, x, "rank 9 is outside 0..8"},
        {"x", CKPT_DTYPE_F64, 1, -2, x, "dims[0] = -2 is negative"},
        {"x", CKPT_DTYPE_F64, 1, 3, NULL, "data is NULL for 3 elements"},
        {"x", CKPT_DTYPE_OTHER, 1, 1, x, "is not one of float32"},
        {"", CKPT_DTYPE_F64, 1, 1, x, "names the root group"},
        {"a//b", CKPT_DTYPE_F64, 1, 1, x, "empty, \".\" or \"..\" component"},
        {"a/../b", CKPT_DTYPE_F64, 1, 1, x, "component"},
        {"a/", CKPT_DTYPE_F64, 1, 1, x, "component"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ckpt_writer *w = NULL;
        CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
        if (!w) continue;
        dims[0] = bad[i].d0;
        int rc = ckpt_writer_write(w, bad[i].path, bad[i].dt, bad[i].rank, dims, bad[i].data);
        CHECK_EQ_INT(rc, CKPT_ERR_ARG);
        CHECK_CONTAINS(ckpt_writer_errmsg(w), bad[i].msg);
        CHECK_CONTAINS(ckpt_writer_errmsg(w), "werr.h5");
        /* Sticky: a valid write afterwards returns the same status and keeps the message;
         * commit fails and creates nothing. */
        dims[0] = 1;
        CHECK_EQ_INT(ckpt_writer_write(w, "ok", CKPT_DTYPE_F64, 1, dims, x), CKPT_ERR_ARG);
        CHECK_CONTAINS(ckpt_writer_errmsg(w), bad[i].msg);
        CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_ERR_ARG);
        CHECK_EQ_INT(ckpt_writer_write(w, "ok", CKPT_DTYPE_F64, 1, dims, x), CKPT_ERR_STATE);
        ckpt_writer_free(w);
        CHECK(!tu_exists(path));
    }

    /* Groups and datasets in each other's way. */
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    dims[0] = 2;
    CHECK_EQ_INT(ckpt_writer_write(w, "g/x", CKPT_DTYPE_F64, 1, dims, x), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "g", CKPT_DTYPE_F64, 1, dims, x), CKPT_ERR_EXISTS);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "'g' already exists as a group");
    ckpt_writer_free(w);
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_write(w, "g/x", CKPT_DTYPE_F64, 1, dims, x), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "g/x/y", CKPT_DTYPE_F64, 1, dims, x), CKPT_ERR_EXISTS);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "'g/x' is a dataset");
    ckpt_writer_free(w);
    CHECK(!tu_exists(path));

    /* Open arguments. */
    ckpt_error err;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, "", 1, NULL, &err), CKPT_ERR_ARG);
    CHECK(w == NULL);
    CHECK_CONTAINS(err.msg, "format name is empty");
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 0, NULL, &err), CKPT_ERR_ARG);
    CHECK_CONTAINS(err.msg, "format_version 0 is invalid");
    ckpt_write_opts o = ckpt_write_opts_default();
    o.deflate_level = 10;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, &o, &err), CKPT_ERR_ARG);
    char nodir[700];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.h5", tu_dir());
    CHECK_EQ_INT(ckpt_writer_open(&w, nodir, CKPT_FORMAT_CHECKPOINT, 1, NULL, &err), CKPT_ERR_IO);
    CHECK(w == NULL);
    CHECK_CONTAINS(err.msg, "x.h5: cannot write in the directory");
    CHECK_CONTAINS(err.msg, "No such file or directory; check that the directory exists");
    CHECK_EQ_STR(ckpt_status_str(CKPT_ERR_IO), "CKPT_ERR_IO");
    CHECK_EQ_STR(ckpt_status_str(42), "?");
    CHECK_EQ_STR(ckpt_dtype_name(CKPT_DTYPE_U8), "uint8");
    CHECK_EQ_INT(ckpt_dtype_size(CKPT_DTYPE_F32), 4);
    CHECK_EQ_INT(ckpt_dtype_size(CKPT_DTYPE_OTHER), 0);
    CHECK(strchr(ckpt_hdf5_version(), '.') != NULL);
}

int main(void) {
    test_every_dtype_and_rank();
    test_chunking_rule();
    test_replace_and_determinism();
    test_read_errors();
    test_write_errors();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_roundtrip");
}
