/* The store handle and users: opening the data directory, a user's first
 * access (which indexes an existing Maildir or creates a new one), errors.
 * Memory: every handle owns its memory and frees it on close. */
#include "md_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

const char *md_result_name(enum md_result result)
{
	static const char *const names[] = {
		[MD_OK] = "OK",             [MD_TEMPFAIL] = "TEMPFAIL",
		[MD_NOUSER] = "NOUSER",     [MD_QUOTA] = "QUOTA",
		[MD_NOMAILBOX] = "NOMAILBOX", [MD_EXISTS] = "EXISTS",
		[MD_BADNAME] = "BADNAME",   [MD_CORRUPT] = "CORRUPT",
		[MD_NOTFOUND] = "NOTFOUND", [MD_BADMSG] = "BADMSG",
		[MD_TOOBIG] = "TOOBIG",     [MD_DENIED] = "DENIED",
		[MD_LIMIT] = "LIMIT",       [MD_MODIFIED] = "MODIFIED",
		[MD_NOSPACE] = "NOSPACE",
	};

	if ((size_t)result < sizeof(names) / sizeof(names[0]) && names[result])
		return names[result];
	return "UNKNOWN";
}

/* The host part of unique names: '/' and ':' cannot appear in a Maildir
 * file name part (cr.yp.to/proto/maildir.html: escape as \057 and \072). */
static void md_store_host(struct md_store *store)
{
	char host[64] = "localhost";
	size_t o = 0;

	if (gethostname(host, sizeof(host)) < 0)
		str_copy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (const char *p = host; *p != '\0' && o + 5 < sizeof(store->host); p++) {
		if (*p == '/' || *p == ':' || *p == ',') {
			o += (size_t)snprintf(store->host + o, sizeof(store->host) - o,
					      "\\%03o", (unsigned char)*p);
		} else {
			store->host[o++] = *p;
		}
	}
	store->host[o] = '\0';
}

/* The store's mutexes made (init) or destroyed */
static void md_store_locks(struct md_store *store, bool init)
{
	pthread_mutex_t *locks[2 + MD_FLAG_LOCKS] = { &store->name_lock, &store->hook_lock };

	for (size_t i = 0; i < MD_FLAG_LOCKS; i++)
		locks[2 + i] = &store->flag_locks[i];
	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++) {
		if (init)
			pthread_mutex_init(locks[i], NULL);
		else
			pthread_mutex_destroy(locks[i]);
	}
}

enum md_result md_store_open(const char *data_dir,
			     const struct md_store_options *opts,
			     struct md_store **store_r, char *err, size_t errlen)
{
	struct md_store *store;

	*store_r = NULL;
	if (data_dir == NULL || data_dir[0] == '\0') {
		snprintf(err, errlen, "no data directory configured");
		return MD_TEMPFAIL;
	}
	store = calloc(1, sizeof(*store));
	if (store == NULL) {
		snprintf(err, errlen, "out of memory");
		return MD_TEMPFAIL;
	}
	if (str_copy(store->data_dir, data_dir, sizeof(store->data_dir)) >=
	    sizeof(store->data_dir) ||
	    (size_t)snprintf(store->mail_dir, sizeof(store->mail_dir), "%s/mail",
			     data_dir) >= sizeof(store->mail_dir) ||
	    (size_t)snprintf(store->spool_dir, sizeof(store->spool_dir), "%s/%s",
			     store->mail_dir, MD_SPOOL_DIR) >= sizeof(store->spool_dir)) {
		snprintf(err, errlen, "%s: path too long", data_dir);
		free(store);
		return MD_TEMPFAIL;
	}
	if (mkdir_p(store->spool_dir, 0700) < 0) {
		snprintf(err, errlen, "%s: %s", store->spool_dir, strerror(errno));
		free(store);
		return MD_TEMPFAIL;
	}
	store->explog_max = opts != NULL && opts->expunge_log_max != 0 ?
			    opts->expunge_log_max : MD_EXPUNGE_LOG_MAX_DEFAULT;
	store->explog_age = opts != NULL ? opts->expunge_log_age : 0;
	str_copy(store->uidl_format, opts != NULL && opts->pop3_uidl_format != NULL ?
		 opts->pop3_uidl_format : "%08Xu%08Xv", sizeof(store->uidl_format));
	md_store_host(store);
	md_store_locks(store, true);
	md_dirsync_init(store);
	if (md_index_open(store, opts, err, errlen) < 0) {
		md_store_locks(store, false);
		md_dirsync_destroy(store);
		free(store);
		return MD_TEMPFAIL;
	}
	md_tmp_cleanup(store->spool_dir);
	*store_r = store;
	return MD_OK;
}

