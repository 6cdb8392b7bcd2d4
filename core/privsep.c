/* The privileged file reader ("helper").
 *
 * Why: the daemon binds its ports as root and drops to run_as_user.  A
 * TLS key is usually mode 0600 owned by root (certbot's are), so after the
 * drop a SIGHUP could not read a renewed key; an administrator may keep
 * DATA_DIR/users root-only too.  Started as root with run_as_user, the
 * daemon therefore forks this helper, which keeps root for that one job.
 *
 * Why a child and not a privileged parent (DESIGN.md's wording): the
 * daemon stays the service's main process, so systemd's MAINPID, the
 * sd_notify messages (READY, RELOADING, STOPPING), `systemctl reload`'s
 * SIGHUP and the graceful stop all stay with the process that serves;
 * the helper needs none of them.  It is forked first thing in
 * main_serve_config(), before any thread, listener, store or TLS state
 * exists, so it holds none of them.
 *
 * What it may read: the list it got at fork time (every certificate and
 * key file of the configuration, DATA_DIR/users and DATA_DIR/aliases).
 * The unprivileged side sends an index into that list, never a path, and
 * the helper answers with at most PRIVSEP_FILE_MAX bytes of that file:
 * a compromised daemon can read those files and nothing else.  DATA_DIR
 * belongs to run_as_user, so a file there could be swapped for a link to
 * /etc/shadow: the helper reads it only when it is a regular file, not a
 * symlink, with one hard link.  Certificates and keys are followed through
 * symlinks (certbot's live/ points into archive/): they must stay in
 * directories that run_as_user cannot write.  Only regular files are read,
 * opened non-blocking: a FIFO cannot hang the helper.
 *
 * Wire (a SOCK_STREAM socketpair; host byte order, both ends are one
 * program):
 *   request: uint32 index, uint32 max        (max: the caller's bound)
 *   reply:   int32 errno (0: ok), uint32 length, then length bytes
 *
 * What it gives up: every descriptor but the socket and stdio (stderr
 * carries its log lines), every capability but CAP_DAC_READ_SEARCH (read
 * any file, kept when it has it), core dumps and ptrace (not dumpable),
 * new privileges.  It
 * dies with the daemon (PR_SET_PDEATHSIG), exits when the socket closes,
 * and ignores SIGHUP, SIGINT and SIGPIPE: a terminal's hang-up or Ctrl-C
 * is for the daemon, which stops gracefully and then closes the socket.
 * The daemon's Landlock sandbox is applied later, to the daemon alone.
 *
 * The daemon's side is thread-safe (auth refreshes on worker threads):
 * one request at a time under a mutex, each reply bounded by
 * PRIVSEP_REPLY_TIMEOUT_S.  A helper that fails or times out is closed for
 * good (the stream could be out of step); later reads fail with EIO and
 * the daemon keeps the certificates and users it has.
 */
#include "privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Largest file the helper sends: the users file's own bound (16 MiB in
 * auth) fits, certificate chains and keys are a few KiB. */
#define PRIVSEP_FILE_MAX (16u * 1024 * 1024)
#define PRIVSEP_REPLY_TIMEOUT_S 10 /* a local file read; more is a hung helper */
#define PRIVSEP_REAP_WAIT_MS 2000  /* for the helper to exit once the socket closes */
#define PRIVSEP_REAP_POLL_MS 10

struct privsep_request {
	uint32_t index;
	uint32_t max;
};

struct privsep_reply {
	int32_t error;
	uint32_t len;
};

struct privsep_file {
	char path[PATH_MAX];
	/* In DATA_DIR, which run_as_user owns: a compromised daemon could put
	 * a symlink or a hard link to /etc/shadow there.  Such a file is read
	 * only when it is no symlink and has one link. */
	bool in_daemon_dir;
};

struct privsep {
	struct privsep_file files[PRIVSEP_FILES_MAX];
	size_t n_files;
	pthread_mutex_t lock; /* one request at a time; guards fd */
	int fd;               /* -1 once the helper is gone */
	pid_t pid;
};

/* Read exactly len bytes; 1 done, 0 EOF before the first byte, -1 error. */
static int privsep_read_full(int fd, void *data, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)data + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (got == 0)
				return 0;
			errno = EPIPE;
			return -1;
		}
		got += (size_t)n;
	}
	return 1;
}

/* ---- the helper ------------------------------------------------------- */

static int privsep_child_reply(int fd, int error, const char *data, size_t len)
{
	struct privsep_reply reply = { .error = error, .len = (uint32_t)len };

	if (write_full(fd, &reply, sizeof(reply)) < 0)
		return -1;
	return len > 0 ? write_full(fd, data, len) : 0;
}

/* read_small_file() with the helper's care: no blocking on a FIFO or a
 * device (O_NONBLOCK, regular files only), and for a file in the daemon's
 * own directory no symlink (O_NOFOLLOW) and no second hard link.  -1 with
 * errno. */
