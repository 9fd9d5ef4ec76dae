/*
 * check: see check.h. Each item says what was looked at (detail) and, when
 * not ok, what to do (fix). Everything is read, nothing changed: the one
 * active probe is KVM_CREATE_VM, whose VM is closed at once.
 */
#include "check.h"

#include "daemon.h"
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const status_names[] = {"ok", "warn", "fail"};

static void item(json_object *items, const char *name, enum check_status st, const char *fix,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void item(json_object *items, const char *name, enum check_status st, const char *fix,
		 const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "status", json_object_new_string(status_names[st]));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	json_object_object_add(o, "fix", json_object_new_string(st == CHECK_OK ? "" : fix));
	json_object_array_add(items, o);
}

static void path_at(char *out, size_t len, const char *root, const char *rel)
{
	size_t l = strlen(root);
	while (l && root[l - 1] == '/')
		l--;
	snprintf(out, len, "%.*s/%s", (int)l, root, rel);
}

/* Entries of a directory (not . and ..); -errno if it cannot be read. */
static int count_dir(const char *root, const char *rel)
{
	char p[PATH_MAX];
	path_at(p, sizeof(p), root, rel);
	DIR *d = opendir(p);
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static int exists(const char *root, const char *rel)
{
	char p[PATH_MAX];
	struct stat st;
	path_at(p, sizeof(p), root, rel);
	return stat(p, &st) == 0;
}

static int read_first_line(const char *root, const char *rel, char *buf, size_t len)
{
	char p[PATH_MAX];
	path_at(p, sizeof(p), root, rel);
	FILE *f = fopen(p, "re");
	if (!f)
		return -errno;
	int rc = fgets(buf, (int)len, f) ? 0 : -EIO;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return rc;
}

/* Whether the "flags" line of /proc/cpuinfo names flag. */
static int cpu_flag(const char *root, const char *flag)
{
	char p[PATH_MAX], line[8192];
	path_at(p, sizeof(p), root, "proc/cpuinfo");
	FILE *f = fopen(p, "re");
	int found = 0;
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		for (char *save = NULL, *t = strtok_r(strchr(line, ':') ? strchr(line, ':') + 1 : line,
						      " \t\n", &save);
		     t; t = strtok_r(NULL, " \t\n", &save))
			found |= !strcmp(t, flag);
		break; /* every CPU has the same flags */
	}
	fclose(f);
	return found;
}

static void check_kvm(const char *root, json_object *items, int nested)
{
	char p[PATH_MAX];
	const char *fix = "enable VT-x/AMD-V in the firmware, load kvm_intel or kvm_amd "
			  "(modprobe kvm_intel), and give cvmmd access to /dev/kvm; without KVM "
			  "guests run under TCG, many times slower, and cannot take a GPU";
	path_at(p, sizeof(p), root, "dev/kvm");
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		item(items, "kvm", CHECK_FAIL, fix, "%s: %s", p, strerror(errno));
		return;
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		item(items, "kvm", CHECK_FAIL, fix, "%s: KVM_GET_API_VERSION: %s", p,
		     api < 0 ? strerror(errno) : "not version 12");
		close(fd);
		return;
	}
	int vm = ioctl(fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		item(items, "kvm", CHECK_FAIL, fix, "%s: KVM_CREATE_VM: %s", p, strerror(errno));
		close(fd);
		return;
	}
	close(vm);
	close(fd);
	/* Under a hypervisor without working nested virtualization KVM opens
	 * and creates VMs, and the guests then hang at their first instruction */
	if (nested)
		item(items, "kvm", CHECK_WARN,
		     "boot a guest with accel=kvm to verify it (backend-qemu's probe_kernel "
		     "does at start-up), or run on bare metal",
		     "present but unverified: %s opens and creates VMs, but this host is itself a "
		     "guest (cpuinfo flag \"hypervisor\"), where nested guests may hang",
		     p);
	else
		item(items, "kvm", CHECK_OK, "", "%s: API version %d, KVM_CREATE_VM works", p, api);
}

