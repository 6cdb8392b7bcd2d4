/* Unit tests of the message metadata code (maildir/md_meta*.c): the MIME
 * scanner and its limits, ENVELOPE/BODY/BODYSTRUCTURE strings, section
 * ranges, BINARY sizes, and the packed index form. */
#include "md_meta_private.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* helpers */

static struct md_meta meta_of(const char *msg, size_t len)
{
	struct md_meta m;

	ck_assert_int_eq(md_meta_compute(msg, len, &m), 0);
	return m;
}

static struct md_meta meta_str(const char *msg)
{
	return meta_of(msg, strlen(msg));
}

/* the octets of a section, or "<none>" / "<bad>" */
static char *section(const struct md_meta *m, const char *msg,
		     const char *spec)
{
	uint64_t off = 0, len = 0;
	int rc = md_meta_section(m, spec, &off, &len, NULL);
	char *s;

	if (rc < 0)
		return strdup("<bad>");
	if (rc > 0)
		return strdup("<none>");
	ck_assert_uint_le(off + len, m->size);
	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, msg + off, len);
	s[len] = '\0';
	return s;
}

static void assert_section(const struct md_meta *m, const char *msg,
			   const char *spec, const char *want)
{
	char *got = section(m, msg, spec);

	ck_assert_msg(strcmp(got, want) == 0, "section [%s]: got \"%s\", want \"%s\"",
		      spec, got, want);
	free(got);
}

static void assert_str(const char *got, size_t len, const char *want)
{
	ck_assert_msg(len == strlen(want) && memcmp(got, want, len) == 0,
		      "got\n  %.*s\nwant\n  %s", (int)len, got, want);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t max_depth(const struct md_meta *m)
{
	uint32_t i, best = 0;

	for (i = 0; i < m->n_parts; i++) {
		uint32_t d = 0, a = m->parts[i].parent;

		while (a != MD_PART_NONE) {
			d++;
			a = m->parts[a].parent;
		}
		if (d > best)
			best = d;
	}
	return best;
}

/* Every range inside the message, and the packed form accepted again
 * (unpack checks the tree and range invariants). */
static void assert_sane(const struct md_meta *m)
{
	struct md_meta u;
	struct buf b;
	uint32_t i;

	ck_assert_uint_ge(m->n_parts, 1);
	ck_assert_uint_le(m->n_parts, MD_META_PARTS_MAX);
	for (i = 0; i < m->n_parts; i++) {
		const struct md_part *p = &m->parts[i];

		ck_assert_uint_le(p->header_off + p->header_len, m->size);
		ck_assert_uint_eq(p->body_off, p->header_off + p->header_len);
		ck_assert_uint_le(p->body_off + p->body_len, m->size);
	}
	buf_init(&b, 0);
	ck_assert_int_eq(md_meta_pack(m, &b), 0);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), 0);
	md_meta_free(&u);
	buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* simple messages */

static const char simple_msg[] =
	"From: Alice Example <alice@example.org>\r\n"
	"To: bob@example.net, \"Carol, C.\" <carol@example.com>\r\n"
	"Cc: Friends: dave@example.com, erin@example.com;\r\n"
	"Subject: Hello\r\n"
	"\tworld\r\n"
	"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	"Message-ID: <1234@example.org>\r\n"
	"\r\n"
	"Hello Bob,\r\n"
	"this is the body.\r\n";

