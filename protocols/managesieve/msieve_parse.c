/* The ManageSieve command reader (RFC 5804 §4, "Formal Syntax").
 *
 * A command is a verb (an atom, any case) and arguments separated by one
 * space: numbers, quoted strings ("..." with \" and \\ the only escapes)
 * and literals.  A literal "{n+}" or "{n}" ends its line; its n octets
 * follow at once (ManageSieve has no continuation request: the client does
 * not wait), and the command goes on right after them, on what the
 * connection then reads as the next line.  So a command arrives as
 * line, [octets, line]...: msieve_read_line() for each line,
 * msieve_read_bytes() for the octets between.
 *
 * An error does not stop the reading: the rest of the command, literals
 * included, must still be consumed, or a script's text would be taken for
 * commands.  The first error is kept and answered once the command ends.
 */
#include "msieve_private.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MSIEVE_NUMBER_MAX 4294967295u /* RFC 5804 §4: number is 32 bits */

void msieve_command_reset(struct msieve_command *c)
{
	for (size_t i = 0; i < c->nargs; i++)
		free(c->args[i].data);
	memset(c, 0, sizeof(*c));
}

static void msieve_fail(struct msieve_command *c, const char *error, const char *code)
{
	if (c->error == NULL) {
		c->error = error;
		c->error_code = code;
	}
}

/* "{123}" or "{123+}" exactly, at the end of the line; its size, or -1. */
static int msieve_literal_header(const char *p, const char *end, uint64_t *n_r)
{
	uint64_t n = 0;
	const char *q = p + 1;

	if (p >= end || *p != '{' || end[-1] != '}')
		return -1;
	if (q >= end - 1 || !isdigit((unsigned char)*q))
		return -1;
	for (; q < end - 1 && isdigit((unsigned char)*q); q++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*q - '0');
	}
	if (*q == '+')
		q++;
	if (q != end - 1)
		return -1;
	*n_r = n;
	return 0;
}

/* After an error: a literal announced at the end of the line is still
 * coming and is read and dropped. */
static enum msieve_read msieve_skip_to_literal(struct msieve_command *c, const char *line,
					       size_t len)
{
	const char *end = line + len, *open;
	uint64_t n;

	open = len > 0 && end[-1] == '}' ? memrchr(line, '{', len) : NULL;
	if (open == NULL || msieve_literal_header(open, end, &n) < 0)
		return MSIEVE_READ_DONE;
	if (n > MSIEVE_DISCARD_MAX) {
		c->error = "Literal too large";
		c->error_code = NULL;
		return MSIEVE_READ_FATAL;
	}
	c->discarding = n > 0;
	c->literal_left = n;
	return MSIEVE_READ_LITERAL;
}

static bool msieve_verb_is_script(const struct msieve_command *c)
{
	return strcmp(c->verb, "PUTSCRIPT") == 0 || strcmp(c->verb, "CHECKSCRIPT") == 0;
}

/* A new argument slot, or NULL (error set) when there are too many. */
static struct msieve_arg *msieve_new_arg(struct msieve_command *c, enum msieve_arg_type type,
					 size_t cap)
{
	struct msieve_arg *a;

	if (c->nargs >= MSIEVE_ARGS_MAX) {
		msieve_fail(c, "Too many arguments", NULL);
		return NULL;
	}
	a = &c->args[c->nargs];
	memset(a, 0, sizeof(*a));
	a->type = type;
	if (type == MSIEVE_ARG_STRING) {
		a->data = malloc(cap + 1);
		if (a->data == NULL) {
			msieve_fail(c, "Out of memory", "TRYLATER");
			return NULL;
		}
		a->data[0] = '\0';
	}
	c->nargs++;
	return a;
}

/* A quoted string starting at *pp (on '"'); moves *pp past it. */
static int msieve_quoted(struct msieve_command *c, const char **pp, const char *end)
{
	const char *p = *pp + 1;
	struct msieve_arg *a = msieve_new_arg(c, MSIEVE_ARG_STRING, (size_t)(end - p));

	if (a == NULL)
		return -1;
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\') {
			if (p + 1 >= end || (p[1] != '"' && p[1] != '\\')) {
				msieve_fail(c, "Bad escape in a quoted string", NULL);
				return -1;
			}
			p++;
		} else if (*p == '\0') {
			msieve_fail(c, "NUL in a quoted string", NULL);
			return -1;
		}
		a->data[a->len++] = *p;
	}
	if (p >= end) {
		msieve_fail(c, "Unterminated quoted string", NULL);
		return -1;
	}
	a->data[a->len] = '\0';
	*pp = p + 1;
	return 0;
}

