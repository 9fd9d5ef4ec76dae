/*
 * vm: see vm.h. Validation is strict: unknown fields, wrong types and values
 * outside their rule are refused with the field named, before anything is
 * reserved or written.
 */
#include "vm.h"
#include "channel.h"
#include "daemon.h"
#include "events.h"
#include "image.h"
#include "jsonw.h"
#include "registry.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *state_names[] = {"defined", "starting", "running",  "stopping",
                                    "stopped", "exited",   "removing", "failed",
                                    "paused"};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

int vm_state_from_name(const char *n)
{
	for (size_t i = 0; i < ARRAY_SIZE(state_names); i++)
		if (n && !strcmp(n, state_names[i]))
			return (int)i;
	return -1;
}

bool vm_name_valid(const char *name)
{
	size_t l = name ? strlen(name) : 0;
	/* A letter or digit first: "-rf" would read as an option to every
	 * command line it lands on. */
	if (l < 1 || l > 63 || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
				(name[0] >= '0' && name[0] <= '9')))
		return false;
	for (size_t i = 0; i < l; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

struct cvmm_vm *vm_alloc(struct cvmm_daemon *d, const char *id)
{
	struct cvmm_vm *vm = xzalloc(sizeof(*vm));
	vm->d = d;
	vm->refs = 1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->io_lock, NULL);
	vm->pidfd = -1;
	str_copy(vm->id, sizeof(vm->id), id);
	vm->data_dir = xasprintf("%s/vms/%s", d->cfg->data_dir, id);
	vm->run_dir = xasprintf("%s/vms/%s", d->cfg->run_path, id);
	vm->reason = xstrdup("");
	return vm;
}

void vm_set_reason(struct cvmm_vm *vm, const char *reason)
{
	free(vm->reason);
	vm->reason = xstrdup(reason ? reason : "");
}

struct cvmm_vm *vm_ref(struct cvmm_vm *vm)
{
	__atomic_add_fetch(&vm->refs, 1, __ATOMIC_RELAXED);
	return vm;
}

void vm_unref(struct cvmm_vm *vm)
{
	if (vm && __atomic_sub_fetch(&vm->refs, 1, __ATOMIC_ACQ_REL) == 0)
		vm_free(vm);
}

void vm_free(struct cvmm_vm *vm)
{
	if (!vm)
		return;
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->io_lock);
	free(vm->exit_reason);
	for (int i = 0; i < vm->n_fields; i++) {
		free(vm->fields[i].name);
		free(vm->fields[i].json);
	}
	free(vm->fields);
	for (int i = 0; i < vm->n_nics; i++) {
		for (int k = 0; k < vm->nics[i].n; k++) {
			free(vm->nics[i].keys[k]);
			free(vm->nics[i].vals[k]);
		}
		free(vm->nics[i].keys);
		free(vm->nics[i].vals);
	}
	free(vm->nics);
	free(vm->ports);
	for (int i = 0; i < vm->n_volumes; i++)
		free(vm->volumes[i].source);
	free(vm->volumes);
	free(vm->data_dir);
	free(vm->run_dir);
	free(vm->reason);
	for (int i = 0; i < vm->n_kv; i++) {
		free(vm->kv[i].plugin);
		free(vm->kv[i].key);
		free(vm->kv[i].value);
	}
	free(vm->kv);
	free(vm);
}

const char *vm_nic_param(struct cvmm_vm *vm, int i, const char *key)
{
	if (i < 0 || i >= vm->n_nics)
		return NULL;
	for (int k = 0; k < vm->nics[i].n; k++)
		if (!strcmp(vm->nics[i].keys[k], key))
			return vm->nics[i].vals[k];
	return NULL;
}

/* ---- request validation ---- */

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		return -EINVAL;                                                                    \
	} while (0)

static int get_uint(json_object *o, const char *field, const char *key, int64_t min, int64_t max,
                    int64_t *out, char *err, size_t errlen)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		FAIL("%s: must be an integer", field);
	int64_t x = json_object_get_int64(v);
	if (x < min || x > max)
		FAIL("%s: must be between %lld and %lld, got %lld", field, (long long)min,
		     (long long)max, (long long)x);
	*out = x;
	return 0;
}

static int check_keys(json_object *o, const char *where, const char *const *allowed, char *err,
                      size_t errlen)
{
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		bool ok = false;
		for (int i = 0; allowed[i]; i++)
			if (!strcmp(k, allowed[i]))
				ok = true;
		if (!ok)
			FAIL("%s%s: unknown field", where, k);
	}
	return 0;
}

static int parse_ports(struct cvmm_daemon *d, struct cvmm_vm *vm, json_object *a, char *err,
                       size_t errlen)
{
	static const char *const keys[] = {"protocol", "host_address", "host_port", "vm_port",
	                                   NULL};
	if (!json_object_is_type(a, json_type_array))
		FAIL("ports: must be a list");
	size_t n = json_object_array_length(a);
	if (n > VM_MAX_PORTS)
		FAIL("ports: at most %d entries", VM_MAX_PORTS);
	vm->ports = xzalloc(sizeof(*vm->ports) * (n ? n : 1));
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(a, i), *v;
		char f[64];
		snprintf(f, sizeof(f), "ports[%zu].", i);
		if (!json_object_is_type(p, json_type_object))
			FAIL("ports[%zu]: must be an object", i);
		int r = check_keys(p, f, keys, err, errlen);
		if (r)
			return r;
		struct cvmm_port_map *pm = &vm->ports[i];
		pm->struct_size = sizeof(*pm);
		pm->protocol = CVMM_PROTO_TCP;
		if (json_object_object_get_ex(p, "protocol", &v)) {
			const char *s = json_object_get_string(v);
			if (!json_object_is_type(v, json_type_string) ||
			    (strcmp(s, "tcp") && strcmp(s, "udp")))
				FAIL("ports[%zu].protocol: must be \"tcp\" or \"udp\"", i);
			pm->protocol = strcmp(s, "udp") ? CVMM_PROTO_TCP : CVMM_PROTO_UDP;
		}
		const char *addr = d->cfg->pm_address;
		if (json_object_object_get_ex(p, "host_address", &v)) {
			if (!json_object_is_type(v, json_type_string))
				FAIL("ports[%zu].host_address: must be a string", i);
			addr = json_object_get_string(v);
		}
		unsigned char buf[16];
		if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
			FAIL("ports[%zu].host_address: must be a numeric IPv4 or IPv6 address, got "
			     "'%s'",
			     i, addr);
		str_copy(pm->host_address, sizeof(pm->host_address), addr);
		int64_t hp = -1, vp = -1;
		snprintf(f, sizeof(f), "ports[%zu].host_port", i);
		if ((r = get_uint(p, f, "host_port", 1, 65535, &hp, err, errlen)))
			return r;
		snprintf(f, sizeof(f), "ports[%zu].vm_port", i);
		if ((r = get_uint(p, f, "vm_port", 1, 65535, &vp, err, errlen)))
			return r;
		if (hp < 0)
			FAIL("ports[%zu].host_port: required", i);
		if (vp < 0)
			FAIL("ports[%zu].vm_port: required", i);
		pm->host_port = (uint32_t)hp;
		pm->vm_port = (uint32_t)vp;
		vm->n_ports = (int)i + 1;
	}
	return 0;
}

