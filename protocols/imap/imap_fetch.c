/* FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2), streaming.
 *
 * Items come from the store's cached metadata (ENVELOPE, BODY,
 * BODYSTRUCTURE are stored strings) and part offsets (md_msg_section); the
 * bytes of BODY[...] are pread from the file (imap_fetch_body.c, which
 * also builds HEADER.FIELDS and BINARY answers).  One job writes about
 * IMAP_OUT_SLICE octets and returns CMD_MORE, keeping its place, even in
 * the middle of a literal; the next job runs once the output drained.
 * Messages are read from the store IMAP_FETCH_BATCH at a time.
 *
 * BINARY[...], BINARY.PEEK[...] and BINARY.SIZE[...] (RFC 3516) take
 * the part's content with its transfer encoding undone by the store
 * (md_msg_binary), built in memory (the literal's size must be known
 * first; the store bounds it by the message size).  A part whose encoding
 * is unknown or broken makes the command NO [UNKNOWN-CTE] / NO [PARSE]
 * (§4.3), checked from the metadata before the message's response starts.
 *
 * A literal's size cannot be taken back once announced (RFC 3501 §4.3,
 * RFC 9051 §4.3), and the sizes come from the index.  So before a
 * message's response starts, its file is opened and its size compared with
 * the indexed one: a file another program truncated, rewrote or removed
 * gets no response and the command ends NO (Dovecot's imap_fetch_failure
 * = no-after).  A file that shrinks while its literal is being sent cannot
 * be answered any more: the response is taken back if none of it has left
 * yet, otherwise that client is disconnected, logged (Dovecot's default,
 * disconnect-immediately); never padded, never the daemon.
 */
#include "imap_fetch_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "store.h"

static void imap_fetch_free(void *arg)
{
	struct imap_fetch_cmd *f = arg;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n_items; i++) {
		free(f->items[i].field_text);
		for (size_t k = 0; k < f->items[i].n_fields; k++)
			free(f->items[i].field_names[k]);
		free(f->items[i].field_names);
	}
	free(f->uids);
	free(f->vset.ranges);
	if (f->batch != NULL)
		md_msg_list_free(f->batch, f->n_alloc);
	if (f->kw != NULL)
		md_mailbox_keywords_free(f->kw, f->n_kw);
	if (f->fd >= 0)
		close(f->fd);
	free(f->mem);
	free(f);
}

/* ---- parsing ------------------------------------------------------------- */

