/*
 * backend-qemu: runs VMs as QEMU processes, detached from the daemon (own
 * session, reparented away) so that the daemon can die, restart or be
 * upgraded while VMs run. Readiness is a QMP handshake; identity across a
 * daemon restart is the pid plus the process start time plus the VM's UUID
 * on the command line; exit is watched by the host through a pidfd.
 *
 * The accelerator: "kvm", "tcg", or "auto", which uses KVM only after a
 * probe shows that a guest really runs under it (the device can exist while
 * guests hang, as under nested virtualisation).
 */
#include "proc.h"
#include "qmp.h"
#include "pin.h"
#include "render.h"

#include <cvmm/plugin.h>

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <net/if.h>
#include <json-c/json.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert(QEMU_MACVTAP_MAX <= CP_SPAWN_MAX_FDS, "the spawner places every macvtap fd");

#define QMP_TIMEOUT_MS 5000
#define START_TIMEOUT_S 30
#define QUIT_WAIT_S 5
#define PROBE_TIMEOUT_S 10

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static struct {
	char binary[256];
	char accel[8];       /* what VMs get: "kvm" or "tcg" */
	char accel_why[256]; /* why, for GET /v1/host */
	int vsock;
	int sandbox;
	const char *probe_kernel; /* plugin.backend-qemu.probe_kernel, or NULL */
} conf;

/* ---- small process helpers ---- */

/* 1 if one of the process's arguments contains needle (the VM's UUID). */
static int cmdline_has(int pid, const char *needle)
{
	static __thread char buf[65536];
	ssize_t n = cp_read_cmdline(pid, buf, sizeof(buf));
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1)
		if (strstr(buf + off, needle))
			return 1;
	return 0;
}

/* The last line QEMU wrote to its stderr log: its reason for failing. */
static void last_error(const char *path, char *out, size_t len)
{
	out[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	char *line = strrchr(buf, '\n');
	snprintf(out, len, "%s", line ? line + 1 : buf);
}

/* ---- the accelerator probe ---- */

/* A kernel to probe with: plugin.backend-qemu.probe_kernel, else the kernel
 * of the first image under image.path, else the host's /boot/vmlinuz*. */
static int find_probe_kernel(char *out, size_t len)
{
	if (conf.probe_kernel) {
		snprintf(out, len, "%s", conf.probe_kernel);
		return access(out, R_OK) == 0 ? 0 : -errno;
	}
	const char *images = NULL;
	if (host->cfg_string(self, ".image.path", &images) == 0) {
		DIR *d = opendir(images);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char meta[768];
			snprintf(meta, sizeof(meta), "%s/%s/metadata.json", images, de->d_name);
			json_object *o = json_object_from_file(meta), *v;
			if (o && json_object_object_get_ex(o, "kernel", &v) &&
			    json_object_is_type(v, json_type_string) &&
			    !strchr(json_object_get_string(v), '/')) {
				snprintf(out, len, "%s/%s/%s", images, de->d_name,
					 json_object_get_string(v));
				json_object_put(o);
				if (access(out, R_OK) == 0) {
					closedir(d);
					return 0;
				}
				continue;
			}
			json_object_put(o);
		}
		if (d)
			closedir(d);
	}
	glob_t g;
	if (glob("/boot/vmlinuz*", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			if (access(g.gl_pathv[i], R_OK) == 0) {
				snprintf(out, len, "%s", g.gl_pathv[i]);
				globfree(&g);
				return 0;
			}
		globfree(&g);
	}
	return -ENOENT;
}

/*
 * Boots a Linux kernel under KVM with no root device: a working guest runs
 * the whole kernel init and panics on the missing root ("VFS: Cannot open
 * root device", then QEMU exits thanks to -no-reboot). Firmware alone is not
 * proof: under nested virtualisation SeaBIOS completes POST under KVM while
 * the kernel then hangs without printing a byte.
 */
static int probe_kvm(char *why, size_t len)
{
	char kernel[768];
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		snprintf(why, len, "/dev/kvm: %s", strerror(errno));
		return 0;
	}
	if (find_probe_kernel(kernel, sizeof(kernel)) < 0) {
		snprintf(why, len,
			 "no kernel to probe KVM with (set plugin.backend-qemu.probe_kernel); not trusting /dev/kvm untested");
		return 0;
	}
	char dir[] = "/tmp/cvmm-kvm-probe.XXXXXX";
	if (!mkdtemp(dir)) {
		snprintf(why, len, "probe: mkdtemp: %s", strerror(errno));
		return 0;
	}
	char con[64], errlog[64], serial[80];
	snprintf(con, sizeof(con), "%s/console", dir);
	snprintf(errlog, sizeof(errlog), "%s/stderr", dir);
	snprintf(serial, sizeof(serial), "file:%s", con);
	char *argv[] = {conf.binary, "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "128",
			"-nodefaults", "-display", "none", "-no-user-config", "-no-reboot", "-kernel",
			kernel, "-append", "console=ttyS0 panic=-1 root=/dev/cvmm-probe", "-serial",
			serial, NULL};
	int pid = cp_spawn_detached(argv, errlog, NULL, 0, 0);
	int ok = 0, exited = 0;
	if (pid < 0) {
		snprintf(why, len, "probe: cannot run %s: %s", conf.binary, strerror(-pid));
		goto out;
	}
	int pfd = cp_pidfd_open(pid);
	double t0 = cp_mono(), end = t0 + PROBE_TIMEOUT_S;
	while (cp_mono() < end && !ok) {
		exited = pfd >= 0 && cp_pidfd_wait(pfd, 0.05) == 1;
		char buf[65536] = "";
		int fd = open(con, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			buf[n > 0 ? n : 0] = 0;
		}
		if (strstr(buf, "Cannot open root device") || strstr(buf, "Kernel panic"))
			ok = 1;
		else if (exited)
			break;
	}
	if (ok) {
		snprintf(why, len, "KVM probe: %s booted to its root-mount panic under KVM in %.1f s",
			 kernel, cp_mono() - t0);
	} else if (exited) {
		char e[200];
		last_error(errlog, e, sizeof(e));
		snprintf(why, len, "KVM probe: QEMU exited before the probe kernel finished: %s",
			 e[0] ? e : "no message");
	} else {
		snprintf(why, len,
			 "KVM probe: /dev/kvm exists but a probe kernel did not finish booting under KVM within %d s (nested virtualisation?)",
			 PROBE_TIMEOUT_S);
	}
	if (pfd >= 0) {
		cp_pidfd_kill(pfd, SIGKILL);
		cp_pidfd_wait(pfd, 2);
		close(pfd);
	}
out:
	unlink(con);
	unlink(errlog);
	rmdir(dir);
	return ok;
}

