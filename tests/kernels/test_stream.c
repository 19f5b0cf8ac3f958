/* stream_read_seconds reads every byte of every matrix exactly as given,
 * in both orders:
 * all bytes zero but one, whose bit must come back in the OR, for marked
 * bytes at the edges of matrices, of the 64 KB chunks and of the vector
 * loads' tails; with two threads and without a pool. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/stream.h"
#include "levels.h"
#include "test.h"

static void test_every_byte_is_read(void) {
    /* sizes that are not multiples of the loads: 3 Q8_0 rows of 96 values
     * (102 bytes each), a 200 KB f32 matrix (several chunks), one f16 row
     * of 40 values (80 bytes) */
    QMat m[3] = {{DT_Q8_0, NULL, 3, 96}, {DT_F32, NULL, 400, 128}, {DT_F16, NULL, 1, 40}};
    size_t bytes[3];
    char *data[3];
    for (int i = 0; i < 3; i++) {
        bytes[i] = dtype_nbytes(m[i].type, m[i].cols) * (size_t)m[i].rows;
        data[i] = xcalloc(1, bytes[i]);
        m[i].data = data[i];
    }
    const QMat *mats[3] = {&m[0], &m[1], &m[2]};
    ThreadPool *tp = tp_create(2);
    size_t marks[][2] = {{0, 0}, {0, 101}, {0, 305}, {1, 0}, {1, 65535}, {1, 65536}, {1, 204799},
                         {1, 204735}, {2, 0}, {2, 79}, {2, 72}};
    for (size_t k = 0; k < sizeof marks / sizeof marks[0]; k++) {
        size_t mi = marks[k][0], off = marks[k][1];
        CHECK(off < bytes[mi]);
        data[mi][off] = (char)0x80;
        for (int order = 0; order < 2; order++)
            for (int pool = 0; pool < 2; pool++) {
                uint64_t bits = 0;
                double s = stream_read_seconds(pool ? tp : NULL, mats, 3, (StreamOrder)order, &bits);
                CHECK_MSG(bits != 0, "byte %zu of matrix %zu not read (%s, %s)", off, mi, pool ? "2 threads" : "no pool",
                          order == STREAM_WHOLE ? "whole" : "per matrix");
                CHECK(s > 0);
            }
        data[mi][off] = 0;
        for (int order = 0; order < 2; order++) {
            uint64_t none = 1;
            stream_read_seconds(tp, mats, 3, (StreamOrder)order, &none);
            CHECK(none == 0);
        }
    }
    tp_free(tp);
    for (int i = 0; i < 3; i++) free(data[i]);
}

int main(void) {
    RUN_LEVELS(test_every_byte_is_read);
    return test_summary();
}
