/* `postern deliver` (the MDA an outside MTA pipes mail into) and
 * `postern reindex`.  argv holds the arguments after the subcommand name.
 * Exit codes are sysexits(3), what MTAs expect from a delivery agent:
 * EX_TEMPFAIL makes them retry, the others bounce. */
#include "md_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define MD_CLI_SENDER_MAX MD_ADDRESS_MAX
#define MD_CLI_FIRST_LINE_MAX 1000 /* RFC 5322 §2.1.1 line limit */
#define MD_CLI_REASON_MAX 512      /* a Sieve reject reason on stderr */

static int md_cli_exit(enum md_result r, const struct config *cfg)
{
	switch (r) {
	case MD_OK:
		return EX_OK;
	case MD_NOUSER:
	case MD_BADNAME:
		return EX_NOUSER;
	case MD_BADMSG:
	case MD_TOOBIG:
		return EX_DATAERR;
	case MD_QUOTA:
		return cfg->quota_error_permanent ? EX_CANTCREAT : EX_TEMPFAIL;
	default:
		return EX_TEMPFAIL;
	}
}

/* The worst result wins; a temporary failure beats a permanent one, so the
 * MTA retries (the recipients that succeeded may then get the message
 * twice, as with any MDA that delivers to several mailboxes). */
static enum md_result md_cli_worst(enum md_result a, enum md_result b)
{
	if (a == MD_TEMPFAIL || b == MD_TEMPFAIL)
		return MD_TEMPFAIL;
	if (a == MD_NOSPACE || b == MD_NOSPACE)
		return MD_NOSPACE;
	if (a == MD_QUOTA || b == MD_QUOTA)
		return MD_QUOTA;
	return a != MD_OK ? a : b;
}

static bool md_cli_header_value_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Feed stdin, without an mbox "From " separator line some MTAs prepend. */
static enum md_result md_cli_copy_stdin(struct md_delivery *d, bool *empty_r)
{
	char buf[65536];
	size_t have = 0, skip = 0;
	uint64_t fed = 0;
	bool eof = false;

	/* the first line (or what fits) decides about a separator */
	while (!eof && have < sizeof(buf) && memchr(buf, '\n', have) == NULL) {
		ssize_t n = read(STDIN_FILENO, buf + have, sizeof(buf) - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		eof = n == 0;
		have += (size_t)n;
	}
	if (have >= 5 && memcmp(buf, "From ", 5) == 0) {
		char *nl = memchr(buf, '\n', have);

		skip = nl != NULL ? (size_t)(nl - buf) + 1 : have;
	}
	fed = have - skip;
	md_delivery_write(d, buf + skip, have - skip);
	while (!eof) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		eof = n == 0;
		fed += (uint64_t)n;
		if (md_delivery_write(d, buf, (size_t)n) != MD_OK)
			break; /* the commit reports it */
	}
	*empty_r = fed == 0;
	return MD_OK;
fail:
	log_error("deliver: reading the message: %s", strerror(errno));
	return MD_TEMPFAIL;
}

int md_cli_deliver(const struct config *cfg, int argc, char **argv,
		   md_resolve_fn *resolve, void *resolve_ctx)
{
	return md_cli_deliver_filtered(cfg, argc, argv, resolve, resolve_ctx, NULL);
}

/* Commit the message to the targets the filter chose (or the owners'
 * INBOX); a sysexits code. */
