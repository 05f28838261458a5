/* ckpt_reader.c: reading a checked file: kinds, dataset shapes and contents, scalar attributes,
 * and listings of groups and attributes (for the analysis of partial runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/ckpt_internal.h"

struct ckpt_reader {
    char *path;
    hid_t fid;
    char *format;
    int version;
    char msg[CKPT_ERRMSG_CAP];
};

int ckpt_reader_open(ckpt_reader **out, const char *path, const char *format, int max_version,
                     ckpt_error *err) {
    char msg[CKPT_ERRMSG_CAP];
    int rc = CKPT_OK;
    if (out) *out = NULL;
    if (!out || !path || !path[0]) {
        snprintf(msg, sizeof msg, "ckpt_reader_open: %s", !out ? "out is NULL" : "path is empty");
        rc = CKPT_ERR_ARG;
    } else if (max_version < 1) {
        snprintf(msg, sizeof msg, "%s: max_version %d is invalid (must be >= 1)", path,
                 max_version);
        rc = CKPT_ERR_ARG;
    }
    ckpt_reader *r = NULL;
    if (!rc) {
        r = calloc(1, sizeof *r);
        if (r) r->path = ckpt__strdup(path);
        if (!r || !r->path) {
            snprintf(msg, sizeof msg, "%s: out of memory opening it", path);
            rc = CKPT_ERR_NOMEM;
        }
    }
    if (!rc) {
        ckpt__enter();
        rc = ckpt__open_checked(path, format, max_version, &r->fid, &r->format, &r->version, msg);
        H5Eclear2(H5E_DEFAULT);
        ckpt__leave();
    }
    if (rc) {
        if (r) free(r->path);
        free(r);
        if (err) {
            err->status = rc;
            snprintf(err->msg, sizeof err->msg, "%s", msg);
        }
        return rc;
    }
    if (err) {
        err->status = CKPT_OK;
        err->msg[0] = 0;
    }
    *out = r;
    return CKPT_OK;
}

void ckpt_reader_free(ckpt_reader *r) {
    if (!r) return;
    ckpt__enter();
    H5Fclose(r->fid);
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    free(r->path);
    free(r->format);
    free(r);
}

const char *ckpt_reader_errmsg(const ckpt_reader *r) {
    return r ? r->msg : "ckpt_reader is NULL";
}

const char *ckpt_reader_format(const ckpt_reader *r) {
    return r ? r->format : "";
}

int ckpt_reader_format_version(const ckpt_reader *r) {
    return r ? r->version : 0;
}

/* Checks the path and opens the object (lock held). */
static int open_path(ckpt_reader *r, const char *path, int allow_root, const char *what,
                     hid_t *oid) {
    char rel[CKPT__PATH_CAP], m[CKPT_ERRMSG_CAP];
    int rc = ckpt__rel_path(path, allow_root, rel, what, m);
    if (rc) {
        ckpt__fmt(r->msg, "%s: %s", r->path, m);
        return rc;
    }
    return ckpt__open_obj(r->fid, rel, r->path, oid, r->msg);
}

