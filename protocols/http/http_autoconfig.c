/* The answers that set up mail clients, all derived from the listeners and
 * `hostname` (or autoconfig_hostname):
 *   - Thunderbird's autoconfig file, clientConfig version 1.1 (Mozilla's
 *     "Autoconfiguration" format: emailProvider, incomingServer type
 *     imap|pop3, outgoingServer type smtp, socketType SSL|STARTTLS,
 *     username %EMAILADDRESS%, authentication password-cleartext);
 *   - Microsoft Autodiscover "POX" (responseschema 2006a, Protocol blocks
 *     of type IMAP, POP3, SMTP);
 *   - an unsigned Apple configuration profile (com.apple.mail.managed).
 * (The MTA-STS policy text is core's, config_mta_sts_policy(), since
 * `postern dns` derives its id from it.)
 * None of them depends on whether a user exists. */
#include "http_private.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "util.h"

/* Listener roles that clients use, with their service and TLS. */
static bool http_service_of(const struct config_listener *l, struct http_service *svc)
{
	switch (l->role) {
	case ROLE_IMAP:
	case ROLE_IMAPS:
		svc->type = HTTP_SVC_IMAP;
		break;
	case ROLE_POP3:
	case ROLE_POP3S:
		svc->type = HTTP_SVC_POP3;
		break;
	case ROLE_SUBMISSION:
	case ROLE_SUBMISSIONS:
		svc->type = HTTP_SVC_SMTP;
		break;
	default:
		return false; /* port 25 is for other servers; http is us */
	}
	if (l->tls == TLS_MODE_NONE)
		return false; /* passwords only over TLS */
	svc->port = l->port;
	svc->implicit_tls = l->tls == TLS_MODE_IMPLICIT;
	return true;
}

size_t http_services(const struct config *cfg, struct http_service *out, size_t max)
{
	size_t n = 0;

	/* Two passes: implicit TLS first (RFC 8314 §3), then STARTTLS. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < cfg->n_listeners && n < max; i++) {
			struct http_service svc;
			bool dup = false;
			if (!http_service_of(&cfg->listeners[i], &svc) ||
			    svc.implicit_tls != (pass == 0))
				continue;
			for (size_t k = 0; k < n && !dup; k++)
				dup = out[k].type == svc.type && out[k].port == svc.port;
			if (!dup)
				out[n++] = svc;
		}
	return n;
}

int http_xml_escape(struct buf *out, const char *text)
{
	int bad = 0;

	for (; *text != '\0' && !bad; text++)
		switch (*text) {
		case '&': bad = buf_appendf(out, "&amp;"); break;
		case '<': bad = buf_appendf(out, "&lt;"); break;
		case '>': bad = buf_appendf(out, "&gt;"); break;
		case '"': bad = buf_appendf(out, "&quot;"); break;
		case '\'': bad = buf_appendf(out, "&apos;"); break;
		default: bad = buf_putc(out, *text); break;
		}
	return bad ? -1 : 0;
}

static const char *const http_svc_names[] = { "imap", "pop3", "smtp" };

static int http_autoconfig_server(const struct config *cfg, const struct http_service *svc,
				  struct buf *out)
{
	const char *tag = svc->type == HTTP_SVC_SMTP ? "outgoingServer" : "incomingServer";
	int bad = 0;

	bad |= buf_appendf(out, "    <%s type=\"%s\">\n      <hostname>", tag,
			   http_svc_names[svc->type]);
	bad |= http_xml_escape(out, config_http_client_hostname(cfg));
	bad |= buf_appendf(out, "</hostname>\n      <port>%u</port>\n"
			   "      <socketType>%s</socketType>\n"
			   "      <username>%%EMAILADDRESS%%</username>\n"
			   "      <authentication>password-cleartext</authentication>\n"
			   "    </%s>\n", svc->port, svc->implicit_tls ? "SSL" : "STARTTLS", tag);
	return bad ? -1 : 0;
}

int http_autoconfig_xml(const struct config *cfg, const char *domain, struct buf *out)
{
	struct http_service svc[HTTP_SERVICES_MAX];
	size_t n = http_services(cfg, svc, HTTP_SERVICES_MAX);
	int bad = 0;

	bad |= buf_appendf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			   "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	bad |= http_xml_escape(out, domain);
	bad |= buf_appendf(out, "\">\n    <domain>");
	bad |= http_xml_escape(out, domain);
	bad |= buf_appendf(out, "</domain>\n    <displayName>");
	bad |= http_xml_escape(out, domain);
	bad |= buf_appendf(out, "</displayName>\n    <displayShortName>");
	bad |= http_xml_escape(out, domain);
	bad |= buf_appendf(out, "</displayShortName>\n");
	/* Thunderbird reads the incoming servers, then the outgoing ones. */
	for (size_t i = 0; i < n; i++)
		if (svc[i].type != HTTP_SVC_SMTP)
			bad |= http_autoconfig_server(cfg, &svc[i], out);
	for (size_t i = 0; i < n; i++)
		if (svc[i].type == HTTP_SVC_SMTP)
			bad |= http_autoconfig_server(cfg, &svc[i], out);
	bad |= buf_appendf(out, "  </emailProvider>\n</clientConfig>\n");
	return bad ? -1 : 0;
}

