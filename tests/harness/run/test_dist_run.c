/* test_dist_run: data-parallel `caopd run` on localhost. Two processes (RANK 0/1, WORLD_SIZE 2)
 * reproduce the single-process run of the same spec and global batch: the same rollouts (token
 * counts equal in every step), the same loss curve within a stated tolerance, the same
 * evaluation; rank 1 writes nothing. A run whose rank 1 is killed stops rank 0 with a clear
 * message at once, and `--resume` with two processes (rank 1 without the run directory)
 * finishes identically, dataset for dataset, to the uninterrupted two-process run; resuming it
 * with one process gives the same curves within the tolerance. Errors without a hang: a batch
 * that does not divide by WORLD_SIZE, a second rank that never comes, ranks started with
 * different specs, rank 0 refusing the run directory, a bad RANK. */
#include "tests/harness/torch/dist_testutil.h"
#include "tests/harness/run/run_testutil.h"

/* Float reduction order differs: each rank sums its rows' losses and gradients, and the
 * all-reduce adds the ranks' float32 gradients, where one process sums all rows at once; the
 * parameters then drift apart by float32 rounding (~1e-7 relative per step). The KL losses of
 * the distillation stages are ~1e-3, differences of O(1) log-probabilities, so their rounding
 * is absolute (~1e-7), not relative. Observed: |d| <= 5e-7 on the base loss (~4.4), <= 2e-7 on
 * the KL losses and gradient norms; the tolerance allows ~10x that. */
#define TOL_ABS 1e-6
#define TOL_REL 1e-5

static const char dist_spec[] =
    "{\n"
    "  \"format\": \"caopd-experiment\", \"version\": 1, \"name\": \"dist\", \"seed\": 5, "
    "\"threads\": 1,\n"
    "  \"model\": {\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2},\n"
    "  \"base\": {\"steps\": 6, \"batch\": 4, \"lr\": 3e-3, \"warmup\": 1},\n"
    "  \"defaults\": {\"method\": \"caopd\", \"steps\": 4, \"batch\": 4, \"k\": 2, \"max_new\": "
    "24,\n"
    "               \"lr\": 1e-3, \"warmup\": 1, \"ema_alpha\": 0.1},\n"
    "  \"stages\": [{\"domain\": \"add\"}, {\"domain\": \"rev\", \"method\": \"sdft\", "
    "\"replay_frac\": 0.5}],\n"
    "  \"eval\": {\"n\": 8, \"max_new\": 26, \"ood_kinds\": [\"ood_length\"], \"ood_severities\": "
    "[1]},\n"
    "  \"snapshots\": {\"every_steps\": 2},\n"
    "  \"log\": {\"every_steps\": 100}\n"
    "}\n";

static char g_spec[600];

/* Starts caopd with args as rank `rank` of `world` (world 0: no data-parallel variables) with
 * stdout/stderr in <g_tmp>/<tag>.out/.err; crash_at goes to CAOPD_CRASH_AT. Returns the pid. */
