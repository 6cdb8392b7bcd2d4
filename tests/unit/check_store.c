/* Tests of the store (maildir/store.h): delivery and reads, flags, modseq,
 * expunge, copy/move, outside changes, reindex, names, the Dovecot import
 * and quota.  Faults and concurrency: check_store_faults.c.  Each test
 * works in its own mkdtemp() directory. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "store_test.h"

/* ---- delivery and reads --------------------------------------------- */

START_TEST(test_store_deliver_read)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg msg;
	struct md_section sec;
	const char *text = "From: Bob <bob@example.org>\nSubject: hello\n\nbody line\n";
	const char *want = "From: Bob <bob@example.org>\r\nSubject: hello\r\n\r\nbody line\r\n";
	char buf[256], *data;
	const char *env;
	size_t len;
	uint32_t uid;
	int fd;

	ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 0, &uid), MD_OK);
	ck_assert_uint_eq(uid, 1);
	ck_assert_int_eq(md_user_open(s, "Alice@Example.TEST", 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "inbox", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_uint_eq(st.unseen, 1);
	ck_assert_uint_eq(st.uidnext, 2);
	ck_assert_uint_gt(st.uidvalidity, 0);
	ck_assert_uint_eq(st.size, strlen(want));
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH | MD_READ_META, &msg), MD_OK);
	ck_assert_uint_eq(msg.size, strlen(want));
	ck_assert_ptr_nonnull(strstr(msg.path, "/new/"));
	ck_assert_str_eq(strrchr(msg.path, '/') + 1, msg.basename);
	data = read_file(msg.path, &len);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(data, want, len);
	free(data);
	env = md_msg_envelope(&msg, &len);
	ck_assert_ptr_nonnull(env);
	ck_assert_ptr_nonnull(memmem(env, len, "\"hello\"", 7));
	ck_assert_int_eq(md_msg_section(&msg, "TEXT", &sec), 0);
	ck_assert_uint_eq(sec.length, 11);
	ck_assert_int_eq(md_msg_open(mb, &msg, &fd), MD_OK);
	ck_assert_int_eq(pread(fd, buf, sec.length, (off_t)sec.offset), (ssize_t)sec.length);
	ck_assert_mem_eq(buf, "body line\r\n", 11);
	close(fd);
	ck_assert_int_eq(md_msg_section(&msg, "2", &sec), 1);
	md_msg_clear(&msg);
	ck_assert_int_eq(md_msg_get(mb, 7, 0, &msg), MD_NOTFOUND);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* Turn message uid of mailbox 1 (INBOX) of user 1 back into a v1 record,
 * as an older version wrote it (no pop3_size). */
static enum md_result test_rec_to_v1(struct md_txn *t, void *arg)
{
	uint32_t uid = *(uint32_t *)arg;
	unsigned char key[12], val[72 + MD_FILENAME_MAX];
	struct md_msg_rec rec;
	size_t flen;
	enum md_result r = md_rec_msg_get(t, 1, 1, uid, &rec);

	if (r != MD_OK)
		return r;
	flen = strlen(rec.fname);
	val[0] = 1;
	val[1] = rec.in_new;
	md_put32(val + 2, rec.letters);
	for (int i = 0; i < MD_KW_WORDS; i++)
		md_put64(val + 6 + 8 * i, rec.kw[i]);
	md_put64(val + 38, rec.modseq);
	md_put64(val + 46, rec.size);
	md_put64(val + 54, (uint64_t)rec.internal_date);
	md_put64(val + 62, (uint64_t)rec.save_date);
	val[70] = (unsigned char)(flen >> 8);
	val[71] = (unsigned char)flen;
	memcpy(val + 72, rec.fname, flen);
	return md_kv_put(t, MD_DB_MSG, key, md_key_msg(key, 1, 1, uid), val, 72 + flen, 0) < 0 ?
		       MD_TEMPFAIL : MD_OK;
}

/* The POP3 size is computed at delivery and for files found in the
 * Maildir, kept in the message record (v2), and a v1 record from an older
 * version still reads (pop3_size 0: not known). */
START_TEST(test_store_pop3_size)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg msg, *list;
	char path[PATH_MAX];
	size_t n;
	uint32_t uid = 1;

	/* stored with CRLF: 20 octets, two lines begin with a dot */
	ck_assert_int_eq(deliver(s, ADDR, NULL, "A: b\n\n.x\n..\nyz\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 1, 0, &msg), MD_OK);
	ck_assert_uint_eq(msg.size, 20);
	ck_assert_uint_eq(msg.pop3_size, 22);
	md_msg_clear(&msg);
	/* a file another program put there, without its last line end */
	user_dir(path, sizeof(path), "new/1234.outside.host");
	write_text(path, "A: b\r\n\r\n.end");
	md_mailbox_close(mb);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &list, &n), MD_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(list[1].size, 12);
	ck_assert_uint_eq(list[1].pop3_size, 15);
	md_msg_list_free(list, n);
	/* an index written by an older version */
	ck_assert_int_eq(md_write(s, test_rec_to_v1, &uid), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &msg), MD_OK);
	ck_assert_uint_eq(msg.size, 20);
	ck_assert_uint_eq(msg.pop3_size, 0);
	ck_assert_ptr_nonnull(strstr(msg.path, "/new/"));
	md_msg_clear(&msg);
	ck_assert_int_eq(md_msg_get(mb, 2, 0, &msg), MD_OK);
	ck_assert_uint_eq(msg.pop3_size, 15);
	md_msg_clear(&msg);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* POP3 QUIT's expunge removes the files before its write job; one that
 * another program renamed meanwhile is still found and removed. */
