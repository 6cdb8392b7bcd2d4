/* Users and aliases in memory: loading, refreshing, password verification
 * and recipient resolution.
 *
 * Addresses compare case-insensitively in the local part as well as the
 * domain, like Dovecot's default auth_username_format %Lu: two users who
 * differ only by case cannot exist, and the canonical form is lower case.
 *
 * Recipient resolution (auth_resolve_recipient), for an address in one of
 * the configured domains, first match wins:
 *   1. a user with that address: delivered to that user (a user shadows an
 *      alias of the same name; the CLI refuses to create both);
 *   2. an alias: each target is resolved again by these same rules;
 *   3. local+detail@domain (detail after the first '+'): steps 1 and 2 for
 *      local@domain;
 *   4. postmaster@domain (RFC 5321 §4.5.1 requires it) when no user or alias
 *      defines it: the first user of that domain in the users file, or the
 *      first user of the file when the domain has none;
 *   5. the catch-all alias "@domain";
 *   otherwise the address is unknown.
 * An alias target in another domain is returned as an outside address
 * (local = false).  Aliases are expanded at most AUTH_ALIAS_DEPTH_MAX deep
 * on one path, and each alias at most once per resolution, which stops
 * loops and bounds the work; targets that resolve to nothing are dropped
 * with a warning in the log.  More than the caller's maximum of distinct
 * targets (at most AUTH_RESOLVE_MAX) is an error, never a silent cut.
 *
 * Refresh: every lookup calls auth_refresh(), which stat()s the two files
 * (about a microsecond each from the dentry cache) instead of rate-limiting
 * to once a second: that is nothing next to a 20 ms password verify or a
 * delivery's fsync, and a user added with the CLI then works on the very
 * next login, with no window in which tests or admins see stale data.
 * Timestamps are coarse (one kernel tick), so a file rewritten twice in one
 * tick with the same size could keep its signature; while a file's mtime is
 * less than AUTH_RACY_SECONDS old we therefore also compare a hash of its
 * bytes (racy-git's answer to the same problem).
 *
 * Locking: db_lock (rwlock) guards the loaded data, read-locked for every
 * lookup and write-locked only to swap in a new version; refresh_lock
 * (mutex) serialises the stat/reload so one thread reloads at a time.
 * Parsing happens outside db_lock.
 */
#include "auth.h"
#include "auth_private.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define AUTH_RACY_SECONDS 2        /* covers filesystems with 1 s timestamps */
#define AUTH_RESOLVE_VISIT_MAX 256 /* distinct aliases expanded per lookup */
#define AUTH_DETAIL_SEP '+'        /* user+detail@domain */

struct auth_db {
	struct auth_users users;
	struct auth_aliases aliases;
};

struct auth {
	char users_path[PATH_MAX];
	char aliases_path[PATH_MAX];
	struct privsep *privsep; /* the daemon's file reader, or NULL */
	char domains[CONFIG_DOMAINS_MAX][CONFIG_DOMAIN_LEN];
	size_t n_domains;

	pthread_rwlock_t db_lock;
	struct auth_db *db;

	pthread_mutex_t refresh_lock;
	struct auth_file_sig users_sig, aliases_sig; /* last version read */
	bool racy;
	bool last_failed;  /* that version did not load */
	bool stat_failed;  /* logged once */

	char dummy_hash[AUTH_HASH_MAX + 1];
	struct auth_throttle_table *throttle;
	struct auth_cache *cache; /* NULL: auth_cache_ttl = 0 */
	struct auth_shards *shards; /* NULL: no shards_file */
};

/* --- addresses --- */

/* RFC 5322 §3.2.3 atext. */
static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool auth_domain_valid(const char *domain, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > AUTH_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)domain[i];

		if (c == '.') {
			/* RFC 1123 §2.1: no empty label, none ends with '-'. */
			if (label == 0 || domain[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63) /* RFC 1035 §2.3.4 */
			return false;
	}
	return label > 0 && domain[len - 1] != '-';
}

