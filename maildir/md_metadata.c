/* METADATA entries (RFC 5464) of a user: server entries (mailbox "") and
 * mailbox entries, kept in one small file per user.
 *
 * On disk: ROOT/postern-metadata (ROOT is the user's Maildir), replaced
 * atomically (write_file_atomic: tmp, fsync, rename, directory fsync)
 * before any change is acknowledged.  Format, version 1:
 *   "PMD1\n", then per entry
 *   "<mailbox octets> <name octets> <value octets>\n" <mailbox> <name>
 *   <value> "\n"
 * in decimal; the mailbox in IMAP form ("" for a server entry), the name
 * lower-cased (RFC 5464 §3.2: entry names are case-insensitive), the value
 * as the client gave it.  The decoder checks every length against what is
 * left and against the limits in store.h before it trusts it; a damaged
 * file is MD_CORRUPT (and is left for the administrator), never guessed.
 * ROOT/postern-metadata.lock is flock()ed around each read-modify-write,
 * so sessions and processes never lose each other's changes; readers need
 * no lock, as the file is only ever replaced whole.  Both files exist only
 * once the user has set an entry.
 *
 * Memory: md_metadata_get() hands out a malloc'd array
 * (md_metadata_free()); the whole file (at most MD_METADATA_FILE_MAX) is
 * read for each call.
 */
#include "md_metadata.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "md_private.h"
#include "util.h"

#define MD_METADATA_MAGIC "PMD1\n"
/* All entries of a user together (a SETMETADATA beyond it is TOOMANY):
 * ten mailboxes with every entry at its largest. */
#define MD_METADATA_FILE_MAX (16 * 1024 * 1024)
#define MD_METADATA_HEAD_MAX 64 /* "<n> <n> <n>\n" */

struct md_metadata_set {
	struct md_metadata *e;
	size_t n, cap;
};

void md_metadata_free(struct md_metadata *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].mailbox);
		free(list[i].name);
		free(list[i].value);
	}
	free(list);
}

static int md_metadata_path(const struct md_user *u, const char *suffix, char *out,
			    size_t outlen)
{
	return md_pathf(out, outlen, "%s/postern-metadata%s", u->root, suffix);
}

