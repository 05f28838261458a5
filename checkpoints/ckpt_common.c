/* ckpt_common.c: what the checkpoints/ sources share: status and dtype names, the process-wide
 * HDF5 lock, translation of HDF5's error stack into one readable cause, path checks, the
 * format/version check done on every open, and the file-system helpers of the atomic commit. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints/ckpt_internal.h"

/* ---- names -------------------------------------------------------------------------------- */

const char *ckpt_status_str(int status) {
    switch (status) {
    case CKPT_OK:
        return "CKPT_OK";
    case CKPT_ERR_ARG:
        return "CKPT_ERR_ARG";
    case CKPT_ERR_NOMEM:
        return "CKPT_ERR_NOMEM";
    case CKPT_ERR_IO:
        return "CKPT_ERR_IO";
    case CKPT_ERR_HDF5:
        return "CKPT_ERR_HDF5";
    case CKPT_ERR_NOTFOUND:
        return "CKPT_ERR_NOTFOUND";
    case CKPT_ERR_FORMAT:
        return "CKPT_ERR_FORMAT";
    case CKPT_ERR_VERSION:
        return "CKPT_ERR_VERSION";
    case CKPT_ERR_DTYPE:
        return "CKPT_ERR_DTYPE";
    case CKPT_ERR_SHAPE:
        return "CKPT_ERR_SHAPE";
    case CKPT_ERR_EXISTS:
        return "CKPT_ERR_EXISTS";
    case CKPT_ERR_STATE:
        return "CKPT_ERR_STATE";
    default:
        return "?";
    }
}

const char *ckpt_dtype_name(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_DTYPE_F32:
        return "float32";
    case CKPT_DTYPE_F64:
        return "float64";
    case CKPT_DTYPE_I64:
        return "int64";
    case CKPT_DTYPE_U8:
        return "uint8";
    case CKPT_DTYPE_STR:
        return "string";
    default:
        return "other";
    }
}

size_t ckpt_dtype_size(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_DTYPE_F32:
        return 4;
    case CKPT_DTYPE_F64:
        return 8;
    case CKPT_DTYPE_I64:
        return 8;
    case CKPT_DTYPE_U8:
    case CKPT_DTYPE_STR:
        return 1;
    default:
        return 0;
    }
}

ckpt_write_opts ckpt_write_opts_default(void) {
    ckpt_write_opts o;
    o.compress_min_bytes = 65536;
    o.deflate_level = 4;
    return o;
}

char *ckpt__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- the lock ------------------------------------------------------------------------------ */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int t_quiet = 0;

static _Thread_local int t_have_saved;

void ckpt__enter(void) {
    pthread_mutex_lock(&g_lock);
    t_have_saved = 0;
    if (!t_quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        t_quiet = 1;
    }
}

void ckpt__leave(void) {
    pthread_mutex_unlock(&g_lock);
}

static char g_version[32];
static pthread_once_t g_version_once = PTHREAD_ONCE_INIT;

static void init_version(void) {
    unsigned maj = 0, min = 0, rel = 0;
    ckpt__enter();
    if (H5get_libversion(&maj, &min, &rel) >= 0)
        snprintf(g_version, sizeof g_version, "%u.%u.%u", maj, min, rel);
    ckpt__leave();
}

const char *ckpt_hdf5_version(void) {
    pthread_once(&g_version_once, init_version);
    return g_version[0] ? g_version : "?";
}

void ckpt__fmt(char *msg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, CKPT_ERRMSG_CAP, fmt, ap);
    va_end(ap);
}

/* ---- errors -------------------------------------------------------------------------------- */

void ckpt__strerror(int errnum, char *buf, size_t cap) {
    if (strerror_r(errnum, buf, cap) != 0) snprintf(buf, cap, "error %d", errnum);
}

