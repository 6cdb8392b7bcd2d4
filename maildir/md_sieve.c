/* A user's Sieve scripts as ManageSieve (RFC 5804) manages them: list,
 * get, put, delete, rename, activate, and the space check.
 *
 * On disk, in the user's Maildir root ROOT:
 *   ROOT/postern-sieve/                 created (0700) by the first PUTSCRIPT
 *   ROOT/postern-sieve/NAME.sieve       one script, exactly the client's bytes
 *   ROOT/postern-sieve/.active          symlink to "NAME.sieve" (relative):
 *                                       the active script; none: no script
 *                                       is active (md_sieve_active.c reads it
 *                                       at delivery)
 *   ROOT/postern-sieve/.lock            flock()ed around every change, so
 *                                       two sessions never interleave a
 *                                       count-then-write or a rename
 * File names.  A name is kept plain ("vacation" -> "vacation.sieve") unless
 * it holds '%' or its file name would not fit comfortably in NAME_MAX
 * (MD_SIEVE_FILE_PLAIN_MAX, which leaves room for write_file_atomic()'s
 * ".tmp.PID" suffix):
 *   - a '%' is written "%25" (so "%" never starts anything else);
 *   - a longer name (RFC 5804 §1.6 lets a name be 128 characters, up to 512
 *     octets of UTF-8) is stored as "%L" + 32 hex digits of its SHA-256 +
 *     ".sieve", with the name itself in "%L<hex>.name" beside it.
 * Names never start with '.', so our own files (.active, .lock, temporary
 * files) never look like a script.  Files that do not end in ".sieve", or
 * whose decoded name is not valid, are not scripts (left alone).
 *
 * Durability: a script is written to a temporary file, fsynced, renamed
 * into place and the directory fsynced (write_file_atomic) before put
 * returns MD_OK; activation writes the symlink under a temporary name and
 * renames it over .active, then fsyncs the directory.  Readers need no lock:
 * every file and the symlink are only ever replaced whole.
 */
#include "md_private.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "util.h"

#define MD_SIEVE_SUFFIX ".sieve"
#define MD_SIEVE_SIDECAR ".name"
#define MD_SIEVE_LOCK ".lock"
#define MD_SIEVE_ACTIVE_TMP ".active.tmp"
#define MD_SIEVE_LONG_PREFIX "%L"
#define MD_SIEVE_HASH_HEX 32
/* A plain or %-escaped file name up to this many octets (NAME_MAX 255
 * minus ".tmp." and a PID for the temporary file). */
#define MD_SIEVE_FILE_PLAIN_MAX 200
/* "%L" + hex + ".sieve" or ".name", NUL */
#define MD_SIEVE_FILE_MAX (MD_SIEVE_FILE_PLAIN_MAX + 1)

/* ---- names ---------------------------------------------------------------- */

/* One UTF-8 sequence at s (len octets left): its code point and length, or
 * 0 for an invalid, overlong or surrogate sequence. */
static size_t md_sieve_utf8(const unsigned char *s, size_t len, unsigned *cp_r)
{
	unsigned cp, min;
	size_t n;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

enum md_result md_sieve_name_check(const char *name, size_t len)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t chars = 0, n;
	unsigned cp;

	if (len == 0 || len > MD_SIEVE_NAME_MAX || name[0] == '.')
		return MD_BADNAME;
	for (size_t i = 0; i < len; i += n) {
		n = md_sieve_utf8(s + i, len - i, &cp);
		/* RFC 5804 §1.6: no controls (U+0000..001F, U+007F..009F) nor
		 * LINE/PARAGRAPH SEPARATOR; '/' would leave the directory. */
		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 ||
		    cp == 0x2029 || cp == '/')
			return MD_BADNAME;
		chars++;
	}
	return chars <= MD_SIEVE_NAME_CHARS_MAX ? MD_OK : MD_BADNAME;
}

/* The file name of a (valid) script name, and whether it needs a sidecar
 * holding the name.  With suffix ".name" the sidecar's file name. */
