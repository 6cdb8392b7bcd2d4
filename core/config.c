/* The configuration file parser: see config.h for the syntax and
 * conf/postern.conf for every key, its meaning and its default.
 *
 * The parser works on the whole file in memory, one line at a time, and
 * stops at the first error with "FILE:LINE: message" (or "FILE: message" for
 * a problem of the whole file, such as a missing required key).  Checks that
 * need the whole file (TLS listeners need a certificate, two listeners on one
 * socket) run after the last line.  Memory: none allocated but the file
 * buffer in config_load.  `postern demo`'s file is written by config_demo.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Longest value quoted back in an error message. */
#define CONFIG_QUOTE_MAX 64
/* RFC 1035 §2.3.4: labels are at most 63 octets. */
#define CONFIG_LABEL_MAX 63
/* RFC 5321 §4.5.3.1.7: a server must accept messages of at least 64K
 * octets; the ceiling keeps sizes within what a 32-bit offset can address
 * with room to spare. */
#define CONFIG_MESSAGE_SIZE_MIN (64ULL * 1024)
#define CONFIG_MESSAGE_SIZE_MAX (1024ULL * 1024 * 1024)
/* RFC 5321 §4.5.3.1.4: a command line is at most 1000 octets with CRLF, so
 * a smaller limit would refuse legal SMTP; RFC 7162 §4 asks IMAP servers to
 * accept 8192.  The ceiling bounds per-connection buffers. */
#define CONFIG_LINE_LENGTH_MIN 1000
#define CONFIG_LINE_LENGTH_MAX (1024 * 1024)
#define CONFIG_CONNECTIONS_MAX 1000000
/* RFC 5321 §4.5.3.2.7 recommends 5 minutes; below 30 s slow but honest
 * clients get cut off. */
#define CONFIG_SMTP_TIMEOUT_MIN 30
/* RFC 9051 §5.4 asks for at least 30 minutes and RFC 1939 §3 for 10; we
 * allow shorter for busy sites but never below a minute. */
#define CONFIG_IDLE_TIMEOUT_MIN 60
#define CONFIG_TIMEOUT_MAX 86400
#define CONFIG_SHUTDOWN_TIMEOUT_MAX 3600
/* Postfix's postscreen_greet_wait is 6 s by default; more than a minute
 * would make honest senders time out (RFC 5321 §4.5.3.2.1: 5 minutes for
 * the greeting, but many clients give up sooner). */
#define CONFIG_PREGREET_DELAY_MAX_MS (60 * 1000)
/* postscreen_greet_ttl is 1 day; a month is the useful ceiling. */
#define CONFIG_PREGREET_TTL_MAX (30 * 86400)
/* An entry is a 64-byte allocation plus half a bucket pointer (~70
 * bytes): 10 million is ~700 MB, the most that makes sense anywhere. */
#define CONFIG_PREGREET_CACHE_MAX 10000000
/* RFC 7162 §3.2.5.2 lets the expunge log be forgotten; 12 B an entry */
#define CONFIG_EXPUNGE_LOG_MAX 10000000
#define CONFIG_EXPUNGE_LOG_AGE_MAX (3650u * 86400) /* ten years */
/* A verified password is trusted again for at most a day (Dovecot's
 * auth_cache_ttl defaults to an hour), in at most a million entries. */
#define CONFIG_AUTH_CACHE_TTL_MAX 86400
#define CONFIG_AUTH_CACHE_SIZE_MAX 1000000

/* Top-level keys.  The index is also the slot in parser.top_seen. */
enum config_key_type {
	KEY_HOSTNAME, KEY_PATH, KEY_DOMAINS, KEY_USER, KEY_LOG_LEVEL,
	KEY_SIZE, KEY_UINT, KEY_BOOL, KEY_BARE_LF, KEY_QUOTA_ERROR,
	KEY_NETWORKS, KEY_UIDL_FORMAT, KEY_TLS_MIN,
	KEY_DURATION_MS, /* unsigned field, milliseconds; min/max in ms */
	KEY_DURATION_S,  /* unsigned field, seconds; min/max in seconds */
	KEY_OUTBOUND,    /* config_outbound_set() */
	KEY_HTTP,        /* config_http_set() */
	KEY_RELAY_PASSWORD_FILE,
};

struct config_key {
	const char *name;
	enum config_key_type type;
	size_t offset;     /* KEY_UINT, KEY_BOOL: field in struct config */
	uint64_t min, max; /* KEY_UINT, KEY_SIZE */
};

#define FIELD(f) offsetof(struct config, f)