static int nic_add(struct vm_nic *nic, const char *k, const char *v)
{
	if (nic->n >= VM_MAX_NIC_PARAMS)
		return -E2BIG;
	nic->keys = realloc(nic->keys, sizeof(char *) * (size_t)(nic->n + 1));
	nic->vals = realloc(nic->vals, sizeof(char *) * (size_t)(nic->n + 1));
	if (!nic->keys || !nic->vals)
		abort();
	nic->keys[nic->n] = xstrdup(k);
	nic->vals[nic->n] = xstrdup(v);
	nic->n++;
	return 0;
}

bool vm_mac_valid(const char *mac)
{
	unsigned b[6];
	char tail;
	if (!mac || strlen(mac) != 17 ||
	    sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? mac[i] != ':' : !isxdigit((unsigned char)mac[i]))
			return false;
	return !(b[0] & 1) && (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]);
}

static int parse_networks(struct cvmm_daemon *d, struct cvmm_vm *vm, json_object *a, char *err,
                          size_t errlen)
{
	if (!json_object_is_type(a, json_type_array))
		FAIL("networks: must be a list");
	size_t n = json_object_array_length(a);
	if (n > VM_MAX_NICS)
		FAIL("networks: at most %d entries", VM_MAX_NICS);
	vm->nics = xzalloc(sizeof(*vm->nics) * (n ? n : 1));
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(a, i), *mode;
		if (!json_object_is_type(o, json_type_object))
			FAIL("networks[%zu]: must be an object", i);
		if (!json_object_object_get_ex(o, "mode", &mode) ||
		    !json_object_is_type(mode, json_type_string))
			FAIL("networks[%zu].mode: required, a string", i);
		const char *m = json_object_get_string(mode);
		if (d->reg && !registry_netmode(d->reg, m))
			FAIL("networks[%zu].mode: unknown network mode '%s'", i, m);
		struct vm_nic *nic = &vm->nics[vm->n_nics++];
		nic_add(nic, "mode", m);
		json_object_object_foreach(o, k, v)
		{
			if (!strcmp(k, "mode"))
				continue;
			if (strlen(k) > 63 || !vm_name_valid(k))
				FAIL("networks[%zu]: '%.64s' is not a valid parameter name", i, k);
			if (json_object_is_type(v, json_type_object) ||
			    json_object_is_type(v, json_type_array) ||
			    json_object_is_type(v, json_type_null))
				FAIL("networks[%zu].%s: must be a string, number or boolean", i, k);
			const char *s = json_object_get_string(v);
			if (strlen(s) > 255)
				FAIL("networks[%zu].%s: longer than 255 characters", i, k);
			char mac[18];
			if (!strcmp(k, "mac")) {
				/* One rule for every mode; stored lower-case, as
				 * plugins and the kernel print MACs. */
				if (!json_object_is_type(v, json_type_string) || !vm_mac_valid(s))
					FAIL("networks[%zu].mac: must be a unicast MAC address "
					     "aa:bb:cc:dd:ee:ff, got '%.32s'",
					     i, s);
				for (int c = 0; c < 18; c++)
					mac[c] = (char)tolower((unsigned char)s[c]);
				s = mac;
			}
			if (nic_add(nic, k, s) < 0)
				FAIL("networks[%zu]: at most %d parameters", i, VM_MAX_NIC_PARAMS);
		}
	}
	return 0;
}


/* ---- volumes ---- */

