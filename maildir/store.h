/* The mail store: a Maildir++ tree per user and one LMDB index for the whole
 * data directory.  SMTP, IMAP, POP3 and the CLI store and read mail only
 * through this header.
 *
 * On disk (DATA_DIR is config data_dir):
 *   DATA_DIR/index/                 the LMDB environment (keys: md_index.c)
 *   DATA_DIR/mail/.tmp/             spool of deliveries being received
 *   DATA_DIR/mail/DOMAIN/LOCAL/     one Maildir++ per user: cur/ new/ tmp/
 *                                   is INBOX; ".Sent", ".a.b" ... folders
 *   .../LOCAL/postern-indexed       marker: this Maildir was indexed by us
 *                                   (dovecot-uidlist is imported only while
 *                                   it is absent; see "Dovecot" below)
 *   .../LOCAL/[.FOLDER/]postern-keywords  keywords beyond the 26 letters a
 *                                   file name holds, per message base
 *                                   name (md_keywords.c): read back when
 *                                   the index is rebuilt
 *   .../LOCAL/[.FOLDER/]postern-mailboxid  the mailbox's RFC 8474
 *                                   MAILBOXID (md_objectid.c)
 *   .../LOCAL/postern-sieve/        Sieve scripts NAME.sieve, the .active
 *                                   symlink and the vacation record ("Sieve
 *                                   scripts" and "Sieve: the active script"
 *                                   below)
 *
 * Threads.  Every function blocks (file I/O, fsync, LMDB) and is safe to
 * call from any thread: the daemon calls them from worker threads, never
 * from the event loop.  One struct md_store per process and data
 * directory; it owns a writer thread that commits the writes of all
 * threads in groups (one fsync for many deliveries; deliveries into one
 * directory share its fsync too).  A struct md_user and the md_mailbox
 * handles opened from it belong to one session: use them from one thread
 * at a time.  Other processes (`postern deliver`, `postern
 * reindex`) may open the same data directory at the same time.  Never use
 * a store after fork(): the child opens its own.
 *
 * Results.  Functions return enum md_result (MD_OK == 0); the detail text
 * of the last failure is md_user_error() / md_delivery_error().
 *
 * Names.  Mailbox names cross this API in IMAP form: modified UTF-7 (RFC
 * 3501 §5.1.3) with '/' as hierarchy separator; "INBOX" in any case is
 * INBOX.  A component may not contain '.', which is Maildir++'s on-disk
 * separator (Dovecot's default layout refuses it too).  Use
 * md_mutf7_from_utf8()/md_mutf7_to_utf8() for IMAP4rev2 UTF-8 names.
 * Addresses are "local@domain", compared without ASCII case; resolving
 * aliases and +tags is the caller's job (auth/).
 *
 * Messages.  Files written by the store always have CRLF line endings, so
 * byte offsets and sizes below are what IMAP sends (RFC 3501 §2.3.1.1 uses
 * CRLF): RFC822.SIZE is the file size and FETCH BODY[...] is a byte range
 * of the file.  A file another program put into the Maildir with bare LF
 * line endings is rewritten with CRLF (same name) when it is indexed.
 * Flags are mirrored into the file name (":2,DFRST", keywords as letters
 * a..z listed in the folder's dovecot-keywords), so mutt and Dovecot see
 * them; a mailbox's 27th and later keywords go to postern-keywords.  Delivered files stay in new/ until their flags first change; then
 * they move to cur/.  \Recent is not kept (IMAP4rev2 dropped it).
 *
 * Outside changes (files added, renamed or deleted by other programs) are
 * noticed by md_mailbox_open(), md_mailbox_sync() and md_mailbox_status(),
 * which compare the directories' mtimes with the index.  A lost or corrupt
 * index is rebuilt from the Maildir with new UIDVALIDITYs (and a warning in
 * the log); the Maildir is never changed to fit the index.
 *
 * Dovecot.  The first time a user's Maildir is indexed (no postern-indexed
 * marker), each folder's dovecot-uidlist and dovecot-keywords are imported:
 * UIDVALIDITY, UIDNEXT, each message's UID and the keyword names survive the
 * migration.  Each message dovecot-uidlist lists also keeps the POP3 UIDL
 * Dovecot gave it (its "P" field, else md_store_options pop3_uidl_format
 * of its UID, the UIDVALIDITY and base name), kept in its index record and
 * given as md_msg.uidl.  md_user_reindex() keeps them (read from the old
 * index before the rebuild), and any rebuild, a lost index too, takes them
 * from dovecot-uidlist again when it is still there.  Later the files are
 * ignored otherwise (they go stale).  CONDSTORE: the messages keep the
 * mod-sequences doveadm exported into the root's dovecot-modseq and each
 * folder continues above Dovecot's HIGHESTMODSEQ (md_dovecot_modseq.c);
 * without that file, above 2^40.  Either way the expunge log starts with
 * a horizon there, so an older client gets the full VANISHED answer.
 *
 * Typical use (all from worker threads; never hold results across a
 * return to the event loop other than as copies):
 *   SMTP DATA:   md_delivery_open(store, size_max, 0) at DATA, then
 *                md_delivery_write() per chunk as it arrives,
 *                md_delivery_commit() with one md_target per local
 *                recipient (create_user = true, quota from auth), 250 only
 *                for targets with MD_OK; md_delivery_free().
 *   IMAP login:  md_user_open(store, canonical_address, MD_USER_CREATE).
 *   SELECT:      md_mailbox_open() + md_mailbox_uids() (sequence map) +
 *                md_mailbox_keywords() (FLAGS / PERMANENTFLAGS).
 *   FETCH:       md_msg_list()/md_msg_get() with MD_READ_META|MD_READ_PATH,
 *                md_msg_envelope()/..., md_msg_section() for BODY[...],
 *                md_msg_open() + pread() for the bytes.
 *   FETCH BINARY[p] / BINARY.SIZE[p] (RFC 3516): md_msg_section() gives
 *                decodable, encoding and decoded_size (BINARY.SIZE, and
 *                NO [UNKNOWN-CTE] / [PARSE] without reading the file);
 *                md_msg_binary() the decoded octets (BINARY.SIZE[] of
 *                the whole message is its length).
 *   SEARCH:      md_msg_list() with MD_READ_META (flags, sizes,
 *                INTERNALDATE, md_msg_sent_date() for the SENT* keys);
 *                for text keys md_msg_text() per message, with
 *                MD_TEXT_HEADERS for FROM/TO/CC/BCC/SUBJECT/HEADER,
 *                MD_TEXT_BODY for BODY, both for TEXT, then
 *                md_text_header_contains() / md_text_body_contains()
 *                and md_text_free().  Evaluate the cheap keys first and
 *                read text only for messages they leave.
 *   SORT/THREAD: md_msg_list() with MD_READ_META: md_msg_envelope()
 *                (subject, addresses, message-id, in-reply-to),
 *                md_msg_sent_date(), md_msg_references(), internal_date,
 *                size; never a file read.  IMAP keeps the keys per
 *                mailbox (valid while its UIDVALIDITY is) and reads only
 *                messages it has not seen; md_mailbox_expunged() since
 *                the view's last announced expunge tells which of its
 *                messages are gone without a read.
 *   FETCH PREVIEW: md_msg_preview() (MD_READ_META); when it is NULL
 *                (indexed before the preview was kept)
 *                md_msg_preview_compute() reads the file (needs
 *                MD_READ_PATH too), or NIL for PREVIEW (LAZY).
 *   STORE, EXPUNGE, COPY/MOVE, APPEND (md_delivery with target.mailbox,
 *                flags, keywords, internal_date; MD_NOMAILBOX -> TRYCREATE).
 *   NOOP/IDLE:   md_mailbox_changes() since the session's view;
 *                md_store_set_change_hook() wakes
 *                IDLE for changes made by this process.
 *   NOTIFY:      md_mailbox_list() + md_mailbox_status() of the watched
 *                mailboxes, compared with the last ones reported (a
 *                RENAME keeps md_status.mailbox_id); md_watch_add_id()
 *                for mailboxes that are not open.
 *   POP3:        md_user_open, md_mailbox_open("INBOX"), md_msg_list() for
 *                pop3_size (LIST, STAT; never a file read) and uidl, else
 *                basename (UIDL), md_msg_open() for RETR/TOP,
 *                md_msg_expunge(uids, n, 0) at QUIT.
 */
