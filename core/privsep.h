/* The privileged file reader: when the daemon starts as root with
 * run_as_user, a small helper keeps root for one job, reading the
 * certificate, key, users and aliases files that run_as_user may not read
 * (a key of mode 0600 owned by root), so that SIGHUP can load renewed keys
 * after the privilege drop.  See privsep.c for the why and the wire. */
#ifndef CORE_PRIVSEP_H
#define CORE_PRIVSEP_H

#include <stddef.h>

#include "config.h"

struct privsep;

/* At most: every certificate and key file, and the files of extra. */
#define PRIVSEP_EXTRA_MAX 4
#define PRIVSEP_FILES_MAX (2 * CONFIG_CERTS_MAX + PRIVSEP_EXTRA_MAX)

/* Fork the helper when running as root with cfg->run_as_user set; call it
 * before any thread or listener exists.  The helper may read cfg's
 * certificate and key files and the n_extra (<= PRIVSEP_EXTRA_MAX) paths
 * of extra (the users and aliases files), nothing else.  *ps_r is NULL
 * when no helper is needed (not root, or no run_as_user): files are then
 * read directly.  0, or -1 with err. */
int privsep_start(const struct config *cfg, const char *const *extra, size_t n_extra,
		  struct privsep **ps_r, char *err, size_t errlen);
/* Close the socket (the helper exits) and reap the helper.  NULL is fine. */
void privsep_free(struct privsep *ps);

/* read_small_file(), and when that fails with EACCES or EPERM and ps has
 * a helper for path, the helper's copy of the file.  path must be one the
 * helper got at start (a certificate, key, users or aliases file); any
 * other path is read directly only.  Thread-safe.  -1 with errno (EIO when
 * the helper is gone). */
int privsep_read_file(struct privsep *ps, const char *path, size_t max,
		      char **data_r, size_t *len_r);

#endif
