/* core/conn_zlib.c, the DEFLATE filter of COMPRESS (RFC 4978), driven
 * directly through its two libevent filter callbacks: round trips with the
 * compressed stream split at every offset, the inflate limit against a
 * deflate bomb, the deflate limit, and corrupt or ended client streams. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "conn_zlib.h"

#define TEST_TEXT "a1 LOGIN alice secret\r\na2 SELECT INBOX\r\na3 FETCH 1:* (FLAGS)\r\n"

static unsigned test_failures;

static void test_on_fail(void *arg)
{
	(void)arg;
	test_failures++;
}

/* Deflate len octets of data with the output filter into out. */
static void test_deflate(struct conn_zlib *z, const void *data, size_t len, struct evbuffer *out)
{
	struct evbuffer *src = evbuffer_new();

	evbuffer_add(src, data, len);
	ck_assert_int_eq(conn_zlib_output(src, out, -1, BEV_NORMAL, z), BEV_OK);
	ck_assert_uint_eq(evbuffer_get_length(src), 0);
	evbuffer_free(src);
}

START_TEST(test_conn_zlib_split_every_offset)
{
	struct conn_zlib *tx = conn_zlib_new(test_on_fail, NULL);
	struct evbuffer *wire = evbuffer_new();
	size_t wire_len;
	unsigned char *bytes;

	test_deflate(tx, TEST_TEXT, strlen(TEST_TEXT), wire);
	wire_len = evbuffer_get_length(wire);
	bytes = evbuffer_pullup(wire, -1);
	for (size_t cut = 0; cut <= wire_len; cut++) {
		struct conn_zlib *rx = conn_zlib_new(test_on_fail, NULL);
		struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

		evbuffer_add(src, bytes, cut);
		ck_assert_int_eq(conn_zlib_input(src, dst, -1, BEV_NORMAL, rx), BEV_OK);
		evbuffer_add(src, bytes + cut, wire_len - cut);
		ck_assert_int_eq(conn_zlib_input(src, dst, -1, BEV_NORMAL, rx), BEV_OK);
		ck_assert_uint_eq(evbuffer_get_length(dst), strlen(TEST_TEXT));
		ck_assert(memcmp(evbuffer_pullup(dst, -1), TEST_TEXT, strlen(TEST_TEXT)) == 0);
		evbuffer_free(src);
		evbuffer_free(dst);
		conn_zlib_free(rx);
	}
	evbuffer_free(wire);
	conn_zlib_free(tx);
	ck_assert_uint_eq(test_failures, 0);
}
END_TEST

/* Each batch of output is complete at once (Z_SYNC_FLUSH): a peer reads a
 * reply without waiting for the next. */
START_TEST(test_conn_zlib_output_flushed)
{
	struct conn_zlib *tx = conn_zlib_new(test_on_fail, NULL);
	struct evbuffer *wire = evbuffer_new();
	unsigned char out[256];
	z_stream in;

	test_deflate(tx, "* OK hi\r\n", 9, wire);
	memset(&in, 0, sizeof(in));
	ck_assert_int_eq(inflateInit2(&in, -15), Z_OK);
	in.next_in = evbuffer_pullup(wire, -1);
	in.avail_in = (uInt)evbuffer_get_length(wire);
	in.next_out = out;
	in.avail_out = sizeof(out);
	ck_assert_int_eq(inflate(&in, Z_SYNC_FLUSH), Z_OK);
	ck_assert_uint_eq(sizeof(out) - in.avail_out, 9);
	ck_assert(memcmp(out, "* OK hi\r\n", 9) == 0);
	inflateEnd(&in);
	evbuffer_free(wire);
	conn_zlib_free(tx);
}
END_TEST

/* 64 MiB of one octet, a few tens of KB compressed: each call gives at
 * most the limit, and without a limit at most one chunk. */
START_TEST(test_conn_zlib_bomb_bounded)
{
	struct conn_zlib *tx = conn_zlib_new(test_on_fail, NULL);
	struct conn_zlib *rx = conn_zlib_new(test_on_fail, NULL);
	struct evbuffer *wire = evbuffer_new(), *dst = evbuffer_new();
	size_t block = 1024 * 1024;
	char *zeros = calloc(1, block);
	size_t total = 0;

	for (int i = 0; i < 64; i++)
		test_deflate(tx, zeros, block, wire);
	ck_assert_uint_lt(evbuffer_get_length(wire), 512 * 1024);
	for (int calls = 0; evbuffer_get_length(wire) > 0; calls++) {
		size_t before = evbuffer_get_length(dst);
		ck_assert_int_eq(conn_zlib_input(wire, dst, calls % 2 ? 1000 : -1, BEV_NORMAL, rx),
				 BEV_OK);
		ck_assert_uint_le(evbuffer_get_length(dst) - before, calls % 2 ? 1000 : 16 * 1024);
		total += evbuffer_get_length(dst);
		evbuffer_drain(dst, evbuffer_get_length(dst));
	}
	/* what was still inside zlib comes with later calls */
	for (;;) {
		ck_assert_int_eq(conn_zlib_input(wire, dst, -1, BEV_NORMAL, rx), BEV_OK);
		if (evbuffer_get_length(dst) == 0)
			break;
		total += evbuffer_get_length(dst);
		evbuffer_drain(dst, evbuffer_get_length(dst));
	}
	ck_assert_uint_eq(total, 64 * block);
	free(zeros);
	evbuffer_free(wire);
	evbuffer_free(dst);
	conn_zlib_free(tx);
	conn_zlib_free(rx);
}
END_TEST

