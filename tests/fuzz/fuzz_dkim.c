/* Fuzz target: DKIM canonicalisation and the signer
 * (protocols/smtp/smtp_dkim_canon.c, smtp_dkim_sign.c).
 *
 * Input: the first byte holds options (bit 0: simple or relaxed body;
 * bits 1-7: the chunk size of the split feed, 1..128); the rest is a
 * message, header block and body, as the outbound queue would feed it.
 *
 * Oracles:
 *   - body canonicaliser: fed whole or in chunks it gives the same octets;
 *     the output is empty or ends in CRLF, never in an empty line (but the
 *     single CRLF of an empty simple body); relaxed output has no HTAB, no
 *     two SP in a row and no SP before CRLF; canonicalising the output
 *     again changes nothing;
 *   - relaxed header canonicalisation of the input's first line: one CRLF,
 *     at the end, and no upper-case letter before the colon;
 *   - signer (one Ed25519 key, made once): fed whole or in chunks it gives
 *     the same DKIM-Signature field or fails the same way; a field ends in
 *     CRLF and each of its lines is below 78 columns.
 */
#include "fuzz_common.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>
#include <unistd.h>

#include "dkim.h"

static void fuzz_sink(void *ctx, const char *data, size_t len)
{
	FUZZ_CHECK(buf_append(ctx, data, len) == 0);
}

static void fuzz_body(enum dkim_canon c, const char *in, size_t len, size_t chunk,
		      struct buf *out)
{
	struct dkim_body_canon *bc = malloc(sizeof(*bc));

	FUZZ_CHECK(bc != NULL);
	buf_reset(out);
	dkim_body_canon_init(bc, c, fuzz_sink, out);
	for (size_t pos = 0; pos < len; pos += chunk)
		dkim_body_canon_update(bc, in + pos, len - pos < chunk ? len - pos : chunk);
	dkim_body_canon_finish(bc);
	free(bc);
}

static void fuzz_check_body(enum dkim_canon c, const char *in, size_t len, size_t chunk)
{
	struct buf whole, split, again;

	buf_init(&whole, 0);
	buf_init(&split, 0);
	buf_init(&again, 0);
	fuzz_body(c, in, len, len > 0 ? len : 1, &whole);
	fuzz_body(c, in, len, chunk, &split);
	FUZZ_CHECK(whole.len == split.len &&
		   (whole.len == 0 || memcmp(whole.data, split.data, whole.len) == 0));
	if (whole.len > 0) {
		const char *o = whole.data;
		size_t n = whole.len;
		FUZZ_CHECK(n >= 2 && o[n - 2] == '\r' && o[n - 1] == '\n');
		FUZZ_CHECK(!(n >= 4 && memcmp(o + n - 4, "\r\n\r\n", 4) == 0));
		if (c == DKIM_CANON_RELAXED) {
			FUZZ_CHECK(memchr(o, '\t', n) == NULL);
			FUZZ_CHECK(memmem(o, n, "  ", 2) == NULL);
			FUZZ_CHECK(memmem(o, n, " \r\n", 3) == NULL);
			FUZZ_CHECK(n > 2); /* a lone CRLF would be an empty line */
		}
	} else {
		FUZZ_CHECK(c == DKIM_CANON_RELAXED);
	}
	fuzz_body(c, whole.data != NULL ? whole.data : "", whole.len, chunk, &again);
	FUZZ_CHECK(again.len == whole.len &&
		   (whole.len == 0 || memcmp(again.data, whole.data, whole.len) == 0));
	buf_free(&whole);
	buf_free(&split);
	buf_free(&again);
}

static void fuzz_check_header(const char *in, size_t len)
{
	const char *crlf = memmem(in, len, "\r\n", 2);
	size_t flen = crlf != NULL ? (size_t)(crlf - in) : len;
	struct buf out;

	buf_init(&out, 0);
	FUZZ_CHECK(dkim_canon_header(DKIM_CANON_RELAXED, in, flen, &out) == 0);
	FUZZ_CHECK(out.len >= 3 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
	FUZZ_CHECK(memmem(out.data, out.len - 2, "\r\n", 2) == NULL);
	const char *colon = memchr(out.data, ':', out.len);
	FUZZ_CHECK(colon != NULL);
	for (const char *p = out.data; p < colon; p++)
		FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
	buf_free(&out);
}

/* One Ed25519 key in a throw-away data directory, made on first use. */
static struct dkim_keys *fuzz_keys(void)
{
	static struct dkim_keys *keys;
	static char dir[64];
	char path[256], err[512];
	EVP_PKEY *pkey;
	FILE *f;

	if (keys != NULL)
		return keys;
	strcpy(dir, "/tmp/fuzz_dkim.XXXXXX");
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/dkim/fuzz.test", dir);
	FUZZ_CHECK(mkdir_p(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/dkim/fuzz.test/f.ed25519.key", dir);
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FUZZ_CHECK(pkey != NULL);
	f = fopen(path, "w");
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1);
	fclose(f);
	EVP_PKEY_free(pkey);
	FUZZ_CHECK(dkim_keys_load(dir, "fuzz.test", &keys, err, sizeof(err)) == 0 && keys != NULL);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dkim/fuzz.test", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/dkim", dir);
	rmdir(path);
	rmdir(dir);
	return keys; /* kept for the life of the process */
}

static int fuzz_sign(const char *in, size_t len, size_t chunk, char **sig_r, size_t *len_r)
{
	struct dkim_signer *s = dkim_signer_new(fuzz_keys(), 1700000000);
	int rc = 0;

	FUZZ_CHECK(s != NULL);
	for (size_t pos = 0; pos < len && rc == 0; pos += chunk)
		rc = dkim_signer_update(s, in + pos, len - pos < chunk ? len - pos : chunk);
	if (rc == 0)
		rc = dkim_signer_finish(s, sig_r, len_r);
	dkim_signer_free(s);
	return rc;
}

static void fuzz_check_sign(const char *in, size_t len, size_t chunk)
{
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int ra = fuzz_sign(in, len, len > 0 ? len : 1, &a, &alen);
	int rb = fuzz_sign(in, len, chunk, &b, &blen);

	FUZZ_CHECK(ra == rb);
	if (ra == 0) {
		FUZZ_CHECK(alen == blen && memcmp(a, b, alen) == 0);
		FUZZ_CHECK(alen > 2 && memcmp(a + alen - 2, "\r\n", 2) == 0);
		for (const char *line = a; line < a + alen;) {
			const char *eol = memmem(line, (size_t)(a + alen - line), "\r\n", 2);
			FUZZ_CHECK(eol != NULL && eol - line < 78);
			line = eol + 2;
		}
	}
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t len, chunk;
	enum dkim_canon c;

	if (size < 1)
		return 0;
	c = (data[0] & 1) ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	chunk = (size_t)(data[0] >> 1) + 1;
	len = size - 1;
	fuzz_check_body(c, in, len, chunk);
	fuzz_check_header(in, len);
	fuzz_check_sign(in, len, chunk);
	return 0;
}
