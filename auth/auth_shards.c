/* The shards file (config shards_file): which Postern instance holds whose
 * mailbox, when several run side by side (README "More than one
 * machine").  Read by nginx's /auth (protocols/http/http_nginx.c: where to
 * send a login) and by SMTP (protocols/smtp: port-25 mail for a mailbox
 * held elsewhere is relayed there by LMTP).  Every instance reads the same
 * file; config shard_name says which of its shards an instance is.
 *
 *   # comments and blank lines
 *   shard NAME ADDRESS imap=PORT pop3=PORT smtp=PORT lmtp=PORT|/PATH
 *   alice@example.org  NAME       a user
 *   example.org        NAME       a domain
 *   *                  NAME       everyone else
 *
 * ADDRESS is an IPv4 or IPv6 literal (nginx connects to it as it is); a
 * port may be left out when that instance does not serve the protocol.
 * lmtp= is where the other instances deliver this one's mail: a TCP port
 * at ADDRESS, or the absolute path of a unix socket (instances on one
 * machine).  For a key listed twice the first line wins.
 *
 * Read again whenever its size, mtime or inode changes, like the users
 * file (auth.c): one stat() per look-up; a file that does not load leaves
 * the last good one in use (and is logged once per change).  The entries
 * are sorted once per load, so a look-up is a binary search.  Thread-safe:
 * one mutex covers the reload and the copy of the answer. */
#include "auth.h"
#include "auth_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

#define AUTH_SHARD_LINE_MAX 512
#define AUTH_SHARD_WORDS_MAX 8 /* shard NAME ADDRESS and four ports, one spare */

struct auth_shard_entry {
	char key[AUTH_ADDRESS_MAX + 1]; /* address, domain or "*", lower case */
	size_t shard;
	size_t line;                    /* order in the file: the first wins */
};

struct auth_shards {
	char path[PATH_MAX];
	pthread_mutex_t lock;
	struct auth_shard shards[AUTH_SHARDS_MAX];
	size_t n_shards;
	struct auth_shard_entry *map; /* sorted by key */
	size_t n_map;
	struct stat st;               /* of the file loaded */
	bool loaded, failed;
};

/* One parse in progress; the live table is swapped only when it loads. */
struct auth_shards_load {
	struct auth_shard shards[AUTH_SHARDS_MAX];
	size_t n_shards;
	struct auth_shard_entry *map;
	size_t n_map, cap;
};

