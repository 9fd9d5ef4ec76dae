/*
 * passt_proc: the process side of net-passt — starting passt detached from
 * the daemon, telling a running passt apart from a reused pid (start time
 * plus the socket path on its command line), waiting for its socket to
 * listen. The generic pidfd and /proc helpers are plugins/common/proc.h.
 */
#ifndef NET_PASST_PROC_H
#define NET_PASST_PROC_H

#include <stddef.h>
#include <stdint.h>

/* 1 if the process's argv holds "--socket" followed by exactly path. */
int pp_has_socket_arg(int pid, const char *path);

/* The first live process whose argv holds "--socket path" (a passt of
 * ours whose pid we never got to record), or 0. */
int pp_find_by_socket(const char *path);

/* 1 if a unix socket bound at path is listening (per /proc/net/unix);
 * found without connecting, since passt --one-off serves only the first
 * client that connects. */
int pp_socket_listening(const char *path);

/* The most useful line of a passt log: the last "ERROR:" line, else the
 * last line that is not syslog noise; timestamps stripped. Returns 1 if it
 * was an ERROR line. */
int pp_last_error(const char *path, char *out, size_t len);

#endif
