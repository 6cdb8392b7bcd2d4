/* Fuzz target: config_parse() (core/config.c) on arbitrary text.
 *
 * The configuration is written by the administrator, not by clients, but
 * `postern check` is how a broken file is found and it must never crash.
 * Oracles: a result of 0 or -1 only; on -1 the error text is a
 * NUL-terminated "FILE..." message; on 0 the counts stay within their
 * arrays and every string field is terminated.  The same text is parsed
 * with an absolute and a relative file name (the latter resolves paths
 * against the current directory), and with a tiny error buffer.
 */
#include "fuzz_common.h"

#include <string.h>

#include "config.h"

static void fuzz_config_check(const struct config *cfg)
{
	FUZZ_CHECK(cfg->n_listeners <= CONFIG_LISTENERS_MAX);
	FUZZ_CHECK(cfg->n_certs <= CONFIG_CERTS_MAX);
	FUZZ_CHECK(cfg->n_domains <= CONFIG_DOMAINS_MAX);
	FUZZ_CHECK(memchr(cfg->hostname, '\0', sizeof(cfg->hostname)) != NULL);
	FUZZ_CHECK(memchr(cfg->data_dir, '\0', sizeof(cfg->data_dir)) != NULL);
	FUZZ_CHECK(cfg->hostname[0] != '\0' && cfg->data_dir[0] != '\0');
	for (size_t i = 0; i < cfg->n_domains; i++)
		FUZZ_CHECK(memchr(cfg->domains[i], '\0', CONFIG_DOMAIN_LEN) != NULL);
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct config_listener *l = &cfg->listeners[i];

		FUZZ_CHECK(memchr(l->name, '\0', sizeof(l->name)) != NULL);
		FUZZ_CHECK(memchr(l->address, '\0', sizeof(l->address)) != NULL);
		FUZZ_CHECK(memchr(l->unix_path, '\0', sizeof(l->unix_path)) != NULL);
		/* a unix socket (role lmtp only, absolute path) has no port */
		FUZZ_CHECK((unsigned)l->role < ROLE_COUNT &&
			   (l->unix_path[0] != '\0' ? l->port == 0 && l->role == ROLE_LMTP &&
							  l->unix_path[0] == '/' : l->port > 0));
		FUZZ_CHECK(l->mode <= 0777);
		FUZZ_CHECK(strcmp(config_role_name(l->role), "?") != 0);
	}
	for (size_t i = 0; i < cfg->n_certs; i++) {
		FUZZ_CHECK(cfg->certs[i].cert_file[0] == '/');
		FUZZ_CHECK(cfg->certs[i].key_file[0] == '/');
	}
	(void)config_is_local_domain(cfg, "example.org");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg; /* ~140 KB: not on the stack */
	char err[CONFIG_ERROR_MAX], small[8];
	static const char *const paths[] = { "/etc/postern/postern.conf", "postern.conf" };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		int rc = config_parse(paths[i], (const char *)data, size, &cfg, err, sizeof(err));

		FUZZ_CHECK(rc == 0 || rc == -1);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		if (rc < 0)
			FUZZ_CHECK(strncmp(err, paths[i], strlen(paths[i])) == 0);
		else
			fuzz_config_check(&cfg);
	}
	/* the error is cut to the buffer, never written past it */
	(void)config_parse(paths[0], (const char *)data, size, &cfg, small, sizeof(small));
	FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	(void)config_parse(paths[0], (const char *)data, size, &cfg, NULL, 0);
	return 0;
}
