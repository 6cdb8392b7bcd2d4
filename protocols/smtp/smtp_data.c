/* DATA and BDAT: the incremental dot-unstuffer and the message sink.
 *
 * End of data (RFC 5321 §4.1.1.4) is CRLF "." CRLF and nothing else.  The
 * CRLF before the dot is the end of the last line, or the end of the DATA
 * command itself for an empty message.  LF.LF, LF.CRLF, CRLF.LF, CR.CR and
 * every other mix with a bare CR or LF are message content: treating any
 * of them as the end is SMTP smuggling (CVE-2023-51764/5/6), where a
 * second message hides inside the first.  Bare CR and bare LF (RFC 5321
 * §2.3.8 forbids both) are refused after the data is read, or turned into
 * CRLF when smtp_bare_lf = normalise; a dot after a bare line end is never
 * unstuffed, only one after a real CRLF.
 *
 * The sink (smtp_msg_take) counts the size and refuses above
 * message_size_max while still reading everything (RFC 1870 §6.3: 552 at
 * the end), keeps the header block (at most SMTP_HEADER_MAX) until it can
 * be inspected, then hands the bytes to the store in SMTP_SPOOL_FLUSH
 * batches on a worker.  Nothing bigger than a batch is ever in memory.
 *
 * BDAT (RFC 3030) reads exactly the announced octets, without unstuffing
 * or end detection but with the same bare CR/LF and NUL checks.  A chunk
 * that is refused (no transaction, no recipients, after a failed chunk) is
 * read and dropped before its reply, so the client's pipelined chunk never
 * reaches the command parser.
 */
#include "smtp_private.h"
#include "smtp_inbound.h"
#include "smtp_queue.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_DATA_SLICE (16 * 1024) /* input unstuffed per step */
/* The spool holds the header block plus what one step adds. */
#define SMTP_SPOOL_MAX (SMTP_HEADER_MAX + SMTP_SPOOL_FLUSH + 4 * SMTP_DATA_SLICE)

/* ---- the unstuffer --------------------------------------------------------- */

void smtp_unstuff_init(struct smtp_unstuff *u, bool dots, bool normalise)
{
	memset(u, 0, sizeof(*u));
	u->dots = dots;
	u->normalise = normalise;
	u->state = dots ? SMTP_US_BOL : SMTP_US_MID;
}

/* A CR not followed by LF. */
static size_t smtp_bare_cr(struct smtp_unstuff *u, char *out)
{
	u->bare = true;
	out[0] = '\r';
	if (!u->normalise)
		return 1;
	out[1] = '\n';
	return 2;
}

int smtp_unstuff_feed(struct smtp_unstuff *u, const char *in, size_t len,
		      char *out, size_t *out_len_r, size_t *consumed_r)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		switch (u->state) {
		case SMTP_US_END:
			*out_len_r = o;
			*consumed_r = i;
			return 1;
		case SMTP_US_BOL:
			if (c == '.') {
				u->state = SMTP_US_DOT;
				continue;
			}
			break;
		case SMTP_US_DOT:
			if (c == '\r') {
				u->state = SMTP_US_DOT_CR;
				continue;
			}
			break; /* the leading dot is dropped (RFC 5321 §4.5.2) */
		case SMTP_US_DOT_CR:
			if (c == '\n') {
				u->state = SMTP_US_END;
				*out_len_r = o;
				*consumed_r = i + 1;
				return 1;
			}
			o += smtp_bare_cr(u, out + o);
			break;
		case SMTP_US_CR:
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				u->state = u->dots ? SMTP_US_BOL : SMTP_US_MID;
				continue;
			}
			o += smtp_bare_cr(u, out + o);
			break;
		case SMTP_US_MID:
			break;
		}
		/* an octet inside a line */
		u->state = SMTP_US_MID;
		if (c == '\r') {
			u->state = SMTP_US_CR;
		} else if (c == '\n') {
			u->bare = true;
			if (u->normalise)
				out[o++] = '\r';
			out[o++] = '\n';
		} else {
			if (c == '\0')
				u->nul = true;
			out[o++] = c;
		}
	}
	*out_len_r = o;
	*consumed_r = len;
	return u->state == SMTP_US_END ? 1 : 0;
}

void smtp_unstuff_finish(struct smtp_unstuff *u, char *out, size_t *out_len_r)
{
	*out_len_r = 0;
	if (u->state == SMTP_US_CR || u->state == SMTP_US_DOT_CR)
		*out_len_r = smtp_bare_cr(u, out);
	u->state = SMTP_US_MID;
}

/* ---- the message sink -------------------------------------------------------- */

static void smtp_refuse(struct smtp_msg *m, enum smtp_verdict v)
{
	if (m->verdict != SMTP_VERDICT_OK)
		return;
	m->verdict = v;
	buf_free(&m->spool); /* the rest is read and dropped */
}

