/* The configuration keys of outbound mail (the queue, routing, the relay
 * host).  config.c owns the syntax, duplicate keys and "FILE:LINE:"
 * prefixes; this file only turns one value into fields and checks the
 * rules between keys.  Users read about them in conf/postern.conf. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* RFC 5321 §4.5.4.1: retries at least 30 minutes apart are recommended,
 * shorter ones are allowed for tests; a queue_retry step is at least one
 * second and at most a day. */
#define CONFIG_RETRY_STEP_MAX 86400
/* RFC 5321 §4.5.4.1: give up after at least 4-5 days; we allow from a
 * second (tests) to 30 days. */
#define CONFIG_LIFETIME_MIN 1
#define CONFIG_LIFETIME_MAX (30 * 86400)

void config_outbound_defaults(struct config *cfg)
{
	static const unsigned retry[] = { 300, 600, 1200, 2400, 3600 };

	cfg->outbound_delivery = true;
	cfg->outbound_port = 25;
	cfg->outbound_dest_concurrency = CONFIG_DEST_CONCURRENCY_DEFAULT;
	cfg->relay_tls = TLS_MODE_STARTTLS;
	for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		cfg->queue_retry[i] = retry[i];
	cfg->n_queue_retry = sizeof(retry) / sizeof(retry[0]);
	cfg->queue_lifetime = 5 * 86400;
	cfg->queue_delay_warning = 4 * 3600;
}

/* "HOST:PORT", "[IPv6]:PORT"; host without brackets into host. */
static int split_host_port(const char *value, char *host, size_t hostlen, unsigned *port_r)
{
	const char *colon;
	uint64_t port;
	size_t n;

	if (value[0] == '[') {
		const char *close = strchr(value, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		n = (size_t)(close - value - 1);
		colon = close + 1;
		value++;
	} else {
		colon = strrchr(value, ':');
		if (colon == NULL || memchr(value, ':', (size_t)(colon - value)) != NULL)
			return -1;
		n = (size_t)(colon - value);
	}
	if (n == 0 || n >= hostlen || str_to_u64(colon + 1, 1, 65535, &port) < 0)
		return -1;
	memcpy(host, value, n);
	host[n] = '\0';
	*port_r = (unsigned)port;
	return 0;
}

static bool host_valid(const char *s)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1)
		return true;
	for (const char *c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return false;
	return s[0] != '\0' && s[0] != '.' && s[0] != '-';
}

static int set_retry(struct config *cfg, const char *value, char *msg, size_t msglen)
{
	char copy[CONFIG_LINE_MAX], *save = NULL;
	size_t n = 0;

	str_copy(copy, value, sizeof(copy));
	for (char *t = strtok_r(copy, " \t,", &save); t != NULL; t = strtok_r(NULL, " \t,", &save)) {
		uint64_t ms;
		if (n == CONFIG_RETRY_MAX) {
			snprintf(msg, msglen, "queue_retry has more than %d steps", CONFIG_RETRY_MAX);
			return -1;
		}
		if (config_parse_duration_ms(t, &ms) < 0 || ms < 1000 || ms % 1000 != 0 ||
		    ms / 1000 > CONFIG_RETRY_STEP_MAX) {
			snprintf(msg, msglen, "queue_retry: '%.64s' is not a duration from 1s to 1d "
				 "(e.g. 5m 10m 20m 40m 1h)", t);
			return -1;
		}
		cfg->queue_retry[n++] = (unsigned)(ms / 1000);
	}
	if (n == 0) {
		snprintf(msg, msglen, "queue_retry needs at least one duration");
		return -1;
	}
	cfg->n_queue_retry = n;
	return 0;
}

