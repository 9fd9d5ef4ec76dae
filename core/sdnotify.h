/*
 * sdnotify: systemd's readiness protocol, by hand (no libsystemd): one
 * datagram "READY=1", "STOPPING=1", ... to the socket named by NOTIFY_SOCKET.
 */
#ifndef CVMM_SDNOTIFY_H
#define CVMM_SDNOTIFY_H

/* Sends state to the unix datagram socket path ("@name": abstract). 0 when
 * sent, or when path is NULL or empty (not started by systemd); else a
 * negative errno. */
int sdnotify(const char *path, const char *state);

#endif
