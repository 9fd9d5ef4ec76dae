/*
 * events: see events.h. One mutex guards the ring; publishers and readers
 * hold it only to copy one fixed-size slot in or out, so a publisher (a
 * job's vm_event, an API thread) never waits on a subscriber's socket: a
 * subscriber that does not keep up is overtaken by the ring and told how
 * many events it lost. Readers block on a condition variable (monotonic
 * clock) that every publish broadcasts.
 */
#include "events.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EV_VM_ID 37
#define EV_NAME 64
#define EV_TYPE 32
#define EV_MESSAGE 512
#define SUB_MAX_FILTER 16

struct event {
	uint64_t id;
	double time;
	char vm_id[EV_VM_ID];
	char name[EV_NAME];
	char type[EV_TYPE];
	char message[EV_MESSAGE];
};

struct events {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct event *ring;
	size_t cap;
	uint64_t first; /* id of the run's first event */
	uint64_t next;  /* id the next event gets */
};

struct events_sub {
	struct events *ev;
	uint64_t next;     /* the next id it wants */
	uint64_t lost;     /* events to report lost before the next one */
	bool lost_unknown; /* how many is unknown (an id of another run) */
	bool hello_sent;
	double keepalive, last_write;
	int n_vms, n_types;
	char vms[SUB_MAX_FILTER][EV_NAME];
	char types[SUB_MAX_FILTER][EV_TYPE];
};

struct events *events_new(size_t cap, uint64_t first_id)
{
	struct events *ev = xzalloc(sizeof(*ev));
	pthread_mutex_init(&ev->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->cond, &ca);
	pthread_condattr_destroy(&ca);
	ev->cap = cap ? cap : 1;
	ev->ring = xzalloc(sizeof(*ev->ring) * ev->cap);
	ev->first = ev->next = first_id ? first_id : 1;
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	pthread_mutex_destroy(&ev->mu);
	pthread_cond_destroy(&ev->cond);
	free(ev->ring);
	free(ev);
}

uint64_t events_first_id(double now)
{
	/* The start time in microseconds: a run that began later starts above
	 * the ids of an earlier one unless that one published more than an
	 * event a microsecond (a restart within the same second included).
	 * Ids stay below 2^53, exact in a JavaScript number, until 2255. */
	return (uint64_t)(now * 1e6) + 1;
}

uint64_t events_publish(struct events *ev, const char *vm_id, const char *vm_name, const char *type,
                        const char *message)
{
	double t = now_real();
	pthread_mutex_lock(&ev->mu);
	uint64_t id = ev->next++;
	struct event *e = &ev->ring[id % ev->cap];
	e->id = id;
	e->time = t;
	str_copy(e->vm_id, sizeof(e->vm_id), vm_id ? vm_id : "");
	str_copy(e->name, sizeof(e->name), vm_name ? vm_name : "");
	str_copy(e->type, sizeof(e->type), type ? type : "");
	str_copy(e->message, sizeof(e->message), message ? message : "");
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->mu);
	return id;
}

uint64_t events_last_id(struct events *ev)
{
	pthread_mutex_lock(&ev->mu);
	uint64_t id = ev->next > ev->first ? ev->next - 1 : 0;
	pthread_mutex_unlock(&ev->mu);
	return id;
}

uint64_t events_published(struct events *ev)
{
	pthread_mutex_lock(&ev->mu);
	uint64_t n = ev->next - ev->first;
	pthread_mutex_unlock(&ev->mu);
	return n;
}

/* Oldest id the ring still holds; caller holds ev->mu. */
static uint64_t oldest(const struct events *ev)
{
	uint64_t held = ev->next - ev->first;
	return held > ev->cap ? ev->next - ev->cap : ev->first;
}

/* ---- subscribers ---- */

/* Splits a comma-separated list into out (each at most width-1 bytes of
 * [A-Za-z0-9._-]). */
static int split_list(const char *what, const char *s, char (*out)[EV_NAME], int width, int *n,
                      char *err, size_t errlen)
{
	*n = 0;
	while (*s) {
		const char *end = strchr(s, ',');
		size_t l = end ? (size_t)(end - s) : strlen(s);
		if (l == 0 || l >= (size_t)width) {
			snprintf(err, errlen, "%s: each entry must be 1 to %d characters", what,
			         width - 1);
			return -EINVAL;
		}
		for (size_t i = 0; i < l; i++) {
			char c = s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
				snprintf(err, errlen,
				         "%s: '%.*s' is not a name (letters, digits, . _ -)", what,
				         (int)(l > 64 ? 64 : l), s);
				return -EINVAL;
			}
		}
		if (*n == SUB_MAX_FILTER) {
			snprintf(err, errlen, "%s: at most %d entries", what, SUB_MAX_FILTER);
			return -EINVAL;
		}
		memcpy(out[*n], s, l);
		out[*n][l] = 0;
		(*n)++;
		s += l + (end ? 1 : 0);
		if (end && !*s) {
			snprintf(err, errlen, "%s: ends with a comma", what);
			return -EINVAL;
		}
	}
	return 0;
}

