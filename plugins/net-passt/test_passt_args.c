/*
 * Unit tests of net-passt's pure half: address, netmask and MAC checks, the
 * port-mapping rules, and the passt command line built from one NIC.
 */
#include "passt_args.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const NAMES[3] = {"a", "n", "g"};

static void test_family(void)
{
	CU_ASSERT_EQUAL(passt_ip_family("10.0.2.10"), 4);
	CU_ASSERT_EQUAL(passt_ip_family("::1"), 6);
	CU_ASSERT_EQUAL(passt_ip_family("fd00::2"), 6);
	CU_ASSERT_EQUAL(passt_ip_family(""), 0);
	CU_ASSERT_EQUAL(passt_ip_family("10.0.2"), 0);
	CU_ASSERT_EQUAL(passt_ip_family("localhost"), 0);
}

static void test_netmask(void)
{
	CU_ASSERT_EQUAL(passt_netmask_prefix("255.255.255.0"), 24);
	CU_ASSERT_EQUAL(passt_netmask_prefix("255.255.0.0"), 16);
	CU_ASSERT_EQUAL(passt_netmask_prefix("255.255.255.252"), 30);
	CU_ASSERT_EQUAL(passt_netmask_prefix("24"), 24);
	CU_ASSERT_EQUAL(passt_netmask_prefix("0"), 0);
	CU_ASSERT_EQUAL(passt_netmask_prefix("33"), -1);
	CU_ASSERT_EQUAL(passt_netmask_prefix("255.0.255.0"), -1);
	CU_ASSERT_EQUAL(passt_netmask_prefix("255.255.255.1"), -1);
	CU_ASSERT_EQUAL(passt_netmask_prefix("abc"), -1);
	CU_ASSERT_EQUAL(passt_netmask_prefix(""), -1);
	char buf[16];
	passt_netmask_from_prefix(24, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "255.255.255.0");
	passt_netmask_from_prefix(30, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "255.255.255.252");
	passt_netmask_from_prefix(8, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "255.0.0.0");
}

static void test_mac(void)
{
	CU_ASSERT_TRUE(passt_mac_valid("52:54:00:12:34:56"));
	CU_ASSERT_TRUE(passt_mac_valid("02:AB:cd:00:00:01"));
	CU_ASSERT_FALSE(passt_mac_valid("01:00:5e:00:00:01")); /* multicast */
	CU_ASSERT_FALSE(passt_mac_valid("ff:ff:ff:ff:ff:ff"));
	CU_ASSERT_FALSE(passt_mac_valid("00:00:00:00:00:00"));
	CU_ASSERT_FALSE(passt_mac_valid("52:54:00:12:34"));
	CU_ASSERT_FALSE(passt_mac_valid("52-54-00-12-34-56"));
	CU_ASSERT_FALSE(passt_mac_valid("52:54:00:12:34:5g"));
	CU_ASSERT_FALSE(passt_mac_valid("52:54:00:12:34:56,x"));
}

#define L3_OK(a, n, g)                                                                             \
	do {                                                                                       \
		char e_[256] = "";                                                                 \
		int r_ = passt_check_l3(a, n, g, NAMES, e_, sizeof(e_));                           \
		if (r_)                                                                            \
			printf("\n    %s %s %s: %s\n", a, n, g, e_);                               \
		CU_ASSERT_EQUAL(r_, 0);                                                            \
	} while (0)

static int l3_err(const char *a, const char *n, const char *g, const char *want)
{
	char e[256] = "";
	int r = passt_check_l3(a, n, g, NAMES, e, sizeof(e));
	if (r != -EINVAL || !strstr(e, want))
		printf("\n    %s %s %s -> %d '%s' (want '%s')\n", a, n, g, r, e, want);
	return r == -EINVAL && strstr(e, want);
}

static void test_l3(void)
{
	L3_OK("10.0.2.10", "255.255.255.0", "10.0.2.2"); /* dstack's defaults */
	L3_OK("10.0.3.7", "24", "10.0.3.1");
	L3_OK("", "", "");          /* all from the host */
	L3_OK("10.0.2.10", "", ""); /* address only */
	CU_ASSERT_TRUE(l3_err("10.0.2.10", "255.255.255.0", "10.0.3.1", "g: 10.0.3.1 is outside"));
	CU_ASSERT_TRUE(
	    l3_err("10.0.2.10", "255.255.255.0", "10.0.2.10", "also the guest's address"));
	CU_ASSERT_TRUE(l3_err("fd00::10", "", "", "a: must be an IPv4 address"));
	CU_ASSERT_TRUE(l3_err("10.0.2.10", "", "fd00::1", "g: must be an IPv4 address"));
	CU_ASSERT_TRUE(l3_err("10.0.2", "24", "", "a: must be an IPv4 address"));
	CU_ASSERT_TRUE(l3_err("10.0.2.10", "255.0.255.0", "", "n: must be a contiguous"));
	CU_ASSERT_TRUE(l3_err("10.0.2.10", "32", "", "leaves no room"));
	CU_ASSERT_TRUE(
	    l3_err("10.0.2.255", "24", "10.0.2.2", "a: 10.0.2.255 is the network or broadcast"));
	CU_ASSERT_TRUE(
	    l3_err("10.0.2.10", "24", "10.0.2.0", "g: 10.0.2.0 is the network or broadcast"));
}

