/*
 * syslog-hook: an example of a vendor plugin built outside cvmm's tree,
 * against the installed <cvmm/plugin.h> and `pkg-config cvmm-plugin` only
 * (see Makefile). It writes one syslog line for each lifecycle event of
 * each VM, and for the daemon's start and stop:
 *
 *   <30>Dec  2 01:02:03 cvmm[1234]: VM web1 (5f0c...): started
 *
 * Settings (section plugin.syslog-hook, all optional):
 *   socket = "/dev/log";   # the syslog socket (unix datagram)
 *   ident  = "cvmm";       # the tag of each line
 *
 * The socket is the plugin's own (not openlog(3)'s /dev/log) so that a test
 * or a container can point it at a listener of its own. Logging never fails
 * a VM's operation: a line that cannot be sent is dropped.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_DAEMON_INFO ((3 << 3) | 6) /* facility daemon, severity info */

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static struct sockaddr_un target = {.sun_family = AF_UNIX};
static const char *ident = "cvmm";
static int fd = -1;
static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER; /* hooks run on several workers */

static const char *const names[] = {
    [CVMM_EV_DEFINE] = "defined",
    [CVMM_EV_UNDEFINE] = "undefined",
    [CVMM_EV_PREPARE] = "prepared",
    [CVMM_EV_CLEANUP] = "cleaned up",
    [CVMM_EV_PRE_START] = "starting",
    [CVMM_EV_POST_STOP] = "stopped",
    [CVMM_EV_STARTED] = "started",
    [CVMM_EV_STOPPING] = "stopping",
    [CVMM_EV_EXITED] = "exited",
    [CVMM_EV_GUEST_EVENT] = "guest event",
    [CVMM_EV_DAEMON_START] = "daemon started",
    [CVMM_EV_DAEMON_STOP] = "daemon stopping",
};

static void send_line(const char *msg)
{
	char line[1024], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", localtime_r(&now, &tm));
	int n = snprintf(line, sizeof(line), "<%d>%s %s[%d]: %s", LOG_DAEMON_INFO, stamp, ident,
	                 (int)getpid(), msg);
	if (n < 0)
		return;
	pthread_mutex_lock(&fd_lock);
	if (fd < 0)
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && sendto(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
	                      MSG_NOSIGNAL, (struct sockaddr *)&target, sizeof(target)) < 0)
		host->log(self, CVMM_LOG_DEBUG, "%s: %s", target.sun_path, strerror(errno));
	pthread_mutex_unlock(&fd_lock);
}

static int on_event(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	(void)spec;
	char msg[512];
	const char *what =
	    event < sizeof(names) / sizeof(names[0]) && names[event] ? names[event] : "event";
	if (vm)
		snprintf(msg, sizeof(msg), "VM %s (%s): %s", host->vm_name(vm), host->vm_id(vm),
		         what);
	else
		snprintf(msg, sizeof(msg), "%s", what);
	send_line(msg);
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t major, uint32_t minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "syslog-hook", "1.0",
	                     "writes each VM lifecycle event to syslog (example plugin)");
	(void)minor; /* uses nothing added after 1.0 */
	if (major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	const char *path = "/dev/log";
	if (host->cfg_string(self, "socket", &path) == -EINVAL ||
	    host->cfg_string(self, "ident", &ident) == -EINVAL)
		return -EINVAL; /* the host reported which key */
	if (strlen(path) >= sizeof(target.sun_path))
		return host->error(self, NULL, -EINVAL, "plugin.syslog-hook.socket: path too long");
	strcpy(target.sun_path, path);
	/* Lifecycle steps and their undos, notifications, the daemon itself.
	 * Priority 1000: after every other plugin's hook of the same step. */
	for (uint32_t ev = CVMM_EV_DEFINE; ev <= CVMM_EV_DAEMON_STOP; ev++) {
		int rc = host->register_hook(self, ev, 1000, on_event, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}
