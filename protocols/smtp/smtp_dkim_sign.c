/* The DKIM signer (RFC 6376 §5, RFC 8463 §3): the message arrives in chunks
 * of any size; the header block is kept (at most DKIM_HEADER_BLOCK_MAX),
 * the body is canonicalised and hashed as it passes and never kept.
 *
 * Memory: the signer owns its header buffer and digest context; finish()
 * hands the caller one malloc'ed string.  Nothing is static but tables. */
#include "dkim.h"
#include "smtp_dkim_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

/* RFC 6376 §5.4.1's list, plus the fields that say what the body is
 * (MIME-Version, Content-*) and who wrote it (Sender, Message-ID).
 * `once`: RFC 5322 §3.6 (RFC 2045 §4, §5.1, §6.1 for the MIME fields) allows
 * at most one, so the signature lists it once more than present and a
 * second one added on the way breaks it (RFC 6376 §8.15).  A message
 * without From is refused (RFC 6376 §5.4: From MUST be signed); other
 * absent fields are not listed. */
struct dkim_sign_field {
	const char *name;
	bool once;
};

static const struct dkim_sign_field dkim_sign_fields[] = {
	{ "From", true },
	{ "Sender", true },
	{ "Reply-To", true },
	{ "Subject", true },
	{ "Date", true },
	{ "To", true },
	{ "Cc", true },
	{ "Message-ID", true },
	{ "In-Reply-To", true },
	{ "References", true },
	{ "MIME-Version", true },
	{ "Content-Type", true },
	{ "Content-Transfer-Encoding", true },
	{ "Content-Disposition", true },
	{ "Resent-Date", false },
	{ "Resent-From", false },
	{ "Resent-Sender", false },
	{ "Resent-To", false },
	{ "Resent-Cc", false },
	{ "Resent-Message-ID", false },
	{ "List-Id", false },
	{ "List-Help", false },
	{ "List-Unsubscribe", false },
	{ "List-Unsubscribe-Post", false },
	{ "List-Subscribe", false },
	{ "List-Post", false },
	{ "List-Owner", false },
	{ "List-Archive", false },
};

#define DKIM_SIGN_FIELDS (sizeof(dkim_sign_fields) / sizeof(dkim_sign_fields[0]))
#define DKIM_ERROR_MAX 256

enum dkim_signer_state {
	DKIM_SIGNER_HEADER,  /* looking for the empty line */
	DKIM_SIGNER_BODY,
	DKIM_SIGNER_FAILED,
};

struct dkim_signer {
	const struct dkim_keys *keys;
	time_t now;
	enum dkim_signer_state state;
	struct buf hdr;         /* header block, then the fields point into it */
	size_t header_len;      /* header block length once the end is found */
	struct dkim_body_hash bh;
	char error[DKIM_ERROR_MAX];
};

static void dkim_signer_fail(struct dkim_signer *s, const char *why)
{
	s->state = DKIM_SIGNER_FAILED;
	str_copy(s->error, why, sizeof(s->error));
}