int events_sub_new(struct events *ev, const char *last_id, const char *vms, const char *types,
                   struct events_sub **out, char *err, size_t errlen)
{
	struct events_sub *s = xzalloc(sizeof(*s));
	char tmp[SUB_MAX_FILTER][EV_NAME];
	int r;
	*out = NULL;
	s->ev = ev;
	s->keepalive = EVENTS_KEEPALIVE;
	s->last_write = now_mono();
	if (vms && (r = split_list("vm", vms, s->vms, EV_NAME, &s->n_vms, err, errlen)) < 0)
		goto fail;
	if (types && (r = split_list("type", types, tmp, EV_TYPE, &s->n_types, err, errlen)) < 0)
		goto fail;
	for (int i = 0; i < s->n_types; i++)
		str_copy(s->types[i], sizeof(s->types[i]), tmp[i]);
	uint64_t last = 0;
	if (last_id) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(last_id, &end, 10);
		if (!*last_id || *end || errno || *last_id < '0' || *last_id > '9') {
			snprintf(err, errlen,
			         "Last-Event-ID: '%.40s' is not an event id (a number)", last_id);
			r = -EINVAL;
			goto fail;
		}
		last = v;
	}
	pthread_mutex_lock(&ev->mu);
	uint64_t old = oldest(ev);
	if (!last_id) {
		s->next = ev->next;
	} else if (last + 1 >= old && last < ev->next) {
		s->next = last + 1;
	} else {
		/* Older than the ring, or not of this run: say so, then give
		 * everything the ring has. */
		s->next = old;
		if (last + 1 < old && last + 1 >= ev->first)
			s->lost = old - (last + 1);
		else
			s->lost_unknown = true;
	}
	pthread_mutex_unlock(&ev->mu);
	*out = s;
	return 0;
fail:
	free(s);
	return r;
}

void events_sub_free(struct events_sub *s)
{
	free(s);
}

void events_sub_set_keepalive(struct events_sub *s, double seconds)
{
	s->keepalive = seconds;
}

static bool matches(const struct events_sub *s, const struct event *e)
{
	bool ok = !s->n_vms;
	for (int i = 0; i < s->n_vms && !ok; i++)
		ok = !strcmp(s->vms[i], e->vm_id) || !strcmp(s->vms[i], e->name);
	if (!ok)
		return false;
	ok = !s->n_types;
	for (int i = 0; i < s->n_types && !ok; i++)
		ok = !strcmp(s->types[i], e->type);
	return ok;
}

/* Appends s as a JSON string: escaped per RFC 8259, bytes that are not
 * UTF-8 as '?' (an event can carry a plugin's message). Returns the new
 * length, or 0 when it does not fit. */
static size_t put_json_str(char *buf, size_t len, size_t max, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
#define PUTC(c)                                                                                    \
	do {                                                                                       \
		if (len + 1 >= max)                                                                \
			return 0;                                                                  \
		buf[len++] = (char)(c);                                                            \
	} while (0)
	PUTC('"');
	while (*p) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			PUTC('\\');
			PUTC(c);
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			char u[8];
			snprintf(u, sizeof(u), "\\u%04x", c);
			for (int i = 0; u[i]; i++)
				PUTC(u[i]);
			p++;
		} else if (c < 0x80) {
			PUTC(c);
			p++;
		} else {
			int n = (c & 0xe0) == 0xc0   ? 2
			        : (c & 0xf0) == 0xe0 ? 3
			        : (c & 0xf8) == 0xf0 ? 4
			                             : 0;
			bool ok = n && !(n == 2 && c < 0xc2) && !(n == 4 && c > 0xf4);
			for (int i = 1; ok && i < n; i++)
				ok = (p[i] & 0xc0) == 0x80;
			if (ok && n == 3)
				ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
			if (ok && n == 4)
				ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
			if (!ok) {
				PUTC('?');
				p++;
				continue;
			}
			for (int i = 0; i < n; i++)
				PUTC(p[i]);
			p += n;
		}
	}
	PUTC('"');
	buf[len] = 0;
	return len;
