/*
 * Unit tests of core/vm.c: vm_from_request refuses every malformed create
 * request with the field named and accepts the edge cases that are valid; the
 * documented defaults; backend and network-mode lookups against a registry
 * with the real plugins; and the manifest round trip keeping every field and
 * the plugins' key/value state.
 */
#include "config.h"
#include "daemon.h"
#include "registry.h"
#include "util.h"
#include "vm.h"
#include "fake_image.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef CVMM_PLUGIN_BUILD_DIR
#define CVMM_PLUGIN_BUILD_DIR "."
#endif

static char tmpdir[] = "/tmp/cvmm-test-vm.XXXXXX";
static struct cvmm_config cfg;
static struct cvmm_daemon *d;   /* no registry: lookups skipped */
static struct cvmm_daemon *d_r; /* the real plugins loaded */
static struct cvmm_config cfg_r;

/* ---- helpers ------------------------------------------------------------- */

static void check_at(int ok, int line, const char *what)
{
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what, __FILE__, "",
	                        CU_FALSE);
}

/* Runs vm_from_request on text (JSON); returns its rc, the VM in *out. */
static int from_text(struct cvmm_daemon *dd, const char *text, struct cvmm_vm **out, bool *start,
                     char *err, size_t errlen)
{
	json_object *req = json_tokener_parse(text);
	if (!req && strcmp(text, "null")) {
		snprintf(err, errlen, "(test: not JSON)");
		return 1;
	}
	*out = NULL;
	int r = vm_from_request(dd, req, out, start, err, errlen);
	json_object_put(req);
	return r;
}

/* The request is refused with -EINVAL, no VM, and err starting with field. */
static void refused_(struct cvmm_daemon *dd, const char *text, const char *field, const char *frag,
                     int line)
{
	char err[1024] = "";
	struct cvmm_vm *vm = (struct cvmm_vm *)1;
	bool start = false;
	int r = from_text(dd, text, &vm, &start, err, sizeof(err));
	bool named = !strncmp(err, field, strlen(field)) && (!frag || strstr(err, frag));
	if (r != -EINVAL || !named)
		printf("\n    line %d: %s\n      -> %d \"%s\", want -EINVAL \"%s...%s\"\n", line,
		       text, r, err, field, frag ? frag : "");
	check_at(r == -EINVAL, line, "refused with -EINVAL");
	check_at(named, line, "message names the field");
	check_at(vm == NULL, line, "no VM returned");
	if (r == 0)
		vm_free(vm);
}
#define REFUSED(text, field) refused_(d, text, field, NULL, __LINE__)
#define REFUSED_WITH(text, field, frag) refused_(d, text, field, frag, __LINE__)

static struct cvmm_vm *accepted_(struct cvmm_daemon *dd, const char *text, bool *start, int line)
{
	char err[1024] = "";
	struct cvmm_vm *vm = NULL;
	bool st = false;
	int r = from_text(dd, text, &vm, start ? start : &st, err, sizeof(err));
	if (r)
		printf("\n    line %d: %s\n      -> %d \"%s\"\n", line, text, r, err);
	check_at(r == 0 && vm, line, "accepted");
	return r ? NULL : vm;
}
#define ACCEPTED(text) accepted_(d, text, NULL, __LINE__)

static struct cvmm_daemon *new_daemon(struct cvmm_config *c, const char *text, bool plugins)
{
	char err[1024] = "";
	if (config_load_string(c, text, err, sizeof(err)) < 0) {
		fprintf(stderr, "config: %s\n", err);
		return NULL;
	}
	struct cvmm_daemon *dd = daemon_new(c, err, sizeof(err));
	if (!dd) {
		fprintf(stderr, "daemon_new: %s\n", err);
		return NULL;
	}
	if (!plugins) {
		registry_free(dd->reg);
		dd->reg = NULL;
	} else if (registry_load_all(dd->reg, err, sizeof(err)) < 0) {
		fprintf(stderr, "plugins: %s\n", err);
		daemon_free(dd);
		return NULL;
	}
	return dd;
}

/* A qcow2 header saying size (the rest of the file is not read). */
static int write_qcow2(const char *path, uint64_t size)
{
	unsigned char h[104] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
	for (int i = 0; i < 8; i++)
		h[24 + i] = (unsigned char)(size >> (56 - 8 * i));
	return write_file_atomic(path, h, sizeof(h), 0644);
}

/* Image <name> under the test's image path whose hda is size bytes. */
static int make_disk_image(const char *name, uint64_t size)
{
	char *dir = xasprintf("%s/images/%s", tmpdir, name);
	char *k = xasprintf("%s/vmlinuz", dir), *m = xasprintf("%s/metadata.json", dir);
	char *hda = xasprintf("%s/hda.qcow2", dir);
	int r = mkdir_p(dir, 0755) || unit_write_text(k, "kernel") ||
	        unit_write_text(m, "{\"kernel\": \"vmlinuz\", \"hda\": \"hda.qcow2\"}") ||
	        write_qcow2(hda, size);
	free(dir);
	free(k);
	free(m);
	free(hda);
	return r ? -1 : 0;
}

static int suite_init(void)
{
	if (!mkdtemp(tmpdir))
		return -1;
	int r = unit_fake_image(tmpdir);
	if (r || make_disk_image("big", 2560ull << 20) || make_disk_image("small", 64ull << 20))
		return -1;
	char *text = xasprintf("run_path = \"%s/run\";\n"
	                       "data_dir = \"%s/data\";\n"
	                       "image = { path = \"%s/images\"; };\n"
	                       "plugin_dir = \"%s\";\n"
	                       "plugins = [ \"backend-qemu\", \"net-user\" ];\n"
	                       "plugin = { backend-qemu = { accel = \"tcg\"; }; };\n"
	                       "cvm = { port_mapping = { enabled = true; }; };\n",
	                       tmpdir, tmpdir, tmpdir, CVMM_PLUGIN_BUILD_DIR);
	d = new_daemon(&cfg, text, false);
	d_r = new_daemon(&cfg_r, text, true);
	free(text);
	return d && d_r ? 0 : -1;
}

static int suite_clean(void)
{
	daemon_free(d);
	daemon_free(d_r);
	config_free(&cfg);
	config_free(&cfg_r);
	return rm_rf(tmpdir);
}

/* ---- refusals -------------------------------------------------------------- */

static void test_not_an_object(void)
{
	REFUSED("[]", "body: ");
	REFUSED("[{\"name\": \"a\", \"image\": \"tiny\"}]", "body: ");
	REFUSED("\"name\"", "body: ");
	REFUSED("42", "body: ");
	REFUSED("null", "body: ");
}

