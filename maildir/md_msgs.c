/* Messages of an open mailbox: reads (records, metadata, the file), STORE,
 * EXPUNGE (COPY and MOVE: md_copy.c).
 *
 * Writes that touch files (renames for flags, unlinks for expunges) run on
 * the calling thread, never inside a write job: LMDB's one write lock is
 * shared with every process on the data directory (DESIGN.md), and one
 * slow disk operation must not stall every writer.  Each reads the
 * records in a read transaction, changes the files, fsyncs their
 * directories (shared, md_dirsync.c: md_msgs_dirsync()), and then one job
 * records what was done, re-reading each record under the lock because
 * another session or process may have changed it in between:
 *   - a file is renamed or removed before its index record changes, and
 *     the rename or unlink is durable before the commit: after a crash the
 *     name on disk wins at the next sync (the Maildir is the truth), and a
 *     power cut cannot bring an expunged message back;
 *   - a file not under its recorded name (renamed meanwhile by a flag
 *     change) is found by its base name (md_msg_locate());
 *   - an unlink that fails (not ENOENT) keeps the message and its record,
 *     logged (md_msg_expunge_kept()).
 */
#include "md_private.h"
#include "md_keywords.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "md_meta_private.h"


/* ---- reads ----------------------------------------------------------------- */

/* Metadata of a message whose packed record is missing or damaged: compute
 * it again from the file (the Maildir is the truth). */
static struct md_meta *md_meta_from_file(const char *path)
{
	struct md_meta *meta = calloc(1, sizeof(*meta));
	struct stat st;
	void *buf = NULL;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	/* read, not mapped: another program may truncate the file */
	if (meta == NULL || fd < 0 || fstat(fd, &st) < 0 ||
	    md_file_read_all(fd, (uint64_t)st.st_size, &buf) < 0)
		goto fail;
	if (md_meta_compute(buf != NULL ? buf : "", (size_t)st.st_size, meta) < 0) {
		free(buf);
		goto fail;
	}
	free(buf);
	close(fd);
	return meta;
fail:
	if (fd >= 0)
		close(fd);
	free(meta);
	return NULL;
}

enum md_result md_msg_fill(struct md_mailbox *mb, struct md_txn *t,
			   const char *dir, const struct md_msg_rec *rec,
			   unsigned what, struct md_msg *msg)
{
	char path[PATH_MAX];

	memset(msg, 0, sizeof(*msg));
	msg->uid = rec->uid;
	msg->flags = md_letters_to_flags(rec->letters);
	memcpy(msg->keywords, rec->kw, sizeof(msg->keywords));
	msg->modseq = rec->modseq;
	msg->size = rec->size;
	msg->pop3_size = rec->pop3_size;
	msg->internal_date = rec->internal_date;
	msg->save_date = rec->save_date;
	if (!(what & (MD_READ_PATH | MD_READ_META)))
		return MD_OK; /* FLAGS, UID, sizes: no path to build */
	if (md_msg_path(dir, rec, path, sizeof(path)) < 0)
		return MD_CORRUPT;
	if (what & MD_READ_PATH) {
		size_t plen = strlen(path), blen = strcspn(rec->fname, ":"),
		       ulen = strlen(rec->uidl);

		msg->path = malloc(plen + blen + ulen + 3);
		if (msg->path == NULL)
			return MD_TEMPFAIL;
		memcpy(msg->path, path, plen + 1);
		msg->basename = msg->path + plen + 1;
		memcpy(msg->basename, rec->fname, blen);
		msg->basename[blen] = '\0';
		if (ulen > 0) {
			msg->uidl = msg->basename + blen + 1;
			memcpy(msg->uidl, rec->uidl, ulen + 1);
		}
	}
	if (what & MD_READ_META) {
		unsigned char key[12];
		struct md_val v;
		int rc = md_kv_get(t, MD_DB_MSGMETA, key,
				   md_key_msg(key, mb->user->id, mb->id, rec->uid), &v);

		msg->meta = calloc(1, sizeof(*msg->meta));
		if (msg->meta == NULL)
			goto nomem;
		if (rc == 0 && md_meta_unpack(v.data, v.len, msg->meta) == 0)
			return MD_OK;
		free(msg->meta);
		log_warn("store: user=%s uid=%u metadata missing or damaged, "
			 "computed again", mb->user->address, rec->uid);
		if ((msg->meta = md_meta_from_file(path)) == NULL) {
			free(msg->path);
			msg->path = NULL;
			return MD_TEMPFAIL;
		}
	}
	return MD_OK;
nomem:
	free(msg->path);
	msg->path = NULL;
	return MD_TEMPFAIL;
}

