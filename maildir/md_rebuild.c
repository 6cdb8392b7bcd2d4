/* A user's index as a whole: the first indexing of a Maildir (new user,
 * migrated Dovecot Maildir, or a lost index), `postern reindex`, and the
 * folder list kept in step with the folder directories.
 *
 * The first indexing creates the user record and one mailbox record per
 * folder directory; messages are indexed by the first sync of each mailbox
 * (md_sync.c).  While the Maildir has no postern-indexed marker, its
 * dovecot-uidlist files are trusted: the mailboxes keep Dovecot's
 * UIDVALIDITY and UIDNEXT and are flagged MD_MBOX_IMPORT so their first
 * sync keeps the UIDs and keywords.  Once indexed, the marker is written and
 * a later rebuild gives new UIDVALIDITYs: our UIDs of messages that came
 * after the import are not in dovecot-uidlist, so reusing its UIDVALIDITY
 * could show a client a different message under a UID it cached.  The
 * POP3 UIDLs of the messages it lists do stay (MD_MBOX_DCUIDL): they
 * depend on nothing we assign.
 */
#include "md_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const struct {
	const char *name;
	unsigned special;
} md_defaults[] = {
	{ "Sent", MD_SPECIAL_SENT },   { "Drafts", MD_SPECIAL_DRAFTS },
	{ "Trash", MD_SPECIAL_TRASH }, { "Junk", MD_SPECIAL_JUNK },
	{ "Archive", MD_SPECIAL_ARCHIVE },
};

#define MD_N_DEFAULTS (sizeof(md_defaults) / sizeof(md_defaults[0]))

static unsigned md_default_special(const char *name)
{
	for (size_t i = 0; i < MD_N_DEFAULTS; i++)
		if (strcmp(name, md_defaults[i].name) == 0)
			return md_defaults[i].special;
	return 0;
}

/* The mailbox names of a user in the index, sorted. */
static enum md_result md_index_names(struct md_txn *t, uint32_t user,
				     char ***names_r, uint32_t **ids_r, size_t *n_r)
{
	unsigned char prefix[4];
	struct md_cursor *cur;
	struct md_val k, v;
	char **names = NULL;
	uint32_t *ids = NULL;
	size_t n = 0;
	int rc;

	md_put32(prefix, user);
	if (md_cursor_open(t, MD_DB_MBOXNAME, prefix, 4, &cur) < 0)
		return MD_TEMPFAIL;
	for (rc = md_cursor_seek(cur, prefix, 4, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v)) {
		char **nn;
		uint32_t *ni;

		if (v.len != 4 || k.len <= 4 || k.len > 4 + MD_MAILBOX_NAME_MAX)
			continue;
		nn = realloc(names, (n + 1) * sizeof(*nn));
		if (nn != NULL)
			names = nn;
		ni = realloc(ids, (n + 1) * sizeof(*ni));
		if (ni != NULL)
			ids = ni;
		if (nn == NULL || ni == NULL ||
		    (names[n] = strndup((const char *)k.data + 4, k.len - 4)) == NULL) {
			rc = -1;
			break;
		}
		ids[n++] = md_get32(v.data);
	}
	md_cursor_close(cur);
	if (rc < 0) {
		md_sync_names_free(names, n);
		free(ids);
		return MD_TEMPFAIL;
	}
	*names_r = names;
	*n_r = n;
	if (ids_r != NULL)
		*ids_r = ids;
	else
		free(ids);
	return MD_OK;
}

/* ---- the folder list --------------------------------------------------- */

struct md_folders_job {
	struct md_user *user;
	char **add;
	size_t n_add;
	char **del;
	size_t n_del;
	int64_t root_mtime;
};

static enum md_result md_folders_job_run(struct md_txn *t, void *arg)
{
	struct md_folders_job *j = arg;
	struct md_user *u = j->user;
	struct md_user_rec urec;
	bool unsettled = false; /* names left to a RENAME in flight */
	enum md_result r;

