/* Sieve internals shared by the parser (sieve_parse.c), the checker
 * (sieve_check.c), the matcher (sieve_match.c), the message access
 * (sieve_msg.c) and the interpreter (sieve_run.c).
 *
 * A script is a tree of nodes, one per command or test (RFC 5228 §8.2
 * grammar).  The parser fills name, line, args, tests and block; the
 * checker resolves the name to an id and the tagged arguments to the
 * option fields, so the interpreter never looks at tags again.  Memory:
 * every node, argument and string is malloc'd and freed by
 * sieve_script_free(); the depth is bounded by SIEVE_NESTING_MAX.
 */
#ifndef SIEVE_SIEVE_PRIVATE_H
#define SIEVE_SIEVE_PRIVATE_H

#include "sieve.h"

#define SIEVE_NESTING_MAX 32      /* blocks and tests inside each other */
#define SIEVE_STRING_MAX (64 * 1024) /* octets of one string, literal or
				      * expanded (variables) */
#define SIEVE_LIST_MAX 1024       /* strings in one string list */
#define SIEVE_ARGS_MAX 16         /* arguments of one command or test */
#define SIEVE_TESTS_MAX 256       /* tests in one allof/anyof */
#define SIEVE_IDENT_MAX 64        /* octets of an identifier */
#define SIEVE_VARIABLES_MAX 128   /* RFC 5229 §6: an implementation limit */
#define SIEVE_MATCH_VARS 10       /* ${0} .. ${9} (RFC 5229 §3.2) */
#define SIEVE_STEPS_MAX (32u * 1024 * 1024) /* matching work of one run */
#define SIEVE_COMMANDS_RUN_MAX 100000 /* commands one run executes (there
				       * are no loops; a bound anyway) */

enum sv_arg_kind { SV_ARG_TAG, SV_ARG_NUMBER, SV_ARG_STRINGS };

struct sv_string {
	char *s;          /* NUL-terminated (no NUL inside: refused) */
	size_t len;
};

struct sv_arg {
	enum sv_arg_kind kind;
	int line;
	char *tag;                /* TAG, without the ':' */
	uint64_t number;          /* NUMBER, quantifier applied */
	struct sv_string *strs;   /* STRINGS */
	size_t n_strs;
	bool list;                /* written as [ ... ] */
};

enum sv_id {
	SV_UNKNOWN = 0,
	/* control and actions */
	SV_REQUIRE, SV_IF, SV_ELSIF, SV_ELSE, SV_STOP, SV_KEEP, SV_DISCARD,
	SV_FILEINTO, SV_REDIRECT, SV_REJECT, SV_EREJECT, SV_VACATION,
	SV_SETFLAG, SV_ADDFLAG, SV_REMOVEFLAG, SV_SET,
	/* tests */
	SV_ADDRESS, SV_ENVELOPE, SV_HEADER, SV_EXISTS, SV_SIZE, SV_ALLOF,
	SV_ANYOF, SV_NOT, SV_TRUE, SV_FALSE, SV_BODY, SV_HASFLAG, SV_STRING,
	SV_MAILBOXEXISTS,
};

enum sv_match { SV_MATCH_IS, SV_MATCH_CONTAINS, SV_MATCH_MATCHES };
enum sv_comparator { SV_CMP_CASEMAP, SV_CMP_OCTET };  /* RFC 5228 §2.7.3 default: casemap */
enum sv_addrpart { SV_PART_ALL, SV_PART_LOCAL, SV_PART_DOMAIN };
enum sv_body_transform { SV_BODY_TEXT, SV_BODY_RAW, SV_BODY_CONTENT };

/* RFC 5229 §4 modifiers, by precedence */
#define SV_MOD_LOWER 0x01
#define SV_MOD_UPPER 0x02
#define SV_MOD_LOWERFIRST 0x04
#define SV_MOD_UPPERFIRST 0x08
#define SV_MOD_QUOTEWILDCARD 0x10
#define SV_MOD_LENGTH 0x20

struct sv_node {
	char *name;
	int line;
	struct sv_arg *args;
	size_t n_args;
	struct sv_node *tests;    /* a test, or a test list */
	size_t n_tests;
	bool test_list;           /* written as ( ... ) */
	struct sv_node *block;    /* commands of { ... } */
	size_t n_block;
	bool has_block;

	/* resolved by the checker */
	enum sv_id id;
	enum sv_match match;
	enum sv_comparator comparator;
	enum sv_addrpart addrpart;
	enum sv_body_transform transform;
	const struct sv_arg *content_types; /* body :content */
	const struct sv_arg *pos[3];        /* positional arguments */
	size_t n_pos;
	bool copy, create, mime, over;      /* :copy :create :mime size :over */
	uint64_t limit;                     /* size :over/:under */
	uint64_t days;                      /* vacation :days, 0: default */
	const struct sv_arg *flags;         /* :flags */
	const struct sv_arg *subject, *from, *addresses, *handle; /* vacation */
	unsigned modifiers;                 /* set */
};

