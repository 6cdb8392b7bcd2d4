/* The DEFLATE layer of a connection (IMAP COMPRESS=DEFLATE, RFC 4978): a
 * libevent filter bufferevent whose input filter inflates what the client
 * sends and whose output filter deflates what we send, both raw DEFLATE
 * (RFC 1951, no zlib or gzip header: RFC 4978 §3).  conn.c puts it on top
 * of whatever the connection already is (plain socket, TLS socket, TLS
 * filter after STARTTLS).
 *
 * Bounds.  The inflater never writes more than the limit libevent gives it
 * (the connection's read high-water mark, conn.c) and at most
 * CONN_ZLIB_IN_CHUNK per call, so a few KB of "deflate bomb" never become
 * more than one line's worth of plaintext in memory: the rest waits,
 * compressed, in the layer underneath, whose own read high-water mark
 * (CONN_ZLIB_UNDER_READ_MAX) stops reading from the socket.  The deflater
 * takes no more input than the room left under the write high-water mark
 * of the layer underneath, so output back-pressure works as without
 * compression.  Every batch of output ends with Z_SYNC_FLUSH (RFC 4978 §4:
 * the client must be able to read each response as soon as it is sent).
 *
 * Memory: one struct conn_zlib per connection, freed by libevent with the
 * filter (conn_zlib_free).  zlib's own state is about 256 KiB for the
 * deflater (windowBits 15, memLevel 8) and 40 KiB for the inflater.
 */
#include "conn_zlib.h"

#include <stdlib.h>

#include <event2/buffer.h>
#include <zlib.h>

/* Plaintext produced by one call of the inflater (and the most a call
 * without a limit, libevent's flush, may add). */
#define CONN_ZLIB_IN_CHUNK (16 * 1024)
/* Plaintext deflated per step before the output limit is checked again. */
#define CONN_ZLIB_OUT_CHUNK (16 * 1024)
#define CONN_ZLIB_LEVEL 6    /* zlib's default: Dovecot's choice too */
#define CONN_ZLIB_WBITS (-15)/* negative: raw DEFLATE, 32 KiB window (RFC 4978 §3) */
#define CONN_ZLIB_MEMLEVEL 8

struct conn_zlib {
	z_stream in, out;
	bool in_ready, out_ready;
	bool failed;           /* corrupt input, or the client ended its stream */
	conn_zlib_fail_fn *on_fail;
	void *arg;
};

struct conn_zlib *conn_zlib_new(conn_zlib_fail_fn *on_fail, void *arg)
{
	struct conn_zlib *z = calloc(1, sizeof(*z));

	if (z == NULL)
		return NULL;
	z->on_fail = on_fail;
	z->arg = arg;
	if (inflateInit2(&z->in, CONN_ZLIB_WBITS) != Z_OK) {
		free(z);
		return NULL;
	}
	z->in_ready = true;
	if (deflateInit2(&z->out, CONN_ZLIB_LEVEL, Z_DEFLATED, CONN_ZLIB_WBITS,
			 CONN_ZLIB_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
		conn_zlib_free(z);
		return NULL;
	}
	z->out_ready = true;
	return z;
}

void conn_zlib_free(void *arg)
{
	struct conn_zlib *z = arg;

	if (z == NULL)
		return;
	if (z->in_ready)
		inflateEnd(&z->in);
	if (z->out_ready)
		deflateEnd(&z->out);
	free(z);
}

bool conn_zlib_failed(const struct conn_zlib *z)
{
	return z->failed;
}

static enum bufferevent_filter_result conn_zlib_fail(struct conn_zlib *z)
{
	if (!z->failed) {
		z->failed = true;
		z->on_fail(z->arg);
	}
	return BEV_ERROR;
}

/* One inflate step: at most want octets into dst.  1: progress, 0: needs
 * more input (or room), -1: the stream is bad or ended. */
static int conn_zlib_inflate_step(struct conn_zlib *z, struct evbuffer *src,
				  struct evbuffer *dst, size_t want, size_t *produced_r)
{
	struct evbuffer_iovec in_vec, out_vec;
	size_t consumed, produced;
	int rc;

