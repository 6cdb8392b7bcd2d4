/* Maildir++ files and names: where a user's and a mailbox's directories are,
 * unique file names, the ":2,FLAGS" info suffix, IMAP mailbox names in
 * modified UTF-7, and small directory helpers.
 *
 * File names (cr.yp.to/proto/maildir.html, Dovecot's ",S=" extension):
 *   new/SECS.MusecPpidQseqRrand.HOST,S=SIZE
 *   cur/SECS.MusecPpidQseqRrand.HOST,S=SIZE:2,FLAGS
 * The base name (before ':') identifies the message for ever; FLAGS are
 * info letters in ASCII order: D draft, F flagged, P passed, R replied
 * (\Answered), S seen, T trashed (\Deleted), then a..z for the keywords
 * numbered 0..25 in the folder's dovecot-keywords ("INDEX NAME" lines).
 * Letters we do not know are kept.
 */
#include "md_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MD_DOMAIN_MAX 255      /* RFC 5321 §4.5.3.1.2 */
#define MD_UTF8_NAME_MAX 1024  /* a 254-octet modified UTF-7 name as UTF-8 */

/* ---- addresses -> directories ------------------------------------------ */

static bool md_path_component_ok(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.')
		return false; /* ".", "..", and names Maildir++ treats as folders */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '/')
			return false;
	}
	return true;
}

enum md_result md_user_root(const struct md_store *store, const char *address,
			    char *norm, size_t normlen, char *root, size_t rootlen)
{
	size_t len = strlen(address);
	const char *at = strrchr(address, '@');
	size_t llen, dlen;

	if (len > MD_ADDRESS_MAX || at == NULL || len + 1 > normlen)
		return MD_BADNAME;
	llen = (size_t)(at - address);
	dlen = len - llen - 1;
	if (llen > MD_LOCALPART_MAX || dlen > MD_DOMAIN_MAX ||
	    !md_path_component_ok(address, llen) ||
	    !md_path_component_ok(at + 1, dlen))
		return MD_BADNAME;
	/* ASCII case only: UTF-8 local parts (RFC 6531) keep their bytes */
	for (size_t i = 0; i <= len; i++) {
		char c = address[i];

		norm[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	if ((size_t)snprintf(root, rootlen, "%s/%s/%.*s", store->mail_dir,
			     norm + llen + 1, (int)llen, norm) >= rootlen)
		return MD_BADNAME;
	return MD_OK;
}

/* ---- modified UTF-7 (RFC 3501 §5.1.3) -------------------------------- */

static int md_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63; /* modified BASE64 uses ',' for '/' */
	return -1;
}

static const char md_b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int md_utf8_put(uint32_t cp, char *out, size_t outlen, size_t *o)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (*o + n >= outlen)
		return -1;
	memcpy(out + *o, b, n);
	*o += n;
	return 0;
}

int md_mutf7_to_utf8(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = in; *p != '\0';) {
		uint32_t bits = 0, high = 0;
		int nbits = 0;
		bool any = false;

		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return -1;
		if (*p != '&') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p++;
			continue;
		}
		p++;
		if (*p == '-') { /* "&-" is '&' */
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '&';
			p++;
			continue;
		}
		for (; *p != '-'; p++) {
			int v = md_b64_value(*p);

			if (v < 0)
				return -1; /* also an unterminated run */
			bits = bits << 6 | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t u = bits >> nbits & 0xffff;

			bits &= (1u << nbits) - 1;
			any = true;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					return -1;
				u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
				high = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
				continue;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				return -1;
			}
			/* printable ASCII must stand for itself (RFC 3501
			 * §5.1.3); C0/C1 controls are refused */
			if (u < 0xa0)
				return -1;
			if (md_utf8_put(u, out, outlen, &o) < 0)
				return -1;
		}
		/* leftover bits: fewer than 6 and all zero (RFC 2152) */
		if (!any || high != 0 || nbits >= 6 || bits != 0)
			return -1;
		p++;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

