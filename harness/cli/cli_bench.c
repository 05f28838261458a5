/* cli_bench.c: `caopd bench`: option parsing, tables and JSON of harness/bench/bench.h. */
#include "harness/cli/cli_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/bench/bench.h"
#include "harness/cli/cli_args.h"
#include "harness/trainer/opd.h"
#include "harness/torch/tw.h"

void cli_bench_usage(FILE *f) {
    fprintf(f, "bench options (defaults in brackets):\n"
               "  --threads N    cores: libtorch intra-op threads, one BLAS thread [all cores]\n"
               "  --blas-threads N  override the BLAS threads of the runs [policy: 1]\n"
               "  --width C      model width [128]     --layers L  layers [4]\n"
               "  --heads H      attention heads [4]   --vocab V   vocabulary [99]\n"
               "  --batch B      sequences per training step [16]\n"
               "  --seq T        tokens per sequence [256]\n"
               "  --steps N      measured training steps [5]\n"
               "  --decode-batch B  rows decoded together [128]\n"
               "  --decode-new N    new tokens per row [24]\n"
               "  --opd-prompts N   CaOPD step: prompts per step [16]\n"
               "  --k K             CaOPD step: rollouts per prompt [8]\n"
               "  --opd-new N       CaOPD step: tokens sampled per rollout [24]\n"
               "  --opd-steps N     CaOPD step: measured steps after one warm-up [3]; 0: skip\n"
               "  --opd-domain D    CaOPD step: the prompts' task domain [add]\n"
               "  --opd-only        measure only the matmul rates and the CaOPD step\n"
               "  --base-only       measure only the matmul rates and the base-stage step\n"
               "  --base-batch N    base step: pairs per step [32]\n"
               "  --base-steps N    base step: measured steps after one warm-up [3]\n"
               "  --profile         then as many steps again, profiled: time by phase and kind\n"
               "                    of operation, ops and matmul FLOPs per step, flop_limit_s\n"
               "  --json         print one JSON object instead of a table\n");
}

static void progress_line(const char *line, void *arg) {
    (void)arg;
    fprintf(stderr, "bench: %s ...\n", line);
}

static const char *const phase_names[TW_PROF_PHASES] = {"rollout", "teacher", "train", "rest"};

/* The "profile" object of the JSON output (bench_profile; bench.h), or null. */
static void print_profile_json(const bench_profile *pr) {
    if (!pr->measured) {
        printf("null");
        return;
    }
    printf("{\"steps\": %d, \"step_s\": %.6f, \"flops\": %.6g, \"flop_limit_s\": %.6f, "
           "\"step_to_limit\": %.2f, \"op_calls\": %.1f, \"phases\": {",
           pr->steps, pr->step_s, pr->flops, pr->flop_limit_s,
           pr->flop_limit_s > 0 ? pr->step_s / pr->flop_limit_s : 0.0, pr->op_calls);
    for (int ph = 0; ph < TW_PROF_PHASES; ph++) {
        double in_ops = 0;
        int64_t calls = 0;
        for (int k = 0; k < TW_KIND_COUNT; k++) {
            in_ops += pr->per_step.cell[ph][k].seconds;
            calls += pr->per_step.cell[ph][k].calls;
        }
        printf("%s\"%s\": {\"wall_s\": %.6f, \"ops_s\": %.6f, \"outside_ops_s\": %.6f, "
               "\"calls\": %lld, \"flops\": %.6g, \"kinds\": {",
               ph ? ", " : "", phase_names[ph], pr->phase_s[ph], in_ops, pr->phase_s[ph] - in_ops,
               (long long)calls, pr->per_step.flops[ph]);
        for (int k = 0; k < TW_KIND_COUNT; k++)
            printf("%s\"%s\": {\"calls\": %lld, \"s\": %.6f}", k ? ", " : "",
                   tw_kind_name((tw_kind)k), (long long)pr->per_step.cell[ph][k].calls,
                   pr->per_step.cell[ph][k].seconds);
        printf("}}");
    }
    printf("}}");
}

