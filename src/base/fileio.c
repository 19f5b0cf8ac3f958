#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

int file_read_all(const char *path, char **out, size_t *len, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    StrBuf b;
    sb_init(&b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_appendn(&b, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        sb_free(&b);
        return err_set(e, ERR_IO, "%s: read error", path);
    }
    if (len) *len = b.len;
    *out = sb_take(&b);
    return 0;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int file_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int file_mkdirs(const char *path, Err *e) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST) {
            err_set(e, ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0777) && errno != EEXIST)
        rc = err_set(e, ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
    free(p);
    return rc;
}

char *path_join(const char *a, const char *b) {
    size_t la = strlen(a);
    if (la && a[la - 1] == '/') return xasprintf("%s%s", a, b);
    return xasprintf("%s/%s", a, b);
}

static void fsync_parent_dir(const char *path) {
    char *copy = xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

static int write_fully(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, Err *e) {
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (write_fully(fd, data, len) || fsync(fd)) {
        err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path)) {
        err_set(e, ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    fsync_parent_dir(path);
    return 0;
}

int file_map(const char *path, FileMap *m, Err *e) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err_set(e, ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    return 0;
}

void file_unmap(FileMap *m) {
    if (m->data) munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

long appender_repair(const char *path, Err *e) {
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
    }
    off_t size = lseek(fd, 0, SEEK_END);
    off_t keep = size;
    char c;
    /* Walk back to the last '\n'; everything after it is a torn record. */
    while (keep > 0) {
        if (pread(fd, &c, 1, keep - 1) != 1) break;
        if (c == '\n') break;
        keep--;
    }
    long cut = (long)(size - keep);
    if (cut > 0 && (ftruncate(fd, keep) || fsync(fd))) {
        close(fd);
        return err_set(e, ERR_IO, "%s: cannot truncate torn line: %s", path, strerror(errno));
    }
    close(fd);
    return cut;
}

int appender_open(Appender *a, const char *path, Err *e) {
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    a->path = NULL;
    if (a->fd < 0) return err_set(e, ERR_IO, "cannot open %s for appending: %s", path, strerror(errno));
    a->path = xstrdup(path);
    return 0;
}

int appender_write(Appender *a, const char *data, size_t len, Err *e) {
    if (write_fully(a->fd, data, len) || fdatasync(a->fd))
        return err_set(e, ERR_IO, "cannot append to %s: %s", a->path, strerror(errno));
    return 0;
}

void appender_close(Appender *a) {
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    free(a->path);
    a->path = NULL;
}
