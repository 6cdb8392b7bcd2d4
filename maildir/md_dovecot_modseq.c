/* Dovecot's CONDSTORE mod-sequences, for the first indexing of a Maildir
 * moved from Dovecot (store.h, "Dovecot").  Dovecot keeps them in its own
 * index and transaction log, whose formats are its internals; what it
 * exports is doveadm's tab-separated output, which the README's "Moving
 * from Dovecot" has the user append to DOVECOT_MODSEQ_FILE in the
 * Maildir's root:
 *
 *   doveadm -f tab mailbox status -u USER 'guid highestmodseq' '*'
 *   doveadm -f tab fetch -u USER 'mailbox-guid uid modseq' all
 *
 * Each command prints a header line naming its columns (in doveadm's
 * order, not the one asked for), then one line per mailbox or message.
 * Columns are found by name, so both orders and extra columns work.
 * Mailboxes are matched by GUID, the "G" field of their dovecot-uidlist.
 *
 * With these, an imported message keeps Dovecot's mod-sequence and the
 * mailbox continues above Dovecot's HIGHESTMODSEQ: a client resyncing
 * with CHANGEDSINCE or QRESYNC from what Dovecot told it gets exactly
 * what changed, and nothing when nothing did.  The file is read one line
 * at a time; memory grows only with the entries of the one mailbox asked
 * for, up to MD_DCMODSEQ_ENTRIES_MAX.  Nothing here writes.
 */
#include "md_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MD_DCMODSEQ_LINE_MAX 512
#define MD_DCMODSEQ_COLUMNS_MAX 16
#define MD_DCMODSEQ_ENTRIES_MAX (16u * 1024 * 1024) /* messages per mailbox */

enum md_dcms_section { MD_DCMS_NONE, MD_DCMS_STATUS, MD_DCMS_FETCH };

struct md_dcms_cols {
	enum md_dcms_section section;
	int guid, uid, modseq; /* column numbers, -1: absent */
};

void md_dovecot_modseq_free(struct md_dcmodseq *ms)
{
	free(ms->m);
	memset(ms, 0, sizeof(*ms));
}

/* Split line at tabs in place; the number of fields, at most max. */
static size_t md_dcms_split(char *line, char **f, size_t max)
{
	size_t n = 0;

	for (char *p = line; n < max;) {
		f[n++] = p;
		p = strchr(p, '\t');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

static int md_dcms_col(char **f, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i], name) == 0)
			return (int)i;
	return -1;
}

/* A header line starts a section; anything else leaves cols as it was. */
static bool md_dcms_header(char **f, size_t n, struct md_dcms_cols *cols)
{
	int hms = md_dcms_col(f, n, "highestmodseq"), ms = md_dcms_col(f, n, "modseq");

	if (hms >= 0) {
		*cols = (struct md_dcms_cols){ MD_DCMS_STATUS, md_dcms_col(f, n, "guid"), -1,
					       hms };
		return true;
	}
	if (ms >= 0) {
		*cols = (struct md_dcms_cols){ MD_DCMS_FETCH, md_dcms_col(f, n, "mailbox-guid"),
					       md_dcms_col(f, n, "uid"), ms };
		return true;
	}
	return false;
}

static bool md_dcms_number(const char *s, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || x > max)
		return false;
	*v = x;
	return true;
}

static int md_dcms_cmp(const void *a, const void *b)
{
	const struct md_dcms *x = a, *y = b;

	return (x->uid > y->uid) - (x->uid < y->uid);
}

/* One data line of a section, for mailbox guid. */
static int md_dcms_row(struct md_dcmodseq *ms, size_t *cap, char **f, size_t n,
		       const struct md_dcms_cols *c, const char *guid)
{
	uint64_t modseq, uid;

	if (c->guid < 0 || c->modseq < 0 || (size_t)c->guid >= n || (size_t)c->modseq >= n ||
	    strcmp(f[c->guid], guid) != 0 || !md_dcms_number(f[c->modseq], INT64_MAX, &modseq))
		return 0;
	if (c->section == MD_DCMS_STATUS) {
		if (modseq > ms->highest)
			ms->highest = modseq;
		return 0;
	}
	if (c->uid < 0 || (size_t)c->uid >= n ||
	    !md_dcms_number(f[c->uid], UINT32_MAX, &uid) || uid == 0)
		return 0;
	if (ms->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct md_dcms *m;

		if (ncap > MD_DCMODSEQ_ENTRIES_MAX)
			return -1;
		if ((m = realloc(ms->m, ncap * sizeof(*m))) == NULL)
			return -1;
		ms->m = m;
		*cap = ncap;
	}
	ms->m[ms->n++] = (struct md_dcms){ (uint32_t)uid, modseq };
	if (modseq > ms->highest)
		ms->highest = modseq;
	return 0;
}

int md_dovecot_modseq_read(const char *root, const char *guid, struct md_dcmodseq *ms)
{
	char path[PATH_MAX], line[MD_DCMODSEQ_LINE_MAX];
	struct md_dcms_cols cols = { MD_DCMS_NONE, -1, -1, -1 };
	size_t cap = 0;
	bool skipping = false;
	FILE *fp;

	memset(ms, 0, sizeof(*ms));
	if (guid[0] == '\0' ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", root, MD_DOVECOT_MODSEQ_FILE) >=
	    sizeof(path) || (fp = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t len = strlen(line), n;
		char *f[MD_DCMODSEQ_COLUMNS_MAX];

		if (len == 0 || line[len - 1] != '\n') {
			skipping = !feof(fp); /* too long: skip to its end */
			continue;
		}
		if (skipping) {
			skipping = false;
			continue;
		}
		line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		n = md_dcms_split(line, f, MD_DCMODSEQ_COLUMNS_MAX);
		if (md_dcms_header(f, n, &cols))
			continue;
		if (cols.section != MD_DCMS_NONE &&
		    md_dcms_row(ms, &cap, f, n, &cols, guid) < 0) {
			log_warn("store: %s: too many entries for mailbox %s", path, guid);
			break;
		}
	}
	fclose(fp);
	if (ms->highest == 0) {
		md_dovecot_modseq_free(ms);
		return -1;
	}
	if (ms->n > 1)
		qsort(ms->m, ms->n, sizeof(*ms->m), md_dcms_cmp);
	return 0;
}

uint64_t md_dovecot_modseq_of(const struct md_dcmodseq *ms, uint32_t uid)
{
	size_t lo = 0, hi = ms->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ms->m[mid].uid == uid)
			return ms->m[mid].modseq;
		if (ms->m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}
