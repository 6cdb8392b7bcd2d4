/* Local delivery of a received message: the trace header fields, the
 * submission header checks, and the worker jobs that stream the message
 * into the store and commit it to every local owner.
 *
 * What is stored: "Return-Path: <sender>" (RFC 5321 §4.4: we make the
 * final delivery), one Received: field in Postfix's layout with the RFC
 * 3848 / RFC 6531 protocol keyword (no reverse DNS is looked up, so the
 * client appears as its address literal only), on submission Date: and
 * Message-ID: when the client left them out (RFC 6409 §8.2, §8.3), then
 * the message as received.  One file is hard-linked to every owner, so
 * there is no per-recipient Delivered-To; "for <rcpt>" appears only with
 * a single recipient (a list would disclose Bcc recipients).
 *
 * All or nothing.  The reply after DATA is one reply for the whole
 * transaction.  Quotas are therefore checked before the commit for every
 * owner (RCPT with the declared SIZE, then again with the real size) and
 * the commit itself is asked not to enforce them, so the store's per-target
 * results only differ on I/O failures.  If some owners then got the message
 * and others did not, a temporary failure is answered (the client retries
 * and the first ones get a duplicate: RFC 5321 §6.1 prefers duplicates to
 * losses); when the others failed permanently, 250 is answered and the
 * sender gets a bounce (smtp_bounce.c) naming those mailboxes.  Quotas can
 * be overrun by messages delivered at the same moment.
 *
 * LMTP (smtp_lmtp.c) answers per recipient instead, so there it is not all
 * or nothing: each mailbox's quota is enforced by the commit itself (the
 * store's per-target MD_QUOTA), nothing is bounced (the MTA in front
 * reports the per-recipient failures), and a recipient whose mailbox
 * failed temporarily gets its own 451 while the others get 250 (with
 * Sieve, every copy its owners' scripts chose counts: smtp_sieve.c).
 *
 * Remote recipients (another domain for authenticated senders, alias
 * forwards, users of other shards: smtp_cmd.c): the same bytes, without
 * Return-Path, are streamed into a queue file as well (checked mail from
 * the world: written at the end from the inbound spool, below our
 * Authentication-Results, smtp_inbound_queue); at the end the queue entry
 * is made durable first, then the local owners are committed.  A temporary local failure withdraws the queue entry
 * before the 451, so the retried transaction does not send it twice.
 */
