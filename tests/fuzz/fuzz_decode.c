/* Fuzz target: the transfer decoders behind FETCH BINARY and SEARCH
 * (maildir/md_decode.c) and the header text SEARCH matches
 * (maildir/md_text.c: RFC 2047 words, charsets, case folding).
 *
 * Input: one option byte, then a message as stored.  Oracles:
 *   - for every base64 / quoted-printable part md_meta_compute() found,
 *     the strict decoder fails exactly when the part is not BINARY-
 *     decodable, and otherwise gives exactly binary_size octets: FETCH
 *     BINARY must send what BINARY.SIZE announced;
 *   - feeding the body in two slices (split where the option byte says)
 *     or one octet at a time gives the same octets and verdict as one call;
 *   - the lenient decoder (SEARCH) never stops early and stays within the
 *     decoded-size bounds (base64 3/4, quoted-printable twice the input);
 *   - each header field's decoded text is case folding's fixed point
 *     (folding it again changes nothing).
 */
#include "fuzz_common.h"

#include <string.h>

#include "md_decode.h"
#include "md_meta_int.h"
#include "store.h"

struct fuzz_dec {
	struct buf out;
	bool bad;
};

static struct fuzz_dec fuzz_decode(enum md_cte cte, bool lenient,
				   const char *s, size_t n, size_t step)
{
	struct md_decoder d;
	struct fuzz_dec r;
	size_t off = 0;

	buf_init(&r.out, 0);
	md_decoder_init(&d, cte, lenient);
	while (off < n) {
		size_t k = n - off < step ? n - off : step;

		FUZZ_CHECK(md_decoder_feed(&d, s + off, k, &r.out) == 0);
		off += k;
	}
	FUZZ_CHECK(md_decoder_finish(&d, &r.out) == 0);
	r.bad = d.bad;
	return r;
}

static void fuzz_check_part(const char *msg, const struct md_part *p,
			    size_t split)
{
	const char *body = msg + p->body_off;
	size_t n = (size_t)p->body_len;
	enum md_cte cte = (enum md_cte)p->cte;
	struct fuzz_dec whole, two, bytes, lenient;

	if (cte != MD_CTE_BASE64 && cte != MD_CTE_QP)
		return;
	whole = fuzz_decode(cte, false, body, n, n > 0 ? n : 1);
	two = fuzz_decode(cte, false, body, n, split % (n + 1) + 1);
	bytes = fuzz_decode(cte, false, body, n, 1);
	FUZZ_CHECK(whole.bad == !p->binary_ok);
	if (!whole.bad)
		FUZZ_CHECK(whole.out.len == p->binary_size);
	FUZZ_CHECK(two.bad == whole.bad && bytes.bad == whole.bad);
	FUZZ_CHECK(two.out.len == whole.out.len && bytes.out.len == whole.out.len);
	FUZZ_CHECK(whole.out.len == 0 ||
		   (memcmp(two.out.data, whole.out.data, whole.out.len) == 0 &&
		    memcmp(bytes.out.data, whole.out.data, whole.out.len) == 0));
	lenient = fuzz_decode(cte, true, body, n, split % (n + 1) + 1);
	if (cte == MD_CTE_BASE64)
		FUZZ_CHECK(!lenient.bad && lenient.out.len <= n / 4 * 3 + 3);
	else
		FUZZ_CHECK(lenient.out.len <= 2 * n + 2);
	buf_free(&whole.out);
	buf_free(&two.out);
	buf_free(&bytes.out);
	buf_free(&lenient.out);
}

static void fuzz_check_headers(const char *msg, const struct md_part *p)
{
	struct md_hdr_iter it;
	struct md_field f;
	struct buf value, text, again;

	buf_init(&value, 0);
	buf_init(&text, 0);
	buf_init(&again, 0);
	md_mime_hdr_init(&it, msg, p->header_off, p->header_len);
	while (md_mime_hdr_next(&it, &f) > 0) {
		buf_reset(&value);
		buf_reset(&text);
		buf_reset(&again);
		FUZZ_CHECK(md_mime_field_value(msg, &f, &value) == 0);
		FUZZ_CHECK(md_text_header_decode(value.data, value.len, &text) == 0);
		FUZZ_CHECK(md_text_casefold(text.data, text.len, &again) == 0);
		FUZZ_CHECK(again.len == text.len &&
			   (text.len == 0 || memcmp(again.data, text.data, text.len) == 0));
	}
	buf_free(&value);
	buf_free(&text);
	buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct md_meta m;
	const char *msg;
	size_t split;

	if (size < 1)
		return 0;
	split = data[0];
	msg = (const char *)data + 1;
	size--;
	FUZZ_CHECK(md_meta_compute(msg, size, &m) == 0);
	for (uint32_t i = 0; i < m.n_parts; i++) {
		fuzz_check_part(msg, &m.parts[i], split);
		fuzz_check_headers(msg, &m.parts[i]);
	}
	md_meta_free(&m);
	return 0;
}
