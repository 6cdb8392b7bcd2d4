/* FETCH BINARY (RFC 3516): a part's content with its
 * Content-Transfer-Encoding undone, and the streaming decoders behind it
 * (md_decode.h), which the SEARCH text (md_text.c) uses too.
 *
 * What BINARY[spec] returns (the same rules md_meta.c counted
 * md_part.binary_size with at delivery, and what Dovecot sends):
 *  - a leaf part: its body decoded (7bit, 8bit, binary: as stored);
 *  - a multipart or message/rfc822 part: its body as stored, except that
 *    every base64 or quoted-printable part inside is decoded, its
 *    Content-Transfer-Encoding field(s) removed and one
 *    "Content-Transfer-Encoding: binary" line added after its last field;
 *    without encoded parts inside that is the stored bytes unchanged;
 *  - the whole message (spec ""): its header (the field replaced in the
 *    same way when the body itself is encoded), then the body as above.
 *
 * Memory: one output buffer of the decoded size (which is at most twice
 * the stored part: quoted-printable turns a bare LF into CRLF), the
 * header blocks of encoded parts while they are rewritten, and one read
 * chunk (MD_DECODE_CHUNK).  The message size is bounded by the
 * configuration's message_size_max for everything the daemon stores, so
 * that is the bound for a caller too; the file is read with pread.
 */
#include "md_decode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base64.h"
#include "md_meta_int.h"
#include "md_private.h"

/* octets read from the message file per pread */
#define MD_DECODE_CHUNK (64 * 1024)
/* octets staged before they are appended to the output buffer */
#define MD_DECODE_STAGE 1024
/* the line that replaces a decoded part's Content-Transfer-Encoding
 * field(s), as md_meta.c counts it */
#define MD_DECODE_CTE_BINARY_LINE "Content-Transfer-Encoding: binary\r\n"

/* ------------------------------------------------------------------ */
/* Decoders */

enum md_decode_qp_state {
	MD_DQP_TEXT,
	MD_DQP_WS,
	MD_DQP_EQ,
	MD_DQP_EQ_WS,
	MD_DQP_HEX2,
	MD_DQP_CR,
	MD_DQP_SOFTCR,
};

enum md_decode_b64_state {
	MD_DB64_DATA,
	MD_DB64_PAD1, /* one '=' after two symbols: the second must follow */
	MD_DB64_DONE, /* only whitespace may follow */
};

/* a small staging area so that single octets do not each grow the buf */
struct md_decode_out {
	struct buf *buf;
	size_t n;
	int failed;
	char stage[MD_DECODE_STAGE];
};

static void md_decode_flush(struct md_decode_out *o)
{
	if (o->n > 0 && !o->failed && buf_append(o->buf, o->stage, o->n) < 0)
		o->failed = -1;
	o->n = 0;
}

static void md_decode_put(struct md_decode_out *o, unsigned char c)
{
	if (o->n == sizeof(o->stage))
		md_decode_flush(o);
	o->stage[o->n++] = (char)c;
}

static void md_decode_putn(struct md_decode_out *o, const char *p, size_t n)
{
	while (n-- > 0)
		md_decode_put(o, (unsigned char)*p++);
}

void md_decoder_init(struct md_decoder *d, enum md_cte cte, bool lenient)
{
	memset(d, 0, sizeof(*d));
	d->cte = cte;
	d->lenient = lenient;
}

