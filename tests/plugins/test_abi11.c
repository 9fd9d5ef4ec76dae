/*
 * test-abi11: a plugin compiled only against the frozen 1.1 header
 * (tests/plugins/abi-1.1), standing for the plugins shipped for 1.1. Later
 * cores must keep loading it. Its one hook's data tells the host where the
 * 1.1 additions sit in its header (spec_nic.mtu), which tests/unit/test_abi.c
 * compares with the current header: a member of 1.1 must never move.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <stddef.h>

struct abi11_probe {
	uint32_t struct_size;
	uint32_t minor;      /* CVMM_ABI_MINOR of the header it was built with */
	uint32_t mtu_offset; /* offsetof(struct cvmm_spec_nic, mtu) */
	uint32_t nic_size;   /* sizeof(struct cvmm_spec_nic) */
	uint32_t host_size;  /* sizeof(struct cvmm_host_api) */
	uint32_t calls;
};

static struct abi11_probe probe = {
    .struct_size = sizeof(struct abi11_probe),
    .minor = CVMM_ABI_MINOR,
    .mtu_offset = offsetof(struct cvmm_spec_nic, mtu),
    .nic_size = sizeof(struct cvmm_spec_nic),
    .host_size = sizeof(struct cvmm_host_api),
};

static int on_daemon_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	((struct abi11_probe *)data)->calls++;
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "test-abi11", "1.1.0",
	                     "built against the frozen ABI 1.1 header (compatibility test)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	return h->register_hook(p, CVMM_EV_DAEMON_START, 0, on_daemon_start, &probe);
}
