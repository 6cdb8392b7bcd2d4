/* OpenSSL 3 server contexts.  One SSL_CTX per certificate; the first is the
 * default and the SNI callback switches to the one whose certificate names
 * the requested host.  A second set, for role smtp (port 25) only, also
 * speaks TLS 1.0 / 1.1 when smtp_inbound_tls_min allows it: a sending MTA
 * that has nothing better would otherwise send in plaintext (RFC 3207
 * STARTTLS is opportunistic), which protects no one.  A reload builds a new tls_server and the caller
 * swaps the pointer: existing connections keep their old contexts, which
 * OpenSSL reference-counts.  Every context encrypts session tickets with
 * the server's tls_tickets (tls_ticket.c), so tickets survive a reload.
 * Certificate and key files are read into memory (privsep_read_file:
 * after the privilege drop, root-only keys come from the privileged
 * helper) and parsed from there. */
#include "tls.h"
#include "tls_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "privsep.h"
#include "util.h"

/* Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD only.
 * TLS 1.3 suites are OpenSSL's defaults, all of which are fine. */
#define TLS_CIPHERS_12 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
/* For TLS 1.0 and 1.1 (port 25 only): the same suites, then the CBC ones
 * those versions have.  OpenSSL 3 refuses TLS < 1.2 above security level
 * 0 (SHA-1 in their handshake signatures), hence @SECLEVEL=0. */
#define TLS_CIPHERS_LEGACY TLS_CIPHERS_12 ":" \
	"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:" \
	"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:" \
	"AES128-SHA:AES256-SHA:@SECLEVEL=0"
#define TLS_PEM_FILE_MAX (1024 * 1024) /* a certificate chain or a key file */
#define TLS_PEM_FILE_MAX_TEXT "1 MiB"
#define TLS_SELF_SIGNED_DAYS 3650
#define TLS_SELF_SIGNED_BITS 2048

struct tls_set {
	SSL_CTX *ctxs[CONFIG_CERTS_MAX];
	size_t n_ctxs;
};

struct tls_server {
	struct tls_set strict; /* TLS 1.2+: every role */
	struct tls_set legacy; /* role smtp when smtp_inbound_tls_min < 1.2;
				* n_ctxs 0 otherwise */
};

static void tls_error_text(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(err, errlen, "%s: %s: %s", file, what, reason);
	ERR_clear_error();
}

static int tls_on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_set *tls = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (name == NULL || tls->n_ctxs < 2)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < tls->n_ctxs; i++) {
		X509 *cert = SSL_CTX_get0_certificate(tls->ctxs[i]);
		if (cert != NULL && X509_check_host(cert, name, 0, 0, NULL) == 1) {
			if (i != 0)
				SSL_set_SSL_CTX(ssl, tls->ctxs[i]);
			break;
		}
	}
	/* No match: go on with the default certificate, as most servers do. */
	return SSL_TLSEXT_ERR_OK;
}

/* A PEM file's bytes, read directly or by the privileged helper (a key
 * owned by root after the privilege drop).  The caller frees *data_r with
 * tls_pem_free() once done with the BIO. */
static BIO *tls_pem_bio(struct privsep *ps, const char *path, char **data_r, size_t *len_r,
			char *err, size_t errlen)
{
	BIO *bio;

	if (privsep_read_file(ps, path, TLS_PEM_FILE_MAX, data_r, len_r) < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, errno == EFBIG ?
			 "larger than " TLS_PEM_FILE_MAX_TEXT : strerror(errno));
		return NULL;
	}
	bio = BIO_new_mem_buf(*data_r, (int)*len_r);
	if (bio == NULL) {
		tls_error_text(err, errlen, "out of memory", path);
		free(*data_r);
	}
	return bio;
}

static void tls_pem_free(BIO *bio, char *data, size_t len)
{
	BIO_free(bio);
	explicit_bzero(data, len); /* may be a private key */
	free(data);
}

