/* Sync with outside changes, the first indexing of a Maildir, rebuilds, and
 * the Dovecot import.
 *
 * The Maildir is the truth about which messages exist and about their
 * flags (the ":2," suffix); the index follows it, never the other way.
 * A mailbox is rescanned when the mtime (ns) of its new/ or cur/ differs
 * from the one stored at the last scan.  Directory times come from a
 * coarse clock, so a scan of a directory changed within MD_MTIME_DIRTY_NS
 * stores 0 and the next access scans again.
 *
 * The scan lists the directories without any lock, reads and prepares
 * what it found, then one write job per batch reconciles under LMDB's
 * write lock, re-checking each finding against the index and the files
 * (stat), because other sessions and processes change the same Maildir
 * meanwhile.  No file is renamed, listed or fsynced inside the job
 * (DESIGN.md):
 *   - a file whose base name is not indexed gets the next UID, unless a
 *     delivery or another scan indexed it first (base name index);
 *   - a file whose name changed gets the flags of its new name;
 *   - an indexed file that is gone from both directories (listed a second
 *     time just before the job, so that a rename during the first listing
 *     is not taken for an expunge) is expunged with a new mod-sequence.
 * A file with bare LF line endings (mutt, Dovecot) is rewritten with CRLF
 * under its own name first (a copy renamed over it before the job), so
 * IMAP byte counts hold (store.h).
 *
 * Durability as for deliveries (md_deliver.c): the directory of a file
 * found is fsynced after the listing (and after the rename of a CRLF copy
 * over it) and before the job that indexes it.  A file that could not be
 * read now (I/O error) leaves its directory's stored mtime at 0, so the
 * next access looks again.
 *
 * The first sync of a mailbox flagged MD_MBOX_IMPORT takes UIDs, POP3
 * UIDLs and keywords from Dovecot's files (md_dovecot.c); one flagged
 * MD_MBOX_DCUIDL (rebuilt) takes the POP3 UIDLs only.
 */
#include "md_private.h"
#include "md_keywords.h"

#include <dirent.h>
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

#define MD_META_PACKED_MAX (16 * 1024 * 1024)
#define MD_FOLDERS_MAX 10000              /* folders listed per user */

enum md_result md_sync_meta(const void *data, size_t len, struct buf *packed,
			    uint64_t *pop3_size_r)
{
	struct md_meta meta;

	*pop3_size_r = md_pop3_size(len > 0 ? data : "", len);
	memset(&meta, 0, sizeof(meta));
	if (md_meta_compute(len > 0 ? data : "", len, &meta) < 0)
		return MD_TEMPFAIL;
	buf_init(packed, MD_META_PACKED_MAX);
	if (md_meta_pack(&meta, packed) < 0) {
		md_meta_free(&meta);
		buf_free(packed);
		return MD_TEMPFAIL;
	}
	md_meta_free(&meta);
	return MD_OK;
}

/* ---- directory listings ----------------------------------------------- */

struct md_entry {
	char *fname;
	size_t blen;
	bool in_new;
};

static int md_entry_cmp(const void *a, const void *b)
{
	const struct md_entry *x = a, *y = b;
	size_t n = x->blen < y->blen ? x->blen : y->blen;
	int c = memcmp(x->fname, y->fname, n);

	return c != 0 ? c : (x->blen > y->blen) - (x->blen < y->blen);
}

static void md_entries_free(struct md_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].fname);
	free(e);
}

static struct md_entry *md_entry_find(struct md_entry *e, size_t n,
				      const char *fname)
{
	struct md_entry key = { (char *)fname, 0, false };
	uint32_t letters;
	uint64_t kw[MD_KW_WORDS];

	if (n == 0)
		return NULL; /* e may be NULL: bsearch wants an array */
	md_fname_parse(fname, &key.blen, &letters, kw);
	return bsearch(&key, e, n, sizeof(*e), md_entry_cmp);
}

static int md_list_sub(const char *dir, bool in_new, struct md_entry **e,
		       size_t *n, size_t *cap)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
			     in_new ? "new" : "cur") >= sizeof(path))
		return -1;
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		uint32_t letters;
		uint64_t kw[MD_KW_WORDS];
		struct stat st;

		if (de->d_name[0] == '.' || strlen(de->d_name) > MD_FILENAME_MAX)
			continue;
		if (de->d_type != DT_REG &&
		    (de->d_type != DT_UNKNOWN ||
		     fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		     !S_ISREG(st.st_mode)))
			continue; /* no symlinks: never serve a file outside */
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			struct md_entry *ne = realloc(*e, ncap * sizeof(*ne));

			if (ne == NULL)
				goto fail;
			*e = ne;
			*cap = ncap;
		}
		(*e)[*n].fname = strdup(de->d_name);
		if ((*e)[*n].fname == NULL)
			goto fail;
		md_fname_parse(de->d_name, &(*e)[*n].blen, &letters, kw);
		(*e)[*n].in_new = in_new;
		(*n)++;
	}
	closedir(d);
	return 0;
fail:
	closedir(d);
	return -1;
}

