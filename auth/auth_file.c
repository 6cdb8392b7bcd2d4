/* The users and aliases files, in DATA_DIR.
 *
 * DATA_DIR/users (mode 0600: it holds password hashes)
 *
 *   # comment                  '#' as the first non-blank character
 *   alice@example.org $y$j9T$...$... quota=1073741824 quota_messages=50000
 *   bob@example.org !$y$j9T$...       a hash starting with '!' is locked:
 *                                     no login, mail is still delivered
 *
 *   One user per line, fields separated by spaces or tabs: the address
 *   (local@domain, compared in lower case), a crypt(3) hash (new ones are
 *   yescrypt "$y$"), then optional attributes NAME=VALUE:
 *     quota=SIZE   bytes, or with a 1024-based suffix K, M, G or T;
 *                  0 or absent = unlimited.  Written back as bytes.
 *     quota_messages=N  messages (RFC 9208 MESSAGE resource), at most
 *                  AUTH_QUOTA_MESSAGES_MAX; 0 or absent = unlimited.
 *   An unknown attribute, a duplicate address, an invalid address, a
 *   missing hash or a NUL byte is an error "FILE:LINE: message": the CLI
 *   exits 78 and the daemon keeps the data it had.
 *
 * DATA_DIR/aliases (mode 0600)
 *
 *   # comment
 *   info@example.org alice@example.org bob@example.org
 *   sales@example.org info@example.org partner@elsewhere.example
 *   @example.org alice@example.org            the catch-all of a domain
 *
 *   The alias (an address or "@domain"), then 1 to AUTH_RESOLVE_MAX target
 *   addresses.  Targets may be users, other aliases, or outside addresses
 *   (forwarding).  Resolution rules are in auth.c.
 *
 * Writers (`postern user`, `postern alias`, `postern demo`) take an flock()
 * on DATA_DIR/auth.lock, read the current files, change the lines they
 * must (keeping every other line and comment as it is), and replace the
 * file with write_file_atomic (temp file, fsync, rename, directory fsync):
 * a crash or a kill leaves the old or the new file, never a mix, and two
 * writers never lose each other's changes.  The daemon only reads, without
 * the lock: rename makes every version it opens whole.
 *
 * Memory: a loaded file keeps its text; entries point into it.
 */
#include "auth_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "privsep.h"
#include "util.h"

#define AUTH_USER_ATTRS_MAX 8 /* attributes on one users line */

static void file_error(char *err, size_t errlen, const char *path,
		       unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void file_error(char *err, size_t errlen, const char *path,
		       unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(err, errlen, "%s:%u: %s", path, line, msg);
	else
		snprintf(err, errlen, "%s: %s", path, msg);
}

uint64_t auth_fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int auth_parse_size(const char *s, uint64_t *bytes_r)
{
	char digits[32];
	size_t len = strlen(s);
	uint64_t mult = 1, v;

	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, s, len + 1);
	switch (digits[len - 1]) {
	case 'K': case 'k': mult = 1ULL << 10; break;
	case 'M': case 'm': mult = 1ULL << 20; break;
	case 'G': case 'g': mult = 1ULL << 30; break;
	case 'T': case 't': mult = 1ULL << 40; break;
	default: break;
	}
	if (mult != 1)
		digits[len - 1] = '\0';
	if (str_to_u64(digits, 0, UINT64_MAX / mult, &v) < 0)
		return -1;
	*bytes_r = v * mult;
	return 0;
}

/* --- map --- */

typedef const char *map_key_fn(const void *ctx, size_t i);

static int map_init(struct auth_map *m, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap <<= 1;
	m->slots = calloc(cap, sizeof(*m->slots));
	if (m->slots == NULL)
		return -1;
	m->mask = cap - 1;
	return 0;
}

/* Index of key, or SIZE_MAX; with insert_idx != SIZE_MAX, inserts it when
 * absent (the map has room: it was sized for every line). */
static size_t map_probe(struct auth_map *m, const char *key, map_key_fn *key_of,
			const void *ctx, size_t insert_idx)
{
	size_t pos;

	if (m->slots == NULL)
		return SIZE_MAX;
	pos = (size_t)auth_fnv1a(key, strlen(key)) & m->mask;
	for (;;) {
		uint32_t s = m->slots[pos];
		if (s == 0) {
			if (insert_idx != SIZE_MAX)
				m->slots[pos] = (uint32_t)insert_idx + 1;
			return SIZE_MAX;
		}
		if (strcmp(key_of(ctx, s - 1), key) == 0)
			return s - 1;
		pos = (pos + 1) & m->mask;
	}
}

