/* test_sweep_expand: the sweep spec (harness/run/sweep.h) without running anything: the number,
 * order (last axis fastest) and names of the cells, the axis values applied to each cell's
 * experiment (method on every stage, seed, order with the stage settings following their
 * domain, ood_severity, params paths after the other axes, threads, no "output"), the
 * experiment given by a path relative to the sweep file, and the errors, each naming the JSON
 * path (or the cell) and what is accepted; which cells share a base with "share_base". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check.h"
#include "harness/run/spec.h"
#include "harness/run/sweep.h"
#include "tests/tmpdir.h"

/* A two-stage experiment: add (5 steps of its own), then rev with sdft and replay. */
#define EXP                                                                                        \
    "{\"format\": \"caopd-experiment\", \"version\": 1, \"name\": \"e\", \"seed\": 9, "            \
    "\"threads\": 1, "                                                                             \
    "\"output\": \"runs/e\", \"model\": {\"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2}, "         \
    "\"base\": {\"steps\": 6, \"batch\": 4}, "                                                     \
    "\"defaults\": {\"method\": \"caopd\", \"steps\": 4, \"lr\": 0.001}, "                         \
    "\"stages\": [{\"domain\": \"add\", \"steps\": 5}, {\"domain\": \"rev\", \"method\": "         \
    "\"sdft\", "                                                                                   \
    "\"replay_frac\": 0.5}], "                                                                     \
    "\"eval\": {\"n\": 8, \"max_new\": 30, \"ood_kinds\": [\"ood_length\"], \"ood_severities\": "  \
    "[1]}}"

static char g_err[SWEEP_ERR_CAP];

static sweep *parse(const char *axes) {
    char json[8192];
    snprintf(json, sizeof json,
             "{\"format\": \"caopd-sweep\", \"version\": 1, \"name\": \"t\", \"experiment\": %s, "
             "\"axes\": %s}",
             EXP, axes);
    sweep *s = NULL;
    if (sweep_parse(json, NULL, NULL, &s, g_err, sizeof g_err)) return NULL;
    return s;
}

/* The cell's experiment through spec_parse. */
static int cell_spec(const sweep *s, int cell, int threads, spec *out) {
    char *json = NULL, e[SPEC_ERR_CAP];
    CHECK(sweep_cell_json(s, cell, threads, &json) == 0);
    int rc = json ? spec_parse(json, out, e, sizeof e) : -1;
    CHECK_MSG(rc == 0, "cell %d: %s", cell, e);
    CHECK_MSG(json && !strstr(json, "\"output\""), "cell %d keeps \"output\"", cell);
    free(json);
    return rc;
}

/* The error of a sweep with these axes (the parse must fail). */
static void expect_error(const char *axes, const char *want) {
    sweep *s = parse(axes);
    CHECK_MSG(s == NULL, "axes %s should be refused", axes);
    sweep_free(s);
    CHECK_MSG(strstr(g_err, want) != NULL, "axes %s:\n  got:      %s\n  expected: ...%s...", axes,
              g_err, want);
}

