/* PREVIEW (RFC 8970): the FETCH item and its LAZY modifier.
 *
 * The store computes the preview at delivery (md_text.c
 * md_text_preview(), kept in the message's metadata).  A message indexed
 * before the preview was kept has none stored: FETCH PREVIEW computes it
 * now from the file (RFC 8970 §3: the server returns the preview, NIL
 * only under LAZY), and FETCH PREVIEW (LAZY) answers NIL for it (§4: the
 * client asks again without LAZY when it wants it).  `postern reindex`
 * stores it for them.
 *
 * Runs on the FETCH job's worker thread, as the rest of FETCH. */
#include "imap_private.h"

#include <string.h>

#include "store.h"
#include "util.h"

/* "(LAZY)" after PREVIEW (RFC 8970 §6: preview-mod); the cursor stands
 * after "PREVIEW".  false with the cursor anywhere for a bad list. */
bool imap_preview_mods(struct imap_cursor *c, bool *lazy_r)
{
	*lazy_r = false;
	if (c->end - c->p < 2 || c->p[0] != ' ' || c->p[1] != '(')
		return true;
	c->p += 2;
	for (;;) {
		if (c->end - c->p >= 4 && strncasecmp(c->p, "LAZY", 4) == 0) {
			c->p += 4;
			*lazy_r = true;
		} else {
			return false;
		}
		if (imap_char(c, ')'))
			return true;
		if (!imap_char(c, ' '))
			return false;
	}
}

/* A string as IMAP sends it: quoted when it is plain ASCII without
 * quoted-specials, else a literal (the preview is UTF-8, RFC 8970 §3). */
static void imap_preview_string(struct buf *b, const char *s, size_t len)
{
	bool quoted = true;

	for (size_t i = 0; i < len && quoted; i++) {
		unsigned char ch = (unsigned char)s[i];

		quoted = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
	}
	if (quoted)
		buf_appendf(b, "\"%.*s\"", (int)len, s);
	else {
		buf_appendf(b, "{%zu}\r\n", len);
		buf_append(b, s, len);
	}
}

void imap_preview_fetch(struct imap_session *s, struct md_msg *msg, bool lazy)
{
	struct buf pv;
	size_t len;
	const char *str = md_msg_preview(msg, &len);

	buf_appendf(&s->out, "PREVIEW ");
	if (str != NULL) {
		imap_preview_string(&s->out, str, len);
		return;
	}
	if (lazy) {
		buf_appendf(&s->out, "NIL");
		return;
	}
	buf_init(&pv, 0);
	if (md_msg_preview_compute(s->view.mb, msg, &pv) == MD_OK)
		imap_preview_string(&s->out, pv.data != NULL ? pv.data : "",
				    pv.len);
	else
		buf_appendf(&s->out, "NIL");
	buf_free(&pv);
}