void http_autodiscover_address(const char *body, size_t len, char *out, size_t outlen)
{
	static const char open[] = "<EMailAddress>", close[] = "</EMailAddress>";
	const char *start = memmem(body, len, open, sizeof(open) - 1);
	const char *end;
	size_t n;

	out[0] = '\0';
	if (start == NULL)
		return;
	start += sizeof(open) - 1;
	end = memmem(start, len - (size_t)(start - body), close, sizeof(close) - 1);
	if (end == NULL || (n = (size_t)(end - start)) == 0 || n >= outlen)
		return;
	memcpy(out, start, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++) /* the address syntax the rest of us takes */
		if ((unsigned char)out[i] <= ' ' || (unsigned char)out[i] >= 0x7f ||
		    strchr("<>&\"'", out[i]) != NULL) {
			out[0] = '\0';
			return;
		}
	if (strchr(out, '@') == NULL)
		out[0] = '\0';
}

int http_autodiscover_xml(const struct config *cfg, const char *address, struct buf *out)
{
	static const char *const types[] = { "IMAP", "POP3", "SMTP" };
	struct http_service svc[HTTP_SERVICES_MAX];
	size_t n = http_services(cfg, svc, HTTP_SERVICES_MAX);
	int bad = 0;

	bad |= buf_appendf(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			   "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
			   "autodiscover/responseschema/2006\">\n"
			   "  <Response xmlns=\"http://schemas.microsoft.com/exchange/"
			   "autodiscover/outlook/responseschema/2006a\">\n"
			   "    <Account>\n      <AccountType>email</AccountType>\n"
			   "      <Action>settings</Action>\n");
	for (size_t i = 0; i < n; i++) {
		bad |= buf_appendf(out, "      <Protocol>\n        <Type>%s</Type>\n"
				   "        <Server>", types[svc[i].type]);
		bad |= http_xml_escape(out, config_http_client_hostname(cfg));
		bad |= buf_appendf(out, "</Server>\n        <Port>%u</Port>\n"
				   "        <DomainRequired>off</DomainRequired>\n",
				   svc[i].port);
		if (address[0] != '\0') {
			bad |= buf_appendf(out, "        <LoginName>");
			bad |= http_xml_escape(out, address);
			bad |= buf_appendf(out, "</LoginName>\n");
		}
		/* SSL on: implicit TLS; Encryption TLS: STARTTLS. */
		bad |= buf_appendf(out, "        <SPA>off</SPA>\n        <SSL>%s</SSL>\n%s"
				   "        <AuthRequired>on</AuthRequired>\n      </Protocol>\n",
				   svc[i].implicit_tls ? "on" : "off",
				   svc[i].implicit_tls ? "" : "        <Encryption>TLS</Encryption>\n");
	}
	bad |= buf_appendf(out, "    </Account>\n  </Response>\n</Autodiscover>\n");
	return bad ? -1 : 0;
}

/* A stable UUID for the profile of one address on this server, so that
 * installing it again replaces the old one: SHA-256 of the names, shaped as
 * an RFC 9562 version 8 UUID. */
static void http_profile_uuid(const struct config *cfg, const char *address,
			      const char *salt, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char text[CONFIG_DOMAIN_LEN * 2 + 64];
	int n = snprintf(text, sizeof(text), "%s\n%s\n%s", salt, cfg->hostname, address);

	EVP_Digest(text, n > 0 ? (size_t)n : 0, md, &mdlen, EVP_sha256(), NULL);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
		 "%02X%02X%02X%02X%02X%02X", md[0], md[1], md[2], md[3], md[4], md[5],
		 md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
}

