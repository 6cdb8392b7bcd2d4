/* The SMTP command table and the envelope commands: EHLO HELO MAIL RCPT
 * RSET NOOP QUIT VRFY EXPN HELP STARTTLS (DATA and BDAT: smtp_data.c,
 * AUTH: smtp_auth.c).
 *
 * Every handler checks state and syntax before any side effect; a refused
 * command leaves the transaction as it was (RFC 5321 §4.1.1: only RSET,
 * EHLO/HELO and the end of DATA reset it).
 *
 * Relay control (RFC 5321 §3.6, §7.1): a recipient in a local domain is
 * resolved through users and aliases; any other domain is refused without
 * authentication (554 5.7.1); with it, the recipient is accepted for the
 * outbound queue (smtp_outq.c), which has the message durably before the
 * reply after DATA says 250.  With outbound_delivery = no such recipients
 * get 451 4.3.2 (as before the queue existed).  An alias whose targets
 * include addresses in other domains forwards to them through the queue,
 * whoever sent the message (the alias, not the client, chose them): each
 * becomes a remote recipient of the transaction, with the alias's NOTIFY
 * and its ORCPT (or the alias address as ORCPT, RFC 3461 §4.2).  No SRS:
 * the envelope sender stays the original one, so the far side's SPF check
 * may fail (Postfix behaves the same without an SRS add-on); the README
 * says so.  With shard_name (smtp_shard.c), a user whose mailbox another
 * shard holds is forwarded the same way, through the queue to that
 * shard's LMTP; the users and aliases files here decide whether the
 * recipient exists (every instance has the same copy), the owner's LMTP
 * answer decides the rest (a 5xx there bounces to the sender).  Not on
 * LMTP: what arrives there is stored here.  DSN parameters (RFC 3461)
 * are validated and kept in the transaction (tx.mail.ret/envid,
 * rcpts[i].params) and written into the queue's envelope.
 */
#include "smtp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void smtp_cmd_fn(struct smtp_session *s, const char *args);

/* States where commands are read (not DATA/BDAT/AUTH/TLS/QUIT). */
#define SMTP_ST_ANY (SMTP_BIT(SMTP_STATE_INIT) | SMTP_BIT(SMTP_STATE_READY) |      \
		     SMTP_BIT(SMTP_STATE_MAIL) | SMTP_BIT(SMTP_STATE_RCPT) |       \
		     SMTP_BIT(SMTP_STATE_CHUNKING))
#define SMTP_ST_NOT_CHUNKING (SMTP_ST_ANY & ~SMTP_BIT(SMTP_STATE_CHUNKING))

struct smtp_cmd_def {
	enum smtp_verb verb;
	const char *name;
	unsigned states;  /* SMTP_BIT() of the states that allow it */
	bool long_line;   /* may exceed SMTP_LINE_MAX (AUTH, RFC 4954 §4) */
	smtp_cmd_fn *fn;
};

static smtp_cmd_fn smtp_cmd_ehlo, smtp_cmd_helo, smtp_cmd_mail, smtp_cmd_rcpt,
	smtp_cmd_rset, smtp_cmd_noop, smtp_cmd_quit, smtp_cmd_vrfy, smtp_cmd_expn,
	smtp_cmd_help, smtp_cmd_starttls;

