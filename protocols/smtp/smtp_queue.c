/* The outbound queue on disk, and `postern queue list|flush|delete ID`.
 *
 * Layout under data_dir/queue/:
 *   ID.msg       the message as it will be sent (Received: on top, no
 *                Return-Path), CRLF line ends, not dot-stuffed
 *   ID.env       the envelope (below); its presence is what makes a
 *                message part of the queue
 *   tmp/         files being written; anything here after a crash is an
 *                unacknowledged message and is removed at start
 *   corrupt/     envelopes that could not be read, with their message,
 *                moved aside for a human (logged once)
 *   flush        created by `postern queue flush`: the daemon sees it at
 *                its next scan (every QUEUE_SCAN_S, smtp_outq.c), tries
 *                every message at once and removes it
 *
 * Creating (queue_writer_*): the message is written to tmp/ID.msg and the
 * envelope to tmp/ID.env, both fsynced; then ID.msg is renamed into
 * queue/, then ID.env, then queue/ is fsynced.  Only after that does the
 * submitting client get its 250.  A crash before the last rename leaves
 * files in tmp/ (removed at start) or an ID.msg without envelope (removed
 * at start too: no 250 was given for it).
 *
 * Updating: ID.env is rewritten whole through ID.env.tmp.PID, fsync,
 * rename, directory fsync (write_file_atomic), so a reader sees the old
 * or the new envelope, never a mix.  Finishing: ID.env is unlinked before
 * ID.msg, and the directory fsynced.
 *
 * The envelope is text, one field a line, "KEY VALUE" (one space):
 *
 *   postern-queue 1              format version, first line
 *   id 3f9a0c11d2e4b5a6          the file's id (must match the name)
 *   created 1733500000           Unix time the message was queued
 *   sender alice@example.org     envelope sender; nothing after the space
 *                                for the null sender <>
 *   ret -|full|hdrs              RFC 3461 §4.3 RET, "-" when not given
 *   envid -|XTEXT                RFC 3461 §4.4 ENVID, as received (xtext)
 *   body 7bit|8bitmime           RFC 6152 BODY=8BITMIME was declared
 *   smtputf8 0|1                 RFC 6531 SMTPUTF8 was declared
 *   attempts 3                   delivery attempts made so far
 *   next 1733500600              Unix time of the next attempt
 *   warned 0|1                   the delay notice (NOTIFY=DELAY) was sent;
 *                                optional, 0 when absent
 *   rcpt STATE NOTIFY ORCPT ADDR one per recipient, ADDR to end of line:
 *        STATE  pending|sent|failed|bounced (struct queue_rcpt)
 *        NOTIFY RFC 3461 §4.1 bits as hex: 1 NEVER, 2 SUCCESS, 4 FAILURE,
 *               8 DELAY; 0 when not given
 *        ORCPT  "addr-type;xtext" as received, "-" when not given
 *   reply TEXT                   optional, right after its rcpt line: the
 *                                last reply or failure reason for it
 *   remote HOST                  optional, after rcpt: who gave that reply
 *   tls TEXT                     optional, after rcpt: that session's TLS,
 *                                "TLSv1.3 CIPHER verified=yes|no (why)
 *                                cn=NAME", or "none" (plaintext)
 *
 * Values never hold CR, LF or other controls (replies are cleaned before
 * they are stored).  Unknown keys make the file corrupt: an older daemon
 * does not guess at a newer format.
 */
#include "smtp_queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_VERSION_LINE "postern-queue 1"
#define QUEUE_FILE_MODE 0600
#define QUEUE_DIR_MODE 0700
#define QUEUE_LIST_MAX 100000 /* `postern queue list` shows at most this */
#define QUEUE_COPY_CHUNK 65536 /* queue_writer_copy_fd's reads (a worker's stack) */

static const char *const queue_state_names[] = { "pending", "sent", "failed", "bounced" };

struct queue_env *queue_env_new(void)
{
	struct queue_env *env = calloc(1, sizeof(*env));

	if (env == NULL)
		return NULL;
	env->rcpts = calloc(QUEUE_RCPTS_MAX, sizeof(*env->rcpts));
	if (env->rcpts == NULL) {
		free(env);
		return NULL;
	}
	return env;
}

void queue_env_free(struct queue_env *env)
{
	if (env == NULL)
		return;
	free(env->rcpts);
	free(env);
}

