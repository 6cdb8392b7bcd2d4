/* Core runtime: the connection's line reader, STARTTLS, TLS versions,
 * back-pressure, timeouts, worker jobs, limits and graceful stop, driven
 * over real loopback sockets against a tiny test protocol.
 *
 * The server runs its loop in a thread of the (forked, per test) Check
 * child; the test body is the client. */
#include <arpa/inet.h>
#include <check.h>
#include <limits.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base64.h"
#include "config.h"
#include "conn.h"
#include "server.h"
#include "tls.h"
#include "util.h"

#define TEST_LINE_MAX 100
/* makes a line just over TEST_LINE_MAX */
#define TEST_LONG_TAIL "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
#define TEST_FLOOD (4 * 1024 * 1024)

/* ---- the test protocol: every line is remembered; a few are commands -- */

struct test_session {
	struct conn *conn;
	unsigned lines;
	unsigned too_long;
	char seen[4096]; /* every line received, '|'-separated */
	size_t raw_take; /* UNREAD n: octets the next raw chunk keeps */
	bool raw;
};

static volatile int test_stopped_sessions;

static void test_job_work(void *arg)
{
	unsigned *n = arg;
	usleep(50 * 1000);
	*n *= 2;
}

static void test_job_done(void *arg)
{
	struct test_session *s = (struct test_session *)((char *)arg - offsetof(struct test_session, lines));
	conn_printf(s->conn, "JOB %u\r\n", s->lines);
	conn_resume(s->conn);
}

/* AUTH jobs that block until the test body releases them, and an IO job
 * that must not wait for them (DESIGN.md: logins never delay downloads). */
static pthread_mutex_t test_block_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t test_block_cond = PTHREAD_COND_INITIALIZER;
static bool test_block_released;

static void test_block_work(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&test_block_lock);
	while (!test_block_released)
		pthread_cond_wait(&test_block_cond, &test_block_lock);
	pthread_mutex_unlock(&test_block_lock);
}

static void test_block_release(void)
{
	pthread_mutex_lock(&test_block_lock);
	test_block_released = true;
	pthread_cond_broadcast(&test_block_cond);
	pthread_mutex_unlock(&test_block_lock);
}

static void test_block_done(void *arg)
{
	struct test_session *s = arg;
	conn_write(s->conn, "AUTHDONE\r\n", 10);
}

static void test_quick_work(void *arg)
{
	(void)arg;
}

static void test_quick_done(void *arg)
{
	struct test_session *s = arg;
	conn_write(s->conn, "IODONE\r\n", 8);
}

