/* The Sieve grammar (RFC 5228 §8): a lexer over the script text and a
 * recursive-descent parser into the nodes of sieve_private.h.  Recursion
 * depth is bounded by SIEVE_NESTING_MAX; every list by its own limit.
 * Line ends may be CRLF or bare LF (scripts saved by Unix editors).
 */
#include "sieve_private.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sv_tok {
	SV_TOK_EOF, SV_TOK_IDENT, SV_TOK_TAG, SV_TOK_NUMBER, SV_TOK_STRING,
	SV_TOK_LBRACKET, SV_TOK_RBRACKET, SV_TOK_LPAREN, SV_TOK_RPAREN,
	SV_TOK_LBRACE, SV_TOK_RBRACE, SV_TOK_COMMA, SV_TOK_SEMI, SV_TOK_ERROR,
};

struct sv_lexer {
	const char *p, *end;
	int line;
	/* the current token */
	enum sv_tok tok;
	int tok_line;
	char ident[SIEVE_IDENT_MAX + 1];
	uint64_t number;
	char *str;            /* SV_TOK_STRING, owned until taken */
	size_t str_len;
	char *err;
	size_t errlen;
	bool failed;
};

static void sv_error(struct sv_lexer *lx, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void sv_error(struct sv_lexer *lx, int line, const char *fmt, ...)
{
	char what[SIEVE_ERROR_MAX];
	va_list ap;

	if (lx->failed)
		return; /* the first error is the one that counts */
	lx->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(lx->err, lx->errlen, "line %d: %s", line, what);
}

/* Whitespace and both kinds of comment (RFC 5228 §2.3). */
static int sv_skip_space(struct sv_lexer *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == '\n') {
			lx->line++;
			lx->p++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			lx->p++;
		} else if (c == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		} else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
			int start = lx->line;
			lx->p += 2;
			for (;;) {
				if (lx->p + 1 >= lx->end) {
					sv_error(lx, start, "unterminated comment");
					return -1;
				}
				if (lx->p[0] == '*' && lx->p[1] == '/')
					break;
				if (*lx->p == '\n')
					lx->line++;
				lx->p++;
			}
			lx->p += 2;
		} else {
			break;
		}
	}
	return 0;
}

static bool sv_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool sv_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_") */
static int sv_scan_ident(struct sv_lexer *lx)
{
	size_t n = 0;

	while (lx->p < lx->end && (sv_is_alpha(*lx->p) || sv_is_digit(*lx->p))) {
		if (n >= SIEVE_IDENT_MAX) {
			sv_error(lx, lx->line, "identifier too long");
			return -1;
		}
		lx->ident[n++] = *lx->p++;
	}
	lx->ident[n] = '\0';
	return 0;
}

/* number = 1*DIGIT [ QUANTIFIER ], QUANTIFIER = "K" / "M" / "G" */
static int sv_scan_number(struct sv_lexer *lx)
{
	uint64_t v = 0, mul = 1;

	while (lx->p < lx->end && sv_is_digit(*lx->p)) {
		v = v * 10 + (uint64_t)(*lx->p++ - '0');
		if (v > UINT32_MAX) {
			/* RFC 5228 §2.4.1: at least 2^31; we keep to 32 bits */
			sv_error(lx, lx->line, "number too large");
			return -1;
		}
	}
	if (lx->p < lx->end) {
		switch (*lx->p) {
		case 'K': case 'k': mul = 1024; break;
		case 'M': case 'm': mul = 1024 * 1024; break;
		case 'G': case 'g': mul = 1024 * 1024 * 1024; break;
		default: break;
		}
		if (mul != 1)
			lx->p++;
	}
	lx->number = v * mul;
	return 0;
}

/* quoted-string: \" and \\ escape; another backslash is dropped (§2.4.2). */
static int sv_scan_quoted(struct sv_lexer *lx, struct buf *b)
{
	int start = lx->line;

	lx->p++; /* the opening quote */
	for (;;) {
		const char *run = lx->p;
		while (lx->p < lx->end && *lx->p != '"' && *lx->p != '\\') {
			if (*lx->p == '\n')
				lx->line++;
			lx->p++;
		}
		if (buf_append(b, run, (size_t)(lx->p - run)) < 0)
			goto too_long;
		if (lx->p >= lx->end) {
			sv_error(lx, start, "unterminated string");
			return -1;
		}
		if (*lx->p == '"') {
			lx->p++;
			return 0;
		}
		lx->p++; /* backslash */
		if (lx->p >= lx->end) {
			sv_error(lx, start, "unterminated string");
			return -1;
		}
		if (*lx->p == '\n')
			lx->line++;
		if (buf_append(b, lx->p, 1) < 0)
			goto too_long;
		lx->p++;
	}
too_long:
	sv_error(lx, start, "string too long (at most %d octets)", SIEVE_STRING_MAX);
	return -1;
}

