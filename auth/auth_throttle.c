/* Failed-login throttling, shared by SMTP, IMAP and POP3 (policy in
 * auth.h).
 *
 * One table holds entries keyed "a:<client address>" and "u:<account>".
 * It is bounded by AUTH_THROTTLE_ENTRIES_MAX: when full, the entry whose
 * last failure is the oldest is evicted, so an attacker cycling through
 * addresses or user names cannot grow memory; the entries under active
 * attack stay, since every failure moves its entries to the front.  Entries
 * live in one array linked by index (hash chains, LRU list, free list);
 * the array grows by doubling up to the bound.  The chain hash is seeded
 * with random bytes so that chosen keys cannot pile into one chain.
 *
 * Time is passed in by the caller (tests drive it); one mutex guards all.
 */
#include "auth.h"
#include "auth_private.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define THROTTLE_IP_LOG_MAX 64 /* an IPv6 text form is at most 45 */
/* "k:" account " " network */
#define THROTTLE_KEY_MAX (2 + AUTH_ADDRESS_MAX + 1 + THROTTLE_IP_LOG_MAX + 1)
#define THROTTLE_BUCKETS (2 * AUTH_THROTTLE_ENTRIES_MAX) /* power of two */
#define THROTTLE_INITIAL 64
#define THROTTLE_NONE (-1)

_Static_assert((THROTTLE_BUCKETS & (THROTTLE_BUCKETS - 1)) == 0, "power of two");

struct throttle_entry {
	char key[THROTTLE_KEY_MAX];
	uint32_t hash;
	int32_t next;         /* hash chain, or free list */
	int32_t newer, older; /* LRU list */
	unsigned failures;
	time_t window_start;
	time_t refused_until;
	uint64_t account;      /* address entries: the account that failed */
	bool several_accounts; /* ... or more than one */
};

/* A bounded map of entries: hash chains, LRU list, free list. */
struct throttle_map {
	struct throttle_entry *e;
	size_t used, cap;
	int32_t free_head;
	int32_t newest, oldest;
	uint64_t seed;
	int32_t buckets[THROTTLE_BUCKETS];
};

/* Two maps under one lock: failures by address and by account, and the
 * (account, network) pairs that logged in successfully.  Only a right
 * password adds to the second, so failed attempts cannot evict it. */
struct auth_throttle_table {
	pthread_mutex_t lock;
	struct throttle_map failures;
	struct throttle_map known;
};

static int map_init(struct throttle_map *m)
{
	m->e = calloc(THROTTLE_INITIAL, sizeof(*m->e));
	if (m->e == NULL || random_bytes(&m->seed, sizeof(m->seed)) < 0)
		return -1;
	m->cap = THROTTLE_INITIAL;
	m->free_head = THROTTLE_NONE;
	m->newest = m->oldest = THROTTLE_NONE;
	for (size_t i = 0; i < THROTTLE_BUCKETS; i++)
		m->buckets[i] = THROTTLE_NONE;
	/* Entries [used, cap) of the array are not yet on any list. */
	return 0;
}

