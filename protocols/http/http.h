/* The HTTP endpoint (listener role http): mail client autoconfiguration
 * (Thunderbird autoconfig, Microsoft Autodiscover POX, an Apple
 * .mobileconfig for an authenticated user), the MTA-STS policy (RFC 8461)
 * and /metrics in the Prometheus text format.  Built on libevent's evhttp;
 * plain HTTP (behind a reverse proxy, or on loopback) or implicit TLS with
 * the server's certificates.
 *
 *   GET  /.well-known/autoconfig/mail/config-v1.1.xml   generic for a domain
 *   GET  /mail/config-v1.1.xml?emailaddress=ADDRESS      the same
 *   POST /autodiscover/autodiscover.xml                  Outlook's POX request
 *   GET  /mail.mobileconfig                              Basic auth, TLS or
 *                                                        allowed loopback
 *   GET  /.well-known/mta-sts.txt                        mta_sts_* keys
 *   GET  /metrics                                        trusted_networks only
 *
 * Nothing here says whether a user exists: the autoconfig answers are the
 * same for every address of a domain, and the profile needs the password.
 * The rest of the module is private (http_private.h). */
#ifndef HTTP_HTTP_H
#define HTTP_HTTP_H

#include <stddef.h>

struct server;
struct auth;
struct md_store;

/* Take over the server's http listeners (server_take_listeners) with one
 * evhttp each.  auth must outlive srv.  0, or -1 with err set. */
int http_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen);

#endif