/* ---- backend ops ---- */

static void paths(cvmm_vm *vm, char *qmp, char *pidf, char *errlog, size_t len)
{
	const char *rd = host->vm_run_dir(vm);
	snprintf(qmp, len, "%s/qmp.sock", rd);
	snprintf(pidf, len, "%s/qemu.pid", rd);
	snprintf(errlog, len, "%s/qemu.log", host->vm_data_dir(vm));
}

static int save_identity(cvmm_vm *vm, int pid)
{
	char v[32];
	snprintf(v, sizeof(v), "%d", pid);
	int r = host->state_set(self, vm, "pid", v);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)cp_start_time(pid));
	return r < 0 ? r : host->state_set(self, vm, "starttime", v);
}

/* A QEMU whose argv holds "-uuid <id>": the VM's, even if its pid never
 * reached the manifest (the daemon died between spawn and that write). */
static int find_by_uuid(const char *id)
{
	static __thread char buf[65536];
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;
	while (d && !found && (de = readdir(d))) {
		int pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		ssize_t n = cp_read_cmdline(pid, buf, sizeof(buf));
		if (n <= 0 || !strstr(buf, "qemu"))
			continue;
		for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) {
			ssize_t next = off + (ssize_t)strlen(buf + off) + 1;
			if (!strcmp(buf + off, "-uuid") && next < n && !strcmp(buf + next, id) &&
			    cp_start_time(pid)) {
				found = pid;
				break;
			}
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* The VM's QEMU if it still runs: identity checked, pidfd returned. */
static int find_process(cvmm_vm *vm, int *pid_out)
{
	char buf[32];
	int pid = 0;
	uint64_t st = 0;
	if (host->state_get(self, vm, "pid", buf, sizeof(buf)) >= 0)
		pid = atoi(buf);
	if (host->state_get(self, vm, "starttime", buf, sizeof(buf)) >= 0)
		st = strtoull(buf, NULL, 10);
	if (pid <= 0 || cp_start_time(pid) == 0 || cp_start_time(pid) != st ||
	    !cmdline_has(pid, host->vm_id(vm))) {
		/* Not what was recorded (or nothing was): look for it by UUID. */
		pid = find_by_uuid(host->vm_id(vm));
		if (!pid)
			return -ESRCH;
		st = cp_start_time(pid);
		host->log(self, CVMM_LOG_WARN, "VM '%s': found its QEMU (pid %d) by UUID",
			  host->vm_name(vm), pid);
		save_identity(vm, pid);
	}
	int fd = cp_pidfd_open(pid);
	if (fd < 0)
		return fd;
	/* Re-check after taking the pidfd: the pid cannot be reused under it now. */
	if (cp_start_time(pid) != st) {
		close(fd);
		return -ESRCH;
	}
	*pid_out = pid;
	return fd;
}

/*
 * Opens the character device of macvtap ifname for QEMU. /dev/tap<ifindex>
 * is what devtmpfs names it, but ifindexes are per network namespace and
 * devtmpfs is not: another namespace's macvtap of the same ifindex owns that
 * node. So the node is checked against the device number sysfs gives for
 * this namespace's link (when sysfs shows this namespace), and when it is
 * missing or another device's, a private node made in the VM's run
 * directory is opened and unlinked instead.
 */
static int macvtap_open(const char *ifname, const char *run_dir, char *err, size_t errlen)
{
	unsigned idx = if_nametoindex(ifname);
	if (!idx) {
		snprintf(err, errlen, "macvtap device '%s': %s", ifname, strerror(errno));
		return -ENODEV;
	}
	char path[600], buf[64];
	unsigned maj = 0, min = 0;
	int known = 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s/tap%u/dev", ifname, idx);
	int sfd = open(path, O_RDONLY | O_CLOEXEC);
	if (sfd >= 0) {
		ssize_t n = read(sfd, buf, sizeof(buf) - 1);
		close(sfd);
		buf[n > 0 ? n : 0] = 0;
		known = sscanf(buf, "%u:%u", &maj, &min) == 2;
	}
	snprintf(path, sizeof(path), "/dev/tap%u", idx);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && known && (fstat(fd, &st) < 0 || st.st_rdev != makedev(maj, min))) {
		close(fd);
		fd = -1;
		errno = ENXIO;
	}
	if (fd < 0 && known) {
		snprintf(path, sizeof(path), "%s/tap%u", run_dir, idx);
		unlink(path);
		if (mknod(path, S_IFCHR | 0600, makedev(maj, min)) == 0) {
			fd = open(path, O_RDWR | O_CLOEXEC);
			int e = errno;
			unlink(path);
			errno = e;
		}
	}
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "macvtap device '%s': cannot open %s: %s", ifname, path,
			 strerror(e));
		return -e;
	}
	return fd;
}

