/* cli_tasks.h: the `caopd tasks` subcommand: list domains, splits and severities, print
 * sample examples, and benchmark example generation. CLI code: it prints. */
#ifndef CAOPD_HARNESS_CLI_TASKS_H
#define CAOPD_HARNESS_CLI_TASKS_H

/* Runs `caopd tasks ...`; argv[0] is "tasks". Returns the process exit status:
 * 0 success, 1 runtime failure, 2 usage error (unknown domain/split, bad option). */
int cli_tasks(int argc, char **argv);

#endif
