/* A fault-injection shim for the integration tests: an LD_PRELOAD library
 * that makes unlink(), unlinkat() and remove() fail with EIO for the files
 * whose base name begins with one of the names in POSTERN_FAULT_UNLINK
 * (separated by spaces).  Every other call goes on to the C library.
 * Used by tests/integration/store_unlink_fault.py: a Maildir file that
 * cannot be removed must keep its message (EXPUNGE NO, POP3 QUIT -ERR).
 *
 * Built without sanitizers (see CMakeLists.txt): an ASan daemon is started
 * with its libasan first in LD_PRELOAD and this library second. */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAULT_ENV "POSTERN_FAULT_UNLINK"

static bool fault_matches(const char *path)
{
	const char *names = getenv(FAULT_ENV);
	const char *base;

	if (names == NULL || path == NULL)
		return false;
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	while (*names != '\0') {
		size_t n = strcspn(names, " ");

		if (n > 0 && strncmp(base, names, n) == 0)
			return true;
		names += n;
		names += strspn(names, " ");
	}
	return false;
}

static void *fault_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);

	if (fn == NULL)
		abort(); /* the C library always has these */
	return fn;
}

int unlink(const char *path)
{
	static int (*real)(const char *);

	if (fault_matches(path)) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(const char *))fault_next("unlink");
	return real(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	static int (*real)(int, const char *, int);

	if (fault_matches(path)) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int, const char *, int))fault_next("unlinkat");
	return real(dirfd, path, flags);
}

int remove(const char *path)
{
	static int (*real)(const char *);

	if (fault_matches(path)) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(const char *))fault_next("remove");
	return real(path);
}
