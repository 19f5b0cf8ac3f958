/* fileio's directory operations for checkpoints: sorted listings, rm -r,
 * hard links with a copy where links cannot cross file systems, renames,
 * and the fault hook seeing every operation that changes the disk; a
 * map's bytes read from its file (file_map_read). */
#include <stdlib.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static char g_ops[512];

static void record(const char *op, const char *path) {
    (void)path;
    snprintf(g_ops + strlen(g_ops), sizeof g_ops - strlen(g_ops), "%s ", op);
}

static void test_list_remove_rename(void) {
    char *tmp = test_tmpdir(), *d = path_join(tmp, "d"), *sub = path_join(d, "sub"), *f = path_join(sub, "f");
    char *b = path_join(d, "b"), *a = path_join(d, "a"), *moved = path_join(tmp, "moved");
    Err e;
    CHECK_OK(file_mkdirs(sub, &e), &e);
    CHECK_OK(file_write_atomic(f, "x", 1, &e), &e);
    CHECK_OK(file_write_atomic(b, "bb", 2, &e), &e);
    CHECK_OK(file_write_atomic(a, "a", 1, &e), &e);
    char **names;
    int n;
    CHECK_OK(file_list_dir(d, &names, &n, &e), &e);
    CHECK_EQ_INT(n, 3);
    CHECK(!strcmp(names[0], "a") && !strcmp(names[1], "b") && !strcmp(names[2], "sub"));
    file_list_free(names, n);
    CHECK_EQ_INT(file_size(b), 2);
    CHECK_EQ_INT(file_size(moved), -1);
    CHECK_OK(file_rename(d, moved, &e), &e);
    CHECK(!file_exists(d) && file_is_dir(moved));
    CHECK_OK(file_remove_tree(moved, &e), &e);
    CHECK(!file_exists(moved));
    CHECK_OK(file_remove_tree(moved, &e), &e); /* absent: fine */
    CHECK(file_list_dir(moved, &names, &n, &e) == -1 && e.code == ERR_NOTFOUND);
    free(tmp), free(d), free(sub), free(f), free(b), free(a), free(moved);
}

/* file_map_read gives the bytes the map holds at the same place, and
 * refuses a range that is not all inside the map; released pages read
 * back as they were. */
static void test_map_read(void) {
    char *tmp = test_tmpdir(), *f = path_join(tmp, "f");
    enum { N = 3 * 4096 + 123 };
    char *data = xmalloc(N), *got = xmalloc(N);
    for (int i = 0; i < N; i++) data[i] = (char)(i * 7 + i / 251);
    Err e;
    CHECK_OK(file_write_atomic(f, data, N, &e), &e);
    FileMap m;
    CHECK_OK(file_map(f, &m, &e), &e);
    const char *p = m.data;
    CHECK(file_map_holds(&m, p + 100, N - 100) && !file_map_holds(&m, p + 100, N - 99));
    CHECK_EQ_INT(file_map_read(&m, p + 4000, 5000, got), 0);
    CHECK(!memcmp(got, data + 4000, 5000));
    CHECK_EQ_INT(file_map_read(&m, p, N, got), 0);
    CHECK(!memcmp(got, data, N));
    CHECK_EQ_INT(file_map_read(&m, p + 1, N, got), -1); /* one byte past the end */
    CHECK_EQ_INT(file_map_read(&m, data, 10, got), -1); /* not in the map */
    file_map_release(p, N);
    CHECK(!memcmp(p, data, N));
    file_unmap(&m);
    free(data), free(got), free(f);
    test_system("rm -rf '%s'", tmp);
    free(tmp);
}

static void test_link_atomic(void) {
    char *tmp = test_tmpdir(), *src = path_join(tmp, "src"), *dst = path_join(tmp, "dst");
    Err e;
    CHECK_OK(file_write_atomic(src, "weights", 7, &e), &e);
    CHECK_OK(file_write_atomic(dst, "old", 3, &e), &e);
    CHECK_OK(file_link_atomic(src, dst, &e), &e);
    struct stat st;
    CHECK(stat(dst, &st) == 0 && st.st_nlink == 2 && st.st_size == 7); /* a link, no copy */
    /* across file systems (tmpfs to /tmp's) it copies */
    char tpl[] = "/dev/shm/aloe-test-XXXXXX";
    if (file_is_dir("/dev/shm") && mkdtemp(tpl)) {
        char *other = path_join(tpl, "src");
        CHECK_OK(file_write_atomic(other, "copied!", 7, &e), &e);
        struct stat a, b;
        int same_fs = stat(other, &a) == 0 && stat(tmp, &b) == 0 && a.st_dev == b.st_dev;
        CHECK_OK(file_link_atomic(other, dst, &e), &e);
        char *data;
        size_t len;
        CHECK_OK(file_read_all(dst, &data, &len, &e), &e);
        CHECK(len == 7 && !memcmp(data, "copied!", 7));
        free(data);
        CHECK(stat(dst, &st) == 0 && st.st_nlink == (same_fs ? 2u : 1u));
        file_remove_tree(tpl, &e);
        free(other);
    }
    CHECK(file_link_atomic(tmp, dst, &e) == -1 || file_is_dir(dst) == 0);
    free(tmp), free(src), free(dst);
}

static void test_fault_hook_sees_operations(void) {
    char *tmp = test_tmpdir(), *d = path_join(tmp, "d"), *f = path_join(d, "f");
    Err e;
    g_ops[0] = 0;
    file_fault_hook = record;
    int rc = file_mkdirs(d, &e) || file_write_atomic(f, "x", 1, &e) || file_remove_tree(d, &e);
    file_fault_hook = NULL;
    CHECK_OK(rc, &e);
    CHECK_EQ_STR(g_ops, "mkdir create write fsync rename fsync-dir unlink rmdir ");
    free(tmp), free(d), free(f);
}

int main(void) {
    RUN(test_list_remove_rename);
    RUN(test_link_atomic);
    RUN(test_map_read);
    RUN(test_fault_hook_sees_operations);
    return test_summary();
}
