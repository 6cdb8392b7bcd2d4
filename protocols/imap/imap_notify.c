/* NOTIFY (RFC 5465): unsolicited responses about the selected mailbox and
 * the others of the personal namespace, sent whenever the client is not
 * running a command (not only during IDLE).
 *
 * What wakes a session: the same three sources as IDLE (imap_idle.c) --
 * the store's change hook for this process's changes (deliveries, APPEND,
 * STORE, EXPUNGE, CREATE, DELETE, RENAME; SUBSCRIBE says so itself),
 * inotify on the new/ and cur/ of up to IMAP_NOTIFY_WATCH_MAX of the
 * watched mailboxes (changes by `postern deliver`, mutt, Dovecot), and a
 * poll every IMAP_NOTIFY_POLL_MS that looks at all of them (the mailboxes
 * beyond that bound, NFS, folders made by other programs).  A wake only
 * records the mailbox; the session's next moment between commands runs
 * one job (imap_notify_work) on a worker.
 *
 * What is sent (§5):
 *   selected mailbox, with a selected filter: EXISTS, EXPUNGE (VANISHED
 *     under QRESYNC), FETCH FLAGS (with MODSEQ under CONDSTORE; only
 *     with FlagChange, else at the next command): the view update NOOP
 *     gives (imap_view_update), then FETCH of MessageNew's attributes
 *     for the new messages.  selected-delayed keeps the
 *     expunges for a command that may report them (§6.2).  The selected
 *     mailbox never gets STATUS: it is left out of the other filters.
 *   other mailboxes: "* STATUS name (MESSAGES UIDNEXT UIDVALIDITY UNSEEN
 *     [HIGHESTMODSEQ])" when their messages or flags changed; "* LIST"
 *     for a mailbox created, deleted (\NonExistent) or renamed (OLDNAME
 *     extended item), and with (or without) \Subscribed for
 *     SubscriptionChange.
 * What changed is found by comparing with the state last reported
 * (boxes, sorted by mailbox id: a RENAME keeps the id, so a rename is
 * told from a delete and a create).
 *
 * Limits: IMAP_NOTIFY_MAILBOXES_MAX mailboxes per session; a SET that
 * would watch more is NO [NOTIFICATIONOVERFLOW], and a session whose
 * mailboxes grow beyond it later is told "* OK [NOTIFICATIONOVERFLOW]"
 * and has NOTIFY NONE from then on (§5.8).  A client that does not read
 * is not sent more (above IMAP_OUTPUT_HIGH): the changes merge, since
 * each answer is a difference from what was last reported.
 *
 * Threads: the loop writes want_* only; the job reads job_* (copied from
 * want_* before it starts), the boxes and the spec.  Memory: the session's
 * struct imap_notify owns all of it; imap_notify_stop() frees it and drops
 * the inotify watches (NOTIFY NONE, a new SET, UNAUTHENTICATE, the end of
 * the session).
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conn.h"
#include "server.h"

#define IMAP_NOTIFY_MAILBOXES_MAX 1000  /* mailboxes one session watches (RFC 5465: none) */
#define IMAP_NOTIFY_WATCH_MAX 32        /* of them watched by inotify (2 watches each) */
#define IMAP_NOTIFY_POLL_MS (30 * 1000) /* all of them looked at, at least this often */
#define IMAP_NOTIFY_PENDING_MAX 32      /* changed mailboxes remembered; beyond: look at all */

struct imap_notify_box {
	char name[MD_MAILBOX_NAME_MAX + 1];
	uint32_t id;
	bool subscribed;
	bool watched;          /* holds md_watch_add_id() */
	struct md_status st;   /* as last reported */
};

struct imap_notify {
	struct imap_notify_spec spec;
	uint32_t user_id;
	struct imap_notify_box *boxes; /* sorted by id */
	size_t n_boxes;
	struct event *poll_ev, *kick_ev;
	bool overflowed;       /* the job found too many mailboxes */
	/* changes not yet looked at (loop thread) */
	bool want_all;
	uint32_t want[IMAP_NOTIFY_PENDING_MAX];
	size_t n_want;
	/* the running job's copy */
	bool job_all;
	uint32_t job[IMAP_NOTIFY_PENDING_MAX];
	size_t n_job;
};

/* ---- the state last reported ---------------------------------------------- */

static int imap_notify_box_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct imap_notify_box *)a)->id;
	uint32_t y = ((const struct imap_notify_box *)b)->id;

	return x < y ? -1 : x > y;
}

