/* GET /metrics: the counters of core/metrics.c in the Prometheus text
 * exposition format 0.0.4, for clients in trusted_networks only (the
 * scraper on this host or the monitoring network); others get 403, and
 * so does a request a reverse proxy forwarded (Forwarded or
 * X-Forwarded-For present). */
#include "http_private.h"

#include <event2/http.h>

#include "metrics.h"
#include "util.h"

/* Every counter, label and histogram bucket: well under 16 KiB. */
#define HTTP_METRICS_MAX 65536

void http_metrics_serve(struct http_listener *l, struct evhttp_request *req)
{
	const struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
	char ip[64];
	bool trusted, loopback;
	struct buf b;

	http_peer(req, l->ctx->cfg, ip, sizeof(ip), &trusted, &loopback);
	/* Behind a reverse proxy every request comes from the proxy's
	 * (trusted) address: a forwarded request is someone else's. */
	if (evhttp_find_header(headers, "Forwarded") != NULL ||
	    evhttp_find_header(headers, "X-Forwarded-For") != NULL)
		trusted = false;
	buf_init(&b, HTTP_METRICS_MAX);
	if (!trusted) {
		(void)buf_appendf(&b, "forbidden: /metrics is for trusted_networks\n");
		http_reply(req, HTTP_STATUS_FORBIDDEN, "text/plain; charset=utf-8", &b);
	} else if (metrics_format(&b) < 0) {
		buf_reset(&b);
		http_reply(req, HTTP_INTERNAL, NULL, &b);
	} else {
		http_reply(req, HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
	}
	buf_free(&b);
}
