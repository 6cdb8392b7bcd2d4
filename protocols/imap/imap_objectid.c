/* OBJECTID (RFC 8474): MAILBOXID in SELECT / EXAMINE (§4.1) and STATUS
 * (§4.2, also LIST RETURN (STATUS)), EMAILID and THREADID as FETCH items
 * (§5.1, §5.2) and SEARCH keys (§6).  The ids come from the store
 * (md_objectid.c says how they are kept).  THREADID is NIL: we do not
 * keep threads (RFC 8474 §5.2 allows a server that does not to answer
 * NIL), so SEARCH THREADID matches nothing.
 *
 * All of this runs on worker threads, inside the commands' jobs. */
#include "imap_private.h"

#include <string.h>

#include "store.h"

void imap_objectid_select(struct imap_session *s)
{
	char id[MD_OBJECTID_MAX + 1];

	/* an I/O error costs the response code, not the SELECT */
	if (md_mailbox_open_objectid(s->view.mb, id) == MD_OK)
		imap_out(s, "* OK [MAILBOXID (%s)] Ok\r\n", id);
}

void imap_objectid_status(struct imap_session *s, const char *name, const char *sep)
{
	char id[MD_OBJECTID_MAX + 1];

	if (md_mailbox_objectid(s->md_user, name, id) == MD_OK)
		buf_appendf(&s->out, "%sMAILBOXID (%s)", sep, id);
}

void imap_objectid_fetch(struct buf *b, const struct md_msg *msg, bool thread)
{
	char id[MD_OBJECTID_MAX + 1];

	if (thread) {
		buf_appendf(b, "THREADID NIL");
		return;
	}
	md_msg_emailid(msg, id);
	buf_appendf(b, "EMAILID (%s)", id);
}

bool imap_objectid_arg(struct imap_cursor *c, char **id_r)
{
	char id[MD_OBJECTID_MAX + 1];

	/* RFC 8474 §4: objectid = 1*255(ALPHA / DIGIT / "_" / "-") */
	if (!imap_sp(c) || !imap_atom(c, id, sizeof(id), NULL))
		return false;
	if (strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_-") != strlen(id)) {
		c->err = "Invalid object id";
		return false;
	}
	return (*id_r = strdup(id)) != NULL;
}

bool imap_objectid_emailid_is(const struct md_msg *msg, const char *id)
{
	char mine[MD_OBJECTID_MAX + 1];

	/* object ids are case-sensitive (RFC 8474 §4) */
	md_msg_emailid(msg, mine);
	return strcmp(mine, id) == 0;
}
