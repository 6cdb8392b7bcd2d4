/* SEARCH text (store.h md_msg_text()): the decoded, case-folded header and
 * body text of one message, for RFC 3501 §6.4.4 / RFC 9051 §6.4.4
 * substring matching.
 *
 * No second MIME parser: the part tree and byte ranges are the ones the
 * store's scanner (md_mime.c) recorded at delivery (struct md_meta), the
 * header blocks are read with the scanner's own field iterator and value
 * unfolding (md_mime_hdr_next(), md_mime_field_value()), Content-Type
 * with its lexer (md_rfc822.c), and bodies go through the decoders that
 * FETCH BINARY uses (md_decode.h), in lenient mode.
 *
 * Matching is RFC 5051 i;unicode-casemap, the comparator IMAP's
 * I18NLEVEL=1 (RFC 5255 §4.1) makes SEARCH use, for all of Unicode: both
 * sides are mapped character by character (md_text_fold()) to the
 * titlecase of the character (UnicodeData's simple mapping: U+00DF has
 * none, so "ß" is not "SS", and U+1E9E stays apart from it; U+0131
 * dotless i is "I"), fully decomposed (NFKD: accents, ligatures,
 * fullwidth and mathematical letters, Hangul syllables into jamo), then
 * compared as octets.  So "Ä", "ä" and "a" + U+0308 are one text and
 * "a" is found in "Säge".  Two liberties: the characters a decomposition
 * yields are mapped again until nothing changes (RFC 5051 stops after one
 * decomposition; mapping again keeps the form a fixed point and lets
 * "FILE" find the ligature U+FB01, which a literal reading would not,
 * its decomposition being lower-case "fi"), and ASCII letters are
 * written in lower case (a renaming that changes no match, but the
 * order: SORT and THREAD, which collate by the same mapping through
 * md_text_casefold(), turn them back to upper case).  The table is
 * generated from Python's unicodedata (md_text_nfkd.py), Hangul
 * syllables are taken apart by their algorithm; towlower() would depend
 * on the process locale (the daemon never calls setlocale) and
 * towlower_l() on the locales installed: tables give the same answer
 * everywhere.
 *
 * Layout of struct md_text (all text already folded):
 *   fields:  the message header's fields, "name\0value\0" one after the
 *            other, name lowercased (FROM, SUBJECT, HEADER x);
 *   headers: every header block of the message as "Name: value\n" lines
 *            (TEXT);
 *   body:    the text parts, each followed by "\n".
 *
 * The same machinery gives the RFC 8970 preview (md_text_preview(), at
 * delivery from the message in memory, later from the file): the first
 * text/plain part, else the first text/html one, decoded and converted
 * here; md_preview.c turns its text into the preview.
 *
 * Memory: the three buffers are capped (MD_TEXT_HEADERS_MAX,
 * MD_TEXT_BODY_MAX); while a part is decoded it exists up to three times
 * (decoded, converted, folded), each bounded by the caps; header blocks
 * are read up to MD_META_HEADER_MAX, the scanner's own limit.
 */
#include "md_decode.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "md_meta_int.h"
#include "md_preview.h"
#include "md_private.h"

/* octets read from the message file per pread */
#define MD_TEXT_CHUNK (64 * 1024)
/* RFC 2978 charset names are at most 40 octets; longer ones are junk */
#define MD_TEXT_CHARSET_MAX 64
/* output octets per iconv() call */
#define MD_TEXT_ICONV_OUT 4096
/* U+FFFD REPLACEMENT CHARACTER for octets the charset does not define */
#define MD_TEXT_REPLACEMENT "\xef\xbf\xbd"

struct md_text {
	struct buf fields;
	struct buf headers;
	struct buf body;
	unsigned what;
};

struct md_text_ctx {
	struct md_text *t;
	const struct md_meta *meta;
	int fd;
	const char *mem;    /* the message in memory (the preview at
			     * delivery) instead of fd */
	size_t mem_len;
	int read_errno;
	bool short_file;
	char *chunk;
	struct buf hdr;     /* one header block as stored */
	struct buf value;   /* one unfolded value */
	struct buf dec;     /* decoded (RFC 2047 word, or a body part) */
	struct buf conv;    /* converted to UTF-8 */
	struct buf tmp;
	/* the last charset converter, reused while the charset repeats */
	iconv_t cd;
	char cd_charset[MD_TEXT_CHARSET_MAX + 1];
	bool cd_ok;
};

