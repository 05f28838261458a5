/* tw's data-parallel layer: two forked processes on localhost form a Gloo group and check every
 * collective's values (weighted gradient mean, sum/mean/max/min, broadcasts, barrier), that a
 * size mismatch fails on both ranks instead of hanging, and that a peer that never comes or
 * exits early, or a port already taken, gives a clear error within the timeout. Also: environment
 * parsing, and that tw_multinomial_rows draws, for any split of a batch, what one tw_multinomial
 * over the whole batch draws. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/check.h"
#include "tests/harness/torch/dist_testutil.h"
#include "harness/torch/tw.h"

static tw_dist_params params(int rank, int port, double timeout_s) {
    tw_dist_params p = tw_dist_params_default();
    p.rank = rank;
    p.world_size = 2;
    p.master_port = port;
    p.timeout_s = timeout_s;
    return p;
}

/* The body of each of the two ranks; returns the process exit status. */
static int rank_main(int rank, int port) {
    char err[1024];
    tw_dist *d = NULL;
    tw_dist_params p = params(rank, port, 30);
    CHECK_MSG(tw_dist_init(&p, &d, err, sizeof err) == TW_OK, "rank %d: %s", rank, err);
    if (!d) return check_report(rank ? "test_dist_tw rank 1" : "test_dist_tw rank 0");
    CHECK_EQ_INT(tw_dist_rank(d), rank);
    CHECK_EQ_INT(tw_dist_size(d), 2);

    /* host reductions */
    double v[3] = {1.0 + rank, -2.0 * rank, 0.5};
    CHECK_EQ_INT(tw_dist_allreduce_f64(d, v, 3, TW_DIST_SUM), TW_OK);
    CHECK(v[0] == 3.0 && v[1] == -2.0 && v[2] == 1.0);
    double m[2] = {(double)rank, 10.0 - rank};
    CHECK_EQ_INT(tw_dist_allreduce_f64(d, m, 2, TW_DIST_MAX), TW_OK);
    CHECK(m[0] == 1.0 && m[1] == 10.0);
    double mn[1] = {5.0 + rank};
    CHECK_EQ_INT(tw_dist_allreduce_f64(d, mn, 1, TW_DIST_MIN), TW_OK);
    CHECK(mn[0] == 5.0);
    double me[1] = {4.0 * rank};
    CHECK_EQ_INT(tw_dist_allreduce_f64(d, me, 1, TW_DIST_MEAN), TW_OK);
    CHECK(me[0] == 2.0);

    /* weighted gradient mean: loss_r = sum(a * c_r) [+ sum(b) on rank 0 only], weight r + 1 */
    tw_ctx *ctx = NULL;
    CHECK_EQ_INT(tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err), TW_OK);
    int64_t sh[1] = {4};
    float ones[4] = {1, 1, 1, 1};
    tw_tensor a = tw_from_f32(ctx, ones, 1, sh), b = tw_from_f32(ctx, ones, 1, sh);
    tw_set_requires_grad(ctx, a, 1);
    tw_set_requires_grad(ctx, b, 1);
    float c[4];
    for (int i = 0; i < 4; i++)
        c[i] = (float)(rank ? 10 * (i + 1) : i + 1);
    tw_tensor loss = tw_sum(ctx, tw_mul(ctx, a, tw_from_f32(ctx, c, 1, sh)));
    if (rank == 0) loss = tw_add(ctx, loss, tw_sum(ctx, b));
    CHECK_EQ_INT(tw_backward(ctx, loss), TW_OK);
    tw_tensor ps[2] = {a, b};
    double total = 0;
    CHECK_EQ_INT(tw_dist_allreduce_grads(d, ctx, ps, 2, rank + 1.0, &total), TW_OK);
    CHECK(total == 3.0);
    float ga[4] = {0}, gb[4] = {0};
    CHECK_EQ_INT(tw_copy_to_f32(ctx, tw_grad(ctx, a), ga, 4), TW_OK);
    CHECK(!tw_is_null(tw_grad(ctx, b))); /* rank 1 had none: it gets the reduced one */
    CHECK_EQ_INT(tw_copy_to_f32(ctx, tw_grad(ctx, b), gb, 4), TW_OK);
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(ga[i], (1.0 * (i + 1) + 2.0 * 10 * (i + 1)) / 3.0, 1e-5);
        CHECK_NEAR(gb[i], 1.0 / 3.0, 1e-6);
    }

    /* tensor all-reduce (mean) and broadcast from rank 1 */
    float xv[3] = {(float)rank, 2.0f * rank, 7.0f};
    int64_t sh3[1] = {3};
    tw_tensor x = tw_from_f32(ctx, xv, 1, sh3);
    CHECK_EQ_INT(tw_dist_allreduce(d, ctx, &x, 1, TW_DIST_MEAN), TW_OK);
    CHECK_EQ_INT(tw_copy_to_f32(ctx, x, xv, 3), TW_OK);
    CHECK(xv[0] == 0.5f && xv[1] == 1.0f && xv[2] == 7.0f);
    float yv[5] = {rank + 0.25f, rank + 1.25f, rank + 2.25f, rank + 3.25f, rank + 4.25f};
    int64_t sh2[2] = {1, 2}, sh3b[1] = {3};
    tw_tensor ys[2] = {tw_from_f32(ctx, yv, 2, sh2), tw_from_f32(ctx, yv + 2, 1, sh3b)};
    CHECK_EQ_INT(tw_dist_broadcast(d, ctx, ys, 2, 1), TW_OK);
    float got[5];
    CHECK_EQ_INT(tw_copy_to_f32(ctx, ys[0], got, 2), TW_OK);
    CHECK_EQ_INT(tw_copy_to_f32(ctx, ys[1], got + 2, 3), TW_OK);
    for (int i = 0; i < 5; i++)
        CHECK(got[i] == 1.0f + i + 0.25f);
    char text[16];
    snprintf(text, sizeof text, rank == 0 ? "from rank 0" : "not this one");
    CHECK_EQ_INT(tw_dist_broadcast_bytes(d, text, sizeof text, 0), TW_OK);
    CHECK_EQ_STR(text, "from rank 0");
    CHECK_EQ_INT(tw_dist_barrier(d), TW_OK);
    CHECK_EQ_INT(tw_dist_allreduce_f64(d, NULL, 0, TW_DIST_SUM),
                 TW_OK); /* nothing to do, on both */
    CHECK_EQ_INT(tw_dist_allreduce(d, ctx, NULL, 0, TW_DIST_SUM), TW_OK);

    /* a size mismatch fails on both ranks, with both counts, and the group stays failed */
    double w[4] = {0};
    tw_status s = tw_dist_allreduce_f64(d, w, 3 + rank, TW_DIST_SUM);
    CHECK_EQ_INT(s, TW_ERR_SHAPE);
    CHECK_MSG(strstr(tw_dist_errmsg(d), "different element counts (3 to 4") != NULL, "%s",
              tw_dist_errmsg(d));
    CHECK_EQ_INT(tw_dist_barrier(d), TW_ERR_SHAPE);
    /* ... and a tensor call on a failed group puts the message on the context too */
    CHECK_EQ_INT(tw_dist_allreduce(d, ctx, &x, 1, TW_DIST_SUM), TW_ERR_SHAPE);
    CHECK(strstr(tw_errmsg(ctx), "element counts") != NULL);
    tw_ctx_free(ctx);
    tw_dist_free(d);
    return check_report(rank ? "test_dist_tw rank 1" : "test_dist_tw rank 0");
}

