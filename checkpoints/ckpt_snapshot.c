/* ckpt_snapshot.c: a file's contents held in memory (owned copies of every array and string),
 * written in one go through a writer: the unit of work of the I/O thread. Building one makes no
 * HDF5 call, so any thread may build it while the I/O thread writes the previous one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/ckpt_internal.h"

typedef struct item {
    int kind;   /* 'd' dataset, 's' / 'i' / 'f' attribute */
    char *path; /* dataset path or object path */
    char *name; /* attribute name */
    ckpt_dtype dtype;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
    void *data; /* dataset elements, owned */
    void (*free_fn)(void *);
    char *str; /* string value, owned */
    int64_t i64;
    double f64;
} item;

struct ckpt_snapshot {
    char *path;
    char *format;
    int version;
    ckpt_mode mode;
    ckpt_write_opts opts;
    item *items;
    size_t n, cap;
    int status; /* first failed add (sticky) */
    char msg[CKPT_ERRMSG_CAP];
};

int ckpt_snapshot_new(ckpt_snapshot **out, const char *path, const char *format, int version,
                      ckpt_mode mode, const ckpt_write_opts *opts, ckpt_error *err) {
    char msg[CKPT_ERRMSG_CAP] = "";
    int rc = CKPT_OK;
    if (out) *out = NULL;
    if (!out || !path || !path[0] || !format || !format[0]) {
        snprintf(msg, sizeof msg, "ckpt_snapshot_new: %s",
                 !out                  ? "out is NULL"
                 : (!path || !path[0]) ? "path is empty"
                                       : "format is empty");
        rc = CKPT_ERR_ARG;
    } else if (version < 1) {
        snprintf(msg, sizeof msg, "%s: format_version %d is invalid (must be >= 1)", path, version);
        rc = CKPT_ERR_ARG;
    } else if (mode != CKPT_MODE_CREATE && mode != CKPT_MODE_APPEND) {
        snprintf(msg, sizeof msg, "%s: unknown snapshot mode %d", path, (int)mode);
        rc = CKPT_ERR_ARG;
    } else if (opts && (opts->deflate_level < 0 || opts->deflate_level > 9)) {
        snprintf(msg, sizeof msg, "%s: deflate_level %d is outside 0..9", path,
                 opts->deflate_level);
        rc = CKPT_ERR_ARG;
    }
    ckpt_snapshot *s = NULL;
    if (!rc) {
        s = calloc(1, sizeof *s);
        if (s) {
            s->path = ckpt__strdup(path);
            s->format = ckpt__strdup(format);
        }
        if (!s || !s->path || !s->format) {
            snprintf(msg, sizeof msg, "%s: out of memory creating a snapshot", path);
            rc = CKPT_ERR_NOMEM;
            ckpt_snapshot_free(s);
        }
    }
    if (err) {
        err->status = rc;
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    if (rc) return rc;
    s->version = version;
    s->mode = mode;
    s->opts = opts ? *opts : ckpt_write_opts_default();
    *out = s;
    return CKPT_OK;
}

static void item_free(item *it) {
    free(it->path);
    free(it->name);
    free(it->str);
    if (it->data) {
        if (it->free_fn)
            it->free_fn(it->data);
        else
            free(it->data);
    }
}

void ckpt_snapshot_free(ckpt_snapshot *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++)
        item_free(&s->items[i]);
    free(s->items);
    free(s->path);
    free(s->format);
    free(s);
}

int ckpt__snapshot_status(const ckpt_snapshot *s) {
    return s ? s->status : CKPT_ERR_ARG;
}

const char *ckpt_snapshot_errmsg(const ckpt_snapshot *s) {
    return s ? s->msg : "ckpt_snapshot is NULL";
}

static int fail(ckpt_snapshot *s, int status) {
    if (!s->status) s->status = status;
    return s->status;
}

static int nomem(ckpt_snapshot *s, const char *what) {
    if (!s->status) ckpt__fmt(s->msg, "%s: out of memory adding '%s' to a snapshot", s->path, what);
    return fail(s, CKPT_ERR_NOMEM);
}

/* Appends a zeroed item; NULL when out of memory. */
static item *push(ckpt_snapshot *s) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        item *v = realloc(s->items, cap * sizeof *v);
        if (!v) return NULL;
        s->items = v;
        s->cap = cap;
    }
    item *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    return it;
}

/* Common part of add/add_owned: data is owned by the snapshot from here on (copy: 0) or is
 * borrowed and must be copied (copy: 1). */
static int add(ckpt_snapshot *s, const char *dpath, ckpt_dtype dtype, int rank, const int64_t *dims,
               void *data, void (*free_fn)(void *), int copy) {
    if (s->status) goto drop;
    char rel[CKPT__PATH_CAP], m[CKPT_ERRMSG_CAP];
    int rc = ckpt__rel_path(dpath, 0, rel, "dataset path", m);
    if (rc) {
        ckpt__fmt(s->msg, "%s: %s", s->path, m);
        fail(s, rc);
        goto drop;
    }
    size_t nelems = 0, nbytes = 0;
    rc = ckpt__check_array(s->path, rel, dtype, rank, dims, data, &nelems, &nbytes, s->msg);
    if (rc) {
        fail(s, rc);
        goto drop;
    }
    void *owned = data;
    if (copy) {
        owned = NULL;
        if (nbytes > 0) {
            owned = malloc(nbytes);
            if (!owned) {
                nomem(s, rel);
                return s->status;
            }
            memcpy(owned, data, nbytes);
        }
        free_fn = NULL;
    }
    char *p = ckpt__strdup(rel);
    item *it = p ? push(s) : NULL;
    if (!it) {
        free(p);
        if (owned) {
            if (free_fn)
                free_fn(owned);
            else
                free(owned);
        }
        return nomem(s, rel);
    }
    it->kind = 'd';
    it->path = p;
    it->dtype = dtype;
    it->rank = rank;
    for (int i = 0; i < rank; i++)
        it->dims[i] = dims[i];
    it->data = owned;
    it->free_fn = free_fn;
    return CKPT_OK;
drop:
    if (!copy && data) {
        if (free_fn)
            free_fn(data);
        else
            free(data);
    }
    return s->status;
}

