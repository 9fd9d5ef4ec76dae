/*
 * http: the CLI's own HTTP/1.1 client, just what talking to cvmmd needs: one
 * kept-alive connection over a unix socket or TCP (TLS through tls.c when the
 * URL is https), requests with a small JSON body, replies with a
 * Content-Length, chunked or up to EOF, a time limit on every wait, and a
 * connection upgraded into a raw byte stream (the console). It replaces
 * libcurl, whose ~30 shared libraries cost more than the rest of a `cvmm
 * info` put together (README "A fast CLI").
 */
#include "http.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


struct http_client {
	const char *socket_path;
	const char *base_url;
	const char *cafile;
	char *auth_header; /* "Authorization: Bearer ...\r\n" or NULL */
	/* base_url taken apart */
	int https;
	char *host;     /* without brackets, for connect, SNI and verification */
	char *hostport; /* as written in the URL, for Host: */
	char *port;
	char *prefix; /* path part of the URL, "" or "/something" */
	long connect_ms, total_ms; /* 0: no limit */
	int stream;                /* total_ms bounds only the wait for the status */
	/* the connection */
	int fd;
	struct tls_conn *tls;
	int upgraded; /* the connection is now a raw stream (http_upgrade) */
	char in[16384];
	size_t in_off, in_len;
	char error[1024];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *where(const struct http_client *c)
{
	return c->base_url ? "at" : "on socket";
}

/* "http[s]://host[:port][/prefix]" */
static int parse_url(struct http_client *c, const char *url)
{
	const char *p, *host_end, *path;
	size_t hlen;

	if (!strncmp(url, "https://", 8)) {
		c->https = 1;
		p = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		p = url + 7;
	} else {
		return -EINVAL;
	}
	path = p + strcspn(p, "/");
	if (*p == '[') {
		host_end = memchr(p, ']', (size_t)(path - p));
		if (!host_end)
			return -EINVAL;
		c->host = strndup(p + 1, (size_t)(host_end - p - 1));
		host_end++;
	} else {
		host_end = p + strcspn(p, ":/");
		c->host = strndup(p, (size_t)(host_end - p));
	}
	if (*host_end == ':' && host_end + 1 < path)
		c->port = strndup(host_end + 1, (size_t)(path - host_end - 1));
	else
		c->port = strdup(c->https ? "443" : "80");
	hlen = (size_t)(path - p);
	c->hostport = strndup(p, hlen);
	/* Paths start with "/", so a trailing one on the URL would double. */
	c->prefix = strndup(path, strlen(path) - (*path && path[strlen(path) - 1] == '/'));
	if (!c->host || !c->port || !c->hostport || !c->prefix)
		return -ENOMEM;
	return *c->host ? 0 : -EINVAL;
}

struct http_client *http_client_new(const char *socket_path, const char *base_url,
                                    const char *token)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	c->socket_path = socket_path;
	c->base_url = base_url;
	c->connect_ms = HTTP_CONNECT_TIMEOUT_MS;
	c->total_ms = HTTP_TOTAL_TIMEOUT_MS;
	if (base_url && parse_url(c, base_url) < 0)
		goto fail;
	if (token && asprintf(&c->auth_header, "Authorization: Bearer %s\r\n", token) < 0) {
		c->auth_header = NULL;
		goto fail;
	}
	return c;

fail:
	http_client_free(c);
	return NULL;
}

