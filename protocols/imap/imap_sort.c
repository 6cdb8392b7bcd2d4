/* SORT and UID SORT (RFC 5256 §3), DISPLAYFROM / DISPLAYTO (RFC 5957),
 * ESORT (RFC 5267 §3: RETURN (MIN MAX COUNT ALL)); and the collection of
 * sort keys THREAD shares (imap_thread.c).
 *
 * Keys come from the index alone, never from a message file: ENVELOPE
 * (subject, addresses, message-id, in-reply-to), the sent date and
 * References kept at delivery, INTERNALDATE and RFC822.SIZE.  The search
 * criteria are SEARCH's own program (imap_search.c).  A worker reads the
 * view IMAP_FETCH_BATCH messages at a time, keeps the keys of those the
 * program matches, sorts them and writes the answer.
 *
 * Collation: every string key (SUBJECT's base subject, FROM, TO, CC,
 * DISPLAYFROM, DISPLAYTO) by RFC 5051 i;unicode-casemap, as RFC 5256 §5
 * requires of a server with I18NLEVEL=1: each key is mapped once, when
 * the keys are collected (imap_subject_casemap(): titlecase, then NFKD),
 * and the mapped keys are compared as octets; the sent date is Unix time
 * (zone offsets applied at delivery), INTERNALDATE when the message has
 * no usable Date (§2.2); equal keys go by sequence number (§3), which
 * REVERSE does not turn round.
 *
 * CONTEXT=SORT (RFC 5267 §4): RETURN (PARTIAL lo:hi) answers positions
 * of the sorted result; RETURN (UPDATE) on UID SORT keeps the criteria
 * as a context (imap_context.c), which imap_sort_context_run() sorts
 * again when the mailbox changed.
 *
 * Memory: the command's scratch (struct imap_sort_cmd, the key strings)
 * is freed by its cmd_free when the reply is sent.  A key string keeps at
 * most IMAP_SORT_KEY_MAX octets of its mapped form; the keys are a few
 * hundred octets per matching message, counted as allocated (strlen + 1:
 * a key ends at its first NUL, where the comparison would stop anyway).
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

#define IMAP_SORT_CRITERIA_MAX 16   /* keys in one SORT (RFC 5256 §3 sets none) */
/* Octets of a string key kept, of its i;unicode-casemap form: two keys
 * that agree this far compare equal (then the next key, or the sequence
 * number, decides). */
#define IMAP_SORT_KEY_MAX 1024
/* Octets of References kept per message for THREAD (the tail). */
#define IMAP_SORT_REFS_MAX 4096
/* The keys of one SORT or THREAD (a few hundred octets a message as mail
 * goes; at most about 10 KiB): beyond this NO [LIMIT] rather than
 * unbounded memory (RFC 5256 sets no limit). */
#define IMAP_SORT_MEMORY_MAX (512 * 1024 * 1024)

enum imap_sort_key {
	IMAP_SORT_ARRIVAL,
	IMAP_SORT_CC,
	IMAP_SORT_DATE,
	IMAP_SORT_FROM,
	IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT,
	IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM, /* RFC 5957 §3 */
	IMAP_SORT_DISPLAYTO,
};

static const char *const imap_sort_names[] = {
	"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO",
};

struct imap_sort_criterion {
	enum imap_sort_key key;
	bool reverse;
};

struct imap_sort_cmd {
	struct imap_sort_criterion crit[IMAP_SORT_CRITERIA_MAX];
	size_t n_crit;
	bool esort;
	struct imap_return ret;
	struct imap_sort_set set;
};

/* ---- the keys of one message --------------------------------------------- */

struct imap_sort_addr {
	const char *name, *mailbox, *host;
	size_t name_len, mailbox_len, host_len;
	bool set;
};

struct imap_sort_env {
	const char *subject, *in_reply_to, *message_id;
	size_t subject_len, in_reply_to_len, message_id_len;
	struct imap_sort_addr from, to, cc;
};

/* An address list "((name adl mailbox host)...)" or NIL: the first
 * mailbox (group markers, RFC 3501 §7.4.2, have no host and are skipped). */
