/* The checks of mail from the world (port 25): SPF, DKIM, DMARC and the
 * Authentication-Results field, in the DATA/BDAT flow.
 *
 * Where: the header block is inspected on the loop (smtp_data.c), and
 * forged Authentication-Results fields with our authserv-id are cut from
 * it there, before any byte is written.  The message then goes, batch by
 * batch on a worker, to a temporary file (O_TMPFILE in data_dir) and
 * through the DKIM verifier; nothing reaches the store yet, because our
 * Authentication-Results must stand above the message and is only known
 * at the end.  At the end of the data, before the reply, on the DNS worker
 * pool: SPF for the MAIL FROM and HELO identities (RFC 7208 §2.3, once),
 * the DKIM key look-ups, DMARC; then on the IO pool the store delivery
 * gets Return-Path, Authentication-Results, Received, and the spooled
 * message.  DMARC
 * p=reject gives 550 5.7.1 and nothing is stored; p=quarantine goes to the
 * recipients' Junk folder.  The temporary file costs one more copy of the
 * message on disk; it is what lets the field go on top without holding
 * the message in memory.
 *
 * Memory: struct smtp_inbound belongs to the message (struct smtp_msg) and
 * is freed with it; only the worker touches it while the session is busy.
 */
#include "smtp_inbound.h"
#include "smtp_private.h"
#include "smtp_queue.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct smtp_inbound {
	int fd;                           /* the spooled message; -1 not yet */
	const char *data_dir;             /* the configuration's */
	struct dkim_verifier *dkim;
	char ip[64];
	char helo[SMTP_DOMAIN_MAX + 1];
	char sender[SMTP_PATH_MAX + 1];   /* MAIL FROM, "" for <> */
	struct buf ar;                    /* our Authentication-Results */
	char error[160];
};

bool smtp_inbound_wanted(const struct smtp_session *s)
{
	return s->role == ROLE_SMTP && !s->authenticated && !conn_peer_is_trusted(s->conn);
}

struct smtp_inbound *smtp_inbound_new(struct smtp_session *s)
{
	struct smtp_inbound *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	in->fd = -1;
	in->data_dir = s->ctx->cfg->data_dir;
	in->dkim = dkim_verifier_new();
	if (in->dkim == NULL) {
		free(in);
		return NULL;
	}
	str_copy(in->ip, conn_peer_addr(s->conn), sizeof(in->ip));
	str_copy(in->helo, s->helo, sizeof(in->helo));
	str_copy(in->sender, s->tx.from.null ? "" : s->tx.from.addr, sizeof(in->sender));
	buf_init(&in->ar, 0);
	return in;
}

void smtp_inbound_free(struct smtp_inbound *in)
{
	if (in == NULL)
		return;
	if (in->fd >= 0)
		close(in->fd);
	dkim_verifier_free(in->dkim);
	buf_free(&in->ar);
	free(in);
}

const char *smtp_inbound_error(const struct smtp_inbound *in)
{
	return in->error;
}

/* The data directory's file system, as the store's spool; never linked
 * into a directory, so nothing is left behind by a crash. */
