/* After start-up the daemon gives up the file system it does not need,
 * with Landlock (Linux 5.13+): whatever a compromised session could do,
 * it cannot read /etc/shadow, other users' homes or SSH keys, nor write
 * outside data_dir.
 *
 * Allowed once the sandbox is on:
 *   - data_dir: everything (the store, the queue, DKIM keys, users file);
 *   - read: the configuration file, the directories of the certificate
 *     and key files and of their symlink targets (certbot renews by
 *     pointing live/ at new files in archive/, read again on SIGHUP;
 *     a key the daemon may not read is read by the privileged helper of
 *     privsep.c, which is not sandboxed),
 *     relay_password_file, and what the C library, OpenSSL and libresolv
 *     read at run time: the resolver and NSS files in /etc, /etc/ssl
 *     (CA certificates for outbound STARTTLS), time zones, /usr/lib
 *     (iconv's gconv modules, NSS modules, OpenSSL providers), the
 *     Public Suffix List, /proc (sanitizer reports) and /dev/urandom,
 *     /dev/null;
 *   - remove files in the directory of each unix socket listener (LMTP),
 *     so that the socket, made before the sandbox, is removed at stop;
 *     nothing else there (no reading, no creating: a stale socket is
 *     replaced at start-up, before the sandbox).  Clients connecting to
 *     the socket are not subject to our Landlock domain;
 *   - nothing may be executed.
 * Only the daemon (`postern serve`/`demo`) is sandboxed, not the CLI.
 * A kernel without Landlock is logged and the daemon runs as before;
 * `sandbox = no` turns it off.  The rules are built from what exists:
 * a missing path is skipped, never an error.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Read-only system paths (see the top of the file). */
static const char *const sandbox_system_read[] = {
	"/etc/resolv.conf", "/etc/hosts",    "/etc/nsswitch.conf", "/etc/host.conf",
	"/etc/gai.conf",    "/etc/services", "/etc/protocols",     "/etc/localtime",
	"/etc/ssl",         "/usr/share/zoneinfo", "/usr/share/ca-certificates",
	"/usr/share/publicsuffix", "/usr/lib", "/usr/lib64", "/proc",
	"/dev/urandom",     "/dev/null",
};

/* Access rights of each Landlock ABI version that this file knows of. */
static __u64 sandbox_fs_rights(int abi)
{
	__u64 r = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		  LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		  LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		  LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
		  LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
		  LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		  LANDLOCK_ACCESS_FS_MAKE_SYM;

#ifdef LANDLOCK_ACCESS_FS_REFER
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER; /* rename and link across dirs */
#endif
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
#endif
	(void)abi;
	return r;
}

static __u64 sandbox_read_rights(const struct stat *st)
{
	__u64 r = LANDLOCK_ACCESS_FS_READ_FILE;

	if (S_ISDIR(st->st_mode))
		r |= LANDLOCK_ACCESS_FS_READ_DIR;
	return r;
}

/* Allow rights (masked to what the path can carry) beneath path.
 * 0, or -1 on an unexpected error; a missing path is skipped. */
