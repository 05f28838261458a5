/* The tw profile (tw_prof_*, `caopd bench --profile`): off, nothing is counted; on, a CaOPD
 * step's ops land in its phases with positive counts, their time sums to about each phase's wall
 * time (never more), the backward pass is charged to the forward ops' kinds, labels nest, and
 * FLOPs of a product are counted once without grad and three times with it. */
#include "tests/check.h"
#include "harness/trainer/opd.h"
#include "harness/trainer/train.h"

#include <string.h>

static void examples(task_example *ex, int n) {
    task_gen *g = NULL;
    CHECK(task_gen_new(&g, TASK_DOMAIN_MOD, TASK_SPLIT_TRAIN, 0, 3) == TASK_OK);
    for (int i = 0; g && i < n; i++)
        task_gen_next(g, &ex[i]);
    task_gen_free(g);
}

static double phase_ops_s(const tw_prof *pr, int ph, int64_t *calls) {
    double s = 0;
    *calls = 0;
    for (int k = 0; k < TW_KIND_COUNT; k++) {
        s += pr->cell[ph][k].seconds;
        *calls += pr->cell[ph][k].calls;
        CHECK(pr->cell[ph][k].seconds >= 0 && pr->cell[ph][k].calls >= 0);
    }
    return s;
}

static int all_zero(const tw_prof *pr) {
    tw_prof zero;
    memset(&zero, 0, sizeof zero);
    return memcmp(pr, &zero, sizeof zero) == 0;
}

