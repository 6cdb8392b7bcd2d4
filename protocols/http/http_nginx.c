/* GET /auth: nginx's mail proxy asks, for each login on its IMAP, POP3 or
 * SMTP port (ngx_mail_auth_http_module), whether the password is right
 * and which server to pass the session to.  Postern checks the password
 * like any login (throttle per the client's address, which nginx sends as
 * Client-IP; verify on the AUTH pool) and answers from the shards file
 * (auth_shard_of(), auth/auth_shards.c) with the instance that holds the
 * mailbox.
 *
 * Request headers used: Auth-Method (only "plain": the password in clear,
 * which nginx uses for IMAP LOGIN and AUTHENTICATE PLAIN/LOGIN, POP3
 * USER/PASS and SMTP AUTH PLAIN/LOGIN), Auth-User and Auth-Pass (nginx
 * percent-escapes them), Auth-Protocol, Auth-Login-Attempt, Client-IP.
 * The answer is in the headers of a 200: Auth-Status "OK" with
 * Auth-Server (an IP address) and Auth-Port; otherwise a message for the
 * client, Auth-Wait to let it try again (not after HTTP_NGINX_ATTEMPTS_MAX
 * attempts: nginx keeps memory per attempt), and for SMTP Auth-Error-Code.
 * Only peers in trusted_networks (or loopback) may ask: anyone else
 * could use it to test passwords past the mail ports. */
#include "http_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "util.h"

#define HTTP_NGINX_ATTEMPTS_MAX 10
#define HTTP_NGINX_WAIT_S "3"

static int http_nginx_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX decoding into out (outlen with the NUL); false when malformed or
 * too long, or when it decodes to a NUL. */
static bool http_nginx_unescape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = in; *p != '\0'; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int hi = http_nginx_hex(p[1]), lo = hi < 0 ? -1 : http_nginx_hex(p[2]);

			if (lo < 0)
				return false;
			c = hi * 16 + lo;
			p += 2;
		}
		if (c == 0 || o + 1 >= outlen)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

static void http_nginx_reply(struct evhttp_request *req, const char *status,
			     const struct auth_shard *sh, uint16_t port, const char *proto,
			     unsigned attempt)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char num[8];

	evhttp_add_header(h, "Auth-Status", status);
	if (sh != NULL) {
		snprintf(num, sizeof(num), "%u", (unsigned)port);
		evhttp_add_header(h, "Auth-Server", sh->address);
		evhttp_add_header(h, "Auth-Port", num);
	} else {
		if (attempt < HTTP_NGINX_ATTEMPTS_MAX)
			evhttp_add_header(h, "Auth-Wait", HTTP_NGINX_WAIT_S);
		if (strcmp(proto, "smtp") == 0)
			evhttp_add_header(h, "Auth-Error-Code", "535 5.7.8");
	}
	http_reply(req, HTTP_OK, "text/plain; charset=utf-8", NULL);
}

void http_nginx_answer(struct http_ctx *ctx, struct evhttp_request *req, const char *canonical,
		       const struct auth_shard *sh, const char *proto, unsigned attempt)
{
	uint16_t port;

	if (canonical == NULL) {
		http_nginx_reply(req, "Invalid login or password", NULL, 0, proto, attempt);
		return;
	}
	port = sh == NULL ? 0 : strcmp(proto, "imap") == 0 ? sh->imap_port :
		strcmp(proto, "pop3") == 0 ? sh->pop3_port : sh->smtp_port;
	if (sh == NULL || port == 0) {
		log_warn("http nginx: no shard serves %s for %s (%s)", proto, canonical,
			 ctx->cfg->shards_file);
		/* no Auth-Wait: trying again cannot help */
		http_nginx_reply(req, "Temporary server problem, try again later", NULL, 0, proto,
				 HTTP_NGINX_ATTEMPTS_MAX);
		return;
	}
	log_info("http nginx: user=%s proto=%s shard=%s", canonical, proto, sh->name);
	http_nginx_reply(req, "OK", sh, port, proto, attempt);
}

void http_nginx_serve(struct http_listener *l, struct evhttp_request *req)
{
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *method = evhttp_find_header(in, "Auth-Method");
	const char *user = evhttp_find_header(in, "Auth-User");
	const char *pass = evhttp_find_header(in, "Auth-Pass");
	const char *proto = evhttp_find_header(in, "Auth-Protocol");
	const char *attempt_s = evhttp_find_header(in, "Auth-Login-Attempt");
	const char *client = evhttp_find_header(in, "Client-IP");
	char ip[64], u[AUTH_ADDRESS_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
	unsigned long attempt = attempt_s != NULL ? strtoul(attempt_s, NULL, 10) : 1;
	bool trusted, loopback;

	http_peer(req, l->ctx->cfg, ip, sizeof(ip), &trusted, &loopback);
	if ((!trusted && !loopback) || l->ctx->cfg->shards_file[0] == '\0') {
		http_reply(req, trusted || loopback ? HTTP_NOTFOUND : HTTP_STATUS_FORBIDDEN,
			   NULL, NULL);
		return;
	}
	if (proto == NULL || (strcmp(proto, "imap") != 0 && strcmp(proto, "pop3") != 0 &&
			      strcmp(proto, "smtp") != 0)) {
		http_reply(req, HTTP_BADREQUEST, NULL, NULL);
		return;
	}
	if (client != NULL && strlen(client) < sizeof(ip))
		str_copy(ip, client, sizeof(ip)); /* the throttle counts the real client */
	if (attempt > HTTP_NGINX_ATTEMPTS_MAX)
		attempt = HTTP_NGINX_ATTEMPTS_MAX;
	if (method == NULL || strcmp(method, "plain") != 0 || user == NULL || pass == NULL ||
	    !http_nginx_unescape(user, u, sizeof(u)) || !http_nginx_unescape(pass, pw, sizeof(pw)) ||
	    !auth_address_valid(u)) {
		/* APOP, CRAM-MD5 and EXTERNAL need what we never store */
		http_nginx_reply(req, "Invalid login or password", NULL, 0, proto, (unsigned)attempt);
		OPENSSL_cleanse(pw, sizeof(pw));
		return;
	}
	http_auth_begin(l, req, ip, u, pw, HTTP_AUTH_NGINX, proto, (unsigned)attempt);
	OPENSSL_cleanse(pw, sizeof(pw));
}
