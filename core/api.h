/*
 * api: the REST/JSON API (v1) over HTTP/1.1 with libmicrohttpd, a thread per
 * connection (never on the daemon's loop). Auth, size limits, connection
 * classes, routing, and the streams (logs -f, /v1/events; GET /metrics).
 */
#ifndef CVMM_API_H
#define CVMM_API_H

#include <stddef.h>

struct cvmm_daemon;

#define API_MAX_BODY (64 * 1024)
#define API_MAX_CONNECTIONS 2048 /* in all */
#define API_MAX_WAITING 256      /* connections whose request headers are not in yet */
#define API_MAX_FOLLOWERS 512    /* log streams that follow (logs -f) */
#define API_HEADER_DEADLINE 10.0 /* seconds a connection may take to send its headers */

int api_open(struct cvmm_daemon *d, char *err, size_t errlen);
void api_close(struct cvmm_daemon *d);
/* Constant-time token check against auth.tokens (exposed for tests). */
int api_token_ok(struct cvmm_daemon *d, const char *authorization_header);
/* 0 when a body json-c accepted has no key twice in an object, no NUL in a
 * string and only UTF-8; else -1 and "field: rule" in err (exposed for
 * tests and the fuzzer). */
int api_json_strict(const char *text, size_t len, char *err, size_t errlen);

#endif
