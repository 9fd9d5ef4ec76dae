/*
 * Fuzz target: the HTTP request path of the daemon (core/api.c behind
 * libmicrohttpd: method, path, query, headers, body, auth, routing, the
 * create validation, VM actions, logs, events), driven as a black box. One
 * daemon runs in-process for the whole session, with the real plugins
 * (backend-qemu, net-user) and its API on a unix socket in a tmpfs folder.
 * Each input is written as is to a fresh connection, which is then shut for
 * writing; the answer is read to EOF.
 *
 * Hangs: an answer that has not ended within HANG_MS is a crash (the API
 * runs a thread per connection, which sees the client's EOF at once; the
 * earlier external-epoll integration missed it when the bytes and the FIN
 * came in one read). FUZZ_HTTP_LENIENT=1 only counts them instead. Open
 * descriptors of the process (the daemon's included) are checked to stay
 * bounded either way.
 *
 * No input can boot a VM, whatever it asks, because of the configuration
 * (fuzz_env.h), not because of a filter on the input: the limits refuse
 * every create at reservation (after the whole validation), so the only
 * VMs are the two written before the daemon starts, and their backend
 * ("fuzz-none") is no loaded plugin, so a start of one fails before any
 * process is spawned. backend-qemu's binary does not exist either, should
 * a start ever reach it. Rewriting "start" in inputs was not chosen: JSON
 * escapes ("st\u0061rt"), URL escapes (st%61rt) and pipelined requests
 * would all get past such a filter.
 *
 * To keep runs deterministic, an input whose answer says it changed state
 * (201, 202, 5xx, or a removal) is followed by a fresh daemon on the
 * pristine data folder.
 */
#include "daemon.h"
#include "fuzz_env.h"
#include "job.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#define VM1 "11111111-1111-4111-8111-111111111111"
#define VM2 "22222222-2222-4222-8222-222222222222"
#define HANG_MS 5000 /* generous: CI runs this beside other suites */
#define ANSWER_TIMEOUT_MS 10000

static struct cvmm_config cfg;
static struct cvmm_daemon *d;
static pthread_t loop_thread;
static char sock_path[108], data_dir[256];

static bool strict;

static int open_fds(void)
{
	int n = 0;
	DIR *dh = opendir("/proc/self/fd");
	if (!dh)
		return -1;
	while (readdir(dh))
		n++;
	closedir(dh);
	return n - 3; /* ".", "..", and dh's own */
}
static unsigned long hangs, runs;

static void report(void)
{
	fprintf(stderr, "fuzz_http: %lu inputs, %lu without EOF within %d ms, %d fds open\n", runs,
	        hangs, HANG_MS, open_fds());
}


static const char *const manifests[][2] = {
    {VM1, "{\"version\": 1, \"definition\": {\"id\": \"" VM1 "\", \"name\": \"vm1\", "
          "\"image\": \"tiny\", \"backend\": \"fuzz-none\", \"vcpu\": 1, \"memory_mb\": 64, "
          "\"disk_gb\": 0, \"cid\": 1000, \"networks\": [{\"mode\": \"user\"}], "
          "\"ports\": [{\"protocol\": \"tcp\", \"host_address\": \"127.0.0.1\", "
          "\"host_port\": 10001, \"vm_port\": 22}], \"created\": 1700000000.5}, "
          "\"state\": \"stopped\", \"reason\": \"\", \"want_running\": false, \"pid\": 0, "
          "\"started\": 0, \"restarts\": 0, \"defined_ok\": true, "
          "\"plugins\": {\"net-user\": {\"nic0.mac\": \"52:54:00:12:34:56\"}}}"},
    {VM2, "{\"version\": 1, \"definition\": {\"id\": \"" VM2 "\", \"name\": \"vm2\", "
          "\"image\": \"tiny\", \"backend\": \"fuzz-none\", \"vcpu\": 2, \"memory_mb\": 128, "
          "\"disk_gb\": 0, \"cid\": 1001, \"networks\": [{\"mode\": \"user\"}], "
          "\"ports\": [], \"created\": 1700000001.5}, \"state\": \"defined\", "
          "\"reason\": \"\", \"want_running\": false, \"pid\": 0, \"started\": 0, "
          "\"restarts\": 0, \"defined_ok\": false, \"plugins\": {}}"},
};

/* <data_dir>/vms as the daemon first finds it. */
static void write_data(void)
{
	rm_rf(data_dir);
	for (size_t i = 0; i < ARRAY_SIZE(manifests); i++) {
		char *vm = xasprintf("%s/vms/%s", data_dir, manifests[i][0]);
		if (mkdir_p(vm, 0750) < 0)
			abort();
		fuzz_write(vm, "manifest.json", manifests[i][1]);
		fuzz_write(vm, "console.log", "[    0.000000] Linux version 6.1\nlogin: \nline 3\n");
		fuzz_write(vm, "events.log",
		           "{\"time\": 1700000000.5, \"type\": \"create\", \"message\": \"x\"}\n");
		free(vm);
	}
}

