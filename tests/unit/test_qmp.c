/* Unit tests of the QEMU backend's QMP client (plugins/backend-qemu/qmp.c).
 * Each case replays an exchange from tests/fixtures/qmp/ (format in README.txt
 * there, server lines recorded from QEMU 7.2) through a peer thread on the
 * other end of a socketpair; the peer checks what the client sends, and the
 * test checks what the client returns. The last case talks to a real QEMU when
 * one is installed. SIGPIPE is left at its default on purpose: a send without
 * MSG_NOSIGNAL to a closed peer would kill the test. */
#include "qmp.h"
#include "unit.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <json-c/json.h>

#ifndef CVMM_SOURCE_DIR
#define CVMM_SOURCE_DIR "."
#endif
#define FIXTURES CVMM_SOURCE_DIR "/tests/fixtures/qmp/"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *read_fixture(const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), FIXTURES "%s", name);
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot open fixture %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t n = 0;
	ssize_t got = getdelim(&text, &n, '\0', f);
	fclose(f);
	if (got < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- the replaying peer ---- */

struct peer {
	int fd;
	char *script;
	pthread_t thread;
	char failure[1024];
	/* fixture id -> client id, both as JSON text */
	struct {
		char from[64], to[64];
	} ids[32];
	size_t nids;
};

static void peer_fail(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peer_fail(struct peer *p, const char *fmt, ...)
{
	if (!p->failure[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->failure, sizeof(p->failure), fmt, ap);
		va_end(ap);
	}
}

static bool send_text(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

static const char *id_text(struct json_object *msg)
{
	struct json_object *id;
	if (!msg || !json_object_object_get_ex(msg, "id", &id))
		return NULL;
	return json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN);
}

/* Sends a recorded server line, splicing in the client's id where the
 * fixture's id was, so the rest of the line stays byte for byte. */
static void peer_send(struct peer *p, const char *line)
{
	char out[4096];
	struct json_object *msg = json_tokener_parse(line);
	const char *id = id_text(msg);
	snprintf(out, sizeof(out), "%s", line);
	for (size_t i = 0; id && i < p->nids; i++) {
		if (strcmp(p->ids[i].from, id) != 0 || strcmp(p->ids[i].from, p->ids[i].to) == 0)
			continue;
		char key[80];
		snprintf(key, sizeof(key), "\"id\": %s", id);
		char *at = strstr(line, key);
		if (!at) {
			peer_fail(p, "fixture line %s: id not written as \"id\": %s", line, id);
			break;
		}
		snprintf(out, sizeof(out), "%.*s\"id\": %s%s", (int)(at - line), line, p->ids[i].to,
		         at + strlen(key));
		break;
	}
	json_object_put(msg);
	strcat(out, "\r\n");
	if (!send_text(p->fd, out, strlen(out)))
		peer_fail(p, "could not send %s: %s", line, strerror(errno));
}

/* Reads one client line and compares it with the fixture, ignoring "id". */
static void peer_expect(struct peer *p, FILE *in, const char *expected)
{
	char *line = NULL;
	size_t n = 0;
	if (getline(&line, &n, in) < 0) {
		peer_fail(p, "expected %s, client sent nothing (%s)", expected, strerror(errno));
		free(line);
		return;
	}
	line[strcspn(line, "\r\n")] = '\0';
	struct json_object *want = json_tokener_parse(expected), *got = json_tokener_parse(line);
	const char *want_id = id_text(want), *got_id = id_text(got);
	if (!want || !got || !want_id || !got_id) {
		peer_fail(p, "expected %s, client sent %s (no id or not JSON)", expected, line);
	} else {
		for (size_t i = 0; i < p->nids; i++)
			if (strcmp(p->ids[i].to, got_id) == 0)
				peer_fail(p, "client reused id %s in %s", got_id, line);
		if (p->nids < sizeof(p->ids) / sizeof(p->ids[0])) {
			snprintf(p->ids[p->nids].from, sizeof(p->ids[0].from), "%s", want_id);
			snprintf(p->ids[p->nids].to, sizeof(p->ids[0].to), "%s", got_id);
			p->nids++;
		}
		json_object_object_del(want, "id");
		json_object_object_del(got, "id");
		if (!json_object_equal(want, got))
			peer_fail(p, "expected %s, client sent %s", expected, line);
	}
	json_object_put(want);
	json_object_put(got);
	free(line);
}

static void peer_flood(struct peer *p, long n)
{
	static char chunk[65536];
	memset(chunk, 'x', sizeof(chunk));
	/* The client is expected to hang up part way: send errors are fine. */
	if (!send_text(p->fd, "{\"return\": \"", 12))
		return;
	for (long sent = 0; sent < n; sent += (long)sizeof(chunk)) {
		size_t len = n - sent < (long)sizeof(chunk) ? (size_t)(n - sent) : sizeof(chunk);
		if (!send_text(p->fd, chunk, len))
			return;
	}
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	/* Bounds every peer read and write, so a wrong client fails, never hangs. */
	struct timeval tv = {.tv_sec = 10};
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	FILE *in = fdopen(dup(p->fd), "r");
	char *save = NULL;
	for (char *line = strtok_r(p->script, "\n", &save); line && in && !p->failure[0];
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, "S: ", 3) == 0)
			peer_send(p, line + 3);
		else if (strncmp(line, "C: ", 3) == 0)
			peer_expect(p, in, line + 3);
		else if (strcmp(line, "EOF") == 0)
			shutdown(p->fd, SHUT_RDWR);
		else if (strncmp(line, "SLEEP ", 6) == 0)
			usleep((useconds_t)atoi(line + 6) * 1000);
		else if (strncmp(line, "FLOOD ", 6) == 0)
			peer_flood(p, atol(line + 6));
		else
			peer_fail(p, "unknown fixture line %s", line);
	}
	/* Like QEMU, keep reading until the client hangs up. */
	if (in) {
		char buf[4096];
		while (fread(buf, 1, sizeof(buf), in) > 0)
			;
		fclose(in);
	} else {
		peer_fail(p, "fdopen: %s", strerror(errno));
	}
	close(p->fd);
	return NULL;
}

