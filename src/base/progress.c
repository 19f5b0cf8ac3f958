#include "base/progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void format_duration(double s, char *buf, int size) {
    if (s < 0 || s != s || s > 1e8) {
        snprintf(buf, (size_t)size, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, (size_t)size, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, (size_t)size, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, (size_t)size, "%lds", t);
}

void format_count(double n, char *buf, int size) {
    if (n >= 1e9)
        snprintf(buf, (size_t)size, "%.1fG", n / 1e9);
    else if (n >= 1e6)
        snprintf(buf, (size_t)size, "%.1fM", n / 1e6);
    else if (n >= 1e4)
        snprintf(buf, (size_t)size, "%.0fk", n / 1e3);
    else
        snprintf(buf, (size_t)size, "%.0f", n);
}

void progress_format(Progress *p, char *buf, int size, int width) {
    long done = atomic_load(&p->done), total = atomic_load(&p->total);
    double el = now_seconds() - p->start;
    long fresh = done - p->done_at_start;
    double rate = el > 0 ? (double)fresh / el : 0;
    char eta[32], tok[32];
    if (fresh > 0 && total > done)
        format_duration((double)(total - done) / rate, eta, sizeof eta);
    else if (total > 0 && done >= total)
        format_duration(el, eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "--");
    format_count((double)atomic_load(&p->tokens), tok, sizeof tok);
    double rps = el > 0 ? (double)atomic_load(&p->requests) / el : 0;
    char stats[256];
    snprintf(stats, sizeof stats, "%ld/%ld %3d%%  %s %s  %.1f req/s  %s tok  %ld retries  %ld errors",
             done, total, total > 0 ? (int)(100.0 * (double)done / (double)total) : 0,
             done >= total && total > 0 ? "in" : "ETA", eta, rps, tok, atomic_load(&p->retries),
             atomic_load(&p->errors));
    int barw = width - (int)strlen(stats) - (int)strlen(p->label) - 5;
    if (barw > 30) barw = 30;
    if (p->tty && barw >= 10) {
        char bar[64];
        int fill = total > 0 ? (int)((double)barw * (double)done / (double)total) : 0;
        for (int i = 0; i < barw; i++) bar[i] = i < fill ? '#' : '.';
        bar[barw] = 0;
        snprintf(buf, (size_t)size, "%s [%s] %s", p->label, bar, stats);
    } else {
        snprintf(buf, (size_t)size, "%s %s", p->label, stats);
    }
}

static int term_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
    return 100;
}

static void draw(Progress *p) {
    char line[512];
    int w = term_width();
    progress_format(p, line, sizeof line, w - 1);
    if (p->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        p->drawn = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

/* Log hooks: clear the live line before a message, redraw after. */
static void before_log(void *ctx) {
    Progress *p = ctx;
    if (p->tty && p->drawn) fputs("\r\033[K", stderr);
}

static void after_log(void *ctx) {
    Progress *p = ctx;
    if (p->tty && p->drawn) draw(p);
}

static void *drawer(void *arg) {
    Progress *p = arg;
    double last_plain = now_seconds();
    pthread_mutex_lock(&p->lock);
    while (p->running) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        if (!p->running) break;
        if (p->tty) {
            draw(p);
        } else if (now_seconds() - last_plain >= p->interval) {
            draw(p);
            last_plain = now_seconds();
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void progress_start(Progress *p, const char *label, long total, long already_done, int quiet) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    atomic_init(&p->total, total);
    atomic_init(&p->done, already_done);
    p->done_at_start = already_done;
    p->start = now_seconds();
    p->quiet = quiet;
    p->tty = isatty(STDERR_FILENO);
    p->interval = 10.0;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (quiet) return;
    p->running = 1;
    if (pthread_create(&p->thread, NULL, drawer, p)) {
        p->running = 0;
        return;
    }
    log_set_hooks(before_log, after_log, p);
}

void progress_add(Progress *p, long done) { atomic_fetch_add(&p->done, done); }

void progress_stop(Progress *p) {
    if (p->quiet || !p->running) return;
    log_set_hooks(NULL, NULL, NULL);
    pthread_mutex_lock(&p->lock);
    p->running = 0;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    draw(p);
    if (p->tty) fputc('\n', stderr);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}
