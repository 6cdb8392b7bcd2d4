/* The power-cut test's recorder: an LD_PRELOAD library that logs every
 * file operation the daemon makes under its data directory, and every byte
 * it sends on a TCP socket, to a log file that tests/crash/checker.py
 * replays to build the trees a power cut could leave (see README.md).
 *
 * Environment:
 *   POSTERN_CRASH_DIR  the data directory (operations elsewhere are ignored)
 *   POSTERN_CRASH_LOG  the log file (appended to)
 *
 * Log format, one record per operation, written with one writev() under a
 * mutex after the operation succeeded (so an operation that happens after
 * another in the program is logged after it):
 *
 *   OP \t key=value \t key=value ... \n  [len bytes of data]
 *
 * OP and its keys:
 *   create  p ino pm     open/openat/creat with O_CREAT made or opened p
 *   trunc   ino len      O_TRUNC at open, or ftruncate
 *   write   ino off len sync   data follows; sync=1 on O_SYNC/O_DSYNC fds
 *   fsync   ino p        fsync or fdatasync of a file or directory
 *   nosync  ino what     sync_file_range / msync: logged, not durable
 *   sync                 sync() or syncfs(): everything durable
 *   rename  p pm q qm flags   rename/renameat/renameat2 (flags of renameat2)
 *   link    p pm q qm    link/linkat (q is the new name)
 *   unlink  p pm         unlink/unlinkat without AT_REMOVEDIR
 *   rmdir   p pm         rmdir/unlinkat with AT_REMOVEDIR
 *   mkdir   p pm ino m   mkdir/mkdirat (m: the new directory's mtime)
 *   symlink p pm q       (q: the target)
 *   pm, qm: the mtime of p's and q's directory just after the operation
 *   send    port len     bytes sent on a TCP socket (data follows); port is
 *                        the peer's port, which names the client connection
 *   sclose  port         a TCP socket closed
 *
 * Every record ends with t=SECONDS.NANOSECONDS (CLOCK_REALTIME).
 * Paths are absolute (relative ones resolved through /proc/self/fd or the
 * working directory); '%', tab and newline in them are written as %XX.
 *
 * This library is built without sanitizers: an ASan daemon is started with
 * its libasan first in LD_PRELOAD and this library second, so ASan's own
 * interceptors (write, writev, send...) call on into these through
 * dlsym(RTLD_NEXT), and these call the C library. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Longest path recorded (operations on longer ones are not logged, and the
 * checker then fails on the entries it lacks); kept well under PATH_MAX
 * because these buffers live on the stacks of the daemon's worker
 * threads. */
#define REC_PATH_MAX 1024
/* One record's header line: the op, a few numbers and two escaped paths. */
#define REC_HEADER_MAX (3 * REC_PATH_MAX * 2 + 256)

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static int rec_fd = -1;
static char rec_dir[PATH_MAX];
static size_t rec_dir_len;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned int);
static int (*real_msync)(void *, size_t, int);
static void (*real_sync)(void);
static int (*real_syncfs)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rmdir)(const char *);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_symlink)(const char *, const char *);
static int (*real_close)(int);
static ssize_t (*real_sendto)(int, const void *, size_t, int,
			      const struct sockaddr *, socklen_t);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);

static void *next_symbol(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL) {
		static const char msg[] = "crash recorder: a symbol is missing\n";
		/* Only a broken C library gets here: stop rather than record
		 * a run that misses operations. */
		if (write(2, msg, sizeof(msg) - 1) < 0)
			_exit(70);
		_exit(70);
	}
	return p;
}

