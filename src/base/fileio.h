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

/* Fault injection, for tests only: when set, every operation below that
 * changes the file system (create, write, fsync, rename, link, unlink,
 * mkdir, rmdir, truncate; formats/outfile too) first calls the hook with
 * its name and path, so a test can end the process (_exit) before the Nth
 * one and check what a kill at that moment leaves. NULL (the default) in
 * every real run. */
typedef void (*FileFaultHook)(const char *op, const char *path);
extern FileFaultHook file_fault_hook;
/* Calls file_fault_hook, if set. */
void file_fault_point(const char *op, const char *path);

/* Reads a whole file; *out is NUL-terminated (caller frees). */
int file_read_all(const char *path, char **out, size_t *len, Err *e);
/* file_read_all for a text that goes on as a C string: a NUL byte in it
 * (which would end it early, unseen) is an error naming its offset and
 * saying that `what` ("a chat template") must be text. */
int file_read_text(const char *path, const char *what, char **out, size_t *len, Err *e);
/* Replaces path with data atomically. */
int file_write_atomic(const char *path, const void *data, size_t len, Err *e);
int file_exists(const char *path);
int file_is_dir(const char *path);
/* mkdir -p */
int file_mkdirs(const char *path, Err *e);
/* Joins two path parts with one '/' (caller frees). */
char *path_join(const char *a, const char *b);

/* Makes the entries of a directory (creations, renames, removals) durable. */
int file_fsync_dir(const char *dir, Err *e);
/* file_fsync_dir of path's directory, best effort: for after a rename that
 * has been done (an error there changes nothing the caller could act on). */
void file_fsync_parent(const char *path);
/* rename(2) (atomic: a file or an empty-or-absent directory target), then
 * the target's directory is synced. */
int file_rename(const char *from, const char *to, Err *e);
/* Removes a file; an absent one is not an error. */
int file_unlink(const char *path, Err *e);
/* rm -r: a file, or a directory and everything under it; absent is fine. */
int file_remove_tree(const char *path, Err *e);
/* Puts the content of src at dst atomically: a hard link (no copy of a
 * checkpoint's gigabytes) where the file system allows one, else a copy,
 * made under a temporary name, synced and renamed over dst. */
int file_link_atomic(const char *src, const char *dst, Err *e);
/* The names in a directory (not "." or ".."), sorted (caller frees each
 * and the array). */
int file_list_dir(const char *dir, char ***names, int *n, Err *e);
void file_list_free(char **names, int n);
/* Size of a file in bytes, or -1 when it cannot be stat'ed. */
long long file_size(const char *path);

typedef struct FileMap {
    void *data;
    size_t size;
    int fd; /* the file, open while mapped (file_map_read) */
} FileMap;

/* Read-only private map of a whole file (empty files map to data=NULL). */
int file_map(const char *path, FileMap *m, Err *e);
void file_unmap(FileMap *m);
/* The whole pages within [p, p + n) of such a map, which the caller will
 * not read for a while, leave the process's memory (the page cache keeps
 * them; a later read maps them back). Only for file_map's maps: on memory
 * that was written it would lose the writes. */
void file_map_release(const void *p, size_t n);
/* Whether [p, p + n) lies within map m. */
int file_map_holds(const FileMap *m, const void *p, size_t n);
/* The n bytes at p (within map m) into dst by reading the file: a copy
 * without the page faults of reading through the map (an 8B Q8_0 file's
 * weights, cached, two threads: ~4.3-4.7 s through the map, ~3.3 s
 * read). 0, or -1 when the range is not in m or on a read error (dst
 * then partly written). */
int file_map_read(const FileMap *m, const void *p, size_t n, void *dst);

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
