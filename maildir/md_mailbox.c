/* Mailboxes: list, create, delete, rename, subscriptions, status, and the
 * open (selected) mailbox handle.
 *
 * CREATE and DELETE change the folder tree first, on the calling thread,
 * then one job records it (DESIGN.md: no file work under LMDB's write
 * lock): CREATE makes the Maildir (fsynced up to its entry in the root)
 * and then the record; DELETE moves the folder out of the tree (the root
 * fsynced), then drops the record, and moves it back when that fails.  A
 * folder sync of another process that runs in between sees the tree
 * first: it indexes the new folder itself (CREATE then finds its own
 * mailbox there: done) or drops the moved one (DELETE: done).
 * RENAME is in md_rename.c.
 */
#include "md_private.h"
#include "md_metadata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

enum md_result md_mbox_dir(struct md_user *u, struct md_txn *t, uint32_t id,
			   struct md_mbox_rec *rec_r, char *dir, size_t dirlen)
{
	enum md_result r = md_rec_mbox_get(t, u->id, id, rec_r);

	if (r == MD_NOTFOUND) {
		md_user_seterr(u, "mailbox no longer exists");
		return MD_NOMAILBOX;
	}
	if (r != MD_OK)
		return r;
	if (dir != NULL && md_mailbox_dir(u->root, rec_r->name, dir, dirlen) < 0)
		return MD_CORRUPT;
	return MD_OK;
}

void md_status_from_rec(const struct md_mbox_rec *rec, struct md_status *st)
{
	memset(st, 0, sizeof(*st));
	st->uidvalidity = rec->uidvalidity;
	st->uidnext = rec->uidnext;
	st->highestmodseq = rec->highestmodseq;
	st->messages = rec->messages;
	st->unseen = rec->unseen;
	st->deleted = rec->deleted;
	st->size = rec->size;
	st->special_use = rec->special;
	st->mailbox_id = rec->id;
}

enum md_result md_mailbox_name_arg(struct md_user *u, const char *name, char *out)
{
	enum md_result r = md_mailbox_name_norm(name, out, MD_MAILBOX_NAME_MAX + 1);

	if (r != MD_OK)
		md_user_seterr(u, "invalid mailbox name");
	return r;
}

/* ---- list ----------------------------------------------------------------- */

static int md_info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct md_mailbox_info *)a)->name,
		      ((const struct md_mailbox_info *)b)->name);
}

static struct md_mailbox_info *md_info_add(struct md_mailbox_info **list,
					   size_t *n, size_t *cap, const char *name,
					   size_t len)
{
	struct md_mailbox_info *e;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct md_mailbox_info *nl = realloc(*list, ncap * sizeof(*nl));

		if (nl == NULL)
			return NULL;
		*list = nl;
		*cap = ncap;
	}
	e = &(*list)[(*n)++];
	memset(e, 0, sizeof(*e));
	if (len > MD_MAILBOX_NAME_MAX)
		len = MD_MAILBOX_NAME_MAX;
	memcpy(e->name, name, len);
	e->name[len] = '\0';
	return e;
}