#undef PUTC
}

static size_t put_text(char *buf, size_t len, size_t max, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put_text(char *buf, size_t len, size_t max, const char *fmt, ...)
{
	if (!len || len >= max)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + len, max - len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= max - len ? 0 : len + (size_t)n;
}

size_t events_format(char *buf, size_t max, uint64_t id, double time, const char *vm_id,
                     const char *vm_name, const char *type, const char *message)
{
	int n = snprintf(buf, max, "id: %llu\ndata: {\"id\":%llu,\"time\":%.6f,\"vm\":",
	                 (unsigned long long)id, (unsigned long long)id, time);
	size_t len = n < 0 || (size_t)n >= max ? 0 : (size_t)n;
	if (len && (len = put_json_str(buf, len, max, vm_id)))
		len = put_text(buf, len, max, ",\"name\":");
	if (len && (len = put_json_str(buf, len, max, vm_name)))
		len = put_text(buf, len, max, ",\"type\":");
	if (len && (len = put_json_str(buf, len, max, type)))
		len = put_text(buf, len, max, ",\"message\":");
	if (len && (len = put_json_str(buf, len, max, message)))
		len = put_text(buf, len, max, "}\n\n");
	return len;
}

/* The "lost" event: no id of its own (a client resuming after it resumes
 * from the last event it really saw). */
static size_t format_lost(struct events_sub *s, char *buf, size_t max, uint64_t first_kept)
{
	char msg[256];
	if (s->lost_unknown)
		snprintf(msg, sizeof(msg),
		         "events were lost: the id given is not of this daemon run (it restarted); "
		         "what follows starts at id %llu, the oldest kept",
		         (unsigned long long)first_kept);
	else
		snprintf(msg, sizeof(msg),
		         "%llu events were lost: the daemon keeps the newest %d; what follows "
		         "starts at id %llu",
		         (unsigned long long)s->lost, EVENTS_RING, (unsigned long long)first_kept);
	int n = snprintf(buf, max, "data: {\"type\":\"lost\",\"lost\":%llu,\"message\":",
	                 (unsigned long long)s->lost);
	size_t len = n < 0 || (size_t)n >= max ? 0 : (size_t)n;
	if (len && (len = put_json_str(buf, len, max, msg)))
		len = put_text(buf, len, max, "}\n\n");
	return len;
}

size_t events_sub_read(struct events_sub *s, char *buf, size_t max, int wait_ms)
{
	struct events *ev = s->ev;
	size_t len = 0;
	if (!s->hello_sent) {
		/* At once, so that a client knows it is subscribed before it
		 * acts (and a proxy sees the stream start). */
		int n = snprintf(buf, max, ": cvmm events from id %llu\n\n",
		                 (unsigned long long)s->next);
		if (n > 0 && (size_t)n < max)
			len = (size_t)n;
		s->hello_sent = true;
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += wait_ms / 1000;
	dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	for (;;) {
		struct event e;
		pthread_mutex_lock(&ev->mu);
		uint64_t old = oldest(ev);
		if (s->next < old) { /* overtaken while it was writing */
			s->lost += old - s->next;
			s->next = old;
		}
		bool have = s->next < ev->next;
		if (have && !s->lost && !s->lost_unknown)
			e = ev->ring[s->next % ev->cap];
		else if (!have && !len && !s->lost && !s->lost_unknown && wait_ms > 0 &&
		         pthread_cond_timedwait(&ev->cond, &ev->mu, &dl) == 0) {
			pthread_mutex_unlock(&ev->mu);
			continue;
		}
		pthread_mutex_unlock(&ev->mu);
		if (s->lost || s->lost_unknown) {
			size_t n = format_lost(s, buf + len, max - len, s->next);
			if (!n)
				break;
			len += n;
			s->lost = 0;
			s->lost_unknown = false;
			continue;
		}
		if (!have)
			break;
		if (matches(s, &e)) {
			size_t n = events_format(buf + len, max - len, e.id, e.time, e.vm_id,
			                         e.name, e.type, e.message);
			if (!n && len)
				break; /* next time */
			len += n;      /* an event larger than a whole buffer is skipped */
		}
		s->next = e.id + 1;
	}
	double now = now_mono();
	if (!len && now - s->last_write >= s->keepalive) {
		int n = snprintf(buf, max, ": keep-alive\n\n");
		if (n > 0 && (size_t)n < max)
			len = (size_t)n;
	}
	if (len)
		s->last_write = now;
	return len;
}