int ckpt_reader_kind(ckpt_reader *r, const char *path, ckpt_kind *out) {
    if (!r || !out) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    ckpt__enter();
    hid_t o = -1;
    int rc = open_path(r, path, 1, "path", &o);
    if (rc == CKPT_OK) {
        *out = ckpt__kind_of(o);
        H5Oclose(o);
    } else if (rc == CKPT_ERR_HDF5) {
        /* The link exists but leads nowhere openable (dangling soft link, external link). */
        *out = CKPT_KIND_OTHER;
        r->msg[0] = 0;
        rc = CKPT_OK;
    }
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

/* Opens the dataset at dpath into *d (lock held). */
static int open_dataset(ckpt_reader *r, const char *dpath, hid_t *d) {
    hid_t o = -1;
    int rc = open_path(r, dpath, 0, "dataset path", &o);
    if (rc) return rc;
    ckpt_kind k = ckpt__kind_of(o);
    if (k != CKPT_KIND_DATASET) {
        ckpt__fmt(r->msg, "%s: '%s' is a %s, not a dataset", r->path, dpath,
                  k == CKPT_KIND_GROUP ? "group" : "named datatype");
        H5Oclose(o);
        return CKPT_ERR_EXISTS;
    }
    *d = o;
    return CKPT_OK;
}

static int h5_fail(ckpt_reader *r, const char *what, const char *obj) {
    char cause[300];
    int errnum = 0;
    int rc = ckpt__h5_cause(cause, sizeof cause, &errnum, NULL);
    ckpt__fmt(r->msg, "%s: %s '%s' failed: %s%s", r->path, what, obj, cause,
              ckpt__errno_advice(errnum));
    return rc;
}

static int info_locked(ckpt_reader *r, const char *dpath, hid_t d, ckpt_info *out) {
    ckpt_info info;
    memset(&info, 0, sizeof info);
    hid_t t = H5Dget_type(d);
    hid_t sp = H5Dget_space(d);
    hid_t dcpl = H5Dget_create_plist(d);
    int rc = CKPT_OK;
    if (t < 0 || sp < 0 || dcpl < 0) {
        rc = h5_fail(r, "inspecting dataset", dpath);
        goto done;
    }
    info.dtype = ckpt__dtype_of(t);
    H5S_class_t cls = H5Sget_simple_extent_type(sp);
    int rank = cls == H5S_SIMPLE ? H5Sget_simple_extent_ndims(sp) : 0;
    if (rank < 0 || rank > CKPT_MAX_RANK) {
        ckpt__fmt(r->msg, "%s: dataset '%s' has rank %d; this API reads ranks 0..%d", r->path,
                  dpath, rank, CKPT_MAX_RANK);
        rc = CKPT_ERR_DTYPE;
        goto done;
    }
    hsize_t hd[CKPT_MAX_RANK];
    if (rank > 0) H5Sget_simple_extent_dims(sp, hd, NULL);
    info.rank = rank;
    info.nelems = cls == H5S_NULL ? 0 : 1;
    for (int i = 0; i < rank; i++) {
        info.dims[i] = (int64_t)hd[i];
        info.nelems *= (size_t)hd[i];
    }
    info.chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0;
        size_t ncd = 0;
        unsigned cfg = 0;
        H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, 0, NULL, &cfg);
        if (f == H5Z_FILTER_DEFLATE) info.compressed = 1;
    }
    *out = info;
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

