/*
 * Unit tests of net-bridge's daemon-free parts: TAP names and MACs, address
 * and MAC allocation, the state file, port lists, the nft scripts (checked
 * by `nft -c` when it can run: root, nftables installed) and the dnsmasq
 * lease-file purge. Run alone: build/plugins/net-bridge/test_net_bridge.
 */
#include "nb.h"
#include "proc.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VM1 "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define VM2 "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"

static char tmpdir[256];

static void managed_cfg(struct nb_config *c)
{
	memset(c, 0, sizeof(*c));
	c->managed = 1;
	snprintf(c->bridge, sizeof(c->bridge), "cvmmbr0");
	nb_table_name(c->bridge, c->table, sizeof(c->table));
	nb_net_parse("192.168.123.0/24", &c->net, &c->prefix);
	c->gateway = c->net + 1;
	c->pool_first = c->net + 1;
	c->pool_last = c->net + 254;
	c->nat = 1;
	snprintf(c->lease_path, sizeof(c->lease_path), "%s/cvmmbr0.leases", tmpdir);
}

static void test_names(void)
{
	char tap[32], tap2[32], mac[18], mac2[18];
	CU_ASSERT_EQUAL(nb_tap_name(VM1, 0, tap, sizeof(tap)), 0);
	CU_ASSERT_STRING_EQUAL(tap, "cv5f0c1a2b3cn0");
	CU_ASSERT(strlen(tap) <= 15);
	CU_ASSERT_EQUAL(nb_tap_name(VM1, 7, tap2, sizeof(tap2)), 0);
	CU_ASSERT_STRING_EQUAL(tap2, "cv5f0c1a2b3cn7");
	CU_ASSERT_EQUAL(nb_tap_name(VM1, 99, tap2, sizeof(tap2)), 0);
	CU_ASSERT_EQUAL(strlen(tap2), 15);
	CU_ASSERT_EQUAL(nb_tap_name(VM1, 100, tap2, sizeof(tap2)), -EINVAL);
	CU_ASSERT_EQUAL(nb_tap_name("short", 0, tap2, sizeof(tap2)), -EINVAL);

	nb_guest_mac(VM1, 0, 0, mac, sizeof(mac));
	nb_guest_mac(VM1, 0, 0, mac2, sizeof(mac2));
	CU_ASSERT_STRING_EQUAL(mac, mac2); /* stable */
	CU_ASSERT_EQUAL(strncmp(mac, "52:54:00:", 9), 0);
	nb_guest_mac(VM1, 1, 0, mac2, sizeof(mac2));
	CU_ASSERT_STRING_NOT_EQUAL(mac, mac2);
	nb_tap_mac(mac, mac2, sizeof(mac2));
	CU_ASSERT_EQUAL(strncmp(mac2, "fe:54:00:", 9), 0);
	CU_ASSERT_STRING_EQUAL(mac + 9, mac2 + 9);
	nb_bridge_mac("cvmmbr0", mac, sizeof(mac));
	CU_ASSERT_EQUAL(strncmp(mac, "02:63:76:", 9), 0);

	char t[64];
	nb_table_name("br-lan.5", t, sizeof(t));
	CU_ASSERT_STRING_EQUAL(t, "cvmm_br_lan_5");
}

static void test_addresses(void)
{
	uint32_t net, ip;
	int p;
	CU_ASSERT_EQUAL(nb_net_parse("10.1.0.0/16", &net, &p), 0);
	CU_ASSERT_EQUAL(p, 16);
	CU_ASSERT_EQUAL(nb_net_parse("10.1.0.1/16", &net, &p), -EINVAL); /* host bits */
	CU_ASSERT_EQUAL(nb_net_parse("10.1.0.0/31", &net, &p), -EINVAL);
	CU_ASSERT_EQUAL(nb_net_parse("10.1.0.0", &net, &p), -EINVAL);
	CU_ASSERT_EQUAL(nb_net_parse("10.1.0.0/x", &net, &p), -EINVAL);
	CU_ASSERT_EQUAL(nb_ip_parse("::1", &ip), -EINVAL);
	CU_ASSERT_EQUAL(nb_ip_parse("192.168.1.20", &ip), 0);
	char s[32];
	nb_ip_str(ip, s, sizeof(s));
	CU_ASSERT_STRING_EQUAL(s, "192.168.1.20");
	uint8_t m[6];
	CU_ASSERT_EQUAL(nb_mac_parse("52:54:00:AB:cd:01", m), 0);
	CU_ASSERT_EQUAL(m[3], 0xab);
	CU_ASSERT_EQUAL(nb_mac_parse("52:54:00:ab:cd", m), -EINVAL);
	CU_ASSERT_EQUAL(nb_mac_parse("52:54:00:ab:cd:0g", m), -EINVAL);
}

