/* outfile: a large output file replaced atomically, written in pieces.
 *
 * file_write_atomic needs the whole content in memory; checkpoints and
 * GGUF exports are gigabytes, so they stream into a temporary file next to
 * the target, then fsync, rename and fsync the directory: a crash leaves
 * the old file or the new one, never a torn one. */
#ifndef ALOE_FORMATS_OUTFILE_H
#define ALOE_FORMATS_OUTFILE_H

#include <stddef.h>

#include "base/err.h"

typedef struct OutFile {
    int fd;
    char *path, *tmp;
    size_t written;
} OutFile;

int outfile_open(OutFile *o, const char *path, Err *e);
int outfile_write(OutFile *o, const void *data, size_t len, Err *e);
/* Writes n zero bytes (padding). */
int outfile_pad(OutFile *o, size_t n, Err *e);
/* fsync + rename over the target; frees o. */
int outfile_commit(OutFile *o, Err *e);
/* Removes the temporary file; frees o. Safe after a failed call. */
void outfile_abort(OutFile *o);

#endif