static int msieve_number(struct msieve_command *c, const char **pp, const char *end)
{
	const char *p = *pp;
	uint64_t n = 0;
	struct msieve_arg *a;

	for (; p < end && isdigit((unsigned char)*p); p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > MSIEVE_NUMBER_MAX) {
			msieve_fail(c, "Number too large", NULL);
			return -1;
		}
	}
	if (p < end && *p != ' ') {
		msieve_fail(c, "Bad number", NULL);
		return -1;
	}
	if ((a = msieve_new_arg(c, MSIEVE_ARG_NUMBER, 0)) == NULL)
		return -1;
	a->number = n;
	*pp = p;
	return 0;
}

/* A literal header ending the line: the argument, sized, to be filled. */
static enum msieve_read msieve_literal(struct msieve_command *c, const char *p, const char *end,
				       const char *line, size_t len)
{
	struct msieve_arg *a;
	uint64_t n;

	if (msieve_literal_header(p, end, &n) < 0) {
		msieve_fail(c, "Bad literal", NULL);
		return msieve_skip_to_literal(c, line, len);
	}
	if (n > MSIEVE_LITERAL_MAX) {
		/* RFC 5804 §2.6: a script over the limit is QUOTA/MAXSIZE */
		msieve_fail(c, msieve_verb_is_script(c) ? "Script too large" : "String too long",
			    msieve_verb_is_script(c) ? "QUOTA/MAXSIZE" : NULL);
		return msieve_skip_to_literal(c, line, len);
	}
	if ((a = msieve_new_arg(c, MSIEVE_ARG_STRING, (size_t)n)) == NULL)
		return msieve_skip_to_literal(c, line, len);
	c->literal_left = n;
	return MSIEVE_READ_LITERAL; /* even {0}: the command goes on after it */
}

/* The verb at the start of a command; moves *pp past it. */
static int msieve_verb(struct msieve_command *c, const char **pp, const char *end)
{
	const char *p = *pp;
	size_t n = 0;

	for (; p < end && *p != ' '; p++) {
		if (n >= MSIEVE_VERB_MAX || !isalpha((unsigned char)*p)) {
			msieve_fail(c, "Unknown command", NULL);
			return -1;
		}
		c->verb[n++] = (char)toupper((unsigned char)*p);
	}
	c->verb[n] = '\0';
	*pp = p;
	return 0;
}

enum msieve_read msieve_read_line(struct msieve_command *c, const char *line, size_t len,
				  bool response)
{
	const char *p = line, *end = line + len;
	bool first = !c->started;

	c->started = true;
	if (c->error != NULL)
		return msieve_skip_to_literal(c, line, len);
	if (first && !response && msieve_verb(c, &p, end) < 0)
		return msieve_skip_to_literal(c, line, len);
	while (p < end) {
		/* one space before every argument but a response's first */
		if (!(first && response && p == line)) {
			if (*p != ' ' || p + 1 >= end) {
				msieve_fail(c, "Syntax error", NULL);
				return msieve_skip_to_literal(c, line, len);
			}
			p++;
		}
		if (*p == '{')
			return msieve_literal(c, p, end, line, len);
		if ((*p == '"' ? msieve_quoted(c, &p, end) :
		     isdigit((unsigned char)*p) ? msieve_number(c, &p, end) : -1) < 0) {
			msieve_fail(c, "Syntax error", NULL);
			return msieve_skip_to_literal(c, line, len);
		}
	}
	return MSIEVE_READ_DONE;
}

void msieve_read_bytes(struct msieve_command *c, const char *data, size_t len)
{
	if (len > c->literal_left)
		len = (size_t)c->literal_left;
	c->literal_left -= len;
	if (c->discarding) {
		if (c->literal_left == 0)
			c->discarding = false;
		return;
	}
	if (c->nargs > 0) {
		struct msieve_arg *a = &c->args[c->nargs - 1];

		memcpy(a->data + a->len, data, len);
		a->len += len;
		a->data[a->len] = '\0';
	}
}
