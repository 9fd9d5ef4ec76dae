/*
 * test-sealing: a stand-in key provider for the guest channel's
 * GetSealingKey (ABI 1.2 register_channel_handler). It answers a VM named
 * "victim" with a made-up key derived from the quote and refuses every other
 * VM with an error naming the VM it was called for: the test reads both
 * answers back from the guest, which shows that the handler ran for the VM
 * whose channel the request came on, and that its error reached the guest.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static int sealing_key(void *data, cvmm_vm *vm, const char *params, char *buf, size_t len)
{
	(void)data;
	const char *name = host->vm_name(vm);
	if (strcmp(name, "victim"))
		return host->error(self, vm, -EACCES, "quote refused for VM %s", name);
	int n = snprintf(buf, len, "{\"encrypted_key\":\"k-%zu\",\"params\":%s}", strlen(params),
			 params);
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t major, uint32_t minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	(void)minor;
	CVMM_PLUGIN_DESCRIBE(desc, "test-sealing", "1.0", "answers GetSealingKey for tests");
	if (major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if (!CVMM_HOST_HAS(h, register_channel_handler))
		return -ENOTSUP;
	return host->register_channel_handler(p, "GetSealingKey", sealing_key, NULL);
}
