/* Message metadata computed once at delivery (md_meta_private.h): the
 * structure scan (md_mime.c), ENVELOPE (md_env.c), BODY and BODYSTRUCTURE
 * (md_bstruct.c), and here the BINARY sizes (RFC 3516).
 *
 * BINARY of a part is its content with the Content-Transfer-Encoding
 * undone (RFC 3516 §4.2); for a multipart or message/rfc822 part the
 * encoded parts inside are decoded and their headers get
 * "Content-Transfer-Encoding: binary" in place of the old field, as
 * Dovecot sends it.  A part whose encoding is not one of RFC 2045 §6.1's
 * gives NO [UNKNOWN-CTE] (RFC 3516 §4.3); base64 or quoted-printable that
 * cannot be decoded gives NO [PARSE].  Both are judged for the part
 * itself and everything inside it (md_meta_binary_status()); Dovecot
 * instead fails BINARY.SIZE of every part when any part of the message is
 * broken, which RFC 3516 §4.2 does not allow (tests/integration/
 * corpus_meta.py lists those answers).
 *
 * Sizes: 7bit, 8bit and binary parts count their stored octets; decoded
 * quoted-printable ends lines with CRLF (a bare LF becomes CRLF), decoded
 * base64 is the octets it encodes.
 *
 * The POP3 size (md_pop3_size(), store.h) is computed here too, at
 * delivery, so that POP3 LIST and STAT never read a file; and the
 * References field THREAD=REFERENCES needs (RFC 5256 §2.2), so that
 * THREAD never reads one either (ENVELOPE has the rest).
 *
 * Memory: the returned strings and part array are heap blocks owned by
 * struct md_meta (md_meta_free); scratch is freed before returning.
 */
#include "md_meta_int.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

/* "Content-Transfer-Encoding: binary\r\n" replaces a decoded part's field */
#define MD_META_CTE_BINARY_LINE "Content-Transfer-Encoding: binary\r\n"
/* RFC 2045 §6.7: a quoted-printable line has at most 76 characters, so a
 * longer run of whitespace cannot be trailing whitespace to drop */
#define MD_META_QP_WS_MAX 76

/* ------------------------------------------------------------------ */
/* Transfer encodings */

/* The encoding BINARY undoes: the last Content-Transfer-Encoding field,
 * read as its first line only (a folded one is not understood), whether
 * or not the part counts as MIME. */
static enum md_cte md_meta_cte(const char *msg, const struct md_part *p,
			       size_t *cte_fields_len)
{
	enum md_cte cte = MD_CTE_7BIT;
	struct md_hdr_iter it;
	struct md_field f;

	*cte_fields_len = 0;
	md_mime_hdr_init(&it, msg, p->header_off, p->header_len);
	while (md_mime_hdr_next(&it, &f) > 0) {
		struct md_rfc822 r;
		struct buf tok;

		if (!md_mime_field_is(msg, &f, "Content-Transfer-Encoding"))
			continue;
		*cte_fields_len += f.next - f.start;
		cte = MD_CTE_UNKNOWN;
		if (f.folded)
			continue;
		buf_init(&tok, 64);
		md_rfc822_init(&r, msg + f.value_off, f.first_end - f.value_off,
			       NULL);
		md_rfc822_skip_lwsp(&r);
		(void)md_rfc822_mime_token(&r, &tok);
		if (tok.len == 4 && (strncasecmp(tok.data, "7bit", 4) == 0))
			cte = MD_CTE_7BIT;
		else if (tok.len == 4 && strncasecmp(tok.data, "8bit", 4) == 0)
			cte = MD_CTE_8BIT;
		else if (tok.len == 6 && strncasecmp(tok.data, "binary", 6) == 0)
			cte = MD_CTE_BINARY;
		else if (tok.len == 6 && strncasecmp(tok.data, "base64", 6) == 0)
			cte = MD_CTE_BASE64;
		else if (tok.len == 16 &&
			 strncasecmp(tok.data, "quoted-printable", 16) == 0)
			cte = MD_CTE_QP;
		buf_free(&tok);
	}
	return cte;
}

static bool md_meta_is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2045 §6.8 base64: whitespace anywhere is ignored, '=' padding ends
 * the data and only whitespace may follow it, and the data must end on a
 * quantum boundary.  Returns -1 when broken. */