static const struct config_key config_keys[] = {
	{ "hostname", KEY_HOSTNAME, 0, 0, 0 },
	{ "data_dir", KEY_PATH, 0, 0, 0 },
	{ "domains", KEY_DOMAINS, 0, 0, 0 },
	{ "run_as_user", KEY_USER, 0, 0, 0 },
	{ "log_level", KEY_LOG_LEVEL, 0, 0, 0 },
	{ "message_size_max", KEY_SIZE, 0, CONFIG_MESSAGE_SIZE_MIN, CONFIG_MESSAGE_SIZE_MAX },
	{ "connections_max", KEY_UINT, FIELD(connections_max), 1, CONFIG_CONNECTIONS_MAX },
	{ "connections_per_ip_max", KEY_UINT, FIELD(connections_per_ip_max), 1,
	  CONFIG_CONNECTIONS_MAX },
	{ "line_length_max", KEY_UINT, FIELD(line_length_max), CONFIG_LINE_LENGTH_MIN,
	  CONFIG_LINE_LENGTH_MAX },
	{ "smtp_timeout", KEY_UINT, FIELD(smtp_timeout), CONFIG_SMTP_TIMEOUT_MIN,
	  CONFIG_TIMEOUT_MAX },
	{ "imap_idle_timeout", KEY_UINT, FIELD(imap_idle_timeout), CONFIG_IDLE_TIMEOUT_MIN,
	  CONFIG_TIMEOUT_MAX },
	{ "imap_expunge_log_max", KEY_UINT, FIELD(imap_expunge_log_max), 1,
	  CONFIG_EXPUNGE_LOG_MAX },
	{ "imap_expunge_log_age", KEY_DURATION_S, FIELD(imap_expunge_log_age), 0,
	  CONFIG_EXPUNGE_LOG_AGE_MAX },
	{ "pop3_idle_timeout", KEY_UINT, FIELD(pop3_idle_timeout), CONFIG_IDLE_TIMEOUT_MIN,
	  CONFIG_TIMEOUT_MAX },
	{ "shutdown_timeout", KEY_UINT, FIELD(shutdown_timeout), 0, CONFIG_SHUTDOWN_TIMEOUT_MAX },
	{ "sandbox", KEY_BOOL, FIELD(sandbox), 0, 0 },
	{ "allow_plaintext_auth_on_loopback", KEY_BOOL,
	  FIELD(allow_plaintext_auth_on_loopback), 0, 0 },
	{ "smtp_bare_lf", KEY_BARE_LF, 0, 0, 0 },
	{ "quota_error", KEY_QUOTA_ERROR, 0, 0, 0 },
	{ "trusted_networks", KEY_NETWORKS, 0, 0, 0 },
	{ "smtp_pregreet_delay", KEY_DURATION_MS, FIELD(smtp_pregreet_delay_ms), 0,
	  CONFIG_PREGREET_DELAY_MAX_MS },
	{ "smtp_pregreet_ttl", KEY_DURATION_S, FIELD(smtp_pregreet_ttl), 1,
	  CONFIG_PREGREET_TTL_MAX },
	{ "smtp_pregreet_cache_size", KEY_UINT, FIELD(smtp_pregreet_cache_max), 1,
	  CONFIG_PREGREET_CACHE_MAX },
	{ "auth_cache_ttl", KEY_DURATION_S, FIELD(auth_cache_ttl), 0, CONFIG_AUTH_CACHE_TTL_MAX },
	{ "auth_cache_size", KEY_UINT, FIELD(auth_cache_max), 1, CONFIG_AUTH_CACHE_SIZE_MAX },
	{ "outbound_delivery", KEY_OUTBOUND, 0, 0, 0 },
	{ "outbound_port", KEY_OUTBOUND, 0, 0, 0 },
	{ "outbound_destination_concurrency", KEY_UINT, FIELD(outbound_dest_concurrency), 1,
	  CONFIG_DEST_CONCURRENCY_MAX },
	{ "dns_resolver", KEY_OUTBOUND, 0, 0, 0 },
	{ "relay_host", KEY_OUTBOUND, 0, 0, 0 },
	{ "relay_tls", KEY_OUTBOUND, 0, 0, 0 },
	{ "relay_user", KEY_OUTBOUND, 0, 0, 0 },
	{ "relay_password_file", KEY_RELAY_PASSWORD_FILE, 0, 0, 0 },
	{ "queue_retry", KEY_OUTBOUND, 0, 0, 0 },
	{ "queue_lifetime", KEY_OUTBOUND, 0, 0, 0 },
	{ "queue_delay_warning", KEY_OUTBOUND, 0, 0, 0 },
	{ "shard_name", KEY_OUTBOUND, 0, 0, 0 },
	{ "pop3_uidl_format", KEY_UIDL_FORMAT, 0, 0, 0 },
	{ "smtp_inbound_tls_min", KEY_TLS_MIN, 0, 0, 0 },
	{ "autoconfig_hostname", KEY_HTTP, 0, 0, 0 },
	{ "mta_sts_mode", KEY_HTTP, 0, 0, 0 },
	{ "shards_file", KEY_HTTP, 0, 0, 0 },
	{ "mta_sts_max_age", KEY_HTTP, 0, 0, 0 },
	{ "mta_sts_mx", KEY_HTTP, 0, 0, 0 },
};


enum config_block { BLOCK_NONE, BLOCK_LISTENER, BLOCK_CERT };

/* Keys inside blocks; the index is the slot in parser.block_seen. */
enum { LKEY_ROLE, LKEY_ADDRESS, LKEY_PORT, LKEY_TLS, LKEY_MODE, LKEY_COUNT };
static const char *const listener_keys[LKEY_COUNT] = { "role", "address", "port", "tls",
						       "mode" };
enum { CKEY_CERT, CKEY_KEY, CKEY_COUNT };
static const char *const cert_keys[CKEY_COUNT] = { "cert", "key" };

static const char *const role_names[ROLE_COUNT] = {
	"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http", "lmtp",
	"managesieve",
};
/* The IANA ports: RFC 5321, RFC 6409, RFC 8314, RFC 9051, RFC 1939, RFC 9110,
 * RFC 2033 (lmtp 24), RFC 5804 (managesieve 4190). */
static const uint16_t role_ports[ROLE_COUNT] = { 25, 587, 465, 143, 993, 110, 995, 80, 24, 4190 };
#define CONFIG_UNIX_PREFIX "unix:"

