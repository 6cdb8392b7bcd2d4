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

/* Most jobs wait on the disk (fsync of a message file and its directory,
 * the index commit), not on a CPU.  With 4 threads at most 4 deliveries
 * were in flight and each index commit carried ~1.2 of them (measured:
 * 660 msg/s, one message per connection, 10 sessions); with 16 the
 * kernel's journal and the index writer batch many (~9 per commit) and
 * the same load ran at ~2,000 msg/s on the same 2-CPU machine.  Threads
 * that wait cost only their stacks' touched pages. */
#define WORKER_THREADS_DEFAULT 16
#define WORKER_STACK_SIZE (1024 * 1024) /* LIBRARIES.md: >= 1 MB for parsers */

struct worker_pool *worker_pool_new(struct event_base *base, unsigned threads);
/* Waits for queued and running jobs, runs their done(), then frees. */
void worker_pool_free(struct worker_pool *pool);
/* 0, or -1 when memory runs out (then nothing runs). */
int worker_submit(struct worker_pool *pool, worker_work_fn *work,
		  worker_done_fn *done, void *arg);

#endif
