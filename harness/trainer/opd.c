/* opd.c: token batches with shared prefixes, the distillation loss, rollouts, verification,
 * P_acc and the CaOPD replacements. See opd.h and docs/trainer.md for the definitions. */
#include "harness/trainer/opd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tasks/templates.h"
#include "tasks/tokenizer.h"
#include "common/clock.h"

/* ---- token batches ---- */

void opd_seqs_init(opd_seqs *s) {
    memset(s, 0, sizeof *s);
}

void opd_seqs_free(opd_seqs *s) {
    free(s->prefix), free(s->prefix_valid), free(s->row_of), free(s->target), free(s->n_target);
    free(s->praw), free(s->traw), free(s->poff), free(s->toff);
    opd_seqs_init(s);
}

static int grow(void **p, size_t n, size_t elem) {
    void *q = realloc(*p, n * elem);
    if (!q && n) return -1;
    *p = q;
    return 0;
}

/* Rebuilds the padded arrays from the unpadded storage. */
static int repad(opd_seqs *s) {
    const int P = s->n_prefix, N = s->n_rows;
    int tp = 1, w = 1;
    for (int i = 0; i < P; i++)
        if (s->poff[i + 1] - s->poff[i] > tp) tp = (int)(s->poff[i + 1] - s->poff[i]);
    for (int i = 0; i < N; i++)
        if (s->toff[i + 1] - s->toff[i] > w) w = (int)(s->toff[i + 1] - s->toff[i]);
    if (grow((void **)&s->prefix, (size_t)P * tp, sizeof(int64_t)) ||
        grow((void **)&s->prefix_valid, (size_t)P * tp, sizeof(int64_t)) ||
        grow((void **)&s->target, (size_t)N * w, sizeof(int64_t)) ||
        grow((void **)&s->n_target, (size_t)N, sizeof(int)))
        return -1;
    s->prefix_len = tp;
    s->width = w;
    for (int i = 0; i < P; i++) {
        int n = (int)(s->poff[i + 1] - s->poff[i]), pad = tp - n;
        for (int t = 0; t < tp; t++) {
            s->prefix[(size_t)i * tp + t] = t < pad ? TOK_PAD : s->praw[s->poff[i] + t - pad];
            s->prefix_valid[(size_t)i * tp + t] = t >= pad;
        }
    }
    for (int i = 0; i < N; i++) {
        int n = (int)(s->toff[i + 1] - s->toff[i]);
        s->n_target[i] = n;
        for (int t = 0; t < w; t++)
            s->target[(size_t)i * w + t] = t < n ? s->traw[s->toff[i] + t] : TOK_PAD;
    }
    return 0;
}

/* Appends first (optional, -1 for none), ids[0..n), last (optional) to a raw store. */
static int append_raw(int64_t **raw, int64_t **off, int count, int first, const int32_t *ids, int n,
                      int last) {
    int64_t base = count ? (*off)[count] : 0;
    int64_t len = n + (first >= 0) + (last >= 0);
    if (grow((void **)raw, (size_t)(base + len), sizeof(int64_t)) ||
        grow((void **)off, (size_t)count + 2, sizeof(int64_t)))
        return -1;
    int64_t *r = *raw + base;
    if (first >= 0) *r++ = first;
    for (int i = 0; i < n; i++)
        *r++ = ids[i];
    if (last >= 0) *r++ = last;
    (*off)[0] = 0;
    (*off)[count + 1] = base + len;
    return 0;
}

int opd_seqs_add_prefix(opd_seqs *s, const int32_t *ids, int n) {
    if (n < 1 || !ids) return -1;
    if (append_raw(&s->praw, &s->poff, s->n_prefix, TOK_BOS, ids, n, -1)) return -1;
    s->n_prefix++;
    if (repad(s)) {
        s->n_prefix--;
        return -1;
    }
    return s->n_prefix - 1;
}

int opd_seqs_add_row(opd_seqs *s, int prefix, const int32_t *ids, int n) {
    if (prefix < 0 || prefix >= s->n_prefix || n < 0 || (n && !ids)) return -1;
    if (grow((void **)&s->row_of, (size_t)s->n_rows + 1, sizeof(int64_t))) return -1;
    if (append_raw(&s->traw, &s->toff, s->n_rows, -1, ids, n, TOK_EOS)) return -1;
    s->row_of[s->n_rows++] = prefix;
    if (repad(s)) {
        s->n_rows--;
        return -1;
    }
    return s->n_rows - 1;
}

/* text -> *ids (malloc'd, *n of them): 0, OPD_SEQS_NOMEM, or OPD_SEQS_BAD_TEXT (tok_errmsg). */
static int encode(const char *text, int32_t **ids, size_t *n) {
    size_t len = strlen(text);
    *ids = malloc(sizeof(int32_t) * (len ? len : 1));
    if (!*ids) return OPD_SEQS_NOMEM;
    if (tok_encode(text, len, *ids, len, n) != TOK_OK) {
        free(*ids);
        *ids = NULL;
        return OPD_SEQS_BAD_TEXT;
    }
    return 0;
}

int opd_seqs_add_prefix_text(opd_seqs *s, const char *text) {
    size_t n = 0;
    int32_t *ids = NULL;
    int r = encode(text, &ids, &n);
    if (!r) r = opd_seqs_add_prefix(s, ids, (int)n);
    free(ids);
    return r;
}

