/* DKIM canonicalisation, RFC 6376 §3.4, shared by the signer and (later)
 * the verifier.  No allocation here but what the caller's struct buf does;
 * the body canonicaliser works in place over any chunking, byte by byte,
 * so its output cannot depend on where the chunks were split. */
#include "dkim.h"

#include <string.h>

static bool dkim_is_wsp(char c)
{
	return c == ' ' || c == '\t'; /* RFC 5234 WSP */
}

static char dkim_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* §3.4.2: lower-case the name, unfold (drop every CRLF), every WSP run to
 * one SP, no WSP at the end of the value nor around the colon. */
static int dkim_canon_header_relaxed(const char *f, size_t len, struct buf *out)
{
	const char *colon = memchr(f, ':', len);
	size_t name_end, i;
	bool wsp = false, started = false;

	if (colon == NULL) /* not a field; keep it as relaxed as we can */
		colon = f + len;
	name_end = (size_t)(colon - f);
	while (name_end > 0 && dkim_is_wsp(f[name_end - 1]))
		name_end--;
	for (i = 0; i < name_end; i++)
		if (buf_putc(out, dkim_lower(f[i])) < 0)
			return -1;
	if (buf_putc(out, ':') < 0)
		return -1;
	for (i = (size_t)(colon - f) + 1; i < len; i++) {
		char c = f[i];
		if (c == '\r' && i + 1 < len && f[i + 1] == '\n') {
			i++; /* unfold: the CRLF goes, the WSP after it stays */
			continue;
		}
		if (dkim_is_wsp(c)) {
			wsp = true;
			continue;
		}
		if (wsp && started && buf_putc(out, ' ') < 0)
			return -1;
		wsp = false;
		started = true;
		if (buf_putc(out, c) < 0)
			return -1;
	}
	return buf_append(out, "\r\n", 2);
}

int dkim_canon_header(enum dkim_canon canon, const char *field, size_t len, struct buf *out)
{
	if (canon == DKIM_CANON_RELAXED)
		return dkim_canon_header_relaxed(field, len, out);
	/* §3.4.1: not changed in any way */
	if (buf_append(out, field, len) < 0)
		return -1;
	return buf_append(out, "\r\n", 2);
}

/* ---- body -------------------------------------------------------------- */

static void dkim_body_flush(struct dkim_body_canon *bc)
{
	if (bc->out_len > 0) {
		bc->sink(bc->sink_ctx, bc->out, bc->out_len);
		bc->out_len = 0;
	}
}

static void dkim_body_put(struct dkim_body_canon *bc, char c)
{
	if (bc->out_len == sizeof(bc->out))
		dkim_body_flush(bc);
	bc->out[bc->out_len++] = c;
	bc->emitted = true;
}

static void dkim_body_crlf(struct dkim_body_canon *bc)
{
	dkim_body_put(bc, '\r');
	dkim_body_put(bc, '\n');
}

/* A content byte of the current line: the empty lines held back were not
 * trailing after all, and a held WSP run becomes one SP (relaxed). */
static void dkim_body_content(struct dkim_body_canon *bc, char c)
{
	if (!bc->in_line) {
		for (; bc->empty_lines > 0; bc->empty_lines--)
			dkim_body_crlf(bc);
		bc->in_line = true;
	}
	if (bc->wsp) {
		dkim_body_put(bc, ' ');
		bc->wsp = false;
	}
	dkim_body_put(bc, c);
}

/* CRLF: a line with content ends now; an empty one (relaxed: WSP only, the
 * WSP at a line's end being dropped) is held back. */
static void dkim_body_eol(struct dkim_body_canon *bc)
{
	bc->wsp = false;
	if (bc->in_line) {
		dkim_body_crlf(bc);
		bc->in_line = false;
	} else {
		bc->empty_lines++;
	}
}

void dkim_body_canon_init(struct dkim_body_canon *bc, enum dkim_canon canon,
			  dkim_sink_fn *sink, void *sink_ctx)
{
	memset(bc, 0, offsetof(struct dkim_body_canon, out));
	bc->canon = canon;
	bc->sink = sink;
	bc->sink_ctx = sink_ctx;
}

void dkim_body_canon_update(struct dkim_body_canon *bc, const void *data, size_t len)
{
	const char *p = data;
	bool relaxed = bc->canon == DKIM_CANON_RELAXED;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (bc->cr) {
			bc->cr = false;
			if (c == '\n') {
				dkim_body_eol(bc);
				continue;
			}
			dkim_body_content(bc, '\r'); /* a lone CR is content */
		}
		if (c == '\r')
			bc->cr = true;
		else if (relaxed && dkim_is_wsp(c))
			bc->wsp = true;
		else
			dkim_body_content(bc, c);
	}
}

void dkim_body_canon_finish(struct dkim_body_canon *bc)
{
	if (bc->cr) {
		bc->cr = false;
		dkim_body_content(bc, '\r');
	}
	/* A last line without CRLF gets one (§3.4.3, §3.4.4); its trailing WSP
	 * goes as at any line end, so the hash is the one a verifier computes
	 * after SMTP added that CRLF (RFC 5321 §4.1.1.4).  (dkimpy keeps such
	 * WSP when it verifies a message that still lacks the CRLF.) */
	if (bc->in_line)
		dkim_body_eol(bc);
	/* §3.4.3: simple turns an empty body (or one of empty lines only)
	 * into one CRLF; §3.4.4: relaxed leaves it empty. */
	if (bc->canon == DKIM_CANON_SIMPLE && !bc->emitted)
		dkim_body_crlf(bc);
	bc->empty_lines = 0;
	dkim_body_flush(bc);
}

/* ---- body hash --------------------------------------------------------- */

static void dkim_body_hash_sink(void *ctx, const char *data, size_t len)
{
	struct dkim_body_hash *bh = ctx;
	size_t take = len;

	bh->canonical_len += len;
	if (bh->limit >= 0) {
		uint64_t room = (uint64_t)bh->limit - bh->hashed_len;
		if (take > room)
			take = (size_t)room;
	}
	if (take > 0 && EVP_DigestUpdate(bh->md, data, take) != 1)
		bh->failed = true;
	bh->hashed_len += take;
}

int dkim_body_hash_init(struct dkim_body_hash *bh, enum dkim_canon canon, int64_t limit)
{
	memset(bh, 0, sizeof(*bh));
	bh->limit = limit < 0 ? -1 : limit;
	bh->md = EVP_MD_CTX_new();
	if (bh->md == NULL || EVP_DigestInit_ex(bh->md, EVP_sha256(), NULL) != 1) {
		dkim_body_hash_free(bh);
		return -1;
	}
	dkim_body_canon_init(&bh->canon, canon, dkim_body_hash_sink, bh);
	return 0;
}

void dkim_body_hash_update(struct dkim_body_hash *bh, const void *data, size_t len)
{
	dkim_body_canon_update(&bh->canon, data, len);
}

int dkim_body_hash_final(struct dkim_body_hash *bh, unsigned char hash[DKIM_HASH_LEN])
{
	unsigned int n = 0;

	if (bh->md == NULL)
		return -1;
	dkim_body_canon_finish(&bh->canon);
	if (bh->failed || EVP_DigestFinal_ex(bh->md, hash, &n) != 1 || n != DKIM_HASH_LEN)
		return -1;
	return 0;
}

void dkim_body_hash_free(struct dkim_body_hash *bh)
{
	EVP_MD_CTX_free(bh->md);
	bh->md = NULL;
}