bool auth_address_valid(const char *address)
{
	const char *at = strchr(address, '@');
	size_t len = strlen(address), local;

	if (at == NULL || len > AUTH_ADDRESS_MAX || strchr(at + 1, '@') != NULL)
		return false;
	local = (size_t)(at - address);
	if (local == 0 || local > AUTH_LOCAL_PART_MAX)
		return false;
	for (size_t i = 0; i < local; i++)
		if (!is_atext((unsigned char)address[i]) && address[i] != '.')
			return false;
	return auth_domain_valid(at + 1, len - local - 1);
}

bool auth_catchall_valid(const char *address)
{
	return address[0] == '@' && auth_domain_valid(address + 1, strlen(address + 1));
}

int auth_address_canon(const char *src, char *dst, size_t size)
{
	if (!auth_address_valid(src) || strlen(src) >= size)
		return -1;
	str_copy(dst, src, size);
	str_lower(dst);
	return 0;
}

static bool local_domain(const struct auth *auth, const char *domain)
{
	for (size_t i = 0; i < auth->n_domains; i++)
		if (str_ieq(auth->domains[i], domain))
			return true;
	return false;
}

/* --- loading --- */

static void db_free(struct auth_db *db)
{
	if (db == NULL)
		return;
	auth_users_free(&db->users);
	auth_aliases_free(&db->aliases);
	free(db);
}