START_TEST(test_meta_simple_text)
{
	struct md_meta m = meta_str(simple_msg);

	ck_assert_uint_eq(m.size, strlen(simple_msg));
	ck_assert_uint_eq(m.n_parts, 1);
	assert_str(m.envelope, m.envelope_len,
		   "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"Hello world\" "
		   "((\"Alice Example\" NIL \"alice\" \"example.org\")) "
		   "((\"Alice Example\" NIL \"alice\" \"example.org\")) "
		   "((\"Alice Example\" NIL \"alice\" \"example.org\")) "
		   "((NIL NIL \"bob\" \"example.net\")"
		   "(\"Carol, C.\" NIL \"carol\" \"example.com\")) "
		   "((NIL NIL \"Friends\" NIL)(NIL NIL \"dave\" \"example.com\")"
		   "(NIL NIL \"erin\" \"example.com\")(NIL NIL NIL NIL)) "
		   "NIL NIL \"<1234@example.org>\")");
	assert_str(m.body, m.body_len,
		   "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 31 2)");
	assert_str(m.bodystructure, m.bodystructure_len,
		   "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 31 2 NIL NIL NIL NIL)");
	assert_section(&m, simple_msg, "TEXT", "Hello Bob,\r\nthis is the body.\r\n");
	assert_section(&m, simple_msg, "1", "Hello Bob,\r\nthis is the body.\r\n");
	assert_section(&m, simple_msg, "", simple_msg);
	/* RFC 5322 §3.3: 10:52:37 +0200 is 08:52:37 UTC */
	ck_assert_int_eq(m.sent_date, 1057049557);
	ck_assert_uint_eq(m.parts[0].binary_size, 31);
	ck_assert_int_eq(md_meta_binary_status(&m, 0), MD_BINARY_OK);
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_empty_message)
{
	struct md_meta m = meta_of("", 0);

	ck_assert_uint_eq(m.size, 0);
	ck_assert_uint_eq(m.n_parts, 1);
	assert_str(m.envelope, m.envelope_len,
		   "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_str(m.bodystructure, m.bodystructure_len,
		   "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 0 0 NIL NIL NIL NIL)");
	assert_section(&m, "", "HEADER", "");
	assert_section(&m, "", "TEXT", "");
	ck_assert_int_eq(m.sent_date, 0);
	assert_sane(&m);
	md_meta_free(&m);

	/* NULL with length 0 is the empty message too */
	ck_assert_int_eq(md_meta_compute(NULL, 0, &m), 0);
	ck_assert_uint_eq(m.n_parts, 1);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_header_only)
{
	static const char msg[] = "Subject: no body, no empty line";
	struct md_meta m = meta_str(msg);

	assert_section(&m, msg, "HEADER", msg);
	assert_section(&m, msg, "TEXT", "");
	ck_assert_uint_eq(m.parts[0].body_off, strlen(msg));
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_bare_lf)
{
	static const char msg[] =
		"Subject: lf\n"
		"Content-Type: multipart/mixed; boundary=x\n"
		"\n"
		"--x\n"
		"Content-Type: text/plain\n"
		"\n"
		"one\n"
		"two\n"
		"--x\n"
		"\n"
		"three\n"
		"--x--\n";
	struct md_meta m = meta_str(msg);

	ck_assert_uint_eq(m.n_parts, 3);
	assert_section(&m, msg, "1", "one\ntwo");
	assert_section(&m, msg, "1.MIME", "Content-Type: text/plain\n\n");
	assert_section(&m, msg, "2", "three");
	assert_section(&m, msg, "2.MIME", "\n");
	ck_assert_uint_eq(m.parts[1].body_lines, 1);
	assert_str(m.body, m.body_len,
		   "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 7 1)(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
		   "NIL NIL \"7bit\" 5 0) \"mixed\")");
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

/* ------------------------------------------------------------------ */
/* multipart and message/rfc822 */

static const char mixed_msg[] =
	"From: a@example.org\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--outer\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"caf=C3=A9\r\n"
	"--outer\r\n"
	"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
	"Content-ID: <id1@example.org>\r\n"
	"Content-Language: en, de\r\n"
	"\r\n"
	"AAECAwQF\r\n"
	"Bgc=\r\n"
	"--outer--\r\n"
	"epilogue\r\n";

START_TEST(test_meta_multipart_mixed)
{
	struct md_meta m = meta_str(mixed_msg);

	ck_assert_uint_eq(m.n_parts, 3);
	ck_assert(m.parts[0].is_multipart);
	assert_str(m.bodystructure, m.bodystructure_len,
		   "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
		   "\"quoted-printable\" 9 0 NIL NIL NIL NIL)"
		   "(\"application\" \"octet-stream\" (\"name\" \"a.bin\") "
		   "\"<id1@example.org>\" NIL \"base64\" 14 NIL "
		   "(\"attachment\" (\"filename\" \"a.bin\")) (\"en\" \"de\") NIL) "
		   "\"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)");
	assert_str(m.body, m.body_len,
		   "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
		   "\"quoted-printable\" 9 0)"
		   "(\"application\" \"octet-stream\" (\"name\" \"a.bin\") "
		   "\"<id1@example.org>\" NIL \"base64\" 14) \"mixed\")");
	assert_section(&m, mixed_msg, "1", "caf=C3=A9");
	assert_section(&m, mixed_msg, "1.MIME",
		       "Content-Type: text/plain; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	assert_section(&m, mixed_msg, "2", "AAECAwQF\r\nBgc=");
	assert_section(&m, mixed_msg, "3", "<none>");
	assert_section(&m, mixed_msg, "1.2", "<none>");
	/* RFC 3501 §6.4.5: a non-multipart part has only a part 1, itself */
	assert_section(&m, mixed_msg, "1.1", "caf=C3=A9");
	assert_section(&m, mixed_msg, "2.1", "AAECAwQF\r\nBgc=");
	assert_section(&m, mixed_msg, "1.HEADER", "<none>");
	/* BINARY: "café" is 5 octets; 8 octets of base64 data */
	ck_assert_uint_eq(m.parts[1].binary_size, 5);
	ck_assert_uint_eq(m.parts[1].cte, MD_CTE_QP);
	ck_assert_uint_eq(m.parts[2].binary_size, 8);
	ck_assert_uint_eq(m.parts[2].cte, MD_CTE_BASE64);
	ck_assert_int_eq(md_meta_binary_status(&m, 2), MD_BINARY_OK);
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

static const char nested_msg[] =
	"Subject: outer\r\n"
	"Content-Type: multipart/mixed; boundary=b1\r\n"
	"\r\n"
	"--b1\r\n"
	"\r\n"
	"first\r\n"
	"--b1\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: inner\r\n"
	"From: Inner Person <inner@example.com>\r\n"
	"Content-Type: multipart/alternative; boundary=b2\r\n"
	"\r\n"
	"--b2\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"plain\r\n"
	"--b2\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>html</p>\r\n"
	"--b2--\r\n"
	"--b1\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: single\r\n"
	"\r\n"
	"just text\r\n"
	"--b1--\r\n";

START_TEST(test_meta_nested_rfc822)
{
	struct md_meta m = meta_str(nested_msg);
	const char *inner_hdr =
		"Subject: inner\r\n"
		"From: Inner Person <inner@example.com>\r\n"
		"Content-Type: multipart/alternative; boundary=b2\r\n\r\n";

	/* root, 1, 2 (rfc822), 2's message, 2.1, 2.2, 3 (rfc822), 3's msg */
	ck_assert_uint_eq(m.n_parts, 8);
	ck_assert(m.parts[2].is_message);
	ck_assert(m.parts[3].is_multipart);
	assert_section(&m, nested_msg, "2.HEADER", inner_hdr);
	assert_section(&m, nested_msg, "2.MIME",
		       "Content-Type: message/rfc822\r\n\r\n");
	assert_section(&m, nested_msg, "2.1", "plain");
	assert_section(&m, nested_msg, "2.1.MIME",
		       "Content-Type: text/plain\r\n\r\n");
	assert_section(&m, nested_msg, "2.2", "<p>html</p>");
	assert_section(&m, nested_msg, "2.3", "<none>");
	assert_section(&m, nested_msg, "2.TEXT",
		       "--b2\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
		       "--b2\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
		       "--b2--\r\n");
	/* a message/rfc822 whose message is not multipart: 3.1 is its body */
	assert_section(&m, nested_msg, "3.1", "just text");
	assert_section(&m, nested_msg, "3.HEADER", "Subject: single\r\n\r\n");
	assert_section(&m, nested_msg, "3.TEXT", "just text");
	assert_section(&m, nested_msg, "3.1.MIME", "Subject: single\r\n\r\n");
	assert_section(&m, nested_msg, "1.TEXT", "<none>");
	assert_str(m.body, m.body_len,
		   "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 5 0)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 203 "
		   "(NIL \"inner\" ((\"Inner Person\" NIL \"inner\" \"example.com\")) "
		   "((\"Inner Person\" NIL \"inner\" \"example.com\")) "
		   "((\"Inner Person\" NIL \"inner\" \"example.com\")) "
		   "NIL NIL NIL NIL NIL) "
		   "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 5 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") "
		   "NIL NIL \"7bit\" 11 0) \"alternative\") 13)"
		   "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 28 "
		   "(NIL \"single\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		   "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 9 0) 2) \"mixed\")");
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_sections_syntax)
{
	struct md_meta m = meta_str(nested_msg);
	uint64_t off, len;
	static const char *const bad[] = {
		"0", "1.", ".1", "1..2", "01", "1.0", "MIME", "1.FOO", "TEXT.1",
		"HEADER.FIELDS", "1.2.", "99999999999", "-1", "1 ", NULL
	};
	int i;

	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(md_meta_section(&m, bad[i], &off, &len, NULL) == -1,
			      "spec \"%s\" accepted", bad[i]);
	ck_assert_int_eq(md_meta_section(&m, NULL, &off, &len, NULL), -1);
	ck_assert_int_eq(md_meta_section(&m, "header", &off, &len, NULL), 0);
	ck_assert_int_eq(md_meta_section(&m, "2.mime", &off, &len, NULL), 0);
	ck_assert_int_eq(md_meta_section(&m, "4", &off, &len, NULL), 1);
	ck_assert_int_eq(md_meta_section(&m, "4294967295", &off, &len, NULL), 1);
	ck_assert_int_eq(md_meta_section(&m, "1.1.1.1", &off, &len, NULL), 1);
	md_meta_free(&m);
}
END_TEST

