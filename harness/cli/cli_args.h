/* cli_args: what the caopd subcommands share: option values checked the same way, durations
 * written the same way. */
#ifndef CAOPD_CLI_ARGS_H
#define CAOPD_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* s as a whole integer in [lo, hi] into *out, or -1 after printing
 * "caopd CMD: OPT expects an integer LO..HI, got 'S'" to stderr (s may be NULL: no value). */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);

/* The same for a number in [lo, hi] (strtod syntax, the whole string) into *out. */
int cli_num(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);

/* The same for an unsigned 64-bit integer (a seed), decimal, the whole string. */
int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);

/* A duration for progress lines: "42s", "3m07s", "1h05m"; "?" for a negative or non-finite s. */
void cli_duration(double s, char *buf, size_t len);

#endif
