/*
 * http: the CLI's one way to talk to cvmmd, a small HTTP/1.1 client of its
 * own aimed at the daemon's unix socket (or an http/https base URL), with the
 * bearer token attached.
 */
#ifndef CVMM_CLI_HTTP_H
#define CVMM_CLI_HTTP_H

#include <stddef.h>
#include <sys/types.h>

struct http_client;

/* Called with each piece of a 2xx body as it arrives; return 0 to go on. */
typedef int (*http_sink_fn)(const char *buf, size_t len, void *data);

struct http_response {
	long status;
	char *body; /* NUL-terminated; NULL when the body went to the sink */
	size_t len;
};

/* socket_path is used when base_url is NULL. token may be NULL. The strings
 * are borrowed and must outlive the client. NULL on allocation failure. */
struct http_client *http_client_new(const char *socket_path, const char *base_url,
                                    const char *token);
void http_client_free(struct http_client *c);

/* Default limits: a daemon that accepts but never answers must not hang
 * the CLI. */
#define HTTP_CONNECT_TIMEOUT_MS 5000L
#define HTTP_TOTAL_TIMEOUT_MS 60000L

/* Limits of the next requests: connect_ms to connect, total_ms for the
 * whole exchange (0: none). */
void http_client_set_timeouts(struct http_client *c, long connect_ms, long total_ms);
/* stream set: total_ms only bounds the wait for the reply's status, and the
 * body may then go on indefinitely (logs -f). */
void http_client_set_stream(struct http_client *c, int stream);
/* https: the CA certificate (PEM) the daemon's certificate must chain to;
 * NULL (the default) trusts the system's CAs. Borrowed. */
void http_client_set_cacert(struct http_client *c, const char *cafile);

/* One request. path starts with "/v1/"; body is a JSON text or NULL. A 2xx
 * body goes to sink if one is given, anything else is kept in resp->body.
 * Returns 0 once an HTTP status came back (whatever it is), -ECONNREFUSED if
 * the daemon could not be reached, -ETIMEDOUT if it did not answer within
 * the limits, -EPIPE if the sink refused data, -EIO for any other transport
 * failure; http_error() then says what happened. */
int http_request(struct http_client *c, const char *method, const char *path, const char *body,
                 http_sink_fn sink, void *sink_data, struct http_response *resp);
const char *http_error(const struct http_client *c);

/* Where requests go, for messages: the socket path or the base URL. */
const char *http_endpoint(const struct http_client *c);

/* Percent-encodes s for use as one path segment; free() the result. */
char *http_escape(struct http_client *c, const char *s);

void http_response_free(struct http_response *r);

/* GET path asking to switch the connection to protocol (HTTP Upgrade).
 * Returns as http_request(); with resp->status 101 the connection is then a
 * raw byte stream, used through http_stream_*() until the next request or
 * http_client_free(); any other status carries its body as usual. */
int http_upgrade(struct http_client *c, const char *path, const char *protocol,
                 struct http_response *resp);
/* The stream's socket, to poll for the events http_stream_events() returns
 * (TLS may need to write in order to read: dflt is what the caller wants). */
int http_stream_fd(const struct http_client *c);
short http_stream_events(const struct http_client *c, short dflt);
/* Bytes already read from the socket but not yet returned: poll() cannot
 * see them, so read them first. */
size_t http_stream_pending(const struct http_client *c);
/* As read() and write() on a non-blocking socket: -1 with errno EAGAIN when
 * nothing can move now, read returns 0 at the end of the stream. */
ssize_t http_stream_read(struct http_client *c, void *buf, size_t n);
ssize_t http_stream_write(struct http_client *c, const void *buf, size_t n);

#endif