/* multi-line = "text:" *(SP / HTAB) (hash-comment / CRLF)
 *              *(multiline-literal / multiline-dotstart) "." CRLF
 * A line starting with "." has that dot removed (dot-stuffing). */
static int sv_scan_multiline(struct sv_lexer *lx, struct buf *b)
{
	int start = lx->line;

	lx->p += 5; /* "text:" */
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		lx->p++;
	if (lx->p < lx->end && *lx->p == '#')
		while (lx->p < lx->end && *lx->p != '\n')
			lx->p++;
	if (lx->p < lx->end && *lx->p == '\r')
		lx->p++;
	if (lx->p >= lx->end || *lx->p != '\n') {
		sv_error(lx, start, "text: must be followed by a line end");
		return -1;
	}
	lx->p++;
	lx->line++;
	for (;;) {
		const char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
		const char *line = lx->p;
		size_t len;
		if (nl == NULL) {
			sv_error(lx, start, "text: not ended by a line with a single \".\"");
			return -1;
		}
		len = (size_t)(nl - line);
		lx->p = nl + 1;
		lx->line++;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 1 && line[0] == '.')
			return 0;
		if (len > 0 && line[0] == '.') {
			line++;
			len--;
		}
		/* the value keeps CRLF line ends (RFC 5228 §2.4.2) */
		if (buf_append(b, line, len) < 0 || buf_append(b, "\r\n", 2) < 0) {
			sv_error(lx, start, "string too long (at most %d octets)",
				 SIEVE_STRING_MAX);
			return -1;
		}
	}
}

static int sv_scan_string(struct sv_lexer *lx, bool multiline)
{
	struct buf b;
	int rc;

	buf_init(&b, SIEVE_STRING_MAX);
	rc = multiline ? sv_scan_multiline(lx, &b) : sv_scan_quoted(lx, &b);
	if (rc == 0 && buf_cstr(&b) < 0) {
		sv_error(lx, lx->line, "out of memory");
		rc = -1;
	}
	if (rc == 0 && strlen(b.data) != b.len) {
		sv_error(lx, lx->line, "NUL character in a string");
		rc = -1;
	}
	if (rc < 0) {
		buf_free(&b);
		return -1;
	}
	lx->str = b.data; /* malloc'd: freed with free() */
	lx->str_len = b.len;
	return 0;
}

/* Read the next token into lx. */
static void sv_next(struct sv_lexer *lx)
{
	static const char punct[] = "[](){},;";
	static const enum sv_tok punct_tok[] = {
		SV_TOK_LBRACKET, SV_TOK_RBRACKET, SV_TOK_LPAREN, SV_TOK_RPAREN,
		SV_TOK_LBRACE, SV_TOK_RBRACE, SV_TOK_COMMA, SV_TOK_SEMI,
	};
	const char *pc;
	char c;

	free(lx->str);
	lx->str = NULL;
	lx->tok = SV_TOK_ERROR;
	if (lx->failed || sv_skip_space(lx) < 0)
		return;
	lx->tok_line = lx->line;
	if (lx->p >= lx->end) {
		lx->tok = SV_TOK_EOF;
		return;
	}
	c = *lx->p;
	if (c == '\0') {
		sv_error(lx, lx->line, "NUL character in the script");
	} else if ((pc = strchr(punct, c)) != NULL) {
		lx->p++;
		lx->tok = punct_tok[pc - punct];
	} else if (c == '"') {
		if (sv_scan_string(lx, false) == 0)
			lx->tok = SV_TOK_STRING;
	} else if (c == ':') {
		lx->p++;
		if (lx->p >= lx->end || !sv_is_alpha(*lx->p))
			sv_error(lx, lx->line, "\":\" must start a tag");
		else if (sv_scan_ident(lx) == 0)
			lx->tok = SV_TOK_TAG;
	} else if (sv_is_digit(c)) {
		if (sv_scan_number(lx) == 0)
			lx->tok = SV_TOK_NUMBER;
	} else if (sv_is_alpha(c)) {
		const char *save = lx->p;
		if (sv_scan_ident(lx) < 0)
			return;
		if (strcasecmp(lx->ident, "text") == 0 && lx->p < lx->end && *lx->p == ':') {
			lx->p = save;
			if (sv_scan_string(lx, true) == 0)
				lx->tok = SV_TOK_STRING;
		} else {
			lx->tok = SV_TOK_IDENT;
		}
	} else if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f) {
		sv_error(lx, lx->line, "unexpected character '%c'", c);
	} else {
		sv_error(lx, lx->line, "unexpected character 0x%02x", (unsigned char)c);
	}
}

