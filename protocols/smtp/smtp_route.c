/* Where mail for a domain goes; runs on a worker thread (it blocks on DNS).
 *
 * With relay_host set, everything goes there (getaddrinfo: the relay is
 * named in our own configuration, the system resolver is right for it).
 * Otherwise RFC 5321 §5.1: the domain's MX records in preference order
 * (equal preferences shuffled), each name's A and AAAA records; without MX
 * records the domain's own A/AAAA (the implicit MX).  A single MX "." of
 * preference 0 is a null MX (RFC 7505 §3): the domain accepts no mail and
 * the message bounces at once (§4.1: 556 5.1.10).  A domain that does not
 * exist bounces too; a DNS failure is temporary.
 *
 * Queries go through res_nquery with a resolver state per call, so that
 * dns_resolver (ADDRESS:PORT) can replace the system's name servers.
 */
#include "smtp_queue.h"
#include "smtp_dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_MX_MAX 16            /* MX records considered per domain */
#define ROUTE_ANSWER_MAX 65536     /* RFC 1035 §4.2.2: TCP message length */
#define ROUTE_DNS_TIMEOUT_S 5      /* per try; two tries (resolv.conf(5)) */
#define ROUTE_DNS_TRIES 2

struct route_mx {
	unsigned pref;
	char name[NS_MAXDNAME];
};

enum route_q { ROUTE_Q_OK, ROUTE_Q_NODATA, ROUTE_Q_NXDOMAIN, ROUTE_Q_FAIL };

static enum route_q route_query(res_state st, const char *name, int type,
				unsigned char *ans, int *len_r)
{
	int n = res_nquery(st, name, ns_c_in, type, ans, ROUTE_ANSWER_MAX);

	if (n >= 0) {
		*len_r = n;
		return ROUTE_Q_OK;
	}
	switch (st->res_h_errno) {
	case HOST_NOT_FOUND:
		return ROUTE_Q_NXDOMAIN;
	case NO_DATA:
		return ROUTE_Q_NODATA;
	default:
		return ROUTE_Q_FAIL;
	}
}

static int route_mx_cmp(const void *a, const void *b)
{
	const struct route_mx *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/* MX records of domain into mx[]; count, or -1 on a malformed answer. */
static int route_parse_mx(const unsigned char *ans, int len, struct route_mx *mx, size_t max)
{
	ns_msg msg;
	ns_rr rr;
	int n = 0;

	if (ns_initparse(ans, len, &msg) < 0)
		return -1;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an) && (size_t)n < max; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_rdlen(rr) < 3)
			continue;
		mx[n].pref = ns_get16(ns_rr_rdata(rr));
		if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr) + 2, mx[n].name,
			      sizeof(mx[n].name)) < 0)
			return -1;
		n++;
	}
	return n;
}

/* Shuffle runs of equal preference (RFC 5321 §5.1: spread the load). */
static void route_shuffle(struct route_mx *mx, int n)
{
	for (int i = 0; i < n;) {
		int j = i;
		while (j < n && mx[j].pref == mx[i].pref)
			j++;
		for (int k = j - 1; k > i; k--) {
			unsigned r = 0;
			if (random_bytes(&r, sizeof(r)) < 0)
				break;
			int pick = i + (int)(r % (unsigned)(k - i + 1));
			struct route_mx t = mx[k];
			mx[k] = mx[pick];
			mx[pick] = t;
		}
		i = j;
	}
}

/* Add the A and AAAA records of name; -1 on a temporary DNS failure. */
static int route_add_addrs(const struct config *cfg, res_state st, const char *name,
			   unsigned char *ans, struct route *r, bool *nx_r)
{
	static const int types[] = { ns_t_a, ns_t_aaaa };
	bool failed = false, nx = true;

	for (size_t t = 0; t < 2; t++) {
		ns_msg msg;
		ns_rr rr;
		int len;
		enum route_q q = route_query(st, name, types[t], ans, &len);
		if (q == ROUTE_Q_FAIL)
			failed = true;
		if (q != ROUTE_Q_NXDOMAIN)
			nx = false;
		if (q != ROUTE_Q_OK || ns_initparse(ans, len, &msg) < 0)
			continue;
		for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
			struct route_host *h;
			int want = types[t] == ns_t_a ? 4 : 16;
			if (r->n_hosts >= ROUTE_HOSTS_MAX || ns_parserr(&msg, ns_s_an, i, &rr) < 0)
				break;
			if ((int)ns_rr_type(rr) != types[t] || ns_rr_rdlen(rr) != want)
				continue;
			h = &r->hosts[r->n_hosts++];
			str_copy(h->name, name, sizeof(h->name));
			h->family = want == 4 ? AF_INET : AF_INET6;
			inet_ntop(h->family, ns_rr_rdata(rr), h->addr, sizeof(h->addr));
			h->port = cfg->outbound_port;
		}
	}
	*nx_r = nx;
	return failed ? -1 : 0;
}

