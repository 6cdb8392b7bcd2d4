/* RENAME of a mailbox and its children (RFC 3501 §6.3.5; store.h
 * md_mailbox_rename()).
 *
 * The folder directories are renamed on the calling thread, never inside
 * a write job (DESIGN.md: LMDB's one write lock is shared with every
 * process on the data directory), between two jobs:
 *   1. a job checks the names (the mailbox and its children exist, none of
 *      the new names is taken) and leaves a marker in the index, "user U
 *      renames FROM to TO since T" (key MD_RENAME_KEY + user id in the meta
 *      database, value: T as i64 seconds, FROM, NUL, TO);
 *   2. each folder's directory is renamed (one rename(2) each: Maildir++
 *      folders are siblings under the root), then the root is fsynced;
 *   3. a job renames the records (re-checking each), moves the
 *      subscriptions and removes the marker.
 * A folder sync (md_sync_folders(), in this process or another) that lists
 * the root between 2 and 3 would take the renamed folders for new
 * mailboxes and the old names for deleted ones: while the marker is there
 * it leaves names under FROM and TO alone and scans the root again next
 * time.  A DELETE of a name the marker covers fails (MD_TEMPFAIL) rather
 * than race it.  When 2 or 3 fails, the directories are renamed back and
 * the marker removed.  A marker older than MD_RENAME_STALE_SECS was left
 * by a crash between 1 and 3: the next folder sync removes it and takes
 * the tree as it finds it (a folder renamed on disk becomes a new mailbox
 * with a new UIDVALIDITY; no message is lost).
 */
#include "md_private.h"
#include "md_metadata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define MD_RENAME_MAX 1024       /* a mailbox and its children renamed at once */
#define MD_RENAME_STALE_SECS 60  /* a marker older than this: a crashed RENAME */
#define MD_RENAME_KEY "renaming"
#define MD_RENAME_KEYLEN (sizeof(MD_RENAME_KEY) - 1 + 4)

struct md_rename_one {
	uint32_t id;
	char old[MD_MAILBOX_NAME_MAX + 1];
	char new[MD_MAILBOX_NAME_MAX + 1];
};

struct md_rename_marker {
	int64_t since;
	char from[MD_MAILBOX_NAME_MAX + 1];
	char to[MD_MAILBOX_NAME_MAX + 1];
};

enum md_rename_step { MD_RENAME_BEGIN, MD_RENAME_FINISH, MD_RENAME_ABANDON };

struct md_rename_job {
	struct md_user *user;
	const char *from, *to;
	enum md_rename_step step;
	struct md_rename_marker mark; /* BEGIN sets it; the others match it */
	struct md_rename_one *ones;   /* BEGIN fills them */
	size_t n;
};

static size_t md_rename_key(unsigned char *key, uint32_t user)
{
	memcpy(key, MD_RENAME_KEY, sizeof(MD_RENAME_KEY) - 1);
	md_put32(key + sizeof(MD_RENAME_KEY) - 1, user);
	return MD_RENAME_KEYLEN;
}

/* The user's marker: 0, 1 when there is none, -1 on an index error.  A
 * damaged one reads as stale (since 0). */
static int md_rename_marker_get(struct md_txn *t, uint32_t user,
				struct md_rename_marker *m)
{
	unsigned char key[MD_RENAME_KEYLEN];
	struct md_val v;
	const char *p;
	size_t left, flen;
	int rc = md_kv_get(t, MD_DB_META, key, md_rename_key(key, user), &v);

	memset(m, 0, sizeof(*m));
	if (rc != 0)
		return rc;
	if (v.len <= 8)
		return 0;
	m->since = (int64_t)md_get64(v.data);
	p = (const char *)v.data + 8;
	left = v.len - 8;
	flen = strnlen(p, left);
	if (flen == left || flen > MD_MAILBOX_NAME_MAX ||
	    left - flen - 1 > MD_MAILBOX_NAME_MAX) {
		m->since = 0;
		return 0;
	}
	memcpy(m->from, p, flen);
	memcpy(m->to, p + flen + 1, left - flen - 1);
	return 0;
}

