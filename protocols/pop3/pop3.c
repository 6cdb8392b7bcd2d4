/* POP3 server: registration, the protocol context, connection events, the
 * command table and dispatch, and the state machine (RFC 1939 §3-§6).
 *
 * One session per connection.  Commands run one at a time: a command
 * that needs a worker (login, RETR, QUIT's deletions) pauses reading, so
 * pipelined commands (RFC 2449 §6.6) wait in the input buffer and are
 * answered in order.  Memory: see pop3_private.h.
 */
#include "pop3_private.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "util.h"

#define POP3_LOCK_BUCKETS 1024
/* Direct-mapped cache of the POP3 sizes of messages indexed before the
 * store kept them (struct md_msg pop3_size 0): a later session of the same
 * user need not reread those files.  Entries are 24 bytes; bounded. */
#define POP3_SIZE_CACHE_ENTRIES 65536

struct pop3_lock {
	struct pop3_lock *next;
	char user[];
};

struct pop3_size_entry {
	unsigned char key[16]; /* SHA-256(basename, file size), truncated */
	uint64_t size;
};

struct pop3_ctx {
	struct auth *auth;
	struct md_store *store;
	struct pop3_lock *locks[POP3_LOCK_BUCKETS]; /* loop thread only */
	pthread_mutex_t cache_lock;
	struct pop3_size_entry *cache;
};


static void pop3_cmd_capa(struct pop3_session *s, const struct pop3_parsed *cmd);
static void pop3_cmd_noop(struct pop3_session *s, const struct pop3_parsed *cmd);
static void pop3_cmd_quit(struct pop3_session *s, const struct pop3_parsed *cmd);

/* RFC 1939 §4-§6, RFC 2449 §5 (CAPA), RFC 2595 §4 (STLS), RFC 5034 §4
 * (AUTH).  Checks of state and syntax run before any handler. */
static const struct pop3_command pop3_commands[] = {
	{ "CAPA", POP3_IN_AUTH | POP3_IN_TRANS, 0, 0, 0, pop3_cmd_capa },
	{ "NOOP", POP3_IN_AUTH | POP3_IN_TRANS, 0, 0, 0, pop3_cmd_noop },
	{ "QUIT", POP3_IN_AUTH | POP3_IN_TRANS, 0, 0, 0, pop3_cmd_quit },
	{ "USER", POP3_IN_AUTH, POP3_CMD_LONG_ARG, 1, 1, pop3_cmd_user },
	{ "PASS", POP3_IN_AUTH, POP3_CMD_REST, 1, 1, pop3_cmd_pass },
	{ "AUTH", POP3_IN_AUTH, POP3_CMD_LONG_ARG, 0, 2, pop3_cmd_auth },
	{ "STLS", POP3_IN_AUTH, 0, 0, 0, pop3_cmd_stls },
	{ "STAT", POP3_IN_TRANS, 0, 0, 0, pop3_cmd_stat },
	{ "LIST", POP3_IN_TRANS, 0, 0, 1, pop3_cmd_list },
	{ "RETR", POP3_IN_TRANS, 0, 1, 1, pop3_cmd_retr },
	{ "DELE", POP3_IN_TRANS, 0, 1, 1, pop3_cmd_dele },
	{ "RSET", POP3_IN_TRANS, 0, 0, 0, pop3_cmd_rset },
	{ "TOP", POP3_IN_TRANS, 0, 2, 2, pop3_cmd_top },
	{ "UIDL", POP3_IN_TRANS, 0, 0, 1, pop3_cmd_uidl },
};

const struct pop3_command *pop3_command_find(const char *verb)
{
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++)
		if (str_ieq(pop3_commands[i].verb, verb))
			return &pop3_commands[i];
	return NULL;
}

/* ---- context: lock table and size cache --------------------------------- */

static unsigned pop3_lock_hash(const char *user)
{
	unsigned h = 2166136261u; /* FNV-1a */

	for (; *user != '\0'; user++)
		h = (h ^ (unsigned char)*user) * 16777619u;
	return h % POP3_LOCK_BUCKETS;
}

bool pop3_lock_take(struct pop3_ctx *ctx, const char *user)
{
	unsigned h = pop3_lock_hash(user);
	size_t len = strlen(user);
	struct pop3_lock *l;

	for (l = ctx->locks[h]; l != NULL; l = l->next)
		if (strcmp(l->user, user) == 0)
			return false;
	l = malloc(sizeof(*l) + len + 1);
	if (l == NULL)
		return false;
	memcpy(l->user, user, len + 1);
	l->next = ctx->locks[h];
	ctx->locks[h] = l;
	return true;
}

