/*
 * Unit tests of net-overlay's ipam: CIDR parsing, slice and gateway
 * checks, which addresses may be handed out, first-free picking, the lease
 * table's text form, and the atomic state-file writes.
 */
#include "ipam.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t A(const char *s)
{
	uint32_t a = 0;
	CU_ASSERT_EQUAL_FATAL(ipam_parse_addr(s, &a), 0);
	return a;
}

static struct ipam_net net(const char *subnet, const char *slice, const char *gw)
{
	struct ipam_net n = {0};
	char why[256];
	CU_ASSERT_EQUAL_FATAL(
	    ipam_parse_cidr(subnet, &n.subnet, &n.subnet_prefix, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL_FATAL(ipam_parse_cidr(slice, &n.slice, &n.slice_prefix, why, sizeof(why)),
	                      0);
	n.gateway = gw ? A(gw) : 0;
	return n;
}

static void test_parse(void)
{
	uint32_t a, p;
	char why[256];
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.200.0.0/16", &a, &p, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(a, 0x0ac80000u);
	CU_ASSERT_EQUAL(p, 16);
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.200.1.0/16", &a, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "host bits"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "10.200.0.0/16"));
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.200.0.0", &a, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.200.0.0/33", &a, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.200.0.0/", &a, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.200.0.0/1x", &a, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(ipam_parse_cidr("10.300.0.0/16", &a, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(ipam_parse_addr("1.2.3", &a), -EINVAL);
	char out[16];
	ipam_format(0x0ac80102u, out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "10.200.1.2");
}

static void test_check(void)
{
	char why[256];
	struct ipam_net n = net("10.200.0.0/16", "10.200.1.0/24", "10.200.1.1");
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), 0);
	n = net("10.200.0.0/16", "10.201.1.0/24", NULL);
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "slice"));
	n = net("10.200.0.0/16", "10.0.0.0/8", NULL);
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), -EINVAL);
	n = net("10.200.0.0/16", "10.200.1.0/31", NULL);
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), -EINVAL);
	n = net("10.200.0.0/16", "10.200.1.0/24", "10.200.2.1");
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "gateway"));
	n = net("10.200.0.0/16", "10.200.1.0/24", "10.200.1.255");
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), -EINVAL);
	n = net("10.0.0.0/7", "10.0.0.0/24", NULL);
	CU_ASSERT_EQUAL(ipam_check(&n, why, sizeof(why)), -EINVAL);
}

static void test_usable_and_pick(void)
{
	struct ipam_net n = net("10.200.0.0/16", "10.200.1.0/24", "10.200.1.1");
	CU_ASSERT_FALSE(ipam_usable(&n, A("10.200.1.0")));
	CU_ASSERT_FALSE(ipam_usable(&n, A("10.200.1.1")));   /* gateway */
	CU_ASSERT_FALSE(ipam_usable(&n, A("10.200.1.255"))); /* slice broadcast */
	CU_ASSERT_FALSE(ipam_usable(&n, A("10.200.2.5")));   /* another host's slice */
	CU_ASSERT_TRUE(ipam_usable(&n, A("10.200.1.2")));
	CU_ASSERT_TRUE(ipam_usable(&n, A("10.200.1.254")));
	/* The slice at the edge of the subnet: the subnet's own edges are out. */
	struct ipam_net e = net("10.200.0.0/16", "10.200.0.0/24", NULL);
	CU_ASSERT_FALSE(ipam_usable(&e, A("10.200.0.0")));
	CU_ASSERT_TRUE(ipam_usable(&e, A("10.200.0.1")));
	struct leases l = {0};
	CU_ASSERT_EQUAL(ipam_pick(&n, &l), A("10.200.1.2"));
	CU_ASSERT_EQUAL(leases_add(&l, A("10.200.1.2"), "vm-a", 0), 0);
	CU_ASSERT_EQUAL(leases_add(&l, A("10.200.1.4"), "vm-b", 0), 0);
	CU_ASSERT_EQUAL(ipam_pick(&n, &l), A("10.200.1.3"));
	/* A /29 slice with a gateway: 8 addresses, minus network, broadcast
	 * and gateway, leaves 5. */
	struct ipam_net small = net("10.200.0.0/16", "10.200.3.0/29", "10.200.3.1");
	struct leases s = {0};
	char vm[16];
	for (int k = 0; k < 5; k++) {
		uint32_t a = ipam_pick(&small, &s);
		CU_ASSERT_NOT_EQUAL(a, 0);
		snprintf(vm, sizeof(vm), "vm%d", k);
		leases_add(&s, a, vm, 0);
	}
	CU_ASSERT_EQUAL(ipam_pick(&small, &s), 0);
	/* Released, the address is free again, and only that one. */
	CU_ASSERT_EQUAL(leases_remove(&s, "vm2", 0), 1);
	CU_ASSERT_EQUAL(leases_remove(&s, "vm2", 0), 0);
	CU_ASSERT_EQUAL(ipam_pick(&small, &s), A("10.200.3.4"));
	leases_free(&s);
	leases_free(&l);
}

