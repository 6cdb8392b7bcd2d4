/* DKIM signing of outgoing mail (RFC 6376, RFC 8463), the queue's hook.
 *
 * smtp_outq.c calls smtp_sign_message() on a worker for every delivery
 * attempt, with the message exactly as it will be sent (CRLF lines, not
 * yet dot-stuffed, Received: on top, no Return-Path, after any 8-bit
 * downgrade).  Whatever it appends to out (complete header fields,
 * CRLF-terminated: "DKIM-Signature: ...") is sent before the message.
 *
 * The signing domain is the From: domain (the one DMARC aligns with, RFC
 * 7489 §3.1.1), when it is one of ours and has keys under
 * DATA_DIR/dkim/DOMAIN/ (`postern dkim generate`); otherwise the message
 * goes unsigned.  A From: with several mailboxes is signed for the first
 * one's domain.  A key file that cannot be read defers the delivery
 * (returns -1) rather than sending mail that DMARC would fail: the log
 * names the file, and the queue retries.
 *
 * Keys are loaded for each message (not measured against the ~0.4 ms of
 * an RSA-2048 signature; a per-domain cache with an mtime check is the
 * step to take if a profile shows the load), so a new or rotated key is
 * used at once without a reload.
 */
#include "smtp_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dkim.h"
#include "log.h"
#include "smtp_private.h"

/* The domain of the first mailbox of the message's From:, lower case;
 * false when there is none we can read. */
static bool smtp_sign_from_domain(const char *msg, size_t len, char *out, size_t outlen)
{
	struct smtp_header_info info;
	char addrs[SMTP_FROM_MAX][SMTP_PATH_MAX + 1];
	size_t scan = 0;
	long hlen = smtp_header_end(msg, len, &scan);
	const char *at;

	smtp_header_scan(msg, hlen >= 0 ? (size_t)hlen : len, &info);
	if (info.from == NULL || smtp_parse_from(info.from, info.from_len, addrs, SMTP_FROM_MAX) < 1)
		return false;
	at = strrchr(addrs[0], '@');
	if (at == NULL || at[1] == '\0' || str_copy(out, at + 1, outlen) >= outlen)
		return false;
	str_lower(out);
	return true;
}

int smtp_sign_message(const struct config *cfg, const char *sender,
		      const char *msg, size_t len, struct buf *out)
{
	struct dkim_keys *keys = NULL;
	char domain[DKIM_DOMAIN_MAX + 1], err[512];
	char *sig = NULL;
	size_t sig_len = 0;
	int rc;

	if (!smtp_sign_from_domain(msg, len, domain, sizeof(domain)) ||
	    !config_is_local_domain(cfg, domain))
		return 0; /* not ours to sign */
	if (dkim_keys_load(cfg->data_dir, domain, &keys, err, sizeof(err)) < 0) {
		log_error("dkim: cannot load the keys of %s (delivery deferred): %s", domain, err);
		return -1;
	}
	if (keys == NULL)
		return 0; /* the domain has no keys: unsigned */
	rc = dkim_sign(keys, time(NULL), msg, len, &sig, &sig_len, err, sizeof(err));
	dkim_keys_free(keys);
	if (rc < 0) {
		/* a message the signer refuses (no From:, an absurd header)
		 * would be refused again on every retry: send it unsigned */
		log_warn("dkim: message from <%s> not signed for %s: %s", sender, domain, err);
		return 0;
	}
	rc = buf_append(out, sig, sig_len);
	free(sig);
	return rc;
}