static int md_cli_commit(const struct config *cfg, struct md_store *store, struct md_delivery *d,
			 const char *address, const char *sender, struct md_target *targets,
			 size_t n, const struct md_deliver_filter *filter)
{
	struct md_target *use = targets, *chosen = NULL;
	char reason[MD_CLI_REASON_MAX];
	size_t n_use = n, n_chosen = 0;
	enum md_result r, worst = MD_OK;
	int f;

	if (filter != NULL) {
		reason[0] = '\0';
		f = filter->plan(filter->arg, store, d, sender, targets, n, &chosen, &n_chosen,
				 reason, sizeof(reason));
		if (f < 0) {
			fprintf(stderr, "postern deliver: %s: the Sieve filter failed\n", address);
			return EX_TEMPFAIL;
		}
		if (f > 0) {
			/* dovecot-lda -e: the reason for the MTA's bounce */
			fprintf(stderr, "postern deliver: %s: rejected: %s\n", address, reason);
			return EX_NOPERM;
		}
		if (chosen != NULL) {
			use = chosen;
			n_use = n_chosen;
		}
	}
	r = n_use > 0 ? md_delivery_commit(d, use, n_use) : MD_OK;
	if (r != MD_OK) {
		fprintf(stderr, "postern deliver: %s\n", md_delivery_error(d));
		return md_cli_exit(r, cfg);
	}
	for (size_t i = 0; i < n_use; i++) {
		if (use[i].result != MD_OK)
			fprintf(stderr, "postern deliver: %s: %s\n", use[i].address,
				use[i].result == MD_QUOTA ? "mailbox full" :
				md_result_name(use[i].result));
		worst = md_cli_worst(worst, use[i].result);
	}
	if (filter != NULL && chosen != NULL)
		filter->after(filter->arg, use, n_use);
	return md_cli_exit(worst, cfg);
}

static int md_cli_deliver_run(const struct config *cfg, int argc, char **argv,
			      md_resolve_fn *resolve, void *resolve_ctx,
			      const struct md_deliver_filter *filter)
{
	struct md_recipient owners[MD_RESOLVE_MAX];
	struct md_target targets[MD_RESOLVE_MAX];
	const char *sender = NULL, *address = NULL;
	char sender_buf[MD_CLI_SENDER_MAX + 1];
	struct md_delivery *d = NULL;
	struct md_store *store = NULL;
	struct buf hdr;
	char err[512];
	enum md_result r;
	bool empty = true;
	int i, n, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
			sender = argv[++i];
		else if (strncmp(argv[i], "-f", 2) == 0 && argv[i][2] != '\0')
			sender = argv[i] + 2;
		else if (strcmp(argv[i], "--") == 0 && i + 2 == argc)
			address = argv[++i];
		else if (argv[i][0] == '-' || address != NULL)
			goto usage;
		else
			address = argv[i];
	}
	if (address == NULL)
		goto usage;
	/* "-f <>" and "-f <a@b>" as some MTAs pass them */
	if (sender != NULL && sender[0] == '<' && sender[strlen(sender) - 1] == '>' &&
	    strlen(sender) >= 2 && strlen(sender) - 2 < sizeof(sender_buf)) {
		memcpy(sender_buf, sender + 1, strlen(sender) - 2);
		sender_buf[strlen(sender) - 2] = '\0';
		sender = sender_buf;
	}
	if (sender != NULL && (strlen(sender) > MD_CLI_SENDER_MAX ||
			       !md_cli_header_value_ok(sender) ||
			       strchr(sender, '<') != NULL || strchr(sender, '>') != NULL)) {
		fprintf(stderr, "postern deliver: invalid sender address\n");
		return EX_USAGE;
	}
	if (strlen(address) > MD_ADDRESS_MAX || !md_cli_header_value_ok(address)) {
		fprintf(stderr, "postern deliver: invalid address\n");
		return EX_NOUSER;
	}
	if (cfg->data_dir[0] == '\0') {
		fprintf(stderr, "postern deliver: no data_dir in the configuration\n");
		return EX_CONFIG;
	}
	n = resolve(resolve_ctx, address, owners, MD_RESOLVE_MAX);
	if (n < 0) {
		fprintf(stderr, "postern deliver: %s: cannot resolve now\n", address);
		return EX_TEMPFAIL;
	}
	if (n == 0) {
		fprintf(stderr, "postern deliver: %s: no such user\n", address);
		return EX_NOUSER;
	}
	if (md_store_open(cfg->data_dir, &(struct md_store_options){
			  .pop3_uidl_format = cfg->pop3_uidl_format,
			  .expunge_log_max = cfg->imap_expunge_log_max,
			  .expunge_log_age = cfg->imap_expunge_log_age }, &store, err, sizeof(err)) != MD_OK) {
		fprintf(stderr, "postern deliver: %s\n", err);
		return EX_TEMPFAIL;
	}
	if ((r = md_delivery_open(store, cfg->message_size_max, 0, &d)) != MD_OK) {
		rc = md_cli_exit(r, cfg);
		goto out;
	}
	/* RFC 5321 §4.4: the delivery agent records the envelope sender */
	buf_init(&hdr, 4096);
	buf_appendf(&hdr, "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
		    sender != NULL ? sender : "", address);
	md_delivery_write(d, hdr.data, hdr.len);
	buf_free(&hdr);
	if ((r = md_cli_copy_stdin(d, &empty)) != MD_OK) {
		rc = md_cli_exit(r, cfg);
		goto out;
	}
	if (empty) {
		fprintf(stderr, "postern deliver: empty message\n");
		rc = EX_DATAERR;
		goto out;
	}
	memset(targets, 0, sizeof(targets));
	for (i = 0; i < n; i++) {
		targets[i].address = owners[i].address;
		targets[i].quota_bytes = owners[i].quota_bytes;
		targets[i].quota_messages = owners[i].quota_messages;
		targets[i].create_user = true;
	}
	rc = md_cli_commit(cfg, store, d, address, sender != NULL ? sender : "", targets,
			   (size_t)n, filter);