static bool md_decode_is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int md_decode_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void md_decode_b64(struct md_decoder *d, const unsigned char *s,
			  size_t n, struct md_decode_out *o)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		int v;

		if (md_decode_is_ws(c))
			continue;
		if (d->state == MD_DB64_PAD1) {
			if (c == '=') {
				d->state = MD_DB64_DONE;
				continue;
			}
			d->bad = true;
			d->state = MD_DB64_DONE;
			continue;
		}
		if (d->state == MD_DB64_DONE) {
			d->bad = true;
			continue;
		}
		if (c == '=') {
			if (d->lenient) {
				/* padding ends a quantum; more may follow
				 * (concatenated encodings) */
				d->sub = 0;
				d->acc = 0;
				continue;
			}
			if (d->sub < 2)
				d->bad = true;
			d->state = d->sub == 2 ? MD_DB64_PAD1 : MD_DB64_DONE;
			d->sub = 0;
			d->acc = 0;
			continue;
		}
		v = base64_value(c);
		if (v < 0) {
			if (!d->lenient)
				d->bad = true;
			continue;
		}
		d->acc = (d->acc << 6) | (uint32_t)v;
		switch (++d->sub) {
		case 2:
			md_decode_put(o, (unsigned char)(d->acc >> 4));
			break;
		case 3:
			md_decode_put(o, (unsigned char)(d->acc >> 2));
			break;
		case 4:
			md_decode_put(o, (unsigned char)d->acc);
			d->sub = 0;
			d->acc = 0;
			break;
		}
	}
}

static void md_decode_ws_add(struct md_decoder *d, unsigned char c)
{
	/* counted as md_meta.c counts: up to one past the line limit */
	if (d->ws <= MD_DECODE_QP_WS_MAX)
		d->wsbuf[d->ws++] = (char)c;
}

static void md_decode_qp(struct md_decoder *d, const unsigned char *s,
			 size_t n, struct md_decode_out *o)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		int h;

		switch (d->state) {
		case MD_DQP_TEXT:
			if (c == '=') {
				d->state = MD_DQP_EQ;
			} else if (c == '\r') {
				d->state = MD_DQP_CR;
			} else if (c == '\n') {
				md_decode_putn(o, "\r\n", 2);
			} else if (c == ' ' || c == '\t') {
				d->ws = 0;
				md_decode_ws_add(d, c);
				d->state = MD_DQP_WS;
			} else {
				md_decode_put(o, c);
			}
			break;
		case MD_DQP_WS:
			if (c == ' ' || c == '\t') {
				md_decode_ws_add(d, c);
			} else if (c == '\r') {
				d->state = MD_DQP_CR;
			} else if (c == '\n') {
				/* RFC 2045 §6.7 rule 3: trailing whitespace goes */
				md_decode_putn(o, "\r\n", 2);
				d->ws = 0;
				d->state = MD_DQP_TEXT;
			} else {
				if (d->ws > MD_DECODE_QP_WS_MAX)
					d->bad = true;
				md_decode_putn(o, d->wsbuf, d->ws);
				d->ws = 0;
				d->state = MD_DQP_TEXT;
				continue; /* c again as text */
			}
			break;
		case MD_DQP_EQ:
			if (md_decode_hex(c) >= 0) {
				d->hex1 = c;
				d->state = MD_DQP_HEX2;
			} else if (c == ' ' || c == '\t') {
				d->ws = 0;
				md_decode_ws_add(d, c);
				d->state = MD_DQP_EQ_WS;
			} else if (c == '\r') {
				d->ws = 0;
				d->state = MD_DQP_SOFTCR;
			} else if (c == '\n') {
				d->state = MD_DQP_TEXT; /* soft line break */
			} else {
				d->bad = true;
				md_decode_put(o, '=');
				d->state = MD_DQP_TEXT;
				continue;
			}
			break;
		case MD_DQP_HEX2:
			h = md_decode_hex(c);
			if (h >= 0) {
				md_decode_put(o, (unsigned char)
					      (md_decode_hex(d->hex1) << 4 | h));
				d->state = MD_DQP_TEXT;
			} else {
				d->bad = true;
				md_decode_put(o, '=');
				md_decode_put(o, d->hex1);
				d->state = MD_DQP_TEXT;
				continue;
			}
			break;
		case MD_DQP_EQ_WS:
			if (c == ' ' || c == '\t') {
				md_decode_ws_add(d, c);
			} else if (c == '\r') {
				d->state = MD_DQP_SOFTCR;
			} else if (c == '\n') {
				d->ws = 0;
				d->state = MD_DQP_TEXT;
			} else {
				d->bad = true;
				md_decode_put(o, '=');
				md_decode_putn(o, d->wsbuf, d->ws);
				d->ws = 0;
				d->state = MD_DQP_TEXT;
				continue;
			}
			break;
		case MD_DQP_CR:
		case MD_DQP_SOFTCR:
			if (c == '\n') {
				if (d->state == MD_DQP_CR)
					md_decode_putn(o, "\r\n", 2);
				d->ws = 0;
				d->state = MD_DQP_TEXT;
			} else {
				/* a CR without LF */
				d->bad = true;
				if (d->state == MD_DQP_SOFTCR)
					md_decode_put(o, '=');
				md_decode_putn(o, d->wsbuf, d->ws);
				md_decode_put(o, '\r');
				d->ws = 0;
				d->state = MD_DQP_TEXT;
				continue;
			}
			break;
		}
		i++;
	}
}

