/* Fuzz target: what SMTP does with message content
 * (protocols/smtp/smtp_data.c, smtp_header.c): the incremental DATA/BDAT
 * unstuffer, the resumable header-end search, the header scan and the
 * From: mailbox-list parser.
 *
 * Input: the first byte holds options (DATA or BDAT mode, normalise bare
 * line ends, the chunk size of the split feed); the rest is what the
 * client sends after DATA / inside BDAT.
 *
 * Oracles:
 *   - unstuffer: each call writes at most 2 * len + 2 octets (its output
 *     buffer is a heap block of exactly that size); fed whole or in
 *     chunks it produces the same octets, ends at the same place and
 *     reports the same bare-line-end and NUL findings; once ended it
 *     consumes nothing more; with normalise on, no bare CR or LF leaves it;
 *     in DATA mode the end is found exactly at the first CRLF "." CRLF
 *     that follows a real CRLF (the SMTP smuggling rule);
 *   - header end: fed as a growing buffer it finds the same end as at once;
 *   - header scan: From: lies inside the block; the From: parser gives at
 *     most SMTP_FROM_MAX NUL-terminated addresses that each hold an '@'.
 */
#include "fuzz_common.h"

#include <string.h>

#include "smtp_private.h"

struct fuzz_us_result {
	char *out;
	size_t out_len;
	size_t consumed; /* input octets used, the end marker included */
	bool ended, bare, nul;
};

static void fuzz_unstuff(const char *in, size_t len, bool dots, bool normalise,
			 size_t chunk, bool finish, struct fuzz_us_result *r)
{
	struct smtp_unstuff u;
	size_t pos = 0, cap = 2 * len + 4;

	r->out = malloc(cap);
	FUZZ_CHECK(r->out != NULL);
	r->out_len = 0;
	r->ended = false;
	smtp_unstuff_init(&u, dots, normalise);
	while (pos < len) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		size_t o = 0, used = 0;
		char *tmp = malloc(2 * n + 2); /* the documented bound, exactly */
		int rc;

		FUZZ_CHECK(tmp != NULL);
		rc = smtp_unstuff_feed(&u, in + pos, n, tmp, &o, &used);
		FUZZ_CHECK(rc == 0 || rc == 1);
		FUZZ_CHECK(o <= 2 * n + 2 && used <= n);
		FUZZ_CHECK(rc == 1 || used == n);
		FUZZ_CHECK(r->out_len + o <= cap);
		memcpy(r->out + r->out_len, tmp, o);
		r->out_len += o;
		free(tmp);
		pos += used;
		if (rc == 1) {
			r->ended = true;
			/* after the end nothing more is taken */
			if (pos < len) {
				char t2[8];
				size_t o2 = 1, u2 = 1;
				FUZZ_CHECK(smtp_unstuff_feed(&u, in + pos, 1, t2, &o2, &u2) == 1);
				FUZZ_CHECK(o2 == 0 && u2 == 0);
			}
			break;
		}
	}
	if (finish && !r->ended) {
		char tail[2];
		size_t o = 0;

		smtp_unstuff_finish(&u, tail, &o);
		FUZZ_CHECK(o <= 2);
		memcpy(r->out + r->out_len, tail, o);
		r->out_len += o;
	}
	r->consumed = pos;
	r->bare = u.bare;
	r->nul = u.nul;
}

/* Where DATA must end: the first "\r\n.\r\n" whose leading CRLF is a real
 * line end, or ".\r\n" at the very start (the DATA command's CRLF).
 * Returns the octets up to and including it, or SIZE_MAX. */
static size_t fuzz_data_end(const char *in, size_t len)
{
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return SIZE_MAX;
}

static void fuzz_from(const char *value, size_t len)
{
	char addrs[SMTP_FROM_MAX][SMTP_PATH_MAX + 1];
	char *copy = malloc(len > 0 ? len : 1);
	int n;

	FUZZ_CHECK(copy != NULL);
	memcpy(copy, value, len);
	n = smtp_parse_from(copy, len, addrs, SMTP_FROM_MAX);
	FUZZ_CHECK(n == -1 || (n >= 1 && n <= SMTP_FROM_MAX));
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(memchr(addrs[i], '\0', sizeof(addrs[i])) != NULL);
		FUZZ_CHECK(strchr(addrs[i], '@') != NULL);
	}
	/* a smaller maximum never writes past it */
	n = smtp_parse_from(copy, len, addrs, 1);
	FUZZ_CHECK(n == -1 || n == 1);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_us_result whole, split;
	const char *in = (const char *)data + 1;
	size_t len, chunk;
	bool dots, normalise;
	uint8_t opt;

	if (size == 0)
		return 0;
	opt = data[0];
	len = size - 1;
	dots = !(opt & 1);
	normalise = opt & 2;
	chunk = 1 + (opt >> 2);

	fuzz_unstuff(in, len, dots, normalise, len > 0 ? len : 1, !dots, &whole);
	fuzz_unstuff(in, len, dots, normalise, chunk, !dots, &split);
	FUZZ_CHECK(whole.ended == split.ended && whole.consumed == split.consumed);
	FUZZ_CHECK(whole.bare == split.bare && whole.nul == split.nul);
	FUZZ_CHECK(whole.out_len == split.out_len &&
		   memcmp(whole.out, split.out, whole.out_len) == 0);
	if (dots) {
		size_t end = fuzz_data_end(in, len);

		FUZZ_CHECK(whole.ended == (end != SIZE_MAX));
		if (whole.ended)
			FUZZ_CHECK(whole.consumed == end);
	} else {
		FUZZ_CHECK(!whole.ended && whole.consumed == len);
	}
	FUZZ_CHECK(whole.nul == (memchr(in, '\0', whole.consumed) != NULL));
	if (normalise) {
		/* every CR and LF that leaves is part of a CRLF */
		for (size_t i = 0; i < whole.out_len; i++) {
			if (whole.out[i] == '\r')
				FUZZ_CHECK(i + 1 < whole.out_len && whole.out[i + 1] == '\n');
			if (whole.out[i] == '\n')
				FUZZ_CHECK(i > 0 && whole.out[i - 1] == '\r');
		}
	}
	free(whole.out);
	free(split.out);

	/* header end: at once, and over a growing buffer */
	{
		size_t scan = 0, scan2 = 0;
		long h = smtp_header_end(in, len, &scan), h2 = -1;

		FUZZ_CHECK(h >= -1 && (h < 0 || (size_t)h <= len));
		for (size_t have = 0; have <= len; have += chunk) {
			h2 = smtp_header_end(in, have, &scan2);
			if (h2 >= 0)
				break;
		}
		if (h2 < 0)
			h2 = smtp_header_end(in, len, &scan2);
		FUZZ_CHECK(h == h2);
	}

	/* header scan and From: */
	{
		struct smtp_header_info info;

		smtp_header_scan(in, len, &info);
		if (info.from != NULL) {
			FUZZ_CHECK(info.from >= in && info.from + info.from_len <= in + len);
			fuzz_from(info.from, info.from_len);
		}
		fuzz_from(in, len);
	}
	return 0;
}
