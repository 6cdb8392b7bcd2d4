/* Tests of the store's CONDSTORE/QRESYNC side (maildir/store.h, RFC 7162):
 * the expunge log pruned to md_store_options.expunge_log_max with its
 * horizon and expunge_log_age, md_mailbox_changes() (one snapshot: expunges, new messages,
 * flag changes) and md_msg_changed() with its limit.  Each test works in
 * its own mkdtemp() directory. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_test.h"

static struct md_store *open_store_log(size_t log_max, unsigned age)
{
	struct md_store_options o = { .expunge_log_max = log_max, .expunge_log_age = age };
	struct md_store *s;
	char err[256];

	ck_assert_msg(md_store_open(tdir, &o, &s, err, sizeof(err)) == MD_OK, "%s", err);
	return s;
}

static void expunge_one(struct md_mailbox *mb, uint32_t uid)
{
	uint32_t *ex;
	size_t n;

	ck_assert_int_eq(md_msg_expunge(mb, &uid, 1, 0, &ex, &n), MD_OK);
	ck_assert_uint_eq(n, 1);
	free(ex);
}

/* Dovecot's mod-sequences as doveadm prints them (md_dovecot_modseq.c):
 * sections found by their header lines, columns by name in any order,
 * other mailboxes, bad numbers and overlong lines skipped. */
START_TEST(test_modseq_dovecot_file)
{
	static const char guid[] = "b97fe60e2c10166b277d000083ecc375";
	struct md_dcmodseq ms;
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tdir, MD_DOVECOT_MODSEQ_FILE);
	ck_assert_int_eq(md_dovecot_modseq_read(tdir, guid, &ms), -1); /* no file */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "mailbox\tuidvalidity\thighestmodseq\tguid\n"
		   "Work\t17\t4\t35b4b00e2c10166b277d000083ecc375\n"
		   "INBOX\t16\t21\t%s\r\n"
		   "mailbox-guid\tuid\tmodseq\n"
		   "%s\t4\t14\n"
		   "35b4b00e2c10166b277d000083ecc375\t1\t4\n"
		   "%s\t1\t9\n"
		   "%s\tx\t9\n"
		   "%s\t2\t99999999999999999999999\n", guid, guid, guid, guid, guid);
	fputs(guid, f);
	fputs("\t", f);
	for (int i = 0; i < 600; i++)
		fputc('7', f);
	fputs("\n", f);
	/* columns in another order, later in the file */
	fprintf(f, "uid\tmodseq\tmailbox-guid\n6\t20\t%s\n", guid);
	fclose(f);

	ck_assert_int_eq(md_dovecot_modseq_read(tdir, guid, &ms), 0);
	ck_assert_uint_eq(ms.highest, 21);
	ck_assert_uint_eq(ms.n, 3);
	ck_assert_uint_eq(md_dovecot_modseq_of(&ms, 1), 9);
	ck_assert_uint_eq(md_dovecot_modseq_of(&ms, 4), 14);
	ck_assert_uint_eq(md_dovecot_modseq_of(&ms, 6), 20);
	ck_assert_uint_eq(md_dovecot_modseq_of(&ms, 2), 0);
	md_dovecot_modseq_free(&ms);
	ck_assert_int_eq(md_dovecot_modseq_read(tdir, "00000000000000000000000000000000", &ms), -1);
	ck_assert_int_eq(md_dovecot_modseq_read(tdir, "", &ms), -1);
}
END_TEST

START_TEST(test_modseq_explog_pruned)
{
	struct md_store *s = open_store_log(2, 0);
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	uint32_t *ex;
	size_t n;
	bool pruned;
	uint64_t start, before_last;

	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	start = st.highestmodseq;
	expunge_one(mb, 1);
	expunge_one(mb, 2);
	ck_assert_int_eq(md_mailbox_expunged(mb, start, &ex, &n, &pruned), MD_OK);
	ck_assert(!pruned);
	ck_assert_uint_eq(n, 2);
	free(ex);
	expunge_one(mb, 4);
	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_OK);
	before_last = st.highestmodseq;
	expunge_one(mb, 5);
	/* three of four forgotten would be too many: two are kept */
	ck_assert_int_eq(md_mailbox_expunged(mb, start, &ex, &n, &pruned), MD_OK);
	ck_assert(pruned);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ex[0], 4);
	ck_assert_uint_eq(ex[1], 5);
	free(ex);
	/* after the horizon the log is exact */
	ck_assert_int_eq(md_mailbox_expunged(mb, before_last, &ex, &n, &pruned), MD_OK);
	ck_assert(!pruned);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ex[0], 5);
	free(ex);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

struct backdate {
	uint32_t user, mbox;
	uint64_t modseq;
};

/* The expunge of modseq happened long ago (imap_expunge_log_age). */
static enum md_result backdate_job(struct md_txn *t, void *arg)
{
	const struct backdate *b = arg;
	unsigned char key[16], when[8];

	md_key_mbox(key, b->user, b->mbox);
	md_put64(key + 8, b->modseq);
	md_put64(when, 1);
	return md_kv_put(t, MD_DB_EXPTIME, key, 16, when, 8, 0) == 0 ? MD_OK : MD_TEMPFAIL;
}

