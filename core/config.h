/* The configuration file: postern.conf.
 *
 * Syntax (documented for users in conf/postern.conf):
 *   # comment                       blank lines ignored
 *   key = value                     top-level setting
 *   listener NAME {                 one block per listening socket
 *       role = smtp|submission|submissions|imap|imaps|pop3|pop3s|http|lmtp|
 *              managesieve
 *       address = 127.0.0.1         IPv4 or IPv6 literal, or * (all, v4+v6),
 *                                   or unix:/abs/path (role lmtp only)
 *       port = 25
 *       mode = 0660                 permissions of a unix socket (octal)
 *       tls = none|starttls|implicit   (default from the role)
 *   }
 *   tls_certificate {               one block per certificate (SNI choice)
 *       cert = /path/fullchain.pem
 *       key = /path/privkey.pem
 *   }
 * Values are taken literally after trimming; no quoting.  Relative paths are
 * resolved against the configuration file's directory.  Errors are reported
 * as "FILE:LINE: message" and the program exits 78 (EX_CONFIG).
 */
#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_LISTENERS_MAX 32
#define CONFIG_CERTS_MAX 16
#define CONFIG_DOMAINS_MAX 64
#define CONFIG_DOMAIN_LEN 254          /* RFC 1035 §2.3.4, plus NUL */
/* A configuration is a few KB; refuse to slurp anything absurd. */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096
#define CONFIG_ERROR_MAX (PATH_MAX + 256)
#define CONFIG_NETWORKS_MAX 64         /* trusted_networks entries */
#define CONFIG_RETRY_MAX 16            /* queue_retry steps */
#define CONFIG_MTA_STS_MX_MAX 8        /* mta_sts_mx entries */
/* outbound_destination_concurrency: connections at once to one
 * destination.  Postfix starts each destination at 5
 * (initial_destination_concurrency) and grows towards 20
 * (default_destination_concurrency_limit) only while the far side keeps
 * accepting; we have no such feedback, so we stay at Postfix's start.
 * Connections are reused (CLIENT_MESSAGES_MAX per connection), so five
 * busy sessions carry far more mail than a small organisation sends. */
#define CONFIG_DEST_CONCURRENCY_DEFAULT 5
#define CONFIG_DEST_CONCURRENCY_MAX 100

enum listener_role {
	ROLE_SMTP,        /* 25: inbound MX */
	ROLE_SUBMISSION,  /* 587: STARTTLS + AUTH */
	ROLE_SUBMISSIONS, /* 465: implicit TLS + AUTH */
	ROLE_IMAP,        /* 143 */
	ROLE_IMAPS,       /* 993 */
	ROLE_POP3,        /* 110 */
	ROLE_POP3S,       /* 995 */
	ROLE_HTTP,        /* 80 (443 with tls = implicit): autoconfig, MTA-STS, metrics */
	ROLE_LMTP,        /* 24 (RFC 2033) or a unix socket: mail from the MTA in front */
	ROLE_MANAGESIEVE, /* 4190: Sieve scripts (RFC 5804) */
	ROLE_COUNT
};

enum tls_mode {
	TLS_MODE_NONE,
	TLS_MODE_STARTTLS,
	TLS_MODE_IMPLICIT,
};

/* RFC 8461 §3.2: the policy's "mode" field. */
enum mta_sts_mode {
	MTA_STS_NONE,
	MTA_STS_TESTING,
	MTA_STS_ENFORCE,
};

enum bare_lf_policy {
	BARE_LF_REJECT,
	BARE_LF_NORMALISE,
};

#define CONFIG_UIDL_FORMAT_LEN 65
#define CONFIG_SHARD_NAME_LEN 32       /* auth.h AUTH_SHARD_NAME_MAX + 1 */

/* sockaddr_un's sun_path holds 108 octets with the NUL (unix(7)). */
#define CONFIG_UNIX_PATH_MAX 108
#define CONFIG_UNIX_MODE_DEFAULT 0660

struct config_listener {
	char name[64];
	enum listener_role role;
	char address[64]; /* "*" means every address, IPv4 and IPv6; "unix"
			   * for a unix socket (unix_path) */
	char unix_path[CONFIG_UNIX_PATH_MAX]; /* "" for TCP listeners */
	unsigned mode;    /* unix socket permissions */
	uint16_t port;    /* 0 for a unix socket */
	enum tls_mode tls;
	unsigned line; /* where it was defined, for messages */
};