static void *loop_main(void *arg)
{
	daemon_run(arg);
	return NULL;
}

static void stop_on_loop(struct cvmm_daemon *dd, void *arg)
{
	daemon_request_stop(dd);
}

static void daemon_up(void)
{
	write_data();
	char err[1024];
	d = daemon_new(&cfg, err, sizeof(err));
	if (!d || daemon_start(d, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_http: daemon: %s\n", err);
		abort();
	}
	if (pthread_create(&loop_thread, NULL, loop_main, d) != 0)
		abort();
	/* The start's adoption jobs run on workers: wait for them, or
	 * libFuzzer's per-input leak check would see their objects in
	 * flight on another thread and call them leaks. */
	jobs_wait_idle(d->jobs);
}

static void daemon_down(void)
{
	daemon_call_on_loop(d, stop_on_loop, NULL);
	pthread_join(loop_thread, NULL);
	daemon_free(d);
	d = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(-1);
	signal(SIGPIPE, SIG_IGN);
	strict = getenv("FUZZ_HTTP_LENIENT") == NULL;
	atexit(report);
	fuzz_env_images();
	snprintf(sock_path, sizeof(sock_path), "%s/run/cvmm.sock", fuzz_dir);
	snprintf(data_dir, sizeof(data_dir), "%s/data", fuzz_dir);
	char *addr = xasprintf("unix:%s", sock_path);
	if (fuzz_env_config(&cfg, addr) < 0)
		abort();
	free(addr);
	daemon_up();
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_api(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	str_copy(sa.sun_path, sizeof(sa.sun_path), sock_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "fuzz_http: connect %s: %s\n", sock_path, strerror(errno));
		abort();
	}
	return fd;
}

/* Writes what it can: the server may answer and close before the end. The
 * answer is read meanwhile, so that neither side can block the other.
 * HANG_MS counts from the last byte received or sent. */
static size_t exchange(int fd, const uint8_t *data, size_t size, char *ans, size_t cap)
{
	size_t off = 0, got = 0;
	bool wr_open = true;
	int64_t deadline = now_ms() + ANSWER_TIMEOUT_MS, quiet = now_ms() + HANG_MS;
	if (!size) {
		shutdown(fd, SHUT_WR);
		wr_open = false;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
		int64_t t = now_ms();
		int left = (int)((strict ? deadline : (quiet < deadline ? quiet : deadline)) - t);
		if (left <= 0 || poll(&p, 1, left) == 0) {
			if (strict || now_ms() >= deadline) {
				fprintf(stderr, "fuzz_http: no answer (EOF) within %d ms\n",
				        ANSWER_TIMEOUT_MS);
				abort();
			}
			hangs++;
			break;
		}
		quiet = now_ms() + HANG_MS;
		if (wr_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == size) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			char sink[4096];
			char *dst = got + 1 < cap ? ans + got : sink;
			size_t room = got + 1 < cap ? cap - got - 1 : sizeof(sink);
			ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0 && dst == ans + got)
				got += (size_t)n;
		}
	}
	ans[got] = 0;
	return got;
}

/* Whether an answer says the daemon's state changed. */
static bool changed_state(const char *ans)
{
	for (const char *p = ans; (p = strstr(p, "HTTP/1.")); p += 7) {
		int st;
		if (sscanf(p, "HTTP/1.%*d %d", &st) == 1 &&
		    (st == 201 || st == 202 || st >= 500))
			return true;
	}
	return strstr(ans, "\"removed\"") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return -1;
	static char ans[1 << 20];
	runs++;
	int fd = connect_api();
	exchange(fd, data, size, ans, sizeof(ans));
	close(fd);
	/* FUZZ_HTTP_SHOW=1: print each answer (to check seeds by hand). */
	if (getenv("FUZZ_HTTP_SHOW"))
		fprintf(stderr, "---- answer:\n%s\n----\n", ans);
	/* Every connection the daemon accepted must be gone soon after its
	 * client: hundreds left open would fill the connection limit. */
	if (runs % 256 == 0) {
		int n = open_fds();
		for (int i = 0; i < 50 && n > 256; i++) {
			usleep(20000);
			n = open_fds();
		}
		if (n > 256) {
			fprintf(stderr, "fuzz_http: %d descriptors open: connections leak\n", n);
			abort();
		}
	}
	if (changed_state(ans)) {
		daemon_down();
		daemon_up();
	}
	jobs_wait_idle(d->jobs);
	return 0;
}
