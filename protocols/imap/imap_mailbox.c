/* Mailbox commands: LIST (RFC 3501 §6.3.8 with LIST-EXTENDED RFC 5258,
 * SPECIAL-USE RFC 6154, LIST-STATUS RFC 5819, CHILDREN RFC 3348), LSUB,
 * CREATE (CREATE-SPECIAL-USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
 * NAMESPACE (RFC 2342), STATUS (STATUS=SIZE RFC 8438).
 *
 * Arguments are parsed on the loop into a struct imap_mbox_cmd; the store
 * work runs on a worker and writes the whole answer. */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "store.h"

#define IMAP_LIST_PATTERNS_MAX 16 /* patterns in one LIST-EXTENDED LIST */
#define IMAP_PATTERN_MAX 1024     /* octets of reference + pattern */
/* A mailbox name in UTF-8 (RFC 9051 §5.1).  From a stored modified UTF-7
 * name it is at most 9/8 as long (8 base64 octets carry 3 UTF-16 units, at
 * most 9 UTF-8 octets); a client's UTF-8 name is at most 4 times its
 * number of characters.  4 times the store's limit is generous for both. */
#define IMAP_NAME_UTF8_MAX (4 * (MD_MAILBOX_NAME_MAX + 1))

/* LIST selection options (RFC 5258 §3.1) */
#define IMAP_LIST_SEL_SUBSCRIBED 0x1
#define IMAP_LIST_SEL_SPECIAL    0x2 /* RFC 6154 §3: special-use ones only */
#define IMAP_LIST_SEL_RECURSIVE  0x4 /* RFC 5258 §3.5 RECURSIVEMATCH */
/* LIST return options (RFC 5258 §3.2, RFC 6154, RFC 5819) */
#define IMAP_LIST_RET_SUBSCRIBED 0x1
#define IMAP_LIST_RET_STATUS     0x2

struct imap_mbox_cmd {
	char name[MD_MAILBOX_NAME_MAX + 1];
	char name2[MD_MAILBOX_NAME_MAX + 1];
	unsigned special;
	bool lsub;
	bool delim_query; /* LIST "ref" "": the delimiter only */
	unsigned sel, ret, status_items;
	char patterns[IMAP_LIST_PATTERNS_MAX][IMAP_PATTERN_MAX + 1];
	size_t n_patterns;
};

static struct imap_mbox_cmd *imap_mbox_state(struct imap_session *s)
{
	return imap_cmd_state_new(s, sizeof(struct imap_mbox_cmd), free);
}

static void imap_bad(struct imap_session *s, struct imap_cursor *c, const char *fallback)
{
	imap_reply(s, "BAD", "%s", c->err != NULL ? c->err : fallback);
}

/* IMAP4rev2 (RFC 9051 §5.1) and UTF8=ACCEPT (RFC 6855 §3): the name on
 * the wire is UTF-8; the store takes modified UTF-7.  Not UTF-8 at all is a syntax error (§9: a quoted
 * string holds UTF-8 only; a literal naming a mailbox likewise).  UTF-8
 * that has no modified UTF-7 form (control characters) is passed on as it
 * is: the store refuses it as an invalid name (NO [CANNOT]). */
static bool imap_mailbox_from_utf8(struct imap_cursor *c, char *out, size_t outlen)
{
	char utf8[IMAP_NAME_UTF8_MAX];
	char mutf7[IMAP_NAME_UTF8_MAX];
	size_t len;

	if (!imap_astring_copy(c, utf8, sizeof(utf8))) {
		if (c->err != NULL && strcmp(c->err, "Argument too long") == 0)
			c->err = "[LIMIT] Mailbox name too long";
		return false;
	}
	len = strlen(utf8);
	if (!imap_utf8_valid(utf8, len)) {
		c->err = "Mailbox name is not valid UTF-8";
		return false;
	}
	if (md_mutf7_from_utf8(utf8, mutf7, sizeof(mutf7)) < 0) {
		if (len >= outlen) {
			c->err = "[LIMIT] Mailbox name too long";
			return false;
		}
		memcpy(out, utf8, len + 1);
		return true;
	}
	if (strlen(mutf7) >= outlen) {
		c->err = "[LIMIT] Mailbox name too long";
		return false;
	}
	memcpy(out, mutf7, strlen(mutf7) + 1);
	return true;
}

