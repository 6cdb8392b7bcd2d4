/* ManageSieve script commands (RFC 5804 §2.3-§2.12): HAVESPACE, PUTSCRIPT,
 * CHECKSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT,
 * RENAMESCRIPT.
 *
 * Each command checks its arguments on the loop, then runs as one job on
 * a worker (file I/O and fsync, and compiling a script, never block the
 * loop): the job copies what it needs in, and done() answers and frees
 * it.  A script is compiled by protocols/sieve before it is stored, and
 * stored durably (maildir/md_sieve.c) before OK.
 */
#include "msieve_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "store.h"
#ifdef POSTERN_HAVE_SIEVE
#include "sieve.h"
#endif

enum msieve_op {
	MSIEVE_OP_HAVESPACE,
	MSIEVE_OP_PUT,
	MSIEVE_OP_CHECK,
	MSIEVE_OP_LIST,
	MSIEVE_OP_SETACTIVE,
	MSIEVE_OP_GET,
	MSIEVE_OP_DELETE,
	MSIEVE_OP_RENAME,
};

struct msieve_job {
	struct msieve_session *s;
	enum msieve_op op;
	char *name, *name2;            /* script names (RENAMESCRIPT: from, to) */
	char *data;                    /* PUT/CHECK: the script; GET: the result */
	size_t len;
	uint64_t size;                 /* HAVESPACE */
	enum md_result result;
	bool invalid;                  /* the script did not compile */
	char error[MSIEVE_TEXT_MAX];   /* the compiler's message */
	struct md_sieve_script *list;  /* LISTSCRIPTS */
	size_t n;
};

void msieve_job_free(struct msieve_session *s)
{
	struct msieve_job *j = s->job;

	if (j == NULL)
		return;
	free(j->name);
	free(j->name2);
	free(j->data);
	free(j->list);
	free(j);
	s->job = NULL;
}

/* ---- on the worker ------------------------------------------------------- */

/* 0 when the script compiles; else -1 with the compiler's message. */
static int msieve_compile(struct msieve_job *j)
{
#ifdef POSTERN_HAVE_SIEVE
	struct sieve_script *script = sieve_compile(j->data, j->len, j->error, sizeof(j->error));

	if (script == NULL)
		return -1;
	sieve_script_free(script);
	return 0;
#else
	(void)j;
	return -1; /* never reached: the commands refuse first */
#endif
}

static void msieve_work(void *arg)
{
	struct msieve_job *j = arg;
	struct md_user *u = j->s->md_user;

	switch (j->op) {
	case MSIEVE_OP_HAVESPACE:
		j->result = md_sieve_have_space(u, j->name, j->size);
		break;
	case MSIEVE_OP_PUT:
	case MSIEVE_OP_CHECK:
		j->invalid = msieve_compile(j) < 0;
		j->result = j->invalid || j->op == MSIEVE_OP_CHECK ? MD_OK :
			    md_sieve_put(u, j->name, j->data, j->len);
		break;
	case MSIEVE_OP_LIST:
		j->result = md_sieve_list(u, &j->list, &j->n);
		break;
	case MSIEVE_OP_SETACTIVE:
		j->result = md_sieve_set_active(u, j->name);
		break;
	case MSIEVE_OP_GET:
		j->result = md_sieve_get(u, j->name, &j->data, &j->len);
		break;
	case MSIEVE_OP_DELETE:
		j->result = md_sieve_delete(u, j->name);
		break;
	case MSIEVE_OP_RENAME:
		j->result = md_sieve_rename(u, j->name, j->name2);
		break;
	}
}

/* ---- answers, on the loop ------------------------------------------------ */