static const struct smtp_cmd_def smtp_cmds[] = {
	{ SMTP_VERB_EHLO, "EHLO", SMTP_ST_ANY, false, smtp_cmd_ehlo },
	{ SMTP_VERB_HELO, "HELO", SMTP_ST_ANY, false, smtp_cmd_helo },
	{ SMTP_VERB_MAIL, "MAIL", SMTP_BIT(SMTP_STATE_READY), false, smtp_cmd_mail },
	{ SMTP_VERB_RCPT, "RCPT", SMTP_BIT(SMTP_STATE_MAIL) | SMTP_BIT(SMTP_STATE_RCPT), false,
	  smtp_cmd_rcpt },
	/* DATA and BDAT check their state themselves: BDAT must read its
	 * chunk even when refused, DATA names what is missing. */
	{ SMTP_VERB_DATA, "DATA", SMTP_ST_ANY, false, smtp_cmd_data },
	{ SMTP_VERB_BDAT, "BDAT", SMTP_ST_ANY, false, smtp_cmd_bdat },
	{ SMTP_VERB_RSET, "RSET", SMTP_ST_ANY, false, smtp_cmd_rset },
	{ SMTP_VERB_NOOP, "NOOP", SMTP_ST_ANY, false, smtp_cmd_noop },
	{ SMTP_VERB_QUIT, "QUIT", SMTP_ST_ANY, false, smtp_cmd_quit },
	{ SMTP_VERB_VRFY, "VRFY", SMTP_ST_NOT_CHUNKING, false, smtp_cmd_vrfy },
	{ SMTP_VERB_EXPN, "EXPN", SMTP_ST_NOT_CHUNKING, false, smtp_cmd_expn },
	{ SMTP_VERB_HELP, "HELP", SMTP_ST_ANY, false, smtp_cmd_help },
	{ SMTP_VERB_STARTTLS, "STARTTLS", SMTP_BIT(SMTP_STATE_INIT) | SMTP_BIT(SMTP_STATE_READY),
	  false, smtp_cmd_starttls },
	{ SMTP_VERB_AUTH, "AUTH", SMTP_BIT(SMTP_STATE_INIT) | SMTP_BIT(SMTP_STATE_READY), true,
	  smtp_cmd_auth },
	{ SMTP_VERB_LHLO, "LHLO", SMTP_ST_ANY, false, smtp_cmd_lhlo },
};

/* LMTP and SMTP differ only in the greeting command (RFC 2033 §4.1):
 * LHLO is unknown to SMTP, HELO and EHLO are refused in LMTP. */
static bool smtp_verb_in_mode(const struct smtp_session *s, enum smtp_verb verb)
{
	if (s->role == ROLE_LMTP)
		return verb != SMTP_VERB_EHLO && verb != SMTP_VERB_HELO;
	return verb != SMTP_VERB_LHLO;
}

void smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_cmd_def *def = NULL;
	struct smtp_command cmd;
	char args[SMTP_AUTH_LINE_MAX + 1];

	smtp_parse_command(line, len, &cmd);
	for (size_t i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++)
		if (smtp_cmds[i].verb == cmd.verb)
			def = &smtp_cmds[i];
	if (def == NULL || !smtp_verb_in_mode(s, def->verb)) {
		if (def != NULL && s->role == ROLE_LMTP)
			smtp_reply(s, "500 5.5.1 This is LMTP: use LHLO (RFC 2033)");
		else
			smtp_reply(s, "500 5.5.2 Syntax error, command unrecognized");
		return;
	}
	if (s->refused && def->verb != SMTP_VERB_QUIT) {
		/* RFC 5321 §3.1: after a 554 greeting, 503 until QUIT */
		smtp_reply(s, "503 5.7.1 No LMTP service for %s", conn_peer_addr(s->conn));
		return;
	}
	if (len > SMTP_LINE_MAX && !def->long_line) {
		smtp_reply(s, "500 5.5.2 Line too long");
		return;
	}
	conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp cmd=%s state=%d", def->name, (int)s->state);
	if (!(def->states & SMTP_BIT(s->state))) {
		if (s->state == SMTP_STATE_INIT)
			smtp_reply(s, "503 5.5.1 Send %s first", smtp_hello_verb(s));
		else if (s->state == SMTP_STATE_CHUNKING)
			smtp_reply(s, "503 5.5.1 %s not allowed during BDAT transfer", def->name);
		else if (def->verb == SMTP_VERB_MAIL)
			smtp_reply(s, "503 5.5.1 Sender already specified");
		else if (def->verb == SMTP_VERB_RCPT)
			smtp_reply(s, "503 5.5.1 Need MAIL before RCPT");
		else
			smtp_reply(s, "503 5.5.1 %s not allowed during a mail transaction", def->name);
		return;
	}
	memcpy(args, cmd.args, cmd.args_len);
	args[cmd.args_len] = '\0';
	def->fn(s, args);
}

/* ---- EHLO / HELO ----------------------------------------------------------- */

/* The extensions offered after EHLO or LHLO.  LMTP offers no AUTH (the
 * peer is trusted) and no DSN: the MTA in front reports on delivery. */
