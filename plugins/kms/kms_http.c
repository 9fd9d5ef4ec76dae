/*
 * kms_http: see kms_http.h. Shared by the kms and gateway plugins (each
 * builds its own copy: plugins share no code at run time).
 */
#include "kms_http.h"

#include <curl/curl.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
	char *buf;
	size_t len, max;
	int over;
};

static size_t on_data(char *p, size_t sz, size_t n, void *u)
{
	struct sink *s = u;
	size_t k = sz * n;
	if (s->len + k > s->max) {
		s->over = 1;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	char *nb = realloc(s->buf, s->len + k + 1);
	if (!nb)
		return 0;
	s->buf = nb;
	memcpy(s->buf + s->len, p, k);
	s->len += k;
	s->buf[s->len] = 0;
	return k;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_call(const char *method, const char *url, const char *body, long timeout_ms,
	      size_t max_bytes, char **answer, long *status, char *err, size_t errlen)
{
	struct sink s = {.max = max_bytes};
	struct curl_slist *hdr = NULL;
	int r = 0;
	*answer = NULL;
	*status = 0;
	pthread_once(&once, global_init);
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(err, errlen, "cannot start an HTTP client");
		return -ENOMEM;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* worker threads: no SIGALRM */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 3000 ? timeout_ms : 3000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	CURLcode cr = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (s.over) {
		snprintf(err, errlen, "%s: answer larger than %zu bytes", url, max_bytes);
		r = -EMSGSIZE;
	} else if (cr == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "%s: no answer within %ld ms", url, timeout_ms);
		r = -ETIMEDOUT;
	} else if (cr != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(cr));
		r = -ECONNREFUSED;
	} else if (*status < 200 || *status > 299) {
		snprintf(err, errlen, "%s: HTTP %ld%s%.200s", url, *status, s.len ? ": " : "",
			 s.buf ? s.buf : "");
		r = -EPROTO;
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	if (r) {
		free(s.buf);
		return r;
	}
	*answer = s.buf ? s.buf : strdup("");
	return 0;
}
