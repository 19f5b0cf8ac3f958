/* libFuzzer harness for the hub's repository listing, the answer of a
 * possibly hostile HF_ENDPOINT: arbitrary bytes must be parsed or refused
 * with a message that starts with the origin, never crash. Every name in an
 * accepted listing must be a relative path that stays inside the snapshot
 * directory (checked here independently of hub_check_filename), and each
 * file carries at most one kind of hash. The same bytes are also checked as
 * one raw name. Built and run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/hub.h"

/* Whether name (n bytes) is a plain relative path: no NUL, control byte or
 * backslash, not absolute, no empty, "." or ".." component, not too long. */
static int plain_relative(const char *name, size_t n) {
    if (n == 0 || n > HUB_MAX_NAME || name[0] == '/') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return 0;
    }
    for (size_t start = 0, i = 0; i <= n; i++) {
        if (i < n && name[i] != '/') continue;
        size_t l = i - start;
        if (l == 0 || l > HUB_MAX_COMPONENT || (l == 1 && name[start] == '.') ||
            (l == 2 && name[start] == '.' && name[start + 1] == '.'))
            return 0;
        start = i + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    Err e;
    e.msg[0] = 0;
    HubListing l;
    if (hub_parse_listing(s, size, "fuzz", &l, &e) == 0) {
        if (!l.commit || !l.commit[0] || strchr(l.commit, '/')) abort();
        for (size_t i = 0; i < l.n_files; i++) {
            const HubFile *f = &l.files[i];
            if (!plain_relative(f->name, strlen(f->name))) abort();
            size_t hs = strlen(f->sha256), hb = strlen(f->blob_id);
            if ((hs != 0 && hs != 64) || (hb != 0 && hb != 40) || (hs && hb) || f->size < -1) abort();
        }
        hub_listing_free(&l);
    } else if (strncmp(e.msg, "fuzz: ", 6) != 0) {
        abort(); /* errors name the origin */
    }
    Err ne;
    ne.msg[0] = 0;
    int ok = hub_check_filename(s, size, &ne) == 0;
    if (ok && !plain_relative(s, size)) abort();
    if (!ok && !ne.msg[0]) abort();
    return 0;
}