void pop3_lock_release(struct pop3_ctx *ctx, const char *user)
{
	struct pop3_lock **pp = &ctx->locks[pop3_lock_hash(user)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->user, user) == 0) {
			struct pop3_lock *l = *pp;
			*pp = l->next;
			free(l);
			return;
		}
}

static void pop3_size_key(const char *basename, uint64_t file_size, unsigned char key[16],
			  size_t *slot_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	memset(md, 0, sizeof(md));
	if (c != NULL) {
		if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(c, basename, strlen(basename) + 1) != 1 ||
		    EVP_DigestUpdate(c, &file_size, sizeof(file_size)) != 1 ||
		    EVP_DigestFinal_ex(c, md, &mdlen) != 1)
			memset(md, 0, sizeof(md));
		EVP_MD_CTX_free(c);
	}
	memcpy(key, md, 16);
	*slot_r = (((size_t)md[16] << 16) | ((size_t)md[17] << 8) | md[18]) %
		  POP3_SIZE_CACHE_ENTRIES;
}

bool pop3_size_cache_get(struct pop3_ctx *ctx, const char *basename, uint64_t file_size,
			 uint64_t *size_r)
{
	unsigned char key[16];
	size_t slot;
	bool hit;

	if (ctx->cache == NULL)
		return false;
	pop3_size_key(basename, file_size, key, &slot);
	pthread_mutex_lock(&ctx->cache_lock);
	hit = memcmp(ctx->cache[slot].key, key, sizeof(key)) == 0 && ctx->cache[slot].size > 0;
	if (hit)
		*size_r = ctx->cache[slot].size - 1;
	pthread_mutex_unlock(&ctx->cache_lock);
	return hit;
}

void pop3_size_cache_put(struct pop3_ctx *ctx, const char *basename, uint64_t file_size,
			 uint64_t size)
{
	unsigned char key[16];
	size_t slot;

	if (ctx->cache == NULL)
		return;
	pop3_size_key(basename, file_size, key, &slot);
	pthread_mutex_lock(&ctx->cache_lock);
	memcpy(ctx->cache[slot].key, key, sizeof(key));
	ctx->cache[slot].size = size + 1; /* 0 marks an empty slot */
	pthread_mutex_unlock(&ctx->cache_lock);
}

struct auth *pop3_ctx_auth(struct pop3_ctx *ctx)
{
	return ctx->auth;
}

struct md_store *pop3_ctx_store(struct pop3_ctx *ctx)
{
	return ctx->store;
}

/* ---- replies and state -------------------------------------------------- */

static const char *pop3_state_name(enum pop3_state state)
{
	switch (state) {
	case POP3_STATE_AUTHORIZATION:
		return "AUTHORIZATION";
	case POP3_STATE_TRANSACTION:
		return "TRANSACTION";
	case POP3_STATE_UPDATE:
		return "UPDATE";
	}
	return "?";
}

void pop3_enter_state(struct pop3_session *s, enum pop3_state state)
{
	conn_log(s->conn, LOG_LEVEL_DEBUG, "pop3 state=%s->%s", pop3_state_name(s->state),
		 pop3_state_name(state));
	s->state = state;
}

void pop3_ok(struct pop3_session *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	s->errors = 0;
	conn_printf(s->conn, "+OK%s%s\r\n", text[0] != '\0' ? " " : "", text);
}

void pop3_close(struct pop3_session *s)
{
	conn_close(s->conn);
}

void pop3_err(struct pop3_session *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	conn_printf(s->conn, "-ERR %s\r\n", text);
	if (++s->errors >= POP3_ERRORS_MAX && !conn_is_closing(s->conn)) {
		conn_log(s->conn, LOG_LEVEL_INFO, "pop3 too many errors rip=%s",
			 conn_peer_addr(s->conn));
		conn_printf(s->conn, "-ERR Too many errors\r\n");
		pop3_close(s);
	}
}

bool pop3_login_allowed(const struct pop3_session *s)
{
	const struct config *cfg = server_config(conn_server(s->conn));

	/* DESIGN.md: plaintext auth only after TLS, or on loopback when the
	 * configuration says so (RFC 2595 §2.1 for the reasoning). */
	return conn_is_tls(s->conn) ||
	       (conn_peer_is_loopback(s->conn) && cfg->allow_plaintext_auth_on_loopback);
}