/* Starts a peer replaying script (owned by p); returns the client's fd. */
static int peer_start_script(struct peer *p, char *script)
{
	int sv[2];
	memset(p, 0, sizeof(*p));
	p->script = script;
	if (!script || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	p->fd = sv[1];
	if (pthread_create(&p->thread, NULL, peer_main, p) != 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	return sv[0];
}

static int peer_start(struct peer *p, const char *fixture)
{
	return peer_start_script(p, read_fixture(fixture));
}

/* A fixture with more script lines after it. */
static char *fixture_plus(const char *fixture, const char *more)
{
	char *text = read_fixture(fixture), *all = NULL;
	if (text && asprintf(&all, "%s%s", text, more) < 0)
		all = NULL;
	free(text);
	return all;
}

/* Joins the peer (the client must have closed, or the script ended in EOF)
 * and fails the test if the client did not send what the fixture expects. */
static void peer_finish(struct peer *p)
{
	pthread_join(p->thread, NULL);
	if (p->failure[0])
		fprintf(stderr, "\n  peer: %s\n", p->failure);
	CU_ASSERT_STRING_EQUAL(p->failure, "");
	free(p->script);
}

/* ---- event recorder ---- */

struct seen {
	int n;
	char name[8][32];
	char data[8][256];
};

static void on_event(void *ud, const char *event, const char *data_json)
{
	struct seen *s = ud;
	if (s->n < 8) {
		snprintf(s->name[s->n], sizeof(s->name[0]), "%s", event);
		snprintf(s->data[s->n], sizeof(s->data[0]), "%s", data_json);
	}
	s->n++;
}

/* ---- cases ---- */

static void test_greeting_and_capabilities(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "";
	int fd = peer_start(&p, "greeting.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(q);
	if (q)
		CU_ASSERT_STRING_EQUAL(qmp_version(q), "7.2.22");
	qmp_close(q);
	peer_finish(&p);
}

static void test_command_return(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "", *ret = NULL;
	int fd = peer_start(&p, "query-status.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 5000, &ret, err, sizeof(err)),
		                0);
		struct json_object *o = ret ? json_tokener_parse(ret) : NULL, *v;
		CU_ASSERT_TRUE(json_object_object_get_ex(o, "status", &v) &&
		               strcmp(json_object_get_string(v), "prelaunch") == 0);
		CU_ASSERT_TRUE(json_object_object_get_ex(o, "running", &v) &&
		               json_object_is_type(v, json_type_boolean) &&
		               !json_object_get_boolean(v));
		json_object_put(o);
		free(ret);
	}
	qmp_close(q);
	peer_finish(&p);
}

static void test_command_error(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "", *ret = NULL;
	int fd = peer_start(&p, "qemu-7.2-errors.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		/* Refused before anything is sent: the peer would see an extra line. */
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", "[1]", 5000, &ret, err, sizeof(err)),
		                -EINVAL);
		CU_ASSERT_EQUAL(
		    qmp_command(q, "query-status", "{\"bogus\": 1}", 5000, &ret, err, sizeof(err)),
		    -EIO);
		CU_ASSERT_STRING_EQUAL(err, "GenericError: Parameter 'bogus' is unexpected");
		CU_ASSERT_PTR_NULL(ret);
		/* Still usable after an error; id-less error replies are not ours. */
		CU_ASSERT_EQUAL(qmp_command(q, "human-monitor-command",
		                            "{\"command-line\": \"info version\"}", 5000, &ret, err,
		                            sizeof(err)),
		                0);
		CU_ASSERT_PTR_NOT_NULL(ret);
		if (ret)
			CU_ASSERT_STRING_EQUAL(ret,
			                       "\"7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\\r\\n\"");
		free(ret);
	}
	qmp_close(q);
	peer_finish(&p);
}

static void test_event_between_command_and_reply(void)
{
	struct peer p;
	struct qmp *q = NULL;
	struct seen seen = {0};
	char err[256] = "", *ret = NULL;
	int fd = peer_start(&p, "powerdown.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		qmp_set_event_handler(q, on_event, &seen);
		CU_ASSERT_EQUAL(
		    qmp_command(q, "system_powerdown", NULL, 5000, &ret, err, sizeof(err)), 0);
		if (ret)
			CU_ASSERT_STRING_EQUAL(ret, "{}");
		free(ret);
		CU_ASSERT_EQUAL(seen.n, 1);
		CU_ASSERT_STRING_EQUAL(seen.name[0], "POWERDOWN");
		CU_ASSERT_STRING_EQUAL(seen.data[0], "{}"); /* QEMU sent no "data" */
	}
	qmp_close(q);
	peer_finish(&p);
}

static void test_stale_reply_dropped(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "", *ret = NULL;
	int fd = peer_start(&p, "stale-id.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 5000, &ret, err, sizeof(err)),
		                0);
		/* The two "running" replies carry ids 99 and "2": not ours. */
		CU_ASSERT_PTR_NOT_NULL(ret);
		if (ret)
			CU_ASSERT_PTR_NOT_NULL(strstr(ret, "\"prelaunch\""));
		free(ret);
	}
	qmp_close(q);
	peer_finish(&p);
}

