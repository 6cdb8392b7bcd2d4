/* Faults and concurrency of the store: group commit, two processes
 * delivering at once, SIGKILL at random moments, a full disk, map growth,
 * and `postern deliver` exit codes.  Each test forks where it needs a
 * process of its own (a store is never used across fork()). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "store_test.h"

/* ---- files changed by other programs -------------------------------------- */

/* A Maildir file another program truncates while the store reads it: an
 * error for that read (the sync retries the file later), never SIGBUS. */
START_TEST(test_store_file_truncated_while_read)
{
	char path[PATH_MAX];
	char data[8192];
	void *buf = (void *)1;
	int fd;

	memset(data, 'x', sizeof(data));
	snprintf(path, sizeof(path), "%s/truncated", tdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, sizeof(data)), (int)sizeof(data));
	ck_assert_int_eq(md_file_read_all(fd, sizeof(data), &buf), 0);
	ck_assert_int_eq(memcmp(buf, data, sizeof(data)), 0);
	free(buf);
	/* stat said 8192, then the file shrank */
	ck_assert_int_eq(ftruncate(fd, 100), 0);
	buf = (void *)1;
	ck_assert_int_eq(md_file_read_all(fd, sizeof(data), &buf), -1);
	ck_assert_int_eq(errno, ENODATA);
	ck_assert_ptr_null(buf);
	ck_assert_int_eq(md_file_read_all(fd, MD_FILE_READ_MAX + 1, &buf), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(md_file_read_all(fd, 0, &buf), 0);
	ck_assert_ptr_null(buf);
	close(fd);
}
END_TEST

/* ---- group commit and concurrency ---------------------------------------- */


/* Hold the writer thread until every delivery has linked its file (the
 * next step is its index job), so they all queue up behind this one. */
static enum md_result gc_sleep_job(struct md_txn *t, void *arg)
{
	char dir[PATH_MAX];

	(void)t;
	(void)arg;
	user_dir(dir, sizeof(dir), "new");
	for (int i = 0; i < 1000 && count_files(dir) < GC_THREADS + 1; i++)
		usleep(10 * 1000);
	usleep(100 * 1000); /* their last directory fsync */
	return MD_OK;
}

static int gc_hook_calls;
static uint32_t gc_hook_mailbox;

static void gc_hook(void *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	(void)ctx;
	(void)user_id;
	__atomic_add_fetch(&gc_hook_calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&gc_hook_mailbox, mailbox_id, __ATOMIC_SEQ_CST);
}

static void *gc_sleeper(void *p)
{
	md_write(p, gc_sleep_job, NULL);
	return NULL;
}