/* RFC 5804 §1.3 response codes for the store's results. */
static void msieve_reply_result(struct msieve_session *s, enum md_result r, const char *ok_text)
{
	char text[128];

	switch (r) {
	case MD_OK:
		msieve_reply(s, "OK", NULL, ok_text);
		return;
	case MD_NOTFOUND:
		msieve_reply(s, "NO", "NONEXISTENT", "There is no script by that name");
		return;
	case MD_EXISTS:
		msieve_reply(s, "NO", "ALREADYEXISTS", "A script by that name exists already");
		return;
	case MD_DENIED:
		msieve_reply(s, "NO", "ACTIVE", "You may not delete the active script");
		return;
	case MD_LIMIT:
		snprintf(text, sizeof(text), "You may have at most %d scripts", MD_SIEVE_SCRIPTS_MAX);
		msieve_reply(s, "NO", "QUOTA/MAXSCRIPTS", text);
		return;
	case MD_TOOBIG:
		snprintf(text, sizeof(text), "A script may have at most %d octets", MD_SIEVE_SIZE_MAX);
		msieve_reply(s, "NO", "QUOTA/MAXSIZE", text);
		return;
	case MD_BADNAME:
		msieve_reply(s, "NO", NULL, "Invalid script name");
		return;
	default:
		conn_log(s->conn, LOG_LEVEL_ERROR, "managesieve store failed user=%s result=%s",
			 s->canonical, md_result_name(r));
		msieve_reply(s, "NO", "TRYLATER", "Temporary failure, try again later");
		return;
	}
}

static void msieve_answer_list(struct msieve_session *s, struct msieve_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		msieve_quote(s, j->list[i].name);
		conn_printf(s->conn, "%s\r\n", j->list[i].active ? " ACTIVE" : "");
	}
	msieve_reply(s, "OK", NULL, "Listscripts completed");
}

static void msieve_answer_get(struct msieve_session *s, struct msieve_job *j)
{
	/* RFC 5804 §2.9: the script as a literal, then OK */
	conn_printf(s->conn, "{%zu}\r\n", j->len);
	if (j->len > 0) {
		conn_write_owned(s->conn, j->data, j->len);
		j->data = NULL;
	}
	conn_write(s->conn, "\r\n", 2);
	msieve_reply(s, "OK", NULL, "Getscript completed");
}

static void msieve_done(void *arg)
{
	struct msieve_job *j = arg;
	struct msieve_session *s = j->s;

	if (conn_is_closing(s->conn)) {
		msieve_job_free(s);
		msieve_command_done(s);
		return;
	}
	if (j->invalid)
		/* RFC 5804 §2.6: the compiler's message, "line N: ..." */
		msieve_reply(s, "NO", NULL, j->error[0] != '\0' ? j->error : "Invalid script");
	else if (j->result == MD_OK && j->op == MSIEVE_OP_LIST)
		msieve_answer_list(s, j);
	else if (j->result == MD_OK && j->op == MSIEVE_OP_GET)
		msieve_answer_get(s, j);
	else
		msieve_reply_result(s, j->result, "Completed");
	msieve_job_free(s);
	msieve_command_done(s);
}

/* ---- starting a job ------------------------------------------------------ */

static struct msieve_job *msieve_job_new(struct msieve_session *s, enum msieve_op op)
{
	struct msieve_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		msieve_reply(s, "NO", "TRYLATER", "Out of memory");
		return NULL;
	}
	j->s = s;
	j->op = op;
	s->job = j;
	return j;
}

static void msieve_job_start(struct msieve_session *s)
{
	msieve_begin_async(s);
	if (conn_submit(s->conn, msieve_work, msieve_done, s->job) < 0) {
		msieve_job_free(s);
		msieve_reply(s, "NO", "TRYLATER", "Out of resources, try again later");
		msieve_command_done(s);
	}
}

/* Argument i as a script name (a copy into *out_r); empty only when
 * allow_empty.  Answers NO itself and returns -1 otherwise. */
static int msieve_name_arg(struct msieve_session *s, struct msieve_command *cmd, size_t i,
			   bool allow_empty, char **out_r)
{
	const struct msieve_arg *a = &cmd->args[i];

	if (a->type != MSIEVE_ARG_STRING) {
		msieve_reply(s, "NO", NULL, "A script name is a string");
		return -1;
	}
	if (!(allow_empty && a->len == 0) && md_sieve_name_check(a->data, a->len) != MD_OK) {
		msieve_reply(s, "NO", NULL, "Invalid script name");
		return -1;
	}
	if ((*out_r = strdup(a->data)) == NULL) {
		msieve_reply(s, "NO", "TRYLATER", "Out of memory");
		return -1;
	}
	return 0;
}