static void close_all(int *fds, int n)
{
	for (int k = 0; k < n; k++)
		close(fds[k]);
}

static int qemu_start(void *data, cvmm_vm *vm, const struct cvmm_launch_spec *spec)
{
	struct qemu_opts o = {conf.binary, conf.accel, conf.vsock, conf.sandbox};
	struct argv a = {0};
	char err[1024], qmp[600], pidf[600], errlog[600];
	int r = qemu_render(spec, &o, &a, err, sizeof(err));
	if (r < 0) {
		argv_free(&a);
		return host->error(self, vm, r, "%s", err);
	}
	paths(vm, qmp, pidf, errlog, sizeof(qmp));
	unlink(qmp);
	/* The macvtap NICs' devices, in the order render.c numbered them. */
	int fds[QEMU_MACVTAP_MAX] = {0}, n_fds = 0; /* render() allowed at most that many */
	for (uint32_t i = 0; i < spec->n_nics; i++) {
		if (spec->nics[i]->kind != CVMM_NIC_MACVTAP || n_fds == QEMU_MACVTAP_MAX)
			continue;
		int fd = macvtap_open(spec->nics[i]->ifname, spec->run_dir, err, sizeof(err));
		if (fd < 0) {
			close_all(fds, n_fds);
			argv_free(&a);
			return host->error(self, vm, fd, "NIC %s: %s", spec->nics[i]->id, err);
		}
		fds[n_fds++] = fd;
	}
	int pid = cp_spawn_detached(a.v, errlog, fds, n_fds, QEMU_MACVTAP_FD_BASE);
	close_all(fds, n_fds);
	argv_free(&a);
	if (pid < 0)
		return host->error(self, vm, pid, "cannot start %s: %s", conf.binary, strerror(-pid));
	int pfd = cp_pidfd_open(pid);
	if (pfd < 0)
		return host->error(self, vm, pfd, "pidfd_open(%d): %s", pid, strerror(-pfd));
	/* Saved before anything can fail, so a later failure can find it. */
	save_identity(vm, pid);
	struct qmp *q = NULL;
	double end = cp_mono() + START_TIMEOUT_S;
	r = -ETIMEDOUT;
	while (cp_mono() < end) {
		if (cp_pidfd_wait(pfd, 0.02) == 1) {
			char e[512];
			last_error(errlog, e, sizeof(e));
			r = host->error(self, vm, -EIO, "QEMU exited during start: %s",
					e[0] ? e : "no message");
			goto fail;
		}
		if (access(qmp, F_OK) == 0 && qmp_connect(qmp, QMP_TIMEOUT_MS, &q, err, sizeof(err)) == 0)
			break;
	}
	if (!q) {
		r = host->error(self, vm, r, "QEMU did not answer on %s within %d s", qmp,
				START_TIMEOUT_S);
		goto fail;
	}
	/* Pinning: QEMU waits paused (-S, render.c) until every thread is
	 * where the spec wants it. */
	if (qemu_needs_pinning(spec)) {
		if ((r = pin_qemu(q, pid, spec, err, sizeof(err))) < 0 ||
		    (r = qmp_command(q, "cont", NULL, QMP_TIMEOUT_MS, NULL, err, sizeof(err))) < 0) {
			qmp_close(q);
			r = host->error(self, vm, r, "VM '%s': %s", host->vm_name(vm), err);
			goto fail;
		}
		host->log(self, CVMM_LOG_INFO, "VM '%s': %u vCPUs pinned%s%s", host->vm_name(vm),
			  spec->n_pins, spec->emulator_cpus[0] ? ", emulator threads on " : "",
			  spec->emulator_cpus);
	}
	char *ret = NULL;
	r = qmp_command(q, "query-status", NULL, QMP_TIMEOUT_MS, &ret, err, sizeof(err));
	qmp_close(q);
	if (r < 0 || !ret || !strstr(ret, "\"running\"")) {
		r = host->error(self, vm, r < 0 ? r : -EIO, "QEMU is not running the guest: %s",
				r < 0 ? err : (ret ? ret : "no status"));
		free(ret);
		goto fail;
	}
	free(ret);
	close(pfd);
	r = host->vm_watch_pid(vm, pid);
	if (r < 0)
		return host->error(self, vm, r, "cannot watch QEMU (pid %d): %s", pid, strerror(-r));
	host->log(self, CVMM_LOG_INFO, "VM '%s': QEMU pid %d running (%s)", host->vm_name(vm), pid,
		  conf.accel);
	return 0;
fail:
	cp_pidfd_kill(pfd, SIGKILL);
	cp_pidfd_wait(pfd, 5);
	close(pfd);
	return r;
}