bool imap_utf8_names(const struct imap_session *s)
{
	return s->rev2 || s->utf8_accept;
}

bool imap_mailbox_arg(const struct imap_session *s, struct imap_cursor *c, char *out,
		      size_t outlen)
{
	if (imap_utf8_names(s)) {
		if (!imap_mailbox_from_utf8(c, out, outlen))
			return false;
	} else if (!imap_astring_copy(c, out, outlen)) {
		if (c->err != NULL && strcmp(c->err, "Argument too long") == 0)
			c->err = "[LIMIT] Mailbox name too long";
		return false;
	}
	/* imap_quirks.c: Thunderbird's extra trailing separator */
	if (imap_quirk(s, IMAP_QUIRK_TRAILING_SEP)) {
		size_t len = strlen(out);

		if (len > 1 && out[len - 1] == '/')
			out[len - 1] = '\0';
	}
	/* RFC 3501 §5.1: INBOX is case-insensitive. */
	if (strcasecmp(out, "INBOX") == 0)
		memcpy(out, "INBOX", 6);
	else if (strncasecmp(out, "INBOX/", 6) == 0)
		memcpy(out, "INBOX", 5);
	return true;
}

const char *imap_mailbox_wire(const struct imap_session *s, const char *name, char *buf,
			      size_t buflen)
{
	/* a name the store holds that has no UTF-8 form goes out as stored */
	if (!imap_utf8_names(s) || md_mutf7_to_utf8(name, buf, buflen) < 0)
		return name;
	return buf;
}

void imap_buf_mailbox(const struct imap_session *s, struct buf *b, const char *name)
{
	char utf8[IMAP_NAME_UTF8_MAX];
	const char *wire = imap_mailbox_wire(s, name, utf8, sizeof(utf8));

	if (imap_utf8_names(s))
		imap_buf_utf8_string(b, wire, strlen(wire));
	else
		imap_buf_string(b, wire, strlen(wire));
}

void imap_reply_md(struct imap_session *s, enum md_result r, const char *what)
{
	switch (r) {
	case MD_OK:
		imap_reply(s, "OK", "%s completed", what);
		break;
	case MD_NOMAILBOX:
		imap_reply(s, "NO", "[NONEXISTENT] Mailbox does not exist");
		break;
	case MD_EXISTS:
		imap_reply(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
		break;
	case MD_BADNAME:
		imap_reply(s, "NO", "[CANNOT] Invalid name");
		break;
	case MD_DENIED:
		imap_reply(s, "NO", "[CANNOT] %s not permitted", what);
		break;
	case MD_QUOTA:
		imap_reply(s, "NO", "[OVERQUOTA] Quota exceeded");
		break;
	case MD_LIMIT:
		imap_reply(s, "NO", "[LIMIT] Limit exceeded");
		break;
	case MD_TOOBIG:
		imap_reply(s, "NO", "[TOOBIG] Message too large");
		break;
	case MD_BADMSG:
		imap_reply(s, "NO", "[CANNOT] Empty message or NUL octets");
		break;
	case MD_NOTFOUND:
		imap_reply(s, "NO", "[EXPUNGEISSUED] Message was expunged");
		break;
	case MD_MODIFIED:
		imap_reply(s, "NO", "[CANNOT] Modified meanwhile");
		break;
	case MD_CORRUPT:
		imap_reply(s, "NO", "[SERVERBUG] Mail index damaged; tell the administrator");
		break;
	case MD_NOSPACE: /* as Dovecot says it; RFC 5530 has no "disk full" */
		imap_reply(s, "NO", "[OVERQUOTA] Not enough disk space, try again later");
		break;
	case MD_TEMPFAIL:
	case MD_NOUSER:
		imap_reply(s, "NO", "[UNAVAILABLE] Temporary failure, try again later");
		break;
	}
}

/* ---- LIST / LSUB ---------------------------------------------------------- */

/* RFC 3501 §6.3.8: '*' matches anything, '%' anything but the delimiter.
 * INBOX matches case-insensitively.  Dynamic programming: no backtracking
 * blow-up on patterns full of wildcards. */
static bool imap_pattern_match(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern), nl = strlen(name);
	bool prev[IMAP_PATTERN_MAX + 2], cur[IMAP_PATTERN_MAX + 2];
	char upat[IMAP_PATTERN_MAX + 1];

	if (pl > IMAP_PATTERN_MAX)
		return false;
	memcpy(upat, pattern, pl + 1);
	if (strncasecmp(upat, "INBOX", 5) == 0 && (upat[5] == '\0' || upat[5] == '/'))
		memcpy(upat, "INBOX", 5);
	/* prev[j]: pattern[0..j) matches name[0..i) */
	prev[0] = true;
	for (size_t j = 1; j <= pl; j++)
		prev[j] = prev[j - 1] && (upat[j - 1] == '*' || upat[j - 1] == '%');
	for (size_t i = 1; i <= nl; i++) {
		cur[0] = false;
		for (size_t j = 1; j <= pl; j++) {
			char p = upat[j - 1];
			if (p == '*')
				cur[j] = cur[j - 1] || prev[j];
			else if (p == '%')
				cur[j] = cur[j - 1] || (prev[j] && name[i - 1] != '/');
			else
				cur[j] = prev[j - 1] && p == name[i - 1];
		}
		memcpy(prev, cur, (pl + 1) * sizeof(bool));
	}
	return prev[pl];
}

