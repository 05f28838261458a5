/* test_docs_examples: the examples the docs show are valid as written. docs/spec.md's JSON block
 * is experiments/scratch.json verbatim and parses as an experiment; docs/sweep.md's JSON block
 * parses as a sweep whose experiment path is read from experiments/ (every one of its cells is
 * validated as caopd run would). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "harness/run/spec.h"
#include "harness/run/sweep.h"

static char *slurp_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) free(b), b = NULL;
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}

/* The first ```json block of the Markdown file at path (malloc'd), or NULL. */
static char *json_block(const char *path) {
    char *md = slurp_file(path);
    CHECK_MSG(md != NULL, "cannot read %s", path);
    if (!md) return NULL;
    char *a = strstr(md, "```json\n"), *out = NULL;
    char *b = a ? strstr(a + 8, "```") : NULL;
    CHECK_MSG(a && b, "%s: no ```json block", path);
    if (a && b) {
        a += 8;
        out = malloc((size_t)(b - a) + 1);
        memcpy(out, a, (size_t)(b - a));
        out[b - a] = '\0';
    }
    free(md);
    return out;
}

static void test_spec_example(void) {
    char *block = json_block(DOCS_DIR "/spec.md");
    char *file = slurp_file(EXPERIMENTS_DIR "/scratch.json");
    CHECK(file != NULL);
    if (!block || !file) {
        free(block), free(file);
        return;
    }
    CHECK_MSG(strcmp(block, file) == 0,
              "docs/spec.md's example is not experiments/scratch.json verbatim:\n%s", block);
    static spec sp;
    char err[SPEC_ERR_CAP] = "";
    CHECK_MSG(spec_parse(block, &sp, err, sizeof err) == 0, "docs/spec.md's example: %s", err);
    CHECK_EQ_INT(sp.n_stages, 3);
    free(block), free(file);
}

static void test_sweep_example(void) {
    char *block = json_block(DOCS_DIR "/sweep.md");
    if (!block) return;
    sweep *s = NULL;
    char err[SWEEP_ERR_CAP] = "";
    CHECK_MSG(sweep_parse(block, EXPERIMENTS_DIR, NULL, &s, err, sizeof err) == 0,
              "docs/sweep.md's example: %s", err);
    CHECK_EQ_INT(sweep_n_cells(s), 144); /* the count the doc states */
    sweep_free(s);
    free(block);
}

int main(void) {
    test_spec_example();
    test_sweep_example();
    return check_report("test_docs_examples");
}
