/* APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), APPENDUID
 * (RFC 4315), LITERAL+ (RFC 7888) and TRYCREATE.
 *
 * The message literal never sits in memory whole: while APPEND runs it
 * owns the connection's input (s->appending).  Literal bytes are gathered
 * up to IMAP_APPEND_CHUNK, then reading pauses while a worker writes them
 * to the store's spool (md_delivery_write); the line after a literal
 * either ends the command or starts the next message of a MULTIAPPEND.
 * Every message is committed when the command ends.
 *
 * RFC 3502 wants MULTIAPPEND all-or-nothing; the store commits message by
 * message, so when one fails part-way the ones already committed are
 * expunged again (other sessions may glimpse them meanwhile).  Only if
 * that also fails does the tagged NO say some were appended.
 *
 * After an error found while octets are still coming (a non-synchronising
 * literal) the rest of the command is read and dropped, then the error is
 * the answer. */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "server.h"
#include "store.h"

#define IMAP_APPEND_KEYWORDS_MAX 32 /* keywords on one appended message */

struct imap_append_msg {
	unsigned flags;
	char *keywords[IMAP_APPEND_KEYWORDS_MAX];
	size_t n_keywords;
	int64_t date;
	bool utf8;                /* UTF8 (~{n}) form (RFC 6855 §4) */
	struct md_delivery *d;
};

struct imap_append_cmd {
	char mailbox[MD_MAILBOX_NAME_MAX + 1];
	struct imap_append_msg msgs[IMAP_APPEND_MSGS_MAX];
	size_t n;
	uint64_t size_max;
	/* the literal being read */
	uint64_t left;
	bool sync;
	struct buf chunk;
	/* the first failure; the rest of the command is dropped */
	enum md_result result;
	const char *bad;          /* syntax error text: BAD */
	bool utf8_close;          /* the literal read was UTF8 (...): ")" follows */
	bool flushing;            /* a write job runs */
	bool mailbox_checked;
	/* results */
	uint32_t uidvalidity;
	uint32_t uids[IMAP_APPEND_MSGS_MAX];
	size_t n_done;
};

static void imap_append_free(void *arg)
{
	struct imap_append_cmd *c = arg;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		for (size_t k = 0; k < c->msgs[i].n_keywords; k++)
			free(c->msgs[i].keywords[k]);
		if (c->msgs[i].d != NULL)
			md_delivery_free(c->msgs[i].d);
	}
	buf_free(&c->chunk);
	free(c);
}

/* [flag-list SP] [date-time SP] literal-header, or "UTF8 (" literal8
 * (RFC 6855 §4; its ")" follows the literal): the per-message part. */
static bool imap_append_preamble(struct imap_cursor *c, struct imap_append_msg *m)
{
	if (imap_char(c, '(')) {
		if (!imap_char(c, ')')) {
			do {
				if (!imap_flag_arg(c, &m->flags, m->keywords, &m->n_keywords,
						   IMAP_APPEND_KEYWORDS_MAX))
					return false;
			} while (imap_char(c, ' '));
			if (!imap_char(c, ')'))
				return false;
		}
		if (!imap_sp(c))
			return false;
	}
	if (imap_peek(c, '"')) {
		if (!imap_date_time(c, &m->date) || !imap_sp(c))
			return false;
	}
	if ((size_t)(c->end - c->p) > 6 && strncasecmp(c->p, "UTF8 (", 6) == 0) {
		c->p += 6;
		m->utf8 = true;
		if (!imap_peek(c, '~'))
			return false;
	}
	/* the literal header the reader has already measured; "~{n}" is a
	 * literal8 (RFC 3516 §4.4, offered with BINARY): its content goes to
	 * the store like any other, which refuses NUL octets (a NO) */
	imap_char(c, '~');
	if (!imap_char(c, '{'))
		return false;
	while (c->p < c->end && *c->p != '}')
		c->p++;
	return imap_char(c, '}');
}

/* ---- jobs ----------------------------------------------------------------- */

static enum imap_cmd_status imap_append_open_work(struct imap_session *s)
{
	struct imap_append_cmd *c = s->cmd_state;
	struct imap_append_msg *m = &c->msgs[c->n - 1];

	if (!c->mailbox_checked) {
		struct md_status st;
		enum md_result r = md_mailbox_status(s->md_user, c->mailbox, &st);
		c->mailbox_checked = true;
		if (r != MD_OK) {
			c->result = r;
			return CMD_DONE;
		}
	}
	c->result = md_delivery_open(imap_ctx_store(s->ctx), c->size_max, 0, &m->d);
	return CMD_DONE;
}

