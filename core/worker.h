/* A small pool of threads for blocking work (password hashing, fsync, DNS,
 * LMDB writes).  A job's work() runs on a worker thread; its done() runs
 * afterwards on the event-loop thread. */
#ifndef CORE_WORKER_H
#define CORE_WORKER_H

#include <stddef.h>

struct event_base;
struct worker_pool;

typedef void worker_work_fn(void *arg);
typedef void worker_done_fn(void *arg);

#define WORKER_THREADS_DEFAULT 4
#define WORKER_STACK_SIZE (1024 * 1024) /* LIBRARIES.md: >= 1 MB for parsers */

struct worker_pool *worker_pool_new(struct event_base *base, unsigned threads);
/* Waits for queued and running jobs, runs their done(), then frees. */
void worker_pool_free(struct worker_pool *pool);
/* 0, or -1 when memory runs out (then nothing runs). */
int worker_submit(struct worker_pool *pool, worker_work_fn *work,
		  worker_done_fn *done, void *arg);

#endif
