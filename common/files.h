/* files: the file helpers every layer shares. Each returns -1 (or NULL) with errno set on
 * failure and never prints; the caller names the file in its own message. */
#ifndef CAOPD_COMMON_FILES_H
#define CAOPD_COMMON_FILES_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when path names something that stat(2) can see, else 0. */
int file_exists(const char *path);

/* Creates dir and its missing parents (mode 0777 before umask). 0 when dir then is a directory;
 * -1 otherwise (ENOTDIR when a component is a file, ENAMETOOLONG for a path over 4095 bytes). */
int file_mkdir_p(const char *dir);

/* The whole file as a malloc'd NUL-terminated string (the caller frees it); NULL with errno set
 * (EFBIG over 1 GiB, EIO on a read error). */
char *file_read_text(const char *path);

/* text -> path through "<path>.tmp.<pid>", fsync(2) and rename(2): readers, and concurrent
 * writers of the same text, see the old file or the whole new one, never a part. */
int file_write_atomic(const char *path, const char *text);

#ifdef __cplusplus
}
#endif

#endif
