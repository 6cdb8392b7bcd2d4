/* STORE (RFC 3501 §6.4.6), COPY (§6.4.7) with COPYUID (RFC 4315 UIDPLUS),
 * MOVE (RFC 6851), and their UID forms.  Arguments are checked on the
 * loop; the store work runs on a worker. */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conn.h"
#include "store.h"

#define IMAP_STORE_KEYWORDS_MAX 64 /* keywords in one STORE */

struct imap_store_cmd {
	uint32_t *uids;
	size_t n;
	/* STORE */
	enum md_flags_op op;
	bool silent;
	unsigned flags;
	char *keywords[IMAP_STORE_KEYWORDS_MAX];
	size_t n_keywords;
	uint64_t unchangedsince; /* RFC 7162 §3.1.3; 0: none */
	bool unchanged_zero;     /* UNCHANGEDSINCE 0: fails for every message */
	char *mod_text;          /* the MODIFIED set */
	size_t n_mod_text;
	/* COPY / MOVE */
	char dest[MD_MAILBOX_NAME_MAX + 1];
	bool move;
};

static void imap_store_free(void *arg)
{
	struct imap_store_cmd *c = arg;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_keywords; i++)
		free(c->keywords[i]);
	free(c->uids);
	free(c->mod_text);
	free(c);
}

static struct imap_store_cmd *imap_store_state(struct imap_session *s)
{
	return imap_cmd_state_new(s, sizeof(struct imap_store_cmd), imap_store_free);
}

/* ---- STORE ---------------------------------------------------------------- */

/* RFC 7162 §3.1.3: the messages UNCHANGEDSINCE refused, as UIDs (UID
 * STORE) or sequence numbers, into c->mod_text; how many. */
static size_t imap_store_modified(struct imap_session *s, struct imap_store_cmd *c,
				  const struct md_flags_result *res)
{
	uint32_t *ids = malloc((c->n + 1) * sizeof(*ids));
	struct buf b;
	size_t n = 0;

	buf_init(&b, 0);
	if (ids == NULL)
		return 0;
	for (size_t i = 0; i < c->n; i++) {
		uint32_t id = s->uid ? res[i].uid : imap_view_seq(&s->view, res[i].uid);

		if (res[i].result == MD_MODIFIED && id != 0)
			ids[n++] = id;
	}
	if (n > 0) {
		imap_buf_uidset(&b, ids, n);
		c->mod_text = b.data;
		c->n_mod_text = b.len;
	}
	free(ids);
	return c->mod_text != NULL ? n : 0;
}

static enum imap_cmd_status imap_store_work(struct imap_session *s)
{
	struct imap_store_cmd *c = s->cmd_state;
	struct md_flags_result *res = calloc(c->n + 1, sizeof(*res));
	char **names = NULL;
	size_t n_names = 0, n_mod;
	enum md_result r;

