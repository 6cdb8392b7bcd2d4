/* POP3 server (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).
 * The rest of the module is private (pop3_private.h). */
#ifndef POP3_POP3_H
#define POP3_POP3_H

#include <stddef.h>

struct server;
struct auth;
struct md_store;

/* Create the protocol context (lock table, size cache) and plug it into
 * srv for ROLE_POP3 and ROLE_POP3S.  The context lives as long as the
 * process; auth and store must outlive srv.  0, or -1 with err set. */
int pop3_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen);

#endif
