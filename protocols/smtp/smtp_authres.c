/* Authentication-Results (RFC 8601): the field we add to checked mail, and
 * the removal of fields that arrive claiming to be ours.
 *
 * Ours looks like
 *
 *   Authentication-Results: mail.example.org;
 *   	dkim=pass header.d=example.com header.s=sel header.a=rsa-sha256
 *   	header.b=AbCdEfGh;
 *   	spf=pass smtp.mailfrom=alice@example.com;
 *   	dmarc=pass (p=reject) header.from=example.com
 *
 * with one dkim= per signature (dkim=none when there is none), and
 * comments in parentheses for what a reader should know: why a signature
 * failed, that l= left part of the body unsigned, that a key is in test
 * mode, the SPF explanation.  RFC 8601 §5: a field that arrives from
 * outside with our authserv-id could only be forged, so it is removed
 * before ours is added; fields of other authserv-ids are left alone.
 */
#include "smtp_inbound.h"
#include "smtp_dkim_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- stripping ----------------------------------------------------------- */

/* The authserv-id of an Authentication-Results value: after CFWS, up to
 * WSP, ';' or '(' (RFC 8601 §2.2; a version number may follow it). */
static bool authres_id_is(const char *v, size_t len, const char *id)
{
	size_t i = 0, depth = 0, start, idlen = strlen(id);

	while (i < len) {
		char c = v[i];
		if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n')
			break;
		i++;
	}
	start = i;
	while (i < len && v[i] != ' ' && v[i] != '\t' && v[i] != ';' && v[i] != '(' &&
	       v[i] != '\r')
		i++;
	if (i - start >= 2 && v[start] == '"' && v[i - 1] == '"') {
		start++;
		i--;
	}
	return i - start == idlen && strncasecmp(v + start, id, idlen) == 0;
}

size_t authres_strip(struct buf *b, size_t *hlen, const char *authserv_id)
{
	struct dkim_field *f = calloc(AUTHRES_FIELDS_MAX, sizeof(*f));
	size_t n = 0, removed = 0;

	if (f == NULL)
		return 0;
	/* fields beyond AUTHRES_FIELDS_MAX: only the first ones are looked at */
	if (dkim_header_split(b->data, *hlen, f, AUTHRES_FIELDS_MAX, &n) < 0)
		n = AUTHRES_FIELDS_MAX;
	for (size_t i = n; i > 0; i--) {
		const struct dkim_field *x = &f[i - 1];
		const char *colon;
		size_t end;
		if (!dkim_field_is(b->data, x, "Authentication-Results"))
			continue;
		colon = memchr(b->data + x->off, ':', x->len);
		if (colon == NULL)
			continue;
		if (!authres_id_is(colon + 1, x->len - (size_t)(colon + 1 - (b->data + x->off)),
				   authserv_id))
			continue;
		/* bottom-up, so the offsets of the fields above stay right */
		end = x->off + x->len + 2 <= *hlen ? x->off + x->len + 2 : *hlen;
		memmove(b->data + x->off, b->data + end, b->len - end);
		b->len -= end - x->off;
		*hlen -= end - x->off;
		removed++;
	}
	free(f);
	return removed;
}

/* ---- building ------------------------------------------------------------ */

/* A property value: a dot-atom or domain goes as is, anything else quoted
 * (RFC 8601 §2.2 pvalue is value / [[local-part] "@"] domain-name). */
static int authres_value(struct buf *out, const char *v)
{
	bool plain = *v != '\0';

	for (const char *p = v; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr(".-_@+=/!#$%&'*^`{|}~", *p) == NULL)
			plain = false;
	if (plain)
		return buf_appendf(out, "%s", v);
	if (buf_putc(out, '"') < 0)
		return -1;
	for (const char *p = v; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			continue;
		if ((*p == '"' || *p == '\\') && buf_putc(out, '\\') < 0)
			return -1;
		if (buf_putc(out, *p) < 0)
			return -1;
	}
	return buf_putc(out, '"');
}

