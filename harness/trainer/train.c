/* train.c: the trainer: EMA teacher, AdamW with warm-up + cosine decay, clipping, the
 * on-policy (caopd/sdft), supervised (sft, base stage) steps and their NaN rule. */
#include "harness/trainer/train.h"
#include "tasks/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tasks/templates.h"
#include "common/clock.h"

struct trainer {
    gpt *student;  /* borrowed */
    gpt *teacher;  /* owned EMA copy */
    tw_adamw *opt; /* owned */
    tw_rng *rng;   /* owned: rollouts */
    tw_dist *dist; /* borrowed: the data-parallel group; NULL: one process */
    train_params p;
    int64_t step;  /* optimizer steps taken */
    int64_t sched; /* steps into the current schedule */
    char stage[48];
};

static const char *const method_names[] = {"caopd", "sdft", "sft"};

const char *train_method_name(train_method m) {
    return (m >= 0 && m <= TRAIN_METHOD_SFT) ? method_names[m] : "?";
}

int train_method_from_name(const char *name, train_method *out) {
    for (int i = 0; i <= TRAIN_METHOD_SFT; i++)
        if (name && strcmp(name, method_names[i]) == 0) {
            *out = (train_method)i;
            return 0;
        }
    return -1;
}

train_params train_params_default(void) {
    train_params p = {.method = TRAIN_METHOD_CAOPD,
                      .opd = opd_params_default(),
                      .batch_prompts = 16,
                      .total_steps = 100,
                      .warmup_steps = 10,
                      .lr = 3e-4,
                      .min_lr_frac = 0.1,
                      .beta1 = 0.9,
                      .beta2 = 0.95,
                      .eps = 1e-8,
                      .weight_decay = 0.01,
                      .clip_norm = 1.0,
                      .ema_alpha = 0.01,
                      .replay_frac = 0.0};
    return p;
}

double train_lr_at(const train_params *p, int64_t s) {
    if (p->warmup_steps > 0 && s < p->warmup_steps)
        return p->lr * (double)(s + 1) / p->warmup_steps;
    const double span = (double)(p->total_steps - p->warmup_steps);
    double frac = span > 0 ? (double)(s - p->warmup_steps) / span : 1.0;
    if (frac > 1.0) frac = 1.0;
    const double lo = p->min_lr_frac * p->lr;
    return lo + 0.5 * (p->lr - lo) * (1.0 + cos(3.14159265358979323846 * frac));
}

tw_status train_new(gpt *student, train_params p, uint64_t seed, trainer **out) {
    tw_ctx *ctx = gpt_ctx(student);
    *out = NULL;
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        tw_set_error(ctx, TW_ERR_NOMEM, "train_new: out of memory");
        return TW_ERR_NOMEM;
    }
    t->student = student;
    t->p = p;
    snprintf(t->stage, sizeof t->stage, "train");
    tw_adamw_params hp = {.lr = p.lr,
                          .beta1 = p.beta1,
                          .beta2 = p.beta2,
                          .eps = p.eps,
                          .weight_decay = p.weight_decay};
    tw_rng *init = NULL;
    tw_status rc = tw_rng_new(ctx, seed, &t->rng);
    if (rc == TW_OK) rc = tw_rng_new(ctx, seed ^ 0x7465616368ull, &init);
    if (rc == TW_OK) rc = gpt_new(ctx, gpt_get_config(student), init, &t->teacher);
    tw_rng_free(init);
    if (rc == TW_OK) rc = gpt_copy_weights(t->teacher, student);
    if (rc == TW_OK)
        for (int i = 0; i < gpt_param_count(t->teacher); i++)
            tw_set_requires_grad(ctx, gpt_param(t->teacher, i), 0);
    if (rc == TW_OK)
        rc = tw_adamw_new(ctx, gpt_params(student), gpt_param_decay(student),
                          gpt_param_count(student), hp, &t->opt);
    if (rc == TW_OK) rc = tw_status_get(ctx);
    if (rc != TW_OK) {
        train_free(t);
        return rc;
    }
    *out = t;
    return TW_OK;
}

void train_free(trainer *t) {
    if (!t) return;
    tw_adamw_free(t->opt);
    gpt_free(t->teacher);
    tw_rng_free(t->rng);
    free(t);
}