static void test_product_order_names(void) {
    sweep *s = parse("{\"method\": [\"caopd\", \"sdft\"], \"seed\": [1, 2, 3], "
                     "\"params\": {\"defaults.lr\": [1e-4, 3e-4]}}");
    CHECK_MSG(s != NULL, "%s", g_err);
    if (!s) return;
    CHECK_EQ_INT(sweep_n_cells(s), 12);
    CHECK_EQ_INT(sweep_n_axes(s), 3);
    CHECK_EQ_STR(sweep_axis_name(s, 0), "method");
    CHECK_EQ_STR(sweep_axis_name(s, 1), "seed");
    CHECK_EQ_STR(sweep_axis_name(s, 2), "defaults.lr");
    CHECK(sweep_axis_name(s, 3) == NULL);
    CHECK_EQ_STR(sweep_cell_name(s, 0), "000_method-caopd_seed-1_defaults.lr-0.0001");
    CHECK_EQ_STR(sweep_cell_name(s, 1),
                 "001_method-caopd_seed-1_defaults.lr-0.0003"); /* last axis fastest */
    CHECK_EQ_STR(sweep_cell_name(s, 2), "002_method-caopd_seed-2_defaults.lr-0.0001");
    CHECK_EQ_STR(sweep_cell_name(s, 6), "006_method-sdft_seed-1_defaults.lr-0.0001");
    CHECK_EQ_STR(sweep_cell_name(s, 11), "011_method-sdft_seed-3_defaults.lr-0.0003");
    CHECK(sweep_cell_name(s, 12) == NULL);
    CHECK_EQ_STR(sweep_cell_value(s, 7, 0), "sdft");
    CHECK_EQ_STR(sweep_cell_value(s, 7, 1), "1");
    CHECK_EQ_STR(sweep_cell_value(s, 7, 2), "0.0003");
    CHECK_EQ_STR(sweep_name(s), "t");
    CHECK_EQ_STR(sweep_output(s), "runs/t");
    CHECK(sweep_experiment_text(s) == NULL); /* inline */
    spec *sp = malloc(sizeof *sp);
    /* cell 7 = sdft, seed 1, lr 3e-4: the method on every stage, the params path applied */
    if (cell_spec(s, 7, 0, sp) == 0) {
        CHECK_EQ_INT(sp->seed, 1);
        CHECK_EQ_INT(sp->threads, 1);
        CHECK_NEAR(sp->stages[0].train.lr, 3e-4, 0);
        CHECK_NEAR(sp->stages[1].train.lr, 3e-4, 0);
        CHECK_EQ_STR(train_method_name(sp->stages[0].train.method), "sdft");
        CHECK_EQ_STR(train_method_name(sp->stages[1].train.method), "sdft");
        CHECK_EQ_INT(sp->stages[0].train.total_steps, 5); /* the stage's own settings stay */
        CHECK_NEAR(sp->stages[1].train.replay_frac, 0.5, 0);
    }
    /* cell 4 = caopd, seed 3: rev's own "sdft" is overridden */
    if (cell_spec(s, 4, 3, sp) == 0) {
        CHECK_EQ_INT(sp->seed, 3);
        CHECK_EQ_INT(sp->threads, 3);
        CHECK_EQ_STR(train_method_name(sp->stages[1].train.method), "caopd");
        CHECK_NEAR(sp->stages[1].train.lr, 1e-4, 0);
    }
    /* the same text every time */
    char *a = NULL, *b = NULL;
    CHECK(sweep_cell_json(s, 5, 2, &a) == 0 && sweep_cell_json(s, 5, 2, &b) == 0);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a), free(b);
    CHECK(sweep_cell_json(s, 12, 0, &a) == -1 && a == NULL);
    free(sp);
    sweep_free(s);
}

static void test_order_severity_paths(void) {
    /* order first, then params: stages[0] is the first stage of the cell's order */
    sweep *s = parse("{\"order\": [[\"rev\", \"add\"], [\"count\", \"add\", \"add\"]], "
                     "\"ood_severity\": [2, 3], "
                     "\"params\": {\"stages[0].steps\": [7], \"eval.n\": [16]}}");
    CHECK_MSG(s != NULL, "%s", g_err);
    if (!s) return;
    CHECK_EQ_INT(sweep_n_cells(s), 4);
    CHECK_EQ_STR(sweep_cell_name(s, 0), "000_order-rev+add_sev-2_stages0.steps-7_eval.n-16");
    CHECK_EQ_STR(sweep_cell_name(s, 3), "003_order-count+add+add_sev-3_stages0.steps-7_eval.n-16");
    CHECK_EQ_STR(sweep_cell_value(s, 2, 0), "count+add+add");
    spec *sp = malloc(sizeof *sp);
    if (cell_spec(s, 0, 0, sp) == 0) {
        CHECK_EQ_INT(sp->n_stages, 2);
        CHECK_EQ_STR(task_domain_name(sp->stages[0].domain), "rev");
        CHECK_EQ_STR(train_method_name(sp->stages[0].train.method),
                     "sdft"); /* rev's settings follow rev */
        CHECK_NEAR(sp->stages[0].train.replay_frac, 0.5, 0);
        CHECK_EQ_INT(sp->stages[0].train.total_steps, 7); /* the params path, after the order */
        CHECK_EQ_INT(sp->stages[1].train.total_steps, 5); /* add keeps its 5 steps */
        CHECK_EQ_INT(sp->eval_n, 16);
        CHECK_EQ_INT(sp->n_splits, 2);
        CHECK_EQ_INT(sp->splits[1].severity, 2);
    }
    if (cell_spec(s, 3, 0, sp) == 0) {
        CHECK_EQ_INT(sp->n_stages, 3);
        CHECK_EQ_STR(task_domain_name(sp->stages[0].domain),
                     "count"); /* not in the base: defaults */
        CHECK_EQ_INT(sp->stages[0].train.total_steps, 7);
        CHECK_EQ_STR(train_method_name(sp->stages[0].train.method), "caopd");
        CHECK_EQ_INT(sp->stages[1].train.total_steps, 5); /* add, 1st occurrence: the base's add */
        CHECK_EQ_INT(sp->stages[2].train.total_steps, 5); /* 2nd occurrence: the base's first add */
        CHECK_EQ_INT(sp->splits[1].severity, 3);
    }
    free(sp);
    sweep_free(s);

    /* a value that is not file-safe, and an object as a value */
    s = parse("{\"params\": {\"name\": [\"a b/c*d\"], \"base\": [{\"steps\": 2}]}}");
    CHECK_MSG(s != NULL, "%s", g_err);
    if (s) {
        CHECK_EQ_STR(sweep_cell_name(s, 0), "000_name-a-b-c-d_base-steps-2");
        CHECK_EQ_STR(sweep_cell_value(s, 0, 1), "{\"steps\":2}");
        const char *n = sweep_cell_name(s, 0);
        CHECK(strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") ==
              strlen(n));
    }
    sweep_free(s);

    /* no axes: one cell, the experiment itself */
    s = parse("{}");
    CHECK_MSG(s != NULL, "%s", g_err);
    if (s) {
        CHECK_EQ_INT(sweep_n_cells(s), 1);
        CHECK_EQ_STR(sweep_cell_name(s, 0), "000");
    }
    sweep_free(s);
}