static void test_on_event(struct conn *conn, enum conn_event ev, const char *data,
			  size_t len, void *session)
{
	struct test_session *s = session;

	switch (ev) {
	case CONN_EV_LINE:
		s->lines++;
		if (strlen(s->seen) + len + 2 < sizeof(s->seen)) {
			strncat(s->seen, data, len);
			strcat(s->seen, "|");
		}
		if (strcmp(data, "STARTTLS") == 0) {
			conn_write(conn, "GO\r\n", 4);
			ck_assert_int_eq(conn_starttls(conn), 0);
		} else if (strcmp(data, "SEEN") == 0) {
			/* CR and LF inside lines shown as ^M and ^J */
			conn_write(conn, "SEEN ", 5);
			for (const char *c = s->seen; *c != '\0'; c++)
				conn_write(conn, *c == '\r' ? "^M" : *c == '\n' ? "^J" : c,
					   *c == '\r' || *c == '\n' ? 2 : 1);
			conn_write(conn, "\r\n", 2);
		} else if (strcmp(data, "COUNT") == 0) {
			conn_printf(conn, "COUNT %u %u\r\n", s->lines, s->too_long);
		} else if (strcmp(data, "FLOOD") == 0) {
			static char block[64 * 1024];
			memset(block, 'x', sizeof(block));
			for (size_t i = 0; i < TEST_FLOOD / sizeof(block); i++)
				conn_write(conn, block, sizeof(block));
			conn_write(conn, "\r\nEND\r\n", 7);
		} else if (strcmp(data, "JOB") == 0) {
			conn_pause(conn);
			s->lines = 21;
			conn_submit(conn, test_job_work, test_job_done, &s->lines);
		} else if (strncmp(data, "AUTHBLOCK ", 10) == 0) {
			for (int i = atoi(data + 10); i > 0; i--)
				ck_assert_int_eq(conn_submit_kind(conn, WORKER_AUTH, test_block_work,
								  test_block_done, s), 0);
			conn_write(conn, "BLOCKED\r\n", 9);
		} else if (strcmp(data, "IOJOB") == 0) {
			ck_assert_int_eq(conn_submit_kind(conn, WORKER_IO, test_quick_work,
							  test_quick_done, s), 0);
		} else if (strncmp(data, "IDLE ", 5) == 0) {
			conn_set_timeout(conn, (unsigned)atoi(data + 5));
			conn_write(conn, "ARMED\r\n", 7);
		} else if (strncmp(data, "BYTES ", 6) == 0) {
			conn_read_bytes(conn, (size_t)atoi(data + 6));
		} else if (strncmp(data, "UNREAD ", 7) == 0) {
			s->raw_take = (size_t)atoi(data + 7);
			s->raw = true;
			conn_read_raw(conn);
		} else if (strcmp(data, "RESET") == 0) {
			s->seen[0] = '\0';
		} else if (strcmp(data, "TLS?") == 0) {
			char d[128];
			conn_tls_describe(conn, d, sizeof(d));
			conn_printf(conn, "TLS %s\r\n", conn_is_tls(conn) ? d : "no");
		} else if (strcmp(data, "PEER") == 0) {
			conn_printf(conn, "PEER %s %d\r\n", conn_peer_addr(conn),
				    conn_peer_is_loopback(conn) ? 1 : 0);
		} else if (strcmp(data, "QUIT") == 0) {
			conn_write(conn, "BYE\r\n", 5);
			conn_close(conn);
		} else {
			conn_printf(conn, "LINE %zu\r\n", len);
		}
		break;
	case CONN_EV_LINE_TOO_LONG:
		s->too_long++;
		conn_write(conn, "TOOLONG\r\n", 9);
		break;
	case CONN_EV_BYTES:
		if (s->raw) {
			/* like SMTP at the end of DATA: keep a part, hand the
			 * rest back to be read as lines */
			size_t take = len < s->raw_take ? len : s->raw_take;
			conn_printf(conn, "RAW %.*s\r\n", (int)take, data);
			s->raw_take -= take;
			if (s->raw_take == 0) {
				s->raw = false;
				conn_unread(conn, data + take, len - take);
				conn_read_lines(conn, TEST_LINE_MAX, false);
			}
			break;
		}
		conn_printf(conn, "BYTES %zu\r\n", len);
		break;
	case CONN_EV_TIMEOUT:
		conn_write(conn, "TIMEOUT\r\n", 9);
		conn_close(conn);
		break;
	case CONN_EV_TLS_READY:
		conn_write(conn, "TLSOK\r\n", 7);
		break;
	case CONN_EV_DRAINED:
		break;
	case CONN_EV_CLOSED:
		free(s);
		break;
	}
}

static void test_accept(struct conn *conn, enum listener_role role, void *ctx)
{
	struct test_session *s = calloc(1, sizeof(*s));

	(void)role;
	(void)ctx;
	s->conn = conn;
	conn_set_handler(conn, test_on_event, s);
	conn_read_lines(conn, TEST_LINE_MAX, false);
	conn_write(conn, "HELLO\r\n", 7);
}

static void test_stop(struct conn *conn, void *session)
{
	(void)session;
	test_stopped_sessions++;
	conn_write(conn, "SHUTDOWN\r\n", 10);
	conn_close(conn);
}

/* ---- fixture ---------------------------------------------------------- */

static char test_dir[64];
static bool test_trust_loopback; /* keep the default trusted_networks */
static struct config test_cfg;
static struct server *test_srv;
static pthread_t test_thread;
static unsigned short test_port_plain, test_port_tls;
static volatile int test_run_rc = -99;
static bool test_ipv6; /* the plain listener on ::1 instead of 127.0.0.1 */

