/* DKIM keys: the key files under DATA_DIR/dkim/ (layout in dkim.h),
 * `postern dkim generate`, the loader the outbound queue uses, and
 * `postern dns`, which prints every record a domain publishes.
 *
 * Key files are PKCS#8 PEM without a passphrase, mode 0600, in a 0700
 * directory: the daemon must read them unattended, so the file mode is
 * their protection.  They are created with O_EXCL under a temporary name,
 * fsync'ed and then link(2)ed into place, which fails instead of replacing
 * a key that exists (a key replaced by mistake breaks every signature made
 * with the published one). */
#include "dkim.h"
#include "smtp_dkim_private.h"
#include "smtp_dns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "base64.h"
#include "config.h"

#define DKIM_RSA_SUFFIX ".rsa.key"
#define DKIM_ED25519_SUFFIX ".ed25519.key"
#define DKIM_ED25519_RAW 32 /* RFC 8032 §5.1.5 public key octets */

struct dkim_key {
	char selector[DKIM_SELECTOR_MAX + 1];
	size_t base_len; /* the file name's BASE, a prefix of selector */
	enum dkim_alg alg;
	EVP_PKEY *pkey;
};

struct dkim_keys {
	char domain[DKIM_DOMAIN_MAX + 1];
	size_t n;
	struct dkim_key key[DKIM_KEYS_MAX];
};

const char *dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

const char *dkim_alg_key_type(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" : "rsa";
}

static const char *dkim_alg_suffix(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? DKIM_ED25519_SUFFIX : DKIM_RSA_SUFFIX;
}

/* Labels of letters, digits and '-' (not at a label's ends), dot-separated:
 * RFC 6376 §3.1 selector = sub-domain *( "." sub-domain ). */
static bool dkim_name_valid(const char *s, size_t max)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63) /* RFC 1035 §2.3.4 */
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

bool dkim_selector_valid(const char *s)
{
	return dkim_name_valid(s, DKIM_SELECTOR_BASE_MAX);
}

/* ---- loading ----------------------------------------------------------- */

void dkim_keys_free(struct dkim_keys *keys)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < keys->n; i++)
		EVP_PKEY_free(keys->key[i].pkey);
	free(keys);
}

size_t dkim_keys_count(const struct dkim_keys *keys)
{
	return keys == NULL ? 0 : keys->n;
}

const char *dkim_keys_domain(const struct dkim_keys *keys)
{
	return keys->domain;
}

const char *dkim_keys_selector(const struct dkim_keys *keys, size_t i)
{
	return keys->key[i].selector;
}

enum dkim_alg dkim_keys_alg(const struct dkim_keys *keys, size_t i)
{
	return keys->key[i].alg;
}

EVP_PKEY *dkim_keys_pkey(const struct dkim_keys *keys, size_t i)
{
	return keys->key[i].pkey;
}

static int dkim_key_dir(const char *data_dir, const char *domain, char *out, size_t outlen)
{
	return (size_t)snprintf(out, outlen, "%s/dkim/%s", data_dir, domain) < outlen ? 0 : -1;
}

/* A key file's name BASE.rsa.key / BASE.ed25519.key -> selector
 * BASE-rsa / BASE-ed25519 and algorithm; false for other files. */
static bool dkim_key_name(const char *name, struct dkim_key *k)
{
	static const enum dkim_alg algs[] = { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };
	size_t len = strlen(name);

	for (size_t a = 0; a < 2; a++) {
		const char *suffix = dkim_alg_suffix(algs[a]);
		size_t slen = strlen(suffix);
		if (len <= slen || strcmp(name + len - slen, suffix) != 0 ||
		    len - slen > DKIM_SELECTOR_BASE_MAX)
			continue;
		memcpy(k->selector, name, len - slen);
		k->selector[len - slen] = '\0';
		if (!dkim_selector_valid(k->selector))
			return false;
		k->base_len = len - slen;
		strcat(k->selector, "-");
		strcat(k->selector, dkim_alg_key_type(algs[a]));
		k->alg = algs[a];
		return true;
	}
	return false;
}

static int dkim_key_cmp(const void *a, const void *b)
{
	const struct dkim_key *x = a, *y = b;
	size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
	int c = memcmp(x->selector, y->selector, n);

	if (c == 0 && x->base_len != y->base_len)
		c = x->base_len < y->base_len ? -1 : 1;
	return c != 0 ? c : (int)x->alg - (int)y->alg;
}

