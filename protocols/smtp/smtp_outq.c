/* The outbound scheduler, on the event loop.
 *
 * Every QUEUE_SCAN_S (and at once when this process queued something) a
 * worker lists data_dir/queue and reads the envelopes that are not being
 * delivered; those whose next attempt is due (all of them after `postern
 * queue flush`) start an attempt, at most OUTQ_ACTIVE_MAX at a time.  On
 * start every queued message is therefore due at the first scan.
 *
 * One attempt of one message:
 *   load (worker)    read ID.msg, the DKIM hook, dot-stuff; the header
 *                    block is kept for bounces; an 8-bit message also gets
 *                    a 7-bit copy for servers without 8BITMIME
 *   per domain       the pending recipients of one domain (all of them
 *                    with relay_host; with shard_name, those of local
 *                    domains by the shard that holds them, smtp_shard.c,
 *                    routed to its LMTP without DNS), at most
 *                    outbound_destination_concurrency connections per
 *                    destination, idle ones
 *                    included (others wait in line for a slot): an idle
 *                    connection to the destination is reused when there is
 *                    one; else route (worker), then a connection kept to
 *                    the chosen host (same address and port) is reused, or
 *                    the SMTP client tries the hosts in order until one
 *                    held a session; each recipient ends sent, failed (5xx,
 *                    null MX, no such domain) or still pending (4xx, no
 *                    host).  A connection that ends with a 250 goes to the
 *                    next message waiting for that destination, or waits
 *                    idle (CLIENT_IDLE_S); a reused one that fails before
 *                    the message was sent is replaced by a new connection
 *                    at once.
 *   finish (worker)  attempts+1; pending recipients past queue_lifetime
 *                    fail (4.4.7); failed ones are reported to the sender
 *                    (smtp_bounce.c) and marked bounced once the report is
 *                    durable; after queue_delay_warning, one delay notice
 *                    for pending recipients that asked (NOTIFY=DELAY);
 *                    then the envelope is rewritten with the next attempt
 *                    time from queue_retry, or removed when no recipient
 *                    is left.
 * A crash anywhere repeats the attempt after the restart: a recipient that
 * had already said 250 may get the message twice (RFC 5321 §6.1).
 */
#include "smtp_queue.h"
#include "smtp_outq_private.h"
#include "metrics.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define OUTQ_ACTIVE_MAX 32          /* messages in delivery at once */
#define OUTQ_SCAN_MAX 10000         /* envelopes looked at per scan */
/* A delivery holds its message in memory, up to four times (as read,
 * dot-stuffed, a 7-bit copy, and an unsigned one for other shards): new
 * deliveries start only while the messages in flight stay under this, but
 * one always may. */
#define OUTQ_MEMORY_MAX (512ULL * 1024 * 1024)
#define OUTQ_MEMORY_FACTOR 4
/* Look-ups on workers at once: a DNS server that does not answer holds a
 * worker for up to 3 queries x ROUTE_DNS_TRIES x ROUTE_DNS_TIMEOUT_S, and
 * the workers also commit local deliveries, so the queue takes few. */
#define OUTQ_ROUTES_MAX 4

struct outq_scan {
	struct smtp_outq *q;
	char (*active)[QUEUE_ID_MAX + 1];
	size_t n_active;
	bool flush;
	struct queue_env **due;
	size_t n_due, max_due;
};

static void outq_next_domain(struct outq_msg *m);
static void outq_scan_start(struct smtp_outq *q);

static const char *outq_data_dir(const struct outq_msg *m)
{
	return m->q->ctx->cfg->data_dir;
}

static void outq_msg_free(struct outq_msg *m)
{
	struct smtp_outq *q = m->q;

	for (struct outq_msg **pp = &q->active; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			q->n_active--;
			break;
		}
	for (struct outq_msg **pp = &q->waiting; *pp != NULL; pp = &(*pp)->next_wait)
		if (*pp == m) {
			*pp = m->next_wait;
			break;
		}
	for (struct outq_msg **pp = &q->route_wait; *pp != NULL; pp = &(*pp)->next_wait)
		if (*pp == m) {
			*pp = m->next_wait;
			break;
		}
	q->memory -= m->memory;
	if (m->reuse != NULL) {
		smtp_client_cancel(m->reuse->client);
		free(m->reuse);
	}
	queue_env_free(m->env);
	buf_free(&m->data);
	buf_free(&m->data7);
	buf_free(&m->plain);
	buf_free(&m->headers);
	buf_free(&m->full);
	OPENSSL_cleanse(m->password, sizeof(m->password));
	free(m->tried);
	free(m->crcpts);
	free(m->cidx);
	free(m);
}

