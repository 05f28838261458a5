/* strings: the string helpers every layer shares. */
#ifndef CAOPD_COMMON_STRINGS_H
#define CAOPD_COMMON_STRINGS_H

#ifdef __cplusplus
extern "C" {
#endif

/* A malloc'd copy of s ("" for NULL); NULL when out of memory. */
char *str_dup(const char *s);

/* s as a whole decimal integer in [lo, hi] into *out: 0, or -1 (nothing written) when s is NULL,
 * empty, has other characters or is out of range. Callers say which option was wrong. */
int str_parse_int(const char *s, long lo, long hi, int *out);

#ifdef __cplusplus
}
#endif

#endif