/* Encrypted keys are refused, never a passphrase prompt on the terminal. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return 0;
}

/* The first certificate of the file is ours, the rest its chain, as
 * SSL_CTX_use_certificate_chain_file() takes them. */
static int tls_use_chain_bio(SSL_CTX *ctx, BIO *bio)
{
	X509 *cert = PEM_read_bio_X509_AUX(bio, NULL, tls_no_passphrase, NULL);
	unsigned long e;
	int rc;

	if (cert == NULL)
		return -1;
	rc = SSL_CTX_use_certificate(ctx, cert);
	X509_free(cert);
	if (rc != 1 || SSL_CTX_clear_chain_certs(ctx) != 1)
		return -1;
	while ((cert = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, cert) != 1) {
			X509_free(cert);
			return -1;
		}
	}
	/* The end of the file is the normal way out of the loop. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
		return -1;
	ERR_clear_error();
	return 0;
}

static int tls_load_chain(SSL_CTX *ctx, struct privsep *ps, const char *path,
			  char *err, size_t errlen)
{
	char *data;
	size_t len;
	BIO *bio = tls_pem_bio(ps, path, &data, &len, err, errlen);
	int rc;

	if (bio == NULL)
		return -1;
	rc = tls_use_chain_bio(ctx, bio);
	if (rc < 0)
		tls_error_text(err, errlen, "cannot load certificate chain", path);
	tls_pem_free(bio, data, len);
	return rc;
}

static int tls_load_key(SSL_CTX *ctx, struct privsep *ps, const char *path,
			char *err, size_t errlen)
{
	char *data;
	size_t len;
	BIO *bio = tls_pem_bio(ps, path, &data, &len, err, errlen);
	EVP_PKEY *key;
	int rc = -1;

	if (bio == NULL)
		return -1;
	key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
	if (key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1)
		rc = 0;
	else
		tls_error_text(err, errlen, "cannot load private key", path);
	EVP_PKEY_free(key);
	tls_pem_free(bio, data, len);
	return rc;
}

/* min_version: TLS1_2_VERSION, or lower for the legacy set */
static SSL_CTX *tls_ctx_new(const struct config_cert *cert, int min_version,
			    struct tls_tickets *tickets, struct privsep *ps,
			    char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "postern";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error_text(err, errlen, "cannot create TLS context", cert->cert_file);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
	/* An idle connection keeps no OpenSSL read/write buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (SSL_CTX_set_cipher_list(ctx, min_version < TLS1_2_VERSION ?
				    TLS_CIPHERS_LEGACY : TLS_CIPHERS_12) != 1) {
		tls_error_text(err, errlen, "cipher list", cert->cert_file);
		goto fail;
	}
	if (tls_tickets_attach(tickets, ctx) < 0) {
		tls_error_text(err, errlen, "session ticket keys", cert->cert_file);
		goto fail;
	}
	if (tls_load_chain(ctx, ps, cert->cert_file, err, errlen) < 0 ||
	    tls_load_key(ctx, ps, cert->key_file, err, errlen) < 0)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error_text(err, errlen, "key does not match the certificate", cert->key_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int tls_set_load(struct tls_set *set, const struct config *cfg, int min_version,
			struct tls_tickets *tickets, struct privsep *ps, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->n_certs; i++) {
		SSL_CTX *ctx = tls_ctx_new(&cfg->certs[i], min_version, tickets, ps, err, errlen);
		if (ctx == NULL)
			return -1;
		set->ctxs[set->n_ctxs++] = ctx;
	}
	if (set->n_ctxs > 0) {
		SSL_CTX_set_tlsext_servername_callback(set->ctxs[0], tls_on_servername);
		SSL_CTX_set_tlsext_servername_arg(set->ctxs[0], set);
	}
	return 0;
}

static void tls_set_free(struct tls_set *set)
{
	for (size_t i = 0; i < set->n_ctxs; i++)
		SSL_CTX_free(set->ctxs[i]);
	set->n_ctxs = 0;
}

struct tls_server *tls_server_new(const struct config *cfg, struct tls_tickets *tickets,
				  struct privsep *ps, char *err, size_t errlen)
{
	struct tls_server *tls = calloc(1, sizeof(*tls));
	bool legacy = cfg->smtp_inbound_tls_min < 12;
	bool have_smtp = false;

	if (tls == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++)
		have_smtp = have_smtp || cfg->listeners[i].role == ROLE_SMTP;
	if (tls_set_load(&tls->strict, cfg, TLS1_2_VERSION, tickets, ps, err, errlen) < 0 ||
	    (legacy && have_smtp &&
	     tls_set_load(&tls->legacy, cfg, cfg->smtp_inbound_tls_min == 10 ?
			  TLS1_VERSION : TLS1_1_VERSION, tickets, ps, err, errlen) < 0)) {
		tls_server_free(tls);
		return NULL;
	}
	return tls;
}

void tls_server_free(struct tls_server *tls)
{
	if (tls == NULL)
		return;
	tls_set_free(&tls->strict);
	tls_set_free(&tls->legacy);
	free(tls);
}

bool tls_server_has_certificate(const struct tls_server *tls)
{
	return tls != NULL && tls->strict.n_ctxs > 0;
}

SSL *tls_server_new_ssl(struct tls_server *tls, enum listener_role role)
{
	if (tls == NULL || tls->strict.n_ctxs == 0)
		return NULL;
	if (role == ROLE_SMTP && tls->legacy.n_ctxs > 0)
		return SSL_new(tls->legacy.ctxs[0]);
	return SSL_new(tls->strict.ctxs[0]);
}

void tls_describe(SSL *ssl, char *out, size_t outlen)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);

	snprintf(out, outlen, "%s %s", SSL_get_version(ssl),
		 cipher != NULL ? SSL_CIPHER_get_name(cipher) : "?");
}

static int tls_add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	rc = X509_add_ext(cert, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

static int tls_write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = -1;

	if (bio == NULL)
		return -1;
	if (key != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	if (cert != NULL && PEM_write_bio_X509(bio, cert) != 1)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		goto out;
	rc = write_file_atomic(path, data, (size_t)len, mode);
out:
	BIO_free(bio);
	return rc;
}

int tls_make_self_signed(const char *hostname, const char *cert_file,
			 const char *key_file, char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_RSA_gen(TLS_SELF_SIGNED_BITS);
	X509 *cert = X509_new();
	X509_NAME *name;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[CONFIG_DOMAIN_LEN + 64];
	int rc = -1;

	if (key == NULL || cert == NULL || random_bytes(serial, sizeof(serial)) < 0) {
		tls_error_text(err, errlen, "cannot generate key", cert_file);
		goto out;
	}
	serial[0] &= 0x7f; /* a positive serial number (RFC 5280 §4.1.2.2) */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	X509_set_version(cert, X509_VERSION_3);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL)
		goto ossl_fail;
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_time_adj_ex(X509_getm_notAfter(cert), TLS_SELF_SIGNED_DAYS, 0, NULL);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Postern demo", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(cert, name);
	snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", hostname);
	if (tls_add_ext(cert, NID_subject_alt_name, san) < 0 ||
	    tls_add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    tls_add_ext(cert, NID_subject_key_identifier, "hash") < 0 ||
	    tls_add_ext(cert, NID_ext_key_usage, "serverAuth") < 0)
		goto ossl_fail;
	if (X509_sign(cert, key, EVP_sha256()) == 0)
		goto ossl_fail;
	if (tls_write_pem(key_file, 0600, key, NULL) < 0) {
		snprintf(err, errlen, "%s: cannot write: %m", key_file);
		goto out;
	}
	if (tls_write_pem(cert_file, 0644, NULL, cert) < 0) {
		snprintf(err, errlen, "%s: cannot write: %m", cert_file);
		goto out;
	}
	rc = 0;
	goto out;
ossl_fail:
	tls_error_text(err, errlen, "cannot build certificate", cert_file);
out:
	BN_free(bn);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