static int md_utf8_get(const unsigned char **pp, uint32_t *cp_r)
{
	const unsigned char *p = *pp;
	uint32_t cp;
	int n;

	if (p[0] < 0x80) {
		*cp_r = p[0];
		*pp = p + 1;
		return 0;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		cp = p[0] & 0x1f;
		n = 1;
	} else if ((p[0] & 0xf0) == 0xe0) {
		cp = p[0] & 0x0f;
		n = 2;
	} else if ((p[0] & 0xf8) == 0xf0) {
		cp = p[0] & 0x07;
		n = 3;
	} else {
		return -1;
	}
	for (int i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
	    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1; /* overlong, out of range, surrogate */
	*cp_r = cp;
	*pp = p + n + 1;
	return 0;
}

int md_mutf7_from_utf8(const char *in, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

#define MD_OUT(c) do { if (o + 1 >= outlen) return -1; out[o++] = (c); } while (0)
	while (*p != '\0') {
		uint32_t cp, bits = 0;
		int nbits = 0;

		if (*p >= 0x20 && *p <= 0x7e) {
			MD_OUT((char)*p);
			if (*p == '&')
				MD_OUT('-');
			p++;
			continue;
		}
		MD_OUT('&');
		while (*p != '\0' && !(*p >= 0x20 && *p <= 0x7e)) {
			uint32_t units[2];
			int nu = 1;

			if (md_utf8_get(&p, &cp) < 0 || cp < 0xa0)
				return -1; /* invalid, or a control character */
			if (cp >= 0x10000) {
				units[0] = 0xd800 + ((cp - 0x10000) >> 10);
				units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
				nu = 2;
			} else {
				units[0] = cp;
			}
			for (int i = 0; i < nu; i++) {
				bits = bits << 16 | units[i];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					MD_OUT(md_b64_chars[bits >> nbits & 0x3f]);
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0)
			MD_OUT(md_b64_chars[bits << (6 - nbits) & 0x3f]);
		MD_OUT('-');
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
#undef MD_OUT
}

/* ---- mailbox names ---------------------------------------------------- */

bool md_name_is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

enum md_result md_mailbox_name_check(const char *name)
{
	size_t len = strlen(name);
	char utf8[MD_UTF8_NAME_MAX];
	const char *comp = name;

	if (len == 0)
		return MD_BADNAME;
	if (len > MD_MAILBOX_NAME_MAX)
		return MD_LIMIT;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '/' || c == '\0') {
			size_t clen = (size_t)(name + i - comp);

			/* no empty component: '/' at an edge or "//" */
			if (clen == 0)
				return MD_BADNAME;
			comp = name + i + 1;
			continue;
		}
		/* '.' is Maildir++'s separator on disk; '*' and '%' are LIST
		 * wildcards (RFC 3501 §6.3.8) */
		if (c == '.' || c == '*' || c == '%' ||
		    (unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			return MD_BADNAME;
	}
	if (md_mutf7_to_utf8(name, utf8, sizeof(utf8)) < 0)
		return MD_BADNAME;
	return MD_OK;
}

enum md_result md_mailbox_name_norm(const char *name, char *out, size_t outlen)
{
	enum md_result r = md_mailbox_name_check(name);

	if (r != MD_OK)
		return r;
	if (str_copy(out, name, outlen) >= outlen)
		return MD_LIMIT;
	/* RFC 3501 §5.1: INBOX is case-insensitive, also as a parent */
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	return MD_OK;
}

int md_mailbox_dir(const char *root, const char *name, char *out, size_t outlen)
{
	size_t o;

	if (md_name_is_inbox(name))
		return (size_t)snprintf(out, outlen, "%s", root) < outlen ? 0 : -1;
	if ((size_t)snprintf(out, outlen, "%s/.%s", root, name) >= outlen)
		return -1;
	for (o = strlen(root) + 2; out[o] != '\0'; o++)
		if (out[o] == '/')
			out[o] = '.';
	return 0;
}

int md_folder_to_name(const char *dirname, char *out, size_t outlen)
{
	if (dirname[0] != '.' || dirname[1] == '\0' ||
	    str_copy(out, dirname + 1, outlen) >= outlen)
		return -1;
	for (char *p = out; *p != '\0'; p++)
		if (*p == '.')
			*p = '/';
	if (md_mailbox_name_check(out) != MD_OK || md_name_is_inbox(out))
		return -1;
	if (strncasecmp(out, "INBOX/", 6) == 0)
		memcpy(out, "INBOX", 5);
	return 0;
}

enum md_result md_keyword_check(const char *kw)
{
	size_t len = strlen(kw);

	if (len == 0 || kw[0] == '\\')
		return MD_BADNAME; /* system flags are not keywords */
	if (len > MD_KEYWORD_LEN_MAX)
		return MD_LIMIT;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)kw[i];

		/* RFC 3501 §9: atom = 1*ATOM-CHAR */
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return MD_BADNAME;
	}
	return MD_OK;
}

/* ---- file names ------------------------------------------------------- */

void md_fname_parse(const char *fname, size_t *baselen_r, uint32_t *letters_r,
		    uint64_t *kw_r)
{
	const char *colon = strchr(fname, ':');

	*letters_r = 0;
	memset(kw_r, 0, MD_KW_WORDS * sizeof(*kw_r));
	if (colon == NULL) {
		*baselen_r = strlen(fname);
		return;
	}
	*baselen_r = (size_t)(colon - fname);
	if (strncmp(colon, ":2,", 3) != 0)
		return;
	for (const char *p = colon + 3; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*letters_r |= MD_LETTER(*p);
		else if (*p >= 'a' && *p <= 'z')
			kw_r[0] |= 1ULL << (*p - 'a');
	}
}

int md_fname_build(const char *base, size_t blen, uint32_t letters,
		   const uint64_t *kw, char *out, size_t outlen)
{
	size_t o = blen;

	if (blen + 3 >= outlen)
		return -1;
	memcpy(out, base, blen);
	memcpy(out + o, ":2,", 3);
	o += 3;
	for (int c = 'A'; c <= 'Z'; c++) {
		if (letters & MD_LETTER(c)) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		}
	}
	for (int i = 0; i < 26; i++) {
		if (kw[0] & (1ULL << i)) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)('a' + i);
		}
	}
	out[o] = '\0';
	return o > MD_FILENAME_MAX ? -1 : 0;
}

