/* Shared between the DKIM files of protocols/smtp only (and their unit
 * test): what the signer needs of a loaded key beyond dkim.h. */
#ifndef PROTOCOLS_SMTP_SMTP_DKIM_PRIVATE_H
#define PROTOCOLS_SMTP_SMTP_DKIM_PRIVATE_H

#include <openssl/evp.h>
#include <stddef.h>

#include "dkim.h"

/* Key i's private key, owned by keys. */
EVP_PKEY *dkim_keys_pkey(const struct dkim_keys *keys, size_t i);

#endif
