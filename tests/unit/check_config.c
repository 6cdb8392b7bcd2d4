/* Unit tests for core/config.c: values, every error with its line number,
 * the shipped example, the demo writer, and robustness on cut or mangled
 * input. */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define PATH "/etc/postern/postern.conf"
/* Two lines every valid file needs; error cases start on line 3. */
#define HEAD "hostname = mail.example.org\ndata_dir = /srv/mail\n"
/* Four lines. */
#define CERT "tls_certificate {\ncert = c.pem\nkey = k.pem\n}\n"

static struct config *cfg;
static char err[CONFIG_ERROR_MAX];

static void setup(void)
{
	cfg = malloc(sizeof(*cfg));
	ck_assert_ptr_nonnull(cfg);
	err[0] = '\0';
}

static void teardown(void)
{
	free(cfg);
	cfg = NULL;
}

static int parse(const char *text)
{
	return config_parse(PATH, text, strlen(text), cfg, err, sizeof(err));
}

static const char good[] =
	"# a comment\n"
	"\n"
	"hostname = Mail.Example.ORG\n"
	"data_dir = data\n"
	"domains = Example.org, example.NET  mail.example.org,example.org\n"
	"run_as_user = postern\n"
	"log_level = debug\n"
	"message_size_max = 20M\n"
	"connections_max = 500\n"
	"connections_per_ip_max = 7\n"
	"line_length_max = 1000\n"
	"smtp_timeout = 30\n"
	"imap_idle_timeout = 60\n"
	"pop3_idle_timeout = 61\n"
	"shutdown_timeout = 0\n"
	"allow_plaintext_auth_on_loopback = On\n"
	"smtp_bare_lf = normalise\n"
	"quota_error = permanent\n"
	"tls_certificate {\n"
	"    cert = tls/fullchain.pem\n"
	"    key = /abs/privkey.pem\n"
	"}\n"
	"listener mx {\n"
	"\trole = smtp\n"
	"}\n"
	"listener sub{\n"
	"  role=submissions\n"
	"  address = ::1\n"
	"  port = 4650\n"
	"}\n"
	"  listener plain-imap {  \n"
	"  role = IMAP\n"
	"  address = 127.0.0.1\n"
	"  port = 143\n"
	"  tls = none\n"
	"  }\n"
	"listener imap2 {\n"
	"  role = imap\n"
	"  address = 127.0.0.2\n"
	"  port = 143\n"
	"}\n"
	"pop3_uidl_format = %f-%04Xu%%%v\n"
	"smtp_inbound_tls_min = 1.1\n"
	"imap_expunge_log_max = 500\n"
	"imap_expunge_log_age = 7d\n";

START_TEST(test_config_good_file)
{
	ck_assert_int_eq(parse(good), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(cfg->path, PATH);
	ck_assert_str_eq(cfg->hostname, "mail.example.org");
	ck_assert_str_eq(cfg->data_dir, "/etc/postern/data");
	ck_assert_uint_eq(cfg->n_domains, 3);
	ck_assert_str_eq(cfg->domains[0], "example.org");
	ck_assert_str_eq(cfg->domains[1], "example.net");
	ck_assert_str_eq(cfg->domains[2], "mail.example.org");
	ck_assert_str_eq(cfg->run_as_user, "postern");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_DEBUG);
	ck_assert_uint_eq(cfg->message_size_max, 20ULL * 1024 * 1024);
	ck_assert_uint_eq(cfg->connections_max, 500);
	ck_assert_uint_eq(cfg->connections_per_ip_max, 7);
	ck_assert_uint_eq(cfg->line_length_max, 1000);
	ck_assert_uint_eq(cfg->smtp_timeout, 30);
	ck_assert_uint_eq(cfg->imap_idle_timeout, 60);
	ck_assert_uint_eq(cfg->imap_expunge_log_max, 500);
	ck_assert_uint_eq(cfg->imap_expunge_log_age, 7 * 86400);
	ck_assert_uint_eq(cfg->pop3_idle_timeout, 61);
	ck_assert_uint_eq(cfg->shutdown_timeout, 0);
	ck_assert(cfg->allow_plaintext_auth_on_loopback);
	ck_assert_int_eq(cfg->smtp_bare_lf, BARE_LF_NORMALISE);
	ck_assert(cfg->quota_error_permanent);
	ck_assert_str_eq(cfg->pop3_uidl_format, "%f-%04Xu%%%v");
	ck_assert_uint_eq(cfg->smtp_inbound_tls_min, 11);

	ck_assert_uint_eq(cfg->n_certs, 1);
	ck_assert_str_eq(cfg->certs[0].cert_file, "/etc/postern/tls/fullchain.pem");
	ck_assert_str_eq(cfg->certs[0].key_file, "/abs/privkey.pem");
	ck_assert_uint_eq(cfg->certs[0].line, 19);

	ck_assert_uint_eq(cfg->n_listeners, 4);
	ck_assert_str_eq(cfg->listeners[0].name, "mx");
	ck_assert_int_eq(cfg->listeners[0].role, ROLE_SMTP);
	ck_assert_str_eq(cfg->listeners[0].address, "*");
	ck_assert_uint_eq(cfg->listeners[0].port, 25);
	ck_assert_int_eq(cfg->listeners[0].tls, TLS_MODE_STARTTLS);
	ck_assert_uint_eq(cfg->listeners[0].line, 23);
	ck_assert_str_eq(cfg->listeners[1].name, "sub");
	ck_assert_int_eq(cfg->listeners[1].role, ROLE_SUBMISSIONS);
	ck_assert_str_eq(cfg->listeners[1].address, "::1");
	ck_assert_uint_eq(cfg->listeners[1].port, 4650);
	ck_assert_int_eq(cfg->listeners[1].tls, TLS_MODE_IMPLICIT);
	ck_assert_str_eq(cfg->listeners[2].name, "plain-imap");
	ck_assert_int_eq(cfg->listeners[2].role, ROLE_IMAP);
	ck_assert_int_eq(cfg->listeners[2].tls, TLS_MODE_NONE);
	ck_assert_uint_eq(cfg->listeners[2].port, 143);
	ck_assert_uint_eq(cfg->listeners[2].line, 31);
	/* Same port on another address is fine. */
	ck_assert_str_eq(cfg->listeners[3].address, "127.0.0.2");
	ck_assert_uint_eq(cfg->listeners[3].port, 143);
}
END_TEST

