/*
 * channel: see channel.h. One thread per running VM, so that a slow or
 * hostile guest costs its own thread and reader and nothing else: the loop
 * thread never touches a channel, and a guest that floods is cut down by its
 * reader's rate limit (dropped messages, counted and reported once a second)
 * before its messages reach the daemon.
 *
 * Trust: the VM is the one whose socket the bytes came on; the thread is
 * bound to that VM for its life. It reads only what the reader
 * re-serialized, and still treats it as the guest's words (bounded lines,
 * known fields, events rate-limited).
 */
#include "channel.h"

#include "chanmsg.h"
#include "daemon.h"
#include "job.h"
#include "jsonw.h"
#include "registry.h"
#include "spec.h"
#include "util.h"
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ANSWER_MAX (64 * 1024)
#define EVENT_EVERY 10.0 /* seconds between two "dropped"/"refused" events */

struct chan {
	struct cvmm_daemon *d;
	struct cvmm_vm *vm; /* a reference */
	char path[300];
	int stop_fd;       /* eventfd: detach asks the thread to end */
	int conn;          /* the channel socket (our copy: answers go out on it) */
	int sp;            /* the daemon's end of the socketpair to the reader */
	pid_t reader;
	pthread_t thread;
	char *buf;         /* lines from the reader, CHAN_OUT_MAX */
	size_t used;
	double drop_event_at, refuse_event_at;
	double frozen_at; /* last check that found the VM paused: heartbeats count from there */
	bool said_no_reader, said_no_socket;
};

/* ---- launch spec ---- */

void channel_spec(struct cvmm_daemon *d, struct cvmm_vm *vm, struct cvmm_spec *s)
{
	if (!d->cfg->chan_enabled)
		return;
	str_copy(s->pub.channel_name, sizeof(s->pub.channel_name), CHANNEL_PORT_NAME);
	snprintf(s->pub.channel_path, sizeof(s->pub.channel_path), "%s/channel.sock", vm->run_dir);
}

/* ---- the reader process ---- */

static int reader_path(struct cvmm_daemon *d, char *out, size_t len)
{
	if (d->cfg->chan_reader)
		return str_copy(out, len, d->cfg->chan_reader) < 0 ? -ENAMETOOLONG : 0;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -errno;
	self[n] = 0;
	snprintf(out, len, "%s/cvmm-chanreader", dirname(self));
	return 0;
}

static void wait_stop(struct chan *c, int ms)
{
	struct pollfd p = {.fd = c->stop_fd, .events = POLLIN};
	poll(&p, 1, ms);
}

