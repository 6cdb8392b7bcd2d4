/* The body test's transforms (RFC 5173 §5): :raw is the body as sent;
 * :text and :content walk the MIME structure (RFC 2046 §5.1) and give
 * each leaf part they select with its transfer encoding (base64,
 * quoted-printable) undone.  :text selects the text parts (text/...) (and parts
 * without a Content-Type, text/plain by default); :content those whose
 * type is listed ("" all, "text" a top-level type, "text/html" exactly).
 * Charsets are not converted: the octets are compared as they are, which
 * is right for UTF-8 and US-ASCII.
 *
 * Bounds: SIEVE_MIME_DEPTH levels of multipart, SIEVE_MIME_PARTS parts;
 * a part is decoded into a buffer of its own size and freed at once.
 */
#include "sieve_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#define SIEVE_MIME_DEPTH 8        /* nested multiparts */
#define SIEVE_MIME_PARTS 256      /* parts looked at in one message */
#define SIEVE_BOUNDARY_MAX 70     /* RFC 2046 §5.1.1 */

struct sv_part_walk {
	const struct sv_arg *types; /* :content; NULL: :text */
	sv_value_fn *fn;
	void *ctx;
	unsigned parts;
};

/* The media type of a Content-Type value in type_r ("text/plain" when
 * absent, RFC 2045 §5.2), lower case, and its boundary parameter. */
static void sv_content_type(const char *v, char *type_r, size_t tlen, char *boundary_r)
{
	size_t n = 0;
	const char *b;

	boundary_r[0] = '\0';
	if (v == NULL) {
		snprintf(type_r, tlen, "text/plain");
		return;
	}
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v != '\0' && *v != ';' && *v != ' ' && *v != '\t' && n + 1 < tlen; v++)
		type_r[n++] = (char)((*v >= 'A' && *v <= 'Z') ? *v - 'A' + 'a' : *v);
	type_r[n] = '\0';
	for (b = v; (b = strchr(b, ';')) != NULL; b++) {
		const char *p = b + 1;
		size_t k = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && k < SIEVE_BOUNDARY_MAX; p++)
				boundary_r[k++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' && k < SIEVE_BOUNDARY_MAX; p++)
				boundary_r[k++] = *p;
		}
		boundary_r[k] = '\0';
		break;
	}
}

static bool sv_type_selected(const struct sv_part_walk *w, const char *type)
{
	if (w->types == NULL)
		return strncmp(type, "text/", 5) == 0;
	for (size_t i = 0; i < w->types->n_strs; i++) {
		const char *want = w->types->strs[i].s;
		size_t wl = strlen(want);
		if (wl == 0 || (strncasecmp(type, want, wl) == 0 &&
				(type[wl] == '\0' || (type[wl] == '/' && strchr(want, '/') == NULL))))
			return true;
	}
	return false;
}

/* Quoted-printable (RFC 2045 §6.7) into out; returns its length. */
static size_t sv_decode_qp(const char *p, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] != '=') {
			out[o++] = p[i];
		} else if (i + 2 < len && sv_hex(p[i + 1]) >= 0 && sv_hex(p[i + 2]) >= 0) {
			out[o++] = (char)(sv_hex(p[i + 1]) * 16 + sv_hex(p[i + 2]));
			i += 2;
		} else if (i + 1 < len && (p[i + 1] == '\r' || p[i + 1] == '\n')) {
			i += p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n' ? 2 : 1; /* soft break */
		} else {
			out[o++] = p[i];
		}
	}
	return o;
}

