/* QMP client of the QEMU backend (see qmp.h). The socket is non-blocking and
 * every wait is a poll() bounded by the caller's deadline, so a hung QEMU can
 * never hold a worker thread longer than asked. Input is split into lines and
 * each line is classified by its key, as libvirt's qemu_monitor_json.c does:
 * "QMP" (greeting), "event", or "return"/"error" (a reply, matched by "id"). */
#include "qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

/* Names of events nobody has waited for yet; the oldest fall off. */
#define QMP_EVENT_QUEUE 32

struct qmp {
	int fd;
	bool dead; /* EOF or protocol error seen: nothing more will come */
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 8]; /* for messages */
	char version[48];
	int64_t next_id;
	char *buf;
	size_t len, cap, scanned; /* scanned: bytes of buf known to hold no '\n' */
	qmp_event_fn event_fn;
	void *event_ud;
	char *events[QMP_EVENT_QUEUE];
	size_t nevents;
};

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -1 means no deadline. */
static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

static int remaining_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - now_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits until fd is ready for `events`: 0, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, remaining_ms(deadline));
		if (n > 0)
			return 0; /* POLLHUP/POLLERR too: the next read/send reports it */
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static void mark_dead(struct qmp *q)
{
	/* After a protocol error the rest of the buffer is not trustworthy. */
	q->dead = true;
	q->len = q->scanned = 0;
	shutdown(q->fd, SHUT_RDWR);
}

static int send_all(struct qmp *q, const char *data, size_t n, int64_t deadline, char *err,
                    size_t errlen)
{
	size_t off = 0;
	while (off < n) {
		/* MSG_NOSIGNAL: a QEMU that exited must give EPIPE, not kill cvmmd. */
		ssize_t w = send(q->fd, data + off, n - off, MSG_NOSIGNAL);
		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		int rc = -errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			rc = wait_fd(q->fd, POLLOUT, deadline);
		if (rc == 0)
			continue;
		/* Half a command on the wire would corrupt every later exchange. */
		if (off > 0 || rc != -ETIMEDOUT)
			mark_dead(q);
		return set_err(err, errlen, rc, "QMP %s: send: %s", q->name, strerror(-rc));
	}
	return 0;
}

/* Parses one line; NULL unless it is exactly one JSON object. */
static struct json_object *parse_line(const char *s, size_t n)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	struct json_object *o = json_tokener_parse_ex(tok, s, (int)n);
	if (o && json_tokener_get_error(tok) == json_tokener_success &&
	    json_object_is_type(o, json_type_object)) {
		size_t end = json_tokener_get_parse_end(tok);
		while (end < n && (s[end] == ' ' || s[end] == '\t'))
			end++;
		if (end == n) {
			json_tokener_free(tok);
			return o;
		}
	}
	json_object_put(o);
	json_tokener_free(tok);
	return NULL;
}

/* Reads the next message, however long that takes within the deadline. */
static int read_message(struct qmp *q, int64_t deadline, struct json_object **out, char *err,
                        size_t errlen)
{
	*out = NULL;
	for (;;) {
		char *nl = memchr(q->buf + q->scanned, '\n', q->len - q->scanned);
		if (nl) {
			size_t linelen = (size_t)(nl - q->buf);
			size_t n = linelen;
			if (n > 0 && q->buf[n - 1] == '\r')
				n--;
			struct json_object *o = n ? parse_line(q->buf, n) : NULL;
			bool blank = n == 0;
			memmove(q->buf, nl + 1, q->len - linelen - 1);
			q->len -= linelen + 1;
			q->scanned = 0;
			if (blank)
				continue;
			if (!o) {
				mark_dead(q);
				return set_err(err, errlen, -EPROTO,
				               "QMP %s: received a line that is not a JSON object",
				               q->name);
			}
			*out = o;
			return 0;
		}
		q->scanned = q->len;
		if (q->dead)
			return set_err(err, errlen, -EPIPE, "QMP %s: connection closed", q->name);
		if (q->len == QMP_MAX_MESSAGE) {
			mark_dead(q);
			return set_err(err, errlen, -EPROTO,
			               "QMP %s: message longer than %d bytes, connection closed",
			               q->name, QMP_MAX_MESSAGE);
		}
		if (q->len == q->cap) {
			size_t cap = q->cap * 2 > QMP_MAX_MESSAGE ? QMP_MAX_MESSAGE : q->cap * 2;
			char *b = realloc(q->buf, cap);
			if (!b)
				return set_err(err, errlen, -ENOMEM, "QMP %s: out of memory",
				               q->name);
			q->buf = b;
			q->cap = cap;
		}
		ssize_t r = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
		if (r > 0) {
			q->len += (size_t)r;
			continue;
		}
		if (r == 0) {
			mark_dead(q);
			return set_err(err, errlen, -EPIPE, "QMP %s: connection closed by QEMU",
			               q->name);
		}
		if (errno == EINTR)
			continue;
		int rc = -errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			rc = wait_fd(q->fd, POLLIN, deadline);
		if (rc == -ETIMEDOUT)
			return set_err(err, errlen, rc, "QMP %s: timed out waiting for QEMU",
			               q->name);
		if (rc < 0) {
			mark_dead(q);
			return set_err(err, errlen, rc, "QMP %s: receive: %s", q->name,
			               strerror(-rc));
		}
	}
}