bool vm_snapshot_name_valid(const char *name)
{
	size_t l = name ? strlen(name) : 0;
	if (l < 1 || l > 64 || !isalnum((unsigned char)name[0]))
		return false; /* a leading '-' would read as an option to qemu-img */
	for (size_t i = 0; i < l; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

int vm_volume_path(const struct cvmm_vm *vm, const struct vm_volume *v, char *out, size_t len)
{
	if (v->source)
		return str_printf(out, len, "%s", v->source);
	return str_printf(out, len, "%s/vol-%s.qcow2", vm->data_dir, v->name);
}

/* A host path given as a volume's source: it must exist, be a regular file
 * or a block device, and lie outside every VM's folder (one VM writing into
 * another's disk is not a volume). Resolved, so that no symlink or ".."
 * gets around that. */
static int check_source(struct cvmm_daemon *d, const char *field, const char *path, char *out,
                        size_t outlen, bool *raw, char *err, size_t errlen)
{
	if (path[0] != '/')
		FAIL("%s: must be an absolute path, got '%.200s'", field, path);
	char real[PATH_MAX], vms[PATH_MAX + 8];
	if (!realpath(path, real))
		FAIL("%s: '%.200s': %s", field, path, strerror(errno));
	struct stat st;
	if (stat(real, &st) < 0)
		FAIL("%s: '%.200s': %s", field, path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		FAIL("%s: '%.200s' is neither a regular file nor a block device", field, path);
	char data[PATH_MAX];
	const char *base = realpath(d->cfg->data_dir, data) ? data : d->cfg->data_dir;
	snprintf(vms, sizeof(vms), "%s/vms/", base);
	if (!strncmp(real, vms, strlen(vms)))
		FAIL("%s: '%.200s' lies inside a VM's folder (%s): another VM's disk cannot be a "
		     "volume",
		     field, path, vms);
	if (strlen(real) >= 256)
		FAIL("%s: '%.200s': path longer than 255 characters", field, path);
	str_copy(out, outlen, real);
	/* The format from the content: qcow2's magic, else raw. */
	*raw = true;
	int fd = open(real, O_RDONLY | O_CLOEXEC);
	unsigned char magic[4];
	if (fd >= 0) {
		if (read(fd, magic, 4) == 4 && !memcmp(magic, "QFI\xfb", 4))
			*raw = false;
		close(fd);
	}
	return 0;
}

static int parse_volumes(struct cvmm_daemon *d, struct cvmm_vm *vm, json_object *a, char *err,
                         size_t errlen)
{
	static const char *const keys[] = {"name", "size_gb", "source", "readonly", "keep", NULL};
	if (!json_object_is_type(a, json_type_array))
		FAIL("volumes: must be a list");
	size_t n = json_object_array_length(a);
	if (n > VM_MAX_VOLUMES)
		FAIL("volumes: at most %d entries", VM_MAX_VOLUMES);
	vm->volumes = xzalloc(sizeof(*vm->volumes) * (n ? n : 1));
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(a, i), *v;
		char f[64];
		snprintf(f, sizeof(f), "volumes[%zu].", i);
		if (!json_object_is_type(o, json_type_object))
			FAIL("volumes[%zu]: must be an object", i);
		int r = check_keys(o, f, keys, err, errlen);
		if (r)
			return r;
		struct vm_volume *vol = &vm->volumes[vm->n_volumes++];
		bool has_size = json_object_object_get_ex(o, "size_gb", NULL),
		     has_src = json_object_object_get_ex(o, "source", NULL);
		if (has_size == has_src)
			FAIL("volumes[%zu]: give either size_gb (a new disk) or source (a host file or "
			     "block device)",
			     i);
		if (json_object_object_get_ex(o, "name", &v)) {
			const char *name = json_object_get_string(v);
			if (!json_object_is_type(v, json_type_string) || !vm_name_valid(name) ||
			    strlen(name) > 32 || (size_t)json_object_get_string_len(v) != strlen(name))
				FAIL("volumes[%zu].name: must be 1-32 characters of [A-Za-z0-9._-] "
				     "starting with a letter or digit",
				     i);
			str_copy(vol->name, sizeof(vol->name), name);
		} else if (has_size) {
			FAIL("volumes[%zu].name: required for a volume cvmm makes", i);
		} else {
			snprintf(vol->name, sizeof(vol->name), "vol%zu", i);
		}
		for (int k = 0; k < vm->n_volumes - 1; k++)
			if (!strcmp(vm->volumes[k].name, vol->name))
				FAIL("volumes[%zu].name: '%s' is used by volumes[%d] already", i,
				     vol->name, k);
		if (has_size) {
			int64_t gb = 0;
			snprintf(f, sizeof(f), "volumes[%zu].size_gb", i);
			if ((r = get_uint(o, f, "size_gb", 1, 65536, &gb, err, errlen)))
				return r;
			vol->size_gb = (uint32_t)gb;
		} else {
			json_object_object_get_ex(o, "source", &v);
			if (!json_object_is_type(v, json_type_string) ||
			    (size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)))
				FAIL("volumes[%zu].source: must be a string", i);
			char real[PATH_MAX];
			snprintf(f, sizeof(f), "volumes[%zu].source", i);
			if ((r = check_source(d, f, json_object_get_string(v), real, sizeof(real),
			                      &vol->raw, err, errlen)))
				return r;
			for (int k = 0; k < vm->n_volumes - 1; k++)
				if (vm->volumes[k].source && !strcmp(vm->volumes[k].source, real))
					FAIL("volumes[%zu].source: '%s' is volumes[%d] already", i,
					     real, k);
			vol->source = xstrdup(real);
		}
		if (json_object_object_get_ex(o, "readonly", &v)) {
			if (!json_object_is_type(v, json_type_boolean))
				FAIL("volumes[%zu].readonly: must be true or false", i);
			vol->readonly = json_object_get_boolean(v);
		}
		if (json_object_object_get_ex(o, "keep", &v)) {
			if (!json_object_is_type(v, json_type_boolean))
				FAIL("volumes[%zu].keep: must be true or false", i);
			if (has_src)
				FAIL("volumes[%zu].keep: only for volumes cvmm makes (a source is the "
				     "host's and is never removed)",
				     i);
			vol->keep = json_object_get_boolean(v);
		}
	}
	return 0;
}

#define GIB (1024ull * 1024 * 1024)

/* "2 GiB", "2.5 GiB", "64 MiB": a disk's size as users think of it. */
static void fmt_size(uint64_t bytes, char *out, size_t len)
{
	if (bytes % GIB == 0)
		snprintf(out, len, "%llu GiB", (unsigned long long)(bytes / GIB));
	else if (bytes >= GIB)
		snprintf(out, len, "%.1f GiB", (double)bytes / (double)GIB);
	else
		snprintf(out, len, "%.0f MiB", (double)bytes / (1024.0 * 1024.0));
}

/*
 * disk_gb against the image's disk: smaller would cut the guest's file
 * system short (the guest then fails to mount its root while cvmm says
 * running). 0 or absent keeps its old meaning, the image's size: now
 * written as that size in GiB, rounded up, so the API shows the disk the
 * VM gets. An image without a disk gets a blank one of disk_gb, or none.
 */
static int disk_size_rule(struct cvmm_vm *vm, const struct image *img, int64_t want, char *err,
			  size_t errlen)
{
	uint64_t need = vm->base.recorded ? vm->base.virtual_size : 0;
	uint64_t need_gb = (need + GIB - 1) / GIB;
	if (want == 0) {
		if (need_gb > 65536)
			FAIL("disk_gb: image '%s' has a disk larger than 65536 GiB", img->name);
		vm->disk_gb = (uint32_t)need_gb;
		return 0;
	}
	if ((uint64_t)want * GIB < need) {
		char has[32];
		fmt_size(need, has, sizeof(has));
		FAIL("disk_gb: must be at least %llu GiB (image '%s' has a %s disk)",
		     (unsigned long long)need_gb, img->name, has);
	}
	vm->disk_gb = (uint32_t)want;
	return 0;
}

int vm_base_check(struct cvmm_vm *vm, const struct image *img, char *err, size_t errlen)
{
	char disk[600];
	if (str_printf(disk, sizeof(disk), "%s/disk.qcow2", vm->data_dir) < 0) {
		snprintf(err, errlen, "disk: %s/disk.qcow2: path too long", vm->data_dir);
		return -ENAMETOOLONG;
	}
	vm_lock(vm);
	struct image_base_id rec = vm->base;
	vm_unlock(vm);
	if (path_exists(disk) && rec.recorded)
		return image_check_base(img, &rec, vm->name, err, errlen);
	/* No disk yet: it will be made on the file there now, which may have
	 * changed since the create; nothing depends on the old one. A disk
	 * without a record is older than the record: it is taken as is. */
	struct image_base_id now;
	int r = image_base_identify(img, &now, err, errlen);
	if (r < 0)
		return r;
	if (now.recorded && !path_exists(disk) && vm->disk_gb &&
	    (uint64_t)vm->disk_gb * GIB < now.virtual_size) {
		char has[32];
		fmt_size(now.virtual_size, has, sizeof(has));
		snprintf(err, errlen,
			 "disk_gb: VM '%s' has %u GiB, less than image '%s''s disk now has (%s): "
			 "create the VM again with a larger disk_gb",
			 vm->name, vm->disk_gb, img->name, has);
		return -EINVAL;
	}
	vm_lock(vm);
	vm->base = now;
	vm_unlock(vm);
	return 0;
}

int vm_from_request(struct cvmm_daemon *d, json_object *req, struct cvmm_vm **out, bool *start,
                    char *err, size_t errlen)
{
	static const char *const keys[] = {"name",     "image", "vcpu",    "memory_mb", "disk_gb",
	                                   "networks", "ports", "backend", "start",     "volumes",
	                                   NULL};
	int r;
	if (!json_object_is_type(req, json_type_object)) {
		snprintf(err, errlen, "body: must be a JSON object");
		return -EINVAL;
	}
	/* Unknown fields stay refused; a field a plugin registered is its. */
	json_object_object_foreach(req, key, val)
	{
		(void)val;
		bool ok = false;
		for (int i = 0; keys[i]; i++)
			ok |= !strcmp(key, keys[i]);
		if (!ok && !(d->reg && registry_field(d->reg, key)))
			FAIL("%s: unknown field", key);
	}
	char id[37];
	uuid_generate_str(id);
	struct cvmm_vm *vm = vm_alloc(d, id);
	json_object *v;
	r = -EINVAL;
	if (!json_object_object_get_ex(req, "name", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "name: required, a string");
		goto fail;
	}
	/* A NUL inside the string would cut the name short. */
	if (!vm_name_valid(json_object_get_string(v)) ||
	    (size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v))) {
		snprintf(err, errlen,
		         "name: must be 1-63 characters of [A-Za-z0-9._-] starting with a letter or digit, "
		         "got '%.80s'",
		         json_object_get_string(v));
		goto fail;
	}
	str_copy(vm->name, sizeof(vm->name), json_object_get_string(v));
	if (!json_object_object_get_ex(req, "image", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "image: required, a string");
		goto fail;
	}
	struct image img;
	char ierr[512];
	if (image_load(d->cfg->image_path, json_object_get_string(v), &img, ierr, sizeof(ierr)) <
	    0) {
		snprintf(err, errlen, "%s", ierr);
		goto fail;
	}
	str_copy(vm->image, sizeof(vm->image), img.name);
	int64_t x = 1;
	if ((r = get_uint(req, "vcpu", "vcpu", 1, 1024, &x, err, errlen)))
		goto fail;
	vm->vcpu = (uint32_t)x;
	x = 256;
	if ((r = get_uint(req, "memory_mb", "memory_mb", 16, 16 * 1024 * 1024, &x, err, errlen)))
		goto fail;
	vm->memory_mb = (uint64_t)x;
	if ((r = image_base_identify(&img, &vm->base, err, errlen)) < 0)
		goto fail;
	x = 0;
	if ((r = get_uint(req, "disk_gb", "disk_gb", 0, 65536, &x, err, errlen)))
		goto fail;
	r = -EINVAL;
	if ((r = disk_size_rule(vm, &img, x, err, errlen)) < 0)
		goto fail;
	r = -EINVAL;
	const char *backend = d->cfg->default_backend;
	if (json_object_object_get_ex(req, "backend", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			snprintf(err, errlen, "backend: must be a string");
			goto fail;
		}
		backend = json_object_get_string(v);
	}
	if (d->reg && !registry_backend(d->reg, backend)) {
		snprintf(err, errlen, "backend: unknown backend '%.32s'", backend);
		goto fail;
	}
	str_copy(vm->backend, sizeof(vm->backend), backend);
	*start = true;
	if (json_object_object_get_ex(req, "start", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			snprintf(err, errlen, "start: must be true or false");
			goto fail;
		}
		*start = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(req, "networks", &v)) {
		if ((r = parse_networks(d, vm, v, err, errlen)))
			goto fail;
	} else {
		if (d->reg && !registry_netmode(d->reg, d->cfg->net_mode)) {
			snprintf(err, errlen,
			         "networks: the default mode '%s' (cvm.networking.mode) is not "
			         "provided by any loaded plugin",
			         d->cfg->net_mode);
			goto fail;
		}
		vm->nics = xzalloc(sizeof(*vm->nics));
		vm->n_nics = 1;
		nic_add(&vm->nics[0], "mode", d->cfg->net_mode);
	}
	if (json_object_object_get_ex(req, "ports", &v) && (r = parse_ports(d, vm, v, err, errlen)))
		goto fail;
	if (json_object_object_get_ex(req, "volumes", &v) &&
	    (r = parse_volumes(d, vm, v, err, errlen)))
		goto fail;
	if (d->reg && d->reg->n_fields) {
		json_object_object_foreach(req, fkey, fval)
		{
			struct reg_field *f = registry_field(d->reg, fkey);
			if (!f)
				continue;
			const char *text = json_object_to_json_string_ext(fval, JSON_C_TO_STRING_PLAIN);
			err[0] = 0;
			registry_call_begin(err, errlen);
			r = f->validate(f->data, text, err, errlen);
			registry_call_end();
			if (r < 0) {
				if (!err[0])
					snprintf(err, errlen, "%s: refused by plugin %s: %s", fkey,
					         f->plugin->name, strerror(-r));
				goto fail;
			}
			vm_field_set(vm, fkey, text);
		}
	}
	/* An image that runs cloud-init gets a seed for every VM: an empty
	 * request, which the plugin that registered the field fills with its
	 * defaults ("cloud_init": false in the request opts out). */
	if (img.cloud_init && !vm_field_get(vm, "cloud_init")) {
		if (!d->reg || !registry_field(d->reg, "cloud_init")) {
			snprintf(err, errlen,
			         "image '%s' runs cloud-init (metadata.json cloud_init: true), but no "
			         "loaded plugin handles it (load plugin cloud-init)",
			         img.name);
			r = -EINVAL;
			goto fail;
		}
		vm_field_set(vm, "cloud_init", "{}");
	}
	vm->created = now_real();
	vm->state = VM_DEFINED;
	*out = vm;
	return 0;
fail:
	vm_free(vm);
	return r ? r : -EINVAL;
}

