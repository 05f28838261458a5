/* snapshot.c: trainer state <-> checkpoint: per-parameter float32 copies of the student,
 * teacher and AdamW moments, the counters and the RNG state bytes. */
#include "harness/run/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int snap_fail(char *err, size_t errlen, int rc, const char *what) {
    snprintf(err, errlen, "%s", what);
    return rc ? -1 : -1;
}

/* Copies tensor t (float32) into a new malloc'd buffer added as dataset path. */
static int add_tensor(ckpt_snapshot *s, tw_ctx *ctx, const char *path, tw_tensor t, char *err,
                      size_t errlen) {
    int64_t dims[TW_MAX_DIMS];
    int nd = tw_shape(ctx, t, dims);
    int64_t n = tw_numel(ctx, t);
    if (nd < 0 || n < 0) {
        snprintf(err, errlen, "snapshot of %s: %s", path, tw_errmsg(ctx));
        return -1;
    }
    float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!buf) {
        snprintf(err, errlen, "snapshot of %s: out of memory", path);
        return -1;
    }
    if (tw_copy_to_f32(ctx, t, buf, (size_t)n) != TW_OK) {
        free(buf);
        snprintf(err, errlen, "snapshot of %s: %s", path, tw_errmsg(ctx));
        return -1;
    }
    if (ckpt_snapshot_add_owned(s, path, CKPT_DTYPE_F32, nd, dims, buf, NULL) != CKPT_OK) {
        snprintf(err, errlen, "snapshot of %s: %s", path, ckpt_snapshot_errmsg(s));
        return -1;
    }
    return 0;
}

/* Reads dataset path into tensor t (same element count, float32). */
static int load_tensor(ckpt_reader *r, tw_ctx *ctx, const char *path, tw_tensor t, char *err,
                       size_t errlen) {
    int64_t n = tw_numel(ctx, t);
    ckpt_info info;
    int rc = ckpt_reader_info(r, path, &info);
    if (rc != CKPT_OK) {
        snprintf(err, errlen,
                 "%s; the checkpoint is incomplete or of another layout: rerun, or resume from an "
                 "intact copy",
                 ckpt_reader_errmsg(r));
        return -1;
    }
    if (info.dtype != CKPT_DTYPE_F32 || (int64_t)info.nelems != n) {
        snprintf(err, errlen,
                 "checkpoint dataset %s holds %zu %s values, the model needs %lld float32; the "
                 "checkpoint "
                 "belongs to another model: check the spec's model section",
                 path, info.nelems, ckpt_dtype_name(info.dtype), (long long)n);
        return -1;
    }
    float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!buf) return snap_fail(err, errlen, 1, "checkpoint load: out of memory");
    rc = ckpt_reader_read(r, path, CKPT_DTYPE_F32, buf, (size_t)n);
    if (rc != CKPT_OK) {
        snprintf(err, errlen, "%s", ckpt_reader_errmsg(r));
        free(buf);
        return -1;
    }
    tw_status ts = tw_copy_from_f32(ctx, t, buf, (size_t)n);
    free(buf);
    if (ts != TW_OK) {
        snprintf(err, errlen, "checkpoint load of %s: %s", path, tw_errmsg(ctx));
        return -1;
    }
    return 0;
}

static const char *const cfg_names[] = {"vocab", "block_size", "n_layer", "n_head", "n_embd"};

static void cfg_values(gpt_config c, int64_t v[5]) {
    v[0] = c.vocab, v[1] = c.block_size, v[2] = c.n_layer, v[3] = c.n_head, v[4] = c.n_embd;
}

int snap_add_model(ckpt_snapshot *s, const char *group, gpt *m, char *err, size_t errlen) {
    tw_ctx *ctx = gpt_ctx(m);
    int64_t v[5];
    cfg_values(gpt_get_config(m), v);
    for (int i = 0; i < 5; i++)
        if (ckpt_snapshot_attr_i64(s, group, cfg_names[i], v[i]) != CKPT_OK) {
            snprintf(err, errlen, "snapshot: %s", ckpt_snapshot_errmsg(s));
            return -1;
        }
    for (int i = 0; i < gpt_param_count(m); i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", group, gpt_param_name(m, i));
        if (add_tensor(s, ctx, path, gpt_param(m, i), err, errlen)) return -1;
    }
    return 0;
}

