/*
 * cvmm-agent: the guest side of cvmm's guest channel, a small static program
 * for any Linux guest. It opens the virtio-serial port the daemon gives every
 * VM (/dev/virtio-ports/org.cvmm.channel.0), says where the boot is, phones
 * home, then sends a heartbeat every few seconds with uptime, memory, disk
 * and load. One JSON object a line (core/chanmsg.h has the format).
 *
 * Kernel command line options, for tests and debugging:
 *   cvmm.agent_interval=N     seconds between heartbeats (default 5)
 *   cvmm.agent_stop_after=N   exit silently after N heartbeats (a hung agent)
 *   cvmm.agent_flood=1        behave like a hostile guest after phoning home:
 *                             malformed, oversized and spoofed messages, then
 *                             a flood of valid ones for cvmm.agent_flood_s
 *                             seconds (default 20), then heartbeats again
 *   cvmm.agent_spoof=NAME     the VM name (or id) the spoofed messages claim;
 *                             also claimed in its GetKmsConfig and
 *                             GetGatewayConfig requests
 *   cvmm.agent_spoof_id=ID    the VM id those requests claim (default: the
 *                             value of cvmm.agent_spoof)
 *   cvmm.agent_poweroff_after=N  after N heartbeats, say "powering off"
 *                             (shutdown.progress) and power the guest off
 * At boot it asks the host for its KMS and gateway URLs (GetKmsConfig,
 * GetGatewayConfig) and reads its sys-config document from fw_cfg
 * (SYS_CONFIG); it reports what it got as "agent.config" notifications, one
 * a piece: "GetKmsConfig <answer line>", "GetGatewayConfig <answer line>",
 * and "sys-config <"key":value>" per member of the document (or
 * "sys-config none <why>"), and writes the document to /run/cvmm/sys-config.json.
 * Without options it needs none: `cvmm-agent` (or `cvmm-agent -f` to stay in
 * the foreground; it forks to the background otherwise).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PORT_NAME "org.cvmm.channel.0"
#define SYS_CONFIG "/sys/firmware/qemu_fw_cfg/by_name/opt/cvmm/sys-config.json/raw"
#define VERSION "1"

static int port = -1;
static char host_name[128] = "";

static void logmsg(const char *fmt, ...)
{
	FILE *f = fopen("/run/cvmm-agent.log", "a");
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

static long cmdline_long(const char *key, long dflt)
{
	static char cmd[4096];
	if (!cmd[0]) {
		int fd = open("/proc/cmdline", O_RDONLY);
		if (fd >= 0) {
			ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
			cmd[n > 0 ? n : 0] = 0;
			close(fd);
		}
	}
	char pat[64];
	snprintf(pat, sizeof(pat), "%s=", key);
	for (char *p = cmd; (p = strstr(p, pat)); p++)
		if (p == cmd || p[-1] == ' ')
			return strtol(p + strlen(pat), NULL, 10);
	return dflt;
}

static void cmdline_str(const char *key, char *out, size_t len)
{
	char cmd[4096] = "", pat[64];
	out[0] = 0;
	int fd = open("/proc/cmdline", O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	cmd[n > 0 ? n : 0] = 0;
	snprintf(pat, sizeof(pat), "%s=", key);
	char *p = strstr(cmd, pat);
	if (!p)
		return;
	p += strlen(pat);
	size_t k = 0;
	while (*p && *p != ' ' && *p != '\n' && k + 1 < len)
		out[k++] = *p++;
	out[k] = 0;
}

/* /dev/virtio-ports/NAME is made by udev; without udev, find the port by its
 * name in sysfs and make the node. */
static int open_port(void)
{
	int fd = open("/dev/virtio-ports/" PORT_NAME, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512], buf[128] = "";
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
		buf[strcspn(buf, "\n")] = 0;
		if (strcmp(buf, PORT_NAME))
			continue;
		char dev[300];
		snprintf(dev, sizeof(dev), "/dev/%s", e->d_name);
		if (access(dev, F_OK) != 0) {
			unsigned ma, mi;
			snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/dev", e->d_name);
			f = fopen(p, "r");
			if (f && fscanf(f, "%u:%u", &ma, &mi) == 2)
				mknod(dev, S_IFCHR | 0600, makedev(ma, mi));
			if (f)
				fclose(f);
		}
		fd = open(dev, O_RDWR | O_CLOEXEC);
		break;
	}
	closedir(d);
	return fd;
}

