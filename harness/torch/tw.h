/* tw: the project's C interface to libtorch (the only C++ lives in tw.cpp).
 * Tensors are opaque handles owned by a context; ops record autograd like PyTorch.
 * No C++ exception crosses this interface: failures set a sticky status on the context. */
#ifndef CAOPD_TW_H
#define CAOPD_TW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ---------------------------------------------------------------------------- */

typedef enum tw_status {
    TW_OK = 0,
    TW_ERR_ARG,    /* bad argument: NULL pointer, out-of-range dim, unknown enum value */
    TW_ERR_SHAPE,  /* shapes or dtypes do not fit the op */
    TW_ERR_HANDLE, /* a null, freed or foreign tensor handle */
    TW_ERR_DEVICE, /* the device does not exist or is not built into this libtorch */
    TW_ERR_NOMEM,  /* an allocation failed */
    TW_ERR_TORCH,  /* libtorch raised an error not classified above */
    TW_ERR_STATE,  /* the call does not fit the object's state (e.g. backward without grad) */
    TW_ERR_DIST,   /* data-parallel: a peer is unreachable, timed out, stopped or disagrees */
} tw_status;

const char *tw_status_str(tw_status s);

/* ---- devices, dtypes, threads ---------------------------------------------------------- */

typedef enum tw_device { TW_DEVICE_CPU = 0, TW_DEVICE_CUDA = 1 } tw_device;
typedef enum tw_dtype {
    TW_DTYPE_F32 = 0, /* the model's dtype */
    TW_DTYPE_I64 = 1, /* token ids, positions */
    TW_DTYPE_BOOL = 2,
    TW_DTYPE_F64 = 3, /* reference computations (finite differences) */
} tw_dtype;

/* 1 when this libtorch has CUDA and a device is visible. */
int tw_cuda_available(void);

/* Uses n cores: n libtorch intra-op threads for ops issued by the calling thread, and one
 * BLAS thread per call. OpenBLAS keeps its own pool, apart from libtorch's; letting both
 * use every core oversubscribes (measured: a training step 4-5x slower on 2 cores), so
 * libtorch's parallel loops (batched matmul, elementwise ops) spread the work instead. */
tw_status tw_set_num_threads(int n);
/* Overrides the BLAS thread count (process-wide), e.g. to measure a single large matmul on
 * every core. TW_ERR_STATE when the BLAS in use offers no such control. */
tw_status tw_set_blas_threads(int n);
/* What BLAS libtorch runs on, e.g. "OpenBLAS 0.3.21 ... Zen". Static storage. */
const char *tw_blas_info(void);

/* libtorch version string, e.g. "1.13.1". Static storage. */
const char *tw_version(void);

/* ---- context and handles --------------------------------------------------------------- */

/* A context owns every tensor made in it; tw_ctx_free releases them all. One thread uses a
 * context at a time; separate contexts may be used from separate threads. */
typedef struct tw_ctx tw_ctx;

/* A tensor handle. {0} is the null handle, returned by any op that fails. Handles of freed
 * tensors are detected (a generation counter), never dereferenced. */
typedef struct tw_tensor {
    uint64_t id;
} tw_tensor;

#define TW_NULL ((tw_tensor){0})
static inline int tw_is_null(tw_tensor t) {
    return t.id == 0;
}

/* Makes a context on `device`. On failure returns a status and writes a message to err
 * (errlen bytes, may be 0). */
tw_status tw_ctx_new(tw_ctx **out, tw_device device, char *err, size_t errlen);
void tw_ctx_free(tw_ctx *ctx); /* NULL is a no-op */
tw_device tw_ctx_device(const tw_ctx *ctx);

/* Sticky error: the first failure is kept with its message until tw_clear_error; while set,
 * every op returns TW_NULL without doing anything. */
tw_status tw_status_get(const tw_ctx *ctx);
const char *tw_errmsg(const tw_ctx *ctx); /* "" when no error; valid until the next clear */
void tw_clear_error(tw_ctx *ctx);
/* Records a failure found by code built on tw (printf-style message), unless one is already
 * set, so callers read every error the same way. */
