/* METADATA (RFC 5464): GETMETADATA and SETMETADATA for server entries
 * (mailbox "") and mailbox entries, /private and /shared alike (every
 * mailbox here has one user, so both are that user's), kept durably by the
 * store (md_metadata_get/set, ROOT/postern-metadata).  Limits: a value is
 * at most MD_METADATA_VALUE_MAX octets (NO [METADATA MAXSIZE n]), a
 * mailbox or the server has at most MD_METADATA_ENTRIES_MAX entries (NO
 * [METADATA TOOMANY]); GETMETADATA's MAXSIZE option leaves longer values
 * out and says [METADATA LONGENTRIES n].  Entries that do not exist are
 * not listed (RFC 5464 §4.2 lets the server omit them).  Values are
 * strings or NIL; literal8 (values with NUL octets) is not accepted.
 *
 * Memory: struct imap_metadata_cmd is s->cmd_state, freed with the reply
 * (imap_metadata_free); it owns copies of every name and value.
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"

#define IMAP_METADATA_ITEMS_MAX 100   /* entries named in one command (ours) */
#define IMAP_METADATA_DEPTH_INF (-1)  /* DEPTH infinity (RFC 5464 §4.2.2) */

struct imap_metadata_cmd {
	char mailbox[MD_MAILBOX_NAME_MAX + 1]; /* "" for the server */
	struct md_metadata *items;  /* GET: names asked for; SET: the changes */
	size_t n;
	bool set;
	int depth;                  /* GET: 0, 1, IMAP_METADATA_DEPTH_INF */
	bool has_maxsize;
	uint32_t maxsize;
};

static void imap_metadata_free(void *arg)
{
	struct imap_metadata_cmd *m = arg;

	for (size_t i = 0; i < m->n; i++) {
		free(m->items[i].name);
		free(m->items[i].value);
	}
	free(m->items);
	free(m);
}

/* RFC 5464 §3.2: "/private/..." or "/shared/...", printable ASCII without
 * '*' and '%', no "//", no trailing '/'.  Lower-cased into out (names are
 * case-insensitive).  A GETMETADATA may name "/private" or "/shared"
 * itself (with DEPTH: every entry under it). */
static bool imap_metadata_name(const char *s, size_t len, char *out, bool get)
{
	if (len == 0 || len > MD_METADATA_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '*' || c == '%' ||
		    (c == '/' && (i + 1 == len || s[i + 1] == '/')))
			return false;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[len] = '\0';
	if (get && (strcmp(out, "/private") == 0 || strcmp(out, "/shared") == 0))
		return true;
	return (strncmp(out, "/private/", 9) == 0 && len > 9) ||
	       (strncmp(out, "/shared/", 8) == 0 && len > 8);
}

/* One entry name (and for SET its value) appended to m->items. */
static bool imap_metadata_item(struct imap_metadata_cmd *m, struct imap_cursor *c)
{
	char name[MD_METADATA_NAME_MAX + 1];
	const char *s, *v = NULL;
	size_t len, vlen = 0;
	struct md_metadata *it;

	if (m->n >= IMAP_METADATA_ITEMS_MAX) {
		c->err = "[LIMIT] Too many entries in one command";
		return false;
	}
	if (!imap_astring(c, &s, &len) || !imap_metadata_name(s, len, name, !m->set)) {
		c->err = c->err != NULL ? c->err : "Invalid entry name";
		return false;
	}
	if (m->set && (!imap_sp(c) || !imap_nstring(c, &v, &vlen) ||
		       (v != NULL && memchr(v, '\0', vlen) != NULL))) {
		c->err = "Invalid entry value";
		return false;
	}
	if (m->n == 0 || (m->n & (m->n - 1)) == 0) {
		struct md_metadata *grown =
			realloc(m->items, (m->n ? m->n * 2 : 1) * sizeof(*grown));
		if (grown == NULL)
			return false;
		m->items = grown;
	}
	it = &m->items[m->n];
	memset(it, 0, sizeof(*it));
	it->name = strdup(name);
	if (v != NULL) {
		it->value = malloc(vlen + 1);
		if (it->value != NULL) {
			memcpy(it->value, v, vlen);
			it->value[vlen] = '\0';
		}
		it->value_len = vlen;
	}
	m->n++;
	return it->name != NULL && (v == NULL || it->value != NULL);
}

/* entries = entry / "(" entry *(SP entry) ")"; for SET the list of pairs. */
static bool imap_metadata_items(struct imap_metadata_cmd *m, struct imap_cursor *c)
{
	if (!imap_char(c, '('))
		return !m->set && imap_metadata_item(m, c);
	do {
		if (!imap_metadata_item(m, c))
			return false;
	} while (imap_char(c, ' '));
	return imap_char(c, ')');
}

/* RFC 5464 §4.2: "(" MAXSIZE n / DEPTH 0|1|infinity ... ")" */
static bool imap_metadata_options(struct imap_metadata_cmd *m, struct imap_cursor *c)
{
	char opt[16], val[16];

	do {
		if (!imap_atom(c, opt, sizeof(opt), NULL) || !imap_sp(c))
			return false;
		if (str_ieq(opt, "MAXSIZE")) {
			if (!imap_number(c, &m->maxsize, false))
				return false;
			m->has_maxsize = true;
		} else if (str_ieq(opt, "DEPTH") && imap_atom(c, val, sizeof(val), NULL)) {
			if (strcmp(val, "0") == 0)
				m->depth = 0;
			else if (strcmp(val, "1") == 0)
				m->depth = 1;
			else if (str_ieq(val, "infinity"))
				m->depth = IMAP_METADATA_DEPTH_INF;
			else
				return false;
		} else {
			return false;
		}
	} while (imap_char(c, ' '));
	return imap_char(c, ')');
}

