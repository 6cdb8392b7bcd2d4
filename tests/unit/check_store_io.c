/* The store with its system calls wrapped: store.cmake links this test
 * with --wrap for write, fsync, link, rename, unlink, mkdir, opendir,
 * strdup and mdb_txn_commit (to see the order of fsyncs and index
 * commits), so the calls the store (and core/) makes go through the
 * wrappers here.  Each file call made while the calling thread holds the
 * index's write transaction is counted (md_index_in_write_txn()): there
 * must be none (DESIGN.md).  They pass each
 * call on unless a test arms them: to fail the n-th call with an errno
 * (ENOSPC, EIO, EXDEV ...), to hold a directory fsync (the shared
 * directory fsync of concurrent deliveries), or to count (memory of a
 * poll).  LMDB is a shared library: its I/O is not affected. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_test.h"


/* ---- shared directory fsyncs ----------------------------------------------- */

/* Directory fsyncs are shared.  The first of GC_THREADS deliveries to
 * one user to ask for the fsync of new/ is held inside it (the fsync
 * wrapper below blocks directories while dir_gate is closed) until all the
 * others have linked their files and asked too; then one more fsync, which
 * started after all their links, covers them all: 2 fsyncs for 12
 * deliveries, where there were 12.  Every delivery is still acknowledged
 * with its own UID and file. */
static pthread_mutex_t dir_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dir_gate_cond = PTHREAD_COND_INITIALIZER;
static bool dir_gate_closed;
static int dir_gate_waiting;

static void dir_gate_pass(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	pthread_mutex_lock(&dir_gate_lock);
	dir_gate_waiting++;
	while (dir_gate_closed)
		pthread_cond_wait(&dir_gate_cond, &dir_gate_lock);
	dir_gate_waiting--;
	pthread_mutex_unlock(&dir_gate_lock);
}

static void dir_gate_set(bool closed)
{
	pthread_mutex_lock(&dir_gate_lock);
	dir_gate_closed = closed;
	pthread_cond_broadcast(&dir_gate_cond);
	pthread_mutex_unlock(&dir_gate_lock);
}

/* requests registered for dir (0 when nobody waits on it) */
static uint64_t dir_requests(struct md_store *s, const char *dir)
{
	uint64_t n = 0;

	pthread_mutex_lock(&s->dsync_lock);
	for (struct md_dsync *e = s->dsyncs; e != NULL; e = e->next)
		if (strcmp(e->path, dir) == 0)
			n = e->requested;
	pthread_mutex_unlock(&s->dsync_lock);
	return n;
}

START_TEST(test_store_dir_sync_shared)
{
	struct md_store *s = open_store();
	struct md_store_stats before, after;
	struct gc_arg args[GC_THREADS];
	pthread_t th[GC_THREADS];
	char dir[PATH_MAX];
	bool seen[GC_THREADS + 1] = { false };
	int i;

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: first\n\nx\n", 0, 0, NULL), MD_OK);
	md_store_get_stats(s, &before);
	ck_assert_uint_eq(before.dir_syncs, 1);
	user_dir(dir, sizeof(dir), "new");
	dir_gate_set(true);
	for (i = 0; i < GC_THREADS; i++) {
		args[i] = (struct gc_arg){ .s = s, .i = i };
		pthread_create(&th[i], NULL, gc_thread, &args[i]);
	}
	/* one fsync held in the gate, all twelve requests registered */
	for (i = 0; i < 3000 && dir_requests(s, dir) < GC_THREADS; i++)
		usleep(10 * 1000);
	ck_assert_uint_eq(dir_requests(s, dir), GC_THREADS);
	pthread_mutex_lock(&dir_gate_lock);
	ck_assert_int_eq(dir_gate_waiting, 1);
	pthread_mutex_unlock(&dir_gate_lock);
	ck_assert_uint_eq(count_files(dir), GC_THREADS + 1);
	dir_gate_set(false);
	for (i = 0; i < GC_THREADS; i++)
		pthread_join(th[i], NULL);
	md_store_get_stats(s, &after);
	for (i = 0; i < GC_THREADS; i++) {
		ck_assert_int_eq(args[i].r, MD_OK);
		ck_assert(args[i].uid >= 2 && args[i].uid <= GC_THREADS + 1);
		ck_assert(!seen[args[i].uid - 1]);
		seen[args[i].uid - 1] = true;
	}
	ck_assert_uint_eq(after.dir_syncs - before.dir_syncs, 2);
	ck_assert_ptr_null(s->dsyncs); /* entries freed by their last user */
	md_store_close(s);
}
END_TEST

/* The shared fsync reports a failure to every thread it covered: a
 * directory that cannot be opened gives -1 with errno, and the store's
 * bookkeeping is left empty. */
