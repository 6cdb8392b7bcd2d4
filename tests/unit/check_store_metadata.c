/* METADATA entries of the store (maildir/md_metadata.c, RFC 5464): set
 * and get, values with any octets, all-or-nothing limits, entries
 * following RENAME and DELETE, and the file decoder fed every truncation
 * of a valid file. */
#include "store_test.h"

#include "util.h"

static struct md_user *test_user(struct md_store *s)
{
	struct md_user *u;

	ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
	return u;
}

static void test_set1(struct md_user *u, const char *mailbox, const char *name,
		      const char *value, size_t len, enum md_result want)
{
	struct md_metadata c = { .name = (char *)name, .value = (char *)value, .value_len = len };

	ck_assert_int_eq(md_metadata_set(u, mailbox, &c, 1), want);
}

/* The value of name in mailbox, or NULL; *len_r its length. */
static char *test_get1(struct md_user *u, const char *mailbox, const char *name, size_t *len_r)
{
	struct md_metadata *list;
	size_t n;
	char *v = NULL;

	ck_assert_int_eq(md_metadata_get(u, mailbox, &list, &n), MD_OK);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].name, name) == 0) {
			v = malloc(list[i].value_len + 1);
			memcpy(v, list[i].value, list[i].value_len + 1);
			*len_r = list[i].value_len;
		}
	}
	md_metadata_free(list, n);
	return v;
}

START_TEST(test_store_metadata_set_get)
{
	struct md_store *s = open_store();
	struct md_user *u = test_user(s);
	size_t len = 0;
	char *v;

	test_set1(u, "INBOX", "/private/comment", "a\0b\nc", 5, MD_OK);
	test_set1(u, "", "/shared/comment", "server", 6, MD_OK);
	v = test_get1(u, "INBOX", "/private/comment", &len);
	ck_assert_uint_eq(len, 5);
	ck_assert(memcmp(v, "a\0b\nc", 5) == 0);
	free(v);
	ck_assert_ptr_null(test_get1(u, "INBOX", "/shared/comment", &len));
	v = test_get1(u, "", "/shared/comment", &len);
	ck_assert_str_eq(v, "server");
	free(v);
	test_set1(u, "INBOX", "/private/comment", NULL, 0, MD_OK);
	ck_assert_ptr_null(test_get1(u, "INBOX", "/private/comment", &len));
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_metadata_limits)
{
	struct md_store *s = open_store();
	struct md_user *u = test_user(s);
	struct md_metadata many[MD_METADATA_ENTRIES_MAX + 1];
	char names[MD_METADATA_ENTRIES_MAX + 1][32], *big = calloc(1, MD_METADATA_VALUE_MAX + 1);
	struct md_metadata *list;
	size_t n;

	test_set1(u, "INBOX", "/private/big", big, MD_METADATA_VALUE_MAX + 1, MD_TOOBIG);
	test_set1(u, "INBOX", "/private/big", big, MD_METADATA_VALUE_MAX, MD_OK);
	for (size_t i = 0; i <= MD_METADATA_ENTRIES_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "/private/e%zu", i);
		many[i] = (struct md_metadata){ .name = names[i], .value = "v", .value_len = 1 };
	}
	/* with /private/big that is one too many: nothing is stored */
	ck_assert_int_eq(md_metadata_set(u, "INBOX", many, MD_METADATA_ENTRIES_MAX), MD_LIMIT);
	ck_assert_int_eq(md_metadata_get(u, "INBOX", &list, &n), MD_OK);
	ck_assert_uint_eq(n, 1);
	md_metadata_free(list, n);
	/* other mailboxes count apart */
	ck_assert_int_eq(md_metadata_set(u, "", many, MD_METADATA_ENTRIES_MAX), MD_OK);
	free(big);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_metadata_rename_delete)
{
	struct md_store *s = open_store();
	struct md_user *u = test_user(s);
	size_t len;
	char *v;

	ck_assert_int_eq(md_mailbox_create(u, "Proj", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Proj/sub", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Projects", 0), MD_OK);
	test_set1(u, "Proj", "/private/comment", "p", 1, MD_OK);
	test_set1(u, "Proj/sub", "/private/comment", "s", 1, MD_OK);
	test_set1(u, "Projects", "/private/comment", "x", 1, MD_OK);
	ck_assert_int_eq(md_mailbox_rename(u, "Proj", "Work"), MD_OK);
	v = test_get1(u, "Work", "/private/comment", &len);
	ck_assert_str_eq(v, "p");
	free(v);
	v = test_get1(u, "Work/sub", "/private/comment", &len);
	ck_assert_str_eq(v, "s");
	free(v);
	/* "Projects" is not a child of "Proj" */
	v = test_get1(u, "Projects", "/private/comment", &len);
	ck_assert_str_eq(v, "x");
	free(v);
	ck_assert_ptr_null(test_get1(u, "Proj", "/private/comment", &len));
	ck_assert_int_eq(md_mailbox_delete(u, "Work"), MD_OK);
	ck_assert_ptr_null(test_get1(u, "Work", "/private/comment", &len));
	v = test_get1(u, "Work/sub", "/private/comment", &len);
	ck_assert_str_eq(v, "s"); /* RFC 3501 §6.3.4: children are not deleted */
	free(v);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* Every prefix of a valid file: whole records read, a cut one is
 * MD_CORRUPT, never a crash or a guess. */
START_TEST(test_store_metadata_truncated_file)
{
	struct md_store *s = open_store();
	struct md_user *u = test_user(s);
	char path[PATH_MAX], *data;
	size_t len;

	test_set1(u, "INBOX", "/private/a", "one", 3, MD_OK);
	test_set1(u, "INBOX", "/private/b", "two\n2", 5, MD_OK);
	snprintf(path, sizeof(path), "%s/postern-metadata", u->root);
	ck_assert_int_eq(read_small_file(path, 1 << 20, &data, &len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		struct md_metadata *list;
		size_t n;
		enum md_result r;

		ck_assert_int_eq(write_file_atomic(path, data, cut, 0600), 0);
		r = md_metadata_get(u, "INBOX", &list, &n);
		ck_assert_msg(r == MD_CORRUPT || (r == MD_OK && n < 2), "cut %zu: %s", cut,
			      md_result_name(r));
		if (r == MD_OK)
			md_metadata_free(list, n);
	}
	free(data);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("store_metadata");
	TCase *tc = tcase_create("store_metadata");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_metadata_set_get);
	tcase_add_test(tc, test_store_metadata_limits);
	tcase_add_test(tc, test_store_metadata_rename_delete);
	tcase_add_test(tc, test_store_metadata_truncated_file);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