int queue_env_add(struct queue_env *env, const char *addr, unsigned notify, const char *orcpt)
{
	struct queue_rcpt *r;

	if (env->n_rcpts >= QUEUE_RCPTS_MAX)
		return -1;
	r = &env->rcpts[env->n_rcpts++];
	memset(r, 0, sizeof(*r));
	str_copy(r->addr, addr, sizeof(r->addr));
	str_copy(r->orcpt, orcpt != NULL ? orcpt : "", sizeof(r->orcpt));
	/* the envelope line would not parse back: an ORCPT is optional */
	for (const char *c = r->orcpt; *c != '\0'; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			r->orcpt[0] = '\0';
			break;
		}
	r->notify = notify;
	r->state = QUEUE_RCPT_PENDING;
	return 0;
}

void queue_make_id(char out[QUEUE_ID_MAX + 1])
{
	smtp_make_id(out);
}

int queue_path(const char *data_dir, const char *id, const char *kind, char *out, size_t outlen)
{
	int n;

	if (kind == NULL)
		n = snprintf(out, outlen, "%s/queue/%s", data_dir, id);
	else
		n = snprintf(out, outlen, "%s/queue/%s.%s", data_dir, id, kind);
	if (n < 0 || (size_t)n >= outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static bool queue_id_valid(const char *id)
{
	size_t n = strspn(id, "0123456789ABCDEFabcdef");

	return n > 0 && n <= QUEUE_ID_MAX && id[n] == '\0';
}

int queue_prepare(const char *data_dir)
{
	char path[PATH_MAX];

	if (queue_path(data_dir, "tmp", NULL, path, sizeof(path)) < 0 ||
	    mkdir_p(path, QUEUE_DIR_MODE) < 0)
		return -1;
	if (queue_path(data_dir, "corrupt", NULL, path, sizeof(path)) < 0 ||
	    mkdir_p(path, QUEUE_DIR_MODE) < 0)
		return -1;
	return 0;
}

/* ---- envelope text ------------------------------------------------------- */

/* Copy a reply into a value: controls and tabs become spaces. */
static void queue_clean(char *out, size_t outlen, const char *in)
{
	size_t i = 0;

	for (; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? ' ' : in[i];
	out[i] = '\0';
}

int queue_env_format(const struct queue_env *env, struct buf *b)
{
	static const char *const rets[] = { "-", "full", "hdrs" };
	int rc = 0;

	rc |= buf_appendf(b, "%s\nid %s\ncreated %lld\nsender %s\nret %s\nenvid %s\n",
			  QUEUE_VERSION_LINE, env->id, (long long)env->created, env->sender,
			  rets[env->ret], env->envid[0] != '\0' ? env->envid : "-");
	rc |= buf_appendf(b, "body %s\nsmtputf8 %d\nattempts %u\nnext %lld\nwarned %d\n",
			  env->body_8bit ? "8bitmime" : "7bit", env->smtputf8 ? 1 : 0,
			  env->attempts, (long long)env->next, env->warned ? 1 : 0);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		char clean[SMTP_REPLY_MAX];
		rc |= buf_appendf(b, "rcpt %s %x %s %s\n", queue_state_names[r->state], r->notify,
				  r->orcpt[0] != '\0' ? r->orcpt : "-", r->addr);
		if (r->reply[0] != '\0') {
			queue_clean(clean, sizeof(clean), r->reply);
			rc |= buf_appendf(b, "reply %s\n", clean);
		}
		if (r->remote[0] != '\0')
			rc |= buf_appendf(b, "remote %s\n", r->remote);
		if (r->tls[0] != '\0') {
			queue_clean(clean, sizeof(clean), r->tls);
			rc |= buf_appendf(b, "tls %s\n", clean);
		}
	}
	return rc < 0 ? -1 : 0;
}

static int queue_parse_i64(const char *v, int64_t *out)
{
	uint64_t n;

	if (str_to_u64(v, 0, INT64_MAX, &n) < 0)
		return -1;
	*out = (int64_t)n;
	return 0;
}

static int queue_parse_rcpt(struct queue_env *env, char *v)
{
	char *state = v, *notify, *orcpt, *addr, *end;
	struct queue_rcpt *r;
	unsigned long bits;
	int st = -1;

	if ((notify = strchr(state, ' ')) == NULL)
		return -1;
	*notify++ = '\0';
	if ((orcpt = strchr(notify, ' ')) == NULL)
		return -1;
	*orcpt++ = '\0';
	if ((addr = strchr(orcpt, ' ')) == NULL)
		return -1;
	*addr++ = '\0';
	for (int i = 0; i < 4; i++)
		if (strcmp(state, queue_state_names[i]) == 0)
			st = i;
	errno = 0;
	bits = strtoul(notify, &end, 16);
	if (st < 0 || *end != '\0' || errno != 0 || bits > 0xf || addr[0] == '\0' ||
	    strlen(addr) > SMTP_PATH_MAX || strlen(orcpt) > SMTP_ORCPT_MAX)
		return -1;
	if (queue_env_add(env, addr, (unsigned)bits, strcmp(orcpt, "-") == 0 ? "" : orcpt) < 0)
		return -1;
	r = &env->rcpts[env->n_rcpts - 1];
	r->state = (enum queue_rcpt_state)st;
	return 0;
}

/* One "KEY VALUE" line; 0 or -1 (corrupt). */
static int queue_parse_line(struct queue_env *env, char *line)
{
	char *v = strchr(line, ' ');
	struct queue_rcpt *last = env->n_rcpts > 0 ? &env->rcpts[env->n_rcpts - 1] : NULL;
	uint64_t n;

	if (v == NULL)
		return -1;
	*v++ = '\0';
	if (strcmp(line, "id") == 0)
		return str_copy(env->id, v, sizeof(env->id)) < sizeof(env->id) ? 0 : -1;
	if (strcmp(line, "created") == 0)
		return queue_parse_i64(v, &env->created);
	if (strcmp(line, "next") == 0)
		return queue_parse_i64(v, &env->next);
	if (strcmp(line, "sender") == 0)
		return str_copy(env->sender, v, sizeof(env->sender)) < sizeof(env->sender) ? 0 : -1;
	if (strcmp(line, "ret") == 0) {
		env->ret = strcmp(v, "full") == 0 ? SMTP_RET_FULL :
			   strcmp(v, "hdrs") == 0 ? SMTP_RET_HDRS : SMTP_RET_NONE;
		return env->ret != SMTP_RET_NONE || strcmp(v, "-") == 0 ? 0 : -1;
	}
	if (strcmp(line, "envid") == 0) {
		if (strcmp(v, "-") == 0)
			return 0;
		return str_copy(env->envid, v, sizeof(env->envid)) < sizeof(env->envid) ? 0 : -1;
	}
	if (strcmp(line, "body") == 0) {
		env->body_8bit = strcmp(v, "8bitmime") == 0;
		return env->body_8bit || strcmp(v, "7bit") == 0 ? 0 : -1;
	}
	if (strcmp(line, "warned") == 0) {
		env->warned = strcmp(v, "1") == 0;
		return env->warned || strcmp(v, "0") == 0 ? 0 : -1;
	}
	if (strcmp(line, "smtputf8") == 0) {
		env->smtputf8 = strcmp(v, "1") == 0;
		return env->smtputf8 || strcmp(v, "0") == 0 ? 0 : -1;
	}
	if (strcmp(line, "attempts") == 0) {
		if (str_to_u64(v, 0, UINT32_MAX, &n) < 0)
			return -1;
		env->attempts = (unsigned)n;
		return 0;
	}
	if (strcmp(line, "rcpt") == 0)
		return queue_parse_rcpt(env, v);
	if (strcmp(line, "reply") == 0 && last != NULL) {
		str_copy(last->reply, v, sizeof(last->reply));
		return 0;
	}
	if (strcmp(line, "remote") == 0 && last != NULL) {
		str_copy(last->remote, v, sizeof(last->remote));
		return 0;
	}
	if (strcmp(line, "tls") == 0 && last != NULL) {
		str_copy(last->tls, v, sizeof(last->tls));
		return 0;
	}
	return -1;
}

int queue_env_parse(struct queue_env *env, char *text)
{
	char *save = NULL, *line;
	bool first = true;

	env->n_rcpts = 0;
	env->id[0] = '\0';
	env->created = -1;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (first) {
			if (strcmp(line, QUEUE_VERSION_LINE) != 0)
				return -1;
			first = false;
			continue;
		}
		if (strlen(line) > QUEUE_LINE_MAX || queue_parse_line(env, line) < 0)
			return -1;
	}
	return first || env->id[0] == '\0' || env->created < 0 || env->n_rcpts == 0 ? -1 : 0;
}

int queue_env_read(const char *data_dir, const char *id, struct queue_env *env)
{
	char path[PATH_MAX];
	char *text;
	size_t len;
	int rc;

	if (queue_path(data_dir, id, "env", path, sizeof(path)) < 0)
		return -1;
	if (read_small_file(path, QUEUE_ENV_MAX, &text, &len) < 0) {
		if (errno != ENOENT)
			errno = EINVAL;
		return -1;
	}
	rc = (strlen(text) == len && queue_env_parse(env, text) == 0 &&
	      strcmp(env->id, id) == 0) ? 0 : -1;
	free(text);
	if (rc < 0)
		errno = EINVAL;
	return rc;
}

int queue_env_update(const char *data_dir, const struct queue_env *env)
{
	char path[PATH_MAX];
	struct buf b;
	int rc;

	if (queue_path(data_dir, env->id, "msg", path, sizeof(path)) < 0)
		return -1;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 1; /* deleted by `postern queue delete` meanwhile */
	if (queue_path(data_dir, env->id, "env", path, sizeof(path)) < 0)
		return -1;
	buf_init(&b, QUEUE_ENV_MAX);
	rc = queue_env_format(env, &b);
	if (rc == 0)
		rc = write_file_atomic(path, b.data, b.len, QUEUE_FILE_MODE);
	buf_free(&b);
	return rc;
}

int queue_remove(const char *data_dir, const char *id)
{
	char path[PATH_MAX];
	int rc = 0;

	if (queue_path(data_dir, id, "env", path, sizeof(path)) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		rc = -1;
	if (queue_path(data_dir, id, "msg", path, sizeof(path)) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		rc = -1;
	if (fsync_parent_dir(path) < 0)
		rc = -1;
	return rc;
}

void queue_move_corrupt(const char *data_dir, const char *id)
{
	static const char *const kinds[] = { "env", "msg" };

	for (size_t i = 0; i < 2; i++) {
		char from[PATH_MAX], name[QUEUE_ID_MAX + 16], to[PATH_MAX];
		snprintf(name, sizeof(name), "corrupt/%s", id);
		if (queue_path(data_dir, id, kinds[i], from, sizeof(from)) < 0 ||
		    queue_path(data_dir, name, kinds[i], to, sizeof(to)) < 0)
			continue;
		if (rename(from, to) < 0 && errno != ENOENT)
			log_error("queue id=%s cannot move %s aside: %s", id, from, strerror(errno));
	}
	char path[PATH_MAX];
	if (queue_path(data_dir, id, "env", path, sizeof(path)) == 0)
		fsync_parent_dir(path);
}

/* ---- creating ------------------------------------------------------------ */

struct queue_writer {
	char data_dir[PATH_MAX];
	char id[QUEUE_ID_MAX + 1];
	int fd;
	bool failed, committed;
	char error[256];
};

static int queue_writer_fail(struct queue_writer *w, const char *what)
{
	if (!w->failed)
		snprintf(w->error, sizeof(w->error), "%s: %s", what, strerror(errno));
	w->failed = true;
	return -1;
}

int queue_writer_open(const char *data_dir, const char *id, struct queue_writer **w_r)
{
	struct queue_writer *w = calloc(1, sizeof(*w));
	char path[PATH_MAX], name[QUEUE_ID_MAX + 8];

	*w_r = w;
	if (w == NULL)
		return -1;
	w->fd = -1;
	str_copy(w->data_dir, data_dir, sizeof(w->data_dir));
	str_copy(w->id, id, sizeof(w->id));
	snprintf(name, sizeof(name), "tmp/%s", id);
	if (queue_prepare(data_dir) < 0 || queue_path(data_dir, name, "msg", path, sizeof(path)) < 0)
		return queue_writer_fail(w, "queue directory");
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, QUEUE_FILE_MODE);
	if (w->fd < 0)
		return queue_writer_fail(w, "queue file");
	return 0;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len)
{
	if (w->failed)
		return -1;
	if (write_full(w->fd, data, len) < 0)
		return queue_writer_fail(w, "queue write");
	return 0;
}

int queue_writer_commit(struct queue_writer *w, const struct queue_env *env)
{
	char tmsg[PATH_MAX], tenv[PATH_MAX], msg[PATH_MAX], envp[PATH_MAX], name[QUEUE_ID_MAX + 8];
	struct buf b;
	int fd, rc;

	if (w->failed)
		return -1;
	if (fsync(w->fd) < 0)
		return queue_writer_fail(w, "queue fsync");
	close(w->fd);
	w->fd = -1;
	snprintf(name, sizeof(name), "tmp/%s", w->id);
	if (queue_path(w->data_dir, name, "msg", tmsg, sizeof(tmsg)) < 0 ||
	    queue_path(w->data_dir, name, "env", tenv, sizeof(tenv)) < 0 ||
	    queue_path(w->data_dir, w->id, "msg", msg, sizeof(msg)) < 0 ||
	    queue_path(w->data_dir, w->id, "env", envp, sizeof(envp)) < 0)
		return queue_writer_fail(w, "queue path");
	buf_init(&b, QUEUE_ENV_MAX);
	if (queue_env_format(env, &b) < 0) {
		buf_free(&b);
		errno = ENOMEM;
		return queue_writer_fail(w, "queue envelope");
	}
	fd = open(tenv, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, QUEUE_FILE_MODE);
	rc = fd < 0 ? -1 : 0;
	if (rc == 0 && (write_full(fd, b.data, b.len) < 0 || fsync(fd) < 0))
		rc = -1;
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	if (rc < 0)
		return queue_writer_fail(w, "queue envelope");
	/* tmp/ holds both files durably; make them visible, envelope last */
	if (fsync_parent_dir(tmsg) < 0 || rename(tmsg, msg) < 0 || rename(tenv, envp) < 0 ||
	    fsync_parent_dir(envp) < 0)
		return queue_writer_fail(w, "queue rename");
	w->committed = true;
	return 0;
}

void queue_writer_free(struct queue_writer *w)
{
	char path[PATH_MAX], name[QUEUE_ID_MAX + 8];

	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->committed) {
		snprintf(name, sizeof(name), "tmp/%s", w->id);
		if (queue_path(w->data_dir, name, "msg", path, sizeof(path)) == 0)
			unlink(path);
		if (queue_path(w->data_dir, name, "env", path, sizeof(path)) == 0)
			unlink(path);
		/* a failed commit may have renamed the message already */
		if (queue_path(w->data_dir, w->id, "env", path, sizeof(path)) == 0 &&
		    access(path, F_OK) < 0 &&
		    queue_path(w->data_dir, w->id, "msg", path, sizeof(path)) == 0)
			unlink(path);
	}
	free(w);
}

int queue_writer_copy_fd(struct queue_writer *w, int fd)
{
	char buf[QUEUE_COPY_CHUNK];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return queue_writer_fail(w, "read");
		if (n == 0)
			return 0;
		if (queue_writer_write(w, buf, (size_t)n) < 0)
			return -1;
	}
}