START_TEST(test_store_expunge_given_uids)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg m2;
	char to[PATH_MAX];
	uint32_t uids[] = { 1, 2, 3, 9 }, *ex;
	size_t n;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: x\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 2, MD_READ_PATH, &m2), MD_OK);
	user_dir(to, sizeof(to), "cur/");
	strcat(to, m2.basename);
	strcat(to, ":2,S");
	ck_assert_int_eq(rename(m2.path, to), 0);
	md_msg_clear(&m2);
	ck_assert_int_eq(md_msg_expunge(mb, uids, 4, 0, &ex, &n), MD_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(ex[0], 1);
	ck_assert_uint_eq(ex[2], 3);
	free(ex);
	ck_assert_int_eq(access(to, F_OK), -1);
	md_mailbox_close(mb);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(md_msg_get(mb, 4, MD_READ_PATH, &m2), MD_OK);
	ck_assert_int_eq(access(m2.path, F_OK), 0);
	md_msg_clear(&m2);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* BINARY of a multipart is judged on everything inside it (RFC 3516 §4.3):
 * an unknown encoding in a child wins over broken base64 in another. */
START_TEST(test_store_section_binary_status)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_msg msg;
	struct md_section sec;
	const char *text =
		"Content-Type: multipart/mixed; boundary=a\n\n"
		"--a\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n"
		"--a\nContent-Type: multipart/mixed; boundary=b\n\n"
		"--b\nContent-Transfer-Encoding: x-unknown\n\nzz\n"
		"--b\nContent-Transfer-Encoding: base64\n\n!!!!\n"
		"--b--\n--a--\n";
	uint32_t uid;

	ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 0, &uid), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, uid, MD_READ_META, &msg), MD_OK);
	ck_assert_int_eq(md_msg_section(&msg, "1", &sec), 0);
	ck_assert(sec.decodable);
	ck_assert_int_eq(sec.encoding, MD_TE_BASE64);
	ck_assert_uint_eq(sec.decoded_size, 5);
	ck_assert_int_eq(md_msg_section(&msg, "2.2", &sec), 0);
	ck_assert(!sec.decodable);                       /* NO [PARSE] */
	ck_assert_int_eq(sec.encoding, MD_TE_BASE64);
	ck_assert_int_eq(md_msg_section(&msg, "2", &sec), 0);
	ck_assert(!sec.decodable);
	ck_assert_int_eq(sec.encoding, MD_TE_UNKNOWN);   /* NO [UNKNOWN-CTE] */
	md_msg_clear(&msg);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_refuse_bad_messages)
{
	struct md_store *s = open_store();
	struct md_delivery *d;
	struct md_target t = { .address = ADDR, .create_user = true };
	char spool[PATH_MAX];

	ck_assert_int_eq(deliver(s, ADDR, NULL, "", 0, 0, NULL), MD_BADMSG);
	ck_assert_int_eq(md_delivery_open(s, 0, 0, &d), MD_OK);
	ck_assert_int_eq(md_delivery_write(d, "Subject: x\r\n\r\na\0b", 17), MD_BADMSG);
	ck_assert_int_eq(md_delivery_commit(d, &t, 1), MD_BADMSG);
	ck_assert_int_eq(t.result, MD_BADMSG);
	md_delivery_free(d);
	ck_assert_int_eq(md_delivery_open(s, 10, 0, &d), MD_OK);
	ck_assert_int_eq(md_delivery_write(d, "Subject: too long\r\n", 19), MD_TOOBIG);
	ck_assert_int_eq(md_delivery_commit(d, &t, 1), MD_TOOBIG);
	md_delivery_free(d);
	/* RAW keeps bytes (RFC 3516 literal8) */
	ck_assert_int_eq(md_delivery_open(s, 0, MD_DELIVERY_RAW, &d), MD_OK);
	ck_assert_int_eq(md_delivery_write(d, "S: x\n\na\0b\n", 10), MD_OK);
	ck_assert_uint_eq(md_delivery_size(d), 10);
	ck_assert_int_eq(md_delivery_commit(d, &t, 1), MD_OK);
	ck_assert_int_eq(t.result, MD_OK);
	md_delivery_free(d);
	snprintf(spool, sizeof(spool), "%s/mail/.tmp", tdir);
	ck_assert_uint_eq(count_files(spool), 0);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_default_mailboxes)
{
	static const char *names[] = { "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash" };
	static const unsigned special[] = { MD_SPECIAL_ARCHIVE, MD_SPECIAL_DRAFTS, 0,
					    MD_SPECIAL_JUNK, MD_SPECIAL_SENT,
					    MD_SPECIAL_TRASH };
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox_info *list;
	size_t n;
	char dir[PATH_MAX];
	struct stat sb;

	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_NOUSER);
	ck_assert_int_eq(md_user_open(s, "bad/name@example.test", MD_USER_CREATE, &u),
			 MD_BADNAME);
	ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_list(u, &list, &n), MD_OK);
	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(list[i].name, names[i]);
		ck_assert_uint_eq(list[i].special_use, special[i]);
		ck_assert(list[i].exists && list[i].subscribed && !list[i].has_children);
	}
	free(list);
	user_dir(dir, sizeof(dir), ".Sent/maildirfolder");
	ck_assert_int_eq(stat(dir, &sb), 0);
	user_dir(dir, sizeof(dir), "cur");
	ck_assert_int_eq(stat(dir, &sb), 0);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* ---- flags, modseq, expunge, copy, move -------------------------------- */