void smtp_strip_authres(struct smtp_session *s, struct smtp_msg *m, size_t *hlen)
{
	size_t n = authres_strip(&m->spool, hlen, s->ctx->cfg->hostname);

	if (n > 0)
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp id=%s removed %zu forged "
			 "Authentication-Results field(s)", s->tx.id, n);
}

static void smtp_msg_take(struct smtp_session *s, struct smtp_msg *m, const char *data, size_t len)
{
	uint64_t max = s->ctx->cfg->message_size_max;

	if (m->us.nul)
		smtp_refuse(m, SMTP_VERDICT_NUL);
	if (m->us.bare && !m->us.normalise)
		smtp_refuse(m, SMTP_VERDICT_BARE_LF);
	if (max > 0 && len > max - (m->size < max ? m->size : max))
		smtp_refuse(m, SMTP_VERDICT_TOO_BIG);
	m->size += len;
	if (m->verdict != SMTP_VERDICT_OK || len == 0)
		return;
	if (buf_append(&m->spool, data, len) < 0) {
		smtp_refuse(m, SMTP_VERDICT_MEMORY);
		return;
	}
	if (!m->hdr_done) {
		long h = smtp_header_end(m->spool.data, m->spool.len, &m->hdr_scan);
		if (h >= 0) {
			size_t hl = (size_t)h;
			if (m->inbound != NULL)
				smtp_strip_authres(s, m, &hl);
			smtp_inspect_header(s, m, m->spool.data, hl);
			m->hdr_done = true;
		} else if (m->spool.len > SMTP_HEADER_MAX) {
			/* Unchecked inbound mail needs no inspection beyond the
			 * hop count; checked mail must have its forged
			 * Authentication-Results removed, submissions must
			 * show their From: header. */
			if (!smtp_is_submission(s) && m->inbound == NULL)
				m->hdr_done = true;
			else
				smtp_refuse(m, SMTP_VERDICT_HEADER_TOO_BIG);
		}
	}
}

static struct smtp_msg *smtp_msg_new(struct smtp_session *s, bool dots)
{
	struct smtp_msg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	smtp_unstuff_init(&m->us, dots, s->ctx->cfg->smtp_bare_lf == BARE_LF_NORMALISE);
	buf_init(&m->spool, SMTP_SPOOL_MAX);
	buf_init(&m->prefix, 0);
	buf_init(&m->headers, SMTP_HEADER_MAX);
	if (smtp_inbound_wanted(s)) {
		m->inbound = smtp_inbound_new(s);
		if (m->inbound == NULL) {
			buf_free(&m->prefix);
			free(m);
			return NULL;
		}
	}
	if (smtp_build_trace(s, m) < 0) {
		smtp_inbound_free(m->inbound);
		buf_free(&m->prefix);
		free(m);
		return NULL;
	}
	return m;
}

/* ---- DATA -------------------------------------------------------------------- */

