/* The MIME structure scanner: one pass over a stored message that finds
 * every part's header and body byte range, with no recursion and explicit
 * limits (md_meta_private.h).
 *
 * What a part is follows RFC 2045/2046 and, where mail is broken, the
 * recovery that Dovecot 2.3 applies (our conformance corpus was recorded
 * from it), because clients have long been tested against that:
 *
 *  - A boundary line is "--" + boundary at the start of a line, where the
 *    boundary only has to be a prefix of the rest of the line (RFC 2046
 *    §5.1.1 allows trailing whitespace; mailers add worse).  Every open
 *    multipart's boundary is tried, longest match first, innermost on ties,
 *    so a boundary of an outer part ends all inner parts.
 *  - The CRLF before a boundary line belongs to the boundary (RFC 2046
 *    §5.1.1), unless the line is the first one of the region scanned.
 *  - A boundary line inside a part's header ends the header there, and so
 *    does one right after the header's empty line unless it is the part's
 *    own: the line break before it then leaves that header (and goes to
 *    the enclosing part).  [MIME] headers sent for such parts lack their
 *    empty line, as Dovecot sends them.
 *  - "--boundary--" closes the multipart; what follows is its epilogue.
 *  - A multipart's boundary is only used when its header ended with an
 *    empty line; Content-* headers only count for a MIME part (one with
 *    MIME-Version or Content-Type, or any part of a multipart).
 *
 * Limits, and what happens beyond them ("as flat as the limit needs"):
 *  - MD_META_DEPTH_MAX: a multipart or message/rfc822 part at that depth
 *    is not opened; it becomes a leaf described as text/plain (see
 *    md_bstruct.c) whose body is its raw content.
 *  - MD_META_PARTS_MAX: once reached, a message/rfc822 part or multipart
 *    is not opened either, and a boundary that would start one more part
 *    of an open multipart only ends the previous part: the octets up to the
 *    next boundary stay in the multipart's body without a part of their own.
 *  - MD_META_BOUNDARY_MAX: of a boundary parameter longer than RFC 2046
 *    §5.1.1's 70 octets only the first 70 are compared (boundaries match
 *    as prefixes anyway, Dovecot cuts at 80); "--" after the full length
 *    still closes the multipart.
 *  - MD_META_HEADER_MAX / MD_META_FIELDS_MAX: the header block is still
 *    found to its end (its byte range stays right), but only the fields
 *    that start within the first 256 KiB, and only the first 1000 of them,
 *    are interpreted.
 */
#include "md_meta_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MD_MIME_IS_LWSP(c) ((c) == ' ' || (c) == '\t')

/* ------------------------------------------------------------------ */
/* Header fields */

/* Parse the field starting at pos (< end).  Returns 0 when the line is
 * empty (the end of the header block), 1 with *f filled. */
static int md_mime_field_at(const char *msg, size_t pos, size_t end,
			    struct md_field *f, size_t *eoh_next_r)
{
	const char *lf = memchr(msg + pos, '\n', end - pos);
	size_t line_end = lf != NULL ? (size_t)(lf - msg) : end;
	size_t content_end = line_end;
	size_t colon, i, next;

	if (lf != NULL && content_end > pos && msg[content_end - 1] == '\r')
		content_end--;
	if (lf != NULL && content_end == pos) {
		/* "\n" or "\r\n": the header ends (RFC 5322 §2.1) */
		*eoh_next_r = line_end + 1;
		return 0;
	}

