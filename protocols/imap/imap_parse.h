/* The IMAP command reader and argument cursor (imap_parse.c): pure code,
 * no session, no I/O, so that the unit tests and the fuzz harness use it
 * alone.  Shared inside protocols/imap/ only.
 *
 * Memory: the reader owns its command buffer (bounded by IMAP_COMMAND_MAX);
 * strings the cursor returns point into that buffer and live until the
 * reader is reset.  Sequence sets are malloc'ed (free their ranges).
 */
#ifndef IMAP_IMAP_PARSE_H
#define IMAP_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define IMAP_TAG_MAX 64              /* RFC 3501 §9 sets none; ours, generous */
/* RFC 7888 §4 / LITERAL-: non-synchronising literals above 4096 octets
 * are refused outside APPEND. */
#define IMAP_NONSYNC_LITERAL_MAX 4096
/* Literals in commands other than APPEND (passwords, search strings,
 * mailbox names): small. */
#define IMAP_LITERAL_MAX (64 * 1024)
/* A whole command: lines (each up to cfg->line_length_max, RFC 7162 §4
 * recommends at least 8192) plus its small literals. */
#define IMAP_COMMAND_MAX (256 * 1024)
#define IMAP_LITERALS_MAX 64         /* literals in one command */
#define IMAP_SEQ_RANGES_MAX 16384    /* ranges in one sequence set */
/* A command buffer larger than this is freed between commands, so that
 * thousands of idle sessions do not each keep their largest command. */
#define IMAP_READER_KEEP 4096

/* ---- the command reader ------------------------------------------------- */

/* Collects one command from the connection's line and byte events: lines
 * are joined with CRLF and literal bytes kept inline, so the argument
 * cursor sees exactly what the client sent ("{5}\r\nhello").  APPEND
 * literals are not kept (imap_append.c streams them to the store). */
struct imap_reader {
	struct buf cmd;          /* the command so far */
	uint64_t literal_len;    /* announced size of the literal to read */
	uint64_t literal_left;   /* its bytes still to come */
	bool literal_sync;       /* {n}: the client waits for "+" */
	bool in_literal;
	bool discard;            /* skipping a refused command's rest */
	bool is_append;          /* the command is APPEND */
	unsigned literals;
	uint64_t literal_max;    /* APPEND: message_size_max */
};

enum imap_read_result {
	IMAP_READ_MORE,     /* need more input */
	IMAP_READ_LITERAL,  /* a literal follows: literal_len bytes, "+" first
			     * when literal_sync; bytes mode */
	IMAP_READ_COMMAND,  /* a whole command is in cmd */
	IMAP_READ_TOOBIG,   /* literal over the limit: tagged NO [TOOBIG] (sync:
			     * the client sends nothing more) */
	IMAP_READ_BAD,      /* malformed or too long: tagged BAD */
	IMAP_READ_CLOSE,    /* a non-synchronising literal too big to skip */
};

void imap_reader_init(struct imap_reader *r, uint64_t append_max);
void imap_reader_free(struct imap_reader *r);
void imap_reader_reset(struct imap_reader *r);
/* One line without CRLF. */
enum imap_read_result imap_reader_line(struct imap_reader *r, const char *line, size_t len);
/* Literal bytes (at most literal_left).  MORE until the literal is
 * complete; then MORE as well (the command goes on with a line). */
enum imap_read_result imap_reader_bytes(struct imap_reader *r, const char *data, size_t len);
/* The tag of the command so far ("*" when there is none yet), for the BAD
 * reply to a refused command.  out holds IMAP_TAG_MAX + 1. */
void imap_reader_tag(const struct imap_reader *r, char *out);
/* A line ending in "{n}" or "{n+}": 1 with the size (UINT64_MAX when it
 * overflows) and whether it is synchronising; else 0. */
int imap_literal_header(const char *line, size_t len, uint64_t *n_r, bool *sync_r);

/* ---- the argument cursor ------------------------------------------------ */

struct imap_cursor {
	char *p, *end;
	const char *err;   /* why parsing failed (text of the BAD) */
	unsigned depth;
};

struct imap_range {
	uint32_t lo, hi; /* lo <= hi; UINT32_MAX stands for '*' */
};

struct imap_seqset {
	struct imap_range *ranges;
	size_t n;
	bool saved; /* "$" (RFC 5182 SEARCHRES) */
};

void imap_cursor_init(struct imap_cursor *c, char *data, size_t len);
bool imap_at_end(const struct imap_cursor *c);
/* Exactly one space. */
bool imap_sp(struct imap_cursor *c);
bool imap_peek(const struct imap_cursor *c, char ch);
bool imap_char(struct imap_cursor *c, char ch);
/* An atom (RFC 3501 §9 ATOM-CHAR), copied NUL-terminated into out.
 * extra: more characters allowed ("[]" for fetch items, "\\" for flags). */
bool imap_atom(struct imap_cursor *c, char *out, size_t outlen, const char *extra);
/* A tag: ASTRING-CHAR except '+'. */
bool imap_tag(struct imap_cursor *c, char *out, size_t outlen);
/* string = quoted / literal; points into the command buffer (quoted
 * strings unescaped in place); not NUL-terminated. */
bool imap_string(struct imap_cursor *c, const char **s_r, size_t *len_r);
/* astring = atom / string; nstring = string / NIL (*s_r NULL for NIL). */
bool imap_astring(struct imap_cursor *c, const char **s_r, size_t *len_r);
bool imap_nstring(struct imap_cursor *c, const char **s_r, size_t *len_r);
/* An astring copied NUL-terminated (no NUL inside, fits). */
bool imap_astring_copy(struct imap_cursor *c, char *out, size_t outlen);
/* A list-mailbox (RFC 3501 §9: atom with % and *, or string). */
bool imap_list_mailbox(struct imap_cursor *c, char *out, size_t outlen);
/* number / nz-number (RFC 3501 §9) */
bool imap_number(struct imap_cursor *c, uint32_t *n_r, bool nonzero);
bool imap_number64(struct imap_cursor *c, uint64_t *n_r);
/* sequence-set (RFC 3501 §9, '$' of RFC 5182).  set_r->ranges is
 * malloc'ed: free() it. */
bool imap_seqset(struct imap_cursor *c, struct imap_seqset *set_r);
/* Replace '*' by star and sort/merge the ranges; ranges that collapse
 * outside [1, star] stay as given. */
void imap_seqset_normalise(struct imap_seqset *set, uint32_t star);
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
/* date (RFC 3501 §9 "d-MMM-yyyy", quoted or not) as Unix time at 00:00 UTC. */
bool imap_date(struct imap_cursor *c, int64_t *t_r);
/* date-time "dd-MMM-yyyy hh:mm:ss +zzzz" */
bool imap_date_time(struct imap_cursor *c, int64_t *t_r);
/* Append an IMAP string to b: quoted when possible, else a literal. */
int imap_buf_string(struct buf *b, const char *s, size_t len);
/* The same, but valid UTF-8 may be quoted (RFC 9051 §9 QUOTED-CHAR, for
 * IMAP4rev2 sessions). */
int imap_buf_utf8_string(struct buf *b, const char *s, size_t len);
/* s[0..len) is valid UTF-8 (RFC 3629: shortest form, no surrogates). */
bool imap_utf8_valid(const char *s, size_t len);
/* "dd-Mon-yyyy hh:mm:ss +0000" of t (INTERNALDATE, in UTC). */
void imap_format_date_time(int64_t t, char *out, size_t outlen);

#endif
