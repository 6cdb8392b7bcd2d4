/* Delivery: the one way messages enter the store (SMTP DATA, IMAP APPEND,
 * `postern deliver`).
 *
 * The bytes stream into a spool file DATA_DIR/mail/.tmp/NAME through a
 * 64 KiB buffer (bounded memory whatever the size), with bare LF turned
 * into CRLF.  Commit then, in this order:
 *   1. fsync the spool file;
 *   2. compute the metadata once from the mapped file (md_meta_compute);
 *   3. per recipient: hard-link the file into its Maildir's new/ (cur/
 *      with ":2,FLAGS" when APPEND gives flags) under a fresh unique name
 *      (a copy through tmp/, fsynced, when the link crosses file systems),
 *      and fsync that directory.  Threads that linked into the same
 *      directory at the same time share that fsync (md_dirsync.c): one
 *      that starts after all their links covers them all;
 *   4. index every recipient's copy; the writer thread commits them with
 *      whatever else is queued (group commit);
 *   5. remove the spool file.
 * Only then MD_OK, which the caller may acknowledge: the file's bytes (1),
 * its directory entry (3) and its index record (4) are on disk.  A crash
 * after the link but before the directory fsync ended may or may not keep
 * the file in new/; a crash before the commit in 4 leaves it unindexed;
 * either way nothing acknowledged is lost, and a file that is there is
 * indexed by the next sync (by base name, never twice).  A crash before 3
 * leaves only a spool file, and one after 4 leaves the spool file of a
 * delivered message; both are removed after 36 h.  The directory fsync
 * comes before the index commit (not after), so the index never names a
 * file that a crash could lose.  When it fails, the target gets
 * MD_TEMPFAIL and its link is removed: never indexed, never acknowledged.
 *
 * NUL bytes are refused (MD_BADMSG) unless MD_DELIVERY_RAW: RFC 5322 §2.1
 * and §3.5 do not allow them in a message, and IMAP may not send them in a
 * literal (RFC 3501 §4.3).  An empty message is refused too.
 */
#include "md_private.h"
#include "md_keywords.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MD_DELIVERY_BUF (64 * 1024)

struct md_delivery {
	struct md_store *store;
	int fd;
	char spool[PATH_MAX];
	uint64_t size;
	uint64_t size_max;
	unsigned flags;
	enum md_result failed;
	bool last_cr;
	bool committed;
	char error[256];
	size_t olen;
	char *obuf; /* MD_DELIVERY_BUF octets, not zeroed (a profile showed the
		     * calloc of an inline buffer at ~2% of a delivery's CPU) */
};

/* ENOSPC, or EDQUOT (the file system's quota of the daemon's user): the
 * disk is full for us */
static bool md_errno_nospace(int err)
{
	return err == ENOSPC || err == EDQUOT;
}

static void md_delivery_fail(struct md_delivery *d, enum md_result r,
			     const char *what, int err)
{
	if (d->failed != MD_OK)
		return;
	if (r == MD_TEMPFAIL && md_errno_nospace(err))
		r = MD_NOSPACE;
	d->failed = r;
	if (err != 0)
		snprintf(d->error, sizeof(d->error), "%s: %s", what, strerror(err));
	else
		str_copy(d->error, what, sizeof(d->error));
	/* a full disk must not keep the partial file */
	if (d->fd >= 0) {
		close(d->fd);
		d->fd = -1;
		unlink(d->spool);
	}
}

enum md_result md_delivery_open(struct md_store *store, uint64_t size_max,
				unsigned flags, struct md_delivery **d_r)
{
	struct md_delivery *d = calloc(1, sizeof(*d));
	char name[MD_FILENAME_MAX + 1];

	*d_r = NULL;
	if (d == NULL)
		return MD_TEMPFAIL;
	d->obuf = malloc(MD_DELIVERY_BUF);
	if (d->obuf == NULL) {
		free(d);
		return MD_TEMPFAIL;
	}
	d->store = store;
	d->size_max = size_max;
	d->flags = flags;
	if (md_unique_name(store, 0, name, sizeof(name)) < 0 ||
	    (size_t)snprintf(d->spool, sizeof(d->spool), "%s/%s", store->spool_dir,
			     name) >= sizeof(d->spool)) {
		free(d->obuf);
		free(d);
		return MD_TEMPFAIL;
	}
	d->fd = open(d->spool, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		int err = errno;

		log_error("store: %s: %s", d->spool, strerror(err));
		free(d->obuf);
		free(d);
		return md_errno_nospace(err) ? MD_NOSPACE : MD_TEMPFAIL;
	}
	*d_r = d;
	return MD_OK;
}