START_TEST(test_store_flags_modseq)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_flags_result res[3];
	struct md_msg *msgs, msg;
	uint32_t uids[3] = { 1, 2, 9 };
	const char *kws[] = { "$Important", "work" };
	char **names, *slash;
	size_t n, nk;
	uint64_t hms;

	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: a\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	hms = st.highestmodseq;
	ck_assert_int_eq(md_msg_store(mb, uids, 3, MD_FLAGS_ADD, MD_FLAG_SEEN | MD_FLAG_FLAGGED,
				      kws, 2, 0, res), MD_OK);
	ck_assert_int_eq(res[0].result, MD_OK);
	ck_assert_int_eq(res[1].result, MD_OK);
	ck_assert_int_eq(res[2].result, MD_NOTFOUND);
	ck_assert_uint_eq(res[0].flags, MD_FLAG_SEEN | MD_FLAG_FLAGGED);
	ck_assert_uint_eq(res[0].keywords[0], 3);
	ck_assert_uint_eq(res[0].modseq, hms + 1);
	ck_assert_uint_eq(res[1].modseq, hms + 1);
	/* the name carries the flags, sorted, keywords as letters */
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &msg), MD_OK);
	slash = strrchr(msg.path, '/');
	ck_assert_ptr_nonnull(strstr(msg.path, "/cur/"));
	ck_assert_str_eq(strchr(slash, ':'), ":2,FSab");
	md_msg_clear(&msg);
	ck_assert_int_eq(md_mailbox_keywords(mb, &names, &nk), MD_OK);
	ck_assert_uint_eq(nk, 2);
	ck_assert_str_eq(names[0], "$Important");
	ck_assert_str_eq(names[1], "work");
	md_mailbox_keywords_free(names, nk);
	{
		char path[PATH_MAX], *data;

		user_dir(path, sizeof(path), "dovecot-keywords");
		data = read_file(path, NULL);
		ck_assert_ptr_nonnull(data);
		ck_assert_str_eq(data, "0 $Important\n1 work\n");
		free(data);
	}
	/* nothing changes: modseq stays */
	ck_assert_int_eq(md_msg_store(mb, uids, 1, MD_FLAGS_ADD, MD_FLAG_SEEN, NULL, 0, 0,
				      res), MD_OK);
	ck_assert_uint_eq(res[0].modseq, hms + 1);
	/* UNCHANGEDSINCE (RFC 7162) */
	ck_assert_int_eq(md_msg_store(mb, uids, 1, MD_FLAGS_REMOVE, MD_FLAG_SEEN, NULL, 0,
				      hms, res), MD_OK);
	ck_assert_int_eq(res[0].result, MD_MODIFIED);
	ck_assert_int_eq(md_msg_store(mb, uids + 1, 1, MD_FLAGS_SET, MD_FLAG_DELETED, NULL,
				      0, hms + 1, res), MD_OK);
	ck_assert_int_eq(res[0].result, MD_OK);
	ck_assert_uint_eq(res[0].flags, MD_FLAG_DELETED);
	ck_assert_uint_eq(res[0].keywords[0], 0);
	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_OK);
	ck_assert_uint_eq(st.highestmodseq, hms + 2);
	ck_assert_uint_eq(st.unseen, 1);
	ck_assert_uint_eq(st.deleted, 1);
	/* CHANGEDSINCE */
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, hms + 1, 0, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(msgs[0].uid, 2);
	md_msg_list_free(msgs, n);
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, hms, 0, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, 2);
	md_msg_list_free(msgs, n);
	ck_assert_int_eq(md_msg_store(mb, uids, 1, MD_FLAGS_ADD, 0,
				      (const char *[]){ "bad keyword" }, 1, 0, res),
			 MD_BADNAME);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_expunge_copy_move)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb, *sent;
	struct md_status st;
	struct md_flags_result res[4];
	uint32_t uids[4] = { 1, 2, 3, 4 }, dest[4], uv, *ex;
	size_t n;
	uint64_t bytes, count, hms;
	struct md_msg msg;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_int_eq(md_msg_store(mb, uids, 2, MD_FLAGS_ADD, MD_FLAG_DELETED, NULL, 0,
				      0, res), MD_OK);
	ck_assert_int_eq(md_msg_store(mb, uids + 2, 1, MD_FLAGS_ADD,
				      MD_FLAG_SEEN | MD_FLAG_ANSWERED, NULL, 0, 0, res), MD_OK);
	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_OK);
	hms = st.highestmodseq;
	/* UID EXPUNGE 2:4 removes only \Deleted ones */
	ck_assert_int_eq(md_msg_expunge(mb, uids + 1, 3, MD_EXPUNGE_DELETED_ONLY, &ex, &n),
			 MD_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ex[0], 2);
	free(ex);
	ck_assert_int_eq(md_msg_expunge(mb, NULL, 0, 0, &ex, &n), MD_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ex[0], 1);
	free(ex);
	ck_assert_int_eq(md_mailbox_expunged(mb, hms, &ex, &n, NULL), MD_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ex[0], 1);
	ck_assert_uint_eq(ex[1], 2);
	free(ex);
	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(count, 2);
	/* COPY 3,4 to Sent: consecutive UIDs, flags kept */
	ck_assert_int_eq(md_msg_copy(mb, uids + 2, 2, "Sent", false, 0, 0, &uv, dest), MD_OK);
	ck_assert_uint_eq(dest[0], 1);
	ck_assert_uint_eq(dest[1], 2);
	ck_assert_int_eq(md_msg_copy(mb, uids, 1, "Nowhere", false, 0, 0, &uv, dest),
			 MD_NOMAILBOX);
	ck_assert_int_eq(md_mailbox_open(u, "Sent", &sent, &st), MD_OK);
	ck_assert_uint_eq(st.uidvalidity, uv);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_int_eq(md_msg_get(sent, 1, MD_READ_PATH | MD_READ_META, &msg), MD_OK);
	ck_assert_uint_eq(msg.flags, MD_FLAG_SEEN | MD_FLAG_ANSWERED);
	ck_assert_ptr_nonnull(msg.meta);
	md_msg_clear(&msg);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(count, 4);
	/* quota refuses a copy */
	ck_assert_int_eq(md_msg_copy(mb, uids + 2, 2, "Sent", false, bytes + 1, 0, &uv, dest),
			 MD_QUOTA);
	/* so does the message count (RFC 9208 MESSAGE): room for one, not two */
	ck_assert_int_eq(md_msg_copy(mb, uids + 2, 2, "Sent", false, 0, count + 1, &uv, dest),
			 MD_QUOTA);
	{
		uint64_t deleted = 1;

		ck_assert_int_eq(md_mailbox_deleted_size(u, "INBOX", &deleted), MD_OK);
		ck_assert_uint_eq(deleted, 0); /* the \Deleted ones were expunged */
	}
	/* MOVE 3 to Trash (RFC 6851), with the account full: a move adds no
	 * message */
	ck_assert_int_eq(md_msg_copy(mb, uids + 2, 1, "Trash", true, 0, count, &uv, dest), MD_OK);
	ck_assert_uint_eq(dest[0], 1);
	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(md_msg_get(mb, 3, 0, &msg), MD_NOTFOUND);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(count, 4);
	{
		char dir[PATH_MAX];

		user_dir(dir, sizeof(dir), "cur");
		ck_assert_uint_eq(count_files(dir), 0);
		user_dir(dir, sizeof(dir), "new");
		ck_assert_uint_eq(count_files(dir), 1);
		user_dir(dir, sizeof(dir), ".Trash/cur");
		ck_assert_uint_eq(count_files(dir), 1);
	}
	md_mailbox_close(sent);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_append_flags)
{
	struct md_store *s = open_store();
	struct md_delivery *d;
	const char *kw[] = { "$label1" };
	struct md_target t = { .address = ADDR, .mailbox = "Drafts",
			       .flags = MD_FLAG_DRAFT | MD_FLAG_SEEN, .keywords = kw,
			       .n_keywords = 1, .internal_date = 1000000000,
			       .create_user = true };
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_msg msg;

	ck_assert_int_eq(md_delivery_open(s, 0, 0, &d), MD_OK);
	md_delivery_write(d, "Subject: draft\r\n\r\n", 18);
	md_delivery_write(d, "text\r", 5); /* CR LF split across writes */
	md_delivery_write(d, "\n", 1);
	ck_assert_uint_eq(md_delivery_size(d), 24);
	ck_assert_int_eq(md_delivery_commit(d, &t, 1), MD_OK);
	ck_assert_int_eq(t.result, MD_OK);
	ck_assert_uint_eq(t.uid, 1);
	md_delivery_free(d);
	t.mailbox = "NoSuchBox";
	ck_assert_int_eq(deliver(s, ADDR, "NoSuchBox", "a\n", 0, 0, NULL), MD_NOMAILBOX);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "Drafts", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &msg), MD_OK);
	ck_assert_str_eq(strchr(strrchr(msg.path, '/'), ':'), ":2,DSa");
	ck_assert_int_eq(msg.internal_date, 1000000000);
	ck_assert_uint_eq(msg.size, 24);
	ck_assert_uint_eq(msg.keywords[0], 1);
	md_msg_clear(&msg);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* ---- outside changes, reindex, lost index -------------------------------- */

