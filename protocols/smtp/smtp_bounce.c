/* Delivery status notifications (RFC 3464) for recipients that failed for
 * good, and their delivery to the sender; on a worker.
 *
 * The report is a multipart/report (RFC 6522) with report-type
 * delivery-status: a human-readable part naming each failed recipient and
 * the far side's reply, a message/delivery-status part (Reporting-MTA,
 * Arrival-Date, per recipient Final-Recipient, Original-Recipient when
 * ORCPT was given, Action: failed, Status, Remote-MTA, Diagnostic-Code,
 * and X-Postern-TLS: how the session that gave the reply was protected,
 * an RFC 3464 §2.4 extension field), and the original message: whole as
 * message/rfc822 when the sender asked with RET=FULL and it is at most
 * BOUNCE_FULL_MAX, else its header block as text/rfc822-headers (also
 * without RET: RFC 3461 §4.3 leaves that to us, and a bounce then never
 * carries a big attachment back).
 *
 * A success notice (Action: relayed, RFC 3461 §5.2.2) goes to recipients
 * that asked for NOTIFY=SUCCESS when we handed their message to a server
 * without the DSN extension; a server with DSN got the NOTIFY parameter and
 * reports delivery itself.  Local mailboxes get Action: delivered
 * (smtp_deliver.c).  It is best effort: a notice that cannot be sent is
 * logged, and the message is not held back for it.
 *
 * A delay notice (Action: delayed, RFC 3464 §2.3.3) goes out once per
 * message, queue_delay_warning after it was queued, for the recipients
 * still pending that asked for one with NOTIFY=DELAY.
 *
 * Who gets it: nobody for the null sender (RFC 5321 §4.5.5) or for a
 * recipient whose NOTIFY excludes FAILURE (RFC 3461 §4.1).  A sender in a
 * local domain gets it in the INBOX of the mailbox(es) the address
 * resolves to, through the store; anyone else gets it through the queue,
 * from the null sender.
 */
#include "smtp_queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BOUNCE_BOUNDARY_BYTES 12

/* Does this recipient want a report of this kind? */
bool bounce_wanted(const struct queue_rcpt *r, enum bounce_kind kind)
{
	if (kind == BOUNCE_DELAYED) /* only when asked for (RFC 3461 §4.1) */
		return r->state == QUEUE_RCPT_PENDING && (r->notify & SMTP_NOTIFY_DELAY) != 0;
	if (kind == BOUNCE_RELAYED || kind == BOUNCE_DELIVERED)
		return r->state == QUEUE_RCPT_SENT && r->success_due &&
		       (r->notify & SMTP_NOTIFY_SUCCESS) != 0;
	if (r->state != QUEUE_RCPT_FAILED)
		return false;
	if (r->notify == 0)
		return true; /* RFC 3461 §4.1: default is FAILURE (and DELAY) */
	return (r->notify & SMTP_NOTIFY_FAILURE) != 0;
}

/* The enhanced status code (RFC 3463) in a reply, or one from its class. */
static void bounce_status(const char *reply, char *out, size_t outlen)
{
	const char *p = reply;
	unsigned a, b, c;
	int n = 0;

	if (strlen(p) > 4)
		p += 4;
	if (sscanf(p, "%1u.%3u.%3u%n", &a, &b, &c, &n) == 3 && (a == 2 || a == 4 || a == 5) &&
	    (p[n] == ' ' || p[n] == '\0')) {
		snprintf(out, outlen, "%u.%u.%u", a, b, c);
		return;
	}
	snprintf(out, outlen, "%c.0.0", reply[0] == '4' ? '4' : '5');
}