gpt *train_student(const trainer *t) {
    return t->student;
}

gpt *train_teacher(const trainer *t) {
    return t->teacher;
}

int64_t train_step_count(const trainer *t) {
    return t->step;
}

void train_set_params(trainer *t, train_params p) {
    t->p = p;
    t->sched = 0;
}

void train_set_stage(trainer *t, const char *stage) {
    snprintf(t->stage, sizeof t->stage, "%s", stage ? stage : "");
}

tw_status train_sync_teacher(trainer *t) {
    return gpt_copy_weights(t->teacher, t->student);
}

const char *train_errmsg(const trainer *t) {
    return tw_errmsg(gpt_ctx(t->student));
}

void train_set_dist(trainer *t, tw_dist *d) {
    t->dist = d;
}

/* ---- data parallel ------------------------------------------------------------------------ */

/* This process's share [*first, *first + *count) of a global batch of n (all of it with one
 * process). -1 (error on the context) when n does not divide by the world size. */
static int shard(trainer *t, int n, int *first, int *count) {
    const int W = tw_dist_size(t->dist), r = tw_dist_rank(t->dist);
    if (n % W != 0) {
        tw_set_error(gpt_ctx(t->student), TW_ERR_ARG,
                     "stage %s: a batch of %d does not divide among WORLD_SIZE = %d processes; "
                     "make every batch in "
                     "the spec a multiple of the number of processes",
                     t->stage, n, W);
        return -1;
    }
    *first = r * (n / W);
    *count = n / W;
    return 0;
}

/* After a sampling of this process's part of a global batch of `rows` rollouts: advances the
 * generator to the step count of the slowest process, as the single-process sampling of the
 * whole batch would have (it stops only when every row has stopped). */
static tw_status sync_sampling(trainer *t, opd_stats *st, int64_t rows) {
    tw_ctx *ctx = gpt_ctx(t->student);
    double steps = st->decode_steps;
    if (tw_dist_allreduce_f64(t->dist, &steps, 1, TW_DIST_MAX) != TW_OK) {
        tw_set_error(ctx, TW_ERR_DIST, "%s", tw_dist_errmsg(t->dist));
        return TW_ERR_DIST;
    }
    if (t->p.opd.temperature > 0.0 && (int)steps > st->decode_steps)
        tw_multinomial_skip(ctx, t->rng, rows, gpt_get_config(t->student).vocab,
                            (int)steps - st->decode_steps);
    st->decode_steps = (int)steps;
    return tw_status_get(ctx);
}

/* After the local backward: every process gets the gradient of the global batch's loss (the
 * mean over all loss rows: each process's mean weighted by its rows, weight) and the global
 * statistics: sums, and means weighted by what each averages over (timings: mean over
 * processes). *loss becomes the global loss (non-finite when any process's is). */
