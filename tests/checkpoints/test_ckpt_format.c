/* test_ckpt_format: the check done on every open, with the message of each bad file: missing,
 * empty, a directory, truncated at many lengths, a text file, random bytes, HDF5 without our
 * attributes, another format name, a missing/invalid/newer format_version; an older version is
 * accepted; appending refuses all of them and leaves the file untouched. */
#include <hdf5.h>
#include <stdint.h>

#include "tests/checkpoints/ckpt_testutil.h"

/* Opens path expecting failure `status`; checks that the message names the file and contains
 * each of the NULL-terminated fragments. */
static void expect_open_error(const char *path, const char *format, int max_version, int status,
                              const char *fragment1, const char *fragment2) {
    ckpt_reader *r = (ckpt_reader *)&r; /* must be reset to NULL */
    ckpt_error err;
    int rc = ckpt_reader_open(&r, path, format, max_version, &err);
    CHECK_MSG(rc == status, "%s: got %s, expected %s (%s)", path, ckpt_status_str(rc),
              ckpt_status_str(status), err.msg);
    CHECK_EQ_INT(err.status, status);
    CHECK(r == NULL);
    if (rc == CKPT_OK) ckpt_reader_free(r);
    CHECK_CONTAINS(err.msg, path);
    if (fragment1) CHECK_CONTAINS(err.msg, fragment1);
    if (fragment2) CHECK_CONTAINS(err.msg, fragment2);
}

/* A plain HDF5 file with optional root attributes (NULL / < -100 to leave out). */
static void write_plain(const char *path, const char *format, long long version) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    if (format) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        hid_t a = H5Acreate2(f, CKPT_ATTR_FORMAT, st, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, st, &format);
        H5Aclose(a);
        H5Tclose(st);
    }
    if (version > -100) {
        int64_t v = version;
        hid_t a =
            H5Acreate2(f, CKPT_ATTR_FORMAT_VERSION, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &v);
        H5Aclose(a);
    }
    H5Gclose(H5Gcreate2(f, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(sp);
    H5Fclose(f);
}

static int write_versioned(const char *path, const char *format, int version) {
    ckpt_writer *w = NULL;
    int rc = ckpt_writer_open(&w, path, format, version, NULL, NULL);
    if (rc) return rc;
    double x[4] = {1, 2, 3, 4};
    int64_t d[1] = {4};
    ckpt_writer_write(w, "x", CKPT_DTYPE_F64, 1, d, x);
    rc = ckpt_writer_commit(w);
    ckpt_writer_free(w);
    return rc;
}

static void test_missing_empty_dir(void) {
    char p[600];
    tu_path(p, sizeof p, "missing.h5");
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_NOTFOUND, "no such file",
                      "check the path");
    tu_path(p, sizeof p, "empty.h5");
    CHECK(tu_write_bytes(p, "", 0) == 0);
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT, "is empty (0 bytes)",
                      "use an intact copy or rerun");
    expect_open_error(tu_dir(), CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT, "is a directory", NULL);
}

static void test_truncated(void) {
    char good[600], cut[600];
    tu_path(good, sizeof good, "good.h5");
    tu_path(cut, sizeof cut, "cut.h5");
    /* A file with some bulk, so the cuts land in metadata and in raw data. */
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, good, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    double x[2000];
    for (int i = 0; i < 2000; i++)
        x[i] = i * 0.25;
    int64_t d[1] = {2000};
    CHECK_EQ_INT(ckpt_writer_write(w, "a/x", CKPT_DTYPE_F64, 1, d, x), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_write(w, "b/y", CKPT_DTYPE_F64, 1, d, x), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);
    size_t n = 0;
    unsigned char *bytes = tu_slurp(good, &n);
    CHECK(bytes && n > 16000);
    if (!bytes) return;
    size_t cuts[] = {1, 4, 7, 8, 40, 96, 512, 2048, n / 2, n - 100, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(tu_write_bytes(cut, bytes, cuts[i]) == 0);
        char bytes_note[64];
        snprintf(bytes_note, sizeof bytes_note, "(%zu bytes", cuts[i]);
        expect_open_error(cut, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT, "truncated", bytes_note);
        if (cuts[i] >= 512) { /* past the superblock: HDF5 knows the size it expects */
            char says[64];
            snprintf(says, sizeof says, "bytes on disk, its header says %zu)", n);
            expect_open_error(cut, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT, says, NULL);
        }
        /* Appending refuses it too, and leaves it as it was. */
        ckpt_error err;
        ckpt_writer *aw = NULL;
        CHECK_EQ_INT(ckpt_writer_open_append(&aw, cut, CKPT_FORMAT_CHECKPOINT, 1, NULL, &err),
                     CKPT_ERR_FORMAT);
        CHECK_CONTAINS(err.msg, "truncated");
        size_t m = 0;
        unsigned char *after = tu_slurp(cut, &m);
        CHECK(after && m == cuts[i] && memcmp(after, bytes, m) == 0);
        free(after);
    }
    free(bytes);
}

