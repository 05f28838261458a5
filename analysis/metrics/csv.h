/* csv: the two field writers of the CSV files `caopd analyze` writes (RFC 4180 quoting). */
#ifndef CAOPD_CSV_H
#define CAOPD_CSV_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A number: "nan" for NaN, else %.17g (round-trips a double). */
void csv_num(FILE *f, double v);
/* A text field: as is, or in double quotes (inner quotes doubled) when it holds a comma, a
 * quote, a space or a line break. */
void csv_str(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif

#endif
