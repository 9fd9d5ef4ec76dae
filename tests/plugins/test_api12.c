/*
 * test-api12: the plugin-owned parts of the API (ABI 1.2), exercised from
 * outside by tests/integration/test_plugin_api.py. It owns the create-body
 * field "widget" ({"size": 1..10}), adds "widget" to GET /v1/host and to
 * each VM's object, serves GET /v1/widgets (the VMs that asked for one) and
 * POST /v1/widgets/fail (always refused with a message), and logs
 * DAEMON_START and DAEMON_STOP.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int defined;

static int validate(void *data, const char *json, char *err, size_t errlen)
{
	/* A plugin may use any JSON library inside; this one needs none. */
	int size = 0;
	char tail[8] = "";
	if (sscanf(json, "{\"size\":%d}%7s", &size, tail) != 1) {
		snprintf(err, errlen, "widget: must be {\"size\": N}, got %.60s", json);
		return -EINVAL;
	}
	if (size < 1 || size > 10) {
		snprintf(err, errlen, "widget.size: must be between 1 and 10, got %d", size);
		return -EINVAL;
	}
	return 0;
}

static int host_info(void *data, char *buf, size_t len)
{
	pthread_mutex_lock(&mu);
	int n = snprintf(buf, len, "{\"defined\": %d}", defined);
	pthread_mutex_unlock(&mu);
	return n;
}

static int vm_info(void *data, cvmm_vm *vm, char *buf, size_t len)
{
	const char *w = host->vm_request_field(vm, "widget");
	return snprintf(buf, len, "{\"asked\": %s}", w ? w : "null");
}

static int route_list(void *data, const char *body, char *buf, size_t len)
{
	pthread_mutex_lock(&mu);
	int n = snprintf(buf, len, "{\"widgets\": %d}", defined);
	pthread_mutex_unlock(&mu);
	return n;
}

static int route_fail(void *data, const char *body, char *buf, size_t len)
{
	return host->error(self, NULL, -EBUSY, "widgets: all widgets are busy");
}

static int on_event(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	if (event == CVMM_EV_DEFINE || event == CVMM_EV_UNDEFINE) {
		if (!host->vm_request_field(vm, "widget"))
			return 0;
		pthread_mutex_lock(&mu);
		defined += event == CVMM_EV_DEFINE ? 1 : -1;
		pthread_mutex_unlock(&mu);
		return 0;
	}
	host->log(self, CVMM_LOG_INFO, "test-api12: %s",
		  event == CVMM_EV_DAEMON_START ? "daemon start" : "daemon stop");
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "test-api12", "1.2.0", "plugin-owned API parts (test)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if (!CVMM_HOST_HAS(h, register_route) || !CVMM_HOST_HAS(h, register_info) ||
	    !CVMM_HOST_HAS(h, register_request_field))
		return h->error(p, NULL, -ENOTSUP, "the host lacks the 1.2 API slots");
	int r;
	if ((r = h->register_request_field(p, "widget", validate, NULL)) < 0 ||
	    (r = h->register_info(p, "widget", host_info, vm_info, NULL)) < 0 ||
	    (r = h->register_route(p, "GET", "widgets", route_list, NULL)) < 0 ||
	    (r = h->register_route(p, "POST", "widgets/fail", route_fail, NULL)) < 0)
		return r;
	if (h->register_request_field(p, "name", validate, NULL) != -EEXIST ||
	    h->register_route(p, "GET", "vms", route_list, NULL) != -EEXIST)
		return h->error(p, NULL, -EINVAL, "the host let a plugin take a core field or route");
	static const uint32_t evs[] = {CVMM_EV_DEFINE, CVMM_EV_UNDEFINE, CVMM_EV_DAEMON_START,
				       CVMM_EV_DAEMON_STOP};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if ((r = h->register_hook(p, evs[i], 50, on_event, NULL)) < 0)
			return r;
	return 0;
}