static void outq_load_done(void *arg)
{
	struct outq_msg *m = arg;

	if (m->load_failed) {
		log_error("queue id=%s message file unreadable (%s): moved to queue/corrupt",
			  m->id, m->load_error);
		queue_move_corrupt(outq_data_dir(m), m->id);
		outq_msg_free(m);
		return;
	}
	if (m->load_tempfail) {
		log_warn("queue id=%s cannot load: %s; retry at the next scan", m->id,
			 m->load_error);
		outq_msg_free(m); /* env untouched: retried after the next scan */
		return;
	}
	outq_next_domain(m);
}

/* ---- finish (worker) ------------------------------------------------------- */

/* Pending recipients past queue_lifetime fail (RFC 3463 4.4.7). */
static void outq_expire(struct queue_env *env, const struct config *cfg, int64_t now)
{
	for (size_t i = 0; i < env->n_rcpts; i++) {
		struct queue_rcpt *r = &env->rcpts[i];
		char last[SMTP_REPLY_MAX];
		if (r->state != QUEUE_RCPT_PENDING || now - env->created < (int64_t)cfg->queue_lifetime)
			continue;
		str_copy(last, r->reply, sizeof(last));
		snprintf(r->reply, sizeof(r->reply), "550 4.4.7 Delivery time expired; "
			 "last reply: %.300s", last[0] != '\0' ? last : "none");
		r->state = QUEUE_RCPT_FAILED;
		log_info("queue id=%s to=<%s> status=expired", env->id, r->addr);
	}
}

/* Send the report of this kind when someone wants it; 0 sent or nobody
 * wants one, -1 to be tried again at the next attempt. */
static int outq_report(struct outq_msg *m, enum bounce_kind kind)
{
	struct queue_env *env = m->env;
	const char *what = kind == BOUNCE_FAILED ? "bounce" :
			   kind == BOUNCE_RELAYED ? "success notice" : "delay notice";
	struct bounce_orig orig = { m->headers.data, m->headers.len,
				    m->full.len > 0 ? m->full.data : NULL, m->full.len };
	bool any = false, queued = false;
	char err[256];
	int rc;

	for (size_t i = 0; i < env->n_rcpts; i++)
		any = any || bounce_wanted(&env->rcpts[i], kind);
	if (!any)
		return 0;
	if (env->sender[0] == '\0') {
		log_info("queue id=%s no %s to the null sender", env->id, what);
		return 0;
	}
	rc = bounce_send(m->q->ctx, env, kind, &orig, &queued, err, sizeof(err));
	m->bounce_queued = m->bounce_queued || queued;
	if (rc < 0) {
		log_error("queue id=%s %s to <%s> failed, will retry: %s", env->id, what,
			  env->sender, err);
		return -1;
	}
	if (rc > 0)
		log_error("queue id=%s %s to <%s> not possible: %s", env->id, what, env->sender, err);
	else
		log_info("queue id=%s %s delivered to <%s>", env->id, what, env->sender);
	return 0;
}