int opd_seqs_add_row_text(opd_seqs *s, int prefix, const char *text) {
    size_t n = 0;
    int32_t *ids = NULL;
    int r = encode(text, &ids, &n);
    if (!r) r = opd_seqs_add_row(s, prefix, ids, (int)n);
    free(ids);
    return r;
}

/* ---- logits of a batch ---- */

#define OPD_MAX_CHUNKS 4

/* Prefixes of very different lengths padded to the longest waste most of a batch (a base step
 * mixes student prompts of ~30 tokens with teacher contexts of ~250, and attention grows with the
 * square). So the shared path computes the batch in up to OPD_MAX_CHUNKS chunks of prefixes of
 * similar length, each padded to its own longest. len[0..P) are the prefixes' lengths in
 * increasing order, rows[0..P) their row counts; the chunks are the runs [end[c-1], end[c]) that
 * minimize the sum over chunks of rows x L x (1 + L / 128) (L: the chunk's longest; the linear
 * layers and the attention of a padded row) plus 2000 per chunk (its fixed cost in ops, in the
 * same token units). Returns the number of chunks. */
static int plan_chunks(const int64_t *len, const int64_t *rows, int P, int *end) {
    double best[OPD_MAX_CHUNKS + 1][P + 1];
    int from[OPD_MAX_CHUNKS + 1][P + 1];
    for (int c = 0; c <= OPD_MAX_CHUNKS; c++)
        for (int i = 0; i <= P; i++)
            best[c][i] = INFINITY, from[c][i] = 0;
    best[0][0] = 0;
    for (int c = 1; c <= OPD_MAX_CHUNKS; c++)
        for (int i = 1; i <= P; i++) {
            int64_t r = 0;
            for (int j = i - 1; j >= 0; j--) {
                r += rows[j];
                const double L = (double)len[i - 1];
                const double cost = best[c - 1][j] + (double)r * L * (1.0 + L / 128.0) + 2000.0;
                if (cost < best[c][i]) best[c][i] = cost, from[c][i] = j;
            }
        }
    int n = 1;
    for (int c = 2; c <= OPD_MAX_CHUNKS; c++)
        if (best[c][P] < best[n][P]) n = c;
    for (int c = n, i = P; c >= 1; c--) {
        end[c - 1] = i;
        i = from[c][i];
    }
    return n;
}

