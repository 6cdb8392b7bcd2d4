/* The checks after parsing (RFC 5228 §2.10.6: a script with an error does
 * not run at all): each command and test is known and its extension
 * required (§3.2), its tagged arguments are allowed and given once, its
 * positional arguments have the right types and number, if/elsif/else
 * are in order, require comes first.  The resolved options go into the
 * node (sieve_private.h), and sieve_compile() / sieve_extensions() live
 * here too.
 */
#include "sieve_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Extensions, in the order ManageSieve lists them. */
static const char *const sv_extension_names[] = {
	"body", "copy", "envelope", "ereject", "fileinto", "imap4flags",
	"mailbox", "reject", "vacation", "variables",
};
#define SV_EXT_COUNT (sizeof(sv_extension_names) / sizeof(sv_extension_names[0]))
/* comparators may be required too (RFC 5228 §2.7.3) */
static const char *const sv_comparator_names[] = { "comparator-i;octet",
						   "comparator-i;ascii-casemap" };

const char *sieve_extensions(void)
{
	return "body copy envelope ereject fileinto imap4flags mailbox reject vacation variables";
}

/* Tag groups a command or test may accept. */
#define SV_T_MATCH      0x001 /* :is :contains :matches */
#define SV_T_COMPARATOR 0x002 /* :comparator "name" */
#define SV_T_ADDRPART   0x004 /* :all :localpart :domain */
#define SV_T_SIZE       0x008 /* :over n / :under n */
#define SV_T_BODY       0x010 /* :raw :text :content [list] */
#define SV_T_COPY       0x020 /* :copy */
#define SV_T_FLAGS      0x040 /* :flags [list] */
#define SV_T_VACATION   0x080 /* :days :subject :from :addresses :mime :handle */
#define SV_T_MODIFIERS  0x100 /* :lower :upper ... */
#define SV_T_CREATE     0x200 /* :create (RFC 5490 §3.2) */

/* Positional argument shapes: 's' one string, 'S' string list, 'n' number;
 * an upper-case shape followed by '?' in opt_first marks an optional
 * leading variable name (imap4flags). */
struct sv_spec {
	const char *name;
	enum sv_id id;
	bool test;
	const char *ext;      /* required extension, or NULL */
	unsigned tags;
	const char *pos;      /* positional shapes */
	bool opt_first;       /* the first positional may be left out */
	int tests;            /* 0 none, 1 one test, -1 a test list */
	bool block;
};

static const struct sv_spec sv_specs[] = {
	{ "require", SV_REQUIRE, false, NULL, 0, "S", false, 0, false },
	{ "if", SV_IF, false, NULL, 0, "", false, 1, true },
	{ "elsif", SV_ELSIF, false, NULL, 0, "", false, 1, true },
	{ "else", SV_ELSE, false, NULL, 0, "", false, 0, true },
	{ "stop", SV_STOP, false, NULL, 0, "", false, 0, false },
	{ "keep", SV_KEEP, false, NULL, SV_T_FLAGS, "", false, 0, false },
	{ "discard", SV_DISCARD, false, NULL, 0, "", false, 0, false },
	{ "fileinto", SV_FILEINTO, false, "fileinto", SV_T_COPY | SV_T_FLAGS | SV_T_CREATE, "s",
	  false, 0, false },
	{ "redirect", SV_REDIRECT, false, NULL, SV_T_COPY, "s", false, 0, false },
	{ "reject", SV_REJECT, false, "reject", 0, "s", false, 0, false },
	{ "ereject", SV_EREJECT, false, "ereject", 0, "s", false, 0, false },
	{ "vacation", SV_VACATION, false, "vacation", SV_T_VACATION, "s", false, 0, false },
	{ "setflag", SV_SETFLAG, false, "imap4flags", 0, "sS", true, 0, false },
	{ "addflag", SV_ADDFLAG, false, "imap4flags", 0, "sS", true, 0, false },
	{ "removeflag", SV_REMOVEFLAG, false, "imap4flags", 0, "sS", true, 0, false },
	{ "set", SV_SET, false, "variables", SV_T_MODIFIERS, "ss", false, 0, false },
	{ "address", SV_ADDRESS, true, NULL, SV_T_MATCH | SV_T_COMPARATOR | SV_T_ADDRPART, "SS",
	  false, 0, false },
	{ "envelope", SV_ENVELOPE, true, "envelope",
	  SV_T_MATCH | SV_T_COMPARATOR | SV_T_ADDRPART, "SS", false, 0, false },
	{ "header", SV_HEADER, true, NULL, SV_T_MATCH | SV_T_COMPARATOR, "SS", false, 0, false },
	{ "exists", SV_EXISTS, true, NULL, 0, "S", false, 0, false },
	{ "size", SV_SIZE, true, NULL, SV_T_SIZE, "", false, 0, false },
	{ "allof", SV_ALLOF, true, NULL, 0, "", false, -1, false },
	{ "anyof", SV_ANYOF, true, NULL, 0, "", false, -1, false },
	{ "not", SV_NOT, true, NULL, 0, "", false, 1, false },
	{ "true", SV_TRUE, true, NULL, 0, "", false, 0, false },
	{ "false", SV_FALSE, true, NULL, 0, "", false, 0, false },
	{ "body", SV_BODY, true, "body", SV_T_MATCH | SV_T_COMPARATOR | SV_T_BODY, "S", false, 0,
	  false },
	{ "hasflag", SV_HASFLAG, true, "imap4flags", SV_T_MATCH | SV_T_COMPARATOR, "SS", true, 0,
	  false },
	{ "string", SV_STRING, true, "variables", SV_T_MATCH | SV_T_COMPARATOR, "SS", false, 0,
	  false },
	{ "mailboxexists", SV_MAILBOXEXISTS, true, "mailbox", 0, "S", false, 0, false },
};