static int kill_and_wait(int pfd)
{
	cp_pidfd_kill(pfd, SIGKILL);
	return cp_pidfd_wait(pfd, 10) == 1 ? 0 : -ETIMEDOUT;
}

static int qemu_stop(void *data, cvmm_vm *vm, uint32_t timeout_s)
{
	int pid, pfd = find_process(vm, &pid);
	if (pfd < 0)
		return 0; /* already gone */
	char qmp[600], pidf[600], errlog[600], err[512];
	paths(vm, qmp, pidf, errlog, sizeof(qmp));
	struct qmp *q = NULL;
	int r = qmp_connect(qmp, QMP_TIMEOUT_MS, &q, err, sizeof(err));
	if (r == 0) {
		r = qmp_command(q, "system_powerdown", NULL, QMP_TIMEOUT_MS, NULL, err, sizeof(err));
		if (r == 0 && cp_pidfd_wait(pfd, timeout_s) == 1) {
			host->log(self, CVMM_LOG_INFO, "VM '%s': powered off", host->vm_name(vm));
			goto done;
		}
		host->log(self, CVMM_LOG_WARN,
			  "VM '%s': guest did not power off within %u s; asking QEMU to quit",
			  host->vm_name(vm), timeout_s);
		qmp_command(q, "quit", NULL, QMP_TIMEOUT_MS, NULL, err, sizeof(err));
		if (cp_pidfd_wait(pfd, QUIT_WAIT_S) == 1)
			goto done;
	} else {
		host->log(self, CVMM_LOG_WARN, "VM '%s': QMP unavailable (%s); killing",
			  host->vm_name(vm), err);
	}
	r = kill_and_wait(pfd);
	if (r < 0) {
		close(pfd);
		qmp_close(q);
		return host->error(self, vm, r, "QEMU (pid %d) did not exit after SIGKILL", pid);
	}
done:
	qmp_close(q);
	close(pfd);
	return 0;
}

