/* Sieve at delivery: the reader of a user's active script and the record
 * of vacation replies sent (RFC 5230 §4.2).  The layout is in store.h
 * ("Sieve: the active script"); ManageSieve's writer is md_sieve.c.
 *
 * The vacation record, postern-sieve/.vacation, one line per sender and
 * handle:
 *     EXPIRES HANDLE SENDER\n
 * EXPIRES is the Unix time after which a reply may go again, HANDLE 1 to
 * 64 characters without spaces (sieve_vacation_handle()), SENDER the
 * envelope sender as given.  Lines that do not parse are dropped.  At
 * most MD_SIEVE_VACATION_MAX lines are kept: expired ones go first, then
 * those expiring soonest.  The file is replaced atomically (written,
 * fsynced, renamed) under an flock(2) of postern-sieve/.vacation.lock, so
 * two deliveries at once do not both reply.
 */
#include "md_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define MD_SIEVE_ACTIVE ".active"
#define MD_SIEVE_EXT ".sieve"
#define MD_SIEVE_VACATION_FILE ".vacation"
#define MD_SIEVE_VACATION_LOCK ".vacation.lock"
#define MD_SIEVE_HANDLE_MAX 64
#define MD_SIEVE_VACATION_LINE_MAX (24 + MD_SIEVE_HANDLE_MAX + MD_ADDRESS_MAX + 4)

static enum md_result md_sieve_dir(struct md_store *store, const char *address, char *dir,
				   size_t dirlen)
{
	char norm[MD_ADDRESS_MAX + 1], root[PATH_MAX];
	enum md_result r = md_user_root(store, address, norm, sizeof(norm), root, sizeof(root));

	if (r != MD_OK)
		return r;
	if ((size_t)snprintf(dir, dirlen, "%s/%s", root, MD_SIEVE_DIR) >= dirlen)
		return MD_BADNAME;
	return MD_OK;
}

enum md_result md_sieve_active_read(struct md_store *store, const char *address,
				    char **text_r, size_t *len_r, char *name_r,
				    size_t name_len)
{
	char dir[PATH_MAX], link[PATH_MAX], target[MD_SIEVE_NAME_MAX + sizeof(MD_SIEVE_EXT) + 1];
	char path[PATH_MAX];
	size_t tl;
	ssize_t n;
	enum md_result r = md_sieve_dir(store, address, dir, sizeof(dir));

	*text_r = NULL;
	*len_r = 0;
	if (name_len > 0)
		name_r[0] = '\0';
	if (r != MD_OK)
		return r;
	if ((size_t)snprintf(link, sizeof(link), "%s/%s", dir, MD_SIEVE_ACTIVE) >= sizeof(link))
		return MD_BADNAME;
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT || errno == ENOTDIR ? MD_OK : MD_TEMPFAIL;
	if ((size_t)n >= sizeof(target) - 1)
		return MD_BADNAME;
	target[n] = '\0';
	tl = (size_t)n;
	/* only "NAME.sieve" in the same directory */
	if (strchr(target, '/') != NULL || target[0] == '.' || tl <= strlen(MD_SIEVE_EXT) ||
	    strcmp(target + tl - strlen(MD_SIEVE_EXT), MD_SIEVE_EXT) != 0)
		return MD_BADNAME;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, target) >= sizeof(path))
		return MD_BADNAME;
	if (read_small_file(path, MD_SIEVE_SCRIPT_MAX, text_r, len_r) < 0) {
		int err = errno;
		*text_r = NULL;
		if (err == ENOENT)
			return MD_OK; /* a dangling link: no active script */
		return err == EFBIG ? MD_TOOBIG : MD_TEMPFAIL;
	}
	if (name_len > 0)
		snprintf(name_r, name_len, "%.*s", (int)(tl - strlen(MD_SIEVE_EXT)), target);
	return MD_OK;
}

/* ---- vacation record -------------------------------------------------- */

struct md_vac_entry {
	int64_t expires;
	char handle[MD_SIEVE_HANDLE_MAX + 1];
	char sender[MD_ADDRESS_MAX + 1];
};