static int http_plist_string(struct buf *out, const char *key, const char *value)
{
	int bad = buf_appendf(out, "\t\t\t<key>%s</key>\n\t\t\t<string>", key);

	bad |= http_xml_escape(out, value);
	bad |= buf_appendf(out, "</string>\n");
	return bad ? -1 : 0;
}

static int http_plist_server(struct buf *out, const char *side, const char *host,
			     const char *address, const struct http_service *svc)
{
	char key[64];
	int bad = 0;

	snprintf(key, sizeof(key), "%sMailServerAuthentication", side);
	bad |= http_plist_string(out, key, "EmailAuthPassword");
	snprintf(key, sizeof(key), "%sMailServerHostName", side);
	bad |= http_plist_string(out, key, host);
	bad |= buf_appendf(out, "\t\t\t<key>%sMailServerPortNumber</key>\n"
			   "\t\t\t<integer>%u</integer>\n"
			   "\t\t\t<key>%sMailServerUseSSL</key>\n\t\t\t<true/>\n",
			   side, svc->port, side);
	snprintf(key, sizeof(key), "%sMailServerUsername", side);
	bad |= http_plist_string(out, key, address);
	return bad ? -1 : 0;
}

/* Apple Mail speaks STARTTLS on a port when "UseSSL" is true and the port
 * is not an implicit TLS one, so both kinds are fine; we prefer implicit. */
int http_mobileconfig(const struct config *cfg, const char *address, struct buf *out)
{
	struct http_service svc[HTTP_SERVICES_MAX];
	size_t n = http_services(cfg, svc, HTTP_SERVICES_MAX);
	const struct http_service *in = NULL, *smtp = NULL;
	const char *host = config_http_client_hostname(cfg);
	char uuid_account[37], uuid_profile[37];
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		if (svc[i].type == HTTP_SVC_SMTP && smtp == NULL)
			smtp = &svc[i];
		if (svc[i].type != HTTP_SVC_SMTP &&
		    (in == NULL || (in->type == HTTP_SVC_POP3 && svc[i].type == HTTP_SVC_IMAP)))
			in = &svc[i];
	}
	if (in == NULL || smtp == NULL)
		return -1;
	http_profile_uuid(cfg, address, "account", uuid_account);
	http_profile_uuid(cfg, address, "profile", uuid_profile);
	bad |= buf_appendf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			   "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
			   "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
			   "<plist version=\"1.0\">\n<dict>\n\t<key>PayloadContent</key>\n"
			   "\t<array>\n\t\t<dict>\n");
	bad |= http_plist_string(out, "EmailAccountDescription", address);
	bad |= http_plist_string(out, "EmailAccountType", in->type == HTTP_SVC_IMAP ?
				 "EmailTypeIMAP" : "EmailTypePOP");
	bad |= http_plist_string(out, "EmailAddress", address);
	bad |= http_plist_server(out, "Incoming", host, address, in);
	bad |= http_plist_server(out, "Outgoing", host, address, smtp);
	bad |= buf_appendf(out, "\t\t\t<key>OutgoingPasswordSameAsIncomingPassword</key>\n"
			   "\t\t\t<true/>\n");
	bad |= http_plist_string(out, "PayloadDisplayName", address);
	bad |= buf_appendf(out, "\t\t\t<key>PayloadIdentifier</key>\n\t\t\t<string>");
	bad |= http_xml_escape(out, host);
	bad |= buf_appendf(out, ".mail.%s</string>\n", uuid_account);
	bad |= http_plist_string(out, "PayloadType", "com.apple.mail.managed");
	bad |= http_plist_string(out, "PayloadUUID", uuid_account);
	bad |= buf_appendf(out, "\t\t\t<key>PayloadVersion</key>\n\t\t\t<integer>1</integer>\n"
			   "\t\t</dict>\n\t</array>\n\t<key>PayloadDisplayName</key>\n\t<string>");
	bad |= http_xml_escape(out, address);
	bad |= buf_appendf(out, "</string>\n\t<key>PayloadIdentifier</key>\n\t<string>");
	bad |= http_xml_escape(out, host);
	bad |= buf_appendf(out, ".profile.%s</string>\n\t<key>PayloadType</key>\n"
			   "\t<string>Configuration</string>\n\t<key>PayloadUUID</key>\n"
			   "\t<string>%s</string>\n\t<key>PayloadVersion</key>\n"
			   "\t<integer>1</integer>\n</dict>\n</plist>\n", uuid_profile, uuid_profile);
	return bad ? -1 : 0;
}
