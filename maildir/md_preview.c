/* RFC 8970 §3 preview text: whitespace collapsed, no HTML markup, at
 * most MD_META_PREVIEW_CHARS characters (md_preview.h).  No memory of its
 * own: everything goes to the caller's buffer. */
#include "md_preview.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "md_decode.h"

/* One character: whitespace and controls collapse into one SP between
 * words, none at either end; nothing past MD_META_PREVIEW_CHARS. */
static int md_preview_cp(struct md_preview *pv, uint32_t cp)
{
	unsigned char o[8];

	if (cp <= 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0xa0)) {
		pv->space = pv->chars > 0;
		return 0;
	}
	if (pv->hide[0] != '\0' || pv->chars >= MD_META_PREVIEW_CHARS)
		return 0;
	if (pv->space) {
		/* no SP at the end: it needs room for a character after it */
		if (pv->chars + 2 > MD_META_PREVIEW_CHARS) {
			pv->chars = MD_META_PREVIEW_CHARS;
			return 0;
		}
		if (buf_putc(pv->out, ' ') < 0)
			return -1;
		pv->chars++;
	}
	pv->space = false;
	pv->chars++;
	return buf_append(pv->out, o, md_text_put_utf8(cp, o));
}

/* An HTML tag at s (n octets, s[0] '<'): its length; a line break for
 * the block tags, <style>, <script>, <head> and <title> hidden whole. */
static size_t md_preview_tag(struct md_preview *pv, const char *s, size_t n)
{
	static const char *const blocks[] = { "br", "p", "div", "li", "tr",
		"td", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", NULL };
	static const char *const hidden[] = { "style", "script", "head",
		"title", NULL };
	char name[MD_PREVIEW_NAME];
	const char *end;
	size_t i = 1, k = 0;
	bool closing;

	if (n >= 4 && memcmp(s, "<!--", 4) == 0) {
		end = memmem(s + 4, n - 4, "-->", 3);
		return end == NULL ? n : (size_t)(end - s) + 3;
	}
	end = memchr(s, '>', n);
	closing = i < n && s[i] == '/';
	if (closing)
		i++;
	while (i < n && k + 1 < sizeof(name) &&
	       (((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
		(s[i] >= '0' && s[i] <= '9')))
		name[k++] = s[i++];
	name[k] = '\0';
	for (size_t b = 0; blocks[b] != NULL; b++) {
		if (strcasecmp(name, blocks[b]) == 0)
			pv->space = pv->chars > 0;
	}
	if (closing && strcasecmp(name, pv->hide) == 0)
		pv->hide[0] = '\0';
	for (size_t h = 0; !closing && pv->hide[0] == '\0' &&
	     hidden[h] != NULL; h++) {
		if (strcasecmp(name, hidden[h]) == 0)
			str_copy(pv->hide, hidden[h], sizeof(pv->hide));
	}
	return end == NULL ? n : (size_t)(end - s) + 1;
}

/* An HTML character reference at s (s[0] '&'): its length and *cp, or 0
 * when it is none we know (the "&" is then text). */
static size_t md_preview_entity(const char *s, size_t n, uint32_t *cp)
{
	static const struct { const char *name; uint32_t cp; } named[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
		{ "apos", '\'' }, { "nbsp", 0xa0 }, { NULL, 0 } };
	const char *semi = memchr(s, ';', n < MD_PREVIEW_NAME ? n :
				  MD_PREVIEW_NAME);
	char name[MD_PREVIEW_NAME];
	size_t len;

	if (semi == NULL || semi - s < 2)
		return 0;
	len = (size_t)(semi - s) - 1;
	memcpy(name, s + 1, len);
	name[len] = '\0';
	if (name[0] == '#') {
		char *e;
		unsigned long v = (name[1] | 0x20) == 'x' ?
			strtoul(name + 2, &e, 16) : strtoul(name + 1, &e, 10);

		if (*e != '\0' || e == name + 1 || v == 0 || v > 0x10ffff ||
		    (v >= 0xd800 && v <= 0xdfff))
			return 0;
		*cp = (uint32_t)v;
		return len + 2;
	}
	for (size_t i = 0; named[i].name != NULL; i++) {
		if (strcmp(name, named[i].name) == 0) {
			*cp = named[i].cp;
			return len + 2;
		}
	}
	return 0;
}

/* UTF-8 text (HTML when html) into the preview; octets that are not
 * UTF-8 (a charset iconv does not know) become U+FFFD. */
int md_preview_text(struct md_preview *pv, const char *s, size_t n,
			   bool html)
{
	size_t i = 0;

	while (i < n && pv->chars < MD_META_PREVIEW_CHARS) {
		uint32_t cp;
		size_t l;

		if (html && s[i] == '<') {
			i += md_preview_tag(pv, s + i, n - i);
			continue;
		}
		if (html && s[i] == '&' &&
		    (l = md_preview_entity(s + i, n - i, &cp)) > 0) {
			i += l;
		} else if ((l = md_text_utf8((const unsigned char *)s + i,
					     n - i, &cp)) > 0) {
			i += l;
		} else {
			cp = 0xfffd;
			i++;
		}
		if (md_preview_cp(pv, cp) < 0)
			return -1;
	}
	return 0;
}