void md_msg_clear(struct md_msg *msg)
{
	free(msg->path);
	if (msg->meta != NULL) {
		md_meta_free(msg->meta);
		free(msg->meta);
	}
	memset(msg, 0, sizeof(*msg));
}

void md_msg_list_free(struct md_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		md_msg_clear(&msgs[i]);
	free(msgs);
}

enum md_result md_msg_get(struct md_mailbox *mb, uint32_t uid, unsigned what,
			  struct md_msg *msg_r)
{
	struct md_mbox_rec mrec;
	struct md_msg_rec rec;
	struct md_txn *t;
	char dir[PATH_MAX];
	enum md_result r;

	memset(msg_r, 0, sizeof(*msg_r));
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(mb->user, t, mb->id, &mrec, dir, sizeof(dir));
	if (r == MD_OK)
		r = md_rec_msg_get(t, mb->user->id, mb->id, uid, &rec);
	if (r == MD_OK)
		r = md_msg_fill(mb, t, dir, &rec, what, msg_r);
	md_read_end(t);
	return r;
}

static int md_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int md_msgs_grow(struct md_msg **msgs, size_t n, size_t *cap)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	struct md_msg *nm = realloc(*msgs, ncap * sizeof(*nm));

	if (nm == NULL)
		return -1;
	*msgs = nm;
	*cap = ncap;
	return 0;
}

/* The records of [first, last] with modseq > changedsince, in UID order. */
static enum md_result md_msg_scan(struct md_mailbox *mb, struct md_txn *t,
				  const char *dir, uint32_t first, uint32_t last,
				  uint64_t changedsince, unsigned what,
				  struct md_msg **msgs, size_t *n, size_t *cap)
{
	unsigned char key[12];
	struct md_cursor *cur;
	struct md_val k, v;
	enum md_result r = MD_OK;
	int rc;

	if (md_cursor_open(t, MD_DB_MSG, key, md_key_mbox(key, mb->user->id, mb->id),
			   &cur) < 0)
		return MD_TEMPFAIL;
	md_key_msg(key, mb->user->id, mb->id, first);
	for (rc = md_cursor_seek(cur, key, 12, &k, &v); rc == 0 && r == MD_OK;
	     rc = md_cursor_next(cur, &k, &v)) {
		struct md_msg_rec rec;

		if ((r = md_rec_msg_decode(&k, &v, &rec)) != MD_OK)
			break;
		if (rec.uid > last)
			break;
		if (rec.modseq <= changedsince)
			continue;
		if (md_msgs_grow(msgs, *n, cap) < 0)
			r = MD_TEMPFAIL;
		else if ((r = md_msg_fill(mb, t, dir, &rec, what, &(*msgs)[*n])) == MD_OK)
			(*n)++;
	}
	if (rc < 0)
		r = MD_TEMPFAIL;
	md_cursor_close(cur);
	return r;
}

enum md_result md_msg_list(struct md_mailbox *mb, uint32_t uid_first,
			   uint32_t uid_last, uint64_t changedsince,
			   unsigned what, struct md_msg **msgs_r, size_t *n_r)
{
	struct md_mbox_rec mrec;
	struct md_msg *msgs = NULL;
	size_t n = 0, cap = 0;
	struct md_txn *t;
	char dir[PATH_MAX];
	enum md_result r;

	*msgs_r = NULL;
	*n_r = 0;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	if ((r = md_mbox_dir(mb->user, t, mb->id, &mrec, dir, sizeof(dir))) != MD_OK)
		goto out;
	if (changedsince > 0) {
		uint32_t *uids = NULL;
		size_t nu = 0;
		/* the modseq index, unless it holds more changes than the range
		 * holds messages: then the range's records, filtered (FETCH
		 * 1:* (FLAGS) (CHANGEDSINCE m) with an old m, in slices) */
		int rc = md_modseq_uids(t, mb->user->id, mb->id, uid_first, uid_last,
					changedsince, uid_last >= uid_first ?
					(size_t)uid_last - uid_first + 1 : 0,
					&uids, &nu);

		if (rc < 0) {
			r = MD_TEMPFAIL;
			goto out;
		}
		if (rc > 0) {
			r = md_msg_scan(mb, t, dir, uid_first, uid_last, changedsince, what,
					&msgs, &n, &cap);
			goto out;
		}
		for (size_t i = 0; i < nu && r == MD_OK; i++) {
			struct md_msg_rec rec;

			r = md_rec_msg_get(t, mb->user->id, mb->id, uids[i], &rec);
			if (r == MD_NOTFOUND) {
				r = MD_OK;
				continue;
			}
			if (r == MD_OK && md_msgs_grow(&msgs, n, &cap) < 0)
				r = MD_TEMPFAIL;
			if (r == MD_OK && (r = md_msg_fill(mb, t, dir, &rec, what,
							   &msgs[n])) == MD_OK)
				n++;
		}
		free(uids);
	} else {
		r = md_msg_scan(mb, t, dir, uid_first, uid_last, 0, what, &msgs, &n, &cap);
	}
out:
	md_read_end(t);
	if (r != MD_OK) {
		md_msg_list_free(msgs, n);
		return r;
	}
	*msgs_r = msgs;
	*n_r = n;
	return MD_OK;
}

