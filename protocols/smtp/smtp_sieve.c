/* Sieve (RFC 5228) at local delivery, on the worker that commits the
 * message (smtp_deliver.c's smtp_commit_local, which LMTP shares).
 *
 * Before the commit, smtp_sieve_plan() runs each live owner's active
 * script (md_sieve_active_read) on the message as it will be stored
 * (trace fields included; the header and the first SMTP_SIEVE_BODY_MAX
 * octets of the body) and turns its result into store targets: one per
 * keep / fileinto (the store hard-links one file), with the imap4flags
 * flags and keywords; none for discard, redirect or reject.  A fileinto
 * folder that does not exist, or whose name is not valid, gets INBOX
 * instead (logged).  A script that does not compile or fails at run time
 * leaves the owner's INBOX target as it was, and the error is logged with
 * the script's name and line (issue 14: an error never loses mail).
 *
 * reject (RFC 5429): when the owner is the transaction's only recipient,
 * nothing is stored and the reply to the DATA is "550 5.7.1 reason"
 * (m->sieve_reject; RFC 5429 §2.1 prefers refusing in the protocol);
 * otherwise the message is not stored for that owner and the sender gets
 * a bounce naming the reason (smtp_sieve_after).  On LMTP each recipient
 * has its own reply, so a recipient whose owners all reject gets its own
 * "550 5.7.1 reason" (smtp_lmtp.c) and only an owner whose refusal no
 * reply carries is bounced.
 *
 * The plan rewrites m->targets: tx->owners[i].target and .n_targets then
 * name the slots the owner's script chose (none for discard or reject),
 * so LMTP answers each recipient from its own copies only, and only after
 * all of them are durable (the one group commit).
 *
 * After a successful commit, smtp_sieve_after() takes the actions that
 * send mail: redirect (the message as stored, without its Return-Path,
 * from the original envelope sender, at most SIEVE_REDIRECTS_MAX per
 * message and owner) and vacation (RFC 5230: sieve_vacation_allowed(),
 * then once per sender, handle and :days, md_sieve_vacation_check(),
 * from the null sender).  Both go through smtp_send_generated(): local
 * addresses straight into their INBOX (without running their Sieve, so
 * no loop), others through the outbound queue.  They are best effort
 * after the 250: a failure is logged.  On LMTP they are taken for an
 * owner only when every copy it chose was stored (a recipient answered
 * 451 is sent again by the MTA, and its script then runs again).
 *
 * `postern deliver` runs the same plan and the same redirect and vacation
 * (smtp_sieve_cli.c); a reject there is its exit code.
 *
 * Memory: the plan (struct smtp_sieve) lives on the smtp_msg until the
 * transaction ends (smtp_sieve_free); at most SMTP_SIEVE_READ_MAX octets
 * of the message are read.
 */
#include "smtp_private.h"
#include "smtp_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sieve.h"

#define SMTP_SIEVE_BODY_MAX (1024 * 1024) /* body octets "body" tests see */
#define SMTP_SIEVE_READ_MAX (SMTP_HEADER_MAX + SMTP_SIEVE_BODY_MAX)
#define SMTP_SIEVE_REASON_MAX 400         /* octets of a reject reason in the
					   * 550 (RFC 5321 §4.5.3.1.5: 512 a line) */

/* What one owner's script decided. */
struct smtp_sieve_owner {
	const char *address;          /* the owner (tx->owners) */
	char script[MD_SIEVE_NAME_MAX + 1];
	bool ran;                     /* the script ran without error */
	struct sieve_result result;
	const char **keywords;        /* per store target, into result */
	size_t first, n_targets;      /* its slots in the new targets */
	const char *reject;           /* its reject reason (into result), or
				       * NULL */
};

struct smtp_sieve {
	struct smtp_ctx *ctx;
	char id[SMTP_ID_LEN + 1];     /* the transaction's, for the log */
	int fd;                       /* the message, read-only */
	char *data;                   /* its first SMTP_SIEVE_READ_MAX octets */
	size_t len;
	size_t rp_len;                /* octets of its Return-Path line */
	struct sieve_message msg;
	struct smtp_sieve_owner *owners;
	size_t n_owners;
	size_t n_rejected;            /* owners whose script rejects */
	bool any_ran;                 /* some owner's script ran */
	char reject_reason[SMTP_SIEVE_REASON_MAX + 1];
};

struct smtp_sieve *smtp_sieve_new(struct smtp_ctx *ctx, const char *id)
{
	struct smtp_sieve *sv = calloc(1, sizeof(*sv));

