/*
 * dnsmasq: the DHCP (and optionally DNS) server of a managed bridge, run the
 * way libvirt runs it: one dnsmasq per bridge, daemonised by itself (own
 * session, not the daemon's child, so it survives `kill -9 cvmmd`), with a
 * pid file under <run_path>/net-bridge/, a static-only DHCP range (it
 * answers only MACs listed in the hosts file: one fixed lease per VM NIC),
 * and its lease file under <data_dir>/net-bridge/.
 *
 * Changes to the hosts file reach it with SIGHUP. The process is found by
 * its command line (our pid-file argument) rather than trusted from the pid
 * file alone, so a stale pid file never makes us signal a stranger and a
 * dnsmasq whose pid file is missing is still found and stopped.
 *
 * dnsmasq drops root for "nobody" (or dnsmasq_user) and reads the hosts
 * file as that user, even at start: the file and every directory above it
 * must be readable by others. nb_dns_start() checks that and says so.
 */
#include "nb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int proc_alive(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] && p[2] != 'Z' && p[2] != 'X';
}

int nb_dns_pids(const struct nb_config *c, int *pids, int max)
{
	char want[700];
	snprintf(want, sizeof(want), "--pid-file=%s", c->pid_path);
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], cmd[4096];
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (len <= 0)
			continue;
		cmd[len] = 0;
		const char *base = strrchr(cmd, '/');
		if (strcmp(base ? base + 1 : cmd, "dnsmasq"))
			continue;
		int ours = 0;
		for (char *a = cmd; a < cmd + len; a += strlen(a) + 1)
			ours |= !strcmp(a, want);
		if (ours && proc_alive((int)pid))
			pids[n++] = (int)pid;
	}
	closedir(d);
	return n;
}

int nb_dns_write_hosts(const struct nb_config *c, const struct nb_store *s)
{
	size_t cap = 64 + s->n * 48, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	buf[0] = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct nb_nic *n = &s->nics[i];
		if (!n->active || !n->ip)
			continue;
		char ip[32];
		nb_ip_str(n->ip, ip, sizeof(ip));
		len += (size_t)snprintf(buf + len, cap - len, "%s,%s\n", n->mac, ip);
	}
	int r = nb_mkdir_p(c->run_dir, 0755);
	if (r == 0)
		r = nb_write_atomic(c->hosts_path, buf, len, 0644);
	free(buf);
	return r;
}