/* Parse the record; entries expired at now are left out. */
static size_t md_vac_parse(char *text, int64_t now, struct md_vac_entry *e, size_t max)
{
	size_t n = 0;

	for (char *line = text, *next; line != NULL && *line != '\0' && n < max; line = next) {
		char *nl = strchr(line, '\n'), *sp1, *sp2, *endp;
		long long exp;
		next = nl != NULL ? nl + 1 : NULL;
		if (nl != NULL)
			*nl = '\0';
		sp1 = strchr(line, ' ');
		sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
		if (sp2 == NULL)
			continue;
		*sp1 = *sp2 = '\0';
		exp = strtoll(line, &endp, 10);
		if (*endp != '\0' || exp <= now || strlen(sp1 + 1) > MD_SIEVE_HANDLE_MAX ||
		    strlen(sp2 + 1) > MD_ADDRESS_MAX)
			continue;
		e[n].expires = exp;
		snprintf(e[n].handle, sizeof(e[n].handle), "%s", sp1 + 1);
		snprintf(e[n].sender, sizeof(e[n].sender), "%s", sp2 + 1);
		n++;
	}
	return n;
}

static int md_vac_cmp_expires(const void *a, const void *b)
{
	const struct md_vac_entry *x = a, *y = b;

	return x->expires < y->expires ? 1 : x->expires > y->expires ? -1 : 0;
}

/* Replace the record with entries (latest-expiring first kept). */
static enum md_result md_vac_write(const char *path, struct md_vac_entry *e, size_t n)
{
	char *out = malloc(n * MD_SIEVE_VACATION_LINE_MAX + 1);
	size_t o = 0;
	int rc;

	if (out == NULL)
		return MD_TEMPFAIL;
	qsort(e, n, sizeof(*e), md_vac_cmp_expires);
	if (n > MD_SIEVE_VACATION_MAX)
		n = MD_SIEVE_VACATION_MAX;
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, MD_SIEVE_VACATION_LINE_MAX, "%lld %s %s\n",
				      (long long)e[i].expires, e[i].handle, e[i].sender);
	rc = write_file_atomic(path, out, o, 0600);
	free(out);
	return rc < 0 ? MD_TEMPFAIL : MD_OK;
}

enum md_result md_sieve_vacation_check(struct md_store *store, const char *address,
				       const char *sender, const char *handle,
				       unsigned days, bool *send_r)
{
	char dir[PATH_MAX], path[PATH_MAX], lock[PATH_MAX], *text = NULL;
	struct md_vac_entry *e = NULL;
	size_t n = 0, len;
	int64_t now = (int64_t)time(NULL);
	enum md_result r = md_sieve_dir(store, address, dir, sizeof(dir));
	int lfd;

	*send_r = false;
	if (r != MD_OK)
		return r;
	if (strlen(handle) == 0 || strlen(handle) > MD_SIEVE_HANDLE_MAX ||
	    strlen(sender) > MD_ADDRESS_MAX || strpbrk(sender, " \r\n") != NULL ||
	    strpbrk(handle, " \r\n") != NULL)
		return MD_BADNAME;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, MD_SIEVE_VACATION_FILE) >=
		    sizeof(path) ||
	    (size_t)snprintf(lock, sizeof(lock), "%s/%s", dir, MD_SIEVE_VACATION_LOCK) >=
		    sizeof(lock))
		return MD_BADNAME;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return MD_TEMPFAIL;
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return MD_TEMPFAIL;
	if (flock(lfd, LOCK_EX) < 0) {
		close(lfd);
		return MD_TEMPFAIL;
	}
	e = calloc(MD_SIEVE_VACATION_MAX + 1, sizeof(*e));
	if (e == NULL) {
		r = MD_TEMPFAIL;
		goto out;
	}
	if (read_small_file(path, (size_t)MD_SIEVE_VACATION_MAX * MD_SIEVE_VACATION_LINE_MAX,
			    &text, &len) == 0)
		n = md_vac_parse(text, now, e, MD_SIEVE_VACATION_MAX);
	else if (errno != ENOENT)
		log_warn("store: %s unreadable (%s): starting a new record", path, strerror(errno));
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].handle, handle) == 0 && strcasecmp(e[i].sender, sender) == 0)
			goto out; /* replied within the period */
	e[n].expires = now + (int64_t)days * 86400;
	snprintf(e[n].handle, sizeof(e[n].handle), "%s", handle);
	snprintf(e[n].sender, sizeof(e[n].sender), "%s", sender);
	r = md_vac_write(path, e, n + 1);
	*send_r = r == MD_OK;
out:
	free(text);
	free(e);
	close(lfd); /* releases the lock */
	return r;
}
