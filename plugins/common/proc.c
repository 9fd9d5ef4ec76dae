/* proc: see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double cp_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cp_pidfd_open(int pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

int cp_pidfd_wait(int pidfd, double timeout_s)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	double end = cp_mono() + timeout_s;
	for (;;) {
		double left = end - cp_mono();
		int ms = left > 0 ? (int)(left * 1000) : 0;
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int cp_pidfd_kill(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

uint64_t cp_start_time(int pid)
{
	char path[64], buf[4096];
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
	if (!p || p[2] == 'Z' || p[2] == 'X')
		return 0;
	/* Field 22 (starttime), counting from the state (field 3) after ')'. */
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	return strtoull(p, NULL, 10);
}

ssize_t cp_read_cmdline(int pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return n;
}


int cp_spawn_detached(char *const argv[], const char *errlog, const int *fds, int n_fds,
		      int fd_base)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t mid = fork();
	if (mid < 0) {
		int e = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return e;
	}
	if (mid == 0) {
		/* Own session: a signal to the daemon's group does not reach the
		 * helper, and the daemon can die while the helper serves its VM. */
		setsid();
		pid_t pid = fork();
		if (pid == 0) {
			sigset_t all;
			sigemptyset(&all);
			sigprocmask(SIG_SETMASK, &all, NULL);
			for (int s = 1; s < NSIG; s++)
				signal(s, SIG_DFL);
			int null = open("/dev/null", O_RDWR);
			int log = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0640);
			dup2(null, 0);
			dup2(null, 1);
			dup2(log >= 0 ? log : null, 2);
			/* Passed descriptors: first above the target range, so that
			 * placing one cannot overwrite another still to be placed;
			 * dup2 clears close-on-exec on the final copy. */
			int above = fd_base + n_fds, moved[CP_SPAWN_MAX_FDS];
			for (int k = 0; k < n_fds; k++)
				if ((moved[k] = fcntl(fds[k], F_DUPFD_CLOEXEC, above)) < 0)
					_exit(126);
			for (int k = 0; k < n_fds; k++)
				if (dup2(moved[k], fd_base + k) < 0)
					_exit(126);
			/* Nothing else of the daemon's stays open in the helper
			 * (its API alone may hold thousands of descriptors): one
			 * system call per range, not one close() per number. */
			if (n_fds) {
				if (fd_base > 3)
					close_range(3, (unsigned)fd_base - 1, 0);
				close_range((unsigned)(fd_base + n_fds), ~0U, 0);
			} else {
				close_range(3, ~0U, 0);
			}
			execvp(argv[0], argv);
			dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
			_exit(127);
		}
		int v = pid < 0 ? -errno : pid;
		if (write(pfd[1], &v, sizeof(v)) != sizeof(v))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	int pid = -EIO;
	if (read(pfd[0], &pid, sizeof(pid)) != sizeof(pid))
		pid = -EIO;
	close(pfd[0]);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	return pid;
}

int cp_run_capture(char *const argv[], char *out, size_t outlen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return e;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	size_t len = 0;
	char buf[1024];
	ssize_t n;
	while ((n = read(pfd[0], buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		size_t c = (size_t)n < outlen - 1 - len ? (size_t)n : outlen - 1 - len;
		memcpy(out + len, buf, c);
		len += c;
	}
	out[len] = 0;
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int cp_find_program(const char *name, char *out, size_t len)
{
	if (strchr(name, '/')) {
		snprintf(out, len, "%s", name);
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	const char *path = getenv("PATH");
	char dirs[2048];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (!*d)
			continue;
		snprintf(out, len, "%s/%s", d, name);
		struct stat st; /* a directory is "executable" too */
		if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return 0;
	}
	out[0] = 0;
	return -ENOENT;
}

void cp_child_exec(const char *prog, char *const argv[], int in, int out, int new_session)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP */
	/* Lift both above 2 first: a daemon started with 0..2 closed has them
	 * there, and the dup2s below would clobber one with the other. */
	in = fcntl(in, F_DUPFD, 3);
	out = fcntl(out, F_DUPFD, 3);
	dup2(in, 0);
	dup2(out, 1);
	dup2(out, 2);
	close_range(3, ~0u, 0);
	if (new_session)
		setsid();
	execv(prog, argv);
	static const char msg[] = "cannot execute the program\n";
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(127);
	_exit(127);
}
