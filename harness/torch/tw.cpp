// tw.cpp: the libtorch side of tw.h, the project's only C++.
// Handles index a per-context slot table (index, generation, context tag); every entry point
// catches C++ exceptions and turns them into a sticky status with a message.
#include "harness/torch/tw.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/SequenceNumber.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>
#include <dlfcn.h>
#include <torch/csrc/api/include/torch/version.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

// Raised by our own argument checks inside ops; reported as TW_ERR_SHAPE.
struct shape_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
#define SHAPE_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) throw shape_error(c10::str(__VA_ARGS__));                                     \
    } while (0)

struct Slot {
    at::Tensor t;
    uint16_t gen = 1;
    bool live = false;
    bool in_scope = false;
};

std::atomic<uint16_t> next_tag{1};

std::string shape_str(const at::Tensor &t) {
    if (!t.defined()) return "undefined";
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); i++) {
        if (i) s += ", ";
        s += std::to_string(t.size(i));
    }
    s += "] ";
    s += c10::toString(t.scalar_type());
    return s;
}

// The first line of a c10::Error message, without the C++ backtrace.
std::string torch_msg(const c10::Error &e) {
    std::string m = e.what_without_backtrace();
    size_t nl = m.find('\n');
    if (nl != std::string::npos) m.resize(nl);
    return m;
}

at::ScalarType to_scalar(tw_dtype d, bool *ok) {
    *ok = true;
    switch (d) {
    case TW_DTYPE_F32:
        return at::kFloat;
    case TW_DTYPE_I64:
        return at::kLong;
    case TW_DTYPE_BOOL:
        return at::kBool;
    case TW_DTYPE_F64:
        return at::kDouble;
    }
    *ok = false;
    return at::kFloat;
}

} // namespace

struct tw_ctx {
    tw_device device = TW_DEVICE_CPU;
    at::Device torch_device{at::kCPU};
    uint16_t tag = 1;
    std::vector<Slot> slots;
    std::vector<uint32_t> free_slots;
    std::vector<uint64_t> scope_log; // handles created inside open scopes
    int scope_depth = 0;
    size_t live = 0;
    std::vector<bool> grad_stack;
    tw_status status = TW_OK;
    std::string msg;
    // The profile (tw_prof_*): counted only while prof is set.
    bool prof = false;
    int phase = 0;
    int label = -1;     // a tw_kind, or -1
    int prof_depth = 0; // tw calls in progress (a call made inside another counts in the outer)
    tw_prof table{};
    // (first autograd sequence number, kind) of each forward op that made autograd nodes, in
    // increasing order: tw_backward charges each node to the kind of the op that made it.
    std::vector<std::pair<int64_t, int>> seq_kind;

    void fail(tw_status s, const std::string &m) {
        if (status != TW_OK) return; // keep the first error
        status = s;
        msg = m;
    }

    // Returns the tensor behind h, or nullptr (and sets the error) for a bad handle.
    at::Tensor *get(tw_tensor h, const char *op, int argno) {
        uint32_t idx = (uint32_t)(h.id & 0xffffffffu);
        uint16_t gen = (uint16_t)((h.id >> 32) & 0xffffu);
        uint16_t t = (uint16_t)(h.id >> 48);
        const char *why = nullptr;
        if (h.id == 0)
            why = "is the null handle (an earlier op failed or it was never set)";
        else if (t != tag)
            why = "belongs to another context";
        else if (idx == 0 || idx > slots.size())
            why = "is not a valid handle";
        else if (!slots[idx - 1].live || slots[idx - 1].gen != gen)
            why = "was already freed";
        if (why) {
            fail(TW_ERR_HANDLE,
                 std::string(op) + ": tensor argument " + std::to_string(argno) + " " + why);
            return nullptr;
        }
        return &slots[idx - 1].t;
    }

    tw_tensor add(at::Tensor t) {
        uint32_t idx;
        if (!free_slots.empty()) {
            idx = free_slots.back();
            free_slots.pop_back();
        } else {
            slots.emplace_back();
            idx = (uint32_t)slots.size();
        }
        Slot &s = slots[idx - 1];
        s.t = std::move(t);
        s.live = true;
        s.in_scope = scope_depth > 0;
        live++;
        tw_tensor h{((uint64_t)tag << 48) | ((uint64_t)s.gen << 32) | idx};
        if (s.in_scope) scope_log.push_back(h.id);
        return h;
    }

    void release(uint32_t idx) {
        Slot &s = slots[idx - 1];
        s.t = at::Tensor();
        s.live = false;
        s.in_scope = false;
        s.gen = (uint16_t)(s.gen + 1 ? s.gen + 1 : 1);
        free_slots.push_back(idx);
        live--;
    }

    at::TensorOptions opts(at::ScalarType st) const {
        return at::TensorOptions().dtype(st).device(torch_device);
    }
};

struct tw_rng {
    tw_ctx *ctx;
    at::Generator gen;
};

struct tw_adamw {
    tw_ctx *ctx;
    std::vector<tw_tensor> params;
    std::vector<int> decay;
    std::vector<tw_tensor> m, v; // owned moment tensors, same shapes as params
    tw_adamw_params hp;
    int64_t steps = 0;
};

namespace {

// Runs f, turning any exception into the context's error. Returns false on failure.
template <class F> bool guarded(tw_ctx *ctx, const char *op, const std::string &shapes, F &&f) {
    try {
        f();
        return true;
    } catch (const shape_error &e) {
        ctx->fail(TW_ERR_SHAPE, std::string(op) + ": " + e.what() +
                                    (shapes.empty() ? "" : " (inputs: " + shapes + ")"));
    } catch (const c10::Error &e) {
        ctx->fail(TW_ERR_TORCH, std::string(op) + ": " + torch_msg(e) +
                                    (shapes.empty() ? "" : " (inputs: " + shapes + ")"));
    } catch (const std::bad_alloc &) {
        ctx->fail(TW_ERR_NOMEM, std::string(op) + ": out of memory" +
                                    (shapes.empty() ? "" : " (inputs: " + shapes + ")"));
    } catch (const std::exception &e) {
        ctx->fail(TW_ERR_TORCH, std::string(op) + ": " + e.what());
    } catch (...) {
        ctx->fail(TW_ERR_TORCH, std::string(op) + ": unknown C++ exception");
    }
    return false;
}

// The kind of a tw function, by name (tw.h, tw_kind).
int kind_of(const char *name) {
    static const struct {
        const char *name;
        int kind;
    } table[] = {
        {"tw_matmul", TW_KIND_MATMUL},
        {"tw_linear", TW_KIND_MATMUL},
        {"tw_causal_attention", TW_KIND_ATTENTION},
        {"tw_attention", TW_KIND_ATTENTION},
        {"tw_causal_mask", TW_KIND_ATTENTION},
        {"tw_layer_norm", TW_KIND_LAYER_NORM},
        {"tw_multinomial", TW_KIND_SAMPLING},
        {"tw_multinomial_rows", TW_KIND_SAMPLING},
        {"tw_multinomial_skip", TW_KIND_SAMPLING},
        {"tw_argmax", TW_KIND_SAMPLING},
        {"tw_embedding", TW_KIND_GATHER},
        {"tw_index_select", TW_KIND_GATHER},
        {"tw_gather", TW_KIND_GATHER},
        {"tw_cat", TW_KIND_GATHER},
        {"tw_slice_assign", TW_KIND_GATHER},
        {"tw_full", TW_KIND_ALLOC},
        {"tw_arange", TW_KIND_ALLOC},
        {"tw_from_f32", TW_KIND_ALLOC},
        {"tw_from_i64", TW_KIND_ALLOC},
        {"tw_from_f64", TW_KIND_ALLOC},
        {"tw_clone", TW_KIND_ALLOC},
        {"tw_copy_to_f32", TW_KIND_ALLOC},
        {"tw_copy_to_i64", TW_KIND_ALLOC},
        {"tw_copy_to_f64", TW_KIND_ALLOC},
        {"tw_copy_from_f32", TW_KIND_ALLOC},
        {"tw_item", TW_KIND_ALLOC},
        {"tw_contiguous", TW_KIND_ALLOC},
        {"tw_randn", TW_KIND_ALLOC},
        {"tw_cross_entropy", TW_KIND_LOSS},
        {"tw_kl_rows", TW_KIND_LOSS},
        {"tw_entropy_rows", TW_KIND_LOSS},
        {"tw_reshape", TW_KIND_VIEW},
        {"tw_transpose", TW_KIND_VIEW},
        {"tw_slice", TW_KIND_VIEW},
        {"tw_detach", TW_KIND_VIEW},
        {"tw_zero_grad", TW_KIND_OPTIMIZER},
        {"tw_clip_grad_norm", TW_KIND_OPTIMIZER},
        {"tw_adamw_step", TW_KIND_OPTIMIZER},
        {"tw_assign", TW_KIND_OPTIMIZER},
        {"tw_lerp_", TW_KIND_OPTIMIZER},
        {"tw_backward", TW_KIND_OTHER},
        {"tw_set_requires_grad", TW_KIND_OTHER},
    };
    for (const auto &e : table)
        if (std::strcmp(e.name, name) == 0) return e.kind;
    return TW_KIND_ELEMENTWISE; // arithmetic, activations, softmax, reductions, comparisons
}

// Times one tw call into the context's profile when it is on (one branch when it is off). Only
// the outermost call counts; the autograd nodes it makes are charged to its kind.
struct prof_timer {
    tw_ctx *ctx = nullptr;
    int kind = TW_KIND_OTHER;
    int64_t seq0 = 0;
    std::chrono::steady_clock::time_point t0;
    prof_timer(tw_ctx *c, const char *name) {
        if (!c || !c->prof || c->prof_depth++ > 0) return;
        ctx = c;
        kind = c->label >= 0 ? c->label : kind_of(name);
        seq0 = (int64_t)at::sequence_number::peek();
        t0 = std::chrono::steady_clock::now();
    }
    ~prof_timer() {
        if (!ctx) {
            return;
        }
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        tw_prof_cell &cell = ctx->table.cell[ctx->phase][kind];
        cell.calls++;
        cell.seconds += dt;
        if ((int64_t)at::sequence_number::peek() != seq0) ctx->seq_kind.emplace_back(seq0, kind);
        ctx->prof_depth = 0;
    }
    prof_timer(const prof_timer &) = delete;
    prof_timer &operator=(const prof_timer &) = delete;
};

// Adds the FLOPs of a product whose result is r (2 flops per multiply-add) to the profile:
// three times as many when the product will be differentiated (the backward's two products).
void prof_flops(tw_ctx *ctx, double flops, const at::Tensor &r) {
    if (!ctx->prof) return;
    const bool bw = c10::GradMode::is_enabled() && r.requires_grad();
    ctx->table.flops[ctx->phase] += bw ? 3.0 * flops : flops;
}

// The backward pass of a profiled context: an autograd node's time goes to the kind of the forward
// op whose sequence numbers contain the node's. Installed for one tw_backward on this thread.
struct bw_profile {
    struct node_start : at::ObserverContext {
        std::chrono::steady_clock::time_point t0;
    };
    static thread_local tw_ctx *cur;
    static thread_local double *in_nodes;
    at::CallbackHandle handle = 0;