/* ---- the parser ------------------------------------------------------ */

static void sv_args_free(struct sv_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(args[i].tag);
		for (size_t j = 0; j < args[i].n_strs; j++)
			free(args[i].strs[j].s);
		free(args[i].strs);
	}
	free(args);
}

void sv_nodes_free(struct sv_node *nodes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(nodes[i].name);
		sv_args_free(nodes[i].args, nodes[i].n_args);
		sv_nodes_free(nodes[i].tests, nodes[i].n_tests);
		sv_nodes_free(nodes[i].block, nodes[i].n_block);
	}
	free(nodes);
}

/* One more zeroed element at the end of the array *arr_p points to (n
 * elements of elem octets, at most max); NULL with the error set. */
static void *sv_push(struct sv_lexer *lx, void *arr_p, size_t *n, size_t elem, size_t max,
		     const char *what)
{
	void **arr = arr_p;
	char *p;

	if (*n >= max) {
		sv_error(lx, lx->tok_line, "too many %s (at most %zu)", what, max);
		return NULL;
	}
	p = realloc(*arr, (*n + 1) * elem);
	if (p == NULL) {
		sv_error(lx, lx->tok_line, "out of memory");
		return NULL;
	}
	memset(p + *n * elem, 0, elem);
	*arr = p;
	return p + (*n)++ * elem;
}

static int sv_take_string(struct sv_lexer *lx, struct sv_arg *a)
{
	struct sv_string *s = sv_push(lx, &a->strs, &a->n_strs, sizeof(*s), SIEVE_LIST_MAX,
				      "strings in a list");

	if (s == NULL)
		return -1;
	s->s = lx->str;
	s->len = lx->str_len;
	lx->str = NULL;
	sv_next(lx);
	return 0;
}

/* After an element of a list: its end (0, past it), a comma (1, past it)
 * or an error (-1). */
static int sv_list_next(struct sv_lexer *lx, enum sv_tok close, const char *what)
{
	bool closed = lx->tok == close;

	if (!closed && lx->tok != SV_TOK_COMMA) {
		sv_error(lx, lx->tok_line, "expected \",\" or %s", what);
		return -1;
	}
	sv_next(lx);
	return closed ? 0 : 1;
}

/* string-list = "[" string *("," string) "]" / string */
static int sv_parse_string_list(struct sv_lexer *lx, struct sv_arg *a)
{
	a->kind = SV_ARG_STRINGS;
	if (lx->tok == SV_TOK_STRING)
		return sv_take_string(lx, a);
	a->list = true;
	sv_next(lx); /* "[" */
	for (;;) {
		if (lx->tok != SV_TOK_STRING) {
			sv_error(lx, lx->tok_line, "a string list holds strings");
			return -1;
		}
		if (sv_take_string(lx, a) < 0)
			return -1;
		if (sv_list_next(lx, SV_TOK_RBRACKET, "\"]\" in a string list") <= 0)
			return lx->failed ? -1 : 0;
	}
}

static int sv_parse_test(struct sv_lexer *lx, struct sv_node *n, int depth);

/* arguments = *argument [ test / test-list ] */
static int sv_parse_arguments(struct sv_lexer *lx, struct sv_node *n, int depth)
{
	for (;;) {
		struct sv_arg *a;
		if (lx->tok != SV_TOK_TAG && lx->tok != SV_TOK_NUMBER &&
		    lx->tok != SV_TOK_STRING && lx->tok != SV_TOK_LBRACKET)
			break;
		a = sv_push(lx, &n->args, &n->n_args, sizeof(*a), SIEVE_ARGS_MAX, "arguments");
		if (a == NULL)
			return -1;
		a->line = lx->tok_line;
		if (lx->tok == SV_TOK_TAG) {
			a->kind = SV_ARG_TAG;
			a->tag = strdup(lx->ident);
			if (a->tag == NULL) {
				sv_error(lx, lx->tok_line, "out of memory");
				return -1;
			}
			sv_next(lx);
		} else if (lx->tok == SV_TOK_NUMBER) {
			a->kind = SV_ARG_NUMBER;
			a->number = lx->number;
			sv_next(lx);
		} else if (sv_parse_string_list(lx, a) < 0) {
			return -1;
		}
	}
	if (lx->tok == SV_TOK_IDENT) {
		n->tests = calloc(1, sizeof(*n->tests));
		if (n->tests == NULL) {
			sv_error(lx, lx->tok_line, "out of memory");
			return -1;
		}
		n->n_tests = 1;
		return sv_parse_test(lx, &n->tests[0], depth + 1);
	}
	if (lx->tok != SV_TOK_LPAREN)
		return 0;
	/* test-list = "(" test *("," test) ")" */
	n->test_list = true;
	sv_next(lx);
	for (;;) {
		struct sv_node *t;
		t = sv_push(lx, &n->tests, &n->n_tests, sizeof(*t), SIEVE_TESTS_MAX,
			    "tests in a list");
		if (t == NULL || sv_parse_test(lx, t, depth + 1) < 0)
			return -1;
		if (sv_list_next(lx, SV_TOK_RPAREN, "\")\" in a test list") <= 0)
			return lx->failed ? -1 : 0;
	}
}

