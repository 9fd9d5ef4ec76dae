/*
 * test-abi10: a plugin compiled only against the frozen 1.0 header
 * (tests/plugins/abi-1.0), standing for every plugin shipped for the first
 * release. Later cores must keep loading it. It registers one notification
 * hook whose data is a probe: the layout of 1.0 as this plugin sees it and
 * what the host passed at init, so tests/unit/test_abi.c can compare both
 * headers without this plugin exporting anything but its entry point.
 */
#include <cvmm/plugin.h>

#include "abi10_probe.h"

#include <errno.h>

static const struct abi10_fact facts[] = {ABI10_FACTS};

static struct abi10_probe probe = {
    .struct_size = sizeof(struct abi10_probe),
    .n_facts = sizeof(facts) / sizeof(facts[0]),
    .facts = facts,
};

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static int on_daemon_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	struct abi10_probe *pr = data;
	pr->calls++;
	host->log(self, CVMM_LOG_DEBUG, "test-abi10: hook ran for event %u", event);
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "test-abi10", "1.0.0",
	                     "built against the frozen ABI 1.0 header (compatibility test)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	probe.host_abi_major = abi_major;
	probe.host_abi_minor = abi_minor;
	probe.host_struct_size = h->struct_size;
	/* A same-major host must offer at least every 1.0 slot: the table only
	 * grows. Checked before calling through it. */
	if (h->struct_size < sizeof(struct cvmm_host_api))
		return -EPROTO;
	host = h;
	self = p;
	return host->register_hook(self, CVMM_EV_DAEMON_START, 0, on_daemon_start, &probe);
}