START_TEST(test_config_defaults)
{
	config_defaults(cfg);
	ck_assert_uint_eq(cfg->message_size_max, 50ULL * 1024 * 1024);
	ck_assert_uint_eq(cfg->connections_max, 10000);
	ck_assert_uint_eq(cfg->connections_per_ip_max, 50);
	ck_assert_uint_eq(cfg->line_length_max, 8192);
	ck_assert_uint_eq(cfg->smtp_timeout, 300);
	ck_assert_uint_eq(cfg->imap_idle_timeout, 1800);
	ck_assert_uint_eq(cfg->imap_expunge_log_max, 10000);
	ck_assert_uint_eq(cfg->imap_expunge_log_age, 0);
	ck_assert_uint_eq(cfg->pop3_idle_timeout, 600);
	ck_assert_uint_eq(cfg->shutdown_timeout, 30);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_int_eq(cfg->smtp_bare_lf, BARE_LF_REJECT);
	ck_assert(!cfg->quota_error_permanent);
	ck_assert_str_eq(cfg->pop3_uidl_format, "%08Xu%08Xv"); /* Dovecot's default */
	ck_assert_uint_eq(cfg->smtp_inbound_tls_min, 10);
	ck_assert(!cfg->allow_plaintext_auth_on_loopback);
	ck_assert_uint_eq(cfg->n_listeners, 0);
	ck_assert_uint_eq(cfg->n_certs, 0);
	ck_assert_uint_eq(cfg->n_domains, 0);
	ck_assert_str_eq(cfg->run_as_user, "");

	/* A minimal file keeps them all. */
	ck_assert_int_eq(parse(HEAD), 0);
	ck_assert_uint_eq(cfg->message_size_max, 50ULL * 1024 * 1024);
	ck_assert_uint_eq(cfg->smtp_timeout, 300);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_str_eq(cfg->data_dir, "/srv/mail");
}
END_TEST

START_TEST(test_config_values_accepted)
{
	static const struct {
		const char *line;
		uint64_t size;
	} sizes[] = {
		{ "message_size_max = 65536\n", 65536 },
		{ "message_size_max = 64K\n", 65536 },
		{ "message_size_max = 64k\n", 65536 },
		{ "message_size_max = 1G\n", 1024ULL * 1024 * 1024 },
		{ "message_size_max = 3m\n", 3ULL * 1024 * 1024 },
	};
	static const char *const bools[] = { "yes", "no", "true", "false", "on", "off" };
	char text[256];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(text, sizeof(text), HEAD "%s", sizes[i].line);
		ck_assert_msg(parse(text) == 0, "%s: %s", sizes[i].line, err);
		ck_assert_uint_eq(cfg->message_size_max, sizes[i].size);
	}
	for (size_t i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), HEAD "allow_plaintext_auth_on_loopback = %s\n", bools[i]);
		ck_assert_msg(parse(text) == 0, "%s: %s", bools[i], err);
		ck_assert_int_eq(cfg->allow_plaintext_auth_on_loopback, i % 2 == 0);
	}
	ck_assert_int_eq(parse(HEAD "line_length_max = 1048576\nsmtp_bare_lf = reject\n"
			       "quota_error = temporary\nrun_as_user = _mail.user-1\n"), 0);
	ck_assert_uint_eq(cfg->line_length_max, 1048576);
	/* CRLF line ends, a final line without newline. */
	ck_assert_int_eq(parse("hostname = a.example\r\ndata_dir = /d\r\nlog_level = warn"), 0);
	ck_assert_str_eq(cfg->hostname, "a.example");
	ck_assert_str_eq(cfg->data_dir, "/d");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_WARN);
	/* A '#' after a value is part of it: paths may contain one. */
	ck_assert_int_eq(parse("hostname = a.example\ndata_dir = /d#1\n"), 0);
	ck_assert_str_eq(cfg->data_dir, "/d#1");
	/* 253 characters with 63-character labels is the longest name. */
	{
		char name[300], file[400];
		memset(name, 'a', sizeof(name));
		name[63] = name[127] = name[191] = '.';
		name[253] = '\0';
		snprintf(file, sizeof(file), "hostname = %s\ndata_dir = /d\n", name);
		ck_assert_msg(parse(file) == 0, "%s", err);
		ck_assert_uint_eq(strlen(cfg->hostname), 253);
		name[253] = 'a';
		name[254] = '\0';
		snprintf(file, sizeof(file), "hostname = %s\ndata_dir = /d\n", name);
		ck_assert_int_eq(parse(file), -1);
		ck_assert_ptr_nonnull(strstr(err, ":1: invalid host name"));
		/* A 64-character label is one too many. */
		memset(name, 'a', 64);
		strcpy(name + 64, ".org");
		snprintf(file, sizeof(file), "hostname = %s\ndata_dir = /d\n", name);
		ck_assert_int_eq(parse(file), -1);
		ck_assert_ptr_nonnull(strstr(err, ":1: invalid host name"));
	}
}
END_TEST

