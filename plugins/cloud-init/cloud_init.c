/*
 * cloud-init: a NoCloud seed for every VM that asks for one (the create
 * request's "cloud_init" object, or an image whose metadata.json says
 * "cloud_init": true), given to the guest as a read-only virtio disk after
 * its root disk (Debian's cloud kernel has no AHCI: a q35 CD-ROM would be
 * invisible to it).
 *
 *   PRE_START  render meta-data, user-data, network-config (seed.c) from the
 *              request and what the network plugins published of each NIC
 *              (host->vm_nic_info; NIC setup runs before the stage's hooks,
 *              so every address is known); rebuild <vm>/cloud-init/seed.iso
 *              only if a file differs from the one kept beside it, so a
 *              restart hands the guest the same seed and cloud-init, seeing
 *              the same instance-id, does not run its per-instance modules
 *              again
 *   PLAN       the same disk in a dry run, made by nobody
 *
 * The seed is ISO 9660 with Joliet and Rock Ridge, volume id "cidata",
 * made by xorriso (plugin.cloud-init.xorriso, default "xorriso"). The files
 * stay with the VM and go with its folder.
 */
#include "proc.h"
#include "seed.h"

#include <cvmm/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static const char *xorriso = "xorriso";

static int validate(void *data, const char *json, char *err, size_t errlen)
{
	(void)data;
	json_object *v = json_tokener_parse(json);
	int r = v ? ci_validate(v, err, errlen) : -EINVAL;
	if (!v)
		snprintf(err, errlen, "cloud_init: not JSON");
	json_object_put(v);
	return r;
}

/* The VM's request, or NULL when it gets no seed. */
static json_object *request_of(cvmm_vm *vm)
{
	const char *json = host->vm_request_field(vm, "cloud_init");
	if (!json)
		return NULL;
	json_object *v = json_tokener_parse(json);
	if (v && json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v)) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

static void seed_paths(cvmm_vm *vm, char *dir, size_t dl, char *iso, size_t il)
{
	snprintf(dir, dl, "%s/cloud-init", host->vm_data_dir(vm));
	snprintf(iso, il, "%s/seed.iso", dir);
}

static int add_disk(cvmm_spec *spec, const char *iso)
{
	struct cvmm_spec_disk d = {
	    .struct_size = sizeof(d), .format = CVMM_DISK_RAW, .readonly = 1};
	snprintf(d.id, sizeof(d.id), "seed");
	snprintf(d.path, sizeof(d.path), "%s", iso);
	return host->spec_add_disk(spec, &d);
}

/* 1 if path holds exactly text, 0 if not (or absent). */
static int same_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = strlen(text), i = 0;
	int c, same = 1;
	while ((c = fgetc(f)) != EOF && same)
		same = i < n && c == (unsigned char)text[i++];
	fclose(f);
	return same && i == n;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text), off = 0;
	while (off < n) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		off += (size_t)w;
	}
	return close(fd) < 0 ? -errno : 0;
}

static int make_seed(cvmm_vm *vm, json_object *req, const char *dir, const char *iso)
{
	struct ci_input in = {
	    .instance_id = host->vm_id(vm), .vm_name = host->vm_name(vm), .req = req};
	uint32_t n = host->vm_nic_count(vm);
	for (uint32_t i = 0; i < n && i < CI_MAX_NICS; i++) {
		struct cvmm_nic_info ni = {.struct_size = sizeof(ni)};
		if (host->vm_nic_info(vm, i, &ni) < 0)
			continue;
		struct ci_nic *c = &in.nics[in.n_nics++];
		snprintf(c->mac, sizeof(c->mac), "%s", ni.mac);
		snprintf(c->addr, sizeof(c->addr), "%s", ni.addr);
		snprintf(c->gateway, sizeof(c->gateway), "%s", ni.gateway);
		snprintf(c->dns, sizeof(c->dns), "%s", ni.dns);
	}
	static const char *const names[3] = {"meta-data", "user-data", "network-config"};
	char *text[3] = {ci_meta_data(&in), ci_user_data(&in), ci_network_config(&in)};
	char path[3][600], tmp[640], out[2048];
	int r = 0, same = 1;
	if (!text[0] || !text[1] || !text[2]) {
		r = host->error(self, vm, -ENOMEM, "cloud-init: out of memory");
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = host->error(self, vm, -errno, "cloud-init: %s: %s", dir, strerror(errno));
		goto out;
	}
	for (int k = 0; k < 3; k++) {
		snprintf(path[k], sizeof(path[k]), "%s/%s", dir, names[k]);
		same &= same_file(path[k], text[k]);
	}
	if (same && access(iso, R_OK) == 0)
		goto out; /* the guest gets the very seed it saw before */
	for (int k = 0; k < 3; k++)
		if ((r = write_text(path[k], text[k])) < 0) {
			r = host->error(self, vm, r, "cloud-init: %s: %s", path[k], strerror(-r));
			goto out;
		}
	snprintf(tmp, sizeof(tmp), "%s.new", iso);
	unlink(tmp);
	char *argv[] = {(char *)xorriso, "-as", "mkisofs", "-quiet", "-o",    tmp,     "-V",
	                "cidata",        "-J",  "-R",      path[0],  path[1], path[2], NULL};
	r = cp_run_capture(argv, out, sizeof(out));
	if (r != 0) {
		unlink(tmp);
		size_t l = strlen(out);
		while (l && out[l - 1] == '\n')
			out[--l] = 0;
		r = host->error(self, vm, r < 0 ? r : -EIO, "cloud-init: %s failed making %s: %s",
		                xorriso, iso, out[0] ? out : "no message");
		goto out;
	}
	if (rename(tmp, iso) < 0) {
		r = host->error(self, vm, -errno, "cloud-init: %s: %s", iso, strerror(errno));
		unlink(tmp);
		goto out;
	}
	host->log(self, CVMM_LOG_INFO, "VM '%s': cloud-init seed %s (re)made", host->vm_name(vm),
	          iso);
out:
	for (int k = 0; k < 3; k++)
		free(text[k]);
	return r;
}

static int hook(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	json_object *req = request_of(vm);
	if (!req)
		return 0;
	char dir[512], iso[600];
	seed_paths(vm, dir, sizeof(dir), iso, sizeof(iso));
	int r = 0;
	if (event == CVMM_EV_PRE_START)
		r = make_seed(vm, req, dir, iso);
	if (r == 0 && spec)
		r = add_disk(spec, iso);
	json_object_put(req);
	return r;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	(void)abi_minor;
	CVMM_PLUGIN_DESCRIBE(desc, "cloud-init", "0.1.0",
	                     "NoCloud seed (user, SSH keys, packages, network-config) per VM");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if (!CVMM_HOST_HAS(host, vm_nic_info) || !CVMM_HOST_HAS(host, register_request_field))
		return host->error(self, NULL, -ENOTSUP,
		                   "cloud-init needs a host with ABI 1.2's vm_nic_info");
	int r = host->cfg_string(self, "xorriso", &xorriso);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == -ENOENT)
		xorriso = "xorriso";
	if ((r = host->register_request_field(self, "cloud_init", validate, NULL)) < 0 ||
	    (r = host->register_hook(self, CVMM_EV_PRE_START, 80, hook, NULL)) < 0 ||
	    (r = host->register_hook(self, CVMM_EV_PLAN, 80, hook, NULL)) < 0)
		return r;
	return 0;
}
