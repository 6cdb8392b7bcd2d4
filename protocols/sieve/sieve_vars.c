/* Variables (RFC 5229) and IMAP flag lists (RFC 5232) during one run.
 *
 * "${name}" in a string is replaced by the variable's value, "${N}" by a
 * match variable of the last successful :matches (RFC 5229 §3.1-§3.2);
 * an unknown variable gives "", and text that is not a valid reference
 * stays as it is.  Names ignore case.  A flag list is a string of flags
 * separated by spaces; imap4flags' internal variable is r->flags and a
 * named one is an ordinary variable.
 *
 * Limits: SIEVE_VARIABLES_MAX variables, SIEVE_STRING_MAX octets per
 * value, SIEVE_FLAGS_MAX flags per list; past them, a runtime error.
 */
#include "sieve_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct sv_variable *sv_var_find(struct sv_run *r, const char *name)
{
	for (size_t i = 0; i < r->n_vars; i++)
		if (strcasecmp(r->vars[i].name, name) == 0)
			return &r->vars[i];
	return NULL;
}

const char *sv_var_get(struct sv_run *r, const char *name)
{
	const struct sv_variable *v = sv_var_find(r, name);

	return v != NULL && v->value != NULL ? v->value : "";
}

int sv_var_set(struct sv_run *r, const char *name, const char *value, size_t len, int line)
{
	struct sv_variable *v = sv_var_find(r, name);
	char *copy;

	if (len > SIEVE_STRING_MAX)
		return sv_runtime_error(r, line, "value of \"%.64s\" too long", name);
	if (v == NULL) {
		if (r->n_vars >= SIEVE_VARIABLES_MAX)
			return sv_runtime_error(r, line, "too many variables (at most %d)",
						SIEVE_VARIABLES_MAX);
		v = &r->vars[r->n_vars++];
		snprintf(v->name, sizeof(v->name), "%s", name);
	}
	copy = malloc(len + 1);
	if (copy == NULL)
		return sv_runtime_error(r, line, "out of memory");
	memcpy(copy, value, len);
	copy[len] = '\0';
	free(v->value);
	v->value = copy;
	v->len = len;
	return 0;
}

/* The value of the reference "${...}" whose name is [p, p+n): NULL when
 * the name is not a valid reference (then the text stays). */
static const char *sv_reference(struct sv_run *r, const char *p, size_t n)
{
	char name[SIEVE_IDENT_MAX + 1];
	bool digits = n > 0;

	if (n == 0 || n > SIEVE_IDENT_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++)
		digits = digits && isdigit((unsigned char)p[i]);
	if (digits) {
		unsigned long idx = strtoul(p, NULL, 10);
		if (idx >= SIEVE_MATCH_VARS)
			return ""; /* RFC 5229 §3.2: unset match variables are "" */
		return r->caps[idx] != NULL ? r->caps[idx] : "";
	}
	if (!sv_valid_variable_name(p, n))
		return NULL;
	memcpy(name, p, n);
	name[n] = '\0';
	return sv_var_get(r, name);
}

