/* POP3 pure functions: the command line parser, message numbers, the
 * incremental byte-stuffer that RETR, TOP and LIST sizes share, and the
 * UIDL derivation.  No I/O, no session: unit-tested in check_pop3.c. */
#include "pop3_private.h"

#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>

#include "util.h"

/* ---- command line ------------------------------------------------------- */

enum pop3_parse_result pop3_parse_line(const char *line, size_t len,
				       struct pop3_parsed *cmd_r)
{
	char *p, *end;
	size_t vlen = 0;

	memset(cmd_r, 0, offsetof(struct pop3_parsed, buf));
	cmd_r->buf[0] = '\0';
	if (len > POP3_LINE_MAX)
		return POP3_PARSE_TOO_LONG;
	if (memchr(line, '\0', len) != NULL)
		return POP3_PARSE_NUL;
	memcpy(cmd_r->buf, line, len);
	cmd_r->buf[len] = '\0';
	p = cmd_r->buf;
	end = p + len;
	/* RFC 1939 §3: keyword, then arguments, each separated by a single
	 * space.  We also accept runs of spaces and trailing spaces, which
	 * some clients send. */
	while (p < end && *p == ' ')
		p++;
	if (p == end)
		return POP3_PARSE_EMPTY;
	while (p + vlen < end && p[vlen] != ' ')
		vlen++;
	if (vlen > POP3_VERB_MAX)
		return POP3_PARSE_UNKNOWN;
	for (size_t i = 0; i < vlen; i++) {
		if (!isalpha((unsigned char)p[i]))
			return POP3_PARSE_UNKNOWN;
		cmd_r->verb[i] = (char)toupper((unsigned char)p[i]);
	}
	cmd_r->verb[vlen] = '\0';
	cmd_r->cmd = pop3_command_find(cmd_r->verb);
	if (cmd_r->cmd == NULL)
		return POP3_PARSE_UNKNOWN;
	p += vlen;

	if (cmd_r->cmd->flags & POP3_CMD_REST) {
		/* PASS: the password is everything after the one space, spaces
		 * included (RFC 1939 §7 notes passwords may hold them). */
		if (p < end)
			p++;
		if (p == end)
			return cmd_r->cmd->min_args > 0 ? POP3_PARSE_ARGS : POP3_PARSE_OK;
		cmd_r->args[0] = p;
		cmd_r->arg_len[0] = (size_t)(end - p);
		cmd_r->nargs = 1;
		return POP3_PARSE_OK;
	}
	for (;;) {
		char *a;

		while (p < end && *p == ' ')
			*p++ = '\0';
		if (p == end)
			break;
		if (cmd_r->nargs == POP3_ARGS_MAX || cmd_r->nargs == cmd_r->cmd->max_args)
			return POP3_PARSE_ARGS;
		a = p;
		while (p < end && *p != ' ')
			p++;
		cmd_r->args[cmd_r->nargs] = a;
		cmd_r->arg_len[cmd_r->nargs] = (size_t)(p - a);
		if (!(cmd_r->cmd->flags & POP3_CMD_LONG_ARG) && (size_t)(p - a) > POP3_ARG_MAX)
			return POP3_PARSE_ARG_TOO_LONG;
		cmd_r->nargs++;
	}
	if (cmd_r->nargs < cmd_r->cmd->min_args)
		return POP3_PARSE_ARGS;
	return POP3_PARSE_OK;
}

const char *pop3_parse_error_text(enum pop3_parse_result r)
{
	switch (r) {
	case POP3_PARSE_OK:
		return "OK";
	case POP3_PARSE_EMPTY:
		return "Empty command";
	case POP3_PARSE_NUL:
		return "NUL bytes are not allowed in commands";
	case POP3_PARSE_TOO_LONG:
		return "Line too long";
	case POP3_PARSE_UNKNOWN:
		return "Unknown command";
	case POP3_PARSE_ARGS:
		return "Wrong number of arguments";
	case POP3_PARSE_ARG_TOO_LONG:
		return "Argument too long";
	}
	return "Syntax error";
}

int pop3_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *value_r)
{
	/* str_to_u64 takes digits only: no sign, no spaces, no hex. */
	if (strlen(s) > 20)
		return -1;
	return str_to_u64(s, min, max, value_r);
}

/* ---- byte-stuffing ------------------------------------------------------ */

void pop3_stuff_init(struct pop3_stuffer *st, uint64_t top_lines)
{
	memset(st, 0, sizeof(*st));
	st->top_lines = top_lines;
	st->bol = true;
}

/* A line ended (its LF was just emitted): advance TOP's header/body count. */
static void pop3_stuff_line_end(struct pop3_stuffer *st, bool empty)
{
	if (!st->in_body) {
		/* RFC 1939 §7 TOP: the headers, the blank line separating
		 * them from the body, then n lines of the body. */
		if (empty) {
			st->in_body = true;
			if (st->top_lines == 0)
				st->done = true;
		}
		return;
	}
	if (st->top_lines != POP3_TOP_ALL && ++st->body_lines >= st->top_lines)
		st->done = true;
}

size_t pop3_stuff(struct pop3_stuffer *st, const char *in, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len && !st->done) {
		const char *nl;
		size_t seg;

		if (st->bol) {
			if (in[i] == '.') {
				if (out != NULL)
					out[o] = '.';
				o++;
			}
			st->bol = false;
			st->prev_cr = false;
			st->line_bytes = 0;
		}
		nl = memchr(in + i, '\n', len - i);
		seg = (nl != NULL ? (size_t)(nl - in) : len) - i;
		if (seg > 0) {
			if (out != NULL)
				memcpy(out + o, in + i, seg);
			o += seg;
			st->line_bytes += seg;
			st->prev_cr = in[i + seg - 1] == '\r';
			i += seg;
		}
		if (nl == NULL)
			break;
		/* A bare LF is sent as CRLF. */
		if (!st->prev_cr) {
			if (out != NULL)
				out[o] = '\r';
			o++;
		}
		if (out != NULL)
			out[o] = '\n';
		o++;
		i++;
		st->bol = true;
		pop3_stuff_line_end(st, st->line_bytes == 0 ||
					(st->line_bytes == 1 && st->prev_cr));
	}
	return o;
}

size_t pop3_stuff_finish(struct pop3_stuffer *st, char *out)
{
	if (st->bol || st->done)
		return 0;
	/* A last line without its end: complete it, so that the terminating
	 * "." stands on a line of its own.  A trailing lone CR stays data. */
	if (out != NULL)
		memcpy(out, "\r\n", 2);
	st->bol = true;
	return 2;
}

/* ---- UIDL --------------------------------------------------------------- */

void pop3_uidl_from_basename(const char *basename, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const char *info = strstr(basename, ":2,");
	size_t len = info != NULL ? (size_t)(info - basename) : strlen(basename);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	bool plain = len > 0 && len <= POP3_UIDL_MAX;

	for (size_t i = 0; plain && i < len; i++)
		if ((unsigned char)basename[i] < 0x21 || (unsigned char)basename[i] > 0x7e)
			plain = false;
	if (plain) {
		memcpy(out, basename, len);
		out[len] = '\0';
		return;
	}
	if (EVP_Digest(basename, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < POP3_UIDL_HASH_BYTES) {
		/* Cannot happen with a working libcrypto; keep a valid id. */
		memset(md, 0, sizeof(md));
	}
	for (size_t i = 0; i < POP3_UIDL_HASH_BYTES; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * POP3_UIDL_HASH_BYTES] = '\0';
}
