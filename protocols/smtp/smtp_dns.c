/* DNS look-ups for the inbound checks, with a bounded cache.
 *
 * The cache is direct-mapped: SMTP_DNS_CACHE_SLOTS slots, a (name, type)
 * goes to one slot by its hash and replaces whatever was there, so memory
 * stays bounded whatever names the senders make us look up.  An answer is
 * kept for the smallest TTL of its records, at most SMTP_DNS_TTL_MAX; a
 * name or type that does not exist for SMTP_DNS_NEG_TTL; failures are not
 * cached (the next message asks again).  One mutex guards the slots; the
 * query itself runs outside it.
 */
#include "smtp_dns.h"

#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_DNS_ANSWER_MAX 65536 /* RFC 1035 §4.2.2: TCP message length */

int smtp_dns_answer_add(struct smtp_dns_answer *a, const char *s)
{
	if (a->n >= SMTP_DNS_RR_MAX)
		return -1;
	a->rr[a->n] = strdup(s);
	if (a->rr[a->n] == NULL)
		return -1;
	a->n++;
	return 0;
}

void smtp_dns_answer_free(struct smtp_dns_answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->rr[i]);
	a->n = 0;
}

static void smtp_dns_answer_copy(struct smtp_dns_answer *dst, const struct smtp_dns_answer *src)
{
	dst->status = src->status;
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		if (smtp_dns_answer_add(dst, src->rr[i]) < 0) {
			smtp_dns_answer_free(dst);
			dst->status = SMTP_DNS_FAIL;
			return;
		}
}

enum smtp_dns_status smtp_dns_query(struct smtp_dns *dns, const char *name,
				    enum smtp_dns_type type, struct smtp_dns_answer *a)
{
	memset(a, 0, sizeof(*a));
	dns->queries++;
	if (dns->deadline != 0 && time(NULL) >= dns->deadline) {
		a->status = SMTP_DNS_FAIL;
		return a->status;
	}
	a->status = dns->lookup(dns, name, type, a);
	if (a->status != SMTP_DNS_OK)
		smtp_dns_answer_free(a);
	return a->status;
}

/* ---- the resolver ---------------------------------------------------------- */

/* IPv6 name servers live outside nsaddr_list, in the _u._ext fields of
 * <resolv.h> (glibc: res_send uses _ext.nsaddrs[i] when nsaddr_list[i]
 * has family 0, res_nclose frees them).  Those res_ninit filled from
 * /etc/resolv.conf are dropped here before dns_resolver replaces them. */
static void smtp_dns_res_drop_ext(res_state st)
{
	for (int i = 0; i < MAXNS; i++) {
		free(st->_u._ext.nsaddrs[i]);
		st->_u._ext.nsaddrs[i] = NULL;
	}
	st->_u._ext.nscount = 0; /* res_send sets up its sockets again */
}

/* dns_resolver as the one name server; 0 or -1. */
static int smtp_dns_res_server(const struct config *cfg, res_state st)
{
	struct in_addr a4;
	struct in6_addr a6;
	uint16_t port = htons((uint16_t)cfg->dns_resolver_port);

	smtp_dns_res_drop_ext(st);
	memset(&st->nsaddr_list[0], 0, sizeof(st->nsaddr_list[0]));
	if (inet_pton(AF_INET, cfg->dns_resolver_addr, &a4) == 1) {
		st->nsaddr_list[0].sin_family = AF_INET;
		st->nsaddr_list[0].sin_addr = a4;
		st->nsaddr_list[0].sin_port = port;
	} else if (inet_pton(AF_INET6, cfg->dns_resolver_addr, &a6) == 1) {
		struct sockaddr_in6 *s6 = calloc(1, sizeof(*s6));
		if (s6 == NULL)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = a6;
		s6->sin6_port = port;
		st->_u._ext.nsaddrs[0] = s6; /* freed by res_nclose */
	} else {
		return -1; /* config_outbound.c checked it */
	}
	st->nscount = 1;
	return 0;
}

int smtp_dns_res_init(const struct config *cfg, struct __res_state *st, int timeout_s, int tries)
{
	memset(st, 0, sizeof(*st));
	if (res_ninit(st) < 0)
		return -1;
	st->retrans = timeout_s;
	st->retry = tries;
	if (cfg->has_dns_resolver && smtp_dns_res_server(cfg, st) < 0) {
		res_nclose(st);
		return -1;
	}
	return 0;
}

