/* Shared by the GPT tests: build a model whose weights come from a PyTorch fixture. */
#ifndef CAOPD_TESTS_GPT_TESTUTIL_H
#define CAOPD_TESTS_GPT_TESTUTIL_H

#include "tests/fixtures/fixture.h"
#include "harness/model/gpt.h"

#include <stdio.h>

/* Loads the fixture's "config" and every parameter into a new model in ctx. Returns NULL and
 * prints why on failure. */
static inline gpt *gpt_from_fixture(tw_ctx *ctx, const fx_file *fx) {
    int64_t n = 0;
    const int64_t *c = fx_i64(fx, "config", &n);
    if (!c || n != 5) {
        fprintf(stderr, "fixture has no config entry\n");
        return NULL;
    }
    gpt_config cfg = {.vocab = (int)c[0],
                      .block_size = (int)c[1],
                      .n_layer = (int)c[2],
                      .n_head = (int)c[3],
                      .n_embd = (int)c[4]};
    tw_rng *rng = NULL;
    gpt *m = NULL;
    if (tw_rng_new(ctx, 0, &rng) || gpt_new(ctx, cfg, rng, &m)) {
        fprintf(stderr, "gpt_new: %s\n", tw_errmsg(ctx));
        tw_rng_free(rng);
        return NULL;
    }
    tw_rng_free(rng);
    for (int i = 0; i < gpt_param_count(m); i++) {
        const float *w = fx_f32(fx, gpt_param_name(m, i), &n);
        if (!w || tw_copy_from_f32(ctx, gpt_param(m, i), w, (size_t)n)) {
            fprintf(stderr, "parameter %s: missing in fixture or wrong size (%s)\n",
                    gpt_param_name(m, i), tw_errmsg(ctx));
            gpt_free(m);
            return NULL;
        }
    }
    return m;
}

#endif
