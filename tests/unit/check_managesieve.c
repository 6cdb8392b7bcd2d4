/* ManageSieve's command reader (msieve_parse.c) and the script store
 * (maildir/md_sieve.c).  The reader is fed the way core/conn feeds it:
 * a line, the literal's octets (split at every offset), the next line. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msieve_private.h"
#include "store_test.h"

/* Feed a whole command as conn would: lines, and for each literal its
 * octets in chunks of `chunk` (0: all at once). */
static enum msieve_read feed(struct msieve_command *c, const char *in, size_t len, size_t chunk,
			     bool response)
{
	size_t pos = 0;
	enum msieve_read r = MSIEVE_READ_DONE;

	while (pos < len) {
		const char *nl = memchr(in + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - in) : len, llen = end - pos;

		if (llen > 0 && in[pos + llen - 1] == '\r')
			llen--;
		r = msieve_read_line(c, in + pos, llen, response);
		pos = end + 1;
		if (r != MSIEVE_READ_LITERAL)
			return r;
		for (uint64_t left = c->literal_left; left > 0;) {
			size_t n = chunk == 0 || chunk > left ? (size_t)left : chunk;

			ck_assert_uint_le(pos + n, len);
			msieve_read_bytes(c, in + pos, n);
			pos += n;
			left -= n;
		}
		response = false;
	}
	return r;
}

START_TEST(test_managesieve_reader)
{
	struct msieve_command c;
	static const char put[] = "putscript \"a \\\"b\\\\\" {11+}\r\nline1\r\nl\"2\r\n";

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(feed(&c, put, strlen(put), 0, false), MSIEVE_READ_DONE);
	ck_assert_ptr_null(c.error);
	ck_assert_str_eq(c.verb, "PUTSCRIPT");
	ck_assert_uint_eq(c.nargs, 2);
	ck_assert_str_eq(c.args[0].data, "a \"b\\");
	ck_assert_uint_eq(c.args[1].len, 11);
	ck_assert_mem_eq(c.args[1].data, "line1\r\nl\"2\r", 11);
	msieve_command_reset(&c);

	/* every split of the literal's octets gives the same argument */
	for (size_t chunk = 1; chunk <= 11; chunk++) {
		ck_assert_int_eq(feed(&c, put, strlen(put), chunk, false), MSIEVE_READ_DONE);
		ck_assert_mem_eq(c.args[1].data, "line1\r\nl\"2\r", 11);
		msieve_command_reset(&c);
	}

	/* two literals, synchronizing form too, and a number */
	static const char ren[] = "RENAMESCRIPT {1}\r\na {2+}\r\nbc\r\n";
	ck_assert_int_eq(feed(&c, ren, strlen(ren), 0, false), MSIEVE_READ_DONE);
	ck_assert_uint_eq(c.nargs, 2);
	ck_assert_str_eq(c.args[0].data, "a");
	ck_assert_str_eq(c.args[1].data, "bc");
	msieve_command_reset(&c);
	ck_assert_int_eq(feed(&c, "HAVESPACE \"x\" 4294967295", 24, 0, false), MSIEVE_READ_DONE);
	ck_assert_ptr_null(c.error);
	ck_assert_int_eq(c.args[1].type, MSIEVE_ARG_NUMBER);
	ck_assert_uint_eq(c.args[1].number, 4294967295u);
	msieve_command_reset(&c);
	ck_assert_int_eq(feed(&c, "HAVESPACE \"x\" 4294967296", 24, 0, false), MSIEVE_READ_DONE);
	ck_assert_ptr_nonnull(c.error);
	msieve_command_reset(&c);

	/* an empty literal, then more of the command on the next line */
	static const char empty[] = "RENAMESCRIPT {0+}\r\n {1+}\r\nb\r\n";
	ck_assert_int_eq(feed(&c, empty, strlen(empty), 0, false), MSIEVE_READ_DONE);
	ck_assert_ptr_null(c.error);
	ck_assert_uint_eq(c.nargs, 2);
	ck_assert_uint_eq(c.args[0].len, 0);
	ck_assert_str_eq(c.args[1].data, "b");
	msieve_command_reset(&c);

	/* a SASL response: a string without a verb */
	ck_assert_int_eq(feed(&c, "\"AGEAYg==\"", 10, 0, true), MSIEVE_READ_DONE);
	ck_assert_str_eq(c.verb, "");
	ck_assert_str_eq(c.args[0].data, "AGEAYg==");
	msieve_command_reset(&c);
}
END_TEST