START_TEST(test_store_group_commit)
{
	struct md_store *s = open_store();
	struct md_store_stats before, after;
	struct gc_arg args[GC_THREADS];
	pthread_t th[GC_THREADS], sl;
	bool seen[GC_THREADS + 1] = { false };

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: first\n\nx\n", 0, 0, NULL), MD_OK);
	md_store_get_stats(s, &before);
	md_store_set_change_hook(s, gc_hook, NULL);
	pthread_create(&sl, NULL, gc_sleeper, s);
	usleep(50 * 1000);
	for (int i = 0; i < GC_THREADS; i++) {
		args[i] = (struct gc_arg){ .s = s, .i = i };
		pthread_create(&th[i], NULL, gc_thread, &args[i]);
	}
	for (int i = 0; i < GC_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_join(sl, NULL);
	md_store_get_stats(s, &after);
	for (int i = 0; i < GC_THREADS; i++) {
		ck_assert_int_eq(args[i].r, MD_OK);
		ck_assert(args[i].uid >= 2 && args[i].uid <= GC_THREADS + 1);
		ck_assert(!seen[args[i].uid - 1]);
		seen[args[i].uid - 1] = true;
	}
	ck_assert_uint_ge(after.jobs - before.jobs, GC_THREADS + 1);
	/* the deliveries shared commits: far fewer than one each */
	ck_assert_uint_lt(after.commits - before.commits, GC_THREADS / 2);
	/* IDLE's wake-up: once per commit that changed INBOX */
	ck_assert_int_ge(gc_hook_calls, 1);
	ck_assert_int_le(gc_hook_calls, (int)(after.commits - before.commits));
	{
		struct md_user *u;
		struct md_mailbox *mb;
		uint32_t uid, mid;

		ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
		ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
		md_mailbox_ids(mb, &uid, &mid);
		ck_assert_uint_eq(gc_hook_mailbox, mid);
		ck_assert_uint_eq(uid, md_user_id(u));
		md_mailbox_close(mb);
		md_user_close(u);
	}
	md_store_close(s);
}
END_TEST

/* Issue 13: one group commit that changes more mailboxes than the writer
 * lists one by one (64) still wakes every one: here one delivery to
 * WAKE_USERS users is one commit touching WAKE_USERS INBOXes.  The change
 * hook must name each of them, or say "every mailbox" (0, 0); before, the
 * mailboxes past the 64th were dropped and their IDLE sessions slept. */
#define WAKE_USERS 80

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t wake_seen[4 * WAKE_USERS][2];
static size_t n_wake_seen;
static bool wake_all_seen;

static void wake_hook(void *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	(void)ctx;
	pthread_mutex_lock(&wake_lock);
	if (user_id == 0 && mailbox_id == 0)
		wake_all_seen = true;
	else if (n_wake_seen < sizeof(wake_seen) / sizeof(wake_seen[0])) {
		wake_seen[n_wake_seen][0] = user_id;
		wake_seen[n_wake_seen][1] = mailbox_id;
		n_wake_seen++;
	}
	pthread_mutex_unlock(&wake_lock);
}

static bool wake_covers(uint32_t user_id, uint32_t mailbox_id)
{
	bool hit;

	pthread_mutex_lock(&wake_lock);
	hit = wake_all_seen;
	for (size_t i = 0; i < n_wake_seen && !hit; i++)
		hit = wake_seen[i][0] == user_id && wake_seen[i][1] == mailbox_id;
	pthread_mutex_unlock(&wake_lock);
	return hit;
}

START_TEST(test_store_wake_many_mailboxes)
{
	struct md_store *s = open_store();
	static char addrs[WAKE_USERS][64];
	static struct md_target t[WAKE_USERS];
	uint32_t ids[WAKE_USERS][2];
	struct md_store_stats before, after;
	struct md_delivery *d;
	const char *text = "Subject: to everyone\r\n\r\nwake up\r\n";

	for (int i = 0; i < WAKE_USERS; i++) {
		struct md_user *u;
		struct md_mailbox *mb;

		snprintf(addrs[i], sizeof(addrs[i]), "user%02d@example.test", i);
		ck_assert_int_eq(md_user_open(s, addrs[i], MD_USER_CREATE, &u), MD_OK);
		ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
		md_mailbox_ids(mb, &ids[i][0], &ids[i][1]);
		md_mailbox_close(mb);
		md_user_close(u);
		t[i] = (struct md_target){ .address = addrs[i] };
	}
	/* directories older than the store's dirty window, and scanned once
	 * more: the delivery then makes no sync job, only its own */
	usleep((MD_MTIME_DIRTY_NS / 1000) + 100 * 1000);
	for (int i = 0; i < WAKE_USERS; i++) {
		struct md_user *u;
		struct md_status st;

		ck_assert_int_eq(md_user_open(s, addrs[i], 0, &u), MD_OK);
		ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
		md_user_close(u);
	}
	md_store_get_stats(s, &before);
	md_store_set_change_hook(s, wake_hook, NULL);
	ck_assert_int_eq(md_delivery_open(s, 0, 0, &d), MD_OK);
	md_delivery_write(d, text, strlen(text));
	ck_assert_int_eq(md_delivery_commit(d, t, WAKE_USERS), MD_OK);
	md_delivery_free(d);
	md_store_set_change_hook(s, NULL, NULL);
	md_store_get_stats(s, &after);
	/* the jobs were queued together: one commit carried them all */
	ck_assert_uint_eq(after.commits - before.commits, 1);
	for (int i = 0; i < WAKE_USERS; i++) {
		ck_assert_int_eq(t[i].result, MD_OK);
		ck_assert_msg(wake_covers(ids[i][0], ids[i][1]),
			      "INBOX of %s (%u/%u) changed but was never reported",
			      addrs[i], ids[i][0], ids[i][1]);
	}
	md_store_close(s);
}
END_TEST

/* Two sessions change the flags of the same messages at once: STORE
 * renames outside the index's write lock, so a record may change between
 * its read and the job; the message then goes round again.  In the end
 * every record names its file, with the letters of its flags, and a sync
 * finds nothing to correct (no new mod-sequence). */
#define RACE_MSGS 4
#define RACE_ROUNDS 40

struct race_arg {
	struct md_store *s;
	unsigned flag;
	enum md_result r;
	char error[256];
};

static void *race_storer(void *p)
{
	struct race_arg *a = p;
	struct md_user *u;
	struct md_mailbox *mb;
	const uint32_t uids[RACE_MSGS] = { 1, 2, 3, 4 };
	struct md_flags_result res[RACE_MSGS];

	a->r = md_user_open(a->s, ADDR, 0, &u);
	if (a->r != MD_OK)
		return NULL;
	if ((a->r = md_mailbox_open(u, "INBOX", &mb, NULL)) == MD_OK) {
		for (int i = 0; i < RACE_ROUNDS && a->r == MD_OK; i++)
			a->r = md_msg_store(mb, uids, RACE_MSGS,
					    i % 2 ? MD_FLAGS_REMOVE : MD_FLAGS_ADD, a->flag,
					    NULL, 0, 0, res);
		md_mailbox_close(mb);
	}
	snprintf(a->error, sizeof(a->error), "%s", md_user_error(u));
	md_user_close(u);
	return NULL;
}

START_TEST(test_store_flags_race)
{
	struct md_store *s = open_store();
	struct race_arg args[2] = { { .s = s, .flag = MD_FLAG_SEEN },
				    { .s = s, .flag = MD_FLAG_FLAGGED } };
	pthread_t th[2];
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st1, st2;
	struct md_msg *msgs;
	size_t n;

	for (int i = 0; i < RACE_MSGS; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: r\n\nr\n", 0, 0, NULL), MD_OK);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, race_storer, &args[i]);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(args[i].r == MD_OK, "STORE: %s (%s)", md_result_name(args[i].r),
			      args[i].error);
	}
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st1), MD_OK);
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, RACE_MSGS);
	for (size_t i = 0; i < n; i++) {
		const char *info = strstr(msgs[i].path, ":2,");

		ck_assert_int_eq(access(msgs[i].path, F_OK), 0);
		/* both ended on a REMOVE: no flag left */
		ck_assert_uint_eq(msgs[i].flags & (MD_FLAG_SEEN | MD_FLAG_FLAGGED), 0);
		ck_assert(info == NULL || (strchr(info, 'S') == NULL && strchr(info, 'F') == NULL));
	}
	md_msg_list_free(msgs, n);
	/* a full scan agrees with the index: nothing to apply */
	usleep((MD_MTIME_DIRTY_NS / 1000) + 100 * 1000);
	ck_assert_int_eq(md_mailbox_sync(mb, &st2), MD_OK);
	ck_assert_uint_eq(st2.highestmodseq, st1.highestmodseq);
	ck_assert_uint_eq(st2.messages, RACE_MSGS);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