#ifndef MAILDIR_STORE_H
#define MAILDIR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

#define MD_ADDRESS_MAX 254       /* RFC 5321 §4.5.3.1.3: 256-octet path, minus <> */
#define MD_LOCALPART_MAX 64      /* RFC 5321 §4.5.3.1.1 */
#define MD_MAILBOX_NAME_MAX 254  /* NAME_MAX minus Maildir++'s leading '.' */
#define MD_KEYWORDS_MAX 256      /* keywords per mailbox (RFC 3501 §2.3.2 sets none) */
#define MD_KEYWORD_LEN_MAX 100   /* octets; an IMAP atom (RFC 3501 §9 flag-keyword) */
#define MD_KW_WORDS (MD_KEYWORDS_MAX / 64)

enum md_result {
	MD_OK = 0,
	MD_TEMPFAIL,   /* I/O error, out of memory: try again later (a full
			* disk while delivering: MD_NOSPACE) */
	MD_NOUSER,     /* no such user (no Maildir, and not asked to create) */
	MD_QUOTA,      /* the user's quota would be exceeded (RFC 9208 OVERQUOTA) */
	MD_NOMAILBOX,  /* no such mailbox (IMAP: [TRYCREATE] / [NONEXISTENT]) */
	MD_EXISTS,     /* mailbox already exists ([ALREADYEXISTS]) */
	MD_BADNAME,    /* invalid mailbox name, address or keyword */
	MD_CORRUPT,    /* the index is damaged: `postern reindex` rebuilds it */
	MD_NOTFOUND,   /* no message with that UID (expunged meanwhile) */
	MD_BADMSG,     /* empty message, or a NUL byte (RFC 5322 §2.1, §3.5) */
	MD_TOOBIG,     /* larger than the size limit given to md_delivery_open */
	MD_DENIED,     /* not allowed: delete INBOX, rename into itself ... */
	MD_LIMIT,      /* too many keywords in a mailbox, or a name too long */
	MD_MODIFIED,   /* md_msg_store(): UNCHANGEDSINCE failed (RFC 7162 §3.1.3) */
	MD_NOSPACE,    /* a delivery found the file system full (ENOSPC, or
			* EDQUOT: the daemon user's disk quota): temporary
			* like MD_TEMPFAIL, but says why (SMTP 452 4.3.1,
			* RFC 3463 "mail system full"); nothing was stored.
			* Only md_delivery_* give it; added last */
};

/* "OK", "TEMPFAIL", ... for logs. */
const char *md_result_name(enum md_result result);

/* ---- the store ---------------------------------------------------- */

struct md_store;

#define MD_EXPUNGE_LOG_MAX_DEFAULT 10000 /* entries per mailbox */

struct md_store_options {
	uint64_t map_size;   /* LMDB map size to start with; 0: default (16 GiB).
			      * It doubles when full. */
	unsigned max_readers;/* 0: default (512) */
	const char *pop3_uidl_format; /* Dovecot's pop3_uidl_format, applied to
				       * the messages imported from a Dovecot
				       * Maildir (config pop3_uidl_format);
				       * NULL: Dovecot's default "%08Xu%08Xv" */
	size_t expunge_log_max; /* expunges remembered per mailbox for QRESYNC
				 * (RFC 7162 §3.2.5.2; config
				 * imap_expunge_log_max); 0: default
				 * (MD_EXPUNGE_LOG_MAX_DEFAULT) */
	unsigned expunge_log_age; /* seconds: older entries beyond the newest
				   * expunge_log_max are kept while younger
				   * than this (config imap_expunge_log_age);
				   * 0: count alone decides */
};

/* Open (creating what is missing) the store of data_dir.  opts may be NULL.
 * A corrupt index environment is moved aside to index.corrupt-TIME and a
 * new one created (warning logged).  -1 style: MD_TEMPFAIL with err set. */
enum md_result md_store_open(const char *data_dir,
			     const struct md_store_options *opts,
			     struct md_store **store_r, char *err, size_t errlen);
/* Waits for queued writes, stops the writer thread, closes the index. */
void md_store_close(struct md_store *store);

/* Called on the store's writer thread after each commit, once per mailbox
 * changed by this process (user_id/mailbox_id as in md_mailbox_ids()).
 * A commit that changed more mailboxes than it lists one by one calls it
 * once with user_id 0 and mailbox_id 0 (no user or mailbox has id 0):
 * "any mailbox may have changed", so no wake-up is ever dropped.
 * Keep it short and thread-safe: e.g. event_active() to wake IDLE sessions.
 * Changes by other processes are not reported: md_watch_* below. */
typedef void md_change_fn(void *ctx, uint32_t user_id, uint32_t mailbox_id);
void md_store_set_change_hook(struct md_store *store, md_change_fn *fn, void *ctx);

/* Watching selected mailboxes for changes by anyone (IDLE): this process's
 * deliveries, `postern deliver`, mutt or Dovecot renaming files in cur/,
 * files dropped into new/ by other programs.  One inotify instance per
 * process (md_watch_new(); NULL when the kernel has none: poll instead);
 * md_watch_add() counts, so sessions of one mailbox share its watches, and
 * each add needs one md_watch_remove().  MD_LIMIT when the system's
 * inotify watch limit is reached: poll that mailbox.  Put md_watch_fd() in
 * the event loop; when it is readable, md_watch_read() calls fn (on the
 * calling thread, without locks held) once per changed mailbox (0, 0
 * when events were lost: every mailbox).  An event only says "look":
 * md_mailbox_sync() tells what changed. */