START_TEST(test_store_outside_changes)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg m1, m2, m4;
	char path[PATH_MAX], to[PATH_MAX], *data;
	uint32_t *ex;
	size_t n;
	uint64_t hms;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	hms = st.highestmodseq;
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &m1), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 2, MD_READ_PATH, &m2), MD_OK);
	/* mutt reads message 1: new/X -> cur/X:2,S */
	user_dir(to, sizeof(to), "cur/");
	strcat(to, m1.basename);
	strcat(to, ":2,RS");
	ck_assert_int_eq(rename(m1.path, to), 0);
	/* another tool deletes message 2 */
	ck_assert_int_eq(unlink(m2.path), 0);
	/* tmp/: a file older than 36 hours is junk, a young one is not */
	{
		struct timespec old[2] = { { time(NULL) - 37 * 3600, 0 },
					   { time(NULL) - 37 * 3600, 0 } };

		user_dir(path, sizeof(path), "tmp/old.partial");
		write_text(path, "x");
		ck_assert_int_eq(utimensat(AT_FDCWD, path, old, 0), 0);
		user_dir(path, sizeof(path), "tmp/young.partial");
		write_text(path, "x");
	}
	/* procmail drops a file with LF line endings */
	user_dir(path, sizeof(path), "new/1234.outside.host");
	write_text(path, "Subject: dropped\n\nhello\n");

	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.uidnext, 5);
	user_dir(path, sizeof(path), "tmp/old.partial");
	ck_assert_int_eq(access(path, F_OK), -1);
	user_dir(path, sizeof(path), "tmp/young.partial");
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_uint_eq(st.unseen, 2);
	ck_assert_uint_gt(st.highestmodseq, hms);
	md_msg_clear(&m1);
	ck_assert_int_eq(md_msg_get(mb, 1, 0, &m1), MD_OK);
	ck_assert_uint_eq(m1.flags, MD_FLAG_SEEN | MD_FLAG_ANSWERED);
	ck_assert_uint_gt(m1.modseq, hms);
	ck_assert_int_eq(md_mailbox_expunged(mb, hms, &ex, &n, NULL), MD_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ex[0], 2);
	free(ex);
	ck_assert_int_eq(md_msg_get(mb, 4, MD_READ_PATH | MD_READ_META, &m4), MD_OK);
	ck_assert_str_eq(m4.basename, "1234.outside.host");
	data = read_file(m4.path, &n);
	ck_assert_str_eq(data, "Subject: dropped\r\n\r\nhello\r\n");
	ck_assert_uint_eq(m4.size, n);
	free(data);
	md_msg_clear(&m4);
	/* a message renamed behind our back is still found by md_msg_open */
	{
		struct md_msg m3;
		int fd;

		ck_assert_int_eq(md_msg_get(mb, 3, MD_READ_PATH, &m3), MD_OK);
		user_dir(to, sizeof(to), "cur/");
		strcat(to, m3.basename);
		strcat(to, ":2,F");
		ck_assert_int_eq(rename(m3.path, to), 0);
		ck_assert_int_eq(md_msg_open(mb, &m3, &fd), MD_OK);
		ck_assert_str_eq(m3.path, to);
		close(fd);
		md_msg_clear(&m3);
		ck_assert_int_eq(md_msg_get(mb, 3, 0, &m3), MD_OK);
		ck_assert_uint_eq(m3.flags, MD_FLAG_FLAGGED);
	}
	/* a folder made with mkdir shows up; one removed goes */
	user_dir(path, sizeof(path), ".Projects");
	ck_assert_int_eq(md_maildir_make(path, true), 0);
	user_dir(path, sizeof(path), ".Junk");
	ck_assert_int_eq(md_remove_tree(path), 0);
	{
		struct md_mailbox_info *list;
		bool projects = false, junk = false;

		ck_assert_int_eq(md_mailbox_list(u, &list, &n), MD_OK);
		for (size_t i = 0; i < n; i++) {
			projects |= strcmp(list[i].name, "Projects") == 0 && list[i].exists;
			junk |= strcmp(list[i].name, "Junk") == 0 && list[i].exists;
		}
		free(list);
		ck_assert(projects && !junk);
	}
	md_msg_clear(&m1);
	md_msg_clear(&m2);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_reindex_and_lost_index)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_flags_result res;
	uint32_t uid = 2, uv1, uv2;
	char err[256], path[PATH_MAX];
	struct md_msg msg;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: m\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	uv1 = st.uidvalidity;
	ck_assert_int_eq(md_msg_store(mb, &uid, 1, MD_FLAGS_ADD, MD_FLAG_FLAGGED, NULL, 0, 0,
				      &res), MD_OK);
	ck_assert_int_eq(md_user_reindex(s, ADDR, err, sizeof(err)), MD_OK);
	/* the open handle notices */
	ck_assert_int_eq(md_mailbox_sync(mb, &st), MD_NOMAILBOX);
	md_mailbox_close(mb);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	uv2 = st.uidvalidity;
	ck_assert_uint_ne(uv1, uv2);
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.unseen, 3);
	{
		struct md_msg *msgs;
		size_t n, flagged = 0;

		ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, 0, &msgs, &n), MD_OK);
		ck_assert_uint_eq(n, 3);
		for (size_t i = 0; i < n; i++)
			flagged += msgs[i].flags == MD_FLAG_FLAGGED;
		ck_assert_uint_eq(flagged, 1);
		md_msg_list_free(msgs, n);
	}
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);

	/* lose the index: rebuilt on the next access, new UIDVALIDITY */
	snprintf(path, sizeof(path), "%s/index", tdir);
	ck_assert_int_eq(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_ne(st.uidvalidity, uv2);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_META, &msg), MD_OK);
	ck_assert_ptr_nonnull(msg.meta);
	md_msg_clear(&msg);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);

	/* a damaged index file is set aside and rebuilt */
	snprintf(path, sizeof(path), "%s/index/data.mdb", tdir);
	write_text(path, "this is not an LMDB file, not at all, it is much too short");
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_eq(st.messages, 3);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* ---- mailboxes and names --------------------------------------------------- */