/* A comment without parentheses or control characters inside. */
static int authres_comment(struct buf *out, const char *text)
{
	if (text == NULL || *text == '\0')
		return 0;
	if (buf_appendf(out, " (") < 0)
		return -1;
	for (const char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x20 && *p != 0x7f && *p != '(' && *p != ')' &&
		    *p != '\\' && buf_putc(out, *p) < 0)
			return -1;
	return buf_putc(out, ')');
}

static int authres_dkim(struct buf *out, const struct dkim_sig_result *r)
{
	char note[160];
	int rc = buf_appendf(out, ";\r\n\tdkim=%s", dkim_result_name(r->result));

	note[0] = '\0';
	if (r->result == DKIM_RESULT_PASS && r->partial)
		snprintf(note, sizeof(note), "l= left %llu body octets unsigned",
			 (unsigned long long)r->unsigned_octets);
	else if (r->result != DKIM_RESULT_PASS)
		str_copy(note, r->reason, sizeof(note));
	if (r->testing)
		snprintf(note + strlen(note), sizeof(note) - strlen(note), "%skey in test mode",
			 note[0] != '\0' ? "; " : "");
	rc |= authres_comment(out, note);
	if (r->domain[0] != '\0') {
		rc |= buf_appendf(out, "\r\n\theader.d=");
		rc |= authres_value(out, r->domain);
	}
	if (r->selector[0] != '\0') {
		rc |= buf_appendf(out, " header.s=");
		rc |= authres_value(out, r->selector);
	}
	if (r->alg[0] != '\0') {
		rc |= buf_appendf(out, " header.a=");
		rc |= authres_value(out, r->alg);
	}
	if (r->b_prefix[0] != '\0') {
		rc |= buf_appendf(out, " header.b=");
		rc |= authres_value(out, r->b_prefix);
	}
	return rc < 0 ? -1 : 0;
}

int authres_build(const struct authres_input *in, struct buf *out)
{
	int rc = buf_appendf(out, "Authentication-Results: %s", in->authserv_id);

	if (in->n_dkim == 0)
		rc |= buf_appendf(out, ";\r\n\tdkim=none");
	for (size_t i = 0; i < in->n_dkim; i++)
		rc |= authres_dkim(out, &in->dkim[i]);
	if (in->mailfrom != NULL && in->mailfrom[0] != '\0') {
		rc |= buf_appendf(out, ";\r\n\tspf=%s", spf_result_name(in->spf_mailfrom));
		if (in->spf_mailfrom == SPF_RESULT_FAIL)
			rc |= authres_comment(out, in->spf_exp);
		rc |= buf_appendf(out, " smtp.mailfrom=");
		rc |= authres_value(out, in->mailfrom);
	}
	if (in->helo != NULL && in->helo[0] != '\0') {
		rc |= buf_appendf(out, ";\r\n\tspf=%s", spf_result_name(in->spf_helo));
		rc |= buf_appendf(out, " smtp.helo=");
		rc |= authres_value(out, in->helo);
	}
	if (in->dmarc != NULL) {
		char note[160];
		rc |= buf_appendf(out, ";\r\n\tdmarc=%s", dmarc_result_name(in->dmarc->result));
		if (in->dmarc->result == DMARC_RESULT_PASS || in->dmarc->result == DMARC_RESULT_FAIL)
			snprintf(note, sizeof(note), "%s%sp=%s", in->dmarc->reason,
				 in->dmarc->reason[0] != '\0' ? "; " : "",
				 dmarc_policy_name(in->dmarc->policy));
		else
			str_copy(note, in->dmarc->reason, sizeof(note));
		rc |= authres_comment(out, note);
		if (in->from_domain != NULL && in->from_domain[0] != '\0') {
			rc |= buf_appendf(out, " header.from=");
			rc |= authres_value(out, in->from_domain);
		}
	}
	rc |= buf_appendf(out, "\r\n");
	return rc < 0 ? -1 : 0;
}
