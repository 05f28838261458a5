/* cli_matrices.h: prints a run's stages x domains matrices (accuracy; ECE and OCG under both
 * confidence readouts; test split) on stdout, for caopd run and caopd sweep. CLI code: it prints.
 */
#ifndef CAOPD_HARNESS_CLI_MATRICES_H
#define CAOPD_HARNESS_CLI_MATRICES_H

/* Prints the matrices of the run in dir. 0 when printed, 1 for a base-only run (a note is printed
 * instead), -1 when its results file cannot be read (the message goes to stderr after who). */
int cli_print_run_matrices(const char *dir, const char *who);

#endif
