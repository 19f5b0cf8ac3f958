/* log: leveled, thread-safe messages to stderr. Library code reports errors
 * through Err; it logs only warnings and progress the user should see. */
#ifndef ALOE_BASE_LOG_H
#define ALOE_BASE_LOG_H

enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_SILENT };

void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* A hook so a live progress bar can clear its line before a message is
 * printed and redraw after. Set by base/progress. */
void log_set_hooks(void (*before)(void *), void (*after)(void *), void *ctx);

#endif
