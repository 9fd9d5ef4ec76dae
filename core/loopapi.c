/* loopapi: see loopapi.h. A watch lives in d->watches from add until the
 * loop thread has applied its removal; callbacks check `removed` under the
 * lock so a remove from another thread takes effect at once. */
#include "loopapi.h"
#include "daemon.h"
#include "util.h"

#include <errno.h>

struct lwatch {
	int id;
	bool is_timer, removed, queued;
	int fd;
	uint32_t events;
	int64_t period_ms;
	cvmm_io_fn io_fn;
	cvmm_timer_fn timer_fn;
	void *data;
	ev_io io;
	ev_timer timer;
	struct lwatch *next;
};

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lwatch *lw = w->data;
	uint32_t ev = (revents & EV_READ ? CVMM_IO_READ : 0) | (revents & EV_WRITE ? CVMM_IO_WRITE : 0);
	if (!lw->removed)
		lw->io_fn(lw->data, lw->id, lw->fd, ev);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lwatch *lw = w->data;
	if (!lw->removed)
		lw->timer_fn(lw->data, lw->id);
}

/* Loop thread: make the libev watcher match the record, or free it. */
static void apply(struct cvmm_daemon *d, void *arg)
{
	struct lwatch *lw = arg;
	pthread_mutex_lock(&d->watch_lock);
	lw->queued = false;
	bool removed = lw->removed;
	if (removed)
		for (struct lwatch **pp = &d->watches; *pp; pp = &(*pp)->next)
			if (*pp == lw) {
				*pp = lw->next;
				break;
			}
	uint32_t events = lw->events;
	int64_t period = lw->period_ms;
	pthread_mutex_unlock(&d->watch_lock);
	if (lw->is_timer) {
		ev_timer_stop(d->loop, &lw->timer);
		if (!removed && period >= 0) {
			double s = period ? (double)period / 1000.0 : 0.0005;
			ev_timer_set(&lw->timer, s, s);
			ev_timer_start(d->loop, &lw->timer);
		}
	} else {
		ev_io_stop(d->loop, &lw->io);
		int mask = (events & CVMM_IO_READ ? EV_READ : 0) | (events & CVMM_IO_WRITE ? EV_WRITE : 0);
		if (!removed && mask) {
			ev_io_set(&lw->io, lw->fd, mask);
			ev_io_start(d->loop, &lw->io);
		}
	}
	if (removed)
		free(lw);
}

static void queue_apply(struct cvmm_daemon *d, struct lwatch *lw)
{
	/* Caller holds watch_lock; one pending apply per watch is enough. */
	if (lw->queued)
		return;
	lw->queued = true;
	daemon_call_on_loop(d, apply, lw);
}

static int add(struct cvmm_daemon *d, struct lwatch *lw)
{
	pthread_mutex_lock(&d->watch_lock);
	lw->id = ++d->next_watch_id;
	lw->next = d->watches;
	d->watches = lw;
	queue_apply(d, lw);
	int id = lw->id;
	pthread_mutex_unlock(&d->watch_lock);
	return id;
}

int loopapi_io_add(struct cvmm_daemon *d, int fd, uint32_t events, cvmm_io_fn fn, void *data)
{
	if (fd < 0 || !fn)
		return -EINVAL;
	struct lwatch *lw = xzalloc(sizeof(*lw));
	lw->fd = fd;
	lw->events = events;
	lw->io_fn = fn;
	lw->data = data;
	ev_io_init(&lw->io, io_cb, fd, EV_READ);
	lw->io.data = lw;
	return add(d, lw);
}

int loopapi_timer_add(struct cvmm_daemon *d, int64_t period_ms, cvmm_timer_fn fn, void *data)
{
	if (!fn)
		return -EINVAL;
	struct lwatch *lw = xzalloc(sizeof(*lw));
	lw->is_timer = true;
	lw->period_ms = period_ms;
	lw->timer_fn = fn;
	lw->data = data;
	ev_init(&lw->timer, timer_cb);
	lw->timer.data = lw;
	return add(d, lw);
}

static int change(struct cvmm_daemon *d, int id, bool timer, int what, int64_t value)
{
	int r = -ENOENT;
	pthread_mutex_lock(&d->watch_lock);
	for (struct lwatch *lw = d->watches; lw; lw = lw->next) {
		if (lw->id != id || lw->is_timer != timer || lw->removed)
			continue;
		if (what == 0)
			lw->removed = true;
		else if (timer)
			lw->period_ms = value;
		else
			lw->events = (uint32_t)value;
		queue_apply(d, lw);
		r = 0;
		break;
	}
	pthread_mutex_unlock(&d->watch_lock);
	return r;
}

int loopapi_io_update(struct cvmm_daemon *d, int id, uint32_t events)
{
	return change(d, id, false, 1, events);
}
int loopapi_io_remove(struct cvmm_daemon *d, int id)
{
	return change(d, id, false, 0, 0);
}
int loopapi_timer_update(struct cvmm_daemon *d, int id, int64_t period_ms)
{
	return change(d, id, true, 1, period_ms);
}
int loopapi_timer_remove(struct cvmm_daemon *d, int id)
{
	return change(d, id, true, 0, 0);
}

void loopapi_free_all(struct cvmm_daemon *d)
{
	pthread_mutex_lock(&d->watch_lock);
	struct lwatch *lw = d->watches;
	d->watches = NULL;
	pthread_mutex_unlock(&d->watch_lock);
	while (lw) {
		struct lwatch *n = lw->next;
		if (lw->is_timer)
			ev_timer_stop(d->loop, &lw->timer);
		else
			ev_io_stop(d->loop, &lw->io);
		/* An apply may still be queued for it; it is drained before this. */
		free(lw);
		lw = n;
	}
}