static void outq_finish_work(void *arg)
{
	struct outq_msg *m = arg;
	struct queue_env *env = m->env;
	const struct config *cfg = m->q->ctx->cfg;
	int64_t now = (int64_t)time(NULL);
	bool pending = false, failed = false;
	size_t step;

	env->attempts++;
	/* best effort (smtp_bounce.c): a failure is logged, nothing retried */
	(void)outq_report(m, BOUNCE_RELAYED);
	outq_expire(env, cfg, now);
	for (size_t i = 0; i < env->n_rcpts; i++)
		failed = failed || env->rcpts[i].state == QUEUE_RCPT_FAILED;
	if (failed && outq_report(m, BOUNCE_FAILED) == 0) {
		/* the report is durable (or nobody wants one): done with them */
		for (size_t i = 0; i < env->n_rcpts; i++)
			if (env->rcpts[i].state == QUEUE_RCPT_FAILED)
				env->rcpts[i].state = QUEUE_RCPT_BOUNCED;
		failed = false;
	}
	for (size_t i = 0; i < env->n_rcpts; i++)
		pending = pending || env->rcpts[i].state == QUEUE_RCPT_PENDING;
	if (pending && !env->warned && cfg->queue_delay_warning > 0 &&
	    now - env->created >= (int64_t)cfg->queue_delay_warning &&
	    outq_report(m, BOUNCE_DELAYED) == 0)
		env->warned = true;
	step = env->attempts - 1 < cfg->n_queue_retry ? env->attempts - 1 : cfg->n_queue_retry - 1;
	env->next = now + (int64_t)cfg->queue_retry[step];
	if (!pending && !failed) {
		if (queue_remove(cfg->data_dir, env->id) < 0)
			log_error("queue id=%s cannot remove: %s", env->id, strerror(errno));
		else
			log_info("queue id=%s removed (done)", env->id);
	} else if (queue_env_update(cfg->data_dir, env) < 0) {
		log_error("queue id=%s cannot update the envelope: %s", env->id, strerror(errno));
	}
}

static void outq_finish_done(void *arg)
{
	struct outq_msg *m = arg;
	struct smtp_outq *q = m->q;
	bool kick = m->bounce_queued;

	outq_msg_free(m);
	if (kick)
		smtp_outq_kick(q);
}

static void outq_finish(struct outq_msg *m)
{
	if (worker_submit(server_workers(m->q->ctx->srv), outq_finish_work, outq_finish_done, m) < 0) {
		log_error("queue id=%s cannot submit the update; retried later", m->id);
		outq_msg_free(m);
	}
}

/* ---- per domain: route, then the client ----------------------------------- */

static const char *outq_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

static void outq_set(struct queue_rcpt *r, enum queue_rcpt_state st, const char *reply,
		     const char *remote)
{
	r->state = st;
	str_copy(r->reply, reply, sizeof(r->reply));
	str_copy(r->remote, remote != NULL ? remote : "", sizeof(r->remote));
}

