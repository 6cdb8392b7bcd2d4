/* IMAP server (RFC 3501 IMAP4rev1 with the extensions listed in
 * imap_capability()), on the imap (143, STARTTLS) and imaps (993, TLS)
 * listeners.  The rest of the module is private (imap_private.h).
 *
 * Threads: sessions live on the event loop; every store call runs in a
 * worker job (conn_submit) that formats its answer into the session's
 * output buffer, which the loop then writes.  A streaming command (FETCH of
 * many messages) produces a bounded slice per job and continues when the
 * connection's output has drained (CMD_MORE).
 */
#ifndef IMAP_IMAP_H
#define IMAP_IMAP_H

#include <stddef.h>

struct server;
struct auth;
struct md_store;

/* Create the protocol context and plug it into srv for ROLE_IMAP and
 * ROLE_IMAPS.  auth and store must outlive srv.  0, or -1 with err set. */
int imap_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen);

#endif