/* new/ and cur/ of a Maildir, sorted by base name, one entry per base
 * name (a second file with the same base name is left alone). */
static int md_list_maildir(const char *dir, struct md_entry **e_r, size_t *n_r)
{
	struct md_entry *e = NULL;
	size_t n = 0, cap = 0, o = 0;

	if (md_list_sub(dir, true, &e, &n, &cap) < 0 ||
	    md_list_sub(dir, false, &e, &n, &cap) < 0) {
		md_entries_free(e, n);
		return -1;
	}
	if (n > 1)
		qsort(e, n, sizeof(*e), md_entry_cmp);
	for (size_t i = 0; i < n; i++) {
		if (o > 0 && md_entry_cmp(&e[o - 1], &e[i]) == 0) {
			log_warn("store: %s: two files named %.*s; ignoring %s",
				 dir, (int)e[i].blen, e[i].fname, e[i].fname);
			free(e[i].fname);
			continue;
		}
		e[o++] = e[i];
	}
	*e_r = e;
	*n_r = o;
	return 0;
}

int md_msg_locate(const char *dir, struct md_msg_rec *rec)
{
	struct md_entry *e, *hit;
	size_t n;
	int rc = 1;

	if (md_list_maildir(dir, &e, &n) < 0)
		return -1;
	hit = md_entry_find(e, n, rec->fname);
	if (hit != NULL && strlen(hit->fname) <= MD_FILENAME_MAX) {
		str_copy(rec->fname, hit->fname, sizeof(rec->fname));
		rec->in_new = hit->in_new;
		rc = 0;
	}
	md_entries_free(e, n);
	return rc;
}

/* md_dovecot_keep_fn: is the base name in the (sorted) listing? */
struct md_listing {
	struct md_entry *e;
	size_t n;
};

static bool md_sync_listed(void *ctx, const char *base, size_t blen)
{
	const struct md_listing *l = ctx;
	struct md_entry key = { (char *)base, blen, false };

	return l->n > 0 && bsearch(&key, l->e, l->n, sizeof(*l->e), md_entry_cmp) != NULL;
}

static int md_str_cmp(const void *a, const void *b);

/* Folder directories of a Maildir++ root, as sorted IMAP names. */
int md_sync_list_folders(const char *root, char ***names_r, size_t *n_r)
{
	DIR *d = opendir(root);
	struct dirent *de;
	char **names = NULL, name[MD_MAILBOX_NAME_MAX + 1];
	size_t n = 0;

	*names_r = NULL;
	*n_r = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strncmp(de->d_name, MD_TRASH_PREFIX, strlen(MD_TRASH_PREFIX)) == 0) {
			char path[PATH_MAX];

			/* a deletion that did not finish */
			if ((size_t)snprintf(path, sizeof(path), "%s/%s", root,
					     de->d_name) < sizeof(path))
				md_remove_tree(path);
			continue;
		}
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 || n >= MD_FOLDERS_MAX)
			continue;
		/* no symlinks: a folder never leads out of the user's tree */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (md_folder_to_name(de->d_name, name, sizeof(name)) < 0) {
			log_warn("store: %s/%s: not a valid folder name, ignored",
				 root, de->d_name);
			continue;
		}
		char **nn = realloc(names, (n + 1) * sizeof(*names));

		if (nn == NULL || (nn[n] = strdup(name)) == NULL) {
			names = nn != NULL ? nn : names;
			goto fail;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), md_str_cmp);
	*names_r = names;
	*n_r = n;
	return 0;
fail:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return -1;
}

static int md_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void md_sync_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- one mailbox --------------------------------------------------------- */

struct md_newfile {
	char fname[MD_FILENAME_MAX + 1];
	bool in_new;
	bool skip;
	bool conv_done;
	uint64_t size;
	uint64_t pop3_size;
	int64_t mtime;
	dev_t dev;
	ino_t ino;
	char conv[PATH_MAX];  /* CRLF copy waiting in tmp/, or "" */
	struct buf meta;
	uint32_t dc_uid;              /* Dovecot's UID, kept on import */
	char uidl[MD_UIDL_MAX + 1];   /* Dovecot's POP3 UIDL, or "" */
};

struct md_change {
	uint32_t uid;
	bool in_new;
	char fname[MD_FILENAME_MAX + 1];
};

struct md_sync_job {
	struct md_user *user;
	uint32_t mbox;
	const char *dir;
	struct md_newfile *nf;
	size_t n_nf;
	struct md_change *ch;
	size_t n_ch;
	uint32_t *gone;
	size_t n_gone;
	bool last;
	int64_t new_mtime, cur_mtime;
	/* a file of new/ (cur/) could not be indexed now (I/O error, out of
	 * memory): that directory's mtime is not stored, so the next access
	 * scans it again instead of thinking it done */
	bool retry_new, retry_cur;
	const struct md_dovecot *dc;
	const struct md_dcmodseq *dcms; /* Dovecot's mod-sequences, or NULL */
	const struct md_xkw *xkw;  /* keyword files, for the new files */
	/* new/ and cur/ listed again just before the job (when files seemed
	 * gone): renamed, not gone? */
	struct md_entry *relist;
	size_t n_relist;
};