START_TEST(test_managesieve_reader_errors)
{
	struct msieve_command c;
	static const char *const bad[] = {
		"GETSCRIPT x", "GETSCRIPT \"x", "GETSCRIPT \"x\"\"y\"", "GETSCRIPT  \"x\"",
		"GETSCRIPT \"\\n\"", "GETSCRIPT \"a\" \"b\" \"c\" \"d\"", "G3T", "GETSCRIPT {x}",
		"GETSCRIPT \"x\" ", "VERYVERYLONGVERBNAME",
	};

	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(msieve_read_line(&c, bad[i], strlen(bad[i]), false), MSIEVE_READ_DONE);
		ck_assert_msg(c.error != NULL, "accepted: %s", bad[i]);
		msieve_command_reset(&c);
	}
	/* after an error the announced literal is still read, and dropped */
	ck_assert_int_eq(msieve_read_line(&c, "FOO x {6+}", 10, false), MSIEVE_READ_LITERAL);
	ck_assert(c.discarding);
	ck_assert_uint_eq(c.literal_left, 6);
	msieve_read_bytes(&c, "LOGOUT", 6);
	ck_assert_int_eq(msieve_read_line(&c, "", 0, false), MSIEVE_READ_DONE);
	ck_assert_ptr_nonnull(c.error);
	msieve_command_reset(&c);
	/* a script over the limit: QUOTA/MAXSIZE, octets dropped */
	ck_assert_int_eq(msieve_read_line(&c, "PUTSCRIPT \"a\" {262145+}", 23, false),
			 MSIEVE_READ_LITERAL);
	ck_assert_str_eq(c.error_code, "QUOTA/MAXSIZE");
	ck_assert(c.discarding);
	msieve_command_reset(&c);
	/* beyond what is worth reading: fatal */
	ck_assert_int_eq(msieve_read_line(&c, "PUTSCRIPT \"a\" {99999999999+}", 28, false),
			 MSIEVE_READ_FATAL);
	msieve_command_reset(&c);
}
END_TEST

START_TEST(test_managesieve_names)
{
	char longname[MD_SIEVE_NAME_MAX + 8] = "";

	ck_assert_int_eq(md_sieve_name_check("vacation", 8), MD_OK);
	ck_assert_int_eq(md_sieve_name_check("50% \"x\"", 7), MD_OK);
	ck_assert_int_eq(md_sieve_name_check("\xc3\xa9t\xc3\xa9", 5), MD_OK);
	ck_assert_int_eq(md_sieve_name_check("", 0), MD_BADNAME);
	ck_assert_int_eq(md_sieve_name_check(".x", 2), MD_BADNAME);
	ck_assert_int_eq(md_sieve_name_check("a/b", 3), MD_BADNAME);
	ck_assert_int_eq(md_sieve_name_check("a\tb", 3), MD_BADNAME);
	ck_assert_int_eq(md_sieve_name_check("a\0b", 3), MD_BADNAME);
	ck_assert_int_eq(md_sieve_name_check("\xc2\x85", 2), MD_BADNAME);     /* U+0085 */
	ck_assert_int_eq(md_sieve_name_check("\xe2\x80\xa8", 3), MD_BADNAME); /* U+2028 */
	ck_assert_int_eq(md_sieve_name_check("\xc0\xaf", 2), MD_BADNAME);     /* overlong */
	ck_assert_int_eq(md_sieve_name_check("\xed\xa0\x80", 3), MD_BADNAME); /* surrogate */
	ck_assert_int_eq(md_sieve_name_check("\xe2\x80", 2), MD_BADNAME);     /* cut short */
	for (int i = 0; i < 128; i++)
		strcat(longname, "\xd0\xb6");
	ck_assert_int_eq(md_sieve_name_check(longname, strlen(longname)), MD_OK);
	strcat(longname, "x");
	ck_assert_int_eq(md_sieve_name_check(longname, strlen(longname)), MD_BADNAME);
}
END_TEST