#include "smtp_private.h"
#include "smtp_inbound.h"
#include "smtp_queue.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void smtp_rfc5322_date(time_t t, char *out, size_t outlen)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	/* RFC 5322 §3.3, English names whatever the locale */
	snprintf(out, outlen, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

const char *smtp_with_keyword(bool esmtp, bool tls, bool auth, bool utf8)
{
	static const char *const esmtp_kw[] = { "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" };
	static const char *const utf8_kw[] = { "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA" };
	unsigned i = (tls ? 2u : 0u) + (auth ? 1u : 0u);

	if (!esmtp)
		return "SMTP";
	return utf8 ? utf8_kw[i] : esmtp_kw[i];
}

int smtp_build_trace(struct smtp_session *s, struct smtp_msg *m)
{
	const struct config *cfg = s->ctx->cfg;
	const struct smtp_tx *tx = &s->tx;
	const char *ip = conn_peer_addr(s->conn);
	char date[64], tls[128] = "";
	int rc = 0;

	if (s->role == ROLE_LMTP)
		return smtp_lmtp_trace(s, m);
	smtp_rfc5322_date(time(NULL), date, sizeof(date));
	if (conn_is_tls(s->conn))
		conn_tls_describe(s->conn, tls, sizeof(tls));
	rc |= buf_appendf(&m->prefix, "Return-Path: <%s>\r\n", tx->from.null ? "" : tx->from.addr);
	rc |= buf_appendf(&m->prefix, "Received: from %s ([%s%s])\r\n", s->helo,
			  strchr(ip, ':') != NULL ? "IPv6:" : "", ip);
	if (tls[0] != '\0') {
		char *sp = strchr(tls, ' ');
		if (sp != NULL) {
			*sp = '\0';
			rc |= buf_appendf(&m->prefix, "\t(using %s with cipher %s)\r\n", tls, sp + 1);
		} else {
			rc |= buf_appendf(&m->prefix, "\t(using %s)\r\n", tls);
		}
	}
	/* The issue asks for the submitting user; Postfix writes the same
	 * comment with smtpd_sasl_authenticated_header = yes. */
	if (s->authenticated)
		rc |= buf_appendf(&m->prefix, "\t(Authenticated sender: %s)\r\n", s->user);
	rc |= buf_appendf(&m->prefix, "\tby %s (Postern) with %s id %s", cfg->hostname,
			  smtp_with_keyword(s->esmtp, conn_is_tls(s->conn), s->authenticated,
					    tx->mail.smtputf8),
			  tx->id);
	if (tx->n_rcpts == 1)
		rc |= buf_appendf(&m->prefix, "\r\n\tfor <%s>", tx->rcpts[0].path.addr);
	rc |= buf_appendf(&m->prefix, ";\r\n\t%s\r\n", date);
	return rc < 0 ? -1 : 0;
}

void smtp_inspect_header(struct smtp_session *s, struct smtp_msg *m, const char *hdr, size_t len)
{
	struct smtp_header_info info;
	char (*addrs)[SMTP_PATH_MAX + 1];
	int n;

	smtp_header_scan(hdr, len, &info);
	(void)buf_append(&m->headers, hdr, len); /* for bounces; over the cap: none */
	if (info.received > SMTP_HOPS_MAX) {
		m->verdict = SMTP_VERDICT_HOPS;
		return;
	}
	if (!smtp_is_submission(s))
		return;
	if (info.from_fields != 1) {
		m->verdict = SMTP_VERDICT_NO_FROM;
		return;
	}
	addrs = calloc(SMTP_FROM_MAX, sizeof(*addrs));
	if (addrs == NULL) {
		m->verdict = SMTP_VERDICT_MEMORY;
		return;
	}
	n = smtp_parse_from(info.from, info.from_len, addrs, SMTP_FROM_MAX);
	if (n < 0)
		m->verdict = SMTP_VERDICT_BAD_FROM;
	for (int i = 0; i < n && m->verdict == SMTP_VERDICT_OK; i++) {
		if (!auth_user_owns_address(s->ctx->auth, s->user, addrs[i])) {
			m->verdict = SMTP_VERDICT_FROM_NOT_OWNED;
			str_copy(m->verdict_detail, addrs[i], sizeof(m->verdict_detail));
		}
	}
	free(addrs);
	if (m->verdict != SMTP_VERDICT_OK)
		return;
	if (!info.has_date) {
		char date[64];
		smtp_rfc5322_date(time(NULL), date, sizeof(date));
		if (buf_appendf(&m->prefix, "Date: %s\r\n", date) < 0)
			m->verdict = SMTP_VERDICT_MEMORY;
	}
	if (!info.has_message_id) {
		char rnd[SMTP_ID_LEN + 1];
		smtp_make_id(rnd);
		if (buf_appendf(&m->prefix, "Message-ID: <%s.%s@%s>\r\n", s->tx.id, rnd,
				s->ctx->cfg->hostname) < 0)
			m->verdict = SMTP_VERDICT_MEMORY;
	}
}

/* The reply for a refused message: the end of the transaction. */
static void smtp_verdict_reply(struct smtp_session *s, const struct smtp_msg *m)
{
	char reply[SMTP_REPLY_MAX];

	smtp_verdict_text(s, m, reply, sizeof(reply));
	smtp_end_reply(s, "%s", reply);
}

/* ---- worker side ---------------------------------------------------------- */

/* The prefix without its first line (Return-Path: only the final delivery
 * adds one, RFC 5321 §4.4). */
static void smtp_prefix_for_queue(const struct smtp_msg *m, const char **p, size_t *len)
{
	const char *nl = memchr(m->prefix.data, '\n', m->prefix.len);
	size_t skip = nl != NULL ? (size_t)(nl - m->prefix.data) + 1 : 0;

	*p = m->prefix.data + skip;
	*len = m->prefix.len - skip;
}

/* Remote recipients: the message also goes to a queue file; on a worker. */
static void smtp_queue_write(struct smtp_session *s, struct smtp_msg *m)
{
	const char *p;
	size_t len;
	bool first = m->qw == NULL;

	/* checked mail is queued after its verdict (smtp_inbound_queue) */
	if (s->tx.n_remote == 0 || m->store_result != MD_OK || m->inbound != NULL)
		return;
	if (first && queue_writer_open(s->ctx->cfg->data_dir, s->tx.id, &m->qw) < 0)
		goto fail;
	if (first) {
		smtp_prefix_for_queue(m, &p, &len);
		if (queue_writer_write(m->qw, p, len) < 0)
			goto fail;
	}
	if (m->spool.len > 0 && queue_writer_write(m->qw, m->spool.data, m->spool.len) < 0)
		goto fail;
	return;
fail:
	m->store_result = MD_TEMPFAIL;
	snprintf(m->store_error, sizeof(m->store_error), "queue: %s", queue_writer_error(m->qw));
}

/* Write the spool (and the prefix first) to the store and, for remote
 * recipients, to the queue file; on a worker. */
static void smtp_store_write(struct smtp_session *s, struct smtp_msg *m)
{
	enum md_result r = MD_OK;

	smtp_queue_write(s, m);
	if (m->store_result != MD_OK)
		return;
	if (m->inbound != NULL) {
		/* checked mail waits for its verdict (smtp_inbound.c), which
		 * needs the whole message even when no mailbox here gets it
		 * (all for other shards or domains) */
		if (m->spool.len > 0 &&
		    smtp_inbound_write(m->inbound, m->spool.data, m->spool.len) < 0) {
			m->store_result = MD_TEMPFAIL;
			str_copy(m->store_error, smtp_inbound_error(m->inbound),
				 sizeof(m->store_error));
		}
		return;
	}
	if (s->tx.n_owners == 0)
		return;
	if (m->d == NULL) {
		r = md_delivery_open(s->ctx->store, 0, 0, &m->d);
		if (r != MD_OK) {
			m->d = NULL;
			m->store_result = r;
			snprintf(m->store_error, sizeof(m->store_error), "cannot open a delivery");
			return;
		}
	}
	if (!m->prefix_written) {
		r = md_delivery_write(m->d, m->prefix.data, m->prefix.len);
		m->prefix_written = true;
	}
	if (r == MD_OK && m->spool.len > 0)
		r = md_delivery_write(m->d, m->spool.data, m->spool.len);
	if (r != MD_OK) {
		m->store_result = r;
		str_copy(m->store_error, md_delivery_error(m->d), sizeof(m->store_error));
	}
}

static void smtp_flush_work(void *arg)
{
	struct smtp_session *s = arg;

	smtp_store_write(s, s->tx.msg);
}

static void smtp_flush_done(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_msg *m = s->tx.msg;

	buf_reset(&m->spool);
	if (m->store_result != MD_OK && m->verdict == SMTP_VERDICT_OK) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "smtp id=%s store write failed: %s", s->tx.id,
			 m->store_error);
		m->verdict = SMTP_VERDICT_STORE;
		buf_free(&m->spool);
	}
	smtp_unbusy(s);
}

