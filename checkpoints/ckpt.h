/* ckpt.h: the HDF5 container of caopd-harness (checkpoints and results files), pure C11 over
 * HDF5's C API, no torch: callers pass plain buffers. Atomic writes (<path>.tmp + fsync +
 * rename), format name/version checks, and one I/O thread for asynchronous snapshots.
 * File conventions (attribute names, dtypes, chunking, the atomic protocol): docs/hdf5.md. */
#ifndef CAOPD_CHECKPOINTS_CKPT_H
#define CAOPD_CHECKPOINTS_CKPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions for the whole header
 * - Status: every function returning int returns CKPT_OK (0) or a negative ckpt_status. The
 *   readable message (naming the file, the object path and what to do) is kept on the object
 *   (ckpt_writer_errmsg, ckpt_reader_errmsg, ckpt_snapshot_errmsg, ckpt_io_errmsg) or, for the
 *   functions that create an object, in a ckpt_error out-parameter. Nothing prints or exits;
 *   HDF5's own error printing is switched off for every thread that calls in here.
 * - Paths: objects are addressed by '/'-separated paths relative to the file's root, e.g.
 *   "stages/2/domains/add/test/confidence"; a leading '/' is accepted, "" and "/" name the
 *   root group. Empty components ("a//b"), "." and ".." are rejected (CKPT_ERR_ARG).
 * - Ownership: `const` buffers and strings are borrowed for the call only. Functions returning
 *   malloc'd memory say so; free it with free() or the stated *_free.
 * - Threads: the stock libhdf5 is not thread-safe, so the design routes every HDF5 call through
 *   one thread. Use the synchronous API (writer, reader, ckpt_snapshot_write) from ONE thread at
 *   a time, and never while a ckpt_io queue has jobs in flight: during training, submit work to
 *   the ckpt_io queue instead, and call ckpt_io_drain before any synchronous use. (As a safety
 *   net every entry point also takes one process-wide lock, so a stray concurrent call blocks
 *   instead of corrupting HDF5's state; do not rely on it.) One object (writer, reader,
 *   snapshot) must never be used from two threads at once. Do not fork() while another thread
 *   is inside a ckpt_ call (the child would inherit the lock held). */

/* ---- status ---------------------------------------------------------------------------- */

typedef enum ckpt_status {
    CKPT_OK = 0,
    CKPT_ERR_ARG = -1,      /* invalid argument: NULL, bad path, rank, dims, reserved name */
    CKPT_ERR_NOMEM = -2,    /* an allocation failed */
    CKPT_ERR_IO = -3,       /* the OS refused: open, write (disk full, EFBIG), fsync, rename */
    CKPT_ERR_HDF5 = -4,     /* the HDF5 library failed for a reason other than the OS */
    CKPT_ERR_NOTFOUND = -5, /* no such file, group, dataset or attribute */
    CKPT_ERR_FORMAT = -6,   /* not HDF5, truncated/damaged, or not the expected format name */
    CKPT_ERR_VERSION = -7,  /* format_version newer than this build reads (or not appendable) */
    CKPT_ERR_DTYPE = -8,    /* stored type differs from the one asked for */
    CKPT_ERR_SHAPE = -9,    /* the caller's element count differs from the dataset's */
    CKPT_ERR_EXISTS = -10,  /* a group is in the way of a dataset (or the reverse) */
    CKPT_ERR_STATE = -11,   /* writer already committed/aborted, or the I/O queue is closing */
} ckpt_status;

/* Static name of a status, e.g. "CKPT_ERR_IO"; "?" for an unknown value. */
const char *ckpt_status_str(int status);

/* Message capacity of ckpt_error and of every object's message buffer (bytes, NUL included).
 * Longer messages are truncated. */
#define CKPT_ERRMSG_CAP 1024

/* The error of a function that creates an object (there is no object to hold it yet).
 * On success status is CKPT_OK and msg is "". Plain value, caller-allocated. */