/* One leaf part: its header [h, h+hl), its body [b, b+bl). */
static int sv_leaf(struct sv_part_walk *w, const char *h, size_t hl, const char *b, size_t bl,
		   const char *type)
{
	struct sieve_message part = { .header = h, .header_len = hl };
	char *cte = sieve_header_first(&part, "Content-Transfer-Encoding"), *dec;
	size_t n;
	int rc;

	if (!sv_type_selected(w, type)) {
		free(cte);
		return 0;
	}
	dec = malloc(bl + 1);
	if (dec == NULL) {
		free(cte);
		return -1;
	}
	if (cte != NULL && strcasecmp(cte, "base64") == 0)
		n = sv_decode_b64(b, bl, dec);
	else if (cte != NULL && strcasecmp(cte, "quoted-printable") == 0)
		n = sv_decode_qp(b, bl, dec);
	else
		n = (memcpy(dec, b, bl), bl);
	dec[n] = '\0';
	free(cte);
	rc = w->fn(w->ctx, dec, n);
	free(dec);
	return rc;
}

/* The header block of an entity at p: its length up to and including the
 * blank line (0 when the entity starts with it), and where the body is. */
static size_t sv_split_entity(const char *p, size_t len, const char **body_r, size_t *blen_r)
{
	const char *e = NULL;

	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		e = p;
	else if (len >= 1 && p[0] == '\n')
		e = p;
	for (size_t i = 0; e == NULL && i + 1 < len; i++)
		if (p[i] == '\n' && (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < len &&
							      p[i + 2] == '\n')))
			e = p + i + 1;
	if (e == NULL) {
		*body_r = p + len;
		*blen_r = 0;
		return len;
	}
	*body_r = e + (e[0] == '\r' ? 2 : 1);
	*blen_r = len - (size_t)(*body_r - p);
	return (size_t)(e - p);
}

static int sv_walk(struct sv_part_walk *w, const char *h, size_t hl, const char *b, size_t bl,
		   int depth);

/* The parts of a multipart body between "--boundary" lines. */
static int sv_walk_multipart(struct sv_part_walk *w, const char *b, size_t bl,
			     const char *boundary, int depth)
{
	char delim[SIEVE_BOUNDARY_MAX + 3];
	size_t dl = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	const char *part = NULL, *p = b, *end = b + bl;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl != NULL ? nl + 1 : end;
		bool at_delim = (size_t)(end - p) >= dl && memcmp(p, delim, dl) == 0;
		if (at_delim) {
			bool last = (size_t)(end - p) >= dl + 2 && p[dl] == '-' && p[dl + 1] == '-';
			if (part != NULL) {
				/* the line end before the delimiter belongs to it */
				const char *pe = p;
				const char *pb;
				size_t pbl, phl;
				if (pe > part && pe[-1] == '\n')
					pe--;
				if (pe > part && pe[-1] == '\r')
					pe--;
				phl = sv_split_entity(part, (size_t)(pe - part), &pb, &pbl);
				if (++w->parts > SIEVE_MIME_PARTS)
					return 0;
				int rc = sv_walk(w, part, phl, pb, pbl, depth + 1);
				if (rc != 0)
					return rc;
			}
			if (last)
				return 0;
			part = next;
		}
		p = next;
	}
	return 0;
}

static int sv_walk(struct sv_part_walk *w, const char *h, size_t hl, const char *b, size_t bl,
		   int depth)
{
	struct sieve_message ent = { .header = h, .header_len = hl };
	char *ct = sieve_header_first(&ent, "Content-Type");
	char type[128], boundary[SIEVE_BOUNDARY_MAX + 1];
	int rc;

	sv_content_type(ct, type, sizeof(type), boundary);
	free(ct);
	if (strncmp(type, "multipart/", 10) == 0 && boundary[0] != '\0' &&
	    depth < SIEVE_MIME_DEPTH) {
		/* RFC 5173 §5.2: :content "multipart" matches its own text
		 * (preamble and epilogue); we leave that out */
		rc = sv_walk_multipart(w, b, bl, boundary, depth);
	} else {
		rc = sv_leaf(w, h, hl, b, bl, type);
	}
	return rc;
}

int sv_body_each(const struct sieve_message *msg, const struct sv_arg *types, sv_value_fn *fn,
		 void *ctx)
{
	struct sv_part_walk w = { .types = types, .fn = fn, .ctx = ctx };

	return sv_walk(&w, msg->header, msg->header_len, msg->body != NULL ? msg->body : "",
		       msg->body_len, 0);
}