static bool md_file_exists(const char *dir, bool in_new, const char *fname)
{
	char path[PATH_MAX];
	struct stat st;

	return (size_t)snprintf(path, sizeof(path), "%s/%s/%s", dir,
				in_new ? "new" : "cur", fname) < sizeof(path) &&
	       lstat(path, &st) == 0;
}

/* Apply a file's current name to its record. */
static enum md_result md_sync_rename(struct md_txn *t, struct md_sync_job *j,
				     struct md_mbox_rec *mb, uint64_t modseq,
				     struct md_msg_rec *rec, const char *fname,
				     bool in_new)
{
	struct md_msg_rec old = *rec;
	size_t blen;

	str_copy(rec->fname, fname, sizeof(rec->fname));
	rec->in_new = in_new;
	md_fname_parse(fname, &blen, &rec->letters, rec->kw);
	/* keywords beyond z live in the index only */
	for (int i = 0; i < MD_KW_WORDS; i++)
		rec->kw[i] |= i == 0 ? old.kw[0] & ~((1ULL << 26) - 1) : old.kw[i];
	if (rec->letters != old.letters || memcmp(rec->kw, old.kw, sizeof(rec->kw)))
		rec->modseq = modseq;
	md_rec_count(mb, &old, -1);
	md_rec_count(mb, rec, 1);
	return md_rec_msg_put(t, j->user->id, j->mbox, rec, &old);
}

static enum md_result md_sync_job_run(struct md_txn *t, void *arg)
{
	struct md_sync_job *j = arg;
	struct md_user *u = j->user;
	struct md_mbox_rec mb;
	struct md_user_rec urec;
	bool changed = false;
	struct md_kwtab kwtab;
	bool kw_loaded = false;
	enum md_result r;
	uint64_t modseq, import_floor;
	int64_t now = time(NULL);