    static int kind_of_seq(tw_ctx *ctx, int64_t seq) {
        if (seq < 0) return TW_KIND_OPTIMIZER; // AccumulateGrad: writing the leaves' .grad
        auto &v = ctx->seq_kind;
        auto it = std::upper_bound(v.begin(), v.end(), std::make_pair(seq, INT32_MAX));
        return it == v.begin() ? TW_KIND_OTHER : std::prev(it)->second;
    }
    static std::unique_ptr<at::ObserverContext> start(const at::RecordFunction &) {
        auto c = std::make_unique<node_start>();
        c->t0 = std::chrono::steady_clock::now();
        return c;
    }
    static void end(const at::RecordFunction &fn, at::ObserverContext *oc) {
        if (!cur || !oc) return;
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                        static_cast<node_start *>(oc)->t0)
                              .count();
        tw_prof_cell &cell = cur->table.cell[cur->phase][kind_of_seq(cur, fn.seqNr())];
        cell.calls++;
        cell.seconds += dt;
        *in_nodes += dt;
    }
    bw_profile(tw_ctx *ctx, double *acc) {
        cur = ctx;
        in_nodes = acc;
        handle = at::addThreadLocalCallback(
            at::RecordFunctionCallback(start, end).scopes({at::RecordScope::BACKWARD_FUNCTION}));
    }
    ~bw_profile() {
        at::removeCallback(handle);
        cur = nullptr;
        in_nodes = nullptr;
    }
};
thread_local tw_ctx *bw_profile::cur = nullptr;
thread_local double *bw_profile::in_nodes = nullptr;

template <size_t N> std::string shapes_of(at::Tensor *const (&ts)[N]) {
    std::string s;
    for (size_t i = 0; i < N; i++) {
        if (i) s += ", ";
        s += ts[i] ? shape_str(*ts[i]) : "none";
    }
    return s;
}

// An op over N tensor arguments. Optional arguments (may be TW_NULL) are flagged in `optional`.
template <size_t N, class F>
tw_tensor op(tw_ctx *ctx, const char *name, const tw_tensor (&in)[N], F &&f,
             unsigned optional = 0) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    prof_timer pt(ctx, name);
    at::Tensor *ts[N];
    for (size_t i = 0; i < N; i++) {
        if ((optional >> i) & 1u && in[i].id == 0) {
            ts[i] = nullptr;
            continue;
        }
        ts[i] = ctx->get(in[i], name, (int)i + 1);
        if (!ts[i]) return TW_NULL;
    }
    at::Tensor r;
    if (!guarded(ctx, name, shapes_of(ts), [&] { r = f(ts); })) return TW_NULL;
    return ctx->add(std::move(r));
}

bool check_shape(tw_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                 std::vector<int64_t> *out) {
    if (ndim < 0 || ndim > TW_MAX_DIMS || (ndim > 0 && !shape)) {
        ctx->fail(TW_ERR_ARG, std::string(name) + ": ndim " + std::to_string(ndim) +
                                  " out of range 0.." + std::to_string(TW_MAX_DIMS));
        return false;
    }
    out->assign(shape, shape + ndim);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            ctx->fail(TW_ERR_ARG, std::string(name) + ": negative size " +
                                      std::to_string(shape[i]) + " in dim " + std::to_string(i));
            return false;
        }
    }
    return true;
}

int64_t numel_of(const std::vector<int64_t> &s) {
    int64_t n = 1;
    for (int64_t d : s)
        n *= d;
    return n;
}

bool rng_ok(tw_ctx *ctx, tw_rng *rng, const char *name) {
    if (!ctx || ctx->status != TW_OK) return false;
    if (!rng || rng->ctx != ctx) {
        ctx->fail(TW_ERR_ARG, std::string(name) + ": generator is NULL or from another context");
        return false;
    }
    return true;
}

} // namespace

extern "C" {

const char *tw_status_str(tw_status s) {
    switch (s) {
    case TW_OK:
        return "ok";
    case TW_ERR_ARG:
        return "invalid argument";
    case TW_ERR_SHAPE:
        return "shape mismatch";
    case TW_ERR_HANDLE:
        return "invalid tensor handle";
    case TW_ERR_DEVICE:
        return "device unavailable";
    case TW_ERR_NOMEM:
        return "out of memory";
    case TW_ERR_TORCH:
        return "libtorch error";
    case TW_ERR_STATE:
        return "invalid state";
    case TW_ERR_DIST:
        return "data-parallel group failure";
    }
    return "unknown status";
}

int tw_cuda_available(void) {
    try {
        return at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0;
    } catch (...) {
        return 0;
    }
}

tw_status tw_set_num_threads(int n) {
    if (n < 1) return TW_ERR_ARG;
    try {
        at::set_num_threads(n);
    } catch (...) {
        return TW_ERR_TORCH;
    }
    tw_set_blas_threads(1); // TW_ERR_STATE (not OpenBLAS): nothing to set
    return TW_OK;
}

// OpenBLAS keeps its own thread pool, apart from libtorch's; it is reached through the
// process's global symbols so that the project links against whatever libblas.so.3 is.
tw_status tw_set_blas_threads(int n) {
    if (n < 1) return TW_ERR_ARG;
    using set_fn = void (*)(int);
    static set_fn fn = (set_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (!fn) return TW_ERR_STATE;
    fn(n);
    return TW_OK;
}

const char *tw_blas_info(void) {
    using config_fn = const char *(*)(void);
    static config_fn fn = (config_fn)dlsym(RTLD_DEFAULT, "openblas_get_config");
    return fn ? fn() : "not OpenBLAS (libblas.so.3 may be the slow reference BLAS)";
}

const char *tw_version(void) {
#define TW_STR2(x) #x
#define TW_STR(x) TW_STR2(x)
    return TW_STR(TORCH_VERSION_MAJOR) "." TW_STR(TORCH_VERSION_MINOR) "." TW_STR(
        TORCH_VERSION_PATCH);
}

tw_status tw_ctx_new(tw_ctx **out, tw_device device, char *err, size_t errlen) {
    auto report = [&](tw_status s, const char *m) {
        if (err && errlen) snprintf(err, errlen, "%s", m);
        return s;
    };
    if (!out) return report(TW_ERR_ARG, "tw_ctx_new: out is NULL");
    *out = nullptr;
    if (device != TW_DEVICE_CPU && device != TW_DEVICE_CUDA)
        return report(TW_ERR_DEVICE, "tw_ctx_new: unknown device (expected TW_DEVICE_CPU or "
                                     "TW_DEVICE_CUDA)");
    if (device == TW_DEVICE_CUDA && !tw_cuda_available())
        return report(TW_ERR_DEVICE, "tw_ctx_new: CUDA requested but this libtorch has no CUDA "
                                     "support or no GPU is visible; use the CPU device");
    tw_ctx *c = new (std::nothrow) tw_ctx;
    if (!c) return report(TW_ERR_NOMEM, "tw_ctx_new: out of memory");
    c->device = device;
    c->torch_device = device == TW_DEVICE_CUDA ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
    uint16_t t = next_tag.fetch_add(1);
    if (t == 0) t = next_tag.fetch_add(1);
    c->tag = t;
    *out = c;
    if (err && errlen) err[0] = '\0';
    return TW_OK;
}

void tw_ctx_free(tw_ctx *ctx) {
    delete ctx;
}

tw_device tw_ctx_device(const tw_ctx *ctx) {
    return ctx->device;
}

tw_status tw_status_get(const tw_ctx *ctx) {
    return ctx ? ctx->status : TW_ERR_ARG;
}

const char *tw_errmsg(const tw_ctx *ctx) {
    return ctx ? ctx->msg.c_str() : "context is NULL";
}

void tw_clear_error(tw_ctx *ctx) {
    if (!ctx) return;
    ctx->status = TW_OK;
    ctx->msg.clear();
}

void tw_set_error(tw_ctx *ctx, tw_status s, const char *fmt, ...) {
    if (!ctx || ctx->status != TW_OK) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->fail(s == TW_OK ? TW_ERR_STATE : s, buf);
}

size_t tw_live_count(const tw_ctx *ctx) {
    return ctx ? ctx->live : 0;
}

/* ---- profile ---- */

const char *tw_kind_name(tw_kind k) {
    static const char *const names[TW_KIND_COUNT] = {
        "matmul", "attention", "layer_norm", "sampling",  "elementwise", "gather",
        "alloc",  "loss",      "view",       "optimizer", "other"};
    return (k >= 0 && k < TW_KIND_COUNT) ? names[k] : "?";
}

void tw_prof_enable(tw_ctx *ctx, int on) {
    if (!ctx) return;
    if (on) tw_prof_clear(ctx);
    ctx->prof = on != 0;
}

int tw_prof_enabled(const tw_ctx *ctx) {
    return ctx && ctx->prof;
}

void tw_prof_clear(tw_ctx *ctx) {
    if (!ctx) return;
    ctx->table = tw_prof{};
    ctx->seq_kind.clear();
    ctx->prof_depth = 0;
}

void tw_prof_read(const tw_ctx *ctx, tw_prof *out) {
    if (!out) return;
    if (ctx)
        *out = ctx->table;
    else
        *out = tw_prof{};
}

int tw_prof_phase(tw_ctx *ctx, int phase) {
    if (!ctx) return 0;
    const int old = ctx->phase;
    if (phase >= 0 && phase < TW_PROF_PHASES) ctx->phase = phase;
    return old;
}

int tw_prof_label(tw_ctx *ctx, int kind) {
    if (!ctx) return -1;
    const int old = ctx->label;
    ctx->label = (kind >= 0 && kind < TW_KIND_COUNT) ? kind : -1;
    return old;
}

/* ---- scopes ---- */

tw_scope tw_scope_begin(tw_ctx *ctx) {
    ctx->scope_depth++;
    return tw_scope{ctx->scope_log.size()};
}

void tw_scope_end(tw_ctx *ctx, tw_scope scope) {
    for (size_t i = scope.mark; i < ctx->scope_log.size(); i++) {
        uint64_t id = ctx->scope_log[i];
        uint32_t idx = (uint32_t)(id & 0xffffffffu);
        uint16_t gen = (uint16_t)((id >> 32) & 0xffffu);
        Slot &s = ctx->slots[idx - 1];
        if (s.live && s.gen == gen && s.in_scope) ctx->release(idx);
    }
    if (scope.mark < ctx->scope_log.size()) ctx->scope_log.resize(scope.mark);
    if (ctx->scope_depth > 0) ctx->scope_depth--;
}

tw_tensor tw_scope_return(tw_ctx *ctx, tw_scope scope, tw_tensor t) {
    if (t.id != 0 && !ctx->get(t, "tw_scope_return", 1)) t = TW_NULL;
    Slot *s = t.id ? &ctx->slots[(t.id & 0xffffffffu) - 1] : nullptr;
    if (s) s->in_scope = false;
    tw_scope_end(ctx, scope);
    if (s && ctx->scope_depth > 0) {
        s->in_scope = true;
        ctx->scope_log.push_back(t.id);
    }
    return t;
}

tw_tensor tw_keep(tw_ctx *ctx, tw_tensor t) {
    if (t.id == 0) return t;
    if (!ctx->get(t, "tw_keep", 1)) return TW_NULL;
    ctx->slots[(t.id & 0xffffffffu) - 1].in_scope = false;
    return t;
}

void tw_free(tw_ctx *ctx, tw_tensor t) {
    if (!ctx || t.id == 0) return;
    if (!ctx->get(t, "tw_free", 1)) return;
    ctx->release((uint32_t)(t.id & 0xffffffffu));
}

/* ---- creation ---- */

tw_tensor tw_zeros(tw_ctx *ctx, tw_dtype dtype, int ndim, const int64_t *shape) {
    return tw_full(ctx, dtype, 0.0, ndim, shape);
}

tw_tensor tw_full(tw_ctx *ctx, tw_dtype dtype, double value, int ndim, const int64_t *shape) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    prof_timer pt(ctx, "tw_full");
    std::vector<int64_t> s;
    if (!check_shape(ctx, "tw_full", ndim, shape, &s)) return TW_NULL;
    bool ok;
    at::ScalarType st = to_scalar(dtype, &ok);
    if (!ok) {
        ctx->fail(TW_ERR_ARG, "tw_full: unknown dtype " + std::to_string((int)dtype));
        return TW_NULL;
    }
    at::Tensor r;
    if (!guarded(ctx, "tw_full", "", [&] { r = at::full(s, value, ctx->opts(st)); }))
        return TW_NULL;
    return ctx->add(std::move(r));
}

tw_tensor tw_arange(tw_ctx *ctx, int64_t n) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    prof_timer pt(ctx, "tw_arange");
    at::Tensor r;
    if (!guarded(ctx, "tw_arange", "", [&] { r = at::arange(n, ctx->opts(at::kLong)); }))
        return TW_NULL;
    return ctx->add(std::move(r));
}