	if (sv == NULL)
		return NULL;
	sv->ctx = ctx;
	sv->fd = -1;
	str_copy(sv->id, id, sizeof(sv->id));
	return sv;
}

void smtp_sieve_free(struct smtp_sieve *sv)
{
	if (sv == NULL)
		return;
	for (size_t i = 0; i < sv->n_owners; i++) {
		sieve_result_free(&sv->owners[i].result);
		free(sv->owners[i].keywords);
	}
	free(sv->owners);
	if (sv->fd >= 0)
		close(sv->fd);
	free(sv->data);
	free(sv);
}

const char *smtp_sieve_reject_reason(const struct smtp_sieve *sv)
{
	return sv != NULL ? sv->reject_reason : "";
}

void smtp_sieve_reply_text(const char *reason, char *out, size_t outlen)
{
	size_t o = 0;

	/* one reply line: line ends and control characters become one
	 * space, none at the end */
	for (const char *p = reason; *p != '\0' && o + 1 < outlen; p++) {
		bool ctl = (unsigned char)*p < 0x20 || *p == 0x7f;
		if (!ctl)
			out[o++] = *p;
		else if (o > 0 && out[o - 1] != ' ')
			out[o++] = ' ';
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	if (outlen > 0)
		out[o] = '\0';
	if (o == 0)
		str_copy(out, "Rejected", outlen);
}

/* Read the start of the message and split header from body. */
static int smtp_sieve_load(struct smtp_sieve *sv, struct md_delivery *d, const char *sender)
{
	const char *sep, *nl;
	ssize_t n;
	size_t got = 0, want = SMTP_SIEVE_READ_MAX;

	if (md_delivery_size(d) < want)
		want = (size_t)md_delivery_size(d);
	sv->fd = md_delivery_reopen(d);
	if (sv->fd < 0)
		return -1;
	sv->data = malloc(want + 1);
	if (sv->data == NULL)
		return -1;
	while (got < want && (n = pread(sv->fd, sv->data + got, want - got, (off_t)got)) > 0)
		got += (size_t)n;
	sv->data[got] = '\0';
	sv->len = got;
	nl = memchr(sv->data, '\n', got);
	sv->rp_len = nl != NULL && strncasecmp(sv->data, "Return-Path:", 12) == 0 ?
		     (size_t)(nl - sv->data) + 1 : 0;
	sep = memmem(sv->data, got, "\r\n\r\n", 4);
	sv->msg.header = sv->data;
	sv->msg.header_len = sep != NULL ? (size_t)(sep - sv->data) + 2 : got;
	sv->msg.body = sep != NULL ? sep + 4 : NULL;
	sv->msg.body_len = sep != NULL ? got - (size_t)(sep + 4 - sv->data) : 0;
	sv->msg.size = md_delivery_size(d);
	sv->msg.envelope_from = sender;
	return 0;
}

/* Find (or with create make, RFC 5490 §3.2) the owner's folder named
 * utf8 as in the script; its IMAP name in out.  MD_BADNAME for a name
 * that is not valid, MD_NOMAILBOX when it does not exist. */
static enum md_result smtp_sieve_mailbox(struct md_store *store, const char *owner,
					 const char *utf8, bool create, char *out, size_t outlen)
{
	struct md_user *u;
	struct md_status st;
	enum md_result r;

	if (md_mutf7_from_utf8(utf8, out, outlen) < 0 || md_mailbox_name_check(out) != MD_OK)
		return MD_BADNAME;
	r = md_user_open(store, owner, MD_USER_CREATE, &u);
	if (r != MD_OK)
		return r;
	r = md_mailbox_status(u, out, &st);
	if (r == MD_NOMAILBOX && create) {
		r = md_mailbox_create(u, out, 0);
		if (r == MD_EXISTS) /* made by someone else meanwhile */
			r = MD_OK;
	}
	md_user_close(u);
	return r;
}

/* RFC 5490 mailboxexists, for sieve_message. */
struct smtp_sieve_mbctx {
	struct md_store *store;
	const char *owner;
};

static bool smtp_sieve_mailbox_exists(void *arg, const char *utf8)
{
	struct smtp_sieve_mbctx *c = arg;
	char name[MD_MAILBOX_NAME_MAX * 2 + 1];

	return smtp_sieve_mailbox(c->store, c->owner, utf8, false, name, sizeof(name)) == MD_OK;
}

/* The owner's active script, compiled; NULL when there is none or it
 * cannot be used (logged: the owner keeps its INBOX target). */
static struct sieve_script *smtp_sieve_compile_owner(struct smtp_sieve *sv,
						     struct smtp_sieve_owner *o)
{
	char *text = NULL, err[SIEVE_ERROR_MAX];
	size_t len = 0;
	struct sieve_script *script;
	enum md_result r;

	r = md_sieve_active_read(sv->ctx->store, o->address, &text, &len, o->script,
				 sizeof(o->script));
	if (r != MD_OK) {
		log_error("smtp id=%s sieve user=%s cannot read the active script: %s; "
			  "delivered to INBOX", sv->id, o->address, md_result_name(r));
		return NULL;
	}
	if (text == NULL)
		return NULL;
	script = sieve_compile(text, len, err, sizeof(err));
	free(text);
	if (script == NULL)
		log_error("smtp id=%s sieve user=%s script=%s error: %s; delivered to INBOX",
			  sv->id, o->address, o->script, err);
	return script;
}

/* Run it; false when it failed (logged: the owner keeps its INBOX). */
static bool smtp_sieve_run_owner(struct smtp_sieve *sv, struct smtp_sieve_owner *o,
				 const struct sieve_script *script)
{
	struct smtp_sieve_mbctx mbctx = { sv->ctx->store, o->address };
	int rc;

	sv->msg.envelope_to = o->address;
	sv->msg.mailbox_exists = smtp_sieve_mailbox_exists;
	sv->msg.mailbox_ctx = &mbctx;
	rc = sieve_run(script, &sv->msg, &o->result);
	sv->msg.mailbox_ctx = NULL;
	sv->msg.mailbox_exists = NULL;
	if (rc < 0) {
		log_error("smtp id=%s sieve user=%s script=%s runtime error: line %d: %s; "
			  "delivered to INBOX", sv->id, o->address, o->script,
			  o->result.error_line, o->result.error);
		sieve_result_free(&o->result);
		return false;
	}
	return true;
}

/* The IMAP name of a fileinto folder, or NULL (then INBOX) when it is
 * not valid or does not exist (RFC 5228 §4.1 leaves this to us) and
 * :create did not ask for it.  INBOX itself is NULL too. */
static const char *smtp_sieve_folder(const struct smtp_sieve *sv, const char *owner,
				     const struct sieve_action *a, char *out, size_t outlen)
{
	enum md_result r = smtp_sieve_mailbox(sv->ctx->store, owner, a->mailbox, a->create, out,
					      outlen);

	if (r == MD_OK && strcasecmp(out, "INBOX") != 0) {
		if (a->create)
			log_info("smtp id=%s sieve user=%s fileinto :create \"%s\"", sv->id,
				 owner, a->mailbox);
		return out;
	}
	if (r != MD_OK && r != MD_NOMAILBOX && r != MD_BADNAME && strcasecmp(out, "INBOX") != 0) {
		/* a temporary failure: the commit tries the folder and its
		 * result answers (451, the client retries) rather than the
		 * message landing elsewhere for good */
		log_warn("smtp id=%s sieve user=%s fileinto \"%s\": %s; left to the commit",
			 sv->id, owner, a->mailbox, md_result_name(r));
		return out;
	}
	if (r == MD_NOMAILBOX || r == MD_BADNAME)
		log_warn("smtp id=%s sieve user=%s fileinto \"%s\": %s; delivered to INBOX",
			 sv->id, owner, a->mailbox,
			 r == MD_NOMAILBOX ? "no such folder" : "not a valid folder name");
	return NULL;
}

/* An IMAP keyword is an atom (RFC 3501 §9 flag-keyword): printable ASCII
 * without atom-specials; other "\..." flags (\Recent) cannot be set. */
static bool smtp_sieve_keyword_ok(const char *f)
{
	size_t len = strlen(f);

	if (len == 0 || len > MD_KEYWORD_LEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)f[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"]\\", c) != NULL)
			return false;
	}
	return true;
}