static struct imap_fetch_item *imap_fetch_add(struct imap_fetch_cmd *f, enum imap_fetch_kind kind,
					      const char *name)
{
	struct imap_fetch_item *it;

	if (f->n_items >= IMAP_FETCH_ITEMS_MAX)
		return NULL;
	it = &f->items[f->n_items++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	str_copy(it->name, name, sizeof(it->name));
	switch (kind) {
	case IMAP_FI_ENVELOPE:
	case IMAP_FI_BODY:
	case IMAP_FI_BODYSTRUCTURE:
		f->need_meta = true;
		break;
	case IMAP_FI_SECTION:
	case IMAP_FI_BINARY:
		f->need_file = true;
		f->need_meta = true;
		f->need_path = true;
		break;
	case IMAP_FI_BINARY_SIZE:
		f->need_meta = true;
		f->need_path = true;
		break;
	case IMAP_FI_EMAILID:
		f->need_path = true;
		break;
	case IMAP_FI_PREVIEW:
		f->need_meta = true;
		f->need_path = true; /* an old record: read from the file */
		break;
	default:
		break;
	}
	return it;
}

/* section-spec (RFC 3501 §9) after '[': part numbers, then HEADER, TEXT,
 * MIME (parts only), HEADER.FIELDS[.NOT] (list). */
static bool imap_fetch_section(struct imap_cursor *c, struct imap_fetch_item *it)
{
	char spec[IMAP_SECTION_MAX];
	size_t n = 0;
	const char *text;
	bool part = false;

	while (c->p < c->end && n + 1 < sizeof(spec) &&
	       ((*c->p >= '0' && *c->p <= '9') || *c->p == '.' ||
		(*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z')))
		spec[n++] = *c->p++;
	spec[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (spec[i] >= 'a' && spec[i] <= 'z')
			spec[i] = (char)(spec[i] - 'a' + 'A');
	/* part numbers */
	text = spec;
	while (*text >= '1' && *text <= '9') {
		while (*text >= '0' && *text <= '9')
			text++;
		part = true;
		if (*text == '.')
			text++;
		else if (*text != '\0')
			return false;
	}
	if (part && text > spec && text[-1] == '.' && *text == '\0')
		return false; /* "1." */
	if (*text == '\0' || strcmp(text, "HEADER") == 0 || strcmp(text, "TEXT") == 0 ||
	    (part && strcmp(text, "MIME") == 0)) {
		str_copy(it->section, spec, sizeof(it->section));
	} else if (strcmp(text, "HEADER.FIELDS") == 0 || strcmp(text, "HEADER.FIELDS.NOT") == 0) {
		const char *start;
		it->fields = true;
		it->fields_not = strcmp(text, "HEADER.FIELDS.NOT") == 0;
		snprintf(it->section, sizeof(it->section), "%.*sHEADER", (int)(text - spec), spec);
		if (!imap_sp(c) || !imap_char(c, '('))
			return false;
		start = c->p - 1;
		it->field_names = calloc(IMAP_HEADER_FIELDS_MAX, sizeof(char *));
		if (it->field_names == NULL)
			return false;
		do {
			char name[256];
			if (it->n_fields >= IMAP_HEADER_FIELDS_MAX ||
			    !imap_astring_copy(c, name, sizeof(name)))
				return false;
			it->field_names[it->n_fields] = strdup(name);
			if (it->field_names[it->n_fields] == NULL)
				return false;
			it->n_fields++;
		} while (imap_char(c, ' '));
		if (!imap_char(c, ')'))
			return false;
		/* echoed as sent (RFC 3501 §7.4.2) */
		it->field_text = malloc((size_t)(c->p - start) + 2);
		if (it->field_text == NULL)
			return false;
		it->field_text[0] = ' ';
		memcpy(it->field_text + 1, start, (size_t)(c->p - start));
		it->field_text[c->p - start + 1] = '\0';
	} else {
		return false;
	}
	it->has_section = true;
	if (!imap_char(c, ']'))
		return false;
	if (imap_char(c, '<')) {
		uint32_t count;
		if (!imap_number64(c, &it->origin) || !imap_char(c, '.') ||
		    !imap_number(c, &count, true) || !imap_char(c, '>'))
			return false;
		it->count = count;
		it->partial = true;
	}
	return true;
}

/* RFC 3516 §6: section-binary = "[" [section-part] "]", part numbers only;
 * then <origin.count> for BINARY and BINARY.PEEK. */
static bool imap_fetch_binary_section(struct imap_cursor *c, struct imap_fetch_item *it)
{
	size_t n = 0;
	bool digit = false;

	while (c->p < c->end && *c->p != ']') {
		char ch = *c->p;
		if (n + 1 >= sizeof(it->section))
			return false;
		if (ch >= '0' && ch <= '9') {
			if (!digit && ch == '0')
				return false; /* nz-number */
			digit = true;
		} else if (ch == '.' && digit) {
			digit = false;
		} else {
			return false;
		}
		it->section[n++] = *c->p++;
	}
	it->section[n] = '\0';
	if ((n > 0 && !digit) || !imap_char(c, ']'))
		return false;
	it->has_section = true;
	if (it->kind == IMAP_FI_BINARY && imap_char(c, '<')) {
		uint32_t count;
		if (!imap_number64(c, &it->origin) || !imap_char(c, '.') ||
		    !imap_number(c, &count, true) || !imap_char(c, '>'))
			return false;
		it->count = count;
		it->partial = true;
	}
	return true;
}

static bool imap_fetch_att(struct imap_cursor *c, struct imap_fetch_cmd *f)
{
	char name[32];
	size_t n = 0;
	struct imap_fetch_item *it;

	while (c->p < c->end && n + 1 < sizeof(name) && *c->p != ' ' && *c->p != '(' &&
	       *c->p != ')' && *c->p != '[')
		name[n++] = *c->p++;
	name[n] = '\0';
	if (n == 0)
		return false;
	if (strcasecmp(name, "ALL") == 0 || strcasecmp(name, "FAST") == 0 ||
	    strcasecmp(name, "FULL") == 0) {
		/* RFC 3501 §6.4.5 macros */
		bool all = strcasecmp(name, "FAST") != 0;
		if (imap_fetch_add(f, IMAP_FI_FLAGS, "FLAGS") == NULL ||
		    imap_fetch_add(f, IMAP_FI_INTERNALDATE, "INTERNALDATE") == NULL ||
		    imap_fetch_add(f, IMAP_FI_SIZE, "RFC822.SIZE") == NULL)
			return false;
		if (all && imap_fetch_add(f, IMAP_FI_ENVELOPE, "ENVELOPE") == NULL)
			return false;
		if (strcasecmp(name, "FULL") == 0 && imap_fetch_add(f, IMAP_FI_BODY, "BODY") == NULL)
			return false;
		return true;
	}
	if (strcasecmp(name, "UID") == 0)
		return imap_fetch_add(f, IMAP_FI_UID, "UID") != NULL;
	if (strcasecmp(name, "MODSEQ") == 0)
		return imap_fetch_add(f, IMAP_FI_MODSEQ, "MODSEQ") != NULL;
	if (strcasecmp(name, "FLAGS") == 0)
		return imap_fetch_add(f, IMAP_FI_FLAGS, "FLAGS") != NULL;
	if (strcasecmp(name, "INTERNALDATE") == 0)
		return imap_fetch_add(f, IMAP_FI_INTERNALDATE, "INTERNALDATE") != NULL;
	if (strcasecmp(name, "RFC822.SIZE") == 0)
		return imap_fetch_add(f, IMAP_FI_SIZE, "RFC822.SIZE") != NULL;
	if (strcasecmp(name, "SAVEDATE") == 0)
		return imap_fetch_add(f, IMAP_FI_SAVEDATE, "SAVEDATE") != NULL;
	if (strcasecmp(name, "PREVIEW") == 0) {
		it = imap_fetch_add(f, IMAP_FI_PREVIEW, "PREVIEW");
		return it != NULL && imap_preview_mods(c, &it->lazy);
	}
	if (strcasecmp(name, "EMAILID") == 0 || strcasecmp(name, "THREADID") == 0)
		return ((name[0] | 0x20) == 'e' ?
			imap_fetch_add(f, IMAP_FI_EMAILID, "EMAILID") :
			imap_fetch_add(f, IMAP_FI_THREADID, "THREADID")) != NULL;
	if (strcasecmp(name, "ENVELOPE") == 0)
		return imap_fetch_add(f, IMAP_FI_ENVELOPE, "ENVELOPE") != NULL;
	if (strcasecmp(name, "BODYSTRUCTURE") == 0)
		return imap_fetch_add(f, IMAP_FI_BODYSTRUCTURE, "BODYSTRUCTURE") != NULL;
	if (strcasecmp(name, "RFC822") == 0 || strcasecmp(name, "RFC822.TEXT") == 0 ||
	    strcasecmp(name, "RFC822.HEADER") == 0) {
		for (size_t i = 0; i < n; i++)
			name[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
		it = imap_fetch_add(f, IMAP_FI_SECTION, name);
		if (it == NULL)
			return false;
		str_copy(it->section, strcmp(name, "RFC822") == 0 ? "" :
				      strcmp(name, "RFC822.TEXT") == 0 ? "TEXT" : "HEADER",
			 sizeof(it->section));
		/* RFC 3501 §6.4.5: RFC822.HEADER is like BODY.PEEK[HEADER] */
		if (strcmp(name, "RFC822.HEADER") != 0)
			f->set_seen = true;
		return true;
	}
	if (f->rfc822_peek && strcasecmp(name, "RFC822.PEEK") == 0) {
		/* imap_quirks.c: Outlook's RFC822.PEEK is BODY.PEEK[], answered
		 * under the name RFC822 (what it asked for, less .PEEK) */
		it = imap_fetch_add(f, IMAP_FI_SECTION, "RFC822");
		if (it == NULL)
			return false;
		str_copy(it->section, "", sizeof(it->section));
		return true;
	}
	if (strcasecmp(name, "BODY") == 0 || strcasecmp(name, "BODY.PEEK") == 0) {
		bool peek = strcasecmp(name, "BODY.PEEK") == 0;
		if (!imap_char(c, '[')) {
			if (peek)
				return false;
			return imap_fetch_add(f, IMAP_FI_BODY, "BODY") != NULL;
		}
		it = imap_fetch_add(f, IMAP_FI_SECTION, "BODY");
		if (it == NULL || !imap_fetch_section(c, it))
			return false;
		if (!peek)
			f->set_seen = true;
		return true;
	}
	if (strcasecmp(name, "BINARY") == 0 || strcasecmp(name, "BINARY.PEEK") == 0 ||
	    strcasecmp(name, "BINARY.SIZE") == 0) {
		bool size = strcasecmp(name, "BINARY.SIZE") == 0;
		it = imap_fetch_add(f, size ? IMAP_FI_BINARY_SIZE : IMAP_FI_BINARY,
				    size ? "BINARY.SIZE" : "BINARY");
		if (it == NULL || !imap_char(c, '[') || !imap_fetch_binary_section(c, it))
			return false;
		if (strcasecmp(name, "BINARY") == 0)
			f->set_seen = true; /* as BODY[] (RFC 3516 §4.1) */
		return true;
	}
	return false;
}

/* ---- output -------------------------------------------------------------- */

/* A message left out by imap_fetch_open_checked(), counted for the
 * tagged reply. */
static void imap_fetch_count_unsent(struct imap_fetch_cmd *f, enum md_result r)
{
	if (r == MD_NOTFOUND)
		f->n_gone++;
	else if (r == MD_CORRUPT)
		f->n_changed++;
	else
		f->n_unreadable++;
}

/* The tagged reply (RFC 5530 response codes for what was left out). */
static void imap_fetch_reply(struct imap_session *s, const struct imap_fetch_cmd *f)
{
	const char *verb = s->uid ? "UID FETCH" : "FETCH";

	if (f->n_changed > 0)
		imap_reply(s, "NO", "[CORRUPTION] %zu message(s) changed on disk since they were "
			   "indexed and were not sent", f->n_changed);
	else if (f->n_unreadable > 0)
		imap_reply(s, "NO", "[UNAVAILABLE] %zu message(s) could not be read",
			   f->n_unreadable);
	else if (f->n_gone > 0)
		imap_reply(s, "NO", "[EXPUNGEISSUED] %zu message(s) were removed meanwhile",
			   f->n_gone);
	else
		imap_reply(s, "OK", "%s completed", verb);
}

/* The file ended inside an announced literal: nothing can complete the
 * response, so this client goes (the daemon and everyone else stay). */
static enum imap_cmd_status imap_fetch_broken(struct imap_session *s, const struct md_msg *msg)
{
	conn_log(s->conn, LOG_LEVEL_ERROR,
		 "imap user=%s FETCH uid=%u: %s ended before the announced literal "
		 "(truncated while sent); closing this connection",
		 s->canonical, msg->uid, msg->path != NULL ? msg->path : "-");
	s->close_after = true;
	return CMD_DONE;
}


static void imap_fetch_simple(struct imap_session *s, struct imap_fetch_cmd *f,
			      const struct imap_fetch_item *it, struct md_msg *msg)
{
	const char *str;
	size_t len;
	char date[64];

	switch (it->kind) {
	case IMAP_FI_UID:
		buf_appendf(&s->out, "UID %u", msg->uid);
		break;
	case IMAP_FI_MODSEQ:
		buf_appendf(&s->out, "MODSEQ (%llu)", (unsigned long long)msg->modseq);
		break;
	case IMAP_FI_FLAGS:
		buf_appendf(&s->out, "FLAGS ");
		imap_buf_flags(&s->out, msg->flags, msg->keywords, f->kw, f->n_kw,
			       imap_is_recent(s, msg->uid));
		break;
	case IMAP_FI_INTERNALDATE:
		imap_format_date_time(msg->internal_date, date, sizeof(date));
		buf_appendf(&s->out, "INTERNALDATE \"%s\"", date);
		break;
	case IMAP_FI_SAVEDATE:
		/* RFC 8514 §3: NIL when unknown (records written before the
		 * store kept a save date hold 0) */
		if (msg->save_date == 0) {
			buf_appendf(&s->out, "SAVEDATE NIL");
			break;
		}
		imap_format_date_time(msg->save_date, date, sizeof(date));
		buf_appendf(&s->out, "SAVEDATE \"%s\"", date);
		break;
	case IMAP_FI_SIZE:
		buf_appendf(&s->out, "RFC822.SIZE %llu", (unsigned long long)msg->size);
		break;
	case IMAP_FI_ENVELOPE:
	case IMAP_FI_BODY:
	case IMAP_FI_BODYSTRUCTURE:
		str = it->kind == IMAP_FI_ENVELOPE ? md_msg_envelope(msg, &len)
		      : it->kind == IMAP_FI_BODY   ? md_msg_body(msg, &len)
						   : md_msg_bodystructure(msg, &len);
		buf_appendf(&s->out, "%s ", it->name);
		if (str != NULL)
			buf_append(&s->out, str, len);
		else
			buf_appendf(&s->out, "NIL");
		break;
	case IMAP_FI_BINARY_SIZE:
		imap_fetch_binary_size(s, it, msg);
		break;
	case IMAP_FI_PREVIEW:
		imap_preview_fetch(s, msg, it->lazy);
		break;
	case IMAP_FI_EMAILID:
	case IMAP_FI_THREADID:
		imap_objectid_fetch(&s->out, msg, it->kind == IMAP_FI_THREADID);
		break;
	case IMAP_FI_SECTION:
	case IMAP_FI_BINARY:
		break;
	}
}

/* Whether the message's file is still the indexed one, checked before
 * \Seen is set for it: a message that imap_fetch_open_checked() will leave
 * out (NO [CORRUPTION] / [UNAVAILABLE]) must not be marked read. */
static bool imap_fetch_file_intact(struct imap_session *s, struct md_msg *msg)
{
	struct stat st;
	int fd = -1;
	bool intact;

	if (md_msg_open(s->view.mb, msg, &fd) != MD_OK)
		return false;
	intact = fstat(fd, &st) == 0 && (uint64_t)st.st_size == msg->size;
	close(fd);
	return intact;
}

/* Read the next batch of messages (and set \Seen where asked). */
static enum md_result imap_fetch_load(struct imap_session *s, struct imap_fetch_cmd *f)
{
	struct imap_view *v = &s->view;
	uint32_t first = f->uids[f->pos], last;
	uint32_t seq0 = imap_view_seq(v, first);
	size_t k = f->pos, w = 0, j = 0;
	struct md_msg *msgs = NULL;
	size_t n = 0;
	unsigned what = (f->need_meta ? MD_READ_META : 0) | (f->need_path ? MD_READ_PATH : 0);
	enum md_result r;

	/* a UID range holding at most IMAP_FETCH_BATCH of the view's messages */
	while (k + 1 < f->n && imap_view_seq(v, f->uids[k + 1]) - seq0 < IMAP_FETCH_BATCH)
		k++;
	last = f->uids[k];
	/* CHANGEDSINCE: the store filters without decoding any meta */
	r = md_msg_list(v->mb, first, last, f->changedsince, what, &msgs, &n);
	if (r != MD_OK)
		return r;
	/* keep the messages asked for (the range may hold others) */
	for (size_t i = 0; i < n; i++) {
		while (j <= k && f->uids[j] < msgs[i].uid)
			j++;
		if (j <= k && f->uids[j] == msgs[i].uid) {
			if (w != i) {
				struct md_msg t = msgs[w];
				msgs[w] = msgs[i];
				msgs[i] = t;
			}
			w++;
		}
	}
	f->pos = k + 1;
	f->batch = msgs;
	f->n_alloc = n;
	f->n_batch = w; /* the unwanted ones wait at [w, n) to be freed */
	f->batch_pos = 0;
	if (f->set_seen && !v->readonly) {
		uint32_t *unseen = malloc((w + 1) * sizeof(uint32_t));
		struct md_flags_result *res = malloc((w + 1) * sizeof(*res));
		size_t nu = 0;
		for (size_t i = 0; unseen != NULL && i < w; i++)
			if (!(msgs[i].flags & MD_FLAG_SEEN) &&
			    (!f->need_file || imap_fetch_file_intact(s, &msgs[i])))
				unseen[nu++] = msgs[i].uid;
		if (nu > 0 && res != NULL &&
		    md_msg_store(v->mb, unseen, nu, MD_FLAGS_ADD, MD_FLAG_SEEN, NULL, 0, 0, res) ==
			    MD_OK) {
			for (size_t i = 0; i < nu; i++)
				if (res[i].result == MD_OK && res[i].modseq > v->modseq)
					v->own_modseq = f->seen_modseq = res[i].modseq;
			for (size_t i = 0, u = 0; i < w && u < nu; i++)
				if (msgs[i].uid == unseen[u]) {
					u++;
					msgs[i].flags |= MD_FLAG_SEEN;
					/* one transaction: one new modseq, which
					 * marks "report FLAGS" */
					msgs[i].modseq = f->seen_modseq;
				}
		}
		free(unseen);
		free(res);
	}
	return MD_OK;
}

static bool imap_fetch_has(const struct imap_fetch_cmd *f, enum imap_fetch_kind kind)
{
	for (size_t i = 0; i < f->n_items; i++)
		if (f->items[i].kind == kind)
			return true;
	return false;
}

/* CHANGEDSINCE (RFC 7162 §3.1.4.1): keep the UIDs the modseq index names,
 * when it names fewer than the set holds (iOS asks for 1:* on its first
 * SELECT); else the slices filter as they are read (md_msg_list). */
static void imap_fetch_narrow(struct imap_session *s, struct imap_fetch_cmd *f)
{
	uint32_t *changed;
	size_t n_changed, w = 0, j = 0;

	if (f->n == 0 || md_msg_changed(s->view.mb, f->uids[0], f->uids[f->n - 1], f->changedsince,
					f->n, &changed, &n_changed) != MD_OK)
		return;
	for (size_t i = 0; i < f->n; i++) {
		while (j < n_changed && changed[j] < f->uids[i])
			j++;
		if (j < n_changed && changed[j] == f->uids[i])
			f->uids[w++] = f->uids[i];
	}
	f->n = w;
	free(changed);
}

/* A CHANGEDSINCE above the mailbox's HIGHESTMODSEQ was never ours: a
 * client still counting in another server's mod-sequences (a mailbox
 * moved from Dovecot without them, README "Moving from Dovecot") gets
 * every message and the full VANISHED, more than it needs, never less.
 * RFC 7162 does not say what such a value means; answering as for 0 is
 * always correct.  Cheap: the status is read only for such a value. */
static void imap_fetch_foreign_modseq(struct imap_session *s, struct imap_fetch_cmd *f)
{
	struct md_status st;

	if (f->changedsince <= s->view.modseq ||
	    md_mailbox_status(s->md_user, s->view.name, &st) != MD_OK ||
	    f->changedsince <= st.highestmodseq)
		return;
	f->changedsince = 0; /* MODSEQ stays among the items (parsed) */
}

/* One message's items after "* n FETCH (", up to its ")\r\n"; resumes
 * where the last slice stopped. */
static enum imap_fetch_flow imap_fetch_items(struct imap_session *s, struct imap_fetch_cmd *f,
					     struct md_msg *msg)
{
	enum imap_fetch_flow flow = imap_fetch_stream(s, f, IMAP_OUT_SLICE);

	while (flow == IMAP_FETCH_SENT && f->item_pos < f->n_items) {
		struct imap_fetch_item *it = &f->items[f->item_pos++];

		if (f->item_pos > 1)
			buf_putc(&s->out, ' ');
		if (it->kind == IMAP_FI_FLAGS)
			f->report_flags = false;
		if (it->kind != IMAP_FI_SECTION && it->kind != IMAP_FI_BINARY) {
			imap_fetch_simple(s, f, it, msg);
			continue;
		}
		if (it->kind == IMAP_FI_BINARY)
			imap_fetch_binary_start(s, f, it, msg);
		else
			imap_fetch_section_start(s, f, it, msg);
		flow = imap_fetch_stream(s, f, IMAP_OUT_SLICE);
	}
	if (flow != IMAP_FETCH_SENT)
		return flow;
	if (f->report_flags) {
		/* RFC 3501 §6.4.5: \Seen set implicitly is reported */
		buf_appendf(&s->out, " FLAGS ");
		imap_buf_flags(&s->out, msg->flags, msg->keywords, f->kw, f->n_kw,
			       imap_is_recent(s, msg->uid));
		if (s->condstore && !imap_fetch_has(f, IMAP_FI_MODSEQ))
			buf_appendf(&s->out, " MODSEQ (%llu)", (unsigned long long)msg->modseq);
	}
	buf_appendf(&s->out, ")\r\n");
	return IMAP_FETCH_SENT;
}

static enum imap_cmd_status imap_fetch_work(struct imap_session *s)
{
	struct imap_fetch_cmd *f = s->cmd_state;
	struct imap_view *v = &s->view;

	if (f->changedsince > 0 && !f->narrowed) {
		f->narrowed = true;
		imap_fetch_foreign_modseq(s, f);
		if (f->changedsince > 0)
			imap_fetch_narrow(s, f);
	}
	if (f->vanished) {
		/* RFC 7162 §3.2.6: before the FETCH responses */
		f->vanished = false;
		if (imap_vanished_earlier(s, &f->vset, f->changedsince, v->uidnext) < 0) {
			imap_reply(s, "NO", "[UNAVAILABLE] Cannot read the mailbox");
			return CMD_DONE;
		}
	}

	if (!f->kw_loaded) {
		md_mailbox_keywords(v->mb, &f->kw, &f->n_kw);
		f->kw_loaded = true;
	}
	for (;;) {
		struct md_msg *msg;

		if (!f->in_msg) {
			if (s->out.len >= IMAP_OUT_SLICE)
				return CMD_MORE;
			if (f->batch == NULL || f->batch_pos >= f->n_batch) {
				if (f->batch != NULL)
					md_msg_list_free(f->batch, f->n_alloc);
				f->batch = NULL;
				if (f->pos >= f->n)
					break;
				if (imap_fetch_load(s, f) != MD_OK) {
					imap_reply(s, "NO", "[UNAVAILABLE] Cannot read the mailbox");
					return CMD_DONE;
				}
				continue;
			}
			msg = &f->batch[f->batch_pos];
			{
				const char *why = imap_fetch_binary_check(f, msg);
				if (why != NULL) {
					imap_reply(s, "NO", "%s", why);
					return CMD_DONE;
				}
			}
			if (f->need_file) {
				enum md_result r = imap_fetch_open_checked(s, f, msg);

				if (r != MD_OK) {
					imap_fetch_count_unsent(f, r);
					f->batch_pos++;
					continue;
				}
			}
			f->msg_mark = s->out.len;
			f->msg_flushed = false;
			buf_appendf(&s->out, "* %u FETCH (", imap_view_seq(v, msg->uid));
			f->in_msg = true;
			f->item_pos = 0;
			f->report_flags = f->set_seen && f->seen_modseq != 0 &&
					  msg->modseq == f->seen_modseq;
		}
		msg = &f->batch[f->batch_pos];
		switch (imap_fetch_items(s, f, msg)) {
		case IMAP_FETCH_FULL:
			f->msg_flushed = true; /* the job's output goes out now */
			return CMD_MORE;
		case IMAP_FETCH_BROKEN:
			if (f->msg_flushed)
				return imap_fetch_broken(s, msg);
			/* none of its response has left: it is taken back */
			conn_log(s->conn, LOG_LEVEL_ERROR,
				 "imap user=%s FETCH uid=%u not sent: %s shrank as it was read",
				 s->canonical, msg->uid, msg->path != NULL ? msg->path : "-");
			s->out.len = f->msg_mark;
			f->n_changed++;
			break;
		case IMAP_FETCH_SENT:
			break;
		}
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		free(f->mem);
		f->mem = NULL;
		f->src_left = 0;
		f->in_msg = false;
		f->batch_pos++;
	}
	/* RFC 3501 §7.4.1: no EXPUNGE after FETCH with sequence numbers */
	imap_view_update(s, s->uid);
	imap_fetch_reply(s, f);
	return CMD_DONE;
}

/* fetch-modifiers (RFC 4466 §2.4): "(CHANGEDSINCE m [VANISHED])" (RFC
 * 7162 §3.1.4, §3.2.6) */
static bool imap_fetch_modifiers(struct imap_session *s, struct imap_cursor *c,
				 struct imap_fetch_cmd *f)
{
	char name[16];

	if (!imap_char(c, '('))
		return false;
	do {
		if (!imap_atom(c, name, sizeof(name), NULL))
			return false;
		if (str_ieq(name, "CHANGEDSINCE") && f->changedsince == 0 &&
		    !f->changedsince_zero) {
			/* RFC 7162 §7: at least 1; 0 only for the client that
			 * sends it (imap_quirks.c), meaning every message */
			if (!imap_sp(c) ||
			    !imap_modseq_arg(c, &f->changedsince,
					     imap_quirk(s, IMAP_QUIRK_CHANGEDSINCE_ZERO)))
				return false;
			f->changedsince_zero = f->changedsince == 0;
		} else if (str_ieq(name, "VANISHED") && !f->vanished) {
			f->vanished = true;
		} else {
			c->err = "Unknown FETCH modifier";
			return false;
		}
	} while (imap_sp(c));
	if (!imap_char(c, ')'))
		return false;
	/* RFC 7162 §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE,
	 * after ENABLE QRESYNC */
	if (f->vanished && (!s->uid || !s->qresync || f->changedsince == 0)) {
		c->err = "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC";
		return false;
	}
	return true;
}

void imap_cmd_fetch(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_fetch_cmd *f = calloc(1, sizeof(*f));
	bool ok = true;

	if (f == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	f->fd = -1;
	s->cmd_state = f;
	s->cmd_free = imap_fetch_free;
	if (!imap_sp(args))
		goto bad_args;
	{
		/* VANISHED wants the UID set as given, not only the view's */
		struct imap_cursor again = *args;

		if (!imap_set_arg(s, args, s->uid, &f->uids, &f->n)) {
			if (args->err != NULL && f->uids == NULL && args->p >= args->end)
				imap_reply(s, "BAD", "Missing arguments");
			return;
		}
		if (s->uid && !imap_seqset(&again, &f->vset))
			memset(&f->vset, 0, sizeof(f->vset));
	}
	if (!imap_sp(args)) {
		imap_reply(s, "BAD", "Missing FETCH items");
		return;
	}
	f->rfc822_peek = imap_quirk(s, IMAP_QUIRK_RFC822_PEEK);
	if (imap_char(args, '(')) {
		do {
			ok = imap_fetch_att(args, f);
		} while (ok && imap_char(args, ' '));
		ok = ok && imap_char(args, ')');
	} else {
		ok = imap_fetch_att(args, f);
	}
	if (ok && imap_sp(args))
		ok = imap_fetch_modifiers(s, args, f);
	if (!ok || !imap_at_end(args) || f->n_items == 0) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid FETCH items");
		return;
	}
	/* RFC 3501 §6.4.8: UID FETCH always answers with the UID */
	if (s->uid) {
		bool have = false;
		for (size_t i = 0; i < f->n_items; i++)
			have = have || f->items[i].kind == IMAP_FI_UID;
		if (!have) {
			if (f->n_items >= IMAP_FETCH_ITEMS_MAX) {
				imap_reply(s, "BAD", "[LIMIT] Too many FETCH items");
				return;
			}
			memmove(&f->items[1], &f->items[0], f->n_items * sizeof(f->items[0]));
			f->n_items++;
			memset(&f->items[0], 0, sizeof(f->items[0]));
			f->items[0].kind = IMAP_FI_UID;
			str_copy(f->items[0].name, "UID", sizeof(f->items[0].name));
		}
	}
	if ((f->changedsince > 0 || f->changedsince_zero) && !imap_fetch_has(f, IMAP_FI_MODSEQ)) {
		/* RFC 7162 §3.1.4.1: CHANGEDSINCE answers with MODSEQ */
		struct imap_fetch_item *it = imap_fetch_add(f, IMAP_FI_MODSEQ, "MODSEQ");

		if (it == NULL) {
			imap_reply(s, "BAD", "[LIMIT] Too many FETCH items");
			return;
		}
	}
	if (f->changedsince > 0 || f->changedsince_zero || imap_fetch_has(f, IMAP_FI_MODSEQ))
		s->condstore = true; /* RFC 7162 §3.1: CONDSTORE enabling */
	imap_job_start(s, imap_fetch_work, NULL);
	return;
bad_args:
	imap_reply(s, "BAD", "Missing arguments");
}

/* ---- NOTIFY MessageNew (RFC 5465 §5.2) ------------------------------------ */

/* HEADER, HEADER.FIELDS[.NOT] of the message or a part, or a part's MIME */
static bool imap_fetch_is_header(const struct imap_fetch_item *it)
{
	size_t n = strlen(it->section);

	return strstr(it->section, "HEADER") != NULL ||
	       (n >= 4 && strcmp(it->section + n - 4, "MIME") == 0);
}

struct imap_fetch_cmd *imap_fetch_notify_parse(struct imap_cursor *c)
{
	struct imap_fetch_cmd *f = calloc(1, sizeof(*f));
	bool ok;

	if (f == NULL) {
		c->err = "Out of memory";
		return NULL;
	}
	f->fd = -1;
	ok = imap_char(c, '(');
	do
		ok = ok && imap_fetch_att(c, f);
	while (ok && imap_char(c, ' '));
	ok = ok && imap_char(c, ')');
	/* between commands nothing streams: a header (bounded by the store)
	 * is written whole; no \Seen is set behind the client's back */
	for (size_t i = 0; ok && i < f->n_items; i++)
		if (f->items[i].kind == IMAP_FI_BINARY ||
		    (f->items[i].kind == IMAP_FI_SECTION && !imap_fetch_is_header(&f->items[i]))) {
			c->err = "NOTIFY sends of a message's text only BODY.PEEK[...HEADER...]";
			ok = false;
		}
	if (ok && f->set_seen) {
		c->err = "NOTIFY takes BODY.PEEK[...], not BODY[...]";
		ok = false;
	}
	if (!ok) {
		if (c->err == NULL)
			c->err = "Invalid fetch attribute";
		imap_fetch_free(f);
		return NULL;
	}
	return f;
}

void imap_fetch_notify_free(struct imap_fetch_cmd *f)
{
	imap_fetch_free(f);
}

void imap_fetch_notify_write(struct imap_session *s, struct imap_fetch_cmd *f, uint32_t from_uid)
{
	struct imap_view *v = &s->view;
	unsigned what = (f->need_meta ? MD_READ_META : 0) | (f->need_path ? MD_READ_PATH : 0);
	size_t i = v->n;

	while (i > 0 && v->uids[i - 1] >= from_uid)
		i--;
	if (v->mb == NULL || i == v->n)
		return;
	md_mailbox_keywords(v->mb, &f->kw, &f->n_kw);
	/* IMAP_FETCH_BATCH messages read from the store at a time */
	while (i < v->n) {
		size_t k = v->n - i > IMAP_FETCH_BATCH ? i + IMAP_FETCH_BATCH : v->n;
		struct md_msg *msgs = NULL;
		size_t n = 0;

		if (md_msg_list(v->mb, v->uids[i], v->uids[k - 1], 0, what, &msgs, &n) != MD_OK)
			break; /* expunged meanwhile: MessageExpunge tells */
		for (size_t j = 0; j < n; j++) {
			uint32_t seq = imap_view_seq(v, msgs[j].uid);
			size_t mark = s->out.len;
			bool whole = true;

			if (seq == 0 || (f->need_file && imap_fetch_open_checked(s, f, &msgs[j]) != MD_OK))
				continue;
			buf_appendf(&s->out, "* %u FETCH (", seq);
			for (size_t it = 0; it < f->n_items && whole; it++) {
				if (it > 0)
					buf_putc(&s->out, ' ');
				if (f->items[it].kind != IMAP_FI_SECTION) {
					imap_fetch_simple(s, f, &f->items[it], &msgs[j]);
					continue;
				}
				imap_fetch_section_start(s, f, &f->items[it], &msgs[j]);
				whole = imap_fetch_stream(s, f, SIZE_MAX) == IMAP_FETCH_SENT;
			}
			if (whole) {
				buf_appendf(&s->out, ")\r\n");
			} else {
				/* nothing of it has left yet: the message is
				 * left out whole (out of memory, or its file
				 * shrank since the check), never padded */
				s->out.len = mark;
				free(f->mem);
				f->mem = NULL;
				f->src_left = 0;
			}
			if (f->fd >= 0)
				close(f->fd);
			f->fd = -1;
		}
		md_msg_list_free(msgs, n);
		i = k;
	}
	if (f->kw != NULL)
		md_mailbox_keywords_free(f->kw, f->n_kw);
	f->kw = NULL;
	f->n_kw = 0;
}
