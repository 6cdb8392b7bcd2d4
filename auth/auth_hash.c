/* Password hashing with crypt(3) from libxcrypt: new hashes are yescrypt
 * ("$y$", libxcrypt's preferred method, default cost: ~20 ms and 16 MiB per
 * verify), older methods in the users file still verify. */
#include "auth_private.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(AUTH_HASH_MAX + 1 == CRYPT_OUTPUT_SIZE, "hash size follows libxcrypt");
_Static_assert(AUTH_PASSWORD_MAX + 1 == CRYPT_MAX_PASSPHRASE_SIZE,
	       "password size follows libxcrypt");

int auth_hash_password(const char *password, char *hash_r, size_t size)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int rc = -1;

	if (strlen(password) > AUTH_PASSWORD_MAX)
		return -1;
	/* count 0: the method's default cost; NULL entropy: libxcrypt reads
	 * the salt from getrandom(). */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof(salt)) == NULL)
		return -1;
	/* 32 KB: too large for a worker thread's stack. */
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return -1;
	h = crypt_rn(password, salt, cd, (int)sizeof(*cd));
	if (h != NULL && h[0] == '$' && strlen(h) < size) {
		memcpy(hash_r, h, strlen(h) + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

bool auth_hash_verify(const char *password, const char *hash)
{
	struct crypt_data *cd;
	const char *h;
	size_t len;
	bool ok = false;

	if (strlen(password) > AUTH_PASSWORD_MAX || hash[0] != '$')
		return false;
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return false;
	/* crypt_rn returns NULL, not a "*0" token, on an unusable setting. */
	h = crypt_rn(password, hash, cd, (int)sizeof(*cd));
	if (h != NULL) {
		unsigned char diff = 0;

		len = strlen(hash);
		if (strlen(h) == len) {
			/* Constant time over the length. */
			for (size_t i = 0; i < len; i++)
				diff |= (unsigned char)(h[i] ^ hash[i]);
			ok = diff == 0;
		}
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}