static const char *const tls_names[] = { "none", "starttls", "implicit" };
/* Even index: false, odd: true. */
static const char *const bool_names[] = { "no", "yes", "false", "true", "off", "on" };
static const char *const bare_lf_names[] = { "reject", "normalise", "normalize" };
static const char *const quota_names[] = { "temporary", "permanent" };
static const char *const tls_min_names[] = { "1.0", "1.1", "1.2" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct parser {
	const char *path;
	char dir[PATH_MAX]; /* where relative paths start */
	struct config *cfg;
	char *err;
	size_t errlen;
	unsigned line;
	enum config_block block;
	unsigned block_line;
	unsigned top_seen[NELEM(config_keys)]; /* line of each key, 0: not yet */
	unsigned block_seen[LKEY_COUNT];  /* same, for the open block */
};

static int __attribute__((format(printf, 3, 4)))
fail(struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err == NULL || p->errlen == 0)
		return -1;
	if (line > 0)
		snprintf(p->err, p->errlen, "%s:%u: %s", p->path, line, msg);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->path, msg);
	return -1;
}

/* RFC 1035 §2.3.1 letters-digits-hyphen labels (RFC 1123 §2.1 lets them
 * start with a digit), at most 253 characters without a final dot. */
static bool domain_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > CONFIG_DOMAIN_LEN - 1)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > CONFIG_LABEL_MAX || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (label == 0 && c == '-')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
		label++;
	}
	return true;
}

/* Portable user and listener names: letters, digits, '.', '_', '-', and
 * not starting with '-' (it would read as an option somewhere). */
static bool name_valid(const char *s, size_t size)
{
	size_t len = strlen(s);

	if (len == 0 || len >= size || s[0] == '-')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* Relative paths start at the configuration file's directory, made
 * absolute so a later chdir does not move them. */
static void parser_set_dir(struct parser *p)
{
	char cwd[PATH_MAX], *slash;

	/* On a too long result, stay relative to the current directory. */
	if (p->path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL ||
	    (size_t)snprintf(p->dir, sizeof(p->dir), "%s/%s", cwd, p->path) >= sizeof(p->dir))
		str_copy(p->dir, p->path, sizeof(p->dir));
	slash = strrchr(p->dir, '/');
	if (slash == NULL)
		str_copy(p->dir, ".", sizeof(p->dir));
	else if (slash == p->dir)
		slash[1] = '\0'; /* "/postern.conf" lives in "/" */
	else
		*slash = '\0';
}

static int set_path(struct parser *p, const char *key, const char *value, char *out,
		    size_t size)
{
	int n;

	if (value[0] == '/')
		n = snprintf(out, size, "%s", value);
	else if (strcmp(p->dir, "/") == 0)
		n = snprintf(out, size, "/%s", value);
	else
		n = snprintf(out, size, "%s/%s", p->dir, value);
	if (n < 0 || (size_t)n >= size)
		return fail(p, p->line, "%s: path is too long", key);
	return 0;
}

/* The index of value (any case) in names[], or -1. */
static int pick(const char *value, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (str_ieq(value, names[i]))
			return (int)i;
	return -1;
}

/* Bytes, or a number followed by K, M or G (powers of 1024). */
static int parse_size(const char *value, uint64_t min, uint64_t max, uint64_t *size_r)
{
	char num[32];
	size_t len = strlen(value);
	uint64_t mult = 1, n;

	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, value, len + 1);
	switch (num[len - 1]) {
	case 'k': case 'K': mult = 1024ULL; break;
	case 'm': case 'M': mult = 1024ULL * 1024; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; break;
	default: break;
	}
	if (mult > 1)
		num[len - 1] = '\0';
	if (str_to_u64(num, 0, max / mult, &n) < 0 || n * mult < min)
		return -1;
	*size_r = n * mult;
	return 0;
}

static int set_domains(struct parser *p, char *value)
{
	struct config *cfg = p->cfg;
	char *save = NULL;

	for (char *d = strtok_r(value, ", \t", &save); d != NULL;
	     d = strtok_r(NULL, ", \t", &save)) {
		bool dup = false;
		if (!domain_valid(d))
			return fail(p, p->line, "invalid domain name '%.*s'", CONFIG_QUOTE_MAX, d);
		str_lower(d);
		for (size_t i = 0; i < cfg->n_domains; i++)
			dup = dup || strcmp(cfg->domains[i], d) == 0;
		if (dup)
			continue;
		if (cfg->n_domains == CONFIG_DOMAINS_MAX)
			return fail(p, p->line, "too many domains (at most %d)", CONFIG_DOMAINS_MAX);
		str_copy(cfg->domains[cfg->n_domains++], d, CONFIG_DOMAIN_LEN);
	}
	if (cfg->n_domains == 0)
		return fail(p, p->line, "domains: no domain given");
	return 0;
}

/* A duration: a number with an optional unit ms, s, m, h or d (seconds
 * without one), as milliseconds. */
int config_parse_duration_ms(const char *value, uint64_t *ms_r)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		      { "h", 3600000 }, { "d", 86400000 } };
	char num[32];
	size_t digits = strspn(value, "0123456789");
	uint64_t n;

	if (digits == 0 || digits >= sizeof(num))
		return -1;
	memcpy(num, value, digits);
	num[digits] = '\0';
	if (str_to_u64(num, 0, UINT32_MAX, &n) < 0)
		return -1;
	for (size_t i = 0; i < NELEM(units); i++)
		if (str_ieq(value + digits, units[i].unit)) {
			*ms_r = n * units[i].ms;
			return 0;
		}
	return -1;
}