static int cmp_by_len(const void *a, const void *b) {
    const int64_t *x = a, *y = b; /* {length, index} */
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The shared-prefix logits of the rows of one chunk: prefixes pre[0..np) (indices into s, in
 * increasing order) and the rows continuing them, in batch order (n_rows, written to rows).
 * stok, sval: (N, W) suffix tokens and validity of every row of the batch. */
static tw_tensor chunk_logits(gpt *m, const opd_seqs *s, const int *pre, int np,
                              const int64_t *stok, const int64_t *sval, int64_t *rows,
                              int *n_rows) {
    tw_ctx *ctx = gpt_ctx(m);
    const int64_t W = s->width;
    int64_t T = 1; /* the chunk's longest prefix */
    for (int c = 0; c < np; c++)
        if (s->poff[pre[c] + 1] - s->poff[pre[c]] > T) T = s->poff[pre[c] + 1] - s->poff[pre[c]];
    int nr = 0;
    for (int64_t i = 0; i < s->n_rows; i++)
        for (int c = 0; c < np; c++)
            if (s->row_of[i] == pre[c]) rows[nr++] = i;
    int64_t *buf = malloc(sizeof(int64_t) * (size_t)(2 * np * (T - 1) + 3 * nr * W));
    if (!buf) {
        tw_set_error(ctx, TW_ERR_NOMEM, "opd_logits: out of memory");
        return TW_NULL;
    }
    int64_t *ptok = buf, *pval = ptok + np * (T - 1), *rtok = pval + np * (T - 1),
            *rval = rtok + nr * W, *row_of = rval + nr * W;
    for (int c = 0; c < np; c++) {
        const int64_t n = s->poff[pre[c] + 1] - s->poff[pre[c]], pad = T - n;
        for (int64_t t = 0; t < T - 1; t++) {
            ptok[c * (T - 1) + t] = t < pad ? TOK_PAD : s->praw[s->poff[pre[c]] + t - pad];
            pval[c * (T - 1) + t] = t >= pad;
        }
    }
    for (int r = 0; r < nr; r++) {
        const int64_t i = rows[r];
        memcpy(rtok + r * W, stok + i * W, sizeof(int64_t) * (size_t)W);
        memcpy(rval + r * W, sval + i * W, sizeof(int64_t) * (size_t)W);
        for (int c = 0; c < np; c++)
            if (pre[c] == s->row_of[i]) row_of[r] = c;
    }
    *n_rows = nr;
    tw_scope scope = tw_scope_begin(ctx);
    int64_t pshape[2] = {np, T - 1}, sshape[2] = {nr, W};
    gpt_prefix *prefix = NULL;
    tw_tensor logits = TW_NULL;
    if (gpt_prefix_new(m, tw_from_i64(ctx, ptok, 2, pshape), tw_from_i64(ctx, pval, 2, pshape),
                       &prefix) == TW_OK) {
        logits = gpt_forward_suffix(m, prefix, row_of, nr, tw_from_i64(ctx, rtok, 2, sshape),
                                    tw_from_i64(ctx, rval, 2, sshape));
        gpt_prefix_free(prefix);
    }
    free(buf);
    return tw_scope_return(ctx, scope, logits);
}

/* The shared path of opd_logits: chunks of prefixes of similar length, concatenated and put
 * back in row order. */
static tw_tensor shared_logits(gpt *m, const opd_seqs *s, const int64_t *stok,
                               const int64_t *sval) {
    tw_ctx *ctx = gpt_ctx(m);
    const int P = s->n_prefix, N = s->n_rows;
    int64_t *sorted = malloc(sizeof(int64_t) * (size_t)(4 * P + 2 * N));
    int *pre = malloc(sizeof(int) * (size_t)P);
    if (!sorted || !pre) {
        free(sorted), free(pre);
        tw_set_error(ctx, TW_ERR_NOMEM, "opd_logits: out of memory");
        return TW_NULL;
    }
    int64_t *len = sorted + 2 * P, *rows_of = len + P, *order = rows_of + P, *inv = order + N;
    for (int p = 0; p < P; p++)
        sorted[2 * p] = s->poff[p + 1] - s->poff[p], sorted[2 * p + 1] = p;
    qsort(sorted, (size_t)P, 2 * sizeof(int64_t), cmp_by_len);
    for (int p = 0; p < P; p++)
        len[p] = sorted[2 * p], rows_of[p] = 0;
    for (int i = 0; i < N; i++)
        for (int p = 0; p < P; p++)
            if (sorted[2 * p + 1] == s->row_of[i]) rows_of[p]++;
    int end[OPD_MAX_CHUNKS];
    const int n_chunks = len[0] >= 2 ? plan_chunks(len, rows_of, P, end) : 1;
    if (n_chunks == 1) end[0] = P;
    tw_scope scope = tw_scope_begin(ctx);
    tw_tensor parts[OPD_MAX_CHUNKS];
    int done = 0, identity = 1;
    for (int c = 0, start = 0; c < n_chunks; start = end[c++]) {
        const int np = end[c] - start;
        for (int k = 0; k < np; k++)
            pre[k] = (int)sorted[2 * (start + k) + 1];
        /* increasing prefix index, so that rows stay grouped as in the batch */
        for (int a = 1; a < np; a++)
            for (int b = a; b > 0 && pre[b - 1] > pre[b]; b--) {
                const int t = pre[b];
                pre[b] = pre[b - 1], pre[b - 1] = t;
            }
        int nr = 0;
        parts[c] = chunk_logits(m, s, pre, np, stok, sval, order + done, &nr);
        done += nr;
    }
    for (int i = 0; i < N; i++) {
        inv[order[i]] = i;
        identity &= order[i] == i;
    }
    tw_tensor logits = n_chunks == 1 ? parts[0] : tw_cat(ctx, parts, n_chunks, 0);
    if (!identity) {
        int64_t ishape[1] = {N};
        logits = tw_index_select(ctx, logits, 0, tw_from_i64(ctx, inv, 1, ishape));
    }
    free(sorted), free(pre);
    return tw_scope_return(ctx, scope, logits);
}

tw_tensor opd_logits(gpt *m, const opd_seqs *s, int share) {
    tw_ctx *ctx = gpt_ctx(m);
    if (tw_status_get(ctx) != TW_OK) return TW_NULL;
    if (s->n_rows < 1) {
        tw_set_error(ctx, TW_ERR_ARG, "opd_logits: the batch has no rows");
        return TW_NULL;
    }
    const int64_t N = s->n_rows, P = s->n_prefix, Tp = s->prefix_len, W = s->width;
    const int64_t T =
        Tp - 1 + W; /* input columns: prefix, then the suffix without its last target */
    int64_t *buf = malloc(sizeof(int64_t) * (size_t)(3 * N * T));
    if (!buf) {
        tw_set_error(ctx, TW_ERR_NOMEM, "opd_logits: out of memory");
        return TW_NULL;
    }
    /* The suffix of row i: the last prefix token, then its targets but the last; validity. */
    int64_t *stok = buf, *sval = buf + N * W;
    for (int64_t i = 0; i < N; i++) {
        const int64_t p = s->row_of[i];
        for (int64_t j = 0; j < W; j++) {
            stok[i * W + j] = j == 0 ? s->prefix[p * Tp + Tp - 1] : s->target[i * W + j - 1];
            sval[i * W + j] = j < s->n_target[i];
        }
    }
    tw_scope scope = tw_scope_begin(ctx);
    tw_tensor logits = TW_NULL;
    int64_t sshape[2] = {N, W};
    int shortest = (int)Tp; /* every prefix needs a token before its last one to be shared */
    for (int64_t p = 0; p < P; p++)
        if (s->poff[p + 1] - s->poff[p] < shortest) shortest = (int)(s->poff[p + 1] - s->poff[p]);
    if (share && Tp >= 2 && shortest >= 2) {
        logits = shared_logits(m, s, stok, sval);
    } else if (share && Tp >= 2) {
        int64_t *ptok = buf + 2 * N * W, *pval = ptok + P * (Tp - 1);
        for (int64_t p = 0; p < P; p++)
            for (int64_t t = 0; t < Tp - 1; t++) {
                ptok[p * (Tp - 1) + t] = s->prefix[p * Tp + t];
                pval[p * (Tp - 1) + t] = s->prefix_valid[p * Tp + t];
            }
        int64_t pshape[2] = {P, Tp - 1};
        gpt_prefix *prefix = NULL;
        if (gpt_prefix_new(m, tw_from_i64(ctx, ptok, 2, pshape), tw_from_i64(ctx, pval, 2, pshape),
                           &prefix) == TW_OK) {
            logits =
                gpt_forward_suffix(m, prefix, s->row_of, (int)N, tw_from_i64(ctx, stok, 2, sshape),
                                   tw_from_i64(ctx, sval, 2, sshape));
            gpt_prefix_free(prefix);
        }
    } else {
        /* Whole rows: prefix (left-padded) then suffix (right-padded); pads at position 0. */
        int64_t *tok = malloc(sizeof(int64_t) * (size_t)(3 * N * T));
        if (!tok) {
            free(buf);
            tw_set_error(ctx, TW_ERR_NOMEM, "opd_logits: out of memory");
            return tw_scope_return(ctx, scope, TW_NULL);
        }
        int64_t *pos = tok + N * T, *val = pos + N * T;
        for (int64_t i = 0; i < N; i++) {
            const int64_t p = s->row_of[i];
            int64_t c = 0;
            for (int64_t t = 0; t < T; t++) {
                int64_t v, x;
                if (t < Tp - 1) {
                    x = s->prefix[p * Tp + t];
                    v = s->prefix_valid[p * Tp + t];
                } else {
                    x = stok[i * W + t - (Tp - 1)];
                    v = sval[i * W + t - (Tp - 1)];
                }
                tok[i * T + t] = x;
                val[i * T + t] = v;
                pos[i * T + t] = v ? c++ : 0;
            }
        }
        int64_t shape[2] = {N, T};
        tw_tensor full =
            gpt_forward(m, tw_from_i64(ctx, tok, 2, shape), tw_from_i64(ctx, pos, 2, shape),
                        tw_from_i64(ctx, val, 2, shape));
        free(tok);
        logits = tw_slice(ctx, full, 1, Tp - 1, T);
    }
    free(buf);
    return tw_scope_return(ctx, scope, logits);
}

/* ---- loss ---- */

opd_loss_params opd_loss_default(void) {
    opd_loss_params p = {.divergence = OPD_DIV_FORWARD_KL, .jsd_beta = 0.5, .skip_tokens = 3};
    return p;
}

static const char *const div_names[] = {"forward_kl", "reverse_kl", "jsd"};

const char *opd_divergence_name(opd_divergence d) {
    return (d >= 0 && d <= OPD_DIV_JSD) ? div_names[d] : "?";
}

int opd_divergence_from_name(const char *name, opd_divergence *out) {
    for (int i = 0; i <= OPD_DIV_JSD; i++)
        if (name && strcmp(name, div_names[i]) == 0) {
            *out = (opd_divergence)i;
            return 0;
        }
    return -1;
}

int opd_loss_weights(const opd_seqs *s, int skip_tokens, float *w) {
    const int N = s->n_rows, W = s->width;
    int rows = 0;
    for (int i = 0; i < N; i++)
        rows += s->n_target[i] > skip_tokens;
    for (int i = 0; i < N; i++) {
        const int counted = s->n_target[i] - skip_tokens;
        for (int j = 0; j < W; j++)
            w[(size_t)i * W + j] = (counted > 0 && j >= skip_tokens && j < s->n_target[i])
                                       ? (float)(1.0 / ((double)counted * rows))
                                       : 0.0f;
    }
    return rows;
}

tw_tensor opd_divergence_tokens(tw_ctx *ctx, tw_tensor student_logits, tw_tensor teacher_logits,
                                opd_loss_params lp) {
    const int label = tw_prof_label(ctx, TW_KIND_LOSS);
    tw_scope scope = tw_scope_begin(ctx);
    tw_tensor ls = tw_log_softmax(ctx, student_logits, -1);
    tw_tensor lt = tw_detach(ctx, tw_log_softmax(ctx, teacher_logits, -1));
    tw_tensor d = TW_NULL;
    switch (lp.divergence) {
    case OPD_DIV_FORWARD_KL:
        d = tw_kl_rows(ctx, lt, ls);
        break;
    case OPD_DIV_REVERSE_KL:
        d = tw_kl_rows(ctx, ls, lt);
        break;
    case OPD_DIV_JSD: {
        const double b = lp.jsd_beta;
        if (!(b > 0.0 && b < 1.0)) {
            tw_set_error(ctx, TW_ERR_ARG, "opd loss: jsd_beta %g must lie in (0, 1)", b);
            break;
        }
        tw_tensor lm =
            tw_logaddexp(ctx, tw_add_scalar(ctx, ls, log(1.0 - b)), tw_add_scalar(ctx, lt, log(b)));
        d = tw_add(ctx, tw_scale(ctx, tw_kl_rows(ctx, lt, lm), b),
                   tw_scale(ctx, tw_kl_rows(ctx, ls, lm), 1.0 - b));
        break;
    }
    default:
        tw_set_error(ctx, TW_ERR_ARG, "opd loss: unknown divergence %d", (int)lp.divergence);
    }
    d = tw_scope_return(ctx, scope, d);
    tw_prof_label(ctx, label);
    return d;
}

tw_tensor opd_ce_tokens(tw_ctx *ctx, tw_tensor logits, tw_tensor targets) {
    const int label = tw_prof_label(ctx, TW_KIND_LOSS);
    tw_scope scope = tw_scope_begin(ctx);
    int64_t N = tw_size(ctx, targets, 0), W = tw_size(ctx, targets, 1);
    int64_t s3[3] = {N, W, 1}, s2[2] = {N, W};
    tw_tensor lp = tw_log_softmax(ctx, logits, -1);
    tw_tensor picked = tw_gather(ctx, lp, 2, tw_reshape(ctx, targets, 3, s3));
    tw_tensor ce = tw_scope_return(ctx, scope, tw_scale(ctx, tw_reshape(ctx, picked, 2, s2), -1.0));
    tw_prof_label(ctx, label);
    return ce;
}

/* ---- groups ---- */

static const char *const mode_names[] = {"demo", "correct_solution"};

const char *opd_teacher_mode_name(opd_teacher_mode m) {
    return (m == OPD_TEACHER_DEMO || m == OPD_TEACHER_CORRECT_SOLUTION) ? mode_names[m] : "?";
}

int opd_teacher_mode_from_name(const char *name, opd_teacher_mode *out) {
    for (int i = 0; i < 2; i++)
        if (name && strcmp(name, mode_names[i]) == 0) {
            *out = (opd_teacher_mode)i;
            return 0;
        }
    return -1;
}

/* The teacher context showing `shown` (a demo when solution == 0). */
static int make_context(char *buf, const task_example *ex, const char *shown, int solution,
                        int replace, double p) {
    char revised[OPD_TEXT_CAP];
    if (replace) {
        if (tmpl_revise_completion(revised, sizeof revised, shown, strlen(shown), p) >=
            sizeof revised)
            return -1;
        shown = revised;
    }
    double note = replace ? p : TMPL_NO_NOTE;
    size_t n = solution ? tmpl_teacher_solution(buf, OPD_CONTEXT_CAP, ex->question, shown, note)
                        : tmpl_teacher_demo(buf, OPD_CONTEXT_CAP, ex->question, shown, note);
    return n < OPD_CONTEXT_CAP ? 0 : -1;
}

int opd_group_build(opd_group *g, const task_example *ex, const char *const *rollouts, int k,
                    int replace, opd_teacher_mode mode) {
    if (k < 1 || k > OPD_MAX_K) return -1;
    g->k = k;
    g->n_correct = 0;
    for (int r = 0; r < k; r++) {
        g->verdict[r] = task_verify(ex, rollouts[r], strlen(rollouts[r]));
        g->n_correct += g->verdict[r].correct;
    }
    g->p_acc = (double)g->n_correct / k;
    for (int r = 0; r < k; r++) {
        size_t n = replace ? tmpl_revise_completion(g->completion[r], OPD_TEXT_CAP, rollouts[r],
                                                    strlen(rollouts[r]), g->p_acc)
                           : (size_t)snprintf(g->completion[r], OPD_TEXT_CAP, "%s", rollouts[r]);
        if (n >= OPD_TEXT_CAP) return -1;
    }
    char demo[OPD_TEXT_CAP];
    if (tmpl_completion(demo, sizeof demo, ex->answer, 1.0) >= sizeof demo) return -1;
    int first = -1, second = -1; /* the first two correct rollouts */
    if (mode == OPD_TEACHER_CORRECT_SOLUTION)
        for (int r = 0; r < k && second < 0; r++)
            if (g->verdict[r].correct) {
                if (first < 0)
                    first = r;
                else
                    second = r;
            }
    if (first < 0 || (k == 1 && second < 0)) {
        /* demo mode, or no correct rollout other than the row itself: every row sees the demo */
        g->n_contexts = 1;
        for (int r = 0; r < k; r++)
            g->context_of[r] = 0;
        return make_context(g->context[0], ex, demo, 0, replace, g->p_acc);
    }
    /* Rows other than `first` see rollout `first`; row `first` sees `second`, or the demo. */
    g->n_contexts = 2;
    for (int r = 0; r < k; r++)
        g->context_of[r] = r == first ? 1 : 0;
    if (make_context(g->context[0], ex, rollouts[first], 1, replace, g->p_acc)) return -1;
    return second >= 0 ? make_context(g->context[1], ex, rollouts[second], 1, replace, g->p_acc)
                       : make_context(g->context[1], ex, demo, 0, replace, g->p_acc);
}

void opd_token_classes(const char *text, int n, uint8_t *cls) {
    static const char marker[] = TMPL_CONF_MARKER;
    const int ml = (int)sizeof marker - 1;
    memset(cls, OPD_TOK_OTHER, (size_t)(n > 0 ? n : 0));
    tmpl_parsed pr = tmpl_parse_completion(text, (size_t)n);
    for (size_t i = 0; i < pr.answer_len; i++)
        cls[pr.answer_off + i] = OPD_TOK_ANSWER;
    int last = -1;
    for (int i = 0; i + ml <= n; i++)
        if (memcmp(text + i, marker, (size_t)ml) == 0) last = i;
    if (last < 0) return;
    int i = last + ml;
    while (i < n && (text[i] == ' ' || text[i] == '\t'))
        i++;
    for (int c = 0; i < n && c < TMPL_CONF_LEN; i++, c++) {
        char ch = text[i];
        if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '+' || ch == '-')) break;
        cls[i] = OPD_TOK_CONF;
    }
}