void pop3_begin_async(struct pop3_session *s)
{
	s->busy = true;
	conn_pause(s->conn);
}

void pop3_command_done(struct pop3_session *s)
{
	s->busy = false;
	s->job = POP3_JOB_NONE;
	if (!conn_is_closing(s->conn))
		conn_resume(s->conn);
}

int pop3_submit(struct pop3_session *s, enum pop3_job job, void (*work)(void *),
		void (*done)(void *))
{
	/* Password checks go to their own pool through login.h, never here. */
	s->job = job;
	if (conn_submit(s->conn, work, done, s) < 0) {
		s->job = POP3_JOB_NONE;
		return -1;
	}
	return 0;
}

/* ---- commands of every state -------------------------------------------- */

static void pop3_cmd_capa(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	(void)cmd;
	pop3_ok(s, "Capability list follows");
	/* RFC 2449 §6: capabilities; login ones only where login works. */
	conn_printf(s->conn, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (s->state == POP3_STATE_AUTHORIZATION) {
		if (pop3_login_allowed(s))
			conn_printf(s->conn, "USER\r\nSASL %s\r\n", SASL_MECHANISMS);
		if (s->stls_allowed && !conn_is_tls(s->conn))
			conn_printf(s->conn, "STLS\r\n");
	}
	conn_printf(s->conn, "IMPLEMENTATION Postern\r\n.\r\n");
}

static void pop3_cmd_noop(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	(void)cmd;
	pop3_ok(s, "%s", "");
}

static void pop3_cmd_quit(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	if (s->state == POP3_STATE_TRANSACTION) {
		pop3_cmd_quit_trans(s, cmd);
		return;
	}
	/* RFC 1939 §4: QUIT in AUTHORIZATION ends the session, no UPDATE. */
	pop3_ok(s, "Logging out");
	pop3_close(s);
}

/* ---- dispatch ----------------------------------------------------------- */

static void pop3_on_line(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_parsed cmd;
	enum pop3_parse_result r;

	if (s->sasl != NULL) {
		pop3_sasl_line(s, line, len);
		return;
	}
	pop3_sasl_restore_limit(s);
	r = pop3_parse_line(line, len, &cmd);
	if (r != POP3_PARSE_OK) {
		if (r == POP3_PARSE_UNKNOWN)
			conn_log(s->conn, LOG_LEVEL_DEBUG, "pop3 unknown command");
		pop3_err(s, "%s", pop3_parse_error_text(r));
		return;
	}
	conn_log(s->conn, LOG_LEVEL_DEBUG, "pop3 cmd=%s", cmd.verb);
	if (!(cmd.cmd->states & (1u << s->state))) {
		pop3_err(s, "%s is not allowed in the %s state", cmd.verb,
			 s->state == POP3_STATE_AUTHORIZATION ? "AUTHORIZATION" : "TRANSACTION");
		return;
	}
	cmd.cmd->handler(s, &cmd);
}

/* Close the store handles.  Called on a worker at the end of QUIT; a
 * dropped connection closes them on the loop (closing frees memory and
 * file descriptors; nothing is written). */
void pop3_release_store(struct pop3_session *s)
{
	if (s->md_msgs != NULL)
		md_msg_list_free(s->md_msgs, s->n_md_msgs);
	s->md_msgs = NULL;
	s->n_md_msgs = 0;
	if (s->mb != NULL)
		md_mailbox_close(s->mb);
	s->mb = NULL;
	if (s->md_user != NULL)
		md_user_close(s->md_user);
	s->md_user = NULL;
}

static void pop3_session_free(struct pop3_session *s)
{
	if (s->locked)
		pop3_lock_release(s->ctx, s->canonical);
	pop3_auth_cleanup(s);
	pop3_stream_free(s->stream);
	pop3_ahead_free(s);
	pop3_release_store(s);
	free(s->expunge_uids);
	free(s->msgs);
	free(s);
}

static void pop3_on_event(struct conn *conn, enum conn_event ev, const char *data,
			  size_t len, void *session)
{
	struct pop3_session *s = session;

	switch (ev) {
	case CONN_EV_LINE:
		pop3_on_line(s, data, len);
		break;
	case CONN_EV_LINE_TOO_LONG:
		if (s->sasl != NULL)
			pop3_sasl_abort(s, "Response too long");
		else
			pop3_err(s, "Line too long");
		break;
	case CONN_EV_BYTES:
		break; /* POP3 reads lines only */
	case CONN_EV_DRAINED:
		pop3_cmd_drained(s);
		break;
	case CONN_EV_TIMEOUT:
		conn_log(conn, LOG_LEVEL_INFO, "pop3 idle timeout user=%s",
			 s->state == POP3_STATE_AUTHORIZATION ? "-" : s->canonical);
		conn_printf(conn, "-ERR Autologout; idle for too long\r\n");
		pop3_close(s);
		break;
	case CONN_EV_TLS_READY:
		/* RFC 2595 §4: the client starts over with CAPA; forget any
		 * USER given in the clear. */
		s->have_user = false;
		conn_log(conn, LOG_LEVEL_DEBUG, "pop3 stls done");
		break;
	case CONN_EV_CLOSED:
		if (s->state == POP3_STATE_TRANSACTION)
			conn_log(conn, LOG_LEVEL_INFO,
				 "pop3 disconnected user=%s retr=%u dele=%u deleted=0",
				 s->canonical, s->retr_count, s->dele_count);
		s->closed = true;
		pop3_session_free(s);
		break;
	}
}

static void pop3_accept(struct conn *conn, enum listener_role role, void *arg)
{
	struct pop3_ctx *ctx = arg;
	struct pop3_session *s = calloc(1, sizeof(*s));
	const struct config *cfg = server_config(conn_server(conn));

	if (s == NULL) {
		conn_write(conn, "-ERR [SYS/TEMP] Out of memory\r\n", 31);
		conn_close(conn);
		return;
	}
	s->ctx = ctx;
	s->conn = conn;
	s->state = POP3_STATE_AUTHORIZATION;
	s->stls_allowed = role == ROLE_POP3 && conn_tls_mode(conn) == TLS_MODE_STARTTLS;
	conn_set_handler(conn, pop3_on_event, s);
	/* RFC 1939 §3 asks for CRLF; a bare LF is harmless in POP3 commands
	 * (no smuggling: nothing is relayed), and some scripts send it. */
	conn_read_lines(conn, POP3_LINE_MAX, true);
	conn_set_timeout(conn, cfg->pop3_idle_timeout);
	conn_log(conn, LOG_LEVEL_DEBUG, "pop3 connect rip=%s tls=%s", conn_peer_addr(conn),
		 role == ROLE_POP3S ? "implicit" : "no");
	conn_printf(conn, "+OK Postern POP3 server ready\r\n");
}

static void pop3_stop(struct conn *conn, void *session)
{
	struct pop3_session *s = session;

	/* Polled until the deadline: wait for a command in flight (a RETR,
	 * the deletions of a QUIT) to finish before saying goodbye.  Marked
	 * deletions are not carried out: only QUIT does that. */
	if (s == NULL || s->busy)
		return;
	conn_printf(conn, "-ERR [SYS/TEMP] Server shutting down\r\n");
	conn_close(conn);
}

/* Every session is closed by now, so every lock is released. */
static void pop3_ctx_free(void *arg)
{
	struct pop3_ctx *ctx = arg;

	for (size_t i = 0; i < POP3_LOCK_BUCKETS; i++)
		while (ctx->locks[i] != NULL) {
			struct pop3_lock *next = ctx->locks[i]->next;
			free(ctx->locks[i]);
			ctx->locks[i] = next;
		}
	pthread_mutex_destroy(&ctx->cache_lock);
	free(ctx->cache);
	free(ctx);
}

int pop3_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen)
{
	struct pop3_ctx *ctx = calloc(1, sizeof(*ctx));
	struct server_protocol proto = {
		.name = "pop3",
		.accept = pop3_accept,
		.stop = pop3_stop,
		.busy_reply = "-ERR [SYS/TEMP] Too many connections\r\n",
	};

	if (ctx == NULL) {
		snprintf(err, errlen, "pop3: out of memory");
		return -1;
	}
	ctx->auth = auth;
	ctx->store = store;
	pthread_mutex_init(&ctx->cache_lock, NULL);
	/* Without the cache every login rereads the mailbox: slower, correct. */
	ctx->cache = calloc(POP3_SIZE_CACHE_ENTRIES, sizeof(*ctx->cache));
	proto.ctx = ctx;
	/* Freed after the last connection is gone (server_free). */
	server_on_free(srv, pop3_ctx_free, ctx);
	server_set_protocol(srv, ROLE_POP3, &proto);
	server_set_protocol(srv, ROLE_POP3S, &proto);
	return 0;
}