static const char *user_key(const void *ctx, size_t i)
{
	return ((const struct auth_users *)ctx)->v[i].address;
}

static const char *alias_key(const void *ctx, size_t i)
{
	return ((const struct auth_aliases *)ctx)->v[i].address;
}

const struct auth_user *auth_users_find(const struct auth_users *users,
					const char *lower)
{
	size_t i = map_probe((struct auth_map *)&users->map, lower, user_key,
			     users, SIZE_MAX);
	return i == SIZE_MAX ? NULL : &users->v[i];
}

const struct auth_alias *auth_aliases_find(const struct auth_aliases *aliases,
					   const char *lower)
{
	size_t i = map_probe((struct auth_map *)&aliases->map, lower, alias_key,
			     aliases, SIZE_MAX);
	return i == SIZE_MAX ? NULL : &aliases->v[i];
}

/* --- parsing --- */

struct line_iter {
	char *p, *end;
	unsigned lineno;
};

/* The next line, NUL-terminated in place, without its "\n" or "\r\n". */
static char *line_next(struct line_iter *it, size_t *len_r)
{
	char *start = it->p, *nl;
	size_t len;

	if (it->p >= it->end)
		return NULL;
	nl = memchr(start, '\n', (size_t)(it->end - start));
	len = nl != NULL ? (size_t)(nl - start) : (size_t)(it->end - start);
	it->p = nl != NULL ? nl + 1 : it->end;
	start[len] = '\0'; /* the '\n', or the text's own NUL terminator */
	if (len > 0 && start[len - 1] == '\r')
		start[--len] = '\0';
	it->lineno++;
	*len_r = len;
	return start;
}

/* Split on blanks in place; -1 when there are more than max fields. */
static int split_fields(char *line, char **fields, size_t max, size_t *n_r)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (n == max)
			return -1;
		fields[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	*n_r = n;
	return 0;
}

static size_t count_lines(const char *text, size_t len)
{
	size_t n = 1;

	for (const char *p = text; (p = memchr(p, '\n', len - (size_t)(p - text))) != NULL; p++)
		n++;
	return n;
}

/* Common checks before the line loop: no NUL byte inside the text. */
static int check_text(const char *path, const char *text, size_t len,
		      char *err, size_t errlen)
{
	const char *nul = memchr(text, '\0', len);

	if (nul != NULL) {
		file_error(err, errlen, path, (unsigned)count_lines(text, (size_t)(nul - text)),
			   "NUL byte");
		return -1;
	}
	return 0;
}