void smtp_flush(struct smtp_session *s)
{
	struct smtp_msg *m = s->tx.msg;

	if (smtp_submit(s, smtp_flush_work, smtp_flush_done) < 0 && m->verdict == SMTP_VERDICT_OK) {
		m->verdict = SMTP_VERDICT_MEMORY; /* answered at the end of the data */
		buf_free(&m->spool);
	}
}

/* Usage of one owner with a quota; true when one more message of size
 * octets would exceed its storage or its message count (RFC 9208 STORAGE,
 * MESSAGE). */
static bool smtp_over_quota(struct md_store *store, const struct smtp_owner *o, uint64_t size)
{
	struct md_user *u;
	uint64_t bytes = 0, msgs = 0;

	if (o->quota == 0 && o->quota_messages == 0)
		return false;
	if (md_user_open(store, o->address, 0, &u) == MD_OK) {
		if (md_user_usage(u, &bytes, &msgs) != MD_OK)
			bytes = msgs = 0; /* unknown usage must not block mail */
		md_user_close(u);
	} /* else no Maildir yet: nothing used */
	return (o->quota > 0 && bytes + size > o->quota) ||
	       (o->quota_messages > 0 && msgs + 1 > o->quota_messages);
}

static bool smtp_result_temporary(enum md_result r, bool quota_permanent)
{
	if (r == MD_QUOTA)
		return !quota_permanent;
	return r != MD_BADMSG && r != MD_TOOBIG && r != MD_BADNAME && r != MD_NOUSER;
}

/* The envelope of the remote recipients, then the queue files made
 * durable; on a worker.  0, or -1 with store_result set. */