struct md_watch;
struct md_user;
struct md_mailbox;
struct md_watch *md_watch_new(void);
void md_watch_free(struct md_watch *w);
int md_watch_fd(const struct md_watch *w);
enum md_result md_watch_add(struct md_watch *w, struct md_mailbox *mb);
void md_watch_remove(struct md_watch *w, struct md_mailbox *mb);
/* The same for a mailbox that is not open (IMAP NOTIFY watches mailboxes
 * other than the selected one): mailbox_id from md_status.mailbox_id. */
enum md_result md_watch_add_id(struct md_watch *w, struct md_user *user, uint32_t mailbox_id);
void md_watch_remove_id(struct md_watch *w, uint32_t user_id, uint32_t mailbox_id);
int md_watch_read(struct md_watch *w, md_change_fn *fn, void *ctx);

struct md_store_stats {
	uint64_t commits;   /* LMDB write transactions committed */
	uint64_t jobs;      /* write requests they carried */
	uint64_t map_grows; /* times the map was doubled */
	uint64_t dir_syncs; /* directory fsyncs made before indexing files
			     * (delivered, copied, or found by a sync; added
			     * field): concurrent deliveries into one mailbox
			     * share one, so under load it stays well below
			     * the number of deliveries */
};
void md_store_get_stats(struct md_store *store, struct md_store_stats *stats_r);

/* Periodic upkeep (the daemon every few minutes): clears reader slots of
 * dead processes (mdb_reader_check) and removes spool files older than
 * 36 hours. */
void md_store_maintenance(struct md_store *store);

/* ---- users -------------------------------------------------------- */

struct md_user;

#define MD_USER_CREATE 0x1 /* create the Maildir (with the default
			    * mailboxes) when it does not exist yet */

/* Open a user's store.  The first open of a Maildir indexes its folders
 * (messages are indexed when a mailbox is opened).  A new user gets INBOX,
 * Sent, Drafts, Trash, Junk and Archive (RFC 6154 special-use), subscribed.
 * MD_NOUSER when the Maildir does not exist and flags lack MD_USER_CREATE;
 * MD_BADNAME for an address that cannot be a directory name. */
enum md_result md_user_open(struct md_store *store, const char *address,
			    unsigned flags, struct md_user **user_r);
void md_user_close(struct md_user *user);
/* Detail of the last failure on this user or its mailboxes ("" if none). */
const char *md_user_error(const struct md_user *user);
uint32_t md_user_id(const struct md_user *user);
/* Bytes and messages counted against the quota (RFC 9208 STORAGE, MESSAGE). */
enum md_result md_user_usage(struct md_user *user, uint64_t *bytes_r,
			     uint64_t *messages_r);

/* Rebuild a user's index from the Maildir: every mailbox gets a new
 * UIDVALIDITY (unless this is the first indexing of a Dovecot Maildir,
 * whose UIDs are imported); POP3 UIDLs imported from Dovecot stay.
 * Sessions holding its mailboxes open get MD_NOMAILBOX afterwards.  Used
 * by `postern reindex`. */
enum md_result md_user_reindex(struct md_store *store, const char *address,
			       char *err, size_t errlen);

/* ---- mailboxes ---------------------------------------------------- */

/* RFC 6154 special-use attributes */
#define MD_SPECIAL_SENT    0x01
#define MD_SPECIAL_DRAFTS  0x02
#define MD_SPECIAL_TRASH   0x04
#define MD_SPECIAL_JUNK    0x08
#define MD_SPECIAL_ARCHIVE 0x10
#define MD_SPECIAL_ALL     0x1f

struct md_mailbox_info {
	char name[MD_MAILBOX_NAME_MAX + 1]; /* IMAP form */
	unsigned special_use;  /* MD_SPECIAL_* */
	bool exists;           /* false: only subscribed (RFC 3501 §6.3.6 allows
				* that), or a parent that is no mailbox itself
				* (has_children then): IMAP \NonExistent or
				* \Noselect */
	bool subscribed;
	bool has_children;     /* RFC 3348 \HasChildren / \HasNoChildren */
};

/* Every mailbox, subscription and implied parent, sorted by name (bytes);
 * free(*list_r). */
enum md_result md_mailbox_list(struct md_user *user,
			       struct md_mailbox_info **list_r, size_t *n_r);
/* MD_EXISTS, MD_BADNAME.  Parents are not created (Maildir++ does not need
 * them; LIST shows them as nonexistent parents). */
enum md_result md_mailbox_create(struct md_user *user, const char *name,
				 unsigned special_use);
/* Deletes the mailbox and its messages (not its children, not its
 * subscription: RFC 3501 §6.3.4, §6.3.9).  MD_DENIED for INBOX. */
enum md_result md_mailbox_delete(struct md_user *user, const char *name);
/* Renames the mailbox and all its children ("a" -> "b" moves "a/x" to
 * "b/x"); UIDVALIDITY and UIDs stay.  Subscriptions follow.  Renaming INBOX
 * moves its messages to a new mailbox and leaves INBOX empty (RFC 3501
 * §6.3.5).  MD_EXISTS when the new name (or a child's) is taken, MD_DENIED
 * for a rename into itself or to INBOX. */
enum md_result md_mailbox_rename(struct md_user *user, const char *from,
				 const char *to);
/* The name need not exist (RFC 3501 §6.3.6); it must be valid. */
enum md_result md_mailbox_subscribe(struct md_user *user, const char *name,
				    bool subscribe);
/* Give or take special-use attributes (RFC 6154 §5 CREATE-SPECIAL-USE). */
enum md_result md_mailbox_set_special(struct md_user *user, const char *name,
				      unsigned special_use);

struct md_status {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq; /* RFC 7162; 1 for an empty new mailbox */
	uint32_t messages;
	uint32_t unseen;        /* messages without \Seen */
	uint32_t deleted;       /* messages with \Deleted (RFC 9051 STATUS DELETED) */
	uint64_t size;          /* sum of RFC822.SIZE (RFC 8438 STATUS SIZE) */
	unsigned special_use;
	uint32_t n_keywords;    /* highest keyword index in use + 1 */
	uint32_t mailbox_id;    /* as md_mailbox_ids(); stays across a RENAME
				 * (IMAP NOTIFY tells a rename from a delete
				 * and a create by it; added field) */
};

/* STATUS: picks up outside changes first. */
enum md_result md_mailbox_status(struct md_user *user, const char *name,
				 struct md_status *status_r);

/* Octets of the messages with \Deleted (RFC 9208 §4.2 STATUS
 * DELETED-STORAGE); reads every record of the mailbox. */
enum md_result md_mailbox_deleted_size(struct md_user *user, const char *name,
				       uint64_t *bytes_r);

/* ---- METADATA (RFC 5464) ----------------------------------------- */

/* Server entries (mailbox "") and mailbox entries of one user, kept in
 * ROOT/postern-metadata (format: md_metadata.c).  Names are entry names
 * ("/private/comment"), lower-case; values are octets.  A mailbox's
 * entries follow md_mailbox_rename() and go with md_mailbox_delete(). */