#define PROC_MSGS 25

static void child_deliver_loop(int who)
{
	struct md_store *s;
	char err[256], text[128];

	if (md_store_open(tdir, NULL, &s, err, sizeof(err)) != MD_OK)
		_exit(2);
	for (int i = 0; i < PROC_MSGS; i++) {
		snprintf(text, sizeof(text), "Subject: p%d-%d\n\nfrom %d\n", who, i, who);
		if (deliver(s, ADDR, NULL, text, 0, 0, NULL) != MD_OK)
			_exit(3);
	}
	md_store_close(s);
	_exit(0);
}

START_TEST(test_store_two_processes)
{
	pid_t pids[2];
	struct md_store *s;
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	uint32_t *uids;
	size_t n;

	for (int p = 0; p < 2; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0)
			child_deliver_loop(p);
	}
	for (int p = 0; p < 2; p++) {
		int status;

		ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_uint_eq(st.messages, 2 * PROC_MSGS);
	ck_assert_uint_eq(st.uidnext, 2 * PROC_MSGS + 1);
	ck_assert_int_eq(md_mailbox_uids(mb, &uids, &n), MD_OK);
	ck_assert_uint_eq(n, 2 * PROC_MSGS);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(uids[i], i + 1);
	free(uids);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* A child delivers in a loop and reports each delivery it completed; it
 * is SIGKILLed at random moments.  Afterwards each reported message is in
 * the store exactly once, and index and Maildir agree. */
struct crash_arg {
	struct md_store *s;
	unsigned next, end; /* ids still to deliver: next (atomic) .. end */
	int fd;
};

static void *crash_thread(void *p)
{
	struct crash_arg *a = p;
	char text[128];

	for (;;) {
		unsigned i = __atomic_fetch_add(&a->next, 1, __ATOMIC_SEQ_CST);

		if (i >= a->end)
			return NULL;
		snprintf(text, sizeof(text), "Subject: id %u\n\nid=%u.\n", i, i);
		if (deliver(a->s, ADDR, NULL, text, 0, 0, NULL) != MD_OK)
			_exit(3);
		/* a pipe write of 4 bytes is atomic (PIPE_BUF) */
		if (write(a->fd, &i, sizeof(i)) != sizeof(i))
			_exit(4);
	}
}

/* The id= number in a message file; asserts it is there. */
static unsigned crash_msg_id(const char *path)
{
	char *data = read_file(path, NULL);
	unsigned id = UINT_MAX;
	bool found = false;

	if (data != NULL) {
		const char *p = strstr(data, "id=");

		if (p != NULL && sscanf(p, "id=%u", &id) == 1)
			found = true;
		free(data);
	}
	ck_assert_msg(found, "indexed file missing or without id: %s", path);
	return id;
}

static void crash_kill_run(int threads)
{
	int fds[2];
	unsigned next = 0;
	bool reported[2000] = { false };
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	ck_assert_int_eq(pipe(fds), 0);
	for (int round = 0; round < 5; round++) {
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			struct crash_arg a = { .next = next, .end = next + 400, .fd = fds[1] };
			pthread_t th[16];
			char err[256];

			close(fds[0]);
			if (md_store_open(tdir, NULL, &a.s, err, sizeof(err)) != MD_OK)
				_exit(2);
			for (int t = 0; t < threads; t++)
				pthread_create(&th[t], NULL, crash_thread, &a);
			for (int t = 0; t < threads; t++)
				pthread_join(th[t], NULL);
			_exit(0);
		}
		/* kill only after the child acknowledged a delivery: on a loaded
		 * machine (sanitizers, parallel builds) opening the store alone
		 * can take longer than the random delay */
		{
			fd_set rs;
			struct timeval tv = { 10, 0 };
			unsigned id;

			FD_ZERO(&rs);
			FD_SET(fds[0], &rs);
			if (select(fds[0] + 1, &rs, NULL, NULL, &tv) == 1 &&
			    read(fds[0], &id, sizeof(id)) == sizeof(id)) {
				ck_assert_uint_lt(id, 2000);
				reported[id] = true;
			}
		}
		usleep(20000 + (useconds_t)(rand_r(&seed) % 200000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		/* drain what it reported */
		for (;;) {
			unsigned id;
			fd_set rs;
			struct timeval tv = { 0, 0 };

			FD_ZERO(&rs);
			FD_SET(fds[0], &rs);
			if (select(fds[0] + 1, &rs, NULL, NULL, &tv) <= 0 ||
			    read(fds[0], &id, sizeof(id)) != sizeof(id))
				break;
			ck_assert_uint_lt(id, 2000);
			reported[id] = true;
		}
		next += 400;
	}
	close(fds[0]);
	close(fds[1]);

	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_status st;
	struct md_msg *msgs;
	unsigned count[2000] = { 0 };
	size_t n, n_reported = 0, files;
	char dir[PATH_MAX];

	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, &st), MD_OK);
	ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &n), MD_OK);
	ck_assert_uint_eq(n, st.messages);
	for (size_t i = 0; i < n; i++) {
		unsigned id = crash_msg_id(msgs[i].path);

		ck_assert_uint_lt(id, 2000);
		count[id]++;
		for (size_t k = 0; k < i; k++)
			ck_assert_str_ne(msgs[k].basename, msgs[i].basename);
	}
	for (unsigned id = 0; id < 2000; id++) {
		if (reported[id]) {
			n_reported++;
			ck_assert_msg(count[id] == 1, "id %u stored %u times", id, count[id]);
		} else {
			ck_assert_uint_le(count[id], 1);
		}
	}
	ck_assert_uint_gt(n_reported, 0);
	user_dir(dir, sizeof(dir), "new");
	files = count_files(dir);
	user_dir(dir, sizeof(dir), "cur");
	files += count_files(dir);
	ck_assert_uint_eq(files, n);
	md_msg_list_free(msgs, n);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}

