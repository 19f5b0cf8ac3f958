/* view_html: the page (view.h). The template, src/aloe/view_page.html, is
 * an ordinary HTML file with its CSS and script inline, so it reads and
 * diffs as what it is (C string literals would bury 1,000 lines of JS in
 * quotes and escapes); it is embedded byte for byte by the assembler's
 * .incbin, as recipe_presets.c embeds the recipes (the compiler runs from
 * the repository root; the Makefile makes the object depend on the file).
 *
 * The template holds three markers, filled in order:
 *   {{SCRIPT_HASH}}  in the Content-Security-Policy: the SHA-256 of the
 *                    page's one script, so the browser runs that script and
 *                    nothing else, were any text ever to become markup;
 *   <!--{{CHART}}--> the AL(k) chart, report_svg's SVG (the same picture as
 *                    al.svg), inline;
 *   {{DATA}}         the data object, escaped for a script element. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/view.h"
#include "base/mem.h"
#include "base/sha256.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        "aloe_view_page:\n"
        ".incbin \"src/aloe/view_page.html\"\n"
        ".byte 0\n"
        ".previous\n");

extern const char aloe_view_page[];

void view_escape_script_json(StrBuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* bytes copied as they are, appended in runs */
    while (i < n) {
        unsigned char c = u[i];
        const char *esc = NULL;
        size_t len = 1;
        if (c == '<') esc = "\\u003c";
        else if (c == '>') esc = "\\u003e";
        else if (c == '&') esc = "\\u0026";
        else if (c >= 0x80) {
            len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
            int ok = len && i + len <= n;
            for (size_t k = 1; ok && k < len; k++) ok = (u[i + k] & 0xC0) == 0x80;
            if (ok && len == 3) ok = !(c == 0xE0 && u[i + 1] < 0xA0) && !(c == 0xED && u[i + 1] >= 0xA0);
            if (ok && len == 4) ok = !(c == 0xF0 && u[i + 1] < 0x90) && !(c == 0xF4 && u[i + 1] >= 0x90);
            if (!ok) {
                esc = "\\ufffd";
                len = 1;
            } else if (c == 0xE2 && u[i + 1] == 0x80 && (u[i + 2] == 0xA8 || u[i + 2] == 0xA9)) {
                esc = u[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
            }
        }
        if (esc) {
            sb_appendn(b, s + i - run, run);
            run = 0;
            sb_append(b, esc);
        } else {
            run += len;
        }
        i += len;
    }
    sb_appendn(b, s + n - run, run);
}

static void put_base64(StrBuf *b, const uint8_t *d, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        sb_appendc(b, tab[v >> 18 & 63]);
        sb_appendc(b, tab[v >> 12 & 63]);
        sb_appendc(b, i + 1 < n ? tab[v >> 6 & 63] : '=');
        sb_appendc(b, i + 2 < n ? tab[v & 63] : '=');
    }
}

/* The base64 SHA-256 of the page script's text (what CSP 'sha256-...'
 * names): between <script id="aloe-main"> and its </script>. */
static void put_script_hash(StrBuf *b, const char *page) {
    static const char open[] = "<script id=\"aloe-main\">";
    const char *s = strstr(page, open);
    const char *end = s ? strstr(s, "</script>") : NULL;
    if (!end) return; /* a template without the script: no hash, so nothing runs */
    s += sizeof open - 1;
    Sha256 h;
    uint8_t d[32];
    sha256_init(&h);
    sha256_update(&h, s, (size_t)(end - s));
    sha256_final(&h, d);
    put_base64(b, d, sizeof d);
}

/* Appends *p up to the marker and moves *p past it. */
static void put_until(StrBuf *b, const char **p, const char *marker) {
    const char *m = strstr(*p, marker);
    if (!m) m = *p + strlen(*p);
    sb_appendn(b, *p, (size_t)(m - *p));
    *p = *m ? m + strlen(marker) : m;
}

char *view_html(const json_t *data, const char *chart_svg) {
    StrBuf b;
    sb_init(&b);
    const char *p = aloe_view_page;
    put_until(&b, &p, "{{SCRIPT_HASH}}");
    put_script_hash(&b, aloe_view_page);
    put_until(&b, &p, "<!--{{CHART}}-->");
    if (chart_svg) { /* inline SVG: the XML declaration is not HTML */
        const char *svg = strstr(chart_svg, "<svg");
        sb_append(&b, svg ? svg : "");
    }
    put_until(&b, &p, "{{DATA}}");
    char *js = json_dumps(data, JSON_COMPACT); /* reals at full precision: they read back equal */
    if (js) view_escape_script_json(&b, js, strlen(js));
    free(js);
    sb_append(&b, p);
    return sb_take(&b);
}