void md_store_close(struct md_store *store)
{
	if (store == NULL)
		return;
	md_index_close(store);
	md_store_locks(store, false);
	md_dirsync_destroy(store);
	free(store);
}

void md_store_set_change_hook(struct md_store *store, md_change_fn *fn, void *ctx)
{
	pthread_mutex_lock(&store->hook_lock);
	store->hook = fn;
	store->hook_ctx = ctx;
	pthread_mutex_unlock(&store->hook_lock);
}

void md_store_get_stats(struct md_store *store, struct md_store_stats *stats_r)
{
	md_index_stats(store, stats_r);
	pthread_mutex_lock(&store->dsync_lock);
	stats_r->dir_syncs = store->dir_syncs;
	pthread_mutex_unlock(&store->dsync_lock);
}

void md_store_maintenance(struct md_store *store)
{
	md_index_reader_check(store);
	md_tmp_cleanup(store->spool_dir);
}

/* ---- users ------------------------------------------------------------ */

void md_user_seterr(struct md_user *user, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(user->error, sizeof(user->error), fmt, ap);
	va_end(ap);
}

const char *md_user_error(const struct md_user *user)
{
	return user->error;
}

uint32_t md_user_id(const struct md_user *user)
{
	return user->id;
}

enum md_result md_user_open(struct md_store *store, const char *address,
			    unsigned flags, struct md_user **user_r)
{
	struct md_user *user;
	struct md_user_rec urec;
	struct md_txn *t;
	struct stat st;
	enum md_result r;
	char err[256] = "";

	*user_r = NULL;
	user = calloc(1, sizeof(*user));
	if (user == NULL)
		return MD_TEMPFAIL;
	user->store = store;
	r = md_user_root(store, address, user->address, sizeof(user->address),
			 user->root, sizeof(user->root));
	if (r != MD_OK)
		goto fail;
	if (stat(user->root, &st) < 0) {
		if (errno != ENOENT || !(flags & MD_USER_CREATE)) {
			r = errno == ENOENT ? MD_NOUSER : MD_TEMPFAIL;
			goto fail;
		}
	}
	if ((r = md_read_begin(store, &t)) != MD_OK)
		goto fail;
	r = md_rec_user_get(t, user->address, &urec);
	md_read_end(t);
	if (r == MD_OK) {
		user->id = urec.id;
		if (stat(user->root, &st) < 0 &&
		    (md_maildir_make(user->root, false) < 0)) {
			r = MD_TEMPFAIL;
			goto fail;
		}
	} else if (r == MD_NOTFOUND) {
		r = md_sync_user_index(store, user->address, user->root,
				       (flags & MD_USER_CREATE) != 0, false,
				       &user->id, err, sizeof(err));
		if (r != MD_OK)
			goto fail;
	} else {
		goto fail;
	}
	/* folders other programs created or removed since the last visit */
	r = md_sync_folders(user, false);
	if (r != MD_OK && r != MD_NOMAILBOX)
		log_warn("store: user=%s folder sync: %s", user->address,
			 md_result_name(r));
	*user_r = user;
	return MD_OK;
fail:
	if (err[0] != '\0')
		log_warn("store: user=%s: %s", address, err);
	free(user);
	return r;
}

void md_user_close(struct md_user *user)
{
	free(user);
}

enum md_result md_user_usage(struct md_user *user, uint64_t *bytes_r,
			     uint64_t *messages_r)
{
	struct md_user_rec urec;
	struct md_txn *t;
	enum md_result r = md_read_begin(user->store, &t);

	if (r != MD_OK)
		return r;
	r = md_rec_user_get(t, user->address, &urec);
	md_read_end(t);
	if (r != MD_OK) {
		md_user_seterr(user, "user index: %s", md_result_name(r));
		return r == MD_NOTFOUND ? MD_NOUSER : r;
	}
	*bytes_r = urec.used_bytes;
	*messages_r = urec.used_messages;
	return MD_OK;
}
