/* test_spec: the experiment spec: defaults, inheritance of stage hyper-parameters from
 * "defaults", and every kind of validation error with its exact message (JSON path, what is
 * wrong, the accepted values). */
#include "tests/check.h"
#include "harness/run/spec.h"
#include "tasks/tokenizer.h"

#include <stdlib.h>

static spec g_spec;

/* Parses text and checks the error message (expect NULL: must parse). */
static void expect(const char *text, const char *msg) {
    char err[SPEC_ERR_CAP] = "";
    int rc = spec_parse(text, &g_spec, err, sizeof err);
    if (!msg) {
        CHECK_MSG(rc == 0, "should parse: %s\n  error: %s", text, err);
        return;
    }
    CHECK_MSG(rc == -1, "should fail: %s", text);
    CHECK_EQ_STR(err, msg);
}

#define HEAD "{\"format\": \"caopd-experiment\", \"version\": 1, "
#define STAGES "\"stages\": [{\"domain\": \"add\"}]"

static void test_defaults_and_inheritance(void) {
    expect(HEAD STAGES "}", NULL);
    CHECK_EQ_STR(g_spec.name, "run");
    CHECK_EQ_STR(g_spec.output, "runs/run");
    CHECK_EQ_INT(g_spec.seed, 1);
    CHECK_EQ_INT(g_spec.threads, 1);
    CHECK_EQ_INT(g_spec.model.vocab, TOK_VOCAB_SIZE);
    CHECK_EQ_INT(g_spec.n_stages, 1);
    CHECK_EQ_INT(g_spec.n_splits, 1);
    CHECK_EQ_INT(g_spec.splits[0].split, TASK_SPLIT_TEST);
    CHECK_EQ_INT(g_spec.stages[0].train.method, TRAIN_METHOD_CAOPD);
    CHECK_EQ_INT(g_spec.stages[0].sync_teacher, 1);
    CHECK_EQ_INT(g_spec.base_train.total_steps, 600);
    CHECK_EQ_INT(g_spec.snapshot_every, 0);

    expect(HEAD "\"name\": \"q\", \"seed\": 7, \"threads\": 2, "
                "\"defaults\": {\"method\": \"sdft\", \"lr\": 0.002, \"k\": 4, \"steps\": 9}, "
                "\"stages\": [{\"domain\": \"add\"}, {\"domain\": \"rev\", \"method\": \"sft\", "
                "\"k\": 2}], "
                "\"eval\": {\"n\": 5, \"ood_kinds\": [\"ood_value\", \"ood_format\"], "
                "\"ood_severities\": [3, 1]}}",
           NULL);
    CHECK_EQ_STR(g_spec.output, "runs/q");
    CHECK_EQ_INT(g_spec.seed, 7);
    CHECK_EQ_INT(g_spec.n_stages, 2);
    CHECK_EQ_INT(g_spec.stages[0].train.method, TRAIN_METHOD_SDFT); /* inherited */
    CHECK_EQ_INT(g_spec.stages[0].train.opd.k, 4);
    CHECK_EQ_INT(g_spec.stages[0].train.total_steps, 9);
    CHECK_NEAR(g_spec.stages[0].train.lr, 0.002, 0);
    CHECK_EQ_INT(g_spec.stages[1].domain, TASK_DOMAIN_REV);
    CHECK_EQ_INT(g_spec.stages[1].train.method, TRAIN_METHOD_SFT); /* overridden */
    CHECK_EQ_INT(g_spec.stages[1].train.opd.k, 2);
    CHECK_NEAR(g_spec.stages[1].train.lr, 0.002, 0);
    CHECK_EQ_INT(g_spec.n_splits, 5); /* test + 2 kinds x 2 severities, in the given order */
    char nm[32];
    CHECK_EQ_STR(spec_split_name(g_spec.splits[1], nm, sizeof nm), "ood_value_3");
    CHECK_EQ_STR(spec_split_name(g_spec.splits[4], nm, sizeof nm), "ood_format_1");
    task_domain d[TASK_N_DOMAINS];
    CHECK_EQ_INT(spec_eval_domains(&g_spec, d), 2);

    expect(HEAD "\"base\": {\"p_no_note\": 0.25, \"student_domains\": [\"add\", \"sub\"], "
                "\"focus\": \"count\", \"focus_share\": 0.5}, " STAGES "}",
           NULL);
    CHECK_NEAR(g_spec.base_data.p_no_note, 0.25, 0);
    CHECK_EQ_INT(g_spec.base_data.student_domains, 1u << TASK_DOMAIN_ADD | 1u << TASK_DOMAIN_SUB);
    CHECK_EQ_INT(g_spec.base_data.focus, TASK_DOMAIN_COUNT_CHAR);
    CHECK_NEAR(g_spec.base_data.focus_share, 0.5, 0);
    /* room for the confidence: completions cut by max_new would read "0.38" as "0." */
    /* named where the user set it: in "defaults", in the stage, or nowhere (the default) */
    expect(HEAD "\"defaults\": {\"max_new\": 8}, " STAGES "}",
           "defaults.max_new: 8 tokens (inherited by stages[0]) cut add's completions, whose "
           "confidence then reads "
           "wrong (answer '1487' needs 21: answer, newline, 'Confidence: X.XX'); set "
           "defaults.max_new to at least 21");
    expect(HEAD "\"defaults\": {\"max_new\": 30}, \"stages\": [{\"domain\": \"count\"}, "
                "{\"domain\": \"add\", "
                "\"max_new\": 9}]}",
           "stages[1].max_new: 9 tokens cut add's completions, whose confidence then reads wrong "
           "(answer '1487' "
           "needs 21: answer, newline, 'Confidence: X.XX'); set stages[1].max_new to at least 21");
    expect(HEAD "\"stages\": [{\"domain\": \"count\"}, {\"domain\": \"rev\"}], \"eval\": "
                "{\"max_new\": 40}}",
           NULL);
    CHECK_EQ_INT(g_spec.stages[1].train.opd.max_new, 24); /* the built-in default fits rev's 23 */
    CHECK_EQ_INT(g_spec.stages[1].max_new_source, SPEC_FROM_DEFAULT);
    /* eval.max_new not given: the longest completion asked for + 4, at least 24 */
    expect(HEAD "\"stages\": [{\"domain\": \"count\"}]}", NULL);
    CHECK_EQ_INT(g_spec.eval.max_new, 24);
    expect(HEAD "\"stages\": [{\"domain\": \"rev\"}], \"eval\": {\"ood_kinds\": [\"ood_length\"], "
                "\"ood_severities\": [3]}}",
           NULL);
    CHECK_EQ_INT(g_spec.eval.max_new, 29 + SPEC_EVAL_MAX_NEW_SLACK); /* rev ood_length 3 needs 29 */
    expect(HEAD "\"stages\": [{\"domain\": \"rev\"}], \"eval\": {\"max_new\": 30, \"ood_kinds\": "
                "[\"ood_length\"], \"ood_severities\": [3]}}",
           NULL);
    CHECK_EQ_INT(g_spec.eval.max_new, 30); /* given: kept */
    expect(HEAD "\"stages\": [{\"domain\": \"count\"}], \"eval\": {\"max_new\": 17}}",
           "eval.max_new: 17 tokens cut completions on count test, whose confidence then reads "
           "wrong (answer '2' "
           "needs 18: answer, newline, 'Confidence: X.XX'); set eval.max_new to at least 18");
    expect(HEAD "\"stages\": [{\"domain\": \"count\"}], \"eval\": {\"max_new\": 18}}", NULL);
    expect(HEAD "\"base\": {\"focus_share\": 0.5}, " STAGES "}",
           "base.focus_share: given without base.focus; name the focus domain too");
    expect(HEAD "\"base\": {\"focus\": \"cnt\", \"focus_share\": 0.5}, " STAGES "}",
           "base.focus: unknown domain 'cnt'; accepted: add, sub, mul, mod, sort, rev, count");
    expect(HEAD "\"base\": {\"student_domains\": [\"count\"], \"focus\": \"count\", "
                "\"focus_share\": 0.5}, " STAGES "}",
           "base: no student-format domain is left besides the focus domain count; add student "
           "domains or set focus_share to 1");

    expect(HEAD "\"base\": {\"checkpoint\": \"x.h5\"}, " STAGES "}", NULL);
    CHECK_EQ_INT(g_spec.base_train.total_steps, 0);
    CHECK_EQ_STR(g_spec.base_checkpoint, "x.h5");
}

