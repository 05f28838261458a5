/* cli_args.c: see cli_args.h. */
#include "harness/cli/cli_args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/strings.h"

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out) {
    if (str_parse_int(s, lo, hi, out) == 0) return 0;
    fprintf(stderr, "caopd %s: %s expects an integer %ld..%ld, got '%s'\n", cmd, opt, lo, hi,
            s ? s : "");
    return -1;
}

int cli_num(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : NAN;
    if (!s || !*s || errno || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "caopd %s: %s expects a number in [%g, %g], got '%s'\n", cmd, opt, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!s || !(*s >= '0' && *s <= '9') || errno || *end) {
        fprintf(stderr, "caopd %s: %s expects an unsigned integer, got '%s'\n", cmd, opt,
                s ? s : "");
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

void cli_duration(double s, char *buf, size_t len) {
    if (!isfinite(s) || s < 0)
        snprintf(buf, len, "?");
    else if (s >= 3600)
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, len, "%ds", (int)s);
}
