/* Vacation (RFC 5230): when a reply may go out (§4.5, §4.6, §5 and RFC
 * 3834 §2), the handle its rate limit is kept under (§4.2), and the reply
 * itself (§5: Subject "Auto: ...", In-Reply-To, References,
 * Auto-Submitted: auto-replied).  The caller keeps the per-sender record
 * and queues the reply.
 */
#include "sieve_private.h"

#include "base64.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sv_addr_search {
	const char *const *want;
	size_t n_want;
	bool found;
};

static int sv_addr_is_wanted(void *arg, const char *v, size_t len)
{
	struct sv_addr_search *s = arg;

	for (size_t i = 0; i < s->n_want; i++)
		if (strlen(s->want[i]) == len && strncasecmp(s->want[i], v, len) == 0) {
			s->found = true;
			return 1;
		}
	return 0;
}

static int sv_addr_value(void *arg, const char *v, size_t len)
{
	return sv_address_each(v, len, SV_PART_ALL, sv_addr_is_wanted, arg);
}

/* Any field whose name starts with prefix (RFC 2369 / RFC 2919 List-*). */
static bool sv_has_field_prefix(const struct sieve_message *msg, const char *prefix)
{
	const char *p = msg->header, *end = msg->header + msg->header_len;
	size_t pl = strlen(prefix);

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (*p == '\r' || *p == '\n')
			break;
		if ((size_t)(end - p) > pl && strncasecmp(p, prefix, pl) == 0)
			return true;
		p = nl != NULL ? nl + 1 : end;
	}
	return false;
}

/* RFC 5230 §4.6 names that are never people. */
static bool sv_sender_is_automatic(const char *from)
{
	const char *at = strrchr(from, '@');
	size_t local = at != NULL ? (size_t)(at - from) : strlen(from);

	return (local >= 6 && strncasecmp(from, "owner-", 6) == 0) ||
	       (local >= 8 && strncasecmp(from + local - 8, "-request", 8) == 0) ||
	       (local == 13 && strncasecmp(from, "mailer-daemon", 13) == 0);
}

bool sieve_vacation_allowed(const struct sieve_message *msg, const struct sieve_action *act,
			    const char **why_r)
{
	static const char *const recipient_fields[] = { "To", "Cc", "Bcc", "Resent-To",
							"Resent-Cc", "Resent-Bcc" };
	const char **want;
	struct sv_addr_search search;
	char *v;
	bool bulk = false, automatic = false;

	if (msg->envelope_from == NULL || msg->envelope_from[0] == '\0') {
		*why_r = "null sender";
		return false;
	}
	if (sv_sender_is_automatic(msg->envelope_from)) {
		*why_r = "sender is a list or daemon address";
		return false;
	}
	if (sv_has_field_prefix(msg, "List-")) {
		*why_r = "mailing list message";
		return false;
	}
	v = sieve_header_first(msg, "Precedence");
	if (v != NULL)
		bulk = strcasecmp(v, "bulk") == 0 || strcasecmp(v, "list") == 0 ||
		       strcasecmp(v, "junk") == 0;
	free(v);
	if (bulk) {
		*why_r = "bulk message";
		return false;
	}
	v = sieve_header_first(msg, "Auto-Submitted");
	if (v != NULL) /* RFC 3834 §5: anything but "no" (and its parameters) */
		automatic = strncasecmp(v, "no", 2) != 0 ||
			    (v[2] != '\0' && v[2] != ';' && v[2] != ' ' && v[2] != '\t');
	free(v);
	if (automatic) {
		*why_r = "automatic message";
		return false;
	}
	want = calloc(act->n_addresses + 1, sizeof(*want));
	if (want == NULL) {
		*why_r = "out of memory";
		return false;
	}
	want[0] = msg->envelope_to;
	for (size_t i = 0; i < act->n_addresses; i++)
		want[i + 1] = act->addresses[i];
	/* RFC 5230 §4.5: not to oneself */
	search = (struct sv_addr_search){ want, act->n_addresses + 1, false };
	(void)sv_addr_is_wanted(&search, msg->envelope_from, strlen(msg->envelope_from));
	if (search.found) {
		free(want);
		*why_r = "sender is the recipient";
		return false;
	}
	for (size_t i = 0; i < sizeof(recipient_fields) / sizeof(recipient_fields[0]) &&
			   !search.found; i++)
		(void)sv_header_each(msg, recipient_fields[i], sv_addr_value, &search);
	free(want);
	if (!search.found) {
		*why_r = "recipient not in To, Cc or Bcc";
		return false;
	}
	*why_r = NULL;
	return true;
}

static uint64_t sv_fnv1a(uint64_t h, const char *s)
{
	if (s == NULL)
		s = "";
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (h ^ 0xff) * 1099511628211ull; /* a separator between the parts */
}

