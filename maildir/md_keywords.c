/* The folder's postern-keywords file: keywords beyond the 26 letters a
 * Maildir file name holds (md_keywords.h says why).
 *
 * Format (text, one record a line, written whole and atomically):
 *   "postern-keywords 1"          the version line
 *   "K <n> <keyword>"             the file's keyword n (0 <= n <
 *                                 MD_KEYWORDS_MAX), an RFC 3501 atom of at
 *                                 most MD_KEYWORD_LEN_MAX octets
 *   "M <n>[,<n>...] <base name>"  a message (by its Maildir base name, the
 *                                 rest of the line) and its keywords
 * Unknown or damaged lines are skipped, so a damaged file costs only what
 * it no longer says.  The numbering is the file's own: a rebuilt index
 * matches keywords by name.  Entries of expunged or moved messages stay
 * until the next rewrite of the file drops them (md_xkw_write() with a
 * live function); a stale entry is harmless, base names are never reused.
 * The file is at most MD_XKW_FILE_MAX octets.
 */
#include "md_keywords.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"

#define MD_XKW_VERSION "postern-keywords 1"

void md_xkw_free(struct md_xkw *x)
{
	for (size_t i = 0; i < x->n_names; i++)
		free(x->names[i]);
	for (size_t i = 0; i < x->n; i++)
		free(x->e[i].base);
	free(x->e);
	for (size_t i = 0; i < MD_XKW_LETTERS; i++)
		free(x->letters[i]);
	memset(x, 0, sizeof(*x));
}

bool md_xkw_any(const uint64_t *kw)
{
	if (kw[0] >> MD_XKW_LETTERS)
		return true;
	for (int w = 1; w < MD_KW_WORDS; w++)
		if (kw[w] != 0)
			return true;
	return false;
}

/* Position of base in the sorted entries: *found_r when it is there. */
static size_t md_xkw_pos(const struct md_xkw *x, const char *base, size_t blen,
			 bool *found_r)
{
	size_t lo = 0, hi = x->n;

	*found_r = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(x->e[mid].base, base, blen);

		if (c == 0 && x->e[mid].base[blen] != '\0')
			c = 1;
		if (c == 0) {
			*found_r = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct md_xkw_entry *md_xkw_find(const struct md_xkw *x, const char *base,
				       size_t blen)
{
	bool found;
	size_t i = md_xkw_pos(x, base, blen, &found);

	return found ? &x->e[i] : NULL;
}

/* The entry of base, inserted (without keywords) when missing. */
static struct md_xkw_entry *md_xkw_entry(struct md_xkw *x, const char *base,
					 size_t blen)
{
	bool found;
	size_t i = md_xkw_pos(x, base, blen, &found);
	char *copy;

	if (found)
		return &x->e[i];
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 16;
		struct md_xkw_entry *ne = realloc(x->e, ncap * sizeof(*ne));

		if (ne == NULL)
			return NULL;
		x->e = ne;
		x->cap = ncap;
	}
	if ((copy = strndup(base, blen)) == NULL)
		return NULL;
	memmove(&x->e[i + 1], &x->e[i], (x->n - i) * sizeof(*x->e));
	memset(&x->e[i], 0, sizeof(*x->e));
	x->e[i].base = copy;
	x->n++;
	return &x->e[i];
}

/* "K <n> <keyword>" */
static void md_xkw_parse_name(struct md_xkw *x, const char *p)
{
	char *end;
	unsigned long n = strtoul(p, &end, 10);

	if (end == p || *end != ' ' || n >= MD_KEYWORDS_MAX ||
	    x->names[n] != NULL || md_keyword_check(end + 1) != MD_OK)
		return;
	if ((x->names[n] = strdup(end + 1)) != NULL && n + 1 > x->n_names)
		x->n_names = n + 1;
}

/* "M <n>[,<n>...] <base>" (entries come sorted: appended in order) */
static void md_xkw_parse_msg(struct md_xkw *x, const char *p)
{
	uint64_t kw[MD_KW_WORDS] = { 0 };
	struct md_xkw_entry *e;
	const char *base = strchr(p, ' ');
	size_t blen;

	if (base == NULL || (blen = strlen(base + 1)) == 0 ||
	    blen > MD_FILENAME_MAX || strchr(base + 1, ':') != NULL ||
	    strchr(base + 1, '/') != NULL)
		return;
	while (p < base) {
		char *end;
		unsigned long n = strtoul(p, &end, 10);

		if (end == p || n >= MD_KEYWORDS_MAX || (*end != ',' && *end != ' '))
			return;
		kw[n / 64] |= 1ULL << (n % 64);
		p = end + (*end == ',');
	}
	if (memcmp(kw, (uint64_t[MD_KW_WORDS]){ 0 }, sizeof(kw)) == 0)
		return; /* no keywords: no entry */
	if ((e = md_xkw_entry(x, base + 1, blen)) != NULL)
		memcpy(e->kw, kw, sizeof(kw));
}

int md_xkw_read(const char *dir, struct md_xkw *x)
{
	char path[PATH_MAX], *text, *save = NULL;
	size_t len;

	memset(x, 0, sizeof(*x));
	if (md_pathf(path, sizeof(path), "%s/%s", dir, MD_XKW_FILE) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (read_small_file(path, MD_XKW_FILE_MAX, &text, &len) < 0)
		return errno == ENOENT ? 0 : -1;
	for (char *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "K ", 2) == 0)
			md_xkw_parse_name(x, l + 2);
		else if (strncmp(l, "M ", 2) == 0)
			md_xkw_parse_msg(x, l + 2);
	}
	free(text);
	/* an entry naming a keyword the file does not define has lost it */
	for (size_t i = 0; i < x->n; i++)
		for (size_t k = 0; k < MD_KEYWORDS_MAX; k++)
			if (x->names[k] == NULL)
				x->e[i].kw[k / 64] &= ~(1ULL << (k % 64));
	return 0;
}

