/* The LMDB index: the one file that includes <lmdb.h> (DESIGN.md).
 *
 * One environment for the whole data directory, DATA_DIR/index/, opened
 * with MDB_NOTLS so reader slots are not pinned to threads (LIBRARIES.md
 * §2).  Readers are any thread (short transactions); all writes go through
 * one writer thread per process, which drains its queue of jobs into one
 * transaction and one fsync: group commit.  Each job runs in a nested
 * transaction, so a job that fails is undone without failing its group.
 * Other processes write the same environment; LMDB's write lock serialises
 * them, and every job reads what it needs (UIDNEXT ...) inside its
 * transaction, so no two writers hand out the same UID.
 *
 * Map size: LMDB needs no transaction open in the process while the map is
 * resized (py-lmdb#379).  Every transaction holds resize_lock shared; the
 * writer takes it exclusively to double the map on MDB_MAP_FULL, and any
 * thread does to adopt a size another process set (MDB_MAP_RESIZED).  So a
 * thread never starts a write (md_write) while it holds a read transaction,
 * and a job never starts a read transaction.
 *
 * The databases (keys are big-endian so memcmp order is numeric order; the
 * key layouts are in md_private.h, the values in md_records.c):
 *   meta, users, mboxname, mbox, subs, msg, msgmeta, basename: plain
 *   exptime: plain (added later: an older index simply lacks it)
 *   modseq, expunged: DUPSORT|DUPFIXED, dup = modseq u64 + uid u32 (12 B),
 *   so CHANGEDSINCE is MDB_GET_BOTH_RANGE + MDB_NEXT_DUP.
 */
#include "md_private.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define MD_MAP_SIZE_DEFAULT (16ULL << 30)  /* LIBRARIES.md §2: 16-64 GiB, address space only */
#define MD_MAP_SIZE_LIMIT (1ULL << 40)
#define MD_READERS_DEFAULT 512            /* threads + concurrent readers, all processes */
#define MD_BATCH_MAX 1024                 /* jobs in one transaction */
#define MD_TOUCHED_MAX 64                 /* mailboxes reported one by one per
					   * commit; beyond: "all" (never dropped) */
#define MD_READER_CHECK_SECS 60
#define MD_INDEX_VERSION 1

static const char *const md_db_names[MD_DB_COUNT] = {
	[MD_DB_META] = "meta",         [MD_DB_USERS] = "users",
	[MD_DB_MBOXNAME] = "mboxname", [MD_DB_MBOX] = "mbox",
	[MD_DB_SUBS] = "subs",         [MD_DB_MSG] = "msg",
	[MD_DB_MSGMETA] = "msgmeta",   [MD_DB_BASENAME] = "basename",
	[MD_DB_MODSEQ] = "modseq",     [MD_DB_EXPUNGED] = "expunged",
	[MD_DB_KEYWORD] = "keyword",   [MD_DB_EXPTIME] = "exptime",
};

struct md_job {
	md_job_fn *fn;
	void *arg;
	enum md_result result;
	bool done;
	struct md_job *next;
};

struct md_index {
	struct md_store *store;
	MDB_env *env;
	MDB_dbi dbi[MD_DB_COUNT];
	size_t map_size;
	pthread_rwlock_t resize_lock;

	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;    /* the writer waits for jobs */
	pthread_cond_t done_cond; /* callers wait for their commit */
	struct md_job *q_head, *q_tail;
	bool stop;
	bool writer_started;
	pthread_t writer;

	uint64_t commits, jobs, grows; /* under q_lock */
};

struct md_txn {
	struct md_index *idx;
	MDB_txn *txn;
	bool write;
	int error; /* first LMDB error of the current job */
	uint64_t touched[MD_TOUCHED_MAX];
	size_t n_touched;
	bool touched_all; /* more than MD_TOUCHED_MAX: report every mailbox */
};

/* Whether this thread is the writer inside a write transaction: file work
 * must not happen then (DESIGN.md), and tests check that it does not. */
static __thread bool md_writing;

bool md_index_in_write_txn(void)
{
	return md_writing;
}

struct md_cursor {
	struct md_txn *t;
	MDB_cursor *c;
	unsigned char prefix[MD_KEY_MAX];
	size_t plen;
};

static enum md_result md_index_result(int rc)
{
	switch (rc) {
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_BAD_VALSIZE:
		return MD_CORRUPT;
	case ENOSPC: /* the index's file system is full (LMDB returns errno) */
	case EDQUOT:
		return MD_NOSPACE;
	default:
		return MD_TEMPFAIL;
	}
}