static const int smtp_dns_ns_type[] = {
	[SMTP_DNS_A] = ns_t_a, [SMTP_DNS_AAAA] = ns_t_aaaa, [SMTP_DNS_MX] = ns_t_mx,
	[SMTP_DNS_TXT] = ns_t_txt, [SMTP_DNS_PTR] = ns_t_ptr, [SMTP_DNS_SRV] = ns_t_srv,
};

/* One record's data as text into out (SMTP_DNS_TEXT_MAX + 1); 0, 1 when
 * the record is to be skipped, -1 when it is malformed. */
static int smtp_dns_rdata(const ns_msg *msg, const ns_rr *rr, enum smtp_dns_type type, char *out)
{
	const unsigned char *d = ns_rr_rdata(*rr);
	size_t len = ns_rr_rdlen(*rr), o = 0;

	switch (type) {
	case SMTP_DNS_A:
	case SMTP_DNS_AAAA:
		if (len != (type == SMTP_DNS_A ? 4u : 16u))
			return -1;
		inet_ntop(type == SMTP_DNS_A ? AF_INET : AF_INET6, d, out, INET6_ADDRSTRLEN);
		return 0;
	case SMTP_DNS_MX:
	case SMTP_DNS_PTR:
		if (type == SMTP_DNS_MX) {
			if (len < 3)
				return -1;
			d += 2;
		}
		if (dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), d, out, NS_MAXDNAME) < 0)
			return -1;
		return 0;
	case SMTP_DNS_SRV: {
		/* RFC 2782: priority, weight, port, target ("." when the
		 * service is not offered, RFC 6186 §4) */
		char target[NS_MAXDNAME];

		if (len < 7 || dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), d + 6, target,
					 sizeof(target)) < 0)
			return -1;
		snprintf(out, SMTP_DNS_TEXT_MAX + 1, "%u %u %u %s", (unsigned)(d[0] << 8 | d[1]),
			 (unsigned)(d[2] << 8 | d[3]), (unsigned)(d[4] << 8 | d[5]),
			 target[0] != '\0' ? target : ".");
		return 0;
	}
	case SMTP_DNS_TXT:
		/* RFC 1035 §3.3.14: character-strings, joined (RFC 7208 §3.3) */
		for (size_t i = 0; i < len;) {
			size_t n = d[i++];
			if (n > len - i)
				return -1;
			if (o + n > SMTP_DNS_TEXT_MAX)
				return 1;
			memcpy(out + o, d + i, n);
			o += n;
			i += n;
		}
		out[o] = '\0';
		return 0;
	}
	return -1;
}

static enum smtp_dns_status smtp_dns_parse(const unsigned char *ans, int len,
					   enum smtp_dns_type type, struct smtp_dns_answer *a,
					   uint32_t *ttl_r)
{
	char text[SMTP_DNS_TEXT_MAX + NS_MAXDNAME + 1];
	ns_msg msg;
	ns_rr rr;

	*ttl_r = SMTP_DNS_TTL_MAX;
	if (ns_initparse(ans, len, &msg) < 0)
		return SMTP_DNS_FAIL;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		int rc;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return SMTP_DNS_FAIL;
		if ((int)ns_rr_type(rr) != smtp_dns_ns_type[type])
			continue; /* a CNAME on the way */
		rc = smtp_dns_rdata(&msg, &rr, type, text);
		if (rc < 0)
			return SMTP_DNS_FAIL;
		if (rc > 0)
			continue;
		if (ns_rr_ttl(rr) < *ttl_r)
			*ttl_r = ns_rr_ttl(rr);
		if (smtp_dns_answer_add(a, text) < 0)
			break; /* more than SMTP_DNS_RR_MAX: the first ones */
	}
	return SMTP_DNS_OK;
}

static enum smtp_dns_status smtp_dns_resolve(const struct config *cfg, time_t deadline,
					     const char *name, enum smtp_dns_type type,
					     struct smtp_dns_answer *a, uint32_t *ttl_r)
{
	struct __res_state st;
	unsigned char *ans = malloc(SMTP_DNS_ANSWER_MAX);
	enum smtp_dns_status status = SMTP_DNS_FAIL;
	int timeout = SMTP_DNS_TIMEOUT_S, n;