enum md_result md_msg_open(struct md_mailbox *mb, struct md_msg *msg, int *fd_r)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct md_msg fresh;
		enum md_result r;

		if (msg->path != NULL) {
			int fd = open(msg->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0) {
				*fd_r = fd;
				return MD_OK;
			}
			if (errno != ENOENT) {
				md_user_seterr(mb->user, "%s: %s", msg->path,
					       strerror(errno));
				return MD_TEMPFAIL;
			}
			/* renamed (flags) or removed by someone else */
			if ((r = md_sync_mailbox(mb->user, mb->id, true)) != MD_OK)
				return r;
		}
		if ((r = md_msg_get(mb, msg->uid, MD_READ_PATH, &fresh)) != MD_OK)
			return r;
		free(msg->path);
		msg->path = fresh.path;
		msg->basename = fresh.basename;
		msg->uidl = fresh.uidl;
	}
	md_user_seterr(mb->user, "message file of UID %u is gone", msg->uid);
	return MD_NOTFOUND;
}

/* ---- metadata accessors ------------------------------------------------- */

const char *md_msg_envelope(const struct md_msg *msg, size_t *len_r)
{
	*len_r = msg->meta != NULL ? msg->meta->envelope_len : 0;
	return msg->meta != NULL ? msg->meta->envelope : NULL;
}

const char *md_msg_body(const struct md_msg *msg, size_t *len_r)
{
	*len_r = msg->meta != NULL ? msg->meta->body_len : 0;
	return msg->meta != NULL ? msg->meta->body : NULL;
}

const char *md_msg_bodystructure(const struct md_msg *msg, size_t *len_r)
{
	*len_r = msg->meta != NULL ? msg->meta->bodystructure_len : 0;
	return msg->meta != NULL ? msg->meta->bodystructure : NULL;
}

int64_t md_msg_sent_date(const struct md_msg *msg)
{
	return msg->meta != NULL ? msg->meta->sent_date : 0;
}

int md_msg_section(const struct md_msg *msg, const char *spec,
		   struct md_section *sec)
{
	uint32_t part = 0;
	int rc;

	memset(sec, 0, sizeof(*sec));
	if (msg->meta == NULL)
		return -1;
	rc = md_meta_section(msg->meta, spec, &sec->offset, &sec->length, &part);
	if (rc != 0)
		return rc;
	if (part < msg->meta->n_parts) {
		const struct md_part *p = &msg->meta->parts[part];

		/* Judged on the part and everything inside it (RFC 3516 §4.3):
		 * an unknown encoding anywhere wins over broken content. */
		enum md_meta_binary_status st = md_meta_binary_status(msg->meta, part);

		switch (p->cte) {
		case MD_CTE_7BIT: sec->encoding = MD_TE_7BIT; break;
		case MD_CTE_8BIT: sec->encoding = MD_TE_8BIT; break;
		case MD_CTE_BINARY: sec->encoding = MD_TE_BINARY; break;
		case MD_CTE_BASE64: sec->encoding = MD_TE_BASE64; break;
		case MD_CTE_QP: sec->encoding = MD_TE_QP; break;
		default: sec->encoding = MD_TE_UNKNOWN; break;
		}
		if (st == MD_BINARY_UNKNOWN_CTE)
			sec->encoding = MD_TE_UNKNOWN;
		sec->decodable = st == MD_BINARY_OK;
		sec->decoded_size = p->binary_size;
		sec->body_lines = p->body_lines;
	}
	return 0;
}

/* ---- durability of renames and unlinks ------------------------------------ */

/* fsync cur/ and/or new/ of a mailbox after renames or unlinks in them and
 * before the index commit that records those, so a power cut cannot bring
 * back an expunged message (under a new UID: POP3 clients would fetch it
 * again) or old flags.  Shared with other threads' fsyncs of the same
 * directory (md_dirsync.c).  A failure fails the whole job: the records
 * stay, and the next sync settles what the disk kept. */
