/* Shared inside maildir/ only.  The index is reached through the small
 * key/value layer below so that md_index.c stays the one file that
 * includes <lmdb.h>; the record formats live in md_records.c. */
#ifndef MAILDIR_MD_PRIVATE_H
#define MAILDIR_MD_PRIVATE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"
#include "util.h"

#define MD_FILENAME_MAX 255              /* NAME_MAX */
#define MD_UIDL_MAX 70      /* RFC 1939 §7: 1 to 70 characters 0x21..0x7E */
#define MD_UIDL_FORMAT_MAX 64
#define MD_TMP_MAX_AGE (36 * 60 * 60)    /* Maildir (cr.yp.to/proto/maildir.html): tmp/ files older than 36 h are junk */
#define MD_MTIME_DIRTY_NS 2000000000LL   /* file system times are coarse (a
					  * jiffy): a directory changed less
					  * than this before a scan is scanned
					  * again next time */
#define MD_SYNC_BATCH 256                /* new files indexed per write job */
#define MD_FLAG_LOCKS 64                 /* md_store.flag_locks stripes */
#define MD_MARKER_FILE "postern-indexed"
#define MD_TRASH_PREFIX "postern-deleted."
#define MD_SPOOL_DIR ".tmp"              /* under DATA_DIR/mail; no domain starts with '.' */

/* Maildir info letters (cr.yp.to/proto/maildir.html), kept as bits 0..25
 * for 'A'..'Z'; the IMAP flags map to D F R S T. */
#define MD_LETTER(c) (1u << ((c) - 'A'))

struct md_index; /* md_index.c */

struct md_store {
	char data_dir[PATH_MAX];
	char mail_dir[PATH_MAX];   /* DATA_DIR/mail */
	char spool_dir[PATH_MAX];  /* DATA_DIR/mail/.tmp */
	char host[128];            /* for unique names, '/' and ':' escaped */
	struct md_index *index;
	pthread_mutex_t name_lock; /* guards name_seq */
	uint64_t name_seq;
	pthread_mutex_t hook_lock;
	md_change_fn *hook;
	void *hook_ctx;
	/* STOREs of one mailbox take turns in this process (md_flags.c):
	 * their renames run outside the index's lock, and two sessions
	 * renaming the same files at once would undo each other's work
	 * round after round.  Striped by mailbox. */
	pthread_mutex_t flag_locks[MD_FLAG_LOCKS];
	pthread_mutex_t dsync_lock; /* guards dsyncs, dir_syncs (md_dirsync.c) */
	struct md_dsync *dsyncs;    /* directories being fsynced right now */
	uint64_t dir_syncs;
	char uidl_format[MD_UIDL_FORMAT_MAX + 1]; /* md_store_options */
	size_t explog_max;  /* md_store_options expunge_log_max */
	int64_t explog_age; /* md_store_options expunge_log_age, 0: none */
};

/* A POP3 UIDL kept across md_user_reindex(): mailbox name, base name */
struct md_uidl_carry {
	char *name;  /* one allocation holds the three strings */
	char *base;
	char *uidl;
};

/* The last full scan of a mailbox whose directories had changed too
 * recently for their times to be trusted (md_sync.c). */
struct md_dirty_scan {
	uint32_t mbox_id;
	int64_t new_mtime, cur_mtime; /* as seen then */
	int64_t at_ns;                /* when */
};
#define MD_DIRTY_SCANS 4 /* mailboxes remembered per open user */

struct md_user {
	struct md_store *store;
	uint32_t id;
	char address[MD_ADDRESS_MAX + 1];
	char root[PATH_MAX];
	char error[256];
	struct md_dirty_scan dirty[MD_DIRTY_SCANS];
	/* md_user_reindex only: the imported UIDLs the old index held,
	 * sorted by name then base; the syncs it runs give them back */
	const struct md_uidl_carry *carry;
	size_t n_carry;
};

