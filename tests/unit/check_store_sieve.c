/* Sieve at delivery in the store (maildir/md_sieve_active.c): the active
 * script behind postern-sieve/.active (none, dangling, outside the
 * directory, too large), and the vacation record: one reply per sender and
 * handle until its period ends, expired lines dropped, a damaged file
 * read over, the number of lines bounded.  Each test works in its own
 * mkdtemp() directory. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_test.h"

static void sieve_dir(char *out, size_t len)
{
	snprintf(out, len, "%s/mail/example.test/alice/postern-sieve", tdir);
}

static void put_file(const char *dir, const char *name, const char *text, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void set_active(const char *dir, const char *target)
{
	char link[PATH_MAX];

	snprintf(link, sizeof(link), "%s/.active", dir);
	unlink(link);
	ck_assert_int_eq(symlink(target, link), 0);
}

START_TEST(test_store_sieve_active)
{
	struct md_store *s = open_store();
	char dir[PATH_MAX], name[MD_SIEVE_NAME_MAX + 1], *text, *big;
	size_t len;

	/* no Maildir, no directory, no link: no script */
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)), MD_OK);
	ck_assert_ptr_null(text);
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	sieve_dir(dir, sizeof(dir));
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)), MD_OK);
	ck_assert_ptr_null(text);
	put_file(dir, "main.sieve", "keep;\n", 6);
	set_active(dir, "main.sieve");
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)), MD_OK);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "keep;\n");
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq(name, "main");
	free(text);
	/* dangling: no script; leaving the directory or not .sieve: refused */
	set_active(dir, "gone.sieve");
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)), MD_OK);
	ck_assert_ptr_null(text);
	set_active(dir, "../postern-indexed");
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)),
			 MD_BADNAME);
	set_active(dir, "/etc/passwd");
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)),
			 MD_BADNAME);
	set_active(dir, ".vacation");
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)),
			 MD_BADNAME);
	/* MD_SIEVE_SCRIPT_MAX */
	big = malloc(MD_SIEVE_SCRIPT_MAX + 1);
	memset(big, '#', MD_SIEVE_SCRIPT_MAX + 1);
	put_file(dir, "big.sieve", big, MD_SIEVE_SCRIPT_MAX + 1);
	free(big);
	set_active(dir, "big.sieve");
	ck_assert_int_eq(md_sieve_active_read(s, ADDR, &text, &len, name, sizeof(name)),
			 MD_TOOBIG);
	ck_assert_ptr_null(text);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_sieve_vacation_record)
{
	struct md_store *s = open_store();
	char dir[PATH_MAX], path[PATH_MAX], *text;
	size_t len;
	bool send;
	long long past = (long long)time(NULL) - 10;

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "bob@b.example", "h1", 1, &send), MD_OK);
	ck_assert(send);
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "BOB@b.example", "h1", 1, &send), MD_OK);
	ck_assert(!send); /* the same sender within the day */
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "bob@b.example", "h2", 1, &send), MD_OK);
	ck_assert(send); /* another vacation (handle) */
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "carol@c.example", "h1", 1, &send),
			 MD_OK);
	ck_assert(send);
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "a b@c", "h1", 1, &send), MD_BADNAME);
	ck_assert(!send);
	/* the period over: a line whose time has passed is dropped */
	sieve_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/.vacation", dir);
	{
		char line[256];
		int n = snprintf(line, sizeof(line), "%lld h1 dave@d.example\ngarbage\n"
				 "%lld h1 erin@e.example\n", past, past + 1000);
		put_file(dir, ".vacation", line, (size_t)n);
	}
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "dave@d.example", "h1", 7, &send), MD_OK);
	ck_assert(send);
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "erin@e.example", "h1", 7, &send), MD_OK);
	ck_assert(!send);
	ck_assert_int_eq(read_small_file(path, 1 << 20, &text, &len), 0);
	ck_assert_ptr_null(strstr(text, "garbage"));
	ck_assert_ptr_nonnull(strstr(text, " h1 dave@d.example\n"));
	free(text);
	/* MD_SIEVE_VACATION_MAX lines at most: a full record, then more */
	{
		size_t cap = (size_t)MD_SIEVE_VACATION_MAX * 64, o = 0;
		char *full = malloc(cap);
		for (int i = 0; i < MD_SIEVE_VACATION_MAX; i++)
			o += (size_t)snprintf(full + o, cap - o, "%lld h9 s%d@x.example\n",
					      past + 100000 + i, i);
		put_file(dir, ".vacation", full, o);
		free(full);
	}
	for (int i = 0; i < 3; i++) {
		char who[64];
		snprintf(who, sizeof(who), "new%d@x.example", i);
		ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, who, "h9", 7, &send), MD_OK);
		ck_assert(send);
	}
	ck_assert_int_eq(md_sieve_vacation_check(s, ADDR, "new2@x.example", "h9", 7, &send),
			 MD_OK);
	ck_assert(!send); /* the newest are kept, the soonest to expire dropped */
	ck_assert_int_eq(read_small_file(path, 1 << 20, &text, &len), 0);
	{
		size_t lines = 0;
		for (size_t i = 0; i < len; i++)
			lines += text[i] == '\n';
		ck_assert_uint_eq(lines, MD_SIEVE_VACATION_MAX);
	}
	free(text);
	md_store_close(s);
}
END_TEST

static Suite *store_sieve_suite(void)
{
	Suite *s = suite_create("store_sieve");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_store_sieve_active);
	tcase_add_test(tc, test_store_sieve_vacation_record);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_sieve_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
