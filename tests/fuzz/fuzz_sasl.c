/* Fuzz target: SASL PLAIN/LOGIN (auth/sasl.c) and base64 (core/base64.c).
 *
 * Input: lines separated by LF.  The first byte's low bits choose the
 * mechanism (PLAIN, LOGIN, or the first line taken as the mechanism name)
 * and whether the next line is an initial response; every further line is
 * one client continuation, as a protocol hands them over (CRLF removed,
 * not NUL-terminated: each line sits in a heap block of exactly its size).
 *
 * Oracles:
 *   - SASL: results are CONTINUE/DONE/FAIL with a challenge that is
 *     NUL-terminated base64; DONE gives a non-empty authcid and password
 *     no longer than AUTH_SASL_MAX; FAIL sets an error; a step after DONE
 *     or FAIL fails with SASL_ERR_STATE.
 *   - base64: decoding never writes beyond (inlen / 4) * 3 octets; the
 *     decoder is strict, so whatever it accepts re-encodes to the same
 *     text; encode-then-decode of any bytes gives them back.
 */
#include "fuzz_common.h"

#include <string.h>

#include "auth.h"
#include "base64.h"

#define FUZZ_SASL_STEPS_MAX 16

static void fuzz_base64(const char *in, size_t len)
{
	size_t cap = len / 4 * 3;
	unsigned char *out = malloc(cap > 0 ? cap : 1);
	long n;

	FUZZ_CHECK(out != NULL);
	n = base64_decode(in, len, out);
	FUZZ_CHECK(n >= -1 && (n < 0 || (size_t)n <= cap));
	if (n >= 0) {
		char *again = malloc(base64_encoded_len((size_t)n) + 1);

		FUZZ_CHECK(again != NULL);
		base64_encode(out, (size_t)n, again);
		FUZZ_CHECK(strlen(again) == len && memcmp(again, in, len) == 0);
		free(again);
	}
	free(out);

	/* any bytes survive encode + decode */
	{
		size_t elen = base64_encoded_len(len);
		char *enc = malloc(elen + 1);
		unsigned char *dec = malloc(elen / 4 * 3 + 1);

		FUZZ_CHECK(enc != NULL && dec != NULL);
		base64_encode(in, len, enc);
		FUZZ_CHECK(strlen(enc) == elen);
		n = base64_decode(enc, elen, dec);
		FUZZ_CHECK(n >= 0 && (size_t)n == len && memcmp(dec, in, len) == 0);
		free(enc);
		free(dec);
	}
}

static void fuzz_challenge_ok(const char *challenge)
{
	size_t len;

	FUZZ_CHECK(challenge != NULL);
	len = strlen(challenge);
	FUZZ_CHECK(len % 4 == 0);
	if (len > 0) {
		unsigned char tmp[64];
		FUZZ_CHECK(len / 4 * 3 <= sizeof(tmp) && base64_decode(challenge, len, tmp) >= 0);
	}
}

/* A heap copy of exactly len bytes (ASan sees an over-read) */
static char *fuzz_dup(const uint8_t *p, size_t len)
{
	char *c = malloc(len > 0 ? len : 1);

	FUZZ_CHECK(c != NULL);
	memcpy(c, p, len);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p, *end = data + size;
	struct sasl_exchange *x;
	enum sasl_result r;
	const char *challenge = NULL, *mech;
	char mech_buf[64];
	unsigned steps = 0;
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0];
	p = data + 1;

	/* base64 on every line of the input */
	for (const uint8_t *q = p; q < end;) {
		const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
		size_t n = (size_t)((nl != NULL ? nl : end) - q);
		char *line = fuzz_dup(q, n);

		fuzz_base64(line, n);
		free(line);
		q = nl != NULL ? nl + 1 : end;
	}

	switch (mode & 3) {
	case 0:
		mech = "PLAIN";
		break;
	case 1:
		mech = "login";
		break;
	default: {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);

		if (n >= sizeof(mech_buf))
			n = sizeof(mech_buf) - 1;
		memcpy(mech_buf, p, n);
		mech_buf[n] = '\0';
		p = nl != NULL ? nl + 1 : end;
		mech = mech_buf;
		break;
	}
	}

	x = sasl_new();
	FUZZ_CHECK(x != NULL);
	FUZZ_CHECK(sasl_mech_supported(mech) ==
		   (strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0));
	if (mode & 4) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);
		char *ir = fuzz_dup(p, n);

		r = sasl_start(x, mech, ir, n, &challenge);
		free(ir);
		p = nl != NULL ? nl + 1 : end;
	} else {
		r = sasl_start(x, mech, NULL, 0, &challenge);
	}
	for (;;) {
		FUZZ_CHECK(r == SASL_CONTINUE || r == SASL_DONE || r == SASL_FAIL);
		fuzz_challenge_ok(challenge);
		if (r == SASL_DONE) {
			size_t cl = strlen(sasl_authcid(x)), pl = strlen(sasl_password(x));

			FUZZ_CHECK(cl > 0 && cl <= AUTH_SASL_MAX);
			FUZZ_CHECK(pl > 0 && pl <= AUTH_SASL_MAX);
			FUZZ_CHECK(sasl_error(x) == SASL_ERR_NONE);
		}
		if (r == SASL_FAIL) {
			FUZZ_CHECK(sasl_error(x) != SASL_ERR_NONE);
			FUZZ_CHECK(sasl_error_text(sasl_error(x)) != NULL);
			FUZZ_CHECK(sasl_password(x)[0] == '\0');
		}
		if (p >= end || steps++ == FUZZ_SASL_STEPS_MAX)
			break;
		{
			const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = (size_t)((nl != NULL ? nl : end) - p);
			char *line = fuzz_dup(p, n);
			bool finished = r != SASL_CONTINUE;

			(void)sasl_is_cancel(line, n);
			r = sasl_step(x, line, n, &challenge);
			free(line);
			if (finished)
				FUZZ_CHECK(r == SASL_FAIL && sasl_error(x) == SASL_ERR_STATE);
			p = nl != NULL ? nl + 1 : end;
		}
	}
	sasl_free(x);
	sasl_free(NULL);
	return 0;
}
