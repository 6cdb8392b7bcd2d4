/* POP3 TRANSACTION and UPDATE states (RFC 1939 §5, §6, §7): STAT, LIST,
 * RETR, TOP, DELE, RSET, UIDL, QUIT; the snapshot's sizes; streaming.
 *
 * RETR and TOP read the file on a worker, which also does the byte-
 * stuffing, straight into the buffer that the connection then sends
 * (conn_write_owned: no copy on the loop).  A message up to
 * POP3_WHOLE_MAX is one job and one write; a larger one goes
 * POP3_CHUNK at a time, queueing at most POP3_OUTPUT_HIGH bytes before
 * waiting for CONN_EV_DRAINED, so it never sits whole in memory.  A
 * file without a line to stuff (its POP3 size is its size) is read into
 * that buffer directly, with no second pass.  A RETR's job also reads
 * the next few small messages ahead (POP3_AHEAD_*): their RETRs are
 * answered on the loop without a worker round trip.  LIST and UIDL of a
 * big mailbox yield on CONN_EV_DRAINED too. */
#include "pop3_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "store.h"
#include "util.h"

/* ---- the snapshot (worker thread) --------------------------------------- */

/* The POP3 size of one message indexed before the store kept it: its
 * bytes run through the stuffer. */
static enum md_result pop3_scan_size(struct pop3_session *s, struct md_msg *m, char *buf,
				     uint64_t *size_r)
{
	struct pop3_stuffer st;
	uint64_t size = 0, off = 0;
	enum md_result r;
	int fd;

	r = md_msg_open(s->mb, m, &fd);
	if (r != MD_OK)
		return r;
	pop3_stuff_init(&st, POP3_TOP_ALL);
	for (;;) {
		ssize_t n = pread(fd, buf, POP3_CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(s->job_error, sizeof(s->job_error), "%s: %s", m->path, strerror(errno));
			close(fd);
			return MD_TEMPFAIL;
		}
		if (n == 0)
			break;
		size += pop3_stuff(&st, buf, (size_t)n, NULL);
		off += (uint64_t)n;
	}
	size += pop3_stuff_finish(&st, NULL);
	close(fd);
	*size_r = size;
	return MD_OK;
}

int pop3_snapshot_sizes(struct pop3_session *s)
{
	size_t kept = 0;
	char *buf = NULL;

	s->msgs = calloc(s->n_msgs > 0 ? s->n_msgs : 1, sizeof(*s->msgs));
	if (s->msgs == NULL)
		return -1;
	for (size_t i = 0; i < s->n_md_msgs; i++) {
		struct md_msg *m = &s->md_msgs[i];
		uint64_t size = m->pop3_size;
		enum md_result r = MD_OK;

		/* The store computed the size at delivery; only a message
		 * indexed by an older version (pop3_size 0) is read, once per
		 * process thanks to the cache. */
		if (size == 0 && !pop3_size_cache_get(s->ctx, m->basename, m->size, &size)) {
			if (buf == NULL && (buf = malloc(POP3_CHUNK)) == NULL)
				return -1;
			r = pop3_scan_size(s, m, buf, &size);
			if (r == MD_NOTFOUND)
				continue; /* expunged meanwhile: not in this session */
			if (r != MD_OK) {
				free(buf);
				return -1;
			}
			pop3_size_cache_put(s->ctx, m->basename, m->size, size);
		}
		/* Keep the order (ascending UID = message numbers); the
		 * dropped entries move to the tail, still freed at the end. */
		if (kept != i) {
			struct md_msg tmp = s->md_msgs[kept];
			s->md_msgs[kept] = *m;
			*m = tmp;
		}
		s->msgs[kept++].size = size;
	}
	free(buf);
	s->n_msgs = kept;
	return 0;
}

/* ---- small commands ----------------------------------------------------- */

static void pop3_totals(const struct pop3_session *s, size_t *n_r, uint64_t *octets_r)
{
	*n_r = 0;
	*octets_r = 0;
	for (size_t i = 0; i < s->n_msgs; i++)
		if (!s->msgs[i].deleted) {
			(*n_r)++;
			*octets_r += s->msgs[i].size;
		}
}

