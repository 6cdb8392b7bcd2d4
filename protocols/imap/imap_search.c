/* SEARCH and UID SEARCH (RFC 3501 §6.4.4) with ESEARCH (RFC 4731: RETURN
 * MIN MAX COUNT ALL) and SEARCHRES (RFC 5182: RETURN (SAVE), "$").
 *
 * The search program is parsed on the loop into a small tree of nodes
 * (bounded: IMAP_SEARCH_NODES_MAX nodes, IMAP_SEARCH_DEPTH_MAX nesting);
 * a worker walks the view's messages in batches and evaluates it.  SORT
 * and THREAD (imap_sort.c, imap_thread.c) use the same program through
 * imap_search_parse() / imap_search_match(), and SORT's ESORT answer goes
 * through imap_search_esearch().
 *
 * Text keys (FROM, TO, CC, BCC, SUBJECT, HEADER, BODY, TEXT) go through
 * imap_search_text(): the store's decoded text of the message (md_msg_text:
 * RFC 2047 words, quoted-printable and base64 undone, charsets converted
 * to UTF-8, case folded beyond ASCII), made once per message however many
 * text keys the SEARCH has. */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "store.h"

#define IMAP_SEARCH_NODES_MAX 256        /* keys in one SEARCH */
/* Sequence-set keys in one SEARCH: each is resolved to a UID array as
 * large as the mailbox, so their number bounds the command's memory. */
#define IMAP_SEARCH_SETS_MAX 16
#define IMAP_SEARCH_STRING_MAX 1024      /* octets of a search string */
#define IMAP_DAY 86400

enum imap_skey {
	SK_ALL, SK_AND, SK_OR, SK_NOT, SK_FLAG, SK_UNFLAG, SK_KEYWORD, SK_UNKEYWORD,
	SK_RECENT, SK_NEW, SK_OLD, /* \Recent in this session (imap_recent.c) */
	SK_LARGER, SK_SMALLER, SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE, SK_SENTON,
	SK_SENTSINCE, SK_SET, SK_HEADER, SK_BODY, SK_TEXT,
	SK_EMAILID, SK_THREADID, /* RFC 8474 §6 (imap_objectid.c) */
	SK_MODSEQ, /* RFC 7162 §3.1.5 */
	SK_SAVEDBEFORE, SK_SAVEDON, SK_SAVEDSINCE, /* RFC 8514 §4 */
};

struct imap_snode {
	enum imap_skey key;
	int child, next;       /* node indexes, -1 for none */
	unsigned flag;
	uint64_t n;
	int64_t t;
	char *str;             /* keyword, search string */
	size_t len;
	char field[64];        /* HEADER field */
	uint32_t *uids;        /* SK_SET: resolved UIDs, ascending */
	size_t n_uids;
	int kw;                /* keyword index, -1 unknown */
};

struct imap_search_cmd {
	struct imap_snode nodes[IMAP_SEARCH_NODES_MAX];
	int n_nodes;
	int n_sets;
	int root;
	bool esearch;
	struct imap_return ret;
	bool need_meta, need_path;
	uint32_t *matches;
	size_t n_matches;
	unsigned text_what;    /* MD_TEXT_* the text keys need */
	struct md_text *text;  /* decoded text of message text_uid */
	uint32_t text_uid;
	bool has_modseq;       /* a MODSEQ key: answer with the highest */
	uint64_t max_modseq;   /* of the matches */
};

void imap_search_free(void *arg)
{
	struct imap_search_cmd *c = arg;

	if (c == NULL)
		return;
	for (int i = 0; i < c->n_nodes; i++) {
		free(c->nodes[i].str);
		free(c->nodes[i].uids);
	}
	free(c->matches);
	md_text_free(c->text);
	free(c);
}

/* ---- parsing ---------------------------------------------------------------- */

static int imap_snode_new(struct imap_search_cmd *c, struct imap_cursor *cur, enum imap_skey key)
{
	struct imap_snode *n;

	if (c->n_nodes >= IMAP_SEARCH_NODES_MAX) {
		cur->err = "[LIMIT] Too many search keys";
		return -1;
	}
	if (key == SK_SET && ++c->n_sets > IMAP_SEARCH_SETS_MAX) {
		cur->err = "[LIMIT] Too many sequence sets in one SEARCH";
		return -1;
	}
	n = &c->nodes[c->n_nodes];
	memset(n, 0, sizeof(*n));
	n->key = key;
	n->child = n->next = -1;
	n->kw = -1;
	return c->n_nodes++;
}