static enum imap_cmd_status imap_append_write_work(struct imap_session *s)
{
	struct imap_append_cmd *c = s->cmd_state;
	struct imap_append_msg *m = &c->msgs[c->n - 1];

	if (c->result == MD_OK && m->d != NULL && c->chunk.len > 0)
		c->result = md_delivery_write(m->d, c->chunk.data, c->chunk.len);
	buf_reset(&c->chunk);
	return CMD_DONE;
}

static void imap_append_reply_failure(struct imap_session *s, struct imap_append_cmd *c)
{
	if (c->bad != NULL)
		imap_reply(s, "BAD", "%s", c->bad);
	else if (c->result == MD_NOMAILBOX)
		imap_reply(s, "NO", "[TRYCREATE] Mailbox does not exist");
	else if (c->n_done > 0)
		imap_reply(s, "NO", "[SERVERBUG] The first %zu messages were appended anyway",
			   c->n_done);
	else
		imap_reply_md(s, c->result, "APPEND");
}

static enum imap_cmd_status imap_append_commit_work(struct imap_session *s)
{
	struct imap_append_cmd *c = s->cmd_state;
	uint64_t quota = 0, quota_messages = 0;

	if (c->result != MD_OK || c->bad != NULL) {
		imap_append_reply_failure(s, c);
		return CMD_DONE;
	}
	if (auth_user_quota(imap_ctx_auth(s->ctx), s->canonical, &quota, &quota_messages) < 0)
		quota = quota_messages = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct imap_append_msg *m = &c->msgs[i];
		struct md_target t;
		enum md_result r;

		memset(&t, 0, sizeof(t));
		t.address = s->canonical;
		t.mailbox = c->mailbox;
		t.quota_bytes = quota;
		t.quota_messages = quota_messages;
		t.flags = m->flags;
		t.keywords = (const char *const *)m->keywords;
		t.n_keywords = m->n_keywords;
		t.internal_date = m->date;
		r = md_delivery_commit(m->d, &t, 1);
		if (r == MD_OK)
			r = t.result;
		if (r != MD_OK) {
			c->result = r;
			break;
		}
		c->uidvalidity = t.uidvalidity;
		c->uids[c->n_done++] = t.uid;
	}
	if (c->result != MD_OK && c->n_done > 0) {
		/* RFC 3502 §4: all or nothing; take back what was committed */
		struct md_mailbox *mb = NULL;
		if (md_mailbox_open(s->md_user, c->mailbox, &mb, NULL) == MD_OK &&
		    md_msg_expunge(mb, c->uids, c->n_done, 0, NULL, NULL) == MD_OK)
			c->n_done = 0;
		if (mb != NULL)
			md_mailbox_close(mb);
	}
	/* RFC 3501 §6.3.11: appending to the selected mailbox shows EXISTS */
	if (s->view.mb != NULL)
		imap_view_update(s, true);
	if (c->result != MD_OK) {
		imap_append_reply_failure(s, c);
		return CMD_DONE;
	}
	{
		struct buf set;
		buf_init(&set, 0);
		for (size_t i = 0; i < c->n_done; i++)
			buf_appendf(&set, "%s%u", i > 0 ? "," : "", c->uids[i]);
		buf_cstr(&set);
		imap_reply(s, "OK", "[APPENDUID %u %s] APPEND completed", c->uidvalidity,
			   set.data != NULL ? set.data : "");
		buf_free(&set);
	}
	return CMD_DONE;
}

/* ---- the literal ------------------------------------------------------------ */

static void imap_append_end(struct imap_session *s)
{
	s->appending = false; /* the job's end completes the command */
	imap_job_start(s, imap_append_commit_work, NULL);
}

/* A delivery is open (or failed): ask for the literal. */
static void imap_append_opened(struct imap_session *s)
{
	struct imap_append_cmd *c = s->cmd_state;

	if (c->result != MD_OK && c->sync) {
		/* nothing sent yet: refuse before the "+" */
		s->appending = false;
		imap_append_reply_failure(s, c);
		imap_flush(s);
		imap_command_done(s);
		return;
	}
	conn_resume(s->conn);
	if (c->sync)
		conn_printf(s->conn, "+ Ready for literal data\r\n");
	if (c->left > 0)
		conn_read_bytes(s->conn, (size_t)c->left);
}

/* Start the literal of message c->n - 1 (its size is c->left). */
static void imap_append_literal_start(struct imap_session *s)
{
	struct imap_append_cmd *c = s->cmd_state;

	s->appending = true;
	s->busy = true;
	if (c->left == 0 && c->result == MD_OK)
		c->result = MD_BADMSG; /* RFC 5322 §2.1: a message is not empty */
	if (c->result != MD_OK || c->bad != NULL) {
		imap_append_opened(s); /* drop the octets */
		return;
	}
	imap_job_start(s, imap_append_open_work, imap_append_opened);
}