static struct imap_notify_box *imap_notify_find(struct imap_notify_box *boxes, size_t n,
						uint32_t id)
{
	struct imap_notify_box key;

	key.id = id;
	return n == 0 ? NULL : bsearch(&key, boxes, n, sizeof(*boxes), imap_notify_box_cmp);
}

static bool imap_notify_is_selected(const struct imap_session *s, uint32_t id)
{
	return s->view.mb != NULL && s->view.mailbox_id == id;
}

/* "* LIST (attrs) "/" name [("OLDNAME" (old))]" (RFC 5465 §5.5, §5.6) */
static void imap_notify_list(struct imap_session *s, const char *attrs, const char *name,
			     const char *oldname)
{
	buf_appendf(&s->out, "* LIST (%s) \"/\" ", attrs);
	imap_buf_mailbox(s, &s->out, name);
	if (oldname != NULL) {
		buf_appendf(&s->out, " (\"OLDNAME\" (");
		imap_buf_mailbox(s, &s->out, oldname);
		buf_appendf(&s->out, "))");
	}
	buf_appendf(&s->out, "\r\n");
}

static void imap_notify_status_line(struct imap_session *s, const char *name,
				    const struct md_status *st)
{
	unsigned items = IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT | IMAP_STATUS_UIDVALIDITY |
			 IMAP_STATUS_UNSEEN;

	/* RFC 5465 §5.2-5.4 with RFC 7162: HIGHESTMODSEQ too under CONDSTORE */
	if (s->condstore)
		items |= IMAP_STATUS_HIGHESTMODSEQ;
	imap_status_line(s, name, items, st);
}

/* STATUS for a mailbox other than the selected one whose messages (new,
 * expunged) or flags changed, as its events ask. */
static void imap_notify_status(struct imap_session *s, const struct imap_notify_box *box,
			       const struct md_status *now, unsigned events)
{
	const struct md_status *was = &box->st;
	bool messages = was->uidvalidity != now->uidvalidity || was->uidnext != now->uidnext ||
			was->messages != now->messages;
	bool flags = was->unseen != now->unseen || was->highestmodseq != now->highestmodseq;

	if (imap_notify_is_selected(s, box->id))
		return; /* EXISTS / EXPUNGE / FETCH instead (§6.1) */
	if ((messages && (events & (IMAP_NOTIFY_EV_NEW | IMAP_NOTIFY_EV_EXPUNGE))) ||
	    (flags && (events & IMAP_NOTIFY_EV_FLAGS)))
		imap_notify_status_line(s, box->name, now);
}

/* ---- looking at the mailboxes (worker) ------------------------------------ */

/* Mailboxes gone, new, renamed, (un)subscribed, changed: between what was
 * reported (n->boxes) and now (boxes). */
static void imap_notify_diff(struct imap_session *s, struct imap_notify *n,
			     struct imap_notify_box *boxes, size_t nb)
{
	const struct imap_notify_spec *spec = &n->spec;

	for (size_t i = 0; i < n->n_boxes; i++) {
		const struct imap_notify_box *o = &n->boxes[i];

		if (imap_notify_find(boxes, nb, o->id) == NULL &&
		    (imap_notify_events_for(spec, o->name, o->subscribed) & IMAP_NOTIFY_EV_NAME))
			imap_notify_list(s, "\\NonExistent", o->name, NULL);
	}
	for (size_t i = 0; i < nb; i++) {
		struct imap_notify_box *b = &boxes[i];
		const struct imap_notify_box *o = imap_notify_find(n->boxes, n->n_boxes, b->id);
		unsigned events = imap_notify_events_for(spec, b->name, b->subscribed);

		if (o == NULL) {
			if (events & IMAP_NOTIFY_EV_NAME)
				imap_notify_list(s, "", b->name, NULL);
			/* messages came before this look found the mailbox */
			if ((events & IMAP_NOTIFY_EV_NEW) && b->st.messages > 0 &&
			    !imap_notify_is_selected(s, b->id))
				imap_notify_status_line(s, b->name, &b->st);
			continue;
		}
		if (strcmp(o->name, b->name) != 0 && (events & IMAP_NOTIFY_EV_NAME))
			imap_notify_list(s, "", b->name, o->name);
		if (o->subscribed != b->subscribed && (events & IMAP_NOTIFY_EV_SUBS))
			imap_notify_list(s, b->subscribed ? "\\Subscribed" : "", b->name, NULL);
		{
			/* the STATUS names the mailbox as it is now */
			struct imap_notify_box named = *o;

			memcpy(named.name, b->name, sizeof(named.name));
			imap_notify_status(s, &named, &b->st, events);
		}
	}
}

