/* cli_args.c: see cli_args.h. */
#include "harness/cli/cli_args.h"

#include <stdio.h>

#include "common/strings.h"

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out) {
    if (str_parse_int(s, lo, hi, out) == 0) return 0;
    fprintf(stderr, "caopd %s: %s expects an integer %ld..%ld, got '%s'\n", cmd, opt, lo, hi,
            s ? s : "");
    return -1;
}