/* ---- batches ---- */

opd_params opd_params_default(void) {
    opd_params p = {.replace = 1,
                    .teacher = OPD_TEACHER_DEMO,
                    .k = 8,
                    .temperature = 1.0,
                    .max_new = 24,
                    .share_prefix = 1,
                    .loss = opd_loss_default()};
    return p;
}

void opd_batch_free(opd_batch *b) {
    if (!b) return;
    free(b->groups);
    free(b->cls);
    opd_seqs_free(&b->student);
    opd_seqs_free(&b->teacher);
    memset(b, 0, sizeof *b);
}

static int student_prompt_ids(const task_example *ex, int32_t *ids, int cap, int *n) {
    char text[OPD_CONTEXT_CAP];
    size_t len = tmpl_student_prompt(text, sizeof text, ex->question), got = 0;
    if (len >= sizeof text || tok_encode(text, len, ids, (size_t)cap, &got) != TOK_OK) return -1;
    *n = (int)got;
    return 0;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

tw_status opd_batch_from_rollouts(tw_ctx *ctx, const task_example *ex, int n,
                                  const char *const *rollouts, opd_params p, opd_batch *b,
                                  opd_stats *st) {
    memset(b, 0, sizeof *b);
    opd_seqs_init(&b->student);
    opd_seqs_init(&b->teacher);
    if (n < 1 || p.k < 1 || p.k > OPD_MAX_K) {
        tw_set_error(ctx, TW_ERR_ARG, "opd batch: need >= 1 prompt and K in 1..%d (got %d, %d)",
                     OPD_MAX_K, n, p.k);
        return tw_status_get(ctx);
    }
    b->n_prompts = n;
    b->k = p.k;
    int fail = OPD_SEQS_NOMEM; /* or OPD_SEQS_BAD_TEXT: why the batch could not be built */
    b->groups = calloc((size_t)n, sizeof *b->groups);
    if (!b->groups) goto fail;
    double sum_p = 0, sum_conf = 0;
    int formatted = 0;
    int64_t teacher_tokens = 0, prompt_tokens = 0;
    for (int i = 0; i < n; i++) {
        opd_group *g = &b->groups[i];
        if (opd_group_build(g, &ex[i], rollouts + (size_t)i * p.k, p.k, p.replace, p.teacher)) {
            tw_set_error(ctx, TW_ERR_ARG,
                         "opd batch: prompt %d (\"%s\"): a rollout, completion or teacher context "
                         "does not fit its buffer",
                         i, ex[i].question);
            opd_batch_free(b);
            return tw_status_get(ctx);
        }
        sum_p += g->p_acc;
        char prompt[OPD_CONTEXT_CAP];
        tmpl_student_prompt(prompt, sizeof prompt, ex[i].question);
        int sp = opd_seqs_add_prefix_text(&b->student, prompt);
        int tp[2];
        for (int c = 0; c < g->n_contexts; c++) {
            tp[c] = opd_seqs_add_prefix_text(&b->teacher, g->context[c]);
            teacher_tokens += 1 + (int64_t)strlen(g->context[c]);
        }
        prompt_tokens += 1 + (int64_t)strlen(prompt);
        const int worst = min_int(sp, min_int(tp[0], g->n_contexts > 1 ? tp[1] : 0));
        if (worst < 0) {
            fail = worst;
            goto fail;
        }
        for (int r = 0; r < p.k; r++) {
            formatted += !g->verdict[r].format_failure;
            sum_conf += g->verdict[r].confidence;
            const int rs = opd_seqs_add_row_text(&b->student, sp, g->completion[r]);
            const int rt =
                rs < 0 ? 0
                       : opd_seqs_add_row_text(&b->teacher, tp[g->context_of[r]], g->completion[r]);
            if (rs < 0 || rt < 0) {
                fail = min_int(rs, rt);
                goto fail;
            }
        }
    }
    const int N = b->student.n_rows, W = b->student.width;
    b->cls = calloc((size_t)N * W, 1);
    if (!b->cls) goto fail;
    for (int i = 0; i < N; i++) {
        const char *text = b->groups[i / p.k].completion[i % p.k];
        opd_token_classes(text, (int)strlen(text), b->cls + (size_t)i * W);
    }
    if (st) {
        st->mean_p_acc = sum_p / n;
        st->rollout_acc = sum_p / n;
        st->format_adherence = (double)formatted / (n * p.k);
        st->mean_confidence = sum_conf / (n * p.k);
        st->prompt_tokens = prompt_tokens;
        st->teacher_prompt_tokens = teacher_tokens;
        st->train_tokens = 0;
        for (int i = 0; i < N; i++)
            st->train_tokens += b->student.n_target[i];
    }
    return TW_OK;
fail:
    opd_batch_free(b);
    if (fail == OPD_SEQS_BAD_TEXT)
        tw_set_error(ctx, TW_ERR_ARG,
                     "opd batch: a prompt, context or rollout outside the vocabulary: %s",
                     tok_errmsg());
    else
        tw_set_error(ctx, TW_ERR_NOMEM, "opd batch: out of memory");
    return tw_status_get(ctx);
}

tw_status opd_batch_sample(gpt *student, tw_rng *rng, const task_example *ex, int n, opd_params p,
                           opd_batch *b, opd_stats *st) {
    return opd_batch_sample_part(student, rng, ex, n, 0, 0, p, b, st);
}

tw_status opd_batch_sample_part(gpt *student, tw_rng *rng, const task_example *ex, int n, int first,
                                int total, opd_params p, opd_batch *b, opd_stats *st) {
    tw_ctx *ctx = gpt_ctx(student);
    memset(b, 0, sizeof *b);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    if (n < 1 || p.k < 1 || p.k > OPD_MAX_K || p.max_new < 1) {
        tw_set_error(ctx, TW_ERR_ARG,
                     "opd_batch_sample: need >= 1 prompt, K in 1..%d and max_new >= 1", OPD_MAX_K);
        return tw_status_get(ctx);
    }
    if (total != 0 && (first < 0 || first + n > total)) {
        tw_set_error(ctx, TW_ERR_ARG,
                     "opd_batch_sample: prompts [%d, %d) are not part of a batch of %d", first,
                     first + n, total);
        return tw_status_get(ctx);
    }
    tw_prof_phase(ctx, OPD_PHASE_ROLLOUT);
    const double t0 = clock_now_s();
    const int cap = OPD_CONTEXT_CAP;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n * cap);
    int *lens = malloc(sizeof(int) * (size_t)n);
    const int64_t N = (int64_t)n * p.k;
    int64_t *out = malloc(sizeof(int64_t) * (size_t)(N * p.max_new));
    char *texts = malloc((size_t)N * OPD_TEXT_CAP);
    const char **rollouts = malloc(sizeof(char *) * (size_t)N);
    int64_t *ptok = NULL;
    tw_status rc = (ids && lens && out && texts && rollouts) ? TW_OK : TW_ERR_NOMEM;
    int tp = 0;
    for (int i = 0; rc == TW_OK && i < n; i++) {
        if (student_prompt_ids(&ex[i], ids + (size_t)i * cap, cap, &lens[i])) {
            tw_set_error(ctx, TW_ERR_ARG, "opd_batch_sample: prompt %d cannot be encoded", i);
            rc = TW_ERR_ARG;
        } else if (lens[i] + 1 > tp) {
            tp = lens[i] + 1;
        }
    }
    if (rc == TW_OK) {
        ptok = malloc(sizeof(int64_t) * (size_t)(2 * n * tp));
        rc = ptok ? TW_OK : TW_ERR_NOMEM;
    }
    if (rc == TW_OK) {
        int64_t *pval = ptok + (size_t)n * tp;
        for (int i = 0; i < n; i++) {
            const int pad = tp - (lens[i] + 1);
            for (int t = 0; t < tp; t++) {
                ptok[i * tp + t] = t < pad    ? TOK_PAD
                                   : t == pad ? TOK_BOS
                                              : ids[(size_t)i * cap + t - pad - 1];
                pval[i * tp + t] = t >= pad;
            }
        }
        tw_scope scope = tw_scope_begin(ctx);
        int64_t shape[2] = {n, tp};
        gpt_sample_params sp = {.max_new = p.max_new,
                                .temperature = p.temperature,
                                .stop_token = TOK_EOS,
                                .use_cache = 1,
                                .row_offset = total ? (int64_t)first * p.k : 0,
                                .total_rows = (int64_t)total * p.k};
        tw_tensor toks = TW_NULL;
        rc = gpt_sample_shared(student, tw_from_i64(ctx, ptok, 2, shape),
                               tw_from_i64(ctx, pval, 2, shape), p.k, sp, rng, &toks);
        if (rc == TW_OK) rc = tw_copy_to_i64(ctx, toks, out, (size_t)(N * p.max_new));
        tw_scope_end(ctx, scope);
    }
    for (int64_t r = 0; rc == TW_OK && r < N; r++) {
        char *t = texts + r * OPD_TEXT_CAP;
        int len = 0;
        for (int j = 0;
             j < p.max_new && out[r * p.max_new + j] != TOK_EOS && len < OPD_TEXT_CAP - 1; j++) {
            int c = tok_id_to_char((int32_t)out[r * p.max_new + j]);
            if (c >= 0) t[len++] = (char)c; /* PAD and BOS inside a rollout are dropped */
        }
        t[len] = '\0';
        rollouts[r] = t;
    }
    if (st) {
        memset(st, 0, sizeof *st);
        st->new_tokens = N * p.max_new;
        st->rollout_s = clock_now_s() - t0;
        st->decode_steps = rc == TW_OK ? gpt_sample_steps(out, N, p.max_new, TOK_EOS) : 0;
    }
    if (rc == TW_OK) rc = opd_batch_from_rollouts(ctx, ex, n, rollouts, p, b, st);
    free(ids), free(lens), free(out), free(texts), free(rollouts), free(ptok);
    if (rc == TW_ERR_NOMEM && tw_status_get(ctx) == TW_OK)
        tw_set_error(ctx, TW_ERR_NOMEM, "opd_batch_sample: out of memory");
    return rc;
}