out:
	md_delivery_free(d);
	md_store_close(store);
	return rc;
usage:
	fprintf(stderr, "usage: postern deliver [-f SENDER] ADDRESS < message\n");
	return EX_USAGE;
}

int md_cli_deliver_filtered(const struct config *cfg, int argc, char **argv,
			    md_resolve_fn *resolve, void *resolve_ctx,
			    const struct md_deliver_filter *filter)
{
	int rc = md_cli_deliver_run(cfg, argc, argv, resolve, resolve_ctx, filter);

	if (filter != NULL)
		filter->done(filter->arg);
	return rc;
}

int md_cli_reindex(const struct config *cfg, int argc, char **argv)
{
	struct md_store *store;
	struct md_user *user;
	char err[512];
	uint64_t bytes = 0, messages = 0;
	enum md_result r;

	if (argc != 1 || argv[0][0] == '-') {
		fprintf(stderr, "usage: postern reindex ADDRESS\n");
		return EX_USAGE;
	}
	if (cfg->data_dir[0] == '\0') {
		fprintf(stderr, "postern reindex: no data_dir in the configuration\n");
		return EX_CONFIG;
	}
	if (md_store_open(cfg->data_dir, &(struct md_store_options){
			  .pop3_uidl_format = cfg->pop3_uidl_format,
			  .expunge_log_max = cfg->imap_expunge_log_max,
			  .expunge_log_age = cfg->imap_expunge_log_age }, &store, err, sizeof(err)) != MD_OK) {
		fprintf(stderr, "postern reindex: %s\n", err);
		return EX_TEMPFAIL;
	}
	r = md_user_reindex(store, argv[0], err, sizeof(err));
	if (r == MD_OK && md_user_open(store, argv[0], 0, &user) == MD_OK) {
		md_user_usage(user, &bytes, &messages);
		md_user_close(user);
	}
	md_store_close(store);
	if (r != MD_OK) {
		fprintf(stderr, "postern reindex: %s\n", err[0] ? err : md_result_name(r));
		return r == MD_NOUSER || r == MD_BADNAME ? EX_NOUSER : EX_TEMPFAIL;
	}
	printf("%s: reindexed, %llu messages, %llu bytes\n", argv[0],
	       (unsigned long long)messages, (unsigned long long)bytes);
	return EX_OK;
}
