/* protocols/smtp DKIM: the canonicalisation examples of RFC 6376 §3.4.5,
 * body canonicalisation fed split at every pair of offsets (it must give
 * the same bytes and the same bh=), the empty-body hashes of §3.4.3/§3.4.4,
 * l= counting, relaxed header unfolding, key generation and loading, and
 * the signer fed at every split point (RSA PKCS#1 v1.5 and Ed25519 are
 * deterministic, so the fields must be identical), and the verifier on
 * the signer's output fed at every split point.  Independent verification
 * is tests/integration/dkim_verify.py (and smtp_inbound.py the other way
 * round: python3-dkim signs, Postern verifies). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "base64.h"
#include "config.h"
#include "dkim.h"
#include "smtp_dns.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------ */

static void sink_buf(void *ctx, const char *data, size_t len)
{
	ck_assert_int_eq(buf_append(ctx, data, len), 0);
}

/* Canonicalise body in up to three pieces cut at a and b. */
static void canon_body3(enum dkim_canon c, const char *in, size_t len, size_t a, size_t b,
			struct buf *out)
{
	struct dkim_body_canon *bc = malloc(sizeof(*bc));

	ck_assert_ptr_nonnull(bc);
	buf_reset(out);
	dkim_body_canon_init(bc, c, sink_buf, out);
	dkim_body_canon_update(bc, in, a);
	dkim_body_canon_update(bc, in + a, b - a);
	dkim_body_canon_update(bc, in + b, len - b);
	dkim_body_canon_finish(bc);
	free(bc);
}

/* Every pair of split points gives `want` exactly. */
static void check_body(enum dkim_canon c, const char *in, const char *want)
{
	size_t len = strlen(in), wlen = strlen(want);
	struct buf out;

	buf_init(&out, 0);
	for (size_t a = 0; a <= len; a++)
		for (size_t b = a; b <= len; b++) {
			canon_body3(c, in, len, a, b, &out);
			if (out.len != wlen || (wlen > 0 && memcmp(out.data, want, wlen) != 0))
				ck_abort_msg("%s body of \"%s\" split at %zu,%zu: got \"%.*s\"",
					     c == DKIM_CANON_SIMPLE ? "simple" : "relaxed", in, a, b,
					     (int)out.len, out.data != NULL ? out.data : "");
		}
	buf_free(&out);
}

static void check_header(enum dkim_canon c, const char *in, const char *want)
{
	struct buf out;

	buf_init(&out, 0);
	ck_assert_int_eq(dkim_canon_header(c, in, strlen(in), &out), 0);
	ck_assert_int_eq(buf_cstr(&out), 0);
	ck_assert_str_eq(out.data, want);
	buf_free(&out);
}

static void body_hash_b64(enum dkim_canon c, int64_t limit, const char *in, size_t chunk,
			  char *b64, uint64_t *canonical_r, uint64_t *hashed_r)
{
	struct dkim_body_hash *bh = malloc(sizeof(*bh));
	unsigned char hash[DKIM_HASH_LEN];
	size_t len = strlen(in);

	ck_assert_ptr_nonnull(bh);
	ck_assert_int_eq(dkim_body_hash_init(bh, c, limit), 0);
	for (size_t pos = 0; pos < len; pos += chunk)
		dkim_body_hash_update(bh, in + pos, len - pos < chunk ? len - pos : chunk);
	ck_assert_int_eq(dkim_body_hash_final(bh, hash), 0);
	base64_encode(hash, sizeof(hash), b64);
	if (canonical_r != NULL)
		*canonical_r = bh->canonical_len;
	if (hashed_r != NULL)
		*hashed_r = bh->hashed_len;
	dkim_body_hash_free(bh);
	free(bh);
}

/* ---- RFC 6376 §3.4.5 ---------------------------------------------------- */