/* A message-number argument: 0 with its index, or -1 after "-ERR". */
static int pop3_msg_arg(struct pop3_session *s, const char *arg, size_t *index_r)
{
	uint64_t n;

	if (pop3_parse_number(arg, 1, UINT64_MAX, &n) < 0) {
		pop3_err(s, "Invalid message number");
		return -1;
	}
	if (n > s->n_msgs) {
		pop3_err(s, "No such message, only %zu messages in maildrop", s->n_msgs);
		return -1;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_err(s, "Message %llu already deleted", (unsigned long long)n);
		return -1;
	}
	*index_r = (size_t)(n - 1);
	return 0;
}

void pop3_cmd_stat(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	size_t n;
	uint64_t octets;

	(void)cmd;
	pop3_totals(s, &n, &octets);
	/* RFC 1939 §5: "+OK nn mm" and nothing more. */
	pop3_ok(s, "%zu %llu", n, (unsigned long long)octets);
}

static void pop3_list_cont(struct pop3_session *s)
{
	while (s->cont_pos < s->n_msgs && conn_output_pending(s->conn) < POP3_OUTPUT_HIGH) {
		size_t i = s->cont_pos++;
		if (!s->msgs[i].deleted)
			conn_printf(s->conn, "%zu %llu\r\n", i + 1,
				    (unsigned long long)s->msgs[i].size);
	}
	if (s->cont_pos < s->n_msgs)
		return; /* DRAINED calls again */
	conn_write(s->conn, ".\r\n", 3);
	s->cont = NULL;
	pop3_command_done(s);
}

static void pop3_uidl_cont(struct pop3_session *s)
{
	char uidl[POP3_UIDL_MAX + 1];

	while (s->cont_pos < s->n_msgs && conn_output_pending(s->conn) < POP3_OUTPUT_HIGH) {
		size_t i = s->cont_pos++;
		if (s->msgs[i].deleted)
			continue;
		pop3_uidl_from_basename(s->md_msgs[i].uidl != NULL ?
						s->md_msgs[i].uidl :
						s->md_msgs[i].basename, uidl);
		conn_printf(s->conn, "%zu %s\r\n", i + 1, uidl);
	}
	if (s->cont_pos < s->n_msgs)
		return;
	conn_write(s->conn, ".\r\n", 3);
	s->cont = NULL;
	pop3_command_done(s);
}

static void pop3_start_listing(struct pop3_session *s, pop3_cont_fn *fn)
{
	s->cont = fn;
	s->cont_pos = 0;
	pop3_begin_async(s);
	fn(s);
}

void pop3_cmd_list(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	size_t i, n;
	uint64_t octets;

	if (cmd->nargs == 1) {
		if (pop3_msg_arg(s, cmd->args[0], &i) == 0)
			pop3_ok(s, "%zu %llu", i + 1, (unsigned long long)s->msgs[i].size);
		return;
	}
	pop3_totals(s, &n, &octets);
	pop3_ok(s, "%zu messages (%llu octets)", n, (unsigned long long)octets);
	pop3_start_listing(s, pop3_list_cont);
}

void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	char uidl[POP3_UIDL_MAX + 1];
	size_t i;

	if (cmd->nargs == 1) {
		if (pop3_msg_arg(s, cmd->args[0], &i) == 0) {
			pop3_uidl_from_basename(s->md_msgs[i].uidl != NULL ?
						s->md_msgs[i].uidl :
						s->md_msgs[i].basename, uidl);
			pop3_ok(s, "%zu %s", i + 1, uidl);
		}
		return;
	}
	pop3_ok(s, "Unique-ID listing follows");
	pop3_start_listing(s, pop3_uidl_cont);
}

void pop3_cmd_dele(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	size_t i;

	if (pop3_msg_arg(s, cmd->args[0], &i) < 0)
		return;
	/* RFC 1939 §5: only marked; removed in the UPDATE state. */
	s->msgs[i].deleted = true;
	s->dele_count++;
	pop3_ok(s, "Message %zu deleted", i + 1);
}

void pop3_cmd_rset(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	size_t n;
	uint64_t octets;

	(void)cmd;
	for (size_t i = 0; i < s->n_msgs; i++)
		s->msgs[i].deleted = false;
	pop3_totals(s, &n, &octets);
	pop3_ok(s, "Maildrop has %zu messages (%llu octets)", n, (unsigned long long)octets);
}

