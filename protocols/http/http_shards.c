/* The shards file (config shards_file): which Postern instance holds whose
 * mailbox, for nginx's mail proxy (http_nginx.c).  Read again whenever its
 * size, mtime or inode changes; a file that does not load leaves the last
 * good one in use (and is logged once per change).
 *
 *   # comments and blank lines
 *   shard NAME ADDRESS imap=PORT pop3=PORT smtp=PORT
 *   alice@example.org  NAME       a user
 *   example.org        NAME       a domain
 *   *                  NAME       everyone else
 *
 * ADDRESS is an IPv4 or IPv6 literal (nginx connects to it as it is); a
 * port may be left out when that instance does not serve the protocol.
 * Looked up on the AUTH worker that checked the password (file I/O stays
 * off the event loop), under one lock. */
#include "http_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "auth.h"
#include "log.h"
#include "util.h"

#define HTTP_SHARD_LINE_MAX 512

struct http_shard_entry {
	char key[AUTH_ADDRESS_MAX + 1]; /* address, domain or "*" */
	size_t shard;
};

struct http_shards {
	struct http_shard shards[HTTP_SHARDS_MAX];
	size_t n_shards;
	struct http_shard_entry *map;
	size_t n_map;
	struct stat st; /* of the file loaded */
	bool loaded, failed;
};

static void http_shards_clear(struct http_shards *s)
{
	free(s->map);
	s->map = NULL;
	s->n_map = s->n_shards = 0;
}

void http_shards_free(struct http_shards *s)
{
	if (s != NULL)
		http_shards_clear(s);
	free(s);
}

static bool http_shard_port(const char *tok, const char *name, uint16_t *port)
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