static unsigned short test_free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	close(fd);
	return ntohs(in.sin_port);
}

static void *test_loop(void *arg)
{
	(void)arg;
	test_run_rc = server_run(test_srv);
	return NULL;
}

static void test_start(unsigned per_ip)
{
	struct server_protocol proto = {
		.name = "test", .accept = test_accept, .stop = test_stop,
		.busy_reply = "BUSY\r\n",
	};
	char err[512], cert[128], key[128];

	strcpy(test_dir, "/tmp/postern-core-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", test_dir);
	snprintf(key, sizeof(key), "%s/key.pem", test_dir);
	ck_assert_msg(tls_make_self_signed("mail.test", cert, key, err, sizeof(err)) == 0, "%s", err);

	config_defaults(&test_cfg);
	if (!test_trust_loopback)
		test_cfg.n_trusted_networks = 0; /* loopback clients count as strangers */
	strcpy(test_cfg.hostname, "mail.test");
	strcpy(test_cfg.data_dir, test_dir);
	test_cfg.connections_per_ip_max = per_ip;
	test_cfg.shutdown_timeout = 5;
	strcpy(test_cfg.certs[0].cert_file, cert);
	strcpy(test_cfg.certs[0].key_file, key);
	/* A second certificate for SNI. */
	snprintf(test_cfg.certs[1].cert_file, sizeof(test_cfg.certs[1].cert_file), "%s/other.pem", test_dir);
	snprintf(test_cfg.certs[1].key_file, sizeof(test_cfg.certs[1].key_file), "%s/other.key", test_dir);
	ck_assert_msg(tls_make_self_signed("imap.other.test", test_cfg.certs[1].cert_file,
					   test_cfg.certs[1].key_file, err, sizeof(err)) == 0, "%s", err);
	test_cfg.n_certs = 2;
	test_port_plain = test_free_port();
	test_port_tls = test_free_port();
	test_cfg.listeners[0] = (struct config_listener){
		.name = "plain", .role = ROLE_IMAP, .address = "127.0.0.1",
		.port = test_port_plain, .tls = TLS_MODE_STARTTLS };
	test_cfg.listeners[1] = (struct config_listener){
		.name = "tls", .role = ROLE_IMAPS, .address = "127.0.0.1",
		.port = test_port_tls, .tls = TLS_MODE_IMPLICIT };
	test_cfg.n_listeners = 2;
	if (test_ipv6)
		strcpy(test_cfg.listeners[0].address, "::1");

	test_srv = server_new(&test_cfg, err, sizeof(err));
	ck_assert_msg(test_srv != NULL, "%s", err);
	server_set_protocol(test_srv, ROLE_IMAP, &proto);
	server_set_protocol(test_srv, ROLE_IMAPS, &proto);
	ck_assert_msg(server_listen(test_srv, SERVER_ROLES_ALL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(pthread_create(&test_thread, NULL, test_loop, NULL), 0);
}

static int test_connect(unsigned short port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read one CRLF line (plain or TLS) into out; returns its length or -1. */
static int test_readline(int fd, SSL *ssl, char *out, size_t outlen)
{
	size_t n = 0;

	while (n + 1 < outlen) {
		char c;
		int r = ssl != NULL ? SSL_read(ssl, &c, 1) : (int)read(fd, &c, 1);
		if (r <= 0)
			return -1;
		if (c == '\n') {
			if (n > 0 && out[n - 1] == '\r')
				n--;
			out[n] = '\0';
			return (int)n;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return (int)n;
}

static void test_expect(int fd, SSL *ssl, const char *want)
{
	char line[8192];

	ck_assert_int_ge(test_readline(fd, ssl, line, sizeof(line)), 0);
	ck_assert_str_eq(line, want);
}

static void test_send(int fd, const char *s)
{
	ck_assert_int_eq(write_full(fd, s, strlen(s)), 0);
}

static SSL *test_tls_client_sni(int fd, int max_version, const char *sni)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	if (max_version != 0) {
		SSL_CTX_set_min_proto_version(ctx, 0);
		SSL_CTX_set_max_proto_version(ctx, max_version);
		SSL_CTX_set_security_level(ctx, 0);
	}
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, sni);
	if (SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static SSL *test_tls_client(int fd, int max_version)
{
	return test_tls_client_sni(fd, max_version, "mail.test");
}

/* The subject CN of the certificate the server presented. */
static void test_peer_cn(SSL *ssl, char *out, size_t outlen)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);

	out[0] = '\0';
	if (cert != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)outlen);
		X509_free(cert);
	}
}

static void test_finish(void)
{
	kill(getpid(), SIGTERM);
	pthread_join(test_thread, NULL);
	ck_assert_int_eq(test_run_rc, 0);
	server_free(test_srv);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_core_line_limits)
{
	char line[TEST_LINE_MAX + 200];
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	memset(line, 'a', TEST_LINE_MAX);
	strcpy(line + TEST_LINE_MAX, "\r\n");
	test_send(fd, line); /* exactly the limit: accepted */
	test_expect(fd, NULL, "LINE 100");
	memset(line, 'b', TEST_LINE_MAX + 150);
	strcpy(line + TEST_LINE_MAX + 150, "\r\n");
	test_send(fd, line); /* over: one error, then the reader recovers */
	test_expect(fd, NULL, "TOOLONG");
	test_send(fd, "short\r\n");
	test_expect(fd, NULL, "LINE 5");
	/* A bare LF does not end a line in strict mode (SMTP smuggling). */
	test_send(fd, "a\nb\r\n");
	test_expect(fd, NULL, "LINE 3");
	/* An over-long line sent in many small pieces. */
	for (int i = 0; i < 50; i++)
		test_send(fd, "0123456789");
	test_send(fd, "\r\nCOUNT\r\n");
	test_expect(fd, NULL, "TOOLONG");
	test_expect(fd, NULL, "COUNT 4 2");
	test_send(fd, "BYTES 10\r\n0123456789COUNT\r\n");
	test_expect(fd, NULL, "BYTES 10");
	test_expect(fd, NULL, "COUNT 6 2");
	test_send(fd, "PEER\r\n");
	test_expect(fd, NULL, "PEER 127.0.0.1 1");
	test_send(fd, "QUIT\r\n");
	test_expect(fd, NULL, "BYE");
	ck_assert_int_eq(read(fd, line, 1), 0);
	close(fd);
	test_finish();
}
END_TEST

/* The one line reader, fed the same stream in one write, then one octet
 * per write: the same lines, CRLF only (a bare LF or CR never ends a
 * line, SMTP smuggling), over-long lines reported once. */
START_TEST(test_core_lines_split)
{
	static const char stream[] =
		"EHLO x\r\nNOOP\na\r\n0123456789ABCDEF" TEST_LONG_TAIL "\r\nRSET\r\n\r\n"
		"XY\r\r\nQUIT-NOT\r\nSEEN\r\n";
	static const char want[] = "SEEN EHLO x|NOOP^Ja|RSET||XY^M|QUIT-NOT|SEEN|";
	char line[512];
	int fd;

	test_start(10);
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		fd = test_connect(test_port_plain);
		test_expect(fd, NULL, "HELLO");
		if (!bytewise) {
			test_send(fd, stream);
		} else {
			for (size_t i = 0; stream[i] != '\0'; i++) {
				ck_assert_int_eq(write_full(fd, stream + i, 1), 0);
				if (i % 16 == 0)
					usleep(1000); /* let some octets arrive alone */
			}
		}
		test_expect(fd, NULL, "LINE 6");
		test_expect(fd, NULL, "LINE 6");
		test_expect(fd, NULL, "TOOLONG");
		test_expect(fd, NULL, "LINE 4");
		test_expect(fd, NULL, "LINE 0");
		test_expect(fd, NULL, "LINE 3");
		test_expect(fd, NULL, "LINE 8");
		ck_assert_int_ge(test_readline(fd, NULL, line, sizeof(line)), 0);
		ck_assert_msg(strcmp(line, want) == 0, "bytewise=%d: %s", bytewise, line);
		close(fd);
	}
	test_finish();
}
END_TEST

