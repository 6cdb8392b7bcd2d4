/* DKIM (RFC 6376, RFC 8463, RFC 8301): canonicalisation, signing, keys,
 * and the DNS records a domain publishes (`postern dns`).
 *
 * Files:
 *   smtp_dkim_canon.c  header and body canonicalisation (simple, relaxed),
 *                      streaming body hash with an optional l= count;
 *                      shared by signing and, later, verification
 *   smtp_dkim_sign.c   the signer: message in chunks -> DKIM-Signature
 *   smtp_dkim_verify.c the verifier: message in chunks, key records by DNS
 *                      -> one result per signature
 *   smtp_dkim_keys.c   key files: `postern dkim generate`, the loader,
 *                      `postern dns`
 *
 * On disk (DATA_DIR is config data_dir):
 *   DATA_DIR/dkim/                        mode 0700
 *   DATA_DIR/dkim/DOMAIN/                 mode 0700, DOMAIN in lower case
 *   DATA_DIR/dkim/DOMAIN/BASE.rsa.key     RSA 2048 private key, PKCS#8 PEM,
 *                                         mode 0600: a=rsa-sha256,
 *                                         selector s=BASE-rsa
 *   DATA_DIR/dkim/DOMAIN/BASE.ed25519.key Ed25519 private key, PKCS#8 PEM,
 *                                         mode 0600: a=ed25519-sha256,
 *                                         selector s=BASE-ed25519
 * BASE is what `postern dkim generate --selector` names ("postern" by
 * default).  Each algorithm gets its own selector because two key records
 * at one DNS name would leave the verifier to pick one (RFC 6376
 * §3.6.2.2); SEL._domainkey.DOMAIN holds the public key of selector SEL
 * (`postern dns` prints the records).  Every key file present is used:
 * a message gets one DKIM-Signature per key (at most DKIM_KEYS_MAX), so
 * rotating keys is "generate with a new --selector, publish, wait for the
 * old TTL, delete the old files"; a signature whose key is not (yet)
 * published fails on its own without harming the others (RFC 6376 §6.1).
 *
 * Signing, as the outbound queue does it (from any thread):
 *
 *   struct dkim_keys *keys;                      // once per domain, cache it
 *   if (dkim_keys_load(data_dir, "example.org", &keys, err, sizeof(err)) < 0)
 *       ... log err; send unsigned or defer: the caller's policy
 *   if (keys != NULL) {                          // NULL: domain has no keys
 *       struct dkim_signer *s = dkim_signer_new(keys, time(NULL));
 *       while ((n = read(fd, chunk, sizeof(chunk))) > 0)
 *           if (dkim_signer_update(s, chunk, n) < 0) break;   // any chunk size
 *       if (dkim_signer_finish(s, &sig, &siglen) == 0)
 *           send sig (siglen bytes, "DKIM-Signature: ...\r\n" fields), then
 *           the message exactly as it was fed;
 *       else log dkim_signer_error(s);
 *       free(sig); dkim_signer_free(s);
 *   }
 *   dkim_keys_free(keys);                        // when the cache drops it
 *
 * The message fed to the signer must be the bytes that go on the wire
 * (CRLF line ends, before dot-stuffing), header block, empty line, body:
 * sign after any change made for the destination (an 8BITMIME downgrade to
 * quoted-printable, RFC 6152, breaks a signature made before it), and put
 * the fields above every other header field.  Fields added above them
 * later (Received:) do not harm it.  A message without the empty line is
 * all header with an empty body.
 * Signed: relaxed/relaxed, t= now, h= the fields of RFC 6376 §5.4.1 that are
 * present (dkim_sign_fields in smtp_dkim_sign.c); From and the other fields
 * RFC 5322 §3.6 allows once are listed one more time than present
 * ("over-signed", RFC 6376 §8.15), so adding a second one breaks the
 * signature.  No l= (RFC 6376 §8.2), no i= (it defaults to @d=), no x=.
 *
 * Verification (smtp_dkim_verify.c) reuses dkim_canon_header(), the body
 * hash with its l= limit and canonical length, and dkim_header_split() /
 * dkim_field_is() (smtp_dkim_private.h) to pick the signed instances bottom
 * up; what it adds is the tag-list parser, deleting the b= value of the
 * signature field before canonicalising it (RFC 6376 §3.7), the key record
 * lookup (smtp_dns.h) and EVP_DigestVerify.
 *
 * Threads: a struct dkim_keys is read-only after loading and may be shared
 * by any number of threads; a struct dkim_signer belongs to one thread.
 * Nothing here touches the event loop; loading keys reads files (worker).
 */
