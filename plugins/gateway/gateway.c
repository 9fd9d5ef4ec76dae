/*
 * gateway: a VM's app URL and its registration with the gateway.
 *
 *   - app URL (in every VM's object under "gateway"), as dstack builds it:
 *     https://<instance>-<agent_port>.<base_domain>[:<port> unless 443],
 *     or from the host and port of the VM's first gateway URL; the
 *     instance is the VM's id without dashes;
 *   - at STARTED the VM is registered with each of its gateway URLs (its
 *     own "gateway_urls" when non-empty, else the host's), at STOPPING
 *     removed; a thread of this plugin does both, retrying with doubling
 *     backoff, so a gateway outage never delays a start (the hook only
 *     queues).
 *
 * Wire format (cvmm's: dstack's gateway learns instances from the guest
 * over RA-TLS, which needs the guest channel): POST
 * {gateway_url}/v1/cvmm/instances {"instance_id", "vm_id", "name",
 * "agent_port", "app_url"} and DELETE
 * {gateway_url}/v1/cvmm/instances/<instance_id>; any 2xx (and 404 for a
 * removal) is done.
 *
 * Settings: dstack's top-level gateway section (base_domain, port,
 * agent_port) and/or plugin.gateway (the same keys, plus urls = [...],
 * timeout_ms = 5000, retry_initial_ms = 1000, retry_max_ms = 60000,
 * guest_calls_route = false: GET /v1/vms/{id}/guest-gateway-config answers
 * the guest call GetGatewayConfig, which the guest makes over the guest
 * channel; tests).
 */
#include "guest_call.h"
#include "kms_http.h"
#include "sysconfig.h"

#include <cvmm/plugin.h>
#include <json-c/json.h>

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_URLS 8
#define URL_MAX 256
#define MAX_JOBS 4096

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static const char *base_domain = "localhost";
static int64_t gw_port = 8082, agent_port = 8090;
static const char *urls[MAX_URLS];
static int n_urls;
static long timeout_ms = 5000;
static int64_t retry_initial = 1000, retry_max = 60000;

enum op { REG = 1, DEL = 2 };
struct job {
	char vm_id[40], instance[40], name[72], url[URL_MAX + 1], app_url[URL_MAX + 128];
	enum op op;
	int attempts;
	int64_t next_at, delay;
};
/* Per VM: what the last attempt gave, for the VM's object. */
struct status {
	char vm_id[40];
	char text[300];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct job *jobs;
static int n_jobs;
static struct status *st;
static int n_st;
static pthread_t worker;
static int worker_up, stopping;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int url_ok(const char *u)
{
	size_t l = strlen(u);
	if (l == 0 || l > URL_MAX || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)))
		return 0;
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f || u[i] == '"' || u[i] == '\\')
			return 0;
	return 1;
}