int snap_read_config(ckpt_reader *r, const char *group, gpt_config *out, char *err, size_t errlen) {
    int64_t v[5];
    for (int i = 0; i < 5; i++)
        if (ckpt_reader_attr_i64(r, group, cfg_names[i], &v[i]) != CKPT_OK) {
            snprintf(err, errlen,
                     "%s; the checkpoint has no model config under '%s': it is damaged or not a "
                     "caopd run checkpoint",
                     ckpt_reader_errmsg(r), group);
            return -1;
        }
    gpt_config c = gpt_config_default();
    c.vocab = (int)v[0], c.block_size = (int)v[1], c.n_layer = (int)v[2], c.n_head = (int)v[3],
    c.n_embd = (int)v[4];
    if (gpt_config_check(c, err, errlen)) return -1;
    *out = c;
    return 0;
}

int snap_load_model(ckpt_reader *r, const char *group, gpt *m, char *err, size_t errlen) {
    tw_ctx *ctx = gpt_ctx(m);
    int64_t want[5], got[5];
    cfg_values(gpt_get_config(m), want);
    for (int i = 0; i < 5; i++) {
        if (ckpt_reader_attr_i64(r, group, cfg_names[i], &got[i]) != CKPT_OK) {
            snprintf(err, errlen,
                     "%s; the checkpoint has no model config under '%s': it is damaged or not a "
                     "caopd run checkpoint",
                     ckpt_reader_errmsg(r), group);
            return -1;
        }
    }
    if (memcmp(want, got, sizeof want) != 0) {
        snprintf(err, errlen,
                 "the checkpoint's '%s' model has vocab %lld, block_size %lld, n_layer %lld, "
                 "n_head %lld, "
                 "n_embd %lld; the spec asks for %lld, %lld, %lld, %lld, %lld: make the spec's "
                 "model section match",
                 group, (long long)got[0], (long long)got[1], (long long)got[2], (long long)got[3],
                 (long long)got[4], (long long)want[0], (long long)want[1], (long long)want[2],
                 (long long)want[3], (long long)want[4]);
        return -1;
    }
    for (int i = 0; i < gpt_param_count(m); i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", group, gpt_param_name(m, i));
        if (load_tensor(r, ctx, path, gpt_param(m, i), err, errlen)) return -1;
    }
    return 0;
}

int snap_add_trainer(ckpt_snapshot *s, trainer *t, char *err, size_t errlen) {
    gpt *st = train_student(t);
    tw_ctx *ctx = gpt_ctx(st);
    if (snap_add_model(s, "student", st, err, errlen) ||
        snap_add_model(s, "teacher", train_teacher(t), err, errlen))
        return -1;
    tw_adamw *opt = train_optimizer(t);
    for (int i = 0; i < gpt_param_count(st); i++) {
        tw_tensor m, v;
        char pm[256], pv[256];
        snprintf(pm, sizeof pm, "optimizer/m/%s", gpt_param_name(st, i));
        snprintf(pv, sizeof pv, "optimizer/v/%s", gpt_param_name(st, i));
        if (tw_adamw_moments(opt, i, &m, &v) != TW_OK) {
            snprintf(err, errlen, "snapshot of the optimizer: %s", tw_errmsg(ctx));
            return -1;
        }
        if (add_tensor(s, ctx, pm, m, err, errlen) || add_tensor(s, ctx, pv, v, err, errlen))
            return -1;
    }
    size_t len = 0;
    if (tw_rng_get_state(train_rng(t), NULL, &len) != TW_OK)
        return snap_fail(err, errlen, 1, "snapshot: cannot read the RNG state");
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf || tw_rng_get_state(train_rng(t), buf, &len) != TW_OK) {
        free(buf);
        return snap_fail(err, errlen, 1, "snapshot: cannot read the RNG state (or out of memory)");
    }
    int64_t dims[1] = {(int64_t)len};
    if (ckpt_snapshot_add_owned(s, "rng/trainer", CKPT_DTYPE_U8, 1, dims, buf, NULL) != CKPT_OK ||
        ckpt_snapshot_attr_i64(s, "optimizer", "step_count", tw_adamw_step_count(opt)) != CKPT_OK ||
        ckpt_snapshot_attr_i64(s, "trainer", "step", train_step_count(t)) != CKPT_OK ||
        ckpt_snapshot_attr_i64(s, "trainer", "sched", train_sched_count(t)) != CKPT_OK) {
        snprintf(err, errlen, "snapshot: %s", ckpt_snapshot_errmsg(s));
        return -1;
    }
    return 0;
}