#ifndef PROTOCOLS_SMTP_DKIM_H
#define PROTOCOLS_SMTP_DKIM_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

struct config;

/* ---- limits ------------------------------------------------------------ */

/* Header block the signer keeps in memory: LIBRARIES.md's 256 KB, the same
 * bound as SMTP_HEADER_MAX on the way in. */
#define DKIM_HEADER_BLOCK_MAX (256 * 1024)
#define DKIM_HEADERS_MAX 1000          /* fields in one header block */
#define DKIM_SIGN_INSTANCES_MAX 8      /* instances of one name put in h= */
#define DKIM_KEYS_MAX 4                /* key files used for one domain */
/* One DKIM-Signature field we build, folded, with its CRLF: h= lists at
 * most ~25 names x (DKIM_SIGN_INSTANCES_MAX + 1), b= of RSA-4096 is 684. */
#define DKIM_SIGNATURE_MAX 8192
#define DKIM_LINE_WIDTH 76             /* RFC 5322 §2.1.1: < 78 per line */
#define DKIM_SELECTOR_MAX 63           /* RFC 1035 §2.3.4: one label */
/* BASE of a key file name: the selector adds "-ed25519" */
#define DKIM_SELECTOR_BASE_MAX (DKIM_SELECTOR_MAX - 8)
#define DKIM_DOMAIN_MAX 253            /* RFC 1035 §2.3.4, without the dot */
#define DKIM_KEY_FILE_MAX (16 * 1024)  /* a PEM private key file */
#define DKIM_RSA_BITS 2048             /* RFC 8301 §3.2: signers >= 1024,
					  SHOULD 2048 */
#define DKIM_RSA_BITS_MIN 1024         /* RFC 8301 §3.2: below is refused */
#define DKIM_TXT_STRING_MAX 255        /* RFC 1035 §3.3.14 character-string */
#define DKIM_DEFAULT_SELECTOR "postern"

/* ---- canonicalisation (RFC 6376 §3.4) ----------------------------------- */

enum dkim_canon {
	DKIM_CANON_SIMPLE,   /* §3.4.1 headers, §3.4.3 body */
	DKIM_CANON_RELAXED,  /* §3.4.2 headers, §3.4.4 body */
};

/* Append the canonical form of one header field to out, with its CRLF.
 * field is the whole field as it appears in the message ("Name: value",
 * continuation lines included) without the CRLF that ends it.  0, or -1
 * when out's cap is reached. */
int dkim_canon_header(enum dkim_canon canon, const char *field, size_t len, struct buf *out);

/* Streaming body canonicaliser: feed the body in chunks of any size; the
 * canonical bytes go to sink in order (possibly in many small calls).
 * Trailing empty lines are held back until a later line shows they are
 * not trailing; dkim_body_canon_finish() applies the end-of-body rules
 * (§3.4.3: empty or unterminated body gets a CRLF; §3.4.4: an empty body
 * stays empty, an unterminated last line gets a CRLF).  CR and LF count
 * as a line end only as the pair CRLF; a lone CR or LF is a body byte.
 * The fields are private; the struct is public so it can be embedded. */
typedef void dkim_sink_fn(void *ctx, const char *data, size_t len);

#define DKIM_CANON_OUT 4096 /* output batched before calling the sink */

struct dkim_body_canon {
	enum dkim_canon canon;
	dkim_sink_fn *sink;
	void *sink_ctx;
	uint64_t empty_lines;  /* CRLFs held back: they may be trailing */
	bool cr;               /* a CR seen, the next byte decides */
	bool wsp;              /* relaxed: a run of WSP held back */
	bool in_line;          /* the current line has content */
	bool emitted;          /* anything reached the sink */
	size_t out_len;
	char out[DKIM_CANON_OUT];
};

void dkim_body_canon_init(struct dkim_body_canon *bc, enum dkim_canon canon,
			  dkim_sink_fn *sink, void *sink_ctx);