/* A job for the commands whose arguments are one or two names. */
static void msieve_names_job(struct msieve_session *s, struct msieve_command *cmd,
			     enum msieve_op op, bool allow_empty)
{
	struct msieve_job *j = msieve_job_new(s, op);

	if (j == NULL)
		return;
	if (msieve_name_arg(s, cmd, 0, allow_empty, &j->name) < 0 ||
	    (cmd->nargs > 1 && msieve_name_arg(s, cmd, 1, false, &j->name2) < 0)) {
		msieve_job_free(s);
		return;
	}
	msieve_job_start(s);
}

/* PUTSCRIPT and CHECKSCRIPT: the script is the last argument; its buffer
 * moves into the job. */
static void msieve_script_job(struct msieve_session *s, struct msieve_command *cmd,
			      enum msieve_op op)
{
	struct msieve_arg *script = &cmd->args[cmd->nargs - 1];
	struct msieve_job *j;

#ifndef POSTERN_HAVE_SIEVE
	/* Never store a script nobody checked (no interpreter in this build). */
	msieve_reply(s, "NO", NULL, "This server cannot check Sieve scripts yet; nothing stored");
	return;
#endif
	if (script->type != MSIEVE_ARG_STRING) {
		msieve_reply(s, "NO", NULL, "A script is a string");
		return;
	}
	if (script->len > MD_SIEVE_SIZE_MAX) {
		msieve_reply_result(s, MD_TOOBIG, NULL);
		return;
	}
	if ((j = msieve_job_new(s, op)) == NULL)
		return;
	if (op == MSIEVE_OP_PUT && msieve_name_arg(s, cmd, 0, false, &j->name) < 0) {
		msieve_job_free(s);
		return;
	}
	j->data = script->data;
	j->len = script->len;
	script->data = NULL;
	msieve_job_start(s);
}

void msieve_cmd_putscript(struct msieve_session *s, struct msieve_command *cmd)
{
	msieve_script_job(s, cmd, MSIEVE_OP_PUT);
}

void msieve_cmd_checkscript(struct msieve_session *s, struct msieve_command *cmd)
{
	msieve_script_job(s, cmd, MSIEVE_OP_CHECK);
}

void msieve_cmd_havespace(struct msieve_session *s, struct msieve_command *cmd)
{
	struct msieve_job *j;

	if (cmd->args[1].type != MSIEVE_ARG_NUMBER) {
		msieve_reply(s, "NO", NULL, "HAVESPACE takes a name and a number");
		return;
	}
	if ((j = msieve_job_new(s, MSIEVE_OP_HAVESPACE)) == NULL)
		return;
	j->size = cmd->args[1].number;
	if (msieve_name_arg(s, cmd, 0, false, &j->name) < 0) {
		msieve_job_free(s);
		return;
	}
	msieve_job_start(s);
}

void msieve_cmd_listscripts(struct msieve_session *s, struct msieve_command *cmd)
{
	(void)cmd;
	if (msieve_job_new(s, MSIEVE_OP_LIST) != NULL)
		msieve_job_start(s);
}

void msieve_cmd_setactive(struct msieve_session *s, struct msieve_command *cmd)
{
	/* RFC 5804 §2.8: SETACTIVE "" leaves no script active */
	msieve_names_job(s, cmd, MSIEVE_OP_SETACTIVE, true);
}

void msieve_cmd_getscript(struct msieve_session *s, struct msieve_command *cmd)
{
	msieve_names_job(s, cmd, MSIEVE_OP_GET, false);
}

void msieve_cmd_deletescript(struct msieve_session *s, struct msieve_command *cmd)
{
	msieve_names_job(s, cmd, MSIEVE_OP_DELETE, false);
}

void msieve_cmd_renamescript(struct msieve_session *s, struct msieve_command *cmd)
{
	msieve_names_job(s, cmd, MSIEVE_OP_RENAME, false);
}
