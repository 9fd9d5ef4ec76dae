/*
 * spawn: running helper programs (nft) from a threaded daemon, and writing
 * files atomically. The child gets no descriptor of the daemon, an empty
 * signal mask and default dispositions (cp_child_exec, plugins/common).
 */
#include "nb.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 60000

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nb_run(char *const argv[], const char *input, char *out, size_t outlen)
{
	int inp[2] = {-1, -1}, outp[2] = {-1, -1}, r = 0;
	size_t got = 0;
	if (out && outlen)
		out[0] = 0;
	if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
		r = -errno;
		goto cleanup;
	}
	pid_t pid = fork();
	if (pid < 0) {
		r = -errno;
		goto cleanup;
	}
	if (pid == 0)
		cp_child_exec(argv[0], argv, inp[0], outp[1], 0);
	close(inp[0]);
	close(outp[1]);
	inp[0] = outp[1] = -1;
	/* Scripts are small (well under a pipe's 64 KiB), so writing them whole
	 * before reading cannot deadlock against the child's output. */
	size_t ilen = input ? strlen(input) : 0, off = 0;
	while (off < ilen) {
		ssize_t w = write(inp[1], input + off, ilen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break; /* the child exited early; its status says why */
		off += (size_t)w;
	}
	close(inp[1]);
	inp[1] = -1;
	/* Read until EOF, or until the child exited and nothing more comes: a
	 * daemonising child (dnsmasq) may leave a grandchild that holds the
	 * pipe for a while. */
	int status = 0, exited = 0;
	int64_t deadline = now_ms() + RUN_TIMEOUT_MS;
	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p = {.fd = outp[0], .events = POLLIN};
		int pr = poll(&p, 1, exited ? 0 : 100);
		if (pr > 0) {
			char buf[512];
			ssize_t n = read(outp[0], buf, sizeof(buf));
			if (n == 0)
				break;
			if (n > 0) {
				if (out && got + 1 < outlen) {
					size_t c = (size_t)n < outlen - 1 - got ? (size_t)n : outlen - 1 - got;
					memcpy(out + got, buf, c);
					got += c;
					out[got] = 0;
				}
				continue;
			}
			if (errno != EAGAIN && errno != EINTR)
				break;
		} else if (exited) {
			break;
		}
		if (!exited) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				exited = 1;
			else if (now_ms() > deadline) {
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				r = -ETIMEDOUT;
				goto cleanup;
			}
		}
	}
	while (!exited) {
		if (waitpid(pid, &status, 0) == pid)
			exited = 1;
		else if (errno != EINTR) {
			r = -errno;
			goto cleanup;
		}
	}
	r = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
cleanup:
	for (int i = 0; i < 2; i++) {
		if (inp[i] >= 0)
			close(inp[i]);
		if (outp[i] >= 0)
			close(outp[i]);
	}
	/* One line is what an error message wants: drop the trailing newline. */
	while (out && got && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = 0;
	return r;
}

static int fsync_dir_of(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", path);
	int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int nb_write_atomic(const char *path, const char *data, size_t len, int mode)
{
	char tmp[1024];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	int r = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (!r && fchmod(fd, (mode_t)mode) < 0) /* whatever the umask said */
		r = -errno;
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	return fsync_dir_of(path);
}

int nb_unlink(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp); /* left by a write that a crash cut short */
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int nb_mkdir_p(const char *path, int mode)
{
	char tmp[1024];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
