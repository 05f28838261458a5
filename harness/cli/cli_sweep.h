/* cli_sweep.h: `caopd sweep` (the cells of a sweep spec on a pool of child processes, or one
 * cell of a cluster job array) and `caopd merge` (the finished cells of sweep directories into
 * one summary file). docs/sweep.md. */
#ifndef CAOPD_CLI_SWEEP_H
#define CAOPD_CLI_SWEEP_H

int cli_sweep(int argc, char **argv); /* argv[0] is "sweep"; returns the exit status */
int cli_merge(int argc, char **argv); /* argv[0] is "merge"; returns the exit status */

#endif