/* LIBRARIES.md §1: this 77-octet message crashes libetpan's
 * mailmime_parse(); the boundary is the single octet '"'. */
START_TEST(test_meta_boundary_quote)
{
	static const char msg[] =
		"To: a@b.c\r\n"
		"Content-Type: multipart/mixed; boundary=\"\\\"\"\r\n"
		"\r\n"
		"--\"\r\n"
		"\r\n"
		"hi\r\n"
		"--\"--\r\n";
	struct md_meta m = meta_str(msg);

	ck_assert_uint_eq(strlen(msg), 77);
	ck_assert_uint_eq(m.n_parts, 2);
	assert_section(&m, msg, "1", "hi");
	assert_str(m.body, m.body_len,
		   "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 2 0) \"mixed\")");
	/* the parameter value is sent escaped */
	ck_assert_ptr_nonnull(strstr(m.bodystructure,
				     "(\"boundary\" \"\\\"\")"));
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_missing_final_boundary)
{
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=zz\r\n"
		"\r\n"
		"--zz\r\n"
		"\r\n"
		"one\r\n"
		"--zz\r\n"
		"\r\n"
		"two, and the message just ends\r\n";
	struct md_meta m = meta_str(msg);

	ck_assert_uint_eq(m.n_parts, 3);
	assert_section(&m, msg, "1", "one");
	assert_section(&m, msg, "2", "two, and the message just ends\r\n");
	ck_assert_uint_eq(m.parts[2].body_off + m.parts[2].body_len, m.size);
	ck_assert_uint_eq(m.parts[0].body_off + m.parts[0].body_len, m.size);
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_multipart_without_parts)
{
	/* no boundary line at all: one empty text/plain stands in, as the
	 * grammar needs a part (RFC 3501 §9 body-type-mpart) */
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=none\r\n\r\nno parts\r\n";
	struct md_meta m = meta_str(msg);

	ck_assert_uint_eq(m.n_parts, 1);
	assert_str(m.body, m.body_len,
		   "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 0 0) \"mixed\")");
	assert_section(&m, msg, "1", "<none>");
	md_meta_free(&m);
}
END_TEST

/* A boundary line right after a part's header (or inside it) ends the
 * header without the line break before the boundary; that line break
 * stays with the enclosing part (here the message/rfc822 part). */