static int smtp_queue_commit(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_tx *tx = &s->tx;
	struct queue_env *env = queue_env_new();
	int rc = -1;

	if (env != NULL) {
		str_copy(env->id, tx->id, sizeof(env->id));
		str_copy(env->sender, tx->from.null ? "" : tx->from.addr, sizeof(env->sender));
		env->ret = tx->mail.ret;
		str_copy(env->envid, tx->mail.envid, sizeof(env->envid));
		env->body_8bit = tx->mail.body == SMTP_BODY_8BITMIME;
		env->smtputf8 = tx->mail.smtputf8;
		env->created = env->next = (int64_t)time(NULL);
		rc = 0;
		for (size_t i = 0; i < tx->n_rcpts && rc == 0; i++)
			if (tx->rcpts[i].remote)
				rc = queue_env_add(env, tx->rcpts[i].path.addr,
						   tx->rcpts[i].params.notify,
						   tx->rcpts[i].params.orcpt);
		if (rc == 0)
			rc = queue_writer_commit(m->qw, env);
	}
	queue_env_free(env);
	if (rc < 0) {
		m->store_result = MD_TEMPFAIL;
		snprintf(m->store_error, sizeof(m->store_error), "queue: %s",
			 queue_writer_error(m->qw));
		return -1;
	}
	m->queued = true;
	m->kick = true;
	return 0;
}

struct queue_env *smtp_report_env(const struct smtp_tx *tx)
{
	struct queue_env *env = queue_env_new();

	if (env == NULL)
		return NULL;
	str_copy(env->id, tx->id, sizeof(env->id));
	str_copy(env->sender, tx->from.addr, sizeof(env->sender));
	str_copy(env->envid, tx->mail.envid, sizeof(env->envid));
	env->created = (int64_t)time(NULL);
	return env;
}

/* Local targets that failed for good after the commit get a bounce, since
 * the reply will be 250 for the transaction (see the top). */
static void smtp_bounce_local(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_tx *tx = &s->tx;
	struct queue_env *env;
	char err[256];
	bool queued = false;
	int rc;

	if (tx->from.null) {
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp id=%s no bounce for the null sender", tx->id);
		return;
	}
	env = smtp_report_env(tx);
	if (env == NULL)
		return;
	for (size_t i = 0; i < m->n_targets; i++) {
		enum md_result r = m->targets[i].result;
		if (r == MD_OK || queue_env_add(env, m->targets[i].address, 0, NULL) < 0)
			continue;
		env->rcpts[env->n_rcpts - 1].state = QUEUE_RCPT_FAILED;
		str_copy(env->rcpts[env->n_rcpts - 1].reply, r == MD_QUOTA ?
			 "552 5.2.2 Mailbox full" : "550 5.1.1 Mailbox unavailable",
			 sizeof(env->rcpts[0].reply));
	}
	/* RET=FULL gets the header block too: the message is not kept here */
	rc = bounce_send(s->ctx, env, BOUNCE_FAILED,
			 &(struct bounce_orig){ m->headers.data, m->headers.len, NULL, 0 }, &queued,
			 err, sizeof(err));
	if (rc != 0)
		log_error("smtp id=%s bounce for failed local delivery to <%s> not sent: %s",
			  tx->id, tx->from.addr, err);
	m->kick = m->kick || queued;
	queue_env_free(env);
}

/* The owners as store targets, those still users first; a user deleted
 * since RCPT (`postern user del`, seen at once: auth.h) must not have its
 * mailbox made again by create_user, so it fails for good (MD_NOUSER) and
 * is bounced after the 250 (see the top).  Returns how many are live. */
static size_t smtp_live_targets(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_tx *tx = &s->tx;
	size_t live = 0, dead = tx->n_owners;

	for (size_t i = 0; i < tx->n_owners; i++) {
		bool exists = auth_user_exists(s->ctx->auth, tx->owners[i].address);
		size_t slot = exists ? live++ : --dead;
		struct md_target *t = &m->targets[slot];
		tx->owners[i].target = slot;
		tx->owners[i].n_targets = 1; /* until Sieve chooses */
		tx->owners[i].sieve_reject = NULL;
		t->address = tx->owners[i].address;
		/* DMARC p=quarantine (smtp_inbound.c) */
		if (m->action == SMTP_INBOUND_QUARANTINE)
			t->mailbox = SMTP_INBOUND_JUNK;
		/* SMTP checked it above, LMTP lets the store (see the top) */
		t->quota_bytes = s->role == ROLE_LMTP ? tx->owners[i].quota : 0;
		t->quota_messages = s->role == ROLE_LMTP ? tx->owners[i].quota_messages : 0;
		t->create_user = true;
		t->result = exists ? MD_OK : MD_NOUSER;
	}
	return live;
}

