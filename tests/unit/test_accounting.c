/*
 * Unit tests of the daemon's resource accounting (core/daemon.c):
 * daemon_reserve/daemon_release of vCPUs, memory and vsock CIDs against small
 * limits, and daemon_check_ports against cvm.port_mapping and the other VMs
 * in the table. The daemon is created with daemon_new from a config string and
 * never started; VMs come from vm_from_request as the API builds them.
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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[] = "/tmp/cvmm-test-accounting.XXXXXX";
static struct cvmm_config cfg, cfg_nopm;
static struct cvmm_daemon *d, *d_nopm;

/* ---- helpers ------------------------------------------------------------- */

static void check_at(int ok, int line, const char *what)
{
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what, __FILE__, "",
	                        CU_FALSE);
}

/* err starts with prefix and contains every fragment (NULL-terminated list). */
static void expect_msg_(const char *err, int line, const char *prefix, ...)
{
	bool ok = !strncmp(err, prefix, strlen(prefix));
	va_list ap;
	va_start(ap, prefix);
	for (const char *f; (f = va_arg(ap, const char *));)
		if (!strstr(err, f)) {
			ok = false;
			printf("\n    line %d: missing \"%s\"", line, f);
		}
	va_end(ap);
	if (!ok)
		printf("\n    line %d: got \"%s\" (want prefix \"%s\")\n", line, err, prefix);
	check_at(ok, line, "error message names the field and the numbers");
}
#define EXPECT_MSG(err, prefix, ...) expect_msg_(err, __LINE__, prefix, __VA_ARGS__, NULL)

/* A VM from a create request {"name": name, "image": "tiny", <extra>}. */
static struct cvmm_vm *mkvm_(struct cvmm_daemon *dd, const char *name, const char *extra, int line)
{
	char *text = xasprintf("{\"name\": \"%s\", \"image\": \"tiny\"%s%s}", name,
	                       extra && *extra ? ", " : "", extra ? extra : "");
	json_object *req = json_tokener_parse(text);
	struct cvmm_vm *vm = NULL;
	bool start = false;
	char err[1024] = "";
	int r = req ? vm_from_request(dd, req, &vm, &start, err, sizeof(err)) : -EINVAL;
	if (r)
		printf("\n    line %d: vm_from_request(%s): %d %s\n", line, text, r, err);
	check_at(r == 0 && vm, line, "vm_from_request accepts the request");
	json_object_put(req);
	free(text);
	return vm;
}
#define MKVM(name, extra) mkvm_(d, name, extra, __LINE__)

static void check_usage_(struct cvmm_daemon *dd, uint32_t vcpu, uint64_t mem, uint32_t cids,
                         int line)
{
	if (dd->used_vcpu != vcpu || dd->used_memory_mb != mem || dd->cids_in_use != cids)
		printf("\n    line %d: usage vcpu %u mem %llu cids %u, want %u %llu %u\n", line,
		       dd->used_vcpu, (unsigned long long)dd->used_memory_mb, dd->cids_in_use, vcpu,
		       (unsigned long long)mem, cids);
	check_at(dd->used_vcpu == vcpu, line, "used_vcpu");
	check_at(dd->used_memory_mb == mem, line, "used_memory_mb");
	check_at(dd->cids_in_use == cids, line, "cids_in_use");
	uint32_t marked = 0;
	for (uint32_t i = 0; i < dd->cfg->cid_pool_size; i++)
		marked += dd->cid_used[i] != 0;
	check_at(marked == cids, line, "cid_used map agrees with cids_in_use");
}
#define CHECK_USAGE(vcpu, mem, cids) check_usage_(d, vcpu, mem, cids, __LINE__)

static struct cvmm_daemon *new_daemon(struct cvmm_config *c, const char *text)
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
	/* No plugins here: without a registry vm_from_request skips the
	 * backend and network-mode lookups (test_vm covers those). */
	registry_free(dd->reg);
	dd->reg = NULL;
	return dd;
}