static int md_meta_base64_size(const unsigned char *s, size_t n,
			       uint64_t *size_r)
{
	uint64_t out = 0;
	unsigned int sub = 0;
	size_t i = 0;

	for (; i < n; i++) {
		if (md_meta_is_ws(s[i]))
			continue;
		if (s[i] == '=')
			break;
		if (base64_value(s[i]) < 0)
			return -1;
		if (sub > 0)
			out++;
		sub = (sub + 1) % 4;
	}
	if (i < n) {
		/* padding: "==" after two symbols, "=" after three */
		if (sub < 2)
			return -1;
		i++;
		if (sub == 2) {
			while (i < n && md_meta_is_ws(s[i]))
				i++;
			if (i == n || s[i] != '=')
				return -1;
			i++;
		}
		sub = 0;
		for (; i < n; i++) {
			if (!md_meta_is_ws(s[i]))
				return -1;
		}
	}
	if (sub != 0)
		return -1;
	*size_r = out;
	return 0;
}

enum md_meta_qp_state {
	MD_QP_TEXT,
	MD_QP_WS,
	MD_QP_EQ,
	MD_QP_EQ_WS,
	MD_QP_HEX2,
	MD_QP_CR,
	MD_QP_SOFTCR,
};

static bool md_meta_is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
		(c >= 'a' && c <= 'f');
}

/* RFC 2045 §6.7 quoted-printable: trailing whitespace is dropped, a bare
 * LF becomes CRLF, lowercase hex is accepted; "=" not followed by two hex
 * digits or a line break is an error (rule 1), as is a CR without LF. */
static int md_meta_qp_size(const unsigned char *s, size_t n, uint64_t *size_r)
{
	enum md_meta_qp_state st = MD_QP_TEXT;
	uint64_t out = 0, ws = 0;
	bool bad = false;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];

		switch (st) {
		case MD_QP_TEXT:
			if (c == '=')
				st = MD_QP_EQ;
			else if (c == '\r')
				st = MD_QP_CR;
			else if (c == '\n')
				out += 2;
			else if (c == ' ' || c == '\t') {
				ws = 1;
				st = MD_QP_WS;
			} else
				out++;
			break;
		case MD_QP_WS:
			if (c == ' ' || c == '\t') {
				if (ws <= MD_META_QP_WS_MAX)
					ws++;
			} else if (c == '\r') {
				st = MD_QP_CR;
			} else if (c == '\n') {
				out += 2;
				ws = 0;
				st = MD_QP_TEXT;
			} else {
				if (ws > MD_META_QP_WS_MAX)
					bad = true;
				out += ws;
				ws = 0;
				st = MD_QP_TEXT;
				continue; /* c again as text */
			}
			break;
		case MD_QP_EQ:
			if (md_meta_is_hex(c)) {
				st = MD_QP_HEX2;
			} else if (c == ' ' || c == '\t') {
				ws = 1;
				st = MD_QP_EQ_WS;
			} else if (c == '\r') {
				st = MD_QP_SOFTCR;
			} else if (c == '\n') {
				st = MD_QP_TEXT;
			} else {
				bad = true;
				out++;
				st = MD_QP_TEXT;
				continue;
			}
			break;
		case MD_QP_HEX2:
			if (md_meta_is_hex(c)) {
				out++;
				st = MD_QP_TEXT;
			} else {
				bad = true;
				out += 2;
				st = MD_QP_TEXT;
				continue;
			}
			break;
		case MD_QP_EQ_WS:
			if (c == ' ' || c == '\t') {
				if (ws <= MD_META_QP_WS_MAX)
					ws++;
			} else if (c == '\r') {
				st = MD_QP_SOFTCR;
			} else if (c == '\n') {
				ws = 0;
				st = MD_QP_TEXT;
			} else {
				bad = true;
				out += 1 + ws;
				ws = 0;
				st = MD_QP_TEXT;
				continue;
			}
			break;
		case MD_QP_CR:
		case MD_QP_SOFTCR:
			if (c == '\n') {
				if (st == MD_QP_CR)
					out += 2;
				ws = 0;
				st = MD_QP_TEXT;
			} else {
				bad = true;
				out += ws + (st == MD_QP_SOFTCR ? 2 : 1);
				ws = 0;
				st = MD_QP_TEXT;
				continue;
			}
			break;
		}
		i++;
	}
	if (st != MD_QP_TEXT && st != MD_QP_WS)
		bad = true;
	if (bad)
		return -1;
	*size_r = out;
	return 0;
}

/* ------------------------------------------------------------------ */
/* BINARY sizes */

enum md_meta_bin {
	MD_BIN_OK,
	MD_BIN_PARSE,
	MD_BIN_UNKNOWN,
};

