/* DKIM HOOK — where an outgoing message is signed before delivery.
 *
 * smtp_outq.c calls smtp_sign_message() on a worker for every delivery
 * attempt, with the message exactly as it will be sent (CRLF lines, not
 * yet dot-stuffed, Received: on top, no Return-Path).  Whatever it appends
 * to out (complete header fields, CRLF-terminated: "DKIM-Signature: ...")
 * is sent before the message.  Returning -1 defers the delivery (a
 * temporary failure, e.g. a key that cannot be read).
 *
 * This is a stub that signs nothing until DKIM signing (RFC 6376, issue
 * 11, written in another branch) replaces the body of this function.  The
 * sender is the envelope sender ("" for bounces); the signer picks the
 * key of the From: domain when it has one.
 */
#include "smtp_queue.h"

int smtp_sign_message(const struct config *cfg, const char *sender,
		      const char *msg, size_t len, struct buf *out)
{
	(void)cfg;
	(void)sender;
	(void)msg;
	(void)len;
	(void)out;
	return 0; /* no signature */
}