__attribute__((constructor)) static void rec_init(void)
{
	const char *dir = getenv("POSTERN_CRASH_DIR");
	const char *log = getenv("POSTERN_CRASH_LOG");

	real_open = next_symbol("open");
	real_open64 = next_symbol("open64");
	real_openat = next_symbol("openat");
	real_openat64 = next_symbol("openat64");
	real_creat = next_symbol("creat");
	real_write = next_symbol("write");
	real_pwrite = next_symbol("pwrite");
	real_pwrite64 = next_symbol("pwrite64");
	real_writev = next_symbol("writev");
	real_pwritev = next_symbol("pwritev");
	real_ftruncate = next_symbol("ftruncate");
	real_fsync = next_symbol("fsync");
	real_fdatasync = next_symbol("fdatasync");
	real_sync_file_range = next_symbol("sync_file_range");
	real_msync = next_symbol("msync");
	real_sync = next_symbol("sync");
	real_syncfs = next_symbol("syncfs");
	real_rename = next_symbol("rename");
	real_renameat = next_symbol("renameat");
	real_renameat2 = next_symbol("renameat2");
	real_link = next_symbol("link");
	real_linkat = next_symbol("linkat");
	real_unlink = next_symbol("unlink");
	real_unlinkat = next_symbol("unlinkat");
	real_rmdir = next_symbol("rmdir");
	real_mkdir = next_symbol("mkdir");
	real_mkdirat = next_symbol("mkdirat");
	real_symlink = next_symbol("symlink");
	real_close = next_symbol("close");
	real_sendto = next_symbol("sendto");
	real_sendmsg = next_symbol("sendmsg");

	if (dir == NULL || log == NULL || realpath(dir, rec_dir) == NULL)
		return;
	rec_dir_len = strlen(rec_dir);
	rec_fd = real_open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* Append one record: the header line then len bytes of data gathered from
 * iov (may be NULL). */
static void rec_emit(const char *header, size_t hlen, const struct iovec *iov,
		     int iovcnt, size_t len)
{
	struct iovec out[1 + IOV_MAX];
	int n = 0;
	size_t left = len;

	out[n].iov_base = (void *)header;
	out[n++].iov_len = hlen;
	for (int i = 0; i < iovcnt && left > 0 && n < 1 + IOV_MAX; i++) {
		size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
		out[n].iov_base = iov[i].iov_base;
		out[n++].iov_len = take;
		left -= take;
	}
	pthread_mutex_lock(&rec_lock);
	/* The log is a regular file opened O_APPEND: writev writes it all
	 * (a short write would only come with a full disk). */
	(void)real_writev(rec_fd, out, n);
	pthread_mutex_unlock(&rec_lock);
}

static void rec_vformat(const struct iovec *iov, int iovcnt, size_t len,
			const char *fmt, va_list ap)
{
	char header[REC_HEADER_MAX];
	int hlen;

	struct timespec now;
	int tlen;

	if (rec_fd < 0)
		return;
	/* The time of every record: the checker gives a directory the mtime
	 * of the last change to it that a crash kept. */
	clock_gettime(CLOCK_REALTIME, &now);
	hlen = vsnprintf(header, sizeof(header) - 64, fmt, ap);
	if (hlen < 0 || (size_t)hlen >= sizeof(header) - 64)
		return;
	tlen = snprintf(header + hlen, 64, "\tt=%lld.%09ld\n", (long long)now.tv_sec, now.tv_nsec);
	hlen += tlen;
	rec_emit(header, (size_t)hlen, iov, iovcnt, len);
}

__attribute__((format(printf, 1, 2)))
static void rec_header(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rec_vformat(NULL, 0, 0, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 4, 5)))
static void rec_data(const struct iovec *iov, int iovcnt, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rec_vformat(iov, iovcnt, len, fmt, ap);
	va_end(ap);
}

