/* core/tls_ticket.c: TLS 1.2 and 1.3 sessions resume across a rebuilt
 * tls_server (what SIGHUP does) because the ticket keys outlive it, and
 * not with OpenSSL's per-context keys (the control); after one rotation
 * an old ticket still resumes and is replaced, after two it does not.
 * Handshakes run over a BIO pair, no sockets. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "config.h"
#include "tls.h"
#include "util.h"

#define TEST_HANDSHAKE_ROUNDS 20 /* flights of a full handshake, with room */

static char test_dir[64];
static struct config test_cfg;
static const int test_versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

static void test_setup(void)
{
	char err[512];
	struct config_cert *c = &test_cfg.certs[0];

	str_copy(test_dir, "/tmp/check-tls-ticket-XXXXXX", sizeof(test_dir));
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	memset(&test_cfg, 0, sizeof(test_cfg));
	config_defaults(&test_cfg);
	snprintf(c->cert_file, sizeof(c->cert_file), "%s/cert.pem", test_dir);
	snprintf(c->key_file, sizeof(c->key_file), "%s/key.pem", test_dir);
	ck_assert_msg(tls_make_self_signed("mail.test", c->cert_file, c->key_file,
					   err, sizeof(err)) == 0, "%s", err);
	test_cfg.n_certs = 1;
}

static void test_teardown(void)
{
	unlink(test_cfg.certs[0].cert_file);
	unlink(test_cfg.certs[0].key_file);
	rmdir(test_dir);
}

static struct tls_server *test_server(struct tls_tickets *tickets)
{
	char err[512];
	struct tls_server *tls = tls_server_new(&test_cfg, tickets, NULL, err, sizeof(err));

	ck_assert_msg(tls != NULL, "%s", err);
	return tls;
}

/* One handshake of a client of this version against tls, offering offer
 * (may be NULL) for resumption.  The client's session afterwards (with
 * the ticket it got; free it), and in *reused_r whether it resumed. */
static SSL_SESSION *test_handshake(struct tls_server *tls, int version, SSL_SESSION *offer,
				   bool *reused_r)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *client, *server = tls_server_new_ssl(tls, ROLE_IMAPS);
	BIO *cbio, *sbio;
	SSL_SESSION *sess;
	bool cdone = false, sdone = false;
	char byte;

	ck_assert_ptr_nonnull(cctx);
	ck_assert_ptr_nonnull(server);
	SSL_CTX_set_min_proto_version(cctx, version);
	SSL_CTX_set_max_proto_version(cctx, version);
	client = SSL_new(cctx);
	ck_assert_int_eq(BIO_new_bio_pair(&cbio, 0, &sbio, 0), 1);
	SSL_set_bio(client, cbio, cbio);
	SSL_set_bio(server, sbio, sbio);
	if (offer != NULL)
		ck_assert_int_eq(SSL_set_session(client, offer), 1);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	for (int i = 0; i < TEST_HANDSHAKE_ROUNDS && !(cdone && sdone); i++) {
		cdone = cdone || SSL_do_handshake(client) == 1;
		sdone = sdone || SSL_do_handshake(server) == 1;
	}
	ck_assert_msg(cdone && sdone, "handshake did not finish");
	/* TLS 1.3 tickets follow the handshake: a read makes the client take
	 * them (it then wants more, there is no data). */
	ck_assert_int_le(SSL_read(client, &byte, 1), 0);
	*reused_r = SSL_session_reused(client) == 1;
	sess = SSL_get1_session(client);
	ck_assert_ptr_nonnull(sess);
	/* Freed without a shutdown, OpenSSL would mark the session not
	 * resumable (a connection that broke off). */
	SSL_set_shutdown(client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_set_shutdown(server, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
	return sess;
}

START_TEST(test_tls_ticket_resume_after_reload)
{
	test_setup();
	for (size_t v = 0; v < sizeof(test_versions) / sizeof(test_versions[0]); v++) {
		struct tls_tickets *tickets = tls_tickets_new();
		struct tls_server *before = test_server(tickets), *after, *own_keys;
		SSL_SESSION *sess, *again;
		bool reused;

		sess = test_handshake(before, test_versions[v], NULL, &reused);
		ck_assert(!reused);
		again = test_handshake(before, test_versions[v], sess, &reused);
		ck_assert_msg(reused, "version %x: no resumption on the same contexts",
			      test_versions[v]);
		SSL_SESSION_free(again);
		/* SIGHUP: new contexts, the same ticket keys. */
		after = test_server(tickets);
		tls_server_free(before);
		again = test_handshake(after, test_versions[v], sess, &reused);
		ck_assert_msg(reused, "version %x: no resumption after the reload", test_versions[v]);
		SSL_SESSION_free(again);
		/* The control: contexts with OpenSSL's own keys do not resume. */
		own_keys = test_server(NULL);
		again = test_handshake(own_keys, test_versions[v], sess, &reused);
		ck_assert(!reused);
		SSL_SESSION_free(again);
		SSL_SESSION_free(sess);
		tls_server_free(own_keys);
		tls_server_free(after);
		tls_tickets_free(tickets);
	}
	test_teardown();
}
END_TEST

START_TEST(test_tls_ticket_rotation)
{
	test_setup();
	for (size_t v = 0; v < sizeof(test_versions) / sizeof(test_versions[0]); v++) {
		struct tls_tickets *tickets = tls_tickets_new();
		struct tls_server *tls = test_server(tickets);
		SSL_SESSION *old, *renewed, *again;
		bool reused;

		old = test_handshake(tls, test_versions[v], NULL, &reused);
		tls_tickets_rotate(tickets);
		/* Under the previous key: resumes, and a new ticket comes. */
		renewed = test_handshake(tls, test_versions[v], old, &reused);
		ck_assert_msg(reused, "version %x: the previous key no longer decrypts",
			      test_versions[v]);
		tls_tickets_rotate(tickets);
		again = test_handshake(tls, test_versions[v], old, &reused);
		ck_assert_msg(!reused, "version %x: a key two rotations old still decrypts",
			      test_versions[v]);
		SSL_SESSION_free(again);
		again = test_handshake(tls, test_versions[v], renewed, &reused);
		ck_assert_msg(reused, "version %x: the renewed ticket does not resume",
			      test_versions[v]);
		SSL_SESSION_free(again);
		SSL_SESSION_free(renewed);
		SSL_SESSION_free(old);
		tls_server_free(tls);
		tls_tickets_free(tickets);
	}
	test_teardown();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls_ticket");
	TCase *tc = tcase_create("tls_ticket");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tls_ticket_resume_after_reload);
	tcase_add_test(tc, test_tls_ticket_rotation);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
