/*
 * cvmm-chanreader: reads one VM's guest channel, as OpenBSD's vmd keeps
 * untrusted bytes away from its privileged parent. The daemon starts one per
 * running VM with exactly two descriptors: 3, the VM's channel socket (read
 * only here; the daemon writes the answers on its own copy), and 4, a
 * socketpair to the daemon. Before it reads a byte it gives up root (a
 * `cvmm` user if there is one, else nobody; no groups; no new privileges) and
 * restricts itself to a few system calls, so a guest that found a bug in the
 * parser would hold a process that can do nothing but read that VM's
 * channel and write to its own socketpair.
 *
 * Each line the guest writes is validated (chanmsg.c) and passed on as one
 * re-serialized line; a refusal or a rate overrun is passed on as a count,
 * at most once a second. Bounded: one line buffer of at most 1 MiB, and at
 * most RATE messages a second with a burst of BURST.
 */
#include "chanmsg.h"

#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CVMM_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CVMM_SANITIZED 1
#endif

#define CHAN_FD 3
#define DAEMON_FD 4
#define RATE 20.0  /* messages a second, sustained */
#define BURST 100.0

static char *buf;  /* CHAN_QUOTE_MAX + 1 */
static size_t used;
static int discarding; /* inside a line that overran its bound */
static char *out;  /* CHAN_OUT_MAX */
static double tokens = BURST, last_refill;
static unsigned long n_dropped, n_refused;
static char last_why[160];
static double last_report;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(DAEMON_FD, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the daemon is gone */
		p += w;
		n -= (size_t)w;
	}
}

static void send_line(const char *p, size_t n)
{
	write_all(p, n);
	write_all("\n", 1);
}

/* Counts of what was dropped or refused, at most once a second. */
static void report(int force)
{
	double t = now();
	if (!force && t - last_report < 1.0)
		return;
	last_report = t;
	char line[512];
	if (n_dropped) {
		int n = snprintf(line, sizeof(line), "{\"m\":\"dropped\",\"n\":%lu}", n_dropped);
		send_line(line, (size_t)n);
		n_dropped = 0;
	}
	if (n_refused) {
		/* last_why comes from chanmsg: printable, no quotes or backslashes
		 * but those escaped below. */
		char esc[sizeof(last_why) * 2];
		size_t k = 0;
		for (const char *s = last_why; *s && k + 2 < sizeof(esc); s++) {
			unsigned char c = (unsigned char)*s;
			if (c < 0x20 || c >= 0x7f)
				c = '?';
			if (c == '"' || c == '\\')
				esc[k++] = '\\';
			esc[k++] = (char)c;
		}
		esc[k] = 0;
		int n = snprintf(line, sizeof(line), "{\"m\":\"refused\",\"n\":%lu,\"why\":\"%s\"}",
				 n_refused, esc);
		send_line(line, (size_t)n);
		n_refused = 0;
	}
}

static int take_token(void)
{
	double t = now();
	tokens += (t - last_refill) * RATE;
	last_refill = t;
	if (tokens > BURST)
		tokens = BURST;
	if (tokens < 1.0)
		return 0;
	tokens -= 1.0;
	return 1;
}

static void one_line(const char *line, size_t len)
{
	if (!take_token()) {
		n_dropped++;
		return;
	}
	char why[160];
	int n = chanmsg_validate(line, len, out, CHAN_OUT_MAX, why, sizeof(why));
	if (n < 0) {
		n_refused++;
		snprintf(last_why, sizeof(last_why), "%s", why);
		return;
	}
	send_line(out, (size_t)n);
}

static void oversized(void)
{
	n_refused++;
	snprintf(last_why, sizeof(last_why), "message longer than 1 MiB");
}

static void consume(const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t part = nl ? (size_t)(nl - p) : n;
		if (!discarding) {
			if (used + part > CHAN_QUOTE_MAX) {
				oversized();
				discarding = 1;
				used = 0;
			} else {
				memcpy(buf + used, p, part);
				used += part;
			}
		}
		if (!nl)
			return;
		if (!discarding)
			one_line(buf, used);
		discarding = 0;
		used = 0;
		p = nl + 1;
		n -= part + 1;
	}
}

static int drop_privileges(void)
{
	uid_t uid = 65534;
	gid_t gid = 65534;
	struct passwd *pw = getpwnam("cvmm");
	if (!pw)
		pw = getpwnam("nobody");
	if (pw) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (uid == 0)
		return -1;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -1;
	if (setuid(0) == 0) /* must be impossible now */
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return 0;
}

/* Only what the loop above needs; anything else kills the process. (Not
 * installed in sanitizer builds, hence "unused" there.) */
static int __attribute__((unused)) restrict_syscalls(void)
{
#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    ALLOW(SYS_read),
	    ALLOW(SYS_write),
	    ALLOW(SYS_poll),
	    ALLOW(SYS_ppoll),
	    ALLOW(SYS_brk),
	    ALLOW(SYS_mmap),
	    ALLOW(SYS_munmap),
	    ALLOW(SYS_mremap),
	    ALLOW(SYS_madvise),
	    ALLOW(SYS_clock_gettime),
	    ALLOW(SYS_getrandom),
	    ALLOW(SYS_futex),
	    ALLOW(SYS_rt_sigreturn),
	    ALLOW(SYS_exit),
	    ALLOW(SYS_exit_group),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
#undef ALLOW
	struct sock_fprog prog = {.len = (unsigned short)(sizeof(f) / sizeof(f[0])), .filter = f};
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	/* Nothing but the two descriptors (and stderr for a last word). */
	syscall(SYS_close_range, DAEMON_FD + 1, ~0U, 0);
	buf = malloc(CHAN_QUOTE_MAX + 1);
	out = malloc(CHAN_OUT_MAX);
	if (!buf || !out)
		return 1;
	/* Warm json-c up (its hash seed reads /dev/urandom once) while files
	 * can still be opened. */
	char why[64];
	chanmsg_validate("{\"method\":\"Info\"}", 17, out, CHAN_OUT_MAX, why, sizeof(why));
	if (drop_privileges() < 0) {
		fprintf(stderr, "cvmm-chanreader: cannot drop privileges: %s\n", strerror(errno));
		return 1;
	}
#ifdef CVMM_SANITIZED
	/* A sanitizer's runtime makes calls of its own (at exit, on a
	 * report): sanitizer builds run the reader without the filter. */
	if (0) {
#else
	if (restrict_syscalls() < 0) {
#endif
		fprintf(stderr, "cvmm-chanreader: cannot install the seccomp filter: %s\n",
			strerror(errno));
		return 1;
	}
	last_refill = now();
	static char chunk[65536];
	for (;;) {
		struct pollfd p[2] = {{.fd = CHAN_FD, .events = POLLIN}, {.fd = DAEMON_FD, .events = POLLIN}};
		int r = poll(p, 2, 1000);
		if (r < 0 && errno != EINTR)
			_exit(1);
		/* The daemon never writes here: anything readable is its end. */
		if (p[1].revents)
			_exit(0);
		if (p[0].revents) {
			ssize_t n = read(CHAN_FD, chunk, sizeof(chunk));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				report(1);
				_exit(0);
			}
			consume(chunk, (size_t)n);
		}
		report(0);
	}
}