/* RFC 3461 §4.1 NOTIFY=SUCCESS of local recipients: an "Action:
 * delivered" notice once every local mailbox has the message (with a
 * failure the sender gets the bounce instead); best effort. */
static void smtp_notify_local(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_tx *tx = &s->tx;
	struct queue_env *env;
	char err[256];
	bool queued = false;

	if (tx->from.null)
		return;
	env = smtp_report_env(tx);
	if (env == NULL)
		return;
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		const struct smtp_rcpt *r = &tx->rcpts[i];
		struct queue_rcpt *q;
		if (r->remote || !(r->params.notify & SMTP_NOTIFY_SUCCESS) ||
		    queue_env_add(env, r->path.addr, r->params.notify, r->params.orcpt) < 0)
			continue;
		q = &env->rcpts[env->n_rcpts - 1];
		q->state = QUEUE_RCPT_SENT;
		q->success_due = true;
		str_copy(q->reply, "250 2.0.0 Delivered to the mailbox", sizeof(q->reply));
	}
	if (env->n_rcpts > 0 &&
	    bounce_send(s->ctx, env, BOUNCE_DELIVERED,
			&(struct bounce_orig){ m->headers.data, m->headers.len, NULL, 0 }, &queued,
			err, sizeof(err)) != 0)
		log_error("smtp id=%s success notice to <%s> not sent: %s", tx->id,
			  tx->from.addr, err);
	m->kick = m->kick || queued;
	queue_env_free(env);
}

/* Local delivery of a message whose remote part (if any) is queued. */
static void smtp_commit_local(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_tx *tx = &s->tx;
	bool perm = s->ctx->cfg->quota_error_permanent, failed = false;
	enum md_result r;
	size_t live;

	m->targets = calloc(tx->n_owners, sizeof(*m->targets));
	if (m->targets == NULL) {
		m->store_result = MD_TEMPFAIL;
		str_copy(m->store_error, "out of memory", sizeof(m->store_error));
		return;
	}
	m->n_targets = tx->n_owners;
	live = smtp_live_targets(s, m);
	/* Sieve decides the folders, flags and copies (smtp_sieve.c); LMTP's
	 * per-recipient replies follow owners[].target and .n_targets, which
	 * the plan sets (one owner may get several targets or none). */
	if (live > 0 && smtp_sieve_plan(s, m, &live) < 0) {
		m->store_result = MD_TEMPFAIL;
		str_copy(m->store_error, "sieve: out of memory", sizeof(m->store_error));
		return;
	}
	if (m->sieve_reject)
		return; /* 550 with the script's reason: nothing is stored */
	r = live > 0 ? md_delivery_commit(m->d, m->targets, live) : MD_OK;
	if (r != MD_OK) {
		m->store_result = r;
		str_copy(m->store_error, md_delivery_error(m->d), sizeof(m->store_error));
	}
	for (size_t i = 0; i < m->n_targets; i++) {
		if (r == MD_OK && m->targets[i].result == MD_OK) {
			m->n_delivered++;
			continue;
		}
		failed = true;
		if (r != MD_OK || smtp_result_temporary(m->targets[i].result, perm))
			m->local_temp = true;
	}
	md_delivery_free(m->d);
	m->d = NULL;
	if (s->role == ROLE_LMTP) {
		/* each recipient hears of its own mailboxes; redirect and
		 * vacation for each owner whose copies are stored */
		if (r == MD_OK)
			smtp_sieve_after(s, m);
		return;
	}
	if (m->n_delivered == 0 && tx->n_remote == 0 && !m->sieve_handled)
		return; /* the reply refuses the whole message */
	if (m->local_temp)
		return; /* 451: the client sends it all again */
	smtp_sieve_after(s, m); /* redirect, vacation: only once it is stored */
	if (failed)
		smtp_bounce_local(s, m);
	else
		smtp_notify_local(s, m);
}

/* Checked mail (its verdict is in): the store gets it with its
 * Authentication-Results.  -1 when that failed. */
