/* The keys of SORT and THREAD (RFC 5256): per message, from the index
 * alone, never from a message file: ENVELOPE (subject, addresses,
 * message-id, in-reply-to), the sent date and References kept at
 * delivery, INTERNALDATE and RFC822.SIZE; and their collection for one
 * command, through the process's sort-key cache (imap_sort_cache.c).
 *
 * Collection: the search program picks the messages (a worker reads the
 * view IMAP_FETCH_BATCH messages at a time, with only what the program
 * needs; nothing at all for ALL), and the keys come from the mailbox's
 * cache entry.  Messages of the view the entry does not know yet (new
 * mail, or the first command after start) are read with MD_READ_META and
 * a new entry replaces the old one: the view's keys, and the old entry's
 * of messages newer than the view's (another session's view is ahead of
 * this one), so that sessions whose views differ do not replace each
 * other's entries in turn.  Keys of UIDs below the view's last that the
 * view lacks are dropped: those messages are expunged for good.
 * A message of the view that the index no longer has (expunged by
 * another session, not yet announced here) is kept in the entry as
 * "gone" (uid 0): it matches nothing, as before the cache, and needs no
 * second look.
 *
 * Collation: every string key (SUBJECT's base subject, FROM, TO, CC,
 * DISPLAYFROM, DISPLAYTO) by RFC 5051 i;unicode-casemap, as RFC 5256 §5
 * requires of a server with I18NLEVEL=1: each key is mapped once, when
 * the keys are made (imap_subject_casemap(): titlecase, then NFKD), and
 * the mapped keys are compared as octets; the sent date is Unix time
 * (zone offsets applied at delivery), INTERNALDATE when the message has
 * no usable Date (§2.2).
 *
 * Memory: a key string keeps at most IMAP_SORT_KEY_MAX octets of its
 * mapped form; while an entry is built its new keys are counted as
 * allocated (strlen + 1: a key ends at its first NUL, where the
 * comparison would stop anyway) against IMAP_SORT_MEMORY_MAX, then packed
 * into one arena per entry.  A command holds a reference to the entry its
 * keys point into (struct imap_sort_set), dropped by imap_sort_set_free().
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

/* Octets of a string key kept, of its i;unicode-casemap form: two keys
 * that agree this far compare equal (then the next key, or the sequence
 * number, decides). */
#define IMAP_SORT_KEY_MAX 1024
/* Octets of References kept per message for THREAD (the tail). */
#define IMAP_SORT_REFS_MAX 4096
/* The new keys of one SORT or THREAD (a few hundred octets a message as
 * mail goes; at most about 10 KiB): beyond this NO [LIMIT] rather than
 * unbounded memory (RFC 5256 sets no limit). */
#define IMAP_SORT_MEMORY_MAX (512 * 1024 * 1024)

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

/* The string keys of k, for packing and freeing them alike. */
#define IMAP_SORT_STRINGS 9
static void imap_sort_msg_strings(struct imap_sort_msg *k, char **f[IMAP_SORT_STRINGS])
{
	f[0] = &k->subject;
	f[1] = &k->from;
	f[2] = &k->to;
	f[3] = &k->cc;
	f[4] = &k->dfrom;
	f[5] = &k->dto;
	f[6] = &k->message_id;
	f[7] = &k->in_reply_to;
	f[8] = &k->references;
}

/* Frees the strings of a key made here (not of one in an entry). */
static void imap_sort_msg_clear(struct imap_sort_msg *k)
{
	char **f[IMAP_SORT_STRINGS];

	imap_sort_msg_strings(k, f);
	for (size_t i = 0; i < IMAP_SORT_STRINGS; i++)
		free(*f[i]);
	memset(k, 0, sizeof(*k));
}

/* Octets of k's strings with their NULs. */
static size_t imap_sort_msg_strlen(struct imap_sort_msg *k)
{
	char **f[IMAP_SORT_STRINGS];
	size_t len = 0;

	imap_sort_msg_strings(k, f);
	for (size_t i = 0; i < IMAP_SORT_STRINGS; i++)
		len += *f[i] != NULL ? strlen(*f[i]) + 1 : 0;
	return len;
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
	return sizeof(*k) + imap_sort_msg_strlen(k);
}

/* ---- a cache entry for the view ---------------------------------------------- */

