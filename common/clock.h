/* clock: wall time for progress lines, ETAs and timings. */
#ifndef CAOPD_COMMON_CLOCK_H
#define CAOPD_COMMON_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on the monotonic clock (CLOCK_MONOTONIC): only differences mean anything. */
double clock_now_s(void);

#ifdef __cplusplus
}
#endif

#endif