static pid_t spawn(const char *tag, int rank, int world, int port, const char *timeout_s,
                   const char *crash_at, const char *const *args) {
    char out[700], err[700];
    snprintf(out, sizeof out, "%s/%s.out", g_tmp, tag);
    snprintf(err, sizeof err, "%s/%s.err", g_tmp, tag);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666),
            fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        dup2(fo, 1), dup2(fe, 2);
        const char *names[] = {"RANK",        "WORLD_SIZE",           "MASTER_ADDR",
                               "MASTER_PORT", "CAOPD_DIST_TIMEOUT_S", "CAOPD_CRASH_AT"};
        for (int i = 0; i < 6; i++)
            unsetenv(names[i]);
        if (world > 0) {
            char v[32];
            snprintf(v, sizeof v, "%d", rank), setenv("RANK", v, 1);
            snprintf(v, sizeof v, "%d", world), setenv("WORLD_SIZE", v, 1);
            snprintf(v, sizeof v, "%d", port), setenv("MASTER_PORT", v, 1);
            setenv("MASTER_ADDR", "127.0.0.1", 1);
        }
        setenv("CAOPD_DIST_TIMEOUT_S", timeout_s ? timeout_s : "60", 1);
        if (crash_at) setenv("CAOPD_CRASH_AT", crash_at, 1);
        setenv("OMP_WAIT_POLICY", "passive", 1);
        const char *argv[16] = {CAOPD_EXE};
        int n = 1;
        for (int i = 0; args[i] && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(CAOPD_EXE, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_for(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static char *read_tag(const char *tag, const char *ext) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s.%s", g_tmp, tag, ext);
    return slurp(p);
}

/* Two ranks of `caopd run` with args0 (rank 0) and args1 (rank 1); statuses into st[2]. */
static void run_pair(const char *tag, const char *const *args0, const char *const *args1,
                     const char *crash1, int st[2]) {
    int port = free_port();
    char t0[64], t1[64];
    snprintf(t0, sizeof t0, "%s_r0", tag);
    snprintf(t1, sizeof t1, "%s_r1", tag);
    pid_t p0 = spawn(t0, 0, 2, port, NULL, NULL, args0);
    pid_t p1 = spawn(t1, 1, 2, port, NULL, crash1, args1);
    st[0] = wait_for(p0);
    st[1] = wait_for(p1);
}

/* ---- comparing curves ---- */

static double g_max_dev[3]; /* largest |d| seen: base loss, distillation losses, others */

static void read_f64(ckpt_reader *r, const char *path, double *v, int n) {
    CHECK_MSG(ckpt_reader_read(r, path, CKPT_DTYPE_F64, v, (size_t)n) == CKPT_OK, "%s: %s", path,
              ckpt_reader_errmsg(r));
}

/* The curves of stages 0..2 of run dir a against dir b: integer columns (token counts: the
 * rollouts) exactly, rates of the rollouts to 1e-12, the rest within the tolerance. */
static void compare_curves(const char *a, const char *b, const char *what) {
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/results.h5", a);
    snprintf(pb, sizeof pb, "%s/results.h5", b);
    ckpt_reader *ra = NULL, *rb = NULL;
    ckpt_error ea, eb;
    CHECK_MSG(ckpt_reader_open(&ra, pa, CKPT_FORMAT_RESULTS, 3, &ea) == CKPT_OK, "%s", ea.msg);
    CHECK_MSG(ckpt_reader_open(&rb, pb, CKPT_FORMAT_RESULTS, 3, &eb) == CKPT_OK, "%s", eb.msg);
    if (!ra || !rb) {
        ckpt_reader_free(ra), ckpt_reader_free(rb);
        return;
    }
    static const char *const exact[] = {"step", "new_tokens", "train_tokens"};
    static const char *const rates[] = {"mean_p_acc", "format_adherence", "mean_confidence", "lr"};
    static const char *const close[] = {"loss",
                                        "kl",
                                        "grad_norm",
                                        "student_ent_answer",
                                        "student_ent_conf",
                                        "teacher_ent_answer",
                                        "teacher_ent_conf"};
    const int steps[3] = {6, 4, 4};
    int64_t tokens = 0;
    for (int s = 0; s < 3; s++) {
        char p[128];
        double x[8], y[8];
        int64_t ix[8], iy[8];
        for (size_t c = 0; c < sizeof exact / sizeof *exact; c++) {
            snprintf(p, sizeof p, "stages/%d/curves/%s", s, exact[c]);
            CHECK(ckpt_reader_read(ra, p, CKPT_DTYPE_I64, ix, (size_t)steps[s]) == CKPT_OK);
            CHECK(ckpt_reader_read(rb, p, CKPT_DTYPE_I64, iy, (size_t)steps[s]) == CKPT_OK);
            for (int k = 0; k < steps[s]; k++) {
                CHECK_MSG(ix[k] == iy[k], "%s: %s[%d] %lld vs %lld", what, p, k, (long long)ix[k],
                          (long long)iy[k]);
                if (c == 2) tokens += ix[k];
            }
        }
        for (size_t c = 0; c < sizeof rates / sizeof *rates; c++) {
            snprintf(p, sizeof p, "stages/%d/curves/%s", s, rates[c]);
            read_f64(ra, p, x, steps[s]), read_f64(rb, p, y, steps[s]);
            for (int k = 0; k < steps[s]; k++)
                CHECK_MSG(fabs(x[k] - y[k]) <= 1e-12, "%s: %s[%d] %.17g vs %.17g", what, p, k, x[k],
                          y[k]);
        }
        for (size_t c = 0; c < sizeof close / sizeof *close; c++) {
            snprintf(p, sizeof p, "stages/%d/curves/%s", s, close[c]);
            read_f64(ra, p, x, steps[s]), read_f64(rb, p, y, steps[s]);
            for (int k = 0; k < steps[s]; k++) {
                const double d = fabs(x[k] - y[k]);
                CHECK_MSG(d <= TOL_ABS + TOL_REL * fabs(x[k]),
                          "%s: %s[%d] %.10g vs %.10g (|d| %.3g)", what, p, k, x[k], y[k], d);
                const int slot = c == 0 ? (s == 0 ? 0 : 1) : 2;
                if (d > g_max_dev[slot]) g_max_dev[slot] = d;
            }
        }
    }
    CHECK_MSG(tokens > 50, "%s: only %lld trained tokens", what, (long long)tokens);
    /* the evaluation (rank 0 alone, greedy) of the same weights up to rounding: identical */
    static const char *const dom[] = {"add", "rev"}, *const split[] = {"test", "ood_length_1"};
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 2; d++)
            for (int k = 0; k < 2; k++) {
                char p[160];
                int64_t ca[8], cb[8];
                snprintf(p, sizeof p, "stages/%d/domains/%s/%s/n_tokens", s, dom[d], split[k]);
                CHECK(ckpt_reader_read(ra, p, CKPT_DTYPE_I64, ca, 8) == CKPT_OK);
                CHECK(ckpt_reader_read(rb, p, CKPT_DTYPE_I64, cb, 8) == CKPT_OK);
                CHECK_MSG(memcmp(ca, cb, sizeof ca) == 0, "%s: %s differs", what, p);
            }
    ckpt_reader_free(ra), ckpt_reader_free(rb);
}

static int dir_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int main(void) {
    make_tmpdir("caopd_dist");
    snprintf(g_spec, sizeof g_spec, "%s/spec.json", g_tmp);
    write_file(g_spec, dist_spec, strlen(dist_spec));
    char one[700], two[700], two_r1[700], crash[700], crash_r1[700], crash1p[700];
    snprintf(one, sizeof one, "%s/one", g_tmp);
    snprintf(two, sizeof two, "%s/two", g_tmp);
    snprintf(two_r1, sizeof two_r1, "%s/two_rank1", g_tmp);
    snprintf(crash, sizeof crash, "%s/crash", g_tmp);
    snprintf(crash_r1, sizeof crash_r1, "%s/crash_rank1", g_tmp);
    snprintf(crash1p, sizeof crash1p, "%s/crash_one_process", g_tmp);

    /* the reference: one process */
    const char *a1[] = {"run", g_spec, "--out", one, NULL};
    double t0 = now_s();
    int st = wait_for(spawn("one", 0, 0, 0, NULL, NULL, a1));
    const double t_one = now_s() - t0;
    char *e = read_tag("one", "err");
    CHECK_MSG(exited(st, 0), "one process: %s", e);
    free(e);

    /* two processes, same global batch; rank 1 is pointed at another directory */
    const char *a2[] = {"run", g_spec, "--out", two, NULL},
               *a2r1[] = {"run", g_spec, "--out", two_r1, NULL};
    int sts[2];
    t0 = now_s();
    run_pair("two", a2, a2r1, NULL, sts);
    const double t_two = now_s() - t0;
    char *e0 = read_tag("two_r0", "err"), *e1 = read_tag("two_r1", "err"),
         *o1 = read_tag("two_r1", "out");
    CHECK_MSG(exited(sts[0], 0) && exited(sts[1], 0), "two processes: rank 0: %s\nrank 1: %s", e0,
              e1);
    CHECK_MSG(strstr(e0, "stage 2/2 rev (sdft)") != NULL, "rank 0 reports progress: %s", e0);
    CHECK_MSG(e1[0] == '\0' && o1[0] == '\0', "rank 1 is silent: \"%s\" \"%s\"", e1, o1);
    CHECK_MSG(!dir_exists(two_r1), "rank 1 created %s", two_r1);
    free(e0), free(e1), free(o1);
    char lp[760];
    snprintf(lp, sizeof lp, "%s/log.jsonl", two);
    char *log = slurp(lp);
    CHECK_MSG(strstr(log, "\"world_size\":2") != NULL, "log: %s", log);
    free(log);
    compare_curves(one, two, "two processes vs one");
    fprintf(stderr, "wall: one process %.2f s, two processes %.2f s\n", t_one, t_two);

    /* rank 1 killed after step 2 of stage 1: rank 0 stops at once with a message */
    const char *c0[] = {"run", g_spec, "--out", crash, NULL},
               *c1[] = {"run", g_spec, "--out", crash_r1, NULL};
    t0 = now_s();
    run_pair("crash", c0, c1, "1:2", sts);
    const double t_crash = now_s() - t0;
    e0 = read_tag("crash_r0", "err");
    CHECK_MSG(killed_by_sigkill(sts[1]), "rank 1 status %d", sts[1]);
    CHECK_MSG(exited(sts[0], 1), "rank 0 status %d: %s", sts[0], e0);
    CHECK_MSG(strstr(e0, "caopd run (rank 0 of 2): stage 1 (add), step 2") &&
                  strstr(e0, "has probably stopped"),
              "rank 0: %s", e0);
    CHECK_MSG(t_crash < 30, "the failure took %.1f s to show", t_crash);
    free(e0);
    /* resume with two processes; rank 1 is given a directory that does not exist */
    const char *r0[] = {"run", "--resume", crash, NULL},
               *r1[] = {"run", "--resume", crash_r1, NULL};
    run_pair("resume", r0, r1, NULL, sts);
    e0 = read_tag("resume_r0", "err"), e1 = read_tag("resume_r1", "err");
    CHECK_MSG(exited(sts[0], 0) && exited(sts[1], 0), "resume: rank 0: %s\nrank 1: %s", e0, e1);
    CHECK_MSG(strstr(e0, "resuming at stage 1, step 2") != NULL, "%s", e0);
    free(e0), free(e1);
    char a[760], b[760];
    snprintf(a, sizeof a, "%s/results.h5", two);
    snprintf(b, sizeof b, "%s/results.h5", crash);
    int n = cmp_files(a, b, CKPT_FORMAT_RESULTS);
    CHECK_MSG(n > 50, "only %d datasets compared", n);
    snprintf(a, sizeof a, "%s/checkpoint.h5", two);
    snprintf(b, sizeof b, "%s/checkpoint.h5", crash);
    n = cmp_files(a, b, CKPT_FORMAT_CHECKPOINT);
    CHECK_MSG(n > 20, "only %d checkpoint datasets compared", n);

    /* a checkpoint of a two-process run resumed by one process: the same run up to rounding */
    const char *d0[] = {"run", g_spec, "--out", crash1p, NULL};
    run_pair("crash2", d0, c1, "1:2", sts);
    CHECK_MSG(exited(sts[0], 1) && killed_by_sigkill(sts[1]), "statuses %d %d", sts[0], sts[1]);
    const char *r1p[] = {"run", "--resume", crash1p, NULL};
    st = wait_for(spawn("resume1", 0, 0, 0, NULL, NULL, r1p));
    e = read_tag("resume1", "err");
    CHECK_MSG(exited(st, 0) && strstr(e, "resuming at stage 1, step 2"), "status %d: %s", st, e);
    free(e);
    compare_curves(two, crash1p, "two processes, resumed by one");

    /* errors without a hang: a batch that does not divide by WORLD_SIZE (checked before joining) */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.json", g_tmp);
    char *text = strdup(dist_spec);
    char *q = strstr(text, "\"batch\": 4, \"k\"");
    q[9] = '3';
    write_file(bad, text, strlen(text));
    free(text);
    const char *ab[] = {"run", bad, "--out", crash_r1, NULL};
    t0 = now_s();
    st = wait_for(spawn("bad", 0, 2, free_port(), NULL, NULL, ab));
    e = read_tag("bad", "err");
    CHECK_MSG(exited(st, 2), "status %d: %s", st, e);
    CHECK_MSG(strstr(e, "stages[0].batch 3 does not divide among WORLD_SIZE = 2 processes"), "%s",
              e);
    CHECK_MSG(now_s() - t0 < 10, "%.1f s", now_s() - t0);
    free(e);
    /* rank 1 never comes: rank 0 gives up after CAOPD_DIST_TIMEOUT_S */
    const char *al[] = {"run", g_spec, "--out", crash_r1, NULL};
    t0 = now_s();
    st = wait_for(spawn("lonely", 0, 2, free_port(), "2", NULL, al));
    const double t_lonely = now_s() - t0;
    e = read_tag("lonely", "err");
    CHECK_MSG(exited(st, 1), "status %d: %s", st, e);
    CHECK_MSG(strstr(e, "rank 1 did not join the rendezvous") && strstr(e, "within 2 s"), "%s", e);
    CHECK_MSG(t_lonely >= 1.9 && t_lonely < 15, "%.1f s", t_lonely);
    free(e);
    /* rank 1 started with another spec: both stop, each saying why */
    char other[700];
    snprintf(other, sizeof other, "%s/other.json", g_tmp);
    text = strdup(dist_spec);
    q = strstr(text, "\"seed\": 5");
    q[8] = '6';
    write_file(other, text, strlen(text));
    free(text);
    const char *m0[] = {"run", g_spec, "--out", crash_r1, NULL},
               *m1[] = {"run", other, "--out", crash_r1, NULL};
    t0 = now_s();
    run_pair("mismatch", m0, m1, NULL, sts);
    e0 = read_tag("mismatch_r0", "err"), e1 = read_tag("mismatch_r1", "err");
    CHECK_MSG(exited(sts[0], 1) && exited(sts[1], 1), "statuses %d %d", sts[0], sts[1]);
    CHECK_MSG(strstr(e1, "the spec given to rank 1 differs from rank 0's"), "rank 1: %s", e1);
    CHECK_MSG(
        strstr(e0, "rank 1 of 2 stopped, so every rank stops: the spec given to rank 1 differs"),
        "rank 0: %s", e0);
    CHECK_MSG(now_s() - t0 < 30, "%.1f s", now_s() - t0);
    free(e0), free(e1);
    /* rank 0 refuses a directory that holds a run: rank 1 stops with its message */
    run_pair("held", a2, a2r1, NULL, sts);
    e1 = read_tag("held_r1", "err");
    CHECK_MSG(exited(sts[0], 1) && exited(sts[1], 1), "statuses %d %d", sts[0], sts[1]);
    CHECK_MSG(strstr(e1, "rank 0 could not start: ") && strstr(e1, "already holds a run"),
              "rank 1: %s", e1);
    free(e1);
    /* bad environment */
    const char *ae[] = {"run", g_spec, "--out", crash_r1, NULL};
    pid_t pe = spawn("badenv", 2, 2, free_port(), NULL, NULL, ae);
    st = wait_for(pe);
    e = read_tag("badenv", "err");
    CHECK_MSG(exited(st, 2) && strstr(e, "RANK='2' is not an integer in 0..1"), "status %d: %s", st,
              e);
    free(e);

    fprintf(stderr,
            "largest |difference| two vs one process: base loss %.3g, distillation loss %.3g, "
            "others %.3g\n",
            g_max_dev[0], g_max_dev[1], g_max_dev[2]);
    tmpdir_finish(g_tmp);
    return check_report("test_dist_run");
}