static void md_delivery_flush(struct md_delivery *d)
{
	if (d->olen == 0 || d->failed != MD_OK)
		return;
	if (write_full(d->fd, d->obuf, d->olen) < 0)
		md_delivery_fail(d, MD_TEMPFAIL, "writing the message", errno);
	d->olen = 0;
}

enum md_result md_delivery_write(struct md_delivery *d, const void *data,
				 size_t len)
{
	const unsigned char *p = data;
	bool raw = d->flags & MD_DELIVERY_RAW;

	for (size_t i = 0; i < len && d->failed == MD_OK; i++) {
		if (d->olen + 2 > MD_DELIVERY_BUF)
			md_delivery_flush(d);
		if (p[i] == '\0' && !raw) {
			md_delivery_fail(d, MD_BADMSG, "message contains a NUL byte", 0);
			break;
		}
		if (p[i] == '\n' && !d->last_cr && !raw) {
			d->obuf[d->olen++] = '\r';
			d->size++;
		}
		d->obuf[d->olen++] = (char)p[i];
		d->size++;
		d->last_cr = p[i] == '\r';
		if (d->size_max > 0 && d->size > d->size_max)
			md_delivery_fail(d, MD_TOOBIG, "message too big", 0);
	}
	return d->failed;
}

enum md_result md_delivery_write_fd(struct md_delivery *d, int fd)
{
	char buf[65536];

	while (d->failed == MD_OK) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			md_delivery_fail(d, MD_TEMPFAIL, "reading the message", errno);
			break;
		}
		if (n == 0)
			break;
		md_delivery_write(d, buf, (size_t)n);
	}
	return d->failed;
}

uint64_t md_delivery_size(const struct md_delivery *d)
{
	return d->size;
}

int md_delivery_reopen(struct md_delivery *d)
{
	md_delivery_flush(d);
	if (d->failed != MD_OK || d->fd < 0)
		return -1;
	return open(d->spool, O_RDONLY | O_CLOEXEC);
}

const char *md_delivery_error(const struct md_delivery *d)
{
	return d->error;
}

void md_delivery_free(struct md_delivery *d)
{
	if (d == NULL)
		return;
	if (d->fd >= 0) {
		close(d->fd);
		unlink(d->spool);
	}
	free(d->obuf);
	free(d);
}

/* ---- commit --------------------------------------------------------------- */

struct md_dtarget {
	struct md_user *user;
	uint32_t mbox;
	char dir[PATH_MAX];   /* the mailbox directory */
	char path[PATH_MAX];  /* the linked file */
	struct md_msg_rec rec;
	bool linked;
	const struct buf *meta;
	uint64_t quota;
	uint64_t quota_messages;
	uint32_t uid_out, uidvalidity_out;
};

static enum md_result md_deliver_job_run(struct md_txn *t, void *arg)
{
	struct md_dtarget *dt = arg;
	struct md_user *u = dt->user;
	struct md_mbox_rec mb;
	struct md_user_rec urec;
	unsigned char key[12];
	size_t blen;
	uint32_t uid, letters;
	uint64_t kw[MD_KW_WORDS];
	enum md_result r;

