/* Unit tests of FETCH BINARY and the SEARCH text (maildir/md_decode.c,
 * maildir/md_text.c): the transfer decoders on hand-made input (also fed
 * split at every offset), their agreement with the BINARY sizes md_meta.c
 * counts at delivery, and md_msg_binary() / md_msg_text() on messages
 * delivered into a temporary store. */
#include "md_decode.h"
#include "store_test.h"

#include <check.h>

/* ------------------------------------------------------------------ */
/* decoders */

struct dec_result {
	char *data;
	size_t len;
	bool bad;
};

/* decode s whole, or in two slices split at `split` */
static struct dec_result dec(enum md_cte cte, bool lenient, const char *s,
			     size_t n, size_t split)
{
	struct md_decoder d;
	struct dec_result r;
	struct buf out;

	buf_init(&out, 0);
	md_decoder_init(&d, cte, lenient);
	if (split > n)
		split = n;
	ck_assert_int_eq(md_decoder_feed(&d, s, split, &out), 0);
	ck_assert_int_eq(md_decoder_feed(&d, s + split, n - split, &out), 0);
	ck_assert_int_eq(md_decoder_finish(&d, &out), 0);
	ck_assert_int_eq(buf_cstr(&out), 0);
	r.data = out.data;
	r.len = out.len;
	r.bad = d.bad;
	return r;
}

/* strict decoding of s: want (NULL: must be bad), at every split point */
static void check_dec(enum md_cte cte, const char *s, const char *want)
{
	size_t n = strlen(s);

	for (size_t split = 0; split <= n; split++) {
		struct dec_result r = dec(cte, false, s, n, split);

		if (want == NULL) {
			ck_assert_msg(r.bad, "\"%s\" (split %zu) should be bad", s,
				      split);
		} else {
			ck_assert_msg(!r.bad, "\"%s\" (split %zu) is bad", s, split);
			ck_assert_msg(r.len == strlen(want) &&
				      memcmp(r.data, want, r.len) == 0,
				      "\"%s\" (split %zu): got \"%s\", want \"%s\"",
				      s, split, r.data, want);
		}
		free(r.data);
	}
}

START_TEST(test_text_base64)
{
	check_dec(MD_CTE_BASE64, "aGVsbG8=", "hello");
	check_dec(MD_CTE_BASE64, "aGVs\r\nbG8g\r\nd29y bGQ=\r\n", "hello world");
	check_dec(MD_CTE_BASE64, "aGk=", "hi");
	check_dec(MD_CTE_BASE64, "aA==", "h");
	check_dec(MD_CTE_BASE64, "aA=\r\n=\r\n", "h");
	check_dec(MD_CTE_BASE64, "", "");
	/* broken: a symbol outside the alphabet, a missing quantum, data
	 * after the padding, padding too early, half padding */
	check_dec(MD_CTE_BASE64, "aGVs*bG8=", NULL);
	check_dec(MD_CTE_BASE64, "aGVsbG", NULL);
	check_dec(MD_CTE_BASE64, "aGk=aGk=", NULL);
	check_dec(MD_CTE_BASE64, "a===", NULL);
	check_dec(MD_CTE_BASE64, "aA=", NULL);
	check_dec(MD_CTE_BASE64, "aA=x", NULL);
}
END_TEST

START_TEST(test_text_base64_binary_octets)
{
	struct dec_result r = dec(MD_CTE_BASE64, false, "AAEC/w==", 8, 3);

	ck_assert(!r.bad);
	ck_assert_uint_eq(r.len, 4);
	ck_assert(memcmp(r.data, "\x00\x01\x02\xff", 4) == 0);
	free(r.data);
}
END_TEST

START_TEST(test_text_base64_lenient)
{
	/* SEARCH: junk is skipped, decoding goes on after padding */
	struct dec_result r = dec(MD_CTE_BASE64, true, "aGk=*aGk=", 9, 4);

	ck_assert(!r.bad);
	ck_assert_str_eq(r.data, "hihi");
	free(r.data);
}
END_TEST

