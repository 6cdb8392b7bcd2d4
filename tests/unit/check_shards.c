/* The shards file (auth/auth_shards.c): shard lines with every port kind
 * (lmtp= as a port and as a unix socket), look-up by user, domain and "*",
 * the first of two equal keys winning after the sort, a broken file
 * keeping the last good one, the refusals of malformed lines, and a shard
 * found by its name. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "auth_private.h"
#include "log.h"
#include "util.h"

static char shards_path[64];

static void put(const char *text)
{
	ck_assert_int_eq(write_file_atomic(shards_path, text, strlen(text), 0600), 0);
}

static void setup(void)
{
	int fd;

	str_copy(shards_path, "/tmp/postern-shards-XXXXXX", sizeof(shards_path));
	fd = mkstemp(shards_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	log_level_current = LOG_LEVEL_ERROR; /* the refusals below are logged */
}

static void teardown(void)
{
	unlink(shards_path);
}

START_TEST(test_shards_lookup)
{
	struct auth_shards *s = auth_shards_new(shards_path);
	struct auth_shard sh;

	put("# comment\n"
	    "shard a 10.0.0.11 imap=143 pop3=110 smtp=587 lmtp=24\n"
	    "shard b ::1 lmtp=/run/postern-b/lmtp.sock\n"
	    "\n"
	    "Bob@Example.org b   # a user, any case\n"
	    "example.net b\n"
	    "bob@example.org a   # listed twice: the first wins\n"
	    "* a\n");
	ck_assert(auth_shards_find(s, "bob@example.org", &sh));
	ck_assert_str_eq(sh.name, "b");
	ck_assert_str_eq(sh.address, "::1");
	ck_assert_str_eq(sh.lmtp_path, "/run/postern-b/lmtp.sock");
	ck_assert_int_eq(sh.lmtp_port, 0);
	ck_assert(auth_shards_find(s, "CAROL@example.NET", &sh));
	ck_assert_str_eq(sh.name, "b");
	ck_assert(auth_shards_find(s, "dave@example.org", &sh));
	ck_assert_str_eq(sh.name, "a");
	ck_assert_int_eq(sh.imap_port, 143);
	ck_assert_int_eq(sh.pop3_port, 110);
	ck_assert_int_eq(sh.smtp_port, 587);
	ck_assert_int_eq(sh.lmtp_port, 24);
	ck_assert_str_eq(sh.lmtp_path, "");
	ck_assert(auth_shards_named(s, "b", &sh));
	ck_assert_str_eq(sh.lmtp_path, "/run/postern-b/lmtp.sock");
	ck_assert(!auth_shards_named(s, "c", &sh));
	auth_shards_free(s);
}
END_TEST

START_TEST(test_shards_no_default)
{
	struct auth_shards *s = auth_shards_new(shards_path);
	struct auth_shard sh;

	put("shard a 127.0.0.1 lmtp=2424\nalice@example.org a\n");
	ck_assert(auth_shards_find(s, "alice@example.org", &sh));
	ck_assert(!auth_shards_find(s, "bob@example.org", &sh));
	auth_shards_free(s);
}
END_TEST

START_TEST(test_shards_broken_keeps_last)
{
	static const char *const bad[] = {
		"shard a 127.0.0.1 lmtp=0\n* a\n",
		"shard a 127.0.0.1 lmtp=65536\n* a\n",
		"shard a 127.0.0.1 lmtp=relative/path\n* a\n",
		"shard a 127.0.0.1 lmtp=24x\n* a\n",
		"shard a 127.0.0.1 ftp=21\n* a\n",
		"shard a mail.example.org lmtp=24\n* a\n",
		"shard a 127.0.0.1\nshard a 127.0.0.2\n* a\n",
		"shard 0123456789012345678901234567890123 127.0.0.1\n",
		"* nosuchshard\n",
		"shard a 127.0.0.1 lmtp=/a/very/long/socket/path/that/does/not/fit/into/"
		"sun_path/of/one/hundred/and/eight/octets/at/all/xxxxxxxxxxxxxxxxxxxx\n* a\n",
	};
	struct auth_shards *s = auth_shards_new(shards_path);
	struct auth_shard sh;

	put("shard good 127.0.0.1 lmtp=2424\n* good\n");
	ck_assert(auth_shards_find(s, "x@example.org", &sh));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* a different size each time, so the reload is never skipped */
		char text[512];
		snprintf(text, sizeof(text), "%s%*s\n", bad[i], (int)i + 1, "#");
		put(text);
		memset(&sh, 0, sizeof(sh));
		ck_assert_msg(auth_shards_find(s, "x@example.org", &sh), "case %zu", i);
		ck_assert_msg(strcmp(sh.name, "good") == 0 && sh.lmtp_port == 2424,
			      "case %zu: the last good file stays in use", i);
	}
	auth_shards_free(s);
}
END_TEST

START_TEST(test_shards_missing_file)
{
	struct auth_shards *s = auth_shards_new("/nonexistent/postern/shards");
	struct auth_shard sh;

	ck_assert(!auth_shards_find(s, "x@example.org", &sh));
	auth_shards_free(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("shards");
	TCase *tc = tcase_create("shards");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_shards_lookup);
	tcase_add_test(tc, test_shards_no_default);
	tcase_add_test(tc, test_shards_broken_keeps_last);
	tcase_add_test(tc, test_shards_missing_file);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