static void route_relay(const struct config *cfg, struct route *r)
{
	struct addrinfo hints, *res = NULL, *ai;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(cfg->relay_host, NULL, &hints, &res);
	if (rc != 0) {
		r->result = ROUTE_TEMPFAIL;
		snprintf(r->reason, sizeof(r->reason), "451 4.4.3 relay_host %s: %s",
			 cfg->relay_host, gai_strerror(rc));
		return;
	}
	for (ai = res; ai != NULL && r->n_hosts < ROUTE_HOSTS_MAX; ai = ai->ai_next) {
		struct route_host *h = &r->hosts[r->n_hosts];
		const void *a = ai->ai_family == AF_INET ?
			(const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr :
			(const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		str_copy(h->name, cfg->relay_host, sizeof(h->name));
		h->family = ai->ai_family;
		inet_ntop(ai->ai_family, a, h->addr, sizeof(h->addr));
		h->port = cfg->relay_port;
		r->n_hosts++;
	}
	freeaddrinfo(res);
	r->result = r->n_hosts > 0 ? ROUTE_OK : ROUTE_TEMPFAIL;
	if (r->n_hosts == 0)
		snprintf(r->reason, sizeof(r->reason), "451 4.4.3 relay_host %s has no address",
			 cfg->relay_host);
}

static void route_mx(const struct config *cfg, const char *domain, struct route *r,
		     res_state st, unsigned char *ans)
{
	struct route_mx mx[ROUTE_MX_MAX];
	bool temp = false, nx = false;
	int len, n = 0;

	switch (route_query(st, domain, ns_t_mx, ans, &len)) {
	case ROUTE_Q_OK:
		n = route_parse_mx(ans, len, mx, ROUTE_MX_MAX);
		if (n < 0) {
			r->result = ROUTE_TEMPFAIL;
			snprintf(r->reason, sizeof(r->reason), "451 4.4.3 %s: malformed MX answer",
				 domain);
			return;
		}
		break;
	case ROUTE_Q_NODATA:
		break;
	case ROUTE_Q_NXDOMAIN:
		r->result = ROUTE_PERMFAIL;
		snprintf(r->reason, sizeof(r->reason), "550 5.1.2 Domain %s does not exist", domain);
		return;
	case ROUTE_Q_FAIL:
		r->result = ROUTE_TEMPFAIL;
		snprintf(r->reason, sizeof(r->reason), "451 4.4.3 DNS lookup of MX for %s failed",
			 domain);
		return;
	}
	if (n == 1 && mx[0].pref == 0 && (mx[0].name[0] == '\0' || strcmp(mx[0].name, ".") == 0)) {
		r->result = ROUTE_PERMFAIL; /* RFC 7505 §4.1 */
		snprintf(r->reason, sizeof(r->reason),
			 "556 5.1.10 Domain %s does not accept mail (null MX)", domain);
		return;
	}
	if (n == 0) {
		/* RFC 5321 §5.1: the domain itself is the implicit MX */
		n = 1;
		mx[0].pref = 0;
		str_copy(mx[0].name, domain, sizeof(mx[0].name));
	}
	qsort(mx, (size_t)n, sizeof(mx[0]), route_mx_cmp);
	route_shuffle(mx, n);
	for (int i = 0; i < n && r->n_hosts < ROUTE_HOSTS_MAX; i++) {
		bool this_nx = false;
		if (mx[i].name[0] == '\0')
			continue; /* "." among real MX records: ignore it */
		if (route_add_addrs(cfg, st, mx[i].name, ans, r, &this_nx) < 0)
			temp = true;
		nx = this_nx;
	}
	if (r->n_hosts > 0) {
		r->result = ROUTE_OK;
	} else if (!temp && nx && n == 1 && strcmp(mx[0].name, domain) == 0) {
		r->result = ROUTE_PERMFAIL;
		snprintf(r->reason, sizeof(r->reason), "550 5.1.2 Domain %s does not exist", domain);
	} else {
		r->result = ROUTE_TEMPFAIL;
		snprintf(r->reason, sizeof(r->reason), "451 4.4.4 No address found for the mail "
			 "servers of %s", domain);
	}
}

void route_lookup(const struct config *cfg, const char *domain, struct route *r)
{
	struct __res_state st;
	unsigned char *ans;

	memset(r, 0, sizeof(*r));
	if (cfg->relay_host[0] != '\0') {
		route_relay(cfg, r);
		return;
	}
	ans = malloc(ROUTE_ANSWER_MAX);
	if (ans == NULL || smtp_dns_res_init(cfg, &st, ROUTE_DNS_TIMEOUT_S, ROUTE_DNS_TRIES) < 0) {
		free(ans);
		r->result = ROUTE_TEMPFAIL;
		snprintf(r->reason, sizeof(r->reason), "451 4.4.3 Cannot set up the DNS resolver");
		return;
	}
	route_mx(cfg, domain, r, &st, ans);
	res_nclose(&st);
	free(ans);
}
