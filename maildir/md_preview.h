/* The RFC 8970 §3 preview's text rules, shared inside maildir/: UTF-8
 * text (a part md_text.c chose, decoded and converted) to at most
 * MD_META_PREVIEW_CHARS characters with whitespace collapsed, HTML tags,
 * comments and the content of <style>, <script>, <head> and <title>
 * taken out and character references resolved.  The part is chosen and
 * decoded by md_text.c (md_text_preview()), with the SEARCH machinery. */
#ifndef MAILDIR_MD_PREVIEW_H
#define MAILDIR_MD_PREVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* an HTML tag or entity name we look at (longer ones are not ours) */
#define MD_PREVIEW_NAME 16

struct md_preview {
	struct buf *out;
	size_t chars;
	bool space;     /* a whitespace run is pending */
	char hide[MD_PREVIEW_NAME]; /* inside <style> ... </style> */
};

/* Append the preview of s (n octets of UTF-8; HTML when html) to pv->out,
 * up to the limit; octets that are not UTF-8 become U+FFFD.  -1 only when
 * pv->out refuses octets. */
int md_preview_text(struct md_preview *pv, const char *s, size_t n, bool html);

#endif