static const char *const imap_special_names[] = {
	"\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive",
};

/* RFC 3501 §6.3.10 STATUS RECENT: messages no session has been told
 * about yet (imap_recent.c); the selected mailbox: this session's. */
static uint32_t imap_status_recent(struct imap_session *s, const char *name)
{
	struct md_mailbox *mb = NULL;
	struct md_status st;
	struct md_msg *msgs = NULL;
	size_t n = 0;
	uint32_t from;

	if (s->view.mb != NULL && strcmp(name, s->view.name) == 0)
		return (uint32_t)s->view.n_recent;
	if (md_mailbox_open(s->md_user, name, &mb, &st) != MD_OK)
		return 0;
	from = imap_recent_claim(s->ctx, mb, st.uidvalidity, 0, false);
	if (from >= UINT32_MAX - 1 || md_msg_list(mb, from + 1, UINT32_MAX, 0, 0, &msgs, &n) != MD_OK)
		n = 0;
	else
		md_msg_list_free(msgs, n);
	md_mailbox_close(mb);
	return (uint32_t)n;
}

void imap_status_line(struct imap_session *s, const char *name, unsigned items,
		      const struct md_status *st)
{
	const char *sep = "";

	buf_appendf(&s->out, "* STATUS ");
	imap_buf_mailbox(s, &s->out, name);
	buf_appendf(&s->out, " (");
	if (items & IMAP_STATUS_MESSAGES) {
		buf_appendf(&s->out, "%sMESSAGES %u", sep, st->messages);
		sep = " ";
	}
	if (items & IMAP_STATUS_RECENT) {
		buf_appendf(&s->out, "%sRECENT %u", sep, imap_status_recent(s, name));
		sep = " ";
	}
	if (items & IMAP_STATUS_UIDNEXT) {
		buf_appendf(&s->out, "%sUIDNEXT %u", sep, st->uidnext);
		sep = " ";
	}
	if (items & IMAP_STATUS_UIDVALIDITY) {
		buf_appendf(&s->out, "%sUIDVALIDITY %u", sep, st->uidvalidity);
		sep = " ";
	}
	if (items & IMAP_STATUS_UNSEEN) {
		buf_appendf(&s->out, "%sUNSEEN %u", sep, st->unseen);
		sep = " ";
	}
	if (items & IMAP_STATUS_SIZE) {
		buf_appendf(&s->out, "%sSIZE %llu", sep, (unsigned long long)st->size);
		sep = " ";
	}
	if (items & IMAP_STATUS_DELETED) {
		buf_appendf(&s->out, "%sDELETED %u", sep, st->deleted);
		sep = " ";
	}
	if (items & IMAP_STATUS_HIGHESTMODSEQ) {
		buf_appendf(&s->out, "%sHIGHESTMODSEQ %llu", sep,
			    (unsigned long long)st->highestmodseq);
		sep = " ";
	}
	if (items & IMAP_STATUS_MAILBOXID)
		imap_objectid_status(s, name, sep);
	buf_appendf(&s->out, ")\r\n");
}

/* RFC 5258 §3.5 (RECURSIVEMATCH with SUBSCRIBED): list[i] gets CHILDINFO
 * when a subscribed descendant will not be listed itself, be it that it
 * does not match the pattern or that list[i] is not subscribed. */