static bool hash_valid(const char *hash)
{
	size_t len = strlen(hash);

	if (len == 0 || len > AUTH_HASH_MAX)
		return false;
	for (const char *p = hash; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

int auth_users_parse(const char *path, char *text, size_t len,
		     struct auth_users *out, char *err, size_t errlen)
{
	struct line_iter it = { text, text + len, 0 };
	size_t max_lines, linelen;
	char *line;

	memset(out, 0, sizeof(*out));
	out->text = text;
	if (check_text(path, text, len, err, errlen) < 0)
		return -1;
	max_lines = count_lines(text, len);
	out->v = calloc(max_lines, sizeof(*out->v));
	if (out->v == NULL || map_init(&out->map, max_lines) < 0) {
		file_error(err, errlen, path, 0, "out of memory");
		goto fail;
	}
	while ((line = line_next(&it, &linelen)) != NULL) {
		char *f[2 + AUTH_USER_ATTRS_MAX];
		struct auth_user *u = &out->v[out->n];
		size_t nf, dup;

		if (linelen > AUTH_FILE_LINE_MAX) {
			file_error(err, errlen, path, it.lineno, "line too long");
			goto fail;
		}
		if (line[strspn(line, " \t")] == '#')
			continue; /* a comment may have any number of words */
		if (split_fields(line, f, sizeof(f) / sizeof(f[0]), &nf) < 0) {
			file_error(err, errlen, path, it.lineno, "too many fields");
			goto fail;
		}
		if (nf == 0)
			continue;
		if (!auth_address_valid(f[0])) {
			file_error(err, errlen, path, it.lineno,
				   "invalid address '%.300s'", f[0]);
			goto fail;
		}
		str_lower(f[0]);
		if (nf < 2 || !hash_valid(f[1])) {
			file_error(err, errlen, path, it.lineno,
				   nf < 2 ? "missing password hash" : "invalid password hash");
			goto fail;
		}
		u->address = f[0];
		u->hash = f[1];
		u->quota = 0;
		u->quota_messages = 0;
		u->line = it.lineno;
		for (size_t i = 2; i < nf; i++) {
			if (strncmp(f[i], "quota=", 6) == 0) {
				if (auth_parse_size(f[i] + 6, &u->quota) < 0) {
					file_error(err, errlen, path, it.lineno,
						   "invalid quota '%.100s'", f[i] + 6);
					goto fail;
				}
			} else if (strncmp(f[i], "quota_messages=", 15) == 0) {
				if (str_to_u64(f[i] + 15, 0, AUTH_QUOTA_MESSAGES_MAX,
					       &u->quota_messages) < 0) {
					file_error(err, errlen, path, it.lineno,
						   "invalid quota_messages '%.100s'", f[i] + 15);
					goto fail;
				}
			} else {
				file_error(err, errlen, path, it.lineno,
					   "unknown attribute '%.100s'", f[i]);
				goto fail;
			}
		}
		dup = map_probe(&out->map, u->address, user_key, out, out->n);
		if (dup != SIZE_MAX) {
			file_error(err, errlen, path, it.lineno,
				   "duplicate user %s (first on line %u)",
				   u->address, out->v[dup].line);
			goto fail;
		}
		out->n++;
	}
	return 0;
fail:
	out->text = NULL; /* the caller still owns text on failure */
	auth_users_free(out);
	return -1;
}

int auth_aliases_parse(const char *path, char *text, size_t len,
		       struct auth_aliases *out, char *err, size_t errlen)
{
	struct line_iter it = { text, text + len, 0 };
	size_t max_lines, linelen, n_targets_total = 0, max_targets;
	char *line;

	memset(out, 0, sizeof(*out));
	out->text = text;
	if (check_text(path, text, len, err, errlen) < 0)
		return -1;
	max_lines = count_lines(text, len);
	/* Every target takes at least 2 bytes of text ("a@b" plus a blank). */
	max_targets = len / 2 + 1;
	out->v = calloc(max_lines, sizeof(*out->v));
	out->targets = calloc(max_targets, sizeof(*out->targets));
	if (out->v == NULL || out->targets == NULL || map_init(&out->map, max_lines) < 0) {
		file_error(err, errlen, path, 0, "out of memory");
		goto fail;
	}
	while ((line = line_next(&it, &linelen)) != NULL) {
		char *f[1 + AUTH_RESOLVE_MAX];
		struct auth_alias *a = &out->v[out->n];
		size_t nf, dup;

		if (linelen > AUTH_FILE_LINE_MAX) {
			file_error(err, errlen, path, it.lineno, "line too long");
			goto fail;
		}
		if (split_fields(line, f, sizeof(f) / sizeof(f[0]), &nf) < 0) {
			file_error(err, errlen, path, it.lineno,
				   "more than %d targets", AUTH_RESOLVE_MAX);
			goto fail;
		}
		if (nf == 0 || f[0][0] == '#')
			continue;
		if (!auth_address_valid(f[0]) && !auth_catchall_valid(f[0])) {
			file_error(err, errlen, path, it.lineno,
				   "invalid alias '%.300s'", f[0]);
			goto fail;
		}
		str_lower(f[0]);
		if (nf < 2) {
			file_error(err, errlen, path, it.lineno, "alias %s has no target", f[0]);
			goto fail;
		}
		a->address = f[0];
		a->targets = &out->targets[n_targets_total];
		a->n_targets = nf - 1;
		a->line = it.lineno;
		for (size_t i = 1; i < nf; i++) {
			if (!auth_address_valid(f[i])) {
				file_error(err, errlen, path, it.lineno,
					   "invalid target '%.300s'", f[i]);
				goto fail;
			}
			out->targets[n_targets_total++] = f[i];
		}
		dup = map_probe(&out->map, a->address, alias_key, out, out->n);
		if (dup != SIZE_MAX) {
			file_error(err, errlen, path, it.lineno,
				   "duplicate alias %s (first on line %u)",
				   a->address, out->v[dup].line);
			goto fail;
		}
		out->n++;
	}
	return 0;
fail:
	out->text = NULL;
	auth_aliases_free(out);
	return -1;
}

void auth_users_free(struct auth_users *users)
{
	free(users->text);
	free(users->v);
	free(users->map.slots);
	memset(users, 0, sizeof(*users));
}

void auth_aliases_free(struct auth_aliases *aliases)
{
	free(aliases->text);
	free(aliases->v);
	free(aliases->targets);
	free(aliases->map.slots);
	memset(aliases, 0, sizeof(*aliases));
}

/* --- reading --- */

static void sig_from_stat(struct auth_file_sig *sig, const struct stat *st)
{
	memset(sig, 0, sizeof(*sig));
	sig->exists = true;
	sig->dev = st->st_dev;
	sig->ino = st->st_ino;
	sig->size = st->st_size;
	sig->mtime = st->st_mtim;
	sig->ctime = st->st_ctim;
}

int auth_file_stat(const char *path, struct auth_file_sig *sig)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		memset(sig, 0, sizeof(*sig));
		return errno == ENOENT ? 0 : -1;
	}
	sig_from_stat(sig, &st);
	return 0;
}

