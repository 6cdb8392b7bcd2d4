/* COMPRESS=DEFLATE (RFC 4978).  The layer itself lives in core/conn
 * (conn_compress(), conn_zlib.c), under the IMAP reader like TLS: this file
 * only checks the command, answers, and turns it on after the answer. */
#include "imap_private.h"

#include "conn.h"
#include "log.h"
#include "util.h"

#define IMAP_COMPRESS_MECH_MAX 16 /* "DEFLATE" is the only mechanism (RFC 4978 §3) */

/* RFC 4978 §3: COMPRESS DEFLATE; OK, then every octet after the CRLF of
 * the tagged OK is compressed, both ways.  A second COMPRESS is NO
 * [COMPRESSIONACTIVE]. */
void imap_cmd_compress(struct imap_session *s, struct imap_cursor *args)
{
	char mech[IMAP_COMPRESS_MECH_MAX];

	if (!imap_sp(args) || !imap_atom(args, mech, sizeof(mech), NULL) ||
	    !imap_at_end(args)) {
		imap_reply(s, "BAD", "COMPRESS needs one mechanism");
		return;
	}
	if (!str_ieq(mech, "DEFLATE")) {
		imap_reply(s, "BAD", "Unknown compression mechanism");
		return;
	}
	if (conn_is_compressed(s->conn)) {
		imap_reply(s, "NO", "[COMPRESSIONACTIVE] DEFLATE is already active");
		return;
	}
	imap_reply(s, "OK", "DEFLATE active");
	imap_flush(s); /* the OK itself goes out uncompressed */
	if (conn_compress(s->conn) < 0) {
		/* The client compresses from now on: nothing more can be said. */
		conn_log(s->conn, LOG_LEVEL_ERROR, "imap cannot start COMPRESS user=%s",
			 s->canonical);
		s->close_after = true;
		return;
	}
	conn_log(s->conn, LOG_LEVEL_DEBUG, "imap compress on user=%s", s->canonical);
}