static bool imap_list_childinfo(const struct imap_session *s, const struct imap_mbox_cmd *m,
				const struct md_mailbox_info *list, size_t n, size_t i)
{
	char utf8[IMAP_NAME_UTF8_MAX];
	size_t len = strlen(list[i].name);

	/* sorted by name: descendants ("name/...") follow, maybe after
	 * siblings like "name-2", so look at every later entry */
	for (size_t j = i + 1; j < n; j++) {
		bool match = false;
		if (strncmp(list[j].name, list[i].name, len) != 0 || list[j].name[len] != '/' ||
		    !list[j].subscribed)
			continue;
		for (size_t k = 0; k < m->n_patterns && !match; k++)
			match = imap_pattern_match(m->patterns[k],
						   imap_mailbox_wire(s, list[j].name, utf8,
								     sizeof(utf8)));
		if (!match || !list[i].subscribed)
			return true;
	}
	return false;
}

static enum imap_cmd_status imap_list_work(struct imap_session *s)
{
	struct imap_mbox_cmd *m = s->cmd_state;
	struct md_mailbox_info *list = NULL;
	size_t n = 0;
	enum md_result r;
	const char *verb = m->lsub ? "LSUB" : "LIST";

	/* RFC 3501 §6.3.8: an empty pattern asks for the delimiter. */
	if (m->delim_query) {
		imap_out(s, "* %s (\\Noselect) \"/\" \"\"\r\n", verb);
		imap_reply(s, "OK", "%s completed", verb);
		return CMD_DONE;
	}
	r = md_mailbox_list(s->md_user, &list, &n);
	if (r != MD_OK) {
		imap_reply_md(s, r, verb);
		return CMD_DONE;
	}
	for (size_t i = 0; i < n; i++) {
		const struct md_mailbox_info *mi = &list[i];
		bool match = false, subscribed_only = m->lsub || (m->sel & IMAP_LIST_SEL_SUBSCRIBED);
		bool childinfo = false;
		const char *sep = "";
		char utf8[IMAP_NAME_UTF8_MAX];
		/* RFC 9051 §6.3.9: patterns are matched against UTF-8 names */
		const char *wire = imap_mailbox_wire(s, mi->name, utf8, sizeof(utf8));

		for (size_t k = 0; k < m->n_patterns && !match; k++)
			match = imap_pattern_match(m->patterns[k], wire);
		if (!match)
			continue;
		if ((m->sel & IMAP_LIST_SEL_SPECIAL) && (mi->special_use == 0 || !mi->exists))
			continue;
		if (!m->lsub && (m->sel & IMAP_LIST_SEL_RECURSIVE) &&
		    (m->sel & IMAP_LIST_SEL_SUBSCRIBED))
			childinfo = imap_list_childinfo(s, m, list, n, i);
		if (subscribed_only && !mi->subscribed && !childinfo)
			continue;
		if (!subscribed_only && !mi->exists && !mi->has_children)
			continue; /* subscribed but gone: only LIST (SUBSCRIBED) shows it */
		buf_appendf(&s->out, "* %s (", verb);
		if (!mi->exists) {
			buf_appendf(&s->out, "%s", m->lsub || mi->has_children ? "\\Noselect"
							      : "\\NonExistent");
			sep = " ";
		}
		if (!m->lsub) {
			buf_appendf(&s->out, "%s%s", sep,
				    mi->has_children ? "\\HasChildren" : "\\HasNoChildren");
			sep = " ";
			if (mi->subscribed && (m->ret & IMAP_LIST_RET_SUBSCRIBED ||
					       m->sel & IMAP_LIST_SEL_SUBSCRIBED)) {
				buf_appendf(&s->out, "%s\\Subscribed", sep);
			}
			for (unsigned b = 0; b < 5; b++)
				if (mi->special_use & (1u << b))
					buf_appendf(&s->out, " %s", imap_special_names[b]);
		}
		buf_appendf(&s->out, ") \"/\" ");
		imap_buf_mailbox(s, &s->out, mi->name);
		if (childinfo)
			buf_appendf(&s->out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		buf_appendf(&s->out, "\r\n");
		if ((m->ret & IMAP_LIST_RET_STATUS) && mi->exists) {
			struct md_status st;
			/* RFC 5819 §2: a mailbox that fails is just left out */
			if (md_mailbox_status(s->md_user, mi->name, &st) == MD_OK)
				imap_status_line(s, mi->name, m->status_items, &st);
		}
	}
	free(list);
	imap_reply(s, "OK", "%s completed", verb);
	return CMD_DONE;
}

/* RFC 9051 §6.3.11 has no RECENT item: under IMAP4rev2 it is unknown. */
static bool imap_status_items(const struct imap_session *s, struct imap_cursor *c,
			      unsigned *items_r)
{
	char item[32];

	*items_r = 0;
	if (!imap_char(c, '('))
		return false;
	do {
		if (!imap_atom(c, item, sizeof(item), NULL))
			return false;
		if (str_ieq(item, "MESSAGES"))
			*items_r |= IMAP_STATUS_MESSAGES;
		else if (str_ieq(item, "RECENT") && !s->rev2)
			*items_r |= IMAP_STATUS_RECENT;
		else if (str_ieq(item, "UIDNEXT"))
			*items_r |= IMAP_STATUS_UIDNEXT;
		else if (str_ieq(item, "UIDVALIDITY"))
			*items_r |= IMAP_STATUS_UIDVALIDITY;
		else if (str_ieq(item, "UNSEEN"))
			*items_r |= IMAP_STATUS_UNSEEN;
		else if (str_ieq(item, "SIZE"))
			*items_r |= IMAP_STATUS_SIZE;
		else if (str_ieq(item, "DELETED"))
			*items_r |= IMAP_STATUS_DELETED;
		else if (str_ieq(item, "MAILBOXID"))
			*items_r |= IMAP_STATUS_MAILBOXID;
		else if (str_ieq(item, "HIGHESTMODSEQ"))
			*items_r |= IMAP_STATUS_HIGHESTMODSEQ;
		else {
			c->err = "Unknown STATUS item";
			return false;
		}
	} while (imap_char(c, ' '));
	return imap_char(c, ')') && *items_r != 0;
}

static bool imap_list_add_pattern(struct imap_mbox_cmd *m, const char *ref, const char *pat)
{
	size_t rl = strlen(ref);

	if (m->n_patterns >= IMAP_LIST_PATTERNS_MAX || rl + strlen(pat) > IMAP_PATTERN_MAX)
		return false;
	/* RFC 3501 §6.3.8: the reference is a prefix of the pattern */
	memcpy(m->patterns[m->n_patterns], ref, rl);
	memcpy(m->patterns[m->n_patterns] + rl, pat, strlen(pat) + 1);
	m->n_patterns++;
	return true;
}

/* A reference or pattern; UTF-8 under IMAP4rev2 (RFC 9051 §6.3.9) or
 * UTF8=ACCEPT (RFC 6855 §3). */
static bool imap_list_pattern_arg(const struct imap_session *s, struct imap_cursor *c,
				  char *out, size_t outlen)
{
	if (!imap_list_mailbox(c, out, outlen))
		return false;
	if (imap_utf8_names(s) && !imap_utf8_valid(out, strlen(out))) {
		c->err = "Mailbox pattern is not valid UTF-8";
		return false;
	}
	return true;
}

static void imap_list_parse(struct imap_session *s, struct imap_cursor *c, bool lsub)
{
	struct imap_mbox_cmd *m = imap_mbox_state(s);
	char ref[IMAP_PATTERN_MAX + 1], pat[IMAP_PATTERN_MAX + 1], opt[32];

	if (m == NULL)
		return;
	m->lsub = lsub;
	if (!imap_sp(c))
		goto bad;
	if (!lsub && imap_char(c, '(')) {
		/* RFC 5258 selection options */
		while (!imap_char(c, ')')) {
			if (!imap_atom(c, opt, sizeof(opt), NULL))
				goto bad;
			if (str_ieq(opt, "SUBSCRIBED"))
				m->sel |= IMAP_LIST_SEL_SUBSCRIBED;
			else if (str_ieq(opt, "SPECIAL-USE"))
				m->sel |= IMAP_LIST_SEL_SPECIAL;
			else if (str_ieq(opt, "RECURSIVEMATCH"))
				m->sel |= IMAP_LIST_SEL_RECURSIVE;
			else if (!str_ieq(opt, "REMOTE")) { /* no remote mailboxes here */
				c->err = "Unknown LIST selection option";
				goto bad;
			}
			imap_char(c, ' ');
		}
		/* RFC 5258 §3.1: RECURSIVEMATCH only with another option */
		if ((m->sel & IMAP_LIST_SEL_RECURSIVE) &&
		    !(m->sel & (IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_SPECIAL))) {
			c->err = "RECURSIVEMATCH needs another selection option";
			goto bad;
		}
		if (!imap_sp(c))
			goto bad;
	}
	if (!imap_list_pattern_arg(s, c, ref, sizeof(ref)) || !imap_sp(c))
		goto bad;
	if (!lsub && imap_char(c, '(')) {
		do {
			if (!imap_list_pattern_arg(s, c, pat, sizeof(pat)) ||
			    !imap_list_add_pattern(m, ref, pat))
				goto bad;
		} while (imap_char(c, ' '));
		if (!imap_char(c, ')'))
			goto bad;
	} else {
		if (!imap_list_pattern_arg(s, c, pat, sizeof(pat)))
			goto bad;
		if (pat[0] == '\0')
			m->delim_query = true;
		else if (!imap_list_add_pattern(m, ref, pat))
			goto bad;
	}
	if (!lsub && imap_char(c, ' ')) {
		if (!imap_atom(c, opt, sizeof(opt), NULL) || !str_ieq(opt, "RETURN") ||
		    !imap_sp(c) || !imap_char(c, '('))
			goto bad;
		while (!imap_char(c, ')')) {
			if (!imap_atom(c, opt, sizeof(opt), NULL))
				goto bad;
			if (str_ieq(opt, "SUBSCRIBED"))
				m->ret |= IMAP_LIST_RET_SUBSCRIBED;
			else if (str_ieq(opt, "STATUS")) {
				if (!imap_sp(c) || !imap_status_items(s, c, &m->status_items))
					goto bad;
				m->ret |= IMAP_LIST_RET_STATUS;
			} else if (!str_ieq(opt, "CHILDREN") && !str_ieq(opt, "SPECIAL-USE")) {
				c->err = "Unknown LIST return option";
				goto bad;
			}
			imap_char(c, ' ');
		}
	}
	if (!imap_at_end(c))
		goto bad;
	imap_job_start(s, imap_list_work, NULL);
	return;
bad:
	imap_bad(s, c, lsub ? "Invalid LSUB arguments" : "Invalid LIST arguments");
}

void imap_cmd_list(struct imap_session *s, struct imap_cursor *args)
{
	imap_list_parse(s, args, false);
}

void imap_cmd_lsub(struct imap_session *s, struct imap_cursor *args)
{
	imap_list_parse(s, args, true);
}

void imap_cmd_namespace(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "NAMESPACE takes no arguments");
		return;
	}
	/* RFC 2342: one personal namespace, no others */
	imap_out(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_reply(s, "OK", "Namespace completed");
}