	if (deadline != 0) {
		time_t left = deadline - time(NULL);
		if (left <= 0) {
			free(ans);
			return SMTP_DNS_FAIL;
		}
		if (left < timeout)
			timeout = (int)left;
	}
	if (ans == NULL || smtp_dns_res_init(cfg, &st, timeout, SMTP_DNS_TRIES) < 0) {
		free(ans);
		return SMTP_DNS_FAIL;
	}
	n = res_nquery(&st, name, ns_c_in, smtp_dns_ns_type[type], ans, SMTP_DNS_ANSWER_MAX);
	if (n >= 0)
		status = smtp_dns_parse(ans, n, type, a, ttl_r);
	else if (st.res_h_errno == HOST_NOT_FOUND)
		status = SMTP_DNS_NXDOMAIN;
	else if (st.res_h_errno == NO_DATA)
		status = SMTP_DNS_NODATA;
	res_nclose(&st);
	free(ans);
	return status;
}

/* ---- the cache ------------------------------------------------------------- */

struct smtp_dns_slot {
	char name[256];               /* RFC 1035 §2.3.4: 255 octets */
	enum smtp_dns_type type;
	time_t expires;               /* 0: empty */
	struct smtp_dns_answer answer;
};

struct smtp_dns_cache {
	const struct config *cfg;
	pthread_mutex_t lock;
	struct smtp_dns_slot *slots;  /* SMTP_DNS_CACHE_SLOTS */
};

struct smtp_dns_cache *smtp_dns_cache_new(const struct config *cfg)
{
	struct smtp_dns_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->slots = calloc(SMTP_DNS_CACHE_SLOTS, sizeof(*c->slots));
	if (c->slots == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->slots);
		free(c);
		return NULL;
	}
	c->cfg = cfg;
	return c;
}

void smtp_dns_cache_free(struct smtp_dns_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < SMTP_DNS_CACHE_SLOTS; i++)
		smtp_dns_answer_free(&c->slots[i].answer);
	pthread_mutex_destroy(&c->lock);
	free(c->slots);
	free(c);
}

static size_t smtp_dns_slot_of(const char *name, enum smtp_dns_type type)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const char *p = name; *p != '\0'; p++) {
		char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
		h = (h ^ (unsigned char)ch) * 16777619u;
	}
	h = (h ^ (unsigned)type) * 16777619u;
	return h % SMTP_DNS_CACHE_SLOTS;
}

static bool smtp_dns_cache_get(struct smtp_dns_cache *c, const char *name,
			       enum smtp_dns_type type, struct smtp_dns_answer *a)
{
	struct smtp_dns_slot *sl = &c->slots[smtp_dns_slot_of(name, type)];
	bool hit;

	pthread_mutex_lock(&c->lock);
	hit = sl->expires > time(NULL) && sl->type == type && strcasecmp(sl->name, name) == 0;
	if (hit)
		smtp_dns_answer_copy(a, &sl->answer);
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void smtp_dns_cache_put(struct smtp_dns_cache *c, const char *name,
			       enum smtp_dns_type type, const struct smtp_dns_answer *a,
			       uint32_t ttl)
{
	struct smtp_dns_slot *sl = &c->slots[smtp_dns_slot_of(name, type)];

	if (strlen(name) >= sizeof(sl->name) || ttl == 0)
		return;
	pthread_mutex_lock(&c->lock);
	smtp_dns_answer_free(&sl->answer);
	str_copy(sl->name, name, sizeof(sl->name));
	sl->type = type;
	smtp_dns_answer_copy(&sl->answer, a);
	sl->expires = sl->answer.status == SMTP_DNS_FAIL ? 0 : time(NULL) + (time_t)ttl;
	pthread_mutex_unlock(&c->lock);
}

static enum smtp_dns_status smtp_dns_cached_lookup(struct smtp_dns *dns, const char *name,
						   enum smtp_dns_type type,
						   struct smtp_dns_answer *a)
{
	struct smtp_dns_cache *c = dns->ctx;
	uint32_t ttl = 0;

	if (smtp_dns_cache_get(c, name, type, a))
		return a->status;
	a->status = smtp_dns_resolve(c->cfg, dns->deadline, name, type, a, &ttl);
	if (a->status == SMTP_DNS_NXDOMAIN || a->status == SMTP_DNS_NODATA)
		ttl = SMTP_DNS_NEG_TTL;
	if (a->status != SMTP_DNS_FAIL)
		smtp_dns_cache_put(c, name, type, a, ttl > SMTP_DNS_TTL_MAX ?
				   SMTP_DNS_TTL_MAX : ttl);
	return a->status;
}

void smtp_dns_real(struct smtp_dns *dns, struct smtp_dns_cache *c, unsigned seconds)
{
	memset(dns, 0, sizeof(*dns));
	dns->lookup = smtp_dns_cached_lookup;
	dns->ctx = c;
	dns->deadline = time(NULL) + (time_t)seconds;
}