static void smtp_capabilities(struct smtp_session *s)
{
	const struct config *cfg = s->ctx->cfg;
	bool lmtp = s->role == ROLE_LMTP;

	conn_printf(s->conn, "250-PIPELINING\r\n");
	conn_printf(s->conn, "250-SIZE %llu\r\n", (unsigned long long)cfg->message_size_max);
	conn_printf(s->conn, "250-8BITMIME\r\n");
	conn_printf(s->conn, "250-ENHANCEDSTATUSCODES\r\n");
	if (smtp_starttls_allowed(s))
		conn_printf(s->conn, "250-STARTTLS\r\n");
	if (smtp_auth_allowed(s))
		conn_printf(s->conn, "250-AUTH %s\r\n", SASL_MECHANISMS);
	conn_printf(s->conn, "250-SMTPUTF8\r\n");
	conn_printf(s->conn, lmtp ? "250 CHUNKING\r\n" : "250-CHUNKING\r\n");
	if (!lmtp)
		conn_printf(s->conn, "250 DSN\r\n");
}

void smtp_hello(struct smtp_session *s, const char *args, bool esmtp)
{
	const struct config *cfg = s->ctx->cfg;
	const char *ip = conn_peer_addr(s->conn);
	bool v6 = strchr(ip, ':') != NULL;
	const char *verb = s->role == ROLE_LMTP ? "LHLO" : esmtp ? "EHLO" : "HELO";

	if (!smtp_helo_valid(args, strlen(args))) {
		smtp_reply(s, "501 5.5.4 Syntax: %s domain-or-address-literal", verb);
		return;
	}
	/* RFC 5321 §4.1.4: EHLO in a transaction is an implicit RSET */
	smtp_tx_reset(s);
	str_copy(s->helo, args, sizeof(s->helo));
	s->esmtp = esmtp;
	s->bad_commands = 0;
	smtp_enter_state(s, SMTP_STATE_READY);
	if (s->pregreet_waited) {
		/* It waited for the greeting and now behaves: greet it at once
		 * next time (postscreen's pass). */
		s->pregreet_waited = false;
		smtp_pregreet_remember(s->ctx->pregreet, ip, time(NULL));
		conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp pregreet pass rip=%s", ip);
	}
	if (!esmtp) {
		conn_printf(s->conn, "250 %s Hello [%s%s]\r\n", cfg->hostname, v6 ? "IPv6:" : "", ip);
		return;
	}
	if (conn_peer_is_local_socket(s->conn))
		conn_printf(s->conn, "250-%s Hello %s\r\n", cfg->hostname, args);
	else
		conn_printf(s->conn, "250-%s Hello [%s%s]\r\n", cfg->hostname, v6 ? "IPv6:" : "",
			    ip);
	smtp_capabilities(s);
}

static void smtp_cmd_ehlo(struct smtp_session *s, const char *args)
{
	smtp_hello(s, args, true);
}

static void smtp_cmd_helo(struct smtp_session *s, const char *args)
{
	smtp_hello(s, args, false);
}

/* ---- MAIL ---------------------------------------------------------------- */

static void smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	const struct config *cfg = s->ctx->cfg;
	struct smtp_tx *tx = &s->tx;
	struct smtp_path path;
	struct smtp_mail_params params;
	char reply[SMTP_REPLY_MAX];
	const char *rest;

	if (smtp_is_submission(s) && !s->authenticated) {
		/* RFC 6409 §4.3 / RFC 4954 §6 */
		smtp_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (smtp_parse_mail_from(args, &path, &rest, reply, sizeof(reply)) < 0) {
		smtp_reply(s, "%s", reply);
		return;
	}
	if (!s->esmtp && rest[strspn(rest, " ")] != '\0') {
		smtp_reply(s, "555 5.5.4 MAIL parameters need EHLO");
		return;
	}
	if (smtp_parse_mail_params(rest, smtp_is_submission(s) ? SMTP_EXT_AUTH : 0,
				   cfg->message_size_max, &params, reply, sizeof(reply)) < 0) {
		smtp_reply(s, "%s", reply);
		return;
	}
	if (path.utf8 && !params.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter");
		return;
	}
	if (smtp_is_submission(s)) {
		/* Senders on submission must own the address (DESIGN.md). */
		if (path.null) {
			smtp_reply(s, "553 5.7.1 Null sender not allowed for submission");
			return;
		}
		if (!auth_user_owns_address(s->ctx->auth, s->user, path.addr)) {
			smtp_reply(s, "553 5.7.1 Sender address <%s> not owned by user %s", path.addr,
				   s->user);
			return;
		}
	}
	smtp_tx_reset(s);
	tx->from = path;
	tx->mail = params;
	smtp_make_id(tx->id);
	smtp_enter_state(s, SMTP_STATE_MAIL);
	conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp id=%s from=<%s> size=%llu", tx->id,
		 path.addr, (unsigned long long)params.size);
	smtp_reply(s, "250 2.1.0 Sender <%s> OK", path.addr);
}

