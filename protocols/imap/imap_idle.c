/* IDLE (RFC 2177): the session waits for DONE and reports changes of the
 * selected mailbox as they happen.
 *
 * Three wake-ups: the store's change hook (imap.c queues it from the
 * writer thread and calls imap_idle_wake() on the loop) for changes made
 * by this process; inotify on the selected mailbox's new/ and cur/
 * (md_watch, added by the first sync job of the IDLE, shared by every
 * session of that mailbox) for changes by anyone (`postern deliver`,
 * mutt, Dovecot, a file dropped in); and a poll timer, every
 * IMAP_IDLE_POLL_MS while the mailbox is not watched (no inotify, or the
 * system's watch limit reached) and every IMAP_IDLE_POLL_WATCHED_MS once
 * it is.  Each runs one update job (imap_view_update, which finds the
 * changes with md_mailbox_sync()) unless one is running. */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conn.h"
#include "server.h"

void imap_idle_link(struct imap_session *s, bool on)
{
	struct imap_ctx *ctx = s->ctx;
	bool linked = s->idle_prev != NULL || ctx->idlers == s;

	if (on && !linked) {
		s->idle_next = ctx->idlers;
		s->idle_prev = NULL;
		if (ctx->idlers != NULL)
			ctx->idlers->idle_prev = s;
		ctx->idlers = s;
	} else if (!on && linked) {
		if (s->idle_prev != NULL)
			s->idle_prev->idle_next = s->idle_next;
		else
			ctx->idlers = s->idle_next;
		if (s->idle_next != NULL)
			s->idle_next->idle_prev = s->idle_prev;
		s->idle_next = s->idle_prev = NULL;
	}
}

void imap_idle_stop(struct imap_session *s)
{
	imap_idle_link(s, false);
	if (s->idle_ev != NULL) {
		event_free(s->idle_ev);
		s->idle_ev = NULL;
	}
	if (s->idle_watched && s->view.mb != NULL)
		md_watch_remove(s->ctx->watch, s->view.mb);
	s->idle_watched = false;
	s->idle_slow = false;
	s->idle = false;
}

static enum imap_cmd_status imap_idle_work(struct imap_session *s)
{
	/* on the worker: adding a watch reads the index for the directory */
	if (s->idle && !s->idle_watched && s->ctx->watch != NULL && s->view.mb != NULL)
		s->idle_watched = md_watch_add(s->ctx->watch, s->view.mb) == MD_OK;
	if (imap_notify_view_update(s, true) == MD_NOMAILBOX && !s->close_after) {
		imap_out(s, "* BYE [CLOSED] The selected mailbox was deleted\r\n");
		s->close_after = true;
	}
	return CMD_DONE;
}

static void imap_idle_synced(struct imap_session *s)
{
	s->busy = false;
	s->work = NULL;
	s->after = NULL;
	if (s->idle && s->idle_watched && !s->idle_slow && s->idle_ev != NULL) {
		struct timeval tv = { IMAP_IDLE_POLL_WATCHED_MS / 1000,
				      (IMAP_IDLE_POLL_WATCHED_MS % 1000) * 1000 };
		event_del(s->idle_ev);
		event_add(s->idle_ev, &tv);
		s->idle_slow = true;
		conn_log(s->conn, LOG_LEVEL_DEBUG, "imap idle: mailbox watched by inotify, "
			 "polled every %d s", IMAP_IDLE_POLL_WATCHED_MS / 1000);
	}
	if (!conn_is_closing(s->conn))
		conn_resume(s->conn);
	imap_notify_kick(s); /* what NOTIFY held back while this ran */
}

static void imap_idle_sync(struct imap_session *s)
{
	if (!s->idle || s->busy || s->view.mb == NULL || conn_is_closing(s->conn))
		return;
	/* A client that does not read: wait.  The update is a difference from
	 * what was last announced, so waiting merges changes instead of
	 * queueing one answer per change; the timer tries again. */
	if (conn_output_pending(s->conn) > IMAP_OUTPUT_HIGH)
		return;
	imap_job_start(s, imap_idle_work, imap_idle_synced);
}

static void imap_idle_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	imap_idle_sync(arg);
}

void imap_idle_wake(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	struct imap_session *s = ctx->idlers, *next;

	for (; s != NULL; s = next) {
		next = s->idle_next;
		if ((user_id == 0 && mailbox_id == 0) ||
		    (s->view.user_id == user_id && s->view.mailbox_id == mailbox_id))
			imap_idle_sync(s);
	}
}

void imap_cmd_idle(struct imap_session *s, struct imap_cursor *args)
{
	struct timeval tv = { IMAP_IDLE_POLL_MS / 1000, (IMAP_IDLE_POLL_MS % 1000) * 1000 };

	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "IDLE takes no arguments");
		return;
	}
	s->idle = true;
	imap_out(s, "+ idling\r\n");
	if (s->state == IMAP_STATE_SELECTED) {
		imap_idle_link(s, true);
		s->idle_ev = event_new(server_event_base(conn_server(s->conn)), -1, EV_PERSIST,
				       imap_idle_timer, s);
		if (s->idle_ev != NULL)
			event_add(s->idle_ev, &tv);
		/* report what happened since the last command at once; the
		 * dispatcher flushes "+ idling" before the job's output */
		imap_flush(s);
		imap_idle_sync(s);
	}
}

void imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
	bool done = len == 4 && strncasecmp(line, "DONE", 4) == 0;

	imap_idle_stop(s);
	if (done)
		imap_reply(s, "OK", "IDLE terminated");
	else
		imap_reply(s, "BAD", "Expected DONE");
	imap_flush(s);
	imap_reader_reset(&s->reader);
	imap_notify_kick(s);
}
