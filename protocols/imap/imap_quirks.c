/* ID (RFC 2971) and the client quirks table.
 *
 * The client's "name", "version" and "os" are kept on the session
 * (bounded, truncated copies), logged once, and its name is looked up in
 * imap_quirk_table below.  An entry turns on a workaround a real client
 * needs; nothing else in the server looks at what the client says it is.
 * A client that sends no ID, or one not in the table, gets the standard
 * behaviour.  The first ID of a session decides; a later one is answered
 * but changes nothing (RFC 2971 §3.1 does not ask a server to act on it).
 *
 * Each entry says why, where the quirk was seen, and which test proves
 * the difference (tests/integration/imap_quirks.py).  Only what a source
 * shows goes in: no client is given a workaround for a bug nobody saw.
 *
 * Memory: nothing is allocated; the copies live in struct imap_session.
 */
#include "imap_private.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "log.h"

/* RFC 2971 §3.3: at most 30 field-value pairs */
#define IMAP_ID_PAIRS_MAX 30
/* RFC 2971 §3.3: field names no longer than 30 octets */
#define IMAP_ID_FIELD_MAX 30

enum imap_quirk_match {
	IMAP_QUIRK_EXACT,  /* the whole name, ASCII case-insensitive */
	IMAP_QUIRK_PREFIX, /* the name begins with it */
};

struct imap_quirk_entry {
	const char *name;
	enum imap_quirk_match match;
	unsigned quirks; /* IMAP_QUIRK_* */
};

/*
 * IMAP_QUIRK_CHANGEDSINCE_ZERO -- Apple Mail (iOS, iPadOS, macOS).
 *   iPhone Mail 16.5.1 sent "FETCH ... (CHANGEDSINCE 0)" to a server that
 *   had just gained CONDSTORE (modern-email/defects issue #29, reproduced;
 *   /work/shared/clients/README.md).  RFC 7162 §7's mod-sequence-value is
 *   at least 1, so the standard answer is BAD and the FETCH the client
 *   needed fails.  With the quirk, 0 means "changed since the beginning":
 *   every message of the set, with MODSEQ.  Seen from iPhone Mail only;
 *   iPad Mail, Mac Mail and the com.apple.email.* names are included on
 *   the assumption (ours, not a source's) that Apple ships one IMAP
 *   engine; the quirk only accepts what would otherwise be BAD, so it
 *   cannot hurt them.  A real mod-sequence filters as for anyone.
 *   iPhone Mail's ID: ("name" "iPhone Mail" "version" "21B101" "os" "iOS"
 *   "os-version" "17.1.2 (21B101)").
 *
 * IMAP_QUIRK_RFC822_PEEK -- Microsoft Outlook.
 *   Outlook fetches with "UID FETCH n (UID RFC822.SIZE RFC822.PEEK)", an
 *   item RFC 2060 dropped and RFC 3501 never had; Exchange keeps it
 *   (Microsoft's [MS-STANOIMAP] notes list it); a server without it
 *   answers BAD and Outlook gets no message (emersion/go-imap issue #657
 *   with the log; PR #658 accepted it, and the reporter confirmed the
 *   errors stopped with Outlook).  With the quirk RFC822.PEEK is
 *   BODY.PEEK[]: the whole message, answered as "RFC822", \Seen left
 *   alone.  New Outlook identifies as ("name" "Microsoft Outlook" ...);
 *   we found no record of classic Outlook's ID, if it sends one, so it
 *   may still get the BAD.
 *
 * IMAP_QUIRK_TRAILING_SEP -- Thunderbird.
 *   Thunderbird sometimes adds the hierarchy separator to a mailbox name
 *   ("Projects/"); Dovecot has carried a workaround for it for years
 *   ("tb-extra-mailbox-sep" of imap_client_workarounds: its documentation
 *   says Thunderbird appends '/' to names, seen with mbox and dbox
 *   layouts, and the workaround drops it rather than refusing the name).
 *   CREATE already drops it for everyone (RFC 3501 §6.3.3); with the
 *   quirk every mailbox argument does (SELECT, STATUS, SUBSCRIBE, ...).
 *   Thunderbird's ID: ("name" "Thunderbird" "version" "153.8.0")
 *   (/work/shared/clients/thunderbird-imap-session.txt).
 *
 * Not in the table: K-9 Mail / Thunderbird for Android.  Their source
 * (thunderbird-android's RealImapConnection) sends ID ("name" "K-9 Mail"
 * "version" ...) after login and COMPRESS; Thunderbird for Android sends
 * "Thunderbird" as its name (so it gets the desktop's entry, which only
 * changes names ending in '/').  What that source does that a server
 * could trip on -- AUTHENTICATE PLAIN with a continuation, LIST "" "" for
 * the delimiter, UID sets split at 8,172 octets once CONDSTORE is offered
 * (which needs line_length_max's default of 8192) -- works as standard,
 * and no source we found shows a server-side workaround for it; the
 * "k-9" case of imap_quirks.py replays that session and checks the log
 * says quirks=-.
 */
