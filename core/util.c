/* Small byte and string helpers shared by every module. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max == 0 ? SIZE_MAX : max;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
}

static int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > b->max || b->len > b->max - extra)
		return -1;
	need = b->len + extra;
	if (need + 1 <= b->cap)
		return 0;
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need + 1)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (buf_reserve(b, len) < 0)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* The conversions buf_appendf formats itself, without the stdio machinery
 * (perf: vsnprintf was half the daemon's CPU in a large UID FETCH FLAGS):
 * %s %c %d %u %ld %lu %lld %llu %zd %zu and %%, without flags, width or
 * precision.  Returns the length of the conversion at fmt (after '%'), 0
 * when it is not one of them. */
static size_t buf_fmt_conv(const char *fmt)
{
	static const char *const convs[] = { "s", "c", "d", "u", "%", "ld", "lu",
					     "lld", "llu", "zd", "zu" };

	for (size_t i = 0; i < sizeof(convs) / sizeof(convs[0]); i++) {
		size_t n = strlen(convs[i]);
		if (strncmp(fmt, convs[i], n) == 0)
			return n;
	}
	return 0;
}

static bool buf_fmt_simple(const char *fmt)
{
	for (const char *p = strchr(fmt, '%'); p != NULL; p = strchr(p, '%')) {
		size_t n = buf_fmt_conv(p + 1);
		if (n == 0)
			return false;
		p += 1 + n;
	}
	return true;
}

static int buf_append_dec(struct buf *b, unsigned long long v, bool neg)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	if (neg)
		tmp[--i] = '-';
	return buf_append(b, tmp + i, sizeof(tmp) - i);
}

static int buf_append_signed(struct buf *b, long long v)
{
	/* -(v + 1) + 1 keeps LLONG_MIN in range */
	return v < 0 ? buf_append_dec(b, (unsigned long long)(-(v + 1)) + 1, true)
		     : buf_append_dec(b, (unsigned long long)v, false);
}

static int buf_vappend_simple(struct buf *b, const char *fmt, va_list ap)
{
	const char *p = fmt;
	int rc = 0;

	while (rc == 0 && *p != '\0') {
		const char *pct = strchr(p, '%');
		size_t n;

		if (pct == NULL)
			return buf_append(b, p, strlen(p));
		rc = buf_append(b, p, (size_t)(pct - p));
		n = buf_fmt_conv(pct + 1);
		p = pct + 1 + n;
		if (rc < 0)
			break;
		switch (pct[n]) { /* the conversion's last letter */
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (s == NULL)
				s = "(null)"; /* as glibc prints it */
			rc = buf_append(b, s, strlen(s));
			break;
		}
		case 'c':
			rc = buf_putc(b, (char)va_arg(ap, int));
			break;
		case '%':
			rc = buf_putc(b, '%');
			break;
		case 'd':
			rc = buf_append_signed(b, n == 1 ? va_arg(ap, int)
					       : pct[1] == 'z' ? (long long)va_arg(ap, ssize_t)
					       : n == 2 ? va_arg(ap, long) : va_arg(ap, long long));
			break;
		case 'u':
			rc = buf_append_dec(b, n == 1 ? va_arg(ap, unsigned)
					    : pct[1] == 'z' ? va_arg(ap, size_t)
					    : n == 2 ? va_arg(ap, unsigned long)
						     : va_arg(ap, unsigned long long), false);
			break;
		}
	}
	return rc;
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
	size_t old = b->len;
	va_list ap;
	int n;

	if (buf_fmt_simple(fmt)) {
		va_start(ap, fmt);
		n = buf_vappend_simple(b, fmt, ap);
		va_end(ap);
		if (n < 0)
			b->len = old; /* all or nothing, like the stdio path */
		return n;
	}
	/* One vsnprintf when the text fits the room left, two otherwise. */
	va_start(ap, fmt);
	n = vsnprintf(b->data != NULL ? b->data + b->len : NULL,
		      b->data != NULL ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (b->data != NULL && (size_t)n < b->cap - b->len) {
		if (b->len + (size_t)n > b->max)
			return -1;
		b->len += (size_t)n;
		return 0;
	}
	if (buf_reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_put_uint(struct buf *b, uint64_t v)
{
	char digits[20]; /* UINT64_MAX has 20 */
	size_t n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	return buf_append(b, digits + n, sizeof(digits) - n);
}

int buf_cstr(struct buf *b)
{
	if (buf_reserve(b, 0) < 0)
		return -1;
	if (b->data == NULL && buf_reserve(b, 1) < 0)
		return -1;
	b->data[b->len] = '\0';
	return 0;
}

size_t str_copy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

bool str_ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

void str_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

char *str_trim(char *s)
{
	char *start = s, *end;

	while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n')
		start++;
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' ||
			       end[-1] == '\r' || end[-1] == '\n'))
		end--;
	*end = '\0';
	if (start != s)
		memmove(s, start, (size_t)(end - start) + 1);
	return s;
}