START_TEST(test_meta_cut_header)
{
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=B\r\n"
		"\r\n"
		"--B\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"--B\r\n"
		"Content-Type: message/rfc822\r\n"
		"\r\n"
		"not a header line\r\n"
		"--B--\r\n";
	struct md_meta m = meta_str(msg);

	ck_assert_uint_eq(m.n_parts, 4);
	assert_section(&m, msg, "1.MIME", "Content-Type: text/plain\r\n");
	assert_section(&m, msg, "1", "");
	assert_section(&m, msg, "2", "not a header line\r\n");
	assert_section(&m, msg, "2.HEADER", "not a header line");
	assert_section(&m, msg, "2.TEXT", "");
	assert_str(m.body, m.body_len,
		   "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 0 0)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 19 "
		   "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
		   "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		   "\"7bit\" 0 0) 1) \"mixed\")");
	assert_sane(&m);
	md_meta_free(&m);
}
END_TEST

/* ------------------------------------------------------------------ */
/* limits */

/* RFC 2046 §5.1.1 allows 70 octets.  Longer boundaries are compared by
 * their first 70 (they match as prefixes anyway), and the close delimiter
 * is still found after the full length. */
START_TEST(test_meta_long_boundary)
{
	static const size_t lens[] = { MD_META_BOUNDARY_MAX,
				       MD_META_BOUNDARY_MAX + 1, 120 };
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t n = lens[i];
		struct buf b;
		char bnd[121];
		struct md_meta m;

		memset(bnd, 'q', n);
		bnd[n] = '\0';
		buf_init(&b, 0);
		ck_assert_int_eq(buf_appendf(&b,
			"Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
			"--%s\r\n\r\nA\r\n--%s\r\n\r\nB\r\n--%s--\r\nepilogue\r\n",
			bnd, bnd, bnd, bnd), 0);
		m = meta_of(b.data, b.len);
		ck_assert_uint_eq(m.n_parts, 3);
		assert_section(&m, b.data, "1", "A");
		assert_section(&m, b.data, "2", "B");
		/* the parameter is sent whole */
		ck_assert_ptr_nonnull(memmem(m.bodystructure,
					     m.bodystructure_len, bnd, n));
		assert_sane(&m);
		md_meta_free(&m);
		buf_free(&b);
	}
}
END_TEST

START_TEST(test_meta_deep_multipart)
{
	const int depth = 10000;
	struct md_meta m;
	struct buf b;
	double t;
	int i;

	buf_init(&b, 0);
	for (i = 0; i < depth; i++)
		ck_assert_int_eq(buf_appendf(&b,
			"Content-Type: multipart/mixed; boundary=\"b%05d\"\r\n\r\n"
			"--b%05d\r\n", i, i), 0);
	ck_assert_int_eq(buf_appendf(&b, "\r\ndeepest\r\n"), 0);
	for (i = depth - 1; i >= 0; i--)
		ck_assert_int_eq(buf_appendf(&b, "--b%05d--\r\n", i), 0);
	t = now_s();
	m = meta_of(b.data, b.len);
	t = now_s() - t;
	ck_assert_msg(t < 2.0, "took %.2f s", t);
	/* MD_META_DEPTH_MAX containers, then one flattened leaf */
	ck_assert_uint_eq(max_depth(&m), MD_META_DEPTH_MAX);
	ck_assert_uint_eq(m.n_parts, MD_META_DEPTH_MAX + 1);
	ck_assert(!m.parts[m.n_parts - 1].is_multipart);
	ck_assert(m.parts[m.n_parts - 2].is_multipart);
	/* the flattened part is described as text/plain */
	ck_assert_ptr_nonnull(strstr(m.bodystructure,
				     "(\"text\" \"plain\" (\"charset\" \"us-ascii\")"));
	assert_sane(&m);
	md_meta_free(&m);
	buf_free(&b);
}
END_TEST

START_TEST(test_meta_deep_rfc822)
{
	const int depth = 10000;
	struct md_meta m;
	struct buf b;
	double t;
	int i;

	buf_init(&b, 0);
	for (i = 0; i < depth; i++)
		ck_assert_int_eq(buf_appendf(&b,
			"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n",
			i), 0);
	ck_assert_int_eq(buf_appendf(&b, "Subject: bottom\r\n\r\nbody\r\n"), 0);
	t = now_s();
	m = meta_of(b.data, b.len);
	t = now_s() - t;
	ck_assert_msg(t < 2.0, "took %.2f s", t);
	ck_assert_uint_eq(max_depth(&m), MD_META_DEPTH_MAX);
	ck_assert_uint_eq(m.n_parts, MD_META_DEPTH_MAX + 1);
	ck_assert(!m.parts[m.n_parts - 1].is_message);
	/* every level down to the limit has its envelope */
	ck_assert_ptr_nonnull(strstr(m.bodystructure, "\"level 31\""));
	ck_assert_ptr_null(strstr(m.bodystructure, "\"level 33\""));
	assert_sane(&m);
	md_meta_free(&m);
	buf_free(&b);
}
END_TEST

START_TEST(test_meta_too_many_parts)
{
	const int parts = 1500;
	struct md_meta m;
	struct buf b;
	uint64_t off, len;
	char spec[16];
	int i;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_appendf(&b,
		"Content-Type: multipart/mixed; boundary=p\r\n\r\n"), 0);
	for (i = 0; i < parts; i++)
		ck_assert_int_eq(buf_appendf(&b, "--p\r\n\r\npart %d\r\n", i + 1), 0);
	ck_assert_int_eq(buf_appendf(&b, "--p--\r\n"), 0);
	m = meta_of(b.data, b.len);
	ck_assert_uint_eq(m.n_parts, MD_META_PARTS_MAX);
	/* the last described part ends where the next boundary starts */
	snprintf(spec, sizeof(spec), "%d", MD_META_PARTS_MAX - 1);
	assert_section(&m, b.data, spec, "part 999");
	snprintf(spec, sizeof(spec), "%d", MD_META_PARTS_MAX);
	ck_assert_int_eq(md_meta_section(&m, spec, &off, &len, NULL), 1);
	/* the multipart still covers the whole body */
	ck_assert_uint_eq(m.parts[0].body_off + m.parts[0].body_len, m.size);
	assert_sane(&m);
	md_meta_free(&m);
	buf_free(&b);
}
END_TEST

