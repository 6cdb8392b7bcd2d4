/* Reading what Dovecot leaves in a Maildir, for the first indexing (see
 * store.h and md_rebuild.c).  Formats, as Dovecot writes them:
 *   dovecot-uidlist v3:  "3 V<uidvalidity> N<uidnext> G<guid>" (guid: the
 *                        mailbox GUID, 32 hex digits), then one
 *                        line per message "<uid> <fields> :<file name>"
 *                        (fields such as W<vsize> S<size> vary; P<uidl>
 *                        is the POP3 UIDL Dovecot gave the message when
 *                        it differs from its pop3_uidl_format, e.g. one
 *                        kept from an earlier migration)
 *   dovecot-uidlist v1:  "1 <uidvalidity> <uidnext>", then "<uid> <file>"
 *   dovecot-keywords:    "<index> <name>" lines; index i is letter 'a'+i
 *                        in the ":2," suffix of file names.
 * File names are matched by base name (before ':'), so flag changes made
 * after Dovecot wrote the list do not matter.  Nothing here writes.
 *
 * Memory does not follow the file's size: the uidlist is read a line at a
 * time (a line longer than MD_UIDLIST_LINE_MAX, such as a giant file name,
 * is skipped), and only the lines naming a file the caller listed in the
 * Maildir are kept.  The header alone is one line.
 */
#include "md_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One uidlist line: UID, extension fields, ':' and a file name of at most
 * NAME_MAX octets; Dovecot's own lines are far shorter. */
#define MD_UIDLIST_LINE_MAX 4096
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
	for (size_t i = 0; i < dc->n; i++)
		free((char *)dc->map[i].base);
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

/* The next line into buf without its '\n': 1, 0 at the end, -1 on a read
 * error.  *long_r: the line did not fit (the rest of it is skipped). */
static int md_read_line(FILE *f, char *buf, size_t size, bool *long_r)
{
	size_t len;
	int c;

	*long_r = false;
	if (fgets(buf, (int)size, f) == NULL)
		return ferror(f) ? -1 : 0;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[len - 1] = '\0';
		return 1;
	}
	if (feof(f))
		return 1; /* the last line, without '\n' */
	*long_r = true;
	while ((c = getc(f)) != EOF && c != '\n')
		;
	return ferror(f) ? -1 : 1;
}

/* RFC 1939 §7: a unique-id is 1 to 70 characters 0x21..0x7E */
static bool md_uidl_valid(const char *s, size_t len)
{
	if (len == 0 || len > MD_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static int md_dovecot_add(struct md_dovecot *dc, size_t *cap, const char *file,
			  size_t blen, uint32_t uid, const char *uidl, size_t ulen)
{
	char *base;

	if (dc->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct md_dcmap *nm = realloc(dc->map, ncap * sizeof(*nm));

		if (nm == NULL)
			return -1;
		dc->map = nm;
		*cap = ncap;
	}
	if ((base = malloc(blen + 1 + ulen + 1)) == NULL)
		return -1;
	memcpy(base, file, blen);
	base[blen] = '\0';
	dc->map[dc->n].base = base;
	dc->map[dc->n].blen = blen;
	dc->map[dc->n].uid = uid;
	dc->map[dc->n].uidl = NULL;
	if (uidl != NULL) {
		memcpy(base + blen + 1, uidl, ulen);
		base[blen + 1 + ulen] = '\0';
		dc->map[dc->n].uidl = base + blen + 1;
	}
	dc->n++;
	return 0;
}

int md_dovecot_read(const char *dir, bool header_only, md_dovecot_keep_fn *keep,
		    void *keep_ctx, struct md_dovecot *dc)
{
	char path[PATH_MAX], line[MD_UIDLIST_LINE_MAX];
	size_t cap = 0;
	FILE *f;
	bool too_long;
	int version, rc;

	memset(dc, 0, sizeof(*dc));
	if ((size_t)snprintf(path, sizeof(path), "%s/dovecot-uidlist", dir) >=
	    sizeof(path) || (f = fopen(path, "re")) == NULL)
		return -1;
	if (md_read_line(f, line, sizeof(line), &too_long) != 1)
		goto bad;
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
			if (tok[0] == 'G' && strlen(tok + 1) == MD_DCGUID_LEN &&
			    strspn(tok + 1, "0123456789abcdef") == MD_DCGUID_LEN)
				memcpy(dc->guid, tok + 1, MD_DCGUID_LEN + 1);
		}
	}
	if (dc->uidvalidity == 0)
		goto bad;
	while (!header_only &&
	       (rc = md_read_line(f, line, sizeof(line), &too_long)) != 0) {
		const char *p = line, *file = NULL, *uidl = NULL;
		size_t blen, ulen = 0;
		uint32_t uid;

		if (rc < 0)
			goto bad;
		if (too_long)
			continue;
		/* UID 2^32-1 would need a UIDNEXT of 2^32 (RFC 3501 §2.3.1.1:
		 * UIDs are 32-bit and UIDNEXT exceeds them all): the file
		 * gets a new UID instead */
		if (!md_parse_u32(p, &p, &uid) || uid == 0 || uid == UINT32_MAX ||
		    *p != ' ')
			continue;
		if (version == 1) {
			file = p + 1;
		} else {
			/* extension fields, then ":" and the file name */
			const char *colon = strstr(p, " :");

			if (colon != NULL)
				file = colon + 2;
			/* the fields are "<key><value>" separated by spaces */
			for (const char *fld = p; colon != NULL && fld < colon;) {
				size_t flen;

				fld += strspn(fld, " ");
				flen = strcspn(fld, " ");
				if (fld[0] == 'P' && fld + flen <= colon &&
				    md_uidl_valid(fld + 1, flen - 1)) {
					uidl = fld + 1;
					ulen = flen - 1;
				}
				fld += flen;
			}
		}
		if (file == NULL || *file == '\0')
			continue;
		blen = strcspn(file, ":");
		if (uid >= dc->uidnext)
			dc->uidnext = uid + 1;
		if (keep != NULL && !keep(keep_ctx, file, blen))
			continue; /* no such file (expunged since) */
		if (md_dovecot_add(dc, &cap, file, blen, uid, uidl, ulen) < 0)
			goto bad;
	}
	fclose(f);
	f = NULL;
	if (dc->n > 1)
		qsort(dc->map, dc->n, sizeof(*dc->map), md_dcmap_cmp);
	if (!header_only)
		md_dovecot_keywords_read(dir, dc->kw);
	return 0;
bad:
	log_warn("store: %s: unusable, not imported", path);
	if (f != NULL)
		fclose(f);
	md_dovecot_free(dc);
	return -1;
}

