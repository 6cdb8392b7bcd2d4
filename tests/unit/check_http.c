/* The HTTP endpoint's pure parts: which listeners are advertised and in
 * what order, XML escaping, the Autodiscover request's address, the
 * MTA-STS policy bytes; and core's metrics text and sd_notify datagram. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "http_private.h"
#include "metrics.h"
#include "notify.h"
#include "util.h"

static struct config *test_config(const char *text)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char err[CONFIG_ERROR_MAX];

	ck_assert_ptr_nonnull(cfg);
	ck_assert_msg(config_parse("/t.conf", text, strlen(text), cfg, err, sizeof(err)) == 0,
		      "%s", err);
	return cfg;
}

static const char test_conf[] =
	"hostname = mail.example.org\ndata_dir = /d\ndomains = example.org\n"
	"tls_certificate {\n cert = c\n key = k\n}\n"
	"listener a {\n role = imap\n}\n"
	"listener b {\n role = imaps\n address = 127.0.0.1\n}\n"
	"listener c {\n role = imap\n port = 10143\n tls = none\n}\n"
	"listener d {\n role = smtp\n}\n"
	"listener e {\n role = submission\n}\n"
	"listener f {\n role = submissions\n}\n"
	"listener g {\n role = imaps\n address = ::1\n}\n"
	"listener h {\n role = http\n}\n";

START_TEST(test_http_services_order)
{
	struct config *cfg = test_config(test_conf);
	struct http_service svc[HTTP_SERVICES_MAX];
	size_t n = http_services(cfg, svc, HTTP_SERVICES_MAX);

	/* Implicit TLS first, no plaintext-only, no port 25, no duplicates. */
	ck_assert_uint_eq(n, 4);
	ck_assert(svc[0].type == HTTP_SVC_IMAP && svc[0].port == 993 && svc[0].implicit_tls);
	ck_assert(svc[1].type == HTTP_SVC_SMTP && svc[1].port == 465 && svc[1].implicit_tls);
	ck_assert(svc[2].type == HTTP_SVC_IMAP && svc[2].port == 143 && !svc[2].implicit_tls);
	ck_assert(svc[3].type == HTTP_SVC_SMTP && svc[3].port == 587 && !svc[3].implicit_tls);
	ck_assert_uint_eq(http_services(cfg, svc, 2), 2);
	free(cfg);
}
END_TEST

