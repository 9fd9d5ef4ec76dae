/*
 * confidential: "confidential": {"type": "tdx" | "sev-snp" | "sev", ...}
 * on a VM. The plugin checks the request, decides at each start whether
 * this host can launch the type at all (KVM, the CPU's TEE as KVM reports
 * it, the firmware build, the QEMU object) and refuses with every reason
 * when not; otherwise it puts the confidential part into the launch spec,
 * which both backends render (render.c: -object tdx-guest / sev-snp-guest
 * / sev-guest and confidential-guest-support; render_xml.c:
 * <launchSecurity>). GET /v1/host lists per type {supported, why} under
 * "confidential" (what `cvmm check` shows).
 *
 * Create field: {"type": "...", "firmware": PATH, "policy": N,
 *   "cbitpos": N, "reduced_phys_bits": N, "mrconfigid": BASE64(48 bytes),
 *   "host_data": BASE64(32 bytes), "kernel_hashes": BOOL}; only type is
 *   required.
 * plugin.confidential: firmware_tdx, firmware_sev_snp, firmware_sev
 *   (default: the first that exists of the Debian/Ubuntu/Fedora names),
 *   qemu (default plugin.backend-qemu.qemu, else qemu-system-x86_64),
 *   sysfs (root of /sys/module and /dev, for tests; default "/").
 */
#include "trust.h"

#include <cvmm/plugin.h>
#include <json-c/json.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static const char *qemu = "qemu-system-x86_64";
static const char *root = "";
static const char *firmware_cfg[4];

static const char *const type_names[] = {NULL, "tdx", "sev-snp", "sev"};
static const char *const qemu_objects[] = {NULL, "tdx-guest", "sev-snp-guest", "sev-guest"};
/* Where distributions put each build (Debian 13 / Ubuntu / Fedora names). */
static const char *const fw_candidates[4][5] = {
    {NULL},
    {"/usr/share/ovmf/OVMF.inteltdx.fd", "/usr/share/OVMF/OVMF.inteltdx.fd",
     "/usr/share/qemu/OVMF.inteltdx.fd", "/usr/share/edk2/ovmf/OVMF.inteltdx.fd", NULL},
    {"/usr/share/ovmf/AMDSEV.fd", "/usr/share/OVMF/OVMF.amdsev.fd",
     "/usr/share/ovmf/OVMF.amdsev.fd", "/usr/share/edk2/ovmf/OVMF.amdsev.fd", NULL},
    {"/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd", "/usr/share/qemu/OVMF.fd", NULL},
};
/* What KVM says about the CPU's TEE (module parameter under root). */
static const char *const kvm_param[] = {NULL, "/sys/module/kvm_intel/parameters/tdx",
					"/sys/module/kvm_amd/parameters/sev_snp",
					"/sys/module/kvm_amd/parameters/sev"};

static int type_of(const char *s)
{
	for (int t = 1; t <= 3; t++)
		if (!strcmp(s, type_names[t]))
			return t;
	return 0;
}

/* ---- what this host can do ---- */

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int probed;
static char qemu_objs[8192]; /* `qemu -object help`, or "" */
static char qemu_why[256];

/* Runs `qemu -object help` once (bounded by its own exit; no shell). */
static void probe_qemu(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(qemu_why, sizeof(qemu_why), "cannot run %s: %s", qemu, strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, 0);
			dup2(dn, 2);
		}
		execlp(qemu, qemu, "-machine", "none", "-object", "help", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t k;
	while (pid > 0 && (k = read(p[0], qemu_objs + n, sizeof(qemu_objs) - 1 - n)) > 0)
		n += (size_t)k;
	qemu_objs[n] = 0;
	close(p[0]);
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(qemu_why, sizeof(qemu_why), "%s -object help failed (QEMU not usable)",
			 qemu);
		qemu_objs[0] = 0;
	}
}

static int qemu_knows(const char *obj)
{
	char want[64];
	snprintf(want, sizeof(want), "  %s\n", obj);
	return strstr(qemu_objs, want) != NULL;
}

static const char *firmware_for(int t, int *exists)
{
	if (firmware_cfg[t]) {
		*exists = access(firmware_cfg[t], R_OK) == 0;
		return firmware_cfg[t];
	}
	for (int i = 0; fw_candidates[t][i]; i++)
		if (access(fw_candidates[t][i], R_OK) == 0) {
			*exists = 1;
			return fw_candidates[t][i];
		}
	*exists = 0;
	return fw_candidates[t][0];
}

