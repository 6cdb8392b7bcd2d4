/* Process-wide counters for the /metrics page of the HTTP endpoint
 * (protocols/http/http_metrics.c), in the Prometheus text exposition
 * format 0.0.4.
 *
 * Each is one relaxed atomic: a protocol counts an event with one call at
 * the place where it happens, from the loop or a worker thread, and never
 * waits.  This is the one piece of global mutable state besides the log
 * level (STYLE.md): the counters describe the process, not one server.
 *
 *   postern_connections_total{protocol,role}   accepted connections
 *   postern_logins_total{result="ok"|"failed"} password checks, every protocol
 *   postern_messages_received_total            SMTP transactions answered 250
 *   postern_deliveries_total{result}           outbound queue, per recipient
 *                                              attempt: delivered, deferred, bounced
 *   postern_queue_messages                     messages in the outbound queue
 *                                              (at the last queue scan)
 *   postern_delivery_latency_seconds           histogram: queued -> accepted by
 *                                              the far side, per recipient
 *   postern_index_commit_batch_size            histogram: jobs per index commit
 */
#ifndef CORE_METRICS_H
#define CORE_METRICS_H

#include <stdint.h>

#include "config.h"

struct buf;

enum metrics_counter {
	METRICS_LOGIN_OK,
	METRICS_LOGIN_FAILED,
	METRICS_MSG_RECEIVED,
	METRICS_DELIVERED,
	METRICS_DEFERRED,
	METRICS_BOUNCED,
	METRICS_COUNTERS
};

void metrics_count(enum metrics_counter counter);
void metrics_connection(enum listener_role role);
void metrics_queue_size(uint64_t messages);
void metrics_delivery_latency(double seconds);
void metrics_index_batch(unsigned jobs);

/* Append every metric to out; 0, or -1 when out's cap is reached. */
int metrics_format(struct buf *out);

#endif