static tw_tensor from_buffer(tw_ctx *ctx, const char *name, const void *data, at::ScalarType st,
                             int ndim, const int64_t *shape) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    prof_timer pt(ctx, name);
    std::vector<int64_t> s;
    if (!check_shape(ctx, name, ndim, shape, &s)) return TW_NULL;
    if (!data && numel_of(s) > 0) {
        ctx->fail(TW_ERR_ARG, std::string(name) + ": data is NULL");
        return TW_NULL;
    }
    at::Tensor r;
    if (!guarded(ctx, name, "", [&] {
            at::Tensor cpu = at::empty(s, at::TensorOptions().dtype(st));
            if (cpu.numel() > 0) std::memcpy(cpu.data_ptr(), data, cpu.nbytes());
            r = cpu.to(ctx->torch_device);
        }))
        return TW_NULL;
    return ctx->add(std::move(r));
}

tw_tensor tw_from_f32(tw_ctx *ctx, const float *data, int ndim, const int64_t *shape) {
    return from_buffer(ctx, "tw_from_f32", data, at::kFloat, ndim, shape);
}

tw_tensor tw_from_i64(tw_ctx *ctx, const int64_t *data, int ndim, const int64_t *shape) {
    return from_buffer(ctx, "tw_from_i64", data, at::kLong, ndim, shape);
}

tw_tensor tw_from_f64(tw_ctx *ctx, const double *data, int ndim, const int64_t *shape) {
    return from_buffer(ctx, "tw_from_f64", data, at::kDouble, ndim, shape);
}

tw_tensor tw_clone(tw_ctx *ctx, tw_tensor t) {
    return op(ctx, "tw_clone", {t}, [](at::Tensor **a) { return a[0]->detach().clone(); });
}

static tw_status copy_out(tw_ctx *ctx, const char *name, tw_tensor t, void *buf, size_t n,
                          at::ScalarType st) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, name);
    at::Tensor *x = ctx->get(t, name, 1);
    if (!x) return ctx->status;
    if (x->scalar_type() != st) {
        ctx->fail(TW_ERR_SHAPE, std::string(name) + ": tensor is " + shape_str(*x) +
                                    ", expected dtype " + c10::toString(st));
        return ctx->status;
    }
    if ((size_t)x->numel() != n || (!buf && n)) {
        ctx->fail(TW_ERR_SHAPE, std::string(name) + ": buffer holds " + std::to_string(n) +
                                    " elements, tensor " + shape_str(*x) + " has " +
                                    std::to_string(x->numel()));
        return ctx->status;
    }
    guarded(ctx, name, "", [&] {
        at::Tensor c = x->detach().to(at::kCPU).contiguous();
        if (n) std::memcpy(buf, c.data_ptr(), c.nbytes());
    });
    return ctx->status;
}

tw_status tw_copy_to_f32(tw_ctx *ctx, tw_tensor t, float *buf, size_t n) {
    return copy_out(ctx, "tw_copy_to_f32", t, buf, n, at::kFloat);
}

tw_status tw_copy_to_i64(tw_ctx *ctx, tw_tensor t, int64_t *buf, size_t n) {
    return copy_out(ctx, "tw_copy_to_i64", t, buf, n, at::kLong);
}

tw_status tw_copy_to_f64(tw_ctx *ctx, tw_tensor t, double *buf, size_t n) {
    return copy_out(ctx, "tw_copy_to_f64", t, buf, n, at::kDouble);
}

tw_status tw_copy_from_f32(tw_ctx *ctx, tw_tensor t, const float *buf, size_t n) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, "tw_copy_from_f32");
    at::Tensor *x = ctx->get(t, "tw_copy_from_f32", 1);
    if (!x) return ctx->status;
    if (x->scalar_type() != at::kFloat || (size_t)x->numel() != n || (!buf && n)) {
        ctx->fail(TW_ERR_SHAPE, "tw_copy_from_f32: buffer of " + std::to_string(n) +
                                    " floats does not fit tensor " + shape_str(*x));
        return ctx->status;
    }
    guarded(ctx, "tw_copy_from_f32", "", [&] {
        at::NoGradGuard ng;
        at::Tensor cpu = at::from_blob(const_cast<float *>(buf), x->sizes(), at::kFloat);
        x->copy_(cpu);
    });
    return ctx->status;
}

static tw_status inplace2(tw_ctx *ctx, const char *name, tw_tensor dst, tw_tensor src, double w,
                          bool lerp) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, name);
    at::Tensor *d = ctx->get(dst, name, 1);
    if (!d) return ctx->status;
    at::Tensor *s = ctx->get(src, name, 2);
    if (!s) return ctx->status;
    if (d->sizes() != s->sizes() || d->scalar_type() != s->scalar_type()) {
        ctx->fail(TW_ERR_SHAPE, std::string(name) + ": destination " + shape_str(*d) +
                                    " and source " + shape_str(*s) + " differ");
        return ctx->status;
    }
    guarded(ctx, name, "", [&] {
        at::NoGradGuard ng;
        if (lerp)
            d->lerp_(*s, w);
        else
            d->copy_(*s);
    });
    return ctx->status;
}

tw_status tw_assign(tw_ctx *ctx, tw_tensor dst, tw_tensor src) {
    return inplace2(ctx, "tw_assign", dst, src, 0.0, false);
}

tw_status tw_lerp_(tw_ctx *ctx, tw_tensor dst, tw_tensor src, double w) {
    return inplace2(ctx, "tw_lerp_", dst, src, w, true);
}

/* ---- queries ---- */

int tw_ndim(tw_ctx *ctx, tw_tensor t) {
    at::Tensor *x = ctx->get(t, "tw_ndim", 1);
    return x ? (int)x->dim() : -1;
}

int64_t tw_size(tw_ctx *ctx, tw_tensor t, int dim) {
    at::Tensor *x = ctx->get(t, "tw_size", 1);
    if (!x) return -1;
    int64_t nd = x->dim();
    int64_t d = dim < 0 ? dim + nd : dim;
    if (d < 0 || d >= nd) {
        ctx->fail(TW_ERR_ARG,
                  "tw_size: dim " + std::to_string(dim) + " out of range for " + shape_str(*x));
        return -1;
    }
    return x->size(d);
}

int64_t tw_numel(tw_ctx *ctx, tw_tensor t) {
    at::Tensor *x = ctx->get(t, "tw_numel", 1);
    return x ? x->numel() : -1;
}

tw_dtype tw_dtype_of(tw_ctx *ctx, tw_tensor t) {
    at::Tensor *x = ctx->get(t, "tw_dtype_of", 1);
    if (!x) return TW_DTYPE_F32;
    switch (x->scalar_type()) {
    case at::kLong:
        return TW_DTYPE_I64;
    case at::kBool:
        return TW_DTYPE_BOOL;
    case at::kDouble:
        return TW_DTYPE_F64;
    default:
        return TW_DTYPE_F32;
    }
}

int tw_shape(tw_ctx *ctx, tw_tensor t, int64_t *dims) {
    at::Tensor *x = ctx->get(t, "tw_shape", 1);
    if (!x) return -1;
    int nd = (int)x->dim();
    for (int i = 0; i < nd && i < TW_MAX_DIMS; i++)
        dims[i] = x->size(i);
    return nd;
}

tw_status tw_item(tw_ctx *ctx, tw_tensor t, double *out) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, "tw_item");
    at::Tensor *x = ctx->get(t, "tw_item", 1);
    if (!x) return ctx->status;
    if (x->numel() != 1) {
        ctx->fail(TW_ERR_SHAPE, "tw_item: tensor " + shape_str(*x) + " is not one element");
        return ctx->status;
    }
    guarded(ctx, "tw_item", "", [&] { *out = x->item<double>(); });
    return ctx->status;
}

/* ---- random ---- */

tw_status tw_rng_new(tw_ctx *ctx, uint64_t seed, tw_rng **out) {
    if (!ctx || !out) return TW_ERR_ARG;
    *out = nullptr;
    tw_rng *r = nullptr;
    guarded(ctx, "tw_rng_new", "", [&] {
        r = new tw_rng{ctx, at::make_generator<at::CPUGeneratorImpl>(seed)};
    });
    *out = r;
    return r ? TW_OK : ctx->status;
}

void tw_rng_free(tw_rng *rng) {
    delete rng;
}

tw_status tw_rng_get_state(tw_rng *rng, uint8_t *buf, size_t *len) {
    if (!rng || !len) return TW_ERR_ARG;
    try {
        std::lock_guard<std::mutex> lock(rng->gen.mutex());
        at::Tensor s = rng->gen.get_state();
        size_t n = (size_t)s.nbytes();
        if (!buf) {
            *len = n;
            return TW_OK;
        }
        if (*len < n) {
            *len = n;
            return TW_ERR_ARG;
        }
        std::memcpy(buf, s.data_ptr(), n);
        *len = n;
        return TW_OK;
    } catch (...) {
        return TW_ERR_TORCH;
    }
}

tw_status tw_rng_set_state(tw_rng *rng, const uint8_t *buf, size_t len) {
    if (!rng || !buf) return TW_ERR_ARG;
    try {
        at::Tensor s = at::empty({(int64_t)len}, at::kByte);
        std::memcpy(s.data_ptr(), buf, len);
        std::lock_guard<std::mutex> lock(rng->gen.mutex());
        rng->gen.set_state(s);
        return TW_OK;
    } catch (const c10::Error &e) {
        rng->ctx->fail(TW_ERR_ARG, "tw_rng_set_state: " + torch_msg(e));
        return TW_ERR_ARG;
    } catch (...) {
        return TW_ERR_TORCH;
    }
}

// Random draws always come from the CPU generator, then move to the device: the same seed
// gives the same numbers on every device.
tw_tensor tw_randn(tw_ctx *ctx, tw_rng *rng, double mean, double std, int ndim,
                   const int64_t *shape) {
    if (!rng_ok(ctx, rng, "tw_randn")) return TW_NULL;
    std::vector<int64_t> s;
    if (!check_shape(ctx, "tw_randn", ndim, shape, &s)) return TW_NULL;
    at::Tensor r;
    if (!guarded(ctx, "tw_randn", "", [&] {
            r = at::normal(mean, std, s, rng->gen, at::TensorOptions().dtype(at::kFloat))
                    .to(ctx->torch_device);
        }))
        return TW_NULL;
    return ctx->add(std::move(r));
}

