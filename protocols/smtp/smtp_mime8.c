/* 8-bit to 7-bit conversion for servers without 8BITMIME (RFC 6152 §3:
 * "the sending SMTP ... must convert the message to 7 bit").
 *
 * Every MIME leaf whose body holds 8-bit octets and whose
 * Content-Transfer-Encoding is 7bit, 8bit or absent is re-encoded as
 * quoted-printable (RFC 2045 §6.7) and its Content-Transfer-Encoding field
 * replaced; multiparts are walked by their boundaries (RFC 2046 §5.1.1) and
 * everything else is copied byte for byte.  What cannot be converted that
 * way makes the whole conversion fail, and the message bounces with 5.6.3
 * (smtp_client.c): 8-bit octets in a header block (would need RFC 2047),
 * in a preamble or epilogue, inside a message/ type (RFC 2046 §5.2.1 forbids
 * encoding it), under base64/quoted-printable/binary, a multipart without
 * boundary, or nesting deeper than MIME8_DEPTH_MAX.
 *
 * Runs on a worker; input is the queued message (CRLF lines).
 */
#include "smtp_queue.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MIME8_DEPTH_MAX 32     /* LIBRARIES.md: our MIME scanner's limit */
#define MIME8_VALUE_MAX 1024   /* an unfolded Content-Type we look into */
#define MIME8_BOUNDARY_MAX 70  /* RFC 2046 §5.1.1 */
#define MIME8_QP_LINE 76       /* RFC 2045 §6.7 rule 5, with the '=' */

static bool mime8_has8(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* Unfolded value of the first field called name in the header block, or
 * false when absent. */
static bool mime8_field(const char *h, size_t hlen, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name), o = 0;

	for (size_t i = 0; i < hlen;) {
		const char *eol = memchr(h + i, '\n', hlen - i);
		size_t end = eol != NULL ? (size_t)(eol - h) + 1 : hlen;
		if (end - i > nlen && strncasecmp(h + i, name, nlen) == 0 && h[i + nlen] == ':') {
			size_t j = i + nlen + 1;
			for (;;) {
				for (; j < end && o + 1 < outlen; j++)
					if (h[j] != '\r' && h[j] != '\n')
						out[o++] = h[j];
				if (end >= hlen || (h[end] != ' ' && h[end] != '\t'))
					break;
				j = end;
				eol = memchr(h + j, '\n', hlen - j);
				end = eol != NULL ? (size_t)(eol - h) + 1 : hlen;
			}
			out[o] = '\0';
			return true;
		}
		i = end;
	}
	return false;
}

/* "multipart/mixed" from a Content-Type value, lower case. */
static void mime8_type(const char *v, char *out, size_t outlen)
{
	size_t o = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v != '\0' && *v != ';' && *v != ' ' && *v != '\t' && o + 1 < outlen; v++)
		out[o++] = (char)((*v >= 'A' && *v <= 'Z') ? *v + 32 : *v);
	out[o] = '\0';
}

static bool mime8_boundary(const char *v, char *out, size_t outlen)
{
	const char *p = v;
	size_t o = 0;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && o + 1 < outlen; p++)
				out[o++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' && *p != '\t' && o + 1 < outlen; p++)
				out[o++] = *p;
		}
		out[o] = '\0';
		return o > 0 && o <= MIME8_BOUNDARY_MAX;
	}
	return false;
}

/* RFC 2045 §6.7: quoted-printable of CRLF text. */
static int mime8_qp(const char *p, size_t len, struct buf *out)
{
	size_t col = 0;
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)p[i];
		bool eol = i + 1 == len || (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n');
		char enc[4];
		size_t n = 1;
		if (c == '\r' && i + 1 < len && p[i + 1] == '\n') {
			rc |= buf_append(out, "\r\n", 2);
			col = 0;
			i++;
			continue;
		}
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol))
			enc[0] = (char)c;
		else
			n = (size_t)snprintf(enc, sizeof(enc), "=%02X", c);
		if (col + n > MIME8_QP_LINE - 1) {
			rc |= buf_append(out, "=\r\n", 3); /* soft line break */
			col = 0;
		}
		rc |= buf_append(out, enc, n);
		col += n;
	}
	return rc < 0 ? -1 : 0;
}

/* The header block without Content-Transfer-Encoding fields. */
static int mime8_copy_headers(const char *h, size_t hlen, struct buf *out)
{
	bool skip = false;
	int rc = 0;

	for (size_t i = 0; i < hlen;) {
		const char *eol = memchr(h + i, '\n', hlen - i);
		size_t end = eol != NULL ? (size_t)(eol - h) + 1 : hlen;
		if (h[i] != ' ' && h[i] != '\t')
			skip = end - i > 26 && strncasecmp(h + i, "Content-Transfer-Encoding:", 26) == 0;
		if (!skip)
			rc |= buf_append(out, h + i, end - i);
		i = end;
	}
	return rc;
}