static void test_oversized_line(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "", *ret = NULL;
	int fd = peer_start(&p, "oversized.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 10000, &ret, err, sizeof(err)),
		                -EPROTO);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer than"));
		CU_ASSERT_PTR_NULL(ret);
		/* The connection is closed, not left half-read. */
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 1000, NULL, err, sizeof(err)),
		                -EPIPE);
	}
	qmp_close(q);
	peer_finish(&p);
}

static void test_eof(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "";

	/* QEMU goes away while a command is in flight. */
	int fd = peer_start(&p, "eof-mid-command.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q)
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 5000, NULL, err, sizeof(err)),
		                -EPIPE);
	qmp_close(q);
	peer_finish(&p);

	/* QEMU went away before the command: the send itself fails, with EPIPE
	 * and no SIGPIPE (which would end this process). */
	q = NULL;
	fd = peer_start_script(&p, fixture_plus("greeting.txt", "EOF\n"));
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	peer_finish(&p); /* the peer has closed its end */
	if (q)
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 5000, NULL, err, sizeof(err)),
		                -EPIPE);
	qmp_close(q);
}

static void test_timeout(void)
{
	struct peer p;
	struct qmp *q = NULL;
	char err[256] = "";

	int fd = peer_start(&p, "silent.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		int64_t t0 = now_ms();
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 200, NULL, err, sizeof(err)),
		                -ETIMEDOUT);
		int64_t took = now_ms() - t0;
		CU_ASSERT_TRUE(took >= 190 && took < 3000);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "timed out"));
	}
	qmp_close(q);
	peer_finish(&p);

	/* No greeting at all: the handshake honours the deadline too. */
	q = NULL;
	fd = peer_start_script(&p, strdup("# says nothing\n"));
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 200, &q, err, sizeof(err)), -ETIMEDOUT);
	CU_ASSERT_PTR_NULL(q);
	peer_finish(&p); /* qmp_open_fd closed the fd on failure */
}

static void test_bad_greeting(void)
{
	static const char *const fixtures[] = {"bad-greeting.txt", "bad-greeting-text.txt"};
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		struct peer p;
		struct qmp *q = NULL;
		char err[256] = "";
		int fd = peer_start(&p, fixtures[i]);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), -EPROTO);
		CU_ASSERT_PTR_NULL(q);
		CU_ASSERT_STRING_NOT_EQUAL(err, "");
		qmp_close(q);
		peer_finish(&p);
	}
}