static int send_raw(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(port, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sendf(const char *fmt, ...)
{
	char line[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return -1;
	line[n++] = '\n';
	return send_raw(line, (size_t)n);
}

static int notify(const char *event, const char *text)
{
	return sendf("{\"method\":\"Notify\",\"params\":{\"event\":\"%s\",\"payload\":\"%s\"}}", event,
		     text);
}

/* One answer line, at most timeout_ms away; a line longer than buf (a
 * GetKmsConfig with a large encrypted_env) is cut, its rest read and
 * dropped so that the next answer starts clean. */
static int read_answer(char *buf, size_t len, int timeout_ms)
{
	size_t used = 0;
	char spill[1024];
	for (;;) {
		struct pollfd p = {.fd = port, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		int full = used + 1 >= len;
		ssize_t n = full ? read(port, spill, sizeof(spill))
				 : read(port, buf + used, len - 1 - used);
		if (n <= 0)
			return -1;
		if (full) {
			if (memchr(spill, '\n', (size_t)n))
				return 0;
			continue;
		}
		used += (size_t)n;
		buf[used] = 0;
		if (memchr(buf, '\n', used))
			return 0;
	}
}

/* The string value of "key" in a flat answer, for the two answers we read. */
static void json_field(const char *ans, const char *key, char *out, size_t len)
{
	char pat[64];
	out[0] = 0;
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(ans, pat);
	if (!p)
		return;
	p += strlen(pat);
	size_t k = 0;
	while (*p && *p != '"' && k + 1 < len)
		out[k++] = *p++;
	out[k] = 0;
}

static void heartbeat(long seq)
{
	struct sysinfo si;
	struct statvfs vf;
	unsigned long long disk_total = 0, disk_free = 0;
	if (sysinfo(&si) != 0)
		memset(&si, 0, sizeof(si));
	if (statvfs("/", &vf) == 0) {
		disk_total = (unsigned long long)vf.f_blocks * vf.f_frsize / 1024;
		disk_free = (unsigned long long)vf.f_bavail * vf.f_frsize / 1024;
	}
	unsigned long long avail = 0;
	FILE *f = fopen("/proc/meminfo", "r");
	if (f) {
		char l[256];
		while (fgets(l, sizeof(l), f))
			if (sscanf(l, "MemAvailable: %llu kB", &avail) == 1)
				break;
		fclose(f);
	}
	double sc = 1.0 / (1 << SI_LOAD_SHIFT);
	sendf("{\"method\":\"Notify\",\"params\":{\"event\":\"agent.heartbeat\",\"payload\":{"
	      "\"seq\":%ld,\"uptime_s\":%ld,\"mem_total_kb\":%llu,\"mem_avail_kb\":%llu,"
	      "\"disk_total_kb\":%llu,\"disk_free_kb\":%llu,\"load1\":%.2f,\"load5\":%.2f,"
	      "\"load15\":%.2f}}}",
	      seq, si.uptime, (unsigned long long)si.totalram * si.mem_unit / 1024, avail, disk_total,
	      disk_free, si.loads[0] * sc, si.loads[1] * sc, si.loads[2] * sc);
}

/* text as the inside of a JSON string (quotes, backslashes, controls). */
static void json_escape(const char *text, char *out, size_t len)
{
	size_t k = 0;
	for (const unsigned char *c = (const unsigned char *)text; *c && k + 7 < len; c++) {
		if (*c == '"' || *c == '\\') {
			out[k++] = '\\';
			out[k++] = (char)*c;
		} else if (*c < 0x20) {
			k += (size_t)snprintf(out + k, len - k, "\\u%04x", *c);
		} else {
			out[k++] = (char)*c;
		}
	}
	out[k] = 0;
}

/* One "agent.config" notification: "<what> <text>". */
static void report(const char *what, const char *text)
{
	char raw[900], esc[2400];
	snprintf(raw, sizeof(raw), "%s %s", what, text);
	raw[strcspn(raw, "\n")] = 0;
	json_escape(raw, esc, sizeof(esc));
	notify("agent.config", esc);
}

/* The host's answer to a request of the channel's VM (a guest told to
 * spoof claims another VM: the host must not care). */
static void ask(const char *method, int id, const char *spoof, const char *spoof_id)
{
	char ans[4096] = "", claim[512] = "";
	if (spoof[0] || spoof_id[0])
		snprintf(claim, sizeof(claim),
			 ",\"vm\":\"%s\",\"vm_id\":\"%s\",\"name\":\"%s\",\"params\":{\"vm_id\":"
			 "\"%s\",\"name\":\"%s\",\"id\":\"%s\"}",
			 spoof, spoof_id, spoof, spoof_id, spoof, spoof_id);
	sendf("{\"method\":\"%s\",\"id\":%d%s}", method, id, claim);
	if (read_answer(ans, sizeof(ans), 10000) < 0)
		snprintf(ans, sizeof(ans), "no answer");
	report(method, ans);
	logmsg("%s: %s", method, ans);
}

/* The sys-config document from fw_cfg (qemu_fw_cfg is loaded by /init),
 * one notification per top-level member: a notification is short. */
static void sys_config(void)
{
	static char doc[16384];
	/* /init loaded the module before starting us: no waiting. */
	FILE *f = fopen(SYS_CONFIG, "r");
	if (!f) {
		report("sys-config", access("/sys/firmware/qemu_fw_cfg", F_OK)
					 ? "none (no /sys/firmware/qemu_fw_cfg: module qemu_fw_cfg)"
					 : "none (no fw_cfg entry opt/cvmm/sys-config.json)");
		return;
	}
	size_t n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = 0;
	mkdir("/run/cvmm", 0755);
	FILE *o = fopen("/run/cvmm/sys-config.json", "w");
	if (o) {
		fputs(doc, o);
		fclose(o);
	}
	/* Split the flat object at its top-level commas. */
	char *p = strchr(doc, '{');
	if (!p) {
		report("sys-config", "none (not a JSON object)");
		return;
	}
	p++;
	int depth = 0, in_str = 0;
	char *start = p;
	for (; *p; p++) {
		if (in_str) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				in_str = 0;
			continue;
		}
		if (*p == '"')
			in_str = 1;
		else if (*p == '[' || *p == '{')
			depth++;
		else if ((*p == ']' || *p == '}') && depth > 0)
			depth--;
		else if ((*p == ',' || *p == '}') && depth == 0) {
			int end = *p == '}';
			*p = 0;
			if (*start)
				report("sys-config", start);
			start = p + 1;
			if (end)
				break;
		}
	}
}

/* A hostile guest, for tests: everything the reader must refuse, a message
 * that claims to be another VM, and a flood. */
static void flood(void)
{
	char spoof[128];
	cmdline_str("cvmm.agent_spoof", spoof, sizeof(spoof));
	sendf("{\"method\":\"Notify\",\"vm\":\"%s\",\"vm_id\":\"%s\",\"name\":\"%s\",\"params\":{"
	      "\"event\":\"boot.progress\",\"payload\":\"spoofed: claims to be %s\"}}",
	      spoof, spoof, spoof, spoof);
	send_raw("{not json\n", 10);
	send_raw("\x01\x02\xff\xfe garbage\n", 13);
	sendf("{\"method\":\"Reboot\",\"params\":{}}");
	sendf("{\"method\":\"Notify\",\"params\":{\"event\":\"boot.progress\",\"payload\":{\"a\":"
	      "[[[[[[[[[[[[1]]]]]]]]]]]]}}}");
	/* Oversized: a 6 KiB notification, then a 2 MiB line. */
	static char big[2 * 1024 * 1024 + 2];
	memset(big, 'A', sizeof(big));
	int n = snprintf(big, 100, "{\"method\":\"Notify\",\"params\":{\"event\":\"boot.progress\","
				   "\"payload\":\"");
	big[n] = 'A';
	memcpy(big + 6000, "\"}}\n", 4);
	send_raw(big, 6004);
	big[sizeof(big) - 1] = '\n';
	send_raw(big, sizeof(big));
	long secs = cmdline_long("cvmm.agent_flood_s", 20);
	time_t end = time(NULL) + secs;
	long k = 0;
	while (time(NULL) < end) {
		char line[256];
		int m = snprintf(line, sizeof(line),
				 "{\"method\":\"Notify\",\"params\":{\"event\":\"boot.progress\","
				 "\"payload\":\"flood %ld\"}}\n",
				 k++);
		if (send_raw(line, (size_t)m) < 0)
			break;
	}
	notify("boot.progress", "flood over");
	logmsg("flood: %ld messages in %ld s", k, secs);
}

int main(int argc, char **argv)
{
	int fg = argc > 1 && !strcmp(argv[1], "-f");
	signal(SIGPIPE, SIG_IGN);
	if (!fg) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid > 0)
			return 0;
		setsid();
	}
	/* The port appears once virtio_console is loaded: wait for it. */
	for (int i = 0; i < 300 && (port = open_port()) < 0; i++)
		usleep(100 * 1000);
	if (port < 0) {
		logmsg("no port %s", PORT_NAME);
		return 1;
	}
	long interval = cmdline_long("cvmm.agent_interval", 5);
	long stop_after = cmdline_long("cvmm.agent_stop_after", -1);
	long poweroff_after = cmdline_long("cvmm.agent_poweroff_after", -1);
	if (interval < 1)
		interval = 1;
	notify("boot.progress", "cvmm-agent started");
	char ans[4096] = "";
	sendf("{\"method\":\"Info\",\"id\":1}");
	if (read_answer(ans, sizeof(ans), 10000) == 0)
		json_field(ans, "name", host_name, sizeof(host_name));
	char sealing[256] = "";
	sendf("{\"method\":\"GetSealingKey\",\"id\":2,\"params\":{\"quote\":\"00112233\"}}");
	if (read_answer(ans, sizeof(ans), 10000) == 0) {
		json_field(ans, "error", sealing, sizeof(sealing));
		if (!sealing[0])
			snprintf(sealing, sizeof(sealing), "key received");
	}
	char spoof[128], spoof_id[128];
	cmdline_str("cvmm.agent_spoof", spoof, sizeof(spoof));
	cmdline_str("cvmm.agent_spoof_id", spoof_id, sizeof(spoof_id));
	if (!spoof_id[0])
		snprintf(spoof_id, sizeof(spoof_id), "%s", spoof);
	ask("GetKmsConfig", 3, spoof, spoof_id);
	ask("GetGatewayConfig", 4, spoof, spoof_id);
	sys_config();
	struct utsname u;
	uname(&u);
	sendf("{\"method\":\"Notify\",\"params\":{\"event\":\"agent.hello\",\"payload\":{"
	      "\"version\":\"%s\",\"hostname\":\"%.64s\",\"host_name\":\"%s\",\"sealing\":\"%s\"}}}",
	      VERSION, u.nodename, host_name, sealing);
	logmsg("phoned home; host says name=%s, sealing=%s", host_name, sealing);
	if (cmdline_long("cvmm.agent_flood", 0))
		flood();
	for (long seq = 1;; seq++) {
		heartbeat(seq);
		if (poweroff_after >= 0 && seq >= poweroff_after) {
			notify("shutdown.progress", "powering off");
			logmsg("powering off after %ld heartbeats (cvmm.agent_poweroff_after)", seq);
			sleep(1); /* the host reads it before the VM is gone */
			sync();
			reboot(RB_POWER_OFF);
			return 1;
		}
		if (stop_after >= 0 && seq >= stop_after) {
			logmsg("stopping after %ld heartbeats (cvmm.agent_stop_after)", seq);
			return 0;
		}
		sleep((unsigned)interval);
	}
}