/* Mean of per-target values by class over real targets: out[0] answer, out[1] confidence;
 * count[0..2) (may be NULL) receives the targets of each. */
static void class_means(const float *v, const uint8_t *cls, const opd_seqs *s, double out[2],
                        int64_t *count) {
    double sum[3] = {0}, cnt[3] = {0};
    for (int i = 0; i < s->n_rows; i++)
        for (int j = 0; j < s->n_target[i]; j++) {
            size_t at = (size_t)i * s->width + j;
            sum[cls[at]] += v[at];
            cnt[cls[at]] += 1;
        }
    out[0] = cnt[OPD_TOK_ANSWER] ? sum[OPD_TOK_ANSWER] / cnt[OPD_TOK_ANSWER] : 0.0;
    out[1] = cnt[OPD_TOK_CONF] ? sum[OPD_TOK_CONF] / cnt[OPD_TOK_CONF] : 0.0;
    if (count) count[0] = (int64_t)cnt[OPD_TOK_ANSWER], count[1] = (int64_t)cnt[OPD_TOK_CONF];
}

tw_status opd_batch_loss(gpt *student, gpt *teacher, const opd_batch *b, opd_params p,
                         double *loss_out, opd_stats *st) {
    tw_ctx *ctx = gpt_ctx(student);
    if (tw_status_get(ctx) != TW_OK) return tw_status_get(ctx);
    const opd_seqs *s = &b->student;
    const int64_t N = s->n_rows, W = s->width;
    if (b->teacher.n_rows != N || b->teacher.width != W) {
        tw_set_error(ctx, TW_ERR_ARG, "opd_batch_loss: student and teacher rows differ");
        return tw_status_get(ctx);
    }
    float *w = malloc(sizeof(float) * (size_t)(3 * N * W));
    if (!w) {
        tw_set_error(ctx, TW_ERR_NOMEM, "opd_batch_loss: out of memory");
        return tw_status_get(ctx);
    }
    float *ent_s = w + N * W, *ent_t = ent_s + N * W;
    const int loss_rows = opd_loss_weights(s, p.loss.skip_tokens, w);
    tw_prof_phase(ctx, OPD_PHASE_TEACHER);
    const double t0 = clock_now_s();
    tw_scope scope = tw_scope_begin(ctx);
    tw_no_grad_begin(ctx);
    tw_tensor tl = opd_logits(teacher, &b->teacher, p.share_prefix);
    tw_no_grad_end(ctx);
    tw_prof_phase(ctx, OPD_PHASE_TRAIN);
    const double t1 = clock_now_s();
    tw_tensor sl = opd_logits(student, s, p.share_prefix);
    int64_t shape[2] = {N, W};
    const int label = tw_prof_label(ctx, TW_KIND_LOSS);
    tw_tensor weights = tw_from_f32(ctx, w, 2, shape);
    tw_tensor loss = tw_sum(ctx, tw_mul(ctx, opd_divergence_tokens(ctx, sl, tl, p.loss), weights));
    double lv = NAN;
    tw_item(ctx, loss, &lv);
    tw_prof_label(ctx, label);
    if (tw_status_get(ctx) == TW_OK && isfinite(lv)) tw_backward(ctx, loss);
    const double t2 = clock_now_s();
    tw_prof_phase(ctx, OPD_PHASE_REST);
    if (st && tw_status_get(ctx) == TW_OK) {
        tw_no_grad_begin(ctx);
        const int stats_label = tw_prof_label(ctx, TW_KIND_LOSS);
        tw_tensor sd = tw_detach(ctx, sl);
        double kl = lv;
        if (p.loss.divergence != OPD_DIV_FORWARD_KL) {
            opd_loss_params f = p.loss;
            f.divergence = OPD_DIV_FORWARD_KL;
            tw_item(ctx, tw_sum(ctx, tw_mul(ctx, opd_divergence_tokens(ctx, sd, tl, f), weights)),
                    &kl);
        }
        tw_copy_to_f32(ctx, tw_entropy_rows(ctx, sd), ent_s, (size_t)(N * W));
        tw_copy_to_f32(ctx, tw_entropy_rows(ctx, tl), ent_t, (size_t)(N * W));
        tw_prof_label(ctx, stats_label);
        tw_no_grad_end(ctx);
        double es[2], et[2];
        int64_t cnt[2];
        class_means(ent_s, b->cls, s, es, cnt);
        class_means(ent_t, b->cls, s, et, NULL);
        st->loss_rows = loss_rows;
        st->answer_targets = cnt[0], st->conf_targets = cnt[1];
        st->loss = lv;
        st->kl = kl;
        st->student_ent_answer = es[0], st->student_ent_conf = es[1];
        st->teacher_ent_answer = et[0], st->teacher_ent_conf = et[1];
        st->teacher_s = t1 - t0;
        st->train_s = t2 - t1;
    }
    tw_scope_end(ctx, scope);
    free(w);
    if (loss_out) *loss_out = lv;
    return tw_status_get(ctx);
}