static const struct imap_quirk_entry imap_quirk_table[] = {
	{ "iPhone Mail", IMAP_QUIRK_EXACT, IMAP_QUIRK_CHANGEDSINCE_ZERO },
	{ "iPad Mail", IMAP_QUIRK_EXACT, IMAP_QUIRK_CHANGEDSINCE_ZERO },
	{ "Mac OS X Mail", IMAP_QUIRK_EXACT, IMAP_QUIRK_CHANGEDSINCE_ZERO },
	{ "com.apple.email", IMAP_QUIRK_PREFIX, IMAP_QUIRK_CHANGEDSINCE_ZERO },
	{ "Microsoft Outlook", IMAP_QUIRK_PREFIX, IMAP_QUIRK_RFC822_PEEK },
	{ "Thunderbird", IMAP_QUIRK_EXACT, IMAP_QUIRK_TRAILING_SEP },
};

static const struct {
	unsigned bit;
	const char *name;
} imap_quirk_names[] = {
	{ IMAP_QUIRK_CHANGEDSINCE_ZERO, "changedsince-zero" },
	{ IMAP_QUIRK_RFC822_PEEK, "rfc822-peek" },
	{ IMAP_QUIRK_TRAILING_SEP, "trailing-sep" },
};

unsigned imap_quirks_for(const char *name)
{
	for (size_t i = 0; i < sizeof(imap_quirk_table) / sizeof(imap_quirk_table[0]); i++) {
		const struct imap_quirk_entry *e = &imap_quirk_table[i];
		bool hit = e->match == IMAP_QUIRK_EXACT
				   ? strcasecmp(name, e->name) == 0
				   : strncasecmp(name, e->name, strlen(e->name)) == 0;

		if (hit)
			return e->quirks;
	}
	return 0;
}

bool imap_quirk(const struct imap_session *s, unsigned quirk)
{
	return (s->client.quirks & quirk) != 0;
}

/* A value as the log shows it: printable ASCII but for quotes and
 * backslashes, truncated to the field (RFC 2971 §3.3 allows 1024 octets;
 * we keep IMAP_ID_VALUE_MAX). */
static void imap_id_copy(char *out, const char *s, size_t len)
{
	size_t n = len < IMAP_ID_VALUE_MAX ? len : IMAP_ID_VALUE_MAX;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
	}
	out[n] = '\0';
}

static void imap_id_keep(struct imap_client_id *id, const char *field, size_t flen,
			 const char *value, size_t vlen)
{
	char *dst = NULL;

	if (value == NULL || flen > IMAP_ID_FIELD_MAX)
		return;
	/* RFC 2971 §3.3: field names are case-insensitive */
	if (flen == 4 && strncasecmp(field, "name", 4) == 0)
		dst = id->name;
	else if (flen == 7 && strncasecmp(field, "version", 7) == 0)
		dst = id->version;
	else if (flen == 2 && strncasecmp(field, "os", 2) == 0)
		dst = id->os;
	if (dst != NULL && dst[0] == '\0')
		imap_id_copy(dst, value, vlen);
}

static void imap_id_log(struct imap_session *s)
{
	char names[64] = "";
	size_t used = 0;

	for (size_t i = 0; i < sizeof(imap_quirk_names) / sizeof(imap_quirk_names[0]); i++) {
		if (!(s->client.quirks & imap_quirk_names[i].bit))
			continue;
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
					 used > 0 ? "," : "", imap_quirk_names[i].name);
		if (used >= sizeof(names))
			break;
	}
	conn_log(s->conn, LOG_LEVEL_INFO,
		 "imap client name=\"%s\" version=\"%s\" os=\"%s\" quirks=%s", s->client.name,
		 s->client.version, s->client.os, names[0] != '\0' ? names : "-");
}

/* RFC 2971 §4: ID NIL / ID () / ID ("field" "value" ...): pairs of a
 * string and an nstring (a field without a value, or NIL as a field, is
 * BAD). */
void imap_cmd_id(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_client_id id;
	const char *field = NULL, *str = NULL;
	size_t flen = 0, len;

	memset(&id, 0, sizeof(id));
	if (!imap_sp(args))
		goto bad;
	if (!imap_char(args, '(')) {
		if (!imap_nstring(args, &str, &len) || str != NULL)
			goto bad;
	} else if (!imap_char(args, ')')) {
		for (unsigned i = 0;; i++) {
			if (i >= 2 * IMAP_ID_PAIRS_MAX)
				goto bad;
			if (i > 0 && !imap_sp(args))
				goto bad;
			if (!imap_nstring(args, &str, &len))
				goto bad;
			if (i % 2 == 0) {
				field = str;
				flen = len;
				if (field == NULL) /* a field is a string */
					goto bad;
			} else {
				imap_id_keep(&id, field, flen, str, len);
			}
			if (imap_char(args, ')')) {
				if (i % 2 == 0) /* a field without its value */
					goto bad;
				break;
			}
		}
	}
	if (!imap_at_end(args))
		goto bad;
	if (!s->client.seen) {
		s->client = id;
		s->client.seen = true;
		s->client.quirks = imap_quirks_for(s->client.name);
		imap_id_log(s);
	}
	imap_out(s, "* ID (\"name\" \"Postern\")\r\n");
	imap_reply(s, "OK", "ID completed");
	return;
bad:
	imap_reply(s, "BAD", "Invalid ID arguments");
}