/* An entry being made: one key per position of the view, then the old
 * entry's keys of messages newer than the view's last (another session
 * has seen them; this one will). */
struct imap_sort_build {
	uint32_t *uids;             /* ascending */
	size_t n;
	struct imap_sort_msg *msgs; /* uid 0: gone, or not read yet */
	bool *fresh;                /* msgs[i]'s strings were made here */
	bool *missing;              /* msgs[i] is not in the old entry */
	size_t used;                /* octets of the keys made here */
};

static void imap_sort_build_free(struct imap_sort_build *b)
{
	if (b->msgs != NULL && b->fresh != NULL)
		for (size_t i = 0; i < b->n; i++)
			if (b->fresh[i])
				imap_sort_msg_clear(&b->msgs[i]);
	free(b->uids);
	free(b->msgs);
	free(b->fresh);
	free(b->missing);
}

/* Does old have a key (or a "gone") for every message of the view? */
static bool imap_sort_keys_cover(const struct imap_sort_keys *old, const struct imap_view *v)
{
	size_t j = 0;

	for (size_t i = 0; i < v->n; i++) {
		while (j < old->n && old->uids[j] < v->uids[i])
			j++;
		if (j == old->n || old->uids[j] != v->uids[i])
			return false;
	}
	return true;
}

/* The view's keys that old has (borrowed: they point into old's arena),
 * the others marked missing; then old's keys of UIDs above the view's. */
static void imap_sort_build_borrow(struct imap_sort_build *b, const struct imap_view *v,
				   const struct imap_sort_keys *old)
{
	size_t j = 0;

	for (size_t i = 0; i < v->n; i++) {
		b->uids[i] = v->uids[i];
		while (old != NULL && j < old->n && old->uids[j] < v->uids[i])
			j++;
		if (old != NULL && j < old->n && old->uids[j] == v->uids[i])
			b->msgs[i] = old->msgs[j];
		else
			b->missing[i] = true;
	}
	b->n = v->n;
	for (; old != NULL && j < old->n; j++) {
		if (v->n > 0 && old->uids[j] <= v->uids[v->n - 1])
			continue;
		b->uids[b->n] = old->uids[j];
		b->msgs[b->n++] = old->msgs[j];
	}
}

/* The keys of the missing messages among positions [pos, last) of the
 * view, read with MD_READ_META; those the index no longer has stay gone.
 * 0, or -1 after a NO. */
static int imap_sort_build_batch(struct imap_session *s, struct imap_sort_build *b, size_t pos,
				 size_t last, unsigned need, struct buf *scratch, struct buf *fold)
{
	struct imap_view *v = &s->view;
	struct md_msg *msgs = NULL;
	size_t n = 0;
	int ret = 0;

	while (pos < last && !b->missing[pos])
		pos++;
	while (last > pos && !b->missing[last - 1])
		last--;
	if (pos == last)
		return 0;
	if (md_msg_list(v->mb, v->uids[pos], v->uids[last - 1], 0, MD_READ_META, &msgs, &n) !=
	    MD_OK) {
		imap_reply(s, "NO", "[UNAVAILABLE] Cannot read the mailbox");
		return -1;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		uint32_t seq = imap_view_seq(v, msgs[i].uid);
		size_t k;

		if (seq == 0 || !b->missing[seq - 1])
			continue;
		b->fresh[seq - 1] = true; /* what fill made is freed even on failure */
		k = imap_sort_msg_fill(&b->msgs[seq - 1], &msgs[i], need, scratch, fold);
		b->used += k;
		if (k == 0) {
			imap_reply(s, "NO", "[SERVERBUG] Out of memory");
			ret = -1;
		} else if (b->used > IMAP_SORT_MEMORY_MAX) {
			imap_reply(s, "NO", "[LIMIT] Too many messages to sort at once");
			ret = -1;
		}
	}
	md_msg_list_free(msgs, n);
	return ret;
}

/* The entry of b's keys, their strings copied into one arena. */
static struct imap_sort_keys *imap_sort_build_pack(const struct imap_view *v,
						   struct imap_sort_build *b, unsigned need)
{
	struct imap_sort_keys *k = calloc(1, sizeof(*k));
	size_t off = 0;

