/* cli_bases.c: `caopd bases` (list, --measure) and `caopd bases pack` (docs/bases.md). */
#include "harness/cli/cli_bases.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cli/cli_args.h"
#include "harness/run/bases.h"
#include "analysis/metrics/csv.h"

#define DEFAULT_DIR "experiments/bases"

static void usage(FILE *f) {
    fprintf(f,
            "usage: caopd bases [FILE.h5|DIR ...] [--measure] [-n N] [--threads T] [--samples "
            "OUT.csv]\n"
            "       caopd bases pack CHECKPOINT.h5 OUT.h5 --name NAME --commit SHA [-n N] "
            "[--threads T]\n"
            "\n"
            "Lists shipped base models (default: every .h5 in " DEFAULT_DIR "/) with the figures\n"
            "recorded in them; --measure measures them again on N held-out questions per domain\n"
            "[200]; --samples (implies --measure) writes every question of the measurement with\n"
            "its three completions to OUT.csv. pack: the checkpoint.h5 of a base-only caopd run\n"
            "becomes a shipped base: the figures are measured and recorded with its name, the\n"
            "commit that made it and the run's thread count (docs/bases.md).\n");
}

/* The options both forms take: -n N and --threads T. Returns 1 when argv[*i] was one of them
 * (its value consumed), 0 when it was not, -1 on a bad value. */
static int common_option(int argc, char **argv, int *i, int *n, int *threads) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int *dst = !strcmp(a, "-n") ? n : !strcmp(a, "--threads") ? threads : NULL;
    if (!dst) return 0;
    if (cli_int("bases", a, v, 1, 1000000, dst)) return -1;
    ++*i;
    return 1;
}

static void print_figures(const bases_figures *f) {
    printf("  %-6s %5s %6s %6s %6s %6s %6s %6s\n", "domain", "n", "demo", "note=", "acc", "conf",
           "=1.00", "fmt_f");
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        printf("  %-6s %5d %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f\n", task_domain_name((task_domain)d),
               f[d].n, f[d].demo_acc, f[d].note_exact, f[d].acc, f[d].mean_conf, f[d].conf_one,
               f[d].format_fail);
}

static void print_mask(unsigned mask) {
    const char *sep = "";
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        if (mask >> d & 1) printf("%s%s", sep, task_domain_name((task_domain)d)), sep = ", ";
}

/* The verdict on the conditions of docs/bases.md, one line each. */
static void print_verdict(const bases_figures *f, unsigned skill) {
    bases_verdict v = bases_judge(f, skill);
    printf(" (a) follows context (demo and note >= 0.95 on every domain): %s", v.a ? "yes" : "NO");
    if (v.a_demo_fail) printf("; demo below on "), print_mask(v.a_demo_fail);
    if (v.a_note_fail) printf("; note below on "), print_mask(v.a_note_fail);
    printf("\n (b) partly solves >= 4 skill domains (acc 0.25-0.60): %s, %d", v.b ? "yes" : "NO",
           v.b_in_band);
    if (v.b_out) printf("; outside: "), print_mask(v.b_out);
    printf(" (skill domains: ");
    print_mask(skill);
    printf(")\n (c) states 1.00 (>= 0.95 on every skill domain): %s", v.c ? "yes" : "NO");
    if (v.c_fail) printf("; below on "), print_mask(v.c_fail);
    printf("\n");
}

/* The per-question CSV of --samples (docs/bases.md): one row per base, domain and question. */
static void samples_header(FILE *f) {
    fprintf(
        f,
        "base,domain,question,answer,demo_completion,demo_correct,note,note_completion,note_exact,"
        "note_correct,completion,correct,confidence,format_failure\n");
}

static void samples_rows(FILE *f, const char *path, task_domain d, const bases_sample *s, int n) {
    for (int i = 0; i < n; i++) {
        csv_str(f, path);
        fprintf(f, ",%s,", task_domain_name(d));
        csv_str(f, s[i].question);
        fputc(',', f);
        csv_str(f, s[i].answer);
        fputc(',', f);
        csv_str(f, s[i].demo_completion);
        fprintf(f, ",%d,%d,", s[i].demo_correct, s[i].note);
        csv_str(f, s[i].note_completion);
        fprintf(f, ",%d,%d,", s[i].note_exact, s[i].note_correct);
        csv_str(f, s[i].completion);
        fprintf(f, ",%d,", s[i].correct);
        csv_num(f, s[i].confidence);
        fprintf(f, ",%d\n", s[i].format_failure);
    }
}

