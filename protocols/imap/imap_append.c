/* APPEND: not yet. */
#include "imap_private.h"

void imap_cmd_append(struct imap_session *s, struct imap_cursor *args)
{
	(void)args;
	imap_reply(s, "NO", "APPEND is not available yet");
}

void imap_append_literal(struct imap_session *s)
{
	(void)s;
}

void imap_append_bytes(struct imap_session *s, const char *data, size_t len)
{
	(void)s;
	(void)data;
	(void)len;
}

void imap_append_line(struct imap_session *s, const char *line, size_t len)
{
	(void)s;
	(void)line;
	(void)len;
}