	memset(f, 0, sizeof(*f));
	f->start = pos;
	colon = pos;
	while (colon < line_end && msg[colon] != ':')
		colon++;
	if (colon < line_end) {
		f->has_colon = true;
		i = colon;
		while (i > pos && MD_MIME_IS_LWSP(msg[i - 1]))
			i--;
		f->name_len = i - pos;
		/* all whitespace after ':' is skipped, except that a value of
		 * only whitespace keeps all but its first octet */
		i = colon + 1;
		while (i < content_end && MD_MIME_IS_LWSP(msg[i]))
			i++;
		if (i == content_end && content_end > colon + 1)
			i = colon + 2;
		f->value_off = i < content_end ? i : content_end;
	} else {
		f->name_len = content_end - pos;
		f->value_off = content_end;
	}
	f->first_end = content_end;
	f->end = content_end;
	next = lf != NULL ? line_end + 1 : end;
	/* folded continuation lines (RFC 5322 §2.2.3) */
	while (next < end && MD_MIME_IS_LWSP(msg[next])) {
		lf = memchr(msg + next, '\n', end - next);
		line_end = lf != NULL ? (size_t)(lf - msg) : end;
		content_end = line_end;
		if (lf != NULL && content_end > next &&
		    msg[content_end - 1] == '\r')
			content_end--;
		f->end = content_end;
		f->folded = true;
		next = lf != NULL ? line_end + 1 : end;
	}
	f->next = next;
	return 1;
}

void md_mime_hdr_init(struct md_hdr_iter *it, const char *msg, size_t off,
		      size_t len)
{
	it->msg = msg;
	it->pos = off;
	it->end = off + len;
	it->count = 0;
	it->limit_end = len > MD_META_HEADER_MAX ? off + MD_META_HEADER_MAX :
		off + len;
}

int md_mime_hdr_next(struct md_hdr_iter *it, struct md_field *f)
{
	size_t eoh;

	if (it->pos >= it->end || it->pos >= it->limit_end ||
	    it->count >= MD_META_FIELDS_MAX)
		return 0;
	if (md_mime_field_at(it->msg, it->pos, it->end, f, &eoh) == 0) {
		it->pos = it->end;
		return 0;
	}
	it->pos = f->next;
	it->count++;
	return 1;
}

bool md_mime_field_is(const char *msg, const struct md_field *f,
		      const char *name)
{
	size_t n = strlen(name);

	return f->has_colon && f->name_len == n &&
		strncasecmp(msg + f->start, name, n) == 0;
}

/* Append at most *budget octets: an unfolded value never exceeds the
 * header block limit. */
static int md_mime_put(struct buf *out, const char *p, size_t n,
		       size_t *budget)
{
	if (n > *budget)
		n = *budget;
	*budget -= n;
	return buf_append(out, p, n);
}

int md_mime_field_value(const char *msg, const struct md_field *f,
			struct buf *out)
{
	size_t p, line_end, content_end, budget = MD_META_HEADER_MAX;
	const char *lf;

	if (f->value_off < f->first_end &&
	    md_mime_put(out, msg + f->value_off, f->first_end - f->value_off,
			&budget) < 0)
		return -1;
	if (f->folded) {
		lf = memchr(msg + f->first_end, '\n', f->end - f->first_end);
		p = lf != NULL ? (size_t)(lf - msg) + 1 : f->end;
		while (p < f->end) {
			lf = memchr(msg + p, '\n', f->end - p);
			line_end = lf != NULL ? (size_t)(lf - msg) : f->end;
			content_end = line_end;
			if (lf != NULL && content_end > p &&
			    msg[content_end - 1] == '\r')
				content_end--;
			if (md_mime_put(out, "\n", 1, &budget) < 0 ||
			    md_mime_put(out, msg + p, content_end - p,
					&budget) < 0)
				return -1;
			p = line_end + 1;
		}
	}
	return buf_cstr(out);
}

/* ------------------------------------------------------------------ */
/* The scanner */

struct md_mime_bnd {
	uint32_t part;
	size_t len;      /* compared octets, at most MD_META_BOUNDARY_MAX */
	size_t full_len; /* the parameter's length */
	char text[MD_META_BOUNDARY_MAX];
};