static bool imap_sort_addresses(struct imap_cursor *c, struct imap_sort_addr *first)
{
	const char *s;
	size_t len;

	memset(first, 0, sizeof(*first));
	if (!imap_char(c, '('))
		return imap_nstring(c, &s, &len) && s == NULL;
	while (!imap_char(c, ')')) {
		struct imap_sort_addr a;
		const char *adl;
		size_t adl_len;

		if (!imap_char(c, '(') || !imap_nstring(c, &a.name, &a.name_len) ||
		    !imap_sp(c) || !imap_nstring(c, &adl, &adl_len) || !imap_sp(c) ||
		    !imap_nstring(c, &a.mailbox, &a.mailbox_len) || !imap_sp(c) ||
		    !imap_nstring(c, &a.host, &a.host_len) || !imap_char(c, ')'))
			return false;
		if (!first->set && a.host != NULL) {
			*first = a;
			first->set = true;
		}
	}
	return true;
}

/* The stored ENVELOPE "(date subject from sender reply-to to cc bcc
 * in-reply-to message-id)", parsed in place (env is a copy). */
static bool imap_sort_envelope(char *env, size_t len, struct imap_sort_env *e)
{
	struct imap_cursor c;
	struct imap_sort_addr skip;
	const char *date;
	size_t date_len;

	memset(e, 0, sizeof(*e));
	imap_cursor_init(&c, env, len);
	return imap_char(&c, '(') && imap_nstring(&c, &date, &date_len) && imap_sp(&c) &&
	       imap_nstring(&c, &e->subject, &e->subject_len) && imap_sp(&c) &&
	       imap_sort_addresses(&c, &e->from) && imap_sp(&c) &&
	       imap_sort_addresses(&c, &skip) && imap_sp(&c) &&
	       imap_sort_addresses(&c, &skip) && imap_sp(&c) &&
	       imap_sort_addresses(&c, &e->to) && imap_sp(&c) &&
	       imap_sort_addresses(&c, &e->cc) && imap_sp(&c) &&
	       imap_sort_addresses(&c, &skip) && imap_sp(&c) &&
	       imap_nstring(&c, &e->in_reply_to, &e->in_reply_to_len) && imap_sp(&c) &&
	       imap_nstring(&c, &e->message_id, &e->message_id_len) && imap_char(&c, ')');
}

/* A NUL-terminated copy of at most IMAP_SORT_KEY_MAX octets ("" for NULL
 * unless nil_null). */
