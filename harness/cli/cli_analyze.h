/* cli_analyze.h: `caopd analyze RUN [RUN...] [--out DIR]`: tables of one or more runs' results
 * files on stdout, and CSVs, a JSON summary, figures and report.md in DIR (docs/analysis.md). */
#ifndef CAOPD_CLI_ANALYZE_H
#define CAOPD_CLI_ANALYZE_H

int cli_analyze(int argc, char **argv); /* argv[0] is "analyze"; returns the exit status */

#endif