enum md_result md_mailbox_list(struct md_user *u, struct md_mailbox_info **list_r,
			       size_t *n_r)
{
	struct md_mailbox_info *list = NULL, *e;
	size_t n = 0, cap = 0, n_real;
	unsigned char prefix[4];
	struct md_cursor *cur = NULL;
	struct md_txn *t;
	struct md_val k, v;
	enum md_result r;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	md_sync_folders(u, false);
	if ((r = md_read_begin(u->store, &t)) != MD_OK)
		return r;
	md_put32(prefix, u->id);
	r = MD_TEMPFAIL;
	if (md_cursor_open(t, MD_DB_MBOXNAME, prefix, 4, &cur) < 0)
		goto out;
	for (rc = md_cursor_seek(cur, prefix, 4, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v)) {
		struct md_mbox_rec rec;

		if (v.len != 4 || k.len <= 4 ||
		    md_rec_mbox_get(t, u->id, md_get32(v.data), &rec) != MD_OK)
			continue;
		if ((e = md_info_add(&list, &n, &cap, (const char *)k.data + 4,
				     k.len - 4)) == NULL)
			goto out;
		e->exists = true;
		e->special_use = rec.special;
	}
	md_cursor_close(cur);
	cur = NULL;
	if (rc < 0)
		goto out;
	if (n > 1)
		qsort(list, n, sizeof(*list), md_info_cmp);
	n_real = n;
	if (md_cursor_open(t, MD_DB_SUBS, prefix, 4, &cur) < 0)
		goto out;
	for (rc = md_cursor_seek(cur, prefix, 4, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v)) {
		struct md_mailbox_info key;
		size_t len = k.len - 4 > MD_MAILBOX_NAME_MAX ? MD_MAILBOX_NAME_MAX :
			     k.len - 4;

		memcpy(key.name, (const char *)k.data + 4, len);
		key.name[len] = '\0';
		e = n_real == 0 ? NULL :
		    bsearch(&key, list, n_real, sizeof(*list), md_info_cmp);
		if (e == NULL &&
		    (e = md_info_add(&list, &n, &cap, key.name, len)) == NULL)
			goto out;
		e->subscribed = true;
	}
	if (rc < 0)
		goto out;
	/* parents that are no mailbox themselves (Maildir++ needs none) */
	for (size_t i = 0, end = n; i < end; i++) {
		char name[MD_MAILBOX_NAME_MAX + 1];
		char *slash;

		if (!list[i].exists)
			continue;
		str_copy(name, list[i].name, sizeof(name));
		while ((slash = strrchr(name, '/')) != NULL) {
			bool found = false;

			*slash = '\0';
			for (size_t j = 0; j < n && !found; j++)
				found = strcmp(list[j].name, name) == 0;
			if (!found && md_info_add(&list, &n, &cap, name,
						  strlen(name)) == NULL)
				goto out;
		}
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), md_info_cmp);
	for (size_t i = 0; i < n; i++) {
		char name[MD_MAILBOX_NAME_MAX + 1];
		char *slash;

		if (!list[i].exists)
			continue;
		str_copy(name, list[i].name, sizeof(name));
		while ((slash = strrchr(name, '/')) != NULL) {
			struct md_mailbox_info key;

			*slash = '\0';
			str_copy(key.name, name, sizeof(key.name));
			e = bsearch(&key, list, n, sizeof(*list), md_info_cmp);
			if (e != NULL)
				e->has_children = true;
		}
	}
	r = MD_OK;
	*list_r = list;
	*n_r = n;
	list = NULL;
out:
	md_cursor_close(cur);
	md_read_end(t);
	free(list);
	return r;
}

/* ---- create / delete ------------------------------------------------------ */

struct md_create_job {
	struct md_user *user;
	const char *name;
	unsigned special;
	bool made;      /* the directory was not there: this call made it */
	uint32_t id_out;
};

static enum md_result md_create_job_run(struct md_txn *t, void *arg)
{
	struct md_create_job *j = arg;
	struct md_mbox_rec rec;
	uint32_t id;
	enum md_result r = md_rec_mbox_id(t, j->user->id, j->name, &id);

	if (r == MD_OK) {
		/* a folder sync indexed the directory this call made: it is
		 * ours, with the special use asked for */
		j->id_out = id;
		if (!j->made)
			return MD_EXISTS;
		if ((j->special & MD_SPECIAL_ALL) == 0)
			return MD_OK;
		if ((r = md_rec_mbox_get(t, j->user->id, id, &rec)) != MD_OK)
			return r;
		rec.special = j->special & MD_SPECIAL_ALL;
		md_txn_touch(t, j->user->id, id);
		return md_rec_mbox_put(t, j->user->id, &rec);
	}
	if (r != MD_NOTFOUND)
		return r;
	memset(&rec, 0, sizeof(rec));
	str_copy(rec.name, j->name, sizeof(rec.name));
	rec.special = j->special & MD_SPECIAL_ALL;
	if ((r = md_rec_mbox_create(t, j->user->address, j->user->id, &rec)) != MD_OK)
		return r;
	j->id_out = rec.id;
	md_txn_touch(t, j->user->id, rec.id);
	return MD_OK;
}