static void test_unknown_field(void)
{
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"tiny\", \"colour\": \"red\"}",
	             "colour: ", "unknown field");
	/* Refused before anything else is looked at. */
	REFUSED_WITH("{\"colour\": 1}", "colour: ", "unknown field");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"tiny\", \"Name\": \"b\"}",
	             "Name: ", "unknown field");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"tiny\", "
	             "\"ports\": [{\"host_port\": 2000, \"vm_port\": 22, \"hostport\": 1}]}",
	             "ports[0].hostport: ", "unknown field");
}

static void test_missing_required(void)
{
	REFUSED_WITH("{}", "name: ", "required");
	REFUSED_WITH("{\"image\": \"tiny\"}", "name: ", "required");
	REFUSED_WITH("{\"name\": \"a\"}", "image: ", "required");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"tiny\", \"ports\": [{\"vm_port\": 22}]}",
	             "ports[0].host_port: ", "required");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"tiny\", \"ports\": [{\"host_port\": 2000}]}",
	             "ports[0].vm_port: ", "required");
}

static void test_wrong_types(void)
{
#define REQ(extra) "{\"name\": \"a\", \"image\": \"tiny\", " extra "}"
	REFUSED("{\"name\": 5, \"image\": \"tiny\"}", "name: ");
	REFUSED("{\"name\": null, \"image\": \"tiny\"}", "name: ");
	REFUSED("{\"name\": [\"a\"], \"image\": \"tiny\"}", "name: ");
	REFUSED("{\"name\": \"a\", \"image\": 1}", "image: ");
	REFUSED(REQ("\"vcpu\": \"2\""), "vcpu: ");
	REFUSED(REQ("\"vcpu\": 1.5"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": 2.0"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": true"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": null"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": 0"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": -1"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": 1025"), "vcpu: ");
	REFUSED(REQ("\"vcpu\": 99999999999999999999"), "vcpu: ");
	REFUSED_WITH(REQ("\"memory_mb\": 15"), "memory_mb: ", "got 15");
	REFUSED_WITH(REQ("\"memory_mb\": 16777217"), "memory_mb: ", "got 16777217");
	REFUSED(REQ("\"memory_mb\": \"256\""), "memory_mb: ");
	REFUSED(REQ("\"disk_gb\": -1"), "disk_gb: ");
	REFUSED(REQ("\"disk_gb\": 65537"), "disk_gb: ");
	REFUSED(REQ("\"disk_gb\": 1.0"), "disk_gb: ");
	REFUSED(REQ("\"networks\": \"user\""), "networks: ");
	REFUSED(REQ("\"networks\": {\"mode\": \"user\"}"), "networks: ");
	REFUSED(REQ("\"networks\": null"), "networks: ");
	REFUSED(REQ("\"networks\": [{}]"), "networks[0].mode: ");
	REFUSED(REQ("\"networks\": [{\"mode\": \"user\"}, {\"net\": \"10.0.0.0/24\"}]"),
	        "networks[1].mode: ");
	REFUSED(REQ("\"networks\": [{\"mode\": 1}]"), "networks[0].mode: ");
	REFUSED(REQ("\"networks\": [\"user\"]"), "networks[0]: ");
	REFUSED(REQ("\"networks\": [{\"mode\": \"user\", \"mac\": {\"a\": 1}}]"),
	        "networks[0].mac: ");
	REFUSED(REQ("\"networks\": [{\"mode\": \"user\", \"mac\": null}]"), "networks[0].mac: ");
	REFUSED(REQ("\"networks\": [{\"mode\": \"user\", \"bad key\": 1}]"), "networks[0]: ");
	REFUSED(
	    REQ("\"networks\": [{\"mode\": \"user\"}, {\"mode\": \"user\"}, {\"mode\": \"user\"},"
	        "{\"mode\": \"user\"}, {\"mode\": \"user\"}, {\"mode\": \"user\"},"
	        "{\"mode\": \"user\"}, {\"mode\": \"user\"}, {\"mode\": \"user\"}]"),
	    "networks: ");
	REFUSED(REQ("\"ports\": {}"), "ports: ");
	REFUSED(REQ("\"ports\": [5]"), "ports[0]: ");
	REFUSED_WITH(REQ("\"ports\": [{\"host_port\": 0, \"vm_port\": 22}]"),
	             "ports[0].host_port: ", "got 0");
	REFUSED_WITH(REQ("\"ports\": [{\"host_port\": 70000, \"vm_port\": 22}]"),
	             "ports[0].host_port: ", "got 70000");
	REFUSED(REQ("\"ports\": [{\"host_port\": \"x\", \"vm_port\": 22}]"),
	        "ports[0].host_port: ");
	REFUSED(REQ("\"ports\": [{\"host_port\": \"2000\", \"vm_port\": 22}]"),
	        "ports[0].host_port: ");
	REFUSED(REQ("\"ports\": [{\"host_port\": 2000, \"vm_port\": 65536}]"),
	        "ports[0].vm_port: ");
	REFUSED(REQ("\"ports\": [{\"host_port\": 2000, \"vm_port\": 22},"
	            "{\"host_port\": 2001, \"vm_port\": 0}]"),
	        "ports[1].vm_port: ");
	REFUSED(REQ("\"ports\": [{\"protocol\": \"sctp\", \"host_port\": 2000, \"vm_port\": 22}]"),
	        "ports[0].protocol: ");
	REFUSED(REQ("\"ports\": [{\"protocol\": \"TCP\", \"host_port\": 2000, \"vm_port\": 22}]"),
	        "ports[0].protocol: ");
	REFUSED(REQ("\"ports\": [{\"protocol\": 6, \"host_port\": 2000, \"vm_port\": 22}]"),
	        "ports[0].protocol: ");
	REFUSED(REQ("\"ports\": [{\"protocol\": null, \"host_port\": 2000, \"vm_port\": 22}]"),
	        "ports[0].protocol: ");
	REFUSED_WITH(REQ("\"ports\": [{\"host_address\": \"localhost\", \"host_port\": 2000, "
	                 "\"vm_port\": 22}]"),
	             "ports[0].host_address: ", "localhost");
	REFUSED(REQ("\"ports\": [{\"host_address\": \"127.0.0.1:80\", \"host_port\": 2000, "
	            "\"vm_port\": 22}]"),
	        "ports[0].host_address: ");
	REFUSED(REQ("\"ports\": [{\"host_address\": 2130706433, \"host_port\": 2000, "
	            "\"vm_port\": 22}]"),
	        "ports[0].host_address: ");
	REFUSED(REQ("\"start\": \"yes\""), "start: ");
	REFUSED(REQ("\"start\": 1"), "start: ");
	REFUSED(REQ("\"start\": null"), "start: ");
	REFUSED(REQ("\"backend\": 1"), "backend: ");
#undef REQ
}