/* identifier arguments: the start of a test and of a command */
static int sv_parse_named(struct sv_lexer *lx, struct sv_node *n, int depth)
{
	n->line = lx->tok_line;
	n->name = strdup(lx->ident);
	if (n->name == NULL) {
		sv_error(lx, lx->tok_line, "out of memory");
		return -1;
	}
	sv_next(lx);
	return sv_parse_arguments(lx, n, depth);
}

/* test = identifier arguments */
static int sv_parse_test(struct sv_lexer *lx, struct sv_node *n, int depth)
{
	if (depth > SIEVE_NESTING_MAX) {
		sv_error(lx, lx->tok_line, "nested too deeply (at most %d)", SIEVE_NESTING_MAX);
		return -1;
	}
	if (lx->tok != SV_TOK_IDENT) {
		sv_error(lx, lx->tok_line, "expected a test");
		return -1;
	}
	return sv_parse_named(lx, n, depth);
}

static int sv_parse_commands(struct sv_lexer *lx, struct sv_node **cmds, size_t *n_cmds,
			     int depth, bool in_block);

/* command = identifier arguments (";" / block) */
static int sv_parse_command(struct sv_lexer *lx, struct sv_node *n, int depth)
{
	if (sv_parse_named(lx, n, depth) < 0)
		return -1;
	if (lx->tok == SV_TOK_SEMI) {
		sv_next(lx);
		return 0;
	}
	if (lx->tok != SV_TOK_LBRACE) {
		sv_error(lx, lx->failed ? lx->tok_line : n->line,
			 "expected \";\" or a block after %s", n->name);
		return -1;
	}
	if (depth >= SIEVE_NESTING_MAX) {
		sv_error(lx, lx->tok_line, "nested too deeply (at most %d)", SIEVE_NESTING_MAX);
		return -1;
	}
	n->has_block = true;
	sv_next(lx);
	if (sv_parse_commands(lx, &n->block, &n->n_block, depth + 1, true) < 0)
		return -1;
	sv_next(lx); /* "}" */
	return 0;
}

/* commands = *command; a block ends at "}", the script at its end. */
static int sv_parse_commands(struct sv_lexer *lx, struct sv_node **cmds, size_t *n_cmds,
			     int depth, bool in_block)
{
	for (;;) {
		struct sv_node *c;
		if (lx->tok == SV_TOK_ERROR)
			return -1;
		if (lx->tok == (in_block ? SV_TOK_RBRACE : SV_TOK_EOF))
			return 0;
		if (lx->tok == SV_TOK_EOF) {
			sv_error(lx, lx->tok_line, "missing \"}\"");
			return -1;
		}
		if (lx->tok != SV_TOK_IDENT) {
			sv_error(lx, lx->tok_line, "expected a command");
			return -1;
		}
		c = sv_push(lx, cmds, n_cmds, sizeof(*c), SIEVE_SCRIPT_MAX, "commands");
		if (c == NULL || sv_parse_command(lx, c, depth) < 0)
			return -1;
	}
}

int sv_parse(const char *text, size_t len, struct sieve_script *s, char *err, size_t errlen)
{
	struct sv_lexer lx = { .p = text, .end = text + len, .line = 1, .err = err,
			       .errlen = errlen };
	const char *nul;

	if (len > SIEVE_SCRIPT_MAX) {
		snprintf(err, errlen, "line 1: script too large (at most %d octets)",
			 SIEVE_SCRIPT_MAX);
		return -1;
	}
	/* RFC 5228 §8.1: no octet of a script is NUL, comments included */
	nul = memchr(text, '\0', len);
	if (nul != NULL) {
		int line = 1;
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		snprintf(err, errlen, "line %d: NUL character in the script", line);
		return -1;
	}
	sv_next(&lx);
	if (sv_parse_commands(&lx, &s->cmds, &s->n_cmds, 0, false) < 0 || lx.failed) {
		if (!lx.failed)
			snprintf(err, errlen, "line %d: syntax error", lx.tok_line);
		free(lx.str);
		return -1;
	}
	free(lx.str);
	return 0;
}
