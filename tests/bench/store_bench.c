/* store_bench: delivery throughput of the store (maildir/store.h).
 *
 *   store_bench [-n MESSAGES] [-t THREADS] [-s SIZE] [-u USERS] [-d DIR]
 *
 * Opens a store in DIR (default: a new directory under /tmp, removed at
 * the end), then THREADS threads deliver MESSAGES messages of SIZE octets
 * between them (SMTP's path: md_delivery_open, write, commit with one
 * target), round-robin over USERS recipients (1: every delivery goes into
 * the same new/ directory, the case group commit is for).  Prints msgs/s
 * and the store's counters: commits and directory fsyncs against jobs.
 * Not a test: run it by hand on the file system you care about (tmpfs
 * makes fsync free and the numbers meaningless).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define BENCH_THREADS_MAX 1024
#define BENCH_USERS_MAX 10000

struct bench {
	struct md_store *store;
	char *text;
	size_t size;
	unsigned users;
	unsigned long total;
	unsigned long next;   /* next message number, under lock */
	unsigned long failed;
	pthread_mutex_t lock;
};

static void *bench_thread(void *p)
{
	struct bench *b = p;
	char addr[64];

	for (;;) {
		struct md_delivery *d;
		struct md_target t;
		unsigned long i;
		enum md_result r;

		pthread_mutex_lock(&b->lock);
		i = b->next < b->total ? b->next++ : b->total;
		pthread_mutex_unlock(&b->lock);
		if (i == b->total)
			break;
		snprintf(addr, sizeof(addr), "user%lu@bench.test", i % b->users);
		memset(&t, 0, sizeof(t));
		t.address = addr;
		t.create_user = true;
		r = md_delivery_open(b->store, 0, 0, &d);
		if (r == MD_OK) {
			md_delivery_write(d, b->text, b->size);
			r = md_delivery_commit(d, &t, 1);
			if (r == MD_OK)
				r = t.result;
			md_delivery_free(d);
		}
		if (r != MD_OK) {
			pthread_mutex_lock(&b->lock);
			b->failed++;
			pthread_mutex_unlock(&b->lock);
		}
	}
	return NULL;
}

static int bench_rm(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct bench b = { .total = 2000, .size = 4096, .users = 1 };
	struct md_store_stats st0, st1;
	pthread_t th[BENCH_THREADS_MAX];
	unsigned threads = 4;
	char dir[4096] = "", err[256];
	bool own_dir = false;
	double t0, t1;
	int c;

	while ((c = getopt(argc, argv, "n:t:s:u:d:")) != -1) {
		switch (c) {
		case 'n': b.total = strtoul(optarg, NULL, 10); break;
		case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': b.size = strtoul(optarg, NULL, 10); break;
		case 'u': b.users = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': snprintf(dir, sizeof(dir), "%s", optarg); break;
		default:
			fprintf(stderr, "usage: store_bench [-n MESSAGES] [-t THREADS] "
				"[-s SIZE] [-u USERS] [-d DIR]\n");
			return 64;
		}
	}
	if (threads == 0 || threads > BENCH_THREADS_MAX || b.users == 0 ||
	    b.users > BENCH_USERS_MAX || b.size < 32 || b.total == 0) {
		fprintf(stderr, "store_bench: bad arguments\n");
		return 64;
	}
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/store_bench.XXXXXX");
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		own_dir = true;
	}
	/* a plausible message: a few headers, then 76-column lines */
	b.text = malloc(b.size);
	if (b.text == NULL)
		return 1;
	{
		size_t o = (size_t)snprintf(b.text, b.size,
					    "From: a@bench.test\nTo: b@bench.test\n"
					    "Subject: bench\n\n");

		for (; o < b.size; o++)
			b.text[o] = (o % 77 == 76) ? '\n' : (char)('a' + o % 26);
		b.text[b.size - 1] = '\n';
	}
	pthread_mutex_init(&b.lock, NULL);
	if (md_store_open(dir, NULL, &b.store, err, sizeof(err)) != MD_OK) {
		fprintf(stderr, "store_bench: %s\n", err);
		return 1;
	}
	/* create the users first: the first delivery to a user makes its
	 * Maildir, which is not what is measured */
	for (unsigned u = 0; u < b.users; u++) {
		char addr[64];
		struct md_user *user;

		snprintf(addr, sizeof(addr), "user%u@bench.test", u);
		if (md_user_open(b.store, addr, MD_USER_CREATE, &user) != MD_OK) {
			fprintf(stderr, "store_bench: cannot create %s\n", addr);
			return 1;
		}
		md_user_close(user);
	}
	md_store_get_stats(b.store, &st0);
	t0 = bench_now();
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, bench_thread, &b) != 0) {
			fprintf(stderr, "store_bench: pthread_create failed\n");
			return 1;
		}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	t1 = bench_now();
	md_store_get_stats(b.store, &st1);
	printf("threads=%u messages=%lu size=%zu users=%u failed=%lu "
	       "seconds=%.3f msgs/s=%.0f jobs=%llu commits=%llu dir_syncs=%llu\n",
	       threads, b.total, b.size, b.users, b.failed, t1 - t0,
	       (double)b.total / (t1 - t0),
	       (unsigned long long)(st1.jobs - st0.jobs),
	       (unsigned long long)(st1.commits - st0.commits),
	       (unsigned long long)(st1.dir_syncs - st0.dir_syncs));
	md_store_close(b.store);
	pthread_mutex_destroy(&b.lock);
	free(b.text);
	if (own_dir)
		nftw(dir, bench_rm, 16, FTW_DEPTH | FTW_PHYS);
	return b.failed == 0 ? 0 : 1;
}
