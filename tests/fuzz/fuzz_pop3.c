/* Fuzz target: POP3 pure functions (protocols/pop3/pop3_parse.c): the
 * command-line parser, message numbers, the RETR/TOP byte-stuffer and the
 * UIDL derivation.
 *
 * Input: the first byte holds options (TOP line count, chunk size of the
 * split feed); the rest is used three ways: as one command line (in a heap
 * block of exactly its size), as stored message bytes for the stuffer, and
 * up to the first NUL as a Maildir base name for UIDL.
 *
 * Oracles:
 *   - parser: arguments are NUL-terminated inside the parsed copy, at most
 *     POP3_ARGS_MAX, each within POP3_ARG_MAX unless the command allows
 *     long ones; the verb is upper case; an OK result names a command whose
 *     argument count fits;
 *   - stuffer: at most 2 * len octets per call (exact-size output blocks);
 *     whole, chunked and count-only feeds agree (LIST sizes are computed
 *     count-only, RETR sends the written bytes: they must match); every LF
 *     sent follows a CR; the multi-line response "+OK\r\n" out ".\r\n" holds
 *     its terminator only at its end (RFC 1939 §3); for RETR, undoing the
 *     stuffing gives back the message with bare LFs made CRLF;
 *   - UIDL: 1 to 70 characters of 0x21..0x7E (RFC 1939 §7).
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <string.h>

#include "pop3_private.h"

static void fuzz_parse(const char *line, size_t len)
{
	struct pop3_parsed cmd;
	enum pop3_parse_result r = pop3_parse_line(line, len, &cmd);

	FUZZ_CHECK(r >= POP3_PARSE_OK && r <= POP3_PARSE_ARG_TOO_LONG);
	FUZZ_CHECK(pop3_parse_error_text(r) != NULL);
	FUZZ_CHECK(cmd.nargs <= POP3_ARGS_MAX);
	if (r == POP3_PARSE_TOO_LONG)
		FUZZ_CHECK(len > POP3_LINE_MAX);
	if (r >= POP3_PARSE_ARGS)
		FUZZ_CHECK(cmd.cmd != NULL);
	if (r != POP3_PARSE_OK)
		return;
	FUZZ_CHECK(cmd.cmd != NULL && pop3_command_find(cmd.verb) == cmd.cmd);
	FUZZ_CHECK(strlen(cmd.verb) >= 1 && strlen(cmd.verb) <= POP3_VERB_MAX);
	for (const char *v = cmd.verb; *v != '\0'; v++)
		FUZZ_CHECK(isupper((unsigned char)*v));
	FUZZ_CHECK(cmd.nargs >= cmd.cmd->min_args && cmd.nargs <= cmd.cmd->max_args);
	for (size_t i = 0; i < cmd.nargs; i++) {
		FUZZ_CHECK(cmd.args[i] >= cmd.buf && cmd.args[i] + cmd.arg_len[i] <= cmd.buf + len);
		FUZZ_CHECK(cmd.args[i][cmd.arg_len[i]] == '\0');
		FUZZ_CHECK(cmd.arg_len[i] > 0);
		FUZZ_CHECK(strlen(cmd.args[i]) == cmd.arg_len[i]);
		if (!(cmd.cmd->flags & (POP3_CMD_LONG_ARG | POP3_CMD_REST)))
			FUZZ_CHECK(cmd.arg_len[i] <= POP3_ARG_MAX);
		{
			uint64_t v;
			if (pop3_parse_number(cmd.args[i], 1, UINT64_MAX, &v) == 0)
				FUZZ_CHECK(v >= 1);
		}
	}
}

struct fuzz_stuffed {
	char *out;
	size_t len;
	bool done;
};

static void fuzz_stuff(const char *in, size_t len, uint64_t top, size_t chunk,
		       bool count_only, struct fuzz_stuffed *r)
{
	struct pop3_stuffer st;
	size_t pos = 0;

	r->out = count_only ? NULL : malloc(2 * len + 2);
	FUZZ_CHECK(count_only || r->out != NULL);
	r->len = 0;
	pop3_stuff_init(&st, top);
	while (pos < len) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		size_t o;

		if (count_only) {
			o = pop3_stuff(&st, in + pos, n, NULL);
		} else {
			char *tmp = malloc(2 * n); /* the documented bound, exactly */

			FUZZ_CHECK(tmp != NULL);
			o = pop3_stuff(&st, in + pos, n, tmp);
			memcpy(r->out + r->len, tmp, o);
			free(tmp);
		}
		FUZZ_CHECK(o <= 2 * n);
		r->len += o;
		pos += n;
	}
	{
		char tail[2];
		size_t o = pop3_stuff_finish(&st, count_only ? NULL : tail);

		FUZZ_CHECK(o == 0 || o == 2);
		if (!count_only)
			memcpy(r->out + r->len, tail, o);
		r->len += o;
	}
	r->done = st.done;
}

