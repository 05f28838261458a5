/* test_ckpt_attrs: scalar string/int64/float64 attributes on the root, groups and datasets:
 * long and UTF-8 strings, extreme values, replacement, implicit group creation, reserved
 * names, listing, type errors, and attributes written by plain HDF5 (fixed-length strings,
 * int32, float32) as h5py or another tool would. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>

#include "tests/checkpoints/ckpt_testutil.h"

static char *make_json(size_t n) {
    char *s = malloc(n + 1);
    size_t k = 0;
    k += (size_t)snprintf(s, n + 1, "{\"runs\": [");
    while (k + 20 < n)
        k += (size_t)snprintf(s + k, n + 1 - k, "%zu, ", k);
    while (k < n - 2)
        s[k++] = ' ';
    s[k++] = ']';
    s[k++] = '}';
    s[k] = 0;
    return s;
}

static void test_write_and_read(void) {
    char path[600];
    tu_path(path, sizeof path, "attrs.h5");
    char *spec = make_json(100000); /* beyond HDF5's 64 KiB compact attribute storage */
    const char *utf8 = "caf\xc3\xa9 \xe2\x88\x91 \xe6\x97\xa5\xe6\x9c\xac"; /* café ∑ 日本 */

    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_RESULTS, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "", "spec", spec), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "/", "utf8", utf8), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "", "empty", ""), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "", "versions", ckpt_hdf5_version()), CKPT_OK);
    /* Attributes on a group that does not exist yet: created. */
    const char *g = "stages/3/domains/add/test";
    CHECK_EQ_INT(ckpt_writer_set_attr_f64(w, g, "ece", 0.125), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_f64(w, g, "nan", NAN), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_f64(w, g, "ninf", -INFINITY), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_i64(w, g, "n", INT64_MIN), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_i64(w, g, "max", INT64_MAX), CKPT_OK);
    /* Replacement, also with another type. */
    CHECK_EQ_INT(ckpt_writer_set_attr_f64(w, g, "ece", 0.25), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, g, "max", "replaced"), CKPT_OK);
    /* On a dataset; and "format" is reserved only at the root. */
    int64_t d1[1] = {3};
    double conf[3] = {0.1, 0.5, 0.9};
    CHECK_EQ_INT(
        ckpt_writer_write(w, "stages/3/domains/add/test/confidence", CKPT_DTYPE_F64, 1, d1, conf),
        CKPT_OK);
    CHECK_EQ_INT(
        ckpt_writer_set_attr_str(w, "stages/3/domains/add/test/confidence", "units", "probability"),
        CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "stages", "format", "a group attribute"), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);

    ckpt_reader *r = NULL;
    ckpt_error err;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_RESULTS, 1, &err), CKPT_OK);
    if (!r) return;
    CHECK_EQ_STR(ckpt_reader_format(r), CKPT_FORMAT_RESULTS);
    CHECK_EQ_INT(ckpt_reader_format_version(r), 1);
    char *s = NULL;
    CHECK_EQ_INT(ckpt_reader_attr_str(r, "", CKPT_ATTR_FORMAT, &s), CKPT_OK);
    CHECK_EQ_STR(s, CKPT_FORMAT_RESULTS);
    free(s);
    int64_t i = 0;
    CHECK_EQ_INT(ckpt_reader_attr_i64(r, "/", CKPT_ATTR_FORMAT_VERSION, &i), CKPT_OK);
    CHECK_EQ_INT(i, 1);
    s = NULL;
    CHECK_EQ_INT(ckpt_reader_attr_str(r, "", "spec", &s), CKPT_OK);
    CHECK(s && strlen(s) == 100000 && strcmp(s, spec) == 0);
    free(s);
    s = NULL;
    CHECK_EQ_INT(ckpt_reader_attr_str(r, "", "utf8", &s), CKPT_OK);
    CHECK_EQ_STR(s, utf8);
    free(s);
    s = NULL;
    CHECK_EQ_INT(ckpt_reader_attr_str(r, "", "empty", &s), CKPT_OK);
    CHECK_EQ_STR(s, "");
    free(s);
    double f = 0;
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, g, "ece", &f), CKPT_OK);
    CHECK(f == 0.25);
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, g, "nan", &f), CKPT_OK);
    CHECK(isnan(f));
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, g, "ninf", &f), CKPT_OK);
    CHECK(isinf(f) && f < 0);
    CHECK_EQ_INT(ckpt_reader_attr_i64(r, g, "n", &i), CKPT_OK);
    CHECK(i == INT64_MIN);
    s = NULL;
    CHECK_EQ_INT(ckpt_reader_attr_str(r, g, "max", &s), CKPT_OK);
    CHECK_EQ_STR(s, "replaced");
    free(s);
    s = NULL;
    CHECK_EQ_INT(ckpt_reader_attr_str(r, "stages/3/domains/add/test/confidence", "units", &s),
                 CKPT_OK);
    CHECK_EQ_STR(s, "probability");
    free(s);
    ckpt_kind k = CKPT_KIND_OTHER;
    CHECK_EQ_INT(ckpt_reader_kind(r, g, &k), CKPT_OK);
    CHECK_EQ_INT(k, CKPT_KIND_GROUP);

    /* Listing, by name, with types. */
    ckpt_list l = {0};
    CHECK_EQ_INT(ckpt_reader_list_attrs(r, g, &l), CKPT_OK);
    const char *names[] = {"ece", "max", "n", "nan", "ninf"};
    const int types[] = {CKPT_ATTR_FLOAT, CKPT_ATTR_STR, CKPT_ATTR_INT, CKPT_ATTR_FLOAT,
                         CKPT_ATTR_FLOAT};
    CHECK_EQ_INT(l.n, 5);
    for (size_t j = 0; j < l.n && j < 5; j++) {
        CHECK_EQ_STR(l.v[j].name, names[j]);
        CHECK_EQ_INT(l.v[j].type, types[j]);
    }
    ckpt_list_free(&l);
    CHECK(l.v == NULL && l.n == 0);
    CHECK_EQ_INT(ckpt_reader_list_attrs(r, "", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, 6); /* empty, format, format_version, spec, utf8, versions */
    ckpt_list_free(&l);

    /* Errors. */
    CHECK_EQ_INT(ckpt_reader_attr_i64(r, g, "missing", &i), CKPT_ERR_NOTFOUND);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "attrs.h5: 'stages/3/domains/add/test' has no "
                                          "attribute 'missing'");
    CHECK_EQ_INT(ckpt_reader_attr_i64(r, g, "ece", &i), CKPT_ERR_DTYPE);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "attribute 'ece' of 'stages/3/domains/add/test' is not "
                                          "an integer scalar");
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, g, "n", &f), CKPT_ERR_DTYPE);
    CHECK_EQ_INT(ckpt_reader_attr_str(r, g, "n", &s), CKPT_ERR_DTYPE);
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, "stages/9", "ece", &f), CKPT_ERR_NOTFOUND);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "no object 'stages/9'");
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, g, "", &f), CKPT_ERR_ARG);
    ckpt_reader_free(r);
    free(spec);
}