/* The profile as a table: ms and calls per step, a row per kind, a column per phase. */
static void print_profile_table(const bench_profile *pr, double unprofiled_s) {
    if (!pr->measured) return;
    printf("  profile (%d steps, %.3f s/step profiled, %.3f unprofiled): ms per step (calls)\n",
           pr->steps, pr->step_s, unprofiled_s);
    printf("    %-12s", "kind");
    for (int ph = 0; ph < TW_PROF_PHASES; ph++)
        printf(" %18s", phase_names[ph]);
    printf(" %18s\n", "all");
    double tot_s[TW_PROF_PHASES + 1] = {0};
    int64_t tot_c[TW_PROF_PHASES + 1] = {0};
    for (int k = 0; k < TW_KIND_COUNT; k++) {
        printf("    %-12s", tw_kind_name((tw_kind)k));
        double all_s = 0;
        int64_t all_c = 0;
        for (int ph = 0; ph < TW_PROF_PHASES; ph++) {
            const tw_prof_cell *c = &pr->per_step.cell[ph][k];
            printf(" %9.1f (%6lld)", 1e3 * c->seconds, (long long)c->calls);
            all_s += c->seconds, all_c += c->calls;
            tot_s[ph] += c->seconds, tot_c[ph] += c->calls;
        }
        tot_s[TW_PROF_PHASES] += all_s, tot_c[TW_PROF_PHASES] += all_c;
        printf(" %9.1f (%6lld)\n", 1e3 * all_s, (long long)all_c);
    }
    printf("    %-12s", "in ops");
    for (int ph = 0; ph <= TW_PROF_PHASES; ph++)
        printf(" %9.1f (%6lld)", 1e3 * tot_s[ph], (long long)tot_c[ph]);
    printf("\n    %-12s", "outside ops");
    double wall = 0;
    for (int ph = 0; ph < TW_PROF_PHASES; ph++) {
        printf(" %9.1f %8s", 1e3 * (pr->phase_s[ph] - tot_s[ph]), "");
        wall += pr->phase_s[ph];
    }
    printf(" %9.1f\n    %-12s", 1e3 * (wall - tot_s[TW_PROF_PHASES]), "phase wall");
    for (int ph = 0; ph < TW_PROF_PHASES; ph++)
        printf(" %9.1f %8s", 1e3 * pr->phase_s[ph], "");
    printf(" %9.1f\n", 1e3 * wall);
    printf("    matmul FLOPs %.3g per step: flop_limit_s %.4f at the run's matmul rate; the "
           "unprofiled step is %.1fx that; %.0f ops per step\n",
           pr->flops, pr->flop_limit_s,
           pr->flop_limit_s > 0 ? unprofiled_s / pr->flop_limit_s : 0.0, pr->op_calls);
}

/* The "base_step" object of the JSON output (bench_base; bench.h), or null. */
static void print_base_json(const bench_result *r) {
    const bench_base *b = &r->base;
    if (!b->measured) {
        printf("null");
        return;
    }
    printf("{\"batch\": %d, \"steps\": %d, \"prompt_tokens\": %lld, \"train_tokens\": %lld, "
           "\"step_s\": %.6f, \"tok_s\": %.1f, \"profile\": ",
           b->batch, b->steps, (long long)b->prompt_tokens, (long long)b->train_tokens, b->step_s,
           b->tok_s);
    print_profile_json(&b->prof);
    printf("}");
}

/* The "opd_step" object of the JSON output (the fields of bench_opd; bench.h). */
static void print_opd_json(const bench_params *p, const bench_result *r) {
    const bench_opd *o = &r->opd;
    if (!o->measured) {
        printf("null");
        return;
    }
    printf("{\"domain\": \"%s\", \"prompts\": %d, \"k\": %d, \"max_new\": %d, \"steps\": %d, "
           "\"vocab\": %d, \"params\": %lld, "
           "\"prompt_tokens\": %lld, \"teacher_prompt_tokens\": %lld, \"teacher_contexts\": %lld, "
           "\"new_tokens\": %lld, \"train_tokens\": %lld, \"teacher_tokens\": %lld, "
           "\"student_tokens\": %lld, "
           "\"step_s\": %.6f, \"rollout_s\": %.6f, \"teacher_s\": %.6f, \"train_s\": %.6f, "
           "\"other_s\": %.6f, "
           "\"rollout_tok_s\": %.1f, \"teacher_tok_s\": %.1f, \"train_tok_s\": %.1f, "
           "\"step_tok_s\": %.1f, \"profile\": ",
           task_domain_name(p->opd_domain), o->prompts, o->k, o->max_new, o->steps, p->model.vocab,
           (long long)r->params, (long long)o->prompt_tokens, (long long)o->teacher_prompt_tokens,
           (long long)o->teacher_contexts, (long long)o->new_tokens, (long long)o->train_tokens,
           (long long)o->teacher_tokens, (long long)o->student_tokens, o->step_s, o->rollout_s,
           o->teacher_s, o->train_s, o->other_s, o->rollout_tok_s, o->teacher_tok_s, o->train_tok_s,
           o->step_tok_s);
    print_profile_json(&o->prof);
    printf("}");
}