START_TEST(test_store_crash_kill)
{
	crash_kill_run(1);
}
END_TEST

/* The same with 8 threads delivering at once: they share directory fsyncs
 * and commits, and still every acknowledged message is there once. */
START_TEST(test_store_crash_kill_threads)
{
	crash_kill_run(8);
}
END_TEST

/* A disk that fills mid-delivery: RLIMIT_FSIZE makes write() fail with
 * EFBIG.  TEMPFAIL, no partial file anywhere, nothing indexed. */
START_TEST(test_store_disk_full)
{
	pid_t pid;
	int status;

	{
		struct md_store *s = open_store();
		struct md_user *u;

		ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
		md_user_close(u);
		md_store_close(s);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 256 * 1024, 256 * 1024 };
		struct md_store *s;
		struct md_delivery *d;
		struct md_target t = { .address = ADDR, .create_user = true };
		char err[256], chunk[4096];

		signal(SIGXFSZ, SIG_IGN);
		if (md_store_open(tdir, NULL, &s, err, sizeof(err)) != MD_OK)
			_exit(2);
		setrlimit(RLIMIT_FSIZE, &rl);
		if (md_delivery_open(s, 0, 0, &d) != MD_OK)
			_exit(3);
		md_delivery_write(d, "Subject: big\r\n\r\n", 16);
		memset(chunk, 'x', sizeof(chunk));
		chunk[sizeof(chunk) - 1] = '\n';
		for (int i = 0; i < 256; i++)
			md_delivery_write(d, chunk, sizeof(chunk));
		if (md_delivery_commit(d, &t, 1) != MD_TEMPFAIL || t.result != MD_TEMPFAIL)
			_exit(4);
		if (strstr(md_delivery_error(d), "too large") == NULL)
			_exit(5);
		md_delivery_free(d);
		md_store_close(s);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);

	struct md_store *s = open_store();
	struct md_user *u;
	struct md_status st;
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/mail/.tmp", tdir);
	ck_assert_uint_eq(count_files(dir), 0);
	user_dir(dir, sizeof(dir), "new");
	ck_assert_uint_eq(count_files(dir), 0);
	user_dir(dir, sizeof(dir), "tmp");
	ck_assert_uint_eq(count_files(dir), 0);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_eq(st.messages, 0);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