	for (size_t i = 0; i < j->n_add; i++) {
		struct md_mbox_rec rec;
		char dir[PATH_MAX];
		struct stat st;

		/* deleted since it was listed (DELETE moves it aside before
		 * its job): not brought back as an empty mailbox; renamed
		 * (md_rename.c) but not yet recorded: not a new mailbox */
		if (md_mailbox_dir(u->root, j->add[i], dir, sizeof(dir)) < 0 ||
		    stat(dir, &st) < 0)
			continue;
		if (md_rename_in_flight(t, u->id, j->add[i], true)) {
			unsettled = true;
			continue;
		}
		memset(&rec, 0, sizeof(rec));
		str_copy(rec.name, j->add[i], sizeof(rec.name));
		r = md_rec_mbox_create(t, u->address, u->id, &rec);
		if (r == MD_EXISTS)
			continue;
		/* a folder made with mutt or a shell shows up in clients */
		if (r != MD_OK || (r = md_rec_subscribe(t, u->id, rec.name, true)) != MD_OK)
			return r;
		md_txn_touch(t, u->id, rec.id);
	}
	for (size_t i = 0; i < j->n_del; i++) {
		char dir[PATH_MAX];
		struct stat st;
		uint32_t id;

		if (md_mailbox_dir(u->root, j->del[i], dir, sizeof(dir)) < 0 ||
		    stat(dir, &st) == 0)
			continue;
		if (md_rename_in_flight(t, u->id, j->del[i], true)) {
			unsettled = true;
			continue;
		}
		r = md_rec_mbox_id(t, u->id, j->del[i], &id);
		if (r == MD_NOTFOUND)
			continue;
		if (r != MD_OK || (r = md_rec_mbox_drop(t, u->address, u->id, id)) != MD_OK)
			return r;
		md_txn_touch(t, u->id, id);
	}
	if ((r = md_rec_user_get(t, u->address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	urec.root_mtime = unsettled ? 0 : j->root_mtime; /* 0: look again */
	return md_rec_user_put(t, u->address, &urec);
}

enum md_result md_sync_folders(struct md_user *u, bool force)
{
	struct md_folders_job job;
	struct md_user_rec urec;
	struct md_txn *t;
	char **disk = NULL, **idx = NULL;
	size_t n_disk = 0, n_idx = 0, a = 0, b = 0;
	int64_t mtime;
	enum md_result r;

	if (md_dir_mtime(u->root, &mtime) < 0) {
		md_user_seterr(u, "%s: %s", u->root, strerror(errno));
		return errno == ENOENT ? MD_NOUSER : MD_TEMPFAIL;
	}
	if ((r = md_read_begin(u->store, &t)) != MD_OK)
		return r;
	r = md_rec_user_get(t, u->address, &urec);
	if (r == MD_OK && (force || urec.root_mtime == 0 || urec.root_mtime != mtime))
		r = md_index_names(t, u->id, &idx, NULL, &n_idx);
	else if (r == MD_OK)
		r = MD_EXISTS; /* nothing to do */
	md_read_end(t);
	if (r == MD_EXISTS)
		return MD_OK;
	if (r != MD_OK)
		return r == MD_NOTFOUND ? MD_NOUSER : r;
	if (md_sync_list_folders(u->root, &disk, &n_disk) < 0) {
		md_sync_names_free(idx, n_idx);
		return MD_TEMPFAIL;
	}
	memset(&job, 0, sizeof(job));
	job.user = u;
	job.root_mtime = md_mtime_to_store(mtime);
	job.add = calloc(n_disk + 1, sizeof(char *));
	job.del = calloc(n_idx + 1, sizeof(char *));
	if (job.add == NULL || job.del == NULL) {
		r = MD_TEMPFAIL;
		goto out;
	}
	while (a < n_disk || b < n_idx) {
		int c = a == n_disk ? 1 : b == n_idx ? -1 : strcmp(disk[a], idx[b]);

		if (c < 0) {
			job.add[job.n_add++] = disk[a++];
		} else if (c > 0) {
			if (strcmp(idx[b], "INBOX") != 0)
				job.del[job.n_del++] = idx[b];
			b++;
		} else {
			a++;
			b++;
		}
	}
	if (job.n_add > 0 || job.n_del > 0 || job.root_mtime != urec.root_mtime)
		r = md_write(u->store, md_folders_job_run, &job);
out:
	free(job.add);
	free(job.del);
	md_sync_names_free(disk, n_disk);
	md_sync_names_free(idx, n_idx);
	return r;
}

/* ---- first indexing and rebuilds ------------------------------------------ */

#define MD_DCSUBS_MAX (256 * 1024) /* octets of a Dovecot subscriptions file */

/* Dovecot's subscriptions file at the Maildir's root: "V\t2" and an empty
 * line, then one name a line with '\t' as hierarchy separator (version
 * 2); or, from older versions, names only, with the namespace separator
 * (Maildir++'s '.').  -1 when there is no such file; names that are not
 * valid here are left out. */
static int md_dovecot_subs(const char *root, char ***names_r, size_t *n_r)
{
	char path[PATH_MAX], *text, *save = NULL;
	size_t len, n = 0;
	char **names;
	bool v2;

	*names_r = NULL;
	*n_r = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/subscriptions", root) >=
	    sizeof(path) || read_small_file(path, MD_DCSUBS_MAX, &text, &len) < 0)
		return -1;
	if ((names = calloc(len / 2 + 1, sizeof(char *))) == NULL) {
		free(text);
		return -1;
	}
	v2 = strncmp(text, "V\t", 2) == 0;
	for (char *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		char norm[MD_MAILBOX_NAME_MAX + 1];

		if (v2 && l == text)
			continue; /* the version line */
		for (char *c = l; *c != '\0'; c++)
			if (*c == (v2 ? '\t' : '.'))
				*c = '/';
		if (md_mailbox_name_norm(l, norm, sizeof(norm)) != MD_OK)
			continue;
		if ((names[n] = strdup(norm)) == NULL)
			break;
		n++;
	}
	free(text);
	*names_r = names;
	*n_r = n;
	return 0;
}

struct md_uidx_job {
	const char *address;
	bool rebuild;
	bool import;
	char **names;
	size_t n;
	uint32_t *uv, *uidnext;
	bool *dcuidl;  /* a rebuild: the folder has a dovecot-uidlist */
	bool *fresh;   /* the folder did not exist before this indexing */
	char **subs;   /* Dovecot's subscriptions (import only), or NULL */
	size_t n_subs;
	uint32_t id_out;
	bool existed_out;
	uint32_t dropped_out;
};

static enum md_result md_uidx_job_run(struct md_txn *t, void *arg)
{
	struct md_uidx_job *j = arg;
	struct md_user_rec urec;
	enum md_result r = md_rec_user_get(t, j->address, &urec);

	j->existed_out = false;
	j->dropped_out = 0;
	if (r == MD_OK && !j->rebuild) {
		j->id_out = urec.id; /* another process was first */
		j->existed_out = true;
		return MD_OK;
	}
	if (r == MD_OK) {
		char **names;
		uint32_t *ids;
		size_t n;

		if ((r = md_index_names(t, urec.id, &names, &ids, &n)) != MD_OK)
			return r;
		for (size_t i = 0; i < n && r == MD_OK; i++)
			r = md_rec_mbox_drop(t, j->address, urec.id, ids[i]);
		md_sync_names_free(names, n);
		free(ids);
		if (r != MD_OK || (r = md_rec_user_get(t, j->address, &urec)) != MD_OK)
			return r;
		j->dropped_out = (uint32_t)n;
		urec.used_bytes = urec.used_messages = 0;
		urec.root_mtime = 0;
		j->existed_out = true;
	} else if (r == MD_NOTFOUND || r == MD_CORRUPT) {
		memset(&urec, 0, sizeof(urec));
		if ((r = md_rec_new_user_id(t, &urec.id)) != MD_OK)
			return r;
		urec.next_mailbox_id = 1;
	} else {
		return r;
	}
	if ((r = md_rec_user_put(t, j->address, &urec)) != MD_OK)
		return r;
	for (size_t i = 0; i < j->n; i++) {
		struct md_mbox_rec rec;

		memset(&rec, 0, sizeof(rec));
		str_copy(rec.name, j->names[i], sizeof(rec.name));
		rec.special = md_default_special(rec.name);
		rec.uidvalidity = j->uv[i];
		rec.uidnext = j->uidnext[i];
		rec.flags = j->import ? MD_MBOX_IMPORT :
			    j->dcuidl[i] ? MD_MBOX_DCUIDL : 0;
		r = md_rec_mbox_create(t, j->address, urec.id, &rec);
		if (r == MD_EXISTS)
			continue;
		if (r != MD_OK)
			return r;
		/* a rebuild keeps the user's subscriptions; else all shown
		 * (but Dovecot's choice for the folders it had) */
		if (!j->existed_out && (j->subs == NULL || j->fresh[i]) &&
		    (r = md_rec_subscribe(t, urec.id, rec.name, true)) != MD_OK)
			return r;
	}
	for (size_t i = 0; !j->existed_out && i < j->n_subs; i++)
		if ((r = md_rec_subscribe(t, urec.id, j->subs[i], true)) != MD_OK)
			return r;
	j->id_out = urec.id;
	return MD_OK;
}

enum md_result md_sync_user_index(struct md_store *store, const char *address,
				  const char *root, bool create, bool rebuild,
				  uint32_t *id_r, char *err, size_t errlen)
{
	struct md_uidx_job job;
	struct stat st;
	char marker[PATH_MAX], dir[PATH_MAX], **folders = NULL;
	size_t n_folders = 0;
	unsigned fresh_defaults = 0;
	bool created = false, have_marker;
	enum md_result r = MD_TEMPFAIL;

	memset(&job, 0, sizeof(job));
	if (stat(root, &st) < 0) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", root, strerror(errno));
			return MD_TEMPFAIL;
		}
		if (!create)
			return MD_NOUSER;
		if (mkdir_p_durable(root, 0700) < 0) {
			snprintf(err, errlen, "%s: %s", root, strerror(errno));
			return MD_TEMPFAIL;
		}
		created = true;
	}
	if ((size_t)snprintf(marker, sizeof(marker), "%s/%s", root, MD_MARKER_FILE) >=
	    sizeof(marker)) {
		snprintf(err, errlen, "%s: path too long", root);
		return MD_TEMPFAIL;
	}
	have_marker = access(marker, F_OK) == 0;
	job.import = !have_marker && !created;
	if (job.import)
		md_dovecot_subs(root, &job.subs, &job.n_subs);
	/* INBOX and the special-use folders every user has (RFC 6154) */
	if (md_maildir_make(root, false) < 0)
		goto io_fail;
	for (size_t i = 0; i < MD_N_DEFAULTS; i++) {
		if (md_mailbox_dir(root, md_defaults[i].name, dir, sizeof(dir)) < 0)
			goto io_fail;
		if (stat(dir, &st) < 0)
			fresh_defaults |= 1u << i;
		if (md_maildir_make(dir, true) < 0)
			goto io_fail;
	}
	if (md_sync_list_folders(root, &folders, &n_folders) < 0)
		goto io_fail;

