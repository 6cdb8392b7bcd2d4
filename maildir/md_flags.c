/* STORE (RFC 3501 §6.4.6, RFC 7162 UNCHANGEDSINCE): flags and keywords of
 * messages, mirrored into their Maildir file names (md_msgs.c says how
 * file work and the index's write lock go together).  STOREs of one
 * mailbox take turns within the process (md_store.flag_locks, striped by
 * mailbox, never held across the index's lock by anyone else), so only
 * a change by another process or a sync sends a message round again. */
#include "md_private.h"
#include "md_keywords.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- STORE ---------------------------------------------------------------
 *
 * Files first, then the index: a read transaction gives each message's
 * record, the renames carrying the new flags run on the calling thread,
 * cur/ (and new/, for files leaving it) is fsynced, and one job records
 * the new names, re-reading each record under the lock.  A record that
 * changed in between (another STORE, a sync) is not overwritten: that
 * message goes round again from its record as it is now, its file found by
 * base name (md_msg_rename), up to MD_STORE_ROUNDS times. */

#define MD_STORE_ROUNDS 4 /* tries of a message whose record kept changing */
#define MD_STORE_BATCH 1024 /* messages per plan, renames and job: bounds the
			     * memory (two records each) and the job */

/* rename a message file to its new name; 1 when gone */
static int md_msg_rename(const char *dir, struct md_msg_rec *rec,
			 const char *newname)
{
	char from[PATH_MAX], to[PATH_MAX];

	for (int attempt = 0; attempt < 2; attempt++) {
		if (md_msg_path(dir, rec, from, sizeof(from)) < 0 ||
		    (size_t)snprintf(to, sizeof(to), "%s/cur/%s", dir, newname) >=
		    sizeof(to))
			return -1;
		if (rename(from, to) == 0)
			return 0;
		if (errno != ENOENT)
			return -1;
		/* renamed by another program: find it by base name */
		if (md_msg_locate(dir, rec) != 0)
			return 1;
	}
	return 1;
}

/* One message whose flags a STORE changes. */
struct md_store_item {
	size_t i;               /* index in uids / results */
	struct md_msg_rec old;  /* the record the change was computed from */
	struct md_msg_rec rec;  /* the record wanted (its file renamed) */
	bool renamed;
	bool again;             /* the job found the record changed */
};

struct md_store_job {
	struct md_mailbox *mb;
	const uint32_t *uids;
	size_t n;
	enum md_flags_op op;
	unsigned flags;
	uint64_t kwmask[MD_KW_WORDS];
	uint64_t unchangedsince;
	struct md_flags_result *res;
	bool *pending;          /* per uid: still to do */
	struct md_store_item *items;
	size_t n_items;
	bool rename_failed;     /* a rename failed (not ENOENT): those done
				 * are recorded, the call fails */
	uint64_t modseq;        /* out: the mod-sequence the job gave */
	char dir[PATH_MAX];
};

static bool md_rec_same(const struct md_msg_rec *a, const struct md_msg_rec *b)
{
	return a->modseq == b->modseq && a->letters == b->letters &&
	       a->in_new == b->in_new && strcmp(a->fname, b->fname) == 0 &&
	       memcmp(a->kw, b->kw, sizeof(a->kw)) == 0;
}

static void md_store_result(struct md_flags_result *res, const struct md_msg_rec *rec,
			    enum md_result result)
{
	res->result = result;
	res->flags = md_letters_to_flags(rec->letters);
	memcpy(res->keywords, rec->kw, sizeof(res->keywords));
	res->modseq = rec->modseq;
}

/* The index side: the new names, for records still as they were read. */
static enum md_result md_store_job_run(struct md_txn *t, void *arg)
{
	struct md_store_job *j = arg;
	struct md_user *u = j->mb->user;
	struct md_mbox_rec mb;
	uint64_t modseq;
	bool changed = false;
	enum md_result r = md_rec_mbox_get(t, u->id, j->mb->id, &mb);