/* md_rebuild.c: the UIDL carried for base[0..blen) of mailbox name, or NULL */
const char *md_carry_uidl(const struct md_user *u, const char *name,
			  const char *base, size_t blen);

struct md_mailbox {
	struct md_user *user;
	uint32_t id;
	uint32_t uidvalidity;
	size_t expunge_kept; /* md_msg_expunge_kept() */
};

/* ---- records (host form; md_records.c encodes them big-endian) ---- */

#define MD_MBOX_IMPORT 0x1 /* import dovecot-uidlist at the next sync */
#define MD_MBOX_DCUIDL 0x2 /* at the next sync, take the POP3 UIDLs of the
			    * files dovecot-uidlist lists (a rebuild of an
			    * imported Maildir: the UIDLs stay, the UIDs not) */

struct md_user_rec {
	uint32_t id;
	uint32_t next_mailbox_id;
	uint64_t used_bytes;
	uint64_t used_messages;
	int64_t root_mtime;        /* ns; 0: scan the folder list */
};

struct md_mbox_rec {
	uint32_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t special;
	uint32_t flags;            /* MD_MBOX_* */
	uint32_t messages;
	uint32_t unseen;
	uint32_t deleted;
	uint64_t size;
	int64_t new_mtime;         /* ns, 0: scan */
	int64_t cur_mtime;
	char name[MD_MAILBOX_NAME_MAX + 1];
};

struct md_msg_rec {
	uint32_t uid;
	uint32_t letters;          /* MD_LETTER bits */
	uint64_t kw[MD_KW_WORDS];
	uint64_t modseq;
	uint64_t size;
	uint64_t pop3_size;        /* md_pop3_size() of the file; 0: unknown
				    * (records of format v1) */
	int64_t internal_date;
	int64_t save_date;
	bool in_new;               /* the file is in new/, else cur/ */
	char fname[MD_FILENAME_MAX + 1];
	char uidl[MD_UIDL_MAX + 1]; /* POP3 UIDL imported from Dovecot, or ""
				     * (the base name serves) */
};

/* ---- key/value layer (md_index.c) ------------------------------------ */

enum md_db {
	MD_DB_META,      /* "next_user", "last_uidvalidity" -> u32;
			  * "renaming" + user (md_rename.c) */
	MD_DB_USERS,     /* address -> user record */
	MD_DB_MBOXNAME,  /* user + IMAP name -> mailbox id */
	MD_DB_MBOX,      /* user + mailbox id -> mailbox record */
	MD_DB_SUBS,      /* user + IMAP name -> "" */
	MD_DB_MSG,       /* user + mailbox + uid -> message record */
	MD_DB_MSGMETA,   /* user + mailbox + uid -> md_meta_pack() bytes */
	MD_DB_BASENAME,  /* user + mailbox + Maildir base name -> uid */
	MD_DB_MODSEQ,    /* user + mailbox -> dups (modseq, uid) */
	MD_DB_EXPUNGED,  /* user + mailbox -> dups (modseq, uid) */
	MD_DB_KEYWORD,   /* user + mailbox + u16 index -> name */
	MD_DB_EXPTIME,   /* user + mailbox + modseq u64 -> time of that expunge */
	MD_DB_COUNT
};

struct md_txn;
struct md_cursor;

struct md_val {
	const void *data;
	size_t len;
};

int md_index_open(struct md_store *store, const struct md_store_options *opts,
		  char *err, size_t errlen);
void md_index_close(struct md_store *store);
void md_index_stats(struct md_store *store, struct md_store_stats *stats_r);
void md_index_reader_check(struct md_store *store);

/* A read transaction: short; copy what you need, then end it. */
enum md_result md_read_begin(struct md_store *store, struct md_txn **txn_r);
void md_read_end(struct md_txn *txn);