static int set_duration(struct parser *p, const struct config_key *k, const char *value)
{
	uint64_t scale = k->type == KEY_DURATION_S ? 1000 : 1, ms;

	if (config_parse_duration_ms(value, &ms) < 0 || ms % scale != 0 || ms / scale < k->min ||
	    ms / scale > k->max)
		return fail(p, p->line, "%s must be a duration from %llu%s to %llu%s (a number "
			    "with ms, s, m, h or d), not '%.*s'", k->name,
			    (unsigned long long)k->min, scale == 1 ? "ms" : "s",
			    (unsigned long long)k->max, scale == 1 ? "ms" : "s",
			    CONFIG_QUOTE_MAX, value);
	*(unsigned *)(void *)((char *)p->cfg + k->offset) = (unsigned)(ms / scale);
	return 0;
}

/* "192.0.2.0/24", "2001:db8::/32" or a single address; host bits must be
 * zero so that a typo ("10.0.0.1/8") is not silently widened. */
static int parse_network(const char *s, struct config_network *net)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned max;
	uint64_t prefix;

	if (len == 0 || len >= sizeof(addr))
		return -1;
	memcpy(addr, s, len);
	addr[len] = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6, max = 128;
	else
		return -1;
	prefix = max;
	if (slash != NULL && str_to_u64(slash + 1, 0, max, &prefix) < 0)
		return -1;
	net->prefix = (unsigned)prefix;
	for (unsigned bit = net->prefix; bit < max; bit++)
		if (net->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -1;
	return 0;
}

/* "none" empties the list (nothing trusted, loopback included). */
static int set_networks(struct parser *p, char *value)
{
	struct config *cfg = p->cfg;
	char *save = NULL;

	cfg->n_trusted_networks = 0;
	if (str_ieq(value, "none"))
		return 0;
	for (char *n = strtok_r(value, ", \t", &save); n != NULL;
	     n = strtok_r(NULL, ", \t", &save)) {
		if (cfg->n_trusted_networks == CONFIG_NETWORKS_MAX)
			return fail(p, p->line, "too many trusted networks (at most %d)",
				    CONFIG_NETWORKS_MAX);
		if (parse_network(n, &cfg->trusted_networks[cfg->n_trusted_networks]) < 0)
			return fail(p, p->line, "trusted_networks: '%.*s' is not an address or "
				    "a network in CIDR form with zero host bits (192.0.2.0/24, "
				    "2001:db8::/32)", CONFIG_QUOTE_MAX, n);
		cfg->n_trusted_networks++;
	}
	if (cfg->n_trusted_networks == 0)
		return fail(p, p->line, "trusted_networks: no network given (use none "
			    "to trust no one)");
	return 0;
}

/* Dovecot's pop3_uidl_format as far as a Maildir can answer it:
 * "%[0][width][x|X](u|v)", "%[width]f", "%%", other printable characters. */
static bool uidl_format_valid(const char *f)
{
	if (*f == '\0')
		return false;
	for (; *f != '\0'; f++) {
		unsigned width = 0;
		bool hex = false;

		if ((unsigned char)*f < 0x21 || (unsigned char)*f > 0x7e)
			return false;
		if (*f != '%')
			continue;
		if (*++f == '%')
			continue;
		if (*f == '0')
			f++;
		while (*f >= '0' && *f <= '9' && width <= 70)
			width = width * 10 + (unsigned)(*f++ - '0');
		if (*f == 'x' || *f == 'X') {
			hex = true;
			f++;
		}
		if (width > 70 || !(*f == 'u' || *f == 'v' || (*f == 'f' && !hex)))
			return false;
	}
	return true;
}

