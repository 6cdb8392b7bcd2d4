/* Content-Transfer-Encoding decoders (RFC 2045 §6.7 quoted-printable,
 * §6.8 base64), shared inside maildir/ by FETCH BINARY (md_decode.c) and
 * the SEARCH text (md_text.c).  Streaming: feed the encoded octets in
 * chunks of any size, then finish; the state carries over between chunks
 * (a quoted-printable soft line break or a base64 quantum may be split
 * anywhere).
 *
 * Strict mode (BINARY) follows exactly the rules md_meta.c counted the
 * BINARY sizes with at delivery, so a part md_meta.c found decodable
 * decodes to exactly its md_part.binary_size octets:
 *  - quoted-printable: trailing SP/HTAB of a line is dropped, a line break
 *    (CRLF or bare LF) becomes CRLF, "=" + line break is a soft break
 *    (whitespace between them allowed), lowercase hex is accepted;
 *    "=" without two hex digits or a line break, a CR without LF, a run of
 *    more than 76 whitespace octets inside a line, or an "=" at the very
 *    end set bad (the octets are passed through as they stand);
 *  - base64: whitespace is ignored, "=" padding ends the data ("==" after
 *    two symbols, "=" after three), only whitespace may follow; a symbol
 *    outside the alphabet or a missing quantum sets bad.
 * Lenient mode (SEARCH) never fails: base64 skips what is not in the
 * alphabet, padding ends a quantum and decoding goes on after it; quoted-printable is decoded as
 * in strict mode with the broken octets passed through.
 */
#ifndef MAILDIR_MD_DECODE_H
#define MAILDIR_MD_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_meta_private.h"
#include "util.h"

/* RFC 2045 §6.7: a quoted-printable line has at most 76 characters, so a
 * longer whitespace run cannot be trailing whitespace to drop (md_meta.c
 * applies the same bound when it counts BINARY sizes) */
#define MD_DECODE_QP_WS_MAX 76

struct md_decoder {
	enum md_cte cte;
	bool lenient;
	bool bad;           /* strict mode: the input is not decodable */
	int state;
	/* base64 */
	uint32_t acc;
	unsigned sub;       /* symbols in the current quantum, 0..3 */
	unsigned pad;       /* '=' seen: 1 after the first, 2 when complete */
	/* quoted-printable */
	unsigned char hex1;
	size_t ws;          /* whitespace octets pending */
	char wsbuf[MD_DECODE_QP_WS_MAX + 1];
};

/* cte other than base64/quoted-printable copies the octets unchanged. */
void md_decoder_init(struct md_decoder *d, enum md_cte cte, bool lenient);
/* Decode n octets, appending to out.  -1 only when out refuses the octets
 * (its cap, or memory). */
int md_decoder_feed(struct md_decoder *d, const void *in, size_t n,
		    struct buf *out);
/* The input has ended: flush and judge.  -1 as above. */
int md_decoder_finish(struct md_decoder *d, struct buf *out);

/* RFC 2047 §4.2 "Q" encoding of an encoded word: "_" is SP, "=XX" an
 * octet; anything broken is kept as it stands.  Appends to out. */
int md_decode_q_word(const char *in, size_t n, struct buf *out);

/* md_text.c, for tests and the fuzzer: a header value (unfolded) with its
 * RFC 2047 words decoded to UTF-8 and case-folded, as SEARCH matches it;
 * and the case folding alone (idempotent).  Both append to out (what
 * exceeds out's cap is dropped); -1 only when memory runs out. */
int md_text_header_decode(const char *s, size_t n, struct buf *out);
int md_text_casefold(const char *s, size_t n, struct buf *out);

#endif
