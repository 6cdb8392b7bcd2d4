/* BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) written from
 * the scanned structure and each part's Content-* header fields.
 *
 * Choices where the RFCs leave room, following Dovecot because clients
 * are used to it (and our conformance corpus records it):
 *  - a text part without a charset parameter gets ("charset" "us-ascii"),
 *    the RFC 2045 §5.2 default made explicit;
 *  - type, subtype, parameter names and the transfer encoding are sent as
 *    written in the message (RFC 3501 §7.4.2 does not ask for a case);
 *  - RFC 2231 continuations are joined but not decoded;
 *  - a multipart without any body part is described with one empty
 *    text/plain part (the grammar needs at least one);
 *  - a part whose Content-Type cannot be read keeps what could be read;
 *  - a container flattened by a limit (md_mime.c) is described as
 *    text/plain, as if it had no Content-Type.
 * Sizes are the octets of the stored message and line counts its LFs.
 *
 * The nesting is walked with an explicit stack of parsed header data, one
 * slot per depth (at most MD_META_DEPTH_MAX + 1), never by recursion.
 */
#include "md_meta_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MD_BSTRUCT_NONE SIZE_MAX
#define MD_BSTRUCT_STACK (MD_META_DEPTH_MAX + 1)

#define MD_BSTRUCT_EMPTY_BODY \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define MD_BSTRUCT_EMPTY_BODYSTRUCTURE \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 " \
	"NIL NIL NIL NIL)"

/* The Content-* fields of one part (RFC 2045, RFC 2183, RFC 3066,
 * RFC 2557, RFC 1864). Strings are offsets into s. */
struct md_pdata {
	struct buf s;
	size_t type, subtype, id, desc, md5, location, cte, disp;
	size_t lang_first;     /* NUL-separated run of language tags */
	size_t n_lang;
	bool have_ct_params;
	struct md_params ct_params, disp_params;
	struct buf tmp;
};

static void md_bstruct_pdata_reset(struct md_pdata *pd)
{
	buf_reset(&pd->s);
	pd->type = pd->subtype = pd->id = pd->desc = pd->md5 = MD_BSTRUCT_NONE;
	pd->location = pd->cte = pd->disp = MD_BSTRUCT_NONE;
	pd->lang_first = MD_BSTRUCT_NONE;
	pd->n_lang = 0;
	pd->have_ct_params = false;
	md_params_free(&pd->ct_params);
	md_params_free(&pd->disp_params);
	md_params_init(&pd->ct_params);
	md_params_init(&pd->disp_params);
}

static const char *md_bstruct_s(const struct md_pdata *pd, size_t off)
{
	return pd->s.data + off;
}

static int md_bstruct_keep(struct md_pdata *pd, const char *p, size_t n,
			   size_t *off_r)
{
	*off_r = pd->s.len;
	if (buf_append(&pd->s, p, n) < 0 || buf_putc(&pd->s, '\0') < 0)
		return -1;
	return 0;
}

static int md_bstruct_content_type(struct md_pdata *pd)
{
	struct md_rfc822 r;
	struct buf tok;
	const char *slash;
	int ret;

	buf_init(&tok, 0);
	md_rfc822_init(&r, pd->tmp.data, pd->tmp.len, NULL);
	md_rfc822_skip_lwsp(&r);
	ret = md_rfc822_content_type(&r, &tok);
	if (r.oom || buf_cstr(&tok) < 0) {
		buf_free(&tok);
		return -1;
	}
	slash = memchr(tok.data, '/', tok.len);
	if (md_bstruct_keep(pd, tok.data, slash != NULL ?
			    (size_t)(slash - tok.data) : tok.len,
			    &pd->type) < 0 ||
	    md_bstruct_keep(pd, slash != NULL ? slash + 1 : "",
			    slash != NULL ? tok.len - (size_t)(slash + 1 -
							       tok.data) : 0,
			    &pd->subtype) < 0) {
		buf_free(&tok);
		return -1;
	}
	buf_free(&tok);
	if (ret < 0)
		return 0; /* broken: keep the type, skip the parameters */
	pd->have_ct_params = true;
	return md_rfc822_params(&r, &pd->ct_params);
}