	job.address = address;
	job.rebuild = rebuild;
	job.n = n_folders + 1;
	job.names = calloc(job.n, sizeof(char *));
	job.uv = calloc(job.n, sizeof(uint32_t));
	job.uidnext = calloc(job.n, sizeof(uint32_t));
	job.dcuidl = calloc(job.n, sizeof(bool));
	job.fresh = calloc(job.n, sizeof(bool));
	if (job.names == NULL || job.uv == NULL || job.uidnext == NULL ||
	    job.dcuidl == NULL || job.fresh == NULL)
		goto out;
	job.names[0] = (char *)"INBOX";
	for (size_t i = 0; i < n_folders; i++) {
		job.names[i + 1] = folders[i];
		for (size_t k = 0; k < MD_N_DEFAULTS; k++)
			if ((fresh_defaults & (1u << k)) &&
			    strcmp(folders[i], md_defaults[k].name) == 0)
				job.fresh[i + 1] = true;
	}
	for (size_t i = 0; job.import && i < job.n; i++) {
		if (md_mailbox_dir(root, job.names[i], dir, sizeof(dir)) == 0 &&
		    md_sync_dovecot_header(dir, &job.uv[i], &job.uidnext[i]) == 0)
			log_info("store: user=%s mailbox=%s importing dovecot-uidlist "
				 "uidvalidity=%u", address, job.names[i], job.uv[i]);
	}
	/* A rebuilt Maildir that came from Dovecot: new UIDs (see above), but
	 * the messages Dovecot knew keep the POP3 UIDLs it gave them, which
	 * POP3 clients remember for good */
	for (size_t i = 0; !job.import && i < job.n; i++) {
		uint32_t uv, uidnext;

		if (md_mailbox_dir(root, job.names[i], dir, sizeof(dir)) == 0 &&
		    md_sync_dovecot_header(dir, &uv, &uidnext) == 0)
			job.dcuidl[i] = true;
	}
	r = md_write(store, md_uidx_job_run, &job);
	if (r != MD_OK) {
		snprintf(err, errlen, "indexing %s: %s", root, md_result_name(r));
		goto out;
	}
	*id_r = job.id_out;
	if (!have_marker) {
		static const char text[] = "This Maildir is indexed by postern "
			"(its dovecot-uidlist files are no longer read).\n";

		if (write_file_atomic(marker, text, sizeof(text) - 1, 0600) < 0)
			log_warn("store: %s: %s", marker, strerror(errno));
	}
	if (rebuild)
		log_info("store: user=%s index rebuilt from the Maildir "
			 "(%u mailboxes dropped, new UIDVALIDITY)", address,
			 job.dropped_out);
	else if (job.existed_out)
		; /* another process indexed it first */
	else if (have_marker)
		log_warn("store: user=%s index missing, rebuilt from the Maildir "
			 "with new UIDVALIDITY", address);
	else if (!created)
		log_info("store: user=%s Maildir indexed for the first time", address);
	goto out;
io_fail:
	snprintf(err, errlen, "%s: %s", root, strerror(errno));
out:
	free(job.names);
	free(job.uv);
	free(job.uidnext);
	free(job.dcuidl);
	free(job.fresh);
	md_sync_names_free(job.subs, job.n_subs);
	md_sync_names_free(folders, n_folders);
	return r;
}

