/* cli_args: what the caopd subcommands share: option values checked the same way, durations
 * written the same way. */
#ifndef CAOPD_CLI_ARGS_H
#define CAOPD_CLI_ARGS_H

#include <stddef.h>

/* s as a whole integer in [lo, hi] into *out, or -1 after printing
 * "caopd CMD: OPT expects an integer LO..HI, got 'S'" to stderr (s may be NULL: no value). */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);

/* A duration for progress lines: "42s", "3m07s", "1h05m"; "?" for a negative or non-finite s. */
void cli_duration(double s, char *buf, size_t len);

#endif
