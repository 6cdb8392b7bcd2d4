/* Fuzz target: md_meta_unpack() on raw bytes (maildir/md_section.c).
 *
 * The packed metadata comes from the LMDB index, which is on disk and may
 * be damaged; unpack must refuse any record it cannot vouch for.  Oracles:
 * whatever unpack accepts satisfies the same structural promises as a
 * computed record (fuzz_meta_check.h), section lookups and BINARY status
 * stay in bounds, and pack/unpack of it round-trips.
 */
#include "fuzz_common.h"
#include "fuzz_meta_check.h"

#include "md_meta_private.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct md_meta m, u;
	struct buf packed;
	uint8_t *reached;

	if (md_meta_unpack(data, size, &m) < 0) {
		/* a refused record leaves nothing allocated */
		FUZZ_CHECK(m.parts == NULL && m.envelope == NULL && m.body == NULL &&
			   m.bodystructure == NULL && m.references == NULL && m.n_parts == 0);
		return 0;
	}
	fuzz_meta_check_struct(&m);
	fuzz_meta_check_binary(&m);
	reached = fuzz_meta_walk_sections(&m);
	free(reached);

	buf_init(&packed, 0);
	FUZZ_CHECK(md_meta_pack(&m, &packed) == 0);
	FUZZ_CHECK(md_meta_unpack(packed.data, packed.len, &u) == 0);
	fuzz_meta_check_equal(&m, &u);
	buf_free(&packed);
	md_meta_free(&u);
	md_meta_free(&m);
	return 0;
}