	if (k == NULL)
		return NULL;
	for (size_t i = 0; i < b->n; i++)
		k->arena_len += imap_sort_msg_strlen(&b->msgs[i]);
	k->msgs = malloc((b->n + 1) * sizeof(*k->msgs));
	k->arena = malloc(k->arena_len + 1);
	if (k->msgs == NULL || k->arena == NULL) {
		free(k->msgs);
		free(k->arena);
		free(k);
		return NULL;
	}
	for (size_t i = 0; i < b->n; i++) {
		char **f[IMAP_SORT_STRINGS];

		k->msgs[i] = b->msgs[i];
		k->msgs[i].seq = 0;
		imap_sort_msg_strings(&k->msgs[i], f);
		for (size_t j = 0; j < IMAP_SORT_STRINGS; j++) {
			size_t len;

			if (*f[j] == NULL)
				continue;
			len = strlen(*f[j]) + 1;
			memcpy(k->arena + off, *f[j], len);
			*f[j] = k->arena + off;
			off += len;
		}
	}
	k->uids = b->uids; /* taken over */
	b->uids = NULL;
	k->n = b->n;
	k->user_id = v->user_id;
	k->mailbox_id = v->mailbox_id;
	k->uidvalidity = v->uidvalidity;
	k->need = need;
	atomic_init(&k->refs, 1);
	return k;
}

/* A new entry for the view: old's keys, and those it lacks read from the
 * index.  NULL after a NO. */
static struct imap_sort_keys *imap_sort_keys_build(struct imap_session *s,
						   const struct imap_sort_keys *old, unsigned need)
{
	struct imap_view *v = &s->view;
	size_t most = v->n + (old != NULL ? old->n : 0) + 1;
	struct imap_sort_build b;
	struct imap_sort_keys *k = NULL;
	struct buf scratch, fold;
	int ret = 0;

	b.used = 0;
	b.n = 0;
	b.uids = malloc(most * sizeof(*b.uids));
	b.msgs = calloc(most, sizeof(*b.msgs));
	b.fresh = calloc(most, sizeof(*b.fresh));
	b.missing = calloc(most, sizeof(*b.missing));
	if (b.uids == NULL || b.msgs == NULL || b.fresh == NULL || b.missing == NULL) {
		imap_sort_build_free(&b);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return NULL;
	}
	imap_sort_build_borrow(&b, v, old);
	buf_init(&scratch, 0);
	buf_init(&fold, IMAP_SORT_KEY_MAX);
	for (size_t pos = 0; pos < v->n && ret == 0; pos += IMAP_FETCH_BATCH)
		ret = imap_sort_build_batch(s, &b, pos,
					    pos + IMAP_FETCH_BATCH < v->n ? pos + IMAP_FETCH_BATCH : v->n,
					    need, &scratch, &fold);
	buf_free(&scratch);
	buf_free(&fold);
	if (ret == 0 && (k = imap_sort_build_pack(v, &b, need)) == NULL)
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
	imap_sort_build_free(&b);
	return k;
}

/* The cache entry that has the keys need asks for of every message of
 * the view (a reference for the caller), made or completed here when the
 * cache has none.  NULL after a NO. */
static struct imap_sort_keys *imap_sort_keys_for_view(struct imap_session *s, unsigned need)
{
	struct imap_view *v = &s->view;
	struct imap_sort_cache *cache = s->ctx != NULL ? s->ctx->sort_cache : NULL;
	struct imap_sort_keys *old = NULL, *fresh;

	if (cache != NULL)
		old = imap_sort_cache_get(cache, v->user_id, v->mailbox_id, v->uidvalidity);
	if (old != NULL && (old->need & need) == need && imap_sort_keys_cover(old, v))
		return old;
	if (old != NULL && (old->need & need) != need) {
		/* keys it does not hold: all made again, with its own too */
		need |= old->need;
		imap_sort_keys_unref(old);
		old = NULL;
	}
	fresh = imap_sort_keys_build(s, old, need);
	if (fresh != NULL)
		log_debug("imap: sort keys user=%u mailbox=%u messages=%zu kept=%zu octets=%zu",
			  v->user_id, v->mailbox_id, fresh->n, old != NULL ? old->n : 0,
			  imap_sort_keys_bytes(fresh));
	imap_sort_keys_unref(old);
	if (fresh != NULL && cache != NULL)
		imap_sort_cache_put(cache, fresh);
	return fresh;
}

/* ---- the messages of one command ---------------------------------------------- */