char *sv_expand(struct sv_run *r, const struct sv_string *str, int line, size_t *len_r)
{
	const char *s = str->s;
	size_t cap = str->len + 1, o = 0;
	char *out;

	if (!r->script->variables || memchr(s, '$', str->len) == NULL) {
		out = strndup(s, str->len);
		if (out == NULL)
			sv_runtime_error(r, line, "out of memory");
		*len_r = str->len;
		return out;
	}
	out = malloc(cap);
	for (size_t i = 0; out != NULL && i < str->len;) {
		const char *val = NULL, *close;
		size_t add, skip = 1;
		if (s[i] == '$' && i + 1 < str->len && s[i + 1] == '{' &&
		    (close = memchr(s + i + 2, '}', str->len - i - 2)) != NULL &&
		    (val = sv_reference(r, s + i + 2, (size_t)(close - s - i - 2))) != NULL)
			skip = (size_t)(close - s - i) + 1;
		if (val == NULL)
			val = s + i;
		add = skip > 1 ? strlen(val) : 1;
		if (o + add > SIEVE_STRING_MAX) {
			free(out);
			sv_runtime_error(r, line, "string too long after expansion");
			return NULL;
		}
		if (o + add + 1 > cap) {
			char *n;
			while (o + add + 1 > cap)
				cap *= 2;
			n = realloc(out, cap);
			if (n == NULL) {
				free(out);
				out = NULL;
				break;
			}
			out = n;
		}
		memcpy(out + o, val, add);
		o += add;
		i += skip;
	}
	if (out == NULL) {
		sv_runtime_error(r, line, "out of memory");
		return NULL;
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

/* Characters (UTF-8) in a string, for :length. */
static size_t sv_utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

int sv_cmd_set(struct sv_run *r, const struct sv_node *n)
{
	size_t len, qlen = 0;
	char *v = sv_expand(r, &n->pos[1]->strs[0], n->line, &len), *q;
	int rc;

	if (v == NULL)
		return -1;
	/* RFC 5229 §4: by precedence, lower/upper first, :length last */
	for (size_t i = 0; i < len; i++) {
		if (n->modifiers & SV_MOD_LOWER)
			v[i] = (char)tolower((unsigned char)v[i]);
		if (n->modifiers & SV_MOD_UPPER)
			v[i] = (char)toupper((unsigned char)v[i]);
	}
	if (len > 0 && (n->modifiers & SV_MOD_LOWERFIRST))
		v[0] = (char)tolower((unsigned char)v[0]);
	if (len > 0 && (n->modifiers & SV_MOD_UPPERFIRST))
		v[0] = (char)toupper((unsigned char)v[0]);
	if (n->modifiers & SV_MOD_QUOTEWILDCARD) {
		q = malloc(2 * len + 1);
		if (q == NULL) {
			free(v);
			return sv_runtime_error(r, n->line, "out of memory");
		}
		for (size_t i = 0; i < len; i++) {
			if (v[i] == '*' || v[i] == '?' || v[i] == '\\')
				q[qlen++] = '\\';
			q[qlen++] = v[i];
		}
		free(v);
		v = q;
		len = qlen;
	}
	if (n->modifiers & SV_MOD_LENGTH) {
		char num[32];
		int k = snprintf(num, sizeof(num), "%zu", sv_utf8_chars(v, len));
		rc = sv_var_set(r, n->pos[0]->strs[0].s, num, (size_t)k, n->line);
	} else {
		rc = sv_var_set(r, n->pos[0]->strs[0].s, v, len, n->line);
	}
	free(v);
	return rc;
}

/* ---- flags ------------------------------------------------------------ */

char **sv_flags_split(struct sv_run *r, const char *list, size_t *n_r, int line)
{
	char **flags = NULL;
	size_t n = 0;
	const char *p = list;

	*n_r = 0;
	while (*p != '\0') {
		size_t len;
		bool dup = false;
		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		for (size_t i = 0; i < n && !dup; i++)
			dup = strlen(flags[i]) == len && strncasecmp(flags[i], p, len) == 0;
		if (!dup) {
			char **grown;
			if (n >= SIEVE_FLAGS_MAX) {
				sv_runtime_error(r, line, "too many flags (at most %d)",
						 SIEVE_FLAGS_MAX);
				goto fail;
			}
			grown = realloc(flags, (n + 1) * sizeof(*flags));
			if (grown == NULL || (grown[n] = strndup(p, len)) == NULL) {
				flags = grown != NULL ? grown : flags;
				sv_runtime_error(r, line, "out of memory");
				goto fail;
			}
			flags = grown;
			n++;
		}
		p += len;
	}
	*n_r = n;
	return flags;
fail:
	for (size_t i = 0; i < n; i++)
		free(flags[i]);
	free(flags);
	return NULL;
}

static void sv_flags_free(char **flags, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(flags[i]);
	free(flags);
}

/* The flags joined by single spaces; NULL (runtime error) when out of
 * memory. */
static char *sv_flags_join(struct sv_run *r, char **flags, size_t n, int line)
{
	size_t len = 0, o = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		len += strlen(flags[i]) + 1;
	out = malloc(len + 1);
	if (out == NULL) {
		sv_runtime_error(r, line, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(out + o, "%s%s", i > 0 ? " " : "", flags[i]);
	out[o] = '\0';
	return out;
}

char *sv_flags_of_arg(struct sv_run *r, const struct sv_arg *a, int line)
{
	size_t total = 0;
	char *joined = NULL;

	for (size_t i = 0; i < a->n_strs; i++) {
		size_t len;
		char *v = sv_expand(r, &a->strs[i], line, &len), *grown;
		if (v == NULL) {
			free(joined);
			return NULL;
		}
		grown = realloc(joined, total + len + 2);
		if (grown == NULL || total + len > SIEVE_STRING_MAX) {
			free(v);
			free(grown != NULL ? grown : joined);
			sv_runtime_error(r, line, "flag list too long");
			return NULL;
		}
		joined = grown;
		if (total > 0)
			joined[total++] = ' ';
		memcpy(joined + total, v, len);
		total += len;
		joined[total] = '\0';
		free(v);
	}
	if (joined == NULL)
		joined = strdup("");
	if (joined == NULL)
		sv_runtime_error(r, line, "out of memory");
	return joined;
}

/* RFC 5232 §5: setflag replaces, addflag adds, removeflag removes (flags
 * compare without case). */
int sv_cmd_flags(struct sv_run *r, const struct sv_node *n)
{
	const char *var = n->n_pos == 2 ? n->pos[0]->strs[0].s : NULL;
	const struct sv_arg *list = n->pos[n->n_pos - 1];
	char *given = sv_flags_of_arg(r, list, n->line), *current, *joined;
	char **have = NULL, **args = NULL;
	size_t n_have = 0, n_args = 0;
	int rc = -1;

	if (given == NULL)
		return -1;
	current = n->id == SV_SETFLAG ? strdup("") : strdup(var != NULL ? sv_var_get(r, var) :
							   r->flags != NULL ? r->flags : "");
	if (current == NULL) {
		free(given);
		return sv_runtime_error(r, n->line, "out of memory");
	}
	if (n->id == SV_REMOVEFLAG) {
		size_t kept = 0;
		have = sv_flags_split(r, current, &n_have, n->line);
		args = sv_flags_split(r, given, &n_args, n->line);
		if (r->failed)
			goto out;
		for (size_t i = 0; i < n_have; i++) {
			bool removed = false;
			for (size_t k = 0; k < n_args && !removed; k++)
				removed = strcasecmp(have[i], args[k]) == 0;
			if (removed)
				free(have[i]);
			else
				have[kept++] = have[i];
		}
		n_have = kept;
	} else {
		char *both = malloc(strlen(current) + strlen(given) + 2);
		if (both == NULL) {
			sv_runtime_error(r, n->line, "out of memory");
			goto out;
		}
		sprintf(both, "%s %s", current, given);
		have = sv_flags_split(r, both, &n_have, n->line);
		free(both);
		if (r->failed)
			goto out;
	}
	joined = sv_flags_join(r, have, n_have, n->line);
	if (joined == NULL)
		goto out;
	if (var != NULL) {
		rc = sv_var_set(r, var, joined, strlen(joined), n->line);
		free(joined);
	} else {
		free(r->flags);
		r->flags = joined;
		rc = 0;
	}
out:
	sv_flags_free(have, n_have);
	sv_flags_free(args, n_args);
	free(current);
	free(given);
	return rc;
}
