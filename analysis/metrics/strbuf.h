/* strbuf: a growing NUL-terminated string for building tables, Markdown and messages. A plain
 * value: start from {0}, append with strbuf_printf, read with strbuf_str, release with free(b.p).
 * An allocation failure is sticky (oom = 1; later appends do nothing). Not thread-safe per object.
 */
#ifndef CAOPD_STRBUF_H
#define CAOPD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strbuf {
    char *p;       /* owned; NULL until the first append */
    size_t n, cap; /* bytes used (NUL excluded), bytes allocated */
    int oom;
} strbuf;

void strbuf_vprintf(strbuf *b, const char *fmt, va_list ap);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void strbuf_printf(strbuf *b, const char *fmt, ...);

/* The text so far ("" before any append); borrowed until the next append or free. */
const char *strbuf_str(const strbuf *b);

#ifdef __cplusplus
}
#endif

#endif