#define MD_METADATA_VALUE_MAX (16 * 1024) /* octets a value (RFC 5464 §4.3 MAXSIZE);
					   * below IMAP_LITERAL_MAX, so that a
					   * client hears MAXSIZE, not TOOBIG */
#define MD_METADATA_ENTRIES_MAX 100       /* entries per mailbox, and of the server
					   * (RFC 5464 §4.3 TOOMANY) */
#define MD_METADATA_NAME_MAX 256          /* octets of an entry name (RFC 5464 sets none) */

struct md_metadata {
	char *mailbox;    /* IMAP form, "" for the server */
	char *name;       /* NUL-terminated */
	char *value;      /* value_len octets (+ NUL); NULL in a change: delete */
	size_t value_len;
};

/* Every entry of mailbox ("" for the server), in the order they were
 * first set.  md_metadata_free(*list_r, *n_r). */
enum md_result md_metadata_get(struct md_user *user, const char *mailbox,
			       struct md_metadata **list_r, size_t *n_r);
/* Set (value) or remove (value NULL) entries of mailbox, all or nothing,
 * durable when MD_OK.  MD_TOOBIG: a value above MD_METADATA_VALUE_MAX;
 * MD_LIMIT: more than MD_METADATA_ENTRIES_MAX entries would result.  The
 * caller checks the names (syntax) and that the mailbox exists. */
enum md_result md_metadata_set(struct md_user *user, const char *mailbox,
			       const struct md_metadata *changes, size_t n);
void md_metadata_free(struct md_metadata *list, size_t n);

/* ---- an open (selected) mailbox ----------------------------------- */

struct md_mailbox;

/* SELECT/EXAMINE: picks up outside changes, returns the status.  The handle
 * keeps working across a RENAME; once the mailbox is deleted, every call
 * gives MD_NOMAILBOX.  status_r may be NULL. */
enum md_result md_mailbox_open(struct md_user *user, const char *name,
			       struct md_mailbox **mb_r, struct md_status *status_r);
void md_mailbox_close(struct md_mailbox *mb);
void md_mailbox_ids(const struct md_mailbox *mb, uint32_t *user_id_r,
		    uint32_t *mailbox_id_r);

/* NOOP/CHECK/IDLE poll: pick up outside changes and return the status.
 * An IMAP session learns what changed since its view with
 * md_mailbox_changes() below, which reads it all at once. */
enum md_result md_mailbox_sync(struct md_mailbox *mb, struct md_status *status_r);

/* All UIDs in ascending order: the session's sequence number map.
 * free(*uids_r). */
enum md_result md_mailbox_uids(struct md_mailbox *mb, uint32_t **uids_r,
			       size_t *n_r);
/* UIDs expunged with a mod-sequence > since (QRESYNC VANISHED, RFC 7162
 * §3.2.10), ascending.  free(*uids_r).  The expunge log keeps the newest
 * md_store_options.expunge_log_max entries per mailbox: *pruned_r (may
 * be NULL) is set when expunges after since were forgotten, and the list
 * is then incomplete: every UID the caller knows that md_mailbox_uids()
 * no longer has is gone. */
enum md_result md_mailbox_expunged(struct md_mailbox *mb, uint64_t since,
				   uint32_t **uids_r, size_t *n_r, bool *pruned_r);

/* What changed since a session's view, read in one index transaction, so
 * the parts agree with each other and with status (after picking up
 * outside changes, as md_mailbox_sync()). */
struct md_changes {
	struct md_status status;
	struct md_msg *msgs;     /* UID, flags, keywords, modseq (no path, no
				  * meta), ascending: messages below uidnext
				  * with a mod-sequence > modseq, then every
				  * message from uidnext on */
	size_t n_msgs;
	uint32_t *expunged;      /* expunged with a mod-sequence > xmodseq */
	size_t n_expunged;
	bool expunged_pruned;    /* the expunge log no longer reaches back to
				  * xmodseq: uids then holds every UID that
				  * exists (the caller's others are gone) */
	uint32_t *uids;          /* only when expunged_pruned */
	size_t n_uids;
	char **keywords;         /* as md_mailbox_keywords() */
	size_t n_keywords;
};
/* xmodseq UINT64_MAX: expunges are not wanted now.  md_changes_free(). */
enum md_result md_mailbox_changes(struct md_mailbox *mb, uint32_t uidnext,
				  uint64_t modseq, uint64_t xmodseq,
				  struct md_changes *changes_r);
void md_changes_free(struct md_changes *changes);
/* The keyword names: (*names_r)[i] is the keyword of bit i of
 * md_msg.keywords, NULL for an unused index.  md_mailbox_keywords_free(). */
enum md_result md_mailbox_keywords(struct md_mailbox *mb, char ***names_r,
				   size_t *n_r);
void md_mailbox_keywords_free(char **names, size_t n);

/* ---- object identifiers (RFC 8474) -------------------------------- */

#define MD_OBJECTID_MAX 255 /* RFC 8474 §4: objectid = 1*255(ALPHA / DIGIT / "_" / "-") */

/* MAILBOXID (STATUS, LIST RETURN (STATUS)): the mailbox's id into id_r
 * (MD_OBJECTID_MAX + 1 octets), made at the first ask.  It stays across
 * RENAME and `postern reindex`; a folder migrated from Dovecot keeps
 * Dovecot's mailbox GUID (md_objectid.c).  MD_NOMAILBOX, MD_TEMPFAIL. */
enum md_result md_mailbox_objectid(struct md_user *user, const char *name,
				   char *id_r);
/* The same for an open mailbox (SELECT / EXAMINE). */
enum md_result md_mailbox_open_objectid(struct md_mailbox *mb, char *id_r);

/* ---- messages ----------------------------------------------------- */

/* IMAP system flags (RFC 3501 §2.3.2) */
#define MD_FLAG_ANSWERED 0x01 /* Maildir R */
#define MD_FLAG_FLAGGED  0x02 /* F */
#define MD_FLAG_DELETED  0x04 /* T */
#define MD_FLAG_SEEN     0x08 /* S */
#define MD_FLAG_DRAFT    0x10 /* D */
#define MD_FLAG_ALL      0x1f

struct md_meta; /* opaque: use the md_msg_* accessors */

struct md_msg {
	uint32_t uid;
	unsigned flags;                  /* MD_FLAG_* */
	uint64_t keywords[MD_KW_WORDS];  /* bit i: keyword i of md_mailbox_keywords() */
	uint64_t modseq;                 /* RFC 7162 MODSEQ */
	uint64_t size;                   /* RFC822.SIZE = file size */
	uint64_t pop3_size;              /* octets POP3 RETR sends (md_pop3_size()
					  * of the file), computed at delivery;
					  * 0 when not known (a record written
					  * before the index kept it): read the
					  * file to find it */
	int64_t internal_date;           /* Unix time (INTERNALDATE) */
	int64_t save_date;               /* RFC 8514 SAVEDATE */
	char *path;                      /* MD_READ_PATH: the file (may move:
					  * open it with md_msg_open()) */
	char *basename;                  /* MD_READ_PATH: the Maildir unique
					  * name, stable across flag changes
					  * (POP3 UIDL, RFC 1939 §7) */
	char *uidl;                      /* MD_READ_PATH: the POP3 UIDL the
					  * message had in Dovecot (imported,
					  * valid per RFC 1939 §7), or NULL:
					  * use basename */
	struct md_meta *meta;            /* MD_READ_META */
};