/* Whether the user's index has a mailbox of that (normalised) name */
static enum md_result md_mailbox_known(struct md_user *u, const char *name)
{
	struct md_txn *t;
	uint32_t id;
	enum md_result r = md_read_begin(u->store, &t);

	if (r != MD_OK)
		return r;
	r = md_rec_mbox_id(t, u->id, name, &id);
	md_read_end(t);
	return r;
}

enum md_result md_mailbox_create(struct md_user *u, const char *name,
				 unsigned special_use)
{
	char norm[MD_MAILBOX_NAME_MAX + 1], dir[PATH_MAX];
	struct md_create_job job = { .user = u, .name = norm,
				     .special = special_use };
	struct stat st;
	enum md_result r;

	if ((r = md_mailbox_name_arg(u, name, norm)) != MD_OK)
		return r;
	if (md_name_is_inbox(norm))
		return MD_EXISTS;
	if (md_mailbox_dir(u->root, norm, dir, sizeof(dir)) < 0)
		return MD_LIMIT;
	r = md_mailbox_known(u, norm);
	if (r == MD_OK)
		r = MD_EXISTS;
	if (r != MD_NOTFOUND) {
		if (r == MD_EXISTS)
			md_user_seterr(u, "mailbox already exists");
		return r;
	}
	/* the Maildir, durable, before the index names it */
	job.made = lstat(dir, &st) < 0 && errno == ENOENT;
	if (md_maildir_make(dir, true) < 0) {
		md_user_seterr(u, "%s: %s", dir, strerror(errno));
		return MD_TEMPFAIL;
	}
	r = md_write(u->store, md_create_job_run, &job);
	if (r == MD_EXISTS)
		md_user_seterr(u, "mailbox already exists");
	return r;
}

struct md_delete_job {
	struct md_user *user;
	const char *name;
	uint32_t id;    /* the mailbox moved aside */
	bool replaced;  /* out: the name is another mailbox's by now */
};

static enum md_result md_delete_job_run(struct md_txn *t, void *arg)
{
	struct md_delete_job *j = arg;
	uint32_t id;
	enum md_result r = md_rec_mbox_id(t, j->user->id, j->name, &id);

	/* a RENAME in flight covers the name: not raced */
	if (md_rename_in_flight(t, j->user->id, j->name, false)) {
		md_user_seterr(j->user, "a RENAME of this mailbox is in progress");
		return MD_TEMPFAIL;
	}
	j->replaced = r == MD_OK && id != j->id;
	if (r == MD_NOTFOUND || j->replaced)
		return MD_NOMAILBOX; /* dropped meanwhile (a folder sync ...) */
	if (r != MD_OK)
		return r;
	r = md_rec_mbox_drop(t, j->user->address, j->user->id, id);
	if (r == MD_OK)
		md_txn_touch(t, j->user->id, id);
	return r;
}

enum md_result md_mailbox_delete(struct md_user *u, const char *name)
{
	char norm[MD_MAILBOX_NAME_MAX + 1], trash[PATH_MAX], dir[PATH_MAX];
	struct md_delete_job job = { .user = u, .name = norm };
	struct md_txn *t;
	uint32_t rnd = 0;
	bool moved = false;
	enum md_result r;

