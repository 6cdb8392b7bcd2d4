/* LMTP (RFC 2033): mail handed over by the MTA in front (Postfix's
 * mailbox_transport / virtual_transport = lmtp:..., Exim's lmtp
 * transport), as a mode of the SMTP session rather than a second server.
 *
 * What differs from port 25, and where:
 *   - only trusted peers: a unix socket (its file's permissions chose the
 *     client) or a TCP peer in trusted_networks; any other gets a 554
 *     greeting and 503 to everything but QUIT (RFC 5321 §3.1);
 *   - LHLO instead of EHLO/HELO, which get 500 (smtp_cmd.c); the same
 *     extensions but AUTH and DSN (smtp_capabilities);
 *   - recipients are local users and aliases only, as on port 25 without
 *     authentication: another domain is refused (LMTP never relays); an
 *     alias may still forward to another domain through the queue;
 *   - no SPF, DKIM, DMARC or pregreet (smtp_inbound_wanted() and the
 *     pregreet test are for role smtp): the MTA in front did that;
 *   - one Received field in Dovecot's LMTP layout (smtp_lmtp_trace);
 *   - after DATA, or BDAT LAST (RFC 3030 keeps LMTP's rule for the last
 *     chunk), one reply per RCPT that got 250, in RCPT order (RFC
 *     2033 §4.2), each from the store results of that recipient's
 *     mailboxes (smtp_lmtp_replies): every copy its owners' Sieve scripts
 *     chose (smtp_sieve.c; fileinto makes several, discard none).  Every
 *     reply is written after the one group commit of the message
 *     (smtp_deliver.c), so each copy is durable before its 250
 *     (DESIGN.md).  A recipient whose owners' scripts all reject gets
 *     "550 5.7.1 reason" (RFC 5429 §2.1: refuse in the protocol), whatever
 *     the others get.  A refusal of the whole message (size, bare LF, a
 *     failed spool write) is repeated once per recipient (smtp_end_reply).
 * Local delivery goes through the same smtp_commit_local() as port 25,
 * Sieve included.
 */
#include "smtp_private.h"
#include "smtp_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

/* RFC 5321 §4.5.3.1.8: SMTP_RCPT_MAX recipients of AUTH_RESOLVE_MAX
 * mailboxes each at most. */
#define SMTP_LINKS_MAX (SMTP_RCPT_MAX * AUTH_RESOLVE_MAX)
/* Octets of a Sieve reject reason in a per-recipient reply: with "550
 * 5.7.1 <address> " it stays within a 512-octet line (RFC 5321
 * §4.5.3.1.5), the address being at most SMTP_PATH_MAX. */
#define SMTP_LMTP_REASON_MAX 200

void smtp_cmd_lhlo(struct smtp_session *s, const char *args)
{
	smtp_hello(s, args, true);
}

void smtp_lmtp_greet(struct smtp_session *s)
{
	const char *host = s->ctx->cfg->hostname;

	if (conn_peer_is_trusted(s->conn)) {
		conn_printf(s->conn, "220 %s LMTP Postern\r\n", host);
		return;
	}
	conn_log(s->conn, LOG_LEVEL_WARN, "lmtp refused rip=%s: not in trusted_networks",
		 conn_peer_addr(s->conn));
	s->refused = true;
	conn_printf(s->conn, "554 5.7.1 %s LMTP: no service for %s (not in trusted_networks)\r\n",
		    host, conn_peer_addr(s->conn));
}

int smtp_lmtp_reserve(struct smtp_tx *tx, size_t n)
{
	size_t cap = tx->links_cap;
	struct smtp_link *p;

	if (tx->n_links + n > SMTP_LINKS_MAX)
		return -1;
	if (tx->n_links + n <= cap)
		return 0;
	while (cap < tx->n_links + n)
		cap = cap == 0 ? 16 : cap * 2;
	p = realloc(tx->links, cap * sizeof(*p));
	if (p == NULL)
		return -1;
	tx->links = p;
	tx->links_cap = cap;
	return 0;
}

void smtp_lmtp_link(struct smtp_tx *tx, size_t rcpt, size_t owner)
{
	/* both below SMTP_RCPT_MAX / SMTP_OWNERS_MAX (smtp_cmd.c) */
	tx->links[tx->n_links].rcpt = (uint16_t)rcpt;
	tx->links[tx->n_links].owner = (uint16_t)owner;
	tx->n_links++;
}

size_t smtp_lmtp_accepted(const struct smtp_session *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->tx.n_rcpts; i++)
		if (!s->tx.rcpts[i].remote)
			n++;
	return n;
}

/* The client's address in a Received field: "[192.0.2.1]", or nothing for
 * a unix socket. */
static void smtp_lmtp_peer(const struct smtp_session *s, char *out, size_t outlen)
{
	const char *ip = conn_peer_addr(s->conn);

	if (conn_peer_is_local_socket(s->conn))
		out[0] = '\0';
	else
		snprintf(out, outlen, " ([%s%s])", strchr(ip, ':') != NULL ? "IPv6:" : "", ip);
}

/* Return-Path (RFC 5321 §4.4: this is the final delivery) and a Received
 * field as Dovecot's LMTP writes it, with the RFC 3848 keyword LMTP (or
 * LMTPS).  "for" names the recipient only when there is one: the file is
 * shared by every mailbox (hard links), a list would disclose Bcc. */
