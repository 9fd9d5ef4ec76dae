/*
 * test-fail: a hook plugin that fails one lifecycle event on purpose, so the
 * integration tests can check that the undo of a half-done operation leaves
 * nothing behind. Section plugin.test-fail:
 *
 *   event       = "pre_start";  # define, prepare, pre_start or started
 *   message     = "...";        # default "test-fail: failing on purpose at <event>"
 *   name_prefix = "bad";        # only VMs whose name starts with it; default all
 *
 * It runs at priority 100, after the network plugins' hooks, and logs every
 * do and undo event it sees at info level; the undo lines are what a test
 * reads to see that the undo ran. It creates no files.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PRIORITY 100

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static const struct {
	const char *name;
	uint32_t ev, undo;
} stages[] = {
    {"define", CVMM_EV_DEFINE, CVMM_EV_UNDEFINE},
    {"prepare", CVMM_EV_PREPARE, CVMM_EV_CLEANUP},
    {"pre_start", CVMM_EV_PRE_START, CVMM_EV_POST_STOP},
    {"started", CVMM_EV_STARTED, CVMM_EV_STOPPING},
};
#define N_STAGES (sizeof(stages) / sizeof(stages[0]))

static const char *const undo_names[] = {
    [CVMM_EV_UNDEFINE] = "undefine",
    [CVMM_EV_CLEANUP] = "cleanup",
    [CVMM_EV_POST_STOP] = "post_stop",
    [CVMM_EV_STOPPING] = "stopping",
};

static struct {
	uint32_t event; /* the do-event to fail */
	const char *event_name;
	const char *name_prefix; /* NULL: every VM */
	char message[512];
} cfg;

static int matches(cvmm_vm *vm)
{
	const char *name = host->vm_name(vm);
	return !cfg.name_prefix || !strncmp(name, cfg.name_prefix, strlen(cfg.name_prefix));
}

static int on_do(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	const char *stage = data;
	if (event != cfg.event || !matches(vm)) {
		host->log(self, CVMM_LOG_INFO, "VM '%s': %s passes", host->vm_name(vm), stage);
		return 0;
	}
	host->log(self, CVMM_LOG_INFO, "VM '%s': %s fails on purpose", host->vm_name(vm), stage);
	return host->error(self, vm, -EIO, "%s", cfg.message);
}

static int on_undo(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	host->log(self, CVMM_LOG_INFO, "VM '%s': undo %s ran", host->vm_name(vm),
	          (const char *)data);
	return 0;
}

static int read_config(void)
{
	const char *v;
	int r = host->cfg_string(self, "event", &v);
	if (r == -ENOENT)
		v = "pre_start";
	else if (r < 0)
		return r; /* the host reported file, line and key */
	cfg.event_name = NULL;
	for (size_t i = 0; i < N_STAGES; i++)
		if (!strcmp(v, stages[i].name)) {
			cfg.event = stages[i].ev;
			cfg.event_name = stages[i].name;
		}
	if (!cfg.event_name)
		return host->error(self, NULL, -EINVAL,
		                   "plugin.test-fail.event: must be one of define, prepare, "
		                   "pre_start, started; got '%s'",
		                   v);

	r = host->cfg_string(self, "message", &v);
	if (r == -ENOENT)
		snprintf(cfg.message, sizeof(cfg.message), "test-fail: failing on purpose at %s",
		         cfg.event_name);
	else if (r < 0)
		return r;
	else
		snprintf(cfg.message, sizeof(cfg.message), "%s", v);

	cfg.name_prefix = NULL;
	r = host->cfg_string(self, "name_prefix", &cfg.name_prefix);
	if (r == -ENOENT)
		cfg.name_prefix = NULL;
	else if (r < 0)
		return r;
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "test-fail", "0.1.0",
	                     "fails a configured lifecycle event on purpose (undo tests)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r = read_config();
	if (r < 0)
		return r;
	for (size_t i = 0; i < N_STAGES; i++) {
		/* The stage's name travels as the hook data: one handler each. */
		if ((r = host->register_hook(self, stages[i].ev, PRIORITY, on_do,
		                             (void *)stages[i].name)) < 0 ||
		    (r = host->register_hook(self, stages[i].undo, PRIORITY, on_undo,
		                             (void *)undo_names[stages[i].undo])) < 0)
			return r;
	}
	host->log(self, CVMM_LOG_INFO, "will fail '%s'%s%s", cfg.event_name,
	          cfg.name_prefix ? " for VMs whose name starts with " : "",
	          cfg.name_prefix ? cfg.name_prefix : "");
	return 0;
}