START_TEST(test_store_dir_sync_error)
{
	struct md_store *s = open_store();
	char missing[PATH_MAX];

	snprintf(missing, sizeof(missing), "%s/no-such-dir", tdir);
	errno = 0;
	ck_assert_int_eq(md_fsync_dir_shared(s, missing), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(s->dsyncs);
	ck_assert_int_eq(md_fsync_dir_shared(s, tdir), 0);
	md_store_close(s);
}
END_TEST

/* ---- injected I/O errors ---------------------------------------------------
 *
 * An armed fault makes the n-th call from now fail once with the errno
 * given.  The tests walk n = 1, 2, ... over a whole operation, so every
 * write of it fails once; after each run no partial or stray file may be
 * left, no file descriptor leaked, and index and Maildir must agree. */

enum fault_fn { F_WRITE, F_FSYNC, F_LINK, F_RENAME, F_UNLINK, F_COMMIT, F_N };

static int fault_left[F_N];  /* 0: off; n: the n-th call fails */
static int fault_err[F_N];
static int fault_hits[F_N];
static int fault_always[F_N]; /* errno every call fails with, or 0 */

static int strdup_calls = -1; /* counted while >= 0 */

char *__real_strdup(const char *str);
char *__wrap_strdup(const char *str);

char *__wrap_strdup(const char *str)
{
	if (__atomic_load_n(&strdup_calls, __ATOMIC_SEQ_CST) >= 0)
		__atomic_add_fetch(&strdup_calls, 1, __ATOMIC_SEQ_CST);
	return __real_strdup(str);
}

ssize_t __real_write(int fd, const void *buf, size_t len);
int __real_fsync(int fd);
int __real_link(const char *from, const char *to);
int __real_rename(const char *from, const char *to);
int __real_unlink(const char *path);
int __wrap_unlink(const char *path);
struct MDB_txn;
int __real_mdb_txn_commit(struct MDB_txn *txn);
int __wrap_mdb_txn_commit(struct MDB_txn *txn);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
int __wrap_fsync(int fd);
int __wrap_link(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to);

/* File calls made inside the index's write transaction, and the last */
static int txn_file_calls;
static char txn_file_last[PATH_MAX + 16];
static pthread_mutex_t txn_file_lock = PTHREAD_MUTEX_INITIALIZER;

static void txn_file_check(const char *call, const char *path)
{
	if (!md_index_in_write_txn())
		return;
	pthread_mutex_lock(&txn_file_lock);
	txn_file_calls++;
	snprintf(txn_file_last, sizeof(txn_file_last), "%s %s", call, path);
	pthread_mutex_unlock(&txn_file_lock);
}

static void txn_file_check_fd(const char *call, int fd)
{
	char proc[64], path[PATH_MAX];
	ssize_t n;

	if (!md_index_in_write_txn())
		return;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	txn_file_check(call, path);
}

static bool fault_fire(enum fault_fn f)
{
	int always = __atomic_load_n(&fault_always[f], __ATOMIC_SEQ_CST);

	if (always != 0) {
		errno = always;
		return true;
	}
	if (__atomic_load_n(&fault_left[f], __ATOMIC_SEQ_CST) <= 0 ||
	    __atomic_sub_fetch(&fault_left[f], 1, __ATOMIC_SEQ_CST) != 0)
		return false;
	__atomic_add_fetch(&fault_hits[f], 1, __ATOMIC_SEQ_CST);
	errno = fault_err[f];
	return true;
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	if (fd > 2) /* not the log */
		txn_file_check_fd("write", fd);
	return fault_fire(F_WRITE) ? -1 : __real_write(fd, buf, len);
}

int __real_mkdir(const char *path, mode_t mode);
int __wrap_mkdir(const char *path, mode_t mode);
DIR *__real_opendir(const char *path);
DIR *__wrap_opendir(const char *path);

/* called (on the calling thread, once) after a mkdir of a path ending in
 * mkdir_hook_at succeeded */
static void (*mkdir_hook)(void);
static const char *mkdir_hook_at;

int __wrap_mkdir(const char *path, mode_t mode)
{
	size_t plen = strlen(path), alen;
	int rc;

	txn_file_check("mkdir", path);
	rc = __real_mkdir(path, mode);
	if (rc == 0 && mkdir_hook != NULL && mkdir_hook_at != NULL &&
	    plen >= (alen = strlen(mkdir_hook_at)) &&
	    strcmp(path + plen - alen, mkdir_hook_at) == 0) {
		void (*hook)(void) = mkdir_hook;

		mkdir_hook = NULL;
		hook();
	}
	return rc;
}

DIR *__wrap_opendir(const char *path)
{
	txn_file_check("opendir", path);
	return __real_opendir(path);
}

/* Directory fsyncs done so far, and how many had been done when the last
 * index commit ran: an expunge or a flag change must have fsynced its
 * directory before the commit that records it. */
static int dir_fsyncs;
static int dir_fsyncs_at_commit;

/* The directories fsynced, by path (the newest DIRS_SEEN_MAX). */
#define DIRS_SEEN_MAX 64
static char dirs_seen[DIRS_SEEN_MAX][PATH_MAX];
static int n_dirs_seen;
static pthread_mutex_t dirs_seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void dir_seen(int fd)
{
	char proc[64], path[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if ((n = readlink(proc, path, sizeof(path) - 1)) < 0)
		return;
	path[n] = '\0';
	pthread_mutex_lock(&dirs_seen_lock);
	memcpy(dirs_seen[n_dirs_seen++ % DIRS_SEEN_MAX], path, (size_t)n + 1);
	pthread_mutex_unlock(&dirs_seen_lock);
}

static bool dir_was_synced(const char *path)
{
	bool found = false;

	pthread_mutex_lock(&dirs_seen_lock);
	for (int i = 0; i < n_dirs_seen && i < DIRS_SEEN_MAX; i++)
		found = found || strcmp(dirs_seen[i], path) == 0;
	pthread_mutex_unlock(&dirs_seen_lock);
	return found;
}

static bool fd_is_dir(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

int __wrap_fsync(int fd)
{
	bool dir = fd_is_dir(fd);

	txn_file_check_fd("fsync", fd);
	if (fault_fire(F_FSYNC))
		return -1;
	dir_gate_pass(fd);
	if (__real_fsync(fd) < 0)
		return -1;
	if (dir) {
		__atomic_add_fetch(&dir_fsyncs, 1, __ATOMIC_SEQ_CST);
		dir_seen(fd);
	}
	return 0;
}

void mdb_txn_abort(struct MDB_txn *txn);

/* An armed F_COMMIT fails the commit as LMDB does: the transaction is
 * aborted and freed, an error returned (the job fails). */
int __wrap_mdb_txn_commit(struct MDB_txn *txn)
{
	if (fault_fire(F_COMMIT)) {
		mdb_txn_abort(txn);
		return EIO;
	}
	__atomic_store_n(&dir_fsyncs_at_commit,
			 __atomic_load_n(&dir_fsyncs, __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
	return __real_mdb_txn_commit(txn);
}

/* every unlink of a path containing this fails with EIO (NULL: off) */
static const char *unlink_fail_in;

int __wrap_unlink(const char *path)
{
	const char *in = __atomic_load_n(&unlink_fail_in, __ATOMIC_SEQ_CST);

	txn_file_check("unlink", path);
	if (in != NULL && strstr(path, in) != NULL) {
		errno = EIO;
		return -1;
	}
	return fault_fire(F_UNLINK) ? -1 : __real_unlink(path);
}

int __wrap_link(const char *from, const char *to)
{
	txn_file_check("link", to);
	return fault_fire(F_LINK) ? -1 : __real_link(from, to);
}

/* called (on the renaming thread) after a rename to a path containing
 * rename_hook_at succeeded */
static void (*rename_hook)(void);
static const char *rename_hook_at;

int __wrap_rename(const char *from, const char *to)
{
	int rc;

	txn_file_check("rename", to);
	if (fault_fire(F_RENAME))
		return -1;
	rc = __real_rename(from, to);
	if (rc == 0 && rename_hook != NULL && rename_hook_at != NULL &&
	    strstr(to, rename_hook_at) != NULL) {
		void (*hook)(void) = rename_hook;

		rename_hook = NULL; /* once */
		hook();
	}
	return rc;
}

static void fault_arm(enum fault_fn f, int n, int err)
{
	fault_err[f] = err;
	__atomic_store_n(&fault_hits[f], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fault_left[f], n, __ATOMIC_SEQ_CST);
}

/* true when the armed fault fired; disarms */
static bool fault_disarm(enum fault_fn f)
{
	__atomic_store_n(&fault_left[f], 0, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&fault_hits[f], __ATOMIC_SEQ_CST) > 0;
}

static size_t open_fds(void)
{
	return count_files("/proc/self/fd");
}

/* Every regular file under dir (recursively), except the index. */
static size_t tree_files_n;
static int tree_count(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	if (type == FTW_F && S_ISREG(st->st_mode) && strstr(p, "/index/") == NULL &&
	    strstr(p, "postern-indexed") == NULL && strstr(p, "maildirfolder") == NULL &&
	    strstr(p, "dovecot-keywords") == NULL)
		tree_files_n++;
	return 0;
}

static size_t tree_files(void)
{
	tree_files_n = 0;
	nftw(tdir, tree_count, 16, FTW_PHYS);
	return tree_files_n;
}

/* Messages the index has in INBOX of addr (syncing first: it must agree
 * with the files, so a sync may change nothing). */
static uint32_t inbox_messages(struct md_store *s, const char *addr)
{
	struct md_user *u;
	struct md_status st;
	struct md_store_stats a, b;

	ck_assert_int_eq(md_user_open(s, addr, 0, &u), MD_OK);
	md_store_get_stats(s, &a);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	md_store_get_stats(s, &b);
	md_user_close(u);
	return st.messages;
}

/* Deliver to ADDR and to bob while the n-th call of f fails, for n = 1, 2,
 * ... until a delivery no longer reaches the fault.  A target either got
 * its message (MD_OK: file and record) or nothing at all. */
static void fault_walk_delivery(enum fault_fn f, int err, int link_err)
{
	struct md_store *s = open_store();
	struct md_user *u;
	const char *bob = "bob@example.test";
	uint32_t have_a = 0, have_b = 0, saw_nospace = 0;
	size_t fds = 0;
	int n;

	ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
	md_user_close(u);
	ck_assert_int_eq(md_user_open(s, bob, MD_USER_CREATE, &u), MD_OK);
	md_user_close(u);
	for (n = 1; n < 100; n++) {
		struct md_delivery *d;
		struct md_target t[2] = {
			{ .address = ADDR, .create_user = true },
			{ .address = bob, .create_user = true },
		};
		char chunk[1000];
		bool fired;

		fds = open_fds();
		ck_assert_int_eq(md_delivery_open(s, 0, 0, &d), MD_OK);
		/* link_err: every link "crosses file systems" */
		__atomic_store_n(&fault_always[F_LINK], link_err, __ATOMIC_SEQ_CST);
		fault_arm(f, n, err);
		md_delivery_write(d, "Subject: fault\n\n", 16);
		memset(chunk, 'f', sizeof(chunk));
		chunk[sizeof(chunk) - 1] = '\n';
		for (int i = 0; i < 100; i++) /* 100 KB: two buffer flushes */
			md_delivery_write(d, chunk, sizeof(chunk));
		md_delivery_commit(d, t, 2);
		md_delivery_free(d);
		fired = fault_disarm(f);
		__atomic_store_n(&fault_always[F_LINK], 0, __ATOMIC_SEQ_CST);
		if (!fired) {
			ck_assert_int_eq(t[0].result, MD_OK);
			ck_assert_int_eq(t[1].result, MD_OK);
		} else {
			/* a full disk says so (MD_NOSPACE); other errors
			 * stay MD_TEMPFAIL */
			for (int k = 0; k < 2; k++) {
				ck_assert(t[k].result == MD_OK || t[k].result == MD_TEMPFAIL ||
					  (err == ENOSPC && t[k].result == MD_NOSPACE));
				saw_nospace += t[k].result == MD_NOSPACE;
			}
			ck_assert(t[0].result != MD_OK || t[1].result != MD_OK);
		}
		have_a += t[0].result == MD_OK;
		have_b += t[1].result == MD_OK;
		ck_assert_msg(open_fds() == fds, "fd leaked (fault %d, n=%d)", (int)f, n);
		/* files on disk: exactly the delivered copies (2 links of a
		 * file count twice); nothing in a spool or tmp/ */
		ck_assert_msg(tree_files() == have_a + have_b,
			      "n=%d: %zu files for %u messages", n, tree_files(),
			      have_a + have_b);
		ck_assert_uint_eq(inbox_messages(s, ADDR), have_a);
		ck_assert_uint_eq(inbox_messages(s, bob), have_b);
		if (!fired)
			break;
	}
	ck_assert_int_gt(n, 1); /* the fault was reached at least once */
	ck_assert_int_lt(n, 100);
	if (err == ENOSPC && f != F_FSYNC)
		ck_assert_uint_gt(saw_nospace, 0);
	md_store_close(s);
}

/* Issue 13: a new user's Maildir is durable up the tree before its first
 * message is acknowledged: the new domain and user directories' entries
 * in their parents, and cur/ new/ tmp/ in the user's. */
START_TEST(test_store_new_maildir_durable)
{
	struct md_store *s = open_store();
	char path[PATH_MAX], real[PATH_MAX];
	uint32_t uid;

	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: first\r\n\r\nhi\r\n", 0, 0, &uid),
			 MD_OK);
	md_store_close(s);
	ck_assert_ptr_nonnull(realpath(tdir, real));
	snprintf(path, sizeof(path), "%s/mail", real);
	ck_assert_msg(dir_was_synced(path), "%s not fsynced", path);
	snprintf(path, sizeof(path), "%s/mail/example.test", real);
	ck_assert_msg(dir_was_synced(path), "%s not fsynced", path);
	snprintf(path, sizeof(path), "%s/mail/example.test/alice", real);
	ck_assert_msg(dir_was_synced(path), "%s not fsynced", path);
	snprintf(path, sizeof(path), "%s/mail/example.test/alice/.Sent", real);
	ck_assert_msg(dir_was_synced(path), "%s not fsynced", path);
}
END_TEST

START_TEST(test_store_fault_write)
{
	fault_walk_delivery(F_WRITE, ENOSPC, 0);
}
END_TEST

START_TEST(test_store_fault_fsync)
{
	fault_walk_delivery(F_FSYNC, EIO, 0);
}
END_TEST

START_TEST(test_store_fault_link)
{
	fault_walk_delivery(F_LINK, ENOSPC, 0);
}
END_TEST

/* The copy through tmp/ when the link crosses file systems (EXDEV), with
 * each of its writes, fsyncs and renames failing in turn. */
START_TEST(test_store_fault_exdev)
{
	fault_walk_delivery(F_WRITE, ENOSPC, EXDEV);
	teardown();
	setup();
	fault_walk_delivery(F_FSYNC, EIO, EXDEV);
	teardown();
	setup();
	fault_walk_delivery(F_RENAME, EIO, EXDEV);
}
END_TEST

/* COPY and MOVE link every file into the destination's cur/ and fsync it
 * before indexing: a failing link or fsync leaves no copy behind and the
 * source untouched. */
static void fault_walk_copy(enum fault_fn f, int err, bool move)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_mailbox *mb;
	const uint32_t uids[3] = { 1, 2, 3 };
	char cur[PATH_MAX];
	uint32_t copies = 0;
	int n;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: c\n\nc\n", 0, 0, NULL),
				 MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
	user_dir(cur, sizeof(cur), ".Archive/cur");
	for (n = 1; n < 20; n++) {
		struct md_status st;
		uint32_t dest[3];
		enum md_result r;
		size_t fds = open_fds();
		bool fired;

		fault_arm(f, n, err);
		r = md_msg_copy(mb, uids, 3, "Archive", move, 0, 0, NULL, dest);
		fired = fault_disarm(f);
		ck_assert(r == MD_OK || (fired && r == MD_TEMPFAIL));
		copies += r == MD_OK ? 3 : 0;
		ck_assert_msg(open_fds() == fds, "fd leaked (fault %d, n=%d)", (int)f, n);
		ck_assert_uint_eq(count_files(cur), copies);
		ck_assert_int_eq(md_mailbox_status(u, "Archive", &st), MD_OK);
		ck_assert_uint_eq(st.messages, copies);
		ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
		ck_assert_uint_eq(st.messages, move && copies > 0 ? 0 : 3);
		if (!fired || r == MD_OK)
			break;
	}
	ck_assert_int_gt(n, 1);
	ck_assert_uint_eq(copies, 3);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}

START_TEST(test_store_fault_copy)
{
	fault_walk_copy(F_LINK, ENOSPC, false);
	teardown();
	setup();
	fault_walk_copy(F_FSYNC, EIO, false);
	teardown();
	setup();
	fault_walk_copy(F_LINK, EMLINK, true);
	teardown();
	setup();
	fault_walk_copy(F_FSYNC, EIO, true);
}
END_TEST

/* The poll after a delivery (IDLE, NOOP) reads new/ only, and keeps in
 * memory the index's view of new/ only: not one entry per message of the
 * mailbox (it loaded them all: about 120 MB per poll, and per session, in
 * a mailbox of a million messages).  Counted: the file names copied. */
START_TEST(test_store_poll_memory)
{
	struct md_store *s = open_store();
	struct md_user *u;
	struct md_status st;
	struct timespec old[2];
	char dir[PATH_MAX];
	int calls;

	for (int i = 0; i < 300; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: s\n\nseen\n",
					 MD_FLAG_SEEN, 0, NULL), MD_OK);
	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= 60;
	old[1] = old[0];
	user_dir(dir, sizeof(dir), "cur");
	ck_assert_int_eq(utimensat(AT_FDCWD, dir, old, 0), 0);
	user_dir(dir, sizeof(dir), "new");
	ck_assert_int_eq(utimensat(AT_FDCWD, dir, old, 0), 0);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK); /* full scan */
	ck_assert_uint_eq(st.messages, 300);
	ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: n\n\nnew\n", 0, 0, NULL), MD_OK);
	__atomic_store_n(&strdup_calls, 0, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
	calls = __atomic_exchange_n(&strdup_calls, -1, __ATOMIC_SEQ_CST);
	ck_assert_uint_eq(st.messages, 301);
	ck_assert_msg(calls < 20, "%d file names copied for a poll", calls);
	md_user_close(u);
	md_store_close(s);
}
END_TEST

/* Put a file with bare LF line endings into INBOX's new/ as another
 * program would, and make new/ and cur/ look old: a directory changed within the
 * last two seconds is scanned again anyway (MD_MTIME_DIRTY_NS), which
 * would hide a mailbox that is wrongly taken as up to date. */
static void drop_lf_file(int i)
{
	char dir[PATH_MAX], path[PATH_MAX], text[64];
	struct timespec old[2];

	user_dir(dir, sizeof(dir), "new");
	snprintf(path, sizeof(path), "%s/170000%04d.M1P1.mutt", dir, i);
	snprintf(text, sizeof(text), "Subject: lf %d\n\nline\n", i);
	write_text(path, text);
	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= 60;
	old[1] = old[0];
	ck_assert_int_eq(utimensat(AT_FDCWD, dir, old, 0), 0);
	user_dir(dir, sizeof(dir), "cur");
	ck_assert_int_eq(utimensat(AT_FDCWD, dir, old, 0), 0);
}

/* The first sync of a file with bare LF line endings writes a CRLF copy
 * (tmp/, fsync, rename over the original inside the index job).  Each of
 * those writes fails in turn: the sync may fail or leave the file for
 * later, but no copy stays in tmp/, no fd leaks, and the next access
 * indexes the file.  (It did not: the scan stored new/'s mtime although a
 * file was skipped, so the file stayed invisible until new/ changed.) */
static void fault_walk_sync(enum fault_fn f, int err)
{
	struct md_store *s = open_store();
	struct md_user *u;
	char tmp[PATH_MAX];
	uint32_t have = 0;
	int n;

	ck_assert_int_eq(md_user_open(s, ADDR, MD_USER_CREATE, &u), MD_OK);
	user_dir(tmp, sizeof(tmp), "tmp");
	for (n = 1; n < 50; n++) {
		struct md_status st;
		enum md_result r;
		size_t fds;
		bool fired;

		drop_lf_file(n);
		fds = open_fds();
		fault_arm(f, n, err);
		r = md_mailbox_status(u, "INBOX", &st);
		fired = fault_disarm(f);
		ck_assert(r == MD_OK || (fired && r == MD_TEMPFAIL));
		ck_assert_uint_eq(count_files(tmp), 0);
		ck_assert_msg(open_fds() == fds, "fd leaked (fault %d, n=%d)", (int)f, n);
		ck_assert_int_eq(md_mailbox_status(u, "INBOX", &st), MD_OK);
		ck_assert_msg(st.messages == ++have, "n=%d: %u messages, want %u", n,
			      st.messages, have);
		if (!fired)
			break;
	}
	ck_assert_int_gt(n, 1);
	ck_assert_int_lt(n, 50);
	{
		struct md_mailbox *mb;
		struct md_msg *msgs;
		size_t nm;

		ck_assert_int_eq(md_mailbox_open(u, "INBOX", &mb, NULL), MD_OK);
		ck_assert_int_eq(md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs,
					     &nm), MD_OK);
		for (size_t i = 0; i < nm; i++) {
			size_t len;
			char *data = read_file(msgs[i].path, &len);

			ck_assert_ptr_nonnull(data);
			ck_assert_ptr_nonnull(strstr(data, "\r\n\r\nline\r\n"));
			ck_assert_uint_eq(len, msgs[i].size);
			free(data);
		}
		md_msg_list_free(msgs, nm);
		md_mailbox_close(mb);
	}
	md_user_close(u);
	md_store_close(s);
}

START_TEST(test_store_fault_sync_write)
{
	fault_walk_sync(F_WRITE, ENOSPC);
}
END_TEST

START_TEST(test_store_fault_sync_fsync)
{
	fault_walk_sync(F_FSYNC, EIO);
}
END_TEST

START_TEST(test_store_fault_sync_rename)
{
	fault_walk_sync(F_RENAME, EIO);
}
END_TEST

/* ---- expunges and flag changes: durable before the index says so ---------- */

/* INBOX of ADDR with n messages delivered; *mb_r open on it */
static struct md_user *durable_open(struct md_store *s, int n, struct md_mailbox **mb_r)
{
	struct md_user *u;
	struct md_status st;

	for (int i = 0; i < n; i++)
		ck_assert_int_eq(deliver(s, ADDR, NULL, "Subject: d\n\nx\n", 0, 0, NULL),
				 MD_OK);
	ck_assert_int_eq(md_user_open(s, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(u, "INBOX", mb_r, &st), MD_OK);
	ck_assert_uint_eq(st.messages, (uint32_t)n);
	return u;
}

static bool durable_has(struct md_mailbox *mb, uint32_t uid, bool file)
{
	struct md_msg m;
	bool there;

	if (md_msg_get(mb, uid, MD_READ_PATH, &m) != MD_OK)
		return false;
	there = !file || access(m.path, F_OK) == 0;
	md_msg_clear(&m);
	return there;
}

/* closes what durable_open() opened, and the store */
static void durable_close(struct md_store *s, struct md_user *u, struct md_mailbox *mb)
{
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}

/* (a) the directory fsync of an expunge (POP3's by UID, IMAP's of \Deleted)
 * and of a STORE's renames comes before the index commit recording it */
START_TEST(test_store_expunge_dirsync_first)
{
	struct md_store *s = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 3, &mb);
	struct md_flags_result res[1];
	uint32_t uid1 = 1, uid2 = 2, *ex;
	size_t n;
	int base;

	base = __atomic_load_n(&dir_fsyncs, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_msg_expunge(mb, &uid1, 1, 0, &ex, &n), MD_OK);
	ck_assert_uint_eq(n, 1);
	free(ex);
	ck_assert_int_gt(__atomic_load_n(&dir_fsyncs_at_commit, __ATOMIC_SEQ_CST), base);

	base = __atomic_load_n(&dir_fsyncs, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_msg_store(mb, &uid2, 1, MD_FLAGS_ADD, MD_FLAG_DELETED,
				      NULL, 0, 0, res), MD_OK);
	ck_assert_int_eq(res[0].result, MD_OK);
	ck_assert_int_gt(__atomic_load_n(&dir_fsyncs_at_commit, __ATOMIC_SEQ_CST), base);

	base = __atomic_load_n(&dir_fsyncs, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_msg_expunge(mb, NULL, 0, MD_EXPUNGE_DELETED_ONLY, &ex, &n),
			 MD_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ex[0], 2);
	free(ex);
	ck_assert_int_gt(__atomic_load_n(&dir_fsyncs_at_commit, __ATOMIC_SEQ_CST), base);
	ck_assert(durable_has(mb, 3, true));
	durable_close(s, u, mb);
}
END_TEST

/* (b) an unlink that fails (not ENOENT) keeps the message: record and file */
static void durable_unlink_fails(int err)
{
	struct md_store *s = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 2, &mb);
	uint32_t uids[] = { 1, 2 }, *ex;
	size_t n;

	__atomic_store_n(&fault_always[F_UNLINK], err, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_msg_expunge(mb, uids, 2, 0, &ex, &n), MD_OK);
	__atomic_store_n(&fault_always[F_UNLINK], 0, __ATOMIC_SEQ_CST);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(md_msg_expunge_kept(mb), 2);
	free(ex);
	ck_assert(durable_has(mb, 1, true));
	ck_assert(durable_has(mb, 2, true));
	ck_assert_uint_eq(inbox_messages(s, ADDR), 2);
	/* the second unlink only fails: the first message goes */
	fault_arm(F_UNLINK, 2, err);
	ck_assert_int_eq(md_msg_expunge(mb, uids, 2, 0, &ex, &n), MD_OK);
	fault_disarm(F_UNLINK);
	ck_assert_uint_ge(n, 1);
	ck_assert_uint_eq(md_msg_expunge_kept(mb), 2 - n);
	free(ex);
	ck_assert_uint_eq(inbox_messages(s, ADDR), 2 - (uint32_t)n);
	ck_assert_uint_eq(tree_files(), 2 - n);
	md_mailbox_close(mb);
	md_user_close(u);
	md_store_close(s);
}