	if ((r = md_rec_mbox_get(t, u->id, j->mbox, &mb)) != MD_OK)
		return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
	if ((r = md_rec_user_get(t, u->address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	modseq = mb.highestmodseq + 1;
	/* A Dovecot import continues above Dovecot's HIGHESTMODSEQ, or, when
	 * it was not exported, above any a client could hold, so that a
	 * client's CHANGEDSINCE from Dovecot's numbering gets more than it
	 * needs, never less.  The expunges Dovecot made are not in our log:
	 * a client from before the floor gets the full VANISHED answer (the
	 * horizon marker). */
	import_floor = j->dc == NULL ? 0 : j->dcms != NULL ? j->dcms->highest :
		MD_DOVECOT_MODSEQ_UNKNOWN;
	if (import_floor >= modseq)
		modseq = import_floor + 1;
	if (import_floor > 0 &&
	    (r = md_rec_explog_horizon(t, u->id, j->mbox, import_floor)) != MD_OK)
		goto out;

	for (size_t i = 0; i < j->n_nf; i++) {
		struct md_newfile *nf = &j->nf[i];
		struct md_msg_rec rec;
		unsigned char key[12];
		struct md_val v;
		size_t blen;
		uint32_t uid;

		if (nf->skip)
			continue;
		memset(&rec, 0, sizeof(rec));
		md_fname_parse(nf->fname, &blen, &rec.letters, rec.kw);
		r = md_rec_basename_uid(t, u->id, j->mbox, nf->fname, blen, &uid);
		if (r == MD_OK)
			continue; /* indexed meanwhile (a delivery, another scan) */
		if (r != MD_NOTFOUND)
			goto out;
		if (!md_file_exists(j->dir, nf->in_new, nf->fname))
			continue;
		uid = nf->dc_uid;
		if (uid != 0 && md_kv_get(t, MD_DB_MSG, key,
					  md_key_msg(key, u->id, j->mbox, uid), &v) != 1)
			uid = 0; /* taken (or an error, seen below) */
		if (uid == 0) {
			if (mb.uidnext == UINT32_MAX) {
				r = MD_LIMIT;
				goto out;
			}
			uid = mb.uidnext;
		}
		if (uid >= mb.uidnext)
			mb.uidnext = uid + 1;
		rec.uid = uid;
		rec.in_new = nf->in_new;
		str_copy(rec.fname, nf->fname, sizeof(rec.fname));
		if (j->xkw != NULL &&
		    (r = md_xkw_index_new(t, u->id, j->mbox, &kwtab, &kw_loaded,
					  j->xkw, &rec)) != MD_OK)
			goto out;
		rec.modseq = modseq;
		if (j->dcms != NULL && uid == nf->dc_uid) {
			uint64_t ms = md_dovecot_modseq_of(j->dcms, uid);

			if (ms != 0 && ms < modseq)
				rec.modseq = ms;
		}
		rec.size = nf->size;
		rec.pop3_size = nf->pop3_size;
		str_copy(rec.uidl, nf->uidl, sizeof(rec.uidl));
		rec.internal_date = nf->mtime;
		rec.save_date = now;
		if ((r = md_rec_msg_put(t, u->id, j->mbox, &rec, NULL)) != MD_OK)
			goto out;
		if (md_kv_put(t, MD_DB_MSGMETA, key, md_key_msg(key, u->id, j->mbox, uid),
			      nf->meta.data != NULL ? nf->meta.data : "", nf->meta.len,
			      0) < 0) {
			r = MD_TEMPFAIL;
			goto out;
		}
		md_rec_count(&mb, &rec, 1);
		md_rec_quota(&urec, &rec, 1);
		changed = true;
	}

	for (size_t i = 0; i < j->n_ch; i++) {
		struct md_msg_rec rec;

		r = md_rec_msg_get(t, u->id, j->mbox, j->ch[i].uid, &rec);
		if (r == MD_NOTFOUND)
			continue;
		if (r != MD_OK)
			goto out;
		if ((strcmp(rec.fname, j->ch[i].fname) == 0 &&
		     rec.in_new == j->ch[i].in_new) ||
		    !md_file_exists(j->dir, j->ch[i].in_new, j->ch[i].fname))
			continue;
		if ((r = md_sync_rename(t, j, &mb, modseq, &rec, j->ch[i].fname,
					j->ch[i].in_new)) != MD_OK)
			goto out;
		changed = true;
	}

	for (size_t i = 0; i < j->n_gone; i++) {
		struct md_msg_rec rec;
		struct md_entry *hit;

		r = md_rec_msg_get(t, u->id, j->mbox, j->gone[i], &rec);
		if (r == MD_NOTFOUND)
			continue;
		if (r != MD_OK)
			goto out;
		if (md_file_exists(j->dir, rec.in_new, rec.fname))
			continue;
		hit = md_entry_find(j->relist, j->n_relist, rec.fname);
		if (hit != NULL)
			r = md_sync_rename(t, j, &mb, modseq, &rec, hit->fname,
					   hit->in_new);
		else if ((r = md_rec_msg_del(t, u->id, j->mbox, &rec, modseq)) == MD_OK) {
			md_rec_count(&mb, &rec, -1);
			md_rec_quota(&urec, &rec, -1);
		}
		if (r != MD_OK)
			goto out;
		changed = true;
	}

	if (j->last) {
		mb.new_mtime = j->retry_new ? 0 : j->new_mtime;
		mb.cur_mtime = j->retry_cur ? 0 : j->cur_mtime;
		mb.flags &= ~(uint32_t)MD_MBOX_DCUIDL;
		if (mb.flags & MD_MBOX_IMPORT) {
			mb.flags &= ~(uint32_t)MD_MBOX_IMPORT;
			if (j->dc != NULL) {
				struct md_kwtab tab;

				if ((r = md_kw_load(t, u->id, j->mbox, &tab)) != MD_OK)
					goto out;
				for (int k = 0; k < 26 && r == MD_OK; k++)
					if (j->dc->kw[k] != NULL && tab.names[k] == NULL &&
					    md_kw_find(&tab, j->dc->kw[k]) < 0)
						r = md_kw_set(t, u->id, j->mbox, &tab, k,
							      j->dc->kw[k]);
				md_kw_free(&tab);
				if (r != MD_OK)
					goto out;
			}
		}
	}
	if (changed) {
		mb.highestmodseq = modseq;
		md_txn_touch(t, u->id, j->mbox);
	}
	if (mb.highestmodseq < import_floor)
		mb.highestmodseq = import_floor; /* an empty mailbox too */
	r = md_rec_mbox_put(t, u->id, &mb);
	if (r == MD_OK)
		r = md_rec_user_put(t, u->address, &urec);
out:
	if (kw_loaded)
		md_kw_free(&kwtab);
	return r;
}

/* Does the file use bare LF line endings anywhere? */
static bool md_has_bare_lf(const char *p, size_t len)
{
	for (const char *q = memchr(p, '\n', len); q != NULL;
	     q = memchr(q + 1, '\n', len - (size_t)(q + 1 - p)))
		if (q == p || q[-1] != '\r')
			return true;
	return false;
}

/* Write a CRLF copy of the file into dir/tmp/ (fsynced); 0, -1. */
static int md_crlf_copy(struct md_store *store, const char *dir, const char *p,
			size_t len, char *out, size_t outlen, uint64_t *size_r)
{
	char name[MD_FILENAME_MAX + 1], obuf[65536];
	size_t o = 0;
	uint64_t size = 0;
	int fd;

	if (md_unique_name(store, 0, name, sizeof(name)) < 0 ||
	    (size_t)snprintf(out, outlen, "%s/tmp/%s", dir, name) >= outlen)
		return -1;
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (o + 2 > sizeof(obuf)) {
			if (write_full(fd, obuf, o) < 0)
				goto fail;
			o = 0;
		}
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
			obuf[o++] = '\r';
			size++;
		}
		obuf[o++] = p[i];
		size++;
	}
	if ((o > 0 && write_full(fd, obuf, o) < 0) || fsync(fd) < 0)
		goto fail;
	close(fd);
	*size_r = size;
	return 0;
fail:
	close(fd);
	unlink(out);
	return -1;
}

/* Read a new file: size, date, metadata (after a CRLF copy if needed).
 * The file belongs to another program and may change while it is read:
 * it is read, not mapped (md_file_read_all), and a change shows up as a
 * short read, which skips the file until the next scan. */
static int md_newfile_prepare(struct md_store *store, const char *dir,
			      struct md_newfile *nf)
{
	char path[PATH_MAX];
	struct stat st;
	void *buf = NULL;
	int fd, rc = -1;

