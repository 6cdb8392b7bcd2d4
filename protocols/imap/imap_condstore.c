/* CONDSTORE and QRESYNC (RFC 7162): mod-sequence arguments, the SELECT /
 * EXAMINE parameters, VANISHED (EARLIER) from the store's expunge log, and
 * the EXPUNGE or VANISHED announcements of the view.
 *
 * The expunge log is pruned (config imap_expunge_log_max): when a client's
 * mod-sequence is older than what is kept, VANISHED (EARLIER) names every
 * UID of its set (below UIDNEXT) that no longer exists — a bigger answer,
 * never a wrong one (RFC 7162 §3.2.5.2 allows UIDs that never existed).
 *
 * Memory: lists are malloc'd and freed before the function returns. */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "store.h"

/* RFC 7162 §7: mod-sequence-value is a positive 63-bit integer */
#define IMAP_MODSEQ_MAX ((uint64_t)INT64_MAX)

bool imap_modseq_arg(struct imap_cursor *c, uint64_t *modseq_r, bool zero_ok)
{
	if (!imap_number64(c, modseq_r) || *modseq_r > IMAP_MODSEQ_MAX ||
	    (!zero_ok && *modseq_r == 0)) {
		c->err = "Invalid mod-sequence";
		return false;
	}
	return true;
}

void imap_buf_uidset(struct buf *b, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			buf_appendf(b, "%s%u:%u", i > 0 ? "," : "", uids[i], uids[j]);
		else
			buf_appendf(b, "%s%u", i > 0 ? "," : "", uids[i]);
		i = j + 1;
	}
}

/* "* n EXPUNGE" (or "* VANISHED uids" after ENABLE QRESYNC, RFC 7162
 * §3.2.10) for each of uids (ascending) still in the view, which loses
 * them: one pass over both lists. */
void imap_view_expunged(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct imap_view *v = &s->view;
	uint32_t *gone = s->qresync ? malloc((n + 1) * sizeof(*gone)) : NULL;
	size_t w = 0, j = 0, n_gone = 0;

	for (size_t i = 0; i < v->n; i++) {
		while (j < n && uids[j] < v->uids[i])
			j++;
		if (j < n && uids[j] == v->uids[i]) {
			if (!s->qresync)
				imap_out(s, "* %zu EXPUNGE\r\n", i - n_gone + 1);
			else if (gone != NULL)
				gone[n_gone] = v->uids[i];
			imap_view_drop_recent(v, v->uids[i]);
			n_gone++;
			continue;
		}
		v->uids[w++] = v->uids[i];
	}
	v->n = w;
	if (gone != NULL && n_gone > 0) {
		buf_appendf(&s->out, "* VANISHED ");
		imap_buf_uidset(&s->out, gone, n_gone);
		buf_appendf(&s->out, "\r\n");
	}
	free(gone);
}

/* UIDs of [lo, hi] that are not in have (ascending), as ranges into b. */
static void imap_vanished_gaps(struct buf *b, const uint32_t *have, size_t n, uint32_t lo,
			       uint32_t hi, bool *first)
{
	size_t i = 0;
	uint64_t at = lo;

	while (i < n && have[i] < lo)
		i++;
	while (at <= hi) {
		uint64_t next = i < n && have[i] <= hi ? have[i] : (uint64_t)hi + 1;

		if (next > at) {
			buf_appendf(b, "%s%llu", *first ? "" : ",", (unsigned long long)at);
			if (next - 1 > at)
				buf_appendf(b, ":%llu", (unsigned long long)(next - 1));
			*first = false;
		}
		at = next + 1;
		i++;
	}
}

int imap_vanished_earlier(struct imap_session *s, struct imap_seqset *set, uint64_t modseq,
			  uint32_t uidnext)
{
	struct imap_view *v = &s->view;
	uint32_t *ex = NULL, *uids = NULL;
	size_t nex = 0, n = 0, mark = s->out.len;
	bool pruned = false, first = true;
	enum md_result r;

	if (uidnext <= 1)
		return 0;
	imap_seqset_normalise(set, uidnext - 1);
	r = md_mailbox_expunged(v->mb, modseq, &ex, &nex, &pruned);
	if (r == MD_OK && pruned)
		r = md_mailbox_uids(v->mb, &uids, &n);
	if (r != MD_OK) {
		free(ex);
		return -1;
	}
	buf_appendf(&s->out, "* VANISHED (EARLIER) ");
	if (pruned) {
		/* older than the log: every UID of the set that is gone */
		for (size_t i = 0; i < set->n; i++) {
			uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;

			if (lo == 0)
				lo = 1;
			if (hi >= uidnext)
				hi = uidnext - 1;
			if (lo <= hi)
				imap_vanished_gaps(&s->out, uids, n, lo, hi, &first);
		}
	} else {
		size_t o = 0;

		for (size_t i = 0; i < nex; i++)
			if (imap_seqset_contains(set, ex[i]))
				ex[o++] = ex[i];
		imap_buf_uidset(&s->out, ex, o);
		first = o == 0;
	}
	if (first)
		s->out.len = mark; /* nothing vanished: no response */
	else
		buf_appendf(&s->out, "\r\n");
	free(ex);
	free(uids);
	return 0;
}