START_TEST(test_store_expunge_unlink_eio)
{
	durable_unlink_fails(EIO);
}
END_TEST

START_TEST(test_store_expunge_unlink_eacces)
{
	durable_unlink_fails(EACCES);
}
END_TEST

/* (c) a failed directory fsync fails the expunge: the record stays (the
 * next sync settles it from the files) */
START_TEST(test_store_expunge_dirsync_error)
{
	struct md_store *s = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 2, &mb);
	uint32_t uid = 1, *ex = NULL;
	size_t n = 99;

	__atomic_store_n(&fault_always[F_FSYNC], EIO, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_msg_expunge(mb, &uid, 1, 0, &ex, &n), MD_TEMPFAIL);
	__atomic_store_n(&fault_always[F_FSYNC], 0, __ATOMIC_SEQ_CST);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(ex);
	ck_assert(durable_has(mb, 1, false)); /* still listed */
	ck_assert(durable_has(mb, 2, true));
	durable_close(s, u, mb);
}
END_TEST

/* ---- no file work under the index's write lock (issue 13) ---------------- */

/* Every operation of the store that changes files, once each: none may
 * make a file call while it holds the write transaction. */
START_TEST(test_store_no_file_work_in_txn)
{
	struct md_store *s = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 6, &mb);
	const uint32_t two[2] = { 1, 2 }, three = 3, four = 4, five = 5;
	const char *kw[30];
	char names[30][16], cur[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct md_flags_result res[2];
	struct md_msg m;
	uint32_t dest[2], *ex;
	size_t n;

	__atomic_store_n(&txn_file_calls, 0, __ATOMIC_SEQ_CST);
	/* more keywords than letters: dovecot-keywords and postern-keywords */
	for (int i = 0; i < 30; i++) {
		snprintf(names[i], sizeof(names[i]), "kw%02d", i);
		kw[i] = names[i];
	}
	ck_assert_int_eq(md_msg_store(mb, two, 2, MD_FLAGS_ADD, MD_FLAG_SEEN, kw, 30, 0,
				      res), MD_OK);
	ck_assert_int_eq(res[0].result, MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Work", 0), MD_OK);
	ck_assert_int_eq(md_msg_copy(mb, two, 2, "Work", false, 0, 0, NULL, dest), MD_OK);
	ck_assert_int_eq(md_msg_copy(mb, &three, 1, "Work", true, 0, 0, NULL, dest), MD_OK);
	ck_assert_uint_gt(dest[0], 0);
	ck_assert_int_eq(md_msg_store(mb, &four, 1, MD_FLAGS_ADD, MD_FLAG_DELETED, NULL, 0,
				      0, res), MD_OK);
	ck_assert_int_eq(md_msg_expunge(mb, NULL, 0, MD_EXPUNGE_DELETED_ONLY, &ex, &n),
			 MD_OK);
	ck_assert_uint_eq(n, 1);
	free(ex);
	ck_assert_int_eq(md_msg_expunge(mb, &five, 1, 0, &ex, &n), MD_OK);
	ck_assert_uint_eq(n, 1);
	free(ex);
	ck_assert_int_eq(md_mailbox_rename(u, "Work", "Done"), MD_OK);
	ck_assert_int_eq(md_mailbox_delete(u, "Done"), MD_OK);
	/* outside changes a sync takes in: a bare-LF file dropped in (CRLF
	 * copy renamed over it), a flag change by another program, a file
	 * removed by another program */
	ck_assert_int_eq(md_msg_get(mb, 6, MD_READ_PATH, &m), MD_OK);
	user_dir(cur, sizeof(cur), "cur");
	snprintf(to, sizeof(to), "%s/%s", cur, "1700000000.M1P1.other:2,F");
	ck_assert_int_eq(rename(m.path, to), 0);
	md_msg_clear(&m);
	ck_assert_int_eq(md_msg_get(mb, 1, MD_READ_PATH, &m), MD_OK);
	snprintf(from, sizeof(from), "%s", m.path);
	md_msg_clear(&m);
	ck_assert_int_eq(unlink(from), 0);
	drop_lf_file(1);
	ck_assert_int_eq(md_mailbox_sync(mb, NULL), MD_OK);
	ck_assert_uint_eq(inbox_messages(s, ADDR), 3); /* 2, 6 (renamed), the LF one */
	ck_assert_msg(__atomic_load_n(&txn_file_calls, __ATOMIC_SEQ_CST) == 0,
		      "%d file calls inside the write transaction, the last: %s",
		      txn_file_calls, txn_file_last);
	durable_close(s, u, mb);
}
END_TEST

/* ---- MOVE that fails half-way: nothing lost, nothing doubled ------------- */

/* Messages of a mailbox, by the index and by files on disk */
static void move_counts(struct md_user *u, const char *name, uint32_t *idx_r,
			size_t *files_r)
{
	struct md_status st;
	char dir[PATH_MAX], sub[PATH_MAX];

	ck_assert_int_eq(md_mailbox_status(u, name, &st), MD_OK);
	*idx_r = st.messages;
	user_dir(dir, sizeof(dir), strcmp(name, "INBOX") == 0 ? "" : ".Archive");
	snprintf(sub, sizeof(sub), "%s/cur", dir);
	*files_r = count_files(sub);
	snprintf(sub, sizeof(sub), "%s/new", dir);
	*files_r += count_files(sub);
}

/* The originals' unlinks fail (EIO, not ENOENT): each original stays and
 * its copy is removed again; with the second unlink failing, the others
 * move and that one stays. */
START_TEST(test_store_move_unlink_fails)
{
	struct md_store *s = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 3, &mb);
	const uint32_t uids[3] = { 1, 2, 3 };
	uint32_t dest[3], in_idx, ar_idx;
	size_t in_files, ar_files;

	/* INBOX's files only (delivered into alice/new/) */
	__atomic_store_n(&unlink_fail_in, "alice/new/", __ATOMIC_SEQ_CST);
	ck_assert_int_eq(md_msg_copy(mb, uids, 3, "Archive", true, 0, 0, NULL, dest), MD_OK);
	__atomic_store_n(&unlink_fail_in, NULL, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(dest[i], 0); /* not moved */
	move_counts(u, "INBOX", &in_idx, &in_files);
	move_counts(u, "Archive", &ar_idx, &ar_files);
	ck_assert_uint_eq(in_idx, 3);
	ck_assert_uint_eq(in_files, 3);
	ck_assert_uint_eq(ar_idx, 0);
	ck_assert_uint_eq(ar_files, 0);

	fault_arm(F_UNLINK, 2, EIO);
	ck_assert_int_eq(md_msg_copy(mb, uids, 3, "Archive", true, 0, 0, NULL, dest), MD_OK);
	ck_assert(fault_disarm(F_UNLINK));
	ck_assert_uint_gt(dest[0], 0);
	ck_assert_uint_eq(dest[1], 0);
	ck_assert_uint_gt(dest[2], 0);
	move_counts(u, "INBOX", &in_idx, &in_files);
	move_counts(u, "Archive", &ar_idx, &ar_files);
	ck_assert_uint_eq(in_idx, 1);
	ck_assert_uint_eq(in_files, 1);
	ck_assert_uint_eq(ar_idx, 2);
	ck_assert_uint_eq(ar_files, 2);
	ck_assert(durable_has(mb, 2, true));
	durable_close(s, u, mb);
}
END_TEST

/* The index commit of a MOVE fails after the originals were unlinked:
 * the MOVE is undone from the disk (each original linked back under its
 * name, the copies removed).  Walked over every commit of the MOVE. */
START_TEST(test_store_move_undo_after_unlinks)
{
	struct md_store *s = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 3, &mb);
	const uint32_t uids[3] = { 1, 2, 3 };
	int n, undone = 0;

	for (n = 1; n < 20; n++) {
		uint32_t dest[3], in_idx, ar_idx;
		size_t in_files, ar_files;
		enum md_result r;
		bool fired;

		fault_arm(F_COMMIT, n, EIO);
		r = md_msg_copy(mb, uids, 3, "Archive", true, 0, 0, NULL, dest);
		fired = fault_disarm(F_COMMIT);
		move_counts(u, "INBOX", &in_idx, &in_files);
		move_counts(u, "Archive", &ar_idx, &ar_files);
		if (r == MD_OK) {
			ck_assert_uint_eq(in_idx, 0);
			ck_assert_uint_eq(in_files, 0);
			ck_assert_uint_eq(ar_idx, 3);
			ck_assert_uint_eq(ar_files, 3);
			break;
		}
		ck_assert(fired);
		ck_assert_int_eq(r, MD_TEMPFAIL);
		/* all three back where they were, under their recorded names */
		ck_assert_uint_eq(in_idx, 3);
		ck_assert_uint_eq(in_files, 3);
		ck_assert_uint_eq(ar_idx, 0);
		ck_assert_uint_eq(ar_files, 0);
		for (uint32_t uid = 1; uid <= 3; uid++)
			ck_assert(durable_has(mb, uid, true));
		undone++;
	}
	ck_assert_int_lt(n, 20);
	ck_assert_int_ge(undone, 2); /* the keyword job's commit, the move's */
	durable_close(s, u, mb);
}
END_TEST

