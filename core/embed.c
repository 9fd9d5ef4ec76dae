/*
 * embed: the public C API of libcvmm-core (include/cvmm/cvmm.h). A thin
 * layer: the context is a struct cvmm_daemon run as cvmmd runs it
 * (daemon.c), and each VM call is the REST handler's own operation
 * (api.c: api_vm_define, api_vm_action, api_vm_remove, ...) with the HTTP
 * left out, so both doors apply the same rules and run the same jobs.
 */
#include <cvmm/cvmm.h>

#include "api.h"
#include "config.h"
#include "daemon.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

struct cvmm_ctx {
	struct cvmm_config cfg;
	struct cvmm_daemon *d;
	uint32_t flags;
	bool started;
	pthread_t loop_thread;
	bool loop_thread_running;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

EXPORT const char *cvmm_version(void)
{
	return CVMM_VERSION;
}

static int open_common(cvmm_ctx **out, const char *path, const char *text, uint32_t flags,
                       char *err, size_t errlen)
{
	char msg[1024] = "";
	*out = NULL;
	cvmm_ctx *c = xzalloc(sizeof(*c));
	int rc = path ? config_load(&c->cfg, path, msg, sizeof(msg))
	              : config_load_string(&c->cfg, text, msg, sizeof(msg));
	if (rc < 0) {
		free(c);
		return fail(err, errlen, rc, "%s", msg);
	}
	c->flags = flags;
	int level = log_level_from_name(c->cfg.log_level);
	log_set_level(level < 0 ? 2 : level);
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	c->d = daemon_new(&c->cfg, msg, sizeof(msg));
	if (!c->d) {
		config_free(&c->cfg);
		free(c);
		return fail(err, errlen, -ENOMEM, "%s", msg);
	}
	c->d->no_api = flags & CVMM_OPEN_NO_API;
	c->d->no_signals = !(flags & CVMM_OPEN_SIGNALS);
	*out = c;
	return 0;
}

EXPORT int cvmm_open(cvmm_ctx **out, const char *config_path, uint32_t flags, char *err,
                     size_t errlen)
{
	if (!out || !config_path)
		return fail(err, errlen, -EINVAL, "cvmm_open: no config path");
	return open_common(out, config_path, NULL, flags, err, errlen);
}

EXPORT int cvmm_open_string(cvmm_ctx **out, const char *config_text, uint32_t flags, char *err,
                            size_t errlen)
{
	if (!out || !config_text)
		return fail(err, errlen, -EINVAL, "cvmm_open_string: no config text");
	return open_common(out, NULL, config_text, flags, err, errlen);
}

EXPORT int cvmm_start(cvmm_ctx *c, char *err, size_t errlen)
{
	char msg[1024] = "";
	if (c->started)
		return fail(err, errlen, -EALREADY, "cvmm_start: started already");
	c->started = true;
	int rc = daemon_start(c->d, msg, sizeof(msg));
	return rc < 0 ? fail(err, errlen, rc, "%s", msg) : 0;
}

EXPORT void cvmm_wait_adopted(cvmm_ctx *c)
{
	daemon_wait_adopted(c->d);
}

EXPORT int cvmm_run(cvmm_ctx *c)
{
	daemon_run(c->d);
	return 0;
}

static void *loop_main(void *arg)
{
	daemon_run(arg);
	return NULL;
}

EXPORT int cvmm_run_thread(cvmm_ctx *c, char *err, size_t errlen)
{
	if (c->loop_thread_running)
		return fail(err, errlen, -EALREADY, "the loop runs on its thread already");
	int rc = pthread_create(&c->loop_thread, NULL, loop_main, c->d);
	if (rc)
		return fail(err, errlen, -rc, "cannot start the loop thread: %s", strerror(rc));
	c->loop_thread_running = true;
	return 0;
}

/* ev_break is the loop thread's to call: the request travels there. */
static void stop_on_loop(struct cvmm_daemon *d, void *arg)
{
	daemon_request_stop(d);
}

EXPORT void cvmm_stop(cvmm_ctx *c)
{
	daemon_call_on_loop(c->d, stop_on_loop, NULL);
}

EXPORT void cvmm_close(cvmm_ctx *c)
{
	if (!c)
		return;
	if (c->loop_thread_running) {
		cvmm_stop(c);
		pthread_join(c->loop_thread, NULL);
	}
	daemon_free(c->d);
	config_free(&c->cfg);
	free(c);
}

EXPORT void cvmm_free(void *p)
{
	free(p);
}

/* JSON text of o (taken) for *out, when the caller wants it. */
static void hand_out(json_object *o, char **out)
{
	if (out)
		*out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* A reference to the VM, or -ENOENT as the API's 404 says it. */
static int get_vm(cvmm_ctx *c, const char *key, struct cvmm_vm **vm, char *err, size_t errlen)
{
	*vm = key ? daemon_get_vm(c->d, key) : NULL;
	if (!*vm)
		return fail(err, errlen, -ENOENT, "no VM with id or name '%s'", key ? key : "");
	return 0;
}

static int not_started(cvmm_ctx *c, char *err, size_t errlen)
{
	return c->d->jobs ? 0 : fail(err, errlen, -ESHUTDOWN, "cvmm_start was not called");
}

EXPORT int cvmm_vm_create(cvmm_ctx *c, const char *request, char **out, char *err, size_t errlen)
{
	char msg[1024] = "";
	int rc = not_started(c, err, errlen);
	if (rc < 0)
		return rc;
	json_object *body =
	    api_parse_body(request ? request : "", request ? strlen(request) : 0, msg, sizeof(msg));
	if (!body)
		return fail(err, errlen, -EINVAL, "%s", msg);
	struct cvmm_vm *vm = NULL;
	bool start = true;
	rc = vm_from_request(c->d, body, &vm, &start, msg, sizeof(msg));
	json_object_put(body);
	if (rc < 0) /* as the API: a plugin's field may be busy, else the request is wrong */
		return fail(err, errlen, rc == -EBUSY ? -EBUSY : -EINVAL, "%s", msg);
	json_object *o = NULL;
	rc = api_vm_define(c->d, vm, start, &o, msg, sizeof(msg));
	if (rc < 0)
		return fail(err, errlen, rc, "%s", msg);
	hand_out(o, out);
	return 0;
}

static int action(cvmm_ctx *c, const char *key, const char *what, uint32_t timeout, bool force,
                  char *err, size_t errlen)
{
	char msg[1024] = "";
	struct cvmm_vm *vm;
	int rc = not_started(c, err, errlen);
	if (rc < 0 || (rc = get_vm(c, key, &vm, err, errlen)) < 0)
		return rc;
	json_object *o = NULL;
	rc = api_vm_action(c->d, vm, what, timeout, force, &o, msg, sizeof(msg));
	vm_unref(vm);
	json_object_put(o);
	return rc < 0 ? fail(err, errlen, rc, "%s", msg) : 0;
}

EXPORT int cvmm_vm_start(cvmm_ctx *c, const char *vm, char *err, size_t errlen)
{
	return action(c, vm, "start", 30, false, err, errlen);
}

EXPORT int cvmm_vm_restart(cvmm_ctx *c, const char *vm, char *err, size_t errlen)
{
	return action(c, vm, "restart", 30, false, err, errlen);
}

EXPORT int cvmm_vm_kill(cvmm_ctx *c, const char *vm, char *err, size_t errlen)
{
	return action(c, vm, "kill", 30, true, err, errlen);
}

EXPORT int cvmm_vm_stop(cvmm_ctx *c, const char *vm, uint32_t timeout_s, int force, char *err,
                        size_t errlen)
{
	if (timeout_s > 3600)
		return fail(err, errlen, -EINVAL,
		            "timeout: must be an integer between 0 and 3600 (seconds)");
	return action(c, vm, "stop", timeout_s, force != 0, err, errlen);
}

EXPORT int cvmm_vm_remove(cvmm_ctx *c, const char *key, char *err, size_t errlen)
{
	char msg[1200] = "";
	struct cvmm_vm *vm;
	int rc = not_started(c, err, errlen);
	if (rc < 0 || (rc = get_vm(c, key, &vm, err, errlen)) < 0)
		return rc;
	rc = api_vm_remove(c->d, vm, NULL, msg, sizeof(msg));
	vm_unref(vm);
	return rc < 0 ? fail(err, errlen, rc, "%s", msg) : 0;
}

EXPORT int cvmm_vm_get(cvmm_ctx *c, const char *key, char **out, char *err, size_t errlen)
{
	struct cvmm_vm *vm;
	int rc = get_vm(c, key, &vm, err, errlen);
	if (rc < 0)
		return rc;
	hand_out(api_vm_json(vm), out);
	vm_unref(vm);
	return 0;
}

EXPORT int cvmm_vm_list(cvmm_ctx *c, const char *fields, char **out, char *err, size_t errlen)
{
	char msg[256] = "";
	size_t len;
	char *text = api_vm_list_text(c->d, fields, &len, msg, sizeof(msg));
	if (!text)
		return fail(err, errlen, -EINVAL, "%s", msg);
	if (out)
		*out = text;
	else
		free(text);
	return 0;
}

/* Polls: a state change has no waiters' hook in the core, and a VM's
 * transitions take tens of milliseconds at least. */
EXPORT int cvmm_vm_wait_state(cvmm_ctx *c, const char *key, const char *state, int timeout_ms,
                              char *err, size_t errlen)
{
	bool want_gone = state && !strcmp(state, "removed");
	int want = state && !want_gone ? vm_state_from_name(state) : -1;
	if (!want_gone && want < 0)
		return fail(err, errlen, -EINVAL, "state: '%s' is not a VM state",
		            state ? state : "");
	struct cvmm_vm *vm;
	int rc = get_vm(c, key, &vm, err, errlen);
	if (rc < 0)
		return want_gone ? 0 : rc;
	double deadline = now_mono() + timeout_ms / 1000.0;
	for (;;) {
		vm_lock(vm);
		enum vm_state st = vm->state;
		bool gone = vm->gone;
		char reason[512];
		str_copy(reason, sizeof(reason), vm->reason);
		vm_unlock(vm);
		if (gone || (!want_gone && (int)st == want)) {
			rc = gone && !want_gone
			         ? fail(err, errlen, -ENOENT, "VM '%s' was removed", vm->name)
			         : 0;
			break;
		}
		if (st == VM_FAILED && want != VM_FAILED) {
			rc = fail(err, errlen, -EIO, "VM '%s' failed: %s", vm->name, reason);
			break;
		}
		if (timeout_ms >= 0 && now_mono() >= deadline) {
			rc = fail(err, errlen, -ETIMEDOUT, "VM '%s' is %s, not %s, after %d ms",
			          vm->name, vm_state_name(st), state, timeout_ms);
			break;
		}
		nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	}
	vm_unref(vm);
	return rc;
}