int main(void) {
    tw_ctx *ctx = NULL;
    char err[256];
    CHECK(tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) == TW_OK);
    tw_set_num_threads(1);
    gpt_config c = gpt_config_default();
    c.n_layer = 2, c.n_head = 2, c.n_embd = 32;
    tw_rng *rng = NULL;
    gpt *m = NULL;
    trainer *t = NULL;
    tw_rng_new(ctx, 5, &rng);
    CHECK(gpt_new(ctx, c, rng, &m) == TW_OK);
    train_params p = train_params_default();
    p.batch_prompts = 3;
    p.opd.k = 4;
    p.opd.max_new = 12;
    CHECK(train_new(m, p, 9, &t) == TW_OK);
    task_example ex[3];
    examples(ex, 3);
    train_log log;

    /* Off (the default): a step counts nothing. */
    tw_prof pr;
    CHECK(!tw_prof_enabled(ctx));
    CHECK(train_step_opd(t, ex, 3, &log) == TW_OK);
    tw_prof_read(ctx, &pr);
    CHECK_MSG(all_zero(&pr), "the profile counted while off");

    /* On: one step. */
    tw_prof_enable(ctx, 1);
    CHECK(tw_prof_enabled(ctx));
    CHECK(train_step_opd(t, ex, 3, &log) == TW_OK);
    tw_prof_enable(ctx, 0);
    tw_prof_read(ctx, &pr);
    const double wall[3] = {log.s.rollout_s, log.s.teacher_s, log.s.train_s};
    for (int ph = OPD_PHASE_ROLLOUT; ph <= OPD_PHASE_TRAIN; ph++) {
        int64_t calls = 0;
        const double s = phase_ops_s(&pr, ph, &calls);
        CHECK_MSG(calls > 0, "phase %d: no calls", ph);
        CHECK_MSG(pr.cell[ph][TW_KIND_MATMUL].calls > 0 &&
                      pr.cell[ph][TW_KIND_ATTENTION].calls > 0 &&
                      pr.cell[ph][TW_KIND_LAYER_NORM].calls > 0,
                  "phase %d: matmul, attention or layer norm missing", ph);
        CHECK_MSG(pr.flops[ph] > 0, "phase %d: no FLOPs", ph);
        /* the ops run inside the phase: their sum is at most its wall time, and most of it */
        CHECK_MSG(s <= wall[ph] + 1e-4, "phase %d: ops %.6f s > wall %.6f s", ph, s, wall[ph]);
        CHECK_MSG(s >= 0.5 * wall[ph], "phase %d: ops %.6f s, under half the wall %.6f s", ph, s,
                  wall[ph]);
    }
    CHECK_MSG(pr.cell[OPD_PHASE_ROLLOUT][TW_KIND_SAMPLING].calls > 0, "rollout: no sampling");
    CHECK_MSG(pr.cell[OPD_PHASE_TEACHER][TW_KIND_SAMPLING].calls == 0, "teacher: sampling");
    CHECK_MSG(pr.cell[OPD_PHASE_TRAIN][TW_KIND_LOSS].calls > 0, "train: no loss ops");
    CHECK_MSG(pr.cell[OPD_PHASE_TRAIN][TW_KIND_OTHER].calls == 1,
              "train: the backward pass is one engine call");
    CHECK_MSG(pr.cell[OPD_PHASE_REST][TW_KIND_OPTIMIZER].calls > 0, "rest: no optimizer ops");
    CHECK_MSG(pr.flops[OPD_PHASE_REST] == 0, "rest: FLOPs counted");
    /* the student's forward under grad counts its backward: more FLOPs than the teacher's, which
     * reads the same completions (its contexts are longer, but not 3x) */
    CHECK_MSG(pr.flops[OPD_PHASE_TRAIN] > pr.flops[OPD_PHASE_TEACHER],
              "train FLOPs %g <= teacher %g", pr.flops[OPD_PHASE_TRAIN],
              pr.flops[OPD_PHASE_TEACHER]);

    /* Stopped: nothing more is counted, the table stays readable. */
    CHECK(train_step_opd(t, ex, 3, &log) == TW_OK);
    tw_prof after;
    tw_prof_read(ctx, &after);
    CHECK_MSG(memcmp(&pr, &after, sizeof pr) == 0, "counted after tw_prof_enable(ctx, 0)");

    /* Labels nest; phases out of range are ignored. */
    CHECK_EQ_INT(tw_prof_label(ctx, TW_KIND_ATTENTION), -1);
    CHECK_EQ_INT(tw_prof_label(ctx, TW_KIND_LOSS), TW_KIND_ATTENTION);
    CHECK_EQ_INT(tw_prof_label(ctx, TW_KIND_ATTENTION), TW_KIND_LOSS);
    CHECK_EQ_INT(tw_prof_label(ctx, -1), TW_KIND_ATTENTION);
    const int ph0 = tw_prof_phase(ctx, 2);
    CHECK_EQ_INT(tw_prof_phase(ctx, TW_PROF_PHASES), 2);
    CHECK_EQ_INT(tw_prof_phase(ctx, ph0), 2);
    CHECK_EQ_STR(tw_kind_name(TW_KIND_MATMUL), "matmul");
    CHECK_EQ_STR(tw_kind_name(TW_KIND_COUNT), "?");

    /* FLOPs of one linear (4, 8) x (16, 8)^T: 2 * 4 * 16 * 8, three times under grad; a label
     * moves its time to the label's kind. */
    tw_prof_phase(ctx, 0);
    tw_prof_enable(ctx, 1);
    int64_t xs[2] = {4, 8}, ws[2] = {16, 8};
    tw_scope sc = tw_scope_begin(ctx);
    tw_tensor x = tw_randn(ctx, rng, 0, 1, 2, xs), w = tw_randn(ctx, rng, 0, 1, 2, ws);
    tw_no_grad_begin(ctx);
    tw_linear(ctx, x, w, TW_NULL);
    tw_no_grad_end(ctx);
    tw_prof_read(ctx, &pr);
    CHECK_NEAR(pr.flops[0], 1024.0, 1e-9);
    CHECK_EQ_INT(pr.cell[0][TW_KIND_MATMUL].calls, 1);
    tw_set_requires_grad(ctx, w, 1);
    const int old = tw_prof_label(ctx, TW_KIND_ATTENTION);
    tw_tensor y = tw_linear(ctx, x, w, TW_NULL);
    tw_prof_label(ctx, old);
    tw_backward(ctx, tw_sum(ctx, y));
    tw_prof_read(ctx, &pr);
    CHECK_NEAR(pr.flops[0], 1024.0 + 3 * 1024.0, 1e-9);
    CHECK_EQ_INT(pr.cell[0][TW_KIND_MATMUL].calls, 1);
    /* the labelled linear and its backward node(s) count as attention */
    CHECK_MSG(pr.cell[0][TW_KIND_ATTENTION].calls >= 2,
              "labelled linear and its backward: %lld calls",
              (long long)pr.cell[0][TW_KIND_ATTENTION].calls);
    tw_scope_end(ctx, sc);
    tw_prof_enable(ctx, 0);
    CHECK_MSG(tw_status_get(ctx) == TW_OK, "%s", tw_errmsg(ctx));

    train_free(t);
    gpt_free(m);
    tw_rng_free(rng);
    tw_ctx_free(ctx);
    return check_report("test_tw_prof");
}
