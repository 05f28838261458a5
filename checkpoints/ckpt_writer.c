/* ckpt_writer.c: writing a file atomically. The file is built in memory (HDF5's core driver,
 * no backing store), so HDF5 itself never writes to disk and a full disk cannot leave it with a
 * half-closed file; commit takes the image, writes it to "<path>.tmp" with plain write(2),
 * fsyncs it, renames it over <path> and fsyncs the directory. <path> is therefore always either
 * the previous complete file or the new complete one. Errors are sticky (see ckpt.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints/ckpt_internal.h"

enum { W_OPEN, W_FAILED, W_COMMITTED, W_ABORTED };

struct ckpt_writer {
    char *path;    /* the file the caller named; changed only by the commit's rename */
    char *tmp;     /* path + ".tmp", written at commit, then renamed over path */
    hid_t fid;     /* the in-memory file (named tmp) while W_OPEN/W_FAILED, else -1 */
    unsigned mode; /* permission bits for the new file (append keeps the old file's) */
    ckpt_write_opts opts;
    int deflate_ok; /* the deflate and shuffle filters are available */
    int state;
    int status; /* first failure (sticky) */
    char msg[CKPT_ERRMSG_CAP];
};

/* Chunks are cut to at most this many bytes (HDF5's default chunk cache is 1 MiB). */
#define CHUNK_TARGET_BYTES ((size_t)1 << 20)

static void set_err(ckpt_error *err, int status, const char *msg) {
    if (!err) return;
    err->status = status;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

/* Records the first failure; later ones keep the first message. Returns status. */
static int fail(ckpt_writer *w, int status) {
    if (w->state == W_OPEN) {
        w->state = W_FAILED;
        w->status = status;
    }
    return w->status;
}

/* A failed HDF5 call while doing `what` on object `obj`: message from the error stack. */
static int fail_h5(ckpt_writer *w, const char *what, const char *obj) {
    char cause[300];
    int errnum = 0;
    int rc = ckpt__h5_cause(cause, sizeof cause, &errnum, NULL);
    if (w->state == W_OPEN)
        ckpt__fmt(w->msg, "%s: %s '%s' failed: %s%s; %s itself is unchanged", w->path, what, obj,
                  cause, ckpt__errno_advice(errnum), w->path);
    return fail(w, rc);
}

/* Core driver without backing store: the file lives in memory until commit writes its image.
 * STRONG: closing the file closes every object in it. */
#define CORE_INCREMENT ((size_t)1 << 20)

static hid_t make_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_fapl_core(fapl, CORE_INCREMENT, 0) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* Group creation property list: links kept in creation order (listing a partial run gives
 * stages in the order they ran), no timestamps (identical contents give identical files). */
static hid_t make_gcpl(void) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0) return -1;
    if (H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0 ||
        H5Pset_obj_track_times(gcpl, 0) < 0) {
        H5Pclose(gcpl);
        return -1;
    }
    return gcpl;
}

/* Writes or replaces a scalar attribute. kind: 's' string, 'i' int64, 'f' double. */
static int attr_write(ckpt_writer *w, hid_t obj, const char *objname, const char *name, int kind,
                      const void *value) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0 || (ex > 0 && H5Adelete(obj, name) < 0))
        return fail_h5(w, "replacing attribute of", objname);
    hid_t ft = -1, mt = -1, sp = -1, a = -1;
    int rc = CKPT_OK;
    if (kind == 's') {
        ft = H5Tcopy(H5T_C_S1);
        if (ft < 0 || H5Tset_size(ft, H5T_VARIABLE) < 0 || H5Tset_cset(ft, H5T_CSET_UTF8) < 0)
            rc = fail_h5(w, "making a string type for", objname);
        mt = ft;
    } else {
        ft = kind == 'i' ? H5T_STD_I64LE : H5T_IEEE_F64LE;
        mt = kind == 'i' ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
    }
    if (!rc) {
        sp = H5Screate(H5S_SCALAR);
        a = sp >= 0 ? H5Acreate2(obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
        if (a < 0 || H5Awrite(a, mt, value) < 0) {
            char what[200];
            snprintf(what, sizeof what, "writing attribute '%s' of", name);
            rc = fail_h5(w, what, objname);
        }
    }
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (kind == 's' && ft >= 0) H5Tclose(ft);
    return rc;
}

