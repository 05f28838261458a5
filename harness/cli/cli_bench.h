/* cli_bench: `caopd bench` (docs/performance.md). */
#ifndef CAOPD_CLI_BENCH_H
#define CAOPD_CLI_BENCH_H

#include <stdio.h>

/* The bench options, for `caopd help`. */
void cli_bench_usage(FILE *f);

/* argv[0] is "bench". Returns the process exit status. */
int cli_bench(int argc, char **argv);

#endif