static tw_status dist_reduce(trainer *t, double *loss, opd_stats *st, double weight,
                             int n_prompts) {
    tw_ctx *ctx = gpt_ctx(t->student);
    enum {
        W_,
        LOSS,
        BAD,
        KL,
        SA,
        TA,
        NA,
        SC,
        TC,
        NC,
        PACC,
        RACC,
        NP,
        FMT,
        CONF,
        PT,
        TPT,
        NEW,
        TRN,
        RS,
        TS,
        XS,
        N_
    };
    const int fin = isfinite(*loss);
    const double np = n_prompts, na = (double)st->answer_targets, nc = (double)st->conf_targets;
    double v[N_] = {[W_] = weight,
                    [LOSS] = fin ? *loss * weight : 0.0,
                    [BAD] = !fin,
                    [KL] = fin ? st->kl * weight : 0.0,
                    [SA] = st->student_ent_answer * na,
                    [TA] = st->teacher_ent_answer * na,
                    [NA] = na,
                    [SC] = st->student_ent_conf * nc,
                    [TC] = st->teacher_ent_conf * nc,
                    [NC] = nc,
                    [PACC] = st->mean_p_acc * np,
                    [RACC] = st->rollout_acc * np,
                    [NP] = np,
                    [FMT] = st->format_adherence * np,
                    [CONF] = st->mean_confidence * np,
                    [PT] = (double)st->prompt_tokens,
                    [TPT] = (double)st->teacher_prompt_tokens,
                    [NEW] = (double)st->new_tokens,
                    [TRN] = (double)st->train_tokens,
                    [RS] = st->rollout_s,
                    [TS] = st->teacher_s,
                    [XS] = st->train_s};
    tw_status rc = tw_dist_allreduce_grads(t->dist, ctx, gpt_params(t->student),
                                           gpt_param_count(t->student), weight, NULL);
    if (rc == TW_OK && tw_dist_allreduce_f64(t->dist, v, N_, TW_DIST_SUM) != TW_OK) {
        tw_set_error(ctx, TW_ERR_DIST, "%s", tw_dist_errmsg(t->dist));
        rc = TW_ERR_DIST;
    }
    if (rc != TW_OK) return rc;
    const double W = tw_dist_size(t->dist);
#define RATIO(a, b) ((b) > 0 ? (a) / (b) : 0.0)
    *loss = v[BAD] > 0 ? NAN : RATIO(v[LOSS], v[W_]);
    st->loss = *loss;
    st->kl = v[BAD] > 0 ? NAN : RATIO(v[KL], v[W_]);
    st->student_ent_answer = RATIO(v[SA], v[NA]), st->teacher_ent_answer = RATIO(v[TA], v[NA]);
    st->student_ent_conf = RATIO(v[SC], v[NC]), st->teacher_ent_conf = RATIO(v[TC], v[NC]);
    st->answer_targets = (int64_t)v[NA], st->conf_targets = (int64_t)v[NC];
    st->mean_p_acc = RATIO(v[PACC], v[NP]), st->rollout_acc = RATIO(v[RACC], v[NP]);
    st->format_adherence = RATIO(v[FMT], v[NP]), st->mean_confidence = RATIO(v[CONF], v[NP]);
#undef RATIO
    st->prompt_tokens = (int64_t)v[PT], st->teacher_prompt_tokens = (int64_t)v[TPT];
    st->new_tokens = (int64_t)v[NEW], st->train_tokens = (int64_t)v[TRN];
    st->rollout_s = v[RS] / W, st->teacher_s = v[TS] / W, st->train_s = v[XS] / W;
    st->loss_rows = (int)v[W_];
    return TW_OK;
}

/* After the backward pass: NaN rule, clipping, AdamW, EMA. */
static tw_status finish_step(trainer *t, double loss, train_log *log, double t0,
                             const opd_stats *st) {
    tw_ctx *ctx = gpt_ctx(t->student);
    const tw_tensor *params = gpt_params(t->student);
    const int n = gpt_param_count(t->student);
    double norm = 0.0;
    tw_prof_phase(ctx, OPD_PHASE_REST);
    if (tw_status_get(ctx) != TW_OK) {
        tw_zero_grad(ctx, params, n);
        return tw_status_get(ctx);
    }
    if (isfinite(loss))
        tw_clip_grad_norm(ctx, params, n, t->p.clip_norm > 0 ? t->p.clip_norm : INFINITY, &norm);
    if (!isfinite(loss) || !isfinite(norm)) {
        tw_zero_grad(ctx, params, n);
        tw_set_error(
            ctx, TW_ERR_STATE,
            "stage %s, step %lld: %s is %g; training stopped before the update, the "
            "parameters are those after step %lld (lower the learning rate or check the data)",
            t->stage, (long long)t->step, isfinite(loss) ? "gradient norm" : "loss",
            isfinite(loss) ? norm : loss, (long long)t->step - 1);
        return TW_ERR_STATE;
    }
    const double lr = train_lr_at(&t->p, t->sched);
    tw_status rc = tw_adamw_step(t->opt, lr);
    tw_zero_grad(ctx, params, n);
    if (rc == TW_OK) rc = gpt_lerp_weights(t->teacher, t->student, t->p.ema_alpha);
    if (rc != TW_OK) return rc;
    if (log) {
        log->step = t->step;
        log->lr = lr;
        log->grad_norm = norm;
        log->s = *st;
        log->step_s = clock_now_s() - t0;
        log->tok_s =
            log->step_s > 0 ? (double)(st->new_tokens + st->train_tokens) / log->step_s : 0.0;
    }
    t->step++;
    t->sched++;
    return TW_OK;
}