/* ---- RCPT ---------------------------------------------------------------- */

/* The index of address in owners, or n when absent. */
static size_t smtp_owner_find(const struct smtp_owner *owners, size_t n, const char *address)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(owners[i].address, address) == 0)
			return i;
	return n;
}

static bool smtp_owner_known(const struct smtp_owner *owners, size_t n, const char *address)
{
	return smtp_owner_find(owners, n, address) < n;
}

/* RFC 3461 §4: xtext of an address ("+" and "=", controls and space as
 * "+HH"); "" when it does not fit. */
static void smtp_xtext(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;
		if (o + 4 > outlen) {
			out[0] = '\0';
			return;
		}
		if (c < 33 || c > 126 || c == '+' || c == '=')
			o += (size_t)snprintf(out + o, outlen - o, "+%02X", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

/* An alias target in another domain joins the transaction as a remote
 * recipient with the alias's DSN parameters (see the top); once per
 * address. */
static void smtp_rcpt_add_forward(struct smtp_tx *tx, const char *addr)
{
	const struct smtp_rcpt *alias = &tx->pending_rcpt;
	struct smtp_rcpt *r;
	char xt[SMTP_ORCPT_MAX + 1 - 7]; /* room for "rfc822;" in front */

	for (size_t i = 0; i < tx->n_rcpts; i++)
		if (tx->rcpts[i].remote && strcmp(tx->rcpts[i].path.addr, addr) == 0)
			return;
	r = &tx->rcpts[tx->n_rcpts++];
	memset(r, 0, sizeof(*r));
	str_copy(r->path.addr, addr, sizeof(r->path.addr));
	r->params.notify = alias->params.notify;
	if (alias->params.orcpt[0] != '\0') {
		str_copy(r->params.orcpt, alias->params.orcpt, sizeof(r->params.orcpt));
	} else if (!str_ieq(alias->path.addr, addr)) { /* not a user of another shard */
		smtp_xtext(alias->path.addr, xt, sizeof(xt));
		if (xt[0] != '\0')
			snprintf(r->params.orcpt, sizeof(r->params.orcpt), "rfc822;%s", xt);
	}
	r->remote = true;
	tx->n_remote++;
}

void smtp_rcpt_accept(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if (s->role == ROLE_LMTP && smtp_lmtp_reserve(tx, tx->n_pending) < 0) {
		smtp_reply(s, "452 4.3.0 Out of memory");
		tx->n_pending = 0;
		return;
	}
	for (size_t i = 0; i < tx->n_pending; i++) {
		const struct smtp_owner *o = &tx->pending_owners[i];
		size_t at = smtp_owner_find(tx->owners, tx->n_owners, o->address);
		if (o->forward)
			continue;
		if (s->role == ROLE_LMTP)
			smtp_lmtp_link(tx, tx->n_rcpts, at); /* reserved above */
		if (at < tx->n_owners)
			continue;
		if (tx->n_owners == tx->owners_cap) {
			size_t cap = tx->owners_cap == 0 ? 8 : tx->owners_cap * 2;
			struct smtp_owner *p = realloc(tx->owners, cap * sizeof(*p));
			if (p == NULL) {
				/* this RCPT is not added: forget its links */
				while (tx->n_links > 0 && tx->links[tx->n_links - 1].rcpt == tx->n_rcpts)
					tx->n_links--;
				smtp_reply(s, "452 4.3.0 Out of memory");
				tx->n_pending = 0;
				return;
			}
			tx->owners = p;
			tx->owners_cap = cap;
		}
		tx->owners[tx->n_owners++] = *o;
	}
	tx->rcpts[tx->n_rcpts++] = tx->pending_rcpt;
	for (size_t i = 0; i < tx->n_pending; i++)
		if (tx->pending_owners[i].forward)
			smtp_rcpt_add_forward(tx, tx->pending_owners[i].address);
	tx->n_pending = 0;
	smtp_enter_state(s, SMTP_STATE_RCPT);
	smtp_reply(s, "250 2.1.5 Recipient <%s> OK", tx->pending_rcpt.path.addr);
}

/* Fill tx->pending_owners from the resolved targets; 0, or -1 (replied). */
static int smtp_rcpt_owners(struct smtp_session *s, const char *addr,
			    const struct auth_target *targets, size_t n)
{
	struct smtp_tx *tx = &s->tx;
	size_t fresh = 0, forwards = 0;

	tx->n_pending = 0;
	for (size_t i = 0; i < n; i++) {
		struct smtp_owner *o = &tx->pending_owners[tx->n_pending];
		if (!targets[i].local ||
		    (s->role != ROLE_LMTP && smtp_shard_elsewhere(s->ctx, targets[i].address))) {
			/* forwarded through the queue (see the top) */
			if (s->ctx->outq == NULL) {
				smtp_reply(s, "451 4.3.2 <%s> goes to another domain or shard and "
					   "outbound delivery is switched off", addr);
				tx->n_pending = 0;
				return -1;
			}
			memset(o, 0, sizeof(*o));
			str_copy(o->address, targets[i].address, sizeof(o->address));
			o->forward = true;
			tx->n_pending++;
			forwards++;
			continue;
		}
		tx->n_pending++;
		o->forward = false;
		str_copy(o->address, targets[i].address, sizeof(o->address));
		if (auth_user_quota(s->ctx->auth, o->address, &o->quota, &o->quota_messages) < 0)
			o->quota = o->quota_messages = 0;
		if (!smtp_owner_known(tx->owners, tx->n_owners, o->address))
			fresh++;
	}
	/* the alias itself and its forwards share tx->rcpts (SMTP_RCPT_MAX) */
	if (tx->n_owners + fresh > SMTP_OWNERS_MAX || tx->n_rcpts + 1 + forwards > SMTP_RCPT_MAX) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		tx->n_pending = 0;
		return -1;
	}
	return 0;
}

static int smtp_rcpt_alloc(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if (tx->rcpts == NULL) {
		tx->rcpts = calloc(SMTP_RCPT_MAX, sizeof(*tx->rcpts));
		tx->pending_owners = calloc(AUTH_RESOLVE_MAX, sizeof(*tx->pending_owners));
		if (tx->rcpts == NULL || tx->pending_owners == NULL) {
			smtp_reply(s, "452 4.3.0 Out of memory");
			return -1;
		}
	}
	return 0;
}

/* A recipient in another domain (relay control, RFC 5321 §3.6). */
static void smtp_rcpt_remote(struct smtp_session *s, const char *addr)
{
	struct smtp_tx *tx = &s->tx;
	struct smtp_rcpt *r = &tx->pending_rcpt;

	if (!s->authenticated) {
		smtp_reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
		return;
	}
	if (s->ctx->outq == NULL) {
		smtp_reply(s, "451 4.3.2 <%s>: outbound delivery is switched off "
			   "(outbound_delivery = no), only local recipients are accepted", addr);
		return;
	}
	if (r->path.literal) {
		smtp_reply(s, "550 5.1.3 <%s>: address literals are not relayed", addr);
		return;
	}
	r->remote = true;
	for (size_t i = 0; i < tx->n_rcpts; i++)
		if (tx->rcpts[i].remote && strcmp(tx->rcpts[i].path.addr, r->path.addr) == 0) {
			smtp_reply(s, "250 2.1.5 Recipient <%s> OK", addr); /* once is enough */
			return;
		}
	tx->rcpts[tx->n_rcpts++] = *r;
	tx->n_remote++;
	smtp_enter_state(s, SMTP_STATE_RCPT);
	smtp_reply(s, "250 2.1.5 Recipient <%s> OK", addr);
}

static void smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	const struct config *cfg = s->ctx->cfg;
	struct smtp_tx *tx = &s->tx;
	struct smtp_rcpt *r = &tx->pending_rcpt;
	struct auth_target *targets;
	char reply[SMTP_REPLY_MAX], addr[SMTP_PATH_MAX + CONFIG_DOMAIN_LEN + 16];
	const char *rest, *domain;
	enum auth_rcpt res;
	size_t n = 0;
	bool quota = false;

	if (tx->n_rcpts >= SMTP_RCPT_MAX) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	r->remote = false;
	if (smtp_parse_rcpt_to(args, &r->path, &rest, reply, sizeof(reply)) < 0) {
		smtp_reply(s, "%s", reply);
		return;
	}
	if (!s->esmtp && rest[strspn(rest, " ")] != '\0') {
		smtp_reply(s, "555 5.5.4 RCPT parameters need EHLO");
		return;
	}
	if (smtp_parse_rcpt_params(rest, tx->mail.smtputf8, &r->params, reply, sizeof(reply)) < 0) {
		smtp_reply(s, "%s", reply);
		return;
	}
	if (r->path.utf8 && !tx->mail.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8 on MAIL");
		return;
	}
	if (r->path.postmaster) {
		/* RFC 5321 §4.5.1: <Postmaster> is the first local domain's */
		if (cfg->n_domains == 0) {
			smtp_reply(s, "550 5.1.1 <Postmaster>: no local domain");
			return;
		}
		snprintf(addr, sizeof(addr), "postmaster@%s", cfg->domains[0]);
	} else {
		str_copy(addr, r->path.addr, sizeof(addr));
	}
	domain = strrchr(addr, '@') + 1;
	if (smtp_rcpt_alloc(s) < 0)
		return;
	if (r->path.literal || !config_is_local_domain(cfg, domain)) {
		smtp_rcpt_remote(s, addr);
		return;
	}
	targets = calloc(AUTH_RESOLVE_MAX, sizeof(*targets));
	if (targets == NULL) {
		smtp_reply(s, "452 4.3.0 Out of memory");
		return;
	}
	res = auth_resolve_recipient(s->ctx->auth, addr, targets, AUTH_RESOLVE_MAX, &n);
	switch (res) {
	case AUTH_RCPT_LOCAL:
		if (smtp_rcpt_owners(s, addr, targets, n) < 0)
			break;
		for (size_t i = 0; i < tx->n_pending; i++)
			quota = quota || tx->pending_owners[i].quota > 0 ||
				tx->pending_owners[i].quota_messages > 0;
		if (quota)
			smtp_check_quota(s);
		else
			smtp_rcpt_accept(s);
		break;
	case AUTH_RCPT_UNKNOWN:
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
		break;
	case AUTH_RCPT_NOT_LOCAL_DOMAIN:
		smtp_reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
		break;
	case AUTH_RCPT_ERROR:
		conn_log(s->conn, LOG_LEVEL_WARN, "smtp rcpt=<%s>: alias expands to too many targets", addr);
		smtp_reply(s, "451 4.3.0 <%s>: Temporary recipient lookup failure", addr);
		break;
	}
	free(targets);
}