void dkim_body_canon_update(struct dkim_body_canon *bc, const void *data, size_t len);
void dkim_body_canon_finish(struct dkim_body_canon *bc);

/* Body hash (bh=): SHA-256 of the canonical body, or of its first `limit`
 * octets (l=, RFC 6376 §3.5) when limit >= 0.  canonical_len counts every
 * canonical octet, hashed or not, so a verifier can tell that content
 * beyond l= was left unsigned. */
#define DKIM_HASH_LEN 32 /* SHA-256 */

struct dkim_body_hash {
	struct dkim_body_canon canon;
	EVP_MD_CTX *md;
	int64_t limit;           /* -1: no l= */
	uint64_t canonical_len;  /* canonical body octets seen */
	uint64_t hashed_len;     /* of which hashed */
	bool failed;             /* a hash call failed */
};

/* 0, or -1 when OpenSSL cannot set up SHA-256. */
int dkim_body_hash_init(struct dkim_body_hash *bh, enum dkim_canon canon, int64_t limit);
void dkim_body_hash_update(struct dkim_body_hash *bh, const void *data, size_t len);
/* Finish and write the hash; 0, or -1 on an OpenSSL failure. */
int dkim_body_hash_final(struct dkim_body_hash *bh, unsigned char hash[DKIM_HASH_LEN]);
/* Frees the digest context; safe after final and after a failed init. */
void dkim_body_hash_free(struct dkim_body_hash *bh);

/* ---- keys ---------------------------------------------------------------- */

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,      /* RFC 6376 §3.3.1 */
	DKIM_ALG_ED25519_SHA256,  /* RFC 8463 §3 */
};

/* "rsa-sha256" / "ed25519-sha256" (the a= value), and "rsa" / "ed25519"
 * (the key record's k= value). */
const char *dkim_alg_name(enum dkim_alg alg);
const char *dkim_alg_key_type(enum dkim_alg alg);

/* The keys of one domain.  Opaque; read-only once loaded. */
struct dkim_keys;

/* Load every DATA_DIR/dkim/DOMAIN/BASE.{rsa,ed25519}.key (sorted by BASE,
 * RSA before Ed25519).  Returns 0 with *keys_r set, or 0 with *keys_r NULL
 * when the domain has no key files (not an error: mail goes out unsigned);
 * -1 with err set when a key file is unreadable, of the wrong type, too
 * small, or there are more than DKIM_KEYS_MAX. */
int dkim_keys_load(const char *data_dir, const char *domain, struct dkim_keys **keys_r,
		   char *err, size_t errlen);
void dkim_keys_free(struct dkim_keys *keys);
size_t dkim_keys_count(const struct dkim_keys *keys);
const char *dkim_keys_domain(const struct dkim_keys *keys);
/* Key i (< dkim_keys_count): its selector and algorithm. */
const char *dkim_keys_selector(const struct dkim_keys *keys, size_t i);
enum dkim_alg dkim_keys_alg(const struct dkim_keys *keys, size_t i);
/* The p= value of key i's DNS record (base64 of the DER
 * SubjectPublicKeyInfo for RSA, RFC 6376 §3.6.1; of the 32 raw public key
 * octets for Ed25519, RFC 8463 §4.2), NUL-terminated, malloc'ed; NULL on
 * failure. */
char *dkim_keys_public(const struct dkim_keys *keys, size_t i);

/* true when s is a usable selector BASE: dot-separated labels of letters,
 * digits and '-', at most DKIM_SELECTOR_BASE_MAX octets in all. */
bool dkim_selector_valid(const char *s);

/* ---- signing ------------------------------------------------------------- */

struct dkim_signer;

/* A signer over all keys (which must outlive it), with t=now.  NULL only
 * when memory or OpenSSL fails. */
struct dkim_signer *dkim_signer_new(const struct dkim_keys *keys, time_t now);
/* Feed the next chunk of the message (any size, including 0).  0, or -1
 * once the signer has failed (header block over DKIM_HEADER_BLOCK_MAX);
 * later calls keep returning -1. */
int dkim_signer_update(struct dkim_signer *s, const void *data, size_t len);
/* The DKIM-Signature fields, one per key, each folded below 78 columns and
 * ending in CRLF: *sig_r is malloc'ed and NUL-terminated, the caller frees
 * it.  0, or -1 (no From field, too many fields, OpenSSL failure; the
 * reason is dkim_signer_error()). */