/* The response as the client reads it must end at our terminator only. */
static void fuzz_check_response(const struct fuzz_stuffed *s)
{
	size_t n = 5 + s->len + 3;
	char *resp = malloc(n);
	const char *term;

	FUZZ_CHECK(resp != NULL);
	memcpy(resp, "+OK\r\n", 5);
	memcpy(resp + 5, s->out, s->len);
	memcpy(resp + 5 + s->len, ".\r\n", 3);
	term = memmem(resp + 3, n - 3, "\r\n.\r\n", 5);
	FUZZ_CHECK(term != NULL && (size_t)(term - resp) + 5 == n);
	for (size_t i = 0; i < s->len; i++)
		if (s->out[i] == '\n')
			FUZZ_CHECK(i > 0 && s->out[i - 1] == '\r');
	free(resp);
}

/* RETR: what a client gets after removing the stuffing (RFC 1939 §3) is
 * the message, bare LF as CRLF, with a last line completed by CRLF. */
static void fuzz_check_retr(const char *in, size_t len, const struct fuzz_stuffed *s)
{
	char *want = malloc(2 * len + 2), *got = malloc(s->len + 1);
	size_t w = 0, g = 0;
	bool bol = true;

	FUZZ_CHECK(want != NULL && got != NULL);
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			want[w++] = '\r';
		want[w++] = in[i];
	}
	if (w > 0 && want[w - 1] != '\n') {
		want[w++] = '\r';
		want[w++] = '\n';
	}
	for (size_t i = 0; i < s->len; i++) {
		if (bol && s->out[i] == '.') {
			FUZZ_CHECK(i + 1 < s->len && s->out[i + 1] == '.');
			i++;
		}
		got[g++] = s->out[i];
		bol = s->out[i] == '\n';
	}
	FUZZ_CHECK(g == w && memcmp(got, want, w) == 0);
	free(want);
	free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t tops[] = { POP3_TOP_ALL, 0, 1, 2, 3, 5, 10, POP3_TOP_ALL };
	struct fuzz_stuffed whole, split, counted;
	const char *in = (const char *)data + 1;
	size_t len, chunk;
	uint64_t top;
	uint8_t opt;

	if (size == 0)
		return 0;
	opt = data[0];
	len = size - 1;
	top = tops[opt & 7];
	chunk = 1 + (opt >> 3);

	{
		char *line = malloc(len > 0 ? len : 1);

		FUZZ_CHECK(line != NULL);
		memcpy(line, in, len);
		fuzz_parse(line, len);
		free(line);
	}
	{
		char name[POP3_LINE_MAX + 1], uidl[POP3_UIDL_MAX + 1];
		size_t n = strnlen(in, len), ul;
		uint64_t v;

		if (n > POP3_LINE_MAX)
			n = POP3_LINE_MAX;
		memcpy(name, in, n);
		name[n] = '\0';
		(void)pop3_parse_number(name, 0, UINT64_MAX, &v);
		pop3_uidl_from_basename(name, uidl);
		ul = strnlen(uidl, sizeof(uidl));
		FUZZ_CHECK(ul >= 1 && ul <= POP3_UIDL_MAX);
		for (size_t i = 0; i < ul; i++)
			FUZZ_CHECK((unsigned char)uidl[i] >= 0x21 && (unsigned char)uidl[i] <= 0x7e);
	}

	fuzz_stuff(in, len, top, len > 0 ? len : 1, false, &whole);
	fuzz_stuff(in, len, top, chunk, false, &split);
	fuzz_stuff(in, len, top, chunk, true, &counted);
	FUZZ_CHECK(whole.len == split.len && memcmp(whole.out, split.out, whole.len) == 0);
	FUZZ_CHECK(whole.done == split.done);
	FUZZ_CHECK(counted.len == whole.len && counted.done == whole.done);
	fuzz_check_response(&whole);
	if (top == POP3_TOP_ALL)
		fuzz_check_retr(in, len, &whole);
	free(whole.out);
	free(split.out);
	return 0;
}
