/* Internals of the message metadata code, shared by md_meta.c, md_mime.c,
 * md_rfc822.c, md_env.c, md_bstruct.c and md_section.c, and by the
 * readers of stored messages that reuse the scanner's field iterator and
 * lexer: md_decode.c (BINARY) and md_text.c (SEARCH).  Nothing else
 * includes this; the store uses md_meta_private.h.
 *
 * Memory: one computation owns a few growable buffers (struct buf) that are
 * freed before md_meta_compute() returns; only the strings and the part
 * array handed back in struct md_meta outlive it.
 */
#ifndef MAILDIR_MD_META_INT_H
#define MAILDIR_MD_META_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_meta_private.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* Header fields (md_mime.c) */

/* One header field inside a header block.  Offsets are into the message.
 * A line ends at LF; a CR right before the LF is not content.  A field is
 * its first line plus every following line that begins with SP or HTAB
 * (RFC 5322 §2.2.3 folding). */
struct md_field {
	size_t start;      /* first byte of the field */
	size_t name_len;   /* name without trailing SP/HTAB before ':' */
	bool has_colon;    /* false: the whole line is a name, no value */
	size_t value_off;  /* first line's value (after ':' and SP/HTAB) */
	size_t first_end;  /* end of the first line's content */
	size_t end;        /* end of the last line's content */
	size_t next;       /* where the next line starts */
	bool folded;       /* more than one line */
};

struct md_hdr_iter {
	const char *msg;
	size_t pos, end;   /* remaining header block [pos, end) */
	uint32_t count;    /* fields returned so far */
	size_t limit_end;  /* fields starting at or after this are ignored */
};

void md_mime_hdr_init(struct md_hdr_iter *it, const char *msg, size_t off,
		      size_t len);
/* 1 with the next field (within the field and size limits), 0 at the end
 * of the block (empty line, end of range, or a limit reached). */
int md_mime_hdr_next(struct md_hdr_iter *it, struct md_field *f);
bool md_mime_field_is(const char *msg, const struct md_field *f,
		      const char *name);
/* The unfolded value as Dovecot and most servers see it: the first line's
 * value, then "\n" and each continuation line without its CRLF.  The
 * result is appended to out (and NUL-terminated); -1 on memory. */
int md_mime_field_value(const char *msg, const struct md_field *f,
			struct buf *out);

/* ------------------------------------------------------------------ */
/* The structure scan (md_mime.c) */

enum md_pflag {
	MD_PF_MULTIPART = 1 << 0, /* has a boundary and children */
	MD_PF_MESSAGE = 1 << 1,   /* message/rfc822 with an encapsulated child */
	MD_PF_TEXT = 1 << 2,
	MD_PF_IS_MIME = 1 << 3,   /* Content-* headers count (RFC 2045 §4) */
	MD_PF_CT_MULTI = 1 << 4,  /* Content-Type says multipart, even if no
				   * boundary made it a container */
	MD_PF_DIGEST = 1 << 5,    /* multipart/digest: default message/rfc822 */
	MD_PF_FLATTENED = 1 << 6, /* a limit made this container a leaf */
	MD_PF_CT_SEEN = 1 << 7,   /* had a Content-Type header */
};

struct md_scan {
	struct md_part *parts;
	uint8_t *pflags;       /* enum md_pflag per part */
	uint8_t *depth;        /* nesting depth per part, root 0 */
	uint32_t n_parts;
	size_t cap;
};

/* Find the MIME structure of msg; -1 only on memory exhaustion. */
int md_mime_scan(const char *msg, size_t len, struct md_scan *scan);
void md_mime_scan_free(struct md_scan *scan);

/* ------------------------------------------------------------------ */
/* RFC 5322 / MIME tokens (md_rfc822.c).  Return values follow the
 * lexer they mirror: 1 = more input follows, 0 = end of input, -1 =
 * syntax error. */

struct md_rfc822 {
	const unsigned char *p, *end;
	struct buf *last_comment; /* NULL: comments are only skipped */
	bool oom;
};

void md_rfc822_init(struct md_rfc822 *r, const void *data, size_t len,
		    struct buf *last_comment);
bool md_rfc822_is_atext(unsigned char c);
int md_rfc822_skip_lwsp(struct md_rfc822 *r);
int md_rfc822_atom(struct md_rfc822 *r, struct buf *out);
int md_rfc822_dot_atom(struct md_rfc822 *r, struct buf *out);
int md_rfc822_mime_token(struct md_rfc822 *r, struct buf *out);
int md_rfc822_quoted_string(struct md_rfc822 *r, struct buf *out);
int md_rfc822_phrase(struct md_rfc822 *r, struct buf *out);
int md_rfc822_domain(struct md_rfc822 *r, struct buf *out);
int md_rfc822_content_type(struct md_rfc822 *r, struct buf *out);

/* A parameter list: names and values are NUL-terminated strings stored
 * one after the other in pool, referenced by offset. */
struct md_param {
	size_t name, value;
};

struct md_params {
	struct md_param *v;
	size_t n, cap;
	struct buf pool;
};

void md_params_init(struct md_params *ps);
void md_params_free(struct md_params *ps);
const char *md_params_name(const struct md_params *ps, size_t i);
const char *md_params_value(const struct md_params *ps, size_t i);
/* Parse ";" name "=" value ... with RFC 2231 continuations merged
 * (RFC 2231 §3) the way Dovecot does (values are not decoded). */
int md_rfc822_params(struct md_rfc822 *r, struct md_params *ps);

/* ------------------------------------------------------------------ */
/* IMAP strings and ENVELOPE (md_env.c) */

/* string / nstring (RFC 3501 §4.3): quoted when it can be, a literal when
 * it holds CR, LF or 8-bit octets.  NUL octets become 0x80. */
int md_env_string(struct buf *out, const char *s, size_t len);
int md_env_nstring(struct buf *out, const char *s, size_t len, bool nil);
/* As nstring, but CR and LF dropped (a space put where a line break had
 * no whitespace after it): for header values shown on one line. */
int md_env_nstring_nolf(struct buf *out, const char *s, size_t len, bool nil);
/* Whitespace runs (SP, HTAB, CR, LF) become one space, leading and
 * trailing whitespace go: for subjects and display names. */
int md_env_string_human(struct buf *out, const char *s, size_t len);

/* Append the ENVELOPE list "(date subject from ... message-id)" for the
 * header block [hdr_off, hdr_off + hdr_len). */
int md_env_write(struct buf *out, const char *msg, size_t hdr_off,
		 size_t hdr_len);
/* Date: of the header block as Unix time, 0 when absent or unparsable. */
int64_t md_env_sent_date(const char *msg, size_t hdr_off, size_t hdr_len);
/* The last References: field of the header block, unfolded, CR and LF
 * dropped, at most MD_META_REFERENCES_MAX octets (its tail, from a '<'),
 * into out; 0 with out empty when there is none, -1 on memory. */
int md_env_references(const char *msg, size_t hdr_off, size_t hdr_len,
		      struct buf *out);

/* ------------------------------------------------------------------ */
/* BODY / BODYSTRUCTURE (md_bstruct.c) */

int md_bstruct_write(const char *msg, const struct md_scan *scan,
		     bool extended, struct buf *out);

#endif
