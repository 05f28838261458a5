/* tmpdir.h: the scratch directory of a test executable. Made under $TMPDIR (or /tmp); at the end
 * of main it is removed with everything in it when no CHECK failed, and kept, its path on stderr,
 * when one did. Uses nftw (XSI): tests/CMakeLists.txt builds every test with _XOPEN_SOURCE=700. */
#ifndef CAOPD_TESTS_TMPDIR_H
#define CAOPD_TESTS_TMPDIR_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/check.h"

/* $TMPDIR when set and not empty, else "/tmp". Borrowed from the environment. */
static inline const char *tmpdir_base(void) {
    const char *base = getenv("TMPDIR");
    return base && base[0] ? base : "/tmp";
}

/* Makes a fresh directory "<tmpdir_base()>/<prefix>_XXXXXX" (mkdtemp, mode 0700) and writes its
 * path to buf[cap]; returns buf. Exits the test with status 1 when it cannot. */
static inline char *tmpdir_make(char *buf, size_t cap, const char *prefix) {
    int n = snprintf(buf, cap, "%s/%s_XXXXXX", tmpdir_base(), prefix);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "tmpdir_make: path for '%s' longer than %zu bytes\n", prefix, cap);
        exit(1);
    }
    if (!mkdtemp(buf)) {
        fprintf(stderr, "tmpdir_make: mkdtemp %s: %s\n", buf, strerror(errno));
        exit(1);
    }
    return buf;
}

static inline int tmpdir__remove_one(const char *path, const struct stat *st, int type,
                                     struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

/* Removes path and everything below it, depth first; symbolic links are removed, never followed.
 * Returns 0, or -1 with errno set (what could be removed before the failure is gone). */
static inline int tmpdir_remove(const char *path) {
    return nftw(path, tmpdir__remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Call at the end of main, before check_report, from the process that made dir (a forked child
 * must exec or _exit, never return through main). When no CHECK has failed, removes dir; that it
 * could be removed is itself a CHECK. Otherwise keeps it and prints "kept for inspection: dir".
 * NULL or "" (no directory made) does nothing. */
static inline void tmpdir_finish(const char *dir) {
    if (!dir || !dir[0]) return;
    if (check_failures) {
        fprintf(stderr, "kept for inspection: %s\n", dir);
        return;
    }
    int rc = tmpdir_remove(dir);
    int err = errno; /* before CHECK_MSG's first fprintf */
    CHECK_MSG(rc == 0, "cannot remove %s: %s", dir, strerror(err));
}

#endif
