/* Shared by the store's unit tests (check_store*.c):
 * a temp data directory per test and small delivery/file helpers. */
#ifndef TESTS_UNIT_STORE_TEST_H
#define TESTS_UNIT_STORE_TEST_H

#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "md_private.h"
#include "store.h"

/* paths here are short mkdtemp() names: truncation cannot happen */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define ADDR "alice@example.test"

static char tdir[PATH_MAX];

static inline int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static inline void setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
}

static inline void teardown(void)
{
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline struct md_store *open_store(void)
{
	struct md_store *s;
	char err[256];

	ck_assert_msg(md_store_open(tdir, NULL, &s, err, sizeof(err)) == MD_OK, "%s", err);
	return s;
}

/* Deliver text to address/mailbox; returns the result, uid in *uid_r. */
static inline enum md_result deliver(struct md_store *s, const char *addr,
			      const char *mailbox, const char *text,
			      unsigned flags, uint64_t quota, uint32_t *uid_r)
{
	struct md_delivery *d;
	struct md_target t = { .address = addr, .mailbox = mailbox, .flags = flags,
			       .quota_bytes = quota, .create_user = true };
	enum md_result r = md_delivery_open(s, 0, 0, &d);

	if (r != MD_OK)
		return r;
	md_delivery_write(d, text, strlen(text));
	r = md_delivery_commit(d, &t, 1);
	md_delivery_free(d);
	if (uid_r != NULL)
		*uid_r = t.uid;
	return r != MD_OK ? r : t.result;
}

/* not inlined: GCC 12 at -O2 then takes the returned pointer for one to
 * the local it was read through (-Wdangling-pointer false positive) */
__attribute__((noinline, unused))
static char *read_file(const char *path, size_t *len_r)
{
	char *data;
	size_t len;

	if (read_small_file(path, 64 << 20, &data, &len) < 0)
		return NULL;
	if (len_r != NULL)
		*len_r = len;
	return data;
}

static inline size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static inline void user_dir(char *out, size_t len, const char *sub)
{
	snprintf(out, len, "%s/mail/example.test/alice%s%s", tdir, sub[0] ? "/" : "", sub);
}

static inline void write_text(const char *path, const char *text)
{
	ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* One delivery per thread for the concurrency tests: gc_arg.i names the
 * message, r and uid receive the result. */
#define GC_THREADS 12

struct gc_arg {
	struct md_store *s;
	int i;
	enum md_result r;
	uint32_t uid;
};

static inline void *gc_thread(void *p)
{
	struct gc_arg *a = p;
	char text[64];

	snprintf(text, sizeof(text), "Subject: %d\n\nbody %d\n", a->i, a->i);
	a->r = deliver(a->s, ADDR, NULL, text, 0, 0, &a->uid);
	return NULL;
}

#endif