/* ---- JSON forms ----
 * Written as text with jsonw: one implementation serves the API (where a
 * list of 1000 VMs must be cheap) and the manifest. */

const char *const vm_api_fields[] = {"id",        "name",     "image",   "backend",      "vcpu",
                                     "memory_mb", "disk_gb",  "cid",     "networks",     "ports",
                                     "created",   "nics",     "state",   "reason",       "desired",
                                     "pid",       "restarts", "started", "next_restart", "fields",
                                     "volumes",   "guest",    "job",      NULL};

/* fields: NULL for all, else a comma-separated list (checked by the caller). */
static bool want(const char *fields, const char *key)
{
	if (!fields)
		return true;
	size_t kl = strlen(key);
	for (const char *p = fields; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == kl && !memcmp(p, key, kl))
			return true;
		p += l + (e ? 1 : 0);
	}
	return false;
}

int vm_check_fields(const char *fields, char *err, size_t errlen)
{
	for (const char *p = fields; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		bool ok = false;
		for (int i = 0; vm_api_fields[i]; i++)
			ok |= strlen(vm_api_fields[i]) == l && !memcmp(vm_api_fields[i], p, l);
		if (!ok) {
			snprintf(err, errlen, "fields: unknown field '%.*s'",
			         (int)(l > 64 ? 64 : l), p);
			return -EINVAL;
		}
		p += l + (e ? 1 : 0);
	}
	return 0;
}