const char *ckpt__errno_advice(int errnum) {
    switch (errnum) {
    case ENOSPC:
    case EFBIG:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return "; free disk space (or raise the quota / file-size limit) and retry";
    case EACCES:
    case EPERM:
        return "; check the permissions of the file and its directory";
    case EROFS:
        return "; the file system is read-only: write somewhere else";
    case ENOENT:
        return "; check that the directory exists";
    case EIO:
        return "; the storage device reported an I/O error: check it";
    default:
        return "";
    }
}

typedef struct {
    int errnum;
    long long stored_eof; /* from HDF5's "truncated file" report, else 0 */
    int have_inner;
    char inner[256];
} h5_walk;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    h5_walk *w = data;
    const char *desc = e->desc ? e->desc : "";
    if (n == 0 || !w->have_inner) {
        /* Walking upward, frame 0 is the most specific one. */
        char minor[128] = "";
        H5Eget_msg(e->min_num, NULL, minor, sizeof minor);
        if (desc[0] && minor[0])
            snprintf(w->inner, sizeof w->inner, "%s (%s)", desc, minor);
        else
            snprintf(w->inner, sizeof w->inner, "%s", desc[0] ? desc : minor);
        w->have_inner = w->inner[0] != 0;
    }
    const char *p = strstr(desc, "errno = ");
    if (p && !w->errnum) {
        int v = atoi(p + 8);
        if (v > 0) w->errnum = v;
    }
    if (strstr(desc, "truncated file")) {
        const char *q = strstr(desc, "stored_eof = ");
        long long v = q ? atoll(q + 13) : 0;
        w->stored_eof = v > 0 ? v : 1;
    }
    return 0;
}

/* The cause saved by ckpt__h5_save, for failures followed by clean-up calls (every HDF5 API
 * call clears the error stack on entry). Per thread; reset by ckpt__enter. */
static _Thread_local h5_walk t_saved;

void ckpt__h5_save(void) {
    if (!t_have_saved) {
        memset(&t_saved, 0, sizeof t_saved);
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &t_saved);
        t_have_saved = t_saved.have_inner || t_saved.errnum;
    }
    H5Eclear2(H5E_DEFAULT);
}

int ckpt__h5_cause(char *cause, size_t cap, int *errno_out, long long *stored_eof_out) {
    h5_walk w;
    memset(&w, 0, sizeof w);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (!w.have_inner && !w.errnum && t_have_saved) w = t_saved;
    t_have_saved = 0;
    if (errno_out) *errno_out = w.errnum;
    if (stored_eof_out) *stored_eof_out = w.stored_eof;
    if (w.errnum) {
        char s[128];
        ckpt__strerror(w.errnum, s, sizeof s);
        snprintf(cause, cap, "%s (errno %d)", s, w.errnum);
        return CKPT_ERR_IO;
    }
    snprintf(cause, cap, "HDF5: %s", w.have_inner ? w.inner : "unknown error");
    return CKPT_ERR_HDF5;
}

/* ---- paths ----------------------------------------------------------------------------------- */

int ckpt__rel_path(const char *path, int allow_root, char *rel, const char *what, char *msg) {
    if (!path) {
        ckpt__fmt(msg, "%s is NULL", what);
        return CKPT_ERR_ARG;
    }
    const char *p = path[0] == '/' ? path + 1 : path;
    size_t n = strlen(p);
    if (n >= CKPT__PATH_CAP) {
        ckpt__fmt(msg, "%s '%.64s...' is too long (%zu bytes, at most %d)", what, path, n,
                  CKPT__PATH_CAP - 1);
        return CKPT_ERR_ARG;
    }
    if (n == 0) {
        if (!allow_root) {
            ckpt__fmt(msg, "%s '%s' names the root group; give a name such as \"stages/1/x\"", what,
                      path);
            return CKPT_ERR_ARG;
        }
        rel[0] = 0;
        return CKPT_OK;
    }
    /* Every component non-empty, and neither "." nor "..". */
    const char *c = p;
    while (1) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) {
            ckpt__fmt(msg,
                      "%s '%s' has an empty, \".\" or \"..\" component; use names "
                      "separated by single '/'",
                      what, path);
            return CKPT_ERR_ARG;
        }
        if (!e) break;
        c = e + 1;
    }
    memcpy(rel, p, n + 1);
    return CKPT_OK;
}