static int md_bstruct_cte(struct md_pdata *pd)
{
	struct md_rfc822 r;
	struct buf tok;
	int ret = 0;

	buf_init(&tok, 0);
	md_rfc822_init(&r, pd->tmp.data, pd->tmp.len, NULL);
	md_rfc822_skip_lwsp(&r);
	/* RFC 2045 §6.1: one token and nothing else */
	if (md_rfc822_mime_token(&r, &tok) >= 0 &&
	    md_rfc822_skip_lwsp(&r) == 0 && tok.len > 0)
		ret = md_bstruct_keep(pd, tok.data, tok.len, &pd->cte);
	if (r.oom)
		ret = -1;
	buf_free(&tok);
	return ret;
}

static int md_bstruct_disposition(struct md_pdata *pd)
{
	struct md_rfc822 r;
	struct buf tok;
	int ret;

	buf_init(&tok, 0);
	md_rfc822_init(&r, pd->tmp.data, pd->tmp.len, NULL);
	md_rfc822_skip_lwsp(&r);
	if (md_rfc822_mime_token(&r, &tok) < 0) {
		buf_free(&tok);
		return r.oom ? -1 : 0;
	}
	ret = md_bstruct_keep(pd, tok.data != NULL ? tok.data : "", tok.len,
			      &pd->disp);
	buf_free(&tok);
	if (ret < 0)
		return -1;
	md_params_free(&pd->disp_params);
	md_params_init(&pd->disp_params);
	return md_rfc822_params(&r, &pd->disp_params);
}

/* RFC 3066 language tags separated by commas */
static int md_bstruct_language(struct md_pdata *pd)
{
	struct md_rfc822 r;
	struct buf tok;
	size_t first = pd->s.len, n = 0, off;
	int ret = 0;

	buf_init(&tok, 0);
	md_rfc822_init(&r, pd->tmp.data, pd->tmp.len, NULL);
	md_rfc822_skip_lwsp(&r);
	while (md_rfc822_atom(&r, &tok) >= 0) {
		if (md_bstruct_keep(pd, tok.data, tok.len, &off) < 0) {
			ret = -1;
			break;
		}
		n++;
		buf_reset(&tok);
		if (r.p >= r.end || *r.p != ',')
			break;
		r.p++;
		md_rfc822_skip_lwsp(&r);
	}
	if (r.oom)
		ret = -1;
	if (ret == 0 && n > 0) {
		pd->lang_first = first;
		pd->n_lang = n;
	}
	buf_free(&tok);
	return ret;
}

static int md_bstruct_field_raw(struct md_pdata *pd, size_t *off)
{
	if (*off != MD_BSTRUCT_NONE)
		return 0;
	return md_bstruct_keep(pd, pd->tmp.data, pd->tmp.len, off);
}

/* Read the Content-* fields of part i.  Only the first of each counts,
 * except Content-Disposition, which a later one may complete when the
 * first had no parameters (as Dovecot reads it). */
