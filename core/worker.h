/* A small pool of threads for blocking work (password hashing, fsync, DNS,
 * LMDB writes).  A job's work() runs on a worker thread; its done() runs
 * afterwards on the event-loop thread.
 *
 * The server runs one pool per kind of work (DESIGN.md, Process model):
 * password hashing is slow on purpose (~20 ms of CPU per yescrypt verify),
 * so it gets its own small pool and a burst of logins never queues in
 * front of a delivery's fsync or a RETR's read. */
#ifndef CORE_WORKER_H
#define CORE_WORKER_H

#include <stddef.h>

struct event_base;
struct worker_pool;

typedef void worker_work_fn(void *arg);
typedef void worker_done_fn(void *arg);

/* Which pool a job goes to (conn_submit_kind()). */
enum worker_kind {
	WORKER_IO,   /* file and index work: deliveries, reads, expunges */
	WORKER_AUTH, /* password verification (auth_verify_password) */
	WORKER_DNS,  /* DNS look-ups that wait on the network (SPF, DKIM keys,
		      * DMARC of inbound mail) */
};
#define WORKER_KINDS 3

#define WORKER_THREADS_DEFAULT 4 /* worker_pool_new(base, 0) */
/* Threads of the IO pool.  Most of its jobs wait on the disk (fsync of a
 * message file and its directory, the index commit), not on a CPU.  With
 * 4 threads at most 4 deliveries were in flight and each index commit
 * carried ~1.2 of them (measured: 660 msg/s, one message per connection,
 * 10 sessions); with 16 the kernel and the index writer batch many (~9 per
 * commit) and the same load ran at ~2,000 msg/s on the same 2-CPU
 * machine.  Threads that wait cost only their stacks' touched pages. */
#define WORKER_IO_THREADS 16
/* Threads of the AUTH pool: each verify burns a CPU for ~20 ms; two keep
 * logins moving without letting them take every CPU from the loop and the
 * IO pool on a small machine. */
#define WORKER_AUTH_THREADS 2
/* Threads of the DNS pool: its jobs mostly wait for answers (up to the
 * inbound checks' deadline when a name server is down); eight keep eight
 * messages' checks in flight without a slow name server taking the IO
 * pool's threads from deliveries and mailbox reads. */
#define WORKER_DNS_THREADS 8
#define WORKER_STACK_SIZE (1024 * 1024) /* LIBRARIES.md: >= 1 MB for parsers */

struct worker_pool *worker_pool_new(struct event_base *base, unsigned threads);
/* Waits for queued and running jobs, runs their done(), then frees. */
void worker_pool_free(struct worker_pool *pool);
/* 0, or -1 when memory runs out (then nothing runs). */
int worker_submit(struct worker_pool *pool, worker_work_fn *work,
		  worker_done_fn *done, void *arg);

#endif
