/* progress: what a long run shows while it works.
 *
 * On a terminal a live bar redrawn a few times a second:
 *   [#######.....] 412/1000  41%  ETA 3m12s  12.4 req/s  1.2M tok  3 retries  0 errors
 * Elsewhere (logs, CI) a plain line every `interval` seconds. Counters are
 * atomic so worker threads update them without locks. */
#ifndef ALOE_BASE_PROGRESS_H
#define ALOE_BASE_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct Progress {
    char label[64];
    atomic_long done, total;
    atomic_long requests, tokens, retries, errors;
    double start;          /* monotonic seconds */
    long done_at_start;    /* items already done when resumed (excluded from rates) */
    int tty, quiet, running;
    double interval;       /* seconds between plain lines */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int drawn;             /* a live line is on screen */
} Progress;

/* quiet: draw nothing. */
void progress_start(Progress *p, const char *label, long total, long already_done, int quiet);
void progress_add(Progress *p, long done);
void progress_stop(Progress *p); /* final line, then the thread ends */
/* The current line as text (used by the drawer and tests). */
void progress_format(Progress *p, char *buf, int size, int width);
double now_seconds(void);
/* "3m12s", "1h02m", "45s" */
void format_duration(double s, char *buf, int size);
/* "1.2M", "340k", "12" */
void format_count(double n, char *buf, int size);

#endif
