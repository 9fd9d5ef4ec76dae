/*
 * passt_proc: see passt_proc.h.
 */
#include "passt_proc.h"
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int argv_has_socket(const char *buf, ssize_t n, const char *path)
{
	int after_opt = 0;
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) {
		const char *arg = buf + off;
		if (after_opt && !strcmp(arg, path))
			return 1;
		after_opt = !strcmp(arg, "--socket") || !strcmp(arg, "-s");
	}
	return 0;
}

int pp_has_socket_arg(int pid, const char *path)
{
	static __thread char buf[16384];
	ssize_t n = cp_read_cmdline(pid, buf, sizeof(buf));
	return n > 0 && argv_has_socket(buf, n, path);
}

int pp_find_by_socket(const char *path)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	int found = 0;
	int self = getpid();
	while (!found && (de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		int pid = atoi(de->d_name);
		if (pid != self && pp_has_socket_arg(pid, path) && cp_start_time(pid))
			found = pid;
	}
	closedir(d);
	return found;
}

int pp_socket_listening(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "re");
	if (!f)
		return 0;
	char line[4096];
	int found = 0;
	size_t plen = strlen(path);
	while (!found && fgets(line, sizeof(line), f)) {
		size_t l = strlen(line);
		while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
			line[--l] = 0;
		/* "Num RefCount Protocol Flags Type St Inode Path" */
		unsigned long flags = 0;
		int off = 0;
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &off) < 1 || !off)
			continue;
		if (l - (size_t)off == plen && !strcmp(line + off, path) && (flags & 0x10000))
			found = 1; /* __SO_ACCEPTCON: listen() was called */
	}
	fclose(f);
	return found;
}

int pp_last_error(const char *path, char *out, size_t len)
{
	out[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[16384];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char last_error[512] = "", last_other[512] = "";
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		/* "0.2342: ERROR:   text" in the log file; bare text on stderr. */
		char *p = line;
		if (isdigit((unsigned char)*p)) {
			char *colon = strchr(p, ':');
			if (colon && strspn(p, "0123456789.") == (size_t)(colon - p))
				p = colon + 1;
		}
		while (*p == ' ')
			p++;
		if (!*p || !strncmp(p, "Failed to send", 14))
			continue;
		if (!strncmp(p, "ERROR:", 6)) {
			p += 6;
			while (*p == ' ')
				p++;
			snprintf(last_error, sizeof(last_error), "%s", p);
		} else if (strncmp(p, "passt ", 6) && strncmp(p, "info:", 5) &&
		           strncmp(p, "    ", 4)) {
			snprintf(last_other, sizeof(last_other), "%s", p);
		}
	}
	snprintf(out, len, "%s", last_error[0] ? last_error : last_other);
	return last_error[0] != 0;
}
