/* ckpt_io.c: the I/O thread. A bounded FIFO of jobs served by one pthread, so that every HDF5
 * call of an asynchronous snapshot happens on that thread while training goes on. The first
 * failure since the last drain is kept (with its message) for the owner to collect. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/ckpt_internal.h"

typedef struct job {
    ckpt_job_fn fn;
    void *arg;
    void (*free_arg)(void *);
    struct job *next;
} job;

struct ckpt_io {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* a job was queued, or stop was set */
    pthread_cond_t cv_done; /* a job finished (drain waits; full submitters wait) */
    job *head, *tail;
    size_t queued; /* jobs waiting (not counting the running one) */
    size_t max_pending;
    uint64_t submitted; /* jobs accepted so far */
    uint64_t finished;  /* jobs run so far */
    int stop;
    /* The first failure since the last drain, and how many failed since then (under mu). */
    int err_status;
    size_t err_count;
    char err_msg[CKPT_ERRMSG_CAP];
    /* What drain/status last reported; touched only by the owner thread. */
    char msg[CKPT_ERRMSG_CAP];
};

/* Records a failure (mu held). */
static void record(ckpt_io *io, int status, const char *msg) {
    if (io->err_count++ == 0) {
        io->err_status = status;
        snprintf(io->err_msg, sizeof io->err_msg, "%s",
                 msg && msg[0] ? msg : ckpt_status_str(status));
    }
}