/* ---- POP3 UIDLs kept across a reindex ---------------------------------- */

static int md_carry_cmp(const void *a, const void *b)
{
	const struct md_uidl_carry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->base, y->base);
}

const char *md_carry_uidl(const struct md_user *u, const char *name,
			  const char *base, size_t blen)
{
	char b[MD_FILENAME_MAX + 1];
	struct md_uidl_carry key;
	const struct md_uidl_carry *hit;

	if (u->n_carry == 0 || blen > MD_FILENAME_MAX)
		return NULL;
	memcpy(b, base, blen);
	b[blen] = '\0';
	key.name = (char *)name;
	key.base = b;
	hit = bsearch(&key, u->carry, u->n_carry, sizeof(key), md_carry_cmp);
	return hit != NULL ? hit->uidl : NULL;
}

static void md_carry_free(struct md_uidl_carry *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].name);
	free(c);
}

/* The imported UIDLs (v3 records) of every mailbox of user id, so that a
 * rebuild keeps them even when dovecot-uidlist is gone. */
static enum md_result md_carry_collect(struct md_store *store, uint32_t user,
				       struct md_uidl_carry **c_r, size_t *n_r)
{
	struct md_uidl_carry *c = NULL;
	size_t n = 0, cap = 0, n_names = 0;
	char **names = NULL;
	uint32_t *ids = NULL;
	struct md_txn *t;
	enum md_result r;