/* Per part during the computation */
struct md_meta_bin_part {
	uint64_t hdr;   /* binary header size */
	uint64_t body;  /* binary body size */
	uint8_t status; /* enum md_meta_bin of the part and its subtree */
};

static int md_meta_binary(const char *msg, struct md_scan *scan)
{
	struct md_meta_bin_part *b;
	uint32_t i, n = scan->n_parts;

	b = calloc(n, sizeof(*b));
	if (b == NULL)
		return -1;
	/* children always come after their parent in the array, so a
	 * backwards sweep sees every subtree complete */
	for (i = n; i-- > 0;) {
		struct md_part *p = &scan->parts[i];
		size_t cte_len;
		enum md_cte cte = md_meta_cte(msg, p, &cte_len);
		bool converted = cte == MD_CTE_BASE64 || cte == MD_CTE_QP;
		uint32_t c;

		p->cte = (uint8_t)cte;
		b[i].status = cte == MD_CTE_UNKNOWN ? MD_BIN_UNKNOWN : MD_BIN_OK;
		b[i].hdr = p->header_len;
		if (converted)
			b[i].hdr = p->header_len - cte_len +
				strlen(MD_META_CTE_BINARY_LINE);
		if (p->first_child != MD_PART_NONE && !converted) {
			uint64_t body = p->body_len;

			for (c = p->first_child; c != MD_PART_NONE;
			     c = scan->parts[c].next_sibling) {
				const struct md_part *cp = &scan->parts[c];

				body -= cp->header_len + cp->body_len;
				body += b[c].hdr + b[c].body;
				if (b[c].status > b[i].status)
					b[i].status = b[c].status;
			}
			b[i].body = body;
		} else if (p->body_len == 0 || !converted) {
			b[i].body = p->body_len;
		} else {
			/* (a multipart or message/rfc822 part with base64 or
			 * quoted-printable, which RFC 2046 §5.1.1/§5.2.1
			 * forbid, is decoded as it stands, like a leaf) */
			const unsigned char *s =
				(const unsigned char *)msg + p->body_off;
			int ret = cte == MD_CTE_BASE64 ?
				md_meta_base64_size(s, p->body_len, &b[i].body) :
				md_meta_qp_size(s, p->body_len, &b[i].body);

			if (ret < 0 && b[i].status == MD_BIN_OK)
				b[i].status = MD_BIN_PARSE;
		}
	}
	for (i = 0; i < n; i++) {
		scan->parts[i].binary_size = b[i].body;
		scan->parts[i].binary_ok = b[i].status == MD_BIN_OK;
	}
	free(b);
	return 0;
}

static bool md_meta_converted(uint8_t cte)
{
	return cte == MD_CTE_BASE64 || cte == MD_CTE_QP;
}

enum md_meta_binary_status md_meta_binary_status(const struct md_meta *meta,
						 uint32_t part)
{
	uint32_t j;

	if (part >= meta->n_parts)
		return MD_BINARY_PARSE;
	if (meta->parts[part].binary_ok)
		return MD_BINARY_OK;
	if (meta->parts[part].cte == MD_CTE_UNKNOWN)
		return MD_BINARY_UNKNOWN_CTE;
	if (md_meta_converted(meta->parts[part].cte))
		return MD_BINARY_PARSE;
	/* an unknown encoding inside wins over broken content (RFC 3516
	 * §4.3), unless it is hidden in a part decoded as a whole.  The
	 * subtree is the index range after the part (depth-first order;
	 * parents always have smaller indexes). */
	for (j = part + 1; j < meta->n_parts; j++) {
		uint32_t a = meta->parts[j].parent;
		bool hidden = false;

		while (a != MD_PART_NONE && a > part) {
			if (md_meta_converted(meta->parts[a].cte))
				hidden = true;
			a = meta->parts[a].parent;
		}
		if (a != part)
			break; /* left the subtree */
		if (meta->parts[j].cte == MD_CTE_UNKNOWN && !hidden)
			return MD_BINARY_UNKNOWN_CTE;
	}
	return MD_BINARY_PARSE;
}

/* ------------------------------------------------------------------ */

static int md_meta_take(struct buf *b, char **s_r, size_t *len_r)
{
	if (buf_cstr(b) < 0)
		return -1;
	*s_r = b->data;
	*len_r = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return 0;
}

