/* Reading what Dovecot leaves in a Maildir, for the first indexing (see
 * store.h and md_rebuild.c).  Formats, as Dovecot writes them:
 *   dovecot-uidlist v3:  "3 V<uidvalidity> N<uidnext> G<guid>", then one
 *                        line per message "<uid> <fields> :<file name>"
 *                        (fields such as W<vsize> S<size> vary)
 *   dovecot-uidlist v1:  "1 <uidvalidity> <uidnext>", then "<uid> <file>"
 *   dovecot-keywords:    "<index> <name>" lines; index i is letter 'a'+i
 *                        in the ":2," suffix of file names.
 * File names are matched by base name (before ':'), so flag changes made
 * after Dovecot wrote the list do not matter.  Nothing here writes.
 */
#include "md_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MD_UIDLIST_MAX (64 * 1024 * 1024) /* dovecot-uidlist read whole */
#define MD_DCKEYWORDS_MAX (64 * 1024)

static int md_dcmap_cmp(const void *a, const void *b)
{
	const struct md_dcmap *x = a, *y = b;
	size_t n = x->blen < y->blen ? x->blen : y->blen;
	int c = memcmp(x->base, y->base, n);

	return c != 0 ? c : (x->blen > y->blen) - (x->blen < y->blen);
}

void md_dovecot_free(struct md_dovecot *dc)
{
	free(dc->text);
	free(dc->map);
	for (int i = 0; i < 26; i++)
		free(dc->kw[i]);
	memset(dc, 0, sizeof(*dc));
}

static bool md_parse_u32(const char *s, const char **end, uint32_t *v)
{
	uint64_t x = 0;
	const char *p = s;

	while (*p >= '0' && *p <= '9' && x <= UINT32_MAX)
		x = x * 10 + (uint64_t)(*p++ - '0');
	if (p == s || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	*end = p;
	return true;
}

/* The header line only (header_only) or everything.  0, or -1 when there is
 * no usable dovecot-uidlist. */
int md_dovecot_read(const char *dir, bool header_only, struct md_dovecot *dc)
{
	char path[PATH_MAX], *line, *next;
	size_t len, cap = 0;
	int version;

	memset(dc, 0, sizeof(*dc));
	if ((size_t)snprintf(path, sizeof(path), "%s/dovecot-uidlist", dir) >=
	    sizeof(path) || read_small_file(path, MD_UIDLIST_MAX, &dc->text, &len) < 0)
		return -1;
	line = dc->text;
	next = strchr(line, '\n');
	if (next != NULL)
		*next++ = '\0';
	version = line[0] - '0';
	if ((version != 1 && version != 3) || line[1] != ' ')
		goto bad;
	if (version == 1) {
		const char *p = line + 2;

		if (!md_parse_u32(p, &p, &dc->uidvalidity) || *p++ != ' ' ||
		    !md_parse_u32(p, &p, &dc->uidnext))
			goto bad;
	} else {
		char *save = NULL;

		for (char *tok = strtok_r(line + 2, " ", &save); tok != NULL;
		     tok = strtok_r(NULL, " ", &save)) {
			const char *end;

			if (tok[0] == 'V' && md_parse_u32(tok + 1, &end, &dc->uidvalidity))
				continue;
			if (tok[0] == 'N')
				md_parse_u32(tok + 1, &end, &dc->uidnext);
		}
	}
	if (dc->uidvalidity == 0)
		goto bad;
	for (line = next; !header_only && line != NULL && *line != '\0'; line = next) {
		const char *p = line, *file = NULL;
		uint32_t uid;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (!md_parse_u32(p, &p, &uid) || uid == 0 || *p != ' ')
			continue;
		if (version == 1) {
			file = p + 1;
		} else {
			/* extension fields, then ":" and the file name */
			const char *colon = strstr(p, " :");

			if (colon != NULL)
				file = colon + 2;
		}
		if (file == NULL || *file == '\0')
			continue;
		if (dc->n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct md_dcmap *nm = realloc(dc->map, ncap * sizeof(*nm));

			if (nm == NULL)
				goto bad;
			dc->map = nm;
			cap = ncap;
		}
		dc->map[dc->n].base = file;
		dc->map[dc->n].blen = strcspn(file, ":");
		dc->map[dc->n].uid = uid;
		dc->n++;
		if (uid >= dc->uidnext)
			dc->uidnext = uid + 1;
	}
	if (dc->n > 1)
		qsort(dc->map, dc->n, sizeof(*dc->map), md_dcmap_cmp);
	if (!header_only) {
		char *kwtext;

		if ((size_t)snprintf(path, sizeof(path), "%s/dovecot-keywords", dir) <
		    sizeof(path) &&
		    read_small_file(path, MD_DCKEYWORDS_MAX, &kwtext, &len) == 0) {
			char *save = NULL;

			for (char *l = strtok_r(kwtext, "\n", &save); l != NULL;
			     l = strtok_r(NULL, "\n", &save)) {
				const char *p = l;
				uint32_t idx;

				if (md_parse_u32(p, &p, &idx) && idx < 26 && *p == ' ' &&
				    md_keyword_check(p + 1) == MD_OK && dc->kw[idx] == NULL)
					dc->kw[idx] = strdup(p + 1);
			}
			free(kwtext);
		}
	}
	return 0;
bad:
	log_warn("store: %s: unusable, not imported", path);
	md_dovecot_free(dc);
	return -1;
}

int md_sync_dovecot_header(const char *dir, uint32_t *uidvalidity_r,
			   uint32_t *uidnext_r)
{
	struct md_dovecot dc;

	if (md_dovecot_read(dir, true, &dc) < 0)
		return -1;
	*uidvalidity_r = dc.uidvalidity;
	*uidnext_r = dc.uidnext;
	md_dovecot_free(&dc);
	return 0;
}

uint32_t md_dovecot_uid(const struct md_dovecot *dc, const char *fname,
			       size_t blen)
{
	struct md_dcmap key = { fname, blen, 0 };
	const struct md_dcmap *hit;

	if (dc->n == 0)
		return 0;
	hit = bsearch(&key, dc->map, dc->n, sizeof(*dc->map), md_dcmap_cmp);
	return hit != NULL ? hit->uid : 0;
}
