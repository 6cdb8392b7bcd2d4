/* The selected mailbox: SELECT / EXAMINE (RFC 3501 §6.3.1-2), CLOSE,
 * UNSELECT (RFC 3691), CHECK, NOOP, EXPUNGE and UID EXPUNGE (RFC 4315),
 * and the session's view of the mailbox with its untagged updates
 * (RFC 3501 §7.4.1, RFC 2180 §4).
 *
 * The view is the sequence-number map as announced to the client.  It
 * changes only by EXISTS (new UIDs appended) and EXPUNGE (UIDs removed),
 * and only in imap_view_update() and EXPUNGE, both on a worker while the
 * session is busy (the loop never touches it meanwhile). */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "store.h"

static const char *const imap_system_flags[] = {
	"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
};

void imap_buf_flags(struct buf *b, unsigned flags, const uint64_t *keywords, char **names,
		    size_t n_names, bool recent)
{
	const char *sep = "";

	buf_putc(b, '(');
	if (recent) {
		buf_appendf(b, "\\Recent");
		sep = " ";
	}
	for (unsigned i = 0; i < 5; i++)
		if (flags & (1u << i)) {
			buf_appendf(b, "%s%s", sep, imap_system_flags[i]);
			sep = " ";
		}
	for (size_t i = 0; keywords != NULL && i < n_names && i < MD_KEYWORDS_MAX; i++)
		if ((keywords[i / 64] >> (i % 64)) & 1 && names[i] != NULL) {
			buf_appendf(b, "%s%s", sep, names[i]);
			sep = " ";
		}
	buf_putc(b, ')');
}

uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else if (v->uids[mid] > uid)
			hi = mid;
		else
			return (uint32_t)(mid + 1);
	}
	return 0;
}

/* First index with uids[i] >= uid. */
static size_t imap_view_lower(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int imap_view_resolve(const struct imap_view *v, struct imap_seqset *set, bool uid,
		      uint32_t **uids_r, size_t *n_r)
{
	uint32_t *out = NULL;
	size_t n = 0, cap = 0;

	*uids_r = NULL;
	*n_r = 0;
	if (!uid) {
		/* RFC 3501 §9: a sequence number past the end is an error
		 * (BAD); a range with '*' ("1:*") is not, even on an empty
		 * mailbox, where it names nothing. */
		for (size_t i = 0; i < set->n; i++)
			if (set->ranges[i].lo != UINT32_MAX && set->ranges[i].hi != UINT32_MAX &&
			    set->ranges[i].hi > v->n)
				return -2;
		imap_seqset_normalise(set, (uint32_t)v->n);
	} else {
		/* RFC 3501 §6.4.8: n:* with n past the last UID still names
		 * the last message. */
		imap_seqset_normalise(set, v->n > 0 ? v->uids[v->n - 1] : 0);
	}
	for (size_t i = 0; i < set->n; i++) {
		size_t from, to;

		if (uid) {
			from = imap_view_lower(v, set->ranges[i].lo);
			to = from;
			while (to < v->n && v->uids[to] <= set->ranges[i].hi)
				to++;
		} else {
			if (set->ranges[i].lo == 0)
				continue;
			from = set->ranges[i].lo - 1;
			to = set->ranges[i].hi < v->n ? set->ranges[i].hi : v->n;
		}
		if (to <= from)
			continue;
		if (n + (to - from) > cap) {
			uint32_t *nu;
			cap = (n + (to - from)) * 2;
			nu = realloc(out, cap * sizeof(*out));
			if (nu == NULL) {
				free(out);
				return -1;
			}
			out = nu;
		}
		memcpy(out + n, v->uids + from, (to - from) * sizeof(*out));
		n += to - from;
	}
	*uids_r = out;
	*n_r = n;
	return 0;
}

bool imap_set_arg(struct imap_session *s, struct imap_cursor *args, bool uid,
		  uint32_t **uids_r, size_t *n_r)
{
	struct imap_seqset set;
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	if (!imap_seqset(args, &set)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid sequence set");
		return false;
	}
	if (set.saved) {
		/* RFC 5182 §2.1: "$" is the last saved search result (UIDs) */
		set.n = s->searchres.n;
		if (set.n > 0) {
			set.ranges = malloc(set.n * sizeof(*set.ranges));
			if (set.ranges == NULL) {
				imap_reply(s, "NO", "[SERVERBUG] Out of memory");
				return false;
			}
			memcpy(set.ranges, s->searchres.ranges, set.n * sizeof(*set.ranges));
		}
		uid = true;
	}
	rc = imap_view_resolve(&s->view, &set, uid, uids_r, n_r);
	free(set.ranges);
	if (rc == -2) {
		imap_reply(s, "BAD", "Invalid sequence number (past the last message)");
		return false;
	}
	if (rc < 0) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return false;
	}
	return true;
}

