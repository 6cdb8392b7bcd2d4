/* Watching mailboxes for changes made by anyone (store.h md_watch_*): one
 * inotify instance per process, two watches (new/ and cur/) per watched
 * mailbox, counted so that every session that selected a mailbox shares
 * them.  IDLE sessions are woken from the events instead of polling each
 * mailbox's directories every fraction of a second.
 *
 * What wakes: a file created in, moved into, moved out of or deleted from
 * new/ or cur/ (delivery by any process, a flag change by mutt or Dovecot,
 * which renames within cur/, an expunge), and the directory itself going
 * away.  tmp/ is not watched: nothing there is a message yet.  When the
 * kernel's queue overflowed (IN_Q_OVERFLOW), every watched mailbox is
 * reported.
 *
 * Limits: fs.inotify.max_user_watches (8192 on old kernels, about 1 per
 * KiB of RAM up to 1M on newer ones) bounds the watches of all processes
 * of the user; when it is reached md_watch_add() answers MD_LIMIT and the
 * caller polls that mailbox instead.  MD_WATCH_MAX bounds our table.
 *
 * Threads: md_watch_add()/md_watch_remove() may run on workers (add reads
 * the index for the directory), md_watch_read() on the event loop; a
 * mutex guards the table.
 */
#include "md_private.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define MD_WATCH_MAX 65536            /* watched mailboxes per process */
#define MD_WATCH_READ_BUF (64 * 1024) /* one read of pending events */
#define MD_WATCH_READS_MAX 16         /* reads per md_watch_read() call */
#define MD_WATCH_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
			 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct md_watch_entry {
	uint32_t user_id, mailbox_id;
	int wd[2];      /* new/, cur/ */
	unsigned refs;  /* 0: a free slot */
};

struct md_watch {
	int fd;
	pthread_mutex_t lock;
	struct md_watch_entry *entries;
	size_t n, cap;  /* slots used (some may be free), allocated */
};

struct md_watch *md_watch_new(void)
{
	struct md_watch *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int saved = errno;
		free(w);
		errno = saved;
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	return w;
}

void md_watch_free(struct md_watch *w)
{
	if (w == NULL)
		return;
	close(w->fd); /* drops every watch */
	pthread_mutex_destroy(&w->lock);
	free(w->entries);
	free(w);
}

int md_watch_fd(const struct md_watch *w)
{
	return w->fd;
}

static struct md_watch_entry *md_watch_find(struct md_watch *w, uint32_t user_id,
					    uint32_t mailbox_id)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->entries[i].refs > 0 && w->entries[i].user_id == user_id &&
		    w->entries[i].mailbox_id == mailbox_id)
			return &w->entries[i];
	return NULL;
}

static struct md_watch_entry *md_watch_slot(struct md_watch *w)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->entries[i].refs == 0)
			return &w->entries[i];
	if (w->n == w->cap) {
		size_t cap = w->cap == 0 ? 16 : w->cap * 2;
		struct md_watch_entry *e;
		if (w->cap >= MD_WATCH_MAX)
			return NULL;
		e = realloc(w->entries, cap * sizeof(*e));
		if (e == NULL)
			return NULL;
		w->entries = e;
		w->cap = cap;
	}
	return &w->entries[w->n++];
}

enum md_result md_watch_add(struct md_watch *w, struct md_mailbox *mb)
{
	return md_watch_add_id(w, mb->user, mb->id);
}

enum md_result md_watch_add_id(struct md_watch *w, struct md_user *user, uint32_t mailbox_id)
{
	static const char *const subs[2] = { "new", "cur" };
	struct md_watch_entry *e;
	struct md_mbox_rec rec;
	struct md_txn *t;
	char dir[PATH_MAX], sub[PATH_MAX];
	enum md_result r;
	int wd[2] = { -1, -1 };

	pthread_mutex_lock(&w->lock);
	e = md_watch_find(w, user->id, mailbox_id);
	if (e != NULL) {
		e->refs++;
		pthread_mutex_unlock(&w->lock);
		return MD_OK;
	}
	pthread_mutex_unlock(&w->lock);

	if ((r = md_read_begin(user->store, &t)) != MD_OK)
		return r;
	r = md_mbox_dir(user, t, mailbox_id, &rec, dir, sizeof(dir));
	md_read_end(t);
	if (r != MD_OK)
		return r;
	for (int i = 0; i < 2; i++) {
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]) >= sizeof(sub))
			goto fail_name;
		wd[i] = inotify_add_watch(w->fd, sub, MD_WATCH_EVENTS);
		if (wd[i] < 0)
			goto fail;
	}

	pthread_mutex_lock(&w->lock);
	e = md_watch_find(w, user->id, mailbox_id); /* added meanwhile? */
	if (e == NULL && (e = md_watch_slot(w)) != NULL) {
		e->user_id = user->id;
		e->mailbox_id = mailbox_id;
		e->wd[0] = wd[0];
		e->wd[1] = wd[1];
		e->refs = 0; /* a new slot is not zeroed */
	}
	if (e != NULL)
		e->refs++;
	pthread_mutex_unlock(&w->lock);
	/* inotify gives the same wd for a directory watched already, so a
	 * racing add that lost shares the winner's watches: nothing to undo */
	return e != NULL ? MD_OK : MD_LIMIT;
