/* Fuzz target: the IMAP command reader and argument cursor
 * (protocols/imap/imap_parse.c).
 *
 * Input: the first byte holds options (chunk size of the split feed); the
 * rest is what a client sends.  It goes through a model of core/conn
 * (CRLF lines up to IMAP_FUZZ_LINE_MAX, then bytes(n) for literals, as the
 * session asks) into the reader, once whole and once in chunks.
 *
 * Oracles:
 *   - the two feeds give the same events and the same commands (the reader
 *     resumes anywhere);
 *   - the command buffer never exceeds IMAP_COMMAND_MAX; a refused
 *     command still yields a tag of 1..IMAP_TAG_MAX characters;
 *   - the cursor, walked over every completed command with each parser,
 *     never moves past the end, and strings it returns lie inside the
 *     command;
 *   - a parsed sequence set, normalised, is sorted and disjoint and
 *     contains exactly what its ranges say;
 *   - imap_buf_string() output parses back to the same octets.
 */
#include "fuzz_common.h"

#include <string.h>

#include "imap_parse.h"

#define IMAP_FUZZ_LINE_MAX 8192
#define IMAP_FUZZ_APPEND_MAX (1024 * 1024)
#define IMAP_FUZZ_EVENTS_MAX 4096

struct fuzz_feed {
	struct imap_reader r;
	char *pending;
	size_t n_pending, cap;
	bool bytes_mode;
	uint64_t bytes_left;
	bool discarding;  /* an over-long line is being dropped */
	/* a log of what happened, to compare the two feeds */
	unsigned char events[IMAP_FUZZ_EVENTS_MAX];
	size_t n_events;
	uint64_t cmd_hash;
};

static void fuzz_event(struct fuzz_feed *f, unsigned char ev)
{
	if (f->n_events < IMAP_FUZZ_EVENTS_MAX)
		f->events[f->n_events++] = ev;
}

static void fuzz_cursor_walk(const char *cmd, size_t len)
{
	char *copy = malloc(len > 0 ? len : 1);
	struct imap_cursor c;
	char out[256];

	FUZZ_CHECK(copy != NULL);
	if (len > 0)
		memcpy(copy, cmd, len);
	imap_cursor_init(&c, copy, len);
	while (!imap_at_end(&c)) {
		char *before = c.p;
		const char *s;
		size_t sl;
		struct imap_seqset set;
		uint64_t n;
		int64_t t;

		c.err = NULL;
		if (imap_seqset(&c, &set)) {
			imap_seqset_normalise(&set, 1000);
			for (size_t i = 0; i < set.n; i++) {
				FUZZ_CHECK(set.ranges[i].lo <= set.ranges[i].hi);
				if (i > 0)
					FUZZ_CHECK(set.ranges[i].lo > set.ranges[i - 1].hi + 1 ||
						   set.ranges[i - 1].hi == UINT32_MAX);
				FUZZ_CHECK(imap_seqset_contains(&set, set.ranges[i].lo));
				FUZZ_CHECK(imap_seqset_contains(&set, set.ranges[i].hi));
			}
			free(set.ranges);
		} else if (imap_astring(&c, &s, &sl) || imap_nstring(&c, &s, &sl)) {
			if (s != NULL)
				FUZZ_CHECK(s >= copy && s + sl <= copy + len);
		} else if (imap_list_mailbox(&c, out, sizeof(out))) {
			FUZZ_CHECK(strlen(out) < sizeof(out));
		} else if (imap_date_time(&c, &t) || imap_date(&c, &t) || imap_number64(&c, &n)) {
			/* nothing more to check */
		} else if (imap_atom(&c, out, sizeof(out), "[]\\")) {
			FUZZ_CHECK(strlen(out) > 0);
		}
		FUZZ_CHECK(c.p <= c.end && c.p >= copy);
		if (c.p == before)
			c.p++; /* skip what no parser takes */
	}
	free(copy);
}

static void fuzz_command(struct fuzz_feed *f)
{
	FUZZ_CHECK(f->r.cmd.len <= IMAP_COMMAND_MAX);
	for (size_t i = 0; i < f->r.cmd.len; i++)
		f->cmd_hash = (f->cmd_hash ^ (unsigned char)f->r.cmd.data[i]) * 1099511628211ULL;
	f->cmd_hash = (f->cmd_hash ^ 0x100) * 1099511628211ULL;
	fuzz_cursor_walk(f->r.cmd.data, f->r.cmd.len);
	imap_reader_reset(&f->r);
}

static void fuzz_result(struct fuzz_feed *f, enum imap_read_result res)
{
	char tag[IMAP_TAG_MAX + 1];

	fuzz_event(f, (unsigned char)res);
	switch (res) {
	case IMAP_READ_MORE:
		break;
	case IMAP_READ_COMMAND:
		fuzz_command(f);
		break;
	case IMAP_READ_LITERAL:
		/* APPEND literals go to the store in the server; here as bytes */
		f->bytes_mode = f->r.literal_left > 0;
		f->bytes_left = f->r.literal_left;
		break;
	case IMAP_READ_TOOBIG:
	case IMAP_READ_BAD:
		imap_reader_tag(&f->r, tag);
		FUZZ_CHECK(strlen(tag) >= 1 && strlen(tag) <= IMAP_TAG_MAX);
		if (res == IMAP_READ_TOOBIG && f->r.discard && f->r.literal_left > 0) {
			f->bytes_mode = true;
			f->bytes_left = f->r.literal_left;
		} else {
			imap_reader_reset(&f->r);
		}
		break;
	case IMAP_READ_CLOSE:
		break;
	}
}