/* conn_unread(): what a raw reader hands back is read again first, in
 * order, as lines (SMTP's end of DATA with pipelined commands after it). */
START_TEST(test_core_unread)
{
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	test_send(fd, "UNREAD 5\r\nabcdeNOOP1\r\nRESET\r\nA\r\nSEEN\r\n");
	test_expect(fd, NULL, "RAW abcde");
	test_expect(fd, NULL, "LINE 5");
	test_expect(fd, NULL, "LINE 1");
	test_expect(fd, NULL, "SEEN A|SEEN|");
	/* the raw part split over several reads */
	test_send(fd, "UNREAD 6\r\nab");
	test_expect(fd, NULL, "RAW ab");
	usleep(20 * 1000);
	test_send(fd, "cdefLINE-AFTER\r\n");
	test_expect(fd, NULL, "RAW cdef");
	test_expect(fd, NULL, "LINE 10");
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_starttls_discards_pipelined)
{
	char line[8192];
	SSL *ssl;
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	/* The injected command arrives in the same packet as STARTTLS. */
	test_send(fd, "STARTTLS\r\nINJECTED\r\n");
	test_expect(fd, NULL, "GO");
	ssl = test_tls_client(fd, 0);
	ck_assert_ptr_nonnull(ssl);
	test_expect(fd, ssl, "TLSOK");
	ck_assert_int_gt(SSL_write(ssl, "SEEN\r\n", 6), 0);
	ck_assert_int_ge(test_readline(fd, ssl, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "SEEN STARTTLS|SEEN|");
	ck_assert_int_gt(SSL_write(ssl, "TLS?\r\n", 6), 0);
	ck_assert_int_ge(test_readline(fd, ssl, line, sizeof(line)), 0);
	ck_assert_msg(strncmp(line, "TLS TLSv1.3 ", 12) == 0, "%s", line);
	/* The goodbye before a close must reach the client through TLS. */
	ck_assert_int_gt(SSL_write(ssl, "QUIT\r\n", 6), 0);
	ck_assert_int_ge(test_readline(fd, ssl, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "BYE");
	SSL_free(ssl);
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_tls_versions)
{
	SSL *ssl;
	int fd;

	test_start(10);
	fd = test_connect(test_port_tls);
	ssl = test_tls_client(fd, TLS1_1_VERSION);
	ck_assert_msg(ssl == NULL, "TLS 1.1 handshake must fail");
	close(fd);
	ERR_clear_error();

	fd = test_connect(test_port_tls);
	ssl = test_tls_client(fd, TLS1_2_VERSION);
	ck_assert_ptr_nonnull(ssl);
	test_expect(fd, ssl, "HELLO");
	ck_assert_str_eq(SSL_get_version(ssl), "TLSv1.2");
	SSL_free(ssl);
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_sni)
{
	char cn[256];
	SSL *ssl;
	int fd;

	test_start(10);
	fd = test_connect(test_port_tls);
	ssl = test_tls_client_sni(fd, 0, "imap.other.test");
	ck_assert_ptr_nonnull(ssl);
	test_expect(fd, ssl, "HELLO");
	test_peer_cn(ssl, cn, sizeof(cn));
	ck_assert_str_eq(cn, "imap.other.test");
	SSL_free(ssl);
	close(fd);

	fd = test_connect(test_port_tls);
	ssl = test_tls_client_sni(fd, 0, "unknown.example");
	ck_assert_ptr_nonnull(ssl);
	test_peer_cn(ssl, cn, sizeof(cn));
	ck_assert_str_eq(cn, "mail.test"); /* the default certificate */
	SSL_free(ssl);
	close(fd);
	test_finish();
}
END_TEST

/* A listener on ::1 (tests stay on loopback, so no "*" here). */
START_TEST(test_core_ipv6)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct timeval tv = { 10, 0 };
	int fd;

	fd = socket(AF_INET6, SOCK_STREAM, 0);
	in6.sin6_addr = in6addr_loopback;
	if (fd < 0 || bind(fd, (struct sockaddr *)&in6, sizeof(in6)) < 0) {
		/* no IPv6 on this machine's loopback: nothing to test */
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	test_ipv6 = true;
	test_start(10);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	in6.sin6_port = htons(test_port_plain);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&in6, sizeof(in6)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	test_expect(fd, NULL, "HELLO");
	test_send(fd, "PEER\r\n");
	test_expect(fd, NULL, "PEER ::1 1");
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_backpressure)
{
	char buf[65536];
	size_t got = 0;
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	test_send(fd, "FLOOD\r\n");
	usleep(200 * 1000);
	/* While the flood is unread the server must not act on input. */
	for (int i = 0; i < 20; i++)
		test_send(fd, "x\r\n");
	test_send(fd, "COUNT\r\n");
	usleep(200 * 1000);
	/* Now read everything: the flood, then the replies in order. */
	while (got < TEST_FLOOD) {
		ssize_t n = read(fd, buf, sizeof(buf) < TEST_FLOOD - got ? sizeof(buf) : TEST_FLOOD - got);
		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	test_expect(fd, NULL, "");
	test_expect(fd, NULL, "END");
	for (int i = 0; i < 20; i++)
		test_expect(fd, NULL, "LINE 1");
	test_expect(fd, NULL, "COUNT 22 0");
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_worker_job_pauses_input)
{
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	/* COUNT is pipelined behind JOB and must wait for the job. */
	test_send(fd, "JOB\r\nCOUNT\r\n");
	test_expect(fd, NULL, "JOB 42");
	test_expect(fd, NULL, "COUNT 43 0");
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_auth_pool_separate)
{
	/* More blocked password checks than both pools have threads: with
	 * one shared pool the IO job would queue behind them for good. */
	int n = WORKER_IO_THREADS + WORKER_AUTH_THREADS + 2;
	char cmd[32];
	struct timespec t0, t1;
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	snprintf(cmd, sizeof(cmd), "AUTHBLOCK %d\r\n", n);
	test_send(fd, cmd);
	test_expect(fd, NULL, "BLOCKED");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_send(fd, "IOJOB\r\n");
	test_expect(fd, NULL, "IODONE");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Blocked behind the AUTH jobs it would never come (they wait for
	 * the release below); the bound only keeps a loaded machine from
	 * making the test flaky. */
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000,
			 5000);
	test_block_release();
	for (int i = 0; i < n; i++)
		test_expect(fd, NULL, "AUTHDONE");
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_idle_timeout)
{
	char line[64];
	time_t t0;
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	test_send(fd, "IDLE 1\r\n");
	test_expect(fd, NULL, "ARMED");
	t0 = time(NULL);
	test_expect(fd, NULL, "TIMEOUT");
	ck_assert_int_eq(read(fd, line, 1), 0);
	ck_assert_int_le(time(NULL) - t0, 3);
	close(fd);
	test_finish();
}
END_TEST

START_TEST(test_core_per_ip_limit)
{
	int fds[3];
	char line[64];

	test_trust_loopback = false;
	test_start(2);
	for (int i = 0; i < 2; i++) {
		fds[i] = test_connect(test_port_plain);
		test_expect(fds[i], NULL, "HELLO");
	}
	fds[2] = test_connect(test_port_plain);
	test_expect(fds[2], NULL, "BUSY");
	ck_assert_int_eq(read(fds[2], line, 1), 0);
	close(fds[2]);
	close(fds[0]);
	usleep(100 * 1000);
	fds[2] = test_connect(test_port_plain);
	test_expect(fds[2], NULL, "HELLO");
	close(fds[1]);
	close(fds[2]);
	test_finish();
}
END_TEST

/* trusted_networks (loopback by default) are counted but never refused. */
START_TEST(test_core_per_ip_limit_trusted)
{
	int fds[4];

	test_trust_loopback = true;
	test_start(2);
	for (int i = 0; i < 4; i++) {
		fds[i] = test_connect(test_port_plain);
		test_expect(fds[i], NULL, "HELLO");
	}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	test_trust_loopback = false;
	test_finish();
}
END_TEST

START_TEST(test_core_graceful_stop)
{
	char line[64];
	int fd;

	test_start(10);
	fd = test_connect(test_port_plain);
	test_expect(fd, NULL, "HELLO");
	kill(getpid(), SIGTERM);
	test_expect(fd, NULL, "SHUTDOWN");
	ck_assert_int_eq(read(fd, line, 1), 0);
	pthread_join(test_thread, NULL);
	ck_assert_int_eq(test_run_rc, 0);
	ck_assert_int_eq(test_stopped_sessions, 1);
	/* The listener is gone. */
	{
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(test_port_plain) };
		int fd2 = socket(AF_INET, SOCK_STREAM, 0);
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_ne(connect(fd2, (struct sockaddr *)&in, sizeof(in)), 0);
		close(fd2);
	}
	close(fd);
	server_free(test_srv);
}
END_TEST

/* A done() that submits a follow-up job while the pool is being freed:
 * the follow-up still runs (and its done()), so no connection waits forever. */
static int test_chain_stage;

static void test_chain_work(void *arg)
{
	(void)arg;
	test_chain_stage++;
}

static void test_chain_done2(void *arg)
{
	(void)arg;
	test_chain_stage += 10;
}

static void test_chain_done1(void *arg)
{
	test_chain_stage += 10;
	ck_assert_int_eq(worker_submit(arg, test_chain_work, test_chain_done2, arg), 0);
}

START_TEST(test_core_worker_free_runs_followups)
{
	struct event_base *base;
	struct worker_pool *pool;

	ck_assert_int_eq(evthread_use_pthreads(), 0);
	base = event_base_new();
	pool = worker_pool_new(base, 2);
	ck_assert_ptr_nonnull(pool);
	ck_assert_int_eq(worker_submit(pool, test_chain_work, test_chain_done1, pool), 0);
	worker_pool_free(pool); /* the loop never ran */
	ck_assert_int_eq(test_chain_stage, 22);
	event_base_free(base);
}
END_TEST

START_TEST(test_core_base64)
{
	unsigned char out[64];
	char enc[64];

	base64_encode("\0user\0pass", 10, enc);
	ck_assert_str_eq(enc, "AHVzZXIAcGFzcw==");
	ck_assert_int_eq(base64_decode(enc, strlen(enc), out), 10);
	ck_assert_int_eq(memcmp(out, "\0user\0pass", 10), 0);
	ck_assert_int_eq(base64_decode("AHVzZXIAcGFzcw=", 15, out), -1);
	ck_assert_int_eq(base64_decode("AHVz ZXIA", 9, out), -1);
	ck_assert_int_eq(base64_decode("AB==", 4, out), -1); /* non-canonical bits */
	ck_assert_int_eq(base64_decode("A===", 4, out), -1);
	ck_assert_int_eq(base64_decode("", 0, out), 0);
}
END_TEST


/* buf_put_uint writes what "%llu" does, and keeps the buffer at its cap. */
START_TEST(test_core_buf_put_uint)
{
	static const uint64_t values[] = { 0, 9, 10, 4294967295u, UINT64_MAX };
	struct buf b;
	char want[32];

	buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		buf_reset(&b);
		snprintf(want, sizeof(want), "%llu", (unsigned long long)values[i]);
		ck_assert_int_eq(buf_put_uint(&b, values[i]), 0);
		ck_assert_int_eq(buf_cstr(&b), 0);
		ck_assert_str_eq(b.data, want);
	}
	buf_free(&b);
	buf_init(&b, 4);
	ck_assert_int_eq(buf_put_uint(&b, 123), 0);
	ck_assert_int_eq(buf_put_uint(&b, 45), -1);
	ck_assert_uint_eq(b.len, 3);
	buf_free(&b);
}
END_TEST