typedef struct ckpt_error {
    int status;                /* a ckpt_status */
    char msg[CKPT_ERRMSG_CAP]; /* e.g. "run/results.h5: format_version 3 is newer than ..." */
} ckpt_error;

/* ---- dtypes, shapes --------------------------------------------------------------------- */

/* Element types. Stored little-endian: float32 = H5T_IEEE_F32LE, float64 = H5T_IEEE_F64LE,
 * int64 = H5T_STD_I64LE, uint8 = H5T_STD_U8LE (h5py: float32, float64, int64, uint8).
 * string: variable-length UTF-8 strings (h5py: object dtype of bytes; .asstr() gives str). In
 * memory a string dataset's data is its elements' texts packed one after the other, each ending
 * with its NUL ("12+3=\0" "15\0" ...), so it is one buffer like the others; read it with
 * ckpt_reader_read_str. A text may not contain a NUL. */
typedef enum ckpt_dtype {
    CKPT_DTYPE_F32 = 0,
    CKPT_DTYPE_F64 = 1,
    CKPT_DTYPE_I64 = 2,
    CKPT_DTYPE_U8 = 3,
    CKPT_DTYPE_OTHER = 4, /* reading only: a stored type this API does not read */
    CKPT_DTYPE_STR = 5,   /* variable-length UTF-8 strings, packed in memory (above) */
} ckpt_dtype;

/* Static name ("float32", "float64", "int64", "uint8", "string", "other") and element size in
 * bytes (0 for CKPT_DTYPE_OTHER and unknown values; 1 for CKPT_DTYPE_STR, a byte of the packed
 * texts, whose size is their total length). */
const char *ckpt_dtype_name(ckpt_dtype dtype);
size_t ckpt_dtype_size(ckpt_dtype dtype);

/* Largest rank written or read. Rank 0 is a scalar dataset (one element). */
#define CKPT_MAX_RANK 8

/* ---- format names ------------------------------------------------------------------------ */

/* Root attribute names every file carries (reserved: ckpt_writer_set_attr_* refuses them at
 * the root) and the format names of caopd-harness. The layouts inside, and their
 * format_version numbers, belong to the scheduler (docs/hdf5.md) and, for the summary of a
 * sweep, to harness/run/sweep.h (docs/sweep.md). */
#define CKPT_ATTR_FORMAT "format"                 /* string */
#define CKPT_ATTR_FORMAT_VERSION "format_version" /* int64 >= 1 */
#define CKPT_FORMAT_CHECKPOINT "caopd-checkpoint"
#define CKPT_FORMAT_RESULTS "caopd-results"
#define CKPT_FORMAT_SWEEP_SUMMARY "caopd-sweep-summary"

/* The HDF5 library version this build runs against, e.g. "1.10.8" (static string), for the
 * "versions" attributes of a file. */
const char *ckpt_hdf5_version(void);

/* ---- writing ------------------------------------------------------------------------------ */

/* Layout choices for the datasets a writer creates. Plain value; start from the default. */
typedef struct ckpt_write_opts {
    size_t compress_min_bytes; /* datasets of MORE bytes than this are chunked (chunks of at
                                  most ~1 MiB, split along the outer dimensions) and compressed
                                  (shuffle + deflate); smaller ones are contiguous.
                                  Default 65536. */
    int deflate_level;         /* 1..9, default 4; 0 = chunked but not compressed */
} ckpt_write_opts;

/* {compress_min_bytes = 65536, deflate_level = 4}. */
ckpt_write_opts ckpt_write_opts_default(void);

/* A file being written. It is built in memory (HDF5's core driver: HDF5 never writes to disk
 * itself, so a full disk cannot leave it half-closed); ckpt_writer_commit writes the finished
 * image to "<path>.tmp", fsyncs it and renames it over <path>, so <path> changes only by one
 * rename(2) and a crash at any moment leaves the previous complete <path> (or none). Memory:
 * about the file's size while writing, twice that during commit. Errors are sticky: after the first
 * failure every later call returns the same status without doing anything, ckpt_writer_errmsg keeps
 * the FIRST message, and commit aborts. So a batch of writes may be checked once, at commit. One
 * writer per path at a time (two processes writing the same path race on "<path>.tmp"). */