tw_status train_step_opd(trainer *t, const task_example *ex, int n, train_log *log) {
    tw_ctx *ctx = gpt_ctx(t->student);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (t->p.method == TRAIN_METHOD_SFT) {
        char(*prompts)[OPD_CONTEXT_CAP] = malloc(sizeof *prompts * (size_t)n);
        char(*targets)[OPD_TEXT_CAP] = malloc(sizeof *targets * (size_t)n);
        const char **pp = malloc(sizeof(char *) * (size_t)n),
                   **tp = malloc(sizeof(char *) * (size_t)n);
        tw_status rc = TW_OK;
        if (!prompts || !targets || !pp || !tp) {
            tw_set_error(ctx, TW_ERR_NOMEM, "train_step_opd: out of memory");
            rc = TW_ERR_NOMEM;
        }
        for (int i = 0; rc == TW_OK && i < n; i++) {
            tmpl_student_prompt(prompts[i], OPD_CONTEXT_CAP, ex[i].question);
            tmpl_completion(targets[i], OPD_TEXT_CAP, ex[i].answer, 1.0);
            pp[i] = prompts[i];
            tp[i] = targets[i];
        }
        if (rc == TW_OK) rc = train_step_sup(t, pp, tp, n, log);
        free(prompts), free(targets), free(pp), free(tp);
        return rc;
    }
    const double t0 = clock_now_s();
    opd_params op = t->p.opd;
    op.replace = t->p.method == TRAIN_METHOD_CAOPD;
    opd_batch b;
    opd_stats st;
    memset(&st, 0, sizeof st);
    double loss = NAN;
    tw_status rc;
    const int dp = tw_dist_size(t->dist) > 1;
    int first = 0, count = n;
    if (!dp) {
        rc = opd_batch_sample(t->student, t->rng, ex, n, op, &b, &st);
    } else if (shard(t, n, &first, &count)) {
        return tw_status_get(ctx);
    } else {
        rc = opd_batch_sample_part(t->student, t->rng, ex + first, count, first, n, op, &b, &st);
        if (rc == TW_OK) rc = sync_sampling(t, &st, (int64_t)n * op.k);
    }
    if (rc == TW_OK) rc = opd_batch_loss(t->student, t->teacher, &b, op, &loss, &st);
    opd_batch_free(&b);
    if (rc == TW_OK && dp) rc = dist_reduce(t, &loss, &st, st.loss_rows, count);
    if (rc != TW_OK) {
        tw_zero_grad(ctx, gpt_params(t->student), gpt_param_count(t->student));
        return rc;
    }
    return finish_step(t, loss, log, t0, &st);
}

tw_status train_step_sup(trainer *t, const char *const *prompts, const char *const *targets, int n,
                         train_log *log) {
    tw_ctx *ctx = gpt_ctx(t->student);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    tw_prof_phase(ctx, OPD_PHASE_TRAIN);
    const double t0 = clock_now_s();
    const int dp = tw_dist_size(t->dist) > 1;
    int first = 0;
    if (dp) {
        /* this process's share of the global batch */
        if (shard(t, n, &first, &n)) return tw_status_get(ctx);
        prompts += first, targets += first;
    }
    opd_seqs s;
    opd_seqs_init(&s);
    for (int i = 0; i < n; i++) {
        int p = opd_seqs_add_prefix_text(&s, prompts[i]);
        int r = p < 0 ? p : opd_seqs_add_row_text(&s, p, targets[i]);
        if (r < 0) {
            opd_seqs_free(&s);
            if (r == OPD_SEQS_BAD_TEXT)
                tw_set_error(ctx, TW_ERR_ARG, "train_step_sup: pair %d: %s", i, tok_errmsg());
            else
                tw_set_error(ctx, TW_ERR_NOMEM, "train_step_sup: out of memory");
            return tw_status_get(ctx);
        }
    }
    const int64_t N = s.n_rows, W = s.width;
    float *w = malloc(sizeof(float) * (size_t)(N * W));
    if (!w) {
        opd_seqs_free(&s);
        tw_set_error(ctx, TW_ERR_NOMEM, "train_step_sup: out of memory");
        return TW_ERR_NOMEM;
    }
    const int rows = opd_loss_weights(&s, 0, w);
    opd_stats st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < N; i++)
        st.train_tokens += s.n_target[i];
    for (int i = 0; i < s.n_prefix; i++)
        st.prompt_tokens += s.poff[i + 1] - s.poff[i];
    tw_scope scope = tw_scope_begin(ctx);
    int64_t shape[2] = {N, W};
    tw_tensor logits = opd_logits(t->student, &s, 1);
    tw_tensor ce = opd_ce_tokens(ctx, logits, tw_from_i64(ctx, s.target, 2, shape));
    tw_tensor loss = tw_sum(ctx, tw_mul(ctx, ce, tw_from_f32(ctx, w, 2, shape)));
    double lv = NAN;
    tw_item(ctx, loss, &lv);
    if (tw_status_get(ctx) == TW_OK && isfinite(lv)) tw_backward(ctx, loss);
    tw_scope_end(ctx, scope);
    free(w);
    opd_seqs_free(&s);
    st.loss = lv;
    st.train_s = clock_now_s() - t0;
    if (dp) {
        st.loss_rows = rows;
        tw_status rc = dist_reduce(t, &lv, &st, rows, n);
        if (rc != TW_OK) {
            tw_zero_grad(ctx, gpt_params(t->student), gpt_param_count(t->student));
            return rc;
        }
    }
    return finish_step(t, lv, log, t0, &st);
}