/* imap4flags (RFC 5232 §3): system flags as bits, others as keywords. */
static void smtp_sieve_flags(struct md_target *t, const struct sieve_action *a,
			     const char **kw, size_t *kw_used)
{
	static const struct { const char *name; unsigned bit; } sys[] = {
		{ "\\Seen", MD_FLAG_SEEN }, { "\\Answered", MD_FLAG_ANSWERED },
		{ "\\Flagged", MD_FLAG_FLAGGED }, { "\\Deleted", MD_FLAG_DELETED },
		{ "\\Draft", MD_FLAG_DRAFT },
	};

	t->keywords = kw + *kw_used;
	for (size_t i = 0; i < a->n_flags; i++) {
		const char *f = a->flags[i];
		bool known = false;
		for (size_t k = 0; k < sizeof(sys) / sizeof(sys[0]); k++)
			if (strcasecmp(f, sys[k].name) == 0) {
				t->flags |= sys[k].bit;
				known = true;
			}
		if (!known && smtp_sieve_keyword_ok(f)) {
			kw[(*kw_used)++] = f;
			t->n_keywords++;
		}
	}
	if (t->n_keywords == 0)
		t->keywords = NULL;
}

/* The store targets of one owner whose script ran; appended at out. */
static size_t smtp_sieve_owner_targets(const struct smtp_sieve *sv, struct smtp_sieve_owner *o,
				       const struct md_target *base, struct md_target *out)
{
	size_t n = 0, kw_used = 0, total_flags = 0;
	char name[MD_MAILBOX_NAME_MAX * 2 + 1];

	for (size_t i = 0; i < o->result.n_actions; i++)
		total_flags += o->result.actions[i].n_flags;
	o->keywords = calloc(total_flags + 1, sizeof(*o->keywords));
	for (size_t i = 0; i < o->result.n_actions; i++) {
		struct sieve_action *a = &o->result.actions[i];
		const char *folder = NULL;
		bool inbox_twice = false;
		struct md_target *t;
		if (a->kind != SIEVE_ACTION_KEEP && a->kind != SIEVE_ACTION_FILEINTO)
			continue;
		if (a->kind == SIEVE_ACTION_FILEINTO &&
		    smtp_sieve_folder(sv, o->address, a, name, sizeof(name)) != NULL) {
			char *imap_name = strdup(name); /* lives with the result */
			if (imap_name != NULL) {
				free(a->mailbox);
				a->mailbox = imap_name;
				folder = imap_name;
			}
		}
		/* keep is the owner's default folder: INBOX, or Junk when DMARC
		 * quarantines (smtp_live_targets); a fallback next to a keep is
		 * one copy */
		for (size_t k = 0; k < n && folder == NULL; k++)
			inbox_twice = inbox_twice || out[k].mailbox == base->mailbox;
		if (inbox_twice)
			continue;
		t = &out[n++];
		*t = *base;
		t->mailbox = folder != NULL ? folder : base->mailbox;
		if (o->keywords != NULL)
			smtp_sieve_flags(t, a, o->keywords, &kw_used);
	}
	return n;
}