/* One CIDR block of trusted_networks; IPv4 blocks have family AF_INET and
 * use addr[0..3]. */
struct config_network {
	int family;              /* AF_INET or AF_INET6 */
	unsigned prefix;         /* 0..32 or 0..128 */
	unsigned char addr[16];  /* network byte order, host bits zero */
};

struct config_cert {
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	unsigned line;
};

struct config {
	char path[PATH_MAX]; /* the file it came from */
	char hostname[CONFIG_DOMAIN_LEN];
	char data_dir[PATH_MAX];
	char domains[CONFIG_DOMAINS_MAX][CONFIG_DOMAIN_LEN]; /* lower case */
	size_t n_domains;
	char run_as_user[64]; /* empty: stay who we are */
	enum log_level log_level;

	struct config_listener listeners[CONFIG_LISTENERS_MAX];
	size_t n_listeners;
	struct config_cert certs[CONFIG_CERTS_MAX];
	size_t n_certs;

	/* limits */
	uint64_t message_size_max;      /* message_size_max, bytes */
	unsigned connections_max;       /* connections_max */
	unsigned connections_per_ip_max;/* connections_per_ip_max */
	unsigned line_length_max;       /* line_length_max, command lines */
	unsigned smtp_timeout;          /* seconds idle, SMTP (RFC 5321 §4.5.3.2: 300) */
	unsigned imap_idle_timeout;     /* seconds, IMAP (RFC 9051 §5.4: >= 1800) */
	unsigned imap_expunge_log_max;  /* expunges kept per mailbox for QRESYNC */
	unsigned imap_expunge_log_age;  /* seconds; younger ones are kept too, 0: off */
	unsigned pop3_idle_timeout;     /* seconds, POP3 (RFC 1939 §3: >= 600) */
	unsigned shutdown_timeout;      /* seconds to let transactions finish */

	/* Clients in these networks skip the SMTP pregreet delay and the
	 * per-address connection limit (Postfix's mynetworks). */
	struct config_network trusted_networks[CONFIG_NETWORKS_MAX];
	size_t n_trusted_networks;
	unsigned smtp_pregreet_delay_ms;  /* smtp_pregreet_delay; 0: no test */
	unsigned smtp_pregreet_ttl;       /* smtp_pregreet_ttl, seconds */
	unsigned smtp_pregreet_cache_max; /* smtp_pregreet_cache_size, entries */

	/* Verified passwords remembered (auth/auth_cache.c); read at start. */
	unsigned auth_cache_ttl;          /* auth_cache_ttl, seconds; 0: off */
	unsigned auth_cache_max;          /* auth_cache_size, entries */

	bool sandbox;                     /* sandbox = yes|no (Landlock) */
	bool allow_plaintext_auth_on_loopback;
	enum bare_lf_policy smtp_bare_lf;     /* smtp_bare_lf = reject|normalise */
	bool quota_error_permanent;           /* quota_error = temporary|permanent */

	/* Outbound mail (config_outbound.c parses these). */
	bool outbound_delivery;           /* outbound_delivery = yes|no */
	unsigned outbound_port;           /* outbound_port: port of MX hosts */
	unsigned outbound_dest_concurrency; /* outbound_destination_concurrency */
	bool has_dns_resolver;            /* dns_resolver = ADDRESS:PORT */
	char dns_resolver_addr[64];       /* numeric IPv4 or IPv6 */
	unsigned dns_resolver_port;
	char relay_host[CONFIG_DOMAIN_LEN]; /* relay_host = HOST:PORT; "": MX */
	unsigned relay_port;
	enum tls_mode relay_tls;          /* relay_tls = starttls|implicit */
	char relay_user[256];             /* relay_user; "": no AUTH */
	char relay_password_file[PATH_MAX];
	unsigned queue_retry[CONFIG_RETRY_MAX]; /* seconds; the last repeats */
	size_t n_queue_retry;
	unsigned queue_lifetime;          /* queue_lifetime, seconds */
	unsigned queue_delay_warning;     /* queue_delay_warning, seconds; 0 off */
	/* shard_name: this instance's name in shards_file; port-25 mail for a
	 * mailbox of another shard is relayed there by LMTP; "": off */
	char shard_name[CONFIG_SHARD_NAME_LEN];
	/* pop3_uidl_format: Dovecot's, for the POP3 UIDLs of messages imported
	 * from a Dovecot Maildir (%u, %v, %f, %%, with [0][width][X]; X and x
	 * both give lower-case hex, as Dovecot's X does) */
	char pop3_uidl_format[CONFIG_UIDL_FORMAT_LEN];
	/* smtp_inbound_tls_min = 1.0|1.1|1.2: lowest TLS version on role smtp
	 * (port 25); every other role needs TLS 1.2.  10, 11 or 12. */
	unsigned smtp_inbound_tls_min;

