/*
 * test-fail: a hook plugin that fails one lifecycle event on purpose, so the
 * integration tests can check that the undo of a half-done operation leaves
 * nothing behind. Section plugin.test-fail:
 *
 *   event       = "pre_start";  # define, prepare, pre_start or started
 *   message     = "...";        # default "test-fail: failing on purpose at <event>"
 *   name_prefix = "bad";        # only VMs whose name starts with it; default all
 *   hang = true;                # instead of failing, sleep hang_seconds, then
 *   hang_seconds = 3;           # succeed: a hook that overruns cvm.hook_timeout
 *   from_name = true;           # the VM's name says what to do, overriding the
 *                               # above: "fail-<ev>-..." or "hang-<ev>-...",
 *                               # <ev> one of define, prepare, prestart, started;
 *                               # any other name passes every event
 *
 * from_name lets one daemon run a whole matrix of faults (tests/integration/
 * test_faults.py). It runs at priority 100, after the network plugins'
 * hooks, and logs every do and undo event it sees at info level; the undo
 * lines are what a test reads to see that the undo ran. It creates no files.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PRIORITY 100

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static const struct {
	const char *name;
	const char *tag; /* in a VM's name under from_name: no '_' in names */
	uint32_t ev, undo;
} stages[] = {
    {"define", "define", CVMM_EV_DEFINE, CVMM_EV_UNDEFINE},
    {"prepare", "prepare", CVMM_EV_PREPARE, CVMM_EV_CLEANUP},
    {"pre_start", "prestart", CVMM_EV_PRE_START, CVMM_EV_POST_STOP},
    {"started", "started", CVMM_EV_STARTED, CVMM_EV_STOPPING},
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
	char message[512];       /* empty: the default, which names the event */
	int32_t hang;
	int64_t hang_seconds;
	int32_t from_name;
} cfg;

/* What to do for this VM at this event: 0 pass, 'f' fail, 'h' hang. */
static int action_for(cvmm_vm *vm, uint32_t event)
{
	const char *name = host->vm_name(vm);
	if (cfg.from_name) {
		int kind = !strncmp(name, "fail-", 5) ? 'f' : !strncmp(name, "hang-", 5) ? 'h' : 0;
		if (!kind)
			return 0;
		for (size_t i = 0; i < N_STAGES; i++) {
			size_t n = strlen(stages[i].tag);
			if (stages[i].ev == event && !strncmp(name + 5, stages[i].tag, n) &&
			    (name[5 + n] == '-' || name[5 + n] == '\0'))
				return kind;
		}
		return 0;
	}
	if (event != cfg.event ||
	    (cfg.name_prefix && strncmp(name, cfg.name_prefix, strlen(cfg.name_prefix))))
		return 0;
	return cfg.hang ? 'h' : 'f';
}

static int on_do(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	const char *stage = data;
	switch (action_for(vm, event)) {
	case 'f':
		host->log(self, CVMM_LOG_INFO, "VM '%s': %s fails on purpose", host->vm_name(vm),
		          stage);
		if (cfg.message[0])
			return host->error(self, vm, -EIO, "%s", cfg.message);
		return host->error(self, vm, -EIO, "test-fail: failing on purpose at %s", stage);
	case 'h': {
		/* A hook that overruns its time, then returns as if all went well:
		 * only the host's timeout can make this step fail. */
		host->log(self, CVMM_LOG_INFO, "VM '%s': %s hangs for %lld s on purpose",
		          host->vm_name(vm), stage, (long long)cfg.hang_seconds);
		struct timespec left = {.tv_sec = (time_t)cfg.hang_seconds};
		while (nanosleep(&left, &left) < 0 && errno == EINTR)
			;
		host->log(self, CVMM_LOG_INFO, "VM '%s': %s woke up after hanging",
		          host->vm_name(vm), stage);
		return 0;
	}
	default:
		host->log(self, CVMM_LOG_INFO, "VM '%s': %s passes", host->vm_name(vm), stage);
		return 0;
	}
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
		cfg.message[0] = '\0';
	else if (r < 0)
		return r;
	else
		snprintf(cfg.message, sizeof(cfg.message), "%s", v);

	if ((r = host->cfg_bool(self, "hang", &cfg.hang)) == -ENOENT)
		cfg.hang = 0;
	else if (r < 0)
		return r;
	if ((r = host->cfg_int(self, "hang_seconds", &cfg.hang_seconds)) == -ENOENT)
		cfg.hang_seconds = 3;
	else if (r < 0)
		return r;
	if (cfg.hang_seconds < 0 || cfg.hang_seconds > 3600)
		return host->error(self, NULL, -EINVAL,
		                   "plugin.test-fail.hang_seconds: must be 0 to 3600, got %lld",
		                   (long long)cfg.hang_seconds);
	if ((r = host->cfg_bool(self, "from_name", &cfg.from_name)) == -ENOENT)
		cfg.from_name = 0;
	else if (r < 0)
		return r;

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
	if (cfg.from_name)
		host->log(self, CVMM_LOG_INFO, "will fail or hang as each VM's name says");
	else
		host->log(self, CVMM_LOG_INFO, "will %s '%s'%s%s", cfg.hang ? "hang at" : "fail",
		          cfg.event_name, cfg.name_prefix ? " for VMs whose name starts with " : "",
		          cfg.name_prefix ? cfg.name_prefix : "");
	return 0;
}
