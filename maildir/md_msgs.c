/* Messages of an open mailbox: reads (records, metadata, the file), STORE,
 * EXPUNGE, COPY and MOVE.
 *
 * Writes that touch files (renames for flags, unlinks for expunges) run
 * inside the write job, under LMDB's write lock, so two processes never
 * rename the same file from the same old name.  One exception: an
 * unconditional expunge of given UIDs (POP3 QUIT) unlinks the files under
 * their recorded names first, outside the lock (md_expunge_unlink_first()),
 * and the job removes only what that left.  A file is renamed or
 * removed before its index record changes: after a crash the name on disk
 * wins at the next sync, which is the rule (the Maildir is the truth).
 * The directories of those renames and unlinks are fsynced (shared,
 * md_dirsync.c) before the job returns, hence before the index commit
 * (md_msgs_dirsync()): an expunge or a flag change the index records is
 * on disk, so a power cut cannot bring an expunged message back.  An
 * unlink that fails (not ENOENT) keeps the message and its record, logged
 * (md_msg_expunge_kept()).
 * COPY links files into the destination (and fsyncs it) before its job, as
 * a delivery does, so a copy is durable when the call returns.
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

/* ---- STORE ------------------------------------------------------------- */

/* rename a message file to its new name inside the job; 1 when gone */
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

struct md_store_job {
	struct md_mailbox *mb;
	const uint32_t *uids;
	size_t n;
	enum md_flags_op op;
	unsigned flags;
	const char *const *keywords;
	size_t n_keywords;
	uint64_t unchangedsince;
	struct md_flags_result *res;
};

struct md_store_xkw_ctx {
	struct md_txn *t;
	struct md_store_job *j;
	struct md_msg_rec rec;
};

static const struct md_msg_rec *md_store_xkw_rec(void *ctx, size_t i)
{
	struct md_store_xkw_ctx *c = ctx;
	struct md_user *u = c->j->mb->user;

	if (c->j->res[i].result != MD_OK ||
	    md_rec_msg_get(c->t, u->id, c->j->mb->id, c->j->uids[i], &c->rec) != MD_OK)
		return NULL;
	return &c->rec;
}

/* Keywords beyond the letters changed: the folder's postern-keywords
 * follows (md_keywords.c). */
static enum md_result md_store_xkw(struct md_txn *t, struct md_store_job *j,
				   const char *dir)
{
	struct md_store_xkw_ctx c = { .t = t, .j = j };
	enum md_result r = md_xkw_update(t, j->mb->user->id, j->mb->id, dir,
					 md_store_xkw_rec, &c, j->n);

	if (r != MD_OK)
		md_user_seterr(j->mb->user, "%s/%s: %s", dir, MD_XKW_FILE,
			       md_result_name(r));
	return r;
}

static enum md_result md_store_job_run(struct md_txn *t, void *arg)
{
	struct md_store_job *j = arg;
	struct md_user *u = j->mb->user;
	struct md_mbox_rec mb;
	struct md_kwtab tab;
	uint64_t kwmask[MD_KW_WORDS] = { 0 }, modseq;
	uint32_t fmask = md_flags_to_letters(j->flags & MD_FLAG_ALL, 0);
	char dir[PATH_MAX];
	bool changed = false, kw_created = false, xkw = false, from_new = false;
	enum md_result r = md_mbox_dir(u, t, j->mb->id, &mb, dir, sizeof(dir));