static void md_index_note(struct md_txn *t, int rc)
{
	if (t->error == 0)
		t->error = rc;
}

/* Another process grew the map: adopt its size (no transaction of ours may
 * be open, hence the exclusive lock). */
static void md_index_adopt_size(struct md_index *idx)
{
	MDB_envinfo info;

	pthread_rwlock_wrlock(&idx->resize_lock);
	mdb_env_set_mapsize(idx->env, 0);
	if (mdb_env_info(idx->env, &info) == 0)
		idx->map_size = info.me_mapsize;
	pthread_rwlock_unlock(&idx->resize_lock);
}

static bool md_index_grow(struct md_index *idx)
{
	bool ok = false;
	MDB_envinfo info;

	pthread_rwlock_wrlock(&idx->resize_lock);
	if (mdb_env_info(idx->env, &info) == 0 && info.me_mapsize > idx->map_size)
		idx->map_size = info.me_mapsize;
	if (idx->map_size < MD_MAP_SIZE_LIMIT &&
	    mdb_env_set_mapsize(idx->env, idx->map_size * 2) == 0) {
		idx->map_size *= 2;
		ok = true;
	}
	pthread_rwlock_unlock(&idx->resize_lock);
	if (ok) {
		pthread_mutex_lock(&idx->q_lock);
		idx->grows++;
		pthread_mutex_unlock(&idx->q_lock);
		log_info("store: index map grown to %zu MiB", idx->map_size >> 20);
	} else {
		log_error("store: index map cannot grow beyond %zu MiB",
			  idx->map_size >> 20);
	}
	return ok;
}

/* ---- the writer thread ---------------------------------------------- */

static void md_index_touched_hook(struct md_index *idx, const struct md_txn *t)
{
	struct md_store *store = idx->store;
	md_change_fn *fn;
	void *ctx;

	pthread_mutex_lock(&store->hook_lock);
	fn = store->hook;
	ctx = store->hook_ctx;
	pthread_mutex_unlock(&store->hook_lock);
	if (fn == NULL)
		return;
	if (t->touched_all) {
		/* the list overflowed: one wake-up for every mailbox rather
		 * than a dropped one (store.h md_change_fn) */
		fn(ctx, 0, 0);
		return;
	}
	for (size_t i = 0; i < t->n_touched; i++)
		fn(ctx, (uint32_t)(t->touched[i] >> 32), (uint32_t)t->touched[i]);
}

/* Run a group of jobs in one transaction.  Returns 1 to retry the whole
 * group (the map grew), else 0 with every job's result set. */
static int md_index_run_group(struct md_index *idx, struct md_job *jobs,
			      struct md_txn *t)
{
	MDB_txn *parent = NULL;
	int rc;
	bool grow = false;

	memset(t, 0, sizeof(*t));
	t->idx = idx;
	t->write = true;
	pthread_rwlock_rdlock(&idx->resize_lock);
	rc = mdb_txn_begin(idx->env, NULL, 0, &parent);
	md_writing = rc == 0;
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&idx->resize_lock);
		md_index_adopt_size(idx);
		return 1;
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&idx->resize_lock);
		log_error("store: index write transaction: %s", mdb_strerror(rc));
		for (struct md_job *j = jobs; j != NULL; j = j->next)
			j->result = MD_TEMPFAIL;
		return 0;
	}
	for (struct md_job *j = jobs; j != NULL; j = j->next) {
		MDB_txn *child = NULL;

		rc = mdb_txn_begin(idx->env, parent, 0, &child);
		if (rc != 0) {
			if (rc == MDB_MAP_FULL) {
				grow = true;
				break;
			}
			j->result = md_index_result(rc);
			continue;
		}
		t->txn = child;
		t->error = 0;
		j->result = j->fn(t, j->arg);
		if (t->error == MDB_MAP_FULL) {
			mdb_txn_abort(child);
			grow = true;
			break;
		}
		if (j->result != MD_OK || t->error != 0) {
			if (j->result == MD_OK)
				j->result = md_index_result(t->error);
			mdb_txn_abort(child);
			continue;
		}
		rc = mdb_txn_commit(child);
		if (rc == MDB_MAP_FULL) {
			grow = true;
			break;
		}
		if (rc != 0)
			j->result = md_index_result(rc);
	}
	t->txn = NULL;
	if (!grow) {
		rc = mdb_txn_commit(parent);
		parent = NULL;
		if (rc == MDB_MAP_FULL) {
			grow = true;
		} else if (rc != 0) {
			log_error("store: index commit: %s", mdb_strerror(rc));
			for (struct md_job *j = jobs; j != NULL; j = j->next)
				if (j->result == MD_OK)
					j->result = md_index_result(rc);
		}
	}
	if (parent != NULL)
		mdb_txn_abort(parent);
	md_writing = false;
	pthread_rwlock_unlock(&idx->resize_lock);
	if (grow) {
		if (md_index_grow(idx))
			return 1;
		for (struct md_job *j = jobs; j != NULL; j = j->next)
			j->result = MD_TEMPFAIL;
		return 0;
	}
	pthread_mutex_lock(&idx->q_lock);
	idx->commits++;
	pthread_mutex_unlock(&idx->q_lock);
	return 0;
}

