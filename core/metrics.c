/* The counters behind /metrics (see metrics.h for the names). */
#include "metrics.h"

#include <stdatomic.h>
#include <stddef.h>

#include "util.h"

#define METRICS_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Delivery latency bounds in seconds: a retry schedule of 5 minutes to
 * hours (queue_retry) needs buckets up to days. */
static const double metrics_latency_le[] = {
	0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, 14400, 86400,
};
/* Jobs per index commit: MD_BATCH_MAX bounds it (maildir/md_index.c). */
static const unsigned metrics_batch_le[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };

struct metrics_histogram {
	atomic_uint_fast64_t bucket[16]; /* per bound, not cumulative; last: +Inf */
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_milli;  /* sum in thousandths of the unit */
};

static struct {
	atomic_uint_fast64_t counter[METRICS_COUNTERS];
	atomic_uint_fast64_t connections[ROLE_COUNT];
	atomic_uint_fast64_t queue_messages;
	struct metrics_histogram latency;
	struct metrics_histogram batch;
} metrics;

void metrics_count(enum metrics_counter counter)
{
	if ((unsigned)counter < METRICS_COUNTERS)
		atomic_fetch_add_explicit(&metrics.counter[counter], 1, memory_order_relaxed);
}

void metrics_connection(enum listener_role role)
{
	if ((unsigned)role < ROLE_COUNT)
		atomic_fetch_add_explicit(&metrics.connections[role], 1, memory_order_relaxed);
}

void metrics_queue_size(uint64_t messages)
{
	atomic_store_explicit(&metrics.queue_messages, messages, memory_order_relaxed);
}

static void metrics_observe(struct metrics_histogram *h, size_t bucket, double value)
{
	atomic_fetch_add_explicit(&h->bucket[bucket], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_milli, (uint_fast64_t)(value * 1000.0),
				  memory_order_relaxed);
}

void metrics_delivery_latency(double seconds)
{
	size_t i = 0;

	if (seconds < 0)
		seconds = 0;
	while (i < METRICS_NELEM(metrics_latency_le) && seconds > metrics_latency_le[i])
		i++;
	metrics_observe(&metrics.latency, i, seconds);
}

void metrics_index_batch(unsigned jobs)
{
	size_t i = 0;

	while (i < METRICS_NELEM(metrics_batch_le) && jobs > metrics_batch_le[i])
		i++;
	metrics_observe(&metrics.batch, i, (double)jobs);
}

static uint64_t metrics_load(atomic_uint_fast64_t *v)
{
	return (uint64_t)atomic_load_explicit(v, memory_order_relaxed);
}

/* The protocol label of a listener role: the three SMTP roles are SMTP. */
static const char *metrics_protocol_of(enum listener_role role)
{
	switch (role) {
	case ROLE_SMTP:
	case ROLE_SUBMISSION:
	case ROLE_SUBMISSIONS:
	case ROLE_LMTP:
		return "smtp";
	case ROLE_IMAP:
	case ROLE_IMAPS:
		return "imap";
	case ROLE_POP3:
	case ROLE_POP3S:
		return "pop3";
	case ROLE_HTTP:
	case ROLE_COUNT:
		break;
	}
	return "http";
}

static int metrics_format_histogram(struct buf *out, const char *name, const char *help,
				    struct metrics_histogram *h, const double *le, size_t n)
{
	uint64_t cumulative = 0;
	int bad = 0;

	bad |= buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < n; i++) {
		cumulative += metrics_load(&h->bucket[i]);
		bad |= buf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", name, le[i],
				   (unsigned long long)cumulative);
	}
	cumulative += metrics_load(&h->bucket[n]);
	bad |= buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
			   (unsigned long long)cumulative);
	bad |= buf_appendf(out, "%s_sum %.3f\n%s_count %llu\n", name,
			   (double)metrics_load(&h->sum_milli) / 1000.0, name,
			   (unsigned long long)metrics_load(&h->count));
	return bad ? -1 : 0;
}

static int metrics_format_counters(struct buf *out)
{
	static const char *const deliveries[] = { "delivered", "deferred", "bounced" };
	int bad = 0;

	bad |= buf_appendf(out, "# HELP postern_connections_total Connections accepted.\n"
			   "# TYPE postern_connections_total counter\n");
	for (int r = 0; r < ROLE_COUNT; r++)
		bad |= buf_appendf(out, "postern_connections_total{protocol=\"%s\",role=\"%s\"} "
				   "%llu\n", metrics_protocol_of((enum listener_role)r),
				   config_role_name((enum listener_role)r),
				   (unsigned long long)metrics_load(&metrics.connections[r]));
	bad |= buf_appendf(out, "# HELP postern_logins_total Password checks by result.\n"
			   "# TYPE postern_logins_total counter\n"
			   "postern_logins_total{result=\"ok\"} %llu\n"
			   "postern_logins_total{result=\"failed\"} %llu\n",
			   (unsigned long long)metrics_load(&metrics.counter[METRICS_LOGIN_OK]),
			   (unsigned long long)metrics_load(&metrics.counter[METRICS_LOGIN_FAILED]));
	bad |= buf_appendf(out, "# HELP postern_messages_received_total Messages accepted "
			   "by SMTP.\n# TYPE postern_messages_received_total counter\n"
			   "postern_messages_received_total %llu\n",
			   (unsigned long long)metrics_load(&metrics.counter[METRICS_MSG_RECEIVED]));
	bad |= buf_appendf(out, "# HELP postern_deliveries_total Outbound delivery attempts "
			   "per recipient, by result.\n# TYPE postern_deliveries_total counter\n");
	for (size_t i = 0; i < METRICS_NELEM(deliveries); i++)
		bad |= buf_appendf(out, "postern_deliveries_total{result=\"%s\"} %llu\n",
				   deliveries[i], (unsigned long long)metrics_load(
					   &metrics.counter[METRICS_DELIVERED + i]));
	bad |= buf_appendf(out, "# HELP postern_queue_messages Messages in the outbound "
			   "queue at its last scan.\n# TYPE postern_queue_messages gauge\n"
			   "postern_queue_messages %llu\n",
			   (unsigned long long)metrics_load(&metrics.queue_messages));
	return bad ? -1 : 0;
}

int metrics_format(struct buf *out)
{
	double batch_le[METRICS_NELEM(metrics_batch_le)];

	for (size_t i = 0; i < METRICS_NELEM(metrics_batch_le); i++)
		batch_le[i] = metrics_batch_le[i];
	if (metrics_format_counters(out) < 0 ||
	    metrics_format_histogram(out, "postern_delivery_latency_seconds",
				     "Time from queueing to acceptance by the next hop.",
				     &metrics.latency, metrics_latency_le,
				     METRICS_NELEM(metrics_latency_le)) < 0 ||
	    metrics_format_histogram(out, "postern_index_commit_batch_size",
				     "Jobs committed together in one index transaction.",
				     &metrics.batch, batch_le, METRICS_NELEM(batch_le)) < 0)
		return -1;
	return 0;
}