	*c_r = NULL;
	*n_r = 0;
	if ((r = md_read_begin(store, &t)) != MD_OK)
		return r;
	r = md_index_names(t, user, &names, &ids, &n_names);
	for (size_t i = 0; r == MD_OK && i < n_names; i++) {
		unsigned char prefix[8];
		struct md_cursor *cur;
		struct md_val k, v;
		int rc;

		if (md_cursor_open(t, MD_DB_MSG, prefix,
				   md_key_mbox(prefix, user, ids[i]), &cur) < 0) {
			r = MD_TEMPFAIL;
			break;
		}
		for (rc = md_cursor_seek(cur, prefix, 8, &k, &v); rc == 0;
		     rc = md_cursor_next(cur, &k, &v)) {
			struct md_msg_rec rec;
			size_t nl, bl, ul;

			if (md_rec_msg_decode(&k, &v, &rec) != MD_OK || rec.uidl[0] == '\0')
				continue; /* a damaged record is what a rebuild is for */
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct md_uidl_carry *nc = realloc(c, ncap * sizeof(*nc));

				if (nc == NULL) {
					rc = -1;
					break;
				}
				c = nc;
				cap = ncap;
			}
			nl = strlen(names[i]);
			bl = strcspn(rec.fname, ":");
			ul = strlen(rec.uidl);
			if ((c[n].name = malloc(nl + bl + ul + 3)) == NULL) {
				rc = -1;
				break;
			}
			memcpy(c[n].name, names[i], nl + 1);
			c[n].base = c[n].name + nl + 1;
			memcpy(c[n].base, rec.fname, bl);
			c[n].base[bl] = '\0';
			c[n].uidl = c[n].base + bl + 1;
			memcpy(c[n].uidl, rec.uidl, ul + 1);
			n++;
		}
		md_cursor_close(cur);
		if (rc < 0)
			r = MD_TEMPFAIL;
	}
	md_read_end(t);
	md_sync_names_free(names, n_names);
	free(ids);
	if (r != MD_OK) {
		md_carry_free(c, n);
		return r;
	}
	if (n > 1)
		qsort(c, n, sizeof(*c), md_carry_cmp);
	*c_r = c;
	*n_r = n;
	return MD_OK;
}

