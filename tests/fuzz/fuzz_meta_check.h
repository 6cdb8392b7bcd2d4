/* Oracles shared by fuzz_meta.c and fuzz_meta_unpack.c: what every
 * struct md_meta must satisfy, whether it was computed from a message or
 * unpacked from an index record.
 */
#ifndef TESTS_FUZZ_FUZZ_META_CHECK_H
#define TESTS_FUZZ_FUZZ_META_CHECK_H

#include <stdbool.h>
#include <string.h>

#include "fuzz_common.h"
#include "md_meta_private.h"

/* Section specs tried per meta: enough to reach every part of any message
 * the scanner can produce (MD_META_PARTS_MAX), bounded so one input stays
 * fast. */
#define FUZZ_SPECS_MAX (3 * MD_META_PARTS_MAX + 64)
#define FUZZ_SPEC_LEN 256

/* One IMAP item list as ENVELOPE/BODY/BODYSTRUCTURE are sent (RFC 3501
 * §4, §9): parentheses, SP between items, NIL, numbers, quoted strings of
 * 7-bit TEXT-CHARs with only \" and \\ escaped, lists one after the other
 * without SP as 1*body and address lists have them, literals {n}CRLF + n
 * octets.  No NUL anywhere (the index refuses it).  true when s is exactly
 * one parenthesised list. */
__attribute__((unused)) static bool fuzz_imap_list_valid(const char *s, size_t len)
{
	size_t i = 0, depth = 0;
	bool need_item = true; /* after '(' or SP */

	if (len == 0 || s[0] != '(' || memchr(s, '\0', len) != NULL)
		return false;
	while (i < len) {
		char c = s[i];

		if (c == '(') {
			/* lists follow each other without SP: "(a)(b)" in
			 * address lists and body-type-mpart (RFC 3501 §9) */
			if (!need_item && s[i - 1] != ')')
				return false;
			depth++;
			i++;
			need_item = true;
			continue;
		}
		if (c == ')') {
			if (depth == 0)
				return false;
			depth--;
			i++;
			need_item = false;
			if (depth == 0)
				return i == len;
			continue;
		}
		if (c == ' ') {
			if (need_item)
				return false;
			i++;
			need_item = true;
			continue;
		}
		if (!need_item)
			return false;
		need_item = false;
		if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				unsigned char q = (unsigned char)s[i];

				if (q == '\\') {
					if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\'))
						return false;
					i++;
				} else if (q == '\r' || q == '\n' || q >= 0x80) {
					return false;
				}
			}
			if (i >= len)
				return false;
			i++;
		} else if (c == '{') {
			size_t n = 0, digits = 0;

			for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
				if (n > len)
					return false;
				n = n * 10 + (size_t)(s[i] - '0');
			}
			if (digits == 0 || i + 3 > len || s[i] != '}' || s[i + 1] != '\r' ||
			    s[i + 2] != '\n')
				return false;
			i += 3;
			if (n > len - i)
				return false;
			i += n;
		} else if (c >= '0' && c <= '9') {
			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
		} else if (len - i >= 3 && memcmp(s + i, "NIL", 3) == 0) {
			i += 3;
		} else {
			return false;
		}
	}
	return false; /* unbalanced */
}

/* Structural promises of md_meta_private.h that FETCH relies on. */
static void fuzz_meta_check_struct(const struct md_meta *m)
{
	FUZZ_CHECK(m->n_parts >= 1 && m->n_parts <= MD_META_PARTS_MAX);
	FUZZ_CHECK(m->parts[0].parent == MD_PART_NONE);
	for (uint32_t i = 0; i < m->n_parts; i++) {
		const struct md_part *p = &m->parts[i];

		FUZZ_CHECK(p->header_off <= m->size);
		FUZZ_CHECK(p->header_len <= m->size - p->header_off);
		FUZZ_CHECK(p->body_off == p->header_off + p->header_len);
		FUZZ_CHECK(p->body_len <= m->size - p->body_off);
		FUZZ_CHECK(p->body_lines <= p->body_len);
		FUZZ_CHECK(p->cte <= MD_CTE_UNKNOWN);
		FUZZ_CHECK(!(p->is_multipart && p->is_message));
		FUZZ_CHECK(i == 0 || p->parent < i);
		FUZZ_CHECK(p->first_child == MD_PART_NONE || p->first_child == i + 1);
		FUZZ_CHECK(p->next_sibling == MD_PART_NONE ||
			   (p->next_sibling > i && p->next_sibling < m->n_parts));
		if (p->parent != MD_PART_NONE) {
			const struct md_part *pp = &m->parts[p->parent];

			/* a part lies inside its parent's body */
			FUZZ_CHECK(p->header_off >= pp->body_off);
			FUZZ_CHECK(p->body_off + p->body_len <= pp->body_off + pp->body_len);
		}
	}
	FUZZ_CHECK(m->envelope != NULL && strlen(m->envelope) == m->envelope_len);
	FUZZ_CHECK(m->body != NULL && strlen(m->body) == m->body_len);
	FUZZ_CHECK(m->bodystructure != NULL &&
		   strlen(m->bodystructure) == m->bodystructure_len);
}

/* Every section spec reachable from "" by the RFC 3501 §6.4.5 numbering,
 * breadth first: each answer lies inside the message and names an
 * existing part.  Returns a bitmap (caller frees) of the parts some spec
 * answered with, or NULL when the spec budget ran out first. */
