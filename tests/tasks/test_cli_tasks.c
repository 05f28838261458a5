/* test_cli_tasks.c: `caopd tasks` through cli_tasks(): exit statuses (0 ok, 2 usage),
 * the error text for unknown names, and the shape of `tasks sample` output. stdout is
 * captured in a temporary file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check.h"
#include "harness/cli/cli_tasks.h"
#include "tests/tmpdir.h"

static char out_text[1 << 16];

/* Runs cli_tasks on a NULL-terminated argument list; captures stdout into out_text. */
static int run(const char *const *args) {
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    fflush(stdout);
    char path[512];
    snprintf(path, sizeof path, "%s/caopd_cli_tasks_XXXXXX", tmpdir_base());
    int fd = mkstemp(path);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = cli_tasks(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, out_text, sizeof out_text - 1);
    out_text[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

int main(void) {
    CHECK_EQ_INT(RUN("tasks"), 0);
    CHECK(strstr(out_text, "Domains (7)") && strstr(out_text, "ood_format s3"));
    CHECK(strstr(out_text, "count  ood_value s2") != NULL);
    /* 7 domains x (train + test + 3 OOD kinds x 3 severities) example lines. */
    int examples = 0;
    for (const char *p = out_text; (p = strstr(p, " -> ")) != NULL; p++)
        examples++;
    CHECK_EQ_INT(examples, 7 * 11);

    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "test", "-n", "5", "--seed", "3"), 0);
    CHECK_EQ_INT(count_lines(out_text), 5);
    CHECK(strchr(out_text, '\t') != NULL);
    char first[4096];
    strcpy(first, out_text);
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "test", "-n", "5", "--seed", "3"), 0);
    CHECK_EQ_STR(out_text, first);
    CHECK_EQ_INT(RUN("tasks", "sample", "sort", "--split", "ood_format", "--severity", "3"), 0);
    CHECK(strstr(out_text, "Sort the digits") != NULL);
    CHECK_EQ_INT(count_lines(out_text), 10);
    CHECK_EQ_INT(RUN("tasks", "sample", "mul", "--split", "train", "-n", "1", "--view", "student"),
                 0);
    CHECK(strstr(out_text, "Answer, then Confidence.\n") && strstr(out_text, "Confidence: 1.00"));
    CHECK_EQ_INT(RUN("tasks", "sample", "mul", "--split", "train", "-n", "1", "--view", "teacher",
                     "--note", "0.625"),
                 0);
    CHECK(strstr(out_text, "question is 0.62.") && strstr(out_text, "Now answer with"));
    CHECK(strstr(out_text, "Confidence: 1.00") == NULL);

    /* Usage errors: exit 2, nothing on stdout. */
    CHECK_EQ_INT(RUN("tasks", "sample", "addition", "--split", "test"), 2);
    CHECK_EQ_STR(out_text, "");
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "valid"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "add"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "--split", "test"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "test", "--severity", "1"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "ood_value", "--severity", "4"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "test", "-n", "x"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "test", "--view", "raw"), 2);
    CHECK_EQ_INT(RUN("tasks", "sample", "add", "--split", "test", "--bogus"), 2);
    CHECK_EQ_INT(RUN("tasks", "frobnicate"), 2);
    CHECK_EQ_INT(RUN("tasks", "bench", "-n", "0"), 2);
    CHECK_EQ_INT(RUN("tasks", "--help"), 0);
    CHECK(strstr(out_text, "usage: caopd tasks") != NULL);

    CHECK_EQ_INT(RUN("tasks", "bench", "-n", "2000"), 0);
    CHECK(strstr(out_text, "examples/s") != NULL);
    return check_report("test_cli_tasks");
}