/* Does the stored entry name answer the request q at this depth? */
static bool imap_metadata_match(const char *name, const char *q, int depth)
{
	size_t qlen = strlen(q);

	if (strcmp(name, q) == 0)
		return true;
	if (depth == 0 || strncmp(name, q, qlen) != 0 || name[qlen] != '/')
		return false;
	return depth == IMAP_METADATA_DEPTH_INF || strchr(name + qlen + 1, '/') == NULL;
}

static void imap_metadata_mailbox(struct imap_session *s, const char *mailbox)
{
	if (mailbox[0] == '\0')
		imap_out(s, "\"\"");
	else
		imap_buf_mailbox(s, &s->out, mailbox);
}

/* The METADATA response for what was asked; the largest value left out
 * by MAXSIZE into *longest_r. */
static void imap_metadata_answer(struct imap_session *s, struct imap_metadata_cmd *m,
				 const struct md_metadata *list, size_t n, size_t *longest_r)
{
	bool any = false;

	*longest_r = 0;
	for (size_t i = 0; i < n; i++) {
		bool wanted = false;
		for (size_t j = 0; j < m->n && !wanted; j++)
			wanted = imap_metadata_match(list[i].name, m->items[j].name, m->depth);
		if (!wanted)
			continue;
		if (m->has_maxsize && list[i].value_len > m->maxsize) {
			if (list[i].value_len > *longest_r)
				*longest_r = list[i].value_len;
			continue;
		}
		if (!any) {
			imap_out(s, "* METADATA ");
			imap_metadata_mailbox(s, m->mailbox);
			imap_out(s, " (");
		} else {
			imap_out(s, " ");
		}
		any = true;
		imap_out(s, "%s ", list[i].name);
		imap_buf_string(&s->out, list[i].value, list[i].value_len);
	}
	if (any)
		imap_out(s, ")\r\n");
}

static void imap_metadata_reply_md(struct imap_session *s, enum md_result r)
{
	if (r == MD_TOOBIG)
		imap_reply(s, "NO", "[METADATA MAXSIZE %u] Value too long",
			   (unsigned)MD_METADATA_VALUE_MAX);
	else if (r == MD_LIMIT)
		imap_reply(s, "NO", "[METADATA TOOMANY] Too many entries");
	else
		imap_reply_md(s, r, "METADATA");
}

static enum imap_cmd_status imap_metadata_work(struct imap_session *s)
{
	struct imap_metadata_cmd *m = s->cmd_state;
	struct md_metadata *list = NULL;
	struct md_status st;
	size_t n = 0, longest;
	enum md_result r = MD_OK;

	if (m->mailbox[0] != '\0')
		r = md_mailbox_status(s->md_user, m->mailbox, &st);
	if (r == MD_OK && m->set)
		r = md_metadata_set(s->md_user, m->mailbox, m->items, m->n);
	else if (r == MD_OK)
		r = md_metadata_get(s->md_user, m->mailbox, &list, &n);
	if (r != MD_OK) {
		imap_metadata_reply_md(s, r);
		return CMD_DONE;
	}
	if (m->set) {
		imap_reply(s, "OK", "SETMETADATA completed");
		return CMD_DONE;
	}
	imap_metadata_answer(s, m, list, n, &longest);
	md_metadata_free(list, n);
	if (longest > 0)
		imap_reply(s, "OK", "[METADATA LONGENTRIES %zu] GETMETADATA completed", longest);
	else
		imap_reply(s, "OK", "GETMETADATA completed");
	return CMD_DONE;
}

static void imap_metadata_bad(struct imap_session *s, struct imap_cursor *c, const char *text)
{
	imap_reply(s, "BAD", "%s", c->err != NULL ? c->err : text);
}

/* RFC 5464 §4.2: GETMETADATA [options] mailbox entries */
void imap_cmd_getmetadata(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_metadata_cmd *m = imap_cmd_state_new(s, sizeof(*m), imap_metadata_free);

	if (m == NULL)
		return;
	m->set = false;
	if (!imap_sp(args) || (imap_char(args, '(') && (!imap_metadata_options(m, args) ||
							!imap_sp(args))) ||
	    !imap_mailbox_arg(s, args, m->mailbox, sizeof(m->mailbox)) || !imap_sp(args) ||
	    !imap_metadata_items(m, args) || !imap_at_end(args)) {
		imap_metadata_bad(s, args, "Invalid GETMETADATA arguments");
		return;
	}
	imap_job_start(s, imap_metadata_work, NULL);
}

/* RFC 5464 §4.3: SETMETADATA mailbox (entry value ...) */
void imap_cmd_setmetadata(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_metadata_cmd *m = imap_cmd_state_new(s, sizeof(*m), imap_metadata_free);

	if (m == NULL)
		return;
	m->set = true;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, m->mailbox, sizeof(m->mailbox)) ||
	    !imap_sp(args) || !imap_metadata_items(m, args) || !imap_at_end(args)) {
		imap_metadata_bad(s, args, "Invalid SETMETADATA arguments");
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		if (m->items[i].value_len > MD_METADATA_VALUE_MAX) {
			imap_reply(s, "NO", "[METADATA MAXSIZE %u] Value too long",
				   (unsigned)MD_METADATA_VALUE_MAX);
			return;
		}
	}
	imap_job_start(s, imap_metadata_work, NULL);
}