	j->modseq = 0;
	if (r != MD_OK)
		return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
	modseq = mb.highestmodseq + 1;
	for (size_t k = 0; k < j->n_items; k++) {
		struct md_store_item *it = &j->items[k];
		struct md_msg_rec now, rec;

		it->again = false;
		if (!it->renamed)
			continue;
		r = md_rec_msg_get(t, u->id, j->mb->id, it->old.uid, &now);
		if (r == MD_NOTFOUND)
			continue; /* expunged meanwhile; the caller says so */
		if (r != MD_OK)
			return r;
		if (!md_rec_same(&now, &it->old)) {
			it->again = true;
			continue;
		}
		rec = it->rec;
		rec.modseq = modseq;
		md_rec_count(&mb, &now, -1);
		md_rec_count(&mb, &rec, 1);
		if ((r = md_rec_msg_put(t, u->id, j->mb->id, &rec, &now)) != MD_OK)
			return r;
		changed = true;
	}
	if (!changed)
		return MD_OK;
	mb.highestmodseq = modseq;
	j->modseq = modseq;
	md_txn_touch(t, u->id, j->mb->id);
	return md_rec_mbox_put(t, u->id, &mb);
}

/* The change op makes to rec (false: none) */
static bool md_store_apply(const struct md_store_job *j, struct md_msg_rec *rec)
{
	struct md_msg_rec old = *rec;
	uint32_t fmask = md_flags_to_letters(j->flags & MD_FLAG_ALL, 0);

	switch (j->op) {
	case MD_FLAGS_SET:
		rec->letters = md_flags_to_letters(j->flags, rec->letters);
		memcpy(rec->kw, j->kwmask, sizeof(rec->kw));
		break;
	case MD_FLAGS_ADD:
		rec->letters |= fmask;
		for (int w = 0; w < MD_KW_WORDS; w++)
			rec->kw[w] |= j->kwmask[w];
		break;
	case MD_FLAGS_REMOVE:
		rec->letters &= ~fmask;
		for (int w = 0; w < MD_KW_WORDS; w++)
			rec->kw[w] &= ~j->kwmask[w];
		break;
	}
	return rec->letters != old.letters || memcmp(rec->kw, old.kw, sizeof(rec->kw)) != 0;
}

/* Read the pending messages and plan their changes (j->items); the
 * results of those needing none (unchanged, MD_MODIFIED, gone) are set. */
static enum md_result md_store_plan(struct md_store_job *j)
{
	struct md_user *u = j->mb->user;
	struct md_mbox_rec mrec;
	struct md_txn *t;
	enum md_result r = md_read_begin(u->store, &t);

	j->n_items = 0;
	if (r != MD_OK)
		return r;
	if ((r = md_mbox_dir(u, t, j->mb->id, &mrec, j->dir, sizeof(j->dir))) != MD_OK)
		goto out;
	for (size_t i = 0; i < j->n; i++) {
		struct md_flags_result *res = &j->res[i];
		struct md_store_item *it = &j->items[j->n_items];
		char newname[MD_FILENAME_MAX + 1];
		size_t blen;
		uint32_t dummy;
		uint64_t dkw[MD_KW_WORDS];

		if (!j->pending[i])
			continue;
		j->pending[i] = false;
		memset(res, 0, sizeof(*res));
		res->uid = j->uids[i];
		r = md_rec_msg_get(t, u->id, j->mb->id, j->uids[i], &it->old);
		if (r == MD_NOTFOUND) {
			res->result = MD_NOTFOUND;
			r = MD_OK;
			continue;
		}
		if (r != MD_OK)
			goto out;
		it->rec = it->old;
		if (j->unchangedsince > 0 && it->old.modseq > j->unchangedsince) {
			md_store_result(res, &it->old, MD_MODIFIED); /* RFC 7162 §3.1.3 */
			continue;
		}
		if (!md_store_apply(j, &it->rec)) {
			md_store_result(res, &it->old, MD_OK); /* modseq stays */
			continue;
		}
		md_fname_parse(it->rec.fname, &blen, &dummy, dkw);
		if (md_fname_build(it->rec.fname, blen, it->rec.letters, it->rec.kw,
				   newname, sizeof(newname)) < 0) {
			r = MD_CORRUPT;
			goto out;
		}
		str_copy(it->rec.fname, newname, sizeof(it->rec.fname));
		it->rec.in_new = false;
		it->i = i;
		it->renamed = false;
		j->n_items++;
	}
	r = MD_OK;
out:
	md_read_end(t);
	return r;
}

