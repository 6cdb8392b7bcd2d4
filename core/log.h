/* Log lines to stderr, one event per line, key=value, for journald and
 * fail2ban:  "postern: level=info c=1f3a imap user=alice msg" */
#ifndef CORE_LOG_H
#define CORE_LOG_H

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* The one piece of global mutable state (STYLE.md). */
extern enum log_level log_level_current;

/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
const char *log_level_name(enum log_level level);

/* conn_id may be NULL.  The message is written as is after the prefix; a
 * newline or control byte in it is escaped so one event stays one line. */
void log_write(enum log_level level, const char *conn_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)

#endif