static void check_iommu(const char *root, json_object *items)
{
	const char *fix = "enable VT-d / AMD-Vi in the firmware and boot with intel_iommu=on "
			  "iommu=pt (AMD: amd_iommu=on iommu=pt) on the kernel command line "
			  "(GRUB_CMDLINE_LINUX, then update-grub and reboot)";
	int n = count_dir(root, "sys/class/iommu");
	if (n > 0)
		item(items, "iommu", CHECK_OK, "", "%d IOMMU unit%s in /sys/class/iommu", n,
		     n > 1 ? "s" : "");
	else
		item(items, "iommu", CHECK_FAIL, fix,
		     "no IOMMU is on: /sys/class/iommu is %s; no device can be passed through",
		     n == 0 ? "empty" : "missing");
	int g = count_dir(root, "sys/kernel/iommu_groups");
	if (g > 0)
		item(items, "iommu_groups", CHECK_OK, "", "%d IOMMU groups", g);
	else
		item(items, "iommu_groups", CHECK_FAIL, fix,
		     "no IOMMU groups in /sys/kernel/iommu_groups: VFIO has nothing to assign");
}

static void check_vfio(const char *root, json_object *items)
{
	int vfio = exists(root, "sys/module/vfio"), pci = exists(root, "sys/module/vfio_pci");
	if (vfio && pci)
		item(items, "vfio", CHECK_OK, "", "vfio and vfio_pci are loaded%s",
		     exists(root, "dev/vfio/vfio") ? ", /dev/vfio/vfio exists" : "");
	else
		item(items, "vfio", CHECK_FAIL,
		     "modprobe vfio-pci, and load it at boot: echo vfio-pci > "
		     "/etc/modules-load.d/vfio.conf",
		     "not loaded: %s%s%s", vfio ? "" : "vfio", !vfio && !pci ? ", " : "",
		     pci ? "" : "vfio_pci");
}

/* The first line a program prints for args, or "" when it cannot run. */
static void program_line(const char *argv0, const char *arg, char *out, size_t len)
{
	char cmd[PATH_MAX + 64];
	out[0] = 0;
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>/dev/null", argv0, arg);
	FILE *f = popen(cmd, "re");
	if (!f)
		return;
	if (!fgets(out, (int)len, f))
		out[0] = 0;
	out[strcspn(out, "\n")] = 0;
	while (fgetc(f) != EOF) /* let it finish writing */
		;
	pclose(f);
}

static int in_path(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, prog);
		if (access(out, X_OK) == 0)
			return 1;
	}
	out[0] = 0;
	return 0;
}

static void check_programs(json_object *items)
{
	char path[PATH_MAX], line[256];
	if (in_path("qemu-system-x86_64", path, sizeof(path))) {
		program_line(path, "--version", line, sizeof(line));
		item(items, "qemu", line[0] ? CHECK_OK : CHECK_FAIL,
		     "reinstall it: apt-get install qemu-system-x86", "%s: %s", path,
		     line[0] ? line : "does not run");
	} else {
		item(items, "qemu", CHECK_FAIL, "apt-get install qemu-system-x86",
		     "qemu-system-x86_64 is not in PATH");
	}
	static const char *const ovmf[] = {"/usr/share/OVMF/OVMF_CODE_4M.fd",
					   "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/ovmf/OVMF.fd",
					   "/usr/share/qemu/OVMF.fd", NULL};
	int k = 0;
	while (ovmf[k] && access(ovmf[k], R_OK) != 0)
		k++;
	if (ovmf[k])
		item(items, "ovmf", CHECK_OK, "", "%s", ovmf[k]);
	else
		item(items, "ovmf", CHECK_WARN, "apt-get install ovmf",
		     "no OVMF firmware (UEFI guests, as GPU guests usually are, cannot boot)");
	if (in_path("passt", path, sizeof(path))) {
		program_line(path, "--version", line, sizeof(line));
		item(items, "passt", CHECK_OK, "", "%s%s%s", path, line[0] ? ": " : "", line);
	} else {
		item(items, "passt", CHECK_WARN, "apt-get install passt",
		     "passt is not in PATH (network mode \"passt\" cannot run)");
	}
}