static void test_names(void)
{
	char long64[65], long63[64], *text;
	memset(long64, 'a', 64);
	long64[64] = 0;
	memset(long63, 'b', 63);
	long63[63] = 0;
	const char *bad[] = {"",
	                     long64,
	                     ".hidden",
	                     "..",
	                     ".",
	                     "a/b",
	                     "/abs",
	                     "a b",
	                     " a",
	                     "a\\tb",
	                     "a\\nb",
	                     "caf\\u00e9",
	                     "\\u00e9",
	                     "\xc3\xa9t\xc3\xa9",
	                     "a:b",
	                     "a*b",
	                     "a@b",
	                     "a$b",
	                     "a;b",
	                     /* a NUL inside must not cut the name short to "a" */ "a\\u0000b",
	                     /* would read as options on a command line */ "-rf", "-", "_x"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		text = xasprintf("{\"name\": \"%s\", \"image\": \"tiny\"}", bad[i]);
		refused_(d, text, "name: ", NULL, __LINE__);
		free(text);
	}
	const char *good[] = {long63, "a.b_c-1", "A", "0", "web-1.example_X", "a..b", "x-"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		text = xasprintf("{\"name\": \"%s\", \"image\": \"tiny\"}", good[i]);
		struct cvmm_vm *vm = accepted_(d, text, NULL, __LINE__);
		if (vm)
			CU_ASSERT_STRING_EQUAL(vm->name, good[i]);
		vm_free(vm);
		free(text);
	}
	CU_ASSERT_TRUE(vm_name_valid(long63));
	CU_ASSERT_FALSE(vm_name_valid(long64));
	CU_ASSERT_FALSE(vm_name_valid(NULL));
	CU_ASSERT_FALSE(vm_name_valid(".x"));
	CU_ASSERT_TRUE(vm_name_valid("x."));
}

static void test_unknown_image(void)
{
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"nope\"}", "image: ", "'nope'");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"../tiny\"}", "image: ", "../tiny");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"\"}", "image: ", NULL);
	/* An image whose metadata names a missing kernel. */
	char *dir = xasprintf("%s/images/broken", tmpdir);
	char *meta = xasprintf("%s/metadata.json", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(dir, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(unit_write_text(meta, "{\"kernel\": \"missing-kernel\"}"), 0);
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"broken\"}", "image 'broken': ", "kernel");
	CU_ASSERT_EQUAL(unit_write_text(meta, "{\"kernel\": \"../tiny/vmlinuz\"}"), 0);
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"broken\"}", "image 'broken': ", "kernel");
	rm_rf(dir);
	free(dir);
	free(meta);
}

/* ---- accepted requests ------------------------------------------------------ */

static void test_defaults(void)
{
	bool start = false;
	double t0 = now_real();
	struct cvmm_vm *vm =
	    accepted_(d, "{\"name\": \"web1\", \"image\": \"tiny\"}", &start, __LINE__);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	CU_ASSERT_TRUE(start);
	CU_ASSERT_STRING_EQUAL(vm->name, "web1");
	CU_ASSERT_STRING_EQUAL(vm->image, "tiny");
	CU_ASSERT_EQUAL(vm->vcpu, 1);
	CU_ASSERT_EQUAL(vm->memory_mb, 256);
	CU_ASSERT_EQUAL(vm->disk_gb, 0);
	CU_ASSERT_STRING_EQUAL(vm->backend, cfg.default_backend);
	CU_ASSERT_STRING_EQUAL(vm->backend, "qemu");
	CU_ASSERT_EQUAL(vm->n_nics, 1);
	CU_ASSERT_EQUAL(vm->nics[0].n, 1);
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 0, "mode"), cfg.net_mode);
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 0, "mode"), "user");
	CU_ASSERT_PTR_NULL(vm_nic_param(vm, 1, "mode"));
	CU_ASSERT_EQUAL(vm->n_ports, 0);
	CU_ASSERT_EQUAL(vm->state, VM_DEFINED);
	CU_ASSERT_FALSE(vm->want_running); /* the API sets it from start */
	CU_ASSERT_EQUAL(vm->cid, 0);       /* assigned by daemon_reserve */
	CU_ASSERT_EQUAL(vm->pidfd, -1);
	CU_ASSERT_PTR_EQUAL(vm->d, d);
	CU_ASSERT_TRUE(uuid_valid(vm->id));
	CU_ASSERT_TRUE(vm->created >= t0 - 1 && vm->created <= now_real() + 1);
	char *dd = xasprintf("%s/data/vms/%s", tmpdir, vm->id);
	char *rd = xasprintf("%s/run/vms/%s", tmpdir, vm->id);
	CU_ASSERT_STRING_EQUAL(vm->data_dir, dd);
	CU_ASSERT_STRING_EQUAL(vm->run_dir, rd);
	free(dd);
	free(rd);
	/* Nothing is written by validation. */
	char *vms = xasprintf("%s/data", tmpdir);
	CU_ASSERT_FALSE(path_exists(vms));
	free(vms);

	/* Two requests get two ids. */
	struct cvmm_vm *other = ACCEPTED("{\"name\": \"web1\", \"image\": \"tiny\"}");
	if (other)
		CU_ASSERT_STRING_NOT_EQUAL(other->id, vm->id);
	vm_free(other);
	vm_free(vm);
}

static void test_all_fields(void)
{
	bool start = true;
	struct cvmm_vm *vm = accepted_(
	    d,
	    "{\"name\": \"full\", \"image\": \"tiny\", \"vcpu\": 1024, \"memory_mb\": 16777216,"
	    " \"disk_gb\": 65536, \"backend\": \"qemu\", \"start\": false,"
	    " \"networks\": [{\"mode\": \"user\", \"mac\": \"52:54:00:00:00:01\", \"restrict\": "
	    "true,"
	    "                 \"mtu\": 1400}, {\"mode\": \"user\"}],"
	    " \"ports\": [{\"protocol\": \"udp\", \"host_address\": \"::1\", \"host_port\": 65535,"
	    "              \"vm_port\": 1}, {\"host_port\": 1, \"vm_port\": 65535}]}",
	    &start, __LINE__);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	CU_ASSERT_FALSE(start);
	CU_ASSERT_EQUAL(vm->vcpu, 1024);
	CU_ASSERT_EQUAL(vm->memory_mb, 16777216);
	CU_ASSERT_EQUAL(vm->disk_gb, 65536);
	CU_ASSERT_EQUAL(vm->n_nics, 2);
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 0, "mac"), "52:54:00:00:00:01");
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 0, "restrict"), "true");
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 0, "mtu"), "1400");
	CU_ASSERT_EQUAL(vm->nics[1].n, 1);
	CU_ASSERT_EQUAL(vm->n_ports, 2);
	CU_ASSERT_EQUAL(vm->ports[0].protocol, CVMM_PROTO_UDP);
	CU_ASSERT_STRING_EQUAL(vm->ports[0].host_address, "::1");
	CU_ASSERT_EQUAL(vm->ports[0].host_port, 65535);
	CU_ASSERT_EQUAL(vm->ports[0].vm_port, 1);
	CU_ASSERT_EQUAL(vm->ports[1].protocol, CVMM_PROTO_TCP);
	CU_ASSERT_STRING_EQUAL(vm->ports[1].host_address, cfg.pm_address);
	CU_ASSERT_EQUAL(vm->ports[1].host_port, 1);
	CU_ASSERT_EQUAL(vm->ports[1].vm_port, 65535);
	CU_ASSERT_EQUAL(vm->ports[1].struct_size, sizeof(struct cvmm_port_map));
	vm_free(vm);
	vm = ACCEPTED("{\"name\": \"m\", \"image\": \"tiny\", \"memory_mb\": 16, \"start\": true}");
	if (vm)
		CU_ASSERT_EQUAL(vm->memory_mb, 16);
	vm_free(vm);
}

