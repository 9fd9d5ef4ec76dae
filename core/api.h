/*
 * api: the REST/JSON API (v1) over HTTP/1.1 with libmicrohttpd, driven from
 * the daemon's libev loop (MHD's epoll fd watched by an ev_io, its timeout by
 * an ev_timer). Auth, size limits, routing, and the streams (logs -f).
 */
#ifndef CVMM_API_H
#define CVMM_API_H

#include <stddef.h>

struct cvmm_daemon;

#define API_MAX_BODY (64 * 1024)

int api_open(struct cvmm_daemon *d, char *err, size_t errlen);
void api_close(struct cvmm_daemon *d);
/* Constant-time token check against auth.tokens (exposed for tests). */
int api_token_ok(struct cvmm_daemon *d, const char *authorization_header);

#endif