START_TEST(test_store_rename_children)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_mailbox_info *list;
	struct md_status st, st2;
	char dir[PATH_MAX];
	struct stat sb;
	size_t n;

	ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "a", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "a/b", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "a/b/c", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "ab", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "a/b", 0), MD_EXISTS);
	ck_assert_int_eq(md_mailbox_create(u, "inbox", 0), MD_EXISTS);
	ck_assert_int_eq(md_mailbox_create(u, "a.b", 0), MD_BADNAME);
	ck_assert_int_eq(md_mailbox_subscribe(u, "a/b", true), MD_OK);
	ck_assert_int_eq(deliver(s, ADDR, "a/b", "Subject: in ab\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "a/b", &st), MD_OK);
	ck_assert_uint_eq(st.messages, 1);

	ck_assert_int_eq(md_mailbox_rename(u, "a", "a/x"), MD_DENIED);
	ck_assert_int_eq(md_mailbox_rename(u, "a", "ab"), MD_EXISTS);
	ck_assert_int_eq(md_mailbox_rename(u, "zz", "yy"), MD_NOMAILBOX);
	ck_assert_int_eq(md_mailbox_rename(u, "a", "x"), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "a/b", &st2), MD_NOMAILBOX);
	ck_assert_int_eq(md_mailbox_status(u, "x/b", &st2), MD_OK);
	ck_assert_uint_eq(st2.uidvalidity, st.uidvalidity);
	ck_assert_uint_eq(st2.messages, 1);
	user_dir(dir, sizeof(dir), ".x.b.c/cur");
	ck_assert_int_eq(stat(dir, &sb), 0);
	user_dir(dir, sizeof(dir), ".a.b");
	ck_assert_int_eq(stat(dir, &sb), -1);
	ck_assert_int_eq(md_mailbox_list(u, &list, &n), MD_OK);
	for (size_t i = 0; i < n; i++) {
		ck_assert(strncmp(list[i].name, "a/", 2) != 0 && strcmp(list[i].name, "a"));
		if (strcmp(list[i].name, "x/b") == 0)
			ck_assert(list[i].subscribed && list[i].has_children);
	}
	free(list);
	/* delete the middle one: its child stays, the name becomes a parent */
	ck_assert_int_eq(md_mailbox_delete(u, "x/b"), MD_OK);
	ck_assert_int_eq(md_mailbox_delete(u, "x/b"), MD_NOMAILBOX);
	ck_assert_int_eq(md_mailbox_delete(u, "INBOX"), MD_DENIED);
	ck_assert_int_eq(md_mailbox_list(u, &list, &n), MD_OK);
	{
		bool xb = false, xbc = false;

		for (size_t i = 0; i < n; i++) {
			if (strcmp(list[i].name, "x/b") == 0)
				xb = !list[i].exists && list[i].subscribed && list[i].has_children;
			xbc |= strcmp(list[i].name, "x/b/c") == 0 && list[i].exists;
		}
		ck_assert(xb && xbc);
	}
	free(list);
	user_dir(dir, sizeof(dir), ".x.b");
	ck_assert_int_eq(stat(dir, &sb), -1);
	{
		char root[PATH_MAX];

		user_dir(root, sizeof(root), "");
		/* cur new tmp, the marker, the mirrored subscriptions file */
		ck_assert_uint_eq(count_files(root), 5);
	}
	/* RENAME INBOX moves its messages (RFC 3501 §6.3.5) */
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: i\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_mailbox_rename(u, "INBOX", "Old"), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_int_eq(md_mailbox_open(u, "Old", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 1);
	md_mailbox_close(mb);
	ck_assert_int_eq(md_mailbox_set_special(u, "Old", MD_SPECIAL_ARCHIVE), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "Old", &st), MD_OK);
	ck_assert_uint_eq(st.special_use, MD_SPECIAL_ARCHIVE);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_names)
{
	static const char *good[] = { "INBOX", "inbox/Sub", "Sent", "a/b/c", "&AOQ-pfel",
				      "Tom &- Jerry", "~x", "a b" };
	static const char *bad[] = { "", "/a", "a/", "a//b", "a.b", ".", "..", "a/../b",
				     "a\001b", "a*", "a%", "&AOQ", "&AGE-", "&-&", "&Jjo!-",
				     "\xc3\xa4pfel", "&2D0-" };
	char out[512], name[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(md_mailbox_name_check(good[i]) == MD_OK, "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(md_mailbox_name_check(bad[i]) == MD_BADNAME, "%s", bad[i]);
	memset(name, 'a', sizeof(name));
	name[MD_MAILBOX_NAME_MAX] = '\0';
	ck_assert_int_eq(md_mailbox_name_check(name), MD_OK);
	name[MD_MAILBOX_NAME_MAX] = 'a';
	name[MD_MAILBOX_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(md_mailbox_name_check(name), MD_LIMIT);

	ck_assert_int_eq(md_mutf7_from_utf8("Entw\xc3\xbcrfe", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "Entw&APw-rfe");
	ck_assert_int_eq(md_mutf7_to_utf8("Entw&APw-rfe", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "Entw\xc3\xbcrfe");
	/* RFC 3501 §5.1.3 example */
	ck_assert_int_eq(md_mutf7_from_utf8("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
					    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
					    out, sizeof(out)), 0);
	ck_assert_str_eq(out, "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	ck_assert_int_eq(md_mutf7_from_utf8("\xf0\x9f\x93\xa7 & co", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "&2D3c5w- &- co");
	ck_assert_int_eq(md_mutf7_to_utf8(out, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "\xf0\x9f\x93\xa7 & co");
	ck_assert_int_eq(md_mutf7_from_utf8("bad \xc3", out, sizeof(out)), -1);
	ck_assert_int_eq(md_mutf7_from_utf8("ctl \xc2\x85", out, sizeof(out)), -1);
	ck_assert_int_eq(md_mutf7_from_utf8("\xc3\xa4", out, 4), -1);
}
END_TEST

/* ---- Dovecot import ------------------------------------------------------- */

static void copy_tree(const char *from, const char *to)
{
	char cmd[2 * PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp -a '%s/.' '%s/'", to, from, to);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_store_dovecot_import)
{
	struct md_store *s;
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg msg;
	char root[PATH_MAX], fixture[PATH_MAX], path[PATH_MAX], **kw, *data;
	size_t nk, len;
	uint32_t *uids;
	size_t n;

	snprintf(fixture, sizeof(fixture), "%s/fixtures/dovecot-maildir", FIXTURE_DIR);
	user_dir(root, sizeof(root), "");
	copy_tree(fixture, root);
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.uidvalidity, 1700000000);
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.uidnext, 43);
	ck_assert_int_eq(md_mailbox_uids(mb, &uids, &n), MD_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(uids[0], 5);
	ck_assert_uint_eq(uids[1], 17);
	ck_assert_uint_eq(uids[2], 42); /* not in the uidlist: next UID */
	free(uids);
	ck_assert_int_eq(md_msg_get(mb, 17, MD_READ_PATH | MD_READ_META, &msg), MD_OK);
	ck_assert_uint_eq(msg.flags, MD_FLAG_SEEN | MD_FLAG_ANSWERED);
	ck_assert_uint_eq(msg.keywords[0], 2); /* letter b */
	/* LF file rewritten with CRLF under its own name */
	data = read_file(msg.path, &len);
	ck_assert_ptr_nonnull(strstr(data, "Subject: second\r\n"));
	ck_assert_uint_eq(msg.size, len);
	free(data);
	ck_assert_str_eq(msg.basename, "1700000100.M2P2.oldhost,S=83,W=88");
	/* Dovecot's default pop3_uidl_format %08Xu%08Xv (lower-case hex) */
	ck_assert_str_eq(msg.uidl, "000000116553f100");
	md_msg_clear(&msg);
	/* not in the uidlist: Postern's own UIDL, the base name */
	ck_assert_int_eq(md_msg_get(mb, 42, MD_READ_PATH, &msg), MD_OK);
	ck_assert_ptr_null(msg.uidl);
	md_msg_clear(&msg);
	ck_assert_int_eq(md_mailbox_keywords(mb, &kw, &nk), MD_OK);
	ck_assert_uint_ge(nk, 2);
	ck_assert_str_eq(kw[0], "$Important");
	ck_assert_str_eq(kw[1], "Project-X");
	md_mailbox_keywords_free(kw, nk);
	md_mailbox_close(mb);
	ck_assert_int_eq(md_mailbox_open(u, "Lists/Dev", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.uidvalidity, 1700000555);
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(md_msg_get(mb, 3, 0, &msg), MD_OK);
	md_mailbox_close(mb);
	/* the marker: a later rebuild does not trust the stale uidlist */
	snprintf(path, sizeof(path), "%s/postern-indexed", root);
	ck_assert_int_eq(access(path, F_OK), 0);
	md_user_close(u);
	{
		char err[256];

		ck_assert_int_eq(md_user_reindex(s, ADDR, err, sizeof(err)), MD_OK);
	}
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_ne(st.uidvalidity, 1700000000);
	ck_assert_uint_eq(st.messages, 3);
	/* new UIDs, but the POP3 UIDLs Dovecot gave stay */
	{
		struct md_msg *msgs;
		size_t nm, found = 0;

		ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
		ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &nm),
				 MD_OK);
		ck_assert_uint_eq(nm, 3);
		for (size_t i = 0; i < nm; i++) {
			if (strcmp(msgs[i].basename, "1700000100.M2P2.oldhost,S=83,W=88") == 0) {
				ck_assert_str_eq(msgs[i].uidl, "000000116553f100");
				found++;
			} else if (strcmp(msgs[i].basename, "1700000000.M1P1.oldhost,S=70,W=74") == 0) {
				ck_assert_str_eq(msgs[i].uidl, "000000056553f100");
				found++;
			} else {
				ck_assert_ptr_null(msgs[i].uidl);
			}
		}
		ck_assert_uint_eq(found, 2);
		md_msg_list_free(msgs, nm);
		md_mailbox_close(mb);
	}
	md_user_close(u);
	/* without dovecot-uidlist, a reindex keeps them from the index */
	snprintf(path, sizeof(path), "%s/dovecot-uidlist", root);
	ck_assert_int_eq(unlink(path), 0);
	{
		char err[256];
		struct md_msg *msgs;
		size_t nm, found = 0;

		ck_assert_int_eq(md_user_reindex(s, ADDR, err, sizeof(err)), MD_OK);
		ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
		ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
		ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &nm),
				 MD_OK);
		ck_assert_uint_eq(nm, 3);
		for (size_t i = 0; i < nm; i++)
			found += msgs[i].uidl != NULL &&
				 (strcmp(msgs[i].uidl, "000000116553f100") == 0 ||
				  strcmp(msgs[i].uidl, "000000056553f100") == 0);
		ck_assert_uint_eq(found, 2);
		md_msg_list_free(msgs, nm);
		md_mailbox_close(mb);
		md_user_close(u);
	}
	md_store_close(s);
}
END_TEST

/* A dovecot-uidlist may list UID 4294967295, the largest 32-bit number:
 * importing it as a UID needs UIDNEXT 2^32, which wrapped around: UIDNEXT
 * fell below a UID in use (here to 6, so new mail would get UIDs below an
 * old message's, which RFC 3501 §2.3.1.1 forbids), or to 0, a record the
 * index calls corrupt.  The file gets the next UID instead; the rest of
 * the import stands. */
START_TEST(test_store_dovecot_uid_max)
{
	struct md_store *s;
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg *msgs;
	char root[PATH_MAX], path[PATH_MAX];
	size_t n;

	user_dir(root, sizeof(root), "");
	ck_assert_int_eq(mkdir_p(root, 0700), 0);
	ck_assert_int_eq(md_maildir_make(root, false), 0);
	snprintf(path, sizeof(path), "%s/dovecot-uidlist", root);
	write_text(path, "3 V1700000000 N10 Gabcdef\n"
			 "4294967295 :1700000001.M1P1.old\n"
			 "5 W50 :1700000002.M2P2.old\n");
	snprintf(path, sizeof(path), "%s/cur/1700000001.M1P1.old:2,S", root);
	write_text(path, "Subject: max\r\n\r\nmax\r\n");
	snprintf(path, sizeof(path), "%s/cur/1700000002.M2P2.old:2,", root);
	write_text(path, "Subject: five\r\n\r\nfive\r\n");
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.uidvalidity, 1700000000);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.uidnext, 11);
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(msgs[0].uid, 5);
	ck_assert_str_eq(msgs[0].basename, "1700000002.M2P2.old");
	ck_assert_uint_eq(msgs[1].uid, 10);
	ck_assert_str_eq(msgs[1].basename, "1700000001.M1P1.old");
	md_msg_list_free(msgs, n);
	md_mailbox_close(mb);
	/* and the mailbox stays usable */
	md_user_close(u);
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: new\n\nx\n", 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_eq(st.uidvalidity, 1700000000);
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.uidnext, 12);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* A huge dovecot-uidlist (here 65 MB, most of it one line naming a giant
 * file) is read a line at a time: memory follows the Maildir, not the
 * file.  Before, a uidlist over 64 MB was not imported at all (silently:
 * every message got a new UID, every client cache was lost) and one under
 * it was held whole, with an index entry for each of its lines. */
START_TEST(test_store_dovecot_huge_uidlist)
{
	struct md_store *s;
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg *msgs;
	char root[PATH_MAX], path[PATH_MAX], *chunk;
	size_t n, chunk_len = 1 << 20;
	FILE *f;

	user_dir(root, sizeof(root), "");
	ck_assert_int_eq(mkdir_p(root, 0700), 0);
	ck_assert_int_eq(md_maildir_make(root, false), 0);
	snprintf(path, sizeof(path), "%s/dovecot-uidlist", root);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("3 V1700000000 N9 Gabcdef\n5 :1700000001.M1P1.old\n6 :", f);
	chunk = malloc(chunk_len);
	ck_assert_ptr_nonnull(chunk);
	memset(chunk, 'x', chunk_len);
	for (int i = 0; i < 65; i++)
		ck_assert_uint_eq(fwrite(chunk, 1, chunk_len, f), chunk_len);
	free(chunk);
	fputs("\n7 W9 :1700000002.M2P2.old:2,S\n", f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/cur/1700000001.M1P1.old:2,S", root);
	write_text(path, "Subject: five\r\n\r\nfive\r\n");
	snprintf(path, sizeof(path), "%s/new/1700000002.M2P2.old", root);
	write_text(path, "Subject: seven\r\n\r\nseven\r\n");
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.uidvalidity, 1700000000);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.uidnext, 9);
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(msgs[0].uid, 5);
	ck_assert_uint_eq(msgs[1].uid, 7);
	ck_assert_str_eq(msgs[1].basename, "1700000002.M2P2.old");
	md_msg_list_free(msgs, n);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* ---- quota ---------------------------------------------------------------- */

START_TEST(test_store_quota)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	char text[1100];
	uint64_t bytes, count;
	uint32_t uid = 1;
	struct md_flags_result res;

	memset(text, 'q', sizeof(text));
	memcpy(text, "Subject: q\r\n\r\n", 14);
	text[998] = '\r';
	text[999] = '\n';
	text[1000] = '\0'; /* 1000 bytes */
	ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 2500, NULL), MD_OK);
	ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 2500, NULL), MD_OK);
	ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 2500, NULL), MD_QUOTA);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(bytes, 2000);
	ck_assert_uint_eq(count, 2);
	{
		char dir[PATH_MAX];

		user_dir(dir, sizeof(dir), "new");
		ck_assert_uint_eq(count_files(dir), 2);
	}
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_store(mb, &uid, 1, MD_FLAGS_ADD, MD_FLAG_DELETED, NULL, 0, 0,
				      &res), MD_OK);
	ck_assert_int_eq(md_msg_expunge(mb, NULL, 0, 0, NULL, NULL), MD_OK);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(bytes, 1000);
	ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 2500, NULL), MD_OK);
	/* deleting a mailbox gives its bytes back */
	ck_assert_int_eq(deliver(s, ADDR, "Junk", text, 0, 0, NULL), MD_OK);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(bytes, 3000);
	ck_assert_int_eq(md_mailbox_delete(u, "Junk"), MD_OK);
	ck_assert_int_eq(md_user_usage(u, &bytes, &count), MD_OK);
	ck_assert_uint_eq(bytes, 2000);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* Every corpus message: stored size is what Dovecot reported as
 * RFC822.SIZE (both count CRLF line ends). */