START_TEST(test_store_map_grows)
{
	struct md_store_options opts = { .map_size = 128 * 1024 };
	struct md_store *s;
	struct md_store_stats stats;
	struct md_user *u;
	struct md_status st;
	char err[256], text[4096];

	ck_assert_int_eq(md_store_open(tdir, &opts, &s, err, sizeof(err)), MD_OK);
	memset(text, 'z', sizeof(text));
	memcpy(text, "Subject: z\n\n", 12);
	text[sizeof(text) - 1] = '\0';
	for (int i = 0; i < 120; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, text, 0, 0, NULL), MD_OK);
	md_store_get_stats(s, &stats);
	ck_assert_uint_gt(stats.map_grows, 0);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_eq(st.messages, 120);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* The map grows (LIBRARIES.md §2: with no transaction open anywhere in the
 * process) while threads deliver and others read, and while a second
 * process, which started with the same small map, writes and reads too:
 * it must adopt the size the other set (MDB_MAP_RESIZED).  Every
 * delivery lands, nothing deadlocks, readers never see an error. */
#define GROW_WRITERS 4
#define GROW_MSGS 60

struct grow_arg {
	struct md_store *s;
	int who;
	int failed;
	volatile int *stop;
};

static void *grow_writer(void *p)
{
	struct grow_arg *a = p;
	char text[3000];

	memset(text, 'g', sizeof(text));
	snprintf(text, 64, "Subject: grow %d\n\n", a->who);
	text[strlen(text)] = 'g';
	text[sizeof(text) - 1] = '\0';
	for (int i = 0; i < GROW_MSGS; i++)
		if (deliver(a->s, ADDR, NULL, text, 0, 0, NULL) != MD_OK)
			a->failed++;
	return NULL;
}