START_TEST(test_config_relative_paths)
{
	char cwd[PATH_MAX], want[PATH_MAX + 16];
	const char *text = "hostname = h.example\ndata_dir = ../data\n";

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(config_parse("postern.conf", text, strlen(text), cfg, err,
				      sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/../data", cwd);
	ck_assert_str_eq(cfg->data_dir, want);
	ck_assert_int_eq(config_parse("etc/postern.conf", text, strlen(text), cfg, err,
				      sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/etc/../data", cwd);
	ck_assert_str_eq(cfg->data_dir, want);
	ck_assert_int_eq(config_parse("/postern.conf", text, strlen(text), cfg, err,
				      sizeof(err)), 0);
	ck_assert_str_eq(cfg->data_dir, "/../data");
}
END_TEST

/* Each case: the file, the line the error must name (0: whole file), and a
 * piece of the message. */
static const struct {
	const char *text;
	unsigned line;
	const char *msg;
} errors[] = {
	{ HEAD "hostnme = mail\n", 3, "unknown key 'hostnme'" },
	{ HEAD "listener a {\nrole = smtp\nhostname = x.y\n}\n", 5,
	  "unknown key 'hostname' in listener block" },
	{ HEAD CERT "tls_certificate {\ncert = a\nport = 1\n}\n", 9,
	  "unknown key 'port' in tls_certificate block" },
	{ HEAD "mailbox x {\n}\n", 3, "unknown block type 'mailbox'" },
	{ HEAD "{\n", 3, "'{' without a block type" },
	{ HEAD "log_level debug\n", 3, "missing '=' in 'log_level debug'" },
	{ HEAD "= debug\n", 3, "missing key before '='" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\nport = abc\n}\n", 6,
	  "port must be a number from 1 to 65535, not 'abc'" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\nport = 0\n}\n", 6, "port must be" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\nport = 65536\n}\n", 6, "port must be" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\nport = -1\n}\n", 6, "port must be" },
	{ HEAD "listener a {\nrole = lmtp2\n}\n", 4, "unknown role 'lmtp2'" },
	{ HEAD "listener a {\nrole = smtp\ntls = ssl\n}\n", 5, "unknown tls mode 'ssl'" },
	{ HEAD "listener a {\nrole = smtp\naddress = localhost\n}\n", 5,
	  "address must be an IPv4 or IPv6 address, * or unix:/path" },
	{ HEAD "listener a {\nrole = smtp\naddress = [::1]\n}\n", 5, "address must be" },
	{ HEAD "listener a {\nrole = smtp\naddress = 1.2.3.256\n}\n", 5, "address must be" },
	{ HEAD "log_level = loud\n", 3, "unknown log level 'loud'" },
	{ HEAD "allow_plaintext_auth_on_loopback = maybe\n", 3,
	  "allow_plaintext_auth_on_loopback must be yes or no, not 'maybe'" },
	{ HEAD "allow_plaintext_auth_on_loopback = 1\n", 3, "must be yes or no" },
	{ HEAD "smtp_bare_lf = strip\n", 3, "smtp_bare_lf must be reject or normalise" },
	{ HEAD "quota_error = never\n", 3, "quota_error must be temporary or permanent" },
	{ HEAD "pop3_uidl_format = %m\n", 3, "pop3_uidl_format: '%m' is not a format" },
	{ HEAD "pop3_uidl_format = %08Xf\n", 3, "pop3_uidl_format: '%08Xf' is not" },
	{ HEAD "pop3_uidl_format = %u%\n", 3, "pop3_uidl_format: '%u%' is not" },
	{ HEAD "pop3_uidl_format = %99u\n", 3, "pop3_uidl_format: '%99u' is not" },
	{ HEAD "smtp_inbound_tls_min = 1.3\n", 3, "smtp_inbound_tls_min must be 1.0, 1.1 or 1.2" },
	{ HEAD "smtp_inbound_tls_min = TLSv1\n", 3, "smtp_inbound_tls_min must be" },
	{ HEAD "message_size_max = 10X\n", 3, "message_size_max must be a size" },
	{ HEAD "message_size_max = 63K\n", 3, "message_size_max must be a size" },
	{ HEAD "message_size_max = 2G\n", 3, "message_size_max must be a size" },
	{ HEAD "message_size_max = M\n", 3, "message_size_max must be a size" },
	{ HEAD "message_size_max = 99999999999999999999K\n", 3, "must be a size" },
	{ HEAD "line_length_max = 999\n", 3, "line_length_max must be a number from 1000" },
	{ HEAD "line_length_max = 1048577\n", 3, "line_length_max must be" },
	{ HEAD "smtp_timeout = 29\n", 3, "smtp_timeout must be a number from 30" },
	{ HEAD "imap_idle_timeout = 59\n", 3, "imap_idle_timeout must be a number from 60" },
	{ HEAD "imap_expunge_log_max = 0\n", 3, "imap_expunge_log_max must be a number from 1" },
	{ HEAD "imap_expunge_log_max = 10000001\n", 3, "imap_expunge_log_max must be" },
	{ HEAD "imap_expunge_log_age = 3651d\n", 3,
	  "imap_expunge_log_age must be a duration from 0s to 315360000s" },
	{ HEAD "pop3_idle_timeout = 1\n", 3, "pop3_idle_timeout must be" },
	{ HEAD "shutdown_timeout = 3601\n", 3, "shutdown_timeout must be" },
	{ HEAD "connections_max = 0\n", 3, "connections_max must be" },
	{ HEAD "connections_per_ip_max = ten\n", 3, "connections_per_ip_max must be" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\n", 3,
	  "unterminated listener block" },
	{ HEAD "tls_certificate {\ncert = a\nkey = b\n\n", 3,
	  "unterminated tls_certificate block" },
	{ HEAD "}\n", 3, "'}' without a block" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\n} x\n", 6, "unexpected text after '}'" },
	{ "hostname = a.example\ndata_dir = /x\n\nhostname = c.example\n", 4,
	  "key 'hostname' given twice (first on line 1)" },
	{ HEAD "listener a {\nrole = smtp\nport = 1\nport = 2\n}\n", 6,
	  "key 'port' given twice (first on line 5)" },
	{ HEAD "listener a {\nrole = smtp\nlistener b {\n", 5,
	  "nested blocks are not allowed (the block on line 3 is not closed)" },
	{ HEAD "tls_certificate {\ntls_certificate {\n", 4, "nested blocks" },
	{ HEAD "hostname =\n", 3, "key 'hostname' given twice" },
	{ "hostname =   \n", 1, "empty value for 'hostname'" },
	{ HEAD "domains =\n", 3, "empty value for 'domains'" },
	{ HEAD "listener a {\nrole =\n}\n", 4, "empty value for 'role'" },
	{ HEAD "domains = , ,\n", 3, "domains: no domain given" },
	{ HEAD "domains = example.org, -bad.org\n", 3, "invalid domain name '-bad.org'" },
	{ HEAD "domains = bad-.org\n", 3, "invalid domain name 'bad-.org'" },
	{ HEAD "domains = a..b\n", 3, "invalid domain name 'a..b'" },
	{ HEAD "domains = example.org.\n", 3, "invalid domain name" },
	{ HEAD "domains = exa_mple.org\n", 3, "invalid domain name" },
	{ HEAD "domains = b\xc3\xa4r.example\n", 3, "invalid domain name" },
	{ "data_dir = /d\nhostname = mail example\n", 2, "invalid host name 'mail example'" },
	{ "data_dir = /d\nhostname = 192.0.2.1:25\n", 2, "invalid host name" },
	{ HEAD "run_as_user = -root\n", 3, "invalid user name '-root'" },
	{ HEAD "run_as_user = a b\n", 3, "invalid user name" },
	{ HEAD "listener {\n", 3, "a listener needs a name" },
	{ HEAD "listener a b {\n", 3, "a listener needs a name" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\n}\nlistener a {\n", 7,
	  "listener 'a' already defined on line 3" },
	{ HEAD "tls_certificate main {\n", 3, "tls_certificate takes no name" },
	{ HEAD "listener a {\nport = 25\n}\n", 3, "listener 'a' has no role" },
	{ HEAD "tls_certificate {\ncert = a\n}\n", 3, "tls_certificate block has no 'key'" },
	{ HEAD "tls_certificate {\nkey = a\n}\n", 3, "tls_certificate block has no 'cert'" },
	{ HEAD CERT "listener s {\nrole = imaps\ntls = starttls\n}\n", 9,
	  "listener 's': role imaps needs tls = implicit" },
	{ HEAD CERT "listener s {\ntls = none\nrole = pop3s\n}\n", 8,
	  "role pop3s needs tls = implicit" },
	{ HEAD CERT "listener s {\nrole = submissions\ntls = none\n}\n", 9,
	  "role submissions needs tls = implicit" },
	{ HEAD "listener a {\nrole = imap\ntls = none\n}\n\nlistener b {\nrole = imap\n"
	  "port = 1143\n}\n", 8, "listener 'b' uses TLS (tls = starttls) but there is no "
	  "tls_certificate block" },
	{ HEAD "listener s {\nrole = imaps\n}\n", 3, "uses TLS (tls = implicit)" },
	{ HEAD "listener a {\nrole = smtp\ntls = none\n}\nlistener b {\nrole = pop3\n"
	  "tls = none\nport = 25\naddress = 127.0.0.1\n}\n", 7,
	  "listener 'b' (127.0.0.1 port 25) overlaps listener 'a' (line 3, * port 25)" },
	{ HEAD "listener a {\nrole = imap\naddress = ::1\ntls = none\n}\nlistener b {\n"
	  "role = imap\ntls = none\naddress = 0:0::1\n}\n", 8, "overlaps listener 'a' (line 3," },
	{ HEAD "listener a {\nrole = imap\naddress = ::\ntls = none\n}\nlistener b {\n"
	  "role = imap\ntls = none\naddress = ::1\n}\n", 8, "overlaps listener 'a' (line 3," },
	{ HEAD "listener a {\nrole = imap\naddress = 0.0.0.0\ntls = none\n}\nlistener b {\n"
	  "role = imap\ntls = none\naddress = 10.0.0.1\n}\n", 8, "overlaps listener 'a' (line 3," },
	{ "data_dir = /srv/mail\n", 0, "hostname is not set" },
	{ "hostname = mail.example.org\n# no data_dir\n", 0, "data_dir is not set" },
	{ "", 0, "hostname is not set" },
	{ HEAD "log_level = info\x01\n", 3, "control character 0x01 in line" },
	{ HEAD "log_level = info\x1b[0m\n", 3, "control character 0x1b" },
	{ HEAD "trusted_networks = 10.0.0.1/8\n", 3,
	  "trusted_networks: '10.0.0.1/8' is not an address or a network" },
	{ HEAD "trusted_networks = 10.0.0.0/33\n", 3, "'10.0.0.0/33' is not" },
	{ HEAD "trusted_networks = 2001:db8::/129\n", 3, "'2001:db8::/129' is not" },
	{ HEAD "trusted_networks = mail.example.org\n", 3, "'mail.example.org' is not" },
	{ HEAD "trusted_networks = 192.0.2.0/\n", 3, "'192.0.2.0/' is not" },
	{ HEAD "trusted_networks = , ,\n", 3, "trusted_networks: no network given" },
	{ HEAD "smtp_pregreet_delay = 61s\n", 3,
	  "smtp_pregreet_delay must be a duration from 0ms to 60000ms" },
	{ HEAD "smtp_pregreet_delay = 1 s\n", 3, "smtp_pregreet_delay must be a duration" },
	{ HEAD "smtp_pregreet_delay = -1\n", 3, "smtp_pregreet_delay must be a duration" },
	{ HEAD "smtp_pregreet_delay = 5y\n", 3, "smtp_pregreet_delay must be a duration" },
	{ HEAD "smtp_pregreet_ttl = 1500ms\n", 3,
	  "smtp_pregreet_ttl must be a duration from 1s to 2592000s" },
	{ HEAD "smtp_pregreet_ttl = 31d\n", 3, "smtp_pregreet_ttl must be a duration" },
	{ HEAD "smtp_pregreet_ttl = 0\n", 3, "smtp_pregreet_ttl must be a duration" },
	{ HEAD "smtp_pregreet_cache_size = 0\n", 3, "smtp_pregreet_cache_size must be a number" },
	{ HEAD "auth_cache_ttl = 2d\n", 3, "auth_cache_ttl must be a duration from 0s to 86400s" },
	{ HEAD "auth_cache_size = 0\n", 3, "auth_cache_size must be a number" },
	{ HEAD "outbound_delivery = maybe\n", 3, "outbound_delivery must be yes or no" },
	{ HEAD "outbound_port = 0\n", 3, "outbound_port must be a port from 1 to 65535" },
	{ HEAD "dns_resolver = 127.0.0.1\n", 3, "dns_resolver must be ADDRESS:PORT" },
	{ HEAD "dns_resolver = ns.example.org:53\n", 3, "dns_resolver must be ADDRESS:PORT" },
	{ HEAD "dns_resolver = [::1]\n", 3, "or [IPv6]:PORT" },
	{ HEAD "dns_resolver = [ns.example.org]:53\n", 3, "or [IPv6]:PORT" },
	{ HEAD "outbound_destination_concurrency = 0\n", 3,
	  "outbound_destination_concurrency must be a number" },
	{ HEAD "relay_host = smtp.example.net\n", 3, "relay_host must be HOST:PORT" },
	{ HEAD "relay_host = smtp example.net:587\n", 3, "relay_host must be HOST:PORT" },
	{ HEAD "relay_tls = none\n", 3, "relay_tls must be starttls or implicit" },
	{ HEAD "queue_retry = 5m 0s\n", 3, "queue_retry: '0s' is not a duration" },
	{ HEAD "queue_retry = 5m 2d\n", 3, "queue_retry: '2d' is not a duration" },
	{ HEAD "queue_lifetime = 0s\n", 3, "queue_lifetime must be a duration from 1s to 30d" },
	{ HEAD "queue_lifetime = 31d\n", 3, "queue_lifetime must be a duration from 1s to 30d" },
	{ HEAD "relay_host = a.example:25\nrelay_user = me\n", 0,
	  "relay_user and relay_password_file go together" },
	{ HEAD "relay_user = me\nrelay_password_file = pw\n", 0,
	  "relay_user is set but relay_host is not" },
	{ HEAD "queue_retry = 1m\nqueue_retry = 2m\n", 4, "key 'queue_retry' given twice" },
};

START_TEST(test_config_outbound)
{
	ck_assert_int_eq(parse("hostname = h.example\ndata_dir = /d\n"), 0);
	ck_assert(cfg->outbound_delivery);
	ck_assert_uint_eq(cfg->outbound_port, 25);
	ck_assert(!cfg->has_dns_resolver);
	ck_assert_str_eq(cfg->relay_host, "");
	ck_assert_uint_eq(cfg->n_queue_retry, 5);
	ck_assert_uint_eq(cfg->queue_retry[0], 300);
	ck_assert_uint_eq(cfg->queue_retry[4], 3600);
	ck_assert_uint_eq(cfg->queue_lifetime, 5 * 86400);
	ck_assert_int_eq(parse("hostname = h.example\ndata_dir = /d\noutbound_delivery = no\n"
			       "outbound_port = 2525\ndns_resolver = 127.0.0.1:5353\n"
			       "relay_host = [2001:db8::1]:465\nrelay_tls = implicit\n"
			       "relay_user = me@example.net\nrelay_password_file = pw\n"
			       "queue_retry = 1s, 2s 1h\nqueue_lifetime = 1m\n"), 0);
	ck_assert(!cfg->outbound_delivery);
	ck_assert_uint_eq(cfg->outbound_port, 2525);
	ck_assert(cfg->has_dns_resolver);
	ck_assert_str_eq(cfg->dns_resolver_addr, "127.0.0.1");
	ck_assert_uint_eq(cfg->dns_resolver_port, 5353);
	ck_assert_str_eq(cfg->relay_host, "2001:db8::1");
	ck_assert_uint_eq(cfg->relay_port, 465);
	ck_assert_int_eq(cfg->relay_tls, TLS_MODE_IMPLICIT);
	ck_assert_str_eq(cfg->relay_user, "me@example.net");
	ck_assert_str_eq(cfg->relay_password_file, "/etc/postern/pw");
	ck_assert_uint_eq(cfg->n_queue_retry, 3);
	ck_assert_uint_eq(cfg->queue_retry[2], 3600);
	ck_assert_uint_eq(cfg->queue_lifetime, 60);
	ck_assert_uint_eq(cfg->outbound_dest_concurrency, 5);
	ck_assert_int_eq(parse("hostname = h.example\ndata_dir = /d\n"
			       "dns_resolver = [::1]:5353\noutbound_destination_concurrency = 20\n"), 0);
	ck_assert(cfg->has_dns_resolver);
	ck_assert_str_eq(cfg->dns_resolver_addr, "::1");
	ck_assert_uint_eq(cfg->dns_resolver_port, 5353);
	ck_assert_uint_eq(cfg->outbound_dest_concurrency, 20);
}
END_TEST

START_TEST(test_config_errors)
{
	char prefix[64];
	int rc;

	err[0] = 'x';
	err[1] = '\0';
	rc = parse(errors[_i].text);
	if (errors[_i].line > 0)
		snprintf(prefix, sizeof(prefix), PATH ":%u: ", errors[_i].line);
	else
		snprintf(prefix, sizeof(prefix), PATH ": ");
	ck_assert_msg(rc == -1, "case %d parsed: %s", _i, errors[_i].text);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "case %d: want prefix '%s', got '%s'", _i, prefix, err);
	ck_assert_msg(strstr(err + strlen(prefix), errors[_i].msg) != NULL,
		      "case %d: want '%s' in '%s'", _i, errors[_i].msg, err);
}
END_TEST

static bool trusted(const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, addr, &in->sin_addr), 1);
	}
	return config_addr_is_trusted(cfg, (struct sockaddr *)&ss);
}

