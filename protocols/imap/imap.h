/* IMAP server: IMAP4rev1 (RFC 3501), and IMAP4rev2 (RFC 9051) for a
 * session that sends ENABLE IMAP4rev2, on the imap (143, STARTTLS) and
 * imaps (993, TLS) listeners.  The rest of the module is private
 * (imap_private.h lists its files).
 *
 * Offered (CAPABILITY, only what works): IMAP4rev2, SASL-IR, LITERAL+, ID,
 * ENABLE, IDLE, NAMESPACE, UNSELECT, CHILDREN, UIDPLUS, MOVE,
 * LIST-EXTENDED, SPECIAL-USE, CREATE-SPECIAL-USE, LIST-STATUS,
 * STATUS=SIZE, MULTIAPPEND, ESEARCH, SEARCHRES, BINARY, CONDSTORE, QRESYNC
 * (imap_condstore.c), COMPRESS=DEFLATE (until it is on), UNAUTHENTICATE,
 * QUOTA QUOTA=RES-STORAGE, METADATA, SAVEDATE (FETCH SAVEDATE and the
 * SAVED* SEARCH keys, RFC 8514), UTF8=ACCEPT (RFC 6855); STARTTLS (not under COMPRESS) and
 * AUTH=PLAIN AUTH=LOGIN (or LOGINDISABLED) before login.  \Recent is
 * kept in this process's memory (imap_recent.c).
 *
 * IMAP4rev2 (s->rev2, set by ENABLE in the authenticated state before any
 * SELECT, RFC 5161 §3.1) changes only what RFC 9051 changes: mailbox names
 * are UTF-8 on the wire (imap_mailbox_arg() converts them to the store's
 * modified UTF-7, imap_buf_mailbox() back; not UTF-8 is BAD), no \Recent
 * (no RECENT response, flag, STATUS item or SEARCH key), SEARCH answers
 * ESEARCH, SELECT answers LIST and no UNSEEN, and a SELECT that replaces a
 * mailbox says OK [CLOSED].  IMAP4rev1 sessions are unchanged.  Names are
 * not Unicode-normalised (no OLDNAME).
 *
 * UTF8=ACCEPT (s->utf8_accept, ENABLE under the same rule as IMAP4rev2)
 * gives UTF-8 mailbox names exactly as IMAP4rev2 does
 * (imap_utf8_names()); SEARCH with CHARSET is then BAD and SORT / THREAD
 * take only UTF-8 (RFC 6855 §3, errata 4029).  APPEND's UTF8 (~{n}) data
 * item (§4) is accepted in every session.
 *
 * Threads.  Sessions live on the event loop.  Every store call runs in a
 * worker job (conn_submit) that formats its answer into the session's
 * output buffer; the loop then writes it.  A streaming command (FETCH of
 * many or large messages) writes about IMAP_OUT_SLICE octets per job and
 * continues when the connection's output has drained (CMD_MORE), so a
 * client that does not read cannot make the server buffer without bound.
 * No LMDB transaction is held across jobs: the store's calls open and
 * close their own.
 *
 * State machine (RFC 3501 §3): NOT-AUTHENTICATED -> AUTHENTICATED ->
 * SELECTED -> LOGOUT, every change through imap_enter_state(); the command
 * table lists the states each command is allowed in.
 *
 * Sessions see each other's changes (and those of other processes) as
 * untagged EXISTS / EXPUNGE / FETCH FLAGS after commands and in IDLE, from
 * md_mailbox_sync() compared with the session's view; the store's change
 * hook wakes IDLE sessions at once, a 500 ms poll catches other processes.
 *
 * Limits are named in imap_private.h with the RFC that motivates them:
 * command line (cfg->line_length_max), literals (APPEND up to
 * cfg->message_size_max, others IMAP_LITERAL_MAX; non-synchronising ones
 * over 4096 octets only in APPEND), sequence ranges, SEARCH nesting and
 * size, commands before login, 10 BADs in a row.
 *
 * Clients named in ID get the workarounds of imap_quirks.c's table (and
 * only those); everyone else gets the standard behaviour.
 *
 * Logs: "imap login user=... rip=... tls=...", "imap client name=...
 * version=... os=... quirks=..." at the first ID, one debug line per command
 * "imap user=... cmd=... result=... ms=...", and the fail2ban line of
 * auth_throttle_failure() ("auth failed: proto=imap rip=...").
 */
#ifndef IMAP_IMAP_H
#define IMAP_IMAP_H

#include <stddef.h>

struct server;
struct auth;
struct md_store;

/* Create the protocol context and plug it into srv for ROLE_IMAP and
 * ROLE_IMAPS; registers the store's change hook (for IDLE).  auth and
 * store must outlive srv.  0, or -1 with err set. */
int imap_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen);

#endif
