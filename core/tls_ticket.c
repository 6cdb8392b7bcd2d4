/* TLS session ticket keys owned by the daemon, not by an SSL_CTX.
 *
 * OpenSSL gives every SSL_CTX its own random ticket keys, so a SIGHUP,
 * which builds new contexts, would turn every ticket a client holds into
 * a full handshake (LIBRARIES.md §3).  Instead one struct tls_tickets
 * lives as long as the server and every context, old and new, encrypts
 * and decrypts tickets with its keys through the ticket key callback.
 *
 * Keys: random at start (never written to disk, so a restart, unlike a
 * reload, starts over).  The current key encrypts; every
 * TLS_TICKET_ROTATE_S it becomes the previous key, which still decrypts
 * (and the client gets a ticket under the new key, callback result 2),
 * and a new random key becomes current.  A ticket therefore works for at
 * least TLS_TICKET_ROTATE_S and at most twice that, whatever the session
 * lifetime says, and a stolen key opens at most two periods of tickets
 * (RFC 5077 §5.5 asks for key rotation).  The ticket format is OpenSSL's
 * (RFC 5077 §4's recommendation: key name, IV, AES-256-CBC state,
 * HMAC-SHA256).
 *
 * Threads: the callback runs wherever a handshake runs (the loop today);
 * a mutex guards the keys anyway, and the crypto runs on copies.
 */
#include "tls_private.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "util.h"

#define TLS_TICKET_ROTATE_S (12 * 3600)
#define TLS_TICKET_NAME_LEN 16 /* OpenSSL's key_name[16] */
#define TLS_TICKET_AES_LEN 32  /* AES-256 */
#define TLS_TICKET_HMAC_LEN 32 /* HMAC-SHA256 */

/* SSL_CTX_set_tlsext_ticket_key_evp_cb's answers. */
#define TLS_TICKET_CB_NONE 0   /* no ticket / unknown key: full handshake */
#define TLS_TICKET_CB_OK 1
#define TLS_TICKET_CB_RENEW 2  /* decrypted with an old key: issue a new ticket */

struct tls_ticket_key {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[TLS_TICKET_AES_LEN];
	unsigned char hmac[TLS_TICKET_HMAC_LEN];
	time_t born; /* CLOCK_MONOTONIC seconds */
};

struct tls_tickets {
	pthread_mutex_t lock;
	struct tls_ticket_key current;
	struct tls_ticket_key previous;
	bool have_previous;
};

static time_t tls_ticket_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static int tls_ticket_key_make(struct tls_ticket_key *key)
{
	if (random_bytes(key->name, sizeof(key->name)) < 0 ||
	    random_bytes(key->aes, sizeof(key->aes)) < 0 ||
	    random_bytes(key->hmac, sizeof(key->hmac)) < 0)
		return -1;
	key->born = tls_ticket_now();
	return 0;
}

struct tls_tickets *tls_tickets_new(void)
{
	struct tls_tickets *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	if (tls_ticket_key_make(&t->current) < 0) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void tls_tickets_free(struct tls_tickets *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

/* Called with t->lock held.  A failed rotation keeps the current key. */
static void tls_tickets_rotate_locked(struct tls_tickets *t)
{
	struct tls_ticket_key next;

	if (tls_ticket_key_make(&next) < 0)
		return;
	t->previous = t->current;
	t->have_previous = true;
	t->current = next;
	explicit_bzero(&next, sizeof(next));
}

void tls_tickets_rotate(struct tls_tickets *t)
{
	pthread_mutex_lock(&t->lock);
	tls_tickets_rotate_locked(t);
	pthread_mutex_unlock(&t->lock);
}

/* A copy of the key to encrypt with (rotating first when due), or of the
 * key named name: TLS_TICKET_CB_OK for the current one,
 * TLS_TICKET_CB_RENEW for the previous one, TLS_TICKET_CB_NONE. */
static int tls_tickets_pick(struct tls_tickets *t, const unsigned char *name,
			    struct tls_ticket_key *key_r)
{
	int rc = TLS_TICKET_CB_NONE;

	pthread_mutex_lock(&t->lock);
	if (name == NULL) {
		if (tls_ticket_now() - t->current.born >= TLS_TICKET_ROTATE_S)
			tls_tickets_rotate_locked(t);
		*key_r = t->current;
		rc = TLS_TICKET_CB_OK;
	} else if (memcmp(name, t->current.name, TLS_TICKET_NAME_LEN) == 0) {
		*key_r = t->current;
		rc = TLS_TICKET_CB_OK;
	} else if (t->have_previous &&
		   memcmp(name, t->previous.name, TLS_TICKET_NAME_LEN) == 0) {
		*key_r = t->previous;
		rc = TLS_TICKET_CB_RENEW;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static int tls_ticket_mac_init(EVP_MAC_CTX *hctx, struct tls_ticket_key *key)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key->hmac, sizeof(key->hmac)),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

static int tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_tickets *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct tls_ticket_key key;
	int rc;

	if (t == NULL)
		return TLS_TICKET_CB_NONE;
	rc = tls_tickets_pick(t, enc ? NULL : key_name, &key);
	if (rc == TLS_TICKET_CB_NONE)
		return rc;
	if (enc) {
		memcpy(key_name, key.name, TLS_TICKET_NAME_LEN);
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1)
			rc = TLS_TICKET_CB_NONE;
	} else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1) {
		rc = TLS_TICKET_CB_NONE;
	}
	if (rc != TLS_TICKET_CB_NONE && tls_ticket_mac_init(hctx, &key) < 0)
		rc = TLS_TICKET_CB_NONE;
	explicit_bzero(&key, sizeof(key));
	return rc;
}

int tls_tickets_attach(struct tls_tickets *t, SSL_CTX *ctx)
{
	if (t == NULL)
		return 0; /* OpenSSL's own per-context keys (`postern check`) */
	if (SSL_CTX_set_app_data(ctx, t) != 1 ||
	    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb) != 1)
		return -1;
	return 0;
}
