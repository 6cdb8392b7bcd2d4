/* The configuration `postern demo` writes and later re-ports: a small
 * working setup on 127.0.0.1 (README "postern demo").  Every file written
 * here is first parsed by config_parse(), so the demo never leaves a file
 * that `postern serve` would refuse.  Memory: scratch buffers only, freed
 * before returning.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A value is written as is, so it must survive the parser's trimming and
 * line splitting unchanged. */
static bool demo_value_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= PATH_MAX || s[0] == ' ' || s[0] == '\t' ||
	    s[len - 1] == ' ' || s[len - 1] == '\t')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static const struct {
	enum listener_role role;
	unsigned offset;
} demo[] = {
	{ ROLE_SMTP, 25 }, { ROLE_SUBMISSION, 587 }, { ROLE_SUBMISSIONS, 465 },
	{ ROLE_IMAP, 143 }, { ROLE_IMAPS, 993 }, { ROLE_POP3, 110 }, { ROLE_POP3S, 995 },
	{ ROLE_MANAGESIEVE, CONFIG_DEMO_OFFSET_MAX },
};

int config_write_demo(const char *path, const char *data_dir,
		      const char *cert_file, const char *key_file,
		      unsigned port_base)
{
	struct buf b;
	struct config *check;
	char err[CONFIG_ERROR_MAX];
	int rc = -1, saved, bad;

	if (!demo_value_ok(data_dir) || !demo_value_ok(cert_file) ||
	    !demo_value_ok(key_file) || port_base > 65535 - CONFIG_DEMO_OFFSET_MAX) {
		errno = EINVAL;
		return -1;
	}
	buf_init(&b, CONFIG_FILE_MAX);
	bad = buf_appendf(&b,
		"# Postern configuration written by `postern demo`: a small working\n"
		"# setup on 127.0.0.1.  conf/postern.conf in the source documents every\n"
		"# setting and its default.\n\n"
		"# The name this server gives itself in greetings.\n"
		"hostname = localhost\n"
		"# Mail for these domains is delivered here.\n"
		"domains = example.test\n"
		"# Maildirs, the index and the users file live here.\n"
		"data_dir = %s\n"
		"log_level = info\n"
		"# Lets clients on this machine log in without TLS, for easy trying.\n"
		"allow_plaintext_auth_on_loopback = yes\n\n"
		"# A self-signed certificate made by `postern demo`.\n"
		"tls_certificate {\n\tcert = %s\n\tkey = %s\n}\n",
		data_dir, cert_file, key_file);
	for (size_t i = 0; i < sizeof(demo) / sizeof(demo[0]); i++) {
		const char *role = config_role_name(demo[i].role);
		bad |= buf_appendf(&b, "\n# tls = %s, the default for this role\n"
				   "listener %s {\n\trole = %s\n\taddress = 127.0.0.1\n"
				   "\tport = %u\n}\n",
				   config_tls_name(config_role_default_tls(demo[i].role)), role, role,
				   port_base + demo[i].offset);
	}
	/* Refuse to write a file that `postern serve` would then reject. */
	check = malloc(sizeof(*check));
	if (check == NULL || bad < 0 || buf_cstr(&b) < 0) {
		saved = ENOMEM;
	} else if (config_parse(path, b.data, b.len, check, err, sizeof(err)) < 0) {
		saved = EINVAL;
	} else {
		rc = write_file_atomic(path, b.data, b.len, 0600);
		saved = errno;
	}
	free(check);
	buf_free(&b);
	errno = saved;
	return rc;
}

/* The "port = N" line of the listener block that starts on line `start`
 * (1-based): its offset and length in text, or -1. */
static int demo_port_line(const char *text, size_t len, unsigned start,
			  size_t *off_r, size_t *len_r)
{
	unsigned line = 1;
	size_t pos = 0;

	while (pos < len && line < start) {
		const char *nl = memchr(text + pos, '\n', len - pos);

		if (nl == NULL)
			return -1;
		pos = (size_t)(nl - text) + 1;
		line++;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len, p = pos;

		while (p < end && (text[p] == ' ' || text[p] == '\t'))
			p++;
		if (end - p > 4 && strncmp(text + p, "port", 4) == 0 &&
		    (text[p + 4] == ' ' || text[p + 4] == '\t' || text[p + 4] == '=')) {
			*off_r = pos;
			*len_r = end - pos;
			return 0;
		}
		if (line > start && memchr(text + pos, '}', end - pos) != NULL)
			return -1; /* the block ended without a port */
		pos = end + 1;
		line++;
	}
	return -1;
}

int config_demo_set_ports(const char *path, unsigned port_base, unsigned *changed_r)
{
	struct config *cfg = malloc(sizeof(*cfg));
	char err[CONFIG_ERROR_MAX], *text = NULL;
	size_t len;
	struct buf b;
	int rc = -1, saved = EINVAL;

	*changed_r = 0;
	buf_init(&b, CONFIG_FILE_MAX);
	if (cfg == NULL || port_base > 65535 - CONFIG_DEMO_OFFSET_MAX ||
	    read_small_file(path, CONFIG_FILE_MAX, &text, &len) < 0 ||
	    config_parse(path, text, len, cfg, err, sizeof(err)) < 0)
		goto out;
	/* the listeners in file order: rewrite from the end so that offsets
	 * found in the original text stay valid */
	for (size_t i = cfg->n_listeners; i-- > 0;) {
		const struct config_listener *l = &cfg->listeners[i];
		size_t off, plen;
		char line[32];
		int n;

		for (size_t k = 0; k < sizeof(demo) / sizeof(demo[0]); k++) {
			unsigned want = port_base + demo[k].offset;

			if (demo[k].role != l->role || l->port == want ||
			    demo_port_line(text, len, l->line, &off, &plen) < 0)
				continue;
			n = snprintf(line, sizeof(line), "\tport = %u", want);
			buf_reset(&b);
			if (buf_append(&b, text, off) < 0 || buf_append(&b, line, (size_t)n) < 0 ||
			    buf_append(&b, text + off + plen, len - off - plen) < 0 ||
			    buf_cstr(&b) < 0) {
				saved = ENOMEM;
				goto out;
			}
			free(text);
			if ((text = strdup(b.data)) == NULL) {
				saved = ENOMEM;
				goto out;
			}
			len = b.len;
			(*changed_r)++;
		}
	}
	if (*changed_r == 0) {
		rc = 0;
	} else if (config_parse(path, text, len, cfg, err, sizeof(err)) == 0) {
		rc = write_file_atomic(path, text, len, 0600);
		saved = errno;
	}
out:
	free(cfg);
	free(text);
	buf_free(&b);
	errno = saved;
	return rc;
}
