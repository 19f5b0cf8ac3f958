/* outfile: streamed atomic replacement of a file. */
#include "formats/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"

int outfile_open(OutFile *o, const char *path, Err *e) {
    o->path = xstrdup(path);
    o->tmp = xasprintf("%s.tmp.XXXXXX", path);
    o->written = 0;
    file_fault_point("create", o->tmp);
    o->fd = mkstemp(o->tmp);
    if (o->fd < 0) {
        err_set(e, ERR_IO, "cannot create a temporary file for %s: %s", path, strerror(errno));
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        return -1;
    }
    fchmod(o->fd, 0644);
    return 0;
}

int outfile_write(OutFile *o, const void *data, size_t len, Err *e) {
    const char *p = data;
    if (len > 0) file_fault_point("write", o->tmp);
    while (len > 0) {
        ssize_t w = write(o->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return err_set(e, ERR_IO, "cannot write %s: %s", o->tmp, strerror(errno));
        p += w;
        len -= (size_t)w;
        o->written += (size_t)w;
    }
    return 0;
}

int outfile_pad(OutFile *o, size_t n, Err *e) {
    static const char zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (outfile_write(o, zeros, k, e)) return -1;
        n -= k;
    }
    return 0;
}

int outfile_commit(OutFile *o, Err *e) {
    int rc = 0;
    file_fault_point("fsync", o->tmp);
    if (fsync(o->fd)) rc = err_set(e, ERR_IO, "cannot sync %s: %s", o->tmp, strerror(errno));
    if (close(o->fd) && !rc) rc = err_set(e, ERR_IO, "cannot close %s: %s", o->tmp, strerror(errno));
    o->fd = -1;
    if (!rc) file_fault_point("rename", o->path);
    if (!rc && rename(o->tmp, o->path))
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", o->tmp, o->path, strerror(errno));
    if (rc) unlink(o->tmp);
    else file_fsync_parent(o->path);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    return rc;
}

void outfile_abort(OutFile *o) {
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp) unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
}
