/* A FETCH item's bytes (RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 3516):
 * BODY[section]<partial> and RFC822* from the message file (part offsets
 * from the index, md_msg_section), HEADER.FIELDS[.NOT] filtered in memory,
 * BINARY decoded by the store, streamed a slice at a time.
 *
 * A literal's size cannot be taken back once announced (RFC 3501 §4.3,
 * RFC 9051 §4.3), and the sizes come from the index: before a message's
 * response starts, imap_fetch_open_checked() compares its file's size
 * with the indexed one; a file that ends inside an announced literal is
 * reported as IMAP_FETCH_BROKEN, never padded (imap_fetch.c then takes
 * the response back or closes the connection). */
#include "imap_fetch_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"

/* HEADER.FIELDS filters at most this much of a header (the answer's size
 * must be known before its literal starts, so it is built in memory). */
#define IMAP_HEADER_FILTER_MAX (1024 * 1024)

/* Keep the fields of a header (RFC 3501 §6.4.5 HEADER.FIELDS[.NOT]);
 * always ends with the blank line. */
static char *imap_header_filter(const struct imap_fetch_item *it, const char *hdr, size_t len,
				size_t *out_len_r)
{
	char *out = malloc(len + 3);
	size_t w = 0, i = 0;
	bool keep = false;

	if (out == NULL)
		return NULL;
	while (i < len) {
		size_t eol = i;
		while (eol < len && hdr[eol] != '\n')
			eol++;
		if (eol < len)
			eol++; /* include LF */
		if (eol - i <= 2 && (hdr[i] == '\r' || hdr[i] == '\n'))
			break; /* the blank line */
		if (hdr[i] != ' ' && hdr[i] != '\t') {
			const char *colon = memchr(hdr + i, ':', eol - i);
			size_t nl = colon != NULL ? (size_t)(colon - (hdr + i)) : 0;
			bool listed = false;
			while (nl > 0 && (hdr[i + nl - 1] == ' ' || hdr[i + nl - 1] == '\t'))
				nl--;
			for (size_t k = 0; colon != NULL && k < it->n_fields && !listed; k++)
				listed = strlen(it->field_names[k]) == nl &&
					 strncasecmp(it->field_names[k], hdr + i, nl) == 0;
			/* a line without a colon is malformed: no listed field,
			 * so only HEADER.FIELDS.NOT keeps it (as Dovecot does) */
			keep = colon != NULL ? listed != it->fields_not : it->fields_not;
		}
		if (keep) {
			memcpy(out + w, hdr + i, eol - i);
			w += eol - i;
		}
		i = eol;
	}
	memcpy(out + w, "\r\n", 2);
	w += 2;
	*out_len_r = w;
	return out;
}

static void imap_fetch_item_name(struct buf *b, const struct imap_fetch_item *it)
{
	buf_appendf(b, "%s", it->name);
	if (it->has_section) {
		if (it->fields)
			buf_appendf(b, "[%s%s%s]", it->section, it->fields_not ? ".FIELDS.NOT" : ".FIELDS",
				    it->field_text);
		else
			buf_appendf(b, "[%s]", it->section);
	}
	if (it->partial)
		buf_appendf(b, "<%llu>", (unsigned long long)it->origin);
}

/* Start a section item: its name, the literal header, and the source. */
void imap_fetch_section_start(struct imap_session *s, struct imap_fetch_cmd *f,
			      struct imap_fetch_item *it, struct md_msg *msg)
{
	struct md_section sec;
	uint64_t off = 0, len = 0;
	int rc = md_msg_section(msg, it->section, &sec);

	imap_fetch_item_name(&s->out, it);
	if (rc == 0) {
		off = sec.offset;
		len = sec.length;
	}
	if (rc == 0 && len > 0 && f->fd < 0 && md_msg_open(s->view.mb, msg, &f->fd) != MD_OK)
		f->fd = -1, len = 0;
	if (it->fields && rc == 0) {
		size_t want = len > IMAP_HEADER_FILTER_MAX ? IMAP_HEADER_FILTER_MAX : (size_t)len;
		char *hdr = malloc(want + 1);
		ssize_t got = hdr != NULL && f->fd >= 0 ? pread(f->fd, hdr, want, (off_t)off) : -1;
		size_t flen = 0;

		free(f->mem);
		f->mem = got >= 0 ? imap_header_filter(it, hdr, (size_t)got, &flen) : NULL;
		free(hdr);
		if (f->mem == NULL)
			flen = 0;
		f->mem_off = 0;
		off = 0;
		len = flen;
	}
	if (it->partial) {
		if (it->origin >= len) {
			off += len;
			len = 0;
		} else {
			off += it->origin;
			len -= it->origin;
			if (len > it->count)
				len = it->count;
		}
	}
	if (it->fields)
		f->mem_off = (size_t)off;
	if (rc != 0 && !it->partial) {
		buf_appendf(&s->out, " \"\""); /* RFC 3501 §6.4.5: no such part */
		f->src_left = 0;
		return;
	}
	buf_appendf(&s->out, " {%llu}\r\n", (unsigned long long)len);
	f->src_off = off;
	f->src_left = len;
}

/* Stream the current source into the output until the output holds slice
 * octets (IMAP_OUT_SLICE; SIZE_MAX: all of it at once). */
