/* Message metadata computed once, when a message enters the store: the IMAP
 * ENVELOPE, BODY and BODYSTRUCTURE strings (RFC 3501 §7.4.2, RFC 9051
 * §7.5.2) and the byte offsets of every MIME part, so that FETCH never
 * reparses a message.  Shared inside maildir/ only; the index stores the
 * packed form and hands it to protocols through store.h.
 *
 * The MIME structure is found by our own iterative scanner with the limits
 * below; libetpan parses single header values only (LIBRARIES.md §1).  A
 * message beyond a limit is still described, as flat as the limit needs.
 */
#ifndef MAILDIR_MD_META_PRIVATE_H
#define MAILDIR_MD_META_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MD_META_DEPTH_MAX 32
#define MD_META_PARTS_MAX 1000
#define MD_META_BOUNDARY_MAX 70            /* RFC 2046 §5.1.1 */
#define MD_META_HEADER_MAX (256 * 1024)
#define MD_META_FIELDS_MAX 1000

#define MD_PART_NONE UINT32_MAX

enum md_cte {
	MD_CTE_7BIT,
	MD_CTE_8BIT,
	MD_CTE_BINARY,
	MD_CTE_BASE64,
	MD_CTE_QP,
	MD_CTE_UNKNOWN, /* BINARY answers NO [UNKNOWN-CTE] (RFC 3516 §4.3) */
};

/* One MIME part.  parts[0] is the whole message (its header is the message
 * header, its body the message body).  Offsets are from the start of the
 * message file. */
struct md_part {
	uint32_t parent;       /* MD_PART_NONE for parts[0] */
	uint32_t first_child;  /* MD_PART_NONE when none */
	uint32_t next_sibling; /* MD_PART_NONE when last */
	uint64_t header_off;   /* the part's MIME header ... */
	uint64_t header_len;   /* ... including the empty line ending it */
	uint64_t body_off;
	uint64_t body_len;
	uint64_t body_lines;
	uint64_t binary_size;  /* decoded size (BINARY.SIZE), valid when binary_ok */
	uint8_t cte;           /* enum md_cte */
	uint8_t is_multipart;
	uint8_t is_message;    /* message/rfc822 (or global): children describe
				* the encapsulated message, whose header is the
				* child's header */
	uint8_t binary_ok;     /* 0: decoding failed -> BINARY gives NO [PARSE] */
};

struct md_meta {
	uint64_t size;          /* RFC822.SIZE: octets of the stored file */
	char *envelope;         /* "(" ... ")" exactly as sent after ENVELOPE */
	size_t envelope_len;
	char *body;             /* BODY (no extension data) */
	size_t body_len;
	char *bodystructure;    /* BODYSTRUCTURE (with extension data) */
	size_t bodystructure_len;
	struct md_part *parts;
	uint32_t n_parts;
	int64_t sent_date;      /* Date: header as Unix time, 0 when absent/bad */
	char *references;       /* References: value, unfolded, CR/LF gone
				 * (THREAD=REFERENCES, RFC 5256 §2.2); NULL
				 * when absent or in a record packed before
				 * it was kept (version 1) */
	size_t references_len;
	char *preview;          /* RFC 8970 §3 preview, UTF-8, "" when the
				 * message has no text; NULL in a record
				 * packed before it was kept (version 1, 2) */
	size_t preview_len;
};

/* References: octets kept (the tail: the last ids name the nearest
 * ancestors, RFC 5256 §2.2 step 1.B).  RFC 5322 sets no bound; this
 * holds some 200 message ids. */
#define MD_META_REFERENCES_MAX (16 * 1024)

/* Scan msg (len bytes, the message exactly as stored) and fill meta_r.
 * Never fails on malformed mail; -1 only when memory runs out. */
int md_meta_compute(const char *msg, size_t len, struct md_meta *meta_r);
void md_meta_free(struct md_meta *meta);

/* RFC 8970 §3: a preview holds at most 256 characters */
#define MD_META_PREVIEW_CHARS 256
/* octets of it: 256 characters of at most 4 octets of UTF-8 */
#define MD_META_PREVIEW_MAX (4 * MD_META_PREVIEW_CHARS)

/* md_text.c: the preview of a message (msg != NULL: the message in
 * memory, len octets; else read from fd) whose parts meta describes:
 * the first text/plain part (or, when there is none, the first text/html
 * one with its markup taken out) decoded, converted to UTF-8, whitespace
 * collapsed, at most MD_META_PREVIEW_CHARS characters.  Appends to out
 * ("" when the message has no text part).  -1 when memory runs out or
 * the file cannot be read. */
int md_text_preview(const char *msg, size_t len, int fd,
		    const struct md_meta *meta, struct buf *out);

/* Serialise for the index (versioned, little cost), and back.  unpack
 * validates every offset and index it reads (the index is on disk and may
 * be damaged) and returns -1 on any inconsistency. */
int md_meta_pack(const struct md_meta *meta, struct buf *out);
int md_meta_unpack(const void *data, size_t len, struct md_meta *meta_r);

/* The byte range of an IMAP section (RFC 3501 §6.4.5 / RFC 9051 §6.4.5):
 * spec is the section text inside the brackets without HEADER.FIELDS
 * lists: "", "HEADER", "TEXT", "1", "1.MIME", "2.1.HEADER", "3.TEXT" ...
 * For "x.HEADER.FIELDS (...)" callers ask for "x.HEADER" and filter.
 * Returns 0 with the range, 1 when the section does not exist (IMAP sends
 * an empty string), -1 when spec is not valid section syntax.
 * part_r (may be NULL) receives the index of the part the range belongs to. */
int md_meta_section(const struct md_meta *meta, const char *spec,
		    uint64_t *off_r, uint64_t *len_r, uint32_t *part_r);

/* Added by the metadata code (additive): how FETCH BINARY[part] and
 * BINARY.SIZE[part] must be answered for an existing part, judged on the
 * part and everything inside it (RFC 3516 §4.3): UNKNOWN_CTE when some
 * encoding is not one of RFC 2045 §6.1's, PARSE when base64 or
 * quoted-printable content cannot be decoded.  binary_size is valid only
 * for MD_BINARY_OK. */
enum md_meta_binary_status {
	MD_BINARY_OK,
	MD_BINARY_UNKNOWN_CTE, /* NO [UNKNOWN-CTE] */
	MD_BINARY_PARSE,       /* NO [PARSE] */
};
enum md_meta_binary_status md_meta_binary_status(const struct md_meta *meta,
						 uint32_t part);

#endif