static int privsep_child_read(const struct privsep_file *f, size_t max,
			      char **data_r, size_t *len_r)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
		    (f->in_daemon_dir ? O_NOFOLLOW : 0);
	int fd = open(f->path, flags), rc = -1, saved;
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0) {
		if (!S_ISREG(st.st_mode) || (f->in_daemon_dir && st.st_nlink != 1))
			errno = EPERM;
		else
			rc = read_small_fd(fd, max, data_r, len_r);
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int privsep_child_answer(const struct privsep *ps, int fd,
				const struct privsep_request *req)
{
	size_t max = req->max < PRIVSEP_FILE_MAX ? req->max : PRIVSEP_FILE_MAX;
	char *data;
	size_t len;
	int rc;

	if (req->index >= ps->n_files)
		return privsep_child_reply(fd, EINVAL, NULL, 0);
	if (privsep_child_read(&ps->files[req->index], max, &data, &len) < 0)
		return privsep_child_reply(fd, errno != 0 ? errno : EIO, NULL, 0);
	rc = privsep_child_reply(fd, 0, data, len);
	explicit_bzero(data, len); /* keys */
	free(data);
	return rc;
}

/* Keep only CAP_DAC_READ_SEARCH (read any file), when we have it: under
 * conf/postern.service's bounding set we do not, and need not, since the
 * helper stays uid 0 and reads root's own files as their owner. */
static int privsep_child_drop_caps(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
	const unsigned i = CAP_TO_INDEX(CAP_DAC_READ_SEARCH);
	const uint32_t keep = CAP_TO_MASK(CAP_DAC_READ_SEARCH);
	uint32_t have;

	memset(caps, 0, sizeof(caps));
	if (syscall(SYS_capget, &hdr, caps) < 0)
		return -1;
	have = caps[i].permitted & keep;
	memset(caps, 0, sizeof(caps));
	caps[i].effective = have;
	caps[i].permitted = have;
	return (int)syscall(SYS_capset, &hdr, caps);
}

static void privsep_child_confine(int fd, pid_t daemon_pid)
{
	/* Die with the daemon; it may already have died before prctl. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != daemon_pid)
		_exit(1);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* Nothing but stdio and the socket: nothing to leak if confused. */
	if (fd > 3)
		(void)close_range(3, (unsigned)fd - 1, 0);
	(void)close_range((unsigned)fd + 1, ~0u, 0);
	if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    privsep_child_drop_caps() < 0) {
		log_error("privsep: helper cannot confine itself: %s", strerror(errno));
		_exit(1);
	}
}

static void privsep_child_run(const struct privsep *ps, int fd, pid_t daemon_pid)
	__attribute__((noreturn));

static void privsep_child_run(const struct privsep *ps, int fd, pid_t daemon_pid)
{
	privsep_child_confine(fd, daemon_pid);
	for (;;) {
		struct privsep_request req;
		int rc = privsep_read_full(fd, &req, sizeof(req));

		if (rc == 0)
			_exit(0); /* the daemon closed the socket: it is stopping */
		if (rc < 0 || privsep_child_answer(ps, fd, &req) < 0)
			_exit(1);
	}
}

/* ---- the daemon's side ------------------------------------------------ */

static int privsep_add_path(struct privsep *ps, const char *path, bool in_daemon_dir)
{
	struct privsep_file *f;

	if (path[0] == '\0')
		return 0;
	for (size_t i = 0; i < ps->n_files; i++) {
		if (strcmp(ps->files[i].path, path) == 0) {
			ps->files[i].in_daemon_dir |= in_daemon_dir;
			return 0;
		}
	}
	if (ps->n_files >= PRIVSEP_FILES_MAX)
		return -1;
	f = &ps->files[ps->n_files];
	if (str_copy(f->path, path, sizeof(f->path)) >= sizeof(f->path))
		return -1;
	f->in_daemon_dir = in_daemon_dir;
	ps->n_files++;
	return 0;
}

static int privsep_collect_paths(struct privsep *ps, const struct config *cfg,
				 const char *const *extra, size_t n_extra)
{
	if (n_extra > PRIVSEP_EXTRA_MAX)
		return -1;
	for (size_t i = 0; i < cfg->n_certs; i++)
		if (privsep_add_path(ps, cfg->certs[i].cert_file, false) < 0 ||
		    privsep_add_path(ps, cfg->certs[i].key_file, false) < 0)
			return -1;
	for (size_t i = 0; i < n_extra; i++)
		if (privsep_add_path(ps, extra[i], true) < 0)
			return -1;
	return 0;
}

int privsep_start(const struct config *cfg, const char *const *extra, size_t n_extra,
		  struct privsep **ps_r, char *err, size_t errlen)
{
	struct timeval timeout = { .tv_sec = PRIVSEP_REPLY_TIMEOUT_S };
	struct privsep *ps;
	pid_t daemon_pid = getpid();
	int sv[2];