/* ---- the small ones ------------------------------------------------------- */

static void smtp_cmd_rset(struct smtp_session *s, const char *args)
{
	if (args[0] != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtp_tx_reset(s);
	if (s->state != SMTP_STATE_INIT)
		smtp_enter_state(s, SMTP_STATE_READY);
	smtp_reply(s, "250 2.0.0 OK");
}

static void smtp_cmd_noop(struct smtp_session *s, const char *args)
{
	(void)args; /* RFC 5321 §4.1.1.9: a parameter is ignored */
	smtp_reply(s, "250 2.0.0 OK");
}

static void smtp_cmd_quit(struct smtp_session *s, const char *args)
{
	(void)args;
	conn_printf(s->conn, "221 2.0.0 %s Bye\r\n", s->ctx->cfg->hostname);
	smtp_enter_state(s, SMTP_STATE_QUIT);
	conn_close(s->conn);
}

static void smtp_cmd_vrfy(struct smtp_session *s, const char *args)
{
	if (args[0] == '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* RFC 5321 §3.5.3: 252 discloses nothing about the address */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void smtp_cmd_expn(struct smtp_session *s, const char *args)
{
	(void)args; /* RFC 5321 §7.3: may be disabled */
	smtp_reply(s, "502 5.5.1 EXPN not available");
}

static void smtp_cmd_help(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
		   "HELP STARTTLS AUTH");
}

static void smtp_cmd_starttls(struct smtp_session *s, const char *args)
{
	if (args[0] != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (conn_is_tls(s->conn)) {
		smtp_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (!smtp_starttls_allowed(s)) {
		smtp_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 §4.2: forget everything learnt before the handshake */
	smtp_tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->authenticated = false;
	s->user[0] = '\0';
	smtp_enter_state(s, SMTP_STATE_TLS);
	if (conn_starttls(s->conn) < 0) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "smtp starttls: cannot start TLS");
		smtp_enter_state(s, SMTP_STATE_QUIT);
		conn_close(s->conn);
	}
}
