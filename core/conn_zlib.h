/* The DEFLATE filter under core/conn (RFC 4978 COMPRESS=DEFLATE); only
 * conn.c uses it.  See conn_zlib.c for the bounds it keeps. */
#ifndef CORE_CONN_ZLIB_H
#define CORE_CONN_ZLIB_H

#include <stdbool.h>

#include <event2/bufferevent.h>

/* The read high-water mark of the layer under the filter: compressed
 * octets read from the client before the filter has taken them. */
#define CONN_ZLIB_UNDER_READ_MAX (64 * 1024)
/* The write high-water mark of the layer under the filter: compressed
 * output waiting there before the filter stops deflating. */
#define CONN_ZLIB_UNDER_WRITE_MAX (64 * 1024)

struct conn_zlib;

/* Called (once, from inside libevent's filter callback) when the client's
 * stream is corrupt or ended, or zlib failed: the connection must go. */
typedef void conn_zlib_fail_fn(void *arg);

struct conn_zlib *conn_zlib_new(conn_zlib_fail_fn *on_fail, void *arg);
/* void * for bufferevent_filter_new()'s free_context. */
void conn_zlib_free(void *z);
bool conn_zlib_failed(const struct conn_zlib *z);

/* bufferevent_filter_cb: inflate (client -> us), deflate (us -> client). */
enum bufferevent_filter_result conn_zlib_input(struct evbuffer *src, struct evbuffer *dst,
					       ev_ssize_t limit,
					       enum bufferevent_flush_mode mode, void *arg);
enum bufferevent_filter_result conn_zlib_output(struct evbuffer *src, struct evbuffer *dst,
						ev_ssize_t limit,
						enum bufferevent_flush_mode mode, void *arg);

#endif