/* RFC 3461 §4: decode xtext ("+2B" is '+'); bad escapes are kept. */
static void bounce_xtext_decode(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; in[i] != '\0' && o + 1 < outlen; i++) {
		unsigned v;
		if (in[i] == '+' && sscanf(in + i + 1, "%2x", &v) == 1 && v >= 0x20 && v < 0x7f) {
			out[o++] = (char)v;
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
}

static int bounce_human(const struct config *cfg, const struct queue_env *env,
			enum bounce_kind kind, struct buf *b)
{
	char until[64];
	int rc = 0;

	rc |= buf_appendf(b, "Content-Type: text/plain; charset=us-ascii\r\n"
			  "Content-Description: Notification\r\n\r\n"
			  "This is the mail system at host %s.\r\n\r\n", cfg->hostname);
	if (kind == BOUNCE_FAILED) {
		rc |= buf_appendf(b, "I'm sorry to have to inform you that your message could not\r\n"
				  "be delivered to one or more recipients.\r\n\r\n");
	} else if (kind == BOUNCE_RELAYED) {
		rc |= buf_appendf(b, "Your message was handed to the recipients' mail servers\r\n"
				  "below, which do not send delivery notifications themselves.\r\n\r\n");
	} else if (kind == BOUNCE_DELIVERED) {
		rc |= buf_appendf(b, "Your message was delivered to the mailboxes below.\r\n\r\n");
	} else {
		smtp_rfc5322_date((time_t)(env->created + cfg->queue_lifetime), until, sizeof(until));
		rc |= buf_appendf(b, "Your message could not be delivered yet to the recipients\r\n"
				  "below.  Nothing needs to be done: it is still being tried until\r\n"
				  "%s.\r\n\r\n", until);
	}
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		if (!bounce_wanted(r, kind))
			continue;
		rc |= buf_appendf(b, "<%s>: %s%s%s\r\n", r->addr,
				  r->remote[0] != '\0' ? "host " : "", r->remote,
				  r->remote[0] != '\0' ? " said: " : "");
		rc |= buf_appendf(b, "    %s\r\n", r->reply[0] != '\0' ? r->reply : "failed");
		if (r->tls[0] != '\0')
			rc |= buf_appendf(b, "    (TLS: %s)\r\n", r->tls);
		rc |= buf_appendf(b, "\r\n");
	}
	return rc;
}

static int bounce_status_part(const struct config *cfg, const struct queue_env *env,
			      enum bounce_kind kind, const char *date, struct buf *b)
{
	char arrival[64], until[64];
	int rc = 0;

	smtp_rfc5322_date((time_t)env->created, arrival, sizeof(arrival));
	rc |= buf_appendf(b, "Content-Type: message/delivery-status\r\n"
			  "Content-Description: Delivery report\r\n\r\n"
			  "Reporting-MTA: dns; %s\r\n", cfg->hostname);
	if (env->envid[0] != '\0') {
		char envid[SMTP_ENVID_MAX + 1];
		bounce_xtext_decode(env->envid, envid, sizeof(envid));
		rc |= buf_appendf(b, "Original-Envelope-Id: %s\r\n", envid);
	}
	rc |= buf_appendf(b, "X-Postern-Queue-ID: %s\r\nArrival-Date: %s\r\n", env->id, arrival);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		char status[16], orcpt[SMTP_ORCPT_MAX + 1];
		if (!bounce_wanted(r, kind))
			continue;
		bounce_status(r->reply, status, sizeof(status));
		if (kind == BOUNCE_DELAYED && status[0] != '4')
			str_copy(status, "4.0.0", sizeof(status));
		if ((kind == BOUNCE_RELAYED || kind == BOUNCE_DELIVERED) && status[0] != '2')
			str_copy(status, "2.0.0", sizeof(status));
		rc |= buf_appendf(b, "\r\nFinal-Recipient: rfc822; %s\r\n", r->addr);
		if (r->orcpt[0] != '\0') {
			const char *semi = strchr(r->orcpt, ';');
			bounce_xtext_decode(semi != NULL ? semi + 1 : r->orcpt, orcpt, sizeof(orcpt));
			rc |= buf_appendf(b, "Original-Recipient: rfc822; %s\r\n", orcpt);
		}
		rc |= buf_appendf(b, "Action: %s\r\nStatus: %s\r\n",
				  kind == BOUNCE_FAILED ? "failed" : kind == BOUNCE_RELAYED ? "relayed" :
				  kind == BOUNCE_DELIVERED ? "delivered" : "delayed", status);
		if (r->remote[0] != '\0')
			rc |= buf_appendf(b, "Remote-MTA: dns; %s\r\n", r->remote);
		if (r->reply[0] != '\0')
			rc |= buf_appendf(b, "Diagnostic-Code: smtp; %s\r\n", r->reply);
		if (r->tls[0] != '\0')
			rc |= buf_appendf(b, "X-Postern-TLS: %s\r\n", r->tls);
		rc |= buf_appendf(b, "Last-Attempt-Date: %s\r\n", date);
		if (kind == BOUNCE_DELAYED) {
			smtp_rfc5322_date((time_t)(env->created + cfg->queue_lifetime), until,
					  sizeof(until));
			rc |= buf_appendf(b, "Will-Retry-Until: %s\r\n", until);
		}
	}
	return rc;
}