static void test_group(void) {
    int port = free_port();
    CHECK(port > 0);
    pid_t pid[2];
    for (int r = 0; r < 2; r++) {
        pid[r] = fork();
        if (pid[r] == 0) _exit(rank_main(r, port));
    }
    for (int r = 0; r < 2; r++) {
        int st = 0;
        waitpid(pid[r], &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d: status %d", r, st);
    }
}

/* Rank 0 alone: rank 1 never comes. The join fails after the timeout, naming rank 1. */
static void test_missing_peer(void) {
    pid_t pid = fork();
    if (pid == 0) {
        char err[1024];
        tw_dist *d = NULL;
        tw_dist_params p = params(0, free_port(), 1.5);
        double t0 = now_s();
        tw_status s = tw_dist_init(&p, &d, err, sizeof err);
        double dt = now_s() - t0;
        CHECK_EQ_INT(s, TW_ERR_DIST);
        CHECK(d == NULL);
        CHECK_MSG(strstr(err, "rank 1 did not join") && strstr(err, "MASTER_PORT") &&
                      strstr(err, "within 2 s"),
                  "%s", err);
        CHECK_MSG(dt >= 1.4 && dt < 10, "%.2f s", dt);
        /* a worker whose master is not there: cannot reach it, within the timeout */
        p = params(1, free_port(), 1.0);
        t0 = now_s();
        s = tw_dist_init(&p, &d, err, sizeof err);
        dt = now_s() - t0;
        CHECK_EQ_INT(s, TW_ERR_DIST);
        CHECK_MSG(strstr(err, "rank 1 of 2 could not reach") && strstr(err, "MASTER_ADDR"), "%s",
                  err);
        CHECK_MSG(dt < 10, "%.2f s", dt);
        /* the port is taken: rank 0 cannot host the store */
        int port = free_port(), fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons((uint16_t)port);
        CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
        p = params(0, port, 1.0);
        s = tw_dist_init(&p, &d, err, sizeof err);
        CHECK_EQ_INT(s, TW_ERR_DIST);
        CHECK_MSG(strstr(err, "rank 0 of 2 could not host the rendezvous (TCPStore) on port") &&
                      strstr(err, "choose a free MASTER_PORT"),
                  "%s", err);
        close(fd);
        _exit(check_report("test_dist_tw missing peer"));
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

/* Rank 1 joins, then exits; rank 0's next collective fails quickly, not after the timeout. */
static void test_peer_exits(void) {
    int port = free_port();
    pid_t pid[2];
    for (int r = 0; r < 2; r++) {
        pid[r] = fork();
        if (pid[r] != 0) continue;
        char err[1024];
        tw_dist *d = NULL;
        tw_dist_params p = params(r, port, 20);
        CHECK_MSG(tw_dist_init(&p, &d, err, sizeof err) == TW_OK, "%s", err);
        if (r == 1 || !d) _exit(d ? 0 : 1); /* rank 1 leaves without a word */
        double x[1] = {1}, t0 = now_s();
        tw_status s = tw_dist_allreduce_f64(d, x, 1, TW_DIST_SUM);
        double dt = now_s() - t0;
        CHECK_EQ_INT(s, TW_ERR_DIST);
        CHECK_MSG(strstr(tw_dist_errmsg(d), "rank 0 of 2 failed") != NULL, "%s", tw_dist_errmsg(d));
        CHECK_MSG(dt < 15, "%.2f s", dt);
        fprintf(stderr, "peer exited: rank 0 learnt it after %.2f s: %s\n", dt, tw_dist_errmsg(d));
        tw_dist_free(d);
        _exit(check_report("test_dist_tw peer exits"));
    }
    for (int r = 0; r < 2; r++) {
        int st = 0;
        waitpid(pid[r], &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d: status %d", r, st);
    }
}

static void expect_env_error(const char *ws, const char *rank, const char *addr, const char *port,
                             const char *to, const char *want) {
    const char *names[5] = {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT",
                            "CAOPD_DIST_TIMEOUT_S"};
    const char *vals[5] = {ws, rank, addr, port, to};
    for (int i = 0; i < 5; i++) {
        if (vals[i])
            setenv(names[i], vals[i], 1);
        else
            unsetenv(names[i]);
    }
    tw_dist_params p;
    char err[512] = "";
    tw_status s = tw_dist_params_from_env(&p, err, sizeof err);
    if (!want) {
        CHECK_MSG(s == TW_OK, "%s", err);
        return;
    }
    CHECK_EQ_INT(s, TW_ERR_ARG);
    CHECK_MSG(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
}

static void test_env(void) {
    expect_env_error(NULL, NULL, NULL, NULL, NULL, NULL);
    tw_dist *d = (tw_dist *)1;
    char err[256];
    CHECK_EQ_INT(tw_dist_init_env(&d, err, sizeof err), TW_OK); /* WORLD_SIZE unset: one process */
    CHECK(d == NULL);
    CHECK_EQ_INT(tw_dist_rank(NULL), 0);
    CHECK_EQ_INT(tw_dist_size(NULL), 1);
    double x[1] = {2};
    CHECK_EQ_INT(tw_dist_allreduce_f64(NULL, x, 1, TW_DIST_SUM), TW_OK);
    CHECK(x[0] == 2);
    expect_env_error("1", NULL, NULL, NULL, NULL, NULL);
    expect_env_error("two", "0", "127.0.0.1", "29500", NULL, "WORLD_SIZE='two' is not an integer");
    expect_env_error("2", NULL, "127.0.0.1", "29500", NULL, "RANK is not set");
    expect_env_error("2", "2", "127.0.0.1", "29500", NULL, "RANK='2' is not an integer in 0..1");
    expect_env_error("2", "1", NULL, "29500", NULL, "MASTER_ADDR is not set");
    expect_env_error("2", "1", "127.0.0.1", "99999", NULL, "MASTER_PORT='99999'");
    expect_env_error("2", "1", "127.0.0.1", NULL, NULL, "MASTER_PORT is not set");
    expect_env_error("2", "1", "127.0.0.1", "29500", "-3", "CAOPD_DIST_TIMEOUT_S='-3'");
    expect_env_error("2", "1", "node-a", "29500", "2.5", NULL);
    tw_dist_params p;
    CHECK_EQ_INT(tw_dist_params_from_env(&p, err, sizeof err), TW_OK);
    CHECK(p.rank == 1 && p.world_size == 2 && p.master_port == 29500 && p.timeout_s == 2.5);
    CHECK_EQ_STR(p.master_addr, "node-a");
    const char *names[5] = {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT",
                            "CAOPD_DIST_TIMEOUT_S"};
    for (int i = 0; i < 5; i++)
        unsetenv(names[i]);
}

/* Rows [0, 2) and [2, 6) of a batch drawn by two generators give the whole batch's draws, and
 * both end in the state of the whole-batch generator; tw_multinomial_skip advances the same. */
static void test_multinomial_rows(void) {
    tw_ctx *ctx = NULL;
    char err[256];
    CHECK_EQ_INT(tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err), TW_OK);
    enum { R = 6, V = 7, DRAWS = 20 };
    float probs[R * V];
    for (int i = 0; i < R * V; i++)
        probs[i] = (float)(1 + (i * 5) % 7) * (i % 3 ? 1.0f : 0.1f);
    int64_t shape[2] = {R, V}, sa[2] = {2, V}, sb[2] = {R - 2, V};
    tw_rng *whole = NULL, *ra = NULL, *rb = NULL, *rs = NULL;
    tw_rng_new(ctx, 99, &whole), tw_rng_new(ctx, 99, &ra), tw_rng_new(ctx, 99, &rb),
        tw_rng_new(ctx, 99, &rs);
    int same = 1, differs = 0;
    for (int k = 0; k < DRAWS; k++) {
        tw_scope sc = tw_scope_begin(ctx);
        int64_t w[R], a[2], b[R - 2];
        CHECK_EQ_INT(tw_copy_to_i64(
                         ctx, tw_multinomial(ctx, whole, tw_from_f32(ctx, probs, 2, shape)), w, R),
                     TW_OK);
        CHECK_EQ_INT(
            tw_copy_to_i64(ctx, tw_multinomial_rows(ctx, ra, tw_from_f32(ctx, probs, 2, sa), 0, R),
                           a, 2),
            TW_OK);
        CHECK_EQ_INT(tw_copy_to_i64(
                         ctx,
                         tw_multinomial_rows(ctx, rb, tw_from_f32(ctx, probs + 2 * V, 2, sb), 2, R),
                         b, R - 2),
                     TW_OK);
        for (int i = 0; i < R; i++) {
            same &= w[i] == (i < 2 ? a[i] : b[i - 2]);
            differs |= k > 0 && w[i] != w[(i + 1) % R];
        }
        tw_scope_end(ctx, sc);
    }
    CHECK(same);
    CHECK(differs); /* the draws are random, not constant */
    CHECK_EQ_INT(tw_multinomial_skip(ctx, rs, R, V, DRAWS), TW_OK);
    size_t n0 = 0, n1 = 0;
    CHECK_EQ_INT(tw_rng_get_state(whole, NULL, &n0), TW_OK);
    uint8_t *b0 = malloc(n0), *b1 = malloc(n0), *b2 = malloc(n0), *b3 = malloc(n0);
    n1 = n0;
    CHECK_EQ_INT(tw_rng_get_state(whole, b0, &n1), TW_OK);
    tw_rng_get_state(ra, b1, &n1), tw_rng_get_state(rb, b2, &n1), tw_rng_get_state(rs, b3, &n1);
    CHECK(memcmp(b0, b1, n0) == 0 && memcmp(b0, b2, n0) == 0 && memcmp(b0, b3, n0) == 0);
    free(b0), free(b1), free(b2), free(b3);
    /* rows outside the batch */
    CHECK(tw_is_null(tw_multinomial_rows(ctx, ra, tw_from_f32(ctx, probs, 2, sb), 3, R)));
    CHECK_MSG(strstr(tw_errmsg(ctx), "rows [3, 7) do not lie in a batch of 6") != NULL, "%s",
              tw_errmsg(ctx));
    tw_rng_free(whole), tw_rng_free(ra), tw_rng_free(rb), tw_rng_free(rs);
    tw_ctx_free(ctx);
}

int main(void) {
    /* as caopd run does (tw.h, tw_dist_init): a write to a rank that has left reports an error
     * instead of killing the writer, which test_peer_exits would otherwise do now and then */
    signal(SIGPIPE, SIG_IGN);
    test_env();
    test_group();
    test_missing_peer();
    test_peer_exits();
    test_multinomial_rows();
    return check_report("test_dist_tw");
}
