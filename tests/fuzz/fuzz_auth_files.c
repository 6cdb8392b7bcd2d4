/* Fuzz target: the users and aliases file parsers (auth/auth_file.c),
 * driven in memory through auth_users_parse() / auth_aliases_parse().
 *
 * The files are written by `postern user` / `postern alias`, but an
 * administrator may edit them by hand, and the daemon reloads them on
 * every change: a malformed file must give "PATH:LINE: message", never a
 * crash.  The parsers modify the text in place and read its terminating
 * NUL (text[len]), so each parse gets a heap copy of len + 1 bytes, as
 * read_small_file() provides; on success the parsed set owns the copy.
 *
 * Oracles: every parsed entry is found again by its own address; every
 * address is lower case; targets are counted right; errors begin with the
 * path.
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <string.h>

#include "auth_private.h"

#define FUZZ_AUTH_PATH "/var/lib/postern/users"

static char *fuzz_text(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);

	FUZZ_CHECK(t != NULL);
	memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

static void fuzz_lower(const char *s)
{
	for (; *s != '\0'; s++)
		FUZZ_CHECK(!isupper((unsigned char)*s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *text;

	{
		struct auth_users users;

		text = fuzz_text(data, size);
		err[0] = '\0';
		if (auth_users_parse(FUZZ_AUTH_PATH, text, size, &users, err, sizeof(err)) == 0) {
			for (size_t i = 0; i < users.n; i++) {
				const struct auth_user *u = &users.v[i];

				fuzz_lower(u->address);
				FUZZ_CHECK(auth_address_valid(u->address));
				FUZZ_CHECK(u->hash[0] != '\0' && strlen(u->hash) <= AUTH_HASH_MAX);
				FUZZ_CHECK(auth_users_find(&users, u->address) == u);
			}
			auth_users_free(&users);
		} else {
			FUZZ_CHECK(strncmp(err, FUZZ_AUTH_PATH, strlen(FUZZ_AUTH_PATH)) == 0);
			free(text);
		}
	}
	{
		struct auth_aliases aliases;
		size_t total = 0;

		text = fuzz_text(data, size);
		err[0] = '\0';
		if (auth_aliases_parse(FUZZ_AUTH_PATH, text, size, &aliases, err,
				       sizeof(err)) == 0) {
			for (size_t i = 0; i < aliases.n; i++) {
				const struct auth_alias *a = &aliases.v[i];

				fuzz_lower(a->address);
				FUZZ_CHECK(a->n_targets >= 1 && a->n_targets <= AUTH_RESOLVE_MAX);
				FUZZ_CHECK(a->targets == aliases.targets + total);
				for (size_t k = 0; k < a->n_targets; k++)
					FUZZ_CHECK(auth_address_valid(a->targets[k]));
				total += a->n_targets;
				FUZZ_CHECK(auth_aliases_find(&aliases, a->address) == a);
			}
			auth_aliases_free(&aliases);
		} else {
			FUZZ_CHECK(strncmp(err, FUZZ_AUTH_PATH, strlen(FUZZ_AUTH_PATH)) == 0);
			free(text);
		}
	}
	{
		/* quota sizes as the users file and `postern user quota` take them */
		char s[40];
		size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
		uint64_t bytes;

		memcpy(s, data, n);
		s[n] = '\0';
		(void)auth_parse_size(s, &bytes);
		(void)auth_catchall_valid(s);
	}
	return 0;
}