struct sv_checker {
	struct sieve_script *script;
	bool required[SV_EXT_COUNT];
	char *err;
	size_t errlen;
};

static int sv_fail(struct sv_checker *ck, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int sv_fail(struct sv_checker *ck, int line, const char *fmt, ...)
{
	char what[SIEVE_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ck->err, ck->errlen, "line %d: %s", line, what);
	return -1;
}

static int sv_ext_index(const char *name)
{
	for (size_t i = 0; i < SV_EXT_COUNT; i++)
		if (strcmp(sv_extension_names[i], name) == 0)
			return (int)i;
	return -1;
}

static const struct sv_spec *sv_spec_find(const char *name)
{
	for (size_t i = 0; i < sizeof(sv_specs) / sizeof(sv_specs[0]); i++)
		if (strcasecmp(sv_specs[i].name, name) == 0)
			return &sv_specs[i];
	return NULL;
}

/* RFC 5228 §3.2: an extension the implementation lacks is an error. */
static int sv_check_require(struct sv_checker *ck, const struct sv_node *n)
{
	const struct sv_arg *a = n->pos[0];

	for (size_t i = 0; i < a->n_strs; i++) {
		const char *ext = a->strs[i].s;
		int idx = sv_ext_index(ext);
		bool comparator = strcmp(ext, sv_comparator_names[0]) == 0 ||
				  strcmp(ext, sv_comparator_names[1]) == 0;
		if (idx < 0 && !comparator)
			return sv_fail(ck, n->line, "unsupported extension \"%.80s\"", ext);
		if (idx >= 0)
			ck->required[idx] = true;
	}
	ck->script->variables = ck->required[sv_ext_index("variables")];
	ck->script->imap4flags = ck->required[sv_ext_index("imap4flags")];
	return 0;
}

static bool sv_tag_is(const char *tag, const char *name)
{
	return strcasecmp(tag, name) == 0;
}

/* The argument after a tag, of the kind it needs. */
static const struct sv_arg *sv_tag_value(struct sv_checker *ck, const struct sv_node *n,
					 size_t *i, enum sv_arg_kind kind, bool single)
{
	const struct sv_arg *tag = &n->args[*i], *v;

	if (*i + 1 >= n->n_args || n->args[*i + 1].kind != kind ||
	    (single && kind == SV_ARG_STRINGS &&
	     (n->args[*i + 1].list || n->args[*i + 1].n_strs != 1))) {
		sv_fail(ck, tag->line, ":%s needs %s", tag->tag,
			kind == SV_ARG_NUMBER ? "a number" : single ? "a string" : "a string list");
		return NULL;
	}
	v = &n->args[++*i];
	return v;
}

/* One tagged argument of n (args[*i]); advances *i past its value. */
static int sv_check_tag(struct sv_checker *ck, struct sv_node *n, unsigned tags, size_t *i,
			unsigned *seen)
{
	const char *t = n->args[*i].tag;
	int line = n->args[*i].line;
	unsigned group = 0;

	if ((tags & SV_T_MATCH) && (sv_tag_is(t, "is") || sv_tag_is(t, "contains") ||
				    sv_tag_is(t, "matches"))) {
		group = SV_T_MATCH;
		n->match = sv_tag_is(t, "is") ? SV_MATCH_IS :
			   sv_tag_is(t, "contains") ? SV_MATCH_CONTAINS : SV_MATCH_MATCHES;
	} else if ((tags & SV_T_COMPARATOR) && sv_tag_is(t, "comparator")) {
		const struct sv_arg *v = sv_tag_value(ck, n, i, SV_ARG_STRINGS, true);
		group = SV_T_COMPARATOR;
		if (v == NULL)
			return -1;
		if (strcmp(v->strs[0].s, "i;octet") == 0)
			n->comparator = SV_CMP_OCTET;
		else if (strcmp(v->strs[0].s, "i;ascii-casemap") == 0)
			n->comparator = SV_CMP_CASEMAP;
		else
			return sv_fail(ck, line, "unsupported comparator \"%.80s\"",
				       v->strs[0].s);
	} else if ((tags & SV_T_ADDRPART) && (sv_tag_is(t, "all") || sv_tag_is(t, "localpart") ||
					      sv_tag_is(t, "domain"))) {
		group = SV_T_ADDRPART;
		n->addrpart = sv_tag_is(t, "all") ? SV_PART_ALL :
			      sv_tag_is(t, "localpart") ? SV_PART_LOCAL : SV_PART_DOMAIN;
	} else if ((tags & SV_T_SIZE) && (sv_tag_is(t, "over") || sv_tag_is(t, "under"))) {
		const struct sv_arg *v = sv_tag_value(ck, n, i, SV_ARG_NUMBER, true);
		group = SV_T_SIZE;
		if (v == NULL)
			return -1;
		n->over = sv_tag_is(t, "over");
		n->limit = v->number;
	} else if ((tags & SV_T_BODY) && (sv_tag_is(t, "raw") || sv_tag_is(t, "text") ||
					  sv_tag_is(t, "content"))) {
		group = SV_T_BODY;
		n->transform = sv_tag_is(t, "raw") ? SV_BODY_RAW :
			       sv_tag_is(t, "text") ? SV_BODY_TEXT : SV_BODY_CONTENT;
		if (n->transform == SV_BODY_CONTENT &&
		    (n->content_types = sv_tag_value(ck, n, i, SV_ARG_STRINGS, false)) == NULL)
			return -1;
	} else if ((tags & SV_T_COPY) && sv_tag_is(t, "copy")) {
		if (!ck->required[sv_ext_index("copy")])
			return sv_fail(ck, line, ":copy needs require \"copy\"");
		if (n->copy)
			return sv_fail(ck, line, ":copy given twice");
		n->copy = true;
		return 0;
	} else if ((tags & SV_T_CREATE) && sv_tag_is(t, "create")) {
		if (!ck->required[sv_ext_index("mailbox")])
			return sv_fail(ck, line, ":create needs require \"mailbox\"");
		if (n->create)
			return sv_fail(ck, line, ":create given twice");
		n->create = true;
		return 0;
	} else if ((tags & SV_T_FLAGS) && sv_tag_is(t, "flags")) {
		if (!ck->required[sv_ext_index("imap4flags")])
			return sv_fail(ck, line, ":flags needs require \"imap4flags\"");
		group = SV_T_FLAGS;
		if ((n->flags = sv_tag_value(ck, n, i, SV_ARG_STRINGS, false)) == NULL)
			return -1;
	} else if ((tags & SV_T_VACATION) &&
		   (sv_tag_is(t, "days") || sv_tag_is(t, "subject") || sv_tag_is(t, "from") ||
		    sv_tag_is(t, "addresses") || sv_tag_is(t, "mime") || sv_tag_is(t, "handle"))) {
		const struct sv_arg **slot = sv_tag_is(t, "subject") ? &n->subject :
					     sv_tag_is(t, "from") ? &n->from :
					     sv_tag_is(t, "handle") ? &n->handle :
					     sv_tag_is(t, "addresses") ? &n->addresses : NULL;
		if (sv_tag_is(t, "mime")) {
			if (n->mime)
				return sv_fail(ck, line, ":mime given twice");
			n->mime = true;
		} else if (sv_tag_is(t, "days")) {
			const struct sv_arg *v;
			if (n->days != 0)
				return sv_fail(ck, line, ":days given twice");
			if ((v = sv_tag_value(ck, n, i, SV_ARG_NUMBER, true)) == NULL)
				return -1;
			/* RFC 5230 §4.1: below the minimum means the minimum */
			n->days = v->number < SIEVE_VACATION_DAYS_MIN ? SIEVE_VACATION_DAYS_MIN :
				  v->number > SIEVE_VACATION_DAYS_MAX ? SIEVE_VACATION_DAYS_MAX :
				  v->number;
		} else {
			if (*slot != NULL)
				return sv_fail(ck, line, ":%s given twice", t);
			*slot = sv_tag_value(ck, n, i, SV_ARG_STRINGS, slot != &n->addresses);
			if (*slot == NULL)
				return -1;
		}
		return 0;
	} else if ((tags & SV_T_MODIFIERS)) {
		static const struct { const char *name; unsigned bit, clash; } mods[] = {
			{ "lower", SV_MOD_LOWER, SV_MOD_UPPER },
			{ "upper", SV_MOD_UPPER, SV_MOD_LOWER },
			{ "lowerfirst", SV_MOD_LOWERFIRST, SV_MOD_UPPERFIRST },
			{ "upperfirst", SV_MOD_UPPERFIRST, SV_MOD_LOWERFIRST },
			{ "quotewildcard", SV_MOD_QUOTEWILDCARD, 0 },
			{ "length", SV_MOD_LENGTH, 0 },
		};
		for (size_t k = 0; k < sizeof(mods) / sizeof(mods[0]); k++) {
			if (!sv_tag_is(t, mods[k].name))
				continue;
			/* RFC 5229 §4: one modifier of each precedence */
			if (n->modifiers & (mods[k].bit | mods[k].clash))
				return sv_fail(ck, line, "modifier :%s clashes with another", t);
			n->modifiers |= mods[k].bit;
			return 0;
		}
		return sv_fail(ck, line, "unknown tag :%.64s for %s", t, n->name);
	} else {
		return sv_fail(ck, line, "unknown tag :%.64s for %s", t, n->name);
	}
	if (*seen & group)
		return sv_fail(ck, line, "more than one :%s-kind tag for %s", t, n->name);
	*seen |= group;
	return 0;
}

/* A positional argument against its shape. */
static int sv_check_positional(struct sv_checker *ck, const struct sv_node *n,
			       const struct sv_arg *a, char shape)
{
	if (shape == 'n' && a->kind != SV_ARG_NUMBER)
		return sv_fail(ck, a->line, "%s expects a number here", n->name);
	if ((shape == 's' || shape == 'S') && a->kind != SV_ARG_STRINGS)
		return sv_fail(ck, a->line, "%s expects a string here", n->name);
	if (shape == 's' && (a->list || a->n_strs != 1))
		return sv_fail(ck, a->line, "%s expects a single string here, not a list",
			       n->name);
	return 0;
}

/* Tags first (RFC 5228 §2.6.2 lets them come in any order before the
 * positional arguments), then the positional ones. */
static int sv_check_args(struct sv_checker *ck, struct sv_node *n, const struct sv_spec *sp)
{
	size_t npos = strlen(sp->pos), i = 0, given;
	unsigned seen = 0;

	for (; i < n->n_args && n->args[i].kind == SV_ARG_TAG; i++)
		if (sv_check_tag(ck, n, sp->tags, &i, &seen) < 0)
			return -1;
	given = n->n_args - i;
	for (size_t k = i; k < n->n_args; k++)
		if (n->args[k].kind == SV_ARG_TAG)
			return sv_fail(ck, n->args[k].line, "tag :%s after positional arguments",
				       n->args[k].tag);
	if (given > npos || (given < npos && !(sp->opt_first && given == npos - 1))) {
		return sv_fail(ck, n->line, "%s takes %zu argument%s, not %zu", n->name, npos,
			       npos == 1 ? "" : "s", given);
	}
	for (size_t k = 0; k < given; k++) {
		char shape = sp->pos[npos - given + k];
		if (sv_check_positional(ck, n, &n->args[i + k], shape) < 0)
			return -1;
		n->pos[k] = &n->args[i + k];
	}
	n->n_pos = given;
	if (sp->id == SV_SIZE && seen != SV_T_SIZE)
		return sv_fail(ck, n->line, "size needs :over or :under");
	if (sp->opt_first && given == npos && !ck->script->variables)
		return sv_fail(ck, n->line, "a variable name for %s needs require \"variables\"",
			       n->name);
	return 0;
}

static int sv_check_node(struct sv_checker *ck, struct sv_node *n, bool want_test);

static int sv_check_block(struct sv_checker *ck, struct sv_node *cmds, size_t n, bool top);

static int sv_check_variable_names(struct sv_checker *ck, const struct sv_node *n)
{
	if (n->id == SV_SET && !sv_valid_variable_name(n->pos[0]->strs[0].s,
							n->pos[0]->strs[0].len))
		return sv_fail(ck, n->line, "invalid variable name \"%.64s\"",
			       n->pos[0]->strs[0].s);
	if ((n->id == SV_SETFLAG || n->id == SV_ADDFLAG || n->id == SV_REMOVEFLAG) &&
	    n->n_pos == 2 &&
	    !sv_valid_variable_name(n->pos[0]->strs[0].s, n->pos[0]->strs[0].len))
		return sv_fail(ck, n->line, "invalid variable name \"%.64s\"",
			       n->pos[0]->strs[0].s);
	if (n->id == SV_HASFLAG && n->n_pos == 2)
		for (size_t i = 0; i < n->pos[0]->n_strs; i++)
			if (!sv_valid_variable_name(n->pos[0]->strs[i].s, n->pos[0]->strs[i].len))
				return sv_fail(ck, n->line, "invalid variable name \"%.64s\"",
					       n->pos[0]->strs[i].s);
	return 0;
}

static int sv_check_node(struct sv_checker *ck, struct sv_node *n, bool want_test)
{
	const struct sv_spec *sp = sv_spec_find(n->name);

	if (sp == NULL || sp->test != want_test) {
		if (sp != NULL)
			return sv_fail(ck, n->line, "%s is a %s, not a %s", n->name,
				       sp->test ? "test" : "command", want_test ? "test" : "command");
		return sv_fail(ck, n->line, "unknown %s \"%.64s\"", want_test ? "test" : "command",
			       n->name);
	}
	if (sp->ext != NULL && !ck->required[sv_ext_index(sp->ext)])
		return sv_fail(ck, n->line, "%s needs require \"%s\"", n->name, sp->ext);
	n->id = sp->id;
	if (sv_check_args(ck, n, sp) < 0 || sv_check_variable_names(ck, n) < 0)
		return -1;
	if (sp->tests == 0 && n->n_tests > 0)
		return sv_fail(ck, n->line, "%s takes no test", n->name);
	if (sp->tests == 1 && (n->n_tests != 1 || n->test_list))
		return sv_fail(ck, n->line, "%s needs one test", n->name);
	if (sp->tests == -1 && !n->test_list)
		return sv_fail(ck, n->line, "%s needs a test list in ( )", n->name);
	if (sp->block && !n->has_block)
		return sv_fail(ck, n->line, "%s needs a block", n->name);
	if (!sp->block && n->has_block)
		return sv_fail(ck, n->line, "%s takes no block", n->name);
	for (size_t i = 0; i < n->n_tests; i++)
		if (sv_check_node(ck, &n->tests[i], true) < 0)
			return -1;
	return n->has_block ? sv_check_block(ck, n->block, n->n_block, false) : 0;
}

static int sv_check_block(struct sv_checker *ck, struct sv_node *cmds, size_t n, bool top)
{
	bool others = false;
	enum sv_id prev = SV_UNKNOWN;

	for (size_t i = 0; i < n; i++) {
		struct sv_node *c = &cmds[i];
		const struct sv_spec *sp = sv_spec_find(c->name);
		enum sv_id id = sp != NULL ? sp->id : SV_UNKNOWN;
		if (id == SV_REQUIRE) {
			/* RFC 5228 §3.2: before any other command */
			if (!top || others)
				return sv_fail(ck, c->line, "require must come before other commands");
		} else {
			others = true;
		}
		if ((id == SV_ELSIF || id == SV_ELSE) && prev != SV_IF && prev != SV_ELSIF)
			return sv_fail(ck, c->line, "%s without if", c->name);
		if (sv_check_node(ck, c, false) < 0)
			return -1;
		if (id == SV_REQUIRE && sv_check_require(ck, c) < 0)
			return -1;
		prev = id;
	}
	return 0;
}

struct sieve_script *sieve_compile(const char *text, size_t len, char *err, size_t err_len)
{
	struct sieve_script *s = calloc(1, sizeof(*s));
	struct sv_checker ck = { .script = s, .err = err, .errlen = err_len };

	if (err_len > 0)
		err[0] = '\0';
	if (s == NULL) {
		snprintf(err, err_len, "line 1: out of memory");
		return NULL;
	}
	if (sv_parse(text, len, s, err, err_len) < 0 ||
	    sv_check_block(&ck, s->cmds, s->n_cmds, true) < 0) {
		sieve_script_free(s);
		return NULL;
	}
	return s;
}

void sieve_script_free(struct sieve_script *s)
{
	if (s == NULL)
		return;
	sv_nodes_free(s->cmds, s->n_cmds);
	free(s);
}