enum md_result md_msgs_dirsync(struct md_user *u, const char *dir,
			       bool cur, bool new)
{
	const char *subs[2] = { cur ? "cur" : NULL, new ? "new" : NULL };

	for (int i = 0; i < 2; i++) {
		char sub[PATH_MAX];

		if (subs[i] == NULL)
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]) >=
		    sizeof(sub))
			return MD_CORRUPT;
		if (md_fsync_dir_shared(u->store, sub) < 0) {
			log_warn("store: user=%s fsync %s: %s", u->address, sub,
				 strerror(errno));
			md_user_seterr(u, "fsync %s: %s", sub, strerror(errno));
			return MD_TEMPFAIL;
		}
	}
	return MD_OK;
}

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

enum md_result md_msg_store(struct md_mailbox *mb, const uint32_t *uids,
			    size_t n, enum md_flags_op op, unsigned flags,
			    const char *const *keywords, size_t n_keywords,
			    uint64_t unchangedsince,
			    struct md_flags_result *results_r)
{
	struct md_store_job job = {
		.mb = mb, .uids = uids, .n = n, .op = op, .flags = flags,
		.unchangedsince = unchangedsince, .res = results_r,
	};
	enum md_result r;
	size_t again = n;

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
	job.pending = malloc((n + 1) * sizeof(*job.pending));
	job.items = malloc((n + 1) * sizeof(*job.items));
	if (job.pending == NULL || job.items == NULL) {
		r = MD_TEMPFAIL;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		job.pending[i] = true;
	for (int round = 0; again > 0; round++) {
		if (round == MD_STORE_ROUNDS) {
			md_user_seterr(mb->user, "messages changed while stored, try again");
			r = MD_TEMPFAIL; /* the next sync takes the names on disk */
			break;
		}
		if ((r = md_store_plan(&job)) != MD_OK ||
		    (r = md_store_rename_all(&job)) != MD_OK ||
		    (r = md_write(mb->user->store, md_store_job_run, &job)) != MD_OK)
			break;
		again = md_store_settle(&job);
		if (job.rename_failed) {
			r = MD_TEMPFAIL;
			break;
		}
	}
out:
	free(job.pending);
	free(job.items);
	return r;
}

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

/* The messages an expunge may remove, as the index has them now: uids (or
 * every \Deleted one when NULL), only \Deleted ones when deleted_only. */
static enum md_result md_expunge_collect(struct md_mailbox *mb, const uint32_t *uids,
					 size_t n, bool deleted_only, char *dir,
					 struct md_msg_rec **recs_r, size_t *n_r)
{
	struct md_user *u = mb->user;
	struct md_mbox_rec mrec;
	struct md_msg_rec *recs = NULL;
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
			struct md_msg_rec *nrecs = realloc(recs, ncap * sizeof(*recs));

			if (nrecs == NULL) {
				r = MD_TEMPFAIL;
				goto out;
			}
			recs = nrecs;
			cap = ncap;
		}
		recs[nr++] = rec;
	}
	r = rc < 0 ? MD_TEMPFAIL : MD_OK;
out:
	md_cursor_close(cur);
	md_read_end(t);
	if (r != MD_OK) {
		free(recs);
		return r;
	}
	*recs_r = recs;
	*n_r = nr;
	return MD_OK;
}

/* Remove the candidates' files and make that durable; j->items says which
 * are gone, *kept_r counts those whose unlink failed (they stay, logged). */
static enum md_result md_expunge_files(struct md_mailbox *mb, const char *dir,
				       struct md_msg_rec *recs, size_t n,
				       bool deleted_only, struct md_expunge_job *j,
				       size_t *kept_r)
{
	struct md_user *u = mb->user;
	bool in_cur = false, in_new = false;

	*kept_r = 0;
	for (size_t i = 0; i < n; i++) {
		struct md_expunge_item *it = &j->items[j->n];

		it->uid = recs[i].uid;
		switch (md_msg_unlink(dir, &recs[i], deleted_only ? MD_LETTER('T') : 0)) {
		case MD_UNLINK_DONE:
			in_new = in_new || recs[i].in_new;
			in_cur = in_cur || !recs[i].in_new;
			/* fall through */
		case MD_UNLINK_GONE:
			it->gone = true;
			j->n++;
			break;
		case MD_UNLINK_KEPT:
			break; /* \Deleted removed meanwhile */
		case MD_UNLINK_FAILED:
			log_warn("store: user=%s uid=%u unlink %s/%s/%s: %s, not expunged",
				 u->address, recs[i].uid, dir, recs[i].in_new ? "new" : "cur",
				 recs[i].fname, strerror(errno));
			md_user_seterr(u, "unlink %s: %s", recs[i].fname, strerror(errno));
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
	struct md_msg_rec *recs = NULL;
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
		free(recs);
		return MD_TEMPFAIL;
	}
	r = md_expunge_files(mb, dir, recs, nr, deleted_only, &job, &kept);
	free(recs);
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