static enum md_result md_rename_marker_put(struct md_txn *t, uint32_t user,
					   const struct md_rename_marker *m)
{
	unsigned char key[MD_RENAME_KEYLEN], val[8 + 2 * (MD_MAILBOX_NAME_MAX + 1)];
	size_t flen = strlen(m->from), tlen = strlen(m->to);

	md_put64(val, (uint64_t)m->since);
	memcpy(val + 8, m->from, flen + 1);
	memcpy(val + 8 + flen + 1, m->to, tlen);
	return md_kv_put(t, MD_DB_META, key, md_rename_key(key, user), val,
			 8 + flen + 1 + tlen, 0) < 0 ? MD_TEMPFAIL : MD_OK;
}

static enum md_result md_rename_marker_del(struct md_txn *t, uint32_t user)
{
	unsigned char key[MD_RENAME_KEYLEN];

	return md_kv_del(t, MD_DB_META, key, md_rename_key(key, user), NULL, 0) < 0 ?
	       MD_TEMPFAIL : MD_OK;
}

static bool md_rename_is_stale(const struct md_rename_marker *m)
{
	int64_t now = time(NULL);

	return m->since <= 0 || now - m->since > MD_RENAME_STALE_SECS ||
	       now < m->since - MD_RENAME_STALE_SECS; /* the clock went back */
}

/* name is top or below it */
static bool md_name_under(const char *name, const char *top)
{
	size_t n = strlen(top);

	return strncmp(name, top, n) == 0 && (name[n] == '\0' || name[n] == '/');
}

bool md_rename_in_flight(struct md_txn *t, uint32_t user, const char *name,
			 bool remove_stale)
{
	struct md_rename_marker m;

	if (md_rename_marker_get(t, user, &m) != 0)
		return false;
	if (md_rename_is_stale(&m)) {
		if (remove_stale) {
			log_warn("store: user %u: RENAME %s to %s never finished; "
				 "the folders are taken as found", user, m.from, m.to);
			(void)md_rename_marker_del(t, user);
		}
		return false;
	}
	return name == NULL || md_name_under(name, m.from) || md_name_under(name, m.to);
}

/* Step 1: the mailbox and its children ("from" and "from/..."), their new
 * names free; the marker left. */
static enum md_result md_rename_begin(struct md_txn *t, struct md_rename_job *j)
{
	struct md_user *u = j->user;
	unsigned char key[MD_KEY_MAX];
	struct md_cursor *cur;
	struct md_val k, v;
	size_t flen = strlen(j->from), tlen = strlen(j->to);
	enum md_result r = MD_OK;
	int rc;

	j->n = 0;
	if (md_rename_in_flight(t, u->id, NULL, true)) {
		md_user_seterr(u, "another RENAME is in progress, try again");
		return MD_TEMPFAIL;
	}
	md_put32(key, u->id);
	memcpy(key + 4, j->from, flen);
	if (md_cursor_open(t, MD_DB_MBOXNAME, key, 4 + flen, &cur) < 0)
		return MD_TEMPFAIL;
	for (rc = md_cursor_seek(cur, key, 4 + flen, &k, &v); rc == 0 && j->n < MD_RENAME_MAX;
	     rc = md_cursor_next(cur, &k, &v)) {
		const char *rest = (const char *)k.data + 4 + flen;
		size_t rlen = k.len - 4 - flen;

		if (v.len == 4 && (rlen == 0 || rest[0] == '/'))
			j->ones[j->n++].id = md_get32(v.data);
	}
	md_cursor_close(cur);
	if (rc < 0)
		return MD_TEMPFAIL;
	if (j->n == 0)
		return MD_NOMAILBOX;
	if (j->n == MD_RENAME_MAX)
		return MD_LIMIT;
	for (size_t i = 0; i < j->n && r == MD_OK; i++) {
		struct md_rename_one *o = &j->ones[i];
		struct md_mbox_rec rec;
		uint32_t other;

		if ((r = md_rec_mbox_get(t, u->id, o->id, &rec)) != MD_OK)
			break;
		if (tlen + strlen(rec.name) - flen > MD_MAILBOX_NAME_MAX) {
			r = MD_LIMIT;
			break;
		}
		str_copy(o->old, rec.name, sizeof(o->old));
		snprintf(o->new, sizeof(o->new), "%s%s", j->to, rec.name + flen);
		r = md_rec_mbox_id(t, u->id, o->new, &other);
		r = r == MD_OK ? MD_EXISTS : r == MD_NOTFOUND ? MD_OK : r;
	}
	if (r != MD_OK)
		return r;
	j->mark.since = time(NULL);
	str_copy(j->mark.from, j->from, sizeof(j->mark.from));
	str_copy(j->mark.to, j->to, sizeof(j->mark.to));
	return md_rename_marker_put(t, u->id, &j->mark);
}

