/* COPY and MOVE (RFC 3501 §6.4.7, RFC 6851) between mailboxes of one user.
 *
 * File work first, on the calling thread, then one write job that only
 * records it (DESIGN.md: LMDB's write lock is shared with every process):
 *
 *   1. a job gives the destination the keywords the copies carry (index
 *      only; dovecot-keywords follows after its commit);
 *   2. each message file is hard-linked into the destination's cur/ under
 *      a new unique name carrying its flags, and cur/ is fsynced
 *      (md_fsync_dir_shared: shared with deliveries into it), so the index
 *      never names a link a crash could lose;
 *   3. MOVE: the originals are unlinked (found by base name when renamed
 *      meanwhile) and their directories fsynced.  An original that cannot
 *      be removed (EIO, EACCES) stays where it is and its copy is removed
 *      again: the message is neither lost nor doubled;
 *   4. one job gives the copies their UIDs (consecutive, for COPYUID) and,
 *      for MOVE, drops the originals' records in the same transaction;
 *   5. when that job fails, the MOVE is undone from the disk: each removed
 *      original is linked back from its copy under the name it had, then
 *      the copy is removed.
 *
 * A crash between 3 and 4 leaves the copies unindexed in cur/ (the next
 * sync indexes them) and the originals' records without files (the next
 * sync drops them): moved, not lost.  The packed metadata is copied, not
 * computed again.  Keywords are matched by name: each mailbox numbers its
 * own.
 */
#include "md_private.h"
#include "md_keywords.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MD_COPY_MAX 100000 /* messages per COPY/MOVE call */

struct md_copy_item {
	struct md_msg_rec src;
	struct md_msg_rec dst;
	void *meta;
	size_t meta_len;
	bool linked;
	bool gone;               /* MOVE: the original's file is gone */
	bool unlinked;           /* ... removed by this MOVE (not before) */
	struct md_msg_rec now;   /* MOVE: the original, under the name removed */
};

struct md_copy_job {
	struct md_user *user;
	uint32_t src_mbox, dst_mbox;
	const char *src_dir, *dst_dir;
	struct md_copy_item *items;
	size_t n;
	bool move;
	uint64_t quota;
	uint64_t quota_messages;
	/* keyword phase */
	bool kw_phase;
	int kwmap[MD_KEYWORDS_MAX];
	bool kw_created;      /* dovecot-keywords needs rewriting */
	bool src_synced;      /* MOVE: the originals' unlinks are durable */
	/* out */
	uint32_t uidvalidity;
};

/* Phase 1: the destination knows every keyword the copies carry. */
static enum md_result md_copy_kw_run(struct md_txn *t, struct md_copy_job *j)
{
	struct md_user *u = j->user;
	struct md_kwtab src, dst;
	uint64_t used[MD_KW_WORDS] = { 0 };
	bool created = false;
	enum md_result r;

	for (size_t i = 0; i < MD_KEYWORDS_MAX; i++)
		j->kwmap[i] = -1;
	for (size_t i = 0; i < j->n; i++)
		for (int w = 0; w < MD_KW_WORDS; w++)
			used[w] |= j->items[i].src.kw[w];
	if ((r = md_kw_load(t, u->id, j->src_mbox, &src)) != MD_OK)
		return r;
	if ((r = md_kw_load(t, u->id, j->dst_mbox, &dst)) != MD_OK) {
		md_kw_free(&src);
		return r;
	}
	for (size_t i = 0; i < MD_KEYWORDS_MAX && r == MD_OK; i++) {
		if (!(used[i / 64] & (1ULL << (i % 64))))
			continue;
		if (i < src.n && src.names[i] != NULL)
			r = md_kw_ensure(t, u->id, j->dst_mbox, &dst, src.names[i],
					 &j->kwmap[i], &created);
		else if (i < 26)
			j->kwmap[i] = (int)i; /* a letter without a name: keep it */
	}
	j->kw_created = r == MD_OK && created;
	md_kw_free(&src);
	md_kw_free(&dst);
	return r;
}