static int show(tw_ctx *ctx, const char *path, int measure, int n, FILE *samples_csv) {
    gpt *m = NULL;
    bases_info info;
    char err[2048];
    if (bases_open(ctx, path, 1, &m, &info, err, sizeof err)) {
        fprintf(stderr, "caopd bases: %s\n", err);
        return 1;
    }
    printf(
        "%s: %s, width %d, %d layers, %d heads, %lld params, %lld steps, commit %s, %d thread%s\n",
        path, info.name[0] ? info.name : "(unpacked checkpoint)", info.cfg.n_embd, info.cfg.n_layer,
        info.cfg.n_head, (long long)gpt_config_param_count(info.cfg), (long long)info.step,
        info.commit[0] ? info.commit : "?", info.threads, info.threads == 1 ? "" : "s");
    int rc = 0;
    if (measure) {
        bases_figures f[TASK_N_DOMAINS];
        bases_sample *samples = samples_csv ? malloc(sizeof *samples * (size_t)n) : NULL;
        if (samples_csv && !samples) {
            fprintf(stderr, "caopd bases: out of memory for %d samples\n", n);
            rc = 1;
        }
        for (int d = 0; !rc && d < TASK_N_DOMAINS; d++) {
            fprintf(stderr, "caopd bases: measuring %s on %d questions ...\n",
                    task_domain_name((task_domain)d), n);
            if (bases_measure(m, (task_domain)d, n, bases_measure_seed((task_domain)d), &f[d],
                              samples) != TW_OK) {
                fprintf(stderr, "caopd bases: %s: %s\n", path, tw_errmsg(ctx));
                rc = 1;
            } else if (samples) {
                samples_rows(samples_csv, path, (task_domain)d, samples, n);
            }
        }
        free(samples);
        if (!rc) {
            printf(" measured now (demo: answer right given a demo; note=: states the note's "
                   "value; acc, conf,\n"
                   " =1.00, fmt_f: no demo, greedy):\n");
            print_figures(f);
            print_verdict(f, info.skill_domains);
        }
    } else if (info.has_figures) {
        printf(" recorded (demo: answer right given a demo; note=: states the note's value; acc, "
               "conf, =1.00,\n"
               " fmt_f: no demo, greedy):\n");
        print_figures(info.figures);
        print_verdict(info.figures, info.skill_domains);
    } else {
        printf(" no recorded figures: run caopd bases --measure %s\n", path);
    }
    gpt_free(m);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int show_dir(tw_ctx *ctx, const char *dir, int measure, int n, FILE *samples_csv) {
    DIR *dp = opendir(dir);
    if (!dp) {
        fprintf(
            stderr,
            "caopd bases: cannot open %s (run caopd from the repository root, or name the files)\n",
            dir);
        return 1;
    }
    char *names[256];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && k < 256) {
        size_t len = strlen(e->d_name);
        if (len > 3 && !strcmp(e->d_name + len - 3, ".h5")) {
            names[k] = malloc(strlen(dir) + len + 2);
            if (names[k]) sprintf(names[k++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(dp);
    qsort(names, (size_t)k, sizeof names[0], cmp_str);
    int rc = k ? 0 : 1;
    if (!k) fprintf(stderr, "caopd bases: no .h5 file in %s\n", dir);
    for (int i = 0; i < k; i++) {
        if (show(ctx, names[i], measure, n, samples_csv)) rc = 1;
        free(names[i]);
    }
    return rc;
}

static int pack(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *name = NULL, *commit = NULL;
    int n = 200, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const int c = common_option(argc, argv, &i, &n, &threads);
        if (c < 0) return 2;
        if (c) continue;
        if (!strcmp(a, "--name") && v)
            name = v, i++;
        else if (!strcmp(a, "--commit") && v)
            commit = v, i++;
        else if (a[0] != '-' && !in)
            in = a;
        else if (a[0] != '-' && !out)
            out = a;
        else {
            fprintf(stderr, "caopd bases pack: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!in || !out || !name || !commit) {
        fprintf(stderr, "caopd bases pack: needs CHECKPOINT.h5, OUT.h5, --name and --commit\n");
        usage(stderr);
        return 2;
    }
    char err[2048];
    fprintf(stderr, "caopd bases pack: measuring %s on %d questions per domain ...\n", in, n);
    if (bases_pack(in, out, name, commit, n, threads, err, sizeof err)) {
        fprintf(stderr, "caopd bases pack: %s\n", err);
        return 1;
    }
    fprintf(stderr, "caopd bases pack: wrote %s\n", out);
    return 0;
}

int cli_bases(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "pack")) return pack(argc - 1, argv + 1);
    int measure = 0, n = 200, threads = 1, nfiles = 0;
    const char *files[64], *samples_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int c = common_option(argc, argv, &i, &n, &threads);
        if (c < 0) return 2;
        if (c) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--measure"))
            measure = 1;
        else if (!strcmp(a, "--samples") && i + 1 < argc)
            samples_path = argv[++i], measure = 1;
        else if (a[0] != '-' && nfiles < 64)
            files[nfiles++] = a;
        else {
            fprintf(stderr, "caopd bases: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    tw_set_num_threads(threads);
    tw_set_blas_threads(threads);
    tw_ctx *ctx = NULL;
    char e[1024];
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, e, sizeof e) != TW_OK) {
        fprintf(stderr, "caopd bases: libtorch: %s\n", e);
        return 1;
    }
    FILE *csv = NULL;
    if (samples_path && !(csv = fopen(samples_path, "w"))) {
        fprintf(stderr, "caopd bases: cannot write %s: %s\n", samples_path, strerror(errno));
        tw_ctx_free(ctx);
        return 1;
    }
    if (csv) samples_header(csv);
    int rc = 0;
    if (!nfiles) rc = show_dir(ctx, DEFAULT_DIR, measure, n, csv);
    for (int i = 0; i < nfiles; i++) {
        size_t len = strlen(files[i]);
        int is_h5 = len > 3 && !strcmp(files[i] + len - 3, ".h5");
        if ((is_h5 ? show(ctx, files[i], measure, n, csv)
                   : show_dir(ctx, files[i], measure, n, csv)))
            rc = 1;
    }
    if (csv && (ferror(csv) | fclose(csv))) {
        fprintf(stderr, "caopd bases: writing %s failed (disk full?)\n", samples_path);
        rc = 1;
    } else if (csv) {
        fprintf(stderr, "caopd bases: wrote %s\n", samples_path);
    }
    tw_ctx_free(ctx);
    return rc;
}
