/* Port-25 mail for a mailbox that another instance holds (issue 14; README
 * "More than one machine").  With config shard_name, this instance is the
 * shard of that name in shards_file (auth/auth_shards.c), whose lines say
 * which shard holds whose mailbox and where each one's LMTP listener is.
 *
 *   RCPT (smtp_cmd.c)   a local user held by another shard is accepted
 *                       (it exists in the users file every instance
 *                       shares) as a recipient of the outbound queue, like
 *                       an alias target in another domain: the 250 after
 *                       DATA comes once the queue file is durable
 *   queue (smtp_outq.c) such recipients are grouped by shard and sent to
 *                       its LMTP (smtp_client.c with job.lmtp), with the
 *                       queue's retries, lifetime and bounces; the message
 *                       goes unsigned (DKIM is for mail leaving for the
 *                       world) and keeps its Received fields
 *   reports             a bounce or other generated message for a user of
 *                       another shard is queued to it too (smtp_bounce.c)
 * What arrives by LMTP is always stored here: the shard that sent it asked
 * us, so a stale shards file cannot make mail go round in circles.
 */
#include "smtp_queue.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

bool smtp_shard_routed(const struct config *cfg, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return cfg->shard_name[0] != '\0' && at != NULL && config_is_local_domain(cfg, at + 1);
}

bool smtp_shard_find(struct smtp_ctx *ctx, const char *addr, struct auth_shard *out)
{
	if (auth_shard_of(ctx->auth, addr, out))
		return true;
	memset(out, 0, sizeof(*out));
	return false;
}

bool smtp_shard_elsewhere(struct smtp_ctx *ctx, const char *address)
{
	struct auth_shard sh;

	return ctx->cfg->shard_name[0] != '\0' && auth_shard_of(ctx->auth, address, &sh) &&
	       strcmp(sh.name, ctx->cfg->shard_name) != 0;
}

void smtp_shard_check(struct smtp_ctx *ctx)
{
	const struct config *cfg = ctx->cfg;
	struct auth_shard self;

	if (cfg->shard_name[0] == '\0')
		return;
	if (!auth_shard_named(ctx->auth, cfg->shard_name, &self))
		log_error("shard_name = %s: %s has no such shard line (or cannot be read); "
			  "mail for users it puts on other shards is relayed to them",
			  cfg->shard_name, cfg->shards_file);
	else if (self.lmtp_port == 0 && self.lmtp_path[0] == '\0')
		log_warn("shard %s has no lmtp= in %s: the other shards cannot relay mail "
			 "for its users to it", cfg->shard_name, cfg->shards_file);
	else
		log_info("shard %s: mail for users of other shards is relayed to them by LMTP",
			 cfg->shard_name);
}

void smtp_shard_route(const struct auth_shard *sh, struct route *r)
{
	struct route_host *h = &r->hosts[0];
	unsigned char a[16];

	memset(r, 0, sizeof(*r));
	r->result = ROUTE_TEMPFAIL;
	if (sh->name[0] == '\0') {
		snprintf(r->reason, sizeof(r->reason),
			 "451 4.3.5 shards_file names no shard for this mailbox");
		return;
	}
	if (sh->lmtp_port == 0 && sh->lmtp_path[0] == '\0') {
		snprintf(r->reason, sizeof(r->reason),
			 "451 4.3.5 shard %s has no lmtp= address in shards_file", sh->name);
		return;
	}
	/* the shard's address names it in logs and in a DSN's Remote-MTA */
	str_copy(h->name, sh->address, sizeof(h->name));
	if (sh->lmtp_path[0] != '\0') {
		h->family = AF_UNIX;
		str_copy(h->addr, sh->lmtp_path, sizeof(h->addr));
	} else {
		h->family = inet_pton(AF_INET, sh->address, a) == 1 ? AF_INET : AF_INET6;
		str_copy(h->addr, sh->address, sizeof(h->addr));
		h->port = sh->lmtp_port;
	}
	r->n_hosts = 1;
	r->result = ROUTE_OK;
}