static void set_status(const char *vm_id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_status(const char *vm_id, const char *fmt, ...)
{
	int i;
	for (i = 0; i < n_st && strcmp(st[i].vm_id, vm_id); i++)
		;
	if (i == n_st) {
		if (n_st >= MAX_JOBS)
			return;
		st = realloc(st, sizeof(*st) * (size_t)(n_st + 1));
		snprintf(st[n_st].vm_id, sizeof(st[n_st].vm_id), "%s", vm_id);
		n_st++;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st[i].text, sizeof(st[i].text), fmt, ap);
	va_end(ap);
}

/* ---- the worker ---- */

static void attempt(struct job *j, char *err, size_t errlen, int *done)
{
	char url[URL_MAX + 96], body[1024], *answer = NULL;
	long status = 0;
	size_t ul = strlen(j->url);
	while (ul && j->url[ul - 1] == '/')
		ul--;
	int r;
	if (j->op == REG) {
		snprintf(url, sizeof(url), "%.*s/v1/cvmm/instances", (int)ul, j->url);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "instance_id", json_object_new_string(j->instance));
		json_object_object_add(o, "vm_id", json_object_new_string(j->vm_id));
		json_object_object_add(o, "name", json_object_new_string(j->name));
		json_object_object_add(o, "agent_port", json_object_new_int64(agent_port));
		json_object_object_add(o, "app_url", json_object_new_string(j->app_url));
		snprintf(body, sizeof(body), "%s",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		r = http_call("POST", url, body, timeout_ms, 65536, &answer, &status, err, errlen);
	} else {
		snprintf(url, sizeof(url), "%.*s/v1/cvmm/instances/%s", (int)ul, j->url, j->instance);
		r = http_call("DELETE", url, NULL, timeout_ms, 65536, &answer, &status, err, errlen);
		if (r == -EPROTO && status == 404)
			r = 0; /* already forgotten */
	}
	free(answer);
	*done = r == 0;
}

static void *run(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		int64_t now = now_ms(), next = now + 3600 * 1000;
		int pick = -1;
		for (int i = 0; i < n_jobs; i++) {
			if (jobs[i].next_at <= now) {
				pick = i;
				break;
			}
			if (jobs[i].next_at < next)
				next = jobs[i].next_at;
		}
		if (pick < 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t wait = next - now;
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&cond, &lock, &ts);
			continue;
		}
		struct job j = jobs[pick];
		pthread_mutex_unlock(&lock);
		char err[512] = "";
		int done = 0;
		attempt(&j, err, sizeof(err), &done);
		pthread_mutex_lock(&lock);
		/* The job may have been replaced meanwhile (a stop after a
		 * start): find it again by VM, URL and operation. */
		int at = -1;
		for (int i = 0; i < n_jobs; i++)
			if (!strcmp(jobs[i].vm_id, j.vm_id) && !strcmp(jobs[i].url, j.url) &&
			    jobs[i].op == j.op)
				at = i;
		if (done) {
			set_status(j.vm_id, "%s %s", j.op == REG ? "registered with" : "removed from",
				   j.url);
			host->log(self, CVMM_LOG_INFO, "VM %s: %s %s", j.name,
				  j.op == REG ? "registered with gateway" : "removed from gateway", j.url);
			if (at >= 0)
				jobs[at] = jobs[--n_jobs];
		} else if (at >= 0) {
			struct job *q = &jobs[at];
			q->attempts++;
			q->delay = q->delay ? q->delay * 2 : retry_initial;
			if (q->delay > retry_max)
				q->delay = retry_max;
			q->next_at = now_ms() + q->delay;
			set_status(j.vm_id, "%s failed (attempt %d, next in %lld ms): %s",
				   j.op == REG ? "registration" : "removal", q->attempts,
				   (long long)q->delay, err);
			if (q->attempts == 1)
				host->log(self, CVMM_LOG_WARN, "VM %s: gateway %s: %s (retrying)", j.name,
					  j.op == REG ? "registration" : "removal", err);
		}
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* ---- per VM ---- */

static json_object *vm_gateway_urls(cvmm_vm *vm, const char **out, int *n)
{
	const char *t = host->vm_request_field(vm, "gateway_urls");
	json_object *o = t ? json_tokener_parse(t) : NULL;
	*n = 0;
	if (json_object_is_type(o, json_type_array) && json_object_array_length(o) > 0) {
		for (size_t i = 0; i < json_object_array_length(o) && *n < MAX_URLS; i++)
			out[(*n)++] = json_object_get_string(json_object_array_get_idx(o, i));
		return o;
	}
	json_object_put(o);
	for (; *n < n_urls; (*n)++)
		out[*n] = urls[*n];
	return NULL;
}

static void instance_of(cvmm_vm *vm, char out[40])
{
	const char *id = host->vm_id(vm);
	size_t k = 0;
	for (; *id && k < 39; id++)
		if (*id != '-')
			out[k++] = *id;
	out[k] = 0;
}

/* dstack's app_url (vm_info.rs). */
static void app_url(cvmm_vm *vm, char *buf, size_t len)
{
	const char *u[MAX_URLS];
	int n;
	char inst[40], hostpart[URL_MAX + 1] = "";
	long port = (long)gw_port;
	instance_of(vm, inst);
	json_object *own = vm_gateway_urls(vm, u, &n);
	if (own && n > 0) {
		const char *h = strstr(u[0], "://") + 3;
		size_t hl = strcspn(h, ":/?#");
		snprintf(hostpart, sizeof(hostpart), "%.*s", (int)hl, h);
		port = h[hl] == ':' ? strtol(h + hl + 1, NULL, 10) : 443;
	} else {
		snprintf(hostpart, sizeof(hostpart), "%s", base_domain);
	}
	json_object_put(own);
	if (port == 443)
		snprintf(buf, len, "https://%s-%lld.%s", inst, (long long)agent_port, hostpart);
	else
		snprintf(buf, len, "https://%s-%lld.%s:%ld", inst, (long long)agent_port, hostpart,
			 port);
}

static int v_gateway_urls(void *data, const char *json, char *err, size_t errlen)
{
	(void)data;
	json_object *o = json_tokener_parse(json);
	int r = 0;
	if (!json_object_is_type(o, json_type_array) || json_object_array_length(o) > MAX_URLS) {
		snprintf(err, errlen, "gateway_urls: must be a list of at most %d URLs", MAX_URLS);
		r = -EINVAL;
	}
	for (size_t i = 0; !r && i < json_object_array_length(o); i++) {
		json_object *v = json_object_array_get_idx(o, i);
		if (!json_object_is_type(v, json_type_string) || !url_ok(json_object_get_string(v))) {
			snprintf(err, errlen, "gateway_urls[%zu]: must be an http:// or https:// URL", i);
			r = -EINVAL;
		}
	}
	json_object_put(o);
	return r;
}

/* STARTED / STOPPING: queue, never wait. */
static int on_event(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	(void)spec;
	const char *u[MAX_URLS];
	int n;
	enum op op = event == CVMM_EV_STARTED ? REG : DEL;
	json_object *own = vm_gateway_urls(vm, u, &n);
	pthread_mutex_lock(&lock);
	if (!worker_up && !stopping && n > 0)
		worker_up = pthread_create(&worker, NULL, run, NULL) == 0;
	for (int k = 0; k < n; k++) {
		/* A queued job of the other kind for the same VM and URL is
		 * void: the newest wish wins. */
		int i;
		for (i = 0; i < n_jobs; i++)
			if (!strcmp(jobs[i].vm_id, host->vm_id(vm)) && !strcmp(jobs[i].url, u[k]))
				break;
		if (i == n_jobs) {
			if (n_jobs >= MAX_JOBS)
				break;
			jobs = realloc(jobs, sizeof(*jobs) * (size_t)(n_jobs + 1));
			n_jobs++;
		}
		struct job *j = &jobs[i];
		memset(j, 0, sizeof(*j));
		snprintf(j->vm_id, sizeof(j->vm_id), "%s", host->vm_id(vm));
		snprintf(j->name, sizeof(j->name), "%s", host->vm_name(vm));
		snprintf(j->url, sizeof(j->url), "%s", u[k]);
		instance_of(vm, j->instance);
		app_url(vm, j->app_url, sizeof(j->app_url));
		j->op = op;
		j->next_at = now_ms();
		set_status(j->vm_id, "%s queued", op == REG ? "registration" : "removal");
	}
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	json_object_put(own);
	return 0;
}

static int on_daemon_stop(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	(void)vm;
	(void)event;
	(void)spec;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&cond);
	int up = worker_up;
	pthread_mutex_unlock(&lock);
	if (up)
		pthread_join(worker, NULL); /* at most one attempt's timeout */
	return 0;
}