	md_pathf(path, sizeof(path), "%s/%s/%s", dir, nf->in_new ? "new" : "cur",
		 nf->fname);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	nf->dev = st.st_dev;
	nf->ino = st.st_ino;
	nf->size = (uint64_t)st.st_size;
	nf->mtime = st.st_mtim.tv_sec;
	if (md_file_read_all(fd, nf->size, &buf) < 0) {
		if (errno == EFBIG)
			log_warn("store: %s is larger than %llu octets; not indexed", path,
				 (unsigned long long)MD_FILE_READ_MAX);
		goto out;
	}
	if (buf != NULL && md_has_bare_lf(buf, (size_t)nf->size)) {
		int cfd;
		void *cbuf = NULL;
		uint64_t orig = nf->size;

		if (md_crlf_copy(store, dir, buf, (size_t)orig, nf->conv,
				 sizeof(nf->conv), &nf->size) < 0)
			goto out;
		cfd = open(nf->conv, O_RDONLY | O_CLOEXEC);
		if (cfd < 0 || md_file_read_all(cfd, nf->size, &cbuf) < 0) {
			if (cfd >= 0)
				close(cfd);
			goto out; /* the copy is removed below */
		}
		close(cfd);
		/* keep the file's date: it is the message's INTERNALDATE */
		struct timespec times[2] = { st.st_atim, st.st_mtim };

		utimensat(AT_FDCWD, nf->conv, times, 0);
		free(buf);
		buf = cbuf;
	}
	if (md_sync_meta(buf, (size_t)nf->size, &nf->meta, &nf->pop3_size) == MD_OK)
		rc = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (rc < 0 && nf->conv[0] != '\0') {
		unlink(nf->conv);
		nf->conv[0] = '\0';
	}
	return rc;
}

/* A CRLF copy replaces its original (the same file: device and inode as
 * read, so a change by its owner meanwhile is not overwritten), on the
 * calling thread before the job; the directory fsync that follows makes
 * the rename durable before the commit records the new size.  0, or -1
 * (the copy removed: the file is left for the next scan). */
static int md_newfile_convert(const char *dir, struct md_newfile *nf)
{
	char path[PATH_MAX];
	struct stat st;

	if (nf->conv[0] == '\0')
		return 0;
	md_pathf(path, sizeof(path), "%s/%s/%s", dir, nf->in_new ? "new" : "cur",
		 nf->fname);
	if (lstat(path, &st) < 0 || st.st_ino != nf->ino || st.st_dev != nf->dev ||
	    rename(nf->conv, path) < 0) {
		unlink(nf->conv);
		nf->conv[0] = '\0';
		buf_free(&nf->meta);
		return -1;
	}
	nf->conv_done = true;
	return 0;
}

struct md_idxent {
	uint32_t uid;
	bool in_new;
	char *fname;
	size_t blen;
};

static int md_idxent_cmp(const void *a, const void *b)
{
	const struct md_idxent *x = a, *y = b;
	size_t n = x->blen < y->blen ? x->blen : y->blen;
	int c = memcmp(x->fname, y->fname, n);

	return c != 0 ? c : (x->blen > y->blen) - (x->blen < y->blen);
}

/* The index's view: every message's uid and file name (new_only: of the
 * messages in new/ only, so that the poll after a delivery holds memory
 * for new/, not for a mailbox of a million messages in cur/). */
static enum md_result md_sync_load_index(struct md_user *u, uint32_t mbox,
					 bool new_only, struct md_idxent **ix_r,
					 size_t *n_r)
{
	unsigned char prefix[8];
	struct md_cursor *cur;
	struct md_txn *t;
	struct md_val k, v;
	struct md_idxent *ix = NULL;
	size_t n = 0, cap = 0;
	enum md_result r = md_read_begin(u->store, &t);
	int rc;

	if (r != MD_OK)
		return r;
	if (md_cursor_open(t, MD_DB_MSG, prefix, md_key_mbox(prefix, u->id, mbox),
			   &cur) < 0) {
		md_read_end(t);
		return MD_TEMPFAIL;
	}
	for (rc = md_cursor_seek(cur, prefix, 8, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v)) {
		struct md_msg_rec rec;
		uint32_t letters;
		uint64_t kw[MD_KW_WORDS];

		if ((r = md_rec_msg_decode(&k, &v, &rec)) != MD_OK)
			break;
		if (new_only && !rec.in_new)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct md_idxent *nx = realloc(ix, ncap * sizeof(*nx));

			if (nx == NULL) {
				r = MD_TEMPFAIL;
				break;
			}
			ix = nx;
			cap = ncap;
		}
		if ((ix[n].fname = strdup(rec.fname)) == NULL) {
			r = MD_TEMPFAIL;
			break;
		}
		ix[n].uid = rec.uid;
		ix[n].in_new = rec.in_new;
		md_fname_parse(rec.fname, &ix[n].blen, &letters, kw);
		n++;
	}
	if (rc < 0)
		r = MD_TEMPFAIL;
	md_cursor_close(cur);
	md_read_end(t);
	if (r != MD_OK) {
		for (size_t i = 0; i < n; i++)
			free(ix[i].fname);
		free(ix);
		return r;
	}
	if (n > 1)
		qsort(ix, n, sizeof(*ix), md_idxent_cmp);
	*ix_r = ix;
	*n_r = n;
	return MD_OK;
}

