/* Small byte and string helpers shared by every module. */
#ifndef CORE_UTIL_H
#define CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A growable byte buffer with a hard cap; every append checks it. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* 0: SIZE_MAX */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* 0, or -1 when the cap would be exceeded or memory runs out (buffer kept). */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_putc(struct buf *b, char c);
/* The decimal digits of v, without printf (replies listing 100,000
 * numbers: SORT, THREAD). */
int buf_put_uint(struct buf *b, uint64_t v);
/* NUL-terminates without counting the NUL in len; -1 on cap. */
int buf_cstr(struct buf *b);

/* strlcpy semantics: returns strlen(src); truncation when >= size. */
size_t str_copy(char *dst, const char *src, size_t size);
bool str_ieq(const char *a, const char *b);
void str_lower(char *s);
/* Strip leading and trailing ASCII whitespace in place; returns s. */
char *str_trim(char *s);
/* Parse a whole decimal string into [min,max]; -1 on junk or range. */
int str_to_u64(const char *s, uint64_t min, uint64_t max, uint64_t *value_r);

/* Write all, retrying on EINTR; -1 with errno on failure. */
int write_full(int fd, const void *data, size_t len);
/* Read a whole small file (at most max bytes) into a NUL-terminated heap
 * buffer; -1 with errno (EFBIG when larger than max). */
int read_small_file(const char *path, size_t max, char **data_r, size_t *len_r);
/* The same from an open descriptor (not closed), for a caller that must
 * check what it opened first. */
int read_small_fd(int fd, size_t max, char **data_r, size_t *len_r);
/* Replace path atomically: write to path.tmp.PID, fsync, rename, fsync the
 * directory.  The old file stays whole on any failure or crash. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* The same for a file that must not exist yet: link(2) instead of rename,
 * -1 with EEXIST when path exists (it is never replaced). */
int write_file_new(const char *path, const void *data, size_t len, mode_t mode);
/* fsync the directory that holds path. */
int fsync_parent_dir(const char *path);
/* mkdir -p with the given mode. */
int mkdir_p(const char *path, mode_t mode);
/* The same, each new directory's entry fsynced in its parent (a new
 * Maildir must survive a power cut once a message in it is acknowledged). */
int mkdir_p_durable(const char *path, mode_t mode);

/* Fill with cryptographically random bytes (OpenSSL RAND); -1 on failure. */
int random_bytes(void *out, size_t len);

#endif