/* A file the daemon may not open itself after the privilege drop (an
 * administrator keeps it root-only): the privileged helper's copy.  The
 * signature is stat()ed before the read, so that a version replaced in
 * between is seen as changed at the next refresh and read again. */
static int file_read_privsep(struct privsep *ps, const char *path, char **text_r,
			     size_t *len_r, struct auth_file_sig *sig, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0 || privsep_read_file(ps, path, AUTH_FILE_MAX, text_r, len_r) < 0) {
		file_error(err, errlen, path, 0, "%s", errno == EFBIG ? "too large" : strerror(errno));
		return -1;
	}
	sig_from_stat(sig, &st);
	sig->content_hash = auth_fnv1a(*text_r, *len_r);
	return 0;
}

/* Read a whole file with the fstat() of the very version read.  A missing
 * file reads as "" with sig->exists false.  ps (may be NULL) reads what
 * open() may not. */
static int file_read(struct privsep *ps, const char *path, char **text_r, size_t *len_r,
		     struct auth_file_sig *sig, char *err, size_t errlen)
{
	struct stat st;
	size_t len = 0;
	char *text;
	int fd;

	memset(sig, 0, sizeof(*sig));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		*text_r = strdup("");
		*len_r = 0;
		sig->content_hash = auth_fnv1a("", 0);
		if (*text_r == NULL) {
			file_error(err, errlen, path, 0, "out of memory");
			return -1;
		}
		return 0;
	}
	if (fd < 0 && (errno == EACCES || errno == EPERM) && ps != NULL)
		return file_read_privsep(ps, path, text_r, len_r, sig, err, errlen);
	if (fd < 0 || fstat(fd, &st) < 0) {
		file_error(err, errlen, path, 0, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > AUTH_FILE_MAX) {
		file_error(err, errlen, path, 0, !S_ISREG(st.st_mode) ?
			   "not a regular file" : "larger than %u bytes", AUTH_FILE_MAX);
		close(fd);
		return -1;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		file_error(err, errlen, path, 0, "out of memory");
		close(fd);
		return -1;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Shrunk under us: an editor writing in place.  Take
			 * what is there; the next refresh sees the new size. */
			if (n < 0) {
				file_error(err, errlen, path, 0, "%s", strerror(errno));
				free(text);
				close(fd);
				return -1;
			}
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	sig_from_stat(sig, &st);
	sig->content_hash = auth_fnv1a(text, len);
	*text_r = text;
	*len_r = len;
	return 0;
}

int auth_file_hash(struct privsep *ps, const char *path, uint64_t *hash_r)
{
	struct auth_file_sig sig;
	char err[64], *text;
	size_t len;

	if (file_read(ps, path, &text, &len, &sig, err, sizeof(err)) < 0)
		return -1;
	free(text);
	*hash_r = sig.content_hash;
	return 0;
}

int auth_users_load(const char *path, struct privsep *ps, struct auth_users *out,
		    struct auth_file_sig *sig_r, char *err, size_t errlen)
{
	struct auth_file_sig sig;
	char *text;
	size_t len;

	if (file_read(ps, path, &text, &len, &sig, err, errlen) < 0) {
		if (sig_r != NULL)
			auth_file_stat(path, sig_r);
		return -1;
	}
	/* The version's signature even when it does not parse, so that a
	 * refresh does not retry it until it changes. */
	if (sig_r != NULL)
		*sig_r = sig;
	if (auth_users_parse(path, text, len, out, err, errlen) < 0) {
		free(text);
		return -1;
	}
	return 0;
}

int auth_aliases_load(const char *path, struct privsep *ps, struct auth_aliases *out,
		      struct auth_file_sig *sig_r, char *err, size_t errlen)
{
	struct auth_file_sig sig;
	char *text;
	size_t len;

	if (file_read(ps, path, &text, &len, &sig, err, errlen) < 0) {
		if (sig_r != NULL)
			auth_file_stat(path, sig_r);
		return -1;
	}
	/* The version's signature even when it does not parse, so that a
	 * refresh does not retry it until it changes. */
	if (sig_r != NULL)
		*sig_r = sig;
	if (auth_aliases_parse(path, text, len, out, err, errlen) < 0) {
		free(text);
		return -1;
	}
	return 0;
}

/* --- editing --- */

#define AUTH_USERS_HEADER \
	"# Postern users: ADDRESS HASH [quota=BYTES] [quota_messages=N]; see `postern user`.\n"
#define AUTH_ALIASES_HEADER \
	"# Postern aliases: ALIAS TARGET... (@domain = catch-all); edit with `postern alias`.\n"

/* A file as read (orig) and as parsed (from a copy of orig). */
struct edit_file {
	char path[PATH_MAX];
	char *orig;
	size_t len;
};

static int edit_read(struct edit_file *f, char **copy_r, char *err, size_t errlen)
{
	struct auth_file_sig sig;

	if (file_read(NULL, f->path, &f->orig, &f->len, &sig, err, errlen) < 0)
		return -1;
	*copy_r = malloc(f->len + 1);
	if (*copy_r == NULL) {
		file_error(err, errlen, f->path, 0, "out of memory");
		return -1;
	}
	memcpy(*copy_r, f->orig, f->len + 1);
	return 0;
}

/* out = orig with line `line` (1-based) replaced by repl (NULL: removed),
 * and append (NULL: nothing) added at the end; header starts a new file. */
static int edit_rebuild(struct buf *out, const struct edit_file *f, unsigned line,
			const char *repl, const char *append, const char *header)
{
	const char *p = f->orig, *end = f->orig + f->len;
	unsigned n = 0;
	int rc = 0;

	if (f->len == 0 && header != NULL)
		rc |= buf_append(out, header, strlen(header));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		n++;
		if (n == line) {
			if (repl != NULL)
				rc |= buf_append(out, repl, strlen(repl));
		} else {
			rc |= buf_append(out, p, len);
			rc |= buf_putc(out, '\n');
		}
		p += len + (nl != NULL);
	}
	if (append != NULL)
		rc |= buf_append(out, append, strlen(append));
	return rc == 0 ? 0 : -1;
}

