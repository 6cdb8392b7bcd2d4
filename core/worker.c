/* Worker pool: threads take jobs from a FIFO, run work(), and put the job on
 * a done list; one libevent event, activated from the worker thread (this
 * needs evthread_use_pthreads() before the base exists), runs the done()
 * callbacks on the loop thread. */
#include "worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "log.h"

#define WORKER_THREADS_MAX 64

struct worker_job {
	struct worker_job *next;
	worker_work_fn *work;
	worker_done_fn *done;
	void *arg;
};

struct worker_job_list {
	struct worker_job *head, *tail;
};

struct worker_pool {
	struct event_base *base;
	struct event *done_ev;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_job_list queue;
	struct worker_job_list done;
	pthread_t threads[WORKER_THREADS_MAX];
	unsigned n_threads;
	bool stopping;
};

static void job_list_push(struct worker_job_list *list, struct worker_job *job)
{
	job->next = NULL;
	if (list->tail != NULL)
		list->tail->next = job;
	else
		list->head = job;
	list->tail = job;
}

static struct worker_job *job_list_take_all(struct worker_job_list *list)
{
	struct worker_job *head = list->head;

	list->head = list->tail = NULL;
	return head;
}

static void *worker_main(void *arg)
{
	struct worker_pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct worker_job *job;

		while (pool->queue.head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		job = pool->queue.head;
		if (job == NULL)
			break; /* stopping and nothing left */
		pool->queue.head = job->next;
		if (pool->queue.head == NULL)
			pool->queue.tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		job->work(job->arg);

		pthread_mutex_lock(&pool->lock);
		job_list_push(&pool->done, job);
		event_active(pool->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void worker_run_done(struct worker_pool *pool)
{
	struct worker_job *job;

	pthread_mutex_lock(&pool->lock);
	job = job_list_take_all(&pool->done);
	pthread_mutex_unlock(&pool->lock);
	while (job != NULL) {
		struct worker_job *next = job->next;
		if (job->done != NULL)
			job->done(job->arg);
		free(job);
		job = next;
	}
}

static void worker_on_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_run_done(arg);
}

struct worker_pool *worker_pool_new(struct event_base *base, unsigned threads)
{
	struct worker_pool *pool = calloc(1, sizeof(*pool));
	pthread_attr_t attr;

	if (pool == NULL)
		return NULL;
	if (threads == 0)
		threads = WORKER_THREADS_DEFAULT;
	if (threads > WORKER_THREADS_MAX)
		threads = WORKER_THREADS_MAX;
	pool->base = base;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->done_ev = event_new(base, -1, 0, worker_on_done, pool);
	if (pool->done_ev == NULL)
		goto fail;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&pool->threads[i], &attr, worker_main, pool) != 0) {
			log_error("worker: cannot start thread %u", i);
			break;
		}
		pool->n_threads++;
	}
	pthread_attr_destroy(&attr);
	if (pool->n_threads == 0)
		goto fail;
	return pool;
fail:
	if (pool->done_ev != NULL)
		event_free(pool->done_ev);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
	return NULL;
}

void worker_pool_free(struct worker_pool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	/* A done() may submit a follow-up job (a streaming read, a store
	 * commit); with the threads gone, run those here until none is left,
	 * so that every connection waiting for a job is freed. */
	for (;;) {
		struct worker_job *job;

		worker_run_done(pool);
		pthread_mutex_lock(&pool->lock);
		job = job_list_take_all(&pool->queue);
		pthread_mutex_unlock(&pool->lock);
		if (job == NULL)
			break;
		while (job != NULL) {
			struct worker_job *next = job->next;
			job->work(job->arg);
			pthread_mutex_lock(&pool->lock);
			job_list_push(&pool->done, job);
			pthread_mutex_unlock(&pool->lock);
			job = next;
		}
	}
	event_free(pool->done_ev);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

int worker_submit(struct worker_pool *pool, worker_work_fn *work,
		  worker_done_fn *done, void *arg)
{
	struct worker_job *job = malloc(sizeof(*job));

	if (job == NULL)
		return -1;
	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&pool->lock);
	job_list_push(&pool->queue, job);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}
