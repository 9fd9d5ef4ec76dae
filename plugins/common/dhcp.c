/* dhcp: see dhcp.h. Modelled on net-bridge's dnsmasq handling (which keeps
 * its own hosts file and lease purge, being the older of the two). */
#include "dhcp.h"

#include <dirent.h>
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

static void paths(const struct cp_dhcp *c, char *pid, char *hosts, char *lease, char *log)
{
	snprintf(pid, 600, "%s/dnsmasq.pid", c->dir);
	snprintf(hosts, 600, "%s/hosts", c->dir);
	snprintf(lease, 600, "%s/leases", c->dir);
	snprintf(log, 600, "%s/dnsmasq.err", c->dir);
}

static int alive(int pid)
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

int cp_dhcp_pids(const struct cp_dhcp *c, int *pids, int max)
{
	char pid[600], hosts[600], lease[600], log[600], want[700];
	paths(c, pid, hosts, lease, log);
	snprintf(want, sizeof(want), "--pid-file=%s", pid);
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
		char path[64], cmd[4096];
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", p);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (len <= 0)
			continue;
		cmd[len] = 0;
		int ours = 0;
		for (char *a = cmd; a < cmd + len; a += strlen(a) + 1)
			ours |= !strcmp(a, want);
		if (ours && alive((int)p))
			pids[n++] = (int)p;
	}
	closedir(d);
	return n;
}

static int find_program(const char *name, char *out, size_t len)
{
	if (strchr(name, '/')) {
		snprintf(out, len, "%s", name);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s:/usr/sbin:/sbin", path ? path : "/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
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

static int start(const struct cp_dhcp *c, char *err, size_t errlen)
{
	char pid[600], hosts[600], lease[600], log[600], prog[300];
	paths(c, pid, hosts, lease, log);
	int r;
	if ((r = mkdir_p(c->dir, 0700)) < 0 || (r = mkdir_p(hosts, 0700)) < 0) {
		snprintf(err, errlen, "DHCP server directory %s: %s", c->dir, strerror(-r));
		return r;
	}
	if (find_program(c->dnsmasq[0] ? c->dnsmasq : "dnsmasq", prog, sizeof(prog)) < 0) {
		snprintf(err, errlen, "DHCP server: %s not found (package dnsmasq-base)",
		         c->dnsmasq[0] ? c->dnsmasq : "dnsmasq");
		return -ENOENT;
	}
	char **ha = NULL;
	int nh = 0;
	if ((r = host_args(c, &ha, &nh)) < 0) {
		snprintf(err, errlen, "DHCP hosts %s: %s", hosts, strerror(-r));
		goto out;
	}
	char a_pid[700], a_if[64], a_range[200], a_lease[700], a_user[96];
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", pid);
	snprintf(a_if, sizeof(a_if), "--interface=%s", c->interface);
	snprintf(a_range, sizeof(a_range), "--dhcp-range=%s", c->range);
	snprintf(a_lease, sizeof(a_lease), "--dhcp-leasefile=%s", lease);
	snprintf(a_user, sizeof(a_user), "--user=%s", c->user);
	/* Not authoritative: on a segment shared with other hosts' servers, a
	 * client this one does not know belongs to another. No DNS (port 0).
	 * The lease file is opened before dnsmasq drops root. */
	char *fixed[] = {prog,
	                 "--conf-file=/dev/null",
	                 a_pid,
	                 a_if,
	                 "--except-interface=lo",
	                 "--bind-dynamic",
	                 "--no-hosts",
	                 "--port=0",
	                 a_range,
	                 a_lease};
	size_t nf = sizeof(fixed) / sizeof(fixed[0]);
	char **argv = calloc(nf + (size_t)nh + 2, sizeof(*argv));
	if (!argv) {
		r = -ENOMEM;
		goto out;
	}
	size_t k = 0;
	for (size_t i = 0; i < nf; i++)
		argv[k++] = fixed[i];
	if (c->user[0])
		argv[k++] = a_user;
	for (int i = 0; i < nh; i++)
		argv[k++] = ha[i];
	argv[k] = NULL;
	int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", log, strerror(-r));
		free(argv);
		goto out;
	}
	pid_t p = fork();
	if (p == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(logfd, 2);
		setsid();
		execv(prog, argv);
		_exit(127);
	}
	r = p < 0 ? -errno : 0;
	close(logfd);
	free(argv);
	if (r < 0) {
		snprintf(err, errlen, "fork: %s", strerror(-r));
		goto out;
	}
	/* dnsmasq forks; its first process exits once the server is up, or
	 * with the reason it could not start on stderr. */
	int st = 0, pids[4];
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || cp_dhcp_pids(c, pids, 4) < 1) {
		char msg[512] = "";
		FILE *f = fopen(log, "re");
		if (f) {
			size_t n = fread(msg, 1, sizeof(msg) - 1, f);
			msg[n] = 0;
			msg[strcspn(msg, "\n")] = 0;
			fclose(f);
		}
		snprintf(err, errlen, "dnsmasq on %s did not start: %s", c->interface,
		         msg[0] ? msg : "no message");
		r = -EIO;
	}
out:
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
	return start(c, err, errlen);
}

static void stop_procs(const struct cp_dhcp *c)
{
	int pids[16], n = cp_dhcp_pids(c, pids, 16);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	/* Not our child: gone means gone from /proc. 3 s, then SIGKILL. */
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
	stop_procs(c);
	return start(c, err, sizeof(err));
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
	stop_procs(c);
	rm_dir(c->dir);
	return 0;
}
