/* cli_args: option values of the caopd subcommands, checked the same way everywhere. */
#ifndef CAOPD_CLI_ARGS_H
#define CAOPD_CLI_ARGS_H

/* s as a whole integer in [lo, hi] into *out, or -1 after printing
 * "caopd CMD: OPT expects an integer LO..HI, got 'S'" to stderr (s may be NULL: no value). */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);

#endif