int md_decoder_feed(struct md_decoder *d, const void *in, size_t n,
		    struct buf *out)
{
	struct md_decode_out o = { .buf = out };

	switch (d->cte) {
	case MD_CTE_BASE64:
		md_decode_b64(d, in, n, &o);
		break;
	case MD_CTE_QP:
		md_decode_qp(d, in, n, &o);
		break;
	default:
		return buf_append(out, in, n);
	}
	md_decode_flush(&o);
	return o.failed;
}

int md_decoder_finish(struct md_decoder *d, struct buf *out)
{
	struct md_decode_out o = { .buf = out };

	if (d->cte == MD_CTE_BASE64) {
		if (d->state == MD_DB64_PAD1 ||
		    (d->state == MD_DB64_DATA && d->sub != 0 && !d->lenient))
			d->bad = true;
	} else if (d->cte == MD_CTE_QP) {
		switch (d->state) {
		case MD_DQP_TEXT:
		case MD_DQP_WS: /* trailing whitespace at the end goes */
			break;
		case MD_DQP_EQ:
		case MD_DQP_EQ_WS:
		case MD_DQP_SOFTCR:
			d->bad = true;
			md_decode_put(&o, '=');
			md_decode_putn(&o, d->wsbuf, d->ws);
			if (d->state == MD_DQP_SOFTCR)
				md_decode_put(&o, '\r');
			break;
		case MD_DQP_HEX2:
			d->bad = true;
			md_decode_put(&o, '=');
			md_decode_put(&o, d->hex1);
			break;
		case MD_DQP_CR:
			d->bad = true;
			md_decode_putn(&o, d->wsbuf, d->ws);
			md_decode_put(&o, '\r');
			break;
		}
	}
	d->state = 0;
	d->ws = 0;
	md_decode_flush(&o);
	return o.failed;
}

int md_decode_q_word(const char *in, size_t n, struct buf *out)
{
	struct md_decode_out o = { .buf = out };

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		int h1, h2;

		if (c == '_') {
			md_decode_put(&o, ' ');
		} else if (c == '=' && i + 2 < n &&
			   (h1 = md_decode_hex((unsigned char)in[i + 1])) >= 0 &&
			   (h2 = md_decode_hex((unsigned char)in[i + 2])) >= 0) {
			md_decode_put(&o, (unsigned char)(h1 << 4 | h2));
			i += 2;
		} else {
			md_decode_put(&o, c);
		}
	}
	md_decode_flush(&o);
	return o.failed;
}

/* ------------------------------------------------------------------ */
/* BINARY */

struct md_binary {
	int fd;
	const struct md_meta *meta;
	struct buf out;      /* preallocated to the expected size and capped
			      * there: an append fails only on a mismatch */
	char *chunk;
	int read_errno;      /* a pread failure (0: none, or a short file) */
};

static bool md_binary_converted(uint8_t cte)
{
	return cte == MD_CTE_BASE64 || cte == MD_CTE_QP;
}

