/*
 * Unit tests of the QEMU backend's pinning (plugins/backend-qemu/pin.c) and
 * of the CPU-list syntax it shares with the spec (plugins/common/spec_check.c):
 * the parser and formatter, reading QEMU's query-cpus-fast reply (as QEMU 7.2
 * sends it), the plan (which thread gets which CPUs), and, last, a real QEMU
 * under TCG (multi-threaded: one host thread per vCPU) started paused with
 * two vCPUs, pinned crosswise, whose threads' Cpus_allowed_list in
 * /proc/PID/task/TID/status must then say what the spec asked. This host
 * has 2 CPUs: the case pins to 0 and 1, and fails on a host with fewer.
 */
#include "pin.h"
#include "qmp.h"
#include "spec.h"
#include "spec_check.h"
#include "util.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int fmt_eq(const char *in, const char *want)
{
	cpu_set_t s;
	char out[256];
	if (cp_cpulist_parse(in, &s) < 0)
		return 0;
	cp_cpulist_format(&s, out, sizeof(out));
	if (strcmp(out, want))
		printf("\n  '%s' formats as '%s', want '%s'", in, out, want);
	return !strcmp(out, want);
}

static void test_cpulist(void)
{
	cpu_set_t s;
	CU_ASSERT_EQUAL(cp_cpulist_parse("", &s), 0);
	CU_ASSERT_EQUAL(cp_cpulist_parse("3", &s), 1);
	CU_ASSERT(CPU_ISSET(3, &s));
	CU_ASSERT_EQUAL(cp_cpulist_parse("0-3,8,10-11", &s), 7);
	CU_ASSERT_EQUAL(cp_cpulist_parse("0-7,^2", &s), 7);
	CU_ASSERT(!CPU_ISSET(2, &s));
	CU_ASSERT(fmt_eq("0-3,8,10-11", "0-3,8,10-11"));
	CU_ASSERT(fmt_eq("5,4,3,1", "1,3-5"));
	CU_ASSERT(fmt_eq("0-7,^2", "0-1,3-7"));
	CU_ASSERT(fmt_eq("94", "94"));
	CU_ASSERT(fmt_eq("", ""));
	/* Refused: what the kernel's and libvirt's syntax refuse. */
	static const char *const bad[] = {"a", "1-", "-1", "3-1", "1,,2", "1,", ",1", "1 2",
					  "99999", "1-99999", "^", "0x1", "1.5"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (cp_cpulist_parse(bad[i], &s) != -EINVAL)
			printf("\n  '%s' was accepted", bad[i]);
		CU_ASSERT_EQUAL(cp_cpulist_parse(bad[i], &s), -EINVAL);
	}
}

/* What QEMU 7.2 answered for -smp 2 (recorded). */
static const char *const cpus_reply =
    "[{\"thread-id\": 31384, \"props\": {\"core-id\": 0, \"thread-id\": 0, \"socket-id\": 0}, "
    "\"qom-path\": \"/machine/unattached/device[0]\", \"cpu-index\": 0, \"target\": \"x86_64\"}, "
    "{\"thread-id\": 31385, \"props\": {\"core-id\": 1, \"thread-id\": 0, \"socket-id\": 0}, "
    "\"qom-path\": \"/machine/unattached/device[2]\", \"cpu-index\": 1, \"target\": \"x86_64\"}]";

