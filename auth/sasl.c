/* SASL server side of PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login-00), one small state machine per exchange:
 *
 *   NEW --start PLAIN, no IR--> PLAIN --step--> DONE | FAILED
 *   NEW --start PLAIN + IR-----------------> DONE | FAILED
 *   NEW --start LOGIN, no IR--> LOGIN_USER --step--> LOGIN_PASS --step--> DONE
 *   NEW --start LOGIN + IR (the user name)-> LOGIN_PASS ...
 *   anything malformed -> FAILED; a step in DONE or FAILED -> FAILED
 *
 * Rules applied to every client message:
 *   - strict base64 (core/base64.c); "=" alone is an empty message;
 *   - at most AUTH_SASL_MAX decoded bytes, refused before decoding;
 *   - PLAIN: exactly two NULs; authcid and password not empty; authzid
 *     empty or equal to authcid (case-insensitively, as addresses compare):
 *     we do not offer proxy login, so any other authzid fails;
 *   - authcid (and authzid) valid UTF-8 without control characters
 *     (RFC 4616 §2 SAFE); the password may hold any byte but NUL, since
 *     older clients send passwords in legacy charsets;
 *   - LOGIN: user name and password not empty and without NUL.
 * Memory: the exchange is one heap block; the password and the decode
 * buffer are wiped on failure, on restart and when it is freed.
 */
#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

/* base64("Username:") and base64("Password:"), the draft's challenges. */
#define SASL_LOGIN_USER_CHALLENGE "VXNlcm5hbWU6"
#define SASL_LOGIN_PASS_CHALLENGE "UGFzc3dvcmQ6"
/* Longest base64 text that can hold AUTH_SASL_MAX bytes. */
#define SASL_ENCODED_MAX ((AUTH_SASL_MAX + 2) / 3 * 4)

enum sasl_state {
	SASL_STATE_NEW,
	SASL_STATE_PLAIN,
	SASL_STATE_LOGIN_USER,
	SASL_STATE_LOGIN_PASS,
	SASL_STATE_DONE,
	SASL_STATE_FAILED,
};

struct sasl_exchange {
	enum sasl_state state;
	enum sasl_error error;
	char authcid[AUTH_SASL_MAX + 1];
	char password[AUTH_SASL_MAX + 1];
	unsigned char buf[SASL_ENCODED_MAX / 4 * 3 + 1];
};

struct sasl_exchange *sasl_new(void)
{
	return calloc(1, sizeof(struct sasl_exchange));
}

static void sasl_wipe(struct sasl_exchange *x)
{
	explicit_bzero(x->password, sizeof(x->password));
	explicit_bzero(x->buf, sizeof(x->buf));
}

void sasl_free(struct sasl_exchange *x)
{
	if (x == NULL)
		return;
	sasl_wipe(x);
	explicit_bzero(x->authcid, sizeof(x->authcid));
	free(x);
}

bool sasl_mech_supported(const char *mech)
{
	return strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0;
}

bool sasl_is_cancel(const char *line, size_t len)
{
	return len == 1 && line[0] == '*';
}

const char *sasl_authcid(const struct sasl_exchange *x)
{
	return x->authcid;
}

const char *sasl_password(const struct sasl_exchange *x)
{
	return x->state == SASL_STATE_DONE ? x->password : "";
}

enum sasl_error sasl_error(const struct sasl_exchange *x)
{
	return x->error;
}

const char *sasl_error_text(enum sasl_error error)
{
	switch (error) {
	case SASL_ERR_NONE: return "no error";
	case SASL_ERR_MECH: return "unsupported mechanism";
	case SASL_ERR_BASE64: return "malformed base64";
	case SASL_ERR_SYNTAX: return "malformed SASL message";
	case SASL_ERR_AUTHZID: return "authorization identity not permitted";
	case SASL_ERR_TOO_LONG: return "SASL message too long";
	case SASL_ERR_STATE: return "SASL exchange already finished";
	}
	return "?";
}

static enum sasl_result fail(struct sasl_exchange *x, enum sasl_error error,
			     const char **challenge_r)
{
	sasl_wipe(x);
	x->state = SASL_STATE_FAILED;
	x->error = error;
	*challenge_r = "";
	return SASL_FAIL;
}

/* Decode into x->buf; -1 with x->error set. */
static int decode(struct sasl_exchange *x, const char *data, size_t len, size_t *n_r)
{
	long n;

	if (len == 1 && data[0] == '=') {
		*n_r = 0;
		return 0;
	}
	if (len > SASL_ENCODED_MAX) {
		x->error = SASL_ERR_TOO_LONG;
		return -1;
	}
	/* An embedded NUL is no base64 character: the decoder rejects it. */
	n = base64_decode(data, len, x->buf);
	if (n < 0) {
		x->error = SASL_ERR_BASE64;
		return -1;
	}
	if ((size_t)n > AUTH_SASL_MAX) {
		x->error = SASL_ERR_TOO_LONG;
		return -1;
	}
	*n_r = (size_t)n;
	return 0;
}