/* The renames, and their directories fsynced (before the commit): MD_OK,
 * or MD_TEMPFAIL when the fsync failed (nothing may be recorded then). */
static enum md_result md_store_rename_all(struct md_store_job *j)
{
	struct md_user *u = j->mb->user;
	bool from_new = false, any = false;

	j->rename_failed = false;
	for (size_t k = 0; k < j->n_items && !j->rename_failed; k++) {
		struct md_store_item *it = &j->items[k];
		struct md_msg_rec cur = it->old;
		int rc = md_msg_rename(j->dir, &cur, it->rec.fname);

		if (rc == 1) {
			j->res[it->i].result = MD_NOTFOUND; /* gone: the next sync expunges */
			continue;
		}
		if (rc < 0) {
			md_user_seterr(u, "rename in %s: %s", j->dir, strerror(errno));
			j->rename_failed = true;
			continue;
		}
		it->renamed = true;
		from_new = from_new || cur.in_new;
		any = true;
	}
	return any ? md_msgs_dirsync(u, j->dir, true, from_new) : MD_OK;
}

static const struct md_msg_rec *md_store_xkw_rec(void *ctx, size_t k)
{
	const struct md_store_job *j = ctx;
	const struct md_store_item *it = &j->items[k];

	return it->renamed && !it->again && j->res[it->i].result == MD_OK ? &it->rec : NULL;
}

/* After a commit: results of the messages it recorded, the others (their
 * record changed meanwhile) pending for another round; the folder's
 * postern-keywords follows keywords beyond the letters (md_keywords.c). */
static size_t md_store_settle(struct md_store_job *j)
{
	struct md_user *u = j->mb->user;
	bool xkw = false;
	size_t again = 0;

	for (size_t k = 0; k < j->n_items; k++) {
		struct md_store_item *it = &j->items[k];

		if (!it->renamed)
			continue;
		if (it->again) {
			j->pending[it->i] = true;
			again++;
			continue;
		}
		it->rec.modseq = j->modseq;
		md_store_result(&j->res[it->i], &it->rec, MD_OK);
		xkw = xkw || md_xkw_any(it->old.kw) || md_xkw_any(it->rec.kw);
	}
	if (xkw) {
		enum md_result r = md_xkw_update_file(u->store, u->id, j->mb->id, j->dir,
						      md_store_xkw_rec, j, j->n_items);

		if (r != MD_OK)
			log_warn("store: user=%s %s/%s: %s", u->address, j->dir,
				 MD_XKW_FILE, md_result_name(r));
	}
	return again;
}

struct md_store_kw_job {
	struct md_store_job *j;
	const char *const *keywords;
	size_t n_keywords;
	bool create;  /* a job: missing keywords are created */
	bool created; /* ... one with a letter: dovecot-keywords follows */
};

/* kwmask from the mailbox's keyword table (in a read transaction, or a
 * job creating the missing ones) */
static enum md_result md_store_kw_run(struct md_txn *t, void *arg)
{
	struct md_store_kw_job *k = arg;
	struct md_store_job *j = k->j;
	struct md_user *u = j->mb->user;
	struct md_kwtab tab;
	enum md_result r = md_kw_load(t, u->id, j->mb->id, &tab);

	memset(j->kwmask, 0, sizeof(j->kwmask));
	k->created = false;
	if (r != MD_OK)
		return r;
	for (size_t i = 0; i < k->n_keywords && r == MD_OK; i++) {
		int idx = md_kw_find(&tab, k->keywords[i]);

		if (idx < 0 && k->create)
			r = md_kw_ensure(t, u->id, j->mb->id, &tab, k->keywords[i],
					 &idx, &k->created);
		else if (idx < 0 && j->op != MD_FLAGS_REMOVE)
			r = MD_NOTFOUND; /* to be created: a job */
		if (r == MD_OK && idx >= 0)
			j->kwmask[idx / 64] |= 1ULL << (idx % 64);
	}
	md_kw_free(&tab);
	return r;
}

