/* Reading a queued message for delivery, on a worker (smtp_outq.c runs
 * the rest on the loop). */
#include "smtp_outq_private.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append msg dot-stuffed (RFC 5321 §4.5.2), then CRLF.CRLF. */
static int outq_load_stuff(struct buf *out, const char *msg, size_t len)
{
	size_t start = 0;
	int rc = 0;

	while (start < len) {
		const char *nl = memchr(msg + start, '\n', len - start);
		size_t end = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		if (msg[start] == '.')
			rc |= buf_putc(out, '.');
		rc |= buf_append(out, msg + start, end - start);
		start = end;
	}
	if (len > 0 && msg[len - 1] != '\n')
		rc |= buf_append(out, "\r\n", 2);
	rc |= buf_append(out, ".\r\n", 3);
	return rc < 0 ? -1 : 0;
}

/* relay_password_file's first line into m->password; 0 or -1. */
static int outq_load_password(struct outq_msg *m, const struct config *cfg)
{
	char *pw = NULL;
	size_t pwlen = 0;

	if (read_small_file(cfg->relay_password_file, OUTQ_PASSWORD_MAX - 1, &pw, &pwlen) < 0) {
		snprintf(m->load_error, sizeof(m->load_error), "%.200s: %s",
			 cfg->relay_password_file, strerror(errno));
		return -1;
	}
	pw[strcspn(pw, "\r\n")] = '\0';
	str_copy(m->password, pw, sizeof(m->password));
	OPENSSL_cleanse(pw, pwlen);
	free(pw);
	return 0;
}

/* One version of the message as it goes on the wire: the DKIM hook's
 * header fields (when sign), then the message dot-stuffed; its size in
 * *size_r. */
static int outq_load_prepare(struct outq_msg *m, const struct config *cfg, const char *msg,
			     size_t len, bool sign, struct buf *out, uint64_t *size_r)
{
	struct buf sig;
	int rc = 0;

	buf_init(&sig, SMTP_HEADER_MAX);
	/* DKIM HOOK: see smtp_sign.c */
	if (sign && smtp_sign_message(cfg, m->env->sender, msg, len, &sig) < 0) {
		snprintf(m->load_error, sizeof(m->load_error), "451 4.7.0 signing failed");
		rc = -1;
	} else if (buf_append(out, sig.data, sig.len) < 0 || outq_load_stuff(out, msg, len) < 0) {
		snprintf(m->load_error, sizeof(m->load_error), "out of memory");
		rc = -1;
	}
	*size_r = len + sig.len;
	buf_free(&sig);
	return rc;
}

void outq_load_work(void *arg)
{
	struct outq_msg *m = arg;
	const struct config *cfg = m->q->ctx->cfg;
	char path[PATH_MAX], *msg = NULL;
	size_t len = 0, scan = 0;
	struct buf seven;
	uint64_t size7;
	long hdr;
	bool to_shards = false, to_world = false;

	/* the copies the pending recipients need: signed for the world,
	 * plain for other shards (smtp_shard.c) */
	for (size_t i = 0; i < m->env->n_rcpts; i++) {
		bool shard = smtp_shard_routed(cfg, m->env->rcpts[i].addr);
		if (m->env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		to_shards = to_shards || shard;
		to_world = to_world || !shard;
	}

	if (queue_path(cfg->data_dir, m->id, "msg", path, sizeof(path)) < 0 ||
	    read_small_file(path, OUTQ_MESSAGE_MAX, &msg, &len) < 0) {
		m->load_failed = errno == ENOENT || errno == EFBIG;
		m->load_tempfail = !m->load_failed;
		snprintf(m->load_error, sizeof(m->load_error), "%.200s: %s", path, strerror(errno));
		return;
	}
	hdr = smtp_header_end(msg, len, &scan);
	if (buf_append(&m->headers, msg, hdr < 0 ? (len < SMTP_HEADER_MAX ? len : SMTP_HEADER_MAX)
					 : (size_t)hdr) < 0 ||
	    (cfg->relay_user[0] != '\0' && outq_load_password(m, cfg) < 0) ||
	    (m->env->ret == SMTP_RET_FULL && len <= BOUNCE_FULL_MAX &&
	     buf_append(&m->full, msg, len) < 0) ||
	    (to_world && outq_load_prepare(m, cfg, msg, len, true, &m->data, &m->size) < 0) ||
	    (to_shards &&
	     outq_load_prepare(m, cfg, msg, len, false, &m->plain, &m->plain_size) < 0)) {
		m->load_tempfail = true;
		free(msg);
		return;
	}
	/* RFC 6152 §3: a 7-bit copy for servers without 8BITMIME */
	buf_init(&seven, 0);
	switch (mime8_downgrade(msg, len, &seven)) {
	case 1:
		m->eightbit = true;
		if (to_world &&
		    outq_load_prepare(m, cfg, seven.data, seven.len, true, &m->data7, &size7) < 0)
			m->load_tempfail = true;
		break;
	case -1:
		m->eightbit = true; /* no 7-bit copy: bounced by such servers */
		break;
	default:
		break;
	}
	buf_free(&seven);
	free(msg);
}