START_TEST(test_config_trusted_networks)
{
	/* The default: loopback only. */
	ck_assert_int_eq(parse(HEAD), 0);
	ck_assert(trusted("127.0.0.1"));
	ck_assert(trusted("127.255.0.9"));
	ck_assert(trusted("::1"));
	ck_assert(trusted("::ffff:127.0.0.1")); /* IPv4-mapped on a dual-stack socket */
	ck_assert(!trusted("128.0.0.1"));
	ck_assert(!trusted("::2"));
	ck_assert(!trusted("192.0.2.1"));
	ck_assert_uint_eq(cfg->smtp_pregreet_delay_ms, 1000);
	ck_assert_uint_eq(cfg->smtp_pregreet_ttl, 86400);
	ck_assert_uint_eq(cfg->smtp_pregreet_cache_max, 100000);
	ck_assert_uint_eq(cfg->auth_cache_ttl, 3600);
	ck_assert_uint_eq(cfg->auth_cache_max, 10000);
	ck_assert_int_eq(parse(HEAD "auth_cache_ttl = 0\nauth_cache_size = 5\n"), 0);
	ck_assert_uint_eq(cfg->auth_cache_ttl, 0);
	ck_assert_uint_eq(cfg->auth_cache_max, 5);
	ck_assert_int_eq(parse(HEAD), 0);

	ck_assert_int_eq(parse(HEAD "trusted_networks = 192.0.2.0/25, 2001:db8:1::/48 198.51.100.7\n"
			       "smtp_pregreet_delay = 250ms\nsmtp_pregreet_ttl = 2h\n"
			       "smtp_pregreet_cache_size = 10\n"), 0);
	ck_assert_uint_eq(cfg->n_trusted_networks, 3);
	ck_assert(trusted("192.0.2.0"));
	ck_assert(trusted("192.0.2.127"));
	ck_assert(!trusted("192.0.2.128"));
	ck_assert(trusted("198.51.100.7"));
	ck_assert(!trusted("198.51.100.6"));
	ck_assert(trusted("2001:db8:1:ffff::5"));
	ck_assert(!trusted("2001:db8:2::5"));
	ck_assert(!trusted("127.0.0.1")); /* replaced, not added to */
	ck_assert(trusted("::ffff:192.0.2.5"));
	ck_assert_uint_eq(cfg->smtp_pregreet_delay_ms, 250);
	ck_assert_uint_eq(cfg->smtp_pregreet_ttl, 7200);
	ck_assert_uint_eq(cfg->smtp_pregreet_cache_max, 10);

	ck_assert_int_eq(parse(HEAD "trusted_networks = none\nsmtp_pregreet_delay = 0\n"), 0);
	ck_assert(!trusted("127.0.0.1"));
	ck_assert(!trusted("::1"));
	ck_assert_uint_eq(cfg->smtp_pregreet_delay_ms, 0);
	ck_assert_int_eq(parse(HEAD "trusted_networks = 0.0.0.0/0 ::/0\nsmtp_pregreet_delay = 2\n"),
			 0);
	ck_assert(trusted("203.0.113.9"));
	ck_assert(trusted("2001:db8::1"));
	ck_assert_uint_eq(cfg->smtp_pregreet_delay_ms, 2000);
}
END_TEST