static void *grow_reader(void *p)
{
	struct grow_arg *a = p;
	struct md_user *u;

	if (md_user_open(a->s, ADDR, MD_USER_CREATE, &u) != MD_OK) {
		a->failed++;
		return NULL;
	}
	while (!*a->stop) {
		struct md_mailbox *mb;
		struct md_msg *msgs;
		size_t n;

		if (md_mailbox_open(u, "INBOX", &mb, NULL) != MD_OK) {
			a->failed++;
			break;
		}
		if (md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_META, &msgs, &n) != MD_OK)
			a->failed++;
		else
			md_msg_list_free(msgs, n);
		md_mailbox_close(mb);
	}
	md_user_close(u);
	return NULL;
}

static int grow_run(int proc)
{
	struct md_store_options opts = { .map_size = 64 * 1024 };
	struct grow_arg args[GROW_WRITERS + 2];
	pthread_t th[GROW_WRITERS + 2];
	volatile int stop = 0;
	struct md_store *s;
	char err[256];
	int failed = 0;

	if (md_store_open(tdir, &opts, &s, err, sizeof(err)) != MD_OK)
		return -1;
	for (int i = 0; i < GROW_WRITERS + 2; i++) {
		args[i] = (struct grow_arg){ .s = s, .who = proc * 100 + i, .stop = &stop };
		pthread_create(&th[i], NULL, i < GROW_WRITERS ? grow_writer : grow_reader,
			       &args[i]);
	}
	for (int i = 0; i < GROW_WRITERS; i++)
		pthread_join(th[i], NULL);
	stop = 1;
	for (int i = 0; i < GROW_WRITERS + 2; i++) {
		if (i >= GROW_WRITERS)
			pthread_join(th[i], NULL);
		failed += args[i].failed;
	}
	md_store_close(s);
	return failed;
}