/* ---- RETR / TOP streaming ----------------------------------------------- */

void pop3_stream_free(struct pop3_stream *st)
{
	if (st == NULL)
		return;
	if (st->fd >= 0)
		close(st->fd);
	free(st->out);
	free(st);
}

void pop3_ahead_free(struct pop3_session *s)
{
	for (size_t i = 0; i < s->n_ahead; i++)
		free(s->ahead[i].data);
	s->n_ahead = 0;
}

static void pop3_stream_end(struct pop3_session *s)
{
	pop3_stream_free(s->stream);
	s->stream = NULL;
	pop3_command_done(s);
}

/* RETR's status line (RFC 1939 §7: the size is LIST's). */
static size_t pop3_retr_status(char *out, uint64_t size)
{
	return (size_t)snprintf(out, POP3_STATUS_MAX, "+OK %llu octets\r\n",
				(unsigned long long)size);
}

/* Read up to want bytes of fd from offset and append them to out (which
 * has room for 2 * want), stuffed unless verbatim.  Returns the bytes
 * read (fewer at the end of the file) with *out_len_r the bytes
 * appended, or -1 with errno.  scratch holds POP3_READ_BUF bytes. */
static ssize_t pop3_fill(int fd, uint64_t offset, size_t want, struct pop3_stuffer *stf,
			 bool verbatim, char *out, size_t *out_len_r, char *scratch)
{
	size_t got = 0, o = 0;

	while (got < want && !stf->done) {
		size_t n_want = want - got;
		char *dst = verbatim ? out + o : scratch;
		ssize_t n;

		if (!verbatim && n_want > POP3_READ_BUF)
			n_want = POP3_READ_BUF;
		n = pread(fd, dst, n_want, (off_t)(offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
		if (verbatim) {
			o += (size_t)n;
			stf->bol = out[o - 1] == '\n'; /* for pop3_stuff_finish() */
		} else {
			o += pop3_stuff(stf, scratch, (size_t)n, out + o);
		}
	}
	*out_len_r = o;
	return (ssize_t)got;
}

/* Worker: read one message whole (it is at most POP3_AHEAD_BYTES in the
 * snapshot) into a complete RETR response.  MD_OK with *a filled. */
static enum md_result pop3_read_one_ahead(struct pop3_session *s, size_t index,
					  char *scratch, struct pop3_ahead *a)
{
	uint64_t size = s->msgs[index].size;
	struct pop3_stuffer stf;
	struct stat sb;
	size_t head, body;
	ssize_t got;
	char *out;
	int fd;
	enum md_result r = md_msg_open(s->mb, &s->md_msgs[index], &fd);

	if (r != MD_OK)
		return r;
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size > POP3_AHEAD_BYTES ||
	    (uint64_t)sb.st_size != s->md_msgs[index].size ||
	    (out = malloc(POP3_STATUS_MAX + 2 * (size_t)sb.st_size + 2 + 3)) == NULL) {
		close(fd);
		return MD_TEMPFAIL;
	}
	pop3_stuff_init(&stf, POP3_TOP_ALL);
	head = pop3_retr_status(out, size);
	got = pop3_fill(fd, 0, (size_t)sb.st_size, &stf, size == (uint64_t)sb.st_size,
			out + head, &body, scratch);
	close(fd);
	if (got != (ssize_t)sb.st_size) {
		/* failed, or shrank: its own RETR reads it again and says so */
		free(out);
		return MD_TEMPFAIL;
	}
	body += pop3_stuff_finish(&stf, out + head + body);
	memcpy(out + head + body, ".\r\n", 3);
	a->index = index;
	a->data = out;
	a->len = head + body + 3;
	a->sent = body;
	return MD_OK;
}

/* Worker, after a RETR read its message whole: the next messages that are
 * not deleted, while they fit.  A failure only ends the read-ahead; that
 * message's own RETR then reads it again and reports. */
static void pop3_read_ahead(struct pop3_session *s, size_t from, char *scratch)
{
	uint64_t bytes = 0;

	for (size_t j = from; j < s->n_msgs && s->n_ahead < POP3_AHEAD_MSGS; j++) {
		if (s->msgs[j].deleted)
			continue;
		if (s->msgs[j].size > POP3_AHEAD_BYTES - bytes)
			break;
		if (pop3_read_one_ahead(s, j, scratch, &s->ahead[s->n_ahead]) != MD_OK)
			break;
		bytes += s->msgs[j].size;
		s->n_ahead++;
	}
}

/* Worker: is the file still the one indexed (its size; LIST and the
 * status line come from the index)?  When it is not -- truncated or
 * rewritten by another program, before or while it is read -- the
 * response cannot be right: MD_CORRUPT with the reason in job_error
 * (pop3_read_done() answers -ERR, or closes the connection mid-message,
 * never a short message that a client would take as whole and delete). */
static bool pop3_file_changed(struct pop3_session *s, struct pop3_stream *st, uint64_t size)
{
	const struct md_msg *m = &s->md_msgs[st->index];

	if (size == m->size)
		return false;
	snprintf(s->job_error, sizeof(s->job_error), "%s is %llu octets, indexed %llu", m->path,
		 (unsigned long long)size, (unsigned long long)m->size);
	st->result = MD_CORRUPT;
	return true;
}

static void pop3_read_work(void *arg)
{
	struct pop3_session *s = arg;
	struct pop3_stream *st = s->stream;
	char scratch[POP3_READ_BUF];
	size_t head = 0, want, body;
	uint64_t left;
	bool whole;
	ssize_t got;

	st->out = NULL;
	st->out_len = 0;
	s->job_error[0] = '\0';
	if (st->fd < 0) {
		struct stat sb;
		int fd;
		enum md_result r = md_msg_open(s->mb, &s->md_msgs[st->index], &fd);

		if (r != MD_OK) {
			if (s->md_user != NULL)
				str_copy(s->job_error, md_user_error(s->md_user),
					 sizeof(s->job_error));
			st->result = (int)r;
			return;
		}
		if (fstat(fd, &sb) < 0) {
			close(fd);
			st->result = MD_TEMPFAIL;
			return;
		}
		if (pop3_file_changed(s, st, (uint64_t)sb.st_size)) {
			close(fd);
			return;
		}
		st->fd = fd;
		st->file_size = (uint64_t)sb.st_size;
		/* Most stored mail has no line starting with '.': its POP3
		 * size is its file size and no byte needs changing. */
		st->verbatim = st->st.top_lines == POP3_TOP_ALL &&
			       s->msgs[st->index].size == st->file_size;
	}
	left = st->offset < st->file_size ? st->file_size - st->offset : 0;
	whole = !st->started && st->file_size <= POP3_WHOLE_MAX;
	want = whole || left < POP3_CHUNK ? (size_t)left : POP3_CHUNK;
	st->out = malloc(POP3_STATUS_MAX + 2 * want + 2 + 3);
	if (st->out == NULL) {
		st->result = MD_TEMPFAIL;
		return;
	}
	if (!st->started) {
		if (st->st.top_lines == POP3_TOP_ALL)
			head = pop3_retr_status(st->out, s->msgs[st->index].size);
		else
			head = (size_t)snprintf(st->out, POP3_STATUS_MAX,
						"+OK Top of message follows\r\n");
	}
	got = pop3_fill(st->fd, st->offset, want, &st->st, st->verbatim, st->out + head,
			&body, scratch);
	if (got < 0 || ((size_t)got < want && !st->st.done &&
			pop3_file_changed(s, st, st->offset + (uint64_t)got))) {
		if (got < 0) {
			snprintf(s->job_error, sizeof(s->job_error), "%s: %s",
				 s->md_msgs[st->index].path, strerror(errno));
			st->result = MD_TEMPFAIL;
		}
		free(st->out);
		st->out = NULL;
		return;
	}
	st->offset += (uint64_t)got;
	st->last = (size_t)got < want || st->offset >= st->file_size || st->st.done;
	if (st->last) {
		body += pop3_stuff_finish(&st->st, st->out + head + body);
		memcpy(st->out + head + body, ".\r\n", 3);
		close(st->fd);
		st->fd = -1;
	}
	st->sent += body;
	st->out_len = head + body + (st->last ? 3 : 0);
	st->started = true;
	st->result = MD_OK;
	if (st->last && whole && st->ahead)
		pop3_read_ahead(s, st->index + 1, scratch);
}

static void pop3_read_done(void *arg);

static void pop3_read_next(struct pop3_session *s)
{
	s->stream->waiting = false;
	if (pop3_submit(s, POP3_JOB_READ, pop3_read_work, pop3_read_done) < 0) {
		/* Mid-response nothing else can be said: the framing is lost. */
		conn_log(s->conn, LOG_LEVEL_ERROR, "pop3 cannot queue a read job");
		pop3_close(s);
		pop3_stream_end(s);
	}
}

/* A RETR response is complete: count it, and check it against LIST. */
static void pop3_retr_sent(struct pop3_session *s, size_t index, uint64_t sent)
{
	s->retr_count++;
	if (sent != s->msgs[index].size)
		conn_log(s->conn, LOG_LEVEL_WARN,
			 "pop3 msg=%zu sent %llu octets, listed %llu (file changed?)", index + 1,
			 (unsigned long long)sent, (unsigned long long)s->msgs[index].size);
}

static void pop3_read_done(void *arg)
{
	struct pop3_session *s = arg;
	struct pop3_stream *st = s->stream;

	s->job = POP3_JOB_NONE;
	if (conn_is_closing(s->conn)) {
		pop3_stream_end(s);
		return;
	}
	if (st->result != MD_OK) {
		if (st->result != MD_NOTFOUND)
			conn_log(s->conn, LOG_LEVEL_ERROR, "pop3 read failed user=%s msg=%zu%s: %s",
				 s->canonical, st->index + 1,
				 st->started ? ", closing mid-message" : "", s->job_error);
		if (st->started)
			pop3_close(s); /* no ".": the client must not take it as whole */
		else if (st->result == MD_NOTFOUND)
			pop3_err(s, "Message %zu was removed by another session", st->index + 1);
		else if (st->result == MD_CORRUPT)
			/* RFC 3206 §4: retrying will not help, reindexing will */
			pop3_err(s, "[SYS/PERM] Message %zu changed on disk since it was listed",
				 st->index + 1);
		else
			pop3_err(s, "[SYS/TEMP] Cannot read message %zu", st->index + 1);
		pop3_stream_end(s);
		return;
	}
	s->errors = 0;
	/* Status line, data and terminator of a small message are one
	 * buffer: it leaves in one TLS record and one TCP segment, which the
	 * peer's delayed ACK cannot hold back behind Nagle. */
	conn_write_owned(s->conn, st->out, st->out_len);
	st->out = NULL;
	if (!st->last) {
		if (conn_output_pending(s->conn) < POP3_OUTPUT_HIGH)
			pop3_read_next(s);
		else
			st->waiting = true; /* CONN_EV_DRAINED resumes */
		return;
	}
	if (st->st.top_lines == POP3_TOP_ALL)
		pop3_retr_sent(s, st->index, st->sent);
	pop3_stream_end(s);
}

/* RETR of a message read ahead: answered here, no job. */
static bool pop3_retr_from_ahead(struct pop3_session *s, size_t index)
{
	for (size_t i = 0; i < s->n_ahead; i++) {
		struct pop3_ahead *a = &s->ahead[i];

		if (a->index != index || a->data == NULL)
			continue;
		s->errors = 0;
		conn_write_owned(s->conn, a->data, a->len);
		a->data = NULL;
		pop3_retr_sent(s, index, a->sent);
		return true;
	}
	return false;
}

static void pop3_stream_start(struct pop3_session *s, size_t index, uint64_t top_lines)
{
	struct pop3_stream *st = calloc(1, sizeof(*st));

	if (st == NULL) {
		pop3_err(s, "[SYS/TEMP] Out of memory");
		return;
	}
	st->fd = -1;
	st->index = index;
	pop3_stuff_init(&st->st, top_lines);
	if (top_lines == POP3_TOP_ALL) {
		/* A RETR that was not read ahead: the client left the order
		 * (or this is the first); what was read ahead goes. */
		pop3_ahead_free(s);
		st->ahead = true;
	}
	s->stream = st;
	pop3_begin_async(s);
	pop3_read_next(s);
}

void pop3_cmd_retr(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	size_t i;

	if (pop3_msg_arg(s, cmd->args[0], &i) < 0)
		return;
	if (!pop3_retr_from_ahead(s, i))
		pop3_stream_start(s, i, POP3_TOP_ALL);
}

void pop3_cmd_top(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	uint64_t lines;
	size_t i;

	/* RFC 1939 §7: TOP msg n, n a non-negative number of body lines. */
	if (pop3_parse_number(cmd->args[1], 0, POP3_TOP_ALL - 1, &lines) < 0) {
		pop3_err(s, "Invalid number of lines");
		return;
	}
	if (pop3_msg_arg(s, cmd->args[0], &i) == 0)
		pop3_stream_start(s, i, lines);
}

void pop3_cmd_drained(struct pop3_session *s)
{
	if (s->cont != NULL)
		s->cont(s);
	else if (s->stream != NULL && s->stream->waiting)
		pop3_read_next(s);
}

/* ---- QUIT: the UPDATE state --------------------------------------------- */

static void pop3_expunge_work(void *arg)
{
	struct pop3_session *s = arg;
	uint32_t *expunged = NULL;
	size_t n = 0;
	enum md_result r;

	/* All marked messages in one call; the store makes it durable before
	 * returning.  Nothing at all happens without QUIT (RFC 1939 §6). */
	r = md_msg_expunge(s->mb, s->expunge_uids, s->n_expunge, 0, &expunged, &n);
	if (r != MD_OK && s->md_user != NULL)
		str_copy(s->job_error, md_user_error(s->md_user), sizeof(s->job_error));
	free(expunged);
	s->n_expunged = r == MD_OK ? n : 0;
	s->n_kept = r == MD_OK ? md_msg_expunge_kept(s->mb) : 0;
	s->job_result = (int)r;
	pop3_release_store(s);
}

static void pop3_expunge_done(void *arg)
{
	struct pop3_session *s = arg;
	size_t left = s->n_msgs - s->n_expunge;

	s->job = POP3_JOB_NONE;
	if (s->job_result == MD_OK && s->n_kept > 0) {
		conn_log(s->conn, LOG_LEVEL_ERROR,
			 "pop3 logout user=%s deleted=%zu kept=%zu", s->canonical,
			 s->n_expunged, s->n_kept);
		/* RFC 1939 §6: some deleted messages not removed */
		pop3_err(s, "[SYS/TEMP] %zu deleted messages could not be removed; "
			 "they are kept", s->n_kept);
	} else if (s->job_result == MD_OK) {
		conn_log(s->conn, LOG_LEVEL_INFO,
			 "pop3 logout user=%s retr=%u dele=%u deleted=%zu", s->canonical,
			 s->retr_count, s->dele_count, s->n_expunged);
		pop3_ok(s, "Postern POP3 server signing off (%zu messages left)", left);
	} else {
		conn_log(s->conn, LOG_LEVEL_ERROR,
			 "pop3 logout user=%s deleted=0 result=%s: %s", s->canonical,
			 md_result_name((enum md_result)s->job_result), s->job_error);
		/* RFC 2449 §8.1.3 style: the deletions did not happen. */
		pop3_err(s, "[SYS/TEMP] Could not delete the messages; they are kept");
	}
	pop3_close(s);
	pop3_command_done(s);
}

void pop3_cmd_quit_trans(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	size_t n = 0;

	(void)cmd;
	pop3_enter_state(s, POP3_STATE_UPDATE);
	pop3_ahead_free(s);
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->msgs[i].deleted)
			n++;
	if (n == 0) {
		conn_log(s->conn, LOG_LEVEL_INFO, "pop3 logout user=%s retr=%u dele=0 deleted=0",
			 s->canonical, s->retr_count);
		pop3_ok(s, "Postern POP3 server signing off (%zu messages left)", s->n_msgs);
		pop3_close(s);
		return;
	}
	s->expunge_uids = malloc(n * sizeof(*s->expunge_uids));
	if (s->expunge_uids == NULL) {
		pop3_err(s, "[SYS/TEMP] Out of memory; nothing deleted");
		pop3_close(s);
		return;
	}
	s->n_expunge = 0;
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->msgs[i].deleted)
			s->expunge_uids[s->n_expunge++] = s->md_msgs[i].uid;
	pop3_begin_async(s);
	if (pop3_submit(s, POP3_JOB_EXPUNGE, pop3_expunge_work, pop3_expunge_done) < 0) {
		pop3_err(s, "[SYS/TEMP] Out of resources; nothing deleted");
		pop3_close(s);
		pop3_command_done(s);
	}
}