static int imap_view_append(struct imap_view *v, uint32_t uid)
{
	if (v->n > 0 && uid <= v->uids[v->n - 1])
		return 0;
	if (v->n == v->cap) {
		size_t cap = v->cap == 0 ? 64 : v->cap * 2;
		uint32_t *nu = realloc(v->uids, cap * sizeof(*nu));
		if (nu == NULL)
			return -1;
		v->uids = nu;
		v->cap = cap;
	}
	v->uids[v->n++] = uid;
	return 0;
}

/* New messages of an update: EXISTS (and RECENT). */
static void imap_view_grow(struct imap_session *s, const struct md_changes *ch)
{
	struct imap_view *v = &s->view;
	size_t before = v->n, n_recent = v->n_recent;

	for (size_t i = 0; i < ch->n_msgs; i++)
		if (ch->msgs[i].uid >= v->uidnext && imap_view_append(v, ch->msgs[i].uid) == 0)
			v->uidnext = ch->msgs[i].uid + 1;
	if (ch->status.uidnext > v->uidnext)
		v->uidnext = ch->status.uidnext;
	if (v->n == before)
		return;
	/* the first session told about a new message gets \Recent (an
	 * IMAP4rev2 one, which has no \Recent, leaves it) */
	uint32_t from = imap_recent_claim(s->ctx, v->mb, v->uidvalidity, v->uids[v->n - 1],
					  !v->readonly && !s->rev2);
	imap_view_add_recent(v, v->uids + before, v->n - before, from);
	imap_out(s, "* %zu EXISTS\r\n", v->n);
	if (v->n_recent != n_recent && !s->rev2) /* RFC 9051 has no RECENT */
		imap_out(s, "* %zu RECENT\r\n", v->n_recent);
}

/* The view's UIDs missing from uids (the store's, ascending): expunged
 * while the expunge log was pruned. */
static void imap_view_lost(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct imap_view *v = &s->view;
	uint32_t *gone = malloc((v->n + 1) * sizeof(*gone));
	size_t ng = 0, j = 0;

	if (gone == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		while (j < n && uids[j] < v->uids[i])
			j++;
		if (j >= n || uids[j] != v->uids[i])
			gone[ng++] = v->uids[i];
	}
	imap_view_expunged(s, gone, ng);
	free(gone);
}

