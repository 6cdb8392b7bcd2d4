/* Test-only: sign a message with the domain's keys, for
 * tests/integration/dkim_verify.py, the way the outbound queue does it:
 * the message is fed to the signer in chunks of CHUNK octets.
 *
 *   dkim_sign DATA_DIR DOMAIN TIME CHUNK < message > signed
 *
 * Output: the DKIM-Signature fields, then the message unchanged.  Exit 0;
 * 1 on a usage, read or signing error (message on stderr); 2 when the
 * domain has no keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim.h"

#define DKIM_SIGN_INPUT_MAX (64 * 1024 * 1024)

int main(int argc, char **argv)
{
	struct dkim_keys *keys = NULL;
	struct dkim_signer *s;
	struct buf msg;
	char err[512], *sig = NULL, chunk[65536];
	uint64_t now, step;
	size_t siglen = 0, n;
	int rc = 1;

	if (argc != 5 || str_to_u64(argv[3], 0, INT64_MAX, &now) < 0 ||
	    str_to_u64(argv[4], 1, 1 << 20, &step) < 0) {
		fprintf(stderr, "usage: dkim_sign DATA_DIR DOMAIN TIME CHUNK < message\n");
		return 1;
	}
	buf_init(&msg, DKIM_SIGN_INPUT_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if (buf_append(&msg, chunk, n) < 0) {
			fprintf(stderr, "dkim_sign: message too large\n");
			goto out;
		}
	if (dkim_keys_load(argv[1], argv[2], &keys, err, sizeof(err)) < 0) {
		fprintf(stderr, "dkim_sign: %s\n", err);
		goto out;
	}
	if (keys == NULL) {
		fprintf(stderr, "dkim_sign: %s has no keys\n", argv[2]);
		rc = 2;
		goto out;
	}
	s = dkim_signer_new(keys, (time_t)now);
	if (s == NULL)
		goto out;
	for (size_t pos = 0; pos < msg.len; pos += step)
		if (dkim_signer_update(s, msg.data + pos,
				       msg.len - pos < step ? msg.len - pos : step) < 0)
			break;
	if (dkim_signer_finish(s, &sig, &siglen) < 0) {
		fprintf(stderr, "dkim_sign: %s\n", dkim_signer_error(s));
	} else {
		fwrite(sig, 1, siglen, stdout);
		if (msg.len > 0)
			fwrite(msg.data, 1, msg.len, stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
	}
	free(sig);
	dkim_signer_free(s);
out:
	dkim_keys_free(keys);
	buf_free(&msg);
	return rc;
}