tw_tensor tw_multinomial(tw_ctx *ctx, tw_rng *rng, tw_tensor probs) {
    if (!rng_ok(ctx, rng, "tw_multinomial")) return TW_NULL;
    return op(ctx, "tw_multinomial", {probs}, [&](at::Tensor **a) {
        const at::Tensor &p = *a[0];
        SHAPE_CHECK(p.dim() >= 1, "probs must have at least one dim");
        std::vector<int64_t> lead(p.sizes().begin(), p.sizes().end() - 1);
        at::Tensor p2 = p.detach().reshape({-1, p.size(-1)}).to(at::kCPU);
        at::Tensor s;
        s = at::multinomial(p2, 1, false, rng->gen); // the op locks the generator itself
        return s.reshape(lead).to(ctx->torch_device);
    });
}

tw_tensor tw_multinomial_rows(tw_ctx *ctx, tw_rng *rng, tw_tensor probs, int64_t row_offset,
                              int64_t total_rows) {
    if (!rng_ok(ctx, rng, "tw_multinomial_rows")) return TW_NULL;
    return op(ctx, "tw_multinomial_rows", {probs}, [&](at::Tensor **a) {
        const at::Tensor &p = *a[0];
        SHAPE_CHECK(p.dim() == 2, "probs must be (rows, V)");
        const int64_t R = p.size(0);
        SHAPE_CHECK(row_offset >= 0 && R >= 0 && row_offset + R <= total_rows, "rows [", row_offset,
                    ", ", row_offset + R, ") do not lie in a batch of ", total_rows);
        // The other rows get uniform probabilities: the generator consumes exactly what one
        // multinomial over the whole batch consumes, and each row's draw depends only on its
        // own probabilities and its place in the batch.
        at::Tensor full =
            at::ones({total_rows, p.size(1)}, at::TensorOptions().dtype(p.scalar_type()));
        full.narrow(0, row_offset, R).copy_(p.detach());
        at::Tensor s = at::multinomial(full, 1, false, rng->gen);
        return s.narrow(0, row_offset, R).reshape({R}).to(ctx->torch_device);
    });
}

tw_status tw_multinomial_skip(tw_ctx *ctx, tw_rng *rng, int64_t rows, int64_t cols, int times) {
    if (!rng_ok(ctx, rng, "tw_multinomial_skip")) return ctx ? ctx->status : TW_ERR_ARG;
    if (rows < 1 || cols < 1 || times < 0) {
        ctx->fail(TW_ERR_ARG, "tw_multinomial_skip: rows and cols must be >= 1 and times >= 0");
        return ctx->status;
    }
    prof_timer pt(ctx, "tw_multinomial_skip");
    guarded(ctx, "tw_multinomial_skip", "", [&] {
        at::Tensor full = at::ones({rows, cols});
        for (int i = 0; i < times; i++)
            (void)at::multinomial(full, 1, false, rng->gen);
    });
    return ctx->status;
}

/* ---- elementwise ---- */

tw_tensor tw_add(tw_ctx *ctx, tw_tensor a, tw_tensor b) {
    return op(ctx, "tw_add", {a, b}, [](at::Tensor **x) { return *x[0] + *x[1]; });
}
tw_tensor tw_mul(tw_ctx *ctx, tw_tensor a, tw_tensor b) {
    return op(ctx, "tw_mul", {a, b}, [](at::Tensor **x) { return *x[0] * *x[1]; });
}
tw_tensor tw_scale(tw_ctx *ctx, tw_tensor a, double s) {
    return op(ctx, "tw_scale", {a}, [s](at::Tensor **x) { return *x[0] * s; });
}
tw_tensor tw_add_scalar(tw_ctx *ctx, tw_tensor a, double s) {
    return op(ctx, "tw_add_scalar", {a}, [s](at::Tensor **x) { return *x[0] + s; });
}
tw_tensor tw_exp(tw_ctx *ctx, tw_tensor a) {
    return op(ctx, "tw_exp", {a}, [](at::Tensor **x) { return x[0]->exp(); });
}
tw_tensor tw_log(tw_ctx *ctx, tw_tensor a) {
    return op(ctx, "tw_log", {a}, [](at::Tensor **x) { return x[0]->log(); });
}
tw_tensor tw_to_dtype(tw_ctx *ctx, tw_tensor a, tw_dtype dtype) {
    bool ok;
    at::ScalarType st = to_scalar(dtype, &ok);
    if (!ok) {
        if (ctx) ctx->fail(TW_ERR_ARG, "tw_to_dtype: unknown dtype " + std::to_string(dtype));
        return TW_NULL;
    }
    return op(ctx, "tw_to_dtype", {a}, [st](at::Tensor **x) { return x[0]->to(st); });
}
tw_tensor tw_eq(tw_ctx *ctx, tw_tensor a, tw_tensor b) {
    return op(ctx, "tw_eq", {a, b}, [](at::Tensor **x) { return x[0]->eq(*x[1]); });
}
tw_tensor tw_eq_scalar(tw_ctx *ctx, tw_tensor a, double s) {
    return op(ctx, "tw_eq_scalar", {a}, [s](at::Tensor **x) { return x[0]->eq(s); });
}

/* ---- linear algebra and layers ---- */

tw_tensor tw_matmul(tw_ctx *ctx, tw_tensor a, tw_tensor b) {
    return op(ctx, "tw_matmul", {a, b}, [ctx](at::Tensor **x) {
        SHAPE_CHECK(x[0]->dim() >= 1 && x[1]->dim() >= 1, "matmul needs tensors of rank >= 1");
        int64_t ka = x[0]->size(-1);
        int64_t kb = x[1]->dim() >= 2 ? x[1]->size(-2) : x[1]->size(0);
        SHAPE_CHECK(ka == kb, "inner dimensions differ: ", ka, " vs ", kb);
        at::Tensor r = at::matmul(*x[0], *x[1]);
        prof_flops(ctx, 2.0 * (double)r.numel() * (double)ka, r);
        return r;
    });
}

tw_tensor tw_linear(tw_ctx *ctx, tw_tensor x, tw_tensor w, tw_tensor bias) {
    return op(
        ctx, "tw_linear", {x, w, bias},
        [ctx](at::Tensor **t) {
            SHAPE_CHECK(t[1]->dim() == 2, "weight must be (out, in)");
            SHAPE_CHECK(t[0]->size(-1) == t[1]->size(1), "input features ", t[0]->size(-1),
                        " do not match weight in-features ", t[1]->size(1));
            at::Tensor r = t[2] ? at::linear(*t[0], *t[1], *t[2]) : at::linear(*t[0], *t[1]);
            prof_flops(ctx, 2.0 * (double)r.numel() * (double)t[1]->size(1), r);
            return r;
        },
        /*optional=*/1u << 2);
}

tw_tensor tw_embedding(tw_ctx *ctx, tw_tensor weight, tw_tensor idx) {
    return op(ctx, "tw_embedding", {weight, idx}, [](at::Tensor **t) {
        SHAPE_CHECK(t[0]->dim() == 2, "weight must be (V, C)");
        SHAPE_CHECK(t[1]->scalar_type() == at::kLong, "indices must be int64");
        return at::embedding(*t[0], *t[1]);
    });
}

tw_tensor tw_layer_norm(tw_ctx *ctx, tw_tensor x, tw_tensor w, tw_tensor b, double eps) {
    return op(ctx, "tw_layer_norm", {x, w, b}, [eps](at::Tensor **t) {
        SHAPE_CHECK(t[0]->dim() >= 1, "input needs rank >= 1");
        int64_t c = t[0]->size(-1);
        SHAPE_CHECK(t[1]->numel() == c && t[2]->numel() == c,
                    "weight and bias must have the normalized size ", c);
        return at::layer_norm(*t[0], {c}, *t[1], *t[2], eps);
    });
}

tw_tensor tw_gelu(tw_ctx *ctx, tw_tensor x) {
    return op(ctx, "tw_gelu", {x}, [](at::Tensor **t) { return at::gelu(*t[0]); });
}

tw_tensor tw_softmax(tw_ctx *ctx, tw_tensor x, int dim) {
    return op(ctx, "tw_softmax", {x}, [dim](at::Tensor **t) { return at::softmax(*t[0], dim); });
}

tw_tensor tw_log_softmax(tw_ctx *ctx, tw_tensor x, int dim) {
    return op(ctx, "tw_log_softmax", {x},
              [dim](at::Tensor **t) { return at::log_softmax(*t[0], dim); });
}

namespace {

// One decoding query of one (row, head) against its keys: out[0..D) = softmax(q . k_j, j < Tk,
// where key j is visible) @ v. q is already scaled. Keys and values are rows of D floats at
// k + j * ks, v + j * vs. s holds Tk floats of scratch. Partial sums in 8 lanes let the compiler
// vectorize the dot products without reassociating one sum.
__attribute__((target_clones("avx2", "default"))) void
decode_one(const float *q, const float *k, int64_t ks, const float *v, int64_t vs,
           const bool *visible, int64_t Tk, int64_t D, float *s, float *out) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < Tk; j++) {
        if (visible && !visible[j] && j != Tk - 1) {
            s[j] = -INFINITY;
            continue;
        }
        const float *kj = k + j * ks;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t d = 0;
        for (; d + 8 <= D; d += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += q[d + l] * kj[d + l];
        float dot =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; d < D; d++)
            dot += q[d] * kj[d];
        s[j] = dot;
        if (dot > mx) mx = dot;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < Tk; j++) {
        s[j] = s[j] == -INFINITY ? 0.0f : std::exp(s[j] - mx);
        sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t d = 0; d < D; d++)
        out[d] = 0.0f;
    for (int64_t j = 0; j < Tk; j++) {
        if (s[j] == 0.0f) continue;
        const float a = s[j] * inv, *vj = v + j * vs;
        for (int64_t d = 0; d < D; d++)
            out[d] += a * vj[d];
    }
}

// tw_causal_attention for one query per row (decoding), without autograd: one pass over each
// (row, head)'s keys instead of two batched matmuls of B * H tiny products (each a BLAS call)
// and the mask tensors. Same definition; differs from the composite path by float rounding.
at::Tensor decode_attention(const at::Tensor &Q, const at::Tensor &K, const at::Tensor &V,
                            const at::Tensor *key_valid) {
    const int64_t B = Q.size(0), H = Q.size(1), Tk = K.size(2), D = Q.size(3);
    const at::Tensor q = (Q * (1.0 / std::sqrt((double)D))).contiguous();
    const at::Tensor k = K.stride(3) == 1 ? K : K.contiguous();
    const at::Tensor v = V.stride(3) == 1 ? V : V.contiguous();
    at::Tensor valid;
    if (key_valid) valid = key_valid->to(at::kBool).contiguous();
    at::Tensor out = at::empty({B, H, 1, D}, Q.options());
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const bool *valp = key_valid ? valid.data_ptr<bool>() : nullptr;
    float *op = out.data_ptr<float>();
    at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> s((size_t)Tk);
        for (int64_t bh = begin; bh < end; bh++) {
            const int64_t b = bh / H, h = bh % H;
            decode_one(qp + bh * D, kp + b * k.stride(0) + h * k.stride(1), k.stride(2),
                       vp + b * v.stride(0) + h * v.stride(1), v.stride(2),
                       valp ? valp + b * Tk : nullptr, Tk, D, s.data(), op + bh * D);
        }
    });
    return out;
}

} // namespace

