/* csv.c: see csv.h. */
#include "analysis/metrics/csv.h"

#include <math.h>
#include <string.h>

void csv_num(FILE *f, double v) {
    if (isnan(v))
        fputs("nan", f);
    else
        fprintf(f, "%.17g", v);
}

void csv_str(FILE *f, const char *s) {
    if (!strpbrk(s, ",\" \r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
