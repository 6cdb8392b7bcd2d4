/* OpenSSL 3 server contexts: TLS 1.2 minimum (port 25: TLS 1.0 unless
 * smtp_inbound_tls_min says otherwise), modern ciphers, several
 * certificates chosen by SNI, reloadable. */
#ifndef CORE_TLS_H
#define CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct privsep;
struct tls_server;
struct tls_tickets;
typedef struct ssl_st SSL;

/* Session ticket keys that outlive the contexts (tls_ticket.c): random at
 * start, kept across SIGHUP, rotated every 12 hours.  NULL on failure. */
struct tls_tickets *tls_tickets_new(void);
void tls_tickets_free(struct tls_tickets *tickets);
/* Rotate now: the current key becomes the previous one (still decrypts),
 * the one before is forgotten.  The daemon rotates by itself; for tests. */
void tls_tickets_rotate(struct tls_tickets *tickets);

/* Loads every certificate of cfg; the first is the default.  Files are
 * read with privsep_read_file(ps, ...) (ps NULL: directly), so that a
 * reload after the privilege drop can read root-only keys.  tickets (may
 * be NULL: OpenSSL's per-context keys) encrypts every session ticket.
 * NULL with err set ("CERTFILE: reason") on failure. */
struct tls_server *tls_server_new(const struct config *cfg, struct tls_tickets *tickets,
				  struct privsep *ps, char *err, size_t errlen);
void tls_server_free(struct tls_server *tls);
bool tls_server_has_certificate(const struct tls_server *tls);
/* A new SSL object in server mode for one connection of a listener of
 * this role, or NULL.  TLS 1.2 minimum, but role smtp (port 25) takes
 * config smtp_inbound_tls_min (default TLS 1.0). */
SSL *tls_server_new_ssl(struct tls_server *tls, enum listener_role role);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" style text for Received: headers. */
void tls_describe(SSL *ssl, char *out, size_t outlen);

/* Make a self-signed certificate (RSA 2048, SHA-256, valid 10 years) whose
 * subjectAltName names hostname, localhost and 127.0.0.1; write key (0600)
 * and certificate as PEM.  Uses the OpenSSL API only. */
int tls_make_self_signed(const char *hostname, const char *cert_file,
			 const char *key_file, char *err, size_t errlen);

#endif