static void test_registry_lookups(void)
{
	struct cvmm_vm *vm =
	    accepted_(d_r,
	              "{\"name\": \"a\", \"image\": \"tiny\", \"backend\": \"qemu\","
	              " \"networks\": [{\"mode\": \"user\"}]}",
	              NULL, __LINE__);
	vm_free(vm);
	vm = accepted_(d_r, "{\"name\": \"a\", \"image\": \"tiny\"}", NULL, __LINE__);
	vm_free(vm);
	refused_(d_r, "{\"name\": \"a\", \"image\": \"tiny\", \"backend\": \"libvirt\"}",
	         "backend: ", "'libvirt'", __LINE__);
	refused_(d_r,
	         "{\"name\": \"a\", \"image\": \"tiny\", \"networks\": [{\"mode\": \"user\"}, "
	         "{\"mode\": \"bridge\"}]}",
	         "networks[1].mode: ", "'bridge'", __LINE__);
	/* A default mode no plugin provides is reported as such. */
	char *saved = cfg_r.net_mode;
	cfg_r.net_mode = "vxlan";
	refused_(d_r, "{\"name\": \"a\", \"image\": \"tiny\"}", "networks: ", "'vxlan'", __LINE__);
	cfg_r.net_mode = saved;
}

static void test_disk_size(void)
{
	/* Absent or 0: the image's disk, in GiB rounded up. */
	struct cvmm_vm *vm = ACCEPTED("{\"name\": \"a\", \"image\": \"big\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	CU_ASSERT_EQUAL(vm->disk_gb, 3);
	CU_ASSERT_TRUE(vm->base.recorded);
	CU_ASSERT_EQUAL(vm->base.virtual_size, 2560ull << 20);
	CU_ASSERT_PTR_NOT_NULL(strstr(vm->base.path, "/images/big/hda.qcow2"));
	vm_free(vm);
	vm = ACCEPTED("{\"name\": \"a\", \"image\": \"big\", \"disk_gb\": 0}");
	if (vm)
		CU_ASSERT_EQUAL(vm->disk_gb, 3);
	vm_free(vm);
	vm = ACCEPTED("{\"name\": \"a\", \"image\": \"small\"}");
	if (vm)
		CU_ASSERT_EQUAL(vm->disk_gb, 1);
	vm_free(vm);
	/* Smaller than the image's disk: the guest would not find its root. */
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"big\", \"disk_gb\": 2}", "disk_gb: ",
	             "disk_gb: must be at least 3 GiB (image 'big' has a 2.5 GiB disk)");
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"big\", \"disk_gb\": 1}", "disk_gb: ",
	             "at least 3 GiB");
	/* As large or larger: the disk grows, the guest's file system does not. */
	vm = ACCEPTED("{\"name\": \"a\", \"image\": \"big\", \"disk_gb\": 3}");
	if (vm)
		CU_ASSERT_EQUAL(vm->disk_gb, 3);
	vm_free(vm);
	vm = ACCEPTED("{\"name\": \"a\", \"image\": \"small\", \"disk_gb\": 40}");
	if (vm)
		CU_ASSERT_EQUAL(vm->disk_gb, 40);
	vm_free(vm);
	/* No disk in the image: none, or a blank one of disk_gb. */
	vm = ACCEPTED("{\"name\": \"a\", \"image\": \"tiny\", \"disk_gb\": 5}");
	if (vm) {
		CU_ASSERT_EQUAL(vm->disk_gb, 5);
		CU_ASSERT_FALSE(vm->base.recorded);
	}
	vm_free(vm);
	/* An image whose disk is not a readable qcow2 is refused, named. */
	char *hda = xasprintf("%s/images/small/hda.qcow2", tmpdir);
	CU_ASSERT_EQUAL_FATAL(write_file_atomic(hda, "QFI\xfb\0\0\0\3", 8, 0644), 0);
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"small\"}", "image 'small': hda: ",
	             "not a valid qcow2 file");
	CU_ASSERT_EQUAL(write_qcow2(hda, 64ull << 20), 0);
	free(hda);
}

static void test_macs(void)
{
	static const char *const bad[] = {
	    "01:00:5e:00:00:01",  /* multicast */
	    "ff:ff:ff:ff:ff:ff",  /* broadcast */
	    "00:00:00:00:00:00",  /* nobody's */
	    "52:54:00:ab:cd",     "52:54:00:ab:cd:ef:01", "52-54-00-ab-cd-ef", "52:54:00:ab:cd:eg",
	    "52:54:00:ab:cd:ef ", " 2:54:00:ab:cd:ef",    "5254.00ab.cdef",    "",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *text = xasprintf("{\"name\": \"a\", \"image\": \"tiny\", \"networks\": "
		                       "[{\"mode\": \"user\"}, {\"mode\": \"user\", \"mac\": \"%s\"}]}",
		                       bad[i]);
		refused_(d, text, "networks[1].mac: ", "must be a unicast MAC address", __LINE__);
		free(text);
	}
	REFUSED_WITH("{\"name\": \"a\", \"image\": \"tiny\", \"networks\": [{\"mode\": \"user\", "
	             "\"mac\": 525400}]}",
	             "networks[0].mac: ", "unicast");
	/* Upper case is accepted and kept as plugins print MACs; a locally
	 * administered one is as good as any. */
	struct cvmm_vm *vm = ACCEPTED(
	    "{\"name\": \"a\", \"image\": \"tiny\", \"networks\": [{\"mode\": \"user\", "
	    "\"mac\": \"52:54:00:AB:cD:eF\"}, {\"mode\": \"user\", \"mac\": \"02:00:00:00:00:01\"}, "
	    "{\"mode\": \"user\"}]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 0, "mac"), "52:54:00:ab:cd:ef");
	CU_ASSERT_STRING_EQUAL(vm_nic_param(vm, 1, "mac"), "02:00:00:00:00:01");
	/* The API shows what a NIC's mode published, else the MAC asked for. */
	vm_kv_set(vm, "net-user", "nic1.mac", "52:54:00:00:00:99");
	vm_kv_set(vm, "net-user", "nic2.mac", "52:54:00:00:00:02");
	json_object *o = vm_to_api(vm), *nics = NULL;
	CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(o, "nics", &nics));
	const char *want[] = {"52:54:00:ab:cd:ef", "52:54:00:00:00:99", "52:54:00:00:00:02"};
	for (size_t i = 0; i < 3; i++) {
		json_object *n = json_object_array_get_idx(nics, i), *m = NULL;
		CU_ASSERT_TRUE(json_object_object_get_ex(n, "mac", &m) &&
		               !strcmp(json_object_get_string(m), want[i]));
		/* Once only: the JSON object must not hold the key twice. */
		const char *text = json_object_to_json_string(n);
		CU_ASSERT_PTR_NULL(strstr(strstr(text, "\"mac\"") + 1, "\"mac\""));
	}
	json_object_put(o);
	vm_free(vm);
}

