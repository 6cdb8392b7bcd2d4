/* ManageSieve server (RFC 5804) on port 4190: a user uploads, lists,
 * activates and removes the Sieve scripts (RFC 5228) that filter their
 * mail at delivery.  Thunderbird's Sieve add-on and Roundcube's
 * managesieve plugin speak it.
 *
 * Commands: CAPABILITY, STARTTLS, AUTHENTICATE (SASL PLAIN, RFC 4616),
 * LOGOUT, NOOP, then HAVESPACE, PUTSCRIPT, CHECKSCRIPT, LISTSCRIPTS,
 * SETACTIVE, GETSCRIPT, DELETESCRIPT, RENAMESCRIPT, UNAUTHENTICATE.
 * Scripts are compiled by protocols/sieve before they are stored; they
 * live in the user's Maildir (maildir/store.h, "Sieve scripts").
 * The rest of the module is private (msieve_private.h). */
#ifndef MANAGESIEVE_MANAGESIEVE_H
#define MANAGESIEVE_MANAGESIEVE_H

#include <stddef.h>

struct server;
struct auth;
struct md_store;

/* Plug the protocol into srv for ROLE_MANAGESIEVE.  auth and store must
 * outlive srv.  0, or -1 with err set. */
int managesieve_register(struct server *srv, struct auth *auth, struct md_store *store,
			 char *err, size_t errlen);

#endif