static void test_parse_cpus(void)
{
	int tids[4];
	size_t n = 0;
	char err[256] = "";
	CU_ASSERT_EQUAL(pin_parse_cpus(cpus_reply, tids, 4, &n, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(tids[0], 31384);
	CU_ASSERT_EQUAL(tids[1], 31385);
	CU_ASSERT_EQUAL(pin_parse_cpus("{}", tids, 4, &n, err, sizeof(err)), -EPROTO);
	CU_ASSERT_EQUAL(pin_parse_cpus("[{\"cpu-index\": 0}]", tids, 4, &n, err, sizeof(err)),
			-EPROTO);
	CU_ASSERT(strstr(err, "thread-id") != NULL);
	CU_ASSERT_EQUAL(pin_parse_cpus("[{\"cpu-index\": 9, \"thread-id\": 5}]", tids, 4, &n, err,
				       sizeof(err)),
			-EPROTO);
}

static struct cvmm_spec *pinned_spec(uint32_t vcpus, const char *emulator)
{
	struct cvmm_spec *s = spec_new();
	s->pub.vcpus = vcpus;
	CU_ASSERT_EQUAL(spec_set_emulator_cpus(s, emulator), 0);
	return s;
}

static void add_pin(struct cvmm_spec *s, uint32_t vcpu, const char *cpus)
{
	struct cvmm_spec_pin p = {.struct_size = sizeof(p), .vcpu = vcpu};
	str_copy(p.host_cpus, sizeof(p.host_cpus), cpus);
	CU_ASSERT_EQUAL(spec_add_pin(s, &p), 0);
}

static void test_plan(void)
{
	struct cvmm_spec *s = pinned_spec(2, "2-3");
	add_pin(s, 0, "94");
	add_pin(s, 1, "95");
	int vt[] = {101, 102}, all[] = {100, 101, 102, 103};
	struct pin_plan p;
	char err[256] = "";
	CU_ASSERT_EQUAL_FATAL(pin_plan_make(&s->pub, vt, 2, all, 4, &p, err, sizeof(err)), 0);
	/* The emulator threads (100, 103), then each vCPU thread. */
	CU_ASSERT_EQUAL_FATAL(p.n, 4);
	CU_ASSERT(p.steps[0].tid == 100 && p.steps[0].vcpu == -1 && CPU_ISSET(2, &p.steps[0].cpus) &&
		  CPU_ISSET(3, &p.steps[0].cpus) && CPU_COUNT(&p.steps[0].cpus) == 2);
	CU_ASSERT(p.steps[1].tid == 103 && p.steps[1].vcpu == -1);
	CU_ASSERT(p.steps[2].tid == 101 && p.steps[2].vcpu == 0 && CPU_ISSET(94, &p.steps[2].cpus) &&
		  CPU_COUNT(&p.steps[2].cpus) == 1);
	CU_ASSERT(p.steps[3].tid == 102 && p.steps[3].vcpu == 1 && CPU_ISSET(95, &p.steps[3].cpus));
	pin_plan_free(&p);
	/* No emulator CPUs: only the pinned vCPUs are touched. */
	spec_free(s);
	s = pinned_spec(2, "");
	add_pin(s, 1, "1");
	CU_ASSERT_EQUAL(pin_plan_make(&s->pub, vt, 2, all, 4, &p, err, sizeof(err)), 0);
	CU_ASSERT(p.n == 1 && p.steps[0].tid == 102);
	pin_plan_free(&p);
	/* A pinned vCPU QEMU does not report: refused, naming it. */
	CU_ASSERT_EQUAL(pin_plan_make(&s->pub, vt, 1, all, 4, &p, err, sizeof(err)), -ENOENT);
	CU_ASSERT(strstr(err, "vCPU 1") != NULL);
	CU_ASSERT_EQUAL(p.n, 0);
	spec_free(s);
}

/* The builders refuse what one call can see is wrong. */
static void test_builders(void)
{
	struct cvmm_spec *s = pinned_spec(4, "");
	struct cvmm_spec_pin p = {.struct_size = sizeof(p), .vcpu = 4, .host_cpus = "1"};
	CU_ASSERT_EQUAL(spec_add_pin(s, &p), -EINVAL); /* no vCPU 4 */
	p.vcpu = 0;
	CU_ASSERT_EQUAL(spec_add_pin(s, &p), 0);
	CU_ASSERT_EQUAL(spec_add_pin(s, &p), -EINVAL); /* twice */
	CU_ASSERT_EQUAL(spec_set_topology(s, 2, 3, 1), -EINVAL);
	CU_ASSERT_EQUAL(spec_set_topology(s, 2, 2, 1), 0);
	CU_ASSERT_EQUAL(spec_set_emulator_cpus(s, "1-"), -EINVAL);
	struct cvmm_spec_numa c = {.struct_size = sizeof(c), .id = 0, .cpus = "0-2", .memory_mb = 1,
				   .host_node = 0};
	CU_ASSERT_EQUAL(spec_add_numa(s, &c), 0);
	c.id = 1;
	str_copy(c.cpus, sizeof(c.cpus), "2-3");
	CU_ASSERT_EQUAL(spec_add_numa(s, &c), -EINVAL); /* vCPU 2 is in cell 0 */
	str_copy(c.cpus, sizeof(c.cpus), "3-4");
	CU_ASSERT_EQUAL(spec_add_numa(s, &c), -EINVAL); /* no vCPU 4 */
	struct cvmm_spec_pcie e = {.struct_size = sizeof(e), .kind = CVMM_PCIE_SWITCH_UP,
				   .id = "sw0", .parent = "rp0"};
	CU_ASSERT_EQUAL(spec_add_pcie(s, &e), -ENOENT); /* parent not yet there */
	struct cvmm_spec_pcie rp = {.struct_size = sizeof(rp), .kind = CVMM_PCIE_ROOT_PORT,
				    .id = "rp0"};
	CU_ASSERT_EQUAL(spec_add_pcie(s, &rp), 0);
	CU_ASSERT_EQUAL(spec_add_pcie(s, &rp), -EEXIST);
	CU_ASSERT_EQUAL(spec_add_pcie(s, &e), 0);
	struct cvmm_spec_hostdev h = {.struct_size = sizeof(h), .id = "gpu0", .host = "0000:12:00.0",
				      .bus = "rp0"};
	CU_ASSERT_EQUAL(spec_add_hostdev(s, &h), 0);
	str_copy(h.id, sizeof(h.id), "gpu1");
	CU_ASSERT_EQUAL(spec_add_hostdev(s, &h), -EEXIST); /* the same host device */
	str_copy(h.host, sizeof(h.host), "12:00.0");
	CU_ASSERT_EQUAL(spec_add_hostdev(s, &h), -EINVAL); /* the full form only */
	str_copy(h.id, sizeof(h.id), "rp0");
	str_copy(h.host, sizeof(h.host), "0000:13:00.0");
	CU_ASSERT_EQUAL(spec_add_hostdev(s, &h), -EEXIST); /* id of a PCIe element */
	/* A struct of a shorter (older) layout is refused, not over-read. */
	h.struct_size = offsetof(struct cvmm_spec_hostdev, bus);
	str_copy(h.id, sizeof(h.id), "gpu2");
	CU_ASSERT_EQUAL(spec_add_hostdev(s, &h), -EINVAL);
	/* The whole-spec rules: cell 0 covers 0-2 only, and rp0 now holds a
	 * switch and a GPU. */
	char err[256] = "";
	CU_ASSERT_EQUAL(spec_check(s, err, sizeof(err)), -EINVAL);
	CU_ASSERT(strstr(err, "vCPUs 3 are in no cell") != NULL);
	spec_free(s);
}

static int cpus_allowed(int pid, int tid, char *out, size_t len)
{
	char path[96], line[256];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	out[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cpus_allowed_list:", 18)) {
			char *v = line + 18;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = 0;
			str_copy(out, len, v);
		}
	fclose(f);
	return 0;
}

/* The real thing: QEMU 7.2 under TCG, paused, two vCPUs pinned crosswise
 * (vCPU 0 -> host CPU 1, vCPU 1 -> host CPU 0), emulator threads on CPU 0. */
static void test_real_qemu(void)
{
	char sock[] = "/tmp/cvmm-test-pin.XXXXXX";
	CU_ASSERT_FATAL(mkdtemp(sock) != NULL);
	char path[128];
	snprintf(path, sizeof(path), "%s/qmp.sock", sock);
	char mon[160];
	snprintf(mon, sizeof(mon), "unix:%s,server=on,wait=off", path);
	CU_ASSERT_FATAL(sysconf(_SC_NPROCESSORS_ONLN) >= 2);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-machine", "q35",
		       "-accel", "tcg,thread=multi", "-smp", "2", "-m", "64", "-nodefaults",
		       "-display", "none", "-S", "-qmp", mon, (char *)NULL);
		_exit(127);
	}
	struct qmp *q = NULL;
	char err[512] = "";
	int r = qmp_connect(path, 10000, &q, err, sizeof(err));
	if (r < 0)
		printf("\n  QMP: %s", err);
	CU_ASSERT_EQUAL(r, 0);
	if (q) {
		struct cvmm_spec *s = pinned_spec(2, "0");
		add_pin(s, 0, "1");
		add_pin(s, 1, "0");
		r = pin_qemu(q, pid, &s->pub, err, sizeof(err));
		if (r < 0)
			printf("\n  pin_qemu: %s", err);
		CU_ASSERT_EQUAL(r, 0);
		char *ret = NULL;
		int tids[4];
		size_t n = 0;
		CU_ASSERT_EQUAL(qmp_command(q, "query-cpus-fast", NULL, 5000, &ret, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(pin_parse_cpus(ret ? ret : "", tids, 4, &n, err, sizeof(err)), 0);
		free(ret);
		CU_ASSERT_EQUAL_FATAL(n, 2);
		/* What the kernel says each thread may run on. */
		int *all = NULL;
		size_t n_all = 0;
		CU_ASSERT_EQUAL(pin_list_threads(pid, &all, &n_all), 0);
		CU_ASSERT(n_all > 2); /* the vCPUs and at least the main loop */
		for (size_t i = 0; i < n_all; i++) {
			char got[64];
			CU_ASSERT_EQUAL(cpus_allowed(pid, all[i], got, sizeof(got)), 0);
			const char *want = all[i] == tids[0] ? "1" : "0";
			printf("\n  thread %d%s: Cpus_allowed_list %s", all[i],
			       all[i] == tids[0] ? " (vCPU 0)" : all[i] == tids[1] ? " (vCPU 1)" : "",
			       got);
			CU_ASSERT_STRING_EQUAL(got, want);
		}
		free(all);
		spec_free(s);
		qmp_command(q, "quit", NULL, 5000, NULL, err, sizeof(err));
		qmp_close(q);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(path);
	rmdir(sock);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite su = CU_add_suite("pin", NULL, NULL);
	if (!su || !CU_add_test(su, "CPU lists: parse and format", test_cpulist) ||
	    !CU_add_test(su, "query-cpus-fast reply", test_parse_cpus) ||
	    !CU_add_test(su, "plan: emulator threads, then vCPUs", test_plan) ||
	    !CU_add_test(su, "1.2 builders refuse what they can see", test_builders) ||
	    !CU_add_test(su, "real QEMU (TCG): threads pinned as asked", test_real_qemu)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