struct dkim_signer *dkim_signer_new(const struct dkim_keys *keys, time_t now)
{
	struct dkim_signer *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->keys = keys;
	s->now = now;
	/* the block, its empty line's CRLF, and the NUL of buf_cstr */
	buf_init(&s->hdr, DKIM_HEADER_BLOCK_MAX + 2 + 1);
	if (dkim_body_hash_init(&s->bh, DKIM_CANON_RELAXED, -1) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	buf_free(&s->hdr);
	dkim_body_hash_free(&s->bh);
	free(s);
}

const char *dkim_signer_error(const struct dkim_signer *s)
{
	return s->error[0] != '\0' ? s->error : "no error";
}

size_t dkim_find_body(const struct buf *b, size_t old_len)
{
	size_t i = old_len >= 3 ? old_len - 3 : 0;

	if (b->len >= 2 && b->data[0] == '\r' && b->data[1] == '\n')
		return 2;
	for (; i + 4 <= b->len; i++)
		if (memcmp(b->data + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return 0;
}

int dkim_signer_update(struct dkim_signer *s, const void *data, size_t len)
{
	const char *p = data;

	while (s->state == DKIM_SIGNER_HEADER && len > 0) {
		size_t room = DKIM_HEADER_BLOCK_MAX + 2 - s->hdr.len;
		size_t take = len < room ? len : room, old = s->hdr.len, body;

		if (take == 0) {
			dkim_signer_fail(s, "header block too large");
			return -1;
		}
		if (buf_append(&s->hdr, p, take) < 0) {
			dkim_signer_fail(s, "out of memory");
			return -1;
		}
		p += take;
		len -= take;
		body = dkim_find_body(&s->hdr, old);
		if (body > 0) {
			/* the block keeps its last field's CRLF, not the empty line */
			s->header_len = body - 2;
			dkim_body_hash_update(&s->bh, s->hdr.data + body, s->hdr.len - body);
			s->hdr.len = s->header_len;
			s->state = DKIM_SIGNER_BODY;
		}
	}
	if (s->state == DKIM_SIGNER_FAILED)
		return -1;
	if (len > 0)
		dkim_body_hash_update(&s->bh, p, len);
	return 0;
}

/* RFC 5322 §2.2.3: a line starting with WSP continues the field before. */
int dkim_header_split(const char *h, size_t len, struct dkim_field *f, size_t max, size_t *n_r)
{
	size_t pos = 0, n = 0;

	*n_r = 0;
	while (pos < len) {
		size_t end = pos;
		/* the field runs to a CRLF not followed by WSP */
		for (;;) {
			const char *crlf = NULL;
			for (size_t k = end; k + 1 < len; k++)
				if (h[k] == '\r' && h[k + 1] == '\n') {
					crlf = h + k;
					break;
				}
			if (crlf == NULL) {
				end = len;
				break;
			}
			end = (size_t)(crlf - h);
			if (end + 2 < len && (h[end + 2] == ' ' || h[end + 2] == '\t')) {
				end += 2;
				continue;
			}
			break;
		}
		if (n == max)
			return -1;
		const char *colon = memchr(h + pos, ':', end - pos);
		size_t name_len = colon != NULL ? (size_t)(colon - (h + pos)) : 0;
		while (name_len > 0 && (h[pos + name_len - 1] == ' ' || h[pos + name_len - 1] == '\t'))
			name_len--;
		f[n].off = pos;
		f[n].len = end - pos;
		f[n].name_len = name_len;
		n++;
		pos = end + 2 <= len ? end + 2 : len;
	}
	*n_r = n;
	return 0;
}

bool dkim_field_is(const char *h, const struct dkim_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(h + f->off, name, n) == 0;
}

/* h= and the canonical signed fields, bottom-up per name (RFC 6376
 * §5.4.2): the k-th listing of a name signs its k-th instance from the
 * bottom; a listing beyond the instances signs nothing (over-signing). */
static int dkim_select_fields(struct dkim_signer *s, const struct dkim_field *f, size_t n,
			      struct buf *hlist, struct buf *canon)
{
	const char *h = s->hdr.data;
	bool from = false;

	for (size_t i = 0; i < DKIM_SIGN_FIELDS; i++) {
		const struct dkim_sign_field *sf = &dkim_sign_fields[i];
		size_t listed = 0, present = 0;

		for (size_t k = 0; k < n; k++)
			if (dkim_field_is(h, &f[k], sf->name))
				present++;
		if (present == 0)
			continue;
		if (i == 0)
			from = true;
		for (size_t k = n; k > 0 && listed < DKIM_SIGN_INSTANCES_MAX; k--) {
			if (!dkim_field_is(h, &f[k - 1], sf->name))
				continue;
			if (dkim_canon_header(DKIM_CANON_RELAXED, h + f[k - 1].off, f[k - 1].len,
					      canon) < 0 ||
			    buf_appendf(hlist, "%s%s", hlist->len > 0 ? ":" : "", sf->name) < 0)
				return -1;
			listed++;
		}
		/* the extra listing must name no instance: when the cap left
		 * some unsigned, a verifier would hash the next one */
		if (sf->once && listed == present && buf_appendf(hlist, ":%s", sf->name) < 0)
			return -1;
	}
	if (!from) {
		dkim_signer_fail(s, "no From header field (RFC 6376 §5.4)");
		return -1;
	}
	return 0;
}

/* Folding writer for one header field: tokens go on the current line while
 * it stays within DKIM_LINE_WIDTH, else after CRLF TAB. */
struct dkim_fold {
	struct buf *out;
	size_t col;
};

static int dkim_fold_token(struct dkim_fold *fw, const char *tok, size_t len, bool space)
{
	if (fw->col + (space ? 1 : 0) + len > DKIM_LINE_WIDTH && fw->col > 1) {
		if (buf_append(fw->out, "\r\n\t", 3) < 0)
			return -1;
		fw->col = 8;
	} else if (space) {
		if (buf_putc(fw->out, ' ') < 0)
			return -1;
		fw->col++;
	}
	if (buf_append(fw->out, tok, len) < 0)
		return -1;
	fw->col += len;
	return 0;
}

static int dkim_fold_tokenf(struct dkim_fold *fw, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int dkim_fold_tokenf(struct dkim_fold *fw, const char *fmt, ...)
{
	char tok[DKIM_DOMAIN_MAX + 16];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tok, sizeof(tok), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tok))
		return -1;
	return dkim_fold_token(fw, tok, (size_t)n, true);
}

/* The h= list folds after its colons, which the tag syntax allows
 * (RFC 6376 §3.5 sig-h-tag: [FWS] ":" [FWS]). */
static int dkim_fold_hlist(struct dkim_fold *fw, const struct buf *hl)
{
	size_t pos = 0;
	bool first = true;

	while (pos < hl->len) {
		const char *colon = memchr(hl->data + pos, ':', hl->len - pos);
		size_t end = colon != NULL ? (size_t)(colon - hl->data) + 1 : hl->len;
		char tok[64];
		size_t tlen = 0;
		if (first) {
			memcpy(tok, "h=", 2);
			tlen = 2;
		}
		if (end - pos + tlen + 1 > sizeof(tok))
			return -1;
		memcpy(tok + tlen, hl->data + pos, end - pos);
		tlen += end - pos;
		if (colon == NULL)
			tok[tlen++] = ';';
		if (dkim_fold_token(fw, tok, tlen, first) < 0)
			return -1;
		first = false;
		pos = end;
	}
	return 0;
}

static char *dkim_base64(const unsigned char *data, size_t len)
{
	char *out = malloc(base64_encoded_len(len) + 1);

	if (out != NULL)
		base64_encode(data, len, out);
	return out;
}

int dkim_alg_input(enum dkim_alg alg, const struct buf *data, unsigned char digest[DKIM_HASH_LEN],
		   const unsigned char **in_r, size_t *len_r, const EVP_MD **md_r)
{
	unsigned int n = 0;

	*in_r = (const unsigned char *)data->data;
	*len_r = data->len;
	*md_r = EVP_sha256();
	if (alg != DKIM_ALG_ED25519_SHA256)
		return 0;
	if (EVP_Digest(data->data, data->len, digest, &n, EVP_sha256(), NULL) != 1)
		return -1;
	*in_r = digest;
	*len_r = n;
	*md_r = NULL; /* PureEd25519 hashes by itself */
	return 0;
}

/* Signature over the canonical header data: RSASSA-PKCS1-v1_5 with SHA-256
 * (RFC 6376 §3.3.1), or PureEd25519 over the SHA-256 of the data (RFC 8463
 * §3).  Returns the base64 text (malloc'ed) or NULL. */
static char *dkim_sign_data(EVP_PKEY *pkey, enum dkim_alg alg, const struct buf *data)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char digest[DKIM_HASH_LEN], *sig = NULL;
	const unsigned char *in;
	const EVP_MD *md;
	size_t inlen, siglen = 0;
	char *text = NULL;

	if (ctx == NULL)
		return NULL;
	if (dkim_alg_input(alg, data, digest, &in, &inlen, &md) < 0 ||
	    EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, in, inlen) != 1)
		goto out;
	sig = malloc(siglen);
	if (sig == NULL || EVP_DigestSign(ctx, sig, &siglen, in, inlen) != 1)
		goto out;
	text = dkim_base64(sig, siglen);
out:
	free(sig);
	EVP_MD_CTX_free(ctx);
	return text;
}