int smtp_lmtp_trace(struct smtp_session *s, struct smtp_msg *m)
{
	const struct smtp_tx *tx = &s->tx;
	char date[64], peer[80];
	int rc = 0;

	smtp_rfc5322_date(time(NULL), date, sizeof(date));
	smtp_lmtp_peer(s, peer, sizeof(peer));
	rc |= buf_appendf(&m->prefix, "Return-Path: <%s>\r\n", tx->from.null ? "" : tx->from.addr);
	rc |= buf_appendf(&m->prefix, "Received: from %s%s\r\n\tby %s (Postern) with %s\r\n"
			  "\tid %s\r\n\t(envelope-from <%s>)", s->helo, peer,
			  s->ctx->cfg->hostname, conn_is_tls(s->conn) ? "LMTPS" : "LMTP", tx->id,
			  tx->from.null ? "" : tx->from.addr);
	if (smtp_lmtp_accepted(s) == 1)
		for (size_t i = 0; i < tx->n_rcpts; i++)
			if (!tx->rcpts[i].remote)
				rc |= buf_appendf(&m->prefix, "\r\n\tfor <%s>", tx->rcpts[i].path.addr);
	rc |= buf_appendf(&m->prefix, "; %s\r\n", date);
	return rc < 0 ? -1 : 0;
}

/* The result for RCPT number rcpt: MD_OK when every copy its owners'
 * scripts chose is stored, else a temporary failure before a permanent
 * one (the MTA retries, RFC 5321 §6.1 prefers a duplicate to a loss).
 * *reject_r: the reason when every owner's script rejects the message. */
static enum md_result smtp_lmtp_rcpt_result(const struct smtp_session *s,
					    const struct smtp_msg *m, size_t rcpt,
					    const char **reject_r)
{
	const struct smtp_tx *tx = &s->tx;
	bool perm_quota = s->ctx->cfg->quota_error_permanent;
	enum md_result worst = MD_OK;
	size_t owners = 0, rejected = 0;

	*reject_r = NULL;
	for (size_t i = 0; i < tx->n_links; i++) {
		const struct smtp_owner *o;

		if (tx->links[i].rcpt != rcpt)
			continue;
		o = &tx->owners[tx->links[i].owner];
		owners++;
		if (o->sieve_reject != NULL) {
			rejected++;
			if (*reject_r == NULL)
				*reject_r = o->sieve_reject;
		}
		for (size_t t = o->target; t < o->target + o->n_targets; t++) {
			enum md_result r = t < m->n_targets ? m->targets[t].result : MD_TEMPFAIL;
			const char *code, *text;
			if (r == MD_OK)
				continue;
			smtp_store_result_reply(r, perm_quota, &code, &text);
			if (code[0] == '4') {
				*reject_r = NULL;
				return r;
			}
			worst = r;
		}
	}
	if (rejected < owners || worst != MD_OK)
		*reject_r = NULL;
	return worst;
}

bool smtp_lmtp_refused(const struct smtp_tx *tx, const char *owner)
{
	for (size_t i = 0; i < tx->n_links; i++) {
		bool all = true;
		if (strcmp(tx->owners[tx->links[i].owner].address, owner) != 0)
			continue;
		for (size_t k = 0; k < tx->n_links && all; k++)
			if (tx->links[k].rcpt == tx->links[i].rcpt)
				all = tx->owners[tx->links[k].owner].sieve_reject != NULL;
		if (all)
			return true;
	}
	return false;
}

void smtp_lmtp_replies(struct smtp_session *s, const struct smtp_msg *m)
{
	const struct smtp_tx *tx = &s->tx;
	bool perm_quota = s->ctx->cfg->quota_error_permanent;
	size_t ok = 0, failed = 0;

	for (size_t i = 0; i < tx->n_rcpts; i++) {
		const char *addr = tx->rcpts[i].path.addr, *code, *text, *reject;
		char reason[SMTP_REPLY_MAX];
		enum md_result r;

		if (tx->rcpts[i].remote)
			continue; /* an alias's forward, not a RCPT of the client */
		r = smtp_lmtp_rcpt_result(s, m, i, &reject);
		if (reject != NULL) {
			failed++;
			smtp_sieve_reply_text(reject, reason, SMTP_LMTP_REASON_MAX);
			conn_log(s->conn, LOG_LEVEL_INFO, "lmtp id=%s rcpt=<%s> refused: the "
				 "recipient's Sieve script rejects it", tx->id, addr);
			smtp_reply_line(s, "550 5.7.1 <%s> %s", addr, reason);
			continue;
		}
		if (r == MD_OK) {
			ok++;
			smtp_reply_line(s, "250 2.0.0 <%s> Ok: %s as %s", addr,
					m->queued ? "queued" : "delivered", tx->id);
			continue;
		}
		failed++;
		smtp_store_result_reply(r, perm_quota, &code, &text);
		conn_log(s->conn, LOG_LEVEL_INFO, "lmtp id=%s rcpt=<%s> not delivered: %s %s",
			 tx->id, addr, code, text);
		smtp_reply_line(s, "%s <%s> %s", code, addr, text);
	}
	if (ok > 0) {
		s->messages++;
		s->bad_commands = 0;
		metrics_count(METRICS_MSG_RECEIVED);
	}
	conn_log(s->conn, LOG_LEVEL_INFO, "lmtp delivered id=%s from=<%s> ok=%zu failed=%zu "
		 "mailboxes=%zu remote=%zu size=%llu", tx->id, tx->from.addr, ok, failed,
		 m->n_delivered, tx->n_remote, (unsigned long long)m->size);
}