static void *md_index_writer(void *arg)
{
	struct md_index *idx = arg;
	struct md_txn *t = malloc(sizeof(*t));
	time_t last_check = time(NULL);

	pthread_mutex_lock(&idx->q_lock);
	for (;;) {
		struct md_job *jobs, *j;
		size_t n = 0;

		while (idx->q_head == NULL && !idx->stop) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += MD_READER_CHECK_SECS;
			pthread_cond_timedwait(&idx->q_cond, &idx->q_lock, &until);
			if (time(NULL) - last_check >= MD_READER_CHECK_SECS) {
				int dead = 0;

				mdb_reader_check(idx->env, &dead);
				last_check = time(NULL);
			}
		}
		if (idx->q_head == NULL)
			break;
		/* take up to MD_BATCH_MAX jobs */
		jobs = idx->q_head;
		for (j = jobs; j->next != NULL && ++n < MD_BATCH_MAX; j = j->next)
			;
		idx->q_head = j->next;
		if (idx->q_head == NULL)
			idx->q_tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&idx->q_lock);

		if (t == NULL) {
			for (j = jobs; j != NULL; j = j->next)
				j->result = MD_TEMPFAIL;
		} else {
			while (md_index_run_group(idx, jobs, t) == 1)
				;
			metrics_index_batch((unsigned)n + 1);
			md_index_touched_hook(idx, t);
		}

		pthread_mutex_lock(&idx->q_lock);
		for (j = jobs; j != NULL;) {
			struct md_job *next = j->next;

			idx->jobs++;
			j->done = true; /* the caller may free j from now on */
			j = next;
		}
		pthread_cond_broadcast(&idx->done_cond);
	}
	pthread_mutex_unlock(&idx->q_lock);
	free(t);
	return NULL;
}

enum md_result md_write(struct md_store *store, md_job_fn *fn, void *arg)
{
	struct md_index *idx = store->index;
	struct md_job job = { .fn = fn, .arg = arg, .result = MD_TEMPFAIL };

	pthread_mutex_lock(&idx->q_lock);
	if (idx->stop) {
		pthread_mutex_unlock(&idx->q_lock);
		return MD_TEMPFAIL;
	}
	if (idx->q_tail != NULL)
		idx->q_tail->next = &job;
	else
		idx->q_head = &job;
	idx->q_tail = &job;
	pthread_cond_signal(&idx->q_cond);
	while (!job.done)
		pthread_cond_wait(&idx->done_cond, &idx->q_lock);
	pthread_mutex_unlock(&idx->q_lock);
	return job.result;
}

void md_write_n(struct md_store *store, md_job_fn *fn, void **args,
		enum md_result *results, size_t n)
{
	struct md_index *idx = store->index;
	struct md_job *jobs = calloc(n + 1, sizeof(*jobs));
	bool all_done;

	if (jobs == NULL) {
		for (size_t i = 0; i < n; i++)
			results[i] = md_write(store, fn, args[i]);
		return;
	}
	pthread_mutex_lock(&idx->q_lock);
	if (idx->stop) {
		pthread_mutex_unlock(&idx->q_lock);
		for (size_t i = 0; i < n; i++)
			results[i] = MD_TEMPFAIL;
		free(jobs);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		jobs[i].fn = fn;
		jobs[i].arg = args[i];
		jobs[i].result = MD_TEMPFAIL;
		if (idx->q_tail != NULL)
			idx->q_tail->next = &jobs[i];
		else
			idx->q_head = &jobs[i];
		idx->q_tail = &jobs[i];
	}
	pthread_cond_signal(&idx->q_cond);
	do {
		all_done = true;
		for (size_t i = 0; i < n && all_done; i++)
			all_done = jobs[i].done;
		if (!all_done)
			pthread_cond_wait(&idx->done_cond, &idx->q_lock);
	} while (!all_done);
	pthread_mutex_unlock(&idx->q_lock);
	for (size_t i = 0; i < n; i++)
		results[i] = jobs[i].result;
	free(jobs);
}

