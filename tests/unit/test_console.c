/*
 * Unit tests of console (core/console.c) with WebSocket clients: a stand-in
 * VM console socket (a unix listener), two browser sessions on socket
 * pairs. The guest's output reaches both as binary frames; the writer's
 * typed frames reach the guest, the reader's are dropped; a ping is
 * answered; a close frame is answered and ends that session only; a bad
 * frame is refused with close code 1002; the guest's side closing ends the
 * rest with a close frame.
 */
#include "console.h"
#include "ws.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "unit.h"

static char sock_path[108];
static int listener = -1;

static int closed_count;
static void on_close(void *arg)
{
	close((int)(intptr_t)arg);
	__atomic_add_fetch(&closed_count, 1, __ATOMIC_SEQ_CST);
}

static int setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sock_path, sizeof(sock_path), "/tmp/cvmm-unit-console-%d.sock", (int)getpid());
	unlink(sock_path);
	strcpy(sa.sun_path, sock_path);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listener, 4) < 0)
		return -1;
	return 0;
}

static int teardown(void)
{
	close(listener);
	unlink(sock_path);
	return 0;
}

/* Reads exactly n bytes within 5 s, or fails. */
static int read_n(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			return -1;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* A server frame (unmasked, short): its opcode and payload. */
static int read_frame(int fd, uint8_t *payload, size_t *len)
{
	uint8_t h[2];

	if (read_n(fd, h, 2) < 0 || (h[1] & 0x80) || (h[1] & 0x7f) >= 126)
		return -1;
	*len = h[1] & 0x7f;
	if (read_n(fd, payload, *len) < 0)
		return -1;
	return h[0];
}

static void send_frame(int fd, int fin_op, const char *payload, size_t len)
{
	uint8_t buf[200] = {(uint8_t)fin_op, (uint8_t)(0x80 | len), 1, 2, 3, 4};

	for (size_t i = 0; i < len; i++)
		buf[6 + i] = (uint8_t)payload[i] ^ buf[2 + (i & 3)];
	CU_ASSERT_EQUAL(write(fd, buf, 6 + len), (ssize_t)(6 + len));
}

/* A browser session on a socket pair: returns the browser's end. */
static int attach(struct console_set *s, bool writer, struct console_client **c)
{
	char err[256];
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(console_reserve(s, "vm1", sock_path, writer, c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(console_websocket(*c), 0);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	console_attach(*c, sv[0], on_close, (void *)(intptr_t)sv[0]);
	return sv[1];
}

static bool at_eof(int fd)
{
	uint8_t b;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 5000) == 1 && read(fd, &b, 1) == 0;
}

static void test_websocket_clients(void)
{
	struct console_set *s = console_set_new();
	struct console_client *cw, *cr, *cx;
	uint8_t buf[200];
	size_t len;
	char err[256];

	CU_ASSERT_FATAL(s != NULL);
	int w = attach(s, true, &cw);
	int vm = accept(listener, NULL, NULL); /* the hub's one connection */
	CU_ASSERT_FATAL(vm >= 0);
	int r = attach(s, false, &cr);
	/* One writer: a second is refused. */
	CU_ASSERT_EQUAL(console_reserve(s, "vm1", sock_path, true, &cx, err, sizeof(err)), -EBUSY);
	usleep(100 * 1000); /* both attached to the hub */

	/* The guest prints: both get it as a binary frame. */
	CU_ASSERT_EQUAL(write(vm, "login: ", 7), 7);
	CU_ASSERT_EQUAL(read_frame(w, buf, &len), 0x80 | WS_OP_BINARY);
	CU_ASSERT(len == 7 && !memcmp(buf, "login: ", 7));
	CU_ASSERT_EQUAL(read_frame(r, buf, &len), 0x80 | WS_OP_BINARY);
	CU_ASSERT(len == 7 && !memcmp(buf, "login: ", 7));

	/* The reader's typing is dropped, the writer's reaches the guest. */
	send_frame(r, 0x80 | WS_OP_TEXT, "reader\r", 7);
	usleep(100 * 1000);
	send_frame(w, 0x80 | WS_OP_TEXT, "root\r", 5);
	CU_ASSERT_EQUAL(read_n(vm, buf, 5), 0);
	CU_ASSERT_EQUAL(memcmp(buf, "root\r", 5), 0);
	fcntl(vm, F_SETFL, O_NONBLOCK);
	CU_ASSERT_EQUAL(read(vm, buf, sizeof(buf)), -1); /* nothing more */
	fcntl(vm, F_SETFL, 0);

	/* Ping, pong. */
	send_frame(r, 0x80 | WS_OP_PING, "p1", 2);
	CU_ASSERT_EQUAL(read_frame(r, buf, &len), 0x80 | WS_OP_PONG);
	CU_ASSERT(len == 2 && !memcmp(buf, "p1", 2));

	/* The reader says goodbye: answered, its session ends, the others stay. */
	send_frame(r, 0x80 | WS_OP_CLOSE, "\x03\xe8", 2);
	CU_ASSERT_EQUAL(read_frame(r, buf, &len), 0x80 | WS_OP_CLOSE);
	CU_ASSERT(len == 2 && buf[0] == 0x03 && buf[1] == 0xe8);
	CU_ASSERT(at_eof(r));
	console_release(cr);

	/* A second reader sends a fragment: refused with 1003, ended. */
	int r2 = attach(s, false, &cx);
	usleep(100 * 1000);
	send_frame(r2, WS_OP_TEXT, "frag", 4);
	CU_ASSERT_EQUAL(read_frame(r2, buf, &len), 0x80 | WS_OP_CLOSE);
	CU_ASSERT(len == 2 && (buf[0] << 8 | buf[1]) == WS_CLOSE_UNSUPPORTED);
	CU_ASSERT(at_eof(r2));
	console_release(cx);

	/* The writer is still served. */
	CU_ASSERT_EQUAL(write(vm, "# ", 2), 2);
	CU_ASSERT_EQUAL(read_frame(w, buf, &len), 0x80 | WS_OP_BINARY);
	CU_ASSERT(len == 2 && !memcmp(buf, "# ", 2));

	/* The VM stops: the writer gets a close frame, then the end. */
	close(vm);
	CU_ASSERT_EQUAL(read_frame(w, buf, &len), 0x80 | WS_OP_CLOSE);
	CU_ASSERT(len == 2 && (buf[0] << 8 | buf[1]) == WS_CLOSE_NORMAL);
	CU_ASSERT(at_eof(w));
	console_release(cw);
	console_set_free(s);
	CU_ASSERT_EQUAL(closed_count, 3);
	close(w);
	close(r);
	close(r2);
}

static const struct unit_test tests[] = {
	{"WebSocket readers and one writer", test_websocket_clients},
};

int main(void)
{
	return unit_main("console", setup, teardown, tests, sizeof(tests) / sizeof(tests[0]));
}