const char *queue_writer_error(const struct queue_writer *w)
{
	return w == NULL ? "out of memory" : w->error;
}

/* ---- scanning ------------------------------------------------------------ */

int queue_scan(const char *data_dir, char (*ids)[QUEUE_ID_MAX + 1], size_t max)
{
	char path[PATH_MAX];
	struct dirent *de;
	size_t n = 0;
	DIR *dir;

	if (queue_path(data_dir, ".", NULL, path, sizeof(path)) < 0)
		return -1;
	dir = opendir(path);
	if (dir == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(dir)) != NULL && n < max) {
		size_t len = strlen(de->d_name);
		if (len < 5 || len - 4 > QUEUE_ID_MAX || strcmp(de->d_name + len - 4, ".env") != 0)
			continue;
		memcpy(ids[n], de->d_name, len - 4);
		ids[n][len - 4] = '\0';
		if (queue_id_valid(ids[n]))
			n++;
	}
	closedir(dir);
	return (int)n;
}

bool queue_take_flush(const char *data_dir)
{
	char path[PATH_MAX];

	if (queue_path(data_dir, "flush", NULL, path, sizeof(path)) < 0)
		return false;
	return unlink(path) == 0;
}

/* ---- postern queue list|flush|delete ID ------------------------------------ */