typedef struct ckpt_writer ckpt_writer;

/* Starts a new file for <path> (in memory): checks that <path>'s directory is writable,
 * removes a stale "<path>.tmp" (left by a crash), and writes the root attributes "format" =
 * format and "format_version" = version (>= 1). opts: NULL means ckpt_write_opts_default().
 * On success *out is a writer owned by the caller (release with ckpt_writer_free). On error
 * *out is NULL, nothing is left on disk and err (may be NULL) holds the status and message. */
int ckpt_writer_open(ckpt_writer **out, const char *path, const char *format, int version,
                     const ckpt_write_opts *opts, ckpt_error *err);

/* Opens <path> to add to it (the results file, which grows stage by stage): when <path>
 * exists, it is checked like ckpt_reader_open (same format name, and format_version must equal
 * version: CKPT_ERR_VERSION otherwise) and loaded into memory, where the writer extends it;
 * when it does not exist, this is ckpt_writer_open. <path> is never opened for writing: it
 * stays complete and readable (h5py, h5dump, ckpt_reader, even with a handle held open) all
 * along, readers see the old contents until commit renames the extended file over it. Costs
 * reading and rewriting the whole file once per call (one call per stage). */
int ckpt_writer_open_append(ckpt_writer **out, const char *path, const char *format, int version,
                            const ckpt_write_opts *opts, ckpt_error *err);

/* Writes one array as the dataset `dpath` (groups on the way are created; links keep their
 * creation order). data: nelems = product(dims[0..rank)) elements of dtype, C order, borrowed;
 * may be NULL when nelems is 0. rank 0..CKPT_MAX_RANK (0 = scalar), dims >= 0 (an empty array
 * is a valid dataset). An existing dataset at dpath is replaced (its space is not reclaimed
 * until h5repack); an existing group there is CKPT_ERR_EXISTS. Layout: see ckpt_write_opts. */
int ckpt_writer_write(ckpt_writer *w, const char *dpath, ckpt_dtype dtype, int rank,
                      const int64_t *dims, const void *data);

/* Sets a scalar attribute `name` on the group or dataset at obj_path ("" = root), replacing
 * one of the same name. When nothing exists at obj_path, a group is created there. Strings are
 * stored as variable-length UTF-8 (any length, e.g. a JSON spec). The root's "format" and
 * "format_version" are reserved (CKPT_ERR_ARG). */
int ckpt_writer_set_attr_str(ckpt_writer *w, const char *obj_path, const char *name,
                             const char *value);
int ckpt_writer_set_attr_i64(ckpt_writer *w, const char *obj_path, const char *name, int64_t value);
int ckpt_writer_set_attr_f64(ckpt_writer *w, const char *obj_path, const char *name, double value);

/* Finishes the file: takes its image from HDF5, writes it to "<path>.tmp" (a stale one is
 * removed first), fsyncs it, renames it over <path> and fsyncs the directory (the disk writes
 * run without the process-wide lock). After a failure (this call's or an earlier sticky one)
 * the temporary file is removed, <path> is untouched and the status is returned; a full disk
 * gives CKPT_ERR_IO with "No space left on device" or "File too large" in the message.
 * CKPT_ERR_IO after the rename (only the directory fsync failed) leaves the new file in place.
 * Either way the writer is finished: only ckpt_writer_errmsg and ckpt_writer_free remain
 * valid. */
int ckpt_writer_commit(ckpt_writer *w);

/* Gives up: drops the in-memory file (and any "<path>.tmp"); <path> is untouched. Returns
 * CKPT_OK (also when already finished; a committed file stays). */
int ckpt_writer_abort(ckpt_writer *w);