static int md_binary_pread(struct md_binary *b, uint64_t off, size_t n,
			   char *dst)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(b->fd, dst + done, n - done,
				  (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			b->read_errno = errno;
		if (r <= 0)
			return -1; /* error, or the file is shorter than indexed */
		done += (size_t)r;
	}
	return 0;
}

/* the stored octets [off, off + len) through a decoder (cte 7bit: as is) */
static int md_binary_range(struct md_binary *b, uint64_t off, uint64_t len,
			   enum md_cte cte)
{
	struct md_decoder d;

	md_decoder_init(&d, cte, false);
	while (len > 0) {
		size_t n = len > MD_DECODE_CHUNK ? MD_DECODE_CHUNK : (size_t)len;

		if (md_binary_pread(b, off, n, b->chunk) < 0 ||
		    md_decoder_feed(&d, b->chunk, n, &b->out) < 0)
			return -1;
		off += n;
		len -= n;
	}
	if (md_decoder_finish(&d, &b->out) < 0 || d.bad)
		return -1;
	return 0;
}

/* A decoded part's header: its Content-Transfer-Encoding field(s) go and
 * one "binary" line follows the last field, before the empty line (where
 * Dovecot puts it; RFC 3516 does not say). */
static int md_binary_header(struct md_binary *b, const struct md_part *p)
{
	size_t len = (size_t)p->header_len, pos = 0, last = 0;
	struct md_hdr_iter it;
	struct md_field f;
	char *hdr;
	int ret = -1;

	hdr = malloc(len + 1);
	if (hdr == NULL)
		return -1;
	if (md_binary_pread(b, p->header_off, len, hdr) < 0)
		goto out;
	md_mime_hdr_init(&it, hdr, 0, len);
	while (md_mime_hdr_next(&it, &f) > 0) {
		last = f.next;
		if (!md_mime_field_is(hdr, &f, "Content-Transfer-Encoding"))
			continue;
		if (buf_append(&b->out, hdr + pos, f.start - pos) < 0)
			goto out;
		pos = f.next;
	}
	if (last < pos)
		last = pos;
	if (buf_append(&b->out, hdr + pos, last - pos) < 0 ||
	    buf_append(&b->out, MD_DECODE_CTE_BINARY_LINE,
		       strlen(MD_DECODE_CTE_BINARY_LINE)) < 0 ||
	    buf_append(&b->out, hdr + last, len - last) < 0)
		goto out;
	ret = 0;
out:
	free(hdr);
	return ret;
}

/* The body of part i as BINARY gives it (see the top of the file). */
static int md_binary_body(struct md_binary *b, uint32_t i)
{
	const struct md_meta *m = b->meta;
	const struct md_part *p = &m->parts[i];
	uint64_t pos = p->body_off, end = p->body_off + p->body_len;
	uint32_t j;

	if (md_binary_converted(p->cte) || p->first_child == MD_PART_NONE)
		return md_binary_range(b, p->body_off, p->body_len,
				       (enum md_cte)p->cte);
	/* the subtree is the index range after i (depth-first order);
	 * inside an encoded part nothing is looked at separately */
	for (j = i + 1; j < m->n_parts; j++) {
		const struct md_part *q = &m->parts[j];
		uint32_t a = q->parent;
		bool hidden = false;

		while (a != MD_PART_NONE && a > i) {
			if (md_binary_converted(m->parts[a].cte))
				hidden = true;
			a = m->parts[a].parent;
		}
		if (a != i)
			break;
		if (hidden || !md_binary_converted(q->cte))
			continue;
		if (q->header_off < pos ||
		    md_binary_range(b, pos, q->header_off - pos, MD_CTE_7BIT) < 0 ||
		    md_binary_header(b, q) < 0 ||
		    md_binary_range(b, q->body_off, q->body_len,
				    (enum md_cte)q->cte) < 0)
			return -1;
		pos = q->body_off + q->body_len;
	}
	if (pos > end)
		return -1;
	return md_binary_range(b, pos, end - pos, MD_CTE_7BIT);
}