enum md_result md_user_reindex(struct md_store *store, const char *address,
			       char *err, size_t errlen)
{
	char norm[MD_ADDRESS_MAX + 1], root[PATH_MAX], **names = NULL;
	uint32_t id, *ids = NULL;
	size_t n = 0, n_carry = 0;
	struct md_uidl_carry *carry = NULL;
	struct md_user *u;
	struct md_txn *t;
	enum md_result r;

	err[0] = '\0';
	r = md_user_root(store, address, norm, sizeof(norm), root, sizeof(root));
	if (r != MD_OK) {
		snprintf(err, errlen, "%s: not a usable address", address);
		return r;
	}
	/* the POP3 UIDLs imported from Dovecot outlive the old index */
	{
		struct md_user_rec urec;

		if ((r = md_read_begin(store, &t)) != MD_OK)
			return r;
		r = md_rec_user_get(t, norm, &urec);
		md_read_end(t);
		if (r == MD_OK)
			r = md_carry_collect(store, urec.id, &carry, &n_carry);
		else
			r = MD_OK; /* no index yet, or a damaged user record */
		if (r != MD_OK) {
			snprintf(err, errlen, "%s: reading the old index: %s", address,
				 md_result_name(r));
			return r;
		}
	}
	r = md_sync_user_index(store, norm, root, false, true, &id, err, errlen);
	if (r != MD_OK) {
		if (r == MD_NOUSER)
			snprintf(err, errlen, "%s: no Maildir at %s", address, root);
		md_carry_free(carry, n_carry);
		return r;
	}
	if ((r = md_user_open(store, norm, 0, &u)) != MD_OK) {
		snprintf(err, errlen, "%s: %s", address, md_result_name(r));
		md_carry_free(carry, n_carry);
		return r;
	}
	u->carry = carry;
	u->n_carry = n_carry;
	if ((r = md_read_begin(store, &t)) == MD_OK) {
		r = md_index_names(t, u->id, &names, &ids, &n);
		md_read_end(t);
	}
	/* index the messages now, not at the first login */
	for (size_t i = 0; r == MD_OK && i < n; i++) {
		r = md_sync_mailbox(u, ids[i], true);
		if (r != MD_OK)
			snprintf(err, errlen, "%s: mailbox %s: %s", address, names[i],
				 md_user_error(u));
	}
	md_sync_names_free(names, n);
	free(ids);
	md_user_close(u);
	md_carry_free(carry, n_carry);
	return r;
}
