/* Shared directory fsyncs: N threads that each linked, renamed or removed
 * a file in the same directory need that directory fsynced before they
 * record it in the index (deliveries, COPY/MOVE, STORE, EXPUNGE, the
 * sync), and one fsync that starts after all N changes makes all N
 * directory entries durable.  So the threads coalesce, as a database's
 * group commit does with its log:
 *
 *   a thread registers its request (a number, after its link is done);
 *   if an fsync of the directory is running that started before the
 *   request, the thread waits for it to end, since it may not cover the
 *   link; when no fsync is running, one waiting thread starts the next,
 *   which covers every request registered so far; each thread returns once
 *   an fsync that covers its request has ended.
 *
 * Under load that is about one fsync per directory per round instead of
 * one per delivery.  Different directories are fsynced in parallel by
 * their own threads, off the writer thread and before their write job is
 * queued, so the index commit is never waiting on a directory fsync
 * (measured: tests/bench/store_bench.c; check_store_io counts file calls
 * made inside the write transaction: none).
 * Memory: one entry per directory being synced right now, freed by its
 * last user.
 */
#include "md_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void md_dirsync_init(struct md_store *store)
{
	pthread_mutex_init(&store->dsync_lock, NULL);
	store->dsyncs = NULL;
	store->dir_syncs = 0;
}

void md_dirsync_destroy(struct md_store *store)
{
	/* every md_fsync_dir_shared() has returned: the list is empty */
	pthread_mutex_destroy(&store->dsync_lock);
}

static struct md_dsync *md_dsync_get(struct md_store *store, const char *dir)
{
	struct md_dsync *e;

	for (e = store->dsyncs; e != NULL; e = e->next)
		if (strcmp(e->path, dir) == 0)
			break;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->path = strdup(dir)) == NULL) {
			free(e);
			return NULL;
		}
		pthread_cond_init(&e->cond, NULL);
		e->next = store->dsyncs;
		store->dsyncs = e;
	}
	e->users++;
	return e;
}

static void md_dsync_put(struct md_store *store, struct md_dsync *e)
{
	if (--e->users > 0)
		return;
	for (struct md_dsync **pp = &store->dsyncs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	pthread_cond_destroy(&e->cond);
	free(e->path);
	free(e);
}

int md_fsync_dir_shared(struct md_store *store, const char *dir)
{
	struct md_dsync *e;
	uint64_t me;
	int rc, err = 0;

	pthread_mutex_lock(&store->dsync_lock);
	e = md_dsync_get(store, dir);
	if (e == NULL) {
		/* out of memory: an fsync of our own is still correct */
		store->dir_syncs++;
		pthread_mutex_unlock(&store->dsync_lock);
		return md_fsync_dir(dir);
	}
	me = ++e->requested;
	while (e->done < me) {
		uint64_t covers;

		if (e->running) {
			pthread_cond_wait(&e->cond, &store->dsync_lock);
			continue;
		}
		/* our turn: this fsync starts after every request so far
		 * was registered, hence after their links */
		e->running = true;
		covers = e->requested;
		store->dir_syncs++;
		pthread_mutex_unlock(&store->dsync_lock);
		rc = md_fsync_dir(dir);
		err = errno;
		pthread_mutex_lock(&store->dsync_lock);
		e->running = false;
		e->done = covers;
		if (rc == 0)
			e->ok = covers;
		else
			e->error = err; /* each caller logs it */
		pthread_cond_broadcast(&e->cond);
	}
	rc = e->ok >= me ? 0 : -1;
	err = e->error;
	md_dsync_put(store, e);
	pthread_mutex_unlock(&store->dsync_lock);
	if (rc < 0)
		errno = err != 0 ? err : EIO;
	return rc;
}