int str_to_u64(const char *s, uint64_t min, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*value_r = v;
	return 0;
}

int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_small_fd(int fd, size_t max, char **data_r, size_t *len_r)
{
	struct stat st;
	char *data;
	size_t len = 0;

	if (fstat(fd, &st) < 0)
		return -1;
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		return -1;
	}
	data = malloc((size_t)st.st_size + 1);
	if (data == NULL)
		return -1;
	for (;;) {
		ssize_t n;
		if (len == (size_t)st.st_size) {
			/* The file may have grown since fstat: check for more. */
			char extra;
			n = read(fd, &extra, 1);
			if (n == 0)
				break;
			if (n > 0)
				errno = EAGAIN;
			if (n > 0 || errno != EINTR) {
				free(data);
				return -1;
			}
			continue;
		}
		n = read(fd, data + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(data);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

int read_small_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc, saved;

	if (fd < 0)
		return -1;
	rc = read_small_fd(fd, max, data_r, len_r);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int fsync_parent_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc, saved;

	if (str_copy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL)
		str_copy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Write a temporary file beside path, fsync it, then put it in place:
 * rename(2) over an old file, or link(2), which fails with EEXIST when
 * path exists (never replacing it); then fsync the directory. */
static int write_file_via_tmp(const char *path, const void *data, size_t len, mode_t mode,
			      bool replace)
{
	char tmp[PATH_MAX];
	int fd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | (replace ? O_TRUNC : O_EXCL) | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) < 0 || write_full(fd, data, len) < 0 || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (replace ? rename(tmp, path) < 0 : link(tmp, path) < 0)
		goto fail;
	if (!replace)
		unlink(tmp);
	return fsync_parent_dir(path);
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_file_via_tmp(path, data, len, mode, true);
}

int write_file_new(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_file_via_tmp(path, data, len, mode, false);
}

/* mkdir -p; with durable, each directory it makes has its entry fsynced
 * in its parent before the next one is made. */
static int mkdir_p_walk(const char *path, mode_t mode, bool durable)
{
	char tmp[PATH_MAX];
	size_t len;

	if (str_copy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	len = strlen(tmp);
	while (len > 1 && tmp[len - 1] == '/')
		tmp[--len] = '\0';
	for (char *p = tmp + 1;; p++) {
		bool last = *p == '\0';

		if (!last && *p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) == 0) {
			if (durable && fsync_parent_dir(tmp) < 0)
				return -1;
		} else if (errno != EEXIST) {
			return -1;
		}
		if (last)
			return 0;
		*p = '/';
	}
}

int mkdir_p(const char *path, mode_t mode)
{
	return mkdir_p_walk(path, mode, false);
}

int mkdir_p_durable(const char *path, mode_t mode)
{
	return mkdir_p_walk(path, mode, true);
}

int random_bytes(void *out, size_t len)
{
	if (len > INT_MAX)
		return -1;
	return RAND_bytes(out, (int)len) == 1 ? 0 : -1;
}