/* The file's number for a keyword name, added when missing; -1 when the
 * file's table is full. */
static int md_xkw_name(struct md_xkw *x, const char *name)
{
	int free_slot = -1;

	for (size_t i = 0; i < MD_KEYWORDS_MAX; i++) {
		if (x->names[i] == NULL) {
			if (free_slot < 0)
				free_slot = (int)i;
		} else if (strcasecmp(x->names[i], name) == 0) {
			return (int)i;
		}
	}
	if (free_slot < 0 || (x->names[free_slot] = strdup(name)) == NULL)
		return -1;
	if ((size_t)free_slot + 1 > x->n_names)
		x->n_names = (size_t)free_slot + 1;
	return free_slot;
}

/* Forget the file's keywords no entry uses (their numbers are free for
 * new names again). */
static void md_xkw_gc_names(struct md_xkw *x)
{
	uint64_t used[MD_KW_WORDS] = { 0 };

	for (size_t i = 0; i < x->n; i++)
		for (int w = 0; w < MD_KW_WORDS; w++)
			used[w] |= x->e[i].kw[w];
	for (size_t k = 0; k < x->n_names; k++) {
		if (x->names[k] != NULL && !(used[k / 64] & (1ULL << (k % 64)))) {
			free(x->names[k]);
			x->names[k] = NULL;
		}
	}
}

int md_xkw_set(struct md_xkw *x, const char *base, size_t blen,
	       const uint64_t *kw, const struct md_kwtab *tab)
{
	uint64_t fkw[MD_KW_WORDS] = { 0 };
	struct md_xkw_entry *e;
	bool found;

	for (size_t k = MD_XKW_LETTERS; k < tab->n; k++) {
		int n;

		if (!(kw[k / 64] & (1ULL << (k % 64))) || tab->names[k] == NULL)
			continue;
		if ((n = md_xkw_name(x, tab->names[k])) < 0) {
			md_xkw_gc_names(x);
			if ((n = md_xkw_name(x, tab->names[k])) < 0)
				return -1;
		}
		fkw[n / 64] |= 1ULL << (n % 64);
	}
	if (memcmp(fkw, (uint64_t[MD_KW_WORDS]){ 0 }, sizeof(fkw)) == 0) {
		size_t i = md_xkw_pos(x, base, blen, &found);

		if (found) {
			free(x->e[i].base);
			memmove(&x->e[i], &x->e[i + 1], (x->n - i - 1) * sizeof(*x->e));
			x->n--;
			x->dirty = true;
		}
		return 0;
	}
	if ((e = md_xkw_entry(x, base, blen)) == NULL)
		return -1;
	e->set = true;
	if (memcmp(e->kw, fkw, sizeof(fkw)) != 0) {
		memcpy(e->kw, fkw, sizeof(fkw));
		x->dirty = true;
	}
	return 0;
}