/* A write job runs on the writer thread inside a nested transaction of the
 * group's transaction; a result other than MD_OK undoes its index writes.
 * A job may run more than once (the map grew, or the group failed), so it
 * must start from its inputs each time.  A job only reads and writes the
 * index: the file work it records is done (and fsynced) by the caller
 * before md_write(), the job re-checking under the lock what a concurrent
 * change may have made stale (md_index_in_write_txn()). */
typedef enum md_result md_job_fn(struct md_txn *txn, void *arg);
enum md_result md_write(struct md_store *store, md_job_fn *fn, void *arg);
/* Never call md_write() while holding a read transaction, nor
 * md_read_begin() inside a job: a map resize waits for both. */
/* n jobs queued together (they share a commit when the writer is idle);
 * returns when all are done. */
void md_write_n(struct md_store *store, md_job_fn *fn, void **args,
		enum md_result *results, size_t n);
/* Ask the change hook to be called for this mailbox after the commit
 * (for more mailboxes than one commit lists, once with 0, 0: all). */
void md_txn_touch(struct md_txn *txn, uint32_t user_id, uint32_t mailbox_id);
/* Whether the calling thread holds the index's write transaction (runs a
 * job).  No rename, unlink, link, mkdir, directory listing or fsync may
 * run then: LMDB's one write lock is shared with every process on the
 * data directory (DESIGN.md).  Tests check it from wrapped calls. */
bool md_index_in_write_txn(void);
struct md_store *md_txn_store(struct md_txn *txn);

/* get: 0 found, 1 not found, -1 error.  The value points into the map and
 * is valid until the next write or the end of the transaction. */
int md_kv_get(struct md_txn *txn, enum md_db db, const void *key, size_t klen,
	      struct md_val *val_r);
#define MD_PUT_NOOVERWRITE 0x1
/* 0, 1 when NOOVERWRITE and the key exists, -1 error. */
int md_kv_put(struct md_txn *txn, enum md_db db, const void *key, size_t klen,
	      const void *val, size_t vlen, unsigned flags);
/* dup NULL: the key (with all its dups).  0, 1 not found, -1 error. */
int md_kv_del(struct md_txn *txn, enum md_db db, const void *key, size_t klen,
	      const void *dup, size_t duplen);
/* Delete every key beginning with prefix. */
int md_kv_del_prefix(struct md_txn *txn, enum md_db db, const void *prefix,
		     size_t plen);

/* Cursors: first/next return 0 with key and value, 1 at the end (or past
 * the prefix given to md_cursor_open), -1 error. */
int md_cursor_open(struct md_txn *txn, enum md_db db, const void *prefix,
		   size_t plen, struct md_cursor **cur_r);
void md_cursor_close(struct md_cursor *cur);
/* Position at the first key >= key (within the prefix). */
int md_cursor_seek(struct md_cursor *cur, const void *key, size_t klen,
		   struct md_val *key_r, struct md_val *val_r);
int md_cursor_next(struct md_cursor *cur, struct md_val *key_r,
		   struct md_val *val_r);
/* Duplicates of one key (MD_DB_MODSEQ/EXPUNGED): first dup >= dup. */
int md_cursor_seek_dup(struct md_cursor *cur, const void *key, size_t klen,
		       const void *dup, size_t duplen, struct md_val *val_r);
int md_cursor_next_dup(struct md_cursor *cur, struct md_val *val_r);
/* Number of duplicates of one key (0 when absent).  0, -1 error. */
int md_kv_dup_count(struct md_txn *txn, enum md_db db, const void *key,
		    size_t klen, size_t *n_r);

/* ---- big-endian ----------------------------------------------------- */

static inline void md_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static inline uint32_t md_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void md_put64(unsigned char *p, uint64_t v)
{
	md_put32(p, (uint32_t)(v >> 32));
	md_put32(p + 4, (uint32_t)v);
}
static inline uint64_t md_get64(const unsigned char *p)
{
	return (uint64_t)md_get32(p) << 32 | md_get32(p + 4);
}

/* ---- records (md_records.c) ------------------------------------------ */