void md_dovecot_keywords_read(const char *dir, char *kw[26])
{
	char path[PATH_MAX], *kwtext, *save = NULL;
	size_t len;

	if ((size_t)snprintf(path, sizeof(path), "%s/dovecot-keywords", dir) >=
	    sizeof(path) || read_small_file(path, MD_DCKEYWORDS_MAX, &kwtext, &len) < 0)
		return;
	for (char *l = strtok_r(kwtext, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		const char *p = l;
		uint32_t idx;

		if (md_parse_u32(p, &p, &idx) && idx < 26 && *p == ' ' &&
		    md_keyword_check(p + 1) == MD_OK && kw[idx] == NULL)
			kw[idx] = strdup(p + 1);
	}
	free(kwtext);
}

int md_sync_dovecot_header(const char *dir, uint32_t *uidvalidity_r,
			   uint32_t *uidnext_r)
{
	struct md_dovecot dc;

	if (md_dovecot_read(dir, true, NULL, NULL, &dc) < 0)
		return -1;
	*uidvalidity_r = dc.uidvalidity;
	*uidnext_r = dc.uidnext;
	md_dovecot_free(&dc);
	return 0;
}

const struct md_dcmap *md_dovecot_find(const struct md_dovecot *dc,
				       const char *fname, size_t blen)
{
	struct md_dcmap key = { fname, blen, 0, NULL };

	if (dc->n == 0)
		return NULL;
	return bsearch(&key, dc->map, dc->n, sizeof(*dc->map), md_dcmap_cmp);
}

/* Dovecot's pop3_uidl_format, the part of its %-variables a Maildir can
 * answer: "%[0][width][X](u|v)", "%[width]f" and "%%".  An unknown variable makes
 * the whole UIDL unusable ("": the base name serves), never a guess. */
void md_dovecot_uidl(const struct md_dovecot *dc, const struct md_dcmap *e,
		     const char *format, char *out)
{
	char tmp[MD_UIDL_MAX + 1 + 32];
	size_t o = 0;

	out[0] = '\0';
	if (e->uidl != NULL) {
		str_copy(out, e->uidl, MD_UIDL_MAX + 1);
		return;
	}
	for (const char *f = format; *f != '\0'; f++) {
		unsigned width = 0;
		bool zero = false, hex = false;
		int n;

		if (*f != '%') {
			if (o >= MD_UIDL_MAX)
				return;
			tmp[o++] = *f;
			continue;
		}
		f++;
		if (*f == '%') {
			if (o >= MD_UIDL_MAX)
				return;
			tmp[o++] = '%';
			continue;
		}
		if (*f == '0') {
			zero = true;
			f++;
		}
		while (*f >= '0' && *f <= '9' && width < 100)
			width = width * 10 + (unsigned)(*f++ - '0');
		if (*f == 'x' || *f == 'X') {
			hex = true;
			f++;
		}
		if (width > MD_UIDL_MAX)
			return;
		if (*f == 'u' || *f == 'v') {
			uint32_t v = *f == 'u' ? e->uid : dc->uidvalidity;

			char *d = tmp + o;
			size_t room = sizeof(tmp) - o;
			int w = (int)width;

			/* Dovecot's X modifier writes lower-case hex
			 * (000000016b15c0ff for %08Xu%08Xv) */
			if (hex)
				n = zero ? snprintf(d, room, "%0*x", w, v) :
				    snprintf(d, room, "%*x", w, v);
			else
				n = zero ? snprintf(d, room, "%0*u", w, v) :
				    snprintf(d, room, "%*u", w, v);
		} else if (*f == 'f' && !hex) {
			n = snprintf(tmp + o, sizeof(tmp) - o, "%*.*s", (int)width,
				     (int)e->blen, e->base);
		} else {
			return;
		}
		if (n < 0 || o + (size_t)n > MD_UIDL_MAX)
			return;
		o += (size_t)n;
	}
	tmp[o] = '\0';
	if (md_uidl_valid(tmp, o))
		memcpy(out, tmp, o + 1);
}
