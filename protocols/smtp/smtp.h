/* The SMTP server: inbound mail on port 25 (role smtp), message submission
 * on 587 (submission, STARTTLS) and 465 (submissions, implicit TLS), with
 * local delivery through the store.  RFC 5321 with PIPELINING, SIZE,
 * 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS, AUTH PLAIN LOGIN, SMTPUTF8,
 * CHUNKING and DSN; the details are in smtp_session.c. */
#ifndef PROTOCOLS_SMTP_SMTP_H
#define PROTOCOLS_SMTP_SMTP_H

#include <stddef.h>

struct auth;
struct config;
struct md_store;
struct server;

/* Create the protocol context and plug it into srv for ROLE_SMTP,
 * ROLE_SUBMISSION, ROLE_SUBMISSIONS and ROLE_LMTP (RFC 2033).  auth and store must outlive the
 * server.  0, or -1 with err set. */
int smtp_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen);

/* postern queue list|flush|delete ID (argv after "queue"); sysexits code. */
int smtp_cli_queue(const struct config *cfg, int argc, char **argv);

/* `postern deliver`'s Sieve (smtp_sieve_cli.c): fills *f for
 * md_cli_deliver_filtered() with the owners' active scripts, as at SMTP
 * and LMTP delivery; redirects and vacation replies to other domains go
 * into the queue the daemon sends from.  cfg and auth outlive the
 * delivery; f->done frees the rest.  0, or -1 out of memory. */
struct md_deliver_filter;
int smtp_cli_sieve_filter(const struct config *cfg, struct auth *auth,
			  struct md_deliver_filter *f);

#endif
