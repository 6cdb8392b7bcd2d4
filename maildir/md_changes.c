/* Reads of what changed in a mailbox, for IMAP's untagged updates and
 * CONDSTORE/QRESYNC (RFC 7162): the UID list, the expunge log, the modseq
 * index, and md_mailbox_changes(), which reads them in one transaction.
 *
 * Memory: every list is malloc'd and handed to the caller (md_changes_free).
 */
#include "md_private.h"

#include <stdlib.h>
#include <string.h>

int md_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

int md_u32_push(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		uint32_t *nv = realloc(*v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = x;
	return 0;
}

/* End of a cursor walk that collected uids: hand them over, or free them
 * when it failed (rc < 0). */
static enum md_result md_changes_done(struct md_cursor *cur, int rc, uint32_t *uids,
				      size_t n, uint32_t **uids_r, size_t *n_r)
{
	md_cursor_close(cur);
	if (rc < 0) {
		free(uids);
		return MD_TEMPFAIL;
	}
	*uids_r = uids;
	*n_r = n;
	return MD_OK;
}

enum md_result md_uids_read(struct md_txn *t, uint32_t user, uint32_t mbox,
			    size_t hint, uint32_t **uids_r, size_t *n_r)
{
	unsigned char prefix[8];
	struct md_cursor *cur;
	struct md_val k, v;
	size_t cap = hint + 16, n = 0;
	uint32_t *uids = malloc(cap * sizeof(*uids)); /* the counter sizes the
							 * array; the scan is
							 * the truth */
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	if (uids == NULL ||
	    md_cursor_open(t, MD_DB_MSG, prefix, md_key_mbox(prefix, user, mbox), &cur) < 0) {
		free(uids);
		return MD_TEMPFAIL;
	}
	for (rc = md_cursor_seek(cur, prefix, 8, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v))
		if (k.len == 12 &&
		    md_u32_push(&uids, &n, &cap,
				    md_get32((const unsigned char *)k.data + 8)) < 0) {
			rc = -1;
			break;
		}
	return md_changes_done(cur, rc, uids, n, uids_r, n_r);
}

/* Sort and drop repeats (a UID is expunged once, but a damaged index
 * could repeat it). */
static size_t md_changes_unique(uint32_t *uids, size_t n)
{
	size_t o = 0;

	if (n > 1)
		qsort(uids, n, sizeof(*uids), md_u32_cmp);
	for (size_t i = 0; i < n; i++)
		if (o == 0 || uids[o - 1] != uids[i])
			uids[o++] = uids[i];
	return o;
}

enum md_result md_explog_read(struct md_txn *t, uint32_t user, uint32_t mbox,
			      uint64_t since, uint32_t **uids_r, size_t *n_r,
			      bool *pruned_r)
{
	unsigned char key[8], dup[12];
	struct md_cursor *cur;
	struct md_val v;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	*pruned_r = false;
	md_key_mbox(key, user, mbox);
	md_put64(dup, since == UINT64_MAX ? since : since + 1);
	md_put32(dup + 8, 0);
	if (md_cursor_open(t, MD_DB_EXPUNGED, key, 8, &cur) < 0)
		return MD_TEMPFAIL;
	for (rc = md_cursor_seek_dup(cur, key, 8, dup, 12, &v); rc == 0;
	     rc = md_cursor_next_dup(cur, &v)) {
		uint32_t uid;

		if (v.len != 12)
			continue;
		uid = md_get32((const unsigned char *)v.data + 8);
		if (uid == 0) {
			/* the horizon marker: expunges after since are
			 * missing (md_rec_explog_prune) */
			*pruned_r = true;
			continue;
		}
		if (md_u32_push(&uids, &n, &cap, uid) < 0) {
			rc = -1;
			break;
		}
	}
	if (rc >= 0)
		n = md_changes_unique(uids, n);
	return md_changes_done(cur, rc, uids, n, uids_r, n_r);
}

int md_modseq_uids(struct md_txn *t, uint32_t user, uint32_t mbox,
		   uint32_t first, uint32_t last, uint64_t since, size_t limit,
		   uint32_t **uids_r, size_t *n_r)
{
	unsigned char key[8], dup[12];
	struct md_cursor *cur;
	struct md_val v;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0, seen = 0;
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	md_key_mbox(key, user, mbox);
	md_put64(dup, since == UINT64_MAX ? since : since + 1);
	md_put32(dup + 8, 0);
	if (md_cursor_open(t, MD_DB_MODSEQ, key, 8, &cur) < 0)
		return -1;
	for (rc = md_cursor_seek_dup(cur, key, 8, dup, 12, &v); rc == 0;
	     rc = md_cursor_next_dup(cur, &v)) {
		uint32_t uid;

		if (v.len != 12)
			continue;
		if (++seen > limit) {
			rc = 2;
			break;
		}
		uid = md_get32((const unsigned char *)v.data + 8);
		if (uid >= first && uid <= last && md_u32_push(&uids, &n, &cap, uid) < 0) {
			rc = -1;
			break;
		}
	}
	md_cursor_close(cur);
	if (rc < 0 || rc == 2) {
		free(uids);
		return rc < 0 ? -1 : 1;
	}
	if (n > 1)
		qsort(uids, n, sizeof(*uids), md_u32_cmp);
	*uids_r = uids;
	*n_r = n;
	return 0;
}

enum md_result md_msg_changed(struct md_mailbox *mb, uint32_t uid_first,
			      uint32_t uid_last, uint64_t changedsince,
			      size_t limit, uint32_t **uids_r, size_t *n_r)
{
	struct md_mbox_rec rec;
	struct md_txn *t;
	enum md_result r;
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(mb->user, t, mb->id, &rec, NULL, 0);
	if (r == MD_OK) {
		rc = md_modseq_uids(t, mb->user->id, mb->id, uid_first, uid_last,
				    changedsince, limit, uids_r, n_r);
		r = rc < 0 ? MD_TEMPFAIL : rc > 0 ? MD_LIMIT : MD_OK;
	}
	md_read_end(t);
	return r;
}

/* ---- md_mailbox_changes ------------------------------------------------ */

static enum md_result md_changes_push_msg(struct md_mailbox *mb, struct md_txn *t,
					  const struct md_msg_rec *rec,
					  struct md_changes *ch, size_t *cap)
{
	if (ch->n_msgs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct md_msg *nm = realloc(ch->msgs, ncap * sizeof(*nm));

		if (nm == NULL)
			return MD_TEMPFAIL;
		ch->msgs = nm;
		*cap = ncap;
	}
	if (md_msg_fill(mb, t, NULL, rec, 0, &ch->msgs[ch->n_msgs]) != MD_OK)
		return MD_TEMPFAIL;
	ch->n_msgs++;
	return MD_OK;
}

/* Flag changes below uidnext: from the modseq index. */
static enum md_result md_changes_flags(struct md_mailbox *mb, struct md_txn *t,
				       uint32_t uidnext, uint64_t modseq,
				       struct md_changes *ch, size_t *cap)
{
	uint32_t *uids;
	size_t n;
	enum md_result r = MD_OK;

	if (uidnext <= 1 || ch->status.highestmodseq <= modseq)
		return MD_OK;
	if (md_modseq_uids(t, mb->user->id, mb->id, 1, uidnext - 1, modseq, SIZE_MAX,
			   &uids, &n) != 0)
		return MD_TEMPFAIL;
	for (size_t i = 0; i < n && r == MD_OK; i++) {
		struct md_msg_rec rec;

		r = md_rec_msg_get(t, mb->user->id, mb->id, uids[i], &rec);
		if (r == MD_NOTFOUND)
			r = MD_OK;
		else if (r == MD_OK)
			r = md_changes_push_msg(mb, t, &rec, ch, cap);
	}
	free(uids);
	return r;
}

/* Messages from uidnext on: a range of the records. */
static enum md_result md_changes_new(struct md_mailbox *mb, struct md_txn *t,
				     uint32_t uidnext, struct md_changes *ch, size_t *cap)
{
	unsigned char key[12];
	struct md_cursor *cur;
	struct md_val k, v;
	enum md_result r = MD_OK;
	int rc;

	if (ch->status.uidnext <= uidnext)
		return MD_OK;
	if (md_cursor_open(t, MD_DB_MSG, key, md_key_mbox(key, mb->user->id, mb->id),
			   &cur) < 0)
		return MD_TEMPFAIL;
	md_key_msg(key, mb->user->id, mb->id, uidnext);
	for (rc = md_cursor_seek(cur, key, 12, &k, &v); rc == 0 && r == MD_OK;
	     rc = md_cursor_next(cur, &k, &v)) {
		struct md_msg_rec rec;

		if ((r = md_rec_msg_decode(&k, &v, &rec)) == MD_OK)
			r = md_changes_push_msg(mb, t, &rec, ch, cap);
	}
	md_cursor_close(cur);
	return rc < 0 ? MD_TEMPFAIL : r;
}

static enum md_result md_changes_read(struct md_mailbox *mb, struct md_txn *t,
				      uint32_t uidnext, uint64_t modseq,
				      uint64_t xmodseq, struct md_changes *ch)
{
	struct md_mbox_rec rec;
	size_t cap = 0;
	enum md_result r = md_mbox_dir(mb->user, t, mb->id, &rec, NULL, 0);

	if (r != MD_OK)
		return r;
	if (rec.uidvalidity != mb->uidvalidity)
		return MD_NOMAILBOX;
	md_status_from_rec(&rec, &ch->status);
	if ((r = md_kw_names(t, mb->user->id, mb->id, &ch->keywords,
			     &ch->n_keywords)) != MD_OK)
		return r;
	ch->status.n_keywords = (uint32_t)ch->n_keywords;
	if (xmodseq != UINT64_MAX && rec.highestmodseq > xmodseq) {
		r = md_explog_read(t, mb->user->id, mb->id, xmodseq, &ch->expunged,
				   &ch->n_expunged, &ch->expunged_pruned);
		if (r == MD_OK && ch->expunged_pruned)
			r = md_uids_read(t, mb->user->id, mb->id, rec.messages, &ch->uids,
					 &ch->n_uids);
		if (r != MD_OK)
			return r;
	}
	if ((r = md_changes_flags(mb, t, uidnext, modseq, ch, &cap)) != MD_OK)
		return r;
	return md_changes_new(mb, t, uidnext, ch, &cap);
}

enum md_result md_mailbox_changes(struct md_mailbox *mb, uint32_t uidnext,
				  uint64_t modseq, uint64_t xmodseq,
				  struct md_changes *changes_r)
{
	struct md_txn *t;
	enum md_result r = md_sync_mailbox(mb->user, mb->id, false);

	memset(changes_r, 0, sizeof(*changes_r));
	if (r != MD_OK)
		return r;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_changes_read(mb, t, uidnext, modseq, xmodseq, changes_r);
	md_read_end(t);
	if (r != MD_OK)
		md_changes_free(changes_r);
	return r;
}

void md_changes_free(struct md_changes *ch)
{
	md_msg_list_free(ch->msgs, ch->n_msgs);
	free(ch->expunged);
	free(ch->uids);
	if (ch->keywords != NULL)
		md_mailbox_keywords_free(ch->keywords, ch->n_keywords);
	memset(ch, 0, sizeof(*ch));
}