/* ------------------------------------------------------------------ */
/* Case folding */

/* Unicode §3.12: a Hangul syllable is L V [T] jamo (jamo have no case) */
#define MD_HANGUL_S 0xac00
#define MD_HANGUL_S_COUNT 11172
#define MD_HANGUL_L 0x1100
#define MD_HANGUL_V 0x1161
#define MD_HANGUL_T 0x11a7
#define MD_HANGUL_N_COUNT 588 /* V count 21 * T count 28 */
#define MD_HANGUL_T_COUNT 28

/* One UTF-8 sequence at s (n > 0 octets): its length, or 0 when it is not
 * valid (overlong, surrogate, beyond U+10FFFF, cut short). */
size_t md_text_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	*cp = c;
	return len;
}

size_t md_text_put_utf8(uint32_t c, unsigned char *o)
{
	if (c < 0x80) {
		o[0] = (unsigned char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (unsigned char)(0xc0 | (c >> 6));
		o[1] = (unsigned char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (c >> 12));
		o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (c >> 18));
	o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (c & 0x3f));
	return 4;
}

/* Append as much of p as fits under out's cap: text beyond a limit is
 * not searched.  -1 only when memory runs out. */
static int md_text_put(struct buf *out, const void *p, size_t n)
{
	size_t room = out->max - out->len;

	if (n > room)
		n = room;
	if (n > 0 && buf_append(out, p, n) < 0)
		return -1;
	return 0;
}

/* The jamo of Hangul syllable c (NFKD), as UTF-8 into o. */
static size_t md_text_hangul(uint32_t c, unsigned char *o)
{
	uint32_t si = c - MD_HANGUL_S;
	size_t n = md_text_put_utf8(MD_HANGUL_L + si / MD_HANGUL_N_COUNT, o);

	n += md_text_put_utf8(MD_HANGUL_V + (si % MD_HANGUL_N_COUNT) / MD_HANGUL_T_COUNT,
			      o + n);
	if (si % MD_HANGUL_T_COUNT != 0)
		n += md_text_put_utf8(MD_HANGUL_T + si % MD_HANGUL_T_COUNT, o + n);
	return n;
}

/* Append the matching form of the UTF-8 text s: each character replaced
 * by its RFC 5051 i;unicode-casemap form (md_text_nfkd.c); octets that
 * are not UTF-8 are kept as they are. */
static int md_text_fold(const char *s, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char stage[1024];
	size_t o = 0, i = 0;

	while (i < n) {
		const char *m;
		uint32_t c;
		size_t len = md_text_utf8(p + i, n - i, &c), mlen;

		if (o + MD_TEXT_CASEMAP_LEN > sizeof(stage)) {
			if (md_text_put(out, stage, o) < 0)
				return -1;
			o = 0;
		}
		if (len == 0) {
			stage[o++] = p[i++];
			continue;
		}
		i += len;
		if (c < 0x80) {
			stage[o++] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 0x20 : c);
		} else if (c >= MD_HANGUL_S && c < MD_HANGUL_S + MD_HANGUL_S_COUNT) {
			o += md_text_hangul(c, stage + o);
		} else if ((m = md_text_casemap(c, &mlen)) != NULL) {
			memcpy(stage + o, m, mlen);
			o += mlen;
		} else {
			o += md_text_put_utf8(c, stage + o);
		}
	}
	return md_text_put(out, stage, o);
}

/* ------------------------------------------------------------------ */
/* Charsets */

static bool md_text_is_utf8(const char *cs)
{
	return cs[0] == '\0' || strcasecmp(cs, "utf-8") == 0 ||
		strcasecmp(cs, "utf8") == 0 || strcasecmp(cs, "us-ascii") == 0 ||
		strcasecmp(cs, "ascii") == 0;
}