START_TEST(test_text_qp)
{
	/* soft line breaks, with and without CR, whitespace before them */
	check_dec(MD_CTE_QP, "abc=\r\ndef", "abcdef");
	check_dec(MD_CTE_QP, "abc=\ndef", "abcdef");
	check_dec(MD_CTE_QP, "abc= \t\r\ndef", "abcdef");
	/* hex, lowercase too */
	check_dec(MD_CTE_QP, "caf=C3=A9 caf=c3=a9", "caf\xc3\xa9 caf\xc3\xa9");
	/* line breaks become CRLF, trailing whitespace goes (RFC 2045 §6.7
	 * rule 3), inner whitespace stays */
	check_dec(MD_CTE_QP, "a b  \r\nc\td\t\nend  ", "a b\r\nc\td\r\nend");
	check_dec(MD_CTE_QP, "=3D=20\r\n", "= \r\n");
	/* broken: "=" at the very end, "=" + junk, one hex digit, CR alone */
	check_dec(MD_CTE_QP, "abc=", NULL);
	check_dec(MD_CTE_QP, "abc=\r", NULL);
	check_dec(MD_CTE_QP, "a=zz", NULL);
	check_dec(MD_CTE_QP, "a=4", NULL);
	check_dec(MD_CTE_QP, "a=4x", NULL);
	check_dec(MD_CTE_QP, "a\rb", NULL);
}
END_TEST

START_TEST(test_text_qp_broken_passes_through)
{
	struct dec_result r = dec(MD_CTE_QP, true, "a=zz b=4x c\rd=", 14, 5);

	ck_assert(r.bad);
	ck_assert_str_eq(r.data, "a=zz b=4x c\rd=");
	free(r.data);
}
END_TEST

START_TEST(test_text_q_word)
{
	struct buf out;

	buf_init(&out, 0);
	ck_assert_int_eq(md_decode_q_word("a_b=3Dc=E9=", 11, &out), 0);
	ck_assert_int_eq(buf_cstr(&out), 0);
	ck_assert_str_eq(out.data, "a b=c\xe9=");
	buf_free(&out);
}
END_TEST

/* Folding (case + NFKD) is idempotent over the whole Basic Multilingual
 * Plane, so a needle folded once matches text folded once. */