int smtp_sieve_choose(struct smtp_sieve *sv, struct md_delivery *d, const char *sender,
		      const struct md_target *in, size_t live, size_t extra,
		      struct md_target **out_r, size_t *n_r)
{
	struct md_target *targets;
	size_t n = 0;
	struct sieve_script **scripts;
	bool any = false;

	*out_r = NULL;
	*n_r = 0;
	sv->owners = calloc(live + 1, sizeof(*sv->owners));
	scripts = calloc(live + 1, sizeof(*scripts));
	if (sv->owners == NULL || scripts == NULL) {
		free(scripts);
		return -1;
	}
	for (size_t i = 0; i < live; i++) {
		sv->owners[i].address = in[i].address;
		scripts[i] = smtp_sieve_compile_owner(sv, &sv->owners[i]);
		any = any || scripts[i] != NULL;
	}
	sv->n_owners = live;
	/* most owners have no script: the message is not read for them */
	targets = any ? calloc(live * (SIEVE_ACTIONS_MAX + 1) + extra + 1, sizeof(*targets)) : NULL;
	if (!any || targets == NULL || smtp_sieve_load(sv, d, sender) < 0) {
		for (size_t i = 0; i < live; i++)
			sieve_script_free(scripts[i]);
		free(scripts);
		free(targets);
		return any ? -1 : 0;
	}
	for (size_t i = 0; i < live; i++) {
		struct smtp_sieve_owner *o = &sv->owners[i];
		o->ran = scripts[i] != NULL && smtp_sieve_run_owner(sv, o, scripts[i]);
		sieve_script_free(scripts[i]);
		o->first = n;
		if (!o->ran) {
			targets[n++] = in[i];
			o->n_targets = 1;
			continue;
		}
		sv->any_ran = true;
		for (size_t k = 0; k < o->result.n_actions; k++)
			if (o->result.actions[k].kind == SIEVE_ACTION_REJECT && o->reject == NULL) {
				o->reject = o->result.actions[k].text;
				sv->n_rejected++;
				log_info("smtp id=%s sieve user=%s script=%s rejects the message",
					 sv->id, o->address, o->script);
				snprintf(sv->reject_reason, sizeof(sv->reject_reason), "%s", o->reject);
			}
		o->n_targets = smtp_sieve_owner_targets(sv, o, &in[i], targets + n);
		n += o->n_targets;
	}
	free(scripts);
	*out_r = targets;
	*n_r = n;
	return 0;
}