enum imap_fetch_flow imap_fetch_stream(struct imap_session *s, struct imap_fetch_cmd *f,
				       size_t slice)
{
	while (f->src_left > 0) {
		size_t room = s->out.len < slice ? slice - s->out.len : 0;
		size_t want;
		ssize_t got;
		char *tmp;

		if (room == 0)
			return IMAP_FETCH_FULL;
		want = f->src_left < room ? (size_t)f->src_left : room;
		if (f->mem != NULL) {
			buf_append(&s->out, f->mem + f->mem_off, want);
			f->mem_off += want;
			f->src_left -= want;
			continue;
		}
		if ((tmp = malloc(want)) == NULL)
			return IMAP_FETCH_FULL; /* again after the drain */
		do
			got = f->fd >= 0 ? pread(f->fd, tmp, want, (off_t)f->src_off) : -1;
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			/* the file shrank (or failed) under the announced
			 * literal: no byte may stand in for the missing ones */
			free(tmp);
			return IMAP_FETCH_BROKEN;
		}
		buf_append(&s->out, tmp, (size_t)got);
		free(tmp);
		f->src_off += (uint64_t)got;
		f->src_left -= (uint64_t)got;
	}
	/* the source is done: a filtered header must not serve the next item */
	free(f->mem);
	f->mem = NULL;
	return IMAP_FETCH_SENT;
}

/* Before a message's response starts: open its file into f->fd and check
 * that it is still the indexed one (its size: every literal's size and
 * every part offset comes from the index).  MD_NOTFOUND: removed by
 * another program; MD_CORRUPT: truncated or rewritten since indexed. */
enum md_result imap_fetch_open_checked(struct imap_session *s, struct imap_fetch_cmd *f,
				       struct md_msg *msg)
{
	struct stat st;
	int fd = -1;
	enum md_result r = md_msg_open(s->view.mb, msg, &fd);

	if (r != MD_OK) {
		conn_log(s->conn, LOG_LEVEL_WARN, "imap user=%s FETCH uid=%u not sent: %s",
			 s->canonical, msg->uid, md_user_error(s->md_user));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		conn_log(s->conn, LOG_LEVEL_WARN, "imap user=%s FETCH uid=%u not sent: fstat: %s",
			 s->canonical, msg->uid, strerror(errno));
		close(fd);
		return MD_TEMPFAIL;
	}
	if ((uint64_t)st.st_size != msg->size) {
		conn_log(s->conn, LOG_LEVEL_ERROR,
			 "imap user=%s FETCH uid=%u not sent: %s is %lld octets, indexed %llu "
			 "(changed by another program? `postern reindex` rebuilds the index)",
			 s->canonical, msg->uid, msg->path != NULL ? msg->path : "-",
			 (long long)st.st_size, (unsigned long long)msg->size);
		close(fd);
		return MD_CORRUPT;
	}
	f->fd = fd;
	return MD_OK;
}

/* RFC 3516 §4.3: an encoding the store cannot undo fails the command,
 * judged from the metadata before anything of the message is sent.
 * Returns the response code, or NULL when every BINARY item can go. */
const char *imap_fetch_binary_check(const struct imap_fetch_cmd *f, struct md_msg *msg)
{
	for (size_t i = 0; i < f->n_items; i++) {
		const struct imap_fetch_item *it = &f->items[i];
		struct md_section sec;

		if (it->kind != IMAP_FI_BINARY && it->kind != IMAP_FI_BINARY_SIZE)
			continue;
		if (md_msg_section(msg, it->section, &sec) != 0)
			continue; /* no such part: an empty answer */
		if (sec.encoding == MD_TE_UNKNOWN)
			return "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding";
		if (!sec.decodable)
			return "[PARSE] Cannot decode the part's content";
	}
	return NULL;
}

/* BINARY[...]: decoded content as a literal (literal8 when it holds NUL,
 * RFC 3516 §4.2), or NIL when the file can no longer be read. */
void imap_fetch_binary_start(struct imap_session *s, struct imap_fetch_cmd *f,
			     struct imap_fetch_item *it, struct md_msg *msg)
{
	char *data = NULL;
	size_t len = 0, off = 0;

	imap_fetch_item_name(&s->out, it);
	if (md_msg_binary(s->view.mb, msg, it->section, &data, &len) != MD_OK) {
		buf_appendf(&s->out, " NIL");
		f->src_left = 0;
		return;
	}
	if (it->partial) {
		off = it->origin < len ? (size_t)it->origin : len;
		len -= off;
		if (len > it->count)
			len = (size_t)it->count;
	}
	buf_appendf(&s->out, " %s{%zu}\r\n", memchr(data + off, '\0', len) != NULL ? "~" : "", len);
	free(f->mem);
	f->mem = data;
	f->mem_off = off;
	f->src_left = len;
}

/* BINARY.SIZE[...]: the decoded size the store keeps for a part; for the
 * whole message (no part) it is what BINARY[] gives, decoded now. */
void imap_fetch_binary_size(struct imap_session *s, const struct imap_fetch_item *it,
			    struct md_msg *msg)
{
	struct md_section sec;
	uint64_t size = 0;

	if (it->section[0] == '\0') {
		char *data = NULL;
		size_t len = 0;
		if (md_msg_binary(s->view.mb, msg, "", &data, &len) == MD_OK)
			size = len;
		free(data);
	} else if (md_msg_section(msg, it->section, &sec) == 0) {
		size = sec.decoded_size;
	}
	buf_appendf(&s->out, "BINARY.SIZE[%s] %llu", it->section, (unsigned long long)size);
}