static void write_definition(struct cvmm_vm *vm, struct jw *w, const char *f)
{
	if (want(f, "id"))
		jw_kstr(w, "id", vm->id);
	if (want(f, "name"))
		jw_kstr(w, "name", vm->name);
	if (want(f, "image"))
		jw_kstr(w, "image", vm->image);
	if (want(f, "backend"))
		jw_kstr(w, "backend", vm->backend);
	if (want(f, "vcpu"))
		jw_kint(w, "vcpu", vm->vcpu);
	if (want(f, "memory_mb"))
		jw_kint(w, "memory_mb", (int64_t)vm->memory_mb);
	if (want(f, "disk_gb"))
		jw_kint(w, "disk_gb", vm->disk_gb);
	if (want(f, "cid"))
		jw_kint(w, "cid", vm->cid);
	if (want(f, "networks")) {
		jw_key(w, "networks");
		jw_arr(w);
		for (int i = 0; i < vm->n_nics; i++) {
			jw_obj(w);
			for (int k = 0; k < vm->nics[i].n; k++)
				jw_kstr(w, vm->nics[i].keys[k], vm->nics[i].vals[k]);
			jw_end_obj(w);
		}
		jw_end_arr(w);
	}
	if (want(f, "ports")) {
		jw_key(w, "ports");
		jw_arr(w);
		for (int i = 0; i < vm->n_ports; i++) {
			struct cvmm_port_map *p = &vm->ports[i];
			jw_obj(w);
			jw_kstr(w, "protocol", p->protocol == CVMM_PROTO_UDP ? "udp" : "tcp");
			jw_kstr(w, "host_address", p->host_address);
			jw_kint(w, "host_port", p->host_port);
			jw_kint(w, "vm_port", p->vm_port);
			jw_end_obj(w);
		}
		jw_end_arr(w);
	}
	if (want(f, "created"))
		jw_kdouble(w, "created", vm->created);
	if (vm->n_volumes && want(f, "volumes")) {
		jw_key(w, "volumes");
		jw_arr(w);
		for (int i = 0; i < vm->n_volumes; i++) {
			struct vm_volume *v = &vm->volumes[i];
			jw_obj(w);
			jw_kstr(w, "name", v->name);
			if (v->source) {
				jw_kstr(w, "source", v->source);
				jw_kstr(w, "format", v->raw ? "raw" : "qcow2");
			} else {
				jw_kint(w, "size_gb", v->size_gb);
			}
			jw_kbool(w, "readonly", v->readonly);
			jw_kbool(w, "keep", v->keep);
			jw_end_obj(w);
		}
		jw_end_arr(w);
	}
	if (vm->n_fields && want(f, "fields")) {
		jw_key(w, "fields");
		jw_obj(w);
		for (int i = 0; i < vm->n_fields; i++) {
			jw_key(w, vm->fields[i].name);
			jw_raw(w, vm->fields[i].json, strlen(vm->fields[i].json));
		}
		jw_end_obj(w);
	}
}