/* UTF-8 (RFC 3629: no overlongs, surrogates or code points above
 * U+10FFFF) without C0 controls or DEL. */
static bool safe_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		uint32_t cp;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += need + 1;
	}
	return true;
}

/* RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static enum sasl_result plain_message(struct sasl_exchange *x, size_t n,
				      const char **challenge_r)
{
	const unsigned char *b = x->buf, *nul1, *nul2, *authcid, *pass;
	size_t zlen, clen, plen;

	nul1 = memchr(b, '\0', n);
	if (nul1 == NULL)
		return fail(x, SASL_ERR_SYNTAX, challenge_r);
	nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - b));
	if (nul2 == NULL)
		return fail(x, SASL_ERR_SYNTAX, challenge_r);
	authcid = nul1 + 1;
	pass = nul2 + 1;
	zlen = (size_t)(nul1 - b);
	clen = (size_t)(nul2 - authcid);
	plen = n - (size_t)(pass - b);
	if (memchr(pass, '\0', plen) != NULL || clen == 0 || plen == 0 ||
	    !safe_utf8(b, zlen) || !safe_utf8(authcid, clen))
		return fail(x, SASL_ERR_SYNTAX, challenge_r);
	if (zlen > 0 && (zlen != clen || strncasecmp((const char *)b,
						     (const char *)authcid, clen) != 0))
		return fail(x, SASL_ERR_AUTHZID, challenge_r);
	memcpy(x->authcid, authcid, clen);
	x->authcid[clen] = '\0';
	memcpy(x->password, pass, plen);
	x->password[plen] = '\0';
	explicit_bzero(x->buf, sizeof(x->buf));
	x->state = SASL_STATE_DONE;
	*challenge_r = "";
	return SASL_DONE;
}

static enum sasl_result login_field(struct sasl_exchange *x, size_t n,
				    const char **challenge_r)
{
	bool user = x->state == SASL_STATE_LOGIN_USER;

	if (n == 0 || memchr(x->buf, '\0', n) != NULL || (user && !safe_utf8(x->buf, n)))
		return fail(x, SASL_ERR_SYNTAX, challenge_r);
	if (user) {
		memcpy(x->authcid, x->buf, n);
		x->authcid[n] = '\0';
		x->state = SASL_STATE_LOGIN_PASS;
		*challenge_r = SASL_LOGIN_PASS_CHALLENGE;
		return SASL_CONTINUE;
	}
	memcpy(x->password, x->buf, n);
	x->password[n] = '\0';
	explicit_bzero(x->buf, sizeof(x->buf));
	x->state = SASL_STATE_DONE;
	*challenge_r = "";
	return SASL_DONE;
}

static enum sasl_result feed(struct sasl_exchange *x, const char *data, size_t len,
			     const char **challenge_r)
{
	size_t n;

	if (decode(x, data, len, &n) < 0)
		return fail(x, x->error, challenge_r);
	if (x->state == SASL_STATE_PLAIN)
		return plain_message(x, n, challenge_r);
	return login_field(x, n, challenge_r);
}

enum sasl_result sasl_start(struct sasl_exchange *x, const char *mech,
			    const char *initial_response, size_t ir_len,
			    const char **challenge_r)
{
	sasl_wipe(x);
	x->authcid[0] = '\0';
	x->error = SASL_ERR_NONE;
	if (strcasecmp(mech, "PLAIN") == 0) {
		x->state = SASL_STATE_PLAIN;
		/* RFC 4422 §5: an empty challenge asks for the message. */
		*challenge_r = "";
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		x->state = SASL_STATE_LOGIN_USER;
		*challenge_r = SASL_LOGIN_USER_CHALLENGE;
	} else {
		return fail(x, SASL_ERR_MECH, challenge_r);
	}
	if (initial_response == NULL)
		return SASL_CONTINUE;
	return feed(x, initial_response, ir_len, challenge_r);
}

enum sasl_result sasl_step(struct sasl_exchange *x, const char *line,
			   size_t len, const char **challenge_r)
{
	if (x->state != SASL_STATE_PLAIN && x->state != SASL_STATE_LOGIN_USER &&
	    x->state != SASL_STATE_LOGIN_PASS)
		return fail(x, SASL_ERR_STATE, challenge_r);
	return feed(x, line, len, challenge_r);
}