	if ((r = md_mailbox_name_arg(u, name, norm)) != MD_OK)
		return r;
	if (md_name_is_inbox(norm)) {
		md_user_seterr(u, "INBOX cannot be deleted");
		return MD_DENIED;
	}
	if (md_mailbox_dir(u->root, norm, dir, sizeof(dir)) < 0)
		return MD_CORRUPT;
	if ((r = md_read_begin(u->store, &t)) != MD_OK)
		return r;
	r = md_rec_mbox_id(t, u->id, norm, &job.id);
	md_read_end(t);
	if (r == MD_NOTFOUND) {
		md_user_seterr(u, "no such mailbox");
		return MD_NOMAILBOX;
	}
	if (r != MD_OK)
		return r;
	random_bytes(&rnd, sizeof(rnd));
	md_pathf(trash, sizeof(trash), "%s/%s%ld.%08x", u->root, MD_TRASH_PREFIX,
		 (long)getpid(), rnd);
	/* out of the Maildir++ tree in one step, durably (a power cut must
	 * not bring the folder back); removed after the commit */
	if (rename(dir, trash) == 0)
		moved = true;
	else if (errno != ENOENT)
		return MD_TEMPFAIL;
	if (moved && md_fsync_dir_shared(u->store, u->root) < 0) {
		md_user_seterr(u, "fsync %s: %s", u->root, strerror(errno));
		rename(trash, dir);
		return MD_TEMPFAIL;
	}
	r = md_write(u->store, md_delete_job_run, &job);
	if (r == MD_NOMAILBOX && moved && !job.replaced)
		r = MD_OK; /* a folder sync saw it go first */
	if (r != MD_OK && moved) {
		rename(trash, dir);
		(void)md_fsync_dir_shared(u->store, u->root);
	}
	if (r == MD_OK) {
		if (moved)
			md_remove_tree(trash);
		md_metadata_deleted(u, norm);
	}
	else if (r == MD_NOMAILBOX)
		md_user_seterr(u, "no such mailbox");
	return r;
}

/* ---- subscriptions, special use ----------------------------------------- */

struct md_sub_job {
	struct md_user *user;
	const char *name;
	bool on;
	bool special;
	unsigned special_use;
};

static enum md_result md_sub_job_run(struct md_txn *t, void *arg)
{
	struct md_sub_job *j = arg;
	struct md_mbox_rec rec;
	enum md_result r;

	if (!j->special)
		return md_rec_subscribe(t, j->user->id, j->name, j->on);
	if ((r = md_rec_mbox_find(t, j->user->id, j->name, &rec)) != MD_OK)
		return r;
	rec.special = j->special_use & MD_SPECIAL_ALL;
	md_txn_touch(t, j->user->id, rec.id);
	return md_rec_mbox_put(t, j->user->id, &rec);
}

#define MD_SUBS_FILE_MAX (256 * 1024) /* the same bound the import reads */

/* Mirror the subscriptions into ROOT/subscriptions in Dovecot's format
 * (version 2: "V\t2", an empty line, one name a line with '\t' between
 * levels), so that other tools see them and a rebuilt index gets them
 * back (md_rebuild.c reads the file).  The index stays the truth: a
 * failure here is logged, not returned. */
void md_mailbox_subs_mirror(struct md_user *u)
{
	struct md_mailbox_info *list = NULL;
	char path[PATH_MAX];
	struct buf b;
	size_t n = 0;
	int bad;

	if (md_mailbox_list(u, &list, &n) != MD_OK)
		return;
	buf_init(&b, MD_SUBS_FILE_MAX);
	bad = buf_append(&b, "V\t2\n\n", 5);
	for (size_t i = 0; i < n && bad == 0; i++) {
		if (!list[i].subscribed)
			continue;
		for (const char *c = list[i].name; *c != '\0' && bad == 0; c++)
			bad = buf_putc(&b, *c == '/' ? '\t' : *c);
		bad = bad == 0 ? buf_putc(&b, '\n') : bad;
	}
	free(list);
	if (bad != 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s/subscriptions", u->root) >= sizeof(path) ||
	    write_file_atomic(path, b.data, b.len, 0600) < 0)
		log_warn("store: user=%s cannot write %s/subscriptions", u->address, u->root);
	buf_free(&b);
}

enum md_result md_mailbox_subscribe(struct md_user *u, const char *name,
				    bool subscribe)
{
	char norm[MD_MAILBOX_NAME_MAX + 1];
	struct md_sub_job job = { .user = u, .name = norm, .on = subscribe };
	enum md_result r = md_mailbox_name_arg(u, name, norm);

	if (r == MD_OK && (r = md_write(u->store, md_sub_job_run, &job)) == MD_OK)
		md_mailbox_subs_mirror(u);
	return r;
}

