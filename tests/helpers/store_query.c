/* Test-only: deliver messages into a temporary store and ask it for
 * FETCH BINARY answers (md_msg_binary), for
 * tests/integration/corpus_store.py.
 *
 *   store_query DATA_DIR < commands
 *
 * Commands, one a line, fields separated by one TAB:
 *   MSG path flags keyword internal_date
 *       deliver the file to INBOX (flags: MD_FLAG_* bits; keyword 1: the
 *       keyword $Forwarded; internal_date: Unix time)
 *   BIN spec        ("-" for the whole message)
 * After the end of input, for every message in UID order:
 *   MSG uid size sent_date
 *   BIN spec result length      (result: md_result_name())
 *   <length octets>\n
 * Exit 0, or 1 on a usage, store or delivery failure.
 */
#include "store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_QUERY_MAX 256  /* Q and BIN lines */
#define STORE_QUERY_ADDR "corpus@example.test"

static int store_query_deliver(struct md_store *store, char *args)
{
	char *path = strtok(args, "\t"), *fl = strtok(NULL, "\t"),
		*kw = strtok(NULL, "\t"), *date = strtok(NULL, "\t");
	const char *kws[] = { "$Forwarded" };
	struct md_target t = { .address = STORE_QUERY_ADDR, .create_user = true };
	struct md_delivery *d;
	enum md_result r;
	int fd;

	if (path == NULL || fl == NULL || kw == NULL || date == NULL)
		return -1;
	t.flags = (unsigned)strtoul(fl, NULL, 10);
	if (atoi(kw) != 0) {
		t.keywords = kws;
		t.n_keywords = 1;
	}
	t.internal_date = strtoll(date, NULL, 10);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return -1;
	}
	r = md_delivery_open(store, 0, MD_DELIVERY_RAW, &d);
	if (r == MD_OK)
		r = md_delivery_write_fd(d, fd);
	close(fd);
	if (r == MD_OK)
		r = md_delivery_commit(d, &t, 1);
	if (r == MD_OK)
		r = t.result;
	if (r != MD_OK)
		fprintf(stderr, "%s: delivery: %s %s\n", path, md_result_name(r),
			md_delivery_error(d));
	md_delivery_free(d);
	return r == MD_OK ? 0 : -1;
}

static int store_query_run(struct md_mailbox *mb, struct md_user *user,
			   char **bins, size_t nb)
{
	struct md_msg *msgs;
	size_t n, i, k;
	enum md_result r;

	r = md_msg_list(mb, 1, UINT32_MAX, 0, MD_READ_META | MD_READ_PATH,
			&msgs, &n);
	if (r != MD_OK) {
		fprintf(stderr, "list: %s\n", md_result_name(r));
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct md_msg *m = &msgs[i];
		printf("MSG %u %llu %lld\n", m->uid, (unsigned long long)m->size,
		       (long long)md_msg_sent_date(m));
		for (k = 0; k < nb; k++) {
			char *data = NULL;
			size_t len = 0;

			r = md_msg_binary(mb, m, bins[k], &data, &len);
			printf("BIN %s %s %zu\n", bins[k][0] ? bins[k] : "-",
			       md_result_name(r), len);
			if (len > 0)
				fwrite(data, 1, len, stdout);
			putchar('\n');
			if (r != MD_OK && r != MD_BADMSG && r != MD_UNKNOWN_CTE)
				fprintf(stderr, "binary of %u [%s]: %s\n", m->uid,
					bins[k], md_user_error(user));
			free(data);
		}
	}
	md_msg_list_free(msgs, n);
	return 0;
}

int main(int argc, char **argv)
{
	char *bins[STORE_QUERY_MAX];
	size_t nb = 0, cap = 0;
	struct md_store *store = NULL;
	struct md_user *user = NULL;
	struct md_mailbox *mb = NULL;
	char err[256], *line = NULL;
	ssize_t len;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: store_query DATA_DIR < commands\n");
		return 1;
	}
	if (md_store_open(argv[1], NULL, &store, err, sizeof(err)) != MD_OK) {
		fprintf(stderr, "store: %s\n", err);
		return 1;
	}
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (strncmp(line, "MSG\t", 4) == 0) {
			if (store_query_deliver(store, line + 4) < 0)
				goto out;
		} else if (strncmp(line, "BIN\t", 4) == 0 && nb < STORE_QUERY_MAX) {
			bins[nb++] = strdup(strcmp(line + 4, "-") == 0 ? "" :
					    line + 4);
		} else {
			goto usage;
		}
	}
	if (md_user_open(store, STORE_QUERY_ADDR, MD_USER_CREATE, &user) != MD_OK ||
	    md_mailbox_open(user, "INBOX", &mb, NULL) != MD_OK) {
		fprintf(stderr, "open INBOX failed\n");
		goto out;
	}
	rc = store_query_run(mb, user, bins, nb) < 0 ? 1 : 0;
	goto out;
usage:
	fprintf(stderr, "bad command: %s\n", line);
out:
	if (mb != NULL)
		md_mailbox_close(mb);
	if (user != NULL)
		md_user_close(user);
	md_store_close(store);
	for (size_t k = 0; k < nb; k++)
		free(bins[k]);
	free(line);
	return rc;
}