/* ---- RENAME with a folder sync in between ---------------------------------- */

static struct md_store *rs_store;

/* Another session lists the folders right after RENAME moved the first
 * directory: the root changed, so its folder sync runs (and must leave
 * the names of the RENAME in flight alone). */
static void rs_list_now(void)
{
	struct md_user *u;
	struct md_mailbox_info *list = NULL;
	size_t n = 0;

	ck_assert_int_eq(md_user_open(rs_store, ADDR, 0, &u), MD_OK);
	ck_assert_int_eq(md_mailbox_list(u, &list, &n), MD_OK);
	free(list);
	md_user_close(u);
}

START_TEST(test_store_rename_sync_between)
{
	struct md_store *s = rs_store = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 2, &mb);
	const uint32_t uids[2] = { 1, 2 };
	struct md_status before, after;
	struct timespec old[2];
	char root[PATH_MAX];
	uint32_t dest[2];

	ck_assert_int_eq(md_mailbox_create(u, "Work", 0), MD_OK);
	ck_assert_int_eq(md_mailbox_create(u, "Work/Sub", 0), MD_OK);
	ck_assert_int_eq(md_msg_copy(mb, uids, 2, "Work", false, 0, 0, NULL, dest), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "Work", &before), MD_OK);
	/* the root looks settled, so only a change makes a sync list it */
	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= 60;
	old[1] = old[0];
	user_dir(root, sizeof(root), "");
	ck_assert_int_eq(utimensat(AT_FDCWD, root, old, 0), 0);
	rs_list_now();
	rename_hook_at = "/.Done";
	rename_hook = rs_list_now;
	ck_assert_int_eq(md_mailbox_rename(u, "Work", "Done"), MD_OK);
	ck_assert_ptr_null(rename_hook); /* it ran */
	ck_assert_int_eq(md_mailbox_status(u, "Done", &after), MD_OK);
	ck_assert_uint_eq(after.mailbox_id, before.mailbox_id);
	ck_assert_uint_eq(after.uidvalidity, before.uidvalidity);
	ck_assert_uint_eq(after.messages, 2);
	ck_assert_int_eq(md_mailbox_status(u, "Done/Sub", &after), MD_OK);
	ck_assert_int_eq(md_mailbox_status(u, "Work", &after), MD_NOMAILBOX);
	ck_assert_int_eq(md_mailbox_status(u, "Work/Sub", &after), MD_NOMAILBOX);
	/* and a folder sync afterwards agrees with it */
	ck_assert_int_eq(utimensat(AT_FDCWD, root, old, 0), 0);
	rs_list_now();
	ck_assert_int_eq(md_mailbox_status(u, "Done", &after), MD_OK);
	ck_assert_uint_eq(after.uidvalidity, before.uidvalidity);
	durable_close(s, u, mb);
}
END_TEST