static const struct md_msg_rec *md_copy_xkw_rec(void *ctx, size_t i)
{
	struct md_copy_item *it = &((struct md_copy_job *)ctx)->items[i];

	return it->linked ? &it->dst : NULL;
}

/* The copies' keywords beyond the letters go to the destination's
 * postern-keywords (md_keywords.c), after the commit, outside the lock; a
 * moved message's entry in the source goes stale and is dropped at its
 * next rewrite. */
static void md_copy_xkw(struct md_copy_job *j)
{
	enum md_result r;
	bool any = false;

	for (size_t i = 0; i < j->n && !any; i++)
		any = j->items[i].linked && md_xkw_any(j->items[i].dst.kw);
	if (!any)
		return;
	r = md_xkw_update_file(j->user->store, j->user->id, j->dst_mbox, j->dst_dir,
			       md_copy_xkw_rec, j, j->n);
	if (r != MD_OK)
		log_warn("store: user=%s %s/%s: %s", j->user->address, j->dst_dir,
			 MD_XKW_FILE, md_result_name(r));
}

/* MOVE, on the calling thread: remove an original's file.  it->gone when
 * it is gone (removed here, or by someone else before), it->now naming
 * it as it was removed; an unlink that fails otherwise (EIO, EACCES)
 * keeps the original, logged, and the caller drops its copy. */
static void md_copy_unlink_src(struct md_copy_job *j, struct md_copy_item *it)
{
	it->now = it->src;
	switch (md_msg_unlink(j->src_dir, &it->now, 0)) {
	case MD_UNLINK_DONE:
		it->unlinked = true;
		/* fall through */
	case MD_UNLINK_GONE:
		it->gone = true;
		break;
	case MD_UNLINK_KEPT:
	case MD_UNLINK_FAILED:
		log_warn("store: user=%s uid=%u unlink in %s: %s, not moved",
			 j->user->address, it->src.uid, j->src_dir, strerror(errno));
		break;
	}
}

static enum md_result md_copy_job_run(struct md_txn *t, void *arg)
{
	struct md_copy_job *j = arg;
	struct md_user *u = j->user;
	struct md_mbox_rec mb;
	struct md_user_rec urec;
	uint64_t modseq, total = 0, count = 0;
	unsigned char key[12];
	enum md_result r;