static int sandbox_allow(int ruleset, const char *path, __u64 rights, __u64 handled)
{
	struct landlock_path_beneath_attr pb = { 0 };
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		rights &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			  LANDLOCK_ACCESS_FS_EXECUTE
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
			  | LANDLOCK_ACCESS_FS_TRUNCATE
#endif
			;
	pb.allowed_access = rights & handled;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

/* Read access to the directory of path and to that of its target. */
static int sandbox_allow_file_dirs(int ruleset, const char *path, __u64 handled)
{
	char copy[PATH_MAX], real[PATH_MAX];
	struct stat st = { .st_mode = S_IFDIR };

	if (path[0] == '\0')
		return 0;
	str_copy(copy, path, sizeof(copy));
	if (sandbox_allow(ruleset, dirname(copy), sandbox_read_rights(&st), handled) < 0)
		return -1;
	if (realpath(path, real) != NULL &&
	    sandbox_allow(ruleset, dirname(real), sandbox_read_rights(&st), handled) < 0)
		return -1;
	return 0;
}

/* Removal of the unix sockets' files at stop (see the top). */
static int sandbox_allow_socket_dirs(int ruleset, const struct config *cfg, __u64 handled,
				     char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		char copy[PATH_MAX];

		if (cfg->listeners[i].unix_path[0] == '\0')
			continue;
		str_copy(copy, cfg->listeners[i].unix_path, sizeof(copy));
		if (sandbox_allow(ruleset, dirname(copy), LANDLOCK_ACCESS_FS_REMOVE_FILE,
				  handled) < 0) {
			snprintf(err, errlen, "%s: %s", cfg->listeners[i].unix_path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

enum sandbox_result sandbox_restrict(const struct config *cfg, char *err, size_t errlen)
{
	struct landlock_ruleset_attr attr = { 0 };
	int abi, ruleset;
	struct stat st;

	err[0] = '\0';
	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		snprintf(err, errlen, "Landlock is not available (%s)", strerror(errno));
		return SANDBOX_UNSUPPORTED;
	}
	attr.handled_access_fs = sandbox_fs_rights(abi);
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0) {
		snprintf(err, errlen, "landlock_create_ruleset: %s", strerror(errno));
		return SANDBOX_FAILED;
	}
	if (sandbox_allow(ruleset, cfg->data_dir,
			  attr.handled_access_fs & ~(__u64)LANDLOCK_ACCESS_FS_EXECUTE,
			  attr.handled_access_fs) < 0) {
		snprintf(err, errlen, "%s: %s", cfg->data_dir, strerror(errno));
		goto fail;
	}
	for (size_t i = 0; i < sizeof(sandbox_system_read) / sizeof(sandbox_system_read[0]); i++) {
		const char *p = sandbox_system_read[i];

		if (stat(p, &st) == 0 &&
		    sandbox_allow(ruleset, p, sandbox_read_rights(&st), attr.handled_access_fs) < 0) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			goto fail;
		}
	}
	if (cfg->path[0] != '\0' &&
	    sandbox_allow(ruleset, cfg->path, LANDLOCK_ACCESS_FS_READ_FILE,
			  attr.handled_access_fs) < 0) {
		snprintf(err, errlen, "%s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_certs; i++)
		if (sandbox_allow_file_dirs(ruleset, cfg->certs[i].cert_file,
					    attr.handled_access_fs) < 0 ||
		    sandbox_allow_file_dirs(ruleset, cfg->certs[i].key_file,
					    attr.handled_access_fs) < 0) {
			snprintf(err, errlen, "certificate %zu: %s", i + 1, strerror(errno));
			goto fail;
		}
	if (sandbox_allow_socket_dirs(ruleset, cfg, attr.handled_access_fs, err, errlen) < 0)
		goto fail;
	/* its directory: an edited file is often a new inode (rename) */
	if (cfg->shards_file[0] != '\0' &&
	    sandbox_allow_file_dirs(ruleset, cfg->shards_file, attr.handled_access_fs) < 0) {
		snprintf(err, errlen, "%s: %s", cfg->shards_file, strerror(errno));
		goto fail;
	}
	if (cfg->relay_password_file[0] != '\0' &&
	    sandbox_allow(ruleset, cfg->relay_password_file, LANDLOCK_ACCESS_FS_READ_FILE,
			  attr.handled_access_fs) < 0) {
		snprintf(err, errlen, "%s: %s", cfg->relay_password_file, strerror(errno));
		goto fail;
	}
	/* Required before restricting without CAP_SYS_ADMIN; the daemon has
	 * already given up root, and never gains privileges by exec. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		snprintf(err, errlen, "landlock_restrict_self: %s", strerror(errno));
		goto fail;
	}
	close(ruleset);
	snprintf(err, errlen, "Landlock ABI %d", abi);
	return SANDBOX_ON;
fail:
	close(ruleset);
	return SANDBOX_FAILED;
}

void sandbox_probe(const char *path)
{
	int fd;

	if (path == NULL || path[0] == '\0')
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		log_info("sandbox probe: %s opened", path);
		close(fd);
	} else {
		log_info("sandbox probe: %s refused (%s)", path, strerror(errno));
	}
}