/* ---- dtypes ---------------------------------------------------------------------------------- */

hid_t ckpt__file_type(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_DTYPE_F32:
        return H5T_IEEE_F32LE;
    case CKPT_DTYPE_F64:
        return H5T_IEEE_F64LE;
    case CKPT_DTYPE_I64:
        return H5T_STD_I64LE;
    case CKPT_DTYPE_U8:
        return H5T_STD_U8LE;
    default:
        return -1;
    }
}

hid_t ckpt__mem_type(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_DTYPE_F32:
        return H5T_NATIVE_FLOAT;
    case CKPT_DTYPE_F64:
        return H5T_NATIVE_DOUBLE;
    case CKPT_DTYPE_I64:
        return H5T_NATIVE_INT64;
    case CKPT_DTYPE_U8:
        return H5T_NATIVE_UINT8;
    default:
        return -1;
    }
}

ckpt_dtype ckpt__dtype_of(hid_t type) {
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT) {
        /* Only IEEE layouts of the two sizes (not, e.g., a custom 4-byte float). */
        if (size == 4 && H5Tequal(type, H5T_IEEE_F32LE) > 0) return CKPT_DTYPE_F32;
        if (size == 4 && H5Tequal(type, H5T_IEEE_F32BE) > 0) return CKPT_DTYPE_F32;
        if (size == 8 && H5Tequal(type, H5T_IEEE_F64LE) > 0) return CKPT_DTYPE_F64;
        if (size == 8 && H5Tequal(type, H5T_IEEE_F64BE) > 0) return CKPT_DTYPE_F64;
        return CKPT_DTYPE_OTHER;
    }
    if (cls == H5T_STRING && H5Tis_variable_str(type) > 0) return CKPT_DTYPE_STR;
    if (cls == H5T_INTEGER) {
        H5T_sign_t sign = H5Tget_sign(type);
        if (size == 8 && sign == H5T_SGN_2) return CKPT_DTYPE_I64;
        if (size == 1 && sign == H5T_SGN_NONE) return CKPT_DTYPE_U8;
    }
    return CKPT_DTYPE_OTHER;
}

int ckpt__check_array(const char *file, const char *dpath, ckpt_dtype dtype, int rank,
                      const int64_t *dims, const void *data, size_t *nelems, size_t *nbytes,
                      char *msg) {
    size_t esize = ckpt_dtype_size(dtype);
    if (esize == 0) {
        ckpt__fmt(msg,
                  "%s: dataset '%s': dtype %d is not one of float32, float64, int64, "
                  "uint8, string",
                  file, dpath, (int)dtype);
        return CKPT_ERR_ARG;
    }
    if (rank < 0 || rank > CKPT_MAX_RANK) {
        ckpt__fmt(msg, "%s: dataset '%s': rank %d is outside 0..%d", file, dpath, rank,
                  CKPT_MAX_RANK);
        return CKPT_ERR_ARG;
    }
    if (rank > 0 && !dims) {
        ckpt__fmt(msg, "%s: dataset '%s': dims is NULL for rank %d", file, dpath, rank);
        return CKPT_ERR_ARG;
    }
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) {
            ckpt__fmt(msg, "%s: dataset '%s': dims[%d] = %lld is negative", file, dpath, i,
                      (long long)dims[i]);
            return CKPT_ERR_ARG;
        }
        uint64_t d = (uint64_t)dims[i];
        if (d != 0 && n > SIZE_MAX / esize / d) {
            ckpt__fmt(msg, "%s: dataset '%s': the shape overflows the address space", file, dpath);
            return CKPT_ERR_ARG;
        }
        n *= (size_t)d;
    }
    if (n > 0 && !data) {
        ckpt__fmt(msg, "%s: dataset '%s': data is NULL for %zu elements", file, dpath, n);
        return CKPT_ERR_ARG;
    }
    *nelems = n;
    *nbytes = n * esize;
    if (dtype == CKPT_DTYPE_STR) { /* the packed texts: n NUL-terminated strings */
        const char *p = data;
        for (size_t i = 0; i < n; i++)
            p += strlen(p) + 1;
        *nbytes = n ? (size_t)(p - (const char *)data) : 0;
    }
    return CKPT_OK;
}

