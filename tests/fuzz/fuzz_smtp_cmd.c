/* Fuzz target: SMTP command-line parsers (protocols/smtp/smtp_parse.c):
 * command split, MAIL FROM / RCPT TO paths, ESMTP parameters, domain,
 * address-literal, xtext and UTF-8 checks.  (Command lines are split by
 * core/conn's line reader, which check_core tests split at every octet.)
 *
 * Input: the first byte holds options (SIZE limit, SMTPUTF8, AUTH
 * offered); the rest, up to the first NUL, is one command line as
 * smtp_command() receives it (NUL-terminated, in a heap block of exactly
 * its size).
 *
 * Oracles: paths are NUL-terminated, within SMTP_PATH_MAX, with addr[at]
 * the '@'; every failure writes a reply beginning with a 5xx code.
 */
#include "fuzz_common.h"

#include <string.h>

#include "smtp_private.h"

static void fuzz_path_ok(const struct smtp_path *path)
{
	size_t n = strnlen(path->addr, sizeof(path->addr));

	FUZZ_CHECK(n < sizeof(path->addr));
	FUZZ_CHECK(n <= SMTP_PATH_MAX - 2);
	if (path->null) {
		FUZZ_CHECK(n == 0);
		return;
	}
	if (path->postmaster) {
		FUZZ_CHECK(strcmp(path->addr, "postmaster") == 0);
		return;
	}
	FUZZ_CHECK(path->at > 0 && path->at < n && path->addr[path->at] == '@');
	FUZZ_CHECK(smtp_domain_valid(path->addr + path->at + 1, n - path->at - 1, true));
}

static void fuzz_reply_ok(const char *reply, size_t size)
{
	FUZZ_CHECK(memchr(reply, '\0', size) != NULL);
	FUZZ_CHECK(reply[0] == '5' && reply[1] >= '0' && reply[1] <= '9' &&
		   reply[2] >= '0' && reply[2] <= '9' && reply[3] == ' ');
}

static void fuzz_command(const char *line, size_t len, uint8_t opt)
{
	struct smtp_command cmd;
	struct smtp_path path;
	const char *rest, *end;
	char reply[SMTP_REPLY_MAX];
	bool utf8 = opt & 1;

	FUZZ_CHECK(smtp_parse_command(line, len, &cmd) == 0);
	FUZZ_CHECK(cmd.args >= line && cmd.args + cmd.args_len <= line + len);
	FUZZ_CHECK(cmd.args[cmd.args_len] == '\0' || cmd.args[cmd.args_len] == ' ');

	/* the handlers see the arguments NUL-terminated (trailing spaces cut) */
	{
		char *args = malloc(cmd.args_len + 1);

		FUZZ_CHECK(args != NULL);
		memcpy(args, cmd.args, cmd.args_len);
		args[cmd.args_len] = '\0';

		if (smtp_parse_mail_from(args, &path, &rest, reply, sizeof(reply)) == 0) {
			struct smtp_mail_params mp;
			uint64_t max = (opt & 2) ? 1000000 : 0;

			fuzz_path_ok(&path);
			FUZZ_CHECK(rest > args && rest <= args + cmd.args_len);
			if (smtp_parse_mail_params(rest, (opt & 4) ? SMTP_EXT_AUTH : 0, max, &mp,
						   reply, sizeof(reply)) == 0) {
				FUZZ_CHECK(strlen(mp.envid) <= SMTP_ENVID_MAX);
				FUZZ_CHECK(memchr(mp.auth, '\0', sizeof(mp.auth)) != NULL);
				FUZZ_CHECK(max == 0 || !mp.has_size || mp.size <= max);
			} else {
				fuzz_reply_ok(reply, sizeof(reply));
			}
		} else {
			fuzz_reply_ok(reply, sizeof(reply));
		}
		if (smtp_parse_rcpt_to(args, &path, &rest, reply, sizeof(reply)) == 0) {
			struct smtp_rcpt_params rp;

			fuzz_path_ok(&path);
			FUZZ_CHECK(!path.null);
			if (smtp_parse_rcpt_params(rest, utf8, &rp, reply, sizeof(reply)) == 0)
				FUZZ_CHECK(strlen(rp.orcpt) <= SMTP_ORCPT_MAX);
			else
				fuzz_reply_ok(reply, sizeof(reply));
		} else {
			fuzz_reply_ok(reply, sizeof(reply));
		}
		/* a bare path, every flag combination */
		for (unsigned f = 0; f < 8; f++) {
			if (smtp_parse_path(args, f & 1, f & 2, f & 4, &path, &end) == 0) {
				fuzz_path_ok(&path);
				FUZZ_CHECK(end > args && end <= args + cmd.args_len);
				FUZZ_CHECK(!path.null || (f & 1));
				FUZZ_CHECK(!path.postmaster || (f & 2));
				FUZZ_CHECK((f & 4) || !path.utf8 || path.postmaster);
				/* the canonical form is canonical: "<addr>" parses
				 * to the same address */
				if (!path.null && !path.postmaster) {
					char again[SMTP_PATH_MAX + 8];
					struct smtp_path p2;

					snprintf(again, sizeof(again), "<%s>", path.addr);
					FUZZ_CHECK(smtp_parse_path(again, f & 1, f & 2, f & 4, &p2,
								   &end) == 0);
					FUZZ_CHECK(strcmp(p2.addr, path.addr) == 0 && p2.at == path.at);
					FUZZ_CHECK(p2.utf8 == path.utf8 && p2.literal == path.literal);
				}
			}
		}
		/* parameters straight from the arguments */
		{
			struct smtp_mail_params mp;
			struct smtp_rcpt_params rp;

			if (smtp_parse_mail_params(args, SMTP_EXT_AUTH, 0, &mp, reply,
						   sizeof(reply)) < 0)
				fuzz_reply_ok(reply, sizeof(reply));
			if (smtp_parse_rcpt_params(args, utf8, &rp, reply, sizeof(reply)) < 0)
				fuzz_reply_ok(reply, sizeof(reply));
		}
		(void)smtp_helo_valid(args, cmd.args_len);
		(void)smtp_domain_valid(args, cmd.args_len, utf8);
		(void)smtp_address_literal_valid(args, cmd.args_len);
		(void)smtp_xtext_valid(args, cmd.args_len);
		free(args);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t len, clen;
	uint8_t opt;

	if (size == 0)
		return 0;
	opt = data[0];
	len = size - 1;
	clen = strnlen(in, len);
	{
		char *line = malloc(clen + 1);

		FUZZ_CHECK(line != NULL);
		memcpy(line, in, clen);
		line[clen] = '\0';
		fuzz_command(line, clen, opt);
		(void)smtp_utf8_valid(line, clen);
		free(line);
	}

	return 0;
}