tw_status train_step_domain(trainer *t, task_gen *gen, task_gen *const *replay, int n_replay,
                            train_log *log) {
    tw_ctx *ctx = gpt_ctx(t->student);
    const int n = t->p.batch_prompts;
    task_example *ex = malloc(sizeof *ex * (size_t)(n > 0 ? n : 1));
    if (!ex || n < 1) {
        free(ex);
        tw_set_error(ctx, n < 1 ? TW_ERR_ARG : TW_ERR_NOMEM,
                     "train_step_domain: batch_prompts %d (must be >= 1) or out of memory", n);
        return tw_status_get(ctx);
    }
    int n_rep = n_replay > 0 ? (int)lround(t->p.replay_frac * n) : 0;
    if (n_rep > n) n_rep = n;
    int rc = TASK_OK;
    for (int i = 0; rc == TASK_OK && i < n; i++) {
        task_gen *g = i < n - n_rep ? gen : replay[(t->step * n_rep + i) % n_replay];
        rc = task_gen_next(g, &ex[i]);
    }
    tw_status s;
    if (rc != TASK_OK) {
        tw_set_error(ctx, TW_ERR_ARG, "train_step_domain: task generator: %s", task_errmsg());
        s = tw_status_get(ctx);
    } else {
        s = train_step_opd(t, ex, n, log);
    }
    free(ex);
    return s;
}

tw_status train_step_base(trainer *t, base_gen *g, train_log *log) {
    tw_ctx *ctx = gpt_ctx(t->student);
    const int n = t->p.batch_prompts;
    base_pair *pairs = malloc(sizeof *pairs * (size_t)(n > 0 ? n : 1));
    const char **pp = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    const char **tp = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    tw_status s = TW_OK;
    if (n < 1) {
        tw_set_error(ctx, TW_ERR_ARG, "train_step_base: batch_prompts %d < 1", n);
        s = tw_status_get(ctx);
    } else if (!pairs || !pp || !tp) {
        tw_set_error(ctx, TW_ERR_NOMEM, "train_step_base: out of memory");
        s = tw_status_get(ctx);
    }
    for (int i = 0; s == TW_OK && i < n; i++) {
        if (base_gen_next(g, &pairs[i]) != BASE_OK) {
            tw_set_error(ctx, TW_ERR_ARG, "train_step_base: %s", base_errmsg());
            s = tw_status_get(ctx);
        }
        pp[i] = pairs[i].prompt;
        tp[i] = pairs[i].target;
    }
    if (s == TW_OK) s = train_step_sup(t, pp, tp, n, log);
    free(pairs), free(pp), free(tp);
    return s;
}

tw_adamw *train_optimizer(trainer *t) {
    return t->opt;
}

tw_rng *train_rng(trainer *t) {
    return t->rng;
}

int64_t train_sched_count(const trainer *t) {
    return t->sched;
}

void train_set_counters(trainer *t, int64_t step, int64_t sched) {
    t->step = step;
    t->sched = sched;
}