int dkim_signer_finish(struct dkim_signer *s, char **sig_r, size_t *len_r);
const char *dkim_signer_error(const struct dkim_signer *s);
void dkim_signer_free(struct dkim_signer *s);

/* One call for a message in memory: new + update + finish + free. */
int dkim_sign(const struct dkim_keys *keys, time_t now, const void *msg, size_t len,
	      char **sig_r, size_t *len_r, char *err, size_t errlen);

/* ---- verification (RFC 6376 §6, RFC 8463, RFC 8301) ---------------------- */

/* Inbound, as smtp_inbound.c does it on a worker thread:
 *
 *   struct dkim_verifier *v = dkim_verifier_new();
 *   dkim_verifier_update(v, chunk, n) ...          // the message as stored
 *   n = dkim_verifier_finish(v, &dns, time(NULL), res, DKIM_VERIFY_SIGS_MAX);
 *   dkim_verifier_free(v);
 *
 * Every DKIM-Signature field (the first DKIM_VERIFY_SIGS_MAX from the top)
 * gets one result; none at all means the message is unsigned (dkim=none).
 * Signatures with l= (RFC 6376 §3.5) are verified over the first l octets
 * of the canonical body; unsigned_octets says how much came after that, and
 * a pass with unsigned content is reported as such and never counts for
 * DMARC (§8.2: anything can be appended).  A key record with t=y (testing)
 * still gives its result, marked testing, and does not count for DMARC
 * either (§3.6.1: treat it as unsigned mail). */
#define DKIM_VERIFY_SIGS_MAX 8         /* signatures checked per message */
#define DKIM_VERIFY_TAGS_MAX 32        /* tags in one tag-list (§3.2) */
#define DKIM_VERIFY_H_MAX 64           /* names in one h= list */
#define DKIM_SIG_FIELD_MAX 16384       /* one DKIM-Signature field */

struct smtp_dns;

enum dkim_result {
	DKIM_RESULT_PASS,       /* RFC 8601 §2.7.1 result names */
	DKIM_RESULT_FAIL,
	DKIM_RESULT_NEUTRAL,
	DKIM_RESULT_POLICY,
	DKIM_RESULT_TEMPERROR,
	DKIM_RESULT_PERMERROR,
};

const char *dkim_result_name(enum dkim_result r);

struct dkim_sig_result {
	enum dkim_result result;
	char domain[DKIM_DOMAIN_MAX + 1];      /* d= ("" when unparsable) */
	char selector[DKIM_SELECTOR_MAX + 1];  /* s= */
	char b_prefix[9];                      /* header.b (RFC 6008 §4) */
	char alg[16];                          /* a= */
	bool testing;                          /* key record t=y */
	bool partial;                          /* l= left content unsigned */
	uint64_t unsigned_octets;              /* canonical octets after l= */
	char reason[128];                      /* for the header comment */
};

struct dkim_verifier;

struct dkim_verifier *dkim_verifier_new(void);
/* Feed the next chunk of the message (header block, empty line, body; CRLF
 * line ends).  A header block over DKIM_HEADER_BLOCK_MAX leaves the
 * message unverifiable (no results). */
void dkim_verifier_update(struct dkim_verifier *v, const void *data, size_t len);
/* Look the keys up through dns and verify; the results in order of the
 * fields from the top.  Returns how many (<= max). */
size_t dkim_verifier_finish(struct dkim_verifier *v, struct smtp_dns *dns, time_t now,
			    struct dkim_sig_result *res, size_t max);
void dkim_verifier_free(struct dkim_verifier *v);

/* ---- command line ------------------------------------------------------ */

/* `postern dkim generate DOMAIN [--selector BASE]`: argv[0] is "dkim".
 * sysexits codes: 64 usage, 65 bad domain or selector, 67 domain not in
 * `domains`, 73 key files exist already or cannot be written, 70 OpenSSL. */
int dkim_cli_dkim(const struct config *cfg, int argc, char **argv);
/* `postern dns DOMAIN`: argv[0] is "dns".  Prints the zone-file records to
 * stdout.  64 usage, 65 bad domain name, 67 domain not in `domains`,
 * 66 a key file cannot be read. */
int dkim_cli_dns(const struct config *cfg, int argc, char **argv);

#endif
