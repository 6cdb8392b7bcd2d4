/* CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4.3): updating searches.
 *
 * A UID SEARCH or UID SORT with RETURN (UPDATE) leaves its program (and
 * for SORT its criteria) here as a context named by the command's tag,
 * with the result the client was given.  Whenever the session may send
 * untagged updates that may include EXPUNGE (a REMOVEFROM can stand for
 * one: RFC 3501 §7.4.1), imap_view_update() calls imap_context_update(): a
 * context whose view changed since its result (new messages, flag
 * changes, expunges: the view's mod-sequences, UIDNEXT and size) is
 * evaluated again and the difference is sent.  A SEARCH program is run
 * on the messages changed since (imap_search_context_run(): its other
 * keys cannot change their answer), a SORT on the whole view (the order
 * needs every member's keys; they come from the index):
 *
 *   * ESEARCH (TAG "t") UID REMOVEFROM (pos uid ...)
 *   * ESEARCH (TAG "t") UID ADDTO (pos uid ...)
 *
 * SEARCH results are unordered sets: position 0 and one set of UIDs.
 * SORT results are ordered: one pair per message, applied in the order
 * given; a REMOVEFROM position is where the message stands once the pairs
 * before it were applied, an ADDTO position is where it stands in the new
 * order (the messages kept never change their relative order: sort keys
 * do not change and ties go by sequence number).
 *
 * Bounds: at most IMAP_CONTEXTS_MAX contexts per session (beyond, and
 * for the cases below, "* NO [NOUPDATE "tag"]" and the command still
 * answers, RFC 5267 §4.3.1); each keeps one UID per message of its
 * result.  Refused: UPDATE on SEARCH / SORT with sequence numbers (they
 * shift under EXPUNGE; a client keeping contexts uses UIDs) and UPDATE
 * with PARTIAL (updates of a window are not offered).  Contexts end with
 * the mailbox (SELECT, EXAMINE, CLOSE, UNSELECT, LOGOUT) and with
 * CANCELUPDATE.
 *
 * Memory: each context owns its query (freed with the SEARCH or SORT
 * free function) and its UID array.
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "store.h"

#define IMAP_CANCELUPDATE_TAGS_MAX IMAP_CONTEXTS_MAX /* more cannot all be live */

void imap_context_mark(const struct imap_session *s, struct imap_context_mark *m)
{
	m->modseq = s->view.modseq;
	m->xmodseq = s->view.xmodseq;
	m->uidnext = s->view.uidnext;
	m->n = s->view.n;
}

static bool imap_context_mark_eq(const struct imap_context_mark *a,
				 const struct imap_context_mark *b)
{
	return a->modseq == b->modseq && a->xmodseq == b->xmodseq && a->uidnext == b->uidnext &&
	       a->n == b->n;
}

static void imap_context_free(struct imap_context *x)
{
	if (x->sorted)
		imap_sort_query_free(x->query);
	else
		imap_search_free(x->query);
	free(x->uids);
	memset(x, 0, sizeof(*x));
}

static void imap_context_drop(struct imap_session *s, size_t i)
{
	imap_context_free(&s->contexts[i]);
	s->contexts[i] = s->contexts[--s->n_contexts];
	memset(&s->contexts[s->n_contexts], 0, sizeof(s->contexts[0]));
}

static ssize_t imap_context_find(const struct imap_session *s, const char *tag)
{
	for (size_t i = 0; i < s->n_contexts; i++)
		if (strcmp(s->contexts[i].tag, tag) == 0)
			return (ssize_t)i;
	return -1;
}

void imap_context_drop_all(struct imap_session *s)
{
	while (s->n_contexts > 0)
		imap_context_drop(s, s->n_contexts - 1);
}

static void imap_context_noupdate(struct imap_session *s, const char *why)
{
	buf_appendf(&s->out, "* NO [NOUPDATE ");
	imap_buf_string(&s->out, s->tag, strlen(s->tag));
	buf_appendf(&s->out, "] %s\r\n", why);
}

bool imap_context_start(struct imap_session *s, bool partial, const struct imap_context_mark *mark,
			void *query, bool sorted, const uint32_t *uids, size_t n)
{
	struct imap_context *x;
	ssize_t old = imap_context_find(s, s->tag);

	if (!s->uid) {
		imap_context_noupdate(s, "UPDATE is offered with UID SEARCH and UID SORT");
		return false;
	}
	if (partial) {
		imap_context_noupdate(s, "UPDATE is not offered with PARTIAL");
		return false;
	}
	if (old >= 0) /* the tag names the newer search from now on */
		imap_context_drop(s, (size_t)old);
	if (s->n_contexts == IMAP_CONTEXTS_MAX) {
		imap_context_noupdate(s, "Too many updating searches");
		return false;
	}
	x = &s->contexts[s->n_contexts];
	x->uids = malloc((n + 1) * sizeof(*x->uids));
	if (x->uids == NULL) {
		imap_context_noupdate(s, "Out of memory");
		return false;
	}
	memcpy(x->uids, uids, n * sizeof(*uids));
	x->n = n;
	str_copy(x->tag, s->tag, sizeof(x->tag));
	x->query = query;
	x->sorted = sorted;
	x->mark = *mark;
	s->n_contexts++;
	return true;
}

/* ---- the difference --------------------------------------------------------- */

static int imap_context_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static bool imap_context_has(const uint32_t *sorted, size_t n, uint32_t uid)
{
	return bsearch(&uid, sorted, n, sizeof(*sorted), imap_context_u32_cmp) != NULL;
}

