/* fileio: whole-file reads, memory maps, atomic writes and durable appends.
 *
 * Results that a long run produces are either replaced atomically (write a
 * temporary file, fsync, rename, fsync the directory) or appended a whole
 * line at a time with fdatasync, so a kill -9 at any moment leaves either the
 * old or the new state, never a torn file. */
#ifndef ALOE_BASE_FILEIO_H
#define ALOE_BASE_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "base/err.h"

/* Reads a whole file; *out is NUL-terminated (caller frees). */
int file_read_all(const char *path, char **out, size_t *len, Err *e);
/* Replaces path with data atomically. */
int file_write_atomic(const char *path, const void *data, size_t len, Err *e);
int file_exists(const char *path);
int file_is_dir(const char *path);
/* mkdir -p */
int file_mkdirs(const char *path, Err *e);
/* Joins two path parts with one '/' (caller frees). */
char *path_join(const char *a, const char *b);

typedef struct FileMap {
    void *data;
    size_t size;
} FileMap;

/* Read-only private map of a whole file (empty files map to data=NULL). */
int file_map(const char *path, FileMap *m, Err *e);
void file_unmap(FileMap *m);

/* Durable appender: each append writes one whole record and fdatasyncs. */
typedef struct Appender {
    int fd;
    char *path;
} Appender;

int appender_open(Appender *a, const char *path, Err *e);
/* Cuts a torn last line (no trailing '\n', from a crash mid-write) so the
 * next append starts on a fresh line. Returns the number of bytes cut, or -1. */
long appender_repair(const char *path, Err *e);
int appender_write(Appender *a, const char *data, size_t len, Err *e);
void appender_close(Appender *a);

#endif
