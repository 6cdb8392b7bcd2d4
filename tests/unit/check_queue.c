/* Unit tests of the outbound queue's files (smtp_queue.c) and the bounce
 * builder (smtp_bounce.c): envelope round trip, every kind of corrupt
 * envelope refused, durable create / update / remove, cleanup at start,
 * and the RFC 3464 report's fields. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtp_queue.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check-queue-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(queue_prepare(dir), 0);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static bool exists(const char *id, const char *kind)
{
	char path[PATH_MAX];

	ck_assert_int_eq(queue_path(dir, id, kind, path, sizeof(path)), 0);
	return access(path, F_OK) == 0;
}

static void write_env_text(const char *id, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	ck_assert_int_eq(queue_path(dir, id, "env", path, sizeof(path)), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static struct queue_env *sample(void)
{
	struct queue_env *env = queue_env_new();

	ck_assert_ptr_nonnull(env);
	str_copy(env->id, "00FF00FF00FF00FF", sizeof(env->id));
	str_copy(env->sender, "alice@example.org", sizeof(env->sender));
	env->ret = SMTP_RET_HDRS;
	str_copy(env->envid, "QQ+2B1", sizeof(env->envid));
	env->body_8bit = true;
	env->created = 1700000000;
	env->next = 1700000300;
	env->attempts = 2;
	env->warned = true;
	ck_assert_int_eq(queue_env_add(env, "bob@example.net", SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
				       "rfc822;bob+2Bx@example.net"), 0);
	ck_assert_int_eq(queue_env_add(env, "\"odd name\"@example.com", 0, "rfc822;a b@c"), 0);
	ck_assert_str_eq(env->rcpts[1].orcpt, ""); /* would not parse back: dropped */
	env->rcpts[1].state = QUEUE_RCPT_FAILED;
	str_copy(env->rcpts[1].reply, "550 5.1.1 no\r\nsuch\tuser", sizeof(env->rcpts[1].reply));
	str_copy(env->rcpts[1].remote, "mx.example.com", sizeof(env->rcpts[1].remote));
	str_copy(env->rcpts[1].tls, "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=no (self-signed "
		 "certificate) cn=mx.example.com", sizeof(env->rcpts[1].tls));
	return env;
}