/* Each owner's slots in the new targets (smtp_live_targets gave the old
 * ones: live owners first, one each, then the dead ones). */
static void smtp_sieve_map_owners(struct smtp_tx *tx, const struct smtp_sieve *sv,
				  size_t live, size_t n)
{
	for (size_t i = 0; i < tx->n_owners; i++) {
		struct smtp_owner *ow = &tx->owners[i];
		if (ow->target >= live) {
			ow->target = n + ow->target - live;
			continue;
		}
		const struct smtp_sieve_owner *o = &sv->owners[ow->target];
		ow->target = o->first;
		ow->n_targets = o->n_targets;
		ow->sieve_reject = o->reject;
	}
}

int smtp_sieve_plan(struct smtp_session *s, struct smtp_msg *m, size_t *live)
{
	struct smtp_tx *tx = &s->tx;
	struct smtp_sieve *sv = smtp_sieve_new(s->ctx, tx->id);
	struct md_target *targets;
	size_t n, n_dead = m->n_targets - *live;

	if (sv == NULL)
		return -1;
	m->sieve = sv;
	if (smtp_sieve_choose(sv, m->d, tx->from.null ? "" : tx->from.addr, m->targets, *live,
			      n_dead, &targets, &n) < 0)
		return -1;
	if (targets == NULL)
		return 0; /* no script */
	m->sieve_handled = sv->any_ran;
	/* RFC 5429 §2.1: refuse in the protocol when the reply is this
	 * owner's alone (on LMTP every recipient has its own: smtp_lmtp.c) */
	m->sieve_reject = s->role != ROLE_LMTP && sv->n_rejected == 1 && *live == 1 &&
			  tx->n_owners == 1 && tx->n_remote == 0;
	/* the dead owners (smtp_live_targets) stay after the live ones */
	for (size_t i = *live; i < m->n_targets; i++)
		targets[n + i - *live] = m->targets[i];
	smtp_sieve_map_owners(tx, sv, *live, n);
	free(m->targets);
	m->targets = targets;
	*live = n;
	m->n_targets = n + n_dead;
	return 0;
}