static int set_top_key(struct parser *p, const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	uint64_t n;
	int i;

	switch (k->type) {
	case KEY_HOSTNAME:
		if (!domain_valid(value))
			return fail(p, p->line, "invalid host name '%.*s'", CONFIG_QUOTE_MAX, value);
		str_copy(cfg->hostname, value, sizeof(cfg->hostname));
		str_lower(cfg->hostname);
		return 0;
	case KEY_PATH:
		return set_path(p, k->name, value, cfg->data_dir, sizeof(cfg->data_dir));
	case KEY_DOMAINS:
		return set_domains(p, value);
	case KEY_USER:
		if (!name_valid(value, sizeof(cfg->run_as_user)))
			return fail(p, p->line, "invalid user name '%.*s'", CONFIG_QUOTE_MAX, value);
		str_copy(cfg->run_as_user, value, sizeof(cfg->run_as_user));
		return 0;
	case KEY_LOG_LEVEL:
		str_lower(value);
		if (log_level_parse(value, &cfg->log_level) < 0)
			return fail(p, p->line, "unknown log level '%.*s' (error, warn, info, debug)",
				    CONFIG_QUOTE_MAX, value);
		return 0;
	case KEY_SIZE:
		if (parse_size(value, k->min, k->max, &cfg->message_size_max) < 0)
			return fail(p, p->line,
				    "%s must be a size from 64K to 1G (bytes, or a number "
				    "with K, M or G), not '%.*s'", k->name, CONFIG_QUOTE_MAX, value);
		return 0;
	case KEY_UINT:
		if (str_to_u64(value, k->min, k->max, &n) < 0)
			return fail(p, p->line, "%s must be a number from %llu to %llu, not '%.*s'",
				    k->name, (unsigned long long)k->min,
				    (unsigned long long)k->max, CONFIG_QUOTE_MAX, value);
		*(unsigned *)(void *)((char *)cfg + k->offset) = (unsigned)n;
		return 0;
	case KEY_BOOL:
		if ((i = pick(value, bool_names, NELEM(bool_names))) < 0)
			return fail(p, p->line, "%s must be yes or no, not '%.*s'", k->name,
				    CONFIG_QUOTE_MAX, value);
		*(bool *)(void *)((char *)cfg + k->offset) = i % 2 == 1;
		return 0;
	case KEY_BARE_LF:
		if ((i = pick(value, bare_lf_names, NELEM(bare_lf_names))) < 0)
			return fail(p, p->line, "%s must be reject or normalise, not '%.*s'",
				    k->name, CONFIG_QUOTE_MAX, value);
		cfg->smtp_bare_lf = i == 0 ? BARE_LF_REJECT : BARE_LF_NORMALISE;
		return 0;
	case KEY_QUOTA_ERROR:
		if ((i = pick(value, quota_names, NELEM(quota_names))) < 0)
			return fail(p, p->line, "%s must be temporary or permanent, not '%.*s'",
				    k->name, CONFIG_QUOTE_MAX, value);
		cfg->quota_error_permanent = i == 1;
		return 0;
	case KEY_NETWORKS:
		return set_networks(p, value);
	case KEY_UIDL_FORMAT:
		if (strlen(value) >= sizeof(cfg->pop3_uidl_format) ||
		    !uidl_format_valid(value))
			return fail(p, p->line, "%s: '%.*s' is not a format this server "
				    "knows: use %%u (UID), %%v (UIDVALIDITY), %%f (file "
				    "name), optionally with a width and X for hex, as in "
				    "%%08Xu%%08Xv", k->name, CONFIG_QUOTE_MAX, value);
		str_copy(cfg->pop3_uidl_format, value, sizeof(cfg->pop3_uidl_format));
		return 0;
	case KEY_TLS_MIN:
		if ((i = pick(value, tls_min_names, NELEM(tls_min_names))) < 0)
			return fail(p, p->line, "%s must be 1.0, 1.1 or 1.2, not '%.*s'",
				    k->name, CONFIG_QUOTE_MAX, value);
		cfg->smtp_inbound_tls_min = 10 + (unsigned)i;
		return 0;
	case KEY_DURATION_MS:
	case KEY_DURATION_S:
		return set_duration(p, k, value);
	case KEY_OUTBOUND: {
		char msg[256];
		if (config_outbound_set(cfg, k->name, value, msg, sizeof(msg)) < 0)
			return fail(p, p->line, "%s", msg);
		return 0;
	}
	case KEY_HTTP: {
		char msg[256];
		if (config_http_set(cfg, k->name, value, msg, sizeof(msg)) < 0)
			return fail(p, p->line, "%s", msg);
		return 0;
	}
	case KEY_RELAY_PASSWORD_FILE:
		return set_path(p, k->name, value, cfg->relay_password_file,
				sizeof(cfg->relay_password_file));
	}
	return fail(p, p->line, "internal error: key type %d", (int)k->type);
}

/* The family of an IPv4 or IPv6 literal, its bytes in addr; -1 if neither. */
static int address_parse(const char *s, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, addr) == 1)
		return AF_INET6;
	return -1;
}

/* An octal number of at most four digits (0660); 0 or -1. */
static int str_octal(const char *s, uint64_t *n_r)
{
	size_t len = strspn(s, "01234567");

	if (len == 0 || len > 4 || s[len] != '\0')
		return -1;
	*n_r = strtoull(s, NULL, 8);
	return 0;
}

/* "unix:/abs/path": an absolute path that fits sun_path, without "..". */
static int set_unix_path(struct parser *p, struct config_listener *l, const char *path)
{
	if (path[0] != '/' || strlen(path) >= sizeof(l->unix_path) || strstr(path, "/..") != NULL)
		return fail(p, p->line, "a unix socket needs an absolute path of at most %d "
			    "octets without '..': unix:/path/to/socket", CONFIG_UNIX_PATH_MAX - 1);
	str_copy(l->unix_path, path, sizeof(l->unix_path));
	str_copy(l->address, "unix", sizeof(l->address));
	return 0;
}

static int set_listener_key(struct parser *p, int key, const char *value)
{
	struct config_listener *l = &p->cfg->listeners[p->cfg->n_listeners - 1];
	unsigned char addr[16];
	uint64_t n;
	int i;

	switch (key) {
	case LKEY_ROLE:
		if ((i = pick(value, role_names, ROLE_COUNT)) < 0)
			return fail(p, p->line, "unknown role '%.*s' (smtp, submission, "
				    "submissions, imap, imaps, pop3, pop3s, http, lmtp, managesieve)",
				    CONFIG_QUOTE_MAX, value);
		l->role = (enum listener_role)i;
		return 0;
	case LKEY_ADDRESS:
		if (strncmp(value, CONFIG_UNIX_PREFIX, strlen(CONFIG_UNIX_PREFIX)) == 0)
			return set_unix_path(p, l, value + strlen(CONFIG_UNIX_PREFIX));
		if (strcmp(value, "*") != 0 && address_parse(value, addr) < 0)
			return fail(p, p->line, "address must be an IPv4 or IPv6 address, * or "
				    "unix:/path, not '%.*s'", CONFIG_QUOTE_MAX, value);
		str_copy(l->address, value, sizeof(l->address));
		return 0;
	case LKEY_MODE:
		/* permission bits only: no setuid, setgid or sticky bit */
		if (str_octal(value, &n) < 0 || n > 0777)
			return fail(p, p->line, "mode must be octal permissions such as 0660, "
				    "not '%.*s'", CONFIG_QUOTE_MAX, value);
		l->mode = (unsigned)n;
		return 0;
	case LKEY_PORT:
		if (str_to_u64(value, 1, 65535, &n) < 0)
			return fail(p, p->line, "port must be a number from 1 to 65535, not '%.*s'",
				    CONFIG_QUOTE_MAX, value);
		l->port = (uint16_t)n;
		return 0;
	case LKEY_TLS:
		if ((i = pick(value, tls_names, NELEM(tls_names))) < 0)
			return fail(p, p->line, "unknown tls mode '%.*s' (none, starttls, "
				    "implicit)", CONFIG_QUOTE_MAX, value);
		l->tls = (enum tls_mode)i;
		return 0;
	}
	return fail(p, p->line, "internal error: listener key %d", key);
}