START_TEST(test_meta_huge_header)
{
	struct md_meta m;
	struct buf b;
	int i;

	/* 300 KiB of header: the Content-Type after 256 KiB is not read,
	 * but the header's range is still right */
	buf_init(&b, 0);
	for (i = 0; i < 3000; i++)
		ck_assert_int_eq(buf_appendf(&b, "X-Filler-%04d: %0*d\r\n", i,
					     80, i), 0);
	ck_assert_int_eq(buf_appendf(&b,
		"Content-Type: multipart/mixed; boundary=h\r\n\r\n"
		"--h\r\n\r\nx\r\n--h--\r\n"), 0);
	ck_assert_uint_gt(b.len, MD_META_HEADER_MAX);
	m = meta_of(b.data, b.len);
	ck_assert_uint_eq(m.n_parts, 1);
	ck_assert_uint_eq(m.parts[0].header_len,
			  (uint64_t)(strstr(b.data, "\r\n\r\n") + 4 - b.data));
	assert_section(&m, b.data, "TEXT", "--h\r\n\r\nx\r\n--h--\r\n");
	assert_sane(&m);
	md_meta_free(&m);
	buf_free(&b);

	/* more than 1000 fields: a Subject after the 1000th is ignored */
	buf_init(&b, 0);
	for (i = 0; i < MD_META_FIELDS_MAX; i++)
		ck_assert_int_eq(buf_appendf(&b, "X-%d: y\r\n", i), 0);
	ck_assert_int_eq(buf_appendf(&b, "Subject: late\r\n\r\nbody\r\n"), 0);
	m = meta_of(b.data, b.len);
	ck_assert_ptr_null(strstr(m.envelope, "late"));
	assert_section(&m, b.data, "TEXT", "body\r\n");
	md_meta_free(&m);
	buf_free(&b);

	/* one 10 MB header line */
	buf_init(&b, 0);
	ck_assert_int_eq(buf_append(&b, "Subject: ", 9), 0);
	for (i = 0; i < 10 * 1024; i++) {
		char kb[1024];

		memset(kb, 'a', sizeof(kb));
		ck_assert_int_eq(buf_append(&b, kb, sizeof(kb)), 0);
	}
	ck_assert_int_eq(buf_appendf(&b, "\r\n\r\nbody\r\n"), 0);
	m = meta_of(b.data, b.len);
	assert_section(&m, b.data, "TEXT", "body\r\n");
	ck_assert_uint_le(m.envelope_len, MD_META_HEADER_MAX + 200);
	md_meta_free(&m);
	buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* headers, ENVELOPE, BINARY */

START_TEST(test_meta_envelope_edge_cases)
{
	static const char msg[] =
		"From: user@host (Comment Name)\r\n"
		"Sender: \r\n"
		"Reply-To: undisclosed-recipients:;\r\n"
		"To: nodomain\r\n"
		"Cc: <@route.example:user@example.com>\r\n"
		"Bcc: \"J\\\"q\" <jq@example.com>\r\n"
		"Subject: =?utf-8?q?caf=C3=A9?=  \t spaced \r\n"
		"In-Reply-To: <a@b>\r\n"
		"Subject: second wins\r\n"
		"\r\n";
	struct md_meta m = meta_str(msg);

	assert_str(m.envelope, m.envelope_len,
		   "(NIL \"second wins\" "
		   "((\"Comment Name\" NIL \"user\" \"host\")) "
		   "((\"Comment Name\" NIL \"user\" \"host\")) "
		   "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
		   "((NIL NIL \"nodomain\" \"MISSING_DOMAIN\")) "
		   "((NIL \"@route.example\" \"user\" \"example.com\")) "
		   "((\"J\\\"q\" NIL \"jq\" \"example.com\")) "
		   "\"<a@b>\" NIL)");
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_eight_bit_literal)
{
	static const char msg[] =
		"Subject: caf\xc3\xa9\r\n"
		"Content-Type: text/plain; name=\"r\xc3\xa9sum\xc3\xa9.txt\"\r\n"
		"\r\nx\r\n";
	struct md_meta m = meta_str(msg);

	/* RFC 3501 §4.3: 8-bit text only in literals */
	ck_assert_ptr_nonnull(strstr(m.envelope, "{5}\r\ncaf\xc3\xa9"));
	ck_assert_ptr_nonnull(strstr(m.bodystructure,
				     "{12}\r\nr\xc3\xa9sum\xc3\xa9.txt"));
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_rfc2231)
{
	static const char msg[] =
		"MIME-Version: 1.0\r\n"
		"Content-Type: application/x-stuff;\r\n"
		" title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
		" title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
		" title*2=\"isn't it!\"\r\n"
		"\r\nx\r\n";
	struct md_meta m = meta_str(msg);

	/* RFC 2231 §3/§4 sections joined, values left encoded */
	ck_assert_ptr_nonnull(strstr(m.bodystructure,
		"(\"title*\" \"us-ascii'en'This%20is%20even%20more%20"
		"%2A%2A%2Afun%2A%2A%2A%20isn't it!\")"));
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_binary)
{
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
		"--B\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"aGVs\r\nbG8=\r\n"
		"--B\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"!!not base64!!\r\n"
		"--B\r\n"
		"Content-Transfer-Encoding: x-uuencode\r\n\r\n"
		"begin 644 x\r\n"
		"--B\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"a=3Db =\r\nc  \r\nd\r\n"
		"--B\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"bad =ZZ\r\n"
		"--B--\r\n";
	struct md_meta m = meta_str(msg);

	ck_assert_uint_eq(m.n_parts, 6);
	ck_assert_int_eq(md_meta_binary_status(&m, 1), MD_BINARY_OK);
	ck_assert_uint_eq(m.parts[1].binary_size, 5);   /* "hello" */
	ck_assert_int_eq(md_meta_binary_status(&m, 2), MD_BINARY_PARSE);
	ck_assert_int_eq(md_meta_binary_status(&m, 3), MD_BINARY_UNKNOWN_CTE);
	ck_assert_uint_eq(m.parts[3].cte, MD_CTE_UNKNOWN);
	ck_assert_int_eq(md_meta_binary_status(&m, 4), MD_BINARY_OK);
	/* "a=b c\r\nd": soft break joined, trailing spaces dropped */
	ck_assert_uint_eq(m.parts[4].binary_size, 8);
	ck_assert_int_eq(md_meta_binary_status(&m, 5), MD_BINARY_PARSE);
	/* the multipart holds an unknown encoding: that is reported */
	ck_assert_int_eq(md_meta_binary_status(&m, 0), MD_BINARY_UNKNOWN_CTE);
	ck_assert_int_eq(md_meta_binary_status(&m, 99), MD_BINARY_PARSE);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_sent_date)
{
	static const struct {
		const char *date;
		int64_t t;
	} cases[] = {
		{ "Fri, 23 Aug 2002 2:32:53 -0400", 1030084373 },
		{ "Mon, 6 Feb 1993 02:53:47 -0800 (PST)", 728996027 },
		/* RFC 5322 §4.3 obs-year */
		{ "Tue, 1 Jul 03 10:52:37 +0200", 1057049557 },
		{ "Tue, 1 Jul 103 10:52:37 +0200", 1057049557 },
		{ "1 Jul 2003 10:52:37 GMT", 1057056757 },
		{ "Tue,\r\n 1 Jul 2003 10:52:37 +0200", 1057049557 },
		{ "       <HR>", 0 },
		{ "", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[256];
		struct md_meta m;

		snprintf(msg, sizeof(msg), "Date: %s\r\n\r\n", cases[i].date);
		m = meta_str(msg);
		ck_assert_msg(m.sent_date == cases[i].t, "%s: %lld", cases[i].date,
			      (long long)m.sent_date);
		md_meta_free(&m);
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* robustness: every truncation of a message */

START_TEST(test_meta_every_prefix)
{
	size_t n = strlen(nested_msg), i;

	for (i = 0; i <= n; i++) {
		struct md_meta m = meta_of(nested_msg, i);

		assert_sane(&m);
		md_meta_free(&m);
	}
	n = strlen(mixed_msg);
	for (i = 0; i <= n; i++) {
		struct md_meta m = meta_of(mixed_msg, i);

		assert_sane(&m);
		md_meta_free(&m);
	}
}
END_TEST

/* Random damage to messages full of MIME syntax: the scanner must stay
 * inside the buffer (ASan) and give sane ranges. */
START_TEST(test_meta_mutations)
{
	static const char alphabet[] = "-\r\n\"\\;=:()<>@,. \t\x80\xff\0b1";
	const char *const seeds[] = { nested_msg, mixed_msg, simple_msg };
	unsigned int seed = 4242;
	int round;

	for (round = 0; round < 6000; round++) {
		const char *src = seeds[round % 3];
		size_t n = strlen(src), cut;
		char *copy = malloc(n + 1);
		int edits = 1 + (int)(rand_r(&seed) % 8), e;
		struct md_meta m;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, src, n);
		for (e = 0; e < edits; e++)
			copy[(size_t)rand_r(&seed) % n] =
				alphabet[(size_t)rand_r(&seed) %
					 (sizeof(alphabet) - 1)];
		cut = (size_t)rand_r(&seed) % (n + 1);
		m = meta_of(copy, cut);
		assert_sane(&m);
		md_meta_free(&m);
		free(copy);
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* pack / unpack */

static void assert_same(const struct md_meta *a, const struct md_meta *b)
{
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_int_eq(a->sent_date, b->sent_date);
	ck_assert_uint_eq(a->n_parts, b->n_parts);
	ck_assert_int_eq(memcmp(a->parts, b->parts,
				a->n_parts * sizeof(*a->parts)), 0);
	ck_assert_uint_eq(a->envelope_len, b->envelope_len);
	ck_assert_int_eq(memcmp(a->envelope, b->envelope, a->envelope_len), 0);
	ck_assert_uint_eq(a->body_len, b->body_len);
	ck_assert_int_eq(memcmp(a->body, b->body, a->body_len), 0);
	ck_assert_uint_eq(a->bodystructure_len, b->bodystructure_len);
	ck_assert_int_eq(memcmp(a->bodystructure, b->bodystructure,
				a->bodystructure_len), 0);
	ck_assert_uint_eq(a->references_len, b->references_len);
	ck_assert((a->references == NULL) == (b->references == NULL));
	if (a->references != NULL)
		ck_assert_str_eq(a->references, b->references);
	ck_assert_uint_eq(a->preview_len, b->preview_len);
	ck_assert((a->preview == NULL) == (b->preview == NULL));
	if (a->preview != NULL)
		ck_assert_str_eq(a->preview, b->preview);
}

START_TEST(test_meta_pack_roundtrip)
{
	struct md_meta m = meta_str(nested_msg), u;
	struct buf b;

	m.sent_date = -12345; /* a date before 1970 survives too */
	buf_init(&b, 0);
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), 0);
	assert_same(&m, &u);
	md_meta_free(&u);
	/* appending to a buffer that already holds data */
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	ck_assert_int_eq(md_meta_unpack(b.data + b.len / 2, b.len / 2, &u), 0);
	assert_same(&m, &u);
	md_meta_free(&u);
	buf_free(&b);
	md_meta_free(&m);
}
END_TEST

/* References (THREAD=REFERENCES) kept unfolded; a version 1 record,
 * written before it was kept, still reads (without it). */
START_TEST(test_meta_references)
{
	static const char msg[] =
		"From: a@example.org\r\n"
		"References: <1@example.org>\r\n"
		"\t<2@example.org>\r\n"
		"  <3@example.org>\r\n"
		"Subject: x\r\n"
		"\r\n"
		"body\r\n";
	struct md_meta m = meta_str(msg), u, none = meta_str(simple_msg);
	struct buf b;

	ck_assert_ptr_nonnull(m.references);
	ck_assert_str_eq(m.references,
			 "<1@example.org> \t<2@example.org>   <3@example.org>");
	ck_assert_ptr_null(none.references);
	buf_init(&b, 0);
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), 0);
	assert_same(&m, &u);
	md_meta_free(&u);
	/* version 1: the version octet 1, no references field nor preview
	 * at the end (a record without either ends in two lengths 0) */
	free(none.preview);
	none.preview = NULL;
	none.preview_len = 0;
	buf_reset(&b);
	ck_assert_int_eq(md_meta_pack(&none, &b), 0);
	ck_assert_int_eq(b.data[0], 2); /* no preview: version 2 */
	ck_assert_int_eq(b.data[b.len - 1], 0);
	b.data[0] = 1;
	ck_assert_int_eq(md_meta_unpack(b.data, b.len - 1, &u), 0);
	assert_same(&none, &u);
	md_meta_free(&u);
	/* a version 1 record with a references field is damaged */
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), -1);
	buf_free(&b);
	md_meta_free(&m);
	md_meta_free(&none);
}
END_TEST