static void test_alloc_ip(void)
{
	struct nb_config c;
	managed_cfg(&c);
	c.pool_first = c.net + 1; /* the gateway is in the pool: skipped */
	c.pool_last = c.net + 4;
	struct nb_store s;
	memset(&s, 0, sizeof(s));
	uint32_t ip;
	struct nb_nic *a = nb_store_add(&s, VM1, 0);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, a, 0, &ip), 0);
	CU_ASSERT_EQUAL(ip, c.net + 2);
	a->ip = ip;
	struct nb_nic *b = nb_store_add(&s, VM2, 0);
	a = &s.nics[0];
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, b, 0, &ip), 0);
	CU_ASSERT_EQUAL(ip, c.net + 3);
	b->ip = ip;
	/* Released addresses come back last: round robin. */
	nb_store_remove(&s, &s.nics[0]);
	b = nb_store_add(&s, VM1, 1);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, b, 0, &ip), 0);
	CU_ASSERT_EQUAL(ip, c.net + 4);
	b->ip = ip;
	struct nb_nic *d = nb_store_add(&s, VM1, 2);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, d, 0, &ip), 0);
	CU_ASSERT_EQUAL(ip, c.net + 2);
	d->ip = ip;
	struct nb_nic *e = nb_store_add(&s, VM1, 3);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, e, 0, &ip), -ENOSPC);
	/* Asked for: inside the subnet, not the gateway, not taken. */
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, e, c.net + 100, &ip), 0);
	CU_ASSERT_EQUAL(ip, c.net + 100);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, e, c.net + 1, &ip), -EADDRINUSE);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, e, c.net + 3, &ip), -EADDRINUSE);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, e, c.net + 255, &ip), -ERANGE);
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, e, c.net + 256, &ip), -ERANGE);
	/* A NIC keeps its own address when asked again. */
	CU_ASSERT_EQUAL(nb_alloc_ip(&s, &c, d, d->ip, &ip), 0);
	nb_store_free(&s);
}

static void test_alloc_mac(void)
{
	struct nb_store s;
	memset(&s, 0, sizeof(s));
	char mac[18], first[18];
	struct nb_nic *a = nb_store_add(&s, VM1, 0);
	CU_ASSERT_EQUAL(nb_alloc_mac(&s, a, NULL, mac, sizeof(mac)), 0);
	nb_guest_mac(VM1, 0, 0, first, sizeof(first));
	CU_ASSERT_STRING_EQUAL(mac, first);
	/* Another NIC holds that MAC: the next salt is taken. */
	struct nb_nic *b = nb_store_add(&s, VM2, 0);
	snprintf(b->mac, sizeof(b->mac), "%s", first);
	a = &s.nics[0];
	CU_ASSERT_EQUAL(nb_alloc_mac(&s, a, NULL, mac, sizeof(mac)), 0);
	CU_ASSERT_STRING_NOT_EQUAL(mac, first);
	CU_ASSERT_EQUAL(nb_alloc_mac(&s, a, "52:54:00:AA:BB:CC", mac, sizeof(mac)), 0);
	CU_ASSERT_STRING_EQUAL(mac, "52:54:00:aa:bb:cc");
	CU_ASSERT_EQUAL(nb_alloc_mac(&s, a, first, mac, sizeof(mac)), -EADDRINUSE);
	CU_ASSERT_EQUAL(nb_alloc_mac(&s, a, "01:00:5e:00:00:01", mac, sizeof(mac)), -EINVAL);
	nb_store_free(&s);
}

