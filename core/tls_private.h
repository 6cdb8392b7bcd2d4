/* Shared by tls.c and tls_ticket.c only. */
#ifndef CORE_TLS_PRIVATE_H
#define CORE_TLS_PRIVATE_H

#include <openssl/ssl.h>

#include "tls.h"

/* Every ticket of ctx is encrypted and decrypted with t's keys (t NULL:
 * OpenSSL's per-context keys).  0, or -1 with an OpenSSL error. */
int tls_tickets_attach(struct tls_tickets *t, SSL_CTX *ctx);

#endif
