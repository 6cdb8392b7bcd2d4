/* Shared between the files of auth/ only (and its unit test). */
#ifndef AUTH_AUTH_PRIVATE_H
#define AUTH_AUTH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"

#define AUTH_USERS_FILE "users"
#define AUTH_ALIASES_FILE "aliases"
#define AUTH_LOCK_FILE "auth.lock"
/* A users file of 16 MiB is ~100,000 users: far beyond our scale, and it
 * keeps a reload's memory bounded. */
#define AUTH_FILE_MAX (16u * 1024 * 1024)
#define AUTH_FILE_LINE_MAX 32768 /* an alias line: 100 targets of 254 octets */
/* crypt(3) output, CRYPT_OUTPUT_SIZE - 1 in libxcrypt. */
#define AUTH_HASH_MAX 383

/* --- auth_shards.c: config shards_file --- */

struct auth_shards;
/* Nothing is read before the first look-up; NULL: out of memory. */
struct auth_shards *auth_shards_new(const char *path);
void auth_shards_free(struct auth_shards *s);
bool auth_shards_find(struct auth_shards *s, const char *address, struct auth_shard *out);
bool auth_shards_named(struct auth_shards *s, const char *name, struct auth_shard *out);

/* --- auth_file.c: the users and aliases files --- */

/* Open-addressing map from a lower-case string to an array index. */
struct auth_map {
	uint32_t *slots; /* index + 1; 0 = empty */
	size_t mask;
};

struct auth_user {
	char *address; /* lower case */
	char *hash;
	uint64_t quota; /* bytes; 0 = unlimited */
	uint64_t quota_messages; /* messages; 0 = unlimited */
	unsigned line;
};

struct auth_alias {
	char *address;  /* lower case; "@domain" for a catch-all */
	char **targets; /* as written in the file */
	size_t n_targets;
	unsigned line;
};

/* One loaded file; strings point into text. */
struct auth_users {
	char *text;
	struct auth_user *v;
	size_t n;
	struct auth_map map;
};

struct auth_aliases {
	char *text;
	struct auth_alias *v;
	size_t n;
	char **targets;
	struct auth_map map;
};

/* What identifies one version of a file, for auth_refresh. */
struct auth_file_sig {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
	uint64_t content_hash; /* FNV-1a of the bytes, for racy timestamps */
};

/* Parse text (modified in place, kept by out).  0, or -1 with
 * "PATH:LINE: message". */
int auth_users_parse(const char *path, char *text, size_t len,
		     struct auth_users *out, char *err, size_t errlen);
int auth_aliases_parse(const char *path, char *text, size_t len,
		       struct auth_aliases *out, char *err, size_t errlen);
/* Read and parse; a missing file gives an empty set.  sig_r (may be NULL)
 * is set to the version read, also when it does not parse.  ps (may be
 * NULL) reads a file that open() may not (privsep.h). */
struct privsep;
int auth_users_load(const char *path, struct privsep *ps, struct auth_users *out,
		    struct auth_file_sig *sig_r, char *err, size_t errlen);
int auth_aliases_load(const char *path, struct privsep *ps, struct auth_aliases *out,
		      struct auth_file_sig *sig_r, char *err, size_t errlen);
void auth_users_free(struct auth_users *users);
void auth_aliases_free(struct auth_aliases *aliases);
const struct auth_user *auth_users_find(const struct auth_users *users,
					const char *lower);
const struct auth_alias *auth_aliases_find(const struct auth_aliases *aliases,
					   const char *lower);
/* stat() path into sig (content_hash left 0).  0, or -1 on a stat error
 * other than ENOENT. */
int auth_file_stat(const char *path, struct auth_file_sig *sig);
/* Read path and hash its bytes; 0 (missing file: hash of nothing) or -1. */
int auth_file_hash(struct privsep *ps, const char *path, uint64_t *hash_r);
uint64_t auth_fnv1a(const void *data, size_t len);
/* "1073741824", "10K", "5M", "1G", "2T" (1024-based) -> bytes. */
int auth_parse_size(const char *s, uint64_t *bytes_r);