/* buf_appendf formats %s %c %d %u (l, ll, z) itself: the same text as
 * snprintf, all or nothing at the cap, and anything else through stdio. */
START_TEST(test_core_buf_appendf)
{
	struct buf b;
	char want[256];

#define CHECK_FMT(...)                                                         \
	do {                                                                   \
		buf_reset(&b);                                                 \
		snprintf(want, sizeof(want), __VA_ARGS__);                     \
		ck_assert_int_eq(buf_appendf(&b, __VA_ARGS__), 0);             \
		ck_assert_int_eq(buf_cstr(&b), 0);                             \
		ck_assert_str_eq(b.data, want);                                \
	} while (0)

	buf_init(&b, 0);
	CHECK_FMT("plain");
	CHECK_FMT("%s", "");
	CHECK_FMT("* %u FETCH (UID %u FLAGS (%s))", 7u, 4294967295u, "\\Seen");
	CHECK_FMT("%d %d %d", 0, INT_MIN, INT_MAX);
	CHECK_FMT("%ld %lu %lld %llu", LONG_MIN, ULONG_MAX, LLONG_MIN, ULLONG_MAX);
	CHECK_FMT("%zu %zd %zd", SIZE_MAX, (ssize_t)-5, (ssize_t)12);
	CHECK_FMT("100%% %c%c", 'o', 'k');
	CHECK_FMT("{%llu}\r\n", 0ULL);
	CHECK_FMT("%s%s%s", "a", "", "bc");
	/* not ours: width, precision, hex, floats go through stdio */
	CHECK_FMT("%08x|%-4s|%.*s|%5u|%.1f", 0xbeefu, "ab", 2, "xyz", 42u, 1.5);
	buf_free(&b);

	/* at the cap nothing of the text is appended, in both paths */
	buf_init(&b, 8);
	ck_assert_int_eq(buf_appendf(&b, "%s", "12345"), 0);
	ck_assert_int_eq(buf_appendf(&b, "%s%u", "ab", 12345u), -1);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_int_eq(buf_appendf(&b, "%5s", "abcdef"), -1);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_int_eq(buf_appendf(&b, "%u", 678u), 0);
	ck_assert_uint_eq(b.len, 8);
	ck_assert_int_eq(memcmp(b.data, "12345678", 8), 0);
	buf_free(&b);
#undef CHECK_FMT
}
END_TEST