fail_name:
	errno = ENAMETOOLONG;
fail:
	if (wd[0] >= 0)
		inotify_rm_watch(w->fd, wd[0]);
	/* ENOSPC: the user's max_user_watches is reached */
	return errno == ENOSPC ? MD_LIMIT : errno == ENOENT ? MD_NOMAILBOX : MD_TEMPFAIL;
}

void md_watch_remove(struct md_watch *w, struct md_mailbox *mb)
{
	md_watch_remove_id(w, mb->user->id, mb->id);
}

void md_watch_remove_id(struct md_watch *w, uint32_t user_id, uint32_t mailbox_id)
{
	struct md_watch_entry *e;

	pthread_mutex_lock(&w->lock);
	e = md_watch_find(w, user_id, mailbox_id);
	if (e != NULL && --e->refs == 0) {
		inotify_rm_watch(w->fd, e->wd[0]);
		inotify_rm_watch(w->fd, e->wd[1]);
	}
	pthread_mutex_unlock(&w->lock);
}

/* The entry a watch descriptor belongs to, or NULL (a watch removed while
 * its events were queued). */
static const struct md_watch_entry *md_watch_by_wd(const struct md_watch *w, int wd)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->entries[i].refs > 0 && (w->entries[i].wd[0] == wd || w->entries[i].wd[1] == wd))
			return &w->entries[i];
	return NULL;
}

/* Changed mailboxes found in one read, reported after the lock is
 * released (the callback may start work that adds or removes watches). */
struct md_watch_hits {
	uint32_t ids[2][MD_WATCH_READ_BUF / sizeof(struct inotify_event)];
	size_t n;
	bool all; /* the kernel's queue overflowed */
};

static void md_watch_collect(const struct md_watch *w, const char *buf, size_t n,
			     struct md_watch_hits *h)
{
	const struct md_watch_entry *last = NULL;

	h->n = 0;
	h->all = false;
	for (size_t off = 0; off + sizeof(struct inotify_event) <= n;) {
		struct inotify_event ev;
		const struct md_watch_entry *e;

		memcpy(&ev, buf + off, sizeof(ev)); /* buf is not aligned for it */
		off += sizeof(ev) + ev.len;
		if (ev.mask & IN_Q_OVERFLOW) {
			h->all = true;
			continue;
		}
		e = md_watch_by_wd(w, ev.wd);
		/* a burst in one mailbox is reported once */
		if (e == NULL || e == last || h->n == sizeof(h->ids[0]) / sizeof(h->ids[0][0]))
			continue;
		last = e;
		h->ids[0][h->n] = e->user_id;
		h->ids[1][h->n] = e->mailbox_id;
		h->n++;
	}
}

/* Events were lost: every watched mailbox may have changed. */
static int md_watch_report_all(struct md_watch *w, md_change_fn *fn, void *ctx)
{
	uint32_t *ids;
	size_t n = 0;

	pthread_mutex_lock(&w->lock);
	ids = malloc((w->n > 0 ? w->n : 1) * 2 * sizeof(*ids));
	for (size_t i = 0; ids != NULL && i < w->n; i++)
		if (w->entries[i].refs > 0) {
			ids[2 * n] = w->entries[i].user_id;
			ids[2 * n + 1] = w->entries[i].mailbox_id;
			n++;
		}
	pthread_mutex_unlock(&w->lock);
	if (ids == NULL) {
		fn(ctx, 0, 0); /* "every mailbox" (store.h): never dropped */
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		fn(ctx, ids[2 * i], ids[2 * i + 1]);
	free(ids);
	return 0;
}

int md_watch_read(struct md_watch *w, md_change_fn *fn, void *ctx)
{
	char *buf = malloc(MD_WATCH_READ_BUF);
	struct md_watch_hits *h = malloc(sizeof(*h));
	int rc = 0;

	if (buf == NULL || h == NULL) {
		free(buf);
		free(h);
		return -1;
	}
	for (int reads = 0; reads < MD_WATCH_READS_MAX; reads++) {
		ssize_t n = read(w->fd, buf, MD_WATCH_READ_BUF);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				rc = -1;
			break;
		}
		if (n == 0)
			break;
		pthread_mutex_lock(&w->lock);
		md_watch_collect(w, buf, (size_t)n, h);
		pthread_mutex_unlock(&w->lock);
		if (h->all && md_watch_report_all(w, fn, ctx) < 0)
			rc = -1;
		else if (!h->all)
			for (size_t i = 0; i < h->n; i++)
				fn(ctx, h->ids[0][i], h->ids[1][i]);
	}
	free(buf);
	free(h);
	return rc;
}
