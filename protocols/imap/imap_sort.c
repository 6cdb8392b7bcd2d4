/* SORT and UID SORT (RFC 5256 §3), DISPLAYFROM / DISPLAYTO (RFC 5957),
 * ESORT (RFC 5267 §3: RETURN (MIN MAX COUNT ALL)).
 *
 * The keys of the matching messages come from imap_sort_collect()
 * (imap_sort_keys.c: from the index alone, through the process's
 * sort-key cache); the search criteria are SEARCH's own program
 * (imap_search.c).  A worker collects them, sorts pointers to them and
 * writes the answer into the output buffer in one piece.
 *
 * Comparison: string keys are in their RFC 5051 i;unicode-casemap form
 * already and compare as octets (RFC 5256 §5); the sent date is Unix time,
 * INTERNALDATE when the message has no usable Date (§2.2); equal keys go
 * by sequence number (§3), which REVERSE does not turn round.
 *
 * CONTEXT=SORT (RFC 5267 §4) is not offered: it needs updates of a kept
 * sort as the mailbox changes, which is not cheap here.
 *
 * Memory: the command's scratch (struct imap_sort_cmd, the collected set
 * and its reference to the cache entry) is freed by its cmd_free when the
 * reply is sent.
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

#define IMAP_SORT_CRITERIA_MAX 16   /* keys in one SORT (RFC 5256 §3 sets none) */

enum imap_sort_key {
	IMAP_SORT_ARRIVAL,
	IMAP_SORT_CC,
	IMAP_SORT_DATE,
	IMAP_SORT_FROM,
	IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT,
	IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM, /* RFC 5957 §3 */
	IMAP_SORT_DISPLAYTO,
};

static const char *const imap_sort_names[] = {
	"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO",
};

struct imap_sort_criterion {
	enum imap_sort_key key;
	bool reverse;
};

struct imap_sort_cmd {
	struct imap_sort_criterion crit[IMAP_SORT_CRITERIA_MAX];
	size_t n_crit;
	bool esort;
	struct imap_return ret;
	struct imap_sort_set set;
};

/* ---- comparison ------------------------------------------------------------ */