	if (r != MD_OK)
		return r;
	if ((r = md_kw_load(t, u->id, j->mb->id, &tab)) != MD_OK)
		return r;
	for (size_t i = 0; i < j->n_keywords && r == MD_OK; i++) {
		int idx = md_kw_find(&tab, j->keywords[i]);

		if (idx < 0 && j->op != MD_FLAGS_REMOVE)
			r = md_kw_ensure(t, u->id, j->mb->id, &tab, j->keywords[i],
					 &idx, &kw_created);
		if (idx >= 0)
			kwmask[idx / 64] |= 1ULL << (idx % 64);
	}
	if (r == MD_OK && kw_created && md_dovecot_keywords_write(dir, &tab) < 0)
		log_warn("store: %s/dovecot-keywords: %s", dir, strerror(errno));
	md_kw_free(&tab);
	if (r != MD_OK)
		return r;
	modseq = mb.highestmodseq + 1;
	for (size_t i = 0; i < j->n; i++) {
		struct md_flags_result *res = &j->res[i];
		struct md_msg_rec rec, old;
		char newname[MD_FILENAME_MAX + 1];
		size_t blen;
		uint32_t dummy;
		uint64_t dkw[MD_KW_WORDS];
		int rc;

		memset(res, 0, sizeof(*res));
		res->uid = j->uids[i];
		r = md_rec_msg_get(t, u->id, j->mb->id, j->uids[i], &rec);
		if (r == MD_NOTFOUND) {
			res->result = MD_NOTFOUND;
			continue;
		}
		if (r != MD_OK)
			return r;
		old = rec;
		res->flags = md_letters_to_flags(rec.letters);
		memcpy(res->keywords, rec.kw, sizeof(res->keywords));
		res->modseq = rec.modseq;
		if (j->unchangedsince > 0 && rec.modseq > j->unchangedsince) {
			res->result = MD_MODIFIED; /* RFC 7162 §3.1.3 */
			continue;
		}
		switch (j->op) {
		case MD_FLAGS_SET:
			rec.letters = md_flags_to_letters(j->flags, rec.letters);
			memcpy(rec.kw, kwmask, sizeof(rec.kw));
			break;
		case MD_FLAGS_ADD:
			rec.letters |= fmask;
			for (int w = 0; w < MD_KW_WORDS; w++)
				rec.kw[w] |= kwmask[w];
			break;
		case MD_FLAGS_REMOVE:
			rec.letters &= ~fmask;
			for (int w = 0; w < MD_KW_WORDS; w++)
				rec.kw[w] &= ~kwmask[w];
			break;
		}
		if (rec.letters == old.letters && !memcmp(rec.kw, old.kw, sizeof(rec.kw))) {
			res->result = MD_OK; /* nothing changed: modseq stays */
			continue;
		}
		md_fname_parse(rec.fname, &blen, &dummy, dkw);
		if (md_fname_build(rec.fname, blen, rec.letters, rec.kw, newname,
				   sizeof(newname)) < 0)
			return MD_CORRUPT;
		rc = md_msg_rename(dir, &old, newname);
		if (rc == 1) {
			res->result = MD_NOTFOUND; /* gone: the next sync expunges */
			continue;
		}
		if (rc < 0) {
			md_user_seterr(u, "rename in %s: %s", dir, strerror(errno));
			return MD_TEMPFAIL;
		}
		str_copy(rec.fname, newname, sizeof(rec.fname));
		from_new = from_new || old.in_new;
		rec.in_new = false;
		rec.modseq = modseq;
		xkw = xkw || md_xkw_any(old.kw) || md_xkw_any(rec.kw);
		md_rec_count(&mb, &old, -1);
		md_rec_count(&mb, &rec, 1);
		if ((r = md_rec_msg_put(t, u->id, j->mb->id, &rec, &old)) != MD_OK)
			return r;
		res->result = MD_OK;
		res->flags = md_letters_to_flags(rec.letters);
		memcpy(res->keywords, rec.kw, sizeof(res->keywords));
		res->modseq = modseq;
		changed = true;
	}
	if (!changed)
		return MD_OK;
	/* the renames are durable before the commit records the new flags */
	if ((r = md_msgs_dirsync(u, dir, true, from_new)) != MD_OK)
		return r;
	if (xkw && (r = md_store_xkw(t, j, dir)) != MD_OK)
		return r;
	mb.highestmodseq = modseq;
	md_txn_touch(t, u->id, j->mb->id);
	return md_rec_mbox_put(t, u->id, &mb);
}

enum md_result md_msg_store(struct md_mailbox *mb, const uint32_t *uids,
			    size_t n, enum md_flags_op op, unsigned flags,
			    const char *const *keywords, size_t n_keywords,
			    uint64_t unchangedsince,
			    struct md_flags_result *results_r)
{
	struct md_store_job job = {
		.mb = mb, .uids = uids, .n = n, .op = op, .flags = flags,
		.keywords = keywords, .n_keywords = n_keywords,
		.unchangedsince = unchangedsince, .res = results_r,
	};
	enum md_result r;

