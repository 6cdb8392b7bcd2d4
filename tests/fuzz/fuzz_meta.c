/* Fuzz target: message metadata (maildir/md_meta.c and the scanner,
 * ENVELOPE, BODYSTRUCTURE and section code behind it).
 *
 * Input: one message, exactly as it would be stored.  Oracles:
 *   - md_meta_compute() succeeds (it may only fail on memory) and its
 *     parts satisfy md_meta_private.h's promises (fuzz_meta_check.h);
 *   - ENVELOPE, BODY and BODYSTRUCTURE are well-formed IMAP lists;
 *   - pack then unpack gives back the same metadata (a computed record
 *     that the index refuses would make the message unfetchable);
 *   - every part is reachable by some section spec and every answer lies
 *     inside the message;
 *   - BINARY status answers agree with binary_ok.
 */
#include "fuzz_common.h"
#include "fuzz_meta_check.h"

#include "md_meta_private.h"
#include "util.h"

static bool fuzz_converted(uint8_t cte)
{
	return cte == MD_CTE_BASE64 || cte == MD_CTE_QP;
}

/* BINARY.SIZE (RFC 3516 §4.2): a part with nothing to decode in it is its
 * stored octets; decoded base64 is at most 3/4 of its text, decoded
 * quoted-printable at most twice (a bare LF becomes CRLF). */
static void fuzz_check_binary_sizes(const struct md_meta *m)
{
	uint8_t *conv = calloc(m->n_parts, 1);

	FUZZ_CHECK(conv != NULL);
	/* children come after their parent: a backwards sweep sees subtrees */
	for (uint32_t i = m->n_parts; i-- > 0;) {
		const struct md_part *p = &m->parts[i];

		conv[i] |= fuzz_converted(p->cte);
		if (p->parent != MD_PART_NONE)
			conv[p->parent] |= conv[i];
		if (!p->binary_ok)
			continue;
		if (!conv[i])
			FUZZ_CHECK(p->binary_size == p->body_len);
		else if (p->cte == MD_CTE_BASE64)
			FUZZ_CHECK(p->binary_size <= p->body_len / 4 * 3);
		else if (p->cte == MD_CTE_QP)
			FUZZ_CHECK(p->binary_size <= 2 * p->body_len);
	}
	free(conv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct md_meta m, u;
	struct buf packed;
	uint8_t *reached;

	FUZZ_CHECK(md_meta_compute((const char *)data, size, &m) == 0);
	FUZZ_CHECK(m.size == size);
	FUZZ_CHECK(m.parts[0].header_off == 0);
	FUZZ_CHECK(m.parts[0].body_off + m.parts[0].body_len == size);
	fuzz_meta_check_struct(&m);
	FUZZ_CHECK(fuzz_imap_list_valid(m.envelope, m.envelope_len));
	FUZZ_CHECK(fuzz_imap_list_valid(m.body, m.body_len));
	FUZZ_CHECK(fuzz_imap_list_valid(m.bodystructure, m.bodystructure_len));
	fuzz_meta_check_binary(&m);
	fuzz_check_binary_sizes(&m);

	buf_init(&packed, 0);
	FUZZ_CHECK(md_meta_pack(&m, &packed) == 0);
	FUZZ_CHECK(md_meta_unpack(packed.data, packed.len, &u) == 0);
	fuzz_meta_check_equal(&m, &u);
	/* a record cut short anywhere is refused, never read past its end */
	for (size_t cut = 0; cut < packed.len; cut += 1 + packed.len / 16) {
		struct md_meta t;
		FUZZ_CHECK(md_meta_unpack(packed.data, cut, &t) == -1);
	}
	buf_free(&packed);

	reached = fuzz_meta_walk_sections(&m);
	if (reached != NULL) {
		for (uint32_t i = 0; i < m.n_parts; i++) {
			if (!reached[i])
				fprintf(stderr, "part %u of %u reached by no section\n", i,
					m.n_parts);
			FUZZ_CHECK(reached[i]);
		}
		free(reached);
	}
	md_meta_free(&u);
	md_meta_free(&m);
	return 0;
}