static void test_ports(void)
{
	struct passt_port p[3] = {
	    {0, "127.0.0.1", 18080, 8080},
	    {1, "127.0.0.1", 18080, 53}, /* udp: its own number space */
	    {0, "::1", 18081, 8081},
	};
	char e[256];
	CU_ASSERT_EQUAL(passt_check_ports(p, 2, 1, e, sizeof(e)), 0);
	CU_ASSERT_EQUAL(passt_check_ports(p, 3, 0, e, sizeof(e)), 0);
	CU_ASSERT_EQUAL(passt_check_ports(p, 3, 1, e, sizeof(e)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "ports[2].host_address: ::1 is IPv6"));
	/* One host port, two guest ports: passt has one translation per port. */
	struct passt_port q[2] = {{0, "127.0.0.1", 18080, 8080}, {0, "127.0.0.2", 18080, 9090}};
	CU_ASSERT_EQUAL(passt_check_ports(q, 2, 1, e, sizeof(e)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "ports[1]: tcp host port 18080 goes to VM port 8080"));
	q[1].vm_port = 8080; /* same translation on two addresses: fine */
	CU_ASSERT_EQUAL(passt_check_ports(q, 2, 1, e, sizeof(e)), 0);
	struct passt_port bad = {0, "localhost", 1, 1};
	CU_ASSERT_EQUAL(passt_check_ports(&bad, 1, 1, e, sizeof(e)), -EINVAL);
}

static void join(const struct passt_argv *a, char *out, size_t len)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < a->n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? " " : "", a->v[i]);
}

static void test_argv_dstack_defaults(void)
{
	struct passt_nic n;
	memset(&n, 0, sizeof(n));
	snprintf(n.binary, sizeof(n.binary), "/usr/bin/passt");
	snprintf(n.runas, sizeof(n.runas), "0:0");
	snprintf(n.socket, sizeof(n.socket), "/run/cvmm/vms/x/passt-net0.sock");
	snprintf(n.pidfile, sizeof(n.pidfile), "/run/cvmm/vms/x/passt-net0.pid");
	snprintf(n.logfile, sizeof(n.logfile), "/run/cvmm/vms/x/passt-net0.log");
	snprintf(n.address, sizeof(n.address), "10.0.2.10");
	snprintf(n.netmask, sizeof(n.netmask), "255.255.255.0");
	snprintf(n.gateway, sizeof(n.gateway), "10.0.2.2");
	snprintf(n.dns[0], sizeof(n.dns[0]), "1.1.1.1");
	snprintf(n.dns[1], sizeof(n.dns[1]), "1.0.0.1");
	n.n_dns = 2;
	n.no_map_gw = 1;
	n.ipv4_only = 1;
	n.ports[0] = (struct passt_port){0, "127.0.0.1", 18080, 8080};
	n.ports[1] = (struct passt_port){1, "127.0.0.1", 18053, 53};
	n.n_ports = 2;
	struct passt_argv a = {0};
	char e[256], s[2048];
	CU_ASSERT_EQUAL_FATAL(passt_build_argv(&n, &a, e, sizeof(e)), 0);
	CU_ASSERT_PTR_NULL(a.v[a.n]);
	join(&a, s, sizeof(s));
	CU_ASSERT_STRING_EQUAL(
	    s, "/usr/bin/passt --foreground --one-off --runas 0:0"
	       " --socket /run/cvmm/vms/x/passt-net0.sock --pid /run/cvmm/vms/x/passt-net0.pid"
	       " --log-file /run/cvmm/vms/x/passt-net0.log --address 10.0.2.10"
	       " --netmask 255.255.255.0 --gateway 10.0.2.2 --dns 1.1.1.1 --dns 1.0.0.1"
	       " --no-map-gw --ipv4-only --tcp-ports 127.0.0.1/18080:8080"
	       " --udp-ports 127.0.0.1/18053:53");
	passt_argv_free(&a);
}

static void test_argv_minimal_and_newer_options(void)
{
	struct passt_nic n;
	memset(&n, 0, sizeof(n));
	snprintf(n.binary, sizeof(n.binary), "passt");
	snprintf(n.socket, sizeof(n.socket), "/r/s.sock");
	snprintf(n.interface, sizeof(n.interface), "eth1");
	snprintf(n.map_host_loopback, sizeof(n.map_host_loopback), "10.0.2.2");
	snprintf(n.map_guest_addr, sizeof(n.map_guest_addr), "none");
	n.ports[0] = (struct passt_port){0, "::1", 18080, 8080};
	n.n_ports = 1;
	struct passt_argv a = {0};
	char e[256], s[2048];
	CU_ASSERT_EQUAL_FATAL(passt_build_argv(&n, &a, e, sizeof(e)), 0);
	join(&a, s, sizeof(s));
	CU_ASSERT_STRING_EQUAL(s, "passt --foreground --one-off --socket /r/s.sock --interface eth1"
	                          " --map-host-loopback 10.0.2.2 --map-guest-addr none"
	                          " --tcp-ports ::1/18080:8080");
	passt_argv_free(&a);
}

static void test_argv_no_socket(void)
{
	struct passt_nic n;
	memset(&n, 0, sizeof(n));
	snprintf(n.binary, sizeof(n.binary), "passt");
	struct passt_argv a = {0};
	char e[256];
	CU_ASSERT_EQUAL(passt_build_argv(&n, &a, e, sizeof(e)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "no socket path"));
	passt_argv_free(&a);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("net-passt", NULL, NULL);
	if (!s || !CU_add_test(s, "address families", test_family) ||
	    !CU_add_test(s, "netmasks", test_netmask) ||
	    !CU_add_test(s, "MAC addresses", test_mac) ||
	    !CU_add_test(s, "address, netmask, gateway", test_l3) ||
	    !CU_add_test(s, "port mappings", test_ports) ||
	    !CU_add_test(s, "argv: dstack defaults", test_argv_dstack_defaults) ||
	    !CU_add_test(s, "argv: minimal, newer options", test_argv_minimal_and_newer_options) ||
	    !CU_add_test(s, "argv: no socket path", test_argv_no_socket)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