static void test_leases_text(void)
{
	struct leases l = {0}, back = {0};
	char why[256];
	leases_add(&l, A("10.200.1.2"), "0b9e4c7d-2f1a-4e8b-b3c5-6d7e8f9a0b1c", 0);
	leases_add(&l, A("10.200.1.3"), "0b9e4c7d-2f1a-4e8b-b3c5-6d7e8f9a0b1c", 1);
	char *text = leases_format(&l);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(leases_parse(text, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.n, 2);
	const struct lease *x = leases_by_owner(&back, "0b9e4c7d-2f1a-4e8b-b3c5-6d7e8f9a0b1c", 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	CU_ASSERT_EQUAL(x->addr, A("10.200.1.3"));
	CU_ASSERT_PTR_NOT_NULL(leases_by_addr(&back, A("10.200.1.2")));
	CU_ASSERT_PTR_NULL(leases_by_addr(&back, A("10.200.1.4")));
	free(text);
	leases_free(&back);
	leases_free(&l);
	/* Damage is refused, not read as "no leases" (that would hand out
	 * addresses in use). */
	CU_ASSERT_EQUAL(leases_parse("10.200.1.2 vm\n", &back, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "line 1"));
	CU_ASSERT_EQUAL(leases_parse("# c\n\n10.200.1.x vm 0\n", &back, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "line 3"));
	CU_ASSERT_EQUAL(leases_parse("# only a comment\n\n", &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.n, 0);
}

static void test_files(void)
{
	char dir[] = "/tmp/cvmm-ipam-test.XXXXXX";
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	char *text = NULL;
	CU_ASSERT_EQUAL(file_read(dir, "leases", &text), -ENOENT);
	CU_ASSERT_EQUAL(file_write_atomic(dir, "leases", "one\n"), 0);
	CU_ASSERT_EQUAL(file_write_atomic(dir, "leases", "two\n"), 0);
	CU_ASSERT_EQUAL(file_read(dir, "leases", &text), 0);
	CU_ASSERT_STRING_EQUAL(text, "two\n");
	free(text);
	/* No temp file is left next to it. */
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s/.leases.tmp", dir);
	CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
	snprintf(tmp, sizeof(tmp), "%s/leases", dir);
	unlink(tmp);
	CU_ASSERT_EQUAL(rmdir(dir), 0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	CU_pSuite s = CU_add_suite("overlay_ipam", NULL, NULL);
	CU_add_test(s, "CIDR and address parsing", test_parse);
	CU_add_test(s, "slice and gateway checks", test_check);
	CU_add_test(s, "usable addresses, first free, exhaustion", test_usable_and_pick);
	CU_add_test(s, "lease table text form", test_leases_text);
	CU_add_test(s, "atomic state files", test_files);
	return unit_run();
}
