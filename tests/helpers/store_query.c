/* Test-only: deliver messages into a temporary store and ask it for
 * FETCH BINARY answers (md_msg_binary) and SEARCH text matches
 * (md_msg_text), for tests/integration/corpus_store.py.
 *
 *   store_query DATA_DIR < commands
 *
 * Commands, one a line, fields separated by one TAB:
 *   MSG path flags keyword internal_date
 *       deliver the file to INBOX (flags: MD_FLAG_* bits; keyword 1: the
 *       keyword $Forwarded; internal_date: Unix time)
 *   Q kind field needle
 *       a text predicate: kind HEADER (field: a header name, or "-" for
 *       any header, TEXT's header side) or BODY (field "-"); needle in hex
 *       after an "x" ("x" alone: the empty string)
 *   BIN spec        ("-" for the whole message)
 * After the end of input, for every message in UID order:
 *   MSG uid size sent_date
 *   QR bits         (one '0' or '1' per Q, in order)
 *   BIN spec result length      (result: md_result_name(), or
 *                                UNKNOWN_CTE for MD_BADMSG of a section
 *                                whose encoding is MD_TE_UNKNOWN)
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

struct store_query_q {
	bool header;
	char *field;  /* NULL: any */
	char *needle;
};

static char *store_query_unhex(const char *s)
{
	size_t n = strlen(s), i;
	char *out;

	if (n == 0 || s[0] != 'x' || (n - 1) % 2 != 0)
		return NULL;
	out = malloc((n - 1) / 2 + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i + 1 < n; i += 2) {
		unsigned int v;

		if (sscanf(s + 1 + i, "%2x", &v) != 1) {
			free(out);
			return NULL;
		}
		out[i / 2] = (char)v;
	}
	out[(n - 1) / 2] = '\0';
	return out;
}

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
			   struct store_query_q *qs, size_t nq, char **bins,
			   size_t nb)
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
		struct md_text *t = NULL;

		printf("MSG %u %llu %lld\n", m->uid, (unsigned long long)m->size,
		       (long long)md_msg_sent_date(m));
		r = md_msg_text(mb, m, MD_TEXT_HEADERS | MD_TEXT_BODY, &t);
		if (r != MD_OK) {
			fprintf(stderr, "text of %u: %s %s\n", m->uid,
				md_result_name(r), md_user_error(user));
			md_msg_list_free(msgs, n);
			return -1;
		}
		printf("QR ");
		for (k = 0; k < nq; k++) {
			bool hit = qs[k].header ?
				md_text_header_contains(t, qs[k].field,
							qs[k].needle) :
				md_text_body_contains(t, qs[k].needle);

			putchar(hit ? '1' : '0');
		}
		putchar('\n');
		md_text_free(t);
		for (k = 0; k < nb; k++) {
			char *data = NULL;
			size_t len = 0;

			struct md_section sec;
			const char *res;

			r = md_msg_binary(mb, m, bins[k], &data, &len);
			res = md_result_name(r);
			/* NO [UNKNOWN-CTE] or NO [PARSE], as IMAP tells them */
			if (r == MD_BADMSG && md_msg_section(m, bins[k], &sec) == 0 &&
			    sec.encoding == MD_TE_UNKNOWN)
				res = "UNKNOWN_CTE";
			printf("BIN %s %s %zu\n", bins[k][0] ? bins[k] : "-",
			       res, len);
			if (len > 0)
				fwrite(data, 1, len, stdout);
			putchar('\n');
			if (r != MD_OK && r != MD_BADMSG)
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
	struct store_query_q qs[STORE_QUERY_MAX];
	char *bins[STORE_QUERY_MAX];
	size_t nq = 0, nb = 0, cap = 0;
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
		} else if (strncmp(line, "Q\t", 2) == 0 && nq < STORE_QUERY_MAX) {
			char *kind = strtok(line + 2, "\t"),
				*field = strtok(NULL, "\t"),
				*needle = strtok(NULL, "\t");

			if (kind == NULL || field == NULL || needle == NULL ||
			    (qs[nq].needle = store_query_unhex(needle)) == NULL)
				goto usage;
			qs[nq].header = strcmp(kind, "HEADER") == 0;
			qs[nq].field = strcmp(field, "-") == 0 ? NULL :
				strdup(field);
			nq++;
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
	rc = store_query_run(mb, user, qs, nq, bins, nb) < 0 ? 1 : 0;
	goto out;
usage:
	fprintf(stderr, "bad command: %s\n", line);
out:
	if (mb != NULL)
		md_mailbox_close(mb);
	if (user != NULL)
		md_user_close(user);
	md_store_close(store);
	for (size_t k = 0; k < nq; k++) {
		free(qs[k].field);
		free(qs[k].needle);
	}
	for (size_t k = 0; k < nb; k++)
		free(bins[k]);
	free(line);
	return rc;
}
