/*
 * kp_client: see kp_client.h. Plain sockets and poll(): one short exchange
 * per call, on the calling (worker) thread, never the daemon's loop.
 */
#include "kp_client.h"

#include <json-c/json.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int kp_frame_request(const uint8_t *quote, size_t n, uint8_t **out, size_t *outlen)
{
	if (n > KP_QUOTE_MAX)
		return -E2BIG;
	/* "{\"quote\":[" + up to 4 bytes per number ("255,") + "]}" */
	size_t cap = 4 + 12 + 4 * n + 3;
	uint8_t *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	char *p = (char *)b + 4;
	p += sprintf(p, "{\"quote\":[");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, i ? ",%u" : "%u", quote[i]);
	p += sprintf(p, "]}");
	size_t body = (size_t)(p - (char *)b) - 4;
	b[0] = (uint8_t)(body >> 24);
	b[1] = (uint8_t)(body >> 16);
	b[2] = (uint8_t)(body >> 8);
	b[3] = (uint8_t)body;
	*out = b;
	*outlen = body + 4;
	return 0;
}

uint32_t kp_frame_length(const uint8_t h[4])
{
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

void kp_key_free(struct kp_key *k)
{
	if (!k)
		return;
	free(k->encrypted_key);
	free(k->provider_quote);
	memset(k, 0, sizeof(*k));
}

static int byte_array(json_object *o, const char *k, uint8_t **out, size_t *n, char *err,
		      size_t errlen)
{
	json_object *a;
	if (!json_object_object_get_ex(o, k, &a) || !json_object_is_type(a, json_type_array)) {
		snprintf(err, errlen, "the key provider's answer has no %s list", k);
		return -EBADMSG;
	}
	size_t len = json_object_array_length(a);
	*out = malloc(len ? len : 1);
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		json_object *v = json_object_array_get_idx(a, i);
		int64_t x = json_object_get_int64(v);
		if (!json_object_is_type(v, json_type_int) || x < 0 || x > 255) {
			snprintf(err, errlen, "the key provider's %s[%zu] is not a byte", k, i);
			free(*out);
			*out = NULL;
			return -EBADMSG;
		}
		(*out)[i] = (uint8_t)x;
	}
	*n = len;
	return 0;
}

int kp_parse_answer(const char *json, size_t len, struct kp_key *key, char *err, size_t errlen)
{
	memset(key, 0, sizeof(*key));
	struct json_tokener *t = json_tokener_new();
	if (!t)
		return -ENOMEM;
	json_object *o = json_tokener_parse_ex(t, json, (int)len);
	int r = 0;
	if (!o || json_tokener_get_error(t) != json_tokener_success ||
	    t->char_offset != (int)len || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "the key provider's answer is not one JSON object");
		r = -EBADMSG;
	} else if ((r = byte_array(o, "encrypted_key", &key->encrypted_key,
				   &key->encrypted_key_len, err, errlen)) ||
		   (r = byte_array(o, "provider_quote", &key->provider_quote,
				   &key->provider_quote_len, err, errlen))) {
		kp_key_free(key);
	}
	json_object_put(o);
	json_tokener_free(t);
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for ev on fd until deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = ev};
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int io_all(int fd, uint8_t *b, size_t n, int wr, int64_t deadline)
{
	size_t done = 0;
	while (done < n) {
		int r = wait_fd(fd, wr ? POLLOUT : POLLIN, deadline);
		if (r)
			return r;
		ssize_t k = wr ? send(fd, b + done, n - done, MSG_NOSIGNAL)
			       : recv(fd, b + done, n - done, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPROTO; /* closed before the whole frame */
		done += (size_t)k;
	}
	return 0;
}

int kp_get_key(const struct kp_opts *o, const uint8_t *quote, size_t n, struct kp_key *key,
	       char *err, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	uint8_t *req = NULL, hdr[4];
	char *ans = NULL;
	size_t reqlen;
	int fd = -1, r;
	int64_t start = now_ms(), deadline = start + o->timeout_ms;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	memset(key, 0, sizeof(*key));
	if (inet_pton(AF_INET, o->address, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(o->port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, o->address, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(o->port);
		sl = sizeof(*s6);
	} else {
		snprintf(err, errlen, "key provider address '%s' is not numeric", o->address);
		return -EINVAL;
	}
	if ((r = kp_frame_request(quote, n, &req, &reqlen))) {
		snprintf(err, errlen, "quote of %zu bytes: larger than %d", n, KP_QUOTE_MAX);
		return r;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		goto out;
	}
	int64_t cdl = start + (o->connect_timeout_ms < o->timeout_ms ? o->connect_timeout_ms
								      : o->timeout_ms);
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		r = -errno;
	} else if ((r = wait_fd(fd, POLLOUT, cdl)) == 0) {
		int e = 0;
		socklen_t el = sizeof(e);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
		r = -e;
	}
	if (r) {
		snprintf(err, errlen, "key provider %s:%u: %s", o->address, o->port,
			 r == -ETIMEDOUT ? "no connection within the connect timeout" : strerror(-r));
		if (r != -ETIMEDOUT)
			r = -ECONNREFUSED;
		goto out;
	}
	if ((r = io_all(fd, req, reqlen, 1, deadline)) || (r = io_all(fd, hdr, 4, 0, deadline))) {
		snprintf(err, errlen, "key provider %s:%u: %s", o->address, o->port,
			 r == -ETIMEDOUT ? "no answer within the timeout"
			 : r == -EPROTO ? "closed the connection without an answer"
					: strerror(-r));
		goto out;
	}
	uint32_t len = kp_frame_length(hdr);
	if (len > o->max_answer) {
		snprintf(err, errlen, "key provider %s:%u: answer of %u bytes, more than %zu",
			 o->address, o->port, len, o->max_answer);
		r = -EMSGSIZE;
		goto out;
	}
	ans = malloc(len + 1);
	if (!ans) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = io_all(fd, (uint8_t *)ans, len, 0, deadline))) {
		snprintf(err, errlen, "key provider %s:%u: %s", o->address, o->port,
			 r == -ETIMEDOUT ? "answer not complete within the timeout"
			 : r == -EPROTO ? "closed the connection in the middle of its answer"
					: strerror(-r));
		goto out;
	}
	ans[len] = 0;
	r = kp_parse_answer(ans, len, key, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(req);
	free(ans);
	return r;
}