struct auth_throttle_table *auth_throttle_table_new(void)
{
	struct auth_throttle_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	if (map_init(&t->failures) < 0 || map_init(&t->known) < 0) {
		free(t->failures.e);
		free(t->known.e);
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void auth_throttle_table_free(struct auth_throttle_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->failures.e);
	free(t->known.e);
	free(t);
}

size_t auth_throttle_table_size(struct auth_throttle_table *t)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (int32_t i = t->failures.newest; i != THROTTLE_NONE; i = t->failures.e[i].older)
		n++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static uint32_t key_hash(const struct throttle_map *t, const char *key)
{
	uint64_t h = auth_fnv1a(&t->seed, sizeof(t->seed));

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static int32_t find(const struct throttle_map *t, const char *key, uint32_t hash)
{
	for (int32_t i = t->buckets[hash & (THROTTLE_BUCKETS - 1)]; i != THROTTLE_NONE;
	     i = t->e[i].next)
		if (t->e[i].hash == hash && strcmp(t->e[i].key, key) == 0)
			return i;
	return THROTTLE_NONE;
}

static void lru_unlink(struct throttle_map *t, int32_t i)
{
	struct throttle_entry *e = &t->e[i];

	if (e->newer != THROTTLE_NONE)
		t->e[e->newer].older = e->older;
	else
		t->newest = e->older;
	if (e->older != THROTTLE_NONE)
		t->e[e->older].newer = e->newer;
	else
		t->oldest = e->newer;
}

static void lru_push(struct throttle_map *t, int32_t i)
{
	t->e[i].newer = THROTTLE_NONE;
	t->e[i].older = t->newest;
	if (t->newest != THROTTLE_NONE)
		t->e[t->newest].newer = i;
	t->newest = i;
	if (t->oldest == THROTTLE_NONE)
		t->oldest = i;
}

static void bucket_unlink(struct throttle_map *t, int32_t i)
{
	int32_t *p = &t->buckets[t->e[i].hash & (THROTTLE_BUCKETS - 1)];

	while (*p != i)
		p = &t->e[*p].next;
	*p = t->e[i].next;
}

static void entry_remove(struct throttle_map *t, int32_t i)
{
	bucket_unlink(t, i);
	lru_unlink(t, i);
	t->e[i].next = t->free_head;
	t->free_head = i;
}

/* A slot for a new entry: the free list, a grown array, or the oldest. */
static int32_t entry_alloc(struct throttle_map *t)
{
	int32_t i;

	if (t->free_head != THROTTLE_NONE) {
		i = t->free_head;
		t->free_head = t->e[i].next;
		return i;
	}
	if (t->used == t->cap && t->cap < AUTH_THROTTLE_ENTRIES_MAX) {
		size_t cap = t->cap * 2 > AUTH_THROTTLE_ENTRIES_MAX ?
			AUTH_THROTTLE_ENTRIES_MAX : t->cap * 2;
		struct throttle_entry *e = realloc(t->e, cap * sizeof(*e));
		if (e != NULL) {
			t->e = e;
			t->cap = cap;
		}
	}
	if (t->used < t->cap)
		return (int32_t)t->used++;
	i = t->oldest; /* full: evict the least recently failed */
	bucket_unlink(t, i);
	lru_unlink(t, i);
	return i;
}

static int32_t find_or_add(struct throttle_map *t, const char *key)
{
	uint32_t hash = key_hash(t, key);
	int32_t i = find(t, key, hash);
	struct throttle_entry *e;

	if (i != THROTTLE_NONE) {
		lru_unlink(t, i);
		lru_push(t, i);
		return i;
	}
	i = entry_alloc(t);
	e = &t->e[i];
	memset(e, 0, sizeof(*e));
	str_copy(e->key, key, sizeof(e->key));
	e->hash = hash;
	e->next = t->buckets[hash & (THROTTLE_BUCKETS - 1)];
	t->buckets[hash & (THROTTLE_BUCKETS - 1)] = i;
	lru_push(t, i);
	return i;
}

static bool entry_stale(const struct throttle_entry *e, time_t now)
{
	return e->refused_until <= now &&
	       (now - e->window_start >= AUTH_THROTTLE_WINDOW || now < e->window_start);
}

static void make_key(char *key, char kind, const char *value)
{
	key[0] = kind;
	key[1] = ':';
	str_copy(key + 2, value, THROTTLE_KEY_MAX - 2);
	str_lower(key + 2);
}

static uint64_t account_tag(const char *user)
{
	char low[AUTH_ADDRESS_MAX + 1];

	str_copy(low, user, sizeof(low));
	str_lower(low);
	return auth_fnv1a(low, strlen(low));
}

static enum auth_throttle verdict(const struct throttle_entry *e, time_t now,
				  unsigned *delay_ms)
{
	unsigned over;

	if (e->refused_until > now)
		return AUTH_THROTTLE_REFUSE;
	if (entry_stale(e, now) || e->failures < AUTH_THROTTLE_FREE)
		return AUTH_THROTTLE_ALLOW;
	over = e->failures - AUTH_THROTTLE_FREE;
	*delay_ms = over >= 4 ? AUTH_THROTTLE_DELAY_MAX_MS : 1000u << over;
	if (*delay_ms > AUTH_THROTTLE_DELAY_MAX_MS)
		*delay_ms = AUTH_THROTTLE_DELAY_MAX_MS;
	return AUTH_THROTTLE_DELAY;
}

/* "account network": the network is the IPv4 address, or the /64 of an
 * IPv6 one (a phone's privacy addresses change within its /64).  False
 * when ip does not parse. */
static bool known_key(char *key, const char *user, const char *ip)
{
	unsigned char a[16];
	char net[THROTTLE_IP_LOG_MAX];

	if (inet_pton(AF_INET, ip, a) == 1) {
		str_copy(net, ip, sizeof(net));
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		memset(a + 8, 0, 8);
		if (inet_ntop(AF_INET6, a, net, sizeof(net)) == NULL)
			return false;
	} else {
		return false;
	}
	/* A longer, client-given user only truncates into a key no real
	 * entry has: those are at most 2 + 254 + 1 + 45 bytes. */
	snprintf(key, THROTTLE_KEY_MAX, "k:%s %s", user, net);
	str_lower(key + 2);
	return true;
}

/* Did user log in with the right password from ip's network within
 * AUTH_THROTTLE_KNOWN_SECONDS?  Then the account's own count does not
 * apply there: an attack on the account cannot lock out its owner's
 * devices.  Called with the lock held. */
static bool known_login(struct auth_throttle_table *t, const char *ip,
			const char *user, time_t now)
{
	char key[THROTTLE_KEY_MAX];
	int32_t i;

	if (ip == NULL || ip[0] == '\0' || !known_key(key, user, ip))
		return false;
	i = find(&t->known, key, key_hash(&t->known, key));
	return i != THROTTLE_NONE && t->known.e[i].window_start <= now &&
	       now - t->known.e[i].window_start < AUTH_THROTTLE_KNOWN_SECONDS;
}

enum auth_throttle auth_throttle_check(struct auth *auth, const char *ip,
				       const char *user, time_t now,
				       unsigned *delay_ms_r)
{
	struct auth_throttle_table *t = auth_throttle_table_of(auth);
	struct throttle_map *m = &t->failures;
	const char *values[2] = { ip, user };
	const char kinds[2] = { 'a', 'u' };
	enum auth_throttle res = AUTH_THROTTLE_ALLOW;
	unsigned delay = 0;

	pthread_mutex_lock(&t->lock);
	if (user != NULL && user[0] != '\0' && known_login(t, ip, user, now))
		values[1] = NULL;
	for (int k = 0; k < 2; k++) {
		char key[THROTTLE_KEY_MAX];
		unsigned d = 0;
		int32_t i;

		if (values[k] == NULL || values[k][0] == '\0')
			continue;
		make_key(key, kinds[k], values[k]);
		i = find(m, key, key_hash(m, key));
		if (i == THROTTLE_NONE)
			continue;
		switch (verdict(&m->e[i], now, &d)) {
		case AUTH_THROTTLE_REFUSE:
			res = AUTH_THROTTLE_REFUSE;
			break;
		case AUTH_THROTTLE_DELAY:
			if (res != AUTH_THROTTLE_REFUSE)
				res = AUTH_THROTTLE_DELAY;
			if (d > delay)
				delay = d;
			break;
		case AUTH_THROTTLE_ALLOW:
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (delay_ms_r != NULL)
		*delay_ms_r = res == AUTH_THROTTLE_DELAY ? delay : 0;
	return res;
}

static void count_failure(struct throttle_entry *e, time_t now, uint64_t account,
			  bool is_address)
{
	if (entry_stale(e, now)) {
		e->failures = 0;
		e->window_start = now;
		e->refused_until = 0;
		e->several_accounts = false;
		e->account = account;
	}
	if (e->failures < AUTH_THROTTLE_REFUSE_AFTER * 2)
		e->failures++;
	if (e->failures >= AUTH_THROTTLE_REFUSE_AFTER && e->refused_until <= now)
		e->refused_until = now + AUTH_THROTTLE_REFUSE_SECONDS;
	if (is_address && e->account != account)
		e->several_accounts = true;
}

/* Copy for the log: no blank or control byte may reach the line, so the
 * fail2ban pattern "rip=<HOST>" cannot be spoofed from the user field. */
static void log_safe(char *dst, size_t size, const char *src)
{
	size_t n = 0;

	if (src == NULL || *src == '\0')
		src = "-";
	for (; *src != '\0' && n + 1 < size; src++, n++) {
		unsigned char c = (unsigned char)*src;
		dst[n] = c <= 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
}

void auth_throttle_failure(struct auth *auth, const char *proto,
			   const char *ip, const char *user, time_t now)
{
	struct auth_throttle_table *t = auth_throttle_table_of(auth);
	struct throttle_map *m = &t->failures;
	char key[THROTTLE_KEY_MAX];
	char lproto[16], lip[THROTTLE_IP_LOG_MAX], luser[AUTH_ADDRESS_MAX + 1];
	bool has_user = user != NULL && user[0] != '\0';
	uint64_t account = has_user ? account_tag(user) : 0;
	int32_t i;

	metrics_count(METRICS_LOGIN_FAILED);
	pthread_mutex_lock(&t->lock);
	/* find_or_add may move m->e: index it only afterwards. */
	if (ip != NULL && ip[0] != '\0') {
		make_key(key, 'a', ip);
		i = find_or_add(m, key);
		count_failure(&m->e[i], now, account, true);
	}
	/* A known device's typo does not count against its own account:
	 * otherwise the owner's phone with an old password would lock the
	 * owner out everywhere else. */
	if (has_user && !known_login(t, ip, user, now)) {
		make_key(key, 'u', user);
		i = find_or_add(m, key);
		count_failure(&m->e[i], now, account, false);
	}
	pthread_mutex_unlock(&t->lock);

	log_safe(lproto, sizeof(lproto), proto);
	log_safe(lip, sizeof(lip), ip);
	log_safe(luser, sizeof(luser), user);
	log_write(LOG_LEVEL_WARN, NULL, "auth failed: proto=%s rip=%s user=%s",
		  lproto, lip, luser);
}

void auth_throttle_success_at(struct auth *auth, const char *ip, const char *user,
			      time_t now)
{
	struct auth_throttle_table *t = auth_throttle_table_of(auth);
	struct throttle_map *m = &t->failures;
	char key[THROTTLE_KEY_MAX];
	uint64_t account;
	int32_t i;

	metrics_count(METRICS_LOGIN_OK);
	if (user == NULL || user[0] == '\0')
		return;
	account = account_tag(user);
	pthread_mutex_lock(&t->lock);
	/* From a known place the account's count was not applied, and the
	 * failures in it are somebody else's: a phone polling every minute
	 * must not wipe an attacker's count for him. */
	if (!known_login(t, ip, user, now)) {
		make_key(key, 'u', user);
		i = find(m, key, key_hash(m, key));
		if (i != THROTTLE_NONE)
			entry_remove(m, i);
	}
	if (ip != NULL && ip[0] != '\0') {
		make_key(key, 'a', ip);
		i = find(m, key, key_hash(m, key));
		if (i != THROTTLE_NONE && !m->e[i].several_accounts &&
		    m->e[i].account == account && m->e[i].refused_until == 0)
			entry_remove(m, i);
		if (known_key(key, user, ip)) {
			i = find_or_add(&t->known, key);
			t->known.e[i].window_start = now;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void auth_throttle_success(struct auth *auth, const char *ip, const char *user)
{
	auth_throttle_success_at(auth, ip, user, time(NULL));
}
