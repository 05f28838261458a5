/* fuzz_parse.c: libFuzzer target for the completion parser and the CaOPD revision
 * (built only with -DCAOPD_FUZZ=ON and clang). Aborts when an invariant of
 * parse_invariants.h fails; keep interesting inputs in tests/tasks/corpus/parse/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/tasks/parse_invariants.h"
#include "tasks/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *why = parse_invariants_check(data, size);
    if (why) {
        fprintf(stderr, "invariant failed: %s\n", why);
        abort();
    }
    /* The tokenizer on arbitrary bytes: encodes iff every byte is in the vocabulary,
     * and then decodes back to the same bytes. */
    int32_t ids[4096];
    size_t n = 0;
    if (size <= 4096 && tok_encode((const char *)data, size, ids, 4096, &n) == TOK_OK) {
        static char back[4097];
        size_t len = 0;
        if (tok_decode(ids, n, back, sizeof back, &len, 0) != TOK_OK || len != size ||
            memcmp(back, data, size) != 0)
            abort();
    }
    return 0;
}
