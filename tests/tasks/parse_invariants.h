/* parse_invariants.h: properties of tmpl_parse_completion and tmpl_revise_completion that
 * must hold for any input bytes; shared by the libFuzzer target and the corpus replay. */
#ifndef CAOPD_TESTS_PARSE_INVARIANTS_H
#define CAOPD_TESTS_PARSE_INVARIANTS_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/templates.h"

/* Returns NULL when every invariant holds, else which one failed. */
static const char *parse_invariants_check(const unsigned char *data, size_t n) {
    const char *text = (const char *)data;
    tmpl_parsed r = tmpl_parse_completion(text, n);
    if (isnan(r.confidence) || r.confidence < 0.0 || r.confidence > 1.0)
        return "confidence outside [0,1]";
    if (signbit(r.confidence)) return "negative zero confidence";
    if (r.format_failure && r.confidence != 0.0) return "format failure with a non-zero confidence";
    if (r.format_failure != ((r.flags & (TMPL_PARSE_NO_MARKER | TMPL_PARSE_NO_NUMBER)) != 0))
        return "format_failure disagrees with the flags";
    if (r.answer_off > n || r.answer_len > n - r.answer_off) return "answer outside the text";
    if (r.answer_len > 0 && (strchr(" \t\n\v\f\r", text[r.answer_off]) && text[r.answer_off]))
        return "answer starts with whitespace";
    if (r.answer_len > 0 && text[r.answer_off + r.answer_len - 1] &&
        strchr(" \t\n\v\f\r", text[r.answer_off + r.answer_len - 1]))
        return "answer ends with whitespace";
    const char *marker = TMPL_CONF_MARKER;
    size_t ml = strlen(marker);
    for (size_t i = 0; r.answer_len >= ml && i + ml <= r.answer_len; i++)
        if (memcmp(text + r.answer_off + i, marker, ml) == 0) return "answer contains the marker";

    /* The revision (CaOPD replacement 1) always parses to its value and keeps the answer. */
    size_t need = tmpl_revise_completion(NULL, 0, text, n, 0.375);
    char *buf = malloc(need + 1);
    if (!buf) return NULL;
    size_t got = tmpl_revise_completion(buf, need + 1, text, n, 0.375);
    const char *why = NULL;
    tmpl_parsed v = tmpl_parse_completion(buf, got);
    if (got != need)
        why = "revision length changed between calls";
    else if (v.format_failure || v.confidence != 0.38)
        why = "revision does not parse to its value";
    else if (v.answer_len != r.answer_len ||
             memcmp(buf + v.answer_off, text + r.answer_off, r.answer_len) != 0)
        why = "revision changed the answer";
    else if (got < 17 || memcmp(buf + got - 17, "\nConfidence: 0.38", 17) != 0)
        why = "revision does not end with the confidence line";
    free(buf);
    return why;
}

#endif