static int md_sieve_file(const char *name, const char *suffix, char *out, size_t outlen,
			 bool *long_r)
{
	size_t o = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	*long_r = false;
	for (const char *p = name; *p != '\0' && o + 3 + strlen(MD_SIEVE_SUFFIX) < MD_SIEVE_FILE_PLAIN_MAX;
	     p++) {
		if (*p == '%') {
			memcpy(out + o, "%25", 3);
			o += 3;
		} else {
			out[o++] = *p;
		}
		if (p[1] == '\0') {
			out[o] = '\0';
			return md_pathf(out + o, outlen - o, "%s", suffix);
		}
	}
	*long_r = true;
	if (EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) != 1)
		return -1;
	o = (size_t)snprintf(out, outlen, "%s", MD_SIEVE_LONG_PREFIX);
	for (size_t i = 0; i < MD_SIEVE_HASH_HEX / 2 && o + 2 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%02x", md[i]);
	return md_pathf(out + o, outlen - o, "%s", suffix);
}

static bool md_sieve_has_suffix(const char *s, const char *suffix)
{
	size_t len = strlen(s), slen = strlen(suffix);

	return len > slen && strcmp(s + len - slen, suffix) == 0;
}

static int md_sieve_dir(const struct md_user *u, char *out, size_t outlen)
{
	return md_pathf(out, outlen, "%s/%s", u->root, MD_SIEVE_DIR);
}

static int md_sieve_path(const struct md_user *u, const char *file, char *out, size_t outlen)
{
	return md_pathf(out, outlen, "%s/%s/%s", u->root, MD_SIEVE_DIR, file);
}

/* The script name of directory entry file, or -1 when it is no script. */
static int md_sieve_name_of(const struct md_user *u, const char *file, char *out, size_t outlen)
{
	size_t flen = strlen(file), slen = strlen(MD_SIEVE_SUFFIX), o = 0;

	if (file[0] == '.' || !md_sieve_has_suffix(file, MD_SIEVE_SUFFIX))
		return -1;
	if (strncmp(file, MD_SIEVE_LONG_PREFIX, strlen(MD_SIEVE_LONG_PREFIX)) == 0) {
		char side[MD_SIEVE_FILE_MAX], path[PATH_MAX], *text = NULL;
		size_t len = 0;
		int rc = -1;

		if (md_pathf(side, sizeof(side), "%.*s%s", (int)(flen - slen), file,
			     MD_SIEVE_SIDECAR) < 0 ||
		    md_sieve_path(u, side, path, sizeof(path)) < 0 ||
		    read_small_file(path, MD_SIEVE_NAME_MAX, &text, &len) < 0)
			return -1;
		if (len < outlen && md_sieve_name_check(text, len) == MD_OK &&
		    memchr(text, '\0', len) == NULL) {
			memcpy(out, text, len + 1);
			rc = 0;
		}
		free(text);
		return rc;
	}
	for (size_t i = 0; i < flen - slen; i++) {
		if (o + 1 >= outlen)
			return -1;
		if (file[i] == '%' && strncmp(file + i, "%25", 3) != 0)
			return -1;
		out[o++] = file[i];
		if (file[i] == '%')
			i += 2; /* "%25" is one '%' */
	}
	out[o] = '\0';
	return md_sieve_name_check(out, o) == MD_OK ? 0 : -1;
}

/* The file .active points to into out ("" when none); -1 on an I/O error. */
static int md_sieve_active_file(const struct md_user *u, char *out, size_t outlen)
{
	char path[PATH_MAX];
	ssize_t n;

	out[0] = '\0';
	if (md_sieve_path(u, MD_SIEVE_ACTIVE, path, sizeof(path)) < 0)
		return -1;
	n = readlink(path, out, outlen - 1);
	if (n < 0)
		return errno == ENOENT || errno == EINVAL ? 0 : -1;
	out[n] = '\0';
	return 0;
}

/* ---- locking and counting -------------------------------------------------- */