/* Finds key in names[]; -1 when absent. */
static int key_index(const char *const *names, int count, const char *key)
{
	for (int i = 0; i < count; i++)
		if (strcmp(names[i], key) == 0)
			return i;
	return -1;
}

static int top_key_index(const char *key)
{
	for (size_t i = 0; i < NELEM(config_keys); i++)
		if (strcmp(config_keys[i].name, key) == 0)
			return (int)i;
	return -1;
}

static int parse_setting(struct parser *p, char *s, char *eq)
{
	char *key = s, *value = eq + 1;
	unsigned *seen;
	int i;

	*eq = '\0';
	str_trim(key);
	str_trim(value);
	if (key[0] == '\0')
		return fail(p, p->line, "missing key before '='");

	if (p->block == BLOCK_LISTENER)
		i = key_index(listener_keys, LKEY_COUNT, key);
	else if (p->block == BLOCK_CERT)
		i = key_index(cert_keys, CKEY_COUNT, key);
	else
		i = top_key_index(key);
	if (i < 0 && p->block == BLOCK_NONE)
		return fail(p, p->line, "unknown key '%.*s'", CONFIG_QUOTE_MAX, key);
	if (i < 0)
		return fail(p, p->line, "unknown key '%.*s' in %s block", CONFIG_QUOTE_MAX, key,
			    p->block == BLOCK_LISTENER ? "listener" : "tls_certificate");

	seen = p->block == BLOCK_NONE ? &p->top_seen[i] : &p->block_seen[i];
	if (*seen != 0)
		return fail(p, p->line, "key '%s' given twice (first on line %u)", key, *seen);
	*seen = p->line;
	if (value[0] == '\0')
		return fail(p, p->line, "empty value for '%s'", key);

	if (p->block == BLOCK_LISTENER)
		return set_listener_key(p, i, value);
	if (p->block == BLOCK_CERT) {
		struct config_cert *c = &p->cfg->certs[p->cfg->n_certs - 1];
		return set_path(p, key, value, i == CKEY_CERT ? c->cert_file : c->key_file,
				PATH_MAX);
	}
	return set_top_key(p, &config_keys[i], value);
}

/* "listener NAME {" or "tls_certificate {"; s is the line without '{'. */
static int open_block(struct parser *p, char *s)
{
	struct config *cfg = p->cfg;
	char *type = str_trim(s), *name = type + strcspn(type, " \t");

	if (*name != '\0')
		*name++ = '\0';
	str_trim(name);
	if (p->block != BLOCK_NONE)
		return fail(p, p->line, "nested blocks are not allowed (the block on line %u "
			    "is not closed)", p->block_line);
	if (type[0] == '\0')
		return fail(p, p->line, "'{' without a block type");
	memset(p->block_seen, 0, sizeof(p->block_seen));
	p->block_line = p->line;

	if (strcmp(type, "listener") == 0) {
		struct config_listener *l;
		if (!name_valid(name, sizeof(l->name)))
			return fail(p, p->line, "a listener needs a name of letters, digits, '.', "
				    "'_' or '-': listener NAME {");
		for (size_t i = 0; i < cfg->n_listeners; i++)
			if (strcmp(cfg->listeners[i].name, name) == 0)
				return fail(p, p->line, "listener '%s' already defined on line %u",
					    name, cfg->listeners[i].line);
		if (cfg->n_listeners == CONFIG_LISTENERS_MAX)
			return fail(p, p->line, "too many listeners (at most %d)",
				    CONFIG_LISTENERS_MAX);
		l = &cfg->listeners[cfg->n_listeners++];
		memset(l, 0, sizeof(*l));
		str_copy(l->name, name, sizeof(l->name));
		l->line = p->line;
		p->block = BLOCK_LISTENER;
		return 0;
	}
	if (strcmp(type, "tls_certificate") == 0) {
		struct config_cert *c;
		if (name[0] != '\0')
			return fail(p, p->line, "tls_certificate takes no name: tls_certificate {");
		if (cfg->n_certs == CONFIG_CERTS_MAX)
			return fail(p, p->line, "too many tls_certificate blocks (at most %d)",
				    CONFIG_CERTS_MAX);
		c = &cfg->certs[cfg->n_certs++];
		memset(c, 0, sizeof(*c));
		c->line = p->line;
		p->block = BLOCK_CERT;
		return 0;
	}
	return fail(p, p->line, "unknown block type '%.*s'", CONFIG_QUOTE_MAX, type);
}