START_TEST(test_text_casefold_fixed_point)
{
	struct buf a, b;

	buf_init(&a, 0);
	buf_init(&b, 0);
	for (uint32_t c = 1; c < 0x10000; c++) {
		char u[4];
		size_t n;

		if (c >= 0xd800 && c <= 0xdfff)
			continue;
		n = c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
		if (n == 1) {
			u[0] = (char)c;
		} else if (n == 2) {
			u[0] = (char)(0xc0 | (c >> 6));
			u[1] = (char)(0x80 | (c & 0x3f));
		} else {
			u[0] = (char)(0xe0 | (c >> 12));
			u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
			u[2] = (char)(0x80 | (c & 0x3f));
		}
		buf_reset(&a);
		buf_reset(&b);
		ck_assert_int_eq(md_text_casefold(u, n, &a), 0);
		ck_assert_int_eq(md_text_casefold(a.data, a.len, &b), 0);
		ck_assert_msg(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
			      "U+%04X: folding is not a fixed point", c);
	}
	/* a few pairs */
	buf_reset(&a);
	buf_reset(&b);
	ck_assert_int_eq(md_text_casefold("\xce\x86\xd0\x81\xc5\xb8", 6, &a), 0);
	ck_assert_int_eq(md_text_casefold("\xce\xac\xd1\x91\xc3\xbf", 6, &b), 0);
	ck_assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

/* The strict decoders produce exactly the BINARY.SIZE md_meta.c counted
 * at delivery, and fail exactly where it judged the part broken. */
START_TEST(test_text_decoders_agree_with_meta)
{
	static const char *const bodies[] = {
		"aGVsbG8=\r\n", "aGVs bG8g\r\nd29y\r\nbGQ=\r\n", "aGVsbG", "a===",
		"YQ==\r\n\r\n", "abc=\r\ndef\r\n", "a b  \r\nc\r\n", "x=41=4=\r\n",
		"end=", "a=zz\r\n", "l\rx\r\n", "soft= \t\r\nbreak", "bare\nlf\n",
		"    \r\n", "=\r\n", "",
	};
	static const char *const ctes[] = { "base64", "quoted-printable" };

	for (size_t c = 0; c < 2; c++) {
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			char msg[512];
			struct md_meta m;
			struct dec_result r;
			int n = snprintf(msg, sizeof(msg),
					 "Subject: x\r\nContent-Transfer-Encoding: "
					 "%s\r\n\r\n%s", ctes[c], bodies[i]);

			ck_assert_int_eq(md_meta_compute(msg, (size_t)n, &m), 0);
			r = dec(c == 0 ? MD_CTE_BASE64 : MD_CTE_QP, false,
				msg + m.parts[0].body_off, m.parts[0].body_len, 2);
			ck_assert_msg(r.bad == !m.parts[0].binary_ok,
				      "%s \"%s\": decoder bad %d, meta ok %d",
				      ctes[c], bodies[i], r.bad,
				      m.parts[0].binary_ok);
			if (!r.bad)
				ck_assert_msg(r.len == m.parts[0].binary_size,
					      "%s \"%s\": %zu octets, meta %llu",
					      ctes[c], bodies[i], r.len,
					      (unsigned long long)m.parts[0].binary_size);
			free(r.data);
			md_meta_free(&m);
		}
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* through the store */

struct fixture {
	struct md_store *s;
	struct md_user *u;
	struct md_mailbox *mb;
};

static void fx_open(struct fixture *fx)
{
	fx->s = open_store();
	ck_assert_int_eq(md_user_open(fx->s, ADDR, MD_USER_CREATE, &fx->u), MD_OK);
	ck_assert_int_eq(md_mailbox_open(fx->u, "INBOX", &fx->mb, NULL), MD_OK);
}

static void fx_close(struct fixture *fx)
{
	md_mailbox_close(fx->mb);
	md_user_close(fx->u);
	md_store_close(fx->s);
}

static struct md_msg fx_msg(struct fixture *fx, const char *text)
{
	struct md_msg m;
	uint32_t uid;

	ck_assert_int_eq(deliver(fx->s, ADDR, NULL, text, 0, 0, &uid), MD_OK);
	ck_assert_int_eq(md_mailbox_sync(fx->mb, NULL), MD_OK);
	ck_assert_int_eq(md_msg_get(fx->mb, uid, MD_READ_META | MD_READ_PATH, &m),
			 MD_OK);
	return m;
}

static struct md_text *fx_text(struct fixture *fx, struct md_msg *m)
{
	struct md_text *t;

	ck_assert_int_eq(md_msg_text(fx->mb, m, MD_TEXT_HEADERS | MD_TEXT_BODY,
				     &t), MD_OK);
	return t;
}

static void assert_binary(struct fixture *fx, struct md_msg *m,
			  const char *spec, const char *want)
{
	struct md_section sec;
	char *data;
	size_t len;

	ck_assert_int_eq(md_msg_binary(fx->mb, m, spec, &data, &len), MD_OK);
	ck_assert_msg(len == strlen(want) && memcmp(data, want, len) == 0,
		      "BINARY[%s]: got \"%s\", want \"%s\"", spec, data, want);
	if (spec[0] != '\0' && md_msg_section(m, spec, &sec) == 0)
		ck_assert_uint_eq(sec.decoded_size, len);
	free(data);
}

static const char *const msg_mixed =
	"From: a@example.test\n"
	"Subject: parts\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=b\n"
	"\n"
	"--b\n"
	"Content-Type: text/plain; charset=iso-8859-1\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"Gr=FC=DFe, soft=\n"
	"break\n"
	"--b\n"
	"Content-Type: application/octet-stream\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"AAEC/w==\n"
	"--b\n"
	"Content-Type: text/plain\n"
	"Content-Transfer-Encoding: x-uuencode\n"
	"\n"
	"begin 644 x\n"
	"--b\n"
	"Content-Type: text/plain\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"aGVsbG8*\n"
	"--b--\n";

START_TEST(test_text_binary_parts)
{
	struct md_section sec;
	struct fixture fx;
	struct md_msg m;
	char *data;
	size_t len;

	fx_open(&fx);
	m = fx_msg(&fx, msg_mixed);
	assert_binary(&fx, &m, "1", "Gr\xfc\xdf" "e, softbreak");
	ck_assert_int_eq(md_msg_binary(fx.mb, &m, "2", &data, &len), MD_OK);
	ck_assert_uint_eq(len, 4);
	ck_assert(memcmp(data, "\x00\x01\x02\xff", 4) == 0);
	free(data);
	/* RFC 3516 §4.3: unknown encoding, broken content */
	ck_assert_int_eq(md_msg_binary(fx.mb, &m, "3", &data, &len), MD_BADMSG);
	ck_assert_ptr_null(data);
	ck_assert_int_eq(md_msg_section(&m, "3", &sec), 0);
	ck_assert_int_eq(sec.encoding, MD_TE_UNKNOWN);
	ck_assert_int_eq(md_msg_binary(fx.mb, &m, "4", &data, &len), MD_BADMSG);
	ck_assert_int_eq(md_msg_section(&m, "4", &sec), 0);
	ck_assert_int_eq(sec.encoding, MD_TE_BASE64);
	ck_assert(!sec.decodable);
	/* a part that does not exist is an empty string */
	ck_assert_int_eq(md_msg_binary(fx.mb, &m, "9", &data, &len), MD_OK);
	ck_assert_uint_eq(len, 0);
	free(data);
	/* not section-binary syntax */
	ck_assert_int_eq(md_msg_binary(fx.mb, &m, "1.MIME", &data, &len), MD_BADNAME);
	ck_assert_int_eq(md_msg_binary(fx.mb, &m, "TEXT", &data, &len), MD_BADNAME);
	md_msg_clear(&m);
	fx_close(&fx);
}
END_TEST

START_TEST(test_text_binary_container)
{
	static const char *const text =
		"Subject: nested\n"
		"Content-Type: multipart/mixed; boundary=o\n"
		"\n"
		"--o\n"
		"Content-Type: multipart/alternative; boundary=i\n"
		"\n"
		"--i\n"
		"Content-Transfer-Encoding: quoted-printable\n"
		"Content-Type: text/plain\n"
		"\n"
		"a=3Db\n"
		"--i\n"
		"Content-Type: text/html\n"
		"\n"
		"<p>x</p>\n"
		"--i--\n"
		"--o--\n";
	struct fixture fx;
	struct md_msg m;

	fx_open(&fx);
	m = fx_msg(&fx, text);
	/* the encoded part inside is decoded, its field moves to the end */
	assert_binary(&fx, &m, "1",
		      "--i\r\n"
		      "Content-Type: text/plain\r\n"
		      "Content-Transfer-Encoding: binary\r\n"
		      "\r\n"
		      "a=b\r\n"
		      "--i\r\n"
		      "Content-Type: text/html\r\n"
		      "\r\n"
		      "<p>x</p>\r\n"
		      "--i--\r\n"); /* the line break after a close
				       * delimiter is the part's (as BODY[1]) */
	assert_binary(&fx, &m, "1.2", "<p>x</p>");
	md_msg_clear(&m);
	fx_close(&fx);
}
END_TEST

START_TEST(test_text_binary_whole_message)
{
	struct fixture fx;
	struct md_msg m;

	fx_open(&fx);
	m = fx_msg(&fx, "Subject: b\nContent-Transfer-Encoding: base64\n"
		   "X-After: 1\n\naGVsbG8=\n");
	assert_binary(&fx, &m, "1", "hello");
	assert_binary(&fx, &m, "", "Subject: b\r\nX-After: 1\r\n"
		      "Content-Transfer-Encoding: binary\r\n\r\nhello");
	md_msg_clear(&m);
	m = fx_msg(&fx, "Subject: plain\n\nbody\n");
	assert_binary(&fx, &m, "", "Subject: plain\r\n\r\nbody\r\n");
	assert_binary(&fx, &m, "1", "body\r\n");
	md_msg_clear(&m);
	fx_close(&fx);
}
END_TEST

START_TEST(test_text_encoded_words)
{
	struct fixture fx;
	struct md_msg m;
	struct md_text *t;

	fx_open(&fx);
	m = fx_msg(&fx,
		   "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jm@example.test>\n"
		   "To: \"Bob\" <bob@Example.test>\n"
		   "Subject: =?UTF-8?B?w4TDliBHcsO8w59l?=\n"
		   " =?UTF-8?B?IGF1cw==?= Berlin\n"
		   "X-Empty:\n"
		   "X-Two: =?iso-8859-1?q?caf=E9?= =?utf-8?q?_ol=C3=A9?= end\n"
		   "X-Split: =?utf-8?q?=C3?=  =?utf-8?q?=A4?= x =?bogus?q?=FF?=\n"
		   "\n"
		   "body\n");
	t = fx_text(&fx, &m);
	/* B in UTF-8, folded line, two words joined */
	ck_assert(md_text_header_contains(t, "subject", "\xc3\x84\xc3\x96 "
					  "Gr\xc3\xbc\xc3\x9f" "e aus Berlin"));
	/* case-insensitive beyond ASCII: ÄÖ vs äö */
	ck_assert(md_text_header_contains(t, "SUBJECT", "\xc3\xa4\xc3\xb6"));
	ck_assert(md_text_header_contains(t, "Subject", "\xc3\x84\xc3\x96"));
	ck_assert(!md_text_header_contains(t, "subject", "=?UTF-8?"));
	/* Q in ISO-8859-1, display name and address */
	ck_assert(md_text_header_contains(t, "from", "j\xc3\xb6rg m\xc3\xbcller"));
	ck_assert(md_text_header_contains(t, "from", "JM@EXAMPLE"));
	ck_assert(md_text_header_contains(t, "to", "bob@example.test"));
	ck_assert(!md_text_header_contains(t, "cc", "bob"));
	/* whitespace between two words goes, whatever their charsets; a
	 * character split between words; an unknown charset as it stands */
	ck_assert(md_text_header_contains(t, "x-two", "caf\xc3\xa9 ol\xc3\xa9 end"));
	ck_assert(md_text_header_contains(t, "x-split", "\xc3\xa4 x \xff"));
	/* i;unicode-casemap: decomposed on both sides (RFC 5051) */
	ck_assert(md_text_header_contains(t, "subject", "gru"));
	ck_assert(md_text_header_contains(t, "subject", "A\xcc\x88"));
	ck_assert(!md_text_header_contains(t, "subject", "gro"));
	/* an empty needle: the field exists */
	ck_assert(md_text_header_contains(t, "x-empty", ""));
	ck_assert(!md_text_header_contains(t, "x-missing", ""));
	/* TEXT's header side holds names too */
	ck_assert(md_text_header_contains(t, NULL, "x-empty:"));
	ck_assert(md_text_header_contains(t, NULL, "m\xc3\xbcller"));
	ck_assert(!md_text_body_contains(t, "m\xc3\xbcller"));
	ck_assert(md_text_body_contains(t, "BODY"));
	md_text_free(t);
	md_msg_clear(&m);
	fx_close(&fx);
}
END_TEST

START_TEST(test_text_bodies)
{
	struct fixture fx;
	struct md_msg m;
	struct md_text *t;

	fx_open(&fx);
	m = fx_msg(&fx, msg_mixed);
	t = fx_text(&fx, &m);
	/* QP in ISO-8859-1, converted; a needle across a soft line break */
	ck_assert(md_text_body_contains(t, "GR\xc3\x9c\xc3\x9f" "E"));
	ck_assert(md_text_body_contains(t, "softbreak"));
	ck_assert(!md_text_body_contains(t, "soft="));
	/* not text (application/...), or not decodable (x-uuencode) */
	ck_assert(!md_text_body_contains(t, "begin 644"));
	/* MIME headers count for TEXT */
	ck_assert(md_text_header_contains(t, NULL, "application/octet-stream"));
	ck_assert(!md_text_header_contains(t, "content-type", "octet"));
	md_text_free(t);
	/* headers alone: the message header only, no body */
	ck_assert_int_eq(md_msg_text(fx.mb, &m, MD_TEXT_HEADERS, &t), MD_OK);
	ck_assert(md_text_header_contains(t, "subject", "PARTS"));
	ck_assert(md_text_header_contains(t, NULL, "multipart/mixed"));
	ck_assert(!md_text_header_contains(t, NULL, "application/octet-stream"));
	ck_assert(!md_text_body_contains(t, "softbreak"));
	md_text_free(t);
	md_msg_clear(&m);

	/* base64 in ISO-8859-1; Greek and Cyrillic folding; an unknown
	 * charset is searched as it stands */
	m = fx_msg(&fx,
		   "Content-Type: multipart/mixed; boundary=z\n\n"
		   "--z\n"
		   "Content-Type: text/plain; charset=\"ISO-8859-1\"\n"
		   "Content-Transfer-Encoding: base64\n\n"
		   "xGhyZW4gZvxyIFf2bGZl\n"
		   "--z\n"
		   "Content-Type: text/plain; charset=utf-8\n"
		   "Content-Transfer-Encoding: 8bit\n\n"
		   "\xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 "
		   "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2\n"
		   "--z\n"
		   "Content-Type: text/plain; charset=x-no-such-charset\n\n"
		   "raw \xff bytes \xc7\x8e \xef\xac\x81le 5 \xe2\x84\xaa "
		   "cafe\xcc\x81\n"
		   "--z--\n");
	t = fx_text(&fx, &m);
	ck_assert(md_text_body_contains(t, "\xc3\xa4hren f\xc3\xbcr w\xc3\xb6lfe"));
	ck_assert(md_text_body_contains(t, "\xce\xba\xce\xb1\xce\xbb\xce\xb7"
					"\xce\xbc\xce\xad\xcf\x81\xce\xb1"));
	ck_assert(md_text_body_contains(t, "\xce\x9a\xce\x91\xce\x9b"));
	ck_assert(md_text_body_contains(t, "\xd0\xbf\xd1\x80\xd0\xb8"
					"\xd0\xb2\xd0\xb5\xd1\x82"));
	ck_assert(md_text_body_contains(t, "RAW \xff"));
	/* Latin Extended-B case through decomposition, a ligature, the
	 * Kelvin sign, a precomposed needle for a decomposed text */
	ck_assert(md_text_body_contains(t, "\xc7\x8d"));
	ck_assert(md_text_body_contains(t, "FILE"));
	ck_assert(md_text_body_contains(t, "5 k"));
	ck_assert(md_text_body_contains(t, "caf\xc3\xa9"));
	ck_assert(md_text_body_contains(t, ""));
	md_text_free(t);
	md_msg_clear(&m);
	fx_close(&fx);
}
END_TEST

/* SEARCH cases where RFC 5051 i;unicode-casemap (I18NLEVEL=1) decides:
 * titlecase, then NFKD, for every script. */
START_TEST(test_text_casemap_rfc5051)
{
	struct fixture fx;
	struct md_msg m;
	struct md_text *t;

	fx_open(&fx);
	m = fx_msg(&fx, "Subject: Stra\xc3\x9f" "e\n"
			"Content-Type: text/plain; charset=utf-8\n\n"
			"\xce\xa3\xce\x9f\xce\xa6\xce\x9f\xce\xa3 " /* ΣΟΦΟΣ */
			"\xcf\x83\xce\xbf\xcf\x86\xce\xbf\xcf\x82 " /* σοφος, final ς */
			"Cre\xcc\x80me " /* e + U+0300 */
			"BR\xc3\x9bL\xc3\x89" "E\n");                      /* Û É precomposed */
	t = fx_text(&fx, &m);
	/* ß has no titlecase mapping: it is not "SS" nor "ss" */
	ck_assert(md_text_header_contains(t, "subject", "STRA\xc3\x9f" "E"));
	ck_assert(!md_text_header_contains(t, "subject", "strasse"));
	ck_assert(!md_text_header_contains(t, "subject", "STRASSE"));
	ck_assert(md_text_header_contains(t, "subject", "stra"));
	/* Greek: Σ, σ and final ς are one letter */
	ck_assert(md_text_body_contains(t, "\xcf\x83\xce\xbf\xcf\x86\xce\xbf\xcf\x83 "));
	ck_assert(md_text_body_contains(t, "\xce\xa3\xce\x9f\xce\xa6\xce\x9f\xcf\x82 "
					"\xce\xa3\xce\x9f\xce\xa6\xce\x9f\xce\xa3"));
	/* accents: precomposed and decomposed are one text, either side */
	ck_assert(md_text_body_contains(t, "CR\xc3\x88ME"));
	ck_assert(md_text_body_contains(t, "cre\xcc\x80me"));
	ck_assert(md_text_body_contains(t, "bru\xcc\x82le\xcc\x81" "e"));
	ck_assert(md_text_body_contains(t, "br\xc3\xbbl\xc3\xa9" "e"));
	/* the text is decomposed: the base letter is found before its
	 * combining mark, but a word does not match across the mark, and
	 * another accent is another letter */
	ck_assert(md_text_body_contains(t, "CRE"));
	ck_assert(!md_text_body_contains(t, "creme"));
	ck_assert(!md_text_body_contains(t, "cr\xc3\xa9me"));
	md_text_free(t);
	md_msg_clear(&m);

	m = fx_msg(&fx, "Subject: x\n"
			"Content-Type: text/plain; charset=utf-8\n\n"
			"\xc4\xb1 "                                 /* dotless i */
			"\xe1\xba\x9e "                             /* capital sharp s */
			"\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3 "  /* fullwidth ABC */
			"\xf0\x9d\x90\x80\xf0\x9d\x90\x81 "      /* mathematical bold AB */
			"\xed\x95\x9c\xea\xb5\xad "                /* Hangul */
			"\xd4\xb2\xd4\xb1\xd5\x90\xd4\xb5\xd5\x8e " /* Armenian */
			"\xe1\x8e\xa0 "                             /* Cherokee A */
			"\xc6\x8f\n");                              /* schwa */
	t = fx_text(&fx, &m);
	/* U+0131's titlecase is I */
	ck_assert(md_text_body_contains(t, "i \xe1\xba\x9e"));
	ck_assert(md_text_body_contains(t, "I "));
	/* U+1E9E and U+00DF have no titlecase but themselves: two letters */
	ck_assert(!md_text_body_contains(t, "\xc3\x9f"));
	ck_assert(!md_text_body_contains(t, "ss "));
	/* NFKD: fullwidth and mathematical letters are letters */
	ck_assert(md_text_body_contains(t, "abc ab "));
	/* a Hangul syllable is its jamo: precomposed or not, one text */
	ck_assert(md_text_body_contains(t, "\xed\x95\x9c\xea\xb5\xad"));
	ck_assert(md_text_body_contains(t, "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"));
	/* case beyond Latin, Greek and Cyrillic */
	ck_assert(md_text_body_contains(t, "\xd5\xa2\xd5\xa1\xd6\x80\xd5\xa5\xd5\xbe"));
	ck_assert(md_text_body_contains(t, "\xea\xad\xb0"));
	ck_assert(md_text_body_contains(t, "\xc9\x99"));
	md_text_free(t);
	md_msg_clear(&m);
	fx_close(&fx);
}
END_TEST

START_TEST(test_text_body_limit)
{
	/* beyond MD_TEXT_BODY_MAX the rest is not searched */
	size_t n = MD_TEXT_BODY_MAX + 4096;
	char *text = malloc(n + 64);
	struct fixture fx;
	struct md_msg m;
	struct md_text *t;
	int h;

	ck_assert_ptr_nonnull(text);
	h = snprintf(text, 64, "Subject: big\n\nstart ");
	memset(text + h, 'x', n);
	strcpy(text + h + n, " needle-at-end\n");
	fx_open(&fx);
	m = fx_msg(&fx, text);
	t = fx_text(&fx, &m);
	ck_assert(md_text_body_contains(t, "START"));
	ck_assert(!md_text_body_contains(t, "needle-at-end"));
	md_text_free(t);
	md_msg_clear(&m);
	fx_close(&fx);
	free(text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("decode");
	TCase *ts = tcase_create("store");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_text_base64);
	tcase_add_test(tc, test_text_base64_binary_octets);
	tcase_add_test(tc, test_text_base64_lenient);
	tcase_add_test(tc, test_text_qp);
	tcase_add_test(tc, test_text_qp_broken_passes_through);
	tcase_add_test(tc, test_text_q_word);
	tcase_add_test(tc, test_text_decoders_agree_with_meta);
	tcase_add_test(tc, test_text_casefold_fixed_point);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(ts, setup, teardown);
	tcase_add_test(ts, test_text_binary_parts);
	tcase_add_test(ts, test_text_binary_container);
	tcase_add_test(ts, test_text_binary_whole_message);
	tcase_add_test(ts, test_text_encoded_words);
	tcase_add_test(ts, test_text_bodies);
	tcase_add_test(ts, test_text_casemap_rfc5051);
	tcase_add_test(ts, test_text_body_limit);
	suite_add_tcase(s, ts);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