static void test_foreign(void) {
    char p[600];
    tu_path(p, sizeof p, "notes.txt");
    const char *text = "this is a text file, not HDF5\nline 2\n";
    CHECK(tu_write_bytes(p, text, strlen(text)) == 0);
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT,
                      "is not an HDF5 file (no HDF5 signature)", "'caopd-checkpoint'");
    unsigned char junk[3000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    tu_path(p, sizeof p, "junk.bin");
    CHECK(tu_write_bytes(p, junk, sizeof junk) == 0);
    expect_open_error(p, NULL, 1, CKPT_ERR_FORMAT, "is not an HDF5 file", "a caopd file");

    tu_path(p, sizeof p, "plain.h5");
    write_plain(p, NULL, -1000);
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT,
                      "is an HDF5 file but not a caopd file: it has no string attribute 'format' "
                      "at the root (expected 'caopd-checkpoint')",
                      "pass a file written by caopd");
    expect_open_error(p, NULL, 1, CKPT_ERR_FORMAT, "(expected a caopd format)", NULL);

    /* "format" of the wrong type. */
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    int64_t one = 1;
    hid_t a = H5Acreate2(f, CKPT_ATTR_FORMAT, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &one);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT, "no scalar string attribute",
                      NULL);

    tu_path(p, sizeof p, "noversion.h5");
    write_plain(p, CKPT_FORMAT_CHECKPOINT, -1000);
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT,
                      "has format 'caopd-checkpoint' but no integer 'format_version' attribute",
                      NULL);
    tu_path(p, sizeof p, "version0.h5");
    write_plain(p, CKPT_FORMAT_CHECKPOINT, 0);
    expect_open_error(p, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT, "format_version 0 is invalid",
                      NULL);
    tu_path(p, sizeof p, "plain_ok.h5");
    write_plain(p, CKPT_FORMAT_CHECKPOINT, 1);
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, p, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    ckpt_reader_free(r);
}

static void test_format_and_version(void) {
    char res[600], p3[600];
    tu_path(res, sizeof res, "results.h5");
    CHECK_EQ_INT(write_versioned(res, CKPT_FORMAT_RESULTS, 1), CKPT_OK);
    expect_open_error(res, CKPT_FORMAT_CHECKPOINT, 1, CKPT_ERR_FORMAT,
                      "is a 'caopd-results' file, not 'caopd-checkpoint'",
                      "pass the caopd-checkpoint file");
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, res, NULL, 1, NULL), CKPT_OK); /* any format */
    CHECK_EQ_STR(ckpt_reader_format(r), CKPT_FORMAT_RESULTS);
    ckpt_reader_free(r);

    tu_path(p3, sizeof p3, "v3.h5");
    CHECK_EQ_INT(write_versioned(p3, CKPT_FORMAT_RESULTS, 3), CKPT_OK);
    /* The exact message. */
    ckpt_error err;
    CHECK_EQ_INT(ckpt_reader_open(&r, p3, CKPT_FORMAT_RESULTS, 1, &err), CKPT_ERR_VERSION);
    char want[800];
    snprintf(want, sizeof want,
             "%s: format_version 3 is newer than this build reads (1); use a newer caopd", p3);
    CHECK_EQ_STR(err.msg, want);
    expect_open_error(p3, CKPT_FORMAT_RESULTS, 2, CKPT_ERR_VERSION, "reads (2)", NULL);
    /* Older and equal versions are read; the caller sees which. */
    CHECK_EQ_INT(ckpt_reader_open(&r, p3, CKPT_FORMAT_RESULTS, 3, NULL), CKPT_OK);
    CHECK_EQ_INT(ckpt_reader_format_version(r), 3);
    ckpt_reader_free(r);
    CHECK_EQ_INT(ckpt_reader_open(&r, res, CKPT_FORMAT_RESULTS, 5, NULL), CKPT_OK);
    CHECK_EQ_INT(ckpt_reader_format_version(r), 1);
    ckpt_reader_free(r);
    CHECK_EQ_INT(ckpt_reader_open(&r, res, CKPT_FORMAT_RESULTS, 0, &err), CKPT_ERR_ARG);
    CHECK_EQ_INT(ckpt_reader_open(NULL, res, CKPT_FORMAT_RESULTS, 1, &err), CKPT_ERR_ARG);

    /* Appending: another format, a newer version, an older version: all refused, untouched. */
    size_t n0 = 0, n1 = 0;
    unsigned char *before = tu_slurp(p3, &n0);
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open_append(&w, p3, CKPT_FORMAT_RESULTS, 1, NULL, &err),
                 CKPT_ERR_VERSION);
    CHECK(w == NULL);
    CHECK_CONTAINS(err.msg, "format_version 3 is newer than this build reads (1)");
    CHECK_EQ_INT(ckpt_writer_open_append(&w, p3, CKPT_FORMAT_RESULTS, 4, NULL, &err),
                 CKPT_ERR_VERSION);
    CHECK_CONTAINS(err.msg, "has format_version 3; this build writes 4 and cannot append to it");
    CHECK_EQ_INT(ckpt_writer_open_append(&w, p3, CKPT_FORMAT_CHECKPOINT, 3, NULL, &err),
                 CKPT_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "is a 'caopd-results' file, not 'caopd-checkpoint'");
    unsigned char *after = tu_slurp(p3, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", p3);
    CHECK(!tu_exists(tmp));
    free(before);
    free(after);
}

int main(void) {
    test_missing_empty_dir();
    test_truncated();
    test_foreign();
    test_format_and_version();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_format");
}