/* Replaces the image's disk file by another (a new version of the image). */
static void replace_hda(const char *image, uint64_t size)
{
	char *hda = xasprintf("%s/images/%s/hda.qcow2", tmpdir, image);
	char *tmp = xasprintf("%s.new", hda);
	CU_ASSERT_EQUAL(write_qcow2(tmp, size), 0);
	CU_ASSERT_EQUAL(rename(tmp, hda), 0);
	free(hda);
	free(tmp);
}

static void test_base_check(void)
{
	struct cvmm_vm *vm = ACCEPTED("{\"name\": \"basevm\", \"image\": \"small\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	struct image img;
	char err[1024] = "";
	char *disk = xasprintf("%s/disk.qcow2", vm->data_dir);
	CU_ASSERT_EQUAL_FATAL(image_load(cfg.image_path, "small", &img, err, sizeof(err)), 0);
	struct image_base_id at_create = vm->base;

	/* Never started: a new image version is simply what the disk is made on. */
	replace_hda("small", 64ull << 20);
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(vm->base.recorded);
	CU_ASSERT_NOT_EQUAL(vm->base.ino, at_create.ino);

	/* Its disk made: the same file passes, a replaced one is refused. */
	CU_ASSERT_EQUAL_FATAL(mkdir_p(vm->data_dir, 0750), 0);
	CU_ASSERT_EQUAL_FATAL(unit_write_text(disk, "overlay"), 0);
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), 0);
	struct image_base_id used = vm->base;
	replace_hda("small", 64ull << 20);
	err[0] = 0;
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), -ESTALE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "image 'small': disk "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/images/small/hda.qcow2 was replaced since VM "
	                                   "'basevm' was created (inode "));
	CU_ASSERT_EQUAL(vm->base.ino, used.ino); /* the record stays */
	/* ... and again at the next try. */
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), -ESTALE);

	/* A VM from before the record: taken as it is, recorded now. */
	memset(&vm->base, 0, sizeof(vm->base));
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(vm->base.recorded);
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), 0);

	/* No disk yet, and the image's disk grew past disk_gb: refused. */
	unlink(disk);
	replace_hda("small", 5ull << 30);
	err[0] = 0;
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "disk_gb: VM 'basevm' has 1 GiB, less than image "
	                                   "'small''s disk now has (5 GiB)"));
	replace_hda("small", 64ull << 20);

	/* Through the manifest: the record survives a daemon restart. */
	CU_ASSERT_EQUAL(vm_base_check(vm, &img, err, sizeof(err)), 0);
	json_object *m = vm_to_manifest(vm);
	struct cvmm_vm *back = NULL;
	CU_ASSERT_EQUAL(vm_from_manifest(d, m, &back, err, sizeof(err)), 0);
	json_object_put(m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_TRUE(back->base.recorded);
	CU_ASSERT_STRING_EQUAL(back->base.path, vm->base.path);
	CU_ASSERT_EQUAL(back->base.dev, vm->base.dev);
	CU_ASSERT_EQUAL(back->base.ino, vm->base.ino);
	CU_ASSERT_EQUAL(back->base.size, vm->base.size);
	CU_ASSERT_EQUAL(back->base.virtual_size, vm->base.virtual_size);
	CU_ASSERT_EQUAL(back->base.mtime_ns, vm->base.mtime_ns);
	/* Host paths stay out of the API. */
	json_object *api = vm_to_api(vm), *v;
	CU_ASSERT_FALSE(json_object_object_get_ex(api, "base", &v));
	json_object_put(api);
	vm_free(back);
	rm_rf(vm->data_dir);
	free(disk);
	vm_free(vm);
}

/* ---- manifest ------------------------------------------------------------ */