/* Apply one reply code to recipient i of the group and log it. */
static void outq_apply(struct outq_msg *m, size_t k, int code, const char *reply,
		       const char *remote)
{
	struct queue_rcpt *r = &m->env->rcpts[m->cidx[k]];
	const char *status = code >= 200 && code < 300 ? "sent" :
			     code >= 500 && code < 600 ? "bounced" : "deferred";

	if (code >= 200 && code < 300) {
		outq_set(r, QUEUE_RCPT_SENT, reply, remote);
		/* RFC 3461 §5.2.2: NOTIFY went along to a server with DSN */
		r->success_due = !m->job.dsn && (r->notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
	else if (code >= 500 && code < 600)
		outq_set(r, QUEUE_RCPT_FAILED, reply, remote);
	else
		outq_set(r, QUEUE_RCPT_PENDING, reply, remote);
	metrics_count(r->state == QUEUE_RCPT_SENT ? METRICS_DELIVERED :
		      r->state == QUEUE_RCPT_FAILED ? METRICS_BOUNCED : METRICS_DEFERRED);
	if (r->state == QUEUE_RCPT_SENT)
		metrics_delivery_latency((double)((int64_t)time(NULL) - m->env->created));
	/* the session's protection, recorded for `postern queue list` and
	 * the DSN (it cannot go into the message's own Received: trail,
	 * which was written at submission) */
	str_copy(r->tls, !m->job.connected ? "" : m->job.tls[0] != '\0' ? m->job.tls : "none",
		 sizeof(r->tls));
	log_info("queue id=%s to=<%s> relay=%s status=%s tls=\"%s\" reply=\"%s\"", m->id,
		 r->addr, remote != NULL && remote[0] != '\0' ? remote : "none", status,
		 r->tls[0] != '\0' ? r->tls : "-", reply);
}

static void outq_client_start(struct outq_msg *m);
static void outq_route_submit(struct outq_msg *m);
static void outq_route_apply(struct outq_msg *m);

/* ---- destination slots and kept connections -------------------------------- */

static void outq_group_begin(struct outq_msg *m);

/* Connections to dest: sessions of messages holding a slot, and idle ones
 * (the far side sees both). */
static unsigned outq_dest_count(const struct smtp_outq *q, const char *dest)
{
	unsigned n = 0;

	for (const struct outq_msg *o = q->active; o != NULL; o = o->next)
		n += o->holds_slot && strcasecmp(o->dest, dest) == 0;
	for (const struct outq_conn *k = q->idle; k != NULL; k = k->next)
		n += strcasecmp(k->dest, dest) == 0;
	return n;
}

/* An idle connection for dest (host NULL), or to host's address and port
 * speaking the same protocol (LMTP or SMTP); taken out of the idle list. */
static struct outq_conn *outq_idle_take(struct smtp_outq *q, const char *dest,
					const struct route_host *host, bool lmtp)
{
	for (struct outq_conn **pp = &q->idle; *pp != NULL; pp = &(*pp)->next) {
		struct outq_conn *k = *pp;
		bool match = host == NULL ? strcasecmp(k->dest, dest) == 0 :
			     strcmp(k->host.addr, host->addr) == 0 && k->host.port == host->port &&
			     k->lmtp == lmtp;
		if (match && !k->closing) {
			*pp = k->next;
			return k;
		}
	}
	return NULL;
}

/* The oldest message waiting for a slot to dest, if the limit allows. */
static void outq_dest_wake(struct smtp_outq *q, const char *dest)
{
	if (outq_dest_count(q, dest) >= q->ctx->cfg->outbound_dest_concurrency)
		return;
	for (struct outq_msg **pp = &q->waiting; *pp != NULL; pp = &(*pp)->next_wait) {
		struct outq_msg *w = *pp;
		if (strcasecmp(w->dest, dest) != 0)
			continue;
		*pp = w->next_wait;
		w->holds_slot = true;
		outq_group_begin(w);
		return;
	}
}

/* A parked connection is closing (idle time up: QUIT sent), or gone. */
static void outq_conn_closed(void *arg, bool gone)
{
	struct outq_conn *k = arg;
	struct smtp_outq *q = k->q;
	char dest[SMTP_DOMAIN_MAX + 1];

	if (!gone) {
		k->closing = true;
		return;
	}
	for (struct outq_conn **pp = &q->idle; *pp != NULL; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	str_copy(dest, k->dest, sizeof(dest));
	free(k);
	outq_dest_wake(q, dest);
}

static void outq_park(struct smtp_outq *q, struct outq_conn *k)
{
	if (smtp_client_park(k->client, outq_conn_closed, k) < 0) {
		smtp_client_cancel(k->client);
		free(k);
		return;
	}
	k->next = q->idle;
	q->idle = k;
}

/* Take a slot for m->dest (with an idle connection to it when there is
 * one), or wait in line for one: false then. */
static bool outq_dest_enter(struct outq_msg *m)
{
	struct smtp_outq *q = m->q;
	struct outq_msg **pp = &q->waiting;

	m->reuse = outq_idle_take(q, m->dest, NULL, m->lmtp);
	if (m->reuse != NULL ||
	    outq_dest_count(q, m->dest) < q->ctx->cfg->outbound_dest_concurrency) {
		m->holds_slot = true;
		return true;
	}
	while (*pp != NULL)
		pp = &(*pp)->next_wait;
	*pp = m;
	m->next_wait = NULL;
	log_debug("queue id=%s waits for a slot to %s", m->id, m->dest);
	return false;
}

/* The group of m is done: its kept connection (if any) and its slot go
 * to the oldest waiter for the destination, or the connection idles. */
static void outq_group_done(struct outq_msg *m)
{
	struct smtp_outq *q = m->q;
	struct smtp_client *kept = m->job.kept;
	struct outq_conn *k = NULL;

	m->job.kept = NULL;
	if (kept != NULL && (k = calloc(1, sizeof(*k))) == NULL)
		smtp_client_cancel(kept);
	if (k != NULL) {
		k->q = q;
		k->client = kept;
		k->host = m->job.host;
		k->lmtp = m->lmtp;
		str_copy(k->dest, m->dest, sizeof(k->dest));
	}
	if (m->holds_slot) {
		m->holds_slot = false;
		for (struct outq_msg **pp = &q->waiting; *pp != NULL; pp = &(*pp)->next_wait) {
			struct outq_msg *w = *pp;
			if (strcasecmp(w->dest, m->dest) != 0)
				continue;
			*pp = w->next_wait;
			w->holds_slot = true;
			w->reuse = k;
			k = NULL;
			outq_group_begin(w);
			break;
		}
	}
	if (k != NULL)
		outq_park(q, k);
	outq_next_domain(m);
}

static void outq_client_done(struct client_job *job, void *arg)
{
	struct outq_msg *m = arg;

	m->in_client = false;
	if (job->reuse_failed) {
		log_info("queue id=%s host=%s[%s] kept connection failed (%s); "
			 "trying a new connection", m->id, job->host.name, job->host.addr,
			 job->reply);
		m->no_reuse = true;
		if (m->route.n_hosts > 0)
			outq_client_start(m);
		else
			outq_route_submit(m);
		return;
	}
	if (job->next_host && job->tls_failed && !job->relay && !m->no_starttls) {
		log_warn("queue id=%s host=%s[%s] TLS failed; trying once more without TLS",
			 m->id, job->host.name, job->host.addr);
		m->no_starttls = true;
		outq_client_start(m);
		return;
	}
	m->no_starttls = false;
	if (job->next_host) {
		log_info("queue id=%s host=%s[%s] failed: %s", m->id, job->host.name,
			 job->host.addr, job->reply);
		if (++m->host < m->route.n_hosts) {
			outq_client_start(m);
			return;
		}
		for (size_t k = 0; k < m->n_crcpts; k++)
			outq_apply(m, k, 451, job->reply, NULL);
	} else {
		for (size_t k = 0; k < m->n_crcpts; k++) {
			const struct client_rcpt *c = &m->crcpts[k];
			outq_apply(m, k, c->code, c->reply, job->host.name);
		}
	}
	outq_group_done(m);
}

/* A kept connection to the host about to be tried (any destination's:
 * the same server), unless this group must not reuse one. */
static void outq_take_host_conn(struct outq_msg *m)
{
	char dest[SMTP_DOMAIN_MAX + 1];

	if (m->reuse != NULL || m->no_reuse || m->no_starttls || m->route.n_hosts == 0)
		return;
	m->reuse = outq_idle_take(m->q, NULL, &m->route.hosts[m->host], m->lmtp);
	if (m->reuse != NULL && strcasecmp(m->reuse->dest, m->dest) != 0) {
		/* it counted for another destination, which has room now */
		str_copy(dest, m->reuse->dest, sizeof(dest));
		str_copy(m->reuse->dest, m->dest, sizeof(m->reuse->dest));
		outq_dest_wake(m->q, dest);
	}
}

static void outq_client_start(struct outq_msg *m)
{
	struct client_job *job = &m->job;
	struct outq_conn *k;

	memset(job, 0, sizeof(*job));
	for (size_t k = 0; k < m->n_crcpts; k++) {
		m->crcpts[k].code = 0;
		m->crcpts[k].reply[0] = '\0';
		m->crcpts[k].final = false;
	}
	outq_take_host_conn(m);
	job->cfg = m->q->ctx->cfg;
	job->env = m->env;
	job->host = m->reuse != NULL ? m->reuse->host : m->route.hosts[m->host];
	job->relay = m->q->ctx->cfg->relay_host[0] != '\0' && !m->lmtp;
	job->lmtp = m->lmtp;
	job->password = m->password;
	job->no_starttls = m->no_starttls;
	job->keep = !m->no_starttls;
	job->data = m->lmtp ? m->plain.data : m->data.data;
	job->data_len = m->lmtp ? m->plain.len : m->data.len;
	job->size = m->lmtp ? m->plain_size : m->size;
	job->eightbit = m->eightbit;
	/* our LMTP offers 8BITMIME; another one without it bounces 8-bit
	 * mail rather than get the signed 7-bit copy */
	job->data7 = m->data7.len > 0 && !m->lmtp ? m->data7.data : NULL;
	job->data7_len = m->data7.len;
	job->rcpts = m->crcpts;
	job->n_rcpts = m->n_crcpts;
	if (job->data_len == 0) {
		/* the load made no copy for this route (the configuration
		 * changed since): the next attempt loads again */
		if (m->reuse != NULL) {
			smtp_client_cancel(m->reuse->client);
			free(m->reuse);
			m->reuse = NULL;
		}
		for (size_t k = 0; k < m->n_crcpts; k++)
			outq_apply(m, k, 451, "451 4.3.0 Message not loaded for this route", NULL);
		outq_group_done(m);
		return;
	}
	if (m->reuse != NULL) {
		k = m->reuse;
		m->reuse = NULL;
		m->in_client = true;
		smtp_client_reuse(k->client, job, outq_client_done, m);
		free(k);
		return;
	}
	log_debug("queue id=%s connecting to %s[%s]:%u for %zu recipient(s)", m->id,
		  job->host.name, job->host.addr, job->host.port, m->n_crcpts);
	if (smtp_client_start(server_event_base(m->q->ctx->srv), m->q->tls, job,
			      outq_client_done, m) < 0) {
		for (size_t k = 0; k < m->n_crcpts; k++)
			outq_apply(m, k, 451, "451 4.3.0 Cannot start a connection", NULL);
		outq_group_done(m);
		return;
	}
	m->in_client = true;
}

/* A group that holds its slot: over a kept connection, or route first. */
static void outq_group_begin(struct outq_msg *m)
{
	if (m->reuse != NULL)
		outq_client_start(m);
	else
		outq_route_submit(m);
}

static void outq_route_work(void *arg)
{
	struct outq_msg *m = arg;

	route_lookup(m->q->ctx->cfg, m->domain, &m->route);
}

/* The route is known: the client, or the recipients' result. */
static void outq_route_apply(struct outq_msg *m)
{
	if (m->route.result != ROUTE_OK) {
		int code = m->route.result == ROUTE_PERMFAIL ? 550 : 451;
		for (size_t k = 0; k < m->n_crcpts; k++)
			outq_apply(m, k, code, m->route.reason, NULL);
		outq_group_done(m);
		return;
	}
	m->host = 0;
	outq_client_start(m);
}

static void outq_route_done(void *arg)
{
	struct outq_msg *m = arg;
	struct smtp_outq *q = m->q;

	q->routing--;
	if (q->route_wait != NULL) {
		struct outq_msg *w = q->route_wait;
		q->route_wait = w->next_wait;
		outq_route_submit(w);
	}
	outq_route_apply(m);
}

/* Whether recipient r goes with the group m is forming: the same shard
 * (by LMTP), or else the same domain (all of them with relay_host). */
static bool outq_same_group(struct outq_msg *m, const struct queue_rcpt *r, bool relay)
{
	struct auth_shard sh;

	if (smtp_shard_routed(m->q->ctx->cfg, r->addr) != m->lmtp)
		return false;
	if (m->lmtp) {
		smtp_shard_find(m->q->ctx, r->addr, &sh);
		return strcmp(sh.name, m->shard.name) == 0;
	}
	return relay || strcasecmp(outq_domain_of(r->addr), m->domain) == 0;
}

/* The next group of pending recipients of one domain, or finish. */
static void outq_next_domain(struct outq_msg *m)
{
	struct queue_env *env = m->env;
	bool relay = m->q->ctx->cfg->relay_host[0] != '\0';
	size_t first = env->n_rcpts;

	for (size_t i = 0; i < env->n_rcpts && first == env->n_rcpts; i++)
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING && !m->tried[i])
			first = i;
	if (first == env->n_rcpts) {
		outq_finish(m);
		return;
	}
	str_copy(m->domain, outq_domain_of(env->rcpts[first].addr), sizeof(m->domain));
	m->lmtp = smtp_shard_routed(m->q->ctx->cfg, env->rcpts[first].addr);
	if (m->lmtp)
		smtp_shard_find(m->q->ctx, env->rcpts[first].addr, &m->shard);
	m->n_crcpts = 0;
	for (size_t i = first; i < env->n_rcpts; i++) {
		struct queue_rcpt *r = &env->rcpts[i];
		if (r->state != QUEUE_RCPT_PENDING || m->tried[i] || !outq_same_group(m, r, relay))
			continue;
		m->tried[i] = true;
		m->cidx[m->n_crcpts] = i;
		m->crcpts[m->n_crcpts].rcpt = r;
		m->n_crcpts++;
	}
	snprintf(m->dest_shard, sizeof(m->dest_shard), "shard %s", m->shard.name);
	m->dest = m->lmtp ? m->dest_shard : relay ? m->q->ctx->cfg->relay_host : m->domain;
	m->route.n_hosts = 0;
	m->host = 0;
	m->no_reuse = false;
	memset(&m->job, 0, sizeof(m->job)); /* the last group's results */
	if (outq_dest_enter(m))
		outq_group_begin(m);
}

static void outq_route_submit(struct outq_msg *m)
{
	struct smtp_outq *q = m->q;

	if (m->lmtp) {
		/* another shard: its LMTP from the shards file, no DNS */
		smtp_shard_route(&m->shard, &m->route);
		outq_route_apply(m);
		return;
	}
	if (q->routing >= OUTQ_ROUTES_MAX) {
		struct outq_msg **pp = &q->route_wait;
		while (*pp != NULL)
			pp = &(*pp)->next_wait;
		*pp = m;
		m->next_wait = NULL;
		return;
	}
	if (worker_submit(server_workers(q->ctx->srv), outq_route_work, outq_route_done, m) < 0) {
		for (size_t k = 0; k < m->n_crcpts; k++)
			outq_apply(m, k, 451, "451 4.3.0 Cannot look up the route", NULL);
		outq_group_done(m);
		return;
	}
	q->routing++;
}

/* ---- scanning ----------------------------------------------------------- */

static void outq_start_msg(struct smtp_outq *q, struct queue_env *env)
{
	struct outq_msg *m = calloc(1, sizeof(*m));

	if (m != NULL) {
		m->tried = calloc(QUEUE_RCPTS_MAX, sizeof(*m->tried));
		m->crcpts = calloc(QUEUE_RCPTS_MAX, sizeof(*m->crcpts));
		m->cidx = calloc(QUEUE_RCPTS_MAX, sizeof(*m->cidx));
	}
	if (m == NULL || m->tried == NULL || m->crcpts == NULL || m->cidx == NULL) {
		if (m != NULL) {
			free(m->tried);
			free(m->crcpts);
			free(m->cidx);
		}
		free(m);
		queue_env_free(env);
		return;
	}
	m->q = q;
	m->env = env;
	m->memory = env->msg_size * OUTQ_MEMORY_FACTOR;
	q->memory += m->memory;
	str_copy(m->id, env->id, sizeof(m->id));
	buf_init(&m->data, 0);
	buf_init(&m->data7, 0);
	buf_init(&m->plain, 0);
	buf_init(&m->headers, SMTP_HEADER_MAX);
	buf_init(&m->full, BOUNCE_FULL_MAX);
	m->next = q->active;
	q->active = m;
	q->n_active++;
	if (worker_submit(server_workers(q->ctx->srv), outq_load_work, outq_load_done, m) < 0)
		outq_msg_free(m);
}

static bool outq_scan_is_active(const struct outq_scan *sc, const char *id)
{
	for (size_t i = 0; i < sc->n_active; i++)
		if (strcmp(sc->active[i], id) == 0)
			return true;
	return false;
}

static void outq_scan_work(void *arg)
{
	struct outq_scan *sc = arg;
	const char *dir = sc->q->ctx->cfg->data_dir;
	char (*ids)[QUEUE_ID_MAX + 1] = calloc(OUTQ_SCAN_MAX, sizeof(*ids));
	int64_t now = (int64_t)time(NULL);
	char path[PATH_MAX];
	struct stat st;
	int n;

	if (ids == NULL)
		return;
	sc->flush = queue_take_flush(dir);
	n = queue_scan(dir, ids, OUTQ_SCAN_MAX);
	metrics_queue_size(n > 0 ? (uint64_t)n : 0);
	for (int i = 0; i < n && sc->n_due < sc->max_due; i++) {
		struct queue_env *env;
		if (outq_scan_is_active(sc, ids[i]) || (env = queue_env_new()) == NULL)
			continue;
		if (queue_env_read(dir, ids[i], env) < 0) {
			if (errno != ENOENT) {
				log_error("queue id=%s envelope unreadable: moved to queue/corrupt",
					  ids[i]);
				queue_move_corrupt(dir, ids[i]);
			}
			queue_env_free(env);
			continue;
		}
		if (env->next > now && !sc->flush) {
			queue_env_free(env);
			continue;
		}
		if (queue_path(dir, ids[i], "msg", path, sizeof(path)) == 0 && stat(path, &st) == 0)
			env->msg_size = (uint64_t)st.st_size;
		sc->due[sc->n_due++] = env;
	}
	free(ids);
}

static void outq_scan_done(void *arg)
{
	struct outq_scan *sc = arg;
	struct smtp_outq *q = sc->q;

	q->scanning = false;
	if (sc->flush)
		log_info("queue flush requested: every queued message is tried now");
	for (size_t i = 0; i < sc->n_due; i++) {
		bool dup = false;
		for (struct outq_msg *m = q->active; m != NULL && !dup; m = m->next)
			dup = strcmp(m->id, sc->due[i]->id) == 0;
		uint64_t need = sc->due[i]->msg_size * OUTQ_MEMORY_FACTOR;
		if (dup || q->n_active >= OUTQ_ACTIVE_MAX ||
		    (q->n_active > 0 && q->memory + need > OUTQ_MEMORY_MAX))
			queue_env_free(sc->due[i]); /* looked at again next scan */
		else
			outq_start_msg(q, sc->due[i]);
	}
	free(sc->due);
	free(sc->active);
	free(sc);
	if (q->rescan) {
		q->rescan = false;
		outq_scan_start(q);
	}
}

static void outq_scan_start(struct smtp_outq *q)
{
	struct outq_scan *sc;
	size_t i = 0;

	if (q->scanning) {
		q->rescan = true;
		return;
	}
	if (q->n_active >= OUTQ_ACTIVE_MAX)
		return;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return;
	sc->q = q;
	sc->max_due = OUTQ_ACTIVE_MAX - q->n_active;
	sc->due = calloc(sc->max_due, sizeof(*sc->due));
	sc->active = calloc(q->n_active + 1, sizeof(*sc->active));
	if (sc->due == NULL || sc->active == NULL) {
		free(sc->due);
		free(sc->active);
		free(sc);
		return;
	}
	for (struct outq_msg *m = q->active; m != NULL; m = m->next)
		str_copy(sc->active[i++], m->id, sizeof(sc->active[0]));
	sc->n_active = i;
	q->scanning = true;
	if (worker_submit(server_workers(q->ctx->srv), outq_scan_work, outq_scan_done, sc) < 0) {
		q->scanning = false;
		free(sc->due);
		free(sc->active);
		free(sc);
	}
}

static void outq_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	outq_scan_start(arg);
}

void smtp_outq_kick(struct smtp_outq *q)
{
	if (q != NULL)
		outq_scan_start(q);
}

static SSL_CTX *outq_tls_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
	/* verified and logged, never enforced for MX hosts (smtp_client.c) */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		log_warn("queue: no system CA certificates; TLS peers will show as unverified");
	return ctx;
}

