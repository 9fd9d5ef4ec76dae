/*
 * console: see console.h. A hub is one thread per VM console in use, not
 * the daemon's loop: it polls the VM's console socket and its clients'
 * upgraded connections, copies what the guest writes to every client and
 * what the one writer types to the guest. Everything it holds is bounded:
 * a client that cannot keep up with OUT_MAX bytes of output is dropped (the
 * console log still has everything), and the writer is read only while the
 * guest-bound buffer has room. The hub ends, closing its connection to the
 * VM, when its last client leaves or the VM's side closes (the VM stopped).
 */
#include "console.h"
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define OUT_MAX (256 * 1024) /* output waiting for one client */
#define IN_MAX 4096          /* typed bytes waiting for the guest */
#define POLL_MAX 520         /* the wake fd, the console, the clients polled */
/* A WebSocket client's unparsed input: one frame of typed bytes at most. */
#define RX_MAX (IN_MAX + WS_HEADER_MAX)

struct console_hub;

struct console_client {
	struct console_set *set;
	struct console_hub *hub; /* NULL once it left the hub */
	int refs;                /* the request's and the hub's */
	bool writer, attached;
	bool hub_closes; /* it was attached when it left the hub: the hub closes it */
	int fd;
	void (*close_fn)(void *);
	void *close_arg;
	char *out;
	size_t out_len;
	/* A browser (console_websocket): frames both ways. ws_closing: a close
	 * frame is queued, the client goes once its output is out. */
	bool ws, ws_closing;
	uint8_t *rx;
	size_t rx_len;
	struct console_client *next;
};

struct console_hub {
	struct console_set *set;
	char id[64];
	int con_fd, wake;
	bool ending;
	bool writer_taken;
	struct console_client *clients;
	char in[IN_MAX];
	size_t in_len;
	struct console_hub *next;
};

struct console_set {
	pthread_mutex_t mu;
	pthread_cond_t idle;
	struct console_hub *hubs;
	int threads; /* hub threads still running */
	bool closing;
};

struct console_set *console_set_new(void)
{
	struct console_set *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->idle, NULL);
	return s;
}

static void wake(struct console_hub *h)
{
	uint64_t one = 1;

	if (write(h->wake, &one, sizeof(one)) < 0) {
		/* the counter is full: the hub has a wake-up pending anyway */
	}
}