unsigned md_letters_to_flags(uint32_t letters)
{
	unsigned flags = 0;

	if (letters & MD_LETTER('R'))
		flags |= MD_FLAG_ANSWERED;
	if (letters & MD_LETTER('F'))
		flags |= MD_FLAG_FLAGGED;
	if (letters & MD_LETTER('T'))
		flags |= MD_FLAG_DELETED;
	if (letters & MD_LETTER('S'))
		flags |= MD_FLAG_SEEN;
	if (letters & MD_LETTER('D'))
		flags |= MD_FLAG_DRAFT;
	return flags;
}

uint32_t md_flags_to_letters(unsigned flags, uint32_t letters)
{
	letters &= ~(MD_LETTER('R') | MD_LETTER('F') | MD_LETTER('T') |
		     MD_LETTER('S') | MD_LETTER('D'));
	if (flags & MD_FLAG_ANSWERED)
		letters |= MD_LETTER('R');
	if (flags & MD_FLAG_FLAGGED)
		letters |= MD_LETTER('F');
	if (flags & MD_FLAG_DELETED)
		letters |= MD_LETTER('T');
	if (flags & MD_FLAG_SEEN)
		letters |= MD_LETTER('S');
	if (flags & MD_FLAG_DRAFT)
		letters |= MD_LETTER('D');
	return letters;
}