static int imap_sort_cmp_num(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

/* Keys in their i;unicode-casemap form: RFC 5051 §2 orders them as
 * octets (strcmp compares as unsigned char). */
static int imap_sort_cmp_str(const char *a, const char *b)
{
	return strcmp(a, b);
}

static int imap_sort_cmp_key(enum imap_sort_key key, const struct imap_sort_msg *a,
			     const struct imap_sort_msg *b)
{
	switch (key) {
	case IMAP_SORT_ARRIVAL:
		return imap_sort_cmp_num(a->arrival, b->arrival);
	case IMAP_SORT_CC:
		return imap_sort_cmp_str(a->cc, b->cc);
	case IMAP_SORT_DATE:
		return imap_sort_cmp_num(a->date, b->date);
	case IMAP_SORT_FROM:
		return imap_sort_cmp_str(a->from, b->from);
	case IMAP_SORT_SIZE:
		return a->size < b->size ? -1 : a->size > b->size ? 1 : 0;
	case IMAP_SORT_SUBJECT:
		return imap_sort_cmp_str(a->subject, b->subject);
	case IMAP_SORT_TO:
		return imap_sort_cmp_str(a->to, b->to);
	case IMAP_SORT_DISPLAYFROM:
		return imap_sort_cmp_str(a->dfrom, b->dfrom);
	case IMAP_SORT_DISPLAYTO:
		return imap_sort_cmp_str(a->dto, b->dto);
	}
	return 0;
}

/* qsort_r comparator of struct imap_sort_msg pointers */
static int imap_sort_cmp(const void *pa, const void *pb, void *ctx)
{
	const struct imap_sort_msg *a = *(const struct imap_sort_msg *const *)pa;
	const struct imap_sort_msg *b = *(const struct imap_sort_msg *const *)pb;
	const struct imap_sort_cmd *c = ctx;

	for (size_t i = 0; i < c->n_crit; i++) {
		int r = imap_sort_cmp_key(c->crit[i].key, a, b);

		if (r != 0)
			return c->crit[i].reverse ? -r : r;
	}
	return imap_sort_cmp_num(a->seq, b->seq);
}

int imap_sort_cmp_date_ptr(const void *pa, const void *pb)
{
	const struct imap_sort_msg *a = *(const struct imap_sort_msg *const *)pa;
	const struct imap_sort_msg *b = *(const struct imap_sort_msg *const *)pb;
	int r = imap_sort_cmp_num(a->date, b->date);

	return r != 0 ? r : imap_sort_cmp_num(a->seq, b->seq);
}

/* ---- the command ------------------------------------------------------------ */

static void imap_sort_free(void *arg)
{
	struct imap_sort_cmd *c = arg;

	if (c != NULL)
		imap_sort_set_free(&c->set);
	free(c);
}

static void imap_sort_answer(struct imap_session *s, struct imap_sort_cmd *c, const uint32_t *ids)
{
	size_t n = c->set.n;

	if (!c->esort) {
		buf_append(&s->out, "* SORT", 6);
		for (size_t i = 0; i < n; i++) {
			buf_putc(&s->out, ' ');
			buf_put_uint(&s->out, ids[i]);
		}
		buf_append(&s->out, "\r\n", 2);
		return;
	}
	/* RFC 5267 §3.2: MIN and MAX are the first and last in sort order,
	 * ALL a sequence-set in sort order */
	imap_search_esearch(s, &c->ret, ids, n, 0);
}

static enum imap_cmd_status imap_sort_work(struct imap_session *s)
{
	struct imap_sort_cmd *c = s->cmd_state;
	const struct imap_sort_msg **order;
	uint32_t *ids;

	if (imap_sort_collect(s, &c->set) < 0)
		return CMD_DONE;
	/* pointers, not the keys themselves, move while sorting */
	order = malloc((c->set.n + 1) * sizeof(*order));
	ids = malloc((c->set.n + 1) * sizeof(*ids));
	if (order == NULL || ids == NULL) {
		free(order);
		free(ids);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return CMD_DONE;
	}
	for (size_t i = 0; i < c->set.n; i++)
		order[i] = &c->set.msgs[i];
	if (c->set.n > 1)
		qsort_r(order, c->set.n, sizeof(*order), imap_sort_cmp, c);
	for (size_t i = 0; i < c->set.n; i++)
		ids[i] = s->uid ? order[i]->uid : order[i]->seq;
	free(order);
	imap_sort_answer(s, c, ids);
	free(ids);
	/* RFC 3501 §7.4.1: no EXPUNGE after a command with sequence numbers */
	imap_view_update(s, s->uid);
	imap_reply(s, "OK", "%sSORT completed", s->uid ? "UID " : "");
	return CMD_DONE;
}

/* sort-criteria = "(" sort-criterion *(SP sort-criterion) ")" */
static bool imap_sort_criteria_list(struct imap_sort_cmd *c, struct imap_cursor *args)
{
	char word[16];

	if (!imap_char(args, '('))
		return false;
	do {
		bool reverse = false;
		size_t k;

		if (!imap_atom(args, word, sizeof(word), NULL))
			return false;
		if (str_ieq(word, "REVERSE")) {
			reverse = true;
			if (!imap_sp(args) || !imap_atom(args, word, sizeof(word), NULL))
				return false;
		}
		for (k = 0; k < sizeof(imap_sort_names) / sizeof(imap_sort_names[0]); k++)
			if (str_ieq(word, imap_sort_names[k]))
				break;
		if (k == sizeof(imap_sort_names) / sizeof(imap_sort_names[0])) {
			args->err = "Unknown sort key";
			return false;
		}
		if (c->n_crit == IMAP_SORT_CRITERIA_MAX) {
			args->err = "[LIMIT] Too many sort keys";
			return false;
		}
		c->crit[c->n_crit].key = (enum imap_sort_key)k;
		c->crit[c->n_crit++].reverse = reverse;
		if (k == IMAP_SORT_CC || k == IMAP_SORT_FROM || k == IMAP_SORT_TO ||
		    k == IMAP_SORT_DISPLAYFROM || k == IMAP_SORT_DISPLAYTO)
			c->set.need |= IMAP_SORT_NEED_ADDRS;
		if (imap_char(args, ')'))
			return true;
	} while (imap_sp(args));
	return false;
}

/* RFC 5267 §3.1: "RETURN (" [option *(SP option)] ")" SP; SAVE is not
 * offered with SORT. */
static bool imap_sort_return(struct imap_sort_cmd *c, struct imap_cursor *args)
{
	char word[16];
	char *save = args->p;

	if (!imap_atom(args, word, sizeof(word), NULL) || !str_ieq(word, "RETURN")) {
		args->p = save;
		args->err = NULL;
		return true;
	}
	c->esort = true;
	return imap_sp(args) && imap_search_return(args, &c->ret, false) && imap_sp(args);
}

bool imap_sort_criteria(struct imap_session *s, struct imap_cursor *args,
			struct imap_sort_set *set)
{
	char charset[32];
	bool replied;

	if (!imap_astring_copy(args, charset, sizeof(charset)) || !imap_sp(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Expected a charset");
		return false;
	}
	/* RFC 6855 §3 (errata 4029): only UTF-8 after ENABLE UTF8=ACCEPT */
	if (s->utf8_accept && !str_ieq(charset, "UTF-8")) {
		imap_reply(s, "BAD", "Only CHARSET UTF-8 after ENABLE UTF8=ACCEPT");
		return false;
	}
	/* RFC 5256 §3: US-ASCII and UTF-8 MUST be supported; others here not */
	if (!str_ieq(charset, "UTF-8") && !str_ieq(charset, "US-ASCII")) {
		imap_reply(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		return false;
	}
	set->prog = imap_search_parse(s, args, &replied);
	if (set->prog == NULL && !replied)
		imap_reply(s, "BAD", "%s",
			   args->err != NULL ? args->err : "Invalid search criteria");
	return set->prog != NULL;
}

void imap_cmd_sort(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_sort_cmd *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_sort_free;
	if (!imap_sp(args) || !imap_sort_return(c, args) || !imap_sort_criteria_list(c, args) ||
	    !imap_sp(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid SORT arguments");
		return;
	}
	if (imap_sort_criteria(s, args, &c->set))
		imap_job_start(s, imap_sort_work, NULL);
}
