/* strings.c: see strings.h. */
#include "common/strings.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *str_dup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

int str_parse_int(const char *s, long lo, long hi, int *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}