START_TEST(test_managesieve_store)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_sieve_script *list;
	char path[PATH_MAX], target[64], *data;
	size_t n, len;
	ssize_t tl;

	ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
	ck_assert_int_eq(md_sieve_list(u, &list, &n), MD_OK);
	ck_assert_uint_eq(n, 0);
	free(list);
	ck_assert_int_eq(md_sieve_set_active(u, ""), MD_OK); /* nothing active: fine */
	ck_assert_int_eq(md_sieve_get(u, "a", &data, &len), MD_NOTFOUND);
	ck_assert_int_eq(md_sieve_put(u, "a", "keep;\n", 6), MD_OK);
	ck_assert_int_eq(md_sieve_set_active(u, "nosuch"), MD_NOTFOUND);
	ck_assert_int_eq(md_sieve_set_active(u, "a"), MD_OK);
	user_dir(path, sizeof(path), "postern-sieve/.active");
	tl = readlink(path, target, sizeof(target) - 1);
	ck_assert_int_gt(tl, 0);
	target[tl] = '\0';
	ck_assert_str_eq(target, "a.sieve");
	ck_assert_int_eq(md_sieve_delete(u, "a"), MD_DENIED);
	ck_assert_int_eq(md_sieve_put(u, "b", "keep;\n", 6), MD_OK);
	ck_assert_int_eq(md_sieve_rename(u, "a", "b"), MD_EXISTS);
	ck_assert_int_eq(md_sieve_rename(u, "x", "y"), MD_NOTFOUND);
	ck_assert_int_eq(md_sieve_rename(u, "a", "c"), MD_OK);
	tl = readlink(path, target, sizeof(target) - 1);
	target[tl] = '\0';
	ck_assert_str_eq(target, "c.sieve");
	ck_assert_int_eq(md_sieve_get(u, "c", &data, &len), MD_OK);
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq(data, "keep;\n");
	free(data);
	ck_assert_int_eq(md_sieve_have_space(u, "x", MD_SIEVE_SIZE_MAX + 1), MD_TOOBIG);
	ck_assert_int_eq(md_sieve_put(u, "x", "", MD_SIEVE_SIZE_MAX + 1), MD_TOOBIG);
	for (int i = 2; i < MD_SIEVE_SCRIPTS_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		ck_assert_int_eq(md_sieve_put(u, name, "keep;\n", 6), MD_OK);
	}
	ck_assert_int_eq(md_sieve_have_space(u, "more", 1), MD_LIMIT);
	ck_assert_int_eq(md_sieve_put(u, "more", "keep;\n", 6), MD_LIMIT);
	ck_assert_int_eq(md_sieve_have_space(u, "b", 1), MD_OK); /* a replacement */
	ck_assert_int_eq(md_sieve_list(u, &list, &n), MD_OK);
	ck_assert_uint_eq(n, MD_SIEVE_SCRIPTS_MAX);
	for (size_t i = 0; i < n; i++)
		ck_assert(list[i].active == (strcmp(list[i].name, "c") == 0));
	free(list);
	ck_assert_int_eq(md_sieve_set_active(u, ""), MD_OK);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(md_sieve_delete(u, "c"), MD_OK);
	ck_assert_int_eq(md_sieve_delete(u, "c"), MD_NOTFOUND);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("managesieve");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_managesieve_reader);
	tcase_add_test(tc, test_managesieve_reader_errors);
	tcase_add_test(tc, test_managesieve_names);
	tcase_add_test(tc, test_managesieve_store);
	suite_add_tcase(suite, tc);
	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