static void test_reserved_and_sticky(void) {
    char path[600];
    tu_path(path, sizeof path, "reserved.h5");
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_set_attr_i64(w, "", CKPT_ATTR_FORMAT_VERSION, 7), CKPT_ERR_ARG);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "reserved.h5: the root attribute 'format_version' is "
                                          "reserved");
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_ERR_ARG);
    ckpt_writer_free(w);
    CHECK(!tu_exists(path));

    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "/", CKPT_ATTR_FORMAT, "x"), CKPT_ERR_ARG);
    ckpt_writer_free(w);
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "g", "s", NULL), CKPT_ERR_ARG);
    CHECK_CONTAINS(ckpt_writer_errmsg(w), "value is NULL");
    ckpt_writer_free(w);
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_CHECKPOINT, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    CHECK_EQ_INT(ckpt_writer_set_attr_f64(w, "g", "", 1.0), CKPT_ERR_ARG);
    ckpt_writer_free(w);
    CHECK(!tu_exists(path));
}

/* A file written with plain HDF5, as h5py would: fixed-length string attributes, int32 and
 * float32 attributes. */
static void test_foreign_attribute_types(void) {
    char path[600];
    tu_path(path, sizeof path, "plain.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0);
    if (f < 0) return;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, strlen(CKPT_FORMAT_CHECKPOINT));
    H5Tset_strpad(st, H5T_STR_NULLPAD);
    hid_t a = H5Acreate2(f, CKPT_ATTR_FORMAT, st, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, st, CKPT_FORMAT_CHECKPOINT);
    H5Aclose(a);
    int32_t v32 = 1;
    a = H5Acreate2(f, CKPT_ATTR_FORMAT_VERSION, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, &v32);
    H5Aclose(a);
    float f32 = 0.5f;
    a = H5Acreate2(f, "half", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_FLOAT, &f32);
    H5Aclose(a);
    hsize_t two = 2;
    hid_t sp2 = H5Screate_simple(1, &two, NULL);
    int64_t pair[2] = {1, 2};
    a = H5Acreate2(f, "pair", H5T_STD_I64LE, sp2, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, pair);
    H5Aclose(a);
    int32_t i32[2] = {5, 6};
    hid_t ds = H5Dcreate2(f, "ints32", H5T_STD_I32LE, sp2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, i32);
    H5Dclose(ds);
    H5Sclose(sp2);
    H5Tclose(st);
    H5Sclose(sp);
    H5Fclose(f);

    ckpt_reader *r = NULL;
    ckpt_error err;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, &err), CKPT_OK);
    if (!r) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_STR(ckpt_reader_format(r), CKPT_FORMAT_CHECKPOINT);
    CHECK_EQ_INT(ckpt_reader_format_version(r), 1);
    double d = 0;
    CHECK_EQ_INT(ckpt_reader_attr_f64(r, "", "half", &d), CKPT_OK);
    CHECK(d == 0.5);
    int64_t i = 0;
    CHECK_EQ_INT(ckpt_reader_attr_i64(r, "", CKPT_ATTR_FORMAT_VERSION, &i), CKPT_OK);
    CHECK_EQ_INT(i, 1);
    CHECK_EQ_INT(ckpt_reader_attr_i64(r, "", "pair", &i), CKPT_ERR_DTYPE); /* not a scalar */
    ckpt_list l = {0};
    CHECK_EQ_INT(ckpt_reader_list(r, "", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, 1);
    ckpt_list_free(&l);
    /* A dataset of a type outside the four: described, not read. */
    ckpt_info info;
    CHECK_EQ_INT(ckpt_reader_info(r, "ints32", &info), CKPT_OK);
    CHECK_EQ_INT(info.dtype, CKPT_DTYPE_OTHER);
    CHECK_EQ_INT(info.nelems, 2);
    int64_t i64[2];
    CHECK_EQ_INT(ckpt_reader_read(r, "ints32", CKPT_DTYPE_I64, i64, 2), CKPT_ERR_DTYPE);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "plain.h5: dataset 'ints32' has a type this API does "
                                          "not read");
    ckpt_reader_free(r);
}

int main(void) {
    test_write_and_read();
    test_reserved_and_sticky();
    test_foreign_attribute_types();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_attrs");
}
