/* QUOTA (RFC 9208) over the per-user quota the administrator sets
 * (`postern user quota`, auth_user_quota()) and the store's usage
 * (md_user_usage()).  A user has one quota root, "" (the whole account),
 * when a limit is set, none otherwise.  Two resources: STORAGE, in units
 * of 1024 octets (RFC 9208 §5.1), and MESSAGE, the number of messages
 * (§5.2); each is listed when the user has a limit on it.  SETQUOTA is
 * refused: quotas are the administrator's.
 *
 * Memory: a command's state (struct imap_quota_cmd) is s->cmd_state,
 * freed with the reply. */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "store.h"
#include "util.h"

#define IMAP_QUOTA_ROOT "" /* the one quota root: the whole account */
#define IMAP_QUOTA_UNIT 1024 /* RFC 9208 §5.1: STORAGE counts KiB */

struct imap_quota_cmd {
	char mailbox[MD_MAILBOX_NAME_MAX + 1]; /* GETQUOTAROOT */
	bool root;                             /* GETQUOTAROOT, not GETQUOTA */
};

/* Whether the user has a quota root: a limit on either resource. */
static bool imap_quota_limits(struct imap_session *s, uint64_t *bytes_r, uint64_t *messages_r)
{
	*bytes_r = *messages_r = 0;
	return auth_user_quota(imap_ctx_auth(s->ctx), s->canonical, bytes_r, messages_r) == 0 &&
	       (*bytes_r > 0 || *messages_r > 0);
}

/* "* QUOTA "" (STORAGE used limit MESSAGE used limit)" when the user has
 * a quota (worker).  1: written, 0: no quota, -1: the store failed
 * (replied). */
static int imap_quota_line(struct imap_session *s)
{
	uint64_t limit, limit_messages, bytes, messages;
	const char *sep = "";
	enum md_result r;

	if (!imap_quota_limits(s, &limit, &limit_messages))
		return 0;
	r = md_user_usage(s->md_user, &bytes, &messages);
	if (r != MD_OK) {
		imap_reply_md(s, r, "GETQUOTA");
		return -1;
	}
	imap_out(s, "* QUOTA \"%s\" (", IMAP_QUOTA_ROOT);
	if (limit > 0) {
		imap_out(s, "STORAGE %llu %llu",
			 (unsigned long long)((bytes + IMAP_QUOTA_UNIT - 1) / IMAP_QUOTA_UNIT),
			 (unsigned long long)(limit / IMAP_QUOTA_UNIT));
		sep = " ";
	}
	if (limit_messages > 0)
		imap_out(s, "%sMESSAGE %llu %llu", sep, (unsigned long long)messages,
			 (unsigned long long)limit_messages);
	imap_out(s, ")\r\n");
	return 1;
}

static enum imap_cmd_status imap_quota_work(struct imap_session *s)
{
	struct imap_quota_cmd *q = s->cmd_state;
	struct md_status st;
	enum md_result r;
	uint64_t limit, limit_messages;
	bool has_root;

	if (!q->root) {
		int rc = imap_quota_line(s);
		if (rc == 0)
			imap_reply(s, "NO", "[NONEXISTENT] No such quota root");
		else if (rc > 0)
			imap_reply(s, "OK", "GETQUOTA completed");
		return CMD_DONE;
	}
	/* RFC 9208 §4.1.2: the mailbox must exist */
	r = md_mailbox_status(s->md_user, q->mailbox, &st);
	if (r != MD_OK) {
		imap_reply_md(s, r, "GETQUOTAROOT");
		return CMD_DONE;
	}
	has_root = imap_quota_limits(s, &limit, &limit_messages);
	imap_out(s, "* QUOTAROOT ");
	imap_buf_mailbox(s, &s->out, q->mailbox);
	imap_out(s, "%s\r\n", has_root ? " \"" IMAP_QUOTA_ROOT "\"" : "");
	if (has_root && imap_quota_line(s) < 0)
		return CMD_DONE;
	imap_reply(s, "OK", "GETQUOTAROOT completed");
	return CMD_DONE;
}

/* RFC 9208 §4.1.1: GETQUOTA quota-root */
void imap_cmd_getquota(struct imap_session *s, struct imap_cursor *args)
{
	char root[MD_MAILBOX_NAME_MAX + 1];

	if (!imap_sp(args) || !imap_astring_copy(args, root, sizeof(root)) || !imap_at_end(args)) {
		imap_reply(s, "BAD", "GETQUOTA needs a quota root");
		return;
	}
	if (strcmp(root, IMAP_QUOTA_ROOT) != 0) {
		imap_reply(s, "NO", "[NONEXISTENT] No such quota root");
		return;
	}
	if (imap_cmd_state_new(s, sizeof(struct imap_quota_cmd), free) == NULL)
		return;
	imap_job_start(s, imap_quota_work, NULL);
}

/* RFC 9208 §4.1.2: GETQUOTAROOT mailbox */
void imap_cmd_getquotaroot(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_quota_cmd *q = imap_cmd_state_new(s, sizeof(*q), free);

	if (q == NULL)
		return;
	q->root = true;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, q->mailbox, sizeof(q->mailbox)) ||
	    !imap_at_end(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "GETQUOTAROOT needs a mailbox");
		return;
	}
	imap_job_start(s, imap_quota_work, NULL);
}

/* RFC 9208 §4.1.3: the server may refuse; ours are set by the
 * administrator's `postern user quota`. */
void imap_cmd_setquota(struct imap_session *s, struct imap_cursor *args)
{
	(void)args;
	imap_reply(s, "NO", "[NOPERM] Quotas are set by the administrator");
}