tw_tensor tw_causal_attention(tw_ctx *ctx, tw_tensor q, tw_tensor k, tw_tensor v,
                              tw_tensor key_valid) {
    return op(
        ctx, "tw_causal_attention", {q, k, v, key_valid},
        [ctx](at::Tensor **t) {
            const at::Tensor &Q = *t[0], &K = *t[1], &V = *t[2];
            SHAPE_CHECK(Q.dim() == 4 && K.dim() == 4 && V.dim() == 4,
                        "q, k, v must be (B, H, T, d)");
            SHAPE_CHECK(K.sizes() == V.sizes(), "k and v shapes differ");
            SHAPE_CHECK(Q.size(0) == K.size(0) && Q.size(1) == K.size(1) && Q.size(3) == K.size(3),
                        "q and k disagree in batch, heads or head size");
            int64_t tq = Q.size(2), tk = K.size(2);
            SHAPE_CHECK(tq <= tk, "more queries (", tq, ") than keys (", tk, ")");
            if (t[3])
                SHAPE_CHECK(t[3]->dim() == 2 && t[3]->size(0) == K.size(0) && t[3]->size(1) == tk,
                            "key_valid must be (B, Tk) = (", K.size(0), ", ", tk, ")");
            const bool grad = c10::GradMode::is_enabled() &&
                              (Q.requires_grad() || K.requires_grad() || V.requires_grad());
            if (tq == 1 && !grad && Q.device().is_cpu() && Q.scalar_type() == at::kFloat &&
                K.scalar_type() == at::kFloat && V.scalar_type() == at::kFloat) {
                prof_flops(ctx, 4.0 * (double)(Q.size(0) * Q.size(1) * tk * Q.size(3)), Q);
                return decode_attention(Q, K, V, t[3]);
            }
            auto lopts = at::TensorOptions().dtype(at::kLong).device(Q.device());
            at::Tensor qpos = at::arange(tk - tq, tk, lopts).unsqueeze(1); // (Tq, 1)
            at::Tensor kpos = at::arange(tk, lopts).unsqueeze(0);          // (1, Tk)
            at::Tensor allowed = kpos.le(qpos);                            // (Tq, Tk)
            if (t[3]) {
                const at::Tensor &kv = *t[3];
                SHAPE_CHECK(kv.dim() == 2 && kv.size(0) == K.size(0) && kv.size(1) == tk,
                            "key_valid must be (B, Tk) = (", K.size(0), ", ", tk, ")");
                at::Tensor valid = kv.to(at::kBool).view({K.size(0), 1, 1, tk});
                allowed = allowed.logical_and(valid.logical_or(kpos.eq(qpos)));
            }
            // The scale goes on q (d wide) rather than on the scores (Tk wide), and the mask is
            // added in place: two passes over the score matrix fewer than scale + masked_fill.
            double scale = 1.0 / std::sqrt((double)Q.size(3));
            at::Tensor att = at::matmul(Q * scale, K.transpose(-2, -1));
            at::Tensor bias = at::zeros(allowed.sizes(), att.options());
            bias.masked_fill_(allowed.logical_not(), -INFINITY);
            att.add_(bias);
            at::Tensor r = at::matmul(at::softmax(att, -1), V);
            prof_flops(ctx, 4.0 * (double)att.numel() * (double)Q.size(3), r);
            return r;
        },
        /*optional=*/1u << 3);
}

tw_tensor tw_causal_mask(tw_ctx *ctx, tw_tensor key_valid, int64_t tq, int64_t tk) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    if (tq < 1 || tq > tk) {
        ctx->fail(TW_ERR_ARG, "tw_causal_mask: need 1 <= Tq <= Tk (got " + std::to_string(tq) +
                                  ", " + std::to_string(tk) + ")");
        return TW_NULL;
    }
    auto make = [ctx, tq, tk](const at::Tensor *kv) {
        auto lopts = at::TensorOptions().dtype(at::kLong).device(ctx->torch_device);
        at::Tensor qpos = at::arange(tk - tq, tk, lopts).unsqueeze(1); // (Tq, 1)
        at::Tensor kpos = at::arange(tk, lopts).unsqueeze(0);          // (1, Tk)
        at::Tensor allowed = kpos.le(qpos);                            // (Tq, Tk)
        if (kv) {
            SHAPE_CHECK(kv->dim() == 2 && kv->size(1) == tk,
                        "key_valid must be (B, Tk) with Tk = ", tk);
            at::Tensor valid = kv->to(at::kBool).view({kv->size(0), 1, 1, tk});
            allowed = allowed.logical_and(valid.logical_or(kpos.eq(qpos)));
        } else {
            allowed = allowed.view({1, 1, tq, tk});
        }
        at::Tensor mask = at::zeros(allowed.sizes(), ctx->opts(at::kFloat));
        mask.masked_fill_(allowed.logical_not(), -INFINITY);
        return mask;
    };
    if (key_valid.id == 0) {
        prof_timer pt(ctx, "tw_causal_mask");
        at::Tensor r;
        if (!guarded(ctx, "tw_causal_mask", "", [&] { r = make(nullptr); })) return TW_NULL;
        return ctx->add(std::move(r));
    }
    return op(ctx, "tw_causal_mask", {key_valid}, [&](at::Tensor **t) { return make(t[0]); });
}

tw_tensor tw_attention(tw_ctx *ctx, tw_tensor q, tw_tensor k, tw_tensor v, tw_tensor mask) {
    return op(ctx, "tw_attention", {q, k, v, mask}, [ctx](at::Tensor **t) {
        const at::Tensor &Q = *t[0], &K = *t[1], &V = *t[2], &M = *t[3];
        SHAPE_CHECK(Q.dim() == 4 && K.dim() == 4 && V.dim() == 4, "q, k, v must be (B, H, T, d)");
        SHAPE_CHECK(K.sizes() == V.sizes(), "k and v shapes differ");
        SHAPE_CHECK(Q.size(0) == K.size(0) && Q.size(1) == K.size(1) && Q.size(3) == K.size(3),
                    "q and k disagree in batch, heads or head size");
        SHAPE_CHECK(M.dim() == 4 && M.size(1) == 1 && M.size(2) == Q.size(2) &&
                        M.size(3) == K.size(2) && (M.size(0) == 1 || M.size(0) == Q.size(0)),
                    "mask must be (B or 1, 1, Tq, Tk)");
        // As tw_causal_attention: the scale on q, the mask added in place.
        const double scale = 1.0 / std::sqrt((double)Q.size(3));
        at::Tensor att = at::matmul(Q * scale, K.transpose(-2, -1));
        att.add_(M);
        at::Tensor r = at::matmul(at::softmax(att, -1), V);
        prof_flops(ctx, 4.0 * (double)att.numel() * (double)Q.size(3), r);
        return r;
    });
}

/* ---- shapes ---- */

tw_tensor tw_reshape(tw_ctx *ctx, tw_tensor x, int ndim, const int64_t *shape) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    if (ndim < 0 || ndim > TW_MAX_DIMS || (ndim && !shape)) {
        ctx->fail(TW_ERR_ARG, "tw_reshape: bad ndim " + std::to_string(ndim));
        return TW_NULL;
    }
    std::vector<int64_t> s(shape, shape + ndim);
    return op(ctx, "tw_reshape", {x}, [&](at::Tensor **t) {
        std::vector<int64_t> want = s;
        int64_t known = 1;
        int infer = -1;
        for (size_t i = 0; i < want.size(); i++) {
            if (want[i] == -1 && infer < 0)
                infer = (int)i;
            else
                known *= want[i];
        }
        SHAPE_CHECK(infer >= 0 ? (known > 0 && t[0]->numel() % known == 0) : known == t[0]->numel(),
                    "cannot reshape ", t[0]->numel(), " elements to ", at::IntArrayRef(want));
        return t[0]->reshape(want);
    });
}

tw_tensor tw_transpose(tw_ctx *ctx, tw_tensor x, int d0, int d1) {
    return op(ctx, "tw_transpose", {x},
              [d0, d1](at::Tensor **t) { return t[0]->transpose(d0, d1); });
}

tw_tensor tw_contiguous(tw_ctx *ctx, tw_tensor x) {
    return op(ctx, "tw_contiguous", {x}, [](at::Tensor **t) { return t[0]->contiguous(); });
}

tw_tensor tw_slice(tw_ctx *ctx, tw_tensor x, int dim, int64_t start, int64_t end) {
    return op(ctx, "tw_slice", {x}, [=](at::Tensor **t) {
        int64_t nd = t[0]->dim();
        int64_t d = dim < 0 ? dim + nd : dim;
        SHAPE_CHECK(d >= 0 && d < nd, "dim ", dim, " out of range");
        int64_t n = t[0]->size(d);
        int64_t s = start < 0 ? start + n : start, e = end < 0 ? end + n : end;
        SHAPE_CHECK(s >= 0 && e <= n && s <= e, "slice [", start, ", ", end,
                    ") out of range for size ", n);
        return t[0]->slice(d, s, e);
    });
}

tw_tensor tw_cat(tw_ctx *ctx, const tw_tensor *xs, int n, int dim) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    if (n < 1 || !xs) {
        ctx->fail(TW_ERR_ARG, "tw_cat: needs at least one tensor");
        return TW_NULL;
    }
    prof_timer pt(ctx, "tw_cat");
    std::vector<at::Tensor> ts;
    std::string shapes;
    for (int i = 0; i < n; i++) {
        at::Tensor *t = ctx->get(xs[i], "tw_cat", i + 1);
        if (!t) return TW_NULL;
        ts.push_back(*t);
        shapes += (i ? ", " : "") + shape_str(*t);
    }
    at::Tensor r;
    if (!guarded(ctx, "tw_cat", shapes, [&] { r = at::cat(ts, dim); })) return TW_NULL;
    return ctx->add(std::move(r));
}

tw_tensor tw_index_select(tw_ctx *ctx, tw_tensor x, int dim, tw_tensor idx) {
    return op(ctx, "tw_index_select", {x, idx},
              [dim](at::Tensor **t) { return at::index_select(*t[0], dim, *t[1]); });
}

tw_tensor tw_gather(tw_ctx *ctx, tw_tensor x, int dim, tw_tensor idx) {
    return op(ctx, "tw_gather", {x, idx},
              [dim](at::Tensor **t) { return at::gather(*t[0], dim, *t[1]); });
}

tw_status tw_slice_assign(tw_ctx *ctx, tw_tensor x, int dim, int64_t start, tw_tensor src) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, "tw_slice_assign");
    at::Tensor *d = ctx->get(x, "tw_slice_assign", 1);
    if (!d) return ctx->status;
    at::Tensor *s = ctx->get(src, "tw_slice_assign", 2);
    if (!s) return ctx->status;
    guarded(ctx, "tw_slice_assign", shape_str(*d) + ", " + shape_str(*s), [&] {
        at::NoGradGuard ng;
        int64_t dd = dim < 0 ? dim + d->dim() : dim;
        SHAPE_CHECK(dd >= 0 && dd < d->dim() && s->dim() == d->dim(), "dim ", dim,
                    " out of range or ranks differ");
        SHAPE_CHECK(start >= 0 && start + s->size(dd) <= d->size(dd), "rows [", start, ", ",
                    start + s->size(dd), ") exceed size ", d->size(dd));
        d->narrow(dd, start, s->size(dd)).copy_(*s);
    });
    return ctx->status;
}

/* ---- reductions and losses ---- */