/* Keep the watches of mailboxes still there, drop the others', watch new
 * ones up to IMAP_NOTIFY_WATCH_MAX. */
static void imap_notify_rewatch(struct imap_session *s, struct imap_notify *n,
				struct imap_notify_box *boxes, size_t nb)
{
	struct md_watch *w = s->ctx->watch;
	size_t watched = 0;

	if (w == NULL)
		return;
	for (size_t i = 0; i < n->n_boxes; i++)
		if (n->boxes[i].watched && imap_notify_find(boxes, nb, n->boxes[i].id) == NULL)
			md_watch_remove_id(w, n->user_id, n->boxes[i].id);
	for (size_t i = 0; i < nb; i++) {
		const struct imap_notify_box *o = imap_notify_find(n->boxes, n->n_boxes, boxes[i].id);

		if (o != NULL && o->watched) {
			boxes[i].watched = true;
			watched++;
		}
	}
	/* by id: INBOX, made first, is watched first */
	for (size_t i = 0; i < nb && watched < IMAP_NOTIFY_WATCH_MAX; i++)
		if (!boxes[i].watched && md_watch_add_id(w, s->md_user, boxes[i].id) == MD_OK) {
			boxes[i].watched = true;
			watched++;
		}
}

/* Every mailbox the filters other than selected name.  first: the SET
 * (STATUS for each when asked, §3.1), else the differences are reported.
 * -1 when there are more than IMAP_NOTIFY_MAILBOXES_MAX. */
static int imap_notify_scan(struct imap_session *s, struct imap_notify *n, bool first)
{
	struct md_mailbox_info *list = NULL;
	struct imap_notify_box *boxes;
	size_t n_list = 0, nb = 0;

	if (md_mailbox_list(s->md_user, &list, &n_list) != MD_OK)
		return 0; /* looked at again at the next change or poll */
	/* counted before any STATUS is read (the first read of a mailbox
	 * indexes it): too many is known at once */
	for (size_t i = 0; i < n_list; i++) {
		const struct md_mailbox_info *mi = &list[i];

		if (mi->exists && imap_notify_events_for(&n->spec, mi->name, mi->subscribed) != 0)
			nb++;
	}
	boxes = nb <= IMAP_NOTIFY_MAILBOXES_MAX ? calloc(nb + 1, sizeof(*boxes)) : NULL;
	if (boxes == NULL) {
		free(list);
		return nb > IMAP_NOTIFY_MAILBOXES_MAX ? -1 : 0;
	}
	nb = 0;
	for (size_t i = 0; i < n_list; i++) {
		const struct md_mailbox_info *mi = &list[i];
		struct imap_notify_box *b = &boxes[nb];

		if (!mi->exists || imap_notify_events_for(&n->spec, mi->name, mi->subscribed) == 0)
			continue;
		if (md_mailbox_status(s->md_user, mi->name, &b->st) != MD_OK)
			continue; /* deleted meanwhile */
		memcpy(b->name, mi->name, sizeof(b->name));
		b->subscribed = mi->subscribed;
		b->id = b->st.mailbox_id;
		nb++;
	}
	free(list);
	qsort(boxes, nb, sizeof(*boxes), imap_notify_box_cmp);
	if (!first)
		imap_notify_diff(s, n, boxes, nb);
	else if (n->spec.status)
		for (size_t i = 0; i < nb; i++)
			if (!imap_notify_is_selected(s, boxes[i].id))
				imap_notify_status_line(s, boxes[i].name, &boxes[i].st);
	imap_notify_rewatch(s, n, boxes, nb);
	free(n->boxes);
	n->boxes = boxes;
	n->n_boxes = nb;
	return 0;
}

/* One mailbox known to have changed; -1 when only a full look can tell
 * (unknown: new, or not watched; renamed or deleted). */
static int imap_notify_check_one(struct imap_session *s, struct imap_notify *n, uint32_t id)
{
	struct imap_notify_box *box = imap_notify_find(n->boxes, n->n_boxes, id);
	struct md_status st;

	if (box == NULL || md_mailbox_status(s->md_user, box->name, &st) != MD_OK ||
	    st.mailbox_id != id)
		return -1;
	imap_notify_status(s, box, &st, imap_notify_events_for(&n->spec, box->name,
							       box->subscribed));
	box->st = st;
	return 0;
}

enum md_result imap_notify_view_update(struct imap_session *s, bool allow_expunge)
{
	const struct imap_notify *n = s->notify;
	bool flags = s->idle || n == NULL || (n->spec.selected_events & IMAP_NOTIFY_EV_FLAGS);