void tw_set_error(tw_ctx *ctx, tw_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Number of live tensors in the context (for leak checks in tests). */
size_t tw_live_count(const tw_ctx *ctx);

/* ---- profile: where the time of the ops goes ------------------------------------------- */

/* Kinds of operation, for the profile. An op's kind is fixed by the tw function (tw_linear is
 * MATMUL, tw_reshape VIEW, ...) unless the caller labels a region (tw_prof_label): every op made
 * inside it then counts as the label's kind (the softmax of attention is ATTENTION, the one of
 * sampling SAMPLING). The backward pass of an op counts as the kind of its forward op. */
typedef enum tw_kind {
    TW_KIND_MATMUL = 0,  /* tw_matmul, tw_linear */
    TW_KIND_ATTENTION,   /* tw_causal_attention and ops in regions labelled attention */
    TW_KIND_LAYER_NORM,  /* tw_layer_norm */
    TW_KIND_SAMPLING,    /* multinomial draws, argmax, and ops in regions labelled sampling */
    TW_KIND_ELEMENTWISE, /* arithmetic, activations, softmax, reductions */
    TW_KIND_GATHER,      /* embedding, index_select, gather, cat, slice assignment */
    TW_KIND_ALLOC,       /* new tensors (zeros, full, from host buffers, clone, contiguous)
                            and copies to the host */
    TW_KIND_LOSS,        /* cross-entropy, KL, entropy, and ops in regions labelled loss */
    TW_KIND_VIEW,        /* reshape, transpose, slice, detach (no arithmetic: pure overhead) */
    TW_KIND_OPTIMIZER,   /* zero_grad, clipping, AdamW, weight copies and the EMA */
    TW_KIND_OTHER,       /* the rest, and the autograd engine's own time outside the ops */
    TW_KIND_COUNT
} tw_kind;
const char *tw_kind_name(tw_kind k); /* "matmul", "attention", ...; "?" out of range */

/* Phases: 0..TW_PROF_PHASES-1; what each means is the caller's (opd.h names the step's). */
#define TW_PROF_PHASES 4

typedef struct tw_prof_cell {
    int64_t calls;  /* tw calls (forward) and autograd nodes (backward) */
    double seconds; /* wall seconds inside them */
} tw_prof_cell;

typedef struct tw_prof {
    tw_prof_cell cell[TW_PROF_PHASES][TW_KIND_COUNT];
    double flops[TW_PROF_PHASES]; /* matmul FLOPs (tw_matmul, tw_linear, tw_causal_attention's
                                     two products): 2 m n k per product, three times that for a
                                     product made under grad whose result requires grad (the
                                     backward pass's two products) */
} tw_prof;

/* Starts (on != 0, clearing the table) or stops counting on ctx (the table is kept to read). Off
 * (the default), each op pays one branch. While on, every tw call is timed into [phase][kind], and
 * tw_backward times each autograd node (libtorch's RecordFunction callbacks on the calling thread).
 */
void tw_prof_enable(tw_ctx *ctx, int on);
int tw_prof_enabled(const tw_ctx *ctx);
void tw_prof_clear(tw_ctx *ctx);
/* Copies the table (all zeros when never enabled). */
void tw_prof_read(const tw_ctx *ctx, tw_prof *out);
/* Sets the phase later ops count in (0..TW_PROF_PHASES-1; others are ignored) and returns
 * the previous one. Costs nothing measurable when the profile is off. */
int tw_prof_phase(tw_ctx *ctx, int phase);
/* Labels later ops with kind (a tw_kind; -1 ends the label) and returns the previous label, so
 * regions nest: int old = tw_prof_label(ctx, TW_KIND_ATTENTION); ...; tw_prof_label(ctx, old). */
int tw_prof_label(tw_ctx *ctx, int kind);

/* ---- scopes: temporaries freed in one call --------------------------------------------- */

/* Every tensor created while a scope is open belongs to the innermost scope and is freed by
 * tw_scope_end, unless tw_keep moved it out. Tensors made outside any scope are owned by
 * the caller (tw_free, or tw_ctx_free). Scopes nest. */
typedef struct tw_scope {
    size_t mark;
} tw_scope;

tw_scope tw_scope_begin(tw_ctx *ctx);
void tw_scope_end(tw_ctx *ctx, tw_scope scope);
/* Ends the scope like tw_scope_end but keeps t alive, handing it to the enclosing scope
 * (or to the caller when no scope is open). Meant for a tensor made inside the scope: one
 * the caller had kept (tw_keep) becomes scope-owned again. Returns t (TW_NULL stays). */
tw_tensor tw_scope_return(tw_ctx *ctx, tw_scope scope, tw_tensor t);
/* Moves t out of any scope: the caller now owns it. Returns t. */
tw_tensor tw_keep(tw_ctx *ctx, tw_tensor t);
/* Frees one tensor. Null is a no-op; a freed or foreign handle sets TW_ERR_HANDLE. */
void tw_free(tw_ctx *ctx, tw_tensor t);

/* ---- creation and copies --------------------------------------------------------------- */

tw_tensor tw_zeros(tw_ctx *ctx, tw_dtype dtype, int ndim, const int64_t *shape);
tw_tensor tw_full(tw_ctx *ctx, tw_dtype dtype, double value, int ndim, const int64_t *shape);
tw_tensor tw_arange(tw_ctx *ctx, int64_t n); /* int64 0..n-1 */
/* Copies `numel(shape)` elements from data into a new tensor. */
tw_tensor tw_from_f32(tw_ctx *ctx, const float *data, int ndim, const int64_t *shape);
tw_tensor tw_from_i64(tw_ctx *ctx, const int64_t *data, int ndim, const int64_t *shape);
tw_tensor tw_from_f64(tw_ctx *ctx, const double *data, int ndim, const int64_t *shape);
/* A new tensor with the same data (no autograd history). */
tw_tensor tw_clone(tw_ctx *ctx, tw_tensor t);

/* Copies t's elements (row-major) out to buf, which holds n elements; n must equal numel. */
tw_status tw_copy_to_f32(tw_ctx *ctx, tw_tensor t, float *buf, size_t n);
tw_status tw_copy_to_i64(tw_ctx *ctx, tw_tensor t, int64_t *buf, size_t n);
tw_status tw_copy_to_f64(tw_ctx *ctx, tw_tensor t, double *buf, size_t n);
/* Overwrites t's elements from buf in place, without recording autograd. */
tw_status tw_copy_from_f32(tw_ctx *ctx, tw_tensor t, const float *buf, size_t n);
/* dst <- src in place (same shape), no autograd. */
tw_status tw_assign(tw_ctx *ctx, tw_tensor dst, tw_tensor src);
/* dst <- dst + w * (src - dst) in place, no autograd (EMA: w = alpha). */
tw_status tw_lerp_(tw_ctx *ctx, tw_tensor dst, tw_tensor src, double w);

/* ---- queries --------------------------------------------------------------------------- */

#define TW_MAX_DIMS 8
int tw_ndim(tw_ctx *ctx, tw_tensor t);              /* -1 on a bad handle */
int64_t tw_size(tw_ctx *ctx, tw_tensor t, int dim); /* negative dim counts from the end */
int64_t tw_numel(tw_ctx *ctx, tw_tensor t);
tw_dtype tw_dtype_of(tw_ctx *ctx, tw_tensor t);
/* Writes the shape into dims[TW_MAX_DIMS]; returns ndim or -1. */
int tw_shape(tw_ctx *ctx, tw_tensor t, int64_t *dims);
/* The value of a one-element tensor. */
tw_status tw_item(tw_ctx *ctx, tw_tensor t, double *out);

/* ---- random numbers -------------------------------------------------------------------- */

/* A seeded generator whose full state can be saved and restored exactly. */
typedef struct tw_rng tw_rng;
tw_status tw_rng_new(tw_ctx *ctx, uint64_t seed, tw_rng **out);
void tw_rng_free(tw_rng *rng); /* NULL is a no-op */
/* State as bytes: with buf NULL, writes the needed size to *len. */
tw_status tw_rng_get_state(tw_rng *rng, uint8_t *buf, size_t *len);
tw_status tw_rng_set_state(tw_rng *rng, const uint8_t *buf, size_t len);

tw_tensor tw_randn(tw_ctx *ctx, tw_rng *rng, double mean, double std, int ndim,
                   const int64_t *shape);
/* One draw per row of probs (..., V), non-negative, rows need not sum to 1 -> int64 (...). */
tw_tensor tw_multinomial(tw_ctx *ctx, tw_rng *rng, tw_tensor probs);
/* tw_multinomial for rows [row_offset, row_offset + R) of a batch of total_rows rows, of which
 * probs (R, V) holds only these: the generator draws for all total_rows x V entries, exactly as
 * tw_multinomial on the whole batch would, and the draws of these rows are returned (int64
 * (R)). So a row's draw does not depend on how a batch is split across processes. */
tw_tensor tw_multinomial_rows(tw_ctx *ctx, tw_rng *rng, tw_tensor probs, int64_t row_offset,
                              int64_t total_rows);
/* Advances rng exactly as `times` calls of tw_multinomial on (rows, cols) probabilities would. */
tw_status tw_multinomial_skip(tw_ctx *ctx, tw_rng *rng, int64_t rows, int64_t cols, int times);

/* ---- ops (autograd-recorded) ----------------------------------------------------------- */

tw_tensor tw_add(tw_ctx *ctx, tw_tensor a, tw_tensor b); /* broadcasting */
tw_tensor tw_mul(tw_ctx *ctx, tw_tensor a, tw_tensor b);
tw_tensor tw_scale(tw_ctx *ctx, tw_tensor a, double s);
tw_tensor tw_add_scalar(tw_ctx *ctx, tw_tensor a, double s);
tw_tensor tw_exp(tw_ctx *ctx, tw_tensor a);
tw_tensor tw_log(tw_ctx *ctx, tw_tensor a);
tw_tensor tw_to_dtype(tw_ctx *ctx, tw_tensor a, tw_dtype dtype);
/* Elementwise comparisons -> bool. */
tw_tensor tw_eq(tw_ctx *ctx, tw_tensor a, tw_tensor b);
tw_tensor tw_eq_scalar(tw_ctx *ctx, tw_tensor a, double s);

/* (..., n, k) @ (..., k, m) with batch broadcasting. */
tw_tensor tw_matmul(tw_ctx *ctx, tw_tensor a, tw_tensor b);
/* x (..., in) @ w(out, in)^T + bias(out); bias may be TW_NULL. */
tw_tensor tw_linear(tw_ctx *ctx, tw_tensor x, tw_tensor w, tw_tensor bias);
/* weight (V, C) rows gathered by int64 idx (...) -> (..., C). */
tw_tensor tw_embedding(tw_ctx *ctx, tw_tensor weight, tw_tensor idx);
/* Normalizes over the last dim; w, b of that size. */
tw_tensor tw_layer_norm(tw_ctx *ctx, tw_tensor x, tw_tensor w, tw_tensor b, double eps);
tw_tensor tw_gelu(tw_ctx *ctx, tw_tensor x); /* exact (erf) GELU */
tw_tensor tw_softmax(tw_ctx *ctx, tw_tensor x, int dim);
tw_tensor tw_log_softmax(tw_ctx *ctx, tw_tensor x, int dim);

/* Causal scaled-dot-product attention. q (B, H, Tq, d); k, v (B, H, Tk, d); query i sits at
 * absolute position Tk - Tq + i. Key j is visible to query position p when j <= p and
 * (key_valid[b, j] or j == p). key_valid is bool/int64 (B, Tk) or TW_NULL (all valid).
 * Returns (B, H, Tq, d). */
tw_tensor tw_causal_attention(tw_ctx *ctx, tw_tensor q, tw_tensor k, tw_tensor v,
                              tw_tensor key_valid);

/* tw_causal_attention in two parts, for a mask shared by several calls (the layers of one
 * forward pass): the additive mask (B, 1, Tq, Tk) float32 (0 where key j is visible to query i
 * under tw_causal_attention's rule, -inf elsewhere; key_valid as there, TW_NULL: (1, 1, Tq, Tk)),
 * then attention softmax(q k^T / sqrt(d) + mask) v with q (B, H, Tq, d), k, v (B, H, Tk, d) and
 * the mask broadcast over heads. Same values as tw_causal_attention's composite path. */
tw_tensor tw_causal_mask(tw_ctx *ctx, tw_tensor key_valid, int64_t tq, int64_t tk);
tw_tensor tw_attention(tw_ctx *ctx, tw_tensor q, tw_tensor k, tw_tensor v, tw_tensor mask);

/* Shape ops. */
tw_tensor tw_reshape(tw_ctx *ctx, tw_tensor x, int ndim, const int64_t *shape);
tw_tensor tw_transpose(tw_ctx *ctx, tw_tensor x, int d0, int d1);
tw_tensor tw_contiguous(tw_ctx *ctx, tw_tensor x);
/* Elements [start, end) of dim; negative values count from the end as in Python. */
tw_tensor tw_slice(tw_ctx *ctx, tw_tensor x, int dim, int64_t start, int64_t end);
tw_tensor tw_cat(tw_ctx *ctx, const tw_tensor *xs, int n, int dim);
tw_tensor tw_index_select(tw_ctx *ctx, tw_tensor x, int dim, tw_tensor idx);
/* out[i] = x[i, idx[i]] along dim (torch.gather). */
tw_tensor tw_gather(tw_ctx *ctx, tw_tensor x, int dim, tw_tensor idx);
/* Writes src into x[..., start:start+len(src), ...] along dim in place (no autograd). */
tw_status tw_slice_assign(tw_ctx *ctx, tw_tensor x, int dim, int64_t start, tw_tensor src);

/* Reductions. */
tw_tensor tw_sum(tw_ctx *ctx, tw_tensor x);
tw_tensor tw_mean(tw_ctx *ctx, tw_tensor x);
tw_tensor tw_sum_dim(tw_ctx *ctx, tw_tensor x, int dim, int keepdim);
tw_tensor tw_mean_dim(tw_ctx *ctx, tw_tensor x, int dim, int keepdim);
tw_tensor tw_argmax(tw_ctx *ctx, tw_tensor x, int dim); /* int64, no keepdim */

/* Mean cross-entropy of logits (N, V) against int64 targets (N); targets equal to
 * ignore_index do not count. */
tw_tensor tw_cross_entropy(tw_ctx *ctx, tw_tensor logits, tw_tensor targets, int64_t ignore_index);
/* Per-row KL(p || q) = sum_v p_v (log p_v - log q_v) over the last dim, from log-probs
 * (..., V) -> (...). */
tw_tensor tw_kl_rows(tw_ctx *ctx, tw_tensor logp, tw_tensor logq);
/* Per-row entropy -sum p log p of the softmax of logits over the last dim -> (...). */
tw_tensor tw_entropy_rows(tw_ctx *ctx, tw_tensor logits);
/* Elementwise log(exp(a) + exp(b)), stable (torch.logaddexp), broadcasting. */
tw_tensor tw_logaddexp(tw_ctx *ctx, tw_tensor a, tw_tensor b);
/* Elementwise isfinite over any dtype -> bool: 1 where neither NaN nor infinite. */
tw_tensor tw_isfinite(tw_ctx *ctx, tw_tensor a);

/* ---- autograd -------------------------------------------------------------------------- */

tw_status tw_set_requires_grad(tw_ctx *ctx, tw_tensor t, int requires);
tw_tensor tw_detach(tw_ctx *ctx, tw_tensor t);
/* Backpropagates from a one-element tensor, accumulating into leaves' gradients. */
tw_status tw_backward(tw_ctx *ctx, tw_tensor loss);
/* The accumulated gradient of a leaf (a new handle sharing its storage), or TW_NULL with
 * no error when it has none yet. */
tw_tensor tw_grad(tw_ctx *ctx, tw_tensor t);
tw_status tw_zero_grad(tw_ctx *ctx, const tw_tensor *params, int n);
/* No-grad region for the calling thread; pairs nest. */
void tw_no_grad_begin(tw_ctx *ctx);
void tw_no_grad_end(tw_ctx *ctx);

/* ---- optimization ---------------------------------------------------------------------- */

/* Scales the gradients of params so their global L2 norm is at most max_norm (as torch's
 * clip_grad_norm_). Writes the norm before clipping to *norm_out (may be NULL). */
tw_status tw_clip_grad_norm(tw_ctx *ctx, const tw_tensor *params, int n, double max_norm,
                            double *norm_out);

typedef struct tw_adamw_params {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay; /* decoupled: p *= 1 - lr * weight_decay, for params marked decay */
} tw_adamw_params;

tw_adamw_params tw_adamw_default(void); /* lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01 */

/* AdamW over n parameters (borrowed handles; they must outlive the optimizer). decay[i]
 * says whether param i gets weight decay (NULL: all). Owns its moment tensors. */
typedef struct tw_adamw tw_adamw;
tw_status tw_adamw_new(tw_ctx *ctx, const tw_tensor *params, const int *decay, int n,
                       tw_adamw_params hp, tw_adamw **out);
void tw_adamw_free(tw_adamw *opt); /* NULL is a no-op */
/* One update with learning rate lr (schedules pass it per step). Params without a grad
 * are skipped. */
tw_status tw_adamw_step(tw_adamw *opt, double lr);
int64_t tw_adamw_step_count(const tw_adamw *opt);
void tw_adamw_set_step_count(tw_adamw *opt, int64_t steps);
/* The moment tensors of param i (owned by the optimizer), for checkpoints. */
tw_status tw_adamw_moments(tw_adamw *opt, int i, tw_tensor *m, tw_tensor *v);

/* ---- data-parallel process groups ------------------------------------------------------ */

/* A group of WORLD_SIZE processes, one per rank, that run the same program in lockstep: torch's
 * c10d ProcessGroupGloo (CPU collectives over TCP) with a c10d TCPStore hosted by rank 0 for
 * the rendezvous. Every rank must issue the same collectives in the same order. One thread
 * uses a group at a time. Launch conventions (torchrun's): docs/distributed.md.
 *
 * Errors: every call returns a status; the message (what failed, which variable, rank or peer,
 * what to do) is kept on the group (tw_dist_errmsg) and, for calls on tensors, also set as the
 * context's sticky error. A failed collective leaves the group unusable (the peers may be
 * half-way through it): every later call returns the same error. */
typedef struct tw_dist tw_dist;

typedef struct tw_dist_params {
    int rank;              /* RANK: 0..world_size-1 */
    int world_size;        /* WORLD_SIZE: number of processes (1: no group is needed) */
    char master_addr[256]; /* MASTER_ADDR: host of rank 0, which hosts the TCPStore */
    int master_port;       /* MASTER_PORT: the TCPStore's port on it, 1..65535 */
    double timeout_s;      /* CAOPD_DIST_TIMEOUT_S: joining, and each collective (1800) */
    char ifname[64];       /* GLOO_SOCKET_IFNAME: network interface for the collectives ("":
                              loopback when MASTER_ADDR is a loopback address, else the
                              address the host name resolves to) */
    int agent_store;       /* TORCHELASTIC_USE_AGENT_STORE=True (set by torchrun's static
                              rendezvous): the launcher already hosts the TCPStore at MASTER_ADDR:
                              MASTER_PORT, so rank 0 connects to it like the others, under the key
                              prefix /worker/attempt_<restart_count> */
    int restart_count;     /* TORCHELASTIC_RESTART_COUNT (0) */
} tw_dist_params;

/* Single process: rank 0, world_size 1, master 127.0.0.1:29500, timeout 1800 s. */
tw_dist_params tw_dist_params_default(void);

/* Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's variables), CAOPD_DIST_TIMEOUT_S,
 * GLOO_SOCKET_IFNAME, TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT into *p and
 * checks them. WORLD_SIZE unset (or 1) gives the
 * single-process default; with WORLD_SIZE > 1, RANK, MASTER_ADDR and MASTER_PORT are required.
 * TW_ERR_ARG with a message naming the variable, its value and what it must be. */
tw_status tw_dist_params_from_env(tw_dist_params *p, char *err, size_t errlen);

/* Joins the group described by p (world_size >= 2): rank 0 hosts the TCPStore (unless
 * agent_store), every rank
 * connects to it and waits, up to timeout_s, until all world_size ranks have joined, then the
 * Gloo group is built. Failures (port taken, master unreachable, ranks missing after the
 * timeout, a rank joined twice) return TW_ERR_DIST/TW_ERR_ARG with the message in err.
 * A collective that writes to a peer that has died raises SIGPIPE, which kills a process that
 * does not ignore it before the collective can report the failure: callers ignore SIGPIPE
 * (caopd run does, docs/distributed.md). */
tw_status tw_dist_init(const tw_dist_params *p, tw_dist **out, char *err, size_t errlen);
/* tw_dist_params_from_env then tw_dist_init; *out = NULL (and TW_OK) for a single process. */
tw_status tw_dist_init_env(tw_dist **out, char *err, size_t errlen);
void tw_dist_free(tw_dist *d);                /* NULL is a no-op */
int tw_dist_rank(const tw_dist *d);           /* 0 for NULL */
int tw_dist_size(const tw_dist *d);           /* 1 for NULL */
const char *tw_dist_errmsg(const tw_dist *d); /* "" when no error */

typedef enum tw_dist_op {
    TW_DIST_SUM = 0,
    TW_DIST_MEAN = 1, /* the sum divided by the world size */
    TW_DIST_MAX = 2,
    TW_DIST_MIN = 3,
} tw_dist_op;

/* The collectives below first check that every rank passes the same number of elements (a
 * tiny extra all-reduce), so a mismatch fails on every rank with TW_ERR_SHAPE naming both
 * counts instead of hanging. With d NULL they act on one process (reductions keep the values,
 * broadcasts do nothing). */

/* In-place all-reduce of float32 tensors ts[0..n), flattened into one buffer per call. */
tw_status tw_dist_allreduce(tw_dist *d, tw_ctx *ctx, const tw_tensor *ts, int n, tw_dist_op op);

/* Data-parallel gradient reduction over the leaves params[0..n) (float32): every rank ends with
 * grad_i = sum_r weight_r * grad_i,r / sum_r weight_r, where weight_r is the weight of rank r's
 * (mean) loss, e.g. the number of sequences it averaged over; one flattened all-reduce. A leaf
 * without a gradient counts as zeros and gets the reduced gradient. *total_weight (may be NULL)
 * receives sum_r weight_r; when it is 0 the gradients become zero. */
tw_status tw_dist_allreduce_grads(tw_dist *d, tw_ctx *ctx, const tw_tensor *params, int n,
                                  double weight, double *total_weight);

/* In-place all-reduce of host doubles buf[0..n). */
tw_status tw_dist_allreduce_f64(tw_dist *d, double *buf, int n, tw_dist_op op);

/* Copies rank root's float32 tensors ts[0..n) into every rank's (same shapes), flattened into
 * one buffer; no autograd. */
tw_status tw_dist_broadcast(tw_dist *d, tw_ctx *ctx, const tw_tensor *ts, int n, int root);

/* Copies rank root's bytes buf[0..len) into every rank's buf. */
tw_status tw_dist_broadcast_bytes(tw_dist *d, void *buf, size_t len, int root);

/* Returns when every rank has called it (or fails after the timeout). */
tw_status tw_dist_barrier(tw_dist *d);

#ifdef __cplusplus
}
#endif

#endif