/* With a limit the deflater takes only part of its input, and what it
 * produced is complete: it inflates to a prefix of the input. */
START_TEST(test_conn_zlib_output_limit)
{
	struct conn_zlib *tx = conn_zlib_new(test_on_fail, NULL);
	struct conn_zlib *rx = conn_zlib_new(test_on_fail, NULL);
	struct evbuffer *src = evbuffer_new(), *wire = evbuffer_new(), *plain = evbuffer_new();
	size_t len = 256 * 1024;
	unsigned char *data = malloc(len);

	srand(4978);
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)rand();
	evbuffer_add(src, data, len);
	ck_assert_int_eq(conn_zlib_output(src, wire, 1000, BEV_NORMAL, tx), BEV_OK);
	ck_assert_uint_gt(evbuffer_get_length(src), 0);
	ck_assert_uint_eq(evbuffer_get_length(src), len - 1000);
	ck_assert_uint_lt(evbuffer_get_length(wire), 1100);
	while (evbuffer_get_length(wire) > 0)
		ck_assert_int_eq(conn_zlib_input(wire, plain, -1, BEV_NORMAL, rx), BEV_OK);
	ck_assert_uint_eq(evbuffer_get_length(plain), len - evbuffer_get_length(src));
	ck_assert(memcmp(evbuffer_pullup(plain, -1), data, evbuffer_get_length(plain)) == 0);
	free(data);
	evbuffer_free(src);
	evbuffer_free(wire);
	evbuffer_free(plain);
	conn_zlib_free(tx);
	conn_zlib_free(rx);
}
END_TEST

START_TEST(test_conn_zlib_corrupt)
{
	struct conn_zlib *rx = conn_zlib_new(test_on_fail, NULL);
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

	test_failures = 0;
	/* a final block of the reserved type 11 (RFC 1951 §3.2.3) */
	evbuffer_add(src, "\xff\xff\xff\xff", 4);
	ck_assert_int_eq(conn_zlib_input(src, dst, -1, BEV_NORMAL, rx), BEV_ERROR);
	ck_assert_int_eq(conn_zlib_input(src, dst, -1, BEV_NORMAL, rx), BEV_ERROR);
	ck_assert(conn_zlib_failed(rx));
	ck_assert_uint_eq(test_failures, 1);
	evbuffer_free(src);
	evbuffer_free(dst);
	conn_zlib_free(rx);
}
END_TEST

/* RFC 4978: the stream lasts as long as the connection; one that ends
 * (Z_FINISH) leaves nothing we could read after it. */
START_TEST(test_conn_zlib_stream_end)
{
	struct conn_zlib *rx = conn_zlib_new(test_on_fail, NULL);
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	unsigned char wire[128];
	z_stream out;

	test_failures = 0;
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(deflateInit2(&out, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	out.next_in = (unsigned char *)"x1 NOOP\r\n";
	out.avail_in = 9;
	out.next_out = wire;
	out.avail_out = sizeof(wire);
	ck_assert_int_eq(deflate(&out, Z_FINISH), Z_STREAM_END);
	evbuffer_add(src, wire, sizeof(wire) - out.avail_out);
	deflateEnd(&out);
	ck_assert_int_eq(conn_zlib_input(src, dst, -1, BEV_NORMAL, rx), BEV_ERROR);
	ck_assert_uint_eq(test_failures, 1);
	evbuffer_free(src);
	evbuffer_free(dst);
	conn_zlib_free(rx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn_zlib");
	TCase *tc = tcase_create("conn_zlib");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_conn_zlib_split_every_offset);
	tcase_add_test(tc, test_conn_zlib_output_flushed);
	tcase_add_test(tc, test_conn_zlib_bomb_bounded);
	tcase_add_test(tc, test_conn_zlib_output_limit);
	tcase_add_test(tc, test_conn_zlib_corrupt);
	tcase_add_test(tc, test_conn_zlib_stream_end);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