START_TEST(test_queue_roundtrip)
{
	struct queue_env *env = sample(), *back = queue_env_new();
	struct queue_writer *w;

	ck_assert_int_eq(queue_writer_open(dir, env->id, &w), 0);
	ck_assert_int_eq(queue_writer_write(w, "Subject: x\r\n\r\nbody\r\n", 21), 0);
	ck_assert(!exists(env->id, "env"));
	ck_assert_int_eq(queue_writer_commit(w, env), 0);
	queue_writer_free(w);
	ck_assert(exists(env->id, "env") && exists(env->id, "msg"));

	ck_assert_int_eq(queue_env_read(dir, env->id, back), 0);
	ck_assert_str_eq(back->sender, "alice@example.org");
	ck_assert_int_eq(back->ret, SMTP_RET_HDRS);
	ck_assert_str_eq(back->envid, "QQ+2B1");
	ck_assert(back->warned);
	ck_assert(back->body_8bit && !back->smtputf8);
	ck_assert_int_eq(back->created, 1700000000);
	ck_assert_int_eq(back->next, 1700000300);
	ck_assert_uint_eq(back->attempts, 2);
	ck_assert_uint_eq(back->n_rcpts, 2);
	ck_assert_str_eq(back->rcpts[0].addr, "bob@example.net");
	ck_assert_uint_eq(back->rcpts[0].notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	ck_assert_str_eq(back->rcpts[0].orcpt, "rfc822;bob+2Bx@example.net");
	ck_assert_int_eq(back->rcpts[0].state, QUEUE_RCPT_PENDING);
	ck_assert_str_eq(back->rcpts[1].addr, "\"odd name\"@example.com");
	ck_assert_int_eq(back->rcpts[1].state, QUEUE_RCPT_FAILED);
	ck_assert_str_eq(back->rcpts[1].reply, "550 5.1.1 no  such user"); /* controls cleaned */
	ck_assert_str_eq(back->rcpts[1].remote, "mx.example.com");
	ck_assert_str_eq(back->rcpts[1].tls, "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=no "
			 "(self-signed certificate) cn=mx.example.com");
	ck_assert_str_eq(back->rcpts[0].tls, "");

	/* update, then remove */
	back->rcpts[0].state = QUEUE_RCPT_SENT;
	ck_assert_int_eq(queue_env_update(dir, back), 0);
	ck_assert_int_eq(queue_env_read(dir, env->id, env), 0);
	ck_assert_int_eq(env->rcpts[0].state, QUEUE_RCPT_SENT);
	ck_assert_int_eq(queue_remove(dir, env->id), 0);
	ck_assert(!exists(env->id, "env") && !exists(env->id, "msg"));
	ck_assert_int_eq(queue_env_read(dir, env->id, env), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* an update after `postern queue delete` writes nothing */
	ck_assert_int_eq(queue_env_update(dir, back), 1);
	ck_assert(!exists(env->id, "env"));
	queue_env_free(env);
	queue_env_free(back);
}
END_TEST

static const char *const corrupt[] = {
	"",
	"postern-queue 2\nid 0A\ncreated 1\nsender a@b\nrcpt pending 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\n",                       /* no rcpt */
	"postern-queue 1\ncreated 1\nsender a@b\nrcpt pending 0 - x@y\n",        /* no id */
	"postern-queue 1\nid 0B\ncreated 1\nsender a@b\nrcpt pending 0 - x@y\n", /* wrong id */
	"postern-queue 1\nid 0A\ncreated x\nsender a@b\nrcpt pending 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\nrcpt maybe 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\nrcpt pending 10 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\nrcpt pending 0 -\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\nrcpt pending 0 - x@y\nfuture 1\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\nreply 250 before any rcpt\n"
	"rcpt pending 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nret most\nsender a@b\nrcpt pending 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nattempts -1\nsender a@b\nrcpt pending 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nwarned yes\nsender a@b\nrcpt pending 0 - x@y\n",
	"postern-queue 1\nid 0A\ncreated 1\nsender a@b\nrcpt pending 0 - x@y\n\0junk",
};

START_TEST(test_queue_corrupt)
{
	struct queue_env *env = queue_env_new();
	char path[PATH_MAX];
	FILE *f;

	ck_assert_int_eq(queue_path(dir, "0A", "env", path, sizeof(path)), 0);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	fwrite(corrupt[_i], 1, strlen(corrupt[_i]) + (_i == (int)(sizeof(corrupt) / sizeof(corrupt[0])) - 1 ? 5 : 0), f);
	fclose(f);
	ck_assert_msg(queue_env_read(dir, "0A", env) == -1, "case %d was accepted", _i);
	ck_assert_int_eq(errno, EINVAL);
	write_env_text("0A", "postern-queue 1\nid 0A\ncreated 1\nsender a@b\nrcpt pending 0 - x@y\n");
	ck_assert_int_eq(queue_env_read(dir, "0A", env), 0); /* the good one is fine */
	queue_move_corrupt(dir, "0A");
	ck_assert(!exists("0A", "env"));
	ck_assert(exists("corrupt/0A", "env"));
	queue_env_free(env);
}
END_TEST

START_TEST(test_queue_cleanup_and_scan)
{
	char ids[8][QUEUE_ID_MAX + 1], path[PATH_MAX];
	struct queue_writer *w;
	struct queue_env *env = sample();
	FILE *f;

	/* an uncommitted writer leaves nothing; a crash leaves tmp/ files and
	 * a message without envelope, both removed at start */
	ck_assert_int_eq(queue_writer_open(dir, "11", &w), 0);
	ck_assert_int_eq(queue_writer_write(w, "x", 1), 0);
	queue_writer_free(w);
	ck_assert_int_eq(queue_path(dir, "tmp/22", "msg", path, sizeof(path)), 0);
	f = fopen(path, "w");
	fclose(f);
	ck_assert_int_eq(queue_path(dir, "33", "msg", path, sizeof(path)), 0);
	f = fopen(path, "w");
	fclose(f);
	ck_assert_int_eq(queue_writer_open(dir, env->id, &w), 0);
	ck_assert_int_eq(queue_writer_commit(w, env), 0);
	queue_writer_free(w);
	ck_assert_int_eq(queue_path(dir, "44", "env.tmp.123", path, sizeof(path)), 0);
	f = fopen(path, "w");
	fclose(f);
	queue_cleanup(dir);
	ck_assert(!exists("44", "env.tmp.123"));
	ck_assert(!exists("tmp/22", "msg") && !exists("33", "msg") && !exists("11", "msg"));
	ck_assert(exists(env->id, "msg"));
	ck_assert_int_eq(queue_scan(dir, ids, 8), 1);
	ck_assert_str_eq(ids[0], env->id);
	ck_assert(!queue_take_flush(dir));
	ck_assert_int_eq(queue_path(dir, "flush", NULL, path, sizeof(path)), 0);
	f = fopen(path, "w");
	fclose(f);
	ck_assert(queue_take_flush(dir));
	ck_assert(!queue_take_flush(dir));
	queue_env_free(env);
}
END_TEST

START_TEST(test_queue_bounce)
{
	struct queue_env *env = sample();
	struct config cfg;
	struct buf b;
	const char hdr[] = "From: alice@example.org\r\nSubject: hello\r\n";
	const char full[] = "From: alice@example.org\r\nSubject: hello\r\n\r\nthe body\r\n";
	struct bounce_orig orig = { hdr, strlen(hdr), full, strlen(full) };

	config_defaults(&cfg);
	str_copy(cfg.hostname, "mail.example.org", sizeof(cfg.hostname));
	buf_init(&b, 0);
	env->rcpts[1].notify = 0;
	ck_assert(!bounce_wanted(&env->rcpts[0], BOUNCE_FAILED)); /* pending */
	ck_assert(bounce_wanted(&env->rcpts[1], BOUNCE_FAILED));
	ck_assert_int_eq(bounce_build(&cfg, env, BOUNCE_FAILED, &orig, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: multipart/report; "
				     "report-type=delivery-status;"));
	ck_assert_ptr_nonnull(strstr(b.data, "To: <alice@example.org>\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "Reporting-MTA: dns; mail.example.org\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "Original-Envelope-Id: QQ+1\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "Final-Recipient: rfc822; \"odd name\"@example.com\r\n"
				     "Action: failed\r\nStatus: 5.1.1\r\n"
				     "Remote-MTA: dns; mx.example.com\r\n"
				     "Diagnostic-Code: smtp; 550 5.1.1 no"));
	ck_assert_ptr_null(strstr(b.data, "Final-Recipient: rfc822; bob@example.net"));
	ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: text/rfc822-headers\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "Subject: hello\r\n"));
	ck_assert_ptr_null(strstr(b.data, "the body")); /* no RET: headers */
	/* RET=FULL: the whole message as message/rfc822 (RFC 3461 §4.3) */
	env->ret = SMTP_RET_FULL;
	buf_reset(&b);
	ck_assert_int_eq(bounce_build(&cfg, env, BOUNCE_FAILED, &orig, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: message/rfc822\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\r\n\r\nthe body\r\n"));
	ck_assert_ptr_null(strstr(b.data, "text/rfc822-headers"));
	/* RET=HDRS: headers only even when the message is at hand */
	env->ret = SMTP_RET_HDRS;
	buf_reset(&b);
	ck_assert_int_eq(bounce_build(&cfg, env, BOUNCE_FAILED, &orig, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_null(strstr(b.data, "the body"));
	ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: text/rfc822-headers\r\n"));
	env->ret = SMTP_RET_NONE;
	/* NOTIFY=SUCCESS only: no failure report wanted */
	env->rcpts[1].notify = SMTP_NOTIFY_SUCCESS;
	ck_assert(!bounce_wanted(&env->rcpts[1], BOUNCE_FAILED));
	env->rcpts[1].notify = SMTP_NOTIFY_NEVER;
	ck_assert(!bounce_wanted(&env->rcpts[1], BOUNCE_FAILED));
	/* an expiry has Status 4.4.7 */
	env->rcpts[1].notify = 0;
	str_copy(env->rcpts[1].reply, "550 4.4.7 Delivery time expired", sizeof(env->rcpts[1].reply));
	buf_reset(&b);
	ck_assert_int_eq(bounce_build(&cfg, env, BOUNCE_FAILED, &orig, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "Status: 4.4.7\r\n"));
	/* a delay notice: pending recipients with NOTIFY=DELAY only */
	ck_assert(bounce_wanted(&env->rcpts[0], BOUNCE_DELAYED));
	ck_assert(!bounce_wanted(&env->rcpts[1], BOUNCE_DELAYED));
	str_copy(env->rcpts[0].reply, "451 4.4.1 Cannot connect", sizeof(env->rcpts[0].reply));
	buf_reset(&b);
	ck_assert_int_eq(bounce_build(&cfg, env, BOUNCE_DELAYED, &orig, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "Subject: Delayed Mail (still being retried)\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "Final-Recipient: rfc822; bob@example.net\r\n"
				     "Original-Recipient: rfc822; bob+x@example.net\r\n"
				     "Action: delayed\r\nStatus: 4.4.1\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "Will-Retry-Until: "));
	ck_assert_ptr_null(strstr(b.data, "Final-Recipient: rfc822; \"odd name\""));
	buf_free(&b);
	queue_env_free(env);
}
END_TEST

static int downgrade(const char *in, struct buf *out)
{
	buf_reset(out);
	int rc = mime8_downgrade(in, strlen(in), out);
	if (rc == 1)
		ck_assert_int_eq(buf_cstr(out), 0);
	return rc;
}

static void assert_7bit_short_lines(const char *s)
{
	size_t col = 0;

	for (; *s != '\0'; s++) {
		ck_assert_msg((unsigned char)*s < 0x80, "8-bit octet left");
		col = *s == '\n' ? 0 : col + 1;
		ck_assert_msg(col <= 77, "line longer than 76"); /* 76 + CR */
	}
}

START_TEST(test_queue_mime8)
{
	struct buf b;
	char *big;

	buf_init(&b, 0);
	ck_assert_int_eq(downgrade("Subject: x\r\n\r\nplain ascii\r\n", &b), 0);
	ck_assert_uint_eq(b.len, 0);

	ck_assert_int_eq(downgrade("Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
				   "Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9f"
				   "e = gut \r\n.\r\n", &b), 1);
	ck_assert_str_eq(b.data, "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
			 "Gr=C3=BC=C3=9Fe =3D gut=20\r\n.\r\n");

	ck_assert_int_eq(downgrade("MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n"
				   "\tboundary=\"b1\"\r\n\r\npre\r\n--b1\r\n"
				   "Content-Type: text/plain\r\n\r\n\xe9t\xe9\r\n--b1\r\n"
				   "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
				   "--b1--\r\nepilogue\r\n", &b), 1);
	ck_assert_str_eq(b.data, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n"
			 "\tboundary=\"b1\"\r\n\r\npre\r\n--b1\r\n"
			 "Content-Type: text/plain\r\n"
			 "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9t=E9\r\n--b1\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
			 "--b1--\r\nepilogue\r\n");

	/* what cannot be converted */
	ck_assert_int_eq(downgrade("Subject: \xc3\xa9\r\n\r\nbody\r\n", &b), -1);
	ck_assert_int_eq(downgrade("Content-Type: message/rfc822\r\n\r\nSubject: a\r\n\r\n"
				   "\xe9\r\n", &b), -1);
	ck_assert_int_eq(downgrade("Content-Transfer-Encoding: base64\r\n\r\n\xe9\r\n", &b), -1);
	ck_assert_int_eq(downgrade("Content-Type: multipart/mixed\r\n\r\n\xe9\r\n", &b), -1);
	ck_assert_int_eq(downgrade("Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
				   "\r\n\xe9\r\n", &b), -1); /* no close delimiter */
	ck_assert_int_eq(downgrade("Content-Type: multipart/mixed; boundary=q\r\n\r\n\xe9\r\n"
				   "--q\r\n\r\nx\r\n--q--\r\n", &b), -1); /* 8-bit preamble */

	/* long lines get soft breaks */
	big = malloc(3000);
	ck_assert_ptr_nonnull(big);
	strcpy(big, "Subject: long\r\n\r\n");
	for (int i = 0; i < 500; i++)
		strcat(big, "\xc3\xa9" "a ");
	strcat(big, "\r\n");
	ck_assert_int_eq(downgrade(big, &b), 1);
	assert_7bit_short_lines(b.data);
	ck_assert_ptr_nonnull(strstr(b.data, "=\r\n"));
	free(big);
	buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("queue");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_queue_roundtrip);
	tcase_add_loop_test(tc, test_queue_corrupt, 0, sizeof(corrupt) / sizeof(corrupt[0]));
	tcase_add_test(tc, test_queue_cleanup_and_scan);
	tcase_add_test(tc, test_queue_bounce);
	tcase_add_test(tc, test_queue_mime8);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
