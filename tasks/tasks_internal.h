/* tasks_internal.h: library-private helpers shared by the tasks/ modules (not installed,
 * not for other libraries). Names carry a double underscore after the module prefix. */
#ifndef CAOPD_TASKS_INTERNAL_H
#define CAOPD_TASKS_INTERNAL_H

#include "tasks/rng.h"
#include "tasks/task.h"

/* The allocator of the library's two allocations (task_gen_new, base_gen_new). Tests
 * compile the sources with -DTASKS_MALLOC=test_malloc to inject failures. */
#include <stddef.h>
#ifdef TASKS_MALLOC
void *TASKS_MALLOC(size_t size); /* the test's replacement for malloc */
#else
#define TASKS_MALLOC malloc
#endif

/* Records the readable message of the current thread's last failure (printf format).
 * Every public *_errmsg() of this library returns this one thread-local buffer. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void tasks__set_error(const char *fmt, ...);
const char *tasks__errmsg(void);

/* Draws one example of (domain, split, severity) from r, applying the held-out rule
 * (train rejects held-out instances, every evaluation split accepts only them).
 * Arguments must already be valid. Returns TASK_OK or TASK_ERR_EXHAUSTED. */
int task__sample(rng_state *r, task_domain d, task_split s, int severity, task_example *ex);

#endif