START_TEST(test_config_nul_byte)
{
	static const char text[] = HEAD "log_level = info\0junk\nx = y\n";

	ck_assert_int_eq(config_parse(PATH, text, sizeof(text) - 1, cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, PATH ":3: NUL byte in line");
}
END_TEST

START_TEST(test_config_line_length)
{
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_appendf(&b, HEAD "#"), 0);
	for (int i = 1; i < CONFIG_LINE_MAX - 1; i++)
		ck_assert_int_eq(buf_putc(&b, 'x'), 0);
	/* CONFIG_LINE_MAX - 1 bytes: the longest line allowed (CR not counted). */
	ck_assert_int_eq(buf_appendf(&b, "\r\n"), 0);
	ck_assert_int_eq(config_parse(PATH, b.data, b.len, cfg, err, sizeof(err)), 0);
	b.len -= 2;
	ck_assert_int_eq(buf_appendf(&b, "x\nfoo = bar\n"), 0);
	ck_assert_int_eq(config_parse(PATH, b.data, b.len, cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, PATH ":3: line is longer than 4095 bytes");
	buf_free(&b);
}
END_TEST

/* Builds HEAD + count blocks made by fmt (with %d the index), parses it and
 * checks the error names the first block over the limit. */
static void check_too_many(const char *fmt, unsigned lines_per_block, int count,
			   const char *msg)
{
	struct buf b;
	char want[128];

	buf_init(&b, 0);
	ck_assert_int_eq(buf_appendf(&b, HEAD CERT), 0);
	for (int i = 0; i < count; i++)
		ck_assert_int_eq(buf_appendf(&b, fmt, i, i), 0);
	ck_assert_int_eq(config_parse(PATH, b.data, b.len, cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), PATH ":%u: %s", 7 + (count - 1) * lines_per_block, msg);
	ck_assert_str_eq(err, want);
	/* One fewer fits. */
	buf_reset(&b);
	ck_assert_int_eq(buf_appendf(&b, HEAD CERT), 0);
	for (int i = 0; i < count - 1; i++)
		ck_assert_int_eq(buf_appendf(&b, fmt, i, i), 0);
	ck_assert_msg(config_parse(PATH, b.data, b.len, cfg, err, sizeof(err)) == 0, "%s", err);
	buf_free(&b);
}

START_TEST(test_config_too_many)
{
	struct buf b;
	char want[128];

	check_too_many("listener l%d {\nrole = smtp\nport = 10%d\n}\n", 4,
		       CONFIG_LISTENERS_MAX + 1, "too many listeners (at most 32)");
	ck_assert_uint_eq(cfg->n_listeners, CONFIG_LISTENERS_MAX);
	check_too_many("tls_certificate {\ncert = c%d\nkey = k%d\n}\n", 4,
		       CONFIG_CERTS_MAX, "too many tls_certificate blocks (at most 16)");
	ck_assert_uint_eq(cfg->n_certs, CONFIG_CERTS_MAX);

	buf_init(&b, 0);
	ck_assert_int_eq(buf_appendf(&b, HEAD "domains ="), 0);
	for (int i = 0; i <= CONFIG_DOMAINS_MAX; i++)
		ck_assert_int_eq(buf_appendf(&b, " d%d.example", i), 0);
	ck_assert_int_eq(config_parse(PATH, b.data, b.len, cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), PATH ":3: too many domains (at most %d)",
		 CONFIG_DOMAINS_MAX);
	ck_assert_str_eq(err, want);
	buf_free(&b);
}
END_TEST

/* A configuration base + text that must be refused, the error naming where. */
struct config_bad {
	const char *text;
	const char *where;
};

static void check_refused(const char *base, const struct config_bad *bad, size_t n)
{
	char text[1024];

	for (size_t i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "%s%s", base, bad[i].text);
		ck_assert_msg(parse(text) == -1, "accepted: %s", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].where) != NULL, "%s: %s", bad[i].text, err);
	}
}