/* section-binary (RFC 3516 §6): part numbers only */
static bool md_binary_spec_ok(const char *spec)
{
	for (const char *p = spec; *p != '\0'; p++) {
		if (!(*p >= '0' && *p <= '9') && *p != '.')
			return false;
	}
	return true;
}

enum md_result md_msg_binary(struct md_mailbox *mb, struct md_msg *msg,
			     const char *spec, char **data_r, size_t *len_r)
{
	struct md_binary b;
	struct md_section sec;
	const struct md_part *p;
	uint64_t expect, hdr_max = 0;
	uint32_t part = 0;
	enum md_result r;
	int rc;

	*data_r = NULL;
	*len_r = 0;
	if (msg->meta == NULL) {
		md_user_seterr(mb->user, "BINARY of UID %u without metadata",
			       msg->uid);
		return MD_TEMPFAIL;
	}
	if (spec == NULL || !md_binary_spec_ok(spec) ||
	    (rc = md_msg_section(msg, spec, &sec)) < 0 ||
	    (rc == 0 && md_meta_section(msg->meta, spec, &sec.offset,
					&sec.length, &part) != 0))
		return MD_BADNAME;
	if (rc > 0) {
		/* no such part: an empty string (RFC 3516 §4.2, as BODY[]) */
		*data_r = malloc(1);
		if (*data_r == NULL)
			return MD_TEMPFAIL;
		(*data_r)[0] = '\0';
		return MD_OK;
	}
	if (!sec.decodable)
		return MD_BADMSG; /* sec.encoding tells UNKNOWN-CTE from PARSE */
	p = &msg->meta->parts[part];
	expect = p->binary_size;
	if (spec[0] == '\0') {
		/* the whole message: its header comes first, which may
		 * gain a replacement line */
		hdr_max = p->header_len + strlen(MD_DECODE_CTE_BINARY_LINE);
	}
	/* decoding at most doubles (QP: LF -> CRLF); a larger size comes
	 * from a damaged index record */
	if (expect / 2 > msg->meta->size + hdr_max) {
		md_user_seterr(mb->user, "BINARY of UID %u: bad size", msg->uid);
		return MD_CORRUPT;
	}
	memset(&b, 0, sizeof(b));
	b.meta = msg->meta;
	b.fd = -1;
	buf_init(&b.out, (size_t)(expect + hdr_max));
	b.out.data = malloc((size_t)(expect + hdr_max) + 1);
	b.chunk = malloc(MD_DECODE_CHUNK);
	if (b.out.data == NULL || b.chunk == NULL) {
		r = MD_TEMPFAIL;
		goto out;
	}
	b.out.cap = (size_t)(expect + hdr_max) + 1;
	if ((r = md_msg_open(mb, msg, &b.fd)) != MD_OK)
		goto out;
	if (spec[0] == '\0') {
		if (md_binary_converted(p->cte))
			rc = md_binary_header(&b, p);
		else
			rc = md_binary_range(&b, p->header_off, p->header_len,
					     MD_CTE_7BIT);
		if (rc < 0)
			goto mismatch;
		expect += b.out.len;
	}
	if (md_binary_body(&b, part) < 0 || b.out.len != expect)
		goto mismatch;
	b.out.data[b.out.len] = '\0'; /* within the cap's extra octet */
	*data_r = b.out.data;
	*len_r = b.out.len;
	b.out.data = NULL;
	r = MD_OK;
	goto out;
mismatch:
	if (b.read_errno != 0) {
		md_user_seterr(mb->user, "%s: %s", msg->path,
			       strerror(b.read_errno));
		r = MD_TEMPFAIL;
	} else {
		/* the file no longer matches what was indexed */
		md_user_seterr(mb->user, "BINARY[%s] of UID %u: the message "
			       "file does not match its index entry", spec,
			       msg->uid);
		r = MD_CORRUPT;
	}
out:
	if (b.fd >= 0)
		close(b.fd);
	free(b.chunk);
	buf_free(&b.out);
	return r;
}