static int md_metadata_lock(const struct md_user *u)
{
	char path[PATH_MAX];
	int fd;

	if (md_metadata_path(u, ".lock", path, sizeof(path)) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static char *md_metadata_dup(const char *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s != NULL) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

static int md_metadata_push(struct md_metadata_set *set, const char *mailbox, size_t mlen,
			    const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct md_metadata *e;

	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct md_metadata *grown = realloc(set->e, cap * sizeof(*grown));
		if (grown == NULL)
			return -1;
		set->e = grown;
		set->cap = cap;
	}
	e = &set->e[set->n];
	e->mailbox = md_metadata_dup(mailbox, mlen);
	e->name = md_metadata_dup(name, nlen);
	e->value = md_metadata_dup(value, vlen);
	e->value_len = vlen;
	if (e->mailbox == NULL || e->name == NULL || e->value == NULL) {
		free(e->mailbox);
		free(e->name);
		free(e->value);
		return -1;
	}
	set->n++;
	return 0;
}

/* One "<m> <n> <v>\n" head at p; false when it is not one or the lengths
 * break a limit. */
static bool md_metadata_head(const char *p, size_t left, size_t *mlen_r, size_t *nlen_r,
			     size_t *vlen_r, size_t *head_r)
{
	const char *nl = memchr(p, '\n', left < MD_METADATA_HEAD_MAX ? left : MD_METADATA_HEAD_MAX);
	char head[MD_METADATA_HEAD_MAX + 1];
	unsigned long m, n, v;
	int used = 0;

	if (nl == NULL)
		return false;
	memcpy(head, p, (size_t)(nl - p));
	head[nl - p] = '\0';
	if (sscanf(head, "%lu %lu %lu%n", &m, &n, &v, &used) != 3 || (size_t)used != (size_t)(nl - p))
		return false;
	if (m > MD_MAILBOX_NAME_MAX || n == 0 || n > MD_METADATA_NAME_MAX ||
	    v > MD_METADATA_VALUE_MAX)
		return false;
	*mlen_r = m;
	*nlen_r = n;
	*vlen_r = v;
	*head_r = (size_t)(nl - p) + 1;
	return true;
}

/* Every entry of the file (none when it does not exist yet). */
static enum md_result md_metadata_read(struct md_user *u, struct md_metadata_set *set)
{
	char path[PATH_MAX], *data = NULL;
	size_t len = 0, off;

	if (md_metadata_path(u, "", path, sizeof(path)) < 0)
		return MD_TEMPFAIL;
	if (read_small_file(path, MD_METADATA_FILE_MAX, &data, &len) < 0) {
		if (errno == ENOENT)
			return MD_OK;
		md_user_seterr(u, "cannot read %s: %s", path, strerror(errno));
		return MD_TEMPFAIL;
	}
	off = strlen(MD_METADATA_MAGIC);
	if (len < off || memcmp(data, MD_METADATA_MAGIC, off) != 0)
		goto corrupt;
	while (off < len) {
		size_t m, n, v, head;
		const char *p;

		if (!md_metadata_head(data + off, len - off, &m, &n, &v, &head) ||
		    len - off - head < m + n + v + 1)
			goto corrupt;
		p = data + off + head;
		if (p[m + n + v] != '\n')
			goto corrupt;
		if (md_metadata_push(set, p, m, p + m, n, p + m + n, v) < 0) {
			free(data);
			return MD_TEMPFAIL;
		}
		off += head + m + n + v + 1;
	}
	free(data);
	return MD_OK;
corrupt:
	free(data);
	md_user_seterr(u, "%s is damaged", path);
	return MD_CORRUPT;
}

static enum md_result md_metadata_write(struct md_user *u, const struct md_metadata_set *set)
{
	char path[PATH_MAX];
	struct buf b;
	int bad;

	if (md_metadata_path(u, "", path, sizeof(path)) < 0)
		return MD_TEMPFAIL;
	buf_init(&b, MD_METADATA_FILE_MAX);
	bad = buf_append(&b, MD_METADATA_MAGIC, strlen(MD_METADATA_MAGIC));
	for (size_t i = 0; i < set->n && bad == 0; i++) {
		const struct md_metadata *e = &set->e[i];
		if (e->value == NULL)
			continue; /* deleted */
		bad = buf_appendf(&b, "%zu %zu %zu\n", strlen(e->mailbox), strlen(e->name),
				  e->value_len);
		bad = bad == 0 ? buf_append(&b, e->mailbox, strlen(e->mailbox)) : bad;
		bad = bad == 0 ? buf_append(&b, e->name, strlen(e->name)) : bad;
		bad = bad == 0 ? buf_append(&b, e->value, e->value_len) : bad;
		bad = bad == 0 ? buf_putc(&b, '\n') : bad;
	}
	if (bad != 0 || write_file_atomic(path, b.data, b.len, 0600) < 0) {
		md_user_seterr(u, "cannot write %s", path);
		buf_free(&b);
		return MD_TEMPFAIL;
	}
	buf_free(&b);
	return MD_OK;
}

enum md_result md_metadata_get(struct md_user *u, const char *mailbox,
			       struct md_metadata **list_r, size_t *n_r)
{
	struct md_metadata_set all = { 0 }, mine = { 0 };
	/* no lock: the file is only ever replaced whole (rename) */
	enum md_result r = md_metadata_read(u, &all);

	*list_r = NULL;
	*n_r = 0;
	for (size_t i = 0; i < all.n && r == MD_OK; i++) {
		const struct md_metadata *e = &all.e[i];
		if (strcmp(e->mailbox, mailbox) == 0 &&
		    md_metadata_push(&mine, e->mailbox, strlen(e->mailbox), e->name,
				     strlen(e->name), e->value, e->value_len) < 0)
			r = MD_TEMPFAIL;
	}
	md_metadata_free(all.e, all.n);
	if (r != MD_OK) {
		md_metadata_free(mine.e, mine.n);
		return r;
	}
	*list_r = mine.e;
	*n_r = mine.n;
	return MD_OK;
}

static struct md_metadata *md_metadata_find(struct md_metadata_set *set, const char *mailbox,
					    const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->e[i].value != NULL && strcmp(set->e[i].mailbox, mailbox) == 0 &&
		    strcmp(set->e[i].name, name) == 0)
			return &set->e[i];
	return NULL;
}

/* Apply one change to the set read from the file. */
static int md_metadata_apply(struct md_metadata_set *set, const char *mailbox,
			     const struct md_metadata *c)
{
	struct md_metadata *e = md_metadata_find(set, mailbox, c->name);
	char *value;

	if (c->value == NULL) {
		if (e != NULL) {
			free(e->value);
			e->value = NULL;
		}
		return 0;
	}
	if (e == NULL)
		return md_metadata_push(set, mailbox, strlen(mailbox), c->name, strlen(c->name),
					c->value, c->value_len);
	value = md_metadata_dup(c->value, c->value_len);
	if (value == NULL)
		return -1;
	free(e->value);
	e->value = value;
	e->value_len = c->value_len;
	return 0;
}