const char *vm_field_get(struct cvmm_vm *vm, const char *name)
{
	for (int i = 0; i < vm->n_fields; i++)
		if (!strcmp(vm->fields[i].name, name))
			return vm->fields[i].json;
	return NULL;
}

void vm_field_set(struct cvmm_vm *vm, const char *name, const char *json)
{
	vm->fields = realloc(vm->fields, sizeof(*vm->fields) * (size_t)(vm->n_fields + 1));
	if (!vm->fields)
		abort();
	vm->fields[vm->n_fields++] = (struct vm_field){xstrdup(name), xstrdup(json)};
}

/* Each NIC's mode plus the runtime facts its network plugin published as
 * state keys "nic<i>.<field>" (MAC, socket or TAP, address): the one part
 * of plugin state meant for users; the rest stays inside. */
static void write_nics_runtime(struct cvmm_vm *vm, struct jw *w)
{
	jw_key(w, "nics");
	jw_arr(w);
	for (int i = 0; i < vm->n_nics; i++) {
		jw_obj(w);
		const char *mode = vm_nic_param(vm, i, "mode");
		jw_kstr(w, "mode", mode ? mode : "");
		char prefix[16];
		size_t pl = (size_t)snprintf(prefix, sizeof(prefix), "nic%d.", i);
		bool mac = false;
		for (int k = 0; k < vm->n_kv; k++) {
			const char *key = vm->kv[k].key;
			if (!strncmp(key, prefix, pl) && key[pl] && strcmp(key + pl, "mode")) {
				jw_kstr(w, key + pl, vm->kv[k].value);
				mac |= !strcmp(key + pl, "mac");
			}
		}
		/* A mode that publishes no MAC uses the one asked for. */
		const char *asked = vm_nic_param(vm, i, "mac");
		if (!mac && asked)
			jw_kstr(w, "mac", asked);
		jw_end_obj(w);
	}
	jw_end_arr(w);
}

void vm_write_api(struct cvmm_vm *vm, struct jw *w, const char *f)
{
	jw_obj(w);
	vm_write_api_members(vm, w, f);
	jw_end_obj(w);
}

void vm_write_api_members(struct cvmm_vm *vm, struct jw *w, const char *f)
{
	write_definition(vm, w, f);
	if (want(f, "nics"))
		write_nics_runtime(vm, w);
	if (want(f, "state"))
		jw_kstr(w, "state", vm_state_name(vm->state));
	if (want(f, "reason"))
		jw_kstr(w, "reason", vm->reason);
	if (want(f, "desired"))
		jw_kstr(w, "desired", vm->want_running ? "running" : "stopped");
	if (want(f, "pid"))
		jw_kint(w, "pid", vm->pid);
	if (want(f, "restarts"))
		jw_kint(w, "restarts", vm->restarts);
	if (want(f, "started"))
		jw_kdouble(w, "started", vm->started);
	if (vm->next_restart > 0 && want(f, "next_restart"))
		jw_kdouble(w, "next_restart", vm->next_restart);
	if (want(f, "guest"))
		channel_write_api(vm, w);
	if (want(f, "job")) {
		/* The job running for it and how many wait: a client that needs
		 * the VM quiet (a script, a test) waits for null. */
		const char *op = atomic_load(&vm->job_op);
		int waiting = atomic_load(&vm->jobs_waiting);
		if (!op && !waiting) {
			jw_key(w, "job");
			jw_raw(w, "null", 4);
		} else {
			jw_key(w, "job");
			jw_obj(w);
			if (op)
				jw_kstr(w, "op", op);
			else {
				jw_key(w, "op");
				jw_raw(w, "null", 4);
			}
			jw_kint(w, "waiting", waiting);
			jw_end_obj(w);
		}
	}
}

static json_object *parse_written(struct jw *w)
{
	char *text = jw_take(w, NULL);
	json_object *o = json_tokener_parse(text);
	free(text);
	return o;
}

json_object *vm_to_api(struct cvmm_vm *vm)
{
	struct jw w;
	jw_init(&w);
	vm_write_api(vm, &w, NULL);
	return parse_written(&w);
}

/* 64-bit unsigned values go as decimal strings: JSON readers keep int64 at
 * most, and device numbers and sizes need not fit. */
static const char *u64str(uint64_t v, char buf[24])
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
	return buf;
}

char *vm_manifest_text(struct cvmm_vm *vm, size_t *len)
{
	char num[4][24];
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "version", 1);
	jw_key(&w, "definition");
	jw_obj(&w);
	write_definition(vm, &w, NULL);
	if (vm->base.recorded) {
		/* Only the manifest's: host paths stay out of the API. */
		jw_key(&w, "base");
		jw_obj(&w);
		jw_kstr(&w, "path", vm->base.path);
		jw_kstr(&w, "dev", u64str(vm->base.dev, num[0]));
		jw_kstr(&w, "ino", u64str(vm->base.ino, num[1]));
		jw_kstr(&w, "size", u64str(vm->base.size, num[2]));
		jw_kstr(&w, "virtual_size", u64str(vm->base.virtual_size, num[3]));
		jw_kint(&w, "mtime_ns", vm->base.mtime_ns);
		jw_end_obj(&w);
	}
	jw_end_obj(&w);
	jw_kstr(&w, "state", vm_state_name(vm->state));
	jw_kstr(&w, "reason", vm->reason);
	jw_kbool(&w, "want_running", vm->want_running);
	jw_kint(&w, "pid", vm->pid);
	jw_kdouble(&w, "started", vm->started);
	jw_kint(&w, "restarts", vm->restarts);
	jw_kbool(&w, "defined_ok", vm->defined_ok);
	/* Plugin state grouped by plugin: {"plugins": {"net-user": {...}}}. */
	jw_key(&w, "plugins");
	jw_obj(&w);
	for (int i = 0; i < vm->n_kv; i++) {
		bool seen = false;
		for (int k = 0; k < i; k++)
			seen |= !strcmp(vm->kv[k].plugin, vm->kv[i].plugin);
		if (seen)
			continue;
		jw_key(&w, vm->kv[i].plugin);
		jw_obj(&w);
		for (int k = i; k < vm->n_kv; k++)
			if (!strcmp(vm->kv[k].plugin, vm->kv[i].plugin))
				jw_kstr(&w, vm->kv[k].key, vm->kv[k].value);
		jw_end_obj(&w);
	}
	jw_end_obj(&w);
	jw_end_obj(&w);
	return jw_take(&w, len);
}

