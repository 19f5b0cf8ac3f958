/* bytelevel: GPT-2's reversible byte -> printable character mapping.
 *
 * Byte-level BPE never sees raw bytes: each byte becomes one visible
 * character so that vocabularies are plain text. Printable Latin-1 bytes
 * map to themselves; the other 68 (controls, space, 0x7F-0xA0, 0xAD) map
 * in order to U+0100 and up (so a space is "Ġ", U+0120). */
#include "tok/tok_internal.h"

static int is_self(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174); }

static uint32_t byte_cp(unsigned char b) {
    if (is_self(b)) return b;
    /* the others, in order: 0x00-0x20 (33), 0x7F-0xA0 (34), 0xAD (1) */
    if (b <= 32) return 256 + b;
    if (b <= 160) return 256 + 33 + (b - 127);
    return 256 + 67;
}

int bytelevel_char(unsigned char b, char out[2]) {
    char buf[4];
    int k = utf8_encode(byte_cp(b), buf);
    out[0] = buf[0];
    if (k > 1) out[1] = buf[1];
    return k;
}

int bytelevel_byte(uint32_t cp) {
    if (cp < 256) return is_self(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    if (n < 33) return (int)n;
    if (n < 67) return (int)(127 + n - 33);
    return 0xAD;
}