START_TEST(test_core_write_file_atomic)
{
	char dir[] = "/tmp/postern-atomic-XXXXXX", path[128], *data;
	size_t len;
	struct stat st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	ck_assert_int_eq(write_file_atomic(path, "one", 3, 0600), 0);
	ck_assert_int_eq(write_file_atomic(path, "two!", 4, 0640), 0);
	ck_assert_int_eq(read_small_file(path, 100, &data, &len), 0);
	ck_assert_str_eq(data, "two!");
	free(data);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	ck_assert_int_eq(read_small_file(path, 2, &data, &len), -1);
	ck_assert_int_eq(errno, EFBIG);
	/* write_file_new never replaces, and leaves no temporary behind */
	ck_assert_int_eq(write_file_new(path, "three", 5, 0600), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(read_small_file(path, 100, &data, &len), 0);
	ck_assert_str_eq(data, "two!");
	free(data);
	unlink(path);
	ck_assert_int_eq(write_file_new(path, "three", 5, 0600), 0);
	ck_assert_int_eq(read_small_file(path, 100, &data, &len), 0);
	ck_assert_str_eq(data, "three");
	free(data);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	unlink(path);
	ck_assert_int_eq(rmdir(dir), 0); /* empty: no path.tmp.PID left */
}
END_TEST

static Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_core_line_limits);
	tcase_add_test(tc, test_core_starttls_discards_pipelined);
	tcase_add_test(tc, test_core_tls_versions);
	tcase_add_test(tc, test_core_sni);
	tcase_add_test(tc, test_core_ipv6);
	tcase_add_test(tc, test_core_backpressure);
	tcase_add_test(tc, test_core_worker_job_pauses_input);
	tcase_add_test(tc, test_core_auth_pool_separate);
	tcase_add_test(tc, test_core_idle_timeout);
	tcase_add_test(tc, test_core_per_ip_limit);
	tcase_add_test(tc, test_core_lines_split);
	tcase_add_test(tc, test_core_unread);
	tcase_add_test(tc, test_core_per_ip_limit_trusted);
	tcase_add_test(tc, test_core_graceful_stop);
	tcase_add_test(tc, test_core_worker_free_runs_followups);
	tcase_add_test(tc, test_core_base64);
	tcase_add_test(tc, test_core_write_file_atomic);
	tcase_add_test(tc, test_core_buf_appendf);
	tcase_add_test(tc, test_core_buf_put_uint);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(core_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