static int smtp_inbound_run(struct smtp_session *s, struct smtp_msg *m)
{
	enum md_result r = smtp_inbound_store(s, m);

	if (r != MD_OK) {
		m->store_result = r;
		str_copy(m->store_error, smtp_inbound_error(m->inbound), sizeof(m->store_error));
		return -1;
	}
	return 0;
}

static void smtp_commit_work(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = &s->tx;
	struct smtp_msg *m = tx->msg;
	uint64_t size = m->size + m->prefix.len;

	smtp_store_write(s, m);
	if (m->store_result != MD_OK)
		return;
	if (m->inbound != NULL && tx->n_owners > 0 && smtp_inbound_run(s, m) < 0)
		return;
	for (size_t i = 0; i < tx->n_owners && s->role != ROLE_LMTP; i++) {
		if (smtp_over_quota(s->ctx->store, &tx->owners[i], size)) {
			m->quota_exceeded = true;
			str_copy(m->verdict_detail, tx->owners[i].address, sizeof(m->verdict_detail));
			return;
		}
	}
	if (tx->n_remote > 0 && m->inbound != NULL && smtp_inbound_queue(s, m) < 0)
		return;
	if (tx->n_remote > 0 && smtp_queue_commit(s, m) < 0)
		return;
	if (tx->n_owners > 0)
		smtp_commit_local(s, m);
	if (m->queued && (m->store_result != MD_OK || (m->local_temp && s->role != ROLE_LMTP))) {
		/* the reply will be 451 and the client sends it again: the
		 * queued copy must not go out as well (in LMTP only the
		 * recipients that failed are sent again: the copy stays) */
		if (queue_remove(s->ctx->cfg->data_dir, tx->id) < 0)
			log_error("smtp id=%s cannot withdraw the queued copy", tx->id);
		m->queued = false;
		m->kick = false;
	}
}

static void smtp_commit_done(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = &s->tx;
	struct smtp_msg *m = tx->msg;

	if (m->kick)
		smtp_outq_kick(s->ctx->outq);
	if (m->action == SMTP_INBOUND_REJECT) {
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp id=%s refused: DMARC policy of %s",
			 tx->id, m->verdict_detail);
		m->verdict = SMTP_VERDICT_DMARC;
		smtp_verdict_reply(s, m);
	} else if (m->quota_exceeded) {
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp id=%s refused: %s over quota", tx->id,
			 m->verdict_detail);
		m->verdict = SMTP_VERDICT_QUOTA;
		smtp_verdict_reply(s, m);
	} else if (m->sieve_reject) {
		char reason[SMTP_REPLY_MAX - 16];
		smtp_sieve_reply_text(smtp_sieve_reject_reason(m->sieve), reason, sizeof(reason));
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp id=%s refused: the recipient's Sieve "
			 "script rejects it", tx->id);
		smtp_reply(s, "550 5.7.1 %s", reason);
	} else if (s->role == ROLE_LMTP && m->store_result == MD_OK) {
		smtp_lmtp_replies(s, m);
	} else if (m->store_result != MD_OK ||
		   (m->n_delivered == 0 && !m->queued && !m->sieve_handled)) {
		enum md_result r = m->store_result;
		for (size_t i = 0; r == MD_OK && i < m->n_targets; i++)
			r = m->targets[i].result;
		/* a full disk keeps its own answer (452 4.3.1), whether the
		 * spool, a Maildir or the index's commit ran out of space */
		m->store_result = r == MD_OK || (m->local_temp && r != MD_NOSPACE) ?
			MD_TEMPFAIL : r;
		conn_log(s->conn, LOG_LEVEL_ERROR, "smtp id=%s delivery failed: %s", tx->id,
			 m->store_error[0] != '\0' ? m->store_error : "store error");
		m->verdict = SMTP_VERDICT_STORE;
		smtp_verdict_reply(s, m);
	} else if (m->n_delivered < m->n_targets) {
		for (size_t i = 0; i < m->n_targets; i++)
			if (m->targets[i].result != MD_OK)
				conn_log(s->conn, LOG_LEVEL_ERROR, "smtp id=%s not delivered to %s "
					 "(result %d)%s", tx->id, m->targets[i].address,
					 (int)m->targets[i].result,
					 m->local_temp ? "" : ": bounced to the sender");
		if (m->local_temp)
			smtp_reply(s, "451 4.3.0 Delivered to %zu of %zu mailboxes; try again later",
				   m->n_delivered, m->n_targets);
		else
			smtp_reply(s, "250 2.0.0 Ok: %s as %s; %zu of %zu local mailboxes failed "
				   "and are reported to the sender", m->queued ? "queued" : "delivered",
				   tx->id, m->n_targets - m->n_delivered, m->n_targets);
	} else {
		s->messages++;
		metrics_count(METRICS_MSG_RECEIVED);
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp %s id=%s from=<%s> nrcpt=%zu "
			 "mailboxes=%zu remote=%zu size=%llu", m->queued ? "queued" : "delivered",
			 tx->id, tx->from.addr, tx->n_rcpts, m->n_targets, tx->n_remote,
			 (unsigned long long)m->size);
		smtp_reply(s, "250 2.0.0 Ok: %s as %s", m->queued ? "queued" : "delivered", tx->id);
	}
	smtp_tx_reset(s);
	smtp_unbusy(s);
}