	for (size_t i = 0; i < n_keywords; i++) {
		if ((r = md_keyword_check(keywords[i])) != MD_OK) {
			md_user_seterr(mb->user, "invalid keyword");
			return r;
		}
	}
	r = md_write(mb->user->store, md_store_job_run, &job);
	if (r == MD_LIMIT)
		md_user_seterr(mb->user, "too many keywords in this mailbox");
	return r;
}

/* ---- EXPUNGE ------------------------------------------------------------ */

struct md_expunge_job {
	struct md_mailbox *mb;
	const uint32_t *uids;
	size_t n;
	unsigned flags;
	const bool *unlinked; /* per uids[i]: its file is already removed */
	uint32_t *out;  /* grown by the job; kept across runs */
	size_t n_out, cap_out;
	size_t n_kept;  /* files that could not be removed */
};

/* Remove a message's file (unless unlinked already) and record (inside a
 * job).  *kept_r: the file could not be removed (EIO, EACCES ...): the
 * record stays, logged, for a later retry. */
static enum md_result md_expunge_one(struct md_txn *t, struct md_user *u,
				     uint32_t mbox, const char *dir,
				     struct md_mbox_rec *mb, struct md_user_rec *urec,
				     struct md_msg_rec *rec, uint64_t modseq, bool unlinked,
				     bool *kept_r)
{
	char path[PATH_MAX];
	enum md_result r;

	*kept_r = false;
	for (int attempt = 0; !unlinked && attempt < 2; attempt++) {
		if (md_msg_path(dir, rec, path, sizeof(path)) < 0)
			return MD_CORRUPT;
		if (unlink(path) == 0)
			break;
		if (errno != ENOENT) {
			log_warn("store: user=%s uid=%u unlink %s: %s, not expunged",
				 u->address, rec->uid, path, strerror(errno));
			md_user_seterr(u, "unlink %s: %s", path, strerror(errno));
			*kept_r = true;
			return MD_OK;
		}
		if (md_msg_locate(dir, rec) != 0)
			break; /* already gone */
	}
	if ((r = md_rec_msg_del(t, u->id, mbox, rec, modseq)) != MD_OK)
		return r;
	md_rec_count(mb, rec, -1);
	md_rec_quota(urec, rec, -1);
	return MD_OK;
}

static enum md_result md_expunge_job_run(struct md_txn *t, void *arg)
{
	struct md_expunge_job *j = arg;
	struct md_user *u = j->mb->user;
	struct md_mbox_rec mb;
	struct md_user_rec urec;
	uint32_t *cand = NULL;
	size_t n_cand = 0, cap_cand = 0;
	char dir[PATH_MAX];
	uint64_t modseq;
	bool in_cur = false, in_new = false;
	enum md_result r = md_mbox_dir(u, t, j->mb->id, &mb, dir, sizeof(dir));

