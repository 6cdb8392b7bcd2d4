/* The base subject of RFC 5256 §2.1 (SORT SUBJECT, THREAD=ORDEREDSUBJECT
 * and THREAD=REFERENCES) and the i;ascii-casemap comparison every SORT
 * string key uses (RFC 5256 §3, RFC 4790 §9.2).
 *
 * The input is the Subject: value already decoded to UTF-8 (step 1's
 * RFC 2047 decoding is the store's: md_header_utf8()).  Matching of the
 * RFC's ABNF (all literals case-insensitive):
 *   subj-trailer = "(fwd)" / WSP
 *   subj-fwd-hdr = "[fwd:"        subj-fwd-trl = "]"
 *   subj-blob    = "[" *BLOBCHAR "]" *WSP      BLOBCHAR: not "[" or "]"
 *   subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
 *   subj-leader  = (*subj-blob subj-refwd) / WSP
 * A message "is a reply or forward" (REFERENCES step 5) when a
 * subj-refwd, a "(fwd)" trailer or a "[fwd: ...]" wrapper was removed.
 *
 * Memory: one scratch buffer per call, freed before returning.
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

static char imap_subject_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

int imap_subject_casecmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned char ca = (unsigned char)imap_subject_upper(a[i]);
		unsigned char cb = (unsigned char)imap_subject_upper(b[i]);

		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Does s[at..end) begin with lit (lowercase ASCII), case-insensitively? */
static bool imap_subject_has(const char *s, size_t at, size_t end, const char *lit)
{
	size_t n = strlen(lit);

	if (end - at < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (imap_subject_upper(s[at + i]) != imap_subject_upper(lit[i]))
			return false;
	return true;
}

/* subj-blob at s[at]: its end (after the trailing WSP), or 0 when none.
 * (A blob never ends at 0: it starts at or after 0 and holds "[]".) */
static size_t imap_subject_blob(const char *s, size_t at, size_t end)
{
	size_t p = at;

	if (p >= end || s[p] != '[')
		return 0;
	for (p++; p < end && s[p] != ']'; p++)
		if (s[p] == '[')
			return 0;
	if (p >= end)
		return 0;
	for (p++; p < end && s[p] == ' '; p++)
		;
	return p;
}

/* *subj-blob subj-refwd at s[at]: its end, or 0. */
static size_t imap_subject_leader(const char *s, size_t at, size_t end)
{
	size_t p = at, q;

	while ((q = imap_subject_blob(s, p, end)) != 0)
		p = q;
	if (imap_subject_has(s, p, end, "re"))
		p += 2;
	else if (imap_subject_has(s, p, end, "fwd"))
		p += 3;
	else if (imap_subject_has(s, p, end, "fw"))
		p += 2;
	else
		return 0;
	while (p < end && s[p] == ' ')
		p++;
	if ((q = imap_subject_blob(s, p, end)) != 0)
		p = q;
	if (p >= end || s[p] != ':')
		return 0;
	return p + 1;
}

/* Steps (2) to (5) on w[*start, *end). */
static void imap_subject_strip(const char *w, size_t *start, size_t *end, bool *reply)
{
	bool changed;

	/* (2) trailers */
	for (;;) {
		if (*end > *start && w[*end - 1] == ' ') {
			(*end)--;
		} else if (*end - *start >= 5 && imap_subject_has(w, *end - 5, *end, "(fwd)")) {
			*end -= 5;
			*reply = true;
		} else {
			break;
		}
	}
	/* (3) and (4), repeated (5) */
	do {
		size_t q;

		changed = false;
		while (*start < *end && w[*start] == ' ') {
			(*start)++;
			changed = true;
		}
		if ((q = imap_subject_leader(w, *start, *end)) != 0) {
			*start = q;
			*reply = true;
			changed = true;
		}
		/* a blob goes only when a subject is left after it */
		if ((q = imap_subject_blob(w, *start, *end)) != 0 && q < *end) {
			*start = q;
			changed = true;
		}
	} while (changed);
}

int imap_subject_base(const char *s, size_t len, struct buf *out, bool *reply_r)
{
	struct buf w;
	size_t start = 0, end;
	bool reply = false;
	int ret;

	/* (1) tabs and line breaks are spaces, runs of spaces one space */
	buf_init(&w, 0);
	for (size_t i = 0; i < len; i++) {
		char c = s[i] == '\t' || s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];

		if (c == ' ' && w.len > 0 && w.data[w.len - 1] == ' ')
			continue;
		if (buf_putc(&w, c) < 0) {
			buf_free(&w);
			return -1;
		}
	}
	end = w.len;
	for (;;) {
		imap_subject_strip(w.data, &start, &end, &reply);
		/* (6) "[fwd: subject]" */
		if (end - start >= 6 && imap_subject_has(w.data, start, end, "[fwd:") &&
		    w.data[end - 1] == ']') {
			start += 5;
			end--;
			reply = true;
			continue;
		}
		break;
	}
	ret = buf_append(out, w.data != NULL ? w.data + start : "", end - start);
	if (ret == 0)
		ret = buf_cstr(out);
	buf_free(&w);
	if (reply_r != NULL)
		*reply_r = reply;
	return ret;
}
