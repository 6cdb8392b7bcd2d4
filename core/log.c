/* Log lines to stderr.  One event per line, "postern: level=L c=ID text";
 * journald stores stderr lines as they are and fail2ban matches the fixed
 * "auth failed: proto=P rip=ADDR" text that auth/ writes. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

enum log_level log_level_current = LOG_LEVEL_INFO;

static const char *const log_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

int log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(log_names) / sizeof(log_names[0]))
		return "?";
	return log_names[level];
}

void log_write(enum log_level level, const char *conn_id, const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	char line[LOG_LINE_MAX * 2 + 64];
	va_list ap;
	size_t n;

	if (level > log_level_current)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);

	if (conn_id != NULL)
		n = (size_t)snprintf(line, sizeof(line), "postern: level=%s c=%s ",
				     log_level_name(level), conn_id);
	else
		n = (size_t)snprintf(line, sizeof(line), "postern: level=%s ",
				     log_level_name(level));
	/* Escape control bytes so that a client-chosen string can never start
	 * a forged log line. */
	for (const unsigned char *p = (const unsigned char *)text;
	     *p != '\0' && n + 5 < sizeof(line); p++) {
		if (*p < 0x20 || *p == 0x7f)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "\\x%02x", *p);
		else
			line[n++] = (char)*p;
	}
	line[n++] = '\n';
	/* One write() per line keeps lines whole between threads. */
	(void)!write(STDERR_FILENO, line, n);
}
