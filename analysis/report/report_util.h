/* report_util: small helpers shared by the analyses of caopd analyze (report.c, severity.c,
 * retention.c): file names, numbers, messages (strings and folders: common/). Internal to the
 * caopd_report library. */
#ifndef CAOPD_REPORT_UTIL_H
#define CAOPD_REPORT_UTIL_H

#include <stddef.h>

/* A file-name-safe copy of s into buf (len bytes): letters, digits, '-', '_', '.' kept, every
 * other byte '_'. Returns buf. */
const char *rutil_safe_name(const char *s, char *buf, size_t len);

/* "%.3f" of v into buf, or "n/a" for NaN. Returns buf. */
const char *rutil_fmt3(double v, char *buf, size_t len);

/* Formats the message into err (errlen bytes; err may be NULL) and returns status. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int rutil_set_err(char *err, size_t errlen, int status, const char *fmt, ...);

#endif