static void imap_context_head(struct imap_session *s, const struct imap_context *x,
			      const char *item)
{
	buf_appendf(&s->out, "* ESEARCH (TAG ");
	imap_buf_string(&s->out, x->tag, strlen(x->tag));
	buf_appendf(&s->out, ") UID %s (", item);
}

/* An unordered SEARCH result (both ascending): "0 set" of each side. */
static void imap_context_diff_set(struct imap_session *s, const struct imap_context *x,
				  const uint32_t *now, size_t n_now, uint32_t *scratch)
{
	size_t n = 0, i = 0, j = 0;

	for (; i < x->n; i++) { /* gone */
		while (j < n_now && now[j] < x->uids[i])
			j++;
		if (j == n_now || now[j] != x->uids[i])
			scratch[n++] = x->uids[i];
	}
	if (n > 0) {
		imap_context_head(s, x, "REMOVEFROM");
		buf_appendf(&s->out, "0 ");
		imap_buf_uidset(&s->out, scratch, n);
		buf_appendf(&s->out, ")\r\n");
	}
	n = 0;
	for (i = 0, j = 0; j < n_now; j++) { /* new */
		while (i < x->n && x->uids[i] < now[j])
			i++;
		if (i == x->n || x->uids[i] != now[j])
			scratch[n++] = now[j];
	}
	if (n > 0) {
		imap_context_head(s, x, "ADDTO");
		buf_appendf(&s->out, "0 ");
		imap_buf_uidset(&s->out, scratch, n);
		buf_appendf(&s->out, ")\r\n");
	}
}

/* A SORT result: "pos uid" pairs, applied in turn (see the top). */
static void imap_context_diff_sorted(struct imap_session *s, const struct imap_context *x,
				     const uint32_t *now, size_t n_now, uint32_t *scratch)
{
	uint32_t *old_sorted = scratch, *now_sorted = scratch + x->n;
	size_t kept = 0;
	const char *sep = "";

	memcpy(old_sorted, x->uids, x->n * sizeof(*old_sorted));
	memcpy(now_sorted, now, n_now * sizeof(*now_sorted));
	qsort(old_sorted, x->n, sizeof(*old_sorted), imap_context_u32_cmp);
	qsort(now_sorted, n_now, sizeof(*now_sorted), imap_context_u32_cmp);
	for (size_t i = 0; i < x->n; i++) {
		if (imap_context_has(now_sorted, n_now, x->uids[i])) {
			kept++;
			continue;
		}
		if (*sep == '\0')
			imap_context_head(s, x, "REMOVEFROM");
		buf_appendf(&s->out, "%s%zu %u", sep, kept + 1, x->uids[i]);
		sep = " ";
	}
	if (*sep != '\0')
		buf_appendf(&s->out, ")\r\n");
	sep = "";
	for (size_t j = 0; j < n_now; j++) {
		if (imap_context_has(old_sorted, x->n, now[j]))
			continue;
		if (*sep == '\0')
			imap_context_head(s, x, "ADDTO");
		buf_appendf(&s->out, "%s%zu %u", sep, j + 1, now[j]);
		sep = " ";
	}
	if (*sep != '\0')
		buf_appendf(&s->out, ")\r\n");
}

/* One context evaluated again; false when that failed (tried again at
 * the next update: the mark stays). */
static bool imap_context_refresh(struct imap_session *s, struct imap_context *x,
				 const struct imap_context_mark *mark)
{
	imap_context_run_fn *run = x->sorted ? imap_sort_context_run : imap_search_context_run;
	uint32_t *now = NULL, *scratch;
	size_t n_now = 0;

	if (run(s, x, &now, &n_now) != NULL)
		return false;
	scratch = malloc((x->n + n_now + 1) * sizeof(*scratch));
	if (scratch == NULL) {
		free(now);
		return false;
	}
	if (x->sorted)
		imap_context_diff_sorted(s, x, now, n_now, scratch);
	else
		imap_context_diff_set(s, x, now, n_now, scratch);
	free(scratch);
	free(x->uids);
	x->uids = now;
	x->n = n_now;
	x->mark = *mark;
	return true;
}

void imap_context_update(struct imap_session *s)
{
	struct imap_context_mark mark;

	if (s->n_contexts == 0 || s->view.mb == NULL)
		return;
	imap_context_mark(s, &mark);
	for (size_t i = 0; i < s->n_contexts; i++)
		if (!imap_context_mark_eq(&s->contexts[i].mark, &mark))
			imap_context_refresh(s, &s->contexts[i], &mark);
}

/* ---- CANCELUPDATE ------------------------------------------------------------ */

/* RFC 5267 §4.3.5: CANCELUPDATE SP tag-string *(SP tag-string); every
 * tag must name a live context (checked before any is dropped). */
void imap_cmd_cancelupdate(struct imap_session *s, struct imap_cursor *args)
{
	char tags[IMAP_CANCELUPDATE_TAGS_MAX][IMAP_TAG_MAX + 1];
	size_t n = 0;

	do {
		if (n == IMAP_CANCELUPDATE_TAGS_MAX) {
			imap_reply(s, "BAD", "Too many tags");
			return;
		}
		if (!imap_sp(args) || !imap_astring_copy(args, tags[n], sizeof(tags[n]))) {
			imap_reply(s, "BAD", "CANCELUPDATE needs the tags of updating searches");
			return;
		}
		if (imap_context_find(s, tags[n]) < 0) {
			imap_reply(s, "BAD", "No updating search has that tag");
			return;
		}
		n++;
	} while (!imap_at_end(args));
	for (size_t i = 0; i < n; i++) {
		ssize_t k = imap_context_find(s, tags[i]);
		if (k >= 0)
			imap_context_drop(s, (size_t)k);
	}
	imap_reply(s, "OK", "CANCELUPDATE completed");
}