#define MD_KEY_MAX 512 /* LMDB's default key limit is 511 */

size_t md_key_mbox(unsigned char *key, uint32_t user, uint32_t mbox);
size_t md_key_msg(unsigned char *key, uint32_t user, uint32_t mbox, uint32_t uid);

/* All return MD_OK, MD_NOTFOUND (absent), MD_CORRUPT or MD_TEMPFAIL. */
enum md_result md_rec_user_get(struct md_txn *t, const char *address,
			       struct md_user_rec *rec_r);
enum md_result md_rec_user_put(struct md_txn *t, const char *address,
			       const struct md_user_rec *rec);
enum md_result md_rec_mbox_id(struct md_txn *t, uint32_t user, const char *name,
			      uint32_t *id_r);
enum md_result md_rec_mbox_get(struct md_txn *t, uint32_t user, uint32_t id,
			       struct md_mbox_rec *rec_r);
/* by name: both lookups */
enum md_result md_rec_mbox_find(struct md_txn *t, uint32_t user,
				const char *name, struct md_mbox_rec *rec_r);
enum md_result md_rec_mbox_put(struct md_txn *t, uint32_t user,
			       const struct md_mbox_rec *rec);
/* Insert a new mailbox (name entry and record); MD_EXISTS if the name is
 * taken.  Assigns id (from the user record, which it updates) and a new
 * UIDVALIDITY unless rec->uidvalidity is set. */
enum md_result md_rec_mbox_create(struct md_txn *t, const char *address,
				  uint32_t user, struct md_mbox_rec *rec);
/* Remove the mailbox and everything under it; quota given back. */
enum md_result md_rec_mbox_drop(struct md_txn *t, const char *address,
				uint32_t user, uint32_t id);
enum md_result md_rec_msg_get(struct md_txn *t, uint32_t user, uint32_t mbox,
			      uint32_t uid, struct md_msg_rec *rec_r);
enum md_result md_rec_msg_decode(const struct md_val *key,
				 const struct md_val *val,
				 struct md_msg_rec *rec_r);
/* Write a message record; old (NULL for a new message) is what it
 * replaces, so the modseq and basename indexes follow. */
enum md_result md_rec_msg_put(struct md_txn *t, uint32_t user, uint32_t mbox,
			      const struct md_msg_rec *rec,
			      const struct md_msg_rec *old);
/* Remove a message (record, meta, basename, modseq) and remember the
 * expunge with modseq. */
enum md_result md_rec_msg_del(struct md_txn *t, uint32_t user, uint32_t mbox,
			      const struct md_msg_rec *rec, uint64_t modseq);
/* Adjust a mailbox's counters / a user's quota usage for a message added
 * (sign 1) or removed (-1). */
void md_rec_count(struct md_mbox_rec *mb, const struct md_msg_rec *msg, int sign);
void md_rec_quota(struct md_user_rec *u, const struct md_msg_rec *msg, int sign);
enum md_result md_rec_basename_uid(struct md_txn *t, uint32_t user,
				   uint32_t mbox, const char *base, size_t blen,
				   uint32_t *uid_r);
/* Trim a mailbox's expunge log to its newest max entries and those younger
 * than the store's explog_age (and the horizon marker, uid 0, standing for
 * those removed).  md_rec_msg_del() calls it,
 * so every path that expunges (IMAP, POP3, MOVE, a sync) prunes. */
/* Mark the log as not reaching back before modseq (a mailbox imported
 * with another server's mod-sequences, whose expunges it never saw). */
enum md_result md_rec_explog_horizon(struct md_txn *t, uint32_t user, uint32_t mbox,
				     uint64_t modseq);
enum md_result md_rec_explog_prune(struct md_txn *t, uint32_t user,
				   uint32_t mbox, size_t max);