int snap_load_trainer(ckpt_reader *r, trainer *t, char *err, size_t errlen) {
    gpt *st = train_student(t);
    tw_ctx *ctx = gpt_ctx(st);
    if (snap_load_model(r, "student", st, err, errlen) ||
        snap_load_model(r, "teacher", train_teacher(t), err, errlen))
        return -1;
    tw_adamw *opt = train_optimizer(t);
    for (int i = 0; i < gpt_param_count(st); i++) {
        tw_tensor m, v;
        char pm[256], pv[256];
        snprintf(pm, sizeof pm, "optimizer/m/%s", gpt_param_name(st, i));
        snprintf(pv, sizeof pv, "optimizer/v/%s", gpt_param_name(st, i));
        if (tw_adamw_moments(opt, i, &m, &v) != TW_OK) {
            snprintf(err, errlen, "checkpoint load: %s", tw_errmsg(ctx));
            return -1;
        }
        if (load_tensor(r, ctx, pm, m, err, errlen) || load_tensor(r, ctx, pv, v, err, errlen))
            return -1;
    }
    int64_t steps = 0, step = 0, sched = 0;
    ckpt_info info;
    if (ckpt_reader_attr_i64(r, "optimizer", "step_count", &steps) != CKPT_OK ||
        ckpt_reader_attr_i64(r, "trainer", "step", &step) != CKPT_OK ||
        ckpt_reader_attr_i64(r, "trainer", "sched", &sched) != CKPT_OK ||
        ckpt_reader_info(r, "rng/trainer", &info) != CKPT_OK) {
        snprintf(err, errlen,
                 "%s; the checkpoint is incomplete: resume from an intact copy or rerun",
                 ckpt_reader_errmsg(r));
        return -1;
    }
    uint8_t *buf = malloc(info.nelems ? info.nelems : 1);
    if (!buf) return snap_fail(err, errlen, 1, "checkpoint load: out of memory");
    if (info.dtype != CKPT_DTYPE_U8 ||
        ckpt_reader_read(r, "rng/trainer", CKPT_DTYPE_U8, buf, info.nelems) != CKPT_OK ||
        tw_rng_set_state(train_rng(t), buf, info.nelems) != TW_OK) {
        snprintf(err, errlen,
                 "checkpoint dataset rng/trainer is not a generator state of this libtorch (%s%s); "
                 "resume with the build that wrote it",
                 ckpt_reader_errmsg(r), tw_errmsg(ctx));
        free(buf);
        return -1;
    }
    free(buf);
    tw_adamw_set_step_count(opt, steps);
    train_set_counters(t, step, sched);
    return 0;
}

int snap_reset_optimizer(trainer *t, char *err, size_t errlen) {
    gpt *st = train_student(t);
    tw_ctx *ctx = gpt_ctx(st);
    tw_adamw *opt = train_optimizer(t);
    for (int i = 0; i < gpt_param_count(st); i++) {
        tw_tensor m, v;
        if (tw_adamw_moments(opt, i, &m, &v) != TW_OK) {
            snprintf(err, errlen, "optimizer reset: %s", tw_errmsg(ctx));
            return -1;
        }
        int64_t n = tw_numel(ctx, m);
        float *z = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
        tw_status rc = z ? tw_copy_from_f32(ctx, m, z, (size_t)n) : TW_ERR_NOMEM;
        if (rc == TW_OK) rc = tw_copy_from_f32(ctx, v, z, (size_t)n);
        free(z);
        if (rc != TW_OK) {
            snprintf(err, errlen, "optimizer reset: %s",
                     rc == TW_ERR_NOMEM ? "out of memory" : tw_errmsg(ctx));
            return -1;
        }
    }
    tw_adamw_set_step_count(opt, 0);
    return 0;
}