/* RFC 8970 §3 preview: the text of the first text part, decoded */
static void assert_preview(const char *msg, const char *want)
{
	struct md_meta m = meta_str(msg);

	ck_assert_ptr_nonnull(m.preview);
	ck_assert_str_eq(m.preview, want);
	ck_assert_uint_eq(m.preview_len, strlen(want));
	md_meta_free(&m);
}

START_TEST(test_meta_preview)
{
	char *long_msg;
	struct md_meta m;
	size_t i, n = 0;

	assert_preview("Subject: x\r\n\r\n  Hello\r\n\r\n\tworld  \r\n",
		       "Hello world");
	assert_preview("Content-Type: text/plain; charset=iso-8859-1\r\n"
		       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		       "Caf=E9 cr=E8=\r\nme\r\n", "Caf\xc3\xa9 cr\xc3\xa8me");
	assert_preview("Content-Type: text/plain; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: base64\r\n\r\n"
		       "R3LDvMOfZQ==\r\n", "Gr\xc3\xbc\xc3\x9f" "e");
	assert_preview("Content-Type: multipart/alternative; boundary=b\r\n\r\n"
		       "--b\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n"
		       "--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
		       "--b--\r\n", "plain");
	assert_preview("Content-Type: text/html\r\n\r\n<html><head><style>b{}"
		       "</style></head><body><p>a &lt;b&gt;</p><p>c&#233;"
		       "<!-- x --></p><br>d &unknown; <b>e</b>f</body></html>",
		       "a <b> c\xc3\xa9 d &unknown; ef");
	assert_preview("Content-Type: image/png\r\n\r\nPNG\r\n", "");
	/* a message/rfc822 part's text is not the message's */
	assert_preview("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		       "--b\r\nContent-Type: message/rfc822\r\n\r\n"
		       "Subject: inner\r\n\r\ninner text\r\n--b--\r\n", "");
	/* at most 256 characters (not octets), no SP at the end */
	long_msg = malloc(4096);
	ck_assert_ptr_nonnull(long_msg);
	n += (size_t)sprintf(long_msg, "Content-Type: text/plain; "
			     "charset=utf-8\r\n\r\n");
	for (i = 0; i < 300; i++)
		n += (size_t)sprintf(long_msg + n, "\xc3\xa9 ");
	m = meta_str(long_msg);
	ck_assert_uint_eq(m.preview_len, 128 * 2 + 127);
	ck_assert_int_eq(m.preview[m.preview_len - 1], '\xa9');
	md_meta_free(&m);
	free(long_msg);
}
END_TEST

