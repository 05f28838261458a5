/* test_ckpt_h5dump: files written by this library are plain HDF5 that the stock tools read:
 * h5dump (hdf5-tools) prints the root attributes, a compressed chunked dataset and a group
 * attribute with the values we wrote. Skipped, with a note, when h5dump is not on PATH. */
#include <stdint.h>

#include "tests/checkpoints/ckpt_testutil.h"

/* Runs cmd and returns its stdout+stderr (malloc'd) and exit status. */
static char *run(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    *status = pclose(p);
    return out;
}

int main(void) {
    if (system("command -v h5dump >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_ckpt_h5dump: h5dump not on PATH (install hdf5-tools); skipped\n");
        return check_report("test_ckpt_h5dump");
    }
    char path[600];
    tu_path(path, sizeof path, "dump.h5");
    ckpt_writer *w = NULL;
    CHECK_EQ_INT(ckpt_writer_open(&w, path, CKPT_FORMAT_RESULTS, 1, NULL, NULL), CKPT_OK);
    if (!w) {
        tmpdir_finish(tu_dir_buf);
        return check_report("test_ckpt_h5dump");
    }
    CHECK_EQ_INT(ckpt_writer_set_attr_str(w, "", "spec", "{\"seed\": 7}"), CKPT_OK);
    size_t n = 40000; /* 160 KB of float32: chunked + deflate */
    float *conf = malloc(n * sizeof *conf);
    for (size_t i = 0; i < n; i++)
        conf[i] = (float)(i % 4) * 0.25f;
    int64_t d[1] = {(int64_t)n};
    CHECK_EQ_INT(
        ckpt_writer_write(w, "stages/1/domains/add/test/confidence", CKPT_DTYPE_F32, 1, d, conf),
        CKPT_OK);
    uint8_t correct[5] = {1, 0, 1, 1, 0};
    int64_t d5[1] = {5};
    CHECK_EQ_INT(
        ckpt_writer_write(w, "stages/1/domains/add/test/correct", CKPT_DTYPE_U8, 1, d5, correct),
        CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_set_attr_f64(w, "stages/1/domains/add/test", "ece", 0.125), CKPT_OK);
    CHECK_EQ_INT(ckpt_writer_commit(w), CKPT_OK);
    ckpt_writer_free(w);
    free(conf);

    char cmd[1400];
    int status = -1;
    /* Attributes of the root. */
    snprintf(cmd, sizeof cmd, "h5dump -A '%s' 2>&1", path);
    char *out = run(cmd, &status);
    CHECK_EQ_INT(status, 0);
    CHECK_CONTAINS(out, "ATTRIBUTE \"format\"");
    CHECK_CONTAINS(out, "(0): \"caopd-results\"");
    CHECK_CONTAINS(out, "ATTRIBUTE \"format_version\"");
    CHECK_CONTAINS(out, "H5T_STD_I64LE");
    CHECK_CONTAINS(out, "(0): \"{\"seed\": 7}\""); /* h5dump does not escape quotes */
    CHECK_CONTAINS(out, "ATTRIBUTE \"ece\"");
    CHECK_CONTAINS(out, "(0): 0.125");
    free(out);
    /* The compressed dataset's layout and a slice of its values. */
    snprintf(cmd, sizeof cmd,
             "h5dump -p -d /stages/1/domains/add/test/confidence -s 0 -c 4 '%s' 2>&1", path);
    out = run(cmd, &status);
    CHECK_EQ_INT(status, 0);
    CHECK_CONTAINS(out, "H5T_IEEE_F32LE");
    CHECK_CONTAINS(out, "SIMPLE { ( 40000 ) / ( 40000 ) }");
    CHECK_CONTAINS(out, "CHUNKED ( 40000 )");
    CHECK_CONTAINS(out, "COMPRESSION DEFLATE { LEVEL 4 }");
    CHECK_CONTAINS(out, "PREPROCESSING SHUFFLE");
    CHECK_CONTAINS(out, "(0): 0, 0.25, 0.5, 0.75");
    free(out);
    snprintf(cmd, sizeof cmd, "h5dump -d /stages/1/domains/add/test/correct '%s' 2>&1", path);
    out = run(cmd, &status);
    CHECK_EQ_INT(status, 0);
    CHECK_CONTAINS(out, "H5T_STD_U8LE");
    CHECK_CONTAINS(out, "(0): 1, 0, 1, 1, 0");
    free(out);
    tmpdir_finish(tu_dir_buf);
    return check_report("test_ckpt_h5dump");
}