static int mime8_entity(const char *p, size_t len, unsigned depth, bool digest, struct buf *out);

/* The body of a multipart: preamble, parts, epilogue. */
static int mime8_multipart(const char *b, size_t blen, const char *boundary, bool digest,
			   unsigned depth, struct buf *out)
{
	size_t bl = strlen(boundary), seg = 0;
	bool in_part = false, closed = false;

	for (size_t ls = 0; ls < blen && !closed;) {
		const char *eol = memchr(b + ls, '\n', blen - ls);
		size_t le = eol != NULL ? (size_t)(eol - b) + 1 : blen;
		size_t n = le - ls, k = 2 + bl;
		bool close;
		if (n < k || b[ls] != '-' || b[ls + 1] != '-' || memcmp(b + ls + 2, boundary, bl) != 0) {
			ls = le;
			continue;
		}
		close = n >= k + 2 && b[ls + k] == '-' && b[ls + k + 1] == '-';
		if (close)
			k += 2;
		while (k < n && (b[ls + k] == ' ' || b[ls + k] == '\t'))
			k++;
		if (!(k == n || (b[ls + k] == '\r' && k + 2 == n))) {
			ls = le; /* "--boundary" followed by more: not a delimiter */
			continue;
		}
		/* the CRLF before a delimiter belongs to it (RFC 2046 §5.1.1) */
		size_t end = ls >= seg + 2 ? ls - 2 : seg;
		if (in_part ? mime8_entity(b + seg, end - seg, depth + 1, digest, out) < 0
			    : (mime8_has8(b + seg, end - seg) ||
			       buf_append(out, b + seg, end - seg) < 0))
			return -1;
		if (ls >= seg + 2 && buf_append(out, "\r\n", 2) < 0)
			return -1;
		if (buf_append(out, b + ls, n) < 0)
			return -1;
		seg = le;
		ls = le;
		in_part = true;
		closed = close;
	}
	if (!closed)
		return -1; /* no close delimiter: do not guess */
	if (mime8_has8(b + seg, blen - seg)) /* epilogue */
		return -1;
	return buf_append(out, b + seg, blen - seg);
}

static int mime8_entity(const char *p, size_t len, unsigned depth, bool digest, struct buf *out)
{
	char value[MIME8_VALUE_MAX], type[128], boundary[MIME8_BOUNDARY_MAX + 2];
	const char *body, *sep;
	size_t hlen;

	if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
		hlen = 0;
	} else {
		sep = memmem(p, len, "\r\n\r\n", 4);
		hlen = sep != NULL ? (size_t)(sep - p) + 2 : len;
	}
	body = p + (hlen + 2 <= len ? hlen + 2 : len);
	if (mime8_has8(p, hlen))
		return -1; /* would need RFC 2047 words: not done */
	if (!mime8_has8(body, (size_t)(p + len - body)))
		return buf_append(out, p, len); /* nothing to do here */
	if (depth >= MIME8_DEPTH_MAX)
		return -1;
	if (mime8_field(p, hlen, "Content-Type", value, sizeof(value)))
		mime8_type(value, type, sizeof(type));
	else
		str_copy(type, digest ? "message/rfc822" : "text/plain", sizeof(type));
	if (strncmp(type, "multipart/", 10) == 0) {
		if (!mime8_boundary(value, boundary, sizeof(boundary)))
			return -1;
		if (buf_append(out, p, (size_t)(body - p)) < 0)
			return -1;
		return mime8_multipart(body, (size_t)(p + len - body), boundary,
				       strcmp(type, "multipart/digest") == 0, depth, out);
	}
	if (strncmp(type, "message/", 8) == 0)
		return -1;
	if (mime8_field(p, hlen, "Content-Transfer-Encoding", value, sizeof(value))) {
		mime8_type(value, type, sizeof(type));
		if (strcmp(type, "7bit") != 0 && strcmp(type, "8bit") != 0)
			return -1;
	}
	if (mime8_copy_headers(p, hlen, out) < 0)
		return -1;
	if (depth == 0 && !mime8_field(p, hlen, "MIME-Version", value, sizeof(value)) &&
	    buf_append(out, "MIME-Version: 1.0\r\n", 19) < 0)
		return -1;
	if (buf_append(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n", 47) < 0)
		return -1;
	return mime8_qp(body, (size_t)(p + len - body), out);
}

int mime8_downgrade(const char *msg, size_t len, struct buf *out)
{
	if (!mime8_has8(msg, len))
		return 0;
	return mime8_entity(msg, len, 0, false, out) < 0 ? -1 : 1;
}
