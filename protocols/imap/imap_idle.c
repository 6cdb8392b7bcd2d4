/* IDLE: not yet. */
#include "imap_private.h"

void imap_cmd_idle(struct imap_session *s, struct imap_cursor *args)
{
	(void)args;
	imap_reply(s, "NO", "IDLE is not available yet");
}

void imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
	(void)s;
	(void)line;
	(void)len;
}

void imap_idle_stop(struct imap_session *s)
{
	(void)s;
}

void imap_idle_link(struct imap_session *s, bool on)
{
	(void)s;
	(void)on;
}

void imap_idle_wake(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	(void)ctx;
	(void)user_id;
	(void)mailbox_id;
}