hid_t ckpt__str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* ---- attributes --------------------------------------------------------------------------- */

/* Opens attribute `name` of obj into *aid after checking that it exists and is a scalar. */
static int open_scalar_attr(hid_t obj, const char *name, hid_t *aid) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return CKPT_ERR_HDF5;
    if (ex == 0) return CKPT_ERR_NOTFOUND;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return CKPT_ERR_HDF5;
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (np != 1) {
        H5Aclose(a);
        return CKPT_ERR_DTYPE;
    }
    *aid = a;
    return CKPT_OK;
}

int ckpt__attr_read_str(hid_t obj, const char *name, char **out) {
    hid_t a;
    int rc = open_scalar_attr(obj, name, &a);
    if (rc) return rc;
    hid_t ft = H5Aget_type(a);
    if (ft < 0) {
        H5Aclose(a);
        return CKPT_ERR_HDF5;
    }
    char *res = NULL;
    rc = CKPT_OK;
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = CKPT_ERR_DTYPE;
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *s = NULL;
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0 ||
            H5Aread(a, mt, &s) < 0) {
            ckpt__h5_save();
            rc = CKPT_ERR_HDF5;
        } else {
            res = ckpt__strdup(s ? s : "");
            if (!res) rc = CKPT_ERR_NOMEM;
            if (s) H5free_memory(s);
        }
        if (mt >= 0) H5Tclose(mt);
    } else {
        size_t size = H5Tget_size(ft);
        res = malloc(size + 1);
        if (!res) {
            rc = CKPT_ERR_NOMEM;
        } else if (H5Aread(a, ft, res) < 0) {
            ckpt__h5_save();
            rc = CKPT_ERR_HDF5;
        } else {
            res[size] = 0;
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    if (rc) {
        free(res);
        return rc;
    }
    *out = res;
    return CKPT_OK;
}

int ckpt__attr_read_num(hid_t obj, const char *name, int want_float, void *out) {
    hid_t a;
    int rc = open_scalar_attr(obj, name, &a);
    if (rc) return rc;
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (ft >= 0) H5Tclose(ft);
    if (cls != (want_float ? H5T_FLOAT : H5T_INTEGER)) {
        H5Aclose(a);
        return ft < 0 ? CKPT_ERR_HDF5 : CKPT_ERR_DTYPE;
    }
    herr_t e = H5Aread(a, want_float ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64, out);
    if (e < 0) ckpt__h5_save();
    H5Aclose(a);
    return e < 0 ? CKPT_ERR_HDF5 : CKPT_OK;
}

/* ---- open + format check -------------------------------------------------------------------- */

static const unsigned char k_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

int ckpt__open_checked(const char *path, const char *format, int max_version, hid_t *fid,
                       char **format_out, int *version_out, char *msg) {
    char es[128];
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT) {
            ckpt__fmt(msg,
                      "%s: no such file; check the path (a run writes it after its first "
                      "completed step)",
                      path);
            return CKPT_ERR_NOTFOUND;
        }
        ckpt__strerror(e, es, sizeof es);
        ckpt__fmt(msg, "%s: cannot access the file: %s%s", path, es, ckpt__errno_advice(e));
        return CKPT_ERR_IO;
    }
    if (S_ISDIR(st.st_mode)) {
        ckpt__fmt(msg, "%s: is a directory, not an HDF5 file; pass the .h5 file inside it", path);
        return CKPT_ERR_FORMAT;
    }
    if (st.st_size == 0) {
        ckpt__fmt(msg,
                  "%s: is empty (0 bytes), not a complete HDF5 file; it was never fully "
                  "written: use an intact copy or rerun",
                  path);
        return CKPT_ERR_FORMAT;
    }
    unsigned char head[8] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        int e = errno;
        ckpt__strerror(e, es, sizeof es);
        ckpt__fmt(msg, "%s: cannot open: %s%s", path, es, ckpt__errno_advice(e));
        return CKPT_ERR_IO;
    }
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    int sig_at_0 = got == 8 && memcmp(head, k_sig, 8) == 0;
    if (got > 0 && got < 8 && memcmp(head, k_sig, (size_t)got) == 0) {
        ckpt__fmt(msg,
                  "%s: is truncated (%lld bytes, shorter than an HDF5 header); it was cut "
                  "short: use an intact copy or rerun",
                  path, (long long)st.st_size);
        return CKPT_ERR_FORMAT;
    }
    htri_t is = H5Fis_hdf5(path);
    H5Eclear2(H5E_DEFAULT);
    /* A file starting with the signature that HDF5 rejects is a damaged or cut HDF5 file: let
     * H5Fopen below say what it can. */
    if (is <= 0 && !sig_at_0) {
        ckpt__fmt(msg,
                  "%s: is not an HDF5 file (no HDF5 signature); expected a%s%s%s file "
                  "written by caopd",
                  path, format ? " '" : " caopd", format ? format : "", format ? "'" : "");
        return CKPT_ERR_FORMAT;
    }

    /* Readers take HDF5's shared file lock, skipped on file systems without locks. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0
#if H5_VERSION_GE(1, 10, 7)
        || H5Pset_file_locking(fapl, 1, 1) < 0
#endif
    ) {
        if (fapl >= 0) H5Pclose(fapl);
        char cause[300];
        int rc = ckpt__h5_cause(cause, sizeof cause, NULL, NULL);
        ckpt__fmt(msg, "%s: cannot set up file access: %s", path, cause);
        return rc;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) ckpt__h5_save();
    H5Pclose(fapl);
    if (f < 0) {
        char cause[300];
        int errnum = 0;
        long long stored_eof = 0;
        int rc = ckpt__h5_cause(cause, sizeof cause, &errnum, &stored_eof);
        if (stored_eof > 1) {
            ckpt__fmt(msg,
                      "%s: is truncated (%lld bytes on disk, its header says %lld); it was "
                      "cut short (an interrupted copy, or a crash while written without the "
                      ".tmp+rename protocol): use an intact copy or rerun",
                      path, (long long)st.st_size, stored_eof);
            return CKPT_ERR_FORMAT;
        }
        if (stored_eof || (sig_at_0 && !errnum)) {
            ckpt__fmt(msg,
                      "%s: is truncated or damaged (%lld bytes; %s); it was cut short (an "
                      "interrupted copy, or a crash while written without the .tmp+rename "
                      "protocol): use an intact copy or rerun",
                      path, (long long)st.st_size, cause);
            return CKPT_ERR_FORMAT;
        }
        if (errnum) {
            ckpt__fmt(msg, "%s: cannot be opened: %s%s", path, cause, ckpt__errno_advice(errnum));
            return CKPT_ERR_IO;
        }
        ckpt__fmt(msg, "%s: HDF5 cannot open it (%s); the file is damaged or not an HDF5 file",
                  path, cause);
        return rc == CKPT_ERR_IO ? CKPT_ERR_IO : CKPT_ERR_FORMAT;
    }

    const char *want = format ? format : "a caopd format";
    char *fmt = NULL;
    int rc = ckpt__attr_read_str(f, CKPT_ATTR_FORMAT, &fmt);
    if (rc == CKPT_ERR_NOTFOUND || rc == CKPT_ERR_DTYPE) {
        ckpt__fmt(msg,
                  "%s: is an HDF5 file but not a caopd file: %s string attribute '" CKPT_ATTR_FORMAT
                  "' at the root (expected %s%s%s); pass a file written by "
                  "caopd",
                  path, rc == CKPT_ERR_NOTFOUND ? "it has no" : "it has no scalar",
                  format ? "'" : "", want, format ? "'" : "");
        H5Eclear2(H5E_DEFAULT);
        H5Fclose(f);
        return CKPT_ERR_FORMAT;
    }
    if (rc) {
        char cause[300];
        if (rc != CKPT_ERR_NOMEM)
            rc = ckpt__h5_cause(cause, sizeof cause, NULL, NULL);
        else
            snprintf(cause, sizeof cause, "out of memory");
        ckpt__fmt(msg, "%s: cannot read the root attribute '" CKPT_ATTR_FORMAT "': %s", path,
                  cause);
        H5Fclose(f);
        return rc;
    }
    if (format && strcmp(fmt, format) != 0) {
        ckpt__fmt(msg, "%s: is a '%s' file, not '%s'; pass the %s file", path, fmt, format, format);
        free(fmt);
        H5Fclose(f);
        return CKPT_ERR_FORMAT;
    }
    int64_t v = 0;
    rc = ckpt__attr_read_num(f, CKPT_ATTR_FORMAT_VERSION, 0, &v);
    if (rc) {
        H5Eclear2(H5E_DEFAULT);
        ckpt__fmt(msg,
                  "%s: has format '%s' but no integer '" CKPT_ATTR_FORMAT_VERSION
                  "' attribute; the file is damaged or was not written by caopd",
                  path, fmt);
        free(fmt);
        H5Fclose(f);
        return CKPT_ERR_FORMAT;
    }
    if (v < 1) {
        ckpt__fmt(msg,
                  "%s: format_version %lld is invalid (versions start at 1); the file is "
                  "damaged or was not written by caopd",
                  path, (long long)v);
        free(fmt);
        H5Fclose(f);
        return CKPT_ERR_FORMAT;
    }
    if (v > max_version) {
        ckpt__fmt(msg,
                  "%s: format_version %lld is newer than this build reads (%d); use a "
                  "newer caopd",
                  path, (long long)v, max_version);
        free(fmt);
        H5Fclose(f);
        return CKPT_ERR_VERSION;
    }
    *fid = f;
    *format_out = fmt;
    *version_out = (int)v;
    return CKPT_OK;
}

/* ---- objects --------------------------------------------------------------------------------- */