static void test_errors(void) {
    /* not a spec */
    expect("{\"format\": \"caopd-experiment\",\n \"version\": 1,,}",
           "(top level): not valid JSON (error near line 2, column 16); check commas, quotes and "
           "brackets there");
    expect("[1]", "(top level): expected a JSON object, got an array");
    expect("{\"version\": 1}",
           "format: missing; a spec starts with \"format\": \"caopd-experiment\", \"version\": 1");
    expect("{\"format\": \"caopd-sweep\", \"version\": 1}",
           "format: expected \"caopd-experiment\", got \"caopd-sweep\"; this file is not a caopd "
           "experiment spec "
           "(run a sweep with caopd sweep)");
    expect("{\"format\": \"caopd-results\", \"version\": 1}",
           "format: expected \"caopd-experiment\", got \"caopd-results\"; this file is not a caopd "
           "experiment spec");
    expect("{\"format\": \"caopd-experiment\"}",
           "version: missing; this build reads \"version\": 1");
    expect("{\"format\": \"caopd-experiment\", \"version\": 2}",
           "version: 2 is not supported; this build reads version 1 (use a newer caopd)");
    expect("{\"format\": \"caopd-experiment\", \"version\": \"1\"}",
           "version: expected an integer, got a string");
    /* unknown keys, duplicates */
    expect(HEAD "\"sede\": 1, " STAGES "}", "sede: unknown key; accepted: format, version, name, "
                                            "seed, threads, output, model, base, defaults, "
                                            "stages, eval, snapshots, log");
    expect(HEAD "\"seed\": 1, \"seed\": 2, " STAGES "}", "seed: key given twice; give it once");
    expect(HEAD "\"model\": {\"width\": 16}, " STAGES "}",
           "model.width: unknown key; accepted: n_embd, n_layer, n_head, block_size");
    expect(HEAD "\"stages\": [{\"domain\": \"add\"}, {\"domain\": \"sub\", \"lrr\": 1}]}",
           "stages[1].lrr: unknown key; accepted: domain, method, steps, batch, lr, warmup, "
           "min_lr_frac, k, "
           "temperature, max_new, teacher, divergence, jsd_beta, skip_tokens, ema_alpha, "
           "clip_norm, weight_decay, "
           "beta1, beta2, replay_frac, sync_teacher, reset_optimizer");
    expect(
        HEAD "\"defaults\": {\"domain\": \"add\"}, " STAGES "}",
        "defaults.domain: unknown key; accepted: method, steps, batch, lr, warmup, min_lr_frac, k, "
        "temperature, max_new, teacher, divergence, jsd_beta, skip_tokens, ema_alpha, clip_norm, "
        "weight_decay, "
        "beta1, beta2, replay_frac, sync_teacher, reset_optimizer");
    /* wrong types */
    expect(HEAD "\"seed\": \"1\", " STAGES "}", "seed: expected an integer, got a string");
    expect(HEAD "\"threads\": 1.5, " STAGES "}",
           "threads: expected an integer, got a fractional number");
    expect(HEAD "\"model\": [], " STAGES "}", "model: expected an object, got an array");
    expect(HEAD "\"stages\": {}}", "stages: expected an array of stage objects, got an object");
    expect(HEAD "\"stages\": [\"add\"]}",
           "stages[0]: expected an object with at least \"domain\", got a string");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"lr\": \"fast\"}]}",
           "stages[0].lr: expected a number, got a string");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"sync_teacher\": 1}]}",
           "stages[0].sync_teacher: expected true or false, got a number");
    expect(HEAD "\"name\": 3, " STAGES "}", "name: expected a string, got a number");
    /* out of range */
    expect(HEAD "\"threads\": 0, " STAGES "}", "threads: 0 is out of range 1..256");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"lr\": 0}]}",
           "stages[0].lr: 0 is out of range (0, 1]");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"k\": 65}]}",
           "stages[0].k: 65 is out of range 1..64");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"jsd_beta\": 1}]}",
           "stages[0].jsd_beta: 1 is out of range (0, 1)");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"beta2\": 1}]}",
           "stages[0].beta2: 1 is out of range [0, 1)");
    expect(HEAD "\"base\": {\"p_teacher\": 1.5}, " STAGES "}",
           "base.p_teacher: 1.5 is out of range [0, 1]");
    expect(HEAD "\"eval\": {\"n\": 0}, " STAGES "}", "eval.n: 0 is out of range 1..1000000");
    expect(HEAD "\"eval\": {\"ood_kinds\": [\"ood_length\"], \"ood_severities\": [4]}, " STAGES "}",
           "eval.ood_severities[0]: 4 is out of range 1..3");
    expect(HEAD "\"snapshots\": {\"every_steps\": -1}, " STAGES "}",
           "snapshots.every_steps: -1 is out of range 0..10000000");
    expect(HEAD "\"model\": {\"n_embd\": 30, \"n_head\": 4}, " STAGES "}",
           "model.n_embd: 30 is not a multiple of model.n_head (4)");
    /* zero stages: a base-only run, which must train its base */
    expect(HEAD "\"stages\": []}", NULL);
    CHECK_EQ_INT(g_spec.n_stages, 0);
    CHECK_EQ_INT(g_spec.base_train.total_steps, 600);
    expect(HEAD "\"base\": {\"steps\": 0}, \"stages\": []}",
           "stages: empty, and the base is not trained (base.steps is 0), so the run would do "
           "nothing; list the "
           "domain stages, e.g. \"stages\": [{\"domain\": \"add\"}], or train a base (base.steps > "
           "0)");
    expect(HEAD "\"base\": {\"checkpoint\": \"b.h5\"}, \"stages\": []}",
           "stages: empty, and the base is not trained (it is loaded from base.checkpoint), so the "
           "run would do "
           "nothing; list the domain stages, e.g. \"stages\": [{\"domain\": \"add\"}], or train a "
           "base "
           "(base.steps > 0)");
    /* unknown names */
    expect(HEAD "\"stages\": [{\"domain\": \"add\"}, {\"domain\": \"add\"}, {\"domain\": \"mul\", "
                "\"method\": \"cao\"}]}",
           "stages[2].method: unknown method 'cao'; accepted: caopd, sdft, sft");
    expect(
        HEAD "\"stages\": [{\"domain\": \"div\"}]}",
        "stages[0].domain: unknown domain 'div'; accepted: add, sub, mul, mod, sort, rev, count");
    expect(HEAD "\"stages\": [{\"method\": \"sft\"}]}",
           "stages[0].domain: missing; each stage names its domain (accepted: add, sub, mul, mod, "
           "sort, rev, count)");
    expect(HEAD "\"defaults\": {\"teacher\": \"oracle\"}, " STAGES "}",
           "defaults.teacher: unknown teacher mode 'oracle'; accepted: demo, correct_solution");
    expect(HEAD "\"stages\": [{\"domain\": \"add\", \"divergence\": \"kl\"}]}",
           "stages[0].divergence: unknown divergence 'kl'; accepted: forward_kl, reverse_kl, jsd");
    expect(HEAD "\"eval\": {\"ood_kinds\": [\"ood_lenght\"]}, " STAGES "}",
           "eval.ood_kinds[0]: unknown OOD kind 'ood_lenght'; accepted: ood_length, ood_value, "
           "ood_format");
    expect(HEAD "\"eval\": {\"ood_kinds\": [\"ood_value\", \"ood_value\"]}, " STAGES "}",
           "eval.ood_kinds[1]: 'ood_value' is listed twice");
    expect(HEAD "\"base\": {\"domains\": [\"add\", \"xyz\"]}, " STAGES "}",
           "base.domains[1]: unknown domain 'xyz'; accepted: add, sub, mul, mod, sort, rev, count");
    expect(HEAD "\"base\": {\"checkpoint\": \"b.h5\", \"steps\": 10}, " STAGES "}",
           "base.steps: 10 base steps with base.checkpoint; a loaded base is not trained (set 0 or "
           "leave one of the "
           "keys out)");
    expect("{\"format\": \"caopd-experiment\", \"version\": 1}",
           "stages: missing; list the domain stages, e.g. \"stages\": [{\"domain\": \"add\"}]");
}

static void test_load(void) {
    spec s;
    char *text = (char *)1, err[SPEC_ERR_CAP];
    CHECK(spec_load("/nonexistent/spec.json", &s, &text, err, sizeof err) == -1);
    CHECK(text == NULL);
    CHECK_EQ_STR(err, "/nonexistent/spec.json: cannot open the spec file; check the path");
    /* the shipped scratch experiment parses (the quickstart is a sweep: test_sweep_expand) */
    CHECK_MSG(spec_load("../experiments/scratch.json", &s, &text, err, sizeof err) == 0, "%s", err);
    free(text);
    CHECK_EQ_INT(s.n_stages, 3);
}

int main(void) {
    test_defaults_and_inheritance();
    test_errors();
    test_load();
    return check_report("test_spec");
}