static EVP_PKEY *dkim_read_key(const char *path, enum dkim_alg alg, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	BIO *bio;
	EVP_PKEY *pkey;

	if (read_small_file(path, DKIM_KEY_FILE_MAX, &text, &len) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_cleanse(text, len);
	free(text);
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key", path);
		return NULL;
	}
	if (alg == DKIM_ALG_RSA_SHA256 &&
	    (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < DKIM_RSA_BITS_MIN)) {
		snprintf(err, errlen, "%s: not an RSA key of at least %d bits (RFC 8301 §3.2)", path,
			 DKIM_RSA_BITS_MIN);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (alg == DKIM_ALG_ED25519_SHA256 && EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "%s: not an Ed25519 key", path);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

int dkim_keys_load(const char *data_dir, const char *domain, struct dkim_keys **keys_r,
		   char *err, size_t errlen)
{
	char dir[PATH_MAX], path[PATH_MAX], lower[DKIM_DOMAIN_MAX + 1];
	struct dkim_keys *keys;
	struct dirent *de;
	DIR *d;

	*keys_r = NULL;
	if (!dkim_name_valid(domain, DKIM_DOMAIN_MAX)) {
		snprintf(err, errlen, "dkim: bad domain name '%s'", domain);
		return -1;
	}
	str_copy(lower, domain, sizeof(lower));
	str_lower(lower); /* the directory name is in lower case */
	if (dkim_key_dir(data_dir, lower, dir, sizeof(dir)) < 0) {
		snprintf(err, errlen, "dkim: %s: path too long", data_dir);
		return -1;
	}
	keys = calloc(1, sizeof(*keys));
	if (keys == NULL) {
		snprintf(err, errlen, "dkim: out of memory");
		return -1;
	}
	str_copy(keys->domain, lower, sizeof(keys->domain));
	d = opendir(dir);
	if (d == NULL) {
		free(keys);
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "dkim: %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct dkim_key k = { 0 };
		if (!dkim_key_name(de->d_name, &k))
			continue;
		if (keys->n == DKIM_KEYS_MAX) {
			snprintf(err, errlen, "dkim: %s: more than %d key files", dir, DKIM_KEYS_MAX);
			goto fail;
		}
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path)) {
			snprintf(err, errlen, "dkim: %s: path too long", dir);
			goto fail;
		}
		k.pkey = dkim_read_key(path, k.alg, err, errlen);
		if (k.pkey == NULL)
			goto fail;
		keys->key[keys->n++] = k;
	}
	closedir(d);
	if (keys->n == 0) {
		free(keys);
		return 0;
	}
	qsort(keys->key, keys->n, sizeof(keys->key[0]), dkim_key_cmp);
	*keys_r = keys;
	return 0;
fail:
	closedir(d);
	dkim_keys_free(keys);
	return -1;
}

char *dkim_keys_public(const struct dkim_keys *keys, size_t i)
{
	EVP_PKEY *pkey = keys->key[i].pkey;
	unsigned char raw[DKIM_ED25519_RAW], *der = NULL;
	char *out = NULL;
	size_t rawlen = sizeof(raw);
	int len;

	if (keys->key[i].alg == DKIM_ALG_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1)
			return NULL;
		out = malloc(base64_encoded_len(rawlen) + 1);
		if (out != NULL)
			base64_encode(raw, rawlen, out);
		return out;
	}
	len = i2d_PUBKEY(pkey, &der);
	if (len <= 0)
		return NULL;
	out = malloc(base64_encoded_len((size_t)len) + 1);
	if (out != NULL)
		base64_encode(der, (size_t)len, out);
	OPENSSL_free(der);
	return out;
}

/* ---- postern dkim generate ---------------------------------------------- */

static EVP_PKEY *dkim_generate_key(enum dkim_alg alg)
{
	if (alg == DKIM_ALG_ED25519_SHA256)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS);
}

static int dkim_write_key(EVP_PKEY *pkey, const char *path)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long len;
	int rc = -1;

	if (bio == NULL)
		return -1;
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1) {
		len = BIO_get_mem_data(bio, &pem);
		errno = 0;
		rc = len > 0 ? write_file_new(path, pem, (size_t)len, 0600) : -1;
	}
	BIO_free_all(bio); /* the memory BIO cleanses nothing: keys are short-lived here */
	return rc;
}

/* Lower-case copy of a domain argument; false when it is not a name. */
static bool dkim_domain_arg(const char *arg, char *out, size_t outlen)
{
	size_t len = strlen(arg);

	if (len > 0 && arg[len - 1] == '.') /* "example.org." is the same */
		len--;
	if (len == 0 || len >= outlen || len > DKIM_DOMAIN_MAX)
		return false;
	memcpy(out, arg, len);
	out[len] = '\0';
	str_lower(out);
	return dkim_name_valid(out, DKIM_DOMAIN_MAX);
}

