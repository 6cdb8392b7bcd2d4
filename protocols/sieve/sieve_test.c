/* The tests of a run (RFC 5228 §5, RFC 5173 body, RFC 5229 string, RFC
 * 5232 hasflag).  Each value of the message is compared with each key
 * until one matches (§2.7); a successful :matches leaves its captures as
 * the match variables (RFC 5229 §3.2).  Keys and names go through
 * variable expansion first.
 */
#include "sieve_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The keys of a test, expanded. */
struct sv_keys {
	char **s;
	size_t *len;
	size_t n;
};

static void sv_keys_free(struct sv_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->s[i]);
	free(k->s);
	free(k->len);
}

static int sv_keys_load(struct sv_run *r, const struct sv_arg *a, int line, struct sv_keys *k)
{
	k->s = calloc(a->n_strs + 1, sizeof(*k->s));
	k->len = calloc(a->n_strs + 1, sizeof(*k->len));
	k->n = 0;
	if (k->s == NULL || k->len == NULL)
		return sv_runtime_error(r, line, "out of memory");
	for (size_t i = 0; i < a->n_strs; i++) {
		k->s[i] = sv_expand(r, &a->strs[i], line, &k->len[i]);
		if (k->s[i] == NULL)
			return -1;
		k->n++;
	}
	return 0;
}

/* What a comparison callback needs. */
struct sv_cmp_ctx {
	struct sv_run *r;
	const struct sv_node *t;
	const struct sv_keys *keys;
	bool matched;
};

/* Compare one value with every key: 1 on a match (stops the walk). */
static int sv_cmp_value(void *arg, const char *value, size_t len)
{
	struct sv_cmp_ctx *c = arg;
	struct sv_run *r = c->r;
	const struct sv_node *t = c->t;

	for (size_t i = 0; i < c->keys->n; i++) {
		char *caps[SIEVE_MATCH_VARS] = { 0 };
		bool want_caps = r->script->variables && t->match == SV_MATCH_MATCHES;
		bool ok = sv_compare(t->match, t->comparator, value, len, c->keys->s[i],
				     c->keys->len[i], &r->steps, want_caps ? caps : NULL);
		if (r->steps > SIEVE_STEPS_MAX) {
			for (int k = 0; k < SIEVE_MATCH_VARS; k++)
				free(caps[k]);
			sv_runtime_error(r, t->line, "too much matching work");
			return -1;
		}
		if (ok) {
			if (want_caps)
				for (int k = 0; k < SIEVE_MATCH_VARS; k++) {
					free(r->caps[k]);
					r->caps[k] = caps[k];
				}
			c->matched = true;
			return 1;
		}
	}
	return 0;
}

/* For address tests: each address of a header value. */
static int sv_cmp_addresses(void *arg, const char *value, size_t len)
{
	struct sv_cmp_ctx *c = arg;

	return sv_address_each(value, len, c->t->addrpart, sv_cmp_value, c);
}