	if (res == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return CMD_DONE;
	}
	/* others' changes first, so that ours can be told apart afterwards */
	imap_view_update(s, s->uid);
	for (size_t i = 0; c->unchanged_zero && i < c->n; i++) {
		res[i].uid = c->uids[i];
		res[i].result = MD_MODIFIED; /* every message has a modseq > 0 */
	}
	r = c->n == 0 || c->unchanged_zero ? MD_OK
		      : md_msg_store(s->view.mb, c->uids, c->n, c->op, c->flags,
				     (const char *const *)c->keywords, c->n_keywords,
				     c->unchangedsince, res);
	if (r == MD_OK && c->n > 0 && (!c->silent || c->n_keywords > 0) &&
	    md_mailbox_keywords(s->view.mb, &names, &n_names) == MD_OK)
		imap_view_flag_lists(s, names, n_names, false);
	for (size_t i = 0; r == MD_OK && i < c->n; i++)
		if (res[i].result == MD_OK && res[i].modseq > s->view.modseq)
			s->view.own_modseq = res[i].modseq;
	for (size_t i = 0; r == MD_OK && i < c->n; i++) {
		uint32_t seq = imap_view_seq(&s->view, res[i].uid);
		if (res[i].result != MD_OK || seq == 0)
			continue;
		/* RFC 7162 §3.1.3: with CONDSTORE on, even .SILENT tells the
		 * new MODSEQ */
		if (c->silent && !s->condstore)
			continue;
		buf_appendf(&s->out, "* %u FETCH (", seq);
		if (!c->silent) {
			buf_appendf(&s->out, "FLAGS ");
			imap_buf_flags(&s->out, res[i].flags, res[i].keywords, names, n_names,
				       imap_is_recent(s, res[i].uid));
			buf_putc(&s->out, ' ');
		}
		if (s->uid)
			buf_appendf(&s->out, "UID %u ", res[i].uid);
		if (s->condstore)
			buf_appendf(&s->out, "MODSEQ (%llu) ", (unsigned long long)res[i].modseq);
		s->out.len--; /* the last space */
		buf_appendf(&s->out, ")\r\n");
	}
	if (names != NULL)
		md_mailbox_keywords_free(names, n_names);
	n_mod = r == MD_OK ? imap_store_modified(s, c, res) : 0;
	free(res);
	/* RFC 3501 §7.4.1: no EXPUNGE during STORE with sequence numbers */
	imap_view_update(s, s->uid);
	if (r == MD_BADNAME)
		imap_reply(s, "BAD", "Invalid keyword");
	else if (n_mod > 0)
		imap_reply(s, "OK", "[MODIFIED %.*s] Conditional %sSTORE failed",
			   (int)(c->n_mod_text), c->mod_text, s->uid ? "UID " : "");
	else
		imap_reply_md(s, r, s->uid ? "UID STORE" : "STORE");
	return CMD_DONE;
}

/* A flag of a STORE or APPEND flag list: system flag bit, or keyword. */
bool imap_flag_arg(struct imap_cursor *c, unsigned *flags, char **keywords, size_t *n_keywords,
		   size_t max_keywords)
{
	static const char *const sys[] = { "\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
					   "\\Draft" };
	char flag[MD_KEYWORD_LEN_MAX + 2];

	if (!imap_atom(c, flag, sizeof(flag), "\\"))
		return false;
	if (flag[0] == '\\') {
		for (unsigned i = 0; i < 5; i++)
			if (str_ieq(flag, sys[i])) {
				*flags |= 1u << i;
				return true;
			}
		/* \Recent cannot be stored (RFC 3501 §2.3.2); others are not flags */
		c->err = "Invalid system flag";
		return false;
	}
	if (strchr(flag, '\\') != NULL) {
		c->err = "Invalid keyword";
		return false;
	}
	for (size_t i = 0; i < *n_keywords; i++)
		if (str_ieq(keywords[i], flag))
			return true;
	if (*n_keywords >= max_keywords) {
		c->err = "[LIMIT] Too many keywords";
		return false;
	}
	keywords[*n_keywords] = strdup(flag);
	if (keywords[*n_keywords] == NULL)
		return false;
	(*n_keywords)++;
	return true;
}

