/* \Recent (RFC 3501 §2.3.2): a message is recent for the first session
 * that is told about it, and for no other.
 *
 * The store does not keep \Recent (IMAP4rev2 dropped it), so this process
 * remembers, per mailbox, the highest UID some session has been told
 * about ("claimed"): messages above it are recent for the next session
 * that selects the mailbox read-write, or that sees them arrive while it
 * has the mailbox selected; that session claims them.  EXAMINE sees them
 * without claiming.
 *
 * A mailbox this process has not seen yet starts from the Maildir: its
 * claimed UID is the highest one of a message in cur/ (delivered files
 * stay in new/ until their flags first change, store.h), so unread,
 * untouched mail at the tail is recent once more after a restart.
 *
 * The table is bounded (IMAP_RECENT_SLOTS); a mailbox pushed out of it is
 * seeded again from the Maildir the next time.  Called from worker
 * threads: one mutex. */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

#define IMAP_RECENT_PROBES 16

static size_t imap_recent_slot(uint32_t user_id, uint32_t mailbox_id)
{
	uint64_t h = ((uint64_t)user_id << 32 | mailbox_id) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 40) % IMAP_RECENT_SLOTS;
}

/* The entry of a mailbox, or NULL; with create, a free (or evicted) one. */
static struct imap_recent *imap_recent_find(struct imap_ctx *ctx, uint32_t user_id,
					    uint32_t mailbox_id, uint32_t uidvalidity, bool create)
{
	size_t slot = imap_recent_slot(user_id, mailbox_id);
	struct imap_recent *victim = NULL;

	for (unsigned i = 0; i < IMAP_RECENT_PROBES; i++) {
		struct imap_recent *e = &ctx->recent[(slot + i) % IMAP_RECENT_SLOTS];
		if (e->used && e->user_id == user_id && e->mailbox_id == mailbox_id) {
			if (e->uidvalidity == uidvalidity)
				return e;
			e->used = false; /* a new UIDVALIDITY: start over */
		}
		if (!e->used && victim == NULL)
			victim = e;
	}
	if (!create)
		return NULL;
	if (victim == NULL)
		victim = &ctx->recent[slot]; /* full: push one out */
	memset(victim, 0, sizeof(*victim));
	victim->user_id = user_id;
	victim->mailbox_id = mailbox_id;
	victim->uidvalidity = uidvalidity;
	return victim;
}

/* Highest UID of a message in cur/ (0 when none): the starting point. */
static uint32_t imap_recent_seed(struct md_mailbox *mb)
{
	struct md_msg *msgs = NULL;
	size_t n = 0;
	uint32_t last = 0;

	if (md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_PATH, &msgs, &n) != MD_OK)
		return UINT32_MAX - 1; /* unknown: nothing is recent */
	for (size_t i = 0; i < n; i++)
		if (msgs[i].path == NULL || strstr(msgs[i].path, "/new/") == NULL)
			last = msgs[i].uid;
	md_msg_list_free(msgs, n);
	return last;
}

uint32_t imap_recent_claim(struct imap_ctx *ctx, struct md_mailbox *mb, uint32_t uidvalidity,
			   uint32_t upto, bool claim)
{
	uint32_t user_id, mailbox_id, before, seed = 0;
	struct imap_recent *e;
	bool known;

	md_mailbox_ids(mb, &user_id, &mailbox_id);
	pthread_mutex_lock(&ctx->recent_lock);
	known = imap_recent_find(ctx, user_id, mailbox_id, uidvalidity, false) != NULL;
	pthread_mutex_unlock(&ctx->recent_lock);
	if (!known)
		seed = imap_recent_seed(mb); /* store work outside the lock */
	pthread_mutex_lock(&ctx->recent_lock);
	e = imap_recent_find(ctx, user_id, mailbox_id, uidvalidity, true);
	if (!e->used) {
		e->used = true;
		e->claimed = seed;
	}
	before = e->claimed;
	if (claim && upto > e->claimed)
		e->claimed = upto;
	pthread_mutex_unlock(&ctx->recent_lock);
	return before;
}

bool imap_view_is_recent(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n_recent;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->recent[mid] < uid)
			lo = mid + 1;
		else if (v->recent[mid] > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

int imap_view_add_recent(struct imap_view *v, const uint32_t *uids, size_t n, uint32_t above)
{
	for (size_t i = 0; i < n; i++) {
		if (uids[i] <= above || (v->n_recent > 0 && uids[i] <= v->recent[v->n_recent - 1]))
			continue;
		if (v->n_recent == v->cap_recent) {
			size_t cap = v->cap_recent == 0 ? 16 : v->cap_recent * 2;
			uint32_t *nr = realloc(v->recent, cap * sizeof(*nr));
			if (nr == NULL)
				return -1;
			v->recent = nr;
			v->cap_recent = cap;
		}
		v->recent[v->n_recent++] = uids[i];
	}
	return 0;
}

void imap_view_drop_recent(struct imap_view *v, uint32_t uid)
{
	for (size_t i = 0; i < v->n_recent; i++)
		if (v->recent[i] == uid) {
			memmove(v->recent + i, v->recent + i + 1,
				(v->n_recent - i - 1) * sizeof(v->recent[0]));
			v->n_recent--;
			return;
		}
}

bool imap_is_recent(const struct imap_session *s, uint32_t uid)
{
	return !s->rev2 && imap_view_is_recent(&s->view, uid);
}
