/* test_docs_python: the h5py examples of docs/results.md, docs/hdf5.md and docs/sweep.md run as
 * written (only their file paths replaced) on files made now by caopd run and caopd sweep of a
 * tiny experiment, with the Debian python3 and python3-h5py (setup.sh installs them). Without
 * them the test says so and passes: the examples are documentation, not part of the build. */
#include "tests/harness/run/sweep_testutil.h"

/* The n-th ```python block of the Markdown file at path (malloc'd), or NULL. */
static char *python_block(const char *path, int nth) {
    char *md = slurp(path);
    char *a = md;
    for (int i = 0; a && i <= nth; i++) {
        a = strstr(a, "```python\n");
        if (a && i < nth) a += 10;
    }
    char *b = a ? strstr(a + 10, "```") : NULL;
    char *out = NULL;
    if (a && b) {
        a += 10;
        out = malloc((size_t)(b - a) + 1);
        memcpy(out, a, (size_t)(b - a));
        out[b - a] = '\0';
    }
    free(md);
    return out;
}

/* code with every occurrence of from replaced by to (malloc'd). */
static char *replace_all(const char *code, const char *from, const char *to) {
    size_t n = 0;
    for (const char *p = code; (p = strstr(p, from)); p += strlen(from))
        n++;
    char *out = malloc(strlen(code) + n * strlen(to) + 1), *o = out;
    for (const char *p = code;;) {
        const char *q = strstr(p, from);
        if (!q) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(q - p)), o += q - p;
        strcpy(o, to), o += strlen(to);
        p = q + strlen(from);
    }
    return out;
}

/* Runs the block with its path replaced; it must exit 0 and print something. */
static void run_block(const char *doc, int nth, const char *from, const char *to) {
    char *code = python_block(doc, nth);
    CHECK_MSG(code != NULL, "%s: no python block %d", doc, nth);
    if (!code) return;
    char *edited = replace_all(code, from, to);
    CHECK_MSG(strstr(code, from) != NULL, "%s: the example no longer names %s", doc, from);
    char py[700], out[700], cmd[2200];
    snprintf(py, sizeof py, "%s/example.py", g_tmp);
    snprintf(out, sizeof out, "%s/example.txt", g_tmp);
    write_file(py, edited, strlen(edited));
    snprintf(cmd, sizeof cmd, "cd '%s' && /usr/bin/python3 '%s' > '%s' 2>&1", g_tmp, py, out);
    int st = system(cmd);
    char *text = slurp(out);
    CHECK_MSG(st == 0 && text && text[0], "%s, python block %d, exit status %d:\n%s\n%s", doc, nth,
              st, edited, text ? text : "");
    free(text), free(edited), free(code);
}

int main(void) {
    if (system("/usr/bin/python3 -c 'import h5py' > /dev/null 2>&1") != 0) {
        printf("test_docs_python: /usr/bin/python3 with h5py is not installed (Debian: "
               "python3-h5py); skipped\n");
        return 0;
    }
    make_tmpdir("caopd_docs_python");
    char spec[600], run[700], sw[600], swdir[700];
    snprintf(spec, sizeof spec, "%s/tiny.json", g_tmp);
    write_file(spec, tiny_spec, strlen(tiny_spec));
    snprintf(run, sizeof run, "%s/run", g_tmp);
    int st = run_caopd(NULL, (const char *[]){"run", spec, "--out", run, NULL});
    CHECK_MSG(exited(st, 0), "caopd run: status %d", st);
    write_sweep("sweep.json", "docs", "{\"method\": [\"caopd\", \"sdft\"]}", sw, sizeof sw);
    snprintf(swdir, sizeof swdir, "%s/sweep", g_tmp);
    st = run_caopd(
        NULL, (const char *[]){"sweep", sw, "-j", "2", "--threads", "1", "--out", swdir, NULL});
    CHECK_MSG(exited(st, 0), "caopd sweep: status %d", st);

    char results[800], summary[800];
    snprintf(results, sizeof results, "%s/results.h5", run);
    snprintf(summary, sizeof summary, "%s/summary.h5", swdir);
    run_block(DOCS_DIR "/results.md", 0, "runs/scratch/results.h5", results);
    run_block(DOCS_DIR "/hdf5.md", 0, "\"results.h5\"", "\"run/results.h5\"");
    run_block(DOCS_DIR "/sweep.md", 0, "runs/ood-sweep/summary.h5", summary);
    tmpdir_finish(g_tmp);
    return check_report("test_docs_python");
}