/* The names of a header/address/exists test, expanded, one at a time. */
static int sv_each_name(struct sv_run *r, const struct sv_node *t, const struct sv_arg *names,
			int (*fn)(struct sv_run *r, const char *name, void *ctx), void *ctx)
{
	for (size_t i = 0; i < names->n_strs; i++) {
		size_t len;
		char *name = sv_expand(r, &names->strs[i], t->line, &len);
		int rc;
		if (name == NULL)
			return -1;
		rc = fn(r, name, ctx);
		free(name);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int sv_header_name(struct sv_run *r, const char *name, void *ctx)
{
	struct sv_cmp_ctx *c = ctx;
	int rc = sv_header_each(r->msg, name, c->t->id == SV_ADDRESS ? sv_cmp_addresses :
				sv_cmp_value, c);

	return rc < 0 || r->failed ? -1 : rc;
}

static int sv_envelope_name(struct sv_run *r, const char *name, void *ctx)
{
	struct sv_cmp_ctx *c = ctx;
	const char *v = strcasecmp(name, "from") == 0 ? r->msg->envelope_from :
			strcasecmp(name, "to") == 0 ? r->msg->envelope_to : NULL;
	int rc;

	if (v == NULL)
		return 0;
	if (v[0] == '\0')
		rc = sv_cmp_value(c, "", 0); /* the null reverse-path (RFC 5228 §5.4) */
	else
		rc = sv_address_part(v, strlen(v), c->t->addrpart, sv_cmp_value, c);
	return rc < 0 || r->failed ? -1 : rc;
}

static int sv_found(void *ctx, const char *v, size_t len)
{
	(void)v;
	(void)len;
	*(bool *)ctx = true;
	return 1;
}

static int sv_exists_name(struct sv_run *r, const char *name, void *ctx)
{
	bool found = false;

	(void)ctx;
	if (sv_header_each(r->msg, name, sv_found, &found) < 0)
		return -1;
	return found ? 0 : 2; /* 2: one is missing */
}

static int sv_mailbox_name(struct sv_run *r, const char *name, void *ctx)
{
	bool exists;

	(void)ctx;
	if (strcasecmp(name, "INBOX") == 0)
		exists = true;
	else
		exists = r->msg->mailbox_exists != NULL &&
			 r->msg->mailbox_exists(r->msg->mailbox_ctx, name);
	return exists ? 0 : 2; /* 2: one is missing */
}

/* Compare the values of a list of strings (string test, hasflag). */
static int sv_cmp_strings(struct sv_cmp_ctx *c, const struct sv_arg *src)
{
	for (size_t i = 0; i < src->n_strs; i++) {
		size_t len;
		char *v = sv_expand(c->r, &src->strs[i], c->t->line, &len);
		int rc;
		if (v == NULL)
			return -1;
		rc = sv_cmp_value(c, v, len);
		free(v);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* RFC 5232 §4: each flag of the variables (or of the internal one)
 * compared on its own. */
static int sv_cmp_flags(struct sv_cmp_ctx *c)
{
	struct sv_run *r = c->r;
	const struct sv_node *t = c->t;
	size_t nvars = t->n_pos == 2 ? t->pos[0]->n_strs : 1;

	for (size_t v = 0; v < nvars; v++) {
		const char *list = t->n_pos == 2 ? sv_var_get(r, t->pos[0]->strs[v].s) :
				   r->flags != NULL ? r->flags : "";
		size_t n;
		char **flags = sv_flags_split(r, list, &n, t->line);
		int rc = 0;
		if (r->failed)
			return -1;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = sv_cmp_value(c, flags[i], strlen(flags[i]));
		for (size_t i = 0; i < n; i++)
			free(flags[i]);
		free(flags);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* The body as the test sees it (RFC 5173 §5): :raw the octets after the
 * header, :text and :content the selected parts decoded (sieve_body.c). */
static int sv_body_value(struct sv_cmp_ctx *c)
{
	struct sv_run *r = c->r;
	const struct sv_node *t = c->t;

	if (t->transform == SV_BODY_RAW)
		return sv_cmp_value(c, r->msg->body != NULL ? r->msg->body : "", r->msg->body_len);
	return sv_body_each(r->msg, t->transform == SV_BODY_CONTENT ? t->content_types : NULL,
			    sv_cmp_value, c);
}

/* A test with values and keys; 1 / 0 / -1. */
static int sv_test_compare(struct sv_run *r, const struct sv_node *t)
{
	struct sv_keys keys = { 0 };
	struct sv_cmp_ctx c = { .r = r, .t = t, .keys = &keys };
	const struct sv_arg *key_arg = t->pos[t->n_pos - 1];
	int rc;

	if (sv_keys_load(r, key_arg, t->line, &keys) < 0) {
		sv_keys_free(&keys);
		return -1;
	}
	switch (t->id) {
	case SV_HEADER:
	case SV_ADDRESS:
		rc = sv_each_name(r, t, t->pos[0], sv_header_name, &c);
		break;
	case SV_ENVELOPE:
		rc = sv_each_name(r, t, t->pos[0], sv_envelope_name, &c);
		break;
	case SV_STRING:
		rc = sv_cmp_strings(&c, t->pos[0]);
		break;
	case SV_HASFLAG:
		rc = sv_cmp_flags(&c);
		break;
	case SV_BODY:
		rc = sv_body_value(&c);
		break;
	default:
		rc = sv_runtime_error(r, t->line, "not a comparing test");
		break;
	}
	sv_keys_free(&keys);
	if (rc < 0 || r->failed)
		return -1;
	return c.matched ? 1 : 0;
}

int sv_test(struct sv_run *r, const struct sv_node *t, int depth)
{
	int rc;

	if (depth > 2 * SIEVE_NESTING_MAX)
		return sv_runtime_error(r, t->line, "nested too deeply");
	switch (t->id) {
	case SV_TRUE:
		return 1;
	case SV_FALSE:
		return 0;
	case SV_NOT:
		rc = sv_test(r, &t->tests[0], depth + 1);
		return rc < 0 ? -1 : !rc;
	case SV_ALLOF:
	case SV_ANYOF:
		/* RFC 5228 §5.2-§5.3: evaluation stops at the first result
		 * that decides */
		for (size_t i = 0; i < t->n_tests; i++) {
			rc = sv_test(r, &t->tests[i], depth + 1);
			if (rc < 0)
				return -1;
			if (t->id == SV_ALLOF && rc == 0)
				return 0;
			if (t->id == SV_ANYOF && rc == 1)
				return 1;
		}
		return t->id == SV_ALLOF ? 1 : 0;
	case SV_SIZE:
		return t->over ? r->msg->size > t->limit : r->msg->size < t->limit;
	case SV_EXISTS:
		rc = sv_each_name(r, t, t->pos[0], sv_exists_name, NULL);
		return rc < 0 ? -1 : rc == 0;
	case SV_MAILBOXEXISTS:
		/* RFC 5490 §3.1: true when every one exists */
		rc = sv_each_name(r, t, t->pos[0], sv_mailbox_name, NULL);
		return rc < 0 ? -1 : rc == 0;
	default:
		return sv_test_compare(r, t);
	}
}
