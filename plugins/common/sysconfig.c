/*
 * sysconfig: see sysconfig.h.
 */
#include "sysconfig.h"
#include "fwcfg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DOC_MAX (64 * 1024)

int sysconfig_is_owner(const struct cvmm_host_api *host, cvmm_plugin *self, const char *me,
		       const char *const *members)
{
	int n = host->cfg_count(self, ".plugins");
	for (int i = 0; i < n; i++) {
		const char *s;
		if (host->cfg_string_at(self, ".plugins", (uint32_t)i, &s) < 0)
			continue;
		for (int k = 0; members[k]; k++)
			if (!strcmp(s, members[k]))
				return !strcmp(s, me);
	}
	/* No list to read (an embedding application loads plugins its own
	 * way): the first member owns it, as if listed in that order. */
	return !strcmp(members[0], me);
}

static int write_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t left = strlen(text);
	int rc = 0;
	while (left && !rc) {
		ssize_t w = write(fd, text, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = w < 0 ? -errno : -EIO;
		else {
			text += w;
			left -= (size_t)w;
		}
	}
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static json_object *read_doc(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = malloc(DOC_MAX + 1);
	size_t n = buf ? fread(buf, 1, DOC_MAX, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = 0;
	json_object *o = json_tokener_parse(buf);
	free(buf);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

int sysconfig_put(const struct cvmm_host_api *host, cvmm_plugin *self, cvmm_vm *vm,
		  cvmm_spec *spec, uint32_t event, int owner, json_object *part)
{
	char path[PATH_MAX];
	int rc = 0;
	snprintf(path, sizeof(path), "%s/%s", host->vm_run_dir(vm), SYSCONFIG_FILE);
	if (event == CVMM_EV_PLAN) {
		if (owner && (rc = cp_spec_add_fw_cfg(host, spec, SYSCONFIG_FW_CFG, path)) < 0)
			return host->error(self, vm, rc, "the launch spec refused the fw_cfg entry %s",
					   SYSCONFIG_FW_CFG);
		return 0;
	}
	json_object *doc = owner ? NULL : read_doc(path);
	if (!doc) {
		/* The owner, or a merger whose owner wrote nothing: the
		 * document starts with the VM's identity. */
		char inst[64];
		size_t k = 0;
		for (const char *c = host->vm_id(vm); *c && k + 1 < sizeof(inst); c++)
			if (*c != '-')
				inst[k++] = *c;
		inst[k] = 0;
		doc = json_object_new_object();
		json_object_object_add(doc, "vm_id", json_object_new_string(host->vm_id(vm)));
		json_object_object_add(doc, "instance_id", json_object_new_string(inst));
		json_object_object_add(doc, "name", json_object_new_string(host->vm_name(vm)));
		json_object_object_add(doc, "host_api",
				       json_object_new_string("virtio-serial:org.cvmm.channel.0"));
	}
	json_object_object_foreach(part, key, val)
	    json_object_object_add(doc, key, json_object_get(val));
	const char *text = json_object_to_json_string_ext(
	    doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(text) > DOC_MAX)
		rc = -EFBIG;
	else
		rc = write_atomic(path, text);
	json_object_put(doc);
	if (rc < 0)
		return host->error(self, vm, rc, "writing %s: %s", path, strerror(-rc));
	if (owner && (rc = cp_spec_add_fw_cfg(host, spec, SYSCONFIG_FW_CFG, path)) < 0)
		return host->error(self, vm, rc, "the launch spec refused the fw_cfg entry %s",
				   SYSCONFIG_FW_CFG);
	return 0;
}