START_TEST(test_dkim_rfc6376_example)
{
	/* the example's header fields, each without its CRLF */
	static const char *const hdr[] = { "A: X", "B : Y\t\r\n\tZ  " };
	static const char body[] = " C \r\nD \t E\r\n\r\n\r\n";

	check_header(DKIM_CANON_RELAXED, hdr[0], "a:X\r\n");
	check_header(DKIM_CANON_RELAXED, hdr[1], "b:Y Z\r\n");
	check_header(DKIM_CANON_SIMPLE, hdr[0], "A: X\r\n");
	check_header(DKIM_CANON_SIMPLE, hdr[1], "B : Y\t\r\n\tZ  \r\n");
	check_body(DKIM_CANON_RELAXED, body, " C\r\nD E\r\n");
	check_body(DKIM_CANON_SIMPLE, body, " C \r\nD \t E\r\n");
}
END_TEST

/* ---- body rules ----------------------------------------------------------- */

START_TEST(test_dkim_body_cases)
{
	static const struct {
		const char *in, *simple, *relaxed;
	} cases[] = {
		/* §3.4.3 / §3.4.4: empty body */
		{ "", "\r\n", "" },
		{ "\r\n", "\r\n", "" },
		{ "\r\n\r\n\r\n", "\r\n", "" },
		/* no CRLF at the end: one is added */
		{ "abc", "abc\r\n", "abc\r\n" },
		{ "a\r\nb", "a\r\nb\r\n", "a\r\nb\r\n" },
		/* trailing empty lines go, inner ones stay */
		{ "\r\n\r\nx\r\n\r\n\r\n", "\r\n\r\nx\r\n", "\r\n\r\nx\r\n" },
		{ "x\r\n\r\ny\r\n", "x\r\n\r\ny\r\n", "x\r\n\r\ny\r\n" },
		/* WSP: runs to one SP, none at the end of a line (relaxed) */
		{ "a \t b  \r\n", "a \t b  \r\n", "a b\r\n" },
		{ "  lead\r\n", "  lead\r\n", " lead\r\n" },
		{ "x\r\n \r\n\t\r\ny\r\n", "x\r\n \r\n\t\r\ny\r\n", "x\r\n\r\n\r\ny\r\n" },
		/* a line of WSP only at the end is an empty line (relaxed) */
		{ "x\r\n \t \r\n", "x\r\n \t \r\n", "x\r\n" },
		{ " ", " \r\n", "" },
		{ "x \t", "x \t\r\n", "x\r\n" },
		/* lone CR and LF are body bytes, not line ends */
		{ "a\rb\r\n", "a\rb\r\n", "a\rb\r\n" },
		{ "a\nb", "a\nb\r\n", "a\nb\r\n" },
		{ "a\r", "a\r\r\n", "a\r\r\n" },
		{ "\r\r\n", "\r\r\n", "\r\r\n" },
		{ "a \r\n\r", "a \r\n\r\r\n", "a\r\n\r\r\n" },
		/* 8-bit bytes pass unchanged */
		{ "gr\xc3\xbc\xc3\x9f \xe2\x82\xac\r\n", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac\r\n",
		  "gr\xc3\xbc\xc3\x9f \xe2\x82\xac\r\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check_body(DKIM_CANON_SIMPLE, cases[i].in, cases[i].simple);
		check_body(DKIM_CANON_RELAXED, cases[i].in, cases[i].relaxed);
	}
}
END_TEST

/* More output than the canonicaliser's batch buffer, and a long run of
 * empty lines that turn out not to be trailing. */
START_TEST(test_dkim_body_long)
{
	size_t n = 3 * DKIM_CANON_OUT + 17;
	char *in = malloc(n * 2 + 16), *want = malloc(n * 2 + 16);
	struct buf out;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(want);
	for (size_t i = 0; i < n; i++) {
		memcpy(in + 2 * i, "\r\n", 2);
		memcpy(want + 2 * i, "\r\n", 2);
	}
	memcpy(in + 2 * n, "x\r\n", 4);
	memcpy(want + 2 * n, "x\r\n", 4);
	buf_init(&out, 0);
	canon_body3(DKIM_CANON_RELAXED, in, strlen(in), 1, 2 * n + 1, &out);
	ck_assert_uint_eq(out.len, strlen(want));
	ck_assert_int_eq(memcmp(out.data, want, out.len), 0);
	buf_free(&out);
	free(in);
	free(want);
}
END_TEST

START_TEST(test_dkim_body_hash)
{
	char b64[64], ref[64];
	uint64_t canonical = 0, hashed = 0;

	/* §3.4.3: SHA-256 of CRLF; §3.4.4: SHA-256 of nothing */
	body_hash_b64(DKIM_CANON_SIMPLE, -1, "", 1, b64, NULL, NULL);
	ck_assert_str_eq(b64, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	body_hash_b64(DKIM_CANON_RELAXED, -1, "", 1, b64, NULL, NULL);
	ck_assert_str_eq(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	body_hash_b64(DKIM_CANON_RELAXED, -1, "\r\n \r\n\r\n", 1, b64, NULL, NULL);
	ck_assert_str_eq(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	body_hash_b64(DKIM_CANON_SIMPLE, -1, "\r\n\r\n", 1, b64, NULL, NULL);
	ck_assert_str_eq(b64, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");

	/* the same hash for every chunk size */
	static const char msg[] = "Hello  world \r\n\tsecond\tline\r\n\r\nlast\r\n\r\n";
	body_hash_b64(DKIM_CANON_RELAXED, -1, msg, sizeof(msg), ref, &canonical, NULL);
	ck_assert_uint_eq(canonical, strlen("Hello world\r\n second line\r\n\r\nlast\r\n"));
	for (size_t chunk = 1; chunk < sizeof(msg); chunk++) {
		body_hash_b64(DKIM_CANON_RELAXED, -1, msg, chunk, b64, NULL, NULL);
		ck_assert_str_eq(b64, ref);
	}
	/* and the hash of the canonical text is that of the original */
	body_hash_b64(DKIM_CANON_SIMPLE, -1, "Hello world\r\n second line\r\n\r\nlast\r\n", 5,
		      b64, NULL, NULL);
	ck_assert_str_eq(b64, ref);

	/* l=: only the first octets are hashed, all are counted */
	body_hash_b64(DKIM_CANON_SIMPLE, 3, "abcdef\r\n", 2, b64, &canonical, &hashed);
	body_hash_b64(DKIM_CANON_RELAXED, -1, "abc", 1, ref, NULL, NULL);
	ck_assert_uint_eq(canonical, 8);
	ck_assert_uint_eq(hashed, 3);
	/* relaxed "abc" is "abc\r\n": compare with simple l=3 of a longer body
	 * through the raw digest instead */
	unsigned char d[DKIM_HASH_LEN];
	unsigned int dl = 0;
	ck_assert_int_eq(EVP_Digest("abc", 3, d, &dl, EVP_sha256(), NULL), 1);
	base64_encode(d, dl, ref);
	ck_assert_str_eq(b64, ref);
	body_hash_b64(DKIM_CANON_SIMPLE, 0, "abc\r\n", 1, b64, &canonical, &hashed);
	ck_assert_str_eq(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	ck_assert_uint_eq(hashed, 0);
}
END_TEST

/* ---- headers ------------------------------------------------------------ */

START_TEST(test_dkim_header_relaxed)
{
	check_header(DKIM_CANON_RELAXED, "SUBJect \t:  Hello \r\n\t World  ",
		     "subject:Hello World\r\n");
	check_header(DKIM_CANON_RELAXED, "To:\r\n a@b.test,\r\n\r\n\tc@d.test",
		     "to:a@b.test, c@d.test\r\n");
	check_header(DKIM_CANON_RELAXED, "X-Empty:", "x-empty:\r\n");
	check_header(DKIM_CANON_RELAXED, "X-Empty:   \r\n ", "x-empty:\r\n");
	check_header(DKIM_CANON_RELAXED, "Message-ID:<a@b>", "message-id:<a@b>\r\n");
	check_header(DKIM_CANON_RELAXED, "Subject: =?UTF-8?Q?gr=C3=BC=C3=9F?=  \xc3\xa9t\xc3\xa9",
		     "subject:=?UTF-8?Q?gr=C3=BC=C3=9F?= \xc3\xa9t\xc3\xa9\r\n");
	/* simple keeps everything, folding included */
	check_header(DKIM_CANON_SIMPLE, "SUBJect \t:  Hello \r\n\t World  ",
		     "SUBJect \t:  Hello \r\n\t World  \r\n");
}
END_TEST

/* ---- keys and signer ------------------------------------------------------- */

static char tmpdir[64];

static void make_config(struct config *cfg)
{
	config_defaults(cfg);
	str_copy(tmpdir, "/tmp/check_dkim.XXXXXX", sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	str_copy(cfg->path, "test.conf", sizeof(cfg->path));
	str_copy(cfg->hostname, "mail.example.test", sizeof(cfg->hostname));
	str_copy(cfg->data_dir, tmpdir, sizeof(cfg->data_dir));
	str_copy(cfg->domains[0], "example.test", sizeof(cfg->domains[0]));
	cfg->n_domains = 1;
}

static void remove_tree(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int generate(struct config *cfg, const char *domain, const char *selector)
{
	char *argv[] = { "dkim", "generate", (char *)domain, "--selector", (char *)selector, NULL };
	int rc;

	/* the command prints the paths; keep the test output clean */
	fflush(stdout);
	FILE *saved = stdout;
	stdout = fopen("/dev/null", "w");
	rc = dkim_cli_dkim(cfg, selector != NULL ? 5 : 3, argv);
	fclose(stdout);
	stdout = saved;
	return rc;
}

START_TEST(test_dkim_keys)
{
	struct config cfg;
	struct dkim_keys *keys;
	char err[512], path[512];
	struct stat st;

	make_config(&cfg);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), 0);
	ck_assert_ptr_null(keys);
	ck_assert_int_eq(generate(&cfg, "Example.TEST", NULL), EX_OK);
	ck_assert_int_eq(generate(&cfg, "example.test", NULL), EX_CANTCREAT);
	ck_assert_int_eq(generate(&cfg, "other.test", NULL), EX_NOUSER);
	ck_assert_int_eq(generate(&cfg, "exa/mple.test", NULL), EX_DATAERR);
	ck_assert_int_eq(generate(&cfg, "example.test", "bad_sel"), EX_DATAERR);
	ck_assert_int_eq(generate(&cfg, "example.test", "2027"), EX_OK);
	snprintf(path, sizeof(path), "%s/dkim/example.test/postern.rsa.key", tmpdir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/dkim/example.test", tmpdir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);

	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(keys);
	ck_assert_uint_eq(dkim_keys_count(keys), 4);
	ck_assert_str_eq(dkim_keys_selector(keys, 0), "2027-rsa");
	ck_assert_int_eq(dkim_keys_alg(keys, 0), DKIM_ALG_RSA_SHA256);
	ck_assert_str_eq(dkim_keys_selector(keys, 1), "2027-ed25519");
	ck_assert_int_eq(dkim_keys_alg(keys, 1), DKIM_ALG_ED25519_SHA256);
	ck_assert_str_eq(dkim_keys_selector(keys, 2), "postern-rsa");
	ck_assert_str_eq(dkim_keys_selector(keys, 3), "postern-ed25519");
	ck_assert_str_eq(dkim_keys_domain(keys), "example.test");
	dkim_keys_free(keys);
	/* the domain in any case finds the same directory */
	ck_assert_int_eq(dkim_keys_load(tmpdir, "EXAMPLE.Test", &keys, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(keys);
	ck_assert_str_eq(dkim_keys_domain(keys), "example.test");
	dkim_keys_free(keys);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "../x", &keys, err, sizeof(err)), -1);
	ck_assert_ptr_null(keys);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), 0);
	char *p = dkim_keys_public(keys, 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(strlen(p), 44); /* 32 octets */
	free(p);
	p = dkim_keys_public(keys, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(strlen(p), 392); /* SubjectPublicKeyInfo of RSA-2048 */
	free(p);
	dkim_keys_free(keys);

	/* a damaged key file is an error, not silently skipped */
	snprintf(path, sizeof(path), "%s/dkim/example.test/2027.ed25519.key", tmpdir);
	ck_assert_int_eq(write_file_atomic(path, "junk\n", 5, 0600), 0);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "2027.ed25519.key"));
	remove_tree();
}
END_TEST

static const char sign_msg[] =
	"Received: from x by y; Sun, 6 Dec 2026 20:00:00 +0000\r\n"
	"From: Alice <alice@example.test>\r\n"
	"To: bob@example.org,\r\n  carol@example.org\r\n"
	"Subject: a test  of\r\n\tfolding\r\n"
	"Date: Sun, 6 Dec 2026 20:00:00 +0000\r\n"
	"Message-ID: <1@example.test>\r\n"
	"X-Other: not signed\r\n"
	"\r\n"
	"Hello  Bob,\r\n\r\nbye\r\n\r\n\r\n";

static char *sign_split(const struct dkim_keys *keys, const char *msg, size_t a, size_t b)
{
	struct dkim_signer *s = dkim_signer_new(keys, 1796500000);
	size_t len = strlen(msg), siglen = 0;
	char *sig = NULL;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(dkim_signer_update(s, msg, a), 0);
	ck_assert_int_eq(dkim_signer_update(s, msg + a, b - a), 0);
	ck_assert_int_eq(dkim_signer_update(s, msg + b, len - b), 0);
	if (dkim_signer_finish(s, &sig, &siglen) < 0)
		ck_abort_msg("finish: %s", dkim_signer_error(s));
	ck_assert_uint_eq(strlen(sig), siglen);
	dkim_signer_free(s);
	return sig;
}

START_TEST(test_dkim_sign_splits)
{
	struct config cfg;
	struct dkim_keys *keys;
	char err[512];
	char *ref, *sig;
	size_t len = strlen(sign_msg);

	make_config(&cfg);
	ck_assert_int_eq(generate(&cfg, "example.test", NULL), EX_OK);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(keys);
	ref = sign_split(keys, sign_msg, 0, 0);

	/* two fields, folded below 78 columns, From over-signed */
	const char *second = strstr(ref + 1, "DKIM-Signature:");
	ck_assert_int_eq(strncmp(ref, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53), 0);
	ck_assert_ptr_nonnull(second);
	ck_assert_ptr_nonnull(strstr(second, "a=ed25519-sha256;"));
	ck_assert_ptr_nonnull(strstr(ref, "s=postern-rsa;"));
	ck_assert_ptr_nonnull(strstr(second, "s=postern-ed25519;"));
	ck_assert_ptr_nonnull(strstr(ref, "t=1796500000;"));
	char *flat = strdup(ref), *w = flat;
	ck_assert_ptr_nonnull(flat);
	for (const char *r = ref; *r != '\0'; r++) /* unfold */
		if (strncmp(r, "\r\n\t", 3) == 0)
			r += 2;
		else
			*w++ = *r;
	*w = '\0';
	ck_assert_ptr_nonnull(
		strstr(flat, "h=From:From:Subject:Subject:Date:Date:To:To:Message-ID:Message-ID;"));
	free(flat);
	ck_assert_ptr_null(strstr(ref, "Received"));
	ck_assert_ptr_null(strstr(ref, "X-Other"));
	for (const char *line = ref; *line != '\0';) {
		const char *eol = strstr(line, "\r\n");
		ck_assert_ptr_nonnull(eol);
		ck_assert_int_lt((int)(eol - line), 78);
		ck_assert_ptr_null(memchr(line, '\n', (size_t)(eol - line)));
		line = eol + 2;
	}

	/* every pair of split points: identical fields */
	for (size_t a = 0; a <= len; a += 17)
		for (size_t b = a; b <= len; b += 19) {
			sig = sign_split(keys, sign_msg, a, b);
			if (strcmp(sig, ref) != 0)
				ck_abort_msg("split at %zu,%zu differs:\n%s\n%s", a, b, sig, ref);
			free(sig);
		}
	for (size_t a = 0; a <= len; a++) {
		sig = sign_split(keys, sign_msg, a, a);
		ck_assert_str_eq(sig, ref);
		free(sig);
	}
	free(ref);
	dkim_keys_free(keys);
	remove_tree();
}
END_TEST

/* ---- verifier ------------------------------------------------------------- */

/* The key records `postern dns` would publish for the loaded keys. */
static const struct dkim_keys *verify_keys;

static enum smtp_dns_status verify_lookup(struct smtp_dns *dns, const char *name,
					  enum smtp_dns_type type, struct smtp_dns_answer *a)
{
	(void)dns;
	for (size_t i = 0; i < dkim_keys_count(verify_keys); i++) {
		char want[256], rec[1024], *pub;
		snprintf(want, sizeof(want), "%s._domainkey.example.test",
			 dkim_keys_selector(verify_keys, i));
		if (type != SMTP_DNS_TXT || strcmp(name, want) != 0)
			continue;
		pub = dkim_keys_public(verify_keys, i);
		ck_assert_ptr_nonnull(pub);
		snprintf(rec, sizeof(rec), "v=DKIM1; k=%s; p=%s",
			 dkim_alg_key_type(dkim_keys_alg(verify_keys, i)), pub);
		free(pub);
		ck_assert_int_eq(smtp_dns_answer_add(a, rec), 0);
		return SMTP_DNS_OK;
	}
	return SMTP_DNS_NXDOMAIN;
}

/* Verify msg fed in two pieces cut at a; the results' count. */
static size_t verify_split(const char *msg, size_t len, size_t a, struct dkim_sig_result *res)
{
	struct smtp_dns dns = { .lookup = verify_lookup };
	struct dkim_verifier *v = dkim_verifier_new();
	size_t n;

	ck_assert_ptr_nonnull(v);
	dkim_verifier_update(v, msg, a);
	dkim_verifier_update(v, msg + a, len - a);
	n = dkim_verifier_finish(v, &dns, 1796500000, res, DKIM_VERIFY_SIGS_MAX);
	dkim_verifier_free(v);
	return n;
}

/* Our signer's fields verify (rsa-sha256 and ed25519-sha256) with the
 * message fed split at every offset; one changed octet fails both. */
START_TEST(test_dkim_verify_splits)
{
	struct dkim_sig_result res[DKIM_VERIFY_SIGS_MAX];
	struct config cfg;
	struct dkim_keys *keys;
	char err[512], *sig;
	struct buf msg;

	make_config(&cfg);
	ck_assert_int_eq(generate(&cfg, "example.test", NULL), EX_OK);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), 0);
	verify_keys = keys;
	sig = sign_split(keys, sign_msg, 0, 0);
	buf_init(&msg, 0);
	ck_assert_int_eq(buf_appendf(&msg, "%s%s", sig, sign_msg), 0);
	for (size_t a = 0; a <= msg.len; a++) {
		size_t n = verify_split(msg.data, msg.len, a, res);
		ck_assert_uint_eq(n, 2);
		for (size_t i = 0; i < n; i++)
			if (res[i].result != DKIM_RESULT_PASS)
				ck_abort_msg("split at %zu: signature %zu: %s (%s)", a, i,
					     dkim_result_name(res[i].result), res[i].reason);
	}
	ck_assert_str_eq(res[0].alg, "rsa-sha256");
	ck_assert_str_eq(res[1].alg, "ed25519-sha256");
	ck_assert_str_eq(res[0].domain, "example.test");
	/* a header change, then a body change */
	char *p = strstr(msg.data, "Subject: a test");
	p[10] = 'T';
	ck_assert_uint_eq(verify_split(msg.data, msg.len, 0, res), 2);
	ck_assert_int_eq(res[0].result, DKIM_RESULT_FAIL);
	ck_assert_str_eq(res[1].reason, "signature did not verify");
	p[10] = 't';
	p = strstr(msg.data, "Hello  Bob");
	p[0] = 'J';
	ck_assert_uint_eq(verify_split(msg.data, msg.len, 0, res), 2);
	ck_assert_str_eq(res[0].reason, "body hash did not verify");
	/* unsigned: no results */
	ck_assert_uint_eq(verify_split(sign_msg, strlen(sign_msg), 5, res), 0);
	buf_free(&msg);
	free(sig);
	dkim_keys_free(keys);
	remove_tree();
}
END_TEST

START_TEST(test_dkim_sign_refusals)
{
	struct config cfg;
	struct dkim_keys *keys;
	struct dkim_signer *s;
	char err[512], *sig = NULL;
	size_t siglen = 0;

	make_config(&cfg);
	ck_assert_int_eq(generate(&cfg, "example.test", NULL), EX_OK);
	ck_assert_int_eq(dkim_keys_load(tmpdir, "example.test", &keys, err, sizeof(err)), 0);

	/* no From: refused (RFC 6376 §5.4) */
	static const char nofrom[] = "Subject: x\r\n\r\nbody\r\n";
	ck_assert_int_eq(dkim_sign(keys, 1, nofrom, strlen(nofrom), &sig, &siglen, err,
				   sizeof(err)), -1);
	ck_assert_ptr_null(sig);
	ck_assert_ptr_nonnull(strstr(err, "From"));
	/* "From" inside another name or a body line does not count */
	static const char fake[] = "X-From: a@b\r\n\r\nFrom: a@b\r\n";
	ck_assert_int_eq(dkim_sign(keys, 1, fake, strlen(fake), &sig, &siglen, err, sizeof(err)),
			 -1);

	/* header block without the empty line, and an empty body: signed */
	static const char hdronly[] = "From: a@example.test\r\nSubject: s\r\n";
	ck_assert_int_eq(dkim_sign(keys, 1, hdronly, strlen(hdronly), &sig, &siglen, err,
				   sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(sig, "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"));
	free(sig);

	/* a header block over the limit fails, and keeps failing */
	s = dkim_signer_new(keys, 1);
	ck_assert_ptr_nonnull(s);
	char *big = malloc(DKIM_HEADER_BLOCK_MAX + 100);
	ck_assert_ptr_nonnull(big);
	memcpy(big, "From: a@example.test\r\nX-Big: ", 29);
	memset(big + 29, 'x', DKIM_HEADER_BLOCK_MAX + 100 - 29);
	ck_assert_int_eq(dkim_signer_update(s, big, DKIM_HEADER_BLOCK_MAX + 100), -1);
	ck_assert_int_eq(dkim_signer_update(s, "\r\n\r\n", 4), -1);
	ck_assert_int_eq(dkim_signer_finish(s, &sig, &siglen), -1);
	ck_assert_ptr_nonnull(strstr(dkim_signer_error(s), "header"));
	dkim_signer_free(s);
	free(big);

	/* too many fields */
	struct buf many;
	buf_init(&many, 0);
	ck_assert_int_eq(buf_append(&many, "From: a@example.test\r\n", 22), 0);
	for (int i = 0; i < DKIM_HEADERS_MAX; i++)
		ck_assert_int_eq(buf_append(&many, "X: y\r\n", 6), 0);
	ck_assert_int_eq(buf_append(&many, "\r\nbody\r\n", 8), 0);
	ck_assert_int_eq(dkim_sign(keys, 1, many.data, many.len, &sig, &siglen, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "too many"));
	buf_free(&many);

	dkim_keys_free(keys);
	remove_tree();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dkim");
	TCase *tc = tcase_create("dkim");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_dkim_rfc6376_example);
	tcase_add_test(tc, test_dkim_body_cases);
	tcase_add_test(tc, test_dkim_body_long);
	tcase_add_test(tc, test_dkim_body_hash);
	tcase_add_test(tc, test_dkim_header_relaxed);
	tcase_add_test(tc, test_dkim_keys);
	tcase_add_test(tc, test_dkim_sign_splits);
	tcase_add_test(tc, test_dkim_sign_refusals);
	tcase_add_test(tc, test_dkim_verify_splits);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