static int vm_info(void *data, cvmm_vm *vm, char *buf, size_t len)
{
	(void)data;
	char url[URL_MAX + 128], text[300] = "";
	app_url(vm, url, sizeof(url));
	pthread_mutex_lock(&lock);
	for (int i = 0; i < n_st; i++)
		if (!strcmp(st[i].vm_id, host->vm_id(vm)))
			snprintf(text, sizeof(text), "%s", st[i].text);
	pthread_mutex_unlock(&lock);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "app_url", json_object_new_string(url));
	json_object_object_add(o, "registration", json_object_new_string(text));
	int w = snprintf(buf, len, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return w < 0 || (size_t)w >= len ? -ENOSPC : w;
}

static int host_info(void *data, char *buf, size_t len)
{
	(void)data;
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	for (int i = 0; i < n_urls; i++)
		json_object_array_add(a, json_object_new_string(urls[i]));
	json_object_object_add(o, "base_domain", json_object_new_string(base_domain));
	json_object_object_add(o, "port", json_object_new_int64(gw_port));
	json_object_object_add(o, "agent_port", json_object_new_int64(agent_port));
	json_object_object_add(o, "gateway_urls", a);
	pthread_mutex_lock(&lock);
	json_object_object_add(o, "pending", json_object_new_int(n_jobs));
	pthread_mutex_unlock(&lock);
	int w = snprintf(buf, len, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return w < 0 || (size_t)w >= len ? -ENOSPC : w;
}

/* ---- what the guest is told ---- */

/* {"gateway_urls": [...], "app_url", "base_domain", "port",
 * "agent_port"} of a VM (names of dstack's gateway section). */
static json_object *gateway_config(cvmm_vm *vm)
{
	const char *u[MAX_URLS];
	int n;
	char url[URL_MAX + 128];
	json_object *own = vm_gateway_urls(vm, u, &n), *o = json_object_new_object(),
		    *a = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(u[i]));
	app_url(vm, url, sizeof(url));
	json_object_object_add(o, "gateway_urls", a);
	json_object_object_add(o, "app_url", json_object_new_string(url));
	json_object_object_add(o, "base_domain", json_object_new_string(base_domain));
	json_object_object_add(o, "port", json_object_new_int64(gw_port));
	json_object_object_add(o, "agent_port", json_object_new_int64(agent_port));
	json_object_put(own);
	return o;
}