/* Octets the file of set takes (md_metadata_write's encoding). */
static size_t md_metadata_file_size(const struct md_metadata_set *set)
{
	size_t n = strlen(MD_METADATA_MAGIC);

	for (size_t i = 0; i < set->n; i++)
		if (set->e[i].value != NULL)
			n += MD_METADATA_HEAD_MAX + strlen(set->e[i].mailbox) +
			     strlen(set->e[i].name) + set->e[i].value_len + 1;
	return n;
}

static size_t md_metadata_count(const struct md_metadata_set *set, const char *mailbox)
{
	size_t n = 0;

	for (size_t i = 0; i < set->n; i++)
		if (set->e[i].value != NULL && strcmp(set->e[i].mailbox, mailbox) == 0)
			n++;
	return n;
}

enum md_result md_metadata_set(struct md_user *u, const char *mailbox,
			       const struct md_metadata *changes, size_t n)
{
	struct md_metadata_set all = { 0 };
	enum md_result r;
	int lock;

	for (size_t i = 0; i < n; i++)
		if (changes[i].value != NULL && changes[i].value_len > MD_METADATA_VALUE_MAX)
			return MD_TOOBIG;
	lock = md_metadata_lock(u);
	if (lock < 0)
		return MD_TEMPFAIL;
	r = md_metadata_read(u, &all);
	for (size_t i = 0; i < n && r == MD_OK; i++)
		if (md_metadata_apply(&all, mailbox, &changes[i]) < 0)
			r = MD_TEMPFAIL;
	/* nothing written: all or nothing (RFC 5464 §4.3); the whole file
	 * stays readable (MD_METADATA_FILE_MAX) */
	if (r == MD_OK && (md_metadata_count(&all, mailbox) > MD_METADATA_ENTRIES_MAX ||
			   md_metadata_file_size(&all) > MD_METADATA_FILE_MAX))
		r = MD_LIMIT;
	if (r == MD_OK)
		r = md_metadata_write(u, &all);
	close(lock);
	md_metadata_free(all.e, all.n);
	return r;
}

/* The entries of from and its children ("from/...") move to to. */
static int md_metadata_rename_one(struct md_metadata *e, const char *from, const char *to)
{
	size_t flen = strlen(from);
	char *moved;

	if (strncmp(e->mailbox, from, flen) != 0 ||
	    (e->mailbox[flen] != '\0' && e->mailbox[flen] != '/'))
		return 0;
	moved = malloc(strlen(to) + strlen(e->mailbox + flen) + 1);
	if (moved == NULL)
		return -1;
	strcpy(moved, to);
	strcat(moved, e->mailbox + flen);
	free(e->mailbox);
	e->mailbox = moved;
	return 1;
}

/* Rewrite the file after a mailbox was renamed (to) or deleted (to NULL). */
static void md_metadata_update(struct md_user *u, const char *from, const char *to)
{
	struct md_metadata_set all = { 0 };
	bool changed = false;
	char path[PATH_MAX];
	enum md_result r;
	int lock;

	/* a user who never set an entry gets no files for it */
	if (md_metadata_path(u, "", path, sizeof(path)) < 0 || access(path, F_OK) < 0)
		return;
	lock = md_metadata_lock(u);
	if (lock < 0)
		return;
	r = md_metadata_read(u, &all);
	for (size_t i = 0; i < all.n && r == MD_OK; i++) {
		struct md_metadata *e = &all.e[i];
		int rc;

		if (e->value == NULL || e->mailbox[0] == '\0')
			continue;
		if (to == NULL) {
			if (strcmp(e->mailbox, from) == 0) {
				free(e->value);
				e->value = NULL;
				changed = true;
			}
			continue;
		}
		rc = md_metadata_rename_one(e, from, to);
		if (rc < 0)
			r = MD_TEMPFAIL;
		changed |= rc > 0;
	}
	if (r == MD_OK && changed)
		r = md_metadata_write(u, &all);
	close(lock);
	md_metadata_free(all.e, all.n);
	if (r != MD_OK)
		log_warn("store: user=%s mailbox metadata of %s not updated: %s", u->address, from,
			 md_result_name(r));
}

void md_metadata_renamed(struct md_user *u, const char *from, const char *to)
{
	md_metadata_update(u, from, to);
}

void md_metadata_deleted(struct md_user *u, const char *name)
{
	md_metadata_update(u, name, NULL);
}
