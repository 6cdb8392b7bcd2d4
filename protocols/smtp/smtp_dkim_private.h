/* Shared between the DKIM files of protocols/smtp only (and their tests):
 * the header block split into fields (the signer's, and the verifier's of
 * issue 12), and what the signer needs of a loaded key beyond dkim.h. */
#ifndef PROTOCOLS_SMTP_SMTP_DKIM_PRIVATE_H
#define PROTOCOLS_SMTP_SMTP_DKIM_PRIVATE_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "dkim.h"

/* One header field inside a header block. */
struct dkim_field {
	size_t off, len;  /* without the CRLF that ends it */
	size_t name_len;  /* the name before ':' without trailing WSP; 0: no ':' */
};

/* Split the header block h (len octets: the fields with their CRLFs, not
 * the empty line) into at most max fields.  0, or -1 when there are more. */
int dkim_header_split(const char *h, size_t len, struct dkim_field *f, size_t max, size_t *n_r);
/* true when field f of block h is called name (ASCII case ignored). */
bool dkim_field_is(const char *h, const struct dkim_field *f, const char *name);

/* The header block ends at the first CRLF CRLF, or at a CRLF at the very
 * start (no header fields).  Search only where the new bytes can complete
 * one (old_len: b's length before them).  Returns the offset of the body
 * or 0 when not found yet.  The signer's and the verifier's. */
size_t dkim_find_body(const struct buf *b, size_t old_len);

/* What the algorithm's signature covers (RFC 6376 §3.7, RFC 8463 §3): the
 * header data itself, hashed by EVP_DigestSign/Verify with *md_r = SHA-256
 * (rsa-sha256), or its SHA-256 in digest, signed by PureEd25519 (*md_r
 * NULL).  *in_r, *len_r: what to pass.  0, or -1 when SHA-256 fails.  The
 * signer's and the verifier's. */
int dkim_alg_input(enum dkim_alg alg, const struct buf *data, unsigned char digest[DKIM_HASH_LEN],
		   const unsigned char **in_r, size_t *len_r, const EVP_MD **md_r);

/* Key i's private key, owned by keys. */
EVP_PKEY *dkim_keys_pkey(const struct dkim_keys *keys, size_t i);

/* The first listener of role, or NULL (`postern dns` and its --check). */
const struct config_listener *dkim_listener(const struct config *cfg, enum listener_role role);

#endif