/* A fresh UIDVALIDITY: max(now, last + 1), remembered. */
enum md_result md_rec_new_uidvalidity(struct md_txn *t, uint32_t *uv_r);
enum md_result md_rec_new_user_id(struct md_txn *t, uint32_t *id_r);
bool md_rec_subscribed(struct md_txn *t, uint32_t user, const char *name);
enum md_result md_rec_subscribe(struct md_txn *t, uint32_t user,
				const char *name, bool on);

/* Keywords of a mailbox: names[i] (malloc'd) or NULL. */
struct md_kwtab {
	char *names[MD_KEYWORDS_MAX];
	size_t n; /* highest used index + 1 */
};
enum md_result md_kw_load(struct md_txn *t, uint32_t user, uint32_t mbox,
			  struct md_kwtab *tab);
void md_kw_free(struct md_kwtab *tab);
/* The names as md_mailbox_keywords() gives them. */
enum md_result md_kw_names(struct md_txn *t, uint32_t user, uint32_t mbox,
			   char ***names_r, size_t *n_r);
int md_kw_find(const struct md_kwtab *tab, const char *name);
/* Index of name, created (in the index and the table) when missing.
 * *created_r set when a new index below 26 was given out (the folder's
 * dovecot-keywords needs rewriting).  MD_LIMIT when full. */
enum md_result md_kw_ensure(struct md_txn *t, uint32_t user, uint32_t mbox,
			    struct md_kwtab *tab, const char *name, int *idx_r,
			    bool *created_r);
enum md_result md_kw_set(struct md_txn *t, uint32_t user, uint32_t mbox,
			 struct md_kwtab *tab, int idx, const char *name);

/* ---- reads inside one transaction (md_changes.c) --------------------- */

/* Append x to a growing array (*cap doubles); -1 out of memory. */
int md_u32_push(uint32_t **v, size_t *n, size_t *cap, uint32_t x);
/* qsort() order of uint32_t */
int md_u32_cmp(const void *a, const void *b);
/* Every UID of a mailbox, ascending; hint: its message count. */
enum md_result md_uids_read(struct md_txn *t, uint32_t user, uint32_t mbox,
			    size_t hint, uint32_t **uids_r, size_t *n_r);
/* The expunge log: UIDs expunged with a mod-sequence > since, ascending;
 * *pruned_r when entries after since were pruned (the list is short). */
enum md_result md_explog_read(struct md_txn *t, uint32_t user, uint32_t mbox,
			      uint64_t since, uint32_t **uids_r, size_t *n_r,
			      bool *pruned_r);
/* UIDs in [first, last] with modseq > since, ascending, from the modseq
 * index.  1 (nothing in *uids_r) when more than limit entries would have
 * to be looked at: scanning the records of the range is cheaper then. */
int md_modseq_uids(struct md_txn *t, uint32_t user, uint32_t mbox,
		   uint32_t first, uint32_t last, uint64_t since, size_t limit,
		   uint32_t **uids_r, size_t *n_r);
/* md_msgs.c: a message record as struct md_msg (what: MD_READ_*) */
enum md_result md_msg_fill(struct md_mailbox *mb, struct md_txn *t,
			   const char *dir, const struct md_msg_rec *rec,
			   unsigned what, struct md_msg *msg);

/* ---- files and names (md_files.c) ------------------------------------ */

/* user root directory for an address; MD_BADNAME if unusable */
enum md_result md_user_root(const struct md_store *store, const char *address,
			    char *norm, size_t normlen, char *root, size_t rootlen);
/* "INBOX" -> "", "a/b" -> ".a.b"; the name must be valid. */
int md_mailbox_dir(const char *root, const char *name, char *out, size_t outlen);
/* ".a.b" -> "a/b"; -1 if not a valid folder directory name */
int md_folder_to_name(const char *dirname, char *out, size_t outlen);
/* Canonical form of a valid name (INBOX upper-cased) into out. */
enum md_result md_mailbox_name_norm(const char *name, char *out, size_t outlen);
bool md_name_is_inbox(const char *name);
enum md_result md_keyword_check(const char *kw);