/* The mailbox's keyword numbers of the STORE's keywords, created (one job,
 * index only; dovecot-keywords after it) when adding or setting. */
static enum md_result md_store_keywords(struct md_store_job *j,
					const char *const *keywords, size_t n_keywords)
{
	struct md_store_kw_job k = { .j = j, .keywords = keywords,
				     .n_keywords = n_keywords };
	struct md_user *u = j->mb->user;
	struct md_mbox_rec mrec;
	struct md_txn *t;
	enum md_result r;

	if (n_keywords == 0)
		return MD_OK;
	if ((r = md_read_begin(u->store, &t)) != MD_OK)
		return r;
	r = md_store_kw_run(t, &k);
	if (r == MD_NOTFOUND)
		r = md_mbox_dir(u, t, j->mb->id, &mrec, j->dir, sizeof(j->dir)) == MD_OK ?
		    MD_NOTFOUND : MD_TEMPFAIL;
	md_read_end(t);
	if (r != MD_NOTFOUND)
		return r;
	k.create = true;
	if ((r = md_write(u->store, md_store_kw_run, &k)) != MD_OK)
		return r;
	if (k.created)
		(void)md_kw_file_sync(u->store, u->id, j->mb->id, j->dir);
	return MD_OK;
}

/* One batch (j->uids, j->n): files, then the index, in rounds */
static enum md_result md_store_batch_run(struct md_store_job *j)
{
	enum md_result r = MD_OK;
	size_t again = j->n;

	for (size_t i = 0; i < j->n; i++)
		j->pending[i] = true;
	for (int round = 0; again > 0; round++) {
		if (round == MD_STORE_ROUNDS) {
			md_user_seterr(j->mb->user, "messages changed while stored, try again");
			return MD_TEMPFAIL; /* the next sync takes the names on disk */
		}
		if ((r = md_store_plan(j)) != MD_OK ||
		    (r = md_store_rename_all(j)) != MD_OK ||
		    (r = md_write(j->mb->user->store, md_store_job_run, j)) != MD_OK)
			return r;
		again = md_store_settle(j);
		if (j->rename_failed)
			return MD_TEMPFAIL;
	}
	return r;
}

/* ... with the other STOREs of the mailbox in this process waiting */
static enum md_result md_store_batch(struct md_store_job *j)
{
	struct md_store *store = j->mb->user->store;
	pthread_mutex_t *lock = &store->flag_locks[(j->mb->user->id * 31u + j->mb->id) %
						   MD_FLAG_LOCKS];
	enum md_result r;

	pthread_mutex_lock(lock);
	r = md_store_batch_run(j);
	pthread_mutex_unlock(lock);
	return r;
}

enum md_result md_msg_store(struct md_mailbox *mb, const uint32_t *uids,
			    size_t n, enum md_flags_op op, unsigned flags,
			    const char *const *keywords, size_t n_keywords,
			    uint64_t unchangedsince,
			    struct md_flags_result *results_r)
{
	struct md_store_job job = {
		.mb = mb, .op = op, .flags = flags, .unchangedsince = unchangedsince,
	};
	enum md_result r;

	for (size_t i = 0; i < n_keywords; i++) {
		if ((r = md_keyword_check(keywords[i])) != MD_OK) {
			md_user_seterr(mb->user, "invalid keyword");
			return r;
		}
	}
	if ((r = md_store_keywords(&job, keywords, n_keywords)) != MD_OK) {
		if (r == MD_LIMIT)
			md_user_seterr(mb->user, "too many keywords in this mailbox");
		return r;
	}
	job.pending = malloc(MD_STORE_BATCH * sizeof(*job.pending));
	job.items = malloc(MD_STORE_BATCH * sizeof(*job.items));
	if (job.pending == NULL || job.items == NULL) {
		r = MD_TEMPFAIL;
		goto out;
	}
	for (size_t off = 0; off < n && r == MD_OK; off += job.n) {
		job.uids = uids + off;
		job.res = results_r + off;
		job.n = n - off < MD_STORE_BATCH ? n - off : MD_STORE_BATCH;
		r = md_store_batch(&job);
	}
out:
	free(job.pending);
	free(job.items);
	return r;
}
