/* The configuration keys of the HTTP endpoint (protocols/http/): what the
 * autoconfig answers advertise and the MTA-STS policy.  config.c owns the
 * syntax and the "FILE:LINE:" prefixes, as for config_outbound.c. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "util.h"

/* RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year). */
#define CONFIG_MTA_STS_MAX_AGE_MAX 31557600
/* RFC 8461 §3.2 suggests weeks or more; a week by default. */
#define CONFIG_MTA_STS_MAX_AGE_DEFAULT 604800

void config_http_defaults(struct config *cfg)
{
	cfg->autoconfig_hostname[0] = '\0';
	cfg->mta_sts_mode = MTA_STS_NONE;
	cfg->mta_sts_max_age = CONFIG_MTA_STS_MAX_AGE_DEFAULT;
	cfg->n_mta_sts_mx = 0;
	cfg->shards_file[0] = '\0';
}

/* A host name as DNS has it (letters, digits, '-', '.'), or, for an MX
 * pattern (RFC 8461 §3.2 "mx"), one leading "*." wildcard label. */
static bool config_http_name_ok(const char *name, bool wildcard)
{
	size_t n = strlen(name);

	if (wildcard && strncmp(name, "*.", 2) == 0)
		name += 2, n -= 2;
	if (n == 0 || n >= CONFIG_DOMAIN_LEN || name[0] == '.' || name[0] == '-')
		return false;
	for (const char *c = name; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return false;
	return true;
}

/* mta_sts_mx = a, b c: names separated by commas or spaces. */
static int config_http_set_mx(struct config *cfg, const char *value, char *msg, size_t msglen)
{
	char copy[CONFIG_LINE_MAX];
	char *save = NULL;

	str_copy(copy, value, sizeof(copy));
	cfg->n_mta_sts_mx = 0;
	for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (cfg->n_mta_sts_mx >= CONFIG_MTA_STS_MX_MAX) {
			snprintf(msg, msglen, "mta_sts_mx: at most %d names", CONFIG_MTA_STS_MX_MAX);
			return -1;
		}
		if (!config_http_name_ok(tok, true)) {
			snprintf(msg, msglen, "mta_sts_mx: '%.64s' is not a host name", tok);
			return -1;
		}
		str_copy(cfg->mta_sts_mx[cfg->n_mta_sts_mx], tok, CONFIG_DOMAIN_LEN);
		str_lower(cfg->mta_sts_mx[cfg->n_mta_sts_mx++]);
	}
	if (cfg->n_mta_sts_mx == 0) {
		snprintf(msg, msglen, "mta_sts_mx: no names");
		return -1;
	}
	return 0;
}

int config_http_set(struct config *cfg, const char *key, const char *value,
		    char *msg, size_t msglen)
{
	if (strcmp(key, "shards_file") == 0) {
		/* read by auth/auth_shards.c (nginx's /auth, SMTP's relay to
		 * other shards), format there */
		if (value[0] != '/' || strlen(value) >= sizeof(cfg->shards_file)) {
			snprintf(msg, msglen, "shards_file: '%.64s' is not an absolute path", value);
			return -1;
		}
		str_copy(cfg->shards_file, value, sizeof(cfg->shards_file));
		return 0;
	}
	if (strcmp(key, "autoconfig_hostname") == 0) {
		if (!config_http_name_ok(value, false)) {
			snprintf(msg, msglen, "autoconfig_hostname: '%.64s' is not a host name", value);
			return -1;
		}
		str_copy(cfg->autoconfig_hostname, value, sizeof(cfg->autoconfig_hostname));
		str_lower(cfg->autoconfig_hostname);
		return 0;
	}
	if (strcmp(key, "mta_sts_mode") == 0) {
		if (strcmp(value, "none") == 0)
			cfg->mta_sts_mode = MTA_STS_NONE;
		else if (strcmp(value, "testing") == 0)
			cfg->mta_sts_mode = MTA_STS_TESTING;
		else if (strcmp(value, "enforce") == 0)
			cfg->mta_sts_mode = MTA_STS_ENFORCE;
		else {
			snprintf(msg, msglen, "mta_sts_mode must be none, testing or enforce");
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "mta_sts_max_age") == 0) {
		uint64_t ms;
		if (config_parse_duration_ms(value, &ms) < 0 || ms < 1000 ||
		    ms / 1000 > CONFIG_MTA_STS_MAX_AGE_MAX) {
			snprintf(msg, msglen, "mta_sts_max_age must be a duration from 1s to "
				 "%d seconds (RFC 8461 §3.2)", CONFIG_MTA_STS_MAX_AGE_MAX);
			return -1;
		}
		cfg->mta_sts_max_age = (unsigned)(ms / 1000);
		return 0;
	}
	if (strcmp(key, "mta_sts_mx") == 0)
		return config_http_set_mx(cfg, value, msg, msglen);
	snprintf(msg, msglen, "internal error: key %s", key);
	return -1;
}