static const char *bounce_subject(enum bounce_kind kind)
{
	switch (kind) {
	case BOUNCE_FAILED:
		return "Undelivered Mail Returned to Sender";
	case BOUNCE_RELAYED:
	case BOUNCE_DELIVERED:
		return "Successful Mail Delivery Report";
	default:
		return "Delayed Mail (still being retried)";
	}
}

/* The last part: the whole message (RET=FULL, small enough) or its
 * header block. */
static int bounce_original(const struct queue_env *env, const struct bounce_orig *orig,
			   const char *boundary, struct buf *out)
{
	bool full = env->ret == SMTP_RET_FULL && orig->msg != NULL &&
		    orig->msg_len <= BOUNCE_FULL_MAX;
	const char *p = full ? orig->msg : orig->headers;
	size_t n = full ? orig->msg_len : orig->hdr_len;
	int rc = 0;

	rc |= buf_appendf(out, "\r\n--%s\r\nContent-Type: %s\r\n"
			  "Content-Description: %s\r\n\r\n", boundary,
			  full ? "message/rfc822" : "text/rfc822-headers",
			  full ? "Undelivered Message" : "Undelivered Message Headers");
	rc |= buf_append(out, p, n);
	if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
		rc |= buf_append(out, "\r\n", 2);
	return rc;
}

int bounce_build(const struct config *cfg, const struct queue_env *env, enum bounce_kind kind,
		 const struct bounce_orig *orig, struct buf *out)
{
	unsigned char rnd[BOUNCE_BOUNDARY_BYTES];
	char boundary[2 * BOUNCE_BOUNDARY_BYTES + 32], date[64], id[SMTP_ID_LEN + 1];
	int rc = 0;

	if (random_bytes(rnd, sizeof(rnd)) < 0)
		return -1;
	int o = snprintf(boundary, sizeof(boundary), "%s/", env->id);
	for (size_t i = 0; i < sizeof(rnd) && o + 2 < (int)sizeof(boundary); i++)
		o += snprintf(boundary + o, sizeof(boundary) - (size_t)o, "%02x", rnd[i]);
	smtp_rfc5322_date(time(NULL), date, sizeof(date));
	smtp_make_id(id);
	rc |= buf_appendf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
			  "To: <%s>\r\nSubject: %s\r\n"
			  "Date: %s\r\nMessage-ID: <%s.bounce@%s>\r\n"
			  "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
			  "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			  "\tboundary=\"%s\"\r\n\r\n"
			  "This is a MIME-encapsulated message.\r\n\r\n--%s\r\n",
			  cfg->hostname, env->sender, bounce_subject(kind),
			  date, id, cfg->hostname, boundary, boundary);
	rc |= bounce_human(cfg, env, kind, out);
	rc |= buf_appendf(out, "--%s\r\n", boundary);
	rc |= bounce_status_part(cfg, env, kind, date, out);
	rc |= bounce_original(env, orig, boundary, out);
	rc |= buf_appendf(out, "\r\n--%s--\r\n", boundary);
	return rc < 0 ? -1 : 0;
}

/* Into the INBOX of every local mailbox the address resolves to. */
static int generated_local(struct smtp_ctx *ctx, const struct auth_target *t, size_t n,
			   const struct smtp_generated *g, char *err, size_t errlen)
{
	struct md_target targets[AUTH_RESOLVE_MAX];
	struct md_delivery *d = NULL;
	size_t nt = 0, ok = 0;
	enum md_result r;

	memset(targets, 0, sizeof(targets));
	for (size_t i = 0; i < n && nt < AUTH_RESOLVE_MAX; i++) {
		if (!t[i].local)
			continue;
		targets[nt].address = t[i].address;
		targets[nt].create_user = true;
		nt++;
	}
	if (nt == 0) {
		snprintf(err, errlen, "no local mailbox");
		return -1;
	}
	r = md_delivery_open(ctx->store, 0, 0, &d);
	if (r == MD_OK) {
		/* RFC 5321 §4.4: we make the final delivery */
		char rp[SMTP_PATH_MAX + 20];
		int n_rp = snprintf(rp, sizeof(rp), "Return-Path: <%s>\r\n", g->sender);
		r = md_delivery_write(d, rp, (size_t)n_rp);
	}
	if (r == MD_OK)
		r = md_delivery_write(d, g->text, g->text_len);
	if (r == MD_OK && g->fd >= 0)
		r = lseek(g->fd, g->fd_offset, SEEK_SET) < 0 ? MD_TEMPFAIL :
		    md_delivery_write_fd(d, g->fd);
	if (r == MD_OK)
		r = md_delivery_commit(d, targets, nt);
	for (size_t i = 0; r == MD_OK && i < nt; i++)
		ok += targets[i].result == MD_OK;
	if (r != MD_OK || ok == 0)
		snprintf(err, errlen, "store: %s", d != NULL ? md_delivery_error(d) : "open failed");
	if (d != NULL)
		md_delivery_free(d);
	return r == MD_OK && ok > 0 ? 0 : -1;
}