static void test_wait_event_shutdown(void)
{
	struct peer p;
	struct qmp *q = NULL;
	struct seen seen = {0};
	char err[256] = "";
	int fd = peer_start(&p, "shutdown.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		qmp_set_event_handler(q, on_event, &seen);
		CU_ASSERT_EQUAL(
		    qmp_command(q, "system_powerdown", NULL, 5000, NULL, err, sizeof(err)), 0);
		/* POWERDOWN came with the reply and was queued: it counts. */
		CU_ASSERT_EQUAL(qmp_wait_event(q, "POWERDOWN", 0), 0);
		CU_ASSERT_EQUAL(qmp_wait_event(q, "RESET", 50), -ETIMEDOUT);
		/* SHUTDOWN comes ~200 ms after the reply. */
		CU_ASSERT_EQUAL(qmp_wait_event(q, "SHUTDOWN", 5000), 0);
		CU_ASSERT_EQUAL(seen.n, 2);
		CU_ASSERT_STRING_EQUAL(seen.name[1], "SHUTDOWN");
		CU_ASSERT_STRING_EQUAL(seen.data[1],
		                       "{\"guest\":true,\"reason\":\"guest-shutdown\"}");
		/* It was consumed; then QEMU exits. */
		CU_ASSERT_EQUAL(qmp_wait_event(q, "SHUTDOWN", 5000), -EPIPE);
	}
	qmp_close(q);
	peer_finish(&p);
}

/* The whole first recorded session, in order, as cvmm would drive it. */
static void test_recorded_session(void)
{
	struct peer p;
	struct qmp *q = NULL;
	struct seen seen = {0};
	char err[256] = "", *ret = NULL;
	int fd = peer_start(&p, "qemu-7.2-session.txt");
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(qmp_open_fd(fd, 5000, &q, err, sizeof(err)), 0);
	if (q) {
		qmp_set_event_handler(q, on_event, &seen);
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 5000, &ret, err, sizeof(err)),
		                0);
		if (ret)
			CU_ASSERT_STRING_EQUAL(
			    ret,
			    "{\"status\":\"prelaunch\",\"singlestep\":false,\"running\":false}");
		free(ret);
		CU_ASSERT_EQUAL(
		    qmp_command(q, "system_powerdown", NULL, 5000, NULL, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(qmp_command(q, "no-such-cmd", NULL, 5000, NULL, err, sizeof(err)),
		                -EIO);
		CU_ASSERT_STRING_EQUAL(
		    err, "CommandNotFound: The command no-such-cmd has not been found");
		CU_ASSERT_EQUAL(qmp_command(q, "quit", NULL, 5000, NULL, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(seen.n, 2);
		CU_ASSERT_STRING_EQUAL(seen.name[0], "POWERDOWN");
		CU_ASSERT_STRING_EQUAL(seen.name[1], "SHUTDOWN");
		CU_ASSERT_STRING_EQUAL(seen.data[1],
		                       "{\"guest\":false,\"reason\":\"host-qmp-quit\"}");
		/* SHUTDOWN arrived before quit's reply; waiting for it afterwards works. */
		CU_ASSERT_EQUAL(qmp_wait_event(q, "SHUTDOWN", 0), 0);
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 5000, NULL, err, sizeof(err)),
		                -EPIPE);
	}
	qmp_close(q);
	peer_finish(&p);
}

struct listener {
	int lfd;
	struct peer *peer;
	char *script;
};

static void *accept_main(void *arg)
{
	struct listener *l = arg;
	int fd = accept(l->lfd, NULL, NULL);
	memset(l->peer, 0, sizeof(*l->peer));
	l->peer->script = l->script;
	l->peer->fd = fd;
	if (fd >= 0)
		peer_main(l->peer);
	else
		snprintf(l->peer->failure, sizeof(l->peer->failure), "accept: %s", strerror(errno));
	return NULL;
}

