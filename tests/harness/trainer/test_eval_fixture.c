/* The expected-confidence readout (eval_expected, docs/trainer.md §6) against the PyTorch
 * reference of tests/fixtures/make_expected_fixture.py: a hand-set tiny model on the real
 * vocabulary and six (prompt, completion) pairs, whose readout and format mass PyTorch computes
 * by brute force over the 1000 strings "D.DD" EOS in float64. */
#include "tests/check.h"
#include "harness/trainer/evaluate.h"
#include "tests/fixtures/fixture.h"
#include "tests/harness/model/gpt_testutil.h"

#include <stdlib.h>
#include <string.h>

/* The C side runs float32 logits; PyTorch float64 on the same float32 weights. */
#define TOL_EXPECTED 2e-5 /* abs */
#define TOL_MASS_REL 2e-5 /* relative to the reference mass */

/* Row i of a NUL-padded (N, W) table of byte codes as a C string. */
static char *text_row(const fx_entry *e, int64_t i) {
    const int64_t W = e->dims[1];
    const int64_t *c = (const int64_t *)e->data + i * W;
    char *s = calloc((size_t)W + 1, 1);
    for (int64_t j = 0; s && j < W && c[j]; j++)
        s[j] = (char)c[j];
    return s;
}

int main(void) {
    tw_set_num_threads(1);
    char err[512];
    fx_file *fx = NULL;
    if (fx_load(FX_FIXTURE_DIR "/expected_readout.bin", &fx, err, sizeof err) != FX_OK) {
        CHECK_MSG(0, "%s", err);
        return check_report("test_eval_fixture");
    }
    tw_ctx *ctx = NULL;
    if (tw_ctx_new(&ctx, TW_DEVICE_CPU, err, sizeof err) != TW_OK) {
        CHECK_MSG(0, "tw_ctx_new: %s", err);
        fx_free(fx);
        return check_report("test_eval_fixture");
    }
    gpt *m = gpt_from_fixture(ctx, fx);
    const fx_entry *pe = fx_get(fx, "prompt"), *ce = fx_get(fx, "completion");
    int64_t n = 0, nm = 0, no = 0;
    const double *want_e = fx_f64(fx, "expected", &n), *want_m = fx_f64(fx, "mass", &nm);
    const int64_t *want_off = fx_i64(fx, "offset", &no);
    CHECK(m && pe && ce && want_e && want_m && want_off && n == nm && n == no && n == pe->dims[0] &&
          n == ce->dims[0] && n >= 6);
    if (m && pe && ce && want_e && want_m && want_off && n == nm && n == no) {
        char **pr = calloc((size_t)n, sizeof *pr), **co = calloc((size_t)n, sizeof *co);
        double *e = calloc((size_t)n, sizeof *e), *ms = calloc((size_t)n, sizeof *ms);
        for (int64_t i = 0; i < n; i++)
            pr[i] = text_row(pe, i), co[i] = text_row(ce, i);
        int zero = 0, real = 0;
        for (int64_t i = 0; i < n; i++)
            CHECK_EQ_INT(eval_conf_offset(co[i], strlen(co[i])), want_off[i]);
        /* All at once, then one sample at a time (the memory bound): both match. */
        for (int mem = 256; mem >= 0; mem -= 256) {
            eval_params p = eval_params_default();
            p.expected_mem_mb = mem;
            CHECK_MSG(eval_expected(m, (const char *const *)pr, (const char *const *)co, (int)n, p,
                                    e, ms) == TW_OK,
                      "%s", tw_errmsg(ctx));
            for (int64_t i = 0; i < n; i++) {
                CHECK_MSG(fabs(e[i] - want_e[i]) <= TOL_EXPECTED,
                          "sample %lld (%s): expected %.9g, PyTorch %.9g", (long long)i, co[i],
                          e[i], want_e[i]);
                CHECK_MSG(fabs(ms[i] - want_m[i]) <= TOL_MASS_REL * want_m[i],
                          "sample %lld: mass %.9g, PyTorch %.9g", (long long)i, ms[i], want_m[i]);
                if (mem) want_m[i] == 0.0 ? zero++ : real++;
            }
        }
        /* The fixture covers both kinds: no readout (no marker, too long) and real ones. */
        CHECK(zero >= 2 && real >= 3);
        for (int64_t i = 0; i < n; i++)
            free(pr[i]), free(co[i]);
        free(pr), free(co), free(e), free(ms);
    }
    gpt_free(m);
    tw_ctx_free(ctx);
    fx_free(fx);
    return check_report("test_eval_fixture");
}