static int suite_init(void)
{
	if (!mkdtemp(tmpdir))
		return -1;
	int r = unit_fake_image(tmpdir);
	if (r)
		return -1;
	char *text =
	    xasprintf("run_path = \"%s/run\";\n"
	              "data_dir = \"%s/data\";\n"
	              "image = { path = \"%s/images\"; };\n"
	              "cvm = {\n"
	              "  max_allocable_vcpu = 4;\n"
	              "  max_allocable_memory_in_mb = 1024;\n"
	              "  cid_start = 1000;\n"
	              "  cid_pool_size = 3;\n"
	              "  port_mapping = {\n"
	              "    enabled = %s;\n"
	              "    address = \"127.0.0.1\";\n"
	              "    range = ( { protocol = \"tcp\"; from = 10000; to = 10010; },\n"
	              "              { protocol = \"udp\"; from = 20000; to = 20010; } );\n"
	              "  };\n"
	              "};\n",
	              tmpdir, tmpdir, tmpdir, "%s");
	char *on = xasprintf(text, "true"), *off = xasprintf(text, "false");
	free(text);
	d = new_daemon(&cfg, on);
	d_nopm = new_daemon(&cfg_nopm, off);
	free(on);
	free(off);
	return d && d_nopm ? 0 : -1;
}

static int suite_clean(void)
{
	daemon_free(d);
	daemon_free(d_nopm);
	config_free(&cfg);
	config_free(&cfg_nopm);
	return rm_rf(tmpdir);
}

/* Removes every VM from the table, releasing what it holds. */
static void clear_table(void)
{
	while (d->n_vms) {
		struct cvmm_vm *vm = d->vms[0];
		daemon_release(d, vm);
		daemon_remove_vm(d, vm);
		vm_free(vm);
	}
}

/* ---- vCPU and memory ----------------------------------------------------- */

static void test_config_as_written(void)
{
	CU_ASSERT_EQUAL(cfg.max_allocable_vcpu, 4);
	CU_ASSERT_EQUAL(cfg.max_allocable_memory_mb, 1024);
	CU_ASSERT_EQUAL(cfg.cid_start, 1000);
	CU_ASSERT_EQUAL(cfg.cid_pool_size, 3);
	CU_ASSERT_TRUE(cfg.pm_enabled);
	CU_ASSERT_FALSE(cfg_nopm.pm_enabled);
	CHECK_USAGE(0, 0, 0);
}

