/* test_ckpt_strings: string datasets (CKPT_DTYPE_STR, variable-length UTF-8): written by a writer
 * and by a snapshot (copied and owned), read back packed and equal, with their shape; empty
 * texts and an empty dataset; the type checks both ways; and, when h5dump is on PATH, the file
 * as HDF5 tools see it (variable-length UTF-8 strings). */
#include "tests/checkpoints/ckpt_testutil.h"

/* Three texts, packed: a question, an empty string, and non-ASCII UTF-8. */
static const char k_packed[] = "12+3=\0\0h\xc3\xa9llo";
static const size_t k_bytes = sizeof k_packed; /* includes the last NUL */

static void check_read(const char *path, const char *dpath) {
    ckpt_reader *r = NULL;
    ckpt_error e;
    CHECK_MSG(ckpt_reader_open(&r, path, "t", 1, &e) == CKPT_OK, "%s", e.msg);
    if (!r) return;
    ckpt_info info;
    CHECK(ckpt_reader_info(r, dpath, &info) == CKPT_OK);
    CHECK_EQ_INT(info.dtype, CKPT_DTYPE_STR);
    CHECK_EQ_INT(info.rank, 1);
    CHECK_EQ_INT((int)info.nelems, 3);
    char *packed = NULL;
    size_t n = 0;
    CHECK_MSG(ckpt_reader_read_str(r, dpath, &packed, &n) == CKPT_OK, "%s", ckpt_reader_errmsg(r));
    CHECK_EQ_INT((int)n, 3);
    CHECK(packed && memcmp(packed, k_packed, k_bytes) == 0);
    free(packed);
    /* strings are not read as numbers, and numbers not as strings */
    double x[3];
    CHECK(ckpt_reader_read(r, dpath, CKPT_DTYPE_F64, x, 3) == CKPT_ERR_DTYPE);
    CHECK(strstr(ckpt_reader_errmsg(r), "holds strings; read it with ckpt_reader_read_str") !=
          NULL);
    packed = NULL;
    CHECK(ckpt_reader_read_str(r, "nums", &packed, &n) == CKPT_ERR_DTYPE && packed == NULL);
    CHECK(strstr(ckpt_reader_errmsg(r), "is float64, not strings") != NULL);
    /* an empty string dataset */
    CHECK(ckpt_reader_read_str(r, "none", &packed, &n) == CKPT_OK && n == 0);
    free(packed);
    ckpt_reader_free(r);
}

static void test_writer(void) {
    char path[600];
    tu_path(path, sizeof path, "w.h5");
    ckpt_writer *w = NULL;
    ckpt_error e;
    CHECK_MSG(ckpt_writer_open(&w, path, "t", 1, NULL, &e) == CKPT_OK, "%s", e.msg);
    int64_t dims[1] = {3}, zero[1] = {0};
    double nums[3] = {1, 2, 3};
    CHECK(ckpt_writer_write(w, "g/texts", CKPT_DTYPE_STR, 1, dims, k_packed) == CKPT_OK);
    CHECK(ckpt_writer_write(w, "nums", CKPT_DTYPE_F64, 1, dims, nums) == CKPT_OK);
    CHECK(ckpt_writer_write(w, "none", CKPT_DTYPE_STR, 1, zero, NULL) == CKPT_OK);
    CHECK_MSG(ckpt_writer_commit(w) == CKPT_OK, "%s", ckpt_writer_errmsg(w));
    ckpt_writer_free(w);
    check_read(path, "g/texts");

    /* what HDF5 tools see */
    char cmd[1600], out[700];
    tu_path(out, sizeof out, "dump.txt");
    snprintf(cmd, sizeof cmd, "command -v h5dump >/dev/null && h5dump -d /g/texts '%s' > '%s' 2>&1",
             path, out);
    if (system(cmd) == 0) {
        size_t n = 0;
        unsigned char *d = tu_slurp(out, &n);
        CHECK_MSG(d && strstr((char *)d, "H5T_VARIABLE") && strstr((char *)d, "H5T_CSET_UTF8") &&
                      strstr((char *)d, "\"12+3=\""),
                  "%s", d ? (char *)d : "");
        free(d);
    } else {
        printf("test_ckpt_strings: h5dump not found, the tool check is skipped\n");
    }
}

static void test_snapshot(void) {
    char path[600];
    tu_path(path, sizeof path, "s.h5");
    ckpt_snapshot *s = NULL;
    ckpt_error e;
    CHECK(ckpt_snapshot_new(&s, path, "t", 1, CKPT_MODE_CREATE, NULL, &e) == CKPT_OK);
    int64_t dims[1] = {3}, zero[1] = {0};
    char *owned = malloc(k_bytes);
    memcpy(owned, k_packed, k_bytes);
    char copy[sizeof k_packed];
    memcpy(copy, k_packed, k_bytes);
    double nums[3] = {1, 2, 3};
    CHECK(ckpt_snapshot_add(s, "a/texts", CKPT_DTYPE_STR, 1, dims, copy) == CKPT_OK);
    memset(copy, 'x', sizeof copy - 1); /* the snapshot holds its own copy */
    CHECK(ckpt_snapshot_add_owned(s, "b/texts", CKPT_DTYPE_STR, 1, dims, owned, NULL) == CKPT_OK);
    CHECK(ckpt_snapshot_add(s, "nums", CKPT_DTYPE_F64, 1, dims, nums) == CKPT_OK);
    CHECK(ckpt_snapshot_add(s, "none", CKPT_DTYPE_STR, 1, zero, NULL) == CKPT_OK);
    CHECK_MSG(ckpt_snapshot_write(s, &e) == CKPT_OK, "%s", e.msg);
    ckpt_snapshot_free(s);
    check_read(path, "a/texts");
    check_read(path, "b/texts");
}

int main(void) {
    test_writer();
    test_snapshot();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_strings");
}
