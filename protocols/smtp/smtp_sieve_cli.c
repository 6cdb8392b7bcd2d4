/* Sieve for `postern deliver` (the MDA an outside MTA pipes mail into):
 * the same plan as at SMTP and LMTP delivery (smtp_sieve.c), handed to
 * maildir's md_cli_deliver_filtered() as a struct md_deliver_filter,
 * since maildir may not include a protocol.
 *
 * What differs from the daemon: there is no transaction and no session,
 * so the plan's context is made here from the configuration, the users
 * (auth) and the store the command opened; its log id is a fresh queue
 * id.  A refusal by every owner is the command's exit code (md_cli.c);
 * an owner's refusal among several is logged and that owner gets no copy
 * (no bounce: the command has no transaction to report on).  Redirects
 * and vacation replies go out after the commit, for each owner whose
 * copies were all stored: local ones straight into the INBOX, others
 * into the queue directory, which the daemon's periodic scan sends.
 *
 * Memory: one struct smtp_cli_sieve per command, freed by done().
 */
#include "smtp.h"
#include "smtp_private.h"
#include "smtp_queue.h"

#include <stdlib.h>

struct smtp_cli_sieve {
	struct smtp_ctx ctx;          /* cfg, auth, store: what the plan uses */
	struct smtp_sieve *sv;        /* NULL until plan */
	struct md_target *chosen;     /* the plan's targets, or NULL */
};

static int smtp_cli_sieve_plan(void *arg, struct md_store *store, struct md_delivery *d,
			       const char *sender, const struct md_target *in, size_t n,
			       struct md_target **out_r, size_t *n_r, char *reason,
			       size_t reason_len)
{
	struct smtp_cli_sieve *c = arg;
	char id[SMTP_ID_LEN + 1];

	*out_r = NULL;
	*n_r = 0;
	c->ctx.store = store;
	smtp_make_id(id);
	c->sv = smtp_sieve_new(&c->ctx, id);
	if (c->sv == NULL || smtp_sieve_choose(c->sv, d, sender, in, n, 0, &c->chosen, n_r) < 0)
		return -1;
	if (c->chosen == NULL)
		return 0; /* no owner has a script */
	if (smtp_sieve_rejected_all(c->sv)) {
		smtp_sieve_reply_text(smtp_sieve_reject_reason(c->sv), reason, reason_len);
		return 1;
	}
	*out_r = c->chosen;
	return 0;
}

static void smtp_cli_sieve_after(void *arg, const struct md_target *targets, size_t n)
{
	struct smtp_cli_sieve *c = arg;
	bool kick = false; /* the daemon's scan finds what was queued */

	(void)n;
	for (size_t i = 0; i < smtp_sieve_owners(c->sv); i++)
		if (smtp_sieve_owner_stored(c->sv, i, targets))
			smtp_sieve_send(c->sv, i, &kick);
}

static void smtp_cli_sieve_done(void *arg)
{
	struct smtp_cli_sieve *c = arg;

	smtp_sieve_free(c->sv);
	free(c->chosen);
	free(c);
}

int smtp_cli_sieve_filter(const struct config *cfg, struct auth *auth,
			  struct md_deliver_filter *f)
{
	struct smtp_cli_sieve *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	c->ctx.cfg = cfg;
	c->ctx.auth = auth;
	f->plan = smtp_cli_sieve_plan;
	f->after = smtp_cli_sieve_after;
	f->done = smtp_cli_sieve_done;
	f->arg = c;
	return 0;
}