/* Create the directory when asked, open and flock .lock; fd or -1. */
static int md_sieve_lock(struct md_user *u, bool create)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int fd;

	if (md_sieve_dir(u, dir, sizeof(dir)) < 0 ||
	    md_sieve_path(u, MD_SIEVE_LOCK, path, sizeof(path)) < 0)
		return -1;
	if (create && mkdir(dir, 0700) == 0 && fsync_parent_dir(dir) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void md_sieve_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

static enum md_result md_sieve_fail(struct md_user *u, const char *what, const char *name)
{
	int saved = errno;

	md_user_seterr(u, "sieve %s '%s': %s", what, name, strerror(saved));
	log_error("sieve %s failed user=%s: %s", what, u->address, strerror(saved));
	return saved == ENOSPC || saved == EDQUOT ? MD_NOSPACE : MD_TEMPFAIL;
}

/* Scripts in the directory (a missing directory has none); -1 on error. */
static int md_sieve_count(const struct md_user *u, size_t *n_r)
{
	char dir[PATH_MAX], name[MD_SIEVE_NAME_MAX + 1];
	struct dirent *de;
	DIR *d;

	*n_r = 0;
	if (md_sieve_dir(u, dir, sizeof(dir)) < 0)
		return -1;
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL)
		if (md_sieve_name_of(u, de->d_name, name, sizeof(name)) == 0)
			(*n_r)++;
	closedir(d);
	return 0;
}

