/*
 * kms_http: one bounded HTTP POST with libcurl (connect and total time
 * limits, an answer-size cap, http/https only, no redirects).
 */
#ifndef CVMM_KMS_HTTP_H
#define CVMM_KMS_HTTP_H

#include <stddef.h>

/* POSTs body (JSON) to url. On a 2xx answer returns 0 with a malloc'd,
 * NUL-terminated *answer; else -ECONNREFUSED, -ETIMEDOUT, -EPROTO (HTTP
 * status not 2xx), -EMSGSIZE (answer over max_bytes) with the reason in
 * err. method "DELETE" sends no body. */
int http_call(const char *method, const char *url, const char *body, long timeout_ms,
	      size_t max_bytes, char **answer, long *status, char *err, size_t errlen);

#endif