/* "M 3,4,7 base\n" */
static int md_xkw_put_msg(struct buf *b, const struct md_xkw_entry *e)
{
	bool first = true;

	if (buf_append(b, "M ", 2) < 0)
		return -1;
	for (size_t k = 0; k < MD_KEYWORDS_MAX; k++) {
		if (!(e->kw[k / 64] & (1ULL << (k % 64))))
			continue;
		if (buf_appendf(b, first ? "%zu" : ",%zu", k) < 0)
			return -1;
		first = false;
	}
	return buf_appendf(b, " %s\n", e->base);
}

enum md_result md_xkw_write(const char *dir, struct md_xkw *x,
			    md_xkw_live_fn *live, void *live_ctx)
{
	char path[PATH_MAX];
	struct buf b;
	size_t kept = 0;
	int rc = 0;

	if (!x->dirty)
		return MD_OK;
	for (size_t i = 0; i < x->n; i++) {
		if (live != NULL && !x->e[i].set && !live(live_ctx, x->e[i].base)) {
			free(x->e[i].base);
			continue;
		}
		x->e[kept++] = x->e[i];
	}
	x->n = kept;
	md_xkw_gc_names(x);
	if (md_pathf(path, sizeof(path), "%s/%s", dir, MD_XKW_FILE) < 0)
		return MD_TEMPFAIL;
	buf_init(&b, MD_XKW_FILE_MAX);
	rc = buf_appendf(&b, "%s\n", MD_XKW_VERSION);
	for (size_t k = 0; rc == 0 && k < x->n_names; k++)
		if (x->names[k] != NULL)
			rc = buf_appendf(&b, "K %zu %s\n", k, x->names[k]);
	for (size_t i = 0; rc == 0 && i < x->n; i++)
		rc = md_xkw_put_msg(&b, &x->e[i]);
	if (rc < 0) {
		buf_free(&b);
		return MD_LIMIT;
	}
	rc = write_file_atomic(path, b.data, b.len, 0600);
	buf_free(&b);
	if (rc < 0)
		return MD_TEMPFAIL;
	x->dirty = false;
	return MD_OK;
}

enum md_result md_xkw_to_mailbox(struct md_txn *t, uint32_t user,
				 uint32_t mbox, struct md_kwtab *tab,
				 const struct md_xkw *x,
				 const struct md_xkw_entry *e, uint64_t *kw_r)
{
	for (size_t k = 0; k < x->n_names; k++) {
		int idx;

		if (!(e->kw[k / 64] & (1ULL << (k % 64))) || x->names[k] == NULL)
			continue;
		if ((idx = md_kw_find(tab, x->names[k])) < 0) {
			enum md_result r;

			/* a letter index would claim a letter the file name
			 * does not carry: the first free one after them */
			for (idx = MD_XKW_LETTERS;
			     idx < MD_KEYWORDS_MAX && tab->names[idx] != NULL; idx++)
				;
			if (idx == MD_KEYWORDS_MAX)
				return MD_LIMIT;
			if ((r = md_kw_set(t, user, mbox, tab, idx, x->names[k])) != MD_OK)
				return r;
		}
		kw_r[idx / 64] |= 1ULL << (idx % 64);
	}
	return MD_OK;
}

struct md_xkw_live {
	struct md_txn *t;
	uint32_t user, mbox;
};

static bool md_xkw_live(void *ctx, const char *base)
{
	struct md_xkw_live *l = ctx;
	uint32_t uid;

	/* an error keeps the entry: pruning is housekeeping only */
	return md_rec_basename_uid(l->t, l->user, l->mbox, base, strlen(base),
				   &uid) != MD_NOTFOUND;
}

enum md_result md_xkw_update(struct md_txn *t, uint32_t user, uint32_t mbox,
			     const char *dir, md_xkw_rec_fn *rec, void *ctx,
			     size_t n)
{
	struct md_xkw_live live = { t, user, mbox };
	struct md_kwtab tab;
	struct md_xkw x;
	enum md_result r;

	if (md_xkw_read(dir, &x) < 0)
		return MD_TEMPFAIL;
	if ((r = md_kw_load(t, user, mbox, &tab)) != MD_OK) {
		md_xkw_free(&x);
		return r;
	}
	for (size_t i = 0; i < n && r == MD_OK; i++) {
		const struct md_msg_rec *m = rec(ctx, i);

		if (m != NULL && md_xkw_set(&x, m->fname, strcspn(m->fname, ":"),
					    m->kw, &tab) < 0)
			r = MD_TEMPFAIL;
	}
	if (r == MD_OK)
		r = md_xkw_write(dir, &x, md_xkw_live, &live);
	md_kw_free(&tab);
	md_xkw_free(&x);
	return r;
}

