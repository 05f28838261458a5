/* test_ckpt_list: group listings in creation order (stage 10 after stage 9, not after stage 1),
 * across appends, with kinds; a dangling link; and the listing errors. */
#include <hdf5.h>
#include <stdint.h>

#include "tests/checkpoints/ckpt_testutil.h"

static void write_stages(ckpt_writer *w, int from, int to) {
    char p[128];
    for (int s = from; s <= to; s++) {
        double x[2] = {s, s + 0.5};
        int64_t d[1] = {2};
        snprintf(p, sizeof p, "stages/%d/domains/add/test/confidence", s);
        CHECK_EQ_INT(ckpt_writer_write(w, p, CKPT_DTYPE_F64, 1, d, x), CKPT_OK);
        snprintf(p, sizeof p, "stages/%d/loss", s);
        CHECK_EQ_INT(ckpt_writer_write(w, p, CKPT_DTYPE_F64, 1, d, x), CKPT_OK);
    }
}

static void check_stages(const char *path, int n) {
    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_RESULTS, 1, NULL), CKPT_OK);
    if (!r) return;
    ckpt_list l = {0};
    CHECK_EQ_INT(ckpt_reader_list(r, "stages", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, n);
    char want[24];
    for (size_t i = 0; i < l.n; i++) {
        snprintf(want, sizeof want, "%zu", i + 1);
        CHECK_EQ_STR(l.v[i].name, want);
        CHECK_EQ_INT(l.v[i].type, CKPT_KIND_GROUP);
    }
    ckpt_list_free(&l);
    /* A stage group holds a group and a dataset, in creation order. */
    CHECK_EQ_INT(ckpt_reader_list(r, "/stages/1/", &l), CKPT_ERR_ARG); /* trailing '/' */
    CHECK_EQ_INT(ckpt_reader_list(r, "/stages/1", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_STR(l.v[0].name, "domains");
        CHECK_EQ_INT(l.v[0].type, CKPT_KIND_GROUP);
        CHECK_EQ_STR(l.v[1].name, "loss");
        CHECK_EQ_INT(l.v[1].type, CKPT_KIND_DATASET);
    }
    ckpt_list_free(&l);
    ckpt_reader_free(r);
}

static void test_creation_order(void) {
    char path[600];
    tu_path(path, sizeof path, "results.h5");
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_RESULTS, 1, NULL, NULL), CKPT_OK);
    if (!w) return;
    write_stages(w, 1, 12);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);
    check_stages(path, 12);

    /* Two appends keep the order: 13 and 14 come last. */
    for (int s = 13; s <= 14; s++) {
        CHECK_EQ_INT(ckpt_writer_open_append(&w, path, CKPT_FORMAT_RESULTS, 1, NULL, NULL),
                     CKPT_OK);
        if (!w) return;
        write_stages(w, s, s);
        CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
        ckpt_writer_free(w);
    }
    check_stages(path, 14);

    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_RESULTS, 1, NULL), CKPT_OK);
    if (!r) return;
    ckpt_list l = {0};
    CHECK_EQ_INT(ckpt_reader_list(r, "", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, 1);
    if (l.n == 1) CHECK_EQ_STR(l.v[0].name, "stages");
    ckpt_list_free(&l);
    ckpt_kind k;
    CHECK_EQ_INT(ckpt_reader_kind(r, "", &k), CKPT_OK);
    CHECK_EQ_INT(k, CKPT_KIND_GROUP);
    CHECK_EQ_INT(ckpt_reader_kind(r, "stages/14/loss", &k), CKPT_OK);
    CHECK_EQ_INT(k, CKPT_KIND_DATASET);
    CHECK_EQ_INT(ckpt_reader_kind(r, "stages/15", &k), CKPT_ERR_NOTFOUND);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "results.h5: no object 'stages/15'");
    CHECK_EQ_INT(ckpt_reader_kind(r, "stages/15/loss", &k), CKPT_ERR_NOTFOUND);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "('stages/15' does not exist)");
    CHECK_EQ_INT(ckpt_reader_list(r, "stages/1/loss", &l), CKPT_ERR_EXISTS);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "'stages/1/loss' is a dataset, not a group");
    CHECK_EQ_INT(ckpt_reader_list(r, "stages/99", &l), CKPT_ERR_NOTFOUND);
    CHECK(l.v == NULL);
    ckpt_info info;
    CHECK_EQ_INT(ckpt_reader_info(r, "stages/1", &info), CKPT_ERR_EXISTS);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "'stages/1' is a group, not a dataset");
    ckpt_reader_free(r);
}

static void test_dangling_link(void) {
    char path[600];
    tu_path(path, sizeof path, "links.h5");
    CHECK_EQ_INT(tu_write_small(path, 1), CKPT_OK);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0);
    if (f < 0) return;
    CHECK(H5Lcreate_soft("/nowhere", f, "dangling", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);

    ckpt_reader *r = NULL;
    CHECK_EQ_INT(ckpt_reader_open(&r, path, CKPT_FORMAT_CHECKPOINT, 1, NULL), CKPT_OK);
    if (!r) return;
    ckpt_list l = {0};
    CHECK_EQ_INT(ckpt_reader_list(r, "", &l), CKPT_OK);
    CHECK_EQ_INT(l.n, 3); /* w, step, dangling in creation order */
    if (l.n == 3) {
        CHECK_EQ_STR(l.v[0].name, "w");
        CHECK_EQ_INT(l.v[0].type, CKPT_KIND_DATASET);
        CHECK_EQ_STR(l.v[2].name, "dangling");
        CHECK_EQ_INT(l.v[2].type, CKPT_KIND_OTHER);
    }
    ckpt_list_free(&l);
    ckpt_kind k = CKPT_KIND_GROUP;
    CHECK_EQ_INT(ckpt_reader_kind(r, "dangling", &k), CKPT_OK);
    CHECK_EQ_INT(k, CKPT_KIND_OTHER);
    float v[12];
    CHECK_EQ_INT(ckpt_reader_read(r, "dangling", CKPT_DTYPE_F32, v, 12), CKPT_ERR_HDF5);
    CHECK_CONTAINS(ckpt_reader_errmsg(r), "'dangling' cannot be opened");
    ckpt_reader_free(r);
}

int main(void) {
    test_creation_order();
    test_dangling_link();
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_list");
}