static int dkim_cli_generate(const struct config *cfg, int argc, char **argv)
{
	static const enum dkim_alg algs[] = { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };
	char domain[DKIM_DOMAIN_MAX + 1], selector[DKIM_SELECTOR_MAX + 1];
	char dir[PATH_MAX], path[2][PATH_MAX];
	const char *domain_arg = NULL;

	str_copy(selector, DKIM_DEFAULT_SELECTOR, sizeof(selector));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc) {
			const char *sel = argv[++i];
			if (!dkim_selector_valid(sel)) {
				fprintf(stderr, "postern: bad selector '%s' (letters, digits, '-', "
					"dots; at most %d)\n", sel, DKIM_SELECTOR_BASE_MAX);
				return EX_DATAERR;
			}
			str_copy(selector, sel, sizeof(selector));
			str_lower(selector);
		} else if (domain_arg == NULL && argv[i][0] != '-') {
			domain_arg = argv[i];
		} else {
			domain_arg = NULL;
			break;
		}
	}
	if (domain_arg == NULL) {
		fprintf(stderr, "usage: postern [-c FILE] dkim generate DOMAIN [--selector BASE]\n");
		return EX_USAGE;
	}
	if (!dkim_domain_arg(domain_arg, domain, sizeof(domain))) {
		fprintf(stderr, "postern: '%s' is not a domain name\n", domain_arg);
		return EX_DATAERR;
	}
	if (!config_is_local_domain(cfg, domain)) {
		fprintf(stderr, "postern: %s is not one of this server's domains (%s)\n", domain,
			cfg->path);
		return EX_NOUSER;
	}
	if (dkim_key_dir(cfg->data_dir, domain, dir, sizeof(dir)) < 0) {
		fprintf(stderr, "postern: %s: path too long\n", cfg->data_dir);
		return EX_CANTCREAT;
	}
	for (size_t a = 0; a < 2; a++) {
		if ((size_t)snprintf(path[a], sizeof(path[a]), "%s/%s%s", dir, selector,
				     dkim_alg_suffix(algs[a])) >= sizeof(path[a])) {
			fprintf(stderr, "postern: %s: path too long\n", dir);
			return EX_CANTCREAT;
		}
		if (access(path[a], F_OK) == 0) {
			fprintf(stderr, "postern: %s exists; keys are never overwritten (choose "
				"another --selector, or delete the old files after their DNS "
				"record is gone)\n", path[a]);
			return EX_CANTCREAT;
		}
	}
	if (mkdir_p(dir, 0700) < 0) {
		fprintf(stderr, "postern: %s: %s\n", dir, strerror(errno));
		return EX_CANTCREAT;
	}
	for (size_t a = 0; a < 2; a++) {
		EVP_PKEY *pkey = dkim_generate_key(algs[a]);
		int rc;
		if (pkey == NULL) {
			fprintf(stderr, "postern: cannot generate a %s key (OpenSSL)\n",
				dkim_alg_key_type(algs[a]));
			return EX_SOFTWARE;
		}
		rc = dkim_write_key(pkey, path[a]);
		EVP_PKEY_free(pkey);
		if (rc < 0) {
			fprintf(stderr, "postern: %s: %s\n", path[a],
				errno != 0 ? strerror(errno) : "cannot write the key");
			return EX_CANTCREAT;
		}
		printf("%s\n", path[a]);
	}
	printf("selectors %s-rsa and %s-ed25519: publish the records `postern dns %s` "
	       "prints\n", selector, selector, domain);
	return EX_OK;
}

int dkim_cli_dkim(const struct config *cfg, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "generate") == 0)
		return dkim_cli_generate(cfg, argc - 1, argv + 1);
	fprintf(stderr, "usage: postern [-c FILE] dkim generate DOMAIN [--selector BASE]\n");
	return EX_USAGE;
}

/* ---- postern dns -------------------------------------------------------- */

/* A TXT value as zone-file character-strings of at most 255 octets each
 * (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2: the strings are concatenated).
 * Our values hold no '"' nor '\\'. */
static void dkim_print_txt(const char *name, const char *value)
{
	size_t len = strlen(value);

	printf("%s\tIN TXT\t", name);
	for (size_t pos = 0; pos < len; pos += DKIM_TXT_STRING_MAX) {
		size_t take = len - pos < DKIM_TXT_STRING_MAX ? len - pos : DKIM_TXT_STRING_MAX;
		printf("%s\"%.*s\"", pos > 0 ? " " : "", (int)take, value + pos);
	}
	printf("\n");
}

/* The first listener of a role, or NULL. */
const struct config_listener *dkim_listener(const struct config *cfg, enum listener_role role)
{
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].role == role)
			return &cfg->listeners[i];
	return NULL;
}

/* RFC 8314 §5.1: implicit TLS services get the preferred (lower) priority;
 * RFC 6186 §3.4: priorities across IMAP and POP3 say which of the two the
 * domain prefers (IMAP here); a service not offered is published with target "."
 * (RFC 2782), which tells clients not to try it. */
