/* Keywords the Maildir file names cannot hold (md_keywords.c).
 *
 * A Maildir file name carries at most 26 keywords (letters a..z of the
 * ":2," suffix, named by the folder's dovecot-keywords); a mailbox may use
 * MD_KEYWORDS_MAX.  The others are kept per message in the folder's
 * postern-keywords file, so that a rebuilt index (`postern reindex`, a
 * lost index) gets them back, as it gets the letters back from the names.
 */
#ifndef MAILDIR_MD_KEYWORDS_H
#define MAILDIR_MD_KEYWORDS_H

#include "md_private.h"

#define MD_XKW_FILE "postern-keywords"
/* Bound on the file (and the memory reading it): about 80,000 messages
 * carrying four extra keywords each.  A STORE that would go beyond it
 * fails with MD_LIMIT ("too many keywords"). */
#define MD_XKW_FILE_MAX (4 * 1024 * 1024)
#define MD_XKW_LETTERS 26 /* keywords a file name holds (a..z) */

/* The extra keywords of one message: bits of md_xkw.names (the file's own
 * numbering, not the mailbox's). */
struct md_xkw_entry {
	char *base;            /* Maildir base name (before ':') */
	uint64_t kw[MD_KW_WORDS];
	bool set;              /* given by md_xkw_set(): never pruned */
};

struct md_xkw {
	char *names[MD_KEYWORDS_MAX];
	size_t n_names;
	struct md_xkw_entry *e; /* sorted by base after md_xkw_read() */
	size_t n, cap;
	bool dirty;             /* changed since read */
	char *letters[MD_XKW_LETTERS]; /* dovecot-keywords, when a sync
					* asked md_xkw_read_sync() */
};

/* Read dir's postern-keywords (missing: empty).  0, or -1 (errno) when it
 * cannot be read; damaged lines are skipped. */
int md_xkw_read(const char *dir, struct md_xkw *x);
void md_xkw_free(struct md_xkw *x);
/* The entry of base[0..blen), or NULL. */
const struct md_xkw_entry *md_xkw_find(const struct md_xkw *x, const char *base,
				       size_t blen);
/* Give base[0..blen) the keywords of kw (the mailbox's numbering, names
 * in tab) that its file name cannot hold (index >= 26); none removes the
 * entry.  0, or -1 (out of memory). */
int md_xkw_set(struct md_xkw *x, const char *base, size_t blen,
	       const uint64_t *kw, const struct md_kwtab *tab);
/* Whether a message with base name base (NUL-terminated) still exists. */
typedef bool md_xkw_live_fn(void *ctx, const char *base);
/* Write the file atomically (temp file, fsync, rename, directory fsync)
 * when x changed, leaving out the entries live (may be NULL) rejects
 * (but those md_xkw_set() gave).
 * MD_OK, MD_LIMIT beyond MD_XKW_FILE_MAX, MD_TEMPFAIL. */
enum md_result md_xkw_write(const char *dir, struct md_xkw *x,
			    md_xkw_live_fn *live, void *live_ctx);
/* Inside a write job: the keyword bits, in mailbox mailbox's numbering, of
 * entry e, creating the keywords it names (at indexes >= 26: a letter
 * means a file name letter).  MD_LIMIT when the mailbox is full. */
enum md_result md_xkw_to_mailbox(struct md_txn *t, uint32_t user,
				 uint32_t mbox, struct md_kwtab *tab,
				 const struct md_xkw *x,
				 const struct md_xkw_entry *e, uint64_t *kw_r);
/* With t a read transaction begun under the folder's lock (see
 * md_xkw_update_file()): record in dir's postern-keywords the keywords
 * beyond the letters of n messages of mailbox mbox, rec(ctx, i) giving the
 * i-th (its fname and kw), and drop the entries of messages the index no
 * longer has.  MD_OK, MD_LIMIT (file full), MD_TEMPFAIL (message in the
 * user's error via the caller). */
typedef const struct md_msg_rec *md_xkw_rec_fn(void *ctx, size_t i);
enum md_result md_xkw_update(struct md_txn *t, uint32_t user, uint32_t mbox,
			     const char *dir, md_xkw_rec_fn *rec, void *ctx,
			     size_t n);
/* md_xkw_update() on the calling thread, never inside a job (the file is
 * written, fsynced and renamed): dir locked (flock, so writers of this
 * process and `postern deliver` take turns), then a read transaction. */
enum md_result md_xkw_update_file(struct md_store *store, uint32_t user,
				  uint32_t mbox, const char *dir,
				  md_xkw_rec_fn *rec, void *ctx, size_t n);
/* After a job created keywords with letters (md_kw_ensure's created):
 * write dir's dovecot-keywords from the index, on the calling thread,
 * under the same lock.  Logs a failure (the file only helps a rebuild and
 * other Maildir programs). */
enum md_result md_kw_file_sync(struct md_store *store, uint32_t user,
			       uint32_t mbox, const char *dir);
/* For a sync that indexes new files: dir's postern-keywords and
 * dovecot-keywords.  0, or -1 (errno). */
int md_xkw_read_sync(const char *dir, struct md_xkw *x);
/* Inside a sync job, for a file being indexed (rec->fname, rec->kw from
 * its letters): the letters' keywords get the names dovecot-keywords
 * gives them where the mailbox has none (a rebuilt index), and rec->kw
 * the keywords postern-keywords lists for the file.  tab is loaded on
 * first need (*loaded); md_kw_free() it after the job. */
enum md_result md_xkw_index_new(struct md_txn *t, uint32_t user, uint32_t mbox,
				struct md_kwtab *tab, bool *loaded,
				const struct md_xkw *x, struct md_msg_rec *rec);
/* Whether kw has keywords a file name cannot hold. */
bool md_xkw_any(const uint64_t *kw);

#endif