int ckpt__open_obj(hid_t fid, const char *rel, const char *file, hid_t *oid, char *msg) {
    if (rel[0] == 0) {
        hid_t o = H5Oopen(fid, "/", H5P_DEFAULT);
        if (o < 0) {
            char cause[300];
            int rc = ckpt__h5_cause(cause, sizeof cause, NULL, NULL);
            ckpt__fmt(msg, "%s: cannot open the root group: %s", file, cause);
            return rc;
        }
        *oid = o;
        return CKPT_OK;
    }
    char buf[CKPT__PATH_CAP];
    size_t n = strlen(rel);
    memcpy(buf, rel, n + 1);
    /* Check each prefix, so a missing component is NOTFOUND and not an HDF5 error. */
    for (size_t i = 0; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char save = buf[i];
        buf[i] = 0;
        htri_t ex = H5Lexists(fid, buf, H5P_DEFAULT);
        if (ex <= 0) {
            H5Eclear2(H5E_DEFAULT);
            if (save)
                ckpt__fmt(msg, "%s: no object '%s' ('%s' does not exist)", file, rel, buf);
            else
                ckpt__fmt(msg, "%s: no object '%s'", file, rel);
            return CKPT_ERR_NOTFOUND;
        }
        buf[i] = save;
    }
    hid_t o = H5Oopen(fid, rel, H5P_DEFAULT);
    if (o < 0) {
        char cause[300];
        ckpt__h5_cause(cause, sizeof cause, NULL, NULL);
        ckpt__fmt(msg, "%s: '%s' cannot be opened (a dangling or external link?): %s", file, rel,
                  cause);
        return CKPT_ERR_HDF5;
    }
    *oid = o;
    return CKPT_OK;
}

