/* What the Maildir keeps for the index beyond the messages and their
 * file names, so that a rebuilt index gets it back: keywords beyond the 26
 * letters (postern-keywords, md_keywords.c) and the RFC 8474 ids
 * (postern-mailboxid, the ",E=" field of copies: md_objectid.c).  Each
 * test works in its own mkdtemp() directory. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_test.h"

/* Keywords beyond the 26 letters come back from postern-keywords after
 * the index is lost (md_keywords.c); the letters' names from
 * dovecot-keywords. */
START_TEST(test_store_keywords_beyond_letters)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_flags_result res;
	char names[30][8], path[PATH_MAX], **kwn;
	const char *kw[30];
	uint32_t uid = 1;
	size_t n_kwn;
	struct md_msg msg;

	for (int i = 0; i < 30; i++) {
		snprintf(names[i], sizeof(names[i]), "kw%02d", i);
		kw[i] = names[i];
	}
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_store(mb, &uid, 1, MD_FLAGS_ADD, 0, kw, 30, 0, &res), MD_OK);
	ck_assert_int_eq(res.result, MD_OK);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);

	snprintf(path, sizeof(path), "%s/index", tdir);
	ck_assert_int_eq(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 1, 0, &msg), MD_OK);
	ck_assert_int_eq(md_mailbox_keywords(mb, &kwn, &n_kwn), MD_OK);
	for (int i = 0; i < 30; i++) {
		size_t k;

		for (k = 0; k < n_kwn; k++)
			if (kwn[k] != NULL && strcmp(kwn[k], names[i]) == 0)
				break;
		ck_assert_msg(k < n_kwn, "%s lost", names[i]);
		ck_assert_msg(msg.keywords[k / 64] & (1ULL << (k % 64)), "%s not set", names[i]);
	}
	md_mailbox_keywords_free(kwn, n_kwn);
	md_msg_clear(&msg);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* RFC 8474 ids (md_objectid.c): MAILBOXID stays across RENAME and a lost
 * index, a new mailbox of an old name gets a new one; EMAILID is shared
 * by a message and its copies, also after the index is lost. */
START_TEST(test_store_objectids)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	char a[MD_OBJECTID_MAX + 1], b[MD_OBJECTID_MAX + 1], e1[MD_OBJECTID_MAX + 1];
	char e2[MD_OBJECTID_MAX + 1], path[PATH_MAX];
	uint32_t uid = 1, uv, copy_uid;
	struct md_msg msg;

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Box", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_objectid(u, "Box", a), MD_OK);
	ck_assert_int_eq(md_mailbox_objectid(u, "Box", b), MD_OK);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(md_mailbox_objectid(u, "INBOX", b), MD_OK);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(md_mailbox_rename(u, "Box", "Renamed"), MD_OK);
	ck_assert_int_eq(md_mailbox_objectid(u, "Renamed", b), MD_OK);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(md_mailbox_create(u, "Box", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_objectid(u, "Box", b), MD_OK);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(md_mailbox_objectid(u, "NoSuchBox", b), MD_NOMAILBOX);

	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &msg), MD_OK);
	md_msg_emailid(&msg, e1);
	md_msg_clear(&msg);
	ck_assert_int_eq(md_msg_copy(mb, &uid, 1, "Renamed", false, 0, 0, &uv, &copy_uid), MD_OK);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);

	snprintf(path, sizeof(path), "%s/index", tdir);
	ck_assert_int_eq(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_objectid(u, "Renamed", b), MD_OK);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(md_mailbox_open(u, "Renamed", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_mailbox_open_objectid(mb, b), MD_OK);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &msg), MD_OK);
	md_msg_emailid(&msg, e2);
	ck_assert_str_eq(e1, e2);
	md_msg_clear(&msg);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

static Suite *store_kept_suite(void)
{
	Suite *s = suite_create("store_kept");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_keywords_beyond_letters);
	tcase_add_test(tc, test_store_objectids);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_kept_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