static bool stopping(struct chan *c)
{
	struct pollfd p = {.fd = c->stop_fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

static int connect_socket(struct chan *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (str_copy(sa.sun_path, sizeof(sa.sun_path), c->path) < 0)
		return -ENAMETOOLONG;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int spawn_reader(struct chan *c)
{
	char path[PATH_MAX];
	int rc = reader_path(c->d, path, sizeof(path));
	if (rc < 0)
		return rc;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	/* Above 4, so that the dup2s below cannot overwrite each other. */
	int a = fcntl(c->conn, F_DUPFD_CLOEXEC, 10), b = fcntl(sp[1], F_DUPFD_CLOEXEC, 10);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, a, 3);
	posix_spawn_file_actions_adddup2(&fa, b, 4);
	posix_spawn_file_actions_addclosefrom_np(&fa, 5);
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char *argv[] = {path, "--vm", c->vm->id, NULL};
	pid_t pid;
	rc = a < 0 || b < 0 ? -EMFILE : -posix_spawn(&pid, path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	close(sp[1]);
	if (rc < 0) {
		close(sp[0]);
		return rc;
	}
	c->sp = sp[0];
	c->reader = pid;
	return 0;
}

static void end_session(struct chan *c, int *status)
{
	if (c->reader > 0) {
		kill(c->reader, SIGKILL);
		while (waitpid(c->reader, status, 0) < 0 && errno == EINTR)
			;
		c->reader = 0;
	}
	if (c->sp >= 0)
		close(c->sp);
	if (c->conn >= 0)
		close(c->conn);
	c->sp = c->conn = -1;
	c->used = 0;
	vm_lock(c->vm);
	c->vm->guest.connected = false;
	vm_unlock(c->vm);
}

/* ---- answers to the guest ---- */

/* At most a second for the guest to take an answer; one that does not read
 * its port loses the answer, not the daemon's time. */
static void answer(struct chan *c, const char *text, size_t len)
{
	double deadline = now_mono() + 1.0;
	size_t off = 0;
	bool nl = false;
	while (!nl) {
		const char *p = off < len ? text + off : "\n";
		size_t n = off < len ? len - off : 1;
		ssize_t w = send(c->conn, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			if (off < len)
				off += (size_t)w;
			else
				nl = true;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return;
		int left = (int)((deadline - now_mono()) * 1000);
		if (left <= 0) {
			log_warn("VM '%s': guest channel: the guest does not take its answer; dropped",
				 c->vm->name);
			return;
		}
		struct pollfd pf = {.fd = c->conn, .events = POLLOUT};
		poll(&pf, 1, left);
	}
}

static void answer_json(struct chan *c, int64_t id, json_object *result, const char *error)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(id));
	if (error)
		json_object_object_add(o, "error", json_object_new_string(error));
	else
		json_object_object_add(o, "result", result);
	size_t n;
	const char *t = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
	answer(c, t, n);
	json_object_put(o);
}

/* ---- plugin handlers, bounded like every plugin call ---- */

struct hcall {
	struct reg_chan_handler *h;
	struct cvmm_vm *vm;
	char *params;
	char buf[ANSWER_MAX];
	char err[512];
	int rc;
	int state; /* 0 running, 1 returned, 2 abandoned */
	pthread_mutex_t mu;
	pthread_cond_t cond;
};

static void hcall_free(struct hcall *k)
{
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cond);
	vm_unref(k->vm);
	free(k->params);
	free(k);
}

static void *hcall_thread(void *arg)
{
	struct hcall *k = arg;
	char err[512];
	registry_call_begin(err, sizeof(err));
	int rc = k->h->fn(k->h->data, k->vm, k->params, k->buf, sizeof(k->buf));
	registry_call_end();
	pthread_mutex_lock(&k->mu);
	k->rc = rc;
	str_copy(k->err, sizeof(k->err), err);
	bool abandoned = k->state == 2;
	k->state = 1;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->mu);
	if (abandoned)
		hcall_free(k);
	return NULL;
}

static void run_handler(struct chan *c, const char *request, int64_t id, json_object *params)
{
	struct reg_chan_handler *h = registry_channel_handler(c->d->reg, request);
	if (!h) {
		char why[128];
		snprintf(why, sizeof(why), "%s: no plugin on this host answers it%s", request,
			 !strcmp(request, "GetSealingKey") ? " (no key provider)" : "");
		answer_json(c, id, NULL, why);
		return;
	}
	struct hcall *k = xzalloc(sizeof(*k));
	k->h = h;
	k->vm = vm_ref(c->vm);
	k->params = xstrdup(json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN));
	pthread_mutex_init(&k->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &attr, hcall_thread, k);
	pthread_attr_destroy(&attr);
	if (e) {
		hcall_free(k);
		answer_json(c, id, NULL, "the host is out of threads");
		return;
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	double to = c->d->cfg->hook_timeout > 0 ? c->d->cfg->hook_timeout : 300;
	dl.tv_sec += (time_t)to;
	pthread_mutex_lock(&k->mu);
	while (k->state == 0)
		if (pthread_cond_timedwait(&k->cond, &k->mu, &dl) == ETIMEDOUT)
			break;
	if (k->state == 0) {
		k->state = 2; /* the thread frees it when the plugin returns */
		pthread_mutex_unlock(&k->mu);
		log_error("VM '%s': guest channel: %s handler did not answer within %g s "
			  "(cvm.hook_timeout)",
			  c->vm->name, request, to);
		answer_json(c, id, NULL, "the host's handler timed out");
		return;
	}
	pthread_mutex_unlock(&k->mu);
	if (k->rc < 0) {
		answer_json(c, id, NULL, k->err[0] ? k->err : strerror(-k->rc));
	} else {
		size_t n = (size_t)k->rc < sizeof(k->buf) ? (size_t)k->rc : sizeof(k->buf) - 1;
		k->buf[n] = 0;
		json_object *r = json_tokener_parse(k->buf);
		if (r)
			answer_json(c, id, r, NULL);
		else
			answer_json(c, id, NULL, "the host's handler gave no JSON");
	}
	hcall_free(k);
}