/* ---- CREATE / DELETE / RENAME / (UN)SUBSCRIBE / STATUS --------------------- */

static enum imap_cmd_status imap_create_work(struct imap_session *s)
{
	struct imap_mbox_cmd *m = s->cmd_state;

	imap_reply_md(s, md_mailbox_create(s->md_user, m->name, m->special), "CREATE");
	return CMD_DONE;
}

static enum imap_cmd_status imap_delete_work(struct imap_session *s)
{
	struct imap_mbox_cmd *m = s->cmd_state;

	imap_reply_md(s, md_mailbox_delete(s->md_user, m->name), "DELETE");
	return CMD_DONE;
}

static enum imap_cmd_status imap_rename_work(struct imap_session *s)
{
	struct imap_mbox_cmd *m = s->cmd_state;

	imap_reply_md(s, md_mailbox_rename(s->md_user, m->name, m->name2), "RENAME");
	return CMD_DONE;
}

static enum imap_cmd_status imap_subscribe_work(struct imap_session *s)
{
	struct imap_mbox_cmd *m = s->cmd_state;

	enum md_result r = md_mailbox_subscribe(s->md_user, m->name, m->special != 0);

	/* the store's hook reports mailboxes, not subscriptions: NOTIFY
	 * SubscriptionChange (RFC 5465 §5.6) hears of it here */
	if (r == MD_OK)
		imap_ctx_changed(s->ctx, md_user_id(s->md_user), 0);
	imap_reply_md(s, r, m->special != 0 ? "SUBSCRIBE" : "UNSUBSCRIBE");
	return CMD_DONE;
}