struct sieve_script {
	struct sv_node *cmds;
	size_t n_cmds;
	bool variables;          /* "variables" required: strings expand */
	bool imap4flags;
};

/* sieve_parse.c: the grammar; 0, or -1 with "line N: ..." in err. */
int sv_parse(const char *text, size_t len, struct sieve_script *s, char *err, size_t errlen);
void sv_nodes_free(struct sv_node *nodes, size_t n);

/* sieve_check.c: names, tags and argument types, require; 0 or -1. */
int sv_check(struct sieve_script *s, char *err, size_t errlen);

/* sieve_match.c.  Matching work is counted in *steps (the caller stops
 * past SIEVE_STEPS_MAX).  caps: NULL, or SIEVE_MATCH_VARS strings the
 * :matches wildcards are captured into (malloc'd; the caller frees). */
bool sv_compare(enum sv_match match, enum sv_comparator cmp, const char *value,
		size_t vlen, const char *key, size_t klen, uint64_t *steps, char **caps);
/* RFC 5228 §2.7.1: "\\" + "*" ... quoting for :matches keys */
bool sv_valid_variable_name(const char *name, size_t len);

/* sieve_msg.c: header fields and addresses. */
typedef int sv_value_fn(void *ctx, const char *value, size_t len);
/* Call fn with each unfolded value of the fields named name (no case);
 * stops when fn returns non-zero and returns that. */
int sv_header_each(const struct sieve_message *msg, const char *name, sv_value_fn *fn, void *ctx);
/* Call fn with each address (local@domain, or the group/bare text) of an
 * address-list value, the part asked for. */
int sv_address_each(const char *value, size_t len, enum sv_addrpart part, sv_value_fn *fn,
		    void *ctx);
/* Hex digit value, or -1. */
int sv_hex(char c);
/* Base64 into out (room for len octets), other characters skipped;
 * returns the octets written. */
size_t sv_decode_b64(const char *p, size_t len, char *out);
/* sieve_body.c: call fn with each part body that body :text (types NULL)
 * or :content types selects, transfer encoding undone. */
int sv_body_each(const struct sieve_message *msg, const struct sv_arg *types, sv_value_fn *fn,
		 void *ctx);
/* The part of one address (envelope). */
int sv_address_part(const char *addr, size_t len, enum sv_addrpart part, sv_value_fn *fn,
		    void *ctx);

/* ---- one run (sieve_run.c, sieve_test.c, sieve_vars.c) ------------------ */

struct sv_variable {
	char name[SIEVE_IDENT_MAX + 1]; /* lower case: names ignore case */
	char *value;
	size_t len;
};

struct sv_run {
	const struct sieve_script *script;
	const struct sieve_message *msg;
	struct sieve_result *res;
	uint64_t steps;               /* matching work, up to SIEVE_STEPS_MAX */
	unsigned commands;            /* executed, up to SIEVE_COMMANDS_RUN_MAX */
	struct sv_variable vars[SIEVE_VARIABLES_MAX];
	size_t n_vars;
	char *caps[SIEVE_MATCH_VARS]; /* ${0}..${9} of the last :matches */
	char *flags;                  /* imap4flags' internal variable */
	bool implicit_keep;
	bool stopped;
	bool failed;                  /* a runtime error is in res */
	unsigned redirects;
	bool vacation_taken, reject_taken;
};

/* Record a runtime error (the first one counts); returns -1. */
int sv_runtime_error(struct sv_run *r, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* sieve_vars.c.  A string as the script gives it with ${...} expanded
 * when "variables" is required; malloc'd, NULL after a runtime error. */
char *sv_expand(struct sv_run *r, const struct sv_string *str, int line, size_t *len_r);
/* A variable's value ("" when unset); NULL on a runtime error. */
const char *sv_var_get(struct sv_run *r, const char *name);
/* Set (copying value); -1 on a runtime error. */
int sv_var_set(struct sv_run *r, const char *name, const char *value, size_t len, int line);
/* set with its modifiers (RFC 5229 §4). */
int sv_cmd_set(struct sv_run *r, const struct sv_node *n);
/* setflag / addflag / removeflag (RFC 5232 §5). */
int sv_cmd_flags(struct sv_run *r, const struct sv_node *n);
/* The flags of a flag-list value, each once, in order (RFC 5232 §3);
 * count in *n_r; NULL with *n_r 0 when empty; -1 style: sets failed. */
char **sv_flags_split(struct sv_run *r, const char *list, size_t *n_r, int line);
/* The string list of arg expanded, each flag list joined by spaces. */
char *sv_flags_of_arg(struct sv_run *r, const struct sv_arg *a, int line);

/* sieve_test.c: 1 true, 0 false, -1 runtime error. */
int sv_test(struct sv_run *r, const struct sv_node *t, int depth);

#endif