/* Flag changes of messages the client knows (not our own STORE's). */
static void imap_view_flags(struct imap_session *s, const struct md_changes *ch,
			    uint32_t old_next)
{
	struct imap_view *v = &s->view;
	bool lists = false;

	for (size_t i = 0; i < ch->n_msgs && ch->msgs[i].uid < old_next; i++) {
		const struct md_msg *m = &ch->msgs[i];
		uint32_t seq = imap_view_seq(v, m->uid);

		if (seq == 0 || m->modseq <= v->modseq || m->modseq == v->own_modseq)
			continue; /* our own STORE answered it already */
		if (!lists) {
			imap_view_flag_lists(s, ch->keywords, ch->n_keywords, false);
			lists = true;
		}
		buf_appendf(&s->out, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
		imap_buf_flags(&s->out, m->flags, m->keywords, ch->keywords, ch->n_keywords,
			       imap_is_recent(s, m->uid));
		if (s->condstore) /* RFC 7162 §3.1.4: unsolicited FETCH carry MODSEQ */
			buf_appendf(&s->out, " MODSEQ (%llu)", (unsigned long long)m->modseq);
		buf_appendf(&s->out, ")\r\n");
	}
}

enum md_result imap_view_update(struct imap_session *s, bool allow_expunge)
{
	return imap_view_update_some(s, allow_expunge, true);
}

/* One store snapshot per update (md_mailbox_changes): expunges, new
 * messages, flag changes as of one moment. */
enum md_result imap_view_update_some(struct imap_session *s, bool allow_expunge, bool allow_flags)
{
	struct imap_view *v = &s->view;
	struct md_changes ch;
	enum md_result r;
	uint32_t old_next = v->uidnext;

	if (v->mb == NULL)
		return MD_OK;
	/* RFC 5465 §6.1: NOTIFY's selected filter with MessageExpunge lets
	 * expunges out at the end of any command */
	allow_expunge = allow_expunge || imap_notify_expunges_any_time(s);
	r = md_mailbox_changes(v->mb, v->uidnext, v->modseq,
			       allow_expunge ? v->xmodseq : UINT64_MAX, &ch);
	if (r != MD_OK)
		return r;
	if (allow_expunge && ch.status.highestmodseq != v->xmodseq) {
		if (ch.expunged_pruned)
			imap_view_lost(s, ch.uids, ch.n_uids);
		else
			imap_view_expunged(s, ch.expunged, ch.n_expunged);
		v->xmodseq = ch.status.highestmodseq;
	}
	imap_view_grow(s, &ch);
	if (allow_flags && ch.status.highestmodseq > v->modseq) {
		imap_view_flags(s, &ch, old_next);
		v->modseq = ch.status.highestmodseq;
	}
	md_changes_free(&ch);
	if (v->uidnext > old_next)
		imap_notify_new_messages(s, old_next);
	/* RFC 5267 §4.3: updating searches hear of changes where EXPUNGE may
	 * be sent (a REMOVEFROM can stand for one); else at the next such point */
	if (allow_expunge)
		imap_context_update(s);
	return MD_OK;
}

void imap_view_flag_lists(struct imap_session *s, char **names, size_t n_names, bool always)
{
	struct imap_view *v = &s->view;
	size_t n_kw = 0;

	for (size_t i = 0; i < n_names; i++)
		n_kw += names[i] != NULL;
	/* RFC 3501 §7.2.6: a new keyword changes the FLAGS list */
	if (!always && n_kw == v->n_keywords)
		return;
	v->n_keywords = n_kw;
	buf_appendf(&s->out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < n_names; i++)
		if (names[i] != NULL)
			buf_appendf(&s->out, " %s", names[i]);
	buf_appendf(&s->out, ")\r\n* OK [PERMANENTFLAGS (");
	if (!v->readonly) {
		buf_appendf(&s->out, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		for (size_t i = 0; i < n_names; i++)
			if (names[i] != NULL)
				buf_appendf(&s->out, " %s", names[i]);
		buf_appendf(&s->out, " \\*");
	}
	buf_appendf(&s->out, ")] Flags permitted\r\n");
}

/* ---- SELECT / EXAMINE ----------------------------------------------------- */

struct imap_select_cmd {
	char name[MD_MAILBOX_NAME_MAX + 1];
	bool readonly;
	struct imap_qresync q;
};

static void imap_select_free(void *arg)
{
	struct imap_select_cmd *c = arg;

	if (c != NULL)
		free(c->q.known.ranges);
	free(c);
}

/* The sequence number of the first message without \Seen (RFC 3501
 * §7.1 [UNSEEN n]), 0 for none: read IMAP_FETCH_BATCH at a time from the
 * start, up to it, not the whole mailbox at once. */
static uint32_t imap_select_first_unseen(const struct imap_view *v)
{
	uint32_t unseen = 0;

	for (size_t pos = 0; pos < v->n && unseen == 0; pos += IMAP_FETCH_BATCH) {
		size_t last = pos + IMAP_FETCH_BATCH < v->n ? pos + IMAP_FETCH_BATCH : v->n;
		struct md_msg *msgs = NULL;
		size_t n = 0;

		if (md_msg_list(v->mb, v->uids[pos], v->uids[last - 1], 0, 0, &msgs, &n) != MD_OK)
			break;
		for (size_t i = 0; i < n && unseen == 0; i++)
			if (!(msgs[i].flags & MD_FLAG_SEEN))
				unseen = imap_view_seq(v, msgs[i].uid);
		md_msg_list_free(msgs, n);
	}
	return unseen;
}

static enum imap_cmd_status imap_select_work(struct imap_session *s)
{
	struct imap_select_cmd *c = s->cmd_state;
	struct imap_view *v = &s->view;
	struct md_status st;
	char **names = NULL;
	size_t n_names = 0;
	uint32_t unseen = 0;
	enum md_result r;

	/* RFC 3501 §6.3.1: a SELECT first leaves the selected mailbox; RFC
	 * 9051 §7.1 CLOSED marks where its responses end */
	imap_context_drop_all(s); /* RFC 5267 §4.3: contexts end with it */
	if (v->mb != NULL) {
		md_mailbox_close(v->mb);
		if (s->rev2 || s->qresync) /* RFC 7162 §3.2.11 too */
			imap_out(s, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	free(v->uids);
	free(v->recent);
	memset(v, 0, sizeof(*v));
	r = md_mailbox_open(s->md_user, c->name, &v->mb, &st);
	if (r == MD_OK)
		r = md_mailbox_uids(v->mb, &v->uids, &v->n);
	if (r == MD_OK)
		r = md_mailbox_keywords(v->mb, &names, &n_names);
	if (r != MD_OK) {
		if (v->mb != NULL)
			md_mailbox_close(v->mb);
		free(v->uids);
		free(v->recent);
		memset(v, 0, sizeof(*v));
		imap_reply_md(s, r, c->readonly ? "EXAMINE" : "SELECT");
		return CMD_DONE;
	}
	v->cap = v->n;
	str_copy(v->name, c->name, sizeof(v->name));
	v->readonly = c->readonly;
	v->uidvalidity = st.uidvalidity;
	v->uidnext = st.uidnext;
	if (v->n > 0 && v->uids[v->n - 1] >= v->uidnext)
		v->uidnext = v->uids[v->n - 1] + 1;
	v->modseq = v->xmodseq = st.highestmodseq;
	md_mailbox_ids(v->mb, &v->user_id, &v->mailbox_id);
	if (v->n > 0) {
		/* RFC 3501 §2.3.2: EXAMINE sees \Recent without taking it;
		 * so does IMAP4rev2, which has no \Recent (RFC 9051) */
		uint32_t from = imap_recent_claim(s->ctx, v->mb, v->uidvalidity,
						  v->uids[v->n - 1], !v->readonly && !s->rev2);
		imap_view_add_recent(v, v->uids, v->n, from);
	}
	if (st.unseen > 0)
		unseen = imap_select_first_unseen(v);
	imap_view_flag_lists(s, names, n_names, true);
	if (s->rev2) {
		/* RFC 9051 §6.3.2: EXISTS and LIST; no RECENT, no UNSEEN */
		imap_out(s, "* %zu EXISTS\r\n* LIST () \"/\" ", v->n);
		imap_buf_mailbox(s, &s->out, v->name);
		imap_out(s, "\r\n");
	} else {
		imap_out(s, "* %zu EXISTS\r\n* %zu RECENT\r\n", v->n, v->n_recent);
		if (unseen > 0)
			imap_out(s, "* OK [UNSEEN %u] First unseen\r\n", unseen);
	}
	imap_out(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n", v->uidvalidity);
	imap_out(s, "* OK [UIDNEXT %u] Predicted next UID\r\n", v->uidnext);
	imap_objectid_select(s);
	/* RFC 7162 §3.1.2.1: every SELECT / EXAMINE (NOMODSEQ is never needed) */
	imap_out(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		 (unsigned long long)st.highestmodseq);
	if (c->q.condstore || c->q.qresync)
		s->condstore = true;
	imap_qresync_answer(s, &c->q, names, n_names, v->uidnext);
	md_mailbox_keywords_free(names, n_names);
	imap_reply(s, "OK", "[%s] %s completed", v->readonly ? "READ-ONLY" : "READ-WRITE",
		   v->readonly ? "EXAMINE" : "SELECT");
	return CMD_DONE;
}

static void imap_select_after(struct imap_session *s)
{
	if (s->view.mb != NULL) {
		imap_enter_state(s, IMAP_STATE_SELECTED);
		conn_log(s->conn, LOG_LEVEL_DEBUG, "imap select user=%s messages=%zu",
			 s->canonical, s->view.n);
	} else if (s->state == IMAP_STATE_SELECTED) {
		imap_enter_state(s, IMAP_STATE_AUTH);
	}
}

static void imap_select_cmd(struct imap_session *s, struct imap_cursor *args, bool readonly)
{
	s->has_selected = true;
	struct imap_select_cmd *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_select_free;
	c->readonly = readonly;
	if (!imap_sp(args) || !imap_mailbox_arg(s, args, c->name, sizeof(c->name)) ||
	    (imap_sp(args) && !imap_select_params(s, args, &c->q)) || !imap_at_end(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid arguments");
		return;
	}
	/* searchres and IDLE registration belong to the old mailbox */
	free(s->searchres.ranges);
	memset(&s->searchres, 0, sizeof(s->searchres));
	imap_job_start(s, imap_select_work, imap_select_after);
}

void imap_cmd_select(struct imap_session *s, struct imap_cursor *args)
{
	imap_select_cmd(s, args, false);
}

void imap_cmd_examine(struct imap_session *s, struct imap_cursor *args)
{
	imap_select_cmd(s, args, true);
}

/* ---- CLOSE / UNSELECT ------------------------------------------------------ */

static enum imap_cmd_status imap_close_work(struct imap_session *s)
{
	/* RFC 3501 §6.4.2: silently expunge \Deleted (not when read-only) */
	if (!s->view.readonly) {
		uint32_t *ex = NULL;
		size_t nex = 0;
		md_msg_expunge(s->view.mb, NULL, 0, MD_EXPUNGE_DELETED_ONLY, &ex, &nex);
		free(ex);
	}
	imap_reply(s, "OK", "CLOSE completed");
	return CMD_DONE;
}

static void imap_unselect_after(struct imap_session *s)
{
	imap_close_mailbox(s);
	imap_enter_state(s, IMAP_STATE_AUTH);
}

void imap_cmd_close(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "CLOSE takes no arguments");
		return;
	}
	imap_job_start(s, imap_close_work, imap_unselect_after);
}

void imap_cmd_unselect(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "UNSELECT takes no arguments");
		return;
	}
	imap_unselect_after(s);
	imap_reply(s, "OK", "UNSELECT completed");
}

/* ---- NOOP / CHECK ---------------------------------------------------------- */

static enum imap_cmd_status imap_noop_work(struct imap_session *s)
{
	enum md_result r = imap_view_update(s, true);

	if (r == MD_NOMAILBOX) {
		imap_out(s, "* BYE [CLOSED] The selected mailbox was deleted\r\n");
		s->close_after = true;
	}
	imap_reply(s, "OK", "%s completed", s->cmd->verb);
	return CMD_DONE;
}

void imap_cmd_noop(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "%s takes no arguments", s->cmd->verb);
		return;
	}
	if (s->state != IMAP_STATE_SELECTED) {
		imap_reply(s, "OK", "NOOP completed");
		return;
	}
	imap_job_start(s, imap_noop_work, NULL);
}