static int param_on(const char *rel)
{
	char path[512], v[8] = "";
	snprintf(path, sizeof(path), "%s%s", root, rel);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(v, sizeof(v), f))
		v[0] = 0;
	fclose(f);
	return v[0] == 'Y' || v[0] == 'y' || v[0] == '1';
}

/* 1 if this host can launch type t, else 0 with every reason in why. */
static int can_launch(int t, char *why, size_t len)
{
	char path[512];
	size_t w = 0;
	why[0] = 0;
#define WHY(...)                                                                                   \
	do {                                                                                       \
		if (w < len)                                                                       \
			w += (size_t)snprintf(why + w, len - w, "%s", w ? "; " : "");              \
		if (w < len)                                                                       \
			w += (size_t)snprintf(why + w, len - w, __VA_ARGS__);                      \
	} while (0)
	snprintf(path, sizeof(path), "%s/dev/kvm", root);
	if (access(path, R_OK | W_OK) != 0)
		WHY("no usable /dev/kvm (KVM is not available: guests run under TCG)");
	int on = param_on(kvm_param[t]);
	const char *mod = t == CVMM_CC_TDX ? "kvm_intel" : "kvm_amd";
	if (on < 0)
		WHY("CPU: %s is not loaded or has no '%s' parameter (%s)", mod,
		    strrchr(kvm_param[t], '/') + 1, kvm_param[t]);
	else if (on == 0)
		WHY("CPU: %s reports %s=N (%s off or not supported by this CPU/firmware)", mod,
		    strrchr(kvm_param[t], '/') + 1, t == CVMM_CC_TDX ? "TDX" : t == CVMM_CC_SEV ? "SEV" : "SEV-SNP");
	if (t != CVMM_CC_TDX) {
		snprintf(path, sizeof(path), "%s/dev/sev", root);
		if (access(path, R_OK | W_OK) != 0)
			WHY("no /dev/sev (the AMD secure processor's device)");
	}
	int fw_ok;
	const char *fw = firmware_for(t, &fw_ok);
	if (!fw_ok)
		WHY("firmware: %s not found%s", fw,
		    firmware_cfg[t] ? "" : " (nor the other usual names; set plugin.confidential.firmware_*)");
	pthread_mutex_lock(&probe_lock);
	if (!probed) {
		probe_qemu();
		probed = 1;
	}
	if (!qemu_objs[0])
		WHY("%s", qemu_why);
	else if (!qemu_knows(qemu_objects[t]))
		WHY("QEMU (%s) has no %s object (%s)", qemu, qemu_objects[t],
		    t == CVMM_CC_TDX	   ? "TDX guests need QEMU 10.1 or later"
		    : t == CVMM_CC_SEV_SNP ? "SEV-SNP guests need QEMU 9.1 or later"
					   : "built without SEV");
	pthread_mutex_unlock(&probe_lock);
#undef WHY
	return w == 0;
}

/* ---- the request field ---- */

static int b64_ok(const char *s, size_t bytes)
{
	size_t l = strlen(s);
	if (l != 4 * ((bytes + 2) / 3))
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == l;
}