void md_txn_touch(struct md_txn *t, uint32_t user_id, uint32_t mailbox_id)
{
	uint64_t v = (uint64_t)user_id << 32 | mailbox_id;

	if (t->touched_all)
		return;
	for (size_t i = 0; i < t->n_touched; i++)
		if (t->touched[i] == v)
			return;
	if (t->n_touched < MD_TOUCHED_MAX)
		t->touched[t->n_touched++] = v;
	else
		t->touched_all = true;
}

struct md_store *md_txn_store(struct md_txn *t)
{
	return t->idx->store;
}

/* ---- read transactions ------------------------------------------------ */

enum md_result md_read_begin(struct md_store *store, struct md_txn **txn_r)
{
	struct md_index *idx = store->index;
	struct md_txn *t = calloc(1, sizeof(*t));
	int rc;

	*txn_r = NULL;
	if (t == NULL)
		return MD_TEMPFAIL;
	t->idx = idx;
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&idx->resize_lock);
		rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &t->txn);
		if (rc == 0)
			break;
		pthread_rwlock_unlock(&idx->resize_lock);
		if (rc != MDB_MAP_RESIZED || tries > 3) {
			log_error("store: index read transaction: %s",
				  mdb_strerror(rc));
			free(t);
			return md_index_result(rc);
		}
		md_index_adopt_size(idx);
	}
	*txn_r = t;
	return MD_OK;
}

void md_read_end(struct md_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	pthread_rwlock_unlock(&t->idx->resize_lock);
	free(t);
}

/* ---- key/value -------------------------------------------------------- */

int md_kv_get(struct md_txn *t, enum md_db db, const void *key, size_t klen,
	      struct md_val *val_r)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc = mdb_get(t->txn, t->idx->dbi[db], &k, &v);

	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		md_index_note(t, rc);
		return -1;
	}
	val_r->data = v.mv_data;
	val_r->len = v.mv_size;
	return 0;
}

int md_kv_put(struct md_txn *t, enum md_db db, const void *key, size_t klen,
	      const void *val, size_t vlen, unsigned flags)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc = mdb_put(t->txn, t->idx->dbi[db], &k, &v,
			 (flags & MD_PUT_NOOVERWRITE) ? MDB_NOOVERWRITE : 0);

	if (rc == MDB_KEYEXIST)
		return 1;
	if (rc != 0) {
		md_index_note(t, rc);
		return -1;
	}
	return 0;
}

int md_kv_del(struct md_txn *t, enum md_db db, const void *key, size_t klen,
	      const void *dup, size_t duplen)
{
	MDB_val k = { klen, (void *)key }, v = { duplen, (void *)dup };
	int rc = mdb_del(t->txn, t->idx->dbi[db], &k, dup != NULL ? &v : NULL);

	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		md_index_note(t, rc);
		return -1;
	}
	return 0;
}

int md_kv_del_prefix(struct md_txn *t, enum md_db db, const void *prefix,
		     size_t plen)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->idx->dbi[db], &c);

	if (rc != 0) {
		md_index_note(t, rc);
		return -1;
	}
	for (;;) {
		MDB_val k = { plen, (void *)prefix }, v;

		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size < plen ||
		    memcmp(k.mv_data, prefix, plen) != 0))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		rc = mdb_cursor_del(c, db == MD_DB_MODSEQ || db == MD_DB_EXPUNGED ?
				    MDB_NODUPDATA : 0);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0) {
		md_index_note(t, rc);
		return -1;
	}
	return 0;
}

/* ---- cursors ----------------------------------------------------------- */

int md_cursor_open(struct md_txn *t, enum md_db db, const void *prefix,
		   size_t plen, struct md_cursor **cur_r)
{
	struct md_cursor *cur;
	int rc;

	*cur_r = NULL;
	if (plen > sizeof(cur->prefix))
		return -1;
	cur = calloc(1, sizeof(*cur));
	if (cur == NULL)
		return -1;
	rc = mdb_cursor_open(t->txn, t->idx->dbi[db], &cur->c);
	if (rc != 0) {
		md_index_note(t, rc);
		free(cur);
		return -1;
	}
	cur->t = t;
	memcpy(cur->prefix, prefix, plen);
	cur->plen = plen;
	*cur_r = cur;
	return 0;
}