int cli_bench(int argc, char **argv) {
    bench_params p = bench_default();
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--threads"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.threads), i++;
        else if (!strcmp(a, "--blas-threads"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.blas_threads), i++;
        else if (!strcmp(a, "--width"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.model.n_embd), i++;
        else if (!strcmp(a, "--layers"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.model.n_layer), i++;
        else if (!strcmp(a, "--heads"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.model.n_head), i++;
        else if (!strcmp(a, "--vocab"))
            rc = cli_int("bench", a, v, 2, 1 << 30, &p.model.vocab), i++;
        else if (!strcmp(a, "--batch"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.train_batch), i++;
        else if (!strcmp(a, "--seq"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.train_seq), i++;
        else if (!strcmp(a, "--steps"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.train_steps), i++;
        else if (!strcmp(a, "--decode-batch"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.decode_batch), i++;
        else if (!strcmp(a, "--decode-new"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.decode_new), i++;
        else if (!strcmp(a, "--opd-prompts"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.opd_prompts), i++;
        else if (!strcmp(a, "--k"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.opd_k), i++;
        else if (!strcmp(a, "--opd-new"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.opd_new), i++;
        else if (!strcmp(a, "--opd-steps"))
            rc = cli_int("bench", a, v, 0, 1 << 30, &p.opd_steps), i++;
        else if (!strcmp(a, "--opd-only"))
            p.opd_only = 1;
        else if (!strcmp(a, "--base-only"))
            p.base_only = 1;
        else if (!strcmp(a, "--profile"))
            p.profile = 1;
        else if (!strcmp(a, "--base-batch"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.base_batch), i++;
        else if (!strcmp(a, "--base-steps"))
            rc = cli_int("bench", a, v, 1, 1 << 30, &p.base_steps), i++;
        else if (!strcmp(a, "--opd-domain")) {
            if (!v || task_domain_from_name(v, &p.opd_domain)) {
                fprintf(stderr, "caopd bench: --opd-domain: %s\n",
                        v ? task_errmsg() : "needs a domain name");
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "caopd bench: unknown option '%s' (see 'caopd help')\n", a);
            return 2;
        }
        if (rc) return 2;
    }
    char err[512];
    if (gpt_config_check(p.model, err, sizeof err)) {
        fprintf(stderr, "caopd bench: %s\n", err);
        return 2;
    }
    if (p.train_seq > p.model.block_size) p.model.block_size = p.train_seq;
    bench_result r;
    if (bench_run(p, &r, progress_line, NULL, err, sizeof err)) {
        fprintf(stderr, "caopd %s\n", err);
        return 1;
    }
    const double decode_speedup = r.train_measured ? r.decode_tok_s / r.recompute_tok_s : 0.0;
    const double train_ratio = r.train_gflops / r.matmul_gflops;
    const int blas_threads = p.blas_threads > 0 ? p.blas_threads : 1;
    if (json) {
        /* libgomp reads OMP_WAIT_POLICY when it loads; on a busy machine it changes the figures
         * several-fold (README), so the output records it. */
        const char *wait_policy = getenv("OMP_WAIT_POLICY");
        static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        if (wait_policy && strspn(wait_policy, letters) != strlen(wait_policy))
            wait_policy = "(not a word)"; /* keeps the JSON valid */
        if (wait_policy)
            printf("{\"omp_wait_policy\": \"%s\", ", wait_policy);
        else
            printf("{\"omp_wait_policy\": null, ");
        printf("\"torch_version\": \"%s\", \"blas\": \"%s\", \"threads\": %d, "
               "\"blas_threads\": %d, "
               "\"model\": {\"vocab\": %d, \"block_size\": %d, \"n_layer\": %d, \"n_head\": %d, "
               "\"n_embd\": %d, \"params\": %lld}, "
               "\"matmul_n\": %d, \"matmul_gflops\": %.3f, \"matmul_gflops_run_threads\": %.3f, ",
               tw_version(), tw_blas_info(), p.threads, blas_threads, p.model.vocab,
               p.model.block_size, p.model.n_layer, p.model.n_head, p.model.n_embd,
               (long long)r.params, p.matmul_n, r.matmul_gflops, r.matmul_gflops_run);
        if (r.train_measured)
            printf("\"train_batch\": %d, \"train_seq\": %d, \"train_tokens_per_step\": %d, "
                   "\"train_flops_per_step\": %.6g, \"train_step_s\": %.6f, \"train_tok_s\": %.1f, "
                   "\"train_gflops\": %.3f, \"train_to_matmul\": %.3f, "
                   "\"decode_batch\": %d, \"decode_prompt\": %d, \"decode_new\": %d, "
                   "\"decode_tok_s\": %.1f, \"recompute_tok_s\": %.1f, \"decode_speedup\": %.2f, ",
                   p.train_batch, p.train_seq, p.train_batch * p.train_seq, r.train_flops_per_step,
                   r.train_step_s, r.train_tok_s, r.train_gflops, train_ratio, p.decode_batch,
                   p.decode_prompt, p.decode_new, r.decode_tok_s, r.recompute_tok_s,
                   decode_speedup);
        else /* --opd-only: the same keys, not measured */
            printf("\"train_batch\": %d, \"train_seq\": %d, \"train_tokens_per_step\": %d, "
                   "\"train_flops_per_step\": null, \"train_step_s\": null, \"train_tok_s\": null, "
                   "\"train_gflops\": null, \"train_to_matmul\": null, "
                   "\"decode_batch\": %d, \"decode_prompt\": %d, \"decode_new\": %d, "
                   "\"decode_tok_s\": null, \"recompute_tok_s\": null, \"decode_speedup\": null, ",
                   p.train_batch, p.train_seq, p.train_batch * p.train_seq, p.decode_batch,
                   p.decode_prompt, p.decode_new);
        printf("\"opd_step\": ");
        print_opd_json(&p, &r);
        printf(", \"base_step\": ");
        print_base_json(&r);
        printf("}\n");
    } else {
        printf("libtorch %s, %d intra-op / %d BLAS thread(s); BLAS: %s\n", tw_version(), p.threads,
               blas_threads, tw_blas_info());
        printf("model C=%d L=%d H=%d V=%d (%lld params)\n", p.model.n_embd, p.model.n_layer,
               p.model.n_head, p.model.vocab, (long long)r.params);
        printf("  matmul %dx%d            %8.2f GFLOP/s on %d BLAS threads, %.2f with the run's "
               "threads\n",
               p.matmul_n, p.matmul_n, r.matmul_gflops, p.threads, r.matmul_gflops_run);
        if (r.train_measured) {
            printf("  train %dx%d tokens/step  %8.2f GFLOP/s (%.2f of matmul), %.0f tok/s, "
                   "%.3f s/step\n",
                   p.train_batch, p.train_seq, r.train_gflops, train_ratio, r.train_tok_s,
                   r.train_step_s);
            printf("  decode %d rows x %d new   %8.0f tok/s with KV cache, %.0f tok/s recomputing "
                   "(%.1fx)\n",
                   p.decode_batch, p.decode_new, r.decode_tok_s, r.recompute_tok_s, decode_speedup);
        }
        const bench_opd *o = &r.opd;
        if (o->measured)
            printf("  CaOPD step %d x K %d x %d new (%s): %.3f s/step; rollout %.3f s (%.0f "
                   "tok/s), teacher %.3f s (%.0f tok/s), student %.3f s (%.0f tok/s), "
                   "rest %.3f s\n",
                   o->prompts, o->k, o->max_new, task_domain_name(p.opd_domain), o->step_s,
                   o->rollout_s, o->rollout_tok_s, o->teacher_s, o->teacher_tok_s, o->train_s,
                   o->train_tok_s, o->other_s);
        print_profile_table(&o->prof, o->step_s);
        const bench_base *b = &r.base;
        if (b->measured)
            printf("  base step %d pairs: %.3f s/step (%lld prompt + %lld target tokens, %.0f "
                   "tok/s)\n",
                   b->batch, b->step_s, (long long)b->prompt_tokens, (long long)b->train_tokens,
                   b->tok_s);
        print_profile_table(&b->prof, b->step_s);
    }
    return 0;
}
