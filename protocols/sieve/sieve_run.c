/* The interpreter: runs a checked script against one message and collects
 * the actions (RFC 5228 §2.10, §4).
 *
 * Rules kept here:
 *  - keep, fileinto (without :copy), redirect (without :copy), discard and
 *    reject cancel the implicit keep (§2.10.2, RFC 3894 §3); at the end an
 *    implicit keep not cancelled adds a KEEP with the current flags.
 *  - The same folder twice is one action (§2.10.3: duplicates are
 *    ignored); keep is the folder INBOX.
 *  - reject cannot be taken with keep, fileinto, redirect or vacation, nor
 *    twice; vacation once (RFC 5429 §2.2, RFC 5230 §4.7): a runtime error.
 *  - At most SIEVE_ACTIONS_MAX actions, SIEVE_REDIRECTS_MAX redirects.
 * A runtime error drops every action: the caller keeps the message in
 * INBOX and logs the error (issue 14).
 */
#include "sieve_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int sv_runtime_error(struct sv_run *r, int line, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return -1;
	r->failed = true;
	r->res->error_line = line;
	va_start(ap, fmt);
	vsnprintf(r->res->error, sizeof(r->res->error), fmt, ap);
	va_end(ap);
	return -1;
}

static void sv_action_clear(struct sieve_action *a)
{
	free(a->mailbox);
	free(a->address);
	free(a->text);
	free(a->subject);
	free(a->from);
	free(a->handle);
	for (size_t i = 0; i < a->n_flags; i++)
		free(a->flags[i]);
	free(a->flags);
	for (size_t i = 0; i < a->n_addresses; i++)
		free(a->addresses[i]);
	free(a->addresses);
	memset(a, 0, sizeof(*a));
}

void sieve_result_free(struct sieve_result *result)
{
	for (size_t i = 0; i < result->n_actions; i++)
		sv_action_clear(&result->actions[i]);
	free(result->actions);
	result->actions = NULL;
	result->n_actions = 0;
}

static bool sv_has_kind(const struct sv_run *r, enum sieve_action_kind kind)
{
	for (size_t i = 0; i < r->res->n_actions; i++)
		if (r->res->actions[i].kind == kind)
			return true;
	return false;
}

/* A new, zeroed action at the end of the result; NULL after a runtime
 * error. */