/* The scratch directory of test_experiment_file; main ends with tmpdir_finish(g_dir). */
static char g_dir[512];

static void test_experiment_file(void) {
    char path[600];
    const char *dir = tmpdir_make(g_dir, sizeof g_dir, "test_sweep_expand");
    snprintf(path, sizeof path, "%s/exp.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(EXP, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    f = fopen(path, "w");
    fputs("{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": \"exp.json\", \"axes\": "
          "{\"seed\": [4]}}",
          f);
    fclose(f);
    sweep *s = NULL;
    CHECK_MSG(sweep_load(path, &s, g_err, sizeof g_err) == 0, "%s",
              g_err); /* relative to the sweep file */
    if (s) {
        CHECK_EQ_STR(sweep_name(s), "sweep");
        CHECK_EQ_STR(sweep_experiment_text(s), EXP);
        CHECK_EQ_STR(sweep_cell_name(s, 0), "000_seed-4");
    }
    sweep_free(s);
    /* the copy of a sweep directory is read instead of the path */
    s = NULL;
    CHECK(sweep_parse(
              "{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": \"nowhere.json\"}",
              "/nonexistent", EXP, &s, g_err, sizeof g_err) == 0);
    sweep_free(s);
    snprintf(path, sizeof path, "%s/bad.json", dir);
    f = fopen(path, "w");
    fputs("{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": \"missing.json\"}", f);
    fclose(f);
    s = NULL;
    CHECK(sweep_load(path, &s, g_err, sizeof g_err) == -1 && s == NULL);
    CHECK_MSG(strstr(g_err, "bad.json: experiment: cannot read 'missing.json'") &&
                  strstr(g_err, "relative to the sweep"),
              "%s", g_err);
    snprintf(path, sizeof path, "%s/none.json", dir);
    CHECK(sweep_load(path, &s, g_err, sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "none.json: cannot read the sweep file"), "%s", g_err);
    /* a sweep directory without its experiment copy */
    snprintf(path, sizeof path, "%s", dir);
    CHECK(sweep_load_dir(dir, &s, g_err, sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "experiment.json: missing or unreadable"), "%s", g_err);
}

static void test_errors(void) {
    expect_error("{\"seeds\": [1]}",
                 "axes.seeds: unknown axis; accepted: method, seed, order, ood_severity, params");
    expect_error("{\"method\": [\"caopd\", \"cao\"]}",
                 "axes.method[1]: unknown method 'cao'; accepted: caopd, sdft, sft");
    expect_error("{\"method\": \"caopd\"}",
                 "axes.method: expected an array of values, got a string");
    expect_error("{\"seed\": []}", "axes.seed: empty; list at least one value");
    expect_error("{\"seed\": [1, 2, 1]}",
                 "axes.seed[2]: the same value as axes.seed[0]; list each value once");
    expect_error("{\"seed\": [1.5]}",
                 "axes.seed[0]: expected an integer 0..9007199254740991, got a fractional number");
    expect_error("{\"ood_severity\": [4]}", "axes.ood_severity[0]: 4 is out of range 1..3");
    expect_error("{\"order\": [[\"add\", \"div\"]]}",
                 "axes.order[0][1]: unknown domain 'div'; accepted: add, sub, mul");
    expect_error("{\"order\": [[]]}", "axes.order[0]: 0 domains; give 1..32");
    expect_error("{\"params\": [1]}",
                 "axes.params: expected an object of JSON paths and value lists");
    expect_error("{\"params\": {\"defaults..lr\": [1]}}",
                 "axes.params[\"defaults..lr\"]: not a JSON path of the experiment: expected a key "
                 "at byte 10");
    expect_error(
        "{\"params\": {\"stages[x].steps\": [1]}}",
        "axes.params[\"stages[x].steps\"]: not a JSON path of the experiment: expected an index");
    expect_error("{\"params\": {\"threads\": [2]}}",
                 "axes.params[\"threads\"]: caopd sweep sets each cell's threads");
    expect_error("{\"params\": {\"output\": [\"x\"]}}",
                 "axes.params[\"output\"]: each cell runs in OUT/cells/<name>");
    /* paths that do not fit the experiment */
    expect_error("{\"params\": {\"stages[5].steps\": [1]}}",
                 "axes.params[\"stages[5].steps\"]: stages has 2 elements in this cell, so [5] "
                 "does not exist "
                 "(cell 0, 000_stages5.steps-1)");
    expect_error("{\"params\": {\"seed.x\": [1]}}",
                 "axes.params[\"seed.x\"]: seed is a number in the experiment, not an object");
    expect_error("{\"params\": {\"nothing[0]\": [1]}}",
                 "axes.params[\"nothing[0]\"]: nothing is not in the experiment");
    /* a value spec_parse refuses: the cell and the experiment's JSON path */
    expect_error("{\"seed\": [1], \"params\": {\"defaults.lr\": [0.5, 2]}}",
                 "cell 1 (001_seed-1_defaults.lr-2): defaults.lr: 2 is out of range (0, 1]");
    expect_error("{\"params\": {\"defaults.lrr\": [1]}}",
                 "cell 0 (000_defaults.lrr-1): defaults.lrr: unknown key; accepted:");
    expect_error("{\"seed\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], \"params\": {\"eval.n\": [1, 2, 3, "
                 "4, 5, 6, 7, 8, 9, 10], "
                 "\"base.steps\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], \"defaults.steps\": [1, 2, 3, "
                 "4, 5, 6, 7, 8, 9, 10], "
                 "\"eval.batch\": [1, 2]}}",
                 "axes: 20000 cells; at most 10000 per sweep");
    /* the sweep file itself */
    sweep *s = NULL;
    CHECK(sweep_parse("{\"format\": \"caopd-experiment\", \"version\": 1}", NULL, NULL, &s, g_err,
                      sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "format: expected \"caopd-sweep\", got \"caopd-experiment\"; this file "
                            "is not a caopd sweep spec "
                            "(run an experiment with caopd run)"),
              "%s", g_err);
    CHECK(sweep_parse("{\"format\": \"caopd-sweep\", \"version\": 2}", NULL, NULL, &s, g_err,
                      sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err,
                     "version: 2 is not supported; this build reads version 1 (use a newer caopd)"),
              "%s", g_err);
    CHECK(sweep_parse("{\"format\": \"caopd-sweep\", \"version\": 1}", NULL, NULL, &s, g_err,
                      sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "experiment: missing; give the base experiment inline"), "%s", g_err);
    CHECK(sweep_parse(
              "{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": {}, \"axis\": {}}",
              NULL, NULL, &s, g_err, sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "axis: unknown key; accepted: format, version, name, description, "
                            "output, experiment, axes"),
              "%s", g_err);
    CHECK(sweep_parse("{\"format\": \"caopd-sweep\",\n \"version\": 1,,}", NULL, NULL, &s, g_err,
                      sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "(top level): not valid JSON (error near line 2, column"), "%s", g_err);
    /* the base experiment is validated first, with its own path */
    CHECK(sweep_parse("{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": {\"format\": "
                      "\"caopd-experiment\", "
                      "\"version\": 1, \"stages\": [{\"domain\": \"div\"}]}}",
                      NULL, NULL, &s, g_err, sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "experiment: stages[0].domain: unknown domain 'div'"), "%s", g_err);
    /* a severity axis needs OOD kinds */
    CHECK(sweep_parse("{\"format\": \"caopd-sweep\", \"version\": 1, \"experiment\": {\"format\": "
                      "\"caopd-experiment\", "
                      "\"version\": 1, \"stages\": [{\"domain\": \"add\"}]}, \"axes\": "
                      "{\"ood_severity\": [1]}}",
                      NULL, NULL, &s, g_err, sizeof g_err) == -1);
    CHECK_MSG(strstr(g_err, "axes.ood_severity: the experiment evaluates no OOD split "
                            "(eval.ood_kinds is empty or missing)"),
              "%s", g_err);
    CHECK(s == NULL);
}

static sweep *parse_shared(const char *share, const char *axes) {
    char json[8192];
    snprintf(json, sizeof json,
             "{\"format\": \"caopd-sweep\", \"version\": 1, \"name\": \"t\", \"share_base\": %s, "
             "\"experiment\": %s, \"axes\": %s}",
             share, EXP, axes);
    sweep *s = NULL;
    if (sweep_parse(json, NULL, NULL, &s, g_err, sizeof g_err)) return NULL;
    return s;
}

/* "share_base": which cells share a base, the bases' names and experiments, the cells'
 * base.checkpoint; cells that must train their own base; the key's validation. */
static void test_share_base(void) {
    /* method x seed x eval.n: the base depends on the seed only */
    sweep *s = parse_shared(
        "true",
        "{\"method\": [\"caopd\", \"sdft\"], \"seed\": [1, 2], \"params\": {\"eval.n\": [4, 8]}}");
    CHECK_MSG(s != NULL, "%s", g_err);
    if (!s) return;
    CHECK_EQ_INT(sweep_share_base(s), 1);
    CHECK_EQ_INT(sweep_n_bases(s), 2);
    CHECK_EQ_STR(sweep_base_name(s, 0), "000_seed-1");
    CHECK_EQ_STR(sweep_base_name(s, 1), "002_seed-2");
    CHECK(sweep_base_name(s, 2) == NULL);
    static const int want[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    for (int c = 0; c < 8; c++)
        CHECK_MSG(sweep_cell_base(s, c) == want[c], "cell %d: base %d", c, sweep_cell_base(s, c));
    /* the base: a base-only experiment with the cell's seed, model and base, threads as asked */
    char *json = NULL, e[SPEC_ERR_CAP];
    spec sp;
    CHECK(sweep_base_json(s, 1, 3, &json) == 0);
    CHECK_MSG(json && spec_parse(json, &sp, e, sizeof e) == 0, "%s", e);
    CHECK_EQ_INT(sp.n_stages, 0);
    CHECK_EQ_INT(sp.seed, 2);
    CHECK_EQ_INT(sp.threads, 3);
    CHECK_EQ_INT(sp.base_train.total_steps, 6);
    CHECK_EQ_INT(sp.model.n_embd, 16);
    free(json);
    /* a cell names its base by absolute path, once the sweep directory is known */
    CHECK(sweep_cell_json(s, 5, 1, &json) == -1 && json == NULL);
    CHECK_MSG(sweep_set_dir(s, "out/sw/", g_err, sizeof g_err) == 0, "%s", g_err);
    char cwd[2048], want_ckpt[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(want_ckpt, sizeof want_ckpt, "%s/out/sw/bases/000_seed-1/checkpoint.h5", cwd);
    *strstr(want_ckpt, "/bases/") = '\0';
    CHECK_EQ_STR(sweep_dir(s), want_ckpt);
    snprintf(want_ckpt, sizeof want_ckpt, "%s/out/sw/bases/000_seed-1/checkpoint.h5", cwd);
    if (cell_spec(s, 5, 1, &sp) == 0) {
        CHECK_EQ_STR(sp.base_checkpoint, want_ckpt);
        CHECK_EQ_INT(sp.base_train.total_steps, 0);
        CHECK_EQ_INT(sp.seed, 1);
        CHECK_EQ_INT(sp.eval_n, 8);
        CHECK_EQ_INT(sp.stages[0].train.method, TRAIN_METHOD_SDFT);
    }
    sweep_free(s);

    /* no sharing: without the key, when false, for a base of one cell, for cells whose first
     * stage keeps its teacher or optimizer, and for untrained or loaded bases */
    s = parse("{\"method\": [\"caopd\", \"sdft\"]}");
    CHECK(s && sweep_share_base(s) == 0 && sweep_n_bases(s) == 0 && sweep_cell_base(s, 0) == -1);
    sweep_free(s);
    s = parse_shared("false", "{\"method\": [\"caopd\", \"sdft\"]}");
    CHECK(s && sweep_share_base(s) == 0 && sweep_n_bases(s) == 0);
    sweep_free(s);
    s = parse_shared("true", "{\"seed\": [1, 2]}");
    CHECK(s && sweep_n_bases(s) == 0 && sweep_cell_base(s, 0) == -1 && sweep_cell_base(s, 1) == -1);
    sweep_free(s);
    s = parse_shared(
        "true",
        "{\"method\": [\"caopd\", \"sdft\"], \"params\": {\"stages[0].reset_optimizer\": [true, "
        "false], \"base.steps\": [0, 6, 7]}}");
    CHECK_MSG(s != NULL, "%s", g_err);
    if (s) { /* cells: method x reset_optimizer x base.steps; shared: reset_optimizer true, steps 6
                or 7 */
        CHECK_EQ_INT(sweep_n_bases(s), 2);
        CHECK_EQ_STR(sweep_base_name(s, 0), "001_stages0.reset_optimizer-true_base.steps-6");
        CHECK_EQ_STR(sweep_base_name(s, 1), "002_stages0.reset_optimizer-true_base.steps-7");
        static const int want2[12] = {-1, 0, 1, -1, -1, -1, -1, 0, 1, -1, -1, -1};
        for (int c = 0; c < 12; c++)
            CHECK_MSG(sweep_cell_base(s, c) == want2[c], "cell %d: base %d", c,
                      sweep_cell_base(s, c));
    }
    sweep_free(s);
    s = parse_shared("true", "{\"method\": [\"caopd\", \"sdft\"], \"params\": {\"base\": "
                             "[{\"checkpoint\": \"b.h5\"}]}}");
    CHECK(s && sweep_n_bases(s) == 0);
    sweep_free(s);
    s = parse_shared(
        "true",
        "{\"method\": [\"caopd\", \"sdft\"], \"params\": {\"stages[0].sync_teacher\": [false]}}");
    CHECK(s && sweep_n_bases(s) == 0);
    sweep_free(s);

    /* the key must be a boolean */
    s = parse_shared("\"yes\"", "{\"method\": [\"caopd\"]}");
    CHECK(s == NULL);
    CHECK_MSG(strstr(g_err, "share_base: expected true or false, got a string") != NULL, "%s",
              g_err);
    s = parse_shared("1", "{\"method\": [\"caopd\"]}");
    CHECK(s == NULL);
    CHECK_MSG(strstr(g_err, "share_base: expected true or false, got a number") != NULL, "%s",
              g_err);
}

/* Every shipped sweep (the quickstart among them) loads, and each of its cells is a valid
 * experiment spec (spec_parse also draws the exact evaluation questions for its max_new check). */
static void test_shipped_sweeps(void) {
    static const char *const files[] = {
        "../experiments/quickstart.json", "../experiments/paper-effect.json",
        "../experiments/paper-effect-seeds.json", "../experiments/ood-sweep.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        sweep *s = NULL;
        CHECK_MSG(sweep_load(files[i], &s, g_err, sizeof g_err) == 0, "%s", g_err);
        if (s && sweep_share_base(s))
            CHECK_MSG(sweep_set_dir(s, g_dir, g_err, sizeof g_err) == 0, "%s", g_err);
        for (int c = 0; s && c < sweep_n_cells(s); c++) {
            char *json = NULL;
            spec sp;
            CHECK(sweep_cell_json(s, c, 1, &json) == 0);
            CHECK_MSG(json && spec_parse(json, &sp, g_err, sizeof g_err) == 0, "%s cell %d: %s",
                      files[i], c, g_err);
            free(json);
        }
        if (i == 0 && s) { /* the quickstart: caopd and sdft from the shipped base */
            char *json = NULL;
            CHECK_EQ_INT(sweep_n_cells(s), 2);
            CHECK(sweep_cell_json(s, 0, 1, &json) == 0 && json &&
                  strstr(json, "experiments/bases/base-small.h5"));
            free(json);
        }
        sweep_free(s);
    }
}

int main(void) {
    test_share_base();
    test_product_order_names();
    test_order_severity_paths();
    test_experiment_file();
    test_shipped_sweeps(); /* after test_experiment_file, which makes g_dir */
    test_errors();
    tmpdir_finish(g_dir);
    return check_report("test_sweep_expand");
}