static int md_bstruct_parse(const char *msg, const struct md_scan *scan,
			    uint32_t i, struct md_pdata *pd)
{
	const struct md_part *p = &scan->parts[i];
	uint8_t fl = scan->pflags[i];
	struct md_hdr_iter it;
	struct md_field f;
	int ret = 0;

	md_bstruct_pdata_reset(pd);
	/* RFC 2045 §4: without MIME-Version (or Content-Type, or being a
	 * body part) the Content-* fields are not MIME's */
	if (!(fl & MD_PF_IS_MIME))
		return 0;
	md_mime_hdr_init(&it, msg, p->header_off, p->header_len);
	while (ret == 0 && md_mime_hdr_next(&it, &f) > 0) {
		if (!f.has_colon || f.name_len < 8 ||
		    strncasecmp(msg + f.start, "Content-", 8) != 0)
			continue;
		buf_reset(&pd->tmp);
		if (md_mime_field_value(msg, &f, &pd->tmp) < 0)
			return -1;
		if (md_mime_field_is(msg, &f, "Content-Type")) {
			if (pd->type == MD_BSTRUCT_NONE &&
			    !(fl & MD_PF_FLATTENED))
				ret = md_bstruct_content_type(pd);
		} else if (md_mime_field_is(msg, &f,
					    "Content-Transfer-Encoding")) {
			if (pd->cte == MD_BSTRUCT_NONE)
				ret = md_bstruct_cte(pd);
		} else if (md_mime_field_is(msg, &f, "Content-ID")) {
			ret = md_bstruct_field_raw(pd, &pd->id);
		} else if (md_mime_field_is(msg, &f, "Content-Description")) {
			ret = md_bstruct_field_raw(pd, &pd->desc);
		} else if (md_mime_field_is(msg, &f, "Content-MD5")) {
			ret = md_bstruct_field_raw(pd, &pd->md5);
		} else if (md_mime_field_is(msg, &f, "Content-Location")) {
			ret = md_bstruct_field_raw(pd, &pd->location);
		} else if (md_mime_field_is(msg, &f, "Content-Language")) {
			if (pd->lang_first == MD_BSTRUCT_NONE)
				ret = md_bstruct_language(pd);
		} else if (md_mime_field_is(msg, &f, "Content-Disposition")) {
			if (pd->disp_params.n == 0)
				ret = md_bstruct_disposition(pd);
		}
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Writing */

static int md_bstruct_params(struct buf *out, const struct md_params *ps,
			     bool default_charset)
{
	bool seen_charset = false;
	size_t i;

	if (ps->n == 0 && !default_charset)
		return buf_append(out, "NIL", 3);
	if (buf_putc(out, '(') < 0)
		return -1;
	for (i = 0; i < ps->n; i++) {
		const char *n = md_params_name(ps, i);
		const char *v = md_params_value(ps, i);

		if (strcasecmp(n, "charset") == 0)
			seen_charset = true;
		if ((i > 0 && buf_putc(out, ' ') < 0) ||
		    md_env_string(out, n, strlen(n)) < 0 ||
		    buf_putc(out, ' ') < 0 ||
		    md_env_string(out, v, strlen(v)) < 0)
			return -1;
	}
	if (default_charset && !seen_charset) {
		/* RFC 2045 §5.2 default, made explicit */
		if ((i > 0 && buf_putc(out, ' ') < 0) ||
		    buf_append(out, "\"charset\" \"us-ascii\"", 20) < 0)
			return -1;
	}
	return buf_putc(out, ')');
}

static int md_bstruct_nstr(struct buf *out, const struct md_pdata *pd,
			   size_t off)
{
	if (off == MD_BSTRUCT_NONE)
		return buf_append(out, "NIL", 3);
	return md_env_nstring_nolf(out, md_bstruct_s(pd, off),
				   strlen(md_bstruct_s(pd, off)), false);
}

/* disposition, language, location: the extension data shared by all
 * part kinds (RFC 3501 §7.4.2 body-ext-1part / body-ext-mpart) */
static int md_bstruct_ext_common(struct buf *out, const struct md_pdata *pd)
{
	size_t i, off;

	if (buf_putc(out, ' ') < 0)
		return -1;
	if (pd->disp == MD_BSTRUCT_NONE) {
		if (buf_append(out, "NIL", 3) < 0)
			return -1;
	} else {
		const char *d = md_bstruct_s(pd, pd->disp);

		if (buf_putc(out, '(') < 0 ||
		    md_env_string(out, d, strlen(d)) < 0 ||
		    buf_putc(out, ' ') < 0 ||
		    md_bstruct_params(out, &pd->disp_params, false) < 0 ||
		    buf_putc(out, ')') < 0)
			return -1;
	}
	if (buf_putc(out, ' ') < 0)
		return -1;
	if (pd->n_lang == 0) {
		if (buf_append(out, "NIL", 3) < 0)
			return -1;
	} else {
		if (buf_putc(out, '(') < 0)
			return -1;
		for (i = 0, off = pd->lang_first; i < pd->n_lang; i++) {
			const char *l = md_bstruct_s(pd, off);
			size_t n = strlen(l);

			if ((i > 0 && buf_putc(out, ' ') < 0) ||
			    md_env_string(out, l, n) < 0)
				return -1;
			off += n + 1;
		}
		if (buf_putc(out, ')') < 0)
			return -1;
	}
	if (buf_putc(out, ' ') < 0)
		return -1;
	return md_bstruct_nstr(out, pd, pd->location);
}

static bool md_bstruct_is_multipart(uint8_t fl)
{
	return (fl & MD_PF_MULTIPART) ||
		((fl & MD_PF_CT_MULTI) && !(fl & MD_PF_FLATTENED));
}

/* Everything of a part that comes before its children. */
static int md_bstruct_open(const char *msg, const struct md_scan *scan,
			   uint32_t i, const struct md_pdata *pd, bool ext,
			   struct buf *out)
{
	const struct md_part *p = &scan->parts[i];
	uint8_t fl = scan->pflags[i];
	bool text;

	if (md_bstruct_is_multipart(fl)) {
		if (p->first_child != MD_PART_NONE)
			return 0;
		return buf_append(out, ext ? MD_BSTRUCT_EMPTY_BODYSTRUCTURE :
				  MD_BSTRUCT_EMPTY_BODY,
				  ext ? strlen(MD_BSTRUCT_EMPTY_BODYSTRUCTURE) :
				  strlen(MD_BSTRUCT_EMPTY_BODY));
	}
	if (fl & MD_PF_MESSAGE) {
		text = false;
		if (buf_append(out, "\"message\" \"rfc822\"", 18) < 0)
			return -1;
	} else if (pd->type == MD_BSTRUCT_NONE) {
		text = true;
		if (buf_append(out, "\"text\" \"plain\"", 14) < 0)
			return -1;
	} else {
		const char *t = md_bstruct_s(pd, pd->type);
		const char *st = md_bstruct_s(pd, pd->subtype);

		text = strcasecmp(t, "text") == 0;
		if (md_env_string(out, t, strlen(t)) < 0 ||
		    buf_putc(out, ' ') < 0 ||
		    md_env_string(out, st, strlen(st)) < 0)
			return -1;
	}
	if (buf_putc(out, ' ') < 0 ||
	    md_bstruct_params(out, &pd->ct_params, text) < 0 ||
	    buf_putc(out, ' ') < 0 ||
	    md_bstruct_nstr(out, pd, pd->id) < 0 ||
	    buf_putc(out, ' ') < 0 ||
	    md_bstruct_nstr(out, pd, pd->desc) < 0 ||
	    buf_putc(out, ' ') < 0)
		return -1;
	if (pd->cte == MD_BSTRUCT_NONE) {
		if (buf_append(out, "\"7bit\"", 6) < 0)
			return -1;
	} else if (md_env_string(out, md_bstruct_s(pd, pd->cte),
				 strlen(md_bstruct_s(pd, pd->cte))) < 0) {
		return -1;
	}
	if (buf_appendf(out, " %llu", (unsigned long long)p->body_len) < 0)
		return -1;
	if (fl & MD_PF_MESSAGE) {
		const struct md_part *c = &scan->parts[p->first_child];

		/* the child follows, then the line count (close) */
		if (buf_putc(out, ' ') < 0 ||
		    md_env_write(out, msg, c->header_off, c->header_len) < 0 ||
		    buf_putc(out, ' ') < 0)
			return -1;
		/* the child's own parentheses come from the walk */
		return 0;
	}
	if (text && buf_appendf(out, " %llu",
				(unsigned long long)p->body_lines) < 0)
		return -1;
	if (!ext)
		return 0;
	if (buf_putc(out, ' ') < 0 || md_bstruct_nstr(out, pd, pd->md5) < 0)
		return -1;
	return md_bstruct_ext_common(out, pd);
}

/* Everything of a part that comes after its children. */
static int md_bstruct_close(const struct md_scan *scan, uint32_t i,
			    const struct md_pdata *pd, bool ext,
			    struct buf *out)
{
	uint8_t fl = scan->pflags[i];

	if (md_bstruct_is_multipart(fl)) {
		const char *st = pd->subtype != MD_BSTRUCT_NONE ?
			md_bstruct_s(pd, pd->subtype) : "";

		if (buf_putc(out, ' ') < 0 ||
		    md_env_string(out, st, strlen(st)) < 0)
			return -1;
		if (!ext)
			return 0;
		if (buf_putc(out, ' ') < 0 ||
		    md_bstruct_params(out, &pd->ct_params, false) < 0)
			return -1;
		return md_bstruct_ext_common(out, pd);
	}
	if (fl & MD_PF_MESSAGE) {
		if (buf_appendf(out, " %llu", (unsigned long long)
				scan->parts[i].body_lines) < 0)
			return -1;
		if (!ext)
			return 0;
		if (buf_putc(out, ' ') < 0 ||
		    md_bstruct_nstr(out, pd, pd->md5) < 0)
			return -1;
		return md_bstruct_ext_common(out, pd);
	}
	return 0;
}

static bool md_bstruct_has_children(const struct md_scan *scan, uint32_t i)
{
	return (scan->pflags[i] & (MD_PF_MULTIPART | MD_PF_MESSAGE)) &&
		scan->parts[i].first_child != MD_PART_NONE;
}

int md_bstruct_write(const char *msg, const struct md_scan *scan,
		     bool extended, struct buf *out)
{
	struct md_pdata *stack;
	uint32_t cur = 0, d;
	int ret = -1;

	stack = calloc(MD_BSTRUCT_STACK, sizeof(*stack));
	if (stack == NULL)
		return -1;
	for (d = 0; d < MD_BSTRUCT_STACK; d++) {
		buf_init(&stack[d].s, 0);
		buf_init(&stack[d].tmp, 0);
		md_params_init(&stack[d].ct_params);
		md_params_init(&stack[d].disp_params);
	}
#define MD_BSTRUCT_PD(i) (&stack[scan->depth[i]])
	if (md_bstruct_parse(msg, scan, cur, MD_BSTRUCT_PD(cur)) < 0 ||
	    md_bstruct_open(msg, scan, cur, MD_BSTRUCT_PD(cur), extended,
			    out) < 0)
		goto out;
	for (;;) {
		if (md_bstruct_has_children(scan, cur)) {
			cur = scan->parts[cur].first_child;
			if (buf_putc(out, '(') < 0 ||
			    md_bstruct_parse(msg, scan, cur,
					     MD_BSTRUCT_PD(cur)) < 0 ||
			    md_bstruct_open(msg, scan, cur, MD_BSTRUCT_PD(cur),
					    extended, out) < 0)
				goto out;
			continue;
		}
		for (;;) {
			if (md_bstruct_close(scan, cur, MD_BSTRUCT_PD(cur),
					     extended, out) < 0)
				goto out;
			if (cur == 0) {
				ret = 0;
				goto out;
			}
			if (buf_putc(out, ')') < 0)
				goto out;
			if (scan->parts[cur].next_sibling != MD_PART_NONE) {
				cur = scan->parts[cur].next_sibling;
				if (buf_putc(out, '(') < 0 ||
				    md_bstruct_parse(msg, scan, cur,
						     MD_BSTRUCT_PD(cur)) < 0 ||
				    md_bstruct_open(msg, scan, cur,
						    MD_BSTRUCT_PD(cur),
						    extended, out) < 0)
					goto out;
				break;
			}
			cur = scan->parts[cur].parent;
		}
	}
out:
#undef MD_BSTRUCT_PD
	for (d = 0; d < MD_BSTRUCT_STACK; d++) {
		buf_free(&stack[d].s);
		buf_free(&stack[d].tmp);
		md_params_free(&stack[d].ct_params);
		md_params_free(&stack[d].disp_params);
	}
	free(stack);
	return ret;
}
