/*
 * test-abi-major2: a plugin for a cvmm plugin ABI 2.x that does not exist
 * yet; every 1.x daemon must refuse it with one line naming the file and
 * both ABI versions. It behaves as the header asks, registering only when
 * the host's major is 2 (never, here).
 *
 * Built a second time with TEST_ABI_EAGER as test-abi-major2-eager, a plugin
 * that ignores that rule: it registers a backend, a network mode and a hook
 * before looking at the host's major and returns success, so the test can
 * check that the daemon drops what a refused plugin registered.
 */
#include <cvmm/plugin.h>

#include <errno.h>

#define TEST_ABI_MAJOR 2
#define TEST_ABI_MINOR 0
#ifdef TEST_ABI_EAGER
#define TEST_NAME "test-abi-major2-eager"
#else
#define TEST_NAME "test-abi-major2"
#endif

static int on_define(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	return 0;
}

static const struct cvmm_backend_ops backend_ops = {
    .struct_size = sizeof(struct cvmm_backend_ops),
};

static const struct cvmm_netmode_ops netmode_ops = {
    .struct_size = sizeof(struct cvmm_netmode_ops),
};

static int register_all(const struct cvmm_host_api *host, cvmm_plugin *self)
{
	int r;
	if ((r = host->register_backend(self, "major2", &backend_ops, NULL)) < 0 ||
	    (r = host->register_netmode(self, "major2", &netmode_ops, NULL)) < 0)
		return r;
	return host->register_hook(self, CVMM_EV_DEFINE, 0, on_define, NULL);
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *host, cvmm_plugin *self,
                                        struct cvmm_plugin_desc *desc)
{
	/* CVMM_PLUGIN_DESCRIBE would claim this header's major; this plugin
	 * stands for one built against a 2.x header. */
	desc->struct_size = sizeof(struct cvmm_plugin_desc);
	desc->abi_major = TEST_ABI_MAJOR;
	desc->abi_minor = TEST_ABI_MINOR;
	desc->name = TEST_NAME;
	desc->version = "2.0.0";
	desc->description = "declares plugin ABI 2.0 (refusal test)";
#ifdef TEST_ABI_EAGER
	return register_all(host, self);
#else
	if (abi_major != TEST_ABI_MAJOR)
		return -EPROTO;
	return register_all(host, self);
#endif
}
