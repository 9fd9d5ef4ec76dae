/*
 * event_impl: see event_impl.h. libvirt's watch and timer ids are the host's
 * ids (both positive and unique per kind). The host's io and timer callback
 * constants are libvirt's (READABLE 1, WRITABLE 2, ERROR 4, HANGUP 8), and a
 * timer period of -1 (off) or 0 (every iteration) means the same to both.
 *
 * libvirt requires that a watch's free function never runs inside its
 * remove call, and that the callback never runs after remove returned. The
 * host guarantees the second on the loop thread at once and elsewhere after
 * the next loop iteration; so removed records wait in a graveyard that a
 * one-shot timer empties on the loop thread, later.
 */
#include "event_impl.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <pthread.h>
#include <stdlib.h>

struct rec {
	int id;
	int is_timer;
	virEventHandleCallback io_cb;
	virEventTimeoutCallback timer_cb;
	void *opaque;
	virFreeCallback ff;
	struct rec *next;
};

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rec *live, *graveyard;
static int reap_armed; /* a reap timer is (being) added and has not fired */

static struct rec *unlink_rec(int id, int is_timer)
{
	for (struct rec **pp = &live; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id && (*pp)->is_timer == is_timer) {
			struct rec *r = *pp;
			*pp = r->next;
			return r;
		}
	return NULL;
}

/* Loop thread, at least one iteration after the records were removed. */
static void reap(void *data, int timer)
{
	pthread_mutex_lock(&mu);
	struct rec *dead = graveyard;
	graveyard = NULL;
	reap_armed = 0;
	pthread_mutex_unlock(&mu);
	host->timer_remove(self, timer);
	while (dead) {
		struct rec *n = dead->next;
		if (dead->ff)
			dead->ff(dead->opaque);
		free(dead);
		dead = n;
	}
}

static void bury(struct rec *r)
{
	pthread_mutex_lock(&mu);
	r->next = graveyard;
	graveyard = r;
	int arm = !reap_armed;
	reap_armed = 1;
	pthread_mutex_unlock(&mu);
	/* The reap may even run before timer_add returns: it takes what is
	 * buried by then and clears the flag under the lock. */
	if (arm && host->timer_add(self, 0, reap, NULL) <= 0) {
		pthread_mutex_lock(&mu);
		reap_armed = 0; /* the next burial tries again */
		pthread_mutex_unlock(&mu);
	}
}

static void io_tramp(void *data, int watch, int fd, uint32_t events)
{
	struct rec *r = data;
	r->io_cb(watch, fd, (int)events, r->opaque);
}

static void timer_tramp(void *data, int timer)
{
	struct rec *r = data;
	r->timer_cb(timer, r->opaque);
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                      virFreeCallback ff)
{
	struct rec *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->io_cb = cb;
	r->opaque = opaque;
	r->ff = ff;
	/* Held across io_add so that no update or remove of this id can come
	 * before the record is listed. */
	pthread_mutex_lock(&mu);
	int id =
	    host->io_add(self, fd, (uint32_t)events & (CVMM_IO_READ | CVMM_IO_WRITE), io_tramp, r);
	if (id <= 0) {
		pthread_mutex_unlock(&mu);
		free(r);
		return -1;
	}
	r->id = id;
	r->next = live;
	live = r;
	pthread_mutex_unlock(&mu);
	return id;
}

static void update_handle(int watch, int events)
{
	host->io_update(self, watch, (uint32_t)events & (CVMM_IO_READ | CVMM_IO_WRITE));
}

static int remove_handle(int watch)
{
	pthread_mutex_lock(&mu);
	struct rec *r = unlink_rec(watch, 0);
	pthread_mutex_unlock(&mu);
	if (!r)
		return -1;
	host->io_remove(self, watch);
	bury(r);
	return 0;
}

static int add_timeout(int ms, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
	struct rec *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->is_timer = 1;
	r->timer_cb = cb;
	r->opaque = opaque;
	r->ff = ff;
	pthread_mutex_lock(&mu);
	int id = host->timer_add(self, ms < 0 ? -1 : ms, timer_tramp, r);
	if (id <= 0) {
		pthread_mutex_unlock(&mu);
		free(r);
		return -1;
	}
	r->id = id;
	r->next = live;
	live = r;
	pthread_mutex_unlock(&mu);
	return id;
}

static void update_timeout(int timer, int ms)
{
	host->timer_update(self, timer, ms < 0 ? -1 : ms);
}

static int remove_timeout(int timer)
{
	pthread_mutex_lock(&mu);
	struct rec *r = unlink_rec(timer, 1);
	pthread_mutex_unlock(&mu);
	if (!r)
		return -1;
	host->timer_remove(self, timer);
	bury(r);
	return 0;
}

int lv_event_register(const struct cvmm_host_api *h, cvmm_plugin *p)
{
	if (h->struct_size < offsetof(struct cvmm_host_api, timer_remove) + sizeof(void *) ||
	    !h->io_add || !h->timer_remove)
		return -ENOTSUP;
	host = h;
	self = p;
	virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
	                     remove_timeout);
	return 0;
}