/* Append in (charset cs) converted to UTF-8.  A charset iconv does not
 * know: the octets as they stand; octets the charset does not define:
 * U+FFFD; a sequence cut short at the end is dropped. */
static int md_text_convert(struct md_text_ctx *ctx, const char *cs,
			   const char *in, size_t n, struct buf *out)
{
	char obuf[MD_TEXT_ICONV_OUT];
	char *ip = (char *)in;
	size_t il = n;

	if (md_text_is_utf8(cs) || strlen(cs) > MD_TEXT_CHARSET_MAX)
		return buf_append(out, in, n);
	if (!ctx->cd_ok || strcasecmp(ctx->cd_charset, cs) != 0) {
		if (ctx->cd_ok)
			iconv_close(ctx->cd);
		ctx->cd_ok = false;
		ctx->cd = iconv_open("UTF-8", cs);
		if (ctx->cd == (iconv_t)-1)
			return buf_append(out, in, n);
		ctx->cd_ok = true;
		str_copy(ctx->cd_charset, cs, sizeof(ctx->cd_charset));
	}
	(void)iconv(ctx->cd, NULL, NULL, NULL, NULL);
	while (il > 0) {
		char *op = obuf;
		size_t ol = sizeof(obuf);
		size_t r = iconv(ctx->cd, &ip, &il, &op, &ol);
		int err = errno;

		if (buf_append(out, obuf, (size_t)(op - obuf)) < 0)
			return -1;
		if (r != (size_t)-1)
			break;
		if (err == E2BIG)
			continue;
		if (err == EILSEQ) {
			if (buf_append(out, MD_TEXT_REPLACEMENT,
				       strlen(MD_TEXT_REPLACEMENT)) < 0)
				return -1;
			ip++;
			il--;
			continue;
		}
		break; /* EINVAL: incomplete at the end */
	}
	/* the final shift sequence of a stateful charset */
	{
		char *op = obuf;
		size_t ol = sizeof(obuf);

		(void)iconv(ctx->cd, NULL, NULL, &op, &ol);
		if (buf_append(out, obuf, (size_t)(op - obuf)) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* RFC 2047 encoded words */

/* Is there an encoded word "=?charset?X?text?=" at s[i]?  Fills the
 * pieces (charset without an RFC 2231 language) and its end. */
static bool md_text_eword(const char *s, size_t n, size_t i, size_t *cs_r,
			  size_t *cs_len_r, char *enc_r, size_t *text_r,
			  size_t *text_len_r, size_t *end_r)
{
	size_t j = i + 2, cs = j, q;

	if (i + 1 >= n || s[i] != '=' || s[i + 1] != '?')
		return false;
	while (j < n && s[j] != '?' && s[j] != ' ' && s[j] != '\t' &&
	       s[j] != '\n')
		j++;
	if (j == cs || j + 2 >= n || s[j] != '?' || s[j + 2] != '?')
		return false;
	*enc_r = s[j + 1];
	if (*enc_r != 'B' && *enc_r != 'b' && *enc_r != 'Q' && *enc_r != 'q')
		return false;
	*cs_r = cs;
	*cs_len_r = j - cs;
	for (q = cs; q < j; q++) {
		if (s[q] == '*') {
			*cs_len_r = q - cs;
			break;
		}
	}
	j += 3;
	*text_r = j;
	/* RFC 2047 §2: no whitespace inside an encoded word */
	while (j + 1 < n && !(s[j] == '?' && s[j + 1] == '=')) {
		if (s[j] == ' ' || s[j] == '\t' || s[j] == '\n')
			return false;
		j++;
	}
	if (j + 1 >= n)
		return false;
	*text_len_r = j - *text_r;
	*end_r = j + 2;
	return true;
}

/* Decode the encoded words of a header value and convert them to UTF-8;
 * whitespace between two encoded words goes (RFC 2047 §6.2), and the
 * octets of adjacent words in one charset are converted together (a
 * character may be split between them).  Appends to out. */
static int md_text_rfc2047(struct md_text_ctx *ctx, const char *s, size_t n,
			   struct buf *out)
{
	char cs[MD_TEXT_CHARSET_MAX + 1] = "", wcs[MD_TEXT_CHARSET_MAX + 1];
	size_t i = 0, plain = 0;
	bool have = false; /* ctx->dec holds words of charset cs */

	buf_reset(&ctx->dec);
	while (i < n) {
		size_t c0, cl, t0, tl, end, k;
		bool only_ws;
		char enc;

		if (!md_text_eword(s, n, i, &c0, &cl, &enc, &t0, &tl, &end)) {
			i++;
			continue;
		}
		for (k = plain; k < i; k++) {
			if (s[k] != ' ' && s[k] != '\t' && s[k] != '\n')
				break;
		}
		only_ws = k == i;
		if (cl > MD_TEXT_CHARSET_MAX)
			cl = MD_TEXT_CHARSET_MAX;
		memcpy(wcs, s + c0, cl);
		wcs[cl] = '\0';
		/* words of one charset with only whitespace between are
		 * converted together; other text ends the run */
		if (have && (!only_ws || strcasecmp(wcs, cs) != 0)) {
			if (md_text_convert(ctx, cs, ctx->dec.data,
					    ctx->dec.len, out) < 0)
				return -1;
			buf_reset(&ctx->dec);
		}
		/* whitespace right after another encoded word goes */
		if (!(have && only_ws) &&
		    buf_append(out, s + plain, i - plain) < 0)
			return -1;
		if (enc == 'B' || enc == 'b') {
			struct md_decoder d;

			md_decoder_init(&d, MD_CTE_BASE64, true);
			if (md_decoder_feed(&d, s + t0, tl, &ctx->dec) < 0 ||
			    md_decoder_finish(&d, &ctx->dec) < 0)
				return -1;
		} else if (md_decode_q_word(s + t0, tl, &ctx->dec) < 0) {
			return -1;
		}
		memcpy(cs, wcs, cl + 1);
		have = true;
		i = plain = end;
	}
	if (have && md_text_convert(ctx, cs, ctx->dec.data, ctx->dec.len,
				    out) < 0)
		return -1;
	return buf_append(out, s + plain, n - plain);
}

int md_header_utf8(const char *s, size_t len, char **out_r, size_t *len_r)
{
	struct md_text_ctx ctx;
	int ret;

	memset(&ctx, 0, sizeof(ctx));
	buf_init(&ctx.dec, 0);
	buf_init(&ctx.conv, 0);
	ret = md_text_rfc2047(&ctx, s, len, &ctx.conv);
	if (ret == 0)
		ret = buf_cstr(&ctx.conv);
	if (ctx.cd_ok)
		iconv_close(ctx.cd);
	buf_free(&ctx.dec);
	if (ret < 0) {
		buf_free(&ctx.conv);
		return -1;
	}
	*out_r = ctx.conv.data;
	*len_r = ctx.conv.len;
	return 0;
}

int md_text_header_decode(const char *s, size_t n, struct buf *out)
{
	char *dec;
	size_t len;
	int ret;

	if (md_header_utf8(s, n, &dec, &len) < 0)
		return -1;
	ret = md_text_fold(dec, len, out);
	free(dec);
	return ret;
}

int md_text_casefold(const char *s, size_t n, struct buf *out)
{
	return md_text_fold(s, n, out);
}

/* ------------------------------------------------------------------ */
/* Reading the message */

static int md_text_pread(struct md_text_ctx *ctx, uint64_t off, size_t n,
			 char *dst)
{
	size_t done = 0;

	if (ctx->mem != NULL) {
		if (off > ctx->mem_len || n > ctx->mem_len - off) {
			ctx->short_file = true;
			return -1;
		}
		memcpy(dst, ctx->mem + off, n);
		return 0;
	}
	while (done < n) {
		ssize_t r = pread(ctx->fd, dst + done, n - done,
				  (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			ctx->read_errno = errno;
		else if (r == 0)
			ctx->short_file = true;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

struct md_text_part {
	bool text;                /* searched as body text */
	bool plain, html;         /* text/plain (or no Content-Type), text/html */
	char charset[MD_TEXT_CHARSET_MAX + 1];
};

/* Content-Type text/... or message/... (a part the scanner left whole) is
 * text; one that cannot be parsed is not (Dovecot searches neither
 * "Content-Type: ; name=x.jpg" nor anything else it cannot read). */
static int md_text_content_type(struct md_text_ctx *ctx,
				struct md_text_part *tp)
{
	struct md_rfc822 r;
	struct md_params ps;
	struct buf tok;
	int ret, rc = 0;

	buf_init(&tok, MD_META_HEADER_MAX + 1);
	md_params_init(&ps);
	md_rfc822_init(&r, ctx->value.data, ctx->value.len, NULL);
	md_rfc822_skip_lwsp(&r);
	ret = md_rfc822_content_type(&r, &tok);
	if (r.oom || buf_cstr(&tok) < 0) {
		rc = -1;
		goto out;
	}
	tp->text = strncasecmp(tok.data, "text/", 5) == 0 ||
		strncasecmp(tok.data, "message/", 8) == 0;
	tp->plain = strcasecmp(tok.data, "text/plain") == 0;
	tp->html = strcasecmp(tok.data, "text/html") == 0;
	if (ret < 0 || !tp->text)
		goto out;
	if (md_rfc822_params(&r, &ps) < 0) {
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < ps.n; i++) {
		if (strcasecmp(md_params_name(&ps, i), "charset") == 0) {
			str_copy(tp->charset, md_params_value(&ps, i),
				 sizeof(tp->charset));
			break;
		}
	}
out:
	buf_free(&tok);
	md_params_free(&ps);
	return rc;
}

/* One header block: every field into headers (and the message's own into
 * fields), and the part's Content-Type. */
static int md_text_header(struct md_text_ctx *ctx, uint32_t i,
			  struct md_text_part *tp)
{
	const struct md_part *p = &ctx->meta->parts[i];
	struct md_text *t = ctx->t;
	size_t len = p->header_len > MD_META_HEADER_MAX ? MD_META_HEADER_MAX :
		(size_t)p->header_len;
	bool ct_seen = false;
	struct md_hdr_iter it;
	struct md_field f;

	buf_reset(&ctx->hdr);
	while (ctx->hdr.len < len) {
		size_t n = len - ctx->hdr.len > MD_TEXT_CHUNK ? MD_TEXT_CHUNK :
			len - ctx->hdr.len;

		if (md_text_pread(ctx, p->header_off + ctx->hdr.len, n,
				  ctx->chunk) < 0 ||
		    buf_append(&ctx->hdr, ctx->chunk, n) < 0)
			return -1;
	}
	if (buf_cstr(&ctx->hdr) < 0)
		return -1;
	md_mime_hdr_init(&it, ctx->hdr.data, 0, ctx->hdr.len);
	while (md_mime_hdr_next(&it, &f) > 0) {
		const char *name = ctx->hdr.data + f.start;

		bool ct;

		if (!f.has_colon)
			continue;
		ct = !ct_seen && md_mime_field_is(ctx->hdr.data, &f,
						  "Content-Type");
		if (!ct && !(t->what & MD_TEXT_HEADERS))
			continue;
		buf_reset(&ctx->value);
		if (md_mime_field_value(ctx->hdr.data, &f, &ctx->value) < 0)
			return -1;
		if (ct) {
			ct_seen = true;
			if (md_text_content_type(ctx, tp) < 0)
				return -1;
		}
		if (!(t->what & MD_TEXT_HEADERS))
			continue;
		/* unfold: the scanner joins continuation lines with "\n" */
		{
			size_t o = 0;

			for (size_t k = 0; k < ctx->value.len; k++) {
				if (ctx->value.data[k] != '\n')
					ctx->value.data[o++] = ctx->value.data[k];
			}
			ctx->value.len = o;
		}
		buf_reset(&ctx->conv);
		if (md_text_rfc2047(ctx, ctx->value.data, ctx->value.len,
				    &ctx->conv) < 0)
			return -1;
		buf_reset(&ctx->tmp);
		if (md_text_fold(ctx->conv.data, ctx->conv.len, &ctx->tmp) < 0)
			return -1;
		/* a NUL (from "=00") would end the value in fields */
		for (size_t k = 0; k < ctx->tmp.len; k++) {
			if (ctx->tmp.data[k] == '\0')
				ctx->tmp.data[k] = ' ';
		}
		if (md_text_fold(name, f.name_len, &t->headers) < 0 ||
		    md_text_put(&t->headers, ": ", 2) < 0 ||
		    md_text_put(&t->headers, ctx->tmp.data, ctx->tmp.len) < 0 ||
		    md_text_put(&t->headers, "\n", 1) < 0)
			return -1;
		if (i == 0 && t->fields.max - t->fields.len >
		    f.name_len + ctx->tmp.len + 2) {
			if (md_text_fold(name, f.name_len, &t->fields) < 0 ||
			    md_text_put(&t->fields, "", 1) < 0 ||
			    md_text_put(&t->fields, ctx->tmp.data,
					ctx->tmp.len) < 0 ||
			    md_text_put(&t->fields, "", 1) < 0)
				return -1;
		}
	}
	return 0;
}

/* A text part's body, its first room octets decoded, converted to UTF-8
 * into ctx->conv (SEARCH's body text, the preview). */
static int md_text_part_utf8(struct md_text_ctx *ctx, const struct md_part *p,
			     const struct md_text_part *tp, size_t room)
{
	uint64_t off = p->body_off, left = p->body_len;
	struct md_decoder d;

	buf_reset(&ctx->dec);
	buf_reset(&ctx->conv);
	md_decoder_init(&d, (enum md_cte)p->cte, true);
	while (left > 0 && ctx->dec.len < room) {
		size_t n = left > MD_TEXT_CHUNK ? MD_TEXT_CHUNK : (size_t)left;

		if (md_text_pread(ctx, off, n, ctx->chunk) < 0 ||
		    md_decoder_feed(&d, ctx->chunk, n, &ctx->dec) < 0)
			return -1;
		off += n;
		left -= n;
	}
	if (left == 0 && md_decoder_finish(&d, &ctx->dec) < 0)
		return -1;
	if (ctx->dec.len > room)
		ctx->dec.len = room;
	return md_text_convert(ctx, tp->charset, ctx->dec.data, ctx->dec.len,
			       &ctx->conv);
}

/* A text part's body: decoded, converted, folded into body. */
static int md_text_body_part(struct md_text_ctx *ctx, const struct md_part *p,
			     const struct md_text_part *tp)
{
	struct md_text *t = ctx->t;
	size_t room = t->body.max - t->body.len;

	if (room == 0)
		return 0;
	if (md_text_part_utf8(ctx, p, tp, room) < 0 ||
	    md_text_fold(ctx->conv.data, ctx->conv.len, &t->body) < 0 ||
	    md_text_put(&t->body, "\n", 1) < 0)
		return -1;
	return 0;
}

static bool md_text_converted(uint8_t cte)
{
	return cte == MD_CTE_BASE64 || cte == MD_CTE_QP;
}

static int md_text_run(struct md_text_ctx *ctx)
{
	const struct md_meta *m = ctx->meta;

	for (uint32_t i = 0; i < m->n_parts; i++) {
		const struct md_part *p = &m->parts[i];
		struct md_text_part tp = { .text = true };
		bool leaf = p->first_child == MD_PART_NONE && !p->is_multipart &&
			!p->is_message;
		uint32_t a;

		/* inside a container that is itself base64/QP-encoded
		 * (forbidden, RFC 2046 §5.1.1) the scanner saw encoded
		 * octets: nothing there is text */
		for (a = p->parent; a != MD_PART_NONE; a = m->parts[a].parent) {
			if (md_text_converted(m->parts[a].cte))
				break;
		}
		if (a != MD_PART_NONE)
			continue;
		if (md_text_header(ctx, i, &tp) < 0)
			return -1;
		/* FROM, SUBJECT, HEADER ...: the message header alone */
		if (!(ctx->t->what & MD_TEXT_BODY))
			break;
		/* an encoding we do not know cannot be decoded: not
		 * searched (as Dovecot) */
		if ((ctx->t->what & MD_TEXT_BODY) && leaf && tp.text &&
		    p->cte != MD_CTE_UNKNOWN &&
		    md_text_body_part(ctx, p, &tp) < 0)
			return -1;
	}
	return 0;
}

/* The reading context over meta's message (fd -1: set it after); -1
 * when memory runs out (md_text_ctx_free() it all the same). */
static int md_text_ctx_init(struct md_text_ctx *ctx, struct md_text *t,
			    const struct md_meta *meta)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->t = t;
	ctx->meta = meta;
	ctx->fd = -1;
	buf_init(&ctx->hdr, MD_META_HEADER_MAX + 1);
	buf_init(&ctx->value, 0);
	buf_init(&ctx->dec, 0);
	buf_init(&ctx->conv, 0);
	buf_init(&ctx->tmp, 0);
	ctx->chunk = malloc(MD_TEXT_CHUNK);
	return ctx->chunk != NULL ? 0 : -1;
}

/* Everything but the file, which the caller opened. */
static void md_text_ctx_free(struct md_text_ctx *ctx)
{
	if (ctx->cd_ok)
		iconv_close(ctx->cd);
	free(ctx->chunk);
	buf_free(&ctx->hdr);
	buf_free(&ctx->value);
	buf_free(&ctx->dec);
	buf_free(&ctx->conv);
	buf_free(&ctx->tmp);
}

enum md_result md_msg_text(struct md_mailbox *mb, struct md_msg *msg,
			   unsigned what, struct md_text **text_r)
{
	struct md_text_ctx ctx;
	struct md_text *t;
	enum md_result r;

	*text_r = NULL;
	if (msg->meta == NULL) {
		md_user_seterr(mb->user, "SEARCH text of UID %u without "
			       "metadata", msg->uid);
		return MD_TEMPFAIL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return MD_TEMPFAIL;
	t->what = what;
	buf_init(&t->fields, MD_TEXT_HEADERS_MAX);
	buf_init(&t->headers, MD_TEXT_HEADERS_MAX);
	buf_init(&t->body, MD_TEXT_BODY_MAX);
	if (md_text_ctx_init(&ctx, t, msg->meta) < 0) {
		r = MD_TEMPFAIL;
		goto out;
	}
	if ((r = md_msg_open(mb, msg, &ctx.fd)) != MD_OK)
		goto out;
	if (md_text_run(&ctx) < 0) {
		if (ctx.read_errno != 0) {
			md_user_seterr(mb->user, "%s: %s", msg->path,
				       strerror(ctx.read_errno));
			r = MD_TEMPFAIL;
		} else if (ctx.short_file) {
			md_user_seterr(mb->user, "UID %u: the message file is "
				       "shorter than indexed", msg->uid);
			r = MD_CORRUPT;
		} else {
			md_user_seterr(mb->user, "SEARCH text of UID %u: out "
				       "of memory", msg->uid);
			r = MD_TEMPFAIL;
		}
		goto out;
	}
	r = MD_OK;
out:
	if (ctx.fd >= 0)
		close(ctx.fd);
	md_text_ctx_free(&ctx);
	if (r != MD_OK)
		md_text_free(t);
	else
		*text_r = t;
	return r;
}

/* ------------------------------------------------------------------ */
/* Preview (RFC 8970 §3) */

/* decoded octets of the chosen part looked at: 256 characters and then
 * some after an HTML head full of styles */
#define MD_TEXT_PREVIEW_SCAN (64 * 1024)
/* The part the preview comes from: the first text/plain leaf of the
 * message itself (not of a message it carries), else the first
 * text/html; MD_PART_NONE when there is neither. */
static int md_text_pv_pick(struct md_text_ctx *ctx, uint32_t *part_r,
			   struct md_text_part *tp_r)
{
	const struct md_meta *m = ctx->meta;

	*part_r = MD_PART_NONE;
	for (uint32_t i = 0; i < m->n_parts; i++) {
		const struct md_part *p = &m->parts[i];
		struct md_text_part tp = { .text = true, .plain = true };
		uint32_t a;

		if (p->first_child != MD_PART_NONE || p->is_multipart ||
		    p->is_message || p->cte == MD_CTE_UNKNOWN)
			continue;
		for (a = p->parent; a != MD_PART_NONE; a = m->parts[a].parent) {
			if (md_text_converted(m->parts[a].cte) ||
			    m->parts[a].is_message)
				break;
		}
		if (a != MD_PART_NONE)
			continue;
		if (md_text_header(ctx, i, &tp) < 0)
			return -1;
		if (!tp.text || !(tp.plain || (tp.html &&
					       *part_r == MD_PART_NONE)))
			continue;
		*part_r = i;
		*tp_r = tp;
		if (tp.plain)
			break;
	}
	return 0;
}

static int md_text_pv_run(struct md_text_ctx *ctx, struct buf *out)
{
	struct md_preview pv = { .out = out };
	struct md_text_part tp;
	uint32_t i;

	if (md_text_pv_pick(ctx, &i, &tp) < 0)
		return -1;
	if (i == MD_PART_NONE)
		return 0;
	if (md_text_part_utf8(ctx, &ctx->meta->parts[i], &tp,
			      MD_TEXT_PREVIEW_SCAN) < 0)
		return -1;
	return md_preview_text(&pv, ctx->conv.data, ctx->conv.len, !tp.plain);
}

int md_text_preview(const char *msg, size_t len, int fd,
		    const struct md_meta *meta, struct buf *out)
{
	struct md_text_ctx ctx;
	struct md_text t;
	int rc = -1;

	memset(&t, 0, sizeof(t));
	if (md_text_ctx_init(&ctx, &t, meta) == 0) {
		ctx.fd = fd;
		ctx.mem = msg;
		ctx.mem_len = len;
		rc = md_text_pv_run(&ctx, out);
	}
	md_text_ctx_free(&ctx);
	return rc;
}

enum md_result md_msg_preview_compute(struct md_mailbox *mb,
				      struct md_msg *msg, struct buf *out)
{
	enum md_result r;
	int fd;

	if (msg->meta == NULL) {
		md_user_seterr(mb->user, "PREVIEW of UID %u without "
			       "metadata", msg->uid);
		return MD_TEMPFAIL;
	}
	if ((r = md_msg_open(mb, msg, &fd)) != MD_OK)
		return r;
	if (md_text_preview(NULL, 0, fd, msg->meta, out) < 0) {
		md_user_seterr(mb->user, "PREVIEW of UID %u: %s", msg->uid,
			       "the message file cannot be read");
		r = MD_TEMPFAIL;
	}
	close(fd);
	return r;
}

/* ------------------------------------------------------------------ */
/* Matching */

static bool md_text_find(const struct buf *hay, const char *needle)
{
	struct buf fn;
	bool found;

	if (needle[0] == '\0')
		return true;
	buf_init(&fn, 0);
	if (md_text_fold(needle, strlen(needle), &fn) < 0) {
		buf_free(&fn);
		return false;
	}
	found = hay->len >= fn.len &&
		memmem(hay->data, hay->len, fn.data, fn.len) != NULL;
	buf_free(&fn);
	return found;
}

bool md_text_header_contains(const struct md_text *t, const char *field,
			     const char *needle_utf8)
{
	struct buf hay;
	size_t pos = 0;

	if (field == NULL)
		return md_text_find(&t->headers, needle_utf8);
	while (pos < t->fields.len) {
		const char *name = t->fields.data + pos;
		size_t nlen = strnlen(name, t->fields.len - pos);
		const char *value = name + nlen + 1;
		size_t vlen;

		if (pos + nlen + 1 >= t->fields.len)
			break;
		vlen = strnlen(value, t->fields.len - pos - nlen - 1);
		pos += nlen + 1 + vlen + 1;
		if (strcasecmp(name, field) != 0)
			continue;
		hay.data = (char *)value;
		hay.len = vlen;
		if (md_text_find(&hay, needle_utf8))
			return true;
	}
	return false;
}

bool md_text_body_contains(const struct md_text *t, const char *needle_utf8)
{
	return md_text_find(&t->body, needle_utf8);
}

void md_text_free(struct md_text *t)
{
	if (t == NULL)
		return;
	buf_free(&t->fields);
	buf_free(&t->headers);
	buf_free(&t->body);
	free(t);
}