int md_unique_name(struct md_store *store, uint64_t size, char *out, size_t outlen)
{
	struct timeval tv;
	uint64_t seq;
	uint32_t rnd = 0;

	gettimeofday(&tv, NULL);
	pthread_mutex_lock(&store->name_lock);
	seq = ++store->name_seq;
	pthread_mutex_unlock(&store->name_lock);
	if (random_bytes(&rnd, sizeof(rnd)) < 0)
		rnd = (uint32_t)tv.tv_usec ^ (uint32_t)seq;
	if ((size_t)snprintf(out, outlen, "%lld.M%06ldP%dQ%lluR%08x.%s,S=%llu",
			     (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(),
			     (unsigned long long)seq, rnd, store->host,
			     (unsigned long long)size) >= outlen)
		return -1;
	return 0;
}

int md_file_read_all(int fd, uint64_t size, void **buf_r)
{
	unsigned char *buf;
	size_t done = 0;

	*buf_r = NULL;
	if (size == 0)
		return 0;
	if (size > MD_FILE_READ_MAX) {
		errno = EFBIG;
		return -1;
	}
	buf = malloc((size_t)size);
	if (buf == NULL)
		return -1;
	while (done < size) {
		ssize_t n = pread(fd, buf + done, (size_t)size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA;
			free(buf);
			return -1;
		}
		done += (size_t)n;
	}
	*buf_r = buf;
	return 0;
}

int md_pathf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

int md_msg_path(const char *dir, const struct md_msg_rec *rec, char *out,
		size_t outlen)
{
	/* by hand, not snprintf: this runs once per message listed */
	size_t dl = strlen(dir), fl = strlen(rec->fname);

	if (dl + 5 + fl >= outlen)
		return -1;
	memcpy(out, dir, dl);
	memcpy(out + dl, rec->in_new ? "/new/" : "/cur/", 5);
	memcpy(out + dl + 5, rec->fname, fl + 1);
	return 0;
}

/* ---- directories ----------------------------------------------------- */

/* mkdir; *made_r when it made it (EEXIST is fine). */
static int md_mkdir_once(const char *path, bool *made_r)
{
	if (mkdir(path, 0700) == 0) {
		*made_r = true;
		return 0;
	}
	return errno == EEXIST ? 0 : -1;
}

int md_maildir_make(const char *dir, bool folder)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	char path[PATH_MAX];
	bool made_dir = false, made = false;
	int fd;

	if (md_mkdir_once(dir, &made_dir) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, subs[i]) >=
		    sizeof(path) || md_mkdir_once(path, &made) < 0)
			return -1;
	}
	if (folder) { /* Maildir++: marks a folder for delivery agents */
		if ((size_t)snprintf(path, sizeof(path), "%s/maildirfolder", dir) >=
		    sizeof(path))
			return -1;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			made = true;
		else if (errno != EEXIST)
			return -1;
		if (fd >= 0)
			close(fd);
	}
	/* What was made is durable before anything is stored in it: the
	 * entries in dir, then dir's own entry in its parent. */
	if ((made || made_dir) && md_fsync_dir(dir) < 0)
		return -1;
	if (made_dir && fsync_parent_dir(dir) < 0)
		return -1;
	return 0;
}

int md_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int md_dir_mtime(const char *dir, int64_t *mtime_r)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return -1;
	*mtime_r = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	return 0;
}

int64_t md_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int md_remove_one(const char *path, const struct stat *st, int type,
			 struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		log_warn("store: cannot remove %s: %s", path, strerror(errno));
	return 0;
}

int md_remove_tree(const char *path)
{
	return nftw(path, md_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

void md_tmp_cleanup(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	time_t limit = time(NULL) - MD_TMP_MAX_AGE;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime < limit &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("store: removed stale %s/%s", dir, de->d_name);
	}
	closedir(d);
}

int md_dovecot_keywords_write(const char *dir, const struct md_kwtab *tab)
{
	struct buf b;
	char path[PATH_MAX];
	int rc = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/dovecot-keywords", dir) >=
	    sizeof(path))
		return -1;
	buf_init(&b, 64 * 1024);
	for (size_t i = 0; i < tab->n && i < 26; i++)
		if (tab->names[i] != NULL &&
		    buf_appendf(&b, "%zu %s\n", i, tab->names[i]) < 0)
			rc = -1;
	if (rc == 0)
		rc = write_file_atomic(path, b.data != NULL ? b.data : "", b.len, 0600);
	buf_free(&b);
	return rc;
}