#define MD_READ_PATH 0x1
#define MD_READ_META 0x2

/* One message.  MD_NOTFOUND when the UID does not exist. */
enum md_result md_msg_get(struct md_mailbox *mb, uint32_t uid, unsigned what,
			  struct md_msg *msg_r);
/* Messages with uid_first <= UID <= uid_last and, when changedsince > 0,
 * modseq > changedsince (RFC 7162 CHANGEDSINCE), ascending by UID.
 * md_msg_list_free().  Memory grows with the range (a few KB a message
 * with MD_READ_META): a FETCH of 1:* reads in slices of a few hundred. */
enum md_result md_msg_list(struct md_mailbox *mb, uint32_t uid_first,
			   uint32_t uid_last, uint64_t changedsince,
			   unsigned what, struct md_msg **msgs_r, size_t *n_r);
/* The UIDs in [uid_first, uid_last] with a mod-sequence > changedsince,
 * ascending, from the modseq index alone (no message record is read):
 * cheap when few changed (a client's CHANGEDSINCE, RFC 7162 §3.1.4.1).
 * MD_LIMIT (nothing returned) when more than limit changes of the mailbox
 * would have to be looked at: md_msg_list() in slices is cheaper then.
 * free(*uids_r). */
enum md_result md_msg_changed(struct md_mailbox *mb, uint32_t uid_first,
			      uint32_t uid_last, uint64_t changedsince,
			      size_t limit, uint32_t **uids_r, size_t *n_r);
void md_msg_clear(struct md_msg *msg);
void md_msg_list_free(struct md_msg *msgs, size_t n);

/* What a POP3 RETR sends for a message of these bytes, without the final
 * ".CRLF" (RFC 1939 §3 and §11: a line beginning with '.' gets one more;
 * a bare LF goes out as CRLF; an unterminated last line is completed
 * with CRLF).  LIST and STAT report it.  The store computes it once at
 * delivery (struct md_msg pop3_size); this is for messages indexed
 * before that. */
uint64_t md_pop3_size(const void *data, size_t len);

/* Open the message file read-only (stream it with pread; never read a big
 * message whole).  Follows a rename by another program or session (updates
 * msg->path).  MD_NOTFOUND when the file is gone. */
enum md_result md_msg_open(struct md_mailbox *mb, struct md_msg *msg, int *fd_r);

/* RFC 8474 EMAILID (needs MD_READ_PATH): derived from the Maildir base
 * name, the same for a message and its COPY / MOVE copies (md_objectid.c).
 * id_r holds MD_OBJECTID_MAX + 1 octets.  (THREADID is not kept: NIL.) */
void md_msg_emailid(const struct md_msg *msg, char *id_r);

/* Metadata computed at delivery (needs MD_READ_META).  Strings are exactly
 * what follows the FETCH item name, "(" ... ")", not NUL-terminated. */
const char *md_msg_envelope(const struct md_msg *msg, size_t *len_r);
const char *md_msg_body(const struct md_msg *msg, size_t *len_r);
const char *md_msg_bodystructure(const struct md_msg *msg, size_t *len_r);
/* The Date: header as Unix time, 0 when absent or invalid (SENTBEFORE ...) */
int64_t md_msg_sent_date(const struct md_msg *msg);
/* The References: header (THREAD=REFERENCES, RFC 5256 §2.2), unfolded, on
 * one line, at most 16 KiB (its tail); NULL when the message has none, or
 * when its metadata predates this field (`postern reindex` fills it).
 * NUL-terminated. */
const char *md_msg_references(const struct md_msg *msg, size_t *len_r);
struct buf; /* util.h */
/* The RFC 8970 preview computed at delivery: UTF-8, whitespace collapsed,
 * at most 256 characters, "" when the message has no text part; NULL when
 * its metadata predates this field (then md_msg_preview_compute() reads
 * it from the file; `postern reindex` stores it).  NUL-terminated. */
const char *md_msg_preview(const struct md_msg *msg, size_t *len_r);
/* The same preview computed now from the message file (needs
 * MD_READ_META), appended to out. */
enum md_result md_msg_preview_compute(struct md_mailbox *mb,
				      struct md_msg *msg, struct buf *out);
/* A header value (unstructured text, or a display name) with its RFC 2047
 * encoded words decoded to UTF-8, as SEARCH decodes them but without case
 * folding (SORT SUBJECT, DISPLAYFROM: RFC 5256 §2.1, RFC 5957).  *out_r
 * is malloc'd and NUL-terminated (free() it), *len_r octets without the
 * NUL; 0, or -1 when memory runs out. */
int md_header_utf8(const char *s, size_t len, char **out_r, size_t *len_r);
/* RFC 5051 i;unicode-casemap of UTF-8 text, as SEARCH matches it and
 * SORT/THREAD collate it (RFC 5256 §5): each character titlecased, then
 * NFKD (md_text.c's tables, all of Unicode), repeated to a fixed point
 * as Dovecot does; octets that are not UTF-8 are kept.  One liberty: the
 * ASCII letters of the result are in lower case (no other lower-case
 * ASCII letter occurs in it), which changes no match; for RFC 5051's
 * octet order, turn them to upper case.  Appends to out (what exceeds
 * out's cap is dropped); idempotent; -1 only when memory runs out. */
int md_text_casefold(const char *s, size_t n, struct buf *out);

enum md_transfer_encoding {
	MD_TE_7BIT, MD_TE_8BIT, MD_TE_BINARY, MD_TE_BASE64, MD_TE_QP,
	MD_TE_UNKNOWN, /* BINARY answers NO [UNKNOWN-CTE] (RFC 3516 §4.3) */
};

struct md_section {
	uint64_t offset;       /* byte range in the file */
	uint64_t length;
	/* the MIME part the range belongs to (for BINARY, RFC 3516): */
	enum md_transfer_encoding encoding;
	bool decodable;        /* false: BINARY gives NO [PARSE], or NO
				* [UNKNOWN-CTE] when encoding is
				* MD_TE_UNKNOWN */
	uint64_t decoded_size; /* BINARY.SIZE when decodable (spec "": the
				* body's, see md_msg_binary()) */
	uint64_t body_lines;
};

/* The byte range of an IMAP section spec as inside BODY[...]: "", "HEADER",
 * "TEXT", "1", "1.MIME", "2.1.HEADER", "3.TEXT" (for "x.HEADER.FIELDS
 * (...)" ask for "x.HEADER" and filter the lines).  Returns 0 with the
 * range, 1 when the part does not exist (IMAP sends an empty string), -1
 * when spec is not valid section syntax. */
int md_msg_section(const struct md_msg *msg, const char *spec,
		   struct md_section *section_r);

