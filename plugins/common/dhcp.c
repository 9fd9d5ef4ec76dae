/* dhcp: see dhcp.h. */
#include "dhcp.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *pid_file(const struct cp_dhcp *c, char *buf, size_t len)
{
	if (c->pid_file[0])
		return c->pid_file;
	snprintf(buf, len, "%s/dnsmasq.pid", c->dir);
	return buf;
}

static const char *lease_file(const struct cp_dhcp *c, char *buf, size_t len)
{
	if (c->lease_file[0])
		return c->lease_file;
	snprintf(buf, len, "%s/leases", c->dir);
	return buf;
}

static const char *program(const struct cp_dhcp *c)
{
	return c->dnsmasq[0] ? c->dnsmasq : "dnsmasq";
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');
	return b ? b + 1 : path;
}

/* Alive: in /proc and not a zombie (not our child: its reaper may be late). */
static int alive(int pid)
{
	return cp_start_time(pid) != 0;
}

int cp_dhcp_pids(const struct cp_dhcp *c, int *pids, int max)
{
	char pid[600], want[700];
	snprintf(want, sizeof(want), "--pid-file=%s", pid_file(c, pid, sizeof(pid)));
	/* The program's name too: a `pgrep -f` or an editor naming our pid
	 * file on its command line is not ours to signal. "dnsmasq" as well:
	 * a configured wrapper script execs it, and a server not found is
	 * started again beside the one that runs. */
	const char *name = base_name(program(c));
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max) {
		char *end;
		long p = strtol(de->d_name, &end, 10);
		if (*end || p <= 0)
			continue;
		char cmd[4096];
		ssize_t len = cp_read_cmdline((int)p, cmd, sizeof(cmd));
		if (len <= 0 || (strcmp(base_name(cmd), name) && strcmp(base_name(cmd), "dnsmasq")))
			continue;
		int ours = 0;
		for (char *a = cmd; a < cmd + len; a += strlen(a) + 1)
			ours |= !strcmp(a, want);
		if (ours && alive((int)p))
			pids[n++] = (int)p;
	}
	closedir(d);
	return n;
}

static int mkdir_p(const char *path, int mode)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return chmod(tmp, mode) < 0 ? -errno : 0;
}

/* The hosts, one file per NIC in <dir>/hosts, as --dhcp-host arguments:
 * on the command line, so that dnsmasq, which drops root, never has to read
 * a file under run_path (often 0700). */
static int host_args(const struct cp_dhcp *c, char ***out, int *n_out)
{
	char hosts[600];
	snprintf(hosts, sizeof(hosts), "%s/hosts", c->dir);
	DIR *d = opendir(hosts);
	*out = NULL;
	*n_out = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	int n = 0, cap = 0, r = 0;
	char **a = NULL;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[1200], line[128] = "";
		snprintf(path, sizeof(path), "%s/%s", hosts, de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **b = realloc(a, sizeof(*a) * (size_t)cap);
			if (!b) {
				r = -ENOMEM;
				break;
			}
			a = b;
		}
		if (asprintf(&a[n], "--dhcp-host=%s", line) < 0) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	*out = a;
	*n_out = n;
	return r;
}

/* What dnsmasq said before it gave up: its first line. */
static void first_line(int fd, char *msg, size_t len)
{
	msg[0] = 0;
	ssize_t n = pread(fd, msg, len - 1, 0);
	msg[n > 0 ? n : 0] = 0;
	msg[strcspn(msg, "\n")] = 0;
}

