/* test_parse_corpus.c: replays the fuzzer's regression corpus (tests/tasks/corpus/parse,
 * or the directory given as argv[1]) through the completion parser and the CaOPD
 * revision, checking the same invariants as fuzz_parse.c on every file. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>

#include "tests/check.h"
#include "tests/tasks/parse_invariants.h"

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tasks/corpus/parse";
    DIR *dp = opendir(dir);
    CHECK_MSG(dp != NULL, "cannot open corpus directory %s (run from <repo>/tests)", dir);
    int files = 0, failures = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        CHECK_MSG(f != NULL, "cannot read %s", path);
        if (!f) continue;
        static unsigned char data[1 << 20];
        size_t n = fread(data, 1, sizeof data, f);
        fclose(f);
        const char *why = parse_invariants_check(data, n);
        if (why) {
            failures++;
            fprintf(stderr, "%s: %s\n", path, why);
        }
        files++;
    }
    if (dp) closedir(dp);
    CHECK_EQ_INT(failures, 0);
    CHECK_MSG(files >= 10, "only %d corpus files in %s", files, dir);
    fprintf(stderr, "replayed %d corpus files\n", files);
    return check_report("test_parse_corpus");
}