static enum imap_cmd_status imap_status_work(struct imap_session *s)
{
	struct imap_mbox_cmd *m = s->cmd_state;
	struct md_status st;
	enum md_result r = md_mailbox_status(s->md_user, m->name, &st);

	if (r == MD_OK)
		imap_status_line(s, m->name, m->status_items, &st);
	imap_reply_md(s, r, "STATUS");
	return CMD_DONE;
}

/* RFC 6154 §5: CREATE name (USE (\Sent ...)) */
static bool imap_create_use(struct imap_cursor *c, unsigned *special_r)
{
	char word[32];

	if (!imap_char(c, '(') || !imap_atom(c, word, sizeof(word), NULL) || !str_ieq(word, "USE") ||
	    !imap_sp(c) || !imap_char(c, '('))
		return false;
	do {
		unsigned b;
		if (!imap_atom(c, word, sizeof(word), "\\"))
			return false;
		for (b = 0; b < 5; b++)
			if (str_ieq(word, imap_special_names[b]))
				break;
		if (b == 5) {
			c->err = "[USEATTR] Unsupported special-use attribute";
			return false;
		}
		*special_r |= 1u << b;
	} while (imap_char(c, ' '));
	return imap_char(c, ')') && imap_char(c, ')');
}

void imap_cmd_create(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_mbox_cmd *m = imap_mbox_state(s);
	size_t len;

	if (m == NULL)
		return;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, m->name, sizeof(m->name)) ||
	    (imap_char(args, ' ') && !imap_create_use(args, &m->special)) || !imap_at_end(args)) {
		if (args->err != NULL && strncmp(args->err, "[USEATTR]", 9) == 0)
			imap_reply(s, "NO", "%s", args->err);
		else
			imap_bad(s, args, "Invalid CREATE arguments");
		return;
	}
	/* RFC 3501 §6.3.3: a trailing delimiter names the same mailbox */
	len = strlen(m->name);
	if (len > 1 && m->name[len - 1] == '/')
		m->name[len - 1] = '\0';
	imap_job_start(s, imap_create_work, NULL);
}