static void dkim_print_srv(const struct config *cfg, const char *domain, const char *service,
			   enum listener_role role, unsigned priority)
{
	const struct config_listener *l = dkim_listener(cfg, role);
	char name[DKIM_DOMAIN_MAX + 32];

	snprintf(name, sizeof(name), "_%s._tcp.%s.", service, domain);
	if (l == NULL)
		printf("%s\tIN SRV\t0 0 0 .\n", name);
	else
		printf("%s\tIN SRV\t%u 1 %u %s.\n", name, priority, (unsigned)l->port, cfg->hostname);
}

/* The HTTP endpoint's records (core/config_http.c). */
static void dkim_print_http_records(const struct config *cfg, const char *domain)
{
	struct buf b;

	buf_init(&b, 8192);
	if (config_http_dns_records(cfg, domain, &b) == 0 && b.len > 0)
		fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
}

int dkim_cli_dns(const struct config *cfg, int argc, char **argv)
{
	char domain[DKIM_DOMAIN_MAX + 1], err[PATH_MAX + 256], name[DKIM_DOMAIN_MAX + 96];
	struct dkim_keys *keys = NULL;
	int rc = EX_OK;

	bool check = argc == 3 && strcmp(argv[1], "--check") == 0;

	if (argc != 2 && !check) {
		fprintf(stderr, "usage: postern [-c FILE] dns [--check] DOMAIN\n");
		return EX_USAGE;
	}
	if (!dkim_domain_arg(argv[argc - 1], domain, sizeof(domain))) {
		fprintf(stderr, "postern: '%s' is not a domain name\n", argv[argc - 1]);
		return EX_DATAERR;
	}
	if (!config_is_local_domain(cfg, domain)) {
		fprintf(stderr, "postern: %s is not one of this server's domains (%s)\n", domain,
			cfg->path);
		return EX_NOUSER;
	}
	if (dkim_keys_load(cfg->data_dir, domain, &keys, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return EX_NOINPUT;
	}
	if (check) {
		rc = smtp_dns_check(cfg, domain, keys);
		dkim_keys_free(keys);
		return rc;
	}
	printf("; DNS records for %s, from postern's configuration %s\n", domain, cfg->path);
	printf("; Also: the PTR record of this server's public address should name %s.,\n"
	       "; and %s. needs A/AAAA records for that address.\n\n", cfg->hostname, cfg->hostname);
	if (dkim_listener(cfg, ROLE_SMTP) == NULL)
		printf("; warning: no listener with role smtp: this server receives no mail from "
		       "the world\n");
	printf("%s.\tIN MX\t10 %s.\n", domain, cfg->hostname);
	snprintf(name, sizeof(name), "%s.", domain);
	dkim_print_txt(name, "v=spf1 mx -all");
	if (dkim_keys_count(keys) == 0)
		printf("; no DKIM key: run `postern dkim generate %s`, then this again\n", domain);
	for (size_t i = 0; i < dkim_keys_count(keys); i++) {
		char *p = dkim_keys_public(keys, i), *value;
		size_t vlen;
		if (p == NULL) {
			fprintf(stderr, "postern: cannot encode the public key (OpenSSL)\n");
			rc = EX_SOFTWARE;
			break;
		}
		vlen = strlen(p) + 64;
		value = malloc(vlen);
		if (value == NULL) {
			free(p);
			rc = EX_OSERR;
			break;
		}
		snprintf(value, vlen, "v=DKIM1; k=%s; p=%s",
			 dkim_alg_key_type(dkim_keys_alg(keys, i)), p);
		snprintf(name, sizeof(name), "%s._domainkey.%s.", dkim_keys_selector(keys, i), domain);
		dkim_print_txt(name, value);
		free(value);
		free(p);
	}
	snprintf(name, sizeof(name), "_dmarc.%s.", domain);
	snprintf(err, sizeof(err), "v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@%s",
		 domain);
	dkim_print_txt(name, err);
	printf("; RFC 6186 client configuration (implicit TLS preferred, RFC 8314 §5.1)\n");
	dkim_print_srv(cfg, domain, "submissions", ROLE_SUBMISSIONS, 0);
	dkim_print_srv(cfg, domain, "submission", ROLE_SUBMISSION, 10);
	dkim_print_srv(cfg, domain, "imaps", ROLE_IMAPS, 0);
	dkim_print_srv(cfg, domain, "imap", ROLE_IMAP, 10);
	dkim_print_srv(cfg, domain, "pop3s", ROLE_POP3S, 20);
	dkim_print_srv(cfg, domain, "pop3", ROLE_POP3, 30);
	dkim_print_http_records(cfg, domain);
	dkim_keys_free(keys);
	return rc;
}
