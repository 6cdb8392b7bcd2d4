/* SEARCH: not yet. */
#include "imap_private.h"

void imap_cmd_search(struct imap_session *s, struct imap_cursor *args)
{
	(void)args;
	imap_reply(s, "NO", "SEARCH is not available yet");
}