/* The first error's message ("" if none). Valid until ckpt_writer_free. */
const char *ckpt_writer_errmsg(const ckpt_writer *w);

/* Aborts when not committed, then frees. NULL is a no-op. */
void ckpt_writer_free(ckpt_writer *w);

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct ckpt_reader ckpt_reader;

/* Opens <path> read-only and checks it: exists, is a complete HDF5 file, carries the root
 * attribute "format" equal to `format` (NULL accepts any format name) and an integer
 * "format_version" in 1..max_version. Every failure names the file, says what is wrong and
 * what to do, e.g. "results.h5: format_version 3 is newer than this build reads (1); use a
 * newer caopd". Statuses: CKPT_ERR_NOTFOUND (no file), CKPT_ERR_FORMAT (empty, truncated, not
 * HDF5, no or another format name), CKPT_ERR_VERSION (newer version), CKPT_ERR_IO. On success
 * *out is owned by the caller (ckpt_reader_free); on error *out is NULL and err (may be NULL)
 * holds the status and message. A reader sees the file as it was when opened, even if a writer
 * commits a new version of <path> meanwhile. */
int ckpt_reader_open(ckpt_reader **out, const char *path, const char *format, int max_version,
                     ckpt_error *err);

/* Closes the file and frees. NULL is a no-op. */
void ckpt_reader_free(ckpt_reader *r);

/* The last failed call's message ("" if none). Valid until the next call on r. */
const char *ckpt_reader_errmsg(const ckpt_reader *r);

/* The root attributes read at open (the string is owned by r). */
const char *ckpt_reader_format(const ckpt_reader *r);
int ckpt_reader_format_version(const ckpt_reader *r);

/* What a path names. */
typedef enum ckpt_kind {
    CKPT_KIND_GROUP = 0,
    CKPT_KIND_DATASET = 1,
    CKPT_KIND_OTHER = 2, /* a named datatype, or a dangling/external link */
} ckpt_kind;

/* *out = the kind of object at path; CKPT_ERR_NOTFOUND (with a message) when there is none,
 * which is how a caller tests for existence. */
int ckpt_reader_kind(ckpt_reader *r, const char *path, ckpt_kind *out);

/* Shape and type of a dataset. */
typedef struct ckpt_info {
    ckpt_dtype dtype;            /* CKPT_DTYPE_OTHER for types this API cannot read */
    int rank;                    /* 0 for a scalar */
    int64_t dims[CKPT_MAX_RANK]; /* dims[0..rank); the rest 0 */
    size_t nelems;               /* product of dims (1 for a scalar) */
    int chunked;                 /* 1 when stored in chunks, 0 contiguous/compact */
    int compressed;              /* 1 when the deflate filter is applied */
} ckpt_info;

/* Fills *out for the dataset at dpath. CKPT_ERR_NOTFOUND, CKPT_ERR_EXISTS (a group is there),
 * CKPT_ERR_DTYPE (rank above CKPT_MAX_RANK). */
int ckpt_reader_info(ckpt_reader *r, const char *dpath, ckpt_info *out);

/* Reads the whole dataset at dpath into buf (nelems elements of dtype, caller-owned; may be
 * NULL when nelems is 0). dtype must be the stored type (no silent conversion:
 * CKPT_ERR_DTYPE) and nelems the dataset's element count (CKPT_ERR_SHAPE). */
int ckpt_reader_read(ckpt_reader *r, const char *dpath, ckpt_dtype dtype, void *buf, size_t nelems);

/* Reads the string dataset at dpath: *packed (malloc'd, caller frees) holds its nelems texts
 * packed as described at ckpt_dtype, *nelems their count. CKPT_ERR_DTYPE when the dataset is not
 * a string dataset. *packed and *nelems are untouched on error. */
int ckpt_reader_read_str(ckpt_reader *r, const char *dpath, char **packed, size_t *nelems);

