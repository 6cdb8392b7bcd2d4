/* Fuzz target: SMTP command-line parsers (protocols/smtp/smtp_parse.c):
 * command split, MAIL FROM / RCPT TO paths, ESMTP parameters, domain,
 * address-literal, xtext and UTF-8 checks, and the CRLF line splitter.
 *
 * Input: the first byte holds options (SIZE limit, SMTPUTF8, AUTH offered,
 * the line splitter's limit); the rest is client input.  Up to the first
 * NUL it is one command line as smtp_command() receives it
 * (NUL-terminated, in a heap block of exactly its size); the whole of it,
 * NULs included, is also fed to smtp_line_take() twice, at once and one
 * octet at a time, which must split it into the same lines.
 *
 * Oracles: paths are NUL-terminated, within SMTP_PATH_MAX, with addr[at]
 * the '@'; every failure writes a reply beginning with a 5xx code; the
 * splitter never returns a line longer than its limit or one holding
 * CRLF, never consumes more than it was given, and both feeds agree.
 */
#include "fuzz_common.h"

#include <string.h>

#include "smtp_private.h"

#define FUZZ_LINES_MAX 4096

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

struct fuzz_lines {
	size_t n;
	size_t len[FUZZ_LINES_MAX];     /* SIZE_MAX: an over-long line */
	size_t off[FUZZ_LINES_MAX];
};

/* Run the splitter as smtp_session.c does: input appended to a buffer,
 * lines taken from its front by offset (compacted once per feed, so a long
 * pipelined input stays linear), step octets at a time. */
static void fuzz_split(const char *in, size_t len, size_t max, size_t step,
		       struct fuzz_lines *out)
{
	char *buf = malloc(len > 0 ? len : 1);
	size_t have = 0, fed = 0, base = 0; /* base: offset of buf[0] in in */
	bool discarding = false;

	FUZZ_CHECK(buf != NULL);
	out->n = 0;
	while (fed < len) {
		size_t n = len - fed < step ? len - fed : step, off = 0;

		memcpy(buf + have, in + fed, n);
		have += n;
		fed += n;
		for (;;) {
			const char *b = buf + off;
			size_t line_len, consumed;
			int rc;

			rc = smtp_line_take(&discarding, b, have - off, max, &line_len, &consumed);
			FUZZ_CHECK(rc >= -1 && rc <= 1);
			FUZZ_CHECK(consumed <= have - off);
			if (rc == 1) {
				FUZZ_CHECK(line_len <= max && consumed == line_len + 2);
				FUZZ_CHECK(b[line_len] == '\r' && b[line_len + 1] == '\n');
				FUZZ_CHECK(memmem(b, line_len, "\r\n", 2) == NULL);
			}
			if (rc != 0 && out->n < FUZZ_LINES_MAX) {
				out->len[out->n] = rc == 1 ? line_len : SIZE_MAX;
				out->off[out->n] = rc == 1 ? base + off : 0;
				out->n++;
			}
			off += consumed;
			if (rc == 0)
				break;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		base += off;
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_lines whole, bytes;
	const char *in = (const char *)data + 1;
	size_t len, clen, max;
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

	/* the splitter: a small limit (so over-long lines happen), or the
	 * session's own */
	max = (opt & 8) ? SMTP_LINE_MAX : 16 + (opt >> 4);
	fuzz_split(in, len, max, len > 0 ? len : 1, &whole);
	fuzz_split(in, len, max, 1, &bytes);
	FUZZ_CHECK(whole.n == bytes.n);
	for (size_t i = 0; i < whole.n; i++)
		FUZZ_CHECK(whole.len[i] == bytes.len[i] && whole.off[i] == bytes.off[i]);
	return 0;
}