/* Fills in what the block left out, from its role. */
static int close_listener(struct parser *p)
{
	struct config_listener *l = &p->cfg->listeners[p->cfg->n_listeners - 1];
	enum tls_mode want = config_role_default_tls(l->role);

	if (p->block_seen[LKEY_ROLE] == 0)
		return fail(p, p->block_line, "listener '%s' has no role", l->name);
	if (p->block_seen[LKEY_ADDRESS] == 0)
		str_copy(l->address, "*", sizeof(l->address));
	if (p->block_seen[LKEY_TLS] == 0)
		l->tls = want;
	if (p->block_seen[LKEY_PORT] == 0) /* RFC 9110 §4.2.2: https is 443 */
		l->port = l->role == ROLE_HTTP && l->tls == TLS_MODE_IMPLICIT ? 443 :
			  role_ports[l->role];
	if (p->block_seen[LKEY_MODE] == 0)
		l->mode = CONFIG_UNIX_MODE_DEFAULT;
	if (l->unix_path[0] != '\0') {
		/* the MTA in front is the only client a socket file is for */
		if (l->role != ROLE_LMTP)
			return fail(p, p->block_seen[LKEY_ADDRESS], "listener '%s': only role "
				    "lmtp listens on a unix socket", l->name);
		if (p->block_seen[LKEY_PORT] != 0)
			return fail(p, p->block_seen[LKEY_PORT], "listener '%s': a unix socket "
				    "has no port", l->name);
		l->port = 0;
	} else if (p->block_seen[LKEY_MODE] != 0) {
		return fail(p, p->block_seen[LKEY_MODE], "listener '%s': mode is for unix "
			    "sockets (address = unix:/path)", l->name);
	}
	if (l->role == ROLE_LMTP && l->port == 25) /* RFC 2033 §1 */
		return fail(p, p->block_seen[LKEY_PORT], "listener '%s': LMTP must not be "
			    "used on port 25", l->name);
	if (l->role == ROLE_HTTP && l->tls == TLS_MODE_STARTTLS)
		return fail(p, p->block_seen[LKEY_TLS], "listener '%s': role http takes "
			    "tls = none or implicit", l->name);
	if (want == TLS_MODE_IMPLICIT && l->tls != TLS_MODE_IMPLICIT)
		return fail(p, p->block_seen[LKEY_TLS], "listener '%s': role %s needs "
			    "tls = implicit", l->name, role_names[l->role]);
	return 0;
}

static int close_block(struct parser *p)
{
	int rc = 0;

	if (p->block == BLOCK_NONE)
		return fail(p, p->line, "'}' without a block");
	if (p->block == BLOCK_LISTENER)
		rc = close_listener(p);
	else if (p->block_seen[CKEY_CERT] == 0)
		rc = fail(p, p->block_line, "tls_certificate block has no 'cert'");
	else if (p->block_seen[CKEY_KEY] == 0)
		rc = fail(p, p->block_line, "tls_certificate block has no 'key'");
	p->block = BLOCK_NONE;
	return rc;
}

