/*
 * proc: process helpers for plugins that run helpers of their own (QEMU,
 * passt): pidfds, and the identity of a process across a daemon restart
 * (its start time in /proc, its command line).
 */
#ifndef CVMM_PLUGIN_COMMON_PROC_H
#define CVMM_PLUGIN_COMMON_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

double cp_mono(void); /* monotonic clock, seconds */
int cp_pidfd_open(int pid); /* -errno */
/* Waits up to timeout_s for the process to end: 1 ended, 0 not, -errno. */
int cp_pidfd_wait(int pidfd, double timeout_s);
int cp_pidfd_kill(int pidfd, int sig);
/* Start time (clock ticks since boot) from /proc/PID/stat; 0 if the process
 * does not exist or is a zombie. With the pid, it names one process. */
uint64_t cp_start_time(int pid);
/* /proc/PID/cmdline into buf (NUL-separated, NUL-terminated); its length,
 * 0 if none. */
ssize_t cp_read_cmdline(int pid, char *buf, size_t len);

/* Resolves a program name (one without a '/') through PATH, then /usr/sbin,
 * /sbin, /usr/bin and /bin, to an executable file, into out: 0, or -ENOENT
 * (out empty); a path is only checked to be executable (-errno). */
int cp_find_program(const char *name, char *out, size_t len);

/* In a child between fork and exec (async-signal-safe calls only): an
 * empty signal mask and default dispositions (a helper that outlives the
 * daemon answers SIGTERM and SIGHUP), in on stdin, out on stdout and
 * stderr, no other descriptor of the daemon, its own session if asked;
 * then prog. Never returns (127 when prog cannot run). */
void cp_child_exec(const char *prog, char *const argv[], int in, int out, int new_session)
    __attribute__((noreturn));

#define CP_SPAWN_MAX_FDS 16
/*
 * Starts argv (argv[0] looked up in PATH) as a grandchild in its own
 * session, reparented away from the daemon: stdin/stdout on /dev/null,
 * stderr appended to errlog, and fds[k] (the caller's, which it keeps and
 * closes) at descriptor fd_base + k (n_fds <= CP_SPAWN_MAX_FDS); every other
 * descriptor closed. Returns its pid or a negative errno.
 */
/* Runs argv (PATH searched, stdin /dev/null), its stdout and stderr into out
 * (NUL-terminated, cut to outlen). Exit status, or -errno. Blocks. */
int cp_run_capture(char *const argv[], char *out, size_t outlen);
int cp_spawn_detached(char *const argv[], const char *errlog, const int *fds, int n_fds,
		      int fd_base);

#endif
