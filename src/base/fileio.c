#include "base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

FileFaultHook file_fault_hook = NULL;

void file_fault_point(const char *op, const char *path) {
    if (file_fault_hook) file_fault_hook(op, path);
}

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

int file_read_text(const char *path, const char *what, char **out, size_t *len, Err *e) {
    size_t n;
    if (file_read_all(path, out, &n, e)) return -1;
    const char *nul = memchr(*out, 0, n);
    if (nul) {
        err_set(e, ERR_PARSE, "%s: a NUL byte at offset %zu (%s must be text)", path, (size_t)(nul - *out), what);
        free(*out);
        *out = NULL;
        return -1;
    }
    if (len) *len = n;
    return 0;
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
    if (!file_is_dir(p)) file_fault_point("mkdir", p);
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

void file_fsync_parent(const char *path) {
    char *copy = xstrdup(path);
    Err ignore; /* best effort: the rename itself has been done */
    file_fsync_dir(dirname(copy), &ignore);
    free(copy);
}

int file_fsync_dir(const char *dir, Err *e) {
    file_fault_point("fsync-dir", dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return err_set(e, ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    /* some file systems refuse fsync on a directory (EINVAL): nothing to do there */
    int rc = fsync(fd) && errno != EINVAL ? err_set(e, ERR_IO, "cannot sync directory %s: %s", dir, strerror(errno)) : 0;
    close(fd);
    return rc;
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
    file_fault_point("create", tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    file_fault_point("write", tmp);
    int bad = write_fully(fd, data, len);
    if (!bad) file_fault_point("fsync", tmp);
    if (bad || fsync(fd)) {
        err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    close(fd);
    file_fault_point("rename", path);
    if (rename(tmp, path)) {
        err_set(e, ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    file_fsync_parent(path);
    return 0;
}

int file_map(const char *path, FileMap *m, Err *e) {
    m->data = NULL;
    m->size = 0;
    m->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
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
        m->fd = fd;
        return 0;
    }
    close(fd);
    return 0;
}

void file_map_release(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p, b = a + n;
    const uintptr_t lo = (a + page - 1) & ~(page - 1), hi = b & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: nothing to do if refused */
}

int file_map_holds(const FileMap *m, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)m->data;
    return m->data && a >= lo && a - lo <= m->size && n <= m->size - (a - lo);
}

int file_map_read(const FileMap *m, const void *p, size_t n, void *dst) {
    if (!file_map_holds(m, p, n) || m->fd < 0) return -1;
    off_t at = (off_t)((const char *)p - (const char *)m->data);
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(m->fd, (char *)dst + done, n - done, at + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1; /* an error, or the file shrank under the map */
        done += (size_t)r;
    }
    return 0;
}

void file_unmap(FileMap *m) {
    if (m->data) munmap(m->data, m->size);
    if (m->data && m->fd >= 0) close(m->fd);
    m->data = NULL;
    m->size = 0;
    m->fd = -1;
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
    if (cut > 0) file_fault_point("truncate", path);
    if (cut > 0 && (ftruncate(fd, keep) || fsync(fd))) {
        close(fd);
        return err_set(e, ERR_IO, "%s: cannot truncate torn line: %s", path, strerror(errno));
    }
    close(fd);
    return cut;
}

int appender_open(Appender *a, const char *path, Err *e) {
    if (!file_exists(path)) file_fault_point("create", path);
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    a->path = NULL;
    if (a->fd < 0) return err_set(e, ERR_IO, "cannot open %s for appending: %s", path, strerror(errno));
    a->path = xstrdup(path);
    return 0;
}

int appender_write(Appender *a, const char *data, size_t len, Err *e) {
    file_fault_point("append", a->path);
    if (write_fully(a->fd, data, len)) return err_set(e, ERR_IO, "cannot append to %s: %s", a->path, strerror(errno));
    file_fault_point("fsync", a->path);
    if (fdatasync(a->fd))
        return err_set(e, ERR_IO, "cannot append to %s: %s", a->path, strerror(errno));
    return 0;
}

void appender_close(Appender *a) {
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    free(a->path);
    a->path = NULL;
}

int file_rename(const char *from, const char *to, Err *e) {
    file_fault_point("rename", to);
    if (rename(from, to)) return err_set(e, ERR_IO, "cannot rename %s to %s: %s", from, to, strerror(errno));
    char *a = xstrdup(from), *b = xstrdup(to);
    const char *da = dirname(a), *db = dirname(b);
    int rc = file_fsync_dir(db, e) || (strcmp(da, db) && file_fsync_dir(da, e)) ? -1 : 0;
    free(a), free(b);
    return rc;
}

int file_unlink(const char *path, Err *e) {
    file_fault_point("unlink", path);
    if (unlink(path) && errno != ENOENT) return err_set(e, ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int file_remove_tree(const char *path, Err *e) {
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return file_unlink(path, e);
    char **names;
    int n;
    if (file_list_dir(path, &names, &n, e)) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char *p = path_join(path, names[i]);
        rc = file_remove_tree(p, e);
        free(p);
    }
    file_list_free(names, n);
    if (rc) return -1;
    file_fault_point("rmdir", path);
    if (rmdir(path) && errno != ENOENT) return err_set(e, ERR_IO, "cannot remove directory %s: %s", path, strerror(errno));
    return 0;
}

/* Streams src into the open fd. */
static int copy_into(const char *src, int fd, const char *tmp, Err *e) {
    int in = open(src, O_RDONLY);
    if (in < 0) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", src, strerror(errno));
    char *buf = xmalloc(1 << 20);
    int rc = 0;
    for (;;) {
        ssize_t r = read(in, buf, 1 << 20);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = err_set(e, ERR_IO, "cannot read %s: %s", src, strerror(errno));
        if (r <= 0) break;
        file_fault_point("write", tmp);
        if (write_fully(fd, buf, (size_t)r)) {
            rc = err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
            break;
        }
    }
    free(buf);
    close(in);
    if (!rc) file_fault_point("fsync", tmp);
    if (!rc && fsync(fd)) rc = err_set(e, ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    return rc;
}

int file_link_atomic(const char *src, const char *dst, Err *e) {
    char *tmp = xasprintf("%s.tmp.%d", dst, (int)getpid());
    unlink(tmp); /* a leftover of this pid's earlier try */
    file_fault_point("link", tmp);
    int rc = 0;
    if (link(src, tmp)) {
        /* no hard links here (another file system, FAT, some network ones): copy */
        if (errno != EXDEV && errno != EPERM && errno != ENOTSUP && errno != EMLINK && errno != ENOSYS) {
            rc = err_set(e, ERR_IO, "cannot link %s to %s: %s", src, tmp, strerror(errno));
        } else {
            file_fault_point("create", tmp);
            int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) rc = err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
            else {
                rc = copy_into(src, fd, tmp, e);
                close(fd);
            }
        }
    }
    if (!rc) rc = file_rename(tmp, dst, e);
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int file_list_dir(const char *dir, char ***names, int *n, Err *e) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    int cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *names = xrealloc(*names, (size_t)cap * sizeof **names);
        }
        (*names)[(*n)++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (*n) qsort(*names, (size_t)*n, sizeof **names, cmp_names);
    return 0;
}

void file_list_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_size;
}