enum md_result md_mailbox_set_special(struct md_user *u, const char *name,
				      unsigned special_use)
{
	char norm[MD_MAILBOX_NAME_MAX + 1];
	struct md_sub_job job = { .user = u, .name = norm, .special = true,
				  .special_use = special_use };
	enum md_result r = md_mailbox_name_arg(u, name, norm);

	return r != MD_OK ? r : md_write(u->store, md_sub_job_run, &job);
}

/* ---- status and the open mailbox ---------------------------------------- */

/* Find a mailbox by name (looking for new folder directories once), bring
 * it up to date with its directories, and read its record. */
static enum md_result md_mailbox_lookup(struct md_user *u, const char *name,
					struct md_mbox_rec *rec_r)
{
	char norm[MD_MAILBOX_NAME_MAX + 1];
	struct md_txn *t;
	enum md_result r = md_mailbox_name_arg(u, name, norm);

	if (r != MD_OK)
		return r;
	for (int attempt = 0; attempt < 3; attempt++) {
		if ((r = md_read_begin(u->store, &t)) != MD_OK)
			return r;
		r = md_rec_mbox_find(t, u->id, norm, rec_r);
		md_read_end(t);
		if (r == MD_NOMAILBOX && attempt == 0) {
			md_sync_folders(u, false);
			continue;
		}
		if (r != MD_OK)
			break;
		r = md_sync_mailbox(u, rec_r->id, false);
		if (r == MD_CORRUPT && attempt < 2) {
			char err[256];
			uint32_t id;

			log_warn("store: user=%s mailbox=%s index damaged, rebuilding",
				 u->address, norm);
			md_sync_user_index(u->store, u->address, u->root, false, true,
					   &id, err, sizeof(err));
			continue;
		}
		if (r != MD_OK)
			break;
		if ((r = md_read_begin(u->store, &t)) != MD_OK)
			return r;
		r = md_rec_mbox_get(t, u->id, rec_r->id, rec_r);
		md_read_end(t);
		if (r == MD_NOTFOUND)
			r = MD_NOMAILBOX;
		break;
	}
	if (r == MD_NOMAILBOX)
		md_user_seterr(u, "no such mailbox");
	return r;
}

static uint32_t md_kw_count(struct md_user *u, uint32_t mbox)
{
	struct md_kwtab tab;
	struct md_txn *t;
	uint32_t n = 0;

	if (md_read_begin(u->store, &t) != MD_OK)
		return 0;
	if (md_kw_load(t, u->id, mbox, &tab) == MD_OK) {
		n = (uint32_t)tab.n;
		md_kw_free(&tab);
	}
	md_read_end(t);
	return n;
}

enum md_result md_mailbox_status(struct md_user *u, const char *name,
				 struct md_status *status_r)
{
	struct md_mbox_rec rec;
	enum md_result r = md_mailbox_lookup(u, name, &rec);

	if (r == MD_OK) {
		md_status_from_rec(&rec, status_r);
		status_r->n_keywords = md_kw_count(u, rec.id);
	}
	return r;
}

/* RFC 9208 §4.2 STATUS DELETED-STORAGE: the mailbox's counters do not
 * keep the size of \Deleted messages, so the records are read (one
 * cursor over the mailbox, no file opened); only asked for by STATUS. */
enum md_result md_mailbox_deleted_size(struct md_user *u, const char *name,
				       uint64_t *bytes_r)
{
	struct md_mbox_rec rec;
	unsigned char key[12];
	struct md_cursor *cur;
	struct md_val k, v;
	struct md_txn *t;
	enum md_result r = md_mailbox_lookup(u, name, &rec);
	int rc;

	*bytes_r = 0;
	if (r != MD_OK)
		return r;
	if ((r = md_read_begin(u->store, &t)) != MD_OK)
		return r;
	if (md_cursor_open(t, MD_DB_MSG, key, md_key_mbox(key, u->id, rec.id), &cur) < 0) {
		md_read_end(t);
		return MD_TEMPFAIL;
	}
	md_key_msg(key, u->id, rec.id, 1);
	for (rc = md_cursor_seek(cur, key, sizeof(key), &k, &v); rc == 0 && r == MD_OK;
	     rc = md_cursor_next(cur, &k, &v)) {
		struct md_msg_rec m;

		if ((r = md_rec_msg_decode(&k, &v, &m)) != MD_OK)
			break;
		if (md_letters_to_flags(m.letters) & MD_FLAG_DELETED)
			*bytes_r += m.size;
	}
	if (rc < 0)
		r = MD_TEMPFAIL;
	md_cursor_close(cur);
	md_read_end(t);
	return r;
}