/* FETCH BINARY[spec] (RFC 3516 §4.2): the section's content with its
 * Content-Transfer-Encoding undone, in a malloc'd buffer (*data_r, free()
 * it; NUL-terminated for convenience, *len_r octets without the NUL).
 * spec holds part numbers only ("", "1", "2.1"; MD_BADNAME otherwise).
 * A leaf part is decoded (base64, quoted-printable; 7bit/8bit/binary as
 * stored): exactly md_section.decoded_size octets.  A multipart or
 * message/rfc822 part comes as stored, except that base64/QP parts inside
 * are decoded and their Content-Transfer-Encoding field gives way to a
 * "Content-Transfer-Encoding: binary" line after their last field (Dovecot
 * does the same, and md_section.decoded_size counts it): without encoded
 * parts inside that is the stored bytes unchanged.  spec "" is the whole
 * message: the header (its field replaced in the same way when the body
 * itself is encoded), then the body; its length is not decoded_size
 * (which is the body's), so BINARY.SIZE[] is *len_r.  A part that does
 * not exist gives MD_OK and "" (an empty string, as for BODY[]; Dovecot
 * answers so).
 * MD_BADMSG: not decodable, as md_msg_section() judged it (no file is
 * read then): NO [UNKNOWN-CTE] (RFC 3516 §4.3) when that section's
 * encoding is MD_TE_UNKNOWN, else NO [PARSE].  (No result of its own for
 * UNKNOWN-CTE: callers switch over enum md_result exhaustively.)
 * MD_CORRUPT when the file no longer matches its index entry.
 * Needs MD_READ_META.  Memory: the decoded size (at most twice the
 * message: QP turns bare LF into CRLF) plus a 64 KiB read chunk; the
 * message is at most the configuration's message_size_max.  The file is
 * read with pread (md_msg_open()), never mapped. */
enum md_result md_msg_binary(struct md_mailbox *mb, struct md_msg *msg,
			     const char *spec, char **data_r, size_t *len_r);

/* SEARCH text (RFC 3501 §6.4.4, RFC 9051 §6.4.4): the decoded text of a
 * message, for case-insensitive substring matching.
 *  - Header values are unfolded, RFC 2047 encoded words (B and Q, any
 *    charset iconv knows) decoded to UTF-8; address fields (FROM, TO, CC,
 *    BCC) are matched on that decoded text, display names and addresses
 *    both.  8-bit octets in headers are taken as UTF-8 as they stand.
 *  - The body is the text parts (text/..., and parts without a
 *    Content-Type) in order, decoded from base64/quoted-printable and
 *    converted from their charset= to UTF-8 with iconv (an unknown
 *    charset: the octets as they stand).  Other parts (images,
 *    application/..., a Content-Type that cannot be parsed, an unknown
 *    Content-Transfer-Encoding) are not searched, as Dovecot does not; the
 *    parts of a message/rfc822 part are, like the message's own.
 *  - TEXT's header side (field NULL) is every header block of the
 *    message, encapsulated messages' and MIME parts' included, as
 *    "Name: value" lines: a needle may be a field name ("X-Mailer").
 *    With MD_TEXT_HEADERS alone only the message's own header is read
 *    (the cheap case for FROM/SUBJECT/HEADER); TEXT asks for both.
 *  - Matching is RFC 5051 i;unicode-casemap (I18NLEVEL=1's comparator,
 *    Dovecot's) for all of Unicode: both sides titlecased and decomposed
 *    (NFKD), so "MÜLLER" finds "müller" and "u" finds "ü", as in
 *    Dovecot; our own tables (md_text.c), never the process locale.  An
 *    empty needle matches (a field that exists).
 *  - Limits: MD_TEXT_BODY_MAX octets of body text and MD_TEXT_HEADERS_MAX
 *    of header text per message are searched, the rest is not.  Dovecot
 *    without FTS has no limit; these keep one SEARCH's memory bounded
 *    while covering the text of practically all real mail (attachments
 *    do not count, and a text part of megabytes is a log or a dump).
 * Needs MD_READ_META; what: MD_TEXT_HEADERS and/or MD_TEXT_BODY.  Reads
 * only the header blocks and the text parts (pread), never attachments.
 * Memory per call: the limits above, about three times while decoding. */
#define MD_TEXT_HEADERS 0x1
#define MD_TEXT_BODY    0x2
#define MD_TEXT_BODY_MAX (4 * 1024 * 1024)
#define MD_TEXT_HEADERS_MAX (1024 * 1024)

struct md_text; /* opaque */

enum md_result md_msg_text(struct md_mailbox *mb, struct md_msg *msg,
			   unsigned what, struct md_text **text_r);
/* field NULL: any header of the message (TEXT); else a field name,
 * case-insensitive, of the message's own header (FROM, TO, CC, BCC,
 * SUBJECT, HEADER name).  Needs MD_TEXT_HEADERS. */
bool md_text_header_contains(const struct md_text *t, const char *field,
			     const char *needle_utf8);
/* BODY; TEXT is header_contains(t, NULL, s) || body_contains(t, s).
 * Needs MD_TEXT_BODY. */
bool md_text_body_contains(const struct md_text *t, const char *needle_utf8);
void md_text_free(struct md_text *t);

enum md_flags_op {
	MD_FLAGS_SET,    /* STORE FLAGS */
	MD_FLAGS_ADD,    /* +FLAGS */
	MD_FLAGS_REMOVE, /* -FLAGS */
};

struct md_flags_result {
	uint32_t uid;
	enum md_result result; /* MD_OK, MD_NOTFOUND, MD_MODIFIED */
	unsigned flags;        /* the message's flags and keywords afterwards */
	uint64_t keywords[MD_KW_WORDS];
	uint64_t modseq;       /* new mod-sequence (old one if nothing changed) */
};

/* STORE: change flags and keywords of n messages: the files are renamed,
 * then one transaction records them, and the changed messages get one new
 * mod-sequence (a message whose record another session changed meanwhile
 * is done again in a later one, with a later mod-sequence; so is each
 * further batch of 1,024 messages).  unchangedsince > 0 applies
 * RFC 7162 UNCHANGEDSINCE per message (MD_MODIFIED).  Keywords are created
 * as needed (MD_LIMIT beyond MD_KEYWORDS_MAX, MD_BADNAME for a non-atom).
 * results_r holds n entries (caller's memory).  The call returns MD_OK
 * even when single messages were not found or modified. */
enum md_result md_msg_store(struct md_mailbox *mb, const uint32_t *uids,
			    size_t n, enum md_flags_op op, unsigned flags,
			    const char *const *keywords, size_t n_keywords,
			    uint64_t unchangedsince,
			    struct md_flags_result *results_r);

#define MD_EXPUNGE_DELETED_ONLY 0x1 /* only messages with \Deleted (IMAP) */

/* EXPUNGE (uids NULL: every \Deleted message) / UID EXPUNGE (RFC 4315) /
 * POP3 QUIT (uids given, flags 0).  Files are removed; each expunged UID is
 * remembered with its mod-sequence for QRESYNC.  *expunged_r (may be NULL)
 * receives the expunged UIDs ascending; free() it. */