/* ---- messages ---- */

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static void put_json(char *dst, size_t n, const char *js)
{
	if (!js || str_copy(dst, n, js) < 0)
		str_copy(dst, n, "null");
}

static void on_notify(struct chan *c, json_object *msg)
{
	struct cvmm_vm *vm = c->vm;
	const char *ev = jstr(msg, "event");
	json_object *p = NULL;
	json_object_object_get_ex(msg, "payload", &p);
	const char *text = p && json_object_is_type(p, json_type_string)
				   ? json_object_get_string(p)
				   : json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN);
	if (!ev || !text)
		return;
	/* The JSON form, kept whole or not at all: the API writes it raw. */
	const char *js = json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN);
	double t = now_real();
	if (!strcmp(ev, "agent.heartbeat")) {
		vm_lock(vm);
		vm->guest.heartbeats++;
		vm->guest.last_heartbeat = t;
		put_json(vm->guest.heartbeat, sizeof(vm->guest.heartbeat), js);
		bool back = !strcmp(vm->guest.agent, "unresponsive");
		if (back || !vm->guest.agent[0])
			str_copy(vm->guest.agent, sizeof(vm->guest.agent), "ready");
		vm_unlock(vm);
		if (back)
			vm_event(vm, "agent", "heartbeats again: ready");
		return;
	}
	if (!strcmp(ev, "agent.hello")) {
		vm_lock(vm);
		vm->guest.hello_at = t;
		put_json(vm->guest.hello, sizeof(vm->guest.hello), js);
		str_copy(vm->guest.agent, sizeof(vm->guest.agent), "ready");
		vm_unlock(vm);
		vm_event(vm, "agent", "phoned home: ready %.400s", text);
		return;
	}
	vm_lock(vm);
	if (!strcmp(ev, "boot.progress"))
		str_copy(vm->guest.boot_progress, sizeof(vm->guest.boot_progress), text);
	else if (!strcmp(ev, "boot.error"))
		str_copy(vm->guest.boot_error, sizeof(vm->guest.boot_error), text);
	else if (!strcmp(ev, "shutdown.progress")) {
		str_copy(vm->guest.shutdown_progress, sizeof(vm->guest.shutdown_progress), text);
		if (!strcmp(text, "powering off"))
			vm->guest.poweroff = true;
	} else if (!strcmp(ev, "instance.info"))
		put_json(vm->guest.instance_info, sizeof(vm->guest.instance_info), js);
	vm_unlock(vm);
	vm_event(vm, "guest", "%s: %.400s", ev, text);
}

static bool in_plugin_calls(const char *m)
{
	for (int i = 0; chanmsg_plugin_calls[i]; i++)
		if (!strcmp(m, chanmsg_plugin_calls[i]))
			return true;
	return false;
}

static void on_message(struct chan *c, const char *line)
{
	json_object *msg = json_tokener_parse(line);
	const char *m = msg ? jstr(msg, "m") : NULL;
	struct cvmm_vm *vm = c->vm;
	double t = now_mono();
	if (!m) {
		log_warn("VM '%s': guest channel: the reader passed on something else than a message",
			 vm->name);
	} else if (!strcmp(m, "Info")) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "name", json_object_new_string(vm->name));
		json_object_object_add(r, "id", json_object_new_string(vm->id));
		json_object_object_add(r, "image", json_object_new_string(vm->image));
		json_object_object_add(r, "host", json_object_new_string("cvmm"));
		json_object_object_add(r, "version", json_object_new_string(CVMM_VERSION));
		answer_json(c, jint(msg, "id"), r, NULL);
	} else if (!strcmp(m, "Notify")) {
		on_notify(c, msg);
	} else if (!strcmp(m, "GetSealingKey")) {
		json_object *params = json_object_new_object();
		json_object *q;
		if (json_object_object_get_ex(msg, "quote", &q))
			json_object_object_add(params, "quote", json_object_get(q));
		run_handler(c, "GetSealingKey", jint(msg, "id"), params);
		json_object_put(params);
	} else if (in_plugin_calls(m)) {
		/* The VM is the channel's: the reader passed on no other. */
		json_object *params = json_object_new_object();
		run_handler(c, m, jint(msg, "id"), params);
		json_object_put(params);
	} else if (!strcmp(m, "dropped")) {
		int64_t n = jint(msg, "n");
		vm_lock(vm);
		vm->guest.dropped += (uint64_t)(n > 0 ? n : 0);
		uint64_t total = vm->guest.dropped;
		vm_unlock(vm);
		if (t - c->drop_event_at >= EVENT_EVERY) {
			c->drop_event_at = t;
			vm_event(vm, "guest",
				 "channel flooded: %lld messages dropped (more than 20 a second), %llu "
				 "so far",
				 (long long)n, (unsigned long long)total);
		}
	} else if (!strcmp(m, "refused")) {
		int64_t n = jint(msg, "n");
		const char *why = jstr(msg, "why");
		vm_lock(vm);
		vm->guest.refused += (uint64_t)(n > 0 ? n : 0);
		uint64_t total = vm->guest.refused;
		vm_unlock(vm);
		if (t - c->refuse_event_at >= EVENT_EVERY) {
			c->refuse_event_at = t;
			vm_event(vm, "guest", "channel: %lld messages refused (last: %.200s), %llu so far",
				 (long long)n, why ? why : "?", (unsigned long long)total);
		}
	}
	json_object_put(msg);
}