int config_outbound_set(struct config *cfg, const char *key, const char *value,
			char *msg, size_t msglen)
{
	uint64_t n;

	if (strcmp(key, "shard_name") == 0) {
		/* the same words as a shard line's NAME (auth/auth_shards.c) */
		if (value[0] == '\0' || strlen(value) >= sizeof(cfg->shard_name) ||
		    strpbrk(value, " \t#") != NULL) {
			snprintf(msg, msglen, "shard_name: '%.64s' is not a shard name (one word of "
				 "at most %zu characters)", value, sizeof(cfg->shard_name) - 1);
			return -1;
		}
		str_copy(cfg->shard_name, value, sizeof(cfg->shard_name));
		return 0;
	}
	if (strcmp(key, "outbound_delivery") == 0) {
		if (str_ieq(value, "yes") || str_ieq(value, "no")) {
			cfg->outbound_delivery = str_ieq(value, "yes");
			return 0;
		}
		snprintf(msg, msglen, "outbound_delivery must be yes or no, not '%.64s'", value);
		return -1;
	}
	if (strcmp(key, "outbound_port") == 0) {
		if (str_to_u64(value, 1, 65535, &n) == 0) {
			cfg->outbound_port = (unsigned)n;
			return 0;
		}
		snprintf(msg, msglen, "outbound_port must be a port from 1 to 65535, not '%.64s'",
			 value);
		return -1;
	}
	if (strcmp(key, "dns_resolver") == 0) {
		unsigned char a[16];
		char *host = cfg->dns_resolver_addr;
		/* IPv6 in brackets: [::1]:53 */
		if (split_host_port(value, host, sizeof(cfg->dns_resolver_addr),
				    &cfg->dns_resolver_port) == 0 &&
		    (inet_pton(AF_INET, host, a) == 1 ||
		     (value[0] == '[' && inet_pton(AF_INET6, host, a) == 1))) {
			cfg->has_dns_resolver = true;
			return 0;
		}
		snprintf(msg, msglen, "dns_resolver must be ADDRESS:PORT with a numeric IPv4 "
			 "address (127.0.0.1:53) or [IPv6]:PORT ([::1]:53), not '%.64s'", value);
		return -1;
	}
	if (strcmp(key, "relay_host") == 0) {
		if (split_host_port(value, cfg->relay_host, sizeof(cfg->relay_host),
				    &cfg->relay_port) == 0 && host_valid(cfg->relay_host))
			return 0;
		cfg->relay_host[0] = '\0';
		snprintf(msg, msglen, "relay_host must be HOST:PORT (smtp.example.net:587), "
			 "not '%.64s'", value);
		return -1;
	}
	if (strcmp(key, "relay_tls") == 0) {
		if (str_ieq(value, "starttls") || str_ieq(value, "implicit")) {
			cfg->relay_tls = str_ieq(value, "implicit") ? TLS_MODE_IMPLICIT
								    : TLS_MODE_STARTTLS;
			return 0;
		}
		snprintf(msg, msglen, "relay_tls must be starttls or implicit, not '%.64s'", value);
		return -1;
	}
	if (strcmp(key, "relay_user") == 0) {
		if (strlen(value) < sizeof(cfg->relay_user) && strpbrk(value, " \t") == NULL) {
			str_copy(cfg->relay_user, value, sizeof(cfg->relay_user));
			return 0;
		}
		snprintf(msg, msglen, "relay_user must be one word under %zu characters",
			 sizeof(cfg->relay_user));
		return -1;
	}
	if (strcmp(key, "queue_retry") == 0)
		return set_retry(cfg, value, msg, msglen);
	if (strcmp(key, "queue_lifetime") == 0) {
		uint64_t ms;
		if (config_parse_duration_ms(value, &ms) == 0 && ms % 1000 == 0 &&
		    ms / 1000 >= CONFIG_LIFETIME_MIN && ms / 1000 <= CONFIG_LIFETIME_MAX) {
			cfg->queue_lifetime = (unsigned)(ms / 1000);
			return 0;
		}
		snprintf(msg, msglen, "queue_lifetime must be a duration from 1s to 30d (5d), "
			 "not '%.64s'", value);
		return -1;
	}
	if (strcmp(key, "queue_delay_warning") == 0) {
		uint64_t ms;
		if (config_parse_duration_ms(value, &ms) == 0 && ms % 1000 == 0 &&
		    ms / 1000 <= CONFIG_LIFETIME_MAX) {
			cfg->queue_delay_warning = (unsigned)(ms / 1000);
			return 0;
		}
		snprintf(msg, msglen, "queue_delay_warning must be a duration up to 30d "
			 "(0 for none), not '%.64s'", value);
		return -1;
	}
	snprintf(msg, msglen, "internal error: unknown outbound key '%s'", key);
	return -1;
}

int config_outbound_check(const struct config *cfg, char *msg, size_t msglen)
{
	if ((cfg->relay_user[0] != '\0') != (cfg->relay_password_file[0] != '\0')) {
		snprintf(msg, msglen, "relay_user and relay_password_file go together");
		return -1;
	}
	if (cfg->relay_user[0] != '\0' && cfg->relay_host[0] == '\0') {
		snprintf(msg, msglen, "relay_user is set but relay_host is not");
		return -1;
	}
	/* the relay to other shards goes through the outbound queue */
	if (cfg->shard_name[0] != '\0' && cfg->shards_file[0] == '\0') {
		snprintf(msg, msglen, "shard_name is set but shards_file is not");
		return -1;
	}
	if (cfg->shard_name[0] != '\0' && !cfg->outbound_delivery) {
		snprintf(msg, msglen, "shard_name needs outbound_delivery = yes (mail for "
			 "other shards waits in the queue)");
		return -1;
	}
	return 0;
}
