/* Fuzz target: what the outbound queue parses (protocols/smtp): the
 * envelope file (smtp_queue.c, a file on disk that may be damaged) and the
 * 8-bit to quoted-printable conversion of a queued message (smtp_mime8.c,
 * message content from a client).
 *
 * Input: the first byte picks the parser (even: envelope, odd: message);
 * the rest is the file or the message.
 *
 * Oracles:
 *   - envelope: what parses formats to text that parses again to the same
 *     text (a round trip is a fixed point), and every value read is
 *     within its field's bounds (NUL-terminated, counts within limits);
 *   - conversion: 0 only for 7-bit input, with nothing written; 1 only
 *     for input with 8-bit octets, and then the output is 7-bit, keeps
 *     CRLF line ends and no line added by the conversion passes 76
 *     characters (checked as: the output's longest line, CR included, is
 *     no longer than the input's longest line or 77).
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#include "smtp_queue.h"

static size_t fuzz_longest_line(const char *p, size_t len)
{
	size_t best = 0, col = 0;

	for (size_t i = 0; i < len; i++) {
		col = p[i] == '\n' ? 0 : col + 1;
		if (col > best)
			best = col;
	}
	return best;
}

static void fuzz_envelope(const char *data, size_t len)
{
	struct queue_env *a = queue_env_new(), *b = queue_env_new();
	char *text = malloc(len + 1);
	struct buf f1, f2;

	FUZZ_CHECK(a != NULL && b != NULL && text != NULL);
	memcpy(text, data, len);
	text[len] = '\0';
	buf_init(&f1, 0);
	buf_init(&f2, 0);
	if (queue_env_parse(a, text) == 0) {
		FUZZ_CHECK(a->n_rcpts > 0 && a->n_rcpts <= QUEUE_RCPTS_MAX);
		FUZZ_CHECK(strlen(a->id) <= QUEUE_ID_MAX && strlen(a->sender) <= SMTP_PATH_MAX);
		for (size_t i = 0; i < a->n_rcpts; i++)
			FUZZ_CHECK(a->rcpts[i].state <= QUEUE_RCPT_BOUNCED &&
				   a->rcpts[i].notify <= 0xf);
		FUZZ_CHECK(queue_env_format(a, &f1) == 0 && buf_cstr(&f1) == 0);
		FUZZ_CHECK(queue_env_parse(b, f1.data) == 0);
		FUZZ_CHECK(queue_env_format(b, &f2) == 0 && buf_cstr(&f2) == 0);
		buf_reset(&f1); /* parse modified f1: format it again */
		FUZZ_CHECK(queue_env_format(a, &f1) == 0);
		FUZZ_CHECK(f1.len == f2.len && memcmp(f1.data, f2.data, f1.len) == 0);
	}
	buf_free(&f1);
	buf_free(&f2);
	free(text);
	queue_env_free(a);
	queue_env_free(b);
}

static void fuzz_mime8(const char *data, size_t len)
{
	struct buf out;
	bool eight = false;
	int rc;

	for (size_t i = 0; i < len && !eight; i++)
		eight = (unsigned char)data[i] >= 0x80;
	buf_init(&out, 0);
	rc = mime8_downgrade(data, len, &out);
	FUZZ_CHECK(rc >= -1 && rc <= 1);
	FUZZ_CHECK(rc != 0 || (!eight && out.len == 0));
	FUZZ_CHECK(rc != 1 || eight);
	if (rc == 1) {
		size_t in_max = fuzz_longest_line(data, len), out_max;
		for (size_t i = 0; i < out.len; i++)
			FUZZ_CHECK((unsigned char)out.data[i] < 0x80);
		out_max = fuzz_longest_line(out.data, out.len);
		/* 76 characters and the CR of the CRLF (both lines count it) */
		FUZZ_CHECK(out_max <= (in_max > 77 ? in_max : 77));
	}
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_envelope((const char *)data + 1, size - 1);
	else
		fuzz_mime8((const char *)data + 1, size - 1);
	return 0;
}
