/* error.c: the thread-local "last error" message shared by every tasks/ module.
 * Library code never prints; callers read the message through tok_errmsg(),
 * task_errmsg() or base_errmsg() after a call returned a negative status. */
#include <stdarg.h>
#include <stdio.h>

#include "tasks/tasks_internal.h"

static _Thread_local char g_errmsg[512];

void tasks__set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errmsg, sizeof g_errmsg, fmt, ap);
    va_end(ap);
}

const char *tasks__errmsg(void) {
    return g_errmsg;
}