START_TEST(test_modseq_explog_age)
{
	struct md_store *s = open_store_log(1, 3600);
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct backdate b;
	uint32_t *ex;
	size_t n;
	bool pruned;
	uint64_t start;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	md_mailbox_ids(mb, &b.user, &b.mbox);
	start = st.highestmodseq;
	for (uint32_t uid = 1; uid <= 3; uid++)
		expunge_one(mb, uid);
	/* beyond the newest one, but young: all kept */
	ck_assert_int_eq(md_mailbox_expunged(mb, start, &ex, &n, &pruned), MD_OK);
	ck_assert(!pruned);
	ck_assert_uint_eq(n, 3);
	free(ex);
	for (b.modseq = start + 1; b.modseq <= start + 2; b.modseq++)
		ck_assert_int_eq(md_write(s, backdate_job, &b), MD_OK);
	expunge_one(mb, 4);
	/* the two old ones go; the young one stays though beyond the newest */
	ck_assert_int_eq(md_mailbox_expunged(mb, start, &ex, &n, &pruned), MD_OK);
	ck_assert(pruned);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ex[0], 3);
	ck_assert_uint_eq(ex[1], 4);
	free(ex);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_modseq_changes_snapshot)
{
	struct md_store *s = open_store_log(2, 0);
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_changes ch;
	struct md_flags_result res[1];
	uint32_t three = 3, *uids;
	size_t n;
	uint64_t start;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	start = st.highestmodseq;
	/* nothing happened: nothing to tell */
	ck_assert_int_eq(md_mailbox_changes(mb, st.uidnext, start, start, &ch), MD_OK);
	ck_assert_uint_eq(ch.n_msgs, 0);
	ck_assert_uint_eq(ch.n_expunged, 0);
	ck_assert_uint_eq(ch.status.highestmodseq, start);
	md_changes_free(&ch);
	ck_assert_int_eq(md_msg_store(mb, &three, 1, MD_FLAGS_ADD, MD_FLAG_FLAGGED, NULL, 0, 0,
				      res), MD_OK);
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: new\n\nx\n", 0, 0, NULL), MD_OK);
	for (uint32_t uid = 1; uid <= 2; uid++)
		expunge_one(mb, uid);
	expunge_one(mb, 4);
	ck_assert_int_eq(md_mailbox_changes(mb, st.uidnext, start, start, &ch), MD_OK);
	ck_assert_uint_eq(ch.n_msgs, 2); /* UID 3 changed, UID 5 new */
	ck_assert_uint_eq(ch.msgs[0].uid, 3);
	ck_assert_uint_eq(ch.msgs[0].flags, MD_FLAG_FLAGGED);
	ck_assert_uint_eq(ch.msgs[0].modseq, res[0].modseq);
	ck_assert_uint_eq(ch.msgs[1].uid, 5);
	ck_assert_ptr_null(ch.msgs[1].meta); /* flags only */
	/* three expunges with a log of two: the UIDs that exist instead */
	ck_assert(ch.expunged_pruned);
	ck_assert_uint_eq(ch.n_uids, 2);
	ck_assert_uint_eq(ch.uids[0], 3);
	ck_assert_uint_eq(ch.uids[1], 5);
	ck_assert_uint_eq(ch.status.messages, 2);
	md_changes_free(&ch);
	/* expunges not wanted (FETCH by sequence number) */
	ck_assert_int_eq(md_mailbox_changes(mb, st.uidnext, start, UINT64_MAX, &ch), MD_OK);
	ck_assert(!ch.expunged_pruned);
	ck_assert_uint_eq(ch.n_expunged, 0);
	md_changes_free(&ch);
	/* md_msg_changed: the index alone, or MD_LIMIT */
	ck_assert_int_eq(md_msg_changed(mb, 1, 10, start, 10, &uids, &n), MD_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(uids[0], 3);
	ck_assert_uint_eq(uids[1], 5);
	free(uids);
	ck_assert_int_eq(md_msg_changed(mb, 1, 10, start, 1, &uids, &n), MD_LIMIT);
	ck_assert_ptr_null(uids);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_modseq_list_changedsince_scan)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg *msgs;
	struct md_flags_result res[6];
	uint32_t all[6] = { 1, 2, 3, 4, 5, 6 };
	size_t n;
	uint64_t start;

	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	start = st.highestmodseq;
	ck_assert_int_eq(md_msg_store(mb, all, 6, MD_FLAGS_ADD, MD_FLAG_SEEN, NULL, 0, 0, res),
			 MD_OK);
	/* six changes, a range of two: the records of the range are read */
	ck_assert_int_eq(md_msg_list(mb, 2, 3, start, MD_READ_META, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(msgs[0].uid, 2);
	ck_assert_uint_eq(msgs[1].uid, 3);
	ck_assert_ptr_nonnull(msgs[0].meta);
	md_msg_list_free(msgs, n);
	ck_assert_int_eq(md_msg_list(mb, 2, 3, res[0].modseq, 0, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, 0);
	md_msg_list_free(msgs, n);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_modseq");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_modseq_explog_pruned);
	tcase_add_test(tc, test_modseq_dovecot_file);
	tcase_add_test(tc, test_modseq_explog_age);
	tcase_add_test(tc, test_modseq_changes_snapshot);
	tcase_add_test(tc, test_modseq_list_changedsince_scan);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