/* a version 2 record (before the preview was kept) reads with preview
 * NULL; one with a preview longer than 256 characters could hold is
 * damaged */
START_TEST(test_meta_preview_version2)
{
	struct md_meta m = meta_str(simple_msg), u;
	struct buf b;

	ck_assert_ptr_nonnull(m.preview);
	buf_init(&b, 0);
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), 0);
	assert_same(&m, &u);
	md_meta_free(&u);
	ck_assert_uint_lt(m.preview_len, 128);
	ck_assert_int_eq(b.data[b.len - m.preview_len - 1], (int)m.preview_len);
	b.data[0] = 2;
	ck_assert_int_eq(md_meta_unpack(b.data, b.len - m.preview_len - 1, &u),
			 0);
	ck_assert_ptr_null(u.preview);
	ck_assert_str_eq(u.envelope, m.envelope);
	/* repacked, it stays without a preview (version 2), not "" */
	buf_reset(&b);
	ck_assert_int_eq(md_meta_pack(&u, &b), 0);
	ck_assert_int_eq(b.data[0], 2);
	md_meta_free(&u);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), 0);
	ck_assert_ptr_null(u.preview);
	md_meta_free(&u);
	/* a preview longer than 256 characters can be is damaged */
	free(m.preview);
	m.preview = malloc(MD_META_PREVIEW_MAX + 2);
	ck_assert_ptr_nonnull(m.preview);
	memset(m.preview, 'a', MD_META_PREVIEW_MAX + 1);
	m.preview[MD_META_PREVIEW_MAX + 1] = '\0';
	m.preview_len = MD_META_PREVIEW_MAX + 1;
	buf_reset(&b);
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), -1);
	buf_free(&b);
	md_meta_free(&m);
}
END_TEST