enum md_result md_msg_expunge(struct md_mailbox *mb, const uint32_t *uids,
			      size_t n, unsigned flags, uint32_t **expunged_r,
			      size_t *n_expunged_r);
/* Messages the last md_msg_expunge() on mb could not remove (the unlink
 * failed, not ENOENT: logged): they stay, in the index and the Maildir, for
 * a later retry; POP3 QUIT answers -ERR for them (RFC 1939 §6).  The
 * removed ones are durable: their directories were fsynced before the
 * index commit (a failed fsync fails the whole call, MD_TEMPFAIL). */
size_t md_msg_expunge_kept(const struct md_mailbox *mb);

/* COPY / MOVE (RFC 6851) to another mailbox of the same user.  dest_uids_r
 * (n entries, caller's memory, may be NULL) gets each message's new UID, 0
 * for a UID that does not exist (COPYUID, RFC 4315 §3).  quota_bytes and
 * quota_messages (the user's octets and messages, RFC 9208 STORAGE and
 * MESSAGE) 0 are unlimited; a COPY that would exceed either copies
 * nothing (MD_QUOTA). */
enum md_result md_msg_copy(struct md_mailbox *src, const uint32_t *uids,
			   size_t n, const char *dest_mailbox, bool move,
			   uint64_t quota_bytes, uint64_t quota_messages,
			   uint32_t *dest_uidvalidity_r,
			   uint32_t *dest_uids_r);

/* ---- delivery (SMTP, IMAP APPEND, postern deliver) ---------------- */

struct md_delivery;

#define MD_DELIVERY_RAW 0x1 /* store bytes exactly: no LF -> CRLF, NUL
			     * allowed (RFC 3516 APPEND literal8) */

/* Start receiving one message.  Bytes go to a spool file, never to memory.
 * size_max 0: unlimited, else MD_TOOBIG once exceeded. */
enum md_result md_delivery_open(struct md_store *store, uint64_t size_max,
				unsigned flags, struct md_delivery **d_r);
/* Append bytes (as they arrive: SMTP DATA after dot-unstuffing, an APPEND
 * literal, stdin).  Bare LF becomes CRLF unless MD_DELIVERY_RAW.  After a
 * failure later calls are no-ops and commit reports the failure. */
enum md_result md_delivery_write(struct md_delivery *d, const void *data,
				 size_t len);
/* Append everything readable from fd until EOF. */
enum md_result md_delivery_write_fd(struct md_delivery *d, int fd);
/* Octets stored so far (after line-ending conversion). */
uint64_t md_delivery_size(const struct md_delivery *d);

struct md_target {
	/* in */
	const char *address;          /* the owner: canonical "local@domain" */
	const char *mailbox;          /* NULL: INBOX */
	uint64_t quota_bytes;         /* 0: unlimited */
	uint64_t quota_messages;      /* the user's messages; 0: unlimited */
	unsigned flags;               /* MD_FLAG_* to set (APPEND) */
	const char *const *keywords;  /* APPEND keywords, or NULL */
	size_t n_keywords;
	int64_t internal_date;        /* 0: now */
	bool create_user;             /* create the Maildir if missing (SMTP,
				       * deliver: the caller knows the user) */
	/* out */
	enum md_result result;        /* MD_OK when stored and durable */
	uint32_t uidvalidity;         /* APPENDUID (RFC 4315 §3) */
	uint32_t uid;
};

/* Store the message for every target: the file is made durable (fsync of
 * file and directory) and indexed in a group commit before this returns,
 * so MD_OK may be acknowledged (SMTP 250, APPEND OK, exit 0).  Each target
 * gets its own result (one may be over quota while others succeed); same
 * file system: hard links of one file.  Returns MD_OK when every target
 * was tried (look at each result), else the failure common to all
 * (MD_BADMSG, MD_TOOBIG, MD_TEMPFAIL), copied into every result.
 * Then md_delivery_free(). */
enum md_result md_delivery_commit(struct md_delivery *d,
				  struct md_target *targets, size_t n);
/* A new read-only descriptor of the message written so far (the buffer
 * flushed), for a filter that reads the message before the commit (Sieve
 * at SMTP delivery); -1 on failure.  The caller closes it. */
int md_delivery_reopen(struct md_delivery *d);
/* Discard (if not committed) and free. */
void md_delivery_free(struct md_delivery *d);
const char *md_delivery_error(const struct md_delivery *d);

/* ---- Sieve scripts (ManageSieve) ---------------------------------- */

/* A user's Sieve scripts (RFC 5228), managed by ManageSieve (RFC 5804).
 * On disk (md_sieve.c documents the file names in full):
 *   ROOT/postern-sieve/NAME.sieve   a script, the client's bytes exactly
 *   ROOT/postern-sieve/.active      symlink to "NAME.sieve" (relative): the
 *                                   active script; no symlink, none active
 * Every change is durable (file, symlink and directory fsynced) before the
 * function returns MD_OK.  Results: MD_BADNAME (name rules below),
 * MD_NOTFOUND (no such script: NONEXISTENT), MD_EXISTS (RENAMESCRIPT to a
 * taken name: ALREADYEXISTS), MD_DENIED (delete the active script:
 * ACTIVE), MD_LIMIT (MD_SIEVE_SCRIPTS_MAX reached: QUOTA/MAXSCRIPTS),
 * MD_TOOBIG (over MD_SIEVE_SIZE_MAX: QUOTA/MAXSIZE), MD_TEMPFAIL and
 * MD_NOSPACE (TRYLATER).
 *   ManageSieve: LISTSCRIPTS md_sieve_list(); GETSCRIPT md_sieve_get();
 *   HAVESPACE md_sieve_have_space(); PUTSCRIPT md_sieve_put() after the
 *   script compiled; SETACTIVE md_sieve_set_active() ("" deactivates);
 *   DELETESCRIPT md_sieve_delete(); RENAMESCRIPT md_sieve_rename() (an
 *   active script stays active under its new name). */
#define MD_SIEVE_DIR "postern-sieve"
#define MD_SIEVE_ACTIVE ".active"
/* RFC 5804 §1.6: names of up to 128 characters must be accepted. */
#define MD_SIEVE_NAME_CHARS_MAX 128
#define MD_SIEVE_NAME_MAX (MD_SIEVE_NAME_CHARS_MAX * 4) /* octets of UTF-8 */
#define MD_SIEVE_SCRIPTS_MAX 32            /* scripts per user (QUOTA/MAXSCRIPTS) */
#define MD_SIEVE_SIZE_MAX (256 * 1024)     /* octets per script (QUOTA/MAXSIZE) */
/* Scripts one listing shows (more only when put there by hand). */
#define MD_SIEVE_LIST_MAX (MD_SIEVE_SCRIPTS_MAX * 4)

struct md_sieve_script {
	char name[MD_SIEVE_NAME_MAX + 1];
	bool active;
};