/* Heartbeats stopped for cvm.agent.unresponsive_after: said once. */
static void check_agent(struct chan *c)
{
	struct cvmm_vm *vm = c->vm;
	double limit = c->d->cfg->agent_unresponsive;
	vm_lock(vm);
	/* A paused guest cannot send heartbeats: its silence does not count,
	 * during the pause or as if it had lasted after the resume. */
	if (vm->state != VM_RUNNING) {
		c->frozen_at = now_real();
		vm_unlock(vm);
		return;
	}
	double last = vm->guest.last_heartbeat > vm->guest.hello_at ? vm->guest.last_heartbeat
								    : vm->guest.hello_at;
	if (c->frozen_at > last)
		last = c->frozen_at;
	bool now_un = !strcmp(vm->guest.agent, "ready") && now_real() - last > limit;
	if (now_un)
		str_copy(vm->guest.agent, sizeof(vm->guest.agent), "unresponsive");
	vm_unlock(vm);
	if (!now_un)
		return;
	bool restart = c->d->cfg->agent_restart;
	vm_event(vm, "agent", "unresponsive: no heartbeat for %g s (cvm.agent.unresponsive_after)%s",
		 limit, restart ? "; restarting the VM (cvm.agent.restart_unresponsive)" : "");
	if (restart) {
		struct job *j = job_new(JOB_RESTART, vm);
		j->timeout = 10;
		jobs_submit(c->d, j);
	}
}

/* Reads the reader's lines until it ends or detach asks. */
static void session(struct chan *c)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = c->sp, .events = POLLIN}, {.fd = c->stop_fd, .events = POLLIN}};
		int r = poll(p, 2, 1000);
		if (r < 0 && errno != EINTR)
			return;
		if (p[1].revents)
			return;
		if (p[0].revents) {
			ssize_t n = read(c->sp, c->buf + c->used, CHAN_OUT_MAX - c->used);
			if (n <= 0 && !(n < 0 && errno == EINTR))
				return;
			if (n > 0)
				c->used += (size_t)n;
			char *start = c->buf, *nl;
			while ((nl = memchr(start, '\n', c->used - (size_t)(start - c->buf)))) {
				*nl = 0;
				on_message(c, start);
				start = nl + 1;
			}
			size_t left = c->used - (size_t)(start - c->buf);
			memmove(c->buf, start, left);
			c->used = left;
			if (c->used == CHAN_OUT_MAX) {
				log_error("VM '%s': guest channel: the reader sent a line over its bound",
					  c->vm->name);
				return;
			}
		}
		check_agent(c);
	}
}