static int qemu_kill(void *data, cvmm_vm *vm)
{
	int pid, pfd = find_process(vm, &pid);
	if (pfd < 0)
		return 0;
	int r = kill_and_wait(pfd);
	close(pfd);
	return r < 0 ? host->error(self, vm, r, "QEMU (pid %d) did not exit after SIGKILL", pid) : 0;
}

static int qemu_adopt(void *data, cvmm_vm *vm)
{
	int pid, pfd = find_process(vm, &pid);
	if (pfd < 0)
		return 0;
	close(pfd);
	int r = host->vm_watch_pid(vm, pid);
	return r < 0 ? 0 : 1;
}

static int qemu_cleanup(void *data, cvmm_vm *vm)
{
	char qmp[600], pidf[600], errlog[600];
	paths(vm, qmp, pidf, errlog, sizeof(qmp));
	unlink(qmp);
	unlink(pidf);
	host->state_set(self, vm, "pid", NULL);
	host->state_set(self, vm, "starttime", NULL);
	return 0;
}

static int qemu_describe(void *data, char *buf, size_t len)
{
	snprintf(buf, len, "%s: accel %s (%s)", conf.binary, conf.accel, conf.accel_why);
	return 0;
}

static int qemu_render_op(void *data, const struct cvmm_launch_spec *spec, char *buf, size_t len)
{
	struct qemu_opts o = {conf.binary, conf.accel, conf.vsock, conf.sandbox};
	struct argv a = {0};
	char err[512];
	int r = qemu_render(spec, &o, &a, err, sizeof(err));
	size_t off = 0;
	for (int i = 0; r == 0 && i < a.n; i++) {
		size_t l = strlen(a.v[i]) + 1;
		if (off + l > len) {
			r = -ENOSPC;
			break;
		}
		memcpy(buf + off, a.v[i], l);
		off += l;
	}
	argv_free(&a);
	if (r < 0 && r != -ENOSPC)
		host->error(self, NULL, r, "%s", err);
	return r < 0 ? r : (int)off;
}


/* ---- pause, resume, snapshots (ABI 1.2, issue 11) ---- */

/* One QMP command to the VM's QEMU; ret (may be NULL) gets "return". */
static int qmp_once(cvmm_vm *vm, const char *cmd, char **ret)
{
	int pid, pfd = find_process(vm, &pid);
	if (pfd < 0)
		return host->error(self, vm, -ESRCH, "VM '%s': its QEMU is not running",
				   host->vm_name(vm));
	close(pfd);
	char qmp[600], pidf[600], errlog[600], err[512];
	paths(vm, qmp, pidf, errlog, sizeof(qmp));
	struct qmp *q = NULL;
	int r = qmp_connect(qmp, QMP_TIMEOUT_MS, &q, err, sizeof(err));
	if (r == 0)
		r = qmp_command(q, cmd, NULL, QMP_TIMEOUT_MS, ret, err, sizeof(err));
	qmp_close(q);
	if (r < 0)
		return host->error(self, vm, r, "VM '%s': QMP %s: %s", host->vm_name(vm), cmd, err);
	return 0;
}