/* Parses the field into cc (firmware left empty when not given). */
static int parse(const char *json, struct cvmm_spec_confidential *cc, char *err, size_t errlen)
{
	static const char *const keys[] = {"type",	"firmware",  "policy",	"cbitpos",
					   "reduced_phys_bits", "mrconfigid", "host_data",
					   "kernel_hashes", NULL};
	json_object *o = json_tokener_parse(json), *v;
	int r = -EINVAL;
	memset(cc, 0, sizeof(*cc));
	cc->struct_size = sizeof(*cc);
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "confidential: must be an object {\"type\": \"tdx\"|\"sev-snp\"|\"sev\", ...}");
		goto out;
	}
	json_object_object_foreach(o, k, val)
	{
		(void)val;
		int i = 0;
		while (keys[i] && strcmp(keys[i], k))
			i++;
		if (!keys[i]) {
			snprintf(err, errlen, "confidential.%s: unknown field", k);
			goto out;
		}
	}
	if (!json_object_object_get_ex(o, "type", &v) || !json_object_is_type(v, json_type_string) ||
	    !(cc->type = (uint32_t)type_of(json_object_get_string(v)))) {
		snprintf(err, errlen, "confidential.type: must be \"tdx\", \"sev-snp\" or \"sev\"");
		goto out;
	}
	if (json_object_object_get_ex(o, "firmware", &v)) {
		const char *f = json_object_get_string(v);
		if (!json_object_is_type(v, json_type_string) || f[0] != '/' ||
		    strlen(f) >= sizeof(cc->firmware) || strpbrk(f, "\n\r")) {
			snprintf(err, errlen, "confidential.firmware: must be an absolute path");
			goto out;
		}
		strcpy(cc->firmware, f);
	}
	const char *nums[] = {"policy", "cbitpos", "reduced_phys_bits"};
	for (int i = 0; i < 3; i++)
		if (json_object_object_get_ex(o, nums[i], &v)) {
			int64_t x = json_object_get_int64(v);
			if (!json_object_is_type(v, json_type_int) || x < 0 ||
			    (i > 0 && x > 63) || (i == 0 && x > 0xffffffffLL)) {
				snprintf(err, errlen, "confidential.%s: out of range", nums[i]);
				goto out;
			}
			if (cc->type == CVMM_CC_TDX && i > 0) {
				snprintf(err, errlen, "confidential.%s: only for sev and sev-snp", nums[i]);
				goto out;
			}
			if (i == 0)
				cc->policy = (uint64_t)x;
			else if (i == 1)
				cc->cbitpos = (uint32_t)x;
			else
				cc->reduced_phys_bits = (uint32_t)x;
		}
	if (json_object_object_get_ex(o, "mrconfigid", &v)) {
		if (cc->type != CVMM_CC_TDX || !json_object_is_type(v, json_type_string) ||
		    !b64_ok(json_object_get_string(v), 48)) {
			snprintf(err, errlen, "confidential.mrconfigid: tdx only, base64 of 48 bytes");
			goto out;
		}
		strcpy(cc->mrconfigid, json_object_get_string(v));
	}
	if (json_object_object_get_ex(o, "host_data", &v)) {
		if (cc->type != CVMM_CC_SEV_SNP || !json_object_is_type(v, json_type_string) ||
		    !b64_ok(json_object_get_string(v), 32)) {
			snprintf(err, errlen, "confidential.host_data: sev-snp only, base64 of 32 bytes");
			goto out;
		}
		strcpy(cc->host_data, json_object_get_string(v));
	}
	if (json_object_object_get_ex(o, "kernel_hashes", &v)) {
		if (!json_object_is_type(v, json_type_boolean) || cc->type == CVMM_CC_TDX) {
			snprintf(err, errlen, "confidential.kernel_hashes: a boolean, sev and sev-snp only");
			goto out;
		}
		cc->kernel_hashes = (uint32_t)json_object_get_boolean(v);
	}
	r = 0;
out:
	json_object_put(o);
	return r;
}

static int v_confidential(void *data, const char *json, char *err, size_t errlen)
{
	(void)data;
	struct cvmm_spec_confidential cc;
	return parse(json, &cc, err, errlen);
}

/* PRE_START: refuse what this host cannot launch; PLAN: render only. */
static int on_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	const char *f = host->vm_request_field(vm, "confidential");
	struct cvmm_spec_confidential cc;
	char err[1024];
	if (!f)
		return 0;
	if (parse(f, &cc, err, sizeof(err)))
		return host->error(self, vm, -EINVAL, "%s", err);
	if (event == CVMM_EV_PRE_START && !can_launch((int)cc.type, err, sizeof(err)))
		return host->error(self, vm, -ENOTSUP,
				   "confidential %s: this host cannot launch it: %s",
				   type_names[cc.type], err);
	if (!cc.firmware[0]) {
		int ok;
		snprintf(cc.firmware, sizeof(cc.firmware), "%s", firmware_for((int)cc.type, &ok));
	}
	return host->spec_set_confidential(spec, &cc);
}

