/* Verified-password cache: a client that logs in again with the password
 * that was right a moment ago is not made to pay another yescrypt verify
 * (~20 ms of CPU and 16 MiB).  Phones reconnect all day, and an IMAP
 * client opens two or three connections at once; without this cache the
 * password hash is most of the CPU an IMAP server spends on them.
 *
 * What is kept is never the password nor anything a guess can be checked
 * against cheaply without this process's memory: an entry is
 *     HMAC-SHA256(key, user NUL stored-hash NUL password)
 * with a key drawn at start-up that never leaves the process.  The stored
 * hash is part of the message, so a password change (a new hash in the
 * users file) makes every old entry miss at once; a deleted user misses
 * because there is no hash to compute the entry from.  Only successes are
 * cached, so wrong passwords always cost a full verify (and the
 * throttle's delays).  The trade-off, the same as Dovecot's auth_cache:
 * someone who can read this process's memory can test guesses for a
 * cached user at HMAC speed rather than yescrypt speed -- but such a
 * reader also sees passwords as clients send them.  auth_cache_ttl = 0
 * turns it off.
 *
 * Entries expire auth_cache_ttl seconds after the verify that made them
 * (a hit does not extend them) and the least recently used one goes when
 * the table is full.  One mutex; the work under it is a hash lookup. */
#include "auth_private.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define AUTH_CACHE_KEY_LEN 32

struct auth_cache_entry {
	unsigned char digest[AUTH_CACHE_DIGEST_LEN];
	time_t expires;
	struct auth_cache_entry *hnext;             /* bucket chain */
	struct auth_cache_entry *newer, *older;     /* LRU list */
};

struct auth_cache {
	pthread_mutex_t lock;
	unsigned char key[AUTH_CACHE_KEY_LEN];
	unsigned ttl;
	size_t max, n;
	size_t mask;                       /* buckets - 1 */
	struct auth_cache_entry **buckets;
	struct auth_cache_entry *newest, *oldest;
};

struct auth_cache *auth_cache_new(unsigned ttl, size_t max)
{
	struct auth_cache *c;
	size_t nb = 16;

	if (ttl == 0 || max == 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	while (nb < max && nb < ((size_t)1 << 30))
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->buckets == NULL || random_bytes(c->key, sizeof(c->key)) < 0) {
		free(c->buckets);
		free(c);
		return NULL;
	}
	c->mask = nb - 1;
	c->ttl = ttl;
	c->max = max;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void auth_cache_free(struct auth_cache *c)
{
	struct auth_cache_entry *e, *next;

	if (c == NULL)
		return;
	for (e = c->newest; e != NULL; e = next) {
		next = e->older;
		explicit_bzero(e, sizeof(*e));
		free(e);
	}
	explicit_bzero(c->key, sizeof(c->key));
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}

int auth_cache_digest(const struct auth_cache *c, const char *user, const char *hash,
		      const char *password, unsigned char digest_r[AUTH_CACHE_DIGEST_LEN])
{
	size_t lu = strlen(user) + 1, lh = strlen(hash) + 1, lp = strlen(password);
	unsigned char *msg = malloc(lu + lh + lp + 1);
	unsigned int out_len = 0;
	int rc = -1;

	if (msg == NULL)
		return -1;
	memcpy(msg, user, lu);
	memcpy(msg + lu, hash, lh);
	memcpy(msg + lu + lh, password, lp);
	if (HMAC(EVP_sha256(), c->key, (int)sizeof(c->key), msg, lu + lh + lp, digest_r,
		 &out_len) != NULL &&
	    out_len == AUTH_CACHE_DIGEST_LEN)
		rc = 0;
	explicit_bzero(msg, lu + lh + lp);
	free(msg);
	return rc;
}

static size_t cache_bucket(const struct auth_cache *c, const unsigned char *digest)
{
	uint64_t v;

	/* The digest is keyed: its bytes are as good as a hash and no
	 * client can aim at one bucket. */
	memcpy(&v, digest, sizeof(v));
	return (size_t)v & c->mask;
}

static void cache_lru_unlink(struct auth_cache *c, struct auth_cache_entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void cache_lru_push(struct auth_cache *c, struct auth_cache_entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = e;
	c->newest = e;
	if (c->oldest == NULL)
		c->oldest = e;
}

/* Unlink e from its bucket and the list, and free it.  Locked. */
static void cache_remove(struct auth_cache *c, struct auth_cache_entry *e)
{
	struct auth_cache_entry **pp = &c->buckets[cache_bucket(c, e->digest)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
	cache_lru_unlink(c, e);
	explicit_bzero(e, sizeof(*e));
	free(e);
	c->n--;
}

/* The live entry for digest, or NULL; an expired one is dropped.  Locked. */
static struct auth_cache_entry *cache_find(struct auth_cache *c, const unsigned char *digest,
					   time_t now)
{
	struct auth_cache_entry *e = c->buckets[cache_bucket(c, digest)];

	while (e != NULL && CRYPTO_memcmp(e->digest, digest, AUTH_CACHE_DIGEST_LEN) != 0)
		e = e->hnext;
	if (e != NULL && e->expires <= now) {
		cache_remove(c, e);
		return NULL;
	}
	return e;
}

bool auth_cache_hit(struct auth_cache *c, const unsigned char digest[AUTH_CACHE_DIGEST_LEN],
		    time_t now)
{
	struct auth_cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, digest, now);
	if (e != NULL) {
		cache_lru_unlink(c, e);
		cache_lru_push(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	return e != NULL;
}

void auth_cache_add(struct auth_cache *c, const unsigned char digest[AUTH_CACHE_DIGEST_LEN],
		    time_t now)
{
	struct auth_cache_entry *e;
	size_t b;

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, digest, now);
	if (e != NULL) {
		cache_lru_unlink(c, e);
	} else {
		if (c->n >= c->max)
			cache_remove(c, c->oldest);
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			pthread_mutex_unlock(&c->lock);
			return; /* not cached: the next login verifies again */
		}
		memcpy(e->digest, digest, AUTH_CACHE_DIGEST_LEN);
		b = cache_bucket(c, digest);
		e->hnext = c->buckets[b];
		c->buckets[b] = e;
		c->n++;
	}
	e->expires = now + (time_t)c->ttl;
	cache_lru_push(c, e);
	pthread_mutex_unlock(&c->lock);
}

size_t auth_cache_size(struct auth_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}