/* Whether the marker is still the one this RENAME left */
static bool md_rename_marker_ours(struct md_txn *t, const struct md_rename_job *j)
{
	struct md_rename_marker m;

	return md_rename_marker_get(t, j->user->id, &m) == 0 &&
	       m.since == j->mark.since && strcmp(m.from, j->mark.from) == 0 &&
	       strcmp(m.to, j->mark.to) == 0;
}

/* Step 3: the records follow the directories. */
static enum md_result md_rename_finish(struct md_txn *t, struct md_rename_job *j)
{
	struct md_user *u = j->user;
	unsigned char key[MD_KEY_MAX];
	enum md_result r;

	if (!md_rename_marker_ours(t, j))
		return MD_TEMPFAIL; /* taken for stale: the folder sync decides */
	for (size_t i = 0; i < j->n; i++) {
		const struct md_rename_one *o = &j->ones[i];
		struct md_mbox_rec rec;
		size_t olen = strlen(o->old), nlen = strlen(o->new);
		uint32_t other;

		if ((r = md_rec_mbox_get(t, u->id, o->id, &rec)) != MD_OK)
			return r == MD_NOTFOUND ? MD_TEMPFAIL : r;
		if (strcmp(rec.name, o->old) != 0)
			return MD_TEMPFAIL;
		r = md_rec_mbox_id(t, u->id, o->new, &other);
		if (r == MD_OK)
			return MD_EXISTS;
		if (r != MD_NOTFOUND)
			return r;
		str_copy(rec.name, o->new, sizeof(rec.name));
		md_put32(key, u->id);
		memcpy(key + 4, o->old, olen);
		if (md_kv_del(t, MD_DB_MBOXNAME, key, 4 + olen, NULL, 0) < 0)
			return MD_TEMPFAIL;
		memcpy(key + 4, o->new, nlen);
		md_put32(key + 4 + nlen, rec.id);
		if (md_kv_put(t, MD_DB_MBOXNAME, key, 4 + nlen, key + 4 + nlen, 4, 0) < 0)
			return MD_TEMPFAIL;
		if ((r = md_rec_mbox_put(t, u->id, &rec)) != MD_OK)
			return r;
		/* subscriptions follow the mailbox, as users expect */
		if (md_rec_subscribed(t, u->id, o->old) &&
		    ((r = md_rec_subscribe(t, u->id, o->old, false)) != MD_OK ||
		     (r = md_rec_subscribe(t, u->id, o->new, true)) != MD_OK))
			return r;
		md_txn_touch(t, u->id, rec.id);
	}
	return md_rename_marker_del(t, u->id);
}

static enum md_result md_rename_job_run(struct md_txn *t, void *arg)
{
	struct md_rename_job *j = arg;

	switch (j->step) {
	case MD_RENAME_BEGIN:
		return md_rename_begin(t, j);
	case MD_RENAME_FINISH:
		return md_rename_finish(t, j);
	case MD_RENAME_ABANDON:
		break;
	}
	return md_rename_marker_ours(t, j) ? md_rename_marker_del(t, j->user->id) : MD_OK;
}