static void queue_event(struct qmp *q, const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return; /* a lost wake-up beats a failed command; waiters time out */
	if (q->nevents == QMP_EVENT_QUEUE) {
		free(q->events[0]);
		memmove(q->events, q->events + 1, (QMP_EVENT_QUEUE - 1) * sizeof(q->events[0]));
		q->nevents--;
	}
	q->events[q->nevents++] = copy;
}

static bool take_event(struct qmp *q, const char *name)
{
	for (size_t i = 0; i < q->nevents; i++) {
		if (strcmp(q->events[i], name) == 0) {
			free(q->events[i]);
			memmove(q->events + i, q->events + i + 1,
			        (q->nevents - i - 1) * sizeof(q->events[0]));
			q->nevents--;
			return true;
		}
	}
	return false;
}

/* Queues and dispatches msg if it is an event; true if it was one. */
static bool handle_event(struct qmp *q, struct json_object *msg)
{
	struct json_object *ev, *data;
	if (!json_object_object_get_ex(msg, "event", &ev) ||
	    !json_object_is_type(ev, json_type_string))
		return false;
	const char *name = json_object_get_string(ev);
	queue_event(q, name);
	if (q->event_fn) {
		const char *data_json = "{}";
		if (json_object_object_get_ex(msg, "data", &data))
			data_json = json_object_to_json_string_ext(
			    data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		q->event_fn(q->event_ud, name, data_json);
	}
	return true;
}

/* Reads until the reply to command `id` arrives; *reply owns it. Events met on
 * the way are dispatched; replies to anything else (a command that timed out
 * earlier, a parse error QEMU reports without id) are dropped. */
static int read_reply(struct qmp *q, int64_t id, int64_t deadline, struct json_object **reply,
                      char *err, size_t errlen)
{
	for (;;) {
		struct json_object *msg, *idv;
		int rc = read_message(q, deadline, &msg, err, errlen);
		if (rc < 0)
			return rc;
		if (!handle_event(q, msg) &&
		    (json_object_object_get_ex(msg, "return", NULL) ||
		     json_object_object_get_ex(msg, "error", NULL)) &&
		    json_object_object_get_ex(msg, "id", &idv) &&
		    json_object_is_type(idv, json_type_int) && json_object_get_int64(idv) == id) {
			*reply = msg;
			return 0;
		}
		json_object_put(msg);
	}
}

static char *to_json(struct json_object *o)
{
	return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int command(struct qmp *q, const char *execute, const char *args_json, int64_t deadline,
                   char **ret_json, char *err, size_t errlen)
{
	struct json_object *cmd = NULL, *args = NULL, *reply = NULL, *v;
	char *line = NULL;
	int rc;

	if (ret_json)
		*ret_json = NULL;
	if (q->dead)
		return set_err(err, errlen, -EPIPE, "QMP %s: connection closed", q->name);
	if (args_json) {
		args = parse_line(args_json, strlen(args_json));
		if (!args)
			return set_err(err, errlen, -EINVAL,
			               "QMP %s: arguments of '%s' are not a JSON object", q->name,
			               execute);
	}
	int64_t id = q->next_id++;
	cmd = json_object_new_object();
	json_object_object_add(cmd, "execute", json_object_new_string(execute));
	if (args)
		json_object_object_add(cmd, "arguments", args);
	json_object_object_add(cmd, "id", json_object_new_int64(id));
	if (asprintf(&line, "%s\n",
	             json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE)) < 0) {
		line = NULL;
		rc = set_err(err, errlen, -ENOMEM, "QMP %s: out of memory", q->name);
		goto cleanup;
	}
	rc = send_all(q, line, strlen(line), deadline, err, errlen);
	if (rc < 0)
		goto cleanup;
	rc = read_reply(q, id, deadline, &reply, err, errlen);
	if (rc == -ETIMEDOUT)
		set_err(err, errlen, rc, "QMP %s: '%s' timed out", q->name, execute);
	if (rc < 0)
		goto cleanup;

	if (json_object_object_get_ex(reply, "error", &v)) {
		struct json_object *cls = NULL, *desc = NULL;
		json_object_object_get_ex(v, "class", &cls);
		json_object_object_get_ex(v, "desc", &desc);
		rc = set_err(err, errlen, -EIO, "%s: %s",
		             cls ? json_object_get_string(cls) : "GenericError",
		             desc ? json_object_get_string(desc) : "(no description)");
		goto cleanup;
	}
	json_object_object_get_ex(reply, "return", &v);
	if (ret_json && !(*ret_json = to_json(v)))
		rc = set_err(err, errlen, -ENOMEM, "QMP %s: out of memory", q->name);
cleanup:
	free(line);
	json_object_put(cmd);
	json_object_put(reply);
	return rc;
}

int qmp_command(struct qmp *q, const char *execute, const char *args_json, int timeout_ms,
                char **ret_json, char *err, size_t errlen)
{
	return command(q, execute, args_json, deadline_of(timeout_ms), ret_json, err, errlen);
}

/* Greeting, then qmp_capabilities: until it succeeds QEMU rejects every other
 * command and holds back events. */
static int handshake(struct qmp *q, int64_t deadline, char *err, size_t errlen)
{
	struct json_object *msg, *greet, *v = NULL;
	int rc = read_message(q, deadline, &msg, err, errlen);
	if (rc < 0)
		return rc;
	int major = -1, minor = -1, micro = -1;
	if (json_object_object_get_ex(msg, "QMP", &greet) &&
	    json_object_object_get_ex(greet, "version", &v) &&
	    json_object_object_get_ex(v, "qemu", &v) && json_object_is_type(v, json_type_object)) {
		struct json_object *n;
		if (json_object_object_get_ex(v, "major", &n) &&
		    json_object_is_type(n, json_type_int))
			major = json_object_get_int(n);
		if (json_object_object_get_ex(v, "minor", &n) &&
		    json_object_is_type(n, json_type_int))
			minor = json_object_get_int(n);
		if (json_object_object_get_ex(v, "micro", &n) &&
		    json_object_is_type(n, json_type_int))
			micro = json_object_get_int(n);
	}
	json_object_put(msg);
	if (major < 0 || minor < 0 || micro < 0) {
		mark_dead(q);
		return set_err(err, errlen, -EPROTO, "QMP %s: peer did not send a QMP greeting",
		               q->name);
	}
	snprintf(q->version, sizeof(q->version), "%d.%d.%d", major, minor, micro);
	return command(q, "qmp_capabilities", NULL, deadline, NULL, err, errlen);
}

static int open_fd(int fd, const char *name, int64_t deadline, struct qmp **out, char *err,
                   size_t errlen)
{
	int rc;
	struct qmp *q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return set_err(err, errlen, -ENOMEM, "QMP %s: out of memory", name);
	}
	q->fd = fd;
	q->next_id = 1;
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->cap = 4096;
	q->buf = malloc(q->cap);
	if (!q->buf) {
		rc = set_err(err, errlen, -ENOMEM, "QMP %s: out of memory", name);
		goto fail;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = set_err(err, errlen, -errno, "QMP %s: fcntl: %s", name, strerror(errno));
		goto fail;
	}
	rc = handshake(q, deadline, err, errlen);
	if (rc < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	qmp_close(q);
	return rc;
}

int qmp_open_fd(int fd, int timeout_ms, struct qmp **out, char *err, size_t errlen)
{
	char name[32];
	*out = NULL;
	snprintf(name, sizeof(name), "fd %d", fd);
	return open_fd(fd, name, deadline_of(timeout_ms), out, err, errlen);
}

int qmp_connect(const char *socket_path, int timeout_ms, struct qmp **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = deadline_of(timeout_ms);

	*out = NULL;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return set_err(err, errlen, -ENAMETOOLONG, "QMP %s: socket path too long",
		               socket_path);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	for (;;) {
		/* Non-blocking: on a unix socket connect() then completes at once or
		 * fails, EAGAIN (full backlog) included, instead of ignoring the deadline. */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return set_err(err, errlen, -errno, "QMP %s: socket: %s", socket_path,
			               strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return open_fd(fd, socket_path, deadline, out, err, errlen);
		int e = errno;
		close(fd);
		/* QEMU may not have created (or started listening on) it yet. */
		bool transient = e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == EINTR;
		int left = remaining_ms(deadline);
		if (!transient || left == 0)
			return set_err(err, errlen, -e, "QMP %s: connect: %s", socket_path,
			               strerror(e));
		struct timespec ts = {0, 10 * 1000000L};
		if (left > 0 && left < 10)
			ts.tv_nsec = left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

void qmp_set_event_handler(struct qmp *q, qmp_event_fn fn, void *ud)
{
	q->event_fn = fn;
	q->event_ud = ud;
}

int qmp_wait_event(struct qmp *q, const char *event, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	for (;;) {
		if (take_event(q, event))
			return 0;
		struct json_object *msg;
		int rc = read_message(q, deadline, &msg, NULL, 0);
		if (rc < 0)
			return rc;
		/* Not an event: a late reply to a timed-out command, or noise. */
		handle_event(q, msg);
		json_object_put(msg);
	}
}

const char *qmp_version(struct qmp *q)
{
	return q->version;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	close(q->fd);
	for (size_t i = 0; i < q->nevents; i++)
		free(q->events[i]);
	free(q->buf);
	free(q);
}