/* One DKIM-Signature field for key i, appended to out with its CRLF. */
static int dkim_sign_one(struct dkim_signer *s, size_t i, const char *bh, const struct buf *hlist,
			 const struct buf *canon, struct buf *out)
{
	struct buf field, data;
	struct dkim_fold fw = { &field, 0 };
	enum dkim_alg alg = dkim_keys_alg(s->keys, i);
	char *b = NULL;
	int rc = -1;

	buf_init(&field, DKIM_SIGNATURE_MAX);
	buf_init(&data, DKIM_HEADER_BLOCK_MAX + DKIM_SIGNATURE_MAX + DKIM_HEADERS_MAX * 2);
	if (buf_append(&field, "DKIM-Signature:", 15) < 0)
		goto out;
	fw.col = 15;
	if (dkim_fold_tokenf(&fw, "v=1;") < 0 || dkim_fold_tokenf(&fw, "a=%s;", dkim_alg_name(alg)) < 0 ||
	    dkim_fold_tokenf(&fw, "c=relaxed/relaxed;") < 0 ||
	    dkim_fold_tokenf(&fw, "d=%s;", dkim_keys_domain(s->keys)) < 0 ||
	    dkim_fold_tokenf(&fw, "s=%s;", dkim_keys_selector(s->keys, i)) < 0 ||
	    dkim_fold_tokenf(&fw, "t=%lld;", (long long)s->now) < 0 ||
	    dkim_fold_tokenf(&fw, "bh=%s;", bh) < 0)
		goto out;
	if (dkim_fold_hlist(&fw, hlist) < 0)
		goto out;
	if (dkim_fold_token(&fw, "b=", 2, true) < 0)
		goto out;
	/* RFC 6376 §3.7: the signed fields, then this field canonicalised with
	 * an empty b= and without its CRLF. */
	if (buf_append(&data, canon->data, canon->len) < 0 ||
	    dkim_canon_header(DKIM_CANON_RELAXED, field.data, field.len, &data) < 0)
		goto out;
	data.len -= 2;
	b = dkim_sign_data(dkim_keys_pkey(s->keys, i), alg, &data);
	if (b == NULL) {
		dkim_signer_fail(s, "signing failed (OpenSSL)");
		goto out;
	}
	/* b= folds inside its base64 (§3.5 base64string allows FWS); the
	 * verifier deletes the value with all its whitespace (§3.7). */
	for (size_t pos = 0, blen = strlen(b); pos < blen;) {
		size_t take = DKIM_LINE_WIDTH > fw.col ? DKIM_LINE_WIDTH - fw.col : 0;
		if (take == 0) {
			if (buf_append(&field, "\r\n\t", 3) < 0)
				goto out;
			fw.col = 8;
			continue;
		}
		if (take > blen - pos)
			take = blen - pos;
		if (buf_append(&field, b + pos, take) < 0)
			goto out;
		fw.col += take;
		pos += take;
	}
	if (buf_append(&field, "\r\n", 2) < 0 || buf_append(out, field.data, field.len) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0 && s->state != DKIM_SIGNER_FAILED)
		dkim_signer_fail(s, "signature too long");
	free(b);
	buf_free(&field);
	buf_free(&data);
	return rc;
}