tw_tensor tw_sum(tw_ctx *ctx, tw_tensor x) {
    return op(ctx, "tw_sum", {x}, [](at::Tensor **t) { return t[0]->sum(); });
}
tw_tensor tw_mean(tw_ctx *ctx, tw_tensor x) {
    return op(ctx, "tw_mean", {x}, [](at::Tensor **t) { return t[0]->mean(); });
}
tw_tensor tw_sum_dim(tw_ctx *ctx, tw_tensor x, int dim, int keepdim) {
    return op(ctx, "tw_sum_dim", {x}, [=](at::Tensor **t) { return t[0]->sum(dim, keepdim != 0); });
}
tw_tensor tw_mean_dim(tw_ctx *ctx, tw_tensor x, int dim, int keepdim) {
    return op(ctx, "tw_mean_dim", {x},
              [=](at::Tensor **t) { return t[0]->mean(dim, keepdim != 0); });
}
tw_tensor tw_argmax(tw_ctx *ctx, tw_tensor x, int dim) {
    return op(ctx, "tw_argmax", {x}, [=](at::Tensor **t) { return t[0]->argmax(dim); });
}

tw_tensor tw_cross_entropy(tw_ctx *ctx, tw_tensor logits, tw_tensor targets, int64_t ignore_index) {
    return op(ctx, "tw_cross_entropy", {logits, targets}, [=](at::Tensor **t) {
        SHAPE_CHECK(t[0]->dim() == 2 && t[1]->dim() == 1 && t[0]->size(0) == t[1]->size(0),
                    "expected logits (N, V) and targets (N)");
        SHAPE_CHECK(t[1]->scalar_type() == at::kLong, "targets must be int64");
        return at::cross_entropy_loss(*t[0], *t[1], {}, at::Reduction::Mean, ignore_index);
    });
}

tw_tensor tw_kl_rows(tw_ctx *ctx, tw_tensor logp, tw_tensor logq) {
    return op(ctx, "tw_kl_rows", {logp, logq}, [](at::Tensor **t) {
        SHAPE_CHECK(t[0]->sizes() == t[1]->sizes(), "log-prob shapes differ");
        return (t[0]->exp() * (*t[0] - *t[1])).sum(-1);
    });
}

tw_tensor tw_entropy_rows(tw_ctx *ctx, tw_tensor logits) {
    return op(ctx, "tw_entropy_rows", {logits}, [](at::Tensor **t) {
        at::Tensor lp = at::log_softmax(*t[0], -1);
        return -(lp.exp() * lp).sum(-1);
    });
}

tw_tensor tw_logaddexp(tw_ctx *ctx, tw_tensor a, tw_tensor b) {
    return op(ctx, "tw_logaddexp", {a, b},
              [](at::Tensor **t) { return at::logaddexp(*t[0], *t[1]); });
}

tw_tensor tw_isfinite(tw_ctx *ctx, tw_tensor a) {
    return op(ctx, "tw_isfinite", {a}, [](at::Tensor **t) { return at::isfinite(*t[0]); });
}

/* ---- autograd ---- */

tw_status tw_set_requires_grad(tw_ctx *ctx, tw_tensor t, int requires) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    at::Tensor *x = ctx->get(t, "tw_set_requires_grad", 1);
    if (!x) return ctx->status;
    guarded(ctx, "tw_set_requires_grad", shape_str(*x),
            [&] { x->set_requires_grad(requires != 0); });
    return ctx->status;
}

tw_tensor tw_detach(tw_ctx *ctx, tw_tensor t) {
    return op(ctx, "tw_detach", {t}, [](at::Tensor **x) { return x[0]->detach(); });
}

tw_status tw_backward(tw_ctx *ctx, tw_tensor loss) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    at::Tensor *x = ctx->get(loss, "tw_backward", 1);
    if (!x) return ctx->status;
    if (x->numel() != 1) {
        ctx->fail(TW_ERR_SHAPE, "tw_backward: loss " + shape_str(*x) + " is not one element");
        return ctx->status;
    }
    if (!x->requires_grad()) {
        ctx->fail(TW_ERR_STATE, "tw_backward: the loss does not require grad (computed under "
                                "no-grad, or from tensors that do not require grad)");
        return ctx->status;
    }
    if (!ctx->prof) {
        guarded(ctx, "tw_backward", shape_str(*x), [&] { x->backward(); });
        return ctx->status;
    }
    // Profiled: each autograd node is timed (RecordFunction, on this thread, where the engine
    // runs CPU graphs) and charged to the kind of the forward op that made it; the engine's
    // own time between nodes counts as other.
    const auto t0 = std::chrono::steady_clock::now();
    double in_nodes = 0.0;
    {
        bw_profile bp(ctx, &in_nodes);
        guarded(ctx, "tw_backward", shape_str(*x), [&] { x->backward(); });
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    tw_prof_cell &cell = ctx->table.cell[ctx->phase][TW_KIND_OTHER];
    cell.calls++;
    cell.seconds += dt > in_nodes ? dt - in_nodes : 0.0;
    ctx->seq_kind.clear(); // the graph is consumed
    return ctx->status;
}

tw_tensor tw_grad(tw_ctx *ctx, tw_tensor t) {
    if (!ctx || ctx->status != TW_OK) return TW_NULL;
    at::Tensor *x = ctx->get(t, "tw_grad", 1);
    if (!x) return TW_NULL;
    at::Tensor g = x->grad();
    if (!g.defined()) return TW_NULL;
    return ctx->add(g);
}

tw_status tw_zero_grad(tw_ctx *ctx, const tw_tensor *params, int n) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, "tw_zero_grad");
    for (int i = 0; i < n; i++) {
        at::Tensor *x = ctx->get(params[i], "tw_zero_grad", i + 1);
        if (!x) return ctx->status;
        x->mutable_grad().reset();
    }
    return TW_OK;
}

void tw_no_grad_begin(tw_ctx *ctx) {
    ctx->grad_stack.push_back(c10::GradMode::is_enabled());
    c10::GradMode::set_enabled(false);
}

void tw_no_grad_end(tw_ctx *ctx) {
    if (ctx->grad_stack.empty()) {
        ctx->fail(TW_ERR_STATE, "tw_no_grad_end without a matching tw_no_grad_begin");
        return;
    }
    c10::GradMode::set_enabled(ctx->grad_stack.back());
    ctx->grad_stack.pop_back();
}

/* ---- optimization ---- */

tw_status tw_clip_grad_norm(tw_ctx *ctx, const tw_tensor *params, int n, double max_norm,
                            double *norm_out) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, "tw_clip_grad_norm");
    std::vector<at::Tensor> grads;
    for (int i = 0; i < n; i++) {
        at::Tensor *x = ctx->get(params[i], "tw_clip_grad_norm", i + 1);
        if (!x) return ctx->status;
        if (x->grad().defined()) grads.push_back(x->grad());
    }
    guarded(ctx, "tw_clip_grad_norm", "", [&] {
        at::NoGradGuard ng;
        double total = 0.0;
        if (!grads.empty()) {
            // Same arithmetic as torch.nn.utils.clip_grad_norm_ (norm of per-tensor norms).
            std::vector<at::Tensor> norms;
            for (auto &g : grads)
                norms.push_back(at::norm(g.detach(), 2));
            at::Tensor tn = at::norm(at::stack(norms), 2);
            total = tn.item<double>();
            at::Tensor coef = at::clamp(max_norm / (tn + 1e-6), c10::nullopt, 1.0);
            for (auto &g : grads)
                g.detach().mul_(coef);
        }
        if (norm_out) *norm_out = total;
    });
    return ctx->status;
}

tw_adamw_params tw_adamw_default(void) {
    tw_adamw_params p;
    p.lr = 1e-3;
    p.beta1 = 0.9;
    p.beta2 = 0.999;
    p.eps = 1e-8;
    p.weight_decay = 0.01;
    return p;
}

tw_status tw_adamw_new(tw_ctx *ctx, const tw_tensor *params, const int *decay, int n,
                       tw_adamw_params hp, tw_adamw **out) {
    if (!ctx || !out || (n > 0 && !params)) return TW_ERR_ARG;
    *out = nullptr;
    if (ctx->status != TW_OK) return ctx->status;
    if (!(hp.beta1 >= 0 && hp.beta1 < 1 && hp.beta2 >= 0 && hp.beta2 < 1 && hp.eps > 0)) {
        ctx->fail(TW_ERR_ARG, "tw_adamw_new: betas must lie in [0, 1) and eps be positive");
        return ctx->status;
    }
    tw_adamw *o = new (std::nothrow) tw_adamw;
    if (!o) return TW_ERR_NOMEM;
    o->ctx = ctx;
    o->hp = hp;
    for (int i = 0; i < n; i++) {
        at::Tensor *p = ctx->get(params[i], "tw_adamw_new", i + 1);
        if (!p) break;
        o->params.push_back(params[i]);
        o->decay.push_back(decay ? decay[i] : 1);
        at::Tensor m, v;
        if (!guarded(ctx, "tw_adamw_new", "", [&] {
                m = at::zeros_like(*p).detach();
                v = at::zeros_like(*p).detach();
            }))
            break;
        // Moments are owned by the optimizer, outside any scope.
        int depth = ctx->scope_depth;
        ctx->scope_depth = 0;
        o->m.push_back(ctx->add(std::move(m)));
        o->v.push_back(ctx->add(std::move(v)));
        ctx->scope_depth = depth;
    }
    if (ctx->status != TW_OK) {
        tw_adamw_free(o);
        return ctx->status;
    }
    *out = o;
    return TW_OK;
}

void tw_adamw_free(tw_adamw *opt) {
    if (!opt) return;
    for (size_t i = 0; i < opt->m.size(); i++) {
        tw_free(opt->ctx, opt->m[i]);
        tw_free(opt->ctx, opt->v[i]);
    }
    delete opt;
}

tw_status tw_adamw_step(tw_adamw *opt, double lr) {
    if (!opt) return TW_ERR_ARG;
    tw_ctx *ctx = opt->ctx;
    if (ctx->status != TW_OK) return ctx->status;
    prof_timer pt(ctx, "tw_adamw_step");
    opt->steps++;
    const double b1 = opt->hp.beta1, b2 = opt->hp.beta2;
    const double bc1 = 1.0 - std::pow(b1, (double)opt->steps);
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, (double)opt->steps));
    const double step_size = lr / bc1;
    for (size_t i = 0; i < opt->params.size(); i++) {
        at::Tensor *p = ctx->get(opt->params[i], "tw_adamw_step", (int)i + 1);
        if (!p) return ctx->status;
        at::Tensor *m = ctx->get(opt->m[i], "tw_adamw_step", (int)i + 1);
        at::Tensor *v = ctx->get(opt->v[i], "tw_adamw_step", (int)i + 1);
        if (!m || !v) return ctx->status;
        at::Tensor g = p->grad();
        if (!g.defined()) continue;
        const double wd = opt->decay[i] ? opt->hp.weight_decay : 0.0;
        // Same order of operations as torch.optim.AdamW (single-tensor path).
        if (!guarded(ctx, "tw_adamw_step", shape_str(*p), [&] {
                at::NoGradGuard ng;
                p->mul_(1.0 - lr * wd);
                m->mul_(b1).add_(g, 1.0 - b1);
                v->mul_(b2).addcmul_(g, g, 1.0 - b2);
                at::Tensor denom = (v->sqrt() / bc2_sqrt).add_(opt->hp.eps);
                p->addcdiv_(*m, denom, -step_size);
            }))
            return ctx->status;
    }
    return TW_OK;
}