/* The letters of ":2,..." (uppercase into letters_r, a..z into kw bits). */
void md_fname_parse(const char *fname, size_t *baselen_r, uint32_t *letters_r,
		    uint64_t *kw_r);
/* base + ":2," + letters + keyword letters; -1 if too long */
int md_fname_build(const char *base, size_t blen, uint32_t letters,
		   const uint64_t *kw, char *out, size_t outlen);
unsigned md_letters_to_flags(uint32_t letters);
uint32_t md_flags_to_letters(unsigned flags, uint32_t letters);
/* A new unique base name "SECS.MusecPpidQseqRrand.HOST,S=size". */
int md_unique_name(struct md_store *store, uint64_t size, char *out, size_t outlen);
/* A message file another program may change under us (a Maildir file
 * found by the sync, or a file whose metadata must be computed again),
 * read whole with pread rather than mapped: truncating a mapped file
 * would kill the daemon with SIGBUS.  At most MD_FILE_READ_MAX octets. */
#define MD_FILE_READ_MAX (1024ULL * 1024 * 1024) /* message_size_max's ceiling */
/* 0 with a malloc()ed copy of the file's size octets in *buf_r (NULL when
 * size is 0); -1 with errno (EFBIG above the ceiling, ENODATA when the
 * file turned out shorter than size: it changed while read). */