int ckpt_reader_info(ckpt_reader *r, const char *dpath, ckpt_info *out) {
    if (!r || !out) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    ckpt__enter();
    hid_t d = -1;
    int rc = open_dataset(r, dpath, &d);
    if (!rc) {
        rc = info_locked(r, dpath, d, out);
        H5Oclose(d);
    }
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

int ckpt_reader_read(ckpt_reader *r, const char *dpath, ckpt_dtype dtype, void *buf,
                     size_t nelems) {
    if (!r) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    ckpt__enter();
    hid_t d = -1;
    ckpt_info info;
    int rc = open_dataset(r, dpath, &d);
    if (!rc) rc = info_locked(r, dpath, d, &info);
    if (!rc && info.dtype == CKPT_DTYPE_OTHER) {
        ckpt__fmt(r->msg,
                  "%s: dataset '%s' has a type this API does not read (only float32, "
                  "float64, int64, uint8); read it with h5py or h5dump",
                  r->path, dpath);
        rc = CKPT_ERR_DTYPE;
    } else if (!rc && info.dtype == CKPT_DTYPE_STR) {
        ckpt__fmt(r->msg, "%s: dataset '%s' holds strings; read it with ckpt_reader_read_str",
                  r->path, dpath);
        rc = CKPT_ERR_DTYPE;
    } else if (!rc && info.dtype != dtype) {
        ckpt__fmt(r->msg, "%s: dataset '%s' is %s, but %s was asked for; read it as %s", r->path,
                  dpath, ckpt_dtype_name(info.dtype), ckpt_dtype_name(dtype),
                  ckpt_dtype_name(info.dtype));
        rc = CKPT_ERR_DTYPE;
    }
    if (!rc && info.nelems != nelems) {
        ckpt__fmt(r->msg,
                  "%s: dataset '%s' has %zu elements, the buffer %zu; query its shape "
                  "with ckpt_reader_info",
                  r->path, dpath, info.nelems, nelems);
        rc = CKPT_ERR_SHAPE;
    }
    if (!rc && nelems > 0 && !buf) {
        ckpt__fmt(r->msg, "%s: dataset '%s': buffer is NULL", r->path, dpath);
        rc = CKPT_ERR_ARG;
    }
    if (!rc && nelems > 0 &&
        H5Dread(d, ckpt__mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = h5_fail(r, "reading dataset", dpath);
    if (d >= 0) H5Oclose(d);
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

int ckpt_reader_read_str(ckpt_reader *r, const char *dpath, char **packed, size_t *nelems) {
    if (!r || !packed || !nelems) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    ckpt__enter();
    hid_t d = -1, st = -1, sp = -1;
    char **ptrs = NULL, *out = NULL;
    ckpt_info info;
    int rc = open_dataset(r, dpath, &d);
    if (!rc) rc = info_locked(r, dpath, d, &info);
    if (!rc && info.dtype != CKPT_DTYPE_STR) {
        ckpt__fmt(r->msg, "%s: dataset '%s' is %s, not strings; read it with ckpt_reader_read",
                  r->path, dpath, ckpt_dtype_name(info.dtype));
        rc = CKPT_ERR_DTYPE;
    }
    size_t n = rc ? 0 : info.nelems, total = 0;
    if (!rc) {
        st = ckpt__str_type();
        sp = H5Dget_space(d);
        ptrs = calloc(n ? n : 1, sizeof *ptrs);
        if (!ptrs) {
            ckpt__fmt(r->msg, "%s: out of memory reading '%s'", r->path, dpath);
            rc = CKPT_ERR_NOMEM;
        } else if (st < 0 || sp < 0 ||
                   (n > 0 && H5Dread(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs) < 0)) {
            rc = h5_fail(r, "reading dataset", dpath);
        }
    }
    for (size_t i = 0; !rc && i < n; i++)
        total += (ptrs[i] ? strlen(ptrs[i]) : 0) + 1;
    if (!rc) {
        out = malloc(total ? total : 1);
        if (!out) {
            ckpt__fmt(r->msg, "%s: out of memory reading '%s'", r->path, dpath);
            rc = CKPT_ERR_NOMEM;
        }
    }
    for (size_t i = 0, at = 0; !rc && i < n; i++) {
        const size_t len = ptrs[i] ? strlen(ptrs[i]) : 0;
        if (len) memcpy(out + at, ptrs[i], len);
        out[at + len] = '\0';
        at += len + 1;
    }
    if (ptrs && st >= 0 && sp >= 0 && n > 0) H5Dvlen_reclaim(st, sp, H5P_DEFAULT, ptrs);
    free(ptrs);
    if (sp >= 0) H5Sclose(sp);
    if (st >= 0) H5Tclose(st);
    if (d >= 0) H5Oclose(d);
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    if (rc) {
        free(out);
        return rc;
    }
    *packed = out;
    *nelems = n;
    return CKPT_OK;
}

/* kind: 's', 'i', 'f'. */
static int attr_read(ckpt_reader *r, const char *obj_path, const char *name, int kind, void *out) {
    if (!r || !out) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    if (!name || !name[0]) {
        ckpt__fmt(r->msg, "%s: attribute name is empty", r->path);
        return CKPT_ERR_ARG;
    }
    ckpt__enter();
    hid_t o = -1;
    int rc = open_path(r, obj_path, 1, "object path", &o);
    const char *obj = obj_path && obj_path[0] ? obj_path : "/";
    if (!rc) {
        if (kind == 's') {
            char *s = NULL;
            rc = ckpt__attr_read_str(o, name, &s);
            if (!rc) *(char **)out = s;
        } else if (kind == 'i') {
            int64_t v = 0;
            rc = ckpt__attr_read_num(o, name, 0, &v);
            if (!rc) *(int64_t *)out = v;
        } else {
            double v = 0;
            rc = ckpt__attr_read_num(o, name, 1, &v);
            if (!rc) *(double *)out = v;
        }
        const char *want = kind == 's' ? "a string" : kind == 'i' ? "an integer" : "a float";
        if (rc == CKPT_ERR_NOTFOUND)
            ckpt__fmt(r->msg, "%s: '%s' has no attribute '%s'", r->path, obj, name);
        else if (rc == CKPT_ERR_DTYPE)
            ckpt__fmt(r->msg,
                      "%s: attribute '%s' of '%s' is not %s scalar; list it with "
                      "ckpt_reader_list_attrs",
                      r->path, name, obj, want);
        else if (rc == CKPT_ERR_NOMEM)
            ckpt__fmt(r->msg, "%s: out of memory reading attribute '%s' of '%s'", r->path, name,
                      obj);
        else if (rc) {
            char what[200];
            snprintf(what, sizeof what, "reading attribute '%s' of", name);
            rc = h5_fail(r, what, obj);
        }
        H5Oclose(o);
    }
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

int ckpt_reader_attr_str(ckpt_reader *r, const char *obj_path, const char *name, char **out) {
    return attr_read(r, obj_path, name, 's', out);
}

int ckpt_reader_attr_i64(ckpt_reader *r, const char *obj_path, const char *name, int64_t *out) {
    return attr_read(r, obj_path, name, 'i', out);
}

int ckpt_reader_attr_f64(ckpt_reader *r, const char *obj_path, const char *name, double *out) {
    return attr_read(r, obj_path, name, 'f', out);
}

/* ---- listings -------------------------------------------------------------------------------- */

typedef struct {
    ckpt_list list;
    size_t cap;
    int nomem;
    int attrs; /* listing attributes (type = ckpt_attr_type) rather than links */
} collector;

static int collect(collector *c, const char *name, int type) {
    if (c->list.n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        ckpt_entry *v = realloc(c->list.v, cap * sizeof *v);
        if (!v) return -1;
        c->list.v = v;
        c->cap = cap;
    }
    char *s = ckpt__strdup(name);
    if (!s) return -1;
    c->list.v[c->list.n].name = s;
    c->list.v[c->list.n].type = type;
    c->list.n++;
    return 0;
}

static herr_t link_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    collector *c = data;
    int type = CKPT_KIND_OTHER;
    if (info->type == H5L_TYPE_HARD) {
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o >= 0) {
            type = ckpt__kind_of(o);
            H5Oclose(o);
        }
        H5Eclear2(H5E_DEFAULT);
    }
    if (collect(c, name, type)) {
        c->nomem = 1;
        return -1;
    }
    return 0;
}

static herr_t attr_cb(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    collector *c = data;
    int type = CKPT_ATTR_OTHER;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a >= 0) {
        hid_t t = H5Aget_type(a);
        H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
        if (cls == H5T_STRING)
            type = CKPT_ATTR_STR;
        else if (cls == H5T_INTEGER)
            type = CKPT_ATTR_INT;
        else if (cls == H5T_FLOAT)
            type = CKPT_ATTR_FLOAT;
        if (t >= 0) H5Tclose(t);
        H5Aclose(a);
    }
    H5Eclear2(H5E_DEFAULT);
    if (collect(c, name, type)) {
        c->nomem = 1;
        return -1;
    }
    return 0;
}

static int list_locked(ckpt_reader *r, const char *path, int attrs, ckpt_list *out) {
    hid_t o = -1;
    int rc = open_path(r, path, 1, attrs ? "object path" : "group path", &o);
    if (rc) return rc;
    const char *shown = path && path[0] ? path : "/";
    collector c;
    memset(&c, 0, sizeof c);
    herr_t e;
    if (attrs) {
        hsize_t idx = 0;
        e = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &c);
    } else if (ckpt__kind_of(o) != CKPT_KIND_GROUP) {
        ckpt__fmt(r->msg, "%s: '%s' is a dataset, not a group; list its attributes instead",
                  r->path, shown);
        H5Oclose(o);
        return CKPT_ERR_EXISTS;
    } else {
        /* Creation order when the group tracks it, else name order. */
        hid_t gcpl = H5Gget_create_plist(o);
        unsigned flags = 0;
        if (gcpl >= 0) {
            H5Pget_link_creation_order(gcpl, &flags);
            H5Pclose(gcpl);
        }
        H5_index_t index = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
        hsize_t idx = 0;
        e = H5Literate(o, index, H5_ITER_INC, &idx, link_cb, &c);
    }
    if (e < 0 || c.nomem) {
        if (c.nomem) {
            ckpt__fmt(r->msg, "%s: out of memory listing '%s'", r->path, shown);
            rc = CKPT_ERR_NOMEM;
        } else {
            rc = h5_fail(r, "listing", shown);
        }
        ckpt_list_free(&c.list);
    } else {
        *out = c.list;
    }
    H5Oclose(o);
    return rc;
}

int ckpt_reader_list(ckpt_reader *r, const char *group_path, ckpt_list *out) {
    if (!r || !out) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    ckpt__enter();
    int rc = list_locked(r, group_path, 0, out);
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

int ckpt_reader_list_attrs(ckpt_reader *r, const char *obj_path, ckpt_list *out) {
    if (!r || !out) return CKPT_ERR_ARG;
    r->msg[0] = 0;
    ckpt__enter();
    int rc = list_locked(r, obj_path, 1, out);
    H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

void ckpt_list_free(ckpt_list *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
