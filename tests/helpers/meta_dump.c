/* Test-only: compute the metadata of a message file and print it, for
 * tests/integration/corpus_meta.py.  The metadata goes through
 * md_meta_pack()/md_meta_unpack() first, so what is printed is what the
 * index would hand to FETCH.
 *
 *   meta_dump FILE [SECTION...]
 *
 * Output, one item per line (strings as "<name> <length>" followed by a
 * line with exactly that many octets):
 *   SIZE n
 *   SENTDATE t
 *   ENVELOPE len / BODY len / BODYSTRUCTURE len
 *   PART i parent first_child next_sibling header_off header_len body_off
 *        body_len body_lines binary_size cte multipart message binary_ok
 *   SECTION spec rc off len part        (rc: 0 found, 1 missing, -1 bad)
 *   BINARY spec status size             (status: OK, NONE, UNKNOWN-CTE,
 *                                        PARSE)
 *   BINSTATUS i status                  (md_meta_binary_status, each part)
 * Without SECTION arguments the sections the corpus checks are printed.
 * Exit status 0, or 1 on a usage, read, memory or pack mismatch error.
 */
#include "md_meta_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_DUMP_FILE_MAX (64 * 1024 * 1024)

static const char *const meta_dump_default[] = {
	"", "HEADER", "TEXT", "1", "1.MIME", "2", "2.MIME", "2.1.MIME", "1.2",
	NULL
};

static const char *const meta_dump_binary[] = { "1", "2", NULL };

static void meta_dump_str(const char *name, const char *s, size_t len)
{
	printf("%s %zu\n", name, len);
	fwrite(s, 1, len, stdout);
	putchar('\n');
}

static long long meta_dump_idx(uint32_t i)
{
	return i == MD_PART_NONE ? -1 : (long long)i;
}

static void meta_dump_section(const struct md_meta *m, const char *spec)
{
	uint64_t off = 0, len = 0;
	uint32_t part = MD_PART_NONE;
	int rc = md_meta_section(m, spec, &off, &len, &part);

	printf("SECTION %s %d %llu %llu %lld\n", spec[0] == '\0' ? "-" : spec,
	       rc, (unsigned long long)off, (unsigned long long)len,
	       rc == 0 ? meta_dump_idx(part) : -1);
}

static void meta_dump_binary_size(const struct md_meta *m, const char *spec)
{
	static const char *const names[] = { "OK", "UNKNOWN-CTE", "PARSE" };
	uint64_t off, len;
	uint32_t part;
	int rc = md_meta_section(m, spec, &off, &len, &part);
	enum md_meta_binary_status st;

	if (rc != 0) {
		/* a missing part is an empty string (RFC 3516 §4.2) */
		printf("BINARY %s %s 0\n", spec, rc > 0 ? "NONE" : "BAD");
		return;
	}
	st = md_meta_binary_status(m, part);
	printf("BINARY %s %s %llu\n", spec, names[st],
	       (unsigned long long)m->parts[part].binary_size);
}

int main(int argc, char **argv)
{
	struct md_meta meta, copy;
	struct buf packed;
	char *data;
	size_t len;
	uint32_t i;
	int a;

	if (argc < 2) {
		fprintf(stderr, "usage: meta_dump FILE [SECTION...]\n");
		return 1;
	}
	if (read_small_file(argv[1], META_DUMP_FILE_MAX, &data, &len) < 0) {
		perror(argv[1]);
		return 1;
	}
	if (md_meta_compute(data, len, &meta) < 0) {
		fprintf(stderr, "md_meta_compute failed\n");
		return 1;
	}
	buf_init(&packed, 0);
	if (md_meta_pack(&meta, &packed) < 0 ||
	    md_meta_unpack(packed.data, packed.len, &copy) < 0) {
		fprintf(stderr, "pack/unpack failed\n");
		return 1;
	}
	if (copy.n_parts != meta.n_parts ||
	    memcmp(copy.parts, meta.parts,
		   meta.n_parts * sizeof(*meta.parts)) != 0 ||
	    copy.bodystructure_len != meta.bodystructure_len ||
	    memcmp(copy.bodystructure, meta.bodystructure,
		   meta.bodystructure_len) != 0) {
		fprintf(stderr, "unpacked metadata differs\n");
		return 1;
	}
	printf("SIZE %llu\n", (unsigned long long)copy.size);
	printf("SENTDATE %lld\n", (long long)copy.sent_date);
	printf("PACKED %zu\n", packed.len);
	meta_dump_str("ENVELOPE", copy.envelope, copy.envelope_len);
	meta_dump_str("BODY", copy.body, copy.body_len);
	meta_dump_str("BODYSTRUCTURE", copy.bodystructure,
		      copy.bodystructure_len);
	for (i = 0; i < copy.n_parts; i++) {
		const struct md_part *p = &copy.parts[i];

		printf("PART %u %lld %lld %lld %llu %llu %llu %llu %llu %llu "
		       "%u %u %u %u\n", i, meta_dump_idx(p->parent),
		       meta_dump_idx(p->first_child),
		       meta_dump_idx(p->next_sibling),
		       (unsigned long long)p->header_off,
		       (unsigned long long)p->header_len,
		       (unsigned long long)p->body_off,
		       (unsigned long long)p->body_len,
		       (unsigned long long)p->body_lines,
		       (unsigned long long)p->binary_size, p->cte,
		       p->is_multipart, p->is_message, p->binary_ok);
	}
	for (i = 0; i < copy.n_parts; i++) {
		static const char *const st[] = { "OK", "UNKNOWN-CTE", "PARSE" };

		printf("BINSTATUS %u %s\n", i, st[md_meta_binary_status(&copy, i)]);
	}
	if (argc > 2) {
		for (a = 2; a < argc; a++)
			meta_dump_section(&copy, argv[a]);
	} else {
		for (a = 0; meta_dump_default[a] != NULL; a++)
			meta_dump_section(&copy, meta_dump_default[a]);
		for (a = 0; meta_dump_binary[a] != NULL; a++)
			meta_dump_binary_size(&copy, meta_dump_binary[a]);
	}
	md_meta_free(&meta);
	md_meta_free(&copy);
	buf_free(&packed);
	free(data);
	return fflush(stdout) == 0 ? 0 : 1;
}