static void check_nvidia_drm(const char *root, json_object *items)
{
	char v[16];
	if (!exists(root, "sys/module/nvidia_drm")) {
		item(items, "nvidia_drm", CHECK_OK, "", "nvidia_drm is not loaded");
		return;
	}
	if (read_first_line(root, "sys/module/nvidia_drm/parameters/modeset", v, sizeof(v)) == 0 &&
	    (!strcmp(v, "Y") || !strcmp(v, "1")))
		item(items, "nvidia_drm", CHECK_WARN,
		     "set options nvidia-drm modeset=0 in /etc/modprobe.d (then update-initramfs "
		     "-u and reboot), or unload nvidia_drm before passing GPUs through",
		     "nvidia_drm is loaded with modeset=Y: unbinding a GPU from nvidia hangs "
		     "while the DRM driver holds it");
	else
		item(items, "nvidia_drm", CHECK_OK, "", "nvidia_drm is loaded with modeset=N");
}

void check_core(const char *root, json_object *items)
{
	int vmx = cpu_flag(root, "vmx"), svm = cpu_flag(root, "svm");
	int nested = cpu_flag(root, "hypervisor") > 0;
	if (vmx > 0 || svm > 0)
		item(items, "cpu_virtualization", CHECK_OK, "", "cpuinfo flag %s",
		     vmx > 0 ? "vmx (VT-x)" : "svm (AMD-V)");
	else if (vmx < 0)
		item(items, "cpu_virtualization", CHECK_FAIL, "mount proc on /proc",
		     "cannot read /proc/cpuinfo: %s",
		     strerror(-vmx));
	else
		item(items, "cpu_virtualization", CHECK_FAIL,
		     nested ? "enable nested virtualization in the hypervisor running this host "
			      "(or run on bare metal)"
			    : "enable VT-x / AMD-V (SVM) in the firmware",
		     "neither vmx nor svm in /proc/cpuinfo%s",
		     nested ? " (this host is itself a guest)" : "");
	check_kvm(root, items, nested);
	check_iommu(root, items);
	check_vfio(root, items);
	check_programs(items);
	check_nvidia_drm(root, items);
}

json_object *check_report(struct cvmm_daemon *d, const char *root)
{
	json_object *items = json_object_new_array();
	check_core(root, items);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	for (int i = 0; buf && i < d->reg->n_checks; i++) {
		struct reg_check *c = &d->reg->checks[i];
		int n = c->fn(c->data, buf, cap);
		json_object *a = n >= 0 && (size_t)n < cap ? json_tokener_parse(buf) : NULL;
		if (!a || !json_object_is_type(a, json_type_array)) {
			char name[96];
			snprintf(name, sizeof(name), "plugin %s", c->plugin->name);
			item(items, name, CHECK_FAIL, "see the daemon's log",
			     "its check gave no list of items (%s)",
			     n < 0 ? strerror(-n) : "not a JSON array");
			json_object_put(a);
			continue;
		}
		for (size_t k = 0; k < json_object_array_length(a); k++)
			json_object_array_add(items, json_object_get(json_object_array_get_idx(a, k)));
		json_object_put(a);
	}
	free(buf);
	int counts[3] = {0};
	for (size_t k = 0; k < json_object_array_length(items); k++) {
		json_object *st;
		const char *s = json_object_object_get_ex(json_object_array_get_idx(items, k), "status",
							  &st)
					? json_object_get_string(st)
					: "";
		for (int j = 0; j < 3; j++)
			counts[j] += !strcmp(s, status_names[j]);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "items", items);
	for (int j = 0; j < 3; j++)
		json_object_object_add(o, status_names[j], json_object_new_int(counts[j]));
	return o;
}
