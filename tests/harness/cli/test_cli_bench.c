/* test_cli_bench: `caopd bench --json` as a process, on a tiny configuration: one JSON object
 * with every documented key, positive rates, the CaOPD step's token counts consistent with its
 * batch; and a bad option exits 2 with a message. Figures themselves are not judged here. */
#include "tests/harness/run/run_testutil.h"

#include <cjson/cJSON.h>

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    CHECK_MSG(cJSON_IsNumber(v), "key %s missing or not a number", key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int main(void) {
    make_tmpdir("caopd_cli_bench");
    const char *args[] = {"bench",
                          "--json",
                          "--threads",
                          "1",
                          "--width",
                          "16",
                          "--layers",
                          "1",
                          "--heads",
                          "2",
                          "--batch",
                          "2",
                          "--seq",
                          "16",
                          "--steps",
                          "1",
                          "--decode-batch",
                          "2",
                          "--decode-new",
                          "3",
                          "--opd-prompts",
                          "2",
                          "--k",
                          "2",
                          "--opd-new",
                          "4",
                          "--opd-steps",
                          "1",
                          NULL};
    int st = run_caopd(NULL, args);
    char p[700];
    snprintf(p, sizeof p, "%s/out.txt", g_tmp);
    char *out = slurp(p);
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    char *err = slurp(p);
    CHECK_MSG(exited(st, 0), "bench failed: %s", err);
    cJSON *j = cJSON_Parse(out);
    CHECK_MSG(j != NULL, "stdout is not one JSON object: %s", out);
    if (j) {
        const char *rates[] = {"matmul_gflops",  "matmul_gflops_run_threads",
                               "train_step_s",   "train_tok_s",
                               "train_gflops",   "decode_tok_s",
                               "recompute_tok_s"};
        for (size_t i = 0; i < sizeof rates / sizeof *rates; i++)
            CHECK_MSG(num(j, rates[i]) > 0, "%s not positive", rates[i]);
        CHECK_EQ_INT(num(j, "train_tokens_per_step"), 32);
        CHECK_EQ_INT(num(j, "threads"), 1);
        CHECK_EQ_INT(num(j, "blas_threads"), 1);
        const cJSON *opd = cJSON_GetObjectItemCaseSensitive(j, "opd_step");
        CHECK_MSG(cJSON_IsObject(opd), "opd_step missing");
        if (cJSON_IsObject(opd)) {
            CHECK_EQ_INT(num(opd, "new_tokens"), 2 * 2 * 4);
            CHECK_EQ_INT(num(opd, "vocab"), 99);
            CHECK(num(opd, "prompt_tokens") > 2);
            CHECK(num(opd, "teacher_prompt_tokens") > num(opd, "prompt_tokens"));
            CHECK(num(opd, "step_s") > 0 && num(opd, "rollout_tok_s") > 0 &&
                  num(opd, "teacher_tok_s") > 0 && num(opd, "train_tok_s") > 0);
            CHECK(num(opd, "step_s") >=
                  num(opd, "rollout_s") + num(opd, "teacher_s") + num(opd, "train_s") - 1e-9);
        }
        cJSON_Delete(j);
    }
    free(out), free(err);

    /* --profile: the CaOPD step's profile object (--opd-only), then the base step's (--base-only)
     */
    const char *prof_args[2][24] = {
        {"bench",       "--json", "--threads",     "1",         "--width", "16", "--layers",  "1",
         "--heads",     "2",      "--opd-prompts", "2",         "--k",     "2",  "--opd-new", "4",
         "--opd-steps", "1",      "--opd-only",    "--profile", NULL},
        {"bench", "--json", "--threads", "1", "--width", "16", "--layers", "1", "--heads", "2",
         "--base-batch", "2", "--base-steps", "1", "--base-only", "--profile", NULL}};
    for (int run = 0; run < 2; run++) {
        st = run_caopd(NULL, prof_args[run]);
        snprintf(p, sizeof p, "%s/out.txt", g_tmp);
        out = slurp(p);
        snprintf(p, sizeof p, "%s/err.txt", g_tmp);
        err = slurp(p);
        CHECK_MSG(exited(st, 0), "bench --profile failed: %s", err);
        j = cJSON_Parse(out);
        CHECK_MSG(j != NULL, "stdout is not one JSON object: %s", out);
        const char *part = run == 0 ? "opd_step" : "base_step",
                   *other = run == 0 ? "base_step" : "opd_step";
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, part);
        CHECK_MSG(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, other)),
                  "%s measured under --%s-only", other, run == 0 ? "opd" : "base");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "profile");
        CHECK_MSG(cJSON_IsObject(pr), "%s.profile missing", part);
        if (cJSON_IsObject(pr)) {
            CHECK(num(pr, "op_calls") > 0 && num(pr, "flops") > 0 && num(pr, "flop_limit_s") > 0 &&
                  num(pr, "step_s") > 0);
            const cJSON *train = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(pr, "phases"), "train");
            CHECK_MSG(cJSON_IsObject(train), "profile.phases.train missing");
            if (cJSON_IsObject(train)) {
                CHECK(num(train, "calls") > 0 && num(train, "wall_s") > 0);
                CHECK(num(train, "ops_s") <= num(train, "wall_s") + 1e-4);
                const cJSON *mm = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(train, "kinds"), "matmul");
                CHECK_MSG(cJSON_IsObject(mm) && num(mm, "calls") > 0, "train matmul calls missing");
            }
        }
        cJSON_Delete(j);
        free(out), free(err);
    }

    const char *bad[] = {"bench", "--frobnicate", NULL};
    st = run_caopd(NULL, bad);
    snprintf(p, sizeof p, "%s/err.txt", g_tmp);
    err = slurp(p);
    CHECK_MSG(exited(st, 2), "a bad option should exit 2");
    CHECK_MSG(strstr(err, "--frobnicate") != NULL, "message does not name the option: %s", err);
    free(err);

    /* Bad option values, checked the same way by every subcommand (harness/cli/cli_args.h). */
    const struct {
        const char *const args[5];
        const char *want;
    } values[] = {
        {{"bench", "--threads", "2x", NULL},
         "caopd bench: --threads expects an integer 1..1073741824, got '2x'"},
        {{"sweep", "x.json", "-j", "0", NULL},
         "caopd sweep: -j expects an integer 1..256, got '0'"},
        {{"bases", "-n", "", NULL}, "caopd bases: -n expects an integer 1..1000000, got ''"},
        {{"train-demo", "--ema", "1.5", NULL},
         "caopd train-demo: --ema expects a number in [0, 1], got '1.5'"},
        {{"train-demo", "--seed", "-1", NULL},
         "caopd train-demo: --seed expects an unsigned integer, got '-1'"},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        st = run_caopd(NULL, values[i].args);
        err = slurp(p);
        CHECK_MSG(exited(st, 2), "%s %s: status %d", values[i].args[0], values[i].args[1], st);
        CHECK_MSG(strstr(err, values[i].want) != NULL, "expected '%s' in\n%s", values[i].want, err);
        free(err);
    }
    tmpdir_finish(g_tmp);
    return check_report("test_cli_bench");
}