void sieve_vacation_handle(const struct sieve_action *act, char *out, size_t outlen)
{
	uint64_t h = 14695981039346656037ull;

	if (act->handle != NULL) {
		h = sv_fnv1a(h, "handle");
		h = sv_fnv1a(h, act->handle);
	} else {
		/* RFC 5230 §4.2: the same reason, subject, from and mime are the
		 * same vacation */
		h = sv_fnv1a(h, act->text);
		h = sv_fnv1a(h, act->subject);
		h = sv_fnv1a(h, act->from);
		h = sv_fnv1a(h, act->mime ? "mime" : "");
	}
	snprintf(out, outlen, "%016llx", (unsigned long long)h);
}

/* ---- the reply -------------------------------------------------------- */

/* The reply being built; a failed append is remembered. */
struct sv_out {
	struct buf b;
	bool failed;
};

static void sv_out_add(struct sv_out *o, const char *p, size_t n)
{
	if (buf_append(&o->b, p, n) < 0)
		o->failed = true;
}

static void sv_out_str(struct sv_out *o, const char *s)
{
	sv_out_add(o, s, strlen(s));
}

/* A header value from the script or the message: no line breaks (they
 * would inject fields), and RFC 2047 B encoding when not ASCII. */
static void sv_out_header_text(struct sv_out *o, const char *s)
{
	bool ascii = true;
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		ascii = ascii && (unsigned char)s[i] < 0x80;
	if (ascii) {
		for (size_t i = 0; i < n; i++)
			sv_out_add(o, s[i] == '\r' || s[i] == '\n' ? " " : &s[i], 1);
		return;
	}
	/* encoded words of at most 45 octets each (60 characters of base64) */
	for (size_t start = 0, len = 0; start < n; start += len) {
		char enc[64];
		len = n - start < 45 ? n - start : 45;
		/* do not split a UTF-8 character between two words */
		while (start + len < n && len > 1 && ((unsigned char)s[start + len] & 0xc0) == 0x80)
			len--;
		base64_encode(s + start, len, enc);
		sv_out_str(o, start > 0 ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
		sv_out_str(o, enc);
		sv_out_str(o, "?=");
	}
}

/* Text with any line ends as CRLF lines. */
static void sv_out_crlf(struct sv_out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\r')
			continue;
		sv_out_add(o, *s == '\n' ? "\r\n" : s, *s == '\n' ? 2 : 1);
	}
}

int sieve_vacation_reply(const struct sieve_message *msg, const struct sieve_action *act,
			 const char *date, const char *message_id, char **out_r, size_t *len_r)
{
	struct sv_out o = { .failed = false };
	char *subject = sieve_header_first(msg, "Subject");
	char *orig_id = sieve_header_first(msg, "Message-ID");
	char *refs = sieve_header_first(msg, "References");
	size_t tl = strlen(act->text);

	buf_init(&o.b, 0);

	sv_out_str(&o, "From: ");
	sv_out_header_text(&o, act->from != NULL ? act->from : msg->envelope_to);
	sv_out_str(&o, "\r\nTo: <");
	sv_out_header_text(&o, msg->envelope_from);
	sv_out_str(&o, ">\r\nSubject: ");
	if (act->subject != NULL) {
		sv_out_header_text(&o, act->subject);
	} else {
		/* RFC 5230 §4.3: "Auto: " and the original subject */
		sv_out_str(&o, "Auto: ");
		sv_out_header_text(&o, subject != NULL ? subject : "");
	}
	sv_out_str(&o, "\r\nDate: ");
	sv_out_str(&o, date);
	sv_out_str(&o, "\r\nMessage-ID: ");
	sv_out_str(&o, message_id);
	if (orig_id != NULL && orig_id[0] == '<' && strpbrk(orig_id, "\r\n") == NULL) {
		/* RFC 5230 §5.6 / RFC 5322 §3.6.4 */
		sv_out_str(&o, "\r\nIn-Reply-To: ");
		sv_out_str(&o, orig_id);
		sv_out_str(&o, "\r\nReferences: ");
		if (refs != NULL && strpbrk(refs, "\r\n") == NULL) {
			sv_out_str(&o, refs);
			sv_out_str(&o, " ");
		}
		sv_out_str(&o, orig_id);
	}
	/* RFC 3834 §5 / RFC 5230 §5 */
	sv_out_str(&o, "\r\nAuto-Submitted: auto-replied (vacation)\r\nMIME-Version: 1.0\r\n");
	if (act->mime) {
		/* the reason is a MIME entity: its own header fields, a blank
		 * line, its body */
		sv_out_crlf(&o, act->text);
	} else {
		sv_out_str(&o, "Content-Type: text/plain; charset=utf-8\r\n"
			       "Content-Transfer-Encoding: 8bit\r\n\r\n");
		sv_out_crlf(&o, act->text);
	}
	if (tl == 0 || (act->text[tl - 1] != '\n'))
		sv_out_str(&o, "\r\n");
	free(subject);
	free(orig_id);
	free(refs);
	if (o.failed || buf_cstr(&o.b) < 0) {
		buf_free(&o.b);
		return -1;
	}
	*out_r = o.b.data;
	*len_r = o.b.len;
	return 0;
}
