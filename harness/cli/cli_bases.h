/* cli_bases.h: the `caopd bases` subcommand: list the shipped base models with their figures,
 * measure them again, or pack a base-only run's checkpoint into a shipped base (docs/bases.md).
 * CLI code: it prints. */
#ifndef CAOPD_HARNESS_CLI_BASES_H
#define CAOPD_HARNESS_CLI_BASES_H

/* Runs `caopd bases ...`; argv[0] is "bases". Returns the process exit status: 0 success,
 * 1 runtime failure (an unreadable file), 2 usage error. */
int cli_bases(int argc, char **argv);

#endif