struct md_mime_ctx {
	const char *msg;
	size_t len;
	struct md_scan *scan;
	/* open multiparts' boundaries, outermost first: the explicit stack
	 * that replaces recursion on nesting depth */
	struct md_mime_bnd bnd[MD_META_DEPTH_MAX];
	uint32_t n_bnd;
	/* the boundary of the part whose header is being read; len SIZE_MAX
	 * when it has none */
	struct md_mime_bnd pend;
	uint32_t cur;
	struct buf value; /* scratch for one unfolded header value */
	struct buf tok;   /* scratch for the content type token */
	struct md_params params;
};

enum md_mime_hdr_end {
	MD_MIME_EOH,      /* empty line */
	MD_MIME_EOF,      /* end of message inside the header */
	MD_MIME_BOUNDARY, /* a boundary line */
};

struct md_mime_match {
	uint32_t idx;     /* into ctx->bnd */
	bool close;       /* "--boundary--" */
	size_t line;      /* where the boundary line starts */
};

static int md_mime_add_part(struct md_mime_ctx *ctx, uint32_t parent,
			    size_t off)
{
	struct md_scan *s = ctx->scan;
	struct md_part *p;
	uint32_t i;

	if (s->n_parts >= MD_META_PARTS_MAX)
		return -1; /* callers check the limit first */
	if (s->n_parts == s->cap) {
		size_t cap = s->cap == 0 ? 8 : s->cap * 2;
		struct md_part *np;
		uint8_t *nf, *nd;

		if (cap > MD_META_PARTS_MAX)
			cap = MD_META_PARTS_MAX;
		np = realloc(s->parts, cap * sizeof(*np));
		if (np == NULL)
			return -1;
		s->parts = np;
		nf = realloc(s->pflags, cap);
		if (nf == NULL)
			return -1;
		s->pflags = nf;
		nd = realloc(s->depth, cap);
		if (nd == NULL)
			return -1;
		s->depth = nd;
		s->cap = cap;
	}
	i = s->n_parts++;
	p = &s->parts[i];
	memset(p, 0, sizeof(*p));
	p->parent = parent;
	p->first_child = MD_PART_NONE;
	p->next_sibling = MD_PART_NONE;
	p->header_off = off;
	p->body_off = off;
	p->binary_ok = 1;
	s->pflags[i] = 0;
	s->depth[i] = 0;
	if (parent != MD_PART_NONE) {
		uint32_t c = s->parts[parent].first_child;

		s->depth[i] = s->depth[parent] + 1;
		if (c == MD_PART_NONE) {
			s->parts[parent].first_child = i;
		} else {
			/* siblings are appended in order; walking the list is
			 * bounded by MD_META_PARTS_MAX */
			while (s->parts[c].next_sibling != MD_PART_NONE)
				c = s->parts[c].next_sibling;
			s->parts[c].next_sibling = i;
		}
		/* RFC 2046 §5.1: every body part of a multipart is MIME */
		if (s->pflags[parent] & MD_PF_MULTIPART)
			s->pflags[i] |= MD_PF_IS_MIME;
	}
	ctx->cur = i;
	return 0;
}

static bool md_mime_can_open(const struct md_mime_ctx *ctx, uint32_t part)
{
	return ctx->scan->depth[part] < MD_META_DEPTH_MAX &&
		ctx->scan->n_parts < MD_META_PARTS_MAX;
}

/* Is the line at pos (which starts with "--") a boundary of an open
 * multipart? */
static bool md_mime_find_boundary(const struct md_mime_ctx *ctx, size_t pos,
				  struct md_mime_match *m)
{
	const char *d = ctx->msg + pos + 2;
	size_t rest = ctx->len - pos - 2;
	const char *lf = memchr(d, '\n', rest);
	size_t fs, bl;
	int best = -1;
	uint32_t i;