/* ---- SELECT / EXAMINE parameters -------------------------------------------- */

/* select-params (RFC 7162 §3.1.8, §3.2.5; RFC 4466 §2.4): "(CONDSTORE)",
 * "(QRESYNC (uidvalidity modseq [known-uids [seq-match-data]]))". */
bool imap_select_params(struct imap_session *s, struct imap_cursor *c, struct imap_qresync *q)
{
	char name[16];

	if (!imap_char(c, '('))
		return false;
	do {
		if (!imap_atom(c, name, sizeof(name), NULL))
			return false;
		if (str_ieq(name, "CONDSTORE")) {
			q->condstore = true;
			continue;
		}
		if (!str_ieq(name, "QRESYNC") || q->qresync) {
			c->err = "Unknown SELECT parameter";
			return false;
		}
		if (!s->qresync) {
			/* RFC 7162 §3.2.5: BAD without ENABLE QRESYNC first */
			c->err = "QRESYNC is not enabled";
			return false;
		}
		q->qresync = true;
		if (!imap_sp(c) || !imap_char(c, '(') || !imap_number(c, &q->uidvalidity, true) ||
		    !imap_sp(c) || !imap_modseq_arg(c, &q->modseq, false))
			return false;
		if (imap_sp(c)) {
			if (!imap_seqset(c, &q->known) || q->known.saved)
				return false;
			q->has_known = true;
			if (imap_sp(c)) {
				/* seq-match-data: a hint we do not need, checked */
				struct imap_seqset a = { 0 }, b = { 0 };
				bool ok = imap_char(c, '(') && imap_seqset(c, &a) && imap_sp(c) &&
					  imap_seqset(c, &b) && imap_char(c, ')') && !a.saved &&
					  !b.saved;

				free(a.ranges);
				free(b.ranges);
				if (!ok)
					return false;
			}
		}
		if (!imap_char(c, ')'))
			return false;
	} while (imap_sp(c));
	return imap_char(c, ')');
}

/* After the SELECT responses (RFC 7162 §3.2.5.1): what vanished and what
 * changed since the client's mod-sequence, among its known UIDs. */
void imap_qresync_answer(struct imap_session *s, struct imap_qresync *q, char **names,
			 size_t n_names, uint32_t uidnext)
{
	struct imap_view *v = &s->view;
	struct imap_seqset all = { 0 };
	struct imap_range every = { 1, UINT32_MAX };
	struct imap_seqset *set = q->has_known ? &q->known : &all;
	struct md_msg *msgs = NULL;
	size_t n = 0;

	if (!q->qresync || q->uidvalidity != v->uidvalidity)
		return; /* another UIDVALIDITY: the client starts afresh */
	if (q->modseq > v->modseq)
		/* not one of ours (imap_fetch.c, imap_fetch_foreign_modseq):
		 * everything, which is more than needed but never wrong */
		q->modseq = 0;
	all.ranges = &every;
	all.n = 1;
	if (imap_vanished_earlier(s, set, q->modseq, uidnext) < 0)
		return;
	if (md_msg_list(v->mb, 1, UINT32_MAX, q->modseq, 0, &msgs, &n) != MD_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		uint32_t seq = imap_view_seq(v, msgs[i].uid);

		if (seq == 0 || !imap_seqset_contains(set, msgs[i].uid))
			continue;
		buf_appendf(&s->out, "* %u FETCH (UID %u FLAGS ", seq, msgs[i].uid);
		imap_buf_flags(&s->out, msgs[i].flags, msgs[i].keywords, names, n_names,
			       imap_is_recent(s, msgs[i].uid));
		buf_appendf(&s->out, " MODSEQ (%llu))\r\n", (unsigned long long)msgs[i].modseq);
	}
	md_msg_list_free(msgs, n);
}