struct smtp_outq *smtp_outq_new(struct smtp_ctx *ctx)
{
	struct smtp_outq *q = calloc(1, sizeof(*q));
	struct timeval tv = { QUEUE_SCAN_S, 0 };

	if (q == NULL)
		return NULL;
	q->ctx = ctx;
	if (queue_prepare(ctx->cfg->data_dir) < 0) {
		log_error("queue: cannot create %s/queue: %s", ctx->cfg->data_dir, strerror(errno));
		free(q);
		return NULL;
	}
	queue_cleanup(ctx->cfg->data_dir);
	q->tls = outq_tls_ctx();
	q->timer = event_new(server_event_base(ctx->srv), -1, EV_PERSIST, outq_timer_cb, q);
	if (q->timer == NULL || event_add(q->timer, &tv) < 0) {
		smtp_outq_free(q);
		return NULL;
	}
	return q;
}

void smtp_outq_free(struct smtp_outq *q)
{
	if (q == NULL)
		return;
	if (q->timer != NULL)
		event_free(q->timer);
	/* An attempt cut short here is repeated after the restart: its
	 * envelope was not touched. */
	while (q->active != NULL) {
		struct outq_msg *m = q->active;
		if (m->in_client)
			smtp_client_cancel(m->job.client);
		outq_msg_free(m);
	}
	while (q->idle != NULL) {
		struct outq_conn *k = q->idle;
		q->idle = k->next;
		smtp_client_cancel(k->client);
		free(k);
	}
	if (q->tls != NULL)
		SSL_CTX_free(q->tls);
	free(q);
}