json_object *vm_to_manifest(struct cvmm_vm *vm)
{
	char *text = vm_manifest_text(vm, NULL);
	json_object *o = json_tokener_parse(text);
	free(text);
	return o;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}
static int64_t jint(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}
static uint64_t ju64(json_object *o, const char *k)
{
	const char *s = jstr(o, k);
	return s ? strtoull(s, NULL, 10) : 0;
}
static double jdbl(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

int vm_from_manifest(struct cvmm_daemon *d, json_object *o, struct cvmm_vm **out, char *err,
                     size_t errlen)
{
	json_object *def, *v;
	if (!json_object_object_get_ex(o, "definition", &def) ||
	    !json_object_is_type(def, json_type_object)) {
		snprintf(err, errlen, "manifest: definition: missing");
		return -EINVAL;
	}
	const char *id = jstr(def, "id"), *name = jstr(def, "name");
	if (!uuid_valid(id) || !vm_name_valid(name)) {
		snprintf(err, errlen, "manifest: definition: bad id or name");
		return -EINVAL;
	}
	struct cvmm_vm *vm = vm_alloc(d, id);
	str_copy(vm->name, sizeof(vm->name), name);
	str_copy(vm->image, sizeof(vm->image), jstr(def, "image"));
	str_copy(vm->backend, sizeof(vm->backend), jstr(def, "backend"));
	vm->vcpu = (uint32_t)jint(def, "vcpu");
	vm->memory_mb = (uint64_t)jint(def, "memory_mb");
	vm->disk_gb = (uint32_t)jint(def, "disk_gb");
	vm->cid = (uint32_t)jint(def, "cid");
	vm->created = jdbl(def, "created");
	if (json_object_object_get_ex(def, "fields", &v) && json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, fk, fv)
		{
			vm_field_set(vm, fk, json_object_to_json_string_ext(fv, JSON_C_TO_STRING_PLAIN));
		}
	}
	if (json_object_object_get_ex(def, "base", &v) && json_object_is_type(v, json_type_object) &&
	    jstr(v, "path")) {
		struct image_base_id *b = &vm->base;
		str_copy(b->path, sizeof(b->path), jstr(v, "path"));
		b->dev = ju64(v, "dev");
		b->ino = ju64(v, "ino");
		b->size = ju64(v, "size");
		b->virtual_size = ju64(v, "virtual_size");
		b->mtime_ns = jint(v, "mtime_ns");
		b->recorded = true;
	}
	if (json_object_object_get_ex(def, "networks", &v) &&
	    json_object_is_type(v, json_type_array)) {
		vm->nics = xzalloc(sizeof(*vm->nics) * (json_object_array_length(v) + 1));
		for (size_t i = 0; i < json_object_array_length(v) && i < VM_MAX_NICS; i++) {
			json_object *n = json_object_array_get_idx(v, i);
			struct vm_nic *nic = &vm->nics[vm->n_nics++];
			const char *mode = jstr(n, "mode");
			nic_add(nic, "mode", mode ? mode : "");
			/* A damaged entry stays a NIC without a mode, so that the
			 * indices of the NICs after it (nic<i>.* state) hold. */
			if (!json_object_is_type(n, json_type_object))
				continue;
			json_object_object_foreach(n, k, val)
			{
				if (strcmp(k, "mode"))
					nic_add(nic, k, json_object_get_string(val));
			}
		}
	}
	if (json_object_object_get_ex(def, "ports", &v) &&
	    json_object_is_type(v, json_type_array)) {
		vm->ports = xzalloc(sizeof(*vm->ports) * (json_object_array_length(v) + 1));
		for (size_t i = 0; i < json_object_array_length(v) && i < VM_MAX_PORTS; i++) {
			json_object *p = json_object_array_get_idx(v, i);
			struct cvmm_port_map *pm = &vm->ports[vm->n_ports++];
			pm->struct_size = sizeof(*pm);
			const char *proto = jstr(p, "protocol");
			pm->protocol =
			    proto && !strcmp(proto, "udp") ? CVMM_PROTO_UDP : CVMM_PROTO_TCP;
			str_copy(pm->host_address, sizeof(pm->host_address),
			         jstr(p, "host_address"));
			pm->host_port = (uint32_t)jint(p, "host_port");
			pm->vm_port = (uint32_t)jint(p, "vm_port");
		}
	}
	if (json_object_object_get_ex(def, "volumes", &v) &&
	    json_object_is_type(v, json_type_array)) {
		size_t nv = json_object_array_length(v);
		vm->volumes = xzalloc(sizeof(*vm->volumes) * (nv + 1));
		for (size_t i = 0; i < nv && i < VM_MAX_VOLUMES; i++) {
			json_object *e = json_object_array_get_idx(v, i), *b;
			const char *vname = jstr(e, "name"), *src = jstr(e, "source");
			/* A damaged entry is dropped: its name goes into a path. */
			if (!json_object_is_type(e, json_type_object) || !vm_name_valid(vname) ||
			    strlen(vname) > 32)
				continue;
			struct vm_volume *vol = &vm->volumes[vm->n_volumes++];
			str_copy(vol->name, sizeof(vol->name), vname);
			vol->size_gb = (uint32_t)jint(e, "size_gb");
			vol->source = src ? xstrdup(src) : NULL;
			const char *fmt = jstr(e, "format");
			vol->raw = fmt && !strcmp(fmt, "raw");
			vol->readonly = json_object_object_get_ex(e, "readonly", &b) &&
			                json_object_get_boolean(b);
			vol->keep = json_object_object_get_ex(e, "keep", &b) && json_object_get_boolean(b);
		}
	}
	int st = vm_state_from_name(jstr(o, "state"));
	vm->state = st < 0 ? VM_DEFINED : (enum vm_state)st;
	vm->saved_state = vm->state;
	vm_set_reason(vm, jstr(o, "reason"));
	vm->want_running =
	    json_object_object_get_ex(o, "want_running", &v) && json_object_get_boolean(v);
	vm->defined_ok =
	    json_object_object_get_ex(o, "defined_ok", &v) && json_object_get_boolean(v);
	vm->pid = (int)jint(o, "pid");
	vm->started = jdbl(o, "started");
	vm->restarts = (int)jint(o, "restarts");
	if (json_object_object_get_ex(o, "plugins", &v) &&
	    json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, plugin, kvs)
		{
			if (!json_object_is_type(kvs, json_type_object))
				continue;
			json_object_object_foreach(kvs, key, val)
			{
				vm_kv_set(vm, plugin, key, json_object_get_string(val));
			}
		}
	}
	*out = vm;
	return 0;
}