static uint8_t *fuzz_meta_walk_sections(const struct md_meta *m)
{
	static const char *const texts[] = { "", ".HEADER", ".TEXT", ".MIME", ".header" };
	char (*queue)[FUZZ_SPEC_LEN] = malloc(FUZZ_SPECS_MAX * sizeof(*queue));
	uint8_t *reached = calloc(m->n_parts, 1);
	size_t head = 0, tail = 0;
	bool full = false;
	uint64_t off, len;
	uint32_t part;

	FUZZ_CHECK(queue != NULL && reached != NULL);
	/* not valid section syntax */
	FUZZ_CHECK(md_meta_section(m, "0", &off, &len, &part) == -1);
	FUZZ_CHECK(md_meta_section(m, "1.", &off, &len, &part) == -1);
	FUZZ_CHECK(md_meta_section(m, "MIME", &off, &len, &part) == -1);
	FUZZ_CHECK(md_meta_section(m, "1..2", &off, &len, &part) == -1);
	FUZZ_CHECK(md_meta_section(m, NULL, &off, &len, &part) == -1);
	FUZZ_CHECK(md_meta_section(m, "99999999999.1", &off, &len, &part) == -1);
	queue[tail++][0] = '\0';
	while (head < tail) {
		const char *base = queue[head++];

		for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
			char spec[FUZZ_SPEC_LEN + 16];
			int rc;

			if (base[0] == '\0' && strcmp(texts[t], ".MIME") == 0) {
				FUZZ_CHECK(md_meta_section(m, "MIME", &off, &len, &part) == -1);
				continue;
			}
			snprintf(spec, sizeof(spec), "%s%s", base,
				 base[0] == '\0' && texts[t][0] == '.' ? texts[t] + 1 : texts[t]);
			part = UINT32_MAX;
			rc = md_meta_section(m, spec, &off, &len, &part);
			FUZZ_CHECK(rc == 0 || rc == 1);
			if (rc != 0)
				continue;
			FUZZ_CHECK(part < m->n_parts);
			FUZZ_CHECK(off <= m->size && len <= m->size - off);
			reached[part] = 1;
			FUZZ_CHECK(md_meta_section(m, spec, &off, &len, NULL) == 0);
		}
		/* children: numbers 1 .. count + 1 (the last one must not exist) */
		{
			uint32_t n_children = 1;
			int rc;

			rc = md_meta_section(m, base, &off, &len, &part);
			if (rc != 0)
				continue;
			/* a message/rfc822 part's numbers go on into the
			 * encapsulated message */
			if (m->parts[part].is_message && m->parts[part].first_child != MD_PART_NONE)
				part = m->parts[part].first_child;
			if (m->parts[part].is_multipart) {
				n_children = 0;
				for (uint32_t c = m->parts[part].first_child; c != MD_PART_NONE;
				     c = m->parts[c].next_sibling)
					n_children++;
			}
			for (uint32_t k = 1; k <= n_children + 1; k++) {
				int w;

				if (tail == FUZZ_SPECS_MAX) {
					full = true;
					break;
				}
				w = snprintf(queue[tail], FUZZ_SPEC_LEN, "%s%s%u", base,
					     base[0] == '\0' ? "" : ".", k);
				if (w < 0 || w >= FUZZ_SPEC_LEN)
					break;
				tail++;
			}
		}
	}
	free(queue);
	if (full) {
		free(reached);
		return NULL;
	}
	return reached;
}

static void fuzz_meta_check_binary(const struct md_meta *m)
{
	for (uint32_t i = 0; i < m->n_parts; i++) {
		enum md_meta_binary_status st = md_meta_binary_status(m, i);

		FUZZ_CHECK(st == MD_BINARY_OK || st == MD_BINARY_UNKNOWN_CTE ||
			   st == MD_BINARY_PARSE);
		FUZZ_CHECK((st == MD_BINARY_OK) == (m->parts[i].binary_ok != 0));
	}
	FUZZ_CHECK(md_meta_binary_status(m, m->n_parts) == MD_BINARY_PARSE);
}

static void fuzz_meta_check_equal(const struct md_meta *a, const struct md_meta *b)
{
	FUZZ_CHECK(a->size == b->size && a->sent_date == b->sent_date);
	FUZZ_CHECK(a->n_parts == b->n_parts);
	for (uint32_t i = 0; i < a->n_parts; i++) {
		const struct md_part *p = &a->parts[i], *q = &b->parts[i];

		FUZZ_CHECK(p->parent == q->parent && p->first_child == q->first_child &&
			   p->next_sibling == q->next_sibling);
		FUZZ_CHECK(p->header_off == q->header_off && p->header_len == q->header_len &&
			   p->body_off == q->body_off && p->body_len == q->body_len &&
			   p->body_lines == q->body_lines && p->binary_size == q->binary_size);
		FUZZ_CHECK(p->cte == q->cte && p->is_multipart == q->is_multipart &&
			   p->is_message == q->is_message && p->binary_ok == q->binary_ok);
	}
	FUZZ_CHECK(a->envelope_len == b->envelope_len &&
		   memcmp(a->envelope, b->envelope, a->envelope_len) == 0);
	FUZZ_CHECK(a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0);
	FUZZ_CHECK(a->bodystructure_len == b->bodystructure_len &&
		   memcmp(a->bodystructure, b->bodystructure, a->bodystructure_len) == 0);
	FUZZ_CHECK((a->references == NULL) == (b->references == NULL) &&
		   a->references_len == b->references_len &&
		   (a->references == NULL ||
		    memcmp(a->references, b->references, a->references_len) == 0));
	FUZZ_CHECK((a->preview == NULL) == (b->preview == NULL) &&
		   a->preview_len == b->preview_len &&
		   (a->preview == NULL ||
		    memcmp(a->preview, b->preview, a->preview_len) == 0));
}

#endif
