/*
 * qemu_stamp: stands in for the QEMU binary in the exec-latency benchmark
 * (scripts/bench/api_latency.sh).  It appends "<CLOCK_REALTIME> <uuid>" to
 * STAMP_FILE as the first thing it does, then execs REAL_QEMU with the same
 * argv, so the daemon under test (cvmmd via plugin.backend-qemu.qemu,
 * libvirtd via <emulator>) runs the real QEMU in the same process.  Built
 * static at bench time so that its own exec costs as little as possible;
 * `--calibrate N` measures that cost (execve of itself to its main), which
 * the benchmark subtracts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef STAMP_FILE
#error "build with -DSTAMP_FILE=\"...\""
#endif
#ifndef REAL_QEMU
#define REAL_QEMU "/usr/bin/qemu-system-x86_64"
#endif

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double t = now();
	if (argc == 3 && !strcmp(argv[1], "--calib-child")) {
		printf("%.3f\n", (t - strtod(argv[2], NULL)) * 1e6); /* microseconds */
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--calibrate")) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++) {
			fflush(stdout);
			pid_t pid = fork();
			if (pid == 0) {
				char buf[64];
				snprintf(buf, sizeof(buf), "%.9f", now());
				execl("/proc/self/exe", argv[0], "--calib-child", buf, (char *)NULL);
				_exit(127);
			}
			if (pid > 0)
				waitpid(pid, NULL, 0);
		}
		return 0;
	}
	/* QEMU's -uuid names the VM (cvmm and libvirt both pass it); a capability
	 * probe has none and is recorded as "-". */
	const char *id = "-";
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "-uuid"))
			id = argv[i + 1];
	char line[160];
	int len = snprintf(line, sizeof(line), "%.6f %s\n", t, id);
	int fd = open(STAMP_FILE, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0) {
		/* one write with O_APPEND: lines of concurrent starts do not mix */
		if (write(fd, line, (size_t)len) < 0)
			perror("qemu_stamp: " STAMP_FILE);
		close(fd);
	}
	execv(REAL_QEMU, argv);
	perror("qemu_stamp: exec " REAL_QEMU);
	return 127;
}