START_TEST(test_store_map_grows_concurrent)
{
	struct md_store *s;
	struct md_user *u;
	struct md_status st;
	struct stat sb;
	char path[PATH_MAX];
	int status;
	pid_t pid;

	{	/* the index exists before the two processes race to make it */
		struct md_store_options opts = { .map_size = 64 * 1024 };
		char err[256];

		ck_assert_int_eq(md_store_open(tdir, &opts, &s, err, sizeof(err)), MD_OK);
		ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
		md_user_close(u);
		md_store_close(s);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(grow_run(1) == 0 ? 0 : 1);
	ck_assert_int_eq(grow_run(0), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	ck_assert_uint_eq(st.messages, 2 * GROW_WRITERS * GROW_MSGS);
	ck_assert_uint_eq(st.uidnext, 2 * GROW_WRITERS * GROW_MSGS + 1);
	md_user_close(u);
	md_store_close(s);
	/* the map had to grow: the data outgrew 64 KiB several times */
	snprintf(path, sizeof(path), "%s/index/data.mdb", tdir);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_gt(sb.st_size, 4 * 64 * 1024);
}
END_TEST

/* ---- postern deliver ------------------------------------------------------ */

static int test_resolve(void *ctx, const char *address, struct md_recipient *owners,
			size_t max)
{
	uint64_t quota = *(uint64_t *)ctx;

	(void)max;
	if (strcmp(address, "tempfail@example.test") == 0)
		return -1;
	if (strcasecmp(address, ADDR) != 0 && strcmp(address, "al+tag@example.test") != 0)
		return 0;
	str_copy(owners[0].address, ADDR, sizeof(owners[0].address));
	owners[0].quota_bytes = quota;
	return 1;
}

/* Run md_cli_deliver in a child with stdin from text; its exit code. */
static int run_deliver(const char *text, size_t len, uint64_t quota, bool permanent,
		       int argc, char **argv)
{
	char in[PATH_MAX];
	pid_t pid;
	int status;

	snprintf(in, sizeof(in), "%s/stdin", tdir);
	ck_assert_int_eq(write_file_atomic(in, text, len, 0600), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct config cfg;
		int fd = open(in, O_RDONLY);

		if (fd < 0 || dup2(fd, 0) < 0)
			_exit(99);
		freopen("/dev/null", "w", stderr);
		config_defaults(&cfg);
		str_copy(cfg.data_dir, tdir, sizeof(cfg.data_dir));
		cfg.quota_error_permanent = permanent;
		_exit(md_cli_deliver(&cfg, argc, argv, test_resolve, &quota));
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_store_cli_deliver)
{
	char *args[] = { "-f", "bob@example.org", ADDR };
	char *plain[] = { "al+tag@example.test" };
	char *nouser[] = { "nobody@example.test" };
	char *temp[] = { "tempfail@example.test" };
	char *usage[] = { "-x" };
	const char *msg = "From bob@example.org Mon Jan  1 00:00:00 2024\n"
			  "Subject: via deliver\n\nhello\n";
	struct md_store *s;
	struct md_user *u;
	struct md_mailbox *mb;
	struct md_msg m;
	char *data;

	ck_assert_int_eq(run_deliver(msg, strlen(msg), 0, false, 3, args), EX_OK);
	ck_assert_int_eq(run_deliver(msg, strlen(msg), 0, false, 1, plain), EX_OK);
	ck_assert_int_eq(run_deliver(msg, strlen(msg), 0, false, 1, nouser), EX_NOUSER);
	ck_assert_int_eq(run_deliver(msg, strlen(msg), 0, false, 1, temp), EX_TEMPFAIL);
	ck_assert_int_eq(run_deliver(msg, strlen(msg), 0, false, 1, usage), EX_USAGE);
	ck_assert_int_eq(run_deliver("", 0, 0, false, 1, plain), EX_DATAERR);
	ck_assert_int_eq(run_deliver("Subject: x\n\na\0b\n", 16, 0, false, 1, plain),
			 EX_DATAERR);
	ck_assert_int_eq(run_deliver(msg, strlen(msg), 10, false, 1, plain), EX_TEMPFAIL);
	ck_assert_int_eq(run_deliver(msg, strlen(msg), 10, true, 1, plain), EX_CANTCREAT);

	s = open_store();
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &m), MD_OK);
	data = read_file(m.path, NULL);
	ck_assert_str_eq(data, "Return-Path: <bob@example.org>\r\n"
			       "Delivered-To: " ADDR "\r\n"
			       "Subject: via deliver\r\n\r\nhello\r\n");
	free(data);
	md_msg_clear(&m);
	ck_assert_int_eq(md_msg_get(mb, 2, MD_READ_PATH, &m), MD_OK);
	data = read_file(m.path, NULL);
	ck_assert_ptr_nonnull(strstr(data, "Return-Path: <>\r\nDelivered-To: al+tag@"));
	free(data);
	md_msg_clear(&m);
	ck_assert_int_eq(md_msg_get(mb, 3, 0, &m), MD_NOTFOUND);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

static Suite *store_faults_suite(void)
{
	Suite *s = suite_create("store_faults");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_group_commit);
	tcase_add_test(tc, test_store_wake_many_mailboxes);
	tcase_add_test(tc, test_store_flags_race);
	tcase_add_test(tc, test_store_file_truncated_while_read);
	tcase_add_test(tc, test_store_two_processes);
	tcase_add_test(tc, test_store_crash_kill);
	tcase_add_test(tc, test_store_crash_kill_threads);
	tcase_add_test(tc, test_store_disk_full);
	tcase_add_test(tc, test_store_map_grows);
	tcase_add_test(tc, test_store_map_grows_concurrent);
	tcase_add_test(tc, test_store_cli_deliver);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_faults_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