	/* The HTTP endpoint (config_http.c parses these). */
	char autoconfig_hostname[CONFIG_DOMAIN_LEN]; /* "": hostname */
	char shards_file[PATH_MAX];        /* who lives where (auth_shards.c); "": none */
	enum mta_sts_mode mta_sts_mode;   /* mta_sts_mode = none|testing|enforce */
	unsigned mta_sts_max_age;         /* mta_sts_max_age, seconds */
	char mta_sts_mx[CONFIG_MTA_STS_MX_MAX][CONFIG_DOMAIN_LEN]; /* "": hostname */
	size_t n_mta_sts_mx;
};

/* config_outbound.c: the outbound keys.  set() returns 0, or -1 with msg
 * (without FILE:LINE); check() the rules between keys. */
void config_outbound_defaults(struct config *cfg);
int config_outbound_set(struct config *cfg, const char *key, const char *value,
			char *msg, size_t msglen);
int config_outbound_check(const struct config *cfg, char *msg, size_t msglen);

/* config_http.c: the HTTP endpoint's keys, as config_outbound_*. */
void config_http_defaults(struct config *cfg);
int config_http_set(struct config *cfg, const char *key, const char *value,
		    char *msg, size_t msglen);
/* The name clients are told to connect to: autoconfig_hostname or
 * hostname. */
const char *config_http_client_hostname(const struct config *cfg);
/* The MTA-STS policy file (RFC 8461 §3.2) of the mta_sts_* keys. */
struct buf;
int config_mta_sts_policy(const struct config *cfg, struct buf *out);
/* The MTA-STS TXT record's id for that policy (RFC 8461 §3.1): 20 hex
 * digits of its SHA-256, so it changes with the policy.  0 or -1. */
int config_mta_sts_id(const struct config *cfg, char id[21]);
/* For `postern dns DOMAIN`: the autoconfig, Autodiscover and MTA-STS
 * records, as zone lines; nothing without a listener of role http.  0, or
 * -1 when out's cap is reached. */
int config_http_dns_records(const struct config *cfg, const char *domain, struct buf *out);

/* A duration: a number with an optional unit ms, s, m, h or d (seconds
 * without one), as milliseconds; 0 or -1. */
int config_parse_duration_ms(const char *value, uint64_t *ms_r);

/* Defaults for every key (a config with no listeners). */
void config_defaults(struct config *cfg);

/* Load and validate path into cfg.  0 on success; -1 with err set to
 * "FILE:LINE: message" (or "FILE: message" for whole-file problems). */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen);

/* Parse from memory (tests); path is only used in messages and to resolve
 * relative paths. */
int config_parse(const char *path, const char *text, size_t len,
		 struct config *cfg, char *err, size_t errlen);

const char *config_role_name(enum listener_role role);
const char *config_tls_name(enum tls_mode mode);
bool config_role_is_smtp(enum listener_role role);
enum tls_mode config_role_default_tls(enum listener_role role);
/* true when domain (any case) is one of cfg->domains. */
bool config_is_local_domain(const struct config *cfg, const char *domain);

/* true when the address (struct sockaddr_in or _in6; an IPv4-mapped IPv6
 * address counts as IPv4) is inside one of cfg->trusted_networks. */
struct sockaddr;
bool config_addr_is_trusted(const struct config *cfg, const struct sockaddr *sa);

/* Write a configuration with the given values and the eight demo listeners
 * on 127.0.0.1, ports base+25 ... base+4190.  Used by `postern demo`. */
#define CONFIG_DEMO_OFFSET_MAX 4190 /* the highest demo port: base + 4190 */
/* A second `postern demo --port-base N` on an existing configuration: set
 * the port of each listener whose role the demo knows to N + the role's
 * offset, changing nothing else in the file (comments, edits stay).
 * *changed_r: listeners whose port changed (0: the file is untouched).
 * 0, or -1 with errno (EINVAL: the file does not load). */
int config_demo_set_ports(const char *path, unsigned port_base, unsigned *changed_r);
int config_write_demo(const char *path, const char *data_dir,
		      const char *cert_file, const char *key_file,
		      unsigned port_base);

#endif