/* CREATE makes the Maildir before its job: another session's folder sync
 * that runs in between indexes the new folder first.  The CREATE is still
 * done (not "already exists"), with the special use it asked for. */
START_TEST(test_store_create_sync_between)
{
	struct md_store *s = rs_store = open_store();
	struct md_mailbox *mb;
	struct md_user *u = durable_open(s, 1, &mb);
	struct md_mailbox_info *list = NULL;
	struct timespec old[2];
	char root[PATH_MAX];
	size_t n = 0;
	bool found = false;

	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= 60;
	old[1] = old[0];
	user_dir(root, sizeof(root), "");
	ck_assert_int_eq(utimensat(AT_FDCWD, root, old, 0), 0);
	rs_list_now();
	mkdir_hook_at = "/.Work/tmp";
	mkdir_hook = rs_list_now;
	ck_assert_int_eq(md_mailbox_create(u, "Work", MD_SPECIAL_ARCHIVE), MD_OK);
	ck_assert_ptr_null(mkdir_hook); /* it ran */
	ck_assert_int_eq(md_mailbox_list(u, &list, &n), MD_OK);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].name, "Work") != 0)
			continue;
		found = true;
		ck_assert(list[i].exists);
		ck_assert_uint_eq(list[i].special_use, MD_SPECIAL_ARCHIVE);
	}
	free(list);
	ck_assert(found);
	ck_assert_int_eq(md_mailbox_create(u, "Work", 0), MD_EXISTS);
	durable_close(s, u, mb);
}
END_TEST