static int host_info(void *data, char *buf, size_t len)
{
	(void)data;
	json_object *o = json_object_new_object();
	char why[1024];
	for (int t = 1; t <= 3; t++) {
		int ok = can_launch(t, why, sizeof(why)), fw_ok;
		json_object *j = json_object_new_object();
		json_object_object_add(j, "supported", json_object_new_boolean(ok));
		json_object_object_add(j, "why", json_object_new_string(ok ? "" : why));
		json_object_object_add(j, "firmware", json_object_new_string(firmware_for(t, &fw_ok)));
		json_object_object_add(j, "qemu_object", json_object_new_boolean(qemu_knows(qemu_objects[t])));
		json_object_object_add(o, type_names[t], j);
	}
	int w = cp_answer(buf, len, json_object_to_json_string_ext(
					    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return w;
}

/* The readiness report's items (cvmm check): one per type, "warn" where
 * this host cannot launch it (a confidential guest is optional), with what
 * it would take. */
static int check_items(void *data, char *buf, size_t len)
{
	(void)data;
	static const char *const fix[] = {
	    NULL,
	    "an Intel CPU with TDX enabled in firmware, kvm_intel loaded with tdx=Y, a QEMU with "
	    "the tdx-guest object (10.1+) and a TDX OVMF (plugin.confidential.firmware_tdx)",
	    "an AMD CPU with SEV-SNP enabled in firmware, kvm_amd loaded with sev_snp=Y, a QEMU "
	    "with the sev-snp-guest object (9.1+) and an SEV OVMF (firmware_sev_snp)",
	    "an AMD CPU with SEV enabled in firmware, kvm_amd loaded with sev=Y, /dev/sev, and an "
	    "SEV OVMF (firmware_sev)"};
	json_object *a = json_object_new_array();
	char why[1024], name[64], detail[1200];
	for (int t = 1; t <= 3; t++) {
		int ok = can_launch(t, why, sizeof(why)), fw_ok;
		json_object *j = json_object_new_object();
		snprintf(name, sizeof(name), "confidential_%s", type_names[t]);
		if (ok)
			snprintf(detail, sizeof(detail), "%s guests can be launched (firmware %s)",
				 type_names[t], firmware_for(t, &fw_ok));
		else
			snprintf(detail, sizeof(detail), "%s guests cannot be launched: %s", type_names[t],
				 why);
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "status", json_object_new_string(ok ? "ok" : "warn"));
		json_object_object_add(j, "detail", json_object_new_string(detail));
		json_object_object_add(j, "fix", json_object_new_string(ok ? "" : fix[t]));
		json_object_array_add(a, j);
	}
	int w = cp_answer(buf, len, json_object_to_json_string_ext(
					    a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(a);
	return w;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t major, uint32_t minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "confidential", "1.0",
			     "TDX, SEV-SNP and SEV guests: request, host checks, launch spec");
	(void)minor;
	struct cp_plugin pl;
	int r = cp_plugin_open(&pl, major, h, p, "confidential",
			       CVMM_HOST_HAS(h, spec_set_confidential), "spec_set_confidential");
	if (r < 0)
		return r;
	host = h;
	self = p;
	const char *s;
	if ((r = host->cfg_string(self, "qemu", &s)) == -ENOENT)
		r = host->cfg_string(self, ".plugin.backend-qemu.qemu", &s);
	if (r == 0)
		qemu = s;
	else if (r != -ENOENT)
		return r;
	if ((r = host->cfg_string(self, "sysfs", &s)) == 0)
		root = strcmp(s, "/") ? s : "";
	else if (r != -ENOENT)
		return r;
	const char *fk[] = {NULL, "firmware_tdx", "firmware_sev_snp", "firmware_sev"};
	for (int t = 1; t <= 3; t++) {
		if ((r = host->cfg_string(self, fk[t], &s)) == 0) {
			if (s[0] != '/')
				return host->error(self, NULL, -EINVAL,
						   "plugin.confidential.%s: must be an absolute path", fk[t]);
			firmware_cfg[t] = s;
		} else if (r != -ENOENT) {
			return r;
		}
	}
	if ((r = host->register_request_field(self, "confidential", v_confidential, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_PRE_START, 10, on_start, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_PLAN, 10, on_start, NULL)) ||
	    (r = host->register_info(self, "confidential", host_info, NULL, NULL)))
		return r;
	if (CVMM_HOST_HAS(h, register_check) &&
	    (r = host->register_check(self, check_items, NULL)))
		return r;
	return 0;
}
