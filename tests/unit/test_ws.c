/*
 * Unit tests of ws (core/ws.c), the WebSocket framing of the console route:
 * the RFC 6455 handshake example, server frame headers at the length
 * boundaries (125/126/65535/65536), client frames decoded and unmasked
 * whole and refused when incomplete, and the frames this server refuses
 * (unmasked, fragmented, oversized, reserved bits, long control frames).
 */
#include "ws.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"

/* A client frame as a browser sends it: final, masked. */
static size_t client_frame(uint8_t *out, int fin_op, const uint8_t *payload, size_t len)
{
	static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t n = 0;

	out[n++] = (uint8_t)fin_op;
	if (len < 126) {
		out[n++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		out[n++] = 0x80 | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	memcpy(out + n, mask, 4);
	n += 4;
	for (size_t i = 0; i < len; i++)
		out[n + i] = payload[i] ^ mask[i & 3];
	return n + len;
}

static void test_accept_key(void)
{
	char out[WS_ACCEPT_LEN + 1];

	/* RFC 6455 section 1.3's example. */
	CU_ASSERT_EQUAL(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	CU_ASSERT_STRING_EQUAL(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	CU_ASSERT_EQUAL(ws_accept_key(NULL, out), -EINVAL);
	CU_ASSERT_EQUAL(ws_accept_key("", out), -EINVAL);
	CU_ASSERT_EQUAL(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ", out), -EINVAL);
	CU_ASSERT_EQUAL(ws_accept_key("dGhlIHNhbXBsZSBub25j\r\n==", out), -EINVAL);
	CU_ASSERT_EQUAL(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==x", out), -EINVAL);
}

static void test_server_header(void)
{
	uint8_t h[WS_HEADER_MAX];

	CU_ASSERT_EQUAL(ws_frame_header(h, WS_OP_BINARY, 0), 2);
	CU_ASSERT(h[0] == 0x82 && h[1] == 0);
	CU_ASSERT_EQUAL(ws_frame_header(h, WS_OP_BINARY, 125), 2);
	CU_ASSERT(h[0] == 0x82 && h[1] == 125);
	CU_ASSERT_EQUAL(ws_frame_header(h, WS_OP_BINARY, 126), 4);
	CU_ASSERT(h[1] == 126 && h[2] == 0 && h[3] == 126);
	CU_ASSERT_EQUAL(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
	CU_ASSERT(h[0] == 0x81 && h[1] == 126 && h[2] == 0xff && h[3] == 0xff);
	CU_ASSERT_EQUAL(ws_frame_header(h, WS_OP_BINARY, 65536), 10);
	static const uint8_t want[10] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
	CU_ASSERT_EQUAL(memcmp(h, want, 10), 0);
	CU_ASSERT_EQUAL(ws_frame_header(h, WS_OP_CLOSE, 2), 2);
	CU_ASSERT(h[0] == 0x88 && h[1] == 2);
}

/* A frame of len bytes decodes whole, unmasked, and not before its last
 * byte arrived. */
static void roundtrip(size_t len)
{
	uint8_t *payload = malloc(len + 1), *buf = malloc(len + WS_HEADER_MAX);
	struct ws_frame f;

	CU_ASSERT_FATAL(payload && buf);
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	size_t n = client_frame(buf, 0x80 | WS_OP_BINARY, payload, len);
	CU_ASSERT_EQUAL(n, len + (len < 126 ? 6 : len <= 0xffff ? 8 : 14));
	/* Every prefix is "more needed" (all of them for short frames). */
	for (size_t k = 0; k < n; k += (n > 300 && k > 20 ? 997 : 1))
		CU_ASSERT_EQUAL(ws_decode(buf, k, 1 << 20, &f), 0);
	CU_ASSERT_EQUAL(ws_decode(buf, n - 1, 1 << 20, &f), 0);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 1 << 20, &f), (long)n);
	CU_ASSERT_EQUAL(f.opcode, WS_OP_BINARY);
	CU_ASSERT_EQUAL(f.len, len);
	ws_unmask(&f);
	CU_ASSERT_EQUAL(memcmp(f.payload, payload, len), 0);
	free(payload);
	free(buf);
}

static void test_decode_lengths(void)
{
	roundtrip(0);
	roundtrip(1);
	roundtrip(125);
	roundtrip(126);
	roundtrip(65535);
	roundtrip(65536);
}

static void test_two_frames_and_control(void)
{
	uint8_t buf[64];
	struct ws_frame f;
	size_t a = client_frame(buf, 0x80 | WS_OP_TEXT, (const uint8_t *)"ls\r", 3);
	size_t b = client_frame(buf + a, 0x80 | WS_OP_PING, (const uint8_t *)"hi", 2);
	size_t c = client_frame(buf + a + b, 0x80 | WS_OP_CLOSE, (const uint8_t *)"\x03\xe8", 2);

	CU_ASSERT_EQUAL(ws_decode(buf, a + b + c, 4096, &f), (long)a);
	ws_unmask(&f);
	CU_ASSERT(f.opcode == WS_OP_TEXT && f.len == 3 && !memcmp(f.payload, "ls\r", 3));
	CU_ASSERT_EQUAL(ws_decode(buf + a, b + c, 4096, &f), (long)b);
	ws_unmask(&f);
	CU_ASSERT(f.opcode == WS_OP_PING && f.len == 2 && !memcmp(f.payload, "hi", 2));
	CU_ASSERT_EQUAL(ws_decode(buf + a + b, c, 4096, &f), (long)c);
	ws_unmask(&f);
	/* The close frame's status code, 1000, big-endian. */
	CU_ASSERT(f.opcode == WS_OP_CLOSE && f.len == 2 && f.payload[0] == 0x03 && f.payload[1] == 0xe8);
}

static void test_refused(void)
{
	uint8_t buf[300], big[200];
	struct ws_frame f;
	size_t n;

	memset(big, 'x', sizeof(big));
	/* Unmasked: a client must mask. */
	n = client_frame(buf, 0x80 | WS_OP_TEXT, (const uint8_t *)"a", 1);
	buf[1] &= 0x7f;
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_PROTOCOL);
	/* Fragments: a first fragment (FIN clear), and a continuation. */
	n = client_frame(buf, WS_OP_TEXT, (const uint8_t *)"a", 1);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_UNSUPPORTED);
	n = client_frame(buf, 0x80 | WS_OP_CONT, (const uint8_t *)"a", 1);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_UNSUPPORTED);
	/* A fragmented control frame breaks the protocol. */
	n = client_frame(buf, WS_OP_PING, (const uint8_t *)"a", 1);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_PROTOCOL);
	/* Reserved bits without an extension, an unknown opcode. */
	n = client_frame(buf, 0x80 | 0x40 | WS_OP_TEXT, (const uint8_t *)"a", 1);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_PROTOCOL);
	n = client_frame(buf, 0x80 | 0x3, (const uint8_t *)"a", 1);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_PROTOCOL);
	/* A control frame longer than 125 bytes. */
	n = client_frame(buf, 0x80 | WS_OP_PING, big, 126);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 4096, &f), -WS_CLOSE_PROTOCOL);
	/* Oversized: refused from its header alone, before its payload. */
	n = client_frame(buf, 0x80 | WS_OP_BINARY, big, 200);
	CU_ASSERT_EQUAL(ws_decode(buf, 8, 199, &f), -WS_CLOSE_TOO_BIG);
	CU_ASSERT_EQUAL(ws_decode(buf, n, 200, &f), (long)n);
	static const uint8_t huge[14] = {0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
	CU_ASSERT_EQUAL(ws_decode((uint8_t *)huge, sizeof(huge), 4096, &f), -WS_CLOSE_TOO_BIG);
	static const uint8_t top[14] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
	CU_ASSERT_EQUAL(ws_decode((uint8_t *)top, sizeof(top), 4096, &f), -WS_CLOSE_PROTOCOL);
}

static const struct unit_test tests[] = {
	{"handshake accept key (RFC 6455 example)", test_accept_key},
	{"server frame headers at 125/126/65535/65536", test_server_header},
	{"client frames 0..65536 bytes, unmasked, whole", test_decode_lengths},
	{"frames back to back, ping, close", test_two_frames_and_control},
	{"unmasked, fragmented, oversized frames refused", test_refused},
};

int main(void)
{
	return unit_main("ws", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