static bool imap_one_mailbox(struct imap_session *s, struct imap_cursor *args,
			     struct imap_mbox_cmd **m_r)
{
	struct imap_mbox_cmd *m = imap_mbox_state(s);

	if (m == NULL)
		return false;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, m->name, sizeof(m->name))) {
		imap_bad(s, args, "Invalid mailbox argument");
		return false;
	}
	*m_r = m;
	return true;
}

void imap_cmd_delete(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_mbox_cmd *m;

	if (!imap_one_mailbox(s, args, &m))
		return;
	if (!imap_at_end(args)) {
		imap_bad(s, args, "Invalid DELETE arguments");
		return;
	}
	if (s->state == IMAP_STATE_SELECTED && strcmp(m->name, s->view.name) == 0) {
		imap_reply(s, "NO", "[INUSE] Mailbox is selected; CLOSE it first");
		return;
	}
	imap_job_start(s, imap_delete_work, NULL);
}

void imap_cmd_rename(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_mbox_cmd *m;

	if (!imap_one_mailbox(s, args, &m))
		return;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, m->name2, sizeof(m->name2)) ||
	    !imap_at_end(args)) {
		imap_bad(s, args, "Invalid RENAME arguments");
		return;
	}
	imap_job_start(s, imap_rename_work, NULL);
}

static void imap_subscribe_cmd(struct imap_session *s, struct imap_cursor *args, bool on)
{
	struct imap_mbox_cmd *m;

	if (!imap_one_mailbox(s, args, &m))
		return;
	if (!imap_at_end(args)) {
		imap_bad(s, args, "Invalid arguments");
		return;
	}
	m->special = on ? 1 : 0;
	imap_job_start(s, imap_subscribe_work, NULL);
}

void imap_cmd_subscribe(struct imap_session *s, struct imap_cursor *args)
{
	imap_subscribe_cmd(s, args, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, struct imap_cursor *args)
{
	imap_subscribe_cmd(s, args, false);
}

void imap_cmd_status(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_mbox_cmd *m;

	if (!imap_one_mailbox(s, args, &m))
		return;
	if (!imap_sp(args) || !imap_status_items(s, args, &m->status_items) || !imap_at_end(args)) {
		imap_bad(s, args, "Invalid STATUS arguments");
		return;
	}
	if (m->status_items & IMAP_STATUS_HIGHESTMODSEQ)
		s->condstore = true; /* RFC 7162 §3.1: a CONDSTORE enabling command */
	imap_job_start(s, imap_status_work, NULL);
}