static void disconnect(struct http_client *c)
{
	tls_close(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in_off = c->in_len = 0;
	c->upgraded = 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	disconnect(c);
	free(c->auth_header);
	free(c->host);
	free(c->hostport);
	free(c->port);
	free(c->prefix);
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

void http_client_set_cacert(struct http_client *c, const char *cafile)
{
	c->cafile = cafile;
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
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	(void)c;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

void http_response_free(struct http_response *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- waiting -------------------------------------------------------------- */

/* Waits until fd is ready for events or the deadline (0: none) passes. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		long long left = deadline ? deadline - now_ms() : -1;
		int n;

		if (deadline && left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- connecting ----------------------------------------------------------- */

static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, long long deadline)
{
	int err = 0, r;
	socklen_t elen = sizeof(err);

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN)
		return -errno;
	if ((r = wait_fd(fd, POLLOUT, deadline)) < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	return err ? -err : 0;
}

static int connect_unix(struct http_client *c, long long deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (strlen(c->socket_path) >= sizeof(sa.sun_path)) {
		snprintf(c->error, sizeof(c->error),
		         "cannot connect to cvmmd on socket %s: the path is too long", c->socket_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, c->socket_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -errno;
	r = connect_fd(c->fd, (struct sockaddr *)&sa, sizeof(sa), deadline);
	if (r == -EAGAIN) /* a unix socket's backlog is full: as good as refused */
		r = -ECONNREFUSED;
	return r;
}

static int connect_tcp(struct http_client *c, long long deadline)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int r = -EHOSTUNREACH, g;

#ifdef CVMM_CLI_STATIC
	/* The static cvmm runs cvmm-full for any --url (cvmm.c): not reached,
	 * and glibc's getaddrinfo would load NSS modules. */
	(void)hints, (void)res, (void)r, (void)g;
	snprintf(c->error, sizeof(c->error), "%s: TCP needs cvmm-full (this cvmm is static)",
	         c->base_url);
	return -EHOSTUNREACH;
#else
	g = getaddrinfo(c->host, c->port, &hints, &res);
	if (g) {
		snprintf(c->error, sizeof(c->error), "cannot connect to cvmmd at %s: %s: %s",
		         c->base_url, c->host, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		c->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		               a->ai_protocol);
		if (c->fd < 0) {
			r = -errno;
			continue;
		}
		r = connect_fd(c->fd, a->ai_addr, a->ai_addrlen, deadline);
		if (r == 0 || r == -ETIMEDOUT)
			break;
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	return r;
#endif
}

static int do_connect(struct http_client *c)
{
	long long deadline = c->connect_ms > 0 ? now_ms() + c->connect_ms : 0;
	int r;

	c->error[0] = '\0';
	r = c->base_url ? connect_tcp(c, deadline) : connect_unix(c, deadline);
	if (r == 0 && c->https) {
		char msg[768] = "";

		r = tls_connect(c->fd, c->host, c->cafile, deadline, &c->tls, msg, sizeof(msg));
		if (r < 0 && r != -ETIMEDOUT) {
			snprintf(c->error, sizeof(c->error), "cannot talk to cvmmd at %s: %s",
			         c->base_url, *msg ? msg : strerror(-r));
			disconnect(c);
			return r == -ENOMEM ? r : -EIO;
		}
	}
	if (r == 0)
		return 0;
	disconnect(c);
	if (c->error[0])
		return r;
	if (r == -ETIMEDOUT)
		snprintf(c->error, sizeof(c->error),
		         "cannot connect to cvmmd %s %s: no connection within %.1f s", where(c),
		         http_endpoint(c), (double)c->connect_ms / 1000);
	else
		snprintf(c->error, sizeof(c->error), "cannot connect to cvmmd %s %s: %s", where(c),
		         http_endpoint(c), strerror(-r));
	return r == -ETIMEDOUT ? r : -ECONNREFUSED;
}

/* ---- bytes on the connection ---------------------------------------------- */

static ssize_t raw_read(struct http_client *c, void *buf, size_t n)
{
	return c->tls ? tls_read(c->tls, buf, n) : read(c->fd, buf, n);
}

static ssize_t raw_write(struct http_client *c, const void *buf, size_t n)
{
	return c->tls ? tls_write(c->tls, buf, n) : send(c->fd, buf, n, MSG_NOSIGNAL);
}

/* TLS may need to write to read (and the reverse): poll the way it asks. */
static short want(const struct http_client *c, short dflt)
{
	return c->tls ? (tls_want_write(c->tls) ? POLLOUT : POLLIN) : dflt;
}

static int send_all(struct http_client *c, const char *buf, size_t n, long long deadline)
{
	while (n) {
		ssize_t w = raw_write(c, buf, n);
		int r;

		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0 || errno != EAGAIN)
			return w == 0 ? -EPIPE : -errno;
		if ((r = wait_fd(c->fd, want(c, POLLOUT), deadline)) < 0)
			return r;
	}
	return 0;
}

/* Refills the input buffer (its unread part moved to the front). Returns
 * bytes added, 0 at EOF, or a negative errno. */
static ssize_t fill(struct http_client *c, long long deadline)
{
	if (c->in_off) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == sizeof(c->in))
		return -ENOBUFS;
	for (;;) {
		ssize_t n = raw_read(c, c->in + c->in_len, sizeof(c->in) - c->in_len);
		int r;

		if (n >= 0) {
			c->in_len += (size_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if ((r = wait_fd(c->fd, want(c, POLLIN), deadline)) < 0)
			return r;
	}
}

/* One CRLF-terminated line (the CRLF cut off), pointing into the buffer. */
static int read_line(struct http_client *c, char **line, long long deadline)
{
	for (;;) {
		char *start = c->in + c->in_off;
		char *nl = memchr(start, '\n', c->in_len - c->in_off);
		ssize_t n;

		if (nl) {
			*nl = '\0';
			if (nl > start && nl[-1] == '\r')
				nl[-1] = '\0';
			*line = start;
			c->in_off = (size_t)(nl + 1 - c->in);
			return 0;
		}
		n = fill(c, deadline);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return (int)n;
	}
}

/* ---- a request ------------------------------------------------------------ */

struct transfer {
	struct http_response *resp;
	http_sink_fn sink;
	void *sink_data;
	int to_sink;
	char *buf;
	size_t len, cap;
	int sink_errno;
};

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

static int deliver(struct transfer *t, const char *data, size_t n)
{
	if (!t->to_sink)
		return keep(t, data, n);
	errno = 0;
	if (t->sink(data, n, t->sink_data) != 0) {
		t->sink_errno = errno ? errno : EIO;
		return -EPIPE;
	}
	return 0;
}

/* Up to n body bytes (n = SIZE_MAX: up to EOF) to the transfer. */
static int body_bytes(struct http_client *c, struct transfer *t, uint64_t n, int to_eof,
                      long long deadline)
{
	while (to_eof || n) {
		size_t avail = c->in_len - c->in_off, take;
		ssize_t got;
		int r;

		if (!avail) {
			c->in_off = c->in_len = 0;
			got = fill(c, deadline);
			if (got < 0)
				return (int)got;
			if (got == 0)
				return to_eof ? 0 : -ECONNRESET;
			continue;
		}
		take = !to_eof && n < avail ? (size_t)n : avail;
		if ((r = deliver(t, c->in + c->in_off, take)) < 0)
			return r;
		c->in_off += take;
		n -= to_eof ? 0 : take;
	}
	return 0;
}

static int chunked_body(struct http_client *c, struct transfer *t, long long deadline)
{
	for (;;) {
		char *line, *end;
		unsigned long long size;
		int r;

		if ((r = read_line(c, &line, deadline)) < 0)
			return r;
		errno = 0;
		size = strtoull(line, &end, 16);
		if (end == line || errno || (*end && *end != ';'))
			return -EPROTO;
		if (size == 0)
			break;
		if ((r = body_bytes(c, t, size, 0, deadline)) < 0)
			return r;
		if ((r = read_line(c, &line, deadline)) < 0)
			return r;
		if (*line)
			return -EPROTO;
	}
	for (;;) { /* trailers, up to the empty line */
		char *line;
		int r = read_line(c, &line, deadline);

		if (r < 0)
			return r;
		if (!*line)
			return 0;
	}
}

struct head {
	long status;
	int chunked, close, has_length;
	uint64_t length;
};

static int read_head(struct http_client *c, struct head *h, long long deadline)
{
	char *line;
	int r;

	memset(h, 0, sizeof(*h));
	do { /* 1xx replies are followed by the real one */
		if ((r = read_line(c, &line, deadline)) < 0)
			return r;
		if (strncmp(line, "HTTP/1.", 7) || strlen(line) < 12)
			return -EPROTO;
		h->status = strtol(line + 9, NULL, 10);
		h->close = line[7] == '0'; /* HTTP/1.0 closes unless told */
		while ((r = read_line(c, &line, deadline)) == 0 && *line) {
			char *v = strchr(line, ':');

			if (!v)
				return -EPROTO;
			*v++ = '\0';
			v += strspn(v, " \t");
			if (!strcasecmp(line, "Content-Length")) {
				h->has_length = 1;
				h->length = strtoull(v, NULL, 10);
			} else if (!strcasecmp(line, "Transfer-Encoding")) {
				h->chunked = strcasestr(v, "chunked") != NULL;
			} else if (!strcasecmp(line, "Connection")) {
				if (strcasestr(v, "close"))
					h->close = 1;
				else if (strcasestr(v, "keep-alive"))
					h->close = 0;
			}
		}
		if (r < 0)
			return r;
	} while (h->status >= 100 && h->status < 200 && h->status != 101);
	return 0;
}

static int send_request(struct http_client *c, const char *method, const char *path,
                        const char *body, const char *extra, long long deadline)
{
	char *req = NULL;
	size_t blen = body ? strlen(body) : 0;
	int n, r;

	n = asprintf(&req,
	             "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cvmm/" CVMM_VERSION "\r\n"
	             "%s%s%s",
	             method, c->base_url ? c->prefix : "", path,
	             c->base_url ? c->hostport : "localhost", c->auth_header ? c->auth_header : "",
	             body ? "Content-Type: application/json\r\n" : "", extra ? extra : "");
	if (n < 0)
		return -ENOMEM;
	/* Content-Length: 0 on a bodiless POST keeps servers from waiting. */
	if (body || strcmp(method, "GET")) {
		char *with = NULL;

		n = asprintf(&with, "%sContent-Length: %zu\r\n\r\n", req, blen);
		free(req);
		if (n < 0)
			return -ENOMEM;
		req = with;
	} else {
		char *with = NULL;

		n = asprintf(&with, "%s\r\n", req);
		free(req);
		if (n < 0)
			return -ENOMEM;
		req = with;
	}
	r = send_all(c, req, (size_t)n, deadline);
	if (r == 0 && blen)
		r = send_all(c, body, blen, deadline);
	free(req);
	return r;
}

/* A kept connection the daemon closed meanwhile fails at the first read or
 * write: such a request is sent again once on a fresh connection. */
static int stale(int r)
{
	return r == -ECONNRESET || r == -EPIPE;
}

static int exchange(struct http_client *c, const char *method, const char *path,
                    const char *body, const char *extra, struct head *h, long long deadline)
{
	for (int attempt = 0;; attempt++) {
		int reused = c->fd >= 0, r;

		if (!reused && (r = do_connect(c)) < 0)
			return r;
		r = send_request(c, method, path, body, extra, deadline);
		if (r == 0)
			r = read_head(c, h, deadline);
		if (r == 0)
			return 0;
		disconnect(c);
		if (!(reused && stale(r) && attempt == 0))
			return r;
	}
}

static void describe(struct http_client *c, int r, const char *method, const char *path)
{
	if (c->error[0])
		return;
	if (r == -ETIMEDOUT)
		snprintf(c->error, sizeof(c->error),
		         "cvmmd %s %s did not answer %s %s within %.1f s (is it hung? "
		         "--timeout SECONDS waits longer)",
		         where(c), http_endpoint(c), method, path, (double)c->total_ms / 1000);
	else if (r == -EPROTO)
		snprintf(c->error, sizeof(c->error),
		         "cannot talk to cvmmd %s %s: the reply to %s %s is not HTTP%s", where(c),
		         http_endpoint(c), method, path,
		         c->base_url && !c->https ? " (is it https?)" : "");
	else if (r == -ECONNRESET)
		snprintf(c->error, sizeof(c->error),
		         "cannot talk to cvmmd %s %s: the connection closed during %s %s%s", where(c),
		         http_endpoint(c), method, path,
		         c->base_url && !c->https ? " (does it want https?)" : "");
	else
		snprintf(c->error, sizeof(c->error), "cannot talk to cvmmd %s %s: %s", where(c),
		         http_endpoint(c),
		         r == -EPROTO && c->tls ? tls_last_error(c->tls) : strerror(-r));
}

int http_request(struct http_client *c, const char *method, const char *path, const char *body,
                 http_sink_fn sink, void *sink_data, struct http_response *resp)
{
	struct transfer t = {.resp = resp, .sink = sink, .sink_data = sink_data};
	long long deadline = c->total_ms > 0 ? now_ms() + c->total_ms : 0;
	struct head h;
	int r;

	memset(resp, 0, sizeof(*resp));
	c->error[0] = '\0';
	if (c->upgraded)
		disconnect(c);
	r = exchange(c, method, path, body, NULL, &h, deadline);
	if (r < 0)
		goto fail;
	resp->status = h.status;
	/* An error reply is buffered for its JSON while a success can stream. */
	t.to_sink = sink && h.status >= 200 && h.status < 300;
	if (c->stream)
		deadline = 0; /* "logs -f" streams for as long as the VM lives */
	if (!strcmp(method, "HEAD") || h.status == 204 || h.status == 304)
		r = 0;
	else if (h.chunked)
		r = chunked_body(c, &t, deadline);
	else if (h.has_length) {
		/* One allocation of the announced size, not a doubling series
		 * (a list of 1000 VMs is 130 to 600 KB). */
		if (!t.to_sink && h.length < (64u << 20) && (t.buf = malloc(h.length + 1))) {
			t.cap = h.length + 1;
			t.buf[0] = '\0';
		}
		r = body_bytes(c, &t, h.length, 0, deadline);
	} else {
		r = body_bytes(c, &t, 0, 1, deadline), h.close = 1;
	}
	if (r < 0)
		goto fail;
	if (h.close)
		disconnect(c);
	resp->body = t.buf ? t.buf : strdup("");
	resp->len = t.len;
	t.buf = NULL;
	if (!resp->body) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		return -ENOMEM;
	}
	return 0;

fail:
	disconnect(c);
	free(t.buf);
	resp->status = 0;
	if (r == -EPIPE && t.sink_errno) {
		snprintf(c->error, sizeof(c->error), "cannot write output: %s",
		         strerror(t.sink_errno));
		return -EPIPE;
	}
	if (r == -ENOMEM) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		return r;
	}
	if (r == -ECONNREFUSED)
		return r;
	describe(c, r, method, path);
	return r == -ETIMEDOUT ? r : -EIO;
}

/* ---- an upgraded connection ----------------------------------------------- */

int http_upgrade(struct http_client *c, const char *path, const char *protocol,
                 struct http_response *resp)
{
	long long deadline = c->total_ms > 0 ? now_ms() + c->total_ms : 0;
	char extra[256];
	struct head h;
	int r;

	memset(resp, 0, sizeof(*resp));
	c->error[0] = '\0';
	disconnect(c); /* a fresh connection: it is given over to the stream */
	snprintf(extra, sizeof(extra), "Connection: Upgrade\r\nUpgrade: %s\r\n", protocol);
	r = exchange(c, "GET", path, NULL, extra, &h, deadline);
	if (r < 0) {
		disconnect(c);
		if (r == -ECONNREFUSED || r == -ENOMEM)
			return r;
		describe(c, r, "GET", path);
		return r == -ETIMEDOUT ? r : -EIO;
	}
	resp->status = h.status;
	if (h.status == 101) {
		c->upgraded = 1;
		if (!(resp->body = strdup("")))
			return -ENOMEM;
		return 0;
	}
	/* A refusal: its JSON body says why. */
	{
		struct transfer t = {.resp = resp};

		if (h.chunked)
			r = chunked_body(c, &t, deadline);
		else if (h.has_length)
			r = body_bytes(c, &t, h.length, 0, deadline);
		else
			r = body_bytes(c, &t, 0, 1, deadline);
		disconnect(c);
		resp->body = t.buf ? t.buf : strdup("");
		resp->len = t.len;
		if (r < 0 || !resp->body) {
			describe(c, r < 0 ? r : -ENOMEM, "GET", path);
			return r < 0 ? -EIO : -ENOMEM;
		}
	}
	return 0;
}

int http_stream_fd(const struct http_client *c)
{
	return c->fd;
}

short http_stream_events(const struct http_client *c, short dflt)
{
	/* TLS: what the caller wants, plus writing when a write of GnuTLS's
	 * is pending (a read may also need the socket to become readable,
	 * which POLLIN in dflt covers). */
	if (c->tls && tls_want_write(c->tls))
		dflt |= POLLOUT;
	return dflt;
}

size_t http_stream_pending(const struct http_client *c)
{
	return (c->in_len - c->in_off) + (c->tls ? tls_pending(c->tls) : 0);
}

ssize_t http_stream_read(struct http_client *c, void *buf, size_t n)
{
	size_t avail = c->in_len - c->in_off;

	/* Bytes that came with the 101's headers are the stream's first. */
	if (avail) {
		if (n > avail)
			n = avail;
		memcpy(buf, c->in + c->in_off, n);
		c->in_off += n;
		return (ssize_t)n;
	}
	return raw_read(c, buf, n);
}

ssize_t http_stream_write(struct http_client *c, const void *buf, size_t n)
{
	return raw_write(c, buf, n);
}