	return imap_view_update_some(s, allow_expunge, flags);
}

void imap_notify_new_messages(struct imap_session *s, uint32_t from_uid)
{
	const struct imap_notify *n = s->notify;

	if (n != NULL && n->spec.fetch != NULL && (n->spec.selected_events & IMAP_NOTIFY_EV_NEW))
		imap_fetch_notify_write(s, n->spec.fetch, from_uid);
}

bool imap_notify_expunges_any_time(const struct imap_session *s)
{
	const struct imap_notify *n = s->notify;

	return n != NULL && !n->spec.selected_delayed &&
	       (n->spec.selected_events & IMAP_NOTIFY_EV_EXPUNGE);
}

/* The selected mailbox (§6.1, §6.2), or IDLE's (RFC 2177) when this job
 * took its wake-up. */
static void imap_notify_selected(struct imap_session *s, struct imap_notify *n)
{
	bool expunges = s->idle || !n->spec.selected_delayed;

	if (imap_notify_view_update(s, expunges) == MD_NOMAILBOX && !s->close_after) {
		imap_out(s, "* BYE [CLOSED] The selected mailbox was deleted\r\n");
		s->close_after = true;
	}
}

static enum imap_cmd_status imap_notify_work(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	bool all = n->job_all, selected = n->job_all;

	for (size_t i = 0; i < n->n_job; i++) {
		if (imap_notify_is_selected(s, n->job[i]))
			selected = true;
		else if (!all && imap_notify_check_one(s, n, n->job[i]) < 0)
			all = true;
	}
	if (selected && s->view.mb != NULL && (s->idle || n->spec.selected_events != 0))
		imap_notify_selected(s, n);
	if (all && imap_notify_scan(s, n, false) < 0) {
		imap_out(s, "* OK [NOTIFICATIONOVERFLOW] More than %d mailboxes to watch; "
			 "NOTIFY is off\r\n", IMAP_NOTIFY_MAILBOXES_MAX);
		n->overflowed = true;
	}
	return CMD_DONE;
}

/* ---- between commands (loop thread) --------------------------------------- */

static void imap_notify_link(struct imap_session *s, bool on)
{
	struct imap_ctx *ctx = s->ctx;
	bool linked = s->notify_prev != NULL || ctx->notifiers == s;

	if (on && !linked) {
		s->notify_next = ctx->notifiers;
		s->notify_prev = NULL;
		if (ctx->notifiers != NULL)
			ctx->notifiers->notify_prev = s;
		ctx->notifiers = s;
	} else if (!on && linked) {
		if (s->notify_prev != NULL)
			s->notify_prev->notify_next = s->notify_next;
		else
			ctx->notifiers = s->notify_next;
		if (s->notify_next != NULL)
			s->notify_next->notify_prev = s->notify_prev;
		s->notify_next = s->notify_prev = NULL;
	}
}

static void imap_notify_after(struct imap_session *s)
{
	s->busy = false;
	s->work = NULL;
	s->after = NULL;
	if (s->notify != NULL && s->notify->overflowed)
		imap_notify_stop(s);
	if (!conn_is_closing(s->conn))
		conn_resume(s->conn);
	imap_notify_kick(s); /* what came meanwhile */
}

/* Start the job if something is pending and the client runs no command. */
static void imap_notify_try(struct imap_session *s)
{
	struct imap_notify *n = s->notify;

	if (n == NULL || (!n->want_all && n->n_want == 0))
		return;
	if (s->busy || s->sasl != NULL || s->appending || s->close_after ||
	    conn_is_closing(s->conn))
		return; /* imap_command_done() kicks again */
	if (!s->idle && (s->reader.cmd.len > 0 || s->reader.in_literal))
		return; /* a command is arriving (IDLE's lines go elsewhere) */
	if (conn_output_pending(s->conn) > IMAP_OUTPUT_HIGH)
		return; /* CONN_EV_DRAINED kicks again */
	n->job_all = n->want_all;
	memcpy(n->job, n->want, n->n_want * sizeof(n->want[0]));
	n->n_job = n->n_want;
	n->want_all = false;
	n->n_want = 0;
	imap_job_start(s, imap_notify_work, imap_notify_after);
}

static void imap_notify_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	imap_notify_try(arg);
}

void imap_notify_kick(struct imap_session *s)
{
	/* later, from the loop: the caller may be inside imap_job_done() */
	if (s->notify != NULL && (s->notify->want_all || s->notify->n_want > 0))
		event_active(s->notify->kick_ev, EV_TIMEOUT, 0);
}

