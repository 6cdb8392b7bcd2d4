/* The sort-key cache: per mailbox, the SORT / THREAD keys of its
 * messages (struct imap_sort_msg), shared by every session of the
 * process, so that a SORT or THREAD reads the index and maps strings
 * through i;unicode-casemap only for messages no command has seen yet
 * (Dovecot keeps the same keys in its cache file).
 *
 * Why it cannot go stale: the keys of a message are made from what was
 * computed at its delivery (ENVELOPE, sent date, References, INTERNALDATE,
 * RFC822.SIZE), and RFC 3501 §2.3.1.1 makes a UID name one message for
 * as long as the mailbox keeps its UIDVALIDITY.  An entry is found by
 * (user id, mailbox id, UIDVALIDITY): a reindex or a recreated mailbox
 * has another UIDVALIDITY and so never meets an old entry.  Expunged
 * messages are simply not looked up; new ones are added by the next
 * command that sees them (imap_sort_keys.c builds a new entry).
 *
 * Entries are immutable once put here and reference counted (atomically,
 * so that a command drops its reference without the lock): a worker
 * reading one never races a worker replacing it.
 *
 * Bounds: at most IMAP_SORT_CACHE_MAILBOXES entries and
 * IMAP_SORT_CACHE_MAX octets (imap_sort_keys_bytes()) in all; the least
 * recently used go first, and an entry larger than the whole budget is
 * not kept (its command still uses it).
 */
#include "imap_private.h"

#include <pthread.h>
#include <stdlib.h>

struct imap_sort_cache {
	pthread_mutex_t lock;
	struct imap_sort_keys *head; /* most recently used first */
	size_t n, bytes;
	size_t max_bytes, max_entries;
};

struct imap_sort_cache *imap_sort_cache_new(size_t max_bytes, size_t max_entries)
{
	struct imap_sort_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->max_bytes = max_bytes;
	c->max_entries = max_entries;
	return c;
}

void imap_sort_cache_free(struct imap_sort_cache *c)
{
	struct imap_sort_keys *k, *next;

	if (c == NULL)
		return;
	for (k = c->head; k != NULL; k = next) {
		next = k->next;
		imap_sort_keys_unref(k);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static bool imap_sort_keys_same_mailbox(const struct imap_sort_keys *a, uint32_t user_id,
					uint32_t mailbox_id)
{
	return a->user_id == user_id && a->mailbox_id == mailbox_id;
}

/* Unlinks and returns the entry of the mailbox (any UIDVALIDITY), or
 * NULL; the cache's reference goes with it.  Lock held. */
static struct imap_sort_keys *imap_sort_cache_take(struct imap_sort_cache *c, uint32_t user_id,
						   uint32_t mailbox_id)
{
	for (struct imap_sort_keys **p = &c->head; *p != NULL; p = &(*p)->next) {
		struct imap_sort_keys *k = *p;

		if (imap_sort_keys_same_mailbox(k, user_id, mailbox_id)) {
			*p = k->next;
			k->next = NULL;
			c->n--;
			c->bytes -= imap_sort_keys_bytes(k);
			return k;
		}
	}
	return NULL;
}

struct imap_sort_keys *imap_sort_cache_get(struct imap_sort_cache *c, uint32_t user_id,
					   uint32_t mailbox_id, uint32_t uidvalidity)
{
	struct imap_sort_keys *k;

	pthread_mutex_lock(&c->lock);
	k = imap_sort_cache_take(c, user_id, mailbox_id);
	if (k != NULL && k->uidvalidity != uidvalidity) {
		/* the mailbox was rebuilt: these UIDs name other messages */
		pthread_mutex_unlock(&c->lock);
		imap_sort_keys_unref(k);
		return NULL;
	}
	if (k != NULL) {
		/* back in front, one more reference for the caller */
		atomic_fetch_add(&k->refs, 1);
		k->next = c->head;
		c->head = k;
		c->n++;
		c->bytes += imap_sort_keys_bytes(k);
	}
	pthread_mutex_unlock(&c->lock);
	return k;
}

void imap_sort_cache_put(struct imap_sort_cache *c, struct imap_sort_keys *k)
{
	struct imap_sort_keys *old, *drop = NULL;
	size_t bytes = imap_sort_keys_bytes(k);

	if (bytes > c->max_bytes || c->max_entries == 0)
		return;
	atomic_fetch_add(&k->refs, 1);
	pthread_mutex_lock(&c->lock);
	old = imap_sort_cache_take(c, k->user_id, k->mailbox_id);
	if (old != NULL) {
		old->next = drop;
		drop = old;
	}
	/* room: the least recently used go */
	while (c->head != NULL && (c->n + 1 > c->max_entries || c->bytes + bytes > c->max_bytes)) {
		struct imap_sort_keys **p = &c->head;

		while ((*p)->next != NULL)
			p = &(*p)->next;
		old = imap_sort_cache_take(c, (*p)->user_id, (*p)->mailbox_id);
		old->next = drop;
		drop = old;
	}
	k->next = c->head;
	c->head = k;
	c->n++;
	c->bytes += bytes;
	pthread_mutex_unlock(&c->lock);
	/* freed outside the lock: other workers need not wait for free() */
	while (drop != NULL) {
		old = drop->next;
		imap_sort_keys_unref(drop);
		drop = old;
	}
}

size_t imap_sort_keys_bytes(const struct imap_sort_keys *k)
{
	return sizeof(*k) + k->n * (sizeof(k->uids[0]) + sizeof(k->msgs[0])) + k->arena_len;
}

void imap_sort_keys_unref(struct imap_sort_keys *k)
{
	if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
		return;
	free(k->uids);
	free(k->msgs);
	free(k->arena);
	free(k);
}