void imap_cmd_check(struct imap_session *s, struct imap_cursor *args)
{
	imap_cmd_noop(s, args);
}

/* ---- EXPUNGE / UID EXPUNGE -------------------------------------------------- */

struct imap_expunge_cmd {
	uint32_t *uids; /* UID EXPUNGE: the UIDs named */
	size_t n;
};

static void imap_expunge_free(void *arg)
{
	struct imap_expunge_cmd *c = arg;

	if (c != NULL)
		free(c->uids);
	free(c);
}

static enum imap_cmd_status imap_expunge_work(struct imap_session *s)
{
	struct imap_expunge_cmd *c = s->cmd_state;
	uint32_t *ex = NULL;
	size_t nex = 0, kept = 0;
	enum md_result r;

	if (s->uid && c->n == 0) {
		r = MD_OK;
	} else {
		r = md_msg_expunge(s->view.mb, s->uid ? c->uids : NULL, s->uid ? c->n : 0,
				   MD_EXPUNGE_DELETED_ONLY, &ex, &nex);
		kept = r == MD_OK ? md_msg_expunge_kept(s->view.mb) : 0;
	}
	if (r == MD_OK)
		imap_view_expunged(s, ex, nex);
	free(ex);
	imap_view_update(s, true);
	if (kept > 0)
		/* an unlink failed (logged by the store): those messages stay,
		 * \Deleted, and a later EXPUNGE tries again */
		imap_reply(s, "NO", "[UNAVAILABLE] %zu message(s) could not be removed; "
			   "they are kept", kept);
	else
		imap_reply_md(s, r, s->uid ? "UID EXPUNGE" : "EXPUNGE");
	return CMD_DONE;
}

void imap_cmd_expunge(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_expunge_cmd *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_expunge_free;
	if (s->uid && (!imap_sp(args) || !imap_set_arg(s, args, true, &c->uids, &c->n)))
		return;
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "Invalid arguments");
		return;
	}
	if (s->view.readonly) {
		imap_reply(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	imap_job_start(s, imap_expunge_work, NULL);
}
