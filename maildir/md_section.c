/* IMAP section byte ranges (RFC 3501 §6.4.5) and the packed form of
 * struct md_meta kept in the index.
 *
 * Packed record, version 3.  Every integer is an unsigned LEB128 varint
 * (7 bits per octet, low bits first, at most 10 octets); sent_date is
 * zig-zag encoded first.  Fields in order:
 *
 *   version            = 3 (1 and 2 are read too: 1 lacks references,
 *                        both lack the preview)
 *   size               RFC822.SIZE
 *   sent_date          zig-zag
 *   n_parts            1 .. MD_META_PARTS_MAX
 *   n_parts times:
 *     parent + 1       0 for the root (MD_PART_NONE), else index + 1
 *     first_child + 1  0 for none
 *     next_sibling + 1 0 for none
 *     header_off, header_len, body_len, body_lines, binary_size
 *                      (body_off is header_off + header_len)
 *     cte              enum md_cte
 *     flags            bit 0 multipart, bit 1 message, bit 2 binary_ok
 *   envelope_len, envelope octets
 *   body_len, body octets
 *   bodystructure_len, bodystructure octets
 *   references_len, references octets      (version 2; 0: none)
 *   preview_len, preview octets            (version 3; 0: "")
 *
 * Metadata without a preview (read from a version 1 or 2 record) packs
 * as version 2, so that it stays unknown rather than becoming "".
 *
 * Nothing may follow.  Unpacking checks every value against the rest of
 * the record: ranges inside the message and inside their parent, the
 * tree links in depth-first order (which md_meta_binary_status() and
 * section lookup rely on), no NUL in the strings.  A damaged record
 * gives -1.  A new field means a new version number.  Version 1 records
 * (written before References was kept) still read, with references
 * NULL: THREAD=REFERENCES then threads those messages by In-Reply-To
 * alone until `postern reindex` recomputes them from the Maildir.
 * Version 1 and 2 records read with preview NULL: FETCH PREVIEW then
 * computes it from the file (md_msg_preview_compute()) and PREVIEW
 * (LAZY) answers NIL (RFC 8970 §4), until `postern reindex`.
 */
#include "md_meta_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MD_SECTION_VERSION 3
#define MD_SECTION_VERSION_NOPREVIEW 2 /* before the preview was kept */
#define MD_SECTION_VERSION_NOREFS 1 /* before References was kept */
#define MD_SECTION_VARINT_MAX 10 /* octets of a 64-bit LEB128 varint */
/* nesting of part numbers in a section spec: beyond what any stored
 * part can have */
#define MD_SECTION_PATH_MAX (2 * MD_META_DEPTH_MAX + 2)

enum md_section_pflag {
	MD_SECTION_F_MULTIPART = 1 << 0,
	MD_SECTION_F_MESSAGE = 1 << 1,
	MD_SECTION_F_BINARY_OK = 1 << 2,
};

/* ------------------------------------------------------------------ */
/* Sections */

enum md_section_text {
	MD_SECTION_NONE,
	MD_SECTION_HEADER,
	MD_SECTION_TEXT,
	MD_SECTION_MIME,
};

/* section-part: nz-number *("." nz-number), then optionally "." and a
 * section-text; or a bare section-msgtext (RFC 3501 §9). */
static int md_section_parse(const char *spec, uint32_t *nums, size_t *n_r,
			    enum md_section_text *text_r)
{
	const char *p = spec;
	size_t n = 0;

	*text_r = MD_SECTION_NONE;
	while (*p >= '1' && *p <= '9') {
		uint64_t v = 0;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > UINT32_MAX)
				return -1;
			p++;
		}
		if (n == MD_SECTION_PATH_MAX)
			return -1;
		nums[n++] = (uint32_t)v;
		if (*p == '\0')
			break;
		if (*p != '.')
			return -1;
		p++;
		if (*p == '\0')
			return -1;
	}
	*n_r = n;
	if (*p == '\0')
		return 0;
	if (strcasecmp(p, "HEADER") == 0)
		*text_r = MD_SECTION_HEADER;
	else if (strcasecmp(p, "TEXT") == 0)
		*text_r = MD_SECTION_TEXT;
	else if (strcasecmp(p, "MIME") == 0 && n > 0)
		*text_r = MD_SECTION_MIME;
	else
		return -1;
	return 0;
}

