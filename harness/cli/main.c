/* main.c: the `caopd` command line: dispatches subcommands (bench, tasks, ...).
 * Results go to stdout; progress and errors to stderr. */
#include "harness/cli/cli_bases.h"
#include "harness/cli/cli_bench.h"
#include "harness/cli/cli_analyze.h"
#include "harness/cli/cli_run.h"
#include "harness/cli/cli_sweep.h"
#include "harness/cli/cli_tasks.h"
#include "harness/cli/cli_train.h"
#include "harness/torch/tw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: caopd <command> [options]\n"
        "\n"
        "commands:\n"
        "  bench [--json] [options]   throughput: matmul, training, decoding, a CaOPD step\n"
        "  tasks [...]                list task domains and splits, print examples\n"
        "  train-demo [...]           base stage + one domain with a method, evaluated\n"
        "  run SPEC.json [--out DIR] [--force] | run --resume DIR\n"
        "                             run an experiment spec (docs/spec.md)\n"
        "  sweep SPEC.json [-j N] [--out DIR] [--list] [--cell I]\n"
        "                             run the cells of a sweep spec (docs/sweep.md)\n"
        "  merge DIR [DIR...] [--out FILE]  gather finished sweep cells into a summary file\n"
        "  analyze RUN [RUN...] [--out DIR]  tables, CSVs, figures and report.md of runs "
        "(docs/analysis.md);\n"
        "          analyze SWEEP_DIR|SUMMARY.h5  metrics against OOD severity per method\n"
        "  bases [FILE|DIR] [--measure] | bases pack CKPT OUT --name N --commit C\n"
        "                             the shipped base models and their figures (docs/bases.md)\n"
        "  version                    print versions\n"
        "  help                       this text\n"
        "\n");
    cli_bench_usage(f);
}

/* libtorch allocates every CPU tensor with plain malloc. glibc would hand large blocks back to
 * the kernel on free and fault them in again on the next step (measured: 10-30% of a training
 * step); keeping them in the heap avoids that. */
static void keep_freed_memory(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's maximum */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int main(int argc, char **argv) {
    keep_freed_memory();
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "tasks")) return cli_tasks(argc - 1, argv + 1);
    if (!strcmp(cmd, "bases")) return cli_bases(argc - 1, argv + 1);
    if (!strcmp(cmd, "train-demo")) return cli_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cli_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "analyze")) return cli_analyze(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep")) return cli_sweep(argc - 1, argv + 1);
    if (!strcmp(cmd, "merge")) return cli_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "version")) {
        printf("caopd-harness 0.1.0, libtorch %s\n", tw_version());
        return 0;
    }
    fprintf(stderr,
            "caopd: unknown command '%s' (commands: bench, tasks, train-demo, run, sweep, merge, "
            "analyze, version, help)\n",
            cmd);
    return 2;
}