int64_t tw_adamw_step_count(const tw_adamw *opt) {
    return opt->steps;
}

void tw_adamw_set_step_count(tw_adamw *opt, int64_t steps) {
    opt->steps = steps;
}

tw_status tw_adamw_moments(tw_adamw *opt, int i, tw_tensor *m, tw_tensor *v) {
    if (!opt || i < 0 || (size_t)i >= opt->m.size()) return TW_ERR_ARG;
    if (m) *m = opt->m[i];
    if (v) *v = opt->v[i];
    return TW_OK;
}

} // extern "C"

/* ---- data-parallel process groups ---- */

struct tw_dist {
    tw_dist_params p;
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
    tw_status status = TW_OK;
    std::string msg;
};

namespace {

void copy_msg(char *err, size_t errlen, const std::string &m) {
    if (err && errlen) snprintf(err, errlen, "%s", m.c_str());
}

// The first line of an exception's message (c10 errors carry a C++ backtrace after it).
std::string first_line(const std::exception &e) {
    std::string m;
    if (auto *ce = dynamic_cast<const c10::Error *>(&e))
        m = ce->what_without_backtrace();
    else
        m = e.what();
    size_t nl = m.find('\n');
    if (nl != std::string::npos) m.resize(nl);
    return m;
}

bool is_loopback(const std::string &a) {
    return a == "localhost" || a == "::1" || a.rfind("127.", 0) == 0;
}

// Records a failure on the group (sticky) and on ctx (when given).
tw_status dist_fail(tw_dist *d, tw_ctx *ctx, tw_status s, const std::string &m) {
    if (d->status == TW_OK) {
        d->status = s;
        d->msg = m;
    }
    if (ctx) ctx->fail(d->status, d->msg);
    return d->status;
}

// Runs a collective; an exception (a timeout, a closed connection) becomes the group's error.
template <class F> tw_status dist_run(tw_dist *d, tw_ctx *ctx, const char *what, F &&f) {
    if (d->status != TW_OK) {
        if (ctx) ctx->fail(d->status, d->msg);
        return d->status;
    }
    try {
        f();
        return TW_OK;
    } catch (const std::exception &e) {
        std::string m = first_line(e);
        bool timeout =
            m.find("imed out") != std::string::npos || m.find("imeout") != std::string::npos;
        return dist_fail(
            d, ctx, TW_ERR_DIST,
            std::string("data-parallel ") + what + " on rank " + std::to_string(d->p.rank) +
                " of " + std::to_string(d->p.world_size) + " failed: " + m + "; " +
                (timeout ? "a peer did not take part within CAOPD_DIST_TIMEOUT_S = " +
                               std::to_string((int)d->p.timeout_s) +
                               " s (it may have stopped, be stuck, or run another spec; "
                               "raise the timeout if it is only slow, e.g. in a long evaluation)"
                         : std::string("another process of the group has probably stopped "
                                       "(see its output); every rank must run the same program on "
                                       "the same inputs")));
    } catch (...) {
        return dist_fail(d, ctx, TW_ERR_DIST,
                         std::string("data-parallel ") + what + ": unknown C++ exception");
    }
}

c10d::ReduceOp to_reduce_op(tw_dist_op op) {
    switch (op) {
    case TW_DIST_MAX:
        return c10d::ReduceOp(c10d::ReduceOp::MAX);
    case TW_DIST_MIN:
        return c10d::ReduceOp(c10d::ReduceOp::MIN);
    default:
        return c10d::ReduceOp(c10d::ReduceOp::SUM);
    }
}

void allreduce_raw(tw_dist *d, at::Tensor &t, c10d::ReduceOp op) {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    d->pg->allreduce(v, o)->wait();
}

// Every rank must pass the same element count: max(n) and max(-n) agree only then.
tw_status check_count(tw_dist *d, tw_ctx *ctx, const char *what, int64_t n) {
    at::Tensor c = at::empty({2}, at::kLong);
    c[0] = n;
    c[1] = -n;
    tw_status s =
        dist_run(d, ctx, what, [&] { allreduce_raw(d, c, c10d::ReduceOp(c10d::ReduceOp::MAX)); });
    if (s != TW_OK) return s;
    const int64_t hi = c[0].item<int64_t>(), lo = -c[1].item<int64_t>();
    if (hi != lo)
        return dist_fail(d, ctx, TW_ERR_SHAPE,
                         std::string("data-parallel ") + what +
                             ": the ranks pass different element counts (" + std::to_string(lo) +
                             " to " + std::to_string(hi) + ", this is rank " +
                             std::to_string(d->p.rank) + " with " + std::to_string(n) +
                             "); every rank must run the same program on the same inputs");
    return TW_OK;
}

bool dist_ready(tw_dist *d, tw_ctx *ctx) {
    if (ctx && ctx->status != TW_OK) return false;
    if (d->status != TW_OK) {
        if (ctx) ctx->fail(d->status, d->msg);
        return false;
    }
    return true;
}

// Gathers the float32 tensors behind handles (nullptr and an error for a bad one).
bool gather_f32(tw_ctx *ctx, const char *name, const tw_tensor *ts, int n,
                std::vector<at::Tensor *> *out, int64_t *total) {
    *total = 0;
    if (n < 0 || (n > 0 && !ts)) {
        ctx->fail(TW_ERR_ARG, std::string(name) + ": tensor list is NULL or n < 0");
        return false;
    }
    for (int i = 0; i < n; i++) {
        at::Tensor *t = ctx->get(ts[i], name, i + 1);
        if (!t) return false;
        if (t->scalar_type() != at::kFloat) {
            ctx->fail(TW_ERR_SHAPE, std::string(name) + ": tensor " + std::to_string(i + 1) +
                                        " is " + shape_str(*t) + ", float32 expected");
            return false;
        }
        out->push_back(t);
        *total += t->numel();
    }
    return true;
}

bool env_int(const char *name, long lo, long hi, long *out, std::string *why) {
    const char *v = getenv(name);
    if (!v || !*v) {
        *why = std::string(name) + " is not set";
        return false;
    }
    char *end = nullptr;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        *why = std::string(name) + "='" + v + "' is not an integer in " + std::to_string(lo) +
               ".." + std::to_string(hi);
        return false;
    }
    *out = x;
    return true;
}

} // namespace

