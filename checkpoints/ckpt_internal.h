/* ckpt_internal.h: library-private helpers shared by the checkpoints/ sources (not for other
 * libraries): the process-wide HDF5 lock, HDF5 error-stack translation, path checks, dtype
 * mapping, the format check and small file-system helpers. Names carry "ckpt__". */
#ifndef CAOPD_CHECKPOINTS_CKPT_INTERNAL_H
#define CAOPD_CHECKPOINTS_CKPT_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoints/ckpt.h"

/* Longest object path (bytes, NUL included) and longest file path accepted. */
#define CKPT__PATH_CAP 1024

/* Every public function that calls HDF5 brackets its body with these: the process-wide lock
 * (a safety net, see ckpt.h), and, once per thread, H5Eset_auto2(H5E_DEFAULT, NULL, NULL)
 * (the threadsafe libhdf5 builds keep one error stack per thread). */
void ckpt__enter(void);
void ckpt__leave(void);

/* snprintf into msg (CKPT_ERRMSG_CAP bytes). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void ckpt__fmt(char *msg, const char *fmt, ...);

/* Reads and clears the calling thread's HDF5 error stack (or, when it is empty, the cause saved
 * by ckpt__h5_save). Writes into cause a short text: "<strerror> (errno N)" when some frame
 * recorded an OS errno, else HDF5's most specific description. *errno_out (may be NULL) gets
 * that errno or 0; *stored_eof_out (may be NULL) gets, when HDF5 reported a truncated file, the
 * size its header expects (1 if unknown), else 0. Returns CKPT_ERR_IO when an errno was found,
 * else CKPT_ERR_HDF5. */
int ckpt__h5_cause(char *cause, size_t cap, int *errno_out, long long *stored_eof_out);

/* Saves the current error stack's cause for the next ckpt__h5_cause of this thread, then
 * clears the stack. Call right after a failed HDF5 call that is followed by clean-up calls
 * (every HDF5 API call clears the stack on entry). Only the first save counts. */
void ckpt__h5_save(void);

/* strerror into buf (thread-safe). */
void ckpt__strerror(int errnum, char *buf, size_t cap);

/* What to do about an OS error, as a clause starting with "; " ("" when nothing useful). */
const char *ckpt__errno_advice(int errnum);

/* Checks an object path and writes its relative form (no leading '/', "" for the root) into
 * rel[CKPT__PATH_CAP]. allow_root: whether ""/"/" is acceptable. Returns CKPT_OK or
 * CKPT_ERR_ARG with a message in msg naming `what` (e.g. "dataset path"). */
int ckpt__rel_path(const char *path, int allow_root, char *rel, const char *what, char *msg);

/* HDF5 types of a dtype: file (little-endian) and memory (native). -1 for OTHER. */
hid_t ckpt__file_type(ckpt_dtype dtype);
/* A new variable-length UTF-8 string type (CKPT_DTYPE_STR, file and memory alike); the caller
 * closes it. -1 on failure. */
hid_t ckpt__str_type(void);
hid_t ckpt__mem_type(ckpt_dtype dtype);

/* The dtype of a stored HDF5 type (CKPT_DTYPE_OTHER when not one of ours). */
ckpt_dtype ckpt__dtype_of(hid_t type);

/* Checks rank/dims/dtype/data for a dataset write and computes nelems and nbytes. Returns
 * CKPT_OK or CKPT_ERR_ARG with a message naming file and dpath. */
int ckpt__check_array(const char *file, const char *dpath, ckpt_dtype dtype, int rank,
                      const int64_t *dims, const void *data, size_t *nelems, size_t *nbytes,
                      char *msg);

/* Scalar attribute `name` of the open object obj. _str: string (fixed or variable length),
 * malloc'd into *out. _num: any integer class into an int64_t (want_float 0) or any float class
 * into a double (want_float 1). Returns CKPT_OK, CKPT_ERR_NOTFOUND, CKPT_ERR_DTYPE (other
 * class, or not a single element), CKPT_ERR_NOMEM or CKPT_ERR_HDF5 (the error stack is left
 * for ckpt__h5_cause). */
int ckpt__attr_read_str(hid_t obj, const char *name, char **out);
int ckpt__attr_read_num(hid_t obj, const char *name, int want_float, void *out);

/* Opens <path> read-only and checks format/version as ckpt_reader_open documents. On success
 * *fid is open, *format_out is malloc'd (caller frees) and *version_out set. On failure
 * nothing is open and msg holds the message. Call with the lock held. */
int ckpt__open_checked(const char *path, const char *format, int max_version, hid_t *fid,
                       char **format_out, int *version_out, char *msg);

/* Opens the object at rel (relative to fid's root, "" = root group) into *oid (close with
 * H5Oclose). CKPT_ERR_NOTFOUND when a component is missing (msg says which), CKPT_ERR_HDF5
 * when the object cannot be opened. file names the file in messages. */
int ckpt__open_obj(hid_t fid, const char *rel, const char *file, hid_t *oid, char *msg);

/* Kind of an open object. */
ckpt_kind ckpt__kind_of(hid_t oid);

/* Loads a whole file into *buf (malloc'd, *size bytes) and its permission bits into *mode.
 * Returns CKPT_OK, CKPT_ERR_IO or CKPT_ERR_NOMEM with a message naming path. */
int ckpt__read_file(const char *path, void **buf, size_t *size, unsigned *mode, char *msg);

/* Writes buf[0..size) to tmp (a stale tmp is removed first; created exclusively with mode less
 * the umask) and fsyncs it. On failure tmp is removed and msg says which step failed, naming
 * `shown` (the final path) as unchanged. Returns CKPT_OK or CKPT_ERR_IO. */
int ckpt__write_file(const char *tmp, const void *buf, size_t size, unsigned mode,
                     const char *shown, char *msg);

/* Checks, at open, that the directory of path exists and is writable, so a bad path fails
 * before any work is done. CKPT_OK or CKPT_ERR_IO with a message. */
int ckpt__check_dir_writable(const char *path, char *msg);

/* fsyncs the directory holding path. Returns 0 or the errno (EINVAL, from file systems that
 * cannot sync a directory, counts as success). */
int ckpt__fsync_dir_of(const char *path);

/* The sticky status of a snapshot's building (CKPT_OK when every add succeeded). */
int ckpt__snapshot_status(const ckpt_snapshot *s);

/* strdup through malloc (NULL on failure). */
char *ckpt__strdup(const char *s);

#endif