/* Scalar attributes of the group or dataset at obj_path ("" = root). The string is malloc'd
 * into *out (free it with free()); *out is untouched on error. The integer reader accepts any
 * stored integer type, the double reader any stored float type (CKPT_ERR_DTYPE otherwise). */
int ckpt_reader_attr_str(ckpt_reader *r, const char *obj_path, const char *name, char **out);
int ckpt_reader_attr_i64(ckpt_reader *r, const char *obj_path, const char *name, int64_t *out);
int ckpt_reader_attr_f64(ckpt_reader *r, const char *obj_path, const char *name, double *out);

/* A list of names, each with a type: a ckpt_kind for ckpt_reader_list, a ckpt_attr_type for
 * ckpt_reader_list_attrs. Owned by the caller; release with ckpt_list_free. */
typedef struct ckpt_entry {
    char *name;
    int type;
} ckpt_entry;
typedef struct ckpt_list {
    ckpt_entry *v; /* v[0..n) */
    size_t n;
} ckpt_list;

/* Attribute types as listed. */
typedef enum ckpt_attr_type {
    CKPT_ATTR_STR = 0,
    CKPT_ATTR_INT = 1,
    CKPT_ATTR_FLOAT = 2,
    CKPT_ATTR_OTHER = 3,
} ckpt_attr_type;

/* The members of the group at group_path ("" = root): in creation order when the group tracks
 * it (every group this library writes does), else by name. For the analysis of partial runs:
 * "stages" lists the stages completed so far. *out is untouched on error. */
int ckpt_reader_list(ckpt_reader *r, const char *group_path, ckpt_list *out);

/* The attributes of the group or dataset at obj_path, by name. */
int ckpt_reader_list_attrs(ckpt_reader *r, const char *obj_path, ckpt_list *out);

/* Frees the names and the array and zeroes *l. NULL is a no-op. */
void ckpt_list_free(ckpt_list *l);

/* ---- snapshots: a whole file's contents, held in memory, written in one go ---------------- */

/* What a snapshot does with its path when written. */
typedef enum ckpt_mode {
    CKPT_MODE_CREATE = 0, /* ckpt_writer_open: a new file replaces <path> (checkpoints) */
    CKPT_MODE_APPEND = 1, /* ckpt_writer_open_append: adds to <path> (results, stage by stage) */
} ckpt_mode;

/* A list of datasets and attributes, in the order added, to be written as one atomic commit,
 * synchronously (ckpt_snapshot_write) or on the I/O thread (ckpt_io_submit_snapshot). It owns
 * every buffer it holds, so training may go on changing its own tensors. Building one makes no
 * HDF5 call (any thread). Errors are sticky: after a failed add the snapshot refuses to be
 * written, so an incomplete checkpoint can never be committed. */
typedef struct ckpt_snapshot ckpt_snapshot;

/* Creates an empty snapshot for <path>. opts: NULL for the defaults. Errors: CKPT_ERR_ARG,
 * CKPT_ERR_NOMEM (message in err, may be NULL); *out is NULL on error. */
int ckpt_snapshot_new(ckpt_snapshot **out, const char *path, const char *format, int version,
                      ckpt_mode mode, const ckpt_write_opts *opts, ckpt_error *err);

/* Adds a dataset (same rules as ckpt_writer_write; checked now). _add copies data;
 * _add_owned takes ownership of data (malloc'd or released by free_fn, which may be NULL for
 * free()) and releases it when the snapshot is freed — also when this call fails. */
int ckpt_snapshot_add(ckpt_snapshot *s, const char *dpath, ckpt_dtype dtype, int rank,
                      const int64_t *dims, const void *data);
int ckpt_snapshot_add_owned(ckpt_snapshot *s, const char *dpath, ckpt_dtype dtype, int rank,
                            const int64_t *dims, void *data, void (*free_fn)(void *));