	if ((r = md_rec_mbox_get(t, u->id, dt->mbox, &mb)) != MD_OK)
		return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
	dt->uidvalidity_out = mb.uidvalidity;
	md_fname_parse(dt->rec.fname, &blen, &letters, kw);
	r = md_rec_basename_uid(t, u->id, dt->mbox, dt->rec.fname, blen, &uid);
	if (r == MD_OK) {
		dt->uid_out = uid; /* a sync found the file first: it is ours */
		return MD_OK;
	}
	if (r != MD_NOTFOUND)
		return r;
	if ((r = md_rec_user_get(t, u->address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	if (dt->quota > 0 && urec.used_bytes + dt->rec.size > dt->quota)
		return MD_QUOTA;
	if (dt->quota_messages > 0 && urec.used_messages + 1 > dt->quota_messages)
		return MD_QUOTA;
	if (mb.uidnext == UINT32_MAX)
		return MD_LIMIT;
	dt->rec.uid = mb.uidnext++;
	dt->rec.modseq = ++mb.highestmodseq;
	if ((r = md_rec_msg_put(t, u->id, dt->mbox, &dt->rec, NULL)) != MD_OK)
		return r;
	if (md_kv_put(t, MD_DB_MSGMETA, key,
		      md_key_msg(key, u->id, dt->mbox, dt->rec.uid),
		      dt->meta->data != NULL ? dt->meta->data : "", dt->meta->len, 0) < 0)
		return MD_TEMPFAIL;
	md_rec_count(&mb, &dt->rec, 1);
	md_rec_quota(&urec, &dt->rec, 1);
	if ((r = md_rec_mbox_put(t, u->id, &mb)) != MD_OK ||
	    (r = md_rec_user_put(t, u->address, &urec)) != MD_OK)
		return r;
	dt->uid_out = dt->rec.uid;
	md_txn_touch(t, u->id, dt->mbox);
	return MD_OK;
}

struct md_kwjob {
	struct md_user *user;
	uint32_t mbox;
	const char *dir;
	const char *const *names;
	size_t n;
	uint64_t kw[MD_KW_WORDS];
	bool created; /* dovecot-keywords needs rewriting (after the commit) */
};

static enum md_result md_kwjob_run(struct md_txn *t, void *arg)
{
	struct md_kwjob *j = arg;
	struct md_kwtab tab;
	bool created = false;
	enum md_result r = md_kw_load(t, j->user->id, j->mbox, &tab);

	memset(j->kw, 0, sizeof(j->kw));
	for (size_t i = 0; i < j->n && r == MD_OK; i++) {
		int idx;

		if ((r = md_kw_ensure(t, j->user->id, j->mbox, &tab, j->names[i],
				      &idx, &created)) == MD_OK)
			j->kw[idx / 64] |= 1ULL << (idx % 64);
	}
	j->created = r == MD_OK && created;
	md_kw_free(&tab);
	return r;
}

static const struct md_msg_rec *md_deliver_xkw_rec(void *ctx, size_t i)
{
	(void)i;
	return &((struct md_dtarget *)ctx)->rec;
}

/* APPEND with keywords beyond the letters: postern-keywords
 * (md_keywords.c), written on the calling thread, outside the lock */
static enum md_result md_deliver_xkw(struct md_dtarget *dt)
{
	enum md_result r = md_xkw_update_file(dt->user->store, dt->user->id, dt->mbox,
					      dt->dir, md_deliver_xkw_rec, dt, 1);

	if (r != MD_OK)
		md_user_seterr(dt->user, "%s/%s: %s", dt->dir, MD_XKW_FILE,
			       md_result_name(r));
	return r;
}

/* Copy the spool file into dir (other file system): tmp/, fsync, rename. */
static int md_deliver_copy(int from, uint64_t size, const char *dir,
			   const char *final)
{
	char tmp[PATH_MAX], buf[65536];
	uint64_t off = 0;
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir,
			     strrchr(final, '/') + 1) >= sizeof(tmp))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (off < size) {
		ssize_t n = pread(from, buf, sizeof(buf), (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write_full(fd, buf, (size_t)n) < 0)
			goto fail;
		off += (uint64_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, final) == 0)
		return 0;
	fd = -1;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Everything for one recipient before the index: user, mailbox, quota
 * check, keywords, the linked file, its directory fsynced (the fsync shared
 * with other threads that linked into the same directory meanwhile). */
static enum md_result md_deliver_prepare(struct md_delivery *d,
					 struct md_target *tg,
					 struct md_dtarget *dt, int64_t idate)
{
	char norm[MD_MAILBOX_NAME_MAX + 1], base[MD_FILENAME_MAX + 1], sub[PATH_MAX];
	struct md_mbox_rec mb;
	struct md_user_rec urec;
	struct md_txn *t;
	enum md_result r;
	bool in_cur;

	r = md_user_open(d->store, tg->address, tg->create_user ? MD_USER_CREATE : 0,
			 &dt->user);
	if (r != MD_OK)
		return r;
	if ((r = md_mailbox_name_norm(tg->mailbox != NULL ? tg->mailbox : "INBOX",
				      norm, sizeof(norm))) != MD_OK)
		return r;
	for (int attempt = 0;; attempt++) {
		if ((r = md_read_begin(d->store, &t)) != MD_OK)
			return r;
		r = md_rec_mbox_find(t, dt->user->id, norm, &mb);
		if (r == MD_OK)
			r = md_rec_user_get(t, dt->user->address, &urec);
		md_read_end(t);
		if (r != MD_NOMAILBOX || attempt > 0)
			break;
		md_sync_folders(dt->user, false); /* made by another program? */
	}
	if (r != MD_OK)
		return r;
	if (tg->quota_bytes > 0 && urec.used_bytes + d->size > tg->quota_bytes)
		return MD_QUOTA; /* checked again when indexing */
	if (tg->quota_messages > 0 && urec.used_messages + 1 > tg->quota_messages)
		return MD_QUOTA;
	dt->mbox = mb.id;
	dt->quota = tg->quota_bytes;
	dt->quota_messages = tg->quota_messages;
	if (md_mailbox_dir(dt->user->root, norm, dt->dir, sizeof(dt->dir)) < 0)
		return MD_LIMIT;
	memset(&dt->rec, 0, sizeof(dt->rec));
	if (tg->n_keywords > 0) {
		struct md_kwjob kj = { .user = dt->user, .mbox = mb.id, .dir = dt->dir,
				       .names = tg->keywords, .n = tg->n_keywords };

		for (size_t i = 0; i < tg->n_keywords; i++)
			if ((r = md_keyword_check(tg->keywords[i])) != MD_OK)
				return r;
		if ((r = md_write(d->store, md_kwjob_run, &kj)) != MD_OK)
			return r;
		if (kj.created)
			(void)md_kw_file_sync(d->store, dt->user->id, mb.id, dt->dir);
		memcpy(dt->rec.kw, kj.kw, sizeof(kj.kw));
	}
	dt->rec.letters = md_flags_to_letters(tg->flags & MD_FLAG_ALL, 0);
	dt->rec.size = d->size;
	dt->rec.internal_date = idate;
	dt->rec.save_date = time(NULL);
	in_cur = dt->rec.letters != 0 || (dt->rec.kw[0] & ((1ULL << 26) - 1)) != 0;
	dt->rec.in_new = !in_cur;
	if (md_unique_name(d->store, d->size, base, sizeof(base)) < 0)
		return MD_TEMPFAIL;
	if (in_cur) {
		if (md_fname_build(base, strlen(base), dt->rec.letters, dt->rec.kw,
				   dt->rec.fname, sizeof(dt->rec.fname)) < 0)
			return MD_TEMPFAIL;
	} else {
		str_copy(dt->rec.fname, base, sizeof(dt->rec.fname));
	}
	if (md_msg_path(dt->dir, &dt->rec, dt->path, sizeof(dt->path)) < 0)
		return MD_TEMPFAIL;
	/* before the file is there, so that a sync finding it first gets
	 * them too */
	if (md_xkw_any(dt->rec.kw) && (r = md_deliver_xkw(dt)) != MD_OK)
		return r;
	if (link(d->spool, dt->path) < 0) {
		if (errno != EXDEV || md_deliver_copy(d->fd, d->size, dt->dir,
						      dt->path) < 0) {
			int err = errno;

			md_user_seterr(dt->user, "%s: %s", dt->path, strerror(err));
			log_error("store: user=%s cannot store message: %s",
				  dt->user->address, dt->user->error);
			return md_errno_nospace(err) ? MD_NOSPACE : MD_TEMPFAIL;
		}
	}
	dt->linked = true;
	md_pathf(sub, sizeof(sub), "%s/%s", dt->dir, in_cur ? "cur" : "new");
	if (md_fsync_dir_shared(d->store, sub) < 0) {
		int err = errno;

		log_error("store: fsync %s: %s", sub, strerror(err));
		return md_errno_nospace(err) ? MD_NOSPACE : MD_TEMPFAIL;
	}
	return MD_OK;
}

enum md_result md_delivery_commit(struct md_delivery *d,
				  struct md_target *targets, size_t n)
{
	struct md_dtarget *dts = NULL;
	void **args = NULL;
	enum md_result *res = NULL, r = MD_OK;
	struct buf meta;
	uint64_t pop3_size = 0;
	void *map;
	int64_t idate = n > 0 && targets[0].internal_date > 0 ?
			targets[0].internal_date : time(NULL);
	size_t n_jobs = 0;

	memset(&meta, 0, sizeof(meta));
	for (size_t i = 0; i < n; i++) {
		targets[i].result = MD_TEMPFAIL;
		targets[i].uid = targets[i].uidvalidity = 0;
	}
	if (d->committed) {
		md_delivery_fail(d, MD_TEMPFAIL, "delivery committed twice", 0);
		r = MD_TEMPFAIL;
		goto done;
	}
	d->committed = true;
	md_delivery_flush(d);
	if (d->failed == MD_OK && d->size == 0)
		md_delivery_fail(d, MD_BADMSG, "empty message", 0);
	if (d->failed == MD_OK) {
		/* INTERNALDATE is the file's mtime, as Dovecot keeps it: set
		 * before the fsync, which then makes it durable too */
		struct timespec ts[2] = { { idate, 0 }, { idate, 0 } };

		if (futimens(d->fd, ts) < 0)
			md_delivery_fail(d, MD_TEMPFAIL, "futimens", errno);
	}
	if (d->failed == MD_OK && fsync(d->fd) < 0)
		md_delivery_fail(d, md_errno_nospace(errno) ? MD_NOSPACE : MD_TEMPFAIL, "fsync",
				 errno);
	if (d->failed == MD_OK) {
		map = mmap(NULL, (size_t)d->size, PROT_READ, MAP_PRIVATE, d->fd, 0);
		if (map == MAP_FAILED) {
			md_delivery_fail(d, MD_TEMPFAIL, "mmap", errno);
		} else {
			if (md_sync_meta(map, (size_t)d->size, &meta, &pop3_size) != MD_OK)
				md_delivery_fail(d, MD_TEMPFAIL,
						 "out of memory computing metadata", 0);
			munmap(map, (size_t)d->size);
		}
	}
	if (d->failed != MD_OK) {
		r = d->failed;
		goto done;
	}
	dts = calloc(n + 1, sizeof(*dts));
	args = calloc(n + 1, sizeof(*args));
	res = calloc(n + 1, sizeof(*res));
	if (dts == NULL || args == NULL || res == NULL) {
		r = MD_TEMPFAIL;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		dts[i].meta = &meta;
		targets[i].result = md_deliver_prepare(d, &targets[i], &dts[i], idate);
		dts[i].rec.pop3_size = pop3_size;
		if (targets[i].result == MD_OK)
			args[n_jobs++] = &dts[i];
	}
	md_write_n(d->store, md_deliver_job_run, args, res, n_jobs);
	for (size_t i = 0, k = 0; i < n; i++) {
		struct md_dtarget *dt = &dts[i];

		if (targets[i].result == MD_OK) {
			targets[i].result = res[k++];
			targets[i].uid = dt->uid_out;
			targets[i].uidvalidity = dt->uidvalidity_out;
		}
		if (targets[i].result != MD_OK && dt->linked)
			unlink(dt->path); /* never indexed: not delivered */
		if (targets[i].result != MD_OK)
			log_info("store: user=%s delivery failed: %s", targets[i].address,
				 md_result_name(targets[i].result));
		md_user_close(dt->user);
	}
done:
	if (r != MD_OK)
		for (size_t i = 0; i < n; i++)
			targets[i].result = r;
	buf_free(&meta);
	free(dts);
	free(args);
	free(res);
	if (d->fd >= 0) {
		close(d->fd);
		d->fd = -1;
		unlink(d->spool);
	}
	return r;
}