static void test_manifest_round_trip(void)
{
	struct cvmm_vm *vm = ACCEPTED(
	    "{\"name\": \"round\", \"image\": \"tiny\", \"vcpu\": 3, \"memory_mb\": 768,"
	    " \"disk_gb\": 7, \"networks\": [{\"mode\": \"user\", \"mac\": \"52:54:00:ab:cd:ef\","
	    " \"net\": \"10.9.0.0/24\"}, {\"mode\": \"passt\"}],"
	    " \"ports\": [{\"protocol\": \"udp\", \"host_port\": 20001, \"vm_port\": 53},"
	    " {\"host_address\": \"127.0.0.1\", \"host_port\": 18080, \"vm_port\": 8080}]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	vm->cid = 1234;
	vm->state = VM_RUNNING;
	vm_set_reason(vm, "a \"quoted\" reason\nwith a newline");
	vm->want_running = true;
	vm->pid = 4242;
	vm->started = vm->created + 1.0625;
	vm->restarts = 3;
	vm->defined_ok = true;
	vm_kv_set(vm, "backend-qemu", "pid", "4242");
	vm_kv_set(vm, "backend-qemu", "starttime", "123456");
	vm_kv_set(vm, "net-user", "mac", "52:54:00:ab:cd:ef");
	vm_kv_set(vm, "net-user", "tmp", "gone soon");
	vm_kv_set(vm, "backend-qemu", "pid", "4243"); /* overwritten */
	vm_kv_set(vm, "net-user", "tmp", NULL);       /* deleted */
	vm_kv_set(vm, "other", "unicode", "\xc3\xa9\xe2\x82\xac");
	CU_ASSERT_EQUAL(vm->n_kv, 4);
	CU_ASSERT_STRING_EQUAL(vm_kv_get(vm, "backend-qemu", "pid"), "4243");
	CU_ASSERT_PTR_NULL(vm_kv_get(vm, "net-user", "tmp"));
	CU_ASSERT_PTR_NULL(vm_kv_get(vm, "net-user", "pid")); /* keys are per plugin */

	/* Through text, as it is stored. */
	json_object *m = vm_to_manifest(vm);
	char *text = xstrdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY));
	json_object_put(m);
	json_object *parsed = json_tokener_parse(text);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(parsed);
	struct cvmm_vm *back = NULL;
	char err[512] = "";
	CU_ASSERT_EQUAL(vm_from_manifest(d, parsed, &back, err, sizeof(err)), 0);
	json_object_put(parsed);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);

	CU_ASSERT_STRING_EQUAL(back->id, vm->id);
	CU_ASSERT_STRING_EQUAL(back->name, "round");
	CU_ASSERT_STRING_EQUAL(back->image, "tiny");
	CU_ASSERT_STRING_EQUAL(back->backend, vm->backend);
	CU_ASSERT_EQUAL(back->vcpu, 3);
	CU_ASSERT_EQUAL(back->memory_mb, 768);
	CU_ASSERT_EQUAL(back->disk_gb, 7);
	CU_ASSERT_EQUAL(back->cid, 1234);
	CU_ASSERT_TRUE(back->created == vm->created); /* exact, not rounded */
	CU_ASSERT_TRUE(back->started == vm->started);
	CU_ASSERT_EQUAL(back->n_nics, 2);
	CU_ASSERT_EQUAL(back->nics[0].n, 3);
	CU_ASSERT_STRING_EQUAL(back->nics[0].keys[0], "mode");
	CU_ASSERT_STRING_EQUAL(vm_nic_param(back, 0, "mode"), "user");
	CU_ASSERT_STRING_EQUAL(vm_nic_param(back, 0, "mac"), "52:54:00:ab:cd:ef");
	CU_ASSERT_STRING_EQUAL(vm_nic_param(back, 0, "net"), "10.9.0.0/24");
	CU_ASSERT_EQUAL(back->nics[1].n, 1);
	CU_ASSERT_STRING_EQUAL(vm_nic_param(back, 1, "mode"), "passt");
	CU_ASSERT_EQUAL(back->n_ports, 2);
	for (int i = 0; i < 2 && back->n_ports == 2; i++) {
		CU_ASSERT_EQUAL(back->ports[i].struct_size, vm->ports[i].struct_size);
		CU_ASSERT_EQUAL(back->ports[i].protocol, vm->ports[i].protocol);
		CU_ASSERT_STRING_EQUAL(back->ports[i].host_address, vm->ports[i].host_address);
		CU_ASSERT_EQUAL(back->ports[i].host_port, vm->ports[i].host_port);
		CU_ASSERT_EQUAL(back->ports[i].vm_port, vm->ports[i].vm_port);
	}
	CU_ASSERT_EQUAL(back->ports[0].protocol, CVMM_PROTO_UDP);
	CU_ASSERT_EQUAL(back->state, VM_RUNNING);
	CU_ASSERT_STRING_EQUAL(back->reason, vm->reason);
	CU_ASSERT_TRUE(back->want_running);
	CU_ASSERT_EQUAL(back->pid, 4242);
	CU_ASSERT_EQUAL(back->restarts, 3);
	CU_ASSERT_TRUE(back->defined_ok);
	CU_ASSERT_STRING_EQUAL(back->data_dir, vm->data_dir);
	CU_ASSERT_STRING_EQUAL(back->run_dir, vm->run_dir);
	CU_ASSERT_EQUAL(back->pidfd, -1);
	CU_ASSERT_EQUAL(back->n_kv, 4);
	CU_ASSERT_STRING_EQUAL(vm_kv_get(back, "backend-qemu", "pid") ?: "", "4243");
	CU_ASSERT_STRING_EQUAL(vm_kv_get(back, "backend-qemu", "starttime") ?: "", "123456");
	CU_ASSERT_STRING_EQUAL(vm_kv_get(back, "net-user", "mac") ?: "", "52:54:00:ab:cd:ef");
	CU_ASSERT_STRING_EQUAL(vm_kv_get(back, "other", "unicode") ?: "", "\xc3\xa9\xe2\x82\xac");
	CU_ASSERT_PTR_NULL(vm_kv_get(back, "net-user", "tmp"));

	/* Every state survives, and desired=false too. */
	for (int s = VM_DEFINED; s <= VM_PAUSED; s++) {
		vm->state = (enum vm_state)s;
		vm->want_running = false;
		vm->defined_ok = false;
		json_object *o = vm_to_manifest(vm);
		struct cvmm_vm *b2 = NULL;
		CU_ASSERT_EQUAL(vm_from_manifest(d, o, &b2, err, sizeof(err)), 0);
		if (b2) {
			CU_ASSERT_EQUAL(b2->state, s);
			CU_ASSERT_FALSE(b2->want_running);
			CU_ASSERT_FALSE(b2->defined_ok);
		}
		vm_free(b2);
		json_object_put(o);
		CU_ASSERT_EQUAL(vm_state_from_name(vm_state_name((enum vm_state)s)), s);
	}
	CU_ASSERT_EQUAL(vm_state_from_name("nonsense"), -1);
	CU_ASSERT_EQUAL(vm_state_from_name(NULL), -1);
	vm_free(back);
	vm_free(vm);
}

static void test_manifest_refused(void)
{
	const char *bad[] = {
	    "{}",
	    "{\"definition\": 5}",
	    "{\"definition\": {\"id\": \"not-a-uuid\", \"name\": \"a\"}}",
	    "{\"definition\": {\"id\": \"5f0c3e2a-1b2c-4d5e-8f90-0123456789ab\", \"name\": "
	    "\"../a\"}}",
	    "{\"definition\": {\"id\": \"5f0c3e2a-1b2c-4d5e-8f90-0123456789ab\"}}",
	    "{\"definition\": {\"name\": \"a\"}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_object *o = json_tokener_parse(bad[i]);
		struct cvmm_vm *vm = NULL;
		char err[512] = "";
		int r = vm_from_manifest(d, o, &vm, err, sizeof(err));
		if (r != -EINVAL)
			printf("\n    %s -> %d\n", bad[i], r);
		CU_ASSERT_EQUAL(r, -EINVAL);
		CU_ASSERT_PTR_NULL(vm);
		CU_ASSERT_EQUAL(strncmp(err, "manifest: ", 10), 0);
		vm_free(vm);
		json_object_put(o);
	}
}

