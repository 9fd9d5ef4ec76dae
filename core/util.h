/*
 * util: small helpers every module uses: logging, cleanup attributes,
 * bounded string copies, atomic file writes, directories, time.
 */
#ifndef CVMM_UTIL_H
#define CVMM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
	free(*(void **)p);
}
static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Log levels match CVMM_LOG_* in plugin.h. */
void log_set_level(int level);
int log_level_from_name(const char *name); /* -1 if unknown */
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap);
#define log_error(...) log_msg(0, __VA_ARGS__)
#define log_warn(...) log_msg(1, __VA_ARGS__)
#define log_info(...) log_msg(2, __VA_ARGS__)
#define log_debug(...) log_msg(3, __VA_ARGS__)

/* Copies src into dst of size n, always NUL-terminated; -ENAMETOOLONG if cut. */
int str_copy(char *dst, size_t n, const char *src);
/* snprintf that returns -ENAMETOOLONG on truncation, 0 otherwise. */
int str_printf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *xstrdup(const char *s); /* aborts on OOM; NULL -> NULL */
/* Runs argv (PATH searched) with stdin from /dev/null, collecting its stderr
 * (and its stdout before it when with_stdout; else stdout goes to
 * /dev/null) into out, NUL-terminated and cut to outlen. Returns the exit
 * status (128 + signal when killed) or -errno. Blocks: worker or request
 * threads only, never the loop. */
int run_capture(char *const argv[], bool with_stdout, char *out, size_t outlen);
void *xzalloc(size_t n);      /* aborts on OOM */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes data to path atomically: temp file, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *data, size_t len, int mode);
/* Reads a whole file (NUL-terminated); *len optional. -errno on failure. */
int read_file(const char *path, char **out, size_t *len, size_t max);
int mkdir_p(const char *path, int mode);
/* Removes a directory tree (no symlink following). Missing is fine. */
int rm_rf(const char *path);
bool path_exists(const char *path);

double now_real(void);      /* wall clock, seconds */
double now_mono(void);      /* monotonic, seconds */
void uuid_generate_str(char out[37]);
bool uuid_valid(const char *s);

/* Process identity: start time (clock ticks since boot) from /proc/PID/stat;
 * 0 if the process does not exist. */
uint64_t proc_start_time(int pid);
/* True when /proc/PID/cmdline contains needle as a substring of one argument. */
bool proc_cmdline_has(int pid, const char *needle);
int pidfd_open_pid(int pid); /* -errno */

#endif
