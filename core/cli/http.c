/*
 * http: a thin wrapper over one libcurl easy handle. Every request resets the
 * handle and sets its options afresh, so nothing leaks from one request into
 * the next while the connection itself is kept alive between them (a command
 * that first resolves a name and then acts on the id uses one connection).
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_client {
	CURL *curl;
	const char *socket_path;
	const char *base_url;
	char *auth_header; /* "Authorization: Bearer ..." or NULL */
	long connect_ms, total_ms; /* 0: no limit */
	int stream;                /* total_ms bounds only the wait for the status */
	char error[CURL_ERROR_SIZE + 512];
};

struct transfer {
	struct http_client *c;
	http_sink_fn sink;
	void *sink_data;
	char *buf;
	size_t len, cap;
	int sink_errno; /* set when the sink refused data */
	int timed_out;  /* the progress callback gave up waiting for the status */
};

struct http_client *http_client_new(const char *socket_path, const char *base_url,
                                    const char *token)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->socket_path = socket_path;
	c->base_url = base_url;
	c->connect_ms = HTTP_CONNECT_TIMEOUT_MS;
	c->total_ms = HTTP_TOTAL_TIMEOUT_MS;
	c->curl = curl_easy_init();
	if (!c->curl)
		goto fail;
	if (token && asprintf(&c->auth_header, "Authorization: Bearer %s", token) < 0) {
		c->auth_header = NULL;
		goto fail;
	}
	return c;

fail:
	http_client_free(c);
	return NULL;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->auth_header);
	free(c);
}

void http_client_set_timeouts(struct http_client *c, long connect_ms, long total_ms)
{
	c->connect_ms = connect_ms;
	c->total_ms = total_ms;
}

void http_client_set_stream(struct http_client *c, int stream)
{
	c->stream = stream;
}

const char *http_error(const struct http_client *c)
{
	return c->error;
}

const char *http_endpoint(const struct http_client *c)
{
	return c->base_url ? c->base_url : c->socket_path;
}

char *http_escape(struct http_client *c, const char *s)
{
	char *e = curl_easy_escape(c->curl, s, 0);
	char *copy = e ? strdup(e) : NULL; /* so that callers can use plain free() */

	curl_free(e);
	return copy;
}

void http_response_free(struct http_response *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

static int keep(struct transfer *t, const char *data, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		char *p;

		while (cap < t->len + n + 1)
			cap *= 2;
		p = realloc(t->buf, cap);
		if (!p)
			return -ENOMEM;
		t->buf = p;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, data, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return 0;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;
	long status = 0;

	/* The status line has been parsed by the time the body arrives, so an
	 * error reply is buffered for its JSON while a success can stream. */
	curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (t->sink && status >= 200 && status < 300) {
		if (t->sink(data, n, t->sink_data) != 0) {
			t->sink_errno = errno ? errno : EIO;
			return 0;
		}
		return n;
	}
	return keep(t, data, n) == 0 ? n : 0;
}

/* Streaming: the limit applies until the status line is in, not after. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct transfer *t = userdata;
	long status = 0;
	curl_off_t elapsed_us = 0;

	curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status)
		return 0;
	curl_easy_getinfo(t->c->curl, CURLINFO_TOTAL_TIME_T, &elapsed_us);
	if (elapsed_us / 1000 < t->c->total_ms)
		return 0;
	t->timed_out = 1;
	return 1;
}

static int add_header(struct curl_slist **list, const char *header)
{
	struct curl_slist *l = curl_slist_append(*list, header);

	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

static void describe_failure(struct http_client *c, CURLcode rc, const char *curl_msg)
{
	long os_errno = 0;
	const char *where = c->base_url ? "at" : "on socket";

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_COULDNT_CONNECT && os_errno)
		/* curl's own text names "localhost port 80" even for a unix
		 * socket, which would only confuse; the OS error is the news. */
		snprintf(c->error, sizeof(c->error), "cannot connect to cvmmd %s %s: %s", where,
		         http_endpoint(c), strerror((int)os_errno));
	else
		snprintf(c->error, sizeof(c->error), "cannot talk to cvmmd %s %s: %s", where,
		         http_endpoint(c), *curl_msg ? curl_msg : curl_easy_strerror(rc));
}

int http_request(struct http_client *c, const char *method, const char *path, const char *body,
                 http_sink_fn sink, void *sink_data, struct http_response *resp)
{
	struct transfer t = {.c = c, .sink = sink, .sink_data = sink_data};
	struct curl_slist *headers = NULL;
	char curl_msg[CURL_ERROR_SIZE] = "";
	char *url = NULL;
	CURLcode rc;
	int r = -EIO;

	memset(resp, 0, sizeof(*resp));
	c->error[0] = '\0';
	if (asprintf(&url, "%s%s", c->base_url ? c->base_url : "http://localhost", path) < 0) {
		url = NULL;
		snprintf(c->error, sizeof(c->error), "out of memory");
		return -ENOMEM;
	}

	/* "Expect:" turns off 100-continue: bodies are small and the daemon
	 * should not have to answer twice. */
	if (add_header(&headers, "Expect:") < 0 ||
	    (body && add_header(&headers, "Content-Type: application/json") < 0) ||
	    (c->auth_header && add_header(&headers, c->auth_header) < 0)) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		r = -ENOMEM;
		goto cleanup;
	}

	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (!c->base_url)
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "cvmm/" CVMM_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, curl_msg);
	/* curl's own default connect limit is 300 s; 0 here means none. */
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
	                 c->connect_ms > 0 ? c->connect_ms : (long)INT32_MAX);
	if (c->total_ms > 0 && !c->stream) {
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->total_ms);
	} else if (c->total_ms > 0) {
		/* "logs -f" streams for as long as the VM lives. */
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &t);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);

	rc = curl_easy_perform(c->curl);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
		resp->body = t.buf ? t.buf : strdup("");
		resp->len = t.len;
		t.buf = NULL;
		r = resp->body ? 0 : -ENOMEM;
		if (r < 0)
			snprintf(c->error, sizeof(c->error), "out of memory");
	} else if (rc == CURLE_WRITE_ERROR && t.sink_errno) {
		snprintf(c->error, sizeof(c->error), "cannot write output: %s",
		         strerror(t.sink_errno));
		r = -EPIPE;
	} else if (rc == CURLE_OPERATION_TIMEDOUT ||
	           (rc == CURLE_ABORTED_BY_CALLBACK && t.timed_out)) {
		curl_off_t connected_us = 0, elapsed_us = 0;

		/* A reused connection has no connect time: what ran out is told
		 * by the time spent. */
		curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connected_us);
		curl_easy_getinfo(c->curl, CURLINFO_TOTAL_TIME_T, &elapsed_us);
		if (!t.timed_out && !connected_us &&
		    !(c->total_ms > 0 && elapsed_us / 1000 + 50 >= c->total_ms))
			snprintf(c->error, sizeof(c->error),
			         "cannot connect to cvmmd %s %s: no connection within %.1f s",
			         c->base_url ? "at" : "on socket", http_endpoint(c),
			         (double)c->connect_ms / 1000);
		else
			snprintf(c->error, sizeof(c->error),
			         "cvmmd %s %s did not answer %s %s within %.1f s (is it hung? "
			         "--timeout SECONDS waits longer)",
			         c->base_url ? "at" : "on socket", http_endpoint(c), method, path,
			         (double)c->total_ms / 1000);
		r = -ETIMEDOUT;
	} else {
		describe_failure(c, rc, curl_msg);
		r = rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
	}

cleanup:
	/* The handle points at these until the next reset; clear it first. */
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	free(t.buf);
	free(url);
	return r;
}