START_TEST(test_store_corpus_sizes)
{
	const char *shared = getenv("POSTERN_SHARED_DIR");
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *de;
	struct md_store *s;
	size_t done = 0;

	if (shared == NULL)
		shared = "/work/shared";
	snprintf(dir, sizeof(dir), "%s/corpus/messages", shared);
	if ((d = opendir(dir)) == NULL) {
		printf("no corpus at %s: skipped\n", dir);
		return;
	}
	s = open_store();
	while ((de = readdir(d)) != NULL && done < 60) {
		char path[2 * PATH_MAX], gpath[2 * PATH_MAX], *eml, *golden, *p;
		size_t len;
		struct md_delivery *dl;
		struct md_target t = { .address = ADDR, .create_user = true };

		if (strstr(de->d_name, ".eml") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snprintf(gpath, sizeof(gpath), "%s/corpus/golden/%.*s.json", shared,
			 (int)(strlen(de->d_name) - 4), de->d_name);
		eml = read_file(path, &len);
		golden = read_file(gpath, NULL);
		if (eml == NULL || golden == NULL || memchr(eml, '\0', len) != NULL) {
			free(eml);
			free(golden);
			continue;
		}
		ck_assert_int_eq(md_delivery_open(s, 0, 0, &dl), MD_OK);
		md_delivery_write(dl, eml, len);
		ck_assert_int_eq(md_delivery_commit(dl, &t, 1), MD_OK);
		ck_assert_int_eq(t.result, MD_OK);
		/* stored as given: the corpus is CRLF already */
		ck_assert_uint_eq(md_delivery_size(dl), len);
		md_delivery_free(dl);
		p = strstr(golden, "\"A:RFC822.SIZE\": \"");
		if (p != NULL) {
			p += strlen("\"A:RFC822.SIZE\": \"");
			ck_assert_msg(strtoull(p, NULL, 10) == len, "%s", de->d_name);
		}
		free(eml);
		free(golden);
		done++;
	}
	closedir(d);
	ck_assert_uint_gt(done, 0);
	md_store_close(s);
}
END_TEST


/* ---- md_watch: changes by anyone wake IDLE ------------------------------- */

struct watch_seen {
	unsigned calls;
	uint32_t user_id, mailbox_id;
};

static void watch_fn(void *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	struct watch_seen *w = ctx;

	w->calls++;
	w->user_id = user_id;
	w->mailbox_id = mailbox_id;
}

static unsigned watch_drain(struct md_watch *w, struct watch_seen *seen)
{
	memset(seen, 0, sizeof(*seen));
	usleep(20 * 1000);
	ck_assert_int_eq(md_watch_read(w, watch_fn, seen), 0);
	return seen->calls;
}

START_TEST(test_store_watch)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb, *work;
	struct md_status st;
	struct md_watch *w;
	struct watch_seen seen;
	uint32_t uid, user_id, mbox_id, work_id;
	char path[PATH_MAX], path2[PATH_MAX];
	FILE *f;

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: a\r\n\r\nx\r\n", 0, 0, &uid), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Work", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "Work", &work, &st), MD_OK);
	md_mailbox_ids(mb, &user_id, &mbox_id);
	md_mailbox_ids(work, &user_id, &work_id);
	w = md_watch_new();
	ck_assert_ptr_nonnull(w);
	ck_assert_int_ge(md_watch_fd(w), 0);
	ck_assert_int_eq(md_watch_add(w, mb), MD_OK);
	ck_assert_int_eq(md_watch_add(w, mb), MD_OK); /* a second session */
	ck_assert_uint_eq(watch_drain(w, &seen), 0);

	/* another program drops a file into new/ */
	snprintf(path, sizeof(path), "%s/mail/example.test/alice/new/1765000000.x1.host", tdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("Subject: dropped\r\n\r\nhi\r\n", f);
	fclose(f);
	ck_assert_uint_eq(watch_drain(w, &seen), 1);
	ck_assert_uint_eq(seen.user_id, user_id);
	ck_assert_uint_eq(seen.mailbox_id, mbox_id);
	/* a delivery through the store (any process) */
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: b\r\n\r\ny\r\n", 0, 0, &uid), MD_OK);
	ck_assert_uint_ge(watch_drain(w, &seen), 1);
	ck_assert_uint_eq(seen.mailbox_id, mbox_id);
	/* mutt sets a flag: a rename into cur/ */
	snprintf(path2, sizeof(path2), "%s/mail/example.test/alice/cur/1765000000.x1.host:2,S", tdir);
	ck_assert_int_eq(rename(path, path2), 0);
	ck_assert_uint_ge(watch_drain(w, &seen), 1);
	ck_assert_uint_eq(seen.mailbox_id, mbox_id);
	/* an unwatched folder says nothing */
	ck_assert_int_eq(deliver(s, ADDR, "Work", "Subject: c\r\n\r\nz\r\n", 0, 0, &uid), MD_OK);
	ck_assert_uint_eq(watch_drain(w, &seen), 0);
	ck_assert_int_eq(md_watch_add(w, work), MD_OK);
	ck_assert_int_eq(unlink(path2), 0); /* and another program expunges in INBOX */
	ck_assert_int_eq(deliver(s, ADDR, "Work", "Subject: d\r\n\r\nz\r\n", 0, 0, &uid), MD_OK);
	ck_assert_uint_eq(watch_drain(w, &seen), 2);
	/* counted: the watches go with the last remove */
	md_watch_remove(w, mb);
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: e\r\n\r\nz\r\n", 0, 0, &uid), MD_OK);
	ck_assert_uint_ge(watch_drain(w, &seen), 1);
	md_watch_remove(w, mb);
	md_watch_remove(w, work);
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: f\r\n\r\nz\r\n", 0, 0, &uid), MD_OK);
	ck_assert_int_eq(deliver(s, ADDR, "Work", "Subject: g\r\n\r\nz\r\n", 0, 0, &uid), MD_OK);
	ck_assert_uint_eq(watch_drain(w, &seen), 0);
	md_watch_free(w);
	md_mailbox_close(work);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST


/* Subscriptions are mirrored into the Maildir's Dovecot-format
 * "subscriptions" file, which a rebuilt index reads back. */
START_TEST(test_store_subscriptions_file)
{
	struct md_store *s = open_store();
	struct md_user *u;
	char path[PATH_MAX], *text;
	uint32_t uid;

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: a\r\n\r\nx\r\n", 0, 0, &uid), MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Work/Sub", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_subscribe(u, "Work/Sub", true), MD_OK);
	snprintf(path, sizeof(path), "%s/mail/example.test/alice/subscriptions", tdir);
	text = read_file(path, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strncmp(text, "V\t2\n\n", 5) == 0, "%s", text);
	ck_assert_msg(strstr(text, "\nWork\tSub\n") != NULL, "%s", text);
	free(text);
	ck_assert_int_eq(md_mailbox_rename(u, "Work", "Play"), MD_OK);
	text = read_file(path, NULL);
	ck_assert_msg(strstr(text, "\nPlay\tSub\n") != NULL && strstr(text, "Work") == NULL,
		      "%s", text);
	free(text);
	ck_assert_int_eq(md_mailbox_subscribe(u, "Play/Sub", false), MD_OK);
	text = read_file(path, NULL);
	ck_assert_msg(strstr(text, "Play\tSub") == NULL, "%s", text);
	free(text);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_deliver_read);
	tcase_add_test(tc, test_store_pop3_size);
	tcase_add_test(tc, test_store_expunge_given_uids);
	tcase_add_test(tc, test_store_section_binary_status);
	tcase_add_test(tc, test_store_refuse_bad_messages);
	tcase_add_test(tc, test_store_default_mailboxes);
	tcase_add_test(tc, test_store_flags_modseq);
	tcase_add_test(tc, test_store_expunge_copy_move);
	tcase_add_test(tc, test_store_append_flags);
	tcase_add_test(tc, test_store_outside_changes);
	tcase_add_test(tc, test_store_reindex_and_lost_index);
	tcase_add_test(tc, test_store_rename_children);
	tcase_add_test(tc, test_store_names);
	tcase_add_test(tc, test_store_dovecot_import);
	tcase_add_test(tc, test_store_dovecot_uid_max);
	tcase_add_test(tc, test_store_dovecot_huge_uidlist);
	tcase_add_test(tc, test_store_quota);
	tcase_add_test(tc, test_store_corpus_sizes);
	tcase_add_test(tc, test_store_watch);
	tcase_add_test(tc, test_store_subscriptions_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
