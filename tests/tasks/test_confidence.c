/* test_confidence.c: confidence parsing edge cases (docs/tasks.md §6: the last "Confidence:"
 * followed by a number, clipped to [0,1], none -> 0.0 and a format failure), answer
 * extraction, and the exact, locale-independent two-decimal formatting. */
#include <stdint.h>
#include <stdlib.h>

#include "tests/check.h"
#include "tasks/rng.h"
#include "tasks/templates.h"

static tmpl_parsed P(const char *s) {
    return tmpl_parse_completion(s, strlen(s));
}

static void check_parse(const char *text, double conf, int failure, unsigned flags,
                        const char *answer, int line) {
    tmpl_parsed r = P(text);
    char got[256];
    snprintf(got, sizeof got, "%.*s", (int)r.answer_len, text + r.answer_off);
    CHECK_MSG(r.confidence == conf && r.format_failure == failure && r.flags == flags &&
                  strcmp(got, answer) == 0,
              "line %d: text \"%s\": got conf %.17g failure %d flags %u answer \"%s\"", line, text,
              r.confidence, r.format_failure, r.flags, got);
}
#define PARSE(text, conf, failure, flags, answer)                                                  \
    check_parse(text, conf, failure, flags, answer, __LINE__)

int main(void) {
    const unsigned NM = TMPL_PARSE_NO_MARKER, NN = TMPL_PARSE_NO_NUMBER, CL = TMPL_PARSE_CLIPPED,
                   MU = TMPL_PARSE_MULTIPLE;
    /* The normal case. */
    PARSE("46\nConfidence: 0.80", 0.8, 0, 0, "46");
    PARSE("46\nConfidence: 0.8", 0.8, 0, 0, "46");
    PARSE("  46  \nConfidence:0.25\n", 0.25, 0, 0, "46");
    PARSE("46\nConfidence:\t 0.5", 0.5, 0, 0, "46");
    /* Multiple markers: the last one followed by a number wins. */
    PARSE("46\nConfidence: 0.2\nConfidence: 0.7", 0.7, 0, MU, "46");
    PARSE("46\nConfidence: 0.7\nConfidence: x", 0.7, 0, MU, "46");
    PARSE("Confidence: 0.1 Confidence: 0.2 Confidence: 0.3", 0.3, 0, MU, "");
    PARSE("46\nConfidence: 1.5\nConfidence: 0.4", 0.4, 0, MU, "46"); /* clip of an earlier one
                                                                        does not stick */
    PARSE("46\nConfidence: 0.4\nConfidence: 1.5", 1.0, 0, MU | CL, "46");
    PARSE("ConfidenceConfidence: 0.3", 0.3, 0, 0, "Confidence");
    /* Out of range: clipped, not a format failure. */
    PARSE("46\nConfidence: -0.5", 0.0, 0, CL, "46");
    PARSE("46\nConfidence: -3", 0.0, 0, CL, "46");
    PARSE("46\nConfidence: 1.5", 1.0, 0, CL, "46");
    PARSE("46\nConfidence: 7", 1.0, 0, CL, "46");
    PARSE("46\nConfidence: 10", 1.0, 0, CL, "46");
    PARSE("46\nConfidence: 5.", 1.0, 0, CL, "46");
    PARSE("46\nConfidence: 1.0001", 1.0, 0, CL, "46");
    PARSE("46\nConfidence: 99999999999999999999999999999", 1.0, 0, CL, "46");
    PARSE("46\nConfidence: -99999999999999999999999999999.5", 0.0, 0, CL, "46");
    PARSE("46\nConfidence: 1", 1.0, 0, 0, "46");
    PARSE("46\nConfidence: 1.000", 1.0, 0, 0, "46");
    PARSE("46\nConfidence: 01.00", 1.0, 0, 0, "46");
    PARSE("46\nConfidence: -0", 0.0, 0, 0, "46");
    PARSE("46\nConfidence: -0.000", 0.0, 0, 0, "46");
    PARSE("46\nConfidence: 0", 0.0, 0, 0, "46");
    /* Number forms. */
    PARSE("Confidence: .5", 0.5, 0, 0, "");
    PARSE("Confidence: +0.25", 0.25, 0, 0, "");
    PARSE("Confidence: 00.50", 0.5, 0, 0, "");
    PARSE("Confidence: 0.5.6", 0.5, 0, 0, "");
    PARSE("Confidence: 0.75abc", 0.75, 0, 0, "");
    PARSE("Confidence: 1e-3", 1.0, 0, 0, ""); /* no exponents: reads "1" */
    PARSE("Confidence: 0.123456789012345", 0.123456789012345, 0, 0, "");
    PARSE("Confidence: 0.000000000000000000000000000001", 1e-30, 0, 0, "");
    PARSE("Confidence: 0.1000000000000000000000000000000000000000", 0.1, 0, 0, "");
    /* Missing number: confidence 0 and a format failure. */
    PARSE("46\nConfidence:", 0.0, 1, NN, "46");
    PARSE("46\nConfidence: ", 0.0, 1, NN, "46");
    PARSE("46\nConfidence: abc", 0.0, 1, NN, "46");
    PARSE("46\nConfidence: .", 0.0, 1, NN, "46");
    PARSE("46\nConfidence: -", 0.0, 1, NN, "46");
    PARSE("46\nConfidence: - 0.5", 0.0, 1, NN, "46");
    PARSE("46\nConfidence:\n0.5", 0.0, 1, NN, "46"); /* only spaces/tabs may precede it */
    PARSE("46\nConfidence: x\nConfidence: y", 0.0, 1, NN | MU, "46");
    /* No marker. */
    PARSE("46", 0.0, 1, NM, "46");
    PARSE("", 0.0, 1, NM, "");
    PARSE("46\nconfidence: 0.5", 0.0, 1, NM, "46\nconfidence: 0.5");
    PARSE("46\nConfidence 0.5", 0.0, 1, NM, "46\nConfidence 0.5");
    PARSE("46\nCONFIDENCE: 0.5", 0.0, 1, NM, "46\nCONFIDENCE: 0.5");
    PARSE("\t\r\n \v\f", 0.0, 1, NM, "");
    /* Garbage bytes and an embedded NUL. */
    PARSE("\x01\xff\x80"
          "Confidence: 0.3\xfe",
          0.3, 0, 0, "\x01\xff\x80");
    const char nul[] = "46\0x\nConfidence: 0.5";
    tmpl_parsed r = tmpl_parse_completion(nul, sizeof nul - 1);
    CHECK(r.confidence == 0.5 && !r.format_failure && r.answer_off == 0 && r.answer_len == 4);
    r = tmpl_parse_completion("Confidence: 0.9", 12); /* length, not NUL, bounds the text */
    CHECK(r.format_failure && r.confidence == 0.0);
    r = tmpl_parse_completion("Confidence: 0.9", 14);
    CHECK(!r.format_failure && r.confidence == 0.0);

    /* Two-decimal formatting: ties go to even on the exact binary value (as Python's
     * f"{p:.2f}"), clipping, NaN. */
    char c[TMPL_CONF_LEN + 1];
    struct {
        double p;
        const char *s;
    } fm[] = {{0.0, "0.00"},       {1.0, "1.00"},       {0.5, "0.50"},    {0.125, "0.12"},
              {0.375, "0.38"},     {0.625, "0.62"},     {0.875, "0.88"},  {0.005, "0.01"},
              {0.015, "0.01"},     {0.025, "0.03"},     {0.285, "0.28"},  {0.995, "0.99"},
              {0.9951, "1.00"},    {0.994999, "0.99"},  {1e-300, "0.00"}, {4.9e-324, "0.00"},
              {-0.3, "0.00"},      {1.7, "1.00"},       {NAN, "0.00"},    {INFINITY, "1.00"},
              {-INFINITY, "0.00"}, {0.29, "0.29"},      {0.57, "0.57"},   {2.0 / 3.0, "0.67"},
              {1.0 / 3.0, "0.33"}, {0.0049999, "0.00"}, {0.999, "1.00"}};
    for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++)
        CHECK_EQ_STR(tmpl_format_conf(fm[i].p, c), fm[i].s);
    /* Every k/100 formats back to k; every P_acc = j/K for K <= 64 matches printf. */
    for (int k = 0; k <= 100; k++)
        CHECK_EQ_INT(tmpl_conf_hundredths(k / 100.0), k);
    char ref[32];
    int mismatches = 0;
    for (int K = 1; K <= 64; K++)
        for (int j = 0; j <= K; j++) {
            double p = (double)j / K;
            snprintf(ref, sizeof ref, "%.2f", p);
            mismatches += strcmp(ref, tmpl_format_conf(p, c)) != 0;
        }
    /* Random doubles, including ones that sit next to a tie: glibc's %.2f is correctly
     * rounded (ties to even), an independent reference in the "C" locale. */
    rng_state rs;
    rng_seed(&rs, 1, 0);
    for (int i = 0; i < 200000; i++) {
        double p = rng_unit(&rs);
        if (i % 2) /* near the ties k + 0.5 hundredths */
            p = nextafter((2.0 * (double)rng_below(&rs, 100) + 1.0) / 200.0,
                          i % 4 == 1 ? 0.0 : 1.0);
        snprintf(ref, sizeof ref, "%.2f", p);
        if (strcmp(ref, tmpl_format_conf(p, c)) != 0 && mismatches++ < 5)
            fprintf(stderr, "  %.17g: printf %s, ours %s\n", p, ref, c);
    }
    CHECK_EQ_INT(mismatches, 0);
    /* The parser reads back what the formatter writes. */
    for (int k = 0; k <= 100; k++) {
        char text[32];
        snprintf(text, sizeof text, "x\nConfidence: %s", tmpl_format_conf(k / 100.0, c));
        CHECK(P(text).confidence == k / 100.0);
    }
    /* Parsing agrees with strtod for short decimals. */
    int parse_mismatch = 0;
    for (int i = 0; i < 100000; i++) {
        char num[32], text[64];
        int digits = 1 + (int)rng_below(&rs, 15); /* "0." and 1..15 random digits */
        num[0] = '0';
        num[1] = '.';
        for (int k = 0; k < digits; k++)
            num[2 + k] = (char)('0' + rng_below(&rs, 10));
        num[2 + digits] = '\0';
        snprintf(text, sizeof text, "Confidence: %s", num);
        parse_mismatch += P(text).confidence != strtod(num, NULL);
    }
    CHECK_EQ_INT(parse_mismatch, 0);
    return check_report("test_confidence");
}