static bool imap_search_string(struct imap_cursor *cur, struct imap_snode *n)
{
	const char *s;
	size_t len;

	if (!imap_sp(cur) || !imap_astring(cur, &s, &len))
		return false;
	if (len > IMAP_SEARCH_STRING_MAX) {
		cur->err = "[LIMIT] Search string too long";
		return false;
	}
	if (memchr(s, '\0', len) != NULL) {
		cur->err = "NUL in search string"; /* no text can contain it */
		return false;
	}
	n->str = malloc(len + 1);
	if (n->str == NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		n->str[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
	n->str[len] = '\0';
	n->len = len;
	return true;
}

static int imap_search_key(struct imap_session *s, struct imap_search_cmd *c,
			   struct imap_cursor *cur, unsigned depth);

/* key *(SP key) up to ')' or the end: an AND node */
static int imap_search_list(struct imap_session *s, struct imap_search_cmd *c,
			    struct imap_cursor *cur, unsigned depth, bool paren)
{
	int and = imap_snode_new(c, cur, SK_AND), last = -1;

	if (and < 0)
		return -1;
	for (;;) {
		int k = imap_search_key(s, c, cur, depth + 1);
		if (k < 0)
			return k;
		if (last < 0)
			c->nodes[and].child = k;
		else
			c->nodes[last].next = k;
		last = k;
		if (paren && imap_char(cur, ')'))
			return and;
		if (!paren && imap_at_end(cur))
			return and;
		if (!imap_sp(cur))
			return -1;
	}
}

static const struct {
	const char *name;
	enum imap_skey key;
	unsigned flag;
} imap_search_flags[] = {
	{ "ANSWERED", SK_FLAG, MD_FLAG_ANSWERED },   { "DELETED", SK_FLAG, MD_FLAG_DELETED },
	{ "DRAFT", SK_FLAG, MD_FLAG_DRAFT },         { "FLAGGED", SK_FLAG, MD_FLAG_FLAGGED },
	{ "SEEN", SK_FLAG, MD_FLAG_SEEN },           { "UNANSWERED", SK_UNFLAG, MD_FLAG_ANSWERED },
	{ "UNDELETED", SK_UNFLAG, MD_FLAG_DELETED }, { "UNDRAFT", SK_UNFLAG, MD_FLAG_DRAFT },
	{ "UNFLAGGED", SK_UNFLAG, MD_FLAG_FLAGGED }, { "UNSEEN", SK_UNFLAG, MD_FLAG_SEEN },
	/* RFC 3501 §6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT */
	{ "OLD", SK_OLD, 0 },                        { "ALL", SK_ALL, 0 },
	{ "NEW", SK_NEW, 0 },                        { "RECENT", SK_RECENT, 0 },
	/* RFC 8514 §4: every mailbox here keeps save dates */
	{ "SAVEDATESUPPORTED", SK_ALL, 0 },
};

static const struct {
	const char *name;
	enum imap_skey key;
} imap_search_dates[] = {
	{ "BEFORE", SK_BEFORE },         { "ON", SK_ON },         { "SINCE", SK_SINCE },
	{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
	{ "SAVEDBEFORE", SK_SAVEDBEFORE }, { "SAVEDON", SK_SAVEDON }, { "SAVEDSINCE", SK_SAVEDSINCE },
};

static int imap_search_key(struct imap_session *s, struct imap_search_cmd *c,
			   struct imap_cursor *cur, unsigned depth)
{
	char word[32];
	int k;

	if (depth > IMAP_SEARCH_DEPTH_MAX) {
		cur->err = "[LIMIT] Search program nested too deeply";
		return -1;
	}
	if (imap_char(cur, '('))
		return imap_search_list(s, c, cur, depth, true);
	if (imap_peek(cur, '$') || (cur->p < cur->end && *cur->p >= '1' && *cur->p <= '9') ||
	    imap_peek(cur, '*')) {
		k = imap_snode_new(c, cur, SK_SET);
		if (k < 0)
			return -1;
		if (!imap_set_arg(s, cur, false, &c->nodes[k].uids, &c->nodes[k].n_uids))
			return -2; /* replied already */
		return k;
	}
	if (!imap_atom(cur, word, sizeof(word), NULL))
		return -1;
	for (size_t i = 0; i < sizeof(imap_search_flags) / sizeof(imap_search_flags[0]); i++)
		if (str_ieq(word, imap_search_flags[i].name)) {
			/* RFC 9051 §6.4.4 dropped them with \Recent */
			enum imap_skey key = imap_search_flags[i].key;
			if (s->rev2 && (key == SK_RECENT || key == SK_NEW || key == SK_OLD)) {
				cur->err = "Unknown search key";
				return -1;
			}
			k = imap_snode_new(c, cur, imap_search_flags[i].key);
			if (k >= 0)
				c->nodes[k].flag = imap_search_flags[i].flag;
			return k;
		}
	for (size_t i = 0; i < sizeof(imap_search_dates) / sizeof(imap_search_dates[0]); i++)
		if (str_ieq(word, imap_search_dates[i].name)) {
			k = imap_snode_new(c, cur, imap_search_dates[i].key);
			if (k < 0 || !imap_sp(cur) || !imap_date(cur, &c->nodes[k].t))
				return -1;
			if (imap_search_dates[i].key >= SK_SENTBEFORE &&
			    imap_search_dates[i].key <= SK_SENTSINCE)
				c->need_meta = true;
			return k;
		}
	if (str_ieq(word, "NOT")) {
		k = imap_snode_new(c, cur, SK_NOT);
		if (k < 0 || !imap_sp(cur))
			return -1;
		c->nodes[k].child = imap_search_key(s, c, cur, depth + 1);
		return c->nodes[k].child < 0 ? c->nodes[k].child : k;
	}
	if (str_ieq(word, "OR")) {
		int a, b;
		k = imap_snode_new(c, cur, SK_OR);
		if (k < 0 || !imap_sp(cur))
			return -1;
		a = imap_search_key(s, c, cur, depth + 1);
		if (a < 0)
			return a;
		if (!imap_sp(cur))
			return -1;
		b = imap_search_key(s, c, cur, depth + 1);
		if (b < 0)
			return b;
		c->nodes[k].child = a;
		c->nodes[a].next = b;
		return k;
	}
	if (str_ieq(word, "UID")) {
		k = imap_snode_new(c, cur, SK_SET);
		if (k < 0 || !imap_sp(cur))
			return -1;
		if (!imap_set_arg(s, cur, true, &c->nodes[k].uids, &c->nodes[k].n_uids))
			return -2;
		return k;
	}
	if (str_ieq(word, "MODSEQ")) {
		/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer: our
		 * modseq is per message, so the entry is checked and ignored */
		const char *entry;
		size_t elen;
		char type[8];

		k = imap_snode_new(c, cur, SK_MODSEQ);
		if (k < 0 || !imap_sp(cur))
			return -1;
		if (imap_peek(cur, '"') &&
		    (!imap_string(cur, &entry, &elen) || !imap_sp(cur) ||
		     !imap_atom(cur, type, sizeof(type), NULL) || !imap_sp(cur) ||
		     !(str_ieq(type, "priv") || str_ieq(type, "shared") || str_ieq(type, "all"))))
			return -1;
		if (!imap_modseq_arg(cur, &c->nodes[k].n, true))
			return -1;
		c->has_modseq = true;
		s->condstore = true; /* RFC 7162 §3.1: CONDSTORE enabling */
		return k;
	}
	if (str_ieq(word, "LARGER") || str_ieq(word, "SMALLER")) {
		k = imap_snode_new(c, cur, str_ieq(word, "LARGER") ? SK_LARGER : SK_SMALLER);
		if (k < 0 || !imap_sp(cur) || !imap_number64(cur, &c->nodes[k].n))
			return -1;
		return k;
	}
	if (str_ieq(word, "KEYWORD") || str_ieq(word, "UNKEYWORD")) {
		char kw[MD_KEYWORD_LEN_MAX + 1];
		k = imap_snode_new(c, cur, str_ieq(word, "KEYWORD") ? SK_KEYWORD : SK_UNKEYWORD);
		if (k < 0 || !imap_sp(cur) || !imap_atom(cur, kw, sizeof(kw), NULL))
			return -1;
		c->nodes[k].str = strdup(kw);
		return c->nodes[k].str != NULL ? k : -1;
	}
	if (str_ieq(word, "EMAILID") || str_ieq(word, "THREADID")) {
		k = imap_snode_new(c, cur, str_ieq(word, "EMAILID") ? SK_EMAILID : SK_THREADID);
		if (k < 0 || !imap_objectid_arg(cur, &c->nodes[k].str))
			return -1;
		c->need_path = true;
		return k;
	}
	if (str_ieq(word, "HEADER")) {
		const char *f;
		size_t flen;
		k = imap_snode_new(c, cur, SK_HEADER);
		if (k < 0 || !imap_sp(cur) || !imap_astring(cur, &f, &flen) ||
		    flen >= sizeof(c->nodes[k].field) || memchr(f, '\0', flen) != NULL)
			return -1;
		memcpy(c->nodes[k].field, f, flen);
		c->nodes[k].field[flen] = '\0';
		if (!imap_search_string(cur, &c->nodes[k]))
			return -1;
		c->need_meta = c->need_path = true;
		c->text_what |= MD_TEXT_HEADERS;
		return k;
	}
	{
		static const char *const hdrs[] = { "FROM", "TO", "CC", "BCC", "SUBJECT" };
		for (size_t i = 0; i < 5; i++)
			if (str_ieq(word, hdrs[i])) {
				k = imap_snode_new(c, cur, SK_HEADER);
				if (k < 0)
					return -1;
				str_copy(c->nodes[k].field, hdrs[i], sizeof(c->nodes[k].field));
				if (!imap_search_string(cur, &c->nodes[k]))
					return -1;
				c->need_meta = c->need_path = true;
				c->text_what |= MD_TEXT_HEADERS;
				return k;
			}
	}
	if (str_ieq(word, "BODY") || str_ieq(word, "TEXT")) {
		k = imap_snode_new(c, cur, str_ieq(word, "BODY") ? SK_BODY : SK_TEXT);
		if (k < 0 || !imap_search_string(cur, &c->nodes[k]))
			return -1;
		c->need_meta = c->need_path = true;
		c->text_what |= str_ieq(word, "BODY") ? MD_TEXT_BODY : MD_TEXT_HEADERS | MD_TEXT_BODY;
		return k;
	}
	cur->err = "Unknown search key";
	return -1;
}

/* The program alone (SORT and THREAD, RFC 5256 §3: "searching criteria"
 * as SEARCH's), to the end of the arguments. */
struct imap_search_cmd *imap_search_parse(struct imap_session *s, struct imap_cursor *args,
					  bool *replied_r)
{
	struct imap_search_cmd *c = calloc(1, sizeof(*c));

	*replied_r = false;
	if (c == NULL) {
		args->err = "[SERVERBUG] Out of memory";
		return NULL;
	}
	c->root = imap_search_list(s, c, args, 0, false);
	if (c->root < 0) {
		*replied_r = c->root == -2 || s->out.len > 0;
		imap_search_free(c);
		return NULL;
	}
	return c;
}

unsigned imap_search_needs(const struct imap_search_cmd *c)
{
	return (c->need_meta ? MD_READ_META : 0) | (c->need_path ? MD_READ_PATH : 0);
}

bool imap_search_matches_all(const struct imap_search_cmd *c)
{
	const struct imap_snode *root = &c->nodes[c->root];

	if (root->key != SK_AND)
		return root->key == SK_ALL;
	for (int k = root->child; k >= 0; k = c->nodes[k].next)
		if (c->nodes[k].key != SK_ALL)
			return false;
	return true;
}

/* The UTC day (00:00) of t: dates only, time of day ignored (RFC 3501
 * §6.4.4). */
static int64_t imap_search_day(int64_t t)
{
	return t - ((t % IMAP_DAY) + IMAP_DAY) % IMAP_DAY;
}

static bool imap_search_eval(struct imap_session *s, struct imap_search_cmd *c, int k,
			     struct md_msg *m);

bool imap_search_match(struct imap_session *s, struct imap_search_cmd *c, struct md_msg *m)
{
	return imap_search_eval(s, c, c->root, m);
}

/* ---- text matching ------------------------------------------------------------- */

/* RFC 3501 §6.4.4: HEADER/FROM/.../BODY/TEXT match substrings of the
 * decoded text.  The text is made for the message being evaluated and
 * kept until the next message (one SEARCH often has several text keys). */
static bool imap_search_text(struct imap_session *s, struct imap_search_cmd *c,
			     const struct imap_snode *n, struct md_msg *m)
{
	if (c->text == NULL || c->text_uid != m->uid) {
		md_text_free(c->text);
		c->text = NULL;
		c->text_uid = m->uid;
		if (md_msg_text(s->view.mb, m, c->text_what, &c->text) != MD_OK) {
			c->text = NULL; /* expunged meanwhile, or unreadable: no match */
			return false;
		}
	}
	if (c->text == NULL)
		return false;
	switch (n->key) {
	case SK_HEADER:
		return md_text_header_contains(c->text, n->field, n->str);
	case SK_BODY:
		return md_text_body_contains(c->text, n->str);
	case SK_TEXT:
		return md_text_header_contains(c->text, NULL, n->str) ||
		       md_text_body_contains(c->text, n->str);
	default:
		return false;
	}
}

/* ---- evaluation ---------------------------------------------------------------- */

static bool imap_uids_have(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (uids[mid] < uid)
			lo = mid + 1;
		else if (uids[mid] > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

static bool imap_search_eval(struct imap_session *s, struct imap_search_cmd *c, int k,
			     struct md_msg *m)
{
	struct imap_snode *n = &c->nodes[k];
	int64_t day, sent, saved;

	switch (n->key) {
	case SK_ALL:
		return true;
	case SK_RECENT:
		return imap_view_is_recent(&s->view, m->uid);
	case SK_NEW:
		return imap_view_is_recent(&s->view, m->uid) && !(m->flags & MD_FLAG_SEEN);
	case SK_OLD:
		return !imap_view_is_recent(&s->view, m->uid);
	case SK_AND:
		for (int i = n->child; i >= 0; i = c->nodes[i].next)
			if (!imap_search_eval(s, c, i, m))
				return false;
		return true;
	case SK_OR:
		return imap_search_eval(s, c, n->child, m) ||
		       imap_search_eval(s, c, c->nodes[n->child].next, m);
	case SK_NOT:
		return !imap_search_eval(s, c, n->child, m);
	case SK_FLAG:
		return (m->flags & n->flag) != 0;
	case SK_UNFLAG:
		return (m->flags & n->flag) == 0;
	case SK_KEYWORD:
	case SK_UNKEYWORD: {
		bool has = n->kw >= 0 && (m->keywords[n->kw / 64] >> (n->kw % 64)) & 1;
		return n->key == SK_KEYWORD ? has : !has;
	}
	case SK_MODSEQ:
		return m->modseq >= n->n;
	case SK_LARGER:
		return m->size > n->n;
	case SK_SMALLER:
		return m->size < n->n;
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
		/* RFC 3501 §6.4.4: dates only, time of day ignored (UTC) */
		day = imap_search_day(m->internal_date);
		return n->key == SK_BEFORE ? day < n->t : n->key == SK_ON ? day == n->t : day >= n->t;
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		/* no usable Date: counts as 1970 (Dovecot does the same) */
		sent = md_msg_sent_date(m);
		day = imap_search_day(sent);
		return n->key == SK_SENTBEFORE ? day < n->t
		       : n->key == SK_SENTON   ? day == n->t
					       : day >= n->t;
	case SK_SAVEDBEFORE:
	case SK_SAVEDON:
	case SK_SAVEDSINCE:
		/* RFC 8514 §4: a message without a save date (a record older
		 * than the store's save_date, FETCH says NIL) is searched by
		 * its internal date */
		saved = m->save_date != 0 ? m->save_date : m->internal_date;
		day = imap_search_day(saved);
		return n->key == SK_SAVEDBEFORE ? day < n->t
		       : n->key == SK_SAVEDON   ? day == n->t
					        : day >= n->t;
	case SK_SET:
		return imap_uids_have(n->uids, n->n_uids, m->uid);
	case SK_EMAILID:
		return imap_objectid_emailid_is(m, n->str);
	case SK_THREADID:
		return false; /* no message has one (THREADID NIL) */
	case SK_HEADER:
	case SK_BODY:
	case SK_TEXT:
		return imap_search_text(s, c, n, m);
	}
	return false;
}

void imap_search_esearch(struct imap_session *s, const struct imap_return *r, const uint32_t *v,
			 size_t n, uint64_t modseq)
{
	if (!r->min && !r->max && !r->count && !r->all)
		return; /* SAVE alone: no answer (RFC 5182 §2.1) */
	buf_appendf(&s->out, "* ESEARCH (TAG ");
	imap_buf_string(&s->out, s->tag, strlen(s->tag));
	buf_appendf(&s->out, ")%s", s->uid ? " UID" : "");
	if (r->min && n > 0)
		buf_appendf(&s->out, " MIN %u", v[0]);
	if (r->max && n > 0)
		buf_appendf(&s->out, " MAX %u", v[n - 1]);
	if (r->count)
		buf_appendf(&s->out, " COUNT %zu", n);
	if (r->all && n > 0) {
		buf_appendf(&s->out, " ALL ");
		imap_buf_uidset(&s->out, v, n);
	}
	if (modseq > 0 && n > 0)
		buf_appendf(&s->out, " MODSEQ %llu", (unsigned long long)modseq);
	buf_appendf(&s->out, "\r\n");
}

bool imap_search_return(struct imap_cursor *args, struct imap_return *r, bool allow_save)
{
	char word[16];

	memset(r, 0, sizeof(*r));
	if (!imap_char(args, '('))
		return false;
	while (!imap_char(args, ')')) {
		if (!imap_atom(args, word, sizeof(word), NULL))
			return false;
		if (str_ieq(word, "MIN"))
			r->min = true;
		else if (str_ieq(word, "MAX"))
			r->max = true;
		else if (str_ieq(word, "COUNT"))
			r->count = true;
		else if (str_ieq(word, "ALL"))
			r->all = true;
		else if (str_ieq(word, "SAVE") && allow_save)
			r->save = true;
		else {
			args->err = "Unknown RETURN option";
			return false;
		}
		imap_char(args, ' ');
	}
	/* RFC 4731 §3.1: RETURN () means ALL */
	if (!r->min && !r->max && !r->count && !r->all && !r->save)
		r->all = true;
	return true;
}

/* Keyword names to the mailbox's keyword indexes (worker, once per
 * command: the names may have changed since the command was parsed). */
void imap_search_prepare(struct imap_session *s, struct imap_search_cmd *c)
{
	char **names = NULL;
	size_t n_names = 0;

	if (md_mailbox_keywords(s->view.mb, &names, &n_names) != MD_OK)
		return;
	for (int i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].key == SK_KEYWORD || c->nodes[i].key == SK_UNKEYWORD)
			for (size_t k = 0; k < n_names && k < MD_KEYWORDS_MAX; k++)
				if (names[k] != NULL && str_ieq(names[k], c->nodes[i].str))
					c->nodes[i].kw = (int)k;
	md_mailbox_keywords_free(names, n_names);
}

static enum imap_cmd_status imap_search_work(struct imap_session *s)
{
	struct imap_search_cmd *c = s->cmd_state;
	struct imap_view *v = &s->view;
	unsigned what = (c->need_meta ? MD_READ_META : 0) | (c->need_path ? MD_READ_PATH : 0);
	size_t cap = 0;

	imap_search_prepare(s, c);
	for (size_t pos = 0; pos < v->n; pos += IMAP_FETCH_BATCH) {
		size_t last = pos + IMAP_FETCH_BATCH < v->n ? pos + IMAP_FETCH_BATCH : v->n;
		struct md_msg *msgs = NULL;
		size_t n = 0;

		if (md_msg_list(v->mb, v->uids[pos], v->uids[last - 1], 0, what, &msgs, &n) != MD_OK) {
			imap_reply(s, "NO", "[UNAVAILABLE] Cannot read the mailbox");
			return CMD_DONE;
		}
		for (size_t i = 0; i < n; i++) {
			uint32_t seq = imap_view_seq(v, msgs[i].uid);
			if (seq == 0 || !imap_search_eval(s, c, c->root, &msgs[i]))
				continue;
			if (c->n_matches == cap) {
				size_t ncap = cap == 0 ? 256 : cap * 2;
				uint32_t *nm = realloc(c->matches, ncap * sizeof(*nm));
				if (nm == NULL) {
					md_msg_list_free(msgs, n);
					imap_reply(s, "NO", "[SERVERBUG] Out of memory");
					return CMD_DONE;
				}
				c->matches = nm;
				cap = ncap;
			}
			c->matches[c->n_matches++] = s->uid ? msgs[i].uid : seq;
			if (msgs[i].modseq > c->max_modseq)
				c->max_modseq = msgs[i].modseq;
		}
		md_msg_list_free(msgs, n);
	}
	if (!c->esearch) {
		buf_appendf(&s->out, "* SEARCH");
		for (size_t i = 0; i < c->n_matches; i++)
			buf_appendf(&s->out, " %u", c->matches[i]);
		if (c->has_modseq && c->n_matches > 0) /* RFC 7162 §3.1.6 */
			buf_appendf(&s->out, " (MODSEQ %llu)", (unsigned long long)c->max_modseq);
		buf_appendf(&s->out, "\r\n");
	} else {
		/* RFC 7162 §3.1.6 / RFC 4731: MODSEQ after the other data */
		imap_search_esearch(s, &c->ret, c->matches, c->n_matches,
				    c->has_modseq ? c->max_modseq : 0);
	}
	/* RFC 3501 §7.4.1: no EXPUNGE after SEARCH with sequence numbers */
	imap_view_update(s, s->uid);
	imap_reply(s, "OK", "%sSEARCH completed", s->uid ? "UID " : "");
	return CMD_DONE;
}

/* RFC 5182 §2.1: remember the result as UIDs (MIN / MAX only when those
 * were the only ones asked). */
static void imap_search_save(struct imap_session *s)
{
	struct imap_search_cmd *c = s->cmd_state;
	uint32_t *uids;
	size_t n = 0;

	free(s->searchres.ranges);
	memset(&s->searchres, 0, sizeof(s->searchres));
	if (c == NULL || !c->ret.save || c->n_matches == 0)
		return;
	uids = malloc(c->n_matches * sizeof(*uids));
	if (uids == NULL)
		return;
	for (size_t i = 0; i < c->n_matches; i++) {
		uint32_t u = s->uid ? c->matches[i]
				    : (c->matches[i] <= s->view.n ? s->view.uids[c->matches[i] - 1] : 0);
		bool only_minmax = (c->ret.min || c->ret.max) && !c->ret.all && !c->ret.count;
		if (u == 0)
			continue;
		if (only_minmax && !((c->ret.min && i == 0) || (c->ret.max && i == c->n_matches - 1)))
			continue;
		uids[n++] = u;
	}
	s->searchres.ranges = malloc((n + 1) * sizeof(*s->searchres.ranges));
	if (s->searchres.ranges != NULL) {
		for (size_t i = 0; i < n; i++) {
			s->searchres.ranges[i].lo = uids[i];
			s->searchres.ranges[i].hi = uids[i];
		}
		s->searchres.n = n;
		imap_seqset_normalise(&s->searchres, UINT32_MAX - 1);
	}
	free(uids);
}

void imap_cmd_search(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_search_cmd *c = calloc(1, sizeof(*c));
	char word[32];
	char *save;

	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_search_free;
	if (!imap_sp(args))
		goto bad;
	/* RETURN (...) (RFC 4731 §3.1) */
	save = args->p;
	if (imap_atom(args, word, sizeof(word), NULL) && str_ieq(word, "RETURN")) {
		c->esearch = true;
		if (!imap_sp(args) || !imap_search_return(args, &c->ret, true))
			goto bad;
		if (!imap_sp(args))
			goto bad;
		save = args->p;
	} else {
		args->p = save;
		args->err = NULL;
		/* RFC 9051 §6.4.4: the answer is ESEARCH; no RETURN means ALL */
		if (s->rev2) {
			c->esearch = true;
			c->ret.all = true;
		}
	}
	if (imap_atom(args, word, sizeof(word), NULL) && str_ieq(word, "CHARSET")) {
		/* RFC 6855 §3 (errata 4029): no CHARSET after UTF8=ACCEPT */
		if (s->utf8_accept) {
			imap_reply(s, "BAD", "CHARSET not allowed after ENABLE UTF8=ACCEPT");
			return;
		}
		if (!imap_sp(args) || !imap_astring_copy(args, word, sizeof(word)))
			goto bad;
		if (!str_ieq(word, "UTF-8") && !str_ieq(word, "US-ASCII")) {
			imap_reply(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return;
		}
		if (!imap_sp(args))
			goto bad;
	} else {
		args->p = save;
		args->err = NULL;
	}
	c->root = imap_search_list(s, c, args, 0, false);
	if (c->root == -2 || (c->root < 0 && s->out.len > 0))
		return; /* a sequence set was refused with its own reply */
	if (c->root < 0)
		goto bad;
	if (c->ret.save)
		s->after = NULL;
	imap_job_start(s, imap_search_work, c->ret.save ? imap_search_save : NULL);
	return;
bad:
	imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid SEARCH arguments");
}
