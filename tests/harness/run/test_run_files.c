/* test_run_files: `caopd run --resume` and base.checkpoint with a truncated, corrupt, foreign,
 * too-new, empty-layout or mismatched HDF5 file: each ends with exit status 1 (never a
 * signal) and a message that names the file and says what is wrong. */
#include <fcntl.h>
#include <sys/file.h>

#include "tests/harness/run/run_testutil.h"

static char g_spec_path[600], g_partial[600];

static void copy_file(const char *from, const char *to, long max_bytes) {
    char *buf = NULL;
    FILE *f = fopen(from, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (max_bytes >= 0 && (long)got > max_bytes) got = (size_t)max_bytes;
    write_file(to, buf, got);
    free(buf);
}

/* A copy of the partial run in <g_tmp>/<name>. */
static void copy_run(const char *name, char *dir, size_t len) {
    snprintf(dir, len, "%s/%s", g_tmp, name);
    mkdir(dir, 0777);
    static const char *const files[] = {"spec.json", "results.h5", "checkpoint.h5", "log.jsonl"};
    for (int i = 0; i < 4; i++) {
        char a[800], b[800];
        snprintf(a, sizeof a, "%s/%s", g_partial, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        copy_file(a, b, -1);
    }
}

/* --resume dir must exit 1 with every string of want[] in its message. */
static void expect_resume_error(const char *dir, const char *const *want, int n) {
    const char *args[] = {"run", "--resume", dir, NULL};
    int st = run_caopd(NULL, args);
    char p[700];
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    char *err = slurp(p);
    CHECK_MSG(exited(st, 1), "%s: exit status %d (signaled %d): %s", dir,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st), err);
    for (int i = 0; i < n; i++)
        CHECK_MSG(strstr(err, want[i]) != NULL, "'%s' not in: %s", want[i], err);
    free(err);
}

static void write_h5(const char *path, const char *format, int version) {
    ckpt_writer *w = NULL;
    ckpt_error e;
    CHECK_MSG(ckpt_writer_open(&w, path, format, version, NULL, &e) == CKPT_OK, "%s", e.msg);
    CHECK(ckpt_writer_commit(w) == CKPT_OK);
    ckpt_writer_free(w);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void test_bad_checkpoints(void) {
    char dir[700], p[800];
    copy_run("truncated", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    char src[800];
    snprintf(src, sizeof src, "%s/checkpoint.h5", g_partial);
    copy_file(src, p, file_size(src) / 2);
    expect_resume_error(
        dir, (const char *[]){"checkpoint.h5: is truncated", "use an intact copy or rerun"}, 2);

    copy_run("garbage", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    write_file(p, "not a checkpoint\n", 17);
    expect_resume_error(dir, (const char *[]){"checkpoint.h5: is not an HDF5 file"}, 1);

    copy_run("empty", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    write_file(p, "", 0);
    expect_resume_error(dir, (const char *[]){"checkpoint.h5: is empty (0 bytes)"}, 1);

    copy_run("foreign", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    snprintf(src, sizeof src, "%s/results.h5", g_partial);
    copy_file(src, p, -1);
    expect_resume_error(dir, (const char *[]){"is a 'caopd-results' file, not 'caopd-checkpoint'"},
                        1);

    copy_run("newer", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    write_h5(p, CKPT_FORMAT_CHECKPOINT, 2);
    expect_resume_error(dir,
                        (const char *[]){"format_version 2 is newer than this build reads (1)"}, 1);

    copy_run("hollow", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    write_h5(p, CKPT_FORMAT_CHECKPOINT, 1);
    expect_resume_error(dir, (const char *[]){"the checkpoint is not one of `caopd run`"}, 1);

    copy_run("bad_results", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/results.h5", dir);
    snprintf(src, sizeof src, "%s/results.h5", g_partial);
    copy_file(src, p, 3000);
    expect_resume_error(dir, (const char *[]){"results.h5: is truncated"}, 1);

    copy_run("other_spec", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/spec.json", dir);
    char *spec = slurp(g_spec_path);
    char *seed = strstr(spec, "\"seed\": 3");
    if (seed) seed[8] = '4';
    write_file(p, spec, strlen(spec));
    free(spec);
    expect_resume_error(dir,
                        (const char *[]){"was written for another spec than",
                                         "restore the spec the run started with"},
                        2);

    snprintf(dir, sizeof dir, "%s/nothing_here", g_tmp);
    mkdir(dir, 0777);
    expect_resume_error(dir, (const char *[]){"no spec.json; this is not a run directory"}, 1);
}

/* A spec whose base stage loads `path`, with the model section `model`. */
static void expect_base_error(const char *name, const char *path, const char *model,
                              const char *want) {
    char text[2048], sp[700], dir[700];
    snprintf(text, sizeof text,
             "{\"format\": \"caopd-experiment\", \"version\": 1, \"threads\": 1, \"model\": %s,\n"
             " \"base\": {\"checkpoint\": \"%s\"},\n"
             " \"defaults\": {\"steps\": 1, \"batch\": 2, \"k\": 2, \"max_new\": 24},\n"
             " \"stages\": [{\"domain\": \"add\"}], \"eval\": {\"n\": 2, \"max_new\": 24}}\n",
             model, path);
    snprintf(sp, sizeof sp, "%s/%s.json", g_tmp, name);
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    write_file(sp, text, strlen(text));
    const char *args[] = {"run", sp, "--out", dir, NULL};
    int st = run_caopd(NULL, args);
    char p[700];
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    char *err = slurp(p);
    if (want) {
        CHECK_MSG(exited(st, 1), "%s: status %d: %s", name, st, err);
        CHECK_MSG(strstr(err, want) != NULL, "'%s' not in: %s", want, err);
    } else {
        CHECK_MSG(exited(st, 0), "%s: status %d: %s", name, st, err);
    }
    free(err);
}

/* caopd run SPEC --check: validates the spec and its base checkpoint, writes nothing. */
static void expect_check(const char *name, const char *ck, const char *model, int code,
                         const char *want) {
    char text[2048], sp[700], dir[700], p[700];
    snprintf(text, sizeof text,
             "{\"format\": \"caopd-experiment\", \"version\": 1, \"threads\": 1, \"model\": %s,\n"
             " \"base\": {\"checkpoint\": \"%s\"}, \"output\": \"%s/%s-out\",\n"
             " \"defaults\": {\"steps\": 1, \"batch\": 2, \"k\": 2, \"max_new\": 24},\n"
             " \"stages\": [{\"domain\": \"add\"}], \"eval\": {\"n\": 2, \"max_new\": 24}}\n",
             model, ck, g_tmp, name);
    snprintf(sp, sizeof sp, "%s/%s.json", g_tmp, name);
    snprintf(dir, sizeof dir, "%s/%s-out", g_tmp, name);
    write_file(sp, text, strlen(text));
    const char *args[] = {"run", sp, "--check", NULL};
    int st = run_caopd(NULL, args);
    snprintf(p, sizeof p, "%s/%s", g_tmp, code ? "err.txt" : "out.txt");
    char *out = slurp(p);
    CHECK_MSG(exited(st, code), "%s: status %d: %s", name, st, out);
    CHECK_MSG(strstr(out, want) != NULL, "'%s' not in: %s", want, out);
    CHECK_MSG(access(dir, F_OK) != 0, "%s: --check created %s", name, dir);
    free(out);
}

static void test_check(void) {
    char ck[800];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", g_partial);
    const char *tiny = "{\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2}";
    expect_check("check_ok", ck, tiny, 0, "valid: 1 domain stage, base ");
    expect_check("check_model", ck, "{\"n_embd\": 32, \"n_layer\": 1, \"n_head\": 2}", 2,
                 "holds a model of n_embd 16, n_layer 1, n_head 2, block_size 256; make the spec's "
                 "model section match");
    expect_check("check_missing", "/nonexistent/ck.h5", tiny, 2,
                 "base.checkpoint: /nonexistent/ck.h5: no such file");
}

static void test_base_checkpoint(void) {
    char ck[800], res[800];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", g_partial);
    snprintf(res, sizeof res, "%s/results.h5", g_partial);
    const char *tiny = "{\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2}";
    expect_base_error("base_ok", ck, tiny, NULL);
    expect_base_error("base_foreign", res, tiny, "base.checkpoint: ");
    expect_base_error("base_foreign2", res, tiny,
                      "is a 'caopd-results' file, not 'caopd-checkpoint'");
    expect_base_error(
        "base_model", ck, "{\"n_embd\": 32, \"n_layer\": 1, \"n_head\": 2}",
        "model has vocab 99, block_size 256, n_layer 1, n_head 2, n_embd 16; the spec asks for 99, "
        "256, 1, 2, 32: make the spec's model section match");
    expect_base_error("base_missing", "/nonexistent/ck.h5", tiny,
                      "/nonexistent/ck.h5: no such file");
}

/* The release binary has no test hooks: build/caopd ignores CAOPD_CRASH_AT and finishes the run
 * that caopd-test was killed in (at the same point it would have been killed again). */
static void test_release_has_no_hooks(void) {
    char out[700];
    snprintf(out, sizeof out, "%s/release.txt", g_tmp);
    pid_t pid = spawn_exe(CAOPD_RELEASE_EXE, out, out, "1:3",
                          (const char *[]){"run", "--resume", g_partial, NULL});
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "build/caopd with CAOPD_CRASH_AT: status %d (see %s)", st, out);
}

int main(void) {
    make_tmpdir("test_run_files");
    snprintf(g_spec_path, sizeof g_spec_path, "%s/spec.json", g_tmp);
    write_file(g_spec_path, tiny_spec, strlen(tiny_spec));
    snprintf(g_partial, sizeof g_partial, "%s/partial", g_tmp);
    const char *args[] = {"run", g_spec_path, "--out", g_partial, NULL};
    int st = run_caopd("1:3", args); /* checkpoint (1, 2) on disk */
    CHECK_MSG(killed_by_sigkill(st), "the partial run should have been killed (status %d)", st);
    { /* progress explains P_acc once, at the first on-policy stage */
        char p[700];
        snprintf(p, sizeof p, "%s/err.txt", g_tmp);
        char *err = slurp(p);
        const char *legend = "(P_acc: the share of each prompt's K rollouts that are correct";
        const char *first = strstr(err, legend);
        CHECK_MSG(first && !strstr(first + 1, legend), "%s", err);
        free(err);
        /* the killed run left its run.lock, which nobody holds now (caopd analyze: "stopped") */
        snprintf(p, sizeof p, "%s/run.lock", g_partial);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        CHECK_MSG(fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) == 0, "%s should exist and be free", p);
        if (fd >= 0) close(fd);
    }
    test_bad_checkpoints();
    test_base_checkpoint();
    test_check();
    test_release_has_no_hooks();
    tmpdir_finish(g_tmp);
    return check_report("test_run_files");
}
