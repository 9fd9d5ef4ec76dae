/* Blocking QMP client for the QEMU backend: one connection to one QEMU monitor.
 * Owns the socket, the greeting/negotiation, command ids and reply matching, and
 * hands events to a callback. Meant for worker threads; a struct qmp must not be
 * used by two threads at once. Calls return 0 or a negative errno and write a
 * message to err (which may be NULL). A timeout_ms below 0 means no deadline. */
#ifndef CVMM_BACKEND_QEMU_QMP_H
#define CVMM_BACKEND_QEMU_QMP_H

#include <stddef.h>

struct qmp;

/* A line (terminator included) longer than this is a protocol error: -EPROTO,
 * connection closed. QEMU's largest reply, query-qmp-schema, is far below it. */
#define QMP_MAX_MESSAGE (1024 * 1024)

/* event is the QMP event name; data_json its "data" member, "{}" when absent.
 * Both are only valid during the call. The callback must not call into q. */
typedef void (*qmp_event_fn)(void *ud, const char *event, const char *data_json);

/* Connects to QEMU's QMP unix socket, reads the greeting and negotiates
 * capabilities. Retries a missing or refusing socket until the deadline, since
 * QEMU creates its socket a little after it was spawned. */
int qmp_connect(const char *socket_path, int timeout_ms, struct qmp **out, char *err,
                size_t errlen);
/* The same on an already connected fd. Takes ownership of fd, even on failure. */
int qmp_open_fd(int fd, int timeout_ms, struct qmp **out, char *err, size_t errlen);

/* Events seen while waiting for a reply or in qmp_wait_event go to fn. */
void qmp_set_event_handler(struct qmp *q, qmp_event_fn fn, void *ud);

/* Runs one command. args_json (an object) may be NULL. On success *ret_json,
 * when ret_json is non-NULL, gets a malloc'd JSON text of "return". A QMP error
 * reply gives -EIO with "class: desc" in err; EOF -EPIPE; deadline -ETIMEDOUT
 * (the connection stays usable: the late reply is dropped by its id). */
int qmp_command(struct qmp *q, const char *execute, const char *args_json, int timeout_ms,
                char **ret_json, char *err, size_t errlen);

/* Waits for an event named `event`; one that arrived earlier (while waiting for
 * a reply) counts and is consumed. 0, -EPIPE on EOF, -ETIMEDOUT. */
int qmp_wait_event(struct qmp *q, const char *event, int timeout_ms);

/* "major.minor.micro" from the greeting, e.g. "7.2.22". */
const char *qmp_version(struct qmp *q);

/* Closes the connection and frees q. NULL is fine. */
void qmp_close(struct qmp *q);

#endif