/* "shard NAME ADDRESS key=port..." (tokens after "shard"); 0 or -1. */
static int http_shard_line(struct http_shards *s, char **tok, size_t n, char *err, size_t errlen)
{
	struct http_shard *sh;
	unsigned char a[16];

	if (n < 3) {
		snprintf(err, errlen, "shard NAME ADDRESS imap=PORT pop3=PORT smtp=PORT");
		return -1;
	}
	if (s->n_shards >= HTTP_SHARDS_MAX) {
		snprintf(err, errlen, "at most %d shards", HTTP_SHARDS_MAX);
		return -1;
	}
	if (strlen(tok[1]) >= sizeof(sh->name) || strlen(tok[2]) >= sizeof(sh->address) ||
	    (inet_pton(AF_INET, tok[2], a) != 1 && inet_pton(AF_INET6, tok[2], a) != 1)) {
		snprintf(err, errlen, "'%.64s' is not an IP address (nginx needs one)", tok[2]);
		return -1;
	}
	sh = &s->shards[s->n_shards];
	memset(sh, 0, sizeof(*sh));
	str_copy(sh->name, tok[1], sizeof(sh->name));
	str_copy(sh->address, tok[2], sizeof(sh->address));
	for (size_t i = 3; i < n; i++)
		if (!http_shard_port(tok[i], "imap", &sh->imap_port) &&
		    !http_shard_port(tok[i], "pop3", &sh->pop3_port) &&
		    !http_shard_port(tok[i], "smtp", &sh->smtp_port)) {
			snprintf(err, errlen, "'%.64s': expected imap=PORT, pop3=PORT or smtp=PORT",
				 tok[i]);
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
static int http_shard_map_line(struct http_shards *s, size_t *cap, char **tok, size_t n,
			       char *err, size_t errlen)
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
	if (s->n_map == *cap) {
		struct http_shard_entry *m;

		if (*cap >= HTTP_SHARD_ENTRIES_MAX) {
			snprintf(err, errlen, "at most %d entries", HTTP_SHARD_ENTRIES_MAX);
			return -1;
		}
		*cap = *cap ? *cap * 2 : 64;
		if ((m = realloc(s->map, *cap * sizeof(*m))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		s->map = m;
	}
	str_copy(s->map[s->n_map].key, tok[0], sizeof(s->map[s->n_map].key));
	str_lower(s->map[s->n_map].key);
	s->map[s->n_map++].shard = i;
	return 0;
}

static int http_shards_parse(struct http_shards *s, FILE *fp, const char *path)
{
	char line[HTTP_SHARD_LINE_MAX], err[256];
	size_t cap = 0;
	unsigned lineno = 0;

	while (fgets(line, sizeof(line), fp) != NULL) {
		char *tok[8], *save = NULL;
		size_t n = 0;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			log_error("http: %s:%u: line longer than %d bytes", path, lineno,
				  HTTP_SHARD_LINE_MAX - 1);
			return -1;
		}
		for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL && t[0] != '#';
		     t = strtok_r(NULL, " \t\r\n", &save)) {
			if (n == sizeof(tok) / sizeof(tok[0])) {
				log_error("http: %s:%u: too many words", path, lineno);
				return -1;
			}
			tok[n++] = t;
		}
		if (n == 0)
			continue;
		if ((strcmp(tok[0], "shard") == 0 ? http_shard_line(s, tok, n, err, sizeof(err)) :
		     http_shard_map_line(s, &cap, tok, n, err, sizeof(err))) < 0) {
			log_error("http: %s:%u: %s", path, lineno, err);
			return -1;
		}
	}
	return ferror(fp) ? -1 : 0;
}

/* Load the file when it changed; the last good one stays otherwise. */
static void http_shards_refresh(struct http_shards *s, const char *path)
{
	struct http_shards fresh = { 0 };
	struct stat st;
	FILE *fp;

	if (stat(path, &st) < 0) {
		if (!s->failed)
			log_error("http: %s: %s", path, strerror(errno));
		s->failed = true;
		return;
	}
	if (s->loaded && st.st_ino == s->st.st_ino && st.st_size == s->st.st_size &&
	    st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec)
		return;
	if (s->failed && st.st_ino == s->st.st_ino && st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec && st.st_size == s->st.st_size)
		return; /* the same broken file: said already */
	s->st = st;
	fp = fopen(path, "re");
	if (fp == NULL || http_shards_parse(&fresh, fp, path) < 0) {
		if (fp == NULL)
			log_error("http: %s: %s", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		http_shards_clear(&fresh);
		s->failed = true;
		return;
	}
	fclose(fp);
	http_shards_clear(s);
	memcpy(s->shards, fresh.shards, sizeof(fresh.shards));
	s->n_shards = fresh.n_shards;
	s->map = fresh.map;
	s->n_map = fresh.n_map;
	s->loaded = true;
	s->failed = false;
	log_info("http: %s: %zu shards, %zu entries", path, s->n_shards, s->n_map);
}

static const struct http_shard *http_shard_find(const struct http_shards *s, const char *key)
{
	for (size_t i = 0; i < s->n_map; i++)
		if (strcmp(s->map[i].key, key) == 0)
			return &s->shards[s->map[i].shard];
	return NULL;
}

/* The AUTH workers look shards up; the lock covers the load and the copy. */
static pthread_mutex_t http_shards_lock = PTHREAD_MUTEX_INITIALIZER;

bool http_shard_of(struct http_ctx *ctx, const char *address, struct http_shard *out)
{
	char key[AUTH_ADDRESS_MAX + 1];
	const struct http_shard *sh = NULL;
	const char *at;

	str_copy(key, address, sizeof(key));
	str_lower(key);
	pthread_mutex_lock(&http_shards_lock);
	if (ctx->shards == NULL)
		ctx->shards = calloc(1, sizeof(*ctx->shards));
	if (ctx->shards != NULL) {
		http_shards_refresh(ctx->shards, ctx->cfg->shards_file);
		if (ctx->shards->loaded &&
		    (sh = http_shard_find(ctx->shards, key)) == NULL &&
		    ((at = strrchr(key, '@')) == NULL ||
		     (sh = http_shard_find(ctx->shards, at + 1)) == NULL))
			sh = http_shard_find(ctx->shards, "*");
	}
	if (sh != NULL)
		*out = *sh;
	pthread_mutex_unlock(&http_shards_lock);
	return sh != NULL;
}