int md_meta_section(const struct md_meta *meta, const char *spec,
		    uint64_t *off_r, uint64_t *len_r, uint32_t *part_r)
{
	uint32_t nums[MD_SECTION_PATH_MAX];
	enum md_section_text text;
	const struct md_part *p;
	uint32_t part = 0;
	size_t n, k;

	if (spec == NULL ||
	    md_section_parse(spec, nums, &n, &text) < 0)
		return -1;
	if (meta->n_parts == 0)
		return 1;
	/* RFC 3501 §6.4.5: a non-multipart message has only part 1, its
	 * body; a message/rfc822 part's numbers go on into the encapsulated
	 * message */
	for (k = 0; k < n; k++) {
		uint32_t num = nums[k];

		p = &meta->parts[part];
		if (p->is_multipart) {
			part = p->first_child;
			while (num > 1 && part != MD_PART_NONE) {
				part = meta->parts[part].next_sibling;
				num--;
			}
		} else if (num != 1 || (k + 1 < n && !p->is_message)) {
			part = MD_PART_NONE;
		}
		if (part == MD_PART_NONE)
			return 1;
		if (k + 1 < n && meta->parts[part].is_message) {
			part = meta->parts[part].first_child;
			if (part == MD_PART_NONE)
				return 1;
		}
	}
	if (n > 0 && (text == MD_SECTION_HEADER || text == MD_SECTION_TEXT)) {
		/* x.HEADER / x.TEXT exist only for message/rfc822 parts */
		if (!meta->parts[part].is_message ||
		    meta->parts[part].first_child == MD_PART_NONE)
			return 1;
		part = meta->parts[part].first_child;
	}
	p = &meta->parts[part];
	switch (text) {
	case MD_SECTION_NONE:
		if (n == 0) {
			*off_r = 0;
			*len_r = meta->size;
		} else {
			*off_r = p->body_off;
			*len_r = p->body_len;
		}
		break;
	case MD_SECTION_HEADER:
	case MD_SECTION_MIME:
		*off_r = p->header_off;
		*len_r = p->header_len;
		break;
	case MD_SECTION_TEXT:
		*off_r = p->body_off;
		*len_r = p->body_len;
		break;
	}
	if (part_r != NULL)
		*part_r = part;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Packing */

static int md_section_put(struct buf *out, uint64_t v)
{
	unsigned char b[MD_SECTION_VARINT_MAX];
	size_t n = 0;

	do {
		b[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	return buf_append(out, b, n);
}

static int md_section_put_str(struct buf *out, const char *s, size_t len)
{
	if (md_section_put(out, len) < 0)
		return -1;
	return buf_append(out, s, len);
}

static uint32_t md_section_idx1(uint32_t idx)
{
	return idx == MD_PART_NONE ? 0 : idx + 1;
}

int md_meta_pack(const struct md_meta *meta, struct buf *out)
{
	uint64_t zz;
	uint32_t i;

	zz = meta->sent_date < 0 ? ((uint64_t)(-(meta->sent_date + 1)) << 1) | 1 :
		(uint64_t)meta->sent_date << 1;
	/* no preview (a record read in version 1 or 2, repacked): version
	 * 2 keeps it unknown, not "" (a message without text) */
	if (md_section_put(out, meta->preview != NULL ? MD_SECTION_VERSION :
			   MD_SECTION_VERSION_NOPREVIEW) < 0 ||
	    md_section_put(out, meta->size) < 0 ||
	    md_section_put(out, zz) < 0 ||
	    md_section_put(out, meta->n_parts) < 0)
		return -1;
	for (i = 0; i < meta->n_parts; i++) {
		const struct md_part *p = &meta->parts[i];
		unsigned int fl = (p->is_multipart ? MD_SECTION_F_MULTIPART : 0) |
			(p->is_message ? MD_SECTION_F_MESSAGE : 0) |
			(p->binary_ok ? MD_SECTION_F_BINARY_OK : 0);

		if (md_section_put(out, md_section_idx1(p->parent)) < 0 ||
		    md_section_put(out, md_section_idx1(p->first_child)) < 0 ||
		    md_section_put(out, md_section_idx1(p->next_sibling)) < 0 ||
		    md_section_put(out, p->header_off) < 0 ||
		    md_section_put(out, p->header_len) < 0 ||
		    md_section_put(out, p->body_len) < 0 ||
		    md_section_put(out, p->body_lines) < 0 ||
		    md_section_put(out, p->binary_size) < 0 ||
		    md_section_put(out, p->cte) < 0 ||
		    md_section_put(out, fl) < 0)
			return -1;
	}
	if (md_section_put_str(out, meta->envelope, meta->envelope_len) < 0 ||
	    md_section_put_str(out, meta->body, meta->body_len) < 0 ||
	    md_section_put_str(out, meta->bodystructure,
			       meta->bodystructure_len) < 0 ||
	    md_section_put_str(out, meta->references != NULL ?
			       meta->references : "",
			       meta->references_len) < 0 ||
	    (meta->preview != NULL &&
	     md_section_put_str(out, meta->preview, meta->preview_len) < 0))
		return -1;
	return 0;
}

struct md_section_rd {
	const unsigned char *p, *end;
};

static int md_section_get(struct md_section_rd *rd, uint64_t *v_r)
{
	uint64_t v = 0;
	unsigned int shift = 0, n;

	for (n = 0; n < MD_SECTION_VARINT_MAX; n++) {
		unsigned char b;

		if (rd->p >= rd->end)
			return -1;
		b = *rd->p++;
		if (n == MD_SECTION_VARINT_MAX - 1 && (b & 0x7e) != 0)
			return -1; /* more than 64 bits */
		v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if ((b & 0x80) == 0) {
			*v_r = v;
			return 0;
		}
	}
	return -1;
}

static int md_section_get_max(struct md_section_rd *rd, uint64_t max,
			      uint64_t *v_r)
{
	if (md_section_get(rd, v_r) < 0 || *v_r > max)
		return -1;
	return 0;
}

static int md_section_get_str(struct md_section_rd *rd, char **s_r,
			      size_t *len_r)
{
	uint64_t len;
	char *s;

	if (md_section_get(rd, &len) < 0 ||
	    len > (uint64_t)(rd->end - rd->p))
		return -1;
	if (memchr(rd->p, '\0', (size_t)len) != NULL)
		return -1;
	s = malloc((size_t)len + 1);
	if (s == NULL)
		return -1;
	memcpy(s, rd->p, (size_t)len);
	s[len] = '\0';
	rd->p += len;
	*s_r = s;
	*len_r = (size_t)len;
	return 0;
}

static int md_section_get_idx(struct md_section_rd *rd, uint32_t n,
			      uint32_t *idx_r)
{
	uint64_t v;

	if (md_section_get_max(rd, n, &v) < 0)
		return -1;
	*idx_r = v == 0 ? MD_PART_NONE : (uint32_t)(v - 1);
	return 0;
}

/* The tree must be exactly the depth-first order 0, 1, ... n-1, every
 * range inside its parent's body and after its previous sibling. */
static int md_section_check_tree(const struct md_meta *m)
{
	uint32_t i, n = m->n_parts;

	if (m->parts[0].parent != MD_PART_NONE ||
	    m->parts[0].next_sibling != MD_PART_NONE)
		return -1;
	for (i = 0; i < n; i++) {
		const struct md_part *p = &m->parts[i];
		uint64_t end;

		if (p->header_off > m->size ||
		    p->header_len > m->size - p->header_off ||
		    p->body_off != p->header_off + p->header_len ||
		    p->body_len > m->size - p->body_off ||
		    p->body_lines > p->body_len || p->cte > MD_CTE_UNKNOWN ||
		    (p->is_multipart && p->is_message))
			return -1;
		end = p->body_off + p->body_len;
		if (p->is_message && (p->first_child == MD_PART_NONE ||
				      m->parts[p->first_child].next_sibling !=
				      MD_PART_NONE))
			return -1;
		if (p->first_child != MD_PART_NONE) {
			/* depth-first: the first child comes right after */
			const struct md_part *c;

			if (p->first_child != i + 1)
				return -1;
			c = &m->parts[i + 1];
			if (c->parent != i || c->header_off < p->body_off)
				return -1;
		} else if (i + 1 < n && m->parts[i + 1].parent == i) {
			return -1;
		}
		if (p->parent != MD_PART_NONE) {
			const struct md_part *pp;

			if (p->parent >= i)
				return -1;
			pp = &m->parts[p->parent];
			if (end > pp->body_off + pp->body_len)
				return -1;
		}
		if (p->next_sibling != MD_PART_NONE) {
			const struct md_part *s;

			if (p->next_sibling <= i)
				return -1;
			s = &m->parts[p->next_sibling];
			if (s->parent != p->parent || s->header_off < end)
				return -1;
		}
	}
	/* every part but the root must be reached exactly once, in order:
	 * walk the tree iteratively and compare with the array order */
	{
		uint32_t cur = 0, seen = 1, steps = 0;

		for (;;) {
			if (++steps > 2 * n + 2)
				return -1;
			if (m->parts[cur].first_child != MD_PART_NONE) {
				cur = m->parts[cur].first_child;
			} else {
				while (cur != 0 &&
				       m->parts[cur].next_sibling == MD_PART_NONE) {
					cur = m->parts[cur].parent;
					if (++steps > 2 * n + 2)
						return -1;
				}
				if (cur == 0)
					break;
				cur = m->parts[cur].next_sibling;
			}
			if (cur != seen++)
				return -1;
		}
		if (seen != n)
			return -1;
	}
	return 0;
}

int md_meta_unpack(const void *data, size_t len, struct md_meta *meta_r)
{
	struct md_section_rd rd;
	uint64_t version, zz, n;
	uint32_t i;

	memset(meta_r, 0, sizeof(*meta_r));
	if (data == NULL)
		return -1;
	rd.p = data;
	rd.end = rd.p + len;
	if (md_section_get(&rd, &version) < 0 ||
	    (version != MD_SECTION_VERSION &&
	     version != MD_SECTION_VERSION_NOPREVIEW &&
	     version != MD_SECTION_VERSION_NOREFS) ||
	    md_section_get(&rd, &meta_r->size) < 0 ||
	    md_section_get(&rd, &zz) < 0 ||
	    md_section_get_max(&rd, MD_META_PARTS_MAX, &n) < 0 || n == 0)
		return -1;
	meta_r->sent_date = (zz & 1) ? -(int64_t)(zz >> 1) - 1 :
		(int64_t)(zz >> 1);
	/* each part needs at least 10 octets: refuse absurd counts before
	 * allocating */
	if (n > (uint64_t)(rd.end - rd.p) / 10)
		return -1;
	meta_r->parts = calloc((size_t)n, sizeof(*meta_r->parts));
	if (meta_r->parts == NULL)
		return -1;
	meta_r->n_parts = (uint32_t)n;
	for (i = 0; i < meta_r->n_parts; i++) {
		struct md_part *p = &meta_r->parts[i];
		uint64_t cte, fl;

		if (md_section_get_idx(&rd, meta_r->n_parts, &p->parent) < 0 ||
		    md_section_get_idx(&rd, meta_r->n_parts,
				       &p->first_child) < 0 ||
		    md_section_get_idx(&rd, meta_r->n_parts,
				       &p->next_sibling) < 0 ||
		    md_section_get(&rd, &p->header_off) < 0 ||
		    md_section_get(&rd, &p->header_len) < 0 ||
		    md_section_get(&rd, &p->body_len) < 0 ||
		    md_section_get(&rd, &p->body_lines) < 0 ||
		    md_section_get(&rd, &p->binary_size) < 0 ||
		    md_section_get_max(&rd, MD_CTE_UNKNOWN, &cte) < 0 ||
		    md_section_get_max(&rd, 7, &fl) < 0)
			goto fail;
		if (p->header_off > UINT64_MAX - p->header_len)
			goto fail;
		p->body_off = p->header_off + p->header_len;
		p->cte = (uint8_t)cte;
		p->is_multipart = (fl & MD_SECTION_F_MULTIPART) != 0;
		p->is_message = (fl & MD_SECTION_F_MESSAGE) != 0;
		p->binary_ok = (fl & MD_SECTION_F_BINARY_OK) != 0;
	}
	if (md_section_check_tree(meta_r) < 0 ||
	    md_section_get_str(&rd, &meta_r->envelope,
			       &meta_r->envelope_len) < 0 ||
	    md_section_get_str(&rd, &meta_r->body, &meta_r->body_len) < 0 ||
	    md_section_get_str(&rd, &meta_r->bodystructure,
			       &meta_r->bodystructure_len) < 0)
		goto fail;
	if (version >= MD_SECTION_VERSION_NOPREVIEW &&
	    md_section_get_str(&rd, &meta_r->references,
			       &meta_r->references_len) < 0)
		goto fail;
	if (version >= MD_SECTION_VERSION &&
	    md_section_get_str(&rd, &meta_r->preview,
			       &meta_r->preview_len) < 0)
		goto fail;
	if (meta_r->preview_len > MD_META_PREVIEW_MAX)
		goto fail;
	if (rd.p != rd.end)
		goto fail;
	if (meta_r->references != NULL && meta_r->references_len == 0) {
		free(meta_r->references);
		meta_r->references = NULL;
	}
	return 0;
fail:
	md_meta_free(meta_r);
	return -1;
}