static bool sig_same(const struct auth_file_sig *a, const struct auth_file_sig *b)
{
	if (a->exists != b->exists)
		return false;
	if (!a->exists)
		return true;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static bool sig_racy(const struct auth_file_sig *s, const struct timespec *now)
{
	return s->exists && now->tv_sec - s->mtime.tv_sec < AUTH_RACY_SECONDS &&
	       now->tv_sec - s->ctime.tv_sec < AUTH_RACY_SECONDS + 1;
}

/* Load both files; sigs are set to the versions read even on failure. */
static struct auth_db *db_load(struct auth *auth, struct auth_file_sig *us,
			       struct auth_file_sig *as, char *err, size_t errlen)
{
	struct auth_db *db = calloc(1, sizeof(*db));
	struct timespec now;

	memset(as, 0, sizeof(*as));
	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (auth_users_load(auth->users_path, auth->privsep, &db->users, us, err, errlen) < 0) {
		free(db);
		auth_file_stat(auth->aliases_path, as);
		return NULL;
	}
	if (auth_aliases_load(auth->aliases_path, auth->privsep, &db->aliases, as, err, errlen) < 0) {
		auth_users_free(&db->users);
		free(db);
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	auth->racy = sig_racy(us, &now) || sig_racy(as, &now);
	return db;
}

int auth_file_paths(const struct config *cfg, char users_r[PATH_MAX], char aliases_r[PATH_MAX])
{
	if ((size_t)snprintf(users_r, PATH_MAX, "%s/%s", cfg->data_dir,
			     AUTH_USERS_FILE) >= PATH_MAX ||
	    (size_t)snprintf(aliases_r, PATH_MAX, "%s/%s", cfg->data_dir,
			     AUTH_ALIASES_FILE) >= PATH_MAX)
		return -1;
	return 0;
}

struct auth *auth_open(const struct config *cfg, char *err, size_t errlen)
{
	return auth_open_privsep(cfg, NULL, err, errlen);
}

struct auth *auth_open_privsep(const struct config *cfg, struct privsep *ps,
			       char *err, size_t errlen)
{
	struct auth *auth = calloc(1, sizeof(*auth));
	unsigned char rnd[16];
	char dummy_pw[sizeof(rnd) * 2 + 1];

	if (auth == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	auth->privsep = ps;
	if (auth_file_paths(cfg, auth->users_path, auth->aliases_path) < 0) {
		snprintf(err, errlen, "%s: path too long", cfg->data_dir);
		free(auth);
		return NULL;
	}
	auth->n_domains = cfg->n_domains < CONFIG_DOMAINS_MAX ? cfg->n_domains : CONFIG_DOMAINS_MAX;
	for (size_t i = 0; i < auth->n_domains; i++)
		str_copy(auth->domains[i], cfg->domains[i], sizeof(auth->domains[i]));

	/* The hash an unknown user's password is checked against, so that
	 * "no such user" costs what "wrong password" costs. */
	if (random_bytes(rnd, sizeof(rnd)) < 0) {
		snprintf(err, errlen, "no random bytes");
		free(auth);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(dummy_pw + 2 * i, 3, "%02x", rnd[i]);
	if (auth_hash_password(dummy_pw, auth->dummy_hash, sizeof(auth->dummy_hash)) < 0) {
		snprintf(err, errlen, "crypt(3) cannot make a yescrypt hash");
		free(auth);
		return NULL;
	}
	explicit_bzero(dummy_pw, sizeof(dummy_pw));

	auth->throttle = auth_throttle_table_new();
	if (auth->throttle == NULL) {
		snprintf(err, errlen, "out of memory");
		free(auth);
		return NULL;
	}
	auth->db = db_load(auth, &auth->users_sig, &auth->aliases_sig, err, errlen);
	if (auth->db == NULL) {
		auth_throttle_table_free(auth->throttle);
		free(auth);
		return NULL;
	}
	if (cfg->shards_file[0] != '\0' && (auth->shards = auth_shards_new(cfg->shards_file)) == NULL) {
		db_free(auth->db);
		auth_throttle_table_free(auth->throttle);
		free(auth);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	auth->cache = auth_cache_new(cfg->auth_cache_ttl, cfg->auth_cache_max);
	if (auth->cache == NULL && cfg->auth_cache_ttl > 0 && cfg->auth_cache_max > 0)
		log_warn("auth: no memory for the password cache; every login verifies");
	pthread_rwlock_init(&auth->db_lock, NULL);
	pthread_mutex_init(&auth->refresh_lock, NULL);
	return auth;
}

void auth_close(struct auth *auth)
{
	if (auth == NULL)
		return;
	db_free(auth->db);
	auth_throttle_table_free(auth->throttle);
	auth_cache_free(auth->cache);
	auth_shards_free(auth->shards);
	pthread_rwlock_destroy(&auth->db_lock);
	pthread_mutex_destroy(&auth->refresh_lock);
	free(auth);
}

bool auth_shard_of(struct auth *auth, const char *address, struct auth_shard *out)
{
	return auth->shards != NULL && auth_shards_find(auth->shards, address, out);
}

bool auth_shard_named(struct auth *auth, const char *name, struct auth_shard *out)
{
	return auth->shards != NULL && auth_shards_named(auth->shards, name, out);
}

struct auth_throttle_table *auth_throttle_table_of(struct auth *auth)
{
	return auth->throttle;
}

/* Called with refresh_lock held. */
static bool files_changed(struct auth *auth)
{
	struct auth_file_sig us, as;
	struct timespec now;
	uint64_t h;

	if (auth_file_stat(auth->users_path, &us) < 0 ||
	    auth_file_stat(auth->aliases_path, &as) < 0) {
		if (!auth->stat_failed)
			log_error("auth: stat %s: %s; keeping the users and aliases loaded",
				  auth->users_path, strerror(errno));
		auth->stat_failed = true;
		return false;
	}
	auth->stat_failed = false;
	if (!sig_same(&us, &auth->users_sig) || !sig_same(&as, &auth->aliases_sig))
		return true;
	if (!auth->racy)
		return false;
	/* Same signatures, but young enough that a rewrite within the same
	 * timestamp tick could hide behind them: compare the bytes. */
	if (auth_file_hash(auth->privsep, auth->users_path, &h) < 0 || h != auth->users_sig.content_hash)
		return true;
	if (auth_file_hash(auth->privsep, auth->aliases_path, &h) < 0 || h != auth->aliases_sig.content_hash)
		return true;
	clock_gettime(CLOCK_REALTIME, &now);
	auth->racy = sig_racy(&us, &now) || sig_racy(&as, &now);
	return false;
}

int auth_refresh(struct auth *auth)
{
	struct auth_file_sig us, as;
	struct auth_db *db, *old;
	char err[CONFIG_ERROR_MAX];
	size_t n_users, n_aliases;
	int rc;

	pthread_mutex_lock(&auth->refresh_lock);
	if (!files_changed(auth)) {
		rc = auth->last_failed || auth->stat_failed ? -1 : 0;
		pthread_mutex_unlock(&auth->refresh_lock);
		return rc;
	}
	db = db_load(auth, &us, &as, err, sizeof(err));
	auth->users_sig = us;
	auth->aliases_sig = as;
	if (db == NULL) {
		log_error("auth: %s; keeping the previous users and aliases", err);
		auth->last_failed = true;
		/* Retry only when the signature changes: no log line per lookup
		 * while a broken file stays young. */
		auth->racy = false;
		pthread_mutex_unlock(&auth->refresh_lock);
		return -1;
	}
	pthread_rwlock_wrlock(&auth->db_lock);
	old = auth->db;
	auth->db = db;
	pthread_rwlock_unlock(&auth->db_lock);
	auth->last_failed = false;
	/* Counts read now: once refresh_lock is released another refresh
	 * may replace and free db. */
	n_users = db->users.n;
	n_aliases = db->aliases.n;
	pthread_mutex_unlock(&auth->refresh_lock);
	db_free(old);
	log_info("auth: loaded users=%zu aliases=%zu", n_users, n_aliases);
	return 0;
}

/* --- passwords --- */

/* The full verify, or a cache hit for the same user, hash and password
 * verified less than auth_cache_ttl ago. */
static bool auth_check_hash(struct auth *auth, const char *user, const char *hash,
			    const char *password)
{
	unsigned char digest[AUTH_CACHE_DIGEST_LEN];
	bool have_digest, ok;
	time_t now = time(NULL);

	have_digest = auth->cache != NULL &&
		      auth_cache_digest(auth->cache, user, hash, password, digest) == 0;
	if (have_digest && auth_cache_hit(auth->cache, digest, now)) {
		explicit_bzero(digest, sizeof(digest));
		return true;
	}
	ok = auth_hash_verify(password, hash);
	if (ok && have_digest)
		auth_cache_add(auth->cache, digest, now);
	explicit_bzero(digest, sizeof(digest));
	return ok;
}

int auth_verify_password(struct auth *auth, const char *user_address,
			 const char *password, char *canonical_r,
			 size_t canonical_size)
{
	char low[AUTH_ADDRESS_MAX + 1], hash[AUTH_HASH_MAX + 1];
	const struct auth_user *u = NULL;
	bool found = false, ok;

	auth_refresh(auth);
	pthread_rwlock_rdlock(&auth->db_lock);
	if (auth_address_canon(user_address, low, sizeof(low)) == 0)
		u = auth_users_find(&auth->db->users, low);
	/* A locked hash ("!...") would fail at once: verify the dummy so the
	 * timing does not tell locked accounts apart either. */
	if (u != NULL && u->hash[0] == '$') {
		str_copy(hash, u->hash, sizeof(hash));
		found = true;
	}
	pthread_rwlock_unlock(&auth->db_lock);

	ok = false;
	if (found)
		ok = auth_check_hash(auth, low, hash, password);
	else
		(void)auth_hash_verify(password, auth->dummy_hash);
	explicit_bzero(hash, sizeof(hash));
	if (!ok)
		return -1;
	if (canonical_r != NULL && canonical_size > 0)
		str_copy(canonical_r, low, canonical_size);
	return 0;
}

/* --- resolution --- */

struct resolve {
	const struct auth *auth;
	const struct auth_db *db;
	struct auth_target *out;
	size_t max, n;
	const struct auth_alias *visited[AUTH_RESOLVE_VISIT_MAX];
	size_t n_visited;
	bool overflow;
};

static void add_target(struct resolve *r, const char *address, bool local)
{
	for (size_t i = 0; i < r->n; i++)
		if (str_ieq(r->out[i].address, address))
			return;
	if (r->n == r->max) {
		r->overflow = true;
		return;
	}
	str_copy(r->out[r->n].address, address, sizeof(r->out[r->n].address));
	r->out[r->n].local = local;
	r->n++;
}

static bool resolve_local(struct resolve *r, const char *low, unsigned depth);

static void expand_alias(struct resolve *r, const struct auth_alias *al, unsigned depth)
{
	if (depth >= AUTH_ALIAS_DEPTH_MAX) {
		log_warn("auth: alias %s is more than %d aliases deep; not expanded",
			 al->address, AUTH_ALIAS_DEPTH_MAX);
		return;
	}
	/* Seen already in this lookup: a loop, or a second path to the same
	 * alias whose targets are already in the list. */
	for (size_t i = 0; i < r->n_visited; i++)
		if (r->visited[i] == al)
			return;
	if (r->n_visited == AUTH_RESOLVE_VISIT_MAX) {
		r->overflow = true;
		return;
	}
	r->visited[r->n_visited++] = al;
	for (size_t i = 0; i < al->n_targets && !r->overflow; i++) {
		const char *t = al->targets[i];
		char low[AUTH_ADDRESS_MAX + 1];

		if (auth_address_canon(t, low, sizeof(low)) < 0)
			continue; /* checked when loading */
		if (!local_domain(r->auth, strrchr(low, '@') + 1)) {
			add_target(r, t, false);
			continue;
		}
		if (!resolve_local(r, low, depth + 1))
			log_warn("auth: alias %s: target %s is no user or alias; dropped",
				 al->address, t);
	}
}

static const struct auth_user *postmaster_default(const struct auth_users *users,
						  const char *domain)
{
	for (size_t i = 0; i < users->n; i++) {
		const char *at = strrchr(users->v[i].address, '@');
		if (strcmp(at + 1, domain) == 0)
			return &users->v[i];
	}
	return users->n > 0 ? &users->v[0] : NULL;
}

/* low: a valid lower-case address in a local domain.  true when it matched
 * something (its targets may still be empty: a loop). */
static bool resolve_local(struct resolve *r, const char *low, unsigned depth)
{
	const struct auth_users *users = &r->db->users;
	const struct auth_aliases *aliases = &r->db->aliases;
	const char *at = strrchr(low, '@');
	char base[AUTH_ADDRESS_MAX + 1], catchall[AUTH_DOMAIN_MAX + 2];
	const char *plus, *lookup = low;
	const struct auth_user *u;
	const struct auth_alias *al;
	size_t local_len;

	for (int pass = 0; pass < 2; pass++) {
		if ((u = auth_users_find(users, lookup)) != NULL) {
			add_target(r, u->address, true);
			return true;
		}
		if ((al = auth_aliases_find(aliases, lookup)) != NULL) {
			expand_alias(r, al, depth);
			return true;
		}
		/* Second pass: the address without its +detail. */
		plus = memchr(low, AUTH_DETAIL_SEP, (size_t)(at - low));
		if (pass == 1 || plus == NULL || plus == low)
			break;
		snprintf(base, sizeof(base), "%.*s%s", (int)(plus - low), low, at);
		lookup = base;
	}
	local_len = (size_t)(strrchr(lookup, '@') - lookup);
	if (local_len == 10 && memcmp(lookup, "postmaster", 10) == 0 &&
	    (u = postmaster_default(users, at + 1)) != NULL) {
		add_target(r, u->address, true);
		return true;
	}
	snprintf(catchall, sizeof(catchall), "%s", at);
	if ((al = auth_aliases_find(aliases, catchall)) != NULL) {
		expand_alias(r, al, depth);
		return true;
	}
	return false;
}

enum auth_rcpt auth_resolve_recipient(struct auth *auth, const char *address,
				      struct auth_target *targets_r,
				      size_t max, size_t *n_r)
{
	char low[AUTH_ADDRESS_MAX + 1];
	struct resolve *r;
	enum auth_rcpt res;

	*n_r = 0;
	if (auth_address_canon(address, low, sizeof(low)) < 0)
		return AUTH_RCPT_UNKNOWN;
	if (!local_domain(auth, strrchr(low, '@') + 1))
		return AUTH_RCPT_NOT_LOCAL_DOMAIN;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return AUTH_RCPT_ERROR;
	auth_refresh(auth);
	r->auth = auth;
	r->out = targets_r;
	r->max = max < AUTH_RESOLVE_MAX ? max : AUTH_RESOLVE_MAX;
	pthread_rwlock_rdlock(&auth->db_lock);
	r->db = auth->db;
	resolve_local(r, low, 0);
	pthread_rwlock_unlock(&auth->db_lock);
	if (r->overflow) {
		log_warn("auth: %s expands to more than %zu targets", low, r->max);
		res = AUTH_RCPT_ERROR;
	} else {
		res = r->n > 0 ? AUTH_RCPT_LOCAL : AUTH_RCPT_UNKNOWN;
	}
	*n_r = r->n;
	free(r);
	return res;
}

bool auth_user_owns_address(struct auth *auth, const char *user,
			    const char *address)
{
	char ulow[AUTH_ADDRESS_MAX + 1], alow[AUTH_ADDRESS_MAX + 1];
	struct auth_target *targets;
	struct resolve *r;
	bool owns = false;

	if (auth_address_canon(user, ulow, sizeof(ulow)) < 0 ||
	    auth_address_canon(address, alow, sizeof(alow)) < 0)
		return false;
	targets = calloc(AUTH_RESOLVE_MAX, sizeof(*targets));
	r = calloc(1, sizeof(*r));
	if (targets == NULL || r == NULL) {
		free(targets);
		free(r);
		return false;
	}
	auth_refresh(auth);
	r->auth = auth;
	r->out = targets;
	r->max = AUTH_RESOLVE_MAX;
	pthread_rwlock_rdlock(&auth->db_lock);
	r->db = auth->db;
	if (auth_users_find(&r->db->users, ulow) != NULL) {
		if (strcmp(ulow, alow) == 0)
			owns = true;
		else if (local_domain(auth, strrchr(alow, '@') + 1))
			resolve_local(r, alow, 0);
	}
	pthread_rwlock_unlock(&auth->db_lock);
	/* Partial lists (overflow) still only contain true targets. */
	for (size_t i = 0; i < r->n && !owns; i++)
		owns = targets[i].local && strcmp(targets[i].address, ulow) == 0;
	free(targets);
	free(r);
	return owns;
}

bool auth_user_exists(struct auth *auth, const char *user)
{
	uint64_t quota;

	return auth_user_quota(auth, user, &quota, NULL) == 0;
}

int auth_user_quota(struct auth *auth, const char *user, uint64_t *bytes_r,
		    uint64_t *messages_r)
{
	char low[AUTH_ADDRESS_MAX + 1];
	const struct auth_user *u;
	int rc = -1;

	if (auth_address_canon(user, low, sizeof(low)) < 0)
		return -1;
	auth_refresh(auth);
	pthread_rwlock_rdlock(&auth->db_lock);
	u = auth_users_find(&auth->db->users, low);
	if (u != NULL) {
		*bytes_r = u->quota;
		if (messages_r != NULL)
			*messages_r = u->quota_messages;
		rc = 0;
	}
	pthread_rwlock_unlock(&auth->db_lock);
	return rc;
}