int ckpt_snapshot_add(ckpt_snapshot *s, const char *dpath, ckpt_dtype dtype, int rank,
                      const int64_t *dims, const void *data) {
    if (!s) return CKPT_ERR_ARG;
    return add(s, dpath, dtype, rank, dims, (void *)data, NULL, 1);
}

int ckpt_snapshot_add_owned(ckpt_snapshot *s, const char *dpath, ckpt_dtype dtype, int rank,
                            const int64_t *dims, void *data, void (*free_fn)(void *)) {
    if (!s) {
        if (data) {
            if (free_fn)
                free_fn(data);
            else
                free(data);
        }
        return CKPT_ERR_ARG;
    }
    return add(s, dpath, dtype, rank, dims, data, free_fn, 0);
}

static int add_attr(ckpt_snapshot *s, const char *obj_path, const char *name, int kind,
                    const char *str, int64_t i64, double f64) {
    if (!s) return CKPT_ERR_ARG;
    if (s->status) return s->status;
    char rel[CKPT__PATH_CAP], m[CKPT_ERRMSG_CAP];
    int rc = ckpt__rel_path(obj_path, 1, rel, "object path", m);
    if (rc) {
        ckpt__fmt(s->msg, "%s: %s", s->path, m);
        return fail(s, rc);
    }
    if (!name || !name[0]) {
        ckpt__fmt(s->msg, "%s: attribute name is empty (object '%s')", s->path, rel);
        return fail(s, CKPT_ERR_ARG);
    }
    if (kind == 's' && !str) {
        ckpt__fmt(s->msg, "%s: attribute '%s' of '%s': value is NULL", s->path, name, rel);
        return fail(s, CKPT_ERR_ARG);
    }
    if (rel[0] == 0 &&
        (!strcmp(name, CKPT_ATTR_FORMAT) || !strcmp(name, CKPT_ATTR_FORMAT_VERSION))) {
        ckpt__fmt(s->msg,
                  "%s: the root attribute '%s' is reserved (set from the snapshot's "
                  "format and version)",
                  s->path, name);
        return fail(s, CKPT_ERR_ARG);
    }
    char *p = ckpt__strdup(rel);
    char *nm = ckpt__strdup(name);
    char *sv = kind == 's' ? ckpt__strdup(str) : NULL;
    item *it = (p && nm && (kind != 's' || sv)) ? push(s) : NULL;
    if (!it) {
        free(p);
        free(nm);
        free(sv);
        return nomem(s, name);
    }
    it->kind = kind;
    it->path = p;
    it->name = nm;
    it->str = sv;
    it->i64 = i64;
    it->f64 = f64;
    return CKPT_OK;
}

int ckpt_snapshot_attr_str(ckpt_snapshot *s, const char *obj_path, const char *name,
                           const char *value) {
    return add_attr(s, obj_path, name, 's', value, 0, 0.0);
}

int ckpt_snapshot_attr_i64(ckpt_snapshot *s, const char *obj_path, const char *name,
                           int64_t value) {
    return add_attr(s, obj_path, name, 'i', NULL, value, 0.0);
}

int ckpt_snapshot_attr_f64(ckpt_snapshot *s, const char *obj_path, const char *name, double value) {
    return add_attr(s, obj_path, name, 'f', NULL, 0, value);
}

int ckpt_snapshot_write(const ckpt_snapshot *s, ckpt_error *err) {
    if (!s) {
        if (err) {
            err->status = CKPT_ERR_ARG;
            snprintf(err->msg, sizeof err->msg, "ckpt_snapshot_write: snapshot is NULL");
        }
        return CKPT_ERR_ARG;
    }
    if (s->status) {
        if (err) {
            err->status = s->status;
            snprintf(err->msg, sizeof err->msg, "%.900s (the snapshot was not written)", s->msg);
        }
        return s->status;
    }
    ckpt_writer *w = NULL;
    int rc = s->mode == CKPT_MODE_APPEND
                 ? ckpt_writer_open_append(&w, s->path, s->format, s->version, &s->opts, err)
                 : ckpt_writer_open(&w, s->path, s->format, s->version, &s->opts, err);
    if (rc) return rc;
    for (size_t i = 0; i < s->n && !rc; i++) {
        const item *it = &s->items[i];
        switch (it->kind) {
        case 'd':
            rc = ckpt_writer_write(w, it->path, it->dtype, it->rank, it->dims, it->data);
            break;
        case 's':
            rc = ckpt_writer_set_attr_str(w, it->path, it->name, it->str);
            break;
        case 'i':
            rc = ckpt_writer_set_attr_i64(w, it->path, it->name, it->i64);
            break;
        default:
            rc = ckpt_writer_set_attr_f64(w, it->path, it->name, it->f64);
            break;
        }
    }
    if (!rc) rc = ckpt_writer_commit(w);
    if (err) {
        err->status = rc;
        snprintf(err->msg, sizeof err->msg, "%s", rc ? ckpt_writer_errmsg(w) : "");
    }
    ckpt_writer_free(w);
    return rc;
}