static int smtp_inbound_open(struct smtp_inbound *in, const char *data_dir)
{
	in->fd = open(data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (in->fd < 0) {
		snprintf(in->error, sizeof(in->error), "temporary file in %s: %m", data_dir);
		return -1;
	}
	return 0;
}

static int smtp_inbound_write_fd(struct smtp_inbound *in, const void *data, size_t len)
{
	if (write_full(in->fd, data, len) < 0) {
		snprintf(in->error, sizeof(in->error), "temporary file: %m");
		return -1;
	}
	dkim_verifier_update(in->dkim, data, len);
	return 0;
}

int smtp_inbound_write(struct smtp_inbound *in, const void *data, size_t len)
{
	if (in->fd < 0 && smtp_inbound_open(in, in->data_dir) < 0)
		return -1;
	return smtp_inbound_write_fd(in, data, len);
}

/* ---- the checks -------------------------------------------------------------- */

/* The domain of the one From: field's mailboxes; "" when there is none,
 * several fields, or mailboxes of different domains (RFC 7489 §6.6.1:
 * such a message has no single author domain to evaluate). */
static void smtp_inbound_from_domain(const struct buf *h, char *out, size_t outlen)
{
	struct smtp_header_info info;
	char (*addrs)[SMTP_PATH_MAX + 1];
	int n;

	out[0] = '\0';
	if (h->len == 0)
		return;
	smtp_header_scan(h->data, h->len, &info);
	if (info.from_fields != 1)
		return;
	addrs = calloc(SMTP_FROM_MAX, sizeof(*addrs));
	if (addrs == NULL)
		return;
	n = smtp_parse_from(info.from, info.from_len, addrs, SMTP_FROM_MAX);
	for (int i = 0; i < n; i++) {
		const char *at = strrchr(addrs[i], '@');
		if (at == NULL || (i > 0 && strcasecmp(at + 1, out) != 0)) {
			out[0] = '\0';
			break;
		}
		str_copy(out, at + 1, outlen);
	}
	free(addrs);
	str_lower(out);
}

/* SPF for MAIL FROM (postmaster@HELO for <>, RFC 7208 §2.4) and HELO. */
static void smtp_inbound_spf(struct smtp_session *s, struct smtp_inbound *in,
			     struct smtp_dns *dns, struct authres_input *ai,
			     char *exp, size_t explen, const char **spf_domain_r,
			     enum spf_result *spf_r)
{
	static char none[] = "";
	struct spf_request req = { in->ip, NULL, in->helo, s->ctx->cfg->hostname };
	bool helo_ok = in->helo[0] != '\0' && in->helo[0] != '[';
	char helo_sender[SMTP_PATH_MAX + 16];

	snprintf(helo_sender, sizeof(helo_sender), "postmaster@%s", in->helo);
	ai->helo = helo_ok ? in->helo : none;
	ai->spf_helo = SPF_RESULT_NONE;
	if (helo_ok) {
		req.sender = helo_sender;
		ai->spf_helo = spf_check_host(dns, &req, in->helo, NULL, 0);
	}
	ai->mailfrom = in->sender;
	ai->spf_mailfrom = SPF_RESULT_NONE;
	exp[0] = '\0';
	if (in->sender[0] != '\0') {
		req.sender = in->sender;
		ai->spf_mailfrom = spf_check_host(dns, &req, strrchr(in->sender, '@') + 1,
						  exp, explen);
		*spf_domain_r = strrchr(in->sender, '@') + 1;
		*spf_r = ai->spf_mailfrom;
	} else {
		/* RFC 7489 §4.1: with a null reverse-path, the HELO identity */
		*spf_domain_r = helo_ok ? in->helo : "";
		*spf_r = ai->spf_helo;
	}
	ai->spf_exp = exp;
}

static enum smtp_inbound_action smtp_inbound_action(const struct dmarc_outcome *d)
{
	if (d->result != DMARC_RESULT_FAIL)
		return SMTP_INBOUND_ACCEPT;
	switch (d->disposition) {
	case DMARC_POLICY_REJECT:
		return SMTP_INBOUND_REJECT;
	case DMARC_POLICY_QUARANTINE:
		return SMTP_INBOUND_QUARANTINE;
	default:
		return SMTP_INBOUND_ACCEPT;
	}
}

enum smtp_inbound_action smtp_inbound_check(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_inbound *in = m->inbound;
	struct dkim_sig_result dkim[DKIM_VERIFY_SIGS_MAX];
	struct authres_input ai = { .authserv_id = s->ctx->cfg->hostname };
	struct dmarc_outcome dmarc;
	struct dmarc_input di;
	struct smtp_dns dns;
	char from_domain[SMTP_DOMAIN_MAX + 1], exp[SPF_EXPAND_MAX + 1];
	enum smtp_inbound_action action;
	unsigned rnd = 0;

	smtp_dns_real(&dns, s->ctx->dns, SMTP_INBOUND_DEADLINE_S);
	ai.n_dkim = dkim_verifier_finish(in->dkim, &dns, time(NULL), dkim, DKIM_VERIFY_SIGS_MAX);
	ai.dkim = dkim;
	memset(&di, 0, sizeof(di));
	smtp_inbound_spf(s, in, &dns, &ai, exp, sizeof(exp), &di.spf_domain, &di.spf);
	smtp_inbound_from_domain(&m->headers, from_domain, sizeof(from_domain));
	di.from_domain = from_domain;
	di.dkim = dkim;
	di.n_dkim = ai.n_dkim;
	(void)random_bytes(&rnd, sizeof(rnd));
	dmarc_check(&dns, s->ctx->psl, &di, rnd, &dmarc);
	ai.dmarc = &dmarc;
	ai.from_domain = from_domain;
	action = smtp_inbound_action(&dmarc);
	buf_reset(&in->ar);
	if (authres_build(&ai, &in->ar) < 0)
		buf_reset(&in->ar); /* out of memory: delivered without it */
	log_info("smtp id=%s inbound ip=%s dkim=%zu spf=%s spf_helo=%s dmarc=%s from=%s "
		 "action=%s", s->tx.id, in->ip, ai.n_dkim, spf_result_name(ai.spf_mailfrom),
		 spf_result_name(ai.spf_helo), dmarc_result_name(dmarc.result), from_domain,
		 action == SMTP_INBOUND_REJECT ? "reject" :
		 action == SMTP_INBOUND_QUARANTINE ? "junk" : "deliver");
	if (action == SMTP_INBOUND_REJECT)
		str_copy(m->verdict_detail, from_domain, sizeof(m->verdict_detail));
	return action;
}

/* ---- into the store ---------------------------------------------------------- */

/* p=quarantine: a user who deleted Junk gets it back (as Thunderbird
 * does), rather than the message bouncing between retries. */
static void smtp_inbound_junk_ready(struct smtp_session *s)
{
	for (size_t i = 0; i < s->tx.n_owners; i++) {
		struct md_user *u;
		enum md_result r = md_user_open(s->ctx->store, s->tx.owners[i].address,
						MD_USER_CREATE, &u);
		if (r != MD_OK)
			continue; /* the commit reports it */
		r = md_mailbox_create(u, SMTP_INBOUND_JUNK, MD_SPECIAL_JUNK);
		if (r != MD_OK && r != MD_EXISTS)
			log_error("smtp id=%s cannot create %s for %s: %s", s->tx.id,
				  SMTP_INBOUND_JUNK, s->tx.owners[i].address, md_result_name(r));
		md_user_close(u);
	}
}

int smtp_inbound_queue(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_inbound *in = m->inbound;
	const char *nl = memchr(m->prefix.data, '\n', m->prefix.len);
	size_t first = nl != NULL ? (size_t)(nl - m->prefix.data) + 1 : 0;

	/* RFC 8601 §5: above the fields of earlier hops, as in the store;
	 * Return-Path is for the final delivery only (RFC 5321 §4.4) */
	if (queue_writer_open(in->data_dir, s->tx.id, &m->qw) < 0 ||
	    (in->ar.len > 0 && queue_writer_write(m->qw, in->ar.data, in->ar.len) < 0) ||
	    queue_writer_write(m->qw, m->prefix.data + first, m->prefix.len - first) < 0 ||
	    (in->fd >= 0 && (lseek(in->fd, 0, SEEK_SET) < 0 ||
			     queue_writer_copy_fd(m->qw, in->fd) < 0))) {
		m->store_result = MD_TEMPFAIL;
		snprintf(m->store_error, sizeof(m->store_error), "queue: %s",
			 queue_writer_error(m->qw));
		return -1;
	}
	return 0;
}

enum md_result smtp_inbound_store(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_inbound *in = m->inbound;
	const char *nl = memchr(m->prefix.data, '\n', m->prefix.len);
	size_t first = nl != NULL ? (size_t)(nl - m->prefix.data) + 1 : 0;
	enum md_result r;

	if (m->action == SMTP_INBOUND_QUARANTINE)
		smtp_inbound_junk_ready(s);
	r = md_delivery_open(s->ctx->store, 0, 0, &m->d);
	if (r != MD_OK) {
		m->d = NULL;
		str_copy(in->error, "cannot open a delivery", sizeof(in->error));
		return r;
	}
	/* RFC 8601 §5: above the fields of earlier hops; Return-Path first */
	r = md_delivery_write(m->d, m->prefix.data, first);
	if (r == MD_OK && in->ar.len > 0)
		r = md_delivery_write(m->d, in->ar.data, in->ar.len);
	if (r == MD_OK)
		r = md_delivery_write(m->d, m->prefix.data + first, m->prefix.len - first);
	m->prefix_written = true;
	if (r == MD_OK && in->fd >= 0) {
		if (lseek(in->fd, 0, SEEK_SET) < 0)
			r = MD_TEMPFAIL;
		else
			r = md_delivery_write_fd(m->d, in->fd);
	}
	if (r != MD_OK)
		str_copy(in->error, md_delivery_error(m->d), sizeof(in->error));
	return r;
}