int dkim_signer_finish(struct dkim_signer *s, char **sig_r, size_t *len_r)
{
	struct dkim_field *fields = NULL;
	struct buf hlist, canon, out;
	unsigned char hash[DKIM_HASH_LEN];
	char bh[64];
	size_t n = 0;
	int rc = -1;

	*sig_r = NULL;
	*len_r = 0;
	if (s->state == DKIM_SIGNER_FAILED)
		return -1;
	if (s->state == DKIM_SIGNER_HEADER) /* no empty line: all header */
		s->header_len = s->hdr.len;
	s->state = DKIM_SIGNER_BODY;
	buf_init(&hlist, DKIM_SIGNATURE_MAX);
	buf_init(&canon, DKIM_HEADER_BLOCK_MAX + DKIM_HEADERS_MAX * 2);
	buf_init(&out, DKIM_SIGNATURE_MAX * DKIM_KEYS_MAX + 1);
	if (dkim_body_hash_final(&s->bh, hash) < 0) {
		dkim_signer_fail(s, "body hash failed (OpenSSL)");
		goto out;
	}
	base64_encode(hash, sizeof(hash), bh);
	fields = calloc(DKIM_HEADERS_MAX, sizeof(*fields));
	if (fields == NULL) {
		dkim_signer_fail(s, "out of memory");
		goto out;
	}
	if (dkim_header_split(s->hdr.data, s->header_len, fields, DKIM_HEADERS_MAX, &n) < 0) {
		dkim_signer_fail(s, "too many header fields");
		goto out;
	}
	if (dkim_select_fields(s, fields, n, &hlist, &canon) < 0) {
		if (s->state != DKIM_SIGNER_FAILED)
			dkim_signer_fail(s, "header fields too large");
		goto out;
	}
	for (size_t i = 0; i < dkim_keys_count(s->keys); i++)
		if (dkim_sign_one(s, i, bh, &hlist, &canon, &out) < 0)
			goto out;
	if (buf_cstr(&out) < 0) {
		dkim_signer_fail(s, "out of memory");
		goto out;
	}
	*sig_r = out.data;
	*len_r = out.len;
	out.data = NULL;
	rc = 0;
out:
	if (rc < 0)
		s->state = DKIM_SIGNER_FAILED;
	free(fields);
	buf_free(&hlist);
	buf_free(&canon);
	buf_free(&out);
	return rc;
}

int dkim_sign(const struct dkim_keys *keys, time_t now, const void *msg, size_t len,
	      char **sig_r, size_t *len_r, char *err, size_t errlen)
{
	struct dkim_signer *s = dkim_signer_new(keys, now);
	int rc;

	*sig_r = NULL;
	*len_r = 0;
	if (s == NULL) {
		snprintf(err, errlen, "dkim: out of memory");
		return -1;
	}
	rc = dkim_signer_update(s, msg, len);
	if (rc == 0)
		rc = dkim_signer_finish(s, sig_r, len_r);
	if (rc < 0)
		snprintf(err, errlen, "dkim: %s", dkim_signer_error(s));
	dkim_signer_free(s);
	return rc;
}