	if (lf != NULL) {
		fs = (size_t)(lf - d);
		if (fs > 0 && d[fs - 1] == '\r')
			fs--;
	} else {
		fs = rest;
	}
	for (i = ctx->n_bnd; i-- > 0;) {
		bl = ctx->bnd[i].len;
		if (bl <= fs && memcmp(ctx->bnd[i].text, d, bl) == 0 &&
		    (best < 0 || ctx->bnd[best].len < bl)) {
			best = (int)i;
			if (bl == fs)
				break;
		}
	}
	if (best < 0)
		return false;
	bl = ctx->bnd[best].full_len;
	m->idx = (uint32_t)best;
	m->close = rest >= bl + 2 && d[bl] == '-' && d[bl + 1] == '-';
	m->line = pos;
	return true;
}

static bool md_mime_at_boundary(const struct md_mime_ctx *ctx, size_t pos,
				struct md_mime_match *m)
{
	return ctx->n_bnd > 0 && pos + 1 < ctx->len &&
		ctx->msg[pos] == '-' && ctx->msg[pos + 1] == '-' &&
		md_mime_find_boundary(ctx, pos, m);
}

static void md_mime_finish(struct md_mime_ctx *ctx, uint32_t part, size_t end)
{
	struct md_part *p = &ctx->scan->parts[part];

	p->body_len = end > p->body_off ? end - p->body_off : 0;
}

/* Content-Type seen while scanning: decide the part's kind and remember
 * the boundary (RFC 2046 §5.1.1). */
static int md_mime_content_type(struct md_mime_ctx *ctx,
				const struct md_field *f)
{
	uint8_t *fl = &ctx->scan->pflags[ctx->cur];
	struct md_rfc822 r;
	const char *ct;
	size_t i;
	int ret;

	buf_reset(&ctx->value);
	buf_reset(&ctx->tok);
	if (md_mime_field_value(ctx->msg, f, &ctx->value) < 0)
		return -1;
	md_rfc822_init(&r, ctx->value.data, ctx->value.len, NULL);
	md_rfc822_skip_lwsp(&r);
	ret = md_rfc822_content_type(&r, &ctx->tok);
	if (r.oom || buf_cstr(&ctx->tok) < 0)
		return -1;
	ct = ctx->tok.data;
	if (strcasecmp(ct, "message/rfc822") == 0) {
		*fl |= MD_PF_MESSAGE;
	} else if (strncasecmp(ct, "text", 4) == 0 &&
		   (ct[4] == '\0' || ct[4] == '/')) {
		*fl |= MD_PF_TEXT;
	} else if (strncasecmp(ct, "multipart/", 10) == 0) {
		*fl |= MD_PF_CT_MULTI;
		if (strcasecmp(ct + 10, "digest") == 0)
			*fl |= MD_PF_DIGEST;
	}
	if (ret < 0 || !(*fl & MD_PF_CT_MULTI))
		return 0;
	md_params_free(&ctx->params);
	md_params_init(&ctx->params);
	if (md_rfc822_params(&r, &ctx->params) < 0)
		return -1;
	for (i = 0; i < ctx->params.n; i++) {
		const char *v = md_params_value(&ctx->params, i);
		size_t n;

		if (strcasecmp(md_params_name(&ctx->params, i), "boundary") != 0)
			continue;
		n = strlen(v);
		ctx->pend.full_len = n;
		if (n > MD_META_BOUNDARY_MAX)
			n = MD_META_BOUNDARY_MAX;
		memcpy(ctx->pend.text, v, n);
		ctx->pend.len = n;
		break;
	}
	return 0;
}

/* The header of ctx->cur ended with an empty line at eoh.  Does the next
 * line hold a boundary of another part than this one?  (This part's own
 * boundary counts as open already when it will be.)  Dovecot treats the
 * empty line's CRLF as the boundary's then, so the header ends before it;
 * a MIME header without its empty line is what clients have seen. */
static bool md_mime_eoh_boundary(struct md_mime_ctx *ctx, size_t eoh,
				 struct md_mime_match *m)
{
	uint8_t fl = ctx->scan->pflags[ctx->cur];
	bool own = (fl & MD_PF_CT_MULTI) && (fl & MD_PF_IS_MIME) &&
		ctx->pend.len != SIZE_MAX && md_mime_can_open(ctx, ctx->cur);
	bool found;

