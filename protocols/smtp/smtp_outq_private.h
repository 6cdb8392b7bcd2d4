/* What the outbound scheduler's files share (smtp_outq.c, the loop side;
 * smtp_outq_load.c, reading a message on a worker). */
#ifndef PROTOCOLS_SMTP_SMTP_OUTQ_PRIVATE_H
#define PROTOCOLS_SMTP_SMTP_OUTQ_PRIVATE_H

#include "smtp_queue.h"

#define OUTQ_PASSWORD_MAX 1024      /* relay_password_file */
/* A queued message is read whole; this bound is message_size_max's
 * ceiling plus room for our headers, so that lowering message_size_max
 * never makes queued mail unreadable. */
#define OUTQ_MESSAGE_MAX (1024ULL * 1024 * 1024 + 4 * SMTP_HEADER_MAX)

struct outq_msg {
	struct smtp_outq *q;
	struct outq_msg *next;
	char id[QUEUE_ID_MAX + 1];
	struct queue_env *env;
	bool *tried;                 /* per recipient: its domain had its turn */
	/* load */
	bool load_failed;            /* message file missing or unreadable */
	bool load_tempfail;
	char load_error[256];
	struct buf data;             /* dot-stuffed, ends with CRLF.CRLF */
	uint64_t size;
	bool eightbit;               /* the message has 8-bit octets */
	struct buf data7;            /* converted to 7 bit, if it could be */
	struct buf plain;            /* for other shards: dot-stuffed, never
				      * signed (smtp_shard.c) */
	uint64_t plain_size;
	struct buf headers;          /* header block of the message */
	struct buf full;             /* the message, for RET=FULL bounces */
	char password[OUTQ_PASSWORD_MAX];
	/* the domain being delivered */
	char domain[SMTP_DOMAIN_MAX + 1];
	const char *dest;            /* domain, the relay host or dest_shard */
	bool lmtp;                   /* the group goes to another shard ... */
	struct auth_shard shard;     /* ... this one (name "": none found) */
	char dest_shard[AUTH_SHARD_NAME_MAX + 8]; /* "shard NAME" */
	bool holds_slot;             /* counts towards the destination's limit */
	struct outq_conn *reuse;     /* kept connection for this group */
	bool no_reuse;               /* a reused one failed: a new one now */
	uint64_t memory;             /* its share of smtp_outq.memory */
	struct outq_msg *next_wait;  /* in smtp_outq.waiting or .route_wait */
	struct route route;
	size_t host;
	struct client_rcpt *crcpts;
	size_t *cidx;                /* crcpts[i] is env->rcpts[cidx[i]] */
	size_t n_crcpts;
	struct client_job job;
	bool in_client;
	bool no_starttls;            /* this host's TLS failed: plaintext once */
	/* finish */
	bool bounce_queued;
};

/* A kept connection waiting for its next message. */
struct outq_conn {
	struct smtp_outq *q;
	struct outq_conn *next;
	struct smtp_client *client;
	char dest[SMTP_DOMAIN_MAX + 1]; /* the destination it counts for */
	struct route_host host;
	bool lmtp;                      /* to another shard (RFC 2033) */
	bool closing;                   /* QUIT sent: counts, never reused */
};

struct smtp_outq {
	struct smtp_ctx *ctx;
	struct event *timer;
	SSL_CTX *tls;
	struct outq_msg *active;
	size_t n_active;
	struct outq_msg *waiting;    /* for a destination slot, oldest first */
	uint64_t memory;             /* OUTQ_MEMORY_FACTOR * sizes in flight */
	unsigned routing;            /* route jobs on workers */
	struct outq_msg *route_wait; /* waiting for one of OUTQ_ROUTES_MAX */
	struct outq_conn *idle;      /* kept connections, newest first */
	bool scanning;
	bool rescan;                 /* a kick came during a scan */
};

/* Worker: read ID.msg, keep its header block (and the whole message for
 * RET=FULL), run the DKIM hook and dot-stuff it, with a 7-bit copy for
 * servers without 8BITMIME; failures in m->load_*. */
void outq_load_work(void *arg);

#endif