static void *worker(void *p) {
    ckpt_io *io = p;
    pthread_mutex_lock(&io->mu);
    while (1) {
        while (!io->head && !io->stop)
            pthread_cond_wait(&io->cv_work, &io->mu);
        if (!io->head) break; /* stop, and nothing left */
        job *j = io->head;
        io->head = j->next;
        if (!io->head) io->tail = NULL;
        io->queued--;
        pthread_cond_broadcast(&io->cv_done); /* room for a blocked submitter */
        pthread_mutex_unlock(&io->mu);

        ckpt_error err;
        memset(&err, 0, sizeof err);
        int rc = j->fn(j->arg, &err);
        if (j->free_arg) j->free_arg(j->arg);
        free(j);

        pthread_mutex_lock(&io->mu);
        if (rc < 0) record(io, rc, err.msg);
        io->finished++;
        pthread_cond_broadcast(&io->cv_done);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

int ckpt_io_new(ckpt_io **out, size_t max_pending, ckpt_error *err) {
    const char *why = NULL;
    int rc = CKPT_OK;
    ckpt_io *io = NULL;
    if (!out) {
        why = "ckpt_io_new: out is NULL";
        rc = CKPT_ERR_ARG;
    } else {
        *out = NULL;
        io = calloc(1, sizeof *io);
        if (!io) {
            why = "ckpt_io_new: out of memory";
            rc = CKPT_ERR_NOMEM;
        }
    }
    if (!rc) {
        io->max_pending = max_pending ? max_pending : 2;
        pthread_mutex_init(&io->mu, NULL);
        pthread_cond_init(&io->cv_work, NULL);
        pthread_cond_init(&io->cv_done, NULL);
        if (pthread_create(&io->thread, NULL, worker, io) != 0) {
            pthread_cond_destroy(&io->cv_done);
            pthread_cond_destroy(&io->cv_work);
            pthread_mutex_destroy(&io->mu);
            free(io);
            why = "ckpt_io_new: cannot start the I/O thread (too many threads?)";
            rc = CKPT_ERR_NOMEM;
        }
    }
    if (err) {
        err->status = rc;
        snprintf(err->msg, sizeof err->msg, "%s", why ? why : "");
    }
    if (!rc) *out = io;
    return rc;
}

int ckpt_io_submit(ckpt_io *io, ckpt_job_fn fn, void *arg, void (*free_arg)(void *)) {
    if (!io || !fn) {
        if (free_arg) free_arg(arg);
        if (io) {
            pthread_mutex_lock(&io->mu);
            record(io, CKPT_ERR_ARG, "ckpt_io_submit: job function is NULL");
            pthread_mutex_unlock(&io->mu);
        }
        return CKPT_ERR_ARG;
    }
    job *j = malloc(sizeof *j);
    pthread_mutex_lock(&io->mu);
    int rc = CKPT_OK;
    if (!j) {
        rc = CKPT_ERR_NOMEM;
        record(io, rc, "ckpt_io_submit: out of memory queueing a job (it did not run)");
    } else {
        while (io->queued >= io->max_pending && !io->stop)
            pthread_cond_wait(&io->cv_done, &io->mu);
        if (io->stop) {
            rc = CKPT_ERR_STATE;
            record(io, rc, "ckpt_io_submit: the I/O queue is shutting down (the job did not run)");
        }
    }
    if (rc) {
        pthread_mutex_unlock(&io->mu);
        free(j);
        if (free_arg) free_arg(arg);
        return rc;
    }
    j->fn = fn;
    j->arg = arg;
    j->free_arg = free_arg;
    j->next = NULL;
    if (io->tail)
        io->tail->next = j;
    else
        io->head = j;
    io->tail = j;
    io->queued++;
    io->submitted++;
    pthread_cond_signal(&io->cv_work);
    pthread_mutex_unlock(&io->mu);
    return CKPT_OK;
}

static int snapshot_job(void *arg, ckpt_error *err) {
    return ckpt_snapshot_write(arg, err);
}

static void snapshot_free(void *arg) {
    ckpt_snapshot_free(arg);
}

int ckpt_io_submit_snapshot(ckpt_io *io, ckpt_snapshot *s) {
    if (!io || !s) {
        ckpt_snapshot_free(s);
        if (io) {
            pthread_mutex_lock(&io->mu);
            record(io, CKPT_ERR_ARG, "ckpt_io_submit_snapshot: snapshot is NULL");
            pthread_mutex_unlock(&io->mu);
        }
        return CKPT_ERR_ARG;
    }
    /* A snapshot whose building failed would fail on the thread anyway; refuse it now. */
    int rc = ckpt__snapshot_status(s);
    if (rc) {
        char msg[CKPT_ERRMSG_CAP];
        snprintf(msg, sizeof msg, "%.900s (the snapshot was not written)", ckpt_snapshot_errmsg(s));
        pthread_mutex_lock(&io->mu);
        record(io, rc, msg);
        pthread_mutex_unlock(&io->mu);
        ckpt_snapshot_free(s);
        return rc;
    }
    return ckpt_io_submit(io, snapshot_job, s, snapshot_free);
}

/* Copies the recorded failure into the owner's buffer (mu held). */
static int report(ckpt_io *io) {
    if (io->err_count == 0) {
        io->msg[0] = 0;
        return CKPT_OK;
    }
    if (io->err_count > 1)
        snprintf(io->msg, sizeof io->msg, "%.900s (and %zu later job%s failed too)", io->err_msg,
                 io->err_count - 1, io->err_count > 2 ? "s" : "");
    else
        snprintf(io->msg, sizeof io->msg, "%s", io->err_msg);
    return io->err_status;
}

int ckpt_io_drain(ckpt_io *io) {
    if (!io) return CKPT_ERR_ARG;
    pthread_mutex_lock(&io->mu);
    uint64_t target = io->submitted;
    while (io->finished < target)
        pthread_cond_wait(&io->cv_done, &io->mu);
    int rc = report(io);
    io->err_count = 0;
    io->err_status = CKPT_OK;
    io->err_msg[0] = 0;
    pthread_mutex_unlock(&io->mu);
    return rc;
}

int ckpt_io_status(ckpt_io *io) {
    if (!io) return CKPT_ERR_ARG;
    pthread_mutex_lock(&io->mu);
    int rc = report(io);
    pthread_mutex_unlock(&io->mu);
    return rc;
}

const char *ckpt_io_errmsg(const ckpt_io *io) {
    return io ? io->msg : "ckpt_io is NULL";
}

void ckpt_io_free(ckpt_io *io) {
    if (!io) return;
    pthread_mutex_lock(&io->mu);
    io->stop = 1;
    pthread_cond_broadcast(&io->cv_work);
    pthread_cond_broadcast(&io->cv_done);
    pthread_mutex_unlock(&io->mu);
    pthread_join(io->thread, NULL);
    pthread_cond_destroy(&io->cv_done);
    pthread_cond_destroy(&io->cv_work);
    pthread_mutex_destroy(&io->mu);
    free(io);
}