	if (own) {
		ctx->bnd[ctx->n_bnd] = ctx->pend;
		ctx->bnd[ctx->n_bnd++].part = ctx->cur;
	}
	found = md_mime_at_boundary(ctx, eoh, m) &&
		ctx->bnd[m->idx].part != ctx->cur;
	if (own)
		ctx->n_bnd--;
	return found;
}

/* Scan the header of ctx->cur from pos.  Fills the part's header range and
 * body offset, and *m when a boundary line ended it. */
static int md_mime_header(struct md_mime_ctx *ctx, size_t pos,
			  enum md_mime_hdr_end *how, struct md_mime_match *m)
{
	struct md_part *p = &ctx->scan->parts[ctx->cur];
	size_t start = pos, prev_nl = 0, eoh, hdr_end;
	uint32_t fields = 0;
	struct md_field f;

	ctx->pend.len = SIZE_MAX;
	for (;;) {
		if (pos >= ctx->len) {
			*how = MD_MIME_EOF;
			hdr_end = ctx->len;
			p->body_off = hdr_end;
			break;
		}
		if (md_mime_at_boundary(ctx, pos, m)) {
			*how = MD_MIME_BOUNDARY;
			hdr_end = pos - prev_nl;
			p->body_off = hdr_end;
			break;
		}
		if (md_mime_field_at(ctx->msg, pos, ctx->len, &f, &eoh) == 0) {
			*how = MD_MIME_EOH;
			hdr_end = eoh;
			if (md_mime_eoh_boundary(ctx, eoh, m)) {
				/* a boundary right after the empty line: the
				 * line break before it is not the header's */
				*how = MD_MIME_BOUNDARY;
				hdr_end = pos;
			}
			p->body_off = hdr_end;
			break;
		}
		if (fields < MD_META_FIELDS_MAX &&
		    f.start < start + MD_META_HEADER_MAX) {
			fields++;
			if (md_mime_field_is(ctx->msg, &f, "MIME-Version")) {
				ctx->scan->pflags[ctx->cur] |= MD_PF_IS_MIME;
			} else if (md_mime_field_is(ctx->msg, &f,
						    "Content-Type")) {
				uint8_t *fl = &ctx->scan->pflags[ctx->cur];

				/* RFC 2045 §4 wants MIME-Version, but mail
				 * with only Content-Type is common */
				*fl |= MD_PF_IS_MIME;
				if (!(*fl & MD_PF_CT_SEEN)) {
					*fl |= MD_PF_CT_SEEN;
					if (md_mime_content_type(ctx, &f) < 0)
						return -1;
				}
			}
		}
		pos = f.next;
		if (f.next > f.end && ctx->msg[f.next - 1] == '\n')
			prev_nl = f.next - f.end;
		else
			prev_nl = 0;
	}
	p->header_len = hdr_end - start;
	return 0;
}

/* The header of ctx->cur has ended: decide whether the part is a
 * container and open it.  Returns the part whose body comes next. */