START_TEST(test_http_xml_escape)
{
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(http_xml_escape(&b, "a<b>&\"c'"), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_str_eq(b.data, "a&lt;b&gt;&amp;&quot;c&apos;");
	buf_free(&b);
	buf_init(&b, 8); /* the cap holds */
	ck_assert_int_eq(http_xml_escape(&b, "&&&&&&&&"), -1);
	ck_assert_uint_le(b.len, 8);
	buf_free(&b);
}
END_TEST

START_TEST(test_http_autodiscover_address)
{
	static const struct {
		const char *body;
		const char *want;
	} cases[] = {
		{ "<Request><EMailAddress>a@example.org</EMailAddress></Request>", "a@example.org" },
		{ "<EMailAddress>a@example.org", "" },            /* unterminated */
		{ "<EMailAddress></EMailAddress>", "" },
		{ "<EMailAddress>no-at</EMailAddress>", "" },
		{ "<EMailAddress>a b@x</EMailAddress>", "" },
		{ "<EMailAddress>a&amp;@x</EMailAddress>", "" },
		{ "<EMailAddress>a<x>@x</EMailAddress>", "" },
		{ "</EMailAddress><EMailAddress>", "" },
		{ "", "" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_autodiscover_address(cases[i].body, strlen(cases[i].body), out, sizeof(out));
		ck_assert_msg(strcmp(out, cases[i].want) == 0, "%s: %s", cases[i].body, out);
	}
	/* Too long for out: nothing, never a truncated address. */
	http_autodiscover_address("<EMailAddress>abcdefgh@example.org</EMailAddress>", 48,
				  out, 8);
	ck_assert_str_eq(out, "");
	/* The body is not NUL-terminated: every prefix is safe. */
	{
		static const char body[] = "<EMailAddress>a@example.org</EMailAddress>";
		for (size_t len = 0; len < sizeof(body) - 1; len++) {
			char *copy = malloc(len ? len : 1);
			memcpy(copy, body, len);
			http_autodiscover_address(copy, len, out, sizeof(out));
			ck_assert_str_eq(out, "");
			free(copy);
		}
	}
}
END_TEST

START_TEST(test_http_mta_sts_policy)
{
	struct config *cfg = test_config(test_conf);
	struct buf b;

	buf_init(&b, 1024);
	ck_assert_int_eq(config_mta_sts_policy(cfg, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_str_eq(b.data, "version: STSv1\r\nmode: none\r\nmx: mail.example.org\r\n"
			 "max_age: 604800\r\n");
	buf_free(&b);
	free(cfg);
}
END_TEST

START_TEST(test_http_autoconfig_escapes)
{
	struct config *cfg = test_config(test_conf);
	struct buf b;

	buf_init(&b, HTTP_REPLY_MAX);
	ck_assert_int_eq(http_autoconfig_xml(cfg, "example.org", &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "<clientConfig version=\"1.1\">"));
	ck_assert_ptr_nonnull(strstr(b.data, "<username>%EMAILADDRESS%</username>"));
	ck_assert_ptr_null(strstr(b.data, "10143"));
	buf_free(&b);
	buf_init(&b, HTTP_REPLY_MAX);
	ck_assert_int_eq(http_autodiscover_xml(cfg, "", &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_null(strstr(b.data, "LoginName")); /* no address, no login */
	buf_free(&b);
	free(cfg);
}
END_TEST

START_TEST(test_metrics_text)
{
	struct buf b;

	metrics_connection(ROLE_IMAPS);
	metrics_count(METRICS_LOGIN_FAILED);
	metrics_queue_size(7);
	metrics_delivery_latency(0.2);
	metrics_delivery_latency(100000);
	metrics_index_batch(3);
	buf_init(&b, 65536);
	ck_assert_int_eq(metrics_format(&b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_ptr_nonnull(strstr(b.data,
		"\npostern_connections_total{protocol=\"imap\",role=\"imaps\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\npostern_logins_total{result=\"failed\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\npostern_queue_messages 7\n"));
	/* Buckets are cumulative; +Inf is the count. */
	ck_assert_ptr_nonnull(strstr(b.data,
		"\npostern_delivery_latency_seconds_bucket{le=\"0.1\"} 0\n"
		"postern_delivery_latency_seconds_bucket{le=\"0.5\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
		"\npostern_delivery_latency_seconds_bucket{le=\"86400\"} 1\n"
		"postern_delivery_latency_seconds_bucket{le=\"+Inf\"} 2\n"
		"postern_delivery_latency_seconds_sum 100000.200\n"
		"postern_delivery_latency_seconds_count 2\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
		"\npostern_index_commit_batch_size_bucket{le=\"2\"} 0\n"
		"postern_index_commit_batch_size_bucket{le=\"4\"} 1\n"));
	buf_free(&b);
	buf_init(&b, 100); /* the cap holds */
	ck_assert_int_eq(metrics_format(&b), -1);
	buf_free(&b);
}
END_TEST

START_TEST(test_notify_datagram)
{
	char path[] = "/tmp/check_http.XXXXXX", sock_path[64];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char got[64];
	ssize_t n;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(path));
	snprintf(sock_path, sizeof(sock_path), "%s/n", path);
	str_copy(sun.sun_path, sock_path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(notify_systemd("READY=1"), 0); /* no socket: nothing */
	setenv("NOTIFY_SOCKET", sock_path, 1);
	ck_assert_int_eq(notify_systemd("READY=1"), 0);
	n = recv(fd, got, sizeof(got), 0);
	ck_assert_int_eq(n, 7);
	ck_assert_int_eq(memcmp(got, "READY=1", 7), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ck_assert_int_eq(notify_systemd("READY=1"), -1);
	unsetenv("NOTIFY_SOCKET");
	close(fd);
	unlink(sock_path);
	rmdir(path);
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_http_services_order);
	tcase_add_test(tc, test_http_xml_escape);
	tcase_add_test(tc, test_http_autodiscover_address);
	tcase_add_test(tc, test_http_mta_sts_policy);
	tcase_add_test(tc, test_http_autoconfig_escapes);
	tcase_add_test(tc, test_metrics_text);
	tcase_add_test(tc, test_notify_datagram);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