	*ps_r = NULL;
	if (geteuid() != 0 || cfg->run_as_user[0] == '\0')
		return 0;
	ps = calloc(1, sizeof(*ps));
	if (ps == NULL) {
		snprintf(err, errlen, "privsep: out of memory");
		return -1;
	}
	if (privsep_collect_paths(ps, cfg, extra, n_extra) < 0) {
		snprintf(err, errlen, "privsep: too many files or a path too long");
		free(ps);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "privsep: socketpair: %s", strerror(errno));
		free(ps);
		return -1;
	}
	fflush(NULL); /* no buffered output written twice */
	ps->pid = fork();
	if (ps->pid < 0) {
		snprintf(err, errlen, "privsep: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		free(ps);
		return -1;
	}
	if (ps->pid == 0) {
		close(sv[0]);
		privsep_child_run(ps, sv[1], daemon_pid);
	}
	close(sv[1]);
	ps->fd = sv[0];
	(void)setsockopt(ps->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	(void)setsockopt(ps->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
	pthread_mutex_init(&ps->lock, NULL);
	log_info("privsep: file reader pid %ld keeps root for %zu certificate, key and "
		 "users files", (long)ps->pid, ps->n_files);
	*ps_r = ps;
	return 0;
}

void privsep_free(struct privsep *ps)
{
	if (ps == NULL)
		return;
	if (ps->fd >= 0)
		close(ps->fd); /* the helper reads EOF and exits */
	for (int waited = 0; waitpid(ps->pid, NULL, WNOHANG) == 0; waited += PRIVSEP_REAP_POLL_MS) {
		if (waited >= PRIVSEP_REAP_WAIT_MS) {
			/* Root's process: we may no longer kill it.  Then
			 * PR_SET_PDEATHSIG ends it when we exit. */
			if (kill(ps->pid, SIGKILL) == 0)
				(void)waitpid(ps->pid, NULL, 0);
			else
				log_warn("privsep: helper pid %ld did not exit", (long)ps->pid);
			break;
		}
		nanosleep(&(struct timespec){ .tv_nsec = PRIVSEP_REAP_POLL_MS * 1000000L }, NULL);
	}
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

/* After a failure the stream may be out of step: never use it again. */
static void privsep_broken(struct privsep *ps, const char *what)
{
	log_error("privsep: %s: %s; files the daemon cannot read itself stay as loaded",
		  what, strerror(errno));
	close(ps->fd);
	ps->fd = -1;
}

/* The helper's copy of ps->files[index]; called with ps->lock held. */
static int privsep_fetch(struct privsep *ps, size_t index, size_t max,
			 char **data_r, size_t *len_r)
{
	struct privsep_request req = { .index = (uint32_t)index,
				       .max = max < PRIVSEP_FILE_MAX ? (uint32_t)max : PRIVSEP_FILE_MAX };
	struct privsep_reply reply;
	char *data;

	if (ps->fd < 0) {
		errno = EIO;
		return -1;
	}
	if (send(ps->fd, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
		privsep_broken(ps, "cannot ask the helper");
		errno = EIO;
		return -1;
	}
	if (privsep_read_full(ps->fd, &reply, sizeof(reply)) != 1) {
		privsep_broken(ps, "no answer from the helper");
		errno = EIO;
		return -1;
	}
	if (reply.error != 0) {
		errno = reply.error;
		return -1;
	}
	if (reply.len > req.max) {
		errno = EPROTO;
		privsep_broken(ps, "the helper sent too much");
		errno = EIO;
		return -1;
	}
	data = malloc((size_t)reply.len + 1);
	if (data == NULL || (reply.len > 0 && privsep_read_full(ps->fd, data, reply.len) != 1)) {
		if (data == NULL)
			errno = ENOMEM;
		free(data);
		privsep_broken(ps, "cannot read the helper's answer");
		errno = EIO;
		return -1;
	}
	data[reply.len] = '\0';
	*data_r = data;
	*len_r = reply.len;
	return 0;
}

int privsep_read_file(struct privsep *ps, const char *path, size_t max,
		      char **data_r, size_t *len_r)
{
	int rc;

	if (read_small_file(path, max, data_r, len_r) == 0)
		return 0;
	if (ps == NULL || (errno != EACCES && errno != EPERM))
		return -1;
	for (size_t i = 0; i < ps->n_files; i++) {
		if (strcmp(ps->files[i].path, path) != 0)
			continue;
		pthread_mutex_lock(&ps->lock);
		rc = privsep_fetch(ps, i, max, data_r, len_r);
		pthread_mutex_unlock(&ps->lock);
		if (rc == 0)
			log_debug("privsep: %s read by the helper", path);
		return rc;
	}
	errno = EACCES;
	return -1;
}