static void test_connect_socket_path(void)
{
	char dir[] = "/tmp/cvmm-qmp-test-XXXXXX", path[64], err[256] = "";
	struct qmp *q = NULL;
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);

	/* Nothing there: retried until the deadline, then the real reason. */
	int64_t t0 = now_ms();
	CU_ASSERT_EQUAL(qmp_connect(path, 150, &q, err, sizeof(err)), -ENOENT);
	CU_ASSERT_TRUE(now_ms() - t0 >= 140);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	CU_ASSERT_PTR_NULL(q);

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	struct peer p;
	struct listener l = {.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
	                     .peer = &p,
	                     .script = read_fixture("greeting.txt")};
	pthread_t th;
	CU_ASSERT_FATAL(l.lfd >= 0 && l.script);
	CU_ASSERT_FATAL(bind(l.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(l.lfd, 1) == 0);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, accept_main, &l) == 0);
	CU_ASSERT_EQUAL(qmp_connect(path, 5000, &q, err, sizeof(err)), 0);
	if (q)
		CU_ASSERT_STRING_EQUAL(qmp_version(q), "7.2.22");
	qmp_close(q);
	pthread_join(th, NULL);
	CU_ASSERT_STRING_EQUAL(p.failure, "");
	free(l.script);
	close(l.lfd);
	unlink(path);
	rmdir(dir);
}

static bool find_in_path(const char *prog, char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	char *copy = strdup(path ? path : "/usr/bin:/bin"), *save = NULL;
	bool found = false;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, outlen, "%s/%s", d, prog);
		found = access(out, X_OK) == 0;
	}
	free(copy);
	return found;
}

static void test_real_qemu(void)
{
	char qemu[PATH_MAX], dir[] = "/tmp/cvmm-qmp-test-XXXXXX", sock[PATH_MAX],
	                     chardev[PATH_MAX + 32];
	char err[256] = "", *ret = NULL;
	struct qmp *q = NULL;

	if (!find_in_path("qemu-system-x86_64", qemu, sizeof(qemu))) {
		CU_PASS("qemu-system-x86_64 not installed: real QEMU case skipped");
		fprintf(stderr, "\n  qemu-system-x86_64 not installed: skipped\n");
		return;
	}
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	snprintf(chardev, sizeof(chardev), "unix:%s,server=on,wait=off", sock);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		execl(qemu, "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "64",
		      "-nodefaults", "-display", "none", "-S", "-qmp", chardev, (char *)NULL);
		_exit(127);
	}

	/* qmp_connect waits for QEMU to create its socket. */
	CU_ASSERT_EQUAL(qmp_connect(sock, 20000, &q, err, sizeof(err)), 0);
	if (!q)
		fprintf(stderr, "\n  %s\n", err);
	if (q) {
		CU_ASSERT_STRING_NOT_EQUAL(qmp_version(q), "");
		CU_ASSERT_EQUAL(qmp_command(q, "query-status", NULL, 10000, &ret, err, sizeof(err)),
		                0);
		struct json_object *o = ret ? json_tokener_parse(ret) : NULL, *v;
		CU_ASSERT_TRUE(json_object_object_get_ex(o, "status", &v) &&
		               strcmp(json_object_get_string(v), "prelaunch") == 0);
		json_object_put(o);
		free(ret);
		/* QEMU may close before its reply reaches us: both are a success. */
		int rc = qmp_command(q, "quit", NULL, 10000, NULL, err, sizeof(err));
		CU_ASSERT_TRUE(rc == 0 || rc == -EPIPE);
		CU_ASSERT_EQUAL(qmp_wait_event(q, "SHUTDOWN", 10000), 0);
	}
	qmp_close(q);

	/* The process must actually end. */
	int status = 0;
	pid_t done = 0;
	for (int i = 0; i < 1000 && done == 0; i++) {
		done = waitpid(pid, &status, WNOHANG);
		if (done == 0)
			usleep(20 * 1000);
	}
	CU_ASSERT_EQUAL(done, pid);
	if (done == pid) {
		CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	} else {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	unlink(sock);
	rmdir(dir);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("qmp", NULL, NULL);
	if (!s || !CU_add_test(s, "greeting and capabilities", test_greeting_and_capabilities) ||
	    !CU_add_test(s, "command return value", test_command_return) ||
	    !CU_add_test(s, "QMP error reply", test_command_error) ||
	    !CU_add_test(s, "event between command and reply",
	                 test_event_between_command_and_reply) ||
	    !CU_add_test(s, "reply with unknown id dropped", test_stale_reply_dropped) ||
	    !CU_add_test(s, "oversized line", test_oversized_line) ||
	    !CU_add_test(s, "EOF", test_eof) || !CU_add_test(s, "timeout", test_timeout) ||
	    !CU_add_test(s, "bad greeting", test_bad_greeting) ||
	    !CU_add_test(s, "wait for SHUTDOWN", test_wait_event_shutdown) ||
	    !CU_add_test(s, "recorded QEMU 7.2 session", test_recorded_session) ||
	    !CU_add_test(s, "connect by socket path", test_connect_socket_path) ||
	    !CU_add_test(s, "real QEMU", test_real_qemu)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