static void test_store_file(void)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/state", tmpdir);
	struct nb_store s, t;
	memset(&s, 0, sizeof(s));
	struct nb_config c;
	managed_cfg(&c);
	s.cursor = c.net + 7;
	s.infra.up = 1;
	s.infra.managed = 1;
	snprintf(s.infra.bridge, sizeof(s.infra.bridge), "cvmmbr0");
	snprintf(s.infra.table, sizeof(s.infra.table), "cvmm_cvmmbr0");
	s.infra.net = c.net;
	s.infra.prefix = 24;
	s.infra.gateway = c.gateway;
	struct nb_nic *a = nb_store_add(&s, VM1, 0);
	snprintf(a->mac, sizeof(a->mac), "52:54:00:01:02:03");
	nb_tap_name(VM1, 0, a->tap, sizeof(a->tap));
	a->ip = c.net + 5;
	a->active = 1;
	struct nb_nic *b = nb_store_add(&s, VM2, 1);
	snprintf(b->mac, sizeof(b->mac), "52:54:00:01:02:04");
	nb_tap_name(VM2, 1, b->tap, sizeof(b->tap));
	CU_ASSERT_EQUAL(nb_store_save(&s, path), 0);
	char err[256] = "";
	CU_ASSERT_EQUAL(nb_store_load(&t, path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(t.n, 2);
	CU_ASSERT_EQUAL(t.cursor, c.net + 7);
	CU_ASSERT_EQUAL(t.infra.up, 1);
	CU_ASSERT_EQUAL(t.infra.managed, 1);
	CU_ASSERT_EQUAL(t.infra.gateway, c.gateway);
	CU_ASSERT_STRING_EQUAL(t.infra.table, "cvmm_cvmmbr0");
	struct nb_nic *x = nb_store_find(&t, VM1, 0), *y = nb_store_find(&t, VM2, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	CU_ASSERT_PTR_NOT_NULL_FATAL(y);
	CU_ASSERT_EQUAL(x->ip, c.net + 5);
	CU_ASSERT_EQUAL(x->active, 1);
	CU_ASSERT_EQUAL(y->ip, 0);
	CU_ASSERT_EQUAL(y->active, 0);
	CU_ASSERT_STRING_EQUAL(y->tap, b->tap);
	CU_ASSERT_EQUAL(nb_store_active(&t), 1);
	nb_store_free(&t);
	/* Nothing left to record: no file. */
	nb_store_free(&s);
	CU_ASSERT_EQUAL(nb_store_save(&s, path), 0);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	CU_ASSERT_EQUAL(nb_store_load(&t, path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(t.n, 0);
	/* A damaged file is refused, naming the line. */
	FILE *f = fopen(path, "w");
	fprintf(f, "cvmm-net-bridge 1\ncursor 10.0.0.1\nnic short 0 x y - 0\n");
	fclose(f);
	CU_ASSERT_EQUAL(nb_store_load(&t, path, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: bad nic line"));
	unlink(path);
}

static void test_ports(void)
{
	struct nb_port p[4] = {{0, 0x7f000001, 18080, 8080}, {1, 0, 5353, 53}};
	char s[256];
	CU_ASSERT(nb_ports_format(p, 2, s, sizeof(s)) > 0);
	CU_ASSERT_STRING_EQUAL(s, "tcp:127.0.0.1:18080:8080,udp:0.0.0.0:5353:53");
	struct nb_port q[4];
	CU_ASSERT_EQUAL(nb_ports_parse(s, q, 4), 2);
	CU_ASSERT_EQUAL(memcmp(p, q, 2 * sizeof(*p)), 0);
	CU_ASSERT_EQUAL(nb_ports_parse("tcp:127.0.0.1:0:8080", q, 4), -EINVAL);
	CU_ASSERT_EQUAL(nb_ports_parse("sctp:127.0.0.1:1:2", q, 4), -EINVAL);
	CU_ASSERT_EQUAL(nb_ports_parse(s, q, 1), -E2BIG);
	CU_ASSERT_EQUAL(nb_ports_parse("", q, 4), 0);
}

static int nft_check(const char *script)
{
	char nft[256], err[1024];
	if (geteuid() != 0 || cp_find_program("nft", nft, sizeof(nft)) < 0)
		return 0;
	/* -c: the kernel checks the whole transaction, then drops it. */
	char *argv[] = {nft, "-c", "-f", "-", NULL};
	int r = nb_run(argv, script, err, sizeof(err));
	if (r != 0)
		printf("\n    nft -c: %s\n%s", err, script);
	return r;
}

static void test_nft_scripts(void)
{
	struct nb_config c;
	managed_cfg(&c);
	char base[2048], vm[4096], del[1024], tab[256], tap[16];
	CU_ASSERT(nb_nft_base(&c, base, sizeof(base)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(base, "add table ip cvmm_cvmmbr0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		base, "ip saddr 192.168.123.0/24 ip daddr != { 192.168.123.0/24, 224.0.0.0/24, 255.255.255.255 } masquerade"));
	CU_ASSERT_PTR_NOT_NULL(strstr(base, "iifname \"cvmmbr0\" ip daddr 127.0.0.0/8 drop"));
	CU_ASSERT_PTR_NOT_NULL(strstr(base, "oifname \"cvmmbr0\" ip saddr 127.0.0.0/8 masquerade"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(base, "oifname \"cvmmbr0\" ip saddr 192.168.123.0/24 ct status dnat masquerade"));
	c.nat = 0;
	CU_ASSERT(nb_nft_base(&c, base, sizeof(base)) > 0);
	CU_ASSERT_PTR_NULL(strstr(base, "ip daddr != {"));
	c.nat = 1;
	nb_nft_base(&c, base, sizeof(base));

	nb_tap_name(VM1, 0, tap, sizeof(tap));
	struct nb_port p[3] = {{0, 0x7f000001, 18080, 8080},
			       {1, 0, 5353, 53},
			       {0, (10u << 24) | (99u << 8) | 1, 2222, 22}};
	CU_ASSERT(nb_nft_vm(c.table, tap, VM1, c.net + 5, p, 3, vm, sizeof(vm)) > 0);
	/* loopback: output only; every local address: fib; otherwise daddr */
	CU_ASSERT_PTR_NULL(strstr(vm, "pre_cv5f0c1a2b3cn0 ip daddr 127.0.0.1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		vm, "add rule ip cvmm_cvmmbr0 out_cv5f0c1a2b3cn0 ip daddr 127.0.0.1 tcp dport 18080 dnat to 192.168.123.5:8080 comment \"cvmm vm " VM1 "\""));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(vm, "pre_cv5f0c1a2b3cn0 fib daddr type local udp dport 5353 dnat to 192.168.123.5:53"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(vm, "out_cv5f0c1a2b3cn0 fib daddr type local udp dport 5353 dnat to 192.168.123.5:53"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(vm, "pre_cv5f0c1a2b3cn0 ip daddr 10.0.99.1 tcp dport 2222 dnat to 192.168.123.5:22"));
	CU_ASSERT_PTR_NOT_NULL(strstr(vm, "flush chain ip cvmm_cvmmbr0 pre_cv5f0c1a2b3cn0\n"));
	CU_ASSERT(nb_nft_vm_delete(c.table, tap, del, sizeof(del)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(del, "delete chain ip cvmm_cvmmbr0 out_cv5f0c1a2b3cn0\n"));
	CU_ASSERT(nb_nft_table_delete(c.table, tab, sizeof(tab)) > 0);
	CU_ASSERT_STRING_EQUAL(tab, "add table ip cvmm_cvmmbr0\ndelete table ip cvmm_cvmmbr0\n");
	CU_ASSERT_EQUAL(nb_nft_vm(c.table, tap, VM1, c.net + 5, p, 3, vm, 64), -ENOSPC);

	/* The kernel accepts them (as one transaction, as the plugin runs them). */
	char all[8192];
	nb_nft_vm(c.table, tap, VM1, c.net + 5, p, 3, vm, sizeof(vm));
	snprintf(all, sizeof(all), "%s%s%s%s", base, vm, del, tab);
	CU_ASSERT_EQUAL(nft_check(all), 0);
}

static void test_lease_purge(void)
{
	struct nb_config c;
	managed_cfg(&c);
	struct nb_store s;
	memset(&s, 0, sizeof(s));
	struct nb_nic *a = nb_store_add(&s, VM1, 0);
	snprintf(a->mac, sizeof(a->mac), "52:54:00:01:02:03");
	a->ip = c.net + 5;
	FILE *f = fopen(c.lease_path, "w");
	fprintf(f, "1700000000 52:54:00:01:02:03 192.168.123.5 web1 01:52:54:00:01:02:03\n"
		   "1700000000 52:54:00:09:09:09 192.168.123.6 gone *\n"
		   "1700000000 52:54:00:0a:0a:0a 192.168.123.5 thief *\n"
		   "duid 00:01:00:01\n");
	fclose(f);
	/* 192.168.123.5 is leased to a MAC that is not its NIC's. */
	CU_ASSERT_EQUAL(nb_dns_lease_conflict(&c, &s), 1);
	CU_ASSERT_EQUAL(nb_dns_purge_leases(&c, &s), 0);
	CU_ASSERT_EQUAL(nb_dns_lease_conflict(&c, &s), 0);
	char buf[1024] = "";
	f = fopen(c.lease_path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	CU_ASSERT_STRING_EQUAL(buf,
			       "1700000000 52:54:00:01:02:03 192.168.123.5 web1 01:52:54:00:01:02:03\n");
	/* No NIC left: no lease file. */
	nb_store_free(&s);
	CU_ASSERT_EQUAL(nb_dns_purge_leases(&c, &s), 0);
	CU_ASSERT_NOT_EQUAL(access(c.lease_path, F_OK), 0);
}

static void test_run(void)
{
	char out[256];
	char *argv[] = {"/bin/sh", "-c", "cat; echo oops >&2; exit 3", NULL};
	CU_ASSERT_EQUAL(nb_run(argv, "hello\n", out, sizeof(out)), 3);
	CU_ASSERT_STRING_EQUAL(out, "hello\noops");
	char *none[] = {"/nonexistent/program", NULL};
	CU_ASSERT_EQUAL(nb_run(none, NULL, out, sizeof(out)), 127);
	char path[300];
	snprintf(path, sizeof(path), "%s/atomic", tmpdir);
	CU_ASSERT_EQUAL(nb_write_atomic(path, "abc", 3, 0644), 0);
	struct stat st;
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_size, 3);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);
	unlink(path);
}

/* A process with argv[0] as given and our pid file among its arguments,
 * alive for 30 s (a shell sleeping). */
static pid_t fake_dnsmasq(const char *argv0, const char *pid_arg)
{
	pid_t p = fork();
	if (p == 0) {
		char *argv[] = {(char *)argv0, "-c", "sleep 30; :", "sh", (char *)pid_arg, NULL};
		execv("/bin/sh", argv);
		_exit(127);
	}
	return p;
}

static int wait_pids(const struct nb_config *c, int want, int *pids)
{
	int n = -1;
	for (int i = 0; i < 200 && (n = nb_dns_pids(c, pids, 4)) != want; i++) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return n;
}

/* The bridge's dnsmasq is found again by its pid-file argument in a process
 * called dnsmasq, also when the configured program is a wrapper that execs
 * dnsmasq (as the bridge's own code found it before plugins/common/dhcp.c);
 * another program naming the pid file is not it. */
static void test_dnsmasq_found(void)
{
	struct nb_config c;
	managed_cfg(&c);
	snprintf(c.dnsmasq, sizeof(c.dnsmasq), "/usr/local/sbin/dnsmasq-wrapper");
	snprintf(c.pid_path, sizeof(c.pid_path), "%s/cvmmbr0.pid", tmpdir);
	char arg[700];
	snprintf(arg, sizeof(arg), "--pid-file=%s", c.pid_path);
	int pids[4];
	pid_t editor = fake_dnsmasq("vim", arg);
	pid_t dns = fake_dnsmasq("/usr/sbin/dnsmasq", arg);
	CU_ASSERT_FATAL(editor > 0 && dns > 0);
	CU_ASSERT_EQUAL(wait_pids(&c, 1, pids), 1);
	CU_ASSERT_EQUAL(pids[0], dns);
	kill(dns, SIGKILL);
	kill(editor, SIGKILL);
	waitpid(dns, NULL, 0);
	waitpid(editor, NULL, 0);
	CU_ASSERT_EQUAL(nb_dns_pids(&c, pids, 4), 0);
}

/* A helper gets no descriptor of the daemon but its stdin, stdout and
 * stderr (cp_child_exec), even one the daemon left inheritable. */
static void test_run_fds(void)
{
	int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
	int leak = fcntl(fd, F_DUPFD, 100);
	close(fd);
	CU_ASSERT_FATAL(leak >= 100);
	char out[256];
	/* ls's own: 0, 1, 2 and the directory it reads (3) */
	char *argv[] = {"/bin/ls", "/proc/self/fd", NULL};
	CU_ASSERT_EQUAL(nb_run(argv, NULL, out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "0\n1\n2\n3");
	close(leak);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as in cvmmd */
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cvmm-nb-unit-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("net_bridge", NULL, NULL);
	CU_add_test(s, "TAP names, MACs, table names", test_names);
	CU_add_test(s, "addresses and MACs parse", test_addresses);
	CU_add_test(s, "address allocation: round robin, asked for, exhausted", test_alloc_ip);
	CU_add_test(s, "MAC allocation breaks collisions", test_alloc_mac);
	CU_add_test(s, "state file round trip, removal, damage", test_store_file);
	CU_add_test(s, "port lists", test_ports);
	CU_add_test(s, "nft scripts (and nft -c)", test_nft_scripts);
	CU_add_test(s, "lease file purge", test_lease_purge);
	CU_add_test(s, "helper programs and atomic writes", test_run);
	CU_add_test(s, "dnsmasq found by its pid file, also behind a wrapper", test_dnsmasq_found);
	CU_add_test(s, "helpers get no descriptor of the daemon", test_run_fds);
	int failed = unit_run();
	rmdir(tmpdir);
	return failed;
}
