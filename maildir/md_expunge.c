/* EXPUNGE, UID EXPUNGE and POP3's DELE+QUIT (md_msgs.c says how file
 * work and the index's write lock go together). */
#include "md_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* ---- EXPUNGE ------------------------------------------------------------
 *
 * Files first, on the calling thread: the candidates are read in a read
 * transaction, their files removed (found by base name when renamed
 * meanwhile) and the directories fsynced; then the job drops the records
 * of the messages whose files are gone, re-reading each under the lock
 * (one expunged meanwhile by someone else is skipped). */

enum md_unlink_result md_msg_unlink(const char *dir, struct md_msg_rec *rec,
				    uint32_t need_letters)
{
	char path[PATH_MAX];
	uint32_t letters = rec->letters;

	for (int attempt = 0; attempt < 2; attempt++) {
		size_t blen;
		uint64_t kw[MD_KW_WORDS];
		int rc;

		if ((letters & need_letters) != need_letters)
			return MD_UNLINK_KEPT;
		if (md_msg_path(dir, rec, path, sizeof(path)) < 0) {
			errno = ENAMETOOLONG;
			return MD_UNLINK_FAILED;
		}
		if (unlink(path) == 0)
			return MD_UNLINK_DONE;
		if (errno != ENOENT)
			return MD_UNLINK_FAILED;
		if ((rc = md_msg_locate(dir, rec)) > 0)
			return MD_UNLINK_GONE;
		if (rc < 0)
			return MD_UNLINK_FAILED;
		/* renamed: judge it by its name now */
		md_fname_parse(rec->fname, &blen, &letters, kw);
	}
	errno = EBUSY; /* renamed again and again while looked for: kept */
	return MD_UNLINK_FAILED;
}

/* One message an expunge looks at. */
struct md_expunge_item {
	uint32_t uid;
	bool gone;     /* its file is gone (removed here, or before) */
};

struct md_expunge_job {
	struct md_mailbox *mb;
	struct md_expunge_item *items;
	size_t n;
	uint32_t *out;  /* grown by the job; kept across runs */
	size_t n_out, cap_out;
};

static enum md_result md_expunge_job_run(struct md_txn *t, void *arg)
{
	struct md_expunge_job *j = arg;
	struct md_user *u = j->mb->user;
	struct md_mbox_rec mb;
	struct md_user_rec urec;
	uint64_t modseq;
	enum md_result r = md_rec_mbox_get(t, u->id, j->mb->id, &mb);

	j->n_out = 0;
	if (r != MD_OK)
		return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
	if ((r = md_rec_user_get(t, u->address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	modseq = mb.highestmodseq + 1;
	for (size_t i = 0; i < j->n; i++) {
		struct md_msg_rec rec;

		if (!j->items[i].gone)
			continue;
		r = md_rec_msg_get(t, u->id, j->mb->id, j->items[i].uid, &rec);
		if (r == MD_NOTFOUND)
			continue; /* expunged meanwhile: reported by that one */
		if (r != MD_OK)
			return r;
		if ((r = md_rec_msg_del(t, u->id, j->mb->id, &rec, modseq)) != MD_OK)
			return r;
		md_rec_count(&mb, &rec, -1);
		md_rec_quota(&urec, &rec, -1);
		if (md_u32_push(&j->out, &j->n_out, &j->cap_out, rec.uid) < 0)
			return MD_TEMPFAIL;
	}
	if (j->n_out == 0)
		return MD_OK;
	mb.highestmodseq = modseq;
	md_txn_touch(t, u->id, j->mb->id);
	if ((r = md_rec_mbox_put(t, u->id, &mb)) != MD_OK)
		return r;
	return md_rec_user_put(t, u->address, &urec);
}

/* A message an expunge may remove, as the index had it (what finding and
 * removing its file takes: not the whole record, for an expunge of a
 * large mailbox) */
struct md_expunge_cand {
	uint32_t uid;
	uint32_t letters;
	bool in_new;
	char *fname;
};

static void md_expunge_cands_free(struct md_expunge_cand *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].fname);
	free(c);
}

/* The messages an expunge may remove, as the index has them now: uids (or
 * every \Deleted one when NULL), only \Deleted ones when deleted_only. */
static enum md_result md_expunge_collect(struct md_mailbox *mb, const uint32_t *uids,
					 size_t n, bool deleted_only, char *dir,
					 struct md_expunge_cand **recs_r, size_t *n_r)
{
	struct md_user *u = mb->user;
	struct md_mbox_rec mrec;
	struct md_expunge_cand *recs = NULL;
	size_t nr = 0, cap = 0;
	struct md_cursor *cur = NULL;
	struct md_txn *t;
	unsigned char key[8];
	struct md_val k, v;
	enum md_result r = md_read_begin(u->store, &t);
	int rc = 0;