void md_cursor_close(struct md_cursor *cur)
{
	if (cur == NULL)
		return;
	mdb_cursor_close(cur->c);
	free(cur);
}

static int md_cursor_result(struct md_cursor *cur, int rc, MDB_val *k,
			    MDB_val *v, struct md_val *key_r, struct md_val *val_r)
{
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		md_index_note(cur->t, rc);
		return -1;
	}
	if (k->mv_size < cur->plen || memcmp(k->mv_data, cur->prefix, cur->plen) != 0)
		return 1;
	if (key_r != NULL) {
		key_r->data = k->mv_data;
		key_r->len = k->mv_size;
	}
	if (val_r != NULL) {
		val_r->data = v->mv_data;
		val_r->len = v->mv_size;
	}
	return 0;
}

int md_cursor_seek(struct md_cursor *cur, const void *key, size_t klen,
		   struct md_val *key_r, struct md_val *val_r)
{
	MDB_val k = { klen, (void *)key }, v;

	if (klen < cur->plen) {
		k.mv_data = cur->prefix;
		k.mv_size = cur->plen;
	}
	return md_cursor_result(cur, mdb_cursor_get(cur->c, &k, &v, MDB_SET_RANGE),
				&k, &v, key_r, val_r);
}

int md_cursor_next(struct md_cursor *cur, struct md_val *key_r,
		   struct md_val *val_r)
{
	MDB_val k, v;

	return md_cursor_result(cur, mdb_cursor_get(cur->c, &k, &v, MDB_NEXT),
				&k, &v, key_r, val_r);
}

int md_cursor_seek_dup(struct md_cursor *cur, const void *key, size_t klen,
		       const void *dup, size_t duplen, struct md_val *val_r)
{
	MDB_val k = { klen, (void *)key }, v = { duplen, (void *)dup };
	int rc = mdb_cursor_get(cur->c, &k, &v, MDB_GET_BOTH_RANGE);

	return md_cursor_result(cur, rc, &k, &v, NULL, val_r);
}

int md_cursor_next_dup(struct md_cursor *cur, struct md_val *val_r)
{
	MDB_val k, v;

	return md_cursor_result(cur, mdb_cursor_get(cur->c, &k, &v, MDB_NEXT_DUP),
				&k, &v, NULL, val_r);
}

int md_kv_dup_count(struct md_txn *t, enum md_db db, const void *key, size_t klen,
		    size_t *n_r)
{
	struct md_cursor *cur;
	size_t n = 0;
	int rc;

	*n_r = 0;
	if (md_cursor_open(t, db, key, klen, &cur) < 0)
		return -1;
	rc = md_cursor_seek(cur, key, klen, NULL, NULL);
	if (rc == 0 && mdb_cursor_count(cur->c, &n) != 0)
		rc = -1;
	md_cursor_close(cur);
	if (rc < 0)
		return -1;
	*n_r = (size_t)n;
	return 0;
}

/* ---- open / close ------------------------------------------------------ */