void console_set_close(struct console_set *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	for (struct console_hub *h = s->hubs; h; h = h->next) {
		h->ending = true;
		wake(h);
	}
	while (s->threads)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

void console_set_free(struct console_set *s)
{
	if (!s)
		return;
	console_set_close(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->idle);
	free(s);
}

/* Under set->mu. Returns true when c is gone (the caller must not use it). */
static bool unref(struct console_client *c)
{
	if (--c->refs > 0)
		return false;
	free(c->rx);
	free(c->out);
	free(c);
	return true;
}

/* Under set->mu: c leaves its hub (its write slot is free again). The
 * hub's reference goes with it, so the caller calls close_fn, then unref. */
static void leave(struct console_client *c)
{
	struct console_hub *h = c->hub;

	for (struct console_client **p = &h->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->writer)
		h->writer_taken = false;
	c->hub_closes = c->attached;
	c->hub = NULL;
	c->next = NULL;
}

/* Copies what the guest wrote to every client; one that has no room left
 * goes onto *gone. */
static bool queue_out(struct console_client *c, const void *hdr, size_t hl, const void *buf, size_t n)
{
	if (!c->out && !(c->out = malloc(OUT_MAX)))
		c->out_len = OUT_MAX; /* no memory: treated as full */
	if (c->out_len + hl + n > OUT_MAX)
		return false;
	memcpy(c->out + c->out_len, hdr, hl);
	memcpy(c->out + c->out_len + hl, buf, n);
	c->out_len += hl + n;
	return true;
}

/* A WebSocket client is told why it goes, then goes once that is out. */
static void ws_close(struct console_client *c, int code)
{
	uint8_t hdr[WS_HEADER_MAX], body[2] = {(uint8_t)(code >> 8), (uint8_t)code};

	if (c->ws_closing)
		return;
	c->ws_closing = true;
	c->rx_len = 0;
	if (!queue_out(c, hdr, ws_frame_header(hdr, WS_OP_CLOSE, 2), body, 2)) {
		c->out_len = 0; /* no room: the output it could not take goes */
		queue_out(c, hdr, ws_frame_header(hdr, WS_OP_CLOSE, 2), body, 2);
	}
}

/* Copies what the guest wrote to every client (a binary frame for a
 * browser: the guest's bytes need not be UTF-8); one that has no room left
 * goes onto *gone. */
static void fan_out(struct console_hub *h, const char *buf, size_t n, struct console_client **gone)
{
	for (struct console_client *c = h->clients, *next; c; c = next) {
		uint8_t hdr[WS_HEADER_MAX];
		size_t hl = c->ws ? ws_frame_header(hdr, WS_OP_BINARY, n) : 0;

		next = c->next;
		if (c->ws_closing)
			continue;
		if (!queue_out(c, hdr, hl, buf, n)) {
			leave(c);
			c->next = *gone;
			*gone = c;
		}
	}
}

/* Under set->mu: the complete frames a WebSocket client sent. A writer's
 * bytes wait in rx while the guest-bound buffer has no room for them; a
 * reader's are dropped. */
static void ws_pump(struct console_hub *h, struct console_client *c)
{
	while (c->rx_len && !c->ws_closing) {
		struct ws_frame f;
		uint8_t hdr[WS_HEADER_MAX];
		long r = ws_decode(c->rx, c->rx_len, IN_MAX, &f);

		if (r < 0) {
			ws_close(c, (int)-r);
			return;
		}
		if (r == 0)
			return;
		if ((f.opcode == WS_OP_TEXT || f.opcode == WS_OP_BINARY) && c->writer) {
			if (IN_MAX - h->in_len < f.len)
				return; /* later, when the guest took some */
			ws_unmask(&f);
			memcpy(h->in + h->in_len, f.payload, f.len);
			h->in_len += f.len;
		} else if (f.opcode == WS_OP_PING) {
			ws_unmask(&f);
			if (!queue_out(c, hdr, ws_frame_header(hdr, WS_OP_PONG, f.len), f.payload, f.len)) {
				ws_close(c, WS_CLOSE_GOING_AWAY); /* it does not read */
				return;
			}
		} else if (f.opcode == WS_OP_CLOSE) {
			ws_close(c, WS_CLOSE_NORMAL);
			return;
		}
		memmove(c->rx, c->rx + r, c->rx_len - (size_t)r);
		c->rx_len -= (size_t)r;
	}
}

/* Ending: a browser gets what is queued and a close frame if its socket
 * takes them at once; then its connection closes anyway. */
static void ws_goodbye(struct console_client *c)
{
	uint8_t fr[4] = {0x80 | WS_OP_CLOSE, 2, WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff};

	if (!c->ws || !c->attached)
		return;
	if (c->out_len && send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)c->out_len)
		return;
	if (!c->ws_closing && send(c->fd, fr, sizeof(fr), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the browser sees the connection end instead */
	}
}

static void close_clients(struct console_set *s, struct console_client *gone)
{
	while (gone) {
		struct console_client *c = gone;

		gone = c->next;
		/* Outside the lock: the HTTP server finishes the request, whose
		 * completion releases the request's reference (console_release). */
		if (c->hub_closes)
			c->close_fn(c->close_arg);
		pthread_mutex_lock(&s->mu);
		unref(c);
		pthread_mutex_unlock(&s->mu);
	}
}

static void *hub_main(void *arg)
{
	struct console_hub *h = arg;
	struct console_set *s = h->set;
	struct console_client *gone = NULL;
	struct pollfd p[POLL_MAX];
	struct console_client *who[POLL_MAX];
	char buf[4096];

	pthread_mutex_lock(&s->mu);
	for (;;) {
		int n = 0;

		if (!h->clients)
			h->ending = true; /* the last client left */
		if (h->ending)
			break;
		p[n++] = (struct pollfd){.fd = h->wake, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = h->con_fd,
		                         .events = (short)(POLLIN | (h->in_len ? POLLOUT : 0))};
		for (struct console_client *c = h->clients; c && n < POLL_MAX; c = c->next) {
			short ev;

			if (!c->attached)
				continue;
			if (c->ws)
				ws_pump(h, c);
			ev = c->out_len ? POLLOUT : 0;
			/* A reader is read too, to see it leave; its bytes are dropped. */
			if (c->ws ? !c->ws_closing && c->rx_len < RX_MAX : !c->writer || h->in_len < IN_MAX)
				ev |= POLLIN;
			who[n] = c;
			p[n++] = (struct pollfd){.fd = c->fd, .events = ev};
		}
		pthread_mutex_unlock(&s->mu);
		close_clients(s, gone);
		gone = NULL;
		if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR) {
			pthread_mutex_lock(&s->mu);
			h->ending = true;
			break;
		}
		pthread_mutex_lock(&s->mu);
		if (p[0].revents) {
			uint64_t v;

			if (read(h->wake, &v, sizeof(v)) < 0) {
				/* nothing pending after all */
			}
		}
		if (p[1].revents & POLLOUT) {
			ssize_t w = send(h->con_fd, h->in, h->in_len, MSG_NOSIGNAL);

			if (w > 0) {
				memmove(h->in, h->in + w, h->in_len - (size_t)w);
				h->in_len -= (size_t)w;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(h->con_fd, buf, sizeof(buf));

			if (r > 0)
				fan_out(h, buf, (size_t)r, &gone);
			else if (r == 0 || (errno != EAGAIN && errno != EINTR))
				h->ending = true; /* the VM's side closed: it stopped */
		}
		for (int i = 2; i < n; i++) {
			struct console_client *c = who[i];
			bool bye = false;

			if (c->hub != h)
				continue; /* dropped by fan_out above */
			if (p[i].revents & POLLOUT) {
				ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

				if (w > 0) {
					memmove(c->out, c->out + w, c->out_len - (size_t)w);
					c->out_len -= (size_t)w;
				} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
					bye = true;
				}
				if (c->ws_closing && !c->out_len)
					bye = true; /* its close frame is out */
			}
			if (!bye && c->ws && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				ssize_t r = c->rx_len < RX_MAX ? read(c->fd, c->rx + c->rx_len, RX_MAX - c->rx_len) : -1;

				if (r > 0) {
					c->rx_len += (size_t)r;
					ws_pump(h, c);
				} else if (r == 0 || (r < 0 && c->rx_len < RX_MAX && errno != EAGAIN && errno != EINTR)) {
					bye = true;
				}
			} else if (!bye && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				char *dst = c->writer ? h->in + h->in_len : buf;
				size_t room = c->writer ? IN_MAX - h->in_len : sizeof(buf);
				ssize_t r = room ? read(c->fd, dst, room) : -1;

				if (r > 0 && c->writer)
					h->in_len += (size_t)r;
				else if (r == 0 || (r < 0 && room && errno != EAGAIN && errno != EINTR))
					bye = true; /* the client left: a writer frees its slot */
			}
			if (bye) {
				leave(c);
				c->next = gone;
				gone = c;
			}
		}
	}
	/* Ending: every client goes, attached or only reserved. */
	for (struct console_hub **q = &s->hubs; *q; q = &(*q)->next)
		if (*q == h) {
			*q = h->next;
			break;
		}
	while (h->clients) {
		struct console_client *c = h->clients;

		ws_goodbye(c);
		leave(c);
		c->next = gone;
		gone = c;
	}
	pthread_mutex_unlock(&s->mu);
	close_clients(s, gone);
	close(h->con_fd);
	close(h->wake);
	free(h);
	pthread_mutex_lock(&s->mu);
	if (--s->threads == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int connect_console(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	/* Non-blocking from here: the hub never waits on one descriptor. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Under set->mu: the live hub of id, or NULL. */
static struct console_hub *find_hub(struct console_set *s, const char *id)
{
	for (struct console_hub *h = s->hubs; h; h = h->next)
		if (!h->ending && !strcmp(h->id, id))
			return h;
	return NULL;
}

static struct console_hub *start_hub(struct console_set *s, const char *id, int fd)
{
	struct console_hub *h = calloc(1, sizeof(*h));
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (!h)
		return NULL;
	h->set = s;
	h->con_fd = fd;
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->wake < 0) {
		free(h);
		return NULL;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = pthread_create(&t, &attr, hub_main, h);
	pthread_attr_destroy(&attr);
	if (r) {
		close(h->wake);
		free(h);
		return NULL;
	}
	s->threads++;
	h->next = s->hubs;
	s->hubs = h;
	return h;
}

int console_reserve(struct console_set *s, const char *id, const char *sock_path, bool writer,
                    struct console_client **out, char *err, size_t errlen)
{
	struct console_client *c;
	struct console_hub *h;
	int fd = -1;

	*out = NULL;
	pthread_mutex_lock(&s->mu);
	h = find_hub(s, id);
	if (!h && !s->closing) {
		/* Connecting is quick (a local socket) but not done under the lock. */
		pthread_mutex_unlock(&s->mu);
		fd = connect_console(sock_path);
		if (fd < 0) {
			snprintf(err, errlen, "cannot reach its console socket %s: %s", sock_path,
			         strerror(-fd));
			return fd == -ECONNREFUSED ? -ENOENT : fd;
		}
		pthread_mutex_lock(&s->mu);
		h = find_hub(s, id); /* another client may have been quicker */
	}
	if (s->closing) {
		pthread_mutex_unlock(&s->mu);
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "the daemon is shutting down");
		return -ESHUTDOWN;
	}
	if (h && fd >= 0) {
		close(fd);
		fd = -1;
	}
	if (!h && !(h = start_hub(s, id, fd))) {
		pthread_mutex_unlock(&s->mu);
		close(fd);
		snprintf(err, errlen, "cannot start the console's thread");
		return -ENOMEM;
	}
	/* From here fd belongs to the hub. */
	if (writer && h->writer_taken) {
		wake(h); /* a hub made for this request ends at once */
		pthread_mutex_unlock(&s->mu);
		snprintf(err, errlen, "another client is typing on its console (one writer at a "
		                      "time; attach read-only, or wait for it to leave)");
		return -EBUSY;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		wake(h);
		pthread_mutex_unlock(&s->mu);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->set = s;
	c->hub = h;
	c->refs = 2;
	c->writer = writer;
	c->fd = -1;
	c->next = h->clients;
	h->clients = c;
	if (writer)
		h->writer_taken = true;
	pthread_mutex_unlock(&s->mu);
	*out = c;
	return 0;
}

void console_attach(struct console_client *c, int fd, void (*close_fn)(void *), void *close_arg)
{
	struct console_set *s = c->set;
	bool orphan;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	pthread_mutex_lock(&s->mu);
	c->fd = fd;
	c->close_fn = close_fn;
	c->close_arg = close_arg;
	c->attached = true;
	orphan = !c->hub; /* the hub ended meanwhile (the VM stopped) */
	if (!orphan)
		wake(c->hub);
	pthread_mutex_unlock(&s->mu);
	if (orphan)
		close_fn(close_arg);
}

int console_websocket(struct console_client *c)
{
	struct console_set *s = c->set;
	uint8_t *rx = malloc(RX_MAX);
	char *out = malloc(OUT_MAX);

	if (!rx || !out) {
		free(rx);
		free(out);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->mu);
	/* What the guest wrote since the reservation went out as raw bytes:
	 * dropped, the browser's stream starts with its first frame. */
	free(c->out);
	c->out = out;
	c->out_len = 0;
	c->rx = rx;
	c->ws = true;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void console_release(struct console_client *c)
{
	struct console_set *s;

	if (!c)
		return;
	s = c->set;
	pthread_mutex_lock(&s->mu);
	if (!c->attached && c->hub) {
		struct console_hub *h = c->hub;

		leave(c);
		wake(h);    /* it may have been the last */
		c->refs--; /* the hub's (the request's is still held) */
	}
	unref(c);
	pthread_mutex_unlock(&s->mu);
}