	*produced_r = 0;
	if (evbuffer_peek(src, -1, NULL, &in_vec, 1) < 1 || in_vec.iov_len == 0)
		return 0;
	if (evbuffer_reserve_space(dst, (ev_ssize_t)want, &out_vec, 1) < 1)
		return -1;
	if (out_vec.iov_len > want)
		out_vec.iov_len = want;
	z->in.next_in = in_vec.iov_base;
	z->in.avail_in = (uInt)in_vec.iov_len;
	z->in.next_out = out_vec.iov_base;
	z->in.avail_out = (uInt)out_vec.iov_len;
	rc = inflate(&z->in, Z_SYNC_FLUSH);
	consumed = in_vec.iov_len - z->in.avail_in;
	produced = out_vec.iov_len - z->in.avail_out;
	evbuffer_drain(src, consumed);
	out_vec.iov_len = produced;
	evbuffer_commit_space(dst, &out_vec, 1);
	*produced_r = produced;
	/* Z_STREAM_END: RFC 4978 has the stream last as long as the
	 * connection; a client that ends it sends nothing we can read. */
	if (rc != Z_OK && rc != Z_BUF_ERROR)
		return -1;
	return consumed > 0 || produced > 0 ? 1 : 0;
}

enum bufferevent_filter_result conn_zlib_input(struct evbuffer *src, struct evbuffer *dst,
					       ev_ssize_t limit,
					       enum bufferevent_flush_mode mode, void *arg)
{
	struct conn_zlib *z = arg;
	size_t budget = CONN_ZLIB_IN_CHUNK;

	(void)mode;
	if (z->failed)
		return BEV_ERROR;
	if (limit >= 0 && (size_t)limit < budget)
		budget = (size_t)limit;
	while (budget > 0) {
		size_t produced;
		int rc = conn_zlib_inflate_step(z, src, dst, budget, &produced);

		if (rc < 0)
			return conn_zlib_fail(z);
		if (rc == 0)
			break;
		budget -= produced;
	}
	return BEV_OK;
}

/* Deflate what is in next_in/avail_in with flush, appending everything
 * zlib produces to dst.  0, or -1 when out of memory. */
static int conn_zlib_deflate_into(struct conn_zlib *z, struct evbuffer *dst, int flush)
{
	do {
		struct evbuffer_iovec out_vec;
		int rc;

		if (evbuffer_reserve_space(dst, CONN_ZLIB_OUT_CHUNK, &out_vec, 1) < 1)
			return -1;
		z->out.next_out = out_vec.iov_base;
		z->out.avail_out = (uInt)out_vec.iov_len;
		rc = deflate(&z->out, flush);
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return -1;
		out_vec.iov_len -= z->out.avail_out;
		evbuffer_commit_space(dst, &out_vec, 1);
		/* Done when zlib left room: all input taken, flush complete. */
	} while (z->out.avail_out == 0);
	return 0;
}

enum bufferevent_filter_result conn_zlib_output(struct evbuffer *src, struct evbuffer *dst,
						ev_ssize_t limit,
						enum bufferevent_flush_mode mode, void *arg)
{
	struct conn_zlib *z = arg;
	size_t taken = 0;

	(void)mode;
	if (z->failed)
		return BEV_ERROR;
	/* zlib holds input back until its buffers fill, so output is bounded
	 * by the input taken: DEFLATE with a flush never grows data by more
	 * than a few octets per 16 KiB (RFC 1951 §3.2.4 stored blocks). */
	while (evbuffer_get_length(src) > 0 && (limit < 0 || taken < (size_t)limit)) {
		struct evbuffer_iovec in_vec;
		size_t n;

		if (evbuffer_peek(src, -1, NULL, &in_vec, 1) < 1)
			break;
		n = in_vec.iov_len < CONN_ZLIB_OUT_CHUNK ? in_vec.iov_len : CONN_ZLIB_OUT_CHUNK;
		if (limit >= 0 && n > (size_t)limit - taken)
			n = (size_t)limit - taken;
		z->out.next_in = in_vec.iov_base;
		z->out.avail_in = (uInt)n;
		if (conn_zlib_deflate_into(z, dst, Z_NO_FLUSH) < 0)
			return conn_zlib_fail(z);
		evbuffer_drain(src, n - z->out.avail_in);
		taken += n - z->out.avail_in;
	}
	/* Whatever was taken leaves now, complete (RFC 4978 §4). */
	if (taken > 0) {
		z->out.next_in = NULL;
		z->out.avail_in = 0;
		if (conn_zlib_deflate_into(z, dst, Z_SYNC_FLUSH) < 0)
			return conn_zlib_fail(z);
	}
	return BEV_OK;
}