static int parse_line(struct parser *p, char *s)
{
	size_t len;
	char *eq;

	for (const char *c = s; *c != '\0'; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return fail(p, p->line, "control character 0x%02x in line",
				    (unsigned char)*c);
	str_trim(s);
	if (s[0] == '\0' || s[0] == '#')
		return 0;
	if (strcmp(s, "}") == 0)
		return close_block(p);
	if (s[0] == '}')
		return fail(p, p->line, "unexpected text after '}'");
	/* '=' first: a value may legitimately end in '{'. */
	eq = strchr(s, '=');
	if (eq != NULL)
		return parse_setting(p, s, eq);
	len = strlen(s);
	if (s[len - 1] == '{') {
		s[len - 1] = '\0';
		return open_block(p, s);
	}
	return fail(p, p->line, "missing '=' in '%.*s'", CONFIG_QUOTE_MAX, s);
}

/* Two listeners clash when the kernel would refuse the second bind: same
 * port and the same address, or either one is a wildcard of that family. */
static bool listeners_clash(const struct config_listener *a, const struct config_listener *b)
{
	static const unsigned char any[16] = { 0 };
	unsigned char aa[16], ba[16];

	if (a->unix_path[0] != '\0' || b->unix_path[0] != '\0')
		return strcmp(a->unix_path, b->unix_path) == 0;
	if (a->port != b->port)
		return false;
	if (strcmp(a->address, "*") == 0 || strcmp(b->address, "*") == 0)
		return true;
	if (address_parse(a->address, aa) != address_parse(b->address, ba))
		return false;
	return memcmp(aa, ba, 16) == 0 || memcmp(aa, any, 16) == 0 || memcmp(ba, any, 16) == 0;
}

static int check_whole(struct parser *p)
{
	struct config *cfg = p->cfg;

	if (p->block != BLOCK_NONE)
		return fail(p, p->block_line, "unterminated %s block: missing '}'",
			    p->block == BLOCK_LISTENER ? "listener" : "tls_certificate");
	if (cfg->hostname[0] == '\0')
		return fail(p, 0, "hostname is not set");
	if (cfg->data_dir[0] == '\0')
		return fail(p, 0, "data_dir is not set");
	{
		char msg[256];
		if (config_outbound_check(cfg, msg, sizeof(msg)) < 0)
			return fail(p, 0, "%s", msg);
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		if (l->tls != TLS_MODE_NONE && cfg->n_certs == 0)
			return fail(p, l->line, "listener '%s' uses TLS (tls = %s) but there is "
				    "no tls_certificate block", l->name, tls_names[l->tls]);
		for (size_t j = 0; j < i; j++)
			if (listeners_clash(&cfg->listeners[j], l))
				return fail(p, l->line, "listener '%s' (%s port %u) overlaps "
					    "listener '%s' (line %u, %s port %u)", l->name,
					    l->address, l->port, cfg->listeners[j].name,
					    cfg->listeners[j].line, cfg->listeners[j].address,
					    cfg->listeners[j].port);
	}
	return 0;
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->message_size_max = 50ULL * 1024 * 1024;
	cfg->connections_max = 10000;
	cfg->connections_per_ip_max = 50;
	cfg->line_length_max = 8192;
	cfg->smtp_timeout = 300;
	cfg->imap_idle_timeout = 1800;
	cfg->imap_expunge_log_max = 10000; /* store.h MD_EXPUNGE_LOG_MAX_DEFAULT */
	cfg->pop3_idle_timeout = 600;
	cfg->shutdown_timeout = 30;
	cfg->smtp_pregreet_delay_ms = 1000;
	cfg->smtp_pregreet_ttl = 86400;
	cfg->smtp_pregreet_cache_max = 100000;
	cfg->sandbox = true;
	cfg->auth_cache_ttl = 3600;
	cfg->auth_cache_max = 10000;
	/* Loopback only: 127.0.0.0/8 and ::1. */
	cfg->trusted_networks[0].family = AF_INET;
	cfg->trusted_networks[0].prefix = 8;
	cfg->trusted_networks[0].addr[0] = 127;
	cfg->trusted_networks[1].family = AF_INET6;
	cfg->trusted_networks[1].prefix = 128;
	cfg->trusted_networks[1].addr[15] = 1;
	cfg->n_trusted_networks = 2;
	config_outbound_defaults(cfg);
	config_http_defaults(cfg);
	str_copy(cfg->pop3_uidl_format, "%08Xu%08Xv", sizeof(cfg->pop3_uidl_format));
	cfg->smtp_inbound_tls_min = 10;
	/* Zero is already: no plaintext auth on loopback, smtp_bare_lf reject,
	 * quota_error temporary, no listeners, no certificates, no domains. */
}

/* On failure cfg holds whatever was parsed before the error: do not use it. */
int config_parse(const char *path, const char *text, size_t len,
		 struct config *cfg, char *err, size_t errlen)
{
	struct parser p;
	const char *pos = text, *end = text + len;

	memset(&p, 0, sizeof(p));
	p.path = path;
	p.cfg = cfg;
	p.err = err;
	p.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	config_defaults(cfg);
	if (str_copy(cfg->path, path, sizeof(cfg->path)) >= sizeof(cfg->path))
		return fail(&p, 0, "file name is too long");
	parser_set_dir(&p);

	while (pos < end) {
		const char *nl = memchr(pos, '\n', (size_t)(end - pos));
		size_t n = (nl == NULL ? end : nl) - pos;
		char line[CONFIG_LINE_MAX];

		p.line++;
		if (memchr(pos, '\0', n) != NULL)
			return fail(&p, p.line, "NUL byte in line");
		if (n > 0 && pos[n - 1] == '\r')
			n--; /* CRLF files from Windows editors */
		if (n >= sizeof(line))
			return fail(&p, p.line, "line is longer than %d bytes",
				    CONFIG_LINE_MAX - 1);
		memcpy(line, pos, n);
		line[n] = '\0';
		if (parse_line(&p, line) < 0)
			return -1;
		pos = nl == NULL ? end : nl + 1;
	}
	return check_whole(&p);
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct parser p = { .path = path, .err = err, .errlen = errlen };
	char *text;
	size_t len;
	int rc;

	if (read_small_file(path, CONFIG_FILE_MAX, &text, &len) < 0) {
		if (errno == EFBIG)
			return fail(&p, 0, "file is larger than %d bytes", CONFIG_FILE_MAX);
		return fail(&p, 0, "cannot read: %s", strerror(errno));
	}
	rc = config_parse(path, text, len, cfg, err, errlen);
	free(text);
	return rc;
}

const char *config_role_name(enum listener_role role)
{
	if ((unsigned)role >= ROLE_COUNT)
		return "?";
	return role_names[role];
}

const char *config_tls_name(enum tls_mode mode)
{
	if ((unsigned)mode >= NELEM(tls_names))
		return "?";
	return tls_names[mode];
}

bool config_role_is_smtp(enum listener_role role)
{
	return role == ROLE_SMTP || role == ROLE_SUBMISSION || role == ROLE_SUBMISSIONS;
}

/* RFC 8314 §3: the "s" roles speak TLS from the first byte. */
enum tls_mode config_role_default_tls(enum listener_role role)
{
	if (role == ROLE_SUBMISSIONS || role == ROLE_IMAPS || role == ROLE_POP3S)
		return TLS_MODE_IMPLICIT;
	if (role == ROLE_HTTP) /* HTTP has no STARTTLS (RFC 2817 upgrade unused) */
		return TLS_MODE_NONE;
	if (role == ROLE_LMTP) /* loopback or a unix socket, from the MTA in front */
		return TLS_MODE_NONE;
	return TLS_MODE_STARTTLS;
}

bool config_is_local_domain(const struct config *cfg, const char *domain)
{
	if (domain == NULL)
		return false;
	for (size_t i = 0; i < cfg->n_domains; i++)
		if (str_ieq(cfg->domains[i], domain))
			return true;
	return false;
}

static bool network_contains(const struct config_network *net, int family,
			     const unsigned char *addr)
{
	unsigned full = net->prefix / 8, rest = net->prefix % 8;

	if (net->family != family)
		return false;
	if (memcmp(net->addr, addr, full) != 0)
		return false;
	return rest == 0 || ((net->addr[full] ^ addr[full]) & (0xff00 >> rest)) == 0;
}

bool config_addr_is_trusted(const struct config *cfg, const struct sockaddr *sa)
{
	const unsigned char *addr;
	int family;

	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		addr = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		family = IN6_IS_ADDR_V4MAPPED(a6) ? AF_INET : AF_INET6;
		addr = family == AF_INET ? &a6->s6_addr[12] : a6->s6_addr;
	} else {
		return false;
	}
	for (size_t i = 0; i < cfg->n_trusted_networks; i++)
		if (network_contains(&cfg->trusted_networks[i], family, addr))
			return true;
	return false;
}