/* Guest call GetGatewayConfig: gateway_config() of the channel's VM. */
static int guest_gateway_config(cvmm_vm *vm, const char *req, char *buf, size_t len, char *err,
				size_t errlen)
{
	(void)req;
	json_object *o = gateway_config(vm);
	int w = snprintf(buf, len, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	if (w < 0 || (size_t)w >= len) {
		snprintf(err, errlen, "answer too large");
		return -ENOSPC;
	}
	return w;
}

static const struct guest_call calls[] = {{"GetGatewayConfig", guest_gateway_config}};

/* The guest's sys-config document: gateway_urls, app_url, base_domain
 * (the document's "port" would be ambiguous: gateway_port). */
static int sys_config_owner;
static int on_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	json_object *part = gateway_config(vm), *v;
	if (json_object_object_get_ex(part, "port", &v)) {
		json_object_object_add(part, "gateway_port", json_object_get(v));
		json_object_object_del(part, "port");
	}
	int r = sysconfig_put(host, self, vm, spec, event, sys_config_owner, part);
	json_object_put(part);
	return r;
}

static int route_guest(void *data, cvmm_vm *vm, const char *body, char *buf, size_t len)
{
	(void)data;
	char err[256] = "";
	int r = calls[0].fn(vm, body, buf, len, err, sizeof(err));
	return r < 0 ? host->error(self, NULL, r, "%s", err) : r;
}

/* ---- configuration: plugin.gateway, else dstack's gateway section ---- */