static int md_index_env_open(struct md_index *idx, const char *dir,
			     const struct md_store_options *opts)
{
	int rc = mdb_env_create(&idx->env);

	if (rc != 0)
		return rc;
	idx->map_size = opts != NULL && opts->map_size != 0 ? opts->map_size :
			MD_MAP_SIZE_DEFAULT;
	if ((rc = mdb_env_set_maxdbs(idx->env, MD_DB_COUNT)) != 0 ||
	    (rc = mdb_env_set_mapsize(idx->env, idx->map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(idx->env, opts != NULL &&
			opts->max_readers != 0 ? opts->max_readers :
			MD_READERS_DEFAULT)) != 0 ||
	    (rc = mdb_env_open(idx->env, dir, MDB_NOTLS, 0600)) != 0) {
		mdb_env_close(idx->env);
		idx->env = NULL;
		return rc;
	}
	return 0;
}

static int md_index_dbs_open(struct md_index *idx, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k = { 7, "version" }, v;
	unsigned char ver[4];
	int rc = mdb_txn_begin(idx->env, NULL, 0, &txn);

	if (rc != 0)
		goto fail;
	for (int i = 0; i < MD_DB_COUNT; i++) {
		unsigned flags = MDB_CREATE;

		if (i == MD_DB_MODSEQ || i == MD_DB_EXPUNGED)
			flags |= MDB_DUPSORT | MDB_DUPFIXED;
		rc = mdb_dbi_open(txn, md_db_names[i], flags, &idx->dbi[i]);
		if (rc != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	}
	rc = mdb_get(txn, idx->dbi[MD_DB_META], &k, &v);
	if (rc == MDB_NOTFOUND) {
		md_put32(ver, MD_INDEX_VERSION);
		v.mv_data = ver;
		v.mv_size = 4;
		rc = mdb_put(txn, idx->dbi[MD_DB_META], &k, &v, 0);
	} else if (rc == 0 && (v.mv_size != 4 ||
		   md_get32(v.mv_data) != MD_INDEX_VERSION)) {
		mdb_txn_abort(txn);
		snprintf(err, errlen, "index: unknown format version");
		return MDB_VERSION_MISMATCH;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	if (rc == 0)
		return 0;
fail:
	snprintf(err, errlen, "index: %s", mdb_strerror(rc));
	return rc;
}

int md_index_open(struct md_store *store, const struct md_store_options *opts,
		  char *err, size_t errlen)
{
	struct md_index *idx = calloc(1, sizeof(*idx));
	pthread_rwlockattr_t attr;
	char dir[PATH_MAX];
	int rc, dead = 0;

	if (idx == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	idx->store = store;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/index", store->data_dir) >=
	    sizeof(dir) || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		free(idx);
		return -1;
	}
	rc = md_index_env_open(idx, dir, opts);
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED) {
		/* Never the Maildir to fit the index: set the index aside
		 * and rebuild it from the Maildirs as users come. */
		char aside[PATH_MAX];

		md_pathf(aside, sizeof(aside), "%s.corrupt-%lld", dir,
			 (long long)time(NULL));
		log_warn("store: index %s unusable (%s), moved to %s and rebuilt",
			 dir, mdb_strerror(rc), aside);
		if (rename(dir, aside) < 0 || mkdir(dir, 0700) < 0) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			free(idx);
			return -1;
		}
		rc = md_index_env_open(idx, dir, opts);
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", dir, mdb_strerror(rc));
		free(idx);
		return -1;
	}
	mdb_reader_check(idx->env, &dead);
	if (md_index_dbs_open(idx, err, errlen) != 0) {
		mdb_env_close(idx->env);
		free(idx);
		return -1;
	}
	pthread_rwlockattr_init(&attr);
	/* a waiting resize must not starve behind a stream of readers */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&idx->resize_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&idx->q_lock, NULL);
	pthread_cond_init(&idx->q_cond, NULL);
	pthread_cond_init(&idx->done_cond, NULL);
	store->index = idx;
	if (pthread_create(&idx->writer, NULL, md_index_writer, idx) != 0) {
		snprintf(err, errlen, "cannot start the index writer thread");
		md_index_close(store);
		return -1;
	}
	idx->writer_started = true;
	return 0;
}

void md_index_close(struct md_store *store)
{
	struct md_index *idx = store->index;

	if (idx == NULL)
		return;
	pthread_mutex_lock(&idx->q_lock);
	idx->stop = true;
	pthread_cond_signal(&idx->q_cond);
	pthread_mutex_unlock(&idx->q_lock);
	if (idx->writer_started)
		pthread_join(idx->writer, NULL);
	mdb_env_close(idx->env);
	pthread_rwlock_destroy(&idx->resize_lock);
	pthread_mutex_destroy(&idx->q_lock);
	pthread_cond_destroy(&idx->q_cond);
	pthread_cond_destroy(&idx->done_cond);
	free(idx);
	store->index = NULL;
}

void md_index_stats(struct md_store *store, struct md_store_stats *stats_r)
{
	struct md_index *idx = store->index;

	pthread_mutex_lock(&idx->q_lock);
	stats_r->commits = idx->commits;
	stats_r->jobs = idx->jobs;
	stats_r->map_grows = idx->grows;
	pthread_mutex_unlock(&idx->q_lock);
}

void md_index_reader_check(struct md_store *store)
{
	int dead = 0;

	mdb_reader_check(store->index->env, &dead);
	if (dead > 0)
		log_info("store: cleared %d stale index reader slots", dead);
}