/* Escape '%', tab, newline and other control bytes as %XX. */
static void escape_path(const char *in, char *out, size_t outsz)
{
	size_t o = 0;

	for (; *in != '\0' && o + 4 < outsz; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '%' || c < 0x20) {
			snprintf(out + o, outsz - o, "%%%02X", c);
			o += 3;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

/* The absolute form of path relative to dirfd; 0, or -1 if too long. */
static int absolute_path(int dirfd, const char *path, char *out, size_t outsz)
{
	char base[REC_PATH_MAX];
	ssize_t n;

	if (path[0] == '/') {
		if (strlen(path) >= outsz)
			return -1;
		strcpy(out, path);
		return 0;
	}
	if (dirfd == AT_FDCWD) {
		if (getcwd(base, sizeof(base)) == NULL)
			return -1;
	} else {
		char link[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		n = readlink(link, base, sizeof(base) - 1);
		if (n < 0)
			return -1;
		base[n] = '\0';
	}
	if ((size_t)snprintf(out, outsz, "%s/%s", base, path) >= outsz)
		return -1;
	return 0;
}

static int under_data_dir(const char *abs)
{
	return rec_dir_len > 0 && strncmp(abs, rec_dir, rec_dir_len) == 0 &&
	       (abs[rec_dir_len] == '/' || abs[rec_dir_len] == '\0');
}

/* A name an operation changed: absolute, escaped for the log, and the
 * mtime of its directory after the operation (the checker gives a crash
 * tree's directory the mtime it had after the last change kept). */
struct rec_path {
	char abs[REC_PATH_MAX];
	char esc[3 * REC_PATH_MAX];
	char dir_mtime[48];
};

/* Fill rp for (dirfd, path); 1 when it is under the data directory. */
static int tracked_path(int dirfd, const char *path, struct rec_path *rp)
{
	strcpy(rp->esc, "-");
	strcpy(rp->dir_mtime, "0");
	if (rec_fd < 0 || path == NULL ||
	    absolute_path(dirfd, path, rp->abs, sizeof(rp->abs)) < 0 || !under_data_dir(rp->abs))
		return 0;
	escape_path(rp->abs, rp->esc, sizeof(rp->esc));
	return 1;
}

/* Call after the operation. */
static void note_dir_mtime(struct rec_path *rp)
{
	char dir[REC_PATH_MAX];
	char *slash;
	struct stat st;

	strcpy(dir, rp->abs);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	if (stat(dir, &st) == 0)
		snprintf(rp->dir_mtime, sizeof(rp->dir_mtime), "%lld.%09ld",
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* What an fd is, for the operations made through it. */
enum fd_kind { FD_OTHER, FD_DATA, FD_TCP };

struct fd_info {
	enum fd_kind kind;
	ino_t ino;
	int sync;		/* O_SYNC or O_DSYNC: writes are durable */
	int append;		/* O_APPEND */
	off_t size;		/* for O_APPEND writes: the size before */
	unsigned port;		/* FD_TCP: the peer's port */
	struct rec_path name;	/* FD_DATA: its path */
};

static enum fd_kind classify_fd(int fd, struct fd_info *fi)
{
	struct stat st;
	char link[64], abs[REC_PATH_MAX];
	ssize_t n;

	fi->kind = FD_OTHER;
	if (rec_fd < 0 || fd < 0 || fd == rec_fd || fstat(fd, &st) < 0)
		return FD_OTHER;
	if (S_ISSOCK(st.st_mode)) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
		    getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
			return FD_OTHER;
		if (ss.ss_family == AF_INET)
			fi->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			fi->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			return FD_OTHER;
		return fi->kind = FD_TCP;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return FD_OTHER;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, abs, sizeof(abs) - 1);
	if (n < 0)
		return FD_OTHER;
	abs[n] = '\0';
	if (!under_data_dir(abs))
		return FD_OTHER;
	int fl = fcntl(fd, F_GETFL);
	fi->ino = st.st_ino;
	fi->size = st.st_size;
	fi->sync = fl >= 0 && (fl & (O_SYNC | O_DSYNC)) != 0;
	fi->append = fl >= 0 && (fl & O_APPEND) != 0;
	if (!tracked_path(AT_FDCWD, abs, &fi->name))
		return FD_OTHER;
	return fi->kind = FD_DATA;
}

/* Where the next write() on fd lands (before it is made). */
static off_t write_offset(int fd, const struct fd_info *fi)
{
	return fi->append ? fi->size : lseek(fd, 0, SEEK_CUR);
}

static void log_open(int fd, int flags)
{
	struct fd_info fi;

	if (fd < 0 || (flags & (O_CREAT | O_TRUNC)) == 0 || classify_fd(fd, &fi) != FD_DATA)
		return;
	if (flags & O_CREAT) {
		note_dir_mtime(&fi.name);
		rec_header("create\tino=%lu\tp=%s\tpm=%s", (unsigned long)fi.ino, fi.name.esc,
			   fi.name.dir_mtime);
	}
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
		rec_header("trunc\tino=%lu\tlen=0", (unsigned long)fi.ino);
}

static void log_sent(const struct fd_info *fi, const struct iovec *iov, int iovcnt, ssize_t n)
{
	if (n > 0)
		rec_data(iov, iovcnt, (size_t)n, "send\tport=%u\tlen=%zd", fi->port, n);
}

static void log_written(const struct fd_info *fi, off_t off, const struct iovec *iov,
			int iovcnt, ssize_t n)
{
	if (n > 0 && off >= 0)
		rec_data(iov, iovcnt, (size_t)n, "write\tino=%lu\toff=%lld\tlen=%zd\tsync=%d",
			 (unsigned long)fi->ino, (long long)off, n, fi->sync);
}

/* ---- open ---- */

#define OPEN_MODE(flags, mode)                                                  \
	do {                                                                    \
		if ((flags) & (O_CREAT | O_TMPFILE)) {                          \
			va_list ap;                                             \
			va_start(ap, flags);                                    \
			mode = va_arg(ap, int);                                 \
			va_end(ap);                                             \
		}                                                               \
	} while (0)

int open(const char *path, int flags, ...)
{
	int mode = 0;
	OPEN_MODE(flags, mode);
	int fd = real_open(path, flags, mode);
	log_open(fd, flags);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	int mode = 0;
	OPEN_MODE(flags, mode);
	int fd = real_open64(path, flags, mode);
	log_open(fd, flags);
	return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	int mode = 0;
	OPEN_MODE(flags, mode);
	int fd = real_openat(dirfd, path, flags, mode);
	log_open(fd, flags);
	return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	int mode = 0;
	OPEN_MODE(flags, mode);
	int fd = real_openat64(dirfd, path, flags, mode);
	log_open(fd, flags);
	return fd;
}

int creat(const char *path, mode_t mode)
{
	int fd = real_creat(path, mode);
	log_open(fd, O_CREAT | O_TRUNC | O_WRONLY);
	return fd;
}

/* ---- data ---- */

/* write() (buf set, one iov) and writev(): at the file offset, or to a
 * client. */
static ssize_t logged_stream(int fd, const void *buf, const struct iovec *iov, int iovcnt)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	off_t off = kind == FD_DATA ? write_offset(fd, &fi) : -1;
	ssize_t n = buf != NULL ? real_write(fd, buf, iov[0].iov_len) : real_writev(fd, iov, iovcnt);

	if (kind == FD_DATA)
		log_written(&fi, off, iov, iovcnt, n);
	else if (kind == FD_TCP)
		log_sent(&fi, iov, iovcnt, n);
	return n;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return logged_stream(fd, buf, &iov, 1);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	return logged_stream(fd, NULL, iov, iovcnt);
}

/* pwrite() and pwrite64() (fn) or pwritev() (fn NULL) at off. */
static ssize_t logged_at(ssize_t (*fn)(int, const void *, size_t, off_t), int fd,
			 const struct iovec *iov, int iovcnt, off_t off)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	ssize_t n = fn != NULL ? fn(fd, iov[0].iov_base, iov[0].iov_len, off)
			       : real_pwritev(fd, iov, iovcnt, off);

	if (kind == FD_DATA)
		log_written(&fi, off, iov, iovcnt, n);
	return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec iov = { (void *)buf, len };

	return logged_at(real_pwrite, fd, &iov, 1, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec iov = { (void *)buf, len };

	return logged_at(real_pwrite64, fd, &iov, 1, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	return logged_at(NULL, fd, iov, iovcnt, off);
}

int ftruncate(int fd, off_t len)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	int rc = real_ftruncate(fd, len);

	if (rc == 0 && kind == FD_DATA)
		rec_header("trunc\tino=%lu\tlen=%lld", (unsigned long)fi.ino, (long long)len);
	return rc;
}

/* ---- durability ---- */

static int logged_sync(int fd, int (*fn)(int))
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	int rc = fn(fd);

	if (rc == 0 && kind == FD_DATA)
		rec_header("fsync\tino=%lu\tp=%s", (unsigned long)fi.ino, fi.name.esc);
	return rc;
}

int fsync(int fd)
{
	return logged_sync(fd, real_fsync);
}

int fdatasync(int fd)
{
	return logged_sync(fd, real_fdatasync);
}

int sync_file_range(int fd, off_t off, off_t len, unsigned int flags)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	int rc = real_sync_file_range(fd, off, len, flags);

	if (rc == 0 && kind == FD_DATA)
		rec_header("nosync\tino=%lu\twhat=sync_file_range", (unsigned long)fi.ino);
	return rc;
}

int msync(void *addr, size_t len, int flags)
{
	int rc = real_msync(addr, len, flags);

	/* Which file a mapping belongs to is not known here: the checker
	 * fails the run if any msync is logged (writes through a shared
	 * mapping cannot be replayed). */
	if (rc == 0 && rec_fd >= 0)
		rec_header("nosync\tino=0\twhat=msync");
	return rc;
}

void sync(void)
{
	real_sync();
	rec_header("sync");
}

int syncfs(int fd)
{
	int rc = real_syncfs(fd);

	if (rc == 0)
		rec_header("sync");
	return rc;
}

/* ---- directory entries ---- */

static void log_two(const char *op, int fd1, const char *p1, int fd2, const char *p2,
		    unsigned flags)
{
	struct rec_path a, b;
	int in1 = tracked_path(fd1, p1, &a);
	int in2 = tracked_path(fd2, p2, &b);

	/* "-": a name outside the data directory (the checker fails on it) */
	if (!in1 && !in2)
		return;
	note_dir_mtime(&a);
	note_dir_mtime(&b);
	rec_header("%s\tp=%s\tpm=%s\tq=%s\tqm=%s\tflags=%u", op, a.esc, a.dir_mtime, b.esc,
		   b.dir_mtime, flags);
}

int rename(const char *from, const char *to)
{
	int rc = real_rename(from, to);
	if (rc == 0)
		log_two("rename", AT_FDCWD, from, AT_FDCWD, to, 0);
	return rc;
}

int renameat(int fd1, const char *from, int fd2, const char *to)
{
	int rc = real_renameat(fd1, from, fd2, to);
	if (rc == 0)
		log_two("rename", fd1, from, fd2, to, 0);
	return rc;
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned int flags)
{
	int rc = real_renameat2(fd1, from, fd2, to, flags);
	if (rc == 0)
		log_two("rename", fd1, from, fd2, to, flags);
	return rc;
}

int link(const char *from, const char *to)
{
	int rc = real_link(from, to);
	if (rc == 0)
		log_two("link", AT_FDCWD, from, AT_FDCWD, to, 0);
	return rc;
}

int linkat(int fd1, const char *from, int fd2, const char *to, int flags)
{
	int rc = real_linkat(fd1, from, fd2, to, flags);
	if (rc == 0)
		log_two("link", fd1, from, fd2, to, (unsigned)flags);
	return rc;
}

/* A relative path is made absolute before the operation, while its
 * directory surely resolves. */
static int removed(int rc, const char *op, struct rec_path *rp, int tracked)
{
	if (rc == 0 && tracked) {
		note_dir_mtime(rp);
		rec_header("%s\tp=%s\tpm=%s", op, rp->esc, rp->dir_mtime);
	}
	return rc;
}

int unlink(const char *path)
{
	struct rec_path rp;
	int tracked = tracked_path(AT_FDCWD, path, &rp);

	return removed(real_unlink(path), "unlink", &rp, tracked);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	struct rec_path rp;
	int tracked = tracked_path(dirfd, path, &rp);

	return removed(real_unlinkat(dirfd, path, flags),
		       (flags & AT_REMOVEDIR) ? "rmdir" : "unlink", &rp, tracked);
}

int rmdir(const char *path)
{
	struct rec_path rp;
	int tracked = tracked_path(AT_FDCWD, path, &rp);

	return removed(real_rmdir(path), "rmdir", &rp, tracked);
}

static void log_mkdir(int dirfd, const char *path)
{
	struct rec_path rp;
	struct stat st;

	if (tracked_path(dirfd, path, &rp) && fstatat(dirfd, path, &st, 0) == 0) {
		note_dir_mtime(&rp);
		rec_header("mkdir\tino=%lu\tp=%s\tpm=%s\tm=%lld.%09ld", (unsigned long)st.st_ino,
			   rp.esc, rp.dir_mtime, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	}
}

int mkdir(const char *path, mode_t mode)
{
	int rc = real_mkdir(path, mode);
	if (rc == 0)
		log_mkdir(AT_FDCWD, path);
	return rc;
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	int rc = real_mkdirat(dirfd, path, mode);
	if (rc == 0)
		log_mkdir(dirfd, path);
	return rc;
}

int symlink(const char *target, const char *path)
{
	int rc = real_symlink(target, path);
	struct rec_path rp;

	if (rc == 0 && tracked_path(AT_FDCWD, path, &rp)) {
		char t[3 * REC_PATH_MAX];
		note_dir_mtime(&rp);
		escape_path(target, t, sizeof(t));
		rec_header("symlink\tp=%s\tpm=%s\tq=%s", rp.esc, rp.dir_mtime, t);
	}
	return rc;
}

int close(int fd)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	int rc = real_close(fd);

	if (kind == FD_TCP)
		rec_header("sclose\tport=%u", fi.port);
	return rc;
}

/* ---- sockets ---- */

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	/* send(2): sendto() without an address */
	return sendto(fd, buf, len, flags, NULL, 0);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
	       socklen_t tolen)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	ssize_t n = real_sendto(fd, buf, len, flags, to, tolen);
	struct iovec iov = { (void *)buf, len };

	if (kind == FD_TCP)
		log_sent(&fi, &iov, 1, n);
	return n;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct fd_info fi;
	enum fd_kind kind = classify_fd(fd, &fi);
	ssize_t n = real_sendmsg(fd, msg, flags);

	if (kind == FD_TCP)
		log_sent(&fi, msg->msg_iov, (int)msg->msg_iovlen, n);
	return n;
}
