/* Landlock file-system sandbox of the running daemon (see sandbox.c). */
#ifndef CORE_SANDBOX_H
#define CORE_SANDBOX_H

#include <stddef.h>

#include "config.h"

enum sandbox_result {
	SANDBOX_ON,          /* restricted; err names the Landlock ABI */
	SANDBOX_UNSUPPORTED, /* the kernel has no Landlock: err says why */
	SANDBOX_FAILED,      /* a rule could not be set up: err says which */
};

/* Restrict this process (all its threads, and for good) to data_dir, the
 * configuration, certificates and the system files it reads at run time. */
enum sandbox_result sandbox_restrict(const struct config *cfg, char *err, size_t errlen);

/* Tests: try to open path read-only and log whether it worked. */
void sandbox_probe(const char *path);

#endif