static void test_api_form(void)
{
	struct cvmm_vm *vm = ACCEPTED("{\"name\": \"api\", \"image\": \"tiny\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	vm->want_running = true;
	json_object *o = vm_to_api(vm), *v;
	static const char *const keys[] = {"id",        "name",     "image", "backend", "vcpu",
	                                   "memory_mb", "disk_gb",  "cid",   "state",   "reason",
	                                   "desired",   "networks", "ports", "pid",     "restarts",
	                                   "created",   "started",  NULL};
	for (int i = 0; keys[i]; i++) {
		if (!json_object_object_get_ex(o, keys[i], &v))
			printf("\n    missing %s\n", keys[i]);
		CU_ASSERT_TRUE(json_object_object_get_ex(o, keys[i], &v));
	}
	CU_ASSERT_TRUE(json_object_object_get_ex(o, "state", &v) &&
	               !strcmp(json_object_get_string(v), "defined"));
	CU_ASSERT_TRUE(json_object_object_get_ex(o, "desired", &v) &&
	               !strcmp(json_object_get_string(v), "running"));
	CU_ASSERT_FALSE(json_object_object_get_ex(o, "next_restart", &v));
	CU_ASSERT_FALSE(
	    json_object_object_get_ex(o, "plugins", &v)); /* plugin state stays inside */
	json_object_put(o);
	vm_free(vm);
}

/* ---- volumes and snapshot names (issue 11) -------------------------------- */

static void test_volumes(void)
{
	char *file = xasprintf("%s/host-disk.img", tmpdir);
	char *inside = xasprintf("%s/data/vms/0d6f1c2e-1111-4222-8333-444455556666", tmpdir);
	char *other = xasprintf("%s/disk.qcow2", inside);
	char *q = xasprintf("%s/host-disk.qcow2", tmpdir);
	CU_ASSERT_EQUAL_FATAL(unit_write_text(file, "raw bytes"), 0);
	CU_ASSERT_EQUAL_FATAL(write_qcow2(q, 1 << 20), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(inside, 0750), 0);
	CU_ASSERT_EQUAL_FATAL(unit_write_text(other, "another VM's disk"), 0);
	char *t;
#define VOL(body) xasprintf("{\"name\": \"v\", \"image\": \"tiny\", \"volumes\": " body "}")
#define VREFUSED(body, field, frag) (t = VOL(body), REFUSED_WITH(t, field, frag), free(t))
	VREFUSED("{}", "volumes", "must be a list");
	VREFUSED("[5]", "volumes[0]", "must be an object");
	VREFUSED("[{\"name\": \"a\"}]", "volumes[0]", "either size_gb");
	VREFUSED("[{\"name\": \"a\", \"size_gb\": 1, \"source\": \"/dev/null\"}]", "volumes[0]",
	         "either size_gb");
	VREFUSED("[{\"size_gb\": 1}]", "volumes[0].name", "required");
	VREFUSED("[{\"name\": \"-x\", \"size_gb\": 1}]", "volumes[0].name", NULL);
	VREFUSED("[{\"name\": \"a/b\", \"size_gb\": 1}]", "volumes[0].name", NULL);
	VREFUSED("[{\"name\": \"abcdefghijabcdefghijabcdefghijabc\", \"size_gb\": 1}]",
	         "volumes[0].name", "1-32");
	VREFUSED("[{\"name\": \"a\", \"size_gb\": 1}, {\"name\": \"a\", \"size_gb\": 2}]",
	         "volumes[1].name", "used by volumes[0]");
	VREFUSED("[{\"name\": \"a\", \"size_gb\": 0}]", "volumes[0].size_gb", "between 1 and 65536");
	VREFUSED("[{\"name\": \"a\", \"size_gb\": 65537}]", "volumes[0].size_gb", NULL);
	VREFUSED("[{\"name\": \"a\", \"size_gb\": \"1\"}]", "volumes[0].size_gb", "integer");
	VREFUSED("[{\"name\": \"a\", \"size_gb\": 1, \"readonly\": 1}]", "volumes[0].readonly", NULL);
	VREFUSED("[{\"name\": \"a\", \"size_gb\": 1, \"colour\": 1}]", "volumes[0].colour",
	         "unknown field");
	VREFUSED("[{\"source\": \"relative.img\"}]", "volumes[0].source", "absolute");
	VREFUSED("[{\"source\": \"/nonexistent/x.img\"}]", "volumes[0].source",
	         "No such file");
	VREFUSED("[{\"source\": \"/tmp\"}]", "volumes[0].source",
	         "neither a regular file nor a block device");
	VREFUSED("[{\"source\": \"/dev/null\"}]", "volumes[0].source", "neither");
	t = xasprintf("{\"name\": \"v\", \"image\": \"tiny\", \"volumes\": [{\"source\": \"%s\"}]}",
	              other);
	REFUSED_WITH(t, "volumes[0].source", "inside a VM's folder");
	free(t);
	/* Through a path that only resolves into the folder. */
	t = xasprintf("{\"name\": \"v\", \"image\": \"tiny\", \"volumes\": [{\"source\": "
	              "\"%s/data/vms/../vms/0d6f1c2e-1111-4222-8333-444455556666/disk.qcow2\"}]}",
	              tmpdir);
	REFUSED_WITH(t, "volumes[0].source", "inside a VM's folder");
	free(t);
	t = xasprintf("{\"name\": \"v\", \"image\": \"tiny\", \"volumes\": [{\"source\": \"%s\", "
	              "\"keep\": true}]}",
	              file);
	REFUSED_WITH(t, "volumes[0].keep", "only for volumes cvmm makes");
	free(t);
	t = xasprintf("{\"name\": \"v\", \"image\": \"tiny\", \"volumes\": [{\"source\": \"%s\"}, "
	              "{\"source\": \"%s\"}]}",
	              file, file);
	REFUSED_WITH(t, "volumes[1].source", "is volumes[0] already");
	free(t);
	t = VOL("[{\"name\": \"a\", \"size_gb\": 1}, {\"name\": \"b\", \"size_gb\": 1},"
	        "{\"name\": \"c\", \"size_gb\": 1}, {\"name\": \"d\", \"size_gb\": 1},"
	        "{\"name\": \"e\", \"size_gb\": 1}, {\"name\": \"f\", \"size_gb\": 1},"
	        "{\"name\": \"g\", \"size_gb\": 1}, {\"name\": \"h\", \"size_gb\": 1},"
	        "{\"name\": \"i\", \"size_gb\": 1}, {\"name\": \"j\", \"size_gb\": 1},"
	        "{\"name\": \"k\", \"size_gb\": 1}, {\"name\": \"l\", \"size_gb\": 1},"
	        "{\"name\": \"m\", \"size_gb\": 1}, {\"name\": \"n\", \"size_gb\": 1},"
	        "{\"name\": \"o\", \"size_gb\": 1}, {\"name\": \"p\", \"size_gb\": 1},"
	        "{\"name\": \"q\", \"size_gb\": 1}]");
	REFUSED_WITH(t, "volumes", "at most 16");
	free(t);

	/* Accepted: made, kept, a raw source and a qcow2 one, read-only. */
	t = xasprintf("{\"name\": \"v\", \"image\": \"tiny\", \"volumes\": ["
	              "{\"name\": \"data\", \"size_gb\": 20},"
	              "{\"name\": \"logs\", \"size_gb\": 1, \"keep\": true},"
	              "{\"source\": \"%s\", \"readonly\": true},"
	              "{\"name\": \"q\", \"source\": \"%s\"}]}",
	              file, q);
	struct cvmm_vm *vm = ACCEPTED(t);
	free(t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);
	CU_ASSERT_EQUAL_FATAL(vm->n_volumes, 4);
	CU_ASSERT_STRING_EQUAL(vm->volumes[0].name, "data");
	CU_ASSERT_EQUAL(vm->volumes[0].size_gb, 20);
	CU_ASSERT_PTR_NULL(vm->volumes[0].source);
	CU_ASSERT_FALSE(vm->volumes[0].keep);
	CU_ASSERT_TRUE(vm->volumes[1].keep);
	CU_ASSERT_STRING_EQUAL(vm->volumes[2].name, "vol2"); /* named after its place */
	CU_ASSERT_STRING_EQUAL(vm->volumes[2].source ?: "", file);
	CU_ASSERT_TRUE(vm->volumes[2].readonly);
	CU_ASSERT_TRUE(vm->volumes[2].raw);
	CU_ASSERT_FALSE(vm->volumes[3].raw);
	char path[600];
	CU_ASSERT_EQUAL(vm_volume_path(vm, &vm->volumes[0], path, sizeof(path)), 0);
	t = xasprintf("%s/vol-data.qcow2", vm->data_dir);
	CU_ASSERT_STRING_EQUAL(path, t);
	free(t);
	CU_ASSERT_EQUAL(vm_volume_path(vm, &vm->volumes[2], path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, file);

	/* They survive the manifest, and show in the API form. */
	json_object *m = vm_to_manifest(vm);
	struct cvmm_vm *back = NULL;
	char err[512] = "";
	CU_ASSERT_EQUAL(vm_from_manifest(d, m, &back, err, sizeof(err)), 0);
	json_object_put(m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_EQUAL_FATAL(back->n_volumes, 4);
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_STRING_EQUAL(back->volumes[i].name, vm->volumes[i].name);
		CU_ASSERT_EQUAL(back->volumes[i].size_gb, vm->volumes[i].size_gb);
		CU_ASSERT_STRING_EQUAL(back->volumes[i].source ?: "-", vm->volumes[i].source ?: "-");
		CU_ASSERT_EQUAL(back->volumes[i].readonly, vm->volumes[i].readonly);
		CU_ASSERT_EQUAL(back->volumes[i].keep, vm->volumes[i].keep);
		CU_ASSERT_EQUAL(back->volumes[i].raw, vm->volumes[i].raw);
	}
	json_object *api = vm_to_api(vm), *vols, *v;
	CU_ASSERT_TRUE(json_object_object_get_ex(api, "volumes", &vols) &&
	               json_object_array_length(vols) == 4);
	CU_ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(vols, 2), "format", &v) &&
	               !strcmp(json_object_get_string(v), "raw"));
	json_object_put(api);
	vm_free(back);
	vm_free(vm);
#undef VREFUSED
#undef VOL
	rm_rf(inside);
	unlink(file);
	unlink(q);
	free(file);
	free(q);
	free(other);
	free(inside);
}