/* A checked teardown: no test made a file call inside the transaction */
static void io_teardown(void)
{
	int calls = __atomic_load_n(&txn_file_calls, __ATOMIC_SEQ_CST);

	teardown();
	ck_assert_msg(calls == 0, "%d file calls inside the write transaction, the last: %s",
		      calls, txn_file_last);
}

static Suite *store_io_suite(void)
{
	Suite *s = suite_create("store_io");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, io_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_dir_sync_shared);
	tcase_add_test(tc, test_store_dir_sync_error);
	tcase_add_test(tc, test_store_fault_write);
	tcase_add_test(tc, test_store_fault_fsync);
	tcase_add_test(tc, test_store_fault_link);
	tcase_add_test(tc, test_store_fault_exdev);
	tcase_add_test(tc, test_store_fault_copy);
	tcase_add_test(tc, test_store_fault_sync_write);
	tcase_add_test(tc, test_store_fault_sync_fsync);
	tcase_add_test(tc, test_store_fault_sync_rename);
	tcase_add_test(tc, test_store_poll_memory);
	tcase_add_test(tc, test_store_expunge_dirsync_first);
	tcase_add_test(tc, test_store_expunge_unlink_eio);
	tcase_add_test(tc, test_store_expunge_unlink_eacces);
	tcase_add_test(tc, test_store_expunge_dirsync_error);
	tcase_add_test(tc, test_store_new_maildir_durable);
	tcase_add_test(tc, test_store_no_file_work_in_txn);
	tcase_add_test(tc, test_store_move_unlink_fails);
	tcase_add_test(tc, test_store_move_undo_after_unlinks);
	tcase_add_test(tc, test_store_rename_sync_between);
	tcase_add_test(tc, test_store_create_sync_between);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_io_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