/* Opens the group at rel ("" = root), creating it and every missing group on the way. When
 * last_any is set, an existing final object of any kind (a dataset) is opened as is. */
static int open_or_create(ckpt_writer *w, const char *rel, int last_any, hid_t *out) {
    if (rel[0] == 0) {
        hid_t g = H5Gopen2(w->fid, "/", H5P_DEFAULT);
        if (g < 0) return fail_h5(w, "opening", "/");
        *out = g;
        return CKPT_OK;
    }
    char buf[CKPT__PATH_CAP];
    size_t n = strlen(rel);
    memcpy(buf, rel, n + 1);
    for (size_t i = 0; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char save = buf[i];
        int last = save == 0;
        buf[i] = 0;
        htri_t ex = H5Lexists(w->fid, buf, H5P_DEFAULT);
        if (ex < 0) return fail_h5(w, "looking up", buf);
        if (ex > 0) {
            hid_t o = H5Oopen(w->fid, buf, H5P_DEFAULT);
            if (o < 0) return fail_h5(w, "opening", buf);
            ckpt_kind k = ckpt__kind_of(o);
            if (last && (k == CKPT_KIND_GROUP || last_any)) {
                *out = o;
                return CKPT_OK;
            }
            H5Oclose(o);
            if (k != CKPT_KIND_GROUP) {
                ckpt__fmt(w->msg,
                          "%s: '%s' is a %s, so '%s' cannot be created under it; "
                          "choose another path",
                          w->path, buf, k == CKPT_KIND_DATASET ? "dataset" : "non-group object",
                          rel);
                return fail(w, CKPT_ERR_EXISTS);
            }
        } else {
            hid_t gcpl = make_gcpl();
            hid_t g = gcpl >= 0 ? H5Gcreate2(w->fid, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
            if (g < 0) ckpt__h5_save();
            if (gcpl >= 0) H5Pclose(gcpl);
            if (g < 0) return fail_h5(w, "creating group", buf);
            if (last) {
                *out = g;
                return CKPT_OK;
            }
            H5Gclose(g);
        }
        buf[i] = save;
    }
    return fail(w, CKPT_ERR_HDF5); /* not reached */
}

/* ---- open ------------------------------------------------------------------------------------ */

static int check_open_args(ckpt_writer **out, const char *path, const char *format, int version,
                           const ckpt_write_opts *opts, ckpt_error *err) {
    char msg[CKPT_ERRMSG_CAP];
    msg[0] = 0;
    if (!out)
        snprintf(msg, sizeof msg, "ckpt_writer_open: out is NULL");
    else if (!path || !path[0])
        snprintf(msg, sizeof msg, "ckpt_writer_open: path is empty");
    else if (strlen(path) + 5 > CKPT__PATH_CAP)
        snprintf(msg, sizeof msg, "%.64s...: path too long (at most %d bytes)", path,
                 CKPT__PATH_CAP - 5);
    else if (!format || !format[0])
        snprintf(msg, sizeof msg, "%.900s: format name is empty; pass e.g. \"%s\"", path,
                 CKPT_FORMAT_CHECKPOINT);
    else if (version < 1)
        snprintf(msg, sizeof msg, "%.900s: format_version %d is invalid (must be >= 1)", path,
                 version);
    else if (opts && (opts->deflate_level < 0 || opts->deflate_level > 9))
        snprintf(msg, sizeof msg, "%.900s: deflate_level %d is outside 0..9", path,
                 opts->deflate_level);
    if (!msg[0]) return CKPT_OK;
    set_err(err, CKPT_ERR_ARG, msg);
    return CKPT_ERR_ARG;
}

static ckpt_writer *writer_alloc(const char *path, const ckpt_write_opts *opts) {
    ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    size_t n = strlen(path);
    w->path = ckpt__strdup(path);
    w->tmp = malloc(n + 5);
    if (!w->path || !w->tmp) {
        free(w->path);
        free(w->tmp);
        free(w);
        return NULL;
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->fid = -1;
    w->mode = 0666; /* less the umask */
    w->opts = opts ? *opts : ckpt_write_opts_default();
    w->state = W_OPEN;
    return w;
}

/* Removes a stale tmp left by a crashed writer. */
static int remove_stale_tmp(ckpt_writer *w) {
    int rc = ckpt__check_dir_writable(w->path, w->msg);
    if (rc) return fail(w, rc);
    if (unlink(w->tmp) == 0 || errno == ENOENT) return CKPT_OK;
    int e = errno;
    char es[128];
    ckpt__strerror(e, es, sizeof es);
    ckpt__fmt(w->msg, "%s: cannot remove the stale temporary file %s: %s%s", w->path, w->tmp, es,
              ckpt__errno_advice(e));
    return fail(w, CKPT_ERR_IO);
}

static void deflate_probe(ckpt_writer *w) {
    w->deflate_ok =
        H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0;
    H5Eclear2(H5E_DEFAULT);
}

/* Creates tmp and writes the root attributes. Lock held. */
static int start_new(ckpt_writer *w, const char *format, int version) {
    int rc = remove_stale_tmp(w);
    if (rc) return rc;
    deflate_probe(w);
    /* The file creation list carries the root group's properties too. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0 &&
        (H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0 ||
         H5Pset_obj_track_times(fcpl, 0) < 0)) {
        H5Pclose(fcpl);
        fcpl = -1;
    }
    hid_t fapl = make_fapl();
    hid_t f = (fcpl >= 0 && fapl >= 0) ? H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    if (f < 0) ckpt__h5_save();
    if (fcpl >= 0) H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        char cause[300];
        int errnum = 0;
        rc = ckpt__h5_cause(cause, sizeof cause, &errnum, NULL);
        ckpt__fmt(w->msg, "%s: cannot create the file in memory: %s%s", w->path, cause,
                  ckpt__errno_advice(errnum));
        return fail(w, rc);
    }
    w->fid = f;
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    if (root < 0) return fail_h5(w, "opening", "/");
    int64_t v = version;
    rc = attr_write(w, root, "/", CKPT_ATTR_FORMAT, 's', &format);
    if (!rc) rc = attr_write(w, root, "/", CKPT_ATTR_FORMAT_VERSION, 'i', &v);
    H5Gclose(root);
    return rc;
}

/* Closes (ignoring errors) and removes tmp. Lock held. */
static void discard(ckpt_writer *w) {
    if (w->fid >= 0) {
        H5Fclose(w->fid);
        H5Eclear2(H5E_DEFAULT);
        w->fid = -1;
    }
    unlink(w->tmp);
}

static int finish_open(ckpt_writer *w, int rc, ckpt_writer **out, ckpt_error *err) {
    if (rc) {
        set_err(err, rc, w->msg);
        discard(w);
        free(w->path);
        free(w->tmp);
        free(w);
        *out = NULL;
        return rc;
    }
    set_err(err, CKPT_OK, "");
    *out = w;
    return CKPT_OK;
}

int ckpt_writer_open(ckpt_writer **out, const char *path, const char *format, int version,
                     const ckpt_write_opts *opts, ckpt_error *err) {
    int rc = check_open_args(out, path, format, version, opts, err);
    if (rc) {
        if (out) *out = NULL;
        return rc;
    }
    ckpt_writer *w = writer_alloc(path, opts);
    if (!w) {
        set_err(err, CKPT_ERR_NOMEM, "ckpt_writer_open: out of memory");
        *out = NULL;
        return CKPT_ERR_NOMEM;
    }
    ckpt__enter();
    rc = start_new(w, format, version);
    rc = finish_open(w, rc, out, err);
    ckpt__leave();
    return rc;
}

int ckpt_writer_open_append(ckpt_writer **out, const char *path, const char *format, int version,
                            const ckpt_write_opts *opts, ckpt_error *err) {
    int rc = check_open_args(out, path, format, version, opts, err);
    if (rc) {
        if (out) *out = NULL;
        return rc;
    }
    ckpt_writer *w = writer_alloc(path, opts);
    if (!w) {
        set_err(err, CKPT_ERR_NOMEM, "ckpt_writer_open_append: out of memory");
        *out = NULL;
        return CKPT_ERR_NOMEM;
    }
    ckpt__enter();
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        rc = start_new(w, format, version);
    } else {
        hid_t f = -1;
        char *fmt = NULL;
        int v = 0;
        rc = ckpt__open_checked(path, format, version, &f, &fmt, &v, w->msg);
        if (!rc) {
            H5Fclose(f);
            H5Eclear2(H5E_DEFAULT);
            free(fmt);
            if (v != version) {
                ckpt__fmt(w->msg,
                          "%s: has format_version %d; this build writes %d and cannot "
                          "append to it; start a new file (move this one aside)",
                          path, v, version);
                rc = CKPT_ERR_VERSION;
            }
        }
        if (rc) {
            fail(w, rc);
        } else {
            rc = remove_stale_tmp(w);
        }
        /* Load the whole file into memory and extend it there. */
        void *image = NULL;
        size_t size = 0;
        if (!rc) {
            rc = ckpt__read_file(path, &image, &size, &w->mode, w->msg);
            if (rc) fail(w, rc);
        }
        if (!rc) {
            deflate_probe(w);
            hid_t fapl = make_fapl();
            if (fapl >= 0 && H5Pset_file_image(fapl, image, size) < 0) {
                ckpt__h5_save();
                H5Pclose(fapl);
                fapl = -1;
            }
            f = fapl >= 0 ? H5Fopen(w->tmp, H5F_ACC_RDWR, fapl) : -1;
            if (f < 0) ckpt__h5_save();
            if (fapl >= 0) H5Pclose(fapl);
            if (f < 0) {
                char cause[300];
                int errnum = 0;
                rc = ckpt__h5_cause(cause, sizeof cause, &errnum, NULL);
                ckpt__fmt(w->msg, "%s: cannot open its contents in memory to extend them: %s%s",
                          path, cause, ckpt__errno_advice(errnum));
                fail(w, rc);
            } else {
                w->fid = f;
            }
        }
        free(image);
    }
    rc = finish_open(w, rc, out, err);
    ckpt__leave();
    return rc;
}

/* ---- writing --------------------------------------------------------------------------------- */

static int check_usable(ckpt_writer *w) {
    if (w->state == W_OPEN) return CKPT_OK;
    if (w->state == W_FAILED) return w->status;
    ckpt__fmt(w->msg, "%s: the writer was already %s; open a new one", w->path,
              w->state == W_COMMITTED ? "committed" : "aborted");
    return CKPT_ERR_STATE;
}

/* Chunk shape: the whole array, halved along the outermost dimensions first until a chunk
 * holds at most CHUNK_TARGET_BYTES, so chunks are blocks of whole rows where possible. */
static void chunk_shape(int rank, const hsize_t *dims, size_t esize, hsize_t *chunk) {
    for (int i = 0; i < rank; i++)
        chunk[i] = dims[i];
    int i = 0;
    while (1) {
        size_t bytes = esize;
        for (int k = 0; k < rank; k++)
            bytes *= (size_t)chunk[k];
        if (bytes <= CHUNK_TARGET_BYTES) break;
        while (i < rank && chunk[i] == 1)
            i++;
        if (i == rank) break;
        chunk[i] = (chunk[i] + 1) / 2;
    }
}

static int write_locked(ckpt_writer *w, const char *dpath, ckpt_dtype dtype, int rank,
                        const int64_t *dims, const void *data) {
    int rc = check_usable(w);
    if (rc) return rc;
    char rel[CKPT__PATH_CAP], m[CKPT_ERRMSG_CAP];
    rc = ckpt__rel_path(dpath, 0, rel, "dataset path", m);
    if (rc) {
        ckpt__fmt(w->msg, "%s: %s", w->path, m);
        return fail(w, rc);
    }
    size_t nelems = 0, nbytes = 0;
    rc = ckpt__check_array(w->path, rel, dtype, rank, dims, data, &nelems, &nbytes, w->msg);
    if (rc) return fail(w, rc);

    /* Parent group and leaf name. */
    char parent[CKPT__PATH_CAP];
    const char *slash = strrchr(rel, '/');
    const char *leaf = slash ? slash + 1 : rel;
    size_t plen = slash ? (size_t)(slash - rel) : 0;
    memcpy(parent, rel, plen);
    parent[plen] = 0;
    hid_t g = -1;
    rc = open_or_create(w, parent, 0, &g);
    if (rc) return rc;

    hid_t sp = -1, dcpl = -1, d = -1, st = -1;
    const char **ptrs = NULL;
    htri_t ex = H5Lexists(g, leaf, H5P_DEFAULT);
    if (ex < 0) {
        rc = fail_h5(w, "looking up", rel);
        goto done;
    }
    if (ex > 0) {
        hid_t o = H5Oopen(g, leaf, H5P_DEFAULT);
        ckpt_kind k = o >= 0 ? ckpt__kind_of(o) : CKPT_KIND_OTHER;
        if (o >= 0) H5Oclose(o);
        H5Eclear2(H5E_DEFAULT);
        if (k != CKPT_KIND_DATASET) {
            ckpt__fmt(w->msg, "%s: '%s' already exists as a %s; a dataset cannot replace it",
                      w->path, rel, k == CKPT_KIND_GROUP ? "group" : "non-dataset object");
            rc = fail(w, CKPT_ERR_EXISTS);
            goto done;
        }
        if (H5Ldelete(g, leaf, H5P_DEFAULT) < 0) {
            rc = fail_h5(w, "replacing dataset", rel);
            goto done;
        }
    }

    hsize_t hd[CKPT_MAX_RANK];
    for (int i = 0; i < rank; i++)
        hd[i] = (hsize_t)dims[i];
    sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, hd, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (sp < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        rc = fail_h5(w, "preparing dataset", rel);
        goto done;
    }
    if (rank > 0 && nbytes > w->opts.compress_min_bytes && dtype != CKPT_DTYPE_STR) {
        hsize_t chunk[CKPT_MAX_RANK];
        chunk_shape(rank, hd, ckpt_dtype_size(dtype), chunk);
        herr_t e = H5Pset_chunk(dcpl, rank, chunk);
        if (e >= 0 && w->opts.deflate_level > 0 && w->deflate_ok) {
            e = H5Pset_shuffle(dcpl);
            if (e >= 0) e = H5Pset_deflate(dcpl, (unsigned)w->opts.deflate_level);
        }
        if (e < 0) {
            rc = fail_h5(w, "setting chunking/compression of", rel);
            goto done;
        }
    }
    if (dtype == CKPT_DTYPE_STR) { /* the packed texts as the array of pointers HDF5 reads */
        st = ckpt__str_type();
        ptrs = malloc(sizeof *ptrs * (nelems ? nelems : 1));
        if (!ptrs) {
            ckpt__fmt(w->msg, "%s: out of memory writing '%s'", w->path, rel);
            rc = fail(w, CKPT_ERR_NOMEM);
            goto done;
        }
        if (st < 0) {
            rc = fail_h5(w, "preparing the string type of", rel);
            goto done;
        }
        const char *p = data;
        for (size_t i = 0; i < nelems; i++)
            ptrs[i] = p, p += strlen(p) + 1;
    }
    d = H5Dcreate2(g, leaf, st >= 0 ? st : ckpt__file_type(dtype), sp, H5P_DEFAULT, dcpl,
                   H5P_DEFAULT);
    if (d < 0) {
        rc = fail_h5(w, "creating dataset", rel);
        goto done;
    }
    if (nelems > 0 && H5Dwrite(d, st >= 0 ? st : ckpt__mem_type(dtype), H5S_ALL, H5S_ALL,
                               H5P_DEFAULT, st >= 0 ? (const void *)ptrs : data) < 0)
        rc = fail_h5(w, "writing dataset", rel);
done:
    if (st >= 0) H5Tclose(st);
    free(ptrs);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    H5Gclose(g);
    if (rc) H5Eclear2(H5E_DEFAULT);
    return rc;
}

int ckpt_writer_write(ckpt_writer *w, const char *dpath, ckpt_dtype dtype, int rank,
                      const int64_t *dims, const void *data) {
    if (!w) return CKPT_ERR_ARG;
    ckpt__enter();
    int rc = write_locked(w, dpath, dtype, rank, dims, data);
    ckpt__leave();
    return rc;
}

static int set_attr(ckpt_writer *w, const char *obj_path, const char *name, int kind,
                    const void *value) {
    if (!w) return CKPT_ERR_ARG;
    ckpt__enter();
    int rc = check_usable(w);
    char rel[CKPT__PATH_CAP], m[CKPT_ERRMSG_CAP];
    if (!rc) {
        rc = ckpt__rel_path(obj_path, 1, rel, "object path", m);
        if (rc) {
            ckpt__fmt(w->msg, "%s: %s", w->path, m);
        } else if (!name || !name[0]) {
            ckpt__fmt(w->msg, "%s: attribute name is empty (object '%s')", w->path, rel);
            rc = CKPT_ERR_ARG;
        } else if (kind == 's' && !*(const char *const *)value) {
            ckpt__fmt(w->msg, "%s: attribute '%s' of '%s': value is NULL", w->path, name, rel);
            rc = CKPT_ERR_ARG;
        } else if (rel[0] == 0 &&
                   (!strcmp(name, CKPT_ATTR_FORMAT) || !strcmp(name, CKPT_ATTR_FORMAT_VERSION))) {
            ckpt__fmt(w->msg, "%s: the root attribute '%s' is reserved (set at open)", w->path,
                      name);
            rc = CKPT_ERR_ARG;
        }
        if (rc) rc = fail(w, rc);
    }
    if (!rc) {
        hid_t o = -1;
        rc = open_or_create(w, rel, 1, &o);
        if (!rc) {
            rc = attr_write(w, o, rel[0] ? rel : "/", name, kind, value);
            H5Oclose(o);
        }
    }
    if (rc) H5Eclear2(H5E_DEFAULT);
    ckpt__leave();
    return rc;
}

int ckpt_writer_set_attr_str(ckpt_writer *w, const char *obj_path, const char *name,
                             const char *value) {
    return set_attr(w, obj_path, name, 's', &value);
}

int ckpt_writer_set_attr_i64(ckpt_writer *w, const char *obj_path, const char *name,
                             int64_t value) {
    return set_attr(w, obj_path, name, 'i', &value);
}

int ckpt_writer_set_attr_f64(ckpt_writer *w, const char *obj_path, const char *name, double value) {
    return set_attr(w, obj_path, name, 'f', &value);
}

/* ---- finishing ---------------------------------------------------------------------------------
 */

/* Commit, part 1 (lock held): the file's bytes, as they would be on disk, into *image
 * (malloc'd), and the in-memory file closed. */
static int commit_image(ckpt_writer *w, void **image_out, size_t *size_out) {
    if (w->state == W_FAILED) {
        discard(w);
        w->state = W_ABORTED;
        return w->status;
    }
    int rc = check_usable(w);
    if (rc) return rc;
    void *image = NULL;
    ssize_t size = -1;
    if (H5Fflush(w->fid, H5F_SCOPE_GLOBAL) >= 0) size = H5Fget_file_image(w->fid, NULL, 0);
    if (size >= 0) {
        image = malloc(size > 0 ? (size_t)size : 1);
        if (!image) {
            ckpt__fmt(w->msg,
                      "%s: out of memory taking the file image (%lld bytes); %s itself "
                      "is unchanged",
                      w->path, (long long)size, w->path);
            rc = fail(w, CKPT_ERR_NOMEM);
        } else if (H5Fget_file_image(w->fid, image, (size_t)size) != size) {
            size = -1;
        }
    }
    if (size < 0 && !rc) rc = fail_h5(w, "taking the in-memory image of", w->path);
    hid_t f = w->fid;
    w->fid = -1;
    if (H5Fclose(f) < 0 && !rc) rc = fail_h5(w, "closing the in-memory", w->path);
    H5Eclear2(H5E_DEFAULT);
    if (rc) {
        free(image);
        discard(w);
        w->state = W_ABORTED;
        return rc;
    }
    *image_out = image;
    *size_out = (size_t)size;
    return CKPT_OK;
}

/* Commit, part 2 (no HDF5, so without the lock): write + fsync "<path>.tmp", rename it over
 * <path>, fsync the directory. */
static int commit_files(ckpt_writer *w, const void *image, size_t size) {
    char es[128];
    int rc = ckpt__write_file(w->tmp, image, size, w->mode, w->path, w->msg);
    if (rc) {
        fail(w, rc);
        unlink(w->tmp);
        w->state = W_ABORTED;
        return rc;
    }
    if (rename(w->tmp, w->path) != 0) {
        int e = errno;
        ckpt__strerror(e, es, sizeof es);
        ckpt__fmt(w->msg,
                  "%s: renaming %s over it failed: %s (errno %d)%s; %s itself is "
                  "unchanged",
                  w->path, w->tmp, es, e, ckpt__errno_advice(e), w->path);
        rc = fail(w, CKPT_ERR_IO);
        unlink(w->tmp);
        w->state = W_ABORTED;
        return rc;
    }
    w->state = W_COMMITTED;
    int e = ckpt__fsync_dir_of(w->path);
    if (e) {
        ckpt__strerror(e, es, sizeof es);
        ckpt__fmt(w->msg,
                  "%s: the new file is in place, but syncing its directory failed: %s "
                  "(errno %d); it may not survive a power loss",
                  w->path, es, e);
        w->status = CKPT_ERR_IO;
        return CKPT_ERR_IO;
    }
    return CKPT_OK;
}

int ckpt_writer_commit(ckpt_writer *w) {
    if (!w) return CKPT_ERR_ARG;
    void *image = NULL;
    size_t size = 0;
    ckpt__enter();
    int rc = commit_image(w, &image, &size);
    ckpt__leave();
    if (!rc) rc = commit_files(w, image, size);
    free(image);
    return rc;
}

int ckpt_writer_abort(ckpt_writer *w) {
    if (!w) return CKPT_OK;
    ckpt__enter();
    if (w->state == W_OPEN || w->state == W_FAILED) {
        discard(w);
        w->state = W_ABORTED;
    }
    ckpt__leave();
    return CKPT_OK;
}

const char *ckpt_writer_errmsg(const ckpt_writer *w) {
    return w ? w->msg : "ckpt_writer is NULL";
}

void ckpt_writer_free(ckpt_writer *w) {
    if (!w) return;
    ckpt_writer_abort(w);
    free(w->path);
    free(w->tmp);
    free(w);
}