START_TEST(test_meta_unpack_truncated)
{
	struct md_meta m = meta_str(nested_msg), u;
	struct buf b;
	size_t i;

	buf_init(&b, 0);
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	for (i = 0; i < b.len; i++) {
		/* a private copy of exactly i octets, so ASan sees any read
		 * beyond it */
		char *copy = malloc(i + 1);

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, b.data, i);
		ck_assert_msg(md_meta_unpack(copy, i, &u) == -1,
			      "truncation to %zu accepted", i);
		free(copy);
	}
	ck_assert_int_eq(md_meta_unpack(NULL, 0, &u), -1);
	/* one octet too many */
	ck_assert_int_eq(buf_putc(&b, 0), 0);
	ck_assert_int_eq(md_meta_unpack(b.data, b.len, &u), -1);
	buf_free(&b);
	md_meta_free(&m);
}
END_TEST

static void exercise(const struct md_meta *u)
{
	static const char *const specs[] = {
		"", "HEADER", "TEXT", "1", "2", "2.1", "2.HEADER", "2.TEXT",
		"2.1.MIME", "3.1.2", "1.2.3.4.5", NULL
	};
	uint64_t off, len;
	uint32_t i, part;
	int s;

	for (s = 0; specs[s] != NULL; s++) {
		if (md_meta_section(u, specs[s], &off, &len, &part) == 0) {
			ck_assert_uint_le(off + len, u->size);
			ck_assert_uint_lt(part, u->n_parts);
		}
	}
	for (i = 0; i < u->n_parts; i++)
		(void)md_meta_binary_status(u, i);
}

START_TEST(test_meta_unpack_flips)
{
	struct md_meta m = meta_str(nested_msg), u;
	struct buf b;
	unsigned int seed = 12345;
	int round, accepted = 0;

	buf_init(&b, 0);
	ck_assert_int_eq(md_meta_pack(&m, &b), 0);
	for (round = 0; round < 20000; round++) {
		char *copy = malloc(b.len);
		int flips = 1 + (int)(rand_r(&seed) % 3), f;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, b.data, b.len);
		for (f = 0; f < flips; f++) {
			size_t pos = (size_t)rand_r(&seed) % b.len;

			copy[pos] ^= (char)(1 + rand_r(&seed) % 255);
		}
		if (md_meta_unpack(copy, b.len, &u) == 0) {
			accepted++;
			exercise(&u);
			md_meta_free(&u);
		}
		free(copy);
	}
	/* flips inside the strings keep the record valid: some must pass */
	ck_assert_int_gt(accepted, 0);
	buf_free(&b);
	md_meta_free(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("meta");
	TCase *tc = tcase_create("meta");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_meta_simple_text);
	tcase_add_test(tc, test_meta_empty_message);
	tcase_add_test(tc, test_meta_header_only);
	tcase_add_test(tc, test_meta_bare_lf);
	tcase_add_test(tc, test_meta_multipart_mixed);
	tcase_add_test(tc, test_meta_nested_rfc822);
	tcase_add_test(tc, test_meta_sections_syntax);
	tcase_add_test(tc, test_meta_boundary_quote);
	tcase_add_test(tc, test_meta_missing_final_boundary);
	tcase_add_test(tc, test_meta_multipart_without_parts);
	tcase_add_test(tc, test_meta_cut_header);
	tcase_add_test(tc, test_meta_long_boundary);
	tcase_add_test(tc, test_meta_deep_multipart);
	tcase_add_test(tc, test_meta_deep_rfc822);
	tcase_add_test(tc, test_meta_too_many_parts);
	tcase_add_test(tc, test_meta_huge_header);
	tcase_add_test(tc, test_meta_envelope_edge_cases);
	tcase_add_test(tc, test_meta_eight_bit_literal);
	tcase_add_test(tc, test_meta_rfc2231);
	tcase_add_test(tc, test_meta_binary);
	tcase_add_test(tc, test_meta_sent_date);
	tcase_add_test(tc, test_meta_every_prefix);
	tcase_add_test(tc, test_meta_mutations);
	tcase_add_test(tc, test_meta_pack_roundtrip);
	tcase_add_test(tc, test_meta_references);
	tcase_add_test(tc, test_meta_preview);
	tcase_add_test(tc, test_meta_preview_version2);
	tcase_add_test(tc, test_meta_unpack_truncated);
	tcase_add_test(tc, test_meta_unpack_flips);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