static char *imap_sort_dup(const char *s, size_t len, bool nil_null)
{
	char *d;

	if (s == NULL && nil_null)
		return NULL;
	if (s == NULL)
		len = 0;
	if (len > IMAP_SORT_KEY_MAX)
		len = IMAP_SORT_KEY_MAX;
	d = malloc(len + 1);
	if (d == NULL)
		return NULL;
	if (len > 0)
		memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* The string key of the UTF-8 text s (NULL: ""): its i;unicode-casemap
 * form (RFC 5256 §5), at most IMAP_SORT_KEY_MAX octets (fold's cap) and
 * up to its first NUL, so that the accounting's strlen() + 1 is what the
 * key holds.  fold is scratch. */
static char *imap_sort_key_str(const char *s, size_t len, struct buf *fold)
{
	const char *nul;

	buf_reset(fold);
	if (s != NULL && len > 0 && imap_subject_casemap(s, len, fold) < 0)
		return NULL;
	if (fold->len > 0 && (nul = memchr(fold->data, '\0', fold->len)) != NULL)
		fold->len = (size_t)(nul - fold->data);
	return imap_sort_dup(fold->data, fold->len, false);
}

/* RFC 5957 §3: the display name (RFC 2047 decoded) of the first address
 * if it is not empty, else "mailbox@host", else "" (the first address is
 * the first with a host: group markers are skipped, as for FROM). */
static char *imap_sort_display(const struct imap_sort_addr *a, struct buf *fold)
{
	char *dec = NULL, *d;
	size_t dec_len = 0;
	struct buf b;

	if (a->set && a->name != NULL && a->name_len > 0 &&
	    md_header_utf8(a->name, a->name_len, &dec, &dec_len) == 0 && dec_len > 0) {
		d = imap_sort_key_str(dec, dec_len, fold);
		free(dec);
		return d;
	}
	free(dec);
	buf_init(&b, 0);
	if (a->set && a->mailbox != NULL) {
		buf_append(&b, a->mailbox, a->mailbox_len);
		buf_putc(&b, '@');
		buf_append(&b, a->host, a->host_len);
	}
	d = imap_sort_key_str(b.data, b.len, fold);
	buf_free(&b);
	return d;
}

/* The base subject (RFC 5256 §2.1) as a string key. */
static char *imap_sort_base_subject(const char *s, size_t len, bool *reply_r, struct buf *fold)
{
	char *dec = NULL, *d = NULL;
	size_t dec_len = 0;
	struct buf b;

	*reply_r = false;
	if (s == NULL)
		return imap_sort_key_str(NULL, 0, fold);
	if (md_header_utf8(s, len, &dec, &dec_len) < 0)
		return NULL;
	buf_init(&b, 0);
	if (imap_subject_base(dec, dec_len, &b, reply_r) == 0)
		d = imap_sort_key_str(b.data, b.len, fold);
	buf_free(&b);
	free(dec);
	return d;
}

static void imap_sort_msg_clear(struct imap_sort_msg *k)
{
	free(k->subject);
	free(k->from);
	free(k->to);
	free(k->cc);
	free(k->dfrom);
	free(k->dto);
	free(k->message_id);
	free(k->in_reply_to);
	free(k->references);
	memset(k, 0, sizeof(*k));
}

/* The tail of References (from a '<'), at most IMAP_SORT_REFS_MAX octets:
 * the last ids name the nearest ancestors. */
static char *imap_sort_refs(const char *refs, size_t len)
{
	size_t from = 0;
	char *d;

	if (len > IMAP_SORT_REFS_MAX) {
		from = len - IMAP_SORT_REFS_MAX;
		while (from < len && refs[from] != '<')
			from++;
	}
	d = malloc(len - from + 1);
	if (d != NULL) {
		memcpy(d, refs + from, len - from);
		d[len - from] = '\0';
	}
	return d;
}

static size_t imap_sort_len(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/* The keys of m that need asks for; returns the octets they hold, 0 when
 * memory ran out.  scratch holds the envelope, fold a key being mapped. */
static size_t imap_sort_msg_fill(struct imap_sort_msg *k, struct md_msg *m, unsigned need,
				 struct buf *scratch, struct buf *fold)
{
	struct imap_sort_env e;
	const char *env, *refs;
	size_t len, refs_len;
	int64_t sent = md_msg_sent_date(m);
	bool ok;

	k->uid = m->uid;
	k->arrival = m->internal_date;
	k->date = sent != 0 ? sent : m->internal_date; /* RFC 5256 §2.2 */
	k->size = m->size;
	env = md_msg_envelope(m, &len);
	buf_reset(scratch);
	if (env == NULL || buf_append(scratch, env, len) < 0 ||
	    !imap_sort_envelope(scratch->data, scratch->len, &e))
		memset(&e, 0, sizeof(e)); /* unreadable: every key empty */
	k->subject = imap_sort_base_subject(e.subject, e.subject_len, &k->reply, fold);
	ok = k->subject != NULL;
	if (need & IMAP_SORT_NEED_ADDRS) {
		k->from = imap_sort_key_str(e.from.mailbox, e.from.mailbox_len, fold);
		k->to = imap_sort_key_str(e.to.mailbox, e.to.mailbox_len, fold);
		k->cc = imap_sort_key_str(e.cc.mailbox, e.cc.mailbox_len, fold);
		k->dfrom = imap_sort_display(&e.from, fold);
		k->dto = imap_sort_display(&e.to, fold);
		ok = ok && k->from != NULL && k->to != NULL && k->cc != NULL && k->dfrom != NULL &&
		     k->dto != NULL;
	}
	if (need & IMAP_SORT_NEED_IDS) {
		refs = md_msg_references(m, &refs_len);
		k->message_id = imap_sort_dup(e.message_id, e.message_id_len, true);
		k->in_reply_to = imap_sort_dup(e.in_reply_to, e.in_reply_to_len, true);
		k->references = refs != NULL ? imap_sort_refs(refs, refs_len) : NULL;
		ok = ok && (e.message_id == NULL || k->message_id != NULL) &&
		     (e.in_reply_to == NULL || k->in_reply_to != NULL) &&
		     (refs == NULL || k->references != NULL);
	}
	if (!ok)
		return 0;
	return sizeof(*k) + imap_sort_len(k->subject) + imap_sort_len(k->from) +
	       imap_sort_len(k->to) + imap_sort_len(k->cc) + imap_sort_len(k->dfrom) +
	       imap_sort_len(k->dto) + imap_sort_len(k->message_id) +
	       imap_sort_len(k->in_reply_to) + imap_sort_len(k->references);
}

static void imap_sort_msgs_free(struct imap_sort_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		imap_sort_msg_clear(&set->msgs[i]);
	free(set->msgs);
	set->msgs = NULL;
	set->n = 0;
}

void imap_sort_set_free(struct imap_sort_set *set)
{
	imap_sort_msgs_free(set);
	if (set->prog != NULL)
		imap_search_free(set->prog);
	set->prog = NULL;
}

/* imap_sort_collect() without the reply: NULL, or the NO text. */
static const char *imap_sort_gather(struct imap_session *s, struct imap_sort_set *set_r)
{
	struct imap_view *v = &s->view;
	struct imap_search_cmd *prog = set_r->prog;
	unsigned what = MD_READ_META | imap_search_needs(prog);
	struct buf scratch, fold;
	size_t cap = 0, used = 0;
	const char *err = NULL;
	int ret = 0;

	imap_sort_msgs_free(set_r);
	imap_search_prepare(s, prog);
	buf_init(&scratch, 0);
	buf_init(&fold, IMAP_SORT_KEY_MAX);
	for (size_t pos = 0; pos < v->n && ret == 0; pos += IMAP_FETCH_BATCH) {
		size_t last = pos + IMAP_FETCH_BATCH < v->n ? pos + IMAP_FETCH_BATCH : v->n;
		struct md_msg *msgs = NULL;
		size_t n = 0;

		if (md_msg_list(v->mb, v->uids[pos], v->uids[last - 1], 0, what, &msgs, &n) != MD_OK) {
			err = "[UNAVAILABLE] Cannot read the mailbox";
			ret = -1;
			break;
		}
		for (size_t i = 0; i < n && ret == 0; i++) {
			uint32_t seq = imap_view_seq(v, msgs[i].uid);
			size_t k;

			if (seq == 0 || !imap_search_match(s, prog, &msgs[i]))
				continue;
			if (set_r->n == cap) {
				size_t ncap = cap == 0 ? 256 : cap * 2;
				struct imap_sort_msg *nm = realloc(set_r->msgs, ncap * sizeof(*nm));

				if (nm == NULL) {
					ret = -1;
					break;
				}
				set_r->msgs = nm;
				cap = ncap;
			}
			memset(&set_r->msgs[set_r->n], 0, sizeof(set_r->msgs[0]));
			set_r->msgs[set_r->n].seq = seq;
			k = imap_sort_msg_fill(&set_r->msgs[set_r->n++], &msgs[i], set_r->need,
					       &scratch, &fold);
			used += k;
			if (k == 0) {
				ret = -1;
			} else if (used > IMAP_SORT_MEMORY_MAX) {
				err = "[LIMIT] Too many messages to sort at once";
				ret = -1;
			}
		}
		md_msg_list_free(msgs, n);
		if (ret < 0 && err == NULL)
			err = "[SERVERBUG] Out of memory";
	}
	buf_free(&scratch);
	buf_free(&fold);
	if (ret < 0)
		imap_sort_msgs_free(set_r);
	return err;
}

int imap_sort_collect(struct imap_session *s, struct imap_sort_set *set_r)
{
	const char *err = imap_sort_gather(s, set_r);

	if (err == NULL)
		return 0;
	imap_reply(s, "NO", "%s", err);
	return -1;
}

/* ---- comparison ------------------------------------------------------------ */

static int imap_sort_cmp_num(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

/* Keys in their i;unicode-casemap form: RFC 5051 §2 orders them as
 * octets (strcmp compares as unsigned char). */
static int imap_sort_cmp_str(const char *a, const char *b)
{
	return strcmp(a, b);
}

static int imap_sort_cmp_key(enum imap_sort_key key, const struct imap_sort_msg *a,
			     const struct imap_sort_msg *b)
{
	switch (key) {
	case IMAP_SORT_ARRIVAL:
		return imap_sort_cmp_num(a->arrival, b->arrival);
	case IMAP_SORT_CC:
		return imap_sort_cmp_str(a->cc, b->cc);
	case IMAP_SORT_DATE:
		return imap_sort_cmp_num(a->date, b->date);
	case IMAP_SORT_FROM:
		return imap_sort_cmp_str(a->from, b->from);
	case IMAP_SORT_SIZE:
		return a->size < b->size ? -1 : a->size > b->size ? 1 : 0;
	case IMAP_SORT_SUBJECT:
		return imap_sort_cmp_str(a->subject, b->subject);
	case IMAP_SORT_TO:
		return imap_sort_cmp_str(a->to, b->to);
	case IMAP_SORT_DISPLAYFROM:
		return imap_sort_cmp_str(a->dfrom, b->dfrom);
	case IMAP_SORT_DISPLAYTO:
		return imap_sort_cmp_str(a->dto, b->dto);
	}
	return 0;
}

static int imap_sort_cmp(const void *pa, const void *pb, void *ctx)
{
	const struct imap_sort_msg *a = pa, *b = pb;
	const struct imap_sort_cmd *c = ctx;

	for (size_t i = 0; i < c->n_crit; i++) {
		int r = imap_sort_cmp_key(c->crit[i].key, a, b);

		if (r != 0)
			return c->crit[i].reverse ? -r : r;
	}
	return imap_sort_cmp_num(a->seq, b->seq);
}

int imap_sort_cmp_date_ptr(const void *pa, const void *pb)
{
	const struct imap_sort_msg *a = *(const struct imap_sort_msg *const *)pa;
	const struct imap_sort_msg *b = *(const struct imap_sort_msg *const *)pb;
	int r = imap_sort_cmp_num(a->date, b->date);

	return r != 0 ? r : imap_sort_cmp_num(a->seq, b->seq);
}

/* ---- the command ------------------------------------------------------------ */

void imap_sort_query_free(void *arg)
{
	struct imap_sort_cmd *c = arg;

	if (c != NULL)
		imap_sort_set_free(&c->set);
	free(c);
}

static void imap_sort_answer(struct imap_session *s, struct imap_sort_cmd *c, const uint32_t *ids,
			     size_t n)
{
	if (!c->esort) {
		buf_appendf(&s->out, "* SORT");
		for (size_t i = 0; i < n; i++)
			buf_appendf(&s->out, " %u", ids[i]);
		buf_appendf(&s->out, "\r\n");
		return;
	}
	/* RFC 5267 §3.2: MIN and MAX are the first and last in sort order,
	 * ALL a sequence-set in sort order */
	imap_search_esearch(s, &c->ret, ids, n, 0);
}

/* The matching messages' UIDs (uid) or sequence numbers in sort order,
 * malloc'ed into *ids_r; the keys are freed.  NULL, or the NO text. */
static const char *imap_sort_run(struct imap_session *s, struct imap_sort_cmd *c, bool uid,
				 uint32_t **ids_r, size_t *n_r)
{
	const char *err = imap_sort_gather(s, &c->set);
	uint32_t *ids;

	*ids_r = NULL;
	*n_r = 0;
	if (err != NULL)
		return err;
	if (c->set.n > 1)
		qsort_r(c->set.msgs, c->set.n, sizeof(c->set.msgs[0]), imap_sort_cmp, c);
	ids = malloc((c->set.n + 1) * sizeof(*ids));
	if (ids == NULL) {
		imap_sort_msgs_free(&c->set);
		return "[SERVERBUG] Out of memory";
	}
	for (size_t i = 0; i < c->set.n; i++)
		ids[i] = uid ? c->set.msgs[i].uid : c->set.msgs[i].seq;
	*ids_r = ids;
	*n_r = c->set.n;
	imap_sort_msgs_free(&c->set);
	return NULL;
}

/* Sort keys never change, but the order needs every member's keys: the
 * whole view is sorted again (from the index, no message file read). */
const char *imap_sort_context_run(struct imap_session *s, const struct imap_context *x,
				  uint32_t **uids_r, size_t *n_r)
{
	return imap_sort_run(s, x->query, true, uids_r, n_r);
}

static enum imap_cmd_status imap_sort_work(struct imap_session *s)
{
	struct imap_sort_cmd *c = s->cmd_state;
	struct imap_context_mark mark;
	const char *err;
	uint32_t *ids;
	size_t n;

	imap_context_mark(s, &mark);
	if ((err = imap_sort_run(s, c, s->uid, &ids, &n)) != NULL) {
		imap_reply(s, "NO", "%s", err);
		return CMD_DONE;
	}
	imap_sort_answer(s, c, ids, n);
	/* RFC 3501 §7.4.1: no EXPUNGE after a command with sequence numbers */
	imap_view_update(s, s->uid);
	if (c->ret.update &&
	    imap_context_start(s, c->ret.partial_lo > 0, &mark, c, true, ids, n))
		s->cmd_free = NULL; /* the context keeps the criteria */
	free(ids);
	imap_reply(s, "OK", "%sSORT completed", s->uid ? "UID " : "");
	return CMD_DONE;
}

/* sort-criteria = "(" sort-criterion *(SP sort-criterion) ")" */
static bool imap_sort_criteria_list(struct imap_sort_cmd *c, struct imap_cursor *args)
{
	char word[16];

	if (!imap_char(args, '('))
		return false;
	do {
		bool reverse = false;
		size_t k;

		if (!imap_atom(args, word, sizeof(word), NULL))
			return false;
		if (str_ieq(word, "REVERSE")) {
			reverse = true;
			if (!imap_sp(args) || !imap_atom(args, word, sizeof(word), NULL))
				return false;
		}
		for (k = 0; k < sizeof(imap_sort_names) / sizeof(imap_sort_names[0]); k++)
			if (str_ieq(word, imap_sort_names[k]))
				break;
		if (k == sizeof(imap_sort_names) / sizeof(imap_sort_names[0])) {
			args->err = "Unknown sort key";
			return false;
		}
		if (c->n_crit == IMAP_SORT_CRITERIA_MAX) {
			args->err = "[LIMIT] Too many sort keys";
			return false;
		}
		c->crit[c->n_crit].key = (enum imap_sort_key)k;
		c->crit[c->n_crit++].reverse = reverse;
		if (k == IMAP_SORT_CC || k == IMAP_SORT_FROM || k == IMAP_SORT_TO ||
		    k == IMAP_SORT_DISPLAYFROM || k == IMAP_SORT_DISPLAYTO)
			c->set.need |= IMAP_SORT_NEED_ADDRS;
		if (imap_char(args, ')'))
			return true;
	} while (imap_sp(args));
	return false;
}

/* RFC 5267 §3.1: "RETURN (" [option *(SP option)] ")" SP; SAVE is not
 * offered with SORT. */
static bool imap_sort_return(struct imap_sort_cmd *c, struct imap_cursor *args)
{
	char word[16];
	char *save = args->p;

	if (!imap_atom(args, word, sizeof(word), NULL) || !str_ieq(word, "RETURN")) {
		args->p = save;
		args->err = NULL;
		return true;
	}
	c->esort = true;
	return imap_sp(args) && imap_search_return(args, &c->ret, false) && imap_sp(args);
}

bool imap_sort_criteria(struct imap_session *s, struct imap_cursor *args,
			struct imap_sort_set *set)
{
	char charset[32];
	bool replied;

	if (!imap_astring_copy(args, charset, sizeof(charset)) || !imap_sp(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Expected a charset");
		return false;
	}
	/* RFC 6855 §3 (errata 4029): only UTF-8 after ENABLE UTF8=ACCEPT */
	if (s->utf8_accept && !str_ieq(charset, "UTF-8")) {
		imap_reply(s, "BAD", "Only CHARSET UTF-8 after ENABLE UTF8=ACCEPT");
		return false;
	}
	/* RFC 5256 §3: US-ASCII and UTF-8 MUST be supported; others here not */
	if (!str_ieq(charset, "UTF-8") && !str_ieq(charset, "US-ASCII")) {
		imap_reply(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		return false;
	}
	set->prog = imap_search_parse(s, args, &replied);
	if (set->prog == NULL && !replied)
		imap_reply(s, "BAD", "%s",
			   args->err != NULL ? args->err : "Invalid search criteria");
	return set->prog != NULL;
}

void imap_cmd_sort(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_sort_cmd *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_sort_query_free;
	if (!imap_sp(args) || !imap_sort_return(c, args) || !imap_sort_criteria_list(c, args) ||
	    !imap_sp(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid SORT arguments");
		return;
	}
	if (imap_sort_criteria(s, args, &c->set))
		imap_job_start(s, imap_sort_work, NULL);
}