/* Rename directory of ones[i] from old to new name (back: new to old) */
static int md_rename_dir(struct md_user *u, const struct md_rename_one *o, bool back)
{
	char olddir[PATH_MAX], newdir[PATH_MAX];

	if (md_mailbox_dir(u->root, o->old, olddir, sizeof(olddir)) < 0 ||
	    md_mailbox_dir(u->root, o->new, newdir, sizeof(newdir)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (back)
		return rename(newdir, olddir);
	/* a folder the index lists but the disk lacks: nothing to move */
	return rename(olddir, newdir) < 0 && errno != ENOENT ? -1 : 0;
}

/* Step 2, on the calling thread: the directories, durably; undone when a
 * rename or the fsync fails. */
static enum md_result md_rename_dirs(struct md_rename_job *j)
{
	struct md_user *u = j->user;
	size_t done = 0;
	enum md_result r = MD_OK;

	for (; done < j->n; done++) {
		if (md_rename_dir(u, &j->ones[done], false) < 0) {
			md_user_seterr(u, "rename of %s: %s", j->ones[done].old, strerror(errno));
			r = errno == EEXIST || errno == ENOTEMPTY ? MD_EXISTS : MD_TEMPFAIL;
			break;
		}
	}
	if (r == MD_OK && md_fsync_dir_shared(u->store, u->root) < 0) {
		md_user_seterr(u, "fsync %s: %s", u->root, strerror(errno));
		r = MD_TEMPFAIL;
	}
	if (r != MD_OK) {
		while (done-- > 0)
			(void)md_rename_dir(u, &j->ones[done], true);
		(void)md_fsync_dir_shared(u->store, u->root);
	}
	return r;
}

static enum md_result md_rename_tree(struct md_user *u, const char *from, const char *to)
{
	struct md_rename_job job = { .user = u, .from = from, .to = to,
				     .step = MD_RENAME_BEGIN };
	enum md_result r;

	if ((job.ones = calloc(MD_RENAME_MAX, sizeof(*job.ones))) == NULL)
		return MD_TEMPFAIL;
	if ((r = md_write(u->store, md_rename_job_run, &job)) != MD_OK)
		goto out;
	if ((r = md_rename_dirs(&job)) == MD_OK) {
		job.step = MD_RENAME_FINISH;
		if ((r = md_write(u->store, md_rename_job_run, &job)) == MD_OK)
			goto out;
		/* the records stayed: the directories go back */
		for (size_t i = job.n; i-- > 0;)
			if (md_rename_dir(u, &job.ones[i], true) < 0)
				log_error("store: user=%s rename of %s back: %s", u->address,
					  job.ones[i].new, strerror(errno));
		(void)md_fsync_dir_shared(u->store, u->root);
	}
	job.step = MD_RENAME_ABANDON;
	(void)md_write(u->store, md_rename_job_run, &job);
out:
	free(job.ones);
	return r;
}

/* RFC 3501 §6.3.5: renaming INBOX moves its messages to a new mailbox. */
static enum md_result md_rename_inbox(struct md_user *u, const char *to)
{
	struct md_mailbox *mb;
	uint32_t *uids = NULL;
	size_t n = 0;
	enum md_result r = md_mailbox_create(u, to, 0);

	if (r != MD_OK)
		return r;
	if ((r = md_mailbox_open(u, "INBOX", &mb, NULL)) != MD_OK)
		return r;
	r = md_mailbox_uids(mb, &uids, &n);
	if (r == MD_OK && n > 0)
		r = md_msg_copy(mb, uids, n, to, true, 0, 0, NULL, NULL);
	free(uids);
	md_mailbox_close(mb);
	return r;
}

enum md_result md_mailbox_rename(struct md_user *u, const char *from,
				 const char *to)
{
	char nfrom[MD_MAILBOX_NAME_MAX + 1], nto[MD_MAILBOX_NAME_MAX + 1];
	size_t flen;
	enum md_result r;

	if ((r = md_mailbox_name_arg(u, from, nfrom)) != MD_OK ||
	    (r = md_mailbox_name_arg(u, to, nto)) != MD_OK)
		return r;
	flen = strlen(nfrom);
	if (md_name_is_inbox(nto) || (strncmp(nto, nfrom, flen) == 0 &&
				       (nto[flen] == '/' || nto[flen] == '\0'))) {
		md_user_seterr(u, "cannot rename %s to %s", nfrom, nto);
		return strcmp(nto, nfrom) == 0 ? MD_EXISTS : MD_DENIED;
	}
	if (md_name_is_inbox(nfrom))
		return md_rename_inbox(u, nto);
	r = md_rename_tree(u, nfrom, nto);
	if (r == MD_OK) {
		md_mailbox_subs_mirror(u); /* the subscriptions followed the names */
		md_metadata_renamed(u, nfrom, nto);
	}
	if (r == MD_NOMAILBOX)
		md_user_seterr(u, "no such mailbox");
	else if (r == MD_EXISTS)
		md_user_seterr(u, "mailbox %s already exists", nto);
	return r;
}