static const char *queue_time(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static int queue_cli_list(const struct config *cfg)
{
	char (*ids)[QUEUE_ID_MAX + 1] = calloc(QUEUE_LIST_MAX, sizeof(*ids));
	struct queue_env *env = queue_env_new();
	int n;

	if (ids == NULL || env == NULL) {
		free(ids);
		queue_env_free(env);
		fprintf(stderr, "postern: out of memory\n");
		return EX_OSERR;
	}
	n = queue_scan(cfg->data_dir, ids, QUEUE_LIST_MAX);
	if (n < 0)
		fprintf(stderr, "postern: %s/queue: %s\n", cfg->data_dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		char created[32], next[32];
		if (queue_env_read(cfg->data_dir, ids[i], env) < 0) {
			printf("%s  (unreadable: %s)\n", ids[i], errno == ENOENT ? "gone" : "corrupt");
			continue;
		}
		printf("%s  queued %s  from <%s>  attempts %u  next %s\n", env->id,
		       queue_time(env->created, created, sizeof(created)), env->sender,
		       env->attempts, queue_time(env->next, next, sizeof(next)));
		for (size_t j = 0; j < env->n_rcpts; j++) {
			const struct queue_rcpt *r = &env->rcpts[j];
			printf("    %-8s <%s>%s%s\n", queue_state_names[r->state], r->addr,
			       r->reply[0] != '\0' ? "  " : "", r->reply);
			if (r->tls[0] != '\0')
				printf("             TLS %s\n", r->tls);
		}
	}
	if (n == 0)
		printf("queue is empty\n");
	free(ids);
	queue_env_free(env);
	return n < 0 ? EX_IOERR : EX_OK;
}

static int queue_cli_flush(const struct config *cfg)
{
	char path[PATH_MAX];

	if (queue_prepare(cfg->data_dir) < 0 ||
	    queue_path(cfg->data_dir, "flush", NULL, path, sizeof(path)) < 0 ||
	    write_file_atomic(path, "", 0, QUEUE_FILE_MODE) < 0) {
		fprintf(stderr, "postern: %s/queue/flush: %s\n", cfg->data_dir, strerror(errno));
		return EX_IOERR;
	}
	printf("flush requested: the daemon tries every queued message within %d seconds\n",
	       QUEUE_FLUSH_NOTICE_S);
	return EX_OK;
}

static int queue_cli_delete(const struct config *cfg, const char *id)
{
	char path[PATH_MAX];

	if (!queue_id_valid(id)) {
		fprintf(stderr, "postern: '%s' is not a queue id\n", id);
		return EX_USAGE;
	}
	if (queue_path(cfg->data_dir, id, "env", path, sizeof(path)) < 0 ||
	    access(path, F_OK) < 0) {
		fprintf(stderr, "postern: no queued message %s\n", id);
		return EX_NOINPUT;
	}
	if (queue_remove(cfg->data_dir, id) < 0) {
		fprintf(stderr, "postern: %s: %s\n", id, strerror(errno));
		return EX_IOERR;
	}
	printf("deleted %s (no bounce is sent)\n", id);
	return EX_OK;
}

int smtp_cli_queue(const struct config *cfg, int argc, char **argv)
{
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return queue_cli_list(cfg);
	if (argc == 1 && strcmp(argv[0], "flush") == 0)
		return queue_cli_flush(cfg);
	if (argc == 2 && strcmp(argv[0], "delete") == 0)
		return queue_cli_delete(cfg, argv[1]);
	fprintf(stderr, "usage: postern [-c FILE] queue list|flush|delete ID\n");
	return EX_USAGE;
}

void queue_cleanup(const char *data_dir)
{
	char path[PATH_MAX], other[PATH_MAX];
	struct dirent *de;
	DIR *dir;

	if (queue_path(data_dir, "tmp", NULL, path, sizeof(path)) == 0 &&
	    (dir = opendir(path)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (snprintf(other, sizeof(other), "%s/%s", path, de->d_name) <
			    (int)sizeof(other))
				unlink(other);
		}
		closedir(dir);
	}
	if (queue_path(data_dir, ".", NULL, path, sizeof(path)) < 0 ||
	    (dir = opendir(path)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		size_t len = strlen(de->d_name);
		char id[QUEUE_ID_MAX + 1];
		if (strstr(de->d_name, ".env.tmp.") != NULL) {
			/* an envelope rewrite cut short: the old one is whole */
			if (snprintf(other, sizeof(other), "%s/%s", path, de->d_name) <
			    (int)sizeof(other))
				unlink(other);
			continue;
		}
		if (len < 5 || len - 4 > QUEUE_ID_MAX || strcmp(de->d_name + len - 4, ".msg") != 0)
			continue;
		memcpy(id, de->d_name, len - 4);
		id[len - 4] = '\0';
		if (queue_path(data_dir, id, "env", other, sizeof(other)) == 0 &&
		    access(other, F_OK) < 0 && errno == ENOENT &&
		    queue_path(data_dir, id, "msg", other, sizeof(other)) == 0) {
			log_info("queue id=%s removing a message without envelope "
				 "(never acknowledged)", id);
			unlink(other);
		}
	}
	closedir(dir);
}
