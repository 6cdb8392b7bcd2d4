/* Shared by imap_fetch.c (the command: items, the message loop, NOTIFY's
 * unsolicited FETCH) and imap_fetch_body.c (a message's bytes: sections,
 * HEADER.FIELDS, BINARY, streaming from the file, and the check that the
 * file is still the one indexed). */
#ifndef IMAP_IMAP_FETCH_PRIVATE_H
#define IMAP_IMAP_FETCH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_private.h"
#include "store.h"

#define IMAP_FETCH_ITEMS_MAX 32       /* attributes in one FETCH */
#define IMAP_HEADER_FIELDS_MAX 64     /* names in HEADER.FIELDS (...) */
#define IMAP_SECTION_MAX 64           /* "1.2.3.HEADER.FIELDS.NOT" */

enum imap_fetch_kind {
	IMAP_FI_UID,
	IMAP_FI_FLAGS,
	IMAP_FI_INTERNALDATE,
	IMAP_FI_SIZE,
	IMAP_FI_ENVELOPE,
	IMAP_FI_BODY,          /* BODY without section */
	IMAP_FI_BODYSTRUCTURE,
	IMAP_FI_SECTION,       /* BODY[...], BODY.PEEK[...], RFC822[.HEADER|.TEXT] */
	IMAP_FI_BINARY,        /* BINARY[...], BINARY.PEEK[...] (RFC 3516) */
	IMAP_FI_BINARY_SIZE,   /* BINARY.SIZE[...] */
	IMAP_FI_EMAILID,       /* RFC 8474 §5.1 (imap_objectid.c) */
	IMAP_FI_THREADID,      /* RFC 8474 §5.2: NIL */
	IMAP_FI_MODSEQ,        /* MODSEQ (RFC 7162 §3.1.4) */
	IMAP_FI_SAVEDATE,      /* RFC 8514 §3 */
	IMAP_FI_PREVIEW,       /* RFC 8970 §4 (imap_preview.c) */
};

struct imap_fetch_item {
	enum imap_fetch_kind kind;
	char name[24];                 /* response name: "BODY", "RFC822.TEXT" */
	char section[IMAP_SECTION_MAX];/* for md_msg_section ("1.HEADER") */
	bool has_section;              /* BODY[...] (echo the brackets) */
	bool fields, fields_not;       /* HEADER.FIELDS (.NOT) */
	char *field_text;              /* " (From To)" as echoed */
	char **field_names;
	size_t n_fields;
	bool partial;
	uint64_t origin, count;
	bool lazy;                     /* PREVIEW (LAZY) */
};

struct imap_fetch_cmd {
	struct imap_fetch_item items[IMAP_FETCH_ITEMS_MAX];
	size_t n_items;
	bool set_seen;        /* a body item without .PEEK */
	bool rfc822_peek;     /* RFC822.PEEK accepted (IMAP_QUIRK_RFC822_PEEK) */
	bool changedsince_zero; /* CHANGEDSINCE 0 (IMAP_QUIRK_CHANGEDSINCE_ZERO) */
	bool need_meta, need_path;
	bool need_file;       /* an item reads the message file */
	uint32_t *uids;
	size_t n, pos;        /* next UID of uids to load */
	struct md_msg *batch;
	size_t n_batch, batch_pos, n_alloc;
	char **kw;
	size_t n_kw;
	bool kw_loaded;
	/* the message being written */
	bool in_msg;
	size_t item_pos;
	bool report_flags;    /* \Seen was set: FLAGS goes out */
	int fd;
	uint64_t src_off, src_left; /* file range being streamed */
	char *mem;                  /* or filtered header being streamed */
	size_t mem_off;
	/* RFC 7162 fetch-modifiers */
	uint64_t changedsince;      /* CHANGEDSINCE, 0: none */
	bool vanished;              /* VANISHED (UID FETCH, QRESYNC) */
	struct imap_seqset vset;    /* the UID set as given, for VANISHED */
	uint64_t seen_modseq;       /* of this batch's implicit \Seen */
	bool narrowed;              /* uids cut to the changed ones */
	/* messages not answered: their file is gone or no longer the
	 * indexed one (imap_fetch_open_checked) */
	size_t n_gone, n_changed, n_unreadable;
	size_t msg_mark;            /* s->out.len where its response began */
	bool msg_flushed;           /* part of that response has left */
};

/* How imap_fetch_stream() left the current source */
enum imap_fetch_flow {
	IMAP_FETCH_SENT,   /* all of it is in the output */
	IMAP_FETCH_FULL,   /* the output holds a slice: continue after a drain */
	IMAP_FETCH_BROKEN, /* the file ended before the announced size */
};

/* imap_fetch_body.c */

/* Start a section item (BODY[...], RFC822*): its name, the literal's
 * header, and the source (the file range, or a filtered header). */
void imap_fetch_section_start(struct imap_session *s, struct imap_fetch_cmd *f,
			      struct imap_fetch_item *it, struct md_msg *msg);
/* Stream the current source into the output until the output holds slice
 * octets (IMAP_OUT_SLICE; SIZE_MAX: all of it at once). */
enum imap_fetch_flow imap_fetch_stream(struct imap_session *s, struct imap_fetch_cmd *f,
				       size_t slice);
/* Open the message's file into f->fd and check it is still the indexed
 * one, before its response starts: MD_NOTFOUND (removed), MD_CORRUPT
 * (truncated or rewritten), MD_TEMPFAIL; each logged. */
enum md_result imap_fetch_open_checked(struct imap_session *s, struct imap_fetch_cmd *f,
				       struct md_msg *msg);
/* RFC 3516 §4.3: the response code that fails the command for a BINARY
 * item whose encoding cannot be undone, or NULL. */
const char *imap_fetch_binary_check(const struct imap_fetch_cmd *f, struct md_msg *msg);
/* BINARY[...] / BINARY.SIZE[...] of one message. */
void imap_fetch_binary_start(struct imap_session *s, struct imap_fetch_cmd *f,
			     struct imap_fetch_item *it, struct md_msg *msg);
void imap_fetch_binary_size(struct imap_session *s, const struct imap_fetch_item *it,
			    struct md_msg *msg);

#endif