static int md_mime_open(struct md_mime_ctx *ctx, enum md_mime_hdr_end how)
{
	uint32_t cur = ctx->cur;
	uint8_t *fl = &ctx->scan->pflags[cur];
	struct md_part *p = &ctx->scan->parts[cur];
	uint32_t parent = p->parent;

	if (!(*fl & MD_PF_IS_MIME))
		*fl &= (uint8_t)~(MD_PF_MESSAGE | MD_PF_TEXT | MD_PF_CT_MULTI |
				  MD_PF_DIGEST);
	if (!(*fl & MD_PF_CT_SEEN) || !(*fl & MD_PF_IS_MIME)) {
		/* RFC 2046 §5.1.5: a digest's parts default to
		 * message/rfc822, anything else to text/plain (RFC 2045 §5.2) */
		if (parent != MD_PART_NONE &&
		    (ctx->scan->pflags[parent] & MD_PF_DIGEST))
			*fl |= MD_PF_MESSAGE;
		else
			*fl |= MD_PF_TEXT;
	}
	if ((*fl & MD_PF_CT_MULTI) && how == MD_MIME_EOH &&
	    ctx->pend.len != SIZE_MAX) {
		if (md_mime_can_open(ctx, cur)) {
			ctx->bnd[ctx->n_bnd] = ctx->pend;
			ctx->bnd[ctx->n_bnd++].part = cur;
			*fl |= MD_PF_MULTIPART;
		} else {
			*fl |= MD_PF_FLATTENED;
		}
		return 0;
	}
	if (*fl & MD_PF_MESSAGE) {
		if (!md_mime_can_open(ctx, cur)) {
			*fl &= (uint8_t)~MD_PF_MESSAGE;
			*fl |= MD_PF_FLATTENED;
			return 0;
		}
		/* the encapsulated message starts right at the body */
		return md_mime_add_part(ctx, cur, p->body_off);
	}
	return 0;
}

/* A boundary line was found: end the parts it closes.  They end where
 * the boundary's line break starts (bstart); when the boundary cut a
 * header short, that part (and a message/rfc822 child opened below it)
 * ends at the cut (cut_end) and its ancestors keep the line break.
 * Returns where scanning goes on and whether a new part's header starts
 * there. */
static int md_mime_boundary(struct md_mime_ctx *ctx,
			    const struct md_mime_match *m, size_t bstart,
			    uint32_t cut_part, size_t cut_end,
			    size_t *pos_r, bool *header_r)
{
	uint32_t owner = ctx->bnd[m->idx].part;
	bool below_cut = cut_part != MD_PART_NONE;
	const char *lf;

	while (ctx->cur != owner) {
		md_mime_finish(ctx, ctx->cur, below_cut ? cut_end : bstart);
		if (ctx->cur == cut_part)
			below_cut = false;
		ctx->cur = ctx->scan->parts[ctx->cur].parent;
	}
	/* boundaries of parts inside the owner are gone too */
	ctx->n_bnd = m->close ? m->idx : m->idx + 1;
	/* the rest of the boundary line belongs to the owner's body */
	lf = memchr(ctx->msg + m->line, '\n', ctx->len - m->line);
	*pos_r = lf != NULL ? (size_t)(lf - ctx->msg) + 1 : ctx->len;
	*header_r = false;
	if (m->close || lf == NULL)
		return 0;
	if (ctx->scan->n_parts >= MD_META_PARTS_MAX)
		return 0; /* skipped: stays in the multipart's body */
	if (md_mime_add_part(ctx, owner, *pos_r) < 0)
		return -1;
	*header_r = true;
	return 0;
}

/* Scan a body from pos until a boundary line or the end. */
static bool md_mime_body(struct md_mime_ctx *ctx, size_t pos,
			 struct md_mime_match *m, size_t *bstart)
{
	size_t start = pos;
	const char *lf;

	if (ctx->n_bnd == 0)
		return false;
	while (pos < ctx->len) {
		if (md_mime_at_boundary(ctx, pos, m)) {
			if (pos == start) {
				*bstart = pos;
			} else {
				*bstart = pos - 1;
				if (*bstart > start && ctx->msg[*bstart - 1] == '\r')
					(*bstart)--;
			}
			return true;
		}
		lf = memchr(ctx->msg + pos, '\n', ctx->len - pos);
		if (lf == NULL)
			break;
		pos = (size_t)(lf - ctx->msg) + 1;
	}
	return false;
}