/* ---- events and plugin state ---- */

/* Keeps the newest half of an events.log that grew past its bound. */
static void events_trim(const char *path)
{
	char *text = NULL;
	size_t len;
	if (read_file(path, &text, &len, 4 * VM_EVENTS_LOG_MAX) < 0)
		return;
	const char *keep = text + len / 2;
	while (*keep && *keep != '\n')
		keep++;
	if (*keep)
		keep++;
	write_file_atomic(path, keep, len - (size_t)(keep - text), 0640);
	free(text);
}

int vm_save(struct cvmm_vm *vm)
{
	size_t len;
	char path[600];
	snprintf(path, sizeof(path), "%s/manifest.json", vm->data_dir);
	pthread_mutex_lock(&vm->io_lock);
	vm_lock(vm);
	char *text = vm_manifest_text(vm, &len);
	enum vm_state st = vm->state;
	vm_unlock(vm);
	int r = path_exists(vm->data_dir) ? write_file_atomic(path, text, len, 0640) : -ENOENT;
	if (r == 0) {
		vm_lock(vm);
		vm->saved_state = st;
		vm_unlock(vm);
	}
	pthread_mutex_unlock(&vm->io_lock);
	free(text);
	if (r < 0 && r != -ENOENT)
		log_error("VM '%s': cannot write %s: %s", vm->name, path, strerror(-r));
	return r == -ENOENT ? 0 : r;
}

void vm_event(struct cvmm_vm *vm, const char *type, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	log_info("VM '%s': %s: %s", vm->name, type, message);
	/* Live subscribers first: the ring costs no I/O and never waits. */
	if (vm->d && vm->d->events)
		events_publish(vm->d->events, vm->id, vm->name, type, message);
	char path[600];
	snprintf(path, sizeof(path), "%s/events.log", vm->data_dir);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "time", json_object_new_double(now_real()));
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "message", json_object_new_string(message));
	size_t len;
	const char *line = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	pthread_mutex_lock(&vm->io_lock);
	/* No O_CREAT once the folder is gone: a late event of a removed VM must
	 * not bring its folder back. */
	int fd = path_exists(vm->data_dir)
	             ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)
	             : -1;
	if (fd >= 0) {
		struct iovec iov[2] = {{(void *)line, len}, {"\n", 1}};
		if (writev(fd, iov, 2) < 0)
			log_warn("VM '%s': %s: %s", vm->name, path, strerror(errno));
		off_t size = lseek(fd, 0, SEEK_END);
		close(fd);
		if (size > VM_EVENTS_LOG_MAX)
			events_trim(path);
	}
	pthread_mutex_unlock(&vm->io_lock);
	json_object_put(o);
}

json_object *vm_events_json(const struct cvmm_vm *vm, int max)
{
	json_object *a = json_object_new_array();
	char path[600], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/events.log", vm->data_dir);
	if (read_file(path, &text, &len, 4 * VM_EVENTS_LOG_MAX) == 0) {
		/* Start max lines from the end. */
		char *start = text + len;
		int lines = 0;
		while (start > text && lines <= max)
			if (*--start == '\n')
				lines++;
		if (*start == '\n')
			start++;
		for (char *save = NULL, *line = strtok_r(start, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			json_object *e = json_tokener_parse(line);
			if (e && json_object_is_type(e, json_type_object))
				json_object_array_add(a, e);
			else
				json_object_put(e);
		}
		free(text);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "events", a);
	return o;
}

const char *vm_kv_get(struct cvmm_vm *vm, const char *plugin, const char *key)
{
	for (int i = 0; i < vm->n_kv; i++)
		if (!strcmp(vm->kv[i].plugin, plugin) && !strcmp(vm->kv[i].key, key))
			return vm->kv[i].value;
	return NULL;
}

void vm_kv_set(struct cvmm_vm *vm, const char *plugin, const char *key, const char *value)
{
	for (int i = 0; i < vm->n_kv; i++) {
		if (strcmp(vm->kv[i].plugin, plugin) || strcmp(vm->kv[i].key, key))
			continue;
		free(vm->kv[i].value);
		if (value) {
			vm->kv[i].value = xstrdup(value);
		} else {
			free(vm->kv[i].plugin);
			free(vm->kv[i].key);
			vm->kv[i] = vm->kv[--vm->n_kv];
		}
		return;
	}
	if (!value)
		return;
	vm->kv = realloc(vm->kv, sizeof(*vm->kv) * (vm->n_kv + 1));
	if (!vm->kv)
		abort();
	vm->kv[vm->n_kv++] = (struct vm_kv){xstrdup(plugin), xstrdup(key), xstrdup(value)};
}