ckpt_kind ckpt__kind_of(hid_t oid) {
    switch (H5Iget_type(oid)) {
    case H5I_GROUP:
        return CKPT_KIND_GROUP;
    case H5I_DATASET:
        return CKPT_KIND_DATASET;
    default:
        return CKPT_KIND_OTHER;
    }
}

/* ---- files ----------------------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ckpt__read_file(const char *path, void **buf, size_t *size, unsigned *mode, char *msg) {
    char es[128];
    int fd = open(path, O_RDONLY);
    struct stat st;
    int e = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        e = errno;
        if (fd >= 0) close(fd);
        ckpt__strerror(e, es, sizeof es);
        ckpt__fmt(msg, "%s: cannot open it to append: %s%s", path, es, ckpt__errno_advice(e));
        return CKPT_ERR_IO;
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n > 0 ? n : 1);
    if (!b) {
        close(fd);
        ckpt__fmt(msg, "%s: out of memory loading it (%zu bytes) to append", path, n);
        return CKPT_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            e = r < 0 ? errno : EIO;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (e) {
        free(b);
        ckpt__strerror(e, es, sizeof es);
        ckpt__fmt(msg, "%s: reading it to append failed: %s (errno %d)%s", path, es, e,
                  ckpt__errno_advice(e));
        return CKPT_ERR_IO;
    }
    *buf = b;
    *size = n;
    *mode = (unsigned)(st.st_mode & 0777);
    return CKPT_OK;
}

int ckpt__write_file(const char *tmp, const void *buf, size_t size, unsigned mode,
                     const char *shown, char *msg) {
    char es[128];
    const char *step = "creating";
    int e = 0;
    if (unlink(tmp) != 0 && errno != ENOENT) {
        e = errno;
        step = "removing the stale";
    }
    int fd = -1;
    if (!e) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, (mode_t)mode);
        if (fd < 0) e = errno;
    }
    if (!e) {
        step = "writing";
        e = write_all(fd, buf, size);
    }
    if (!e) {
        step = "syncing";
        if (fsync(fd) != 0) e = errno;
    }
    if (fd >= 0 && close(fd) != 0 && !e) {
        e = errno;
        step = "closing";
    }
    if (!e) return CKPT_OK;
    if (fd >= 0) unlink(tmp);
    ckpt__strerror(e, es, sizeof es);
    ckpt__fmt(msg, "%s: %s %s failed: %s (errno %d)%s; %s itself is unchanged", shown, step, tmp,
              es, e, ckpt__errno_advice(e), shown);
    return CKPT_ERR_IO;
}

/* dir[CKPT__PATH_CAP] = the directory part of path ("." when none). 0 or ENAMETOOLONG. */
static int dir_of(const char *path, char *dir) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, CKPT__PATH_CAP, ".");
    } else if (slash == path) {
        snprintf(dir, CKPT__PATH_CAP, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= CKPT__PATH_CAP) return ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    return 0;
}

int ckpt__check_dir_writable(const char *path, char *msg) {
    char dir[CKPT__PATH_CAP], es[128];
    int e = dir_of(path, dir);
    if (!e && access(dir, W_OK | X_OK) != 0) e = errno;
    if (!e) return CKPT_OK;
    ckpt__strerror(e, es, sizeof es);
    ckpt__fmt(msg, "%s: cannot write in the directory '%s': %s%s", path, dir, es,
              ckpt__errno_advice(e));
    return CKPT_ERR_IO;
}

int ckpt__fsync_dir_of(const char *path) {
    char dir[CKPT__PATH_CAP];
    int e = dir_of(path, dir);
    if (e) return e;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    /* Some file systems cannot sync a directory; the rename itself is still atomic there. */
    if (e == EINVAL) e = 0;
    return e;
}