static bool auth_shard_port(const char *tok, const char *name, uint16_t *port)
{
	size_t n = strlen(name);
	char *end;
	unsigned long v;

	if (strncmp(tok, name, n) != 0 || tok[n] != '=')
		return false;
	v = strtoul(tok + n + 1, &end, 10);
	if (*end != '\0' || v == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* lmtp=PORT or lmtp=/PATH (a unix socket). */
static bool auth_shard_lmtp(const char *tok, struct auth_shard *sh)
{
	if (strncmp(tok, "lmtp=/", 6) == 0) {
		return str_copy(sh->lmtp_path, tok + 5, sizeof(sh->lmtp_path)) <
		       sizeof(sh->lmtp_path);
	}
	return auth_shard_port(tok, "lmtp", &sh->lmtp_port);
}

/* "shard NAME ADDRESS key=port..." (tokens after "shard"); 0 or -1. */
static int auth_shard_line(struct auth_shards_load *s, char **tok, size_t n, char *err,
			   size_t errlen)
{
	struct auth_shard *sh;
	unsigned char a[16];

	if (n < 3) {
		snprintf(err, errlen, "shard NAME ADDRESS imap=PORT pop3=PORT smtp=PORT lmtp=PORT");
		return -1;
	}
	if (s->n_shards >= AUTH_SHARDS_MAX) {
		snprintf(err, errlen, "at most %d shards", AUTH_SHARDS_MAX);
		return -1;
	}
	if (strlen(tok[1]) >= sizeof(sh->name)) {
		snprintf(err, errlen, "a shard name has at most %zu characters",
			 sizeof(sh->name) - 1);
		return -1;
	}
	if (strlen(tok[2]) >= sizeof(sh->address) ||
	    (inet_pton(AF_INET, tok[2], a) != 1 && inet_pton(AF_INET6, tok[2], a) != 1)) {
		snprintf(err, errlen, "'%.64s' is not an IP address (nginx needs one)", tok[2]);
		return -1;
	}
	sh = &s->shards[s->n_shards];
	memset(sh, 0, sizeof(*sh));
	str_copy(sh->name, tok[1], sizeof(sh->name));
	str_copy(sh->address, tok[2], sizeof(sh->address));
	for (size_t i = 3; i < n; i++)
		if (!auth_shard_port(tok[i], "imap", &sh->imap_port) &&
		    !auth_shard_port(tok[i], "pop3", &sh->pop3_port) &&
		    !auth_shard_port(tok[i], "smtp", &sh->smtp_port) && !auth_shard_lmtp(tok[i], sh)) {
			snprintf(err, errlen, "'%.64s': expected imap=PORT, pop3=PORT, smtp=PORT, "
				 "lmtp=PORT or lmtp=/SOCKET", tok[i]);
			return -1;
		}
	for (size_t i = 0; i < s->n_shards; i++)
		if (strcmp(s->shards[i].name, sh->name) == 0) {
			snprintf(err, errlen, "shard %s is defined twice", sh->name);
			return -1;
		}
	s->n_shards++;
	return 0;
}

/* "KEY NAME": the shard must be defined above. */
static int auth_shard_map_line(struct auth_shards_load *s, char **tok, size_t n, char *err,
			       size_t errlen)
{
	size_t i;

	if (n != 2 || strlen(tok[0]) > AUTH_ADDRESS_MAX) {
		snprintf(err, errlen, "expected: ADDRESS-OR-DOMAIN-OR-* SHARD");
		return -1;
	}
	for (i = 0; i < s->n_shards && strcmp(s->shards[i].name, tok[1]) != 0; i++)
		;
	if (i == s->n_shards) {
		snprintf(err, errlen, "no shard named '%.64s' above", tok[1]);
		return -1;
	}
	if (s->n_map == s->cap) {
		struct auth_shard_entry *m;
		size_t cap = s->cap ? s->cap * 2 : 64;

		if (s->cap >= AUTH_SHARD_ENTRIES_MAX) {
			snprintf(err, errlen, "at most %d entries", AUTH_SHARD_ENTRIES_MAX);
			return -1;
		}
		if ((m = realloc(s->map, cap * sizeof(*m))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		s->map = m;
		s->cap = cap;
	}
	str_copy(s->map[s->n_map].key, tok[0], sizeof(s->map[s->n_map].key));
	str_lower(s->map[s->n_map].key);
	s->map[s->n_map].shard = i;
	s->map[s->n_map].line = s->n_map;
	s->n_map++;
	return 0;
}

static int auth_shards_parse(struct auth_shards_load *s, FILE *fp, const char *path)
{
	char line[AUTH_SHARD_LINE_MAX], err[256];
	unsigned lineno = 0;

	while (fgets(line, sizeof(line), fp) != NULL) {
		char *tok[AUTH_SHARD_WORDS_MAX], *save = NULL;
		size_t n = 0;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			log_error("shards: %s:%u: line longer than %d bytes", path, lineno,
				  AUTH_SHARD_LINE_MAX - 1);
			return -1;
		}
		for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL && t[0] != '#';
		     t = strtok_r(NULL, " \t\r\n", &save)) {
			if (n == AUTH_SHARD_WORDS_MAX) {
				log_error("shards: %s:%u: too many words", path, lineno);
				return -1;
			}
			tok[n++] = t;
		}
		if (n == 0)
			continue;
		if ((strcmp(tok[0], "shard") == 0 ? auth_shard_line(s, tok, n, err, sizeof(err)) :
		     auth_shard_map_line(s, tok, n, err, sizeof(err))) < 0) {
			log_error("shards: %s:%u: %s", path, lineno, err);
			return -1;
		}
	}
	return ferror(fp) ? -1 : 0;
}

static int auth_shard_entry_cmp(const void *a, const void *b)
{
	const struct auth_shard_entry *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : x->line < y->line ? -1 : x->line > y->line;
}

/* Sorted by key; of equal keys only the first in the file is kept. */
static void auth_shards_sort(struct auth_shards_load *s)
{
	size_t out = 0;

	if (s->n_map > 1)
		qsort(s->map, s->n_map, sizeof(*s->map), auth_shard_entry_cmp);
	for (size_t i = 0; i < s->n_map; i++)
		if (out == 0 || strcmp(s->map[out - 1].key, s->map[i].key) != 0)
			s->map[out++] = s->map[i];
	s->n_map = out;
}

static bool auth_shards_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Load the file when it changed; the last good one stays otherwise. */
static void auth_shards_refresh(struct auth_shards *s)
{
	struct auth_shards_load fresh;
	struct stat st;
	FILE *fp;

	if (stat(s->path, &st) < 0) {
		if (!s->failed)
			log_error("shards: %s: %s", s->path, strerror(errno));
		s->failed = true;
		return;
	}
	if (s->loaded && auth_shards_same_file(&st, &s->st))
		return;
	if (s->failed && auth_shards_same_file(&st, &s->st))
		return; /* the same broken file: said already */
	s->st = st;
	memset(&fresh, 0, sizeof(fresh));
	fp = fopen(s->path, "re");
	if (fp == NULL || auth_shards_parse(&fresh, fp, s->path) < 0) {
		if (fp == NULL)
			log_error("shards: %s: %s", s->path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		free(fresh.map);
		s->failed = true;
		return;
	}
	fclose(fp);
	auth_shards_sort(&fresh);
	free(s->map);
	memcpy(s->shards, fresh.shards, sizeof(fresh.shards));
	s->n_shards = fresh.n_shards;
	s->map = fresh.map;
	s->n_map = fresh.n_map;
	s->loaded = true;
	s->failed = false;
	log_info("shards: %s: %zu shards, %zu entries", s->path, s->n_shards, s->n_map);
}

static const struct auth_shard *auth_shards_lookup(const struct auth_shards *s, const char *key)
{
	size_t lo = 0, hi = s->n_map;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->map[mid].key, key);
		if (c == 0)
			return &s->shards[s->map[mid].shard];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct auth_shards *auth_shards_new(const char *path)
{
	struct auth_shards *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	str_copy(s->path, path, sizeof(s->path));
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void auth_shards_free(struct auth_shards *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->map);
	free(s);
}

bool auth_shards_named(struct auth_shards *s, const char *name, struct auth_shard *out)
{
	bool found = false;

	pthread_mutex_lock(&s->lock);
	auth_shards_refresh(s);
	for (size_t i = 0; s->loaded && i < s->n_shards && !found; i++)
		if (strcmp(s->shards[i].name, name) == 0) {
			*out = s->shards[i];
			found = true;
		}
	pthread_mutex_unlock(&s->lock);
	return found;
}

bool auth_shards_find(struct auth_shards *s, const char *address, struct auth_shard *out)
{
	char key[AUTH_ADDRESS_MAX + 1];
	const struct auth_shard *sh = NULL;
	const char *at;

	str_copy(key, address, sizeof(key));
	str_lower(key);
	pthread_mutex_lock(&s->lock);
	auth_shards_refresh(s);
	if (s->loaded && (sh = auth_shards_lookup(s, key)) == NULL &&
	    ((at = strrchr(key, '@')) == NULL || (sh = auth_shards_lookup(s, at + 1)) == NULL))
		sh = auth_shards_lookup(s, "*");
	if (sh != NULL)
		*out = *sh;
	pthread_mutex_unlock(&s->lock);
	return sh != NULL;
}
