/* test_task_nomem.c: allocation failures. This test compiles the tasks sources itself with
 * -DTASKS_MALLOC=test_malloc and checks that task_gen_new and base_gen_new fail with their
 * NOMEM status, a message, and *out untouched, and work again once memory is back. */
#include <stdlib.h>

#include "tasks/basedata.h"
#include "tests/check.h"
#include "tasks/task.h"

static int fail_alloc = 0;
static int alloc_calls = 0;

void *test_malloc(size_t size);
void *test_malloc(size_t size) {
    alloc_calls++;
    return fail_alloc ? NULL : malloc(size);
}

int main(void) {
    int sentinel;
    task_gen *g = (task_gen *)&sentinel;
    base_gen *b = (base_gen *)&sentinel;

    fail_alloc = 1;
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_TRAIN, 0, 1), TASK_ERR_NOMEM);
    CHECK(g == (task_gen *)&sentinel);
    CHECK(strstr(task_errmsg(), "out of memory") != NULL);
    CHECK_EQ_INT(base_gen_new(&b, base_params_default(), 1), BASE_ERR_NOMEM);
    CHECK(b == (base_gen *)&sentinel);
    CHECK(strstr(base_errmsg(), "out of memory") != NULL);
    CHECK_EQ_INT(alloc_calls, 2);

    /* Argument errors are reported before any allocation. */
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_TEST, 2, 1), TASK_ERR_ARG);
    CHECK_EQ_INT(alloc_calls, 2);

    fail_alloc = 0;
    CHECK_EQ_INT(task_gen_new(&g, TASK_DOMAIN_ADD, TASK_SPLIT_TRAIN, 0, 1), TASK_OK);
    CHECK_EQ_INT(base_gen_new(&b, base_params_default(), 1), BASE_OK);
    task_example ex;
    base_pair pair;
    CHECK_EQ_INT(task_gen_next(g, &ex), TASK_OK);
    CHECK_EQ_INT(base_gen_next(b, &pair), BASE_OK);
    task_gen_free(g);
    base_gen_free(b);
    return check_report("test_task_nomem");
}