int md_xkw_read_sync(const char *dir, struct md_xkw *x)
{
	if (md_xkw_read(dir, x) < 0)
		return -1;
	md_dovecot_keywords_read(dir, x->letters);
	return 0;
}

enum md_result md_xkw_index_new(struct md_txn *t, uint32_t user, uint32_t mbox,
				struct md_kwtab *tab, bool *loaded,
				const struct md_xkw *x, struct md_msg_rec *rec)
{
	const struct md_xkw_entry *e = md_xkw_find(x, rec->fname,
						   strcspn(rec->fname, ":"));
	enum md_result r;

	if (e == NULL && rec->kw[0] == 0)
		return MD_OK;
	if (!*loaded) {
		if ((r = md_kw_load(t, user, mbox, tab)) != MD_OK)
			return r;
		*loaded = true;
	}
	for (size_t k = 0; k < MD_XKW_LETTERS; k++) {
		if (!(rec->kw[0] & (1ULL << k)) || tab->names[k] != NULL ||
		    x->letters[k] == NULL || md_kw_find(tab, x->letters[k]) >= 0)
			continue;
		if ((r = md_kw_set(t, user, mbox, tab, (int)k, x->letters[k])) != MD_OK)
			return r;
	}
	return e != NULL ? md_xkw_to_mailbox(t, user, mbox, tab, x, e, rec->kw) : MD_OK;
}

/* ---- the keyword files, written outside the index's write lock ---------
 *
 * A job only changes the index; the files follow after its commit, on the
 * calling thread.  Writers of one folder's files (threads of this process,
 * `postern deliver`) take turns by flock() on the folder's directory: each
 * reads the index after taking the lock, so the last one to write wrote
 * from the newest index. */

static int md_folder_lock(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
	}
	return fd;
}

static void md_folder_unlock(int fd)
{
	close(fd); /* drops the flock */
}

/* fn(t, arg) in a read transaction begun with dir locked */
static enum md_result md_folder_read_locked(struct md_store *store, const char *dir,
					    md_job_fn *fn, void *arg)
{
	struct md_txn *t;
	enum md_result r;
	int lock = md_folder_lock(dir);

	if (lock < 0)
		return MD_TEMPFAIL;
	if ((r = md_read_begin(store, &t)) == MD_OK) {
		r = fn(t, arg);
		md_read_end(t);
	}
	md_folder_unlock(lock);
	return r;
}

struct md_kw_file {
	uint32_t user, mbox;
	const char *dir;
};

static enum md_result md_kw_file_write(struct md_txn *t, void *arg)
{
	const struct md_kw_file *f = arg;
	struct md_kwtab tab;
	enum md_result r = md_kw_load(t, f->user, f->mbox, &tab);

	if (r != MD_OK)
		return r;
	if (md_dovecot_keywords_write(f->dir, &tab) < 0)
		r = MD_TEMPFAIL;
	md_kw_free(&tab);
	return r;
}

enum md_result md_kw_file_sync(struct md_store *store, uint32_t user, uint32_t mbox,
			       const char *dir)
{
	struct md_kw_file f = { user, mbox, dir };
	enum md_result r = md_folder_read_locked(store, dir, md_kw_file_write, &f);

	if (r != MD_OK)
		log_warn("store: %s/dovecot-keywords: %s", dir, md_result_name(r));
	return r;
}

struct md_xkw_file {
	uint32_t user, mbox;
	const char *dir;
	md_xkw_rec_fn *rec;
	void *ctx;
	size_t n;
};

static enum md_result md_xkw_file_write(struct md_txn *t, void *arg)
{
	const struct md_xkw_file *f = arg;

	return md_xkw_update(t, f->user, f->mbox, f->dir, f->rec, f->ctx, f->n);
}

enum md_result md_xkw_update_file(struct md_store *store, uint32_t user, uint32_t mbox,
				  const char *dir, md_xkw_rec_fn *rec, void *ctx,
				  size_t n)
{
	struct md_xkw_file f = { user, mbox, dir, rec, ctx, n };

	return md_folder_read_locked(store, dir, md_xkw_file_write, &f);
}