	j->n_out = 0;
	j->n_kept = 0;
	if (r != MD_OK)
		return r;
	if ((r = md_rec_user_get(t, u->address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	modseq = mb.highestmodseq + 1;
	if (j->uids == NULL) {
		/* every \Deleted message: collect first, then delete */
		unsigned char key[8];
		struct md_cursor *cur;
		struct md_val k, v;
		int rc;

		if (md_cursor_open(t, MD_DB_MSG, key, md_key_mbox(key, u->id, j->mb->id),
				   &cur) < 0)
			return MD_TEMPFAIL;
		for (rc = md_cursor_seek(cur, key, 8, &k, &v); rc == 0;
		     rc = md_cursor_next(cur, &k, &v)) {
			struct md_msg_rec rec;

			if (md_rec_msg_decode(&k, &v, &rec) == MD_OK &&
			    (rec.letters & MD_LETTER('T')) &&
			    md_u32_push(&cand, &n_cand, &cap_cand, rec.uid) < 0) {
				rc = -1;
				break;
			}
		}
		md_cursor_close(cur);
		if (rc < 0) {
			free(cand);
			return MD_TEMPFAIL;
		}
	}
	for (size_t i = 0; i < (j->uids != NULL ? j->n : n_cand); i++) {
		uint32_t uid = j->uids != NULL ? j->uids[i] : cand[i];
		struct md_msg_rec rec;
		bool kept;

		r = md_rec_msg_get(t, u->id, j->mb->id, uid, &rec);
		if (r == MD_NOTFOUND) {
			r = MD_OK;
			continue;
		}
		if (r != MD_OK)
			break;
		if ((j->flags & MD_EXPUNGE_DELETED_ONLY || j->uids == NULL) &&
		    !(rec.letters & MD_LETTER('T')))
			continue;
		if ((r = md_expunge_one(t, u, j->mb->id, dir, &mb, &urec, &rec, modseq,
					j->unlinked != NULL && j->unlinked[i],
					&kept)) != MD_OK)
			break;
		if (kept) {
			j->n_kept++;
			continue;
		}
		in_new = in_new || rec.in_new;
		in_cur = in_cur || !rec.in_new;
		if (md_u32_push(&j->out, &j->n_out, &j->cap_out, uid) < 0) {
			r = MD_TEMPFAIL;
			break;
		}
	}
	free(cand);
	if (r != MD_OK)
		return r;
	if (j->n_out == 0)
		return MD_OK;
	/* the unlinks are durable before the commit records the expunge */
	if ((r = md_msgs_dirsync(u, dir, in_cur, in_new)) != MD_OK)
		return r;
	mb.highestmodseq = modseq;
	md_txn_touch(t, u->id, j->mb->id);
	if ((r = md_rec_mbox_put(t, u->id, &mb)) != MD_OK)
		return r;
	return md_rec_user_put(t, u->address, &urec);
}

/* An expunge of given messages, unconditionally (POP3 QUIT): remove their
 * files here, on the calling thread, before the write job, which then only
 * drops the records.  The unlinks of many mailboxes then run side by side
 * on the callers' threads instead of one after another on the writer
 * thread, and LMDB's write lock is not held across them (DESIGN.md: file
 * work comes before the index's transaction).  A file that is not under
 * its recorded name (renamed meanwhile) is left to the job, which finds it
 * under the lock.  unlinked_r[i]: uids[i]'s file was removed here.  The
 * Maildir is the truth: a crash between the unlinks and the commit leaves
 * records without files, which the next sync removes as expunged. */
static void md_expunge_unlink_first(struct md_mailbox *mb, const uint32_t *uids,
				    size_t n, bool *unlinked_r)
{
	struct md_mbox_rec mrec;
	struct md_txn *t;
	char dir[PATH_MAX], **paths = calloc(n, sizeof(*paths));

	if (paths == NULL || md_read_begin(mb->user->store, &t) != MD_OK) {
		free(paths);
		return;
	}
	if (md_mbox_dir(mb->user, t, mb->id, &mrec, dir, sizeof(dir)) == MD_OK) {
		for (size_t i = 0; i < n; i++) {
			struct md_msg_rec rec;
			char path[PATH_MAX];

			if (md_rec_msg_get(t, mb->user->id, mb->id, uids[i], &rec) == MD_OK &&
			    md_msg_path(dir, &rec, path, sizeof(path)) == 0)
				paths[i] = strdup(path); /* NULL: the job does it */
		}
	}
	md_read_end(t);
	for (size_t i = 0; i < n; i++) {
		unlinked_r[i] = paths[i] != NULL && unlink(paths[i]) == 0;
		free(paths[i]);
	}
	free(paths);
}

enum md_result md_msg_expunge(struct md_mailbox *mb, const uint32_t *uids,
			      size_t n, unsigned flags, uint32_t **expunged_r,
			      size_t *n_expunged_r)
{
	struct md_expunge_job job = { .mb = mb, .uids = uids, .n = n,
				      .flags = flags };
	bool *unlinked = NULL;
	enum md_result r;

	mb->expunge_kept = 0;
	if (expunged_r != NULL)
		*expunged_r = NULL;
	if (n_expunged_r != NULL)
		*n_expunged_r = 0;
	if (uids == NULL && (r = md_mailbox_sync(mb, NULL)) != MD_OK)
		return r;
	if (uids != NULL && !(flags & MD_EXPUNGE_DELETED_ONLY) && n > 0 &&
	    (unlinked = calloc(n, sizeof(*unlinked))) != NULL) {
		md_expunge_unlink_first(mb, uids, n, unlinked);
		job.unlinked = unlinked;
	}
	r = md_write(mb->user->store, md_expunge_job_run, &job);
	free(unlinked);
	mb->expunge_kept = r == MD_OK ? job.n_kept : 0;
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