/* Lease file lines: "<expiry> <mac> <ip> <hostname> <client-id>". */
static int for_each_lease(const struct nb_config *c, int (*fn)(void *, const char *mac,
							   const char *ip, const char *line),
			  void *arg)
{
	FILE *f = fopen(c->lease_path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char line[512];
	int r = 0;
	while (!r && fgets(line, sizeof(line), f)) {
		char exp[32], mac[64], ip[64];
		if (sscanf(line, "%31s %63s %63s", exp, mac, ip) != 3 || !strcmp(exp, "duid"))
			continue;
		r = fn(arg, mac, ip, line);
	}
	fclose(f);
	return r;
}

static const struct nb_nic *owner_of(const struct nb_store *s, const char *mac, const char *ip,
				     int *ip_match)
{
	uint32_t a;
	*ip_match = 0;
	if (nb_ip_parse(ip, &a) < 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->nics[i].ip == a) {
			*ip_match = 1;
			if (!strcasecmp(s->nics[i].mac, mac))
				return &s->nics[i];
		}
	return NULL;
}

struct purge {
	const struct nb_store *s;
	char *buf;
	size_t len, cap;
	int dropped;
};

static int purge_line(void *arg, const char *mac, const char *ip, const char *line)
{
	struct purge *p = arg;
	int m;
	if (!owner_of(p->s, mac, ip, &m)) {
		p->dropped++;
		return 0;
	}
	size_t l = strlen(line);
	if (p->len + l + 1 > p->cap) {
		size_t cap = (p->cap + l + 1) * 2;
		char *b = realloc(p->buf, cap);
		if (!b)
			return -ENOMEM;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, line, l);
	p->len += l;
	return 0;
}

int nb_dns_purge_leases(const struct nb_config *c, const struct nb_store *s)
{
	struct purge p = {s, NULL, 0, 0, 0};
	int r = for_each_lease(c, purge_line, &p);
	if (r == 0 && !p.len) {
		r = nb_unlink(c->lease_path);
	} else if (r == 0 && p.dropped) {
		r = nb_write_atomic(c->lease_path, p.buf, p.len, 0644);
	}
	free(p.buf);
	return r;
}

static int conflict_line(void *arg, const char *mac, const char *ip, const char *line)
{
	int m;
	return !owner_of(arg, mac, ip, &m) && m ? 1 : 0;
}

/* Every directory above path searchable by others, path readable by them. */
static int readable_by_others(const char *path, char *bad, size_t len)
{
	char tmp[700];
	snprintf(tmp, sizeof(tmp), "%s", path);
	struct stat st;
	if (stat(tmp, &st) == 0 && !(st.st_mode & S_IROTH)) {
		snprintf(bad, len, "%s", tmp);
		return 0;
	}
	for (char *slash = strrchr(tmp, '/'); slash && slash > tmp; slash = strrchr(tmp, '/')) {
		*slash = 0;
		if (stat(tmp, &st) == 0 && !(st.st_mode & S_IXOTH)) {
			snprintf(bad, len, "%s", tmp);
			return 0;
		}
	}
	return 1;
}

int nb_dns_start(const struct nb_config *c, const struct nb_store *s, char *err, size_t errlen)
{
	int r;
	if ((r = nb_dns_write_hosts(c, s)) < 0) {
		snprintf(err, errlen, "dnsmasq hosts file %s: %s", c->hosts_path, strerror(-r));
		return r;
	}
	/* Leases of VMs that are gone would keep their addresses from the VMs
	 * they now belong to: dnsmasq starts from what we know is current. */
	if ((r = nb_dns_purge_leases(c, s)) < 0) {
		snprintf(err, errlen, "dnsmasq lease file %s: %s", c->lease_path, strerror(-r));
		return r;
	}
	char bad[700];
	if (strcmp(c->dnsmasq_user, "root") && !readable_by_others(c->hosts_path, bad, sizeof(bad))) {
		snprintf(err, errlen,
			 "dnsmasq reads %s after dropping root (as user %s) and %s is not %s by others; make run_path world-searchable or set plugin.net-bridge.dnsmasq_user",
			 c->hosts_path, c->dnsmasq_user[0] ? c->dnsmasq_user : "nobody", bad,
			 strcmp(bad, c->hosts_path) ? "searchable" : "readable");
		return -EACCES;
	}
	char net[32], mask[32], a_pid[700], a_if[64], a_range[160], a_hosts[700], a_lease[700],
		a_user[96], a_log[300], a_max[48];
	nb_ip_str(c->net, net, sizeof(net));
	nb_ip_str(nb_mask(c->prefix), mask, sizeof(mask));
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", c->pid_path);
	snprintf(a_if, sizeof(a_if), "--interface=%s", c->bridge);
	snprintf(a_range, sizeof(a_range), "--dhcp-range=%s,static,%s,%s", net, mask, c->lease_time);
	snprintf(a_hosts, sizeof(a_hosts), "--dhcp-hostsfile=%s", c->hosts_path);
	snprintf(a_lease, sizeof(a_lease), "--dhcp-leasefile=%s", c->lease_path);
	snprintf(a_user, sizeof(a_user), "--user=%s", c->dnsmasq_user);
	snprintf(a_log, sizeof(a_log), "--log-facility=%s", c->dnsmasq_log);
	snprintf(a_max, sizeof(a_max), "--dhcp-lease-max=%u",
		 (unsigned)(~nb_mask(c->prefix) > 1 ? ~nb_mask(c->prefix) - 1 : 1));
	char *argv[32];
	int a = 0;
	argv[a++] = (char *)c->dnsmasq;
	argv[a++] = "--conf-file=/dev/null";
	argv[a++] = a_pid;
	argv[a++] = a_if;
	argv[a++] = "--except-interface=lo";
	argv[a++] = "--bind-dynamic";
	argv[a++] = "--strict-order";
	argv[a++] = "--no-hosts";
	argv[a++] = a_range;
	argv[a++] = "--dhcp-no-override";
	argv[a++] = "--dhcp-authoritative";
	argv[a++] = a_max;
	argv[a++] = a_hosts;
	argv[a++] = a_lease;
	if (!c->dns)
		argv[a++] = "--port=0";
	if (c->dnsmasq_user[0])
		argv[a++] = a_user;
	if (c->dnsmasq_log[0]) {
		argv[a++] = a_log;
		argv[a++] = "--log-dhcp";
	}
	argv[a] = NULL;
	char out[1024];
	/* dnsmasq forks, and its first process exits once the server is up or
	 * with the reason it could not start. */
	r = nb_run(argv, NULL, out, sizeof(out));
	if (r != 0) {
		snprintf(err, errlen, "dnsmasq for bridge '%s' did not start: %s", c->bridge,
			 r < 0 ? strerror(-r) : out[0] ? out : "no message");
		return r < 0 ? r : -EIO;
	}
	int pids[4];
	if (nb_dns_pids(c, pids, 4) < 1) {
		snprintf(err, errlen, "dnsmasq for bridge '%s' exited right after starting", c->bridge);
		return -ESRCH;
	}
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int nb_dns_stop(const struct nb_config *c)
{
	int pids[16], n = nb_dns_pids(c, pids, 16);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	/* 3 s to go, then SIGKILL and 1 s more. It is not our child: gone
	 * means no longer in /proc (or a zombie its reaper has yet to collect). */
	for (int t = 0; n > 0 && t < 400; t++) {
		if (t == 300)
			for (int i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
		sleep_ms(10);
		int left = 0;
		for (int i = 0; i < n; i++)
			left += proc_alive(pids[i]);
		if (!left)
			break;
	}
	int r = nb_unlink(c->pid_path);
	int e = nb_unlink(c->hosts_path);
	return r < 0 ? r : e;
}

int nb_dns_lease_conflict(const struct nb_config *c, const struct nb_store *s)
{
	return for_each_lease(c, conflict_line, (void *)s) == 1;
}

int nb_dns_reload(const struct nb_config *c, const struct nb_store *s, char *err, size_t errlen)
{
	int pids[16], n = nb_dns_pids(c, pids, 16);
	if (n <= 0)
		return nb_dns_start(c, s, err, errlen);
	if (nb_dns_lease_conflict(c, s)) {
		nb_dns_stop(c);
		return nb_dns_start(c, s, err, errlen);
	}
	int r = nb_dns_write_hosts(c, s);
	if (r < 0) {
		snprintf(err, errlen, "dnsmasq hosts file %s: %s", c->hosts_path, strerror(-r));
		return r;
	}
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGHUP);
	return 0;
}