static int md_grow(void **v, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *nv = realloc(*v, ncap * size);

	if (nv == NULL)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

/* Compare the listing with the index: new files (indexes into ents),
 * renamed files (job->ch) and vanished ones (job->gone). */
static int md_sync_diff(struct md_entry *ents, size_t n_ents,
			struct md_idxent *ix, size_t n_ix, bool new_only,
			size_t **newidx_r, size_t *n_new_r, struct md_sync_job *job)
{
	size_t ie = 0, ii = 0, cap_new = 0, cap_ch = 0, cap_gone = 0;

	while (ie < n_ents || ii < n_ix) {
		int c;

		if (ii < n_ix && new_only && !ix[ii].in_new) {
			ii++; /* cur/ did not change: its records stand */
			continue;
		}
		if (ie == n_ents)
			c = 1;
		else if (ii == n_ix)
			c = -1;
		else
			c = md_entry_cmp(&ents[ie], &(struct md_entry){ ix[ii].fname,
					 ix[ii].blen, false });
		if (c < 0) {
			if (md_grow((void **)newidx_r, *n_new_r, &cap_new, sizeof(size_t)) < 0)
				return -1;
			(*newidx_r)[(*n_new_r)++] = ie++;
		} else if (c > 0) {
			if (md_grow((void **)&job->gone, job->n_gone, &cap_gone,
				    sizeof(uint32_t)) < 0)
				return -1;
			job->gone[job->n_gone++] = ix[ii++].uid;
		} else {
			if (strcmp(ents[ie].fname, ix[ii].fname) != 0 ||
			    ents[ie].in_new != ix[ii].in_new) {
				struct md_change *ch;

				if (md_grow((void **)&job->ch, job->n_ch, &cap_ch,
					    sizeof(*job->ch)) < 0)
					return -1;
				ch = &job->ch[job->n_ch++];
				ch->uid = ix[ii].uid;
				ch->in_new = ents[ie].in_new;
				str_copy(ch->fname, ents[ie].fname, sizeof(ch->fname));
			}
			ie++;
			ii++;
		}
	}
	return 0;
}

/* A directory changed in the last MD_MTIME_DIRTY_NS has no trustworthy
 * time (the index keeps 0 for it), so every sync in that window would
 * read the whole Maildir again: after a flag change in a mailbox of
 * 100,000 messages, each command of the next two seconds paid a listing
 * of cur/.  While the directories keep the times seen at the last such
 * scan, they are read again at most every MD_SYNC_DIRTY_RESCAN_NS; a
 * change made in the same clock tick as that scan is still found by a
 * later one, because the times stay untrusted for longer than this.
 * Our own changes are in the index already; other programs' show up
 * within MD_SYNC_DIRTY_RESCAN_NS (IDLE hears them through inotify). */
#define MD_SYNC_DIRTY_RESCAN_NS 500000000LL
_Static_assert(MD_SYNC_DIRTY_RESCAN_NS < MD_MTIME_DIRTY_NS, "a rescan must fall in the window");

static struct md_dirty_scan *md_dirty_slot(struct md_user *u, uint32_t mbox_id)
{
	struct md_dirty_scan *oldest = &u->dirty[0];

	for (size_t i = 0; i < MD_DIRTY_SCANS; i++) {
		if (u->dirty[i].mbox_id == mbox_id)
			return &u->dirty[i];
		if (u->dirty[i].at_ns < oldest->at_ns)
			oldest = &u->dirty[i];
	}
	return oldest;
}

static bool md_dirty_recent(struct md_user *u, uint32_t mbox_id, int64_t new_mtime,
			    int64_t cur_mtime)
{
	const struct md_dirty_scan *d = md_dirty_slot(u, mbox_id);

	return d->mbox_id == mbox_id && d->new_mtime == new_mtime &&
	       d->cur_mtime == cur_mtime && md_now_ns() - d->at_ns < MD_SYNC_DIRTY_RESCAN_NS;
}

static void md_dirty_note(struct md_user *u, uint32_t mbox_id, int64_t new_mtime,
			  int64_t cur_mtime, int64_t at_ns)
{
	struct md_dirty_scan *d = md_dirty_slot(u, mbox_id);

	d->mbox_id = mbox_id;
	d->new_mtime = new_mtime;
	d->cur_mtime = cur_mtime;
	d->at_ns = at_ns;
}

enum md_result md_sync_mailbox(struct md_user *u, uint32_t mbox_id, bool force)
{
	struct md_mbox_rec mb;
	struct md_txn *t;
	struct md_sync_job job;
	struct md_entry *ents = NULL;
	struct md_idxent *ix = NULL;
	struct md_newfile *nf = NULL;
	struct md_dovecot dc;
	struct md_dcmodseq dcms;
	struct md_xkw xkw;
	bool have_dc = false, new_only;
	size_t n_ents = 0, n_ix = 0, n_new = 0, cap = 0, *newidx = NULL;
	char dir[PATH_MAX], sub[PATH_MAX], new_sub[PATH_MAX], cur_sub[PATH_MAX];
	struct md_entry *relist = NULL;
	size_t n_relist = 0;
	int64_t new_mtime, cur_mtime, scan_ns = 0;
	enum md_result r;

	memset(&job, 0, sizeof(job));
	if ((r = md_read_begin(u->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(u, t, mbox_id, &mb, dir, sizeof(dir));
	md_read_end(t);
	if (r != MD_OK)
		return r;
	md_pathf(sub, sizeof(sub), "%s/new", dir);
	if (md_dir_mtime(sub, &new_mtime) < 0 && errno == ENOENT &&
	    (md_name_is_inbox(mb.name) || md_dir_mtime(dir, &cur_mtime) == 0))
		/* INBOX always exists; a folder without its new/ or cur/ (git
		 * and some tools drop empty directories) gets them back */
		md_maildir_make(dir, !md_name_is_inbox(mb.name));
	if (md_dir_mtime(sub, &new_mtime) < 0 ||
	    (md_pathf(sub, sizeof(sub), "%s/cur", dir),
	     md_dir_mtime(sub, &cur_mtime) < 0)) {
		if (errno != ENOENT)
			return MD_TEMPFAIL;
		md_sync_folders(u, true); /* removed by another program */
		md_user_seterr(u, "mailbox %s is gone", mb.name);
		return MD_NOMAILBOX;
	}
	force = force || (mb.flags & (MD_MBOX_IMPORT | MD_MBOX_DCUIDL));
	if (!force && mb.new_mtime != 0 && mb.cur_mtime != 0 &&
	    mb.new_mtime == new_mtime && mb.cur_mtime == cur_mtime)
		return MD_OK;
	if (!force && md_dirty_recent(u, mbox_id, new_mtime, cur_mtime))
		return MD_OK;
	scan_ns = md_now_ns();
	/* A delivery changes new/ only; a rename between new/ and cur/ (a
	 * flag change) changes both.  So an unchanged cur/ need not be read,
	 * which keeps a poll after a delivery cheap in a large mailbox. */
	new_only = !force && mb.cur_mtime != 0 && mb.cur_mtime == cur_mtime;

	md_pathf(sub, sizeof(sub), "%s/tmp", dir);
	md_tmp_cleanup(sub);
	if ((new_only ? md_list_sub(dir, true, &ents, &n_ents, &cap) :
	     md_list_maildir(dir, &ents, &n_ents)) < 0) {
		md_user_seterr(u, "%s: %s", dir, strerror(errno));
		md_entries_free(ents, n_ents);
		return MD_TEMPFAIL;
	}
	if (new_only && n_ents > 1)
		qsort(ents, n_ents, sizeof(*ents), md_entry_cmp);
	if ((r = md_sync_load_index(u, mbox_id, new_only, &ix, &n_ix)) != MD_OK)
		goto out;
	if ((mb.flags & (MD_MBOX_IMPORT | MD_MBOX_DCUIDL)) &&
	    md_dovecot_read(dir, false, md_sync_listed, &(struct md_listing){ ents, n_ents },
			    &dc) == 0)
		have_dc = true;
	if (md_sync_diff(ents, n_ents, ix, n_ix, new_only, &newidx, &n_new, &job) < 0) {
		r = MD_TEMPFAIL;
		goto out;
	}
	/* An entry is ~4.5 KB (a path for the CRLF copy): a full batch is a
	 * megabyte, which a sync that found no new file (a flag change, an
	 * expunge: most of them) must not allocate and clear. */
	if (n_new > 0 &&
	    (nf = calloc(n_new < MD_SYNC_BATCH ? n_new : MD_SYNC_BATCH, sizeof(*nf))) == NULL) {
		r = MD_TEMPFAIL;
		goto out;
	}

	job.user = u;
	job.mbox = mbox_id;
	job.dir = dir;
	job.dc = have_dc && (mb.flags & MD_MBOX_IMPORT) ? &dc : NULL;
	if (job.dc != NULL && md_dovecot_modseq_read(u->root, dc.guid, &dcms) == 0)
		job.dcms = &dcms;
	if (n_new > 0 && md_xkw_read_sync(dir, &xkw) < 0) {
		md_user_seterr(u, "%s/%s: %s", dir, MD_XKW_FILE, strerror(errno));
		r = MD_TEMPFAIL;
		goto out;
	}
	job.xkw = n_new > 0 ? &xkw : NULL;
	job.nf = nf;
	md_pathf(new_sub, sizeof(new_sub), "%s/new", dir);
	md_pathf(cur_sub, sizeof(cur_sub), "%s/cur", dir);
	for (size_t done = 0;;) {
		size_t batch = n_new - done < MD_SYNC_BATCH ? n_new - done : MD_SYNC_BATCH;
		bool sync_new = false, sync_cur = false;

		if (batch > 0)
			memset(nf, 0, batch * sizeof(*nf));
		for (size_t i = 0; i < batch; i++) {
			struct md_entry *e = &ents[newidx[done + i]];

			str_copy(nf[i].fname, e->fname, sizeof(nf[i].fname));
			nf[i].in_new = e->in_new;
			if (have_dc) {
				const struct md_dcmap *dce =
					md_dovecot_find(&dc, e->fname, e->blen);

				if (dce != NULL && (mb.flags & MD_MBOX_IMPORT))
					nf[i].dc_uid = dce->uid;
				if (dce != NULL)
					md_dovecot_uidl(&dc, dce, u->store->uidl_format,
							nf[i].uidl);
			}
			if (nf[i].uidl[0] == '\0' && u->n_carry > 0) {
				const char *kept = md_carry_uidl(u, mb.name, e->fname,
								 e->blen);

				if (kept != NULL)
					str_copy(nf[i].uidl, kept, sizeof(nf[i].uidl));
			}
			if (md_newfile_prepare(u->store, dir, &nf[i]) < 0 ||
			    md_newfile_convert(dir, &nf[i]) < 0) {
				nf[i].skip = true; /* vanished or unreadable */
				if (nf[i].in_new)
					job.retry_new = true;
				else
					job.retry_cur = true;
			} else if (nf[i].in_new) {
				sync_new = true;
			} else {
				sync_cur = true;
			}
		}
		/* The index may name only files whose directory entries are
		 * durable (md_deliver.c): a file another program (or a
		 * delivery still in progress) put there was listed, so an
		 * fsync from now on covers it. */
		if ((sync_new && md_fsync_dir_shared(u->store, new_sub) < 0) ||
		    (sync_cur && md_fsync_dir_shared(u->store, cur_sub) < 0)) {
			md_user_seterr(u, "fsync in %s: %s", dir, strerror(errno));
			r = MD_TEMPFAIL;
		}
		job.n_nf = batch;
		job.last = done + batch == n_new;
		if (job.last) {
			/* an mtime seen before the listing: a change during the
			 * scan shows up as a difference next time */
			job.new_mtime = job.retry_new ? 0 : md_mtime_to_store(new_mtime);
			job.cur_mtime = job.retry_cur ? 0 : md_mtime_to_store(cur_mtime);
		}
		/* files that seemed gone: renamed, not gone?  (listed after
		 * the first listing, so a rename in between is seen) */
		if (r == MD_OK && job.n_gone > 0 && job.relist == NULL) {
			if (md_list_maildir(dir, &relist, &n_relist) < 0) {
				md_user_seterr(u, "%s: %s", dir, strerror(errno));
				r = MD_TEMPFAIL;
			}
			job.relist = relist;
			job.n_relist = n_relist;
		}
		/* (a batch of files none of which could be read needs no job:
		 * a file that stays unreadable costs a scan, not a commit) */
		if (r == MD_OK &&
		    (!job.last || sync_new || sync_cur || job.n_ch > 0 || job.n_gone > 0 ||
		     job.new_mtime != mb.new_mtime || job.cur_mtime != mb.cur_mtime ||
		     (mb.flags & (MD_MBOX_IMPORT | MD_MBOX_DCUIDL))))
			r = md_write(u->store, md_sync_job_run, &job);
		for (size_t i = 0; i < batch; i++) {
			buf_free(&nf[i].meta);
			if (nf[i].conv[0] != '\0' && !nf[i].conv_done)
				unlink(nf[i].conv);
		}
		done += batch;
		if (r != MD_OK || job.last)
			break;
		job.n_ch = job.n_gone = 0; /* the first batch carried them */
	}
	if (r != MD_OK)
		md_user_seterr(u, "sync of %s: %s", mb.name, md_result_name(r));
	else if (!new_only && !job.retry_new && !job.retry_cur)
		/* (a file left for later must be tried again at the next sync) */
		md_dirty_note(u, mbox_id, new_mtime, cur_mtime, scan_ns);
out:
	md_entries_free(relist, n_relist);
	free(nf);
	free(newidx);
	free(job.ch);
	free(job.gone);
	md_entries_free(ents, n_ents);
	for (size_t i = 0; i < n_ix; i++)
		free(ix[i].fname);
	free(ix);
	if (have_dc)
		md_dovecot_free(&dc);
	if (job.dcms != NULL)
		md_dovecot_modseq_free(&dcms);
	if (job.xkw != NULL)
		md_xkw_free(&xkw);
	return r;
}