extern "C" {

tw_dist_params tw_dist_params_default(void) {
    tw_dist_params p;
    memset(&p, 0, sizeof p);
    p.rank = 0;
    p.world_size = 1;
    snprintf(p.master_addr, sizeof p.master_addr, "127.0.0.1");
    p.master_port = 29500;
    p.timeout_s = 1800.0;
    return p;
}

tw_status tw_dist_params_from_env(tw_dist_params *p, char *err, size_t errlen) {
    if (!p) return TW_ERR_ARG;
    *p = tw_dist_params_default();
    std::string why;
    long x = 0;
    const char *ws = getenv("WORLD_SIZE");
    if (ws && *ws) {
        if (!env_int("WORLD_SIZE", 1, 65536, &x, &why)) {
            copy_msg(err, errlen,
                     why + ": set it to the number of processes of the run (torchrun sets it), or "
                           "unset it for one process");
            return TW_ERR_ARG;
        }
        p->world_size = (int)x;
    }
    const char *to = getenv("CAOPD_DIST_TIMEOUT_S");
    if (to && *to) {
        char *end = nullptr;
        double t = strtod(to, &end);
        if (*end || !(t > 0) || t > 1e7) {
            copy_msg(err, errlen,
                     std::string("CAOPD_DIST_TIMEOUT_S='") + to +
                         "' is not a positive number of seconds; unset it for the default (1800)");
            return TW_ERR_ARG;
        }
        p->timeout_s = t;
    }
    const char *ifn = getenv("GLOO_SOCKET_IFNAME");
    if (ifn) snprintf(p->ifname, sizeof p->ifname, "%s", ifn);
    const char *as = getenv("TORCHELASTIC_USE_AGENT_STORE");
    p->agent_store = as && strcmp(as, "True") == 0; /* Python's str(True), as torchrun writes it */
    if (p->agent_store && getenv("TORCHELASTIC_RESTART_COUNT")) {
        if (!env_int("TORCHELASTIC_RESTART_COUNT", 0, 1000000, &x, &why)) {
            copy_msg(err, errlen, why + " (set by torchrun)");
            return TW_ERR_ARG;
        }
        p->restart_count = (int)x;
    }
    if (p->world_size == 1) return TW_OK;
    if (!env_int("RANK", 0, p->world_size - 1, &x, &why)) {
        copy_msg(err, errlen,
                 why + " (WORLD_SIZE is " + std::to_string(p->world_size) +
                     "): give each process its own RANK, 0 for the one that hosts the rendezvous");
        return TW_ERR_ARG;
    }
    p->rank = (int)x;
    const char *ma = getenv("MASTER_ADDR");
    if (!ma || !*ma || strlen(ma) >= sizeof p->master_addr) {
        copy_msg(err, errlen,
                 std::string("MASTER_ADDR is ") + (ma && *ma ? "too long" : "not set") +
                     " (WORLD_SIZE is " + std::to_string(p->world_size) +
                     "): set it to the host name or address of the rank-0 machine (127.0.0.1 "
                     "when every process runs on this machine)");
        return TW_ERR_ARG;
    }
    snprintf(p->master_addr, sizeof p->master_addr, "%s", ma);
    if (!env_int("MASTER_PORT", 1, 65535, &x, &why)) {
        copy_msg(err, errlen,
                 why + ": set it to a free TCP port on the rank-0 machine, the same for every rank "
                       "(e.g. 29500)");
        return TW_ERR_ARG;
    }
    p->master_port = (int)x;
    return TW_OK;
}

tw_status tw_dist_init(const tw_dist_params *p, tw_dist **out, char *err, size_t errlen) {
    if (!p || !out) {
        copy_msg(err, errlen, "tw_dist_init: params or out is NULL");
        return TW_ERR_ARG;
    }
    *out = nullptr;
    if (p->world_size < 2 || p->rank < 0 || p->rank >= p->world_size || p->master_port < 1 ||
        p->master_port > 65535 || !(p->timeout_s > 0)) {
        copy_msg(err, errlen,
                 "tw_dist_init: needs world_size >= 2, 0 <= rank < world_size, a port in 1..65535 "
                 "and a positive timeout (got rank " +
                     std::to_string(p->rank) + ", world_size " + std::to_string(p->world_size) +
                     ", port " + std::to_string(p->master_port) + ")");
        return TW_ERR_ARG;
    }
    auto *d = new (std::nothrow) tw_dist;
    if (!d) {
        copy_msg(err, errlen, "tw_dist_init: out of memory");
        return TW_ERR_NOMEM;
    }
    d->p = *p;
    const std::string host = p->master_addr;
    const std::string where = host + ":" + std::to_string(p->master_port);
    const std::string me =
        "rank " + std::to_string(p->rank) + " of " + std::to_string(p->world_size);
    const auto timeout = std::chrono::milliseconds((int64_t)(p->timeout_s * 1000.0));
    const int tsec = (int)std::ceil(p->timeout_s);
    std::string stage = "store";
    try {
        c10d::TCPStoreOptions so;
        so.port = (uint16_t)p->master_port;
        so.isServer = p->rank == 0 && !p->agent_store;
        so.waitWorkers = false;
        so.timeout = timeout;
        auto tcp =
            c10::make_intrusive<c10d::TCPStore>(host, so); // a server listens on every interface
        if (p->agent_store) // torchrun's store: the namespace of this attempt, as torch.distributed
                            // uses
            d->store = c10::make_intrusive<c10d::PrefixStore>(
                "/worker/attempt_" + std::to_string(p->restart_count), tcp);
        else
            d->store = tcp;
        // Join: every rank announces itself, then waits for all world_size announcements.
        stage = "join";
        const std::string mine = "caopd/joined/" + std::to_string(p->rank);
        if (d->store->add(mine, 1) != 1)
            throw std::runtime_error("another process already joined as " + me +
                                     ": give each process its own RANK");
        std::vector<std::string> keys;
        for (int r = 0; r < p->world_size; r++)
            keys.push_back("caopd/joined/" + std::to_string(r));
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!d->store->check(keys)) {
            if (std::chrono::steady_clock::now() > deadline) {
                std::string missing;
                int n_missing = 0;
                for (int r = 0; r < p->world_size; r++)
                    if (!d->store->check({keys[r]})) {
                        if (n_missing++ < 8)
                            missing += (missing.empty() ? "" : ", ") + std::to_string(r);
                    }
                copy_msg(err, errlen,
                         me + ": rank" + (n_missing > 1 ? "s " : " ") + missing +
                             (n_missing > 8 ? ", ..." : "") + " did not join the rendezvous at " +
                             where + " within " + std::to_string(tsec) +
                             " s (CAOPD_DIST_TIMEOUT_S); start every rank 0.." +
                             std::to_string(p->world_size - 1) +
                             " with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE");
                delete d;
                return TW_ERR_DIST;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        stage = "group";
        auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
        if (p->ifname[0])
            opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(p->ifname));
        else if (is_loopback(host))
            opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        else
            opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        d->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(d->store, p->rank, p->world_size, opts);
    } catch (const std::exception &e) {
        std::string m = first_line(e), what;
        if (stage == "store" && p->rank == 0 && !p->agent_store)
            what = me + " could not host the rendezvous (TCPStore) on port " +
                   std::to_string(p->master_port) + ": " + m +
                   "; choose a free MASTER_PORT (the same for every rank)";
        else if (stage == "store")
            what =
                me + " could not reach the rendezvous (TCPStore) at " + where + " within " +
                std::to_string(tsec) + " s: " + m +
                "; check MASTER_ADDR and MASTER_PORT, that rank 0 is running, and that no firewall "
                "blocks the port";
        else if (stage == "join")
            what = me + ": joining the rendezvous at " + where + " failed: " + m;
        else
            what = me + ": building the Gloo process group failed: " + m +
                   "; every rank must reach every other (set GLOO_SOCKET_IFNAME to the network "
                   "interface to use)";
        copy_msg(err, errlen, what);
        delete d;
        return TW_ERR_DIST;
    } catch (...) {
        copy_msg(err, errlen, me + ": unknown C++ exception while joining the group at " + where);
        delete d;
        return TW_ERR_DIST;
    }
    *out = d;
    copy_msg(err, errlen, "");
    return TW_OK;
}

tw_status tw_dist_init_env(tw_dist **out, char *err, size_t errlen) {
    if (!out) return TW_ERR_ARG;
    *out = nullptr;
    tw_dist_params p;
    tw_status s = tw_dist_params_from_env(&p, err, errlen);
    if (s != TW_OK || p.world_size == 1) return s;
    return tw_dist_init(&p, out, err, errlen);
}

void tw_dist_free(tw_dist *d) {
    if (!d) return;
    try {
        d->pg.reset();
        d->store.reset();
    } catch (...) {
    }
    delete d;
}

int tw_dist_rank(const tw_dist *d) {
    return d ? d->p.rank : 0;
}

int tw_dist_size(const tw_dist *d) {
    return d ? d->p.world_size : 1;
}

const char *tw_dist_errmsg(const tw_dist *d) {
    return d ? d->msg.c_str() : "";
}

tw_status tw_dist_allreduce(tw_dist *d, tw_ctx *ctx, const tw_tensor *ts, int n, tw_dist_op op) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    std::vector<at::Tensor *> t;
    int64_t total = 0;
    if (!gather_f32(ctx, "tw_dist_allreduce", ts, n, &t, &total)) return ctx->status;
    if (!d || d->p.world_size == 1) return TW_OK;
    if (!dist_ready(d, ctx)) return ctx->status;
    tw_status s = check_count(d, ctx, "all-reduce", total);
    if (s != TW_OK || total == 0) return s;
    at::Tensor flat;
    if (!guarded(ctx, "tw_dist_allreduce", "", [&] {
            std::vector<at::Tensor> parts;
            for (auto *x : t)
                parts.push_back(x->detach().reshape({-1}).to(at::kCPU));
            flat = parts.empty() ? at::zeros({0}) : at::cat(parts);
        }))
        return ctx->status;
    s = dist_run(d, ctx, "all-reduce", [&] { allreduce_raw(d, flat, to_reduce_op(op)); });
    if (s != TW_OK) return s;
    guarded(ctx, "tw_dist_allreduce", "", [&] {
        at::NoGradGuard ng;
        if (op == TW_DIST_MEAN) flat.div_((double)d->p.world_size);
        int64_t off = 0;
        for (auto *x : t) {
            x->detach().copy_(flat.narrow(0, off, x->numel()).view(x->sizes()));
            off += x->numel();
        }
    });
    return ctx->status;
}

tw_status tw_dist_allreduce_grads(tw_dist *d, tw_ctx *ctx, const tw_tensor *params, int n,
                                  double weight, double *total_weight) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    std::vector<at::Tensor *> t;
    int64_t total = 0;
    if (!gather_f32(ctx, "tw_dist_allreduce_grads", params, n, &t, &total)) return ctx->status;
    if (!d || d->p.world_size == 1) {
        if (total_weight) *total_weight = weight;
        return TW_OK;
    }
    if (!dist_ready(d, ctx)) return ctx->status;
    tw_status s = check_count(d, ctx, "gradient all-reduce", total + 1);
    if (s != TW_OK) return s;
    // One buffer: weight * grad of every leaf, then the weight itself.
    at::Tensor flat;
    if (!guarded(ctx, "tw_dist_allreduce_grads", "", [&] {
            at::NoGradGuard ng;
            flat = at::empty({total + 1}, at::kFloat);
            int64_t off = 0;
            for (auto *x : t) {
                at::Tensor dst = flat.narrow(0, off, x->numel());
                const at::Tensor &g = x->grad();
                if (g.defined())
                    dst.copy_(g.detach().reshape({-1}));
                else
                    dst.zero_();
                dst.mul_(weight);
                off += x->numel();
            }
            flat[total] = weight;
        }))
        return ctx->status;
    s = dist_run(d, ctx, "gradient all-reduce",
                 [&] { allreduce_raw(d, flat, c10d::ReduceOp(c10d::ReduceOp::SUM)); });
    if (s != TW_OK) return s;
    guarded(ctx, "tw_dist_allreduce_grads", "", [&] {
        at::NoGradGuard ng;
        const double tw = flat[total].item<double>();
        if (total_weight) *total_weight = tw;
        if (tw != 0.0)
            flat.div_(tw);
        else
            flat.zero_();
        int64_t off = 0;
        for (auto *x : t) {
            at::Tensor src = flat.narrow(0, off, x->numel()).view(x->sizes()).to(x->device());
            if (x->grad().defined())
                x->mutable_grad().detach().copy_(src);
            else
                x->mutable_grad() = src.clone();
            off += x->numel();
        }
    });
    return ctx->status;
}

tw_status tw_dist_allreduce_f64(tw_dist *d, double *buf, int n, tw_dist_op op) {
    if (n < 0 || (n > 0 && !buf)) {
        if (d)
            return dist_fail(d, nullptr, TW_ERR_ARG, "tw_dist_allreduce_f64: buf is NULL or n < 0");
        return TW_ERR_ARG;
    }
    if (!d || d->p.world_size == 1) return TW_OK;
    if (d->status != TW_OK) return d->status;
    tw_status s = check_count(d, nullptr, "all-reduce", n);
    if (s != TW_OK || n == 0) return s;
    at::Tensor t = at::from_blob(buf, {n}, at::kDouble);
    s = dist_run(d, nullptr, "all-reduce", [&] { allreduce_raw(d, t, to_reduce_op(op)); });
    if (s == TW_OK && op == TW_DIST_MEAN)
        for (int i = 0; i < n; i++)
            buf[i] /= d->p.world_size;
    return s;
}

tw_status tw_dist_broadcast(tw_dist *d, tw_ctx *ctx, const tw_tensor *ts, int n, int root) {
    if (!ctx) return TW_ERR_ARG;
    if (ctx->status != TW_OK) return ctx->status;
    std::vector<at::Tensor *> t;
    int64_t total = 0;
    if (!gather_f32(ctx, "tw_dist_broadcast", ts, n, &t, &total)) return ctx->status;
    if (!d || d->p.world_size == 1) return TW_OK;
    if (!dist_ready(d, ctx)) return ctx->status;
    if (root < 0 || root >= d->p.world_size)
        return dist_fail(d, ctx, TW_ERR_ARG,
                         "tw_dist_broadcast: root " + std::to_string(root) + " is not a rank");
    tw_status s = check_count(d, ctx, "broadcast", total);
    if (s != TW_OK || total == 0) return s;
    at::Tensor flat;
    if (!guarded(ctx, "tw_dist_broadcast", "", [&] {
            std::vector<at::Tensor> parts;
            for (auto *x : t)
                parts.push_back(x->detach().reshape({-1}).to(at::kCPU));
            flat = parts.empty() ? at::zeros({0}) : at::cat(parts);
        }))
        return ctx->status;
    s = dist_run(d, ctx, "broadcast", [&] {
        std::vector<at::Tensor> v{flat};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        d->pg->broadcast(v, o)->wait();
    });
    if (s != TW_OK) return s;
    guarded(ctx, "tw_dist_broadcast", "", [&] {
        at::NoGradGuard ng;
        int64_t off = 0;
        for (auto *x : t) {
            x->detach().copy_(flat.narrow(0, off, x->numel()).view(x->sizes()));
            off += x->numel();
        }
    });
    return ctx->status;
}

tw_status tw_dist_broadcast_bytes(tw_dist *d, void *buf, size_t len, int root) {
    if (len > 0 && !buf) {
        if (d) return dist_fail(d, nullptr, TW_ERR_ARG, "tw_dist_broadcast_bytes: buf is NULL");
        return TW_ERR_ARG;
    }
    if (!d || d->p.world_size == 1) return TW_OK;
    if (d->status != TW_OK) return d->status;
    if (root < 0 || root >= d->p.world_size)
        return dist_fail(d, nullptr, TW_ERR_ARG,
                         "tw_dist_broadcast_bytes: root " + std::to_string(root) +
                             " is not a rank");
    tw_status s = check_count(d, nullptr, "broadcast", (int64_t)len);
    if (s != TW_OK || len == 0) return s;
    at::Tensor t = at::from_blob(buf, {(int64_t)len}, at::kByte);
    return dist_run(d, nullptr, "broadcast", [&] {
        std::vector<at::Tensor> v{t};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        d->pg->broadcast(v, o)->wait();
    });
}

tw_status tw_dist_barrier(tw_dist *d) {
    if (!d || d->p.world_size == 1) return TW_OK;
    return dist_run(d, nullptr, "barrier", [&] { d->pg->barrier()->wait(); });
}

} // extern "C"