static void fuzz_process(struct fuzz_feed *f)
{
	for (;;) {
		if (f->bytes_mode) {
			size_t n = f->n_pending < f->bytes_left ? f->n_pending : (size_t)f->bytes_left;
			if (n == 0)
				return;
			f->bytes_left -= n;
			if (f->bytes_left == 0)
				f->bytes_mode = false;
			fuzz_result(f, imap_reader_bytes(&f->r, f->pending, n));
			memmove(f->pending, f->pending + n, f->n_pending - n);
			f->n_pending -= n;
			continue;
		}
		{
			char *eol = memchr(f->pending, '\n', f->n_pending);
			size_t take, len;
			char *line;

			if (eol == NULL) {
				if (f->n_pending > IMAP_FUZZ_LINE_MAX + 1) {
					/* as conn: report once, drop up to the line end */
					if (!f->discarding) {
						fuzz_event(f, 100);
						imap_reader_reset(&f->r);
					}
					f->discarding = true;
					f->pending[0] = f->pending[f->n_pending - 1];
					f->n_pending = 1;
				}
				return;
			}
			take = (size_t)(eol - f->pending) + 1;
			len = take - 1;
			if (len > 0 && f->pending[len - 1] == '\r')
				len--;
			if (f->discarding || len > IMAP_FUZZ_LINE_MAX) {
				if (!f->discarding) {
					fuzz_event(f, 100);
					imap_reader_reset(&f->r);
				}
				f->discarding = false;
			} else {
				line = malloc(len > 0 ? len : 1);
				FUZZ_CHECK(line != NULL);
				memcpy(line, f->pending, len);
				fuzz_result(f, imap_reader_line(&f->r, line, len));
				free(line);
			}
			memmove(f->pending, f->pending + take, f->n_pending - take);
			f->n_pending -= take;
		}
	}
}

static void fuzz_feed_bytes(struct fuzz_feed *f, const uint8_t *data, size_t len)
{
	if (f->n_pending + len > f->cap) {
		f->cap = f->n_pending + len;
		f->pending = realloc(f->pending, f->cap > 0 ? f->cap : 1);
		FUZZ_CHECK(f->pending != NULL);
	}
	memcpy(f->pending + f->n_pending, data, len);
	f->n_pending += len;
	fuzz_process(f);
}

static void fuzz_run(struct fuzz_feed *f, const uint8_t *data, size_t size, size_t chunk)
{
	memset(f, 0, sizeof(*f));
	imap_reader_init(&f->r, IMAP_FUZZ_APPEND_MAX);
	for (size_t pos = 0; pos < size; pos += chunk)
		fuzz_feed_bytes(f, data + pos, size - pos < chunk ? size - pos : chunk);
	imap_reader_free(&f->r);
	free(f->pending);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_feed whole, split;
	size_t chunk;

	if (size < 1)
		return 0;
	chunk = (size_t)(data[0] & 0x1f) + 1;
	data++;
	size--;
	fuzz_run(&whole, data, size, size > 0 ? size : 1);
	fuzz_run(&split, data, size, chunk);
	/* MORE events depend on where input stops; compare the rest */
	{
		size_t i = 0, j = 0;
		for (;;) {
			while (i < whole.n_events && whole.events[i] == IMAP_READ_MORE)
				i++;
			while (j < split.n_events && split.events[j] == IMAP_READ_MORE)
				j++;
			if (i == whole.n_events || j == split.n_events)
				break;
			FUZZ_CHECK(whole.events[i] == split.events[j]);
			i++;
			j++;
		}
		if (whole.n_events < IMAP_FUZZ_EVENTS_MAX && split.n_events < IMAP_FUZZ_EVENTS_MAX)
			FUZZ_CHECK(i == whole.n_events && j == split.n_events);
	}
	FUZZ_CHECK(whole.cmd_hash == split.cmd_hash);

	/* quoting round trip */
	{
		struct buf b;
		struct imap_cursor c;
		const char *s;
		size_t len;
		char *copy;

		buf_init(&b, 0);
		FUZZ_CHECK(imap_buf_string(&b, (const char *)data, size) == 0);
		copy = malloc(b.len > 0 ? b.len : 1);
		FUZZ_CHECK(copy != NULL);
		memcpy(copy, b.data, b.len);
		imap_cursor_init(&c, copy, b.len);
		if (size <= IMAP_COMMAND_MAX) {
			FUZZ_CHECK(imap_string(&c, &s, &len));
			FUZZ_CHECK(len == size && memcmp(s, data, size) == 0 && imap_at_end(&c));
		}
		free(copy);
		buf_free(&b);
	}
	return 0;
}