static int md_mime_run(struct md_mime_ctx *ctx)
{
	struct md_mime_match m;
	enum md_mime_hdr_end how;
	size_t pos = 0, bstart;
	bool header = true;

	if (md_mime_add_part(ctx, MD_PART_NONE, 0) < 0)
		return -1;
	for (;;) {
		if (header) {
			uint32_t part = ctx->cur;

			if (md_mime_header(ctx, pos, &how, &m) < 0)
				return -1;
			if (md_mime_open(ctx, how) < 0)
				return -1;
			pos = ctx->scan->parts[part].body_off;
			if (how == MD_MIME_EOF)
				break;
			if (how == MD_MIME_BOUNDARY) {
				if (md_mime_boundary(ctx, &m, m.line, part, pos,
						     &pos, &header) < 0)
					return -1;
				continue;
			}
			/* a message/rfc822 child's header starts here */
			header = ctx->cur != part;
			continue;
		}
		if (!md_mime_body(ctx, pos, &m, &bstart))
			break;
		if (md_mime_boundary(ctx, &m, bstart, MD_PART_NONE, bstart,
				     &pos, &header) < 0)
			return -1;
	}
	/* the end of the message ends every open part */
	for (;;) {
		md_mime_finish(ctx, ctx->cur, ctx->len);
		if (ctx->scan->parts[ctx->cur].parent == MD_PART_NONE)
			break;
		ctx->cur = ctx->scan->parts[ctx->cur].parent;
	}
	return 0;
}

struct md_mime_event {
	size_t off;
	uint32_t part;
	bool end;
};

static int md_mime_event_cmp(const void *a, const void *b)
{
	const struct md_mime_event *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return 0;
}

/* Count each part's body lines (LFs, as RFC 3501 §7.4.2 counts text lines
 * of the body as stored) in one sweep over the message. */
static int md_mime_count_lines(const char *msg, size_t len, struct md_scan *s)
{
	struct md_mime_event *ev;
	size_t n = (size_t)s->n_parts * 2, i, pos = 0;
	uint64_t lines = 0;

	ev = malloc(n * sizeof(*ev));
	if (ev == NULL)
		return -1;
	for (i = 0; i < s->n_parts; i++) {
		ev[2 * i].off = s->parts[i].body_off;
		ev[2 * i].part = (uint32_t)i;
		ev[2 * i].end = false;
		ev[2 * i + 1].off = s->parts[i].body_off + s->parts[i].body_len;
		ev[2 * i + 1].part = (uint32_t)i;
		ev[2 * i + 1].end = true;
	}
	qsort(ev, n, sizeof(*ev), md_mime_event_cmp);
	for (i = 0; i < n; i++) {
		const char *p = msg + pos, *e = msg + (ev[i].off < len ?
						       ev[i].off : len);

		while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
			lines++;
			p++;
		}
		if (ev[i].off > pos)
			pos = ev[i].off < len ? ev[i].off : len;
		if (ev[i].end)
			s->parts[ev[i].part].body_lines += lines;
		else
			s->parts[ev[i].part].body_lines -= lines;
	}
	free(ev);
	return 0;
}

int md_mime_scan(const char *msg, size_t len, struct md_scan *scan)
{
	struct md_mime_ctx ctx;
	int ret;

	memset(scan, 0, sizeof(*scan));
	memset(&ctx, 0, sizeof(ctx));
	ctx.msg = msg;
	ctx.len = len;
	ctx.scan = scan;
	buf_init(&ctx.value, MD_META_HEADER_MAX + 1);
	buf_init(&ctx.tok, MD_META_HEADER_MAX + 1);
	md_params_init(&ctx.params);
	ret = md_mime_run(&ctx);
	if (ret == 0)
		ret = md_mime_count_lines(msg, len, scan);
	buf_free(&ctx.value);
	buf_free(&ctx.tok);
	md_params_free(&ctx.params);
	if (ret < 0)
		md_mime_scan_free(scan);
	return ret;
}

void md_mime_scan_free(struct md_scan *scan)
{
	free(scan->parts);
	free(scan->pflags);
	free(scan->depth);
	memset(scan, 0, sizeof(*scan));
}