enum md_result md_mailbox_open(struct md_user *u, const char *name,
			       struct md_mailbox **mb_r, struct md_status *status_r)
{
	struct md_mbox_rec rec;
	struct md_mailbox *mb;
	enum md_result r = md_mailbox_lookup(u, name, &rec);

	*mb_r = NULL;
	if (r != MD_OK)
		return r;
	if ((mb = calloc(1, sizeof(*mb))) == NULL)
		return MD_TEMPFAIL;
	mb->user = u;
	mb->id = rec.id;
	mb->uidvalidity = rec.uidvalidity;
	if (status_r != NULL) {
		md_status_from_rec(&rec, status_r);
		status_r->n_keywords = md_kw_count(u, rec.id);
	}
	*mb_r = mb;
	return MD_OK;
}

void md_mailbox_close(struct md_mailbox *mb)
{
	free(mb);
}

void md_mailbox_ids(const struct md_mailbox *mb, uint32_t *user_id_r,
		    uint32_t *mailbox_id_r)
{
	*user_id_r = mb->user->id;
	*mailbox_id_r = mb->id;
}

enum md_result md_mailbox_sync(struct md_mailbox *mb, struct md_status *status_r)
{
	struct md_mbox_rec rec;
	struct md_txn *t;
	enum md_result r = md_sync_mailbox(mb->user, mb->id, false);

	if (r != MD_OK)
		return r;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(mb->user, t, mb->id, &rec, NULL, 0);
	md_read_end(t);
	if (r != MD_OK)
		return r;
	if (rec.uidvalidity != mb->uidvalidity)
		return MD_NOMAILBOX;
	if (status_r != NULL) {
		md_status_from_rec(&rec, status_r);
		status_r->n_keywords = md_kw_count(mb->user, mb->id);
	}
	return MD_OK;
}

enum md_result md_mailbox_uids(struct md_mailbox *mb, uint32_t **uids_r,
			       size_t *n_r)
{
	struct md_mbox_rec rec;
	struct md_txn *t;
	enum md_result r;

	*uids_r = NULL;
	*n_r = 0;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(mb->user, t, mb->id, &rec, NULL, 0);
	if (r == MD_OK)
		r = md_uids_read(t, mb->user->id, mb->id, rec.messages, uids_r, n_r);
	md_read_end(t);
	return r;
}

enum md_result md_mailbox_expunged(struct md_mailbox *mb, uint64_t since,
				   uint32_t **uids_r, size_t *n_r, bool *pruned_r)
{
	struct md_mbox_rec rec;
	struct md_txn *t;
	bool pruned = false;
	enum md_result r;

	*uids_r = NULL;
	*n_r = 0;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(mb->user, t, mb->id, &rec, NULL, 0);
	if (r == MD_OK)
		r = md_explog_read(t, mb->user->id, mb->id, since, uids_r, n_r, &pruned);
	md_read_end(t);
	if (pruned_r != NULL)
		*pruned_r = pruned;
	return r;
}

enum md_result md_mailbox_keywords(struct md_mailbox *mb, char ***names_r,
				   size_t *n_r)
{
	struct md_txn *t;
	enum md_result r;

	*names_r = NULL;
	*n_r = 0;
	if ((r = md_read_begin(mb->user->store, &t)) != MD_OK)
		return r;
	r = md_kw_names(t, mb->user->id, mb->id, names_r, n_r);
	md_read_end(t);
	return r;
}

void md_mailbox_keywords_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}