static int cfg_str(const char *k, const char **v)
{
	char abs[64];
	int r = host->cfg_string(self, k, v);
	if (r != -ENOENT)
		return r;
	snprintf(abs, sizeof(abs), ".gateway.%s", k);
	return host->cfg_string(self, abs, v);
}

static int cfg_num(const char *k, int64_t lo, int64_t hi, int64_t *v)
{
	char abs[64];
	int r = host->cfg_int(self, k, v);
	if (r == -ENOENT) {
		snprintf(abs, sizeof(abs), ".gateway.%s", k);
		r = host->cfg_int(self, abs, v);
	}
	if (r == 0 && (*v < lo || *v > hi))
		return host->error(self, NULL, -EINVAL, "gateway.%s: must be %lld..%lld", k,
				   (long long)lo, (long long)hi);
	return r == -ENOENT ? 0 : r;
}

static int read_urls(const char *key)
{
	int c = host->cfg_count(self, key);
	if (c == -ENOENT)
		return 0;
	if (c < 0)
		return c;
	if (c > MAX_URLS)
		return host->error(self, NULL, -EINVAL, "%s: at most %d URLs", key, MAX_URLS);
	for (int i = 0; i < c; i++) {
		const char *s;
		int r = host->cfg_string_at(self, key, (uint32_t)i, &s);
		if (r < 0)
			return r;
		if (!url_ok(s))
			return host->error(self, NULL, -EINVAL, "%s: \"%s\" is not an http(s) URL", key, s);
		urls[n_urls++] = s;
	}
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t major, uint32_t minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "gateway", "1.0",
			     "app URLs and gateway registration, retried off the start path");
	(void)minor;
	if (major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if (!CVMM_HOST_HAS(h, register_info))
		return -EPROTO;
	int64_t v;
	int r;
	if ((r = cfg_str("base_domain", &base_domain)) < 0 && r != -ENOENT)
		return r;
	if ((r = cfg_num("port", 1, 65535, &gw_port)) || (r = cfg_num("agent_port", 1, 65535, &agent_port)))
		return r;
	v = timeout_ms;
	if ((r = cfg_num("timeout_ms", 100, 120000, &v)))
		return r;
	timeout_ms = (long)v;
	if ((r = cfg_num("retry_initial_ms", 10, 600000, &retry_initial)) ||
	    (r = cfg_num("retry_max_ms", 10, 3600000, &retry_max)))
		return r;
	if ((r = read_urls("urls")))
		return r;
	if (n_urls == 0 && (r = read_urls(".gateway.gateway_urls")))
		return r;
	int32_t b = 0;
	if ((r = host->cfg_bool(self, "guest_calls_route", &b)) < 0 && r != -ENOENT)
		return r;
	if (b == 1 && (!CVMM_HOST_HAS(h, register_vm_route) ||
		       (r = host->register_vm_route(self, "GET", "guest-gateway-config", route_guest,
						    NULL))))
		return r ? r : -EPROTO;
	static const char *const members[] = {"kms", "gateway", NULL};
	sys_config_owner = sysconfig_is_owner(host, self, "gateway", members);
	int prio = sys_config_owner ? SYSCONFIG_PRIO_OWNER : SYSCONFIG_PRIO_MERGE;
	if ((r = host->register_hook(self, CVMM_EV_PRE_START, prio, on_start, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_PLAN, prio, on_start, NULL)))
		return r;
	/* The guest's own way in: GetGatewayConfig over the guest channel. */
	if (CVMM_HOST_HAS(h, register_channel_handler) &&
	    (r = host->register_channel_handler(self, calls[0].name, route_guest, NULL)))
		return r;
	if ((r = host->register_request_field(self, "gateway_urls", v_gateway_urls, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_STARTED, 90, on_event, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_STOPPING, 10, on_event, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_DAEMON_STOP, 50, on_daemon_stop, NULL)) ||
	    (r = host->register_info(self, "gateway", host_info, vm_info, NULL)))
		return r;
	return 0;
}