/* ALL: every message of the view the index still has, known from the
 * expunge log without reading the messages: those expunged since the
 * view's last announced expunge are left out, as a scan of the index
 * would leave them out.  *match_r NULL: every position.  0, 1 when the
 * log no longer reaches back that far (the caller scans), -1 after a NO. */
static int imap_sort_match_all(struct imap_session *s, bool **match_r)
{
	struct imap_view *v = &s->view;
	uint32_t *gone = NULL;
	size_t n_gone = 0;
	bool pruned = false;
	bool *match;

	if (md_mailbox_expunged(v->mb, v->xmodseq, &gone, &n_gone, &pruned) != MD_OK) {
		imap_reply(s, "NO", "[UNAVAILABLE] Cannot read the mailbox");
		return -1;
	}
	if (pruned || n_gone == 0) {
		free(gone);
		return pruned ? 1 : 0;
	}
	match = malloc((v->n + 1) * sizeof(*match));
	if (match == NULL) {
		free(gone);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return -1;
	}
	for (size_t i = 0; i < v->n; i++)
		match[i] = true;
	for (size_t i = 0; i < n_gone; i++) {
		uint32_t seq = imap_view_seq(v, gone[i]);

		if (seq != 0)
			match[seq - 1] = false;
	}
	free(gone);
	*match_r = match;
	return 0;
}

/* Which positions of the view prog matches (*match_r NULL: all of them,
 * without reading anything).  0, or -1 after a NO. */
static int imap_sort_match(struct imap_session *s, struct imap_search_cmd *prog, bool **match_r)
{
	struct imap_view *v = &s->view;
	bool *match;

	*match_r = NULL;
	if (imap_search_matches_all(prog)) {
		int r = imap_sort_match_all(s, match_r);

		if (r <= 0)
			return r;
	}
	match = calloc(v->n + 1, sizeof(*match));
	if (match == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return -1;
	}
	imap_search_prepare(s, prog);
	for (size_t pos = 0; pos < v->n; pos += IMAP_FETCH_BATCH) {
		size_t last = pos + IMAP_FETCH_BATCH < v->n ? pos + IMAP_FETCH_BATCH : v->n;
		struct md_msg *msgs = NULL;
		size_t n = 0;

		if (md_msg_list(v->mb, v->uids[pos], v->uids[last - 1], 0, imap_search_needs(prog),
				&msgs, &n) != MD_OK) {
			imap_reply(s, "NO", "[UNAVAILABLE] Cannot read the mailbox");
			free(match);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			uint32_t seq = imap_view_seq(v, msgs[i].uid);

			if (seq != 0 && imap_search_match(s, prog, &msgs[i]))
				match[seq - 1] = true;
		}
		md_msg_list_free(msgs, n);
	}
	*match_r = match;
	return 0;
}

static void imap_sort_set_clear(struct imap_sort_set *set)
{
	free(set->msgs);
	set->msgs = NULL;
	set->n = 0;
	imap_sort_keys_unref(set->keys);
	set->keys = NULL;
}

void imap_sort_set_free(struct imap_sort_set *set)
{
	imap_sort_set_clear(set);
	if (set->prog != NULL)
		imap_search_free(set->prog);
	set->prog = NULL;
}

int imap_sort_collect(struct imap_session *s, struct imap_sort_set *set_r)
{
	struct imap_view *v = &s->view;
	struct imap_sort_keys *keys;
	bool *match;
	size_t j = 0;

	imap_sort_set_clear(set_r);
	if (imap_sort_match(s, set_r->prog, &match) < 0)
		return -1;
	if ((keys = imap_sort_keys_for_view(s, set_r->need)) == NULL) {
		free(match);
		return -1;
	}
	set_r->keys = keys;
	set_r->msgs = malloc((v->n + 1) * sizeof(*set_r->msgs));
	if (set_r->msgs == NULL) {
		free(match);
		imap_sort_set_clear(set_r);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return -1;
	}
	for (size_t i = 0; i < v->n; i++) {
		while (j < keys->n && keys->uids[j] < v->uids[i])
			j++;
		if (j == keys->n || keys->uids[j] != v->uids[i] || keys->msgs[j].uid == 0 ||
		    (match != NULL && !match[i]))
			continue;
		set_r->msgs[set_r->n] = keys->msgs[j];
		set_r->msgs[set_r->n++].seq = (uint32_t)(i + 1);
	}
	free(match);
	return 0;
}