static bool md_sieve_exists(const struct md_user *u, const char *file)
{
	char path[PATH_MAX];
	struct stat st;

	return md_sieve_path(u, file, path, sizeof(path)) == 0 && lstat(path, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

static int md_sieve_fsync(const struct md_user *u)
{
	char dir[PATH_MAX];

	return md_sieve_dir(u, dir, sizeof(dir)) < 0 ? -1 : md_fsync_dir(dir);
}

/* ---- the operations -------------------------------------------------------- */

enum md_result md_sieve_list(struct md_user *u, struct md_sieve_script **list_r, size_t *n_r)
{
	char dir[PATH_MAX], active[MD_SIEVE_FILE_MAX + 1];
	struct md_sieve_script *list = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	*list_r = NULL;
	*n_r = 0;
	if (md_sieve_dir(u, dir, sizeof(dir)) < 0)
		return MD_TEMPFAIL;
	if (md_sieve_active_file(u, active, sizeof(active)) < 0)
		return md_sieve_fail(u, "list", "");
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? MD_OK : md_sieve_fail(u, "list", "");
	while ((de = readdir(d)) != NULL) {
		struct md_sieve_script one;
		void *grown;

		if (md_sieve_name_of(u, de->d_name, one.name, sizeof(one.name)) < 0)
			continue;
		/* the count is bounded by the put limit, unless someone filled
		 * the directory by hand: cap what one listing holds */
		if (n >= MD_SIEVE_LIST_MAX)
			break;
		one.active = strcmp(de->d_name, active) == 0;
		grown = realloc(list, (n + 1) * sizeof(*list));
		if (grown == NULL) {
			closedir(d);
			free(list);
			return MD_TEMPFAIL;
		}
		list = grown;
		list[n++] = one;
	}
	closedir(d);
	*list_r = list;
	*n_r = n;
	return MD_OK;
}

enum md_result md_sieve_get(struct md_user *u, const char *name, char **data_r, size_t *len_r)
{
	char file[MD_SIEVE_FILE_MAX], path[PATH_MAX];
	bool is_long;

	*data_r = NULL;
	*len_r = 0;
	if (md_sieve_name_check(name, strlen(name)) != MD_OK)
		return MD_BADNAME;
	if (md_sieve_file(name, MD_SIEVE_SUFFIX, file, sizeof(file), &is_long) < 0 ||
	    md_sieve_path(u, file, path, sizeof(path)) < 0)
		return MD_TEMPFAIL;
	if (read_small_file(path, MD_SIEVE_SIZE_MAX, data_r, len_r) == 0)
		return MD_OK;
	if (errno == ENOENT)
		return MD_NOTFOUND;
	if (errno == EFBIG) /* put there by hand: larger than we serve */
		return MD_TOOBIG;
	return md_sieve_fail(u, "get", name);
}

/* The limits for storing len octets as name (with the lock held or not). */
static enum md_result md_sieve_space(struct md_user *u, const char *file, uint64_t len)
{
	size_t n;

	if (len > MD_SIEVE_SIZE_MAX)
		return MD_TOOBIG;
	if (md_sieve_exists(u, file))
		return MD_OK; /* replacing does not add a script */
	if (md_sieve_count(u, &n) < 0)
		return md_sieve_fail(u, "count", "");
	return n >= MD_SIEVE_SCRIPTS_MAX ? MD_LIMIT : MD_OK;
}

enum md_result md_sieve_have_space(struct md_user *u, const char *name, uint64_t len)
{
	char file[MD_SIEVE_FILE_MAX];
	bool is_long;

	if (md_sieve_name_check(name, strlen(name)) != MD_OK)
		return MD_BADNAME;
	if (md_sieve_file(name, MD_SIEVE_SUFFIX, file, sizeof(file), &is_long) < 0)
		return MD_TEMPFAIL;
	return md_sieve_space(u, file, len);
}

/* A long name's sidecar file, written durably before its script. */
static int md_sieve_write_sidecar(struct md_user *u, const char *name)
{
	char side[MD_SIEVE_FILE_MAX], path[PATH_MAX];
	bool is_long;

	if (md_sieve_file(name, MD_SIEVE_SIDECAR, side, sizeof(side), &is_long) < 0 ||
	    md_sieve_path(u, side, path, sizeof(path)) < 0)
		return -1;
	return is_long ? write_file_atomic(path, name, strlen(name), 0600) : 0;
}

static void md_sieve_remove_sidecar(struct md_user *u, const char *name)
{
	char side[MD_SIEVE_FILE_MAX], path[PATH_MAX];
	bool is_long;

	if (md_sieve_file(name, MD_SIEVE_SIDECAR, side, sizeof(side), &is_long) == 0 &&
	    is_long && md_sieve_path(u, side, path, sizeof(path)) == 0)
		(void)unlink(path); /* an orphan sidecar is harmless */
}

enum md_result md_sieve_put(struct md_user *u, const char *name, const char *data, size_t len)
{
	char file[MD_SIEVE_FILE_MAX], path[PATH_MAX];
	enum md_result r;
	bool is_long;
	int lock;

	if (md_sieve_name_check(name, strlen(name)) != MD_OK)
		return MD_BADNAME;
	if (len > MD_SIEVE_SIZE_MAX)
		return MD_TOOBIG;
	if (md_sieve_file(name, MD_SIEVE_SUFFIX, file, sizeof(file), &is_long) < 0 ||
	    md_sieve_path(u, file, path, sizeof(path)) < 0)
		return MD_TEMPFAIL;
	if ((lock = md_sieve_lock(u, true)) < 0)
		return md_sieve_fail(u, "lock", name);
	r = md_sieve_space(u, file, len);
	if (r == MD_OK && (md_sieve_write_sidecar(u, name) < 0 ||
			   write_file_atomic(path, data, len, 0600) < 0))
		r = md_sieve_fail(u, "put", name);
	md_sieve_unlock(lock);
	return r;
}

/* Point .active at file ("" removes it), durably. */
static int md_sieve_point_active(struct md_user *u, const char *file)
{
	char active[PATH_MAX], tmp[PATH_MAX];

	if (md_sieve_path(u, MD_SIEVE_ACTIVE, active, sizeof(active)) < 0 ||
	    md_sieve_path(u, MD_SIEVE_ACTIVE_TMP, tmp, sizeof(tmp)) < 0)
		return -1;
	if (file[0] == '\0') {
		if (unlink(active) < 0 && errno != ENOENT)
			return -1;
		return md_sieve_fsync(u);
	}
	/* a temporary left by a crash is ours to replace */
	if ((unlink(tmp) < 0 && errno != ENOENT) || symlink(file, tmp) < 0)
		return -1;
	if (rename(tmp, active) < 0) {
		(void)unlink(tmp);
		return -1;
	}
	return md_sieve_fsync(u);
}

enum md_result md_sieve_set_active(struct md_user *u, const char *name)
{
	char file[MD_SIEVE_FILE_MAX] = "";
	enum md_result r = MD_OK;
	bool is_long;
	int lock;

	if (name[0] != '\0' && md_sieve_name_check(name, strlen(name)) != MD_OK)
		return MD_BADNAME;
	if (name[0] != '\0' && md_sieve_file(name, MD_SIEVE_SUFFIX, file, sizeof(file), &is_long) < 0)
		return MD_TEMPFAIL;
	/* RFC 5804 §2.8: SETACTIVE "" with nothing active is fine too */
	if ((lock = md_sieve_lock(u, name[0] != '\0')) < 0)
		return errno == ENOENT && name[0] == '\0' ? MD_OK : md_sieve_fail(u, "lock", name);
	if (name[0] != '\0' && !md_sieve_exists(u, file))
		r = MD_NOTFOUND;
	else if (md_sieve_point_active(u, file) < 0)
		r = md_sieve_fail(u, "activate", name);
	md_sieve_unlock(lock);
	return r;
}

enum md_result md_sieve_delete(struct md_user *u, const char *name)
{
	char file[MD_SIEVE_FILE_MAX], path[PATH_MAX], active[MD_SIEVE_FILE_MAX + 1];
	enum md_result r = MD_OK;
	bool is_long;
	int lock;

	if (md_sieve_name_check(name, strlen(name)) != MD_OK)
		return MD_BADNAME;
	if (md_sieve_file(name, MD_SIEVE_SUFFIX, file, sizeof(file), &is_long) < 0 ||
	    md_sieve_path(u, file, path, sizeof(path)) < 0)
		return MD_TEMPFAIL;
	if ((lock = md_sieve_lock(u, false)) < 0)
		return errno == ENOENT ? MD_NOTFOUND : md_sieve_fail(u, "lock", name);
	if (!md_sieve_exists(u, file))
		r = MD_NOTFOUND;
	else if (md_sieve_active_file(u, active, sizeof(active)) < 0)
		r = md_sieve_fail(u, "delete", name);
	else if (strcmp(active, file) == 0)
		r = MD_DENIED; /* RFC 5804 §2.10: NO (ACTIVE) */
	else if (unlink(path) < 0 || md_sieve_fsync(u) < 0)
		r = md_sieve_fail(u, "delete", name);
	else
		md_sieve_remove_sidecar(u, name);
	md_sieve_unlock(lock);
	return r;
}

enum md_result md_sieve_rename(struct md_user *u, const char *from, const char *to)
{
	char ffile[MD_SIEVE_FILE_MAX], tfile[MD_SIEVE_FILE_MAX], fpath[PATH_MAX],
		tpath[PATH_MAX], active[MD_SIEVE_FILE_MAX + 1];
	enum md_result r = MD_OK;
	bool is_long;
	int lock;

	if (md_sieve_name_check(from, strlen(from)) != MD_OK ||
	    md_sieve_name_check(to, strlen(to)) != MD_OK)
		return MD_BADNAME;
	if (md_sieve_file(from, MD_SIEVE_SUFFIX, ffile, sizeof(ffile), &is_long) < 0 ||
	    md_sieve_file(to, MD_SIEVE_SUFFIX, tfile, sizeof(tfile), &is_long) < 0 ||
	    md_sieve_path(u, ffile, fpath, sizeof(fpath)) < 0 ||
	    md_sieve_path(u, tfile, tpath, sizeof(tpath)) < 0)
		return MD_TEMPFAIL;
	if ((lock = md_sieve_lock(u, false)) < 0)
		return errno == ENOENT ? MD_NOTFOUND : md_sieve_fail(u, "lock", from);
	if (!md_sieve_exists(u, ffile))
		r = MD_NOTFOUND;
	else if (strcmp(ffile, tfile) == 0 || md_sieve_exists(u, tfile))
		r = MD_EXISTS; /* RFC 5804 §2.11.1: NO (ALREADYEXISTS) */
	else if (md_sieve_active_file(u, active, sizeof(active)) < 0 ||
		 md_sieve_write_sidecar(u, to) < 0)
		r = md_sieve_fail(u, "rename", from);
	/* A second link first, so an active script stays reachable through
	 * .active at every moment: link, repoint, then drop the old name. */
	else if (link(fpath, tpath) < 0)
		r = errno == EEXIST ? MD_EXISTS : md_sieve_fail(u, "rename", from);
	else if (md_sieve_fsync(u) < 0 ||
		 (strcmp(active, ffile) == 0 && md_sieve_point_active(u, tfile) < 0) ||
		 unlink(fpath) < 0 || md_sieve_fsync(u) < 0)
		r = md_sieve_fail(u, "rename", from);
	if (r == MD_OK)
		md_sieve_remove_sidecar(u, from);
	md_sieve_unlock(lock);
	return r;
}
