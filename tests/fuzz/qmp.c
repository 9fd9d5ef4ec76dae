/*
 * Fuzz target: the QMP client of backend-qemu (plugins/backend-qemu/qmp.c)
 * reading what QEMU sends. The input is the whole byte stream of the QEMU
 * side: it is written into one end of a socketpair, which is then shut for
 * writing, and the client connects on the other end (greeting and
 * capabilities), runs two commands and waits for an event, as the backend
 * does for a stop. Command ids are deterministic (1, 2, 3), so seeds can
 * answer them. EOF ends every wait, so no input can make a run block.
 */
#include "qmp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int events;

static void on_event(void *ud, const char *event, const char *data_json)
{
	/* Both must be readable strings for the duration of the call. */
	events += (int)(strlen(event) + strlen(data_json) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The whole stream must fit in the socket buffer before the client
	 * reads: the writer is this same thread. */
	if (size > 100000)
		return -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	int buf = 256 * 1024;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	size_t off = 0;
	while (off < size) {
		ssize_t w = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	shutdown(sv[1], SHUT_WR);

	struct qmp *q = NULL;
	char err[512];
	if (qmp_open_fd(sv[0], 2000, &q, err, sizeof(err)) == 0) {
		qmp_set_event_handler(q, on_event, NULL);
		char *ret = NULL;
		if (qmp_command(q, "query-status", NULL, 2000, &ret, err, sizeof(err)) == 0)
			free(ret);
		qmp_command(q, "system_powerdown", "{\"a\": [1, \"x\"]}", 2000, NULL, err,
		            sizeof(err));
		qmp_wait_event(q, "SHUTDOWN", 2000);
		(void)qmp_version(q);
		qmp_close(q);
	}
	close(sv[1]);
	return 0;
}
