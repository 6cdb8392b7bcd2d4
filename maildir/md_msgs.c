/* Messages of an open mailbox: reads (records, metadata, the file) and
 * the directory fsync that makes renames and unlinks durable.  The writes:
 * STORE in md_flags.c, EXPUNGE in md_expunge.c, COPY and MOVE in
 * md_copy.c.
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