static void imap_notify_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	s->notify->want_all = true;
	imap_notify_try(s);
}

static void imap_notify_want(struct imap_notify *n, uint32_t mailbox_id)
{
	for (size_t i = 0; i < n->n_want; i++)
		if (n->want[i] == mailbox_id)
			return;
	if (n->n_want < IMAP_NOTIFY_PENDING_MAX)
		n->want[n->n_want++] = mailbox_id;
	else
		n->want_all = true;
}

void imap_notify_wake(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	struct imap_session *s = ctx->notifiers, *next;

	for (; s != NULL; s = next) {
		struct imap_notify *n = s->notify;

		next = s->notify_next;
		if (user_id == 0 && mailbox_id == 0)
			n->want_all = true;
		else if (n->user_id == user_id)
			imap_notify_want(n, mailbox_id);
		else
			continue;
		imap_notify_try(s);
	}
}

void imap_notify_stop(struct imap_session *s)
{
	struct imap_notify *n = s->notify;

	if (n == NULL)
		return;
	imap_notify_link(s, false);
	if (n->poll_ev != NULL)
		event_free(n->poll_ev);
	if (n->kick_ev != NULL)
		event_free(n->kick_ev);
	for (size_t i = 0; i < n->n_boxes; i++)
		if (n->boxes[i].watched && s->ctx->watch != NULL)
			md_watch_remove_id(s->ctx->watch, n->user_id, n->boxes[i].id);
	free(n->boxes);
	imap_notify_spec_clear(&n->spec);
	free(n);
	s->notify = NULL;
}

/* ---- the command ------------------------------------------------------------ */

static enum imap_cmd_status imap_notify_set_work(struct imap_session *s)
{
	struct imap_notify *n = s->notify;

	if (imap_notify_scan(s, n, true) < 0) {
		n->overflowed = true;
		imap_reply(s, "NO", "[NOTIFICATIONOVERFLOW] More than %d mailboxes to watch",
			   IMAP_NOTIFY_MAILBOXES_MAX);
		return CMD_DONE;
	}
	imap_reply(s, "OK", "NOTIFY completed");
	return CMD_DONE;
}

static void imap_notify_set_after(struct imap_session *s)
{
	struct timeval tv = { IMAP_NOTIFY_POLL_MS / 1000, (IMAP_NOTIFY_POLL_MS % 1000) * 1000 };

	if (s->notify->overflowed)
		imap_notify_stop(s);
	else
		event_add(s->notify->poll_ev, &tv);
}

void imap_cmd_notify(struct imap_session *s, struct imap_cursor *args)
{
	struct event_base *base = server_event_base(conn_server(s->conn));
	struct imap_notify *n = calloc(1, sizeof(*n));
	enum imap_notify_parse_result r;

	if (n == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	r = imap_notify_parse(s, args, &n->spec);
	if (r != IMAP_NOTIFY_PARSE_SET)
		free(n);
	switch (r) {
	case IMAP_NOTIFY_PARSE_NONE:
		imap_notify_stop(s);
		imap_reply(s, "OK", "NOTIFY completed");
		return;
	case IMAP_NOTIFY_PARSE_BAD:
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid NOTIFY arguments");
		return;
	case IMAP_NOTIFY_PARSE_BADEVENT:
		imap_reply(s, "NO", "[BADEVENT (" IMAP_NOTIFY_SUPPORTED ")] Event not supported");
		return;
	case IMAP_NOTIFY_PARSE_LIMIT:
		imap_reply(s, "NO", "[LIMIT] At most %d event groups and %d mailbox names",
			   IMAP_NOTIFY_GROUPS_MAX, IMAP_NOTIFY_NAMES_MAX);
		return;
	case IMAP_NOTIFY_PARSE_SET:
		break;
	}
	imap_notify_stop(s); /* a SET replaces the one before (§3.1) */
	n->user_id = md_user_id(s->md_user);
	s->notify = n;
	n->poll_ev = event_new(base, -1, EV_PERSIST, imap_notify_poll_cb, s);
	n->kick_ev = event_new(base, -1, 0, imap_notify_kick_cb, s);
	if (n->poll_ev == NULL || n->kick_ev == NULL) {
		imap_notify_stop(s);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	/* linked before the first look, so that no change falls between it
	 * and the first wake-up (the job's end kicks what came meanwhile) */
	imap_notify_link(s, true);
	imap_job_start(s, imap_notify_set_work, imap_notify_set_after);
}