enum auth_edit_kind {
	AUTH_EDIT_USER_ADD,
	AUTH_EDIT_USER_DEL,
	AUTH_EDIT_USER_HASH,
	AUTH_EDIT_USER_QUOTA,
	AUTH_EDIT_ALIAS_ADD,
	AUTH_EDIT_ALIAS_DEL,
};

struct auth_edit_op {
	enum auth_edit_kind kind;
	const char *address; /* user, or alias ("@domain" for catch-all) */
	const char *hash;    /* USER_ADD, USER_HASH */
	uint64_t quota;      /* USER_ADD, USER_QUOTA */
	uint64_t quota_messages; /* USER_QUOTA (when set_messages) */
	bool set_messages;   /* USER_QUOTA: MESSAGES was given */
	const char *const *targets; /* ALIAS_ADD, ALIAS_DEL (0 = whole alias) */
	size_t n_targets;
};

enum auth_edit_result {
	AUTH_EDIT_OK,
	AUTH_EDIT_EXISTS,    /* add: the address is a user or an alias */
	AUTH_EDIT_NOT_FOUND, /* no such user, alias or target */
	AUTH_EDIT_BAD_FILE,  /* a file does not parse: err "FILE:LINE: ..." */
	AUTH_EDIT_INVALID,   /* the result would be invalid (too many targets) */
	AUTH_EDIT_IO,        /* lock, read or write failed */
};

/* Apply op to the files in data_dir under the lock file, rewriting the
 * changed file atomically.  Other lines and comments are kept as they are. */
enum auth_edit_result auth_files_edit(const char *data_dir,
				      const struct auth_edit_op *op,
				      char *err, size_t errlen);

/* --- auth_hash.c --- */
/* A new yescrypt hash of password into hash_r (AUTH_HASH_MAX + 1). */
int auth_hash_password(const char *password, char *hash_r, size_t size);
/* true when password matches hash.  Costs one verify whatever the result. */
bool auth_hash_verify(const char *password, const char *hash);

/* --- auth.c --- */
/* Lower-cases src into dst (AUTH_ADDRESS_MAX + 1) when it is a valid
 * address; -1 otherwise. */
int auth_address_canon(const char *src, char *dst, size_t size);
/* "@domain" with a valid domain. */
bool auth_catchall_valid(const char *address);
bool auth_domain_valid(const char *domain, size_t len);

/* --- auth_cache.c: verified passwords (see the file's top) --- */
#define AUTH_CACHE_DIGEST_LEN 32 /* HMAC-SHA256 */
struct auth_cache;
/* NULL when ttl or max is 0 (cache off) or on allocation failure. */
struct auth_cache *auth_cache_new(unsigned ttl, size_t max);
void auth_cache_free(struct auth_cache *c);
/* The entry for a user, their stored hash and a password.  0 or -1. */
int auth_cache_digest(const struct auth_cache *c, const char *user, const char *hash,
		      const char *password, unsigned char digest_r[AUTH_CACHE_DIGEST_LEN]);
/* true when digest was added less than ttl seconds before now. */
bool auth_cache_hit(struct auth_cache *c, const unsigned char digest[AUTH_CACHE_DIGEST_LEN],
		    time_t now);
void auth_cache_add(struct auth_cache *c, const unsigned char digest[AUTH_CACHE_DIGEST_LEN],
		    time_t now);
size_t auth_cache_size(struct auth_cache *c); /* entries (tests) */

/* --- auth_throttle.c --- */
struct auth_throttle_table;
struct auth_throttle_table *auth_throttle_table_new(void);
void auth_throttle_table_free(struct auth_throttle_table *t);
/* Entries in use (tests). */
size_t auth_throttle_table_size(struct auth_throttle_table *t);
/* auth.c hands its table to the throttle functions. */
struct auth_throttle_table *auth_throttle_table_of(struct auth *auth);

#endif
