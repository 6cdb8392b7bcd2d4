/* The pregreet test's memory, as Postfix's postscreen keeps it: a client
 * that waited out the greeting delay once and then behaved (it said
 * EHLO/HELO after the greeting, never before) is greeted at once for
 * smtp_pregreet_ttl seconds.  A client that speaks early is refused and
 * never remembered.
 *
 * Keys: the IPv4 address, or the /64 of an IPv6 address (one host usually
 * holds a whole /64; remembering single IPv6 addresses would let a sender
 * that rotates addresses inside its /64 pay the delay every time, and
 * would let one host fill the table).
 *
 * The table is bounded: at most cfg->smtp_pregreet_cache_max entries, the
 * least recently seen one dropped first (an LRU list over a chained hash
 * table).  It lives in the SMTP module's context, which the daemon keeps
 * across SIGHUP; a restart forgets it, which costs each sender one delay.
 * Loop thread only.
 */
#include "smtp_private.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define PREGREET_KEY_LEN 9 /* family tag + 4 (IPv4) or 8 (IPv6 /64) bytes */

struct pregreet_entry {
	unsigned char key[PREGREET_KEY_LEN];
	time_t expires;
	struct pregreet_entry *hash_next;
	struct pregreet_entry *lru_prev, *lru_next; /* lru_next: older */
};

struct smtp_pregreet {
	struct pregreet_entry **buckets;
	size_t n_buckets;
	size_t count, max;
	unsigned ttl;
	struct pregreet_entry *newest, *oldest;
};

/* false when addr is not an IP address literal (nothing to remember). */
static bool pregreet_key(const char *addr, unsigned char key[PREGREET_KEY_LEN])
{
	unsigned char raw[16];

	memset(key, 0, PREGREET_KEY_LEN);
	if (inet_pton(AF_INET, addr, raw) == 1) {
		key[0] = 4;
		memcpy(key + 1, raw, 4);
		return true;
	}
	if (inet_pton(AF_INET6, addr, raw) == 1) {
		key[0] = 6;
		memcpy(key + 1, raw, 8); /* the /64 */
		return true;
	}
	return false;
}

static size_t pregreet_hash(const struct smtp_pregreet *pg, const unsigned char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < PREGREET_KEY_LEN; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % pg->n_buckets;
}

struct smtp_pregreet *smtp_pregreet_new(size_t max, unsigned ttl)
{
	struct smtp_pregreet *pg = calloc(1, sizeof(*pg));

	if (pg == NULL)
		return NULL;
	/* A fixed table, one bucket per two entries at the configured ceiling
	 * (calloc'd pages stay untouched until used), rather than rehashing. */
	pg->n_buckets = max / 2 + 16;
	pg->buckets = calloc(pg->n_buckets, sizeof(*pg->buckets));
	if (pg->buckets == NULL) {
		free(pg);
		return NULL;
	}
	pg->max = max;
	pg->ttl = ttl;
	return pg;
}

static struct pregreet_entry **pregreet_slot(struct smtp_pregreet *pg, const unsigned char *key)
{
	struct pregreet_entry **pp = &pg->buckets[pregreet_hash(pg, key)];

	while (*pp != NULL && memcmp((*pp)->key, key, PREGREET_KEY_LEN) != 0)
		pp = &(*pp)->hash_next;
	return pp;
}

static void pregreet_lru_unlink(struct smtp_pregreet *pg, struct pregreet_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		pg->newest = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		pg->oldest = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void pregreet_lru_push(struct smtp_pregreet *pg, struct pregreet_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = pg->newest;
	if (pg->newest != NULL)
		pg->newest->lru_prev = e;
	pg->newest = e;
	if (pg->oldest == NULL)
		pg->oldest = e;
}

static void pregreet_remove(struct smtp_pregreet *pg, struct pregreet_entry *e)
{
	struct pregreet_entry **pp = pregreet_slot(pg, e->key);

	if (*pp == e)
		*pp = e->hash_next;
	pregreet_lru_unlink(pg, e);
	free(e);
	pg->count--;
}

bool smtp_pregreet_passed(struct smtp_pregreet *pg, const char *addr, time_t now)
{
	unsigned char key[PREGREET_KEY_LEN];
	struct pregreet_entry *e;

	if (pg == NULL || !pregreet_key(addr, key))
		return false;
	e = *pregreet_slot(pg, key);
	if (e == NULL)
		return false;
	if (e->expires <= now) {
		pregreet_remove(pg, e);
		return false;
	}
	pregreet_lru_unlink(pg, e); /* recently seen: keep it longest */
	pregreet_lru_push(pg, e);
	return true;
}

void smtp_pregreet_remember(struct smtp_pregreet *pg, const char *addr, time_t now)
{
	unsigned char key[PREGREET_KEY_LEN];
	struct pregreet_entry **pp, *e;

	if (pg == NULL || pg->max == 0 || !pregreet_key(addr, key))
		return;
	pp = pregreet_slot(pg, key);
	e = *pp;
	if (e != NULL) {
		pregreet_lru_unlink(pg, e);
	} else {
		if (pg->count >= pg->max) {
			pregreet_remove(pg, pg->oldest);
			pp = pregreet_slot(pg, key); /* the chain may have changed */
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return; /* the client pays the delay again: harmless */
		memcpy(e->key, key, PREGREET_KEY_LEN);
		e->hash_next = *pp;
		*pp = e;
		pg->count++;
	}
	e->expires = now + (time_t)pg->ttl;
	pregreet_lru_push(pg, e);
}

size_t smtp_pregreet_count(const struct smtp_pregreet *pg)
{
	return pg != NULL ? pg->count : 0;
}

void smtp_pregreet_free(struct smtp_pregreet *pg)
{
	if (pg == NULL)
		return;
	while (pg->newest != NULL) {
		struct pregreet_entry *e = pg->newest;
		pg->newest = e->lru_next;
		free(e);
	}
	free(pg->buckets);
	free(pg);
}