int md_file_read_all(int fd, uint64_t size, void **buf_r);
/* snprintf for paths: 0, or -1 (out emptied) when it does not fit */
int md_pathf(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* path of a message in mailbox directory dir */
int md_msg_path(const char *dir, const struct md_msg_rec *rec, char *out,
		size_t outlen);
/* Make a Maildir (cur, new, tmp; maildirfolder for a folder); whatever it
 * made is fsynced, up to dir's entry in its parent.  0 or -1 (errno). */
int md_maildir_make(const char *dir, bool folder);
int md_fsync_dir(const char *dir);
/* md_dirsync.c: one directory being fsynced for the threads waiting on it
 * (in store->dsyncs, under store->dsync_lock). */
struct md_dsync {
	struct md_dsync *next;
	char *path;
	unsigned users;       /* threads holding the entry */
	bool running;         /* an fsync is in progress */
	uint64_t requested;   /* requests registered: 1, 2, ... */
	uint64_t done;        /* requests <= done: an fsync covering them ended */
	uint64_t ok;          /* requests <= ok: ... and it succeeded */
	int error;            /* errno of the last failed fsync */
	pthread_cond_t cond;
};
/* md_dirsync.c: fsync dir for a file this thread linked into it, sharing
 * the fsync with the other threads that wait for the same directory at
 * the same time.  0, or -1 with errno. */
int md_fsync_dir_shared(struct md_store *store, const char *dir);
/* fsync dir's cur/ and/or new/ (shared) after renames or unlinks there,
 * before the job that records them (never inside it); logs, MD_TEMPFAIL
 * on failure (md_msgs.c) */
enum md_result md_msgs_dirsync(struct md_user *u, const char *dir, bool cur,
			       bool new);
void md_dirsync_init(struct md_store *store);
void md_dirsync_destroy(struct md_store *store);
/* mtime in ns, -1 with errno */
int md_dir_mtime(const char *dir, int64_t *mtime_r);
int64_t md_now_ns(void);
/* rm -r of a directory tree we own (a deleted mailbox) */
int md_remove_tree(const char *path);
/* remove files older than MD_TMP_MAX_AGE from a tmp directory */
void md_tmp_cleanup(const char *dir);
/* Write the folder's dovecot-keywords for indexes < 26. */
int md_dovecot_keywords_write(const char *dir, const struct md_kwtab *tab);

/* The mtime to remember for a directory just scanned: 0 (scan again) when
 * it changed so recently that a change in the same clock tick could follow
 * unnoticed. */
static inline int64_t md_mtime_to_store(int64_t mtime)
{
	return md_now_ns() - mtime > MD_MTIME_DIRTY_NS ? mtime : 0;
}

/* ---- between the other files ---------------------------------------- */

void md_user_seterr(struct md_user *user, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* md_sync.c: reconcile a mailbox with its directories; force skips the
 * mtime check. */
enum md_result md_sync_mailbox(struct md_user *user, uint32_t mbox_id,
			       bool force);
/* md_sync.c: reconcile the folder list with the root directory. */
enum md_result md_sync_folders(struct md_user *user, bool force);
/* md_sync.c: the first indexing of a user's Maildir (create: make it when
 * missing), or a rebuild of the user's index (rebuild). */
enum md_result md_sync_user_index(struct md_store *store, const char *address,
				  const char *root, bool create, bool rebuild,
				  uint32_t *id_r, char *err, size_t errlen);
/* md_sync.c: folder directories of a Maildir++ root as sorted IMAP names
 * (also removes what an unfinished mailbox deletion left) */
int md_sync_list_folders(const char *root, char ***names_r, size_t *n_r);
void md_sync_names_free(char **names, size_t n);
/* ---- Dovecot's files (md_dovecot.c) ---------------------------------- */

struct md_dcmap {
	const char *base;
	size_t blen;
	uint32_t uid;
	const char *uidl;       /* the "P" field (POP3 UIDL), or NULL; in base's
				 * allocation */
};

#define MD_DCGUID_LEN 32 /* Dovecot's 128-bit GUID in hex */

struct md_dovecot {
	uint32_t uidvalidity, uidnext;
	struct md_dcmap *map;   /* sorted by base name; bases malloc'd */
	size_t n;
	char *kw[26];
	char guid[MD_DCGUID_LEN + 1]; /* v3 header "G<guid>": the mailbox GUID
				       * (its RFC 8474 MAILBOXID), or "" */
};

/* Whether the uidlist's entry for base name base[0..blen) is wanted. */
typedef bool md_dovecot_keep_fn(void *ctx, const char *base, size_t blen);
/* header_only: the first line.  Else the entries that keep (NULL: all)
 * wants, and the keywords.  0, or -1 without a usable dovecot-uidlist. */
int md_dovecot_read(const char *dir, bool header_only, md_dovecot_keep_fn *keep,
		    void *keep_ctx, struct md_dovecot *dc);
void md_dovecot_free(struct md_dovecot *dc);
/* dir's dovecot-keywords into kw (entries NULL on entry; strdup'd
 * names, invalid lines skipped; nothing when there is no such file). */
void md_dovecot_keywords_read(const char *dir, char *kw[26]);
/* The entry of a base name, NULL when not listed */
const struct md_dcmap *md_dovecot_find(const struct md_dovecot *dc,
				       const char *fname, size_t blen);
/* The POP3 UIDL Dovecot gave a listed message: its "P" field, else
 * format (Dovecot's pop3_uidl_format: %u, %v, %f with an optional
 * 0-padded width and x/X for hex) of its UID, the UIDVALIDITY and the base
 * name.  out holds MD_UIDL_MAX + 1; "" when the result is no valid UIDL. */
void md_dovecot_uidl(const struct md_dovecot *dc, const struct md_dcmap *e,
		     const char *format, char *out);
/* md_dovecot_modseq.c: Dovecot's mod-sequences of one mailbox, from
 * doveadm's output the user saved in the Maildir root's
 * MD_DOVECOT_MODSEQ_FILE (the file's comment has the commands). */
#define MD_DOVECOT_MODSEQ_FILE "dovecot-modseq"
/* Where a mailbox imported without that file starts: above any
 * mod-sequence Dovecot plausibly gave (one per change of a mailbox), far
 * below RFC 7162's 2^63 - 1. */
#define MD_DOVECOT_MODSEQ_UNKNOWN (UINT64_C(1) << 40)
struct md_dcms {
	uint32_t uid;
	uint64_t modseq;
};
struct md_dcmodseq {
	uint64_t highest;   /* the mailbox's HIGHESTMODSEQ in Dovecot */
	struct md_dcms *m;  /* sorted by uid */
	size_t n;
};
/* 0 with the mailbox whose Dovecot GUID is guid; -1 when the file or the
 * mailbox is not there. */
int md_dovecot_modseq_read(const char *root, const char *guid, struct md_dcmodseq *ms);
/* A message's mod-sequence, 0 when the file did not list it. */
uint64_t md_dovecot_modseq_of(const struct md_dcmodseq *ms, uint32_t uid);
void md_dovecot_modseq_free(struct md_dcmodseq *ms);
/* UIDVALIDITY and UIDNEXT of a folder's dovecot-uidlist */
int md_sync_dovecot_header(const char *dir, uint32_t *uidvalidity_r,
			   uint32_t *uidnext_r);
/* md_sync.c: compute and pack the metadata of a file's bytes, and its
 * POP3 size (md_pop3_size()) */
enum md_result md_sync_meta(const void *data, size_t len, struct buf *packed,
			    uint64_t *pop3_size_r);
/* md_msgs.c: find the file of a message whose recorded name is gone, by
 * listing dir's new/ and cur/; fills rec->fname/in_new.  1 when gone. */
int md_msg_locate(const char *dir, struct md_msg_rec *rec);
/* md_msgs.c: remove the file of message rec of mailbox directory dir, on
 * the calling thread (never inside a job).  A file renamed meanwhile (a
 * flag change) is found by its base name, rec then naming it; when
 * need_letters is not 0 the file is removed only if its name still
 * carries them (an expunge of \Deleted messages: a concurrent -\Deleted
 * wins).  errno set for MD_UNLINK_FAILED. */
enum md_unlink_result {
	MD_UNLINK_DONE,   /* removed */
	MD_UNLINK_GONE,   /* not there: removed by someone else */
	MD_UNLINK_KEPT,   /* there, but without need_letters: left */
	MD_UNLINK_FAILED, /* unlink failed (EIO, EACCES ...): left */
};
enum md_unlink_result md_msg_unlink(const char *dir, struct md_msg_rec *rec,
				    uint32_t need_letters);
/* md_mailbox.c: the directory of mailbox id (from its record). */
enum md_result md_mbox_dir(struct md_user *user, struct md_txn *t, uint32_t id,
			   struct md_mbox_rec *rec_r, char *dir, size_t dirlen);
/* md_objectid.c: the RFC 8474 EMAILID of a message file name (its base
 * name's); id_r holds MD_OBJECTID_MAX + 1 */
void md_emailid_of(const char *fname, char *id_r);
/* md_objectid.c: append to a copy's new base name the ",E=" field that
 * keeps the EMAILID of the original, src_fname.  -1 (base unchanged)
 * when the name would leave no room for the flags. */
int md_emailid_name(const char *src_fname, char *base, size_t baselen);
/* md_mailbox.c: name normalised into out (MD_MAILBOX_NAME_MAX + 1);
 * the user's error set when invalid */
enum md_result md_mailbox_name_arg(struct md_user *u, const char *name, char *out);
/* md_mailbox.c: ROOT/subscriptions rewritten from the index (logged) */
void md_mailbox_subs_mirror(struct md_user *u);
/* md_rename.c: whether a RENAME in flight (its marker in the index)
 * covers mailbox name (NULL: any); a marker left by a crash (older than
 * MD_RENAME_STALE_SECS) covers nothing and, inside a job with
 * remove_stale, is removed.  The folder sync leaves covered names alone. */
bool md_rename_in_flight(struct md_txn *t, uint32_t user, const char *name,
			 bool remove_stale);
/* md_mailbox.c: status from a record */
void md_status_from_rec(const struct md_mbox_rec *rec, struct md_status *st);

#endif