static void test_snapshot_names(void)
{
	CU_ASSERT_TRUE(vm_snapshot_name_valid("s1"));
	CU_ASSERT_TRUE(vm_snapshot_name_valid("before-upgrade_2.0"));
	CU_ASSERT_TRUE(vm_snapshot_name_valid(
	    "a234567890123456789012345678901234567890123456789012345678901234")); /* 64 */
	CU_ASSERT_FALSE(vm_snapshot_name_valid(
	    "a2345678901234567890123456789012345678901234567890123456789012345")); /* 65 */
	CU_ASSERT_FALSE(vm_snapshot_name_valid(""));
	CU_ASSERT_FALSE(vm_snapshot_name_valid(NULL));
	CU_ASSERT_FALSE(vm_snapshot_name_valid("-c"));
	CU_ASSERT_FALSE(vm_snapshot_name_valid(".hidden"));
	CU_ASSERT_FALSE(vm_snapshot_name_valid("a b"));
	CU_ASSERT_FALSE(vm_snapshot_name_valid("a/b"));
	CU_ASSERT_FALSE(vm_snapshot_name_valid("a'b"));
	CU_ASSERT_FALSE(vm_snapshot_name_valid("\xc3\xa9"));
	CU_ASSERT_STRING_EQUAL(vm_state_name(VM_PAUSED), "paused");
	CU_ASSERT_EQUAL(vm_state_from_name("paused"), VM_PAUSED);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	log_set_level(0);
	CU_pSuite s = CU_add_suite("vm", suite_init, suite_clean);
	if (!s || !CU_add_test(s, "request: not an object", test_not_an_object) ||
	    !CU_add_test(s, "request: unknown field", test_unknown_field) ||
	    !CU_add_test(s, "request: missing required fields", test_missing_required) ||
	    !CU_add_test(s, "request: wrong types and ranges", test_wrong_types) ||
	    !CU_add_test(s, "request: names", test_names) ||
	    !CU_add_test(s, "request: unknown or broken image", test_unknown_image) ||
	    !CU_add_test(s, "request: defaults", test_defaults) ||
	    !CU_add_test(s, "request: every field", test_all_fields) ||
	    !CU_add_test(s, "request: backend and network mode lookups", test_registry_lookups) ||
	    !CU_add_test(s, "request: disk_gb against the image's disk", test_disk_size) ||
	    !CU_add_test(s, "request: MACs", test_macs) ||
	    !CU_add_test(s, "start: the image's disk is the one recorded", test_base_check) ||
	    !CU_add_test(s, "manifest round trip", test_manifest_round_trip) ||
	    !CU_add_test(s, "manifest refused", test_manifest_refused) ||
	    !CU_add_test(s, "API form", test_api_form) ||
	    !CU_add_test(s, "request: volumes", test_volumes) ||
	    !CU_add_test(s, "snapshot names", test_snapshot_names)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