/* Adds a scalar attribute (same rules as ckpt_writer_set_attr_*; strings are copied). */
int ckpt_snapshot_attr_str(ckpt_snapshot *s, const char *obj_path, const char *name,
                           const char *value);
int ckpt_snapshot_attr_i64(ckpt_snapshot *s, const char *obj_path, const char *name, int64_t value);
int ckpt_snapshot_attr_f64(ckpt_snapshot *s, const char *obj_path, const char *name, double value);

/* Writes the snapshot now, in this thread: open (or open_append), every item in order, commit.
 * On failure <path> is untouched and err (may be NULL) holds the writer's message. s is not
 * consumed. */
int ckpt_snapshot_write(const ckpt_snapshot *s, ckpt_error *err);

/* The first failed add's message ("" if none). */
const char *ckpt_snapshot_errmsg(const ckpt_snapshot *s);

/* Frees s and every buffer it owns. NULL is a no-op. */
void ckpt_snapshot_free(ckpt_snapshot *s);

/* ---- the I/O thread ------------------------------------------------------------------------ */

/* A FIFO job queue served by one thread that owns all HDF5 work while it runs. Jobs run one at
 * a time in submission order. A failing job does not stop the queue: later jobs still run (a
 * later checkpoint may succeed once disk space is freed); the FIRST failure since the last
 * drain is kept, with its message, for ckpt_io_drain/ckpt_io_status. ckpt_io_submit* may be
 * called from any thread; drain, status, errmsg and free belong to the thread that owns io. */
typedef struct ckpt_io ckpt_io;

/* A job: does its work (through this API, e.g. a writer, never raw HDF5 from another module),
 * returns CKPT_OK or a negative status and then fills err->msg. err arrives zeroed. */
typedef int (*ckpt_job_fn)(void *arg, ckpt_error *err);

/* Starts the thread. max_pending: how many jobs may wait (not counting the running one) before
 * ckpt_io_submit blocks, bounding the memory held by queued snapshots; 0 means 2. *out is
 * owned by the caller (ckpt_io_free); on error it is NULL and err (may be NULL) says why. */
int ckpt_io_new(ckpt_io **out, size_t max_pending, ckpt_error *err);

/* Queues fn(arg); free_arg(arg) (may be NULL) is called on the I/O thread after the job ran.
 * Takes ownership of arg in every case: when the call fails (CKPT_ERR_NOMEM, CKPT_ERR_STATE),
 * free_arg(arg) has been called before it returns. Blocks while max_pending jobs wait. */
int ckpt_io_submit(ckpt_io *io, ckpt_job_fn fn, void *arg, void (*free_arg)(void *));

/* Queues ckpt_snapshot_write(s) and takes ownership of s in every case (freed after the job,
 * or now on failure). A snapshot whose building failed is refused: nothing is queued and its
 * status is returned. Every failed submit is also recorded like a failed job, so the next
 * ckpt_io_status/ckpt_io_drain reports it with its message. */
int ckpt_io_submit_snapshot(ckpt_io *io, ckpt_snapshot *s);

/* Waits until every job submitted before this call has run. Returns the first failure recorded
 * since the previous drain (CKPT_OK if none) and forgets it, so the next drain reports only
 * newer failures; ckpt_io_errmsg then holds its message (with a count when more jobs failed). */
int ckpt_io_drain(ckpt_io *io);

/* Like ckpt_io_drain without waiting or forgetting: the first failure so far (message in
 * ckpt_io_errmsg), CKPT_OK when none. */
int ckpt_io_status(ckpt_io *io);

/* The message of the failure last returned by drain/status ("" if none). Valid until the next
 * drain/status/free call. */
const char *ckpt_io_errmsg(const ckpt_io *io);

/* Runs every queued job, stops and joins the thread, frees. Failures not yet drained are lost:
 * drain first. No other thread may be in, or later call, ckpt_io_submit* on io. NULL is a
 * no-op. */
void ckpt_io_free(ckpt_io *io);

#ifdef __cplusplus
}
#endif

#endif