static void user_line(struct buf *b, const char *address, const char *hash,
		      uint64_t quota, uint64_t quota_messages)
{
	buf_appendf(b, "%s %s", address, hash);
	if (quota != 0)
		buf_appendf(b, " quota=%llu", (unsigned long long)quota);
	if (quota_messages != 0)
		buf_appendf(b, " quota_messages=%llu", (unsigned long long)quota_messages);
	buf_putc(b, '\n');
}

static bool target_in(const char *t, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (str_ieq(t, list[i]))
			return true;
	return false;
}

/* Remove temp files that a writer killed mid-write left behind; we hold
 * the lock, so no other writer of these files is running. */
static void edit_clean_temps(const char *data_dir)
{
	DIR *d = opendir(data_dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, AUTH_USERS_FILE ".tmp.", sizeof(AUTH_USERS_FILE ".tmp.") - 1) == 0 ||
		    strncmp(de->d_name, AUTH_ALIASES_FILE ".tmp.", sizeof(AUTH_ALIASES_FILE ".tmp.") - 1) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static enum auth_edit_result edit_users(const struct auth_edit_op *op,
					struct edit_file *uf,
					const struct auth_users *users,
					const struct auth_aliases *aliases,
					struct buf *out, char *err, size_t errlen)
{
	const struct auth_user *u = auth_users_find(users, op->address);
	struct buf line;
	int rc;

	if (op->kind == AUTH_EDIT_USER_ADD) {
		if (u != NULL || auth_aliases_find(aliases, op->address) != NULL) {
			snprintf(err, errlen, "%s already exists as %s", op->address,
				 u != NULL ? "a user" : "an alias");
			return AUTH_EDIT_EXISTS;
		}
	} else if (u == NULL) {
		snprintf(err, errlen, "no such user: %s", op->address);
		return AUTH_EDIT_NOT_FOUND;
	}
	buf_init(&line, AUTH_FILE_LINE_MAX);
	switch (op->kind) {
	case AUTH_EDIT_USER_ADD:
		user_line(&line, op->address, op->hash, op->quota, 0);
		break;
	case AUTH_EDIT_USER_HASH:
		user_line(&line, u->address, op->hash, u->quota, u->quota_messages);
		break;
	case AUTH_EDIT_USER_QUOTA:
		user_line(&line, u->address, u->hash, op->quota,
			  op->set_messages ? op->quota_messages : u->quota_messages);
		break;
	default:
		break;
	}
	if (buf_cstr(&line) < 0) {
		buf_free(&line);
		snprintf(err, errlen, "line too long");
		return AUTH_EDIT_INVALID;
	}
	if (op->kind == AUTH_EDIT_USER_ADD)
		rc = edit_rebuild(out, uf, 0, NULL, line.data, AUTH_USERS_HEADER);
	else
		rc = edit_rebuild(out, uf, u->line,
				  op->kind == AUTH_EDIT_USER_DEL ? NULL : line.data, NULL, NULL);
	buf_free(&line);
	if (rc < 0) {
		snprintf(err, errlen, "%s: would exceed %u bytes", uf->path, AUTH_FILE_MAX);
		return AUTH_EDIT_INVALID;
	}
	return AUTH_EDIT_OK;
}

static enum auth_edit_result edit_aliases(const struct auth_edit_op *op,
					  struct edit_file *af,
					  const struct auth_users *users,
					  const struct auth_aliases *aliases,
					  struct buf *out, char *err, size_t errlen)
{
	const struct auth_alias *a = auth_aliases_find(aliases, op->address);
	const char *kept[2 * AUTH_RESOLVE_MAX];
	size_t n_kept = 0;
	struct buf line;
	int rc;

	if (op->kind == AUTH_EDIT_ALIAS_ADD) {
		if (auth_users_find(users, op->address) != NULL) {
			snprintf(err, errlen, "%s already exists as a user", op->address);
			return AUTH_EDIT_EXISTS;
		}
		for (size_t i = 0; a != NULL && i < a->n_targets; i++)
			kept[n_kept++] = a->targets[i];
		for (size_t i = 0; i < op->n_targets && n_kept < 2 * AUTH_RESOLVE_MAX; i++)
			if (!target_in(op->targets[i], kept, n_kept))
				kept[n_kept++] = op->targets[i];
		if (n_kept > AUTH_RESOLVE_MAX || op->n_targets > AUTH_RESOLVE_MAX) {
			snprintf(err, errlen, "%s would have more than %d targets",
				 op->address, AUTH_RESOLVE_MAX);
			return AUTH_EDIT_INVALID;
		}
	} else {
		if (a == NULL) {
			snprintf(err, errlen, "no such alias: %s", op->address);
			return AUTH_EDIT_NOT_FOUND;
		}
		for (size_t i = 0; i < op->n_targets; i++) {
			if (!target_in(op->targets[i], (const char *const *)a->targets,
				       a->n_targets)) {
				snprintf(err, errlen, "%s is not a target of %s",
					 op->targets[i], op->address);
				return AUTH_EDIT_NOT_FOUND;
			}
		}
		for (size_t i = 0; i < a->n_targets; i++)
			if (op->n_targets > 0 && !target_in(a->targets[i], op->targets, op->n_targets))
				kept[n_kept++] = a->targets[i];
	}
	buf_init(&line, AUTH_FILE_LINE_MAX);
	rc = buf_append(&line, op->address, strlen(op->address));
	for (size_t i = 0; i < n_kept; i++)
		rc |= buf_appendf(&line, " %s", kept[i]);
	rc |= buf_putc(&line, '\n');
	if (rc < 0 || buf_cstr(&line) < 0) {
		buf_free(&line);
		snprintf(err, errlen, "alias line too long");
		return AUTH_EDIT_INVALID;
	}
	if (a == NULL)
		rc = edit_rebuild(out, af, 0, NULL, line.data, AUTH_ALIASES_HEADER);
	else
		rc = edit_rebuild(out, af, a->line, n_kept > 0 ? line.data : NULL, NULL, NULL);
	buf_free(&line);
	if (rc < 0) {
		snprintf(err, errlen, "%s: would exceed %u bytes", af->path, AUTH_FILE_MAX);
		return AUTH_EDIT_INVALID;
	}
	return AUTH_EDIT_OK;
}

static int lock_take(const char *data_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", data_dir, AUTH_LOCK_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

enum auth_edit_result auth_files_edit(const char *data_dir,
				      const struct auth_edit_op *op,
				      char *err, size_t errlen)
{
	struct edit_file uf = { .orig = NULL }, af = { .orig = NULL };
	struct auth_users users = { 0 };
	struct auth_aliases aliases = { 0 };
	char *ucopy = NULL, *acopy = NULL;
	bool users_op = op->kind <= AUTH_EDIT_USER_QUOTA;
	enum auth_edit_result res;
	struct buf out;
	int lock;

	buf_init(&out, AUTH_FILE_MAX);
	if ((size_t)snprintf(uf.path, sizeof(uf.path), "%s/%s", data_dir, AUTH_USERS_FILE) >= sizeof(uf.path) ||
	    (size_t)snprintf(af.path, sizeof(af.path), "%s/%s", data_dir, AUTH_ALIASES_FILE) >= sizeof(af.path)) {
		snprintf(err, errlen, "%s: path too long", data_dir);
		return AUTH_EDIT_IO;
	}
	lock = lock_take(data_dir, err, errlen);
	if (lock < 0)
		return AUTH_EDIT_IO;
	res = AUTH_EDIT_IO;
	if (edit_read(&uf, &ucopy, err, errlen) < 0 || edit_read(&af, &acopy, err, errlen) < 0)
		goto done;
	res = AUTH_EDIT_BAD_FILE;
	if (auth_users_parse(uf.path, ucopy, uf.len, &users, err, errlen) < 0)
		goto done;
	ucopy = NULL; /* users owns it now */
	if (auth_aliases_parse(af.path, acopy, af.len, &aliases, err, errlen) < 0)
		goto done;
	acopy = NULL;

	if (users_op)
		res = edit_users(op, &uf, &users, &aliases, &out, err, errlen);
	else
		res = edit_aliases(op, &af, &users, &aliases, &out, err, errlen);
	if (res != AUTH_EDIT_OK)
		goto done;

	/* Never write what we could not read back. */
	if (buf_cstr(&out) < 0) {
		res = AUTH_EDIT_INVALID;
		snprintf(err, errlen, "file too large");
		goto done;
	}
	{
		char *check = strdup(out.data);
		struct auth_users cu;
		struct auth_aliases ca;
		int rc;

		if (check == NULL) {
			res = AUTH_EDIT_IO;
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		if (users_op)
			rc = auth_users_parse(uf.path, check, out.len, &cu, err, errlen);
		else
			rc = auth_aliases_parse(af.path, check, out.len, &ca, err, errlen);
		if (rc < 0) {
			free(check);
			res = AUTH_EDIT_INVALID;
			goto done;
		}
		if (users_op)
			auth_users_free(&cu);
		else
			auth_aliases_free(&ca);
	}
	edit_clean_temps(data_dir);
	if (write_file_atomic(users_op ? uf.path : af.path, out.data, out.len, 0600) < 0) {
		snprintf(err, errlen, "%s: %s", users_op ? uf.path : af.path, strerror(errno));
		res = AUTH_EDIT_IO;
		goto done;
	}
	res = AUTH_EDIT_OK;
done:
	close(lock); /* releases the flock */
	auth_users_free(&users);
	auth_aliases_free(&aliases);
	free(ucopy);
	free(acopy);
	free(uf.orig);
	free(af.orig);
	buf_free(&out);
	return res;
}