static void imap_append_written(struct imap_session *s)
{
	struct imap_append_cmd *c = s->cmd_state;

	c->flushing = false;
	conn_resume(s->conn);
}

void imap_append_bytes(struct imap_session *s, const char *data, size_t len)
{
	struct imap_append_cmd *c = s->cmd_state;

	if (c == NULL)
		return;
	if (len > c->left)
		len = (size_t)c->left;
	c->left -= len;
	if (c->result != MD_OK || c->bad != NULL)
		return; /* dropped */
	if (buf_append(&c->chunk, data, len) < 0) {
		c->result = MD_TEMPFAIL;
		return;
	}
	if (c->chunk.len >= IMAP_APPEND_CHUNK || c->left == 0) {
		c->flushing = true;
		imap_job_start(s, imap_append_write_work, imap_append_written);
	}
}

/* The line after a literal: "" ends the command, else the next message. */
void imap_append_line(struct imap_session *s, const char *line, size_t len)
{
	struct imap_append_cmd *c = s->cmd_state;
	struct imap_cursor cur;
	struct imap_append_msg *m;
	uint64_t n = 0;
	bool sync = true;
	char *copy;

	/* RFC 6855 §4: the ")" closing a UTF8 data item; after an error the
	 * item was not parsed, so a ")" is taken as one */
	if (len > 0 && line[0] == ')' &&
	    (c->utf8_close || c->result != MD_OK || c->bad != NULL)) {
		line++;
		len--;
	} else if (c->utf8_close && c->bad == NULL) {
		c->bad = "Expected ) after the UTF8 literal";
	}
	c->utf8_close = false;
	if (len == 0) {
		imap_append_end(s);
		return;
	}
	if (imap_literal_header(line, len, &n, &sync) != 1 || line[0] != ' ') {
		if (c->bad == NULL)
			c->bad = "Invalid APPEND arguments";
		imap_append_end(s);
		return;
	}
	if (c->n >= IMAP_APPEND_MSGS_MAX && c->result == MD_OK)
		c->result = MD_LIMIT;
	if (n > c->size_max && c->result == MD_OK)
		c->result = MD_TOOBIG;
	if (c->result != MD_OK || c->bad != NULL) {
		if (sync) {
			s->appending = false;
			imap_append_end(s);
			return;
		}
		if (n > c->size_max && n > IMAP_LITERAL_MAX) {
			conn_printf(s->conn, "* BYE [TOOBIG] Literal too large\r\n");
			conn_close(s->conn);
			return;
		}
		c->left = n;
		c->sync = false;
		imap_append_opened(s);
		return;
	}
	copy = malloc(len);
	if (copy == NULL) {
		c->result = MD_TEMPFAIL;
		imap_append_end(s);
		return;
	}
	memcpy(copy, line, len);
	imap_cursor_init(&cur, copy, len);
	m = &c->msgs[c->n++];
	if (!imap_sp(&cur) || !imap_append_preamble(&cur, m) || !imap_at_end(&cur))
		c->bad = "Invalid APPEND message arguments";
	c->utf8_close = m->utf8;
	free(copy);
	c->left = n;
	c->sync = sync;
	if (c->bad != NULL && sync) {
		imap_append_end(s);
		return;
	}
	imap_append_literal_start(s);
}

void imap_cmd_append(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_append_cmd *c;
	const struct config *cfg = server_config(conn_server(s->conn));

	if (!s->reader.in_literal && s->reader.literal_len == 0 && s->reader.literals == 0) {
		imap_reply(s, "BAD", "APPEND needs a message literal");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_append_free;
	buf_init(&c->chunk, 0);
	c->size_max = cfg->message_size_max;
	c->left = s->reader.literal_len;
	c->sync = s->reader.literal_sync;
	c->n = 1;
	/* the reader stops here: APPEND reads its own input from now on */
	s->reader.in_literal = false;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, c->mailbox, sizeof(c->mailbox)) ||
	    !imap_sp(args) || !imap_append_preamble(args, &c->msgs[0]) || !imap_char(args, '\r') ||
	    !imap_char(args, '\n') || !imap_at_end(args)) {
		c->bad = args->err != NULL ? args->err : "Invalid APPEND arguments";
		if (c->sync) {
			imap_reply(s, "BAD", "%s", c->bad);
			return;
		}
	}
	c->utf8_close = c->msgs[0].utf8;
	imap_append_literal_start(s);
}