	*recs_r = NULL;
	*n_r = 0;
	if (r != MD_OK)
		return r;
	if ((r = md_mbox_dir(u, t, mb->id, &mrec, dir, PATH_MAX)) != MD_OK)
		goto out;
	if (uids == NULL && md_cursor_open(t, MD_DB_MSG, key,
					   md_key_mbox(key, u->id, mb->id), &cur) < 0) {
		r = MD_TEMPFAIL;
		goto out;
	}
	for (size_t i = 0;; i++) {
		struct md_msg_rec rec;

		if (uids != NULL) {
			if (i == n)
				break;
			r = md_rec_msg_get(t, u->id, mb->id, uids[i], &rec);
			if (r == MD_NOTFOUND)
				continue;
			if (r != MD_OK)
				goto out;
		} else {
			rc = i == 0 ? md_cursor_seek(cur, key, 8, &k, &v) :
				      md_cursor_next(cur, &k, &v);
			if (rc != 0)
				break;
			if (md_rec_msg_decode(&k, &v, &rec) != MD_OK)
				continue;
		}
		if (deleted_only && !(rec.letters & MD_LETTER('T')))
			continue;
		if (nr == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct md_expunge_cand *nrecs = realloc(recs, ncap * sizeof(*recs));

			if (nrecs == NULL) {
				r = MD_TEMPFAIL;
				goto out;
			}
			recs = nrecs;
			cap = ncap;
		}
		recs[nr] = (struct md_expunge_cand){ .uid = rec.uid, .letters = rec.letters,
						     .in_new = rec.in_new,
						     .fname = strdup(rec.fname) };
		if (recs[nr++].fname == NULL) {
			r = MD_TEMPFAIL;
			goto out;
		}
	}
	r = rc < 0 ? MD_TEMPFAIL : MD_OK;
out:
	md_cursor_close(cur);
	md_read_end(t);
	if (r != MD_OK) {
		md_expunge_cands_free(recs, nr);
		return r;
	}
	*recs_r = recs;
	*n_r = nr;
	return MD_OK;
}

/* Remove the candidates' files and make that durable; j->items says which
 * are gone, *kept_r counts those whose unlink failed (they stay, logged). */
static enum md_result md_expunge_files(struct md_mailbox *mb, const char *dir,
				       const struct md_expunge_cand *recs, size_t n,
				       bool deleted_only, struct md_expunge_job *j,
				       size_t *kept_r)
{
	struct md_user *u = mb->user;
	bool in_cur = false, in_new = false;

	*kept_r = 0;
	for (size_t i = 0; i < n; i++) {
		struct md_expunge_item *it = &j->items[j->n];
		struct md_msg_rec rec;

		rec.uid = recs[i].uid;
		rec.letters = recs[i].letters;
		rec.in_new = recs[i].in_new;
		str_copy(rec.fname, recs[i].fname, sizeof(rec.fname));
		it->uid = rec.uid;
		switch (md_msg_unlink(dir, &rec, deleted_only ? MD_LETTER('T') : 0)) {
		case MD_UNLINK_DONE:
			in_new = in_new || rec.in_new;
			in_cur = in_cur || !rec.in_new;
			/* fall through */
		case MD_UNLINK_GONE:
			it->gone = true;
			j->n++;
			break;
		case MD_UNLINK_KEPT:
			break; /* \Deleted removed meanwhile */
		case MD_UNLINK_FAILED:
			log_warn("store: user=%s uid=%u unlink %s/%s/%s: %s, not expunged",
				 u->address, rec.uid, dir, rec.in_new ? "new" : "cur",
				 rec.fname, strerror(errno));
			md_user_seterr(u, "unlink %s: %s", rec.fname, strerror(errno));
			(*kept_r)++;
			break;
		}
	}
	/* the unlinks are durable before the commit records the expunge */
	return in_cur || in_new ? md_msgs_dirsync(u, dir, in_cur, in_new) : MD_OK;
}

enum md_result md_msg_expunge(struct md_mailbox *mb, const uint32_t *uids,
			      size_t n, unsigned flags, uint32_t **expunged_r,
			      size_t *n_expunged_r)
{
	struct md_expunge_job job = { .mb = mb };
	bool deleted_only = uids == NULL || (flags & MD_EXPUNGE_DELETED_ONLY);
	struct md_expunge_cand *recs = NULL;
	char dir[PATH_MAX];
	size_t nr = 0, kept = 0;
	enum md_result r;

	mb->expunge_kept = 0;
	if (expunged_r != NULL)
		*expunged_r = NULL;
	if (n_expunged_r != NULL)
		*n_expunged_r = 0;
	if (uids == NULL && (r = md_mailbox_sync(mb, NULL)) != MD_OK)
		return r;
	if ((r = md_expunge_collect(mb, uids, n, deleted_only, dir, &recs, &nr)) != MD_OK)
		return r;
	if (nr == 0) {
		free(recs);
		return MD_OK;
	}
	if ((job.items = calloc(nr, sizeof(*job.items))) == NULL) {
		md_expunge_cands_free(recs, nr);
		return MD_TEMPFAIL;
	}
	r = md_expunge_files(mb, dir, recs, nr, deleted_only, &job, &kept);
	md_expunge_cands_free(recs, nr);
	if (r == MD_OK && job.n > 0)
		r = md_write(mb->user->store, md_expunge_job_run, &job);
	free(job.items);
	mb->expunge_kept = r == MD_OK ? kept : 0;
	if (r != MD_OK) {
		free(job.out);
		return r;
	}
	if (job.n_out > 1)
		qsort(job.out, job.n_out, sizeof(*job.out), md_u32_cmp);
	if (n_expunged_r != NULL)
		*n_expunged_r = job.n_out;
	if (expunged_r != NULL)
		*expunged_r = job.out;
	else
		free(job.out);
	return MD_OK;
}

size_t md_msg_expunge_kept(const struct md_mailbox *mb)
{
	return mb->expunge_kept;
}
