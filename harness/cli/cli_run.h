/* cli_run.h: `caopd run`: runs an experiment spec (or resumes a run directory) and prints
 * the accuracy and ECE matrices. */
#ifndef CAOPD_CLI_RUN_H
#define CAOPD_CLI_RUN_H

int cli_run(int argc, char **argv); /* argv[0] is "run"; returns the exit status */

#endif