void imap_cmd_store(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_store_cmd *c = imap_store_state(s);
	char item[32];
	bool paren;

	if (c == NULL)
		return;
	if (!imap_sp(args) || !imap_set_arg(s, args, s->uid, &c->uids, &c->n))
		return;
	if (!imap_sp(args))
		goto bad;
	if (imap_peek(args, '(')) {
		/* store-modifiers (RFC 4466 §2.5): "(UNCHANGEDSINCE m)" */
		uint64_t since;

		if (!imap_char(args, '(') || !imap_atom(args, item, sizeof(item), NULL) ||
		    !str_ieq(item, "UNCHANGEDSINCE") || !imap_sp(args) ||
		    !imap_modseq_arg(args, &since, true) || !imap_char(args, ')') ||
		    !imap_sp(args))
			goto bad;
		c->unchangedsince = since;
		c->unchanged_zero = since == 0;
		s->condstore = true; /* RFC 7162 §3.1: CONDSTORE enabling */
	}
	if (!imap_atom(args, item, sizeof(item), NULL))
		goto bad;
	if (item[0] == '+' || item[0] == '-')
		c->op = item[0] == '+' ? MD_FLAGS_ADD : MD_FLAGS_REMOVE;
	else
		c->op = MD_FLAGS_SET;
	{
		const char *name = item + (c->op != MD_FLAGS_SET);
		if (str_ieq(name, "FLAGS.SILENT"))
			c->silent = true;
		else if (!str_ieq(name, "FLAGS")) {
			args->err = "Unknown STORE item";
			goto bad;
		}
	}
	if (!imap_sp(args))
		goto bad;
	paren = imap_char(args, '(');
	if (!(paren && imap_peek(args, ')'))) {
		do {
			if (!imap_flag_arg(args, &c->flags, c->keywords, &c->n_keywords,
					   IMAP_STORE_KEYWORDS_MAX))
				goto bad;
		} while (imap_char(args, ' '));
	}
	if ((paren && !imap_char(args, ')')) || !imap_at_end(args))
		goto bad;
	if (s->view.readonly) {
		imap_reply(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	imap_job_start(s, imap_store_work, NULL);
	return;
bad:
	imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid STORE arguments");
}

/* ---- COPY / MOVE ------------------------------------------------------------ */

static enum imap_cmd_status imap_copy_work(struct imap_session *s)
{
	struct imap_store_cmd *c = s->cmd_state;
	uint32_t *dest = calloc(c->n + 1, sizeof(*dest));
	uint32_t *src = calloc(c->n + 1, sizeof(*src));
	uint32_t uidvalidity = 0;
	uint64_t quota = 0, quota_messages = 0;
	size_t n_ok = 0;
	enum md_result r;
	const char *verb = c->move ? "MOVE" : "COPY";

	if (dest == NULL || src == NULL) {
		free(dest);
		free(src);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return CMD_DONE;
	}
	if (auth_user_quota(imap_ctx_auth(s->ctx), s->canonical, &quota, &quota_messages) < 0)
		quota = quota_messages = 0;
	if (c->n == 0) {
		/* RFC 3501: nothing to copy is still OK; the mailbox must exist */
		struct md_status st;
		r = md_mailbox_status(s->md_user, c->dest, &st);
	} else {
		r = md_msg_copy(s->view.mb, c->uids, c->n, c->dest, c->move, quota, quota_messages,
				&uidvalidity, dest);
	}
	if (r == MD_NOMAILBOX) {
		imap_reply(s, "NO", "[TRYCREATE] Mailbox does not exist");
	} else if (r != MD_OK) {
		imap_reply_md(s, r, verb);
	} else {
		struct buf codes;

		buf_init(&codes, 0);
		for (size_t i = 0; i < c->n; i++)
			if (dest[i] != 0) {
				src[n_ok] = c->uids[i];
				dest[n_ok++] = dest[i];
			}
		if (n_ok > 0) {
			buf_appendf(&codes, "[COPYUID %u ", uidvalidity);
			imap_buf_uidset(&codes, src, n_ok);
			buf_putc(&codes, ' ');
			/* dest UIDs in source order: not necessarily ascending */
			for (size_t i = 0; i < n_ok; i++)
				buf_appendf(&codes, "%s%u", i > 0 ? "," : "", dest[i]);
			buf_appendf(&codes, "] ");
		}
		buf_cstr(&codes);
		if (c->move) {
			/* RFC 6851 §4.3: COPYUID in an untagged OK, then EXPUNGEs */
			if (n_ok > 0)
				imap_out(s, "* OK %sMoved\r\n", codes.data);
			imap_view_update(s, true);
			imap_reply(s, "OK", "%s completed", verb);
		} else {
			imap_view_update(s, s->uid);
			imap_reply(s, "OK", "%s%s completed", codes.len > 0 ? codes.data : "", verb);
		}
		buf_free(&codes);
	}
	free(dest);
	free(src);
	return CMD_DONE;
}

static void imap_copy_cmd(struct imap_session *s, struct imap_cursor *args, bool move)
{
	struct imap_store_cmd *c = imap_store_state(s);

	if (c == NULL)
		return;
	c->move = move;
	if (!imap_sp(args) || !imap_set_arg(s, args, s->uid, &c->uids, &c->n))
		return;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, c->dest, sizeof(c->dest)) ||
	    !imap_at_end(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid arguments");
		return;
	}
	if (move && s->view.readonly) {
		imap_reply(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	imap_job_start(s, imap_copy_work, NULL);
}

void imap_cmd_copy(struct imap_session *s, struct imap_cursor *args)
{
	imap_copy_cmd(s, args, false);
}

void imap_cmd_move(struct imap_session *s, struct imap_cursor *args)
{
	imap_copy_cmd(s, args, true);
}
