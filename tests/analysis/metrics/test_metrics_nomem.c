/* Allocation failures: this test compiles analysis/metrics/metrics_calib.c itself with
 * -DMETRICS_MALLOC=test_malloc, fails every allocation while `fail_alloc` is set, and checks
 * that each allocating function returns METRICS_ERR_NOMEM with its outputs untouched. */
#include "tests/check.h"
#include "analysis/metrics/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int fail_alloc = 0;
static int alloc_calls = 0;

void *test_malloc(size_t size);
void *test_malloc(size_t size) {
    alloc_calls++;
    return fail_alloc ? NULL : malloc(size);
}

int main(void) {
    const double c[] = {0.2, 0.9, 0.5, 0.7};
    const uint8_t y[] = {0, 1, 1, 0};
    double spr = 42.0, auroc = 42.0, em = 42.0;
    metrics_bin bins[METRICS_NBINS], keep_bins[METRICS_NBINS];
    metrics_run run, keep_run;
    memset(bins, 0x5a, sizeof bins);
    memcpy(keep_bins, bins, sizeof bins);
    memset(&run, 0x5a, sizeof run);
    memcpy(&keep_run, &run, sizeof run);

    fail_alloc = 1;
    CHECK_EQ_INT(metrics_ranking(c, y, 4, &spr, &auroc), METRICS_ERR_NOMEM);
    CHECK(spr == 42.0 && auroc == 42.0);
    CHECK_EQ_INT(metrics_ece_equal_mass(c, y, 4, &em), METRICS_ERR_NOMEM);
    CHECK(em == 42.0);
    CHECK_EQ_INT(metrics_bins_equal_mass(c, y, 4, bins), METRICS_ERR_NOMEM);
    CHECK(memcmp(bins, keep_bins, sizeof bins) == 0);
    CHECK_EQ_INT(metrics_run_compute(c, y, NULL, 4, &run), METRICS_ERR_NOMEM);
    CHECK(memcmp(&run, &keep_run, sizeof run) == 0);
    CHECK_EQ_INT(alloc_calls, 4); /* the failures came from the allocator, not elsewhere */
    /* Non-allocating functions still work; n == 0 needs no allocation. */
    CHECK_EQ_INT(metrics_bins_equal_width(c, y, 4, bins), METRICS_OK);
    CHECK_EQ_INT(metrics_ranking(NULL, NULL, 0, &spr, &auroc), METRICS_OK);
    CHECK_EQ_INT(metrics_run_compute(NULL, NULL, NULL, 0, &run), METRICS_OK);
    CHECK_EQ_INT(alloc_calls, 4);

    fail_alloc = 0;
    /* positives {0.9, 0.5}, negatives {0.2, 0.7}: 0.9 beats both, 0.5 beats 0.2: 3 / 4 */
    CHECK_EQ_INT(metrics_ranking(c, y, 4, &spr, &auroc), METRICS_OK);
    CHECK_NEAR(spr, 0.75, 1e-15);
    CHECK_NEAR(auroc, 0.75, 1e-15);
    CHECK_EQ_INT(metrics_run_compute(c, y, NULL, 4, &run), METRICS_OK);
    CHECK(run.n == 4 && run.spr == spr);
    CHECK(strstr(metrics_status_str(METRICS_ERR_NOMEM), "memory") != NULL);
    return check_report("test_metrics_nomem");
}