/* ---- checked mail: the verdict on the DNS pool, then the commit ---------------- */

static void smtp_check_work(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_msg *m = s->tx.msg;

	smtp_store_write(s, m); /* the last bytes, into the verifier */
	if (m->store_result == MD_OK)
		m->action = (int)smtp_inbound_check(s, m);
}

static void smtp_check_done(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_msg *m = s->tx.msg;

	buf_reset(&m->spool);
	if (conn_is_closing(s->conn)) {
		/* nobody to acknowledge it to: not stored, the client retries */
		smtp_tx_reset(s);
		smtp_unbusy(s);
		return;
	}
	if (m->store_result != MD_OK || m->action == SMTP_INBOUND_REJECT) {
		smtp_commit_done(s); /* the refusal */
		return;
	}
	if (smtp_submit(s, smtp_commit_work, smtp_commit_done) < 0) {
		smtp_end_reply(s, "451 4.3.0 Temporary server error, try again later");
		smtp_tx_reset(s);
	}
}

void smtp_finish(struct smtp_session *s)
{
	struct smtp_msg *m = s->tx.msg;

	/* RFC 5321 §4.1.1.4: the transaction ends with this reply */
	smtp_enter_state(s, SMTP_STATE_READY);
	if (m->verdict == SMTP_VERDICT_OK && !m->hdr_done) {
		/* a message that is all header */
		size_t hl = m->spool.len;
		if (m->inbound != NULL)
			smtp_strip_authres(s, m, &hl);
		smtp_inspect_header(s, m, m->spool.data, hl);
		m->hdr_done = true;
	}
	if (m->verdict != SMTP_VERDICT_OK) {
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp id=%s refused verdict=%d size=%llu", s->tx.id,
			 (int)m->verdict, (unsigned long long)m->size);
		smtp_verdict_reply(s, m);
		smtp_tx_reset(s);
		return;
	}
	/* SPF, DKIM keys and DMARC wait on DNS: not on the IO pool */
	if ((m->inbound != NULL ? smtp_submit_kind(s, WORKER_DNS, smtp_check_work, smtp_check_done)
				: smtp_submit(s, smtp_commit_work, smtp_commit_done)) < 0) {
		smtp_end_reply(s, "451 4.3.0 Temporary server error, try again later");
		smtp_tx_reset(s);
	}
}

/* ---- RCPT quota check ---------------------------------------------------- */

static void smtp_quota_work(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = &s->tx;
	uint64_t size = tx->mail.has_size ? tx->mail.size : 0;

	tx->pending_over_quota = false;
	for (size_t i = 0; i < tx->n_pending && !tx->pending_over_quota; i++)
		tx->pending_over_quota = smtp_over_quota(s->ctx->store, &tx->pending_owners[i], size);
}

static void smtp_quota_done(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = &s->tx;

	if (tx->pending_over_quota) {
		/* RFC 1870 §6.2 / RFC 3463 X.2.2 */
		tx->n_pending = 0;
		smtp_reply(s, s->ctx->cfg->quota_error_permanent ?
			   "552 5.2.2 <%s>: Mailbox full" : "452 4.2.2 <%s>: Mailbox full",
			   tx->pending_rcpt.path.addr);
	} else {
		smtp_rcpt_accept(s);
	}
	smtp_unbusy(s);
}

void smtp_check_quota(struct smtp_session *s)
{
	if (smtp_submit(s, smtp_quota_work, smtp_quota_done) < 0) {
		s->tx.n_pending = 0;
		smtp_reply(s, "451 4.3.0 Temporary server error, try again later");
	}
}