static struct sieve_action *sv_action_new(struct sv_run *r, enum sieve_action_kind kind,
					  int line)
{
	struct sieve_result *res = r->res;
	struct sieve_action *a;

	if (res->n_actions >= SIEVE_ACTIONS_MAX) {
		sv_runtime_error(r, line, "too many actions (at most %d)", SIEVE_ACTIONS_MAX);
		return NULL;
	}
	a = realloc(res->actions, (res->n_actions + 1) * sizeof(*a));
	if (a == NULL) {
		sv_runtime_error(r, line, "out of memory");
		return NULL;
	}
	res->actions = a;
	a = &a[res->n_actions++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->line = line;
	return a;
}

/* RFC 5429 §2.2: reject goes with no delivery and no reply. */
static int sv_check_reject_conflict(struct sv_run *r, enum sieve_action_kind kind, int line)
{
	if (kind == SIEVE_ACTION_REJECT && r->reject_taken)
		return sv_runtime_error(r, line, "reject taken twice");
	if (kind == SIEVE_ACTION_REJECT &&
	    (sv_has_kind(r, SIEVE_ACTION_KEEP) || sv_has_kind(r, SIEVE_ACTION_FILEINTO) ||
	     sv_has_kind(r, SIEVE_ACTION_REDIRECT) || sv_has_kind(r, SIEVE_ACTION_VACATION)))
		return sv_runtime_error(r, line, "reject cannot follow keep, fileinto, redirect "
					"or vacation");
	if (kind != SIEVE_ACTION_REJECT && r->reject_taken)
		return sv_runtime_error(r, line, "reject cannot be combined with keep, fileinto, "
					"redirect or vacation");
	return 0;
}

/* The flags for keep/fileinto: :flags if given, else the internal
 * variable (RFC 5232 §3-§5). */
static int sv_set_action_flags(struct sv_run *r, struct sieve_action *a, const struct sv_node *n)
{
	char *list = NULL;
	const char *src;

	if (n != NULL && n->flags != NULL) {
		list = sv_flags_of_arg(r, n->flags, n->line);
		if (list == NULL)
			return -1;
		src = list;
	} else {
		src = r->flags != NULL ? r->flags : "";
	}
	a->flags = sv_flags_split(r, src, &a->n_flags, a->line);
	free(list);
	return r->failed ? -1 : 0;
}

/* keep, or fileinto "mailbox"; merged with an earlier one for the same
 * folder (its flags are replaced by the later ones). */
static int sv_store_action(struct sv_run *r, const struct sv_node *n, const char *mailbox)
{
	bool inbox = mailbox == NULL || strcasecmp(mailbox, "INBOX") == 0;
	struct sieve_action *a = NULL;

	if (sv_check_reject_conflict(r, SIEVE_ACTION_KEEP, n != NULL ? n->line : 0) < 0)
		return -1;
	for (size_t i = 0; i < r->res->n_actions && a == NULL; i++) {
		struct sieve_action *o = &r->res->actions[i];
		if ((inbox && o->kind == SIEVE_ACTION_KEEP) ||
		    (!inbox && o->kind == SIEVE_ACTION_FILEINTO && strcmp(o->mailbox, mailbox) == 0))
			a = o;
	}
	if (a != NULL) {
		for (size_t i = 0; i < a->n_flags; i++)
			free(a->flags[i]);
		free(a->flags);
		a->flags = NULL;
		a->n_flags = 0;
	} else {
		a = sv_action_new(r, inbox ? SIEVE_ACTION_KEEP : SIEVE_ACTION_FILEINTO,
				  n != NULL ? n->line : 0);
		if (a == NULL)
			return -1;
		if (!inbox && (a->mailbox = strdup(mailbox)) == NULL)
			return sv_runtime_error(r, a->line, "out of memory");
	}
	if (n != NULL && n->create)
		a->create = true;
	return sv_set_action_flags(r, a, n);
}

/* An expanded single-string argument; NULL after a runtime error. */
static char *sv_arg_string(struct sv_run *r, const struct sv_arg *a, int line)
{
	size_t len;

	return a != NULL ? sv_expand(r, &a->strs[0], line, &len) : NULL;
}

static int sv_cmd_redirect(struct sv_run *r, const struct sv_node *n)
{
	struct sieve_action *a;
	char *addr;

	if (sv_check_reject_conflict(r, SIEVE_ACTION_REDIRECT, n->line) < 0)
		return -1;
	if (r->redirects >= SIEVE_REDIRECTS_MAX)
		return sv_runtime_error(r, n->line, "too many redirects (at most %d)",
					SIEVE_REDIRECTS_MAX);
	addr = sv_arg_string(r, n->pos[0], n->line);
	if (addr == NULL)
		return -1;
	/* RFC 5228 §4.2: the address must be a valid mailbox */
	if (strchr(addr, '@') == NULL || strpbrk(addr, " \t\r\n<>,;\"") != NULL ||
	    strlen(addr) > 254) {
		sv_runtime_error(r, n->line, "redirect to an invalid address \"%.80s\"", addr);
		free(addr);
		return -1;
	}
	/* duplicates are one action (§2.10.3) */
	for (size_t i = 0; i < r->res->n_actions; i++)
		if (r->res->actions[i].kind == SIEVE_ACTION_REDIRECT &&
		    strcasecmp(r->res->actions[i].address, addr) == 0) {
			free(addr);
			r->implicit_keep = r->implicit_keep && n->copy;
			return 0;
		}
	a = sv_action_new(r, SIEVE_ACTION_REDIRECT, n->line);
	if (a == NULL) {
		free(addr);
		return -1;
	}
	a->address = addr;
	r->redirects++;
	if (!n->copy)
		r->implicit_keep = false;
	return 0;
}

static int sv_cmd_reject(struct sv_run *r, const struct sv_node *n)
{
	struct sieve_action *a;

	if (sv_check_reject_conflict(r, SIEVE_ACTION_REJECT, n->line) < 0)
		return -1;
	a = sv_action_new(r, SIEVE_ACTION_REJECT, n->line);
	if (a == NULL || (a->text = sv_arg_string(r, n->pos[0], n->line)) == NULL)
		return -1;
	a->ereject = n->id == SV_EREJECT;
	r->reject_taken = true;
	r->implicit_keep = false;
	return 0;
}

static int sv_cmd_vacation(struct sv_run *r, const struct sv_node *n)
{
	struct sieve_action *a;

	if (r->vacation_taken)
		return sv_runtime_error(r, n->line, "vacation taken twice");
	if (sv_check_reject_conflict(r, SIEVE_ACTION_VACATION, n->line) < 0)
		return -1;
	a = sv_action_new(r, SIEVE_ACTION_VACATION, n->line);
	if (a == NULL || (a->text = sv_arg_string(r, n->pos[0], n->line)) == NULL)
		return -1;
	r->vacation_taken = true;
	a->days = n->days != 0 ? (unsigned)n->days : SIEVE_VACATION_DAYS_DEFAULT;
	a->mime = n->mime;
	if ((n->subject != NULL && (a->subject = sv_arg_string(r, n->subject, n->line)) == NULL) ||
	    (n->from != NULL && (a->from = sv_arg_string(r, n->from, n->line)) == NULL) ||
	    (n->handle != NULL && (a->handle = sv_arg_string(r, n->handle, n->line)) == NULL))
		return -1;
	if (n->addresses != NULL) {
		a->addresses = calloc(n->addresses->n_strs, sizeof(*a->addresses));
		if (a->addresses == NULL)
			return sv_runtime_error(r, n->line, "out of memory");
		for (size_t i = 0; i < n->addresses->n_strs; i++) {
			size_t len;
			a->addresses[i] = sv_expand(r, &n->addresses->strs[i], n->line, &len);
			if (a->addresses[i] == NULL)
				return -1;
			a->n_addresses++;
		}
	}
	return 0;
}

static int sv_run_command(struct sv_run *r, const struct sv_node *c)
{
	char *mailbox;
	int rc;

	switch (c->id) {
	case SV_REQUIRE:
		return 0;
	case SV_STOP:
		r->stopped = true;
		return 0;
	case SV_KEEP:
		r->implicit_keep = false;
		return sv_store_action(r, c, NULL);
	case SV_DISCARD:
		r->implicit_keep = false;
		return 0;
	case SV_FILEINTO:
		mailbox = sv_arg_string(r, c->pos[0], c->line);
		if (mailbox == NULL)
			return -1;
		if (mailbox[0] == '\0') {
			free(mailbox);
			return sv_runtime_error(r, c->line, "fileinto an empty mailbox name");
		}
		rc = sv_store_action(r, c, mailbox);
		free(mailbox);
		if (!c->copy)
			r->implicit_keep = false;
		return rc;
	case SV_REDIRECT:
		return sv_cmd_redirect(r, c);
	case SV_REJECT:
	case SV_EREJECT:
		return sv_cmd_reject(r, c);
	case SV_VACATION:
		return sv_cmd_vacation(r, c);
	case SV_SETFLAG:
	case SV_ADDFLAG:
	case SV_REMOVEFLAG:
		return sv_cmd_flags(r, c);
	case SV_SET:
		return sv_cmd_set(r, c);
	default:
		return sv_runtime_error(r, c->line, "%s is not a command", c->name);
	}
}

/* Run commands; an if starts a chain with the elsif/else after it. */
static int sv_run_block(struct sv_run *r, const struct sv_node *cmds, size_t n, int depth)
{
	if (depth > SIEVE_NESTING_MAX)
		return sv_runtime_error(r, n > 0 ? cmds[0].line : 0, "nested too deeply");
	for (size_t i = 0; i < n && !r->stopped; i++) {
		const struct sv_node *c = &cmds[i];
		if (++r->commands > SIEVE_COMMANDS_RUN_MAX)
			return sv_runtime_error(r, c->line, "too many commands run");
		if (c->id == SV_IF) {
			/* the chain: if, any elsif, an else; the first true runs */
			bool taken = false;
			size_t k = i;
			do {
				const struct sv_node *b = &cmds[k];
				if (!taken) {
					int t = b->id == SV_ELSE ? 1 : sv_test(r, &b->tests[0], 0);
					if (t < 0)
						return -1;
					taken = t == 1;
					if (taken && sv_run_block(r, b->block, b->n_block,
								  depth + 1) < 0)
						return -1;
				}
				k++;
			} while (k < n && cmds[k - 1].id != SV_ELSE &&
				 (cmds[k].id == SV_ELSIF || cmds[k].id == SV_ELSE));
			i = k - 1;
			continue;
		}
		if (c->id == SV_ELSIF || c->id == SV_ELSE)
			continue; /* the checker makes these follow an if */
		if (sv_run_command(r, c) < 0)
			return -1;
	}
	return 0;
}

int sieve_run(const struct sieve_script *s, const struct sieve_message *msg,
	      struct sieve_result *result)
{
	struct sv_run *r = calloc(1, sizeof(*r));
	int rc;

	memset(result, 0, sizeof(*result));
	if (r == NULL) {
		snprintf(result->error, sizeof(result->error), "out of memory");
		return -1;
	}
	r->script = s;
	r->msg = msg;
	r->res = result;
	r->implicit_keep = true;
	rc = sv_run_block(r, s->cmds, s->n_cmds, 0);
	if (rc == 0 && !r->failed && r->implicit_keep)
		rc = sv_store_action(r, NULL, NULL);
	if (rc < 0 || r->failed) {
		/* no partial result: the caller keeps the message */
		char error[SIEVE_ERROR_MAX];
		int line = result->error_line;
		memcpy(error, result->error, sizeof(error));
		sieve_result_free(result);
		memcpy(result->error, error, sizeof(error));
		result->error_line = line;
		if (result->error[0] == '\0')
			snprintf(result->error, sizeof(result->error), "runtime error");
		rc = -1;
	}
	for (size_t i = 0; i < r->n_vars; i++)
		free(r->vars[i].value);
	for (int i = 0; i < SIEVE_MATCH_VARS; i++)
		free(r->caps[i]);
	free(r->flags);
	free(r);
	return rc;
}