int cp_dhcp_start(const struct cp_dhcp *c, char *err, size_t errlen)
{
	char pid[600], lease[600], hosts[600], prog[300];
	int r, out = -1;
	if (!c->hosts_file[0]) {
		snprintf(hosts, sizeof(hosts), "%s/hosts", c->dir);
		if ((r = mkdir_p(c->dir, 0700)) < 0 || (r = mkdir_p(hosts, 0700)) < 0) {
			snprintf(err, errlen, "DHCP server directory %s: %s", c->dir, strerror(-r));
			return r;
		}
	}
	if (cp_find_program(program(c), prog, sizeof(prog)) < 0) {
		snprintf(err, errlen, "DHCP server: %s not found (package dnsmasq-base)",
		         program(c));
		return -ENOENT;
	}
	char **ha = NULL;
	int nh = 0;
	if (!c->hosts_file[0] && (r = host_args(c, &ha, &nh)) < 0) {
		snprintf(err, errlen, "DHCP hosts %s: %s", hosts, strerror(-r));
		goto out;
	}
	char a_pid[700], a_if[64], a_range[200], a_lease[700], a_hosts[700], a_user[96], a_log[300],
	    a_max[48];
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", pid_file(c, pid, sizeof(pid)));
	snprintf(a_if, sizeof(a_if), "--interface=%s", c->interface);
	snprintf(a_range, sizeof(a_range), "--dhcp-range=%s", c->range);
	snprintf(a_lease, sizeof(a_lease), "--dhcp-leasefile=%s",
	         lease_file(c, lease, sizeof(lease)));
	snprintf(a_hosts, sizeof(a_hosts), "--dhcp-hostsfile=%s", c->hosts_file);
	snprintf(a_user, sizeof(a_user), "--user=%s", c->user);
	snprintf(a_log, sizeof(a_log), "--log-facility=%s", c->log_file);
	snprintf(a_max, sizeof(a_max), "--dhcp-lease-max=%u", c->lease_max);
	char **argv = calloc(24 + (size_t)nh, sizeof(*argv));
	if (!argv) {
		r = -ENOMEM;
		goto out;
	}
	size_t k = 0;
	argv[k++] = prog;
	argv[k++] = "--conf-file=/dev/null";
	argv[k++] = a_pid;
	argv[k++] = a_if;
	argv[k++] = "--except-interface=lo";
	argv[k++] = "--bind-dynamic";
	argv[k++] = "--strict-order";
	argv[k++] = "--no-hosts";
	argv[k++] = a_range;
	/* Not authoritative on a segment shared with other hosts' servers: a
	 * client this one does not know belongs to another. */
	if (c->authoritative) {
		argv[k++] = "--dhcp-no-override";
		argv[k++] = "--dhcp-authoritative";
	}
	if (c->lease_max)
		argv[k++] = a_max;
	if (c->hosts_file[0])
		argv[k++] = a_hosts;
	argv[k++] = a_lease; /* opened before dnsmasq drops root */
	if (!c->dns)
		argv[k++] = "--port=0";
	if (c->user[0])
		argv[k++] = a_user;
	if (c->log_file[0]) {
		argv[k++] = a_log;
		argv[k++] = "--log-dhcp";
	}
	for (int i = 0; i < nh; i++)
		argv[k++] = ha[i];
	argv[k] = NULL;
	/* Its words, should it not start; a memfd as dnsmasq's daemon half
	 * may hold a pipe open long after the first process exited. */
	out = memfd_create("dnsmasq-err", MFD_CLOEXEC);
	if (out < 0) {
		r = -errno;
		snprintf(err, errlen, "memfd_create: %s", strerror(-r));
		free(argv);
		goto out;
	}
	pid_t p = fork();
	if (p == 0) /* in its own session: it outlives the daemon */
		cp_child_exec(prog, argv, open("/dev/null", O_RDWR), out, 1);
	r = p < 0 ? -errno : 0;
	free(argv);
	if (r < 0) {
		snprintf(err, errlen, "fork: %s", strerror(-r));
		goto out;
	}
	/* dnsmasq forks; its first process exits once the server is up, or
	 * with the reason it could not start. */
	int st = 0, pids[4];
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || cp_dhcp_pids(c, pids, 4) < 1) {
		char msg[512];
		first_line(out, msg, sizeof(msg));
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && !msg[0])
			snprintf(msg, sizeof(msg), "it exited right after starting");
		snprintf(err, errlen, "dnsmasq on %s did not start: %s", c->interface,
		         msg[0] ? msg : "no message");
		r = -EIO;
	}
out:
	if (out >= 0)
		close(out);
	for (int i = 0; i < nh; i++)
		free(ha[i]);
	free(ha);
	return r;
}

int cp_dhcp_ensure(const struct cp_dhcp *c, char *err, size_t errlen)
{
	int pids[4];
	if (cp_dhcp_pids(c, pids, 4) > 0)
		return 0;
	return cp_dhcp_start(c, err, errlen);
}

int cp_dhcp_reload(const struct cp_dhcp *c)
{
	int pids[16], n = cp_dhcp_pids(c, pids, 16);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGHUP);
	return n;
}

void cp_dhcp_kill(const struct cp_dhcp *c)
{
	int pids[16], n = cp_dhcp_pids(c, pids, 16);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	/* 3 s to go, then SIGKILL and 1 s more. It is not our child: gone
	 * means no longer in /proc (or a zombie its reaper has yet to collect). */
	for (int t = 0; n > 0 && t < 400; t++) {
		if (t == 300)
			for (int i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
		int left = 0;
		for (int i = 0; i < n; i++)
			left += alive(pids[i]);
		if (!left)
			break;
	}
}

int cp_dhcp_host(const struct cp_dhcp *c, const char *name, const char *mac, const char *addr)
{
	char hosts[600], path[1200], tmp[1200], err[512];
	snprintf(hosts, sizeof(hosts), "%s/hosts", c->dir);
	snprintf(path, sizeof(path), "%s/%s", hosts, name);
	int r = 0, pids[4];
	if (!addr) {
		if (unlink(path) < 0)
			return errno == ENOENT ? 0 : -errno;
	} else {
		char line[128], old[128] = "";
		snprintf(line, sizeof(line), "%s,%s\n", mac, addr);
		FILE *f = fopen(path, "re");
		if (f) {
			if (!fgets(old, sizeof(old), f))
				old[0] = 0;
			fclose(f);
		}
		if (!strcmp(old, line) && cp_dhcp_pids(c, pids, 4) > 0)
			return 0; /* already served */
		if ((r = mkdir_p(c->dir, 0700)) < 0 || (r = mkdir_p(hosts, 0700)) < 0)
			return r;
		snprintf(tmp, sizeof(tmp), "%s/.%s.new", c->dir, name);
		f = fopen(tmp, "we");
		if (!f)
			return -errno;
		fputs(line, f);
		if (fclose(f) != 0 || rename(tmp, path) < 0) {
			r = -errno;
			unlink(tmp);
			return r;
		}
	}
	/* The hosts are arguments: a changed set is a restart (milliseconds;
	 * leases persist in the lease file, clients retry). */
	if (cp_dhcp_pids(c, pids, 4) <= 0 && !addr)
		return 0;
	cp_dhcp_kill(c);
	return cp_dhcp_start(c, err, sizeof(err));
}

static void rm_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char p[1024];
			snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
			if (unlink(p) < 0 && (errno == EISDIR || errno == EPERM))
				rm_dir(p);
		}
		closedir(d);
	}
	rmdir(path);
}

int cp_dhcp_stop(const struct cp_dhcp *c)
{
	cp_dhcp_kill(c);
	if (c->dir[0] && !c->hosts_file[0])
		rm_dir(c->dir);
	return 0;
}