static int qemu_is_paused(void *data, cvmm_vm *vm)
{
	char *ret = NULL;
	int r = qmp_once(vm, "query-status", &ret);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(ret), *v;
	free(ret);
	/* "running": false covers every way of not running (paused, debug,
	 * prelaunch, ...): the vCPUs do not move. */
	r = json_object_object_get_ex(o, "running", &v) && json_object_is_type(v, json_type_boolean)
		? !json_object_get_boolean(v)
		: -EPROTO;
	json_object_put(o);
	return r;
}

static int qemu_pause(void *data, cvmm_vm *vm)
{
	int r = qmp_once(vm, "stop", NULL);
	if (r == 0)
		host->log(self, CVMM_LOG_INFO, "VM '%s': paused", host->vm_name(vm));
	return r;
}

static int qemu_resume(void *data, cvmm_vm *vm)
{
	int r = qmp_once(vm, "cont", NULL);
	if (r == 0)
		host->log(self, CVMM_LOG_INFO, "VM '%s': resumed", host->vm_name(vm));
	return r;
}

/* Runs qemu-img with argv; its stdout into out (may be NULL), its stderr
 * into err. 0, or -EIO with the message. */
static int qemu_img(char *const argv[], char *out, size_t outlen, char *err, size_t errlen)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = -errno;
		close(po[0]);
		close(po[1]);
		return e;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return -errno;
	}
	/* Both pipes drained together: a full stderr must not block stdout. */
	size_t no = 0, ne = 0;
	struct pollfd pf[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
	int open_fds = 2;
	while (open_fds > 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			char buf[4096];
			ssize_t n = read(pf[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			char *dst = i ? err : out;
			size_t *used = i ? &ne : &no, cap = i ? errlen : outlen;
			if (dst && cap && *used + 1 < cap) {
				size_t c = (size_t)n < cap - 1 - *used ? (size_t)n : cap - 1 - *used;
				memcpy(dst + *used, buf, c);
				*used += c;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	if (out && outlen)
		out[no] = 0;
	if (err && errlen) {
		err[ne] = 0;
		while (ne && (err[ne - 1] == '\n' || err[ne - 1] == '\r'))
			err[--ne] = 0;
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* The disk's internal snapshots (qemu-img info's "snapshots"), as a json-c
 * array the caller puts; NULL with the reason reported. */
static json_object *snapshots_of(cvmm_vm *vm, const char *disk)
{
	static __thread char out[256 * 1024];
	char err[1024];
	char *argv[] = {"qemu-img", "info", "--output=json", "-f", "qcow2", (char *)disk, NULL};
	int r = qemu_img(argv, out, sizeof(out), err, sizeof(err));
	if (r < 0) {
		host->error(self, vm, r, "VM '%s': qemu-img info %s: %s", host->vm_name(vm), disk,
			    err[0] ? err : strerror(-r));
		return NULL;
	}
	json_object *o = json_tokener_parse(out), *snaps = NULL, *list = json_object_new_array();
	if (json_object_object_get_ex(o, "snapshots", &snaps) &&
	    json_object_is_type(snaps, json_type_array))
		for (size_t i = 0; i < json_object_array_length(snaps); i++) {
			json_object *sn = json_object_array_get_idx(snaps, i), *v;
			json_object *e = json_object_new_object();
			if (json_object_object_get_ex(sn, "name", &v))
				json_object_object_add(e, "name", json_object_get(v));
			if (json_object_object_get_ex(sn, "date-sec", &v))
				json_object_object_add(e, "created", json_object_get(v));
			if (json_object_object_get_ex(sn, "vm-state-size", &v))
				json_object_object_add(e, "vm_state_size", json_object_get(v));
			json_object_array_add(list, e);
		}
	json_object_put(o);
	return list;
}

static int has_snapshot(json_object *list, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *v;
		if (json_object_object_get_ex(json_object_array_get_idx(list, i), "name", &v) &&
		    !strcmp(json_object_get_string(v), name))
			return 1;
	}
	return 0;
}

/* qcow2 internal snapshots with qemu-img: the VM is stopped, so nothing
 * else has the image open. */
static int qemu_snapshot(void *data, cvmm_vm *vm, uint32_t op, const char *disk, const char *name,
			 char *buf, size_t len)
{
	json_object *list = snapshots_of(vm, disk);
	if (!list)
		return -EIO;
	int r = 0;
	if (op == CVMM_SNAP_LIST) {
		const char *text = json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN);
		size_t n = strlen(text);
		r = n + 1 > len ? -ENOSPC : (int)n;
		if (r > 0)
			memcpy(buf, text, n + 1);
		json_object_put(list);
		return r;
	}
	int exists = has_snapshot(list, name);
	json_object_put(list);
	const char *flag = op == CVMM_SNAP_CREATE ? "-c" : op == CVMM_SNAP_REVERT ? "-a"
						   : op == CVMM_SNAP_DELETE ? "-d" : NULL;
	if (!flag)
		return -EINVAL;
	if (op == CVMM_SNAP_CREATE && exists)
		return -EEXIST;
	if (op != CVMM_SNAP_CREATE && !exists)
		return -ENOENT;
	char err[1024];
	char *argv[] = {"qemu-img", "snapshot", "-q", (char *)flag, (char *)name, (char *)disk, NULL};
	r = qemu_img(argv, NULL, 0, err, sizeof(err));
	if (r < 0)
		return host->error(self, vm, r, "VM '%s': qemu-img snapshot %s %s: %s",
				   host->vm_name(vm), flag, name, err[0] ? err : strerror(-r));
	return 0;
}

static const struct cvmm_backend_ops ops = {
	.struct_size = sizeof(struct cvmm_backend_ops),
	.start = qemu_start,
	.stop = qemu_stop,
	.kill = qemu_kill,
	.adopt = qemu_adopt,
	.cleanup = qemu_cleanup,
	.describe = qemu_describe,
	.render = qemu_render_op,
	.pause = qemu_pause,
	.resume = qemu_resume,
	.is_paused = qemu_is_paused,
	.snapshot = qemu_snapshot,
};

static int choose_accel(void)
{
	const char *accel = "auto";
	if (host->cfg_string(self, "accel", &accel) == -EINVAL)
		return -EINVAL;
	if (!strcmp(accel, "tcg")) {
		snprintf(conf.accel, sizeof(conf.accel), "tcg");
		snprintf(conf.accel_why, sizeof(conf.accel_why), "set by plugin.backend-qemu.accel");
		return 0;
	}
	if (!strcmp(accel, "kvm")) {
		snprintf(conf.accel, sizeof(conf.accel), "kvm");
		snprintf(conf.accel_why, sizeof(conf.accel_why), "set by plugin.backend-qemu.accel");
		return 0;
	}
	if (strcmp(accel, "auto")) {
		return host->error(self, NULL, -EINVAL,
				   "plugin.backend-qemu.accel: must be \"auto\", \"kvm\" or \"tcg\", got \"%s\"",
				   accel);
	}
	int kvm = probe_kvm(conf.accel_why, sizeof(conf.accel_why));
	snprintf(conf.accel, sizeof(conf.accel), "%s", kvm ? "kvm" : "tcg");
	host->log(self, CVMM_LOG_INFO, "accelerator %s: %s", conf.accel, conf.accel_why);
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "backend-qemu", "0.1.0",
			     "runs VMs as detached QEMU processes (argv renderer, QMP, KVM probe)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	const char *bin = "qemu-system-x86_64";
	if (host->cfg_string(self, "qemu", &bin) == -EINVAL)
		return -EINVAL;
	snprintf(conf.binary, sizeof(conf.binary), "%s", bin);
	int32_t b = access("/dev/vhost-vsock", R_OK | W_OK) == 0;
	if (host->cfg_bool(self, "vsock", &b) == -EINVAL)
		return -EINVAL;
	conf.vsock = b;
	b = 1;
	if (host->cfg_bool(self, "sandbox", &b) == -EINVAL)
		return -EINVAL;
	conf.sandbox = b;
	/* Read here even when no probe will use it: settings are read at load. */
	conf.probe_kernel = NULL;
	if (host->cfg_string(self, "probe_kernel", &conf.probe_kernel) == -EINVAL)
		return -EINVAL;
	int r = choose_accel();
	if (r < 0)
		return r;
	return host->register_backend(self, "qemu", &ops, NULL);
}