static void *chan_main(void *arg)
{
	struct chan *c = arg;
	struct cvmm_vm *vm = c->vm;
	while (!stopping(c)) {
		int fd = connect_socket(c);
		if (fd < 0) {
			if (!c->said_no_socket)
				log_info("VM '%s': guest channel: %s: %s; trying again", vm->name, c->path,
					 strerror(-fd));
			c->said_no_socket = true;
			wait_stop(c, 200);
			continue;
		}
		c->conn = fd;
		int rc = spawn_reader(c);
		if (rc < 0) {
			if (!c->said_no_reader)
				vm_event(vm, "guest", "channel: cannot start its reader: %s",
					 strerror(-rc));
			c->said_no_reader = true;
			int st;
			end_session(c, &st);
			wait_stop(c, 1000);
			continue;
		}
		vm_lock(vm);
		vm->guest.connected = true;
		vm_unlock(vm);
		log_info("VM '%s': guest channel connected (reader pid %d)", vm->name, (int)c->reader);
		session(c);
		if (stopping(c))
			break;
		int st = 0;
		end_session(c, &st);
		if (WIFSIGNALED(st))
			vm_event(vm, "guest", "channel: its reader was killed by signal %d; starting a "
					      "new one",
				 WTERMSIG(st));
		wait_stop(c, 1000);
	}
	int st;
	end_session(c, &st);
	return NULL;
}

int channel_attach(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	if (!d->cfg->chan_enabled)
		return 0;
	vm_lock(vm);
	bool have = vm->chan != NULL;
	vm_unlock(vm);
	if (have)
		return 0;
	struct chan *c = xzalloc(sizeof(*c));
	c->d = d;
	c->vm = vm_ref(vm);
	c->conn = c->sp = -1;
	snprintf(c->path, sizeof(c->path), "%s/channel.sock", vm->run_dir);
	c->buf = malloc(CHAN_OUT_MAX);
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!c->buf || c->stop_fd < 0) {
		int e = c->buf ? -errno : -ENOMEM;
		free(c->buf);
		if (c->stop_fd >= 0)
			close(c->stop_fd);
		vm_unref(c->vm);
		free(c);
		return e;
	}
	vm_lock(vm);
	/* A new boot: what the last one's guest said no longer holds. */
	memset(&vm->guest, 0, sizeof(vm->guest));
	vm->chan = c;
	vm_unlock(vm);
	int e = pthread_create(&c->thread, NULL, chan_main, c);
	if (e) {
		vm_lock(vm);
		vm->chan = NULL;
		vm_unlock(vm);
		close(c->stop_fd);
		free(c->buf);
		vm_unref(c->vm);
		free(c);
		return -e;
	}
	return 0;
}

void channel_detach(struct cvmm_vm *vm)
{
	vm_lock(vm);
	struct chan *c = vm->chan;
	vm->chan = NULL;
	vm_unlock(vm);
	if (!c)
		return;
	uint64_t one = 1;
	if (write(c->stop_fd, &one, sizeof(one)) < 0)
		log_warn("VM '%s': guest channel: cannot signal its thread: %s", vm->name,
			 strerror(errno));
	pthread_join(c->thread, NULL);
	close(c->stop_fd);
	free(c->buf);
	vm_unref(c->vm);
	free(c);
}

void channel_write_api(struct cvmm_vm *vm, struct jw *w)
{
	struct vm_guest *g = &vm->guest;
	jw_key(w, "guest");
	jw_obj(w);
	jw_kbool(w, "channel", g->connected);
	jw_kstr(w, "agent", g->agent[0] ? g->agent : "none");
	jw_kint(w, "heartbeats", (int64_t)g->heartbeats);
	if (g->last_heartbeat > 0)
		jw_kdouble(w, "last_heartbeat", g->last_heartbeat);
	if (g->hello_at > 0)
		jw_kdouble(w, "ready_since", g->hello_at);
	if (g->heartbeat[0]) {
		jw_key(w, "stats");
		jw_raw(w, g->heartbeat, strlen(g->heartbeat));
	}
	if (g->hello[0]) {
		jw_key(w, "hello");
		jw_raw(w, g->hello, strlen(g->hello));
	}
	if (g->boot_progress[0])
		jw_kstr(w, "boot_progress", g->boot_progress);
	if (g->boot_error[0])
		jw_kstr(w, "boot_error", g->boot_error);
	if (g->shutdown_progress[0])
		jw_kstr(w, "shutdown_progress", g->shutdown_progress);
	if (g->instance_info[0]) {
		jw_key(w, "instance_info");
		jw_raw(w, g->instance_info, strlen(g->instance_info));
	}
	jw_kint(w, "dropped", (int64_t)g->dropped);
	jw_kint(w, "refused", (int64_t)g->refused);
	jw_end_obj(w);
}