/* A valid script name: 1..MD_SIEVE_NAME_CHARS_MAX characters of valid
 * UTF-8, none of them a control character (U+0000..001F, U+007F..009F),
 * U+2028, U+2029 or '/', not starting with '.'.  MD_OK or MD_BADNAME. */
enum md_result md_sieve_name_check(const char *name, size_t len);
/* Every script, in directory order; free(*list_r). */
enum md_result md_sieve_list(struct md_user *user, struct md_sieve_script **list_r,
			     size_t *n_r);
/* The script's bytes (malloc'd, NUL-terminated beyond len; free()). */
enum md_result md_sieve_get(struct md_user *user, const char *name, char **data_r,
			    size_t *len_r);
/* Would a script of len octets named name fit (replacing one of that name
 * does not count as one more)?  MD_OK, MD_LIMIT or MD_TOOBIG. */
enum md_result md_sieve_have_space(struct md_user *user, const char *name, uint64_t len);
/* Store (or replace) a script; the caller has validated it. */
enum md_result md_sieve_put(struct md_user *user, const char *name, const char *data,
			    size_t len);
enum md_result md_sieve_set_active(struct md_user *user, const char *name);
enum md_result md_sieve_delete(struct md_user *user, const char *name);
enum md_result md_sieve_rename(struct md_user *user, const char *from, const char *to);

/* ---- Sieve: the active script ------------------------------------- */

/* Per user, beside the Maildir (ManageSieve writes it, md_sieve.c):
 *   .../LOCAL/postern-sieve/NAME.sieve   the scripts
 *   .../LOCAL/postern-sieve/.active      symlink to "NAME.sieve" (relative):
 *                                        the active one; none: no filter
 *   .../LOCAL/postern-sieve/.vacation    vacation replies sent: one line
 *                                        "EXPIRES HANDLE SENDER" each
 *                                        (RFC 5230 §4.2), md_sieve_active.c */
#define MD_SIEVE_SCRIPT_MAX (1024 * 1024)  /* octets of a script read at delivery */
#define MD_SIEVE_VACATION_MAX 1000         /* senders remembered per user */

/* The active script of address: MD_OK with *text_r NULL when there is none;
 * else the malloc'd text (NUL-terminated) and its name (without .sieve)
 * in name_r.  MD_TOOBIG past MD_SIEVE_SCRIPT_MAX, MD_BADNAME for a link
 * that leaves the directory, MD_TEMPFAIL on I/O errors. */
enum md_result md_sieve_active_read(struct md_store *store, const char *address,
				    char **text_r, size_t *len_r, char *name_r,
				    size_t name_len);
/* RFC 5230 §4.2: may a vacation reply under handle go to sender now?  If
 * none went within its period, records one for days days (durably, so a
 * restart does not send it again) and sets *send_r. */
enum md_result md_sieve_vacation_check(struct md_store *store, const char *address,
				       const char *sender, const char *handle,
				       unsigned days, bool *send_r);

/* ---- names -------------------------------------------------------- */

/* Validate an IMAP mailbox name (rules in the header comment; also no
 * control characters, no '*' or '%', valid modified UTF-7): MD_OK,
 * MD_BADNAME or MD_LIMIT. */
enum md_result md_mailbox_name_check(const char *name);
/* Modified UTF-7 <-> UTF-8 (RFC 3501 §5.1.3).  0, or -1 for invalid input
 * or when out (outlen bytes with NUL) is too small. */
int md_mutf7_to_utf8(const char *in, char *out, size_t outlen);
int md_mutf7_from_utf8(const char *in, char *out, size_t outlen);

/* ---- command line ------------------------------------------------- */

struct md_recipient {
	char address[MD_ADDRESS_MAX + 1]; /* canonical owner address */
	uint64_t quota_bytes;             /* 0: unlimited */
	uint64_t quota_messages;          /* 0: unlimited */
};

#define MD_RESOLVE_MAX 16 /* owners one address may expand to */

/* Map an address to its local owners (alias, +tag, catch-all: auth/).
 * Returns how many were written to owners (<= max), 0 when there is no
 * such user, -1 on a temporary failure. */
typedef int md_resolve_fn(void *ctx, const char *address,
			  struct md_recipient *owners, size_t max);

/* postern deliver [-f SENDER] ADDRESS < message
 * argv holds the arguments after the subcommand name.  Drops a leading
 * mbox "From " line, prepends Return-Path and Delivered-To, and delivers
 * one copy to the INBOX of each owner resolve() names (creating the
 * Maildir if needed; quota from resolve()).  Returns a sysexits code:
 * 0 delivered, 64 usage, 65 (EX_DATAERR) empty message, a NUL byte or
 * larger than message_size_max, 67 (EX_NOUSER) no such user,
 * 73 (EX_CANTCREAT) over quota with cfg->quota_error_permanent,
 * 75 (EX_TEMPFAIL) temporary failure (disk full, over quota by default,
 * resolver failure), 78 (EX_CONFIG) no data_dir.  With several owners the
 * worst result decides (a retry may then repeat the message for the
 * owners that got it). */
int md_cli_deliver(const struct config *cfg, int argc, char **argv,
		   md_resolve_fn *resolve, void *resolve_ctx);

/* A filter between the message and its commit: the owners' Sieve scripts,
 * which maildir may not include (main.c hands SMTP's in). */
struct md_deliver_filter {
	/* in: the n INBOX targets, one per owner.  0 with *out_r the targets
	 * to commit instead (the filter's memory until done; NULL: keep in),
	 * *n_r of them (0: nothing to store, as after discard); 1 when every
	 * owner refuses the message, with the reason (one line) in reason;
	 * -1 on a temporary failure. */
	int (*plan)(void *arg, struct md_store *store, struct md_delivery *d, const char *sender,
		    const struct md_target *in, size_t n, struct md_target **out_r, size_t *n_r,
		    char *reason, size_t reason_len);
	/* After a commit, each target's result set: the filter's own mail
	 * (redirect, vacation) for the owners whose copies were stored. */
	void (*after)(void *arg, const struct md_target *targets, size_t n);
	/* Free what plan made; called once whatever happened. */
	void (*done)(void *arg);
	void *arg;
};

/* md_cli_deliver with filter (NULL: none) choosing the folders, flags and
 * copies.  A refusal by every owner (Sieve reject) exits 77 (EX_NOPERM)
 * with the reason on stderr, as dovecot-lda -e does: the MTA bounces the
 * message with that text.  An owner's refusal among several owners only
 * leaves that owner without a copy (logged). */
int md_cli_deliver_filtered(const struct config *cfg, int argc, char **argv,
			    md_resolve_fn *resolve, void *resolve_ctx,
			    const struct md_deliver_filter *filter);
/* postern reindex ADDRESS (argv as above): md_user_reindex(), then prints
 * "ADDRESS: reindexed, N messages, B bytes".  0, 64 usage, 67 no such
 * Maildir, 75 failure. */
int md_cli_reindex(const struct config *cfg, int argc, char **argv);

#endif