/* Through the queue. */
static int generated_queue(struct smtp_ctx *ctx, const char *to, const struct smtp_generated *g,
			   char *err, size_t errlen)
{
	struct queue_env *env = queue_env_new();
	struct queue_writer *w = NULL;
	int rc = -1;

	if (env == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	queue_make_id(env->id);
	str_copy(env->sender, g->sender, sizeof(env->sender));
	env->body_8bit = g->body_8bit;
	env->created = env->next = (int64_t)time(NULL);
	if (queue_env_add(env, to, 0, NULL) == 0 &&
	    queue_writer_open(ctx->cfg->data_dir, env->id, &w) == 0 &&
	    queue_writer_write(w, g->text, g->text_len) == 0 &&
	    (g->fd < 0 || (lseek(g->fd, g->fd_offset, SEEK_SET) >= 0 &&
			   queue_writer_copy_fd(w, g->fd) == 0)) &&
	    queue_writer_commit(w, env) == 0)
		rc = 0;
	if (rc < 0)
		snprintf(err, errlen, "queue: %s", w != NULL ? queue_writer_error(w) : "open failed");
	else
		log_info("queue id=%s %s to <%s> queued", env->id, g->what, to);
	queue_writer_free(w);
	queue_env_free(env);
	return rc;
}

/* The mailboxes of a local address: those another shard holds get their
 * copy through the queue (smtp_shard.c), the others here. */
static int generated_sharded(struct smtp_ctx *ctx, struct auth_target *t, size_t n,
			     const struct smtp_generated *g, bool *queued_r, char *err,
			     size_t errlen)
{
	size_t here = 0;

	for (size_t i = 0; i < n; i++) {
		if (!t[i].local)
			continue;
		if (!smtp_shard_elsewhere(ctx, t[i].address)) {
			here++;
			continue;
		}
		if (generated_queue(ctx, t[i].address, g, err, errlen) < 0)
			return -1;
		*queued_r = true;
		t[i].local = false; /* not stored here */
	}
	return here > 0 ? generated_local(ctx, t, n, g, err, errlen) : 0;
}

int smtp_send_generated(struct smtp_ctx *ctx, const struct smtp_generated *g, const char *to,
			bool *queued_r, char *err, size_t errlen)
{
	struct auth_target *t;
	size_t n = 0;
	const char *at = strrchr(to, '@');
	int rc = -1;

	*queued_r = false;
	if (at != NULL && config_is_local_domain(ctx->cfg, at + 1)) {
		t = calloc(AUTH_RESOLVE_MAX, sizeof(*t));
		if (t == NULL) {
			snprintf(err, errlen, "out of memory");
		} else if (auth_resolve_recipient(ctx->auth, to, t, AUTH_RESOLVE_MAX, &n) ==
			   AUTH_RCPT_LOCAL) {
			rc = generated_sharded(ctx, t, n, g, queued_r, err, errlen);
		} else {
			/* a local domain but no such mailbox: nobody to tell */
			snprintf(err, errlen, "<%s> has no mailbox here", to);
			rc = 1;
		}
		free(t);
	} else {
		rc = generated_queue(ctx, to, g, err, errlen);
		*queued_r = rc == 0;
	}
	return rc;
}

int bounce_send(struct smtp_ctx *ctx, const struct queue_env *env, enum bounce_kind kind,
		const struct bounce_orig *orig, bool *queued_r, char *err, size_t errlen)
{
	struct buf dsn;
	int rc;

	*queued_r = false;
	buf_init(&dsn, 0);
	if (bounce_build(ctx->cfg, env, kind, orig, &dsn) < 0) {
		buf_free(&dsn);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* from the null sender (RFC 5321 §4.5.5) */
	rc = smtp_send_generated(ctx, &(struct smtp_generated){ .sender = "", .text = dsn.data,
				 .text_len = dsn.len, .fd = -1, .what = "bounce" },
				 env->sender, queued_r, err, errlen);
	buf_free(&dsn);
	return rc;
}