void smtp_cmd_data(struct smtp_session *s, const char *args)
{
	if (args[0] != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	switch (s->state) {
	case SMTP_STATE_RCPT:
		break;
	case SMTP_STATE_MAIL:
		/* RFC 5321 §3.3: DATA with no accepted recipient */
		smtp_reply(s, "%s 5.5.1 No valid recipients", smtp_no_rcpt_code(s));
		return;
	case SMTP_STATE_CHUNKING:
		smtp_reply(s, "503 5.5.1 DATA not allowed during BDAT transfer");
		return;
	case SMTP_STATE_INIT:
		smtp_reply(s, "503 5.5.1 Send %s first", smtp_hello_verb(s));
		return;
	default:
		smtp_reply(s, "503 5.5.1 Need MAIL and RCPT before DATA");
		return;
	}
	s->tx.msg = smtp_msg_new(s, true);
	if (s->tx.msg == NULL) {
		smtp_reply(s, "451 4.3.0 Out of memory");
		return;
	}
	smtp_enter_state(s, SMTP_STATE_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* After each step: hand a full batch to the store. */
static void smtp_msg_maybe_flush(struct smtp_session *s, struct smtp_msg *m)
{
	if (m->verdict == SMTP_VERDICT_OK && m->hdr_done && m->spool.len >= SMTP_SPOOL_FLUSH)
		smtp_flush(s);
}

static size_t smtp_data_text(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_msg *m = s->tx.msg;
	char out[2 * SMTP_DATA_SLICE + 2];
	size_t n = len < SMTP_DATA_SLICE ? len : SMTP_DATA_SLICE, olen, used;
	int end = smtp_unstuff_feed(&m->us, data, n, out, &olen, &used);

	smtp_msg_take(s, m, out, olen);
	if (end) {
		smtp_finish(s);
		return used;
	}
	smtp_msg_maybe_flush(s, m);
	return used;
}

/* ---- BDAT -------------------------------------------------------------------- */

static void smtp_bdat_chunk_end(struct smtp_session *s)
{
	struct smtp_msg *m = s->tx.msg;

	if (s->bdat_reply[0] != '\0') {
		smtp_enter_state(s, s->bdat_return);
		smtp_reply(s, "%s", s->bdat_reply);
		s->bdat_reply[0] = '\0';
		return;
	}
	if (s->bdat_last) {
		char out[2];
		size_t olen;
		smtp_unstuff_finish(&m->us, out, &olen);
		smtp_msg_take(s, m, out, olen);
		smtp_finish(s);
		return;
	}
	if (m->verdict != SMTP_VERDICT_OK) {
		/* RFC 3030 §2: the transaction failed; chunks still in the
		 * pipeline are read and refused with 503.  One reply, in LMTP
		 * too: only BDAT LAST answers per recipient. */
		char reply[SMTP_REPLY_MAX];
		smtp_verdict_text(s, m, reply, sizeof(reply));
		smtp_reply(s, "%s", reply);
		smtp_tx_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		return;
	}
	smtp_enter_state(s, SMTP_STATE_CHUNKING);
	smtp_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->bdat_size);
	smtp_msg_maybe_flush(s, m);
}

static size_t smtp_data_chunk(struct smtp_session *s, const char *data, size_t len)
{
	size_t n = len;

	if (n > SMTP_DATA_SLICE)
		n = SMTP_DATA_SLICE;
	if (n > s->bdat_left)
		n = (size_t)s->bdat_left;
	if (s->bdat_reply[0] == '\0') {
		struct smtp_msg *m = s->tx.msg;
		char out[2 * SMTP_DATA_SLICE + 2];
		size_t olen, used;
		smtp_unstuff_feed(&m->us, data, n, out, &olen, &used);
		smtp_msg_take(s, m, out, olen);
	}
	s->bdat_left -= n;
	if (s->bdat_left == 0)
		smtp_bdat_chunk_end(s);
	else if (s->bdat_reply[0] == '\0')
		smtp_msg_maybe_flush(s, s->tx.msg);
	return n;
}

void smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	char digits[24];
	const char *p = args;
	size_t n = 0;
	uint64_t size;
	bool last = false;

	while (isdigit((unsigned char)p[n]))
		n++;
	if (n > 0 && n < sizeof(digits)) {
		memcpy(digits, p, n);
		digits[n] = '\0';
		p += n;
		if (strcasecmp(p, " LAST") == 0) {
			last = true;
			p += 5;
		}
	}
	if (n == 0 || n >= sizeof(digits) || *p != '\0' ||
	    str_to_u64(digits, 0, UINT64_MAX, &size) < 0) {
		/* Without a valid size the chunk's end is unknown: the rest of
		 * the stream cannot be told from commands. */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_close(s, "421 4.5.0 %s Closing: cannot find the end of the BDAT chunk",
			   s->ctx->cfg->hostname);
		return;
	}
	s->bdat_size = size;
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_reply[0] = '\0';
	s->bdat_return = s->state;
	switch (s->state) {
	case SMTP_STATE_RCPT:
		s->tx.msg = smtp_msg_new(s, false);
		if (s->tx.msg == NULL)
			snprintf(s->bdat_reply, sizeof(s->bdat_reply), "452 4.3.0 Out of memory");
		break;
	case SMTP_STATE_CHUNKING:
		break;
	case SMTP_STATE_MAIL:
		snprintf(s->bdat_reply, sizeof(s->bdat_reply), "%s 5.5.1 No valid recipients",
			 smtp_no_rcpt_code(s));
		break;
	case SMTP_STATE_INIT:
		snprintf(s->bdat_reply, sizeof(s->bdat_reply), "503 5.5.1 Send %s first",
			 smtp_hello_verb(s));
		break;
	default:
		snprintf(s->bdat_reply, sizeof(s->bdat_reply),
			 "503 5.5.1 Need MAIL and RCPT before BDAT");
		break;
	}
	smtp_enter_state(s, SMTP_STATE_BDAT);
	if (size == 0)
		smtp_bdat_chunk_end(s);
}

size_t smtp_data_input(struct smtp_session *s, const char *data, size_t len)
{
	if (s->state == SMTP_STATE_BDAT)
		return smtp_data_chunk(s, data, len);
	return smtp_data_text(s, data, len);
}

/* ---- replies and cleanup ------------------------------------------------------ */

void smtp_store_result_reply(enum md_result r, bool perm_quota, const char **code_r,
			     const char **text_r)
{
	switch (r) {
	case MD_QUOTA: /* RFC 3463 X.2.2: mailbox full */
		*code_r = perm_quota ? "552 5.2.2" : "452 4.2.2";
		*text_r = "Mailbox full";
		return;
	case MD_TOOBIG:
		*code_r = "552 5.3.4";
		*text_r = "Message size exceeds fixed maximum message size";
		return;
	case MD_BADMSG:
		*code_r = "554 5.6.0";
		*text_r = "Message refused by the store";
		return;
	case MD_BADNAME:
	case MD_NOUSER:
		*code_r = "550 5.1.1";
		*text_r = "Mailbox unavailable";
		return;
	case MD_NOSPACE: /* RFC 3463 X.3.1: mail system full */
		*code_r = "452 4.3.1";
		*text_r = "Mail system full, try again later";
		return;
	default:
		*code_r = "451 4.3.0";
		*text_r = "Temporary local error, try again later";
		return;
	}
}

void smtp_verdict_text(const struct smtp_session *s, const struct smtp_msg *m,
		       char *out, size_t outlen)
{
	bool perm = s->ctx->cfg->quota_error_permanent;
	const char *code, *text;

	switch (m->verdict) {
	case SMTP_VERDICT_OK:
	case SMTP_VERDICT_NO_RECIPIENTS:
		snprintf(out, outlen, "554 5.5.1 No valid recipients");
		return;
	case SMTP_VERDICT_TOO_BIG:
		snprintf(out, outlen, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	case SMTP_VERDICT_BARE_LF:
		snprintf(out, outlen, "554 5.6.0 Bare CR or LF in message text not allowed "
			 "(RFC 5321 2.3.8)");
		return;
	case SMTP_VERDICT_NUL:
		snprintf(out, outlen, "554 5.6.0 NUL octet in message text not allowed");
		return;
	case SMTP_VERDICT_HEADER_TOO_BIG:
		snprintf(out, outlen, "552 5.3.4 Message header exceeds %d octets", SMTP_HEADER_MAX);
		return;
	case SMTP_VERDICT_HOPS:
		snprintf(out, outlen, "554 5.4.6 Too many hops (mail loop?)");
		return;
	case SMTP_VERDICT_NO_FROM:
		snprintf(out, outlen, "550 5.6.0 Message needs exactly one From: header");
		return;
	case SMTP_VERDICT_BAD_FROM:
		snprintf(out, outlen, "550 5.6.0 Cannot parse the From: header");
		return;
	case SMTP_VERDICT_FROM_NOT_OWNED:
		snprintf(out, outlen, "553 5.7.1 From: address <%s> not owned by user %s",
			 m->verdict_detail, s->user);
		return;
	case SMTP_VERDICT_QUOTA:
		smtp_store_result_reply(MD_QUOTA, perm, &code, &text);
		snprintf(out, outlen, "%s %s", code, text);
		return;
	case SMTP_VERDICT_MEMORY:
		snprintf(out, outlen, "451 4.3.0 Out of memory, try again later");
		return;
	case SMTP_VERDICT_DMARC: /* RFC 7489 §6.7 / §10.3 */
		snprintf(out, outlen, "550 5.7.1 Rejected by the DMARC policy of %s",
			 m->verdict_detail);
		return;
	case SMTP_VERDICT_STORE:
		break;
	}
	smtp_store_result_reply(m->store_result, perm, &code, &text);
	snprintf(out, outlen, "%s %s", code, text);
}

static void smtp_delivery_free_work(void *arg)
{
	md_delivery_free(arg);
}

static void smtp_queue_free_work(void *arg)
{
	queue_writer_free(arg);
}

void smtp_msg_free(struct smtp_session *s, struct smtp_msg *m)
{
	if (m->d != NULL) {
		/* Removing the spool file is file-system work, a worker's; but
		 * a closing connection may be torn down by a server that is
		 * stopping its workers, so then it is done here (an unlink). */
		if (conn_is_closing(s->conn) ||
		    worker_submit(server_workers(s->ctx->srv), smtp_delivery_free_work, NULL, m->d) < 0)
			md_delivery_free(m->d);
		m->d = NULL;
	}
	if (m->qw != NULL) {
		/* an uncommitted queue file is removed: same reasoning */
		if (conn_is_closing(s->conn) ||
		    worker_submit(server_workers(s->ctx->srv), smtp_queue_free_work, NULL, m->qw) < 0)
			queue_writer_free(m->qw);
		m->qw = NULL;
	}
	smtp_inbound_free(m->inbound);
	buf_free(&m->spool);
	buf_free(&m->prefix);
	buf_free(&m->headers);
	free(m->targets);
	smtp_sieve_free(m->sieve);
	free(m);
}