int md_meta_compute(const char *msg, size_t len, struct md_meta *meta_r)
{
	struct md_scan scan;
	struct buf env, body, bs, refs, pv;
	uint32_t i;
	int ret = -1;

	memset(meta_r, 0, sizeof(*meta_r));
	if (msg == NULL) {
		if (len > 0)
			return -1;
		msg = "";
	}
	if (md_mime_scan(msg, len, &scan) < 0)
		return -1;
	buf_init(&env, 0);
	buf_init(&body, 0);
	buf_init(&bs, 0);
	buf_init(&refs, 0);
	buf_init(&pv, 0);
	for (i = 0; i < scan.n_parts; i++) {
		uint8_t fl = scan.pflags[i];

		scan.parts[i].is_multipart =
			(fl & MD_PF_MULTIPART) ||
			((fl & MD_PF_CT_MULTI) && !(fl & MD_PF_FLATTENED));
		scan.parts[i].is_message = (fl & MD_PF_MESSAGE) != 0;
	}
	/* all three exactly as sent after ENVELOPE, BODY and BODYSTRUCTURE,
	 * outer parentheses included */
	if (md_meta_binary(msg, &scan) < 0 ||
	    md_env_write(&env, msg, scan.parts[0].header_off,
			 scan.parts[0].header_len) < 0 ||
	    buf_putc(&body, '(') < 0 ||
	    md_bstruct_write(msg, &scan, false, &body) < 0 ||
	    buf_putc(&body, ')') < 0 ||
	    buf_putc(&bs, '(') < 0 ||
	    md_bstruct_write(msg, &scan, true, &bs) < 0 ||
	    buf_putc(&bs, ')') < 0 ||
	    md_meta_take(&env, &meta_r->envelope, &meta_r->envelope_len) < 0 ||
	    md_meta_take(&body, &meta_r->body, &meta_r->body_len) < 0 ||
	    md_meta_take(&bs, &meta_r->bodystructure,
			 &meta_r->bodystructure_len) < 0 ||
	    md_env_references(msg, scan.parts[0].header_off,
			      scan.parts[0].header_len, &refs) < 0 ||
	    (refs.len > 0 && md_meta_take(&refs, &meta_r->references,
					  &meta_r->references_len) < 0))
		goto out;
	meta_r->size = len;
	meta_r->sent_date = md_env_sent_date(msg, scan.parts[0].header_off,
					     scan.parts[0].header_len);
	meta_r->parts = scan.parts;
	meta_r->n_parts = scan.n_parts;
	scan.parts = NULL;
	/* RFC 8970: computed at delivery, as the rest */
	buf_init(&pv, MD_META_PREVIEW_MAX + 1);
	if (md_text_preview(msg, len, -1, meta_r, &pv) < 0 ||
	    md_meta_take(&pv, &meta_r->preview, &meta_r->preview_len) < 0)
		goto out;
	ret = 0;
out:
	buf_free(&env);
	buf_free(&body);
	buf_free(&bs);
	buf_free(&refs);
	buf_free(&pv);
	md_mime_scan_free(&scan);
	if (ret < 0)
		md_meta_free(meta_r);
	return ret;
}

void md_meta_free(struct md_meta *meta)
{
	free(meta->envelope);
	free(meta->body);
	free(meta->bodystructure);
	free(meta->references);
	free(meta->preview);
	free(meta->parts);
	memset(meta, 0, sizeof(*meta));
}

const char *md_msg_references(const struct md_msg *msg, size_t *len_r)
{
	*len_r = msg->meta != NULL ? msg->meta->references_len : 0;
	return msg->meta != NULL ? msg->meta->references : NULL;
}

const char *md_msg_preview(const struct md_msg *msg, size_t *len_r)
{
	*len_r = msg->meta != NULL ? msg->meta->preview_len : 0;
	return msg->meta != NULL ? msg->meta->preview : NULL;
}

/* ------------------------------------------------------------------ */
/* POP3 size */

uint64_t md_pop3_size(const void *data, size_t len)
{
	const char *msg = data;
	uint64_t extra = 0;
	size_t i = 0;

	/* The same count as the POP3 byte-stuffer's output (pop3_stuff():
	 * RFC 1939 §3), one line at a time with memchr. */
	while (i < len) {
		const char *nl;
		size_t at;

		if (msg[i] == '.')
			extra++; /* stuffed */
		nl = memchr(msg + i, '\n', len - i);
		if (nl == NULL) {
			extra += 2; /* the last line gets its CRLF */
			break;
		}
		at = (size_t)(nl - msg);
		if (at == i || msg[at - 1] != '\r')
			extra++; /* a bare LF goes out as CRLF */
		i = at + 1;
	}
	return (uint64_t)len + extra;
}