	if (j->kw_phase)
		return md_copy_kw_run(t, j);
	if ((r = md_rec_mbox_get(t, u->id, j->dst_mbox, &mb)) != MD_OK)
		return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
	if ((r = md_rec_user_get(t, u->address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	for (size_t i = 0; i < j->n; i++)
		if (j->items[i].linked) {
			total += j->items[i].dst.size;
			count++;
		}
	if (!j->move && j->quota > 0 && urec.used_bytes + total > j->quota)
		return MD_QUOTA;
	if (!j->move && j->quota_messages > 0 && urec.used_messages + count > j->quota_messages)
		return MD_QUOTA;
	j->uidvalidity = mb.uidvalidity;
	modseq = mb.highestmodseq + 1;
	for (size_t i = 0; i < j->n; i++) {
		struct md_copy_item *it = &j->items[i];

		if (!it->linked)
			continue;
		if (mb.uidnext == UINT32_MAX)
			return MD_LIMIT;
		it->dst.uid = mb.uidnext++;
		it->dst.modseq = modseq;
		if ((r = md_rec_msg_put(t, u->id, j->dst_mbox, &it->dst, NULL)) != MD_OK)
			return r;
		if (md_kv_put(t, MD_DB_MSGMETA, key,
			      md_key_msg(key, u->id, j->dst_mbox, it->dst.uid),
			      it->meta != NULL ? it->meta : "", it->meta_len, 0) < 0)
			return MD_TEMPFAIL;
		md_rec_count(&mb, &it->dst, 1);
		md_rec_quota(&urec, &it->dst, 1);
	}
	mb.highestmodseq = modseq;
	if ((r = md_rec_mbox_put(t, u->id, &mb)) != MD_OK)
		return r;
	md_txn_touch(t, u->id, j->dst_mbox);
	/* MOVE: the originals whose files are gone, durably (when the
	 * fsync failed, their records stay for the next sync to settle from
	 * the disk: failing here would undo copies whose originals are gone) */
	if (j->move && j->src_synced) {
		/* read again: source and destination may be one mailbox */
		if ((r = md_rec_mbox_get(t, u->id, j->src_mbox, &mb)) != MD_OK)
			return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
		modseq = mb.highestmodseq + 1;
		for (size_t i = 0; i < j->n; i++) {
			struct md_copy_item *it = &j->items[i];
			struct md_msg_rec rec;

			if (!it->gone)
				continue;
			/* the record as it is now (a flag change may have
			 * renamed the file before it was removed) */
			r = md_rec_msg_get(t, u->id, j->src_mbox, it->src.uid, &rec);
			if (r == MD_NOTFOUND)
				continue; /* expunged meanwhile */
			if (r != MD_OK)
				return r;
			if ((r = md_rec_msg_del(t, u->id, j->src_mbox, &rec, modseq)) != MD_OK)
				return r;
			md_rec_count(&mb, &rec, -1);
			md_rec_quota(&urec, &rec, -1);
		}
		mb.highestmodseq = modseq;
		if ((r = md_rec_mbox_put(t, u->id, &mb)) != MD_OK)
			return r;
		md_txn_touch(t, u->id, j->src_mbox);
	}
	return md_rec_user_put(t, u->address, &urec);
}

/* Snapshot of the source messages and both mailboxes. */
static enum md_result md_copy_read(struct md_mailbox *src, const char *dest,
				   const uint32_t *uids, size_t n,
				   struct md_copy_job *j, char *src_dir,
				   char *dst_dir)
{
	struct md_user *u = src->user;
	struct md_mbox_rec srec, drec;
	struct md_txn *t;
	enum md_result r = md_read_begin(u->store, &t);

	if (r != MD_OK)
		return r;
	if ((r = md_mbox_dir(u, t, src->id, &srec, src_dir, PATH_MAX)) != MD_OK)
		goto out;
	if ((r = md_rec_mbox_find(t, u->id, dest, &drec)) != MD_OK) {
		if (r == MD_NOMAILBOX)
			md_user_seterr(u, "no such mailbox: %s", dest);
		goto out;
	}
	if (md_mailbox_dir(u->root, drec.name, dst_dir, PATH_MAX) < 0) {
		r = MD_CORRUPT;
		goto out;
	}
	j->dst_mbox = drec.id;
	for (size_t i = 0; i < n; i++) {
		struct md_copy_item *it = &j->items[i];
		unsigned char key[12];
		struct md_val v;

		r = md_rec_msg_get(t, u->id, src->id, uids[i], &it->src);
		if (r == MD_NOTFOUND) {
			it->src.uid = 0;
			r = MD_OK;
			continue;
		}
		if (r != MD_OK)
			goto out;
		if (md_kv_get(t, MD_DB_MSGMETA, key,
			      md_key_msg(key, u->id, src->id, uids[i]), &v) == 0 &&
		    v.len > 0) {
			if ((it->meta = malloc(v.len)) == NULL) {
				r = MD_TEMPFAIL;
				goto out;
			}
			memcpy(it->meta, v.data, v.len);
			it->meta_len = v.len;
		}
	}
out:
	md_read_end(t);
	return r;
}

/* Link each message into the destination's cur/ (cur) under a new name
 * carrying its flags and the destination's keyword numbers. */
static enum md_result md_copy_link_all(struct md_copy_job *j, const char *cur,
				       int64_t now)
{
	struct md_user *u = j->user;

	for (size_t i = 0; i < j->n; i++) {
		struct md_copy_item *it = &j->items[i];
		char base[MD_FILENAME_MAX + 1], from[PATH_MAX], to[PATH_MAX];

		if (it->src.uid == 0)
			continue;
		it->dst = it->src;
		it->dst.uidl[0] = '\0'; /* a copy is a new message (POP3 too) */
		memset(it->dst.kw, 0, sizeof(it->dst.kw));
		for (size_t k = 0; k < MD_KEYWORDS_MAX; k++)
			if ((it->src.kw[k / 64] & (1ULL << (k % 64))) && j->kwmap[k] >= 0)
				it->dst.kw[j->kwmap[k] / 64] |= 1ULL << (j->kwmap[k] % 64);
		it->dst.in_new = false;
		it->dst.save_date = now;
		if (md_unique_name(u->store, it->src.size, base, sizeof(base)) < 0)
			return MD_TEMPFAIL;
		/* the copy keeps the original's EMAILID (md_objectid.c); a
		 * name too long for that leaves the copy an EMAILID of its own */
		(void)md_emailid_name(it->src.fname, base, sizeof(base));
		if (md_fname_build(base, strlen(base), it->dst.letters, it->dst.kw,
				   it->dst.fname, sizeof(it->dst.fname)) < 0)
			return MD_TEMPFAIL;
		md_pathf(to, sizeof(to), "%s/%s", cur, it->dst.fname);
		for (int attempt = 0; attempt < 2 && !it->linked; attempt++) {
			if (md_msg_path(j->src_dir, &it->src, from, sizeof(from)) < 0)
				break;
			if (link(from, to) == 0) {
				it->linked = true;
			} else if (errno != ENOENT || md_msg_locate(j->src_dir, &it->src) != 0) {
				if (errno != ENOENT) {
					md_user_seterr(u, "link %s: %s", to, strerror(errno));
					return MD_TEMPFAIL;
				}
				break; /* expunged meanwhile */
			}
		}
	}
	return MD_OK;
}

/* fsync a mailbox's cur/ and/or new/ after removals there; logs */
static int md_copy_dirsync(struct md_user *u, const char *dir, bool cur, bool new)
{
	return cur || new ? (md_msgs_dirsync(u, dir, cur, new) == MD_OK ? 0 : -1) : 0;
}

/* MOVE, after the copies are durable: remove the originals and make that
 * durable.  An original that stays has its copy removed again (and cur/,
 * the destination's, fsynced once more so the copy does not come back). */
static enum md_result md_copy_unlink_all(struct md_copy_job *j, const char *cur)
{
	bool in_cur = false, in_new = false, dropped = false;

	for (size_t i = 0; i < j->n; i++) {
		struct md_copy_item *it = &j->items[i];
		char to[PATH_MAX];

		if (!it->linked)
			continue;
		md_copy_unlink_src(j, it);
		if (it->unlinked) {
			in_new = in_new || it->now.in_new;
			in_cur = in_cur || !it->now.in_new;
		}
		if (it->gone)
			continue;
		md_pathf(to, sizeof(to), "%s/%s", cur, it->dst.fname);
		if (unlink(to) < 0 && errno != ENOENT)
			return MD_TEMPFAIL; /* the undo tries again */
		it->linked = false;
		dropped = true;
	}
	if (dropped && md_fsync_dir_shared(j->user->store, cur) < 0)
		return MD_TEMPFAIL;
	j->src_synced = md_copy_dirsync(j->user, j->src_dir, in_cur, in_new) == 0;
	return MD_OK;
}

/* The copy or move failed: remove the copies, after linking each original
 * this MOVE removed back under the name it had (its record is still there:
 * the job that would have dropped it failed; one expunged by someone else
 * stays expunged).  An original that cannot be
 * put back keeps its copy, unindexed: the next sync of the destination
 * indexes it, so the message is never lost. */
static void md_copy_undo(struct md_copy_job *j, const char *cur)
{
	bool in_cur = false, in_new = false, removed = false;

	for (size_t i = 0; i < j->n; i++) {
		struct md_copy_item *it = &j->items[i];
		char to[PATH_MAX], back[PATH_MAX];

		if (!it->linked)
			continue;
		md_pathf(to, sizeof(to), "%s/%s", cur, it->dst.fname);
		if (it->unlinked) {
			if (md_msg_path(j->src_dir, &it->now, back, sizeof(back)) < 0 ||
			    (link(to, back) < 0 && errno != EEXIST)) {
				log_error("store: user=%s uid=%u cannot put back %s (%s): "
					  "left in %s for the next sync", j->user->address,
					  it->src.uid, back, strerror(errno), to);
				continue;
			}
			in_new = in_new || it->now.in_new;
			in_cur = in_cur || !it->now.in_new;
			it->unlinked = false;
		}
		it->gone = false;
		if (unlink(to) == 0)
			removed = true;
		it->linked = false;
	}
	/* the originals are back before their copies are known to be gone */
	(void)md_copy_dirsync(j->user, j->src_dir, in_cur, in_new);
	if (removed)
		(void)md_fsync_dir_shared(j->user->store, cur);
}

enum md_result md_msg_copy(struct md_mailbox *src, const uint32_t *uids,
			   size_t n, const char *dest_mailbox, bool move,
			   uint64_t quota_bytes, uint64_t quota_messages,
			   uint32_t *dest_uidvalidity_r, uint32_t *dest_uids_r)
{
	struct md_user *u = src->user;
	struct md_copy_job job;
	char dest[MD_MAILBOX_NAME_MAX + 1], src_dir[PATH_MAX], dst_dir[PATH_MAX];
	char cur[PATH_MAX];
	uint64_t total = 0, count = 0;
	int64_t now = time(NULL);
	enum md_result r;

	if (dest_uids_r != NULL)
		memset(dest_uids_r, 0, n * sizeof(*dest_uids_r));
	if ((r = md_mailbox_name_norm(dest_mailbox, dest, sizeof(dest))) != MD_OK) {
		md_user_seterr(u, "invalid mailbox name");
		return r;
	}
	if (n > MD_COPY_MAX) {
		md_user_seterr(u, "too many messages in one COPY");
		return MD_LIMIT;
	}
	memset(&job, 0, sizeof(job));
	job.user = u;
	job.src_mbox = src->id;
	job.src_dir = src_dir;
	job.dst_dir = dst_dir;
	job.n = n;
	job.move = move;
	job.quota = quota_bytes;
	job.quota_messages = quota_messages;
	if ((job.items = calloc(n + 1, sizeof(*job.items))) == NULL)
		return MD_TEMPFAIL;
	if ((r = md_copy_read(src, dest, uids, n, &job, src_dir, dst_dir)) != MD_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (job.items[i].src.uid != 0) {
			total += job.items[i].src.size;
			count++;
		}
	if (!move && (quota_bytes > 0 || quota_messages > 0)) {
		uint64_t used, used_messages;

		if ((r = md_user_usage(u, &used, &used_messages)) != MD_OK)
			goto out;
		if ((quota_bytes > 0 && used + total > quota_bytes) ||
		    (quota_messages > 0 && used_messages + count > quota_messages)) {
			md_user_seterr(u, "quota exceeded");
			r = MD_QUOTA;
			goto out;
		}
	}
	job.kw_phase = true;
	if ((r = md_write(u->store, md_copy_job_run, &job)) != MD_OK)
		goto out;
	job.kw_phase = false;
	if (job.kw_created)
		(void)md_kw_file_sync(u->store, u->id, job.dst_mbox, dst_dir);

	md_pathf(cur, sizeof(cur), "%s/cur", dst_dir);
	if ((r = md_copy_link_all(&job, cur, now)) != MD_OK)
		goto undo;
	if (md_fsync_dir_shared(u->store, cur) < 0) {
		md_user_seterr(u, "%s: %s", cur, strerror(errno));
		r = MD_TEMPFAIL;
		goto undo;
	}
	if (move && (r = md_copy_unlink_all(&job, cur)) != MD_OK)
		goto undo;
	r = md_write(u->store, md_copy_job_run, &job);
	if (r != MD_OK)
		goto undo;
	md_copy_xkw(&job);
	if (dest_uidvalidity_r != NULL)
		*dest_uidvalidity_r = job.uidvalidity;
	for (size_t i = 0; dest_uids_r != NULL && i < n; i++)
		dest_uids_r[i] = job.items[i].linked ? job.items[i].dst.uid : 0;
	goto out;
undo:
	md_copy_undo(&job, cur);
	if (r == MD_QUOTA)
		md_user_seterr(u, "quota exceeded");
out:
	for (size_t i = 0; i < n; i++)
		free(job.items[i].meta);
	free(job.items);
	return r;
}