START_TEST(test_config_http)
{
	static const char base[] = "hostname = mail.example.org\ndata_dir = /d\n";
	char text[1024];

	/* Defaults: no override, mode none, a week, mx from hostname. */
	ck_assert_msg(parse(base) == 0, "%s", err);
	ck_assert_str_eq(config_http_client_hostname(cfg), "mail.example.org");
	ck_assert_int_eq(cfg->mta_sts_mode, MTA_STS_NONE);
	ck_assert_uint_eq(cfg->mta_sts_max_age, 604800);
	ck_assert_uint_eq(cfg->n_mta_sts_mx, 0);

	snprintf(text, sizeof(text), "%sautoconfig_hostname = IMAP.example.org\n"
		 "mta_sts_mode = enforce\nmta_sts_max_age = 2d\n"
		 "mta_sts_mx = mx1.example.org, *.Backup.example.org mx3.example.org\n"
		 "listener w {\n role = http\n}\nlistener ws {\n role = http\n"
		 " port = 8443\n tls = implicit\n}\nlistener wt {\n role = http\n"
		 " address = ::1\n tls = implicit\n}\n"
		 "tls_certificate {\n cert = c\n key = k\n}\n", base);
	ck_assert_msg(parse(text) == 0, "%s", err);
	ck_assert_str_eq(config_http_client_hostname(cfg), "imap.example.org");
	ck_assert_int_eq(cfg->mta_sts_mode, MTA_STS_ENFORCE);
	ck_assert_uint_eq(cfg->mta_sts_max_age, 172800);
	ck_assert_uint_eq(cfg->n_mta_sts_mx, 3);
	ck_assert_str_eq(cfg->mta_sts_mx[1], "*.backup.example.org");
	ck_assert_int_eq(cfg->listeners[0].role, ROLE_HTTP);
	ck_assert_uint_eq(cfg->listeners[0].port, 80);
	ck_assert_int_eq(cfg->listeners[0].tls, TLS_MODE_NONE);
	ck_assert_uint_eq(cfg->listeners[1].port, 8443);
	ck_assert_uint_eq(cfg->listeners[2].port, 443);

	/* Refused values, each with its line. */
	static const struct config_bad bad[] = {
		{ "listener w {\n role = http\n tls = starttls\n}\n", PATH ":5:" },
		{ "mta_sts_mode = strict\n", PATH ":3:" },
		{ "mta_sts_max_age = 0\n", PATH ":3:" },
		{ "mta_sts_max_age = 366d\n", PATH ":3:" },
		{ "mta_sts_mx = \n", PATH ":3:" },
		{ "mta_sts_mx = a.example, b_c.example\n", PATH ":3:" },
		{ "mta_sts_mx = a b c d e f g h i\n", PATH ":3:" },
		{ "autoconfig_hostname = *.example.org\n", PATH ":3:" },
		{ "autoconfig_hostname = -x.example.org\n", PATH ":3:" },
	};
	check_refused(base, bad, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_config_roles)
{
	static const char *const names[ROLE_COUNT] = {
		"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http",
		"lmtp",
	};

	for (int r = 0; r < ROLE_COUNT; r++)
		ck_assert_str_eq(config_role_name((enum listener_role)r), names[r]);
	ck_assert_str_eq(config_role_name(ROLE_COUNT), "?");
	ck_assert(config_role_is_smtp(ROLE_SMTP));
	ck_assert(config_role_is_smtp(ROLE_SUBMISSION));
	ck_assert(config_role_is_smtp(ROLE_SUBMISSIONS));
	ck_assert(!config_role_is_smtp(ROLE_IMAP));
	ck_assert(!config_role_is_smtp(ROLE_POP3S));
	ck_assert_int_eq(config_role_default_tls(ROLE_SMTP), TLS_MODE_STARTTLS);
	ck_assert_int_eq(config_role_default_tls(ROLE_SUBMISSION), TLS_MODE_STARTTLS);
	ck_assert_int_eq(config_role_default_tls(ROLE_IMAP), TLS_MODE_STARTTLS);
	ck_assert_int_eq(config_role_default_tls(ROLE_POP3), TLS_MODE_STARTTLS);
	ck_assert_int_eq(config_role_default_tls(ROLE_SUBMISSIONS), TLS_MODE_IMPLICIT);
	ck_assert_int_eq(config_role_default_tls(ROLE_IMAPS), TLS_MODE_IMPLICIT);
	ck_assert_int_eq(config_role_default_tls(ROLE_POP3S), TLS_MODE_IMPLICIT);
	ck_assert_int_eq(config_role_default_tls(ROLE_LMTP), TLS_MODE_NONE);
	ck_assert(!config_role_is_smtp(ROLE_LMTP));
}
END_TEST

START_TEST(test_config_lmtp)
{
	static const char base[] = "hostname = mail.example.org\ndata_dir = /d\n";
	char text[1024];

	/* TCP on port 24 without TLS; a unix socket with its mode, no port. */
	snprintf(text, sizeof(text), "%slistener l {\n role = lmtp\n address = 127.0.0.1\n}\n"
		 "listener s {\n role = lmtp\n address = unix:/run/postern/lmtp\n}\n"
		 "listener t {\n role = lmtp\n address = unix:/var/spool/postfix/private/p\n"
		 " mode = 0666\n}\n", base);
	ck_assert_msg(parse(text) == 0, "%s", err);
	ck_assert_int_eq(cfg->listeners[0].role, ROLE_LMTP);
	ck_assert_uint_eq(cfg->listeners[0].port, 24);
	ck_assert_int_eq(cfg->listeners[0].tls, TLS_MODE_NONE);
	ck_assert_str_eq(cfg->listeners[0].unix_path, "");
	ck_assert_str_eq(cfg->listeners[1].unix_path, "/run/postern/lmtp");
	ck_assert_str_eq(cfg->listeners[1].address, "unix");
	ck_assert_uint_eq(cfg->listeners[1].port, 0);
	ck_assert_uint_eq(cfg->listeners[1].mode, 0660);
	ck_assert_uint_eq(cfg->listeners[2].mode, 0666);

	/* Refused, each with its line. */
	static const struct config_bad bad[] = {
		{ "listener s {\n role = smtp\n address = unix:/run/x\n}\n", PATH ":5:" },
		{ "listener s {\n role = lmtp\n address = unix:run/x\n}\n", PATH ":5:" },
		{ "listener s {\n role = lmtp\n address = unix:/run/../etc/x\n}\n", PATH ":5:" },
		{ "listener s {\n role = lmtp\n address = unix:/run/x\n port = 24\n}\n",
		  PATH ":6:" },
		{ "listener s {\n role = lmtp\n address = unix:/run/x\n mode = 660a\n}\n",
		  PATH ":6:" },
		{ "listener s {\n role = lmtp\n address = unix:/run/x\n mode = 4755\n}\n",
		  PATH ":6:" },
		{ "listener s {\n role = lmtp\n mode = 0660\n}\n", PATH ":5:" },
		{ "listener s {\n role = lmtp\n port = 25\n}\n", PATH ":5: listener 's': LMTP must "
		  "not be used on port 25" },
		{ "listener s {\n role = lmtp\n address = unix:/run/x\n}\n"
		  "listener t {\n role = lmtp\n address = unix:/run/x\n}\n", PATH ":7:" },
	};
	check_refused(base, bad, sizeof(bad) / sizeof(bad[0]));
	/* a path that does not fit sun_path */
	snprintf(text, sizeof(text), "%slistener s {\n role = lmtp\n address = unix:/%0*d\n}\n",
		 base, CONFIG_UNIX_PATH_MAX, 0);
	ck_assert_int_eq(parse(text), -1);
	ck_assert_msg(strstr(err, "absolute path of at most 107") != NULL, "%s", err);
}
END_TEST

START_TEST(test_config_local_domain)
{
	ck_assert_int_eq(parse(HEAD "domains = Example.ORG other.example\n"), 0);
	ck_assert(config_is_local_domain(cfg, "example.org"));
	ck_assert(config_is_local_domain(cfg, "EXAMPLE.org"));
	ck_assert(config_is_local_domain(cfg, "Other.Example"));
	ck_assert(!config_is_local_domain(cfg, "mail.example.org"));
	ck_assert(!config_is_local_domain(cfg, "example.or"));
	ck_assert(!config_is_local_domain(cfg, ""));
	ck_assert(!config_is_local_domain(cfg, NULL));
}
END_TEST

START_TEST(test_config_example_file)
{
	const char *path = POSTERN_SOURCE_DIR "/conf/postern.conf";

	ck_assert_msg(config_load(path, cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(cfg->hostname, "mail.example.org");
	ck_assert_str_eq(cfg->data_dir, "/var/lib/postern");
	ck_assert_uint_eq(cfg->n_domains, 2);
	ck_assert_uint_eq(cfg->n_certs, 1);
	ck_assert_uint_eq(cfg->n_listeners, 8);
	/* The example shows the defaults: it must agree with config_defaults. */
	ck_assert_uint_eq(cfg->message_size_max, 50ULL * 1024 * 1024);
	ck_assert_uint_eq(cfg->line_length_max, 8192);
	ck_assert_uint_eq(cfg->smtp_timeout, 300);
	ck_assert_uint_eq(cfg->imap_idle_timeout, 1800);
	ck_assert_uint_eq(cfg->pop3_idle_timeout, 600);
	ck_assert_uint_eq(cfg->shutdown_timeout, 30);
	ck_assert_uint_eq(cfg->connections_max, 10000);
	ck_assert_uint_eq(cfg->connections_per_ip_max, 50);
	ck_assert(!cfg->allow_plaintext_auth_on_loopback);
	for (size_t i = 0; i < cfg->n_listeners; i++)
		ck_assert_int_eq(cfg->listeners[i].tls == TLS_MODE_NONE,
				 strcmp(cfg->listeners[i].address, "127.0.0.1") == 0);
}
END_TEST

START_TEST(test_config_load_errors)
{
	char dir[] = "/tmp/check_config.XXXXXX", path[PATH_MAX];
	char *big;
	size_t n = 1024 * 1024 + 1;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	ck_assert_int_eq(config_load(path, cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err + strlen(path), ": cannot read: No such file or directory");

	snprintf(path, sizeof(path), "%s/big.conf", dir);
	big = malloc(n);
	ck_assert_ptr_nonnull(big);
	memset(big, '#', n);
	ck_assert_int_eq(write_file_atomic(path, big, n, 0600), 0);
	free(big);
	ck_assert_int_eq(config_load(path, cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ": file is larger than"));
	ck_assert_int_eq(unlink(path), 0);

	/* A load error on a real file names the file and line. */
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	ck_assert_int_eq(write_file_atomic(path, HEAD "\nbogus = 1\n", strlen(HEAD) + 11, 0600), 0);
	ck_assert_int_eq(config_load(path, cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err + strlen(path), ":4: unknown key 'bogus'");
	ck_assert_int_eq(strncmp(err, path, strlen(path)), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_config_small_error_buffer)
{
	char small[8];

	memset(small, 'z', sizeof(small));
	ck_assert_int_eq(config_parse(PATH, "x", 1, cfg, small, sizeof(small)), -1);
	ck_assert_str_eq(small, "/etc/po");
	ck_assert_int_eq(config_parse(PATH, "x", 1, cfg, NULL, 0), -1);
}
END_TEST

START_TEST(test_config_demo)
{
	char dir[] = "/tmp/check_config.XXXXXX", path[PATH_MAX], data[PATH_MAX];
	char want[PATH_MAX + 16];
	static const struct {
		enum listener_role role;
		unsigned port;
		enum tls_mode tls;
	} want_l[] = {
		{ ROLE_SMTP, 20025, TLS_MODE_STARTTLS },
		{ ROLE_SUBMISSION, 20587, TLS_MODE_STARTTLS },
		{ ROLE_SUBMISSIONS, 20465, TLS_MODE_IMPLICIT },
		{ ROLE_IMAP, 20143, TLS_MODE_STARTTLS },
		{ ROLE_IMAPS, 20993, TLS_MODE_IMPLICIT },
		{ ROLE_POP3, 20110, TLS_MODE_STARTTLS },
		{ ROLE_POP3S, 20995, TLS_MODE_IMPLICIT },
	};
	struct stat st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/postern.conf", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	ck_assert_int_eq(config_write_demo(path, data, "cert.pem", "/x/key.pem", 20000), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_msg(config_load(path, cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(cfg->hostname, "localhost");
	ck_assert_str_eq(cfg->data_dir, data);
	ck_assert_uint_eq(cfg->n_domains, 1);
	ck_assert_str_eq(cfg->domains[0], "example.test");
	ck_assert(cfg->allow_plaintext_auth_on_loopback);
	ck_assert_uint_eq(cfg->n_certs, 1);
	snprintf(want, sizeof(want), "%s/cert.pem", dir);
	ck_assert_str_eq(cfg->certs[0].cert_file, want);
	ck_assert_str_eq(cfg->certs[0].key_file, "/x/key.pem");
	ck_assert_uint_eq(cfg->n_listeners, 7);
	for (size_t i = 0; i < 7; i++) {
		ck_assert_int_eq(cfg->listeners[i].role, want_l[i].role);
		ck_assert_uint_eq(cfg->listeners[i].port, want_l[i].port);
		ck_assert_int_eq(cfg->listeners[i].tls, want_l[i].tls);
		ck_assert_str_eq(cfg->listeners[i].address, "127.0.0.1");
	}
	/* Rewriting replaces the file whole. */
	ck_assert_int_eq(config_write_demo(path, data, "c.pem", "k.pem", 0), 0);
	ck_assert_msg(config_load(path, cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg->listeners[0].port, 25);
	ck_assert_uint_eq(cfg->listeners[6].port, 995);

	/* Values that would not survive the round trip, ports past 65535. */
	errno = 0;
	ck_assert_int_eq(config_write_demo(path, "/a\nhostname = x", "c", "k", 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(config_write_demo(path, " /a", "c", "k", 0), -1);
	ck_assert_int_eq(config_write_demo(path, "/a", "", "k", 0), -1);
	ck_assert_int_eq(config_write_demo(path, "/a", "c", "k", 65535 - 994), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(config_write_demo(path, "/a", "c", "k", 65535 - 995), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Every prefix of a valid file, and the file with each byte replaced by
 * one of the syntax's special characters, must parse or fail cleanly with
 * a message (ASan and UBSan watch the rest). */
START_TEST(test_config_truncated_and_mangled)
{
	static const char specials[] = { '\0', '\n', '{', '}', '=', '#', ' ', 'x', '\r' };
	size_t len = strlen(good);
	char *copy = malloc(len);

	ck_assert_ptr_nonnull(copy);
	for (size_t n = 0; n <= len; n++) {
		memcpy(copy, good, n); /* exact-size heap copy: overreads trip ASan */
		int rc = config_parse(PATH, copy, n, cfg, err, sizeof(err));
		ck_assert(rc == 0 || rc == -1);
		ck_assert_msg(rc == 0 || strncmp(err, PATH ":", strlen(PATH) + 1) == 0,
			      "prefix %zu: '%s'", n, err);
	}
	for (size_t i = 0; i < len; i++) {
		for (size_t s = 0; s < sizeof(specials); s++) {
			memcpy(copy, good, len);
			copy[i] = specials[s];
			int rc = config_parse(PATH, copy, len, cfg, err, sizeof(err));
			ck_assert(rc == 0 || rc == -1);
			ck_assert(rc == 0 || err[0] != '\0');
		}
	}
	free(copy);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_good_file);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_outbound);
	tcase_add_test(tc, test_config_values_accepted);
	tcase_add_test(tc, test_config_relative_paths);
	tcase_add_loop_test(tc, test_config_errors, 0, (int)(sizeof(errors) / sizeof(errors[0])));
	tcase_add_test(tc, test_config_nul_byte);
	tcase_add_test(tc, test_config_trusted_networks);
	tcase_add_test(tc, test_config_line_length);
	tcase_add_test(tc, test_config_too_many);
	tcase_add_test(tc, test_config_roles);
	tcase_add_test(tc, test_config_http);
	tcase_add_test(tc, test_config_lmtp);
	tcase_add_test(tc, test_config_local_domain);
	tcase_add_test(tc, test_config_example_file);
	tcase_add_test(tc, test_config_load_errors);
	tcase_add_test(tc, test_config_small_error_buffer);
	tcase_add_test(tc, test_config_demo);
	tcase_add_test(tc, test_config_truncated_and_mangled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