static void test_vcpu_limit(void)
{
	char err[512] = "";
	struct cvmm_vm *a = MKVM("a", "\"vcpu\": 3, \"memory_mb\": 100");
	struct cvmm_vm *b = MKVM("b", "\"vcpu\": 2, \"memory_mb\": 100");
	struct cvmm_vm *c = MKVM("c", "\"vcpu\": 1, \"memory_mb\": 100");
	struct cvmm_vm *big = MKVM("big", "\"vcpu\": 5, \"memory_mb\": 100");
	CU_ASSERT_FATAL(a && b && c && big);

	CU_ASSERT_EQUAL(daemon_reserve(d, big, false, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "vcpu: ", "5 requested", "0 of 4 allocated", "cvm.max_allocable_vcpu",
	           "4 available");
	CHECK_USAGE(0, 0, 0);

	CU_ASSERT_EQUAL(daemon_reserve(d, a, false, err, sizeof(err)), 0);
	CHECK_USAGE(3, 100, 1);
	err[0] = 0;
	CU_ASSERT_EQUAL(daemon_reserve(d, b, false, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "vcpu: ", "2 requested", "3 of 4 allocated", "1 available");
	CHECK_USAGE(3, 100, 1); /* a refusal takes nothing */
	/* Exactly up to the limit is fine. */
	CU_ASSERT_EQUAL(daemon_reserve(d, c, false, err, sizeof(err)), 0);
	CHECK_USAGE(4, 200, 2);
	daemon_release(d, a);
	CHECK_USAGE(1, 100, 1);
	CU_ASSERT_EQUAL(daemon_reserve(d, b, false, err, sizeof(err)), 0);
	CHECK_USAGE(3, 200, 2);
	daemon_release(d, b);
	daemon_release(d, c);
	CHECK_USAGE(0, 0, 0);
	vm_free(a);
	vm_free(b);
	vm_free(c);
	vm_free(big);
}

static void test_memory_limit(void)
{
	char err[512] = "";
	struct cvmm_vm *a = MKVM("a", "\"memory_mb\": 1000");
	struct cvmm_vm *b = MKVM("b", "\"memory_mb\": 25");
	struct cvmm_vm *c = MKVM("c", "\"memory_mb\": 24");
	struct cvmm_vm *big = MKVM("big", "\"memory_mb\": 1025");
	CU_ASSERT_FATAL(a && b && c && big);

	CU_ASSERT_EQUAL(daemon_reserve(d, big, false, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "memory_mb: ", "1025 requested", "0 of 1024 allocated",
	           "cvm.max_allocable_memory_in_mb", "1024 available");
	CHECK_USAGE(0, 0, 0);
	CU_ASSERT_EQUAL(daemon_reserve(d, a, false, err, sizeof(err)), 0);
	CHECK_USAGE(1, 1000, 1);
	CU_ASSERT_EQUAL(daemon_reserve(d, b, false, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "memory_mb: ", "25 requested", "1000 of 1024 allocated", "24 available");
	CHECK_USAGE(1, 1000, 1);
	CU_ASSERT_EQUAL(daemon_reserve(d, c, false, err, sizeof(err)), 0); /* exactly 1024 */
	CHECK_USAGE(2, 1024, 2);
	daemon_release(d, a);
	daemon_release(d, c);
	CHECK_USAGE(0, 0, 0);
	vm_free(a);
	vm_free(b);
	vm_free(c);
	vm_free(big);
}

/* ---- CIDs ------------------------------------------------------------------ */

static void test_cid_pool(void)
{
	char err[512] = "";
	struct cvmm_vm *v[5];
	for (int i = 0; i < 5; i++) {
		char name[8];
		snprintf(name, sizeof(name), "c%d", i);
		v[i] = MKVM(name, "\"memory_mb\": 16");
		CU_ASSERT_PTR_NOT_NULL_FATAL(v[i]);
	}
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(daemon_reserve(d, v[i], false, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(v[i]->cid, 1000 + (uint32_t)i);
	}
	CHECK_USAGE(3, 48, 3);
	CU_ASSERT_EQUAL(daemon_reserve(d, v[3], false, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "cid: ", "pool of 3 CIDs from 1000", "cvm.cid_pool_size", "exhausted",
	           "3 in use");
	CHECK_USAGE(3, 48, 3); /* vCPU and memory were not taken either */

	/* A released CID is handed out again, and it is the only free one. */
	daemon_release(d, v[1]);
	CHECK_USAGE(2, 32, 2);
	CU_ASSERT_EQUAL(daemon_reserve(d, v[3], false, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v[3]->cid, 1001);
	CU_ASSERT_EQUAL(daemon_reserve(d, v[4], false, err, sizeof(err)), -EBUSY);
	CHECK_USAGE(3, 48, 3);
	daemon_release(d, v[0]);
	CU_ASSERT_EQUAL(daemon_reserve(d, v[4], false, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v[4]->cid, 1000);
	daemon_release(d, v[2]);
	daemon_release(d, v[3]);
	daemon_release(d, v[4]);
	CHECK_USAGE(0, 0, 0);
	for (int i = 0; i < 5; i++)
		vm_free(v[i]);
}

static void test_fixed_cid(void)
{
	char err[512] = "";
	struct cvmm_vm *f = MKVM("fixed", "\"memory_mb\": 16");
	struct cvmm_vm *g = MKVM("fixed2", "\"memory_mb\": 16");
	struct cvmm_vm *x = MKVM("x", "\"memory_mb\": 16");
	struct cvmm_vm *y = MKVM("y", "\"memory_mb\": 16");
	struct cvmm_vm *z = MKVM("z", "\"memory_mb\": 16");
	CU_ASSERT_FATAL(f && g && x && y && z);

	/* Outside the pool on either side. */
	g->cid = 999;
	CU_ASSERT_EQUAL(daemon_reserve(d, g, true, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "cid: ", "999");
	g->cid = 1003;
	CU_ASSERT_EQUAL(daemon_reserve(d, g, true, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "cid: ", "1003");
	CHECK_USAGE(0, 0, 0);

	f->cid = 1002;
	CU_ASSERT_EQUAL(daemon_reserve(d, f, true, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(f->cid, 1002);
	CHECK_USAGE(1, 16, 1);
	/* Taken. */
	g->cid = 1002;
	CU_ASSERT_EQUAL(daemon_reserve(d, g, true, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "cid: ", "1002", "taken");
	CHECK_USAGE(1, 16, 1);
	/* Pool allocation skips the fixed one. */
	CU_ASSERT_EQUAL(daemon_reserve(d, x, false, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(x->cid, 1000);
	CU_ASSERT_EQUAL(daemon_reserve(d, y, false, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(y->cid, 1001);
	CU_ASSERT_EQUAL(daemon_reserve(d, z, false, err, sizeof(err)), -EBUSY);
	EXPECT_MSG(err, "cid: ", "exhausted", "3 in use");
	/* Released, the fixed CID can be taken again by a fixed reservation. */
	daemon_release(d, f);
	CHECK_USAGE(2, 32, 2);
	g->cid = 1002;
	CU_ASSERT_EQUAL(daemon_reserve(d, g, true, err, sizeof(err)), 0);
	CHECK_USAGE(3, 48, 3);
	daemon_release(d, g);
	daemon_release(d, x);
	daemon_release(d, y);
	CHECK_USAGE(0, 0, 0);
	vm_free(f);
	vm_free(g);
	vm_free(x);
	vm_free(y);
	vm_free(z);
}

/*
 * load_vms keeps a VM whose reservation failed ("kept, but not counted"), and
 * removing it later calls daemon_release on it. Releasing a VM that holds no
 * reservation, or releasing twice, must not free what another VM holds.
 */
static void test_release_without_reservation(void)
{
	char err[512] = "";
	struct cvmm_vm *a = MKVM("holder", "\"vcpu\": 2, \"memory_mb\": 300");
	struct cvmm_vm *b = MKVM("uncounted", "\"vcpu\": 1, \"memory_mb\": 200");
	CU_ASSERT_FATAL(a && b);
	a->cid = 1000;
	CU_ASSERT_EQUAL(daemon_reserve(d, a, true, err, sizeof(err)), 0);
	b->cid = 1000; /* same CID in its manifest: refused at load, kept */
	CU_ASSERT_EQUAL(daemon_reserve(d, b, true, err, sizeof(err)), -EBUSY);
	CHECK_USAGE(2, 300, 1);
	daemon_release(d, b);
	CHECK_USAGE(2, 300, 1);
	CU_ASSERT_EQUAL(d->cid_used[0], 1);
	/* A second release of a is a no-op too. */
	daemon_release(d, a);
	CHECK_USAGE(0, 0, 0);
	daemon_release(d, a);
	CHECK_USAGE(0, 0, 0);
	/* Nothing wrapped around below zero. */
	CU_ASSERT_TRUE(d->used_vcpu <= 4 && d->used_memory_mb <= 1024);
	/* Whatever the above did, start clean for the next cases. */
	memset(d->cid_used, 0, d->cfg->cid_pool_size);
	d->cids_in_use = 0;
	d->used_vcpu = 0;
	d->used_memory_mb = 0;
	vm_free(a);
	vm_free(b);
}

/* ---- ports ----------------------------------------------------------------- */

#define PORT(proto, addr, hp, vp)                                                                  \
	"{\"protocol\": \"" proto "\", \"host_address\": \"" addr "\", \"host_port\": " #hp        \
	", \"vm_port\": " #vp "}"

static void test_ports_disabled(void)
{
	char err[512] = "";
	struct cvmm_vm *vm =
	    mkvm_(d_nopm, "p", "\"ports\": [" PORT("tcp", "127.0.0.1", 10001, 80) "]", __LINE__);
	struct cvmm_vm *none = mkvm_(d_nopm, "q", NULL, __LINE__);
	CU_ASSERT_FATAL(vm && none);
	CU_ASSERT_EQUAL(daemon_check_ports(d_nopm, vm, err, sizeof(err)), -EINVAL);
	EXPECT_MSG(err, "ports: ", "disabled", "cvm.port_mapping.enabled");
	/* No ports asked for: nothing to refuse. */
	CU_ASSERT_EQUAL(daemon_check_ports(d_nopm, none, err, sizeof(err)), 0);
	vm_free(vm);
	vm_free(none);
}

static void test_ports_address(void)
{
	char err[512] = "";
	struct cvmm_vm *vm = MKVM("p", "\"ports\": [" PORT("tcp", "127.0.0.1", 10001, 80) ", " PORT(
	                                   "tcp", "127.0.0.2", 10002, 81) "]");
	struct cvmm_vm *v6 = MKVM("p6", "\"ports\": [" PORT("tcp", "::1", 10001, 80) "]");
	struct cvmm_vm *dflt = MKVM("pd", "\"ports\": [{\"host_port\": 10003, \"vm_port\": 22}]");
	CU_ASSERT_FATAL(vm && v6 && dflt);
	CU_ASSERT_EQUAL(daemon_check_ports(d, vm, err, sizeof(err)), -EINVAL);
	EXPECT_MSG(err, "ports[1].host_address: ", "127.0.0.1", "127.0.0.2",
	           "cvm.port_mapping.address");
	CU_ASSERT_EQUAL(daemon_check_ports(d, v6, err, sizeof(err)), -EINVAL);
	EXPECT_MSG(err, "ports[0].host_address: ", "::1");
	/* Without host_address the configured one is used: tcp on 127.0.0.1. */
	CU_ASSERT_STRING_EQUAL(dflt->ports[0].host_address, "127.0.0.1");
	CU_ASSERT_EQUAL(dflt->ports[0].protocol, CVMM_PROTO_TCP);
	CU_ASSERT_EQUAL(daemon_check_ports(d, dflt, err, sizeof(err)), 0);
	vm_free(vm);
	vm_free(v6);
	vm_free(dflt);
}

static void test_ports_range(void)
{
	char err[512] = "";
	struct {
		const char *ports, *prefix, *frag;
		int want;
	} cases[] = {
	    {PORT("tcp", "127.0.0.1", 10000, 80), NULL, NULL, 0},
	    {PORT("tcp", "127.0.0.1", 10010, 80), NULL, NULL, 0},
	    {PORT("udp", "127.0.0.1", 20000, 53), NULL, NULL, 0},
	    {PORT("udp", "127.0.0.1", 20010, 53), NULL, NULL, 0},
	    {PORT("tcp", "127.0.0.1", 9999, 80), "ports[0].host_port: ", "tcp port 9999", -EINVAL},
	    {PORT("tcp", "127.0.0.1", 10011, 80), "ports[0].host_port: ", "tcp port 10011",
	     -EINVAL},
	    /* A port inside the other protocol's range only. */
	    {PORT("udp", "127.0.0.1", 10005, 53), "ports[0].host_port: ", "udp port 10005",
	     -EINVAL},
	    {PORT("tcp", "127.0.0.1", 20005, 80), "ports[0].host_port: ", "tcp port 20005",
	     -EINVAL},
	    {PORT("tcp", "127.0.0.1", 10001, 80) ", " PORT("udp", "127.0.0.1", 20011, 53),
	     "ports[1].host_port: ", "udp port 20011", -EINVAL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *extra = xasprintf("\"ports\": [%s]", cases[i].ports);
		struct cvmm_vm *vm = mkvm_(d, "r", extra, __LINE__);
		free(extra);
		if (!vm)
			continue;
		err[0] = 0;
		int r = daemon_check_ports(d, vm, err, sizeof(err));
		if (r != cases[i].want)
			printf("\n    case %zu: %d (%s), want %d\n", i, r, err, cases[i].want);
		CU_ASSERT_EQUAL(r, cases[i].want);
		if (cases[i].prefix)
			expect_msg_(err, __LINE__, cases[i].prefix, cases[i].frag,
			            "cvm.port_mapping.range", NULL);
		vm_free(vm);
	}
}

static void test_ports_duplicate_within_vm(void)
{
	char err[512] = "";
	struct cvmm_vm *dup = MKVM(
	    "dup", "\"ports\": [" PORT("tcp", "127.0.0.1", 10001, 80) ", " PORT(
	               "tcp", "127.0.0.1", 10002, 81) ", " PORT("tcp", "127.0.0.1", 10001, 82) "]");
	/* Two host ports forwarding to the same VM port. */
	struct cvmm_vm *fan_in = NULL;
	char *text = xasprintf("\"ports\": [%s, %s]", PORT("tcp", "127.0.0.1", 10005, 80),
	                       PORT("tcp", "127.0.0.1", 10006, 80));
	fan_in = MKVM("two", text);
	free(text);
	CU_ASSERT_FATAL(dup && fan_in);
	CU_ASSERT_EQUAL(daemon_check_ports(d, dup, err, sizeof(err)), -EINVAL);
	EXPECT_MSG(err, "ports[2].host_port: ", "tcp port 10001", "twice");
	/* Two host ports onto the same VM port is allowed. */
	CU_ASSERT_EQUAL(daemon_check_ports(d, fan_in, err, sizeof(err)), 0);
	vm_free(dup);
	vm_free(fan_in);
}

static void test_ports_conflict_with_other_vm(void)
{
	char err[512] = "";
	struct cvmm_vm *web =
	    MKVM("web1", "\"ports\": [" PORT("tcp", "127.0.0.1", 10001,
	                                     80) ", " PORT("udp", "127.0.0.1", 20001, 53) "]");
	struct cvmm_vm *other =
	    MKVM("other", "\"ports\": [" PORT("tcp", "127.0.0.1", 10002,
	                                      80) ", " PORT("tcp", "127.0.0.1", 10001, 8080) "]");
	struct cvmm_vm *udp = MKVM("udp", "\"ports\": [" PORT("udp", "127.0.0.1", 20001, 53) "]");
	struct cvmm_vm *cross =
	    MKVM("cross", "\"ports\": [" PORT("udp", "127.0.0.1", 20002,
	                                      53) ", " PORT("tcp", "127.0.0.1", 10003, 53) "]");
	CU_ASSERT_FATAL(web && other && udp && cross);
	CU_ASSERT_EQUAL(daemon_check_ports(d, web, err, sizeof(err)), 0);
	daemon_add_vm(d, web);
	/* A VM in the table does not conflict with itself. */
	CU_ASSERT_EQUAL(daemon_check_ports(d, web, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(daemon_check_ports(d, other, err, sizeof(err)), -EADDRINUSE);
	EXPECT_MSG(err, "ports[1].host_port: ", "tcp port 10001", "VM 'web1'");
	CU_ASSERT_EQUAL(daemon_check_ports(d, udp, err, sizeof(err)), -EADDRINUSE);
	EXPECT_MSG(err, "ports[0].host_port: ", "udp port 20001", "VM 'web1'");
	CU_ASSERT_EQUAL(daemon_check_ports(d, cross, err, sizeof(err)), 0);

	/* Removed from the table, its ports are free again. */
	daemon_remove_vm(d, web);
	CU_ASSERT_EQUAL(d->n_vms, 0);
	CU_ASSERT_EQUAL(daemon_check_ports(d, other, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(daemon_check_ports(d, udp, err, sizeof(err)), 0);
	vm_free(web);
	vm_free(other);
	vm_free(udp);
	vm_free(cross);
	clear_table();
}

/* The table as the API uses it: check, reserve, add; remove frees both. */
static void test_create_remove_cycle(void)
{
	char err[512] = "";
	struct cvmm_vm *v[4];
	const char *names[] = {"n0", "n1", "n2", "n3"};
	const char *ports[] = {"\"vcpu\": 1, \"ports\": [" PORT("tcp", "127.0.0.1", 10001, 80) "]",
	                       "\"vcpu\": 1, \"ports\": [" PORT("tcp", "127.0.0.1", 10002, 80) "]",
	                       "\"vcpu\": 2",
	                       "\"vcpu\": 1, \"ports\": [" PORT("tcp", "127.0.0.1", 10001, 80) "]"};
	for (int i = 0; i < 4; i++) {
		v[i] = MKVM(names[i], ports[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(v[i]);
	}
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(daemon_check_ports(d, v[i], err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(daemon_reserve(d, v[i], false, err, sizeof(err)), 0);
		daemon_add_vm(d, v[i]);
	}
	CHECK_USAGE(4, 768, 3);
	CU_ASSERT_PTR_EQUAL(daemon_find_vm(d, "n1"), v[1]);
	CU_ASSERT_PTR_EQUAL(daemon_find_vm(d, v[2]->id), v[2]);
	CU_ASSERT_EQUAL(daemon_check_ports(d, v[3], err, sizeof(err)), -EADDRINUSE);
	EXPECT_MSG(err, "ports[0].host_port: ", "10001", "VM 'n0'");
	/* Free n0: its port, vCPU and CID become available. */
	daemon_release(d, v[0]);
	daemon_remove_vm(d, v[0]);
	CU_ASSERT_PTR_NULL(daemon_find_vm(d, "n0"));
	CHECK_USAGE(3, 512, 2);
	CU_ASSERT_EQUAL(daemon_check_ports(d, v[3], err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(daemon_reserve(d, v[3], false, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v[3]->cid, v[0]->cid);
	daemon_add_vm(d, v[3]);
	CHECK_USAGE(4, 768, 3);
	vm_free(v[0]);
	clear_table();
	CHECK_USAGE(0, 0, 0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	log_set_level(0);
	CU_pSuite s = CU_add_suite("accounting", suite_init, suite_clean);
	if (!s || !CU_add_test(s, "config as written", test_config_as_written) ||
	    !CU_add_test(s, "vCPU limit", test_vcpu_limit) ||
	    !CU_add_test(s, "memory limit", test_memory_limit) ||
	    !CU_add_test(s, "CID pool exhaustion and reuse", test_cid_pool) ||
	    !CU_add_test(s, "fixed CID", test_fixed_cid) ||
	    !CU_add_test(s, "release without a reservation", test_release_without_reservation) ||
	    !CU_add_test(s, "ports: mapping disabled", test_ports_disabled) ||
	    !CU_add_test(s, "ports: address", test_ports_address) ||
	    !CU_add_test(s, "ports: ranges", test_ports_range) ||
	    !CU_add_test(s, "ports: listed twice", test_ports_duplicate_within_vm) ||
	    !CU_add_test(s, "ports: conflict with another VM", test_ports_conflict_with_other_vm) ||
	    !CU_add_test(s, "create/remove cycle frees for reuse", test_create_remove_cycle)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