/* A reject for an owner among several: a bounce with the reason. */
static void smtp_sieve_bounce_reject(struct smtp_session *s, struct smtp_msg *m,
				     const char *owner, const char *reason)
{
	struct smtp_tx *tx = &s->tx;
	struct queue_env *env;
	char err[256];
	bool queued = false;

	if (tx->from.null)
		return; /* RFC 5429 §2.1: nobody to tell */
	env = smtp_report_env(tx);
	if (env == NULL || queue_env_add(env, owner, 0, NULL) < 0) {
		queue_env_free(env);
		return;
	}
	env->rcpts[0].state = QUEUE_RCPT_FAILED;
	snprintf(env->rcpts[0].reply, sizeof(env->rcpts[0].reply), "550 5.7.1 %s", reason);
	for (char *p = env->rcpts[0].reply; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	if (bounce_send(s->ctx, env, BOUNCE_FAILED,
			&(struct bounce_orig){ m->headers.data, m->headers.len, NULL, 0 }, &queued,
			err, sizeof(err)) != 0)
		log_error("smtp id=%s sieve reject bounce to <%s> not sent: %s", tx->id,
			  tx->from.addr, err);
	m->kick = m->kick || queued;
	queue_env_free(env);
}

static void smtp_sieve_redirect(struct smtp_sieve *sv, const struct smtp_sieve_owner *o,
				const char *to, bool *kick)
{
	char err[256];
	bool queued = false;
	struct smtp_generated g = { .sender = sv->msg.envelope_from, .text = "", .fd = sv->fd,
				    .fd_offset = (off_t)sv->rp_len, .body_8bit = true,
				    .what = "sieve redirect" };

	if (smtp_send_generated(sv->ctx, &g, to, &queued, err, sizeof(err)) != 0)
		log_error("smtp id=%s sieve user=%s redirect to <%s> failed: %s", sv->id,
			  o->address, to, err);
	else
		log_info("smtp id=%s sieve user=%s redirected to <%s>", sv->id, o->address, to);
	*kick = *kick || queued;
}

static void smtp_sieve_vacation(struct smtp_sieve *sv, const struct smtp_sieve_owner *o,
				const struct sieve_action *a, bool *kick)
{
	char handle[32], date[64], id[SMTP_ID_LEN + 1], msgid[SMTP_ID_LEN + 300], err[256];
	const char *why = NULL;
	bool send = false, queued = false;
	char *reply;
	size_t len;
	enum md_result r;

	sv->msg.envelope_to = o->address;
	if (!sieve_vacation_allowed(&sv->msg, a, &why)) {
		log_info("smtp id=%s sieve user=%s no vacation reply: %s", sv->id, o->address,
			 why);
		return;
	}
	sieve_vacation_handle(a, handle, sizeof(handle));
	r = md_sieve_vacation_check(sv->ctx->store, o->address, sv->msg.envelope_from, handle,
				    a->days, &send);
	if (r != MD_OK || !send) {
		log_info("smtp id=%s sieve user=%s no vacation reply: %s", sv->id, o->address,
			 r != MD_OK ? md_result_name(r) : "already replied within :days");
		return;
	}
	smtp_rfc5322_date(time(NULL), date, sizeof(date));
	smtp_make_id(id);
	snprintf(msgid, sizeof(msgid), "<%s.%s@%s>", sv->id, id, sv->ctx->cfg->hostname);
	if (sieve_vacation_reply(&sv->msg, a, date, msgid, &reply, &len) < 0)
		return;
	/* RFC 3834 §3.3 / RFC 5230 §5.1: from the null sender */
	if (smtp_send_generated(sv->ctx, &(struct smtp_generated){ .sender = "", .text = reply,
				.text_len = len, .fd = -1, .body_8bit = true,
				.what = "sieve vacation" },
				sv->msg.envelope_from, &queued, err, sizeof(err)) != 0)
		log_error("smtp id=%s sieve user=%s vacation reply to <%s> failed: %s", sv->id,
			  o->address, sv->msg.envelope_from, err);
	else
		log_info("smtp id=%s sieve user=%s vacation reply to <%s>", sv->id, o->address,
			 sv->msg.envelope_from);
	free(reply);
	*kick = *kick || queued;
}

size_t smtp_sieve_owners(const struct smtp_sieve *sv)
{
	return sv != NULL ? sv->n_owners : 0;
}

bool smtp_sieve_rejected_all(const struct smtp_sieve *sv)
{
	return sv != NULL && sv->n_owners > 0 && sv->n_rejected == sv->n_owners;
}

bool smtp_sieve_owner_stored(const struct smtp_sieve *sv, size_t i,
			     const struct md_target *targets)
{
	const struct smtp_sieve_owner *o = &sv->owners[i];

	for (size_t k = o->first; k < o->first + o->n_targets; k++)
		if (targets[k].result != MD_OK)
			return false;
	return true;
}

void smtp_sieve_send(struct smtp_sieve *sv, size_t i, bool *kick)
{
	const struct smtp_sieve_owner *o = &sv->owners[i];

	for (size_t k = 0; o->ran && k < o->result.n_actions; k++) {
		const struct sieve_action *a = &o->result.actions[k];
		if (a->kind == SIEVE_ACTION_REDIRECT)
			smtp_sieve_redirect(sv, o, a->address, kick);
		else if (a->kind == SIEVE_ACTION_VACATION)
			smtp_sieve_vacation(sv, o, a, kick);
	}
}

void smtp_sieve_after(struct smtp_session *s, struct smtp_msg *m)
{
	struct smtp_sieve *sv = m->sieve;
	bool lmtp = s->role == ROLE_LMTP;

	if (sv == NULL || m->sieve_reject)
		return;
	for (size_t i = 0; i < sv->n_owners; i++) {
		const struct smtp_sieve_owner *o = &sv->owners[i];
		if (!o->ran)
			continue;
		/* LMTP: only once this owner's copies are all durable (smtp_deliver.c
		 * withholds the whole call on port 25 until then) */
		if (lmtp && !smtp_sieve_owner_stored(sv, i, m->targets))
			continue;
		smtp_sieve_send(sv, i, &m->kick);
		if (o->reject != NULL && (!lmtp || !smtp_lmtp_refused(&s->tx, o->address)))
			smtp_sieve_bounce_reject(s, m, o->address, o->reject);
	}
}