const char *config_http_client_hostname(const struct config *cfg)
{
	return cfg->autoconfig_hostname[0] != '\0' ? cfg->autoconfig_hostname : cfg->hostname;
}

int config_mta_sts_policy(const struct config *cfg, struct buf *out)
{
	static const char *const modes[] = { "none", "testing", "enforce" };
	int bad = 0;

	/* RFC 8461 §3.2: "version" first; lines end with CRLF (LF allowed). */
	bad |= buf_appendf(out, "version: STSv1\r\nmode: %s\r\n", modes[cfg->mta_sts_mode]);
	if (cfg->n_mta_sts_mx == 0)
		bad |= buf_appendf(out, "mx: %s\r\n", cfg->hostname);
	for (size_t i = 0; i < cfg->n_mta_sts_mx; i++)
		bad |= buf_appendf(out, "mx: %s\r\n", cfg->mta_sts_mx[i]);
	bad |= buf_appendf(out, "max_age: %u\r\n", cfg->mta_sts_max_age);
	return bad ? -1 : 0;
}

/* RFC 8461 §3.1: the TXT record's id (1 to 32 letters and digits) must
 * change with the policy: 20 hex digits of the policy's SHA-256. */
int config_mta_sts_id(const struct config *cfg, char id[21])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	struct buf policy;
	int rc = -1;

	buf_init(&policy, 4096);
	if (config_mta_sts_policy(cfg, &policy) == 0 &&
	    EVP_Digest(policy.data, policy.len, md, &mdlen, EVP_sha256(), NULL) == 1) {
		for (int i = 0; i < 10; i++)
			snprintf(id + 2 * i, 3, "%02x", md[i]);
		rc = 0;
	}
	buf_free(&policy);
	return rc;
}

int config_http_dns_records(const struct config *cfg, const char *domain, struct buf *out)
{
	const char *host = config_http_client_hostname(cfg);
	const struct config_listener *web = NULL;
	char id[21];
	int bad = 0;

	for (size_t i = 0; i < cfg->n_listeners && web == NULL; i++)
		if (cfg->listeners[i].role == ROLE_HTTP)
			web = &cfg->listeners[i];
	if (web == NULL)
		return 0;
	/* Clients ask these names over HTTPS (443): Postern's own TLS listener
	 * or the reverse proxy in front of a plain one. */
	bad |= buf_appendf(out, "; Client set-up and MTA-STS (listener %s, role http): these "
			   "names must reach it by HTTPS on port 443%s\n", web->name,
			   web->tls == TLS_MODE_IMPLICIT ? "" : ", through your reverse proxy");
	bad |= buf_appendf(out, "autoconfig.%s.\tIN CNAME\t%s.\n", domain, host);
	bad |= buf_appendf(out, "autodiscover.%s.\tIN CNAME\t%s.\n", domain, host);
	bad |= buf_appendf(out, "_autodiscover._tcp.%s.\tIN SRV\t0 0 443 %s.\n", domain, host);
	if (cfg->mta_sts_mode == MTA_STS_NONE)
		bad |= buf_appendf(out, "; mta_sts_mode is none: publish mta-sts and _mta-sts "
				   "records once it is testing or enforce\n");
	else if (config_mta_sts_id(cfg, id) == 0)
		bad |= buf_appendf(out, "mta-sts.%s.\tIN CNAME\t%s.\n"
				   "_mta-sts.%s.\tIN TXT\t\"v=STSv1; id=%s\"\n",
				   domain, host, domain, id);
	else
		bad = -1;
	return bad ? -1 : 0;
}
